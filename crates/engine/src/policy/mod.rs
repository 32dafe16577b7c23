//! The policy manager of one cluster: a pure, deterministic state machine.
//!
//! It owns the run-time state of every system, group and resource. Inputs
//! are operations, agent results, injected faults and clock ticks; outputs
//! are [`Effect`]s: numbered events to publish, agent actions to run, and
//! configuration to save. It does no I/O and reads no clock (the caller
//! passes `now_ms`), so every behaviour is unit-testable and the simulator
//! can run thousands of clusters without a task per resource.
//!
//! Invariants:
//! - every state change is emitted as exactly one event, with the next
//!   sequence number;
//! - a group's state on a system is derived from its resources' states
//!   there (see [`derive_group_state`]), never set directly;
//! - at most one agent action runs per resource and system; a result whose
//!   token is stale (the action was flushed) is ignored;
//! - a failover group is brought online on a system only when it is online
//!   nowhere else.

use std::collections::VecDeque;

use haven_model::{
    ClusterConfig, ClusterSnapshot, CommandResult, DependencyCategory, DependencyLocation,
    DependencyRigidity, Event, EventKind, FailoverPolicy, Freeze, GroupState, GroupStatus, Name,
    Operation, RefusalCode, ResourceState, ResourceStatus, Severity, SystemState, SystemStatus,
};

/// What an agent is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentAction {
    Online,
    Offline,
    Monitor,
    Clean,
}

/// What an agent reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutcome {
    /// Online, offline or clean finished.
    Done,
    /// Monitor saw the resource online (`true`) or offline (`false`).
    Observed(bool),
    /// The action failed or timed out.
    Failed(String),
}

/// An agent action the caller must run, then report with
/// [`Cluster::agent_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRequest {
    pub resource: usize,
    pub system: usize,
    pub action: AgentAction,
    pub token: u64,
}

/// Something the caller must do after an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Emit(Event),
    Agent(AgentRequest),
    /// A persistent attribute changed: write the configuration out.
    SaveConfig,
}

/// How the policy behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Simulation mode: simulation-only operations are allowed.
    pub simulated: bool,
    /// Run monitors periodically (MonitorInterval / OfflineMonitorInterval).
    /// Off for simulated clusters, whose agents only change state when told.
    pub periodic_monitor: bool,
}

/// What to do with a group once it is offline on a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Bring it online on this system (switch, evacuate).
    OnlineOn(usize),
    /// It faulted on this system: pick the next one by FailOverPolicy.
    Failover { from: usize },
    /// A group it depends on went away: follow that group when it comes
    /// online again.
    FollowChild,
}

/// What the engine is doing with a group on a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Idle,
    Online,
    Offline,
}

#[derive(Debug, Clone, Copy)]
struct Busy {
    token: u64,
    action: AgentAction,
    /// For a clean: the state the resource takes when it succeeds.
    after_clean: ResourceState,
}

struct SystemRt {
    name: Name,
    state: SystemState,
    freeze: Freeze,
    capacity: i64,
}

struct GroupRt {
    name: Name,
    freeze: Freeze,
    enabled: bool,
    parallel: bool,
    auto_fail_over: bool,
    auto_start: bool,
    policy: FailoverPolicy,
    load: i64,
    /// System indices of the SystemList, by priority (lowest first).
    systems: Vec<usize>,
    auto_start_list: Vec<usize>,
    /// Global resource indices, in configuration order.
    resources: Vec<usize>,
    /// Per system index: derived state, and what the engine is doing.
    state: Vec<GroupState>,
    target: Vec<Intent>,
    then: Option<Then>,
    /// `requires group` lines: (child group index, dependency).
    requires: Vec<(
        usize,
        DependencyCategory,
        DependencyLocation,
        DependencyRigidity,
    )>,
    /// Groups that require this one.
    parents: Vec<usize>,
    concurrency_reported: bool,
}

struct ResourceRt {
    name: Name,
    group: usize,
    critical: bool,
    monitor_interval_ms: i64,
    offline_monitor_interval_ms: i64,
    /// Resources this one requires (must be online first).
    children: Vec<usize>,
    /// Resources that require this one.
    parents: Vec<usize>,
    /// Per system index.
    state: Vec<ResourceState>,
    busy: Vec<Option<Busy>>,
    last_monitor_ms: Vec<i64>,
}

/// The run-time state of one cluster and the rules that move it.
pub struct Cluster {
    config: ClusterConfig,
    options: PolicyOptions,
    systems: Vec<SystemRt>,
    groups: Vec<GroupRt>,
    resources: Vec<ResourceRt>,
    seq: u64,
    next_token: u64,
    autostarted: bool,
    now_ms: i64,
    out: Vec<Effect>,
    /// (group, system) pairs whose work must be re-examined.
    dirty: VecDeque<(usize, usize)>,
}

