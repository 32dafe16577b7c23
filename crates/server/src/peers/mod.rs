//! Peer management servers: a server at one site pairs with a server at
//! another, and each then shows and operates the clusters of both.
//!
//! - **Pairing** (`pair`): a Server Administrator of site A makes a
//!   one-time token ([`Server::create_pairing_token`]); on site B,
//!   `haven peer add ADDRESS --token T` makes B dial A's peer port,
//!   verifying A by the CA fingerprint inside the token, and send the
//!   token with B's name, address and CA. A spends the token, stores B and
//!   answers with its own name and CA, which B stores. From then on each
//!   trusts the other's CA for the other's certificates, and nothing else.
//! - **Following** ([`follower`]): each server dials the other's peer port
//!   with its own certificate (mutual TLS) and follows its fleet: every
//!   cluster's state, then its changes, and its history in the order it
//!   was stored, resumed after the last row stored here, so nothing is
//!   missed or written twice across a broken WAN. The other site's
//!   clusters are in this server's fleet as `SITE:CLUSTER`, so every view,
//!   search, the event stream, history and reports include them.
//! - **Operations**: an operation on `SITE:CLUSTER` is audited here and
//!   forwarded with the user's name; the other site looks the user up in
//!   its own accounts, decides by its own roles, audits it and answers
//!   ([`source`]).
//! - **Unreachable**: when the link breaks, the site and every one of its
//!   clusters are shown unreachable since that moment (their last known
//!   state, marked as such); local work never waits for a peer.
//!
//! Invariants: a site's history is stored here once per row (the history
//! writer's unique key), and the position this server resumes from moves
//! only after the rows before it are committed; only the source's own
//! clusters are served (never what it follows from a third site); an
//! operation forwarded by a peer is decided by the receiving site's roles.

pub mod api;
mod follower;
mod source;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use haven_model::Operation;
use haven_pki::TlsAcceptor;
use haven_store::{PeerRecord, PeerTokenRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::connectors::{hash_secret, random_hex};
use crate::ops::OperationResult;
use crate::{now_ms, Server};

/// How a paired site's link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteState {
    /// Dialling it (first time since start).
    Connecting,
    /// Following its fleet.
    Connected,
    /// The link is broken; its clusters show their last known state.
    Unreachable,
}

impl SiteState {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteState::Connecting => "connecting",
            SiteState::Connected => "connected",
            SiteState::Unreachable => "unreachable",
        }
    }
}

/// A paired site, as the API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PeerView {
    pub site: String,
    /// Where this server dials it.
    pub address: String,
    pub paired_ms: i64,
    pub paired_by: String,
    pub state: SiteState,
    /// Since when it is in this state.
    pub since_ms: i64,
    /// Why the link last broke or could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Its clusters known here.
    pub clusters: usize,
}

/// One site in the summary: this one, and every paired one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SiteSummary {
    pub site: String,
    /// This server's own site.
    pub local: bool,
    /// `local`, `connecting`, `connected` or `unreachable`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Its clusters the caller sees.
    pub clusters: usize,
}

/// A new pairing token, as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IssuedPairing {
    /// Give this to `haven peer add` on the other site's server.
    pub token: String,
    pub expires_ms: i64,
    /// This server's site name, and where the other site reaches it.
    pub site: String,
    pub address: String,
    /// The command to run on the other site.
    pub command: String,
}

/// Why a forwarded operation has no answer from its site.
#[derive(Debug)]
pub struct NotDone {
    /// It may have reached the site (the link broke, or no answer came).
    pub sent: bool,
    pub why: String,
}

/// An operation forwarded to a site, and where its answer goes.
pub(crate) struct Forward {
    user: String,
    cluster: String,
    op: Operation,
    wait: Option<Duration>,
    reply: oneshot::Sender<Result<OperationResult, String>>,
}

struct Site {
    record: PeerRecord,
    state: SiteState,
    since_ms: i64,
    last_error: Option<String>,
    /// Stops its follower.
    cancel: CancellationToken,
    /// The follower's session, while connected.
    forward: Option<mpsc::Sender<Forward>>,
}

impl Site {
    /// A site just loaded or paired: not dialled yet.
    fn new(record: PeerRecord) -> Site {
        Site {
            record,
            state: SiteState::Connecting,
            since_ms: now_ms(),
            last_error: None,
            cancel: CancellationToken::new(),
            forward: None,
        }
    }
}

