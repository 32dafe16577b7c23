//! The fleet state: an in-memory model of every managed cluster, kept
//! consistent with the event order, with the indexes fleet-wide queries
//! need (counts by state, faulted objects, frozen objects, systems by name).
//!
//! Invariants:
//! - a cluster's snapshot only moves by [`ClusterSnapshot::apply`] of the
//!   next event, or by being replaced whole (a resync); an event that does
//!   not follow is refused ([`SequenceGap`]) and changes nothing;
//! - the counters and indexes always equal what a full scan of the
//!   snapshots would give (a test checks this after random event streams);
//! - every applied change is published once on [`Fleet::subscribe`], in
//!   order per cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use haven_model::{
    ClusterSnapshot, Event, EventKind, Freeze, GroupState, Name, ResourceState, SequenceGap,
    SystemState,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The state of the server's link to a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Dialling (first time, or after a break).
    Connecting,
    /// Following the event stream.
    Connected,
    /// Connected, but nothing heard for longer than `stale_after`.
    Stale,
    /// Not connected; the server retries with backoff.
    Disconnected,
}

impl LinkState {
    /// The wire name (`connected`, ...), as in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Stale => "stale",
            LinkState::Disconnected => "disconnected",
        }
    }
}

/// Everything known about a link, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LinkStatus {
    pub state: LinkState,
    /// When the link entered this state (ms since the epoch).
    pub since_ms: i64,
    /// `direct` (the server dials the engine); `connector` later.
    pub mode: String,
    pub address: String,
    /// Why the last attempt or connection failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// The engine run the link follows, and the last sequence received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    pub seq: u64,
    /// The connector's `haven` version (connector links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_version: Option<String>,
    /// Events the connector holds that the server has not stored yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_bytes: Option<u64>,
}

impl LinkStatus {
    /// Whether the link is down: broken, or failing to come back (a first
    /// connection still being dialled is not "down" yet).
    pub fn is_down(&self) -> bool {
        match self.state {
            LinkState::Disconnected => true,
            LinkState::Connecting => self.failures > 0,
            LinkState::Connected | LinkState::Stale => false,
        }
    }

    /// The state people are shown, and counted by: a link failing to come
    /// back is `disconnected`, even while it dials again.
    pub fn shown(&self) -> LinkState {
        if self.is_down() {
            LinkState::Disconnected
        } else {
            self.state
        }
    }
}

/// A change published to subscribers (live API stream, operation waits).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetUpdate {
    /// Events of one cluster, in order, of the engine run `epoch`.
    Events {
        cluster: Name,
        epoch: u64,
        events: Vec<Event>,
    },
    /// A cluster was (re)synchronised from a snapshot of the engine run
    /// `epoch`.
    Resynced {
        cluster: Name,
        epoch: u64,
        seq: u64,
    },
    Link {
        cluster: Name,
        status: LinkStatus,
    },
    Added {
        cluster: Name,
    },
    Removed {
        cluster: Name,
    },
}

/// One thing that needs an administrator's attention.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Attention {
    /// `faulted_group`, `faulted_resource`, `faulted_system`,
    /// `exited_system`, `disconnected_cluster`, `stale_cluster`,
    /// `concurrency_violation`, `frozen_group`, `frozen_system`.
    pub kind: String,
    pub cluster: String,
    /// The object (`group`, `resource` or `system` name), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// Counts of the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub clusters: usize,
    pub links: BTreeMap<String, usize>,
    pub systems: BTreeMap<String, usize>,
    pub groups: usize,
    /// Group states, one per group and system of its SystemList.
    pub group_states: BTreeMap<String, usize>,
    pub resources: usize,
    /// Resource states, one per resource and system.
    pub resource_states: BTreeMap<String, usize>,
    /// How many things need attention in all (the list may be cut).
    pub attention_total: usize,
    /// The most urgent things first, at most `limit`.
    pub attention: Vec<Attention>,
    /// This site and every paired one (only when there are peers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<crate::peers::SiteSummary>,
}

