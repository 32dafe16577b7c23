//! The SQL port against a real database file (the store's own schema), a
//! fake fleet and gate, and the real psql. With CI=true a missing psql is
//! a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use haven_model::{
    name, ClusterConfig, ClusterSnapshot, Freeze, GroupConfig, GroupState, GroupStatus,
    ResourceConfig, ResourceState, ResourceStatus, SystemConfig, SystemState, SystemStatus,
};
use haven_sqlport::{Gate, LinkInfo, Seen, SqlPort};

/// A cluster with `systems`, and `groups` of two resources each.
fn snapshot(cluster: &str, systems: &[&str], groups: &[&str]) -> ClusterSnapshot {
    sized_snapshot(cluster, systems, groups, &["app", "ip"])
}

/// A cluster with `systems` and `groups` of `resources` each.
fn sized_snapshot(
    cluster: &str,
    systems: &[&str],
    groups: &[&str],
    resources: &[&str],
) -> ClusterSnapshot {
    let mut config = ClusterConfig {
        name: name(cluster),
        includes: Vec::new(),
        attributes: Vec::new(),
        systems: systems.iter().map(SystemConfig::new).collect(),
        types: Vec::new(),
        groups: Vec::new(),
    };
    let mut statuses = Vec::new();
    for g in groups {
        let mut gc = GroupConfig::new(g);
        gc.system_list = systems
            .iter()
            .enumerate()
            .map(|(i, s)| (name(s), i as u32))
            .collect();
        for r in resources {
            gc.resources.push(ResourceConfig {
                name: name(format!("{g}_{r}")),
                type_name: name(if *r == "ip" { "IP" } else { "Process" }),
                attributes: vec![haven_model::Attr {
                    name: "Critical".into(),
                    system: None,
                    value: haven_model::AttrValue::int(i64::from(*r == "app")),
                }],
            });
        }
        gc.dependencies.push(haven_model::ResourceDependency {
            parent: name(format!("{g}_app")),
            child: name(format!("{g}_ip")),
        });
        let states: Vec<_> = systems
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    name(s),
                    if i == 0 {
                        GroupState::Online
                    } else {
                        GroupState::Offline
                    },
                )
            })
            .collect();
        statuses.push(GroupStatus {
            name: name(g),
            freeze: Freeze::None,
            enabled: true,
            states: states.clone(),
            resources: gc
                .resources
                .iter()
                .map(|r| ResourceStatus {
                    name: r.name.clone(),
                    states: systems
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            (
                                name(s),
                                if i == 0 {
                                    ResourceState::Online
                                } else {
                                    ResourceState::Offline
                                },
                            )
                        })
                        .collect(),
                })
                .collect(),
        });
        config.groups.push(gc);
    }
    ClusterSnapshot {
        seq: 7,
        systems: systems
            .iter()
            .map(|s| SystemStatus {
                name: name(s),
                state: SystemState::Running,
                freeze: Freeze::None,
            })
            .collect(),
        groups: statuses,
        config,
    }
}

struct Fleet(Vec<(String, LinkInfo, ClusterSnapshot)>);

/// What a test user sees: every cluster (`None`) or some, and in them
/// every group or some.
struct Sight {
    user: String,
    fleet: Arc<Fleet>,
    clusters: Option<Vec<&'static str>>,
    groups: Option<Vec<(&'static str, &'static str)>>,
}

impl Seen for Sight {
    fn user(&self) -> &str {
        &self.user
    }
    fn cluster(&self, cluster: &str) -> bool {
        self.clusters.as_ref().is_none_or(|c| c.contains(&cluster))
    }
    fn group(&self, cluster: &str, group: &str) -> bool {
        self.cluster(cluster)
            && self
                .groups
                .as_ref()
                .is_none_or(|gs| gs.iter().any(|(c, g)| *c == cluster && *g == group))
    }
    fn clusters(&self) -> Vec<String> {
        self.fleet
            .0
            .iter()
            .map(|c| c.0.clone())
            .filter(|n| self.cluster(n))
            .collect()
    }
    fn visit(
        &self,
        only: Option<&str>,
        f: &mut dyn FnMut(&str, &LinkInfo, Option<&ClusterSnapshot>),
    ) {
        for (n, link, snap) in &self.fleet.0 {
            if only.is_none_or(|o| o == n) && self.cluster(n) {
                f(n, link, Some(snap));
            }
        }
    }
}

