//! The connector protocol: between `haven connector` (beside an engine,
//! dialling out) and `haven server`, over TLS, in the same frames as the
//! engine protocol.
//!
//! A new connector sends [`ConnectorMsg::Join`] with a one-time token and
//! gets its own credentials; every later connection starts with
//! [`ConnectorMsg::Hello`]. The server answers with the last position it
//! has stored for the cluster; the connector sends the cluster's current
//! snapshot, then every event after that position from its spool, and the
//! server acknowledges what it has stored so the connector can drop it.
//!
//! Connector certificates came later, within version 1, by additions only:
//! a server that issues them sends [`ServerMsg::Joined`] with `cert_pem`
//! and `key_pem` (absent from an older server, and ignored by an older
//! connector), and a connector that holds them presents the certificate at
//! the TLS handshake, outside these messages. A session of a connector with
//! a certificate must claim the cluster the certificate names; a connector
//! without one (it joined before) is still admitted on its secret alone.

use haven_model::{ClusterSnapshot, CommandResult, Event, Name, Operation};
use serde::{Deserialize, Serialize};

/// The connector protocol versions this build speaks.
pub const CONNECTOR_VERSIONS: &[u32] = &[1];

/// A position in a cluster's history: engine run and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: u64,
    pub seq: u64,
}

/// What a connector sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ConnectorMsg {
    /// First contact: trade a one-time token for credentials.
    Join {
        versions: Vec<u32>,
        token: String,
        cluster: Name,
        version: String,
    },
    /// Every later connection.
    Hello {
        versions: Vec<u32>,
        connector_id: String,
        secret: String,
        cluster: Name,
        version: String,
    },
    /// The cluster's current state (sent after each welcome, and after the
    /// engine restarts).
    Snapshot {
        epoch: u64,
        snapshot: Box<ClusterSnapshot>,
    },
    /// Events of one engine run, in order, from the spool.
    Events {
        epoch: u64,
        events: Vec<Event>,
    },
    /// History between `after` and `resumed` is lost (the spool overflowed
    /// or the engine's journal no longer had it).
    Gap {
        after: Option<Position>,
        resumed: Position,
        reason: String,
    },
    /// The engine's answer to a relayed command.
    CommandResult {
        id: u64,
        #[serde(flatten)]
        result: CommandResult,
    },
    /// A command could not reach the engine.
    CommandFailed {
        id: u64,
        reason: String,
    },
    /// Backlog and engine link, sent every few seconds.
    Status {
        backlog_events: u64,
        backlog_bytes: u64,
        engine_connected: bool,
    },
    Heartbeat,
}

/// What the server sends to a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Credentials for a new connector; keep them, the token is spent.
    ///
    /// The secret names the connector's record on the server and is sent in
    /// every [`ConnectorMsg::Hello`]; the certificate (with its key, which
    /// the server does not keep) names the cluster and is presented at every
    /// TLS handshake. Both are checked when both are there.
    Joined {
        connector_id: String,
        secret: String,
        /// The connector's client certificate (PEM), naming its cluster;
        /// `None` from a server older than connector certificates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cert_pem: Option<String>,
        /// The certificate's private key (PEM PKCS#8): keep it mode 0600.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_pem: Option<String>,
    },
    Welcome {
        version: u32,
        heartbeat_ms: u64,
        /// The last position the server has stored for this cluster.
        stored: Option<Position>,
        /// Every server of a clustered server's group (their connector
        /// ports, this one first): dial the next when one does not answer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        servers: Vec<String>,
    },
    /// Everything up to here is stored: drop it from the spool.
    Ack {
        epoch: u64,
        seq: u64,
    },
    /// Relay this operation to the engine.
    Command {
        id: u64,
        op: Operation,
    },
    Heartbeat,
    Error {
        code: ConnectorError,
        message: String,
    },
}

/// Why the server refused or closed a connector's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorError {
    UnsupportedVersion,
    /// The join token is unknown, used, expired, or for another cluster.
    BadToken,
    /// Unknown connector id, wrong secret, or a client certificate that
    /// names another cluster than the session claims. Retrying cannot help.
    AuthenticationFailed,
    /// Another connector is already connected for this cluster.
    AlreadyConnected,
    BadFrame,
    Timeout,
}

/// A join token: `hvn1.ID.SECRET.CA_SHA256` — what the connector needs to
/// reach the server once and to know it is the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub id: String,
    pub secret: String,
    /// SHA-256 of the server CA certificate, lowercase hex.
    pub ca_fingerprint: String,
}

impl JoinToken {
    pub fn encode(&self) -> String {
        format!("hvn1.{}.{}.{}", self.id, self.secret, self.ca_fingerprint)
    }

    /// Parses a token; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<JoinToken, String> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
        match parts.as_slice() {
            ["hvn1", id, secret, fp] if hex(id) && hex(secret) && fp.len() == 64 && hex(fp) => {
                Ok(JoinToken {
                    id: id.to_string(),
                    secret: secret.to_string(),
                    ca_fingerprint: fp.to_lowercase(),
                })
            }
            ["hvn1", ..] => Err("malformed join token: expected hvn1.ID.SECRET.FINGERPRINT (copy it whole from `POST /api/v1/tokens`)".into()),
            _ => Err("not a Haven join token (they start with `hvn1.`)".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_round_trip_and_bad_ones_are_explained() {
        let token = JoinToken {
            id: "ab12".into(),
            secret: "ff00".into(),
            ca_fingerprint: "a".repeat(64),
        };
        assert_eq!(JoinToken::parse(&token.encode()).unwrap(), token);
        assert!(JoinToken::parse("hvn1.ab.cd")
            .unwrap_err()
            .contains("malformed"));
        assert!(JoinToken::parse("hello")
            .unwrap_err()
            .contains("not a Haven"));
        assert!(JoinToken::parse(&format!("hvn1.zz.ff.{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn a_joined_answer_without_a_certificate_still_reads_and_an_older_connector_can_read_a_new_one()
    {
        // From a server older than connector certificates.
        let old = r#"{"msg":"joined","connector_id":"c1","secret":"s1"}"#;
        let ServerMsg::Joined {
            cert_pem, key_pem, ..
        } = serde_json::from_str(old).unwrap()
        else {
            panic!("not joined");
        };
        assert_eq!((cert_pem, key_pem), (None, None));

        // A connector older than certificates reads only the fields it knows.
        #[derive(Deserialize)]
        #[serde(tag = "msg", rename_all = "snake_case")]
        enum OldServerMsg {
            Joined {
                connector_id: String,
                secret: String,
            },
        }
        let new = serde_json::to_string(&ServerMsg::Joined {
            connector_id: "c1".into(),
            secret: "s1".into(),
            cert_pem: Some("CERT".into()),
            key_pem: Some("KEY".into()),
        })
        .unwrap();
        let OldServerMsg::Joined {
            connector_id,
            secret,
        } = serde_json::from_str(&new).unwrap();
        assert_eq!((connector_id.as_str(), secret.as_str()), ("c1", "s1"));
    }
}
