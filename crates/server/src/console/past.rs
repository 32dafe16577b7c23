//! Time travel: the fleet, a cluster or a group as it was at a past
//! instant (rebuilt by [`crate::timeline`]), and the events around that
//! instant to step through an incident one change at a time. Nothing on
//! these pages is live and nothing can be operated from them.

use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use haven_model::clock::rfc3339;
use haven_model::ClusterSnapshot;
use haven_store::{HistoryQuery, HistoryRow};
use serde::Deserialize;

use super::html::{ago, badge, esc, seg, table};
use super::pages::{
    describe, flags, group_matrix, not_found, state_cards, state_on, AppState, Caught,
};
use super::Viewer;
use crate::api::ApiError;
use crate::timeline::TimelineError;

/// `?at=` as typed: RFC 3339, a date, a time ago (`2h`), ms.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PastQuery {
    #[serde(default)]
    at: Option<String>,
}

/// Events listed on each side of the instant.
const AROUND: usize = 10;

fn past_cluster_href(cluster: &str, at: i64) -> String {
    format!("/past/c/{}?at={at}", seg(cluster))
}

fn past_group_href(cluster: &str, group: &str, at: i64) -> String {
    format!("/past/c/{}/g/{}?at={at}", seg(cluster), seg(group))
}

/// The instant picker: a field for any instant and steps around it.
fn picker(action: &str, at: i64, now: i64) -> String {
    let step = |label: &str, delta: i64| {
        let to = (at + delta).min(now);
        format!("<a class=\"step\" href=\"{action}?at={to}\">{label}</a>")
    };
    format!(
        "<form class=\"picker\" action=\"{action}\" method=\"get\">\
<label>Instant (UTC) <input name=\"at\" id=\"at\" value=\"{value}\" \
placeholder=\"2026-12-03T08:15:00Z, 2h, 7d\" aria-describedby=\"athelp\"></label> \
<button type=\"submit\">Show</button> {back_h}{back_m}{fwd_m}{fwd_h}</form>\
<p id=\"athelp\" class=\"muted\">RFC 3339 (2026-12-03T08:15:00Z), a date, or a time ago (15m, 2h, 7d).</p>",
        value = esc(&rfc3339(at)),
        back_h = step("−1 h", -3_600_000),
        back_m = step("−5 min", -300_000),
        fwd_m = step("+5 min", 300_000),
        fwd_h = step("+1 h", 3_600_000),
    )
}

/// The line that says these states are not live.
fn not_live(at: i64, now: i64) -> String {
    format!(
        "As recorded at {} ({}) — not live; nothing can be operated here. Whether links were up then is not recorded.",
        rfc3339(at),
        ago(at, now)
    )
}

/// The way back to the present.
fn live_link(href: &str) -> String {
    format!("<p><a id=\"tolive\" href=\"{href}\">Back to live →</a></p>")
}

/// The picker on its own, set to an hour ago (as good a start as any).
fn fresh_picker(action: &str) -> String {
    let now = crate::now_ms();
    picker(action, now - 3_600_000, now)
}

/// A time travel refused (a bad instant, one before the newest prune),
/// with the API's status and message and a picker to try again.
fn refused(v: &Viewer, refusal: ApiError, action: &str) -> Response {
    v.refuse("Time travel", refusal, &fresh_picker(action))
}

/// Reads `?at=`; `Err` is the page to answer with.
fn read_at(v: &Viewer, q: &PastQuery, action: &str) -> Result<i64, Box<Response>> {
    let Some(text) = q.at.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err(Box::new(v.render(
            "Time travel",
            None,
            None,
            format!(
                "<h1>Time travel</h1><p>See the fleet, a cluster or a group as it was at any instant since history was last pruned, then step through the events around it.</p>{}",
                fresh_picker(action)
            ),
        )));
    };
    crate::timeline::api::instant(text).map_err(|e| Box::new(refused(v, e, action)))
}

