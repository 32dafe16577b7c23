//! End-to-end: two real servers on loopback, sites `east` and `west`,
//! each with its own simulated cluster and real OS users logging in
//! through PAM. They pair with a one-time token (bad, foreign and reused
//! tokens are refused); each then shows the other's cluster as
//! SITE:CLUSTER; a fault at west appears in east's summary and event
//! stream; an operation from east on a west group completes and is audited
//! at west with the user's name, while a user west's roles deny, and one
//! west has no account for, are refused there. The link is cut by a proxy
//! (and later west is killed and restarted): east shows west unreachable
//! since then, never live, and after the link returns east's copy of
//! west's history equals west's own, event for event. Needs root (it
//! creates OS users); with CI=true a missing privilege is a failure.

mod support;

#[path = "support/os_users.rs"]
mod os_users;

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use os_users::OsUsers;
use serde_json::{json, Value};
use support::*;

/// A TCP proxy in front of a server's peer port that can cut every
/// connection and refuse new ones (a broken WAN), and be pointed elsewhere.
struct Proxy {
    addr: String,
    target: Arc<Mutex<String>>,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap().to_string(),
            target: Arc::new(Mutex::new(target.to_string())),
            up: Arc::new(AtomicBool::new(true)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        let (target, up, open) = (proxy.target.clone(), proxy.up.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if !up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let to = target.lock().unwrap().clone();
                let Ok(server) = TcpStream::connect(&to) else {
                    continue;
                };
                for s in [&client, &server] {
                    open.lock().unwrap().push(s.try_clone().unwrap());
                }
                relay_both(client, server);
            }
        });
        proxy
    }

    /// Breaks every connection through it and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self, target: &str) {
        *self.target.lock().unwrap() = target.to_string();
        self.up.store(true, Ordering::SeqCst);
    }
}

struct Site {
    server: ServerProc,
    admin: String,
}

impl Site {
    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.as_user(token, method, path, body)
    }

    /// A console page as the administrator sees it.
    fn page(&self, path: &str) -> String {
        let auth = format!("Bearer {}", self.admin);
        let (status, html) = http(
            &self.server.addr,
            "GET",
            path,
            None,
            &[("Authorization", &auth)],
        );
        assert_eq!(status, 200, "{path}: {html}");
        html
    }

    fn wait(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let auth = format!("Bearer {}", self.admin);
        self.server
            .wait_for_with(path, &[("Authorization", &auth)], what, pred)
    }

    /// `haven ARGS` on the local socket, as root (a Server Administrator).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.server.haven(args)
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.cli(&all);
        assert_eq!(code, 0, "haven {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("haven {args:?}: {e}: {out}"))
    }

    /// This server's history of `cluster`, as (epoch, seq, the event).
    fn history(&self, cluster: &str) -> Vec<(u64, u64, Value)> {
        let (status, rows) = self.call(
            &self.admin,
            "GET",
            &format!(
                "/api/v1/history?cluster={}&limit=10000",
                cluster.replace(':', "%3A")
            ),
            None,
        );
        assert_eq!(status, 200, "{rows}");
        let mut out: Vec<(u64, u64, Value)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut event = r.clone();
                event.as_object_mut().unwrap().remove("cluster");
                (
                    r["epoch"].as_u64().unwrap(),
                    r["seq"].as_u64().unwrap(),
                    event,
                )
            })
            .collect();
        out.sort_by_key(|(e, s, _)| (*e, *s));
        out
    }
}

fn login(server: &ServerProc, user: &str) -> String {
    server.log_in(user, &OsUsers::password(user))
}

fn site_config(
    site: &str,
    service: &str,
    grants: &[(&str, &str)],
    cluster: &str,
    engine: &str,
) -> String {
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    // The first user granted is a Server Administrator too.
    let first = grants[0].0;
    let mut text = format!(
        "[peers]\nsite = \"{site}\"\nlisten = \"127.0.0.1:0\"\n\
         [auth]\nenabled = true\npam_service = \"{service}\"\nserver_admins = [\"{me}\", \"{first}\"]\n\
         [[auth.grant]]\nuser = \"{me}\"\nrole = \"cluster_administrator\"\n"
    );
    for (user, role) in grants {
        text.push_str(&format!(
            "[[auth.grant]]\nuser = \"{user}\"\nrole = \"{role}\"\n"
        ));
    }
    text.push_str(&format!(
        "[[cluster]]\nname = \"{cluster}\"\naddress = \"{engine}\"\n"
    ));
    text
}

fn peer_of<'a>(list: &'a Value, site: &str) -> &'a Value {
    list["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["site"] == site)
        .unwrap_or_else(|| panic!("no peer {site} in {list}"))
}

fn site_in<'a>(summary: &'a Value, site: &str) -> Option<&'a Value> {
    summary["sites"]
        .as_array()?
        .iter()
        .find(|s| s["site"] == site)
}

