//! The OpenAPI document of `/api/v1`, generated from the same Rust types
//! the handlers use (through `schemars`), so it cannot drift from them.
//! The route list here and the router in [`crate::api`] are checked
//! against each other by a test.

use schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::api::*;
use crate::fleet::{ClusterInfo, Hit, LinkStatus, Summary};
use crate::ops::OperationResult;

/// Makes the JSON Schema of one type, registering what it refers to.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Value;

/// One documented route.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Query parameters: a type whose fields are the parameters.
    pub query: Option<SchemaFn>,
    pub body: Option<SchemaFn>,
    /// Status and schema of the success answer (None: no body).
    pub ok: (u16, Option<SchemaFn>),
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    vec![
        Route { method: "get", path: "/api/v1/health", summary: "Server health and version", query: None, body: None, ok: (200, Some(schema::<Health>)) },
        Route { method: "get", path: "/api/v1/servers", summary: "The servers of this server's group (a clustered server): roles, health, the active one (no login needed)", query: None, body: None, ok: (200, Some(schema::<crate::group::GroupView>)) },
        Route { method: "post", path: "/api/v1/login", summary: "Log in with an OS account (PAM) or user@domain (LDAP); returns a bearer token and sets a session cookie", query: None, body: Some(schema::<LoginRequest>), ok: (200, Some(schema::<LoginAnswer>)) },
        Route { method: "post", path: "/api/v1/logout", summary: "End the session", query: None, body: None, ok: (204, None) },
        Route { method: "get", path: "/api/v1/whoami", summary: "The caller, their groups and fleet-wide role", query: None, body: None, ok: (200, Some(schema::<WhoAmI>)) },
        Route { method: "post", path: "/api/v1/login-links", summary: "A one-time login link for the caller (e.g. through the local socket, where no password is needed)", query: None, body: None, ok: (201, Some(schema::<LoginLink>)) },
        Route { method: "get", path: "/login", summary: "Spend a one-time login link: sets the session cookie and redirects to /", query: Some(schema::<CodeQuery>), body: None, ok: (303, None) },
        Route { method: "get", path: "/api/v1/summary", summary: "Fleet counts by state and what needs attention first", query: Some(schema::<LimitQuery>), body: None, ok: (200, Some(schema::<Summary>)) },
        Route { method: "get", path: "/api/v1/clusters", summary: "Every managed cluster with its link state and tags (?tag=key=value,... filters by the cluster's own tags)", query: Some(schema::<TagParam>), body: None, ok: (200, Some(schema::<Vec<ClusterInfo>>)) },
        Route { method: "post", path: "/api/v1/clusters", summary: "Manage a cluster through a direct connection (persisted)", query: None, body: Some(schema::<NewCluster>), ok: (201, Some(schema::<LinkStatus>)) },
        Route { method: "get", path: "/api/v1/clusters/{name}", summary: "One cluster: link and whole state", query: None, body: None, ok: (200, Some(schema::<ClusterDetail>)) },
        Route { method: "delete", path: "/api/v1/clusters/{name}", summary: "Stop managing a cluster (its history stays)", query: None, body: None, ok: (204, None) },
        Route { method: "post", path: "/api/v1/clusters/{name}/operations", summary: "Run an operation (audited); optionally wait for the final state. 409 refused, 502 failed, 504 timed out", query: None, body: Some(schema::<OperationRequest>), ok: (200, Some(schema::<OperationResult>)) },
        Route { method: "post", path: "/api/v1/tokens", summary: "Create a one-time join token for `haven connector`", query: None, body: Some(schema::<TokenRequest>), ok: (201, Some(schema::<crate::connectors::IssuedToken>)) },
        Route { method: "get", path: "/api/v1/grants", summary: "Role grants in force (from the configuration file and the API); Server Administrator", query: None, body: None, ok: (200, Some(schema::<Vec<crate::admin::GrantView>>)) },
        Route { method: "post", path: "/api/v1/grants", summary: "Grant a role to a user or group at fleet, cluster or service group scope (stored, in force at once); Server Administrator", query: None, body: Some(schema::<crate::admin::GrantBody>), ok: (201, Some(schema::<crate::admin::GrantView>)) },
        Route { method: "delete", path: "/api/v1/grants/{id}", summary: "Revoke a grant made through the API; Server Administrator", query: None, body: None, ok: (204, None) },
        Route { method: "get", path: "/api/v1/access-log", summary: "Logins, logouts, refusals and administrators' changes, newest first; Server Administrator", query: Some(schema::<crate::admin::AccessParams>), body: None, ok: (200, Some(schema::<Vec<crate::admin::AccessEntry>>)) },
        Route { method: "get", path: "/api/v1/db/backups", summary: "Backups in the backup directory, newest first; Server Administrator", query: None, body: None, ok: (200, Some(schema::<Vec<crate::maintenance::BackupInfo>>)) },
        Route { method: "post", path: "/api/v1/db/backups", summary: "Take a consistent, verified backup now (the server keeps running); Server Administrator", query: None, body: None, ok: (201, Some(schema::<crate::maintenance::BackupInfo>)) },
        Route { method: "post", path: "/api/v1/db/prune", summary: "Remove old history (keeping each object's last state before the cut-off) and optionally old audit; Server Administrator", query: None, body: Some(schema::<crate::maintenance::PruneRequest>), ok: (200, Some(schema::<crate::maintenance::PruneAnswer>)) },
        Route { method: "get", path: "/api/v1/faults", summary: "Everything that needs attention (?tag= filters by the tags its cluster, group or system carries)", query: Some(schema::<FaultsQuery>), body: None, ok: (200, Some(schema::<Faults>)) },
        Route { method: "get", path: "/api/v1/search", summary: "Search every cluster, system, group and resource the caller sees: words, key=value, state:, kind:, cluster:, group:, type:, -TERM (docs/search.md)", query: Some(schema::<SearchQuery>), body: None, ok: (200, Some(schema::<Vec<Hit>>)) },
        Route { method: "get", path: "/api/v1/tags", summary: "Tags the caller sees, with who set them and when", query: Some(schema::<crate::tags::api::TagListParams>), body: None, ok: (200, Some(schema::<Vec<haven_store::TagRecord>>)) },
        Route { method: "put", path: "/api/v1/tags", summary: "Set tags on a cluster, group or system (all or none); Group Administrator on a group, Cluster Administrator for a cluster or system", query: None, body: Some(schema::<crate::tags::api::TagChange>), ok: (200, Some(schema::<crate::tags::api::ObjectTags>)) },
        Route { method: "delete", path: "/api/v1/tags", summary: "Remove one tag of a cluster, group or system (the same roles as setting it)", query: Some(schema::<crate::tags::api::TagRemoval>), body: None, ok: (200, Some(schema::<crate::tags::api::ObjectTags>)) },
        Route { method: "get", path: "/api/v1/searches", summary: "The caller's saved searches and the shared ones", query: None, body: None, ok: (200, Some(schema::<Vec<haven_store::SavedSearch>>)) },
        Route { method: "post", path: "/api/v1/searches", summary: "Save a search (private unless shared); 409 when the caller has one of that name", query: None, body: Some(schema::<crate::tags::api::NewSearch>), ok: (201, Some(schema::<haven_store::SavedSearch>)) },
        Route { method: "delete", path: "/api/v1/searches/{id}", summary: "Delete a saved search (its owner, or a Server Administrator)", query: None, body: None, ok: (204, None) },
        Route { method: "get", path: "/api/v1/systems/{system}", summary: "Everything on a system, in every cluster that has one of that name", query: None, body: None, ok: (200, Some(schema::<Vec<SystemView>>)) },
        Route { method: "get", path: "/api/v1/history", summary: "Recorded state changes, newest first", query: Some(schema::<HistoryParams>), body: None, ok: (200, Some(schema::<Vec<HistoryEntry>>)) },
        Route { method: "get", path: "/api/v1/gaps", summary: "Stretches of history that could not be recorded", query: Some(schema::<ClusterFilter>), body: None, ok: (200, Some(schema::<Vec<GapEntry>>)) },
        Route { method: "get", path: "/api/v1/operations", summary: "Audit log of operations, newest first", query: Some(schema::<OperationParams>), body: None, ok: (200, Some(schema::<Vec<OperationEntry>>)) },
        Route { method: "get", path: "/api/v1/past/summary", summary: "Time travel: the fleet's counts and what needed attention at a past instant (?at=2026-12-03T08:15:00Z, 2h, 7d, ...)", query: Some(schema::<crate::timeline::api::AtQuery>), body: None, ok: (200, Some(schema::<crate::timeline::api::PastSummary>)) },
        Route { method: "get", path: "/api/v1/past/clusters/{name}", summary: "Time travel: one cluster's state at a past instant, rebuilt from its checkpoints and history (410 before the last prune)", query: Some(schema::<crate::timeline::api::AtQuery>), body: None, ok: (200, Some(schema::<crate::timeline::PastState>)) },
        Route { method: "get", path: "/api/v1/alerts", summary: "Alerts the caller may see, newest raised first", query: Some(schema::<crate::alerts::api::AlertParams>), body: None, ok: (200, Some(schema::<Vec<haven_store::AlertRecord>>)) },
        Route { method: "post", path: "/api/v1/alerts/{id}/ack", summary: "Acknowledge an alert (the first acknowledgement stays)", query: None, body: None, ok: (200, Some(schema::<haven_store::AlertRecord>)) },
        Route { method: "get", path: "/api/v1/alerts/deliveries", summary: "Every attempt to deliver a notification, newest first", query: Some(schema::<crate::alerts::api::DeliveryParams>), body: None, ok: (200, Some(schema::<Vec<haven_store::DeliveryRecord>>)) },
        Route { method: "post", path: "/api/v1/alerts/test", summary: "Send a test notification through one channel", query: None, body: Some(schema::<crate::alerts::api::TestRequest>), ok: (202, None) },
        Route { method: "get", path: "/api/v1/reports/availability", summary: "Availability per group, cluster and the fleet over a period (JSON, or CSV with format=csv)", query: Some(schema::<crate::reports::api::AvailabilityParams>), body: None, ok: (200, Some(schema::<crate::reports::AvailabilityReport>)) },
        Route { method: "post", path: "/api/v1/reports/schedules/{name}/send", summary: "Mail a scheduled report ([[reports.schedule]]) now (Server Administrators)", query: None, body: None, ok: (200, Some(schema::<crate::reports::AvailabilityReport>)) },
        Route { method: "get", path: "/api/v1/peers", summary: "This site and the sites it is paired with, with their links", query: None, body: None, ok: (200, Some(schema::<crate::peers::api::PeerList>)) },
        Route { method: "post", path: "/api/v1/peers", summary: "Pair with another site's server using the token it made (Server Administrators)", query: None, body: Some(schema::<crate::peers::api::NewPeer>), ok: (201, Some(schema::<crate::peers::PeerView>)) },
        Route { method: "post", path: "/api/v1/peers/tokens", summary: "Make a one-time pairing token for another site's `haven peer add` (Server Administrators)", query: None, body: Some(schema::<crate::peers::api::PairingTokenRequest>), ok: (201, Some(schema::<crate::peers::IssuedPairing>)) },
        Route { method: "delete", path: "/api/v1/peers/{site}", summary: "Unpair a site: stop following and trusting it (its history stays; Server Administrators)", query: None, body: None, ok: (204, None) },
        Route { method: "get", path: "/api/v1/events", summary: "Live updates as Server-Sent Events (text/event-stream)", query: Some(schema::<EventFilter>), body: None, ok: (200, None) },
        Route { method: "get", path: "/api/v1/openapi.json", summary: "This document", query: None, body: None, ok: (200, None) },
        Route { method: "get", path: "/metrics", summary: "Prometheus metrics (text format)", query: None, body: None, ok: (200, None) },
    ]
}

