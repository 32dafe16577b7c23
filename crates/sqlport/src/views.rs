//! The stable views: their columns (with types and documentation, the
//! source of `docs/sql.md`'s tables and of the catalog), their SQL, and the
//! live virtual table the current-state views read.
//!
//! History, operations and gaps are views over the server's own tables
//! (attached read-only as `haven_db`), filtered per row with the session's
//! `haven_sees_cluster` / `haven_sees_group`. The configuration and
//! current-state views read `haven_live`, a read-only virtual table that
//! asks the session's [`Seen`] for the live state when a query scans it
//! (nothing is copied into the database, and a `WHERE cluster = '...'` reads
//! that one cluster only).

use std::borrow::Cow;
use std::ffi::{c_int, CStr};
use std::sync::Arc;

use haven_model::{AttrValue, Attrs, ClusterSnapshot, Scalar};
use rusqlite::ffi;
use rusqlite::types::Value;
use rusqlite::vtab::{
    Context, CreateVTab, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConfig,
    VTabConnection, VTabCursor, VTabKind,
};

use crate::values::ColType;
use crate::{LinkInfo, Seen};

/// One column of a view.
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub doc: &'static str,
}

/// One stable view.
pub struct View {
    pub name: &'static str,
    pub doc: &'static str,
    pub columns: &'static [Column],
    /// The SELECT behind it (its columns in the order of `columns`).
    pub sql: &'static str,
}

const fn col(name: &'static str, ty: ColType, doc: &'static str) -> Column {
    Column { name, ty, doc }
}

use ColType::{Bool, Int8, Text};

/// The name of the server's database, attached read-only to each session.
pub const STORE: &str = "haven_db";

/// A time in milliseconds as PostgreSQL's `timestamptz` text.
macro_rules! iso {
    ($ms:literal) => {
        concat!(
            "strftime('%Y-%m-%d %H:%M:%f', ",
            $ms,
            " / 1000.0, 'unixepoch') || '+00'"
        )
    };
}

