//! Alerts end to end: a real server and a simulated engine; a fault
//! raises alerts that reach a real SMTP server (aiosmtpd, STARTTLS and a
//! login required), a webhook receiver that checks the signature (and
//! fails the first attempt, so the retry shows), and a syslog socket;
//! acknowledging, clearing, the delivery log and a test notification.

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use smtp::smtpd;
use support::*;

const SECRET: &str = "0123456789abcdef-test-secret";

/// One request the webhook receiver got.
struct Hook {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hook {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on a loopback port: answers the first request 500,
/// the rest 200, and hands each request to the test.
fn webhook_receiver() -> (String, mpsc::Receiver<Hook>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/haven/alerts", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            if tx.send(Hook { headers, body }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

/// The next webhook request whose event is `event` (others are skipped).
fn next_hook(hooks: &mpsc::Receiver<Hook>, event: &str) -> Hook {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let hook = hooks
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no `{event}` webhook ({e})"));
        if hook.header("X-Haven-Event") == Some(event) {
            return hook;
        }
    }
}

fn alerts(server: &ServerProc, query: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/api/v1/alerts{query}"));
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

#[test]
fn a_fault_raises_alerts_that_reach_mail_webhook_and_syslog_and_clear_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mail_pki = dir.path().join("mail-pki");
    haven_pki::Authority::load_or_create(&mail_pki, &[]).unwrap();
    let Some(smtp) = smtpd(
        dir.path(),
        &mail_pki.join("server.pem"),
        &mail_pki.join("server.key"),
    ) else {
        return;
    };
    let (hook_url, hooks) = webhook_receiver();
    let syslog = UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let engine = simulated_engine(dir.path(), "omega", &["--sim-delay", "0"]);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            r#"[alerts]
flap_changes = 0

[[alerts.channel]]
name = "mail"
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
starttls = "required"
username = "haven"
password = "mail-pw"
from = "haven@test.example"
to = ["oncall@test.example", "lead@test.example"]
ca_file = "{ca}"
retry_backoff_ms = 100

[[alerts.channel]]
name = "hook"
type = "webhook"
url = "{hook_url}"
secret = "{SECRET}"
retry_backoff_ms = 100

[[alerts.channel]]
name = "log"
type = "syslog"
address = "{syslog}"

[[alerts.policy]]
name = "everything from warning up"
min_severity = "warning"
channels = ["mail", "hook", "log"]

[[cluster]]
name = "omega"
address = "{addr}"
"#,
            smtp_port = smtp.port,
            ca = mail_pki.join("ca.pem").display(),
            syslog = syslog.local_addr().unwrap(),
            addr = engine.addr,
        ),
    );
    server.wait_web_online("omega");
    assert!(
        alerts(&server, "?open=true").is_empty(),
        "a healthy cluster has no alert"
    );

