//! The alerts' API: list (for what the caller may see), acknowledge, the
//! delivery log, and a test notification.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use haven_auth::roles::Right;
use haven_store::{
    AlertQuery, AlertRecord, AlertSeverity, DeliveryOutcome, DeliveryQuery, DeliveryRecord,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::Acked;
use crate::access::{read_visible, Limited};
use crate::api::{limit, need_server_admin, visible_clusters, ApiError, ApiQuery};
use crate::auth::Caller;
use crate::fleet::Sight;
use crate::Server;

/// `?open=&cluster=&severity=&since_ms=&limit=&tag=`
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct AlertParams {
    /// `true`: only open alerts; `false`: only cleared ones.
    pub open: Option<bool>,
    pub cluster: Option<String>,
    /// Only alerts at least this serious: `info`, `warning` or `critical`.
    pub severity: Option<String>,
    /// Only alerts raised or cleared at or after this time (ms).
    pub since_ms: Option<i64>,
    /// At most this many, newest first (default 100).
    pub limit: Option<usize>,
    /// Only alerts whose cluster, group or system carries every tag
    /// (`key=value,...`).
    pub tag: Option<String>,
}

pub(crate) fn alerts_on(s: &Server) -> Result<&super::Alerts, ApiError> {
    s.alerts.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "alerts_disabled",
            "alerts are off on this server ([alerts] enabled = false)",
        )
    })
}

/// Whether `sight` shows an alert: its cluster, and its group if it has one.
pub(crate) fn shown(sight: Option<&Limited>, a: &AlertRecord) -> bool {
    sight.is_none_or(|l| match &a.service_group {
        Some(g) => l.group(&a.cluster, g),
        None => l.cluster(&a.cluster),
    })
}

/// A `severity` filter's value.
pub(crate) fn parse_severity(text: Option<&str>) -> Result<Option<AlertSeverity>, ApiError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => AlertSeverity::parse(t).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity `{t}`: use info, warning or critical (alerts at least that serious)"
            ))
        }),
    }
}

/// The alerts `q` asks for that `sight` shows, newest raised first (the
/// API's list and the console's pages).
pub(crate) async fn visible_alerts(
    s: &Arc<Server>,
    sight: Option<&Limited>,
    q: &AlertParams,
    default_limit: usize,
) -> Result<Vec<AlertRecord>, ApiError> {
    alerts_on(s)?;
    let severity = parse_severity(q.severity.as_deref())?;
    let clusters = visible_clusters(s, sight, q.cluster.as_deref())?;
    let wanted = limit(q.limit, default_limit);
    let tags = crate::api::tag_filters(q.tag.as_deref())?;
    // What the alert task has decided is stored before it is read.
    s.flush_history().await;
    let query = AlertQuery {
        open: q.open,
        cluster: q.cluster.clone(),
        clusters,
        since_ms: q.since_ms,
        ..Default::default()
    };
    read_visible(
        wanted,
        |a| {
            shown(sight, a)
                && severity.is_none_or(|min| a.severity >= min)
                && (tags.is_empty() || crate::tags::alert_carries(&s.fleet, a, &tags))
        },
        |limit| {
            let q = AlertQuery {
                limit,
                ..query.clone()
            };
            s.read(move |store| store.alerts(&q))
        },
    )
    .await
    .map_err(ApiError::internal)
}

/// `GET /api/v1/alerts`: newest raised first.
pub(crate) async fn list(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<AlertParams>,
) -> Result<Json<Vec<AlertRecord>>, ApiError> {
    let sight = s.sight(&caller);
    Ok(Json(visible_alerts(&s, sight.as_ref(), &q, 100).await?))
}

