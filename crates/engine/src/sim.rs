//! `haven sim`: many simulated clusters in one process, each behind its
//! own engine socket on loopback, with occasional random faults so there
//! is something to watch.
//!
//! Each cluster is a full engine (policy, simulated agent, journal, socket
//! server); they share only the tokio runtime. The cluster list file is
//! written (atomically) once every cluster listens and has autostarted.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_model::{
    name, ClusterConfig, FailoverPolicy, GroupConfig, Name, ResourceConfig, ResourceDependency,
    SystemConfig, TypeDef,
};
use tokio::net::TcpListener;

use crate::agents::{AgentSet, SimAgent};
use crate::policy::{Cluster, PolicyOptions};
use crate::runtime::{ClusterHandle, RuntimeOptions};
use crate::server::{serve, Credentials, ServeOptions};

/// The shape and behaviour of a simulated fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub clusters: usize,
    pub systems: usize,
    pub groups: usize,
    pub resources: usize,
    /// Random faults per cluster per hour (0: none).
    pub fault_rate: f64,
    /// Simulated online/offline take this long (ms, min and max).
    pub delay_ms: (u64, u64),
    pub journal_capacity: usize,
    /// Listen on consecutive ports from here (None: any free port).
    pub base_port: Option<u16>,
    pub bind_ip: std::net::IpAddr,
    pub heartbeat: Duration,
    /// Cluster names are PREFIX-0001, PREFIX-0002, ...
    pub prefix: String,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            clusters: 10,
            systems: 4,
            groups: 20,
            resources: 10,
            fault_rate: 6.0,
            delay_ms: (200, 1500),
            journal_capacity: 1024,
            base_port: None,
            bind_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            heartbeat: Duration::from_secs(5),
            prefix: "cluster".into(),
        }
    }
}

/// The resource types a simulated group stacks, bottom first.
const TYPES: &[&str] = &[
    "NIC",
    "IP",
    "DiskGroup",
    "Volume",
    "Mount",
    "Application",
    "Process",
    "Apache",
    "Oracle",
    "Share",
];
const GROUP_KINDS: &[&str] = &[
    "web", "db", "app", "mq", "cache", "batch", "files", "auth", "search", "api",
];

/// The configuration of simulated cluster number `index` (from 0).
///
/// Groups spread over the systems (each starts on a different one), every
/// tenth is parallel, and resources form a dependency tree: resource `k`
/// requires resource `(k-1)/2`.
pub fn generate_cluster(index: usize, options: &FleetOptions) -> ClusterConfig {
    let cluster = format!("{}-{:04}", options.prefix, index + 1);
    let systems: Vec<Name> = (1..=options.systems.max(1))
        .map(|j| name(format!("{cluster}-n{j}")))
        .collect();
    let types: Vec<Name> = TYPES.iter().map(name).collect();
    let groups = (0..options.groups)
        .map(|g| {
            let kind = GROUP_KINDS[g % GROUP_KINDS.len()];
            let gname = format!("{kind}{:02}", g + 1);
            let mut group = GroupConfig::new(&gname);
            let n = systems.len();
            group.system_list = (0..n)
                .map(|k| (systems[(g + k) % n].clone(), k as u32))
                .collect();
            group.parallel = g % 10 == 9 && n > 1;
            group.auto_start_list = if group.parallel {
                systems.clone()
            } else {
                vec![systems[g % n].clone()]
            };
            group.failover_policy = FailoverPolicy::ALL[g % 3];
            group.load = 10 + (g as i64 % 4) * 5;
            group.resources = (0..options.resources)
                .map(|k| {
                    let ty = &types[k % types.len()];
                    ResourceConfig {
                        name: name(format!("{gname}_{}{k}", ty.to_lowercase())),
                        type_name: ty.clone(),
                        attributes: Vec::new(),
                    }
                })
                .collect();
            group.dependencies = (1..group.resources.len())
                .map(|k| ResourceDependency {
                    parent: group.resources[k].name.clone(),
                    child: group.resources[(k - 1) / 2].name.clone(),
                })
                .collect();
            group
        })
        .collect();
    ClusterConfig {
        name: name(cluster),
        includes: vec!["types.cf".into()],
        attributes: Vec::new(),
        systems: systems.into_iter().map(SystemConfig::new).collect(),
        types: types
            .into_iter()
            .map(|t| TypeDef {
                name: t,
                attrs: Vec::new(),
                source: "types.cf".into(),
            })
            .collect(),
        groups,
    }
}

