//! How an event is spread over the `history` table's query columns: the
//! same as `sqlite/columns.rs` (a copy while that module is being changed
//! by other work; both are to move to one shared module, so the two
//! backends cannot drift apart). The behaviour tests that run on both
//! backends query every column.
//!
//! The whole event kind is stored as JSON in `detail` and read back from
//! there; these columns are copies for `WHERE` clauses and external tools.

use haven_model::EventKind;

/// The query columns of one event; `None` is SQL NULL.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct EventColumns<'a> {
    /// The serde tag of the kind (`resource_state`, ...).
    pub kind: &'static str,
    pub grp: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub system: Option<&'a str>,
    pub object: Option<&'a str>,
    pub old_state: Option<&'static str>,
    pub new_state: Option<&'static str>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn of(kind: &'a EventKind) -> Self {
        match kind {
            EventKind::ResourceState {
                group,
                resource,
                system,
                from,
                to,
            } => EventColumns {
                kind: "resource_state",
                grp: Some(group),
                resource: Some(resource),
                system: Some(system),
                old_state: Some(from.as_str()),
                new_state: Some(to.as_str()),
                ..Default::default()
            },
            EventKind::GroupState {
                group,
                system,
                from,
                to,
            } => EventColumns {
                kind: "group_state",
                grp: Some(group),
                system: Some(system),
                old_state: Some(from.as_str()),
                new_state: Some(to.as_str()),
                ..Default::default()
            },
            EventKind::SystemState { system, from, to } => EventColumns {
                kind: "system_state",
                system: Some(system),
                old_state: Some(from.as_str()),
                new_state: Some(to.as_str()),
                ..Default::default()
            },
            EventKind::GroupFreeze { group, freeze } => EventColumns {
                kind: "group_freeze",
                grp: Some(group),
                new_state: Some(freeze.as_str()),
                ..Default::default()
            },
            EventKind::SystemFreeze { system, freeze } => EventColumns {
                kind: "system_freeze",
                system: Some(system),
                new_state: Some(freeze.as_str()),
                ..Default::default()
            },
            EventKind::GroupEnabled { group, enabled } => EventColumns {
                kind: "group_enabled",
                grp: Some(group),
                new_state: Some(if *enabled { "enabled" } else { "disabled" }),
                ..Default::default()
            },
            EventKind::ConcurrencyViolation { group, .. } => EventColumns {
                kind: "concurrency_violation",
                grp: Some(group),
                ..Default::default()
            },
            EventKind::Failover { group, from, .. } => EventColumns {
                kind: "failover",
                grp: Some(group),
                system: Some(from),
                ..Default::default()
            },
            EventKind::Notice { object, .. } => EventColumns {
                kind: "notice",
                object: object.as_deref(),
                ..Default::default()
            },
        }
    }
}
