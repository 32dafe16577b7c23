//! End-to-end: `haven connector` beside a real engine, dialling out to a
//! real `haven server` over TLS.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use haven_store::{SqliteStore, Store};
use serde_json::Value;
use support::*;

const CLUSTER: &str = r#"include "types.cf"
cluster omega ( )
system n1 ( )
system n2 ( )
group web (
        SystemList = { n1 = 0, n2 = 1 }
        AutoStartList = { n1 }
        )
        IP web_ip ( Address = "192.0.2.20" )
        Apache web_httpd ( )
        web_httpd requires web_ip
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Site {
    dir: tempfile::TempDir,
    engine: Engine,
    connector_port: u16,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("omega");
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::write(cdir.join("main.cf"), CLUSTER).unwrap();
        let engine = Engine::start(
            &cdir,
            &["--simulate", "--sim-delay", "0", "--journal", "100000"],
        );
        Site {
            dir,
            engine,
            connector_port: free_port(),
        }
    }

    fn server(&self) -> ServerProc {
        ServerProc::start(
            self.dir.path(),
            &format!(
                "[connectors]\nlisten = \"127.0.0.1:{}\"\n",
                self.connector_port
            ),
        )
    }

    fn token(&self, server: &ServerProc, body: &str) -> String {
        let (status, issued) = server.post("/api/v1/tokens", body, &[]);
        assert_eq!(status, 201, "{issued}");
        assert_eq!(
            issued["connector_address"],
            format!("127.0.0.1:{}", self.connector_port)
        );
        issued["token"].as_str().unwrap().to_string()
    }

    fn connector_args(&self, data: &str, token: Option<&str>) -> Vec<String> {
        let mut args = vec![
            "connector".to_string(),
            "--server".into(),
            format!("127.0.0.1:{}", self.connector_port),
            "--engine".into(),
            self.engine.addr.clone(),
            "--data-dir".into(),
            self.dir.path().join(data).to_str().unwrap().into(),
        ];
        if let Some(t) = token {
            args.push("--token".into());
            args.push(t.into());
        }
        args
    }

    fn connector(&self, data: &str, token: Option<&str>) -> Proc {
        self.connector_with(data, token, &[], &[])
    }

    fn connector_with(
        &self,
        data: &str,
        token: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let mut args = self.connector_args(data, token);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::start_with_env(&args, "following the engine", env).0
    }

    /// Runs a connector that must fail; returns its stderr.
    fn connector_fails(&self, data: &str, token: &str, server: Option<String>) -> String {
        let mut args = self.connector_args(data, Some(token));
        if let Some(s) = server {
            args[2] = s;
        }
        let out = std::process::Command::new(HAVEN)
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "the connector must refuse");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn wait_connector_link(server: &ServerProc) -> Value {
    server.wait_for("/api/v1/clusters/omega", "connector link", |v| {
        v["link"]["state"] == "connected"
            && v["link"]["mode"] == "connector"
            && v["snapshot"].is_object()
    })
}

