//! Time travel: a cluster's state at any past instant, and its states
//! through a period.
//!
//! History holds events, not states. So that a state can be rebuilt
//! without reading a cluster's whole past, links store **checkpoints**
//! (whole snapshots, table `checkpoints`): one each time they take a
//! snapshot (an engine run's start, a reconnect, a resumed connector) and
//! one every [`CHECKPOINT_EVERY`] events after it ([`Checkpointer`]). A
//! cluster's state at instant T is then its newest checkpoint taken at or
//! before T with the events of the same engine run after it recorded up
//! to T ([`state_at`]); replaying a period switches to each later
//! checkpoint of another engine run as it comes ([`replay`]).
//!
//! What this knows and does not:
//! - before a cluster's first checkpoint its state is unknown (`None`);
//! - before the newest prune's cut-off ([`haven_store::HISTORY_PRUNED_BEFORE`])
//!   only the last state of each object survived, so instants before it
//!   are refused ([`TimelineError::Pruned`]);
//! - whether the link was up at T is not recorded: a past view shows the
//!   state as recorded, marked as such.

pub mod api;

use std::sync::Arc;

use haven_model::{ClusterSnapshot, Event, Name};
use haven_store::{Checkpoint, Store, StoreError, HISTORY_PRUNED_BEFORE};
use schemars::JsonSchema;
use serde::Serialize;

use crate::fleet::{Fleet, LinkState, LinkStatus};
use crate::writer::WriteMsg;
use crate::Server;

/// A link stores a checkpoint after this many events since its last one,
/// so rebuilding a state replays at most this many events.
pub const CHECKPOINT_EVERY: u64 = 1_000;

/// Decides when a link stores a checkpoint (one per link).
#[derive(Debug, Default)]
pub struct Checkpointer {
    since: u64,
    /// The position of the last checkpoint stored (a reconnect that finds
    /// the same state stores nothing new).
    last: Option<(u64, u64)>,
}

impl Checkpointer {
    /// The link took a snapshot: stored, unless it is the one stored last.
    pub fn snapshot(
        &mut self,
        cluster: &Name,
        epoch: u64,
        snapshot: &ClusterSnapshot,
    ) -> Option<WriteMsg> {
        self.since = 0;
        if self.last.replace((epoch, snapshot.seq)) == Some((epoch, snapshot.seq)) {
            return None;
        }
        Some(WriteMsg::Checkpoint(Checkpoint {
            cluster: cluster.to_string(),
            epoch,
            time_ms: crate::now_ms(),
            snapshot: snapshot.clone(),
        }))
    }

    /// `n` events were applied to the fleet: after [`CHECKPOINT_EVERY`],
    /// the fleet's current state of the cluster is stored.
    pub fn events(
        &mut self,
        fleet: &Fleet,
        cluster: &Name,
        epoch: u64,
        n: usize,
    ) -> Option<WriteMsg> {
        self.since += n as u64;
        if self.since < CHECKPOINT_EVERY {
            return None;
        }
        let snapshot = fleet.snapshot(cluster)?;
        self.snapshot(cluster, epoch, &snapshot)
    }
}

/// Why a past state cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error(
        "history before {} was pruned: states before it can no longer be rebuilt",
        haven_model::clock::rfc3339(*.0)
    )]
    Pruned(i64),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The read could not run (the server's reader failed).
    #[error("{0}")]
    Unavailable(String),
}

/// One cluster's state at a past instant.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PastState {
    pub cluster: String,
    /// The instant asked for (ms since the Unix epoch).
    pub at_ms: i64,
    /// The engine run and the checkpoint the state was rebuilt from.
    pub epoch: u64,
    pub checkpoint_ms: i64,
    /// The time of the last event folded in (None: none after the
    /// checkpoint): the state has not changed since then, up to `at_ms`.
    pub last_event_ms: Option<i64>,
    pub snapshot: ClusterSnapshot,
}

/// Folds an event into a rebuilt state. Unlike a live client's
/// [`ClusterSnapshot::apply`], it accepts a jump in the numbering: a prune
/// leaves only the last state change of each object, and those are
/// exactly what the state needs. Events already included are skipped.
pub fn fold(snapshot: &mut ClusterSnapshot, event: &Event) {
    if event.seq <= snapshot.seq {
        return;
    }
    snapshot.seq = event.seq - 1;
    let _ = snapshot.apply(event); // cannot fail: the numbering follows now
}

