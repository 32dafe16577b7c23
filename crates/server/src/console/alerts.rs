//! Alerts in the console: the `/alerts` page (open alerts first, filters,
//! pages), an Acknowledge button where the caller's role allows it (the
//! API's own rule, [`may_acknowledge`]; the API checks again), the delivery
//! log and a test notification for Server Administrators, the open alerts
//! on a cluster's page, and the count of open unacknowledged alerts in the
//! navigation. Everything is read for the caller: an alert of a group they
//! cannot see is not on any page, nor in any count.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Response;
use haven_store::{AlertRecord, AlertSeverity, DeliveryQuery, DeliveryRecord};
use serde::Deserialize;

use super::admin::{nonempty, read_error, when, Window};
use super::html::{badge, esc, seg, table};
use super::pages::{
    cluster_link, group_link, pager, resource_link, system_link, AppState, Caught, Rows,
};
use super::{cli, Viewer};
use crate::alerts::api::{may_acknowledge, shown, visible_alerts, AlertParams};

/// `/alerts?show=open|all&severity=&cluster=&page=&per=`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AlertsQuery {
    #[serde(default)]
    fragment: Option<String>,
    /// `open` (the default) or `all`.
    #[serde(default)]
    show: Option<String>,
    /// At least this severity.
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    page: Option<usize>,
    /// Rows a page (1 to 500; default 100).
    #[serde(default)]
    per: Option<usize>,
}

/// The delivery log on `/alerts` shows this many newest attempts.
const DELIVERIES_SHOWN: usize = 50;

pub(crate) async fn alerts(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<AlertsQuery>,
) -> Response {
    const TITLE: &str = "Alerts";
    let v = Viewer::new(s.clone(), caller, q.fragment.is_some());
    let all = q.show.as_deref() == Some("all");
    let cluster = nonempty(&q.cluster);
    let severity = nonempty(&q.severity);
    let filter = filter_form(all, cluster.as_deref(), severity.as_deref());
    let window = Window::new(q.page, q.per);
    let Some(wanted) = window.wanted() else {
        return v.render(
            TITLE,
            None,
            None,
            format!(
                "<h1>{TITLE}</h1>{filter}<p class=\"error\">The console shows the newest 10000 alerts; for older ones use <code>haven alerts --all --limit N</code> or the SQL port.</p>"
            ),
        );
    };
    let params = |open: bool, limit: usize| AlertParams {
        open: Some(open),
        cluster: cluster.clone(),
        severity: severity.clone(),
        since_ms: None,
        limit: Some(limit),
        tag: None,
    };
    // Open alerts first (newest raised first), then the cleared ones.
    let mut rows = match visible_alerts(&s, v.sight.as_ref(), &params(true, wanted), wanted).await {
        Ok(rows) => rows,
        Err(refusal) => return v.refuse(TITLE, refusal, &filter),
    };
    let open = rows.len();
    if all && rows.len() < wanted {
        let rest = wanted - rows.len();
        match visible_alerts(&s, v.sight.as_ref(), &params(false, rest), rest).await {
            Ok(cleared) => rows.extend(cleared),
            Err(refusal) => return v.refuse(TITLE, refusal, &filter),
        }
    }
    let unacked = rows[..open]
        .iter()
        .filter(|a| a.acknowledged_by.is_none())
        .count();
    let counted = if open < wanted {
        format!("{open} open, {unacked} unacknowledged")
    } else {
        "many open".to_string()
    };
    let (shown, more) = window.cut(rows);
    let mut main = format!(
        "<h1>{TITLE} <span class=\"muted\">({counted})</span></h1>\
<p class=\"muted\">{} From a shell: <code class=\"shell\">{}</code></p>{filter}",
        if all {
            "Open alerts first, then cleared ones; newest raised first."
        } else {
            "Open alerts, newest raised first."
        },
        esc(&cli::alerts(all, cluster.as_deref(), severity.as_deref())),
    );
    if shown.is_empty() {
        main.push_str(if all {
            "<p class=\"muted\">No alert matches.</p>"
        } else {
            "<p class=\"muted\">No open alert matches.</p>"
        });
    } else {
        main.push_str(&alert_table(&v, &shown));
    }
    let show = Some(if all { "all" } else { "open" }.to_string());
    let base = window.base(
        "/alerts",
        &[
            ("show", &show),
            ("cluster", &cluster),
            ("severity", &severity),
        ],
    );
    main.push_str(&pager(&base, window.page, window.per, Rows::More(more)));
    if v.admin() {
        main.push_str(&deliveries_section(&v).await);
    }
    v.render(TITLE, Some("/console/ticks".into()), None, main)
}

