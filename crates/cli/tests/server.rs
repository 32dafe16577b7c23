//! End-to-end: a real `haven server` process managing real engine
//! processes over direct connections, driven through its REST API.
//!
//! `server_pg.rs` runs these same tests with the servers on PostgreSQL,
//! so what they read from the database goes through [`server_store`].

// Visible to server_pg.rs, which includes this file as a module.
pub(crate) mod support;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Starts a simulated engine for `cluster` in `dir/cluster`.
fn engine(dir: &Path, cluster: &str, extra: &[&str]) -> Engine {
    let cdir = dir.join(cluster);
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("main.cf"), two_group_cluster(cluster)).unwrap();
    let mut args = vec!["--simulate", "--sim-delay", "0", "--journal", "100000"];
    args.extend_from_slice(extra);
    Engine::start(&cdir, &args)
}

fn cluster_toml(name: &str, addr: &str) -> String {
    format!("[[cluster]]\nname = \"{name}\"\naddress = \"{addr}\"\n")
}

fn link_state(server: &ServerProc, cluster: &str) -> String {
    let (_, detail) = server.get(&format!("/api/v1/clusters/{cluster}"));
    detail["link"]["state"].as_str().unwrap_or("").to_string()
}

fn wait_connected(server: &ServerProc, cluster: &str) {
    server.wait_for(
        &format!("/api/v1/clusters/{cluster}"),
        "link connected",
        |v| v["link"]["state"] == "connected" && v["snapshot"].is_object(),
    );
}

fn op(server: &ServerProc, cluster: &str, body: &str, user: &str) -> (u16, Value) {
    server.post(
        &format!("/api/v1/clusters/{cluster}/operations"),
        body,
        &[("X-Haven-User", user)],
    )
}

#[test]
fn a_fault_in_an_engine_shows_in_the_api_the_event_stream_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), "alpha", &[]);
    let server = ServerProc::start(dir.path(), &cluster_toml("alpha", &eng.addr));
    wait_connected(&server, "alpha");
    let events = sse(
        &server.addr,
        "/api/v1/events?cluster=alpha&object=web_httpd",
    );

    let (status, body) = op(
        &server,
        "alpha",
        r#"{"op":"sim_fault_resource","resource":"web_httpd","system":"n1"}"#,
        "tester",
    );
    assert_eq!(status, 200, "{body}");

    // The API: the fault is in /faults and the summary.
    server.wait_for("/api/v1/faults", "faulted resource", |v| {
        v["items"].as_array().is_some_and(|items| {
            items.iter().any(|i| {
                i["kind"] == "faulted_resource" && i["object"] == "web_httpd" && i["system"] == "n1"
            })
        })
    });
    let (_, summary) = server.get("/api/v1/summary");
    assert!(
        summary["resource_states"]["FAULTED"].as_u64() >= Some(1),
        "{summary}"
    );

    // The event stream: the FAULTED change, filtered to the object.
    let deadline = Instant::now() + PATIENCE;
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        if let Ok((kind, data)) = events.recv_timeout(Duration::from_secs(1)) {
            if kind == "events" {
                let v: Value = serde_json::from_str(&data).unwrap();
                seen = v["events"].as_array().unwrap().iter().any(|e| {
                    e["type"] == "resource_state"
                        && e["resource"] == "web_httpd"
                        && e["to"] == "FAULTED"
                });
            }
        }
    }
    assert!(seen, "the event stream showed the fault");

    // History: the change is recorded, with the failover that followed.
    server.wait_for(
        "/api/v1/history?cluster=alpha&object=web_httpd&limit=100",
        "history row",
        |v| {
            v.as_array().is_some_and(|rows| {
                rows.iter().any(|r| {
                    r["resource"] == "web_httpd" && r["system"] == "n1" && r["to"] == "FAULTED"
                })
            })
        },
    );
    server.wait_for(
        "/api/v1/history?cluster=alpha&object=web&limit=100",
        "failover row",
        |v| {
            v.as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["type"] == "failover" && r["to"] == "n2")
            })
        },
    );
}

