//! Benchmark of the management server against a `haven sim` fleet on
//! loopback, printing figures (not a timed test):
//!
//! - time for a cold server to sync 1,000 and 5,000 clusters (4 x 20 x 10),
//! - sustained events/s ingested with history persisted, beside the same
//!   kind of rows inserted raw into SQLite in batches (the ratio is the
//!   figure we track),
//! - server resident memory,
//! - p50/p99 latency of the fleet-summary API under that load.
//!
//! `cargo bench -p haven --bench server`. HAVEN_BENCH_SIZES (default
//! "1000,5000") and HAVEN_BENCH_SECONDS (default 10) change the run.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use haven_model::{name, Event, EventKind, ResourceState};
use haven_store::{HistoryRow, SqliteStore, Store};
use support::*;

fn rss_mib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Starts `haven sim`; returns it and the `[[cluster]]` tables for it.
fn sim(dir: &std::path::Path, clusters: usize, fault_rate: f64, prefix: &str) -> (Proc, String) {
    let rate = fault_rate.to_string();
    let (proc, entries) = sim_fleet(dir, prefix, clusters, &["--fault-rate", &rate]);
    let toml = entries
        .iter()
        .map(|(name, addr)| format!("[[cluster]]\nname = \"{name}\"\naddress = \"{addr}\"\n"))
        .collect();
    (proc, toml)
}

fn connected(server: &ServerProc) -> u64 {
    let (_, s) = server.get("/api/v1/summary?limit=1");
    s["links"]["connected"].as_u64().unwrap_or(0)
}

fn metric(server: &ServerProc, name: &str) -> u64 {
    let (_, text) = http(&server.addr, "GET", "/metrics", None, &[]);
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn cold_sync(clusters: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, toml) = sim(dir.path(), clusters, 0.0, "sync");
    let began = Instant::now();
    let server = ServerProc::start(dir.path(), &toml);
    let deadline = began + Duration::from_secs(600);
    while connected(&server) < clusters as u64 {
        assert!(Instant::now() < deadline, "server did not sync in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = began.elapsed();
    println!(
        "  cold sync of {clusters} clusters: {took:.2?} ({:.0} clusters/s); server RSS {:.0} MiB",
        clusters as f64 / took.as_secs_f64(),
        rss_mib(server.proc.pid())
    );
}

/// The same kind of rows the server writes, straight into the store: each
/// batch of 1000 holds runs of 50 consecutive events from 20 of 1000
/// clusters, as events arrive from links in bursts.
fn raw_sqlite(rows: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("raw.db")).unwrap();
    let (group, res, sys) = (name("web01"), name("web01_ip1"), name("n1"));
    let mut seqs = vec![0u64; 1000];
    let began = Instant::now();
    let mut written = 0;
    let mut next_cluster = 0;
    while written < rows {
        let mut batch = Vec::with_capacity(1000);
        for _ in 0..20 {
            let c = next_cluster % 1000;
            next_cluster += 1;
            for _ in 0..50 {
                seqs[c] += 1;
                batch.push(HistoryRow {
                    cluster: format!("load-{:04}", c + 1),
                    epoch: 1,
                    event: Event {
                        seq: seqs[c],
                        time_ms: 1_700_000_000_000 + seqs[c] as i64,
                        kind: EventKind::ResourceState {
                            group: group.clone(),
                            resource: res.clone(),
                            system: sys.clone(),
                            from: ResourceState::Online,
                            to: ResourceState::Faulted,
                        },
                    },
                });
            }
        }
        written += batch.len();
        store.append(&batch).unwrap();
    }
    written as f64 / began.elapsed().as_secs_f64()
}

fn ingest(clusters: usize, seconds: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    // One fault per cluster per second, each with its failover and repair.
    let (_sim, toml) = sim(dir.path(), clusters, 3600.0, "load");
    let server = ServerProc::start(dir.path(), &toml);
    let deadline = Instant::now() + Duration::from_secs(600);
    while connected(&server) < clusters as u64 {
        assert!(Instant::now() < deadline, "server did not sync in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rows0 = metric(&server, "haven_history_rows_written_total");
    let began = Instant::now();
    let mut latencies = Vec::new();
    // Bounded by time and count.
    while began.elapsed() < Duration::from_secs(seconds) && latencies.len() < 100_000 {
        let t = Instant::now();
        let (status, _) = http(&server.addr, "GET", "/api/v1/summary", None, &[]);
        assert_eq!(status, 200);
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = began.elapsed();
    let rows = metric(&server, "haven_history_rows_written_total") - rows0;
    let depth = metric(&server, "haven_history_queue_depth");
    let received = metric(&server, "haven_events_received_total");
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let rate = rows as f64 / elapsed.as_secs_f64();
    println!(
        "  sustained ingest, {clusters} clusters faulting once a second each: {rate:.0} events/s written to history ({received} received in all, queue depth {depth} at the end)"
    );
    println!(
        "  fleet summary API under that load: p50 {:.2?}, p99 {:.2?} ({} requests); server RSS {:.0} MiB",
        pct(0.5),
        pct(0.99),
        latencies.len(),
        rss_mib(server.proc.pid())
    );
    rate
}

fn main() {
    let sizes: Vec<usize> = std::env::var("HAVEN_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("HAVEN_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    println!("haven server benchmark (loopback, this machine; one run)");
    let raw = raw_sqlite(200_000);
    println!("  raw SQLite, batches of 1000 (same store, no server): {raw:.0} rows/s");
    for &n in &sizes {
        cold_sync(n);
    }
    let ingest_rate = ingest(sizes.first().copied().unwrap_or(1000), seconds);
    println!(
        "  ratio server ingest / raw SQLite: {:.2} (the load generator, not the server, may be the limit; see the queue depth)",
        ingest_rate / raw
    );
}
