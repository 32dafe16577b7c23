//! The console's pages.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use haven_model::{ClusterSnapshot, EventKind, GroupState, Name, Operation};
use serde::Deserialize;

use super::html::{ago, badge, esc, op_button, seg, table};
use super::Viewer;
use crate::auth::Caller;
use crate::fleet::{ClusterInfo, LinkState, LinkStatus};
use crate::Server;

type AppState = Arc<Server>;
type Caught = axum::Extension<Caller>;

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
}

impl PageQuery {
    fn fragment(&self) -> bool {
        self.fragment.is_some()
    }
}

/// Rows per page of long lists: the console never renders a fleet at once.
const PAGE: usize = 100;

fn not_found(v: &Viewer, what: &str) -> Response {
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

fn cluster_link(name: &str) -> String {
    format!("<a href=\"/c/{}\">{}</a>", seg(name), esc(name))
}

fn group_link(cluster: &str, group: &str) -> String {
    format!(
        "<a href=\"/c/{}/g/{}\">{}</a>",
        seg(cluster),
        seg(group),
        esc(group)
    )
}

fn resource_link(cluster: &str, resource: &str) -> String {
    format!(
        "<a href=\"/c/{}/r/{}\">{}</a>",
        seg(cluster),
        seg(resource),
        esc(resource)
    )
}

fn system_link(cluster: &str, system: &str) -> String {
    format!(
        "<a href=\"/c/{}/s/{}\">{}</a>",
        seg(cluster),
        seg(system),
        esc(system)
    )
}

fn link_badge(link: &LinkStatus) -> String {
    badge(link.state.as_str())
}

fn pager(base: &str, page: usize, total: usize) -> String {
    let pages = total.div_ceil(PAGE).max(1);
    let mut out = format!(
        "<p class=\"pager\">Page {} of {pages} ({total} in all). ",
        page + 1
    );
    let join = if base.contains('?') { '&' } else { '?' };
    if page > 0 {
        let _ = write!(
            out,
            "<a href=\"{base}{join}page={}\">← previous</a>",
            page - 1
        );
    }
    if page + 1 < pages {
        let _ = write!(out, "<a href=\"{base}{join}page={}\">next →</a>", page + 1);
    }
    out.push_str("</p>");
    out
}

fn counts(title: &str, items: &std::collections::BTreeMap<String, usize>) -> String {
    let total: usize = items.values().sum();
    let mut out = format!(
        "<div class=\"card\"><span>{}</span><b>{total}</b>",
        esc(title)
    );
    for (state, n) in items {
        let _ = write!(out, "{} {n}<br>", badge(state));
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
    let summary = match &v.sight {
        None => s.fleet.summary(50),
        Some(l) => s.fleet.seen_by(l).summary(50),
    };
    let mut main = String::from("<h1>Fleet summary</h1><div class=\"cards\">");
    main.push_str(&counts("Clusters", &summary.links));
    main.push_str(&counts("Systems", &summary.systems));
    let _ = write!(
        main,
        "{}",
        counts("Group states", &summary.group_states).replacen(
            "<span>Group states</span>",
            &format!(
                "<span>Groups ({}) — states per system</span>",
                summary.groups
            ),
            1,
        )
    );
    let _ = write!(
        main,
        "{}",
        counts("Resource states", &summary.resource_states).replacen(
            "<span>Resource states</span>",
            &format!(
                "<span>Resources ({}) — states per system</span>",
                summary.resources
            ),
            1,
        )
    );
    main.push_str("</div>");
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
    let want = (page + 1) * PAGE;
    let (items, total) = match &v.sight {
        None => s.fleet.attention(want),
        Some(l) => s.fleet.seen_by(l).attention(want),
    };
    let shown: Vec<_> = items.into_iter().skip(page * PAGE).collect();
    let mut main = format!("<h1>Needs attention ({total})</h1>");
    if shown.is_empty() {
        main.push_str("<p class=\"muted\">Nothing needs attention.</p>");
    } else {
        main.push_str(&attention_table(&shown));
        main.push_str(&pager("/faults", page, total));
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
        all.retain(|c| c.link.state.as_str() == state);
    }
    let total = all.len();
    let page = q.page.unwrap_or(0);
    let rows: Vec<Vec<String>> = all
        .iter()
        .skip(page * PAGE)
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
            ]
        })
        .collect();
    let filter = format!(
        "<form class=\"filter\" action=\"/clusters\"><input name=\"q\" value=\"{}\" placeholder=\"name contains\" aria-label=\"Filter by name\">\
<select name=\"state\" aria-label=\"Link state\"><option value=\"\">any link</option>{}</select><button>Filter</button></form>",
        esc(q.q.as_deref().unwrap_or("")),
        ["connected", "connecting", "stale", "disconnected"]
            .iter()
            .map(|st| format!(
                "<option{}>{st}</option>",
                if q.state.as_deref() == Some(st) { " selected" } else { "" }
            ))
            .collect::<String>()
    );
    let base = format!(
        "/clusters?q={}&state={}",
        seg(q.q.as_deref().unwrap_or("")),
        seg(q.state.as_deref().unwrap_or(""))
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
                "Faults"
            ],
            &rows
        ),
        pager(&base, page, total)
    );
    v.render("Clusters", Some(ticks(None)), None, main)
}