#[test]
fn an_operation_through_the_api_switches_a_group_and_is_audited_with_its_requester() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), "beta", &[]);
    let server = ServerProc::start(dir.path(), &cluster_toml("beta", &eng.addr));
    wait_connected(&server, "beta");

    let (status, result) = op(
        &server,
        "beta",
        r#"{"op":"group_switch","group":"web","to":"n2","wait":true,"timeout_secs":30}"#,
        "alice",
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["outcome"], "completed");
    let (_, detail) = server.get("/api/v1/clusters/beta");
    let states = &detail["snapshot"]["groups"][0]["states"];
    assert!(
        states.to_string().contains("[\"n2\",\"ONLINE\"]"),
        "web online on n2: {states}"
    );

    // A refusal is recorded too, with the engine's reason.
    let (status, refused) = op(
        &server,
        "beta",
        r#"{"op":"group_switch","group":"web","to":"n9"}"#,
        "bob",
    );
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["outcome"], "refused");
    assert!(refused["reason"].as_str().unwrap().contains("n9"));

    let audit = server.wait_for("/api/v1/operations?cluster=beta", "audit rows", |v| {
        v.as_array()
            .is_some_and(|rows| rows.len() == 2 && rows.iter().all(|r| r["finished_ms"].is_i64()))
    });
    let rows = audit.as_array().unwrap();
    assert_eq!(rows[1]["user"], "alice");
    assert_eq!(rows[1]["outcome"], "completed");
    assert_eq!(rows[1]["op"]["op"], "group_switch");
    assert_eq!(rows[0]["user"], "bob");
    assert_eq!(rows[0]["outcome"], "refused");
    let (_, alice_only) = server.get("/api/v1/operations?user=alice");
    assert_eq!(alice_only.as_array().unwrap().len(), 1);
}

/// Checks the history of `cluster` in the database of the server in
/// `dir`: one engine run, every sequence from the first recorded to `head`
/// exactly once, no gap.
fn assert_history_complete(dir: &Path, cluster: &str, head: u64) {
    let store = server_store(dir);
    let ranges = store.seq_ranges(Some(cluster)).unwrap();
    assert_eq!(ranges.len(), 1, "one engine run: {ranges:?}");
    let r = &ranges[0];
    assert_eq!(r.max_seq, head, "everything up to the engine's head: {r:?}");
    assert_eq!(
        r.count,
        r.max_seq - r.min_seq + 1,
        "no hole, no double: {r:?}"
    );
    assert!(store.gaps(Some(cluster)).unwrap().is_empty());
}

#[test]
fn killing_the_server_mid_stream_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), "gamma", &[]);
    let toml = cluster_toml("gamma", &eng.addr);
    let mut server = ServerProc::start(dir.path(), &toml);
    wait_connected(&server, "gamma");

    // Events flow while the server is killed and while it is down.
    let addr = eng.addr.clone();
    let churner = std::thread::spawn(move || churn(&addr, 120));
    std::thread::sleep(Duration::from_millis(300));
    signal(server.proc.pid(), libc::SIGKILL);
    let _ = server.proc.child.wait();
    let head = churner.join().unwrap();

    let server = ServerProc::start(dir.path(), "");
    server.wait_for("/api/v1/clusters/gamma", "caught up", |v| {
        v["link"]["state"] == "connected" && v["link"]["seq"].as_u64() == Some(head)
    });
    // Let the writer flush, then check the rows against the engine.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let done = server_store(dir.path())
            .seq_ranges(Some("gamma"))
            .unwrap()
            .first()
            .is_some_and(|r| r.max_seq == head);
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_history_complete(dir.path(), "gamma", head);
    drop(server);
}

