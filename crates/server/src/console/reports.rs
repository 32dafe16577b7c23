//! The reports page (`/reports`): availability over a period picked in a
//! form — the fleet's figures, a bar per cluster and a timeline of each
//! group's outages (inline SVG, drawn here: no script, no library), a
//! table worst first, and the CSV and JSON of the same report (the API's
//! own, [`crate::reports::api`]).

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::html::{esc, seg, table};
use super::pages::{cluster_link, group_link, AppState, Caught};
use super::{cli, Viewer};
use crate::reports::api::{report, AvailabilityParams, DEFAULT_FROM};
use crate::reports::availability::{percent_text, AvailabilityReport, Figures, GroupReport};

/// `/reports?from=&to=&cluster=&group=`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

/// The page shows at most this many groups (worst first); the CSV has all.
const GROUPS_SHOWN: usize = 200;
/// And at most this many cluster bars (worst first).
const BARS_SHOWN: usize = 50;

pub(crate) async fn reports(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<ReportQuery>,
) -> Response {
    const TITLE: &str = "Availability";
    let v = Viewer::new(s.clone(), caller, q.fragment.is_some());
    let text = |o: &Option<String>| o.clone().filter(|t| !t.trim().is_empty());
    let (from, to) = (text(&q.from), text(&q.to));
    let (cluster, group, tag) = (text(&q.cluster), text(&q.group), text(&q.tag));
    let form = period_form(
        from.as_deref().unwrap_or(DEFAULT_FROM),
        to.as_deref().unwrap_or("now"),
        cluster.as_deref(),
        group.as_deref(),
        tag.as_deref(),
    );
    let params = AvailabilityParams {
        from: from.clone(),
        to: to.clone(),
        cluster: cluster.clone(),
        group: group.clone(),
        tag: tag.clone(),
        format: None,
    };
    let asked = match params.asked(crate::now_ms()) {
        Ok(a) => a,
        Err(e) => {
            let mut r = v.render(
                TITLE,
                None,
                None,
                format!(
                    "<h1>{TITLE}</h1>{form}<p class=\"error\">{}</p>",
                    esc(&e.message)
                ),
            );
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
    };
    let r = match report(&s, v.sight.as_ref(), &asked).await {
        Ok(r) => r,
        Err(refusal) => return v.refuse(TITLE, refusal, &form),
    };
    let clock = haven_model::clock::rfc3339;
    let (from_t, to_t) = (clock(r.period.from_ms), clock(r.period.to_ms));
    let download = |format: &str| {
        let mut url = format!(
            "/api/v1/reports/availability?from={}&amp;to={}",
            seg(&from_t),
            seg(&to_t)
        );
        for (k, v) in [("cluster", &cluster), ("group", &group), ("tag", &tag)] {
            if let Some(v) = v {
                let _ = write!(url, "&amp;{k}={}", seg(v));
            }
        }
        let _ = write!(url, "&amp;format={format}");
        url
    };
    let mut main = format!(
        "<h1>{TITLE}</h1>{form}<p class=\"period\">From <time>{}</time> to <time>{}</time> (UTC). \
<a href=\"{}\" download id=\"csv\">Download CSV</a> · <a href=\"{}\">JSON</a> · From a shell: <code class=\"shell\">{}</code></p>",
        esc(&from_t),
        esc(&to_t),
        download("csv"),
        download("json"),
        esc(&cli::report(
            from.as_deref().unwrap_or(DEFAULT_FROM),
            to.as_deref(),
            cluster.as_deref(),
            group.as_deref(),
            tag.as_deref()
        )),
    );
    main.push_str(&overall_cards(&r.overall));
    main.push_str(&cluster_bars(&r));
    main.push_str(&group_table(&r));
    main.push_str(
        "<p class=\"muted\">A group is <i>available</i> while it is ONLINE or PARTIAL on at least one system; \
percentages are of the time its state is known (<i>covered</i>), with four decimals rounded half up. \
An outage is unplanned when it began with a fault; MTTR is the mean length of the unplanned outages that \
began and ended in the period. A tag filter keeps the groups that carry the tags (or whose cluster does), as tagged now.</p>",
    );
    v.render(TITLE, None, None, main)
}

/// The period picker: from, to (any form the API takes), and filters.
fn period_form(
    from: &str,
    to: &str,
    cluster: Option<&str>,
    group: Option<&str>,
    tag: Option<&str>,
) -> String {
    format!(
        "<form class=\"filter\" id=\"period\" action=\"/reports\">\
<label>From <input name=\"from\" value=\"{}\" size=\"22\" aria-label=\"From\" list=\"periods\"></label> \
<label>to <input name=\"to\" value=\"{}\" size=\"22\" aria-label=\"To\"></label> \
<datalist id=\"periods\"><option value=\"1d\"><option value=\"7d\"><option value=\"30d\"><option value=\"90d\"></datalist>\
<input name=\"cluster\" value=\"{}\" placeholder=\"cluster\" aria-label=\"Only this cluster\"> \
<input name=\"group\" value=\"{}\" placeholder=\"group\" aria-label=\"Only groups of this name\"> \
<input name=\"tag\" value=\"{}\" placeholder=\"tags: env=prod\" aria-label=\"Only groups carrying these tags\"> <button>Show</button>\
<span class=\"muted\"> RFC 3339, a date, or a time ago (7d, 12h)</span></form>",
        esc(from),
        esc(to),
        esc(cluster.unwrap_or("")),
        esc(group.unwrap_or("")),
        esc(tag.unwrap_or(""))
    )
}

/// `1d 2h`, `3h 5m`, `4m 10s`, `12s`, `0s`.
pub(crate) fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn overall_cards(f: &Figures) -> String {
    format!(
        "<div class=\"cards\"><div class=\"card\"><span>Availability</span><b id=\"overall\">{}%</b>\
<div class=\"count\">of {} covered</div></div>\
<div class=\"card\"><span>Outages</span><b>{}</b><div class=\"count\">{} unplanned · {} in all · longest {}</div></div>\
<div class=\"card\"><span>Failovers</span><b>{}</b></div>\
<div class=\"card\"><span>MTTR</span><b>{}</b><div class=\"count\">{} repairs</div></div></div>",
        f.percent_text(),
        span(f.covered_ms),
        f.outages,
        f.unplanned_outages,
        span(f.outage_ms),
        span(f.longest_outage_ms),
        f.failovers,
        f.mttr_ms.map(span).unwrap_or_else(|| "—".into()),
        f.repairs,
    )
}

/// One horizontal bar per cluster (worst first), 0–100 %.
fn cluster_bars(r: &AvailabilityReport) -> String {
    let mut clusters: Vec<_> = r.clusters.iter().filter(|c| c.known).collect();
    clusters.sort_by_key(|c| ratio_key(&c.figures));
    clusters.truncate(BARS_SHOWN);
    if clusters.is_empty() {
        return "<p class=\"muted\">Nothing recorded in this period for what you may see.</p>"
            .into();
    }
    let (label_w, bar_w, row_h) = (160, 480, 22);
    let height = row_h * clusters.len() + 24;
    let mut svg = format!(
        "<h2>By cluster</h2><svg class=\"chart bars\" role=\"img\" aria-label=\"Availability by cluster\" \
viewBox=\"0 0 {w} {height}\" width=\"{w}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        w = label_w + bar_w + 90
    );
    for (i, c) in clusters.iter().enumerate() {
        let y = i * row_h;
        let pct = c.figures.availability_percent.unwrap_or(0.0);
        let width = (pct / 100.0 * bar_w as f64).round();
        let _ = write!(
            svg,
            "<g class=\"bar\" data-cluster=\"{name}\"><title>{name}: {p}%</title>\
<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" class=\"label\">{name}</text>\
<rect x=\"{label_w}\" y=\"{ry}\" width=\"{bar_w}\" height=\"16\" class=\"track\"/>\
<rect x=\"{label_w}\" y=\"{ry}\" width=\"{width}\" height=\"16\" class=\"{class}\"/>\
<text x=\"{vx}\" y=\"{ty}\" class=\"value\">{p}%</text></g>",
            name = esc(&c.cluster),
            p = c.figures.percent_text(),
            tx = label_w - 6,
            ty = y + 13,
            ry = y + 1,
            vx = label_w + bar_w + 6,
            class = grade(&c.figures),
        );
    }
    // The 0 / 100 % scale.
    let _ = write!(
        svg,
        "<text x=\"{label_w}\" y=\"{y}\" class=\"scale\">0%</text><text x=\"{x}\" y=\"{y}\" text-anchor=\"end\" class=\"scale\">100%</text></svg>",
        y = height - 6,
        x = label_w + bar_w
    );
    svg
}

/// Sorts worst first (unknown last).
fn ratio_key(f: &Figures) -> (bool, i128) {
    match f.covered_ms {
        0 => (true, 0),
        c => (false, f.available_ms as i128 * 1_000_000_000 / c as i128),
    }
}

/// A colour class by availability: `good` (≥ 99.9 %), `fair` (≥ 99 %),
/// `poor`.
fn grade(f: &Figures) -> &'static str {
    match f.availability_percent {
        Some(p) if p >= 99.9 => "good",
        Some(p) if p >= 99.0 => "fair",
        _ => "poor",
    }
}

