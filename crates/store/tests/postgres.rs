//! What only the PostgreSQL backend has to show: migrations when several
//! servers start at once, a newer schema left alone, batches that fail
//! inside the database or lose their connection, errors that keep the
//! password to themselves, and that both backends hold the same tables
//! and columns. Each test starts from a new database on this process's
//! throw-away server (`common/pg.rs`).

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{pg, row, rows};
use haven_store::{
    AppendReport, ClusterRecord, Cursor, HistoryRow, JoinTokenRecord, PgStore, SeqRange,
    SqliteStore, Store, StoreError,
};

/// `(version)` of every `haven_schema` row, in order.
fn versions(client: &mut postgres::Client) -> Vec<i32> {
    client
        .query("SELECT version FROM haven_schema ORDER BY version", &[])
        .expect("reads versions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every table and its columns (name, type, nullable), and every index,
/// in the database's schema.
fn schema_of(client: &mut postgres::Client) -> Vec<String> {
    let columns = client
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
             FROM information_schema.columns WHERE table_schema = current_schema()
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .expect("reads columns");
    let indexes = client
        .query(
            "SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = current_schema()
             ORDER BY indexname",
            &[],
        )
        .expect("reads indexes");
    columns.iter().chain(&indexes).map(|r| r.get(0)).collect()
}

#[test]
fn two_servers_starting_at_once_migrate_the_database_once() {
    let Some(db) = pg::database() else { return };
    let servers = 4;
    let start = Arc::new(Barrier::new(servers));
    let handles: Vec<_> = (0..servers)
        .map(|_| {
            let (url, start) = (db.url.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                PgStore::connect(&url).map(|s| s.schema_version())
            })
        })
        .collect();
    for handle in handles {
        let version = handle.join().expect("thread ends");
        assert_eq!(
            version.expect("connects").expect("reads"),
            PgStore::SCHEMA_VERSION
        );
    }
    let expected: Vec<i32> = (1..=PgStore::SCHEMA_VERSION as i32).collect();
    assert_eq!(versions(&mut db.client()), expected, "each version once");
}

#[test]
fn a_newer_schema_is_refused_before_anything_changes() {
    let Some(db) = pg::database() else { return };
    let newer = PgStore::SCHEMA_VERSION + 1;
    let mut store = db.store();
    store.set_setting("marker", "kept").expect("sets");
    drop(store);
    let mut client = db.client();
    client
        .execute(
            "INSERT INTO haven_schema (version, applied_ms) VALUES ($1, 0)",
            &[&(newer as i32)],
        )
        .expect("as a newer haven would");
    let before = schema_of(&mut client);

    let err = PgStore::connect(&db.url).expect_err("refused");
    assert!(
        matches!(err, StoreError::TooNew { found, known }
            if found == newer && known == PgStore::SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade haven"), "{err}");
    assert_eq!(schema_of(&mut client), before);
    let mut expected: Vec<i32> = (1..=PgStore::SCHEMA_VERSION as i32).collect();
    expected.push(newer as i32);
    assert_eq!(versions(&mut client), expected);
    let marker: String = client
        .query_one("SELECT value FROM settings WHERE key = 'marker'", &[])
        .expect("reads")
        .get(0);
    assert_eq!(marker, "kept");

    // A database that is only a newer version table: not a table created.
    let Some(bare) = pg::database() else { return };
    let mut client = bare.client();
    client
        .batch_execute(
            "CREATE TABLE haven_schema (version INT NOT NULL PRIMARY KEY, applied_ms BIGINT NOT NULL);
             INSERT INTO haven_schema VALUES (99, 0);",
        )
        .expect("as a much newer haven would");
    let before = schema_of(&mut client);
    let err = PgStore::connect(&bare.url).expect_err("refused");
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert_eq!(schema_of(&mut client), before);
}

/// The history of c1 holds 1..=10 and only c1 has a cursor, at 10.
fn expect_only_the_first_ten(store: &dyn Store) {
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
}

/// 10 rows of c1, then a batch of c1, c2 and c3 rows that the database
/// refuses while running it.
#[test]
fn a_batch_the_database_refuses_midway_leaves_nothing_of_it() {
    let Some(db) = pg::database() else { return };
    let mut store = db.store();
    store.append(&rows("c1", 1, 1, 10)).expect("appends");
    let mut batch = rows("c1", 1, 11, 500);
    batch.extend(rows("c2", 1, 1, 10));
    batch.extend(rows("c3", 1, 1, 10));
    batch.extend(rows("c1", 1, 501, 1000));

    // A row in the middle breaks a rule of `history`: the rows before it
    // were written by the same statement.
    let mut client = db.client();
    client
        .batch_execute("ALTER TABLE history ADD CONSTRAINT test_refuses CHECK (seq <> 666)")
        .expect("adds a rule");
    let err = store.append(&batch).expect_err("refused");
    assert!(err.to_string().contains("test_refuses"), "{err}");
    expect_only_the_first_ten(&store);

    // Every row is written, then moving c3's cursor fails.
    client
        .batch_execute(
            "ALTER TABLE history DROP CONSTRAINT test_refuses;
             ALTER TABLE cursors ADD CONSTRAINT test_refuses CHECK (cluster <> 'c3')",
        )
        .expect("moves the rule");
    let err = store.append(&batch).expect_err("refused");
    assert!(err.to_string().contains("test_refuses"), "{err}");
    expect_only_the_first_ten(&store);

    client
        .batch_execute("ALTER TABLE cursors DROP CONSTRAINT test_refuses")
        .expect("drops the rule");
    assert_eq!(store.append(&batch).expect("appends").inserted, batch.len());
}

#[test]
fn a_connection_killed_inside_a_batch_leaves_nothing_and_the_store_reconnects() {
    let Some(db) = pg::database() else { return };
    let mut store = db.store();
    store.append(&rows("c1", 1, 1, 10)).expect("appends");
    let mut batch = rows("c1", 1, 11, 500);
    batch.extend(rows("c2", 1, 1, 10));

    // Another session holds the cursors: the batch writes its history
    // rows, then waits to move the cursors.
    let mut locker = db.client();
    let mut lock = locker.transaction().expect("begins");
    lock.batch_execute("LOCK TABLE cursors IN EXCLUSIVE MODE")
        .expect("locks");
    let writer = {
        let batch = batch.clone();
        std::thread::spawn(move || {
            let result = store.append(&batch);
            (store, result)
        })
    };
    let mut watcher = db.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid: i32 = loop {
        let waiting = watcher
            .query(
                "SELECT pid FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'haven'
                   AND wait_event_type = 'Lock'",
                &[],
            )
            .expect("reads activity");
        if let Some(row) = waiting.first() {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "the batch never waited");
        std::thread::sleep(Duration::from_millis(20));
    };
    watcher
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .expect("kills the batch's connection");

    let (mut store, result) = writer.join().expect("thread ends");
    let err = result.expect_err("the batch failed");
    assert!(matches!(err, StoreError::Postgres(_)), "{err}");
    assert!(err.to_string().contains("connection"), "{err}");
    lock.rollback().expect("releases");

    // The next call connects again; nothing of the batch is there.
    expect_only_the_first_ten(&store);
    assert_eq!(
        store.append(&batch).expect("appends on a new connection"),
        AppendReport {
            inserted: batch.len(),
            duplicates: 0
        }
    );
}

#[test]
fn errors_name_the_database_but_never_the_password() {
    let Some(db) = pg::database() else { return };
    let port = db.port();
    let secret = "pw-that-must-not-show-7f3a";
    let check = |url: &str| -> StoreError {
        let err = PgStore::connect(url).expect_err("refused");
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains(secret), "{shown}");
        err
    };

    let wrong = check(&format!(
        "postgres://{}:{secret}@127.0.0.1:{port}/{}",
        pg::OWNER,
        db.name
    ));
    assert!(matches!(wrong, StoreError::PgConnect { .. }), "{wrong}");
    let text = wrong.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}/{} as haven", db.name)),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let nobody = check(&format!(
        "postgres://haven:{secret}@127.0.0.1:{closed}/fleet"
    ));
    let text = nobody.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{closed}/fleet")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");

    let bad = check(&format!("postgres://haven:{secret}@127.0.0.1:port/fleet"));
    assert!(matches!(bad, StoreError::PgUrl { .. }), "{bad}");
    assert!(
        bad.to_string().contains("postgres://USER:PASSWORD@HOST"),
        "{bad}"
    );

    let tls = check(&format!(
        "postgres://haven:{secret}@127.0.0.1:{port}/fleet?sslmode=require"
    ));
    assert!(tls.to_string().contains("TLS"), "{tls}");

    let store = db.store();
    assert!(!format!("{store:?}").contains(pg::OWNER_PASSWORD));
}

