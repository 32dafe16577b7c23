//! The availability report through the real server: a known history
//! (checkpoints and events at chosen times) is written into the store,
//! the server reads it back through the timeline, and its API answers
//! the exact figures — in JSON, and the same in CSV — for what each
//! caller may see, and for the groups carrying a tag.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haven_auth::roles::{Identity, Role};
use haven_model::{
    ClusterConfig, ClusterSnapshot, Event, EventKind, Freeze, GroupState, GroupStatus, SystemState,
    SystemStatus,
};
use haven_server::config::{ClusterEntry, GrantEntry, ServerConfig};
use haven_server::Server;
use haven_store::{
    Checkpoint, CheckpointStore, HistoryRow, SqliteStore, Store, TagRecord, TagStore,
};
use serde_json::{json, Value};
use tower::ServiceExt;

const MIN: i64 = 60_000;
const H: i64 = 60 * MIN;
/// 2026-11-02T00:00:00Z: the day reported on.
const D: i64 = 1_793_577_600_000;

fn snapshot(cluster: &str, seq: u64, groups: &[(&str, GroupState, GroupState)]) -> ClusterSnapshot {
    ClusterSnapshot {
        seq,
        config: ClusterConfig {
            name: cluster.into(),
            includes: Vec::new(),
            attributes: Default::default(),
            systems: Vec::new(),
            types: Vec::new(),
            groups: Vec::new(),
        },
        systems: ["n1", "n2"]
            .iter()
            .map(|n| SystemStatus {
                name: (*n).into(),
                state: SystemState::Running,
                freeze: Freeze::None,
            })
            .collect(),
        groups: groups
            .iter()
            .map(|(g, n1, n2)| GroupStatus {
                name: (*g).into(),
                freeze: Freeze::None,
                enabled: true,
                states: vec![("n1".into(), *n1), ("n2".into(), *n2)],
                resources: Vec::new(),
            })
            .collect(),
    }
}

fn row(cluster: &str, seq: u64, time_ms: i64, kind: EventKind) -> HistoryRow {
    HistoryRow {
        cluster: cluster.into(),
        epoch: 1,
        event: Event { seq, time_ms, kind },
    }
}

fn group(seq: u64, t: i64, g: &str, system: &str, from: GroupState, to: GroupState) -> HistoryRow {
    row(
        "delta",
        seq,
        t,
        EventKind::GroupState {
            group: g.into(),
            system: system.into(),
            from,
            to,
        },
    )
}

/// The history: `delta` (known since the day before) loses `web` for an
/// hour to a fault (with a failover) and takes `db` offline for its last
/// four hours; `echo` is first recorded at noon, and stays up.
fn write_history(path: &std::path::Path) {
    use GroupState::*;
    let mut store = SqliteStore::open(path).unwrap();
    store
        .save_checkpoints(&[
            Checkpoint {
                cluster: "delta".into(),
                epoch: 1,
                time_ms: D - H,
                snapshot: snapshot(
                    "delta",
                    10,
                    &[("web", Online, Offline), ("db", Offline, Online)],
                ),
            },
            Checkpoint {
                cluster: "echo".into(),
                epoch: 1,
                time_ms: D + 12 * H,
                snapshot: snapshot("echo", 0, &[("app", Online, Offline)]),
            },
        ])
        .unwrap();
    store
        .append(&[
            group(11, D + 10 * H, "web", "n1", Online, Faulted),
            row(
                "delta",
                12,
                D + 10 * H,
                EventKind::Failover {
                    group: "web".into(),
                    from: "n1".into(),
                    to: Some("n2".into()),
                    reason: "web_ip faulted".into(),
                },
            ),
            group(13, D + 10 * H, "web", "n2", Offline, Starting),
            group(14, D + 11 * H, "web", "n2", Starting, Online),
            group(15, D + 20 * H, "db", "n2", Online, Stopping),
            group(16, D + 20 * H + 30 * MIN, "db", "n2", Stopping, Offline),
            // The next day: outside the period.
            group(17, D + 25 * H, "db", "n2", Offline, Online),
        ])
        .unwrap();
    store
        .set_tags(&[TagRecord {
            cluster: "delta".into(),
            kind: "group".into(),
            object: "db".into(),
            key: "tier".into(),
            value: "data".into(),
            set_by: "test".into(),
            set_ms: D,
        }])
        .unwrap();
}

