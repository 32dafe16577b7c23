//! The records a [`Store`](crate::Store) reads and writes: plain data, the
//! same whatever the backend.

use std::fmt;

/// `ALL`, `as_str` (the stored and JSON name), `parse` and `Display` for
/// an enum of plain variants, from one table of names.
macro_rules! stored_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: [$ty; [$(stringify!($variant)),+].len()] = [$($ty::$variant),+];

            /// The stored (and JSON) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The value of that name, if there is one.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

use haven_model::{ClusterSnapshot, Event, Operation};
use serde::{Deserialize, Serialize};

/// A managed cluster: where the server reaches it and how it logs in.
///
/// `Debug` does not show the password, so a record can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterRecord {
    /// The cluster's name (unique).
    pub name: String,
    /// Where its engine listens (`host:port`).
    pub address: String,
    /// The user the server logs in as, if the engine asks for one.
    pub user: Option<String>,
    /// That user's password.
    pub password: Option<String>,
    /// When the cluster was added, in milliseconds since the Unix epoch.
    pub added_ms: i64,
}

impl fmt::Debug for ClusterRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterRecord")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("added_ms", &self.added_ms)
            .finish()
    }
}

/// Where a cluster's history stands: the engine run (`epoch`) and the last
/// sequence stored from it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The engine run, as its `welcome` frame gave it. Epochs are compared
    /// for equality only: another value means the engine restarted and its
    /// sequence numbers began again at 1.
    pub epoch: u64,
    /// The last sequence stored from that run (0: none yet).
    pub seq: u64,
}

/// One event of one cluster, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// The cluster the event happened in.
    pub cluster: String,
    /// The engine run that numbered it.
    pub epoch: u64,
    /// The event, with its sequence number and time.
    pub event: Event,
}

/// What [`Store::append`](crate::Store::append) did with a batch.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReport {
    /// Rows stored.
    pub inserted: usize,
    /// Rows skipped because their `(cluster, epoch, seq)` was already stored.
    pub duplicates: usize,
}

/// A stretch of history that could not be recorded (the engine's journal no
/// longer had it, or the engine restarted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The cluster whose history has the hole.
    pub cluster: String,
    /// The last position stored before the hole (`None`: nothing was).
    pub after: Option<Cursor>,
    /// Where the history continues (e.g. the snapshot taken instead); the
    /// cluster's cursor is set to it.
    pub resumed: Cursor,
    /// When the server noticed, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Why, for people (e.g. "engine restarted").
    pub reason: String,
}

/// The default [`HistoryQuery::limit`], [`OperationQuery::limit`] and
/// [`AccessQuery::limit`].
pub const DEFAULT_LIMIT: usize = 100;

/// Which events [`Store::history`](crate::Store::history) returns. Every
/// filter that is set must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this cluster's events.
    pub cluster: Option<String>,
    /// Only events of these clusters (e.g. those a user may see); an empty
    /// list matches nothing. Both this and `cluster` must match when both
    /// are set.
    pub clusters: Option<Vec<String>>,
    /// Only events about this object: it matches the event's group,
    /// resource or system, or the object a notice names. For a failover
    /// the system is the one the group left.
    pub object: Option<String>,
    /// Only events at or after this time (ms since the Unix epoch).
    pub since_ms: Option<i64>,
    /// Only events strictly before this time, so consecutive windows
    /// `[since, until)` do not overlap.
    pub until_ms: Option<i64>,
    /// At most this many events, newest first (0 returns none).
    pub limit: usize,
    /// The oldest first instead (and the limit keeps the oldest): what
    /// came right after `since_ms`.
    pub oldest_first: bool,
}

impl Default for HistoryQuery {
    /// Everything, up to [`DEFAULT_LIMIT`] newest events.
    fn default() -> Self {
        HistoryQuery {
            cluster: None,
            clusters: None,
            object: None,
            since_ms: None,
            until_ms: None,
            limit: DEFAULT_LIMIT,
            oldest_first: false,
        }
    }
}

/// An operation as it is requested, before its outcome is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOperation {
    /// The cluster it is sent to.
    pub cluster: String,
    /// Who asked.
    pub user: String,
    /// What was asked.
    pub op: Operation,
    /// When, in milliseconds since the Unix epoch.
    pub requested_ms: i64,
}

