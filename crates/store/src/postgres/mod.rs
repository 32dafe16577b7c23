//! [`PgStore`]: the [`Store`] in a PostgreSQL database, on one connection.
//!
//! It keeps [`SqliteStore`](crate::SqliteStore)'s behaviour exactly (the
//! behaviour tests run on both): the same tables (see `schema.rs` for the
//! differences in types), the same filters and orders, the same errors for
//! out-of-range numbers.
//!
//! - Every write that touches more than one row is one transaction. A
//!   batch of history is one `INSERT ... SELECT FROM unnest(arrays)`
//!   (one round trip whatever its size) with `ON CONFLICT DO NOTHING
//!   RETURNING` the keys it stored: what is not returned was a duplicate.
//!   The cursors move in the same transaction, in the order of cluster
//!   names, so two servers writing at once do not deadlock on them. (Two
//!   servers sending overlapping batches in different orders can still
//!   deadlock on the history rows: PostgreSQL then fails one batch, which
//!   stores nothing.)
//! - A join token is spent under a row lock (`SELECT ... FOR UPDATE`): of
//!   two servers spending it at once, one wins.
//! - Statements are prepared once per connection and cached. The
//!   connection uses the synchronous `postgres` client, which runs its own
//!   small runtime: call the store from a plain thread or `spawn_blocking`,
//!   never from inside an async task.
//! - A lost connection fails the call that found it
//!   ([`StoreError::Postgres`]); the next call connects again (and checks
//!   the schema version again). Nothing is retried behind the caller's
//!   back: a failed batch is simply not stored.
//! - There is no TLS to the database yet: use a local socket or a trusted
//!   network; a URL with `sslmode=require` is refused.

mod alerts;
mod checkpoints;
mod columns;
mod group;
mod maintenance;
mod peers;
mod schema;
mod tags;

use std::cell::{RefCell, RefMut};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use haven_model::{EventKind, Operation};
use postgres::config::{Host, SslMode};
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement};

use crate::error::pg_text;
use crate::{
    AccessOutcome, AccessQuery, AccessRecord, AppendReport, ClusterRecord, ConnectorRecord, Cursor,
    Gap, GrantRecord, HistoryQuery, HistoryRow, JoinTokenRecord, NewAccess, NewGrant, NewOperation,
    OperationQuery, OperationRecord, Outcome, SeqRange, Store, StoreError,
};
use columns::EventColumns;
pub(crate) use group::FENCED_CODE;
pub use group::{
    set_process_session, GroupLink, GroupServerRecord, GroupSession, Lead, LeaseRecord,
};

/// How long connecting may take when the URL does not say
/// (`connect_timeout`); without one, an unreachable host would hang the
/// server's start for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One batch of history, as arrays (one per column), in batch order.
const INSERT_HISTORY: &str = "INSERT INTO history
    (cluster, epoch, seq, time_ms, type, grp, resource, system, object, old_state, new_state, detail)
    SELECT cluster, epoch, seq, time_ms, type, grp, resource, system, object, old_state, new_state, detail
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
        WITH ORDINALITY AS batch (cluster, epoch, seq, time_ms, type, grp, resource, system,
                                  object, old_state, new_state, detail, n)
    ORDER BY n
    ON CONFLICT (cluster, epoch, seq) DO NOTHING
    RETURNING cluster, epoch, seq";

/// Moves cursors forward within their epoch, or to another epoch.
const MERGE_CURSORS: &str = "INSERT INTO cursors (cluster, epoch, seq)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
    ON CONFLICT (cluster) DO UPDATE SET
        seq = CASE WHEN cursors.epoch = excluded.epoch
                   THEN greatest(cursors.seq, excluded.seq) ELSE excluded.seq END,
        epoch = excluded.epoch";

/// Sets cursors, whatever they were.
const REPLACE_CURSORS: &str = "INSERT INTO cursors (cluster, epoch, seq)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
    ON CONFLICT (cluster) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq";

/// The columns [`grant_of`] reads, in its order.
const GRANT_COLUMNS: &str =
    "id, principal_kind, principal, role, cluster, service_group, created_ms, created_by";

