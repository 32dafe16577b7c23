//! [`SqliteStore`]: the [`Store`] in one SQLite file, in write-ahead-log
//! mode, on one connection.
//!
//! Every write that touches more than one row is one `BEGIN IMMEDIATE`
//! transaction (the write lock is taken up front, so a second process
//! waits for the busy timeout instead of failing half-way). Statements are
//! prepared once and cached on the connection. Sequence numbers and epochs
//! are `u64` in Haven and signed 64-bit integers in SQLite: a value above
//! `i64::MAX` is refused ([`StoreError::OutOfRange`]) rather than wrapped.

mod alerts;
mod checkpoints;
mod columns;
pub mod maintenance;
mod peers;
mod schema;
mod tags;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use haven_model::{EventKind, Operation};
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::{
    AccessOutcome, AccessQuery, AccessRecord, AppendReport, ClusterRecord, ConnectorRecord, Cursor,
    Gap, GrantRecord, HistoryQuery, HistoryRow, JoinTokenRecord, NewAccess, NewGrant, NewOperation,
    OperationQuery, OperationRecord, Outcome, SeqRange, Store, StoreError,
};
use columns::EventColumns;

/// How long a statement waits for another process's lock before failing
/// with [`StoreError::Locked`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Room for the fixed statements plus every combination of query filters
/// (history 32, access log 32, operations 8). A `clusters` list of each
/// length is one more statement; those beyond room are prepared again when
/// they come back (the cache keeps the most recently used).
const STATEMENT_CACHE: usize = 128;

const INSERT_HISTORY: &str = "INSERT INTO history
    (cluster, epoch, seq, time_ms, type, grp, resource, system, object, old_state, new_state, detail)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
    ON CONFLICT (cluster, epoch, seq) DO NOTHING";

/// Moves a cursor forward within its epoch, or to another epoch.
const MERGE_CURSOR: &str = "INSERT INTO cursors (cluster, epoch, seq) VALUES (?1, ?2, ?3)
    ON CONFLICT (cluster) DO UPDATE SET
        seq = CASE WHEN epoch = excluded.epoch THEN max(seq, excluded.seq) ELSE excluded.seq END,
        epoch = excluded.epoch";

/// Sets a cursor, whatever it was.
const REPLACE_CURSOR: &str = "INSERT INTO cursors (cluster, epoch, seq) VALUES (?1, ?2, ?3)
    ON CONFLICT (cluster) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq";

/// The columns [`grant_of`] reads, in its order.
const GRANT_COLUMNS: &str =
    "id, principal_kind, principal, role, cluster, service_group, created_ms, created_by";

/// The management database in an SQLite file (or in memory, for tests).
pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .finish()
    }
}

impl SqliteStore {
    /// The schema version this build creates and understands (what
    /// [`Self::schema_version`] returns after opening).
    pub const SCHEMA_VERSION: u32 = schema::LATEST;

