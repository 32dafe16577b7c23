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

    /// Whether `caller` may see `cluster` at all.
    pub fn may_see(&self, caller: &Caller, cluster: &str) -> bool {
        self.sight(caller).is_none_or(|l| l.cluster(cluster))
    }
}