/// `/past?at=`: the fleet then.
pub(crate) async fn fleet(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<PastQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, false);
    let at = match read_at(&v, &q, "/past") {
        Ok(at) => at,
        Err(page) => return *page,
    };
    s.flush_history().await;
    let past = match s
        .past_fleet(at, s.visible_cluster_names(v.sight.as_ref()))
        .await
    {
        Ok(p) => p,
        Err(e) => return refused(&v, e.into(), "/past"),
    };
    let summary = match &v.sight {
        None => past.fleet.summary(200),
        Some(l) => past.fleet.seen_by(l).summary(200),
    };
    let now = crate::now_ms();
    let mut main = format!(
        "<h1>The fleet at {}</h1>{}{}<div class=\"cards\">",
        esc(&rfc3339(at)),
        picker("/past", at, now),
        live_link("/")
    );
    main.push_str(&state_cards(&summary));
    main.push_str("</div>");
    let _ = write!(main, "<p>{} clusters recorded then.</p>", summary.clusters);
    if !past.unrecorded.is_empty() {
        let _ = write!(
            main,
            "<p class=\"muted\" id=\"unrecorded\">Not recorded yet then: {}.</p>",
            esc(&past.unrecorded.join(", "))
        );
    }
    let _ = write!(
        main,
        "<h2>Needed attention ({})</h2>",
        summary.attention_total
    );
    if summary.attention.is_empty() {
        main.push_str("<p class=\"muted\">Nothing was faulted or frozen.</p>");
    } else {
        main.push_str(&past_attention(&summary.attention, at));
    }
    let mut listed = String::from("<h2>Clusters</h2><ul class=\"pastlist\">");
    for c in past.fleet.clusters() {
        let _ = write!(
            listed,
            "<li><a href=\"{}\">{}</a></li>",
            past_cluster_href(&c.name, at),
            esc(&c.name)
        );
    }
    listed.push_str("</ul>");
    main.push_str(&listed);
    v.render("Time travel", None, Some(not_live(at, now)), main)
}

/// What needed attention then, linked to the past pages.
fn past_attention(items: &[crate::fleet::Attention], at: i64) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            let object = match &a.object {
                Some(o) if a.kind.contains("group") || a.kind == "concurrency_violation" => {
                    format!(
                        "<a href=\"{}\">{}</a>",
                        past_group_href(&a.cluster, o, at),
                        esc(o)
                    )
                }
                Some(o) => esc(o),
                None => String::new(),
            };
            vec![
                badge(&a.kind.replace('_', " ").to_uppercase()),
                format!(
                    "<a href=\"{}\">{}</a>",
                    past_cluster_href(&a.cluster, at),
                    esc(&a.cluster)
                ),
                object,
                esc(a.system.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table("attention", &["What", "Cluster", "Object", "System"], &rows)
}

/// The events about `object` (or the whole cluster) on each side of `at`:
/// (the last ones at or before it, newest first; the first ones after it,
/// oldest first).
async fn around(
    s: &AppState,
    cluster: &str,
    object: Option<&str>,
    at: i64,
) -> (Vec<HistoryRow>, Vec<HistoryRow>) {
    let base = HistoryQuery {
        cluster: Some(cluster.to_string()),
        object: object.map(str::to_string),
        ..Default::default()
    };
    let before = HistoryQuery {
        until_ms: Some(at + 1),
        limit: AROUND,
        ..base.clone()
    };
    let after = HistoryQuery {
        since_ms: Some(at + 1),
        limit: AROUND,
        oldest_first: true,
        ..base
    };
    let before = s
        .read(move |store| haven_store::Store::history(store, &before))
        .await
        .unwrap_or_default();
    let after = s
        .read(move |store| haven_store::Store::history(store, &after))
        .await
        .unwrap_or_default();
    (before, after)
}

/// The events around the instant, each a step to the state after it, and
/// buttons to the previous and next change.
fn steps(
    before: &[HistoryRow],
    after: &[HistoryRow],
    href: impl Fn(i64) -> String,
    at: i64,
) -> String {
    let mut out = String::from("<h2>Around this instant</h2><p class=\"ops\">");
    // The state just before the last change shown (changes recorded in
    // the same ms are one step).
    match before.first() {
        Some(last) => {
            let _ = write!(
                out,
                "<a class=\"step\" id=\"prevchange\" href=\"{}\">← previous change</a> ",
                href(last.event.time_ms - 1)
            );
        }
        None => out.push_str("<span class=\"muted\">no earlier change recorded</span> "),
    }
    match after.first() {
        Some(next) => {
            let _ = write!(
                out,
                "<a class=\"step\" id=\"nextchange\" href=\"{}\">next change →</a>",
                href(next.event.time_ms)
            );
        }
        None => out.push_str("<span class=\"muted\">no later change recorded</span>"),
    }
    out.push_str("</p>");
    let row = |r: &HistoryRow, here: bool| {
        vec![
            format!(
                "<a href=\"{}\">{}</a>{}",
                href(r.event.time_ms),
                esc(&rfc3339(r.event.time_ms)),
                if here { " ◀ shown" } else { "" }
            ),
            describe(&r.event.kind),
        ]
    };
    let mut rows: Vec<Vec<String>> = after.iter().rev().map(|r| row(r, false)).collect();
    rows.extend(
        before
            .iter()
            .enumerate()
            .map(|(i, r)| row(r, i == 0 && r.event.time_ms <= at)),
    );
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No events recorded around it.</p>");
    } else {
        out.push_str(&table("history around", &["When (UTC)", "What"], &rows));
    }
    out
}

