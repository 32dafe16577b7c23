//! Administration (Server Administrators): clusters, roles, the server's
//! effective settings, the database, and the access log (refused to
//! others by the API's own rule, [`need_server_admin`], and recorded as
//! the API's refusal is); and the audit log (everyone, each seeing the
//! operations on what they may see — the same rule as
//! `/api/v1/operations`, from [`Server::visible_operations`]).

use std::fmt::Write;
use std::net::SocketAddr;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use haven_auth::roles::Role;
use haven_store::{AccessQuery, AccessRecord, OperationQuery, OperationRecord};
use serde::Deserialize;

use super::html::{ago, badge, esc, seg, table};
use super::pages::{cluster_link, link_badge, pager, AppState, Caught, PageQuery, Rows, PAGE};
use super::{cli, Viewer};
use crate::admin::access_outcome;
use crate::api::need_server_admin;
use crate::config::{Database, ServerConfig};
use crate::Server;

/// The audit and access pages read at most this many entries (newest
/// first); older ones are for `haven audit [--access] --limit N` or the
/// SQL port.
const LOG_MAX: usize = 10_000;

pub(crate) async fn admin(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<PageQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment());
    if let Err(refusal) = need_server_admin(&s, &v.caller) {
        return v.refuse(
            "Administration",
            refusal,
            "<p>Only a Server Administrator may manage the server. The <a href=\"/audit\">audit \
log</a> shows the operations on what you may see.</p>",
        );
    }
    let mut main = String::from(
        "<h1>Administration</h1><p class=\"toc\"><a href=\"#clusters\">Clusters</a> · <a href=\"#peers\">Peer sites</a> · <a href=\"#servers\">Servers</a> · <a href=\"#roles\">Roles</a> · \
<a href=\"#settings\">Server settings</a> · <a href=\"#database\">Database</a> · <a href=\"#audit\">Audit log</a></p>",
    );
    main.push_str(&clusters_section(&s));
    main.push_str(&peers_section(&s));
    main.push_str(&servers_section(&s));
    main.push_str(&roles_section(&s).await);
    main.push_str(&settings_section(&s));
    main.push_str(&database_section());
    // The newest operations (the audit page has them all).
    let recent = s
        .visible_operations(
            v.sight.as_ref(),
            OperationQuery {
                limit: 20,
                ..Default::default()
            },
        )
        .await;
    main.push_str("<h2 id=\"audit\">Recent operations</h2>");
    main.push_str(&match recent {
        Ok(rows) => audit_table(&rows),
        Err(e) => read_error(&e),
    });
    main.push_str(
        "<p><a href=\"/audit\">Audit log →</a> · <a href=\"/access\">Access log →</a> \
<span class=\"muted\">(logins, logouts, refusals, administrators' changes)</span></p>",
    );
    v.render("Administration", None, None, main)
}

pub(super) fn read_error(e: &str) -> String {
    format!(
        "<p class=\"error\">The database could not be read: {}. The server's log has more; try again.</p>",
        esc(e)
    )
}

fn clusters_section(s: &Server) -> String {
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
                    "<button type=\"button\" class=\"api\" data-method=\"DELETE\" data-url=\"/api/v1/clusters/{}\" data-confirm=\"Stop managing {} (its history stays)\" data-cli=\"{}\">Remove</button>",
                    seg(&c.name),
                    esc(&c.name),
                    esc(&cli::cluster_remove(&c.name))
                ),
            ]
        })
        .collect();
    format!(
        "<h2 id=\"clusters\">Clusters ({})</h2>{}{}\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/clusters\" data-cli=\"{}\">\
<h3>Add a direct connection</h3><input name=\"name\" data-arg=\"\" placeholder=\"cluster name\" required aria-label=\"Cluster name\"> \
<input name=\"address\" data-arg=\"\" placeholder=\"engine HOST:PORT\" required aria-label=\"Engine address\"> \
<input name=\"user\" data-arg=\"--user\" placeholder=\"engine user (optional)\" aria-label=\"Engine user\"> \
<input name=\"password\" data-arg=\"--password-stdin\" data-bare type=\"password\" placeholder=\"engine password\" aria-label=\"Engine password\"> <button>Add</button></form>\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/tokens\" data-cli=\"{}\">\
<h3>Connector join token</h3><input name=\"cluster\" data-arg=\"--cluster\" placeholder=\"only for cluster (optional)\" aria-label=\"Cluster\"> <button>Create token</button></form>",
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
        },
        cli::CLUSTER_ADD,
        cli::TOKEN,
    )
}