/// Whether `caller` may acknowledge `alert` (which they may see): who may
/// operate the alert's group (or cluster, for an alert of no group). The
/// API and the console's button keep this one rule.
pub(crate) fn may_acknowledge(
    s: &Server,
    caller: &Caller,
    alert: &AlertRecord,
) -> Result<(), ApiError> {
    let (Caller::User(who), Some(auth)) = (caller, &s.auth) else {
        return Ok(());
    };
    let role = auth
        .policy()
        .role(who, &alert.cluster, alert.service_group.as_deref());
    if role.is_some_and(|r| r.allows(Right::OperateGroup)) {
        return Ok(());
    }
    Err(ApiError::permission_denied(format!(
        "acknowledging an alert needs Group Operator or higher on {}{}; {} holds {}",
        alert.cluster,
        alert
            .service_group
            .as_ref()
            .map(|g| format!("/{g}"))
            .unwrap_or_default(),
        who.user,
        role.map_or("no role".into(), |r| r.title().to_string())
    )))
}

/// `POST /api/v1/alerts/{id}/ack`: who may operate the alert's group (or
/// cluster, for an alert of no group) may acknowledge it. The first
/// acknowledgement stays.
pub(crate) async fn acknowledge(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<Json<AlertRecord>, ApiError> {
    let alerts = alerts_on(&s)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alert {id}; GET /api/v1/alerts lists them"),
        )
    };
    s.flush_history().await;
    let stored = s
        .read(move |store| {
            store.alerts(&AlertQuery {
                id: Some(id),
                limit: 1,
                ..Default::default()
            })
        })
        .await
        .map_err(ApiError::internal)?
        .pop();
    let alert = match stored {
        Some(a) => a,
        None => alerts
            .open()
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(not_found)?,
    };
    let sight = s.sight(&caller);
    if !shown(sight.as_ref(), &alert) {
        return Err(not_found().denied(&alert.cluster, "no role on the alert's cluster or group"));
    }
    may_acknowledge(&s, &caller, &alert)?;
    let user = caller.name().to_string();
    match alerts
        .acknowledge(id, &user)
        .await
        .map_err(ApiError::internal)?
    {
        Acked::Open(alert) => Ok(Json(*alert)),
        Acked::NotOpen => {
            let at = crate::now_ms();
            let acked = s
                .write_store(move |store| store.acknowledge_alert(id, &user, at))
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(not_found)?;
            Ok(Json(acked))
        }
    }
}

/// `?alert_id=&channel=&outcome=&limit=`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeliveryParams {
    pub alert_id: Option<i64>,
    pub channel: Option<String>,
    /// `sent`, `failed`, `dropped` or `suppressed`.
    pub outcome: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /api/v1/alerts/deliveries`: every attempt to notify, newest first
/// (Server Administrators: it names channels and their errors).
pub(crate) async fn deliveries(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<DeliveryParams>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    alerts_on(&s)?;
    need_server_admin(&s, &caller)?;
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some(o) => Some(DeliveryOutcome::parse(o).ok_or_else(|| {
            ApiError::bad_request(format!(
                "outcome `{o}`: use sent, failed, dropped or suppressed"
            ))
        })?),
    };
    s.flush_history().await;
    let query = DeliveryQuery {
        alert_id: q.alert_id,
        channel: q.channel,
        outcome,
        limit: limit(q.limit, 100),
    };
    let rows = s
        .read(move |store| store.deliveries(&query))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(rows))
}

/// `{"channel": NAME}`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TestRequest {
    pub channel: String,
}

/// `POST /api/v1/alerts/test`: a test notification through one channel
/// (Server Administrators); its delivery shows in the delivery log.
pub(crate) async fn test(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    crate::api::ApiJson(body): crate::api::ApiJson<TestRequest>,
) -> Result<StatusCode, ApiError> {
    let alerts = alerts_on(&s)?;
    need_server_admin(&s, &caller)?;
    alerts.test(&body.channel, caller.name()).map_err(|e| {
        ApiError::bad_request(format!("{e}; channels: {}", alerts.channels().join(", ")))
    })?;
    Ok(StatusCode::ACCEPTED)
}
