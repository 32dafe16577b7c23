//! Tags and search: `haven tag set|rm|list`, `haven find` (the query
//! language, `--tag`, saving and running saved searches) and
//! `haven searches`.

use clap::Subcommand;
use serde_json::{json, Value};

use super::http::{encode, query, Api};
use super::output::{print_json, text, Table};
use super::{Exit, Failure, Global, Result};

#[derive(Subcommand)]
pub enum TagCommand {
    /// Set tags (KEY=VALUE...) on a cluster (CLUSTER), a service group
    /// (CLUSTER/GROUP) or, with --system, a system (CLUSTER/SYSTEM); a key
    /// set already takes the new value. Group tags need Group
    /// Administrator on the group; cluster and system tags, Cluster
    /// Administrator.
    Set {
        /// CLUSTER, CLUSTER/GROUP, or CLUSTER/SYSTEM with --system.
        #[arg(value_name = "TARGET")]
        target: String,
        /// KEY=VALUE (keys: letters, digits, `_ . - /`).
        #[arg(value_name = "KEY=VALUE", required = true)]
        tags: Vec<String>,
        /// TARGET names a system, not a service group.
        #[arg(long)]
        system: bool,
    },
    /// Remove tags (by KEY) from a cluster, group or system.
    Rm {
        #[arg(value_name = "TARGET")]
        target: String,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
        #[arg(long)]
        system: bool,
    },
    /// List tags (of one cluster and its objects, or of every cluster you
    /// see).
    List {
        #[arg(value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Only this key.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
}

/// The object a TARGET names, as the API's fields.
fn object(target: &str, system: bool) -> Result<Value> {
    let (cluster, name) = match target.split_once('/') {
        Some((c, n)) if !c.is_empty() && !n.is_empty() && !n.contains('/') => (c, Some(n)),
        None if !target.is_empty() && !system => (target, None),
        _ => {
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "`{target}`: name a cluster (CLUSTER), a service group (CLUSTER/GROUP) or, with --system, a system (CLUSTER/SYSTEM)"
                ),
            ))
        }
    };
    let mut o = json!({ "cluster": cluster });
    if let Some(n) = name {
        o[if system { "system" } else { "group" }] = json!(n);
    }
    Ok(o)
}

fn print_object_tags(answer: &Value) {
    let tags = answer["tags"].as_object().cloned().unwrap_or_default();
    let what = match answer["kind"].as_str() {
        Some("cluster") | None => format!("cluster {}", text(&answer["cluster"])),
        Some(k) => format!(
            "{k} {}/{}",
            text(&answer["cluster"]),
            text(&answer["object"])
        ),
    };
    if tags.is_empty() {
        println!("{what}: no tags");
    } else {
        let list: Vec<String> = tags
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        println!("{what}: {}", list.join(" "));
    }
}

pub fn tag(g: &Global, command: TagCommand) -> Result<()> {
    let api = Api::from_global(g)?;
    match command {
        TagCommand::Set {
            target,
            tags,
            system,
        } => {
            let mut body = object(&target, system)?;
            body["tags"] = json!(tags);
            let answer = api.send("PUT", "/api/v1/tags", Some(&body))?;
            if g.json() {
                print_json(&answer);
            } else {
                print_object_tags(&answer);
            }
            Ok(())
        }
        TagCommand::Rm {
            target,
            keys,
            system,
        } => {
            let o = object(&target, system)?;
            let mut last = Value::Null;
            for key in keys {
                let path = format!(
                    "/api/v1/tags{}",
                    query(&[
                        ("cluster", o["cluster"].as_str().map(String::from)),
                        ("group", o["group"].as_str().map(String::from)),
                        ("system", o["system"].as_str().map(String::from)),
                        ("key", Some(key)),
                    ])
                );
                last = api.send("DELETE", &path, None)?;
            }
            if g.json() {
                print_json(&last);
            } else {
                print_object_tags(&last);
            }
            Ok(())
        }
        TagCommand::List { cluster, key } => {
            let list = api.get(&format!(
                "/api/v1/tags{}",
                query(&[("cluster", cluster), ("key", key)])
            ))?;
            if g.json() {
                print_json(&list);
                return Ok(());
            }
            let rows = list.as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                println!("no tags; set one: haven tag set CLUSTER[/GROUP] KEY=VALUE");
                return Ok(());
            }
            let mut table = Table::new(["CLUSTER", "KIND", "OBJECT", "KEY", "VALUE", "SET BY"]);
            for t in &rows {
                table.row([
                    text(&t["cluster"]),
                    text(&t["kind"]),
                    text(&t["object"]),
                    text(&t["key"]),
                    text(&t["value"]),
                    text(&t["set_by"]),
                ]);
            }
            table.print();
            Ok(())
        }
    }
}

