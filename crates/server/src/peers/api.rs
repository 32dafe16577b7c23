//! The peers API: pairing tokens, pairing, the list, unpairing. Changes
//! are for Server Administrators and go to the access log; the list is
//! for anyone logged in.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{IssuedPairing, PeerView};
use crate::api::{admin_change, need_server_admin, ApiError, ApiJson};
use crate::auth::Caller;

type AppState = std::sync::Arc<crate::Server>;

/// A request for a pairing token.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingTokenRequest {
    /// How long the token stays valid (default from `[peers]`).
    pub ttl_secs: Option<u64>,
}

/// Pair with another site's server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPeer {
    /// `HOST:PORT` of its peer port (as its token's command says).
    pub address: String,
    /// The pairing token it made (`haven peer token`).
    pub token: String,
}

/// This site and the sites it is paired with.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PeerList {
    /// This server's site name.
    pub site: String,
    /// Where paired sites reach this server.
    pub address: String,
    pub peers: Vec<PeerView>,
}

pub async fn create_token(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<PairingTokenRequest>,
) -> Result<(StatusCode, Json<IssuedPairing>), ApiError> {
    need_server_admin(&s, &caller)?;
    let ttl = Duration::from_secs(
        body.ttl_secs
            .unwrap_or(s.config.peers.token_ttl_secs)
            .clamp(1, 7 * 24 * 3600),
    );
    let issued = s
        .create_pairing_token(caller.name(), ttl)
        .await
        .map_err(ApiError::internal)?;
    s.record_access(admin_change(
        &caller,
        "create_pairing_token",
        "",
        Some("peers".into()),
    ))
    .await;
    Ok((StatusCode::CREATED, Json(issued)))
}

pub async fn list(State(s): State<AppState>) -> Json<PeerList> {
    Json(PeerList {
        site: s.peers.site.clone(),
        address: s.peer_address(),
        peers: s.peer_views(),
    })
}

pub async fn add(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<NewPeer>,
) -> Result<(StatusCode, Json<PeerView>), ApiError> {
    need_server_admin(&s, &caller)?;
    let view = s
        .pair_with(&body.address, &body.token, caller.name())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "pairing_failed", e))?;
    s.record_access(admin_change(
        &caller,
        "pair_peer",
        "",
        Some(format!("site {}", view.site)),
    ))
    .await;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn remove(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(site): Path<String>,
) -> Result<StatusCode, ApiError> {
    need_server_admin(&s, &caller)?;
    match s.remove_peer(&site).await.map_err(ApiError::internal)? {
        true => {
            s.record_access(admin_change(
                &caller,
                "unpair_peer",
                "",
                Some(format!("site {site}")),
            ))
            .await;
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no paired site named {site}; GET /api/v1/peers lists them"),
        )),
    }
}
