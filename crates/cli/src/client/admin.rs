//! Administration through the API: `haven cluster add|remove|token`,
//! `haven role grant|revoke|list`, `haven audit`, `haven backup(s)`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::http::{encode, query, Api};
use super::output::{self, print_json, text, Table};
use super::{parse_duration, term, Exit, Failure, Global, Result};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Manage a cluster through a direct connection to its engine
    /// (HOST:PORT, default port 14141).
    Add {
        /// Must match the engine's cluster name.
        #[arg(value_name = "NAME")]
        name: String,
        /// The engine's socket.
        #[arg(value_name = "HOST:PORT")]
        address: String,
        /// Engine login, if its main.cf sets UserNames.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// With --user: read the engine password from standard input (it is
        /// asked on the terminal otherwise).
        #[arg(long, requires = "user")]
        password_stdin: bool,
    },
    /// Stop managing a cluster (its history is kept).
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Make a one-time join token for `haven connector`.
    Token {
        /// Only this cluster may join with it.
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// How long it stays valid (default: the server's setting).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
    },
}

/// The roles, as the API names them.
const ROLES: [&str; 5] = [
    "guest",
    "group_operator",
    "group_administrator",
    "cluster_operator",
    "cluster_administrator",
];

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Grant ROLE to a user or an OS/directory group, on every cluster,
    /// one cluster, or one service group of a cluster.
    Grant {
        #[arg(value_name = "ROLE", value_parser = ROLES)]
        role: String,
        #[arg(
            long,
            value_name = "USER",
            conflicts_with = "group",
            required_unless_present = "group"
        )]
        user: Option<String>,
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Only this cluster (default: every cluster).
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Only this service group of --cluster.
        #[arg(long, value_name = "SERVICE_GROUP", requires = "cluster")]
        group_scope: Option<String>,
    },
    /// Revoke the grant ID (from `haven role list`; grants from haven.toml
    /// are changed there).
    Revoke {
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// List the grants in force.
    List,
}

#[derive(Args)]
pub struct AuditArgs {
    /// Only this user's.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Only this cluster's.
    #[arg(long, value_name = "CLUSTER")]
    cluster: Option<String>,
    /// The access log instead: logins, logouts, refusals and
    /// administrators' changes (Server Administrator).
    #[arg(long)]
    access: bool,
    /// Only entries with this outcome (with --access).
    #[arg(long, requires = "access", value_parser = ["allowed", "denied", "failed"])]
    outcome: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    global: Global,
}

pub fn cluster(g: &Global, command: ClusterCommand) -> Result<()> {
    let api = Api::from_global(g)?;
    match command {
        ClusterCommand::Add {
            name,
            address,
            user,
            password_stdin,
        } => {
            let address = if address.contains(':') {
                address
            } else {
                format!("{address}:14141")
            };
            let password = match &user {
                Some(u) => Some(term::secret(
                    &format!("Engine password for {u} on {name}: "),
                    password_stdin,
                )?),
                None => None,
            };
            let body =
                json!({ "name": name, "address": address, "user": user, "password": password });
            let link = api.send("POST", "/api/v1/clusters", Some(&body))?;
            if g.json() {
                print_json(&link);
            } else {
                println!(
                    "added cluster {name} ({}, {address}); `haven status {name}` shows it once connected",
                    text(&link["state"])
                );
            }
            Ok(())
        }
        ClusterCommand::Remove { name } => {
            api.send(
                "DELETE",
                &format!("/api/v1/clusters/{}", encode(&name)),
                None,
            )?;
            if g.json() {
                print_json(&json!({ "removed": name }));
            } else {
                println!("removed cluster {name} (its history is kept)");
            }
            Ok(())
        }
        ClusterCommand::Token { cluster, ttl } => {
            let body = json!({ "cluster": cluster, "ttl_secs": ttl.map(|t| t.as_secs().max(1)) });
            let token = api.send("POST", "/api/v1/tokens", Some(&body))?;
            if g.json() {
                print_json(&token);
                return Ok(());
            }
            let expires = token["expires_ms"].as_i64().unwrap_or(0);
            println!(
                "join token (once, until {}{}):\n  {}\n\non the cluster, next to its engine:\n  haven connector --server {} --engine 127.0.0.1:14141 --token {}",
                output::time(expires),
                cluster
                    .as_deref()
                    .map(|c| format!(", for cluster {c} only"))
                    .unwrap_or_default(),
                text(&token["token"]),
                text(&token["connector_address"]),
                text(&token["token"]),
            );
            Ok(())
        }
    }
}

