//! What a standby serves on its ports while another server is active.
//!
//! - `GET /api/v1/health`: its own health (`role: standby`, the active
//!   server's URL); `GET /api/v1/servers`: the group; `GET /metrics`: its
//!   role. These need no login (the standby has no sessions of its own).
//! - Everything else is forwarded to the active server over HTTPS (trusting
//!   the fleet CA): a user may keep any server's address, and the active
//!   server decides, with its own logins and roles. While no server is
//!   active (a takeover) the answer is 503 saying so, with `Retry-After`.
//! - On the local socket, which identifies callers by the kernel's word
//!   and so cannot be forwarded, the same three reads, and for the rest
//!   503 naming the active server.
//! - The connector port accepts and closes at once: a connector then
//!   dials the next server it knows.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;

use super::{GroupView, Member};
use crate::tls;

#[derive(Clone)]
struct Standby {
    member: Arc<Member>,
    /// How to reach the active server; `None` on the local socket.
    forward: Option<Arc<rustls::ClientConfig>>,
}

/// The router the API port serves: the standby's, then the active
/// server's (the port itself never closes).
pub type Switch = Arc<std::sync::RwLock<Router>>;

/// Serves the standby's API (on `api`, with `https` unless plain), its
/// local socket and its connector port; returns the API's [`Switch`] and
/// the other two's tasks (abort them to close those ports).
pub async fn serve(
    member: Arc<Member>,
    api: TcpListener,
    https: Option<Arc<rustls::ServerConfig>>,
    forward: Arc<rustls::ClientConfig>,
    connectors: TcpListener,
    local: &std::path::Path,
) -> anyhow::Result<(Switch, Vec<JoinHandle<()>>)> {
    let switch: Switch = Arc::new(std::sync::RwLock::new(router(Standby {
        member: member.clone(),
        forward: Some(forward),
    })));
    let current = switch.clone();
    let remote = Router::new().fallback_service(tower::service_fn(move |request: Request| {
        let router = current.read().unwrap_or_else(|p| p.into_inner()).clone();
        tower::ServiceExt::oneshot(router, request)
    }));
    let api_task = tokio::spawn(tls::serve_api(api, https, remote, "the API port"));
    let _ = std::fs::remove_file(local);
    let socket = tokio::net::UnixListener::bind(local)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(local, std::fs::Permissions::from_mode(0o666))?;
    }
    let on_socket = router(Standby {
        member,
        forward: None,
    });
    let local_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(socket, on_socket).await {
            tracing::error!("the standby's local socket stopped: {e}");
        }
    });
    let connector_task = tokio::spawn(async move {
        loop {
            // Closed at once: the connector tries the next server.
            if let Ok((stream, _)) = connectors.accept().await {
                drop(stream);
            }
        }
    });
    // The API's task lives as long as the process.
    drop(api_task);
    Ok((switch, vec![local_task, connector_task]))
}

fn router(state: Standby) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/servers", get(servers))
        .route("/metrics", get(metrics))
        .fallback(forward)
        .with_state(state)
}

async fn health(State(s): State<Standby>) -> Json<crate::api::Health> {
    let view = s.member.view();
    Json(crate::api::Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_ms: s.member.me.started_ms,
        clusters: 0,
        // Until the server has started and this port switched to it, even
        // when its lease was just won.
        role: "standby".into(),
        active_url: view.active_url,
    })
}

async fn servers(State(s): State<Standby>) -> Json<GroupView> {
    Json(s.member.view())
}

async fn metrics(State(s): State<Standby>) -> String {
    s.member.view().metrics()
}

/// An answer that says why this standby cannot serve the request and
/// where to go (with `Retry-After`, as the active server may be back in a
/// moment).
fn unavailable(view: &GroupView, status: StatusCode, message: String) -> Response {
    let mut response = (
        status,
        Json(serde_json::json!({
            "error": { "code": "standby", "message": message },
            "active_url": view.active_url,
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// Forwards a request to the active server and its answer back.
async fn forward(State(s): State<Standby>, request: Request) -> Response {
    let view = s.member.view();
    let me = &view.me;
    let active = view.active.as_deref().unwrap_or("?");
    let busy = StatusCode::SERVICE_UNAVAILABLE;
    let url = match &view.active_url {
        None => {
            let message = format!("this server ({me}) is a standby and no server of its group is active right now: a takeover is under way, try again in a few seconds");
            return unavailable(&view, busy, message);
        }
        Some(_) if active == me => {
            let message = format!("this server ({me}) has just won the lease and is starting as the active one: try again in a moment");
            return unavailable(&view, busy, message);
        }
        Some(url) => url.clone(),
    };
    let Some(tls) = s.forward.clone() else {
        let message = format!("this server ({me}) is a standby, and its local socket serves only health, servers and metrics: use the active server, {active} at {url}");
        return unavailable(&view, busy, message);
    };
    match relay(&url, tls, request).await {
        Ok(mut response) => {
            if let Ok(by) = HeaderValue::from_str(me) {
                response.headers_mut().insert("x-haven-forwarded-by", by);
            }
            response
        }
        Err(e) => {
            tracing::warn!("cannot forward to the active server at {url}: {e}");
            let message = format!("this server ({me}) is a standby, and forwarding to the active server, {active} at {url}, failed: {e}");
            unavailable(&view, StatusCode::BAD_GATEWAY, message)
        }
    }
}

async fn relay(
    base: &str,
    tls: Arc<rustls::ClientConfig>,
    mut request: Request,
) -> Result<Response, String> {
    let base: Uri = base.parse().map_err(|e| format!("bad URL {base}: {e}"))?;
    let host = base
        .host()
        .ok_or("no host in the active server's URL")?
        .to_string();
    let https = base.scheme_str() != Some("http");
    let port = base.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((bare.as_str(), port)),
    )
    .await
    .map_err(|_| "no answer within 5 s".to_string())?
    .map_err(|e| e.to_string())?;
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = path.parse().map_err(|e| format!("{e}"))?;
    let authority = HeaderValue::from_str(&format!("{host}:{port}")).map_err(|e| e.to_string())?;
    request.headers_mut().insert(header::HOST, authority);
    let response = if https {
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            haven_pki::connect_tls(tcp, &bare, tls),
        )
        .await
        .map_err(|_| "TLS handshake timed out".to_string())??;
        send(stream, request).await?
    } else {
        send(tcp, request).await?
    };
    Ok(response)
}

async fn send<S>(stream: S, request: Request) -> Result<Response, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.map(Body::new))
}
