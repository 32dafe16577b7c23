//! Run-time states of systems, groups and resources, and the snapshot of a
//! whole cluster.
//!
//! A snapshot taken at sequence `n` plus the events `n+1, n+2, ...` applied
//! in order with [`ClusterSnapshot::apply`] gives the engine's state at any
//! later sequence: that is the contract clients rely on.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ClusterConfig, Event, EventKind, Name};

/// The state of a resource on one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceState {
    /// Not probed yet (engine start, system just joined).
    Unknown,
    Online,
    Offline,
    /// Failed; stays so until cleared.
    Faulted,
    /// Online entry point running ("waiting to go online").
    GoingOnline,
    /// Offline entry point running ("waiting to go offline").
    GoingOffline,
}

/// The state of a service group on one system, derived from the states of
/// its resources there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupState {
    Offline,
    Online,
    /// Some resources online, not all.
    Partial,
    /// A critical resource faulted; needs a clear.
    Faulted,
    /// Going online.
    Starting,
    /// Going offline.
    Stopping,
}

/// The state of a system (node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SystemState {
    Running,
    /// Died: its groups fail over elsewhere.
    Faulted,
    /// Left the cluster cleanly.
    Exited,
}

/// Whether an object is frozen, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Freeze {
    #[default]
    None,
    /// Until the engine restarts.
    Temporary,
    /// Written to main.cf; survives restarts.
    Persistent,
}

impl Freeze {
    pub fn is_frozen(self) -> bool {
        self != Freeze::None
    }
}

/// Gives each state enum its wire name (the serde name) as `as_str` and
/// `Display`, so logs, tables and JSON all say the same word.
macro_rules! wire_names {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_names!(ResourceState {
    Unknown => "UNKNOWN", Online => "ONLINE", Offline => "OFFLINE", Faulted => "FAULTED",
    GoingOnline => "GOING_ONLINE", GoingOffline => "GOING_OFFLINE",
});
wire_names!(GroupState {
    Offline => "OFFLINE", Online => "ONLINE", Partial => "PARTIAL", Faulted => "FAULTED",
    Starting => "STARTING", Stopping => "STOPPING",
});
wire_names!(SystemState { Running => "RUNNING", Faulted => "FAULTED", Exited => "EXITED" });
wire_names!(Freeze { None => "none", Temporary => "temporary", Persistent => "persistent" });

/// A system's run-time status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SystemStatus {
    pub name: Name,
    pub state: SystemState,
    pub freeze: Freeze,
}

/// A group's run-time status on every system of its SystemList.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GroupStatus {
    pub name: Name,
    pub freeze: Freeze,
    pub enabled: bool,
    /// State per system, in SystemList order.
    pub states: Vec<(Name, GroupState)>,
    pub resources: Vec<ResourceStatus>,
}

/// A resource's run-time state on every system of its group's SystemList.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResourceStatus {
    pub name: Name,
    /// State per system, in the group's SystemList order.
    pub states: Vec<(Name, ResourceState)>,
}

/// Everything a client needs to know about a cluster at one sequence
/// number: its configuration and the state of every object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClusterSnapshot {
    /// The sequence number of the last event this snapshot includes.
    pub seq: u64,
    pub config: ClusterConfig,
    pub systems: Vec<SystemStatus>,
    pub groups: Vec<GroupStatus>,
}

fn set_state<S: Copy>(states: &mut [(Name, S)], system: &str, to: S) {
    if let Some(entry) = states.iter_mut().find(|(s, _)| &**s == system) {
        entry.1 = to;
    }
}

impl ClusterSnapshot {
    pub fn group(&self, name: &str) -> Option<&GroupStatus> {
        self.groups.iter().find(|g| &*g.name == name)
    }

    pub fn system(&self, name: &str) -> Option<&SystemStatus> {
        self.systems.iter().find(|s| &*s.name == name)
    }

    /// The state of `group` on `system`.
    pub fn group_state(&self, group: &str, system: &str) -> Option<GroupState> {
        self.group(group)?
            .states
            .iter()
            .find(|(s, _)| &**s == system)
            .map(|(_, st)| *st)
    }

    /// The state of `resource` on `system`.
    pub fn resource_state(&self, resource: &str, system: &str) -> Option<ResourceState> {
        self.groups
            .iter()
            .flat_map(|g| g.resources.iter())
            .find(|r| &*r.name == resource)?
            .states
            .iter()
            .find(|(s, _)| &**s == system)
            .map(|(_, st)| *st)
    }

    /// Systems where `group` is online or partially online.
    pub fn group_active_on(&self, group: &str) -> Vec<Name> {
        self.group(group)
            .map(|g| {
                g.states
                    .iter()
                    .filter(|(_, st)| matches!(st, GroupState::Online | GroupState::Partial))
                    .map(|(s, _)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Folds one event into the snapshot.
    ///
    /// Returns an error, and changes nothing, if the event is not the next
    /// one (`seq` must be `self.seq + 1`): a client that sees this has
    /// missed events and must take a new snapshot.
    pub fn apply(&mut self, event: &Event) -> Result<(), SequenceGap> {
        if event.seq != self.seq + 1 {
            return Err(SequenceGap {
                expected: self.seq + 1,
                got: event.seq,
            });
        }
        self.seq = event.seq;
        match &event.kind {
            EventKind::ResourceState {
                resource,
                system,
                to,
                ..
            } => {
                if let Some(r) = self
                    .groups
                    .iter_mut()
                    .flat_map(|g| g.resources.iter_mut())
                    .find(|r| r.name == *resource)
                {
                    set_state(&mut r.states, system, *to);
                }
            }
            EventKind::GroupState {
                group, system, to, ..
            } => {
                if let Some(g) = self.groups.iter_mut().find(|g| g.name == *group) {
                    set_state(&mut g.states, system, *to);
                }
            }
            EventKind::SystemState { system, to, .. } => {
                if let Some(s) = self.systems.iter_mut().find(|s| s.name == *system) {
                    s.state = *to;
                }
            }
            EventKind::GroupFreeze { group, freeze } => {
                if let Some(g) = self.groups.iter_mut().find(|g| g.name == *group) {
                    g.freeze = *freeze;
                }
            }
            EventKind::SystemFreeze { system, freeze } => {
                if let Some(s) = self.systems.iter_mut().find(|s| s.name == *system) {
                    s.freeze = *freeze;
                }
            }
            EventKind::GroupEnabled { group, enabled } => {
                if let Some(g) = self.groups.iter_mut().find(|g| g.name == *group) {
                    g.enabled = *enabled;
                }
            }
            EventKind::Failover { .. }
            | EventKind::ConcurrencyViolation { .. }
            | EventKind::Notice { .. } => {}
        }
        Ok(())
    }
}

/// An event arrived out of order: the client missed events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event sequence gap: expected {expected}, got {got}; take a new snapshot")]
pub struct SequenceGap {
    pub expected: u64,
    pub got: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_display_as_their_wire_names() {
        assert_eq!(ResourceState::GoingOnline.to_string(), "GOING_ONLINE");
        assert_eq!(GroupState::Partial.to_string(), "PARTIAL");
        assert_eq!(SystemState::Exited.to_string(), "EXITED");
        assert_eq!(Freeze::Persistent.to_string(), "persistent");
    }
}