fn wait_history(data: &Path, cluster: &str, head: u64) {
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        let done = SqliteStore::open(&data.join("haven.db"))
            .unwrap()
            .seq_ranges(Some(cluster))
            .unwrap()
            .last()
            .is_some_and(|r| r.max_seq == head);
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "history did not reach {head}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_connector_joins_with_a_token_and_events_and_operations_flow_through_it() {
    let site = Site::new();
    let server = site.server();
    let token = site.token(&server, r#"{"cluster":"omega"}"#);
    let _connector = site.connector("conn", Some(&token));
    let detail = wait_connector_link(&server);
    assert!(detail["link"]["connector_version"].is_string(), "{detail}");

    // An operation from the server reaches the engine through the connector.
    let (status, result) = server.post(
        "/api/v1/clusters/omega/operations",
        r#"{"op":"group_switch","group":"web","to":"n2","wait":true,"timeout_secs":30}"#,
        &[("X-Haven-User", "dave")],
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["outcome"], "completed");
    let head = churn(&site.engine.addr, 10);
    wait_history(&site.dir.path().join("data"), "omega", head);
    let (_, audit) = server.get("/api/v1/operations?cluster=omega");
    assert_eq!(audit[0]["user"], "dave");
    // The credentials are kept, private.
    let creds = site.dir.path().join("conn/connector.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn bad_used_expired_and_foreign_tokens_are_refused() {
    let site = Site::new();
    let server = site.server();
    let err = site.connector_fails("c1", "not-a-token", None);
    assert!(err.contains("not a Haven join token"), "{err}");

    let good = site.token(&server, "{}");
    let wrong_secret = {
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        parts[2] = "00".repeat(16);
        parts.join(".")
    };
    let err = site.connector_fails("c2", &wrong_secret, None);
    assert!(err.contains("wrong join token secret"), "{err}");

    // Used once, refused the second time.
    let connector = site.connector("c3", Some(&good));
    wait_connector_link(&server);
    drop(connector);
    let err = site.connector_fails("c4", &good, None);
    assert!(err.contains("already used"), "{err}");

    let short = site.token(&server, r#"{"ttl_secs":1}"#);
    std::thread::sleep(Duration::from_millis(1500));
    let err = site.connector_fails("c5", &short, None);
    assert!(err.contains("expired"), "{err}");

    let other = site.token(&server, r#"{"cluster":"someone-else"}"#);
    let err = site.connector_fails("c6", &other, None);
    assert!(err.contains("someone-else"), "{err}");
}

#[test]
fn a_server_with_the_wrong_certificate_is_refused() {
    let site = Site::new();
    let server = site.server();
    let token = site.token(&server, "{}");
    // A second server, with its own CA, on another port.
    let impostor_dir = tempfile::tempdir().unwrap();
    let impostor_port = free_port();
    let _impostor = ServerProc::start(
        impostor_dir.path(),
        &format!("[connectors]\nlisten = \"127.0.0.1:{impostor_port}\"\n"),
    );
    let err = site.connector_fails("c1", &token, Some(format!("127.0.0.1:{impostor_port}")));
    assert!(err.contains("certificate"), "{err}");
    assert!(!site.dir.path().join("c1/connector.json").exists());
}

#[test]
fn history_is_complete_after_a_server_outage_and_a_killed_connector() {
    let site = Site::new();
    let mut server = site.server();
    let token = site.token(&server, "{}");
    let mut connector = site.connector("conn", Some(&token));
    wait_connector_link(&server);
    let data = site.dir.path().join("data");

    // The server goes away; the engine keeps producing events.
    server.proc.stop(PATIENCE);
    let mid = churn(&site.engine.addr, 150);
    // The connector is killed -9 with its spool full of undelivered events,
    // and started again (no token needed), while the server is still down.
    std::thread::sleep(Duration::from_millis(500));
    signal(connector.pid(), libc::SIGKILL);
    let _ = connector.child.wait();
    let _connector = site.connector("conn", None);
    let head = churn(&site.engine.addr, 150);
    assert!(
        head > mid && mid > 1000,
        "thousands of events: {mid} then {head}"
    );

    server = site.server();
    wait_connector_link(&server);
    wait_history(&data, "omega", head);
    let store = SqliteStore::open(&data.join("haven.db")).unwrap();
    let ranges = store.seq_ranges(Some("omega")).unwrap();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let r = &ranges[0];
    assert_eq!(
        r.count,
        r.max_seq - r.min_seq + 1,
        "no hole, no double: {r:?}"
    );
    assert!(store.gaps(Some("omega")).unwrap().is_empty());
    let (_, detail) = server.get("/api/v1/clusters/omega");
    assert_eq!(detail["link"]["mode"], "connector");
    drop(server);
}

/// A minimal HTTP CONNECT proxy on loopback; counts the tunnels it made.
fn connect_proxy() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = tunnels.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let target = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok() && line != "\r\n" {
                    line.clear();
                }
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    let _ = (&client).write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (&client)
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                relay_both(client, upstream);
            });
        }
    });
    (addr, tunnels)
}

