//! The availability report over HTTP: `GET /api/v1/reports/availability`
//! (JSON or CSV), for what the caller may see. The history comes from the
//! timeline ([`replay`]), the figures from the pure [`availability`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;

use super::availability::{availability, csv, AvailabilityReport, ClusterHistory, Period};
use crate::access::Limited;
use crate::api::{visible_clusters, ApiError, ApiQuery};
use crate::auth::Caller;
use crate::fleet::Sight;
use crate::Server;

/// The period when none is given: the last seven days.
pub const DEFAULT_FROM: &str = "7d";

/// `?from=&to=&cluster=&group=&tag=&format=`
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
pub struct AvailabilityParams {
    /// The period's start: RFC 3339 (`2026-12-01T00:00:00Z`), a date
    /// (`2026-12-01`, midnight UTC), a time ago (`7d`, `12h`), `now`, or ms
    /// since the epoch. Default: `7d`.
    pub from: Option<String>,
    /// The period's end (not included), in the same forms. Default: now.
    pub to: Option<String>,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only service groups of this name.
    pub group: Option<String>,
    /// Only groups that carry every tag (`key=value,...` or `key`; values
    /// may be globs): on the group or on its cluster, as tagged now.
    pub tag: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// What a report is asked for, read and checked.
#[derive(Debug, Clone)]
pub struct Asked {
    pub period: Period,
    pub cluster: Option<String>,
    pub group: Option<String>,
    /// Every tag a group (or its cluster) must carry.
    pub tags: Vec<crate::tags::TagFilter>,
    pub csv: bool,
}

impl AvailabilityParams {
    /// Reads the period and filters (`now_ms`: what `now` and `7d` are
    /// relative to); the error says what is wrong and what would do.
    pub fn asked(&self, now_ms: i64) -> Result<Asked, ApiError> {
        let nonempty = |v: &Option<String>| v.clone().filter(|t| !t.trim().is_empty());
        let tags = crate::api::tag_filters(self.tag.as_deref())?;
        let instant = |name: &str, text: Option<String>, default: &str| {
            let text = text.unwrap_or_else(|| default.to_string());
            haven_model::clock::parse_instant(&text, now_ms)
                .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
        };
        let from_ms = instant("from", nonempty(&self.from), DEFAULT_FROM)?;
        let to_ms = instant("to", nonempty(&self.to), "now")?;
        if from_ms >= to_ms {
            return Err(ApiError::bad_request(format!(
                "the period is empty: from ({}) must be before to ({})",
                haven_model::clock::rfc3339(from_ms),
                haven_model::clock::rfc3339(to_ms)
            )));
        }
        let csv = match nonempty(&self.format).as_deref() {
            None | Some("json") => false,
            Some("csv") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "format `{other}`: use json or csv"
                )))
            }
        };
        Ok(Asked {
            period: Period { from_ms, to_ms },
            cluster: nonempty(&self.cluster),
            group: nonempty(&self.group),
            tags,
            csv,
        })
    }
}

/// The report of what `sight` sees (`None`: everything) of `asked`.
pub async fn report(
    s: &Arc<Server>,
    sight: Option<&Limited>,
    asked: &Asked,
) -> Result<AvailabilityReport, ApiError> {
    let clusters: Vec<String> = match (
        &asked.cluster,
        visible_clusters(s, sight, asked.cluster.as_deref())?,
    ) {
        (Some(c), _) if !s.fleet.contains(c) => return Err(ApiError::unknown_cluster(c)),
        (Some(c), _) => vec![c.clone()],
        (None, Some(visible)) => visible,
        (None, None) => s.fleet.names().iter().map(|n| n.to_string()).collect(),
    };
    let period = asked.period;
    let replays = s.replays(clusters, period.from_ms, period.to_ms).await?;
    let histories: Vec<ClusterHistory<'_>> = replays
        .iter()
        .map(|(c, r)| ClusterHistory {
            cluster: c,
            start: r.start.as_ref(),
            known_from_ms: r.known_from_ms,
            steps: &r.steps,
        })
        .collect();
    Ok(availability(period, &histories, |c, g| {
        sight.is_none_or(|l| l.group(c, g))
            && asked.group.as_deref().is_none_or(|x| x == g)
            && (asked.tags.is_empty() || s.fleet.carries(c, Some(g), None, &asked.tags))
    }))
}

/// A report as CSV, named for its period.
pub fn csv_response(report: &AvailabilityReport) -> Response {
    let name = format!(
        "availability-{}-{}.csv",
        haven_model::clock::rfc3339(report.period.from_ms).replace(':', ""),
        haven_model::clock::rfc3339(report.period.to_ms).replace(':', "")
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        csv(report),
    )
        .into_response()
}

/// `GET /api/v1/reports/availability`: per group, cluster and the fleet.
pub(crate) async fn get_availability(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<AvailabilityParams>,
) -> Result<Response, ApiError> {
    let asked = q.asked(crate::now_ms())?;
    let sight = s.sight(&caller);
    let report = report(&s, sight.as_ref(), &asked).await?;
    Ok(if asked.csv {
        csv_response(&report)
    } else {
        Json(report).into_response()
    })
}

/// `POST /api/v1/reports/schedules/{name}/send`: mails a scheduled
/// report now, for the period ending now (Server Administrators); the
/// answer is the report sent.
pub(crate) async fn send_now(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Json<AvailabilityReport>, ApiError> {
    crate::api::need_server_admin(&s, &caller)?;
    if !s.config.reports.schedules.iter().any(|e| e.name == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no [[reports.schedule]] is named `{name}` in haven.toml"),
        ));
    }
    s.send_scheduled_report(&name, crate::now_ms())
        .await
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "not_sent", e))
}
