//! The connector program: joins the server once with a token, then runs two
//! loops for ever —
//!
//! - the **engine side** follows the cluster's engine (snapshot, events
//!   resumed after the last spooled one), keeps a live copy of the cluster
//!   state, appends every event to the durable spool, and runs the
//!   operations the server relays;
//! - the **server side** dials the server over TLS (pinned to the server's
//!   CA), says hello, sends the current snapshot and every spooled event
//!   the server has not stored, drops from the spool what the server
//!   acknowledges, and reports its backlog.
//!
//! Either side reconnects with exponential backoff and jitter; neither
//! waits for the other, so the spool fills while the server is away and
//! drains when it is back. When the spool is full, the connector records a
//! gap (with its time range) and keeps going from the live state, rather
//! than dropping events silently.
//!
//! What the connector keeps in its data directory from its join:
//! `connector.json` (server, cluster, connector id, secret, the server's CA;
//! mode 0600) and, from a server that issues them, its client certificate
//! `connector.pem` with the key `connector.key` (both mode 0600). The
//! certificate names the cluster and is presented at every TLS handshake;
//! the secret goes in every hello. A connector without the two files (it
//! joined a server older than connector certificates, or they were removed)
//! still connects on its secret alone; one whose certificate has expired
//! stops presenting it, with a warning, since the server would refuse the
//! handshake (renewal is not built: join again with a new token).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::{ClusterSnapshot, CommandResult, Event, Operation};
use haven_protocol::connector::{
    ConnectorError, ConnectorMsg, JoinToken, Position, ServerMsg, CONNECTOR_VERSIONS,
};
use haven_protocol::{follow, ClientMsg, EngineMsg, FrameCodec, MAX_ENGINE_FRAME};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::codec::Framed;

use crate::spool::{Appended, Spool};

/// What `haven connector` was asked to do.
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    /// The server's connector port, HOST:PORT.
    pub server: String,
    /// A one-time join token (needed only the first time).
    pub token: Option<String>,
    /// The engine's socket, HOST:PORT.
    pub engine: String,
    pub engine_user: Option<String>,
    pub engine_password: Option<String>,
    /// Where the credentials and the spool live.
    pub data_dir: PathBuf,
    /// Most bytes the spool may hold before a gap is recorded.
    pub spool_max_bytes: u64,
}

/// What the connector keeps between runs (`connector.json`, mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credentials {
    server: String,
    cluster: String,
    connector_id: String,
    secret: String,
    ca_pem: String,
    /// Every server of a clustered server's group, as the last one said
    /// (their connector ports): dialled in turn when one does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    servers: Vec<String>,
}

impl Credentials {
    /// Where to dial, in order: the group as last told, else the server
    /// joined.
    fn addresses(&self) -> Vec<String> {
        let mut all = self.servers.clone();
        if !all.contains(&self.server) {
            all.push(self.server.clone());
        }
        all
    }
}

/// A gap waiting to be reported (`gap.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingGap {
    after: Option<Position>,
    resumed: Position,
    reason: String,
}

/// The connector's client certificate and its private key, PEM, as the server issued them.
#[derive(Clone)]
struct Certificate {
    cert_pem: String,
    key_pem: String,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");
const CERT_FILE: &str = "connector.pem";
const KEY_FILE: &str = "connector.key";
/// A certificate this close to expiry is warned about at start.
const WARN_BEFORE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The host of `HOST:PORT` (an IPv6 address without its brackets).
fn host_of(address: &str) -> &str {
    haven_protocol::transport::Address::parse(address).host
}

/// Shared between the two sides.
struct Shared {
    spool: Mutex<Spool>,
    /// The engine run and live state, once synced.
    live: Mutex<Option<(u64, ClusterSnapshot)>>,
    /// Bumped whenever `live` is replaced (a new sync), so the server side
    /// knows to send the server a fresh snapshot.
    live_version: std::sync::atomic::AtomicU64,
    /// Wakes the server side when the spool grew.
    grew: Notify,
    engine_connected: std::sync::atomic::AtomicBool,
    /// Operations from the server, to the engine side.
    commands: mpsc::Sender<(Operation, oneshot::Sender<Result<CommandResult, String>>)>,
    gap_file: PathBuf,
    /// `connector.json`, rewritten when the group of servers changes.
    creds_file: PathBuf,
}

impl Shared {
    /// Replaces the live state after a (re)sync.
    fn set_live(&self, epoch: u64, snapshot: ClusterSnapshot) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some((epoch, snapshot));
        self.live_version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.grew.notify_one();
    }

