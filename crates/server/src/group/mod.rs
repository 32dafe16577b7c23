//! A clustered server: several `haven server` processes on one PostgreSQL
//! database, exactly one of them active (`[group]`, docs/clustered.md).
//!
//! PostgreSQL decides who is active (the lease and the fence are in
//! `haven_store`'s `postgres/group.rs`); this module runs a server's part:
//! - [`stand_by`] joins the group: shares the fleet CA through the
//!   database (so connectors and clients trust every server), binds the
//!   API and connector ports, and serves as a standby ([`standby`]: health,
//!   the group, role metrics; every other request forwarded to the active
//!   server; connectors turned away so they dial the next address) while
//!   its [`Member`] thread tries for the lease;
//! - [`Standby::activate`] makes it the active server once it won: the
//!   standby's ports close, every database connection of the process
//!   carries the term from then on, and the ordinary [`Server`] starts on
//!   the same ports (links resume from the stored cursors, connectors dial
//!   in and replay their spools, the unique key drops what was stored);
//! - [`Member::lost`] ends when the lease is lost (renewal refused or
//!   failed, or not renewed for a whole lease): the process then starts
//!   again as a standby (see `haven server`), keeping nothing in memory.
//!   Its writes in between are refused by the database's fence.

pub mod standby;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_store::{GroupLink, GroupServerRecord, GroupSession, Lead};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{Database, ServerConfig};
use crate::Server;

/// One server of the group, as the API and the console show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupServer {
    /// Its `[group] server_id`.
    pub id: String,
    /// Where people and tools reach it.
    pub api_url: String,
    /// Where connectors reach it.
    pub connector_address: String,
    /// `active`, `standby` or `stopped`.
    pub role: String,
    /// `up` (heard from within two lease periods), `silent` or `stopped`.
    pub health: String,
    /// How long ago it last said it was alive, in milliseconds.
    pub last_seen_ms_ago: i64,
    /// Haven's version.
    pub version: String,
    /// Its process id on its host.
    pub pid: i64,
    /// When it started.
    pub started_ms: i64,
}

/// The group as one server sees it (`GET /api/v1/servers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupView {
    /// Whether this server is one of a group (`[group] enabled`).
    pub clustered: bool,
    /// The server answering.
    pub me: String,
    /// Its role: `active` or `standby` (a server not in a group is
    /// `active`).
    pub role: String,
    /// The lease's term (0 outside a group, or before any server led).
    pub term: i64,
    /// The active server's id, when there is one.
    pub active: Option<String>,
    /// The active server's URL, when there is one.
    pub active_url: Option<String>,
    /// Every server of the group, by id.
    pub servers: Vec<GroupServer>,
    /// Why the database could not be read at the last try, if so.
    pub problem: Option<String>,
}

impl GroupView {
    /// The group's figures in Prometheus text: this server's role and
    /// how many servers are up (in every server's `/metrics`).
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP haven_server_active Whether this server is the active one (1) or a standby (0)."
        );
        let _ = writeln!(out, "# TYPE haven_server_active gauge");
        let _ = writeln!(
            out,
            "haven_server_active {}",
            u8::from(self.role == "active")
        );
        let _ = writeln!(out, "# HELP haven_server_role This server's role.");
        let _ = writeln!(out, "# TYPE haven_server_role gauge");
        for role in ["active", "standby"] {
            let _ = writeln!(
                out,
                "haven_server_role{{role=\"{role}\"}} {}",
                u8::from(self.role == role)
            );
        }
        let _ = writeln!(out, "# HELP haven_group_term The leadership lease's term.");
        let _ = writeln!(out, "# TYPE haven_group_term gauge");
        let _ = writeln!(out, "haven_group_term {}", self.term);
        if self.clustered {
            let _ = writeln!(
                out,
                "# HELP haven_group_servers Servers of the group by health."
            );
            let _ = writeln!(out, "# TYPE haven_group_servers gauge");
            for health in ["up", "silent", "stopped"] {
                let n = self.servers.iter().filter(|s| s.health == health).count();
                let _ = writeln!(out, "haven_group_servers{{health=\"{health}\"}} {n}");
            }
        }
        out
    }
}

/// What the member thread tells the process.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Standby,
    Active(i64),
    /// The lease is lost (why): the process must start again.
    Lost(String),
}

/// This server's membership of its group: a thread of its own with its
/// own database connection beats, tries for the lease or renews it.
pub struct Member {
    /// This server's id.
    pub id: String,
    me: GroupServerRecord,
    view: RwLock<GroupView>,
    role: watch::Sender<Role>,
    /// When the lease was last renewed (or won): the watchdog's clock.
    renewed: Mutex<Instant>,
    lease: Duration,
    /// Tells the thread to leave the group, and hears it has.
    leave: Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
}

