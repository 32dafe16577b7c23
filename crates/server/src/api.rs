//! The REST API (`/api/v1`), the live event stream and `/metrics`.
//!
//! Handlers are thin: parse, call the fleet / store / operations path,
//! render. Every error is JSON `{"error": {"code", "message"}}` with a
//! 4xx/5xx status and a stable code. Every call but login, health and the
//! OpenAPI document needs a session (see [`identify`]); with logins off
//! (development, loopback only) the `X-Haven-User` header names the
//! requester (default `anonymous`).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use haven_model::{ClusterSnapshot, Event, EventKind, GroupState, Name, Operation, SystemStatus};
use haven_store::{HistoryQuery, OperationQuery};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;

use crate::auth::Caller;
use crate::config::ClusterEntry;
use crate::fleet::{Attention, ClusterInfo, FleetUpdate, Hit, LinkStatus, Sight, Summary};
use crate::ops::{self, OperationResult};
use crate::writer::WRITE_BUCKETS;
use crate::{ManageError, Server};

type AppState = Arc<Server>;

/// An API error: a status, a stable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// A refusal to record in the access log (the cluster, if any).
    pub denied: Option<Denial>,
}

/// A refused request, as the response carries it to the access log.
#[derive(Debug, Clone)]
pub struct Denial {
    pub cluster: Option<String>,
    pub reason: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `bad_request`, `bad_json`, `not_found`,
    /// `unknown_cluster`, `conflict`, `method_not_allowed`, `internal`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            denied: None,
        }
    }

    /// Marks this answer as a refusal, recorded in the access log with
    /// `reason` (which may say more than the caller is told).
    pub(crate) fn denied(mut self, cluster: &str, reason: &str) -> Self {
        self.denied = Some(Denial {
            cluster: Some(cluster.to_string()).filter(|c| !c.is_empty()),
            reason: reason.to_string(),
        });
        self
    }

    pub(crate) fn permission_denied(message: String) -> Self {
        let reason = message.clone();
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message).denied("", &reason)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn unknown_cluster(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_cluster",
            format!("no cluster named {name}; GET /api/v1/clusters lists them"),
        )
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(denial) = self.denied {
            response.extensions_mut().insert(denial);
        }
        response
    }
}

/// `Json<T>` whose rejections are API errors.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                rejection.body_text(),
            )),
        }
    }
}

/// `Query<T>` whose rejections are API errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// The API's routes.
pub fn router(server: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/servers", get(servers))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/login-links", post(create_login_link))
        .route("/login", get(redeem_login_link))
        .merge(crate::console::routes())
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/clusters", get(list_clusters).post(add_cluster))
        .route(
            "/api/v1/clusters/{name}",
            get(cluster).delete(remove_cluster),
        )
        .route("/api/v1/clusters/{name}/operations", post(operate))
        .route("/api/v1/tokens", post(create_token))
        .route(
            "/api/v1/grants",
            get(crate::admin::list_grants).post(crate::admin::add_grant),
        )
        .route(
            "/api/v1/grants/{id}",
            axum::routing::delete(crate::admin::remove_grant),
        )
        .route("/api/v1/access-log", get(crate::admin::access_log))
        .route(
            "/api/v1/db/backups",
            get(crate::maintenance::list_backups).post(crate::maintenance::create_backup),
        )
        .route("/api/v1/db/prune", post(crate::maintenance::prune))
        .route("/api/v1/faults", get(faults))
        .route("/api/v1/search", get(search))
        .route(
            "/api/v1/tags",
            get(crate::tags::api::list)
                .put(crate::tags::api::set)
                .delete(crate::tags::api::remove),
        )
        .route(
            "/api/v1/searches",
            get(crate::tags::api::list_searches).post(crate::tags::api::save_search),
        )
        .route(
            "/api/v1/searches/{id}",
            axum::routing::delete(crate::tags::api::delete_search),
        )
        .route("/api/v1/systems/{system}", get(system))
        .route("/api/v1/history", get(history))
        .route("/api/v1/gaps", get(gaps))
        .route("/api/v1/operations", get(operations))
        .route("/api/v1/alerts", get(crate::alerts::api::list))
        .route(
            "/api/v1/alerts/deliveries",
            get(crate::alerts::api::deliveries),
        )
        .route("/api/v1/alerts/test", post(crate::alerts::api::test))
        .route(
            "/api/v1/alerts/{id}/ack",
            post(crate::alerts::api::acknowledge),
        )
        .route(
            "/api/v1/reports/availability",
            get(crate::reports::api::get_availability),
        )
        .route(
            "/api/v1/reports/schedules/{name}/send",
            post(crate::reports::api::send_now),
        )
        .route("/api/v1/past/summary", get(crate::timeline::api::summary))
        .route(
            "/api/v1/past/clusters/{name}",
            get(crate::timeline::api::cluster),
        )
        .route(
            "/api/v1/peers",
            get(crate::peers::api::list).post(crate::peers::api::add),
        )
        .route(
            "/api/v1/peers/tokens",
            post(crate::peers::api::create_token),
        )
        .route(
            "/api/v1/peers/{site}",
            axum::routing::delete(crate::peers::api::remove),
        )
        .route("/api/v1/events", get(events))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; GET /api/v1/openapi.json lists them",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see /api/v1/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            identify,
        ))
        .with_state(server)
}

