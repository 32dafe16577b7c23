//! The SQLite schema and its migrations.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`; the version
//! is SQLite's `PRAGMA user_version` (0 in a new file). Each script runs in
//! its own `BEGIN IMMEDIATE` transaction together with the version bump, so
//! a database is always at exactly one version, and two processes opening a
//! new file at once migrate it once. Scripts are never edited once released:
//! a change is a new script at the end.
//!
//! The tables are documented for people who query the file with other
//! tools. Times are milliseconds since the Unix epoch; JSON columns hold the
//! `haven-model` types as the engine protocol writes them.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// The schema version this build creates and understands.
pub(crate) const LATEST: u32 = MIGRATIONS.len() as u32;

const V7: &str = r#"
-- A clustered server (several `haven server` on one PostgreSQL database;
-- docs/clustered.md). On SQLite these tables stay empty: a clustered server
-- needs PostgreSQL. Times are the database's clock.
-- Every server of the group, as it last said.
CREATE TABLE group_servers (
    id                 TEXT    NOT NULL PRIMARY KEY, -- [group] server_id
    api_url            TEXT    NOT NULL,             -- where people and tools reach it
    connector_address  TEXT    NOT NULL,             -- where connectors reach it (HOST:PORT)
    role               TEXT    NOT NULL CHECK (role IN ('active', 'standby', 'stopped')),
    version            TEXT    NOT NULL,             -- haven's version
    pid                INTEGER NOT NULL,
    started_ms         INTEGER NOT NULL,
    heartbeat_ms       INTEGER NOT NULL              -- its last word
) STRICT;

-- The leadership lease: one row. Whoever holds it is the active server;
-- `term` grows by one with every new holder.
CREATE TABLE group_lease (
    id           INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    term         INTEGER NOT NULL,
    holder       TEXT,                               -- server id, NULL before the first
    acquired_ms  INTEGER,
    expires_ms   INTEGER NOT NULL                    -- renewed by the holder
) STRICT;
INSERT INTO group_lease (id, term, holder, acquired_ms, expires_ms) VALUES (1, 0, NULL, NULL, 0);

-- What every server of the group shares: the fleet CA (PEM), so
-- connectors and clients trust each of them.
CREATE TABLE group_secrets (
    name   TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;
"#;

const V6: &str = r#"
-- Peer management servers: the other sites this server is paired with.
-- Their clusters are named SITE:CLUSTER here.
CREATE TABLE peers (
    site           TEXT    NOT NULL PRIMARY KEY, -- the peer's site name
    address        TEXT    NOT NULL,             -- HOST:PORT of its peer port
    ca_pem         TEXT    NOT NULL,             -- its fleet CA (PEM): its certificates chain to it
    paired_ms      INTEGER NOT NULL,
    paired_by      TEXT    NOT NULL,             -- who paired it here
    history_after  INTEGER NOT NULL DEFAULT 0    -- the peer's last history row id stored here
) STRICT;

-- One-time tokens that let another site pair with this one.
CREATE TABLE peer_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    secret_hash TEXT    NOT NULL,                -- SHA-256 hex of the token's secret
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    used_ms     INTEGER,                         -- NULL until spent
    used_by     TEXT                             -- the site that spent it
) STRICT;
"#;

const V5: &str = r#"
-- Tags: key=value labels an administrator puts on a cluster, a service
-- group or a system, to find, filter, route alerts and report by them.
-- One value per key per object. The cluster itself is object ''.
CREATE TABLE tags (
    cluster   TEXT    NOT NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('cluster', 'group', 'system')),
    object    TEXT    NOT NULL,          -- the group or system; '' for the cluster
    key       TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    set_by    TEXT    NOT NULL,          -- who set it
    set_ms    INTEGER NOT NULL,
    PRIMARY KEY (cluster, kind, object, key),
    CHECK ((kind = 'cluster') = (object = ''))
) STRICT;
CREATE INDEX tags_key_value ON tags (key, value);

