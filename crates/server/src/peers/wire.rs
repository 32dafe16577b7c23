//! The peer protocol: length-prefixed JSON frames (the engine protocol's
//! [`haven_protocol::FrameCodec`], compressed over 1 KiB) over mutual TLS
//! on the peer port.
//!
//! The follower (the site that wants to see the other's fleet) speaks
//! first: `pair` once, with a token and no certificate; afterwards
//! `follow`, presenting its certificate. The source answers `welcome`,
//! every one of its own clusters (`cluster`), `synced`, and from then on
//! what changes (`events`, `cluster`, `link`, `removed`) and its history in
//! the order it stored it (`history`, by row id). Operations go the other
//! way (`operate` → `operated`). Both sides send `heartbeat` when idle.

use haven_model::{ClusterSnapshot, Event, Operation};
use serde::{Deserialize, Serialize};

use crate::fleet::LinkStatus;
use crate::ops::OperationResult;

/// Versions of the peer protocol this build speaks.
pub const PEER_VERSIONS: &[u32] = &[1];

/// Largest frame (a big cluster's snapshot).
pub const MAX_FRAME: usize = 64 << 20;

/// Each side sends a heartbeat when it has sent nothing for this long...
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// ...and takes a link silent for this long as broken.
pub const SILENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// What the follower sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FollowerMsg {
    /// Spend a pairing token: "trust my CA, as I will trust yours".
    Pair {
        versions: Vec<u32>,
        token: String,
        /// The follower's site name.
        site: String,
        /// Where the source reaches the follower's peer port.
        address: String,
        /// The follower's fleet CA (PEM).
        ca_pem: String,
    },
    /// Follow the source's fleet and history (after row `history_after`).
    Follow {
        versions: Vec<u32>,
        site: String,
        history_after: i64,
    },
    /// Run an operation for a user of the follower's site.
    Operate {
        id: u64,
        user: String,
        cluster: String,
        op: Operation,
        /// Wait this long for the final state.
        wait_ms: Option<u64>,
    },
    Heartbeat,
}

/// One row of the source's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRow {
    pub id: i64,
    pub cluster: String,
    pub epoch: u64,
    pub event: Event,
}

/// What the source sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceMsg {
    /// The pairing is made: the source's name and CA.
    Paired {
        site: String,
        ca_pem: String,
    },
    Welcome {
        site: String,
        version: u32,
    },
    /// A cluster's whole state (no snapshot: not synced at the source yet).
    Cluster {
        name: String,
        link: LinkStatus,
        epoch: u64,
        snapshot: Option<Box<ClusterSnapshot>>,
    },
    Events {
        cluster: String,
        epoch: u64,
        events: Vec<Event>,
    },
    Link {
        cluster: String,
        link: LinkStatus,
    },
    Removed {
        cluster: String,
    },
    /// Every cluster of the site has been sent; any other is gone.
    Synced {
        clusters: Vec<String>,
    },
    History {
        rows: Vec<PeerRow>,
    },
    Operated {
        id: u64,
        result: Result<OperationResult, String>,
    },
    Error {
        code: String,
        message: String,
    },
    Heartbeat,
}

/// A pairing token: `hvp1.ID.SECRET.FINGERPRINT` (the issuing server's CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingToken {
    pub id: String,
    pub secret: String,
    pub ca_fingerprint: String,
}

impl PairingToken {
    pub fn encode(&self) -> String {
        format!("hvp1.{}.{}.{}", self.id, self.secret, self.ca_fingerprint)
    }

    /// Parses a token; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<PairingToken, String> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
        match parts.as_slice() {
            ["hvp1", id, secret, fp] if hex(id) && hex(secret) && fp.len() == 64 && hex(fp) => {
                Ok(PairingToken {
                    id: id.to_string(),
                    secret: secret.to_string(),
                    ca_fingerprint: fp.to_lowercase(),
                })
            }
            ["hvp1", ..] => Err(
                "malformed pairing token: expected hvp1.ID.SECRET.FINGERPRINT (copy it whole from `haven peer token` on the other server)"
                    .into(),
            ),
            _ => Err("not a Haven pairing token (they start with `hvp1.`; make one with `haven peer token` on the other server)".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairing_token_round_trips_and_bad_ones_say_why() {
        let token = PairingToken {
            id: "0a1b".into(),
            secret: "ff00".into(),
            ca_fingerprint: "ab".repeat(32),
        };
        assert_eq!(PairingToken::parse(&token.encode()), Ok(token.clone()));
        assert_eq!(
            PairingToken::parse(&format!(" {} \n", token.encode())),
            Ok(token)
        );
        assert!(PairingToken::parse("hvp1.zz.ff.00")
            .unwrap_err()
            .contains("malformed"));
        assert!(PairingToken::parse("hvn1.aa.bb.cc")
            .unwrap_err()
            .contains("not a Haven pairing token"));
    }
}
