//! Unit tests of the SQLite backend that need its internals (columns,
//! query plans, migrations from an older schema), and of schema version 3
//! (access log, grants, the `clusters` filters). Other behaviour through
//! the `Store` trait is tested in `tests/`.

use haven_model::{
    name, Event, EventKind, Freeze, GroupState, Operation, ResourceState, Severity, SystemState,
};

use crate::{AccessOutcome, AccessQuery, AccessRecord, GrantRecord, NewAccess, NewGrant};

use super::*;

/// At least one event of every kind, with optional fields both set and
/// unset. `EventColumns::of` matches every kind without a wildcard, so a new
/// kind fails to compile there until it is given columns; add it here too.
pub(crate) fn every_kind() -> Vec<EventKind> {
    vec![
        EventKind::ResourceState {
            group: name("g"),
            resource: name("r"),
            system: name("s"),
            from: ResourceState::Offline,
            to: ResourceState::GoingOnline,
        },
        EventKind::GroupState {
            group: name("g"),
            system: name("s"),
            from: GroupState::Offline,
            to: GroupState::Starting,
        },
        EventKind::SystemState {
            system: name("s"),
            from: SystemState::Running,
            to: SystemState::Faulted,
        },
        EventKind::GroupFreeze {
            group: name("g"),
            freeze: Freeze::Temporary,
        },
        EventKind::SystemFreeze {
            system: name("s"),
            freeze: Freeze::Persistent,
        },
        EventKind::GroupEnabled {
            group: name("g"),
            enabled: false,
        },
        EventKind::ConcurrencyViolation {
            group: name("g"),
            systems: vec![name("s"), name("t")],
        },
        EventKind::Failover {
            group: name("g"),
            from: name("s"),
            to: Some(name("t")),
            reason: "resource r faulted".into(),
        },
        EventKind::Failover {
            group: name("g"),
            from: name("s"),
            to: None,
            reason: "no eligible system".into(),
        },
        EventKind::Notice {
            severity: Severity::Warning,
            object: Some(name("r")),
            message: "monitor timed out".into(),
        },
        EventKind::Notice {
            severity: Severity::Info,
            object: None,
            message: "engine started".into(),
        },
    ]
}

fn rows_of(kinds: Vec<EventKind>) -> Vec<HistoryRow> {
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| HistoryRow {
            cluster: "c1".into(),
            epoch: 7,
            event: Event {
                seq: i as u64 + 1,
                time_ms: 1_000 + i as i64,
                kind,
            },
        })
        .collect()
}

#[test]
fn every_event_kind_reads_back_as_appended() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let rows = rows_of(every_kind());
    let report = store.append(&rows).expect("appends");
    assert_eq!(report.inserted, rows.len());

    let mut back = store
        .history(&HistoryQuery {
            limit: 1_000,
            ..Default::default()
        })
        .expect("reads");
    back.reverse(); // newest first
    assert_eq!(back, rows);
}

/// `type`, `system`, `object`, `new_state` of a stored row.
type SomeColumns = (String, Option<String>, Option<String>, Option<String>);

#[test]
fn query_columns_hold_the_event_fields() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    store.append(&rows_of(every_kind())).expect("appends");
    let stored: Vec<SomeColumns> = store
        .conn
        .prepare("SELECT type, system, object, new_state FROM history ORDER BY id")
        .expect("prepares")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("reads");
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        stored[0],
        (
            "resource_state".into(),
            some("s"),
            None,
            some("GOING_ONLINE")
        )
    );
    assert_eq!(
        stored[3],
        ("group_freeze".into(), None, None, some("temporary"))
    );
    assert_eq!(
        stored[5],
        ("group_enabled".into(), None, None, some("disabled"))
    );
    assert_eq!(stored[7], ("failover".into(), some("s"), None, None));
    assert_eq!(stored[9], ("notice".into(), None, some("r"), None));
}

/// The plan SQLite picks for a history query, one line per step.
fn plan(store: &SqliteStore, q: &HistoryQuery) -> String {
    let mut select = Select::from("EXPLAIN QUERY PLAN SELECT id FROM history");
    select.filter_opt("cluster = ?", &q.cluster);
    select.filter_opt("time_ms >= ?", &q.since_ms);
    let limit = sql_limit(q.limit);
    select
        .run(
            &store.conn,
            "ORDER BY time_ms DESC, id DESC",
            Some(&limit),
            |row| Ok(row.get::<_, String>(3)?),
        )
        .expect("explains")
        .join("\n")
}

