//! The console's pages.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use haven_model::{
    ClusterSnapshot, EventKind, GroupState, GroupStatus, Name, Operation, ResourceState,
};
use serde::Deserialize;

use super::html::{ago, badge, esc, op_button, seg, table};
use super::{Offer, Op, Viewer};
use crate::auth::Caller;
use crate::fleet::{ClusterInfo, LinkState, LinkStatus};
use crate::Server;

pub(super) type AppState = Arc<Server>;
pub(super) type Caught = axum::Extension<Caller>;

/// Query of every page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    state: Option<String>,
    /// `key=value,...` (see `crate::tags`).
    #[serde(default)]
    tag: Option<String>,
}

impl PageQuery {
    pub(super) fn fragment(&self) -> bool {
        self.fragment.is_some()
    }
}

/// Rows per page of long lists: the console never renders a fleet at once.
pub(super) const PAGE: usize = 100;

pub(super) fn not_found(v: &Viewer, what: &str) -> Response {
    let mut r = v.render(
        "Not found",
        None,
        None,
        format!(
            "<h1>Not found</h1><p>{}</p><p><a href=\"/clusters\">All clusters</a></p>",
            esc(what)
        ),
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

fn ticks(cluster: Option<&str>) -> String {
    match cluster {
        Some(c) => format!("/console/ticks?cluster={}", seg(c)),
        None => "/console/ticks".into(),
    }
}

pub(super) fn cluster_link(name: &str) -> String {
    format!("<a href=\"/c/{}\">{}</a>", seg(name), esc(name))
}

pub(super) fn group_link(cluster: &str, group: &str) -> String {
    format!(
        "<a href=\"/c/{}/g/{}\">{}</a>",
        seg(cluster),
        seg(group),
        esc(group)
    )
}

pub(super) fn resource_link(cluster: &str, resource: &str) -> String {
    format!(
        "<a href=\"/c/{}/r/{}\">{}</a>",
        seg(cluster),
        seg(resource),
        esc(resource)
    )
}

pub(super) fn system_link(cluster: &str, system: &str) -> String {
    format!(
        "<a href=\"/c/{}/s/{}\">{}</a>",
        seg(cluster),
        seg(system),
        esc(system)
    )
}

pub(super) fn link_badge(link: &LinkStatus) -> String {
    badge(link.shown().as_str())
}

/// How long a paged list is.
pub(super) enum Rows {
    /// This many in all.
    Counted(usize),
    /// Not counted; whether there is a page after this one.
    More(bool),
}

/// "Page 2 of 5" with links to the previous and next page of `base`
/// (`per` rows a page).
pub(super) fn pager(base: &str, page: usize, per: usize, rows: Rows) -> String {
    let (mut out, more) = match rows {
        Rows::Counted(total) => {
            let pages = total.div_ceil(per.max(1)).max(1);
            (
                format!(
                    "<p class=\"pager\">Page {} of {pages} ({total} in all). ",
                    page + 1
                ),
                page + 1 < pages,
            )
        }
        Rows::More(more) => (format!("<p class=\"pager\">Page {}. ", page + 1), more),
    };
    let join = if base.contains('?') { '&' } else { '?' };
    if page > 0 {
        let _ = write!(
            out,
            "<a href=\"{base}{join}page={}\" rel=\"prev\">← previous</a>",
            page - 1
        );
    }
    if more {
        let _ = write!(
            out,
            "<a href=\"{base}{join}page={}\" rel=\"next\">next →</a>",
            page + 1
        );
    }
    out.push_str("</p>");
    out
}

/// A card of counts by state; `kind` names it for scripts and tests
/// (`data-kind`, and `data-state` on each count).
pub(super) fn counts(
    kind: &str,
    title: &str,
    items: &std::collections::BTreeMap<String, usize>,
) -> String {
    let total: usize = items.values().sum();
    let mut out = format!(
        "<div class=\"card\" data-kind=\"{kind}\"><span>{}</span><b>{total}</b>",
        esc(title)
    );
    for (state, n) in items {
        let _ = write!(
            out,
            "<div class=\"count\" data-state=\"{}\">{} <span class=\"n\">{n}</span></div>",
            esc(state),
            badge(state)
        );
    }
    out.push_str("</div>");
    out
}

// The summary ----------------------------------------------------------------

pub(crate) async fn summary(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let summary = s.summary_for(&v.caller, 50);
    let mut main = String::from("<h1>Fleet summary</h1>");
    main.push_str(&sites_table(&summary.sites));
    main.push_str("<div class=\"cards\">");
    main.push_str(&counts("clusters", "Clusters", &summary.links));
    main.push_str(&state_cards(&summary));
    main.push_str(&super::alerts::summary_card(&v));
    main.push_str("</div>");
    let not_live = summary.clusters - summary.links.get("connected").copied().unwrap_or(0);
    if not_live > 0 {
        let _ = write!(
            main,
            "<p class=\"notlive\">{not_live} of {} clusters not connected: their systems, groups and resources are counted with their last known states (<a href=\"/clusters\">which</a>).</p>",
            summary.clusters
        );
    }
    let _ = write!(
        main,
        "<h2>Needs attention ({})</h2>",
        summary.attention_total
    );
    if summary.attention.is_empty() {
        main.push_str("<p class=\"muted\">Nothing: every cluster is connected, nothing is faulted or frozen.</p>");
    } else {
        main.push_str(&attention_table(&summary.attention));
        if summary.attention_total > summary.attention.len() {
            let _ = write!(
                main,
                "<p><a href=\"/faults\">All {} →</a></p>",
                summary.attention_total
            );
        }
    }
    v.render("Summary", Some(ticks(None)), None, main)
}

/// The sites, when this server is paired with others: each with how its
/// link stands. A site that is not connected shows its clusters' last
/// known state, and says since when.
fn sites_table(sites: &[crate::peers::SiteSummary]) -> String {
    if sites.is_empty() {
        return String::new();
    }
    let now = crate::now_ms();
    let rows: Vec<Vec<String>> = sites
        .iter()
        .map(|site| {
            let state = badge(&site.state);
            let since = match (site.local, site.since_ms) {
                (true, _) => "this server".to_string(),
                (false, Some(ms)) => format!(
                    "{} <span class=\"muted\">({})</span>",
                    esc(&haven_model::clock::rfc3339(ms)),
                    ago(ms, now)
                ),
                (false, None) => String::new(),
            };
            let note = match site.state.as_str() {
                "unreachable" => format!(
                    "<span class=\"notlive\">not live: its clusters show their last known state{}</span>",
                    site.last_error
                        .as_ref()
                        .map(|e| format!(" ({})", esc(e)))
                        .unwrap_or_default()
                ),
                _ => String::new(),
            };
            vec![
                esc(&site.site),
                state,
                since,
                site.clusters.to_string(),
                note,
            ]
        })
        .collect();
    format!(
        "<h2>Sites</h2>{}",
        table("sites", &["Site", "State", "Since", "Clusters", ""], &rows)
    )
}

/// The cards of a summary's system, group and resource states.
pub(super) fn state_cards(summary: &crate::fleet::Summary) -> String {
    counts("systems", "Systems", &summary.systems)
        + &counts(
            "groups",
            &format!("Groups ({}) — states per system", summary.groups),
            &summary.group_states,
        )
        + &counts(
            "resources",
            &format!("Resources ({}) — states per system", summary.resources),
            &summary.resource_states,
        )
}

/// The badge of the state `states` gives `system` (empty when none).
pub(super) fn state_on<S: std::fmt::Display>(states: &[(Name, S)], system: &str) -> String {
    states
        .iter()
        .find(|(s, _)| &**s == system)
        .map(|(_, st)| badge(&st.to_string()))
        .unwrap_or_default()
}

/// The groups × systems matrix of a cluster: its head, and a row per
/// group of `groups` whose first cell is `first(group)`.
pub(super) fn group_matrix<'a>(
    snap: &'a ClusterSnapshot,
    groups: &[&GroupStatus],
    first: impl Fn(&GroupStatus) -> String,
) -> (Vec<&'a str>, Vec<Vec<String>>) {
    let mut head: Vec<&str> = vec!["Group"];
    head.extend(snap.systems.iter().map(|s| &*s.name));
    let rows = groups
        .iter()
        .map(|g| {
            let mut row = vec![first(g)];
            row.extend(
                snap.systems
                    .iter()
                    .map(|sys| state_on(&g.states, &sys.name)),
            );
            row
        })
        .collect();
    (head, rows)
}

fn attention_table(items: &[crate::fleet::Attention]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            let object = match (a.kind.as_str(), &a.object) {
                ("faulted_resource", Some(o)) => resource_link(&a.cluster, o),
                (_, Some(o)) if a.kind.contains("group") || a.kind == "concurrency_violation" => {
                    group_link(&a.cluster, o)
                }
                (_, Some(o)) => esc(o),
                (_, None) => String::new(),
            };
            let system = a
                .system
                .as_deref()
                .map(|s| system_link(&a.cluster, s))
                .unwrap_or_default();
            vec![
                badge(&a.kind.replace('_', " ").to_uppercase()),
                cluster_link(&a.cluster),
                object,
                system,
            ]
        })
        .collect();
    table("attention", &["What", "Cluster", "Object", "System"], &rows)
}