/// A cluster as the API lists it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClusterInfo {
    pub name: String,
    pub link: LinkStatus,
    pub systems: usize,
    pub groups: usize,
    pub resources: usize,
    pub faulted_groups: usize,
    /// The cluster's own tags.
    #[serde(skip_serializing_if = "crate::tags::TagSet::is_empty")]
    pub tags: crate::tags::TagSet,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hit {
    /// `cluster`, `system`, `group` or `resource`.
    pub kind: String,
    pub cluster: String,
    pub name: String,
    /// The group of a resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A resource's type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The object's own tags (a cluster's, group's or system's).
    #[serde(default, skip_serializing_if = "crate::tags::TagSet::is_empty")]
    pub tags: crate::tags::TagSet,
}

struct ClusterView {
    snapshot: Option<ClusterSnapshot>,
    /// The engine run the snapshot is of (set with it, by a resync).
    epoch: u64,
    link: LinkStatus,
}

#[derive(Default)]
struct Indexes {
    group_states: HashMap<GroupState, usize>,
    resource_states: HashMap<ResourceState, usize>,
    system_states: HashMap<SystemState, usize>,
    groups: usize,
    resources: usize,
    systems: usize,
    /// (cluster, group, system)
    faulted_groups: BTreeSet<(Name, Name, Name)>,
    /// (cluster, resource, system)
    faulted_resources: BTreeSet<(Name, Name, Name)>,
    /// (cluster, system) of faulted or exited systems
    down_systems: BTreeSet<(Name, Name)>,
    frozen_groups: BTreeSet<(Name, Name)>,
    frozen_systems: BTreeSet<(Name, Name)>,
    /// (cluster, group) of failover groups online on several systems
    concurrency: BTreeSet<(Name, Name)>,
    /// system name -> clusters that have a system of that name
    systems_by_name: HashMap<Name, BTreeSet<Name>>,
}

/// Adds (`sign` = 1) or removes (-1) a snapshot's contribution.
fn account(ix: &mut Indexes, snap: &ClusterSnapshot, add: bool) {
    let c = snap.config.name.clone();
    let bump = |n: &mut usize| {
        if add {
            *n += 1
        } else {
            *n = n.saturating_sub(1)
        }
    };
    for s in &snap.systems {
        bump(ix.system_states.entry(s.state).or_default());
        bump(&mut ix.systems);
        toggle(
            &mut ix.down_systems,
            (
                add && s.state != SystemState::Running,
                (c.clone(), s.name.clone()),
            ),
        );
        toggle(
            &mut ix.frozen_systems,
            (add && s.freeze.is_frozen(), (c.clone(), s.name.clone())),
        );
        let by_name = ix.systems_by_name.entry(s.name.clone()).or_default();
        if add {
            by_name.insert(c.clone());
        } else {
            by_name.remove(&c);
        }
    }
    for g in &snap.groups {
        bump(&mut ix.groups);
        toggle(
            &mut ix.frozen_groups,
            (add && g.freeze.is_frozen(), (c.clone(), g.name.clone())),
        );
        for (sys, st) in &g.states {
            bump(ix.group_states.entry(*st).or_default());
            toggle(
                &mut ix.faulted_groups,
                (
                    add && *st == GroupState::Faulted,
                    (c.clone(), g.name.clone(), sys.clone()),
                ),
            );
        }
        toggle(
            &mut ix.concurrency,
            (add && violates(snap, &g.name), (c.clone(), g.name.clone())),
        );
        for r in &g.resources {
            bump(&mut ix.resources);
            for (sys, st) in &r.states {
                bump(ix.resource_states.entry(*st).or_default());
                toggle(
                    &mut ix.faulted_resources,
                    (
                        add && *st == ResourceState::Faulted,
                        (c.clone(), r.name.clone(), sys.clone()),
                    ),
                );
            }
        }
    }
}

/// Inserts the key when `on`, removes it otherwise.
fn toggle<K: Ord>(set: &mut BTreeSet<K>, (on, key): (bool, K)) {
    if on {
        set.insert(key);
    } else {
        set.remove(&key);
    }
}