-- Searches a user saved under a name (the query as typed in the console
-- or given to `haven find`). Shared ones are listed to every user; each
-- user still sees only what their roles allow.
CREATE TABLE saved_searches (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    owner       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    query       TEXT    NOT NULL,
    shared      INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),
    created_ms  INTEGER NOT NULL,
    UNIQUE (owner, name)
) STRICT;

-- Whole snapshots of a cluster's state at a position of its history, so
-- its state at any past instant is the last checkpoint before it plus the
-- events after it (time travel, availability reports). The server writes
-- one each time a link takes a snapshot (an engine run's start, a
-- reconnect) and then every so many events.
CREATE TABLE checkpoints (
    cluster   TEXT    NOT NULL,
    epoch     INTEGER NOT NULL,
    seq       INTEGER NOT NULL,          -- the last event the snapshot includes
    time_ms   INTEGER NOT NULL,          -- when the server took it
    snapshot  TEXT    NOT NULL,          -- the ClusterSnapshot as JSON
    PRIMARY KEY (cluster, epoch, seq)
) STRICT;
CREATE INDEX checkpoints_cluster_time ON checkpoints (cluster, time_ms);
"#;

const V4: &str = r#"
-- Alerts the server raised from the fleet's live state: one row per
-- occurrence of a condition, from when it was raised until it cleared.
-- (cluster, kind, object, system) is the condition's key: at most one row
-- of a key is open (cleared_ms NULL); the condition coming back later is
-- a new row.
CREATE TABLE alerts (
    id               INTEGER NOT NULL PRIMARY KEY, -- numbered by the server, in the order raised
    cluster          TEXT    NOT NULL,
    kind             TEXT    NOT NULL,   -- faulted_resource, faulted_group, failover,
                                         -- concurrency_violation, faulted_system, exited_system,
                                         -- disconnected_cluster, frozen_group, frozen_system
    object           TEXT,               -- the group or resource it is about; NULL: none
    system           TEXT,               -- the system it is about; NULL: none
    grp              TEXT,               -- the service group it concerns; NULL: none
    severity         TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message          TEXT    NOT NULL,
    raised_ms        INTEGER NOT NULL,
    cleared_ms       INTEGER,            -- NULL: still open
    acknowledged_by  TEXT,               -- who acknowledged it; NULL: nobody yet
    acknowledged_ms  INTEGER,
    flapping         INTEGER NOT NULL DEFAULT 0 CHECK (flapping IN (0, 1)),
                                         -- 1: raised and cleared too often lately;
                                         -- its notifications were held back
    CHECK ((acknowledged_by IS NULL) = (acknowledged_ms IS NULL))
) STRICT;
-- One open alert per key. NULLs are distinct in a UNIQUE index, so the
-- object and system are compared as '' instead.
CREATE UNIQUE INDEX alerts_one_open ON alerts
    (cluster, kind, IFNULL(object, ''), IFNULL(system, '')) WHERE cleared_ms IS NULL;
CREATE INDEX alerts_raised ON alerts (raised_ms);
CREATE INDEX alerts_cluster_raised ON alerts (cluster, raised_ms);

