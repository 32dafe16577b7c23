//! `haven`: one binary for every role. This file only parses the command
//! line and wires the library crates together.

mod client;
mod db;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use haven_engine::{engine, password, sim};
use haven_server::config::{ClusterEntry, GrantEntry, ServerConfig, DEFAULT_CONFIG};

/// Haven: one console for many high-availability clusters.
#[derive(Parser)]
#[command(name = "haven", version, about, long_about = None, propagate_version = true, after_long_help = client::EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a demo: a management server with its database and a simulated
    /// fleet of a dozen clusters, ready to query.
    Demo(DemoArgs),
    /// Run the management server.
    Server(ServerArgs),
    /// Relay a cluster to a management server, dialling out over TLS
    /// (join once with a token from POST /api/v1/tokens).
    Connector(ConnectorArgs),
    /// Run the cluster engine (the HA daemon) of one cluster from its main.cf.
    Engine(EngineArgs),
    /// Run many simulated clusters in one process, each on its own socket.
    Sim(SimArgs),
    /// Check or print a main.cf configuration without starting anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Back up, restore, verify or prune the management database.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Hash a password for the UserNames attribute of main.cf (reads it
    /// from standard input).
    HashPassword,
    /// Set up this host for the server (as root).
    #[command(subcommand)]
    Setup(SetupCommand),
    /// The fleet command line: login, status, operations, administration.
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Install the PAM service file that checks local OS accounts
    /// (/etc/pam.d/SERVICE: pam_unix for auth and account). An existing
    /// file with other content is this host's own policy and is kept.
    Pam {
        /// The PAM service (`[auth] pam_service` in haven.toml).
        #[arg(long, default_value = haven_auth::pam::DEFAULT_SERVICE)]
        service: String,
        /// Replace an existing file that differs.
        #[arg(long)]
        force: bool,
        /// Where PAM service files live.
        #[arg(long, default_value = "/etc/pam.d", value_name = "DIR", hide = true)]
        dir: PathBuf,
    },
    /// Issue a TLS certificate for a cluster engine from the fleet CA (on
    /// the server host): the engine serves it with --tls-cert/--tls-key and
    /// the server dials it as tls://HOST:PORT.
    EngineCert {
        /// The server's data directory, whose pki/ holds the fleet CA.
        #[arg(long, default_value = "haven-data", value_name = "DIR")]
        data_dir: PathBuf,
        /// A host name or address the server dials the engine by
        /// (repeatable; localhost, 127.0.0.1 and ::1 are always in).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Where to write engine.pem, engine.key (0600) and ca.pem.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn run_setup(cmd: SetupCommand) -> anyhow::Result<()> {
    match cmd {
        SetupCommand::Pam {
            service,
            force,
            dir,
        } => {
            let path = dir.join(&service);
            match haven_auth::pam::install_service(&dir, &service, force)
                .map_err(anyhow::Error::msg)?
            {
                haven_auth::pam::Installed::Written => println!(
                    "installed {}: local OS accounts can log in through PAM service {service}",
                    path.display()
                ),
                haven_auth::pam::Installed::AlreadyThere => {
                    println!("{} is already installed; nothing changed", path.display())
                }
            }
            Ok(())
        }
        SetupCommand::EngineCert {
            data_dir,
            names,
            out,
        } => {
            let pki = data_dir.join("pki");
            if !pki.join("ca.pem").exists() {
                anyhow::bail!(
                    "no fleet CA in {}: start the server once with this data directory (it \
                     creates the CA), or pass its --data-dir",
                    pki.display()
                );
            }
            let authority = haven_pki::Authority::load_or_create(&pki, &[])?;
            let files = authority.issue_engine(&names, &out)?;
            println!(
                "issued {} and {} (for localhost{}), signed by the fleet CA {}\n\
                 run the engine with: haven engine --tls-cert {} --tls-key {} ...\n\
                 and give the server its address as tls://HOST:PORT",
                files.cert.display(),
                files.key.display(),
                names.iter().map(|n| format!(", {n}")).collect::<String>(),
                authority.ca_fingerprint(),
                files.cert.display(),
                files.key.display(),
            );
            Ok(())
        }
    }
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ServerArgs {
    #[command(subcommand)]
    action: Option<ServerAction>,
    /// Configuration file (see --print-default-config); defaults apply
    /// without one.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print a commented configuration file with every default, and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Serve plain HTTP instead of HTTPS: for development, on a loopback
    /// address only.
    #[arg(long)]
    insecure_plain_http: bool,
}

#[derive(Subcommand)]
enum ServerAction {
    /// The servers of this server's group (a clustered server): their
    /// roles and health, and which one is active.
    #[command(after_long_help = client::EXIT_CODES)]
    Status {
        #[command(flatten)]
        global: client::Global,
    },
}

#[derive(Args)]
struct ConnectorArgs {
    /// The server's connector port, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    server: String,
    /// The cluster engine's socket.
    #[arg(long, default_value = "127.0.0.1:14141", value_name = "HOST:PORT")]
    engine: String,
    /// One-time join token (only the first time; credentials are then kept
    /// in the data directory).
    #[arg(
        long,
        env = "HAVEN_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Where the connector keeps its credentials and its event spool.
    #[arg(long, default_value = "haven-connector", value_name = "DIR")]
    data_dir: PathBuf,
    /// Engine login, if its main.cf sets UserNames.
    #[arg(long, value_name = "USER")]
    engine_user: Option<String>,
    /// Engine password (better through the environment than the command line).
    #[arg(
        long,
        env = "HAVEN_ENGINE_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    engine_password: Option<String>,
    /// Most bytes of events kept while the server is unreachable (K, M, G
    /// suffixes); beyond that the oldest are dropped and a gap recorded.
    #[arg(long, default_value = "256M", value_name = "SIZE", value_parser = parse_size)]
    spool_max: u64,
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for the demo's database (kept between runs).
    #[arg(long, default_value = "haven-demo", value_name = "DIR")]
    data_dir: PathBuf,
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8440", value_name = "ADDR")]
    listen: String,
    /// First port of the simulated engines (the demo uses 30 from here).
    #[arg(long, default_value_t = 14200, value_name = "PORT")]
    engine_ports: u16,
    /// Where the demo's connectors dial in.
    #[arg(long, default_value = "127.0.0.1:8441", value_name = "ADDR")]
    connector_listen: String,
    /// Where the demo's read-only SQL port listens.
    #[arg(long, default_value = "127.0.0.1:8442", value_name = "ADDR")]
    sql_listen: String,
    /// Where the demo's peer port listens (pairing with another site).
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR")]
    peer_listen: String,
}

#[derive(Args)]
struct EngineArgs {
    /// Directory holding main.cf (and the files it includes, e.g. types.cf).
    #[arg(long, short = 'c', value_name = "DIR")]
    config: PathBuf,
    /// Address of the engine socket.
    #[arg(long, default_value = "127.0.0.1:14141", value_name = "ADDR")]
    listen: String,
    /// Simulate every resource instead of running real agents on this host.
    #[arg(long)]
    simulate: bool,
    /// With --simulate: how long a simulated online/offline takes, in ms
    /// (MIN-MAX or one value).
    #[arg(long, default_value = "200-1500", value_name = "MS", value_parser = parse_range)]
    sim_delay: (u64, u64),
    /// Events kept for clients that reconnect and resume.
    #[arg(long, default_value_t = 10_000, value_name = "EVENTS")]
    journal: usize,
    /// Heartbeat interval of client connections, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    heartbeat: u64,
    /// On stop, leave groups running (like `hastop -force`) instead of
    /// taking them offline.
    #[arg(long)]
    leave_running: bool,
    /// Serve TLS with this certificate (PEM, the CA after it), e.g. from
    /// `haven setup engine-cert`; the server then dials tls://HOST:PORT.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Args)]
struct SimArgs {
    /// Number of clusters.
    #[arg(long, default_value_t = 10)]
    clusters: usize,
    /// Systems (nodes) per cluster.
    #[arg(long, default_value_t = 4)]
    systems: usize,
    /// Service groups per cluster.
    #[arg(long, default_value_t = 20)]
    groups: usize,
    /// Resources per group.
    #[arg(long, default_value_t = 10)]
    resources: usize,
    /// Random faults per cluster per hour (each repaired 20-90 s later).
    #[arg(long, default_value_t = 6.0, value_name = "PER_HOUR")]
    fault_rate: f64,
    /// How long a simulated online/offline takes, in ms (MIN-MAX or one
    /// value; 0 for instant).
    #[arg(long, default_value = "200-1500", value_name = "MS", value_parser = parse_range)]
    delay: (u64, u64),
    /// Where to write the cluster list (one `NAME ADDRESS` line each).
    #[arg(long, default_value = "haven-sim-clusters.txt", value_name = "FILE")]
    list: PathBuf,
    /// Listen on consecutive ports from this one (default: any free port).
    #[arg(long, value_name = "PORT")]
    base_port: Option<u16>,
    /// Events each cluster keeps for clients that resume.
    #[arg(long, default_value_t = 1024, value_name = "EVENTS")]
    journal: usize,
    /// Cluster name prefix.
    #[arg(long, default_value = "cluster")]
    prefix: String,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check DIR/main.cf; print a summary, or the first error as file:line:column.
    Check {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print DIR/main.cf as Haven would write it back.
    Print {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim().to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 512K, 256M, 1G)"))?;
    let scale = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("`{text}`: unknown unit (use K, M or G)")),
    };
    n.checked_mul(scale)
        .filter(|b| *b >= 4096)
        .ok_or_else(|| format!("`{text}`: a size of at least 4K, please"))
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{s}` is not a number of milliseconds"))
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(format!("{a}-{b}: the minimum is above the maximum"));
            }
            Ok((a, b))
        }
        None => parse(text).map(|v| (v, v)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HAVEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let result = match cli.command {
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(run_demo(args))),
        Command::Server(ServerArgs {
            action: Some(ServerAction::Status { global }),
            ..
        }) => return client::server_status(&global),
        Command::Server(args) => runtime().and_then(|rt| rt.block_on(run_server(args))),
        Command::Connector(args) => runtime().and_then(|rt| {
            rt.block_on(async {
                tokio::select! {
                    r = haven_connector::relay::run(haven_connector::relay::ConnectorOptions {
                        server: args.server,
                        token: args.token,
                        engine: args.engine,
                        engine_user: args.engine_user,
                        engine_password: args.engine_password,
                        data_dir: args.data_dir,
                        spool_max_bytes: args.spool_max,
                    }) => r,
                    r = stop_signal() => r,
                }
            })
        }),
        Command::Engine(args) => runtime().and_then(|rt| rt.block_on(run_engine(args))),
        Command::Sim(args) => runtime().and_then(|rt| rt.block_on(run_sim(args))),
        Command::Config(cmd) => run_config(cmd),
        Command::Db(cmd) => db::run(cmd),
        Command::HashPassword => hash_password(),
        Command::Setup(cmd) => run_setup(cmd),
        Command::Client(cmd) => return client::run(cmd, <Cli as clap::CommandFactory>::command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Waits for SIGINT or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    if args.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(());
    }
    let mut config = match &args.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    config.server.insecure_plain_http |= args.insecure_plain_http;
    if config.group.enabled {
        return run_group_server(config).await;
    }
    let server = haven_server::Server::start(config)?;
    let addr = server.listen().await?;
    announce(&server, addr, "").await?;
    stop_signal().await?;
    tracing::info!("stopping; writing what is queued");
    server.flush_history().await;
    Ok(())
}

/// Opens the local socket and says where the server listens (`role`:
/// what it is, after the address), in the line tools wait for.
async fn announce(
    server: &std::sync::Arc<haven_server::Server>,
    addr: std::net::SocketAddr,
    role: &str,
) -> anyhow::Result<()> {
    let local = server.listen_local().await?;
    tracing::info!(
        "local tools connect without a password on {}",
        local.display()
    );
    if server.https() {
        tracing::info!(
            "clients trust the fleet CA {} (SHA-256 {})",
            server.config.server.data_dir.join("pki/ca.pem").display(),
            server.authority.ca_fingerprint()
        );
    }
    tracing::info!(
        "haven server listening on {}://{addr}{role} ({} clusters; data in {})",
        if server.https() { "https" } else { "http" },
        server.fleet.names().len(),
        server.config.server.data_dir.display()
    );
    Ok(())
}

/// `haven server` of a clustered server (`[group] enabled`): stands by
/// until it wins the lease, then runs as the active server until it stops
/// or loses the lease; then it starts again, as a standby, in the same
/// process (nothing it held in memory is kept).
async fn run_group_server(config: ServerConfig) -> anyhow::Result<()> {
    let standby = haven_server::group::stand_by(config).await?;
    let member = standby.member.clone();
    tracing::info!(
        "haven server listening on {}://{} as a standby of its group (server {}; connectors on {}); it takes over when no other is active",
        if standby.config().server.insecure_plain_http { "http" } else { "https" },
        standby.api_addr,
        member.id,
        standby.connector_addr
    );
    let term = tokio::select! {
        won = member.won() => won.map_err(|e| anyhow::anyhow!(e))?,
        r = stop_signal() => {
            r?;
            tracing::info!("stopping (a standby)");
            member.leave();
            return Ok(());
        }
    };
    let (server, addr) = standby.activate(term).await?;
    let role = format!(
        " as the active server of its group, server {}, term {term}",
        member.id
    );
    announce(&server, addr, &role).await?;
    tokio::select! {
        why = member.lost() => {
            tracing::error!("lost the lease ({why}): starting again as a standby");
            restart_self()
        }
        r = stop_signal() => {
            r?;
            tracing::info!("stopping; writing what is queued, then handing the lease over");
            server.flush_history().await;
            member.leave();
            Ok(())
        }
    }
}

/// Replaces this process with a new run of the same command (same
/// arguments, same environment): every port, file lock and database
/// session of this one closes with it.
fn restart_self() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find this program to start it again")?;
    let error = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(anyhow::anyhow!(
        "cannot start {} again: {error}",
        exe.display()
    ))
}

/// The demo clusters that reach the server through a connector.
const DEMO_CONNECTED: &str = "edge";

/// The demo fleet: (name prefix, clusters, systems, groups, resources).
const DEMO_FLEET: &[(&str, usize, usize, usize, usize)] = &[
    ("edge", 4, 2, 5, 4),
    ("prod", 6, 4, 20, 10),
    ("core", 2, 8, 40, 10),
];

async fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut clusters = Vec::new();
    let mut relayed = Vec::new();
    let mut fleets = Vec::new();
    let mut port = args.engine_ports;
    for &(prefix, count, systems, groups, resources) in DEMO_FLEET {
        let options = sim::FleetOptions {
            clusters: count,
            systems,
            groups,
            resources,
            fault_rate: 12.0,
            base_port: Some(port),
            prefix: prefix.into(),
            ..sim::FleetOptions::default()
        };
        port = port.saturating_add(10);
        let fleet = sim::start_fleet(&options).await.with_context(|| {
            format!(
                "cannot start the simulated {prefix} clusters (ports from {}: choose others with --engine-ports)",
                options.base_port.unwrap_or_default()
            )
        })?;
        fleet.spawn_chaos(options.fault_rate);
        for (handle, addr) in &fleet.clusters {
            if prefix == DEMO_CONNECTED {
                // These reach the server through connectors (below).
                relayed.push((handle.name().to_string(), addr.to_string()));
                continue;
            }
            clusters.push(ClusterEntry {
                name: handle.name().to_string(),
                address: addr.to_string(),
                user: None,
                password: None,
            });
        }
        fleets.push(fleet);
    }
    // The demo's user is whoever runs it: they administer the server and
    // every cluster, and get a one-time login link below.
    let me = current_user()?;
    let mut config = ServerConfig::default();
    config.server.listen = args.listen;
    config.server.data_dir = args.data_dir;
    config.connectors.listen = args.connector_listen;
    config.sql.listen = args.sql_listen;
    config.peers.listen = args.peer_listen;
    config.clusters = clusters;
    config.auth.server_admins = vec![me.clone()];
    config.auth.grants = vec![GrantEntry {
        user: Some(me.clone()),
        group: None,
        role: haven_auth::roles::Role::ClusterAdministrator,
        cluster: None,
        service_group: None,
    }];
    let data_dir = config.server.data_dir.clone();
    let server = haven_server::Server::start(config)?;
    let addr = server.listen().await?;
    let socket = server.listen_local().await?;
    tracing::info!(
        "haven server listening on https://{addr} (demo; data in {})",
        data_dir.display()
    );
    let base = format!("https://{addr}");
    let connector_port = server
        .connector_addr
        .get()
        .map(|a| a.to_string())
        .unwrap_or_default();
    for (cluster, engine) in relayed {
        let dir = data_dir.join("connectors").join(&cluster);
        let token = if dir.join("connector.json").exists() {
            None
        } else {
            let issued = server
                .create_join_token(Some(cluster.clone()), Duration::from_secs(600))
                .await
                .map_err(|e| anyhow::anyhow!("cannot make a join token: {e}"))?;
            Some(issued.token)
        };
        let options = haven_connector::relay::ConnectorOptions {
            server: connector_port.clone(),
            token,
            engine,
            engine_user: None,
            engine_password: None,
            data_dir: dir,
            spool_max_bytes: 64 << 20,
        };
        tokio::spawn(async move {
            if let Err(e) = haven_connector::relay::run(options).await {
                tracing::error!("demo connector stopped: {e:#}");
            }
        });
    }
    let example = server
        .fleet
        .names()
        .into_iter()
        .find(|n| n.starts_with("prod"))
        .map(|n| n.to_string())
        .unwrap_or_default();
    let auth = server
        .auth
        .as_ref()
        .context("the demo runs with logins on")?;
    let code = auth
        .links
        .issue(
            haven_auth::roles::Identity {
                groups: haven_auth::pam::os_groups(&me),
                user: me.clone(),
            },
            std::time::Instant::now(),
        )
        .context("cannot make a login link")?;
    let ca = data_dir.join("pki").join("ca.pem");
    // Absolute: a saved CLI context must work from any directory.
    let socket = std::fs::canonicalize(&socket).unwrap_or(socket);
    let sock = socket.display();
    let exe = std::env::current_exe()
        .ok()
        .map(|p| {
            let cwd = std::env::current_dir().unwrap_or_default();
            p.strip_prefix(&cwd).map(|r| r.to_path_buf()).unwrap_or(p)
        })
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "haven".into());
    let sql = server
        .sql_addr
        .get()
        .map(|a| {
            format!(
                "SQL (psql, JDBC, ODBC; read-only):\n    psql 'host={} port={} user={me} dbname=haven' -c 'SELECT * FROM group_states LIMIT 5'\n\n",
                a.ip(),
                a.port()
            )
        })
        .unwrap_or_default();
    println!(
        "\nHaven demo: a management server and {} simulated clusters with occasional faults\n\
         (the edge-* clusters come in through connectors, the others through direct connections).\n\n\
         The web console (this link logs you in as {me}, once, within {} minutes):\n    \
         {base}/login?code={code}\n  \
         The certificate is the demo's own CA, {}: accept the browser's warning,\n  \
         or import that file as a trusted authority.\n\n\
         The command line, on this machine (no password: the local socket knows who you are):\n    \
         {exe} login --socket {sock}\n    \
         {exe} status                 # the fleet\n    \
         {exe} faults                 # what needs attention\n    \
         {exe} status {example}        # groups x systems\n    \
         {exe} group switch {example}/web01 --wait\n    \
         {exe} watch                  # live events (Ctrl-C ends)\n\n\
         The REST API (OpenAPI at {base}/api/v1/openapi.json):\n    \
         curl -s --unix-socket {sock} http://haven/api/v1/summary\n    \
         curl -s --cacert {} -H 'content-type: application/json' \\\n      \
         -d '{{\"user\":\"{me}\",\"password\":\"...\"}}' {base}/api/v1/login\n\n\
         {sql}\
         The database: {} (haven db backup FILE --data-dir {} while it runs)\n\n\
         Ctrl-C stops the demo.",
        DEMO_FLEET.iter().map(|f| f.1).sum::<usize>(),
        auth.links.ttl().as_secs() / 60,
        ca.display(),
        ca.display(),
        server.config.database_path().display(),
        data_dir.display(),
    );
    stop_signal().await?;
    server.flush_history().await;
    for fleet in &fleets {
        fleet.shutdown().await;
    }
    Ok(())
}

/// The OS account this process runs as.
fn current_user() -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let uid = std::fs::metadata("/proc/self")
        .context("cannot read /proc/self")?
        .uid();
    haven_auth::pam::user_name(uid).with_context(|| format!("user id {uid} has no account name"))
}

async fn run_engine(args: EngineArgs) -> anyhow::Result<()> {
    let options = engine::EngineOptions {
        config_dir: args.config,
        listen: args.listen,
        simulate: args.simulate,
        sim_delay_ms: args.sim_delay,
        journal_capacity: args.journal,
        heartbeat: Duration::from_secs(args.heartbeat.max(1)),
        tls: args.tls_cert.zip(args.tls_key),
    };
    let running = engine::start(&options).await?;
    tracing::info!("{}", running.summary);
    stop_signal().await?;
    if args.leave_running {
        tracing::info!("stopping; groups are left as they are (--leave-running)");
    } else {
        tracing::info!("stopping; taking every group offline (at most 60 s)");
    }
    running
        .cluster
        .shutdown(args.leave_running, Duration::from_secs(60))
        .await;
    Ok(())
}

async fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    if args.clusters == 0 || args.systems == 0 {
        bail!("--clusters and --systems must be at least 1");
    }
    let options = sim::FleetOptions {
        clusters: args.clusters,
        systems: args.systems,
        groups: args.groups,
        resources: args.resources,
        fault_rate: args.fault_rate,
        delay_ms: args.delay,
        journal_capacity: args.journal,
        base_port: args.base_port,
        prefix: args.prefix,
        ..sim::FleetOptions::default()
    };
    tracing::info!(
        "starting {} simulated clusters ({} systems x {} groups x {} resources each)",
        options.clusters,
        options.systems,
        options.groups,
        options.resources
    );
    let fleet = sim::start_fleet(&options).await?;
    fleet.write_listing(&args.list)?;
    tracing::info!(
        "{} clusters ready in {:.2?}; cluster list in {}",
        fleet.clusters.len(),
        fleet.started_in,
        args.list.display()
    );
    fleet.spawn_chaos(options.fault_rate);
    stop_signal().await?;
    fleet.shutdown().await;
    Ok(())
}

fn run_config(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { dir } => {
            let config = haven_maincf::load_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            let resources: usize = config.groups.iter().map(|g| g.resources.len()).sum();
            println!(
                "{}/main.cf is valid: cluster {}, {} systems, {} groups, {resources} resources, {} types",
                dir.display(),
                config.name,
                config.systems.len(),
                config.groups.len(),
                config.types.len()
            );
            let real = haven_engine::agents::AgentSet::real();
            if let Err(problems) = real.validate(&config) {
                println!(
                    "note: to run with real agents (without --simulate):\n  {}",
                    problems.join("\n  ")
                );
            }
            Ok(())
        }
        ConfigCommand::Print { dir } => {
            let config = haven_maincf::load_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{}", haven_maincf::write_main_cf(&config));
            Ok(())
        }
    }
}

fn hash_password() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (echoed): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let pass = line.trim_end_matches(['\n', '\r']);
    if pass.is_empty() {
        bail!("empty password; type one, or pipe it in: echo -n SECRET | haven hash-password");
    }
    println!(
        "{}",
        password::hash(pass).context("cannot read the system's random source")?
    );
    Ok(())
}