/// The management database in PostgreSQL.
///
/// Reads take `&self` like every [`Store`]; the one connection behind them
/// is in a `RefCell`, so a `PgStore` moves between threads but is used by
/// one at a time (it is `Send`, not `Sync`, like
/// [`SqliteStore`](crate::SqliteStore)).
pub struct PgStore {
    config: Config,
    /// `host:port/database as user`, for messages.
    target: String,
    /// Always `Some` but while the store is dropped (see its `Drop`).
    conn: RefCell<Option<Conn>>,
}

impl Drop for PgStore {
    /// Closing the connection runs the client's own small runtime, which
    /// panics on a thread that drives async tasks (a server dropping its
    /// stores when it ends): it is closed on a thread of its own.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.get_mut().take() {
            let _ = std::thread::spawn(move || drop(conn)).join();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PgStore {
    /// The schema version this build creates and understands (the same
    /// numbers as [`SqliteStore::SCHEMA_VERSION`](crate::SqliteStore::SCHEMA_VERSION)).
    pub const SCHEMA_VERSION: u32 = schema::LATEST;

    /// Connects to the database at `url`
    /// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`, or libpq's
    /// `key=value` form; without TLS) and applies the migrations it lacks.
    ///
    /// The user must own the database (or may create tables in its
    /// schema). A database written by a newer Haven is refused
    /// ([`StoreError::TooNew`]) before anything in it changes. Errors name
    /// the host and database, never the password.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_as(url, group::process_session())
    }

    /// [`PgStore::connect`] for an active server of a group in its term
    /// (see `group.rs`): its writes are refused once the lease has passed
    /// to another term.
    pub fn connect_as(url: &str, session: Option<&GroupSession>) -> Result<Self, StoreError> {
        let mut config: Config = url.parse().map_err(|e| StoreError::PgUrl {
            problem: format!(
                "{}; write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                pg_text(&e)
            ),
        })?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(StoreError::PgUrl {
                problem: "it asks for TLS (sslmode=require), which this haven cannot speak to \
                          PostgreSQL yet: connect over a local socket or a trusted network, \
                          with sslmode=disable"
                    .into(),
            });
        }
        match session {
            Some(session) => group::apply_session(&mut config, session),
            None if config.get_application_name().is_none() => {
                config.application_name("haven");
            }
            None => {}
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target = describe(&config);
        let conn = Conn::open(&config, &target)?;
        Ok(PgStore {
            config,
            target,
            conn: RefCell::new(Some(conn)),
        })
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(schema::version(&mut self.conn()?.client)?)
    }

    /// Where it is connected: `host:port/database as user` (never the
    /// password), for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The connection, opened again if it was lost.
    fn conn(&self) -> Result<RefMut<'_, Conn>, StoreError> {
        let mut slot = self.conn.borrow_mut();
        if slot.as_ref().is_none_or(|conn| conn.client.is_closed()) {
            *slot = Some(Conn::open(&self.config, &self.target)?);
        }
        Ok(RefMut::map(slot, |conn| {
            conn.as_mut().expect("the connection was opened above")
        }))
    }
}

/// How to name the database of `url` to people: `host:port/database as
/// user`, never the password (whatever form the URL takes); `None` when it
/// is no PostgreSQL URL.
pub fn describe_url(url: &str) -> Option<String> {
    url.parse::<Config>().ok().map(|config| describe(&config))
}

/// `host:port/database as user`, from what the URL says and the defaults.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_owned()
    } else {
        hosts.join(",")
    };
    let user = config.get_user().unwrap_or("(no user)");
    let db = config.get_dbname().unwrap_or(user);
    format!("{hosts}/{db} as {user}")
}

impl Conn {
    /// Connects and brings the schema up to date.
    fn open(config: &Config, target: &str) -> Result<Self, StoreError> {
        let mut client = config
            .connect(NoTls)
            .map_err(|source| StoreError::PgConnect {
                target: target.to_owned(),
                source,
            })?;
        schema::migrate(&mut client, target)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// Statements outside a transaction.
    fn session(&mut self) -> Session<'_, Client> {
        Session {
            client: &mut self.client,
            statements: &mut self.statements,
        }
    }