/// The sites this server is paired with, pairing and unpairing.
fn peers_section(s: &Server) -> String {
    let now = crate::now_ms();
    let rows: Vec<Vec<String>> = s
        .peer_views()
        .iter()
        .map(|p| {
            vec![
                esc(&p.site),
                esc(&p.address),
                badge(p.state.as_str()),
                format!("{} ({})", esc(&utc(p.since_ms)), ago(p.since_ms, now)),
                p.clusters.to_string(),
                esc(p.last_error.as_deref().unwrap_or("")),
                format!(
                    "<button type=\"button\" class=\"api\" data-method=\"DELETE\" data-url=\"/api/v1/peers/{}\" data-confirm=\"Unpair site {} (its clusters leave this console; their history stays)\" data-cli=\"{}\">Unpair</button>",
                    seg(&p.site),
                    esc(&p.site),
                    esc(&cli::peer_remove(&p.site))
                ),
            ]
        })
        .collect();
    format!(
        "<h2 id=\"peers\">Peer sites</h2><p>This site is <b>{}</b>; paired sites reach it at <code>{}</code>. \
A paired site's clusters are shown here as SITE:CLUSTER; operations on them are decided by that site's own roles.</p>{}\
<p><button type=\"button\" class=\"api\" data-method=\"POST\" data-url=\"/api/v1/peers/tokens\" data-cli=\"{}\">Make a pairing token</button> \
<span class=\"muted\">(one use; run the command it shows on the other site's server)</span></p>\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/peers\" data-cli=\"{}\"><h3>Pair with a site</h3>\
<input name=\"address\" data-arg=\"\" placeholder=\"its peer port HOST:PORT\" required aria-label=\"Peer address\"> \
<input name=\"token\" data-arg=\"--token\" placeholder=\"its pairing token hvp1.…\" required aria-label=\"Pairing token\"> <button>Pair</button></form>",
        esc(&s.peers.site),
        esc(&s.peer_address()),
        table(
            "peers",
            &["Site", "Address", "Link", "Since", "Clusters", "Last error", ""],
            &rows
        ),
        cli::PEER_TOKEN,
        cli::PEER_ADD,
    )
}

/// The servers of this server's group (a clustered server), or that it
/// runs alone.
fn servers_section(s: &Server) -> String {
    let view = s.group_view();
    if !view.clustered {
        return format!(
            "<h2 id=\"servers\">Servers</h2><p>This server (<b>{}</b>) runs alone: a standby that takes over when it dies needs a group on PostgreSQL (<code>[group] enabled</code>, see docs/clustered.md).</p>",
            esc(&view.me)
        );
    }
    let rows: Vec<Vec<String>> = view
        .servers
        .iter()
        .map(|g| {
            vec![
                format!(
                    "{}{}",
                    esc(&g.id),
                    if g.id == view.me {
                        " <span class=\"muted\">(this one)</span>"
                    } else {
                        ""
                    }
                ),
                esc(&g.role),
                esc(&g.health),
                format!("{} s ago", g.last_seen_ms_ago / 1000),
                format!("<code>{}</code>", esc(&g.api_url)),
                format!("<code>{}</code>", esc(&g.connector_address)),
                esc(&g.version),
            ]
        })
        .collect();
    format!(
        "<h2 id=\"servers\">Servers</h2><p>This server (<b>{}</b>) is the active one of its group (lease term {}); the others stand by and take over if it dies. <code>haven server status</code> shows the same.</p>{}",
        esc(&view.me),
        view.term,
        table(
            "servers",
            &["Server", "Role", "Health", "Last seen", "API", "Connectors", "Version"],
            &rows
        )
    )
}

