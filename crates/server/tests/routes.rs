//! The OpenAPI route list and the router agree: every documented route is
//! served (none falls through to "no such endpoint" or "method not
//! allowed").

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haven_server::config::ServerConfig;
use tower::ServiceExt;

#[tokio::test]
async fn every_documented_route_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::default();
    config.server.data_dir = dir.path().join("data");
    let server = haven_server::Server::start(config).unwrap();
    let routes = haven_server::openapi::routes();
    assert!(routes.len() >= 15);
    for route in routes {
        let path = route
            .path
            .replace("{name}", "nosuch")
            .replace("{system}", "nosuch")
            .replace("{id}", "999");
        let request = Request::builder()
            .method(route.method.to_uppercase().as_str())
            .uri(&path)
            .header("content-type", "application/json")
            .body(Body::from(if route.body.is_some() { "{}" } else { "" }))
            .unwrap();
        let response = haven_server::api::router(server.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            route.method,
            route.path
        );
        if response.status() == StatusCode::NOT_FOUND {
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no such endpoint"),
                "{} {} is documented but not routed",
                route.method,
                route.path
            );
        }
    }
}
