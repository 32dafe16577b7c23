//! Alerts and their delivery log through the `AlertStore` trait. Every
//! test runs on both backends (`sqlite::` and `postgres::`).

mod common;

use haven_store::{
    AlertQuery, AlertRecord, AlertSeverity, DeliveryOutcome, DeliveryQuery, NewDelivery, Store,
};

common::on_both_backends!(
    alerts_are_added_updated_and_read_back_newest_first,
    a_second_open_alert_of_one_key_is_refused_and_nothing_of_the_batch_is_stored,
    a_key_opens_again_as_a_new_alert_once_cleared,
    an_acknowledgement_stays_when_a_later_write_has_none,
    the_first_acknowledgement_wins_and_an_unknown_alert_is_none,
    alerts_filter_by_state_cluster_clusters_id_and_time,
    the_highest_id_is_zero_without_alerts,
    deliveries_are_recorded_together_and_filtered_newest_first,
    prune_removes_old_cleared_alerts_and_attempts_and_keeps_open_ones,
);

fn alert(id: i64, cluster: &str, object: &str, raised_ms: i64) -> AlertRecord {
    AlertRecord {
        id,
        cluster: cluster.into(),
        kind: "faulted_resource".into(),
        object: Some(object.into()),
        system: Some("n1".into()),
        service_group: Some("web".into()),
        severity: AlertSeverity::Warning,
        message: format!("resource {object} faulted on n1"),
        raised_ms,
        cleared_ms: None,
        acknowledged_by: None,
        acknowledged_ms: None,
        flapping: false,
    }
}

fn all(store: &dyn Store) -> Vec<AlertRecord> {
    store
        .alerts(&AlertQuery {
            limit: 1000,
            ..AlertQuery::default()
        })
        .expect("reads")
}

fn alerts_are_added_updated_and_read_back_newest_first(store: &mut dyn Store) {
    let mut a = alert(1, "c1", "web_ip", 100);
    a.object = None; // a system-wide condition
    a.kind = "faulted_system".into();
    a.service_group = None;
    let b = alert(2, "c1", "web_proc", 200);
    store.save_alerts(&[a.clone(), b.clone()]).expect("saves");
    assert_eq!(all(store), vec![b.clone(), a.clone()]);

    let mut cleared = b.clone();
    cleared.cleared_ms = Some(300);
    cleared.flapping = true;
    cleared.severity = AlertSeverity::Critical;
    cleared.message = "changed".into();
    // Identity columns never change, whatever a later write says.
    let mut moved = cleared.clone();
    moved.cluster = "elsewhere".into();
    moved.raised_ms = 5;
    store.save_alerts(&[moved]).expect("updates");
    assert_eq!(all(store), vec![cleared, a]);
}

fn a_second_open_alert_of_one_key_is_refused_and_nothing_of_the_batch_is_stored(
    store: &mut dyn Store,
) {
    store
        .save_alerts(&[alert(1, "c1", "web_ip", 100)])
        .expect("saves");
    let other = alert(2, "c1", "db_fs", 150);
    let twin = alert(3, "c1", "web_ip", 200);
    store
        .save_alerts(&[other, twin])
        .expect_err("a second open alert of the same key");
    assert_eq!(all(store), vec![alert(1, "c1", "web_ip", 100)]);
    // No object and no system compare as equal too.
    let mut cluster_wide = alert(4, "c1", "x", 300);
    cluster_wide.kind = "disconnected_cluster".into();
    cluster_wide.object = None;
    cluster_wide.system = None;
    let mut again = cluster_wide.clone();
    again.id = 5;
    store.save_alerts(&[cluster_wide]).expect("saves");
    store.save_alerts(&[again]).expect_err("the same key, open");
}

