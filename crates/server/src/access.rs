//! What each caller may see, and the record of what they were refused.
//!
//! A caller with a fleet-wide role (or any caller when logins are off)
//! sees everything and is answered from the fleet's own indexes; anyone
//! else is answered from [`crate::fleet::Fleet::seen_by`], a copy of just
//! the clusters and groups their grants reach. What they may not see is
//! not in the answer at all: an invisible cluster is "unknown", like one
//! that does not exist.

use std::sync::Arc;

use haven_auth::roles::{Identity, Policy};

use crate::auth::Caller;
use crate::fleet::Sight;
use crate::Server;

/// The sight of a user without a fleet-wide role.
#[derive(Clone)]
pub struct Limited {
    policy: Arc<Policy>,
    who: Identity,
}

impl Sight for Limited {
    fn cluster(&self, cluster: &str) -> bool {
        self.policy.can_see(&self.who, cluster, None)
    }

    fn group(&self, cluster: &str, group: &str) -> bool {
        self.policy.can_see(&self.who, cluster, Some(group))
    }
}

impl Server {
    /// How much of the fleet `caller` sees: `None` is everything.
    pub fn sight(&self, caller: &Caller) -> Option<Limited> {
        match (caller, &self.auth) {
            (Caller::User(who), Some(auth)) => {
                let policy = auth.policy();
                policy.fleet_role(who).is_none().then(|| Limited {
                    policy,
                    who: who.clone(),
                })
            }
            _ => None,
        }
    }

    /// Writes an entry of the access log (through the history writer, in
    /// order with everything else it writes).
    /// The fleet's summary as `caller` may see it, with the sites when
    /// this server is paired with others.
    pub fn summary_for(&self, caller: &Caller, limit: usize) -> crate::fleet::Summary {
        let paired = self.peers.any();
        match self.sight(caller) {
            None => {
                let mut summary = self.fleet.summary(limit);
                if paired {
                    summary.sites = self.site_summaries(&self.fleet.names());
                }
                summary
            }
            Some(sight) => {
                let seen = self.fleet.seen_by(&sight);
                let mut summary = seen.summary(limit);
                if paired {
                    summary.sites = self.site_summaries(&seen.names());
                }
                summary
            }
        }
    }

    pub async fn record_access(&self, entry: haven_store::NewAccess) {
        if self
            .history
            .send(crate::writer::WriteMsg::Access(entry))
            .await
            .is_err()
        {
            tracing::error!("the access log is closed (the server is stopping)");
        }
    }

    /// Writes a login attempt to the access log (`target`: where, when not
    /// the API; `failure`: why it was refused — never a password).
    pub async fn record_login(
        &self,
        user: &str,
        source: &str,
        target: Option<&str>,
        failure: Option<String>,
    ) {
        self.record_access(haven_store::NewAccess {
            time_ms: crate::now_ms(),
            user: user.to_string(),
            source: Some(source.to_string()),
            action: "login".into(),
            target: target.map(String::from),
            cluster: None,
            outcome: if failure.is_none() {
                haven_store::AccessOutcome::Allowed
            } else {
                haven_store::AccessOutcome::Denied
            },
            reason: failure,
        })
        .await;
    }
}

/// At most this many audit rows are read to fill one answer for a caller
/// who sees only some groups (the rest are filtered out after the read).
const AUDIT_READ_MAX: usize = 50_000;

impl Server {
    /// The names of the clusters `sight` reaches (`None`: every cluster,
    /// no restriction).
    pub fn visible_cluster_names(&self, sight: Option<&Limited>) -> Option<Vec<String>> {
        let l = sight?;
        Some(
            self.fleet
                .names()
                .into_iter()
                .filter(|n| l.cluster(n))
                .map(|n| n.to_string())
                .collect(),
        )
    }

    /// The audited operations `sight` may see, newest first, at most
    /// `query.limit`: limited in SQL to the clusters they see, then to the
    /// groups they see (an operation on a group of theirs is theirs to
    /// read, one on a resource is shown to whoever sees its cluster). The
    /// API's `/api/v1/operations` and the console's audit page both answer
    /// from here.
    pub async fn visible_operations(
        self: &Arc<Self>,
        sight: Option<&Limited>,
        mut query: haven_store::OperationQuery,
    ) -> Result<Vec<haven_store::OperationRecord>, String> {
        query.clusters = self.visible_cluster_names(sight);
        let shown = |o: &haven_store::OperationRecord| {
            sight.is_none_or(|l| {
                haven_auth::roles::requirement(&o.op, |_| None)
                    .1
                    .is_none_or(|g| l.group(&o.cluster, &g))
            })
        };
        let wanted = query.limit;
        read_visible(wanted, shown, |limit| {
            let q = haven_store::OperationQuery {
                limit,
                ..query.clone()
            };
            self.read(move |store| haven_store::Store::operations(store, &q))
        })
        .await
    }
}

/// Reads rows newest first through `read(limit)` until `wanted` of them
/// pass `shown` (the caller's groups) or there are no more: the rows of
/// groups a caller does not see are dropped after the read, so a short
/// answer reads again, four times as many, up to [`AUDIT_READ_MAX`].
pub(crate) async fn read_visible<T, F, Fut>(
    wanted: usize,
    shown: impl Fn(&T) -> bool,
    mut read: F,
) -> Result<Vec<T>, String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, String>>,
{
    let mut limit = wanted;
    loop {
        let rows = read(limit).await?;
        let exhausted = rows.len() < limit || limit >= AUDIT_READ_MAX;
        let mut visible: Vec<T> = rows.into_iter().filter(|r| shown(r)).collect();
        if visible.len() >= wanted || exhausted {
            visible.truncate(wanted);
            return Ok(visible);
        }
        limit = (limit.max(1) * 4).min(AUDIT_READ_MAX);
    }
}
