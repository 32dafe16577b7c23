//! Test support: real `haven` processes, started and stopped by pid, in
//! their own temporary directories.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haven_model::{Event, EventKind, GroupState, ResourceState};
use haven_protocol::{ClientOptions, EngineClient};

/// The store tests' throw-away PostgreSQL server, one per test process.
#[path = "../../../store/tests/common/pg.rs"]
pub mod pg;

pub const HAVEN: &str = env!("CARGO_BIN_EXE_haven");

/// Upper bound for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A `haven` child process, killed (TERM, then KILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
    pub stdout: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `haven ARGS` and waits until its stderr has a line containing
    /// `ready`; returns the process and that line.
    pub fn start(args: &[&str], ready: &str) -> (Proc, String) {
        Self::start_with_env(args, ready, &[])
    }

    /// Like [`Proc::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], ready: &str, env: &[(&str, &str)]) -> (Proc, String) {
        let mut child = Command::new(HAVEN)
            .args(args)
            .envs(env.iter().copied())
            .env("HAVEN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haven");
        let stdout = Arc::new(Mutex::new(String::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let printed = stdout.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                printed.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                // Logged first: whoever is told the line is there may
                // read the log at once.
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                if line.contains(&ready) {
                    let _ = tx.send(line);
                }
            }
        });
        let mut proc = Proc {
            child,
            stderr,
            stdout,
        };
        match rx.recv_timeout(PATIENCE) {
            Ok(line) => (proc, line),
            Err(_) => {
                let status = proc.child.try_wait().ok().flatten();
                panic!(
                    "haven {args:?} not ready (exit: {status:?}); stderr:\n{}",
                    proc.log()
                )
            }
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// What the process printed on standard output so far.
    pub fn printed(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits for the exit (KILL after `limit`).
    pub fn stop(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop(Duration::from_secs(15));
        }
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid this test owns.
    unsafe {
        libc::kill(pid, sig);
    }
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// Reads a pid file, waiting for it to appear.
pub fn wait_pid_file(path: &Path) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid file {}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running engine on a free loopback port, with its config directory.
pub struct Engine {
    pub proc: Proc,
    pub addr: String,
    pub dir: PathBuf,
}

impl Engine {
    pub fn start(dir: &Path, extra: &[&str]) -> Engine {
        let mut args = vec![
            "engine",
            "--config",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let (proc, line) = Proc::start(&args, "listening on");
        // "... listening on 127.0.0.1:PORT: 2 systems, ..."
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(": ").next())
            .expect("address in the ready line")
            .to_string();
        Engine {
            proc,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    pub async fn client(&self) -> EngineClient {
        EngineClient::connect(
            &self.addr,
            &ClientOptions {
                client: "haven-tests".into(),
                ..ClientOptions::default()
            },
        )
        .await
        .expect("connect to engine")
    }
}

/// Writes `main.cf` into a new temporary directory.
pub fn config_dir(main_cf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("main.cf"), main_cf).expect("write main.cf");
    dir
}

pub fn is_group(e: &Event, group: &str, system: &str, state: GroupState) -> bool {
    matches!(&e.kind, EventKind::GroupState { group: g, system: s, to, .. }
        if &**g == group && &**s == system && *to == state)
}

pub fn is_resource(e: &Event, resource: &str, system: &str, state: ResourceState) -> bool {
    matches!(&e.kind, EventKind::ResourceState { resource: r, system: s, to, .. }
        if &**r == resource && &**s == system && *to == state)
}

/// A `haven server` process with its own data directory.
pub struct ServerProc {
    pub proc: Proc,
    /// The API's address, HOST:PORT.
    pub addr: String,
    pub dir: PathBuf,
}

impl ServerProc {
    /// Writes `haven.toml` (listen on a free port, data in `dir/data`,
    /// logins off unless `extra` has an `[auth]` table, plus `extra`) and
    /// starts the server (HTTPS, the default). In a PostgreSQL test binary
    /// ([`on_postgres`]) the file also names a new database on this
    /// process's throw-away PostgreSQL; a restart in the same `dir` keeps
    /// the file, so the same database.
    pub fn start(dir: &Path, extra: &str) -> ServerProc {
        let config = dir.join("haven.toml");
        if !config.exists() {
            let extra = with_test_database(extra);
            std::fs::write(
                &config,
                format!(
                    "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[links]\ninitial_backoff_ms = 100\nmax_backoff_ms = 1000\n{}{}{}{extra}",
                    dir.join("data").display(),
                    if extra.contains("[connectors]") {
                        ""
                    } else {
                        "[connectors]\nlisten = \"127.0.0.1:0\"\n"
                    },
                    // Every server of a test has its own SQL and peer ports.
                    match (extra.contains("[sql]"), extra.contains("[peers]")) {
                        (true, true) => "",
                        (true, false) => "[peers]\nlisten = \"127.0.0.1:0\"\n",
                        (false, true) => "[sql]\nlisten = \"127.0.0.1:0\"\n",
                        (false, false) => {
                            "[sql]\nlisten = \"127.0.0.1:0\"\n[peers]\nlisten = \"127.0.0.1:0\"\n"
                        }
                    },
                    // Tests of other things than logins run with logins
                    // off (allowed on loopback), still over HTTPS.
                    if extra.contains("[auth]") {
                        ""
                    } else {
                        "[auth]\nenabled = false\n"
                    }
                ),
            )
            .unwrap();
        }
        let (proc, line) = Proc::start(
            &["server", "--config", config.to_str().unwrap()],
            "haven server listening on",
        );
        let addr = server_address(&line, &dir.join("data"));
        ServerProc {
            proc,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        http_json(&self.addr, "GET", path, None, &[])
    }

    /// Waits until `cluster` (a [`two_group_cluster`]) is connected with
    /// web online.
    /// Waits until the server is connected to `cluster` and its group
    /// `web` is ONLINE on n1 (its resources online, so one can fault).
    pub fn wait_web_online(&self, cluster: &str) {
        let path = format!("/api/v1/clusters/{cluster}");
        self.wait_for(&path, "connected, web online on n1", |v| {
            v["link"]["state"] == "connected"
                && group_state(&v["snapshot"], "web", "n1") == "ONLINE"
        });
    }

    /// Faults `resource` on `system` of `cluster` (simulated engines).
    pub fn sim_fault(&self, cluster: &str, resource: &str, system: &str) {
        let (status, done) = self.post(
            &format!("/api/v1/clusters/{cluster}/operations"),
            &format!(
                r#"{{"op":"sim_fault_resource","resource":"{resource}","system":"{system}"}}"#
            ),
            &[],
        );
        assert_eq!(status, 200, "{done}");
    }

    /// Runs `haven ARGS --socket DATA/haven.sock` against this server
    /// (see [`haven`]).
    pub fn haven(&self, args: &[&str]) -> (i32, String, String) {
        let socket = self.dir.join("data/haven.sock");
        let mut all = args.to_vec();
        all.extend(["--socket", socket.to_str().unwrap()]);
        haven(&all)
    }

    pub fn post(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        http_json(&self.addr, "POST", path, Some(body), headers)
    }

    /// Logs `user` in with `password`; the session's bearer token.
    pub fn log_in(&self, user: &str, password: &str) -> String {
        let (status, body) = self.post(
            "/api/v1/login",
            &serde_json::json!({"user": user, "password": password}).to_string(),
            &[],
        );
        assert_eq!(status, 200, "login of {user}: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// An API call with the session `token` and a JSON `body`.
    pub fn as_user(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let auth = format!("Bearer {token}");
        let body = body.map(|b| b.to_string());
        http_json(
            &self.addr,
            method,
            path,
            body.as_deref(),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
        )
    }

    /// Polls `path` until `pred` holds for the JSON answer.
    pub fn wait_for(
        &self,
        path: &str,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_for_with(path, &[], what, pred)
    }

    /// Like [`ServerProc::wait_for`], with request headers.
    pub fn wait_for_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = http_json(&self.addr, "GET", path, None, headers);
            if status == 200 && pred(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last answer {status}: {body}\nserver log:\n{}",
                self.proc.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether the servers of this test binary run on PostgreSQL: yes in a
/// binary whose name ends in `_pg` (`server_pg.rs` runs `server.rs`'s tests
/// so), or in any binary with `HAVEN_TEST_POSTGRES=1` (to try other tests
/// on PostgreSQL by hand).
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_pg")
        || std::env::var("HAVEN_TEST_POSTGRES").is_ok_and(|v| v == "1")
}

/// `extra` with `[database] url` naming a new test database, when
/// [`on_postgres`] (unchanged otherwise, or when PostgreSQL is not
/// installed outside CI: then the servers use SQLite, as `pg.rs` notes).
fn with_test_database(extra: &str) -> String {
    if !on_postgres() {
        return extra.to_string();
    }
    let Some(db) = pg::database() else {
        return extra.to_string();
    };
    let url = format!("url = \"{}\"\n", db.url);
    match extra.find("[database]\n") {
        Some(at) => {
            let (before, after) = extra.split_at(at + "[database]\n".len());
            format!("{before}{url}{after}")
        }
        None => format!("{extra}\n[database]\n{url}"),
    }
}

/// The database of the server whose `haven.toml` is in `dir` (SQLite
/// file or PostgreSQL), to look behind its API.
pub fn server_store(dir: &Path) -> Box<dyn haven_store::Store> {
    let config = haven_server::config::ServerConfig::load(&dir.join("haven.toml"))
        .expect("the server's haven.toml");
    haven_server::open_store(&config.database()).expect("opens the server's database")
}

/// The API address in a server's ready line ("listening on https://ADDR
/// ..."); an HTTPS server's address is registered to be reached with TLS,
/// trusting the fleet CA in `data_dir/pki/ca.pem`.
pub fn server_address(line: &str, data_dir: &Path) -> String {
    let (scheme, rest) = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_once("://"))
        .expect("an address in the ready line");
    let addr = rest
        .split_whitespace()
        .next()
        .expect("an address in the ready line")
        .to_string();
    if scheme == "https" {
        trust(&addr, &data_dir.join("pki/ca.pem"));
    }
    addr
}

/// Addresses served over TLS, with the client config that trusts them.
fn tls_clients() -> &'static Mutex<std::collections::HashMap<String, Arc<rustls::ClientConfig>>> {
    static CLIENTS: std::sync::OnceLock<
        Mutex<std::collections::HashMap<String, Arc<rustls::ClientConfig>>>,
    > = std::sync::OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// From now on, requests to `addr` go over TLS, trusting the CA in `ca_pem`.
pub fn trust(addr: &str, ca_pem: &Path) {
    let pem = std::fs::read_to_string(ca_pem).expect("the fleet CA");
    let config = haven_pki::client_config_for_ca(&pem).expect("a client config for the CA");
    tls_clients()
        .lock()
        .unwrap()
        .insert(addr.to_string(), config);
}

/// A connection to `addr`: TLS if `addr` was registered with [`trust`].
pub fn connect(addr: &str) -> Box<dyn ReadWrite> {
    let stream = std::net::TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let config = tls_clients().lock().unwrap().get(addr).cloned();
    match config {
        None => Box::new(stream),
        Some(config) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name =
                rustls::pki_types::ServerName::try_from(host.to_string()).expect("a server name");
            let conn = rustls::ClientConnection::new(config, name).expect("a TLS client");
            Box::new(rustls::StreamOwned::new(conn, stream))
        }
    }
}

pub trait ReadWrite: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> ReadWrite for T {}

/// One HTTP/1.1 answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The header lines, as sent.
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The value of a header (the first, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// One HTTP/1.1 request (TLS if the address was registered with
/// [`trust`]); returns status and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let reply = request(addr, method, path, body, headers);
    (reply.status, reply.body)
}

/// Like [`http`], with the answer's headers.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let stream = connect(addr);
    exchange(stream, addr, method, path, body, headers)
}

/// One HTTP/1.1 request over an open stream.
pub fn exchange(
    mut stream: impl std::io::Read + std::io::Write,
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if answer_complete(&raw) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A TLS peer may close without close_notify after Connection: close.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => panic!("reading the answer to {method} {path}: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Reply {
        status,
        head: head.to_string(),
        body: if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        },
    }
}

/// Whether `raw` holds a whole answer (by Content-Length, or the last
/// chunk), so a peer that keeps the connection open is not waited for.
fn answer_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = raw.len() - end - 4;
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body >= len;
    }
    head.contains("transfer-encoding: chunked") && raw.ends_with(b"0\r\n\r\n")
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let (status, text) = http(addr, method, path, body, headers);
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

/// Reads a Server-Sent Events stream in a thread; each `(event, data)`
/// arrives on the channel.
pub fn sse(addr: &str, path: &str) -> std::sync::mpsc::Receiver<(String, String)> {
    sse_with(addr, path, &[])
}

/// [`sse`] with request headers (`Authorization`...).
pub fn sse_with(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::sync::mpsc::Receiver<(String, String)> {
    use std::io::{BufRead, Write};
    let mut stream = connect(addr);
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{extra}\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let reader = std::io::BufReader::new(stream);
        let mut event = String::new();
        for line in reader.lines().map_while(Result::ok) {
            // Chunk-size lines of the transfer encoding carry no field.
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                if tx.send((event.clone(), d.trim().to_string())).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Copies bytes from `from` to `to` on a thread of its own until either
/// side closes, then shuts `to` down: one direction of a test's TCP relay.
pub fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// Both directions between `a` and `b` ([`pump`]).
pub fn relay_both(a: std::net::TcpStream, b: std::net::TcpStream) {
    pump(a.try_clone().unwrap(), b.try_clone().unwrap());
    pump(b, a);
}

/// Runs `work` with a client of the engine at `addr` (named `name`), on
/// a runtime of its own.
pub fn with_engine<T>(addr: &str, name: &str, work: impl AsyncFnOnce(&mut EngineClient) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = EngineClient::connect(
            addr,
            &ClientOptions {
                client: name.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        work(&mut client).await
    })
}

/// The engine run (epoch) and the whole state of the engine at `addr`, as
/// a client of its own sees them.
pub fn engine_snapshot(addr: &str) -> (u64, haven_model::ClusterSnapshot) {
    with_engine(addr, "test", async |client| {
        let snapshot = client.snapshot().await.unwrap();
        (client.welcome().epoch, snapshot)
    })
}

/// Switches every failover group of the engine's cluster in turn, `rounds`
/// times in all, straight on the engine (so events happen whatever the
/// server is doing); returns the engine's last sequence.
pub fn churn(addr: &str, rounds: usize) -> u64 {
    with_engine(addr, "churn", async |client| {
        let snap = client.snapshot().await.unwrap();
        let groups: Vec<_> = snap
            .config
            .groups
            .iter()
            .filter(|g| !g.parallel)
            .map(|g| g.name.clone())
            .collect();
        for i in 0..rounds {
            let result = client
                .command(haven_model::Operation::GroupSwitch {
                    group: groups[i % groups.len()].clone(),
                    to: None,
                })
                .await
                .unwrap();
            assert!(result.is_accepted(), "{result:?}");
        }
        client.snapshot().await.unwrap().seq
    })
}

/// Writes `DIR/ID.toml` for server `id` of a clustered server's group on
/// the PostgreSQL `url`, managing `direct` clusters, plus `extra`. Its
/// connector port is fixed, as a real server's is (connectors keep the
/// addresses they were told); data in `DIR/data-ID`.
pub fn write_group_config(
    dir: &Path,
    id: &str,
    url: &str,
    direct: &[(String, String)],
    extra: &str,
) -> PathBuf {
    let connector_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
         [links]\ninitial_backoff_ms = 100\nmax_backoff_ms = 1000\n\
         [connectors]\nlisten = \"127.0.0.1:{connector_port}\"\n[sql]\nlisten = \"127.0.0.1:0\"\n\
         [peers]\nlisten = \"127.0.0.1:0\"\n[auth]\nenabled = false\n\
         [database]\nurl = \"{url}\"\n\
         [group]\nenabled = true\nserver_id = \"{id}\"\nlease_ms = 2000\n{extra}",
        dir.join(format!("data-{id}")).display()
    );
    for (name, address) in direct {
        text.push_str(&format!(
            "[[cluster]]\nname = \"{name}\"\naddress = \"{address}\"\n"
        ));
    }
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the group server of `config` ([`write_group_config`]) and waits
/// for a line with `ready`; returns it and its API address.
pub fn start_group_server(config: &Path, ready: &str) -> (Proc, String) {
    let (proc, line) = Proc::start(&["server", "--config", config.to_str().unwrap()], ready);
    let id = config.file_stem().unwrap().to_str().unwrap();
    let data = config.parent().unwrap().join(format!("data-{id}"));
    (proc, server_address(&line, &data))
}

/// GET, or `None` while nothing answers there (a group's ports change
/// hands during a takeover).
pub fn get_when_up(addr: &str, path: &str) -> Option<(u16, serde_json::Value)> {
    std::net::TcpStream::connect(addr).ok()?;
    let (addr, path) = (addr.to_string(), path.to_string());
    std::panic::catch_unwind(move || http_json(&addr, "GET", &path, None, &[])).ok()
}

/// Starts `haven sim` with clusters of 4 systems x 20 groups x 10
/// resources, instant agents and `extra` arguments; returns it and each
/// cluster's (name, address) from its list file.
pub fn sim_fleet(
    dir: &Path,
    prefix: &str,
    clusters: usize,
    extra: &[&str],
) -> (Proc, Vec<(String, String)>) {
    let list = dir.join(format!("{prefix}.txt"));
    let count = clusters.to_string();
    let mut args = vec![
        "sim",
        "--clusters",
        &count,
        "--systems",
        "4",
        "--groups",
        "20",
        "--resources",
        "10",
        "--delay",
        "0",
        "--prefix",
        prefix,
    ];
    args.extend_from_slice(extra);
    let list_arg = list.to_str().unwrap().to_string();
    args.extend_from_slice(&["--list", &list_arg]);
    let (proc, _) = Proc::start(&args, "clusters ready");
    let text = std::fs::read_to_string(&list).unwrap();
    let entries = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect();
    (proc, entries)
}

/// Polls `f` until it gives a value (at most [`PATIENCE`]).
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// main.cf of a simulated two-system cluster: `web` (web_ip <- web_httpd)
/// starting on n1, `db` (db_fs) starting on n2.
pub fn two_group_cluster(cluster: &str) -> String {
    format!(
        r#"include "types.cf"
cluster {cluster} ( )
system n1 ( )
system n2 ( )
group web (
        SystemList = {{ n1 = 0, n2 = 1 }}
        AutoStartList = {{ n1 }}
        )
        IP web_ip ( Address = "192.0.2.10" )
        Apache web_httpd ( )
        web_httpd requires web_ip
group db (
        SystemList = {{ n2 = 0, n1 = 1 }}
        AutoStartList = {{ n2 }}
        )
        Mount db_fs ( )
"#
    )
}

/// Starts a simulated engine running [`two_group_cluster`] in
/// `dir/cluster`, with `extra` engine arguments (after `--simulate`).
pub fn simulated_engine(dir: &Path, cluster: &str, extra: &[&str]) -> Engine {
    let cdir = dir.join(cluster);
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("main.cf"), two_group_cluster(cluster)).unwrap();
    let mut args = vec!["--simulate"];
    args.extend_from_slice(extra);
    Engine::start(&cdir, &args)
}

/// Checks that `haven` takes `command` (a `haven ...` line, as the web
/// console's command log shows it; single quotes group words) as valid
/// arguments: it is run against a server that is not there (a socket, or
/// for `haven db` a data directory, that does not exist), so it fails to
/// reach one — but a usage error (exit status 2) means the arguments are
/// wrong, and is returned with what `haven` said.
pub fn haven_accepts(command: &str) -> Result<(), String> {
    let mut words = shell_words(command);
    if words.first().map(String::as_str) != Some("haven") {
        return Err(format!("not a haven command: {command}"));
    }
    words.remove(0);
    let nowhere = std::env::temp_dir().join("haven-nowhere-for-cli-checks");
    if words.first().map(String::as_str) == Some("db") {
        words.extend(["--data-dir".into(), nowhere.display().to_string()]);
    } else {
        words.extend([
            "--socket".into(),
            nowhere.join("haven.sock").display().to_string(),
        ]);
    }
    let out = Command::new(HAVEN)
        .args(&words)
        .env("HOME", &nowhere)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run haven: {e}"))?;
    match out.status.code() {
        Some(2) | None => Err(format!(
            "`{command}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Some(_) => Ok(()),
    }
}

/// Splits a command line into words: blanks separate, single quotes
/// group (`'\''` is a quote inside), as the console writes them.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if !quoted => word.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Runs `haven ARGS` to its end, without colour and without a database URL
/// from the environment: (exit code, stdout, stderr).
pub fn haven(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(HAVEN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove(haven_server::config::DATABASE_URL_ENV)
        .output()
        .expect("run haven");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The state of `group` on `system` in a snapshot as the API gives it
/// (empty when there is no such group or system).
pub fn group_state(snapshot: &serde_json::Value, group: &str, system: &str) -> String {
    snapshot["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == group)
        .and_then(|g| {
            g["states"]
                .as_array()?
                .iter()
                .find(|s| s[0] == system)
                .and_then(|s| s[1].as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}