/// The rebuilt state of a cluster the viewer may see.
async fn seen_past(
    v: &Viewer,
    cluster: &str,
    at: i64,
) -> Result<Option<(crate::timeline::PastState, ClusterSnapshot)>, TimelineError> {
    if !v.sees_cluster(cluster) {
        return Ok(None);
    }
    v.server.flush_history().await;
    let Some(past) = v.server.past_cluster(cluster, at).await? else {
        return Ok(None);
    };
    let snap = match &v.sight {
        None => past.snapshot.clone(),
        Some(l) => crate::fleet::visible_snapshot(&past.snapshot, l),
    };
    Ok(Some((past, snap)))
}

/// `/past/c/{cluster}?at=`: a cluster then.
pub(crate) async fn cluster(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Path(name): Path<String>,
    Query(q): Query<PastQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, false);
    let action = past_cluster_href(&name, 0).replace("?at=0", "");
    let at = match read_at(&v, &q, &action) {
        Ok(at) => at,
        Err(page) => return *page,
    };
    let (past, snap) = match seen_past(&v, &name, at).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return not_found(
                &v,
                &format!(
                    "Nothing of a cluster {name} was recorded by {}.",
                    rfc3339(at)
                ),
            )
        }
        Err(e) => return refused(&v, e.into(), &action),
    };
    let now = crate::now_ms();
    let mut main = format!(
        "<h1>Cluster {} <span class=\"muted\">at</span> {}</h1>{}",
        esc(&name),
        esc(&rfc3339(at)),
        picker(&action, at, now)
    );
    let _ = write!(
        main,
        "<p class=\"muted\">Rebuilt from the checkpoint of {} (engine run {}){}.</p>",
        esc(&rfc3339(past.checkpoint_ms)),
        past.epoch,
        past.last_event_ms
            .map(|t| format!(" and the events after it, the last at {}", rfc3339(t)))
            .unwrap_or_default()
    );
    let rows: Vec<Vec<String>> = snap
        .systems
        .iter()
        .map(|sys| {
            vec![
                esc(&sys.name),
                badge(sys.state.as_str()) + &flags(sys.freeze, true),
            ]
        })
        .collect();
    main.push_str("<h2>Systems</h2>");
    main.push_str(&table("systems", &["System", "State"], &rows));
    let groups: Vec<_> = snap.groups.iter().collect();
    let (head, rows) = group_matrix(&snap, &groups, |g| {
        format!(
            "<a href=\"{}\">{}</a>{}",
            past_group_href(&name, &g.name, at),
            esc(&g.name),
            flags(g.freeze, g.enabled)
        )
    });
    let _ = write!(main, "<h2>Service groups ({})</h2>", rows.len());
    main.push_str(&table("matrix", &head, &rows));
    let (before, after) = around(&s, &name, None, at).await;
    // Events of groups the viewer may not see stay hidden.
    let shown = |r: &HistoryRow| {
        v.sight
            .as_ref()
            .is_none_or(|l| crate::fleet::visible_event(&r.cluster, &r.event, l))
    };
    let before: Vec<_> = before.into_iter().filter(shown).collect();
    let after: Vec<_> = after.into_iter().filter(shown).collect();
    main.push_str(&steps(&before, &after, |t| past_cluster_href(&name, t), at));
    main.push_str(&live_link(&format!("/c/{}", seg(&name))));
    v.render(&name, None, Some(not_live(at, now)), main)
}

