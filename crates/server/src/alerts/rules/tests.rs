//! The rule engine, case by case: each test feeds events, link changes,
//! snapshots and time, and checks the changes it answers with.

use super::*;
use haven_model::{name, ClusterConfig, Freeze, GroupStatus, ResourceStatus, SystemStatus};

const SEC: i64 = 1000;

fn settings() -> RuleSettings {
    RuleSettings {
        disconnect_grace_ms: 30 * SEC,
        frozen_after_ms: Some(3600 * SEC),
        flap_changes: 4,
        flap_window_ms: 600 * SEC,
    }
}

fn event(kind: EventKind) -> Event {
    Event {
        seq: 1,
        time_ms: 0,
        kind,
    }
}

fn resource(to: ResourceState) -> Event {
    event(EventKind::ResourceState {
        group: name("web"),
        resource: name("web_ip"),
        system: name("n1"),
        from: ResourceState::Online,
        to,
    })
}

fn group(system: &str, to: GroupState) -> Event {
    event(EventKind::GroupState {
        group: name("web"),
        system: name(system),
        from: GroupState::Offline,
        to,
    })
}

fn link(state: LinkState, since_ms: i64) -> LinkStatus {
    LinkStatus {
        state,
        since_ms,
        mode: "direct".into(),
        address: "127.0.0.1:1".into(),
        last_error: Some("connection refused".into()),
        failures: 1,
        epoch: None,
        seq: 0,
        connector_version: None,
        backlog_events: None,
        backlog_bytes: None,
    }
}

/// A cluster `c` with systems n1, n2 and the failover group `web`
/// (resource web_ip), in the given states.
fn snapshot(
    n1: GroupState,
    n2: GroupState,
    ip_n1: ResourceState,
    s2: SystemState,
) -> ClusterSnapshot {
    let config: ClusterConfig =
        serde_json::from_value(serde_json::json!({"name": "c", "systems": [], "groups": []}))
            .unwrap();
    ClusterSnapshot {
        seq: 10,
        config,
        systems: vec![
            SystemStatus {
                name: name("n1"),
                state: SystemState::Running,
                freeze: Freeze::None,
            },
            SystemStatus {
                name: name("n2"),
                state: s2,
                freeze: Freeze::None,
            },
        ],
        groups: vec![GroupStatus {
            name: name("web"),
            freeze: Freeze::None,
            enabled: true,
            states: vec![(name("n1"), n1), (name("n2"), n2)],
            resources: vec![ResourceStatus {
                name: name("web_ip"),
                states: vec![(name("n1"), ip_n1), (name("n2"), ResourceState::Offline)],
            }],
        }],
    }
}

fn transitions(out: &[Change]) -> Vec<(String, Transition, bool)> {
    out.iter()
        .map(|c| (c.alert.kind.clone(), c.transition, c.suppressed))
        .collect()
}

#[test]
fn a_faulted_resource_raises_one_alert_until_it_is_no_longer_faulted() {
    let mut rules = Rules::new(settings());
    let mut out = Vec::new();
    rules.event("c", &resource(ResourceState::Faulted), SEC, &mut out);
    assert_eq!(out.len(), 1);
    let raised = &out[0];
    assert_eq!(raised.transition, Transition::Raised);
    assert_eq!(raised.alert.id, 1);
    assert_eq!(raised.alert.kind, "faulted_resource");
    assert_eq!(raised.alert.severity, AlertSeverity::Warning);
    assert_eq!(raised.alert.object.as_deref(), Some("web_ip"));
    assert_eq!(raised.alert.system.as_deref(), Some("n1"));
    assert_eq!(raised.alert.service_group.as_deref(), Some("web"));
    assert!(raised.alert.message.contains("web_ip") && raised.alert.message.contains("n1"));
    assert!(raised.notifies());

    // The same condition again (a monitor repeats it) raises nothing.
    out.clear();
    rules.event("c", &resource(ResourceState::Faulted), 2 * SEC, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(rules.open().count(), 1);

    rules.event("c", &resource(ResourceState::Offline), 3 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("faulted_resource".into(), Transition::Cleared, false)]
    );
    assert_eq!(out[0].alert.id, 1);
    assert_eq!(out[0].alert.cleared_ms, Some(3 * SEC));
    assert_eq!(rules.open().count(), 0);

    // Back again: a new alert, a new id.
    out.clear();
    rules.event("c", &resource(ResourceState::Faulted), 4 * SEC, &mut out);
    assert_eq!(out[0].alert.id, 2);
}

