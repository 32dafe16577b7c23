//! End-to-end: the read-only SQL port of a real `haven server` managing
//! real simulated engines, queried by the real clients — psql (over TLS,
//! verifying the fleet CA), the PostgreSQL JDBC driver in both query
//! modes, and isql through unixODBC and psqlODBC. With CI=true a missing
//! client is a failure, never a skip (scripts/test installs them).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::*;

fn engine(dir: &Path, cluster: &str) -> Engine {
    simulated_engine(dir, cluster, &["--sim-delay", "0"])
}

/// Whether a client program is installed; on CI its absence fails.
fn have(program: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{program} is missing on CI (scripts/test installs {package})"
        );
        eprintln!("{program} not found: skipped (install {package})");
    }
    found
}

/// The views the port documents (docs/sql.md).
const VIEWS: &[&str] = &[
    "clusters",
    "systems",
    "groups",
    "resources",
    "system_states",
    "group_states",
    "resource_states",
    "history",
    "operations",
    "gaps",
    "alerts",
];

const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";
/// psqlODBC's Unicode driver (Debian: `/usr/lib/<arch>/odbc/`).
fn psqlodbc() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|e| e.path().join("odbc/psqlodbcw.so"))
        .find(|p| p.exists())
}

/// A server with the SQL port on a free loopback port, managing one
/// engine per cluster, with some history.
struct Fleet {
    engines: Vec<Engine>,
    server: ServerProc,
    sql_port: u16,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

fn fleet(clusters: &[&str], extra: &str) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let engines: Vec<Engine> = clusters.iter().map(|c| engine(dir.path(), c)).collect();
    let mut toml = format!("[sql]\nlisten = \"127.0.0.1:0\"\n{extra}");
    for (c, e) in clusters.iter().zip(&engines) {
        toml.push_str(&format!(
            "[[cluster]]\nname = \"{c}\"\naddress = \"{}\"\n",
            e.addr
        ));
    }
    let server = ServerProc::start(dir.path(), &toml);
    let sql_port = sql_port(&server);
    Fleet {
        engines,
        server,
        sql_port,
        ca: dir.path().join("data/pki/ca.pem"),
        dir,
    }
}

