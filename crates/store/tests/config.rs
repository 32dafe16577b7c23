//! Configuration and the audit trail through the `Store` trait: clusters,
//! settings, operations, join tokens and connectors, grants and the access
//! log. Every test runs on both backends (`sqlite::` and `postgres::`).

mod common;

use haven_model::{name, Operation};
use haven_store::{
    AccessOutcome, AccessQuery, ClusterRecord, ConnectorRecord, JoinTokenRecord, NewAccess,
    NewGrant, NewOperation, OperationQuery, Outcome, Store, StoreError,
};

common::on_both_backends!(
    clusters_are_added_replaced_listed_by_name_and_removed,
    clusters_are_listed_in_the_byte_order_of_their_names,
    removing_a_cluster_keeps_its_history_and_cursor,
    settings_are_set_replaced_and_read,
    an_operation_is_recorded_then_finished,
    finishing_an_unknown_operation_is_an_error,
    operations_filter_by_cluster_and_user_newest_first,
    operations_filter_by_a_list_of_clusters,
    a_join_token_is_spent_once_and_refused_when_wrong_expired_or_for_another_cluster,
    a_grant_is_stored_once_and_deleted_with_its_row,
    a_grant_of_a_group_scope_without_a_cluster_is_an_error,
    access_entries_are_stored_together_and_filtered_newest_first,
);

fn cluster(name: &str, address: &str) -> ClusterRecord {
    ClusterRecord {
        name: name.into(),
        address: address.into(),
        user: Some("admin".into()),
        password: Some("secret".into()),
        added_ms: 1_000,
    }
}

fn clusters_are_added_replaced_listed_by_name_and_removed(store: &mut dyn Store) {
    store
        .upsert_cluster(&cluster("zeta", "z:14141"))
        .expect("adds");
    store
        .upsert_cluster(&cluster("alpha", "a:14141"))
        .expect("adds");
    let mut moved = cluster("zeta", "z2:14141");
    moved.user = None;
    moved.password = None;
    store.upsert_cluster(&moved).expect("replaces");

    let listed = store.list_clusters().expect("lists");
    assert_eq!(listed, vec![cluster("alpha", "a:14141"), moved]);

    assert!(store.remove_cluster("alpha").expect("removes"));
    assert!(!store.remove_cluster("alpha").expect("removes nothing"));
    assert_eq!(store.list_clusters().expect("lists").len(), 1);
}

fn removing_a_cluster_keeps_its_history_and_cursor(store: &mut dyn Store) {
    store.upsert_cluster(&cluster("c1", "h:1")).expect("adds");
    store.append(&common::rows("c1", 1, 1, 3)).expect("appends");
    store.remove_cluster("c1").expect("removes");
    assert_eq!(store.seq_ranges(Some("c1")).expect("ranges")[0].count, 3);
    assert!(store.cursors().expect("cursors").contains_key("c1"));
}

fn settings_are_set_replaced_and_read(store: &mut dyn Store) {
    assert_eq!(store.setting("retention_days").expect("reads"), None);
    store.set_setting("retention_days", "30").expect("sets");
    store.set_setting("retention_days", "90").expect("replaces");
    assert_eq!(
        store.setting("retention_days").expect("reads").as_deref(),
        Some("90")
    );
}

fn new_op(cluster: &str, user: &str, requested_ms: i64) -> NewOperation {
    NewOperation {
        cluster: cluster.into(),
        user: user.into(),
        op: Operation::GroupSwitch {
            group: name("web"),
            to: Some(name("sysB")),
        },
        requested_ms,
    }
}

fn an_operation_is_recorded_then_finished(store: &mut dyn Store) {
    let id = store
        .insert_operation(&new_op("c1", "alice", 10))
        .expect("records");
    let pending = &store.operations(&OperationQuery::default()).expect("lists")[0];
    assert_eq!(
        (pending.id, pending.outcome, pending.finished_ms),
        (id, None, None)
    );
    assert_eq!(pending.op, new_op("c1", "alice", 10).op);

    store
        .finish_operation(id, Outcome::Accepted, None, 11)
        .expect("accepted");
    store
        .finish_operation(id, Outcome::Failed, Some("web_proc faulted on sysB"), 15)
        .expect("failed");
    let done = &store.operations(&OperationQuery::default()).expect("lists")[0];
    assert_eq!(done.outcome, Some(Outcome::Failed));
    assert_eq!(done.reason.as_deref(), Some("web_proc faulted on sysB"));
    assert_eq!(done.finished_ms, Some(15));
    assert_eq!((done.cluster.as_str(), done.user.as_str()), ("c1", "alice"));
}