    /// Runs `work` in a transaction and commits it; on error nothing of it
    /// stays.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Session<'_, postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.client.transaction()?;
        let value = work(&mut Session {
            client: &mut tx,
            statements: &mut self.statements,
        })?;
        tx.commit()?;
        Ok(value)
    }
}

/// A client (the connection, or a transaction on it) with the
/// connection's statement cache.
struct Session<'c, C: GenericClient> {
    client: &'c mut C,
    statements: &'c mut HashMap<String, Statement>,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Session<'_, C> {
    fn prepared(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    fn query_opt(&mut self, sql: &str, params: &Params<'_>) -> Result<Option<Row>, StoreError> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query_opt(&statement, params)?)
    }
}

/// A Haven `u64` as a PostgreSQL `bigint`.
fn to_sql(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// A `bigint` back as a Haven `u64`.
fn from_sql<T: TryFrom<i64>>(
    table: &'static str,
    id: impl ToString,
    value: i64,
) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt {
        table,
        id: id.to_string(),
        problem: format!("number {value} out of range"),
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
fn grant_of(row: &Row) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        id: row.try_get(0)?,
        principal_kind: row.try_get(1)?,
        principal: row.try_get(2)?,
        role: row.try_get(3)?,
        cluster: row.try_get(4)?,
        service_group: row.try_get(5)?,
        created_ms: row.try_get(6)?,
        created_by: row.try_get(7)?,
    })
}

/// A `SELECT` with the filters that are set, numbered parameters and a
/// limit. Each combination of filters is its own cached statement; a list
/// of values is one array parameter, so its length does not matter.
struct Select<'a> {
    sql: String,
    params: Vec<&'a (dyn ToSql + Sync)>,
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

    /// Adds `condition`, where every `?` stands for `value`.
    fn filter(&mut self, condition: &str, value: &'a (dyn ToSql + Sync)) {
        self.params.push(value);
        let placeholder = format!("${}", self.params.len());
        self.sql
            .push_str(if self.has_where { " AND " } else { " WHERE " });
        self.sql.push_str(&condition.replace('?', &placeholder));
        self.has_where = true;
    }

    fn filter_opt<T: ToSql + Sync>(&mut self, condition: &str, value: &'a Option<T>) {
        if let Some(value) = value {
            self.filter(condition, value);
        }
    }

    /// If `values` is set, only rows whose `column` is one of them (an
    /// empty list: no rows).
    fn filter_in(&mut self, column: &str, values: &'a Option<Vec<String>>) {
        if let Some(values) = values {
            self.filter(&format!("{column} = ANY(?)"), values);
        }
    }

    /// Runs the query, mapping each row with `map`.
    fn run<T>(
        mut self,
        store: &PgStore,
        tail: &str,
        limit: Option<&'a i64>,
        map: impl FnMut(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.sql.push(' ');
        self.sql.push_str(tail);
        if let Some(limit) = limit {
            self.params.push(limit);
            self.sql.push_str(&format!(" LIMIT ${}", self.params.len()));
        }
        let rows = store.conn()?.session().query(&self.sql, &self.params)?;
        rows.iter().map(map).collect()
    }
}

/// A limit for SQL (`usize` may exceed `i64`; no table can).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A batch of history as one array per column, in batch order. Building
/// it checks every number, so a batch with one out of range is refused
/// before anything is sent.
struct HistoryColumns<'r> {
    cluster: Vec<&'r str>,
    epoch: Vec<i64>,
    seq: Vec<i64>,
    time_ms: Vec<i64>,
    kind: Vec<&'static str>,
    grp: Vec<Option<&'r str>>,
    resource: Vec<Option<&'r str>>,
    system: Vec<Option<&'r str>>,
    object: Vec<Option<&'r str>>,
    old_state: Vec<Option<&'static str>>,
    new_state: Vec<Option<&'static str>>,
    detail: Vec<String>,
}

