//! The rule engine: which conditions of the fleet are alerts, when they
//! are raised and cleared, and when an alert is flapping. Pure: it reads
//! no clock (the caller passes `now`), does no I/O, and answers each input
//! with the [`Change`]s it made, which the caller persists and notifies.
//!
//! Rules (severity in brackets):
//! - `faulted_resource` [warning]: a resource is FAULTED on a system;
//!   clears when it is not (cleared, or the resource went away).
//! - `faulted_group` [critical]: a group is FAULTED on a system.
//! - `failover` [warning; critical when no system could take the group]:
//!   the engine failed a group over away from a system; clears when the
//!   group is next ONLINE on some system (or is gone).
//! - `concurrency_violation` [critical]: a failover group is online on
//!   more than one system; clears when it no longer is.
//! - `faulted_system` [critical] / `exited_system` [warning]: a system is
//!   FAULTED / EXITED; clears when it runs again.
//! - `disconnected_cluster` [warning]: the server's link to a cluster has
//!   not been connected (down, or stale: silent) for `disconnect_grace`;
//!   clears when it is connected again. A shorter blip raises nothing.
//! - `frozen_group` / `frozen_system` [info]: an object has been frozen
//!   for `frozen_after`; clears when it is unfrozen.
//!
//! Invariants:
//! - one condition is one alert: at most one alert of a [`Key`] (cluster,
//!   kind, object, system) is open; the condition coming back after it
//!   cleared is a new alert (a new id);
//! - ids grow in the order alerts are raised, after the highest loaded;
//! - every change is reported once, with the alert as it is after it.
//!
//! Flapping: each raise and each clear of a key is a change; when a key
//! has had more than `flap_changes` changes within `flap_window`, it is
//! flapping: the alert is marked so, one `flapping` notification goes out,
//! and the raises and clears after it are recorded but not notified
//! ("suppressed"). It settles when the key has not changed for a whole
//! `flap_window`: its alert (open or, if it is clear, the last one) is
//! notified once more as `settled`, with its state then.
//!
//! Conditions come two ways: as edges from each event (nothing is missed
//! between two reads of the state, so flapping counts every change) and
//! as levels from a whole snapshot ([`Rules::reconcile`], after a resync,
//! at start, or when updates were lost). Both are idempotent, so applying
//! either again changes nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};

use haven_model::{
    ClusterSnapshot, Event, EventKind, GroupState, Name, ResourceState, SystemState,
};
use haven_store::{AlertRecord, AlertSeverity};

use crate::fleet::{LinkState, LinkStatus};

/// What kind of condition an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    FaultedResource,
    FaultedGroup,
    Failover,
    ConcurrencyViolation,
    FaultedSystem,
    ExitedSystem,
    DisconnectedCluster,
    FrozenGroup,
    FrozenSystem,
}

impl AlertKind {
    pub const ALL: [AlertKind; 9] = [
        AlertKind::FaultedResource,
        AlertKind::FaultedGroup,
        AlertKind::Failover,
        AlertKind::ConcurrencyViolation,
        AlertKind::FaultedSystem,
        AlertKind::ExitedSystem,
        AlertKind::DisconnectedCluster,
        AlertKind::FrozenGroup,
        AlertKind::FrozenSystem,
    ];

    /// The stored and wire name (`faulted_group`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::FaultedResource => "faulted_resource",
            AlertKind::FaultedGroup => "faulted_group",
            AlertKind::Failover => "failover",
            AlertKind::ConcurrencyViolation => "concurrency_violation",
            AlertKind::FaultedSystem => "faulted_system",
            AlertKind::ExitedSystem => "exited_system",
            AlertKind::DisconnectedCluster => "disconnected_cluster",
            AlertKind::FrozenGroup => "frozen_group",
            AlertKind::FrozenSystem => "frozen_system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a snapshot says if the condition holds (all but failovers,
    /// which are events, and links, which are not in a snapshot).
    fn is_of_state(self) -> bool {
        !matches!(self, AlertKind::Failover | AlertKind::DisconnectedCluster)
    }
}

