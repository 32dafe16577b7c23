//! The connector port: cluster connectors dial in over TLS, join once with
//! a one-time token, then stream their cluster's snapshot and events (from
//! their durable spool) and relay operations to their engine.
//!
//! Invariants:
//! - a token is spent at most once, in one transaction, and only before it
//!   expires; a connector's secret is stored only as a hash;
//! - the server acknowledges only what the history writer has stored, so a
//!   connector drops nothing the server could still lose;
//! - one session per cluster: a new session of the same connector replaces
//!   the old one (a connector that was killed reconnects at once);
//! - a session speaks only for the cluster its credentials are for: the
//!   secret must be the one issued for that cluster, and a client
//!   certificate, if presented, must name that cluster.
//!
//! Connector certificates (mutual TLS). At join the server issues the
//! connector a certificate for the token's cluster from the fleet CA
//! (`Authority::issue_client`) and sends it with its key in the `joined`
//! answer; it keeps neither. The port asks every client for a certificate
//! but does not require one. One that is presented is verified at the
//! handshake (fleet CA, clientAuth, validity: anything else fails there),
//! and the cluster it names must be the one the `hello` claims, else the
//! session is refused (`authentication_failed`) and logged. The secret is
//! still checked as well: it is what the server can take back (deleting the
//! connector's record), since certificates have no revocation list yet.
//!
//! Migration: a connector that joined before certificates existed presents
//! none and is admitted on its secret alone, with a note in the log; join it
//! again with a new token to give it a certificate. Refusing secret-only
//! sessions altogether would need a setting (not built).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::Name;
use haven_protocol::connector::{
    ConnectorError, ConnectorMsg, JoinToken, Position, ServerMsg, CONNECTOR_VERSIONS,
};
use haven_protocol::FrameCodec;
use haven_store::{ClusterRecord, ConnectorRecord, Cursor, Gap, JoinTokenRecord};
use sha2::{Digest, Sha256};

/// How often the server speaks to a connector at least (a heartbeat when
/// it has nothing else to say); the connector gives up after three missed.
const HEARTBEAT: Duration = Duration::from_secs(2);
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::fleet::{LinkState, LinkStatus};
use crate::link::{LinkHandle, LinkSender, Reply};
use crate::writer::WriteMsg;
use crate::{now_ms, Server};

/// The address clusters are marked with when a connector serves them.
pub const CONNECTOR_ADDRESS: &str = "connector";

/// Largest frame a connector may send (a big cluster's snapshot).
const MAX_FRAME: usize = 64 << 20;

/// SHA-256 hex of a secret.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The refusal for a connector that speaks no version we know.
fn version_refusal(offered: &[u32]) -> Option<ServerMsg> {
    (!offered.iter().any(|v| CONNECTOR_VERSIONS.contains(v))).then(|| ServerMsg::Error {
        code: ConnectorError::UnsupportedVersion,
        message: format!(
            "this server speaks connector protocol {CONNECTOR_VERSIONS:?}, the connector {offered:?}; upgrade the older side"
        ),
    })
}

/// What a connector proved at the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PeerCertificate {
    /// None presented: a connector that is joining, or one that joined
    /// before connector certificates.
    Absent,
    /// A certificate the fleet CA issued (the handshake verified it), for this cluster.
    Cluster(String),
    /// A certificate the fleet CA issued that names no cluster.
    Unnamed,
}

impl PeerCertificate {
    /// What the client of `tls` presented.
    fn of<IO>(tls: &tokio_rustls::server::TlsStream<IO>) -> PeerCertificate {
        match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            None => PeerCertificate::Absent,
            Some(cert) => haven_pki::client_cluster(cert)
                .map_or(PeerCertificate::Unnamed, PeerCertificate::Cluster),
        }
    }

    /// Why a session claiming `cluster` may not go on with this certificate, if it may not.
    fn refusal(&self, cluster: &str) -> Option<String> {
        match self {
            PeerCertificate::Absent => None,
            PeerCertificate::Cluster(named) if named == cluster => None,
            PeerCertificate::Cluster(named) => Some(format!(
                "the connector's certificate is for cluster {named}, but the connector claims \
                 cluster {cluster}; a connector speaks only for the cluster it joined for (its \
                 connector.pem may have been copied from another connector: join again with a \
                 new token)"
            )),
            PeerCertificate::Unnamed => Some(format!(
                "the connector's certificate names no cluster, but the connector claims cluster \
                 {cluster}; join again with a new token"
            )),
        }
    }
}