impl<'r> HistoryColumns<'r> {
    fn of(rows: &'r [HistoryRow]) -> Result<Self, StoreError> {
        let n = rows.len();
        let mut c = HistoryColumns {
            cluster: Vec::with_capacity(n),
            epoch: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            time_ms: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            grp: Vec::with_capacity(n),
            resource: Vec::with_capacity(n),
            system: Vec::with_capacity(n),
            object: Vec::with_capacity(n),
            old_state: Vec::with_capacity(n),
            new_state: Vec::with_capacity(n),
            detail: Vec::with_capacity(n),
        };
        for row in rows {
            let event = &row.event;
            let cols = EventColumns::of(&event.kind);
            c.cluster.push(&row.cluster);
            c.epoch.push(to_sql("epoch", row.epoch)?);
            c.seq.push(to_sql("seq", event.seq)?);
            c.time_ms.push(event.time_ms);
            c.kind.push(cols.kind);
            c.grp.push(cols.grp);
            c.resource.push(cols.resource);
            c.system.push(cols.system);
            c.object.push(cols.object);
            c.old_state.push(cols.old_state);
            c.new_state.push(cols.new_state);
            c.detail.push(to_json("event", &event.kind)?);
        }
        Ok(c)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.cluster,
            &self.epoch,
            &self.seq,
            &self.time_ms,
            &self.kind,
            &self.grp,
            &self.resource,
            &self.system,
            &self.object,
            &self.old_state,
            &self.new_state,
            &self.detail,
        ]
    }
}

/// Where one cluster's cursor goes at the end of a batch.
struct CursorMove {
    epoch: i64,
    seq: i64,
    /// The batch changed epoch: the stored cursor is replaced, not merged.
    replace: bool,
}

/// Follows the rows a batch stored, in order, to where each cluster's
/// cursor ends.
#[derive(Default)]
struct CursorMoves<'r>(HashMap<&'r str, CursorMove>);

impl<'r> CursorMoves<'r> {
    fn stored(&mut self, cluster: &'r str, epoch: i64, seq: i64) {
        self.0
            .entry(cluster)
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

    /// Writes the moves: merged, then replaced, each in the order of
    /// cluster names (so concurrent batches lock cursors in one order).
    fn write<C: GenericClient>(self, tx: &mut Session<'_, C>) -> Result<(), StoreError> {
        let mut moves: Vec<_> = self.0.into_iter().collect();
        moves.sort_unstable_by_key(|(cluster, _)| *cluster);
        for (replace, sql) in [(false, MERGE_CURSORS), (true, REPLACE_CURSORS)] {
            let chosen = moves.iter().filter(|(_, m)| m.replace == replace);
            let clusters: Vec<&str> = chosen.clone().map(|(c, _)| *c).collect();
            if clusters.is_empty() {
                continue;
            }
            let epochs: Vec<i64> = chosen.clone().map(|(_, m)| m.epoch).collect();
            let seqs: Vec<i64> = chosen.map(|(_, m)| m.seq).collect();
            tx.execute(sql, &[&clusters, &epochs, &seqs])?;
        }
        Ok(())
    }
}

/// Whether a join token may be spent, from its stored row (`None`:
/// unknown), as `Err(why)` for the connector.
fn join_verdict(
    row: Option<(String, Option<String>, i64, Option<i64>)>,
    secret_hash: &str,
    cluster: &str,
    now_ms: i64,
) -> Result<(), String> {
    match row {
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
    }
}

impl Store for PgStore {
    fn list_clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        Select::from("SELECT name, address, username, password, added_ms FROM clusters").run(
            self,
            "ORDER BY name",
            None,
            |row| {
                Ok(ClusterRecord {
                    name: row.try_get(0)?,
                    address: row.try_get(1)?,
                    user: row.try_get(2)?,
                    password: row.try_get(3)?,
                    added_ms: row.try_get(4)?,
                })
            },
        )
    }

    fn upsert_cluster(&mut self, rec: &ClusterRecord) -> Result<(), StoreError> {
        self.conn()?.session().execute(
            "INSERT INTO clusters (name, address, username, password, added_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET address = excluded.address,
                username = excluded.username, password = excluded.password,
                added_ms = excluded.added_ms",
            &[
                &rec.name,
                &rec.address,
                &rec.user,
                &rec.password,
                &rec.added_ms,
            ],
        )?;
        Ok(())
    }