fn refuse(code: RefusalCode, reason: impl Into<String>) -> Result<(), CommandResult> {
    Err(CommandResult::refused(code, reason))
}

/// A group's state on a system, from its resources' states there and what
/// the engine is doing with the group there (`intent`).
///
/// A faulted critical resource makes the group FAULTED. Otherwise, while
/// the engine brings the group online it is STARTING until every resource
/// is online, and while it takes the group offline it is STOPPING until
/// none is; a resource in transit outside such work (a single resource
/// operation) shows the same way. Otherwise the group is ONLINE when every
/// resource is online, PARTIAL when some are, OFFLINE when none are.
pub fn derive_group_state(
    resources: impl Iterator<Item = (ResourceState, bool)>,
    intent: Intent,
) -> GroupState {
    let (mut any, mut all_online, mut online, mut starting, mut stopping, mut faulted) =
        (false, true, false, false, false, false);
    for (state, critical) in resources {
        any = true;
        all_online &= state == ResourceState::Online;
        match state {
            ResourceState::Online => online = true,
            ResourceState::GoingOnline => starting = true,
            ResourceState::GoingOffline => stopping = true,
            ResourceState::Faulted if critical => faulted = true,
            _ => {}
        }
    }
    let all_online = any && all_online;
    if faulted {
        GroupState::Faulted
    } else if starting || (intent == Intent::Online && !all_online) {
        GroupState::Starting
    } else if stopping || (intent == Intent::Offline && online) {
        GroupState::Stopping
    } else if all_online {
        GroupState::Online
    } else if online {
        GroupState::Partial
    } else {
        GroupState::Offline
    }
}

fn is_active(state: GroupState) -> bool {
    matches!(
        state,
        GroupState::Online | GroupState::Partial | GroupState::Starting | GroupState::Stopping
    )
}