/// A TCP proxy whose connections the test can cut.
struct Proxy {
    addr: String,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let upstream = upstream.to_string();
        let (c2, k2) = (conns.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if k2.load(Ordering::SeqCst) {
                    continue; // drop it: the link stays down while cut
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                c2.lock().unwrap().push(client.try_clone().unwrap());
                c2.lock().unwrap().push(server.try_clone().unwrap());
                relay_both(client, server);
            }
        });
        Proxy { addr, cut, conns }
    }

    /// Closes every connection and refuses new ones until `restore`.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_link_reconnects_and_resumes_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), "delta", &[]);
    let proxy = Proxy::start(&eng.addr);
    let server = ServerProc::start(dir.path(), &cluster_toml("delta", &proxy.addr));
    wait_connected(&server, "delta");

    proxy.cut();
    server.wait_for("/api/v1/clusters/delta", "link down", |v| {
        v["link"]["state"] == "disconnected" || v["link"]["state"] == "connecting"
    });
    // An operation on a disconnected cluster is refused with the reason.
    let (status, refused) = op(
        &server,
        "delta",
        r#"{"op":"group_freeze","group":"web"}"#,
        "carol",
    );
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("delta is"),
        "{refused}"
    );
    let (_, faults) = server.get("/api/v1/faults");
    assert!(
        faults.to_string().contains("disconnected_cluster"),
        "{faults}"
    );

    // Events happen while the link is down.
    let head = churn(&eng.addr, 20);
    proxy.restore();
    server.wait_for("/api/v1/clusters/delta", "resumed", |v| {
        v["link"]["state"] == "connected" && v["link"]["seq"].as_u64() == Some(head)
    });
    let (_, gaps) = server.get("/api/v1/gaps?cluster=delta");
    assert_eq!(
        gaps,
        serde_json::json!([]),
        "resumed from the journal, no gap"
    );
    let deadline = Instant::now() + PATIENCE;
    while server_store(dir.path())
        .seq_ranges(Some("delta"))
        .unwrap()
        .first()
        .map(|r| r.max_seq)
        != Some(head)
    {
        assert!(Instant::now() < deadline, "history caught up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_history_complete(dir.path(), "delta", head);
}

#[test]
fn an_engine_restart_reconnects_and_records_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut eng = engine(dir.path(), "eps", &[]);
    let addr = eng.addr.clone();
    let server = ServerProc::start(dir.path(), &cluster_toml("eps", &addr));
    wait_connected(&server, "eps");
    eng.proc.stop(PATIENCE);
    server.wait_for("/api/v1/clusters/eps", "link down", |v| {
        v["link"]["state"] == "disconnected"
    });
    // Restart on the same port.
    let cdir = dir.path().join("eps");
    let (_again, _) = Proc::start(
        &[
            "engine",
            "--config",
            cdir.to_str().unwrap(),
            "--listen",
            &addr,
            "--simulate",
            "--sim-delay",
            "0",
        ],
        "listening on",
    );
    server.wait_for("/api/v1/clusters/eps", "reconnected", |v| {
        v["link"]["state"] == "connected"
    });
    server.wait_for("/api/v1/gaps?cluster=eps", "gap recorded", |v| {
        v.as_array()
            .is_some_and(|g| g.len() == 1 && g[0]["reason"].as_str().unwrap().contains("restarted"))
    });
    assert_eq!(link_state(&server, "eps"), "connected");
}

