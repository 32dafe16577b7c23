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

    /// Takes the effects produced so far.
    fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, kind: EventKind) {
        self.seq += 1;
        self.out.push(Effect::Emit(Event {
            seq: self.seq,
            time_ms: self.now_ms,
            kind,
        }));
    }

    fn notice(&mut self, severity: Severity, object: Option<Name>, message: String) {
        self.emit(EventKind::Notice {
            severity,
            object,
            message,
        });
    }

    fn request(&mut self, r: usize, s: usize, action: AgentAction, after_clean: ResourceState) {
        let token = self.next_token;
        self.next_token += 1;
        self.resources[r].busy[s] = Some(Busy {
            token,
            action,
            after_clean,
        });
        if action == AgentAction::Monitor {
            self.resources[r].last_monitor_ms[s] = self.now_ms;
        }
        self.out.push(Effect::Agent(AgentRequest {
            resource: r,
            system: s,
            action,
            token,
        }));
    }

    /// Changes a resource's state, emits it, and re-derives its group.
    fn set_resource(&mut self, r: usize, s: usize, to: ResourceState) {
        let from = self.resources[r].state[s];
        if from == to {
            return;
        }
        self.resources[r].state[s] = to;
        let g = self.resources[r].group;
        self.emit(EventKind::ResourceState {
            group: self.groups[g].name.clone(),
            resource: self.resources[r].name.clone(),
            system: self.systems[s].name.clone(),
            from,
            to,
        });
        self.refresh_group(g, s);
    }

    fn refresh_group(&mut self, g: usize, s: usize) {
        let to = derive_group_state(
            self.groups[g]
                .resources
                .iter()
                .map(|&r| (self.resources[r].state[s], self.resources[r].critical)),
            self.groups[g].target[s],
        );
        let from = self.groups[g].state[s];
        self.dirty.push_back((g, s));
        if from == to {
            return;
        }
        self.groups[g].state[s] = to;
        self.emit(EventKind::GroupState {
            group: self.groups[g].name.clone(),
            system: self.systems[s].name.clone(),
            from,
            to,
        });
        if to == GroupState::Faulted {
            self.on_group_fault(g, s, from);
        }
        if to == GroupState::Online {
            self.on_group_online(g, s);
        }
        if from == GroupState::Online || from == GroupState::Partial {
            self.on_group_left(g, s);
        }
        self.check_concurrency(g);
    }

    fn check_concurrency(&mut self, g: usize) {
        if self.groups[g].parallel {
            return;
        }
        let on: Vec<Name> = self.groups[g]
            .systems
            .iter()
            .filter(|&&s| {
                self.groups[g]
                    .resources
                    .iter()
                    .any(|&r| self.resources[r].state[s] == ResourceState::Online)
            })
            .map(|&s| self.systems[s].name.clone())
            .collect();
        let violated = on.len() > 1;
        if violated && !self.groups[g].concurrency_reported {
            self.groups[g].concurrency_reported = true;
            self.emit(EventKind::ConcurrencyViolation {
                group: self.groups[g].name.clone(),
                systems: on,
            });
        } else if !violated {
            self.groups[g].concurrency_reported = false;
        }
    }

    /// A critical resource of `g` faulted on `s`.
    fn on_group_fault(&mut self, g: usize, s: usize, was: GroupState) {
        if self.groups[g].freeze.is_frozen() {
            let name = self.groups[g].name.clone();
            self.notice(
                Severity::Warning,
                Some(name.clone()),
                format!(
                    "group {name} faulted on {} but is frozen: not taking it offline or failing it over",
                    self.systems[s].name
                ),
            );
            return;
        }
        let was_active = is_active(was) || self.groups[g].target[s] == Intent::Online;
        self.groups[g].target[s] = Intent::Offline;
        if was_active && !self.groups[g].parallel {
            self.groups[g].then = Some(Then::Failover { from: s });
        }
        self.dirty.push_back((g, s));
    }

    /// `g` came fully online on `s`: groups waiting for it follow.
    fn on_group_online(&mut self, g: usize, s: usize) {
        for p in self.groups[g].parents.clone() {
            if self.groups[p].then == Some(Then::FollowChild) && self.requirements_met(p, s) {
                self.groups[p].then = None;
                if self.eligible(p, s).is_ok() {
                    self.begin_online(p, s);
                }
            }
        }
    }

    /// `g` stopped being online on `s`: firm parents that needed it there
    /// go offline and follow it.
    fn on_group_left(&mut self, g: usize, s: usize) {
        for p in self.groups[g].parents.clone() {
            let needs_it_here = self.groups[p].requires.iter().any(|&(c, cat, loc, rig)| {
                c == g
                    && cat == DependencyCategory::Online
                    && loc == DependencyLocation::Local
                    && rig != DependencyRigidity::Soft
            });
            if needs_it_here
                && is_active(self.groups[p].state[s])
                && !self.groups[p].freeze.is_frozen()
            {
                self.groups[p].then = Some(Then::FollowChild);
                self.set_target(p, s, Intent::Offline);
                self.dirty.push_back((p, s));
            }
        }
    }

    /// Whether `g`'s group dependencies allow it online on `s`.
    fn requirements_met(&self, g: usize, s: usize) -> bool {
        self.groups[g].requires.iter().all(|&(c, cat, loc, _)| {
            let child = &self.groups[c];
            let online_on = |sys: usize| child.state[sys] == GroupState::Online;
            match (cat, loc) {
                (DependencyCategory::Online, DependencyLocation::Local) => online_on(s),
                (DependencyCategory::Online, DependencyLocation::Global) => {
                    child.systems.iter().any(|&x| online_on(x))
                }
                (DependencyCategory::Online, DependencyLocation::Remote) => {
                    child.systems.iter().any(|&x| x != s && online_on(x))
                }
                (DependencyCategory::Offline, DependencyLocation::Local) => !online_on(s),
                (DependencyCategory::Offline, _) => !child.systems.iter().any(|&x| online_on(x)),
            }
        })
    }

    fn group_faulted_on(&self, g: usize, s: usize) -> bool {
        self.groups[g].state[s] == GroupState::Faulted
    }

    /// Whether `g` may go online on `s` now; the refusal says why not.
    fn eligible(&self, g: usize, s: usize) -> Result<(), CommandResult> {
        let group = &self.groups[g];
        let system = &self.systems[s];
        if !group.systems.contains(&s) {
            return refuse(
                RefusalCode::InvalidState,
                format!(
                    "system {} is not in the SystemList of group {}",
                    system.name, group.name
                ),
            );
        }
        if system.state != SystemState::Running {
            return refuse(
                RefusalCode::InvalidState,
                format!("system {} is {}", system.name, system.state),
            );
        }
        if system.freeze.is_frozen() {
            return refuse(
                RefusalCode::Frozen,
                format!(
                    "system {} is frozen; unfreeze it first (haven system unfreeze)",
                    system.name
                ),
            );
        }
        if self.group_faulted_on(g, s) {
            return refuse(
                RefusalCode::InvalidState,
                format!(
                    "group {} is faulted on {}; clear it first",
                    group.name, system.name
                ),
            );
        }
        if !self.requirements_met(g, s) {
            return refuse(
                RefusalCode::Dependency,
                format!(
                    "group {} requires groups that are not in the needed state for {}",
                    group.name, system.name
                ),
            );
        }
        Ok(())
    }

    fn check_group_operable(&self, g: usize) -> Result<(), CommandResult> {
        let group = &self.groups[g];
        if group.freeze.is_frozen() {
            return refuse(
                RefusalCode::Frozen,
                format!("group {} is frozen; unfreeze it first", group.name),
            );
        }
        if !group.enabled {
            return refuse(
                RefusalCode::Disabled,
                format!("group {} is disabled; enable it first", group.name),
            );
        }
        Ok(())
    }

    /// Systems where a failover group is active (or being started).
    fn active_systems(&self, g: usize) -> Vec<usize> {
        self.groups[g]
            .systems
            .iter()
            .copied()
            .filter(|&s| {
                is_active(self.groups[g].state[s]) || self.groups[g].target[s] == Intent::Online
            })
            .collect()
    }

    fn begin_online(&mut self, g: usize, s: usize) {
        self.set_target(g, s, Intent::Online);
    }

    fn begin_offline(&mut self, g: usize, s: usize) {
        self.set_target(g, s, Intent::Offline);
    }

    /// Changes what the engine does with `g` on `s`; the group's state
    /// follows (STARTING/STOPPING).
    fn set_target(&mut self, g: usize, s: usize, target: Intent) {
        if self.groups[g].target[s] != target {
            self.groups[g].target[s] = target;
            self.refresh_group(g, s);
        }
        self.dirty.push_back((g, s));
    }

    /// Picks the system a failover group should go to, by its policy.
    fn pick_target(&self, g: usize, exclude: Option<usize>) -> Result<usize, String> {
        let group = &self.groups[g];
        let candidates: Vec<usize> = group
            .systems
            .iter()
            .copied()
            .filter(|&s| Some(s) != exclude && self.eligible(g, s).is_ok())
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "no eligible system for group {} (every other system of its SystemList is down, frozen, faulted for it, or lacks a required group)",
                group.name
            ));
        }
        let groups_on = |s: usize| {
            self.groups
                .iter()
                .filter(|o| is_active(o.state[s]) || o.target[s] == Intent::Online)
                .collect::<Vec<_>>()
        };
        // `candidates` is in priority order, so min_by_key/max_by_key
        // break ties by priority.
        let pick = match group.policy {
            FailoverPolicy::Priority => candidates[0],
            FailoverPolicy::RoundRobin => candidates
                .iter()
                .copied()
                .min_by_key(|&s| groups_on(s).len())
                .unwrap_or(candidates[0]),
            FailoverPolicy::Load => candidates
                .iter()
                .copied()
                .map(|s| {
                    let used: i64 = groups_on(s).iter().map(|o| o.load).sum();
                    (s, self.systems[s].capacity - used)
                })
                .fold(None, |best: Option<(usize, i64)>, (s, free)| match best {
                    Some((_, f)) if f >= free => best,
                    _ => Some((s, free)),
                })
                .map(|(s, _)| s)
                .unwrap_or(candidates[0]),
        };
        Ok(pick)
    }

    /// Moves every (group, system) whose work may progress.
    fn settle(&mut self) {
        // Bounded: each step either starts an agent action (at most one per
        // resource and system) or finishes a target; the bound guards
        // against a rule bug turning into a hung engine.
        let mut budget = 64 + 16 * (self.resources.len() + 1) * (self.systems.len() + 1);
        while let Some((g, s)) = self.dirty.pop_front() {
            budget -= 1;
            if budget == 0 {
                self.dirty.clear();
                self.notice(
                    Severity::Error,
                    None,
                    "engine policy did not settle; stopped re-evaluating (this is a bug)".into(),
                );
                break;
            }
            self.progress(g, s);
        }
        if !self.autostarted && self.all_probed() {
            self.autostarted = true;
            self.autostart();
            self.settle();
        }
    }

    fn all_probed(&self) -> bool {
        self.resources.iter().all(|r| {
            self.groups[r.group].systems.iter().all(|&s| {
                self.systems[s].state != SystemState::Running
                    || r.state[s] != ResourceState::Unknown
            })
        })
    }

    fn autostart(&mut self) {
        for g in 0..self.groups.len() {
            let group = &self.groups[g];
            if !group.auto_start || !group.enabled || group.freeze.is_frozen() {
                continue;
            }
            if group.parallel {
                for s in group.auto_start_list.clone() {
                    if self.eligible(g, s).is_ok() && !is_active(self.groups[g].state[s]) {
                        self.begin_online(g, s);
                    }
                }
                continue;
            }
            if !self.active_systems(g).is_empty() {
                continue;
            }
            let list = group.auto_start_list.clone();
            if list.is_empty() {
                continue;
            }
            match list.iter().copied().find(|&s| self.eligible(g, s).is_ok()) {
                Some(s) => self.begin_online(g, s),
                None if !self.groups[g].requires.is_empty() => {
                    // Start with the group it depends on.
                    self.groups[g].then = Some(Then::FollowChild);
                }
                None => {
                    let name = self.groups[g].name.clone();
                    self.notice(
                        Severity::Warning,
                        Some(name.clone()),
                        format!("group {name} not autostarted: no system of its AutoStartList is eligible"),
                    );
                }
            }
        }
    }

    /// Starts whatever agent actions `g`'s target on `s` allows, and
    /// finishes the target when nothing is left to do.
    fn progress(&mut self, g: usize, s: usize) {
        match self.groups[g].target[s] {
            Intent::Idle => {}
            Intent::Online => {
                let mut waiting = false;
                for r in self.groups[g].resources.clone() {
                    let res = &self.resources[r];
                    if res.busy[s].is_some() {
                        waiting = true;
                        continue;
                    }
                    if res.state[s] != ResourceState::Offline {
                        continue;
                    }
                    let ready = res
                        .children
                        .iter()
                        .all(|&c| self.resources[c].state[s] == ResourceState::Online);
                    let blocked = res
                        .children
                        .iter()
                        .any(|&c| self.resources[c].state[s] == ResourceState::Faulted);
                    if ready {
                        self.request(r, s, AgentAction::Online, ResourceState::Faulted);
                        self.set_resource(r, s, ResourceState::GoingOnline);
                        waiting = true;
                    } else if !blocked {
                        waiting = true;
                    }
                }
                if !waiting {
                    self.set_target(g, s, Intent::Idle);
                }
            }
            Intent::Offline => {
                let mut waiting = false;
                for r in self.groups[g].resources.clone() {
                    let res = &self.resources[r];
                    if res.busy[s].is_some() {
                        waiting = true;
                        continue;
                    }
                    if res.state[s] != ResourceState::Online {
                        continue;
                    }
                    let ready = res.parents.iter().all(|&p| {
                        !matches!(
                            self.resources[p].state[s],
                            ResourceState::Online
                                | ResourceState::GoingOnline
                                | ResourceState::GoingOffline
                        )
                    });
                    waiting = true;
                    if ready {
                        self.request(r, s, AgentAction::Offline, ResourceState::Offline);
                        self.set_resource(r, s, ResourceState::GoingOffline);
                    }
                }
                if !waiting {
                    self.set_target(g, s, Intent::Idle);
                    self.offline_done(g, s);
                }
            }
        }
    }

    /// `g` finished going offline on `s`: carry out what was planned.
    fn offline_done(&mut self, g: usize, s: usize) {
        match self.groups[g].then {
            Some(Then::OnlineOn(t)) => {
                self.groups[g].then = None;
                match self.eligible(g, t) {
                    Ok(()) => self.begin_online(g, t),
                    Err(CommandResult::Refused { reason, .. }) => {
                        let name = self.groups[g].name.clone();
                        self.notice(
                            Severity::Error,
                            Some(name.clone()),
                            format!("switch of group {name} stopped: {reason}"),
                        )
                    }
                    Err(CommandResult::Accepted) => {}
                }
            }
            Some(Then::Failover { from }) if from == s => {
                self.groups[g].then = None;
                self.fail_over(g, s);
            }
            _ => {}
        }
    }

    fn fail_over(&mut self, g: usize, from: usize) {
        let group = &self.groups[g];
        let blocker = if group.freeze.is_frozen() {
            Some("the group is frozen".to_string())
        } else if !group.enabled {
            Some("the group is disabled".to_string())
        } else if !group.auto_fail_over {
            Some("AutoFailOver is 0".to_string())
        } else if !self.active_systems(g).is_empty() {
            Some("the group is already active on another system".to_string())
        } else {
            None
        };
        let decision = match blocker {
            Some(reason) => Err(reason),
            None => self.pick_target(g, Some(from)),
        };
        let (to, reason) = match decision {
            Ok(t) => (
                Some(t),
                format!("faulted on {}; {} policy", self.systems[from].name, {
                    self.groups[g].policy.as_str()
                }),
            ),
            Err(reason) => (None, reason),
        };
        let waits_for_child = to.is_none()
            && !self.groups[g].requires.is_empty()
            && !self.groups[g].freeze.is_frozen()
            && self.groups[g].auto_fail_over;
        let reason = if waits_for_child {
            self.groups[g].then = Some(Then::FollowChild);
            format!("{reason}; will follow the groups it requires when they come online")
        } else {
            reason
        };
        self.emit(EventKind::Failover {
            group: self.groups[g].name.clone(),
            from: self.systems[from].name.clone(),
            to: to.map(|t| self.systems[t].name.clone()),
            reason,
        });
        if let Some(t) = to {
            self.begin_online(g, t);
        }
    }

    /// Reports an agent's result.
    pub fn agent_done(
        &mut self,
        now_ms: i64,
        request: &AgentRequest,
        outcome: AgentOutcome,
    ) -> Vec<Effect> {
        self.now_ms = now_ms;
        let (r, s) = (request.resource, request.system);
        let busy = match self.resources[r].busy[s] {
            Some(b) if b.token == request.token => b,
            _ => return self.take(), // flushed or superseded
        };
        self.resources[r].busy[s] = None;
        let res_name = self.resources[r].name.clone();
        let sys_name = self.systems[s].name.clone();
        match (busy.action, outcome) {
            (AgentAction::Monitor, AgentOutcome::Observed(online)) => {
                self.observed(r, s, online);
            }
            (AgentAction::Monitor, AgentOutcome::Failed(why)) => {
                self.notice(
                    Severity::Warning,
                    Some(res_name.clone()),
                    format!("monitor of {res_name} on {sys_name} failed: {why}"),
                );
                if self.resources[r].state[s] == ResourceState::Unknown {
                    // A probe that cannot tell: treat as offline so the
                    // cluster can start, and say so.
                    self.set_resource(r, s, ResourceState::Offline);
                }
            }
            (AgentAction::Online, AgentOutcome::Failed(why)) => {
                self.notice(
                    Severity::Error,
                    Some(res_name.clone()),
                    format!("online of {res_name} on {sys_name} failed: {why}; cleaning"),
                );
                self.request(r, s, AgentAction::Clean, ResourceState::Faulted);
            }
            (AgentAction::Offline, AgentOutcome::Failed(why)) => {
                self.notice(
                    Severity::Error,
                    Some(res_name.clone()),
                    format!("offline of {res_name} on {sys_name} failed: {why}; cleaning"),
                );
                self.request(r, s, AgentAction::Clean, ResourceState::Offline);
            }
            (AgentAction::Online, _) => self.set_resource(r, s, ResourceState::Online),
            (AgentAction::Offline, _) => self.set_resource(r, s, ResourceState::Offline),
            (AgentAction::Clean, AgentOutcome::Failed(why)) => {
                self.notice(
                    Severity::Error,
                    Some(res_name.clone()),
                    format!("clean of {res_name} on {sys_name} failed: {why}; resource left FAULTED, check it by hand"),
                );
                self.set_resource(r, s, ResourceState::Faulted);
            }
            (AgentAction::Clean, _) => self.set_resource(r, s, busy.after_clean),
            (AgentAction::Monitor, AgentOutcome::Done) => {}
        }
        self.dirty.push_back((self.resources[r].group, s));
        self.settle();
        self.take()
    }

    /// A monitor (or probe) saw the resource online or offline.
    fn observed(&mut self, r: usize, s: usize, online: bool) {
        let state = self.resources[r].state[s];
        let to = match (state, online) {
            (ResourceState::Unknown, true) | (ResourceState::Offline, true) => {
                ResourceState::Online
            }
            (ResourceState::Unknown, false) => ResourceState::Offline,
            // Only a flush leaves a resource in transit without an action
            // running: the probe says where it really is.
            (ResourceState::GoingOnline | ResourceState::GoingOffline, true) => {
                ResourceState::Online
            }
            (ResourceState::GoingOnline | ResourceState::GoingOffline, false) => {
                ResourceState::Offline
            }
            (ResourceState::Online, false) => {
                let name = self.resources[r].name.clone();
                self.notice(
                    Severity::Error,
                    Some(name.clone()),
                    format!(
                        "resource {name} went offline unexpectedly on {}",
                        self.systems[s].name
                    ),
                );
                ResourceState::Faulted
            }
            _ => state,
        };
        self.set_resource(r, s, to);
    }

    /// Advances the clock: runs the monitors that are due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        self.now_ms = now_ms;
        if self.options.periodic_monitor {
            for r in 0..self.resources.len() {
                for &s in &self.groups[self.resources[r].group].systems.clone() {
                    let res = &self.resources[r];
                    if res.busy[s].is_some() || self.systems[s].state != SystemState::Running {
                        continue;
                    }
                    let interval = match res.state[s] {
                        ResourceState::Online => res.monitor_interval_ms,
                        ResourceState::Offline => res.offline_monitor_interval_ms,
                        _ => continue,
                    };
                    if now_ms - res.last_monitor_ms[s] >= interval {
                        self.request(r, s, AgentAction::Monitor, ResourceState::Unknown);
                    }
                }
            }
        }
        self.settle();
        self.take()
    }

    /// Validates and starts an operation. The answer is immediate; the
    /// effects (events, agent work) are returned with it.
    pub fn operate(&mut self, now_ms: i64, op: &Operation) -> (CommandResult, Vec<Effect>) {
        self.now_ms = now_ms;
        let result = match self.apply(op) {
            Ok(()) => CommandResult::Accepted,
            Err(refusal) => refusal,
        };
        self.settle();
        (result, self.take())
    }

    fn group_index(&self, name: &str) -> Result<usize, CommandResult> {
        self.groups
            .iter()
            .position(|g| &*g.name == name)
            .ok_or_else(|| {
                CommandResult::refused(
                    RefusalCode::UnknownObject,
                    format!("no group named {name} in cluster {}", self.config.name),
                )
            })
    }

    fn system_arg(&self, name: &str) -> Result<usize, CommandResult> {
        self.system_index(name).ok_or_else(|| {
            CommandResult::refused(
                RefusalCode::UnknownObject,
                format!("no system named {name} in cluster {}", self.config.name),
            )
        })
    }

    fn resource_arg(&self, name: &str) -> Result<usize, CommandResult> {
        self.resource_index(name).ok_or_else(|| {
            CommandResult::refused(
                RefusalCode::UnknownObject,
                format!("no resource named {name} in cluster {}", self.config.name),
            )
        })
    }

    /// Systems an operation with an optional system argument covers.
    fn systems_arg(&self, g: usize, system: &Option<Name>) -> Result<Vec<usize>, CommandResult> {
        match system {
            Some(name) => {
                let s = self.system_arg(name)?;
                if !self.groups[g].systems.contains(&s) {
                    return Err(CommandResult::refused(
                        RefusalCode::InvalidState,
                        format!(
                            "system {name} is not in the SystemList of group {}",
                            self.groups[g].name
                        ),
                    ));
                }
                Ok(vec![s])
            }
            None => Ok(self.groups[g].systems.clone()),
        }
    }

    fn apply(&mut self, op: &Operation) -> Result<(), CommandResult> {
        if op.is_simulation_only() && !self.options.simulated {
            return refuse(
                RefusalCode::NotSimulated,
                format!(
                    "{} needs a simulated cluster (haven engine --simulate, or haven sim)",
                    op.verb()
                ),
            );
        }
        match op {
            Operation::GroupOnline { group, system } => {
                let g = self.group_index(group)?;
                self.check_group_operable(g)?;
                if self.groups[g].parallel {
                    let targets = self.systems_arg(g, system)?;
                    let mut started = 0;
                    for &s in &targets {
                        if system.is_some() {
                            self.eligible(g, s)?;
                        }
                        if self.eligible(g, s).is_ok() && !is_active(self.groups[g].state[s]) {
                            self.begin_online(g, s);
                            started += 1;
                        }
                    }
                    if started == 0 && system.is_none() {
                        return refuse(
                            RefusalCode::InvalidState,
                            format!("group {group} is already online on every eligible system"),
                        );
                    }
                    return Ok(());
                }
                let active = self.active_systems(g);
                let s = match system {
                    Some(name) => self.system_arg(name)?,
                    None => self.pick_target(g, None).map_err(|reason| {
                        CommandResult::refused(RefusalCode::InvalidState, reason)
                    })?,
                };
                if let Some(&other) = active.iter().find(|&&a| a != s) {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!(
                            "group {group} is a failover group and is already active on {}; use switch to move it",
                            self.systems[other].name
                        ),
                    );
                }
                if self.groups[g].state[s] == GroupState::Online {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!(
                            "group {group} is already online on {}",
                            self.systems[s].name
                        ),
                    );
                }
                self.eligible(g, s)?;
                self.begin_online(g, s);
                Ok(())
            }
            Operation::GroupOffline { group, system } => {
                let g = self.group_index(group)?;
                self.check_group_operable(g)?;
                let systems = self.systems_arg(g, system)?;
                let targets: Vec<usize> = systems
                    .into_iter()
                    .filter(|&s| {
                        is_active(self.groups[g].state[s])
                            || self.groups[g].target[s] == Intent::Online
                    })
                    .collect();
                if targets.is_empty() {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("group {group} is not online there"),
                    );
                }
                for &s in &targets {
                    self.check_no_firm_parent_online(g, s)?;
                }
                for s in targets {
                    self.begin_offline(g, s);
                }
                Ok(())
            }
            Operation::GroupSwitch { group, to } => {
                let g = self.group_index(group)?;
                self.check_group_operable(g)?;
                if self.groups[g].parallel {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("group {group} is parallel; switch applies to failover groups"),
                    );
                }
                let from = match self.active_systems(g).as_slice() {
                    [one] => *one,
                    [] => {
                        return refuse(
                            RefusalCode::InvalidState,
                            format!("group {group} is not online anywhere; use online"),
                        )
                    }
                    _ => {
                        return refuse(
                            RefusalCode::InvalidState,
                            format!("group {group} is active on several systems; resolve the concurrency violation first"),
                        )
                    }
                };
                let target = match to {
                    Some(name) => {
                        let t = self.system_arg(name)?;
                        if t == from {
                            return refuse(
                                RefusalCode::InvalidState,
                                format!("group {group} is already on {name}"),
                            );
                        }
                        self.eligible(g, t)?;
                        t
                    }
                    None => self.pick_target(g, Some(from)).map_err(|reason| {
                        CommandResult::refused(RefusalCode::InvalidState, reason)
                    })?,
                };
                self.check_no_firm_parent_online(g, from)?;
                self.groups[g].then = Some(Then::OnlineOn(target));
                self.begin_offline(g, from);
                Ok(())
            }
            Operation::GroupFreeze { group, persistent } => {
                let g = self.group_index(group)?;
                let freeze = if *persistent {
                    Freeze::Persistent
                } else {
                    Freeze::Temporary
                };
                if self.groups[g].freeze == freeze {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("group {group} is already frozen ({freeze})"),
                    );
                }
                self.set_group_freeze(g, freeze);
                Ok(())
            }
            Operation::GroupUnfreeze { group } => {
                let g = self.group_index(group)?;
                if !self.groups[g].freeze.is_frozen() {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("group {group} is not frozen"),
                    );
                }
                self.set_group_freeze(g, Freeze::None);
                Ok(())
            }
            Operation::GroupClear { group, system } => {
                let g = self.group_index(group)?;
                let systems = self.systems_arg(g, system)?;
                let mut cleared = 0;
                for s in systems {
                    for r in self.groups[g].resources.clone() {
                        cleared += usize::from(self.clear_resource(r, s));
                    }
                }
                if cleared == 0 {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("group {group} has no faulted resource there"),
                    );
                }
                Ok(())
            }
            Operation::GroupFlush { group, system } => {
                let g = self.group_index(group)?;
                let systems = self.systems_arg(g, system)?;
                for s in systems {
                    self.set_target(g, s, Intent::Idle);
                    for r in self.groups[g].resources.clone() {
                        let busy = self.resources[r].busy[s];
                        if matches!(busy, Some(b) if b.action != AgentAction::Monitor)
                            || matches!(
                                self.resources[r].state[s],
                                ResourceState::GoingOnline | ResourceState::GoingOffline
                            )
                        {
                            // Forget the action in flight and ask the agent
                            // what is really there.
                            self.resources[r].busy[s] = None;
                            self.request(r, s, AgentAction::Monitor, ResourceState::Unknown);
                        }
                    }
                }
                self.groups[g].then = None;
                Ok(())
            }
            Operation::GroupEnable { group } | Operation::GroupDisable { group } => {
                let g = self.group_index(group)?;
                let enabled = matches!(op, Operation::GroupEnable { .. });
                if self.groups[g].enabled == enabled {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!(
                            "group {group} is already {}",
                            if enabled { "enabled" } else { "disabled" }
                        ),
                    );
                }
                self.groups[g].enabled = enabled;
                if let Some(cfg) = self.config.group_mut(group) {
                    cfg.enabled = enabled;
                }
                self.emit(EventKind::GroupEnabled {
                    group: self.groups[g].name.clone(),
                    enabled,
                });
                self.out.push(Effect::SaveConfig);
                Ok(())
            }
            Operation::ResourceOnline { resource, system } => {
                let r = self.resource_arg(resource)?;
                let s = self.system_arg(system)?;
                let g = self.resources[r].group;
                self.check_group_operable(g)?;
                self.eligible(g, s)?;
                if let Some(&other) = self
                    .active_systems(g)
                    .iter()
                    .find(|&&a| a != s && !self.groups[g].parallel)
                {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!(
                            "group {} is active on {}; a failover group's resources go online on one system",
                            self.groups[g].name, self.systems[other].name
                        ),
                    );
                }
                self.check_resource_idle(r, s, ResourceState::Offline)?;
                if let Some(&c) = self.resources[r]
                    .children
                    .iter()
                    .find(|&&c| self.resources[c].state[s] != ResourceState::Online)
                {
                    return refuse(
                        RefusalCode::Dependency,
                        format!(
                            "{resource} requires {} which is {} on {system}; bring it online first",
                            self.resources[c].name, self.resources[c].state[s]
                        ),
                    );
                }
                self.request(r, s, AgentAction::Online, ResourceState::Faulted);
                self.set_resource(r, s, ResourceState::GoingOnline);
                Ok(())
            }
            Operation::ResourceOffline { resource, system } => {
                let r = self.resource_arg(resource)?;
                let s = self.system_arg(system)?;
                let g = self.resources[r].group;
                self.check_group_operable(g)?;
                self.check_resource_idle(r, s, ResourceState::Online)?;
                if let Some(&p) = self.resources[r]
                    .parents
                    .iter()
                    .find(|&&p| self.resources[p].state[s] != ResourceState::Offline)
                {
                    return refuse(
                        RefusalCode::Dependency,
                        format!(
                            "{} requires {resource} and is {} on {system}; take it offline first",
                            self.resources[p].name, self.resources[p].state[s]
                        ),
                    );
                }
                self.request(r, s, AgentAction::Offline, ResourceState::Offline);
                self.set_resource(r, s, ResourceState::GoingOffline);
                Ok(())
            }
            Operation::ResourceClear { resource, system } => {
                let r = self.resource_arg(resource)?;
                let g = self.resources[r].group;
                let mut cleared = 0;
                for s in self.systems_arg(g, system)? {
                    cleared += usize::from(self.clear_resource(r, s));
                }
                if cleared == 0 {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("resource {resource} is not faulted there"),
                    );
                }
                Ok(())
            }
            Operation::ResourceProbe { resource, system } => {
                let r = self.resource_arg(resource)?;
                let s = self.system_arg(system)?;
                if !self.resource_systems(r).contains(&s) {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("system {system} is not in the SystemList of {resource}'s group"),
                    );
                }
                if self.systems[s].state != SystemState::Running {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("system {system} is {}", self.systems[s].state),
                    );
                }
                if self.resources[r].busy[s].is_some() {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("an agent action on {resource} is already running on {system}"),
                    );
                }
                self.request(r, s, AgentAction::Monitor, ResourceState::Unknown);
                Ok(())
            }
            Operation::SystemFreeze {
                system,
                persistent,
                evacuate,
            } => {
                let s = self.system_arg(system)?;
                let freeze = if *persistent {
                    Freeze::Persistent
                } else {
                    Freeze::Temporary
                };
                if self.systems[s].freeze == freeze {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("system {system} is already frozen ({freeze})"),
                    );
                }
                if *evacuate {
                    self.evacuate(s)?;
                }
                self.set_system_freeze(s, freeze);
                Ok(())
            }
            Operation::SystemUnfreeze { system } => {
                let s = self.system_arg(system)?;
                if !self.systems[s].freeze.is_frozen() {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("system {system} is not frozen"),
                    );
                }
                self.set_system_freeze(s, Freeze::None);
                Ok(())
            }
            Operation::SimFaultResource { resource, system } => {
                let r = self.resource_arg(resource)?;
                let s = self.system_arg(system)?;
                if self.resources[r].state[s] != ResourceState::Online {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!(
                            "resource {resource} is {} on {system}; only an online resource can fault",
                            self.resources[r].state[s]
                        ),
                    );
                }
                // What the agent's monitor would see after the fault.
                self.resources[r].busy[s] = None;
                self.observed(r, s, false);
                Ok(())
            }
            Operation::SimFaultSystem { system } => {
                let s = self.system_arg(system)?;
                if self.systems[s].state != SystemState::Running {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("system {system} is already {}", self.systems[s].state),
                    );
                }
                self.fault_system(s);
                Ok(())
            }
            Operation::SimRestoreSystem { system } => {
                let s = self.system_arg(system)?;
                if self.systems[s].state == SystemState::Running {
                    return refuse(
                        RefusalCode::InvalidState,
                        format!("system {system} is already running"),
                    );
                }
                self.set_system_state(s, SystemState::Running);
                Ok(())
            }
        }
    }

    fn check_resource_idle(
        &self,
        r: usize,
        s: usize,
        expected: ResourceState,
    ) -> Result<(), CommandResult> {
        let res = &self.resources[r];
        if res.busy[s].is_some() {
            return refuse(
                RefusalCode::InvalidState,
                format!(
                    "an agent action on {} is already running on {}",
                    res.name, self.systems[s].name
                ),
            );
        }
        if res.state[s] != expected {
            return refuse(
                RefusalCode::InvalidState,
                format!(
                    "resource {} is {} on {}, not {expected}",
                    res.name, res.state[s], self.systems[s].name
                ),
            );
        }
        Ok(())
    }

    /// Refuses to take `g` off `s` while a firm parent needs it there.
    fn check_no_firm_parent_online(&self, g: usize, s: usize) -> Result<(), CommandResult> {
        for &p in &self.groups[g].parents {
            let firm_local = self.groups[p].requires.iter().any(|&(c, cat, loc, rig)| {
                c == g
                    && cat == DependencyCategory::Online
                    && loc == DependencyLocation::Local
                    && rig != DependencyRigidity::Soft
            });
            if firm_local && is_active(self.groups[p].state[s]) {
                return refuse(
                    RefusalCode::Dependency,
                    format!(
                        "group {} requires group {} online on {}; take {} offline first",
                        self.groups[p].name,
                        self.groups[g].name,
                        self.systems[s].name,
                        self.groups[p].name
                    ),
                );
            }
        }
        Ok(())
    }

    /// Clears a fault; returns whether there was one.
    fn clear_resource(&mut self, r: usize, s: usize) -> bool {
        if self.resources[r].state[s] != ResourceState::Faulted {
            return false;
        }
        self.set_resource(r, s, ResourceState::Offline);
        if self.systems[s].state == SystemState::Running && self.resources[r].busy[s].is_none() {
            // Re-probe: what is really there now?
            self.request(r, s, AgentAction::Monitor, ResourceState::Unknown);
        }
        true
    }

    fn set_group_freeze(&mut self, g: usize, freeze: Freeze) {
        let was_persistent = self.groups[g].freeze == Freeze::Persistent;
        self.groups[g].freeze = freeze;
        let name = self.groups[g].name.clone();
        if let Some(cfg) = self.config.group_mut(&name) {
            cfg.frozen = freeze == Freeze::Persistent;
        }
        self.emit(EventKind::GroupFreeze {
            group: name,
            freeze,
        });
        if was_persistent || freeze == Freeze::Persistent {
            self.out.push(Effect::SaveConfig);
        }
    }

    fn set_system_freeze(&mut self, s: usize, freeze: Freeze) {
        let was_persistent = self.systems[s].freeze == Freeze::Persistent;
        self.systems[s].freeze = freeze;
        let name = self.systems[s].name.clone();
        if let Some(cfg) = self.config.systems.iter_mut().find(|c| c.name == name) {
            cfg.frozen = freeze == Freeze::Persistent;
        }
        self.emit(EventKind::SystemFreeze {
            system: name,
            freeze,
        });
        if was_persistent || freeze == Freeze::Persistent {
            self.out.push(Effect::SaveConfig);
        }
    }

    /// Switches every failover group active on `s` elsewhere. Refuses (and
    /// does nothing) if any of them has nowhere to go.
    fn evacuate(&mut self, s: usize) -> Result<(), CommandResult> {
        let mut moves = Vec::new();
        for g in 0..self.groups.len() {
            if self.groups[g].parallel || !is_active(self.groups[g].state[s]) {
                continue;
            }
            self.check_group_operable(g)?;
            let t = self.pick_target(g, Some(s)).map_err(|reason| {
                CommandResult::refused(
                    RefusalCode::InvalidState,
                    format!("cannot evacuate {}: {reason}", self.systems[s].name),
                )
            })?;
            moves.push((g, t));
        }
        for (g, t) in moves {
            self.groups[g].then = Some(Then::OnlineOn(t));
            self.begin_offline(g, s);
        }
        Ok(())
    }

    fn set_system_state(&mut self, s: usize, to: SystemState) {
        let from = self.systems[s].state;
        self.systems[s].state = to;
        self.emit(EventKind::SystemState {
            system: self.systems[s].name.clone(),
            from,
            to,
        });
        if to == SystemState::Running {
            // A system that (re)joins is probed like at engine start.
            for r in 0..self.resources.len() {
                if self.resource_systems(r).contains(&s) {
                    self.resources[r].busy[s] = None;
                    self.set_resource(r, s, ResourceState::Unknown);
                    self.request(r, s, AgentAction::Monitor, ResourceState::Unknown);
                }
            }
        }
    }

    /// A system died: everything on it is gone, its groups fail over.
    fn fault_system(&mut self, s: usize) {
        let was_active: Vec<usize> = (0..self.groups.len())
            .filter(|&g| {
                is_active(self.groups[g].state[s]) || self.groups[g].target[s] == Intent::Online
            })
            .collect();
        self.set_system_state(s, SystemState::Faulted);
        for g in 0..self.groups.len() {
            self.groups[g].target[s] = Intent::Idle;
            if matches!(self.groups[g].then, Some(Then::Failover { from }) if from == s) {
                self.groups[g].then = None;
            }
            for r in self.groups[g].resources.clone() {
                self.resources[r].busy[s] = None;
                if self.resources[r].state[s] != ResourceState::Faulted {
                    self.set_resource(r, s, ResourceState::Offline);
                }
            }
        }
        for g in was_active {
            if !self.groups[g].parallel {
                self.fail_over(g, s);
            }
        }
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

#[cfg(test)]
mod tests;