struct Rig {
    server: Arc<Server>,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        write_history(&data.join("haven.db"));
        let mut config = ServerConfig::default();
        config.server.data_dir = data;
        // Nobody listens there: the links stay down, history is what counts.
        config.clusters = ["delta", "echo"]
            .iter()
            .map(|c| ClusterEntry {
                name: (*c).into(),
                address: "127.0.0.1:9".into(),
                user: None,
                password: None,
            })
            .collect();
        config.auth.grants = vec![
            GrantEntry {
                user: Some("viewer".into()),
                group: None,
                role: Role::Guest,
                cluster: None,
                service_group: None,
            },
            GrantEntry {
                user: Some("gina".into()),
                group: None,
                role: Role::Guest,
                cluster: Some("delta".into()),
                service_group: Some("web".into()),
            },
        ];
        let server = Server::start(config).unwrap();
        Rig { server, _dir: dir }
    }

    /// GET `path` as `user`: the status, and the body as text.
    async fn get(&self, user: &str, path: &str) -> (StatusCode, String) {
        let auth = self.server.auth.as_ref().expect("logins are on");
        let token = auth
            .sessions
            .open(
                Identity {
                    user: user.into(),
                    groups: vec!["users".into()],
                },
                Instant::now(),
            )
            .unwrap();
        let request = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = haven_server::api::router(self.server.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = tokio::time::timeout(
            Duration::from_secs(30),
            axum::body::to_bytes(response.into_body(), 16 << 20),
        )
        .await
        .expect("an answer")
        .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn json(&self, user: &str, path: &str) -> Value {
        let (status, body) = self.get(user, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

const DAY: &str = "from=2026-11-02T00:00:00Z&to=2026-11-03";

fn figures(v: &Value) -> Value {
    json!({
        "covered_ms": v["covered_ms"], "available_ms": v["available_ms"],
        "availability_percent": v["availability_percent"], "outages": v["outages"],
        "unplanned_outages": v["unplanned_outages"], "outage_ms": v["outage_ms"],
        "longest_outage_ms": v["longest_outage_ms"], "failovers": v["failovers"],
        "mttr_ms": v["mttr_ms"],
    })
}

#[tokio::test]
async fn a_known_history_gives_the_exact_availability_in_json_and_csv() {
    let rig = Rig::start().await;
    let r = rig
        .json("viewer", &format!("/api/v1/reports/availability?{DAY}"))
        .await;
    assert_eq!(r["period"], json!({"from_ms": D, "to_ms": D + 24 * H}));
    let delta = &r["clusters"][0];
    let echo = &r["clusters"][1];
    assert_eq!(
        (delta["cluster"].as_str(), echo["cluster"].as_str()),
        (Some("delta"), Some("echo"))
    );
    let web = &delta["groups"][0];
    let db = &delta["groups"][1];
    assert_eq!(web["group"], "web");
    // web: down 1 h of 24 (the fault until online on n2): 23/24.
    assert_eq!(
        figures(web),
        json!({"covered_ms": 24 * H, "available_ms": 23 * H, "availability_percent": 95.8333,
               "outages": 1, "unplanned_outages": 1, "outage_ms": H, "longest_outage_ms": H,
               "failovers": 1, "mttr_ms": H})
    );
    assert_eq!(
        web["outage_list"],
        json!([{"start_ms": D + 10 * H, "end_ms": D + 11 * H, "ended": true,
                "began_before": false, "unplanned": true}])
    );
    // db: stopping from 20:00, offline to the end: 20/24, planned.
    assert_eq!(
        figures(db),
        json!({"covered_ms": 24 * H, "available_ms": 20 * H, "availability_percent": 83.3333,
               "outages": 1, "unplanned_outages": 0, "outage_ms": 4 * H, "longest_outage_ms": 4 * H,
               "failovers": 0, "mttr_ms": null})
    );
    // delta: 43/48; echo: 12 h covered, all up; the fleet: 55/60.
    assert_eq!(delta["availability_percent"], json!(89.5833));
    assert_eq!(delta["known"], json!(true));
    assert_eq!(
        (
            echo["covered_ms"].as_i64(),
            echo["availability_percent"].as_f64()
        ),
        (Some(12 * H), Some(100.0))
    );
    assert_eq!(
        figures(&r["overall"]),
        json!({"covered_ms": 60 * H, "available_ms": 55 * H, "availability_percent": 91.6667,
               "outages": 2, "unplanned_outages": 1, "outage_ms": 5 * H, "longest_outage_ms": 4 * H,
               "failovers": 1, "mttr_ms": H})
    );

    // The CSV says the same.
    let (status, csv) = rig
        .get(
            "viewer",
            &format!("/api/v1/reports/availability?{DAY}&format=csv"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "scope,cluster,group,from,to,covered_ms,available_ms,availability_percent,outages,unplanned_outages,outage_ms,longest_outage_ms,failovers,mttr_ms",
            "group,delta,web,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,86400000,82800000,95.8333,1,1,3600000,3600000,1,3600000",
            "group,delta,db,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,86400000,72000000,83.3333,1,0,14400000,14400000,0,",
            "cluster,delta,,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,172800000,154800000,89.5833,2,1,18000000,14400000,1,3600000",
            "group,echo,app,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,43200000,43200000,100.0000,0,0,0,0,0,",
            "cluster,echo,,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,43200000,43200000,100.0000,0,0,0,0,0,",
            "fleet,,,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,216000000,198000000,91.6667,2,1,18000000,14400000,1,3600000",
        ]
    );
    // Every CSV line's figures are the JSON's.
    let json_rows: Vec<Value> = [web, db, delta, &echo["groups"][0], echo, &r["overall"]]
        .into_iter()
        .map(figures)
        .collect();
    for (line, want) in lines[1..].iter().zip(&json_rows) {
        let cells: Vec<&str> = line.split(',').collect();
        let num = |i: usize| cells[i].parse::<i64>().ok();
        assert_eq!(num(5), want["covered_ms"].as_i64(), "{line}");
        assert_eq!(num(6), want["available_ms"].as_i64(), "{line}");
        assert_eq!(
            cells[7].parse::<f64>().ok(),
            want["availability_percent"].as_f64(),
            "{line}"
        );
        assert_eq!(num(8).map(|n| n as u64), want["outages"].as_u64(), "{line}");
        assert_eq!(num(10), want["outage_ms"].as_i64(), "{line}");
        assert_eq!(
            num(12).map(|n| n as u64),
            want["failovers"].as_u64(),
            "{line}"
        );
        assert_eq!(num(13), want["mttr_ms"].as_i64(), "{line}");
    }

    // One cluster, one group.
    let only = rig
        .json(
            "viewer",
            &format!("/api/v1/reports/availability?{DAY}&cluster=delta&group=db"),
        )
        .await;
    assert_eq!(only["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(only["overall"]["availability_percent"], json!(83.3333));

    // By tag: only the groups carrying it (db), in every cluster.
    let tagged = rig
        .json(
            "viewer",
            &format!("/api/v1/reports/availability?{DAY}&tag=tier=data"),
        )
        .await;
    let groups: Vec<&str> = tagged["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["groups"].as_array().unwrap())
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["db"]);
    assert_eq!(figures(&tagged["overall"]), figures(db));
}

#[tokio::test]
async fn a_caller_sees_only_their_groups_and_bad_periods_are_refused_clearly() {
    let rig = Rig::start().await;
    // Gina holds a role on delta/web only.
    let r = rig
        .json("gina", &format!("/api/v1/reports/availability?{DAY}"))
        .await;
    let names: Vec<(String, Vec<String>)> = r["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_string(),
                c["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g["group"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(names, [("delta".to_string(), vec!["web".to_string()])]);
    assert_eq!(r["overall"]["availability_percent"], json!(95.8333));
    let (status, _) = rig
        .get(
            "gina",
            &format!("/api/v1/reports/availability?{DAY}&cluster=echo"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a cluster she cannot see is unknown"
    );

    for (query, status, words) in [
        ("from=yesterday", StatusCode::BAD_REQUEST, "from:"),
        (
            "from=2026-11-03&to=2026-11-02",
            StatusCode::BAD_REQUEST,
            "the period is empty",
        ),
        ("format=xml", StatusCode::BAD_REQUEST, "use json or csv"),
        ("tag=tier=", StatusCode::BAD_REQUEST, "give a value"),
    ] {
        let (got, body) = rig
            .get("viewer", &format!("/api/v1/reports/availability?{query}"))
            .await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.contains(words), "{query}: {body}");
    }
    // A relative period works (nothing recorded in the last day here).
    let recent = rig
        .json("viewer", "/api/v1/reports/availability?from=1d")
        .await;
    assert_eq!(
        recent["period"]["to_ms"].as_i64().unwrap() - recent["period"]["from_ms"].as_i64().unwrap(),
        24 * H
    );
}
