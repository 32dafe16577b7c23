//! The console's summary page at fleet scale: server time and bytes of
//! `/`, `/clusters` and `/faults` with 1,000 and 10,000 clusters of
//! 4 systems x 20 groups x 10 resources in the fleet (built in memory from
//! the engine's own state machine, no sockets; one cluster in 20 has a
//! dead system), as a caller with a fleet-wide view.
//!
//! `cargo bench -p haven-server --bench console` (HAVEN_BENCH_SIZES,
//! default "1000,10000").

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use haven_engine::policy::{Cluster, PolicyOptions};
use haven_engine::sim::{generate_cluster, FleetOptions};
use haven_model::Name;
use haven_server::config::ServerConfig;
use haven_server::fleet::{LinkState, LinkStatus};
use tower::ServiceExt;

fn status() -> LinkStatus {
    LinkStatus {
        state: LinkState::Connected,
        since_ms: 0,
        mode: "direct".into(),
        address: "in-process".into(),
        last_error: None,
        failures: 0,
        epoch: Some(1),
        seq: 0,
        connector_version: None,
        backlog_events: None,
        backlog_bytes: None,
    }
}

async fn measure(
    server: &std::sync::Arc<haven_server::Server>,
    path: &str,
) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..30 {
        let started = Instant::now();
        let response = haven_server::api::router(server.clone())
            .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        times.push(started.elapsed());
        bytes = body.len();
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 9 / 10], bytes)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("HAVEN_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::default();
        config.server.data_dir = dir.path().join("data");
        config.auth.enabled = false;
        let server = haven_server::Server::start(config).unwrap();
        let options = FleetOptions {
            systems: 4,
            groups: 20,
            resources: 10,
            ..FleetOptions::default()
        };
        let built = Instant::now();
        for i in 0..n {
            let config = generate_cluster(i, &options);
            let name = Name::from(config.name.as_ref());
            let mut cluster = Cluster::new(
                config,
                PolicyOptions {
                    simulated: true,
                    periodic_monitor: false,
                },
            );
            let _ = cluster.start(0);
            // Something to attend to in one cluster of 20: a dead system.
            if i % 20 == 0 {
                let system = cluster.system_name(0).clone();
                let _ = cluster.operate(1, &haven_model::Operation::SimFaultSystem { system });
            }
            server.fleet.add(&name, status());
            server.fleet.resync(&name, 1, cluster.snapshot());
        }
        let summary = server.fleet.summary(0);
        assert_eq!(summary.clusters, n);
        println!(
            "fleet of {n} clusters ({} groups, {} resources) built in {:.1} s",
            summary.groups,
            summary.resources,
            built.elapsed().as_secs_f64()
        );
        for path in ["/", "/clusters", "/faults", "/clusters?page=5&q=cluster-00"] {
            let (p50, p90, bytes) = measure(&server, path).await;
            println!(
                "  {path:<32} p50 {:>7.2} ms  p90 {:>7.2} ms  {:>7} bytes",
                p50.as_secs_f64() * 1e3,
                p90.as_secs_f64() * 1e3,
                bytes
            );
        }
    }
}
