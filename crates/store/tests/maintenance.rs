//! Backup while writing, restore with refusals, prune that keeps each
//! object's state at the cut-off — on real files.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use haven_model::{name, Event, EventKind, GroupState, ResourceState, Severity};
use haven_store::maintenance::{self, Progress};
use haven_store::{HistoryQuery, HistoryRow, SqliteStore, Store, StoreError};

fn event(seq: u64, time_ms: i64, kind: EventKind) -> HistoryRow {
    HistoryRow {
        cluster: "c1".into(),
        epoch: 1,
        event: Event { seq, time_ms, kind },
    }
}

fn group(g: &str, s: &str, to: GroupState) -> EventKind {
    EventKind::GroupState {
        group: name(g),
        system: name(s),
        from: GroupState::Offline,
        to,
    }
}

fn resource(r: &str, s: &str, to: ResourceState) -> EventKind {
    EventKind::ResourceState {
        group: name("web"),
        resource: name(r),
        system: name(s),
        from: ResourceState::Offline,
        to,
    }
}

fn notice(text: &str) -> EventKind {
    EventKind::Notice {
        severity: Severity::Info,
        object: None,
        message: text.into(),
    }
}

fn all_rows(store: &SqliteStore) -> Vec<HistoryRow> {
    let mut rows = store
        .history(&HistoryQuery {
            limit: 10_000_000,
            ..Default::default()
        })
        .unwrap();
    rows.sort_by_key(|r| (r.cluster.clone(), r.epoch, r.event.seq));
    rows
}

fn quiet(_: Progress) {}

#[test]
fn a_backup_taken_while_history_is_written_is_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("haven.db");
    let mut store = SqliteStore::open(&db).unwrap();
    // A first stretch, so the backup has something to copy for a while.
    let mut seq = 0;
    for _ in 0..50 {
        let batch: Vec<_> = (0..2000)
            .map(|_| {
                seq += 1;
                event(seq, seq as i64, notice(&"x".repeat(100)))
            })
            .collect();
        store.append(&batch).unwrap();
    }
    let stop = AtomicBool::new(false);
    let reporter = SqliteStore::open(&db).unwrap();
    let dest = dir.path().join("backup.db");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let report = std::thread::scope(|scope| {
        // The event storm: another connection keeps appending.
        let writer = scope.spawn(|| {
            let mut written = 0;
            for round in 0..10_000 {
                if stop.load(Ordering::Relaxed) && round > 5 {
                    break;
                }
                let batch: Vec<_> = (0..500)
                    .map(|_| {
                        seq += 1;
                        event(seq, seq as i64, notice("storm"))
                    })
                    .collect();
                store.append(&batch).unwrap();
                written += 1;
            }
            (store, written)
        });
        let report = reporter
            .backup_to(&dest, &|p| {
                calls.fetch_add(1, Ordering::Relaxed);
                assert!(p.total > 0);
            })
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        let (store, written) = writer.join().unwrap();
        assert!(written > 5, "the writer kept writing during the backup");
        (report, store)
    });
    let (report, store) = report;
    assert!(calls.load(Ordering::Relaxed) >= 1, "progress was reported");
    assert_eq!(report.verified.schema_version, SqliteStore::SCHEMA_VERSION);
    // The backup is exactly the source's history up to one point.
    let source = all_rows(&store);
    let backup = all_rows(&SqliteStore::open(&dest).unwrap());
    assert!(backup.len() >= 100_000, "{}", backup.len());
    assert!(backup.len() < source.len(), "the storm went on after it");
    assert_eq!(
        &source[..backup.len()],
        &backup[..],
        "a prefix, row for row"
    );
    let cursor = SqliteStore::open(&dest).unwrap().cursors().unwrap()["c1"];
    assert_eq!(
        cursor.seq,
        backup.last().unwrap().event.seq,
        "cursor and rows agree"
    );
    // A backup never overwrites.
    let again = reporter.backup_to(&dest, &|_| {});
    assert!(matches!(again, Err(StoreError::Maintenance(m)) if m.contains("exists already")));
}

