//! End-to-end: a server with `[auth] enabled`, real OS users checked by
//! the real PAM stack, roles from `[[auth.grant]]`. Needs root (it creates
//! and removes OS users); with CI=true a missing privilege is a failure.

mod support;

#[path = "support/os_users.rs"]
mod os_users;

#[path = "../../auth/tests/common/slapd.rs"]
mod slapd;

use os_users::OsUsers;
use serde_json::Value;
use support::*;

fn login(server: &ServerProc, user: &str, password: &str) -> (u16, Value) {
    server.post(
        "/api/v1/login",
        &format!(r#"{{"user":"{user}","password":"{password}"}}"#),
        &[],
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn logins_sessions_and_roles_decide_what_each_user_may_see_and_do() {
    let Some(users) = OsUsers::create(&["hva", "hvo", "hvg", "hvn"]) else {
        return;
    };
    let [adm, op, guest, none] = <[String; 4]>::try_from(users.names.clone()).unwrap();
    users.join_group(&op);

    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("kappa");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(
        cdir.join("main.cf"),
        "include \"types.cf\"\ncluster kappa ( )\nsystem n1 ( )\nsystem n2 ( )\ngroup web (\n SystemList = { n1 = 0, n2 = 1 }\n AutoStartList = { n1 }\n )\n IP web_ip ( Address = \"192.0.2.30\" )\n",
    )
    .unwrap();
    let engine = Engine::start(&cdir, &["--simulate", "--sim-delay", "0"]);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[auth]\nenabled = true\npam_service = \"{service}\"\nmax_failures = 3\nserver_admins = [\"{adm}\"]\n\
             [[auth.grant]]\ngroup = \"{group}\"\nrole = \"cluster_operator\"\ncluster = \"kappa\"\n\
             [[auth.grant]]\nuser = \"{guest}\"\nrole = \"guest\"\n\
             [[cluster]]\nname = \"kappa\"\naddress = \"{addr}\"\n",
            service = users.service,
            group = users.group,
            addr = engine.addr,
        ),
    );

    // No session: nothing but the public endpoints.
    let (status, body) = server.get("/api/v1/summary");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    assert_eq!(server.get("/api/v1/health").0, 200);

    // Wrong passwords and unknown users get the same answer.
    let (status, wrong) = login(&server, &op, "nope");
    let (_, unknown) = login(&server, "nobody-hvn", "nope");
    assert_eq!(status, 401);
    assert_eq!(wrong["error"]["message"], unknown["error"]["message"]);

    let token = |user: &str| {
        let (status, body) = login(&server, user, &format!("Pw-{user}"));
        assert_eq!(status, 200, "{user}: {body}");
        body["token"].as_str().unwrap().to_string()
    };
    let (t_adm, t_op, t_guest, t_none) = (token(&adm), token(&op), token(&guest), token(&none));
    let get = |path: &str, t: &str| {
        http_json(
            &server.addr,
            "GET",
            path,
            None,
            &[("Authorization", &bearer(t))],
        )
    };
    let post = |path: &str, body: &str, t: &str| {
        http_json(
            &server.addr,
            "POST",
            path,
            Some(body),
            &[("Authorization", &bearer(t))],
        )
    };
    server.wait_for_with(
        "/api/v1/clusters/kappa",
        &[("Authorization", &bearer(&t_op))],
        "connected",
        |v| v["link"]["state"] == "connected",
    );

    // The operator's groups came from the OS.
    let (_, me) = get("/api/v1/whoami", &t_op);
    assert!(me["groups"].to_string().contains(&users.group), "{me}");

    // Guest: sees the fleet, may not operate; the denial is audited.
    assert_eq!(get("/api/v1/summary", &t_guest).0, 200);
    let switch = r#"{"op":"group_switch","group":"web","to":"n2","wait":true,"timeout_secs":20}"#;
    let (status, denied) = post("/api/v1/clusters/kappa/operations", switch, &t_guest);
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["code"], "permission_denied");
    assert!(
        denied["reason"].as_str().unwrap().contains("Guest"),
        "{denied}"
    );

    // Cluster Operator of kappa (through their OS group): may switch.
    let (status, done) = post("/api/v1/clusters/kappa/operations", switch, &t_op);
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["outcome"], "completed");
    // ...sees only kappa in fleet-wide views, has no server-wide figures,
    // and may not manage the server.
    let (status, summary) = get("/api/v1/summary", &t_op);
    assert_eq!((status, summary["clusters"].as_u64()), (200, Some(1)));
    assert_eq!(get("/metrics", &t_op).0, 403);
    assert_eq!(post("/api/v1/tokens", "{}", &t_op).0, 403);
    assert_eq!(post("/api/v1/tokens", "{}", &t_adm).0, 201);

    // No role at all: the cluster is not there for them.
    let (_, list) = get("/api/v1/clusters", &t_none);
    assert_eq!(list, serde_json::json!([]));
    assert_eq!(get("/api/v1/clusters/kappa", &t_none).0, 404);
    assert_eq!(
        post("/api/v1/clusters/kappa/operations", switch, &t_none).0,
        404
    );

    // The audit log has who asked and how it ended.
    let (_, audit) = get("/api/v1/operations?cluster=kappa", &t_guest);
    let rows = audit.as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["user"] == op.as_str() && r["outcome"] == "completed"));
    assert!(rows
        .iter()
        .any(|r| r["user"] == guest.as_str() && r["outcome"] == "refused"));

    // A cookie alone cannot change anything without the CSRF header.
    let cookie = format!("haven_session={t_op}");
    let (status, csrf) = http_json(
        &server.addr,
        "POST",
        "/api/v1/clusters/kappa/operations",
        Some(r#"{"op":"group_freeze","group":"web"}"#),
        &[("Cookie", &cookie)],
    );
    assert_eq!(
        (status, csrf["error"]["code"].as_str()),
        (403, Some("csrf"))
    );
    let (status, _) = http_json(
        &server.addr,
        "POST",
        "/api/v1/clusters/kappa/operations",
        Some(r#"{"op":"group_freeze","group":"web"}"#),
        &[("Cookie", &cookie), ("X-Haven-CSRF", "1")],
    );
    assert_eq!(status, 200);

    // Logout ends the session.
    assert_eq!(
        http(
            &server.addr,
            "POST",
            "/api/v1/logout",
            None,
            &[("Authorization", &bearer(&t_guest))]
        )
        .0,
        204
    );
    assert_eq!(get("/api/v1/summary", &t_guest).0, 401);

    // On the server host, the local socket knows who is calling without a
    // password (the kernel's peer credentials) — and that user gets
    // exactly their roles: root has none on kappa here.
    let local = |request: &str| {
        use std::io::{Read, Write};
        let mut stream =
            std::os::unix::net::UnixStream::connect(dir.path().join("data/haven.sock")).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body)
    };
    let (status, body) =
        local("GET /api/v1/whoami HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (me["user"].as_str(), me["authenticated"].as_bool()),
        (Some("root"), Some(true))
    );
    let (status, _) =
        local("GET /api/v1/clusters/kappa HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404, "root has no role on kappa");

    // A one-time login link for the local user, made through the socket.
    let (status, body) = local(
        "POST /api/v1/login-links HTTP/1.1\r\nHost: local\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 201, "{body}");
    let link: Value = serde_json::from_str(&body).unwrap();
    let reply = request(
        &server.addr,
        "GET",
        link["path"].as_str().unwrap(),
        None,
        &[],
    );
    assert_eq!(reply.status, 303, "{reply:?}");
    let cookie = reply.header("set-cookie").unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let (_, me) = http_json(
        &server.addr,
        "GET",
        "/api/v1/whoami",
        None,
        &[("Cookie", cookie)],
    );
    assert_eq!(me["user"], "root", "{me}");
    let again = request(
        &server.addr,
        "GET",
        link["path"].as_str().unwrap(),
        None,
        &[],
    );
    assert_eq!(again.status, 401, "a link works once");

    // The access log (Server Administrator only) has the failed logins and
    // the refusals, and only the administrator may read it.
    assert_eq!(get("/api/v1/access-log", &t_op).0, 403);
    let (status, log) = get("/api/v1/access-log?limit=1000", &t_adm);
    assert_eq!(status, 200, "{log}");
    let entries = log.as_array().unwrap();
    let has = |user: &str, action: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["user"] == user && e["action"] == action && e["outcome"] == outcome)
    };
    assert!(has(&op, "login", "denied"), "the wrong password: {log}");
    assert!(has("nobody-hvn", "login", "denied"), "{log}");
    assert!(has(&op, "login", "allowed"), "{log}");
    assert!(has(&guest, "logout", "allowed"), "{log}");
    assert!(has(&op, "read", "denied"), "GET /metrics: {log}");
    assert!(has(&none, "read", "denied"), "the unseen cluster: {log}");
    assert!(has(&adm, "create_token", "allowed"), "{log}");
    assert!(
        !log.to_string().contains("Pw-"),
        "no password in the access log"
    );

    // Guessing is throttled (per user and per source: this source already
    // failed twice above), and then even the right password waits.
    let mut guesses = 0;
    while login(&server, &none, "guess").0 == 401 {
        guesses += 1;
        assert!(guesses <= 3, "throttled after at most 3 failures");
    }
    let (status, throttled) = login(&server, &none, &format!("Pw-{none}"));
    assert_eq!(
        (status, throttled["error"]["code"].as_str()),
        (429, Some("throttled"))
    );
    drop(users);
}