/// One condition of one object: at most one open alert each.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub cluster: String,
    pub kind: AlertKind,
    pub object: Option<String>,
    pub system: Option<String>,
}

impl Key {
    fn new(cluster: &str, kind: AlertKind, object: Option<&str>, system: Option<&str>) -> Key {
        Key {
            cluster: cluster.to_string(),
            kind,
            object: object.map(String::from),
            system: system.map(String::from),
        }
    }

    /// The smallest key of a cluster (keys sort by cluster first).
    fn first_of(cluster: &str) -> Key {
        Key::new(cluster, AlertKind::ALL[0], None, None)
    }

    /// The key of a stored alert (`None`: a kind this build does not know).
    pub fn of(alert: &AlertRecord) -> Option<Key> {
        Some(Key {
            cluster: alert.cluster.clone(),
            kind: AlertKind::parse(&alert.kind)?,
            object: alert.object.clone(),
            system: alert.system.clone(),
        })
    }
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: Key,
    pub severity: AlertSeverity,
    pub message: String,
    /// The service group concerned, if any.
    pub group: Option<String>,
    /// Since when it holds (for the conditions raised after a delay).
    pub since_ms: i64,
}

/// The engine's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSettings {
    pub disconnect_grace_ms: i64,
    /// `None`: frozen objects never raise alerts.
    pub frozen_after_ms: Option<i64>,
    /// 0: nothing is ever flapping.
    pub flap_changes: usize,
    pub flap_window_ms: i64,
}

impl RuleSettings {
    pub fn of(section: &super::AlertsSection) -> RuleSettings {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        RuleSettings {
            disconnect_grace_ms: ms(section.disconnect_grace_secs),
            frozen_after_ms: (section.frozen_after_secs > 0).then(|| ms(section.frozen_after_secs)),
            flap_changes: section.flap_changes,
            flap_window_ms: ms(section.flap_window_secs.max(1)),
        }
    }

    /// How long a condition must hold before it is raised (`None`: at once).
    fn delay(&self, kind: AlertKind) -> Option<i64> {
        match kind {
            AlertKind::DisconnectedCluster => Some(self.disconnect_grace_ms),
            AlertKind::FrozenGroup | AlertKind::FrozenSystem => self.frozen_after_ms,
            _ => None,
        }
    }
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Raised,
    Cleared,
    /// It began flapping (notified once instead of its raises and clears).
    Flapping,
    /// It stopped flapping (notified with its state then).
    Settled,
    Acknowledged,
}

impl Transition {
    /// The name notifications and the delivery log use.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raised => "raised",
            Transition::Cleared => "cleared",
            Transition::Flapping => "flapping",
            Transition::Settled => "settled",
            Transition::Acknowledged => "acknowledged",
        }
    }
}

/// One change the engine made, with the alert as it is after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub alert: AlertRecord,
    pub transition: Transition,
    /// Not notified because the alert is flapping.
    pub suppressed: bool,
}

impl Change {
    /// Whether channels are told about it.
    pub fn notifies(&self) -> bool {
        self.transition != Transition::Acknowledged && !self.suppressed
    }
}

/// The answer to an acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    Done(Change),
    /// Someone already acknowledged it (this is how it stands).
    Already(AlertRecord),
    /// No open alert has that id (it may be a cleared one, in the store).
    NotOpen,
}

#[derive(Debug, Default)]
struct Flap {
    /// When the key was raised or cleared, within the window.
    changes: VecDeque<i64>,
    flapping: bool,
    /// The key's latest alert.
    last: Option<AlertRecord>,
}

/// The engine's state: open alerts, conditions waiting for their delay,
/// and each key's recent changes.
#[derive(Debug)]
pub struct Rules {
    settings: RuleSettings,
    open: BTreeMap<Key, AlertRecord>,
    by_id: HashMap<i64, Key>,
    pending: BTreeMap<Key, Condition>,
    flaps: HashMap<Key, Flap>,
    next_id: i64,
}

