//! A throw-away PostgreSQL server for the tests: one per test process,
//! started at its first use, stopped and deleted when the process ends,
//! however it ends.
//!
//! - The binaries are the newest under `/usr/lib/postgresql/*/bin` (Debian
//!   keeps them off `PATH`), else `initdb` on `PATH`. Without them a test
//!   fails when `CI=true` (scripts/test installs them) and is otherwise
//!   skipped with a note on stderr.
//! - `initdb` makes a cluster in a new directory under the system's temp
//!   directory, as the `postgres` OS user when we are root (PostgreSQL
//!   refuses to run as root). It listens on a free loopback port (and a
//!   socket in its own directory); logins over TCP need a password
//!   (SCRAM), as in production.
//! - A guard process (`sh`, in its own process group so Ctrl-C and test
//!   timeouts do not reach it) reads a pipe whose writing end only this
//!   process holds. When this process exits (normally, by a panic, or
//!   killed) the pipe closes: the guard stops the server by the pid in
//!   `postmaster.pid` and deletes the directory.
//! - Every test gets its own database ([`database`]), owned by an ordinary
//!   role ([`OWNER`]), so the tests of one process run in parallel on one
//!   server. The databases sort text with ICU's `en-US` rules, like a
//!   real installation and unlike SQLite, so code that relies on byte
//!   order without asking for it fails here.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ::postgres::{Client, NoTls};
use haven_store::PgStore;

/// The role that owns the test databases (what Haven logs in as).
pub const OWNER: &str = "haven";
/// Its password.
pub const OWNER_PASSWORD: &str = "owner-pw-8c1f";
const SUPERUSER_PASSWORD: &str = "super-pw-52ad";

/// The running server of this process.
pub struct Server {
    port: u16,
    dir: PathBuf,
    admin: Mutex<Client>,
    /// Never waited for (it outlives us); its standard input is never
    /// written, and its closing at our exit tells it to clean up.
    _guard: Child,
}

/// A fresh database on the server.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// The URL Haven would be given: the owner, with its password.
    pub url: String,
    port: u16,
}

impl TestDb {
    /// A store on it (migrating it on first use).
    pub fn store(&self) -> PgStore {
        PgStore::connect(&self.url).expect("connects to the test database")
    }

    /// A plain client on it, as the owner, to look behind the store.
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connects as the owner")
    }

    /// A plain client on it as the superuser.
    pub fn superuser(&self) -> Client {
        superuser(self.port, &self.name)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// This process's server, started on first use; `None` when PostgreSQL is
/// not installed and this is not CI.
pub fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER.get_or_init(Server::start).as_ref()
}

/// A new empty database, or `None` (the test is skipped) when PostgreSQL
/// is not installed and this is not CI.
pub fn database() -> Option<TestDb> {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let server = server()?;
    let name = format!(
        "haven_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    server
        .admin
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .batch_execute(&format!(
            "CREATE DATABASE {name} OWNER {OWNER} TEMPLATE template0 ENCODING 'UTF8' \
             LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        ))
        .expect("creates a test database");
    Some(TestDb {
        url: format!(
            "postgres://{OWNER}:{OWNER_PASSWORD}@127.0.0.1:{}/{name}",
            server.port
        ),
        name,
        port: server.port,
    })
}

/// A store on a new database, or `None` (skip) as [`database`].
pub fn store() -> Option<PgStore> {
    database().map(|db| db.store())
}

fn superuser(port: u16, db: &str) -> Client {
    Client::connect(
        &format!(
            "host=127.0.0.1 port={port} user=postgres password={SUPERUSER_PASSWORD} dbname={db}"
        ),
        NoTls,
    )
    .expect("connects as the superuser")
}

/// Stops the server by the pid PostgreSQL wrote, then deletes its
/// directory ($1), once standard input closes.
const GUARD: &str = r#"
cat >/dev/null 2>&1
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
  kill -QUIT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1"
"#;

impl Server {
    fn start() -> Option<Server> {
        let Some(bin) = find_binaries() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no initdb \
                     on PATH), and CI=true: the PostgreSQL tests must run. scripts/test installs \
                     it (apt-get install postgresql)."
                );
            }
            eprintln!(
                "note: PostgreSQL is not installed: skipping the PostgreSQL half of this test \
                 (scripts/test installs it)"
            );
            return None;
        };
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("haven-pg-")
            .tempdir()
            .expect("makes a temp dir")
            .keep();
        // From here the guard owns the directory: it deletes it when this
        // process ends, even if the rest of this function panics.
        let guard = Command::new("sh")
            .arg("-c")
            .arg(GUARD)
            .arg("haven-pg-guard")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starts the guard that stops PostgreSQL at exit");

        let pwfile = dir.join("pwfile");
        std::fs::File::create(&pwfile)
            .and_then(|mut f| writeln!(f, "{SUPERUSER_PASSWORD}"))
            .expect("writes the password file");
        if root {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir));
        }
        let data = dir.join("data");
        run(as_postgres(root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["--no-sync", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display())));

        let port = start_on_a_free_port(root, &bin, &dir);
        let mut admin = superuser(port, "postgres");
        admin
            .batch_execute(&format!(
                "CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PASSWORD}'"
            ))
            .expect("creates the owner role");
        Some(Server {
            port,
            dir,
            admin: Mutex::new(admin),
            _guard: guard,
        })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
}

/// Starts the server with `pg_ctl`, trying another port when the one
/// chosen was taken meanwhile by someone else.
fn start_on_a_free_port(root: bool, bin: &Path, dir: &Path) -> u16 {
    let log = dir.join("log");
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("finds a free port")
            .port();
        let status = as_postgres(root, &bin.join("pg_ctl"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k '{}' -c max_connections=40",
                dir.display()
            ))
            .arg("start")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runs pg_ctl");
        if status.success() {
            return port;
        }
    }
    panic!(
        "PostgreSQL did not start; its log {}:\n{}",
        log.display(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The directory with `initdb` and `pg_ctl`: the newest Debian version,
/// else where `initdb` is on `PATH`.
fn find_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(PathBuf::from)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("runs id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `program`, run as the `postgres` OS user when we are root.
fn as_postgres(root: bool, program: &Path) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Runs a setup command; panics with its output if it fails.
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
