//! The follower: this server's link to one paired site. It dials the
//! site's peer port with this server's certificate, follows its fleet into
//! this fleet (as `SITE:CLUSTER`) and its history into this database,
//! forwards operations, and on any break shows the site unreachable and
//! dials again with backoff, resuming after the last history row stored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::Name;
use haven_protocol::follow::Backoff;
use haven_protocol::FrameCodec;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::wire::{
    FollowerMsg, PairingToken, PeerRow, SourceMsg, HEARTBEAT, MAX_FRAME, PEER_VERSIONS, SILENCE,
};
use super::{host_of, Forward, SiteState};
use crate::fleet::{LinkState, LinkStatus};
use crate::ops::OperationResult;
use crate::timeline::Checkpointer;
use crate::writer::WriteMsg;
use crate::{now_ms, Server};

/// How long a dial, a handshake or a first answer may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

type Wire<S> = Framed<S, FrameCodec<SourceMsg, FollowerMsg>>;

fn codec() -> FrameCodec<SourceMsg, FollowerMsg> {
    FrameCodec::new(MAX_FRAME).compress_over(1024)
}

fn writer_stopped<T>(_: T) -> String {
    "the history writer stopped".to_string()
}

/// Dials `address` and makes the TLS handshake with `config`; the error
/// says which step failed.
async fn connect(
    address: &str,
    config: Arc<tokio_rustls::rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("cannot connect to {address}: no answer within {CONNECT_LIMIT:?}"))?
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    tokio::time::timeout(
        CONNECT_LIMIT,
        haven_pki::connect_tls(tcp, host_of(address), config),
    )
    .await
    .map_err(|_| format!("TLS with {address}: no handshake within {CONNECT_LIMIT:?}"))?
    .map_err(|e| format!("TLS with {address}: {e}"))
}

/// The side that runs `haven peer add`: dials the other server, verifies
/// it by the CA fingerprint in the token, and spends the token. Returns
/// the other site's name and CA.
pub(super) async fn pair(
    server: &Arc<Server>,
    address: &str,
    token: &str,
    parsed: &PairingToken,
) -> Result<(String, String), String> {
    let pinned = haven_pki::PinnedCa::new(&parsed.ca_fingerprint).map_err(|e| e.to_string())?;
    let config = haven_pki::client_config_pinned(pinned.clone());
    let tls = connect(address, config)
        .await
        .map_err(|e| match e.starts_with("TLS") {
            true => format!("{address} is not the server that made this token ({e})"),
            false => e,
        })?;
    let mut wire: Wire<_> = Framed::new(tls, codec());
    wire.send(FollowerMsg::Pair {
        versions: PEER_VERSIONS.to_vec(),
        token: token.trim().to_string(),
        site: server.peers.site.clone(),
        address: server.peer_address(),
        ca_pem: server.authority.ca_pem(),
    })
    .await
    .map_err(|e| format!("{address}: {e}"))?;
    let answer = tokio::time::timeout(CONNECT_LIMIT, wire.next())
        .await
        .map_err(|_| format!("{address} did not answer the pairing in time"))?;
    match answer {
        Some(Ok(SourceMsg::Paired { site, .. })) => {
            // Trust the CA the handshake proved, the one the token named.
            let ca_pem = pinned
                .learned_ca_pem()
                .ok_or_else(|| "the TLS handshake learned no CA".to_string())?;
            Ok((site, ca_pem))
        }
        Some(Ok(SourceMsg::Error { message, .. })) => {
            Err(format!("{address} refused the pairing: {message}"))
        }
        Some(Ok(other)) => Err(format!("{address} answered the pairing with {other:?}")),
        Some(Err(e)) => Err(format!("{address}: {e}")),
        None => Err(format!("{address} closed the connection")),
    }
}

/// Follows `site` until it is unpaired (`cancel`).
pub(super) async fn run(server: Arc<Server>, site: String, cancel: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(300), Duration::from_secs(15));
    let mut follower = Follower {
        site: site.clone(),
        checkpoints: HashMap::new(),
    };
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = follower.session(&server, &mut backoff) => r,
        };
        server.peers.set_forward(&site, None);
        if cancel.is_cancelled() {
            return;
        }
        let why = result.err().unwrap_or_else(|| "the link closed".into());
        follower.unreachable(&server, &why);
        let pause = backoff.next_pause();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

struct Follower {
    site: String,
    /// Per cluster: when to store a checkpoint (kept across sessions, so
    /// a reconnect does not store the same states again).
    checkpoints: HashMap<Name, Checkpointer>,
}