/// The filters: open or all, at least a severity, a cluster.
fn filter_form(all: bool, cluster: Option<&str>, severity: Option<&str>) -> String {
    let option = |value: &str, label: &str, selected: bool| {
        format!(
            "<option value=\"{}\"{}>{}</option>",
            esc(value),
            if selected { " selected" } else { "" },
            esc(label)
        )
    };
    let severities: String = std::iter::once(option("", "any severity", severity.is_none()))
        .chain(AlertSeverity::ALL.iter().map(|s| {
            option(
                s.as_str(),
                &format!("{} or worse", s.as_str()),
                severity == Some(s.as_str()),
            )
        }))
        .collect();
    format!(
        "<form class=\"filter\" action=\"/alerts\"><select name=\"show\" aria-label=\"Which alerts\">{}{}</select> \
<select name=\"severity\" aria-label=\"Severity\">{severities}</select> \
<input name=\"cluster\" value=\"{}\" placeholder=\"cluster\" aria-label=\"Only this cluster\"> <button>Filter</button></form>",
        option("open", "open", !all),
        option("all", "open and cleared", all),
        esc(cluster.unwrap_or("")),
    )
}

/// Alerts as a table: id, severity, cluster, object, what, raised,
/// cleared, acknowledged (or the button, where the viewer may); with a
/// note when some alert's button is withheld.
pub(super) fn alert_table(v: &Viewer, alerts: &[AlertRecord]) -> String {
    let now = crate::now_ms();
    let mut withheld = false;
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            let mut what = esc(&a.message);
            if a.flapping {
                what.push_str(
                    " <span class=\"flapping\" title=\"raised and cleared too often lately: notifications are held back until it settles\">↯ flapping</span>",
                );
            }
            let cleared = match a.cleared_ms {
                Some(ms) => when(ms, now),
                None => badge("OPEN"),
            };
            let acked = match (&a.acknowledged_by, a.acknowledged_ms) {
                (Some(by), at) => format!(
                    "<span class=\"acked\">by {}</span>{}",
                    esc(by),
                    at.map(|ms| format!(" {}", when(ms, now)))
                        .unwrap_or_default()
                ),
                (None, _) if may_acknowledge(&v.server, &v.caller, a).is_ok() => ack_button(a),
                (None, _) => {
                    withheld = true;
                    "<span class=\"muted\">—</span>".into()
                }
            };
            vec![
                a.id.to_string(),
                badge(&a.severity.as_str().to_uppercase()),
                cluster_link(&a.cluster),
                object(a),
                what,
                when(a.raised_ms, now),
                cleared,
                acked,
            ]
        })
        .collect();
    let mut out = table(
        "alerts",
        &[
            "#",
            "Severity",
            "Cluster",
            "Object",
            "What",
            "Raised (UTC)",
            "Cleared",
            "Acknowledged",
        ],
        &rows,
    );
    if withheld {
        out.push_str(
            "<p class=\"withheld\">Not offered to you: Acknowledge needs Group Operator or higher on the alert's group (or cluster).</p>",
        );
    }
    out
}

fn ack_button(a: &AlertRecord) -> String {
    format!(
        "<button type=\"button\" class=\"api ack\" data-method=\"POST\" data-url=\"/api/v1/alerts/{id}/ack\" \
data-confirm=\"Acknowledge alert {id} ({}): everyone sees you took it\" data-cli=\"{}\">Acknowledge</button>",
        esc(&a.message),
        esc(&cli::alert_ack(a.id)),
        id = a.id,
    )
}

/// The object an alert is about, linked to its page.
fn object(a: &AlertRecord) -> String {
    let on = |out: String| match &a.system {
        Some(sys) => format!("{out} on {}", system_link(&a.cluster, sys)),
        None => out,
    };
    match (&a.object, a.kind.as_str()) {
        (Some(o), "faulted_resource") => on(resource_link(&a.cluster, o)),
        (Some(o), _) => on(group_link(&a.cluster, o)),
        (None, _) => a
            .system
            .as_deref()
            .map(|sys| format!("system {}", system_link(&a.cluster, sys)))
            .unwrap_or_default(),
    }
}

