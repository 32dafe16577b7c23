//! History through the `Store` trait: exactly-once appends, cursors, gaps,
//! queries. Every test runs on both backends (`sqlite::` and `postgres::`).

mod common;

use common::{row, row_about, rows};
use haven_model::{name, EventKind, Severity};
use haven_store::{AppendReport, Cursor, Gap, HistoryQuery, SeqRange, Store, StoreError};

common::on_both_backends!(
    appending_the_same_batch_twice_stores_it_once,
    overlapping_batches_store_only_the_new_rows,
    a_duplicate_inside_one_batch_is_counted_once,
    cursor_is_the_last_appended_position_of_each_cluster,
    cursor_never_moves_backwards_within_an_epoch,
    a_new_epoch_replaces_the_cursor,
    an_epoch_change_inside_a_batch_ends_where_the_batch_ends,
    duplicates_do_not_move_the_cursor,
    an_empty_batch_changes_nothing,
    a_batch_with_a_number_out_of_range_stores_nothing,
    history_begins_where_it_is_first_marked_and_only_then,
    a_gap_is_recorded_and_moves_the_cursor_to_where_history_resumed,
    history_is_newest_first_and_limited,
    history_oldest_first_keeps_the_oldest_after_an_instant,
    history_reads_back_every_kind_of_event_as_appended,
    history_filters_by_cluster_and_time,
    history_filters_by_a_list_of_clusters,
    history_filters_by_group_resource_system_or_notice_object,
    seq_ranges_are_per_cluster_and_epoch,
);

fn cursor(store: &dyn Store, cluster: &str) -> Option<Cursor> {
    store.cursors().expect("cursors").get(cluster).copied()
}

fn seqs(found: &[haven_store::HistoryRow]) -> Vec<u64> {
    found.iter().map(|r| r.event.seq).collect()
}

