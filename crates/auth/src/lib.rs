//! The authentication broker.
//!
//! Today: [`roles`], the authorisation model HA administrators know from
//! VCS — Cluster Administrator, Cluster Operator, Group Administrator,
//! Group Operator, Guest — granted to OS users or OS groups at fleet,
//! cluster or group scope, plus the fleet-wide Server Administrator. It is
//! pure logic (no I/O), so every decision is unit-tested table by table.
//!
//! And [`pam`]: logins of local OS accounts through the host's real PAM
//! stack, and the user's OS groups (for grants to groups); [`pam_helper`]:
//! the small privileged process the server runs for each PAM login.
//!
//! [`ldap`]: domain accounts through LDAP / Active Directory; [`session`]:
//! sessions with idle and absolute expiry, and login throttling.
//!
//! Next (see ARCHITECTURE.md, "Not built yet"): the Unix-socket identity
//! and enforcement in the server.

pub mod ldap;
pub mod pam;
pub mod pam_helper;
pub mod roles;
pub mod session;
