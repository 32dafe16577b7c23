//! The one path every operation takes: check the cluster, record who asked
//! (audit), forward to the cluster's link, record the engine's answer, and
//! optionally wait for the final state.
//!
//! Invariant: every operation that reaches this path is in the audit table
//! exactly once, with its requester, and ends with an outcome: refused,
//! accepted, completed, failed or timed out.

use std::sync::Arc;
use std::time::Duration;

use haven_model::{
    ClusterSnapshot, CommandResult, Freeze, GroupState, Name, Operation, RefusalCode, ResourceState,
};
use haven_store::{NewOperation, Outcome};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::fleet::{FleetUpdate, LinkState, LinkStatus};
use crate::writer::WriteMsg;
use crate::{now_ms, Server};

/// How long the engine has to answer an operation.
const ANSWER_LIMIT: Duration = Duration::from_secs(15);

/// Longest `--wait` allowed.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The result of an operation, as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OperationResult {
    /// The audit record's id.
    pub id: i64,
    pub cluster: String,
    /// `accepted`, `refused`, `completed`, `failed` or `timed_out`.
    pub outcome: String,
    /// Why it was refused, failed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The engine's refusal code, when it refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<RefusalCode>,
}

/// Why an operation could not even be attempted.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no cluster named {0}")]
    UnknownCluster(String),
    /// The cluster exists, but the caller has no role on it (they are told
    /// it is unknown; the refusal is logged).
    #[error("no cluster named {0}")]
    Invisible(String),
    #[error("cannot record the operation: {0}")]
    Audit(String),
}

/// How long an operation waits for a link that this server has not
/// connected yet, and that has not failed (a server just started, or just
/// become the active one of its group).
const FIRST_CONNECTION: Duration = Duration::from_secs(5);

/// The link of `cluster` once it is connected, if this server is still
/// making its first connection to it (a direct link trying for the first
/// time, or a connector that has not dialled in since this server
/// started, in its first seconds); else the link as it is: a link that
/// failed is refused at once.
async fn first_connection(server: &Server, cluster: &str, mut link: LinkStatus) -> LinkStatus {
    let deadline = tokio::time::Instant::now() + FIRST_CONNECTION;
    let fresh = |link: &LinkStatus| {
        let first_try = link.state == LinkState::Connecting && link.failures == 0;
        let awaited_connector = link.mode == "connector"
            && link.state == LinkState::Disconnected
            && crate::now_ms() - server.started_ms() < 2 * FIRST_CONNECTION.as_millis() as i64;
        first_try || awaited_connector
    };
    while fresh(&link) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match server.fleet.link(cluster) {
            Some(now) => link = now,
            None => break,
        }
    }
    link
}