    /// Opens (creating if needed) the database file, sets it up and applies
    /// the migrations it lacks.
    ///
    /// A new file is created readable by its owner only: it holds the
    /// clusters' passwords. The connection uses write-ahead logging,
    /// `synchronous = NORMAL`, a busy timeout of 5 s and foreign keys. A file
    /// written by a newer Haven is refused ([`StoreError::TooNew`]) before
    /// anything in it changes.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path)?;
        let conn = Connection::open(path).map_err(|e| StoreError::at(path, e))?;
        Self::setup(conn, Some(path))
    }

    /// A private database in memory (no write-ahead log), for tests and
    /// tools.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory()?, None)
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(schema::version(&self.conn)?)
    }

    fn setup(mut conn: Connection, path: Option<&Path>) -> Result<Self, StoreError> {
        let at = |e| match path {
            Some(p) => StoreError::at(p, e),
            None => StoreError::from(e),
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(at)?;
        // First read of the file: fails here if it is not a database, and
        // refuses a newer schema before the journal mode below rewrites the
        // header.
        schema::check_not_newer(schema::version(&conn).map_err(at)?)?;
        if let Some(path) = path {
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(at)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::NoWal {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        // With WAL, NORMAL syncs at checkpoints, not at every commit: a
        // committed transaction survives a crash of this process (the WAL is
        // in the OS's hands), which is what the tests check; only a power
        // loss or kernel crash may lose the last commits (never corrupt the
        // file). FULL would survive those too, at a sync per commit.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(at)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(at)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// Creates the file with owner-only permissions if it does not exist yet
/// (SQLite gives its `-wal` and `-shm` files the same permissions).
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|source| StoreError::Io {
        path: PathBuf::from(path),
        source,
    })?;
    Ok(())
}

/// A Haven `u64` as an SQLite integer.
fn to_sql(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// An SQLite integer back as a Haven `u64`.
fn from_sql(table: &'static str, id: impl ToString, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        table,
        id: id.to_string(),
        problem: format!("negative number {value}"),
    })
}

/// Decodes a JSON column.
fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    id: i64,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        id: id.to_string(),
        problem: e.to_string(),
    })
}

fn to_json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// Decodes a column that holds one of a fixed set of names (`what`, e.g.
/// an outcome) with `parse`.
fn from_name<T>(
    table: &'static str,
    id: i64,
    what: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(text).ok_or_else(|| StoreError::Corrupt {
        table,
        id: id.to_string(),
        problem: format!("unknown {what} {text:?}"),
    })
}

/// A `grants` row, selected as [`GRANT_COLUMNS`].
fn grant_of(row: &Row<'_>) -> rusqlite::Result<GrantRecord> {
    Ok(GrantRecord {
        id: row.get(0)?,
        principal_kind: row.get(1)?,
        principal: row.get(2)?,
        role: row.get(3)?,
        cluster: row.get(4)?,
        service_group: row.get(5)?,
        created_ms: row.get(6)?,
        created_by: row.get(7)?,
    })
}

/// A `SELECT` with the filters that are set, numbered parameters and a
/// limit. Each combination of filters is its own cached statement.
struct Select<'a> {
    sql: String,
    params: Vec<&'a dyn ToSql>,
    has_where: bool,
}

impl<'a> Select<'a> {
    fn from(base: &str) -> Self {
        Select {
            sql: base.to_owned(),
            params: Vec::new(),
            has_where: false,
        }
    }

    /// Adds `condition` (already with its placeholders) to the `WHERE`
    /// clause.
    fn condition(&mut self, condition: &str) {
        self.sql
            .push_str(if self.has_where { " AND " } else { " WHERE " });
        self.sql.push_str(condition);
        self.has_where = true;
    }

    /// Adds `condition`, where every `?` stands for `value`.
    fn filter(&mut self, condition: &str, value: &'a dyn ToSql) {
        self.params.push(value);
        let placeholder = format!("?{}", self.params.len());
        self.condition(&condition.replace('?', &placeholder));
    }

    fn filter_opt<T: ToSql>(&mut self, condition: &str, value: &'a Option<T>) {
        if let Some(value) = value {
            self.filter(condition, value);
        }
    }

    /// If `values` is set, only rows whose `column` is one of them (an
    /// empty list: no rows). One parameter per value, so each length of
    /// list is its own cached statement.
    fn filter_in<T: ToSql>(&mut self, column: &str, values: &'a Option<Vec<T>>) {
        let Some(values) = values else { return };
        if values.is_empty() {
            self.condition("FALSE");
            return;
        }
        let mut placeholders = Vec::with_capacity(values.len());
        for value in values {
            self.params.push(value);
            placeholders.push(format!("?{}", self.params.len()));
        }
        self.condition(&format!("{column} IN ({})", placeholders.join(", ")));
    }