/// The newest delivery attempts and a test notification (Server
/// Administrators: it names channels and their errors).
async fn deliveries_section(v: &Viewer) -> String {
    let Some(alerts) = v.server.alerts.as_ref() else {
        return String::new();
    };
    let query = DeliveryQuery {
        limit: DELIVERIES_SHOWN,
        ..Default::default()
    };
    let rows = v.server.read(move |store| store.deliveries(&query)).await;
    let mut out = format!(
        "<h2 id=\"deliveries\">Delivery log</h2><p class=\"muted\">Every attempt to notify, newest {DELIVERIES_SHOWN} first. \
From a shell: <code class=\"shell\">{}</code></p>",
        cli::ALERT_DELIVERIES
    );
    out.push_str(&match rows {
        Ok(rows) if rows.is_empty() => "<p class=\"muted\">No notification yet.</p>".into(),
        Ok(rows) => delivery_table(&rows),
        Err(e) => read_error(&e),
    });
    let channels = alerts.channels();
    if channels.is_empty() {
        out.push_str(
            "<p class=\"muted\">No channel is configured ([[alerts.channel]] in haven.toml).</p>",
        );
    } else {
        let options: String = channels
            .iter()
            .map(|c| format!("<option>{}</option>", esc(c)))
            .collect();
        let _ = write!(
            out,
            "<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/alerts/test\" data-cli=\"{}\">\
<select name=\"channel\" data-arg=\"\" aria-label=\"Channel\">{options}</select> <button>Send a test notification</button></form>",
            cli::ALERT_TEST
        );
    }
    out
}

fn delivery_table(rows: &[DeliveryRecord]) -> String {
    let now = crate::now_ms();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            vec![
                when(d.time_ms, now),
                d.alert_id
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| "test".into()),
                esc(&d.channel),
                esc(&d.event),
                d.attempt.to_string(),
                badge(&d.outcome.as_str().to_uppercase()),
                esc(d.error.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(
        "deliveries",
        &[
            "When (UTC)",
            "Alert",
            "Channel",
            "Event",
            "Attempt",
            "Outcome",
            "Error",
        ],
        &rows,
    )
}

/// The open alerts of `cluster` the viewer may see, for its page (from
/// the alert task's current state: no database read).
pub(super) fn cluster_section(v: &Viewer, cluster: &str) -> String {
    let Some(alerts) = v.server.alerts.as_ref() else {
        return String::new();
    };
    let mut open: Vec<AlertRecord> = alerts
        .open_now()
        .iter()
        .filter(|a| a.cluster == cluster && shown(v.sight.as_ref(), a))
        .cloned()
        .collect();
    open.sort_by_key(|a| std::cmp::Reverse((a.raised_ms, a.id)));
    let mut out = format!("<h2 id=\"alerts\">Open alerts ({})</h2>", open.len());
    if open.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>");
    } else {
        out.push_str(&alert_table(v, &open));
    }
    let _ = write!(
        out,
        "<p><a href=\"/alerts?show=all&amp;cluster={}\">All alerts of {} →</a></p>",
        seg(cluster),
        esc(cluster)
    );
    out
}

/// How many open alerts the viewer may see have no acknowledgement yet
/// (`None`: alerts are off).
pub(super) fn unacknowledged(v: &Viewer) -> Option<usize> {
    let alerts = v.server.alerts.as_ref()?;
    Some(
        alerts
            .open_now()
            .iter()
            .filter(|a| a.acknowledged_by.is_none() && shown(v.sight.as_ref(), a))
            .count(),
    )
}

/// The summary's card: open alerts, how many unacknowledged (no
/// `data-kind`: the summary's state counts stay the fleet's).
pub(super) fn summary_card(v: &Viewer) -> String {
    let Some(alerts) = v.server.alerts.as_ref() else {
        return String::new();
    };
    let open: Vec<_> = alerts
        .open_now()
        .iter()
        .filter(|a| shown(v.sight.as_ref(), a))
        .map(|a| a.acknowledged_by.is_none())
        .collect();
    let unacked = open.iter().filter(|u| **u).count();
    format!(
        "<div class=\"card alerts-card\"><span><a href=\"/alerts\">Open alerts</a></span><b id=\"openalerts\">{}</b>\
<div class=\"count\">unacknowledged <span class=\"n\" id=\"unacked\">{unacked}</span></div></div>",
        open.len()
    )
}
