//! Time travel against a real engine state machine: a random stream of
//! operations and faults is recorded as the server records it (events,
//! and a checkpoint at each engine run's start and every so many events,
//! with an engine restart in the middle); the state rebuilt at every
//! recorded instant must equal the state the engine had then, before and
//! after a prune, and a replay of a period must pass through exactly those
//! states.

mod common;

use std::time::Duration;

use haven_engine::sim::{generate_cluster, FleetOptions};
use haven_model::{ClusterSnapshot, Event};
use haven_server::timeline::{fold, replay, state_at, Step, TimelineError};
use haven_store::{Checkpoint, CheckpointStore, HistoryRow, SqliteStore, Store};

/// Every event's time is made distinct: 10 ms apart, from here.
const T0: i64 = 1_000_000;
const CHECKPOINT_EVERY: usize = 25;

/// What the engine's state was after the event at each time.
struct Recorded {
    /// (time, state after the events up to it), in time order.
    states: Vec<(i64, ClusterSnapshot)>,
    /// When the engine was restarted (its new run's first checkpoint).
    restart_ms: i64,
}

/// Runs `ops` random operations on an engine run, storing its events (at
/// times from `*clock`) and checkpoints as the server's links do.
async fn record_run(
    store: &mut SqliteStore,
    epoch: u64,
    ops: usize,
    clock: &mut i64,
    rng: &mut fastrand::Rng,
    states: &mut Vec<(i64, ClusterSnapshot)>,
) {
    let options = FleetOptions {
        clusters: 1,
        systems: 3,
        groups: 5,
        resources: 4,
        ..FleetOptions::default()
    };
    let (handle, first, mut live) = common::engine(generate_cluster(0, &options)).await;
    let mut state = first.clone();
    *clock += 10;
    store
        .save_checkpoints(&[Checkpoint {
            cluster: "c".into(),
            epoch,
            time_ms: *clock,
            snapshot: first,
        }])
        .unwrap();
    states.push((*clock, state.clone()));
    let mut since_checkpoint = 0;
    for _ in 0..ops {
        let op = common::random_op(&state, rng);
        handle.operate(op).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        while let Ok(batch) = live.try_recv() {
            let mut rows = Vec::new();
            for event in batch.iter() {
                *clock += 10;
                let event = Event {
                    time_ms: *clock,
                    ..event.clone()
                };
                state.apply(&event).expect("events in order");
                states.push((*clock, state.clone()));
                rows.push(HistoryRow {
                    cluster: "c".into(),
                    epoch,
                    event,
                });
            }
            since_checkpoint += rows.len();
            store.append(&rows).unwrap();
            if since_checkpoint >= CHECKPOINT_EVERY {
                since_checkpoint = 0;
                store
                    .save_checkpoints(&[Checkpoint {
                        cluster: "c".into(),
                        epoch,
                        time_ms: *clock + 5,
                        snapshot: state.clone(),
                    }])
                    .unwrap();
            }
        }
    }
    assert_eq!(
        state,
        handle.snapshot().await.unwrap(),
        "recorded all of it"
    );
}

async fn record(store: &mut SqliteStore) -> Recorded {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut clock = T0;
    let mut states = Vec::new();
    record_run(store, 1, 120, &mut clock, &mut rng, &mut states).await;
    let restart_ms = clock + 10;
    record_run(store, 2, 80, &mut clock, &mut rng, &mut states).await;
    assert!(states.len() > 300, "{} states recorded", states.len());
    Recorded { states, restart_ms }
}

/// The state recorded at `at`: after the last change at or before it.
fn expected_at(rec: &Recorded, at: i64) -> Option<&ClusterSnapshot> {
    rec.states
        .iter()
        .take_while(|(t, _)| *t <= at)
        .last()
        .map(|(_, s)| s)
}

fn check_every_instant(store: &SqliteStore, rec: &Recorded, from: i64) {
    let last = rec.states.last().unwrap().0;
    let mut checked = 0;
    for at in (from..last + 30).step_by(5) {
        let got = state_at(store, "c", at).unwrap();
        match expected_at(rec, at) {
            None => assert!(got.is_none(), "nothing recorded at {at}"),
            Some(want) => {
                let got = got.unwrap_or_else(|| panic!("a state at {at}"));
                assert_eq!(&got.snapshot, want, "the state at {at}");
                assert_eq!(got.epoch, if at >= rec.restart_ms { 2 } else { 1 });
                checked += 1;
            }
        }
    }
    assert!(checked > 100);
}

#[tokio::test]
async fn the_state_at_every_recorded_instant_is_the_engines_state_then() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("haven.db")).unwrap();
    let rec = record(&mut store).await;
    check_every_instant(&store, &rec, T0 - 20);
    assert!(
        state_at(&store, "other", T0 + 500).unwrap().is_none(),
        "an unknown cluster has no state"
    );
}

#[tokio::test]
async fn a_replay_passes_through_exactly_the_recorded_states() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("haven.db")).unwrap();
    let rec = record(&mut store).await;
    let last = rec.states.last().unwrap().0;
    // Periods: from before anything was recorded, across the restart, and
    // one inside each engine run.
    for (from, to) in [
        (T0 - 100, last + 1),
        (T0 + 333, rec.restart_ms + 200),
        (T0 + 100, T0 + 400),
        (rec.restart_ms + 50, last - 50),
    ] {
        let r = replay(&store, "c", from, to).unwrap();
        let known = r.known_from_ms.unwrap();
        assert_eq!(known, from.max(T0 + 10), "known from the first record");
        let mut state = r.start.clone().unwrap();
        // The state at the start: before the period's first ms, or the
        // first record when the period begins before it.
        let before = if known == from { known - 1 } else { known };
        assert_eq!(
            Some(&state),
            expected_at(&rec, before),
            "the start of [{from}, {to})"
        );
        let mut restarts = 0;
        for step in &r.steps {
            let t = step.time_ms();
            assert!((known..to).contains(&t), "{t} inside [{known}, {to})");
            match step {
                Step::Event(e) => fold(&mut state, e),
                Step::Snapshot { snapshot, .. } => {
                    restarts += 1;
                    state = snapshot.clone();
                }
            }
            assert_eq!(Some(&state), expected_at(&rec, t), "the state at {t}");
        }
        let crosses = (from..to).contains(&rec.restart_ms);
        assert_eq!(restarts, usize::from(crosses), "[{from}, {to})");
        assert_eq!(
            Some(&state),
            expected_at(&rec, to - 1),
            "the state at the end"
        );
    }
    let none = replay(&store, "c", T0 - 100, T0).unwrap();
    assert_eq!(none.known_from_ms, None, "nothing recorded in the period");
}

#[tokio::test]
async fn after_a_prune_states_from_the_cut_on_are_still_exact_and_earlier_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("haven.db")).unwrap();
    let rec = record(&mut store).await;
    // A cut in the middle of the first engine run, between checkpoints.
    let cut = T0 + 10 * (CHECKPOINT_EVERY as i64 * 3 + 7);
    let report = store.prune(cut, None, &|_| {}).unwrap();
    assert!(report.history_removed > 0, "{report:?}");
    check_every_instant(&store, &rec, cut);
    match state_at(&store, "c", cut - 1) {
        Err(TimelineError::Pruned(at)) => assert_eq!(at, cut),
        other => panic!("refused as pruned, not {other:?}"),
    }
    let message = replay(&store, "c", cut - 1, cut + 100)
        .unwrap_err()
        .to_string();
    assert!(message.contains("was pruned"), "{message}");
}