impl Member {
    /// The group now.
    pub fn view(&self) -> GroupView {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every server's connector address, this one's first (what a
    /// connector is told to dial).
    pub fn connector_addresses(&self) -> Vec<String> {
        let mut all = vec![self.me.connector_address.clone()];
        for server in self.view().servers {
            if server.role != "stopped" && !all.contains(&server.connector_address) {
                all.push(server.connector_address);
            }
        }
        all
    }

    /// Ends when this server has won the lease, with its term (or with why
    /// it never will, if the member thread ended).
    pub async fn won(&self) -> Result<i64, String> {
        let mut rx = self.role.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Role::Active(term) => return Ok(*term),
                Role::Lost(why) => return Err(why.clone()),
                Role::Standby => {}
            }
            if rx.changed().await.is_err() {
                return Err("the group member thread ended".into());
            }
        }
    }

    /// Ends when the lease is lost: renewal refused or failed, or not
    /// renewed for a whole lease period (a thread stuck on the database).
    pub async fn lost(&self) -> String {
        let mut rx = self.role.subscribe();
        let mut check = tokio::time::interval(self.lease / 5);
        loop {
            if let Role::Lost(why) = &*rx.borrow_and_update() {
                return why.clone();
            }
            let since = self
                .renewed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed();
            if matches!(&*rx.borrow(), Role::Active(_)) && since > self.lease {
                return format!(
                    "the lease was not renewed for {} ms (the database does not answer)",
                    since.as_millis()
                );
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    return "the group member thread ended".into();
                },
                _ = check.tick() => {}
            }
        }
    }

    /// Leaves the group (on stop): marked stopped, and the lease (if held)
    /// let go at once, so a standby takes over without waiting for it to
    /// expire. Waits up to two seconds for the database.
    pub fn leave(&self) {
        let pair = self.leave.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((tell, done)) = pair {
            if tell.send(()).is_ok() {
                let _ = done.recv_timeout(Duration::from_secs(2));
            }
        }
    }

    fn set_view(&self, view: GroupView) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view;
    }
}

/// The view of a server that is not in a group: itself, active.
pub fn single_view(id: &str) -> GroupView {
    GroupView {
        clustered: false,
        me: id.into(),
        role: "active".into(),
        term: 0,
        active: Some(id.into()),
        active_url: None,
        servers: Vec::new(),
        problem: None,
    }
}

