//! How fast the store appends history: 200,000 synthetic `resource_state`
//! events of 10 clusters, in batches of 1,000 (what the server writes when
//! a fleet is busy), to a database file in a temporary directory. Prints
//! events per second rather than timing a harness.
//!
//! `cargo bench -p haven-store --bench append`; HAVEN_BENCH_EVENTS and
//! HAVEN_BENCH_BATCH change the sizes.

use std::time::Instant;

use haven_model::{name, Event, EventKind, ResourceState};
use haven_store::{HistoryRow, SqliteStore, Store};

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CLUSTERS: u64 = 10;

/// Event `i` of the run: clusters take turns, each with its own sequence.
fn synthetic(i: u64) -> HistoryRow {
    let cluster = i % CLUSTERS;
    let seq = i / CLUSTERS + 1;
    let (from, to) = if seq.is_multiple_of(2) {
        (ResourceState::Online, ResourceState::Offline)
    } else {
        (ResourceState::Offline, ResourceState::Online)
    };
    HistoryRow {
        cluster: format!("cluster{cluster:04}"),
        epoch: 1_764_064_699_425,
        event: Event {
            seq,
            time_ms: 1_764_064_699_425 + i as i64,
            kind: EventKind::ResourceState {
                group: name(format!("group{:02}", seq % 20)),
                resource: name(format!("res{:03}", seq % 200)),
                system: name(format!("sys{}", seq % 4)),
                from,
                to,
            },
        },
    }
}

fn main() {
    let events = env_or("HAVEN_BENCH_EVENTS", 200_000) as u64;
    let batch = env_or("HAVEN_BENCH_BATCH", 1_000).max(1) as u64;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haven.db");
    let mut store = SqliteStore::open(&path).expect("opens the database");

    // Built before the clock starts: the server has its rows in memory too.
    let batches: Vec<Vec<HistoryRow>> = (0..events)
        .collect::<Vec<_>>()
        .chunks(batch as usize)
        .map(|chunk| chunk.iter().map(|&i| synthetic(i)).collect())
        .collect();

    let start = Instant::now();
    let mut inserted = 0;
    for rows in &batches {
        inserted += store.append(rows).expect("appends").inserted;
    }
    let elapsed = start.elapsed();
    assert_eq!(inserted as u64, events, "every event is new");

    let size: u64 = ["haven.db", "haven.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "append: {events} events in batches of {batch}: {:.2} s, {:.0} events/s, {:.0} bytes/event on disk",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        size as f64 / events as f64,
    );
}