    fn remove_cluster(&mut self, name: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn()?
            .session()
            .execute("DELETE FROM clusters WHERE name = $1", &[&name])?;
        Ok(removed > 0)
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()?
            .session()
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn()?.session().execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn cursors(&self) -> Result<HashMap<String, Cursor>, StoreError> {
        let rows =
            Select::from("SELECT cluster, epoch, seq FROM cursors").run(self, "", None, |row| {
                let cluster: String = row.try_get(0)?;
                let epoch = from_sql("cursors", &cluster, row.try_get(1)?)?;
                let seq = from_sql("cursors", &cluster, row.try_get(2)?)?;
                Ok((cluster, Cursor { epoch, seq }))
            })?;
        Ok(rows.into_iter().collect())
    }

    fn append(&mut self, rows: &[HistoryRow]) -> Result<AppendReport, StoreError> {
        let mut report = AppendReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        let columns = HistoryColumns::of(rows)?;
        self.conn()?.transaction(|tx| {
            let stored = tx.query(INSERT_HISTORY, &columns.params())?;
            let stored: Vec<(String, i64, i64)> = stored
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<_, StoreError>>()?;
            let mut stored: HashSet<(&str, i64, i64)> = stored
                .iter()
                .map(|(c, e, s)| (c.as_str(), *e, *s))
                .collect();
            // In batch order: the first row of a key was stored, any
            // other was a duplicate (of the database or of the batch).
            let mut moves = CursorMoves::default();
            for (i, cluster) in columns.cluster.iter().enumerate() {
                let (epoch, seq) = (columns.epoch[i], columns.seq[i]);
                if stored.remove(&(*cluster, epoch, seq)) {
                    report.inserted += 1;
                    moves.stored(cluster, epoch, seq);
                } else {
                    report.duplicates += 1;
                }
            }
            moves.write(tx)
        })?;
        Ok(report)
    }

    fn record_gap(&mut self, gap: &Gap) -> Result<(), StoreError> {
        let after_epoch = gap.after.map(|c| to_sql("epoch", c.epoch)).transpose()?;
        let after_seq = gap.after.map(|c| to_sql("seq", c.seq)).transpose()?;
        let resumed_epoch = to_sql("epoch", gap.resumed.epoch)?;
        let resumed_seq = to_sql("seq", gap.resumed.seq)?;
        self.conn()?.transaction(|tx| {
            tx.execute(
                "INSERT INTO gaps
                    (cluster, after_epoch, after_seq, resumed_epoch, resumed_seq, time_ms, reason)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &gap.cluster,
                    &after_epoch,
                    &after_seq,
                    &resumed_epoch,
                    &resumed_seq,
                    &gap.time_ms,
                    &gap.reason,
                ],
            )?;
            tx.execute(
                REPLACE_CURSORS,
                &[
                    &vec![gap.cluster.as_str()],
                    &vec![resumed_epoch],
                    &vec![resumed_seq],
                ],
            )?;
            Ok(())
        })
    }

    fn begin_history(&mut self, cluster: &str, at: Cursor) -> Result<bool, StoreError> {
        let set = self.conn()?.session().execute(
            "INSERT INTO cursors (cluster, epoch, seq) VALUES ($1, $2, $3)
             ON CONFLICT (cluster) DO NOTHING",
            &[
                &cluster,
                &to_sql("epoch", at.epoch)?,
                &to_sql("seq", at.seq)?,
            ],
        )?;
        Ok(set == 1)
    }