-- Every attempt to deliver an alert's notification through a channel
-- ([[alerts.channel]]), and the ones not made (dropped, suppressed).
CREATE TABLE alert_deliveries (
    id        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    alert_id  INTEGER,                   -- the alert; NULL: a test notification
    channel   TEXT    NOT NULL,          -- the channel's name
    event     TEXT    NOT NULL,          -- raised, cleared, flapping, settled, test
    attempt   INTEGER NOT NULL,          -- 1 first try, 2 first retry, ...; 0: none made
    outcome   TEXT    NOT NULL CHECK (outcome IN ('sent', 'failed', 'dropped', 'suppressed')),
    error     TEXT,                      -- why it failed or was dropped
    time_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX alert_deliveries_time ON alert_deliveries (time_ms);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
"#;

const V3: &str = r#"
-- Security-relevant events that are not cluster operations (those are in
-- `operations`): logins and logouts, reads, configuration changes, tokens,
-- grants, and what was denied.
CREATE TABLE access_log (
    id        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    time_ms   INTEGER NOT NULL,
    username  TEXT    NOT NULL,              -- who; '-' when unknown
    source    TEXT,                          -- remote address or 'local socket'; NULL: none
    action    TEXT    NOT NULL,              -- login, logout, read, add_cluster, remove_cluster,
                                             -- create_token, grant, revoke, ...
    target    TEXT,                          -- what it was about: an API path, a cluster
                                             -- name, a grant id; NULL: nothing more
    cluster   TEXT,                          -- the cluster concerned, NULL: none
    outcome   TEXT    NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    reason    TEXT                           -- why it was denied or failed
) STRICT;
CREATE INDEX access_log_time ON access_log (time_ms);
CREATE INDEX access_log_user_time ON access_log (username, time_ms);

-- Role grants made through the API (grants in the configuration file are
-- not stored). The scope is the fleet (cluster NULL), a cluster, or a
-- service group of a cluster.
CREATE TABLE grants (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    principal_kind  TEXT    NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal       TEXT    NOT NULL,        -- the user or OS/directory group name
    role            TEXT    NOT NULL,        -- snake_case role name: cluster_operator, ...
    cluster         TEXT,                    -- NULL: the whole fleet
    service_group   TEXT,                    -- NULL unless the scope is one group
    created_ms      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,        -- who granted it
    CHECK (service_group IS NULL OR cluster IS NOT NULL)
) STRICT;
-- One grant of a role to a principal per scope. NULLs are distinct in a
-- UNIQUE constraint, so the scope columns are compared as '' instead.
CREATE UNIQUE INDEX grants_unique ON grants
    (principal_kind, principal, role, IFNULL(cluster, ''), IFNULL(service_group, ''));
"#;

const V2: &str = r#"
-- One-time tokens a connector trades for its credentials.
CREATE TABLE join_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    secret_hash TEXT    NOT NULL,            -- SHA-256 hex of the token's secret
    cluster     TEXT,                        -- NULL: any cluster may join with it
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    used_ms     INTEGER,                     -- NULL until spent
    used_by     TEXT                         -- the cluster that spent it
) STRICT;

-- Connectors that joined: one per cluster (a re-join replaces it).
CREATE TABLE connectors (
    id          TEXT    NOT NULL PRIMARY KEY,
    cluster     TEXT    NOT NULL UNIQUE,
    secret_hash TEXT    NOT NULL,            -- SHA-256 hex of its long-lived secret
    version     TEXT    NOT NULL,
    joined_ms   INTEGER NOT NULL
) STRICT;
"#;

const V1: &str = r#"
-- Managed clusters: where the server reaches each one and how it logs in.
CREATE TABLE clusters (
    name      TEXT    NOT NULL PRIMARY KEY,
    address   TEXT    NOT NULL,           -- host:port of the cluster's engine
    username  TEXT,                       -- NULL: the engine asks for no login
    password  TEXT,
    added_ms  INTEGER NOT NULL
) STRICT;