    // web_ip faults on n1: the group faults there and fails over to n2.
    let (status, done) = server.post(
        "/api/v1/clusters/omega/operations",
        r#"{"op":"sim_fault_resource","resource":"web_ip","system":"n1"}"#,
        &[],
    );
    assert_eq!(status, 200, "{done}");
    let open = wait_until("the fault's alerts", || {
        let open = alerts(&server, "?open=true");
        open.iter()
            .any(|a| a["kind"] == "faulted_group")
            .then_some(open)
    });
    let group_alert = open.iter().find(|a| a["kind"] == "faulted_group").unwrap();
    assert_eq!(group_alert["severity"], "critical");
    assert_eq!(group_alert["object"], "web");
    assert_eq!(group_alert["system"], "n1");
    let id = group_alert["id"].as_i64().unwrap();
    let kinds: Vec<&str> = open.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"faulted_resource"), "{kinds:?}");

    // The webhook: signed, and retried after the receiver's first 500.
    let hook = loop {
        let hook = next_hook(&hooks, "raised");
        if hook.json()["alert"]["id"] == id {
            break hook;
        }
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hook
        .header("X-Haven-Signature")
        .and_then(|s| s.strip_prefix("sha256="))
        .expect("a sha256 signature");
    let tag: Vec<u8> = (0..tag.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&tag[i..i + 2], 16).unwrap())
        .collect();
    ring::hmac::verify(&key, &hook.body, &tag).expect("the signature is the body's HMAC");
    assert!(
        ring::hmac::verify(&key, b"{\"forged\":true}", &tag).is_err(),
        "and only the body's"
    );
    let payload = hook.json();
    assert_eq!(payload["event"], "raised");
    assert_eq!(payload["alert"]["cluster"], "omega");
    let (status, log) = server.get("/api/v1/alerts/deliveries?channel=hook&limit=1000");
    assert_eq!(status, 200, "{log}");
    let attempts: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "failed")
        .collect();
    assert!(
        attempts
            .iter()
            .any(|d| d["attempt"] == 1 && d["error"].as_str().unwrap_or("").contains("500")),
        "the failed first attempt is on record: {log}"
    );

    // The mail: over STARTTLS, logged in, to both addresses.
    let mail = wait_until("the alert mail", || {
        std::fs::read_dir(&smtp.out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .find(|m| m.contains("CRITICAL raised: group web faulted on n1"))
    });
    assert!(mail.contains("X-Test-TLS: yes"), "{mail}");
    assert!(mail.contains("X-Test-Auth: haven"), "{mail}");
    assert!(
        mail.contains("X-Test-Rcpt: oncall@test.example,lead@test.example"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: [haven] CRITICAL raised: group web faulted on n1 (cluster omega)"),
        "{mail}"
    );
    assert!(mail.contains(&format!("alert id: {id}")), "{mail}");

    // Syslog: RFC 5424, daemon facility, critical (3 * 8 + 2).
    let deadline = Instant::now() + PATIENCE;
    let line = loop {
        assert!(
            Instant::now() < deadline,
            "no syslog message of the group fault"
        );
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = syslog.recv_from(&mut buf) {
            let line = String::from_utf8_lossy(&buf[..n]).into_owned();
            if line.contains("kind=\"faulted_group\"") {
                break line;
            }
        }
    };
    assert!(line.starts_with("<26>1 "), "{line}");
    assert!(line.contains(&format!("id=\"{id}\"")), "{line}");

    // Acknowledged by alice; bob's later acknowledgement changes nothing.
    let ack = |user: &str| {
        server.post(
            &format!("/api/v1/alerts/{id}/ack"),
            "",
            &[("X-Haven-User", user)],
        )
    };
    let (status, acked) = ack("alice");
    assert_eq!(
        (status, acked["acknowledged_by"].as_str()),
        (200, Some("alice")),
        "{acked}"
    );
    let (_, again) = ack("bob");
    assert_eq!(again["acknowledged_by"], "alice", "{again}");
    let (status, _) = server.post("/api/v1/alerts/999999/ack", "", &[]);
    assert_eq!(status, 404);

    // Clearing the fault clears the alerts; the acknowledgement stays.
    let (status, done) = server.post(
        "/api/v1/clusters/omega/operations",
        r#"{"op":"group_clear","group":"web","system":"n1","wait":true,"timeout_secs":20}"#,
        &[],
    );
    assert_eq!(status, 200, "{done}");
    let cleared = wait_until("the alerts cleared", || {
        let all = alerts(&server, "?open=false");
        all.into_iter()
            .find(|a| a["id"] == id && a["cleared_ms"].is_i64())
    });
    assert_eq!(cleared["acknowledged_by"], "alice");
    let hook = loop {
        let hook = next_hook(&hooks, "cleared");
        if hook.json()["alert"]["id"] == id {
            break hook;
        }
    };
    assert!(hook.json()["alert"]["cleared_ms"].is_i64());
    wait_until("no open fault alert", || {
        (!alerts(&server, "?open=true")
            .iter()
            .any(|a| a["kind"] == "faulted_resource" || a["kind"] == "faulted_group"))
        .then_some(())
    });

    // A test notification, and an unknown channel refused with the list.
    let (status, _) = server.post("/api/v1/alerts/test", r#"{"channel":"hook"}"#, &[]);
    assert_eq!(status, 202);
    let hook = next_hook(&hooks, "test");
    assert_eq!(hook.json()["alert"]["kind"], "test");
    let (status, body) = server.post("/api/v1/alerts/test", r#"{"channel":"pager"}"#, &[]);
    assert_eq!(status, 400);
    assert!(body.to_string().contains("hook"), "{body}");
    drop(engine);
}

#[test]
fn a_bad_alerts_section_stops_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("haven.toml"),
        "[[alerts.policy]]\nchannels = [\"pager\"]\n",
    )
    .unwrap();
    let out = Command::new(HAVEN)
        .args(["server", "--config"])
        .arg(dir.path().join("haven.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("no [[alerts.channel]] is named `pager`"),
        "{err}"
    );
}

/// `haven ARGS --json` against `server`, which must succeed; its JSON.
fn cli_json(server: &ServerProc, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = server.haven(&all);
    assert_eq!(code, 0, "haven {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("haven {args:?}: {e}: {out}"))
}

#[test]
fn the_cli_lists_a_raised_alert_acknowledges_it_and_prints_the_apis_json() {
    let dir = tempfile::tempdir().unwrap();
    let engine = simulated_engine(dir.path(), "sigma", &["--sim-delay", "0"]);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[alerts]\nflap_changes = 0\n\n[[cluster]]\nname = \"sigma\"\naddress = \"{}\"\n",
            engine.addr
        ),
    );
    server.wait_for("/api/v1/clusters/sigma", "connected", |v| {
        v["link"]["state"] == "connected" && v["snapshot"].is_object()
    });
    let (code, out, _) = server.haven(&["alerts"]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            "no open alerts (haven alerts --all shows cleared ones too)"
        )
    );
    server.wait_web_online("sigma");
    server.sim_fault("sigma", "web_ip", "n1");
    let group_alert = wait_until("the group's alert", || {
        alerts(&server, "?open=true")
            .into_iter()
            .find(|a| a["kind"] == "faulted_group")
    });
    let id = group_alert["id"].as_i64().unwrap();

    // --json prints exactly what the API answers (asked until two API
    // answers around the command agree: the failover may still move).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let before = alerts(&server, "?open=true&limit=100");
        let printed = cli_json(&server, &["alerts"]);
        if before == alerts(&server, "?open=true&limit=100") {
            assert_eq!(printed, Value::Array(before));
            break;
        }
        assert!(Instant::now() < deadline, "the open alerts never settled");
        std::thread::sleep(Duration::from_millis(200));
    }
    let critical = cli_json(&server, &["alerts", "--severity", "critical"]);
    assert!(
        critical
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["severity"] == "critical")
            && critical.as_array().unwrap().iter().any(|a| a["id"] == id),
        "{critical}"
    );

    // The table: one line per alert, the group's with its object@system.
    let (code, table, err) = server.haven(&["alerts", "--cluster", "sigma"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.starts_with("ID  SEVERITY  CLUSTER  OBJECT"),
        "{table}"
    );
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("alert {id} in {table}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[1..4], ["critical", "sigma", "web@n1"], "{line}");
    assert!(
        line.contains(" open ") && line.ends_with("group web faulted on n1"),
        "{line}"
    );

    // Acknowledged through the CLI: the answer is the stored alert.
    let acked = cli_json(&server, &["alert", "ack", &id.to_string()]);
    let stored = alerts(&server, "?open=true")
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap();
    assert_eq!(acked, stored);
    let who = acked["acknowledged_by"].as_str().expect("who acknowledged");
    assert!(acked["acknowledged_ms"].is_i64(), "{acked}");
    let (code, out, _) = server.haven(&["alert", "ack", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("alert {id} acknowledged by {who} at ")),
        "{out}"
    );
    let (_, table, _) = server.haven(&["alerts", "-o", "wide"]);
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
        .unwrap();
    assert!(
        line.contains(&format!(" {who} ")) && line.contains("faulted_group"),
        "{line}"
    );

    // Errors by their exit status; the delivery log (no channel: empty).
    let (code, _, err) = server.haven(&["alert", "ack", "999999"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no alert 999999"), "{err}");
    assert_eq!(
        cli_json(&server, &["alerts", "--all", "--cluster", "nowhere"]),
        Value::Array(vec![])
    );
    let (code, _, _) = server.haven(&["alerts", "--severity", "dire"]);
    assert_eq!(code, 2, "clap refuses an unknown severity");
    assert_eq!(
        cli_json(&server, &["alert", "deliveries"]),
        Value::Array(vec![])
    );
    let (code, _, err) = server.haven(&["alert", "test", "pager"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("pager"), "{err}");
    // --all: the open ones first, then the cleared ones.
    let all = cli_json(&server, &["alerts", "--all"]);
    let open_flags: Vec<bool> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["cleared_ms"].is_null())
        .collect();
    assert!(
        open_flags.windows(2).all(|w| w[0] >= w[1]),
        "open first: {all}"
    );
    drop(engine);
}
