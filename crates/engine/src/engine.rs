//! `haven engine`: one cluster from a main.cf directory, on one socket.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;

use crate::agents::{AgentSet, SimAgent};
use crate::policy::{Cluster, PolicyOptions};
use crate::runtime::{ClusterHandle, RuntimeOptions};
use crate::server::{serve, Credentials, ServeOptions};

/// What `haven engine` was asked to do.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Directory holding main.cf (and the files it includes).
    pub config_dir: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Simulate every resource instead of running real agents.
    pub simulate: bool,
    /// Simulated online/offline take this long (ms, min and max).
    pub sim_delay_ms: (u64, u64),
    pub journal_capacity: usize,
    pub heartbeat: Duration,
    /// Serve TLS with this certificate (chain, PEM) and key instead of
    /// plain TCP; clients then dial `tls://HOST:PORT`.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running engine.
pub struct RunningEngine {
    pub cluster: ClusterHandle,
    pub addr: std::net::SocketAddr,
    pub summary: String,
}

/// Loads and checks the configuration, starts the cluster and listens.
/// Nothing starts if the configuration is bad.
pub async fn start(options: &EngineOptions) -> anyhow::Result<RunningEngine> {
    let config = haven_maincf::load_dir(&options.config_dir).map_err(|e| {
        anyhow::anyhow!("{e}\nnothing was started; fix the configuration and try again")
    })?;
    let agents = if options.simulate {
        AgentSet::simulated(SimAgent::new(options.sim_delay_ms))
    } else {
        AgentSet::real()
    };
    if let Err(problems) = agents.validate(&config) {
        bail!(
            "{}/main.cf cannot run on this host:\n  {}\nnothing was started",
            options.config_dir.display(),
            problems.join("\n  ")
        );
    }
    let tls = match &options.tls {
        Some((cert, key)) => Some(
            haven_pki::server_config_from_files(cert, key)
                .map_err(|e| anyhow::anyhow!("{e}\nnothing was started"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(&options.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (is another engine running there? choose another with --listen)",
            options.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let credentials = Arc::new(Credentials::from_config(&config));
    let resources: usize = config.groups.iter().map(|g| g.resources.len()).sum();
    let summary =
        format!(
        "cluster {} listening on {}{addr}: {} systems, {} groups, {resources} resources, {} agents{}",
        config.name,
        if tls.is_some() { haven_protocol::transport::TLS_SCHEME } else { "" },
        config.systems.len(),
        config.groups.len(),
        if options.simulate { "simulated" } else { "real" },
        if credentials.required() {
            ", login required"
        } else {
            ", no login (set UserNames in main.cf to require one)"
        }
    );
    let policy = Cluster::new(
        config,
        PolicyOptions {
            simulated: options.simulate,
            periodic_monitor: !options.simulate,
        },
    );
    let cluster = ClusterHandle::spawn(
        policy,
        agents,
        RuntimeOptions {
            journal_capacity: options.journal_capacity,
            config_dir: (!options.simulate).then(|| options.config_dir.clone()),
            ..RuntimeOptions::default()
        },
    );
    tokio::spawn(serve(
        listener,
        cluster.clone(),
        credentials,
        ServeOptions {
            heartbeat: options.heartbeat,
            tls,
            ..ServeOptions::default()
        },
    ));
    Ok(RunningEngine {
        cluster,
        addr,
        summary,
    })
}