impl Follower {
    fn local(&self, cluster: &str) -> Name {
        Name::from(format!("{}:{cluster}", self.site).as_str())
    }

    /// The remote link as shown here: through the peer, with the state the
    /// other site has.
    fn mirrored(&self, link: LinkStatus) -> LinkStatus {
        LinkStatus {
            mode: "peer".into(),
            address: format!("site {} ({} {})", self.site, link.mode, link.address),
            ..link
        }
    }

    /// The site broke away: it, and each of its clusters, is shown
    /// unreachable since now, with its last known state.
    fn unreachable(&self, server: &Server, why: &str) {
        let was = server.peers.state_of(&self.site).map(|(s, ..)| s);
        server
            .peers
            .set_state(&self.site, SiteState::Unreachable, Some(why.to_string()));
        if was == Some(SiteState::Unreachable) {
            return;
        }
        // Logged once when it breaks (and once when it is back), not at
        // every retry.
        tracing::warn!(site = %self.site, "site {} is unreachable: {why}; showing its last known state, dialling again", self.site);
        let since = now_ms();
        let reason = format!(
            "site {} unreachable since {}: {why}; this is its last known state",
            self.site,
            haven_model::clock::rfc3339(since)
        );
        for name in server.site_clusters(&self.site) {
            if let Some(mut link) = server.fleet.link(&name) {
                link.state = LinkState::Disconnected;
                link.since_ms = since;
                link.last_error = Some(reason.clone());
                server.fleet.set_link(&name, link);
            }
        }
    }

