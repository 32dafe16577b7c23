//! Benchmark: how long a clustered server's takeover takes, from `kill -9`
//! of the active server to every cluster connected and current at the
//! standby, for 100 and 1,000 clusters.
//!
//! Two `haven server` processes of one group on a throw-away PostgreSQL
//! (`crates/store/tests/common/pg.rs`), lease 2 s, and one `haven sim`
//! whose clusters (4 systems x 10 groups x 5 resources, no faults) are all
//! on direct links. The standby is "current" when every cluster's link
//! shows the engine's own last sequence number.
//!
//! `cargo bench -p haven --bench takeover`; HAVEN_BENCH_TAKEOVER (default
//! `100,1000`) sets the fleet sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::*;

/// Polls `f` every 20 ms until it gives a value, for at most `limit`.
fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET's answer, when something answers there with 200.
fn try_get(addr: &str, path: &str) -> Option<serde_json::Value> {
    get_when_up(addr, path)
        .filter(|(status, _)| *status == 200)
        .map(|(_, v)| v)
}

/// Each cluster's link sequence at the server, when all are connected.
fn connected_seqs(addr: &str, clusters: usize) -> Option<HashMap<String, u64>> {
    let list = try_get(addr, "/api/v1/clusters")?;
    let list = list.as_array()?;
    let seqs: HashMap<String, u64> = list
        .iter()
        .filter(|c| c["link"]["state"] == "connected")
        .filter_map(|c| Some((c["name"].as_str()?.to_string(), c["link"]["seq"].as_u64()?)))
        .collect();
    (seqs.len() == clusters).then_some(seqs)
}

fn engine_seqs(fleet: &[(String, String)]) -> HashMap<String, u64> {
    fleet
        .iter()
        .map(|(name, addr)| (name.clone(), engine_snapshot(addr).1.seq))
        .collect()
}

fn takeover(clusters: usize) {
    let Some(db) = pg::database() else {
        println!("takeover: PostgreSQL is not installed here; nothing measured");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("fleet.txt");
    let count = clusters.to_string();
    let (_sim, _) = Proc::start(
        &[
            "sim",
            "--clusters",
            &count,
            "--systems",
            "4",
            "--groups",
            "10",
            "--resources",
            "5",
            "--delay",
            "0",
            "--fault-rate",
            "0",
            "--prefix",
            "t",
            "--list",
            list.to_str().unwrap(),
        ],
        "clusters ready",
    );
    let fleet: Vec<(String, String)> = std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect();
    let quiet = "[alerts]\nenabled = false\n";
    let config_a = write_group_config(dir.path(), "a", &db.url, &fleet, quiet);
    let config_b = write_group_config(dir.path(), "b", &db.url, &fleet, quiet);
    let (mut a, addr_a) = start_group_server(&config_a, "as the active server");
    let (_b, addr_b) = start_group_server(&config_b, "as a standby");
    poll(
        "a connected to every cluster",
        Duration::from_secs(300),
        || connected_seqs(&addr_a, clusters),
    );
    let engines = engine_seqs(&fleet);
    poll("a current", Duration::from_secs(120), || {
        (connected_seqs(&addr_a, clusters)? == engines).then_some(())
    });
    poll("b standing by", Duration::from_secs(30), || {
        let view = try_get(&addr_b, "/api/v1/servers")?;
        (view["active"] == "a").then_some(())
    });

    let killed = Instant::now();
    signal(a.pid(), libc::SIGKILL);
    let _ = a.child.wait();
    poll("b active", Duration::from_secs(60), || {
        (try_get(&addr_b, "/api/v1/health")?["role"] == "active").then_some(())
    });
    let active = killed.elapsed();
    poll(
        "b connected to every cluster",
        Duration::from_secs(300),
        || connected_seqs(&addr_b, clusters),
    );
    let connected = killed.elapsed();
    poll("b current", Duration::from_secs(120), || {
        (connected_seqs(&addr_b, clusters)? == engines).then_some(())
    });
    let current = killed.elapsed();
    println!(
        "takeover, {clusters:>5} clusters: active after {:>6} ms, all connected after {:>6} ms, all current after {:>6} ms",
        active.as_millis(),
        connected.as_millis(),
        current.as_millis()
    );
}

fn main() {
    let sizes = std::env::var("HAVEN_BENCH_TAKEOVER").unwrap_or_else(|_| "100,1000".into());
    for size in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        takeover(size);
    }
}
