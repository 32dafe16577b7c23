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
            "--engine-ports",
            &base.to_string(),
        ],
        "haven server listening",
    );
    // The API address is in the log line of the embedded server.
    let log = demo.log();
    let addr = log
        .lines()
        .find_map(|l| l.split("listening on http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the API address in the log")
        .to_string();
    let server = ServerProc {
        proc: demo,
        addr,
        dir: dir.path().to_path_buf(),
    };
    let summary = server.wait_for("/api/v1/summary", "12 connected clusters", |v| {
        v["clusters"] == 12 && v["links"]["connected"] == 12
    });
    assert!(summary["resources"].as_u64().unwrap() > 1000, "{summary}");
    let (_, clusters) = server.get("/api/v1/clusters");
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
