//! History through the `Store` trait: exactly-once appends, cursors, gaps,
//! queries.

mod common;

use common::{row, row_about, rows};
use haven_model::{name, EventKind, Severity};
use haven_store::{AppendReport, Cursor, Gap, HistoryQuery, SeqRange, SqliteStore, Store};

fn store() -> SqliteStore {
    SqliteStore::open_in_memory().expect("opens")
}

fn cursor(store: &SqliteStore, cluster: &str) -> Option<Cursor> {
    store.cursors().expect("cursors").get(cluster).copied()
}

fn seqs(found: &[haven_store::HistoryRow]) -> Vec<u64> {
    found.iter().map(|r| r.event.seq).collect()
}

#[test]
fn appending_the_same_batch_twice_stores_it_once() {
    let mut store = store();
    let batch = rows("c1", 1, 1, 10);
    assert_eq!(
        store.append(&batch).expect("first"),
        AppendReport {
            inserted: 10,
            duplicates: 0
        }
    );
    assert_eq!(
        store.append(&batch).expect("second"),
        AppendReport {
            inserted: 0,
            duplicates: 10
        }
    );
    assert_eq!(
        store.seq_ranges(None).expect("ranges"),
        vec![SeqRange {
            cluster: "c1".into(),
            epoch: 1,
            count: 10,
            min_seq: 1,
            max_seq: 10
        }]
    );
}

#[test]
fn overlapping_batches_store_only_the_new_rows() {
    let mut store = store();
    store.append(&rows("c1", 1, 1, 10)).expect("first");
    let report = store.append(&rows("c1", 6, 6, 15)).expect("other epoch");
    assert_eq!(report.inserted, 10, "another epoch is not a duplicate");
    let report = store.append(&rows("c1", 1, 6, 15)).expect("overlap");
    assert_eq!(
        report,
        AppendReport {
            inserted: 5,
            duplicates: 5
        }
    );
    let ranges = store.seq_ranges(Some("c1")).expect("ranges");
    assert_eq!(
        (ranges[0].epoch, ranges[0].count, ranges[0].max_seq),
        (1, 15, 15)
    );
}

#[test]
fn a_duplicate_inside_one_batch_is_counted_once() {
    let mut store = store();
    let mut batch = rows("c1", 1, 1, 3);
    batch.push(row("c1", 1, 2));
    let report = store.append(&batch).expect("appends");
    assert_eq!(
        report,
        AppendReport {
            inserted: 3,
            duplicates: 1
        }
    );
}

#[test]
fn cursor_is_the_last_appended_position_of_each_cluster() {
    let mut store = store();
    assert!(store.cursors().expect("cursors").is_empty());
    let mut batch = rows("c1", 1, 1, 5);
    batch.extend(rows("c2", 9, 40, 42));
    store.append(&batch).expect("appends");
    assert_eq!(cursor(&store, "c1"), Some(Cursor { epoch: 1, seq: 5 }));
    assert_eq!(cursor(&store, "c2"), Some(Cursor { epoch: 9, seq: 42 }));
}

#[test]
fn cursor_never_moves_backwards_within_an_epoch() {
    let mut store = store();
    store.append(&rows("c1", 1, 10, 20)).expect("appends");
    // Older rows of the same epoch that were missing (not duplicates).
    store
        .append(&rows("c1", 1, 1, 9))
        .expect("appends late rows");
    assert_eq!(cursor(&store, "c1"), Some(Cursor { epoch: 1, seq: 20 }));
}

#[test]
fn a_new_epoch_replaces_the_cursor() {
    let mut store = store();
    store.append(&rows("c1", 1, 1, 500)).expect("first run");
    store
        .append(&rows("c1", 2, 1, 3))
        .expect("engine restarted");
    assert_eq!(cursor(&store, "c1"), Some(Cursor { epoch: 2, seq: 3 }));
}

#[test]
fn an_epoch_change_inside_a_batch_ends_where_the_batch_ends() {
    let mut store = store();
    store.append(&rows("c1", 2, 10, 50)).expect("earlier");
    // A late tail of epoch 1, then epoch 2 from its start: in order, the
    // cursor goes to (1, 101), then is replaced by (2, 3) - not merged
    // back to (2, 50).
    let mut batch = rows("c1", 1, 100, 101);
    batch.extend(rows("c1", 2, 1, 3));
    store.append(&batch).expect("appends");
    assert_eq!(cursor(&store, "c1"), Some(Cursor { epoch: 2, seq: 3 }));
}

#[test]
fn duplicates_do_not_move_the_cursor() {
    let mut store = store();
    store.append(&rows("c1", 1, 1, 5)).expect("first run");
    store.append(&rows("c1", 2, 1, 2)).expect("second run");
    // A late re-send of the first run is skipped and leaves the cursor.
    let report = store.append(&rows("c1", 1, 4, 5)).expect("re-send");
    assert_eq!(report.duplicates, 2);
    assert_eq!(cursor(&store, "c1"), Some(Cursor { epoch: 2, seq: 2 }));
}

