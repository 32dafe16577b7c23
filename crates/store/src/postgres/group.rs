//! A clustered server: several `haven server` processes on one PostgreSQL
//! database, one of them active (docs/clustered.md).
//!
//! Nothing here is home-made consensus; PostgreSQL decides:
//! - **Who is active.** The active server's *lease session* (a connection
//!   of its own, [`GroupLink`]) holds the session advisory lock
//!   [`LEADER_LOCK`] for as long as it lives, and renews the one row of
//!   `group_lease` every beat. A server killed outright loses its
//!   connections, so the lock is free at once; a server that is paused or
//!   cut off keeps the lock but stops renewing, and once its lease has
//!   expired (by the database's clock) a standby ends that server's
//!   sessions (`pg_terminate_backend`, found by their `application_name`,
//!   `haven/ID/TERM`) and takes the lock next.
//! - **Fencing.** Taking over moves `group_lease.term` by one, under
//!   [`FENCE_LOCK`] taken alone. Every connection of an active server
//!   carries its term (`haven.term`, set at connect: [`GroupSession`]), and a
//!   trigger on every table refuses a write whose term is not the lease's
//!   (`55H00`, [`StoreError::Fenced`]). The trigger holds `FENCE_LOCK`
//!   shared until its transaction ends, so the term moves only after every
//!   write of the old holder has ended (its sessions were terminated just
//!   before, so a paused one does not hold it up), and every write after
//!   sees the new term. A paused old leader that wakes up writes nothing.

use postgres::{Client, Config};

use super::schema::{FENCE_LOCK, LEADER_LOCK};
use super::PgStore;
use crate::StoreError;

/// The SQLSTATE the fence raises (see `schema.rs`, V7).
pub(crate) const FENCED_CODE: &str = "55H00";

/// The database's clock in milliseconds since the Unix epoch: every time
/// in the group's tables is the database's, so the servers' clocks do not
/// matter.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Who a connection speaks for: an active server of a group in its term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSession {
    /// `[group] server_id`.
    pub server_id: String,
    /// The lease's term this server holds.
    pub term: i64,
}

impl GroupSession {
    /// The `application_name` of every connection of this server in this
    /// term: how a new active server finds (and ends) them.
    pub fn application_name(&self) -> String {
        application_name(&self.server_id, self.term)
    }
}

fn application_name(server_id: &str, term: i64) -> String {
    format!("haven/{server_id}/{term}")
}

static PROCESS_SESSION: std::sync::OnceLock<GroupSession> = std::sync::OnceLock::new();

/// Makes every [`PgStore`] this process connects from now on speak for
/// `session` (an active server does this once, on taking the lease; it
/// never gives a term back: a server that loses the lease starts again).
pub fn set_process_session(session: GroupSession) -> Result<(), StoreError> {
    PROCESS_SESSION
        .set(session)
        .map_err(|_| StoreError::Maintenance("this process already has a term".into()))
}

/// The session [`set_process_session`] set.
pub(crate) fn process_session() -> Option<&'static GroupSession> {
    PROCESS_SESSION.get()
}

/// What a connection of `session` says when it connects.
pub(crate) fn apply_session(config: &mut Config, session: &GroupSession) {
    config.application_name(&session.application_name());
    // `haven.term` is a custom setting: the fence trigger reads it.
    config.options(&format!("-c haven.term={}", session.term));
}

/// One server of the group as it last said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupServerRecord {
    /// `[group] server_id`.
    pub id: String,
    /// Where people and tools reach it (`https://HOST:PORT`).
    pub api_url: String,
    /// Where connectors reach it (HOST:PORT).
    pub connector_address: String,
    /// `active`, `standby` or `stopped`.
    pub role: String,
    /// Haven's version.
    pub version: String,
    /// Its process id.
    pub pid: i64,
    /// When it started (its own clock).
    pub started_ms: i64,
    /// Its last word (the database's clock).
    pub heartbeat_ms: i64,
}

/// The lease as read, with the database's clock at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Grows by one with every new holder (0: never held).
    pub term: i64,
    /// The server id that holds (or last held) it.
    pub holder: Option<String>,
    /// When the holder took it.
    pub acquired_ms: Option<i64>,
    /// Until when it holds it, unless renewed.
    pub expires_ms: i64,
    /// The database's clock when it was read.
    pub now_ms: i64,
}

