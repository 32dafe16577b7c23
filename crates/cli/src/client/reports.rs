//! Reports through the API: `haven report availability`. A table for
//! people, `--json` for scripts, `--csv` for spreadsheets (the server's
//! own CSV, byte for byte).

use clap::{Args, Subcommand};
use serde_json::Value;

use super::http::{query, Api};
use super::output::{print_json, text, Table};
use super::{Failure, Global, Result};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Availability per service group, cluster and the fleet over a
    /// period: percent of the known time a group was ONLINE or PARTIAL
    /// somewhere, outages (unplanned: began with a fault), failovers and
    /// MTTR.
    Availability(AvailabilityArgs),
}

#[derive(Args)]
pub struct AvailabilityArgs {
    /// The period's start: RFC 3339 (2026-12-01T00:00:00Z), a date
    /// (2026-12-01, midnight UTC) or a time ago (7d, 12h).
    #[arg(long, value_name = "WHEN", default_value = "7d")]
    from: String,
    /// The period's end (not included), in the same forms; default now.
    #[arg(long, value_name = "WHEN")]
    to: Option<String>,
    /// Only this cluster.
    #[arg(long, value_name = "CLUSTER")]
    cluster: Option<String>,
    /// Only service groups of this name.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Only groups carrying every tag (`env=prod,tier=web`, or a key; on
    /// the group or its cluster, as tagged now).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// Print the report as CSV (one line per group, cluster and the fleet).
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    #[command(flatten)]
    global: Global,
}

pub fn report(command: ReportCommand) -> Result<()> {
    match command {
        ReportCommand::Availability(args) => availability(args),
    }
}

fn availability(args: AvailabilityArgs) -> Result<()> {
    let g = &args.global;
    let api = Api::from_global(g)?;
    let q = query(&[
        ("from", Some(args.from.clone())),
        ("to", args.to.clone()),
        ("cluster", args.cluster.clone()),
        ("group", args.group.clone()),
        ("tag", args.tag.clone()),
        ("format", args.csv.then(|| "csv".to_string())),
    ]);
    let answer = api.get(&format!("/api/v1/reports/availability{q}"))?;
    if args.csv {
        return match answer {
            Value::String(csv) => {
                print!("{csv}");
                Ok(())
            }
            other => Err(Failure::error(format!(
                "the server answered something else than CSV: {other}"
            ))),
        };
    }
    if g.json() {
        print_json(&answer);
        return Ok(());
    }
    let period = &answer["period"];
    println!(
        "availability from {} to {} (UTC)",
        rfc3339(&period["from_ms"]),
        rfc3339(&period["to_ms"])
    );
    let mut table = Table::new([
        "CLUSTER",
        "GROUP",
        "AVAILABLE%",
        "COVERED",
        "OUTAGES",
        "UNPLANNED",
        "DOWN",
        "LONGEST",
        "FAILOVERS",
        "MTTR",
    ]);
    let mut line = |cluster: &str, group: &str, f: &Value| {
        table.row([
            cluster.to_string(),
            group.to_string(),
            percent(f),
            span(&f["covered_ms"]),
            text(&f["outages"]),
            text(&f["unplanned_outages"]),
            span(&f["outage_ms"]),
            span(&f["longest_outage_ms"]),
            text(&f["failovers"]),
            if f["mttr_ms"].is_null() {
                "-".into()
            } else {
                span(&f["mttr_ms"])
            },
        ]);
    };
    for c in answer["clusters"].as_array().into_iter().flatten() {
        let name = c["cluster"].as_str().unwrap_or("-");
        for grp in c["groups"].as_array().into_iter().flatten() {
            line(name, grp["group"].as_str().unwrap_or("-"), grp);
        }
        line(name, "(all)", c);
    }
    line("(fleet)", "", &answer["overall"]);
    table.print();
    Ok(())
}

/// `95.8333`, `n/a`: the percentage with its four decimals.
fn percent(f: &Value) -> String {
    match f["availability_percent"].as_f64() {
        Some(p) => format!("{p:.4}"),
        None => "n/a".into(),
    }
}

fn span(ms: &Value) -> String {
    let s = ms.as_i64().unwrap_or(0).max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn rfc3339(ms: &Value) -> String {
    ms.as_i64()
        .map(haven_model::clock::rfc3339)
        .unwrap_or_else(|| "-".into())
}
