//! Operations: validation (each refusal says why and changes nothing)
//! and the start of the work each one asks for.

use super::*;

impl Cluster {
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

    pub(super) fn group_index(&self, name: &str) -> Result<usize, CommandResult> {
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

    pub(super) fn system_arg(&self, name: &str) -> Result<usize, CommandResult> {
        self.system_index(name).ok_or_else(|| {
            CommandResult::refused(
                RefusalCode::UnknownObject,
                format!("no system named {name} in cluster {}", self.config.name),
            )
        })
    }

    pub(super) fn resource_arg(&self, name: &str) -> Result<usize, CommandResult> {
        self.resource_index(name).ok_or_else(|| {
            CommandResult::refused(
                RefusalCode::UnknownObject,
                format!("no resource named {name} in cluster {}", self.config.name),
            )
        })
    }

    /// Systems an operation with an optional system argument covers.
    pub(super) fn systems_arg(
        &self,
        g: usize,
        system: &Option<Name>,
    ) -> Result<Vec<usize>, CommandResult> {
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

    pub(super) fn apply(&mut self, op: &Operation) -> Result<(), CommandResult> {
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
            Operation::GroupOnline { group, system } => self.group_online(group, system),
            Operation::GroupOffline { group, system } => self.group_offline(group, system),
            Operation::GroupSwitch { group, to } => self.group_switch(group, to),
            Operation::GroupFreeze { group, persistent } => self.group_freeze(group, *persistent),
            Operation::GroupUnfreeze { group } => self.group_unfreeze(group),
            Operation::GroupClear { group, system } => self.group_clear(group, system),
            Operation::GroupFlush { group, system } => self.group_flush(group, system),
            Operation::GroupEnable { group } => self.group_enable(group, true),
            Operation::GroupDisable { group } => self.group_enable(group, false),
            Operation::ResourceOnline { resource, system } => {
                self.resource_online(resource, system)
            }
            Operation::ResourceOffline { resource, system } => {
                self.resource_offline(resource, system)
            }
            Operation::ResourceClear { resource, system } => self.resource_clear(resource, system),
            Operation::ResourceProbe { resource, system } => self.resource_probe(resource, system),
            Operation::SystemFreeze {
                system,
                persistent,
                evacuate,
            } => self.system_freeze(system, *persistent, *evacuate),
            Operation::SystemUnfreeze { system } => self.system_unfreeze(system),
            Operation::SimFaultResource { resource, system } => {
                self.sim_fault_resource(resource, system)
            }
            Operation::SimFaultSystem { system } => self.sim_fault_system(system),
            Operation::SimRestoreSystem { system } => self.sim_restore_system(system),
        }
    }

    pub(super) fn group_online(
        &mut self,
        group: &Name,
        system: &Option<Name>,
    ) -> Result<(), CommandResult> {
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
            None => self
                .pick_target(g, None)
                .map_err(|reason| CommandResult::refused(RefusalCode::InvalidState, reason))?,
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

    pub(super) fn group_offline(
        &mut self,
        group: &Name,
        system: &Option<Name>,
    ) -> Result<(), CommandResult> {
        let g = self.group_index(group)?;
        self.check_group_operable(g)?;
        let systems = self.systems_arg(g, system)?;
        let targets: Vec<usize> = systems
            .into_iter()
            .filter(|&s| {
                is_active(self.groups[g].state[s]) || self.groups[g].target[s] == Intent::Online
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

    pub(super) fn group_switch(
        &mut self,
        group: &Name,
        to: &Option<Name>,
    ) -> Result<(), CommandResult> {
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
            None => self
                .pick_target(g, Some(from))
                .map_err(|reason| CommandResult::refused(RefusalCode::InvalidState, reason))?,
        };
        self.check_no_firm_parent_online(g, from)?;
        self.groups[g].then = Some(Then::OnlineOn(target));
        self.begin_offline(g, from);
        Ok(())
    }

    pub(super) fn group_freeze(
        &mut self,
        group: &Name,
        persistent: bool,
    ) -> Result<(), CommandResult> {
        let g = self.group_index(group)?;
        let freeze = if persistent {
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

    pub(super) fn group_unfreeze(&mut self, group: &Name) -> Result<(), CommandResult> {
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

    pub(super) fn group_clear(
        &mut self,
        group: &Name,
        system: &Option<Name>,
    ) -> Result<(), CommandResult> {
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

    pub(super) fn group_flush(
        &mut self,
        group: &Name,
        system: &Option<Name>,
    ) -> Result<(), CommandResult> {
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

    pub(super) fn group_enable(
        &mut self,
        group: &Name,
        enabled: bool,
    ) -> Result<(), CommandResult> {
        let g = self.group_index(group)?;
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

    pub(super) fn resource_online(
        &mut self,
        resource: &Name,
        system: &Name,
    ) -> Result<(), CommandResult> {
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
        self.start_action(r, s, AgentAction::Online);
        Ok(())
    }

    pub(super) fn resource_offline(
        &mut self,
        resource: &Name,
        system: &Name,
    ) -> Result<(), CommandResult> {
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
        self.start_action(r, s, AgentAction::Offline);
        Ok(())
    }

    pub(super) fn resource_clear(
        &mut self,
        resource: &Name,
        system: &Option<Name>,
    ) -> Result<(), CommandResult> {
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

    pub(super) fn resource_probe(
        &mut self,
        resource: &Name,
        system: &Name,
    ) -> Result<(), CommandResult> {
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

    pub(super) fn system_freeze(
        &mut self,
        system: &Name,
        persistent: bool,
        evacuate: bool,
    ) -> Result<(), CommandResult> {
        let s = self.system_arg(system)?;
        let freeze = if persistent {
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
        if evacuate {
            self.evacuate(s)?;
        }
        self.set_system_freeze(s, freeze);
        Ok(())
    }

    pub(super) fn system_unfreeze(&mut self, system: &Name) -> Result<(), CommandResult> {
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

    pub(super) fn sim_fault_resource(
        &mut self,
        resource: &Name,
        system: &Name,
    ) -> Result<(), CommandResult> {
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

    pub(super) fn sim_fault_system(&mut self, system: &Name) -> Result<(), CommandResult> {
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

    pub(super) fn sim_restore_system(&mut self, system: &Name) -> Result<(), CommandResult> {
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

    pub(super) fn check_resource_idle(
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
    pub(super) fn check_no_firm_parent_online(
        &self,
        g: usize,
        s: usize,
    ) -> Result<(), CommandResult> {
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
    pub(super) fn clear_resource(&mut self, r: usize, s: usize) -> bool {
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

    pub(super) fn set_group_freeze(&mut self, g: usize, freeze: Freeze) {
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

    pub(super) fn set_system_freeze(&mut self, s: usize, freeze: Freeze) {
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
    pub(super) fn evacuate(&mut self, s: usize) -> Result<(), CommandResult> {
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

    pub(super) fn set_system_state(&mut self, s: usize, to: SystemState) {
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
    pub(super) fn fault_system(&mut self, s: usize) {
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
}
