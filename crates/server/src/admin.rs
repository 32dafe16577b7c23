//! The Server Administrator's API: role grants kept in the database, and
//! the access log (logins, logouts, refusals, administrators' changes).
//!
//! Grants from `[[auth.grant]]` are shown but changed only in the file;
//! grants made here are stored and put in force at once (every later
//! request is checked against them), and survive restarts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use haven_store::{AccessOutcome, AccessQuery, AccessRecord, NewAccess, NewGrant};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{limit, need_server_admin, ApiError, ApiJson, ApiQuery};
use crate::auth::Caller;
use crate::config::GrantEntry;
use crate::Server;

type AppState = std::sync::Arc<Server>;

/// A role grant.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// An OS or directory user (give this or `group`).
    pub user: Option<String>,
    /// An OS or directory group.
    pub group: Option<String>,
    /// `guest`, `group_operator`, `group_administrator`,
    /// `cluster_operator` or `cluster_administrator`.
    pub role: String,
    /// Only this cluster (default: every cluster).
    pub cluster: Option<String>,
    /// Only this service group of `cluster`.
    pub service_group: Option<String>,
}

impl GrantBody {
    /// `user alice` or `group ha-ops`.
    pub fn who(&self) -> String {
        match (&self.user, &self.group) {
            (Some(u), _) => format!("user {u}"),
            (_, Some(g)) => format!("group {g}"),
            _ => String::new(),
        }
    }

    /// `every cluster`, `cluster prod-db` or `group web of cluster prod-db`.
    pub fn scope(&self) -> String {
        match (&self.cluster, &self.service_group) {
            (None, _) => "every cluster".to_string(),
            (Some(c), None) => format!("cluster {c}"),
            (Some(c), Some(sg)) => format!("group {sg} of cluster {c}"),
        }
    }
}

/// A grant in force.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct GrantView {
    /// None for grants from the configuration file (changed there).
    pub id: Option<i64>,
    /// `config` or `api`.
    pub source: String,
    #[serde(flatten)]
    pub grant: GrantBody,
    pub created_ms: Option<i64>,
    pub created_by: Option<String>,
}

fn body_of(g: &GrantEntry) -> GrantBody {
    GrantBody {
        user: g.user.clone(),
        group: g.group.clone(),
        role: g.role.as_str().to_string(),
        cluster: g.cluster.clone(),
        service_group: g.service_group.clone(),
    }
}

pub(crate) async fn list_grants(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Vec<GrantView>>, ApiError> {
    need_server_admin(&s, &caller)?;
    Ok(Json(s.grant_views().await.map_err(ApiError::internal)?))
}

impl Server {
    /// Every grant in force: `[[auth.grant]]`'s, then those made through
    /// the API (the API's list and the console's).
    pub async fn grant_views(self: &std::sync::Arc<Self>) -> Result<Vec<GrantView>, String> {
        let stored = self.read(|store| store.grants()).await?;
        let mut out: Vec<GrantView> = self
            .config
            .auth
            .grants
            .iter()
            .map(|g| GrantView {
                id: None,
                source: "config".into(),
                grant: body_of(g),
                created_ms: None,
                created_by: None,
            })
            .collect();
        out.extend(stored.into_iter().map(|r| GrantView {
            id: Some(r.id),
            source: "api".into(),
            grant: GrantBody {
                user: (r.principal_kind == "user").then(|| r.principal.clone()),
                group: (r.principal_kind == "group").then(|| r.principal.clone()),
                role: r.role,
                cluster: r.cluster,
                service_group: r.service_group,
            },
            created_ms: Some(r.created_ms),
            created_by: Some(r.created_by),
        }));
        Ok(out)
    }
}

pub(crate) async fn add_grant(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<(StatusCode, Json<GrantView>), ApiError> {
    need_server_admin(&s, &caller)?;
    let role = haven_auth::roles::Role::parse(&body.role).map_err(ApiError::bad_request)?;
    let entry = GrantEntry {
        user: body.user.clone(),
        group: body.group.clone(),
        role,
        cluster: body.cluster.clone(),
        service_group: body.service_group.clone(),
    };
    entry.to_grant().map_err(ApiError::bad_request)?;
    let (kind, principal) = match (&entry.user, &entry.group) {
        (Some(u), _) => ("user", u.clone()),
        (_, Some(g)) => ("group", g.clone()),
        _ => unreachable!("to_grant checked there is exactly one"),
    };
    let new = NewGrant {
        principal_kind: kind.into(),
        principal,
        role: body.role.clone(),
        cluster: body.cluster.clone(),
        service_group: body.service_group.clone(),
        created_ms: crate::now_ms(),
        created_by: caller.name().to_string(),
    };
    let saved = new.clone();
    let id = s
        .write_store(move |store| store.insert_grant(&saved))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "that grant exists already",
            )
        })?;
    s.reload_policy().await.map_err(ApiError::internal)?;
    s.record_access(change(&caller, "grant", id, &body)).await;
    Ok((
        StatusCode::CREATED,
        Json(GrantView {
            id: Some(id),
            source: "api".into(),
            grant: body,
            created_ms: Some(new.created_ms),
            created_by: Some(new.created_by),
        }),
    ))
}

