//! Configuration and the audit trail through the `Store` trait: clusters,
//! settings, operations.

mod common;

use haven_model::{name, Operation};
use haven_store::{
    ClusterRecord, NewOperation, OperationQuery, Outcome, SqliteStore, Store, StoreError,
};

fn store() -> SqliteStore {
    SqliteStore::open_in_memory().expect("opens")
}

fn cluster(name: &str, address: &str) -> ClusterRecord {
    ClusterRecord {
        name: name.into(),
        address: address.into(),
        user: Some("admin".into()),
        password: Some("secret".into()),
        added_ms: 1_000,
    }
}

#[test]
fn clusters_are_added_replaced_listed_by_name_and_removed() {
    let mut store = store();
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

#[test]
fn removing_a_cluster_keeps_its_history_and_cursor() {
    let mut store = store();
    store.upsert_cluster(&cluster("c1", "h:1")).expect("adds");
    store.append(&common::rows("c1", 1, 1, 3)).expect("appends");
    store.remove_cluster("c1").expect("removes");
    assert_eq!(store.seq_ranges(Some("c1")).expect("ranges")[0].count, 3);
    assert!(store.cursors().expect("cursors").contains_key("c1"));
}

#[test]
fn settings_are_set_replaced_and_read() {
    let mut store = store();
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

#[test]
fn an_operation_is_recorded_then_finished() {
    let mut store = store();
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

#[test]
fn finishing_an_unknown_operation_is_an_error() {
    let mut store = store();
    let err = store
        .finish_operation(42, Outcome::Completed, None, 1)
        .expect_err("unknown");
    assert!(matches!(err, StoreError::UnknownOperation(42)), "{err}");
}

#[test]
fn operations_filter_by_cluster_and_user_newest_first() {
    let mut store = store();
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

#[test]
fn a_join_token_is_spent_once_and_refused_when_wrong_expired_or_for_another_cluster() {
    use haven_store::{ConnectorRecord, JoinTokenRecord, SqliteStore, Store};
    let mut store = SqliteStore::open_in_memory().unwrap();
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
    let spend = |s: &mut SqliteStore, id: &str, hash: &str, cluster: &str| {
        s.spend_join_token(id, hash, cluster, 100).unwrap()
    };
    assert!(spend(&mut store, "zz", "h", "x")
        .unwrap_err()
        .contains("unknown"));
    assert!(spend(&mut store, "a", "wrong", "x")
        .unwrap_err()
        .contains("wrong"));
    assert!(spend(&mut store, "b", "h", "x")
        .unwrap_err()
        .contains("expired"));
    assert!(spend(&mut store, "c", "h", "west")
        .unwrap_err()
        .contains("east"));
    assert_eq!(spend(&mut store, "a", "h", "x"), Ok(()));
    assert!(spend(&mut store, "a", "h", "x")
        .unwrap_err()
        .contains("already used"));
    assert_eq!(spend(&mut store, "c", "h", "east"), Ok(()));

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