    fn gaps(&self, cluster: Option<&str>) -> Result<Vec<Gap>, StoreError> {
        let mut select = Select::from(
            "SELECT id, cluster, after_epoch, after_seq, resumed_epoch, resumed_seq, time_ms, reason
             FROM gaps",
        );
        select.filter_opt("cluster = ?", &cluster);
        select.run(self, "ORDER BY id", None, |row| {
            let id: i64 = row.try_get(0)?;
            let int = |i| -> Result<u64, StoreError> { from_sql("gaps", id, row.try_get(i)?) };
            let after = match row.try_get::<_, Option<i64>>(2)? {
                Some(_) => Some(Cursor {
                    epoch: int(2)?,
                    seq: int(3)?,
                }),
                None => None,
            };
            Ok(Gap {
                cluster: row.try_get(1)?,
                after,
                resumed: Cursor {
                    epoch: int(4)?,
                    seq: int(5)?,
                },
                time_ms: row.try_get(6)?,
                reason: row.try_get(7)?,
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
            self,
            if q.oldest_first {
                "ORDER BY time_ms, id"
            } else {
                "ORDER BY time_ms DESC, id DESC"
            },
            Some(&limit),
            |row| {
                let id: i64 = row.try_get(0)?;
                let detail: &str = row.try_get(5)?;
                let kind: EventKind = from_json("history", id, detail)?;
                Ok(HistoryRow {
                    cluster: row.try_get(1)?,
                    epoch: from_sql("history", id, row.try_get(2)?)?,
                    event: haven_model::Event {
                        seq: from_sql("history", id, row.try_get(3)?)?,
                        time_ms: row.try_get(4)?,
                        kind,
                    },
                })
            },
        )
    }

    fn seq_ranges(&self, cluster: Option<&str>) -> Result<Vec<SeqRange>, StoreError> {
        let mut select =
            Select::from("SELECT cluster, epoch, count(*), min(seq), max(seq) FROM history");
        select.filter_opt("cluster = ?", &cluster);
        select.run(
            self,
            "GROUP BY cluster, epoch ORDER BY cluster, epoch",
            None,
            |row| {
                let cluster: String = row.try_get(0)?;
                let int = |i| -> Result<u64, StoreError> {
                    from_sql("history", &cluster, row.try_get(i)?)
                };
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
        let row = self.conn()?.session().query_one(
            "INSERT INTO operations (cluster, username, verb, op, requested_ms)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &op.cluster,
                &op.user,
                &op.op.verb(),
                &json,
                &op.requested_ms,
            ],
        )?;
        Ok(row.try_get(0)?)
    }

    fn finish_operation(
        &mut self,
        id: i64,
        outcome: Outcome,
        reason: Option<&str>,
        finished_ms: i64,
    ) -> Result<(), StoreError> {
        let updated = self.conn()?.session().execute(
            "UPDATE operations SET outcome = $2, reason = $3, finished_ms = $4 WHERE id = $1",
            &[&id, &outcome.as_str(), &reason, &finished_ms],
        )?;
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
            self,
            "ORDER BY requested_ms DESC, id DESC",
            Some(&limit),
            |row| {
                let id: i64 = row.try_get(0)?;
                let op: Operation = from_json("operations", id, row.try_get(3)?)?;
                let outcome = row
                    .try_get::<_, Option<&str>>(5)?
                    .map(|text| from_name("operations", id, "outcome", text, Outcome::parse))
                    .transpose()?;
                Ok(OperationRecord {
                    id,
                    cluster: row.try_get(1)?,
                    user: row.try_get(2)?,
                    op,
                    requested_ms: row.try_get(4)?,
                    outcome,
                    reason: row.try_get(6)?,
                    finished_ms: row.try_get(7)?,
                })
            },
        )
    }

    fn insert_join_token(&mut self, token: &JoinTokenRecord) -> Result<(), StoreError> {
        self.conn()?.session().execute(
            "INSERT INTO join_tokens (id, secret_hash, cluster, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &token.id,
                &token.secret_hash,
                &token.cluster,
                &token.created_ms,
                &token.expires_ms,
            ],
        )?;
        Ok(())
    }

    fn spend_join_token(
        &mut self,
        id: &str,
        secret_hash: &str,
        cluster: &str,
        now_ms: i64,
    ) -> Result<Result<(), String>, StoreError> {
        self.conn()?.transaction(|tx| {
            // The row lock makes a second server spending the same token
            // wait here, then see it used.
            let row = tx
                .query_opt(
                    "SELECT secret_hash, cluster, expires_ms, used_ms FROM join_tokens
                     WHERE id = $1 FOR UPDATE",
                    &[&id],
                )?
                .map(|r| -> Result<_, StoreError> {
                    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
                })
                .transpose()?;
            let verdict = join_verdict(row, secret_hash, cluster, now_ms);
            if verdict.is_ok() {
                tx.execute(
                    "UPDATE join_tokens SET used_ms = $2, used_by = $3 WHERE id = $1",
                    &[&id, &now_ms, &cluster],
                )?;
            }
            Ok(verdict)
        })
    }

    fn upsert_connector(&mut self, rec: &ConnectorRecord) -> Result<(), StoreError> {
        self.conn()?.transaction(|tx| {
            tx.execute("DELETE FROM connectors WHERE cluster = $1", &[&rec.cluster])?;
            tx.execute(
                "INSERT INTO connectors (id, cluster, secret_hash, version, joined_ms)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &rec.id,
                    &rec.cluster,
                    &rec.secret_hash,
                    &rec.version,
                    &rec.joined_ms,
                ],
            )?;
            Ok(())
        })
    }

    fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
        Select::from("SELECT id, cluster, secret_hash, version, joined_ms FROM connectors").run(
            self,
            "ORDER BY cluster",
            None,
            |r| {
                Ok(ConnectorRecord {
                    id: r.try_get(0)?,
                    cluster: r.try_get(1)?,
                    secret_hash: r.try_get(2)?,
                    version: r.try_get(3)?,
                    joined_ms: r.try_get(4)?,
                })
            },
        )
    }

