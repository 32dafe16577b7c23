//! The read-only SQL port (`haven-sqlport`) on top of this server: logins
//! through [`crate::auth::Auth`] (the same accounts, throttling and access
//! log as the API), what each session sees through [`Server::sight`], the
//! live state from the [`Fleet`]. See `docs/sql.md`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use haven_model::ClusterSnapshot;
use haven_sqlport::{Gate, LinkInfo, Seen, SqlPort};

use crate::access::Limited;
use crate::auth::{Caller, LoginFailure};
use crate::fleet::{Fleet, Sight};
use crate::Server;

/// Checks SQL logins for the port.
struct SqlGate(Arc<Server>);

#[async_trait::async_trait]
impl Gate for SqlGate {
    fn requires_password(&self) -> bool {
        // Logins off (loopback only): anyone local reads everything, as
        // with the API.
        self.0.auth.is_some()
    }

    async fn login(
        &self,
        user: &str,
        password: &str,
        source: &str,
    ) -> Result<Arc<dyn Seen>, String> {
        let server = &self.0;
        let Some(auth) = &server.auth else {
            return Ok(Arc::new(SqlSight {
                user: user.to_string(),
                limited: None,
                fleet: server.fleet.clone(),
            }));
        };
        let result = auth.login(user, password, source).await;
        server
            .record_login(
                user,
                source,
                Some("sql port"),
                result.as_ref().err().map(|e| e.to_string()),
            )
            .await;
        match result {
            Ok((token, identity)) => {
                // The SQL session is the connection; the API session the
                // login opened is not needed.
                auth.sessions.close(&token);
                let limited = server.sight(&Caller::User(identity));
                Ok(Arc::new(SqlSight {
                    user: user.to_string(),
                    limited,
                    fleet: server.fleet.clone(),
                }))
            }
            Err(LoginFailure::Login(haven_auth::pam::LoginError::Rejected { .. })) => Err(format!(
                "password authentication failed for user \"{user}\""
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What one SQL session sees: everything (`limited` is `None`) or what
/// its roles reach, fixed at login.
struct SqlSight {
    user: String,
    limited: Option<Limited>,
    fleet: Arc<Fleet>,
}

impl Seen for SqlSight {
    fn user(&self) -> &str {
        &self.user
    }

    fn cluster(&self, cluster: &str) -> bool {
        self.limited.as_ref().is_none_or(|l| l.cluster(cluster))
    }

    fn group(&self, cluster: &str, group: &str) -> bool {
        self.limited
            .as_ref()
            .is_none_or(|l| l.group(cluster, group))
    }

    fn clusters(&self) -> Vec<String> {
        self.fleet
            .names()
            .iter()
            .filter(|n| self.cluster(n))
            .map(|n| n.to_string())
            .collect()
    }

    fn visit(
        &self,
        only: Option<&str>,
        f: &mut dyn FnMut(&str, &LinkInfo, Option<&ClusterSnapshot>),
    ) {
        let names = match only {
            Some(name) => vec![name.to_string()],
            None => self.clusters(),
        };
        for name in names.iter().filter(|n| self.cluster(n)) {
            let Some(link) = self.fleet.link(name) else {
                continue;
            };
            let info = LinkInfo {
                mode: link.mode,
                state: link.state.as_str().to_string(),
                since_ms: link.since_ms,
                error: link.last_error,
                epoch: link.epoch,
                seq: link.seq,
            };
            // The snapshot is read in place, under the fleet's read lock,
            // one cluster at a time.
            if self
                .fleet
                .with_snapshot(name, |snap| f(name, &info, Some(snap)))
                .is_none()
            {
                f(name, &info, None);
            }
        }
    }
}

impl Server {
    /// Serves the SQL port on `[sql] listen` in the background, with the
    /// API's TLS; returns its address (`None` when `[sql] enabled` is
    /// false, or the database is PostgreSQL). Like the API, it is
    /// loopback-only with logins off or without TLS.
    ///
    /// The port reads the SQLite file itself. On PostgreSQL it is off:
    /// reporting tools connect to the database with a read-only role of
    /// their own (docs/sql.md, "On PostgreSQL").
    pub async fn listen_sql(self: &Arc<Self>) -> anyhow::Result<Option<SocketAddr>> {
        let sql = &self.config.sql;
        if !sql.enabled {
            return Ok(None);
        }
        if self.database.is_postgres() {
            tracing::info!(
                "the SQL port is off: the database is PostgreSQL, where reporting tools connect to the database itself with a read-only role (docs/sql.md, \"On PostgreSQL\")"
            );
            return Ok(None);
        }
        self.refuse_beyond_loopback(&sql.listen).await?;
        let tls = if self.https() {
            Some(
                self.https_config()
                    .context("cannot set up TLS for the SQL port")?,
            )
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(&sql.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for SQL on {} (in use? set [sql] listen, or enabled = false)",
                    sql.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let port = Arc::new(SqlPort::new(
            self.config.database_path(),
            Arc::new(SqlGate(self.clone())),
            tls,
        ));
        tokio::spawn(port.serve(listener));
        Ok(Some(addr))
    }
}