pub(crate) async fn faults(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let page = q.page.unwrap_or(0);
    // A huge ?page= reads nothing rather than overflowing.
    let want = page.saturating_add(1).saturating_mul(PAGE);
    let filters = match crate::tags::parse_filters(q.tag.as_deref()) {
        Ok(f) => f,
        Err(e) => return v.refuse("Faults", crate::api::ApiError::bad_request(e), ""),
    };
    let (items, total) = match &v.sight {
        None => s.fleet.attention_tagged(want, &filters),
        Some(l) => s.fleet.seen_by(l).attention_tagged(want, &filters),
    };
    let shown: Vec<_> = items.into_iter().skip(page.saturating_mul(PAGE)).collect();
    let mut main = format!(
        "<h1>Needs attention ({total})</h1>{}",
        tag_filter("/faults", q.tag.as_deref(), "")
    );
    if shown.is_empty() {
        main.push_str("<p class=\"muted\">Nothing needs attention.</p>");
    } else {
        main.push_str(&attention_table(&shown));
        main.push_str(&pager(
            &format!("/faults?tag={}", seg(q.tag.as_deref().unwrap_or(""))),
            page,
            PAGE,
            Rows::Counted(total),
        ));
    }
    v.render("Faults", Some(ticks(None)), None, main)
}