/// Refuses an instant before the newest prune's cut-off.
fn check_not_pruned(store: &dyn Store, at_ms: i64) -> Result<(), TimelineError> {
    let cut = store
        .setting(HISTORY_PRUNED_BEFORE)?
        .and_then(|v| v.parse::<i64>().ok());
    match cut {
        Some(cut) if at_ms < cut => Err(TimelineError::Pruned(cut)),
        _ => Ok(()),
    }
}

fn rebuild(store: &dyn Store, checkpoint: Checkpoint, at_ms: i64) -> Result<PastState, StoreError> {
    let events = store.events_after(
        &checkpoint.cluster,
        checkpoint.epoch,
        checkpoint.snapshot.seq,
        at_ms.saturating_add(1),
    )?;
    let mut snapshot = checkpoint.snapshot;
    for event in &events {
        fold(&mut snapshot, event);
    }
    Ok(PastState {
        cluster: checkpoint.cluster,
        at_ms,
        epoch: checkpoint.epoch,
        checkpoint_ms: checkpoint.time_ms,
        last_event_ms: events.last().map(|e| e.time_ms),
        snapshot,
    })
}

/// A cluster's state at `at_ms` (events recorded at that very ms
/// included); `None` when nothing was recorded of it by then.
pub fn state_at(
    store: &dyn Store,
    cluster: &str,
    at_ms: i64,
) -> Result<Option<PastState>, TimelineError> {
    check_not_pruned(store, at_ms)?;
    let Some(checkpoint) = store
        .checkpoints_at(at_ms, Some(&[cluster.to_string()]))?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    Ok(Some(rebuild(store, checkpoint, at_ms)?))
}

/// The state at `at_ms` of every cluster recorded by then (of `clusters`
/// only, when given), by name.
pub fn fleet_at(
    store: &dyn Store,
    at_ms: i64,
    clusters: Option<&[String]>,
) -> Result<Vec<PastState>, TimelineError> {
    check_not_pruned(store, at_ms)?;
    let checkpoints = store.checkpoints_at(at_ms, clusters)?;
    let mut out = Vec::with_capacity(checkpoints.len());
    for checkpoint in checkpoints {
        out.push(rebuild(store, checkpoint, at_ms)?);
    }
    Ok(out)
}

/// One step of a replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The next event (fold it with [`fold`]).
    Event(Event),
    /// The state was taken whole again at `time_ms` (the engine restarted,
    /// or events were lost in between): replace the state with it.
    Snapshot {
        time_ms: i64,
        snapshot: ClusterSnapshot,
    },
}

impl Step {
    /// When it happened.
    pub fn time_ms(&self) -> i64 {
        match self {
            Step::Event(e) => e.time_ms,
            Step::Snapshot { time_ms, .. } => *time_ms,
        }
    }
}

/// A cluster's states through a period `[from_ms, to_ms)` (the default:
/// nothing recorded in it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    /// From when the state is known: `from_ms`, or later when the cluster
    /// was first recorded inside the period; `None` when nothing of it is
    /// recorded before `to_ms`.
    pub known_from_ms: Option<i64>,
    /// The state at `known_from_ms`.
    pub start: Option<ClusterSnapshot>,
    /// What changed after it, in time order, before `to_ms`.
    pub steps: Vec<Step>,
}

