//! Reading the fleet: `clusters`, `status`, `faults`, `history`,
//! `watch`. Each prints the API's JSON with `--json`, a table otherwise.

use std::time::Duration;

use haven_model::{ClusterSnapshot, Event, EventKind, Freeze};
use serde_json::Value;

use super::http::{encode, query, Api};
use super::output::{self, print_json, text, Table};
use super::{Failure, Global, Result};

pub fn clusters(g: &Global, tag: Option<String>) -> Result<()> {
    let api = Api::from_global(g)?;
    let list = api.get(&format!(
        "/api/v1/clusters{}",
        query(&[("tag", tag.clone())])
    ))?;
    if g.json() {
        print_json(&list);
        return Ok(());
    }
    let rows = list.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        match tag {
            Some(t) => println!("no clusters tagged {t}"),
            None => println!(
                "no clusters (or none you hold a role on); add one: haven cluster add NAME HOST:PORT"
            ),
        }
        return Ok(());
    }
    let mut headers = vec![
        "NAME",
        "LINK",
        "SINCE",
        "MODE",
        "SYSTEMS",
        "GROUPS",
        "RESOURCES",
        "FAULTED",
        "TAGS",
    ];
    if g.wide() {
        headers.extend(["ADDRESS", "SEQ", "ERROR"]);
    }
    let mut table = Table::new(headers);
    for c in &rows {
        let link = &c["link"];
        let mut row = vec![
            text(&c["name"]),
            text(&link["state"]),
            link["since_ms"]
                .as_i64()
                .map(output::ago)
                .unwrap_or_default(),
            text(&link["mode"]),
            text(&c["systems"]),
            text(&c["groups"]),
            text(&c["resources"]),
            text(&c["faulted_groups"]),
            c["tags"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        ];
        if g.wide() {
            row.extend([
                text(&link["address"]),
                text(&link["seq"]),
                text(&link["last_error"]),
            ]);
        }
        table.row(row);
    }
    table.print();
    Ok(())
}

