//! The source: the peer port, where paired sites' servers pair and follow
//! this server's own clusters, and send operations for their users.
//!
//! A `pair` needs no certificate, only an unspent pairing token. A
//! `follow` must present a certificate that the paired site's CA issued
//! (checked against that site's CA alone, after the handshake checked it
//! against all of them); anything else is refused and logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::Operation;
use haven_protocol::FrameCodec;
use haven_store::PeerRecord;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::wire::{
    FollowerMsg, PairingToken, PeerRow, SourceMsg, HEARTBEAT, MAX_FRAME, PEER_VERSIONS, SILENCE,
};
use super::{check_site, normalize_address};
use crate::auth::Caller;
use crate::connectors::hash_secret;
use crate::fleet::FleetUpdate;
use crate::ops::{self, OperationResult};
use crate::tls::TlsListener;
use crate::{now_ms, Server};

/// History rows per message.
const HISTORY_BATCH: usize = 2000;

type Wire<S> = Framed<S, FrameCodec<FollowerMsg, SourceMsg>>;

type HistoryRead = tokio::task::JoinHandle<Result<Vec<(i64, haven_store::HistoryRow)>, String>>;

fn refusal(code: &str, message: impl Into<String>) -> SourceMsg {
    SourceMsg::Error {
        code: code.into(),
        message: message.into(),
    }
}

/// Whether a cluster is this server's own (not one it follows from a site).
fn own(name: &str) -> bool {
    !name.contains(':')
}

