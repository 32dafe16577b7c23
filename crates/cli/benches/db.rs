//! Database maintenance at scale: fills a database with history
//! (default 10 million rows over 60 days, `HAVEN_BENCH_ROWS` to change),
//! then prints backup speed (MB/s), verification, prune speed (rows/s) of
//! the older half, and how long a 30-day history query of one group takes.
//!
//! `cargo bench --bench db`. Absolute times on a shared 2-core machine are
//! noisy; compare figures from one run.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use haven_model::{name, Event, EventKind, GroupState, ResourceState, Severity};
use haven_store::maintenance;
use haven_store::{HistoryQuery, HistoryRow, SqliteStore, Store};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn main() {
    let rows: u64 = std::env::var("HAVEN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("haven.db");
    let mut store = SqliteStore::open(&db).expect("open");

    // 100 clusters x 20 groups x 4 systems, events spread over 60 days.
    let clusters = 100u64;
    let start_ms = 1_700_000_000_000i64;
    let span_ms = 60 * DAY_MS;
    let started = Instant::now();
    let mut seqs = vec![0u64; clusters as usize];
    let batch = 10_000u64;
    let mut written = 0u64;
    while written < rows {
        let n = batch.min(rows - written);
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let k = written + i;
            let c = (k % clusters) as usize;
            seqs[c] += 1;
            let time_ms = start_ms + (k as i128 * span_ms as i128 / rows as i128) as i64;
            let g = format!("grp{:02}", (k / clusters) % 20);
            let s = format!("n{}", (k / (clusters * 20)) % 4);
            let kind = match k % 10 {
                0..=5 => EventKind::ResourceState {
                    group: name(&g),
                    resource: name(format!("{g}_res{}", k % 7)),
                    system: name(&s),
                    from: ResourceState::Offline,
                    to: ResourceState::Online,
                },
                6..=8 => EventKind::GroupState {
                    group: name(&g),
                    system: name(&s),
                    from: GroupState::Offline,
                    to: GroupState::Online,
                },
                _ => EventKind::Notice {
                    severity: Severity::Info,
                    object: Some(name(&g)),
                    message: "monitor took longer than usual".into(),
                },
            };
            out.push(HistoryRow {
                cluster: format!("cluster-{c:04}"),
                epoch: 1,
                event: Event {
                    seq: seqs[c],
                    time_ms,
                    kind,
                },
            });
        }
        store.append(&out).expect("append");
        written += n;
        if written.is_multiple_of(1_000_000) {
            eprintln!(
                "  {written} rows ({:.0} rows/s)",
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let fill = started.elapsed();
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("haven.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "database: {rows} history rows, {:.0} MB, filled in {:.1} s ({:.0} rows/s)",
        size as f64 / 1e6,
        fill.as_secs_f64(),
        rows as f64 / fill.as_secs_f64()
    );

    // A 30-day history of one group, newest first (as an administrator
    // asks it through the API).
    let query = HistoryQuery {
        cluster: Some("cluster-0042".into()),
        object: Some("grp07".into()),
        since_ms: Some(start_ms + span_ms - 30 * DAY_MS),
        limit: 100_000,
        ..Default::default()
    };
    let t = Instant::now();
    let found = store.history(&query).expect("query").len();
    println!(
        "query: 30 days of one group of one cluster: {found} rows in {:.1} ms (store API)",
        ms(t.elapsed())
    );

    // The same question through the SQL port, as psql asks it: a real
    // `haven server` on this database (logins off, loopback).
    sql_query(dir.path(), start_ms + span_ms - 30 * DAY_MS);

    // Backup.
    let dest = dir.path().join("backup.db");
    let report = store.backup_to(&dest, &|_| {}).expect("backup");
    println!(
        "backup: {:.0} MB in {:.1} s = {:.1} MB/s, {:.0} rows/s (verified: {} rows)",
        report.bytes as f64 / 1e6,
        report.took.as_secs_f64(),
        report.bytes as f64 / 1e6 / report.took.as_secs_f64(),
        rows as f64 / report.took.as_secs_f64(),
        report.verified.history_rows
    );
    let t = Instant::now();
    let v = maintenance::verify(&dest).expect("verify");
    println!(
        "verify: {} rows, integrity checked in {:.1} s = {:.1} MB/s",
        v.history_rows,
        t.elapsed().as_secs_f64(),
        report.bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
    );
    std::fs::remove_file(&dest).ok();

    // Prune the older half.
    let cut = start_ms + span_ms / 2;
    let report = store.prune(cut, None, &|_| {}).expect("prune");
    let secs = report.took.as_secs_f64();
    println!(
        "prune: {} rows removed, {} kept as last states, in {:.1} s = {:.0} rows/s, {:.1} MB/s \
         of history removed; {:.0} MB freed inside the file",
        report.history_removed,
        report.history_kept,
        secs,
        report.history_removed as f64 / secs,
        report.bytes_freed as f64 / 1e6 / secs,
        report.bytes_freed as f64 / 1e6
    );
}

/// Times a 30-day history query of one group through the SQL port, with
/// psql's own `\timing` (the server round trip), best of five.
fn sql_query(data_dir: &std::path::Path, since_ms: i64) {
    let config = data_dir.join("haven.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[database]\nbackup_every_hours = 0\n\
             [auth]\nenabled = false\n[sql]\nlisten = \"127.0.0.1:0\"\n[connectors]\nlisten = \"127.0.0.1:0\"\n",
            data_dir.display()
        ),
    )
    .unwrap();
    let (server, line) = support::Proc::start(
        &["server", "--config", config.to_str().unwrap()],
        "haven sql port listening on",
    );
    let addr = line
        .rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let query = format!(
        "SELECT seq, time_ms, event_type, new_state FROM history \
         WHERE cluster = 'cluster-0042' AND service_group = 'grp07' AND time_ms >= {since_ms} ORDER BY time_ms DESC"
    );
    let mut best = f64::MAX;
    let mut rows = String::new();
    for _ in 0..5 {
        let out = std::process::Command::new("psql")
            .args([
                &format!("host={host} port={port} user=bench dbname=haven sslmode=disable"),
                "-X",
                "-q",
                "-c",
                "\\timing on",
                "-c",
                &query,
            ])
            .output()
            .expect("psql (scripts/test installs postgresql-client)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(ms) = text
            .lines()
            .find_map(|l| l.strip_prefix("Time: "))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse::<f64>().ok())
        {
            best = best.min(ms);
        }
        rows = text
            .lines()
            .find(|l| l.starts_with('(') && l.contains("row"))
            .unwrap_or_default()
            .to_string();
    }
    println!("query: the same through the SQL port with psql: {rows} in {best:.1} ms (best of 5)");
    drop(server);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