fn appending_the_same_batch_twice_stores_it_once(store: &mut dyn Store) {
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

fn overlapping_batches_store_only_the_new_rows(store: &mut dyn Store) {
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

fn a_duplicate_inside_one_batch_is_counted_once(store: &mut dyn Store) {
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

fn cursor_is_the_last_appended_position_of_each_cluster(store: &mut dyn Store) {
    assert!(store.cursors().expect("cursors").is_empty());
    let mut batch = rows("c1", 1, 1, 5);
    batch.extend(rows("c2", 9, 40, 42));
    store.append(&batch).expect("appends");
    assert_eq!(cursor(store, "c1"), Some(Cursor { epoch: 1, seq: 5 }));
    assert_eq!(cursor(store, "c2"), Some(Cursor { epoch: 9, seq: 42 }));
}

fn cursor_never_moves_backwards_within_an_epoch(store: &mut dyn Store) {
    store.append(&rows("c1", 1, 10, 20)).expect("appends");
    // Older rows of the same epoch that were missing (not duplicates).
    store
        .append(&rows("c1", 1, 1, 9))
        .expect("appends late rows");
    assert_eq!(cursor(store, "c1"), Some(Cursor { epoch: 1, seq: 20 }));
}

fn a_new_epoch_replaces_the_cursor(store: &mut dyn Store) {
    store.append(&rows("c1", 1, 1, 500)).expect("first run");
    store
        .append(&rows("c1", 2, 1, 3))
        .expect("engine restarted");
    assert_eq!(cursor(store, "c1"), Some(Cursor { epoch: 2, seq: 3 }));
}

fn an_epoch_change_inside_a_batch_ends_where_the_batch_ends(store: &mut dyn Store) {
    store.append(&rows("c1", 2, 10, 50)).expect("earlier");
    // A late tail of epoch 1, then epoch 2 from its start: in order, the
    // cursor goes to (1, 101), then is replaced by (2, 3) - not merged
    // back to (2, 50).
    let mut batch = rows("c1", 1, 100, 101);
    batch.extend(rows("c1", 2, 1, 3));
    store.append(&batch).expect("appends");
    assert_eq!(cursor(store, "c1"), Some(Cursor { epoch: 2, seq: 3 }));
}

fn duplicates_do_not_move_the_cursor(store: &mut dyn Store) {
    store.append(&rows("c1", 1, 1, 5)).expect("first run");
    store.append(&rows("c1", 2, 1, 2)).expect("second run");
    // A late re-send of the first run is skipped and leaves the cursor.
    let report = store.append(&rows("c1", 1, 4, 5)).expect("re-send");
    assert_eq!(report.duplicates, 2);
    assert_eq!(cursor(store, "c1"), Some(Cursor { epoch: 2, seq: 2 }));
}

fn an_empty_batch_changes_nothing(store: &mut dyn Store) {
    assert_eq!(store.append(&[]).expect("appends"), AppendReport::default());
    assert!(store.cursors().expect("cursors").is_empty());
}

fn a_gap_is_recorded_and_moves_the_cursor_to_where_history_resumed(store: &mut dyn Store) {
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

    assert_eq!(cursor(store, "c1"), Some(gap.resumed));
    assert_eq!(cursor(store, "c2"), Some(first.resumed));
    assert_eq!(store.gaps(None).expect("gaps"), vec![gap.clone(), first]);
    assert_eq!(store.gaps(Some("c1")).expect("gaps"), vec![gap]);
    assert!(store.gaps(Some("c3")).expect("gaps").is_empty());

    // History goes on from the resumed position.
    store.append(&rows("c1", 2, 18, 20)).expect("appends");
    assert_eq!(cursor(store, "c1"), Some(Cursor { epoch: 2, seq: 20 }));
}

fn history_is_newest_first_and_limited(store: &mut dyn Store) {
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

fn history_oldest_first_keeps_the_oldest_after_an_instant(store: &mut dyn Store) {
    store.append(&rows("c1", 1, 1, 30)).expect("appends");
    let found = store
        .history(&HistoryQuery {
            since_ms: Some(12),
            limit: 4,
            oldest_first: true,
            ..Default::default()
        })
        .expect("queries");
    assert_eq!(seqs(&found), vec![12, 13, 14, 15]);
}

fn history_filters_by_cluster_and_time(store: &mut dyn Store) {
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

fn history_filters_by_group_resource_system_or_notice_object(store: &mut dyn Store) {
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

fn seq_ranges_are_per_cluster_and_epoch(store: &mut dyn Store) {
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

fn a_batch_with_a_number_out_of_range_stores_nothing(store: &mut dyn Store) {
    store.append(&rows("c1", 1, 1, 10)).expect("appends");
    let mut batch = rows("c1", 1, 11, 500);
    batch.extend(rows("c2", 1, 1, 10));
    batch.push(row("c1", 1, u64::MAX));
    batch.extend(rows("c1", 1, 501, 1000));
    let err = store.append(&batch).expect_err("refused");
    assert!(
        matches!(err, StoreError::OutOfRange { what: "seq", value } if value == u64::MAX),
        "{err}"
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
    assert_eq!(store.cursors().expect("cursors").len(), 1);
    assert_eq!(cursor(store, "c1"), Some(Cursor { epoch: 1, seq: 10 }));
}

fn history_begins_where_it_is_first_marked_and_only_then(store: &mut dyn Store) {
    let start = Cursor { epoch: 4, seq: 12 };
    assert!(store.begin_history("c1", start).expect("marks"));
    assert!(!store
        .begin_history("c1", Cursor { epoch: 5, seq: 1 })
        .expect("leaves it"));
    assert_eq!(cursor(store, "c1"), Some(start));
    store.append(&rows("c2", 1, 1, 3)).expect("appends");
    assert!(!store
        .begin_history("c2", Cursor { epoch: 9, seq: 9 })
        .expect("leaves it"));
    assert_eq!(cursor(store, "c2"), Some(Cursor { epoch: 1, seq: 3 }));
}

fn history_reads_back_every_kind_of_event_as_appended(store: &mut dyn Store) {
    let rows = common::rows_of("c1", common::every_kind());
    assert_eq!(store.append(&rows).expect("appends").inserted, rows.len());
    let mut back = store
        .history(&HistoryQuery {
            limit: 1_000,
            ..Default::default()
        })
        .expect("reads");
    back.reverse(); // newest first
    assert_eq!(back, rows);
}

fn history_filters_by_a_list_of_clusters(store: &mut dyn Store) {
    let batch: Vec<_> = ["c1", "c2", "c3"]
        .into_iter()
        .flat_map(|c| common::rows_of(c, common::every_kind()[..3].to_vec()))
        .collect();
    store.append(&batch).expect("appends");
    let names = |list: &[&str]| Some(list.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    let clusters_of = |q: HistoryQuery| -> Vec<String> {
        let mut found: Vec<String> = store
            .history(&q)
            .expect("reads")
            .into_iter()
            .map(|r| r.cluster)
            .collect();
        found.sort();
        found.dedup();
        found
    };
    assert_eq!(
        clusters_of(HistoryQuery {
            clusters: names(&["c1", "c3", "elsewhere"]),
            ..Default::default()
        }),
        ["c1", "c3"]
    );
    assert_eq!(
        clusters_of(HistoryQuery {
            clusters: names(&[]),
            ..Default::default()
        }),
        Vec::<String>::new(),
        "an empty list matches nothing"
    );
    assert_eq!(
        clusters_of(HistoryQuery {
            cluster: Some("c2".into()),
            clusters: names(&["c1", "c3"]),
            ..Default::default()
        }),
        Vec::<String>::new(),
        "both the cluster and the list must match"
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