/// The SQL port's address from the server's log line.
fn sql_port(server: &ServerProc) -> u16 {
    let log = server.proc.log();
    log.lines()
        .find_map(|l| l.split("haven sql port listening on ").nth(1))
        .and_then(|a| a.trim().rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no SQL port in the server log:\n{log}"))
}

impl Fleet {
    /// Runs psql over TLS that verifies the fleet CA; tuples only,
    /// unaligned.
    fn psql(&self, user: &str, password: &str, args: &[&str]) -> Output {
        Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} dbname=haven user={user} sslmode=verify-full sslrootcert={} connect_timeout=10",
                self.sql_port,
                self.ca.display()
            ))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    }

    fn query_as(&self, user: &str, password: &str, sql: &str) -> String {
        let out = self.psql(user, password, &["-c", sql]);
        assert!(
            out.status.success(),
            "{sql}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.server.proc.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A query with logins off (any user name, no password).
    fn query(&self, sql: &str) -> String {
        self.query_as("tester", "", sql)
    }

    /// Makes history on every engine and waits until all of it is in the
    /// database (then the writer is quiet).
    fn make_history(&self, clusters: &[&str]) {
        self.make_history_as("tester", "", clusters)
    }

    /// Like [`Fleet::make_history`], checked as `user`.
    fn make_history_as(&self, user: &str, password: &str, clusters: &[&str]) {
        for (c, e) in clusters.iter().zip(&self.engines) {
            let last = churn(&e.addr, 4);
            let deadline = Instant::now() + PATIENCE;
            loop {
                let stored = self.query_as(
                    user,
                    password,
                    &format!("SELECT coalesce(max(seq), 0) FROM history WHERE cluster = '{c}'"),
                );
                if stored == last.to_string() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{c}: history at {stored}, engine at {last}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn psql_queries_every_view_over_tls_and_lists_them() {
    if !have("psql", "postgresql-client") {
        return;
    }
    let f = fleet(&["alpha"], "");
    f.server
        .wait_for("/api/v1/clusters/alpha", "connected", |v| {
            v["link"]["state"] == "connected" && v["snapshot"].is_object()
        });
    f.make_history(&["alpha"]);
    for view in VIEWS {
        f.query(&format!("SELECT * FROM {view} LIMIT 5"));
    }
    assert_eq!(
        f.query("SELECT cluster, link_mode, link_state FROM clusters"),
        "alpha|direct|connected"
    );
    // Each group was switched twice: back where it started.
    assert_eq!(
        f.query("SELECT service_group, system, state FROM group_states ORDER BY 1, 2"),
        "db|n1|OFFLINE\ndb|n2|ONLINE\nweb|n1|ONLINE\nweb|n2|OFFLINE"
    );
    assert_eq!(
        f.query("SELECT resource, resource_type, requires FROM resources WHERE service_group = 'web' ORDER BY 1"),
        "web_httpd|Apache|[\"web_ip\"]\nweb_ip|IP|[]"
    );
    let switches = f.query(
        "SELECT count(*) FROM history WHERE event_type = 'group_state' AND new_state = 'ONLINE'",
    );
    assert!(switches.parse::<i64>().unwrap() >= 4, "{switches}");
    // The connection is TLS, verified against the fleet CA.
    let info = f.psql("tester", "", &["-c", "\\conninfo"]);
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("SSL connection"),
        "{info:?}"
    );
    // psql's own catalog queries.
    let dv = f.psql("tester", "", &["-c", "\\dv"]);
    let listed = String::from_utf8_lossy(&dv.stdout);
    for view in VIEWS {
        assert!(
            listed.contains(&format!("public|{view}|view|")),
            "{view}: {listed}"
        );
    }
    let d = f.psql("tester", "", &["-c", "\\d history"]);
    let described = String::from_utf8_lossy(&d.stdout);
    assert!(
        described.contains("seq|bigint") && described.contains("detail|text"),
        "{described}"
    );
}

const JAVA_TEST: &str = r#"
import java.sql.*;
import java.util.Properties;

public class Test {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", "tester");
        p.setProperty("password", "");
        p.setProperty("preferQueryMode", args[1]);
        p.setProperty("sslmode", "verify-full");
        p.setProperty("sslrootcert", args[2]);
        try (Connection c = DriverManager.getConnection(args[0], p)) {
            // More runs than prepareThreshold (5): a named server-side
            // statement, results in binary.
            try (PreparedStatement st = c.prepareStatement(
                    "SELECT cluster, seq, time_ms, service_group FROM history WHERE cluster = ? AND seq >= ? ORDER BY seq LIMIT 2")) {
                for (int run = 0; run < 7; run++) {
                    st.setString(1, "alpha");
                    st.setLong(2, 2);
                    try (ResultSet rs = st.executeQuery()) {
                        while (rs.next()) {
                            if (run == 6) {
                                System.out.println("history " + rs.getString("cluster") + " " + rs.getLong("seq") + " "
                                    + (rs.getLong("time_ms") > 1600000000000L) + " "
                                    + rs.getMetaData().getColumnTypeName(2));
                            }
                        }
                    }
                }
            }
            try (PreparedStatement st = c.prepareStatement(
                    "SELECT service_group, parallel, load, (SELECT count(*) FROM resources r WHERE r.service_group = g.service_group) AS n FROM groups g WHERE cluster = ? ORDER BY 1")) {
                st.setString(1, "alpha");
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) {
                        System.out.println("group " + rs.getString(1) + " " + rs.getBoolean(2) + " " + rs.getLong(3) + " " + rs.getLong(4));
                    }
                }
            }
            try (Statement s = c.createStatement()) {
                s.executeUpdate("DELETE FROM history");
                System.out.println("DELETE was accepted");
            } catch (SQLException e) {
                System.out.println("refused " + e.getSQLState());
            }
            // What a BI tool does first: list the views, then a view's
            // columns with their types.
            DatabaseMetaData md = c.getMetaData();
            java.util.List<String> views = new java.util.ArrayList<>();
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"VIEW"})) {
                while (rs.next()) views.add(rs.getString("TABLE_NAME"));
            }
            System.out.println("views " + views.contains("history") + " " + views.contains("groups"));
            try (ResultSet rs = md.getColumns(null, null, "history", "seq")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
        }
    }
}
"#;

