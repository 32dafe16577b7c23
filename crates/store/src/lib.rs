//! The management server's database: its configuration (the managed
//! clusters, settings) and its history (every event of every cluster, every
//! operation with who asked, what, when and how it ended), the security
//! access log, and the role grants made through the API.
//!
//! The server talks to a [`Store`]; [`SqliteStore`] is the one backend today
//! (one SQLite file in the data directory, write-ahead logging). The trait
//! speaks only in this crate's records and `haven-model` types, so a
//! PostgreSQL backend can follow without touching its callers.
//! [`PgStore`] is that backend: the same schema versions, behaviour and
//! tests, in a PostgreSQL database reached by URL.
//!
//! # Invariants
//!
//! - **Exactly once.** A cluster's history holds each `(cluster, epoch, seq)`
//!   at most once. Appending a row that is already stored skips it and counts
//!   it as a duplicate, so the server may re-send an overlapping batch after
//!   a reconnect without creating doubles.
//! - **All or nothing.** [`Store::append`] stores a whole batch and moves the
//!   clusters' [cursors](Cursor) in one transaction: after a failure or a
//!   crash either all of the batch and the cursors that cover it are there,
//!   or none of it is. [`Store::record_gap`] writes the gap and the new
//!   cursor together in the same way.
//! - **Cursors follow the data.** A cluster's cursor is the position of the
//!   last row stored from it (or where a gap resumed): within one epoch it
//!   never moves backwards; a row from another epoch (the engine restarted)
//!   replaces it. Rows skipped as duplicates do not move it.
//! - **History outlives configuration.** Removing a cluster removes its
//!   record, not its history, gaps, operations or cursor.
//! - **Nothing is lost.** Every event is stored whole as JSON (`detail`);
//!   the typed columns beside it are for queries and external tools, and
//!   reading a row back gives the event that was appended.
//! - **A grant is stored once.** One principal holds a role at one scope
//!   (fleet, cluster or service group) at most once; granting it again
//!   changes nothing.
//! - **Newer files are left alone.** A database written by a newer Haven
//!   (a schema version this build does not know) is refused before anything
//!   in it changes.

#![warn(missing_docs)]

mod error;
mod peers;
mod postgres;
mod records;
mod sqlite;
mod tags;

use std::collections::HashMap;
use std::time::Duration;

use haven_model::Event;

pub use error::StoreError;
pub use peers::{PeerRecord, PeerStore, PeerTokenRecord};
pub use postgres::{
    describe_url as describe_postgres_url, set_process_session, GroupLink, GroupServerRecord,
    GroupSession, Lead, LeaseRecord, PgStore,
};
pub use records::*;
pub use sqlite::maintenance;
pub use sqlite::SqliteStore;
pub use tags::{NewSavedSearch, SavedSearch, TagRecord, TagStore};

/// How far a long task has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written, or rows removed, so far.
    pub done: u64,
    /// What `done` grows to (bytes for a backup, rows for a prune); an
    /// estimate, `done` may pass it.
    pub total: u64,
}

/// What a prune removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// History rows removed.
    pub history_removed: u64,
    /// State changes before the cut-off kept because they are the last of
    /// their object.
    pub history_kept: u64,
    /// Gap records removed.
    pub gaps_removed: u64,
    /// Audited operations and access log entries removed.
    pub audit_removed: u64,
    /// Cleared alerts and notification attempts removed (open alerts
    /// stay, however old).
    pub alerts_removed: u64,
    /// Space freed. SQLite: pages freed inside the file (reused by new
    /// history; the file itself shrinks when it is compacted, e.g. by a
    /// backup and restore). PostgreSQL: the size of the history rows
    /// removed, reusable once the prune's `VACUUM` has run.
    pub bytes_freed: u64,
    /// How long it took.
    pub took: Duration,
}

/// The setting (in `settings`) that holds the newest prune cut-off, ms
/// since the Unix epoch: history is complete only from there on, and a
/// cluster's state before it can no longer be rebuilt.
pub const HISTORY_PRUNED_BEFORE: &str = "history_pruned_before_ms";

/// History rows deleted per transaction by a prune: the server's writer
/// waits at most this long for the lock.
pub(crate) const PRUNE_BATCH: i64 = 20_000;

/// Event types that set a state; a prune keeps the last of each object
/// (cluster, type, group, resource, system) before its cut-off.
pub(crate) const STATE_TYPES: &str = "'resource_state', 'group_state', 'system_state', 'group_freeze', 'system_freeze', 'group_enabled'";

