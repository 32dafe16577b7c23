//! The server on PostgreSQL.
//!
//! First, every end-to-end test of `server.rs`, unchanged: this binary's
//! name ends in `_pg`, so `support::ServerProc` gives each server a new
//! database on this process's throw-away PostgreSQL
//! (`crates/store/tests/common/pg.rs`; with `CI=true` a missing PostgreSQL
//! fails the tests, elsewhere they run on SQLite with a note).
//!
//! Then what differs on PostgreSQL: the URL from the environment, prune
//! (the same rows kept as on SQLite, through the API and `haven db`),
//! backups refused with the way to do them, the SQL port off.

#[path = "server.rs"]
mod server;

use std::path::Path;

use haven_model::{name, Event, EventKind, Freeze, GroupState, ResourceState, SystemState};
use haven_server::config::ServerConfig;
use haven_store::{
    AccessOutcome, Cursor, Gap, HistoryQuery, HistoryRow, Maintenance, NewAccess, NewOperation,
    OperationQuery, SqliteStore, Store,
};
use server::support::*;

/// The PostgreSQL URL in the server's `haven.toml` in `dir`.
fn url_of(dir: &Path) -> String {
    let config = ServerConfig::load(&dir.join("haven.toml")).unwrap();
    assert!(!config.database.url.is_empty(), "a PostgreSQL test server");
    config.database.url
}

/// Every history row of a store, oldest first.
fn all_rows(store: &dyn Store) -> Vec<HistoryRow> {
    let mut rows = store
        .history(&HistoryQuery {
            limit: 10_000_000,
            ..Default::default()
        })
        .unwrap();
    rows.sort_by_key(|r| (r.cluster.clone(), r.epoch, r.event.seq));
    rows
}

/// The last state of each (group, system) in the stored history.
fn last_group_states(store: &dyn Store) -> std::collections::BTreeMap<(String, String), String> {
    let mut last = std::collections::BTreeMap::new();
    for r in all_rows(store) {
        if let EventKind::GroupState {
            group, system, to, ..
        } = &r.event.kind
        {
            last.insert(
                (group.to_string(), system.to_string()),
                serde_json::to_value(to).unwrap().to_string(),
            );
        }
    }
    last
}

