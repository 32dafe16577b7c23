//! The cluster engine (the "HA daemon") and the simulator fleet.
//!
//! Code map:
//! - [`policy`]: the pure state machine of one cluster (what happens when a
//!   resource faults, where a group fails over, which operations are
//!   allowed). No I/O.
//! - [`agents`]: one trait, one file per agent (Process, Application,
//!   FileOnOff, simulated).
//! - [`runtime`]: the task that owns a cluster: runs the policy, its agents,
//!   its journal, and publishes events.
//! - [`journal`]: the bounded event journal clients resume from.
//! - [`server`]: the socket server speaking `haven-protocol`.
//! - [`sim`]: many simulated clusters in one process (`haven sim`).
//! - [`engine`]: wiring for `haven engine` (load main.cf, check agents,
//!   listen).

pub mod agents;
pub mod engine;
pub mod journal;
pub mod password;
pub mod policy;
pub mod runtime;
pub mod server;
pub mod sim;