    async fn session(&mut self, server: &Arc<Server>, backoff: &mut Backoff) -> Result<(), String> {
        let site = self.site.clone();
        let record = server
            .peers
            .record(&site)
            .ok_or_else(|| format!("site {site} is no longer paired"))?;
        let history_after = {
            let wanted = site.clone();
            server
                .read(move |s| s.peers())
                .await?
                .into_iter()
                .find(|p| p.site == wanted)
                .map_or(0, |p| p.history_after)
        };
        let identity = &server.peers.identity;
        let config = haven_pki::client_config_for_ca_with_cert(
            &record.ca_pem,
            &identity.cert_pem,
            &identity.key_pem,
        )
        .map_err(|e| e.to_string())?;
        let tls = connect(&record.address, config).await?;
        let mut wire: Wire<_> = Framed::new(tls, codec());
        wire.send(FollowerMsg::Follow {
            versions: PEER_VERSIONS.to_vec(),
            site: server.peers.site.clone(),
            history_after,
        })
        .await
        .map_err(|e| e.to_string())?;
        match tokio::time::timeout(CONNECT_LIMIT, wire.next()).await {
            Ok(Some(Ok(SourceMsg::Welcome { site: named, .. }))) if named == site => {}
            Ok(Some(Ok(SourceMsg::Welcome { site: named, .. }))) => {
                return Err(format!(
                    "{} is site {named}, not {site}; pair it again",
                    record.address
                ))
            }
            Ok(Some(Ok(SourceMsg::Error { message, .. }))) => {
                return Err(format!("refused: {message}"))
            }
            Ok(Some(Ok(other))) => return Err(format!("unexpected first answer {other:?}")),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed at once (is this server still paired there?)".into()),
            Err(_) => return Err("no welcome in time".into()),
        }
        let (forward_tx, mut forwards) = mpsc::channel::<Forward>(64);
        server.peers.set_forward(&site, Some(forward_tx));
        server.peers.set_state(&site, SiteState::Connected, None);
        backoff.reset();
        tracing::info!(site = %site, "following site {site} at {} (history after row {history_after})", record.address);

        let mut pending: HashMap<u64, oneshot::Sender<Result<OperationResult, String>>> =
            HashMap::new();
        let mut next_id = 1u64;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_heard = Instant::now();
        let mut last_sent = Instant::now();
        let result = loop {
            tokio::select! {
                frame = wire.next() => {
                    last_heard = Instant::now();
                    let msg = match frame {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) => break Err(e.to_string()),
                        None => break Err("the other site closed the link".into()),
                    };
                    match msg {
                        SourceMsg::Operated { id, result } => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(result);
                            }
                        }
                        SourceMsg::Error { message, .. } => break Err(message),
                        SourceMsg::Heartbeat => {}
                        other => {
                            if let Err(e) = self.apply(server, other).await {
                                break Err(e);
                            }
                        }
                    }
                }
                Some(forward) = forwards.recv() => {
                    let id = next_id;
                    next_id += 1;
                    pending.insert(id, forward.reply);
                    let msg = FollowerMsg::Operate {
                        id,
                        user: forward.user,
                        cluster: forward.cluster,
                        op: forward.op,
                        wait_ms: forward.wait.map(|w| w.as_millis() as u64),
                    };
                    if let Err(e) = wire.send(msg).await {
                        break Err(e.to_string());
                    }
                    last_sent = Instant::now();
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > SILENCE {
                        break Err(format!("nothing heard for {SILENCE:?}"));
                    }
                    if last_sent.elapsed() >= HEARTBEAT {
                        if let Err(e) = wire.send(FollowerMsg::Heartbeat).await {
                            break Err(e.to_string());
                        }
                        last_sent = Instant::now();
                    }
                }
            }
        };
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(format!(
                "the link to site {site} broke before it answered; the operation may or may not have run there (see its audit)"
            )));
        }
        result
    }

    /// Takes one message of the fleet or history into this server.
    async fn apply(&mut self, server: &Arc<Server>, msg: SourceMsg) -> Result<(), String> {
        match msg {
            SourceMsg::Cluster {
                name,
                link,
                epoch,
                snapshot,
            } => {
                if !crate::valid_cluster_name(&name) {
                    tracing::warn!(site = %self.site, "ignoring a cluster named `{name}` from site {}: not a cluster name", self.site);
                    return Ok(());
                }
                let local = self.local(&name);
                let status = self.mirrored(link);
                if !server.fleet.add(&local, status.clone()) {
                    server.fleet.set_link(&local, status);
                }
                if let Some(mut snapshot) = snapshot {
                    // Named here as in this fleet (the indexes, search and
                    // attention go by the snapshot's name).
                    snapshot.config.name = local.clone();
                    let checkpoint = self
                        .checkpoints
                        .entry(local.clone())
                        .or_default()
                        .snapshot(&local, epoch, &snapshot);
                    if let Some(checkpoint) = checkpoint {
                        server
                            .history
                            .send(checkpoint)
                            .await
                            .map_err(writer_stopped)?;
                    }
                    server.fleet.resync(&local, epoch, *snapshot);
                }
            }
            SourceMsg::Events {
                cluster,
                epoch,
                events,
            } => {
                let local = self.local(&cluster);
                if server.fleet.epoch_of(&local) == Some(epoch) {
                    let n = events.len();
                    if let Err(gap) = server.fleet.apply(&local, events) {
                        tracing::debug!(cluster = %local, "out of step, waiting for its next state: {gap}");
                    }
                    let checkpoint = self.checkpoints.entry(local.clone()).or_default().events(
                        &server.fleet,
                        &local,
                        epoch,
                        n,
                    );
                    if let Some(checkpoint) = checkpoint {
                        server
                            .history
                            .send(checkpoint)
                            .await
                            .map_err(writer_stopped)?;
                    }
                }
            }
            SourceMsg::Link { cluster, link } => {
                server
                    .fleet
                    .set_link(&self.local(&cluster), self.mirrored(link));
            }
            SourceMsg::Removed { cluster } => {
                server.fleet.remove(&self.local(&cluster));
            }
            SourceMsg::Synced { clusters } => {
                let there: HashSet<Name> = clusters.iter().map(|c| self.local(c)).collect();
                for name in server.site_clusters(&self.site) {
                    if !there.contains(&name) {
                        server.fleet.remove(&name);
                    }
                }
            }
            SourceMsg::History { rows } => self.store_history(server, rows).await?,
            other => return Err(format!("unexpected message {other:?}")),
        }
        Ok(())
    }

    /// Queues the rows for the history writer, a run of one cluster at a
    /// time, then the position after them (written after them, so it never
    /// names a row that is not stored).
    async fn store_history(&self, server: &Arc<Server>, rows: Vec<PeerRow>) -> Result<(), String> {
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(());
        };
        // Only rows of clusters a site may have (the fleet has no others).
        let mut rows = rows
            .into_iter()
            .filter(|r| crate::valid_cluster_name(&r.cluster))
            .peekable();
        while let Some(first) = rows.next() {
            let (cluster, epoch) = (first.cluster, first.epoch);
            let mut events = vec![first.event];
            while let Some(next) = rows.next_if(|r| r.cluster == cluster && r.epoch == epoch) {
                events.push(next.event);
            }
            server
                .history
                .send(WriteMsg::Events {
                    cluster: self.local(&cluster),
                    epoch,
                    events,
                })
                .await
                .map_err(writer_stopped)?;
        }
        server
            .history
            .send(WriteMsg::PeerHistory {
                site: self.site.clone(),
                after: last,
            })
            .await
            .map_err(writer_stopped)
    }
}