#[test]
fn jdbc_runs_a_parameterized_query_in_extended_and_simple_modes() {
    if !have("java", "default-jdk-headless") {
        return;
    }
    if !Path::new(JDBC_JAR).exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{JDBC_JAR} is missing on CI"
        );
        eprintln!("{JDBC_JAR} not found: skipped (install libpostgresql-jdbc-java)");
        return;
    }
    let f = fleet(&["alpha"], "");
    f.server
        .wait_for("/api/v1/clusters/alpha", "connected", |v| {
            v["link"]["state"] == "connected" && v["snapshot"].is_object()
        });
    f.make_history(&["alpha"]);
    let java = f.dir.path().join("Test.java");
    std::fs::write(&java, JAVA_TEST).unwrap();
    for mode in ["extended", "simple"] {
        let out = Command::new("java")
            .args(["-cp", JDBC_JAR])
            .arg(&java)
            .arg(format!("jdbc:postgresql://127.0.0.1:{}/haven", f.sql_port))
            .arg(mode)
            .arg(&f.ca)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {printed}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 7, "{mode}: {printed}");
        // Two consecutive events, typed: bigint sequence numbers.
        let seqs: Vec<i64> = lines[..2]
            .iter()
            .map(|l| {
                let parts: Vec<&str> = l.split(' ').collect();
                assert_eq!(
                    (parts[0], parts[1], parts[3], parts[4]),
                    ("history", "alpha", "true", "int8"),
                    "{mode}: {l}"
                );
                parts[2].parse().unwrap()
            })
            .collect();
        assert_eq!(seqs[1], seqs[0] + 1, "{mode}: {printed}");
        assert_eq!(
            lines[2..].join("\n"),
            "group db false 0 1\ngroup web false 0 2\nrefused 25006\nviews true true\ncolumn seq int8",
            "{mode}"
        );
    }
}

#[test]
fn isql_runs_a_query_through_unixodbc_and_psqlodbc() {
    if !have("isql", "unixodbc") {
        return;
    }
    let Some(driver) = psqlodbc() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "psqlODBC is missing on CI (scripts/test installs odbc-postgresql)"
        );
        eprintln!("psqlODBC not found: skipped (install odbc-postgresql)");
        return;
    };
    let f = fleet(&["alpha"], "");
    f.server
        .wait_for("/api/v1/clusters/alpha", "connected", |v| {
            v["link"]["state"] == "connected" && v["snapshot"].is_object()
        });
    let odbc = f.dir.path().join("odbc");
    std::fs::create_dir_all(&odbc).unwrap();
    std::fs::write(
        odbc.join("odbc.ini"),
        format!(
            "[haven]\nDriver = {}\nServername = 127.0.0.1\nPort = {}\nDatabase = haven\nSSLmode = verify-full\npqopt = sslrootcert={}\n",
            driver.display(),
            f.sql_port,
            f.ca.display()
        ),
    )
    .unwrap();
    std::fs::write(odbc.join("odbcinst.ini"), "").unwrap();
    let isql = |sql: &str| {
        use std::io::Write;
        let mut child = Command::new("isql")
            .args(["-v", "-b", "-d|", "haven", "tester", ""])
            .env("ODBCINI", odbc.join("odbc.ini"))
            .env("ODBCSYSINI", &odbc)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let out = isql("SELECT cluster, system FROM system_states ORDER BY system\n");
    assert!(
        out.contains("alpha|n1") && out.contains("alpha|n2"),
        "{out}"
    );
    let out = isql("DELETE FROM history\n");
    assert!(out.contains("25006"), "{out}");
}

/// The database file's bytes (the main file and its WAL).
fn database_bytes(dir: &Path) -> Vec<u8> {
    let data = dir.join("data");
    let mut bytes = std::fs::read(data.join("haven.db")).unwrap();
    bytes.extend(std::fs::read(data.join("haven.db-wal")).unwrap_or_default());
    bytes
}