/// Keeping the database small, the same way on every backend.
pub trait Maintenance {
    /// Removes history, and gaps, older than `cut_ms` — except, for every
    /// object, the last state change before it, so each object's state at
    /// the cut-off is still known — and the audit (operations, access log)
    /// older than `audit_cut_ms`. Deletes in transactions of 20,000 rows,
    /// so ingestion beside it never waits long; calls `progress` with the
    /// rows removed so far. A second prune with the same cut-off removes
    /// nothing and keeps the same rows.
    fn prune(
        &mut self,
        cut_ms: i64,
        audit_cut_ms: Option<i64>,
        progress: &dyn Fn(Progress),
    ) -> Result<PruneReport, StoreError>;
}

/// The alerts the server raised and the log of their notifications, the
/// same way on every backend (tables `alerts` and `alert_deliveries`,
/// schema V4).
pub trait AlertStore {
    /// Writes new and changed alerts in one transaction, in the order
    /// given: an alert whose id is stored is updated (its severity,
    /// message, clearing and flapping; its key and `raised_ms` never
    /// change), any other is added. An acknowledgement once stored stays:
    /// a write without one keeps it. At most one alert per (cluster, kind,
    /// object, system) may be open: a write that would open a second is an
    /// error, and nothing of the batch is stored.
    fn save_alerts(&mut self, alerts: &[AlertRecord]) -> Result<(), StoreError>;

    /// Alerts that match the query, newest raised first.
    fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError>;

    /// The highest alert id stored (0 when there is none): the server
    /// numbers new alerts after it.
    fn max_alert_id(&self) -> Result<i64, StoreError>;

    /// Records who acknowledged an alert and when, unless someone already
    /// did (the first acknowledgement stays). Returns the alert as stored
    /// afterwards, or `None` when there is no alert with that id.
    fn acknowledge_alert(
        &mut self,
        id: i64,
        user: &str,
        at_ms: i64,
    ) -> Result<Option<AlertRecord>, StoreError>;

    /// Records attempts to deliver notifications, in one transaction.
    fn insert_deliveries(&mut self, rows: &[NewDelivery]) -> Result<(), StoreError>;

    /// Recorded attempts that match the query, newest first.
    fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<DeliveryRecord>, StoreError>;
}

/// Whole snapshots of clusters at positions of their history (table
/// `checkpoints`, schema V5), the same way on every backend: a cluster's
/// state at a past instant is its last checkpoint before that instant plus
/// the events of the same engine run after it.
pub trait CheckpointStore {
    /// Stores checkpoints in one transaction. One already stored at the
    /// same (cluster, epoch, seq) is kept as it is.
    fn save_checkpoints(&mut self, checkpoints: &[Checkpoint]) -> Result<(), StoreError>;

    /// For every cluster (or only those of `clusters`), its newest
    /// checkpoint taken at or before `at_ms`; clusters without one are
    /// absent. Ordered by cluster name.
    fn checkpoints_at(
        &self,
        at_ms: i64,
        clusters: Option<&[String]>,
    ) -> Result<Vec<Checkpoint>, StoreError>;

    /// One cluster's checkpoints taken after `after_ms` and before
    /// `until_ms`, oldest first.
    fn checkpoints_between(
        &self,
        cluster: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Checkpoint>, StoreError>;

    /// One cluster's events of engine run `epoch` numbered after
    /// `after_seq` and recorded before `until_ms`, in sequence order.
    fn events_after(
        &self,
        cluster: &str,
        epoch: u64,
        after_seq: u64,
        until_ms: i64,
    ) -> Result<Vec<Event>, StoreError>;
}

/// The management server's database, whatever the engine behind it.
///
/// Reads take `&self` and writes `&mut self`; a backend may serialise
/// everything on one connection (as [`SqliteStore`] does). Every store
/// can also be pruned ([`Maintenance`]), keeps alerts ([`AlertStore`]),
/// checkpoints ([`CheckpointStore`]) and tags and saved searches
/// ([`TagStore`]) and peers ([`PeerStore`]).
pub trait Store: Send + Maintenance + AlertStore + CheckpointStore + TagStore + PeerStore {
    /// Every managed cluster, by name.
    fn list_clusters(&self) -> Result<Vec<ClusterRecord>, StoreError>;

    /// Adds a cluster, or replaces the record of the cluster of that name
    /// (every field, `added_ms` included, is written as given).
    fn upsert_cluster(&mut self, rec: &ClusterRecord) -> Result<(), StoreError>;

