//! Benchmark of the simulator fleet and the engine socket, printing figures
//! rather than timing tests:
//!
//! - start time of `haven sim` (all clusters listening, probed, autostarted),
//! - its resident memory,
//! - events per second one engine streams to a subscriber while another
//!   client switches its groups back and forth.
//!
//! `cargo bench -p haven --bench sim`; the fleet's size comes from
//! HAVEN_BENCH_CLUSTERS (default 1000) x 4 systems x 20 groups x 10
//! resources. Traffic stays on loopback.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use haven_model::{name, EventKind, GroupState, Operation};
use haven_protocol::{ClientOptions, EngineClient};

const HAVEN: &str = env!("CARGO_BIN_EXE_haven");

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let clusters: usize = std::env::var("HAVEN_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let stream_secs: u64 = std::env::var("HAVEN_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("clusters.txt");
    let began = Instant::now();
    let mut child = Command::new(HAVEN)
        .args(["sim", "--clusters", &clusters.to_string()])
        .args(["--systems", "4", "--groups", "20", "--resources", "10"])
        .args(["--delay", "0", "--fault-rate", "0"])
        .arg("--list")
        .arg(&list)
        .env("HAVEN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haven sim");
    let guard = KillOnDrop(child.id());
    let deadline = began + Duration::from_secs(600);
    while !list.exists() {
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            panic!("haven sim did not become ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let start_time = began.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let rss = status_kib(child.id(), "VmRSS:");
    let peak = status_kib(child.id(), "VmHWM:");
    let listing = std::fs::read_to_string(&list).unwrap();
    let first = listing
        .lines()
        .find(|l| !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("a cluster in the list")
        .to_string();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (events, elapsed, switches) = rt.block_on(stream(&first, Duration::from_secs(stream_secs)));

    let resources = clusters * 4 * 20 * 10;
    println!("haven sim: {clusters} clusters x 4 systems x 20 groups x 10 resources");
    println!("  ({resources} resource states on one process)");
    println!("  start time (listening, probed, autostarted): {start_time:.2?}");
    println!(
        "  resident memory: {:.1} MiB (peak {:.1} MiB), {:.1} KiB per cluster",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss as f64 / clusters as f64
    );
    println!(
        "  one engine streamed {events} events in {elapsed:.2?} ({switches} switches): {:.0} events/s",
        events as f64 / elapsed.as_secs_f64()
    );
    drop(guard);
    let _ = child.wait();
}

/// Stops the simulator even when the bench panics.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: SIGTERM to the child we started.
        unsafe { libc::kill(self.0 as i32, libc::SIGTERM) };
    }
}

/// Subscribes to one cluster and, from a second connection, switches all
/// its failover groups, then reads events until every one of them is
/// online again; repeats for `window`. Counts the events received.
async fn stream(addr: &str, window: Duration) -> (u64, Duration, u64) {
    let options = ClientOptions {
        client: "bench".into(),
        ..ClientOptions::default()
    };
    let mut subscriber = EngineClient::connect(addr, &options).await.unwrap();
    let snapshot = match subscriber.subscribe(None).await.unwrap() {
        haven_protocol::client::Subscription::Snapshot(_, s) => s,
        other => panic!("{other:?}"),
    };
    let groups: Vec<_> = snapshot
        .config
        .groups
        .iter()
        .filter(|g| !g.parallel)
        .map(|g| g.name.clone())
        .collect();
    let mut actor = EngineClient::connect(addr, &options).await.unwrap();
    let began = Instant::now();
    let (mut events, mut switches) = (0u64, 0u64);
    // Bounded by time and by count.
    for _ in 0..100_000u32 {
        if began.elapsed() >= window {
            break;
        }
        let mut pending = std::collections::HashSet::new();
        for g in &groups {
            let op = Operation::GroupSwitch {
                group: name(g),
                to: None,
            };
            if actor.command(op).await.unwrap().is_accepted() {
                switches += 1;
                pending.insert(g.clone());
            }
        }
        while !pending.is_empty() {
            let event = subscriber
                .next_event_within(Duration::from_secs(10))
                .await
                .expect("events keep coming");
            events += 1;
            if let EventKind::GroupState {
                group,
                to: GroupState::Online,
                ..
            } = &event.kind
            {
                pending.remove(group);
            }
        }
    }
    (events, began.elapsed(), switches)
}
