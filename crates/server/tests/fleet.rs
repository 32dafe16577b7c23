//! The fleet state against real engine state machines: after a random
//! stream of operations and faults, every cluster's state in the fleet
//! equals the engine's own snapshot, and every index equals a recount.

mod common;

use std::time::Duration;

use haven_engine::sim::{generate_cluster, FleetOptions};
use haven_model::Name;
use haven_server::fleet::{Fleet, LinkState, LinkStatus};

fn status() -> LinkStatus {
    LinkStatus {
        state: LinkState::Connected,
        since_ms: 0,
        mode: "direct".into(),
        address: "in-process".into(),
        last_error: None,
        failures: 0,
        epoch: None,
        seq: 0,
        connector_version: None,
        backlog_events: None,
        backlog_bytes: None,
    }
}

#[tokio::test]
async fn the_fleet_follows_engines_exactly_and_its_indexes_equal_a_recount() {
    let options = FleetOptions {
        clusters: 3,
        systems: 3,
        groups: 6,
        resources: 4,
        ..FleetOptions::default()
    };
    let fleet = Fleet::new();
    let mut engines = Vec::new();
    for i in 0..options.clusters {
        let config = generate_cluster(i, &options);
        let (handle, snap, live) = common::engine(config).await;
        fleet.add(handle.name(), status());
        fleet.resync(handle.name(), 1, snap);
        engines.push((handle, live));
    }
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..400 {
        let (handle, _) = &engines[rng.usize(..engines.len())];
        let op = common::random_op(&fleet.snapshot(handle.name()).unwrap(), &mut rng);
        handle.operate(op).await.unwrap();
        for (handle, live) in &mut engines {
            while let Ok(batch) = live.try_recv() {
                fleet
                    .apply(handle.name(), batch.to_vec())
                    .expect("events in order");
            }
        }
    }
    // Let the last agent actions (none are delayed) settle, then compare.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (handle, live) in &mut engines {
        while let Ok(batch) = live.try_recv() {
            fleet.apply(handle.name(), batch.to_vec()).unwrap();
        }
        assert_eq!(
            fleet.snapshot(handle.name()).unwrap(),
            handle.snapshot().await.unwrap(),
            "fleet state of {} equals the engine's",
            handle.name()
        );
    }
    assert!(fleet.recount_matches(), "indexes equal a recount");
    let summary = fleet.summary(1000);
    assert_eq!(summary.clusters, 3);
    assert!(
        summary.attention_total > 0,
        "400 random faults left something to see"
    );
    let faulted: usize = summary.group_states.get("FAULTED").copied().unwrap_or(0);
    let listed = summary
        .attention
        .iter()
        .filter(|a| a.kind == "faulted_group")
        .count();
    assert_eq!(faulted, listed);
}

#[test]
fn a_link_status_from_a_session_never_moves_the_received_sequence_back() {
    let fleet = Fleet::new();
    let name = Name::from("c");
    let at = |epoch: u64, seq: u64| LinkStatus {
        epoch: Some(epoch),
        seq,
        ..status()
    };
    fleet.add(&name, at(1, 5));
    let event = haven_model::Event {
        seq: 9,
        time_ms: 0,
        kind: haven_model::EventKind::Notice {
            severity: haven_model::Severity::Info,
            object: None,
            message: "x".into(),
        },
    };
    fleet.apply(&name, vec![event]).unwrap();
    assert_eq!(fleet.link("c").unwrap().seq, 9);
    // A connector session's status, with the seq of its snapshot.
    fleet.set_link(&name, at(1, 5));
    assert_eq!(fleet.link("c").unwrap().seq, 9, "not moved back");
    // A new engine run starts its own count.
    fleet.set_link(&name, at(2, 3));
    assert_eq!(fleet.link("c").unwrap().seq, 3);
}