/// A running fleet.
pub struct Fleet {
    pub clusters: Vec<(ClusterHandle, SocketAddr)>,
    /// How long it took to start every cluster (listening, probed,
    /// autostart begun).
    pub started_in: Duration,
}

impl Fleet {
    /// The cluster list: one `NAME ADDRESS` line per cluster.
    pub fn listing(&self) -> String {
        let mut text = String::from("# haven sim: one simulated cluster per line: NAME ADDRESS\n");
        for (handle, addr) in &self.clusters {
            let _ = writeln!(text, "{} {addr}", handle.name());
        }
        text
    }

    /// Writes the listing to `path` atomically, so a reader never sees
    /// half a file.
    pub fn write_listing(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.listing())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Injects random faults at `rate` per cluster per hour, forever.
    pub fn spawn_chaos(&self, rate: f64) {
        if rate <= 0.0 || self.clusters.is_empty() {
            return;
        }
        let handles: Arc<Vec<ClusterHandle>> =
            Arc::new(self.clusters.iter().map(|(h, _)| h.clone()).collect());
        let per_second = rate * handles.len() as f64 / 3600.0;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let whole = per_second.floor() as usize;
                let extra = usize::from(fastrand::f64() < per_second.fract());
                // Bounded: at most one fault per cluster per second.
                for _ in 0..(whole + extra).min(handles.len()) {
                    handles[fastrand::usize(..handles.len())].chaos().await;
                }
            }
        });
    }

    /// Stops every cluster (leaving simulated resources as they are).
    pub async fn shutdown(&self) {
        for (handle, _) in &self.clusters {
            handle.shutdown(true, Duration::from_secs(1)).await;
        }
    }
}

/// Starts every cluster of the fleet and waits until each has probed its
/// resources and begun autostart.
pub async fn start_fleet(options: &FleetOptions) -> anyhow::Result<Fleet> {
    let began = Instant::now();
    let mut clusters = Vec::with_capacity(options.clusters);
    for i in 0..options.clusters {
        let port = match options.base_port {
            Some(base) => base
                .checked_add(u16::try_from(i).unwrap_or(u16::MAX))
                .with_context(|| format!("--base-port {base} leaves no port for cluster {i}"))?,
            None => 0,
        };
        let addr = SocketAddr::new(options.bind_ip, port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for simulated cluster {}", i + 1))?;
        let addr = listener.local_addr()?;
        let config = generate_cluster(i, options);
        let policy = Cluster::new(
            config,
            PolicyOptions {
                simulated: true,
                periodic_monitor: false,
            },
        );
        let handle = ClusterHandle::spawn(
            policy,
            AgentSet::simulated(SimAgent::new(options.delay_ms)),
            RuntimeOptions {
                journal_capacity: options.journal_capacity,
                subscriber_backlog: 256,
                log_events: false,
                ..RuntimeOptions::default()
            },
        );
        tokio::spawn(serve(
            listener,
            handle.clone(),
            Arc::new(Credentials::default()),
            ServeOptions {
                heartbeat: options.heartbeat,
                ..ServeOptions::default()
            },
        ));
        clusters.push((handle, addr));
    }
    // A cluster task answers only after its start-up step.
    for (handle, _) in &clusters {
        handle.seq().await?;
    }
    Ok(Fleet {
        clusters,
        started_in: began.elapsed(),
    })
}

/// Where `haven sim` writes its cluster list by default.
pub fn default_list_path() -> PathBuf {
    PathBuf::from("haven-sim-clusters.txt")
}