#[test]
fn bad_api_input_gets_a_json_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), "zeta", &[]);
    let server = ServerProc::start(dir.path(), &cluster_toml("zeta", &eng.addr));
    wait_connected(&server, "zeta");
    let duplicate = format!(r#"{{"name":"zeta","address":"{}"}}"#, eng.addr);
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/clusters/zeta/operations",
            Some("{not json"),
            400,
            "bad_json",
        ),
        (
            "POST",
            "/api/v1/clusters/zeta/operations",
            Some(r#"{"op":"format_disk"}"#),
            400,
            "bad_json",
        ),
        (
            "POST",
            "/api/v1/clusters/zeta/operations",
            Some(r#"{"op":"group_online"}"#),
            400,
            "bad_json",
        ),
        (
            "POST",
            "/api/v1/clusters/nosuch/operations",
            Some(r#"{"op":"group_online","group":"web"}"#),
            404,
            "unknown_cluster",
        ),
        (
            "GET",
            "/api/v1/clusters/nosuch",
            None,
            404,
            "unknown_cluster",
        ),
        (
            "GET",
            "/api/v1/history?limit=many",
            None,
            400,
            "bad_request",
        ),
        ("GET", "/api/v1/search?q=", None, 400, "bad_request"),
        ("GET", "/api/v1/nothing-here", None, 404, "not_found"),
        ("DELETE", "/api/v1/summary", None, 405, "method_not_allowed"),
        (
            "POST",
            "/api/v1/clusters",
            Some(r#"{"name":"x","address":"no-port"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/clusters",
            Some(r#"{"name":"bad name!","address":"127.0.0.1:1"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/clusters",
            Some(&duplicate),
            409,
            "conflict",
        ),
        (
            "DELETE",
            "/api/v1/clusters/nosuch",
            None,
            404,
            "unknown_cluster",
        ),
    ];
    for (method, path, body, status, code) in &cases {
        let (got, value) = http_json(&server.addr, method, path, *body, &[]);
        assert_eq!(got, *status, "{method} {path}: {value}");
        assert_eq!(value["error"]["code"], *code, "{method} {path}: {value}");
        assert!(value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Nothing was audited and the cluster list is unchanged.
    let (_, audit) = server.get("/api/v1/operations");
    assert_eq!(audit, serde_json::json!([]));
    let (_, clusters) = server.get("/api/v1/clusters");
    assert_eq!(clusters.as_array().unwrap().len(), 1);
}

#[test]
fn clusters_added_through_the_api_are_persisted_and_removed_ones_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), "eta", &[]);
    let mut server = ServerProc::start(dir.path(), "");
    let (status, link) = server.post(
        "/api/v1/clusters",
        &format!(r#"{{"name":"eta","address":"{}"}}"#, eng.addr),
        &[],
    );
    assert_eq!(status, 201, "{link}");
    wait_connected(&server, "eta");
    server.proc.stop(PATIENCE);
    let server2 = ServerProc::start(dir.path(), "");
    wait_connected(&server2, "eta");
    let (status, _) = http(&server2.addr, "DELETE", "/api/v1/clusters/eta", None, &[]);
    assert_eq!(status, 204);
    let (_, clusters) = server2.get("/api/v1/clusters");
    assert_eq!(clusters, serde_json::json!([]));
    drop(server2);
    let server3 = ServerProc::start(dir.path(), "");
    let (_, clusters) = server3.get("/api/v1/clusters");
    assert_eq!(clusters, serde_json::json!([]), "removal persisted");
    server = server3;
    drop(server);
}

#[test]
fn the_openapi_document_lists_every_endpoint_and_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path(), "");
    let (status, doc) = server.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/summary",
        "/api/v1/clusters/{name}/operations",
        "/api/v1/history",
        "/api/v1/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let op_schema = doc["components"]["schemas"]["Operation"].to_string();
    assert!(
        op_schema.contains("group_switch"),
        "operations documented from the model types"
    );
    let (status, text) = http(&server.addr, "GET", "/metrics", None, &[]);
    assert_eq!(status, 200);
    assert!(
        text.contains("haven_history_batch_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("haven_links{state=\"connected\"}"), "{text}");
}

#[test]
fn print_default_config_writes_a_file_the_server_accepts() {
    let out = std::process::Command::new(HAVEN)
        .args(["server", "--print-default-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"0.0.0.0:8440\""));
    let dir = tempfile::tempdir().unwrap();
    // Plain HTTP, or logins off, only on loopback.
    for (name, extra, says) in [
        (
            "plain.toml",
            "insecure_plain_http = true\n",
            "plain HTTP (insecure_plain_http)",
        ),
        (
            "open.toml",
            "[auth]\nenabled = false\n",
            "logins off ([auth] enabled = false)",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"0.0.0.0:0\"\n{extra}[connectors]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(HAVEN)
            .args(["server", "--config", path.to_str().unwrap()])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && err.contains("loopback address only"),
            "{err}"
        );
    }
    // The defaults (HTTPS, logins on) are safe on every interface.
    let all = tempfile::tempdir().unwrap();
    std::fs::write(
        all.path().join("haven.toml"),
        format!(
            "[server]\nlisten = \"0.0.0.0:0\"\ndata_dir = \"{}\"\n[connectors]\nlisten = \"127.0.0.1:0\"\n",
            all.path().join("data").display()
        ),
    )
    .unwrap();
    let server = ServerProc::start(all.path(), "");
    let port = server.addr.rsplit_once(':').unwrap().1.to_string();
    let local = format!("127.0.0.1:{port}");
    trust(&local, &all.path().join("data/pki/ca.pem"));
    let (status, body) = http_json(&local, "GET", "/api/v1/health", None, &[]);
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("ok")));
    let (status, body) = http_json(&local, "GET", "/api/v1/summary", None, &[]);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    // Plain HTTP to the HTTPS port gets nothing.
    let plain = format!("localhost:{port}");
    let mut stream = std::net::TcpStream::connect(&plain).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    use std::io::{Read, Write};
    let _ = stream.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("\"ok\""),
        "plain HTTP must not reach the API"
    );
    drop(server);
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = 5\n").unwrap();
    let out = std::process::Command::new(HAVEN)
        .args(["server", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("listen"), "{err}");
}

#[test]
fn a_server_stopped_before_any_event_still_records_what_happened_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path(), "theta", &[]);
    let toml = cluster_toml("theta", &eng.addr);
    let mut server = ServerProc::start(dir.path(), &toml);
    wait_connected(&server, "theta");
    let (_, detail) = server.get("/api/v1/clusters/theta");
    let first = detail["snapshot"]["seq"].as_u64().unwrap();
    server.proc.stop(PATIENCE);
    let head = churn(&eng.addr, 20);
    let server = ServerProc::start(dir.path(), "");
    server.wait_for("/api/v1/clusters/theta", "caught up", |v| {
        v["link"]["state"] == "connected" && v["link"]["seq"].as_u64() == Some(head)
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ranges = server_store(dir.path()).seq_ranges(Some("theta")).unwrap();
        if let Some(r) = ranges.first() {
            if r.max_seq == head {
                assert_eq!(
                    r.min_seq,
                    first + 1,
                    "history begins right after the first sync"
                );
                assert_eq!(r.count, head - first);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "history did not catch up: {ranges:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
