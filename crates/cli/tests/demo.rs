//! The README's first command: `haven demo` brings up a server, its
//! database and twelve simulated clusters (four through connectors), and
//! says where to look.

mod support;

use support::*;

#[test]
fn the_demo_connects_its_whole_fleet_and_says_where_to_look() {
    let dir = tempfile::tempdir().unwrap();
    // Below the kernel's ephemeral range, so no connection of another
    // test takes one of the demo's 30 engine ports.
    let base = 20_000 + (std::process::id() % 300) as u16 * 30;
    let data = dir.path().join("demo");
    let (demo, _) = Proc::start(
        &[
            "demo",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--connector-listen",
            "127.0.0.1:0",
            "--sql-listen",
            "127.0.0.1:0",
            "--peer-listen",
            "127.0.0.1:0",
            "--engine-ports",
            &base.to_string(),
        ],
        "haven server listening",
    );
    // The API address is in the log line of the embedded server.
    let log = demo.log();
    let line = log
        .lines()
        .find(|l| l.contains("haven server listening on"))
        .expect("the API address in the log");
    let addr = server_address(line, &data);
    // Logins are on: without a session the API says so.
    let (status, body) = http_json(&addr, "GET", "/api/v1/summary", None, &[]);
    assert_eq!(status, 401, "{body}");
    // The printed one-time link logs the demo's user in, once.
    let printed = wait_until("the login link", || {
        let out = demo.printed();
        out.contains("Ctrl-C stops the demo").then_some(out)
    });
    assert!(
        printed.contains("login --socket") && printed.contains("psql 'host=127.0.0.1"),
        "the console, the CLI and SQL are all explained:\n{printed}"
    );
    let link = printed
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("https://{addr}")))
        .filter(|p| p.starts_with("/login?code="))
        .expect("a login link in the demo's instructions")
        .to_string();
    let reply = request(&addr, "GET", &link, None, &[]);
    assert_eq!(reply.status, 303, "{reply:?}");
    let cookie = reply
        .header("set-cookie")
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(reply.header("set-cookie").unwrap().contains("Secure"));
    let again = request(&addr, "GET", &link, None, &[]);
    assert_eq!(again.status, 401, "a login link works once: {again:?}");
    let session = [("cookie", cookie.as_str())];
    let server = ServerProc {
        proc: demo,
        addr,
        dir: dir.path().to_path_buf(),
    };
    let summary = server.wait_for_with("/api/v1/summary", &session, "12 connected clusters", |v| {
        v["clusters"] == 12 && v["links"]["connected"] == 12
    });
    assert!(summary["resources"].as_u64().unwrap() > 1000, "{summary}");
    let (_, me) = http_json(&server.addr, "GET", "/api/v1/whoami", None, &session);
    assert_eq!(me["server_admin"], true, "{me}");
    assert_eq!(me["fleet_role"], "Cluster Administrator", "{me}");
    // The local socket needs no password.
    let local = std::os::unix::net::UnixStream::connect(data.join("haven.sock")).unwrap();
    let reply = exchange(local, "haven", "GET", "/api/v1/clusters", None, &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    let clusters: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(clusters.as_array().unwrap().len(), 12);
    let (_, clusters) = http_json(&server.addr, "GET", "/api/v1/clusters", None, &session);
    let connectors = clusters
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["link"]["mode"] == "connector")
        .count();
    assert_eq!(
        connectors, 4,
        "the edge clusters come in through connectors"
    );
    assert!(data.join("haven.db").exists());
}