/// The outcome of [`GroupLink::try_lead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lead {
    /// This server is active, in this term.
    Won(i64),
    /// Another holds the lease. When it had expired, the holder's
    /// database sessions were ended (how many), so a next try may win.
    Held {
        /// The lease as read.
        lease: LeaseRecord,
        /// How many sessions of an expired holder were ended.
        ended: Option<i64>,
    },
}

/// Only `drop` takes a link's client.
const TAKEN: &str = "the client is taken only when the link is dropped";

/// A server's own connection for the group: its row, the lease.
pub struct GroupLink {
    /// Always `Some` but while the link is dropped.
    client: Option<Client>,
    server_id: String,
}

impl Drop for GroupLink {
    /// See [`PgStore`]'s `Drop`: the client's runtime must not be dropped
    /// on an async thread.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl GroupLink {
    /// Connects for server `server_id` (migrating the database first, as
    /// every store does).
    pub fn connect(url: &str, server_id: &str) -> Result<GroupLink, StoreError> {
        // The store's connection (it checked the URL and migrated), named
        // as this server's lease session.
        let mut store = PgStore::connect(url)?;
        let mut link = GroupLink {
            client: store.conn.get_mut().take().map(|conn| conn.client),
            server_id: server_id.to_owned(),
        };
        link.name_session(&format!("haven/{server_id}/lease"))?;
        Ok(link)
    }

    /// Sets the session's `application_name`.
    fn name_session(&mut self, name: &str) -> Result<(), StoreError> {
        self.client.as_mut().expect(TAKEN).batch_execute(&format!(
            "SET application_name = '{}'",
            name.replace('\'', "''")
        ))?;
        Ok(())
    }

