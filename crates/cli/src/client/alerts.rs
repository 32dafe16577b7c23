//! Alerts through the API: `haven alerts` (open ones, or `--all`),
//! `haven alert ack ID`, `haven alert deliveries`, `haven alert test
//! CHANNEL`. Each prints the API's JSON with `--json`, a table otherwise.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::http::{query, Api};
use super::output::{self, print_json, text, Table};
use super::{Global, Result};

/// The severities, lowest first, as the API names them.
const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// `haven alerts`.
#[derive(Args)]
pub struct AlertsArgs {
    /// Cleared alerts too (open ones first); default: only open alerts.
    #[arg(long)]
    all: bool,
    /// Only this cluster's.
    #[arg(long, value_name = "CLUSTER")]
    cluster: Option<String>,
    /// Only alerts at least this serious.
    #[arg(long, value_name = "SEVERITY", value_parser = SEVERITIES)]
    severity: Option<String>,
    /// Only alerts whose cluster, group or system carries every tag
    /// (`env=prod,tier=web`, or a key).
    #[arg(long, value_name = "TAGS")]
    tag: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    global: Global,
}

#[derive(Subcommand)]
pub enum AlertCommand {
    /// Acknowledge alert ID: you take it (the first acknowledgement
    /// stays; needs Group Operator or higher on its group or cluster).
    Ack {
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Every attempt to deliver a notification, newest first (Server
    /// Administrator).
    Deliveries {
        /// Only attempts for this alert.
        #[arg(long, value_name = "ID")]
        alert: Option<i64>,
        /// Only attempts through this channel.
        #[arg(long, value_name = "CHANNEL")]
        channel: Option<String>,
        /// Only attempts that ended so.
        #[arg(long, value_parser = ["sent", "failed", "dropped", "suppressed"])]
        outcome: Option<String>,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send a test notification through CHANNEL (an `[[alerts.channel]]`
    /// name; Server Administrator); `haven alert deliveries` shows how it
    /// went.
    Test {
        #[arg(value_name = "CHANNEL")]
        channel: String,
    },
}

pub fn list(args: AlertsArgs) -> Result<()> {
    let g = &args.global;
    let api = Api::from_global(g)?;
    let filters = |open: bool| {
        query(&[
            ("open", Some(open.to_string())),
            ("cluster", args.cluster.clone()),
            ("severity", args.severity.clone()),
            ("tag", args.tag.clone()),
            ("limit", Some(args.limit.to_string())),
        ])
    };
    // Open alerts first, then (with --all) the cleared ones.
    let mut rows = api
        .get(&format!("/api/v1/alerts{}", filters(true)))?
        .as_array()
        .cloned()
        .unwrap_or_default();
    if args.all && rows.len() < args.limit {
        let cleared = api.get(&format!("/api/v1/alerts{}", filters(false)))?;
        rows.extend(cleared.as_array().cloned().unwrap_or_default());
        rows.truncate(args.limit);
    }
    if g.json() {
        print_json(&Value::Array(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "{}",
            if args.all {
                "no alerts"
            } else {
                "no open alerts (haven alerts --all shows cleared ones too)"
            }
        );
        return Ok(());
    }
    let mut headers = vec![
        "ID", "SEVERITY", "CLUSTER", "OBJECT", "RAISED", "STATE", "ACK", "MESSAGE",
    ];
    if g.wide() {
        headers.extend(["KIND", "ACKED", "FLAPPING"]);
    }
    let mut table = Table::new(headers);
    for a in &rows {
        let object = match (a["object"].as_str(), a["system"].as_str()) {
            (Some(o), Some(s)) => format!("{o}@{s}"),
            (Some(o), None) => o.to_string(),
            (None, Some(s)) => format!("@{s}"),
            (None, None) => "-".into(),
        };
        let state = match a["cleared_ms"].as_i64() {
            Some(ms) => format!("cleared {} ago", output::ago(ms)),
            None if a["flapping"] == true => "open, flapping".into(),
            None => "open".into(),
        };
        let mut row = vec![
            text(&a["id"]),
            text(&a["severity"]),
            text(&a["cluster"]),
            object,
            a["raised_ms"]
                .as_i64()
                .map(output::time)
                .unwrap_or_default(),
            state,
            text(&a["acknowledged_by"]),
            text(&a["message"]),
        ];
        if g.wide() {
            row.extend([
                text(&a["kind"]),
                a["acknowledged_ms"]
                    .as_i64()
                    .map(output::time)
                    .unwrap_or("-".into()),
                if a["flapping"] == true { "yes" } else { "no" }.into(),
            ]);
        }
        table.row(row);
    }
    table.print();
    Ok(())
}

pub fn alert(g: &Global, command: AlertCommand) -> Result<()> {
    let api = Api::from_global(g)?;
    match command {
        AlertCommand::Ack { id } => {
            let a = api.send("POST", &format!("/api/v1/alerts/{id}/ack"), None)?;
            if g.json() {
                print_json(&a);
                return Ok(());
            }
            let at = a["acknowledged_ms"]
                .as_i64()
                .map(output::time)
                .unwrap_or_default();
            println!(
                "alert {id} acknowledged by {} at {at}: {}",
                text(&a["acknowledged_by"]),
                text(&a["message"])
            );
            Ok(())
        }
        AlertCommand::Deliveries {
            alert,
            channel,
            outcome,
            limit,
        } => {
            let q = query(&[
                ("alert_id", alert.map(|a| a.to_string())),
                ("channel", channel),
                ("outcome", outcome),
                ("limit", Some(limit.to_string())),
            ]);
            let list = api.get(&format!("/api/v1/alerts/deliveries{q}"))?;
            if g.json() {
                print_json(&list);
                return Ok(());
            }
            let mut rows = list.as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                println!("no delivery attempts match");
                return Ok(());
            }
            rows.reverse(); // oldest first, like a log
            let mut table = Table::new([
                "TIME", "ALERT", "CHANNEL", "EVENT", "ATTEMPT", "OUTCOME", "ERROR",
            ]);
            for d in &rows {
                table.row([
                    d["time_ms"].as_i64().map(output::time).unwrap_or_default(),
                    d["alert_id"]
                        .as_i64()
                        .map_or("test".into(), |id| id.to_string()),
                    text(&d["channel"]),
                    text(&d["event"]),
                    text(&d["attempt"]),
                    text(&d["outcome"]),
                    text(&d["error"]),
                ]);
            }
            table.print();
            Ok(())
        }
        AlertCommand::Test { channel } => {
            api.send(
                "POST",
                "/api/v1/alerts/test",
                Some(&json!({ "channel": channel })),
            )?;
            if g.json() {
                print_json(&json!({ "test": channel, "queued": true }));
            } else {
                println!(
                    "test notification queued on {channel}; see how it went: haven alert deliveries --channel {channel}"
                );
            }
            Ok(())
        }
    }
}