/// Users: `admin` sees everything, `alpha` only cluster alpha, `web`
/// only group web of alpha. Every password is `pw-USER`.
struct TestGate(Arc<Fleet>);

#[async_trait::async_trait]
impl Gate for TestGate {
    async fn login(
        &self,
        user: &str,
        password: &str,
        _source: &str,
    ) -> Result<Arc<dyn Seen>, String> {
        if password != format!("pw-{user}") {
            return Err("password authentication failed".into());
        }
        let (clusters, groups) = match user {
            "admin" => (None, None),
            "alpha" => (Some(vec!["alpha"]), None),
            "web" => (Some(vec!["alpha"]), Some(vec![("alpha", "web")])),
            _ => return Err("password authentication failed".into()),
        };
        Ok(Arc::new(Sight {
            user: user.into(),
            fleet: self.0.clone(),
            clusters,
            groups,
        }))
    }
}

/// A database with the store's schema and some history.
fn database(dir: &Path) -> PathBuf {
    let path = dir.join("haven.db");
    drop(haven_store::SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO clusters VALUES ('alpha', '127.0.0.1:1', 'admin', 'secret-alpha', 1700000000000);
         INSERT INTO clusters VALUES ('beta', 'connector', NULL, NULL, 1700000000000);
         INSERT INTO operations (cluster, username, verb, op, requested_ms, outcome, finished_ms)
           VALUES ('alpha', 'admin', 'group_switch', '{\"op\":\"group_switch\",\"group\":\"db\"}', 1700000000000, 'completed', 1700000001000);
         INSERT INTO gaps (cluster, after_epoch, after_seq, resumed_epoch, resumed_seq, time_ms, reason)
           VALUES ('beta', 1, 5, 1, 9, 1700000000000, 'spool full');",
    )
    .unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO history (cluster, epoch, seq, time_ms, type, grp, resource, system, old_state, new_state, detail)
             VALUES (?1, 1, ?2, ?3, 'group_state', ?4, NULL, 'n1', 'OFFLINE', 'ONLINE', '{}')",
        )
        .unwrap();
    let mut seq = 0;
    for cluster in ["alpha", "beta"] {
        for group in ["web", "db"] {
            for _ in 0..5 {
                seq += 1;
                insert
                    .execute(rusqlite::params![
                        cluster,
                        seq,
                        1_700_000_000_000_i64 + seq * 1000,
                        group
                    ])
                    .unwrap();
            }
        }
    }
    path
}

fn link(mode: &str) -> LinkInfo {
    LinkInfo {
        mode: mode.into(),
        state: "connected".into(),
        since_ms: 1_700_000_000_000,
        error: None,
        epoch: Some(1),
        seq: 7,
    }
}

/// A port on a fresh database, served on a loopback port by its own
/// runtime thread.
struct Port {
    dir: tempfile::TempDir,
    db: PathBuf,
    addr: std::net::SocketAddr,
}

fn start() -> Port {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let fleet = Arc::new(Fleet(vec![
        (
            "alpha".into(),
            link("direct"),
            snapshot("alpha", &["n1", "n2"], &["web", "db"]),
        ),
        (
            "beta".into(),
            link("connector"),
            snapshot("beta", &["m1", "m2", "m3"], &["web", "db"]),
        ),
    ]));
    let port = Arc::new(SqlPort::new(db.clone(), Arc::new(TestGate(fleet)), None));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            port.serve(listener).await;
        });
    });
    let addr = rx.recv().unwrap();
    Port { dir, db, addr }
}

/// Whether psql is there; on CI its absence fails the test.
fn have_psql() -> bool {
    let found = Command::new("psql").arg("--version").output().is_ok();
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "psql is missing on CI (scripts/test installs postgresql-client)"
        );
        eprintln!("psql not found: skipped");
    }
    found
}