    /// Removes a cluster's record; its history, gaps, operations and cursor
    /// stay. Returns whether there was such a cluster.
    fn remove_cluster(&mut self, name: &str) -> Result<bool, StoreError>;

    /// The value of a setting, if it was ever set.
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Sets a setting, replacing its value.
    fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError>;

    /// The last stored position of every cluster that has one (one query;
    /// the server calls it at start to know where to resume each cluster).
    fn cursors(&self) -> Result<HashMap<String, Cursor>, StoreError>;

    /// Appends a batch in one transaction, in order.
    ///
    /// Rows whose `(cluster, epoch, seq)` is already stored are skipped and
    /// counted as duplicates. Each cluster's cursor advances in the same
    /// transaction: within an epoch it takes the highest sequence stored and
    /// never moves backwards; a row of another epoch replaces it. On error
    /// nothing of the batch is stored and no cursor moves.
    fn append(&mut self, rows: &[HistoryRow]) -> Result<AppendReport, StoreError>;

    /// Records a stretch of history that could not be stored, and sets the
    /// cluster's cursor to `gap.resumed`, in one transaction.
    fn record_gap(&mut self, gap: &Gap) -> Result<(), StoreError>;

    /// Marks where a cluster's history begins (its first sync), unless it
    /// already has a position. Returns whether it was set. Without this, a
    /// server stopped before the first event would not know, after a
    /// restart, that it must fetch what happened meanwhile.
    fn begin_history(&mut self, cluster: &str, at: Cursor) -> Result<bool, StoreError>;

    /// The gaps recorded for one cluster (or every cluster), oldest first.
    fn gaps(&self, cluster: Option<&str>) -> Result<Vec<Gap>, StoreError>;

    /// Stored events that match the query, newest first.
    fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryRow>, StoreError>;

    /// How many events are stored per `(cluster, epoch)` and their lowest and
    /// highest sequence, ordered by cluster then epoch. With no gaps and no
    /// duplicates, `count == max_seq - min_seq + 1`.
    fn seq_ranges(&self, cluster: Option<&str>) -> Result<Vec<SeqRange>, StoreError>;

    /// Records an operation as it is requested (no outcome yet) and returns
    /// its id.
    fn insert_operation(&mut self, op: &NewOperation) -> Result<i64, StoreError>;

    /// Sets an operation's outcome. It may be called more than once (e.g.
    /// `Accepted`, then `Completed`); the last call wins. An unknown id is
    /// [`StoreError::UnknownOperation`].
    fn finish_operation(
        &mut self,
        id: i64,
        outcome: Outcome,
        reason: Option<&str>,
        finished_ms: i64,
    ) -> Result<(), StoreError>;

    /// Recorded operations that match the query, newest first.
    fn operations(&self, q: &OperationQuery) -> Result<Vec<OperationRecord>, StoreError>;

    /// Stores a new join token.
    fn insert_join_token(&mut self, token: &JoinTokenRecord) -> Result<(), StoreError>;

    /// Spends a join token for `cluster`, atomically: `Ok(Err(why))` when
    /// it is unknown, wrong, spent, expired or for another cluster (and
    /// nothing changes).
    fn spend_join_token(
        &mut self,
        id: &str,
        secret_hash: &str,
        cluster: &str,
        now_ms: i64,
    ) -> Result<Result<(), String>, StoreError>;

    /// Adds a connector, replacing any earlier one of the same cluster.
    fn upsert_connector(&mut self, rec: &ConnectorRecord) -> Result<(), StoreError>;

    /// Every connector that joined.
    fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError>;

    /// Records security-relevant events (logins, reads, changes, denials)
    /// in one transaction: all of them or, on error, none.
    fn insert_access(&mut self, rows: &[NewAccess]) -> Result<(), StoreError>;

    /// Recorded access entries that match the query, newest first.
    fn access_log(&self, q: &AccessQuery) -> Result<Vec<AccessRecord>, StoreError>;

    /// Stores a role grant and returns its id, or `None` when the same
    /// grant (principal, role and scope) is already stored, which is left
    /// as it was.
    fn insert_grant(&mut self, g: &NewGrant) -> Result<Option<i64>, StoreError>;

    /// Every stored grant, in the order they were made.
    fn grants(&self) -> Result<Vec<GrantRecord>, StoreError>;

    /// Removes a grant and returns it, or `None` when there is no grant
    /// with that id.
    fn delete_grant(&mut self, id: i64) -> Result<Option<GrantRecord>, StoreError>;
}