/// A recorded operation: who asked what of which cluster, when, and how it
/// ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// Its id, in the order operations were recorded.
    pub id: i64,
    /// The cluster it was sent to.
    pub cluster: String,
    /// Who asked.
    pub user: String,
    /// What was asked.
    pub op: Operation,
    /// When, in milliseconds since the Unix epoch.
    pub requested_ms: i64,
    /// How it ended, or how far it got (`None`: no answer recorded yet).
    pub outcome: Option<Outcome>,
    /// Why it was refused or failed, if it was.
    pub reason: Option<String>,
    /// When the outcome was recorded.
    pub finished_ms: Option<i64>,
}

/// How an operation ended, or how far it got.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The engine validated it and started the work; effects follow as
    /// events.
    Accepted,
    /// The engine (or the server) refused it; nothing changed.
    Refused,
    /// The work is done.
    Completed,
    /// The work was attempted and failed.
    Failed,
    /// No answer came in time.
    TimedOut,
}

stored_names!(Outcome {
    Accepted => "accepted",
    Refused => "refused",
    Completed => "completed",
    Failed => "failed",
    TimedOut => "timed_out",
});

/// Which operations [`Store::operations`](crate::Store::operations)
/// returns. Every filter that is set must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationQuery {
    /// Only operations sent to this cluster.
    pub cluster: Option<String>,
    /// Only operations sent to these clusters (e.g. those a user may see);
    /// an empty list matches nothing. Both this and `cluster` must match
    /// when both are set.
    pub clusters: Option<Vec<String>>,
    /// Only operations this user asked for.
    pub user: Option<String>,
    /// At most this many, newest first (0 returns none).
    pub limit: usize,
}

impl Default for OperationQuery {
    /// Everything, up to [`DEFAULT_LIMIT`] newest operations.
    fn default() -> Self {
        OperationQuery {
            cluster: None,
            clusters: None,
            user: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Per `(cluster, epoch)`: how many events are stored and their lowest and
/// highest sequence (tests compare this with the engine).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// The cluster.
    pub cluster: String,
    /// The engine run.
    pub epoch: u64,
    /// Events stored from that run.
    pub count: u64,
    /// The lowest sequence stored from that run.
    pub min_seq: u64,
    /// The highest sequence stored from that run.
    pub max_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_parse_back_and_match_json() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            let json = serde_json::to_string(&o).expect("serialises");
            assert_eq!(json, format!("\"{}\"", o.as_str()));
        }
        assert_eq!(Outcome::parse("done"), None);
    }

    #[test]
    fn access_outcome_names_parse_back_and_match_json() {
        for o in AccessOutcome::ALL {
            assert_eq!(AccessOutcome::parse(o.as_str()), Some(o));
            let json = serde_json::to_string(&o).expect("serialises");
            assert_eq!(json, format!("\"{}\"", o.as_str()));
        }
        assert_eq!(AccessOutcome::parse("refused"), None);
    }

    #[test]
    fn cluster_record_debug_hides_the_password() {
        let rec = ClusterRecord {
            name: "c1".into(),
            address: "h:1".into(),
            user: Some("admin".into()),
            password: Some("s3cret".into()),
            added_ms: 1,
        };
        let shown = format!("{rec:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");
    }
}

/// A one-time join token as stored (the secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRecord {
    /// The token's public part.
    pub id: String,
    /// SHA-256 hex of the token's secret.
    pub secret_hash: String,
    /// The only cluster that may join with it, if set.
    pub cluster: Option<String>,
    /// When it was made (ms since the epoch).
    pub created_ms: i64,
    /// When it stops working (ms since the epoch).
    pub expires_ms: i64,
}

/// A connector that joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorRecord {
    /// The connector's id (its user name on the connector port).
    pub id: String,
    /// The cluster it serves.
    pub cluster: String,
    /// SHA-256 hex of its long-lived secret.
    pub secret_hash: String,
    /// `haven` version it reported when it joined.
    pub version: String,
    /// When it joined (ms since the epoch).
    pub joined_ms: i64,
}

/// A security-relevant event that is not a cluster operation (those are
/// [operations](NewOperation)), as it is recorded: a login or logout, a
/// read, a change of configuration, tokens or grants, and anything denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccess {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who (`-` when unknown, e.g. a failed login without a user name).
    pub user: String,
    /// Where from: the remote address or `local socket` (`None`: neither).
    pub source: Option<String>,
    /// What was done: `login`, `logout`, `read`, `add_cluster`,
    /// `remove_cluster`, `create_token`, `grant`, `revoke`, ...
    pub action: String,
    /// What it was about: an API path, a cluster name, a grant id.
    pub target: Option<String>,
    /// The cluster concerned, if one is (for filtering).
    pub cluster: Option<String>,
    /// Whether it was allowed.
    pub outcome: AccessOutcome,
    /// Why it was denied or failed, if it was.
    pub reason: Option<String>,
}