#[test]
fn a_connector_reaches_the_server_through_an_https_proxy() {
    let site = Site::new();
    let server = site.server();
    let token = site.token(&server, "{}");
    let (proxy, tunnels) = connect_proxy();
    let _connector = site.connector_with(
        "conn",
        Some(&token),
        &[],
        &[
            ("HTTPS_PROXY", &format!("http://{proxy}")),
            ("NO_PROXY", "example.org"),
        ],
    );
    wait_connector_link(&server);
    assert!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "join and session went through the proxy"
    );
}

#[test]
fn a_full_spool_drops_the_oldest_and_records_the_gap_with_its_time_range() {
    let site = Site::new();
    let mut server = site.server();
    let token = site.token(&server, "{}");
    let _connector = site.connector_with("conn", Some(&token), &["--spool-max", "64K"], &[]);
    wait_connector_link(&server);
    server.proc.stop(PATIENCE);
    let head = churn(&site.engine.addr, 200);
    server = site.server();
    wait_connector_link(&server);
    let gaps = server.wait_for("/api/v1/gaps?cluster=omega", "a recorded gap", |v| {
        v.as_array().is_some_and(|g| !g.is_empty())
    });
    let reason = gaps[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("buffer was full") && reason.contains("ms"),
        "{reason}"
    );
    // What came after the gap is complete up to the engine's head.
    wait_history(&site.dir.path().join("data"), "omega", head);
    let store = SqliteStore::open(&site.dir.path().join("data/haven.db")).unwrap();
    // The spool may also have overflowed while the old server was still
    // stopping, which records an earlier gap too: completeness holds
    // after the last one.
    let resumed = gaps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["resumed"][1].as_u64())
        .max()
        .unwrap();
    let rows = store
        .history(&haven_store::HistoryQuery {
            cluster: Some("omega".into()),
            limit: 1_000_000,
            ..Default::default()
        })
        .unwrap();
    let after: Vec<u64> = rows
        .iter()
        .map(|r| r.event.seq)
        .filter(|s| *s > resumed)
        .collect();
    assert_eq!(
        after.len() as u64,
        head - resumed,
        "every event after the gap, once"
    );
}

/// A relay that can be frozen: it keeps its connections open but passes
/// nothing, as a network that silently drops everything would.
struct Freezer {
    addr: String,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn freezer(upstream: String) -> Freezer {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = frozen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        // Frozen: swallow (bounded wait, then drop the bytes).
                        if flag.load(Ordering::SeqCst) {
                            continue;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    Freezer { addr, frozen }
}

#[test]
fn a_half_open_connection_is_noticed_and_the_connector_comes_back() {
    use std::sync::atomic::Ordering;
    let site = Site::new();
    let server = site.server();
    let token = site.token(&server, "{}");
    let relay = freezer(format!("127.0.0.1:{}", site.connector_port));
    let mut args = site.connector_args("conn", Some(&token));
    args[2] = relay.addr.clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_connector, _) = Proc::start(&args, "following the engine");
    wait_connector_link(&server);

    relay.frozen.store(true, Ordering::SeqCst);
    let frozen_at = Instant::now();
    server.wait_for("/api/v1/clusters/omega", "the server noticing", |v| {
        v["link"]["state"] == "disconnected"
    });
    let noticed = frozen_at.elapsed();
    assert!(
        noticed < Duration::from_secs(25),
        "noticed after {noticed:?}"
    );
    relay.frozen.store(false, Ordering::SeqCst);
    let head = churn(&site.engine.addr, 5);
    server.wait_for("/api/v1/clusters/omega", "the connector back", |v| {
        v["link"]["state"] == "connected" && v["link"]["seq"].as_u64() >= Some(head)
    });
}

// --- Connector certificates (mutual TLS) ---

/// The first certificate in a PEM file.
fn pem_cert(path: &Path) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(path)
        .unwrap_or_else(|e| panic!("a certificate in {}: {e}", path.display()))
}

/// Checks `cert` as a client certificate against the CA in `ca` alone, as the server does.
fn verify_client_cert(
    ca: &Path,
    cert: &rustls::pki_types::CertificateDer<'_>,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pem_cert(ca)).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
        .build()
        .unwrap()
        .verify_client_cert(cert, &[], rustls::pki_types::UnixTime::now())
        .map(|_| ())
}