/// A duration for messages: `30 s`, `5 min`, `24 h`.
fn human(ms: i64) -> String {
    let s = ms / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{} h", s / 3600)
    }
}

impl Rules {
    pub fn new(settings: RuleSettings) -> Rules {
        Rules {
            settings,
            open: BTreeMap::new(),
            by_id: HashMap::new(),
            pending: BTreeMap::new(),
            flaps: HashMap::new(),
            next_id: 1,
        }
    }

    /// Takes up where a previous run left off: its open alerts, its
    /// alerts of the last flap window (to go on counting changes), and the
    /// highest id it used. Alerts of kinds this build does not know are
    /// left alone.
    pub fn load(
        &mut self,
        open: Vec<AlertRecord>,
        recent: Vec<AlertRecord>,
        max_id: i64,
        now: i64,
    ) {
        self.next_id = self.next_id.max(max_id + 1);
        let since = now - self.settings.flap_window_ms;
        let mut recent = recent;
        recent.sort_by_key(|a| a.id);
        for a in recent {
            let Some(key) = Key::of(&a) else { continue };
            let flap = self.flaps.entry(key).or_default();
            for t in [Some(a.raised_ms), a.cleared_ms].into_iter().flatten() {
                if t >= since {
                    flap.changes.push_back(t);
                }
            }
            flap.flapping = a.flapping;
            flap.last = Some(a);
        }
        for flap in self.flaps.values_mut() {
            flap.changes.make_contiguous().sort_unstable();
        }
        for a in open {
            let Some(key) = Key::of(&a) else { continue };
            self.by_id.insert(a.id, key.clone());
            self.open.insert(key, a);
        }
    }

    /// The open alerts, by key.
    pub fn open(&self) -> impl Iterator<Item = &AlertRecord> {
        self.open.values()
    }

    /// An open alert by id.
    pub fn get(&self, id: i64) -> Option<&AlertRecord> {
        self.open.get(self.by_id.get(&id)?)
    }

    /// Whether `group` of `cluster` has an open concurrency alert (then a
    /// change of its states may end it: see [`Rules::recheck_concurrency`]).
    pub fn violation_open(&self, cluster: &str, group: &str) -> bool {
        self.open.contains_key(&Key::new(
            cluster,
            AlertKind::ConcurrencyViolation,
            Some(group),
            None,
        ))
    }

    /// Whether an alert of this key is open.
    pub fn is_open(&self, key: &Key) -> bool {
        self.open.contains_key(key)
    }

    /// Records who acknowledged an open alert.
    pub fn acknowledge(&mut self, id: i64, user: &str, now: i64) -> Ack {
        let Some(alert) = self.by_id.get(&id).and_then(|k| self.open.get_mut(k)) else {
            return Ack::NotOpen;
        };
        if alert.acknowledged_by.is_some() {
            return Ack::Already(alert.clone());
        }
        alert.acknowledged_by = Some(user.to_string());
        alert.acknowledged_ms = Some(now);
        Ack::Done(Change {
            alert: alert.clone(),
            transition: Transition::Acknowledged,
            suppressed: false,
        })
    }

    /// Sets whether a condition holds: raises (or starts its delay) or
    /// clears its alert.
    pub fn set(&mut self, key: Key, holds: Option<Condition>, now: i64, out: &mut Vec<Change>) {
        match holds {
            Some(cond) => {
                if self.open.contains_key(&key) {
                    return;
                }
                match self.settings.delay(key.kind) {
                    None => self.raise(cond, now, out),
                    Some(delay) => {
                        let since = self
                            .pending
                            .entry(key.clone())
                            .and_modify(|p| {
                                p.message = cond.message.clone();
                                p.severity = cond.severity;
                            })
                            .or_insert(cond)
                            .since_ms;
                        if now - since >= delay {
                            if let Some(cond) = self.pending.remove(&key) {
                                self.raise(cond, now, out);
                            }
                        }
                    }
                }
            }
            None => {
                self.pending.remove(&key);
                if let Some(alert) = self.open.remove(&key) {
                    self.clear(key, alert, now, out);
                }
            }
        }
    }