/// Every view, in the order the documentation lists them.
pub const VIEWS: &[View] = &[
    View {
        name: "clusters",
        doc: "Managed clusters: where the server reaches them and the state of its link.",
        columns: &[
            col("cluster", Text, "The cluster's name."),
            col("address", Text, "`host:port` of its engine, or `connector` for a cluster served by a connector."),
            col("added_ms", Int8, "When it was added (ms since the Unix epoch)."),
            col("added", Text, "The same as `timestamptz` text (UTC)."),
            col("link_mode", Text, "`direct` or `connector`; NULL while the server has no link."),
            col("link_state", Text, "`connecting`, `connected`, `stale` or `disconnected`."),
            col("link_since_ms", Int8, "When the link entered that state."),
            col("link_error", Text, "Why the last attempt or connection failed, if it did."),
            col("epoch", Int8, "The engine run the link follows."),
            col("seq", Int8, "The last event sequence number received."),
        ],
        sql: concat!(
            "SELECT c.name, c.address, c.added_ms, ", iso!("c.added_ms"), ", l.link_mode, l.link_state, ",
            "l.link_since_ms, l.link_error, l.epoch, l.seq ",
            "FROM haven_db.clusters c LEFT JOIN temp.haven_live_links l ON l.cluster = c.name ",
            "WHERE haven_sees_cluster(c.name)"
        ),
    },
    View {
        name: "systems",
        doc: "The systems (nodes) of each cluster, as configured.",
        columns: &[
            col("cluster", Text, "The cluster."),
            col("system", Text, "The system's name."),
            col("capacity", Int8, "Capacity for the Load failover policy."),
            col("frozen", Bool, "Persistently frozen in main.cf (`Frozen = 1`)."),
            col("attributes", Text, "Its other attributes, as a JSON object (`Name` or `Name@system` → value)."),
        ],
        sql: "SELECT cluster, system, capacity, frozen, attributes FROM temp.haven_live_systems",
    },
    View {
        name: "groups",
        doc: "Service groups, as configured, with their group-wide run-time status.",
        columns: &[
            col("cluster", Text, "The cluster."),
            col("service_group", Text, "The group's name."),
            col("parallel", Bool, "Online on every system at once (parallel) rather than one (failover)."),
            col("failover_policy", Text, "`Priority`, `RoundRobin` or `Load`."),
            col("auto_start", Bool, "Started at engine start (AutoStart)."),
            col("auto_fail_over", Bool, "Fails over on a fault (AutoFailOver)."),
            col("system_list", Text, "SystemList as a JSON object: system → priority (lower first)."),
            col("auto_start_list", Text, "AutoStartList as a JSON array of systems."),
            col("load", Int8, "Load the group puts on a system."),
            col("resources", Int8, "How many resources it has."),
            col("depends_on", Text, "Group dependencies as a JSON array of {group, category, location, rigidity}."),
            col("attributes", Text, "Its other attributes, as a JSON object."),
            col("enabled", Bool, "Enabled now (run time)."),
            col("freeze", Text, "Frozen now: `none`, `temporary` or `persistent`."),
        ],
        sql: concat!(
            "SELECT cluster, service_group, parallel, failover_policy, auto_start, auto_fail_over, ",
            "system_list, auto_start_list, load, resources, depends_on, attributes, enabled, freeze ",
            "FROM temp.haven_live_groups"
        ),
    },
    View {
        name: "resources",
        doc: "Resources of each service group, as configured.",
        columns: &[
            col("cluster", Text, "The cluster."),
            col("service_group", Text, "Its group."),
            col("resource", Text, "The resource's name."),
            col("resource_type", Text, "Its type (Process, IP, Mount, ...)."),
            col("critical", Bool, "A fault of it faults the group (Critical, default 1)."),
            col("enabled", Bool, "Enabled (Enabled, default 1)."),
            col("parallel", Bool, "Its group is parallel."),
            col("requires", Text, "The resources it requires (its children) as a JSON array."),
            col("attributes", Text, "Its attributes as written, as a JSON object (`Name` or `Name@system` → value)."),
        ],
        sql: concat!(
            "SELECT cluster, service_group, resource, resource_type, critical, enabled, parallel, ",
            "requires, attributes FROM temp.haven_live_resources"
        ),
    },
    View {
        name: "system_states",
        doc: "The current state of each system.",
        columns: &[
            col("cluster", Text, "The cluster."),
            col("system", Text, "The system."),
            col("state", Text, "`RUNNING`, `FAULTED` or `EXITED`."),
            col("freeze", Text, "`none`, `temporary` or `persistent`."),
        ],
        sql: "SELECT cluster, system, state, freeze FROM temp.haven_live_system_states",
    },
    View {
        name: "group_states",
        doc: "The current state of each service group on each system of its SystemList.",
        columns: &[
            col("cluster", Text, "The cluster."),
            col("service_group", Text, "The group."),
            col("system", Text, "The system."),
            col("state", Text, "`OFFLINE`, `ONLINE`, `PARTIAL`, `FAULTED`, `STARTING` or `STOPPING`."),
            col("priority", Int8, "The system's SystemList priority for this group."),
        ],
        sql: "SELECT cluster, service_group, system, state, priority FROM temp.haven_live_group_states",
    },
    View {
        name: "resource_states",
        doc: "The current state of each resource on each system of its group's SystemList.",
        columns: &[
            col("cluster", Text, "The cluster."),
            col("service_group", Text, "The resource's group."),
            col("resource", Text, "The resource."),
            col("system", Text, "The system."),
            col("state", Text, "`UNKNOWN`, `ONLINE`, `OFFLINE`, `FAULTED`, `GOING_ONLINE` or `GOING_OFFLINE`."),
        ],
        sql: "SELECT cluster, service_group, resource, system, state FROM temp.haven_live_resource_states",
    },
    View {
        name: "history",
        doc: "Every recorded event of every cluster, in the order the engines numbered them.",
        columns: &[
            col("id", Int8, "Insertion order in the database."),
            col("cluster", Text, "The cluster."),
            col("epoch", Int8, "The engine run."),
            col("seq", Int8, "The event's sequence number within that run."),
            col("time_ms", Int8, "When the engine recorded it (ms since the Unix epoch)."),
            col("time", Text, "The same as `timestamptz` text (UTC), e.g. `2025-01-31 12:00:00.000+00`."),
            col("event_type", Text, "`resource_state`, `group_state`, `system_state`, `group_freeze`, `system_freeze`, `group_enabled`, `concurrency_violation`, `failover` or `notice`."),
            col("service_group", Text, "The group it is about, if any."),
            col("resource", Text, "The resource it is about, if any."),
            col("system", Text, "The system it is about (a failover: the one left), if any."),
            col("object", Text, "The object a notice names, if any."),
            col("old_state", Text, "The state before (state events)."),
            col("new_state", Text, "The state after; for freeze and enable events the new value."),
            col("detail", Text, "The whole event as JSON (with its `type`)."),
        ],
        sql: concat!(
            "SELECT id, cluster, epoch, seq, time_ms, ", iso!("time_ms"), ", type, grp, resource, ",
            "system, object, old_state, new_state, detail FROM haven_db.history ",
            "WHERE haven_sees_cluster(cluster) AND (grp IS NULL OR haven_sees_group(cluster, grp))"
        ),
    },
    View {
        name: "operations",
        doc: "The audit of operations: who asked what of which cluster, and how it ended.",
        columns: &[
            col("id", Int8, "Its number."),
            col("cluster", Text, "The cluster."),
            col("user_name", Text, "Who asked."),
            col("verb", Text, "`group_online`, `group_switch`, `system_freeze`, ..."),
            col("service_group", Text, "The group it acts on, if any."),
            col("operation", Text, "The whole operation as JSON (with its `op`)."),
            col("requested_ms", Int8, "When it was asked (ms since the Unix epoch)."),
            col("requested", Text, "The same as `timestamptz` text (UTC)."),
            col("outcome", Text, "`accepted`, `refused`, `completed`, `failed` or `timed_out`; NULL while none is recorded."),
            col("reason", Text, "Why it was refused or failed."),
            col("finished_ms", Int8, "When the outcome was recorded."),
            col("finished", Text, "The same as `timestamptz` text (UTC)."),
        ],
        sql: concat!(
            "SELECT id, cluster, username, verb, json_extract(op, '$.group'), op, requested_ms, ",
            iso!("requested_ms"), ", outcome, reason, finished_ms, ", iso!("finished_ms"),
            " FROM haven_db.operations WHERE haven_sees_cluster(cluster) AND ",
            "(json_extract(op, '$.group') IS NULL OR haven_sees_group(cluster, json_extract(op, '$.group')))"
        ),
    },
    View {
        name: "gaps",
        doc: "Stretches of history that could not be recorded.",
        columns: &[
            col("id", Int8, "Its number."),
            col("cluster", Text, "The cluster."),
            col("after_epoch", Int8, "The last position stored before the gap (NULL: nothing was)."),
            col("after_seq", Int8, "... its sequence number."),
            col("resumed_epoch", Int8, "Where recording resumed."),
            col("resumed_seq", Int8, "... its sequence number."),
            col("time_ms", Int8, "When the server noticed (ms since the Unix epoch)."),
            col("time", Text, "The same as `timestamptz` text (UTC)."),
            col("reason", Text, "Why events are missing."),
        ],
        sql: concat!(
            "SELECT id, cluster, after_epoch, after_seq, resumed_epoch, resumed_seq, time_ms, ",
            iso!("time_ms"), ", reason FROM haven_db.gaps WHERE haven_sees_cluster(cluster)"
        ),
    },
    View {
        name: "alerts",
        doc: "Alerts raised by the server (empty until alerting is built; the columns are stable).",
        columns: &[
            col("id", Int8, "Its number."),
            col("time_ms", Int8, "When it was raised (ms since the Unix epoch)."),
            col("time", Text, "The same as `timestamptz` text (UTC)."),
            col("cluster", Text, "The cluster."),
            col("severity", Text, "`info`, `warning`, `error` or `critical`."),
            col("object", Text, "The object it is about (group, resource or system), if any."),
            col("message", Text, "What happened."),
            col("acknowledged_by", Text, "Who acknowledged it; NULL while nobody has."),
        ],
        sql: concat!(
            "SELECT id, time_ms, time, cluster, severity, object, message, acknowledged_by ",
            "FROM temp.haven_live_alerts"
        ),
    },
];

