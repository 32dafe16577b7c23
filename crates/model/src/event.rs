//! Events: typed state changes, numbered by a per-cluster sequence.
//!
//! Sequence numbers start at 1 and have no gaps: event `n+1` is the next
//! change after event `n`. A client that holds everything up to `n` can ask
//! to resume from `n` and misses nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Freeze, GroupState, Name, ResourceState, SystemState};

/// One numbered change in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    /// Per-cluster sequence number, from 1, without gaps.
    pub seq: u64,
    /// When the engine recorded it, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// How serious a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    ResourceState {
        group: Name,
        resource: Name,
        system: Name,
        from: ResourceState,
        to: ResourceState,
    },
    GroupState {
        group: Name,
        system: Name,
        from: GroupState,
        to: GroupState,
    },
    SystemState {
        system: Name,
        from: SystemState,
        to: SystemState,
    },
    GroupFreeze {
        group: Name,
        freeze: Freeze,
    },
    SystemFreeze {
        system: Name,
        freeze: Freeze,
    },
    GroupEnabled {
        group: Name,
        enabled: bool,
    },
    /// A failover group is online (or partial) on more than one system.
    ConcurrencyViolation {
        group: Name,
        systems: Vec<Name>,
    },
    /// The engine decided where a faulted group goes; `to` is `None` when
    /// no system was eligible (the reason says why).
    Failover {
        group: Name,
        from: Name,
        to: Option<Name>,
        reason: String,
    },
    /// Anything else an administrator should read (an agent's error, a
    /// skipped autostart, ...).
    Notice {
        severity: Severity,
        /// The object the notice is about (`group`, `resource` or `system`
        /// name), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object: Option<Name>,
        message: String,
    },
}

impl EventKind {
    /// The group this event is about, if any.
    pub fn group(&self) -> Option<&Name> {
        match self {
            EventKind::ResourceState { group, .. }
            | EventKind::GroupState { group, .. }
            | EventKind::GroupFreeze { group, .. }
            | EventKind::GroupEnabled { group, .. }
            | EventKind::ConcurrencyViolation { group, .. }
            | EventKind::Failover { group, .. } => Some(group),
            _ => None,
        }
    }
}

impl fmt::Display for EventKind {
    /// One line for logs and terminals, e.g.
    /// `resource web_proc on sysA: ONLINE -> FAULTED`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::ResourceState {
                resource,
                system,
                from,
                to,
                ..
            } => write!(f, "resource {resource} on {system}: {from} -> {to}"),
            EventKind::GroupState {
                group,
                system,
                from,
                to,
            } => write!(f, "group {group} on {system}: {from} -> {to}"),
            EventKind::SystemState { system, from, to } => {
                write!(f, "system {system}: {from} -> {to}")
            }
            EventKind::GroupFreeze { group, freeze } => match freeze {
                crate::Freeze::None => write!(f, "group {group} unfrozen"),
                _ => write!(f, "group {group} frozen ({freeze})"),
            },
            EventKind::SystemFreeze { system, freeze } => match freeze {
                crate::Freeze::None => write!(f, "system {system} unfrozen"),
                _ => write!(f, "system {system} frozen ({freeze})"),
            },
            EventKind::GroupEnabled { group, enabled } => write!(
                f,
                "group {group} {}",
                if *enabled { "enabled" } else { "disabled" }
            ),
            EventKind::ConcurrencyViolation { group, systems } => {
                let list: Vec<&str> = systems.iter().map(|s| &**s).collect();
                write!(
                    f,
                    "CONCURRENCY VIOLATION: failover group {group} is online on {}",
                    list.join(", ")
                )
            }
            EventKind::Failover {
                group,
                from,
                to,
                reason,
            } => match to {
                Some(to) => write!(f, "group {group} fails over from {from} to {to} ({reason})"),
                None => write!(f, "group {group} cannot fail over from {from}: {reason}"),
            },
            EventKind::Notice {
                severity, message, ..
            } => write!(f, "{severity:?}: {message}"),
        }
    }
}