/// Everything that needs attention in `inner`, most urgent first, at most
/// `limit` (and the total).
fn attention_of(inner: &Inner, limit: usize) -> (Vec<Attention>, usize) {
    let ix = &inner.ix;
    let mut out = Vec::new();
    let mut total = 0;
    let mut push = |a: Attention| {
        total += 1;
        if out.len() < limit {
            out.push(a);
        }
    };
    let att = |kind: &str, c: &Name, o: Option<&Name>, s: Option<&Name>| Attention {
        kind: kind.into(),
        cluster: c.to_string(),
        object: o.map(|x| x.to_string()),
        system: s.map(|x| x.to_string()),
    };
    for (c, view) in &inner.clusters {
        match view.link.shown() {
            LinkState::Disconnected => push(att("disconnected_cluster", c, None, None)),
            LinkState::Stale => push(att("stale_cluster", c, None, None)),
            LinkState::Connecting | LinkState::Connected => {}
        }
    }
    for (c, g) in &ix.concurrency {
        push(att("concurrency_violation", c, Some(g), None));
    }
    for (c, s) in &ix.down_systems {
        let kind = inner
            .clusters
            .get(c)
            .and_then(|v| v.snapshot.as_ref())
            .and_then(|snap| snap.system(s))
            .map(|st| st.state);
        let kind = if kind == Some(SystemState::Exited) {
            "exited_system"
        } else {
            "faulted_system"
        };
        push(att(kind, c, None, Some(s)));
    }
    for (c, g, s) in &ix.faulted_groups {
        push(att("faulted_group", c, Some(g), Some(s)));
    }
    for (c, r, s) in &ix.faulted_resources {
        push(att("faulted_resource", c, Some(r), Some(s)));
    }
    for (c, s) in &ix.frozen_systems {
        push(att("frozen_system", c, None, Some(s)));
    }
    for (c, g) in &ix.frozen_groups {
        push(att("frozen_group", c, Some(g), None));
    }
    (out, total)
}