/// An engine for a second cluster, `name`, in its own directory under `site`.
fn other_engine(site: &Site, name: &str) -> Engine {
    let dir = site.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let main_cf = CLUSTER.replace("cluster omega", &format!("cluster {name}"));
    std::fs::write(dir.join("main.cf"), main_cf).unwrap();
    Engine::start(&dir, &["--simulate", "--sim-delay", "0"])
}

fn last_stored_seq(data: &Path, cluster: &str) -> Option<u64> {
    SqliteStore::open(&data.join("haven.db"))
        .unwrap()
        .seq_ranges(Some(cluster))
        .unwrap()
        .last()
        .map(|r| r.max_seq)
}

/// One session with the connector port, spoken by hand: a TLS handshake
/// presenting `cert` and `key` (PEM), `hello`, and the server's first answer.
fn raw_session(
    port: u16,
    ca: &Path,
    cert: &str,
    key: &str,
    hello: &haven_protocol::connector::ConnectorMsg,
) -> std::io::Result<haven_protocol::connector::ServerMsg> {
    use std::io::{Read, Write};
    let ca = std::fs::read_to_string(ca).unwrap();
    let config = haven_pki::client_config_for_ca_with_cert(&ca, cert, key).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(PATIENCE))?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls =
        rustls::StreamOwned::new(rustls::ClientConnection::new(config, name).unwrap(), tcp);
    let body = serde_json::to_vec(hello).unwrap();
    tls.write_all(&(body.len() as u32).to_be_bytes())?;
    tls.write_all(&body)?;
    tls.flush()?;
    let mut word = [0u8; 4];
    tls.read_exact(&mut word)?;
    let size = u32::from_be_bytes(word);
    assert!(size < 1 << 31, "a short answer is not compressed");
    let mut body = vec![0u8; size as usize];
    tls.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body).unwrap())
}