// Clusters -----------------------------------------------------------------------

pub(crate) async fn clusters(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let mut all: Vec<ClusterInfo> = match &v.sight {
        None => s.fleet.clusters(),
        Some(l) => s.fleet.seen_by(l).clusters(),
    };
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        let text = text.to_lowercase();
        all.retain(|c| c.name.to_lowercase().contains(&text));
    }
    if let Some(state) = q.state.as_deref().filter(|t| !t.is_empty()) {
        all.retain(|c| c.link.shown().as_str() == state);
    }
    match crate::tags::parse_filters(q.tag.as_deref()) {
        Ok(filters) => all.retain(|c| filters.iter().all(|f| f.matches(&c.tags))),
        Err(e) => return v.refuse("Clusters", crate::api::ApiError::bad_request(e), ""),
    }
    let total = all.len();
    let page = q.page.unwrap_or(0);
    let rows: Vec<Vec<String>> = all
        .iter()
        .skip(page.saturating_mul(PAGE))
        .take(PAGE)
        .map(|c| {
            vec![
                cluster_link(&c.name),
                link_badge(&c.link),
                esc(&c.link.mode),
                c.systems.to_string(),
                c.groups.to_string(),
                c.resources.to_string(),
                if c.faulted_groups > 0 {
                    badge(&format!("{} FAULTED", c.faulted_groups))
                } else {
                    String::new()
                },
                tag_list(&c.tags),
            ]
        })
        .collect();
    let filter = format!(
        "<form class=\"filter\" action=\"/clusters\"><input name=\"q\" value=\"{}\" placeholder=\"name contains\" aria-label=\"Filter by name\">\
<select name=\"state\" aria-label=\"Link state\"><option value=\"\">any link</option>{}</select>\
<input name=\"tag\" id=\"tagfilter\" value=\"{}\" placeholder=\"tag key=value\" aria-label=\"Filter by tag\"><button>Filter</button></form>",
        esc(q.q.as_deref().unwrap_or("")),
        ["connected", "connecting", "stale", "disconnected"]
            .iter()
            .map(|st| format!(
                "<option{}>{st}</option>",
                if q.state.as_deref() == Some(st) { " selected" } else { "" }
            ))
            .collect::<String>(),
        esc(q.tag.as_deref().unwrap_or(""))
    );
    let base = format!(
        "/clusters?q={}&state={}&tag={}",
        seg(q.q.as_deref().unwrap_or("")),
        seg(q.state.as_deref().unwrap_or("")),
        seg(q.tag.as_deref().unwrap_or(""))
    );
    let main = format!(
        "<h1>Clusters ({total})</h1>{filter}{}{}",
        table(
            "clusters",
            &[
                "Cluster",
                "Link",
                "Mode",
                "Systems",
                "Groups",
                "Resources",
                "Faults",
                "Tags"
            ],
            &rows
        ),
        pager(&base, page, PAGE, Rows::Counted(total))
    );
    v.render("Clusters", Some(ticks(None)), None, main)
}

/// How a page about one cluster shows its link: a line with the link's
/// state; when the states are not live, a banner saying so, tables greyed
/// (`stale`) and headings marked "last known".
struct LinkView {
    line: String,
    banner: Option<String>,
    /// A table class: `" stale"` or nothing.
    stale: &'static str,
    /// After a heading: `" — last known, not live"` or nothing.
    known: &'static str,
}

impl LinkView {
    /// A heading (HTML) and a table of states under it, both marked when
    /// the states are not live.
    fn states(&self, heading: &str, class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
        format!(
            "<h2>{heading}{}</h2>{}",
            self.known,
            table(&format!("{class}{}", self.stale), head, rows)
        )
    }
}