/// Counts by state, most telling first: `11 connected, 1 disconnected`.
fn counts(map: &Value) -> String {
    let mut pairs: Vec<(String, u64)> = map
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if pairs.is_empty() {
        return "none".into();
    }
    pairs
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn summary(g: &Global, at: Option<&str>) -> Result<()> {
    let api = Api::from_global(g)?;
    let limit = if g.wide() { 1000 } else { 20 };
    let s = match at {
        None => api.get(&format!("/api/v1/summary?limit={limit}"))?,
        Some(at) => api.get(&format!(
            "/api/v1/past/summary?limit={limit}&at={}",
            encode(at)
        ))?,
    };
    if g.json() {
        print_json(&s);
        return Ok(());
    }
    let s = match at {
        None => s,
        Some(_) => {
            println!(
                "the fleet as recorded at {} (not live; whether links were up is not recorded)",
                s["at_ms"].as_i64().map(output::time).unwrap_or_default()
            );
            if let Some(missing) = s["unrecorded"].as_array().filter(|m| !m.is_empty()) {
                let names: Vec<String> = missing.iter().map(text).collect();
                println!("not recorded yet then: {}", names.join(", "));
            }
            s["summary"].clone()
        }
    };
    let mut table = Table::new(["", "", ""]);
    let mut line = |what: &str, total: &Value, by: &Value| {
        table.row([what.to_string(), text(total), counts(by)]);
    };
    line("clusters", &s["clusters"], &s["links"]);
    let systems: u64 = s["systems"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    line("systems", &Value::from(systems), &s["systems"]);
    line("groups", &s["groups"], &s["group_states"]);
    line("resources", &s["resources"], &s["resource_states"]);
    // A key-value block, not a table: no header line.
    let text_block = table.render(output::colour_out());
    print!(
        "{}",
        text_block.split_once('\n').map_or("", |(_, rest)| rest)
    );
    let total = s["attention_total"].as_u64().unwrap_or(0);
    let items = s["attention"].as_array().cloned().unwrap_or_default();
    if total == 0 {
        println!("\nnothing needs attention");
        return Ok(());
    }
    println!(
        "\nneeds attention: {total}{}",
        if (items.len() as u64) < total {
            format!(" (the first {}; haven faults lists all)", items.len())
        } else {
            String::new()
        }
    );
    attention_table(&items).print();
    Ok(())
}

fn attention_table(items: &[Value]) -> Table {
    let mut table = Table::new(["KIND", "CLUSTER", "OBJECT", "SYSTEM"]);
    for a in items {
        table.row([
            text(&a["kind"]),
            text(&a["cluster"]),
            text(&a["object"]),
            text(&a["system"]),
        ]);
    }
    table
}

pub fn faults(g: &Global, limit: usize, tag: Option<String>) -> Result<()> {
    let api = Api::from_global(g)?;
    let f = api.get(&format!(
        "/api/v1/faults{}",
        query(&[("limit", Some(limit.to_string())), ("tag", tag)])
    ))?;
    if g.json() {
        print_json(&f);
        return Ok(());
    }
    let items = f["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("nothing needs attention");
        return Ok(());
    }
    attention_table(&items).print();
    let total = f["total"].as_u64().unwrap_or(0);
    if total > items.len() as u64 {
        println!("({} of {total}; --limit shows more)", items.len());
    }
    Ok(())
}

/// `haven status CLUSTER`: the cluster's link, its systems, and its
/// groups x systems like `hastatus -sum`.
pub fn status(g: &Global, cluster: &str, at: Option<&str>) -> Result<()> {
    let api = Api::from_global(g)?;
    if let Some(at) = at {
        return past_status(g, &api, cluster, at);
    }
    let detail = api.get(&format!("/api/v1/clusters/{}", encode(cluster)))?;
    if g.json() {
        print_json(&detail);
        return Ok(());
    }
    let link = &detail["link"];
    println!(
        "cluster {cluster}: {} since {} ({}, {}){}",
        text(&link["state"]),
        link["since_ms"]
            .as_i64()
            .map(output::time)
            .unwrap_or_default(),
        text(&link["mode"]),
        text(&link["address"]),
        link["last_error"]
            .as_str()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    );
    if detail["snapshot"].is_null() {
        println!("no state yet: the server has not synchronised with this cluster");
        return Ok(());
    }
    let snap: ClusterSnapshot = serde_json::from_value(detail["snapshot"].clone())
        .map_err(|e| Failure::error(format!("cannot read the cluster's state: {e}")))?;
    print!("{}", render_status(&snap, g.wide(), output::colour_out()));
    Ok(())
}

/// `haven status CLUSTER --at TIME`: the state rebuilt from history.
fn past_status(g: &Global, api: &Api, cluster: &str, at: &str) -> Result<()> {
    let past = api.get(&format!(
        "/api/v1/past/clusters/{}?at={}",
        encode(cluster),
        encode(at)
    ))?;
    if g.json() {
        print_json(&past);
        return Ok(());
    }
    let time = |v: &Value| v.as_i64().map(output::time).unwrap_or_default();
    println!(
        "cluster {cluster} as recorded at {} (not live): engine run {}, rebuilt from the checkpoint of {}{}",
        time(&past["at_ms"]),
        text(&past["epoch"]),
        time(&past["checkpoint_ms"]),
        if past["last_event_ms"].is_null() {
            String::new()
        } else {
            format!(" and events up to {}", time(&past["last_event_ms"]))
        }
    );
    let snap: ClusterSnapshot = serde_json::from_value(past["snapshot"].clone())
        .map_err(|e| Failure::error(format!("cannot read the cluster's state: {e}")))?;
    print!("{}", render_status(&snap, g.wide(), output::colour_out()));
    Ok(())
}

fn freeze_mark(f: Freeze) -> &'static str {
    match f {
        Freeze::None => "",
        Freeze::Temporary => "frozen",
        Freeze::Persistent => "frozen(persistent)",
    }
}

/// The systems table, then groups x systems (with their resources when
/// `wide`).
pub fn render_status(snap: &ClusterSnapshot, wide: bool, colour: bool) -> String {
    let mut systems = Table::new(["SYSTEM", "STATE", "FROZEN"]);
    for s in &snap.systems {
        let frozen = freeze_mark(s.freeze);
        systems.row([
            s.name.to_string(),
            s.state.to_string(),
            if frozen.is_empty() { "-" } else { frozen }.to_string(),
        ]);
    }
    let mut headers = vec!["GROUP".to_string()];
    headers.extend(snap.systems.iter().map(|s| s.name.to_string()));
    headers.push("FLAGS".into());
    let mut groups = Table::new(headers);
    for group in &snap.groups {
        let mut row = vec![group.name.to_string()];
        for s in &snap.systems {
            row.push(
                group
                    .states
                    .iter()
                    .find(|(sys, _)| sys == &s.name)
                    .map(|(_, st)| st.to_string())
                    .unwrap_or_else(|| "-".into()),
            );
        }
        let mut flags: Vec<&str> = Vec::new();
        if group.freeze.is_frozen() {
            flags.push(freeze_mark(group.freeze));
        }
        if !group.enabled {
            flags.push("disabled");
        }
        row.push(flags.join(" "));
        groups.row(row);
        if wide {
            for r in &group.resources {
                let mut row = vec![format!("  {}", r.name)];
                for s in &snap.systems {
                    row.push(
                        r.states
                            .iter()
                            .find(|(sys, _)| sys == &s.name)
                            .map(|(_, st)| st.to_string())
                            .unwrap_or_else(|| "-".into()),
                    );
                }
                row.push(String::new());
                groups.row(row);
            }
        }
    }
    let mut out = systems.render(colour);
    out.push('\n');
    if groups.is_empty() {
        out.push_str("no service groups\n");
    } else {
        out.push_str(&groups.render(colour));
    }
    out
}

/// `--cluster C OBJECT`, or `CLUSTER/OBJECT` alone.
fn scope(cluster: Option<String>, object: Option<String>) -> (Option<String>, Option<String>) {
    match (cluster, object) {
        (None, Some(o)) if o.contains('/') => {
            let (c, o) = o.split_once('/').unwrap_or_default();
            (Some(c.to_string()), Some(o.to_string()))
        }
        other => other,
    }
}

pub fn history(
    g: &Global,
    object: Option<String>,
    cluster: Option<String>,
    since: Option<Duration>,
    limit: usize,
) -> Result<()> {
    let (cluster, object) = scope(cluster, object);
    let api = Api::from_global(g)?;
    let since_ms = since.map(|d| output::now_ms() - d.as_millis() as i64);
    let rows = api.get(&format!(
        "/api/v1/history{}",
        query(&[
            ("cluster", cluster),
            ("object", object),
            ("since_ms", since_ms.map(|v| v.to_string())),
            ("limit", Some(limit.to_string())),
        ])
    ))?;
    if g.json() {
        print_json(&rows);
        return Ok(());
    }
    let mut rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no recorded changes match");
        return Ok(());
    }
    // The API answers newest first; people read a log oldest first.
    rows.reverse();
    let mut headers = vec!["TIME", "CLUSTER", "EVENT"];
    if g.wide() {
        headers.extend(["EPOCH", "SEQ"]);
    }
    let mut table = Table::new(headers);
    for r in &rows {
        let event = serde_json::from_value::<EventKind>(r.clone())
            .map(|k| k.to_string())
            .unwrap_or_else(|_| text(&r["type"]));
        let mut row = vec![
            r["time_ms"].as_i64().map(output::time).unwrap_or_default(),
            text(&r["cluster"]),
            event,
        ];
        if g.wide() {
            row.extend([text(&r["epoch"]), text(&r["seq"])]);
        }
        table.row(row);
    }
    table.print();
    Ok(())
}