async fn roles_section(s: &std::sync::Arc<Server>) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut error = String::new();
    match s.grant_views().await {
        Ok(views) => rows.extend(views.iter().map(|v| {
            let g = &v.grant;
            let last = match v.id {
                None => "<span class=\"muted\">haven.toml</span>".to_string(),
                Some(id) => format!(
                    "<button type=\"button\" class=\"api\" data-method=\"DELETE\" data-url=\"/api/v1/grants/{id}\" data-confirm=\"Revoke this grant\" data-cli=\"{}\">Revoke</button>",
                    esc(&cli::revoke(id))
                ),
            };
            vec![esc(&g.who()), esc(&role_title(&g.role)), esc(&g.scope()), last]
        })),
        Err(e) => error = read_error(&e),
    }
    let roles: String = Role::ALL
        .iter()
        .map(|r| {
            format!(
                "<option value=\"{}\">{}</option>",
                esc(r.as_str()),
                esc(r.title())
            )
        })
        .collect();
    format!(
        "<h2 id=\"roles\">Roles</h2>{}{error}\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/grants\" data-cli=\"{}\"><h3>Grant a role</h3>\
<select name=\"role\" data-arg=\"\" aria-label=\"Role\">{roles}</select> to \
<input name=\"user\" data-arg=\"--user\" placeholder=\"user\" aria-label=\"User\"> or <input name=\"group\" data-arg=\"--group\" placeholder=\"OS group\" aria-label=\"Group\"> on \
<input name=\"cluster\" data-arg=\"--cluster\" placeholder=\"every cluster\" aria-label=\"Cluster\"> <input name=\"service_group\" data-arg=\"--group-scope\" placeholder=\"every group\" aria-label=\"Service group\"> <button>Grant</button></form>",
        table("grants", &["Who", "Role", "Scope", ""], &rows),
        cli::GRANT,
    )
}

/// Backup and prune (the API's; the command log shows the CLI's).
fn database_section() -> String {
    format!(
        "<h2 id=\"database\">Database</h2>\
<p><button type=\"button\" class=\"api\" data-method=\"POST\" data-url=\"/api/v1/db/backups\" data-cli=\"{}\">Back up now</button> \
<a href=\"/api/v1/db/backups\">backups</a></p>\
<form class=\"api\" data-method=\"POST\" data-url=\"/api/v1/db/prune\" data-cli=\"{}\" data-confirm=\"Remove old history\">\
Prune history older than <input name=\"older_than_days\" type=\"number\" min=\"1\" value=\"90\" data-number data-arg=\"--older-than\" data-unit=\"d\" aria-label=\"Days\"> days <button>Prune</button> \
<span class=\"muted\">(from a shell: on the server host)</span></form>",
        cli::BACKUP,
        cli::PRUNE
    )
}

fn settings_section(s: &Server) -> String {
    let rows: Vec<Vec<String>> = settings(
        &s.config,
        &s.database,
        s.connector_addr.get().copied(),
        s.sql_addr.get().copied(),
    )
    .into_iter()
    .map(|(k, v)| vec![esc(k), esc(&v)])
    .collect();
    format!(
        "<h2 id=\"settings\">Server settings</h2>\
<p class=\"muted\">In effect now, from haven.toml and the environment (read-only: change haven.toml and restart). No password or secret is shown.</p>{}",
        table("settings", &["Setting", "Value"], &rows)
    )
}