fn link_view(link: &LinkStatus, now: i64) -> LinkView {
    let mut line = format!(
        "<p class=\"link\">Link {} since {} · {} to {}",
        link_badge(link),
        esc(&ago(link.since_ms, now)),
        esc(&link.mode),
        esc(&link.address)
    );
    if let Some(e) = &link.last_error {
        let _ = write!(line, " · <span class=\"error\">{}</span>", esc(e));
    }
    if let Some(events) = link.backlog_events {
        let _ = write!(line, " · connector backlog {events} events");
    }
    line.push_str("</p>");
    let live = link.state == LinkState::Connected;
    let banner = if link.is_down() {
        let mut why = Vec::new();
        if link.failures > 0 {
            why.push(format!("{} failed attempts", link.failures));
        }
        if let Some(e) = &link.last_error {
            why.push(format!("last error: {e}"));
        }
        Some(format!(
            "This cluster is disconnected: the states below are the last known, not live. The server keeps trying to reach it{}.",
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        ))
    } else {
        match link.state {
            LinkState::Connected => None,
            LinkState::Stale => Some(format!(
                "The link to this cluster is stale: nothing heard from it since {}. The states below are the last known, not live.",
                ago(link.since_ms, now)
            )),
            _ => Some("This cluster is not connected yet: the states below, if any, are the last known, not live.".into()),
        }
    };
    LinkView {
        line,
        banner,
        stale: if live { "" } else { " stale" },
        known: if live {
            ""
        } else {
            " — last known, not live"
        },
    }
}

pub(super) fn flags(freeze: haven_model::Freeze, enabled: bool) -> String {
    let mut out = String::new();
    if freeze.is_frozen() {
        let _ = write!(
            out,
            " <span class=\"frozen\">❄ frozen ({})</span>",
            freeze.as_str()
        );
    }
    if !enabled {
        out.push_str(" <span class=\"disabled\">⊘ disabled</span>");
    }
    out
}

pub(crate) async fn cluster(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let Some(link) = s.fleet.link(&name).filter(|_| v.sees_cluster(&name)) else {
        return not_found(&v, &format!("No cluster named {name}."));
    };
    let lv = link_view(&link, crate::now_ms());
    let mut main = format!("<h1>Cluster {}</h1>{}", esc(&name), lv.line);
    main.push_str(&super::tags::block(
        &v,
        &crate::tags::Object {
            cluster: name.clone(),
            kind: crate::tags::Kind::Cluster,
            name: String::new(),
        },
    ));
    let Some(snap) = s.fleet.snapshot(&name) else {
        main.push_str("<p class=\"muted\">No state yet: the link has not synchronised.</p>");
        return v.render(&name, Some(ticks(Some(&name))), lv.banner, main);
    };
    // Systems, with their operations.
    let mut offer = Offer::new(&v, &name, &link);
    let rows: Vec<Vec<String>> = snap
        .systems
        .iter()
        .map(|sys| {
            vec![
                system_link(&name, &sys.name),
                badge(sys.state.as_str()) + &flags(sys.freeze, true),
                offer.buttons(system_ops(&sys.name, sys.freeze.is_frozen())),
            ]
        })
        .collect();
    main.push_str(&lv.states("Systems", "systems", &["System", "State", ""], &rows));
    main.push_str(&offer.note());
    // Groups × systems.
    let groups: Vec<_> = snap
        .groups
        .iter()
        .filter(|g| v.sees_group(&name, &g.name))
        .collect();
    let (head, rows) = group_matrix(&snap, &groups, |g| {
        group_link(&name, &g.name) + &flags(g.freeze, g.enabled)
    });
    main.push_str(&lv.states(
        &format!("Service groups ({})", groups.len()),
        "matrix",
        &head,
        &rows,
    ));
    main.push_str(&super::alerts::cluster_section(&v, &name));
    v.render(&name, Some(ticks(Some(&name))), lv.banner, main)
}

/// A system's operations: unfreeze when frozen, else freeze (with or
/// without evacuation).
fn system_ops(system: &str, frozen: bool) -> Vec<Op> {
    let system: Name = system.into();
    if frozen {
        return vec![Op::new(
            "Unfreeze",
            Operation::SystemUnfreeze {
                system: system.clone(),
            },
        )];
    }
    vec![
        Op::new(
            "Freeze",
            Operation::SystemFreeze {
                system: system.clone(),
                persistent: false,
                evacuate: false,
            },
        )
        .confirm(format!("Freeze {system}: no group will go online on it")),
        Op::new(
            "Freeze and evacuate",
            Operation::SystemFreeze {
                system: system.clone(),
                persistent: false,
                evacuate: true,
            },
        )
        .confirm(format!(
            "Switch every failover group away from {system}, then freeze it"
        )),
    ]
}

// A group -----------------------------------------------------------------------

