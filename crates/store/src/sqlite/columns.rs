//! How an event is spread over the `history` table's query columns.
//!
//! The whole event kind is stored as JSON in `detail` and read back from
//! there; these columns are copies for `WHERE` clauses and external tools,
//! so what goes in them may be refined by a later migration without losing
//! anything.

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

#[cfg(test)]
mod tests {
    use haven_model::{name, ResourceState};

    use super::*;
    use crate::sqlite::tests::every_kind;

    #[test]
    fn type_column_is_the_json_tag_of_every_kind() {
        for kind in every_kind() {
            let json = serde_json::to_value(&kind).expect("serialises");
            assert_eq!(
                json["type"].as_str(),
                Some(EventColumns::of(&kind).kind),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn state_columns_use_the_wire_names() {
        let kind = EventKind::ResourceState {
            group: name("g"),
            resource: name("r"),
            system: name("s"),
            from: ResourceState::GoingOffline,
            to: ResourceState::Faulted,
        };
        let cols = EventColumns::of(&kind);
        assert_eq!(cols.old_state, Some("GOING_OFFLINE"));
        assert_eq!(cols.new_state, Some("FAULTED"));
        assert_eq!(
            (cols.grp, cols.resource, cols.system),
            (Some("g"), Some("r"), Some("s"))
        );
    }
}