/// A simulated one-group cluster `name` (group `web` on n1, n2).
fn one_group_engine(dir: &std::path::Path, name: &str) -> Engine {
    let cdir = dir.join(name);
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(
        cdir.join("main.cf"),
        format!("include \"types.cf\"\ncluster {name} ( )\nsystem n1 ( )\nsystem n2 ( )\ngroup web (\n SystemList = {{ n1 = 0, n2 = 1 }}\n AutoStartList = {{ n1 }}\n )\n IP web_ip ( Address = \"192.0.2.31\" )\n"),
    )
    .unwrap();
    Engine::start(&cdir, &["--simulate", "--sim-delay", "0"])
}

#[test]
fn directory_users_log_in_by_realm_with_their_groups_roles_and_nothing_more() {
    let Some(ldap) = slapd::start_slapd() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (kappa, lambda) = (
        one_group_engine(dir.path(), "kappa"),
        one_group_engine(dir.path(), "lambda"),
    );
    let suffix = slapd::SUFFIX;
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[auth]\nenabled = true\nserver_admins = []\n\
             [[auth.grant]]\ngroup = \"ha-admins\"\nrole = \"cluster_administrator\"\n\
             [[auth.grant]]\ngroup = \"ha-operators\"\nrole = \"cluster_operator\"\ncluster = \"kappa\"\n\
             [auth.ldap]\nurl = \"{url}\"\nuser_base = \"ou=people,{suffix}\"\ngroup_base = \"ou=groups,{suffix}\"\n\
             domains = [\"haven.test\"]\n\
             [[cluster]]\nname = \"kappa\"\naddress = \"{k}\"\n\
             [[cluster]]\nname = \"lambda\"\naddress = \"{l}\"\n",
            url = ldap.url,
            k = kappa.addr,
            l = lambda.addr,
        ),
    );

    // user@domain of the directory's realm: checked by the directory, with
    // its groups; the session cookie is HttpOnly, Secure and SameSite.
    let body = r#"{"user":"alice@haven.test","password":"Alice-pw1"}"#;
    let reply = request(&server.addr, "POST", "/api/v1/login", Some(body), &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.header("set-cookie").expect("a session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    let alice: Value = serde_json::from_str(&reply.body).unwrap();
    let alice = alice["token"].as_str().unwrap().to_string();
    let (_, me) = http_json(
        &server.addr,
        "GET",
        "/api/v1/whoami",
        None,
        &[("Authorization", &bearer(&alice))],
    );
    assert_eq!(me["user"], "alice@haven.test", "{me}");
    assert!(me["groups"].to_string().contains("ha-admins"), "{me}");

    // Wrong password, and a name of another realm (a local account: PAM
    // knows no such user): the same refusal.
    let (status, wrong) = login(&server, "alice@haven.test", "nope");
    assert_eq!(status, 401);
    let (status, other) = login(&server, "alice@elsewhere.org", "Alice-pw1");
    assert_eq!(status, 401, "{other}");
    assert_eq!(wrong["error"]["message"], other["error"]["message"]);

    let (status, bob) = login(&server, "bob@haven.test", "Bob-pw2");
    assert_eq!(status, 200, "{bob}");
    let bob = bob["token"].as_str().unwrap().to_string();
    let auth = |t: &str| bearer(t);
    for (cluster, token) in [("kappa", &bob), ("lambda", &alice)] {
        server.wait_for_with(
            &format!("/api/v1/clusters/{cluster}"),
            &[("Authorization", &auth(token))],
            "connected",
            |v| v["link"]["state"] == "connected",
        );
    }

    // Bob (ha-operators: kappa only) follows the fleet-wide event stream;
    // alice (ha-admins: every cluster) freezes web on lambda, then on
    // kappa. Bob's stream has kappa's freeze and nothing of lambda.
    let events = sse_with(
        &server.addr,
        "/api/v1/events",
        &[("Authorization", &auth(&bob))],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    for cluster in ["lambda", "kappa"] {
        let (status, done) = http_json(
            &server.addr,
            "POST",
            &format!("/api/v1/clusters/{cluster}/operations"),
            Some(r#"{"op":"group_freeze","group":"web","wait":true,"timeout_secs":20}"#),
            &[("Authorization", &auth(&alice))],
        );
        assert_eq!(status, 200, "{cluster}: {done}");
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|d: &String| d.contains("kappa") && d.contains("freeze"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok((_, data)) => seen.push(data),
            Err(e) => panic!("no freeze of kappa in bob's stream ({e}): {seen:?}"),
        }
    }
    assert!(
        seen.iter().all(|d| !d.contains("lambda")),
        "bob may not see lambda: {seen:?}"
    );
    // Bob may operate kappa, not lambda (which does not exist for him).
    let unfreeze = r#"{"op":"group_unfreeze","group":"web","wait":true,"timeout_secs":20}"#;
    let (status, _) = http_json(
        &server.addr,
        "POST",
        "/api/v1/clusters/kappa/operations",
        Some(unfreeze),
        &[("Authorization", &auth(&bob))],
    );
    assert_eq!(status, 200);
    let (status, _) = http_json(
        &server.addr,
        "POST",
        "/api/v1/clusters/lambda/operations",
        Some(unfreeze),
        &[("Authorization", &auth(&bob))],
    );
    assert_eq!(status, 404);
    drop((kappa, lambda));
}