/// Who is on the other end of the local Unix socket (peer credentials).
#[derive(Debug, Clone)]
pub struct LocalPeer {
    pub uid: Option<u32>,
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for LocalPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        LocalPeer {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

/// The caller's address, for login throttling.
#[derive(Debug, Clone)]
struct Peer(String);

/// Paths anyone may call.
const PUBLIC: &[&str] = &[
    "/api/v1/login",
    "/api/v1/health",
    "/api/v1/servers",
    "/api/v1/openapi.json",
];

/// The session cookie.
const COOKIE: &str = "haven_session";

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(String::from)
        })
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// Works out who is calling and puts a [`Caller`] into the request; with
/// logins on, refuses calls without a live session (401), and cookie
/// calls that change something without the `X-Haven-CSRF` header (403:
/// another site's page cannot set it).
async fn identify(
    State(s): State<AppState>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers().clone();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::tls::Remote>>()
        .map(|c| c.0 .0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    request.extensions_mut().insert(Peer(peer));
    // On the local socket the kernel vouches for the caller: no password.
    let local = request
        .extensions()
        .get::<axum::extract::ConnectInfo<LocalPeer>>()
        .map(|c| c.0.uid);
    if let Some(uid) = local {
        let Some(user) = uid.and_then(haven_auth::pam::user_name) else {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "cannot tell who is on the local socket",
            )
            .into_response();
        };
        let caller = match &s.auth {
            None => Caller::Unchecked { name: user },
            Some(_) => Caller::User(haven_auth::roles::Identity {
                groups: haven_auth::pam::os_groups(&user),
                user,
            }),
        };
        request.extensions_mut().insert(caller.clone());
        let action = format!("{} {}", request.method(), request.uri().path());
        let response = next.run(request).await;
        let denial = response.extensions().get::<Denial>().cloned();
        audit_denial(&s, &caller, Some("local socket".into()), action, denial).await;
        return response;
    }
    let caller = match &s.auth {
        None => Caller::Unchecked {
            name: requester(&headers),
        },
        Some(auth) => {
            let path = request.uri().path().to_string();
            if PUBLIC.contains(&path.as_str()) || crate::console::PUBLIC.contains(&path.as_str()) {
                return next.run(request).await;
            }
            // A browser without a session goes to the login page.
            let page = !path.starts_with("/api/") && path != "/metrics";
            let browser_login = |why: &str| -> Response {
                let next = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                let next = crate::console::html::seg(&next);
                tracing::debug!("to the login page: {why}");
                axum::response::Redirect::to(&format!("/login?next={next}")).into_response()
            };
            let (token, from_cookie) = match bearer_token(&headers) {
                Some(t) => (Some(t), false),
                None => (cookie_token(&headers), true),
            };
            let Some(token) = token else {
                if page {
                    return browser_login("no session");
                }
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "log in first: POST /api/v1/login with your OS account",
                )
                .into_response();
            };
            if from_cookie && !request.method().is_safe() && !headers.contains_key("x-haven-csrf") {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "a change made with a session cookie needs the X-Haven-CSRF header",
                )
                .into_response();
            }
            match auth.sessions.check(&token, std::time::Instant::now()) {
                Ok(identity) => Caller::User(identity),
                Err(e) if page => return browser_login(&e.to_string()),
                Err(e) => {
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        e.to_string(),
                    )
                    .into_response()
                }
            }
        }
    };
    request.extensions_mut().insert(caller.clone());
    let action = format!("{} {}", request.method(), request.uri().path());
    let source = peer_of(&request);
    let response = next.run(request).await;
    let denial = response.extensions().get::<Denial>().cloned();
    audit_denial(&s, &caller, source, action, denial).await;
    response
}

fn peer_of(request: &Request) -> Option<String> {
    request.extensions().get::<Peer>().map(|p| p.0.clone())
}

/// Records a refusal the handler marked (see [`ApiError::denied`]).
async fn audit_denial(
    s: &Server,
    caller: &Caller,
    source: Option<String>,
    action: String,
    denial: Option<Denial>,
) {
    let Some(denial) = denial else {
        return;
    };
    s.record_access(haven_store::NewAccess {
        time_ms: crate::now_ms(),
        user: caller.name().to_string(),
        source,
        action: if action.starts_with("GET ") {
            "read"
        } else {
            "change"
        }
        .into(),
        target: Some(action),
        cluster: denial.cluster.clone(),
        outcome: haven_store::AccessOutcome::Denied,
        reason: Some(denial.reason.clone()),
    })
    .await;
}