#[test]
fn newest_first_history_reads_an_index_backwards_without_sorting() {
    let store = SqliteStore::open_in_memory().expect("opens");
    let by_cluster = plan(
        &store,
        &HistoryQuery {
            cluster: Some("c1".into()),
            since_ms: Some(5),
            ..Default::default()
        },
    );
    assert!(by_cluster.contains("history_cluster_time"), "{by_cluster}");
    assert!(!by_cluster.contains("TEMP B-TREE"), "{by_cluster}");

    let everything = plan(&store, &HistoryQuery::default());
    assert!(everything.contains("history_time"), "{everything}");
    assert!(!everything.contains("TEMP B-TREE"), "{everything}");
}

#[test]
fn numbers_beyond_i64_are_refused_not_wrapped() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let mut rows = rows_of(every_kind());
    rows[0].event.seq = u64::MAX;
    let err = store.append(&rows).expect_err("refused");
    assert!(
        matches!(err, StoreError::OutOfRange { what: "seq", value } if value == u64::MAX),
        "{err}"
    );
}

#[test]
fn the_store_can_move_to_another_thread_behind_the_trait() {
    let store: Box<dyn Store> = Box::new(SqliteStore::open_in_memory().expect("opens"));
    let clusters = std::thread::spawn(move || store.list_clusters().map(|c| c.len()))
        .join()
        .expect("thread ends");
    assert_eq!(clusters.expect("lists"), 0);
}

#[test]
fn a_version_2_database_keeps_its_data_and_migrates_to_version_3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haven.db");
    {
        // As Haven with schema version 2 left it.
        let conn = Connection::open(&path).expect("creates");
        for (version, script) in (1_u32..).zip(&schema::MIGRATIONS[..2]) {
            conn.execute_batch(script).expect("applies");
            conn.pragma_update(None, "user_version", version)
                .expect("sets the version");
        }
        conn.execute_batch(
            r#"INSERT INTO clusters (name, address, username, password, added_ms)
                   VALUES ('c1', 'h:1', NULL, NULL, 5);
               INSERT INTO operations (cluster, username, verb, op, requested_ms, outcome)
                   VALUES ('c1', 'alice', 'group_online',
                           '{"op":"group_online","group":"web","system":"sysA"}', 10, 'completed');
               INSERT INTO connectors (id, cluster, secret_hash, version, joined_ms)
                   VALUES ('k1', 'c1', 'h', '0.1', 7);"#,
        )
        .expect("fills");
    }

    let mut store = SqliteStore::open(&path).expect("migrates");
    // To version 3, and on to the latest.
    assert_eq!(
        store.schema_version().expect("version"),
        SqliteStore::SCHEMA_VERSION
    );
    assert_eq!(store.list_clusters().expect("lists")[0].name, "c1");
    let ops = store.operations(&OperationQuery::default()).expect("lists");
    assert_eq!(
        (ops[0].user.as_str(), ops[0].outcome),
        ("alice", Some(Outcome::Completed))
    );
    assert_eq!(store.connectors().expect("lists")[0].id, "k1");
    // The new tables are there and empty.
    assert_eq!(store.grants().expect("lists"), vec![]);
    assert_eq!(
        store.access_log(&AccessQuery::default()).expect("reads"),
        vec![]
    );
    store
        .insert_access(&[access(1, "alice", "login", AccessOutcome::Allowed)])
        .expect("records");
    assert_eq!(
        store.access_log(&AccessQuery::default()).expect("reads")[0].id,
        1
    );
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

/// The `time_ms` of each entry the query returns.
fn access_times(store: &SqliteStore, q: AccessQuery) -> Vec<i64> {
    store
        .access_log(&q)
        .expect("reads")
        .into_iter()
        .map(|a| a.time_ms)
        .collect()
}

#[test]
fn access_entries_read_back_whole_newest_first_and_limited() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
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
    let batch = vec![
        access(10, "alice", "login", AccessOutcome::Allowed),
        denied.clone(),
        access(20, "bob", "logout", AccessOutcome::Allowed),
        // Same time as the first: the later entry comes first.
        access(10, "carol", "login", AccessOutcome::Failed),
    ];
    store.insert_access(&batch).expect("records");
    store.insert_access(&[]).expect("an empty batch is fine");

    let all = store.access_log(&AccessQuery::default()).expect("reads");
    let users: Vec<&str> = all.iter().map(|a| a.user.as_str()).collect();
    assert_eq!(users, ["-", "bob", "carol", "alice"]);
    assert_eq!(
        all[0],
        AccessRecord {
            id: 2,
            time_ms: denied.time_ms,
            user: denied.user,
            source: denied.source,
            action: denied.action,
            target: denied.target,
            cluster: denied.cluster,
            outcome: denied.outcome,
            reason: denied.reason,
        }
    );
    assert_eq!(
        access_times(
            &store,
            AccessQuery {
                limit: 2,
                ..Default::default()
            }
        ),
        vec![30, 20]
    );
    assert_eq!(
        access_times(
            &store,
            AccessQuery {
                limit: 0,
                ..Default::default()
            }
        ),
        Vec::<i64>::new()
    );
}