/// Turns a query type's schema into OpenAPI parameters.
fn query_parameters(schema: &Value, definitions: &Map<String, Value>) -> Vec<Value> {
    let resolved = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| definitions.get(name))
        .unwrap_or(schema);
    let required: Vec<&str> = resolved
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    resolved
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| {
                    json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "description": prop.get("description").cloned().unwrap_or(json!("")),
                        "schema": prop,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The whole OpenAPI 3.0 document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let error = schema::<ErrorBody>(&mut generator);
    let mut built = Vec::new();
    for route in routes() {
        let query = route.query.map(|f| f(&mut generator));
        let body = route.body.map(|f| f(&mut generator));
        let ok = route.ok.1.map(|f| f(&mut generator));
        built.push((route, query, body, ok));
    }
    let definitions: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    let mut paths = Map::new();
    for (route, query, body, ok) in built {
        let mut op = Map::new();
        op.insert("summary".into(), json!(route.summary));
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(q) = &query {
            params.extend(query_parameters(q, &definitions));
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(b) = body {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": b}}}),
            );
        }
        let mut responses = Map::new();
        let ok_response = match ok {
            Some(s) => {
                json!({"description": "success", "content": {"application/json": {"schema": s}}})
            }
            None => json!({"description": "success"}),
        };
        responses.insert(route.ok.0.to_string(), ok_response);
        responses.insert(
            "default".into(),
            json!({"description": "error", "content": {"application/json": {"schema": error}}}),
        );
        op.insert("responses".into(), Value::Object(responses));
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(route.method.into(), Value::Object(op));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Haven management server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Watch and operate every cluster of a fleet. Errors are JSON {\"error\": {\"code\", \"message\"}}."
        },
        "paths": paths,
        "components": {"schemas": definitions},
    })
}
