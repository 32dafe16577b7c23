//! The web console: server-rendered pages over the same state, roles and
//! operations path as the API, with a small script for live updates and
//! operations (no framework, nothing to build).
//!
//! Every page is rendered for its caller: what they may not see is not on
//! it, and operation buttons their role does not allow are not offered
//! (the API refuses them anyway). A page asked with `?fragment=1` answers
//! only its main part, which the script swaps in when the page's live
//! stream (`/console/ticks`, at most one tick a second) says something
//! changed.

mod admin;
mod alerts;
mod assets;
mod cli;
pub mod html;
mod pages;
mod past;
mod reports;
mod tags;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use haven_auth::roles::Role;
use haven_model::Operation;
use serde::Deserialize;

use crate::access::Limited;
use crate::auth::Caller;
use crate::fleet::{FleetUpdate, LinkStatus, Sight};
use crate::Server;

type AppState = Arc<Server>;

/// Paths of the console that need no session.
pub const PUBLIC: &[&str] = &["/login", "/assets/haven.css", "/assets/haven.js"];

/// The console's routes (merged into the API's router, behind the same
/// identification).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::summary))
        .route("/clusters", get(pages::clusters))
        .route("/faults", get(pages::faults))
        .route("/find", get(pages::find))
        .route("/c/{cluster}", get(pages::cluster))
        .route("/c/{cluster}/g/{group}", get(pages::group))
        .route("/c/{cluster}/r/{resource}", get(pages::resource))
        .route("/c/{cluster}/s/{system}", get(pages::system))
        .route("/past", get(past::fleet))
        .route("/past/c/{cluster}", get(past::cluster))
        .route("/past/c/{cluster}/g/{group}", get(past::group))
        .route("/admin", get(admin::admin))
        .route("/audit", get(admin::audit))
        .route("/access", get(admin::access))
        .route("/alerts", get(alerts::alerts))
        .route("/reports", get(reports::reports))
        .route("/console/ticks", get(ticks))
        .route("/assets/haven.css", get(css))
        .route("/assets/haven.js", get(js))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        assets::CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        assets::JS,
    )
}

/// The login page (`/login?code=` spends a one-time link instead; see
/// the API).
pub fn login_page(message: Option<&str>) -> Response {
    let message = message
        .map(|m| format!("<p class=\"error\">{}</p>", html::esc(m)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Log in · Haven</title>\
<link rel=\"stylesheet\" href=\"/assets/haven.css\"><script src=\"/assets/haven.js\" defer></script></head>\
<body><main><form class=\"login\" id=\"login\"><h1>Haven</h1>{message}\
<p class=\"muted\">Log in with your operating system account, or <i>user@domain</i> for a directory account.</p>\
<label for=\"user\">User</label><input id=\"user\" name=\"user\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<p id=\"loginerror\" class=\"error\" role=\"alert\"></p><button type=\"submit\">Log in</button></form></main></body></html>\n"
    ))
    .into_response()
}

/// Who is looking, and how much they see.
pub(crate) struct Viewer {
    pub server: Arc<Server>,
    pub caller: Caller,
    pub sight: Option<Limited>,
    pub fragment: bool,
}

impl Viewer {
    pub fn new(server: Arc<Server>, caller: Caller, fragment: bool) -> Self {
        let sight = server.sight(&caller);
        Viewer {
            server,
            caller,
            sight,
            fragment,
        }
    }

    pub fn sees_cluster(&self, cluster: &str) -> bool {
        self.sight.as_ref().is_none_or(|l| l.cluster(cluster))
    }

    pub fn sees_group(&self, cluster: &str, group: &str) -> bool {
        self.sight.as_ref().is_none_or(|l| l.group(cluster, group))
    }

    /// Whether the caller's roles allow `op` on `cluster`; if not, the
    /// lowest role that would.
    pub fn allowed(&self, cluster: &str, op: &Operation) -> Result<(), Role> {
        let (Caller::User(who), Some(auth)) = (&self.caller, &self.server.auth) else {
            return Ok(());
        };
        let group_of = |resource: &str| {
            self.server
                .fleet
                .with_snapshot(cluster, |s| {
                    s.config.resource(resource).map(|(g, _)| g.name.clone())
                })
                .flatten()
        };
        auth.policy()
            .authorize(who, cluster, op, group_of)
            .map_err(|denied| {
                Role::ALL
                    .into_iter()
                    .find(|r| r.allows(denied.needed))
                    .unwrap_or(Role::ClusterAdministrator)
            })
    }

    pub fn admin(&self) -> bool {
        crate::api::need_server_admin(&self.server, &self.caller).is_ok()
    }

    /// The page `title`, refused with the API's answer `refusal`: its
    /// status and message, and — when the API records it (a
    /// [`Denial`](crate::api::Denial)) — the same record in the access
    /// log, which the `identify` middleware takes from the response.
    pub fn refuse(&self, title: &str, refusal: crate::api::ApiError, note: &str) -> Response {
        let mut response = self.render(
            title,
            None,
            None,
            format!(
                "<h1>{}</h1><p class=\"error\">{}</p>{note}",
                html::esc(title),
                html::esc(&refusal.message)
            ),
        );
        *response.status_mut() = refusal.status;
        if let Some(denial) = refusal.denied {
            response.extensions_mut().insert(denial);
        }
        response
    }