    fn raise(&mut self, cond: Condition, now: i64, out: &mut Vec<Change>) {
        let (flapping, started) = self.note_change(&cond.key, now);
        let alert = AlertRecord {
            id: self.next_id,
            cluster: cond.key.cluster.clone(),
            kind: cond.key.kind.as_str().to_string(),
            object: cond.key.object.clone(),
            system: cond.key.system.clone(),
            service_group: cond.group,
            severity: cond.severity,
            message: cond.message,
            raised_ms: now,
            cleared_ms: None,
            acknowledged_by: None,
            acknowledged_ms: None,
            flapping,
        };
        self.next_id += 1;
        self.by_id.insert(alert.id, cond.key.clone());
        self.open.insert(cond.key.clone(), alert.clone());
        self.changed(&cond.key, alert, Transition::Raised, flapping, started, out);
    }

    fn clear(&mut self, key: Key, mut alert: AlertRecord, now: i64, out: &mut Vec<Change>) {
        let (flapping, started) = self.note_change(&key, now);
        alert.cleared_ms = Some(now);
        alert.flapping |= flapping;
        self.by_id.remove(&alert.id);
        self.changed(&key, alert, Transition::Cleared, flapping, started, out);
    }

    fn changed(
        &mut self,
        key: &Key,
        alert: AlertRecord,
        transition: Transition,
        flapping: bool,
        started: bool,
        out: &mut Vec<Change>,
    ) {
        if let Some(flap) = self.flaps.get_mut(key) {
            flap.last = Some(alert.clone());
        }
        out.push(Change {
            alert: alert.clone(),
            transition,
            suppressed: flapping,
        });
        if started {
            out.push(Change {
                alert,
                transition: Transition::Flapping,
                suppressed: false,
            });
        }
    }

    /// Counts a raise or clear of `key`: whether it is flapping now, and
    /// whether it just began.
    fn note_change(&mut self, key: &Key, now: i64) -> (bool, bool) {
        if self.settings.flap_changes == 0 {
            return (false, false);
        }
        let window = self.settings.flap_window_ms;
        let flap = self.flaps.entry(key.clone()).or_default();
        flap.changes.push_back(now);
        while flap.changes.front().is_some_and(|t| *t <= now - window) {
            flap.changes.pop_front();
        }
        if !flap.flapping && flap.changes.len() > self.settings.flap_changes {
            flap.flapping = true;
            return (true, true);
        }
        (flap.flapping, false)
    }