pub(crate) async fn group(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Path((cluster, group)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let Some((link, snap)) = seen_cluster(&v, &cluster).filter(|_| v.sees_group(&cluster, &group))
    else {
        return not_found(&v, &format!("No group {group} in a cluster {cluster}."));
    };
    let (Some(status), Some(config)) = (snap.group(&group), snap.config.group(&group)) else {
        return not_found(&v, &format!("Cluster {cluster} has no group {group}."));
    };
    let lv = link_view(&link, crate::now_ms());
    let mut main = format!(
        "<h1>Group {} <span class=\"muted\">of</span> {}</h1>{}<p>{} group{}</p>",
        esc(&group),
        cluster_link(&cluster),
        lv.line,
        if config.parallel {
            "Parallel"
        } else {
            "Failover"
        },
        flags(status.freeze, status.enabled)
    );
    main.push_str(&super::tags::block(
        &v,
        &crate::tags::Object {
            cluster: cluster.clone(),
            kind: crate::tags::Kind::Group,
            name: group.clone(),
        },
    ));
    // Group operations.
    let mut offer = Offer::new(&v, &cluster, &link);
    let g: Name = group.as_str().into();
    let mut ops = String::new();
    let switch = Operation::GroupSwitch {
        group: g.clone(),
        to: None,
    };
    if !config.parallel && offer.offers("Switch", &switch) {
        let pick_id = "switchto";
        let options: String = config
            .system_list
            .iter()
            .map(|(sys, _)| format!("<option value=\"{0}\">{0}</option>", esc(sys)))
            .collect();
        let _ = write!(
            ops,
            "<select id=\"{pick_id}\" aria-label=\"Switch to\"><option value=\"\">next eligible system</option>{options}</select>{}",
            op_button("Switch", &cluster, &switch, Some(&format!("Switch {group}"))).replacen(
                "class=\"op\"",
                &format!("class=\"op\" data-pick=\"{pick_id}\""),
                1,
            )
        );
    }
    let frozen = status.freeze.is_frozen();
    let mut candidates = vec![Op::new(
        "Offline everywhere",
        Operation::GroupOffline {
            group: g.clone(),
            system: None,
        },
    )
    .confirm(format!("Take {group} offline on every system"))];
    if frozen {
        candidates.push(Op::new(
            "Unfreeze",
            Operation::GroupUnfreeze { group: g.clone() },
        ));
    } else {
        candidates.push(Op::new(
            "Freeze",
            Operation::GroupFreeze {
                group: g.clone(),
                persistent: false,
            },
        ));
        candidates.push(
            Op::new(
                "Freeze persistently",
                Operation::GroupFreeze {
                    group: g.clone(),
                    persistent: true,
                },
            )
            .confirm(format!("Freeze {group} persistently (kept in main.cf)")),
        );
    }
    candidates.push(Op::new(
        "Clear faults",
        Operation::GroupClear {
            group: g.clone(),
            system: None,
        },
    ));
    candidates.push(
        Op::new(
            "Flush",
            Operation::GroupFlush {
                group: g.clone(),
                system: None,
            },
        )
        .confirm(format!("Cancel what {group} is doing and probe again")),
    );
    candidates.push(if status.enabled {
        Op::new("Disable", Operation::GroupDisable { group: g.clone() })
            .confirm(format!("Disable {group}: it will not go online anywhere"))
    } else {
        Op::new("Enable", Operation::GroupEnable { group: g.clone() })
    });
    ops.push_str(&offer.buttons(candidates));
    if !ops.is_empty() {
        let _ = write!(main, "<h2>Operations</h2><p class=\"ops\">{ops}</p>");
    }
    // State per system, with per-system operations (those that would
    // change something there).
    let rows: Vec<Vec<String>> = status
        .states
        .iter()
        .map(|(sys, st)| {
            let mut per = Vec::new();
            if matches!(st, GroupState::Offline | GroupState::Partial) {
                per.push(Op::new(
                    "Online here",
                    Operation::GroupOnline {
                        group: g.clone(),
                        system: Some(sys.clone()),
                    },
                ));
            }
            if matches!(
                st,
                GroupState::Online | GroupState::Partial | GroupState::Starting
            ) {
                per.push(
                    Op::new(
                        "Offline here",
                        Operation::GroupOffline {
                            group: g.clone(),
                            system: Some(sys.clone()),
                        },
                    )
                    .confirm(format!("Take {group} offline on {sys}")),
                );
            }
            if *st == GroupState::Faulted {
                per.push(Op::new(
                    "Clear here",
                    Operation::GroupClear {
                        group: g.clone(),
                        system: Some(sys.clone()),
                    },
                ));
            }
            vec![
                system_link(&cluster, sys),
                badge(st.as_str()),
                offer.buttons(per),
            ]
        })
        .collect();
    main.push_str(&lv.states(
        "State per system",
        "states",
        &["System", "State", ""],
        &rows,
    ));
    main.push_str(&offer.note());
    // Resources as a dependency graph.
    let _ = write!(
        main,
        "<h2>Resources ({}){}</h2>",
        status.resources.len(),
        lv.known
    );
    main.push_str(&resource_graph(&cluster, config, status));
    // Attributes.
    main.push_str(&attributes(&config.attributes));
    main.push_str(&recent_history(&s, &cluster, &group).await);
    v.render(
        &format!("{group} · {cluster}"),
        Some(ticks(Some(&cluster))),
        lv.banner,
        main,
    )
}

/// An object's attributes as a table (`Name@system` for localised ones).
fn attributes(attrs: &[haven_model::Attr]) -> String {
    if attrs.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = attrs
        .iter()
        .map(|a| {
            let at = a
                .system
                .as_deref()
                .map(|s| format!("@{}", esc(s)))
                .unwrap_or_default();
            vec![
                esc(&a.name) + &at,
                esc(&serde_json::to_string(&a.value).unwrap_or_default()),
            ]
        })
        .collect();
    format!(
        "<h2>Attributes</h2>{}",
        table("attrs", &["Attribute", "Value"], &rows)
    )
}

/// The resources of a group as a tree: each resource, the ones it
/// requires indented below it (top-level: required by nobody).
fn resource_graph(
    cluster: &str,
    config: &haven_model::GroupConfig,
    status: &haven_model::GroupStatus,
) -> String {
    let children = |parent: &str| -> Vec<Name> {
        config
            .dependencies
            .iter()
            .filter(|d| &*d.parent == parent)
            .map(|d| d.child.clone())
            .collect()
    };
    let roots: Vec<&Name> = config
        .resources
        .iter()
        .map(|r| &r.name)
        .filter(|r| !config.dependencies.iter().any(|d| &d.child == *r))
        .collect();
    let line = |name: &str| -> String {
        let ty = config
            .resource(name)
            .map(|r| r.type_name.to_string())
            .unwrap_or_default();
        let states: String = status
            .resources
            .iter()
            .find(|r| &*r.name == name)
            .map(|r| {
                r.states
                    .iter()
                    .map(|(sys, st)| format!("{}:{}", esc(sys), badge(st.as_str())))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        format!(
            "{} <span class=\"muted\">{}</span> {states}",
            resource_link(cluster, name),
            esc(&ty)
        )
    };
    let mut out = String::from("<div class=\"graph\">");
    let mut seen = std::collections::HashSet::new();
    fn walk(
        name: &str,
        depth: usize,
        out: &mut String,
        seen: &mut std::collections::HashSet<String>,
        line: &dyn Fn(&str) -> String,
        children: &dyn Fn(&str) -> Vec<Name>,
    ) {
        let indent = if depth == 0 {
            String::new()
        } else {
            format!("{}└ requires ", "   ".repeat(depth - 1))
        };
        let _ = writeln!(out, "{indent}{}", line(name));
        if depth > 16 || !seen.insert(name.to_string()) {
            return;
        }
        for child in children(name) {
            walk(&child, depth + 1, out, seen, line, children);
        }
    }
    for root in roots {
        walk(root, 0, &mut out, &mut seen, &line, &children);
    }
    out.push_str("</div>");
    out
}

/// The last events about an object, from history.
async fn recent_history(s: &Arc<Server>, cluster: &str, object: &str) -> String {
    let query = haven_store::HistoryQuery {
        cluster: Some(cluster.to_string()),
        object: Some(object.to_string()),
        limit: 20,
        ..Default::default()
    };
    let rows = s
        .read(move |store| haven_store::Store::history(store, &query))
        .await
        .unwrap_or_default();
    if rows.is_empty() {
        return "<h2>Recent history</h2><p class=\"muted\">None recorded.</p>".into();
    }
    let now = crate::now_ms();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| vec![esc(&ago(r.event.time_ms, now)), describe(&r.event.kind)])
        .collect();
    format!(
        "<h2>Recent history</h2>{}",
        table("history", &["When", "What"], &rows)
    )
}

pub(super) fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::ResourceState {
            resource,
            system,
            from,
            to,
            ..
        } => format!(
            "{} on {}: {} → {}",
            esc(resource),
            esc(system),
            badge(from.as_str()),
            badge(to.as_str())
        ),
        EventKind::GroupState {
            group,
            system,
            from,
            to,
        } => format!(
            "{} on {}: {} → {}",
            esc(group),
            esc(system),
            badge(from.as_str()),
            badge(to.as_str())
        ),
        EventKind::SystemState { system, from, to } => format!(
            "system {}: {} → {}",
            esc(system),
            badge(from.as_str()),
            badge(to.as_str())
        ),
        EventKind::GroupFreeze { group, freeze } => {
            format!("{} freeze: {}", esc(group), esc(freeze.as_str()))
        }
        EventKind::SystemFreeze { system, freeze } => {
            format!("system {} freeze: {}", esc(system), esc(freeze.as_str()))
        }
        EventKind::GroupEnabled { group, enabled } => format!(
            "{} {}",
            esc(group),
            if *enabled { "enabled" } else { "disabled" }
        ),
        EventKind::ConcurrencyViolation { group, systems } => format!(
            "{} {} on {}",
            esc(group),
            badge("CONCURRENCY"),
            esc(&systems
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "))
        ),
        EventKind::Failover {
            group,
            from,
            to,
            reason,
        } => format!(
            "{} failover from {} to {}: {}",
            esc(group),
            esc(from),
            esc(to.as_deref().unwrap_or("nowhere")),
            esc(reason)
        ),
        EventKind::Notice {
            severity, message, ..
        } => format!(
            "{}: {}",
            esc(&format!("{severity:?}").to_lowercase()),
            esc(message)
        ),
    }
}

/// A cluster the viewer may see, with its link and state (None: unknown,
/// not theirs, or not synchronised yet).
fn seen_cluster(v: &Viewer, cluster: &str) -> Option<(LinkStatus, ClusterSnapshot)> {
    let link = v
        .server
        .fleet
        .link(cluster)
        .filter(|_| v.sees_cluster(cluster))?;
    Some((link, v.server.fleet.snapshot(cluster)?))
}

// A resource ----------------------------------------------------------------------

pub(crate) async fn resource(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Path((cluster, resource)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let Some((link, snap)) = seen_cluster(&v, &cluster) else {
        return not_found(&v, &format!("No cluster named {cluster}."));
    };
    let Some((gconf, rconf)) = snap
        .config
        .resource(&resource)
        .filter(|(g, _)| v.sees_group(&cluster, &g.name))
    else {
        return not_found(
            &v,
            &format!("Cluster {cluster} has no resource {resource}."),
        );
    };
    let group = gconf.name.to_string();
    let lv = link_view(&link, crate::now_ms());
    let states = snap
        .group(&group)
        .and_then(|g| g.resources.iter().find(|r| *r.name == *resource))
        .map(|r| r.states.clone())
        .unwrap_or_default();
    let mut main = format!(
        "<h1>Resource {} <span class=\"muted\">({}) of group</span> {} <span class=\"muted\">in</span> {}</h1>{}",
        esc(&resource),
        esc(&rconf.type_name),
        group_link(&cluster, &group),
        cluster_link(&cluster),
        lv.line
    );
    let r: Name = resource.as_str().into();
    let mut offer = Offer::new(&v, &cluster, &link);
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|(sys, st)| {
            // The operations that would change something in this state.
            let mut per = Vec::new();
            if *st == ResourceState::Offline {
                per.push(Op::new(
                    "Online",
                    Operation::ResourceOnline {
                        resource: r.clone(),
                        system: sys.clone(),
                    },
                ));
            }
            if *st == ResourceState::Online {
                per.push(
                    Op::new(
                        "Offline",
                        Operation::ResourceOffline {
                            resource: r.clone(),
                            system: sys.clone(),
                        },
                    )
                    .confirm(format!("Take {resource} offline on {sys}")),
                );
            }
            per.push(Op::new(
                "Probe",
                Operation::ResourceProbe {
                    resource: r.clone(),
                    system: sys.clone(),
                },
            ));
            if *st == ResourceState::Faulted {
                per.push(Op::new(
                    "Clear",
                    Operation::ResourceClear {
                        resource: r.clone(),
                        system: Some(sys.clone()),
                    },
                ));
            }
            vec![
                system_link(&cluster, sys),
                badge(st.as_str()),
                offer.buttons(per),
            ]
        })
        .collect();
    main.push_str(&lv.states(
        "State per system",
        "states",
        &["System", "State", ""],
        &rows,
    ));
    main.push_str(&offer.note());
    let requires: Vec<String> = gconf
        .dependencies
        .iter()
        .filter(|d| *d.parent == *resource)
        .map(|d| resource_link(&cluster, &d.child))
        .collect();
    let required_by: Vec<String> = gconf
        .dependencies
        .iter()
        .filter(|d| *d.child == *resource)
        .map(|d| resource_link(&cluster, &d.parent))
        .collect();
    let or_nothing = |links: Vec<String>| {
        if links.is_empty() {
            "nothing".into()
        } else {
            links.join(", ")
        }
    };
    let _ = write!(
        main,
        "<h2>Dependencies</h2><p>Requires: {}<br>Required by: {}</p>",
        or_nothing(requires),
        or_nothing(required_by)
    );
    main.push_str(&attributes(&rconf.attributes));
    main.push_str(&recent_history(&s, &cluster, &resource).await);
    v.render(
        &format!("{resource} · {cluster}"),
        Some(ticks(Some(&cluster))),
        lv.banner,
        main,
    )
}

// A system --------------------------------------------------------------------------

pub(crate) async fn system(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Path((cluster, system)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let Some((link, snap)) = seen_cluster(&v, &cluster) else {
        return not_found(&v, &format!("No cluster named {cluster}."));
    };
    let Some(status) = snap.system(&system).cloned() else {
        return not_found(&v, &format!("Cluster {cluster} has no system {system}."));
    };
    let lv = link_view(&link, crate::now_ms());
    let mut offer = Offer::new(&v, &cluster, &link);
    let mut main = format!(
        "<h1>System {} <span class=\"muted\">of</span> {}</h1>{}<p>{}{}{}</p><p class=\"ops\">{}</p>",
        esc(&system),
        cluster_link(&cluster),
        lv.line,
        badge(status.state.as_str()),
        flags(status.freeze, true),
        lv.known,
        offer.buttons(system_ops(&system, status.freeze.is_frozen()))
    );
    main.push_str(&offer.note());
    main.push_str(&super::tags::block(
        &v,
        &crate::tags::Object {
            cluster: cluster.clone(),
            kind: crate::tags::Kind::System,
            name: system.clone(),
        },
    ));
    let rows: Vec<Vec<String>> = groups_on(&snap, &system)
        .into_iter()
        .filter(|(g, _)| v.sees_group(&cluster, g))
        .map(|(g, st)| vec![group_link(&cluster, &g), badge(st.as_str())])
        .collect();
    main.push_str(&lv.states(
        &format!("Groups on {}", esc(&system)),
        "states",
        &["Group", "State here"],
        &rows,
    ));
    main.push_str(&recent_history(&s, &cluster, &system).await);
    v.render(
        &format!("{system} · {cluster}"),
        Some(ticks(Some(&cluster))),
        lv.banner,
        main,
    )
}

fn groups_on(snap: &ClusterSnapshot, system: &str) -> Vec<(String, GroupState)> {
    snap.groups
        .iter()
        .filter_map(|g| {
            snap.group_state(&g.name, system)
                .map(|st| (g.name.to_string(), st))
        })
        .collect()
}

// Find ------------------------------------------------------------------------------------

pub(crate) async fn find(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let text = q.q.clone().unwrap_or_default();
    let text = text.trim();
    let saved = super::tags::saved_list(&v).await;
    if text.is_empty() {
        return v.render(
            "Find",
            None,
            None,
            format!(
                "<h1>Find</h1><p>Type a name, a tag (env=prod) or a filter (state:faulted) in the box above.</p>{}{saved}",
                super::tags::HELP
            ),
        );
    }
    let query = match crate::search::Query::parse(text) {
        Ok(q) => q,
        Err(e) => {
            return v.render(
                "Find",
                None,
                None,
                format!(
                    "<h1>Find “{}”</h1><p class=\"error\" id=\"queryerror\">{}</p>{}{saved}",
                    esc(text),
                    esc(&e),
                    super::tags::HELP
                ),
            )
        }
    };
    let hits = match &v.sight {
        None => s.fleet.search(&query, 200),
        Some(l) => s.fleet.seen_by(l).search(&query, 200),
    };
    let rows: Vec<Vec<String>> = hits
        .iter()
        .map(|h| {
            let link = match h.kind.as_str() {
                "cluster" => cluster_link(&h.cluster),
                "system" => system_link(&h.cluster, &h.name),
                "group" => group_link(&h.cluster, &h.name),
                _ => resource_link(&h.cluster, &h.name),
            };
            vec![
                esc(&h.kind),
                link,
                cluster_link(&h.cluster),
                h.resource_type.as_deref().map(esc).unwrap_or_default(),
                tag_list(&h.tags),
            ]
        })
        .collect();
    let main = format!(
        "<h1>Find “{}” ({} found{})</h1>{}{}{}{saved}",
        esc(text),
        hits.len(),
        if hits.len() >= 200 {
            ", the first 200"
        } else {
            ""
        },
        table("hits", &["Kind", "Name", "Cluster", "Type", "Tags"], &rows),
        super::tags::save_form(text),
        super::tags::HELP
    );
    v.render("Find", None, None, main)
}

/// Tags as small labels.
fn tag_list(tags: &crate::tags::TagSet) -> String {
    tags.iter()
        .map(|(k, v)| format!("<span class=\"tag\">{}={}</span>", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A one-field form filtering a list by tag.
fn tag_filter(action: &str, value: Option<&str>, extra: &str) -> String {
    format!(
        "<form class=\"filter\" action=\"{action}\">{extra}<input name=\"tag\" id=\"tagfilter\" value=\"{}\" placeholder=\"tag key=value\" aria-label=\"Filter by tag\"><button>Filter</button></form>",
        esc(value.unwrap_or(""))
    )
}