/// A login.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// An OS account (`user`), or a directory one (`user@domain`).
    pub user: String,
    pub password: String,
}

/// A session.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct LoginAnswer {
    /// Send as `Authorization: Bearer TOKEN` (it is also set as a cookie).
    pub token: String,
    pub user: String,
    pub groups: Vec<String>,
    /// The session ends after this many seconds unused.
    pub idle_secs: u64,
}

async fn login(
    State(s): State<AppState>,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let Some(auth) = &s.auth else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "auth_disabled",
            "logins are off on this server ([auth] enabled = false)",
        ));
    };
    let result = auth.login(&body.user, &body.password, &peer).await;
    // An unknown user and a wrong password alike are "rejected" to the
    // caller; the server log has the detail.
    s.record_login(
        &body.user,
        &peer,
        None,
        result.as_ref().err().map(|e| e.to_string()),
    )
    .await;
    match result {
        Ok((token, identity)) => {
            let cookie = session_cookie(&token);
            let answer = LoginAnswer {
                token,
                user: identity.user,
                groups: identity.groups,
                idle_secs: auth.idle().as_secs(),
            };
            Ok(([(header::SET_COOKIE, cookie)], Json(answer)).into_response())
        }
        Err(crate::auth::LoginFailure::Throttled(wait)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!(
                "too many failed logins; try again in {} s",
                wait.as_secs().max(1)
            ),
        )),
        Err(crate::auth::LoginFailure::Login(e)) => {
            match e {
                haven_auth::pam::LoginError::Unavailable(_)
                | haven_auth::pam::LoginError::Pam(_) => {
                    // The detail (paths, directory errors) is for the
                    // administrator, not for whoever tries to log in.
                    tracing::error!(user = body.user, "a login could not be checked: {e}");
                    Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "login_unavailable",
                        "logins cannot be checked right now; the server's log says why",
                    ))
                }
                _ => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "login_failed",
                    e.to_string(),
                )),
            }
        }
    }
}

async fn logout(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    if let (Some(auth), Some(token)) = (
        &s.auth,
        bearer_token(&headers).or_else(|| cookie_token(&headers)),
    ) {
        if auth.sessions.close(&token) {
            s.record_access(haven_store::NewAccess {
                time_ms: crate::now_ms(),
                user: caller.name().to_string(),
                source: None,
                action: "logout".into(),
                target: None,
                cluster: None,
                outcome: haven_store::AccessOutcome::Allowed,
                reason: None,
            })
            .await;
        }
    }
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"),
        )],
    )
        .into_response()
}

/// A one-time login link.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct LoginLink {
    /// Open `https://SERVER{path}` in a browser: it logs in as the caller,
    /// once.
    pub path: String,
    pub expires_in_secs: u64,
}

/// Makes a one-time login link for the caller (the demo and
/// `haven login-link` use it through the local socket, where the kernel
/// says who the caller is).
async fn create_login_link(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<(StatusCode, Json<LoginLink>), ApiError> {
    let (Some(auth), Caller::User(identity)) = (&s.auth, caller) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "auth_disabled",
            "logins are off on this server ([auth] enabled = false)",
        ));
    };
    let code = auth
        .links
        .issue(identity, std::time::Instant::now())
        .map_err(|e| ApiError::internal(format!("cannot make a login code: {e}")))?;
    Ok((
        StatusCode::CREATED,
        Json(LoginLink {
            path: format!("/login?code={code}"),
            expires_in_secs: auth.links.ttl().as_secs(),
        }),
    ))
}

/// `?code=CODE` (without it, the login page)
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CodeQuery {
    pub code: Option<String>,
}

/// Spends a one-time login link: sets the session cookie and goes to the
/// start page.
async fn redeem_login_link(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CodeQuery>,
) -> Result<Response, ApiError> {
    let Some(auth) = &s.auth else {
        return Ok(axum::response::Redirect::to("/").into_response());
    };
    let Some(code) = q.code else {
        return Ok(crate::console::login_page(None));
    };
    let now = std::time::Instant::now();
    let identity = auth.links.redeem(&code, now).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "this login link is unknown, used already or expired; make a new one (haven login-link)",
        )
    })?;
    let user = identity.user.clone();
    let token = auth
        .sessions
        .open(identity, now)
        .map_err(|e| ApiError::internal(format!("cannot make a session token: {e}")))?;
    tracing::info!(user, "login with a one-time link");
    Ok((
        [(header::SET_COOKIE, session_cookie(&token))],
        axum::response::Redirect::to("/"),
    )
        .into_response())
}

fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/")
}

/// Who the caller is and what they may do fleet-wide.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct WhoAmI {
    pub user: String,
    pub groups: Vec<String>,
    /// Their role on every cluster, if any (per-cluster grants may add more).
    pub fleet_role: Option<String>,
    pub server_admin: bool,
    /// False when logins are off on this server.
    pub authenticated: bool,
}

async fn whoami(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Json<WhoAmI> {
    Json(match (&caller, &s.auth) {
        (Caller::User(identity), Some(auth)) => WhoAmI {
            user: identity.user.clone(),
            groups: identity.groups.clone(),
            fleet_role: auth
                .policy()
                .fleet_role(identity)
                .map(|r| r.title().to_string()),
            server_admin: auth.policy().is_server_admin(identity),
            authenticated: true,
        },
        _ => WhoAmI {
            user: caller.name().to_string(),
            groups: Vec::new(),
            fleet_role: None,
            server_admin: true,
            authenticated: false,
        },
    })
}

/// Refuses a caller with neither a role on every cluster nor the Server
/// Administrator's (server-wide figures such as /metrics).
fn need_fleet_view(s: &Server, caller: &Caller) -> Result<(), ApiError> {
    match (caller, &s.auth) {
        (Caller::User(identity), Some(auth))
            if auth.policy().fleet_role(identity).is_none()
                && !auth.policy().is_server_admin(identity) =>
        {
            Err(ApiError::permission_denied(format!(
                "{} has neither a fleet-wide role nor Server Administrator; this view needs one",
                identity.user
            )))
        }
        _ => Ok(()),
    }
}

/// Refuses a caller who does not manage the server.
pub(crate) fn need_server_admin(s: &Server, caller: &Caller) -> Result<(), ApiError> {
    match (caller, &s.auth) {
        (Caller::User(identity), Some(auth)) if !auth.policy().is_server_admin(identity) => {
            Err(ApiError::permission_denied(format!(
                "{} is not a Server Administrator ([auth] server_admins)",
                identity.user
            )))
        }
        _ => Ok(()),
    }
}

/// Server health.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub started_ms: i64,
    pub clusters: usize,
    /// `active`, or `standby` for a standby of a clustered server.
    pub role: String,
    /// The active server of its group, when this is a standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_url: Option<String>,
}

async fn health(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_ms: s.started_ms(),
        clusters: s.fleet.names().len(),
        role: "active".into(),
        active_url: None,
    })
}

/// The servers of this server's group (a clustered server), their roles
/// and health; outside a group, this server alone. Public, like health:
/// load balancers and monitoring ask it.
async fn servers(State(s): State<AppState>) -> Json<crate::group::GroupView> {
    Json(s.group_view())
}

/// `?limit=N`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LimitQuery {
    /// At most this many items (default 50, at most 10,000).
    pub limit: Option<usize>,
}

pub(crate) fn limit(requested: Option<usize>, default: usize) -> usize {
    requested.unwrap_or(default).clamp(1, 10_000)
}

async fn summary(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Summary>, ApiError> {
    let limit = limit(q.limit, 50);
    Ok(Json(s.summary_for(&caller, limit)))
}

/// `?tag=KEY=VALUE,...`: only what carries every tag (see `crate::tags`).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TagParam {
    /// `key=value` (the value may be a glob: `prod*`) or a key alone;
    /// several, comma-separated, must all match.
    pub tag: Option<String>,
}

pub(crate) fn tag_filters(tag: Option<&str>) -> Result<Vec<crate::tags::TagFilter>, ApiError> {
    crate::tags::parse_filters(tag).map_err(ApiError::bad_request)
}

async fn list_clusters(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<TagParam>,
) -> Result<Json<Vec<ClusterInfo>>, ApiError> {
    let filters = tag_filters(q.tag.as_deref())?;
    let mut all = match s.sight(&caller) {
        None => s.fleet.clusters(),
        Some(sight) => s.fleet.seen_by(&sight).clusters(),
    };
    all.retain(|c| filters.iter().all(|f| f.matches(&c.tags)));
    Ok(Json(all))
}

/// A cluster to manage through a direct connection to its engine.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    /// Must match the engine's cluster name.
    pub name: String,
    /// The engine's socket, HOST:PORT.
    pub address: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// An access log entry for a change the Server Administrator made.
pub(crate) fn admin_change(
    caller: &Caller,
    action: &str,
    cluster: &str,
    target: Option<String>,
) -> haven_store::NewAccess {
    haven_store::NewAccess {
        time_ms: crate::now_ms(),
        user: caller.name().to_string(),
        source: None,
        action: action.into(),
        target: target.or_else(|| Some(cluster.to_string()).filter(|c| !c.is_empty())),
        cluster: Some(cluster.to_string()).filter(|c| !c.is_empty()),
        outcome: haven_store::AccessOutcome::Allowed,
        reason: None,
    }
}