/// How long a live stream may stay silent (the server sends a keep-alive
/// every 15 s) before it counts as lost.
pub const STREAM_IDLE: Duration = Duration::from_secs(60);

pub fn watch(g: &Global, cluster: Option<String>, object: Option<String>) -> Result<()> {
    let (cluster, object) = scope(cluster, object);
    let api = Api::from_global(g)?;
    let stream = api.events(
        &format!(
            "/api/v1/events{}",
            query(&[("cluster", cluster), ("object", object)])
        ),
        STREAM_IDLE,
    )?;
    if !g.json() {
        eprintln!("watching {} (Ctrl-C stops)", api.label);
    }
    let colour = output::colour_out();
    for item in stream {
        let event = item.map_err(|e| api.unreachable(e))?;
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        if g.json() {
            // One JSON object per line: the update, named by its kind.
            let line = match data {
                Value::Object(mut m) => {
                    m.entry("kind")
                        .or_insert_with(|| Value::from(event.event.clone()));
                    Value::Object(m)
                }
                other => serde_json::json!({ "kind": event.event, "data": other }),
            };
            println!("{line}");
            continue;
        }
        for line in describe_update(&event.event, &data, colour) {
            println!("{line}");
        }
    }
    Err(Failure::new(
        super::Exit::Unreachable,
        format!("{} closed the event stream; is it stopping?", api.label),
    ))
}