pub(crate) async fn remove_grant(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    need_server_admin(&s, &caller)?;
    let removed = s
        .write_store(move |store| store.delete_grant(id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no grant {id} made through the API; GET /api/v1/grants lists them (grants from the configuration file are changed there)"),
            )
        })?;
    s.reload_policy().await.map_err(ApiError::internal)?;
    let body = GrantBody {
        user: (removed.principal_kind == "user").then(|| removed.principal.clone()),
        group: (removed.principal_kind == "group").then(|| removed.principal.clone()),
        role: removed.role,
        cluster: removed.cluster,
        service_group: removed.service_group,
    };
    s.record_access(change(&caller, "revoke", id, &body)).await;
    Ok(StatusCode::NO_CONTENT)
}

fn change(caller: &Caller, action: &str, id: i64, g: &GrantBody) -> NewAccess {
    let (who, scope) = (g.who(), g.scope());
    NewAccess {
        time_ms: crate::now_ms(),
        user: caller.name().to_string(),
        source: None,
        action: action.into(),
        target: Some(format!("grant {id}: {} to {who} on {scope}", g.role)),
        cluster: g.cluster.clone(),
        outcome: AccessOutcome::Allowed,
        reason: None,
    }
}

/// Access log filters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AccessParams {
    pub user: Option<String>,
    /// `login`, `logout`, `read`, `change`, `grant`, `revoke`,
    /// `add_cluster`, `remove_cluster`, `create_token`.
    pub action: Option<String>,
    /// `allowed`, `denied` or `failed`.
    pub outcome: Option<String>,
    pub cluster: Option<String>,
    pub since_ms: Option<i64>,
    /// Newest first; default 100.
    pub limit: Option<usize>,
}

/// One entry of the access log.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AccessEntry {
    pub id: i64,
    pub time_ms: i64,
    pub user: String,
    pub source: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub cluster: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
}

pub(crate) async fn access_log(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<AccessParams>,
) -> Result<Json<Vec<AccessEntry>>, ApiError> {
    need_server_admin(&s, &caller)?;
    let outcome = q
        .outcome
        .as_deref()
        .map(access_outcome)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let query = AccessQuery {
        user: q.user,
        action: q.action,
        outcome,
        cluster: q.cluster,
        since_ms: q.since_ms,
        limit: limit(q.limit, 100),
    };
    let rows = s.read_access_log(query).await.map_err(ApiError::internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|r| AccessEntry {
                id: r.id,
                time_ms: r.time_ms,
                user: r.user,
                source: r.source,
                action: r.action,
                target: r.target,
                cluster: r.cluster,
                outcome: r.outcome.as_str().to_string(),
                reason: r.reason,
            })
            .collect(),
    ))
}

/// The access outcome called `name` (`allowed`, `denied` or `failed`), or
/// an error naming the ones there are. The API's `?outcome=` and the
/// console's access page both take it from here.
pub(crate) fn access_outcome(name: &str) -> Result<AccessOutcome, String> {
    AccessOutcome::parse(name).ok_or_else(|| {
        let names: Vec<&str> = AccessOutcome::ALL.iter().map(|o| o.as_str()).collect();
        let (last, rest) = names.split_last().unwrap_or((&"", &[]));
        format!("outcome `{name}`: use {} or {last}", rest.join(", "))
    })
}

impl Server {
    /// The access log's entries matching `query`, newest first, with
    /// everything recorded so far (the writer's queue is flushed first, so
    /// a refusal answered a moment ago is there). The API's
    /// `/api/v1/access-log` and the console's access page both read from
    /// here.
    pub async fn read_access_log(
        self: &std::sync::Arc<Self>,
        query: AccessQuery,
    ) -> Result<Vec<AccessRecord>, String> {
        self.flush_history().await;
        self.read(move |store| store.access_log(&query)).await
    }

    /// Re-reads the grants made through the API and puts them in force.
    pub async fn reload_policy(self: &std::sync::Arc<Self>) -> Result<(), String> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let rows = self.read(|store| store.grants()).await?;
        let policy = self.config.auth.policy_with(&crate::stored_grants(&rows))?;
        auth.set_policy(policy);
        Ok(())
    }
}