#[test]
fn a_join_token_spent_by_two_servers_at_once_is_spent_once() {
    let Some(db) = pg::database() else { return };
    let mut store = db.store();
    let tokens = 20;
    for i in 0..tokens {
        store
            .insert_join_token(&JoinTokenRecord {
                id: format!("t{i}"),
                secret_hash: "h".into(),
                cluster: None,
                created_ms: 0,
                expires_ms: 1_000,
            })
            .expect("stores");
    }
    let start = Arc::new(Barrier::new(2));
    let spenders: Vec<_> = ["east", "west"]
        .into_iter()
        .map(|cluster| {
            let (mut store, start) = (db.store(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..tokens)
                    .map(|i| {
                        store
                            .spend_join_token(&format!("t{i}"), "h", cluster, 10)
                            .expect("spends")
                            .is_ok()
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let won: Vec<Vec<bool>> = spenders
        .into_iter()
        .map(|s| s.join().expect("thread ends"))
        .collect();
    for (i, (east, west)) in won[0].iter().zip(&won[1]).enumerate() {
        assert!(east != west, "token t{i}: east {east}, west {west}");
    }
    assert_eq!(won[0].len(), tokens);
}

#[test]
fn two_servers_appending_the_same_batches_at_once_store_them_once() {
    let Some(db) = pg::database() else { return };
    let batches: Arc<Vec<Vec<HistoryRow>>> = Arc::new(
        (0..20)
            .map(|b| {
                (1..=5)
                    .flat_map(|c| rows(&format!("c{c}"), 1, b * 50 + 1, b * 50 + 50))
                    .collect()
            })
            .collect(),
    );
    let start = Arc::new(Barrier::new(2));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (mut store, start, batches) = (db.store(), start.clone(), batches.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut total = AppendReport::default();
                for batch in batches.iter() {
                    let report = store.append(batch).expect("appends");
                    total.inserted += report.inserted;
                    total.duplicates += report.duplicates;
                }
                total
            })
        })
        .collect();
    let reports: Vec<AppendReport> = writers
        .into_iter()
        .map(|w| w.join().expect("thread ends"))
        .collect();
    let rows = 20 * 5 * 50;
    assert_eq!(reports.iter().map(|r| r.inserted).sum::<usize>(), rows);
    assert_eq!(reports.iter().map(|r| r.duplicates).sum::<usize>(), rows);
    let store = db.store();
    let ranges = store.seq_ranges(None).expect("ranges");
    assert_eq!(ranges.len(), 5);
    assert!(ranges.iter().all(|r| r.count == 1000 && r.max_seq == 1000));
    assert!(store.cursors().expect("cursors").values().all(|c| *c
        == Cursor {
            epoch: 1,
            seq: 1000
        }));
}

/// The tables, columns (name and NOT NULL) and indexes of an SQLite
/// database, as `schema_of_both` lists them.
fn sqlite_schema(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("opens");
    let mut out = Vec::new();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("lists")
        .collect::<Result<_, _>>()
        .expect("reads");
    for table in tables {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name, \"notnull\" OR pk FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .expect("prepares");
        let columns = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
            .expect("lists");
        for column in columns {
            let (name, not_null) = column.expect("reads");
            out.push(format!(
                "{table}.{name} {}",
                if not_null { "NOT NULL" } else { "NULL" }
            ));
        }
    }
    let indexes = conn
        .prepare("SELECT 'index ' || name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name")
        .expect("prepares")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("lists")
        .collect::<Result<Vec<_>, _>>()
        .expect("reads");
    out.extend(indexes);
    out
}

#[test]
fn both_backends_have_the_same_tables_columns_and_indexes() {
    let Some(db) = pg::database() else { return };
    let _store = db.store();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haven.db");
    SqliteStore::open(&path).expect("opens");
    assert_eq!(PgStore::SCHEMA_VERSION, SqliteStore::SCHEMA_VERSION);

    let pg: Vec<String> = db
        .client()
        .query(
            "SELECT table_name || '.' || column_name || ' '
                    || CASE is_nullable WHEN 'NO' THEN 'NOT NULL' ELSE 'NULL' END
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name <> 'haven_schema'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .expect("reads columns")
        .iter()
        .map(|r| r.get(0))
        .chain(
            db.client()
                .query(
                    "SELECT 'index ' || indexname FROM pg_indexes
                     WHERE schemaname = current_schema()
                       AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'
                     ORDER BY indexname",
                    &[],
                )
                .expect("reads indexes")
                .iter()
                .map(|r| r.get(0)),
        )
        .collect();
    assert_eq!(pg, sqlite_schema(&path));
}

/// The query columns and JSON of every stored event, in insertion order.
type Stored = Vec<[Option<String>; 8]>;

const STORED: &str =
    "SELECT type, grp, resource, system, object, old_state, new_state, detail FROM history ORDER BY id";

#[test]
fn both_backends_store_the_same_columns_for_every_kind_of_event() {
    let Some(db) = pg::database() else { return };
    let rows = common::rows_of("c1", common::every_kind());
    db.store().append(&rows).expect("appends");
    let on_pg: Stored = db
        .client()
        .query(STORED, &[])
        .expect("reads")
        .iter()
        .map(|r| std::array::from_fn(|i| r.get(i)))
        .collect();

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haven.db");
    SqliteStore::open(&path)
        .expect("opens")
        .append(&rows)
        .expect("appends");
    let on_sqlite: Stored = rusqlite::Connection::open(&path)
        .expect("opens")
        .prepare(STORED)
        .expect("prepares")
        .query_map([], |r| {
            let mut cols: [Option<String>; 8] = Default::default();
            for (i, col) in cols.iter_mut().enumerate() {
                *col = r.get(i)?;
            }
            Ok(cols)
        })
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("reads");
    assert_eq!(on_pg.len(), rows.len());
    assert_eq!(on_pg, on_sqlite);
}

#[test]
fn a_cluster_record_reads_back_whole_with_its_password() {
    let Some(db) = pg::database() else { return };
    let mut store = db.store();
    let rec = ClusterRecord {
        name: "c1".into(),
        address: "[::1]:14141".into(),
        user: Some("admin".into()),
        password: Some("p'w\"\\ ü".into()),
        added_ms: i64::MAX,
    };
    store.upsert_cluster(&rec).expect("adds");
    assert_eq!(store.list_clusters().expect("lists"), vec![rec]);
}

/// How fast each backend appends: the same synthetic batches (1,000 rows,
/// 10 clusters) to an SQLite file (WAL) and to PostgreSQL (default,
/// durable settings: a WAL flush per commit). Prints rows per second;
/// asserts only that every row was stored (timings on a shared machine
/// are not a test). `cargo nextest run -p haven-store --no-capture -E
/// 'test(append_rate)'` shows the numbers.
#[test]
fn append_rate_on_both_backends() {
    let Some(db) = pg::database() else { return };
    let events = 50_000;
    let batches: Vec<Vec<HistoryRow>> = (0..events / 1_000)
        .map(|b| {
            (0..1_000)
                .map(|i| {
                    let n = b * 1_000 + i;
                    let mut r = row(&format!("cluster{:02}", n % 10), 1, n / 10 + 1);
                    r.event.time_ms = 1_764_064_699_425 + n as i64;
                    r
                })
                .collect()
        })
        .collect();
    let rate = |store: &mut dyn Store| -> f64 {
        let start = Instant::now();
        let mut inserted = 0;
        for batch in &batches {
            inserted += store.append(batch).expect("appends").inserted;
        }
        assert_eq!(inserted, events as usize);
        events as f64 / start.elapsed().as_secs_f64()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = rate(&mut SqliteStore::open(&dir.path().join("haven.db")).expect("opens"));
    let postgres = rate(&mut db.store());
    println!(
        "append rate, {events} events in batches of 1000: sqlite {sqlite:.0} rows/s, \
         postgres {postgres:.0} rows/s ({:.2}x sqlite)",
        postgres / sqlite
    );
}
