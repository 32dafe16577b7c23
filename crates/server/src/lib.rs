//! The management server: one process that watches and operates many
//! clusters.
//!
//! Code map:
//! - [`config`]: `haven.toml`, every key with its default.
//! - [`link`]: direct connections to engines (dial, sync, follow, relay
//!   operations, reconnect with backoff).
//! - [`fleet`]: the in-memory state of every cluster and its indexes.
//! - [`writer`]: the history writer thread (batched, exactly once).
//! - [`ops`]: the one path every operation takes (validate, audit,
//!   forward, wait).
//! - [`peers`]: pairing with another site's server, following its fleet
//!   and history, forwarding operations to it.
//! - [`sql`]: the read-only SQL port (PostgreSQL protocol, `haven-sqlport`)
//!   on top of the server's logins, sight and fleet.
//! - [`api`]: REST under `/api/v1`, the live event stream, `/metrics`;
//!   [`openapi`] generates the API's OpenAPI document from the same types.
//!
//! Data flows one way: engine → link → fleet (→ live subscribers) and
//! → writer → database. Operations flow back through [`ops`] → link →
//! engine.

pub mod access;
pub mod admin;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod config;
pub mod connectors;
pub mod console;
pub mod fleet;
pub mod group;
pub mod link;
pub mod maintenance;
pub mod openapi;
pub mod ops;
pub mod peers;
pub mod reports;
pub mod search;
pub mod sql;
pub mod tags;
pub mod timeline;
pub mod tls;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use haven_model::Name;
use haven_store::{ClusterRecord, PgStore, SqliteStore, Store, StoreError};

use crate::config::{ClusterEntry, Database, ServerConfig};
use crate::fleet::Fleet;
use crate::link::{LinkContext, LinkHandle, Target};
use crate::writer::{HistorySink, WriteMsg, WriterMetrics};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why a cluster could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("cluster {0} is already managed")]
    Exists(String),
    #[error("no cluster named {0}")]
    Unknown(String),
    #[error("invalid cluster: {0}")]
    Invalid(String),
    #[error("database: {0}")]
    Store(String),
}

/// The running server's shared state.
pub struct Server {
    pub config: ServerConfig,
    pub fleet: Arc<Fleet>,
    pub history: HistorySink,
    pub metrics: Arc<WriterMetrics>,
    links: Mutex<HashMap<Name, LinkHandle>>,
    link_context: LinkContext,
    /// Where the database is (SQLite or PostgreSQL), as resolved at start.
    pub database: Database,
    /// A second connection, for reads (on SQLite, WAL lets it read while
    /// the writer writes).
    reader: Mutex<Box<dyn Store>>,
    /// On PostgreSQL, the connection for configuration changes (see
    /// [`Server::write_store`]); on SQLite each change opens its own.
    changes: Option<Arc<Mutex<Box<dyn Store>>>>,
    started_ms: i64,
    /// The fleet CA and this server's TLS identity (for connectors).
    pub authority: haven_pki::Authority,
    /// What the history writer has committed, per cluster.
    pub stored: writer::StoredCursors,
    /// Where connectors reach this server, once listening.
    pub connector_addr: OnceLock<SocketAddr>,
    /// Where the read-only SQL port listens, once listening.
    pub sql_addr: OnceLock<SocketAddr>,
    /// Logins and roles, when `[auth] enabled`.
    pub auth: Option<auth::Auth>,
    /// One backup or prune at a time.
    maintenance: maintenance::Busy,
    /// The alert task (`None` with `[alerts] enabled = false`).
    pub alerts: Option<alerts::Alerts>,
    /// Paired sites and the peer port (see [`peers`]).
    pub peers: peers::Peers,
    /// This server's group, when it is one of a clustered server's
    /// (see [`group`]).
    pub group: OnceLock<Arc<group::Member>>,
    /// Tag changes, one at a time (see [`tags`]).
    tag_changes: tokio::sync::Mutex<()>,
    /// Held while the server runs: one server per data directory, and
    /// `haven db restore` knows to wait.
    _lock: std::fs::File,
}