#[test]
fn every_write_attempt_is_refused_and_the_database_is_unchanged() {
    if !have("psql", "postgresql-client") {
        return;
    }
    let f = fleet(&["alpha"], "");
    f.server
        .wait_for("/api/v1/clusters/alpha", "connected", |v| {
            v["link"]["state"] == "connected" && v["snapshot"].is_object()
        });
    f.make_history(&["alpha"]);
    // Row counts of every view and a checksum of the whole history.
    let fingerprint = || {
        let mut all: Vec<String> = VIEWS
            .iter()
            .map(|v| f.query(&format!("SELECT '{v}', count(*) FROM {v}")))
            .collect();
        all.push(f.query(
            "SELECT count(*), sum(length(detail)), group_concat(cluster || epoch || '.' || seq || event_type || coalesce(new_state, '') || detail, ';') FROM (SELECT * FROM history ORDER BY id)",
        ));
        all
    };
    let before = fingerprint();
    let bytes = database_bytes(f.dir.path());
    for (sql, code) in [
        (
            "INSERT INTO history (cluster, epoch, seq) VALUES ('alpha', 9, 9)",
            "25006",
        ),
        ("UPDATE history SET new_state = 'ONLINE'", "25006"),
        ("DELETE FROM history", "25006"),
        ("CREATE TABLE t (a int)", "25006"),
        ("DROP VIEW history", "25006"),
        ("ATTACH DATABASE '/tmp/haven-sql-test.db' AS x", "42501"),
        ("PRAGMA writable_schema = 1", "42501"),
        ("SELECT load_extension('x')", "42501"),
        ("SELECT 1; DELETE FROM history", "25006"),
        ("SELECT password FROM haven_db.clusters", "42501"),
    ] {
        let out = f.psql("tester", "", &["-v", "VERBOSITY=verbose", "-c", sql]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sql} was accepted");
        assert!(
            err.contains(code),
            "{sql}: expected SQLSTATE {code}, got {err}"
        );
    }
    assert_eq!(fingerprint(), before);
    assert_eq!(
        database_bytes(f.dir.path()),
        bytes,
        "the database file changed"
    );
    assert!(!Path::new("/tmp/haven-sql-test.db").exists());
}

struct Account {
    user: String,
    group: String,
    service: String,
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.service));
    }
}

fn sh(cmd: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(t) = stdin {
        child.stdin.take().unwrap().write_all(t.as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success(), "{cmd} {args:?}");
}

#[test]
fn with_logins_a_user_sees_only_the_clusters_their_roles_reach() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "needs root on CI"
        );
        eprintln!("not root: skipped (it creates an OS user)");
        return;
    }
    if !have("psql", "postgresql-client") {
        return;
    }
    let id = std::process::id();
    let account = Account {
        user: format!("hvsql{id}"),
        group: format!("hvsqlg{id}"),
        service: format!("haven-sql-{id}"),
    };
    std::fs::write(
        format!("/etc/pam.d/{}", account.service),
        "auth     required pam_unix.so nodelay\naccount  required pam_unix.so\n",
    )
    .unwrap();
    sh("groupadd", &[&account.group], None);
    sh(
        "useradd",
        &["--no-create-home", "-g", &account.group, &account.user],
        None,
    );
    let password = format!("Pw-{}", account.user);
    sh(
        "chpasswd",
        &[],
        Some(&format!("{}:{password}\n", account.user)),
    );

    let f = fleet(
        &["kappa", "lambda"],
        &format!(
            "[auth]\nenabled = true\npam_service = \"{}\"\nmax_failures = 5\n\
             [[auth.grant]]\nuser = \"{}\"\nrole = \"guest\"\ncluster = \"kappa\"\n",
            account.service, account.user
        ),
    );
    let user = account.user.as_str();
    // Both clusters get history; the user can wait only for kappa's.
    churn(&f.engines[1].addr, 4);
    f.make_history_as(user, &password, &["kappa"]);
    assert_eq!(
        f.query_as(user, &password, "SELECT cluster FROM clusters"),
        "kappa"
    );
    assert_eq!(
        f.query_as(user, &password, "SELECT DISTINCT cluster FROM history"),
        "kappa"
    );
    assert_eq!(
        f.query_as(user, &password, "SELECT DISTINCT cluster FROM group_states"),
        "kappa"
    );
    let wrong = f.psql(user, "not-the-password", &["-c", "SELECT 1"]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{wrong:?}"
    );
}