    fn spool<T>(&self, f: impl FnOnce(&mut Spool) -> T) -> T {
        let mut spool = self.spool.lock().unwrap_or_else(|p| p.into_inner());
        tokio::task::block_in_place(|| f(&mut spool))
    }

    fn pending_gap(&self) -> Option<PendingGap> {
        std::fs::read_to_string(&self.gap_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }
}

/// Runs the connector until the process is stopped. Returns early only
/// for errors a retry cannot fix (bad token, no credentials).
pub async fn run(options: ConnectorOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir)?;
    let creds_path = options.data_dir.join("connector.json");
    let creds = match std::fs::read_to_string(&creds_path) {
        Ok(text) => {
            if options.token.is_some() {
                tracing::info!(
                    "already joined (credentials in {}); the token is not needed",
                    creds_path.display()
                );
            }
            serde_json::from_str::<Credentials>(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is damaged ({e}); remove it and join again with a new token",
                    creds_path.display()
                )
            })?
        }
        Err(_) => {
            let Some(token) = &options.token else {
                anyhow::bail!(
                    "this connector has not joined a server yet: create a token on the server (POST /api/v1/tokens) and pass it with --token"
                );
            };
            let (creds, certificate) = join(&options, token).await?;
            // The certificate first: connector.json is what says "joined", so
            // a crash in between leaves a connector that has not joined.
            if let Some(cert) = &certificate {
                write_private(&options.data_dir.join(CERT_FILE), &cert.cert_pem)?;
                write_private(&options.data_dir.join(KEY_FILE), &cert.key_pem)?;
            }
            write_private(&creds_path, &serde_json::to_string_pretty(&creds)?)?;
            tracing::info!(
                "joined the server at {} as connector {} for cluster {}",
                creds.server,
                creds.connector_id,
                creds.cluster
            );
            creds
        }
    };
    let tls = server_tls(&options.data_dir, &creds)?;
    let spool = Spool::open(&options.data_dir.join("spool"), options.spool_max_bytes)?;
    let (commands, command_rx) = mpsc::channel(256);
    let shared = Arc::new(Shared {
        spool: Mutex::new(spool),
        live: Mutex::new(None),
        live_version: Default::default(),
        grew: Notify::new(),
        engine_connected: Default::default(),
        commands,
        gap_file: options.data_dir.join("gap.json"),
        creds_file: creds_path.clone(),
    });
    let engine_side = tokio::spawn(engine_side(
        options.clone(),
        creds.cluster.clone(),
        shared.clone(),
        command_rx,
    ));
    let server_side = tokio::spawn(server_side(creds, tls, shared));
    tokio::select! {
        r = engine_side => r?,
        r = server_side => r?,
    }
}

/// The certificate and key kept from the join, if both files are there.
/// A damaged pair is an error; a missing one is not (see the module doc).
fn load_certificate(dir: &Path) -> anyhow::Result<Option<Certificate>> {
    let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read {}: {e}",
            dir.join(name).display()
        )),
    };
    match (read(CERT_FILE)?, read(KEY_FILE)?) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(Certificate { cert_pem, key_pem })),
        (None, None) => Ok(None),
        (cert, _) => {
            let (has, lacks) = if cert.is_some() {
                (CERT_FILE, KEY_FILE)
            } else {
                (KEY_FILE, CERT_FILE)
            };
            tracing::warn!(
                "{} is there but {lacks} is not; going on without a certificate, on the secret alone (join again with a new token to get a new pair)",
                dir.join(has).display()
            );
            Ok(None)
        }
    }
}