fn clusters_of(inner: &Inner) -> Vec<ClusterInfo> {
    inner
        .clusters
        .iter()
        .map(|(name, view)| {
            let snap = view.snapshot.as_ref();
            ClusterInfo {
                name: name.to_string(),
                link: view.link.clone(),
                systems: snap.map_or(0, |s| s.systems.len()),
                groups: snap.map_or(0, |s| s.groups.len()),
                resources: snap.map_or(0, |s| s.groups.iter().map(|g| g.resources.len()).sum()),
                faulted_groups: inner
                    .ix
                    .faulted_groups
                    .range((name.clone(), Name::from(""), Name::from(""))..)
                    .take_while(|(c, _, _)| c == name)
                    .count(),
                tags: inner
                    .tags
                    .get(&**name)
                    .map(|t| t.cluster.clone())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn summary_of(inner: &Inner, limit: usize) -> Summary {
    let (attention, attention_total) = attention_of(inner, limit);
    let ix = &inner.ix;
    let mut links = BTreeMap::new();
    for view in inner.clusters.values() {
        let key = view.link.shown().as_str().to_string();
        *links.entry(key).or_insert(0) += 1;
    }
    Summary {
        clusters: inner.clusters.len(),
        links,
        systems: named(&ix.system_states),
        groups: ix.groups,
        group_states: named(&ix.group_states),
        resources: ix.resources,
        resource_states: named(&ix.resource_states),
        attention_total,
        attention,
        sites: Vec::new(),
    }
}

fn search_of(inner: &Inner, query: &crate::search::Query, limit: usize) -> Vec<Hit> {
    let empty = crate::tags::ClusterTags::default();
    crate::search::run(
        query,
        limit,
        inner
            .clusters
            .iter()
            .map(|(name, view)| crate::search::Entry {
                name,
                link: &view.link,
                snapshot: view.snapshot.as_ref(),
                tags: inner.tags.get(&**name).unwrap_or(&empty),
            }),
    )
}

/// Whether the object of an attention item carries every tag of
/// `filters` (its cluster's, its group's — a resource's group — or its
/// system's).
fn attention_carries(inner: &Inner, a: &Attention, filters: &[crate::tags::TagFilter]) -> bool {
    if filters.is_empty() {
        return true;
    }
    let Some(tags) = inner.tags.get(&a.cluster) else {
        return false;
    };
    let group = match a.kind.as_str() {
        "faulted_group" | "frozen_group" | "concurrency_violation" => a.object.clone(),
        "faulted_resource" => a.object.as_ref().and_then(|r| {
            inner
                .clusters
                .get(a.cluster.as_str())
                .and_then(|v| v.snapshot.as_ref())
                .and_then(|snap| snap.config.resource(r).map(|(g, _)| g.name.to_string()))
        }),
        _ => None,
    };
    crate::tags::all_carried(filters, tags.carried(group.as_deref(), a.system.as_deref()))
}

/// [`attention_of`], only the items whose object carries `filters`.
fn attention_tagged(
    inner: &Inner,
    limit: usize,
    filters: &[crate::tags::TagFilter],
) -> (Vec<Attention>, usize) {
    if filters.is_empty() {
        return attention_of(inner, limit);
    }
    let (all, _) = attention_of(inner, usize::MAX);
    let kept: Vec<Attention> = all
        .into_iter()
        .filter(|a| attention_carries(inner, a, filters))
        .collect();
    let total = kept.len();
    (kept.into_iter().take(limit).collect(), total)
}

/// What one reader may see of the fleet (their roles decide; see
/// `haven_auth::roles::Policy::can_see`).
pub trait Sight {
    /// Whether the cluster is visible at all.
    fn cluster(&self, cluster: &str) -> bool;
    /// Whether a service group of a visible cluster is.
    fn group(&self, cluster: &str, group: &str) -> bool;
}

/// A snapshot with only the groups `sight` shows (systems stay: anyone
/// who sees a cluster sees its systems).
pub fn visible_snapshot(snap: &ClusterSnapshot, sight: &dyn Sight) -> ClusterSnapshot {
    let cluster = &snap.config.name;
    let mut out = snap.clone();
    out.groups.retain(|g| sight.group(cluster, &g.name));
    out.config.groups.retain(|g| sight.group(cluster, &g.name));
    out
}

/// Whether an event is about something `sight` shows.
pub fn visible_event(cluster: &str, event: &Event, sight: &dyn Sight) -> bool {
    event.kind.group().is_none_or(|g| sight.group(cluster, g))
}

/// The part of the fleet one reader sees (from [`Fleet::seen_by`]).
pub struct SeenFleet(Inner);

impl SeenFleet {
    pub fn names(&self) -> Vec<Name> {
        self.0.clusters.keys().cloned().collect()
    }

    pub fn clusters(&self) -> Vec<ClusterInfo> {
        clusters_of(&self.0)
    }
    pub fn summary(&self, limit: usize) -> Summary {
        summary_of(&self.0, limit)
    }
    pub fn attention(&self, limit: usize) -> (Vec<Attention>, usize) {
        attention_of(&self.0, limit)
    }
    pub fn search(&self, query: &crate::search::Query, limit: usize) -> Vec<Hit> {
        search_of(&self.0, query, limit)
    }
    /// [`Fleet::attention_tagged`] of what this reader sees.
    pub fn attention_tagged(
        &self,
        limit: usize,
        filters: &[crate::tags::TagFilter],
    ) -> (Vec<Attention>, usize) {
        attention_tagged(&self.0, limit, filters)
    }
    pub fn snapshot(&self, cluster: &str) -> Option<&ClusterSnapshot> {
        self.0.clusters.get(cluster)?.snapshot.as_ref()
    }
    pub fn contains(&self, cluster: &str) -> bool {
        self.0.clusters.contains_key(cluster)
    }
    /// The clusters that have a system of this name.
    pub fn clusters_with_system(&self, system: &str) -> Vec<Name> {
        self.0
            .ix
            .systems_by_name
            .get(system)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Makes every mention of a name in a snapshot share one allocation (a
/// decoded snapshot has a copy per mention: each state entry names its
/// system, each dependency its resources...). At fleet scale, names are
/// most of a snapshot's memory.
fn intern_names(snapshot: &mut ClusterSnapshot) {
    let mut names: HashMap<Name, Name> = HashMap::new();
    let mut canonical = |n: &mut Name| {
        let c = names.entry(n.clone()).or_insert_with(|| n.clone());
        *n = c.clone();
    };
    let config = &mut snapshot.config;
    for s in &mut config.systems {
        canonical(&mut s.name);
    }
    for t in &mut config.types {
        canonical(&mut t.name);
    }
    for g in &mut config.groups {
        canonical(&mut g.name);
        for (s, _) in &mut g.system_list {
            canonical(s);
        }
        for s in &mut g.auto_start_list {
            canonical(s);
        }
        for r in &mut g.resources {
            canonical(&mut r.name);
            canonical(&mut r.type_name);
        }
        for d in &mut g.dependencies {
            canonical(&mut d.parent);
            canonical(&mut d.child);
        }
        for d in &mut g.group_dependencies {
            canonical(&mut d.child);
        }
    }
    for s in &mut snapshot.systems {
        canonical(&mut s.name);
    }
    for g in &mut snapshot.groups {
        canonical(&mut g.name);
        for (s, _) in &mut g.states {
            canonical(s);
        }
        for r in &mut g.resources {
            canonical(&mut r.name);
            for (s, _) in &mut r.states {
                canonical(s);
            }
        }
    }
}

/// Non-zero counts, by the state's display name.
fn named<K: std::fmt::Display>(m: &HashMap<K, usize>) -> BTreeMap<String, usize> {
    m.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.to_string(), *n))
        .collect()
}

fn violates(snap: &ClusterSnapshot, group: &str) -> bool {
    let parallel = snap.config.group(group).is_some_and(|g| g.parallel);
    !parallel && snap.group_active_on(group).len() > 1
}

fn move_count<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, from: K, to: K) {
    if let Some(n) = map.get_mut(&from) {
        *n = n.saturating_sub(1);
    }
    *map.entry(to).or_default() += 1;
}

/// Updates the indexes for one event, given the snapshot *before* it.
fn index_event(ix: &mut Indexes, snap: &ClusterSnapshot, event: &Event) {
    let c = snap.config.name.clone();
    match &event.kind {
        EventKind::ResourceState {
            resource,
            system,
            to,
            ..
        } => {
            if let Some(from) = snap.resource_state(resource, system) {
                move_count(&mut ix.resource_states, from, *to);
            }
            toggle(
                &mut ix.faulted_resources,
                (
                    *to == ResourceState::Faulted,
                    (c, resource.clone(), system.clone()),
                ),
            );
        }
        EventKind::GroupState {
            group, system, to, ..
        } => {
            if let Some(from) = snap.group_state(group, system) {
                move_count(&mut ix.group_states, from, *to);
            }
            toggle(
                &mut ix.faulted_groups,
                (
                    *to == GroupState::Faulted,
                    (c, group.clone(), system.clone()),
                ),
            );
        }
        EventKind::SystemState { system, to, .. } => {
            if let Some(from) = snap.system(system).map(|s| s.state) {
                move_count(&mut ix.system_states, from, *to);
            }
            toggle(
                &mut ix.down_systems,
                (*to != SystemState::Running, (c, system.clone())),
            );
        }
        EventKind::GroupFreeze { group, freeze } => toggle(
            &mut ix.frozen_groups,
            (*freeze != Freeze::None, (c, group.clone())),
        ),
        EventKind::SystemFreeze { system, freeze } => toggle(
            &mut ix.frozen_systems,
            (*freeze != Freeze::None, (c, system.clone())),
        ),
        _ => {}
    }
}

struct Inner {
    clusters: BTreeMap<Name, ClusterView>,
    ix: Indexes,
    /// Tags by cluster (only clusters with some).
    tags: BTreeMap<String, crate::tags::ClusterTags>,
}

/// The fleet: every cluster's state, shared by links (writers) and the API
/// (readers).
pub struct Fleet {
    inner: RwLock<Inner>,
    updates: broadcast::Sender<Arc<FleetUpdate>>,
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    pub fn new() -> Self {
        Fleet {
            inner: RwLock::new(Inner {
                clusters: BTreeMap::new(),
                ix: Indexes::default(),
                tags: BTreeMap::new(),
            }),
            // Each slot holds an update until every receiver has seen it or
            // it is overwritten: big enough for bursts, small enough not to
            // hoard memory. A receiver that falls further behind is told.
            updates: broadcast::channel(4096).0,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, update: FleetUpdate) {
        // No subscriber is fine.
        let _ = self.updates.send(Arc::new(update));
    }

    /// Live changes, in order per cluster. A receiver that lags far behind
    /// gets `Lagged` and should re-read the state it cares about.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FleetUpdate>> {
        self.updates.subscribe()
    }

    /// Adds a cluster (no state until its link syncs). Returns false if
    /// it was already there.
    pub fn add(&self, name: &Name, link: LinkStatus) -> bool {
        let added = {
            let mut inner = self.write();
            if inner.clusters.contains_key(name) {
                false
            } else {
                inner.clusters.insert(
                    name.clone(),
                    ClusterView {
                        snapshot: None,
                        epoch: 0,
                        link,
                    },
                );
                true
            }
        };
        if added {
            self.publish(FleetUpdate::Added {
                cluster: name.clone(),
            });
        }
        added
    }

    pub fn remove(&self, name: &str) -> bool {
        let removed = {
            let mut inner = self.write();
            inner.tags.remove(name);
            let Inner { clusters, ix, .. } = &mut *inner;
            match clusters.remove(name) {
                Some(view) => {
                    if let Some(snap) = &view.snapshot {
                        account(ix, snap, false);
                    }
                    true
                }
                None => false,
            }
        };
        if removed {
            self.publish(FleetUpdate::Removed {
                cluster: name.into(),
            });
        }
        removed
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().clusters.contains_key(name)
    }

    pub fn names(&self) -> Vec<Name> {
        self.read().clusters.keys().cloned().collect()
    }

    /// Sets a cluster's link status. Within one engine run the last
    /// sequence received only grows: [`Fleet::apply`] moves it with every
    /// event, and a link task's own copy (which may be older, e.g. a
    /// connector session's, set at its snapshot) never moves it back.
    pub fn set_link(&self, name: &Name, mut status: LinkStatus) {
        {
            let mut inner = self.write();
            match inner.clusters.get_mut(name) {
                Some(view) => {
                    if status.epoch.is_some() && status.epoch == view.link.epoch {
                        status.seq = status.seq.max(view.link.seq);
                    }
                    view.link = status.clone();
                }
                None => return,
            }
        }
        self.publish(FleetUpdate::Link {
            cluster: name.clone(),
            status,
        });
    }

    pub fn link(&self, name: &str) -> Option<LinkStatus> {
        self.read().clusters.get(name).map(|v| v.link.clone())
    }

    /// Replaces a cluster's state with a snapshot of the engine run `epoch`.
    pub fn resync(&self, name: &Name, epoch: u64, mut snapshot: ClusterSnapshot) {
        intern_names(&mut snapshot);
        let seq = snapshot.seq;
        {
            let mut inner = self.write();
            let Inner { clusters, ix, .. } = &mut *inner;
            let Some(view) = clusters.get_mut(name) else {
                return;
            };
            if let Some(old) = &view.snapshot {
                account(ix, old, false);
            }
            account(ix, &snapshot, true);
            view.snapshot = Some(snapshot);
            view.epoch = epoch;
        }
        self.publish(FleetUpdate::Resynced {
            cluster: name.clone(),
            epoch,
            seq,
        });
    }

    /// Applies events in order. Stops at the first one that does not
    /// follow (and returns the gap); the events before it stay applied.
    pub fn apply(&self, name: &Name, events: Vec<Event>) -> Result<(), SequenceGap> {
        let mut applied = Vec::with_capacity(events.len());
        let mut result = Ok(());
        let epoch;
        {
            let mut inner = self.write();
            let Inner { clusters, ix, .. } = &mut *inner;
            let Some(view) = clusters.get_mut(name) else {
                return Ok(());
            };
            epoch = view.epoch;
            if let Some(last) = events.last() {
                view.link.seq = view.link.seq.max(last.seq);
            }
            let Some(snap) = view.snapshot.as_mut() else {
                return Ok(());
            };
            for event in events {
                if event.seq <= snap.seq {
                    continue; // already have it
                }
                let group_of_violation = match &event.kind {
                    EventKind::GroupState { group, .. } => Some(group.clone()),
                    _ => None,
                };
                index_event(ix, snap, &event);
                if let Err(gap) = snap.apply(&event) {
                    result = Err(gap);
                    break;
                }
                if let Some(group) = group_of_violation {
                    let on = violates(snap, &group);
                    toggle(&mut ix.concurrency, (on, (name.clone(), group)));
                }
                applied.push(event);
            }
        }
        if !applied.is_empty() {
            self.publish(FleetUpdate::Events {
                cluster: name.clone(),
                epoch,
                events: applied,
            });
        }
        result
    }

    /// The snapshot of one cluster (None until its link has synced).
    pub fn snapshot(&self, name: &str) -> Option<ClusterSnapshot> {
        self.read()
            .clusters
            .get(name)
            .and_then(|v| v.snapshot.clone())
    }

    /// The engine run of a cluster's snapshot (None until it synced).
    pub fn epoch_of(&self, name: &str) -> Option<u64> {
        self.read()
            .clusters
            .get(name)
            .and_then(|v| v.snapshot.as_ref().map(|_| v.epoch))
    }

    /// One cluster's snapshot with the engine run it is of, and its link,
    /// read together.
    pub fn state(&self, name: &str) -> Option<(Option<(u64, ClusterSnapshot)>, LinkStatus)> {
        self.read()
            .clusters
            .get(name)
            .map(|v| (v.snapshot.clone().map(|s| (v.epoch, s)), v.link.clone()))
    }

    /// Reads one cluster's snapshot without cloning it.
    pub fn with_snapshot<T>(&self, name: &str, f: impl FnOnce(&ClusterSnapshot) -> T) -> Option<T> {
        self.read()
            .clusters
            .get(name)
            .and_then(|v| v.snapshot.as_ref())
            .map(f)
    }

    /// Every cluster with its link and sizes.
    pub fn clusters(&self) -> Vec<ClusterInfo> {
        clusters_of(&self.read())
    }

    /// Everything that needs attention, most urgent first, at most `limit`
    /// (and the total).
    pub fn attention(&self, limit: usize) -> (Vec<Attention>, usize) {
        attention_of(&self.read(), limit)
    }

    /// Counts of the whole fleet and the first `limit` attention items,
    /// from one moment of the fleet (one read of the lock).
    pub fn summary(&self, limit: usize) -> Summary {
        summary_of(&self.read(), limit)
    }

    /// The objects that match a search query (see [`crate::search`]), at
    /// most `limit`.
    pub fn search(&self, query: &crate::search::Query, limit: usize) -> Vec<Hit> {
        search_of(&self.read(), query, limit)
    }

    /// [`Fleet::attention`], only the items whose object carries every
    /// tag of `filters` (see [`crate::tags`]).
    pub fn attention_tagged(
        &self,
        limit: usize,
        filters: &[crate::tags::TagFilter],
    ) -> (Vec<Attention>, usize) {
        attention_tagged(&self.read(), limit, filters)
    }

    /// Puts stored tags in memory (at start), replacing what was there.
    pub fn load_tags(&self, rows: &[haven_store::TagRecord]) {
        let mut inner = self.write();
        inner.tags.clear();
        for r in rows {
            let Some(kind) = crate::tags::Kind::parse(&r.kind) else {
                continue;
            };
            let tags = inner.tags.entry(r.cluster.clone()).or_default();
            let mut set = tags.of(kind, &r.object).cloned().unwrap_or_default();
            set.insert(r.key.clone(), r.value.clone());
            tags.put(kind, &r.object, set);
        }
    }

    /// Replaces the tags of one object (empty: it has none).
    pub fn set_tags(
        &self,
        cluster: &str,
        kind: crate::tags::Kind,
        object: &str,
        tags: crate::tags::TagSet,
    ) {
        let mut inner = self.write();
        let entry = inner.tags.entry(cluster.to_string()).or_default();
        entry.put(kind, object, tags);
        if entry.is_empty() {
            inner.tags.remove(cluster);
        }
    }

    /// The tags of a cluster and its objects.
    pub fn tags_of(&self, cluster: &str) -> crate::tags::ClusterTags {
        self.read().tags.get(cluster).cloned().unwrap_or_default()
    }

    /// Whether the objects named (a cluster, and optionally one of its
    /// groups and systems) together carry every tag of `filters`.
    pub fn carries(
        &self,
        cluster: &str,
        group: Option<&str>,
        system: Option<&str>,
        filters: &[crate::tags::TagFilter],
    ) -> bool {
        let inner = self.read();
        inner
            .tags
            .get(cluster)
            .is_some_and(|t| crate::tags::all_carried(filters, t.carried(group, system)))
    }

    /// The part of the fleet `sight` shows, with its own indexes: what a
    /// user without a fleet-wide role is answered from. Costs a copy of
    /// the clusters they see.
    pub fn seen_by(&self, sight: &dyn Sight) -> SeenFleet {
        let inner = self.read();
        let mut out = Inner {
            clusters: BTreeMap::new(),
            ix: Indexes::default(),
            tags: BTreeMap::new(),
        };
        for (name, view) in &inner.clusters {
            if !sight.cluster(name) {
                continue;
            }
            let snapshot = view
                .snapshot
                .as_ref()
                .map(|snap| visible_snapshot(snap, sight));
            if let Some(snap) = &snapshot {
                account(&mut out.ix, snap, true);
            }
            if let Some(tags) = inner.tags.get(&**name) {
                let mut seen = tags.clone();
                seen.groups.retain(|g, _| sight.group(name, g));
                out.tags.insert(name.to_string(), seen);
            }
            out.clusters.insert(
                name.clone(),
                ClusterView {
                    snapshot,
                    epoch: view.epoch,
                    link: view.link.clone(),
                },
            );
        }
        SeenFleet(out)
    }

    /// The clusters that have a system of this name.
    pub fn clusters_with_system(&self, system: &str) -> Vec<Name> {
        self.read()
            .ix
            .systems_by_name
            .get(system)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Checks the indexes against a full recount (for tests).
    #[doc(hidden)]
    pub fn recount_matches(&self) -> bool {
        let inner = self.read();
        let mut fresh = Indexes::default();
        for view in inner.clusters.values() {
            if let Some(snap) = &view.snapshot {
                account(&mut fresh, snap, true);
            }
        }
        named(&fresh.group_states) == named(&inner.ix.group_states)
            && named(&fresh.resource_states) == named(&inner.ix.resource_states)
            && named(&fresh.system_states) == named(&inner.ix.system_states)
            && fresh.faulted_groups == inner.ix.faulted_groups
            && fresh.faulted_resources == inner.ix.faulted_resources
            && fresh.frozen_groups == inner.ix.frozen_groups
            && fresh.frozen_systems == inner.ix.frozen_systems
            && fresh.down_systems == inner.ix.down_systems
            && fresh.concurrency == inner.ix.concurrency
    }
}