/// One line per change in a stream update.
pub fn describe_update(kind: &str, data: &Value, colour: bool) -> Vec<String> {
    let cluster = text(&data["cluster"]);
    let now = output::clock(output::now_ms());
    let paint = |word: String| output::paint(&word, colour);
    match kind {
        "events" => data["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| serde_json::from_value::<Event>(e.clone()).ok())
            .map(|e| {
                let to = match &e.kind {
                    EventKind::ResourceState { to, .. } => Some(to.to_string()),
                    EventKind::GroupState { to, .. } => Some(to.to_string()),
                    EventKind::SystemState { to, .. } => Some(to.to_string()),
                    _ => None,
                };
                let line = e.kind.to_string();
                let line = match to {
                    Some(to) if line.ends_with(&to) => {
                        format!("{}{}", &line[..line.len() - to.len()], paint(to))
                    }
                    _ => line,
                };
                format!("{}  {cluster}  {line}", output::clock(e.time_ms))
            })
            .collect(),
        "link" => vec![format!(
            "{now}  {cluster}  link {}{}",
            paint(text(&data["status"]["state"])),
            data["status"]["last_error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )],
        "resynced" => vec![format!(
            "{now}  {cluster}  state re-read from the engine (at sequence {})",
            text(&data["seq"])
        )],
        "added" => vec![format!("{now}  {cluster}  cluster added")],
        "removed" => vec![format!("{now}  {cluster}  cluster removed")],
        "lagged" => vec![format!(
            "{now}  (this watch fell behind and skipped updates; haven status shows the current state)"
        )],
        other => vec![format!("{now}  {other} {data}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_put_the_biggest_first_and_drop_zeros() {
        let v = serde_json::json!({"connected": 11, "disconnected": 1, "stale": 0});
        assert_eq!(counts(&v), "11 connected, 1 disconnected");
        assert_eq!(counts(&serde_json::json!({})), "none");
    }

    #[test]
    fn group_events_read_as_one_line_each() {
        let data = serde_json::json!({
            "kind": "events",
            "cluster": "kappa",
            "events": [{"seq": 3, "time_ms": 0, "type": "group_state", "group": "web",
                        "system": "n2", "from": "STARTING", "to": "ONLINE"}]
        });
        let lines = describe_update("events", &data, false);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with("kappa  group web on n2: STARTING -> ONLINE"),
            "{lines:?}"
        );
    }
}