#[test]
fn a_failover_is_an_alert_until_the_group_is_online_again() {
    let mut rules = Rules::new(settings());
    let mut out = Vec::new();
    let failover = |to: Option<&str>| {
        event(EventKind::Failover {
            group: name("web"),
            from: name("n1"),
            to: to.map(name),
            reason: "web_ip faulted".into(),
        })
    };
    rules.event("c", &failover(Some("n2")), SEC, &mut out);
    assert_eq!(out[0].alert.severity, AlertSeverity::Warning);
    assert!(
        out[0].alert.message.contains("from n1 to n2"),
        "{}",
        out[0].alert.message
    );
    out.clear();
    rules.event("c", &group("n2", GroupState::Starting), 2 * SEC, &mut out);
    assert!(out.is_empty());
    rules.event("c", &group("n2", GroupState::Online), 3 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("failover".into(), Transition::Cleared, false)]
    );

    // Nowhere to go is critical.
    out.clear();
    rules.event("c", &failover(None), 4 * SEC, &mut out);
    assert_eq!(out[0].alert.severity, AlertSeverity::Critical);
    assert!(out[0].alert.message.contains("could not fail over"));
}

#[test]
fn a_lost_link_raises_an_alert_only_after_the_grace_period() {
    let mut rules = Rules::new(settings());
    let mut out = Vec::new();
    // A blip shorter than the grace raises nothing.
    rules.link("c", &link(LinkState::Disconnected, 0), 0, &mut out);
    rules.tick(29 * SEC, &mut out);
    rules.link(
        "c",
        &link(LinkState::Connected, 29 * SEC),
        29 * SEC,
        &mut out,
    );
    rules.tick(120 * SEC, &mut out);
    assert!(out.is_empty(), "{out:?}");

    // A longer outage does, once, and clears when the link is back.
    rules.link("c", &link(LinkState::Stale, 200 * SEC), 200 * SEC, &mut out);
    rules.link(
        "c",
        &link(LinkState::Disconnected, 210 * SEC),
        210 * SEC,
        &mut out,
    );
    rules.tick(229 * SEC, &mut out);
    assert!(out.is_empty(), "the outage began at 200 s: {out:?}");
    rules.tick(230 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("disconnected_cluster".into(), Transition::Raised, false)]
    );
    assert!(out[0].alert.message.contains("connection refused"));
    rules.tick(300 * SEC, &mut out);
    assert_eq!(out.len(), 1);
    rules.link(
        "c",
        &link(LinkState::Connected, 301 * SEC),
        301 * SEC,
        &mut out,
    );
    assert_eq!(out[1].transition, Transition::Cleared);
}

#[test]
fn an_object_left_frozen_raises_an_info_alert_after_frozen_after() {
    let mut rules = Rules::new(settings());
    let mut out = Vec::new();
    // The engine stamps the event when it happens: `at`.
    let freeze = |freeze, at: i64| {
        let mut e = event(EventKind::GroupFreeze {
            group: name("web"),
            freeze,
        });
        e.time_ms = at;
        e
    };
    rules.event(
        "c",
        &freeze(Freeze::Persistent, 10 * SEC),
        10 * SEC,
        &mut out,
    );
    rules.tick(3609 * SEC, &mut out);
    assert!(out.is_empty());
    rules.tick(3610 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("frozen_group".into(), Transition::Raised, false)]
    );
    assert_eq!(out[0].alert.severity, AlertSeverity::Info);
    rules.event("c", &freeze(Freeze::None, 3700 * SEC), 3700 * SEC, &mut out);
    assert_eq!(out[1].transition, Transition::Cleared);

    // Unfrozen in time: nothing.
    out.clear();
    rules.event(
        "c",
        &freeze(Freeze::Temporary, 4000 * SEC),
        4000 * SEC,
        &mut out,
    );
    rules.event("c", &freeze(Freeze::None, 4100 * SEC), 4100 * SEC, &mut out);
    rules.tick(9000 * SEC, &mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_flapping_condition_is_notified_once_then_held_back_until_it_settles() {
    let mut rules = Rules::new(settings());
    let mut out = Vec::new();
    // flap_changes = 4: the 5th change within the window starts flapping.
    for i in 0..5 {
        let to = if i % 2 == 0 {
            ResourceState::Faulted
        } else {
            ResourceState::Online
        };
        rules.event("c", &resource(to), (i + 1) * SEC, &mut out);
    }
    let seen = transitions(&out);
    assert_eq!(
        seen[..4],
        [
            ("faulted_resource".into(), Transition::Raised, false),
            ("faulted_resource".into(), Transition::Cleared, false),
            ("faulted_resource".into(), Transition::Raised, false),
            ("faulted_resource".into(), Transition::Cleared, false),
        ]
    );
    // The 5th: recorded, not notified, and one `flapping` notification.
    assert_eq!(
        seen[4..],
        [
            ("faulted_resource".into(), Transition::Raised, true),
            ("faulted_resource".into(), Transition::Flapping, false),
        ]
    );
    assert!(out[4].alert.flapping && !out[4].notifies() && out[5].notifies());

    out.clear();
    rules.event("c", &resource(ResourceState::Online), 10 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("faulted_resource".into(), Transition::Cleared, true)]
    );

    // Quiet for a whole window: it settles, with its state then (clear).
    out.clear();
    rules.tick(609 * SEC, &mut out);
    assert!(out.is_empty());
    rules.tick(610 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("faulted_resource".into(), Transition::Settled, false)]
    );
    assert!(out[0].alert.cleared_ms.is_some());

    // After settling, changes notify again.
    out.clear();
    rules.event("c", &resource(ResourceState::Faulted), 700 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("faulted_resource".into(), Transition::Raised, false)]
    );
    assert!(!out[0].alert.flapping);
}

