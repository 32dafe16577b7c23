//! Every role at every scope against every operation and every read
//! endpoint, through the real API (sessions, middleware, handlers) of a
//! server linked to two real simulated engines: each request is allowed or
//! refused as the roles table says, and each refusal is on record (the
//! operations audit for operations, the access log for everything else).
//!
//! The expectations are written out here from the roles table of the
//! documentation, not computed with the code under test. Sessions are
//! opened directly (password checks have their own tests against real
//! PAM and LDAP).
//!
//! `roles_pg.rs` runs the same tests with the server's database on a
//! throw-away PostgreSQL ([`on_postgres`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haven_auth::roles::{Identity, Role};
use haven_engine::sim::{start_fleet, FleetOptions};
use haven_model::{Name, Operation};
use haven_server::config::{ClusterEntry, GrantEntry, ServerConfig};
use haven_server::Server;
use haven_store::{AccessOutcome, AccessQuery, OperationQuery};
use serde_json::Value;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Fleet,
    /// The cluster `alpha-0001`.
    Cluster,
    /// Group G1 of `alpha-0001`.
    Group,
}

/// Who calls: a role at a scope (granted to the user, or to an OS group
/// they are in), the Server Administrator with no role, or nobody.
#[derive(Debug, Clone)]
struct Principal {
    user: String,
    role: Option<(Role, Scope)>,
    via_group: bool,
    admin: bool,
}

/// What an operation needs, as the documentation's table says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    OperateGroup,
    ConfigureGroup,
    OperateCluster,
    Simulate,
}

fn role_allows(role: Role, needs: Needs) -> bool {
    use Role::*;
    match needs {
        Needs::OperateGroup => role != Guest,
        Needs::ConfigureGroup => matches!(role, GroupAdministrator | ClusterAdministrator),
        Needs::OperateCluster => matches!(role, ClusterOperator | ClusterAdministrator),
        Needs::Simulate => role == ClusterAdministrator,
    }
}

/// Whether `p` may run an operation needing `needs` on `group` of alpha
/// (`None`: a cluster-level operation).
fn expect_op(p: &Principal, needs: Needs, on_g1: Option<bool>) -> bool {
    match p.role {
        None => false,
        Some((role, Scope::Fleet | Scope::Cluster)) => role_allows(role, needs),
        Some((role, Scope::Group)) => on_g1 == Some(true) && role_allows(role, needs),
    }
}

fn principals() -> Vec<Principal> {
    let mut out = Vec::new();
    for role in Role::ALL {
        for scope in [Scope::Fleet, Scope::Cluster, Scope::Group] {
            let cluster_role = matches!(role, Role::ClusterOperator | Role::ClusterAdministrator);
            if scope == Scope::Group && cluster_role {
                continue; // refused when granted: cannot mean anything
            }
            out.push(Principal {
                user: format!("{role:?}-{scope:?}").to_lowercase(),
                role: Some((role, scope)),
                // Half of them hold the role through an OS group.
                via_group: out.len() % 2 == 1,
                admin: false,
            });
        }
    }
    out.push(Principal {
        user: "admin".into(),
        role: None,
        via_group: false,
        admin: true,
    });
    out.push(Principal {
        user: "nobody".into(),
        role: None,
        via_group: false,
        admin: false,
    });
    out
}

/// The store tests' throw-away PostgreSQL server, one per test process.
#[path = "../../store/tests/common/pg.rs"]
#[allow(dead_code)] // only its databases' URLs are used here
mod pg;

/// Whether this test binary runs the server on PostgreSQL (`roles_pg.rs`
/// includes this file).
fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_pg")
}

struct Rig {
    server: Arc<Server>,
    alpha: String,
    beta: String,
    g1: Name,
    g2: Name,
    /// A resource of G1, and systems of alpha and beta.
    r1: Name,
    sys: Name,
    beta_sys: Name,
    _dir: tempfile::TempDir,
    _fleets: Vec<haven_engine::sim::Fleet>,
}

