//! Reports over recorded history. The core of each is a pure function
//! (no clock, no I/O, no database): given what the history says — a
//! cluster's state at an instant and the events after it — it computes
//! the figures, so they can be tested on hand-made histories with exact
//! expected numbers. Reading that history (checkpoints and events, from
//! the timeline), the API, the console pages, CSV and schedules are
//! wiring around it.
//!
//! - [`availability`]: percent online, outages, failovers and MTTR per
//!   service group, per cluster and over the fleet, for a period; [`api`]
//!   serves it (JSON, CSV) for what the caller may see; [`schedule`]
//!   mails it (`[[reports.schedule]]`).

pub mod api;
pub mod availability;
pub mod schedule;

pub use availability::{
    availability, AvailabilityReport, ClusterHistory, ClusterReport, Figures, GroupReport, Outage,
    Period,
};
