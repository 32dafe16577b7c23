//! Haven's cluster connector: runs beside one cluster engine, follows its
//! event stream and relays it to the management server.
//!
//! While the server is unreachable the connector keeps following the engine
//! and appends to a durable on-disk [`spool`], so the server later receives
//! the backlog in order, without gaps or duplicates.

pub mod relay;
pub mod spool;
