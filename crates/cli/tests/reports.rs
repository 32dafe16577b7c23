//! Availability reports end to end: a real server following a simulated
//! engine through a fault and its failover; `haven report availability`
//! prints exactly the API's report (JSON, and its CSV byte for byte), and
//! a `[[reports.schedule]]` mails it through a real SMTP server (STARTTLS,
//! a login) with the CSV attached, recorded in the delivery log. (The
//! exact percentages on a known history are checked in the server's own
//! test, `crates/server/tests/reports.rs`.)

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

/// The attachment of a mail (its decoded text), read by Python's own
/// MIME parser.
fn attachment(mail: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import email,sys; m = email.message_from_string(sys.stdin.read()); \
             print(''.join(p.get_payload(decode=True).decode() for p in m.walk() if p.get_filename()), end='')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(mail.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3 reads the mail");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_cli_prints_the_servers_report_and_a_schedule_mails_it_with_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mail_pki = dir.path().join("mail-pki");
    haven_pki::Authority::load_or_create(&mail_pki, &[]).unwrap();
    let smtp = smtp::smtpd(
        dir.path(),
        &mail_pki.join("server.pem"),
        &mail_pki.join("server.key"),
    );
    let engine = simulated_engine(dir.path(), "sigma", &["--sim-delay", "0"]);
    let mail = match &smtp {
        Some(smtp) => format!(
            r#"[[alerts.channel]]
name = "mail"
type = "smtp"
host = "127.0.0.1"
port = {}
starttls = "required"
username = "haven"
password = "mail-pw"
from = "haven@test.example"
to = ["oncall@test.example"]
ca_file = "{}"

[[reports.schedule]]
name = "daily"
every = "daily"
period = "1d"
to = ["ops@test.example", "lead@test.example"]
channel = "mail"
"#,
            smtp.port,
            mail_pki.join("ca.pem").display()
        ),
        None => String::new(),
    };
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "{mail}\n[[cluster]]\nname = \"sigma\"\naddress = \"{}\"\n",
            engine.addr
        ),
    );
    server.wait_for("/api/v1/clusters/sigma", "connected", |v| {
        v["link"]["state"] == "connected" && v["snapshot"].is_object()
    });
    server.wait_web_online("sigma");
    server.sim_fault("sigma", "web_ip", "n1");
    // A period around now, the same for the API and the CLI.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let from = haven_model::clock::rfc3339(now - 3_600_000);
    let to = haven_model::clock::rfc3339(now + 3_600_000);
    let query = format!("/api/v1/reports/availability?from={from}&to={to}");
    let api = wait_until("the failover in the report", || {
        let (status, r) = server.get(&query);
        assert_eq!(status, 200, "{r}");
        (r["overall"]["failovers"] == 1).then_some(r)
    });
    let web = api["clusters"][0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "web")
        .cloned()
        .unwrap();
    assert_eq!(web["failovers"], 1, "{web}");
    assert!(api["clusters"][0]["known"] == true, "{api}");

    // The CLI prints exactly the API's report.
    let args = ["report", "availability", "--from", &from, "--to", &to];
    let (code, out, err) = server.haven(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), api);
    let (code, csv, err) = server.haven(&[&args[..], &["--csv"]].concat());
    assert_eq!(code, 0, "{err}");
    let (_, api_csv) = server.get(&format!("{query}&format=csv"));
    assert_eq!(Value::String(csv.clone()), api_csv, "byte for byte");
    assert!(
        csv.starts_with("scope,cluster,group,from,to,covered_ms"),
        "{csv}"
    );
    assert!(csv.contains("\r\ngroup,sigma,web,"), "{csv}");
    let (code, table, err) = server.haven(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.starts_with(&format!("availability from {from} to {to} (UTC)\n")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("sigma") && l.contains(" web ")),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("(fleet)")), "{table}");
    // Errors: a bad time, a bad tag filter (exit 1, the reason).
    let (code, _, err) = server.haven(&["report", "availability", "--from", "soonish"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("from:"), "{err}");
    let (code, _, err) = server.haven(&["report", "availability", "--tag", "env="]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("give a value"), "{err}");

    // A scheduled report, sent now: the mail, its CSV, the delivery log.
    let Some(smtp) = smtp else { return };
    let (status, sent) = server.post("/api/v1/reports/schedules/daily/send", "", &[]);
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["clusters"][0]["cluster"], "sigma");
    let mail = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains("Subject: [haven] availability report daily: "))
        .unwrap_or_else(|| panic!("no report mail in {:?}", smtp.messages()));
    assert!(mail.contains("X-Test-TLS: yes"), "{mail}");
    assert!(
        mail.contains("X-Test-Rcpt: ops@test.example,lead@test.example"),
        "the schedule's recipients, not the channel's: {mail}"
    );
    assert!(mail.contains("Availability from "), "{mail}");
    let attached = attachment(&mail);
    assert!(
        attached.starts_with("scope,cluster,group,from,to,covered_ms"),
        "{attached}"
    );
    assert!(attached.contains("\r\ngroup,sigma,web,"), "{attached}");
    assert!(attached.contains("\r\nfleet,,,"), "{attached}");
    let (_, log) = server.get("/api/v1/alerts/deliveries?channel=mail");
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|d| d["event"] == "report:daily" && d["outcome"] == "sent"),
        "{log}"
    );
    let (status, _) = server.post("/api/v1/reports/schedules/hourly/send", "", &[]);
    assert_eq!(status, 404);
    drop(engine);
}