impl Server {
    /// Opens the database, starts the writer and a link per known cluster.
    pub fn start(config: ServerConfig) -> anyhow::Result<Arc<Server>> {
        std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.server.data_dir.display()
            )
        })?;
        config
            .alerts
            .check()
            .map_err(|e| anyhow::anyhow!("[alerts]: {e}"))?;
        config
            .reports
            .check(&config.alerts)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let lock = lock_data_dir(&config.server.data_dir)?;
        let database = config.database();
        // Connections to PostgreSQL must not be made (nor used) on a
        // thread that drives async tasks, which this may be.
        let opened = off_async(|| -> anyhow::Result<_> {
            let mut store = open_store(&database)?;
            for entry in &config.clusters {
                store.upsert_cluster(&record(entry))?;
            }
            let known = store.list_clusters()?;
            let cursors = store.cursors()?;
            let tags = store.tags(None)?;
            // Stored grants matter only with logins on.
            let grants = match config.auth.enabled {
                true => store.grants()?,
                false => Vec::new(),
            };
            let alerts = match config.alerts.enabled {
                true => Some(alerts::load(store.as_ref(), &config.alerts)?),
                false => None,
            };
            let peers = store.peers()?;
            let reader = open_store(&database)?;
            let changes = match database {
                Database::Sqlite(_) => None,
                Database::Postgres(_) => Some(Arc::new(Mutex::new(open_store(&database)?))),
            };
            Ok((
                store, known, cursors, tags, grants, alerts, peers, reader, changes,
            ))
        });
        let (store, known, cursors, tags, grants, loaded_alerts, peer_records, reader, changes) =
            opened?;
        tracing::info!("database: {database}");
        let authority = haven_pki::Authority::load_or_create(
            &config.server.data_dir.join("pki"),
            &server_names(&config),
        )
        .context("cannot set up the server's certificate authority")?;
        let peers = peers::Peers::new(config.peers.site_name(), &authority, &peer_records)?;
        let auth = if config.auth.enabled {
            let auth = auth::Auth::new(&config.auth).map_err(|e| anyhow::anyhow!("[auth]: {e}"))?;
            let stored = stored_grants(&grants);
            auth.set_policy(
                config
                    .auth
                    .policy_with(&stored)
                    .map_err(|e| anyhow::anyhow!("grants in the database: {e}"))?,
            );
            Some(auth)
        } else {
            None
        };
        let metrics = Arc::new(WriterMetrics::default());
        let stored = writer::StoredCursors::default();
        let (history, _thread) = writer::spawn(
            store,
            config.history.queue_capacity,
            config.history.batch_max,
            Duration::from_millis(config.history.flush_interval_ms.max(1)),
            metrics.clone(),
            stored.clone(),
        );
        let fleet = Arc::new(Fleet::new());
        fleet.load_tags(&tags);
        let link_context = LinkContext {
            fleet: fleet.clone(),
            history: history.clone(),
            settings: config.links.clone(),
            engine_tls: haven_pki::client_config_for_ca(&authority.ca_pem())
                .context("cannot trust the fleet CA for engine links")?,
        };
        // Subscribed before any link starts: the alerts see every update.
        let alerts = loaded_alerts.map(|loaded| {
            alerts::spawn(
                &config.alerts,
                fleet.clone(),
                fleet.subscribe(),
                history.clone(),
                loaded,
            )
        });
        let server = Arc::new(Server {
            config,
            fleet,
            history,
            metrics,
            links: Mutex::new(HashMap::new()),
            link_context,
            database,
            reader: Mutex::new(reader),
            changes,
            started_ms: now_ms(),
            authority,
            stored,
            connector_addr: OnceLock::new(),
            sql_addr: OnceLock::new(),
            auth,
            maintenance: maintenance::Busy::default(),
            alerts,
            peers,
            group: OnceLock::new(),
            tag_changes: tokio::sync::Mutex::new(()),
            _lock: lock,
        });
        for rec in known {
            let cursor = cursors.get(&rec.name).copied();
            if rec.address == connectors::CONNECTOR_ADDRESS {
                // Served by a connector: shown as waiting until it dials in.
                server.fleet.add(
                    &Name::from(rec.name.as_str()),
                    fleet::LinkStatus {
                        state: fleet::LinkState::Disconnected,
                        since_ms: now_ms(),
                        mode: "connector".into(),
                        address: "connector".into(),
                        last_error: Some("waiting for the connector to dial in".into()),
                        failures: 0,
                        epoch: cursor.map(|c| c.epoch),
                        seq: cursor.map_or(0, |c| c.seq),
                        connector_version: None,
                        backlog_events: None,
                        backlog_bytes: None,
                    },
                );
            } else {
                server.start_link(&rec, cursor);
            }
        }
        server.start_peers();
        Ok(server)
    }

    /// Makes `handle` the link of `cluster`, replacing (and stopping) any
    /// previous one.
    pub fn register_link(&self, cluster: &Name, handle: LinkHandle) {
        self.links_guard().insert(cluster.clone(), handle);
    }

    /// Removes the link of `cluster` if it is still the one `sender` feeds.
    pub fn unregister_link(&self, cluster: &Name, sender: &link::LinkSender) {
        let mut links = self.links_guard();
        if links.get(cluster).is_some_and(|h| h.sender().same(sender)) {
            links.remove(cluster);
        }
    }

    fn start_link(&self, rec: &ClusterRecord, cursor: Option<haven_store::Cursor>) {
        let target = Target {
            name: Name::from(rec.name.as_str()),
            address: rec.address.clone(),
            user: rec.user.clone(),
            password: rec.password.clone(),
        };
        let handle = link::spawn(target.clone(), cursor, self.link_context.clone());
        self.links_guard().insert(target.name, handle);
    }

    fn links_guard(&self) -> std::sync::MutexGuard<'_, HashMap<Name, LinkHandle>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a read on the database off the async threads.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&DynStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let store = me.reader.lock().unwrap_or_else(|p| p.into_inner());
            f(store.as_ref()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Adds a cluster reached by a direct connection, persists it and
    /// starts its link.
    pub async fn add_cluster(self: &Arc<Self>, entry: ClusterEntry) -> Result<(), ManageError> {
        validate_entry(&entry)?;
        if self.fleet.contains(&entry.name) {
            return Err(ManageError::Exists(entry.name));
        }
        let rec = record(&entry);
        let saved = rec.clone();
        self.write_store(move |store| store.upsert_cluster(&saved))
            .await
            .map_err(ManageError::Store)?;
        let cursor = self
            .read({
                let name = rec.name.clone();
                move |s| s.cursors().map(|c| c.get(&name).copied())
            })
            .await
            .map_err(ManageError::Store)?;
        self.start_link(&rec, cursor);
        Ok(())
    }

    /// Stops managing a cluster (its history stays).
    pub async fn remove_cluster(self: &Arc<Self>, name: &str) -> Result<(), ManageError> {
        let handle = self.links_guard().remove(name);
        let Some(handle) = handle else {
            return Err(ManageError::Unknown(name.to_string()));
        };
        handle.stop();
        self.fleet.remove(name);
        let owned = name.to_string();
        // Its tags go with it: a cluster added again under the name starts
        // without them.
        self.write_store(move |store| {
            store.remove_cluster(&owned)?;
            store.remove_cluster_tags(&owned).map(|_| ())
        })
        .await
        .map_err(ManageError::Store)
    }

    /// Configuration changes go through their own connection, not the
    /// writer's: they are rare, and must not wait behind a history batch.
    /// On SQLite each opens a short-lived one; on PostgreSQL they share
    /// one kept open (a new one would cost a login and a schema check).
    pub async fn write_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DynStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let database = self.database.clone();
        let shared = self.changes.clone();
        tokio::task::spawn_blocking(move || match shared {
            Some(store) => {
                let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                f(store.as_mut()).map_err(|e| e.to_string())
            }
            None => {
                let mut store = open_store(&database).map_err(|e| e.to_string())?;
                f(store.as_mut()).map_err(|e| e.to_string())
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The link of a cluster, to forward an operation.
    pub fn with_link<T>(&self, name: &str, f: impl FnOnce(&LinkHandle) -> T) -> Option<T> {
        self.links_guard().get(name).map(f)
    }

    /// Waits until everything queued for the database is written.
    pub async fn flush_history(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.history.send(WriteMsg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// Serves the API on `DATA_DIR/haven.sock` too, for local tools: a
    /// caller there is the OS user the kernel says it is (peer
    /// credentials), with no password. Returns the socket's path.
    pub async fn listen_local(self: &Arc<Self>) -> anyhow::Result<std::path::PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.config.server.data_dir.join("haven.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("cannot listen on {}", path.display()))?;
        // Anyone local may connect; who they are is what the kernel says.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        let app = api::router(self.clone()).into_make_service_with_connect_info::<api::LocalPeer>();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the local socket stopped: {e}");
            }
        });
        Ok(path)
    }

    /// The TLS configuration of the API: the operator's own certificate
    /// if `[tls]` names one, else the fleet CA's server certificate.
    pub fn https_config(&self) -> anyhow::Result<Arc<tokio_rustls::rustls::ServerConfig>> {
        https_config_of(&self.config, &self.authority)
    }

    /// Whether the API serves HTTPS (everything but development setups).
    pub fn https(&self) -> bool {
        !self.config.server.insecure_plain_http
    }

    /// Binds the configured address and serves the API (HTTPS unless
    /// `insecure_plain_http`) and the connector port in the background;
    /// returns the API's address.
    ///
    /// Without TLS or without logins the API would be open to anyone who
    /// can reach it, so either is allowed on loopback addresses only.
    pub async fn listen(self: &Arc<Self>) -> anyhow::Result<SocketAddr> {
        let listen = &self.config.server.listen;
        self.refuse_beyond_loopback(listen).await?;
        let tls = if self.https() {
            Some(self.https_config().context("cannot set up HTTPS")?)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!("cannot listen on {listen} (in use? set [server] listen in haven.toml)")
            })?;
        let addr = listener.local_addr()?;
        tokio::spawn(tls::serve_api(
            listener,
            tls,
            api::router(self.clone()),
            "the API server",
        ));
        self.listen_ports().await?;
        Ok(addr)
    }

    /// Starts the background work and every port but the API's: the
    /// connector port, the peer port, the SQL port (for [`Server::listen`],
    /// and for a group's active server, whose API port the standby
    /// already serves).
    pub async fn listen_ports(self: &Arc<Self>) -> anyhow::Result<()> {
        self.spawn_maintenance();
        self.spawn_report_schedules();
        let connector_listen = &self.config.connectors.listen;
        let connectors = tokio::net::TcpListener::bind(connector_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for connectors on {connector_listen} (set [connectors] listen)"
                )
            })?;
        let _ = self.connector_addr.set(connectors.local_addr()?);
        tokio::spawn(self.clone().serve_connectors(connectors));
        // Like the SQL port: a peer port that cannot listen does not stop
        // the server from managing its own clusters.
        let peers_listen = &self.config.peers.listen;
        match tokio::net::TcpListener::bind(peers_listen).await {
            Ok(listener) => {
                let _ = self.peers.addr.set(listener.local_addr()?);
                tokio::spawn(self.clone().serve_peers(listener));
            }
            Err(e) => tracing::error!(
                "the peer port is off: cannot listen on {peers_listen}: {e} (set [peers] listen)"
            ),
        }
        // A read-only reporting port that cannot listen does not stop the
        // server from managing clusters; it says so loudly.
        match self.listen_sql().await {
            Ok(Some(sql)) => {
                let _ = self.sql_addr.set(sql);
                tracing::info!("haven sql port listening on {sql}")
            }
            Ok(None) => {}
            Err(e) => tracing::error!("the SQL port is off: {e:#}"),
        }
        Ok(())
    }

    /// Refuses a listen address beyond loopback when whoever reaches it
    /// would be unchecked (logins off) or talk in clear (no TLS): that is
    /// for development on a loopback address only.
    pub async fn refuse_beyond_loopback(&self, listen: &str) -> anyhow::Result<()> {
        let candidates = tokio::net::lookup_host(listen)
            .await
            .with_context(|| format!("cannot resolve the listen address {listen}"))?;
        let unsafe_mode = if !self.https() {
            Some("plain HTTP (insecure_plain_http)")
        } else if self.auth.is_none() {
            Some("logins off ([auth] enabled = false)")
        } else {
            None
        };
        if let Some(mode) = unsafe_mode {
            for candidate in candidates {
                if !candidate.ip().is_loopback() {
                    anyhow::bail!(
                        "refusing to listen on {listen} with {mode}: that is for development on a loopback address only (127.0.0.1:PORT or [::1]:PORT)"
                    );
                }
            }
        }
        Ok(())
    }
}