/// A secret from the OS's cryptographic random source.
pub(crate) fn random_hex(bytes: usize) -> Result<String, String> {
    haven_pki::random_hex(bytes).map_err(|e| format!("cannot read random bytes: {e}"))
}

/// A new join token, as the API returns it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct IssuedToken {
    /// Give this to `haven connector --token`.
    pub token: String,
    pub expires_ms: i64,
    /// SHA-256 of the server's CA certificate (also inside the token).
    pub ca_fingerprint: String,
    /// Where connectors reach this server.
    pub connector_address: String,
}

impl Server {
    /// Makes a one-time join token, valid for `ttl`, optionally only for
    /// one cluster.
    pub async fn create_join_token(
        self: &Arc<Self>,
        cluster: Option<String>,
        ttl: Duration,
    ) -> Result<IssuedToken, String> {
        let id = random_hex(8)?;
        let secret = random_hex(16)?;
        let now = now_ms();
        let expires_ms = now + ttl.as_millis() as i64;
        let record = JoinTokenRecord {
            id: id.clone(),
            secret_hash: hash_secret(&secret),
            cluster,
            created_ms: now,
            expires_ms,
        };
        self.write_store(move |s| s.insert_join_token(&record))
            .await?;
        let ca_fingerprint = self.authority.ca_fingerprint();
        Ok(IssuedToken {
            token: JoinToken {
                id,
                secret,
                ca_fingerprint: ca_fingerprint.clone(),
            }
            .encode(),
            expires_ms,
            ca_fingerprint,
            connector_address: self
                .connector_addr
                .get()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        })
    }

    /// Accepts connectors on `listener` until the server stops.
    pub async fn serve_connectors(self: Arc<Self>, listener: TcpListener) {
        let acceptor = match self.authority.server_config_with_client_auth() {
            Ok(config) => haven_pki::TlsAcceptor::from(config),
            Err(e) => {
                tracing::error!("connector port disabled: {e}");
                return;
            }
        };
        let hint = "only certificates the fleet CA issued at join, still valid, are accepted";
        let mut incoming = match crate::tls::TlsListener::with_acceptor(
            listener,
            move || Some(acceptor.clone()),
            ("connector", hint),
        ) {
            Ok(incoming) => incoming,
            Err(e) => {
                tracing::error!("connector port disabled: {e}");
                return;
            }
        };
        while let Some((tls, peer)) = incoming.next().await {
            let me = self.clone();
            tokio::spawn(async move {
                let certificate = PeerCertificate::of(&tls);
                if let Err(e) = me.connector_session(tls, peer, certificate).await {
                    tracing::debug!(%peer, "connector session ended: {e}");
                }
            });
        }
    }

