//! Peer management servers (other sites) this server is paired with, and
//! the one-time tokens that pair them (tables `peers` and `peer_tokens`,
//! schema V6), the same way on every backend; and the read a peer follows
//! this server's history with ([`PeerStore::local_history_after`]).
//!
//! A token is kept only as the SHA-256 of its secret, and is spent at most
//! once, before it expires, in one transaction.

use serde::{Deserialize, Serialize};

use crate::{HistoryRow, StoreError};

/// A paired site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer's site name (its clusters are `SITE:CLUSTER` here).
    pub site: String,
    /// `HOST:PORT` of the peer's peer port, where this server dials it.
    pub address: String,
    /// The peer's fleet CA (PEM): what its server and client
    /// certificates must chain to.
    pub ca_pem: String,
    /// When the pairing was made here.
    pub paired_ms: i64,
    /// Who made it here.
    pub paired_by: String,
    /// The id of the last row of the peer's history stored here (0: none).
    pub history_after: i64,
}

/// A pairing token, as stored (its secret only as a hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTokenRecord {
    /// Its public part.
    pub id: String,
    /// SHA-256 hex of the secret.
    pub secret_hash: String,
    /// When it was made.
    pub created_ms: i64,
    /// After this it is refused.
    pub expires_ms: i64,
    /// Who made it.
    pub created_by: String,
}

/// Peers and pairing tokens.
pub trait PeerStore {
    /// Stores a new pairing token.
    fn insert_peer_token(&mut self, token: &PeerTokenRecord) -> Result<(), StoreError>;

    /// Spends a pairing token for `site`, atomically: `Ok(Err(why))` when
    /// it is unknown, wrong, spent or expired (and nothing changes).
    fn spend_peer_token(
        &mut self,
        id: &str,
        secret_hash: &str,
        site: &str,
        now_ms: i64,
    ) -> Result<Result<(), String>, StoreError>;

    /// Every paired site, by name.
    fn peers(&self) -> Result<Vec<PeerRecord>, StoreError>;

    /// Adds a peer, or replaces the one of that site (every field as given).
    fn upsert_peer(&mut self, peer: &PeerRecord) -> Result<(), StoreError>;

    /// Removes a peer; false if there was none of that name.
    fn remove_peer(&mut self, site: &str) -> Result<bool, StoreError>;

    /// Records that the peer's history up to row `after` is stored here
    /// (never moves it back).
    fn set_peer_history(&mut self, site: &str, after: i64) -> Result<(), StoreError>;

    /// This server's own history (not what it follows from peers: no
    /// cluster named `SITE:CLUSTER`) after row `after_id`, in the order it
    /// was stored, at most `limit` rows, each with its row id.
    fn local_history_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, HistoryRow)>, StoreError>;
}

/// Whether a stored token may be spent now: `Err(why)` names what is wrong.
/// `row` is (secret hash, expires, used) of the token, `None` when unknown.
pub(crate) fn peer_token_verdict(
    row: Option<(String, i64, Option<i64>)>,
    secret_hash: &str,
    now_ms: i64,
) -> Result<(), String> {
    match row {
        None => Err("unknown pairing token; create a new one on the other server".into()),
        Some((hash, _, _)) if !same(hash.as_bytes(), secret_hash.as_bytes()) => {
            Err("wrong pairing token secret; copy the whole token".into())
        }
        Some((_, _, Some(_))) => {
            Err("this pairing token was already used; create a new one".into())
        }
        Some((_, expires, _)) if expires < now_ms => {
            Err("this pairing token has expired; create a new one".into())
        }
        Some(_) => Ok(()),
    }
}

/// Compares in time that does not depend on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
