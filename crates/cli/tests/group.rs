//! A clustered server: two real `haven server` processes on one real
//! PostgreSQL, a simulated fleet half on direct links and half through
//! connectors, under a steady load of events.
//!
//! - The active one is killed with SIGKILL: the standby takes over, every
//!   event of the takeover is in history exactly once (no gap, no
//!   duplicate, up to the engines' own last event), and an operation right
//!   after it completes.
//! - The new active one is stopped with SIGSTOP until the other has taken
//!   the lease, then woken with SIGCONT: it writes nothing after losing the
//!   lease (a trigger of the test records every committed write and which
//!   server made it), and starts again as a standby.
//!
//! With `CI=true` a missing PostgreSQL fails the test (see `pg.rs`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const DIRECT: usize = 3;
const CONNECTED: usize = 3;

fn role_of(addr: &str) -> Option<String> {
    get_when_up(addr, "/api/v1/health")
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, health)| health["role"].as_str().map(str::to_string))
}

/// Waits until every cluster is connected at `addr`; returns how long.
fn wait_all_connected(addr: &str, clusters: usize) -> Duration {
    let started = Instant::now();
    wait_until("every cluster connected", || {
        let (status, summary) = get_when_up(addr, "/api/v1/summary")?;
        (status == 200 && summary["links"]["connected"] == clusters).then_some(())
    });
    started.elapsed()
}

/// Every engine's (epoch, seq) now, by cluster.
fn engine_positions(fleet: &[(String, String)]) -> Vec<(String, u64, u64)> {
    fleet
        .iter()
        .map(|(name, addr)| {
            let (epoch, snapshot) = engine_snapshot(addr);
            (name.clone(), epoch, snapshot.seq)
        })
        .collect()
}

/// Checks history in the database: for each cluster one engine run, its
/// events stored once each, from the first stored to the engine's last,
/// with no gap recorded.
fn assert_exactly_once(
    db: &mut postgres::Client,
    fleet: &[(String, String)],
    covering: &[(String, u64, u64)],
) {
    let now = engine_positions(fleet);
    for (name, epoch, seq) in &now {
        let rows = db
            .query(
                "SELECT epoch, min(seq), max(seq), count(*), count(DISTINCT seq) FROM history
                 WHERE cluster = $1 GROUP BY epoch",
                &[name],
            )
            .unwrap();
        assert_eq!(rows.len(), 1, "{name}: one engine run in history");
        let (e, min, max, count, distinct): (i64, i64, i64, i64, i64) = (
            rows[0].get(0),
            rows[0].get(1),
            rows[0].get(2),
            rows[0].get(3),
            rows[0].get(4),
        );
        assert_eq!(e as u64, *epoch, "{name}: the engine's run");
        assert_eq!(
            max as u64, *seq,
            "{name}: history reaches the engine's last event"
        );
        assert_eq!(count, distinct, "{name}: no event twice");
        assert_eq!(
            count,
            max - min + 1,
            "{name}: no event missing between {min} and {max}"
        );
        let before = covering.iter().find(|(n, _, _)| n == name).unwrap().2;
        assert!(
            (min as u64) <= before,
            "{name}: history covers the takeover (from {min}, the kill was at {before})"
        );
    }
    let gaps: i64 = db
        .query_one("SELECT count(*) FROM gaps", &[])
        .unwrap()
        .get(0);
    assert_eq!(gaps, 0, "no gap recorded");
}

/// Waits until the database holds every engine's last event.
fn wait_history_current(db: &mut postgres::Client, fleet: &[(String, String)]) {
    let target = engine_positions(fleet);
    wait_until("history holds every engine's last event", || {
        target
            .iter()
            .all(|(name, _, seq)| {
                let max: Option<i64> = db
                    .query_one("SELECT max(seq) FROM history WHERE cluster = $1", &[name])
                    .unwrap()
                    .get(0);
                max.is_some_and(|m| m as u64 >= *seq)
            })
            .then_some(())
    });
}

/// Switches groups on every engine, round after round, until told to stop
/// (at most two minutes): the steady load.
fn load(fleet: Vec<(String, String)>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut rounds = 0u64;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            for (_, addr) in &fleet {
                // An engine may cut off a client that falls behind its
                // events; the next round connects again.
                let addr = addr.clone();
                let _ = std::panic::catch_unwind(move || churn(&addr, 2));
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        rounds
    })
}