/// The link line of a cluster page, and a banner when its states are not
/// live.
fn link_line(link: &LinkStatus, now: i64) -> (String, Option<String>) {
    let mut line = format!(
        "<p>Link {} since {} · {} to {}",
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
    let banner = (link.state != LinkState::Connected).then(|| {
        format!(
            "The link to this cluster is {} ({}): the states below are the last known, not live.",
            link.state.as_str(),
            ago(link.since_ms, now)
        )
    });
    (line, banner)
}

fn flags(freeze: haven_model::Freeze, enabled: bool) -> String {
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
    let now = crate::now_ms();
    let (line, banner) = link_line(&link, now);
    let mut main = format!("<h1>Cluster {}</h1>{line}", esc(&name));
    let Some(snap) = s.fleet.snapshot(&name) else {
        main.push_str("<p class=\"muted\">No state yet: the link has not synchronised.</p>");
        return v.render(&name, Some(ticks(Some(&name))), banner, main);
    };
    let stale = if link.state == LinkState::Connected {
        ""
    } else {
        " stale"
    };
    // Systems, with their operations.
    let rows: Vec<Vec<String>> = snap
        .systems
        .iter()
        .map(|sys| {
            vec![
                system_link(&name, &sys.name),
                badge(sys.state.as_str()) + &flags(sys.freeze, true),
                system_ops(&v, &name, &sys.name, sys.freeze.is_frozen()),
            ]
        })
        .collect();
    let _ = write!(
        main,
        "<h2>Systems</h2>{}",
        table(&format!("systems{stale}"), &["System", "State", ""], &rows)
    );
    // Groups × systems.
    let groups: Vec<_> = snap
        .groups
        .iter()
        .filter(|g| v.sees_group(&name, &g.name))
        .collect();
    let mut head: Vec<&str> = vec!["Group"];
    head.extend(snap.systems.iter().map(|s| &*s.name));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut row = vec![group_link(&name, &g.name) + &flags(g.freeze, g.enabled)];
            for sys in &snap.systems {
                row.push(
                    g.states
                        .iter()
                        .find(|(s, _)| *s == sys.name)
                        .map(|(_, st)| badge(st.as_str()))
                        .unwrap_or_default(),
                );
            }
            row
        })
        .collect();
    let _ = write!(
        main,
        "<h2>Service groups ({})</h2>{}",
        groups.len(),
        table(&format!("matrix{stale}"), &head, &rows)
    );
    v.render(&name, Some(ticks(Some(&name))), banner, main)
}

fn system_ops(v: &Viewer, cluster: &str, system: &str, frozen: bool) -> String {
    let target = format!("{cluster}/{system}");
    let mut out = String::new();
    let ops = if frozen {
        vec![(
            "Unfreeze",
            Operation::SystemUnfreeze {
                system: system.into(),
            },
            None,
            format!("haven system unfreeze {target} --wait"),
        )]
    } else {
        vec![
            (
                "Freeze",
                Operation::SystemFreeze {
                    system: system.into(),
                    persistent: false,
                    evacuate: false,
                },
                Some(format!("Freeze {system}: no group will go online on it")),
                format!("haven system freeze {target} --wait"),
            ),
            (
                "Freeze and evacuate",
                Operation::SystemFreeze {
                    system: system.into(),
                    persistent: false,
                    evacuate: true,
                },
                Some(format!(
                    "Switch every failover group away from {system}, then freeze it"
                )),
                format!("haven system freeze {target} --evacuate --wait"),
            ),
        ]
    };
    for (label, op, confirm, cli) in ops {
        if v.may(cluster, &op) {
            out.push_str(&op_button(label, cluster, &op, confirm.as_deref(), &cli));
        }
    }
    out
}