    async fn connector_session<S: AsyncRead + AsyncWrite + Unpin>(
        self: &Arc<Self>,
        tls: S,
        peer: SocketAddr,
        certificate: PeerCertificate,
    ) -> Result<(), String> {
        let mut wire = Framed::new(
            tls,
            FrameCodec::<ConnectorMsg, ServerMsg>::new(MAX_FRAME).compress_over(1024),
        );
        let refuse = |code, message: String| ServerMsg::Error { code, message };
        let first = tokio::time::timeout(Duration::from_secs(10), wire.next())
            .await
            .map_err(|_| "no hello in time".to_string())?;
        let (cluster, connector_id, version) = match first {
            Some(Ok(ConnectorMsg::Join {
                versions,
                token,
                cluster,
                version,
            })) => {
                if let Some(refusal) = version_refusal(&versions) {
                    let _ = wire.send(refusal).await;
                    return Err("unsupported version".into());
                }
                let answer = self.join(&token, &cluster, &version).await;
                let msg = match &answer {
                    Ok((id, secret, issued)) => ServerMsg::Joined {
                        connector_id: id.clone(),
                        secret: secret.clone(),
                        cert_pem: Some(issued.cert_pem.clone()),
                        key_pem: Some(issued.key_pem.clone()),
                    },
                    Err(why) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        refuse(ConnectorError::BadToken, why.clone())
                    }
                };
                let _ = wire.send(msg).await;
                return answer.map(|(id, _, _)| {
                    tracing::info!(cluster = %cluster, "connector {id} joined; it was issued a certificate for cluster {cluster}");
                });
            }
            Some(Ok(ConnectorMsg::Hello {
                versions,
                connector_id,
                secret,
                cluster,
                version,
            })) => {
                if let Some(refusal) = version_refusal(&versions) {
                    let _ = wire.send(refusal).await;
                    return Err("unsupported version".into());
                }
                // The certificate first: it was proven at the handshake, and
                // says which cluster this peer may speak for at all.
                if let Some(why) = certificate.refusal(&cluster) {
                    tracing::warn!(%peer, cluster = %cluster, "refused connector {connector_id}: {why}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = wire
                        .send(refuse(ConnectorError::AuthenticationFailed, why))
                        .await;
                    return Err("client certificate refused".into());
                }
                // A fresh connection: a connector that just joined must be
                // seen, whatever snapshot the shared reader is on.
                let known = self
                    .write_store(|s| s.connectors())
                    .await?
                    .into_iter()
                    .find(|c| c.id == connector_id);
                let ok = known.as_ref().is_some_and(|c| {
                    haven_auth::session::constant_time_eq(
                        c.secret_hash.as_bytes(),
                        hash_secret(&secret).as_bytes(),
                    ) && *c.cluster == *cluster
                });
                if !ok {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = wire
                        .send(refuse(
                            ConnectorError::AuthenticationFailed,
                            "unknown connector or wrong secret; join again with a new token".into(),
                        ))
                        .await;
                    return Err("authentication failed".into());
                }
                if certificate == PeerCertificate::Absent {
                    tracing::info!(cluster = %cluster, "connector {connector_id} presented no certificate (it joined before connector certificates); admitted on its secret alone. Join it again with a new token to give it one");
                }
                (cluster, connector_id, version)
            }
            Some(Ok(_)) => {
                let _ = wire
                    .send(refuse(
                        ConnectorError::BadFrame,
                        "expected join or hello first".into(),
                    ))
                    .await;
                return Err("bad first message".into());
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        };

        // This session now serves the cluster; a previous one is replaced.
        let (commands_tx, mut commands) = mpsc::channel(256);
        let cancel = CancellationToken::new();
        let sender = LinkSender::new(commands_tx);
        self.register_link(&cluster, LinkHandle::new(sender.clone(), cancel.clone()));
        let mut status = LinkStatus {
            state: LinkState::Connected,
            since_ms: now_ms(),
            mode: "connector".into(),
            address: format!("connector {connector_id}"),
            last_error: None,
            failures: 0,
            epoch: None,
            seq: 0,
            connector_version: Some(version),
            backlog_events: None,
            backlog_bytes: None,
        };
        if !self.fleet.add(&cluster, status.clone()) {
            self.fleet.set_link(&cluster, status.clone());
        }
        let stored = self.stored_cursor(&cluster).await;
        wire.send(ServerMsg::Welcome {
            version: 1,
            heartbeat_ms: HEARTBEAT.as_millis() as u64,
            stored: stored.map(|c| Position {
                epoch: c.epoch,
                seq: c.seq,
            }),
            servers: self.connector_addresses(),
        })
        .await
        .map_err(|e| e.to_string())?;
        let how = match &certificate {
            PeerCertificate::Cluster(_) => "by its certificate and its secret",
            _ => "by its secret alone",
        };
        tracing::info!(cluster = %cluster, "connector {connector_id} connected, authenticated {how}");

        let mut acked = stored;
        let mut pending: std::collections::HashMap<u64, Reply> = Default::default();
        let mut next_id = 1u64;
        let mut epoch = 0u64;
        let mut checkpoints = crate::timeline::Checkpointer::default();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_heard = tokio::time::Instant::now();
        let mut last_sent = tokio::time::Instant::now();
        let result: Result<(), String> = loop {
            tokio::select! {
                _ = cancel.cancelled() => break Err("replaced by a newer session".into()),
                frame = wire.next() => {
                    last_heard = tokio::time::Instant::now();
                    match frame {
                        Some(Ok(ConnectorMsg::Snapshot { epoch: e, snapshot })) => {
                            epoch = e;
                            status.epoch = Some(e);
                            status.seq = snapshot.seq;
                            if let Some(checkpoint) = checkpoints.snapshot(&cluster, e, &snapshot) {
                                if self.history.send(checkpoint).await.is_err() {
                                    break Err("history writer stopped".into());
                                }
                            }
                            self.fleet.resync(&cluster, e, *snapshot);
                            self.fleet.set_link(&cluster, status.clone());
                        }
                        Some(Ok(ConnectorMsg::Events { epoch: e, events })) => {
                            let n = events.len();
                            if e == epoch {
                                if let Err(gap) = self.fleet.apply(&cluster, events.clone()) {
                                    tracing::warn!(cluster = %cluster, "fleet out of step: {gap}");
                                }
                            }
                            if self.history.send(WriteMsg::Events { cluster: cluster.clone(), epoch: e, events }).await.is_err() {
                                break Err("history writer stopped".into());
                            }
                            let checkpoint = (e == epoch)
                                .then(|| checkpoints.events(&self.fleet, &cluster, e, n))
                                .flatten();
                            if let Some(checkpoint) = checkpoint {
                                if self.history.send(checkpoint).await.is_err() {
                                    break Err("history writer stopped".into());
                                }
                            }
                        }
                        Some(Ok(ConnectorMsg::Gap { after, resumed, reason })) => {
                            tracing::warn!(cluster = %cluster, "history gap reported by the connector: {reason}");
                            let gap = Gap {
                                cluster: cluster.to_string(),
                                after: after.map(|p| Cursor { epoch: p.epoch, seq: p.seq }),
                                resumed: Cursor { epoch: resumed.epoch, seq: resumed.seq },
                                time_ms: now_ms(),
                                reason,
                            };
                            if self.history.send(WriteMsg::Gap(gap)).await.is_err() {
                                break Err("history writer stopped".into());
                            }
                        }
                        Some(Ok(ConnectorMsg::CommandResult { id, result })) => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(Ok(result));
                            }
                        }
                        Some(Ok(ConnectorMsg::CommandFailed { id, reason })) => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(Err(reason));
                            }
                        }
                        Some(Ok(ConnectorMsg::Status { backlog_events, backlog_bytes, engine_connected })) => {
                            status.backlog_events = Some(backlog_events);
                            status.backlog_bytes = Some(backlog_bytes);
                            let state = if engine_connected { LinkState::Connected } else { LinkState::Stale };
                            if status.state != state {
                                status.state = state;
                                status.since_ms = now_ms();
                                status.last_error = (!engine_connected).then(|| "the connector lost its engine".to_string());
                            }
                            self.fleet.set_link(&cluster, status.clone());
                        }
                        Some(Ok(ConnectorMsg::Heartbeat)) => {}
                        Some(Ok(other)) => {
                            let _ = wire.send(refuse(ConnectorError::BadFrame, format!("unexpected message {other:?}"))).await;
                            break Err("unexpected message".into());
                        }
                        Some(Err(e)) => break Err(e.to_string()),
                        None => break Err("connector closed the connection".into()),
                    }
                }
                Some((op, reply)) = commands.recv() => {
                    let id = next_id;
                    next_id += 1;
                    pending.insert(id, reply);
                    if let Err(e) = wire.send(ServerMsg::Command { id, op }).await {
                        break Err(e.to_string());
                    }
                    last_sent = tokio::time::Instant::now();
                }
                _ = tick.tick() => {
                    let now_stored = self.writer_cursor(&cluster);
                    if now_stored.is_some() && now_stored != acked {
                        if let Some(c) = now_stored {
                            if let Err(e) = wire.send(ServerMsg::Ack { epoch: c.epoch, seq: c.seq }).await {
                                break Err(e.to_string());
                            }
                            last_sent = tokio::time::Instant::now();
                        }
                        acked = now_stored;
                    }
                    if last_heard.elapsed() > Duration::from_secs(15) {
                        let _ = wire.send(refuse(ConnectorError::Timeout, "nothing heard for 15 s".into())).await;
                        break Err("connector silent".into());
                    }
                    if last_sent.elapsed() > HEARTBEAT {
                        if let Err(e) = wire.send(ServerMsg::Heartbeat).await {
                            break Err(e.to_string());
                        }
                        last_sent = tokio::time::Instant::now();
                    }
                }
            }
        };
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(
                "the connector disconnected before the engine answered".into()
            ));
        }
        if !cancel.is_cancelled() {
            self.unregister_link(&cluster, &sender);
            status.state = LinkState::Disconnected;
            status.since_ms = now_ms();
            status.last_error = result.as_ref().err().cloned();
            self.fleet.set_link(&cluster, status);
            tracing::warn!(cluster = %cluster, "connector {connector_id} disconnected: {}", result.as_ref().err().cloned().unwrap_or_default());
        }
        result
    }

    /// Spends a token and registers a new connector for `cluster`: its id,
    /// its secret, and its certificate for `cluster` with the key.
    async fn join(
        self: &Arc<Self>,
        token: &str,
        cluster: &Name,
        version: &str,
    ) -> Result<(String, String, haven_pki::IssuedClient), String> {
        let token = JoinToken::parse(token)?;
        if token.ca_fingerprint != self.authority.ca_fingerprint() {
            return Err("this token was made by another server (CA fingerprint differs)".into());
        }
        if !crate::valid_cluster_name(cluster) {
            return Err(format!(
                "cluster name `{cluster}`: use letters, digits, `_`, `-` and `.` (the engine's cluster name)"
            ));
        }
        if self.fleet.link(cluster).is_some_and(|l| l.mode == "direct") {
            return Err(format!(
                "cluster {cluster} is managed through a direct connection; remove it first (DELETE /api/v1/clusters/{cluster})"
            ));
        }
        // Issued before the token is spent, so a failure here leaves the token usable.
        let issued = self.authority.issue_client(cluster).map_err(|e| {
            tracing::error!(cluster = %cluster, "cannot issue a connector certificate: {e}");
            format!("the server cannot issue a connector certificate: {e}")
        })?;
        let (id, hash, name) = (
            token.id.clone(),
            hash_secret(&token.secret),
            cluster.to_string(),
        );
        self.write_store(move |s| s.spend_join_token(&id, &hash, &name, now_ms()))
            .await??;
        let connector_id = random_hex(8)?;
        let secret = random_hex(24)?;
        let record = ConnectorRecord {
            id: connector_id.clone(),
            cluster: cluster.to_string(),
            secret_hash: hash_secret(&secret),
            version: version.to_string(),
            joined_ms: now_ms(),
        };
        let cluster_record = ClusterRecord {
            name: cluster.to_string(),
            address: CONNECTOR_ADDRESS.into(),
            user: None,
            password: None,
            added_ms: now_ms(),
        };
        self.write_store(move |s| {
            s.upsert_connector(&record)?;
            s.upsert_cluster(&cluster_record)
        })
        .await?;
        Ok((connector_id, secret, issued))
    }

    /// The last position stored for a cluster (the writer's, else the
    /// database's).
    async fn stored_cursor(self: &Arc<Self>, cluster: &str) -> Option<Cursor> {
        if let Some(c) = self.writer_cursor(cluster) {
            return Some(c);
        }
        let name = cluster.to_string();
        self.read(move |s| s.cursors().map(|c| c.get(&name).copied()))
            .await
            .ok()
            .flatten()
    }

    fn writer_cursor(&self, cluster: &str) -> Option<Cursor> {
        self.stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cluster)
            .copied()
    }
}
