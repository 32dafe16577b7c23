//! Time travel in the API: the fleet's summary and a cluster's state at a
//! past instant, for what the caller may see. The events around an
//! instant are `GET /api/v1/history?since_ms=&until_ms=`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PastState, TimelineError};
use crate::api::{limit, ApiError, ApiQuery};
use crate::auth::Caller;
use crate::fleet::{Sight, Summary};
use crate::Server;

/// `?at=` an instant: RFC 3339 (`2026-12-03T08:15:00Z`), a date, a time
/// ago (`15m`, `2h`, `7d`) or ms since the Unix epoch.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AtQuery {
    pub at: String,
    /// Summary: at most this many items needing attention (default 50).
    pub limit: Option<usize>,
}

/// Reads `at`; a bad one or one in the future is the caller's mistake.
pub(crate) fn instant(at: &str) -> Result<i64, ApiError> {
    let now = crate::now_ms();
    let ms = haven_model::clock::parse_instant(at, now).map_err(ApiError::bad_request)?;
    if ms > now {
        return Err(ApiError::bad_request(format!(
            "{at} is in the future; the present is GET /api/v1/summary"
        )));
    }
    Ok(ms)
}

/// A past state asked for before the newest prune is gone (410); any
/// other failure is the server's.
impl From<TimelineError> for ApiError {
    fn from(e: TimelineError) -> Self {
        match e {
            pruned @ TimelineError::Pruned(_) => {
                ApiError::new(StatusCode::GONE, "pruned", pruned.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The fleet at a past instant.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PastSummary {
    pub at_ms: i64,
    /// Counts and what needed attention then, as `GET /api/v1/summary`
    /// gives them now (links count as `connected`: whether a link was up
    /// then is not recorded).
    pub summary: Summary,
    /// Clusters managed now of which nothing was recorded by then.
    pub unrecorded: Vec<String>,
}

/// `GET /api/v1/past/summary?at=`
pub(crate) async fn summary(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> Result<Json<PastSummary>, ApiError> {
    let at_ms = instant(&q.at)?;
    let sight = s.sight(&caller);
    s.flush_history().await;
    let clusters = s.visible_cluster_names(sight.as_ref());
    let past = s.past_fleet(at_ms, clusters).await?;
    let limit = limit(q.limit, 50);
    let summary = match &sight {
        None => past.fleet.summary(limit),
        Some(l) => past.fleet.seen_by(l).summary(limit),
    };
    Ok(Json(PastSummary {
        at_ms,
        summary,
        unrecorded: past.unrecorded,
    }))
}

/// `GET /api/v1/past/clusters/{name}?at=`
pub(crate) async fn cluster(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> Result<Json<PastState>, ApiError> {
    let at_ms = instant(&q.at)?;
    let sight = s.sight(&caller);
    if sight.as_ref().is_some_and(|l| !l.cluster(&name)) {
        return Err(ApiError::unknown_cluster(&name).denied(&name, "no role on this cluster"));
    }
    s.flush_history().await;
    let Some(mut past) = s.past_cluster(&name, at_ms).await? else {
        if !s.fleet.contains(&name) {
            return Err(ApiError::unknown_cluster(&name));
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_recorded",
            format!(
                "nothing of cluster {name} was recorded by {}",
                haven_model::clock::rfc3339(at_ms)
            ),
        ));
    };
    if let Some(l) = &sight {
        past.snapshot = crate::fleet::visible_snapshot(&past.snapshot, l);
    }
    Ok(Json(past))
}