/// The TLS configuration of the API of `config`: the operator's own
/// certificate if `[tls]` names one, else the fleet CA's server
/// certificate.
pub fn https_config_of(
    config: &ServerConfig,
    authority: &haven_pki::Authority,
) -> anyhow::Result<Arc<tokio_rustls::rustls::ServerConfig>> {
    let tls = &config.tls;
    match (
        tls.certificate.as_os_str().is_empty(),
        tls.private_key.as_os_str().is_empty(),
    ) {
        (true, true) => Ok(authority.server_config()?),
        (false, false) => Ok(haven_pki::server_config_from_files(
            &tls.certificate,
            &tls.private_key,
        )?),
        _ => anyhow::bail!("[tls]: give both `certificate` and `private_key`, or neither"),
    }
}

/// The names in the server certificate: `[tls] names` and this host's.
pub fn server_names(config: &ServerConfig) -> Vec<String> {
    let mut names = config.tls.names.clone();
    names.extend(tls::host_name().filter(|h| !names.contains(h)));
    names
}

/// A store of either backend, as the server's callbacks receive it.
pub type DynStore = dyn Store;

/// Opens (and migrates) the database. On PostgreSQL call it, and use the
/// store, off the async threads (a plain thread or `spawn_blocking`).
pub fn open_store(database: &Database) -> Result<Box<dyn Store>, StoreError> {
    Ok(match database {
        Database::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        Database::Postgres(url) => Box::new(PgStore::connect(url)?),
    })
}