/// The server's effective settings as (name, value) lines. Never a
/// password or secret: the database URL is shown by [`Database`]'s
/// `Display` (which leaves the password out), LDAP and engine passwords
/// are not read at all.
pub(crate) fn settings(
    config: &ServerConfig,
    database: &Database,
    connectors: Option<SocketAddr>,
    sql: Option<SocketAddr>,
) -> Vec<(&'static str, String)> {
    let auth = &config.auth;
    let hours = |h: u64| {
        if h == 1 {
            "1 hour".into()
        } else {
            format!("{h} hours")
        }
    };
    let days = |d: u64, what: &str| {
        if d == 0 {
            format!("{what} kept for ever")
        } else {
            format!("{what} older than {d} days pruned daily")
        }
    };
    let mut out = vec![
        (
            "Console and API",
            if config.server.insecure_plain_http {
                format!(
                    "http://{} (plain HTTP: development only)",
                    config.server.listen
                )
            } else {
                format!("https://{}", config.server.listen)
            },
        ),
        (
            "Connector port",
            format!(
                "{} (join tokens valid {} s)",
                connectors.map_or(config.connectors.listen.clone(), |a| a.to_string()),
                config.connectors.token_ttl_secs
            ),
        ),
        (
            "SQL port",
            if config.sql.enabled {
                sql.map_or(config.sql.listen.clone(), |a| a.to_string())
            } else {
                "off".into()
            },
        ),
        (
            "TLS certificate",
            if config.tls.certificate.as_os_str().is_empty() {
                let mut names = vec!["localhost and this host's name".to_string()];
                names.extend(config.tls.names.iter().cloned());
                format!("from the fleet CA, for {}", names.join(", "))
            } else {
                format!("{}", config.tls.certificate.display())
            },
        ),
        (
            "Data directory",
            config.server.data_dir.display().to_string(),
        ),
        ("Database", database.to_string()),
    ];
    if auth.enabled {
        out.push((
            "Logins",
            format!(
                "on: local accounts through the PAM service {}",
                auth.pam_service
            ),
        ));
        if let Some(ldap) = &auth.ldap {
            let realms = if ldap.domains.is_empty() {
                "every user@domain".to_string()
            } else {
                ldap.domains
                    .iter()
                    .map(|d| format!("user@{d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            // A URL with a user part may hold a password: not shown.
            let url = if ldap.url.contains('@') {
                "(its URL holds credentials: not shown)".to_string()
            } else {
                ldap.url.clone()
            };
            out.push(("Directory logins", format!("{realms} through LDAP {url}")));
        }
        out.push((
            "Sessions",
            format!(
                "end after {} min unused or {} after login; {} failed logins per user and source in 10 min",
                auth.idle_minutes,
                hours(auth.max_hours),
                auth.max_failures
            ),
        ));
        out.push(("Server administrators", auth.server_admins.join(", ")));
    } else {
        out.push((
            "Logins",
            "off (development only, on a loopback address)".into(),
        ));
    }
    out.push((
        "Backups",
        if database.is_postgres() {
            "not taken by the server (PostgreSQL: use pg_dump or your PostgreSQL backup)".into()
        } else if config.database.backup_every_hours == 0 {
            "none scheduled (Back up now, or haven backup)".into()
        } else {
            format!(
                "every {} into {}, keeping the newest {}",
                hours(config.database.backup_every_hours),
                config.backup_dir().display(),
                config.database.backup_keep
            )
        },
    ));
    out.push((
        "Retention",
        format!(
            "{}; {}",
            days(config.database.retention_days, "history"),
            days(config.database.audit_retention_days, "audit")
        ),
    ));
    out.push((
        "Links to engines",
        format!(
            "reconnect after {} ms, backing off to {} ms; stale after {} ms unheard",
            config.links.initial_backoff_ms,
            config.links.max_backoff_ms,
            config.links.stale_after_ms
        ),
    ));
    out.push(("Clusters in haven.toml", config.clusters.len().to_string()));
    out
}

/// "Group Operator" for `group_operator` (the stored name, if unknown).
fn role_title(name: &str) -> String {
    Role::parse(name).map_or_else(|_| name.to_string(), |r| r.title().to_string())
}

// The audit log -------------------------------------------------------------------

/// `/audit?user=&cluster=&page=&per=`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    page: Option<usize>,
    /// Rows a page (1 to 500; default 100).
    #[serde(default)]
    per: Option<usize>,
}

pub(crate) async fn audit(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<AuditQuery>,
) -> Response {
    let v = Viewer::new(s.clone(), caller, q.fragment.is_some());
    let (user, cluster) = (nonempty(&q.user), nonempty(&q.cluster));
    let window = Window::new(q.page, q.per);
    let filter = format!(
        "<form class=\"filter\" action=\"/audit\"><input name=\"user\" value=\"{}\" placeholder=\"user\" aria-label=\"Only this user's\"> \
<input name=\"cluster\" value=\"{}\" placeholder=\"cluster\" aria-label=\"Only this cluster's\"> <button>Filter</button></form>",
        esc(user.as_deref().unwrap_or("")),
        esc(cluster.as_deref().unwrap_or(""))
    );
    let mut main = format!(
        "<h1>Audit log</h1><p class=\"muted\">Every operation asked of a cluster, newest first: who, what, when and how it ended{}. From a shell: <code>{}</code></p>{filter}",
        if v.sight.is_some() {
            " — on the clusters and groups you may see"
        } else {
            ""
        },
        esc(&cli::audit(user.as_deref(), cluster.as_deref()))
    );
    let Some(wanted) = window.wanted() else {
        main.push_str(&too_far("operations", "haven audit --limit N"));
        return v.render("Audit log", None, None, main);
    };
    let query = OperationQuery {
        cluster: cluster.clone(),
        clusters: None,
        user: user.clone(),
        limit: wanted,
    };
    match s.visible_operations(v.sight.as_ref(), query).await {
        Ok(rows) => {
            let (shown, more) = window.cut(rows);
            main.push_str(&if shown.is_empty() {
                "<p class=\"muted\">No operations recorded here.</p>".into()
            } else {
                audit_table(&shown)
            });
            let base = window.base("/audit", &[("user", &user), ("cluster", &cluster)]);
            main.push_str(&pager(&base, window.page, window.per, Rows::More(more)));
        }
        Err(e) => main.push_str(&read_error(&e)),
    }
    v.render("Audit log", None, None, main)
}

/// A filter's text, if it has any.
pub(super) fn nonempty(text: &Option<String>) -> Option<String> {
    text.clone().filter(|t| !t.trim().is_empty())
}

/// Why a page past the newest [`LOG_MAX`] entries is not shown, and what
/// reads further.
pub(super) fn too_far(what: &str, command: &str) -> String {
    format!(
        "<p class=\"error\">The console shows the newest {LOG_MAX} {what}; for older ones use <code>{}</code> or the SQL port.</p>",
        esc(command)
    )
}

/// One page of a log the store reads newest first from the top (it has
/// no offset): every row up to this page's end is read, and one more to
/// tell whether there is a next page — never more than [`LOG_MAX`] + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    /// From 0.
    pub page: usize,
    /// Rows a page (1 to 500; default 100).
    pub per: usize,
}

impl Window {
    pub fn new(page: Option<usize>, per: Option<usize>) -> Self {
        Window {
            page: page.unwrap_or(0),
            per: per.unwrap_or(PAGE).clamp(1, 500),
        }
    }

    /// How many rows to read for this page, or `None` when it lies beyond
    /// the newest [`LOG_MAX`] (any `?page=` from a URL is safe here).
    pub fn wanted(&self) -> Option<usize> {
        self.page
            .checked_add(1)
            .and_then(|pages| pages.checked_mul(self.per))
            .filter(|&rows| rows <= LOG_MAX)
            .map(|rows| rows + 1)
    }

    /// This page's rows of the `rows` read for it (at most
    /// [`wanted`](Self::wanted)), and whether there is a next page.
    pub fn cut<T>(&self, rows: Vec<T>) -> (Vec<T>, bool) {
        let more = self.wanted().is_some_and(|w| rows.len() >= w);
        let shown = rows
            .into_iter()
            .skip(self.page.saturating_mul(self.per))
            .take(self.per)
            .collect();
        (shown, more)
    }

    /// `path` with the filters that are set and `per`, for the pager.
    pub fn base(&self, path: &str, filters: &[(&str, &Option<String>)]) -> String {
        let mut out = format!("{path}?");
        for (name, value) in filters {
            if let Some(v) = value {
                let _ = write!(out, "{name}={}&", seg(v));
            }
        }
        let _ = write!(out, "per={}", self.per);
        out
    }
}

/// Audited operations as a table: when, who, what (as the `haven`
/// command), the cluster, the outcome and the engine's reason.
fn audit_table(rows: &[OperationRecord]) -> String {
    let now = crate::now_ms();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|o| {
            let what = cli::operation(&o.cluster, &o.op)
                .map(|c| format!("<code>{}</code>", esc(&c)))
                .unwrap_or_else(|| esc(&o.op.verb().replace('_', " ")));
            vec![
                when(o.requested_ms, now),
                esc(&o.user),
                what,
                cluster_link(&o.cluster),
                o.outcome
                    .map(|x| badge(&x.as_str().to_uppercase()))
                    .unwrap_or_else(|| badge("PENDING")),
                esc(o.reason.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(
        "audit",
        &["When (UTC)", "Who", "What", "Cluster", "Outcome", "Reason"],
        &rows,
    )
}

// The access log -------------------------------------------------------------------

/// `/access?user=&outcome=&page=&per=`
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AccessLogQuery {
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    user: Option<String>,
    /// `allowed`, `denied` or `failed`.
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    page: Option<usize>,
    /// Rows a page (1 to 500; default 100).
    #[serde(default)]
    per: Option<usize>,
}

/// The access log (Server Administrators, like `GET /api/v1/access-log`,
/// and read from the same place): logins, logouts, refusals and
/// administrators' changes, newest first.
pub(crate) async fn access(
    State(s): State<AppState>,
    axum::Extension(caller): Caught,
    Query(q): Query<AccessLogQuery>,
) -> Response {
    const TITLE: &str = "Access log";
    let v = Viewer::new(s.clone(), caller, q.fragment.is_some());
    if let Err(refusal) = need_server_admin(&s, &v.caller) {
        return v.refuse(TITLE, refusal, "");
    }
    let user = nonempty(&q.user);
    let outcome = match nonempty(&q.outcome)
        .as_deref()
        .map(access_outcome)
        .transpose()
    {
        Ok(outcome) => outcome,
        Err(e) => {
            let main = format!(
                "<h1>{TITLE}</h1>{}<p class=\"error\">{}</p>",
                access_filter(user.as_deref(), None),
                esc(&e)
            );
            let mut r = v.render(TITLE, None, None, main);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
    };
    let outcome_name = outcome.map(|o| o.as_str().to_string());
    let window = Window::new(q.page, q.per);
    let mut main = format!(
        "<h1>{TITLE}</h1><p class=\"muted\">Logins, logouts, refusals and administrators' changes, newest first. From a shell: <code class=\"shell\">{}</code></p>{}",
        esc(&cli::access_log(user.as_deref(), outcome_name.as_deref())),
        access_filter(user.as_deref(), outcome_name.as_deref())
    );
    let Some(wanted) = window.wanted() else {
        main.push_str(&too_far("entries", "haven audit --access --limit N"));
        return v.render(TITLE, None, None, main);
    };
    let query = AccessQuery {
        user: user.clone(),
        action: None,
        outcome,
        cluster: None,
        since_ms: None,
        limit: wanted,
    };
    match s.read_access_log(query).await {
        Ok(rows) => {
            let (shown, more) = window.cut(rows);
            main.push_str(&if shown.is_empty() {
                "<p class=\"muted\">Nothing recorded matches.</p>".into()
            } else {
                access_table(&shown)
            });
            let base = window.base("/access", &[("user", &user), ("outcome", &outcome_name)]);
            main.push_str(&pager(&base, window.page, window.per, Rows::More(more)));
        }
        Err(e) => main.push_str(&read_error(&e)),
    }
    v.render(TITLE, None, None, main)
}

/// The access page's filters: a user, an outcome.
fn access_filter(user: Option<&str>, outcome: Option<&str>) -> String {
    let options: String = std::iter::once(("", "any outcome"))
        .chain(
            haven_store::AccessOutcome::ALL
                .iter()
                .map(|o| (o.as_str(), o.as_str())),
        )
        .map(|(value, label)| {
            format!(
                "<option value=\"{}\"{}>{}</option>",
                esc(value),
                if outcome.unwrap_or("") == value {
                    " selected"
                } else {
                    ""
                },
                esc(label)
            )
        })
        .collect();
    format!(
        "<form class=\"filter\" action=\"/access\"><input name=\"user\" value=\"{}\" placeholder=\"user\" aria-label=\"Only this user's\"> \
<select name=\"outcome\" aria-label=\"Only this outcome\">{options}</select> <button>Filter</button></form>",
        esc(user.unwrap_or(""))
    )
}

/// Access log entries as a table: when, who, from where, what, about
/// what, the outcome and why.
fn access_table(rows: &[AccessRecord]) -> String {
    let now = crate::now_ms();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            vec![
                when(a.time_ms, now),
                esc(&a.user),
                esc(a.source.as_deref().unwrap_or("")),
                esc(&a.action.replace('_', " ")),
                esc(a.target.as_deref().unwrap_or("")),
                badge(&a.outcome.as_str().to_uppercase()),
                esc(a.reason.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(
        "access",
        &[
            "When (UTC)",
            "User",
            "Source",
            "Action",
            "Target",
            "Outcome",
            "Reason",
        ],
        &rows,
    )
}

/// A log entry's time: UTC, with how long ago as its title.
pub(super) fn when(ms: i64, now: i64) -> String {
    format!(
        "<time title=\"{}\">{}</time>",
        esc(&ago(ms, now)),
        esc(&utc(ms))
    )
}

/// `2024-05-01 12:00:03` (UTC) for milliseconds since the epoch.
fn utc(ms: i64) -> String {
    let c = haven_model::clock::civil(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_show_no_password_or_secret() {
        let config = ServerConfig::parse(
            r#"
[database]
url = "postgres://haven:dbsecret@db.example.com:5432/haven"
[auth]
server_admins = ["root", "@ha-admins"]
[auth.ldap]
url = "ldaps://ldap.example.com"
user_base = "ou=people,dc=example,dc=com"
group_base = "ou=groups,dc=example,dc=com"
bind_dn = "cn=haven,dc=example,dc=com"
bind_password = "ldapsecret"
domains = ["example.com"]
[[cluster]]
name = "prod"
address = "10.0.0.5:14141"
user = "admin"
password = "enginesecret"
"#,
        )
        .unwrap();
        let shown = settings(&config, &config.database_with_env(None), None, None);
        let text = format!("{shown:?}");
        for secret in ["dbsecret", "ldapsecret", "enginesecret"] {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
        let value = |k: &str| {
            shown
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {k} in {text}"))
        };
        assert_eq!(
            value("Database"),
            "the PostgreSQL database db.example.com:5432/haven as haven"
        );
        assert!(value("Directory logins").contains("user@example.com"));
        assert!(value("Backups").contains("PostgreSQL"));
        assert_eq!(value("Server administrators"), "root, @ha-admins");
        assert_eq!(value("Console and API"), "https://0.0.0.0:8440");
    }

    #[test]
    fn log_pages_read_only_up_to_their_end_and_never_past_the_bound() {
        let w = Window::new(Some(2), Some(10));
        assert_eq!(w.wanted(), Some(31), "three pages and one row more");
        let (shown, more) = w.cut((0..31).collect::<Vec<_>>());
        assert_eq!(shown, (20..30).collect::<Vec<_>>());
        assert!(more, "the extra row means a next page");
        let (shown, more) = w.cut((0..25).collect::<Vec<_>>());
        assert_eq!(shown, (20..25).collect::<Vec<_>>());
        assert!(!more);
        assert_eq!(Window::new(None, Some(0)).per, 1);
        assert_eq!(Window::new(None, Some(100_000)).per, 500);
        assert_eq!(Window::new(None, None).wanted(), Some(PAGE + 1));
        // Beyond the newest LOG_MAX, and a page number that would
        // overflow, read nothing (and show nothing).
        assert_eq!(Window::new(Some(LOG_MAX / 500), Some(500)).wanted(), None);
        assert_eq!(
            Window::new(Some(LOG_MAX / 500 - 1), Some(500)).wanted(),
            Some(LOG_MAX + 1)
        );
        let huge = Window::new(Some(usize::MAX), Some(500));
        assert_eq!(huge.wanted(), None);
        assert_eq!(huge.cut(vec![1, 2, 3]), (vec![], false));
        // Pages a page long end exactly at usize::MAX: no room for one more.
        assert_eq!(
            Window::new(Some(usize::MAX / 3 - 1), Some(3)).wanted(),
            None
        );
        assert_eq!(
            w.base(
                "/access",
                &[("user", &Some("a b".into())), ("outcome", &None)]
            ),
            "/access?user=a%20b&per=10"
        );
    }

    #[test]
    fn access_outcomes_are_the_stored_names_and_others_say_which_there_are() {
        assert_eq!(
            access_outcome("denied"),
            Ok(haven_store::AccessOutcome::Denied)
        );
        assert_eq!(
            access_outcome("refused").unwrap_err(),
            "outcome `refused`: use allowed, denied or failed"
        );
    }

    #[test]
    fn audit_times_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_714_564_803_000), "2024-05-01 12:00:03");
    }
}
