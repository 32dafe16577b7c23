//! Time travel end to end: a real server follows a simulated engine
//! through a fault, a failover and a freeze; afterwards the state it
//! rebuilds for each of those instants — through the API, the command
//! line and the console in a real browser — is exactly the state it
//! showed live then. Bad instants get clear errors.

mod support;

#[path = "support/browser.rs"]
mod browser;

use std::time::Duration;

use serde_json::Value;
use support::*;

/// What the server showed live at one instant.
struct Seen {
    at: i64,
    cluster: Value,
    summary: Value,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits for the cluster to settle (no event for a while), then records
/// what the server shows live and the instant it showed it.
fn settle_and_see(server: &ServerProc) -> Seen {
    let quiet = |v: &Value| v["snapshot"]["seq"].clone();
    let mut last = quiet(&server.get("/api/v1/clusters/tau").1);
    wait_until("the cluster to settle", || {
        std::thread::sleep(Duration::from_millis(300));
        let now = quiet(&server.get("/api/v1/clusters/tau").1);
        let settled = now == last;
        last = now;
        settled.then_some(())
    });
    let at = now_ms();
    let (_, cluster) = server.get("/api/v1/clusters/tau");
    let (_, summary) = server.get("/api/v1/summary?limit=50");
    assert_eq!(cluster["snapshot"]["seq"], last, "still settled");
    std::thread::sleep(Duration::from_millis(50));
    Seen {
        at,
        cluster,
        summary,
    }
}

fn operate(server: &ServerProc, op: &str) {
    let (status, done) = server.post("/api/v1/clusters/tau/operations", op, &[]);
    assert_eq!(status, 200, "{op}: {done}");
}

#[test]
fn the_past_is_shown_exactly_as_it_was_seen_live() {
    let dir = tempfile::tempdir().unwrap();
    let engine = simulated_engine(dir.path(), "tau", &[]);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[[cluster]]\nname = \"tau\"\naddress = \"{}\"\n",
            engine.addr
        ),
    );
    server.wait_for("/api/v1/clusters/tau", "web online on n1", |v| {
        v["snapshot"].is_object() && group_state(&v["snapshot"], "web", "n1") == "ONLINE"
    });

    // Three moments: healthy; web faulted on n1 and failed over to n2;
    // then db frozen.
    let healthy = settle_and_see(&server);
    operate(
        &server,
        r#"{"op":"sim_fault_resource","resource":"web_ip","system":"n1"}"#,
    );
    server.wait_for("/api/v1/clusters/tau", "web online on n2", |v| {
        group_state(&v["snapshot"], "web", "n2") == "ONLINE"
    });
    let failed_over = settle_and_see(&server);
    operate(&server, r#"{"op":"group_freeze","group":"db"}"#);
    let frozen = settle_and_see(&server);
    assert_eq!(
        group_state(&failed_over.cluster["snapshot"], "web", "n1"),
        "FAULTED"
    );

    for seen in [&healthy, &failed_over, &frozen] {
        let (status, past) = server.get(&format!("/api/v1/past/clusters/tau?at={}", seen.at));
        assert_eq!(status, 200, "{past}");
        assert_eq!(
            past["snapshot"], seen.cluster["snapshot"],
            "the cluster at {} as it was seen live",
            seen.at
        );
        assert_eq!(past["at_ms"], seen.at);
        let (status, fleet) = server.get(&format!("/api/v1/past/summary?at={}", seen.at));
        assert_eq!(status, 200, "{fleet}");
        for key in [
            "clusters",
            "systems",
            "groups",
            "group_states",
            "resources",
            "resource_states",
            "attention",
            "attention_total",
        ] {
            assert_eq!(
                fleet["summary"][key], seen.summary[key],
                "the fleet's {key} at {}",
                seen.at
            );
        }
        assert_eq!(fleet["unrecorded"], serde_json::json!([]));
    }

    // The command line shows the same.
    let socket = dir.path().join("data/haven.sock");
    let socket = socket.to_str().unwrap();
    let at = failed_over.at.to_string();
    let (code, out, err) = haven(&["status", "tau", "--at", &at, "--socket", socket, "--json"]);
    assert_eq!(code, 0, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli["snapshot"], failed_over.cluster["snapshot"]);
    let (code, out, err) = haven(&["status", "tau", "--at", &at, "--socket", socket]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("as recorded at"), "{out}");
    let web = out
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap_or_default();
    assert!(
        web.contains("FAULTED") && web.contains("ONLINE"),
        "web faulted on n1, online on n2: {out}"
    );
    let (code, out, err) = haven(&["status", "--at", &at, "--socket", socket]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the fleet as recorded at") && out.contains("faulted_group"),
        "{out}"
    );

    // Bad instants: clear errors, nothing else.
    for (at, status, says) in [
        ("yesterday-ish", 400, "RFC 3339"),
        ("2999-01-01", 400, "in the future"),
        ("1000", 404, "nothing of cluster tau was recorded"),
    ] {
        let (got, body) = server.get(&format!("/api/v1/past/clusters/tau?at={at}"));
        assert_eq!(got, status, "{at}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{at}: {message}");
    }
    let (status, body) = server.get(&format!("/api/v1/past/clusters/nope?at={}", healthy.at));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_cluster");
    let (code, _, err) = haven(&["status", "tau", "--at", "soon", "--socket", socket]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read \"soon\" as a time"), "{err}");

    console(&server, &healthy, &failed_over);
}

