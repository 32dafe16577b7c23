//! The PostgreSQL schema and its migrations.
//!
//! Version numbers are SQLite's: schema version N has the same tables,
//! columns, constraints and indexes on both backends (`sqlite/schema.rs`
//! documents each table), written in PostgreSQL's types. A change to the
//! schema is a new script at the end of both lists; scripts are never
//! edited once released.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`. The
//! version is the highest row of `haven_schema` (0 when that table does not
//! exist yet). Each script runs in its own transaction together with its
//! `haven_schema` row, after taking a transaction-level advisory lock
//! ([`MIGRATION_LOCK`]) and only then reading the version: two servers
//! starting at once on a new database migrate it once, the second finding
//! it current. A database of a newer version is refused before anything is
//! written.
//!
//! Differences from SQLite, and why:
//! - integers are `BIGINT` (SQLite's are 64-bit too); ids are `BIGSERIAL`,
//!   so an id is never reused (SQLite's `history` and `gaps` may reuse the
//!   highest id after it is deleted), and a grant refused as a duplicate
//!   still consumes an id;
//! - names and other identifiers are `TEXT COLLATE "C"`: they compare and
//!   sort byte by byte, as in SQLite, whatever the database's locale, so
//!   both backends list clusters in the same order;
//! - `detail` and `op` stay `TEXT` holding the same JSON as in SQLite, so
//!   both backends read back identical events and operations (cast to
//!   `jsonb` in a query to reach inside);
//! - the version is a table, not SQLite's `PRAGMA user_version`.

use postgres::{Client, GenericClient};

use crate::StoreError;

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// The schema version this build creates and understands.
pub(crate) const LATEST: u32 = MIGRATIONS.len() as u32;

/// The advisory lock (in the database's own lock space) that serialises
/// migrations: "haven" in ASCII.
pub(crate) const MIGRATION_LOCK: i64 = 0x68_61_76_65_6e;

/// Created with the first migration, in its transaction.
const VERSION_TABLE: &str = r#"
-- One row per schema version applied; the database's version is the
-- highest. Written only by haven's migrations.
CREATE TABLE haven_schema (
    version     INT    NOT NULL PRIMARY KEY,
    applied_ms  BIGINT NOT NULL              -- when it was applied
);
"#;

/// The advisory lock the active server's lease session holds while it
/// lives: "haven-L" in ASCII.
pub(crate) const LEADER_LOCK: i64 = 0x68_61_76_65_6e_2d_4c;

/// The advisory lock every fenced write takes shared, and a new active
/// server takes alone to move the term: "haven-F" in ASCII.
pub(crate) const FENCE_LOCK: i64 = 0x68_61_76_65_6e_2d_46;

/// The tables of SQLite's V7, and the fence: a statement-level trigger on
/// every table a server writes refuses a write from a connection whose
/// `haven.term` (set by an active server of a group, see `group.rs`) is not
/// the lease's term. A connection without `haven.term` (a single server,
/// `haven db`) is not fenced. The trigger takes [`FENCE_LOCK`] shared, so a
/// new term begins only after every write of the old one has ended.
const V7: &str = r#"
CREATE TABLE group_servers (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    api_url            TEXT   NOT NULL,
    connector_address  TEXT   NOT NULL,
    role               TEXT   NOT NULL CHECK (role IN ('active', 'standby', 'stopped')),
    version            TEXT   NOT NULL,
    pid                BIGINT NOT NULL,
    started_ms         BIGINT NOT NULL,
    heartbeat_ms       BIGINT NOT NULL
);

CREATE TABLE group_lease (
    id           BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    term         BIGINT NOT NULL,
    holder       TEXT COLLATE "C",
    acquired_ms  BIGINT,
    expires_ms   BIGINT NOT NULL
);
INSERT INTO group_lease (id, term, holder, acquired_ms, expires_ms) VALUES (1, 0, NULL, NULL, 0);