pub fn role(g: &Global, command: RoleCommand) -> Result<()> {
    let api = Api::from_global(g)?;
    match command {
        RoleCommand::Grant {
            role,
            user,
            group,
            cluster,
            group_scope,
        } => {
            let body = json!({
                "role": role, "user": user, "group": group,
                "cluster": cluster, "service_group": group_scope,
            });
            let grant = api.send("POST", "/api/v1/grants", Some(&body))?;
            if g.json() {
                print_json(&grant);
            } else {
                println!(
                    "granted {role} to {} on {} (grant {})",
                    principal(&grant),
                    scope(&grant),
                    text(&grant["id"])
                );
            }
            Ok(())
        }
        RoleCommand::Revoke { id } => {
            api.send("DELETE", &format!("/api/v1/grants/{id}"), None)?;
            if g.json() {
                print_json(&json!({ "revoked": id }));
            } else {
                println!("revoked grant {id}");
            }
            Ok(())
        }
        RoleCommand::List => {
            let grants = api.get("/api/v1/grants")?;
            if g.json() {
                print_json(&grants);
                return Ok(());
            }
            let rows = grants.as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                println!("no grants");
                return Ok(());
            }
            let mut headers = vec!["ID", "ROLE", "TO", "ON", "SOURCE"];
            if g.wide() {
                headers.extend(["CREATED", "BY"]);
            }
            let mut table = Table::new(headers);
            for r in &rows {
                let mut row = vec![
                    text(&r["id"]),
                    text(&r["role"]),
                    principal(r),
                    scope(r),
                    text(&r["source"]),
                ];
                if g.wide() {
                    row.extend([
                        r["created_ms"]
                            .as_i64()
                            .map(output::time)
                            .unwrap_or("-".into()),
                        text(&r["created_by"]),
                    ]);
                }
                table.row(row);
            }
            table.print();
            Ok(())
        }
    }
}

fn principal(grant: &Value) -> String {
    match (grant["user"].as_str(), grant["group"].as_str()) {
        (Some(u), _) => format!("user {u}"),
        (_, Some(g)) => format!("group {g}"),
        _ => "-".into(),
    }
}

fn scope(grant: &Value) -> String {
    match (grant["cluster"].as_str(), grant["service_group"].as_str()) {
        (None, _) => "every cluster".into(),
        (Some(c), None) => format!("cluster {c}"),
        (Some(c), Some(sg)) => format!("{c}/{sg}"),
    }
}

pub fn audit(args: AuditArgs) -> Result<()> {
    let g = &args.global;
    let api = Api::from_global(g)?;
    let q = query(&[
        ("user", args.user.clone()),
        ("cluster", args.cluster.clone()),
        ("outcome", args.outcome.clone()),
        ("limit", Some(args.limit.to_string())),
    ]);
    let path = if args.access {
        format!("/api/v1/access-log{q}")
    } else {
        format!("/api/v1/operations{q}")
    };
    let rows = api.get(&path)?;
    if g.json() {
        print_json(&rows);
        return Ok(());
    }
    let mut rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("nothing recorded matches");
        return Ok(());
    }
    rows.reverse(); // oldest first, like a log
    let table = if args.access {
        let mut t = Table::new([
            "TIME", "USER", "SOURCE", "ACTION", "TARGET", "OUTCOME", "REASON",
        ]);
        for r in &rows {
            t.row([
                r["time_ms"].as_i64().map(output::time).unwrap_or_default(),
                text(&r["user"]),
                text(&r["source"]),
                text(&r["action"]),
                text(&r["target"]),
                text(&r["outcome"]),
                text(&r["reason"]),
            ]);
        }
        t
    } else {
        let mut headers = vec![
            "ID",
            "TIME",
            "USER",
            "CLUSTER",
            "OPERATION",
            "OUTCOME",
            "REASON",
        ];
        if g.wide() {
            headers.push("TOOK");
        }
        let mut t = Table::new(headers);
        for r in &rows {
            let mut row = vec![
                text(&r["id"]),
                r["requested_ms"]
                    .as_i64()
                    .map(output::time)
                    .unwrap_or_default(),
                text(&r["user"]),
                text(&r["cluster"]),
                super::ops::describe(&r["op"]),
                text(&r["outcome"]),
                text(&r["reason"]),
            ];
            if g.wide() {
                row.push(
                    match (r["requested_ms"].as_i64(), r["finished_ms"].as_i64()) {
                        (Some(a), Some(b)) => format!("{:.1}s", (b - a) as f64 / 1000.0),
                        _ => "-".into(),
                    },
                );
            }
            t.row(row);
        }
        t
    };
    table.print();
    Ok(())
}

pub fn backup(g: &Global) -> Result<()> {
    let api = Api::from_global(g)?;
    let b = api
        .send("POST", "/api/v1/db/backups", None)
        .map_err(|f| match f.exit {
            Exit::NotFound => Failure::new(
                f.exit,
                format!(
                    "{}; this server has no backup API (use haven db backup FILE on its host)",
                    f.message
                ),
            ),
            _ => f,
        })?;
    if g.json() {
        print_json(&b);
        return Ok(());
    }
    println!(
        "backup {} written on the server: {}, {} history rows, verified, in {} ms",
        text(&b["path"]),
        output::bytes(b["bytes"].as_u64().unwrap_or(0)),
        text(&b["history_rows"]),
        text(&b["took_ms"])
    );
    Ok(())
}

pub fn backups(g: &Global) -> Result<()> {
    let api = Api::from_global(g)?;
    let list = api.get("/api/v1/db/backups")?;
    if g.json() {
        print_json(&list);
        return Ok(());
    }
    let rows = list.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no backups yet; make one: haven backup");
        return Ok(());
    }
    let mut table = Table::new(["TIME", "SIZE", "PATH (on the server)"]);
    for b in &rows {
        table.row([
            b["time_ms"].as_i64().map(output::time).unwrap_or_default(),
            output::bytes(b["bytes"].as_u64().unwrap_or(0)),
            text(&b["path"]),
        ]);
    }
    table.print();
    Ok(())
}