    fn insert_access(&mut self, rows: &[NewAccess]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let time_ms: Vec<i64> = rows.iter().map(|r| r.time_ms).collect();
        let user: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
        let source: Vec<Option<&str>> = rows.iter().map(|r| r.source.as_deref()).collect();
        let action: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
        let target: Vec<Option<&str>> = rows.iter().map(|r| r.target.as_deref()).collect();
        let cluster: Vec<Option<&str>> = rows.iter().map(|r| r.cluster.as_deref()).collect();
        let outcome: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
        let reason: Vec<Option<&str>> = rows.iter().map(|r| r.reason.as_deref()).collect();
        // One statement: all of the rows or none.
        self.conn()?.session().execute(
            "INSERT INTO access_log
                (time_ms, username, source, action, target, cluster, outcome, reason)
             SELECT time_ms, username, source, action, target, cluster, outcome, reason
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[])
                 WITH ORDINALITY AS batch (time_ms, username, source, action, target,
                                           cluster, outcome, reason, n)
             ORDER BY n",
            &[
                &time_ms, &user, &source, &action, &target, &cluster, &outcome, &reason,
            ],
        )?;
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
            self,
            "ORDER BY time_ms DESC, id DESC",
            Some(&limit),
            |row| {
                let id: i64 = row.try_get(0)?;
                let outcome: &str = row.try_get(7)?;
                Ok(AccessRecord {
                    id,
                    time_ms: row.try_get(1)?,
                    user: row.try_get(2)?,
                    source: row.try_get(3)?,
                    action: row.try_get(4)?,
                    target: row.try_get(5)?,
                    cluster: row.try_get(6)?,
                    outcome: from_name("access_log", id, "outcome", outcome, AccessOutcome::parse)?,
                    reason: row.try_get(8)?,
                })
            },
        )
    }

    fn insert_grant(&mut self, g: &NewGrant) -> Result<Option<i64>, StoreError> {
        // Only the unique index may skip the row; a failed CHECK stays an
        // error (ON CONFLICT covers unique violations only).
        self.conn()?
            .session()
            .query_opt(
                "INSERT INTO grants
                    (principal_kind, principal, role, cluster, service_group, created_ms, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT DO NOTHING
                 RETURNING id",
                &[
                    &g.principal_kind,
                    &g.principal,
                    &g.role,
                    &g.cluster,
                    &g.service_group,
                    &g.created_ms,
                    &g.created_by,
                ],
            )?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
    }

    fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        Select::from(&format!("SELECT {GRANT_COLUMNS} FROM grants")).run(
            self,
            "ORDER BY id",
            None,
            grant_of,
        )
    }

    fn delete_grant(&mut self, id: i64) -> Result<Option<GrantRecord>, StoreError> {
        self.conn()?
            .session()
            .query_opt(
                &format!("DELETE FROM grants WHERE id = $1 RETURNING {GRANT_COLUMNS}"),
                &[&id],
            )?
            .map(|row| grant_of(&row))
            .transpose()
    }
}