CREATE TABLE group_secrets (
    name   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE FUNCTION haven_fence() RETURNS trigger LANGUAGE plpgsql AS $fence$
DECLARE
    mine    text := current_setting('haven.term', true);
    current bigint;
BEGIN
    IF mine IS NULL OR mine = '' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(29380558713662790);
    SELECT term INTO current FROM group_lease WHERE id = 1;
    IF current IS DISTINCT FROM mine::bigint THEN
        RAISE EXCEPTION 'this server is no longer the active one: its lease (term %) has passed to term %', mine, current
            USING ERRCODE = '55H00';
    END IF;
    RETURN NULL;
END
$fence$;

DO $tables$
DECLARE t text;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables
             WHERE schemaname = current_schema()
               AND tablename NOT IN ('haven_schema', 'group_servers', 'group_lease', 'group_secrets')
    LOOP
        EXECUTE format('CREATE TRIGGER haven_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION haven_fence()', t);
    END LOOP;
END
$tables$;
"#;

const V6: &str = r#"
CREATE TABLE peers (
    site           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    address        TEXT   NOT NULL,
    ca_pem         TEXT   NOT NULL,
    paired_ms      BIGINT NOT NULL,
    paired_by      TEXT   NOT NULL,
    history_after  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE peer_tokens (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    secret_hash TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    created_by  TEXT   NOT NULL,
    used_ms     BIGINT,
    used_by     TEXT
);
"#;

const V5: &str = r#"
CREATE TABLE tags (
    cluster   TEXT COLLATE "C" NOT NULL,
    kind      TEXT COLLATE "C" NOT NULL CHECK (kind IN ('cluster', 'group', 'system')),
    object    TEXT COLLATE "C" NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    value     TEXT COLLATE "C" NOT NULL,
    set_by    TEXT COLLATE "C" NOT NULL,
    set_ms    BIGINT NOT NULL,
    PRIMARY KEY (cluster, kind, object, key),
    CHECK ((kind = 'cluster') = (object = ''))
);
CREATE INDEX tags_key_value ON tags (key, value);

CREATE TABLE saved_searches (
    id          BIGSERIAL NOT NULL PRIMARY KEY,
    owner       TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    query       TEXT    NOT NULL,
    shared      BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms  BIGINT  NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE checkpoints (
    cluster   TEXT COLLATE "C" NOT NULL,
    epoch     BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    time_ms   BIGINT NOT NULL,
    snapshot  TEXT   NOT NULL,
    PRIMARY KEY (cluster, epoch, seq)
);
CREATE INDEX checkpoints_cluster_time ON checkpoints (cluster, time_ms);
"#;

const V4: &str = r#"
CREATE TABLE alerts (
    id               BIGINT  NOT NULL PRIMARY KEY,
    cluster          TEXT COLLATE "C" NOT NULL,
    kind             TEXT COLLATE "C" NOT NULL,
    object           TEXT COLLATE "C",
    system           TEXT COLLATE "C",
    grp              TEXT COLLATE "C",
    severity         TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message          TEXT    NOT NULL,
    raised_ms        BIGINT  NOT NULL,
    cleared_ms       BIGINT,
    acknowledged_by  TEXT COLLATE "C",
    acknowledged_ms  BIGINT,
    flapping         BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK ((acknowledged_by IS NULL) = (acknowledged_ms IS NULL))
);
CREATE UNIQUE INDEX alerts_one_open ON alerts
    (cluster, kind, COALESCE(object, ''), COALESCE(system, '')) WHERE cleared_ms IS NULL;
CREATE INDEX alerts_raised ON alerts (raised_ms);
CREATE INDEX alerts_cluster_raised ON alerts (cluster, raised_ms);

CREATE TABLE alert_deliveries (
    id        BIGSERIAL NOT NULL PRIMARY KEY,
    alert_id  BIGINT,
    channel   TEXT COLLATE "C" NOT NULL,
    event     TEXT COLLATE "C" NOT NULL,
    attempt   BIGINT    NOT NULL,
    outcome   TEXT      NOT NULL CHECK (outcome IN ('sent', 'failed', 'dropped', 'suppressed')),
    error     TEXT,
    time_ms   BIGINT    NOT NULL
);
CREATE INDEX alert_deliveries_time ON alert_deliveries (time_ms);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
"#;

const V3: &str = r#"
CREATE TABLE access_log (
    id        BIGSERIAL NOT NULL PRIMARY KEY,
    time_ms   BIGINT    NOT NULL,
    username  TEXT COLLATE "C" NOT NULL,
    source    TEXT,
    action    TEXT COLLATE "C" NOT NULL,
    target    TEXT,
    cluster   TEXT COLLATE "C",
    outcome   TEXT      NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    reason    TEXT
);
CREATE INDEX access_log_time ON access_log (time_ms);
CREATE INDEX access_log_user_time ON access_log (username, time_ms);

CREATE TABLE grants (
    id              BIGSERIAL NOT NULL PRIMARY KEY,
    principal_kind  TEXT      NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal       TEXT COLLATE "C" NOT NULL,
    role            TEXT COLLATE "C" NOT NULL,
    cluster         TEXT COLLATE "C",
    service_group   TEXT COLLATE "C",
    created_ms      BIGINT    NOT NULL,
    created_by      TEXT COLLATE "C" NOT NULL,
    CHECK (service_group IS NULL OR cluster IS NOT NULL)
);
-- NULLs are distinct in a UNIQUE constraint, so the scope columns are
-- compared as '' instead.
CREATE UNIQUE INDEX grants_unique ON grants
    (principal_kind, principal, role, COALESCE(cluster, ''), COALESCE(service_group, ''));
"#;

const V2: &str = r#"
CREATE TABLE join_tokens (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    secret_hash TEXT   NOT NULL,
    cluster     TEXT COLLATE "C",
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    used_ms     BIGINT,
    used_by     TEXT COLLATE "C"
);

CREATE TABLE connectors (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    cluster     TEXT COLLATE "C" NOT NULL UNIQUE,
    secret_hash TEXT   NOT NULL,
    version     TEXT   NOT NULL,
    joined_ms   BIGINT NOT NULL
);
"#;

const V1: &str = r#"
CREATE TABLE clusters (
    name      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    address   TEXT   NOT NULL,
    username  TEXT,
    password  TEXT,
    added_ms  BIGINT NOT NULL
);

CREATE TABLE settings (
    key    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE history (
    id         BIGSERIAL NOT NULL PRIMARY KEY,
    cluster    TEXT COLLATE "C" NOT NULL,
    epoch      BIGINT    NOT NULL,
    seq        BIGINT    NOT NULL,
    time_ms    BIGINT    NOT NULL,
    type       TEXT COLLATE "C" NOT NULL,
    grp        TEXT COLLATE "C",
    resource   TEXT COLLATE "C",
    system     TEXT COLLATE "C",
    object     TEXT COLLATE "C",
    old_state  TEXT COLLATE "C",
    new_state  TEXT COLLATE "C",
    detail     TEXT      NOT NULL,
    UNIQUE (cluster, epoch, seq)
);
CREATE INDEX history_cluster_time ON history (cluster, time_ms);
CREATE INDEX history_time ON history (time_ms);

CREATE TABLE cursors (
    cluster  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    epoch    BIGINT NOT NULL,
    seq      BIGINT NOT NULL
);

CREATE TABLE gaps (
    id             BIGSERIAL NOT NULL PRIMARY KEY,
    cluster        TEXT COLLATE "C" NOT NULL,
    after_epoch    BIGINT,
    after_seq      BIGINT,
    resumed_epoch  BIGINT NOT NULL,
    resumed_seq    BIGINT NOT NULL,
    time_ms        BIGINT NOT NULL,
    reason         TEXT   NOT NULL,
    CHECK ((after_epoch IS NULL) = (after_seq IS NULL))
);
CREATE INDEX gaps_cluster ON gaps (cluster);

CREATE TABLE operations (
    id            BIGSERIAL NOT NULL PRIMARY KEY,
    cluster       TEXT COLLATE "C" NOT NULL,
    username      TEXT COLLATE "C" NOT NULL,
    verb          TEXT COLLATE "C" NOT NULL,
    op            TEXT   NOT NULL,
    requested_ms  BIGINT NOT NULL,
    outcome       TEXT CHECK (outcome IN
                    ('accepted', 'refused', 'completed', 'failed', 'timed_out')),
    reason        TEXT,
    finished_ms   BIGINT
);
CREATE INDEX operations_requested ON operations (requested_ms);
"#;

/// The database's schema version: 0 before the first migration.
pub(crate) fn version(client: &mut impl GenericClient) -> Result<u32, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('haven_schema') IS NOT NULL", &[])?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    let version: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM haven_schema", &[])?
        .try_get(0)?;
    // A negative version was never written by haven; reading it as 0
    // makes the first migration fail on the existing tables, loudly.
    Ok(u32::try_from(version).unwrap_or(0))
}

/// Refuses a database newer than this build, before anything is written.
fn check_not_newer(found: u32) -> Result<(), StoreError> {
    if found > LATEST {
        return Err(StoreError::TooNew {
            found,
            known: LATEST,
        });
    }
    Ok(())
}

/// Applies the migrations the database lacks, one transaction each.
/// `target` names the database in errors.
pub(crate) fn migrate(client: &mut Client, target: &str) -> Result<(), StoreError> {
    loop {
        let mut tx = client.transaction()?;
        // Held until this transaction ends; the version is read after it,
        // since another server may have migrated meanwhile.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        let current = version(&mut tx)?;
        check_not_newer(current)?;
        let Some(script) = MIGRATIONS.get(current as usize) else {
            return Ok(()); // dropping `tx` ends it, having written nothing
        };
        let next = current + 1;
        let failed = |source| StoreError::PgMigration {
            target: target.to_owned(),
            version: next,
            source,
        };
        if current == 0 {
            tx.batch_execute(VERSION_TABLE).map_err(failed)?;
        }
        tx.batch_execute(script).map_err(failed)?;
        tx.execute(
            "INSERT INTO haven_schema (version, applied_ms)
             VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
            &[&(next as i32)],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_takes_the_lock_and_raises_the_code_named_here() {
        assert!(V7.contains(&format!("pg_advisory_xact_lock_shared({FENCE_LOCK})")));
        assert!(V7.contains(&format!("ERRCODE = '{}'", super::super::FENCED_CODE)));
    }
}