impl Server {
    /// Accepts peers on `listener` until the server stops.
    pub(crate) async fn serve_peers(self: Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        let mut incoming = match TlsListener::with_acceptor(
            listener,
            move || me.peers.acceptor(),
            (
                "peer",
                "only certificates of paired sites' CAs are accepted",
            ),
        ) {
            Ok(incoming) => incoming,
            Err(e) => {
                tracing::error!("the peer port is off: {e}");
                return;
            }
        };
        while let Some((tls, peer)) = incoming.next().await {
            let me = self.clone();
            tokio::spawn(async move {
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref().to_vec());
                if let Err(e) = me.peer_session(tls, peer, certificate).await {
                    tracing::debug!(%peer, "peer session ended: {e}");
                }
            });
        }
    }

    async fn peer_session<S: AsyncRead + AsyncWrite + Unpin>(
        self: &Arc<Self>,
        tls: S,
        peer: SocketAddr,
        certificate: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let mut wire: Wire<S> = Framed::new(tls, FrameCodec::new(MAX_FRAME).compress_over(1024));
        let first = tokio::time::timeout(Duration::from_secs(10), wire.next())
            .await
            .map_err(|_| "nothing said in time".to_string())?;
        let unsupported = |versions: &[u32]| {
            (!versions.iter().any(|v| PEER_VERSIONS.contains(v))).then(|| {
                refusal(
                    "unsupported_version",
                    format!(
                        "this server speaks peer protocol {PEER_VERSIONS:?}, the other {versions:?}; upgrade the older one"
                    ),
                )
            })
        };
        match first {
            Some(Ok(FollowerMsg::Pair {
                versions,
                token,
                site,
                address,
                ca_pem,
            })) => {
                if let Some(refused) = unsupported(&versions) {
                    let _ = wire.send(refused).await;
                    return Err("unsupported version".into());
                }
                match self.accept_pairing(&token, &site, &address, &ca_pem).await {
                    Ok(()) => {
                        tracing::info!(%peer, "site {site} paired with this one (it will be dialled at {address})");
                        let _ = wire
                            .send(SourceMsg::Paired {
                                site: self.peers.site.clone(),
                                ca_pem: self.authority.ca_pem(),
                            })
                            .await;
                        Ok(())
                    }
                    Err(why) => {
                        tracing::warn!(%peer, "refused to pair with site {site}: {why}");
                        self.record_access(peer_access(&site, "pair_peer", Some(why.clone())))
                            .await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let _ = wire.send(refusal("bad_token", why.clone())).await;
                        Err(why)
                    }
                }
            }
            Some(Ok(FollowerMsg::Follow {
                versions,
                site,
                history_after,
            })) => {
                if let Some(refused) = unsupported(&versions) {
                    let _ = wire.send(refused).await;
                    return Err("unsupported version".into());
                }
                let record = self.peers.record(&site);
                let proven = match (&record, &certificate) {
                    (Some(r), Some(cert)) => haven_pki::issued_by(&r.ca_pem, cert),
                    _ => false,
                };
                if !proven {
                    let why = match (record, certificate) {
                        (None, _) => format!("site {site} is not paired with this server"),
                        (_, None) => "no certificate presented".to_string(),
                        _ => format!("the certificate was not issued by site {site}'s CA"),
                    };
                    tracing::warn!(%peer, "refused a peer claiming site {site}: {why}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = wire
                        .send(refusal("authentication_failed", why.clone()))
                        .await;
                    return Err(why);
                }
                self.serve_follower(wire, &site, history_after).await
            }
            Some(Ok(_)) => {
                let _ = wire
                    .send(refusal("bad_frame", "expected pair or follow first"))
                    .await;
                Err("bad first message".into())
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("closed".into()),
        }
    }

    /// Spends a pairing token for `site` and stores the site.
    async fn accept_pairing(
        self: &Arc<Self>,
        token: &str,
        site: &str,
        address: &str,
        ca_pem: &str,
    ) -> Result<(), String> {
        let parsed = PairingToken::parse(token)?;
        if parsed.ca_fingerprint != self.authority.ca_fingerprint() {
            return Err("this token was made by another server (CA fingerprint differs)".into());
        }
        check_site(site)?;
        if site == self.peers.site {
            return Err(format!(
                "the other server's site is named {site}, like this one; give one of them another [peers] site"
            ));
        }
        if self.peers.record(site).is_some() {
            return Err(format!(
                "site {site} is already paired here; remove it first (haven peer remove {site})"
            ));
        }
        let address = normalize_address(address)?;
        haven_pki::check_ca(ca_pem).map_err(|e| format!("the CA sent: {e}"))?;
        let (id, hash, named) = (
            parsed.id.clone(),
            hash_secret(&parsed.secret),
            site.to_string(),
        );
        self.write_store(move |s| s.spend_peer_token(&id, &hash, &named, now_ms()))
            .await??;
        self.add_peer(
            PeerRecord {
                site: site.to_string(),
                address,
                ca_pem: ca_pem.to_string(),
                paired_ms: now_ms(),
                paired_by: format!("pairing token {}", parsed.id),
                history_after: 0,
            },
            Duration::from_secs(1),
        )
        .await?;
        self.record_access(peer_access(site, "pair_peer", None))
            .await;
        Ok(())
    }

    /// Serves one paired site's follower until it goes or is replaced.
    async fn serve_follower<S: AsyncRead + AsyncWrite + Unpin>(
        self: &Arc<Self>,
        mut wire: Wire<S>,
        site: &str,
        history_after: i64,
    ) -> Result<(), String> {
        let cancel = CancellationToken::new();
        let session = self
            .peers
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((_, old)) = self
            .peers
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(site.to_string(), (session, cancel.clone()))
        {
            old.cancel();
        }
        // Subscribed before the states are read: nothing falls between.
        let mut updates = self.fleet.subscribe();
        wire.send(SourceMsg::Welcome {
            site: self.peers.site.clone(),
            version: 1,
        })
        .await
        .map_err(|e| e.to_string())?;
        self.send_every_cluster(&mut wire).await?;
        tracing::info!(
            site,
            "site {site} follows this server's fleet (history after row {history_after})"
        );

        let (answers_tx, mut answers) = mpsc::channel::<SourceMsg>(64);
        let mut after = history_after;
        // The history read in flight (kept across turns of the loop, so
        // a busy fleet cannot starve it).
        let mut reading = Some(self.read_history(after));
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_heard = Instant::now();
        let mut last_sent = Instant::now();
        let result = loop {
            tokio::select! {
                _ = cancel.cancelled() => break Err("replaced by a newer session".to_string()),
                update = updates.recv() => {
                    let sent = match update {
                        Ok(update) => self.forward_update(&mut wire, &update).await,
                        Err(RecvError::Lagged(_)) => self.send_every_cluster(&mut wire).await,
                        Err(RecvError::Closed) => break Ok(()),
                    };
                    if let Err(e) = sent {
                        break Err(e);
                    }
                    last_sent = Instant::now();
                }
                frame = wire.next() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(FollowerMsg::Operate { id, user, cluster, op, wait_ms })) => {
                            let me = self.clone();
                            let from = site.to_string();
                            let answers = answers_tx.clone();
                            tokio::spawn(async move {
                                let wait = wait_ms.map(Duration::from_millis);
                                let result = me.peer_operation(&from, &user, &cluster, op, wait).await;
                                let _ = answers.send(SourceMsg::Operated { id, result }).await;
                            });
                        }
                        Some(Ok(FollowerMsg::Heartbeat)) => {}
                        Some(Ok(other)) => {
                            let _ = wire.send(refusal("bad_frame", format!("unexpected message {other:?}"))).await;
                            break Err("unexpected message".into());
                        }
                        Some(Err(e)) => break Err(e.to_string()),
                        None => break Err("the follower closed the link".into()),
                    }
                }
                Some(answer) = answers.recv() => {
                    if let Err(e) = wire.send(answer).await {
                        break Err(e.to_string());
                    }
                    last_sent = Instant::now();
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > SILENCE {
                        break Err(format!("nothing heard for {SILENCE:?}"));
                    }
                    if reading.is_none() {
                        reading = Some(self.read_history(after));
                    }
                    if last_sent.elapsed() >= HEARTBEAT {
                        if let Err(e) = wire.send(SourceMsg::Heartbeat).await {
                            break Err(e.to_string());
                        }
                        last_sent = Instant::now();
                    }
                }
                read = async { reading.as_mut().expect("guarded").await }, if reading.is_some() => {
                    reading = None;
                    let rows = match read {
                        Ok(Ok(rows)) => rows,
                        Ok(Err(e)) => {
                            tracing::error!(site, "cannot read history for site {site}: {e}");
                            continue;
                        }
                        Err(e) => break Err(format!("the history read failed: {e}")),
                    };
                    // A full batch: there may be more at once; else wait a tick.
                    let full = rows.len() == HISTORY_BATCH;
                    if let Some((last, _)) = rows.last() {
                        after = *last;
                        let rows = rows
                            .into_iter()
                            .map(|(id, r)| PeerRow { id, cluster: r.cluster, epoch: r.epoch, event: r.event })
                            .collect();
                        if let Err(e) = wire.send(SourceMsg::History { rows }).await {
                            break Err(e.to_string());
                        }
                        last_sent = Instant::now();
                    }
                    if full {
                        reading = Some(self.read_history(after));
                    }
                }
            }
        };
        {
            let mut serving = self.peers.serving.lock().unwrap_or_else(|p| p.into_inner());
            if serving.get(site).is_some_and(|(s, _)| *s == session) {
                serving.remove(site);
            }
        }
        if let Some(read) = reading {
            read.abort();
        }
        if let Err(e) = &result {
            tracing::info!(site, "site {site} stopped following: {e}");
        }
        result
    }

    /// Reads this server's own history after row `after`, in a task.
    fn read_history(self: &Arc<Self>, after: i64) -> HistoryRead {
        let me = self.clone();
        tokio::spawn(async move {
            me.read(move |s| s.local_history_after(after, HISTORY_BATCH))
                .await
        })
    }

    /// Every own cluster's whole state, then `synced`.
    async fn send_every_cluster<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        wire: &mut Wire<S>,
    ) -> Result<(), String> {
        let mut names = Vec::new();
        for name in self.fleet.names() {
            if !own(&name) {
                continue;
            }
            if let Some(msg) = self.cluster_message(&name) {
                wire.feed(msg).await.map_err(|e| e.to_string())?;
                names.push(name.to_string());
            }
        }
        wire.send(SourceMsg::Synced { clusters: names })
            .await
            .map_err(|e| e.to_string())
    }

    fn cluster_message(&self, name: &str) -> Option<SourceMsg> {
        let (state, link) = self.fleet.state(name)?;
        let (epoch, snapshot) = match state {
            Some((epoch, snapshot)) => (epoch, Some(Box::new(snapshot))),
            None => (0, None),
        };
        Some(SourceMsg::Cluster {
            name: name.to_string(),
            link,
            epoch,
            snapshot,
        })
    }

    async fn forward_update<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        wire: &mut Wire<S>,
        update: &FleetUpdate,
    ) -> Result<(), String> {
        let msg = match update {
            FleetUpdate::Events {
                cluster,
                epoch,
                events,
            } if own(cluster) => Some(SourceMsg::Events {
                cluster: cluster.to_string(),
                epoch: *epoch,
                events: events.clone(),
            }),
            FleetUpdate::Resynced { cluster, .. } | FleetUpdate::Added { cluster }
                if own(cluster) =>
            {
                self.cluster_message(cluster)
            }
            FleetUpdate::Link { cluster, status } if own(cluster) => Some(SourceMsg::Link {
                cluster: cluster.to_string(),
                link: status.clone(),
            }),
            FleetUpdate::Removed { cluster } if own(cluster) => Some(SourceMsg::Removed {
                cluster: cluster.to_string(),
            }),
            _ => None,
        };
        match msg {
            Some(msg) => wire.send(msg).await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Runs an operation a paired site forwarded for one of its users: as
    /// the account of that name here, decided by this site's roles, and
    /// audited here.
    async fn peer_operation(
        self: &Arc<Self>,
        from: &str,
        user: &str,
        cluster: &str,
        op: Operation,
        wait: Option<Duration>,
    ) -> Result<OperationResult, String> {
        let here = &self.peers.site;
        if !own(cluster) {
            return Err(format!(
                "cluster {cluster} is not one of site {here}'s own; operate it from its own site"
            ));
        }
        let caller = match &self.auth {
            None => Caller::Unchecked {
                name: user.to_string(),
            },
            Some(_) => match crate::auth::resolve_account(&self.config.auth, user).await {
                Ok(identity) => Caller::User(identity),
                Err(why) => {
                    tracing::warn!(
                        user,
                        cluster,
                        "refused an operation from site {from}: {why}"
                    );
                    self.record_access(peer_access(from, "peer_operation", Some(why.clone())))
                        .await;
                    return Err(why);
                }
            },
        };
        tracing::info!(
            user,
            cluster,
            "operation from site {from} for {user}: {}",
            op.verb()
        );
        ops::run(self, &caller, cluster, op, wait)
            .await
            .map_err(|e| match e {
                ops::OpError::UnknownCluster(_) | ops::OpError::Invisible(_) => {
                    format!("site {here} has no cluster named {cluster} that {user} may see")
                }
                ops::OpError::Audit(m) => format!("site {here} cannot record the operation: {m}"),
            })
    }
}

/// An access log entry about a peer (a pairing, a refused operation).
fn peer_access(site: &str, action: &str, refused: Option<String>) -> haven_store::NewAccess {
    haven_store::NewAccess {
        time_ms: now_ms(),
        user: format!("site {site}"),
        source: Some("peer port".into()),
        action: action.into(),
        target: Some(site.to_string()),
        cluster: None,
        outcome: match refused {
            Some(_) => haven_store::AccessOutcome::Denied,
            None => haven_store::AccessOutcome::Allowed,
        },
        reason: refused,
    }
}