/// A recorded [`NewAccess`], with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Its id, in the order entries were recorded.
    pub id: i64,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who (`-` when unknown).
    pub user: String,
    /// Where from: the remote address or `local socket`.
    pub source: Option<String>,
    /// What was done (`login`, `grant`, ...).
    pub action: String,
    /// What it was about: an API path, a cluster name, a grant id.
    pub target: Option<String>,
    /// The cluster concerned, if one is.
    pub cluster: Option<String>,
    /// Whether it was allowed.
    pub outcome: AccessOutcome,
    /// Why it was denied or failed, if it was.
    pub reason: Option<String>,
}

/// How an [access](NewAccess) ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessOutcome {
    /// It was allowed and done.
    Allowed,
    /// The caller had no right to it (or no valid login); nothing was done.
    Denied,
    /// It was allowed but did not succeed.
    Failed,
}

stored_names!(AccessOutcome {
    Allowed => "allowed",
    Denied => "denied",
    Failed => "failed",
});

/// Which entries [`Store::access_log`](crate::Store::access_log) returns.
/// Every filter that is set must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessQuery {
    /// Only this user's entries.
    pub user: Option<String>,
    /// Only entries of this action (`login`, ...).
    pub action: Option<String>,
    /// Only entries with this outcome.
    pub outcome: Option<AccessOutcome>,
    /// Only entries about this cluster.
    pub cluster: Option<String>,
    /// Only entries at or after this time (ms since the Unix epoch).
    pub since_ms: Option<i64>,
    /// At most this many, newest first (0 returns none).
    pub limit: usize,
}

impl Default for AccessQuery {
    /// Everything, up to [`DEFAULT_LIMIT`] newest entries.
    fn default() -> Self {
        AccessQuery {
            user: None,
            action: None,
            outcome: None,
            cluster: None,
            since_ms: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// A role grant as it is made through the API (grants from the
/// configuration file are not stored).
///
/// The store keeps what it is given: it checks the principal's kind and
/// that a group scope names its cluster, not the role's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewGrant {
    /// `user` or `group`.
    pub principal_kind: String,
    /// The user's or group's name.
    pub principal: String,
    /// The role's snake_case name (`cluster_operator`, ...).
    pub role: String,
    /// The cluster it applies to (`None`: the whole fleet).
    pub cluster: Option<String>,
    /// The service group it applies to, within `cluster` (`None`: the
    /// whole cluster or fleet). Set only with `cluster`.
    pub service_group: Option<String>,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Who made it.
    pub created_by: String,
}

/// A stored role grant: a [`NewGrant`] with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Its id, in the order grants were made.
    pub id: i64,
    /// `user` or `group`.
    pub principal_kind: String,
    /// The user's or group's name.
    pub principal: String,
    /// The role's snake_case name (`cluster_operator`, ...).
    pub role: String,
    /// The cluster it applies to (`None`: the whole fleet).
    pub cluster: Option<String>,
    /// The service group it applies to, within `cluster`.
    pub service_group: Option<String>,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Who made it.
    pub created_by: String,
}

/// How serious an alert is, lowest first (so `>=` means "at least as
/// serious").
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    /// Worth knowing; nothing is down (e.g. an object left frozen).
    Info,
    /// Something failed or is out of sight, and the cluster coped or may
    /// (a resource fault, a failover, a lost link).
    Warning,
    /// A service or a system is down, or running twice.
    Critical,
}

stored_names!(AlertSeverity {
    Info => "info",
    Warning => "warning",
    Critical => "critical",
});