    /// Whether the connection is gone (connect again).
    pub fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }

    /// Says this server is here (as a standby), or that it is still here.
    pub fn register(&mut self, me: &GroupServerRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO group_servers
                (id, api_url, connector_address, role, version, pid, started_ms, heartbeat_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW_MS})
             ON CONFLICT (id) DO UPDATE SET api_url = excluded.api_url,
                 connector_address = excluded.connector_address, role = excluded.role,
                 version = excluded.version, pid = excluded.pid,
                 started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms"
        );
        self.client.as_mut().expect(TAKEN).execute(
            &sql,
            &[
                &me.id,
                &me.api_url,
                &me.connector_address,
                &me.role,
                &me.version,
                &me.pid,
                &me.started_ms,
            ],
        )?;
        Ok(())
    }

    /// Tries to become the active server, for `ttl_ms` at a time.
    ///
    /// Wins when the previous holder's lease session is gone (the advisory
    /// lock is free). Else, when the lease has expired, ends the silent
    /// holder's sessions, so that the next try can win.
    pub fn try_lead(&mut self, ttl_ms: i64) -> Result<Lead, StoreError> {
        let free: bool = self
            .client
            .as_mut()
            .expect(TAKEN)
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])?
            .try_get(0)?;
        if !free {
            let lease = self.lease()?;
            let mut ended = None;
            if let Some(holder) = &lease.holder {
                if lease.expires_ms < lease.now_ms && holder != &self.server_id {
                    ended = Some(self.end_sessions(holder, lease.term)?);
                }
            }
            return Ok(Lead::Held { lease, ended });
        }
        // The lock is ours, so the previous holder's lease session is gone;
        // its other sessions may not be (paused, or cut off from the rest).
        let before = self.lease()?;
        if let Some(holder) = &before.holder {
            self.end_sessions(holder, before.term)?;
        }
        let mut tx = self.client.as_mut().expect(TAKEN).transaction()?;
        tx.batch_execute("SET LOCAL lock_timeout = '10s'")?;
        // Waits for every write of the old term to end.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FENCE_LOCK])?;
        let term: i64 = tx
            .query_one(
                &format!(
                    "UPDATE group_lease SET term = term + 1, holder = $1,
                        acquired_ms = {NOW_MS}, expires_ms = {NOW_MS} + $2
                     WHERE id = 1 RETURNING term"
                ),
                &[&self.server_id, &ttl_ms],
            )?
            .try_get(0)?;
        tx.execute(
            "UPDATE group_servers SET role = 'standby' WHERE role = 'active' AND id <> $1",
            &[&self.server_id],
        )?;
        tx.execute(
            &format!(
                "UPDATE group_servers SET role = 'active', heartbeat_ms = {NOW_MS} WHERE id = $1"
            ),
            &[&self.server_id],
        )?;
        tx.commit()?;
        self.name_session(&application_name(&self.server_id, term))?;
        Ok(Lead::Won(term))
    }

    /// Renews the lease of `term` for `ttl_ms` more and says this server
    /// is alive; `false` when the lease is no longer this server's.
    pub fn renew(&mut self, term: i64, ttl_ms: i64) -> Result<bool, StoreError> {
        let id = self.server_id.clone();
        let renewed = self.client.as_mut().expect(TAKEN).execute(
            &format!(
                "UPDATE group_lease SET expires_ms = {NOW_MS} + $2
                 WHERE id = 1 AND term = $1 AND holder = $3"
            ),
            &[&term, &ttl_ms, &id],
        )?;
        self.beat()?;
        Ok(renewed == 1)
    }

    /// Says this server is alive (its heartbeat).
    pub fn beat(&mut self) -> Result<(), StoreError> {
        let id = self.server_id.clone();
        self.client.as_mut().expect(TAKEN).execute(
            &format!("UPDATE group_servers SET heartbeat_ms = {NOW_MS} WHERE id = $1"),
            &[&id],
        )?;
        Ok(())
    }

    /// Leaves the group: marks this server stopped and, if it held the
    /// lease, lets it go at once (a standby need not wait for it to
    /// expire).
    pub fn leave(&mut self, term: Option<i64>) -> Result<(), StoreError> {
        self.client.as_mut().expect(TAKEN).execute(
            "UPDATE group_servers SET role = 'stopped' WHERE id = $1",
            &[&self.server_id],
        )?;
        if let Some(term) = term {
            self.client.as_mut().expect(TAKEN).execute(
                "UPDATE group_lease SET expires_ms = 0 WHERE id = 1 AND term = $1 AND holder = $2",
                &[&term, &self.server_id],
            )?;
            self.client
                .as_mut()
                .expect(TAKEN)
                .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK])?;
        }
        Ok(())
    }

    /// The lease, with the database's clock.
    pub fn lease(&mut self) -> Result<LeaseRecord, StoreError> {
        let row = self.client.as_mut().expect(TAKEN).query_one(
            &format!(
                "SELECT term, holder, acquired_ms, expires_ms, {NOW_MS} FROM group_lease WHERE id = 1"
            ),
            &[],
        )?;
        Ok(LeaseRecord {
            term: row.try_get(0)?,
            holder: row.try_get(1)?,
            acquired_ms: row.try_get(2)?,
            expires_ms: row.try_get(3)?,
            now_ms: row.try_get(4)?,
        })
    }

    /// Every server of the group, by id.
    pub fn servers(&mut self) -> Result<Vec<GroupServerRecord>, StoreError> {
        let rows = self.client.as_mut().expect(TAKEN).query(
            "SELECT id, api_url, connector_address, role, version, pid, started_ms, heartbeat_ms
             FROM group_servers ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(GroupServerRecord {
                    id: row.try_get(0)?,
                    api_url: row.try_get(1)?,
                    connector_address: row.try_get(2)?,
                    role: row.try_get(3)?,
                    version: row.try_get(4)?,
                    pid: row.try_get(5)?,
                    started_ms: row.try_get(6)?,
                    heartbeat_ms: row.try_get(7)?,
                })
            })
            .collect()
    }

    /// The value the group shares under `name`: `value` if none was
    /// stored yet (it is stored now), else the one stored first.
    pub fn share(&mut self, name: &str, value: &str) -> Result<String, StoreError> {
        self.client.as_mut().expect(TAKEN).execute(
            "INSERT INTO group_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &value],
        )?;
        self.shared(name)?.ok_or_else(|| StoreError::Corrupt {
            table: "group_secrets",
            id: name.to_owned(),
            problem: "it vanished as it was shared".into(),
        })
    }

    /// What the group shares under `name`, if anything.
    pub fn shared(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .client
            .as_mut()
            .expect(TAKEN)
            .query_opt("SELECT value FROM group_secrets WHERE name = $1", &[&name])?
            .map(|row| row.try_get(0))
            .transpose()?)
    }

    /// Ends every database session of `server_id` in `term` (a server that
    /// lost or is losing the lease), waiting up to 5 s for each; returns
    /// how many there were.
    fn end_sessions(&mut self, server_id: &str, term: i64) -> Result<i64, StoreError> {
        let name = application_name(server_id, term);
        let row = self.client.as_mut().expect(TAKEN).query_one(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
             WHERE application_name = $1 AND datname = current_database()
               AND pid <> pg_backend_pid()",
            &[&name],
        )?;
        Ok(row.try_get(0)?)
    }
}
