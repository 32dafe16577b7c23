//! Benchmark: the same backlog of events reaching the server's history
//! through a connector and through a direct connection, in one run.
//!
//! Two simulated clusters of the same shape (4 x 20 x 10): one linked
//! directly, one through `haven connector`. Each link passes through a
//! byte-counting TCP relay. With the server stopped, both clusters produce
//! the same number of events (the engine's journal holds the direct one's,
//! the connector's spool the other's); then the server starts and the bench
//! times how fast each backlog lands in history, and counts the bytes each
//! link carried per event.
//!
//! `cargo bench -p haven --bench connector`; HAVEN_BENCH_SWITCHES (default
//! 1500 per cluster) sets the backlog.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use haven_store::{SqliteStore, Store};
use support::*;

/// A TCP relay that counts the bytes flowing from the upstream side back
/// (`down`) and towards it (`up`).
struct Counter {
    addr: String,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

fn counter(upstream: String) -> Counter {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let (u, d) = (up.clone(), down.clone());
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to, count) in [
                (
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    u.clone(),
                ),
                (server, client, d.clone()),
            ] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        count.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    Counter { addr, up, down }
}

fn stored_max(data: &Path, cluster: &str) -> u64 {
    SqliteStore::open(&data.join("haven.db"))
        .ok()
        .and_then(|s| s.seq_ranges(Some(cluster)).ok())
        .and_then(|r| r.last().map(|r| r.max_seq))
        .unwrap_or(0)
}

fn main() {
    let switches: usize = std::env::var("HAVEN_BENCH_SWITCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let dir = tempfile::tempdir().unwrap();
    let (_sim, addrs) = sim_fleet(
        dir.path(),
        "cluster",
        2,
        &["--fault-rate", "0", "--journal", "2000000"],
    );
    let (direct_name, direct_engine) = addrs[0].clone();
    let (conn_name, conn_engine) = addrs[1].clone();

    let connector_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let direct_wire = counter(direct_engine.clone());
    let conn_wire = counter(format!("127.0.0.1:{connector_port}"));
    let toml = format!(
        "[connectors]\nlisten = \"127.0.0.1:{connector_port}\"\n[[cluster]]\nname = \"{direct_name}\"\naddress = \"{}\"\n",
        direct_wire.addr
    );
    let mut server = ServerProc::start(dir.path(), &toml);
    let (_, issued) = server.post("/api/v1/tokens", "{}", &[]);
    let token = issued["token"].as_str().unwrap().to_string();
    let data_dir = dir.path().join("conn");
    let (_connector, _) = Proc::start(
        &[
            "connector",
            "--server",
            &conn_wire.addr,
            "--engine",
            &conn_engine,
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--token",
            &token,
        ],
        "following the engine",
    );
    for c in [&direct_name, &conn_name] {
        server.wait_for(&format!("/api/v1/clusters/{c}"), "connected", |v| {
            v["link"]["state"] == "connected"
        });
    }

    // The server goes away; both clusters build the same backlog.
    server.proc.stop(PATIENCE);
    let direct_head = churn(&direct_engine, switches);
    let conn_head = churn(&conn_engine, switches);
    let data = dir.path().join("data");
    let direct_from = stored_max(&data, &direct_name);
    let conn_from = stored_max(&data, &conn_name);
    std::thread::sleep(Duration::from_secs(1));
    for c in [&direct_wire, &conn_wire] {
        c.up.store(0, Ordering::SeqCst);
        c.down.store(0, Ordering::SeqCst);
    }

    let began = Instant::now();
    let _server = ServerProc::start(dir.path(), "");
    let (mut direct_done, mut conn_done) = (None, None);
    let deadline = began + Duration::from_secs(300);
    let mut next_report = began + Duration::from_secs(10);
    while (direct_done.is_none() || conn_done.is_none()) && Instant::now() < deadline {
        if Instant::now() > next_report {
            next_report += Duration::from_secs(10);
            eprintln!(
                "  ... stored {}/{} direct, {}/{} connector",
                stored_max(&data, &direct_name),
                direct_head,
                stored_max(&data, &conn_name),
                conn_head
            );
        }
        if direct_done.is_none() && stored_max(&data, &direct_name) >= direct_head {
            direct_done = Some(began.elapsed());
        }
        if conn_done.is_none() && stored_max(&data, &conn_name) >= conn_head {
            conn_done = Some(began.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = |what: &str, events: u64, took: Option<Duration>, bytes: u64| {
        let took = took.expect("backlog stored in time");
        println!(
            "  {what:<10} {events} events in {took:.2?}: {:.0} events/s into history, {:.1} bytes on the wire per event",
            events as f64 / took.as_secs_f64(),
            bytes as f64 / events as f64
        );
    };
    println!("haven connector benchmark: the same backlog, two links, one run (loopback)");
    report(
        "direct",
        direct_head - direct_from,
        direct_done,
        direct_wire.down.load(Ordering::SeqCst) + direct_wire.up.load(Ordering::SeqCst),
    );
    report(
        "connector",
        conn_head - conn_from,
        conn_done,
        conn_wire.up.load(Ordering::SeqCst) + conn_wire.down.load(Ordering::SeqCst),
    );
    println!("  (both backlogs drain at once and share the 2 cores; times include reconnect and snapshot)");
}