fn finishing_an_unknown_operation_is_an_error(store: &mut dyn Store) {
    let err = store
        .finish_operation(42, Outcome::Completed, None, 1)
        .expect_err("unknown");
    assert!(matches!(err, StoreError::UnknownOperation(42)), "{err}");
}

fn operations_filter_by_cluster_and_user_newest_first(store: &mut dyn Store) {
    let a = store
        .insert_operation(&new_op("c1", "alice", 10))
        .expect("records");
    let b = store
        .insert_operation(&new_op("c2", "alice", 30))
        .expect("records");
    let c = store
        .insert_operation(&new_op("c1", "bob", 20))
        .expect("records");
    let ids = |q: OperationQuery| -> Vec<i64> {
        store
            .operations(&q)
            .expect("lists")
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    assert_eq!(ids(OperationQuery::default()), vec![b, c, a]);
    assert_eq!(
        ids(OperationQuery {
            cluster: Some("c1".into()),
            ..Default::default()
        }),
        vec![c, a]
    );
    assert_eq!(
        ids(OperationQuery {
            user: Some("alice".into()),
            limit: 1,
            ..Default::default()
        }),
        vec![b]
    );
}

fn a_join_token_is_spent_once_and_refused_when_wrong_expired_or_for_another_cluster(
    store: &mut dyn Store,
) {
    let token = |id: &str, cluster: Option<&str>, expires_ms| JoinTokenRecord {
        id: id.into(),
        secret_hash: "h".into(),
        cluster: cluster.map(Into::into),
        created_ms: 0,
        expires_ms,
    };
    store.insert_join_token(&token("a", None, 1000)).unwrap();
    store.insert_join_token(&token("b", None, 10)).unwrap();
    store
        .insert_join_token(&token("c", Some("east"), 1000))
        .unwrap();
    let spend = |s: &mut dyn Store, id: &str, hash: &str, cluster: &str| {
        s.spend_join_token(id, hash, cluster, 100).unwrap()
    };
    assert!(spend(store, "zz", "h", "x")
        .unwrap_err()
        .contains("unknown"));
    assert!(spend(store, "a", "wrong", "x")
        .unwrap_err()
        .contains("wrong"));
    assert!(spend(store, "b", "h", "x").unwrap_err().contains("expired"));
    assert!(spend(store, "c", "h", "west").unwrap_err().contains("east"));
    assert_eq!(spend(store, "a", "h", "x"), Ok(()));
    assert!(spend(store, "a", "h", "x")
        .unwrap_err()
        .contains("already used"));
    assert_eq!(spend(store, "c", "h", "east"), Ok(()));

    let conn = |id: &str, cluster: &str| ConnectorRecord {
        id: id.into(),
        cluster: cluster.into(),
        secret_hash: "s".into(),
        version: "1".into(),
        joined_ms: 1,
    };
    store.upsert_connector(&conn("one", "east")).unwrap();
    store.upsert_connector(&conn("two", "east")).unwrap();
    store.upsert_connector(&conn("three", "west")).unwrap();
    let ids: Vec<String> = store
        .connectors()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids,
        vec!["two", "three"],
        "a re-join replaces the cluster's connector"
    );
}

fn clusters_are_listed_in_the_byte_order_of_their_names(store: &mut dyn Store) {
    // Byte order, whatever the database's locale: upper case before
    // '_' before lower case, digits one by one.
    for name in ["b9", "a", "_x", "B", "b10"] {
        store.upsert_cluster(&cluster(name, "h:1")).expect("adds");
    }
    let names: Vec<String> = store
        .list_clusters()
        .expect("lists")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["B", "_x", "a", "b10", "b9"]);
}

fn names(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|c| c.to_string()).collect())
}

