//! Read-only SQL access to Haven's history and configuration over the
//! PostgreSQL wire protocol, for psql, JDBC and ODBC drivers and BI tools.
//!
//! The crate knows nothing of the server: it asks a [`Gate`] to check each
//! login, and the [`Seen`] the gate answers decides what that session may
//! see. Each session then queries its own read-only SQLite connection
//! through documented, stable views (`docs/sql.md`):
//!
//! - `wire` speaks the protocol (pgwire): cleartext-password logins
//!   (inside TLS when the port has it), simple and extended queries;
//! - [`rewrite`] splits query strings into statements, answers session
//!   statements (`SET`, `SHOW`, `BEGIN`...), refuses writes, and rewrites
//!   the PostgreSQL-only syntax clients send;
//! - [`session`] opens and locks down each session's SQLite connection;
//! - [`views`] defines the views and the live-state virtual table;
//! - [`catalog`] is the `pg_catalog` / `information_schema` emulation;
//! - [`values`] maps SQLite values to PostgreSQL types and encodings.
//!
//! Invariants: nothing a client sends changes the database (three layers:
//! statement classification, an authorizer, `query_only` on a file opened
//! read-only); a session sees only what its `Seen` allows, in every view;
//! passwords are handed to the gate and never logged.

pub mod catalog;
pub mod rewrite;
pub mod session;
pub mod values;
pub mod views;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;

use haven_model::ClusterSnapshot;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many sessions may be open at once (each holds an SQLite
/// connection); more are refused with SQLSTATE 53300.
pub const MAX_SESSIONS: usize = 64;

/// Checks logins for the port.
#[async_trait::async_trait]
pub trait Gate: Send + Sync + 'static {
    /// Whether logins need a password. When not (logins off, a
    /// development setup on a loopback address), any user name is taken
    /// without asking for one.
    fn requires_password(&self) -> bool {
        true
    }

    /// Checks a login (an OS account or `user@domain`) from `source` (the
    /// client's address): the session's view of the data, or the message
    /// for the client. The password must not be logged.
    async fn login(
        &self,
        user: &str,
        password: &str,
        source: &str,
    ) -> Result<Arc<dyn Seen>, String>;
}

/// What one session may see, and the live state it reads.
pub trait Seen: Send + Sync {
    /// Who the session is.
    fn user(&self) -> &str;
    /// Whether it may see a cluster at all.
    fn cluster(&self, cluster: &str) -> bool;
    /// Whether it may see a service group of a cluster it sees.
    fn group(&self, cluster: &str, group: &str) -> bool;
    /// The names of the clusters it sees.
    fn clusters(&self) -> Vec<String>;
    /// Calls `f` with each cluster the session sees — only `only`, if
    /// given — with its link and its live state (`None` until its link
    /// has synchronised). Groups are not filtered here: the port leaves
    /// out those [`Seen::group`] refuses.
    fn visit(
        &self,
        only: Option<&str>,
        f: &mut dyn FnMut(&str, &LinkInfo, Option<&ClusterSnapshot>),
    );
}

/// A cluster's link, as the `clusters` view shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// `direct` or `connector`.
    pub mode: String,
    /// `connecting`, `connected`, `stale` or `disconnected`.
    pub state: String,
    pub since_ms: i64,
    pub error: Option<String>,
    pub epoch: Option<u64>,
    pub seq: u64,
}

/// What every connection of a port shares.
pub(crate) struct Shared {
    db: PathBuf,
    gate: Arc<dyn Gate>,
    /// Whether the port offers TLS (and so requires it beyond loopback).
    tls: bool,
    sessions: Arc<Semaphore>,
}

/// The SQL port: a listener's connections, each a session.
pub struct SqlPort {
    shared: Arc<Shared>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
}

impl SqlPort {
    /// A port on the server's database file `db`, checking logins with
    /// `gate`. With `tls`, clients may (and beyond the local host must)
    /// upgrade with PostgreSQL's SSLRequest; without it, a client asking
    /// for TLS is told no and, with `sslmode=prefer` (libpq's default),
    /// goes on in plain text.
    pub fn new(
        db: PathBuf,
        gate: Arc<dyn Gate>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> SqlPort {
        let tls = tls.map(|config| {
            // libpq 17 asks for the `postgresql` protocol (ALPN); a
            // configuration made for HTTPS names others.
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"postgresql".to_vec()];
            pgwire::tokio::TlsAcceptor::from(Arc::new(config))
        });
        SqlPort {
            shared: Arc::new(Shared {
                db,
                gate,
                tls: tls.is_some(),
                sessions: Arc::new(Semaphore::new(MAX_SESSIONS)),
            }),
            tls,
        }
    }

    /// Serves connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!("SQL port: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handlers = wire::Handlers::new(self.shared.clone());
            let tls = self.tls.clone();
            tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                    tracing::debug!(%peer, "SQL connection ended: {e}");
                }
            });
        }
    }
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