/// The paired sites and the peer port.
pub struct Peers {
    /// This server's site name.
    pub site: String,
    sites: Mutex<BTreeMap<String, Site>>,
    /// The peer port's TLS, trusting the paired sites' CAs (rebuilt when
    /// they change).
    acceptor: RwLock<Option<TlsAcceptor>>,
    /// This server's certificate and key for dialling peers.
    identity: haven_pki::IssuedClient,
    /// Where the peer port listens, once it does.
    pub addr: OnceLock<SocketAddr>,
    /// The session serving each site's follower here, by number (a newer
    /// one replaces it).
    serving: Mutex<HashMap<String, (u64, CancellationToken)>>,
    sessions: std::sync::atomic::AtomicU64,
}

/// Checks a site name: what a cluster name may hold (no `:`), at most 64
/// characters.
pub fn check_site(name: &str) -> Result<(), String> {
    if name.len() <= 64 && crate::valid_cluster_name(name) {
        Ok(())
    } else {
        Err(format!(
            "site name `{name}`: use 1 to 64 letters, digits, `_`, `-` and `.`"
        ))
    }
}

impl Peers {
    /// The peers of a server starting with these stored records.
    pub fn new(
        site: String,
        authority: &haven_pki::Authority,
        records: &[PeerRecord],
    ) -> anyhow::Result<Peers> {
        check_site(&site).map_err(|e| anyhow::anyhow!("[peers] site: {e}"))?;
        let identity = authority
            .issue_client(&format!("peer.{site}"))
            .map_err(|e| anyhow::anyhow!("cannot issue this server's peer certificate: {e}"))?;
        let peers = Peers {
            site,
            sites: Mutex::new(BTreeMap::new()),
            acceptor: RwLock::new(None),
            identity,
            addr: OnceLock::new(),
            serving: Mutex::new(HashMap::new()),
            sessions: Default::default(),
        };
        {
            let mut sites = peers.lock();
            for record in records {
                sites.insert(record.site.clone(), Site::new(record.clone()));
            }
        }
        peers.rebuild_acceptor(authority);
        Ok(peers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Site>> {
        self.sites.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the peer port trust exactly the paired sites' CAs.
    fn rebuild_acceptor(&self, authority: &haven_pki::Authority) {
        let cas: Vec<String> = self
            .lock()
            .values()
            .map(|s| s.record.ca_pem.clone())
            .collect();
        let refs: Vec<&str> = cas.iter().map(String::as_str).collect();
        let acceptor = match authority.peer_server_config(&refs) {
            Ok(config) => Some(TlsAcceptor::from(config)),
            Err(e) => {
                tracing::error!("the peer port cannot trust the paired sites' CAs: {e}");
                None
            }
        };
        *self.acceptor.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The paired site a cluster name `SITE:CLUSTER` belongs to, and the
    /// cluster's name there.
    pub fn remote<'a>(&self, cluster: &'a str) -> Option<(&'a str, &'a str)> {
        let (site, name) = cluster.split_once(':')?;
        self.lock().contains_key(site).then_some((site, name))
    }

    /// The stored record of a paired site.
    fn record(&self, site: &str) -> Option<PeerRecord> {
        self.lock().get(site).map(|s| s.record.clone())
    }

    /// Whether any site is paired.
    pub fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The names of the paired sites.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn set_state(&self, site: &str, state: SiteState, error: Option<String>) {
        if let Some(s) = self.lock().get_mut(site) {
            if s.state != state {
                s.since_ms = now_ms();
            }
            s.state = state;
            s.last_error = error;
        }
    }

    /// The state of a site's link, and since when.
    pub fn state_of(&self, site: &str) -> Option<(SiteState, i64, Option<String>)> {
        self.lock()
            .get(site)
            .map(|s| (s.state, s.since_ms, s.last_error.clone()))
    }

    fn set_forward(&self, site: &str, forward: Option<mpsc::Sender<Forward>>) {
        if let Some(s) = self.lock().get_mut(site) {
            s.forward = forward;
        }
    }
}

impl Server {
    /// Where peers reach this server: `[peers] advertise`, else the peer
    /// port's address (with this host's name for a wildcard address).
    pub fn peer_address(&self) -> String {
        if !self.config.peers.advertise.is_empty() {
            return self.config.peers.advertise.clone();
        }
        match self.peers.addr.get() {
            Some(addr) if addr.ip().is_unspecified() => format!(
                "{}:{}",
                crate::tls::host_name().unwrap_or_else(|| "localhost".into()),
                addr.port()
            ),
            Some(addr) => addr.to_string(),
            None => self.config.peers.listen.clone(),
        }
    }

    /// Starts following every paired site.
    pub(crate) fn start_peers(self: &Arc<Self>) {
        for site in self.peers.names() {
            self.spawn_follower(&site, Duration::ZERO);
        }
    }

    /// Starts following `site` after `delay`.
    fn spawn_follower(self: &Arc<Self>, site: &str, delay: Duration) {
        let cancel = CancellationToken::new();
        if let Some(s) = self.peers.lock().get_mut(site) {
            s.cancel.cancel();
            s.cancel = cancel.clone();
        }
        let (me, site) = (self.clone(), site.to_string());
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            follower::run(me, site, cancel).await
        });
    }

    /// Makes a one-time pairing token, valid for `ttl`.
    pub async fn create_pairing_token(
        self: &Arc<Self>,
        created_by: &str,
        ttl: Duration,
    ) -> Result<IssuedPairing, String> {
        let id = random_hex(8)?;
        let secret = random_hex(16)?;
        let now = now_ms();
        let record = PeerTokenRecord {
            id: id.clone(),
            secret_hash: hash_secret(&secret),
            created_ms: now,
            expires_ms: now + ttl.as_millis() as i64,
            created_by: created_by.to_string(),
        };
        let expires_ms = record.expires_ms;
        self.write_store(move |s| s.insert_peer_token(&record))
            .await?;
        let token = wire::PairingToken {
            id,
            secret,
            ca_fingerprint: self.authority.ca_fingerprint(),
        }
        .encode();
        let address = self.peer_address();
        Ok(IssuedPairing {
            command: format!("haven peer add {address} --token {token}"),
            token,
            expires_ms,
            site: self.peers.site.clone(),
            address,
        })
    }

    /// Pairs with the server at `address` using its token (the side that
    /// runs `haven peer add`).
    pub async fn pair_with(
        self: &Arc<Self>,
        address: &str,
        token: &str,
        by: &str,
    ) -> Result<PeerView, String> {
        let address = normalize_address(address)?;
        let parsed = wire::PairingToken::parse(token)?;
        let (site, ca_pem) = follower::pair(self, &address, token, &parsed).await?;
        check_site(&site).map_err(|e| format!("the other server's {e}"))?;
        if site == self.peers.site {
            return Err(format!(
                "the other server's site is named {site}, like this one; give one of them another [peers] site"
            ));
        }
        let record = PeerRecord {
            site: site.clone(),
            address,
            ca_pem,
            paired_ms: now_ms(),
            paired_by: by.to_string(),
            history_after: 0,
        };
        self.add_peer(record, Duration::ZERO).await?;
        self.peer_views()
            .into_iter()
            .find(|p| p.site == site)
            .ok_or_else(|| "the peer vanished".to_string())
    }

    /// Stores a paired site and starts following it after `delay` (both
    /// sides of a pairing end here; the side that accepted waits a moment,
    /// so the other has stored the pairing when it is dialled).
    async fn add_peer(self: &Arc<Self>, record: PeerRecord, delay: Duration) -> Result<(), String> {
        let saved = record.clone();
        self.write_store(move |s| s.upsert_peer(&saved)).await?;
        self.peers
            .lock()
            .insert(record.site.clone(), Site::new(record.clone()));
        self.peers.rebuild_acceptor(&self.authority);
        self.spawn_follower(&record.site, delay);
        tracing::info!(site = %record.site, "paired with site {} at {}", record.site, record.address);
        Ok(())
    }

    /// Unpairs a site: stops following it, forgets its CA and its clusters
    /// (their history stays). The other side stops being trusted here.
    pub async fn remove_peer(self: &Arc<Self>, site: &str) -> Result<bool, String> {
        let removed = self.peers.lock().remove(site);
        let Some(removed) = removed else {
            return Ok(false);
        };
        removed.cancel.cancel();
        if let Some(serving) = self
            .peers
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(site)
        {
            serving.1.cancel();
        }
        self.peers.rebuild_acceptor(&self.authority);
        for name in self.site_clusters(site) {
            self.fleet.remove(&name);
        }
        let owned = site.to_string();
        self.write_store(move |s| s.remove_peer(&owned)).await?;
        tracing::info!(site, "unpaired site {site}");
        Ok(true)
    }

    /// The clusters of `site` in the fleet (`SITE:CLUSTER`).
    pub fn site_clusters(&self, site: &str) -> Vec<haven_model::Name> {
        let prefix = format!("{site}:");
        let mut names = self.fleet.names();
        names.retain(|n| n.starts_with(&prefix));
        names
    }

    /// Every paired site with its link.
    pub fn peer_views(&self) -> Vec<PeerView> {
        let names = self.fleet.names();
        let counts = clusters_per_site(&names);
        self.peers
            .lock()
            .values()
            .map(|s| PeerView {
                site: s.record.site.clone(),
                address: s.record.address.clone(),
                paired_ms: s.record.paired_ms,
                paired_by: s.record.paired_by.clone(),
                state: s.state,
                since_ms: s.since_ms,
                last_error: s.last_error.clone(),
                clusters: counts.get(s.record.site.as_str()).copied().unwrap_or(0),
            })
            .collect()
    }

    /// This site and every paired one, counting the clusters in `seen`.
    pub fn site_summaries(&self, seen: &[haven_model::Name]) -> Vec<SiteSummary> {
        let counts = clusters_per_site(seen);
        let mut out = vec![SiteSummary {
            site: self.peers.site.clone(),
            local: true,
            state: "local".into(),
            since_ms: None,
            last_error: None,
            clusters: counts.get("").copied().unwrap_or(0),
        }];
        for s in self.peers.lock().values() {
            out.push(SiteSummary {
                site: s.record.site.clone(),
                local: false,
                state: s.state.as_str().into(),
                since_ms: Some(s.since_ms),
                last_error: s.last_error.clone(),
                clusters: counts.get(s.record.site.as_str()).copied().unwrap_or(0),
            });
        }
        out
    }

    /// Forwards an operation on `SITE:CLUSTER` to its site, for `user`.
    pub(crate) async fn forward_operation(
        &self,
        site: &str,
        cluster: &str,
        user: &str,
        op: Operation,
        wait: Option<Duration>,
    ) -> Result<OperationResult, NotDone> {
        let unsent = |why: String| NotDone { sent: false, why };
        let sender = {
            let sites = self.peers.lock();
            let s = sites
                .get(site)
                .ok_or_else(|| unsent(format!("site {site} is not paired")))?;
            match &s.forward {
                Some(f) => f.clone(),
                None => {
                    return Err(unsent(format!(
                        "site {site} is unreachable since {}{}",
                        haven_model::clock::rfc3339(s.since_ms),
                        s.last_error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )))
                }
            }
        };
        let (reply, answer) = oneshot::channel();
        sender
            .send(Forward {
                user: user.to_string(),
                cluster: cluster.to_string(),
                op,
                wait,
                reply,
            })
            .await
            .map_err(|_| unsent(format!("the link to site {site} closed")))?;
        let limit = wait.unwrap_or_default() + Duration::from_secs(30);
        let sent = |why: String| NotDone { sent: true, why };
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(Ok(result))) => Ok(result),
            // Refused there before anything ran (no such account, no
            // such cluster).
            Ok(Ok(Err(why))) => Err(unsent(format!("site {site} refused: {why}"))),
            Ok(Err(_)) => Err(sent(format!(
                "the link to site {site} broke before it answered; the operation may or may not have run there (see its audit)"
            ))),
            Err(_) => Err(sent(format!("site {site} did not answer within {limit:?}"))),
        }
    }
}