/// The console's time travel in a real browser: the cluster as it was
/// when healthy, stepping forward change by change to the failover, and
/// back; the fleet page; a bad instant.
fn console(server: &ServerProc, healthy: &Seen, failed_over: &Seen) {
    let Some(b) = browser::Browser::start() else {
        return;
    };
    let base = format!("https://{}", server.addr);
    b.goto(&format!("{base}/past/c/tau?at={}", healthy.at));
    assert!(b.text("h1").contains("Cluster tau at"), "{}", b.text("h1"));
    assert!(b.text(".banner").contains("not live"));
    let web_row = |b: &browser::Browser| -> String {
        b.script(
            "return [...document.querySelectorAll('table.matrix tr')]\
               .map(r => r.innerText).find(t => t.trim().startsWith('web')) || '';",
            serde_json::json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    };
    let row = web_row(&b);
    assert!(row.contains("ONLINE") && !row.contains("FAULTED"), "{row}");
    assert_eq!(b.count("button.op"), 0, "nothing to operate in the past");
    // Step forward one change at a time until the failover is complete.
    let mut steps = 0;
    while !(web_row(&b).contains("FAULTED") && web_row(&b).contains("ONLINE")) {
        steps += 1;
        assert!(steps <= 40, "the failover within 40 changes");
        let before = b.url();
        b.click("#nextchange");
        b.wait_for("the next change", || (b.url() != before).then_some(()));
    }
    assert!(steps >= 3, "a failover takes several changes, took {steps}");
    // And one step back leaves the failover incomplete.
    let done = b.url();
    b.click("#prevchange");
    b.wait_for("the previous change", || (b.url() != done).then_some(()));
    let row = web_row(&b);
    assert!(
        !(row.contains("FAULTED") && row.contains("ONLINE")),
        "{row}"
    );

    // The fleet page at the failover: counts and what needed attention.
    b.goto(&format!("{base}/past?at={}", failed_over.at));
    let faulted = b.text("[data-kind=groups] [data-state=FAULTED] .n");
    assert_eq!(
        faulted,
        failed_over.summary["group_states"]["FAULTED"].to_string()
    );
    assert!(b.text("table.attention").contains("FAULTED GROUP"));
    // Typing an instant in the picker.
    b.script(
        "document.getElementById('at').value = arguments[0];",
        serde_json::json!(["2h"]),
    );
    b.click("form.picker button[type=submit]");
    b.wait_for("the fleet two hours ago", || {
        b.url().contains("at=2h").then_some(())
    });
    assert!(
        b.text("#unrecorded").contains("tau"),
        "nothing recorded then"
    );
    b.goto(&format!("{base}/past?at=later"));
    assert!(b.text("p.error").contains("cannot read"));
}
