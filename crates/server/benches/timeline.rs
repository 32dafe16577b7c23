//! Time travel at fleet scale: how long rebuilding a past state takes for
//! one cluster and for a whole fleet of 1,000 and 10,000 clusters of
//! 4 systems x 20 groups x 10 resources, each with a checkpoint followed
//! by 500 events (half a link's checkpoint interval, the average replay),
//! in a real SQLite database.
//!
//! `cargo bench -p haven-server --bench timeline` (HAVEN_BENCH_SIZES,
//! default "1000,10000").

use std::time::Instant;

use haven_engine::policy::{Cluster, PolicyOptions};
use haven_engine::sim::{generate_cluster, FleetOptions};
use haven_model::{Event, EventKind, ResourceState};
use haven_server::timeline::{fleet_at, state_at};
use haven_store::{Checkpoint, CheckpointStore, HistoryRow, SqliteStore, Store};

const EVENTS: u64 = 500;
const T0: i64 = 1_700_000_000_000;

fn main() {
    let sizes: Vec<usize> = std::env::var("HAVEN_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haven.db");
        let mut store = SqliteStore::open(&path).unwrap();
        let options = FleetOptions {
            systems: 4,
            groups: 20,
            resources: 10,
            ..FleetOptions::default()
        };
        let built = Instant::now();
        let mut snapshot_bytes = 0;
        for i in 0..n {
            let config = generate_cluster(i, &options);
            let name = config.name.to_string();
            let mut cluster = Cluster::new(
                config,
                PolicyOptions {
                    simulated: true,
                    periodic_monitor: false,
                },
            );
            let _ = cluster.start(0);
            let mut snapshot = cluster.snapshot();
            snapshot.seq = 0;
            snapshot_bytes += serde_json::to_vec(&snapshot).unwrap().len();
            // Events: resources going offline and online again, 10 ms apart.
            let resources: Vec<_> = snapshot
                .groups
                .iter()
                .flat_map(|g| {
                    g.resources
                        .iter()
                        .map(move |r| (g.name.clone(), r.name.clone()))
                })
                .collect();
            let system = snapshot.systems[0].name.clone();
            let rows: Vec<HistoryRow> = (1..=EVENTS)
                .map(|seq| {
                    let (group, resource) = resources[seq as usize % resources.len()].clone();
                    let (from, to) = if seq % 2 == 0 {
                        (ResourceState::Online, ResourceState::Offline)
                    } else {
                        (ResourceState::Offline, ResourceState::Online)
                    };
                    HistoryRow {
                        cluster: name.clone(),
                        epoch: 1,
                        event: Event {
                            seq,
                            time_ms: T0 + seq as i64 * 10,
                            kind: EventKind::ResourceState {
                                group,
                                resource,
                                system: system.clone(),
                                from,
                                to,
                            },
                        },
                    }
                })
                .collect();
            store
                .save_checkpoints(&[Checkpoint {
                    cluster: name,
                    epoch: 1,
                    time_ms: T0,
                    snapshot,
                }])
                .unwrap();
            store.append(&rows).unwrap();
        }
        println!(
            "{n} clusters, each a checkpoint ({} KB of JSON) and {EVENTS} events, stored in {:.1} s",
            snapshot_bytes / n / 1024,
            built.elapsed().as_secs_f64()
        );
        let at = T0 + EVENTS as i64 * 10;
        let mut one = Vec::new();
        for i in 0..20 {
            let cluster = generate_cluster(i * (n / 20).max(1) % n, &options).name;
            let started = Instant::now();
            let state = state_at(&store, &cluster, at).unwrap().unwrap();
            one.push(started.elapsed());
            assert_eq!(state.snapshot.seq, EVENTS);
        }
        one.sort();
        println!(
            "  one cluster at an instant (checkpoint + {EVENTS} events): p50 {:.2} ms, p90 {:.2} ms",
            one[10].as_secs_f64() * 1e3,
            one[18].as_secs_f64() * 1e3
        );
        let started = Instant::now();
        let fleet = fleet_at(&store, at, None).unwrap();
        let took = started.elapsed();
        assert_eq!(fleet.len(), n);
        println!(
            "  the whole fleet at an instant: {:.2} s ({:.2} ms a cluster)",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e3 / n as f64
        );
    }
}