/// `HOST:PORT` from what a person typed (`peer://` or `https://` allowed).
pub fn normalize_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bare = text
        .split_once("://")
        .map_or(text, |(_, rest)| rest)
        .trim_end_matches('/');
    match bare.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(bare.to_string())
        }
        _ => Err(format!(
            "address `{text}`: expected HOST:PORT of the other server's peer port ([peers] listen, 8443 by default)"
        )),
    }
}

/// The host part of `HOST:PORT` (without IPv6 brackets): the name the
/// other server's certificate must carry.
fn host_of(address: &str) -> &str {
    haven_protocol::transport::Address::parse(address).host
}

/// How many of `names` each site has: `""` for this one's own, else the
/// `SITE` of `SITE:CLUSTER`.
fn clusters_per_site(names: &[haven_model::Name]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        let site = name.split_once(':').map_or("", |(s, _)| s);
        *counts.entry(site).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_and_addresses_are_checked() {
        assert!(check_site("east-1.dc").is_ok());
        assert!(check_site("").is_err());
        assert!(check_site("a:b").is_err());
        assert_eq!(normalize_address("peer://h:8443/"), Ok("h:8443".into()));
        assert_eq!(normalize_address(" 10.0.0.1:9 "), Ok("10.0.0.1:9".into()));
        assert!(normalize_address("h").is_err());
        assert!(normalize_address("h:x").is_err());
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("h:1"), "h");
    }
}