fn manage_error(e: ManageError) -> ApiError {
    match e {
        ManageError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        ManageError::Unknown(name) => ApiError::unknown_cluster(&name),
        ManageError::Invalid(_) => ApiError::bad_request(e.to_string()),
        ManageError::Store(_) => ApiError::internal(e.to_string()),
    }
}

async fn add_cluster(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<NewCluster>,
) -> Result<(StatusCode, Json<LinkStatus>), ApiError> {
    need_server_admin(&s, &caller)?;
    let name = body.name.clone();
    s.add_cluster(ClusterEntry {
        name: body.name,
        address: body.address,
        user: body.user,
        password: body.password,
    })
    .await
    .map_err(manage_error)?;
    s.record_access(admin_change(&caller, "add_cluster", &name, None))
        .await;
    let link = s
        .fleet
        .link(&name)
        .ok_or_else(|| ApiError::internal("cluster vanished"))?;
    Ok((StatusCode::CREATED, Json(link)))
}

async fn remove_cluster(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    need_server_admin(&s, &caller)?;
    s.remove_cluster(&name).await.map_err(manage_error)?;
    s.record_access(admin_change(&caller, "remove_cluster", &name, None))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// One cluster: its link and, once synced, its whole state.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClusterDetail {
    pub name: String,
    pub link: LinkStatus,
    pub snapshot: Option<ClusterSnapshot>,
    /// The tags of the cluster and of its groups and systems (those the
    /// caller sees).
    #[serde(default)]
    pub tags: Vec<crate::tags::TagView>,
}

async fn cluster(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<ClusterDetail>, ApiError> {
    let sight = s.sight(&caller);
    if sight.as_ref().is_some_and(|l| !l.cluster(&name)) {
        return Err(ApiError::unknown_cluster(&name).denied(&name, "no role on this cluster"));
    }
    let link = s
        .fleet
        .link(&name)
        .ok_or_else(|| ApiError::unknown_cluster(&name))?;
    let snapshot = match &sight {
        None => s.fleet.snapshot(&name),
        Some(l) => s
            .fleet
            .with_snapshot(&name, |snap| crate::fleet::visible_snapshot(snap, l)),
    };
    let mut tags = s.fleet.tags_of(&name);
    if let Some(l) = &sight {
        tags.groups.retain(|g, _| l.group(&name, g));
    }
    Ok(Json(ClusterDetail {
        snapshot,
        tags: tags.entries(&name),
        name,
        link,
    }))
}

/// A request to run an operation on a cluster.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OperationRequest {
    #[serde(flatten)]
    pub op: Operation,
    /// Wait for the final state (or failure) before answering.
    #[serde(default)]
    pub wait: bool,
    /// With `wait`: give up after this many seconds (default 300).
    pub timeout_secs: Option<u64>,
}

fn requester(headers: &HeaderMap) -> String {
    headers
        .get("x-haven-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .unwrap_or("anonymous")
        .to_string()
}

async fn operate(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<OperationRequest>,
) -> Result<(StatusCode, Json<OperationResult>), ApiError> {
    let wait = body
        .wait
        .then(|| Duration::from_secs(body.timeout_secs.unwrap_or(300).max(1)));
    let result = ops::run(&s, &caller, &name, body.op, wait)
        .await
        .map_err(|e| match e {
            ops::OpError::UnknownCluster(n) => ApiError::unknown_cluster(&n),
            ops::OpError::Invisible(n) => {
                ApiError::unknown_cluster(&n).denied(&n, "no role on this cluster")
            }
            ops::OpError::Audit(m) => ApiError::internal(m),
        })?;
    let status = match result.outcome.as_str() {
        "refused" if result.code == Some(haven_model::RefusalCode::PermissionDenied) => {
            StatusCode::FORBIDDEN
        }
        "refused" => StatusCode::CONFLICT,
        "failed" => StatusCode::BAD_GATEWAY,
        "timed_out" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::OK,
    };
    Ok((status, Json(result)))
}

/// A request for a connector join token.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Only this cluster may join with the token (default: any).
    pub cluster: Option<String>,
    /// How long the token stays valid (default from `[connectors]`).
    pub ttl_secs: Option<u64>,
}

async fn create_token(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<crate::connectors::IssuedToken>), ApiError> {
    need_server_admin(&s, &caller)?;
    let ttl = Duration::from_secs(
        body.ttl_secs
            .unwrap_or(s.config.connectors.token_ttl_secs)
            .clamp(1, 30 * 24 * 3600),
    );
    let cluster = body.cluster.clone().unwrap_or_default();
    let token = s
        .create_join_token(body.cluster, ttl)
        .await
        .map_err(ApiError::internal)?;
    s.record_access(admin_change(&caller, "create_token", &cluster, None))
        .await;
    Ok((StatusCode::CREATED, Json(token)))
}