/// `/past/c/{cluster}/g/{group}?at=`: a group then.
pub(crate) async fn group(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Path((cluster, group)): Path<(String, String)>,
    Query(q): Query<PastQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, false);
    let action = past_group_href(&cluster, &group, 0).replace("?at=0", "");
    let at = match read_at(&v, &q, &action) {
        Ok(at) => at,
        Err(page) => return *page,
    };
    let missing = || {
        format!(
            "No group {group} of a cluster {cluster} was recorded by {}.",
            rfc3339(at)
        )
    };
    let (_, snap) = match seen_past(&v, &cluster, at).await {
        Ok(Some(p)) if v.sees_group(&cluster, &group) => p,
        Ok(_) => return not_found(&v, &missing()),
        Err(e) => return refused(&v, e.into(), &action),
    };
    let Some(status) = snap.group(&group) else {
        return not_found(&v, &missing());
    };
    let now = crate::now_ms();
    let mut main = format!(
        "<h1>Group {} <span class=\"muted\">of</span> <a href=\"{}\">{}</a> <span class=\"muted\">at</span> {}</h1>{}<p>{}</p>",
        esc(&group),
        past_cluster_href(&cluster, at),
        esc(&cluster),
        esc(&rfc3339(at)),
        picker(&action, at, now),
        flags(status.freeze, status.enabled)
    );
    let rows: Vec<Vec<String>> = status
        .states
        .iter()
        .map(|(sys, st)| vec![esc(sys), badge(st.as_str())])
        .collect();
    main.push_str("<h2>State per system</h2>");
    main.push_str(&table("groupstates", &["System", "State"], &rows));
    let mut head: Vec<&str> = vec!["Resource"];
    head.extend(status.states.iter().map(|(s, _)| &**s));
    let rows: Vec<Vec<String>> = status
        .resources
        .iter()
        .map(|r| {
            let mut row = vec![esc(&r.name)];
            row.extend(
                status
                    .states
                    .iter()
                    .map(|(sys, _)| state_on(&r.states, sys)),
            );
            row
        })
        .collect();
    main.push_str("<h2>Resources</h2>");
    main.push_str(&table("resources", &head, &rows));
    let (before, after) = around(&s, &cluster, Some(&group), at).await;
    main.push_str(&steps(
        &before,
        &after,
        |t| past_group_href(&cluster, &group, t),
        at,
    ));
    main.push_str(&live_link(&format!(
        "/c/{}/g/{}",
        seg(&cluster),
        seg(&group)
    )));
    v.render(&group, None, Some(not_live(at, now)), main)
}