    /// Runs the query, mapping each row with `map`.
    fn run<T>(
        mut self,
        conn: &Connection,
        tail: &str,
        limit: Option<&'a i64>,
        mut map: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.sql.push(' ');
        self.sql.push_str(tail);
        if let Some(limit) = limit {
            self.params.push(limit);
            self.sql.push_str(&format!(" LIMIT ?{}", self.params.len()));
        }
        let mut stmt = conn.prepare_cached(&self.sql)?;
        let mut rows = stmt.query(self.params.as_slice())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    }
}

/// A limit for SQL (`usize` may exceed `i64`; no table can).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Where one cluster's cursor goes at the end of a batch.
struct CursorMove {
    epoch: u64,
    seq: u64,
    /// The batch changed epoch: the stored cursor is replaced, not merged.
    replace: bool,
}

impl Store for SqliteStore {
    fn begin_history(&mut self, cluster: &str, at: Cursor) -> Result<bool, StoreError> {
        let set = self
            .conn
            .prepare_cached(
                "INSERT INTO cursors (cluster, epoch, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (cluster) DO NOTHING",
            )?
            .execute(params![
                cluster,
                to_sql("epoch", at.epoch)?,
                to_sql("seq", at.seq)?
            ])?;
        Ok(set == 1)
    }

    fn insert_join_token(&mut self, token: &JoinTokenRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO join_tokens (id, secret_hash, cluster, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(rusqlite::params![
                token.id,
                token.secret_hash,
                token.cluster,
                token.created_ms,
                token.expires_ms
            ])?;
        Ok(())
    }

    fn spend_join_token(
        &mut self,
        id: &str,
        secret_hash: &str,
        cluster: &str,
        now_ms: i64,
    ) -> Result<Result<(), String>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(String, Option<String>, i64, Option<i64>)> = tx
            .query_row(
                "SELECT secret_hash, cluster, expires_ms, used_ms FROM join_tokens WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let verdict = match row {
            None => Err("unknown join token; create a new one on the server".to_string()),
            Some((hash, _, _, _)) if hash != secret_hash => {
                Err("wrong join token secret; copy the whole token".to_string())
            }
            Some((_, _, _, Some(_))) => {
                Err("this join token was already used; create a new one".to_string())
            }
            Some((_, _, expires, _)) if expires < now_ms => {
                Err("this join token has expired; create a new one".to_string())
            }
            Some((_, Some(only), _, _)) if only != cluster => Err(format!(
                "this join token is for cluster {only}, not {cluster}"
            )),
            Some(_) => Ok(()),
        };
        if verdict.is_ok() {
            tx.execute(
                "UPDATE join_tokens SET used_ms = ?2, used_by = ?3 WHERE id = ?1",
                rusqlite::params![id, now_ms, cluster],
            )?;
        }
        tx.commit()?;
        Ok(verdict)
    }

    fn upsert_connector(&mut self, rec: &ConnectorRecord) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM connectors WHERE cluster = ?1", [&rec.cluster])?;
        tx.execute(
            "INSERT INTO connectors (id, cluster, secret_hash, version, joined_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                rec.id,
                rec.cluster,
                rec.secret_hash,
                rec.version,
                rec.joined_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, cluster, secret_hash, version, joined_ms FROM connectors ORDER BY cluster",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ConnectorRecord {
                id: r.get(0)?,
                cluster: r.get(1)?,
                secret_hash: r.get(2)?,
                version: r.get(3)?,
                joined_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn list_clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        Select::from("SELECT name, address, username, password, added_ms FROM clusters").run(
            &self.conn,
            "ORDER BY name",
            None,
            |row| {
                Ok(ClusterRecord {
                    name: row.get(0)?,
                    address: row.get(1)?,
                    user: row.get(2)?,
                    password: row.get(3)?,
                    added_ms: row.get(4)?,
                })
            },
        )
    }

    fn upsert_cluster(&mut self, rec: &ClusterRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO clusters (name, address, username, password, added_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE SET address = excluded.address,
                    username = excluded.username, password = excluded.password,
                    added_ms = excluded.added_ms",
            )?
            .execute(params![
                rec.name,
                rec.address,
                rec.user,
                rec.password,
                rec.added_ms
            ])?;
        Ok(())
    }