/// Everything that needs attention.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Faults {
    pub total: usize,
    pub items: Vec<Attention>,
}

/// `?limit=N&tag=KEY=VALUE,...`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FaultsQuery {
    /// At most this many items (default 1000).
    pub limit: Option<usize>,
    /// Only items whose cluster, group or system carries every tag.
    pub tag: Option<String>,
}

async fn faults(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<FaultsQuery>,
) -> Result<Json<Faults>, ApiError> {
    let limit = limit(q.limit, 1000);
    let filters = tag_filters(q.tag.as_deref())?;
    let (items, total) = match s.sight(&caller) {
        None => s.fleet.attention_tagged(limit, &filters),
        Some(sight) => s.fleet.seen_by(&sight).attention_tagged(limit, &filters),
    };
    Ok(Json(Faults { total, items }))
}

/// `?q=QUERY&tag=KEY=VALUE,...&limit=N`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchQuery {
    /// The query: words (names, types, tags, attribute values; case
    /// insensitive), `key=value` or `tag:key=value`, `state:faulted`,
    /// `kind:group`, `cluster:GLOB`, `group:GLOB`, `type:GLOB`, `-TERM`
    /// (not); every term must match. See docs/search.md.
    #[serde(default)]
    pub q: String,
    /// Tags every object must carry (as `tag:` terms).
    pub tag: Option<String>,
    /// Default 100.
    pub limit: Option<usize>,
}

async fn search(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Vec<Hit>>, ApiError> {
    let filters = tag_filters(q.tag.as_deref())?;
    let query = match (q.q.trim().is_empty(), filters.is_empty()) {
        (true, true) => {
            return Err(ApiError::bad_request(
                "q must not be empty: a name, key=value, state:faulted, kind:group ...",
            ))
        }
        (true, false) => crate::search::Query::default(),
        (false, _) => crate::search::Query::parse(&q.q).map_err(ApiError::bad_request)?,
    }
    .with_tags(filters);
    let limit = limit(q.limit, 100);
    Ok(Json(match s.sight(&caller) {
        None => s.fleet.search(&query, limit),
        Some(sight) => s.fleet.seen_by(&sight).search(&query, limit),
    }))
}

/// A system of one cluster and the groups on it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SystemView {
    pub cluster: String,
    pub system: SystemStatus,
    /// Groups whose SystemList names the system, with their state there.
    pub groups: Vec<(Name, GroupState)>,
    /// The system's own tags.
    #[serde(default, skip_serializing_if = "crate::tags::TagSet::is_empty")]
    pub tags: crate::tags::TagSet,
}

async fn system(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(system): Path<String>,
) -> Result<Json<Vec<SystemView>>, ApiError> {
    let view = |c: &Name, snap: &ClusterSnapshot| {
        snap.system(&system).map(|st| SystemView {
            cluster: c.to_string(),
            system: st.clone(),
            groups: snap
                .groups
                .iter()
                .filter_map(|g| {
                    snap.group_state(&g.name, &system)
                        .map(|x| (g.name.clone(), x))
                })
                .collect(),
            tags: Default::default(),
        })
    };
    let mut views: Vec<SystemView> = match s.sight(&caller) {
        None => s
            .fleet
            .clusters_with_system(&system)
            .into_iter()
            .filter_map(|c| s.fleet.with_snapshot(&c, |snap| view(&c, snap)).flatten())
            .collect(),
        Some(sight) => {
            let seen = s.fleet.seen_by(&sight);
            seen.clusters_with_system(&system)
                .into_iter()
                .filter_map(|c| seen.snapshot(&c).and_then(|snap| view(&c, snap)))
                .collect()
        }
    };
    // Read after the snapshots: the fleet's lock is not taken twice.
    for v in &mut views {
        v.tags = s
            .fleet
            .tags_of(&v.cluster)
            .systems
            .get(&system)
            .cloned()
            .unwrap_or_default();
    }
    if views.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no cluster has a system named {system}"),
        ));
    }
    Ok(Json(views))
}

/// History filters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HistoryParams {
    pub cluster: Option<String>,
    /// A group, resource or system name.
    pub object: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Newest first; default 100.
    pub limit: Option<usize>,
}

/// One recorded event.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEntry {
    pub cluster: String,
    pub epoch: u64,
    pub seq: u64,
    pub time_ms: i64,
    #[serde(flatten)]
    pub event: EventKind,
}