/// Runs `f` on a plain thread of its own and waits for it: blocking
/// database clients (PostgreSQL's) refuse to run on a thread that drives
/// async tasks, and [`Server::start`] may be called from one.
fn off_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The file a running server holds locked in its data directory.
pub const LOCK_FILE: &str = "server.lock";

/// Takes the data directory's lock (and writes this process's id in it),
/// or says which process has it.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::Write;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock().is_err() {
        let pid = std::fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "another haven server (pid {}) is using the data directory {}: stop it first, or give this one its own data_dir",
            pid.trim(),
            dir.display()
        );
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Whether a server holds the data directory (for tools that must not run
/// beside one, such as restore).
pub fn data_dir_in_use(dir: &std::path::Path) -> Option<String> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(_) => Some(
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    }
}

/// Grants made through the API, as `[[auth.grant]]` entries (a row this
/// build cannot read is skipped, loudly, rather than stopping the server).
pub fn stored_grants(rows: &[haven_store::GrantRecord]) -> Vec<config::GrantEntry> {
    rows.iter()
        .filter_map(|r| {
            let role = haven_auth::roles::Role::parse(&r.role);
            match role {
                Ok(role) => Some(config::GrantEntry {
                    user: (r.principal_kind == "user").then(|| r.principal.clone()),
                    group: (r.principal_kind == "group").then(|| r.principal.clone()),
                    role,
                    cluster: r.cluster.clone(),
                    service_group: r.service_group.clone(),
                }),
                Err(e) => {
                    tracing::error!(id = r.id, "ignoring a stored grant: {e}");
                    None
                }
            }
        })
        .collect()
}

fn record(entry: &ClusterEntry) -> ClusterRecord {
    ClusterRecord {
        name: entry.name.clone(),
        address: entry.address.clone(),
        user: entry.user.clone(),
        password: entry.password.clone(),
        added_ms: now_ms(),
    }
}

/// Whether `name` may name a managed cluster: letters, digits, `_`, `-`
/// and `.` (never `:`, which names a paired site's cluster, SITE:CLUSTER).
pub fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn validate_entry(entry: &ClusterEntry) -> Result<(), ManageError> {
    if !valid_cluster_name(&entry.name) {
        return Err(ManageError::Invalid(format!(
            "name `{}`: use letters, digits, `_`, `-` and `.`",
            entry.name
        )));
    }
    let at = haven_protocol::transport::Address::parse(&entry.address);
    if at
        .host_port
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(ManageError::Invalid(format!(
            "address `{}`: expected HOST:PORT (plain TCP, e.g. 127.0.0.1:14141) or \
             tls://HOST:PORT (an engine started with --tls-cert)",
            entry.address
        )));
    }
    Ok(())
}