    /// What time does: conditions whose delay has passed are raised, and
    /// flapping keys quiet for a whole window settle.
    pub fn tick(&mut self, now: i64, out: &mut Vec<Change>) {
        let due: Vec<Key> = self
            .pending
            .iter()
            .filter(|(k, c)| {
                self.settings
                    .delay(k.kind)
                    .is_none_or(|d| now - c.since_ms >= d)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(cond) = self.pending.remove(&key) {
                self.raise(cond, now, out);
            }
        }
        let window = self.settings.flap_window_ms;
        let mut settled = Vec::new();
        self.flaps.retain(|key, flap| {
            let last_change = flap.changes.back().copied();
            let quiet = last_change.is_none_or(|t| now - t >= window);
            if flap.flapping && quiet {
                flap.flapping = false;
                flap.changes.clear();
                settled.push((key.clone(), flap.last.clone()));
            }
            // Forget keys with nothing left to count.
            flap.flapping || !quiet
        });
        for (key, last) in settled {
            let alert = match self.open.get_mut(&key) {
                Some(open) => {
                    open.flapping = false;
                    Some(open.clone())
                }
                None => last,
            };
            if let Some(alert) = alert {
                out.push(Change {
                    alert,
                    transition: Transition::Settled,
                    suppressed: false,
                });
            }
        }
    }

    /// An event of `cluster`: the conditions it starts or ends.
    pub fn event(&mut self, cluster: &str, event: &Event, now: i64, out: &mut Vec<Change>) {
        match &event.kind {
            EventKind::ResourceState {
                group,
                resource,
                system,
                to,
                ..
            } => {
                let key = Key::new(
                    cluster,
                    AlertKind::FaultedResource,
                    Some(resource),
                    Some(system),
                );
                let cond = (*to == ResourceState::Faulted)
                    .then(|| faulted_resource(key.clone(), group, resource, system, now));
                self.set(key, cond, now, out);
            }
            EventKind::GroupState {
                group, system, to, ..
            } => {
                let key = Key::new(cluster, AlertKind::FaultedGroup, Some(group), Some(system));
                let cond = (*to == GroupState::Faulted)
                    .then(|| faulted_group(key.clone(), group, system, now));
                self.set(key, cond, now, out);
                if *to == GroupState::Online {
                    for key in self.open_where(cluster, |k| {
                        k.kind == AlertKind::Failover && k.object.as_deref() == Some(group)
                    }) {
                        self.set(key, None, now, out);
                    }
                }
            }
            EventKind::SystemState { system, to, .. } => {
                for (kind, state) in [
                    (AlertKind::FaultedSystem, SystemState::Faulted),
                    (AlertKind::ExitedSystem, SystemState::Exited),
                ] {
                    let key = Key::new(cluster, kind, None, Some(system));
                    let cond = (*to == state).then(|| system_down(key.clone(), system, now));
                    self.set(key, cond, now, out);
                }
            }
            EventKind::GroupFreeze { group, freeze } => {
                let key = Key::new(cluster, AlertKind::FrozenGroup, Some(group), None);
                let since = event.time_ms.min(now);
                let cond = (freeze.is_frozen() && self.settings.frozen_after_ms.is_some())
                    .then(|| self.frozen(key.clone(), Some(group), "group", group, since));
                self.set(key, cond, now, out);
            }
            EventKind::SystemFreeze { system, freeze } => {
                let key = Key::new(cluster, AlertKind::FrozenSystem, None, Some(system));
                let since = event.time_ms.min(now);
                let cond = (freeze.is_frozen() && self.settings.frozen_after_ms.is_some())
                    .then(|| self.frozen(key.clone(), None, "system", system, since));
                self.set(key, cond, now, out);
            }
            EventKind::ConcurrencyViolation { group, systems } => {
                let key = Key::new(cluster, AlertKind::ConcurrencyViolation, Some(group), None);
                let cond = concurrency(key.clone(), group, systems, now);
                self.set(key, Some(cond), now, out);
            }
            EventKind::Failover {
                group,
                from,
                to,
                reason,
            } => {
                let key = Key::new(cluster, AlertKind::Failover, Some(group), Some(from));
                let (severity, message) = match to {
                    Some(to) => (
                        AlertSeverity::Warning,
                        format!("group {group} failed over from {from} to {to} ({reason})"),
                    ),
                    None => (
                        AlertSeverity::Critical,
                        format!(
                            "group {group} faulted on {from} and could not fail over: {reason}"
                        ),
                    ),
                };
                let cond = Condition {
                    key: key.clone(),
                    severity,
                    message,
                    group: Some(group.to_string()),
                    since_ms: now,
                };
                self.set(key, Some(cond), now, out);
            }
            EventKind::GroupEnabled { .. } | EventKind::Notice { .. } => {}
        }
    }

    /// Whether `group` of `cluster` still violates concurrency, after a
    /// change of its states (`active` is where it is online now, if it
    /// violates). Only an open alert is looked at.
    pub fn recheck_concurrency(
        &mut self,
        cluster: &str,
        snap: &ClusterSnapshot,
        group: &str,
        now: i64,
        out: &mut Vec<Change>,
    ) {
        let key = Key::new(cluster, AlertKind::ConcurrencyViolation, Some(group), None);
        if self.open.contains_key(&key) {
            let cond = violation(snap, group).map(|on| concurrency(key.clone(), group, &on, now));
            self.set(key, cond, now, out);
        }
    }

    /// The state of a cluster's link.
    pub fn link(&mut self, cluster: &str, status: &LinkStatus, now: i64, out: &mut Vec<Change>) {
        let key = Key::new(cluster, AlertKind::DisconnectedCluster, None, None);
        let down = status.state != LinkState::Connected;
        let cond = down.then(|| {
            let why = status
                .last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            Condition {
                key: key.clone(),
                severity: AlertSeverity::Warning,
                message: format!(
                    "the server has had no live link to cluster {cluster} for more than {} (now {}{why})",
                    human(self.settings.disconnect_grace_ms),
                    status.state.as_str()
                ),
                group: None,
                since_ms: status.since_ms.min(now),
            }
        });
        self.set(key, cond, now, out);
    }

    /// Makes the open alerts of `cluster` match a whole snapshot: raises
    /// what holds, clears what no longer does (see the module doc).
    pub fn reconcile(
        &mut self,
        cluster: &str,
        snap: &ClusterSnapshot,
        now: i64,
        out: &mut Vec<Change>,
    ) {
        let holds = self.conditions_of(cluster, snap, now);
        let gone: Vec<Key> = self
            .open_where(cluster, |k| k.kind.is_of_state() && !holds.contains_key(k))
            .into_iter()
            .chain(
                self.pending
                    .range(Key::first_of(cluster)..)
                    .take_while(|(k, _)| k.cluster == cluster)
                    .filter(|(k, _)| k.kind.is_of_state() && !holds.contains_key(*k))
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        // A failover is over once its group is online somewhere (or gone).
        let over = self.open_where(cluster, |k| {
            k.kind == AlertKind::Failover
                && k.object.as_deref().is_none_or(|g| {
                    snap.group(g)
                        .is_none_or(|g| g.states.iter().any(|(_, st)| *st == GroupState::Online))
                })
        });
        for key in gone.into_iter().chain(over) {
            self.set(key, None, now, out);
        }
        for (key, cond) in holds {
            self.set(key, Some(cond), now, out);
        }
    }

    /// A cluster is no longer managed: its alerts clear.
    pub fn removed(&mut self, cluster: &str, now: i64, out: &mut Vec<Change>) {
        let keys: Vec<Key> = self
            .open_where(cluster, |_| true)
            .into_iter()
            .chain(
                self.pending
                    .range(Key::first_of(cluster)..)
                    .take_while(|(k, _)| k.cluster == cluster)
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        for key in keys {
            self.set(key, None, now, out);
        }
    }

    /// The clusters with open alerts or waiting conditions.
    pub fn clusters(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .open
            .keys()
            .chain(self.pending.keys())
            .map(|k| k.cluster.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn open_where(&self, cluster: &str, pred: impl Fn(&Key) -> bool) -> Vec<Key> {
        self.open
            .range(Key::first_of(cluster)..)
            .take_while(|(k, _)| k.cluster == cluster)
            .filter(|(k, _)| pred(k))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn frozen(
        &self,
        key: Key,
        group: Option<&str>,
        what: &str,
        name: &str,
        since: i64,
    ) -> Condition {
        Condition {
            key,
            severity: AlertSeverity::Info,
            message: format!(
                "{what} {name} has been frozen for more than {}",
                human(self.settings.frozen_after_ms.unwrap_or(0))
            ),
            group: group.map(String::from),
            since_ms: since,
        }
    }

    /// Every state condition a snapshot shows.
    fn conditions_of(
        &self,
        cluster: &str,
        snap: &ClusterSnapshot,
        now: i64,
    ) -> BTreeMap<Key, Condition> {
        let mut out = BTreeMap::new();
        let mut put = |c: Condition| {
            out.insert(c.key.clone(), c);
        };
        let frozen = self.settings.frozen_after_ms.is_some();
        for s in &snap.systems {
            let kind = match s.state {
                SystemState::Faulted => Some(AlertKind::FaultedSystem),
                SystemState::Exited => Some(AlertKind::ExitedSystem),
                SystemState::Running => None,
            };
            if let Some(kind) = kind {
                put(system_down(
                    Key::new(cluster, kind, None, Some(&s.name)),
                    &s.name,
                    now,
                ));
            }
            if frozen && s.freeze.is_frozen() {
                let key = Key::new(cluster, AlertKind::FrozenSystem, None, Some(&s.name));
                put(self.frozen(key, None, "system", &s.name, now));
            }
        }
        for g in &snap.groups {
            for (sys, st) in &g.states {
                if *st == GroupState::Faulted {
                    let key = Key::new(cluster, AlertKind::FaultedGroup, Some(&g.name), Some(sys));
                    put(faulted_group(key, &g.name, sys, now));
                }
            }
            for r in &g.resources {
                for (sys, st) in &r.states {
                    if *st == ResourceState::Faulted {
                        let key = Key::new(
                            cluster,
                            AlertKind::FaultedResource,
                            Some(&r.name),
                            Some(sys),
                        );
                        put(faulted_resource(key, &g.name, &r.name, sys, now));
                    }
                }
            }
            if let Some(on) = violation(snap, &g.name) {
                let key = Key::new(
                    cluster,
                    AlertKind::ConcurrencyViolation,
                    Some(&g.name),
                    None,
                );
                put(concurrency(key, &g.name, &on, now));
            }
            if frozen && g.freeze.is_frozen() {
                let key = Key::new(cluster, AlertKind::FrozenGroup, Some(&g.name), None);
                put(self.frozen(key, Some(&g.name), "group", &g.name, now));
            }
        }
        out
    }
}

/// Where a failover group is online or partial, if that is more than one
/// system.
pub fn violation(snap: &ClusterSnapshot, group: &str) -> Option<Vec<Name>> {
    let parallel = snap.config.group(group).is_some_and(|g| g.parallel);
    let on = snap.group_active_on(group);
    (!parallel && on.len() > 1).then_some(on)
}

fn faulted_resource(key: Key, group: &str, resource: &str, system: &str, now: i64) -> Condition {
    Condition {
        key,
        severity: AlertSeverity::Warning,
        message: format!("resource {resource} of group {group} faulted on {system}"),
        group: Some(group.to_string()),
        since_ms: now,
    }
}

fn faulted_group(key: Key, group: &str, system: &str, now: i64) -> Condition {
    Condition {
        key,
        severity: AlertSeverity::Critical,
        message: format!("group {group} faulted on {system}"),
        group: Some(group.to_string()),
        since_ms: now,
    }
}

fn system_down(key: Key, system: &str, now: i64) -> Condition {
    let (severity, what) = if key.kind == AlertKind::FaultedSystem {
        (AlertSeverity::Critical, "faulted")
    } else {
        (AlertSeverity::Warning, "left the cluster (exited)")
    };
    Condition {
        key,
        severity,
        message: format!("system {system} {what}"),
        group: None,
        since_ms: now,
    }
}

fn concurrency(key: Key, group: &str, systems: &[Name], now: i64) -> Condition {
    let on: Vec<&str> = systems.iter().map(|s| &**s).collect();
    Condition {
        key,
        severity: AlertSeverity::Critical,
        message: format!(
            "failover group {group} is online on more than one system ({})",
            on.join(", ")
        ),
        group: Some(group.to_string()),
        since_ms: now,
    }
}

#[cfg(test)]
mod tests;