/// Runs an operation for `user` on `cluster`; with `wait`, until the final
/// state or the timeout.
pub async fn run(
    server: &Arc<Server>,
    caller: &Caller,
    cluster: &str,
    op: Operation,
    wait: Option<Duration>,
) -> Result<OperationResult, OpError> {
    let user = caller.name();
    let Some(link) = server.fleet.link(cluster) else {
        return Err(OpError::UnknownCluster(cluster.to_string()));
    };
    // A cluster the caller has no role on is unknown to them.
    if let (Caller::User(identity), Some(auth)) = (caller, &server.auth) {
        if !auth.policy().can_see(identity, cluster, None) {
            return Err(OpError::Invisible(cluster.to_string()));
        }
    }
    if let Some((site, name)) = server.peers.remote(cluster) {
        return remote(server, caller, cluster, (site, name), op, wait).await;
    }
    // Roles are checked before anything else; a denial is audited too.
    let denied = match (caller, &server.auth) {
        (Caller::User(identity), Some(auth)) => {
            let group_of = |resource: &str| {
                server
                    .fleet
                    .with_snapshot(cluster, |s| {
                        s.config.resource(resource).map(|(g, _)| g.name.clone())
                    })
                    .flatten()
            };
            auth.policy()
                .authorize(identity, cluster, &op, group_of)
                .err()
        }
        _ => None,
    };
    let id = audit(server, cluster, user, &op).await?;
    let finish = |outcome: Outcome, reason: Option<String>, code: Option<RefusalCode>| {
        finish(server, id, cluster, outcome, reason, code)
    };

    if let Some(denied) = denied {
        tracing::warn!(user, cluster, "denied: {}", denied.message);
        return Ok(finish(
            Outcome::Refused,
            Some(denied.message),
            Some(RefusalCode::PermissionDenied),
        )
        .await);
    }

    let link = first_connection(server, cluster, link).await;
    if link.state != LinkState::Connected && link.state != LinkState::Stale {
        let why = link
            .last_error
            .unwrap_or_else(|| "not connected yet".into());
        return Ok(finish(
            Outcome::Refused,
            Some(format!(
                "cluster {cluster} is {} since {} ms: {why}",
                link.state.as_str(),
                link.since_ms
            )),
            None,
        )
        .await);
    }

    // Listen before forwarding, so no event of the outcome is missed.
    let mut updates = server.fleet.subscribe();
    let before = server.fleet.snapshot(cluster);
    let answer = match server.with_link(cluster, |l| l.sender()) {
        Some(sender) => sender.operate(op.clone(), ANSWER_LIMIT).await,
        None => Err("the cluster was removed".to_string()),
    };
    let result = match answer {
        Err(why) => return Ok(finish(Outcome::Failed, Some(why), None).await),
        Ok(CommandResult::Refused { code, reason }) => {
            return Ok(finish(Outcome::Refused, Some(reason), Some(code)).await)
        }
        Ok(CommandResult::Accepted) => CommandResult::Accepted,
    };
    debug_assert!(result.is_accepted());
    let Some(limit) = wait else {
        return Ok(finish(Outcome::Accepted, None, None).await);
    };
    let limit = limit.min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + limit;
    let name: Name = cluster.into();
    loop {
        let verdict = server
            .fleet
            .with_snapshot(cluster, |now| final_state(&op, before.as_ref(), now))
            .flatten();
        match verdict {
            Some(Ok(())) => return Ok(finish(Outcome::Completed, None, None).await),
            Some(Err(why)) => return Ok(finish(Outcome::Failed, Some(why), None).await),
            None => {}
        }
        // Wait for the next change of this cluster (or the deadline).
        loop {
            let update = tokio::time::timeout_at(deadline, updates.recv()).await;
            match update {
                Err(_) => {
                    return Ok(finish(
                        Outcome::TimedOut,
                        Some(format!(
                            "accepted, but the final state was not reached within {limit:?}"
                        )),
                        None,
                    )
                    .await)
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                Ok(Err(_)) => {
                    return Ok(finish(Outcome::Failed, Some("server stopping".into()), None).await)
                }
                Ok(Ok(u)) => match &*u {
                    FleetUpdate::Events { cluster: c, .. }
                    | FleetUpdate::Resynced { cluster: c, .. }
                        if *c == name =>
                    {
                        break
                    }
                    FleetUpdate::Removed { cluster: c } if *c == name => {
                        return Ok(finish(
                            Outcome::Failed,
                            Some("the cluster was removed".into()),
                            None,
                        )
                        .await)
                    }
                    _ => {}
                },
            }
        }
    }
}

/// Records who asked for what; returns the audit record's id.
async fn audit(
    server: &Arc<Server>,
    cluster: &str,
    user: &str,
    op: &Operation,
) -> Result<i64, OpError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let record = NewOperation {
        cluster: cluster.to_string(),
        user: user.to_string(),
        op: op.clone(),
        requested_ms: now_ms(),
    };
    server
        .history
        .send(WriteMsg::Operation(record, tx))
        .await
        .map_err(|_| OpError::Audit("the history writer stopped".into()))?;
    rx.await
        .map_err(|_| OpError::Audit("the history writer stopped".into()))?
        .map_err(OpError::Audit)
}

/// Records how operation `id` ended, and says so.
async fn finish(
    server: &Arc<Server>,
    id: i64,
    cluster: &str,
    outcome: Outcome,
    reason: Option<String>,
    code: Option<RefusalCode>,
) -> OperationResult {
    let _ = server
        .history
        .send(WriteMsg::Finish {
            id,
            outcome,
            reason: reason.clone(),
            finished_ms: now_ms(),
        })
        .await;
    OperationResult {
        id,
        cluster: cluster.to_string(),
        outcome: outcome.as_str().to_string(),
        reason,
        code,
    }
}

/// An operation on a paired site's cluster (`SITE:CLUSTER`): audited here,
/// forwarded with the user's name, decided and audited by that site (its
/// own roles), and its answer recorded here too. The caller must see the
/// cluster here ([`run`] checked).
async fn remote(
    server: &Arc<Server>,
    caller: &Caller,
    cluster: &str,
    (site, name): (&str, &str),
    op: Operation,
    wait: Option<Duration>,
) -> Result<OperationResult, OpError> {
    let user = caller.name();
    let id = audit(server, cluster, user, &op).await?;
    let (outcome, reason, code) = match server.forward_operation(site, name, user, op, wait).await {
        Ok(there) => (
            Outcome::parse(&there.outcome).unwrap_or(Outcome::Failed),
            there.reason.map(|r| format!("site {site}: {r}")),
            there.code,
        ),
        Err(crate::peers::NotDone { sent: false, why }) => (Outcome::Refused, Some(why), None),
        Err(crate::peers::NotDone { sent: true, why }) => (Outcome::Failed, Some(why), None),
    };
    Ok(finish(server, id, cluster, outcome, reason, code).await)
}

