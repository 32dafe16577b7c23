//! The database file: what survives reopening and a killed process, what a
//! failed batch leaves, and how versions and foreign files are handled.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{row, rows};
use haven_model::{name, Operation};
use haven_store::{
    ClusterRecord, Cursor, Gap, NewOperation, OperationQuery, Outcome, SeqRange, SqliteStore,
    Store, StoreError,
};

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haven.db");
    (dir, path)
}

fn user_version(path: &Path) -> u32 {
    rusqlite::Connection::open(path)
        .expect("opens")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("reads")
}

#[test]
fn a_batch_that_fails_midway_leaves_nothing_of_it() {
    let (_dir, path) = temp_db();
    let mut store = SqliteStore::open(&path).expect("opens");
    store.append(&rows("c1", 1, 1, 10)).expect("appends");

    // 490 good rows are written inside the transaction before the bad one.
    let mut batch = rows("c1", 1, 11, 500);
    batch.extend(rows("c2", 1, 1, 10));
    batch.push(row("c1", 1, u64::MAX));
    batch.extend(rows("c1", 1, 501, 1000));
    let err = store.append(&batch).expect_err("refused");
    assert!(matches!(err, StoreError::OutOfRange { .. }), "{err}");

    let expect_untouched = |store: &SqliteStore| {
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
        let cursors = store.cursors().expect("cursors");
        assert_eq!(cursors.len(), 1, "{cursors:?}");
        assert_eq!(cursors["c1"], Cursor { epoch: 1, seq: 10 });
    };
    expect_untouched(&store);
    // The connection is still usable, and the next batch goes in.
    store.append(&rows("c1", 1, 11, 20)).expect("appends after");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopens");
    assert_eq!(store.seq_ranges(Some("c1")).expect("ranges")[0].max_seq, 20);
}

#[test]
fn everything_is_there_after_reopening_the_file() {
    let (_dir, path) = temp_db();
    let gap = Gap {
        cluster: "c2".into(),
        after: None,
        resumed: Cursor { epoch: 4, seq: 77 },
        time_ms: 5,
        reason: "journal no longer has seq 1".into(),
    };
    let record = ClusterRecord {
        name: "c1".into(),
        address: "10.0.0.1:14141".into(),
        user: None,
        password: None,
        added_ms: 3,
    };
    let op_id = {
        let mut store = SqliteStore::open(&path).expect("opens");
        store.upsert_cluster(&record).expect("adds");
        store.set_setting("k", "v").expect("sets");
        store.append(&rows("c1", 3, 1, 250)).expect("appends");
        store.record_gap(&gap).expect("records");
        let id = store
            .insert_operation(&NewOperation {
                cluster: "c1".into(),
                user: "alice".into(),
                op: Operation::GroupOnline {
                    group: name("web"),
                    system: None,
                },
                requested_ms: 9,
            })
            .expect("records");
        store
            .finish_operation(id, Outcome::Completed, None, 12)
            .expect("finishes");
        id
    };

    let store = SqliteStore::open(&path).expect("reopens");
    assert_eq!(store.list_clusters().expect("lists"), vec![record]);
    assert_eq!(store.setting("k").expect("reads").as_deref(), Some("v"));
    assert_eq!(store.seq_ranges(None).expect("ranges")[0].count, 250);
    let cursors = store.cursors().expect("cursors");
    assert_eq!(cursors["c1"], Cursor { epoch: 3, seq: 250 });
    assert_eq!(cursors["c2"], gap.resumed);
    assert_eq!(store.gaps(None).expect("gaps"), vec![gap]);
    let ops = store.operations(&OperationQuery::default()).expect("lists");
    assert_eq!(
        (ops[0].id, ops[0].outcome),
        (op_id, Some(Outcome::Completed))
    );
}

/// Set for the child process of the crash test: the database it writes to.
const CRASH_DB: &str = "HAVEN_STORE_CRASH_DB";
const CRASH_BATCH: u64 = 100;