async fn history(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<HistoryParams>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let sight = s.sight(&caller);
    let clusters = visible_clusters(&s, sight.as_ref(), q.cluster.as_deref())?;
    let query = HistoryQuery {
        cluster: q.cluster,
        clusters,
        object: q.object,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        limit: limit(q.limit, 100),
        oldest_first: false,
    };
    let rows = s
        .read(move |store| haven_store::Store::history(store, &query))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        rows.into_iter()
            .filter(|r| {
                sight
                    .as_ref()
                    .is_none_or(|l| crate::fleet::visible_event(&r.cluster, &r.event, l))
            })
            .map(|r| HistoryEntry {
                cluster: r.cluster,
                epoch: r.epoch,
                seq: r.event.seq,
                time_ms: r.event.time_ms,
                event: r.event.kind,
            })
            .collect(),
    ))
}

/// `?cluster=NAME`
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ClusterFilter {
    pub cluster: Option<String>,
}

/// For a limited caller, the clusters they see (history of others is
/// not theirs to read); refuses a named cluster they do not see as
/// unknown. `None`: no restriction.
pub(crate) fn visible_clusters(
    s: &Server,
    sight: Option<&crate::access::Limited>,
    named: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(l) = sight else { return Ok(None) };
    if let Some(c) = named {
        if !l.cluster(c) {
            return Err(ApiError::unknown_cluster(c).denied(c, "no role on this cluster"));
        }
    }
    Ok(s.visible_cluster_names(Some(l)))
}

/// A stretch of history that could not be recorded.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct GapEntry {
    pub cluster: String,
    /// Last (epoch, seq) recorded before the gap, if any.
    pub after: Option<(u64, u64)>,
    /// Where recording resumed.
    pub resumed: (u64, u64),
    pub time_ms: i64,
    pub reason: String,
}

async fn gaps(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<ClusterFilter>,
) -> Result<Json<Vec<GapEntry>>, ApiError> {
    let sight = s.sight(&caller);
    let clusters = visible_clusters(&s, sight.as_ref(), q.cluster.as_deref())?;
    let rows = s
        .read(move |store| haven_store::Store::gaps(store, q.cluster.as_deref()))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        rows.into_iter()
            .filter(|g| clusters.as_ref().is_none_or(|cs| cs.contains(&g.cluster)))
            .map(|g| GapEntry {
                cluster: g.cluster,
                after: g.after.map(|c| (c.epoch, c.seq)),
                resumed: (g.resumed.epoch, g.resumed.seq),
                time_ms: g.time_ms,
                reason: g.reason,
            })
            .collect(),
    ))
}

/// Audit filters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OperationParams {
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// Newest first; default 100.
    pub limit: Option<usize>,
}

/// One audited operation.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct OperationEntry {
    pub id: i64,
    pub cluster: String,
    pub user: String,
    pub op: Operation,
    pub requested_ms: i64,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub finished_ms: Option<i64>,
}

async fn operations(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(q): ApiQuery<OperationParams>,
) -> Result<Json<Vec<OperationEntry>>, ApiError> {
    let sight = s.sight(&caller);
    // A named cluster the caller does not see is refused as unknown.
    visible_clusters(&s, sight.as_ref(), q.cluster.as_deref())?;
    let query = OperationQuery {
        cluster: q.cluster,
        clusters: None,
        user: q.user,
        limit: limit(q.limit, 100),
    };
    let rows = s
        .visible_operations(sight.as_ref(), query)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|o| OperationEntry {
                id: o.id,
                cluster: o.cluster,
                user: o.user,
                op: o.op,
                requested_ms: o.requested_ms,
                outcome: o.outcome.map(|x| x.as_str().to_string()),
                reason: o.reason,
                finished_ms: o.finished_ms,
            })
            .collect(),
    ))
}

/// Live stream filters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EventFilter {
    pub cluster: Option<String>,
    /// Only events about this group, resource or system.
    pub object: Option<String>,
}

fn about(event: &Event, object: &str) -> bool {
    match &event.kind {
        EventKind::ResourceState {
            group,
            resource,
            system,
            ..
        } => &**group == object || &**resource == object || &**system == object,
        EventKind::GroupState { group, system, .. } => &**group == object || &**system == object,
        EventKind::SystemState { system, .. } | EventKind::SystemFreeze { system, .. } => {
            &**system == object
        }
        EventKind::Failover {
            group, from, to, ..
        } => &**group == object || &**from == object || to.as_deref() == Some(object),
        EventKind::Notice { object: o, .. } => o.as_deref() == Some(object),
        other => other.group().is_some_and(|g| &**g == object),
    }
}