-- Server settings, one value per key.
CREATE TABLE settings (
    key    TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;

-- Every event of every cluster. (cluster, epoch, seq) names an event:
-- epoch is the engine run, seq its sequence number within that run.
-- `detail` is the whole event kind as JSON (with its "type"); the other
-- columns are copies of its fields for queries. Columns that do not apply
-- to an event's type are NULL.
CREATE TABLE history (
    id         INTEGER NOT NULL PRIMARY KEY, -- insertion order
    cluster    TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    time_ms    INTEGER NOT NULL,             -- when the engine recorded it
    type       TEXT    NOT NULL,             -- resource_state, group_state, ...
    grp        TEXT,                         -- the group it is about
    resource   TEXT,                         -- the resource it is about
    system     TEXT,                         -- the system (a failover: the one left)
    object     TEXT,                         -- the object a notice names
    old_state  TEXT,                         -- resource/group/system state before
    new_state  TEXT,                         -- ... and after; for freeze and enable
                                             -- events the new value (temporary, disabled, ...)
    detail     TEXT    NOT NULL,             -- JSON
    UNIQUE (cluster, epoch, seq)
) STRICT;
CREATE INDEX history_cluster_time ON history (cluster, time_ms);
CREATE INDEX history_time ON history (time_ms);

-- Per cluster, the last position stored (or where history resumed after a
-- gap): the server resumes each cluster from here.
CREATE TABLE cursors (
    cluster  TEXT    NOT NULL PRIMARY KEY,
    epoch    INTEGER NOT NULL,
    seq      INTEGER NOT NULL
) STRICT;

-- Stretches of history that could not be recorded: the events after
-- (after_epoch, after_seq) up to (resumed_epoch, resumed_seq) are missing.
CREATE TABLE gaps (
    id             INTEGER NOT NULL PRIMARY KEY,
    cluster        TEXT    NOT NULL,
    after_epoch    INTEGER,                  -- NULL: nothing stored before
    after_seq      INTEGER,
    resumed_epoch  INTEGER NOT NULL,
    resumed_seq    INTEGER NOT NULL,
    time_ms        INTEGER NOT NULL,         -- when the server noticed
    reason         TEXT    NOT NULL,
    CHECK ((after_epoch IS NULL) = (after_seq IS NULL))
) STRICT;
CREATE INDEX gaps_cluster ON gaps (cluster);

-- Every operation asked of a cluster: who, what, when, and how it ended.
CREATE TABLE operations (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    cluster       TEXT    NOT NULL,
    username      TEXT    NOT NULL,          -- who asked
    verb          TEXT    NOT NULL,          -- group_online, system_freeze, ...
    op            TEXT    NOT NULL,          -- the whole operation as JSON (with its "op")
    requested_ms  INTEGER NOT NULL,
    outcome       TEXT CHECK (outcome IN
                    ('accepted', 'refused', 'completed', 'failed', 'timed_out')),
                                             -- NULL: no answer recorded yet
    reason        TEXT,                      -- why it was refused or failed
    finished_ms   INTEGER                    -- when the outcome was recorded
) STRICT;
CREATE INDEX operations_requested ON operations (requested_ms);
"#;

/// The database's schema version.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Refuses a database newer than this build, before anything is written.
pub(crate) fn check_not_newer(found: u32) -> Result<(), StoreError> {
    if found > LATEST {
        return Err(StoreError::TooNew {
            found,
            known: LATEST,
        });
    }
    Ok(())
}

/// Applies the migrations the database lacks, one transaction each.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        // The version is read inside the write transaction: another process
        // may have migrated since we last looked.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = version(&tx)?;
        check_not_newer(current)?;
        let Some(script) = MIGRATIONS.get(current as usize) else {
            return Ok(());
        };
        let next = current + 1;
        let failed = |source| StoreError::Migration {
            version: next,
            source,
        };
        tx.execute_batch(script).map_err(failed)?;
        tx.pragma_update(None, "user_version", next)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_applies_in_order_to_an_empty_database() {
        let mut conn = Connection::open_in_memory().expect("in-memory db");
        migrate(&mut conn).expect("migrates");
        assert_eq!(version(&conn).expect("version"), LATEST);
        // Idempotent: a second run finds nothing to do.
        migrate(&mut conn).expect("migrates again");
        assert_eq!(version(&conn).expect("version"), LATEST);
    }

    #[test]
    fn a_newer_database_is_refused_by_migrate() {
        let mut conn = Connection::open_in_memory().expect("in-memory db");
        conn.pragma_update(None, "user_version", LATEST + 5)
            .expect("set version");
        let err = migrate(&mut conn).expect_err("refused");
        assert!(
            matches!(err, StoreError::TooNew { found, known } if found == LATEST + 5 && known == LATEST)
        );
    }
}