/// The TLS config for every session with the server: trusting the CA
/// learned at join, and presenting the connector's certificate if it has a
/// usable one.
fn server_tls(dir: &Path, creds: &Credentials) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let Some(cert) = load_certificate(dir)? else {
        tracing::info!(
            "no connector certificate in {} (this connector joined before the server issued them); connecting with the secret alone",
            dir.display()
        );
        return Ok(haven_pki::client_config_for_ca(&creds.ca_pem)?);
    };
    let now = std::time::SystemTime::now();
    match haven_pki::certificate_expiry(&cert.cert_pem) {
        Some(expiry) if expiry <= now => {
            tracing::warn!(
                "the connector certificate {} has expired; connecting with the secret alone (join again with a new token to get a new one)",
                dir.join(CERT_FILE).display()
            );
            return Ok(haven_pki::client_config_for_ca(&creds.ca_pem)?);
        }
        Some(expiry) if expiry <= now + WARN_BEFORE_EXPIRY => {
            let days = expiry.duration_since(now).unwrap_or_default().as_secs() / 86_400;
            tracing::warn!(
                "the connector certificate {} expires in {days} days; join again with a new token before then",
                dir.join(CERT_FILE).display()
            );
        }
        _ => {}
    }
    haven_pki::client_config_for_ca_with_cert(&creds.ca_pem, &cert.cert_pem, &cert.key_pem).map_err(
        |e| {
            anyhow::anyhow!(
                "{e} (in {} and {}; remove both to go on with the secret alone)",
                dir.join(CERT_FILE).display(),
                dir.join(KEY_FILE).display()
            )
        },
    )
}

fn engine_credentials(options: &ConnectorOptions) -> follow::Credentials {
    follow::Credentials {
        client: format!("haven-connector {VERSION}"),
        user: options.engine_user.clone(),
        password: options.engine_password.clone(),
        // The engine beside the connector is reached on its own host, in
        // plain TCP (a tls:// engine address is refused with the reason).
        tls: None,
    }
}

async fn tls_connect(
    server: &str,
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<
    Framed<tokio_rustls::client::TlsStream<TcpStream>, FrameCodec<ServerMsg, ConnectorMsg>>,
> {
    let tcp = match proxy_for(server) {
        Some(proxy) => tokio::time::timeout(Duration::from_secs(10), through_proxy(&proxy, server))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from the proxy {proxy}"))??,
        None => tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(server))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from the server at {server}"))??,
    };
    tcp.set_nodelay(true).ok();
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        haven_pki::connect_tls(tcp, host_of(server), config),
    )
    .await
    .map_err(|_| anyhow::anyhow!("TLS handshake with {server} timed out"))?
    .map_err(|e| {
        anyhow::anyhow!("TLS handshake with {server} failed: {e} (is this the right server?)")
    })?;
    Ok(Framed::new(
        tls,
        FrameCodec::new(MAX_ENGINE_FRAME).compress_over(1024),
    ))
}

/// The HTTPS proxy to use for `server`, from `HTTPS_PROXY` / `https_proxy`
/// (`http://HOST:PORT`), unless `NO_PROXY` / `no_proxy` names the host (a
/// comma-separated list of hosts, `.domain` suffixes, or `*`).
fn proxy_for(server: &str) -> Option<String> {
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
    };
    let proxy = env(&["HTTPS_PROXY", "https_proxy"])?;
    let host = host_of(server);
    if let Some(no_proxy) = env(&["NO_PROXY", "no_proxy"]) {
        let skip = no_proxy.split(',').map(str::trim).any(|entry| {
            entry == "*"
                || entry == host
                || (!entry.is_empty()
                    && host.ends_with(entry.trim_start_matches('*'))
                    && entry.starts_with(['.', '*']))
        });
        if skip {
            return None;
        }
    }
    let proxy = proxy.trim();
    let address = proxy
        .strip_prefix("http://")
        .unwrap_or(proxy)
        .trim_end_matches('/');
    // user:password@ is not supported; say so rather than leak it.
    Some(address.rsplit('@').next().unwrap_or(address).to_string())
}

/// Opens a tunnel to `server` through an HTTP proxy (`CONNECT`).
async fn through_proxy(proxy: &str, server: &str) -> anyhow::Result<TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the HTTPS proxy {proxy}: {e}"))?;
    stream
        .write_all(format!("CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n\r\n").as_bytes())
        .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Read the proxy's answer up to the blank line, byte by byte so that
    // nothing of the tunnel is consumed; bounded.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || stream.read(&mut byte).await? == 0 {
            anyhow::bail!("the HTTPS proxy {proxy} closed the connection or sent a huge answer");
        }
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head);
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        anyhow::bail!(
            "the HTTPS proxy {proxy} refused the tunnel to {server}: {}",
            status.lines().next().unwrap_or("")
        );
    }
    Ok(stream)
}

