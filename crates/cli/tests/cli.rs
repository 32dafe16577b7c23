//! End-to-end: the `haven` command line (login, fleet reads, operations,
//! administration) run as a real process against a real `haven server`
//! and real engines; `--json` answers parsed and checked, error paths by
//! their exit codes, and an interactive terminal (tmux) for the tables,
//! the `--wait` spinner and the questions a person answers.

#[path = "support/os_users.rs"]
mod os_users;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use os_users::OsUsers;
use serde_json::Value;
use support::*;

/// What one run of `haven` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `haven` with the test's own config directory (its saved contexts).
struct Cli {
    config_home: PathBuf,
}

impl Cli {
    fn new(dir: &Path) -> Cli {
        Cli {
            config_home: dir.join("config-home"),
        }
    }

    /// The contexts file.
    fn config_file(&self) -> PathBuf {
        self.config_home.join("haven/config.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HAVEN);
        c.args(args)
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env("NO_COLOR", "1")
            .env_remove("HAVEN_LOG");
        c
    }

    /// Runs `haven ARGS` (with `stdin` on its standard input), at most 90 s.
    fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haven");
        if let Some(text) = stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(text.as_bytes()).unwrap();
        }
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                signal(pid, libc::SIGKILL);
                panic!("haven {args:?} did not end within 90 s");
            }
        };
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None)
    }

    /// Runs and asserts exit status 0; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "haven {args:?}: {run:?}");
        run.stdout
    }

    /// Runs with `--json`, asserts exit status 0, parses the answer.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("haven {all:?}: {e}: {out}"))
    }

    /// Runs and asserts the exit status `code`.
    fn fails(&self, args: &[&str], code: i32) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, code, "haven {args:?}: {run:?}");
        run
    }
}

/// A simulated engine for `cluster` whose agents take `delay_ms`.
fn engine(dir: &Path, cluster: &str, delay_ms: u64) -> Engine {
    let delay = delay_ms.to_string();
    simulated_engine(dir, cluster, &["--sim-delay", &delay])
}

fn cluster_toml(name: &str, addr: &str) -> String {
    format!("[[cluster]]\nname = \"{name}\"\naddress = \"{addr}\"\n")
}

/// Waits until the server is connected to `cluster` and has its state.
fn wait_connected(cli: &Cli, cluster: &str) {
    wait_until(&format!("{cluster} connected"), || {
        let run = cli.run(&["status", cluster, "--json"]);
        let v: Value = serde_json::from_str(&run.stdout).ok()?;
        (v["link"]["state"] == "connected" && v["snapshot"].is_object()).then_some(())
    });
}

/// The state of the group or resource `name` on `system`, from `haven
/// status CLUSTER --json`.
fn state(cli: &Cli, cluster: &str, name: &str, system: &str) -> String {
    let v = cli.json(&["status", cluster]);
    let groups = v["snapshot"]["groups"].as_array().unwrap();
    let resources = groups
        .iter()
        .flat_map(|g| g["resources"].as_array().unwrap());
    groups
        .iter()
        .chain(resources)
        .find(|o| o["name"] == name)
        .and_then(|o| {
            let states = o["states"].as_array().unwrap();
            let on = states.iter().find(|s| s[0] == system)?;
            Some(on[1].as_str().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("no {name} on {system}: {v}"))
}

/// The attention items of `haven faults --json` as (kind, object, system).
fn faults(cli: &Cli) -> Vec<(String, String, String)> {
    let v = cli.json(&["faults"]);
    assert_eq!(
        v["total"].as_u64().unwrap() as usize,
        v["items"].as_array().unwrap().len()
    );
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
            (s("kind"), s("object"), s("system"))
        })
        .collect()
}