    /// The page (or, for a live refresh, just its main part). `banner`
    /// (e.g. "the link to this cluster is down") is part of the main part,
    /// so a live refresh shows it, or takes it away, without a reload.
    pub fn render(
        &self,
        title: &str,
        live: Option<String>,
        banner: Option<String>,
        main: String,
    ) -> Response {
        let main = match banner {
            Some(b) => html::banner(&b) + &main,
            None => main,
        };
        let mut response = if self.fragment {
            Html(main).into_response()
        } else {
            Html(html::page(
                &html::Shell {
                    title,
                    user: self.caller.name(),
                    admin: self.admin(),
                    live,
                    alerts: alerts::unacknowledged(self),
                },
                &main,
            ))
            .into_response()
        };
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        response
    }
}

/// An operation a page may offer.
pub(crate) struct Op {
    pub label: &'static str,
    pub op: Operation,
    /// Asked before it runs (disruptive operations).
    pub confirm: Option<String>,
}

impl Op {
    pub fn new(label: &'static str, op: Operation) -> Self {
        Op {
            label,
            op,
            confirm: None,
        }
    }

    pub fn confirm(mut self, question: String) -> Self {
        self.confirm = Some(question);
        self
    }
}

/// The operations offered at one place of a page: buttons for those the
/// viewer's role allows; the others are remembered, so that the page can
/// say which role would allow them. Nothing is offered while the
/// cluster's link is down (the server would refuse it at once).
pub(crate) struct Offer<'a> {
    viewer: &'a Viewer,
    cluster: &'a str,
    down: bool,
    withheld: BTreeMap<Role, Vec<&'static str>>,
}

impl<'a> Offer<'a> {
    pub fn new(viewer: &'a Viewer, cluster: &'a str, link: &LinkStatus) -> Self {
        Offer {
            viewer,
            cluster,
            down: link.is_down(),
            withheld: BTreeMap::new(),
        }
    }

    /// Whether the viewer may run `op`; if not, it is remembered for the
    /// [note](Self::note) under `label`.
    pub fn offers(&mut self, label: &'static str, op: &Operation) -> bool {
        if self.down {
            return false;
        }
        match self.viewer.allowed(self.cluster, op) {
            Ok(()) => true,
            Err(role) => {
                let labels = self.withheld.entry(role).or_default();
                if !labels.contains(&label) {
                    labels.push(label);
                }
                false
            }
        }
    }

    /// The buttons of the operations in `ops` the viewer may run.
    pub fn buttons(&mut self, ops: impl IntoIterator<Item = Op>) -> String {
        let mut out = String::new();
        for o in ops {
            if self.offers(o.label, &o.op) {
                out.push_str(&html::op_button(
                    o.label,
                    self.cluster,
                    &o.op,
                    o.confirm.as_deref(),
                ));
            }
        }
        out
    }

    /// A short note on the operations not offered and the role each
    /// needs (empty when everything was offered).
    pub fn note(&self) -> String {
        if self.down {
            return "<p class=\"withheld\">No operations while the cluster is disconnected: they come back with its link.</p>".into();
        }
        if self.withheld.is_empty() {
            return String::new();
        }
        let needs: Vec<String> = self
            .withheld
            .iter()
            .map(|(role, labels)| {
                format!(
                    "{} {} {} or higher",
                    html::esc(&labels.join(", ")),
                    if labels.len() == 1 { "needs" } else { "need" },
                    html::esc(role.title())
                )
            })
            .collect();
        format!(
            "<p class=\"withheld\">Not offered to you: {}.</p>",
            needs.join("; ")
        )
    }
}

/// `?cluster=NAME`
#[derive(Debug, Deserialize)]
pub(crate) struct TickFilter {
    cluster: Option<String>,
}

/// A live stream for a page: one `events` tick at most every second when
/// something the caller may see (in `cluster`, if given) changed, however
/// many events there were — a browser never drinks from the firehose.
async fn ticks(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(f): Query<TickFilter>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let sight = s.sight(&caller);
    let mut updates = s.fleet.subscribe();
    let stream = async_stream(move |tx| async move {
        let mut changed = false;
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                update = updates.recv() => match update {
                    Ok(update) => {
                        let cluster = match &*update {
                            FleetUpdate::Events { cluster, .. }
                            | FleetUpdate::Resynced { cluster, .. }
                            | FleetUpdate::Link { cluster, .. }
                            | FleetUpdate::Added { cluster }
                            | FleetUpdate::Removed { cluster } => cluster.clone(),
                        };
                        if f.cluster.as_deref().is_none_or(|c| c == &*cluster)
                            && sight.as_ref().is_none_or(|l| l.cluster(&cluster))
                        {
                            changed = true;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => changed = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                // The page went away: stop now, not at the next change.
                _ = tx.closed() => return,
                _ = every.tick() => {
                    if changed {
                        changed = false;
                        if tx.send(SseEvent::default().event("events").data("{}")).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A stream fed by a task (ends when the client goes away).
fn async_stream<F, Fut>(run: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<SseEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(run(tx));
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
