//! The rules that move a cluster: deriving group states, reacting to
//! faults, failing over, bringing groups online bottom-up and offline
//! top-down, and handling agent results and monitor ticks.

use super::*;

impl Cluster {
    /// Takes the effects produced so far.
    pub(super) fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    pub(super) fn emit(&mut self, kind: EventKind) {
        self.seq += 1;
        self.out.push(Effect::Emit(Event {
            seq: self.seq,
            time_ms: self.now_ms,
            kind,
        }));
    }

    pub(super) fn notice(&mut self, severity: Severity, object: Option<Name>, message: String) {
        self.emit(EventKind::Notice {
            severity,
            object,
            message,
        });
    }

    pub(super) fn request(
        &mut self,
        r: usize,
        s: usize,
        action: AgentAction,
        after_clean: ResourceState,
    ) {
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

    /// Starts a resource's online or offline entry point; the resource is
    /// in transit until the agent answers. A failed online is cleaned and
    /// leaves the resource FAULTED; a failed offline is cleaned and leaves
    /// it OFFLINE (or FAULTED if the clean fails too).
    pub(super) fn start_action(&mut self, r: usize, s: usize, action: AgentAction) {
        let (transit, after_clean) = match action {
            AgentAction::Online => (ResourceState::GoingOnline, ResourceState::Faulted),
            _ => (ResourceState::GoingOffline, ResourceState::Offline),
        };
        self.request(r, s, action, after_clean);
        self.set_resource(r, s, transit);
    }

    /// Changes a resource's state, emits it, and re-derives its group.
    pub(super) fn set_resource(&mut self, r: usize, s: usize, to: ResourceState) {
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

    pub(super) fn refresh_group(&mut self, g: usize, s: usize) {
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

    pub(super) fn check_concurrency(&mut self, g: usize) {
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
    pub(super) fn on_group_fault(&mut self, g: usize, s: usize, was: GroupState) {
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
    pub(super) fn on_group_online(&mut self, g: usize, s: usize) {
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
    pub(super) fn on_group_left(&mut self, g: usize, s: usize) {
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
    pub(super) fn requirements_met(&self, g: usize, s: usize) -> bool {
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

    pub(super) fn group_faulted_on(&self, g: usize, s: usize) -> bool {
        self.groups[g].state[s] == GroupState::Faulted
    }

    /// Whether `g` may go online on `s` now; the refusal says why not.
    pub(super) fn eligible(&self, g: usize, s: usize) -> Result<(), CommandResult> {
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

    pub(super) fn check_group_operable(&self, g: usize) -> Result<(), CommandResult> {
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
    pub(super) fn active_systems(&self, g: usize) -> Vec<usize> {
        self.groups[g]
            .systems
            .iter()
            .copied()
            .filter(|&s| {
                is_active(self.groups[g].state[s]) || self.groups[g].target[s] == Intent::Online
            })
            .collect()
    }

    pub(super) fn begin_online(&mut self, g: usize, s: usize) {
        self.set_target(g, s, Intent::Online);
    }

    pub(super) fn begin_offline(&mut self, g: usize, s: usize) {
        self.set_target(g, s, Intent::Offline);
    }

    /// Changes what the engine does with `g` on `s`; the group's state
    /// follows (STARTING/STOPPING).
    pub(super) fn set_target(&mut self, g: usize, s: usize, target: Intent) {
        if self.groups[g].target[s] != target {
            self.groups[g].target[s] = target;
            self.refresh_group(g, s);
        }
        self.dirty.push_back((g, s));
    }

    /// Picks the system a failover group should go to, by its policy.
    pub(super) fn pick_target(&self, g: usize, exclude: Option<usize>) -> Result<usize, String> {
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
    pub(super) fn settle(&mut self) {
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

    pub(super) fn all_probed(&self) -> bool {
        self.resources.iter().all(|r| {
            self.groups[r.group].systems.iter().all(|&s| {
                self.systems[s].state != SystemState::Running
                    || r.state[s] != ResourceState::Unknown
            })
        })
    }

    pub(super) fn autostart(&mut self) {
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
    pub(super) fn progress(&mut self, g: usize, s: usize) {
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
                        self.start_action(r, s, AgentAction::Online);
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
                        self.start_action(r, s, AgentAction::Offline);
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
    pub(super) fn offline_done(&mut self, g: usize, s: usize) {
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

    pub(super) fn fail_over(&mut self, g: usize, from: usize) {
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
    pub(super) fn observed(&mut self, r: usize, s: usize, online: bool) {
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
}