// A group -----------------------------------------------------------------------

pub(crate) async fn group(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Path((cluster, group)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    let found = s
        .fleet
        .link(&cluster)
        .filter(|_| v.sees_cluster(&cluster) && v.sees_group(&cluster, &group))
        .and_then(|link| s.fleet.snapshot(&cluster).map(|snap| (link, snap)));
    let Some((link, snap)) = found else {
        return not_found(&v, &format!("No group {group} in a cluster {cluster}."));
    };
    let (Some(status), Some(config)) = (snap.group(&group), snap.config.group(&group)) else {
        return not_found(&v, &format!("Cluster {cluster} has no group {group}."));
    };
    let now = crate::now_ms();
    let (line, banner) = link_line(&link, now);
    let target = format!("{cluster}/{group}");
    let stale = if link.state == LinkState::Connected {
        ""
    } else {
        " stale"
    };
    let mut main = format!(
        "<h1>Group {} <span class=\"muted\">of</span> {}</h1>{line}<p>{} group{}</p>",
        esc(&group),
        cluster_link(&cluster),
        if config.parallel {
            "Parallel"
        } else {
            "Failover"
        },
        flags(status.freeze, status.enabled)
    );
    // Group operations.
    let pick_id = "switchto";
    let mut ops = String::new();
    let switch = Operation::GroupSwitch {
        group: group.as_str().into(),
        to: None,
    };
    if !config.parallel && v.may(&cluster, &switch) {
        let options: String = config
            .system_list
            .iter()
            .map(|(sys, _)| format!("<option value=\"{0}\">{0}</option>", esc(sys)))
            .collect();
        let _ = write!(
            ops,
            "<select id=\"{pick_id}\" aria-label=\"Switch to\"><option value=\"\">next eligible system</option>{options}</select>"
        );
        ops.push_str(
            &op_button(
                "Switch",
                &cluster,
                &switch,
                Some(&format!("Switch {group}")),
                &format!("haven group switch {target} --wait"),
            )
            .replacen(
                "class=\"op\"",
                &format!("class=\"op\" data-pick=\"{pick_id}\""),
                1,
            ),
        );
    }
    let g: Name = group.as_str().into();
    let candidates: Vec<(&str, Operation, Option<String>, String)> = vec![
        (
            "Offline everywhere",
            Operation::GroupOffline {
                group: g.clone(),
                system: None,
            },
            Some(format!("Take {group} offline on every system")),
            format!("haven group offline {target} --wait"),
        ),
        if status.freeze.is_frozen() {
            (
                "Unfreeze",
                Operation::GroupUnfreeze { group: g.clone() },
                None,
                format!("haven group unfreeze {target}"),
            )
        } else {
            (
                "Freeze",
                Operation::GroupFreeze {
                    group: g.clone(),
                    persistent: false,
                },
                None,
                format!("haven group freeze {target}"),
            )
        },
        (
            "Freeze persistently",
            Operation::GroupFreeze {
                group: g.clone(),
                persistent: true,
            },
            Some(format!("Freeze {group} persistently (kept in main.cf)")),
            format!("haven group freeze {target} --persistent"),
        ),
        (
            "Clear faults",
            Operation::GroupClear {
                group: g.clone(),
                system: None,
            },
            None,
            format!("haven group clear {target} --wait"),
        ),
        (
            "Flush",
            Operation::GroupFlush {
                group: g.clone(),
                system: None,
            },
            Some(format!("Cancel what {group} is doing and probe again")),
            format!("haven group flush {target} --wait"),
        ),
        if status.enabled {
            (
                "Disable",
                Operation::GroupDisable { group: g.clone() },
                Some(format!("Disable {group}: it will not go online anywhere")),
                format!("haven group disable {target}"),
            )
        } else {
            (
                "Enable",
                Operation::GroupEnable { group: g.clone() },
                None,
                format!("haven group enable {target}"),
            )
        },
    ];
    for (label, op, confirm, cli) in candidates {
        if status.freeze.is_frozen()
            && matches!(
                op,
                Operation::GroupFreeze {
                    persistent: true,
                    ..
                }
            )
        {
            continue;
        }
        if v.may(&cluster, &op) {
            ops.push_str(&op_button(label, &cluster, &op, confirm.as_deref(), &cli));
        }
    }
    if !ops.is_empty() {
        let _ = write!(main, "<h2>Operations</h2><p class=\"ops\">{ops}</p>");
    }
    // State per system, with per-system operations.
    let rows: Vec<Vec<String>> = status
        .states
        .iter()
        .map(|(sys, st)| {
            let mut cell = String::new();
            let per: Vec<(&str, Operation, Option<String>, String)> = vec![
                (
                    "Online here",
                    Operation::GroupOnline {
                        group: g.clone(),
                        system: Some(sys.clone()),
                    },
                    None,
                    format!("haven group online {target} --system {sys} --wait"),
                ),
                (
                    "Offline here",
                    Operation::GroupOffline {
                        group: g.clone(),
                        system: Some(sys.clone()),
                    },
                    Some(format!("Take {group} offline on {sys}")),
                    format!("haven group offline {target} --system {sys} --wait"),
                ),
                (
                    "Clear here",
                    Operation::GroupClear {
                        group: g.clone(),
                        system: Some(sys.clone()),
                    },
                    None,
                    format!("haven group clear {target} --system {sys} --wait"),
                ),
            ];
            for (label, op, confirm, cli) in per {
                let useful = matches!(
                    (&op, st),
                    (
                        Operation::GroupOnline { .. },
                        GroupState::Offline | GroupState::Partial
                    ) | (
                        Operation::GroupOffline { .. },
                        GroupState::Online | GroupState::Partial | GroupState::Starting
                    ) | (Operation::GroupClear { .. }, GroupState::Faulted)
                );
                if useful && v.may(&cluster, &op) {
                    cell.push_str(&op_button(label, &cluster, &op, confirm.as_deref(), &cli));
                }
            }
            vec![system_link(&cluster, sys), badge(st.as_str()), cell]
        })
        .collect();
    let _ = write!(
        main,
        "<h2>State per system</h2>{}",
        table(&format!("states{stale}"), &["System", "State", ""], &rows)
    );
    // Resources as a dependency graph.
    let _ = write!(main, "<h2>Resources ({})</h2>", status.resources.len());
    main.push_str(&resource_graph(&cluster, config, status));
    // Attributes.
    main.push_str(&attributes(&config.attributes));
    main.push_str(&recent_history(&s, &cluster, &group).await);
    v.render(
        &format!("{group} · {cluster}"),
        Some(ticks(Some(&cluster))),
        banner,
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

fn describe(kind: &EventKind) -> String {
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
    let now = crate::now_ms();
    let (line, banner) = link_line(&link, now);
    let target = format!("{cluster}/{resource}");
    let states = snap
        .group(&group)
        .and_then(|g| g.resources.iter().find(|r| *r.name == *resource))
        .map(|r| r.states.clone())
        .unwrap_or_default();
    let mut main = format!(
        "<h1>Resource {} <span class=\"muted\">({}) of group</span> {} <span class=\"muted\">in</span> {}</h1>{line}",
        esc(&resource),
        esc(&rconf.type_name),
        group_link(&cluster, &group),
        cluster_link(&cluster)
    );
    let r: Name = resource.as_str().into();
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|(sys, st)| {
            let per = [
                (
                    "Online",
                    Operation::ResourceOnline {
                        resource: r.clone(),
                        system: sys.clone(),
                    },
                    None,
                    format!("haven resource online {target} --system {sys} --wait"),
                ),
                (
                    "Offline",
                    Operation::ResourceOffline {
                        resource: r.clone(),
                        system: sys.clone(),
                    },
                    Some(format!("Take {resource} offline on {sys}")),
                    format!("haven resource offline {target} --system {sys} --wait"),
                ),
                (
                    "Probe",
                    Operation::ResourceProbe {
                        resource: r.clone(),
                        system: sys.clone(),
                    },
                    None,
                    format!("haven resource probe {target} --system {sys}"),
                ),
                (
                    "Clear",
                    Operation::ResourceClear {
                        resource: r.clone(),
                        system: Some(sys.clone()),
                    },
                    None,
                    format!("haven resource clear {target} --system {sys}"),
                ),
            ];
            let mut cell = String::new();
            for (label, op, confirm, cli) in per {
                let useful = match &op {
                    Operation::ResourceOnline { .. } => *st == haven_model::ResourceState::Offline,
                    Operation::ResourceOffline { .. } => *st == haven_model::ResourceState::Online,
                    Operation::ResourceClear { .. } => *st == haven_model::ResourceState::Faulted,
                    _ => true,
                };
                if useful && v.may(&cluster, &op) {
                    cell.push_str(&op_button(label, &cluster, &op, confirm.as_deref(), &cli));
                }
            }
            vec![system_link(&cluster, sys), badge(st.as_str()), cell]
        })
        .collect();
    let stale = if link.state == LinkState::Connected {
        ""
    } else {
        " stale"
    };
    let _ = write!(
        main,
        "<h2>State per system</h2>{}",
        table(&format!("states{stale}"), &["System", "State", ""], &rows)
    );
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
    let _ = write!(
        main,
        "<h2>Dependencies</h2><p>Requires: {}<br>Required by: {}</p>",
        if requires.is_empty() {
            "nothing".into()
        } else {
            requires.join(", ")
        },
        if required_by.is_empty() {
            "nothing".into()
        } else {
            required_by.join(", ")
        }
    );
    main.push_str(&attributes(&rconf.attributes));
    main.push_str(&recent_history(&s, &cluster, &resource).await);
    v.render(
        &format!("{resource} · {cluster}"),
        Some(ticks(Some(&cluster))),
        banner,
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
    let now = crate::now_ms();
    let (line, banner) = link_line(&link, now);
    let mut main = format!(
        "<h1>System {} <span class=\"muted\">of</span> {}</h1>{line}<p>{}{}</p><p class=\"ops\">{}</p>",
        esc(&system),
        cluster_link(&cluster),
        badge(status.state.as_str()),
        flags(status.freeze, true),
        system_ops(&v, &cluster, &system, status.freeze.is_frozen())
    );
    let rows: Vec<Vec<String>> = groups_on(&snap, &system)
        .into_iter()
        .filter(|(g, _)| v.sees_group(&cluster, g))
        .map(|(g, st)| vec![group_link(&cluster, &g), badge(st.as_str())])
        .collect();
    let stale = if link.state == LinkState::Connected {
        ""
    } else {
        " stale"
    };
    let _ = write!(
        main,
        "<h2>Groups on {}</h2>{}",
        esc(&system),
        table(&format!("states{stale}"), &["Group", "State here"], &rows)
    );
    main.push_str(&recent_history(&s, &cluster, &system).await);
    v.render(
        &format!("{system} · {cluster}"),
        Some(ticks(Some(&cluster))),
        banner,
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
    if text.is_empty() {
        return v.render(
            "Find",
            None,
            None,
            "<h1>Find</h1><p>Type a name in the box above.</p>".into(),
        );
    }
    let hits = match &v.sight {
        None => s.fleet.search(text, 200),
        Some(l) => s.fleet.seen_by(l).search(text, 200),
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
            vec![esc(&h.kind), link, cluster_link(&h.cluster)]
        })
        .collect();
    let main = format!(
        "<h1>Find “{}” ({} found{})</h1>{}",
        esc(text),
        hits.len(),
        if hits.len() >= 200 {
            ", the first 200"
        } else {
            ""
        },
        table("hits", &["Kind", "Name", "Cluster"], &rows)
    );
    v.render("Find", None, None, main)
}

// Administration ---------------------------------------------------------------------------

pub(crate) async fn admin(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    if !v.admin() {
        let mut r = v.render(
            "Administration",
            None,
            None,
            "<h1>Administration</h1><p class=\"error\">Only a Server Administrator may manage the server.</p>".into(),
        );
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let mut main = String::from("<h1>Administration</h1>");
    // Clusters.
    let clusters = s.fleet.clusters();
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .take(PAGE)
        .map(|c| {
            vec![
                cluster_link(&c.name),
                link_badge(&c.link),
                esc(&c.link.mode),
                esc(&c.link.address),
                format!(
                    "<button type=\"button\" class=\"api\" data-method=\"DELETE\" data-url=\"/api/v1/clusters/{}\" data-confirm=\"Stop managing {} (its history stays)\" data-cli=\"haven cluster remove {}\">Remove</button>",
                    seg(&c.name),
                    esc(&c.name),
                    esc(&c.name)
                ),
            ]
        })
        .collect();
    let _ = write!(
        main,
        "<h2>Clusters ({})</h2>{}{}",
        clusters.len(),
        table(
            "admin-clusters",
            &["Cluster", "Link", "Mode", "Address", ""],
            &rows
        ),
        if clusters.len() > PAGE {
            "<p><a href=\"/clusters\">All clusters →</a></p>"
        } else {
            ""
        }
    );
    main.push_str(
        "<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/clusters\" data-cli=\"haven cluster add\">\
<h3>Add a direct connection</h3><input name=\"name\" placeholder=\"cluster name\" required aria-label=\"Cluster name\"> \
<input name=\"address\" placeholder=\"engine HOST:PORT\" required aria-label=\"Engine address\"> \
<input name=\"user\" placeholder=\"engine user (optional)\" aria-label=\"Engine user\"> \
<input name=\"password\" type=\"password\" placeholder=\"engine password\" aria-label=\"Engine password\"> <button>Add</button></form>\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/tokens\" data-cli=\"haven cluster token\">\
<h3>Connector join token</h3><input name=\"cluster\" placeholder=\"only for cluster (optional)\" aria-label=\"Cluster\"> <button>Create token</button></form>",
    );
    // Grants.
    let grants = s.read(haven_store::Store::grants).await.unwrap_or_default();
    let mut rows: Vec<Vec<String>> = s
        .config
        .auth
        .grants
        .iter()
        .map(|g| {
            vec![
                esc(&g
                    .user
                    .clone()
                    .map(|u| format!("user {u}"))
                    .or(g.group.clone().map(|gr| format!("group {gr}")))
                    .unwrap_or_default()),
                esc(g.role.title()),
                esc(&scope_text(
                    g.cluster.as_deref(),
                    g.service_group.as_deref(),
                )),
                "<span class=\"muted\">haven.toml</span>".into(),
            ]
        })
        .collect();
    rows.extend(grants.iter().map(|g| {
        vec![
            esc(&format!("{} {}", g.principal_kind, g.principal)),
            esc(&g.role),
            esc(&scope_text(g.cluster.as_deref(), g.service_group.as_deref())),
            format!(
                "<button type=\"button\" class=\"api\" data-method=\"DELETE\" data-url=\"/api/v1/grants/{}\" data-confirm=\"Revoke this grant\" data-cli=\"haven role revoke {}\">Revoke</button>",
                g.id, g.id
            ),
        ]
    }));
    let _ = write!(
        main,
        "<h2>Roles</h2>{}\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/grants\" data-cli=\"haven role grant\"><h3>Grant a role</h3>\
<select name=\"role\" aria-label=\"Role\"><option>guest</option><option>group_operator</option><option>group_administrator</option><option>cluster_operator</option><option>cluster_administrator</option></select> \
<input name=\"user\" placeholder=\"user\" aria-label=\"User\"> or <input name=\"group\" placeholder=\"OS group\" aria-label=\"Group\"> on \
<input name=\"cluster\" placeholder=\"every cluster\" aria-label=\"Cluster\"> <input name=\"service_group\" placeholder=\"every group\" aria-label=\"Service group\"> <button>Grant</button></form>",
        table("grants", &["Who", "Role", "Scope", ""], &rows)
    );
    // Database.
    let _ = write!(
        main,
        "<h2>Database</h2><p><button type=\"button\" class=\"api\" data-method=\"POST\" data-url=\"/api/v1/db/backups\" data-cli=\"haven db backup FILE\">Back up now</button> \
<a href=\"/api/v1/db/backups\">backups</a></p>\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/db/prune\" data-cli=\"haven db prune\" data-confirm=\"Remove old history\">\
Prune history older than <input name=\"older_than_days\" type=\"number\" min=\"1\" value=\"90\" data-number aria-label=\"Days\"> days <button>Prune</button></form>"
    );
    // Audit.
    let ops = s
        .read(|store| {
            haven_store::Store::operations(
                store,
                &haven_store::OperationQuery {
                    limit: 20,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap_or_default();
    let now = crate::now_ms();
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|o| {
            vec![
                esc(&ago(o.requested_ms, now)),
                esc(&o.user),
                cluster_link(&o.cluster),
                esc(o.op.verb()),
                o.outcome
                    .map(|x| badge(&x.as_str().to_uppercase()))
                    .unwrap_or_default(),
                esc(o.reason.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    let _ = write!(
        main,
        "<h2>Recent operations</h2>{}<p><a href=\"/api/v1/operations\">Audit log</a> · <a href=\"/api/v1/access-log\">Access log</a></p>",
        table("audit", &["When", "Who", "Cluster", "Operation", "Outcome", "Reason"], &rows)
    );
    v.render("Administration", None, None, main)
}

fn scope_text(cluster: Option<&str>, group: Option<&str>) -> String {
    match (cluster, group) {
        (None, _) => "every cluster".into(),
        (Some(c), None) => format!("cluster {c}"),
        (Some(c), Some(g)) => format!("group {g} of {c}"),
    }
}