/// The writer the crash test kills: appends batches of one cluster and
/// reports each committed one on stdout, until killed (or a minute passes).
/// Does nothing when run as an ordinary test.
#[test]
fn crash_child_writer() {
    let Some(path) = std::env::var_os(CRASH_DB) else {
        return;
    };
    let mut store = SqliteStore::open(Path::new(&path)).expect("child opens");
    let mut out = std::io::stdout().lock();
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < Duration::from_secs(60) {
        store
            .append(&rows("c1", 1, last + 1, last + CRASH_BATCH))
            .expect("child appends");
        last += CRASH_BATCH;
        writeln!(out, "committed {last}").expect("child writes");
        out.flush().expect("child flushes");
    }
}

/// Stops the child if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_writer_loses_no_committed_batch_and_leaves_no_half_batch() {
    let (_dir, path) = temp_db();
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the child");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("child stdout");
    let mut committed = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("reads the child");
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.parse().expect("a number");
            if committed >= 50 * CRASH_BATCH {
                break;
            }
        }
    }
    // SIGKILL while the child is (most likely) inside its next batch.
    child.0.kill().expect("kills the child");
    child.0.wait().expect("reaps the child");
    assert!(committed >= 50 * CRASH_BATCH, "the child stopped early");

    let store = SqliteStore::open(&path).expect("reopens after the crash");
    let ranges = store.seq_ranges(Some("c1")).expect("ranges");
    let range = &ranges[0];
    assert!(
        range.max_seq >= committed,
        "{range:?} lost a committed batch"
    );
    assert_eq!(range.min_seq, 1);
    assert_eq!(range.count, range.max_seq, "no holes: {range:?}");
    assert_eq!(range.max_seq % CRASH_BATCH, 0, "half a batch: {range:?}");
    assert_eq!(
        store.cursors().expect("cursors")["c1"],
        Cursor {
            epoch: 1,
            seq: range.max_seq
        }
    );
}

#[test]
fn a_new_database_has_the_latest_schema_version() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("opens");
    assert_eq!(
        store.schema_version().expect("version"),
        SqliteStore::SCHEMA_VERSION
    );
    let memory = SqliteStore::open_in_memory().expect("opens");
    assert_eq!(
        memory.schema_version().expect("version"),
        SqliteStore::SCHEMA_VERSION
    );
}

#[test]
fn a_database_from_a_newer_haven_is_refused_and_left_unchanged() {
    let (_dir, path) = temp_db();
    let newer = SqliteStore::SCHEMA_VERSION + 5;
    {
        // As a newer haven might leave it: rollback journal, a table of its own.
        let conn = rusqlite::Connection::open(&path).expect("creates");
        conn.execute_batch("CREATE TABLE future (x INTEGER)")
            .expect("creates a table");
        conn.pragma_update(None, "user_version", newer)
            .expect("sets the version");
    }
    let before = std::fs::read(&path).expect("reads the file");

    let err = SqliteStore::open(&path).expect_err("refused");
    assert!(
        matches!(err, StoreError::TooNew { found, known } if found == newer && known == SqliteStore::SCHEMA_VERSION),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("upgrade haven"), "{message}");
    assert_eq!(std::fs::read(&path).expect("reads the file"), before);
    assert_eq!(user_version(&path), newer);
}

#[test]
fn the_same_file_opens_again_and_twice_at_once() {
    let (_dir, path) = temp_db();
    drop(SqliteStore::open(&path).expect("first open"));
    let mut a = SqliteStore::open(&path).expect("second open");
    let b = SqliteStore::open(&path).expect("open beside it");
    a.append(&rows("c1", 1, 1, 3)).expect("appends");
    assert_eq!(
        b.cursors().expect("cursors")["c1"],
        Cursor { epoch: 1, seq: 3 }
    );
    assert_eq!(
        b.schema_version().expect("version"),
        SqliteStore::SCHEMA_VERSION
    );
}

#[test]
fn a_file_that_is_not_a_database_is_named_in_the_error() {
    let (_dir, path) = temp_db();
    std::fs::write(&path, vec![b'x'; 4096]).expect("writes");
    let err = SqliteStore::open(&path).expect_err("refused");
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("haven.db"), "{err}");
}

#[test]
fn a_missing_directory_is_an_io_error_naming_the_file() {
    let (dir, _) = temp_db();
    let path = dir.path().join("no/such/dir/haven.db");
    let err = SqliteStore::open(&path).expect_err("refused");
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_new_database_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = temp_db();
    drop(SqliteStore::open(&path).expect("opens"));
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}