#[test]
fn a_joined_connector_holds_a_certificate_from_the_server_ca_for_its_cluster_and_presents_it() {
    let site = Site::new();
    let server = site.server();
    let token = site.token(&server, r#"{"cluster":"omega"}"#);
    let _connector = site.connector("conn", Some(&token));
    wait_connector_link(&server);

    let conn = site.dir.path().join("conn");
    let cert = pem_cert(&conn.join("connector.pem"));
    let ca = site.dir.path().join("data/pki/ca.pem");
    verify_client_cert(&ca, &cert).expect("signed by the server's CA, for client use");
    assert_eq!(haven_pki::client_cluster(&cert).as_deref(), Some("omega"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(conn.join("connector.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The session was admitted on the certificate, and history flows.
    assert!(
        server
            .proc
            .log()
            .contains("authenticated by its certificate"),
        "{}",
        server.proc.log()
    );
    let head = churn(&site.engine.addr, 3);
    wait_history(&site.dir.path().join("data"), "omega", head);
}

#[test]
fn a_connector_without_a_certificate_still_connects_on_its_secret() {
    let site = Site::new();
    let mut server = site.server();
    let token = site.token(&server, "{}");
    let mut connector = site.connector("conn", Some(&token));
    wait_connector_link(&server);
    connector.stop(PATIENCE);
    server.proc.stop(PATIENCE);

    // As a connector that joined before the server issued certificates.
    let conn = site.dir.path().join("conn");
    std::fs::remove_file(conn.join("connector.pem")).unwrap();
    std::fs::remove_file(conn.join("connector.key")).unwrap();
    server = site.server();
    let _connector = site.connector("conn", None);
    wait_connector_link(&server);
    let head = churn(&site.engine.addr, 3);
    wait_history(&site.dir.path().join("data"), "omega", head);
    let log = server.proc.log();
    assert!(log.contains("presented no certificate"), "{log}");
    assert!(log.contains("authenticated by its secret alone"), "{log}");
}

#[test]
fn a_connector_presenting_the_certificate_of_another_cluster_is_refused_and_nothing_is_recorded() {
    let site = Site::new();
    let server = site.server();
    let data = site.dir.path().join("data");
    // A second cluster, sigma, with its own connector and certificate.
    let sigma = other_engine(&site, "sigma");
    let mut args = site.connector_args("sigma-conn", Some(&site.token(&server, "{}")));
    args[4] = sigma.addr.clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_sigma_connector, _) = Proc::start(&args, "following the engine");
    // omega's connector joins, delivers, and stops.
    let mut omega = site.connector("conn", Some(&site.token(&server, "{}")));
    wait_connector_link(&server);
    let head = churn(&site.engine.addr, 3);
    wait_history(&data, "omega", head);
    omega.stop(PATIENCE);
    server.wait_for("/api/v1/clusters/omega", "omega's connector gone", |v| {
        v["link"]["state"] == "disconnected"
    });

    // omega's connector now holds sigma's certificate and key, with its own
    // (valid) id and secret, and the engine has news it would deliver.
    let (conn, sigma_conn) = (
        site.dir.path().join("conn"),
        site.dir.path().join("sigma-conn"),
    );
    for file in ["connector.pem", "connector.key"] {
        std::fs::copy(sigma_conn.join(file), conn.join(file)).unwrap();
    }
    let later = churn(&site.engine.addr, 3);
    assert!(later > head);
    let (mut impostor, refusal) = Proc::start(
        &site
            .connector_args("conn", None)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "certificate is for cluster sigma",
    );
    assert!(refusal.contains("claims cluster omega"), "{refusal}");
    let status = impostor.stop(PATIENCE);
    assert!(
        status.is_some_and(|s| s.code() == Some(1)),
        "a refused connector stops: {status:?}"
    );

    let log = server.proc.log();
    assert!(
        log.contains("refused connector") && log.contains("certificate is for cluster sigma"),
        "{log}"
    );
    let (_, detail) = server.get("/api/v1/clusters/omega");
    assert_eq!(detail["link"]["state"], "disconnected", "{detail}");
    assert_eq!(
        last_stored_seq(&data, "omega"),
        Some(head),
        "nothing of the impostor's is recorded"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let site = Site::new();
    let server = site.server();
    let token = site.token(&server, "{}");
    let mut connector = site.connector("conn", Some(&token));
    wait_connector_link(&server);
    connector.stop(PATIENCE);
    server.wait_for("/api/v1/clusters/omega", "the connector gone", |v| {
        v["link"]["state"] == "disconnected"
    });

    // The connector's own id and secret, with a certificate for omega from a CA of our own.
    let conn = site.dir.path().join("conn");
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(conn.join("connector.json")).unwrap())
            .unwrap();
    let hello = haven_protocol::connector::ConnectorMsg::Hello {
        versions: haven_protocol::connector::CONNECTOR_VERSIONS.to_vec(),
        connector_id: creds["connector_id"].as_str().unwrap().into(),
        secret: creds["secret"].as_str().unwrap().into(),
        cluster: "omega".into(),
        version: "test".into(),
    };
    let ca = site.dir.path().join("data/pki/ca.pem");
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = haven_pki::Authority::load_or_create(foreign_dir.path(), &[])
        .unwrap()
        .issue_client("omega")
        .unwrap();

    let err = raw_session(
        site.connector_port,
        &ca,
        &foreign.cert_pem,
        &foreign.key_pem,
        &hello,
    )
    .expect_err("no answer to a foreign certificate");
    // With TLS 1.3 the client hears of it after its side of the handshake:
    // as the server's alert, or as the connection it closed.
    use std::io::ErrorKind;
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidData
                | ErrorKind::BrokenPipe
                | ErrorKind::ConnectionReset
                | ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );
    let logged = wait_until("the server's log of the refusal", || {
        let log = server.proc.log();
        log.contains("refused a connector's certificate at the TLS handshake")
            .then_some(log)
    });
    assert!(logged.contains("BadSignature"), "{logged}");

    // The same hello with the connector's own certificate is welcome.
    let read = |file: &str| std::fs::read_to_string(conn.join(file)).unwrap();
    let answer = raw_session(
        site.connector_port,
        &ca,
        &read("connector.pem"),
        &read("connector.key"),
        &hello,
    )
    .unwrap();
    assert!(
        matches!(answer, haven_protocol::connector::ServerMsg::Welcome { .. }),
        "{answer:?}"
    );
}