/// Runs psql (unaligned, tuples only); returns success, stdout, stderr.
fn psql(port: &Port, user: &str, password: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(port.addr.port().to_string())
        .args(["-U", user, "-d", "haven"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "prefer")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn query(port: &Port, user: &str, sql: &str) -> String {
    let (ok, out, err) = psql(port, user, &format!("pw-{user}"), &["-c", sql]);
    assert!(ok, "{sql}\n{err}");
    out
}

#[test]
fn every_view_answers_psql() {
    if !have_psql() {
        return;
    }
    let port = start();
    for view in haven_sqlport::views::VIEWS {
        query(
            &port,
            "admin",
            &format!("SELECT * FROM {} LIMIT 3", view.name),
        );
    }
    assert_eq!(
        query(&port, "admin", "SELECT count(*) FROM history"),
        "20\n"
    );
    assert_eq!(
        query(
            &port,
            "admin",
            "SELECT cluster, address, link_mode, link_state FROM clusters ORDER BY 1"
        ),
        "alpha|127.0.0.1:1|direct|connected\nbeta|connector|connector|connected\n"
    );
    assert_eq!(
        query(
            &port,
            "admin",
            "SELECT count(*) FROM resource_states WHERE cluster = 'beta'"
        ),
        "12\n"
    );
    assert_eq!(
        query(&port, "admin", "SELECT resource, critical, requires FROM resources WHERE cluster = 'alpha' AND service_group = 'web' ORDER BY 1"),
        "web_app|t|[\"web_ip\"]\nweb_ip|f|[]\n"
    );
    assert_eq!(
        query(
            &port,
            "admin",
            "SELECT time FROM history ORDER BY id LIMIT 1"
        ),
        "2023-11-14 22:13:21.000+00\n"
    );
    assert_eq!(
        query(
            &port,
            "admin",
            "SELECT service_group, outcome, requested FROM operations"
        ),
        "db|completed|2023-11-14 22:13:20.000+00\n"
    );
}

#[test]
fn psql_lists_and_describes_the_views() {
    if !have_psql() {
        return;
    }
    let port = start();
    let (ok, out, err) = psql(&port, "admin", "pw-admin", &["-c", "\\dv"]);
    assert!(ok, "{err}");
    for view in haven_sqlport::views::VIEWS {
        assert!(
            out.contains(&format!("public|{}|view|", view.name)),
            "{}: {out}",
            view.name
        );
    }
    let (ok, out, err) = psql(&port, "admin", "pw-admin", &["-c", "\\d history"]);
    assert!(ok, "{err}");
    assert!(out.contains("time_ms|bigint"), "{out}");
    assert!(out.contains("event_type|text"), "{out}");
}

#[test]
fn a_limited_user_sees_only_their_clusters_and_groups() {
    if !have_psql() {
        return;
    }
    let port = start();
    assert_eq!(
        query(&port, "alpha", "SELECT cluster FROM clusters"),
        "alpha\n"
    );
    assert_eq!(
        query(&port, "alpha", "SELECT count(*) FROM history"),
        "10\n"
    );
    assert_eq!(query(&port, "alpha", "SELECT count(*) FROM gaps"), "0\n");
    assert_eq!(
        query(&port, "web", "SELECT DISTINCT service_group FROM history"),
        "web\n"
    );
    assert_eq!(
        query(&port, "web", "SELECT service_group FROM groups"),
        "web\n"
    );
    assert_eq!(
        query(
            &port,
            "web",
            "SELECT DISTINCT service_group FROM resource_states"
        ),
        "web\n"
    );
    assert_eq!(
        query(&port, "web", "SELECT count(*) FROM operations"),
        "0\n"
    );
    let (ok, _, err) = psql(&port, "alpha", "wrong", &["-c", "SELECT 1"]);
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");
}

/// Each table of the database file with its row count and a hash of
/// every value of every row.
fn fingerprint(db: &Path) -> Vec<(String, usize, u64)> {
    use std::hash::{Hash, Hasher};
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut st = conn
                .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
                .unwrap();
            let n = st.column_count();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            let mut count = 0;
            let mut rows = st.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                count += 1;
                for i in 0..n {
                    format!("{:?}", row.get_ref(i).unwrap()).hash(&mut hasher);
                }
            }
            (t, count, hasher.finish())
        })
        .collect()
}