/// Trades the token for credentials (and, from a server that issues them,
/// a certificate), checking the server against the CA fingerprint inside
/// the token.
async fn join(
    options: &ConnectorOptions,
    token: &str,
) -> anyhow::Result<(Credentials, Option<Certificate>)> {
    let parsed = JoinToken::parse(token).map_err(|e| anyhow::anyhow!(e))?;
    let cluster = follow::open(
        &options.engine,
        &engine_credentials(options),
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot reach the engine to learn the cluster's name: {e}"))?
    .cluster;
    let pinned = haven_pki::PinnedCa::new(&parsed.ca_fingerprint)?;
    let mut wire = tls_connect(
        &options.server,
        haven_pki::client_config_pinned(pinned.clone()),
    )
    .await?;
    wire.send(ConnectorMsg::Join {
        versions: CONNECTOR_VERSIONS.to_vec(),
        token: token.trim().to_string(),
        cluster: cluster.clone(),
        version: VERSION.into(),
    })
    .await?;
    match tokio::time::timeout(Duration::from_secs(15), wire.next()).await {
        Ok(Some(Ok(ServerMsg::Joined {
            connector_id,
            secret,
            cert_pem,
            key_pem,
        }))) => {
            let creds = Credentials {
                server: options.server.clone(),
                cluster: cluster.to_string(),
                connector_id,
                secret,
                ca_pem: pinned.learned_ca_pem().ok_or_else(|| {
                    anyhow::anyhow!("the server's CA was not learned during the handshake")
                })?,
                servers: Vec::new(),
            };
            let certificate = match (cert_pem, key_pem) {
                (Some(cert_pem), Some(key_pem)) => {
                    // The token is spent: a pair that cannot be used costs the
                    // certificate, not the join.
                    match haven_pki::client_config_for_ca_with_cert(
                        &creds.ca_pem,
                        &cert_pem,
                        &key_pem,
                    ) {
                        Ok(_) => Some(Certificate { cert_pem, key_pem }),
                        Err(e) => {
                            tracing::warn!("the server's connector certificate is not usable ({e}); going on with the secret alone");
                            None
                        }
                    }
                }
                _ => None,
            };
            Ok((creds, certificate))
        }
        Ok(Some(Ok(ServerMsg::Error { code, message }))) => {
            anyhow::bail!("the server refused the join ({code:?}): {message}")
        }
        Ok(Some(Ok(other))) => anyhow::bail!("unexpected answer to join: {other:?}"),
        Ok(Some(Err(e))) => Err(e.into()),
        Ok(None) | Err(_) => anyhow::bail!("the server closed the connection during the join"),
    }
}

async fn engine_side(
    options: ConnectorOptions,
    cluster: String,
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<(Operation, oneshot::Sender<Result<CommandResult, String>>)>,
) -> anyhow::Result<()> {
    let mut backoff = follow::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut failures = 0u32;
    loop {
        let result = follow_engine(&options, &cluster, &shared, &mut commands, &mut backoff).await;
        shared
            .engine_connected
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = result {
            if failures == 0 {
                tracing::warn!("engine link lost: {e:#}; retrying with backoff");
            }
            failures += 1;
        }
        // Answer operations at once while the engine is away.
        let wait = tokio::time::sleep(backoff.next_pause());
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                Some((_, reply)) = commands.recv() => {
                    let _ = reply.send(Err("the connector cannot reach its engine".into()));
                }
            }
        }
        if failures > 0
            && shared
                .engine_connected
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            failures = 0;
        }
    }
}