/// Whether an accepted operation has reached its final state: `Some(Ok)`
/// done, `Some(Err)` it cannot get there any more, `None` not yet.
pub fn final_state(
    op: &Operation,
    before: Option<&ClusterSnapshot>,
    now: &ClusterSnapshot,
) -> Option<Result<(), String>> {
    let group_on = |g: &str, s: &str| now.group_state(g, s);
    let group_states = |g: &str| -> Vec<(Name, GroupState)> {
        now.group(g).map(|x| x.states.clone()).unwrap_or_default()
    };
    let done = |ok: bool| if ok { Some(Ok(())) } else { None };
    let faulted_on = |g: &str, s: &str| {
        (group_on(g, s) == Some(GroupState::Faulted))
            .then(|| Err(format!("group {g} faulted on {s}")))
    };
    match op {
        Operation::GroupOnline { group, system } => match system {
            Some(s) => faulted_on(group, s)
                .or_else(|| done(group_on(group, s) == Some(GroupState::Online))),
            None => done(
                group_states(group)
                    .iter()
                    .any(|(_, st)| *st == GroupState::Online),
            ),
        },
        Operation::GroupOffline { group, system } => {
            let off = |st: &GroupState| matches!(st, GroupState::Offline | GroupState::Faulted);
            match system {
                Some(s) => done(group_on(group, s).as_ref().is_some_and(off)),
                None => done(group_states(group).iter().all(|(_, st)| off(st))),
            }
        }
        Operation::GroupSwitch { group, to } => match to {
            Some(t) => faulted_on(group, t)
                .or_else(|| done(group_on(group, t) == Some(GroupState::Online))),
            None => {
                let was: Vec<Name> = before.map(|b| b.group_active_on(group)).unwrap_or_default();
                done(
                    group_states(group)
                        .iter()
                        .any(|(s, st)| *st == GroupState::Online && !was.contains(s)),
                )
            }
        },
        Operation::GroupFreeze { group, .. } => {
            done(now.group(group).is_some_and(|g| g.freeze != Freeze::None))
        }
        Operation::GroupUnfreeze { group } => {
            done(now.group(group).is_some_and(|g| g.freeze == Freeze::None))
        }
        Operation::GroupEnable { group } => done(now.group(group).is_some_and(|g| g.enabled)),
        Operation::GroupDisable { group } => done(now.group(group).is_some_and(|g| !g.enabled)),
        Operation::GroupClear { group, system } => done(
            group_states(group)
                .iter()
                .filter(|(s, _)| system.as_ref().is_none_or(|x| x == s))
                .all(|(_, st)| *st != GroupState::Faulted),
        ),
        Operation::GroupFlush { group, .. } => done(
            group_states(group)
                .iter()
                .all(|(_, st)| !matches!(st, GroupState::Starting | GroupState::Stopping)),
        ),
        Operation::ResourceOnline { resource, system } => {
            match now.resource_state(resource, system) {
                Some(ResourceState::Faulted) => {
                    Some(Err(format!("resource {resource} faulted on {system}")))
                }
                st => done(st == Some(ResourceState::Online)),
            }
        }
        Operation::ResourceOffline { resource, system } => done(matches!(
            now.resource_state(resource, system),
            Some(ResourceState::Offline | ResourceState::Faulted)
        )),
        Operation::ResourceClear { resource, system } => done(
            now.groups
                .iter()
                .flat_map(|g| g.resources.iter())
                .filter(|r| r.name == *resource)
                .flat_map(|r| r.states.iter())
                .filter(|(s, _)| system.as_ref().is_none_or(|x| x == s))
                .all(|(_, st)| *st != ResourceState::Faulted),
        ),
        Operation::SystemFreeze {
            system, evacuate, ..
        } => done(
            now.system(system).is_some_and(|s| s.freeze != Freeze::None)
                && (!evacuate
                    || now.groups.iter().all(|g| {
                        now.config.group(&g.name).is_some_and(|c| c.parallel)
                            || !matches!(
                                now.group_state(&g.name, system),
                                Some(
                                    GroupState::Online
                                        | GroupState::Partial
                                        | GroupState::Starting
                                        | GroupState::Stopping
                                )
                            )
                    })),
        ),
        Operation::SystemUnfreeze { system } => {
            done(now.system(system).is_some_and(|s| s.freeze == Freeze::None))
        }
        // A probe or an injected fault is over once the engine took it.
        Operation::ResourceProbe { .. }
        | Operation::SimFaultResource { .. }
        | Operation::SimFaultSystem { .. }
        | Operation::SimRestoreSystem { .. } => Some(Ok(())),
    }
}