/// `--tag K=V` given several times, as the API's `?tag=`.
pub fn tag_param(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| tags.join(","))
}

/// `haven find`'s options.
#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// The query: words (names, resource types, tags, attribute values),
    /// KEY=VALUE (carries the tag; the value may be a glob), state:faulted,
    /// kind:group, cluster:GLOB, group:GLOB, type:GLOB, -TERM (not).
    /// Every term must match.
    #[arg(value_name = "QUERY", required_unless_present = "saved")]
    pub query: Vec<String>,
    /// Only objects that carry this tag (KEY=VALUE or KEY; repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub tag: Vec<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Save the query under NAME (yours alone unless --shared), then run it.
    #[arg(long, value_name = "NAME", conflicts_with = "saved")]
    pub save: Option<String>,
    /// With --save: list the search to every user.
    #[arg(long, requires = "save")]
    pub shared: bool,
    /// Run the saved search NAME (yours, else a shared one); `haven
    /// searches` lists them.
    #[arg(long, value_name = "NAME")]
    pub saved: Option<String>,
}

/// The saved search `name`: the caller's own first, else a shared one.
fn saved_named(api: &Api, name: &str) -> Result<Value> {
    let me = api.get("/api/v1/whoami")?["user"].clone();
    let list = api.get("/api/v1/searches")?;
    let rows = list.as_array().cloned().unwrap_or_default();
    let named = |own: bool| {
        rows.iter()
            .find(|s| s["name"] == name && (s["owner"] == me) == own)
            .cloned()
    };
    named(true).or_else(|| named(false)).ok_or_else(|| {
        Failure::new(
            Exit::NotFound,
            format!("no saved search named {name}; `haven searches` lists them"),
        )
    })
}

pub fn find(g: &Global, args: FindArgs) -> Result<()> {
    let api = Api::from_global(g)?;
    let text_query = match &args.saved {
        Some(name) => {
            let s = saved_named(&api, name)?;
            let mut q = s["query"].as_str().unwrap_or_default().to_string();
            if !args.query.is_empty() {
                q = format!("{q} {}", args.query.join(" "));
            }
            q
        }
        None => args.query.join(" "),
    };
    if let Some(name) = &args.save {
        let body = json!({ "name": name, "query": text_query, "shared": args.shared });
        api.send("POST", "/api/v1/searches", Some(&body))?;
        if !g.json() {
            eprintln!(
                "saved as {name}{}; run it again: haven find --saved {}",
                if args.shared { " (shared)" } else { "" },
                shell_word(name)
            );
        }
    }
    let hits = api.get(&format!(
        "/api/v1/search{}",
        query(&[
            ("q", Some(text_query.clone())),
            ("tag", tag_param(&args.tag)),
            ("limit", Some(args.limit.to_string()))
        ])
    ))?;
    if g.json() {
        print_json(&hits);
        return Ok(());
    }
    let rows = hits.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("nothing matches {text_query}");
        return Ok(());
    }
    let mut table = Table::new(["KIND", "CLUSTER", "NAME", "GROUP", "TYPE", "TAGS"]);
    for h in &rows {
        let tags: Vec<String> = h["tags"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        table.row([
            text(&h["kind"]),
            text(&h["cluster"]),
            text(&h["name"]),
            text(&h["group"]),
            text(&h["type"]),
            tags.join(" "),
        ]);
    }
    table.print();
    Ok(())
}

/// A name as one shell word, for the hint printed after saving.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `haven searches [--delete NAME]`.
pub fn searches(g: &Global, delete: Option<String>) -> Result<()> {
    let api = Api::from_global(g)?;
    if let Some(name) = delete {
        let s = saved_named(&api, &name)?;
        let id = s["id"].as_i64().unwrap_or_default();
        api.send(
            "DELETE",
            &format!("/api/v1/searches/{}", encode(&id.to_string())),
            None,
        )?;
        if !g.json() {
            println!("deleted saved search {name}");
        }
        return Ok(());
    }
    let list = api.get("/api/v1/searches")?;
    if g.json() {
        print_json(&list);
        return Ok(());
    }
    let rows = list.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no saved searches; save one: haven find QUERY --save NAME");
        return Ok(());
    }
    let mut table = Table::new(["NAME", "OWNER", "SHARED", "QUERY"]);
    for s in &rows {
        table.row([
            text(&s["name"]),
            text(&s["owner"]),
            if s["shared"] == true { "yes" } else { "no" }.to_string(),
            text(&s["query"]),
        ]);
    }
    table.print();
    Ok(())
}
