//! The authentication broker.
//!
//! Today: [`roles`], the authorisation model HA administrators know from
//! VCS — Cluster Administrator, Cluster Operator, Group Administrator,
//! Group Operator, Guest — granted to OS users or OS groups at fleet,
//! cluster or group scope, plus the fleet-wide Server Administrator. It is
//! pure logic (no I/O), so every decision is unit-tested table by table.
//!
//! Next (see ARCHITECTURE.md, "Not built yet"): logins through PAM and
//! LDAP, sessions, the Unix-socket identity, and enforcement in the server.

pub mod roles;