    fn remove_cluster(&mut self, name: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM clusters WHERE name = ?1")?
            .execute([name])?;
        Ok(removed > 0)
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |row| row.get(0))
            .optional()?)
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute([key, value])?;
        Ok(())
    }

    fn cursors(&self) -> Result<HashMap<String, Cursor>, StoreError> {
        let rows = Select::from("SELECT cluster, epoch, seq FROM cursors").run(
            &self.conn,
            "",
            None,
            |row| {
                let cluster: String = row.get(0)?;
                let epoch = from_sql("cursors", &cluster, row.get(1)?)?;
                let seq = from_sql("cursors", &cluster, row.get(2)?)?;
                Ok((cluster, Cursor { epoch, seq }))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    fn append(&mut self, rows: &[HistoryRow]) -> Result<AppendReport, StoreError> {
        let mut report = AppendReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        let mut moves: HashMap<&str, CursorMove> = HashMap::new();
        let tx = self.write_tx()?;
        {
            let mut insert = tx.prepare_cached(INSERT_HISTORY)?;
            for row in rows {
                let event = &row.event;
                let cols = EventColumns::of(&event.kind);
                let detail = to_json("event", &event.kind)?;
                let inserted = insert.execute(params![
                    row.cluster,
                    to_sql("epoch", row.epoch)?,
                    to_sql("seq", event.seq)?,
                    event.time_ms,
                    cols.kind,
                    cols.grp,
                    cols.resource,
                    cols.system,
                    cols.object,
                    cols.old_state,
                    cols.new_state,
                    detail,
                ])?;
                if inserted == 0 {
                    // Already stored: it moved the cursor when it was.
                    report.duplicates += 1;
                    continue;
                }
                report.inserted += 1;
                let (epoch, seq) = (row.epoch, event.seq);
                moves
                    .entry(row.cluster.as_str())
                    .and_modify(|m| {
                        if m.epoch == epoch {
                            m.seq = m.seq.max(seq);
                        } else {
                            *m = CursorMove {
                                epoch,
                                seq,
                                replace: true,
                            };
                        }
                    })
                    .or_insert(CursorMove {
                        epoch,
                        seq,
                        replace: false,
                    });
            }
            let mut merge = tx.prepare_cached(MERGE_CURSOR)?;
            let mut replace = tx.prepare_cached(REPLACE_CURSOR)?;
            for (cluster, m) in &moves {
                // Both already fit: they came from rows just inserted.
                let values = params![cluster, to_sql("epoch", m.epoch)?, to_sql("seq", m.seq)?];
                if m.replace {
                    replace.execute(values)?;
                } else {
                    merge.execute(values)?;
                }
            }
        }
        tx.commit()?;
        Ok(report)
    }

    fn record_gap(&mut self, gap: &Gap) -> Result<(), StoreError> {
        let after_epoch = gap.after.map(|c| to_sql("epoch", c.epoch)).transpose()?;
        let after_seq = gap.after.map(|c| to_sql("seq", c.seq)).transpose()?;
        let resumed_epoch = to_sql("epoch", gap.resumed.epoch)?;
        let resumed_seq = to_sql("seq", gap.resumed.seq)?;
        let tx = self.write_tx()?;
        tx.prepare_cached(
            "INSERT INTO gaps (cluster, after_epoch, after_seq, resumed_epoch, resumed_seq, time_ms, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            gap.cluster,
            after_epoch,
            after_seq,
            resumed_epoch,
            resumed_seq,
            gap.time_ms,
            gap.reason
        ])?;
        tx.prepare_cached(REPLACE_CURSOR)?.execute(params![
            gap.cluster,
            resumed_epoch,
            resumed_seq
        ])?;
        tx.commit()?;
        Ok(())
    }

    fn gaps(&self, cluster: Option<&str>) -> Result<Vec<Gap>, StoreError> {
        let mut select = Select::from(
            "SELECT id, cluster, after_epoch, after_seq, resumed_epoch, resumed_seq, time_ms, reason
             FROM gaps",
        );
        let cluster = cluster.map(str::to_owned);
        select.filter_opt("cluster = ?", &cluster);
        select.run(&self.conn, "ORDER BY id", None, |row| {
            let id: i64 = row.get(0)?;
            let int = |i| -> Result<u64, StoreError> { from_sql("gaps", id, row.get(i)?) };
            let after = match row.get::<_, Option<i64>>(2)? {
                Some(_) => Some(Cursor {
                    epoch: int(2)?,
                    seq: int(3)?,
                }),
                None => None,
            };
            Ok(Gap {
                cluster: row.get(1)?,
                after,
                resumed: Cursor {
                    epoch: int(4)?,
                    seq: int(5)?,
                },
                time_ms: row.get(6)?,
                reason: row.get(7)?,
            })
        })
    }

    fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryRow>, StoreError> {
        let mut select =
            Select::from("SELECT id, cluster, epoch, seq, time_ms, detail FROM history");
        select.filter_opt("cluster = ?", &q.cluster);
        select.filter_in("cluster", &q.clusters);
        select.filter_opt(
            "(grp = ? OR resource = ? OR system = ? OR object = ?)",
            &q.object,
        );
        select.filter_opt("time_ms >= ?", &q.since_ms);
        select.filter_opt("time_ms < ?", &q.until_ms);
        let limit = sql_limit(q.limit);
        select.run(
            &self.conn,
            if q.oldest_first {
                "ORDER BY time_ms, id"
            } else {
                "ORDER BY time_ms DESC, id DESC"
            },
            Some(&limit),
            |row| {
                let id: i64 = row.get(0)?;
                let detail: String = row.get(5)?;
                let kind: EventKind = from_json("history", id, &detail)?;
                Ok(HistoryRow {
                    cluster: row.get(1)?,
                    epoch: from_sql("history", id, row.get(2)?)?,
                    event: haven_model::Event {
                        seq: from_sql("history", id, row.get(3)?)?,
                        time_ms: row.get(4)?,
                        kind,
                    },
                })
            },
        )
    }

    fn seq_ranges(&self, cluster: Option<&str>) -> Result<Vec<SeqRange>, StoreError> {
        let mut select =
            Select::from("SELECT cluster, epoch, count(*), min(seq), max(seq) FROM history");
        let cluster = cluster.map(str::to_owned);
        select.filter_opt("cluster = ?", &cluster);
        select.run(
            &self.conn,
            "GROUP BY cluster, epoch ORDER BY cluster, epoch",
            None,
            |row| {
                let cluster: String = row.get(0)?;
                let int =
                    |i| -> Result<u64, StoreError> { from_sql("history", &cluster, row.get(i)?) };
                Ok(SeqRange {
                    epoch: int(1)?,
                    count: int(2)?,
                    min_seq: int(3)?,
                    max_seq: int(4)?,
                    cluster: cluster.clone(),
                })
            },
        )
    }

    fn insert_operation(&mut self, op: &NewOperation) -> Result<i64, StoreError> {
        let json = to_json("operation", &op.op)?;
        self.conn
            .prepare_cached(
                "INSERT INTO operations (cluster, username, verb, op, requested_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                op.cluster,
                op.user,
                op.op.verb(),
                json,
                op.requested_ms
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn finish_operation(
        &mut self,
        id: i64,
        outcome: Outcome,
        reason: Option<&str>,
        finished_ms: i64,
    ) -> Result<(), StoreError> {
        let updated = self
            .conn
            .prepare_cached(
                "UPDATE operations SET outcome = ?2, reason = ?3, finished_ms = ?4 WHERE id = ?1",
            )?
            .execute(params![id, outcome.as_str(), reason, finished_ms])?;
        if updated == 0 {
            return Err(StoreError::UnknownOperation(id));
        }
        Ok(())
    }

    fn operations(&self, q: &OperationQuery) -> Result<Vec<OperationRecord>, StoreError> {
        let mut select = Select::from(
            "SELECT id, cluster, username, op, requested_ms, outcome, reason, finished_ms
             FROM operations",
        );
        select.filter_opt("cluster = ?", &q.cluster);
        select.filter_in("cluster", &q.clusters);
        select.filter_opt("username = ?", &q.user);
        let limit = sql_limit(q.limit);
        select.run(
            &self.conn,
            "ORDER BY requested_ms DESC, id DESC",
            Some(&limit),
            |row| {
                let id: i64 = row.get(0)?;
                let op: Operation = from_json("operations", id, &row.get::<_, String>(3)?)?;
                let outcome = row
                    .get::<_, Option<String>>(5)?
                    .map(|text| from_name("operations", id, "outcome", &text, Outcome::parse))
                    .transpose()?;
                Ok(OperationRecord {
                    id,
                    cluster: row.get(1)?,
                    user: row.get(2)?,
                    op,
                    requested_ms: row.get(4)?,
                    outcome,
                    reason: row.get(6)?,
                    finished_ms: row.get(7)?,
                })
            },
        )
    }

    fn insert_access(&mut self, rows: &[NewAccess]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO access_log
                    (time_ms, username, source, action, target, cluster, outcome, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for row in rows {
                insert.execute(params![
                    row.time_ms,
                    row.user,
                    row.source,
                    row.action,
                    row.target,
                    row.cluster,
                    row.outcome.as_str(),
                    row.reason,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn access_log(&self, q: &AccessQuery) -> Result<Vec<AccessRecord>, StoreError> {
        let outcome = q.outcome.map(AccessOutcome::as_str);
        let mut select = Select::from(
            "SELECT id, time_ms, username, source, action, target, cluster, outcome, reason
             FROM access_log",
        );
        select.filter_opt("username = ?", &q.user);
        select.filter_opt("action = ?", &q.action);
        select.filter_opt("outcome = ?", &outcome);
        select.filter_opt("cluster = ?", &q.cluster);
        select.filter_opt("time_ms >= ?", &q.since_ms);
        let limit = sql_limit(q.limit);
        select.run(
            &self.conn,
            "ORDER BY time_ms DESC, id DESC",
            Some(&limit),
            |row| {
                let id: i64 = row.get(0)?;
                let outcome: String = row.get(7)?;
                Ok(AccessRecord {
                    id,
                    time_ms: row.get(1)?,
                    user: row.get(2)?,
                    source: row.get(3)?,
                    action: row.get(4)?,
                    target: row.get(5)?,
                    cluster: row.get(6)?,
                    outcome: from_name(
                        "access_log",
                        id,
                        "outcome",
                        &outcome,
                        AccessOutcome::parse,
                    )?,
                    reason: row.get(8)?,
                })
            },
        )
    }

    fn insert_grant(&mut self, g: &NewGrant) -> Result<Option<i64>, StoreError> {
        // ON CONFLICT DO NOTHING, not INSERT OR IGNORE: only the unique
        // index may skip the row; a failed CHECK stays an error.
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO grants
                    (principal_kind, principal, role, cluster, service_group, created_ms, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                g.principal_kind,
                g.principal,
                g.role,
                g.cluster,
                g.service_group,
                g.created_ms,
                g.created_by
            ])?;
        Ok((inserted == 1).then(|| self.conn.last_insert_rowid()))
    }

    fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        Select::from(&format!("SELECT {GRANT_COLUMNS} FROM grants")).run(
            &self.conn,
            "ORDER BY id",
            None,
            |row| Ok(grant_of(row)?),
        )
    }

    fn delete_grant(&mut self, id: i64) -> Result<Option<GrantRecord>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM grants WHERE id = ?1 RETURNING {GRANT_COLUMNS}"
            ))?
            .query_row([id], grant_of)
            .optional()?)
    }
}

#[cfg(test)]
mod tests;