/// Makes a resource fault, straight through the API (simulation only: no
/// command line for it).
fn inject_fault(server: &ServerProc, cluster: &str, resource: &str, system: &str) {
    let (status, body) = server.post(
        &format!("/api/v1/clusters/{cluster}/operations"),
        &format!(r#"{{"op":"sim_fault_resource","resource":"{resource}","system":"{system}"}}"#),
        &[],
    );
    assert_eq!(status, 200, "{body}");
}

/// Operates through the command line with `--wait --json`; the outcome.
fn operate(cli: &Cli, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--wait", "--timeout", "30s"]);
    let v = cli.json(&all);
    assert_eq!(v["outcome"], "completed", "haven {all:?}: {v}");
    v
}

#[test]
fn reads_and_operations_through_the_local_socket_print_tables_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let kappa = engine(dir.path(), "kappa", 0);
    let slow = engine(dir.path(), "slow", 3000);
    let server = ServerProc::start(
        dir.path(),
        &(cluster_toml("kappa", &kappa.addr) + &cluster_toml("slow", &slow.addr)),
    );
    let cli = Cli::new(dir.path());

    // Nothing saved yet: not logged in (3), and the message says how.
    let run = cli.fails(&["clusters"], 3);
    assert!(run.stderr.contains("haven login"), "{run:?}");

    // The local socket: no password, a context of its own, a private file.
    let socket = dir.path().join("data/haven.sock");
    let out = cli.ok(&["login", "--socket", socket.to_str().unwrap()]);
    assert!(out.contains("no password needed"), "{out}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cli.config_file()), 0o600);
    assert_eq!(mode(cli.config_file().parent().unwrap()), 0o700);
    let me = cli.json(&["whoami"]);
    assert_eq!(me["authenticated"], false, "logins are off: {me}");
    let user = me["user"].as_str().unwrap().to_string();
    wait_connected(&cli, "kappa");
    wait_connected(&cli, "slow");

    // clusters: JSON and table.
    let list = cli.json(&["clusters"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(
        names.contains(&"kappa") && names.contains(&"slow"),
        "{list}"
    );
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["link"]["state"] == "connected" && c["groups"] == 2));
    let table = cli.ok(&["clusters"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("LINK") && header.contains("FAULTED"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("kappa") && l.contains("connected")),
        "{table}"
    );
    let wide = cli.ok(&["clusters", "-o", "wide"]);
    assert!(
        wide.contains("ADDRESS") && wide.contains(&kappa.addr),
        "{wide}"
    );

    // status: the fleet summary, then one cluster as groups x systems.
    let summary = cli.json(&["status"]);
    assert_eq!(summary["clusters"], 2, "{summary}");
    assert_eq!(summary["groups"], 4, "{summary}");
    assert_eq!(summary["links"]["connected"], 2, "{summary}");
    let text = cli.ok(&["status"]);
    assert!(
        text.contains("clusters") && text.contains("2 connected"),
        "{text}"
    );
    let detail = cli.json(&["status", "kappa"]);
    assert_eq!(detail["name"], "kappa");
    assert_eq!(detail["snapshot"]["groups"].as_array().unwrap().len(), 2);
    let text = cli.ok(&["status", "kappa"]);
    let lines: Vec<&str> = text.lines().collect();
    let grid = lines
        .iter()
        .position(|l| l.starts_with("GROUP"))
        .unwrap_or_else(|| panic!("{text}"));
    let columns: Vec<&str> = lines[grid].split_whitespace().collect();
    assert_eq!(columns, ["GROUP", "n1", "n2", "FLAGS"], "{text}");
    let row = |name: &str| -> Vec<String> {
        let text = cli.ok(&["status", "kappa"]);
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {text}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("web"), ["web", "ONLINE", "OFFLINE"]);
    assert_eq!(row("db"), ["db", "OFFLINE", "ONLINE"]);
    assert!(
        text.contains("SYSTEM") && text.contains("RUNNING"),
        "{text}"
    );
    let wide = cli.ok(&["status", "kappa", "-o", "wide"]);
    assert!(
        wide.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["web_httpd", "ONLINE", "OFFLINE"]),
        "resources with -o wide: {wide}"
    );

    // find
    let hits = cli.json(&["find", "web_"]);
    let hits = hits.as_array().unwrap();
    assert!(hits
        .iter()
        .any(|h| h["kind"] == "resource" && h["name"] == "web_ip" && h["group"] == "web"));
    assert!(hits
        .iter()
        .all(|h| h["name"].as_str().unwrap().contains("web_")));

    // A switch that waits for its end; the state moved.
    let done = operate(&cli, &["group", "switch", "kappa/web", "--to", "n2"]);
    assert_eq!(done["cluster"], "kappa");
    assert_eq!(state(&cli, "kappa", "web", "n2"), "ONLINE");
    assert_eq!(row("web"), ["web", "OFFLINE", "ONLINE"]);
    // Refused (already there): exit 1, the answer still printed as JSON.
    let run = cli.fails(&["group", "switch", "kappa/web", "--to", "n2", "--json"], 1);
    let refused: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(refused["outcome"], "refused", "{run:?}");
    assert_eq!(refused["code"], "invalid_state");
    assert!(run.stderr.contains("refused"), "{run:?}");

    // Freeze (persistent): a flag in the table, a fault to attend to, and
    // operations refused until unfrozen.
    operate(&cli, &["group", "freeze", "kappa/web", "--persistent"]);
    assert_eq!(
        row("web"),
        ["web", "OFFLINE", "ONLINE", "frozen(persistent)"]
    );
    assert!(faults(&cli).contains(&("frozen_group".into(), "web".into(), String::new())));
    let run = cli.fails(&["group", "switch", "kappa/web"], 1);
    assert!(run.stderr.contains("frozen"), "{run:?}");
    operate(&cli, &["group", "unfreeze", "kappa/web"]);
    assert_eq!(row("web"), ["web", "OFFLINE", "ONLINE"]);

    // Offline everywhere, online on a named system.
    operate(&cli, &["group", "offline", "kappa/web"]);
    assert_eq!(state(&cli, "kappa", "web", "n2"), "OFFLINE");
    operate(&cli, &["group", "online", "kappa/web", "--system", "n1"]);
    assert_eq!(state(&cli, "kappa", "web", "n1"), "ONLINE");

    // Resources: offline and online on a system, and a probe.
    operate(
        &cli,
        &["resource", "offline", "kappa/web_httpd", "--system", "n1"],
    );
    assert_eq!(state(&cli, "kappa", "web_httpd", "n1"), "OFFLINE");
    wait_until("web partial on n1", || {
        (state(&cli, "kappa", "web", "n1") == "PARTIAL").then_some(())
    });
    operate(
        &cli,
        &["resource", "online", "kappa/web_httpd", "--system", "n1"],
    );
    wait_until("web online on n1", || {
        (state(&cli, "kappa", "web", "n1") == "ONLINE").then_some(())
    });
    operate(
        &cli,
        &["resource", "probe", "kappa/web_ip", "--system", "n1"],
    );

    // Disable / enable, flush.
    operate(&cli, &["group", "disable", "kappa/web"]);
    assert_eq!(row("web"), ["web", "ONLINE", "OFFLINE", "disabled"]);
    operate(&cli, &["group", "enable", "kappa/web"]);
    operate(&cli, &["group", "flush", "kappa/web"]);

    // A fault: shown in faults and in the table, cleared by the CLI.
    inject_fault(&server, "kappa", "web_ip", "n1");
    wait_until("the fault in faults", || {
        faults(&cli)
            .contains(&("faulted_resource".into(), "web_ip".into(), "n1".into()))
            .then_some(())
    });
    wait_until("web failed over to n2", || {
        (state(&cli, "kappa", "web", "n2") == "ONLINE").then_some(())
    });
    assert_eq!(row("web"), ["web", "FAULTED", "ONLINE"]);
    operate(
        &cli,
        &["resource", "clear", "kappa/web_ip", "--system", "n1"],
    );
    assert!(!faults(&cli).iter().any(|f| f.1 == "web_ip"));
    inject_fault(&server, "kappa", "db_fs", "n2");
    wait_until("db faulted on n2", || {
        (state(&cli, "kappa", "db", "n2") == "FAULTED").then_some(())
    });
    operate(&cli, &["group", "clear", "kappa/db"]);
    assert_ne!(state(&cli, "kappa", "db", "n2"), "FAULTED");

    // A system frozen with evacuation: web leaves n2.
    operate(&cli, &["system", "freeze", "kappa/n2", "--evacuate"]);
    assert_ne!(state(&cli, "kappa", "web", "n2"), "ONLINE");
    wait_until("web evacuated to n1", || {
        (state(&cli, "kappa", "web", "n1") == "ONLINE").then_some(())
    });
    let status = cli.json(&["status", "kappa"]);
    let n2 = status["snapshot"]["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "n2")
        .unwrap()
        .clone();
    assert_eq!(n2["freeze"], "temporary", "{n2}");
    assert!(cli.ok(&["status", "kappa"]).contains("frozen"));
    operate(&cli, &["system", "unfreeze", "kappa/n2"]);

    // Without --wait: accepted, exit 0.
    let accepted = cli.json(&["group", "switch", "kappa/web", "--to", "n2"]);
    assert_eq!(accepted["outcome"], "accepted", "{accepted}");
    wait_until("web on n2", || {
        (state(&cli, "kappa", "web", "n2") == "ONLINE").then_some(())
    });

    // history: one object's changes, newest N, oldest first in the table.
    let history = cli.json(&["history", "web", "--cluster", "kappa", "--since", "1h"]);
    let rows = history.as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["cluster"] == "kappa"
            && ["group", "resource", "system", "object"]
                .iter()
                .any(|k| r[*k] == "web")),
        "{history}"
    );
    assert!(rows
        .iter()
        .any(|r| r["type"] == "group_state" && r["to"] == "ONLINE" && r["system"] == "n2"));
    let three = cli.json(&["history", "kappa/web", "--limit", "3"]);
    assert_eq!(three.as_array().unwrap().len(), 3, "{three}");
    let text = cli.ok(&["history", "kappa/web", "--limit", "3"]);
    assert_eq!(text.lines().count(), 4, "a header and 3 rows: {text}");
    assert!(text.contains("web"), "{text}");

    // watch: live events, one JSON object per line, until stopped.
    let mut watch = cli
        .command(&["watch", "--cluster", "kappa", "--object", "web", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = BufReader::new(watch.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The stream is open once the server counts a subscriber; rather than
    // guess, switch until the watch sees a change (at most a few times).
    let deadline = Instant::now() + PATIENCE;
    let mut seen = None;
    let mut to = "n1";
    while seen.is_none() && Instant::now() < deadline {
        operate(&cli, &["group", "switch", "kappa/web", "--to", to]);
        to = if to == "n1" { "n2" } else { "n1" };
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let v: Value = serde_json::from_str(&line).expect("one JSON object a line");
            if v["kind"] == "events" {
                seen = Some(v);
                break;
            }
        }
    }
    let seen = seen.expect("the watch printed the switch's events");
    assert_eq!(seen["cluster"], "kappa");
    assert!(seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["group"] == "web"));
    let _ = watch.kill();
    let _ = watch.wait();

    // audit: who did what, and how it ended.
    let audit = cli.json(&["audit", "--cluster", "kappa", "--user", &user]);
    let ops = audit.as_array().unwrap();
    assert!(ops.iter().all(|o| o["user"] == user.as_str()));
    let has = |verb: &str, outcome: &str| {
        ops.iter()
            .any(|o| o["op"]["op"] == verb && o["outcome"] == outcome)
    };
    assert!(has("group_switch", "completed"), "{audit}");
    assert!(has("group_switch", "refused"), "{audit}");
    assert!(has("system_freeze", "completed"), "{audit}");
    assert!(has("resource_clear", "completed"), "{audit}");
    let table = cli.ok(&["audit", "--cluster", "kappa"]);
    assert!(
        table.contains("switch group web to n2") && table.contains("completed"),
        "{table}"
    );

    // Unknown cluster or object: 4, with what to do next.
    let run = cli.fails(&["status", "nope"], 4);
    assert!(run.stderr.contains("haven clusters"), "{run:?}");
    cli.fails(&["group", "switch", "nope/web"], 4);
    cli.fails(&["group", "online", "kappa/nosuch"], 4);
    // Usage: 2.
    cli.fails(&["group", "switch", "kappa-web"], 2);
    cli.fails(&["group", "switch", "kappa/web", "--timeout", "5s"], 2);
    // --wait that gives up: 6 (the slow cluster's agents take 3 s each).
    wait_until("the slow cluster started web", || {
        (state(&cli, "slow", "web", "n1") == "ONLINE").then_some(())
    });
    let run = cli.fails(
        &[
            "group",
            "switch",
            "slow/web",
            "--to",
            "n2",
            "--wait",
            "--timeout",
            "1s",
        ],
        6,
    );
    assert!(run.stderr.contains("timed out"), "{run:?}");

    // The server down: 5, and the message says so.
    drop(server);
    let run = cli.fails(&["clusters"], 5);
    assert!(run.stderr.contains("is it running?"), "{run:?}");
}

#[test]
fn administration_through_the_api_clusters_roles_tokens_backups_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let kappa = engine(dir.path(), "kappa", 0);
    let lambda = engine(dir.path(), "lambda", 0);
    let server = ServerProc::start(dir.path(), &cluster_toml("kappa", &kappa.addr));
    let cli = Cli::new(dir.path());
    let socket = dir.path().join("data/haven.sock");
    let sock = socket.to_str().unwrap();
    // --socket works without a saved context.
    assert_eq!(
        cli.json(&["clusters", "--socket", sock])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    cli.ok(&["login", "--socket", sock, "--context", "here"]);

    // cluster add / remove.
    let added = cli.json(&["cluster", "add", "lambda", &lambda.addr]);
    assert!(added["state"].is_string(), "{added}");
    assert_eq!(added["address"], lambda.addr.as_str());
    wait_connected(&cli, "lambda");
    let run = cli.fails(&["cluster", "add", "lambda", &lambda.addr], 1);
    assert!(run.stderr.contains("lambda"), "{run:?}");
    cli.ok(&["cluster", "remove", "lambda"]);
    cli.fails(&["status", "lambda"], 4);
    cli.fails(&["cluster", "remove", "lambda"], 4);

    // A connector join token.
    let token = cli.json(&["cluster", "token", "--cluster", "kappa", "--ttl", "1h"]);
    assert!(
        token["token"].as_str().unwrap().starts_with("hvn1."),
        "{token}"
    );
    let expires = token["expires_ms"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((expires - now - 3_600_000).abs() < 60_000, "{token}");
    let text = cli.ok(&["cluster", "token"]);
    assert!(text.contains("haven connector --server"), "{text}");

    // Roles.
    let grant = cli.json(&[
        "role",
        "grant",
        "group_operator",
        "--group",
        "ops",
        "--cluster",
        "kappa",
        "--group-scope",
        "web",
    ]);
    let id = grant["id"].as_i64().unwrap();
    assert_eq!(
        (
            grant["role"].as_str(),
            grant["group"].as_str(),
            grant["service_group"].as_str()
        ),
        (Some("group_operator"), Some("ops"), Some("web"))
    );
    let list = cli.json(&["role", "list"]);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["id"] == id && g["cluster"] == "kappa"));
    let table = cli.ok(&["role", "list"]);
    assert!(
        table.contains("group ops") && table.contains("kappa/web"),
        "{table}"
    );
    cli.fails(&["role", "grant", "emperor", "--user", "bob"], 2);
    cli.fails(&["role", "grant", "guest"], 2);
    cli.ok(&["role", "revoke", &id.to_string()]);
    cli.fails(&["role", "revoke", &id.to_string()], 4);
    assert!(cli.json(&["role", "list"]).as_array().unwrap().is_empty());

    // Backups through the API.
    let backup = cli.json(&["backup"]);
    let path = PathBuf::from(backup["path"].as_str().unwrap());
    assert!(path.exists(), "{backup}");
    assert!(backup["bytes"].as_u64().unwrap() > 0);
    let backups = cli.json(&["backups"]);
    assert!(backups
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["path"] == backup["path"]));

    // The access log: the administrator's changes.
    let access = cli.json(&["audit", "--access"]);
    let actions: Vec<&str> = access
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    for action in [
        "add_cluster",
        "remove_cluster",
        "create_token",
        "grant",
        "revoke",
    ] {
        assert!(actions.contains(&action), "{action}: {access}");
    }

    // Contexts: list, use, remove; logout of a socket context is a no-op.
    let contexts = cli.json(&["context", "list"]);
    assert_eq!(contexts[0]["name"], "here");
    assert_eq!(contexts[0]["current"], true);
    assert!(cli.ok(&["context", "list"]).contains("socket"));
    cli.ok(&["logout"]);
    cli.fails(&["context", "use", "nope"], 4);
    cli.ok(&["context", "remove", "here"]);
    cli.fails(&["clusters"], 3);

    // Completions and the man page, from the same definitions.
    let bash = cli.ok(&["completions", "bash"]);
    assert!(bash.contains("_haven") && bash.contains("switch"), "bash");
    assert!(cli
        .ok(&["completions", "zsh"])
        .starts_with("#compdef haven"));
    assert!(cli
        .ok(&["completions", "fish"])
        .contains("complete -c haven"));
    let man = cli.ok(&["man"]);
    assert!(man.contains(".TH haven"), "{man}");
    assert!(
        man.contains("server unreachable"),
        "exit codes in the man page"
    );
    let pages = dir.path().join("man");
    cli.ok(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(pages.join("haven.1").exists());
    assert!(pages.join("haven-status.1").exists());
    let help = cli.ok(&["--help"]);
    assert!(help.contains("6  timed out waiting"), "{help}");
    drop(server);
}