async fn rig() -> Rig {
    let mut fleets = Vec::new();
    let mut entries = Vec::new();
    for prefix in ["alpha", "beta"] {
        let fleet = start_fleet(&FleetOptions {
            clusters: 1,
            systems: 3,
            groups: 4,
            resources: 2,
            fault_rate: 0.0,
            delay_ms: (0, 0),
            prefix: prefix.into(),
            ..FleetOptions::default()
        })
        .await
        .unwrap();
        for (handle, addr) in &fleet.clusters {
            entries.push(ClusterEntry {
                name: handle.name().to_string(),
                address: addr.to_string(),
                user: None,
                password: None,
            });
        }
        fleets.push(fleet);
    }
    let (alpha, beta) = (entries[0].name.clone(), entries[1].name.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::default();
    config.server.data_dir = dir.path().join("data");
    config.clusters = entries;
    config.auth.server_admins = vec!["admin".into()];
    if on_postgres() {
        // A blocking client: not on this async thread.
        if let Some(db) = tokio::task::spawn_blocking(pg::database).await.unwrap() {
            config.database.url = db.url;
        }
    }
    // Wait for both links before reading names from the snapshot.
    let probe = Server::start(config.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe.fleet.snapshot(&alpha).is_none() || probe.fleet.snapshot(&beta).is_none() {
        assert!(Instant::now() < deadline, "the engines did not sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snap = probe.fleet.snapshot(&alpha).unwrap();
    let failover: Vec<_> = snap.config.groups.iter().filter(|g| !g.parallel).collect();
    let (g1, g2) = (failover[0].name.clone(), failover[1].name.clone());
    let r1 = failover[0].resources[0].name.clone();
    let sys = snap.systems[0].name.clone();
    let beta_sys = probe.fleet.snapshot(&beta).unwrap().systems[0].name.clone();
    drop(probe);
    for p in principals() {
        let Some((role, scope)) = p.role else {
            continue;
        };
        let (user, group) = if p.via_group {
            (None, Some(format!("{}-team", p.user)))
        } else {
            (Some(p.user.clone()), None)
        };
        config.auth.grants.push(GrantEntry {
            user,
            group,
            role,
            cluster: (scope != Scope::Fleet).then(|| alpha.clone()),
            service_group: (scope == Scope::Group).then(|| g1.to_string()),
        });
    }
    let server = Server::start(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.fleet.snapshot(&alpha).is_none() || server.fleet.snapshot(&beta).is_none() {
        assert!(Instant::now() < deadline, "the engines did not sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Rig {
        server,
        alpha,
        beta,
        g1,
        g2,
        r1,
        sys,
        beta_sys,
        _dir: dir,
        _fleets: fleets,
    }
}

impl Rig {
    fn session(&self, p: &Principal) -> String {
        let groups = if p.via_group {
            vec![format!("{}-team", p.user), "users".into()]
        } else {
            vec!["users".into()]
        };
        let auth = self.server.auth.as_ref().expect("logins are on");
        auth.sessions
            .open(
                Identity {
                    user: p.user.clone(),
                    groups,
                },
                Instant::now(),
            )
            .unwrap()
    }

    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .unwrap();
        let response = haven_server::api::router(self.server.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        if path.starts_with("/api/v1/events") && status == StatusCode::OK {
            // A live stream: the status is the answer.
            return (status, Value::Null);
        }
        let bytes = tokio::time::timeout(
            Duration::from_secs(30),
            axum::body::to_bytes(response.into_body(), 64 << 20),
        )
        .await
        .expect("an answer within 30 s")
        .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// Access log refusals of `user` so far.
    async fn denials(&self, user: &str) -> Vec<haven_store::AccessRecord> {
        self.server.flush_history().await;
        let query = AccessQuery {
            user: Some(user.into()),
            outcome: Some(AccessOutcome::Denied),
            limit: 10_000,
            ..Default::default()
        };
        self.server
            .read(move |store| store.access_log(&query))
            .await
            .unwrap()
    }

    /// The newest audited operation of `user`.
    async fn last_operation(&self, user: &str) -> haven_store::OperationRecord {
        self.server.flush_history().await;
        let query = OperationQuery {
            user: Some(user.into()),
            limit: 1,
            ..Default::default()
        };
        self.server
            .read(move |store| store.operations(&query))
            .await
            .unwrap()
            .pop()
            .expect("the operation is audited")
    }
}

fn operations(r: &Rig) -> Vec<(Operation, Needs, Option<bool>)> {
    let (g1, g2, r1, sys) = (r.g1.clone(), r.g2.clone(), r.r1.clone(), r.sys.clone());
    use Needs::*;
    vec![
        (
            Operation::GroupOnline {
                group: g1.clone(),
                system: None,
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupOffline {
                group: g1.clone(),
                system: None,
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupSwitch {
                group: g1.clone(),
                to: None,
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupSwitch {
                group: g2.clone(),
                to: None,
            },
            OperateGroup,
            Some(false),
        ),
        (
            Operation::GroupFreeze {
                group: g1.clone(),
                persistent: false,
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupUnfreeze { group: g1.clone() },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupFreeze {
                group: g1.clone(),
                persistent: true,
            },
            ConfigureGroup,
            Some(true),
        ),
        (
            Operation::GroupUnfreeze { group: g1.clone() },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupClear {
                group: g1.clone(),
                system: None,
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupFlush {
                group: g1.clone(),
                system: None,
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::GroupDisable { group: g1.clone() },
            ConfigureGroup,
            Some(true),
        ),
        (
            Operation::GroupEnable { group: g1.clone() },
            ConfigureGroup,
            Some(true),
        ),
        (
            Operation::GroupDisable { group: g2.clone() },
            ConfigureGroup,
            Some(false),
        ),
        (
            Operation::GroupEnable { group: g2.clone() },
            ConfigureGroup,
            Some(false),
        ),
        (
            Operation::ResourceOnline {
                resource: r1.clone(),
                system: sys.clone(),
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::ResourceOffline {
                resource: r1.clone(),
                system: sys.clone(),
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::ResourceClear {
                resource: r1.clone(),
                system: None,
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::ResourceProbe {
                resource: r1.clone(),
                system: sys.clone(),
            },
            OperateGroup,
            Some(true),
        ),
        (
            Operation::SystemFreeze {
                system: sys.clone(),
                persistent: false,
                evacuate: false,
            },
            OperateCluster,
            None,
        ),
        (
            Operation::SystemUnfreeze {
                system: sys.clone(),
            },
            OperateCluster,
            None,
        ),
        (
            Operation::SimFaultResource {
                resource: r1.clone(),
                system: sys.clone(),
            },
            Simulate,
            None,
        ),
        (
            Operation::SimFaultSystem {
                system: sys.clone(),
            },
            Simulate,
            None,
        ),
        (
            Operation::SimRestoreSystem {
                system: sys.clone(),
            },
            Simulate,
            None,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_at_every_scope_against_every_operation() {
    let r = rig().await;
    let mut checked = 0;
    for p in principals() {
        let token = r.session(&p);
        for (op, needs, on_g1) in operations(&r) {
            let allowed = expect_op(&p, needs, on_g1);
            let body = serde_json::to_value(&op).unwrap();
            let path = format!("/api/v1/clusters/{}/operations", r.alpha);
            let (status, answer) = r.call(&token, "POST", &path, Some(body)).await;
            let case = format!("{} {:?} -> {status} {answer}", p.user, op);
            let visible = p.role.is_some();
            if !visible {
                // No role on the cluster at all: it is not there for them.
                assert_eq!(status, StatusCode::NOT_FOUND, "{case}");
                let denials = r.denials(&p.user).await;
                assert!(
                    denials
                        .iter()
                        .any(|d| d.cluster.as_deref() == Some(&r.alpha)
                            && d.target.as_deref() == Some(&format!("POST {path}"))),
                    "refusal on record: {case}"
                );
                continue;
            }
            let audited = r.last_operation(&p.user).await;
            assert_eq!(audited.op, op, "audited: {case}");
            if allowed {
                assert_ne!(status, StatusCode::FORBIDDEN, "allowed: {case}");
                assert_ne!(answer["code"], "permission_denied", "{case}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "denied: {case}");
                assert_eq!(answer["code"], "permission_denied", "{case}");
                assert_eq!(
                    audited.outcome.map(|o| o.as_str()),
                    Some("refused"),
                    "{case}"
                );
                assert!(
                    audited
                        .reason
                        .as_deref()
                        .is_some_and(|m| m.contains(&p.user)),
                    "the audit says who and why: {case} / {:?}",
                    audited.reason
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 250, "{checked}");
}

/// What a principal may see of the two clusters.
fn sees(p: &Principal) -> (bool, bool) {
    match p.role {
        Some((_, Scope::Fleet)) => (true, true),
        Some(_) => (true, false),
        None => (false, false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_at_every_scope_against_every_read_endpoint() {
    let r = rig().await;
    // Some history and an audited operation to read.
    let admin_all = principals()
        .into_iter()
        .find(|p| p.role == Some((Role::ClusterAdministrator, Scope::Fleet)))
        .unwrap();
    let token = r.session(&admin_all);
    for group in [&r.g1, &r.g2] {
        let op = serde_json::json!({"op": "group_switch", "group": group, "wait": true});
        for cluster in [&r.alpha, &r.beta] {
            let path = format!("/api/v1/clusters/{cluster}/operations");
            let (status, answer) = r.call(&token, "POST", &path, Some(op.clone())).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    }
    r.server.flush_history().await;

    for p in principals() {
        let token = r.session(&p);
        let (alpha, beta) = sees(&p);
        let group_only = matches!(p.role, Some((_, Scope::Group)));
        let fleet_wide = beta;
        let before = r.denials(&p.user).await.len();
        let mut refusals = 0;
        // (method, path, expected status)
        let admin_ok = |ok: StatusCode| if p.admin { ok } else { StatusCode::FORBIDDEN };
        let cases: Vec<(&str, String, Option<Value>, StatusCode)> = vec![
            ("GET", "/api/v1/whoami".into(), None, StatusCode::OK),
            ("GET", "/api/v1/summary".into(), None, StatusCode::OK),
            ("GET", "/api/v1/clusters".into(), None, StatusCode::OK),
            (
                "GET",
                format!("/api/v1/clusters/{}", r.alpha),
                None,
                if alpha {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            (
                "GET",
                format!("/api/v1/clusters/{}", r.beta),
                None,
                if beta {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            ("GET", "/api/v1/faults".into(), None, StatusCode::OK),
            (
                "GET",
                format!("/api/v1/search?q={}", r.g2),
                None,
                StatusCode::OK,
            ),
            (
                "GET",
                format!("/api/v1/systems/{}", r.sys),
                None,
                if alpha {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            (
                "GET",
                format!("/api/v1/systems/{}", r.beta_sys),
                None,
                if beta {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            (
                "GET",
                "/api/v1/history?limit=1000".into(),
                None,
                StatusCode::OK,
            ),
            (
                "GET",
                format!("/api/v1/history?cluster={}", r.beta),
                None,
                if beta {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            ("GET", "/api/v1/gaps".into(), None, StatusCode::OK),
            (
                "GET",
                format!("/api/v1/gaps?cluster={}", r.beta),
                None,
                if beta {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            (
                "GET",
                "/api/v1/operations?limit=1000".into(),
                None,
                StatusCode::OK,
            ),
            (
                "GET",
                format!("/api/v1/operations?cluster={}", r.beta),
                None,
                if beta {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            (
                "GET",
                format!("/api/v1/events?cluster={}", r.beta),
                None,
                if beta {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
            ),
            (
                "GET",
                "/metrics".into(),
                None,
                if fleet_wide || p.admin {
                    StatusCode::OK
                } else {
                    StatusCode::FORBIDDEN
                },
            ),
            (
                "GET",
                "/api/v1/grants".into(),
                None,
                admin_ok(StatusCode::OK),
            ),
            (
                "GET",
                "/api/v1/access-log".into(),
                None,
                admin_ok(StatusCode::OK),
            ),
            (
                "POST",
                "/api/v1/tokens".into(),
                Some(serde_json::json!({})),
                admin_ok(StatusCode::CREATED),
            ),
            (
                "POST",
                "/api/v1/clusters".into(),
                Some(serde_json::json!({"name": "bad name", "address": "x"})),
                admin_ok(StatusCode::BAD_REQUEST),
            ),
            (
                "DELETE",
                "/api/v1/clusters/nosuch".into(),
                None,
                admin_ok(StatusCode::NOT_FOUND),
            ),
            (
                "POST",
                "/api/v1/grants".into(),
                Some(serde_json::json!({"user": "x", "role": "overlord"})),
                admin_ok(StatusCode::BAD_REQUEST),
            ),
            (
                "GET",
                "/api/v1/db/backups".into(),
                None,
                admin_ok(StatusCode::OK),
            ),
            (
                "POST",
                "/api/v1/db/prune".into(),
                Some(serde_json::json!({"older_than_days": 0})),
                admin_ok(StatusCode::BAD_REQUEST),
            ),
            // A login link logs its maker in again, as themselves: anyone
            // logged in may make one.
            (
                "POST",
                "/api/v1/login-links".into(),
                None,
                StatusCode::CREATED,
            ),
        ];
        for (method, path, body, expected) in cases {
            let (status, answer) = r.call(&token, method, &path, body).await;
            let case = format!("{} {method} {path} -> {status} {answer}", p.user);
            assert_eq!(status, expected, "{case}");
            // Refused: forbidden, or a cluster they may not see answered
            // as unknown (DELETE of a cluster that really does not exist
            // is no refusal).
            let refused = status == StatusCode::FORBIDDEN
                || (status == StatusCode::NOT_FOUND
                    && answer["error"]["code"] == "unknown_cluster"
                    && !path.ends_with("/nosuch"));
            if refused {
                refusals += 1;
                let denials = r.denials(&p.user).await;
                assert_eq!(
                    denials.len(),
                    before + refusals,
                    "on record: {case}\n{denials:#?}"
                );
                assert_eq!(
                    denials[0]
                        .target
                        .as_deref()
                        .map(|t| t.split('?').next().unwrap()),
                    Some(format!("{method} {}", path.split('?').next().unwrap()).as_str()),
                    "{case}"
                );
            }
            if method != "GET" || status != StatusCode::OK {
                continue;
            }
            // What they see holds only what they may see.
            let clusters_in = |v: &Value, key: &str| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x[key].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let shown = |c: &String| (c == &r.alpha && alpha) || (c == &r.beta && beta);
            match path.as_str() {
                "/api/v1/summary" => {
                    let n = alpha as u64 + beta as u64;
                    assert_eq!(answer["clusters"], n, "{case}");
                }
                "/api/v1/clusters" => {
                    let names = clusters_in(&answer, "name");
                    assert_eq!(names.len(), alpha as usize + beta as usize, "{case}");
                    assert!(names.iter().all(shown), "{case}");
                }
                "/api/v1/faults" => {
                    assert!(
                        clusters_in(&answer["items"], "cluster").iter().all(shown),
                        "{case}"
                    );
                }
                "/api/v1/history?limit=1000" => {
                    let rows = answer.as_array().unwrap();
                    assert!(clusters_in(&answer, "cluster").iter().all(shown), "{case}");
                    if group_only {
                        assert!(
                            rows.iter().all(|e| e["group"].as_str() != Some(&*r.g2)),
                            "no history of a group they may not see: {case}"
                        );
                    }
                    if alpha {
                        assert!(!rows.is_empty(), "{case}");
                    }
                }
                "/api/v1/operations?limit=1000" => {
                    let rows = answer.as_array().unwrap();
                    assert!(clusters_in(&answer, "cluster").iter().all(shown), "{case}");
                    if group_only {
                        assert!(
                            rows.iter()
                                .all(|o| o["op"]["group"].as_str() != Some(&*r.g2)),
                            "{case}"
                        );
                    }
                }
                _ if path.starts_with("/api/v1/search") => {
                    let hits = answer.as_array().unwrap();
                    assert!(clusters_in(&answer, "cluster").iter().all(shown), "{case}");
                    if group_only {
                        assert!(hits.is_empty(), "G2 is not theirs to find: {case}");
                    } else if alpha {
                        assert!(!hits.is_empty(), "{case}");
                    }
                }
                _ if path == format!("/api/v1/clusters/{}", r.alpha) && alpha => {
                    let groups: Vec<&str> = answer["snapshot"]["groups"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|g| g["name"].as_str())
                        .collect();
                    if group_only {
                        assert_eq!(groups, vec![&*r.g1], "{case}");
                    } else {
                        assert!(groups.len() >= 4, "{case}");
                    }
                }
                _ => {}
            }
        }
        assert_eq!(
            r.denials(&p.user).await.len(),
            before + refusals,
            "{}",
            p.user
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_made_through_the_api_are_in_force_at_once_and_stored() {
    let r = rig().await;
    let admin = principals().into_iter().find(|p| p.admin).unwrap();
    let newcomer = Principal {
        user: "newcomer".into(),
        role: None,
        via_group: false,
        admin: false,
    };
    let (admin_token, token) = (r.session(&admin), r.session(&newcomer));
    let path = format!("/api/v1/clusters/{}", r.alpha);
    assert_eq!(
        r.call(&token, "GET", &path, None).await.0,
        StatusCode::NOT_FOUND
    );

    // A group-scope grant: the cluster appears, with that group only.
    let grant = serde_json::json!({
        "user": "newcomer", "role": "group_operator",
        "cluster": r.alpha, "service_group": r.g1,
    });
    let (status, made) = r
        .call(&admin_token, "POST", "/api/v1/grants", Some(grant.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, _) = r
        .call(&admin_token, "POST", "/api/v1/grants", Some(grant))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the same grant twice");
    let (status, detail) = r.call(&token, "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["snapshot"]["groups"].as_array().unwrap().len(), 1);
    let op = serde_json::json!({"op": "group_freeze", "group": r.g1});
    let ops = format!("{path}/operations");
    assert_eq!(
        r.call(&token, "POST", &ops, Some(op)).await.0,
        StatusCode::OK
    );

    // A cluster role at group scope means nothing and is refused.
    let bad = serde_json::json!({
        "user": "newcomer", "role": "cluster_operator",
        "cluster": r.alpha, "service_group": r.g1,
    });
    let (status, answer) = r
        .call(&admin_token, "POST", "/api/v1/grants", Some(bad))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Listed with who made it, and stored (read again at every start).
    let (_, list) = r.call(&admin_token, "GET", "/api/v1/grants", None).await;
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["user"] == "newcomer")
        .expect("the grant is listed")
        .clone();
    assert_eq!(
        (mine["source"].as_str(), mine["created_by"].as_str()),
        (Some("api"), Some("admin"))
    );
    let stored = r.server.read(|store| store.grants()).await.unwrap();
    assert_eq!(stored.len(), 1);

    // Revoked: gone at once, and the change is in the access log.
    let id = mine["id"].as_i64().unwrap();
    let (status, _) = r
        .call(
            &admin_token,
            "DELETE",
            &format!("/api/v1/grants/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.call(&token, "GET", &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = r
        .call(
            &admin_token,
            "DELETE",
            &format!("/api/v1/grants/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) = r
        .call(&admin_token, "GET", "/api/v1/access-log?user=admin", None)
        .await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["revoke", "grant"], "{log}");
}