fn sample(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("sample.db");
    let mut store = SqliteStore::open(&path).unwrap();
    store
        .append(
            &(1..=100)
                .map(|s| event(s, s as i64, notice("n")))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    drop(store);
    path
}

#[test]
fn restore_refuses_corrupt_truncated_and_newer_files_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = sample(dir.path());
    let backup = dir.path().join("good-backup.db");
    SqliteStore::open(&good)
        .unwrap()
        .backup_to(&backup, &quiet)
        .unwrap();

    // The live database, with other content.
    let db = dir.path().join("data/haven.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let mut live = SqliteStore::open(&db).unwrap();
    live.append(&[event(1, 1, notice("live"))]).unwrap();
    drop(live);
    let before = all_rows(&SqliteStore::open(&db).unwrap());

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 64 * 1024]).unwrap();
    let truncated = dir.path().join("truncated.db");
    let bytes = std::fs::read(&backup).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let newer = dir.path().join("newer.db");
    std::fs::copy(&backup, &newer).unwrap();
    rusqlite_set_version(&newer, 999);
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();

    for (file, says) in [
        (&garbage, "not a haven database"),
        (&truncated, "is truncated or corrupt"),
        (&newer, "newer than this haven"),
        (&empty, "no Haven schema"),
    ] {
        let err = maintenance::restore(file, &db, &quiet).unwrap_err();
        assert!(err.to_string().contains(says), "{}: {err}", file.display());
        assert_eq!(
            all_rows(&SqliteStore::open(&db).unwrap()),
            before,
            "unchanged"
        );
        assert!(!dir.path().join("data/haven.db.restoring").exists());
    }

    // A good backup replaces it; the previous database is kept.
    let report = maintenance::restore(&backup, &db, &quiet).unwrap();
    assert_eq!(report.verified.history_rows, 100);
    let previous = report.previous.expect("the old database is kept");
    assert_eq!(all_rows(&SqliteStore::open(&previous).unwrap()), before);
    assert_eq!(all_rows(&SqliteStore::open(&db).unwrap()).len(), 100);
}

/// Writes a schema version into a file (as a newer Haven would have).
fn rusqlite_set_version(path: &Path, version: u32) {
    // The file is ours: open it through the store's own dependency.
    let status = std::process::Command::new("sqlite3")
        .arg(path)
        .arg(format!("PRAGMA user_version = {version};"))
        .status();
    if status.map(|s| s.success()).unwrap_or(false) {
        return;
    }
    // Without the sqlite3 tool: the header field is 4 bytes at offset 60.
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&version.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn prune_keeps_each_objects_state_at_the_cut_off_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("haven.db");
    let mut store = SqliteStore::open(&db).unwrap();
    let rows = vec![
        event(1, 100, group("web", "n1", GroupState::Starting)),
        event(2, 110, group("web", "n1", GroupState::Online)),
        event(3, 120, resource("ip", "n1", ResourceState::Online)),
        event(4, 130, notice("old notice")),
        event(5, 140, group("db", "n2", GroupState::Online)),
        event(6, 150, resource("ip", "n1", ResourceState::Faulted)),
        event(7, 160, notice("old notice 2")),
        // Cut-off at 200.
        event(8, 210, group("web", "n1", GroupState::Offline)),
        event(9, 220, notice("new notice")),
    ];
    store.append(&rows).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let report = store
        .prune(200, None, &|p| seen.lock().unwrap().push(p))
        .unwrap();
    assert_eq!(report.history_removed, 4, "{report:?}"); // seq 1, 3, 4, 7
    assert_eq!(report.history_kept, 3, "{report:?}"); // web@n1, db@n2, ip@n1
    let left: Vec<u64> = all_rows(&store).iter().map(|r| r.event.seq).collect();
    assert_eq!(left, vec![2, 5, 6, 8, 9]);
    assert!(!seen.lock().unwrap().is_empty(), "progress was reported");
    // Nothing more to do the second time.
    let again = store.prune(200, None, &|_| {}).unwrap();
    assert_eq!((again.history_removed, again.history_kept), (0, 3));
}

#[test]
fn prune_removes_old_audit_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("haven.db")).unwrap();
    let op = |ms| haven_store::NewOperation {
        cluster: "c1".into(),
        user: "ann".into(),
        op: haven_model::Operation::GroupUnfreeze { group: name("web") },
        requested_ms: ms,
    };
    store.insert_operation(&op(100)).unwrap();
    store.insert_operation(&op(300)).unwrap();
    let report = store.prune(200, None, &|_| {}).unwrap();
    assert_eq!(report.audit_removed, 0);
    let report = store.prune(200, Some(200), &|_| {}).unwrap();
    assert_eq!(report.audit_removed, 1);
    let left = store
        .operations(&haven_store::OperationQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].requested_ms, 300);
}
