//! Unit tests of the SQLite backend that need its internals (columns,
//! query plans). Behaviour through the `Store` trait is tested in `tests/`.

use haven_model::{
    name, Event, EventKind, Freeze, GroupState, ResourceState, Severity, SystemState,
};

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
