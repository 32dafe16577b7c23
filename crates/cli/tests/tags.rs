//! End-to-end: tags and search on a real server with two simulated
//! clusters, real OS users logging in through PAM (so roles decide), the
//! `haven` command line on the server's local socket. Tags are set through
//! the CLI and the API; search and every tag filter answer exactly the
//! objects expected; a user sees none of another cluster's objects; a bad
//! tag or a missing role changes nothing; saved searches are private
//! unless shared. Needs root (it creates OS users); with CI=true a missing
//! privilege is a failure.

mod support;

#[path = "support/os_users.rs"]
mod os_users;

use std::collections::BTreeSet;

use os_users::OsUsers;
use serde_json::{json, Value};
use support::*;

struct Fixture {
    server: ServerProc,
    socket: String,
}

impl Fixture {
    /// `haven ARGS --socket S` as the OS user running the test; (exit
    /// code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--socket", &self.socket]);
        haven(&all)
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.cli(&all);
        assert_eq!(code, 0, "haven {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("haven {args:?}: {e}: {out}"))
    }

    fn as_user(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.as_user(token, method, path, body)
    }
}

fn login(server: &ServerProc, user: &str) -> String {
    server.log_in(user, &OsUsers::password(user))
}

/// Search hits as `kind cluster/name` or `cluster NAME` (a set: the answer's order is the
/// fleet's, and exactness is what is checked).
fn hits(answer: &Value) -> BTreeSet<String> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {answer}"))
        .iter()
        .map(|h| match h["kind"].as_str().unwrap() {
            "cluster" => format!("cluster {}", h["name"].as_str().unwrap()),
            kind => format!(
                "{kind} {}/{}",
                h["cluster"].as_str().unwrap(),
                h["name"].as_str().unwrap()
            ),
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn names(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {answer}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn tags_search_and_saved_searches_answer_exactly_what_each_user_may_see() {
    let Some(users) = OsUsers::create(&["htga", "htgu"]) else {
        return;
    };
    let [groupadm, guest] = <[String; 2]>::try_from(users.names.clone()).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let alpha = simulated_engine(dir.path(), "alpha", &["--sim-delay", "0"]);
    let beta = simulated_engine(dir.path(), "beta", &["--sim-delay", "0"]);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[auth]\nenabled = true\npam_service = \"{service}\"\nserver_admins = [\"{me}\"]\n\
             [[auth.grant]]\nuser = \"{me}\"\nrole = \"cluster_administrator\"\n\
             [[auth.grant]]\nuser = \"{groupadm}\"\nrole = \"group_administrator\"\ncluster = \"beta\"\nservice_group = \"web\"\n\
             [[auth.grant]]\nuser = \"{guest}\"\nrole = \"guest\"\ncluster = \"alpha\"\n\
             [[cluster]]\nname = \"alpha\"\naddress = \"{a}\"\n\
             [[cluster]]\nname = \"beta\"\naddress = \"{b}\"\n",
            service = users.service,
            a = alpha.addr,
            b = beta.addr,
        ),
    );
    let f = Fixture {
        socket: dir.path().join("data/haven.sock").display().to_string(),
        server,
    };
    wait_until("both clusters synchronised", || {
        let list = f.cli_json(&["clusters"]);
        (list.as_array().unwrap().len() == 2
            && list.as_array().unwrap().iter().all(|c| c["groups"] == 2))
        .then_some(())
    });

    // Tags through the CLI (Cluster Administrator everywhere).
    for args in [
        &["tag", "set", "alpha", "env=prod", "tier=gold"][..],
        &["tag", "set", "alpha/web", "role=frontend"],
        &["tag", "set", "--system", "beta/n2", "rack=r7"],
        &["tag", "set", "beta", "env=test"],
    ] {
        let (code, out, err) = f.cli(args);
        assert_eq!(code, 0, "haven {args:?}: {err}");
        assert!(out.contains(':'), "{out}");
    }
    let (_, out, _) = f.cli(&["tag", "set", "alpha/web", "role=frontend"]);
    assert_eq!(out.trim(), "group alpha/web: role=frontend");

    // Through the API, as the Group Administrator of beta/web.
    let ga = login(&f.server, &groupadm);
    let (status, body) = f.as_user(
        &ga,
        "PUT",
        "/api/v1/tags",
        Some(json!({"cluster": "beta", "group": "web", "tags": ["owner=ann"]})),
    );
    assert_eq!(
        (status, &body["tags"]),
        (200, &json!({"owner": "ann"})),
        "{body}"
    );
    // Not on the cluster itself (Cluster Administrator), nor anywhere in
    // alpha (unknown to them), nor on beta/db (no role there).
    let (status, body) = f.as_user(
        &ga,
        "PUT",
        "/api/v1/tags",
        Some(json!({"cluster": "beta", "tags": ["env=mine"]})),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Cluster Administrator"),
        "{body}"
    );
    let (status, _) = f.as_user(
        &ga,
        "PUT",
        "/api/v1/tags",
        Some(json!({"cluster": "alpha", "tags": ["env=mine"]})),
    );
    assert_eq!(status, 404);
    let (status, _) = f.as_user(
        &ga,
        "PUT",
        "/api/v1/tags",
        Some(json!({"cluster": "beta", "group": "db", "tags": ["env=mine"]})),
    );
    assert_eq!(status, 404);

    // A bad tag is refused with the rule, and nothing of the request is
    // stored (the good one beside it neither).
    let (code, _, err) = f.cli(&["tag", "set", "alpha", "ok=1", "bad key=x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tag key `bad key`"), "{err}");
    let (code, _, err) = f.cli(&["tag", "set", "alpha", "ok=1", "list=a,b"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("without `,`"), "{err}");
    let (code, _, err) = f.cli(&["tag", "set", "alpha/nosuch", "ok=1"]);
    assert_eq!(code, 4, "{err}");
    let all = f.cli_json(&["tag", "list"]);
    let tags: BTreeSet<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}/{}/{} {}={} by {}",
                t["cluster"].as_str().unwrap(),
                t["kind"].as_str().unwrap(),
                t["object"].as_str().unwrap(),
                t["key"].as_str().unwrap(),
                t["value"].as_str().unwrap(),
                t["set_by"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        tags,
        set(&[
            &format!("alpha/cluster/ env=prod by {me}"),
            &format!("alpha/cluster/ tier=gold by {me}"),
            &format!("alpha/group/web role=frontend by {me}"),
            &format!("beta/cluster/ env=test by {me}"),
            &format!("beta/group/web owner=ann by {groupadm}"),
            &format!("beta/system/n2 rack=r7 by {me}"),
        ])
    );

    // The cluster list by tag: a cluster's own tags.
    let clusters = |tag: &str| names(&f.cli_json(&["clusters", "--tag", tag]));
    assert_eq!(clusters("env=prod"), ["alpha"]);
    assert_eq!(clusters("env=test"), ["beta"]);
    assert_eq!(clusters("env"), ["alpha", "beta"]);
    assert_eq!(clusters("ENV=P*"), ["alpha"]);
    assert_eq!(clusters("rack=r7"), Vec::<String>::new());
    let (status, body) = f.as_user(&ga, "GET", "/api/v1/clusters?tag=env%3D", None);
    assert_eq!(status, 400, "{body}");

    // Search: exactly the objects that match.
    let find = |q: &str| hits(&f.cli_json(&["find", q]));
    assert_eq!(
        find("env=prod kind:group"),
        set(&["group alpha/db", "group alpha/web"])
    );
    assert_eq!(
        find("role=frontend"),
        set(&[
            "group alpha/web",
            "resource alpha/web_httpd",
            "resource alpha/web_ip"
        ])
    );
    assert_eq!(find("rack=r7"), set(&["system beta/n2"]));
    assert_eq!(
        find("type:Mount"),
        set(&["resource alpha/db_fs", "resource beta/db_fs"])
    );
    assert_eq!(
        find("web -kind:resource"),
        set(&["group alpha/web", "group beta/web"])
    );
    assert_eq!(
        find("192.0.2.10 cluster:b*"),
        set(&["resource beta/web_ip"])
    );
    assert_eq!(find("ann"), set(&["group beta/web"]));
    assert_eq!(find("kind:cluster -env=test"), set(&["cluster alpha"]));
    assert_eq!(
        hits(&f.cli_json(&["find", "kind:system", "--tag", "env=test"])),
        set(&["system beta/n1", "system beta/n2"])
    );
    let (code, _, err) = f.cli(&["find", "colour:red"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown filter `colour:`"), "{err}");

    // Faults by tag: a frozen group in alpha shows under env=prod only.
    let (code, _, err) = f.cli(&["group", "freeze", "alpha/db", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let faults = |tag: &str| {
        let answer = f.cli_json(&["faults", "--tag", tag]);
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{} {} {}",
                    a["kind"].as_str().unwrap(),
                    a["cluster"].as_str().unwrap(),
                    a["object"].as_str().unwrap_or("-")
                )
            })
            .collect::<BTreeSet<String>>()
    };
    assert_eq!(faults("env=prod"), set(&["frozen_group alpha db"]));
    assert_eq!(faults("env=test"), set(&[]));
    assert_eq!(faults("role=frontend"), set(&[]));

    // The Guest of alpha sees nothing of beta, whatever they ask.
    let gu = login(&f.server, &guest);
    let search = |token: &str, q: &str| {
        let (status, body) = f.as_user(
            token,
            "GET",
            &format!("/api/v1/search?q={}", encode(q)),
            None,
        );
        assert_eq!(status, 200, "{body}");
        hits(&body)
    };
    assert_eq!(search(&gu, "kind:cluster"), set(&["cluster alpha"]));
    assert_eq!(search(&gu, "rack=r7"), set(&[]));
    assert_eq!(search(&gu, "env"), search(&gu, "env cluster:alpha"));
    assert_eq!(search(&gu, "ann"), set(&[]));
    assert_eq!(search(&gu, "type:Mount"), set(&["resource alpha/db_fs"]));
    let (_, list) = f.as_user(&gu, "GET", "/api/v1/clusters?tag=env", None);
    assert_eq!(names(&list), ["alpha"]);
    let (_, tags) = f.as_user(&gu, "GET", "/api/v1/tags", None);
    assert!(
        tags.as_array()
            .unwrap()
            .iter()
            .all(|t| t["cluster"] == "alpha"),
        "{tags}"
    );
    // And may not change a tag of alpha (a Guest).
    let (status, _) = f.as_user(&gu, "DELETE", "/api/v1/tags?cluster=alpha&key=env", None);
    assert_eq!(status, 403);
    assert_eq!(clusters("env=prod"), ["alpha"]);

    // Saved searches: private unless shared.
    let (code, _, err) = f.cli(&["find", "env=prod", "kind:group", "--save", "prod groups"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = f.cli(&["find", "rack=r7", "--save", "racks", "--shared"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        hits(&f.cli_json(&["find", "--saved", "prod groups"])),
        set(&["group alpha/db", "group alpha/web"])
    );
    let saved: Vec<String> = f
        .cli_json(&["searches"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(saved, ["prod groups", "racks"]);
    let (_, theirs) = f.as_user(&gu, "GET", "/api/v1/searches", None);
    assert_eq!(names(&theirs), ["racks"]);
    // The shared search runs with the Guest's own sight: nothing of beta.
    assert_eq!(search(&gu, theirs[0]["query"].as_str().unwrap()), set(&[]));
    let id = theirs[0]["id"].as_i64().unwrap();
    let (status, _) = f.as_user(&gu, "DELETE", &format!("/api/v1/searches/{id}"), None);
    assert_eq!(status, 403);
    // The same name again is a conflict; a bad query is refused.
    let (code, _, err) = f.cli(&["find", "x", "--save", "racks"]);
    assert_eq!(code, 1, "{err}");
    let (status, _) = f.as_user(
        &gu,
        "POST",
        "/api/v1/searches",
        Some(json!({"name": "bad", "query": "state:broken"})),
    );
    assert_eq!(status, 400);
    let (code, _, err) = f.cli(&["searches", "--delete", "racks"]);
    assert_eq!(code, 0, "{err}");
    let (_, theirs) = f.as_user(&gu, "GET", "/api/v1/searches", None);
    assert_eq!(names(&theirs), Vec::<String>::new());

    // Removing a tag, and the access log of the changes.
    let (code, out, err) = f.cli(&["tag", "rm", "alpha", "tier"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "cluster alpha: env=prod");
    let (code, _, _) = f.cli(&["tag", "rm", "alpha", "tier"]);
    assert_eq!(code, 4);
    let log = f.cli_json(&["audit", "--access", "--limit", "200"]);
    let changes: BTreeSet<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "set_tags" || e["action"] == "remove_tag")
        .map(|e| {
            format!(
                "{} {} {}",
                e["user"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changes,
        set(&[
            &format!("{me} set_tags alpha env=prod tier=gold"),
            &format!("{me} set_tags alpha/web role=frontend"),
            &format!("{me} set_tags beta/n2 rack=r7"),
            &format!("{me} set_tags beta env=test"),
            &format!("{groupadm} set_tags beta/web owner=ann"),
            &format!("{me} remove_tag alpha tier"),
        ])
    );
    let denied = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["outcome"] == "denied" && e["target"].as_str().unwrap_or("").contains("/api/v1/tags")
        })
        .count();
    assert_eq!(denied, 4, "{log}");

    // Tags survive a restart (loaded from the database).
    drop(f);
    let server = ServerProc::start(dir.path(), "");
    let f = Fixture {
        socket: dir.path().join("data/haven.sock").display().to_string(),
        server,
    };
    assert_eq!(clusters_of(&f, "env=prod"), ["alpha"]);
    drop((alpha, beta));
}

fn clusters_of(f: &Fixture, tag: &str) -> Vec<String> {
    names(&f.cli_json(&["clusters", "--tag", tag]))
}