#[test]
fn a_snapshot_raises_what_holds_and_clears_what_no_longer_does() {
    let mut rules = Rules::new(settings());
    let mut out = Vec::new();
    let bad = snapshot(
        GroupState::Faulted,
        GroupState::Online,
        ResourceState::Faulted,
        SystemState::Running,
    );
    rules.reconcile("c", &bad, SEC, &mut out);
    let mut kinds: Vec<String> = out.iter().map(|c| c.alert.kind.clone()).collect();
    kinds.sort();
    assert_eq!(kinds, ["faulted_group", "faulted_resource"]);
    assert!(out.iter().all(|c| c.transition == Transition::Raised));

    // Idempotent.
    out.clear();
    rules.reconcile("c", &bad, 2 * SEC, &mut out);
    assert!(out.is_empty(), "{out:?}");

    // Online on both systems (a concurrency violation), n2 exited; the
    // faults are gone.
    let violating = snapshot(
        GroupState::Online,
        GroupState::Online,
        ResourceState::Online,
        SystemState::Exited,
    );
    rules.reconcile("c", &violating, 3 * SEC, &mut out);
    let mut seen: Vec<(String, Transition)> = out
        .iter()
        .map(|c| (c.alert.kind.clone(), c.transition))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("concurrency_violation".into(), Transition::Raised),
            ("exited_system".into(), Transition::Raised),
            ("faulted_group".into(), Transition::Cleared),
            ("faulted_resource".into(), Transition::Cleared),
        ]
    );
    let violation = out
        .iter()
        .find(|c| c.alert.kind == "concurrency_violation")
        .unwrap();
    assert_eq!(violation.alert.severity, AlertSeverity::Critical);
    assert!(violation.alert.message.contains("n1, n2"));

    // A group state change ends the violation.
    out.clear();
    let fixed = snapshot(
        GroupState::Online,
        GroupState::Offline,
        ResourceState::Online,
        SystemState::Exited,
    );
    rules.recheck_concurrency("c", &fixed, "web", 4 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("concurrency_violation".into(), Transition::Cleared, false)]
    );

    // A removed cluster's alerts clear.
    out.clear();
    rules.removed("c", 5 * SEC, &mut out);
    assert_eq!(
        transitions(&out),
        [("exited_system".into(), Transition::Cleared, false)]
    );
    assert_eq!(rules.open().count(), 0);
}

#[test]
fn a_restart_continues_from_the_stored_alerts() {
    let mut before = Rules::new(settings());
    let mut out = Vec::new();
    before.event("c", &resource(ResourceState::Faulted), SEC, &mut out);
    let open: Vec<AlertRecord> = before.open().cloned().collect();

    let mut after = Rules::new(settings());
    after.load(open, Vec::new(), 7, 2 * SEC);
    assert_eq!(after.open().count(), 1);
    // Still open: no second alert for the same fault.
    out.clear();
    after.event("c", &resource(ResourceState::Faulted), 3 * SEC, &mut out);
    assert!(out.is_empty());
    // New alerts are numbered after the highest stored id.
    after.event("c", &group("n1", GroupState::Faulted), 4 * SEC, &mut out);
    assert_eq!(out[0].alert.id, 8);
}

#[test]
fn the_first_acknowledgement_stays() {
    let mut rules = Rules::new(settings());
    let mut out = Vec::new();
    rules.event("c", &resource(ResourceState::Faulted), SEC, &mut out);
    let id = out[0].alert.id;
    let Ack::Done(change) = rules.acknowledge(id, "alice", 2 * SEC) else {
        panic!("acknowledged")
    };
    assert_eq!(change.alert.acknowledged_by.as_deref(), Some("alice"));
    assert!(!change.notifies());
    let Ack::Already(alert) = rules.acknowledge(id, "bob", 3 * SEC) else {
        panic!("already acknowledged")
    };
    assert_eq!(alert.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(alert.acknowledged_ms, Some(2 * SEC));
    assert_eq!(rules.acknowledge(999, "bob", 3 * SEC), Ack::NotOpen);
    // Clearing keeps the acknowledgement.
    out.clear();
    rules.event("c", &resource(ResourceState::Online), 4 * SEC, &mut out);
    assert_eq!(out[0].alert.acknowledged_by.as_deref(), Some("alice"));
}