async fn follow_engine(
    options: &ConnectorOptions,
    cluster: &str,
    shared: &Arc<Shared>,
    commands: &mut mpsc::Receiver<(Operation, oneshot::Sender<Result<CommandResult, String>>)>,
    backoff: &mut follow::Backoff,
) -> anyhow::Result<()> {
    let mut engine = follow::open(
        &options.engine,
        &engine_credentials(options),
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    if *engine.cluster != *cluster {
        anyhow::bail!(
            "the engine at {} runs cluster {}, but this connector joined for {cluster}",
            options.engine,
            engine.cluster
        );
    }
    let epoch = engine.epoch;
    let last = shared.spool(|s| s.last());
    match engine
        .sync(last, Duration::from_secs(15))
        .await
        .map_err(|e| anyhow::anyhow!(e))?
    {
        follow::Sync::Resumed { snapshot } => shared.set_live(epoch, *snapshot),
        follow::Sync::Fresh { snapshot, gap } => {
            if let (Some(reason), Some((last_epoch, last_seq))) = (gap, last) {
                // What is still spooled from before goes out first; the
                // gap follows it, then the new events.
                note_gap(
                    shared,
                    Some(Position {
                        epoch: last_epoch,
                        seq: last_seq,
                    }),
                    Position {
                        epoch,
                        seq: snapshot.seq,
                    },
                    reason,
                )?;
            }
            shared.set_live(epoch, *snapshot);
        }
    }
    let mut wire = engine.wire;
    shared
        .engine_connected
        .store(true, std::sync::atomic::Ordering::SeqCst);
    backoff.reset();
    shared.grew.notify_one();
    tracing::info!(
        "following the engine of cluster {cluster} at {}",
        options.engine
    );

    let mut pending: std::collections::HashMap<
        u64,
        oneshot::Sender<Result<CommandResult, String>>,
    > = Default::default();
    let mut next_id = 1u64;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            frame = wire.next() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(EngineMsg::Events { events })) => {
                        {
                            let mut live = shared.live.lock().unwrap_or_else(|p| p.into_inner());
                            if let Some((_, snap)) = live.as_mut() {
                                for e in &events {
                                    if e.seq > snap.seq {
                                        snap.apply(e).map_err(|g| anyhow::anyhow!("{g}"))?;
                                    }
                                }
                            }
                        }
                        spool_events(shared, epoch, &events)?;
                        shared.grew.notify_one();
                    }
                    Some(Ok(EngineMsg::CommandResult { id, result })) => {
                        if let Some(reply) = pending.remove(&id) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Some(Ok(EngineMsg::Heartbeat)) => {}
                    Some(Ok(EngineMsg::Error { code, message })) => anyhow::bail!("engine closed the link ({code:?}): {message}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => anyhow::bail!("the engine closed the connection"),
                }
            }
            Some((op, reply)) = commands.recv() => {
                let id = next_id;
                next_id += 1;
                pending.insert(id, reply);
                wire.send(ClientMsg::Command { id, op }).await?;
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > Duration::from_secs(30) {
                    anyhow::bail!("nothing heard from the engine for 30 s");
                }
                wire.send(ClientMsg::Heartbeat).await?;
            }
        }
    }
}

fn note_gap(
    shared: &Shared,
    after: Option<Position>,
    resumed: Position,
    reason: String,
) -> anyhow::Result<()> {
    tracing::warn!("history gap: {reason}");
    let gap = PendingGap {
        after: shared.pending_gap().and_then(|g| g.after).or(after),
        resumed,
        reason,
    };
    write_private(&shared.gap_file, &serde_json::to_string(&gap)?)?;
    Ok(())
}

/// Appends to the spool; when it is full, drops the backlog and records a
/// gap with its time range instead of losing events silently.
fn spool_events(shared: &Shared, epoch: u64, events: &[Event]) -> anyhow::Result<()> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let appended = shared.spool(|s| s.append(epoch, events))?;
    if let Appended::Full {
        pending_bytes,
        max_bytes,
    } = appended
    {
        let oldest = shared.spool(|s| s.peek(1))?;
        let (from_epoch, from_seq, from_ms) = oldest
            .first()
            .map(|(e, ev)| (*e, ev.seq, ev.time_ms))
            .unwrap_or((epoch, first.seq, first.time_ms));
        note_gap(
            shared,
            Some(Position {
                epoch: from_epoch,
                seq: from_seq.saturating_sub(1),
            }),
            Position {
                epoch,
                seq: first.seq.saturating_sub(1),
            },
            format!(
                "the connector's buffer was full ({pending_bytes} of {max_bytes} bytes) while the server was unreachable; events from {from_ms} ms to {} ms were dropped",
                first.time_ms
            ),
        )?;
        shared.spool(|s| s.clear(false))?;
        if let Appended::Full { .. } = shared.spool(|s| s.append(epoch, events))? {
            anyhow::bail!(
                "one batch of {} events is larger than the whole spool; raise --spool-max-bytes",
                events.len()
            );
        }
    }
    Ok(())
}

type ServerWire<S> = Framed<S, FrameCodec<ServerMsg, ConnectorMsg>>;