#[test]
fn access_log_filters_by_user_action_outcome_cluster_and_time() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let on = |cluster: &str, mut a: NewAccess| {
        a.cluster = Some(cluster.into());
        a
    };
    store
        .insert_access(&[
            access(10, "alice", "login", AccessOutcome::Allowed),
            on("c1", access(20, "alice", "read", AccessOutcome::Denied)),
            on("c2", access(30, "bob", "read", AccessOutcome::Allowed)),
            on(
                "c1",
                access(40, "bob", "remove_cluster", AccessOutcome::Failed),
            ),
            access(50, "bob", "login", AccessOutcome::Denied),
        ])
        .expect("records");
    let times = |q| access_times(&store, q);
    assert_eq!(
        times(AccessQuery {
            user: Some("alice".into()),
            ..Default::default()
        }),
        vec![20, 10]
    );
    assert_eq!(
        times(AccessQuery {
            action: Some("read".into()),
            ..Default::default()
        }),
        vec![30, 20]
    );
    assert_eq!(
        times(AccessQuery {
            outcome: Some(AccessOutcome::Denied),
            ..Default::default()
        }),
        vec![50, 20]
    );
    assert_eq!(
        times(AccessQuery {
            cluster: Some("c1".into()),
            ..Default::default()
        }),
        vec![40, 20]
    );
    assert_eq!(
        times(AccessQuery {
            since_ms: Some(30),
            ..Default::default()
        }),
        vec![50, 40, 30]
    );
    // Filters are ANDed.
    assert_eq!(
        times(AccessQuery {
            user: Some("bob".into()),
            action: Some("login".into()),
            outcome: Some(AccessOutcome::Denied),
            since_ms: Some(10),
            ..Default::default()
        }),
        vec![50]
    );
    assert_eq!(
        times(AccessQuery {
            user: Some("alice".into()),
            cluster: Some("c2".into()),
            ..Default::default()
        }),
        Vec::<i64>::new()
    );
}

/// The plan SQLite picks for the access log's newest-first query.
fn access_plan(store: &SqliteStore, filter: &str) -> String {
    store
        .conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT id FROM access_log {filter}
             ORDER BY time_ms DESC, id DESC LIMIT 100"
        ))
        .expect("prepares")
        .query_map([], |row| row.get::<_, String>(3))
        .expect("explains")
        .collect::<Result<Vec<_>, _>>()
        .expect("reads")
        .join("\n")
}

#[test]
fn newest_first_access_log_reads_an_index_backwards_without_sorting() {
    let store = SqliteStore::open_in_memory().expect("opens");
    let by_user = access_plan(&store, "WHERE username = 'alice' AND time_ms >= 5");
    assert!(by_user.contains("access_log_user_time"), "{by_user}");
    assert!(!by_user.contains("TEMP B-TREE"), "{by_user}");

    let everything = access_plan(&store, "");
    assert!(everything.contains("access_log_time"), "{everything}");
    assert!(!everything.contains("TEMP B-TREE"), "{everything}");
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

#[test]
fn a_grant_is_stored_once_per_principal_role_and_scope() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let fleet = grant("user", "alice", "fleet_operator", (None, None));
    let cluster = grant("user", "alice", "cluster_operator", (Some("c1"), None));
    let group = grant("group", "ops", "group_operator", (Some("c1"), Some("web")));

    let mut ids: Vec<i64> = [&fleet, &cluster, &group]
        .into_iter()
        .map(|g| store.insert_grant(g).expect("grants").expect("new"))
        .collect();
    assert_eq!(ids, [1, 2, 3]);

    // Again, with NULL scope columns too: nothing new, nothing changed.
    for g in [&fleet, &cluster, &group] {
        let again = NewGrant {
            created_ms: 999,
            created_by: "someone else".into(),
            ..g.clone()
        };
        assert_eq!(store.insert_grant(&again).expect("grants"), None, "{g:?}");
    }

    // Any difference in principal, role or scope is another grant.
    let others = [
        grant("group", "alice", "fleet_operator", (None, None)),
        grant("user", "bob", "fleet_operator", (None, None)),
        grant("user", "alice", "fleet_guest", (None, None)),
        grant("user", "alice", "fleet_operator", (Some("c1"), None)),
        grant("group", "ops", "group_operator", (Some("c1"), None)),
        grant("group", "ops", "group_operator", (Some("c2"), Some("web"))),
    ];
    for g in &others {
        // A skipped duplicate may use up an id (AUTOINCREMENT): ids only
        // grow, they need not be consecutive.
        let id = store.insert_grant(g).expect("grants");
        ids.push(id.unwrap_or_else(|| panic!("{g:?} is new")));
    }

    let stored = store.grants().expect("lists");
    assert_eq!(
        stored[0],
        GrantRecord {
            id: 1,
            principal_kind: fleet.principal_kind,
            principal: fleet.principal,
            role: fleet.role,
            cluster: fleet.cluster,
            service_group: fleet.service_group,
            created_ms: fleet.created_ms,
            created_by: fleet.created_by,
        }
    );
    let stored_ids: Vec<i64> = stored.iter().map(|g| g.id).collect();
    assert_eq!(stored_ids, ids);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn a_grant_with_a_bad_kind_or_a_group_without_its_cluster_is_refused() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let bad = [
        grant("role", "alice", "fleet_operator", (None, None)),
        grant("group", "ops", "group_operator", (None, Some("web"))),
    ];
    for g in &bad {
        let err = store.insert_grant(g).expect_err("refused");
        assert!(err.to_string().contains("CHECK constraint"), "{err}");
    }
    assert_eq!(store.grants().expect("lists"), vec![]);
}