/// The SQL that creates the views in a session (TEMP: they belong to the
/// session's connection only, which is read-only).
pub fn create_sql() -> String {
    let mut sql = String::new();
    for kind in Kind::ALL {
        sql.push_str(&format!(
            "CREATE VIRTUAL TABLE temp.haven_live_{0} USING haven_live({0});\n",
            kind.name()
        ));
    }
    for view in VIEWS {
        let names: Vec<&str> = view.columns.iter().map(|c| c.name).collect();
        sql.push_str(&format!(
            "CREATE TEMP VIEW {}({}) AS {};\n",
            view.name,
            names.join(", "),
            view.sql
        ));
    }
    sql
}

/// The tables of the live virtual table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Links,
    Systems,
    Groups,
    Resources,
    SystemStates,
    GroupStates,
    ResourceStates,
    Alerts,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Links,
        Kind::Systems,
        Kind::Groups,
        Kind::Resources,
        Kind::SystemStates,
        Kind::GroupStates,
        Kind::ResourceStates,
        Kind::Alerts,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Links => "links",
            Kind::Systems => "systems",
            Kind::Groups => "groups",
            Kind::Resources => "resources",
            Kind::SystemStates => "system_states",
            Kind::GroupStates => "group_states",
            Kind::ResourceStates => "resource_states",
            Kind::Alerts => "alerts",
        }
    }

    /// Its declared columns; the first is always `cluster` (but for
    /// alerts, which have no rows).
    fn schema(self) -> &'static CStr {
        match self {
            Kind::Links => c"CREATE TABLE x(cluster TEXT, link_mode TEXT, link_state TEXT, link_since_ms INTEGER, link_error TEXT, epoch INTEGER, seq INTEGER)",
            Kind::Systems => c"CREATE TABLE x(cluster TEXT, system TEXT, capacity INTEGER, frozen BOOLEAN, attributes TEXT)",
            Kind::Groups => c"CREATE TABLE x(cluster TEXT, service_group TEXT, parallel BOOLEAN, failover_policy TEXT, auto_start BOOLEAN, auto_fail_over BOOLEAN, system_list TEXT, auto_start_list TEXT, load INTEGER, resources INTEGER, depends_on TEXT, attributes TEXT, enabled BOOLEAN, freeze TEXT)",
            Kind::Resources => c"CREATE TABLE x(cluster TEXT, service_group TEXT, resource TEXT, resource_type TEXT, critical BOOLEAN, enabled BOOLEAN, parallel BOOLEAN, requires TEXT, attributes TEXT)",
            Kind::SystemStates => c"CREATE TABLE x(cluster TEXT, system TEXT, state TEXT, freeze TEXT)",
            Kind::GroupStates => c"CREATE TABLE x(cluster TEXT, service_group TEXT, system TEXT, state TEXT, priority INTEGER)",
            Kind::ResourceStates => c"CREATE TABLE x(cluster TEXT, service_group TEXT, resource TEXT, system TEXT, state TEXT)",
            Kind::Alerts => c"CREATE TABLE x(id INTEGER, time_ms INTEGER, time TEXT, cluster TEXT, severity TEXT, object TEXT, message TEXT, acknowledged_by TEXT)",
        }
    }

    /// The rows of one cluster, groups `seen` may not see left out.
    fn rows(
        self,
        name: &str,
        link: &LinkInfo,
        snap: Option<&ClusterSnapshot>,
        seen: &dyn Seen,
        out: &mut Vec<Vec<Value>>,
    ) {
        let c = || Value::Text(name.to_string());
        if self == Kind::Links {
            out.push(vec![
                c(),
                Value::Text(link.mode.clone()),
                Value::Text(link.state.clone()),
                Value::Integer(link.since_ms),
                opt_text(link.error.as_deref()),
                link.epoch.map_or(Value::Null, |e| Value::Integer(e as i64)),
                Value::Integer(link.seq as i64),
            ]);
            return;
        }
        let Some(snap) = snap else { return };
        let config = &snap.config;
        match self {
            Kind::Links | Kind::Alerts => {}
            Kind::Systems => {
                for s in &config.systems {
                    out.push(vec![
                        c(),
                        text(&s.name),
                        Value::Integer(s.capacity),
                        boolean(s.frozen),
                        Value::Text(attrs_json(&s.attributes)),
                    ]);
                }
            }
            Kind::SystemStates => {
                for s in &snap.systems {
                    out.push(vec![
                        c(),
                        text(&s.name),
                        text(s.state.as_str()),
                        text(s.freeze.as_str()),
                    ]);
                }
            }
            Kind::Groups => {
                for g in config.groups.iter().filter(|g| seen.group(name, &g.name)) {
                    let status = snap.group(&g.name);
                    let system_list: serde_json::Map<String, serde_json::Value> = g
                        .system_list
                        .iter()
                        .map(|(s, p)| (s.to_string(), serde_json::Value::from(*p)))
                        .collect();
                    let depends: Vec<serde_json::Value> = g
                        .group_dependencies
                        .iter()
                        .map(|d| {
                            serde_json::json!({
                                "group": &*d.child,
                                "category": d.category.as_str(),
                                "location": d.location.as_str(),
                                "rigidity": d.rigidity.as_str(),
                            })
                        })
                        .collect();
                    out.push(vec![
                        c(),
                        text(&g.name),
                        boolean(g.parallel),
                        text(g.failover_policy.as_str()),
                        boolean(g.auto_start),
                        boolean(g.auto_fail_over),
                        Value::Text(serde_json::Value::Object(system_list).to_string()),
                        Value::Text(
                            serde_json::json!(g
                                .auto_start_list
                                .iter()
                                .map(|s| &**s)
                                .collect::<Vec<_>>())
                            .to_string(),
                        ),
                        Value::Integer(g.load),
                        Value::Integer(g.resources.len() as i64),
                        Value::Text(serde_json::Value::Array(depends).to_string()),
                        Value::Text(attrs_json(&g.attributes)),
                        status.map_or(Value::Null, |s| boolean(s.enabled)),
                        status.map_or(Value::Null, |s| text(s.freeze.as_str())),
                    ]);
                }
            }
            Kind::Resources => {
                for g in config.groups.iter().filter(|g| seen.group(name, &g.name)) {
                    for r in &g.resources {
                        let requires: Vec<&str> = g
                            .dependencies
                            .iter()
                            .filter(|d| d.parent == r.name)
                            .map(|d| &*d.child)
                            .collect();
                        out.push(vec![
                            c(),
                            text(&g.name),
                            text(&r.name),
                            text(&r.type_name),
                            boolean(config.is_critical(r)),
                            boolean(config.resource_int(r, "Enabled", 1) != 0),
                            boolean(g.parallel),
                            Value::Text(serde_json::json!(requires).to_string()),
                            Value::Text(attrs_json(&r.attributes)),
                        ]);
                    }
                }
            }
            Kind::GroupStates => {
                for g in snap.groups.iter().filter(|g| seen.group(name, &g.name)) {
                    let priority = |system: &str| {
                        config
                            .group(&g.name)
                            .and_then(|gc| gc.priority(system))
                            .map_or(Value::Null, |p| Value::Integer(i64::from(p)))
                    };
                    for (system, state) in &g.states {
                        out.push(vec![
                            c(),
                            text(&g.name),
                            text(system),
                            text(state.as_str()),
                            priority(system),
                        ]);
                    }
                }
            }
            Kind::ResourceStates => {
                for g in snap.groups.iter().filter(|g| seen.group(name, &g.name)) {
                    for r in &g.resources {
                        for (system, state) in &r.states {
                            out.push(vec![
                                c(),
                                text(&g.name),
                                text(&r.name),
                                text(system),
                                text(state.as_str()),
                            ]);
                        }
                    }
                }
            }
        }
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt_text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

fn boolean(b: bool) -> Value {
    Value::Integer(i64::from(b))
}

/// Attributes as a JSON object: `Name` (or `Name@system` for a localised
/// value) → a string, a number, an array or an object.
fn attrs_json(attrs: &Attrs) -> String {
    let scalar = |s: &Scalar| match s {
        Scalar::Int(i) => serde_json::Value::from(*i),
        Scalar::Str(s) => serde_json::Value::from(s.as_str()),
    };
    let map: serde_json::Map<String, serde_json::Value> = attrs
        .iter()
        .map(|a| {
            let key = match &a.system {
                Some(system) => format!("{}@{system}", a.name),
                None => a.name.clone(),
            };
            let value = match &a.value {
                AttrValue::Scalar(s) => scalar(s),
                AttrValue::List(items) => items.iter().map(scalar).collect(),
                AttrValue::Assoc(pairs) => serde_json::Value::Object(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_text(), scalar(v)))
                        .collect(),
                ),
            };
            (key, value)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Registers the `haven_live` module for one session.
pub fn register(conn: &rusqlite::Connection, seen: Arc<dyn Seen>) -> rusqlite::Result<()> {
    const MODULE: Module<'static, LiveTab> = Module::read_only_module();
    conn.create_module(c"haven_live", &MODULE, Some(seen))
}

/// One table of the live state (SQLite's vtab object comes first).
#[repr(C)]
struct LiveTab {
    base: ffi::sqlite3_vtab,
    kind: Kind,
    seen: Arc<dyn Seen>,
}

/// `idx_num` when a `cluster = ?` constraint is passed to `filter`.
const ONE_CLUSTER: c_int = 1;

// SAFETY: `LiveTab` is #[repr(C)] with the sqlite3_vtab first, as rusqlite
// requires.
unsafe impl<'vtab> VTab<'vtab> for LiveTab {
    type Aux = Arc<dyn Seen>;
    type Cursor = LiveCursor<'vtab>;

    fn connect(
        db: &mut VTabConnection,
        aux: Option<&Self::Aux>,
        _module_name: &[u8],
        _database_name: &[u8],
        _table_name: &[u8],
        args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, CStr>, Self)> {
        let wanted = args
            .first()
            .map(|a| String::from_utf8_lossy(a).trim().to_string());
        let kind = Kind::ALL
            .into_iter()
            .find(|k| wanted.as_deref() == Some(k.name()))
            .ok_or_else(|| {
                rusqlite::Error::ModuleError(format!("haven_live: unknown table {wanted:?}"))
            })?;
        let seen = aux
            .cloned()
            .ok_or_else(|| rusqlite::Error::ModuleError("haven_live: no session".into()))?;
        // Usable in the session's views; it reads nothing but the live state.
        db.config(VTabConfig::Innocuous)?;
        Ok((
            Cow::Borrowed(kind.schema()),
            LiveTab {
                base: ffi::sqlite3_vtab::default(),
                kind,
                seen,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        let cluster_eq = (self.kind != Kind::Alerts)
            .then(|| {
                info.constraints().position(|c| {
                    c.is_usable()
                        && c.column() == 0
                        && c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ
                })
            })
            .flatten();
        match cluster_eq {
            Some(i) => {
                let mut usage = info.constraint_usage(i);
                usage.set_argv_index(1);
                info.set_idx_num(ONE_CLUSTER);
                info.set_estimated_cost(10.0);
                info.set_estimated_rows(100);
            }
            None => {
                info.set_idx_num(0);
                info.set_estimated_cost(1_000_000.0);
                info.set_estimated_rows(100_000);
            }
        }
        Ok(true)
    }

    fn open(&'vtab mut self) -> rusqlite::Result<LiveCursor<'vtab>> {
        Ok(LiveCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            tab: self,
            pending: Vec::new(),
            rows: Vec::new(),
            pos: 0,
            rowid: 0,
        })
    }
}

impl CreateVTab<'_> for LiveTab {
    const KIND: VTabKind = VTabKind::Default;
}

/// A scan of a live table: the rows of one cluster at a time, built
/// when the scan reaches it (so a scan of a large fleet holds one
/// cluster's rows, and the fleet's lock is taken per cluster).
#[repr(C)]
struct LiveCursor<'vtab> {
    base: ffi::sqlite3_vtab_cursor,
    tab: &'vtab LiveTab,
    /// The clusters still to read, last first.
    pending: Vec<String>,
    rows: Vec<Vec<Value>>,
    pos: usize,
    rowid: i64,
}

impl LiveCursor<'_> {
    /// Moves to the next cluster that has rows, if any.
    fn load(&mut self) {
        self.rows.clear();
        self.pos = 0;
        let tab = self.tab;
        while self.rows.is_empty() {
            let Some(name) = self.pending.pop() else {
                return;
            };
            let rows = &mut self.rows;
            tab.seen.visit(Some(&name), &mut |n, link, snap| {
                if n == name && tab.seen.cluster(n) {
                    tab.kind.rows(n, link, snap, tab.seen.as_ref(), rows);
                }
            });
        }
    }
}

// SAFETY: `LiveCursor` is #[repr(C)] with the sqlite3_vtab_cursor first.
unsafe impl VTabCursor for LiveCursor<'_> {
    fn filter(
        &mut self,
        idx_num: c_int,
        _idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        self.pending = if self.tab.kind == Kind::Alerts {
            Vec::new()
        } else if idx_num == ONE_CLUSTER {
            // `cluster = NULL` or a number matches nothing.
            args.get::<Option<String>>(0)
                .ok()
                .flatten()
                .into_iter()
                .collect()
        } else {
            let mut names = self.tab.seen.clusters();
            names.reverse();
            names
        };
        self.rowid = 0;
        self.load();
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.pos += 1;
        self.rowid += 1;
        if self.pos >= self.rows.len() {
            self.load();
        }
        Ok(())
    }

    fn eof(&self) -> bool {
        self.pos >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let value = self
            .rows
            .get(self.pos)
            .and_then(|r| r.get(i as usize))
            .cloned()
            .unwrap_or(Value::Null);
        ctx.set_result(value)
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.rowid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_names_as_many_columns_as_its_select_returns() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "ATTACH ':memory:' AS haven_db;
             CREATE TABLE haven_db.clusters(name TEXT, address TEXT, username TEXT, password TEXT, added_ms INTEGER);
             CREATE TABLE haven_db.history(id INTEGER, cluster TEXT, epoch INTEGER, seq INTEGER, time_ms INTEGER, type TEXT, grp TEXT, resource TEXT, system TEXT, object TEXT, old_state TEXT, new_state TEXT, detail TEXT);
             CREATE TABLE haven_db.operations(id INTEGER, cluster TEXT, username TEXT, verb TEXT, op TEXT, requested_ms INTEGER, outcome TEXT, reason TEXT, finished_ms INTEGER);
             CREATE TABLE haven_db.gaps(id INTEGER, cluster TEXT, after_epoch INTEGER, after_seq INTEGER, resumed_epoch INTEGER, resumed_seq INTEGER, time_ms INTEGER, reason TEXT);",
        )
        .unwrap();
        crate::session::tests::register_for_tests(&conn);
        conn.execute_batch(&create_sql()).unwrap();
        for view in VIEWS {
            let st = conn
                .prepare(&format!("SELECT * FROM {}", view.name))
                .unwrap();
            let names: Vec<&str> = st.column_names().collect();
            let expected: Vec<&str> = view.columns.iter().map(|c| c.name).collect();
            assert_eq!(names, expected, "{}", view.name);
        }
    }
}
