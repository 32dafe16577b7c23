//! Operations: typed commands an administrator (or the management server on
//! their behalf) sends to a cluster, and their immediate answer.
//!
//! An operation is validated and answered at once with [`CommandResult`];
//! its effects then arrive as events. "Accepted" means the engine started
//! the work, not that the group is already online.

use serde::{Deserialize, Serialize};

use crate::Name;

/// Every operation the engine accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Bring a group online (on `system`, or its first eligible system; a
    /// parallel group on every eligible system).
    GroupOnline {
        group: Name,
        #[serde(default)]
        system: Option<Name>,
    },
    /// Take a group offline (on `system`, or everywhere).
    GroupOffline {
        group: Name,
        #[serde(default)]
        system: Option<Name>,
    },
    /// Move a failover group to `to` (or the next eligible system).
    GroupSwitch {
        group: Name,
        #[serde(default)]
        to: Option<Name>,
    },
    GroupFreeze {
        group: Name,
        #[serde(default)]
        persistent: bool,
    },
    GroupUnfreeze {
        group: Name,
    },
    /// Clear faults of a group's resources (on `system`, or everywhere).
    GroupClear {
        group: Name,
        #[serde(default)]
        system: Option<Name>,
    },
    /// Cancel online/offline work in progress and re-probe.
    GroupFlush {
        group: Name,
        #[serde(default)]
        system: Option<Name>,
    },
    GroupEnable {
        group: Name,
    },
    GroupDisable {
        group: Name,
    },
    ResourceOnline {
        resource: Name,
        system: Name,
    },
    ResourceOffline {
        resource: Name,
        system: Name,
    },
    ResourceClear {
        resource: Name,
        #[serde(default)]
        system: Option<Name>,
    },
    /// Run the resource's monitor now.
    ResourceProbe {
        resource: Name,
        system: Name,
    },
    /// Freeze a system: no group goes online on it. With `evacuate`, its
    /// online failover groups are switched away first.
    SystemFreeze {
        system: Name,
        #[serde(default)]
        persistent: bool,
        #[serde(default)]
        evacuate: bool,
    },
    SystemUnfreeze {
        system: Name,
    },
    /// Simulation only: make the resource fault on that system.
    SimFaultResource {
        resource: Name,
        system: Name,
    },
    /// Simulation only: make the system die.
    SimFaultSystem {
        system: Name,
    },
    /// Simulation only: bring a faulted or exited system back.
    SimRestoreSystem {
        system: Name,
    },
}

impl Operation {
    /// A short name for logs and audit (`group_online`, ...).
    pub fn verb(&self) -> &'static str {
        match self {
            Operation::GroupOnline { .. } => "group_online",
            Operation::GroupOffline { .. } => "group_offline",
            Operation::GroupSwitch { .. } => "group_switch",
            Operation::GroupFreeze { .. } => "group_freeze",
            Operation::GroupUnfreeze { .. } => "group_unfreeze",
            Operation::GroupClear { .. } => "group_clear",
            Operation::GroupFlush { .. } => "group_flush",
            Operation::GroupEnable { .. } => "group_enable",
            Operation::GroupDisable { .. } => "group_disable",
            Operation::ResourceOnline { .. } => "resource_online",
            Operation::ResourceOffline { .. } => "resource_offline",
            Operation::ResourceClear { .. } => "resource_clear",
            Operation::ResourceProbe { .. } => "resource_probe",
            Operation::SystemFreeze { .. } => "system_freeze",
            Operation::SystemUnfreeze { .. } => "system_unfreeze",
            Operation::SimFaultResource { .. } => "sim_fault_resource",
            Operation::SimFaultSystem { .. } => "sim_fault_system",
            Operation::SimRestoreSystem { .. } => "sim_restore_system",
        }
    }

    /// Whether this operation exists only in simulation mode.
    pub fn is_simulation_only(&self) -> bool {
        matches!(
            self,
            Operation::SimFaultResource { .. }
                | Operation::SimFaultSystem { .. }
                | Operation::SimRestoreSystem { .. }
        )
    }
}

/// Why an operation was refused, as a stable code for programs; the
/// message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The group, resource or system does not exist.
    UnknownObject,
    /// The object is not in a state that allows the operation.
    InvalidState,
    /// The group or system is frozen.
    Frozen,
    /// The group is disabled.
    Disabled,
    /// A dependency is not satisfied.
    Dependency,
    /// The operation needs simulation mode.
    NotSimulated,
    /// The caller may not do this.
    PermissionDenied,
}

/// The immediate answer to an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CommandResult {
    /// Validated and started; effects follow as events.
    Accepted,
    /// Not done; nothing changed.
    Refused { code: RefusalCode, reason: String },
}

impl CommandResult {
    pub fn refused(code: RefusalCode, reason: impl Into<String>) -> Self {
        CommandResult::Refused {
            code,
            reason: reason.into(),
        }
    }

    pub fn is_accepted(&self) -> bool {
        matches!(self, CommandResult::Accepted)
    }
}