#[test]
fn deleting_a_grant_returns_it_once() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let keep = store
        .insert_grant(&grant("user", "alice", "fleet_guest", (None, None)))
        .expect("grants")
        .expect("new");
    let id = store
        .insert_grant(&grant("group", "ops", "cluster_admin", (Some("c1"), None)))
        .expect("grants")
        .expect("new");

    let removed = store.delete_grant(id).expect("deletes").expect("was there");
    assert_eq!(
        (
            removed.id,
            removed.principal.as_str(),
            removed.cluster.as_deref()
        ),
        (id, "ops", Some("c1"))
    );
    assert_eq!(store.delete_grant(id).expect("deletes"), None);
    assert_eq!(store.delete_grant(4242).expect("deletes"), None);
    let left: Vec<i64> = store
        .grants()
        .expect("lists")
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(left, [keep]);

    // Once removed, the same grant can be made again.
    assert!(store
        .insert_grant(&grant("group", "ops", "cluster_admin", (Some("c1"), None)))
        .expect("grants")
        .is_some());
}

/// Three events in each of c1, c2 and c3.
fn three_clusters(store: &mut SqliteStore) {
    let rows: Vec<HistoryRow> = ["c1", "c2", "c3"]
        .into_iter()
        .flat_map(|cluster| {
            rows_of(every_kind()[..3].to_vec())
                .into_iter()
                .map(move |row| HistoryRow {
                    cluster: cluster.into(),
                    ..row
                })
        })
        .collect();
    store.append(&rows).expect("appends");
}

fn names(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|c| c.to_string()).collect())
}

#[test]
fn history_keeps_only_the_listed_clusters() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    three_clusters(&mut store);
    let clusters_of = |q: HistoryQuery| -> Vec<String> {
        let mut found: Vec<String> = store
            .history(&q)
            .expect("reads")
            .into_iter()
            .map(|r| r.cluster)
            .collect();
        found.dedup();
        found.sort();
        found.dedup();
        found
    };
    assert_eq!(
        clusters_of(HistoryQuery {
            clusters: names(&["c1", "c3"]),
            ..Default::default()
        }),
        ["c1", "c3"]
    );
    assert_eq!(
        clusters_of(HistoryQuery {
            clusters: names(&[]),
            ..Default::default()
        }),
        Vec::<String>::new()
    );
    // ANDed with the single cluster and the other filters.
    assert_eq!(
        clusters_of(HistoryQuery {
            cluster: Some("c2".into()),
            clusters: names(&["c1", "c3"]),
            ..Default::default()
        }),
        Vec::<String>::new()
    );
    let newest = store
        .history(&HistoryQuery {
            cluster: Some("c3".into()),
            clusters: names(&["c1", "c3"]),
            since_ms: Some(1_001),
            limit: 1,
            ..Default::default()
        })
        .expect("reads");
    assert_eq!(newest.len(), 1);
    assert_eq!((newest[0].cluster.as_str(), newest[0].event.seq), ("c3", 3));
}

#[test]
fn operations_keep_only_the_listed_clusters() {
    let mut store = SqliteStore::open_in_memory().expect("opens");
    let mut ids = HashMap::new();
    for (i, cluster) in ["c1", "c2", "c3"].into_iter().enumerate() {
        let op = NewOperation {
            cluster: cluster.into(),
            user: "alice".into(),
            op: Operation::GroupFlush {
                group: name("web"),
                system: None,
            },
            requested_ms: 10 * i as i64,
        };
        ids.insert(cluster, store.insert_operation(&op).expect("records"));
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
        Vec::<i64>::new()
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
        Vec::<i64>::new()
    );
}