fn a_key_opens_again_as_a_new_alert_once_cleared(store: &mut dyn Store) {
    let mut first = alert(1, "c1", "web_ip", 100);
    store.save_alerts(&[first.clone()]).expect("saves");
    first.cleared_ms = Some(150);
    let second = alert(2, "c1", "web_ip", 200);
    // Cleared and raised again in one batch, in that order.
    store
        .save_alerts(&[first.clone(), second.clone()])
        .expect("saves");
    assert_eq!(all(store), vec![second, first]);
    assert_eq!(store.max_alert_id().expect("reads"), 2);
}

fn an_acknowledgement_stays_when_a_later_write_has_none(store: &mut dyn Store) {
    let a = alert(7, "c1", "web_ip", 100);
    store.save_alerts(std::slice::from_ref(&a)).expect("saves");
    store
        .acknowledge_alert(7, "alice", 120)
        .expect("acknowledges");
    let mut cleared = a.clone();
    cleared.cleared_ms = Some(130);
    store.save_alerts(&[cleared.clone()]).expect("saves");
    let mut expected = cleared.clone();
    expected.acknowledged_by = Some("alice".into());
    expected.acknowledged_ms = Some(120);
    assert_eq!(all(store), vec![expected.clone()]);
    // And a write with another acknowledgement does not replace it.
    let mut other = cleared;
    other.acknowledged_by = Some("bob".into());
    other.acknowledged_ms = Some(140);
    store.save_alerts(&[other]).expect("saves");
    assert_eq!(all(store), vec![expected]);
}

fn the_first_acknowledgement_wins_and_an_unknown_alert_is_none(store: &mut dyn Store) {
    store
        .save_alerts(&[alert(1, "c1", "web_ip", 100)])
        .expect("saves");
    let acked = store
        .acknowledge_alert(1, "alice", 110)
        .expect("acknowledges")
        .expect("the alert");
    assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(acked.acknowledged_ms, Some(110));
    let again = store
        .acknowledge_alert(1, "bob", 120)
        .expect("answers")
        .expect("the alert");
    assert_eq!(again, acked);
    assert_eq!(
        store.acknowledge_alert(99, "bob", 120).expect("answers"),
        None
    );
}

fn alerts_filter_by_state_cluster_clusters_id_and_time(store: &mut dyn Store) {
    let open_c1 = alert(1, "c1", "a", 100);
    let mut cleared_c1 = alert(2, "c1", "b", 200);
    cleared_c1.cleared_ms = Some(900);
    let open_c2 = alert(3, "c2", "a", 300);
    store
        .save_alerts(&[open_c1.clone(), cleared_c1.clone(), open_c2.clone()])
        .expect("saves");
    let query = |q: AlertQuery| {
        store
            .alerts(&q)
            .expect("reads")
            .into_iter()
            .map(|a| a.id)
            .collect::<Vec<_>>()
    };
    let base = AlertQuery::default();
    assert_eq!(query(base.clone()), vec![3, 2, 1]);
    assert_eq!(
        query(AlertQuery {
            open: Some(true),
            ..base.clone()
        }),
        vec![3, 1]
    );
    assert_eq!(
        query(AlertQuery {
            open: Some(false),
            ..base.clone()
        }),
        vec![2]
    );
    assert_eq!(
        query(AlertQuery {
            cluster: Some("c1".into()),
            ..base.clone()
        }),
        vec![2, 1]
    );
    assert_eq!(
        query(AlertQuery {
            clusters: Some(vec!["c2".into()]),
            ..base.clone()
        }),
        vec![3]
    );
    assert_eq!(
        query(AlertQuery {
            clusters: Some(vec![]),
            ..base.clone()
        }),
        Vec::<i64>::new()
    );
    assert_eq!(
        query(AlertQuery {
            id: Some(2),
            ..base.clone()
        }),
        vec![2]
    );
    // Raised at or after 250, or cleared at or after it.
    assert_eq!(
        query(AlertQuery {
            since_ms: Some(250),
            ..base.clone()
        }),
        vec![3, 2]
    );
    assert_eq!(query(AlertQuery { limit: 1, ..base }), vec![3]);
}