#[test]
fn two_sites_pair_follow_operate_and_come_back_after_a_broken_link() {
    let Some(users) = OsUsers::create(&["hpad", "hpop", "hpgu", "hpno"]) else {
        return;
    };
    let [admin, operator, guest, gone] = <[String; 4]>::try_from(users.names.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (east_dir, west_dir) = (dir.path().join("east"), dir.path().join("west"));
    std::fs::create_dir_all(&east_dir).unwrap();
    std::fs::create_dir_all(&west_dir).unwrap();
    let alpha = simulated_engine(&east_dir, "alpha", &["--sim-delay", "0"]);
    let beta = simulated_engine(&west_dir, "beta", &["--sim-delay", "0"]);
    // East lets all three operate; west makes `guest` a Guest.
    let east = ServerProc::start(
        &east_dir,
        &site_config(
            "east",
            &users.service,
            &[
                (&admin, "cluster_administrator"),
                (&operator, "cluster_operator"),
                (&guest, "cluster_operator"),
                (&gone, "cluster_operator"),
            ],
            "alpha",
            &alpha.addr,
        ),
    );
    let mut west_server = ServerProc::start(
        &west_dir,
        &site_config(
            "west",
            &users.service,
            &[
                (&admin, "cluster_administrator"),
                (&operator, "cluster_operator"),
                (&guest, "guest"),
                (&gone, "cluster_operator"),
            ],
            "beta",
            &beta.addr,
        ),
    );
    let east = Site {
        admin: login(&east, &admin),
        server: east,
    };
    let west_admin = login(&west_server, &admin);
    let mut west = Site {
        admin: west_admin,
        server: west_server,
    };
    let west_port = west.cli_json(&["peer", "list"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let east_port = east.cli_json(&["peer", "list"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let proxy = Proxy::start(&west_port);

    // Bad tokens are refused, and pair nothing.
    let (code, _, err) = east.cli(&["peer", "add", &proxy.addr, "--token", "hvp1.nonsense"]);
    assert_ne!(code, 0);
    assert!(err.contains("malformed pairing token"), "{err}");
    let issued = west.cli_json(&["peer", "token"]);
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(
        issued["command"]
            .as_str()
            .unwrap()
            .starts_with("haven peer add "),
        "{issued}"
    );
    let parts: Vec<&str> = token.split('.').collect();
    let wrong_secret = format!(
        "hvp1.{}.{}.{}",
        parts[1],
        "0".repeat(parts[2].len()),
        parts[3]
    );
    let (code, _, err) = east.cli(&["peer", "add", &proxy.addr, "--token", &wrong_secret]);
    assert_ne!(code, 0);
    assert!(err.contains("wrong pairing token secret"), "{err}");
    // West's token at another server (east itself): its CA is not the one
    // the token names.
    let (code, _, err) = east.cli(&["peer", "add", &east_port, "--token", &token]);
    assert_ne!(code, 0);
    assert!(
        err.contains("is not the server that made this token"),
        "{err}"
    );
    assert_eq!(east.cli_json(&["peer", "list"])["peers"], json!([]));
    assert_eq!(west.cli_json(&["peer", "list"])["peers"], json!([]));

    // Pairing (east dials west through the proxy).
    let (code, out, err) = east.cli(&["peer", "add", &proxy.addr, "--token", &token]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paired with site west"), "{out}");
    let east_list = east.cli_json(&["peer", "list"]);
    assert_eq!(east_list["site"], "east");
    assert_eq!(peer_of(&east_list, "west")["address"], proxy.addr.as_str());
    assert_eq!(
        peer_of(&west.cli_json(&["peer", "list"]), "east")["address"],
        east_port.as_str()
    );
    // A human table too.
    let (_, table, _) = east.cli(&["peer", "list"]);
    assert!(table.contains("west") && table.contains("SITE"), "{table}");

    // Each follows the other: the summary lists both sites, and each has
    // the other's cluster with its state.
    east.wait("/api/v1/summary", "west connected in east's summary", |s| {
        site_in(s, "west").is_some_and(|w| w["state"] == "connected" && w["clusters"] == 1)
            && site_in(s, "east").is_some_and(|e| e["local"] == true && e["clusters"] == 1)
    });
    west.wait("/api/v1/summary", "east connected in west's summary", |s| {
        site_in(s, "east").is_some_and(|e| e["state"] == "connected" && e["clusters"] == 1)
    });
    east.wait(
        "/api/v1/clusters/west:beta",
        "west:beta live at east",
        |v| {
            v["link"]["state"] == "connected"
                && group_state(&v["snapshot"], "web", "n1") == "ONLINE"
        },
    );
    west.wait(
        "/api/v1/clusters/east:alpha",
        "east:alpha live at west",
        |v| {
            v["link"]["state"] == "connected"
                && group_state(&v["snapshot"], "web", "n1") == "ONLINE"
        },
    );

    // The console shows both sites, and offers pairing to administrators.
    let home = east.page("/");
    assert!(
        home.contains("<h2>Sites</h2>") && home.contains("west"),
        "{home}"
    );
    assert!(!home.contains("st-unreachable"), "{home}");
    let admin_page = east.page("/admin");
    assert!(
        admin_page.contains("Peer sites")
            && admin_page.contains("/api/v1/peers/west")
            && admin_page.contains("haven peer add"),
        "{admin_page}"
    );
    assert!(east.page("/c/west%3Abeta").contains("west:beta"));

    // A fault at west: in east's event stream and summary.
    let auth = format!("Bearer {}", east.admin);
    let stream = sse_with(
        &east.server.addr,
        "/api/v1/events",
        &[("Authorization", &auth)],
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = west.call(
        &west.admin,
        "POST",
        "/api/v1/clusters/beta/operations",
        Some(json!({"op": "sim_fault_resource", "resource": "web_ip", "system": "n1"})),
    );
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (_, data) = stream
            .recv_timeout(left)
            .expect("west's fault in east's event stream");
        if data.contains("west:beta") && data.contains("web_ip") && data.contains("FAULTED") {
            break;
        }
    }
    east.wait(
        "/api/v1/summary",
        "west's faulted group in east's attention",
        |s| {
            s["attention"].as_array().unwrap().iter().any(|a| {
                a["cluster"] == "west:beta" && a["kind"] == "faulted_group" && a["object"] == "web"
            })
        },
    );

    // An operation from east on a west group, as `operator`: done at west,
    // audited there with the user's name, and here.
    let op_token = login(&east.server, &operator);
    let (status, done) = east.call(
        &op_token,
        "POST",
        "/api/v1/clusters/west:beta/operations",
        Some(json!({"op": "group_freeze", "group": "db", "wait": true, "timeout_secs": 30})),
    );
    assert_eq!(
        (status, &done["outcome"]),
        (200, &json!("completed")),
        "{done}"
    );
    assert_eq!(done["cluster"], "west:beta");
    let audited = |site: &Site, cluster: &str, user: &str| -> Vec<Value> {
        let (status, ops) = site.call(&site.admin, "GET", "/api/v1/operations?limit=1000", None);
        assert_eq!(status, 200, "{ops}");
        ops.as_array()
            .unwrap()
            .iter()
            .filter(|o| o["cluster"] == cluster && o["user"] == user)
            .cloned()
            .collect()
    };
    let at_west = audited(&west, "beta", &operator);
    assert_eq!(at_west.len(), 1, "{at_west:?}");
    assert_eq!(at_west[0]["outcome"], "completed", "{at_west:?}");
    assert_eq!(at_west[0]["op"]["op"], "group_freeze", "{at_west:?}");
    let at_east = audited(&east, "west:beta", &operator);
    assert_eq!(at_east.len(), 1, "{at_east:?}");
    assert_eq!(at_east[0]["outcome"], "completed", "{at_east:?}");
    east.wait(
        "/api/v1/clusters/west:beta",
        "db frozen, seen at east",
        |v| {
            v["snapshot"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "db" && g["freeze"] != "none")
        },
    );
    // The CLI addresses it the same way.
    let (code, out, err) = east.cli(&["group", "unfreeze", "west:beta/db", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");

    // A user east lets operate but west's roles do not: refused there.
    let guest_token = login(&east.server, &guest);
    let (status, refused) = east.call(
        &guest_token,
        "POST",
        "/api/v1/clusters/west:beta/operations",
        Some(json!({"op": "group_freeze", "group": "db"})),
    );
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["code"], "permission_denied");
    assert!(
        refused["reason"].as_str().unwrap().contains("Guest"),
        "{refused}"
    );
    let at_west = audited(&west, "beta", &guest);
    assert_eq!(at_west.len(), 1, "{at_west:?}");
    assert_eq!(at_west[0]["outcome"], "refused");

    // A user west has no account for (logged in at east, then removed from
    // the system): refused at west before anything runs.
    let gone_token = login(&east.server, &gone);
    os_users::run("userdel", &[&gone], None);
    let (status, refused) = east.call(
        &gone_token,
        "POST",
        "/api/v1/clusters/west:beta/operations",
        Some(json!({"op": "group_freeze", "group": "db"})),
    );
    assert_eq!(refused["outcome"], "refused", "{status} {refused}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("no account {gone}")),
        "{refused}"
    );
    assert!(audited(&west, "beta", &gone).is_empty());

    // The WAN breaks: east shows west unreachable since then, never live.
    proxy.cut();
    let cut = east.wait("/api/v1/summary", "west unreachable at east", |s| {
        site_in(s, "west").is_some_and(|w| w["state"] == "unreachable")
    });
    let since = site_in(&cut, "west").unwrap()["since_ms"].as_i64().unwrap();
    east.wait(
        "/api/v1/clusters/west:beta",
        "west:beta marked unreachable",
        |v| {
            v["link"]["state"] == "disconnected"
                && v["link"]["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("site west unreachable since"))
                && v["snapshot"].is_object()
        },
    );
    let (_, table, _) = east.cli(&["peer", "list"]);
    assert!(table.contains("unreachable"), "{table}");
    let home = east.page("/");
    assert!(
        home.contains("st-unreachable")
            && home.contains("its clusters show their last known state"),
        "{home}"
    );
    assert!(east.page("/c/west%3Abeta").contains("unreachable since"));
    // An operation meanwhile is refused at once, saying why.
    let (status, refused) = east.call(
        &op_token,
        "POST",
        "/api/v1/clusters/west:beta/operations",
        Some(json!({"op": "group_freeze", "group": "db"})),
    );
    assert_eq!(refused["outcome"], "refused", "{status} {refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("unreachable"),
        "{refused}"
    );
    // East's own work goes on.
    let (status, body) = east.call(
        &east.admin,
        "POST",
        "/api/v1/clusters/alpha/operations",
        Some(json!({"op": "group_freeze", "group": "db", "wait": true, "timeout_secs": 30})),
    );
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("completed")),
        "{body}"
    );
    // Changes at west while the link is down.
    for op in [
        json!({"op": "group_clear", "group": "web", "system": "n1", "wait": true, "timeout_secs": 30}),
        json!({"op": "group_switch", "group": "web", "to": "n1", "wait": true, "timeout_secs": 30}),
        json!({"op": "sim_fault_resource", "resource": "db_fs", "system": "n2"}),
    ] {
        let (status, body) = west.call(
            &west.admin,
            "POST",
            "/api/v1/clusters/beta/operations",
            Some(op),
        );
        assert_eq!(status, 200, "{body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        east.wait("/api/v1/summary", "still unreachable", |_| true)["sites"][1]["since_ms"],
        since,
        "the outage keeps its start"
    );

    // The WAN returns: east converges with nothing missed.
    proxy.restore(&west_port);
    east.wait("/api/v1/summary", "west connected again", |s| {
        site_in(s, "west").is_some_and(|w| w["state"] == "connected")
    });
    let converged = |east: &Site, west: &Site| {
        let theirs = west.history("beta");
        wait_until("east's copy of west's history equals west's", || {
            (east.history("west:beta") == theirs).then_some(())
        });
        // The same state, named as east names it.
        let mut live =
            west.wait("/api/v1/clusters/beta", "west's state", |_| true)["snapshot"].clone();
        live["config"]["name"] = json!("west:beta");
        east.wait(
            "/api/v1/clusters/west:beta",
            "east shows west's state",
            |v| v["link"]["state"] == "connected" && v["snapshot"] == live,
        );
        theirs.len()
    };
    let events = converged(&east, &west);
    assert!(events > 10, "{events} events");

    // West is killed and comes back (on another peer port): the same.
    signal(west.server.proc.pid(), libc::SIGKILL);
    let _ = west.server.proc.stop(Duration::from_secs(5));
    east.wait("/api/v1/summary", "west unreachable after a kill", |s| {
        site_in(s, "west").is_some_and(|w| w["state"] == "unreachable")
    });
    west_server = ServerProc::start(&west_dir, "");
    west = Site {
        admin: login(&west_server, &admin),
        server: west_server,
    };
    let west_port = west.cli_json(&["peer", "list"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    proxy.restore(&west_port);
    let (status, body) = west.call(
        &west.admin,
        "POST",
        "/api/v1/clusters/beta/operations",
        Some(json!({"op": "group_clear", "group": "db", "wait": true, "timeout_secs": 30})),
    );
    assert_eq!(status, 200, "{body}");
    east.wait("/api/v1/summary", "west connected after its restart", |s| {
        site_in(s, "west").is_some_and(|w| w["state"] == "connected")
    });
    assert!(converged(&east, &west) > events);

    // Unpairing, on both sides; the token cannot pair again.
    let (code, _, err) = east.cli(&["peer", "remove", "west"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = west.cli(&["peer", "remove", "east"]);
    assert_eq!(code, 0, "{err}");
    east.wait("/api/v1/clusters", "west's cluster gone from east", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "west:beta")
    });
    let (code, _, err) = east.cli(&["peer", "add", &proxy.addr, "--token", &token]);
    assert_ne!(code, 0);
    assert!(err.contains("already used"), "{err}");
    // The history stays.
    assert!(!east.history("west:beta").is_empty());
}