/// The period as a strip: covered time green, outages red (unplanned) or
/// amber (planned), uncovered time grey.
fn timeline(period: (i64, i64), g: &GroupReport) -> String {
    let (from, to) = period;
    let w = 240.0;
    let x = |t: i64| ((t - from) as f64 / (to - from).max(1) as f64 * w).clamp(0.0, w);
    // Covered time is drawn as one stretch ending at the period's end
    // (the usual case: known from the start, or from the cluster's first
    // record); before it, grey.
    let covered_from = to - g.figures.covered_ms;
    let mut svg = format!(
        "<svg class=\"chart timeline\" viewBox=\"0 0 {w} 12\" width=\"{w}\" height=\"12\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
aria-label=\"{} outages\"><rect x=\"0\" y=\"0\" width=\"{w}\" height=\"12\" class=\"unknown\"/>",
        g.outage_list.len()
    );
    if g.figures.covered_ms > 0 {
        let a = x(covered_from);
        let _ = write!(
            svg,
            "<rect x=\"{a:.1}\" y=\"0\" width=\"{:.1}\" height=\"12\" class=\"up\"/>",
            (w - a).max(1.0)
        );
    }
    for o in &g.outage_list {
        let (a, b) = (x(o.start_ms), x(o.end_ms));
        let _ = write!(
            svg,
            "<rect x=\"{a:.1}\" y=\"0\" width=\"{:.1}\" height=\"12\" class=\"{}\"><title>{} outage: {} from {}</title></rect>",
            (b - a).max(1.0),
            if o.unplanned { "down" } else { "planned" },
            if o.unplanned { "unplanned" } else { "planned" },
            span(o.duration_ms()),
            esc(&haven_model::clock::rfc3339(o.start_ms)),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Every group, worst first, with its timeline.
fn group_table(r: &AvailabilityReport) -> String {
    let mut rows: Vec<(&str, &GroupReport)> = r
        .clusters
        .iter()
        .flat_map(|c| c.groups.iter().map(move |g| (c.cluster.as_str(), g)))
        .collect();
    rows.sort_by_key(|(c, g)| (ratio_key(&g.figures), c.to_string(), g.group.clone()));
    let total = rows.len();
    rows.truncate(GROUPS_SHOWN);
    let period = (r.period.from_ms, r.period.to_ms);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(c, g)| {
            let f = &g.figures;
            vec![
                cluster_link(c),
                group_link(c, &g.group),
                format!(
                    "<span class=\"pct {}\">{}</span>",
                    grade(f),
                    percent_text(f.available_ms, f.covered_ms)
                ),
                span(f.covered_ms),
                format!("{} ({} unplanned)", f.outages, f.unplanned_outages),
                span(f.outage_ms),
                span(f.longest_outage_ms),
                f.failovers.to_string(),
                f.mttr_ms.map(span).unwrap_or_else(|| "—".into()),
                timeline(period, g),
            ]
        })
        .collect();
    let mut out = format!(
        "<h2>By group ({total}{})</h2>",
        if total > GROUPS_SHOWN {
            format!(", the worst {GROUPS_SHOWN}: the CSV has them all")
        } else {
            String::new()
        }
    );
    out.push_str(&table(
        "availability",
        &[
            "Cluster",
            "Group",
            "Available %",
            "Covered",
            "Outages",
            "Down",
            "Longest",
            "Failovers",
            "MTTR",
            "Timeline",
        ],
        &cells,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_shortly() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(90_000), "1m 30s");
        assert_eq!(span(3_600_000), "1h 0m");
        assert_eq!(span(26 * 3_600_000), "1d 2h");
    }
}