/// The last failover group of the engine at `engine` (the load switches
/// only the first two).
fn last_failover_group(engine: &str) -> String {
    let (_, snapshot) = engine_snapshot(engine);
    let group = snapshot.config.groups.iter().rev().find(|g| !g.parallel);
    group.unwrap().name.to_string()
}

/// Freezes the last failover group of `cluster` (at `engine`) through the
/// server at `addr`; the answer.
fn freeze_last_group(addr: &str, (cluster, engine): &(String, String)) -> Value {
    let group = last_failover_group(engine);
    let (status, answer) = http_json(
        addr,
        "POST",
        &format!("/api/v1/clusters/{cluster}/operations"),
        Some(&format!(
            r#"{{"op":"group_freeze","group":"{group}","wait":true,"timeout_secs":20}}"#
        )),
        &[],
    );
    assert!(status < 300, "{status}: {answer}");
    answer
}

#[test]
fn a_standby_takes_over_with_history_exactly_once_and_a_paused_leader_writes_nothing() {
    let Some(db) = pg::database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_sim, fleet) = sim_fleet(
        dir.path(),
        "c",
        DIRECT + CONNECTED,
        &["--journal", "200000", "--fault-rate", "0"],
    );
    let (direct, relayed) = fleet.split_at(DIRECT);
    let config_a = write_group_config(dir.path(), "a", &db.url, direct, "");
    let config_b = write_group_config(dir.path(), "b", &db.url, direct, "");

    let (mut a, addr_a) = start_group_server(&config_a, "as the active server");
    let (mut b, addr_b) = start_group_server(&config_b, "as a standby");
    // Both share one fleet CA (the group's, through the database).
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data-a/pki/ca.pem")).unwrap(),
        std::fs::read_to_string(dir.path().join("data-b/pki/ca.pem")).unwrap()
    );
    // a knows b before any connector joins, so connectors learn both.
    wait_until("a lists b as a standby", || {
        let (_, view) = get_when_up(&addr_a, "/api/v1/servers")?;
        (view["servers"]
            .as_array()?
            .iter()
            .any(|s| s["id"] == "b" && s["role"] == "standby"))
        .then_some(())
    });

    let mut connectors = Vec::new();
    for (name, engine) in relayed {
        let (status, issued) = http_json(
            &addr_a,
            "POST",
            "/api/v1/tokens",
            Some(&format!(r#"{{"cluster":"{name}"}}"#)),
            &[],
        );
        assert_eq!(status, 201, "{issued}");
        let data = dir.path().join(format!("connector-{name}"));
        connectors.push(
            Proc::start(
                &[
                    "connector",
                    "--server",
                    issued["connector_address"].as_str().unwrap(),
                    "--token",
                    issued["token"].as_str().unwrap(),
                    "--engine",
                    engine,
                    "--data-dir",
                    data.to_str().unwrap(),
                ],
                "following the engine",
            )
            .0,
        );
    }
    wait_all_connected(&addr_a, fleet.len());

    // The group as each sees it, the standby's forwarding, the CLI.
    let (_, view) = get_when_up(&addr_b, "/api/v1/servers").unwrap();
    assert_eq!(view["role"], "standby");
    assert_eq!(view["active"], "a");
    assert_eq!(view["active_url"], format!("https://{addr_a}"));
    let forwarded = request(&addr_b, "GET", "/api/v1/summary", None, &[]);
    assert_eq!(forwarded.status, 200, "{}", forwarded.body);
    assert_eq!(
        forwarded.header("x-haven-forwarded-by").as_deref(),
        Some("b")
    );
    assert!(
        forwarded.body.contains("\"clusters\":6"),
        "{}",
        forwarded.body
    );
    let socket_b = dir.path().join("data-b/haven.sock");
    let (code, out, err) = haven(&["server", "status", "--socket", socket_b.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("active: a at https://"), "{out}");
    for id in ["a ", "b "] {
        assert!(
            out.lines().any(|l| l.starts_with(id) && l.contains(" up ")),
            "{out}"
        );
    }
    let metrics = request(&addr_b, "GET", "/metrics", None, &[]).body;
    assert!(metrics.contains("haven_server_active 0"), "{metrics}");
    let connector_json = std::fs::read_to_string(
        dir.path()
            .join(format!("connector-{}/connector.json", relayed[0].0)),
    )
    .unwrap();
    assert!(connector_json.contains("\"servers\""), "{connector_json}");

    // Under load: kill -9 the active server.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(fleet.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let at_kill = engine_positions(&fleet);
    let killed = Instant::now();
    signal(a.pid(), libc::SIGKILL);
    let _ = a.child.wait();
    wait_until("b is active", || {
        (role_of(&addr_b)? == "active").then_some(())
    });
    let active_after = killed.elapsed();
    // An operation right away: on a direct cluster and a relayed one.
    for cluster in [&direct[0], &relayed[0]] {
        let answer = freeze_last_group(&addr_b, cluster);
        assert_eq!(answer["outcome"], "completed", "{}: {answer}", cluster.0);
    }
    let connected_after =
        killed.elapsed().max(active_after) + wait_all_connected(&addr_b, fleet.len());
    eprintln!(
        "takeover: b active {} ms after the kill, every cluster connected after {} ms",
        active_after.as_millis(),
        connected_after.as_millis()
    );
    // The console and the metrics of the new active server say so.
    let (status, page) = http(&addr_b, "GET", "/admin", None, &[]);
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"servers\"") && page.contains("is the active one of its group"),
        "{page}"
    );
    let metrics = request(&addr_b, "GET", "/metrics", None, &[]).body;
    assert!(metrics.contains("haven_server_active 1"), "{metrics}");
    std::thread::sleep(Duration::from_millis(1000));

    // What is written from now on, and by which server (the test's own
    // trigger; a rolled-back write leaves no row).
    let mut pg = db.client();
    pg.batch_execute(
        "CREATE TABLE test_writes (app text NOT NULL, at_ms bigint NOT NULL);
         CREATE FUNCTION test_note() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO test_writes VALUES (current_setting('application_name'),
                 (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
             RETURN NULL;
         END $$;
         CREATE TRIGGER test_note AFTER INSERT OR UPDATE OR DELETE ON history
             FOR EACH STATEMENT EXECUTE FUNCTION test_note();
         CREATE TRIGGER test_note AFTER INSERT OR UPDATE OR DELETE ON cursors
             FOR EACH STATEMENT EXECUTE FUNCTION test_note();
         CREATE TRIGGER test_note AFTER INSERT OR UPDATE OR DELETE ON operations
             FOR EACH STATEMENT EXECUTE FUNCTION test_note();
         CREATE TRIGGER test_note AFTER INSERT OR UPDATE OR DELETE ON checkpoints
             FOR EACH STATEMENT EXECUTE FUNCTION test_note();",
    )
    .unwrap();

    // a comes back, as a standby; then b is paused until a has the lease.
    let (a2, addr_a2) = start_group_server(&config_a, "as a standby");
    let term_b: i64 = pg
        .query_one("SELECT term FROM group_lease", &[])
        .unwrap()
        .get(0);
    signal(b.pid(), libc::SIGSTOP);
    wait_until("a is active again", || {
        (role_of(&addr_a2)? == "active").then_some(())
    });
    let (term_a, took_over_ms): (i64, i64) = {
        let row = pg
            .query_one("SELECT term, acquired_ms FROM group_lease", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(term_a, term_b + 1);
    wait_all_connected(&addr_a2, fleet.len());
    std::thread::sleep(Duration::from_millis(500));
    signal(b.pid(), libc::SIGCONT);
    wait_until("b starts again as a standby", || {
        (b.log().matches("as a standby").count() == 2).then_some(())
    });
    assert!(b.log().contains("lost the lease"), "{}", b.log());
    let answer = freeze_last_group(&addr_a2, &relayed[1]);
    assert_eq!(answer["outcome"], "completed", "{answer}");

    stop.store(true, Ordering::Relaxed);
    let rounds = loader.join().unwrap();
    assert!(rounds > 10, "the load ran ({rounds} rounds)");
    wait_all_connected(&addr_a2, fleet.len());
    wait_history_current(&mut pg, &fleet);
    assert_exactly_once(&mut pg, &fleet, &at_kill);

    let old = format!("haven/b/{term_b}");
    let late: Vec<(String, i64)> = pg
        .query(
            "SELECT app, at_ms FROM test_writes WHERE app = $1 AND at_ms >= $2",
            &[&old, &took_over_ms],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(late.is_empty(), "b wrote after losing the lease: {late:?}");
    let by_a: i64 = pg
        .query_one(
            "SELECT count(*) FROM test_writes WHERE app = $1",
            &[&format!("haven/a/{term_a}")],
        )
        .unwrap()
        .get(0);
    assert!(by_a > 0, "the active server wrote meanwhile");

    drop(connectors);
    b.stop(Duration::from_secs(10));
    drop(a2);
}