#[test]
fn an_empty_batch_changes_nothing() {
    let mut store = store();
    assert_eq!(store.append(&[]).expect("appends"), AppendReport::default());
    assert!(store.cursors().expect("cursors").is_empty());
}

#[test]
fn a_gap_is_recorded_and_moves_the_cursor_to_where_history_resumed() {
    let mut store = store();
    store.append(&rows("c1", 1, 1, 5)).expect("appends");
    let gap = Gap {
        cluster: "c1".into(),
        after: Some(Cursor { epoch: 1, seq: 5 }),
        resumed: Cursor { epoch: 2, seq: 17 },
        time_ms: 99,
        reason: "engine restarted".into(),
    };
    store.record_gap(&gap).expect("records");
    let first = Gap {
        cluster: "c2".into(),
        after: None,
        resumed: Cursor {
            epoch: 3,
            seq: 1000,
        },
        time_ms: 100,
        reason: "journal no longer has seq 1".into(),
    };
    store.record_gap(&first).expect("records");

    assert_eq!(cursor(&store, "c1"), Some(gap.resumed));
    assert_eq!(cursor(&store, "c2"), Some(first.resumed));
    assert_eq!(store.gaps(None).expect("gaps"), vec![gap.clone(), first]);
    assert_eq!(store.gaps(Some("c1")).expect("gaps"), vec![gap]);
    assert!(store.gaps(Some("c3")).expect("gaps").is_empty());

    // History goes on from the resumed position.
    store.append(&rows("c1", 2, 18, 20)).expect("appends");
    assert_eq!(cursor(&store, "c1"), Some(Cursor { epoch: 2, seq: 20 }));
}

#[test]
fn history_is_newest_first_and_limited() {
    let mut store = store();
    store.append(&rows("c1", 1, 1, 30)).expect("appends");
    let found = store
        .history(&HistoryQuery {
            limit: 5,
            ..Default::default()
        })
        .expect("queries");
    assert_eq!(seqs(&found), vec![30, 29, 28, 27, 26]);
    let none = store
        .history(&HistoryQuery {
            limit: 0,
            ..Default::default()
        })
        .expect("queries");
    assert!(none.is_empty());
}

#[test]
fn history_filters_by_cluster_and_time() {
    let mut store = store();
    let mut batch = rows("c1", 1, 1, 10);
    batch.extend(rows("c2", 1, 1, 10));
    store.append(&batch).expect("appends");

    let found = store
        .history(&HistoryQuery {
            cluster: Some("c2".into()),
            since_ms: Some(3),
            until_ms: Some(6),
            ..Default::default()
        })
        .expect("queries");
    assert!(found.iter().all(|r| r.cluster == "c2"));
    assert_eq!(
        seqs(&found),
        vec![5, 4, 3],
        "since inclusive, until exclusive"
    );
}

#[test]
fn history_filters_by_group_resource_system_or_notice_object() {
    let mut store = store();
    let mut batch = vec![
        row_about("c1", 1, 1, 1, "web", "web_ip", "sysA"),
        row_about("c1", 1, 2, 2, "db", "db_proc", "sysB"),
        row_about("c1", 1, 3, 3, "web", "web_proc", "sysB"),
    ];
    let mut notice = row("c1", 1, 4);
    notice.event.kind = EventKind::Notice {
        severity: Severity::Error,
        object: Some(name("db_proc")),
        message: "monitor timed out".into(),
    };
    batch.push(notice);
    store.append(&batch).expect("appends");

    let about = |object: &str| {
        seqs(
            &store
                .history(&HistoryQuery {
                    object: Some(object.into()),
                    ..Default::default()
                })
                .expect("queries"),
        )
    };
    assert_eq!(about("web"), vec![3, 1], "group");
    assert_eq!(about("db_proc"), vec![4, 2], "resource and notice object");
    assert_eq!(about("sysB"), vec![3, 2], "system");
    assert!(about("nothing").is_empty());
}

#[test]
fn seq_ranges_are_per_cluster_and_epoch() {
    let mut store = store();
    let mut batch = rows("c2", 5, 1, 4);
    batch.extend(rows("c1", 7, 3, 9));
    batch.extend(rows("c1", 3, 1, 2));
    store.append(&batch).expect("appends");
    let ranges: Vec<_> = store
        .seq_ranges(None)
        .expect("ranges")
        .into_iter()
        .map(|r| (r.cluster, r.epoch, r.count, r.min_seq, r.max_seq))
        .collect();
    assert_eq!(
        ranges,
        vec![
            ("c1".into(), 3, 2, 1, 2),
            ("c1".into(), 7, 7, 3, 9),
            ("c2".into(), 5, 4, 1, 4),
        ]
    );
    assert_eq!(store.seq_ranges(Some("c2")).expect("ranges").len(), 1);
}