fn operations_filter_by_a_list_of_clusters(store: &mut dyn Store) {
    let mut ids = std::collections::HashMap::new();
    for (i, cluster) in ["c1", "c2", "c3"].into_iter().enumerate() {
        let id = store
            .insert_operation(&new_op(cluster, "alice", 10 * i as i64))
            .expect("records");
        ids.insert(cluster, id);
    }
    let found = |q: OperationQuery| -> Vec<i64> {
        store
            .operations(&q)
            .expect("lists")
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    assert_eq!(
        found(OperationQuery {
            clusters: names(&["c1", "c3", "elsewhere"]),
            ..Default::default()
        }),
        [ids["c3"], ids["c1"]]
    );
    assert_eq!(
        found(OperationQuery {
            clusters: names(&[]),
            ..Default::default()
        }),
        Vec::<i64>::new(),
        "an empty list matches nothing"
    );
    assert_eq!(
        found(OperationQuery {
            cluster: Some("c1".into()),
            clusters: names(&["c1", "c2"]),
            user: Some("alice".into()),
            ..Default::default()
        }),
        [ids["c1"]]
    );
    assert_eq!(
        found(OperationQuery {
            cluster: Some("c3".into()),
            clusters: names(&["c1", "c2"]),
            ..Default::default()
        }),
        Vec::<i64>::new(),
        "both the cluster and the list must match"
    );
}

fn grant(kind: &str, principal: &str, role: &str, scope: (Option<&str>, Option<&str>)) -> NewGrant {
    NewGrant {
        principal_kind: kind.into(),
        principal: principal.into(),
        role: role.into(),
        cluster: scope.0.map(str::to_owned),
        service_group: scope.1.map(str::to_owned),
        created_ms: 100,
        created_by: "root".into(),
    }
}

fn a_grant_is_stored_once_and_deleted_with_its_row(store: &mut dyn Store) {
    let fleet = grant("user", "alice", "fleet_operator", (None, None));
    let cluster = grant("user", "alice", "cluster_operator", (Some("c1"), None));
    let group = grant("group", "ops", "group_operator", (Some("c1"), Some("web")));
    let mut ids: Vec<i64> = [&fleet, &cluster, &group]
        .into_iter()
        .map(|g| store.insert_grant(g).expect("grants").expect("new"))
        .collect();

    // Again, NULL scope columns included: nothing new, nothing changed.
    for g in [&fleet, &cluster, &group] {
        let again = NewGrant {
            created_ms: 999,
            created_by: "someone else".into(),
            ..g.clone()
        };
        assert_eq!(store.insert_grant(&again).expect("grants"), None, "{g:?}");
    }
    // Any difference in principal, role or scope is another grant.
    for g in [
        grant("group", "alice", "fleet_operator", (None, None)),
        grant("user", "bob", "fleet_operator", (None, None)),
        grant("user", "alice", "fleet_guest", (None, None)),
        grant("user", "alice", "fleet_operator", (Some("c1"), None)),
        grant("group", "ops", "group_operator", (Some("c1"), None)),
        grant("group", "ops", "group_operator", (Some("c2"), Some("web"))),
    ] {
        // A skipped duplicate may use up an id: ids grow, with holes.
        let id = store.insert_grant(&g).expect("grants");
        ids.push(id.unwrap_or_else(|| panic!("{g:?} is new")));
    }
    let stored = store.grants().expect("lists");
    assert_eq!(
        stored.iter().map(|g| g.id).collect::<Vec<_>>(),
        ids,
        "in the order they were made"
    );
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        (stored[0].created_ms, stored[0].created_by.as_str()),
        (100, "root")
    );

    let removed = store
        .delete_grant(ids[2])
        .expect("deletes")
        .expect("was there");
    assert_eq!(
        (
            removed.id,
            removed.principal_kind.as_str(),
            removed.principal.as_str(),
            removed.role.as_str(),
            removed.cluster.as_deref(),
            removed.service_group.as_deref()
        ),
        (
            ids[2],
            "group",
            "ops",
            "group_operator",
            Some("c1"),
            Some("web")
        )
    );
    assert_eq!(store.delete_grant(ids[2]).expect("deletes"), None);
    assert_eq!(store.delete_grant(4242).expect("deletes"), None);
    assert_eq!(store.grants().expect("lists").len(), ids.len() - 1);
    // Once removed, the same grant can be made again.
    assert!(store.insert_grant(&group).expect("grants").is_some());
}

