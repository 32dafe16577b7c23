//! Peer management servers: `haven peer token|add|list|remove`.

use clap::Subcommand;
use serde_json::{json, Value};

use super::http::{encode, Api};
use super::output::{self, print_json, text, Table};
use super::{Global, Result};

#[derive(Subcommand)]
pub enum PeerCommand {
    /// Make a one-time pairing token on this server (Server
    /// Administrator); it prints the `haven peer add` command to run
    /// against the other site's server.
    Token {
        /// How long it stays valid, in seconds (default: [peers]
        /// token_ttl_secs, one hour).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
    },
    /// Pair this server with another site's server, using the token it
    /// made: both then list each other and each shows the other's
    /// clusters as SITE:CLUSTER (Server Administrator).
    Add {
        /// HOST:PORT of the other server's peer port.
        #[arg(value_name = "ADDRESS")]
        address: String,
        /// The pairing token (`haven peer token` there).
        #[arg(long, value_name = "TOKEN")]
        token: String,
    },
    /// This site and the sites it is paired with, and how their links
    /// stand.
    List,
    /// Unpair a site: stop following it and stop trusting it (its history
    /// stays). Remove it on the other side too.
    Remove {
        #[arg(value_name = "SITE")]
        site: String,
    },
}

/// A time in the answer, as the CLI's other tables show times.
fn when(ms: &Value) -> String {
    ms.as_i64().map(output::time).unwrap_or_default()
}

pub fn peer(g: &Global, command: PeerCommand) -> Result<()> {
    let api = Api::from_global(g)?;
    match command {
        PeerCommand::Token { ttl } => {
            let answer = api.send(
                "POST",
                "/api/v1/peers/tokens",
                Some(&json!({ "ttl_secs": ttl })),
            )?;
            if g.json() {
                print_json(&answer);
            } else {
                println!(
                    "pairing token for site {} (one use, valid until {}):\n{}\n\nOn the other site's server, run:\n  {}",
                    text(&answer["site"]),
                    when(&answer["expires_ms"]),
                    text(&answer["token"]),
                    text(&answer["command"])
                );
            }
            Ok(())
        }
        PeerCommand::Add { address, token } => {
            let answer = api.send(
                "POST",
                "/api/v1/peers",
                Some(&json!({ "address": address, "token": token })),
            )?;
            if g.json() {
                print_json(&answer);
            } else {
                println!(
                    "paired with site {} at {}; its clusters appear as {}:CLUSTER",
                    text(&answer["site"]),
                    text(&answer["address"]),
                    text(&answer["site"])
                );
            }
            Ok(())
        }
        PeerCommand::List => {
            let list = api.get("/api/v1/peers")?;
            if g.json() {
                print_json(&list);
                return Ok(());
            }
            println!(
                "this site: {} (peers reach it at {})",
                text(&list["site"]),
                text(&list["address"])
            );
            let peers = list["peers"].as_array().cloned().unwrap_or_default();
            if peers.is_empty() {
                println!("no paired sites; pair one: haven peer token (there), then haven peer add ADDRESS --token TOKEN (here)");
                return Ok(());
            }
            let mut table = Table::new([
                "SITE",
                "ADDRESS",
                "STATE",
                "SINCE",
                "CLUSTERS",
                "LAST ERROR",
            ]);
            for p in &peers {
                table.row([
                    text(&p["site"]),
                    text(&p["address"]),
                    text(&p["state"]),
                    when(&p["since_ms"]),
                    text(&p["clusters"]),
                    text(&p["last_error"]),
                ]);
            }
            table.print();
            Ok(())
        }
        PeerCommand::Remove { site } => {
            api.send("DELETE", &format!("/api/v1/peers/{}", encode(&site)), None)?;
            if !g.json() {
                println!(
                    "unpaired site {site}; remove this site on its server too (haven peer remove)"
                );
            }
            Ok(())
        }
    }
}