/// Replays one cluster's history over `[from_ms, to_ms)`.
pub fn replay(
    store: &dyn Store,
    cluster: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Replay, TimelineError> {
    check_not_pruned(store, from_ms)?;
    if to_ms <= from_ms {
        return Ok(Replay::default());
    }
    // The base: the state at `from_ms`, or the first checkpoint after it.
    let first = store
        .checkpoints_at(from_ms.saturating_sub(1), Some(&[cluster.to_string()]))?
        .into_iter()
        .next();
    let (known_from, mut epoch, mut state, later) = match first {
        Some(base) => {
            let later = store.checkpoints_between(cluster, base.time_ms, to_ms)?;
            let past = rebuild(store, base, from_ms - 1)?;
            (from_ms, past.epoch, past.snapshot, later)
        }
        None => {
            let mut later = store.checkpoints_between(cluster, from_ms - 1, to_ms)?;
            if later.is_empty() {
                return Ok(Replay::default());
            }
            let base = later.remove(0);
            (base.time_ms, base.epoch, base.snapshot, later)
        }
    };
    let start = state.clone();
    let mut steps = Vec::new();
    // Events of the current engine run, not yet replayed.
    let mut pending = store
        .events_after(cluster, epoch, state.seq, to_ms)?
        .into_iter();
    let mut next = pending.next();
    for checkpoint in later {
        // Everything of this run up to the checkpoint comes first.
        while let Some(event) = next.take_if(|e| e.time_ms <= checkpoint.time_ms) {
            push_event(&mut steps, &mut state, event, known_from);
            next = pending.next();
        }
        // The same run, reached already or by the next event.
        let reached = checkpoint.snapshot.seq <= state.seq;
        let leads_there = next
            .as_ref()
            .is_some_and(|e| e.seq == state.seq + 1 && e.seq <= checkpoint.snapshot.seq);
        let continues = checkpoint.epoch == epoch && (reached || leads_there);
        if continues {
            continue; // the events already lead there
        }
        // Another engine run, or events missing before it: take it whole.
        epoch = checkpoint.epoch;
        state = checkpoint.snapshot.clone();
        if checkpoint.time_ms >= known_from {
            steps.push(Step::Snapshot {
                time_ms: checkpoint.time_ms,
                snapshot: checkpoint.snapshot,
            });
        }
        pending = store
            .events_after(cluster, epoch, state.seq, to_ms)?
            .into_iter();
        next = pending.next();
    }
    while let Some(event) = next {
        push_event(&mut steps, &mut state, event, known_from);
        next = pending.next();
    }
    Ok(Replay {
        known_from_ms: Some(known_from),
        start: Some(start),
        steps,
    })
}

fn push_event(steps: &mut Vec<Step>, state: &mut ClusterSnapshot, event: Event, known_from: i64) {
    fold(state, &event);
    if event.time_ms >= known_from {
        steps.push(Step::Event(event));
    }
}

/// The fleet as it was at an instant, in a [`Fleet`] of its own, so every
/// view of the live fleet (summary, attention, search) works on it.
pub struct PastFleet {
    pub at_ms: i64,
    pub fleet: Fleet,
    /// Clusters managed now of which nothing was recorded by then.
    pub unrecorded: Vec<String>,
}

/// How a rebuilt cluster's link is shown: connected as recorded (whether
/// it really was is not recorded).
fn recorded_link(state: &PastState) -> LinkStatus {
    LinkStatus {
        state: LinkState::Connected,
        since_ms: state.checkpoint_ms,
        mode: "recorded".into(),
        address: String::new(),
        last_error: None,
        failures: 0,
        epoch: Some(state.epoch),
        seq: state.snapshot.seq,
        connector_version: None,
        backlog_events: None,
        backlog_bytes: None,
    }
}

impl Server {
    /// Runs a timeline read on the server's reader.
    async fn read_timeline<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Store) -> Result<T, TimelineError> + Send + 'static,
    ) -> Result<T, TimelineError> {
        self.read(move |store| Ok(f(store)))
            .await
            .map_err(TimelineError::Unavailable)?
    }

    /// One cluster at a past instant (every group: the caller filters).
    pub async fn past_cluster(
        self: &Arc<Self>,
        cluster: &str,
        at_ms: i64,
    ) -> Result<Option<PastState>, TimelineError> {
        let name = cluster.to_string();
        self.read_timeline(move |store| state_at(store, &name, at_ms))
            .await
    }

    /// The fleet at a past instant: every cluster managed now (of
    /// `clusters` only, when given) that was recorded by then.
    pub async fn past_fleet(
        self: &Arc<Self>,
        at_ms: i64,
        clusters: Option<Vec<String>>,
    ) -> Result<PastFleet, TimelineError> {
        let managed: Vec<String> = match clusters {
            Some(only) => only,
            None => self.fleet.names().iter().map(|n| n.to_string()).collect(),
        };
        let wanted = managed.clone();
        let states = self
            .read_timeline(move |store| fleet_at(store, at_ms, Some(&wanted)))
            .await?;
        let fleet = Fleet::new();
        for state in states {
            let name: Name = state.cluster.as_str().into();
            fleet.add(&name, recorded_link(&state));
            fleet.resync(&name, state.epoch, state.snapshot);
        }
        let unrecorded = managed.into_iter().filter(|c| !fleet.contains(c)).collect();
        Ok(PastFleet {
            at_ms,
            fleet,
            unrecorded,
        })
    }

    /// Every named cluster's history over `[from_ms, to_ms)`, in order.
    pub async fn replays(
        self: &Arc<Self>,
        clusters: Vec<String>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, Replay)>, TimelineError> {
        self.read_timeline(move |store| {
            clusters
                .into_iter()
                .map(|c| Ok((c.clone(), replay(store, &c, from_ms, to_ms)?)))
                .collect()
        })
        .await
    }
}