/// One alert: a condition of one object, from when the server raised it
/// until it cleared. `(cluster, kind, object, system)` is its key: at
/// most one alert of a key is open at a time; the same condition coming
/// back later is a new alert.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Its number, given by the server in the order alerts are raised.
    pub id: i64,
    /// The cluster it is about.
    pub cluster: String,
    /// What kind of condition: `faulted_resource`, `faulted_group`,
    /// `failover`, `concurrency_violation`, `faulted_system`,
    /// `exited_system`, `disconnected_cluster`, `frozen_group`,
    /// `frozen_system`.
    pub kind: String,
    /// The group or resource it is about, if any.
    pub object: Option<String>,
    /// The system it is about, if any.
    pub system: Option<String>,
    /// The service group it concerns (the object's group), if any: who
    /// may see that group may see the alert.
    pub service_group: Option<String>,
    /// How serious it is.
    pub severity: AlertSeverity,
    /// What happened, for people.
    pub message: String,
    /// When it was raised, in milliseconds since the Unix epoch.
    pub raised_ms: i64,
    /// When it cleared (`None`: it is open).
    pub cleared_ms: Option<i64>,
    /// Who acknowledged it, if anyone did.
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged.
    pub acknowledged_ms: Option<i64>,
    /// Raised and cleared too often lately: notifications about it are
    /// held back until it settles.
    pub flapping: bool,
}

/// Which alerts [`AlertStore::alerts`](crate::AlertStore::alerts)
/// returns. Every filter that is set must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only the alert of this id.
    pub id: Option<i64>,
    /// `Some(true)`: only open alerts; `Some(false)`: only cleared ones.
    pub open: Option<bool>,
    /// Only this cluster's alerts.
    pub cluster: Option<String>,
    /// Only alerts of these clusters (an empty list matches nothing).
    pub clusters: Option<Vec<String>>,
    /// Only alerts raised or cleared at or after this time.
    pub since_ms: Option<i64>,
    /// At most this many, newest raised first (0 returns none).
    pub limit: usize,
}

impl Default for AlertQuery {
    /// Every alert, up to [`DEFAULT_LIMIT`] newest.
    fn default() -> Self {
        AlertQuery {
            id: None,
            open: None,
            cluster: None,
            clusters: None,
            since_ms: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// How one attempt to deliver a notification ended.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The channel took it (the mail server, the webhook or syslog).
    Sent,
    /// The attempt failed (`error` says why); it may be retried.
    Failed,
    /// Never attempted: the channel's queue was full.
    Dropped,
    /// Not sent on purpose: the alert is flapping.
    Suppressed,
}

stored_names!(DeliveryOutcome {
    Sent => "sent",
    Failed => "failed",
    Dropped => "dropped",
    Suppressed => "suppressed",
});

/// One attempt to deliver an alert's notification through a channel, as
/// it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// The alert (`None`: a test notification).
    pub alert_id: Option<i64>,
    /// The channel's name (`[[alerts.channel]] name`).
    pub channel: String,
    /// What the notification said: `raised`, `cleared`, `flapping`,
    /// `settled` or `test`.
    pub event: String,
    /// 1 for the first attempt, 2 for the first retry...; 0 when nothing
    /// was attempted (dropped, suppressed).
    pub attempt: u32,
    /// How it ended.
    pub outcome: DeliveryOutcome,
    /// Why it failed or was dropped.
    pub error: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// A recorded [`NewDelivery`], with its id.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Its id, in the order attempts were recorded.
    pub id: i64,
    /// The alert (`None`: a test notification).
    pub alert_id: Option<i64>,
    /// The channel's name.
    pub channel: String,
    /// `raised`, `cleared`, `flapping`, `settled` or `test`.
    pub event: String,
    /// The attempt's number (0: none was made).
    pub attempt: u32,
    /// How it ended.
    pub outcome: DeliveryOutcome,
    /// Why it failed or was dropped.
    pub error: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// Which attempts [`AlertStore::deliveries`](crate::AlertStore::deliveries)
/// returns. Every filter that is set must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only attempts for this alert.
    pub alert_id: Option<i64>,
    /// Only attempts through this channel.
    pub channel: Option<String>,
    /// Only attempts that ended so.
    pub outcome: Option<DeliveryOutcome>,
    /// At most this many, newest first (0 returns none).
    pub limit: usize,
}

impl Default for DeliveryQuery {
    /// Every attempt, up to [`DEFAULT_LIMIT`] newest.
    fn default() -> Self {
        DeliveryQuery {
            alert_id: None,
            channel: None,
            outcome: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// A cluster's whole state at a position of its history (table
/// `checkpoints`): the base its state at a later instant is rebuilt from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The cluster.
    pub cluster: String,
    /// The engine run the snapshot belongs to.
    pub epoch: u64,
    /// When the server took it (ms since the Unix epoch).
    pub time_ms: i64,
    /// The state; its `seq` is the last event it includes.
    pub snapshot: ClusterSnapshot,
}