fn the_highest_id_is_zero_without_alerts(store: &mut dyn Store) {
    assert_eq!(store.max_alert_id().expect("reads"), 0);
    store
        .save_alerts(&[alert(41, "c1", "a", 1)])
        .expect("saves");
    assert_eq!(store.max_alert_id().expect("reads"), 41);
}

fn delivery(alert_id: Option<i64>, channel: &str, attempt: u32, time_ms: i64) -> NewDelivery {
    NewDelivery {
        alert_id,
        channel: channel.into(),
        event: if alert_id.is_some() { "raised" } else { "test" }.into(),
        attempt,
        outcome: if attempt < 3 {
            DeliveryOutcome::Failed
        } else {
            DeliveryOutcome::Sent
        },
        error: (attempt < 3).then(|| "HTTP 503".to_string()),
        time_ms,
    }
}

fn deliveries_are_recorded_together_and_filtered_newest_first(store: &mut dyn Store) {
    let rows = vec![
        delivery(Some(1), "hook", 1, 10),
        delivery(Some(1), "hook", 2, 20),
        delivery(Some(1), "hook", 3, 30),
        delivery(None, "mail", 1, 40),
    ];
    store.insert_deliveries(&rows).expect("records");
    let read = |q: DeliveryQuery| {
        store
            .deliveries(&q)
            .expect("reads")
            .into_iter()
            .map(|d| {
                (
                    d.alert_id, d.channel, d.attempt, d.outcome, d.error, d.time_ms,
                )
            })
            .collect::<Vec<_>>()
    };
    let everything = read(DeliveryQuery::default());
    assert_eq!(everything.len(), 4);
    assert_eq!(everything[0].5, 40, "newest first");
    assert_eq!(
        read(DeliveryQuery {
            alert_id: Some(1),
            outcome: Some(DeliveryOutcome::Failed),
            ..DeliveryQuery::default()
        }),
        vec![
            (
                Some(1),
                "hook".to_string(),
                2,
                DeliveryOutcome::Failed,
                Some("HTTP 503".to_string()),
                20
            ),
            (
                Some(1),
                "hook".to_string(),
                1,
                DeliveryOutcome::Failed,
                Some("HTTP 503".to_string()),
                10
            ),
        ]
    );
    let mail = store
        .deliveries(&DeliveryQuery {
            channel: Some("mail".into()),
            ..DeliveryQuery::default()
        })
        .expect("reads");
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].event, "test");
    assert_eq!(mail[0].alert_id, None);
    assert_eq!(
        read(DeliveryQuery {
            limit: 2,
            ..DeliveryQuery::default()
        })
        .len(),
        2
    );
}

fn prune_removes_old_cleared_alerts_and_attempts_and_keeps_open_ones(store: &mut dyn Store) {
    let mut old_cleared = alert(1, "c1", "a", 100);
    old_cleared.cleared_ms = Some(200);
    let old_open = alert(2, "c1", "b", 100);
    let mut recent_cleared = alert(3, "c1", "c", 100);
    recent_cleared.cleared_ms = Some(2_000);
    store
        .save_alerts(&[old_cleared, old_open.clone(), recent_cleared.clone()])
        .expect("saves");
    store
        .insert_deliveries(&[
            delivery(Some(1), "mail", 1, 150),
            delivery(Some(3), "mail", 1, 2_500),
        ])
        .expect("records");
    let report = store.prune(1_000, None, &|_| {}).expect("prunes");
    assert_eq!(report.alerts_removed, 2, "{report:?}");
    let mut ids: Vec<i64> = all(store).iter().map(|a| a.id).collect();
    ids.sort();
    assert_eq!(ids, [2, 3], "the open alert stays, however old");
    let left = store
        .deliveries(&DeliveryQuery {
            limit: 100,
            ..DeliveryQuery::default()
        })
        .expect("reads");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].alert_id, Some(3));
}