/// Sends `msg`, unless the server takes nothing for `limit` (it is gone
/// or paused, and its socket's buffer is full).
async fn send_within<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut ServerWire<S>,
    msg: ConnectorMsg,
    limit: Duration,
) -> anyhow::Result<()> {
    match tokio::time::timeout(limit, wire.send(msg)).await {
        Ok(sent) => Ok(sent?),
        Err(_) => anyhow::bail!("the server took nothing for {} s", limit.as_secs()),
    }
}

async fn server_side(
    mut creds: Credentials,
    config: Arc<rustls::ClientConfig>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut backoff = follow::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut failures = 0u32;
    // The servers of a group are dialled in turn: the next at once when
    // one fails, a pause with backoff only after a whole round.
    let mut next = 0usize;
    loop {
        let addresses = creds.addresses();
        let server = addresses[next % addresses.len()].clone();
        match tls_connect(&server, config.clone()).await {
            Ok(wire) => match uplink(
                wire,
                &mut creds,
                &server,
                &shared,
                &mut backoff,
                &mut failures,
            )
            .await
            {
                Err(e) if e.to_string().contains("AuthenticationFailed") => return Err(e),
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!("server link lost ({server}): {e:#}; retrying with backoff (events are kept in the spool)");
                    }
                    failures += 1;
                }
                Ok(()) => {}
            },
            Err(e) => {
                if failures == 0 {
                    tracing::warn!("cannot reach the server: {e:#}; retrying with backoff (events are kept in the spool)");
                }
                failures += 1;
            }
        }
        next += 1;
        if next.is_multiple_of(creds.addresses().len()) {
            tokio::time::sleep(backoff.next_pause()).await;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn uplink<S: AsyncRead + AsyncWrite + Unpin>(
    mut wire: ServerWire<S>,
    creds: &mut Credentials,
    server: &str,
    shared: &Arc<Shared>,
    backoff: &mut follow::Backoff,
    failures: &mut u32,
) -> anyhow::Result<()> {
    wire.send(ConnectorMsg::Hello {
        versions: CONNECTOR_VERSIONS.to_vec(),
        connector_id: creds.connector_id.clone(),
        secret: creds.secret.clone(),
        cluster: creds.cluster.as_str().into(),
        version: VERSION.into(),
    })
    .await?;
    let (stored, silence) = match tokio::time::timeout(Duration::from_secs(15), wire.next()).await {
        Ok(Some(Ok(ServerMsg::Welcome {
            stored,
            servers,
            heartbeat_ms,
            ..
        }))) => {
            if !servers.is_empty() && servers != creds.servers {
                tracing::info!("the servers of the group: {}", servers.join(", "));
                creds.servers = servers;
                let text = serde_json::to_string_pretty(&*creds)?;
                if let Err(e) = write_private(&shared.creds_file, &text) {
                    tracing::warn!(
                        "cannot keep the group's servers in {}: {e}",
                        shared.creds_file.display()
                    );
                }
            }
            // Three heartbeats missed: the server is gone (or paused),
            // and a connector of a group dials the next one.
            let silence = Duration::from_millis(heartbeat_ms.saturating_mul(3))
                .clamp(Duration::from_secs(3), Duration::from_secs(30));
            (stored, silence)
        }
        Ok(Some(Ok(ServerMsg::Error { code, message }))) => {
            if code == ConnectorError::AuthenticationFailed {
                anyhow::bail!("AuthenticationFailed: {message}");
            }
            anyhow::bail!("the server refused us ({code:?}): {message}")
        }
        Ok(Some(Ok(other))) => anyhow::bail!("unexpected answer to hello: {other:?}"),
        Ok(Some(Err(e))) => return Err(e.into()),
        Ok(None) | Err(_) => anyhow::bail!("the server closed the connection"),
    };
    if let Some(p) = stored {
        shared.spool(|s| s.ack(p.epoch, p.seq))?;
    }
    tracing::info!("connected to the server at {server}");
    backoff.reset();
    // The next outage is logged again, once.
    *failures = 0;

    // The server gets the live state first (and again after every resync
    // of the engine side), then the backlog.
    let mut live_sent = 0u64;
    let mut sent: Option<(u64, u64)> = stored.map(|p| (p.epoch, p.seq));
    let mut acked = sent;
    let mut gap_sent = false;
    let (results_tx, mut results) = mpsc::channel::<ConnectorMsg>(256);
    // The first status waits a beat, so a fresh start does not report an
    // engine that is merely still syncing.
    let mut status = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(2),
        Duration::from_secs(2),
    );
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let version = shared
            .live_version
            .load(std::sync::atomic::Ordering::SeqCst);
        if version != live_sent {
            let snapshot = shared
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some((epoch, snap)) = snapshot {
                send_within(
                    &mut wire,
                    ConnectorMsg::Snapshot {
                        epoch,
                        snapshot: Box::new(snap),
                    },
                    silence,
                )
                .await?;
            }
            live_sent = version;
        }
        // Send what is spooled and not yet sent, a window at a time.
        let in_flight = match (sent, acked) {
            (Some((se, ss)), Some((ae, a))) if se == ae => ss.saturating_sub(a),
            _ => 0,
        };
        if in_flight < 50_000 {
            let batch: Vec<(u64, Event)> = shared.spool(|s| s.peek_after(sent, 2000))?;
            if let Some((first_epoch, first)) = batch.first() {
                let contiguous =
                    sent.is_some_and(|(se, ss)| se == *first_epoch && ss + 1 == first.seq);
                if !contiguous && !gap_sent {
                    if let Some(gap) = shared.pending_gap() {
                        send_within(
                            &mut wire,
                            ConnectorMsg::Gap {
                                after: gap.after,
                                resumed: gap.resumed,
                                reason: gap.reason,
                            },
                            silence,
                        )
                        .await?;
                        gap_sent = true;
                    }
                }
                let mut i = 0;
                while i < batch.len() {
                    let epoch = batch[i].0;
                    let run: Vec<Event> = batch[i..]
                        .iter()
                        .take_while(|(e, _)| *e == epoch)
                        .map(|(_, ev)| ev.clone())
                        .collect();
                    i += run.len();
                    let last = run.last().map(|e| e.seq).unwrap_or(0);
                    send_within(
                        &mut wire,
                        ConnectorMsg::Events { epoch, events: run },
                        silence,
                    )
                    .await?;
                    sent = Some((epoch, last));
                }
                continue;
            }
        }
        let wake = shared.grew.notified();
        tokio::select! {
            _ = wake => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            frame = wire.next() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(ServerMsg::Ack { epoch, seq })) => {
                        shared.spool(|s| s.ack(epoch, seq))?;
                        acked = Some((epoch, seq));
                        if gap_sent {
                            if let Some(gap) = shared.pending_gap() {
                                if (epoch, seq) >= (gap.resumed.epoch, gap.resumed.seq) {
                                    let _ = std::fs::remove_file(&shared.gap_file);
                                    gap_sent = false;
                                }
                            }
                        }
                    }
                    Some(Ok(ServerMsg::Command { id, op })) => {
                        let (tx, rx) = oneshot::channel();
                        let results_tx = results_tx.clone();
                        if shared.commands.send((op, tx)).await.is_err() {
                            send_within(&mut wire, ConnectorMsg::CommandFailed { id, reason: "the connector is stopping".into() }, silence).await?;
                        } else {
                            tokio::spawn(async move {
                                let msg = match tokio::time::timeout(Duration::from_secs(15), rx).await {
                                    Ok(Ok(Ok(result))) => ConnectorMsg::CommandResult { id, result },
                                    Ok(Ok(Err(reason))) => ConnectorMsg::CommandFailed { id, reason },
                                    _ => ConnectorMsg::CommandFailed { id, reason: "the engine did not answer".into() },
                                };
                                let _ = results_tx.send(msg).await;
                            });
                        }
                    }
                    Some(Ok(ServerMsg::Heartbeat)) => {}
                    Some(Ok(ServerMsg::Error { code, message })) => anyhow::bail!("the server closed the link ({code:?}): {message}"),
                    Some(Ok(other)) => tracing::debug!("ignoring {other:?}"),
                    Some(Err(e)) => return Err(e.into()),
                    None => anyhow::bail!("the server closed the connection"),
                }
            }
            Some(msg) = results.recv() => send_within(&mut wire, msg, silence).await?,
            _ = status.tick() => {
                if last_heard.elapsed() > silence {
                    anyhow::bail!("nothing heard from the server for {} s", silence.as_secs());
                }
                let (backlog_events, backlog_bytes) = shared.spool(|s| s.pending());
                send_within(&mut wire, ConnectorMsg::Status {
                    backlog_events,
                    backlog_bytes,
                    engine_connected: shared.engine_connected.load(std::sync::atomic::Ordering::SeqCst),
                }, silence).await?;
            }
        }
    }
}