/// Server-Sent Events: one SSE event per fleet update, named by its kind
/// (`events`, `resynced`, `link`, `added`, `removed`), JSON data; `lagged`
/// when this client fell behind and should re-read the state.
async fn events(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiQuery(f): ApiQuery<EventFilter>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let sight = s.sight(&caller);
    if let Some(c) = &f.cluster {
        if sight.as_ref().is_some_and(|l| !l.cluster(c)) {
            return Err(ApiError::unknown_cluster(c).denied(c, "no role on this cluster"));
        }
        if !s.fleet.contains(c) {
            return Err(ApiError::unknown_cluster(c));
        }
    }
    let stream = BroadcastStream::new(s.fleet.subscribe()).filter_map(move |item| {
        let out = match item {
            Err(_) => Some(SseEvent::default().event("lagged").data(
                "{\"message\":\"this stream fell behind and skipped updates; re-read the state\"}",
            )),
            Ok(update) => filter_update(
                &update,
                f.cluster.as_deref(),
                f.object.as_deref(),
                sight.as_ref(),
            )
            .map(|u| {
                let kind = match &u {
                    FleetUpdate::Events { .. } => "events",
                    FleetUpdate::Resynced { .. } => "resynced",
                    FleetUpdate::Link { .. } => "link",
                    FleetUpdate::Added { .. } => "added",
                    FleetUpdate::Removed { .. } => "removed",
                };
                SseEvent::default()
                    .event(kind)
                    .data(serde_json::to_string(&u).unwrap_or_default())
            }),
        };
        std::future::ready(out.map(Ok))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The part of an update a subscriber asked for and may see.
fn filter_update(
    update: &FleetUpdate,
    cluster: Option<&str>,
    object: Option<&str>,
    sight: Option<&crate::access::Limited>,
) -> Option<FleetUpdate> {
    let name = match update {
        FleetUpdate::Events { cluster, .. }
        | FleetUpdate::Resynced { cluster, .. }
        | FleetUpdate::Link { cluster, .. }
        | FleetUpdate::Added { cluster }
        | FleetUpdate::Removed { cluster } => cluster,
    };
    if cluster.is_some_and(|c| c != &**name) || sight.is_some_and(|l| !l.cluster(name)) {
        return None;
    }
    match (update, object, sight) {
        (
            FleetUpdate::Events {
                cluster,
                epoch,
                events,
            },
            _,
            _,
        ) if object.is_some() || sight.is_some() => {
            let events: Vec<Event> = events
                .iter()
                .filter(|e| object.is_none_or(|o| about(e, o)))
                .filter(|e| sight.is_none_or(|l| crate::fleet::visible_event(cluster, e, l)))
                .cloned()
                .collect();
            (!events.is_empty()).then(|| FleetUpdate::Events {
                cluster: cluster.clone(),
                epoch: *epoch,
                events,
            })
        }
        _ => Some(update.clone()),
    }
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document().to_string(),
    )
}

/// Prometheus text format (server-wide figures: for a fleet-wide role or
/// the Server Administrator).
async fn metrics(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    need_fleet_view(&s, &caller)?;
    use std::fmt::Write;
    let m = &s.metrics;
    let summary = s.fleet.summary(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP haven_clusters Clusters managed by this server."
    );
    let _ = writeln!(out, "# TYPE haven_clusters gauge");
    let _ = writeln!(out, "haven_clusters {}", summary.clusters);
    let _ = writeln!(out, "# HELP haven_links Links by state.");
    let _ = writeln!(out, "# TYPE haven_links gauge");
    for state in ["connecting", "connected", "stale", "disconnected"] {
        let n = summary.links.get(state).copied().unwrap_or(0);
        let _ = writeln!(out, "haven_links{{state=\"{state}\"}} {n}");
    }
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {v}");
    };
    counter(
        &mut out,
        "haven_events_received_total",
        "Events received from engines and queued for history.",
        m.events_received.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "haven_history_rows_written_total",
        "History rows written to the database.",
        m.rows_written.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "haven_history_duplicates_total",
        "Events received twice and not written again.",
        m.duplicates.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "haven_history_write_errors_total",
        "Failed history batch writes.",
        m.write_errors.load(Ordering::Relaxed),
    );
    let depth = s.history.max_capacity() - s.history.capacity();
    let _ = writeln!(
        out,
        "# HELP haven_history_queue_depth Messages waiting for the history writer."
    );
    let _ = writeln!(out, "# TYPE haven_history_queue_depth gauge");
    let _ = writeln!(out, "haven_history_queue_depth {depth}");
    let _ = writeln!(
        out,
        "# HELP haven_history_batch_seconds Time to write one history batch."
    );
    let _ = writeln!(out, "# TYPE haven_history_batch_seconds histogram");
    let mut cumulative = 0;
    for (i, bound) in WRITE_BUCKETS.iter().enumerate() {
        cumulative += m.write_buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "haven_history_batch_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += m.write_buckets[WRITE_BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "haven_history_batch_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "haven_history_batch_seconds_sum {}",
        m.write_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "haven_history_batch_seconds_count {cumulative}");
    out.push_str(&s.group_view().metrics());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