#[test]
fn every_write_is_refused_with_a_postgresql_error_and_changes_nothing() {
    if !have_psql() {
        return;
    }
    let port = start();
    let before = fingerprint(&port.db);
    let bytes = std::fs::read(&port.db).unwrap();
    for (sql, code) in [
        ("INSERT INTO history (cluster) VALUES ('x')", "25006"),
        ("UPDATE clusters SET address = 'x'", "25006"),
        ("DELETE FROM history", "25006"),
        ("CREATE TABLE t (a int)", "25006"),
        ("DROP VIEW history", "25006"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "42501"),
        ("PRAGMA writable_schema = 1", "42501"),
        ("SELECT load_extension('x')", "42501"),
        ("SELECT 1; DELETE FROM history", "25006"),
        ("WITH x AS (SELECT 1) DELETE FROM history", "25006"),
        ("SELECT password FROM haven_db.clusters", "42501"),
        ("WITH history AS (SELECT * FROM haven_db.clusters) SELECT * FROM history", "42501"),
        ("WITH x AS (SELECT 1), clusters AS (SELECT * FROM haven_db.clusters) SELECT * FROM clusters", "42501"),
        ("SELECT * FROM (SELECT * FROM haven_db.history)", "42501"),
        ("SELECT * FROM (SELECT password FROM haven_db.clusters) AS history", "42501"),
        ("SELECT * FROM (SELECT password FROM haven_db.clusters) history", "42501"),
        ("WITH \"History\"(a) AS MATERIALIZED (SELECT password FROM haven_db.clusters) SELECT * FROM history", "42501"),
        ("SELECT (SELECT password FROM haven_db.clusters LIMIT 1) AS history", "42501"),
        ("SELECT * FROM haven_db.sqlite_master", "42501"),
        ("SELECT * FROM pragma_table_info('clusters', 'haven_db')", "42501"),
        ("BEGIN; DELETE FROM history; COMMIT", "25006"),
    ] {
        let (ok, _, err) = psql(&port, "admin", "pw-admin", &["-v", "VERBOSITY=verbose", "-c", sql]);
        assert!(!ok, "{sql} was accepted");
        assert!(err.contains(code), "{sql}: expected {code}, got {err}");
    }
    assert_eq!(fingerprint(&port.db), before);
    assert_eq!(std::fs::read(&port.db).unwrap(), bytes);
    drop(port.dir);
}

/// How long the live views take on a fleet of 1,000 clusters of 4
/// systems, 20 groups and 10 resources (80,000 group states, 800,000
/// resource states): `cargo test --release -p haven-sqlport --test port
/// -- --ignored live_views_at_fleet_scale --nocapture`.
#[test]
#[ignore]
fn live_views_at_fleet_scale() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let systems = ["s1", "s2", "s3", "s4"];
    let groups: Vec<String> = (0..20).map(|g| format!("g{g}")).collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let resources: Vec<String> = (0..10).map(|r| format!("r{r}")).collect();
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    let fleet = Arc::new(Fleet(
        (0..1000)
            .map(|c| {
                let n = format!("c{c:04}");
                let snap = sized_snapshot(&n, &systems, &groups, &resources);
                (n, link("direct"), snap)
            })
            .collect(),
    ));
    let seen = Arc::new(Sight {
        user: "admin".into(),
        fleet,
        clusters: None,
        groups: None,
    });
    let session = haven_sqlport::session::Session::open(&db, seen, 1).unwrap();
    for sql in [
        "SELECT count(*) FROM clusters",
        "SELECT count(*) FROM groups",
        "SELECT count(*) FROM group_states",
        "SELECT count(*) FROM resource_states",
        "SELECT state, count(*) FROM resource_states GROUP BY state",
        "SELECT count(*) FROM resource_states WHERE cluster = 'c0500'",
        "SELECT * FROM group_states WHERE cluster = 'c0500' AND service_group = 'g3'",
        "SELECT g.cluster, count(*) FROM group_states g JOIN clusters c USING (cluster) WHERE g.state = 'ONLINE' GROUP BY 1",
    ] {
        let start = std::time::Instant::now();
        let rows = session.query(sql, &[]).unwrap();
        println!("{:>8.1} ms  {:>7} rows  {sql}", start.elapsed().as_secs_f64() * 1000.0, rows.rows.len());
    }
}

#[test]
fn docs_describe_every_view_and_column() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sql.md")).unwrap();
    for view in haven_sqlport::views::VIEWS {
        let section = docs
            .split(&format!("### `{}`\n", view.name))
            .nth(1)
            .unwrap_or_else(|| panic!("docs/sql.md has no section for {}", view.name));
        let section = section.split("\n### ").next().unwrap_or_default();
        for c in view.columns {
            let row = format!("| `{}` | {} | {} |", c.name, c.ty.sql_name(), c.doc);
            assert!(
                section.contains(&row),
                "docs/sql.md, {}: no row {row}",
                view.name
            );
        }
    }
}
