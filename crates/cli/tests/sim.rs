//! End-to-end: `haven sim` runs many clusters in one process, each on its
//! own socket, and lists them.

mod support;

use std::time::Duration;

use haven_model::{name, EventKind, GroupState, Operation};
use haven_protocol::{ClientOptions, EngineClient};
use support::*;

#[tokio::test]
async fn sim_serves_every_cluster_it_lists_and_injected_faults_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("clusters.txt");
    let (_sim, _) = Proc::start(
        &[
            "sim",
            "--clusters",
            "5",
            "--systems",
            "3",
            "--groups",
            "4",
            "--resources",
            "5",
            "--delay",
            "0",
            "--fault-rate",
            "0",
            "--list",
            list.to_str().unwrap(),
        ],
        "clusters ready",
    );
    let text = std::fs::read_to_string(&list).unwrap();
    let entries: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next().unwrap().into(), parts.next().unwrap().into())
        })
        .collect();
    assert_eq!(entries.len(), 5);
    let options = ClientOptions {
        client: "test".into(),
        ..ClientOptions::default()
    };
    for (cluster, addr) in &entries {
        let mut client = EngineClient::connect(addr, &options).await.unwrap();
        assert_eq!(&client.welcome().cluster, cluster);
        assert!(client.welcome().simulated);
        let snap = client.snapshot().await.unwrap();
        assert_eq!(snap.systems.len(), 3);
        assert_eq!(snap.groups.len(), 4);
        for g in &snap.groups {
            assert_eq!(g.resources.len(), 5);
            assert!(
                g.states.iter().any(|(_, s)| *s == GroupState::Online),
                "{} autostarted",
                g.name
            );
        }
    }

    // A fault injected into one cluster fails its group over.
    let (_, addr) = &entries[0];
    let mut client = EngineClient::connect(addr, &options).await.unwrap();
    let snap = match client.subscribe(None).await.unwrap() {
        haven_protocol::client::Subscription::Snapshot(_, s) => s,
        other => panic!("{other:?}"),
    };
    let group = &snap.groups[0];
    let (system, _) = group
        .states
        .iter()
        .find(|(_, s)| *s == GroupState::Online)
        .unwrap()
        .clone();
    let top = group.resources.last().unwrap().name.clone();
    let result = client
        .command(Operation::SimFaultResource {
            resource: top,
            system: system.clone(),
        })
        .await
        .unwrap();
    assert!(result.is_accepted(), "{result:?}");
    let events = client
        .wait_for(Duration::from_secs(20), |e| {
            matches!(&e.kind, EventKind::GroupState { group: g, system: s, to: GroupState::Online, .. }
                if *g == group.name && *s != system)
        })
        .await
        .unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Failover { from, .. } if *from == system)));

    // A system fault moves everything off it.
    let result = client
        .command(Operation::SimFaultSystem {
            system: name(&*system),
        })
        .await
        .unwrap();
    assert!(result.is_accepted());
}