/// Starts the member thread of `me` on `url`.
fn start_member(url: String, me: GroupServerRecord, lease: Duration) -> Arc<Member> {
    let (role, _) = watch::channel(Role::Standby);
    let (leave_tx, leave_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let member = Arc::new(Member {
        id: me.id.clone(),
        view: RwLock::new(GroupView {
            clustered: true,
            me: me.id.clone(),
            role: "standby".into(),
            term: 0,
            active: None,
            active_url: None,
            servers: Vec::new(),
            problem: Some("not read yet".into()),
        }),
        me,
        role,
        renewed: Mutex::new(Instant::now()),
        lease,
        leave: Mutex::new(Some((leave_tx, done_rx))),
    });
    let thread_member = member.clone();
    std::thread::Builder::new()
        .name("haven-group".into())
        .spawn(move || {
            member_thread(&thread_member, &url, &leave_rx);
            let _ = done_tx.send(());
        })
        .expect("spawns the group thread");
    member
}

/// The member thread: beats every fifth of a lease; a standby tries for
/// the lease at each beat, the active server renews it.
fn member_thread(member: &Member, url: &str, leave: &std::sync::mpsc::Receiver<()>) {
    let ttl = member.lease.as_millis() as i64;
    let beat = (member.lease / 5).min(Duration::from_millis(500));
    let mut link: Option<GroupLink> = None;
    let mut term: Option<i64> = None;
    let mut complained = false;
    loop {
        let step = (|| -> anyhow::Result<()> {
            if link.as_ref().is_none_or(GroupLink::is_closed) {
                let mut fresh = GroupLink::connect(url, &member.id)?;
                let mut me = member.me.clone();
                me.role = if term.is_some() { "active" } else { "standby" }.into();
                fresh.register(&me)?;
                link = Some(fresh);
            }
            let conn = link.as_mut().expect("connected above");
            let lease = match term {
                Some(t) => {
                    match conn.renew(t, ttl) {
                        Ok(true) => {}
                        Ok(false) => anyhow::bail!("the lease of term {t} has passed to another server"),
                        Err(e) => anyhow::bail!("cannot renew the lease: {e}"),
                    }
                    *member.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                    conn.lease()?
                }
                None => match conn.try_lead(ttl)? {
                    Lead::Won(t) => {
                        *member.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                        term = Some(t);
                        tracing::info!("this server is now the active one of its group (term {t})");
                        member.role.send_replace(Role::Active(t));
                        conn.lease()?
                    }
                    Lead::Held { lease, ended } => {
                        if let (Some(n), Some(holder)) = (ended, &lease.holder) {
                            tracing::warn!(
                                "the active server {holder} has not renewed its lease for {} ms: ended its {n} database sessions to take over",
                                lease.now_ms - lease.expires_ms
                            );
                        }
                        conn.beat()?;
                        lease
                    }
                },
            };
            let servers = conn.servers()?;
            member.set_view(view_of(member, term, &servers, &lease));
            Ok(())
        })()
        .map_err(|e| e.to_string());
        match step {
            Ok(()) => complained = false,
            Err(why) if term.is_some() => {
                tracing::error!("this server is no longer the active one: {why}");
                member.role.send_replace(Role::Lost(why));
                return;
            }
            Err(why) => {
                if !complained {
                    tracing::warn!("the group's database: {why}; trying again");
                    complained = true;
                }
                link = None;
                let mut view = member.view();
                view.problem = Some(why);
                member.set_view(view);
            }
        }
        if leave.recv_timeout(beat).is_ok() {
            if let Some(conn) = link.as_mut() {
                if let Err(e) = conn.leave(term) {
                    tracing::warn!("could not tell the group this server stops: {e}");
                }
            }
            return;
        }
    }
}

fn view_of(
    member: &Member,
    term: Option<i64>,
    servers: &[GroupServerRecord],
    lease: &haven_store::LeaseRecord,
) -> GroupView {
    let silent_after = 2 * member.lease.as_millis() as i64;
    let live = lease.expires_ms >= lease.now_ms;
    let active = lease.holder.clone().filter(|_| live);
    GroupView {
        clustered: true,
        me: member.id.clone(),
        role: if term.is_some() { "active" } else { "standby" }.into(),
        term: lease.term,
        active_url: active
            .as_ref()
            .and_then(|id| servers.iter().find(|s| &s.id == id))
            .map(|s| s.api_url.clone()),
        active,
        servers: servers
            .iter()
            .map(|s| {
                let ago = (lease.now_ms - s.heartbeat_ms).max(0);
                GroupServer {
                    id: s.id.clone(),
                    api_url: s.api_url.clone(),
                    connector_address: s.connector_address.clone(),
                    role: s.role.clone(),
                    health: match (s.role.as_str(), ago > silent_after) {
                        ("stopped", _) => "stopped",
                        (_, true) => "silent",
                        (_, false) => "up",
                    }
                    .into(),
                    last_seen_ms_ago: ago,
                    version: s.version.clone(),
                    pid: s.pid,
                    started_ms: s.started_ms,
                }
            })
            .collect(),
        problem: None,
    }
}

/// A server of a group standing by: its ports bound and serving as a
/// standby, its member thread trying for the lease.
pub struct Standby {
    pub member: Arc<Member>,
    config: ServerConfig,
    /// The API's address.
    pub api_addr: SocketAddr,
    /// The connector port's address.
    pub connector_addr: SocketAddr,
    /// The API port's router, switched to the active server's.
    switch: standby::Switch,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Joins the group of `config` (`[group] enabled`) as a standby.
pub async fn stand_by(mut config: ServerConfig) -> anyhow::Result<Standby> {
    let database = config.database();
    config
        .group
        .check(&database)
        .map_err(|e| anyhow::anyhow!(e))?;
    let Database::Postgres(url) = database else {
        unreachable!("checked above: a group is on PostgreSQL")
    };
    std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.server.data_dir.display()
        )
    })?;
    let id = config.group.server_id();
    let pki = config.server.data_dir.join("pki");
    let names = crate::server_names(&config);
    {
        let (url, pki, names) = (url.clone(), pki.clone(), names.clone());
        let id = id.clone();
        tokio::task::spawn_blocking(move || share_ca(&url, &id, &pki, &names))
            .await
            .context("sharing the fleet CA")??;
    }
    let authority = haven_pki::Authority::load_or_create(&pki, &names)
        .context("cannot set up the server's certificate authority")?;
    let https = !config.server.insecure_plain_http;
    let api = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let api_addr = api.local_addr()?;
    let connectors = tokio::net::TcpListener::bind(&config.connectors.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for connectors on {}",
                config.connectors.listen
            )
        })?;
    let connector_addr = connectors.local_addr()?;
    // The active server binds these same ports again (port 0 resolved).
    config.server.listen = api_addr.to_string();
    config.connectors.listen = connector_addr.to_string();
    let host = advertised_host(api_addr);
    let me = GroupServerRecord {
        id: id.clone(),
        api_url: match config.group.api_url.as_str() {
            "" => format!(
                "{}://{}:{}",
                if https { "https" } else { "http" },
                host,
                api_addr.port()
            ),
            url => url.trim_end_matches('/').to_string(),
        },
        connector_address: match config.group.connector_address.as_str() {
            "" => format!("{host}:{}", connector_addr.port()),
            address => address.to_string(),
        },
        role: "standby".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        pid: i64::from(std::process::id()),
        started_ms: crate::now_ms(),
        heartbeat_ms: 0,
    };
    let member = start_member(url, me, Duration::from_millis(config.group.lease_ms));
    let tls = if https {
        Some(crate::https_config_of(&config, &authority).context("cannot set up HTTPS")?)
    } else {
        None
    };
    let forward_tls = haven_pki::client_config_for_ca(&authority.ca_pem())
        .context("cannot trust the fleet CA to forward to the active server")?;
    let local = config.server.data_dir.join("haven.sock");
    let (switch, tasks) =
        standby::serve(member.clone(), api, tls, forward_tls, connectors, &local).await?;
    Ok(Standby {
        member,
        config,
        api_addr,
        connector_addr,
        switch,
        tasks,
    })
}