/// The fleet CA's fingerprint from the server's start log.
fn ca_fingerprint(server: &ServerProc) -> String {
    let log = server.proc.log();
    log.split("(SHA-256 ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no fingerprint in the log:\n{log}"))
        .to_string()
}

#[test]
fn logins_over_https_trust_the_fleet_ca_and_roles_decide_exit_codes() {
    let Some(users) = OsUsers::create(&["hca", "hcg"]) else {
        return;
    };
    let (adm, gst) = (users.names[0].clone(), users.names[1].clone());
    let dir = tempfile::tempdir().unwrap();
    let kappa = engine(dir.path(), "kappa", 0);
    let server = ServerProc::start(
        dir.path(),
        &format!(
            "[auth]\nenabled = true\npam_service = \"{}\"\nserver_admins = [\"{adm}\"]\n\
             [[auth.grant]]\nuser = \"{adm}\"\nrole = \"cluster_administrator\"\n\
             [[auth.grant]]\nuser = \"{gst}\"\nrole = \"guest\"\n{}",
            users.service,
            cluster_toml("kappa", &kappa.addr)
        ),
    );
    let port = server.addr.rsplit_once(':').unwrap().1.to_string();
    let url = format!("https://127.0.0.1:{port}");
    let by_name = format!("https://localhost:{port}");
    // The administrator's context, named after the server.
    let admin = format!("127.0.0.1:{port}");
    let ca = dir.path().join("data/pki/ca.pem");
    let cli = Cli::new(dir.path());

    // Without a CA or a fingerprint, and no terminal to ask at: refused,
    // nothing saved.
    let run = cli.fails(&["login", &url, "--user", &adm, "--password-stdin"], 1);
    assert!(run.stderr.contains("--ca-fingerprint"), "{run:?}");
    assert!(!cli.config_file().exists());

    // --ca FILE, the password on standard input.
    let run = cli.run_with(
        &[
            "login",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--user",
            &adm,
            "--password-stdin",
        ],
        Some(&format!("{}\n", OsUsers::password(&adm))),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!("logged in to {url} as {adm}")),
        "{run:?}"
    );
    let file = cli.config_file();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains("token = ") && saved.contains("BEGIN CERTIFICATE"),
        "{saved}"
    );
    assert!(
        !saved.contains(&OsUsers::password(&adm)),
        "no password kept"
    );
    let me = cli.json(&["whoami"]);
    assert_eq!(
        (me["user"].as_str(), me["server_admin"].as_bool()),
        (Some(adm.as_str()), Some(true))
    );
    wait_connected(&cli, "kappa");
    let done = operate(&cli, &["group", "switch", "kappa/web", "--to", "n2"]);
    assert_eq!(done["outcome"], "completed");

    // --ca-fingerprint (from the server's start log), a second context by
    // another name of the same server; a wrong password is refused (3).
    let fp = ca_fingerprint(&server);
    let guest_login = |password: &str| {
        cli.run_with(
            &[
                "login",
                &by_name,
                "--ca-fingerprint",
                &fp,
                "--user",
                &gst,
                "--password-stdin",
                "--context",
                "guest",
            ],
            Some(&format!("{password}\n")),
        )
    };
    let run = guest_login("wrong");
    assert_eq!(run.code, 3, "{run:?}");
    let run = guest_login(&OsUsers::password(&gst));
    assert_eq!(run.code, 0, "{run:?}");
    let contexts = cli.json(&["context", "list"]);
    let guest = contexts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "guest")
        .unwrap()
        .clone();
    assert_eq!(
        (guest["current"].as_bool(), guest["session"].as_bool()),
        (Some(true), Some(true))
    );
    // A wrong fingerprint: nothing is sent.
    let mut wrong = fp.clone();
    wrong.replace_range(0..2, if fp.starts_with("00") { "11" } else { "00" });
    let run = cli.fails(
        &[
            "login",
            &by_name,
            "--ca-fingerprint",
            &wrong,
            "--password-stdin",
            "--context",
            "x",
        ],
        1,
    );
    assert!(run.stderr.contains("fingerprint"), "{run:?}");

    // The guest reads but may not operate (3), nor administer (3).
    let seen = cli.json(&["status", "kappa"]);
    assert_eq!(seen["name"], "kappa");
    let run = cli.fails(&["group", "switch", "kappa/web", "--to", "n1", "--wait"], 3);
    assert!(run.stderr.contains("Guest"), "{run:?}");
    let run = cli.fails(&["group", "switch", "kappa/web", "--to", "n1", "--json"], 3);
    let refused: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(refused["code"], "permission_denied");
    let run = cli.fails(&["role", "list"], 3);
    assert!(run.stderr.contains("permission denied"), "{run:?}");
    cli.fails(&["audit", "--access"], 3);

    // A role granted by the administrator is in force at once.
    let grant = cli.json(&[
        "role",
        "grant",
        "group_operator",
        "--user",
        &gst,
        "--cluster",
        "kappa",
        "--context",
        &admin,
    ]);
    operate(&cli, &["group", "switch", "kappa/web", "--to", "n1"]);
    cli.ok(&[
        "role",
        "revoke",
        &grant["id"].to_string(),
        "--context",
        &admin,
    ]);
    cli.fails(&["group", "switch", "kappa/web", "--to", "n2"], 3);

    // The administrator's audit: the guest's refusal; the access log: logins.
    let audit = cli.json(&["audit", "--user", &gst, "--context", &admin]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["outcome"] == "refused"
                && o["reason"].as_str().unwrap_or("").contains("Guest"))
    );
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["outcome"] == "completed"));
    let access = cli.json(&["audit", "--access", "--context", &admin]);
    let has = |user: &str, action: &str, outcome: &str| {
        access
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["user"] == user && a["action"] == action && a["outcome"] == outcome)
    };
    assert!(has(&adm, "login", "allowed"), "{access}");
    assert!(has(&gst, "login", "denied"), "{access}");
    assert!(has(&gst, "login", "allowed"), "{access}");

    // Logout ends the session: the next call says to log in (3).
    cli.ok(&["logout"]);
    let run = cli.fails(&["clusters"], 3);
    assert!(
        run.stderr.contains(&format!("haven login {by_name}")),
        "{run:?}"
    );
    let contexts = cli.json(&["context", "list"]);
    let session = |name: &str| {
        contexts
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["session"].clone())
    };
    assert_eq!(session("guest"), Some(Value::Bool(false)), "{contexts}");
    assert_eq!(session(&admin), Some(Value::Bool(true)), "{contexts}");
    // The administrator's session is untouched; --server picks its login.
    assert_eq!(
        cli.json(&["clusters", "--server", &url])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The local socket with logins on: who the kernel says (root, no
    // password), who holds no role here: kappa is not there for them (4).
    let socket = dir.path().join("data/haven.sock");
    cli.ok(&["login", "--socket", socket.to_str().unwrap()]);
    let me = cli.json(&["whoami"]);
    assert_eq!(
        (me["user"].as_str(), me["authenticated"].as_bool()),
        (Some("root"), Some(true))
    );
    assert_eq!(cli.json(&["clusters"]), serde_json::json!([]));
    cli.fails(&["status", "kappa"], 4);

    // An interactive login: the password is asked without echo.
    if let Some(tmux) = Tmux::start(&cli, "login") {
        tmux.type_line(&format!(
            "{HAVEN} login {url} --user {gst} --context tty --ca {}",
            ca.display()
        ));
        tmux.wait_for("the password prompt", |screen| {
            screen.contains(&format!("Password for {gst} at {url}:"))
        });
        tmux.type_line(&OsUsers::password(&gst));
        let screen = tmux.wait_for("logged in", |screen| screen.contains("logged in to"));
        assert!(
            !screen.contains(&OsUsers::password(&gst)),
            "the password was echoed:\n{screen}"
        );
    }

    // The server down: 5.
    drop(server);
    cli.fails(&["clusters", "--context", &admin], 5);
    drop(users);
}

/// A tmux server of the test's own (its own socket), with one shell
/// whose config directory is the test's; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts it, or None (skipped) where tmux is missing off CI.
    fn start(cli: &Cli, tag: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "tmux is missing on CI (scripts/test installs it)"
            );
            eprintln!("tmux is missing: the terminal part is skipped");
            return None;
        }
        let tmux = Tmux {
            socket: format!("haven-cli-{tag}-{}", std::process::id()),
        };
        let shell = format!(
            "env -u NO_COLOR XDG_CONFIG_HOME={} TERM=xterm-256color LANG=C.UTF-8 PS1='$ ' bash --norc --noprofile",
            cli.config_home.display()
        );
        let status = Command::new("tmux")
            .args([
                "-L",
                &tmux.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "cli",
                "-x",
                "160",
                "-y",
                "50",
                &shell,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session");
        tmux.wait_for("the prompt", |s| s.contains('$'));
        Some(tmux)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter.
    fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "cli", "-l", text]);
        self.tmux(&["send-keys", "-t", "cli", "Enter"]);
    }

    /// What is on the screen (`colours`: with the escape sequences).
    fn screen(&self, colours: bool) -> String {
        if colours {
            self.tmux(&["capture-pane", "-p", "-e", "-t", "cli"])
        } else {
            self.tmux(&["capture-pane", "-p", "-t", "cli"])
        }
    }

    /// Polls the screen until `pred` holds (at most [`PATIENCE`]).
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen(false);
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn clear(&self) {
        self.type_line("clear");
        self.wait_for("a clear screen", |s| s.trim() == "$");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn a_terminal_session_shows_the_status_table_the_wait_spinner_and_asks_to_trust_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    // Agents that take a while, so the spinner is on screen long enough.
    let kappa = engine(dir.path(), "kappa", 700);
    let server = ServerProc::start(dir.path(), &cluster_toml("kappa", &kappa.addr));
    let cli = Cli::new(dir.path());
    let Some(tmux) = Tmux::start(&cli, "terminal") else {
        return;
    };
    let port = server.addr.rsplit_once(':').unwrap().1.to_string();
    let url = format!("https://127.0.0.1:{port}");

    // First contact at a terminal: the CA's fingerprint is shown and the
    // user says yes (this server has logins off: no password).
    tmux.type_line(&format!("{HAVEN} login {url}"));
    let screen = tmux.wait_for("the trust question", |s| s.contains("Trust this CA"));
    assert!(screen.contains(&ca_fingerprint(&server)), "{screen}");
    tmux.type_line("y");
    tmux.wait_for("saved", |s| s.contains("saved as context"));
    wait_connected(&cli, "kappa");
    wait_until("the groups started", || {
        (state(&cli, "kappa", "web", "n1") == "ONLINE"
            && state(&cli, "kappa", "db", "n2") == "ONLINE")
            .then_some(())
    });

    // The status table, aligned, coloured on a terminal.
    tmux.clear();
    tmux.type_line(&format!("{HAVEN} status kappa"));
    let screen = tmux.wait_for("the status table", |s| {
        s.lines().any(|l| l.starts_with("db "))
    });
    let rows: Vec<Vec<&str>> = screen
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec!["GROUP", "n1", "n2", "FLAGS"]),
        "{screen}"
    );
    assert!(rows.contains(&vec!["web", "ONLINE", "OFFLINE"]), "{screen}");
    assert!(rows.contains(&vec!["db", "OFFLINE", "ONLINE"]), "{screen}");
    let header = screen.lines().find(|l| l.starts_with("GROUP")).unwrap();
    let web = screen.lines().find(|l| l.starts_with("web ")).unwrap();
    assert_eq!(header.find("n2"), web.find("OFFLINE"), "aligned:\n{screen}");
    assert!(
        tmux.screen(true).contains("\x1b[32mONLINE"),
        "ONLINE in green on a terminal"
    );

    // --wait: a spinner while the switch runs, then the outcome.
    tmux.clear();
    tmux.type_line(&format!("{HAVEN} group switch kappa/web --to n2 --wait"));
    let screen = tmux.wait_for("the spinner", |s| {
        s.contains("waiting: switch group web to n2 (kappa)")
    });
    assert!(screen.contains("s)"), "seconds so far: {screen}");
    let screen = tmux.wait_for("the outcome", |s| s.contains("completed in"));
    assert!(
        !screen.contains("waiting:"),
        "the spinner line is cleared:\n{screen}"
    );
    tmux.type_line("echo status=$?");
    tmux.wait_for("exit status 0", |s| s.contains("status=0"));

    // NO_COLOR on a terminal, and a pipe without it: no colour at all.
    tmux.clear();
    tmux.type_line(&format!("NO_COLOR=1 {HAVEN} status kappa"));
    tmux.wait_for("the plain table", |s| {
        s.lines().any(|l| l.starts_with("db "))
    });
    let screen = tmux.screen(true);
    assert!(
        !screen.contains("\x1b[3"),
        "NO_COLOR is respected:\n{screen:?}"
    );
    let piped = Command::new(HAVEN)
        .args(["status", "kappa"])
        .env("XDG_CONFIG_HOME", &cli.config_home)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.status.success() && text.contains("ONLINE"), "{text}");
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text:?}");

    // Long work on a terminal shows a progress bar.
    tmux.clear();
    let copy = dir.path().join("by-hand.db");
    tmux.type_line(&format!(
        "{HAVEN} db backup {} --data-dir {}",
        copy.display(),
        dir.path().join("data").display()
    ));
    let screen = tmux.wait_for("the backup", |s| s.contains("written and verified"));
    assert!(
        screen.contains("backup [####################] 100%"),
        "a full progress bar:\n{screen}"
    );
    drop(server);
}