#[test]
fn maintenance_on_postgresql_prunes_like_sqlite_and_refuses_backups_with_the_way_to_do_them() {
    if !on_postgres() || pg::server().is_none() {
        return; // PostgreSQL is not installed and this is not CI
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sim, clusters) = sim_fleet(dir.path(), "pgm", 1, &[]);
    let (name, addr) = &clusters[0];
    let mut server = ServerProc::start(
        dir.path(),
        &format!("[[cluster]]\nname = \"{name}\"\naddress = \"{addr}\"\n"),
    );
    let url = url_of(dir.path());
    server.wait_for("/api/v1/summary", "connected", |v| {
        v["links"]["connected"] == 1
    });
    // One line each for what PostgreSQL does instead.
    let log = server.proc.log();
    assert!(
        log.contains("the SQL port is off: the database is PostgreSQL"),
        "{log}"
    );
    assert!(log.contains("scheduled backups are off"), "{log}");
    assert!(!log.contains(pg::OWNER_PASSWORD), "no password in the log");

    let head = churn(addr, 40);
    let detail = server.wait_for(&format!("/api/v1/clusters/{name}"), "caught up", |v| {
        v["link"]["seq"].as_u64() == Some(head)
    });
    let (status, body) = server.post("/api/v1/db/backups", "", &[]);
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("pg_dump"), "{message}");
    let (status, body) = server.post("/api/v1/db/prune", r#"{"older_than_days":30}"#, &[]);
    assert_eq!(
        (status, body["history_removed"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    server.proc.stop(PATIENCE);

    // Everything is older than "now": only each object's last state stays,
    // and it is the current state.
    let before = all_rows(server_store(dir.path()).as_ref()).len();
    let config = dir.path().join("haven.toml");
    let (code, out, err) = haven(&[
        "db",
        "prune",
        "--older-than",
        "0s",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("history rows removed") && out.contains("127.0.0.1:"),
        "{out}"
    );
    let store = server_store(dir.path());
    let after = all_rows(store.as_ref()).len();
    assert!(after < before, "{after} < {before}");
    let last = last_group_states(store.as_ref());
    let mut compared = 0;
    for g in detail["snapshot"]["groups"].as_array().unwrap() {
        for pair in g["states"].as_array().unwrap() {
            let key = (
                g["name"].as_str().unwrap().to_string(),
                pair[0].as_str().unwrap().to_string(),
            );
            if let Some(kept) = last.get(&key) {
                assert_eq!(*kept, pair[1].to_string(), "{key:?}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 20, "{compared} group states compared");
    let (code, out, err) = haven(&["db", "prune", "--older-than", "0s", "--database-url", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": 0 history rows removed"), "{out}");

    // Backup and restore are for the SQLite file.
    let file = dir.path().join("copy.db");
    let file = file.to_str().unwrap();
    for args in [
        vec!["db", "backup", file, "--config", config.to_str().unwrap()],
        vec!["db", "restore", file, "--database-url", &url],
    ] {
        let (code, out, err) = haven(&args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("pg_dump") && err.contains("nothing was done"),
            "{err}"
        );
        assert!(!err.contains(pg::OWNER_PASSWORD), "{err}");
    }
    assert!(!Path::new(file).exists());
}

#[test]
fn the_database_url_in_the_environment_wins_over_the_file() {
    if !on_postgres() {
        return;
    }
    let Some(db) = pg::database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("haven.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[connectors]\nlisten = \"127.0.0.1:0\"\n[sql]\nlisten = \"127.0.0.1:0\"\n[auth]\nenabled = false\n[database]\nurl = \"postgres://nobody:wrong@127.0.0.1:1/nothing\"\n",
            data.display()
        ),
    )
    .unwrap();
    let (server, line) = Proc::start_with_env(
        &["server", "--config", config.to_str().unwrap()],
        "haven server listening on",
        &[("HAVEN_DATABASE_URL", &db.url)],
    );
    let addr = server_address(&line, &data);
    let (status, body) = http_json(
        &addr,
        "POST",
        "/api/v1/clusters",
        Some(r#"{"name":"from-env","address":"127.0.0.1:9"}"#),
        &[],
    );
    assert_eq!(status, 201, "{body}");
    let names: Vec<String> = db
        .store()
        .list_clusters()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["from-env"]);
    let log = server.log();
    assert!(
        log.contains(&format!(
            "database: the PostgreSQL database 127.0.0.1:{}/",
            db.port()
        )),
        "{log}"
    );
    assert!(!log.contains(pg::OWNER_PASSWORD), "{log}");
    assert!(!data.join("haven.db").exists(), "no SQLite file");
}

/// A deterministic mix of every kind of state change and other events,
/// over two clusters, two epochs and times 0..10_000 ms.
fn mixed_history() -> Vec<HistoryRow> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut rows = Vec::new();
    for cluster in ["c1", "c2"] {
        for epoch in [1, 2] {
            for seq in 1..=1500u64 {
                let (g, s, r) = (next(4), next(3), next(5));
                let (group, system) = (name(format!("g{g}")), name(format!("s{s}")));
                let kind = match next(9) {
                    0 => EventKind::ResourceState {
                        group: group.clone(),
                        resource: name(format!("r{r}")),
                        system,
                        from: ResourceState::Offline,
                        to: ResourceState::Online,
                    },
                    1 => EventKind::GroupState {
                        group,
                        system,
                        from: GroupState::Offline,
                        to: [GroupState::Online, GroupState::Offline][next(2) as usize],
                    },
                    2 => EventKind::SystemState {
                        system,
                        from: SystemState::Running,
                        to: SystemState::Faulted,
                    },
                    3 => EventKind::GroupFreeze {
                        group,
                        freeze: Freeze::Temporary,
                    },
                    4 => EventKind::SystemFreeze {
                        system,
                        freeze: Freeze::None,
                    },
                    5 => EventKind::GroupEnabled {
                        group,
                        enabled: next(2) == 0,
                    },
                    6 => EventKind::Failover {
                        group,
                        from: system,
                        to: None,
                        reason: "none eligible".into(),
                    },
                    _ => EventKind::Notice {
                        severity: haven_model::Severity::Info,
                        object: None,
                        message: format!("notice {seq}"),
                    },
                };
                rows.push(HistoryRow {
                    cluster: cluster.into(),
                    epoch,
                    event: Event {
                        seq,
                        time_ms: (epoch as i64 - 1) * 5000 + seq as i64 * 3,
                        kind,
                    },
                });
            }
        }
    }
    rows
}

/// Fills a store with [`mixed_history`], gaps, operations and access log
/// entries on both sides of the cut-offs used below.
fn fill(store: &mut dyn Store) {
    store.append(&mixed_history()).unwrap();
    for time_ms in [100, 4000, 9000] {
        store
            .record_gap(&Gap {
                cluster: "c1".into(),
                after: Some(Cursor { epoch: 1, seq: 1 }),
                resumed: Cursor { epoch: 1, seq: 2 },
                time_ms,
                reason: "test".into(),
            })
            .unwrap();
        store
            .insert_operation(&NewOperation {
                cluster: "c1".into(),
                user: "ann".into(),
                op: haven_model::Operation::GroupUnfreeze { group: name("g1") },
                requested_ms: time_ms,
            })
            .unwrap();
        store
            .insert_access(&[NewAccess {
                time_ms,
                user: "ann".into(),
                source: None,
                action: "read".into(),
                target: None,
                cluster: None,
                outcome: AccessOutcome::Allowed,
                reason: None,
            }])
            .unwrap();
    }
}

/// What a prune left.
#[derive(Debug, PartialEq)]
struct Left {
    /// (cluster, epoch, seq) of the history rows.
    keys: Vec<(String, u64, u64)>,
    gap_times: Vec<i64>,
    operation_times: Vec<i64>,
}

fn left(store: &dyn Store) -> Left {
    let keys = all_rows(store)
        .into_iter()
        .map(|r| (r.cluster, r.epoch, r.event.seq))
        .collect();
    let gaps = store
        .gaps(None)
        .unwrap()
        .iter()
        .map(|g| g.time_ms)
        .collect();
    let ops = store
        .operations(&OperationQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|o| o.requested_ms)
        .collect();
    Left {
        keys,
        gap_times: gaps,
        operation_times: ops,
    }
}

#[test]
fn prune_on_postgresql_keeps_and_removes_exactly_what_it_does_on_sqlite() {
    let Some(db) = pg::database() else { return };
    let mut pg = db.store();
    let mut sqlite = SqliteStore::open_in_memory().unwrap();
    fill(&mut pg);
    fill(&mut sqlite);
    for (cut, audit_cut) in [
        (2000, None),
        (7000, Some(5000)),
        (7000, None),
        (20_000, Some(20_000)),
    ] {
        let progress = std::sync::Mutex::new(Vec::new());
        let on_pg = Maintenance::prune(&mut pg, cut, audit_cut, &|p| {
            progress.lock().unwrap().push(p)
        })
        .unwrap();
        let on_sqlite = Maintenance::prune(&mut sqlite, cut, audit_cut, &|_| {}).unwrap();
        let counts = |r: &haven_store::PruneReport| {
            (
                r.history_removed,
                r.history_kept,
                r.gaps_removed,
                r.audit_removed,
            )
        };
        assert_eq!(counts(&on_pg), counts(&on_sqlite), "cut {cut}");
        assert_eq!(left(&pg), left(&sqlite), "cut {cut}");
        if on_pg.history_removed > 0 {
            assert!(on_pg.bytes_freed > 0, "{on_pg:?}");
            let last = *progress.lock().unwrap().last().unwrap();
            assert_eq!(last.done, on_pg.history_removed);
        }
    }
    // Everything was before the last cut-off: one row per object stays.
    assert!(!all_rows(&pg).is_empty());
}

#[test]
fn the_read_only_role_of_docs_sql_md_reads_the_views_and_nothing_else() {
    let Some(db) = pg::database() else { return };
    let mut store = db.store();
    fill(&mut store);
    store
        .upsert_cluster(&haven_store::ClusterRecord {
            name: "c1".into(),
            address: "127.0.0.1:9".into(),
            user: Some("admin".into()),
            password: Some("engine-secret".into()),
            added_ms: 1,
        })
        .unwrap();
    // The SQL of docs/sql.md, "On PostgreSQL", for this test's database.
    let doc = include_str!("../../../docs/sql.md");
    let section = &doc[doc.find("## On PostgreSQL").expect("the section")..];
    let start = section.find("```sql\n").expect("its SQL") + "```sql\n".len();
    let sql = &section[start..start + section[start..].find("```").unwrap()];
    let password = "report-pw-3e1a";
    let sql = sql
        .replace("choose-a-password", password)
        .replace("DATABASE haven ", &format!("DATABASE {} ", db.name));
    db.superuser()
        .batch_execute(&sql)
        .expect("the documented SQL runs");

    let mut report = postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=haven_report password={password} dbname={}",
            db.port(),
            db.name
        ),
        postgres::NoTls,
    )
    .expect("the report role logs in");
    let count = |client: &mut postgres::Client, sql: &str| -> i64 {
        client.query_one(sql, &[]).unwrap().get(0)
    };
    assert_eq!(
        count(&mut report, "SELECT count(*) FROM history"),
        all_rows(&store).len() as i64
    );
    assert_eq!(
        count(
            &mut report,
            "SELECT count(*) FROM operations WHERE service_group = 'g1' AND requested IS NOT NULL"
        ),
        3
    );
    assert_eq!(count(&mut report, "SELECT count(*) FROM gaps"), 3);
    let clusters: Vec<String> = report
        .query("SELECT cluster FROM clusters", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(clusters, ["c1"]);
    for refused in [
        "SELECT password FROM public.clusters",
        "SELECT * FROM public.join_tokens",
        "DELETE FROM history",
        "INSERT INTO public.settings (key, value) VALUES ('k', 'v')",
        "CREATE TABLE report.mine (x int)",
    ] {
        assert!(
            report.batch_execute(refused).is_err(),
            "{refused} was allowed"
        );
    }
    assert_eq!(
        count(&mut db.client(), "SELECT count(*) FROM history"),
        all_rows(&store).len() as i64,
        "nothing changed"
    );
}