impl Cluster {
    /// Builds the run-time state of a validated configuration: every system
    /// running, every resource UNKNOWN until probed. Call [`Self::start`]
    /// next.
    pub fn new(config: ClusterConfig, options: PolicyOptions) -> Self {
        let n = config.systems.len();
        let sys_index = |name: &str| config.systems.iter().position(|s| &*s.name == name);
        let systems = config
            .systems
            .iter()
            .map(|s| SystemRt {
                name: s.name.clone(),
                state: SystemState::Running,
                freeze: if s.frozen {
                    Freeze::Persistent
                } else {
                    Freeze::None
                },
                capacity: s.capacity,
            })
            .collect();
        let mut groups = Vec::with_capacity(config.groups.len());
        let mut resources: Vec<ResourceRt> = Vec::new();
        for (gi, g) in config.groups.iter().enumerate() {
            let mut list: Vec<(u32, usize)> = g
                .system_list
                .iter()
                .filter_map(|(s, p)| sys_index(s).map(|i| (*p, i)))
                .collect();
            list.sort();
            let first = resources.len();
            for r in &g.resources {
                let interval = |attr: &str, fallback: i64| {
                    config.resource_int(r, attr, fallback).max(1) * 1000
                };
                resources.push(ResourceRt {
                    name: r.name.clone(),
                    group: gi,
                    critical: config.is_critical(r),
                    monitor_interval_ms: interval("MonitorInterval", 60),
                    offline_monitor_interval_ms: interval("OfflineMonitorInterval", 300),
                    children: Vec::new(),
                    parents: Vec::new(),
                    state: vec![ResourceState::Unknown; n],
                    busy: vec![None; n],
                    last_monitor_ms: vec![0; n],
                });
            }
            let local = |name: &str| {
                g.resources
                    .iter()
                    .position(|r| &*r.name == name)
                    .map(|i| first + i)
            };
            for dep in &g.dependencies {
                if let (Some(p), Some(c)) = (local(&dep.parent), local(&dep.child)) {
                    resources[p].children.push(c);
                    resources[c].parents.push(p);
                }
            }
            groups.push(GroupRt {
                name: g.name.clone(),
                freeze: if g.frozen {
                    Freeze::Persistent
                } else {
                    Freeze::None
                },
                enabled: g.enabled,
                parallel: g.parallel,
                auto_fail_over: g.auto_fail_over,
                auto_start: g.auto_start,
                policy: g.failover_policy,
                load: g.load,
                systems: list.into_iter().map(|(_, i)| i).collect(),
                auto_start_list: g
                    .auto_start_list
                    .iter()
                    .filter_map(|s| sys_index(s))
                    .collect(),
                resources: (first..resources.len()).collect(),
                state: vec![GroupState::Offline; n],
                target: vec![Intent::Idle; n],
                then: None,
                requires: Vec::new(),
                parents: Vec::new(),
                concurrency_reported: false,
            });
        }
        for (gi, g) in config.groups.iter().enumerate() {
            for dep in &g.group_dependencies {
                if let Some(ci) = config.groups.iter().position(|c| c.name == dep.child) {
                    groups[gi]
                        .requires
                        .push((ci, dep.category, dep.location, dep.rigidity));
                    groups[ci].parents.push(gi);
                }
            }
        }
        Cluster {
            config,
            options,
            systems,
            groups,
            resources,
            seq: 0,
            next_token: 1,
            autostarted: false,
            now_ms: 0,
            out: Vec::new(),
            dirty: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn name(&self) -> &Name {
        &self.config.name
    }

    /// The sequence number of the last event emitted.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn options(&self) -> PolicyOptions {
        self.options
    }

    /// The name of a resource, by index (for agents).
    pub fn resource_name(&self, index: usize) -> &Name {
        &self.resources[index].name
    }

    /// The name of a system, by index (for agents).
    pub fn system_name(&self, index: usize) -> &Name {
        &self.systems[index].name
    }

    /// Index of a resource by name.
    pub fn resource_index(&self, name: &str) -> Option<usize> {
        self.resources.iter().position(|r| &*r.name == name)
    }

    /// Index of a system by name.
    pub fn system_index(&self, name: &str) -> Option<usize> {
        self.systems.iter().position(|s| &*s.name == name)
    }

    /// The group of a resource, by index.
    pub fn resource_group(&self, index: usize) -> usize {
        self.resources[index].group
    }

    /// The current state of a resource on a system.
    pub fn resource_state(&self, resource: usize, system: usize) -> ResourceState {
        self.resources[resource].state[system]
    }

    /// Systems a resource can be on (its group's SystemList).
    pub fn resource_systems(&self, resource: usize) -> &[usize] {
        &self.groups[self.resources[resource].group].systems
    }

    /// Starts the cluster: probes every resource on every system. Groups
    /// autostart once every probe has answered.
    pub fn start(&mut self, now_ms: i64) -> Vec<Effect> {
        self.now_ms = now_ms;
        for r in 0..self.resources.len() {
            for &s in &self.groups[self.resources[r].group].systems.clone() {
                self.request(r, s, AgentAction::Monitor, ResourceState::Unknown);
            }
        }
        self.settle();
        self.take()
    }

    /// How many systems are running.
    pub fn running_systems(&self) -> usize {
        self.systems
            .iter()
            .filter(|s| s.state == SystemState::Running)
            .count()
    }

    /// Whether nothing is in progress: no agent action running, no group
    /// on its way online or offline.
    pub fn quiet(&self) -> bool {
        self.resources
            .iter()
            .all(|r| r.busy.iter().all(Option::is_none))
            && self
                .groups
                .iter()
                .all(|g| g.target.iter().all(|t| *t == Intent::Idle))
    }

    /// Takes every group offline everywhere (engine shutdown), children
    /// last. Frozen groups are left as they are.
    pub fn stop_all(&mut self, now_ms: i64) -> Vec<Effect> {
        self.now_ms = now_ms;
        for g in 0..self.groups.len() {
            self.groups[g].then = None;
            if self.groups[g].freeze.is_frozen() {
                continue;
            }
            for s in self.groups[g].systems.clone() {
                if is_active(self.groups[g].state[s]) {
                    self.begin_offline(g, s);
                }
            }
        }
        self.settle();
        self.take()
    }

    /// The state of the whole cluster now.
    pub fn snapshot(&self) -> ClusterSnapshot {
        ClusterSnapshot {
            seq: self.seq,
            config: self.config.clone(),
            systems: self
                .systems
                .iter()
                .map(|s| SystemStatus {
                    name: s.name.clone(),
                    state: s.state,
                    freeze: s.freeze,
                })
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|g| {
                    let on = |states: &[_]| {
                        g.systems
                            .iter()
                            .map(|&s| (self.systems[s].name.clone(), states[s]))
                            .collect()
                    };
                    GroupStatus {
                        name: g.name.clone(),
                        freeze: g.freeze,
                        enabled: g.enabled,
                        states: on(&g.state),
                        resources: g
                            .resources
                            .iter()
                            .map(|&r| ResourceStatus {
                                name: self.resources[r].name.clone(),
                                states: g
                                    .systems
                                    .iter()
                                    .map(|&s| {
                                        (self.systems[s].name.clone(), self.resources[r].state[s])
                                    })
                                    .collect(),
                            })
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

mod operations;
mod rules;

#[cfg(test)]
mod tests;