fn a_grant_of_a_group_scope_without_a_cluster_is_an_error(store: &mut dyn Store) {
    for g in [
        grant("role", "alice", "fleet_operator", (None, None)),
        grant("group", "ops", "group_operator", (None, Some("web"))),
    ] {
        let err = store.insert_grant(&g).expect_err("refused");
        assert!(err.to_string().to_lowercase().contains("check"), "{err}");
    }
    assert_eq!(store.grants().expect("lists"), vec![]);
}

fn access(time_ms: i64, user: &str, action: &str, outcome: AccessOutcome) -> NewAccess {
    NewAccess {
        time_ms,
        user: user.into(),
        source: Some("127.0.0.1:5000".into()),
        action: action.into(),
        target: None,
        cluster: None,
        outcome,
        reason: None,
    }
}

fn access_entries_are_stored_together_and_filtered_newest_first(store: &mut dyn Store) {
    let denied = NewAccess {
        time_ms: 30,
        user: "-".into(),
        source: Some("local socket".into()),
        action: "read".into(),
        target: Some("/api/v1/clusters/c1".into()),
        cluster: Some("c1".into()),
        outcome: AccessOutcome::Denied,
        reason: Some("no role on cluster c1".into()),
    };
    let on = |cluster: &str, mut a: NewAccess| {
        a.cluster = Some(cluster.into());
        a
    };
    store
        .insert_access(&[
            access(10, "alice", "login", AccessOutcome::Allowed),
            denied.clone(),
            on("c2", access(20, "bob", "read", AccessOutcome::Allowed)),
            // Same time as the first: the later entry comes first.
            access(10, "carol", "login", AccessOutcome::Failed),
            on("c1", access(40, "bob", "logout", AccessOutcome::Failed)),
        ])
        .expect("records");
    store.insert_access(&[]).expect("an empty batch is fine");

    let all = store.access_log(&AccessQuery::default()).expect("reads");
    let users: Vec<&str> = all.iter().map(|a| a.user.as_str()).collect();
    assert_eq!(users, ["bob", "-", "bob", "carol", "alice"]);
    let back = &all[1];
    assert_eq!(
        (
            back.time_ms,
            &back.user,
            &back.source,
            &back.action,
            &back.target,
            &back.cluster,
            back.outcome,
            &back.reason
        ),
        (
            denied.time_ms,
            &denied.user,
            &denied.source,
            &denied.action,
            &denied.target,
            &denied.cluster,
            denied.outcome,
            &denied.reason
        )
    );
    assert!(all.windows(2).all(|w| w[0].id != w[1].id));

    let times = |q: AccessQuery| -> Vec<i64> {
        store
            .access_log(&q)
            .expect("reads")
            .into_iter()
            .map(|a| a.time_ms)
            .collect()
    };
    let q = AccessQuery::default;
    assert_eq!(times(AccessQuery { limit: 2, ..q() }), [40, 30]);
    assert_eq!(times(AccessQuery { limit: 0, ..q() }), Vec::<i64>::new());
    let user = |u: &str| Some(u.to_owned());
    assert_eq!(
        times(AccessQuery {
            user: user("alice"),
            ..q()
        }),
        [10]
    );
    assert_eq!(
        times(AccessQuery {
            action: user("read"),
            ..q()
        }),
        [30, 20]
    );
    assert_eq!(
        times(AccessQuery {
            outcome: Some(AccessOutcome::Failed),
            ..q()
        }),
        [40, 10]
    );
    assert_eq!(
        times(AccessQuery {
            cluster: user("c1"),
            ..q()
        }),
        [40, 30]
    );
    assert_eq!(
        times(AccessQuery {
            since_ms: Some(20),
            ..q()
        }),
        [40, 30, 20]
    );
    assert_eq!(
        times(AccessQuery {
            user: user("bob"),
            outcome: Some(AccessOutcome::Failed),
            cluster: user("c1"),
            since_ms: Some(40),
            ..q()
        }),
        [40],
        "filters are ANDed"
    );
}