impl Standby {
    /// The configuration, with the ports as bound.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Becomes the active server of `term`: the server starts, the API port
    /// switches to it, the standby's connector port and local socket close
    /// and the server's open on them; returns it and the API's address.
    pub async fn activate(self, term: i64) -> anyhow::Result<(Arc<Server>, SocketAddr)> {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        haven_store::set_process_session(GroupSession {
            server_id: self.member.id.clone(),
            term,
        })?;
        let config = self.config;
        let server = tokio::task::spawn_blocking(move || Server::start(config))
            .await
            .context("starting the server")??;
        let _ = server.group.set(self.member);
        *self.switch.write().unwrap_or_else(|p| p.into_inner()) =
            crate::api::router(server.clone());
        server.listen_ports().await?;
        Ok((server, self.api_addr))
    }
}

/// The host others reach this server by: the listen address when it
/// names one, else this host's name.
fn advertised_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        crate::tls::host_name().unwrap_or_else(|| "localhost".into())
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    }
}

/// The name under which the group keeps the fleet CA: certificate and
/// key in one value (JSON), so two servers starting at once cannot store
/// halves of two CAs.
const FLEET_CA: &str = "fleet_ca";

/// Makes this server's fleet CA the group's: the first server stores its
/// own (made now if it has none), the others take it into their
/// `DATA_DIR/pki` (their server certificate is then issued from it). A
/// server that already had another CA is refused: connectors and clients
/// trust that one, and swapping it would cut them off.
fn share_ca(url: &str, id: &str, pki: &std::path::Path, names: &[String]) -> anyhow::Result<()> {
    use haven_pki::Authority;
    let mut link = GroupLink::connect(url, id)?;
    let had = Authority::ca_files(pki)?.is_some();
    let shared = match link.shared(FLEET_CA)? {
        Some(shared) => shared,
        None => {
            Authority::load_or_create(pki, names)
                .context("cannot set up the server's certificate authority")?;
            let (cert, key) = Authority::ca_files(pki)?
                .with_context(|| format!("the fleet CA in {} cannot be read", pki.display()))?;
            link.share(
                FLEET_CA,
                &serde_json::json!({ "cert": cert, "key": key }).to_string(),
            )?
        }
    };
    let ca: serde_json::Value = serde_json::from_str(&shared)
        .with_context(|| format!("the group's {FLEET_CA} in the database is damaged"))?;
    let (Some(cert), Some(key)) = (ca["cert"].as_str(), ca["key"].as_str()) else {
        anyhow::bail!("the group's {FLEET_CA} in the database lacks its certificate or key");
    };
    match Authority::ca_files(pki)? {
        Some((mine, _)) if mine == cert => {
            tracing::info!("this server's fleet CA is the group's");
            Ok(())
        }
        Some(_) if had => anyhow::bail!(refusal(pki)),
        // None, or one made just now while another server stored the
        // group's: trusted by nobody yet, so replaced.
        _ => {
            Authority::install_ca(pki, cert, key)?;
            tracing::info!("took the group's fleet CA into {}", pki.display());
            Ok(())
        }
    }
}

fn refusal(pki: &std::path::Path) -> String {
    format!(
        "this server's fleet CA ({}) is not the group's: every server of a group shares one, which the first stored in the database; move {} aside to take the group's (connectors and clients that trusted this one must then join and log in again)",
        pki.join("ca.pem").display(),
        pki.display()
    )
}

impl Server {
    /// The group this server belongs to, as it stands.
    pub fn group_view(&self) -> GroupView {
        match self.group.get() {
            Some(member) => member.view(),
            None => single_view(&self.config.group.server_id()),
        }
    }

    /// Every group server's connector address (empty outside a group).
    pub fn connector_addresses(&self) -> Vec<String> {
        self.group
            .get()
            .map(|m| m.connector_addresses())
            .unwrap_or_default()
    }
}
