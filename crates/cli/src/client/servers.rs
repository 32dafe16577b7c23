//! `haven server status`: the servers of a clustered server's group.

use std::process::ExitCode;

use serde_json::Value;

use super::http::Api;
use super::output::{print_json, text, Table};
use super::{Global, Result};

/// How long ago, for people: `850 ms`, `12 s`, `3 min`.
fn ago(ms: &Value) -> String {
    match ms.as_i64() {
        Some(ms) if ms < 1_000 => format!("{ms} ms ago"),
        Some(ms) if ms < 120_000 => format!("{} s ago", ms / 1_000),
        Some(ms) => format!("{} min ago", ms / 60_000),
        None => String::new(),
    }
}

pub fn status(g: &Global) -> Result<()> {
    let view = Api::from_global(g)?.get("/api/v1/servers")?;
    if g.json() {
        print_json(&view);
        return Ok(());
    }
    if view["clustered"] != true {
        println!(
            "{} is a single server (not in a group: [group] enabled = false); it is active",
            text(&view["me"])
        );
        return Ok(());
    }
    match view["active"].as_str() {
        Some(active) => println!(
            "active: {active} at {} (term {}); answered by {}, a{} {}",
            text(&view["active_url"]),
            text(&view["term"]),
            text(&view["me"]),
            if view["role"] == "active" { "n" } else { "" },
            text(&view["role"]),
        ),
        None => println!(
            "no server is active right now (a takeover is under way; term {}); answered by {}",
            text(&view["term"]),
            text(&view["me"])
        ),
    }
    if let Some(problem) = view["problem"].as_str() {
        println!("the answering server cannot read the group's database: {problem}");
    }
    let mut table = Table::new([
        "SERVER",
        "ROLE",
        "HEALTH",
        "LAST SEEN",
        "API",
        "CONNECTORS",
        "VERSION",
        "PID",
    ]);
    for s in view["servers"].as_array().into_iter().flatten() {
        table.row([
            text(&s["id"]),
            text(&s["role"]),
            text(&s["health"]),
            ago(&s["last_seen_ms_ago"]),
            text(&s["api_url"]),
            text(&s["connector_address"]),
            text(&s["version"]),
            text(&s["pid"]),
        ]);
    }
    table.print();
    Ok(())
}

/// Runs `haven server status` and gives the exit status.
pub fn run(g: &Global) -> ExitCode {
    match status(g) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}: {}", super::output::paint_error("error"), f.message);
            }
            ExitCode::from(f.exit as u8)
        }
    }
}
