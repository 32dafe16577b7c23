//! One client's SQLite connection, and the lock-down that keeps it
//! read-only.
//!
//! Each session opens its own connection: an empty in-memory main
//! database, the server's database file attached read-only (`mode=ro`) as
//! `haven_db` (WAL: readers never block the server's writer), the
//! catalog databases, and TEMP views that show only what the session's
//! [`Seen`] may see. Then the connection is locked down, in three layers:
//!
//! 1. statements that would write are refused by their first word before
//!    SQLite sees them ([`crate::rewrite::classify`]);
//! 2. an authorizer allows only reading: `SELECT`, reads of the views and
//!    the catalog, reads of `haven_db` *through the views only* (so the raw
//!    tables, e.g. `clusters.password`, and rows of other users' clusters
//!    are out of reach), and the functions of an allow-list; it denies
//!    every insert, update, delete, DDL, ATTACH, PRAGMA and transaction;
//! 3. `PRAGMA query_only = 1`, and the file itself is open read-only.
//!
//! Extension loading is never enabled.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgwire::error::ErrorInfo;
use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use crate::catalog::{self, Settings};
use crate::rewrite::{Refusal, NOT_ALLOWED, READ_ONLY};
use crate::values::{Cell, ColType};
use crate::views::{self, STORE, VIEWS};
use crate::Seen;

/// The most a query may take (a client's `SET statement_timeout` may
/// lower it).
pub const MAX_STATEMENT_TIME: Duration = Duration::from_secs(300);

/// The largest result the port holds for one query.
pub const MAX_RESULT_BYTES: usize = 256 << 20;

/// A statement SQLite accepted: its SQL (rewritten), parameters and
/// columns.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub sql: String,
    pub params: usize,
    pub names: Vec<String>,
    /// Each column's type, if declared.
    pub declared: Vec<Option<ColType>>,
}

/// What a query returned.
#[derive(Debug)]
pub struct Rows {
    pub names: Vec<String>,
    pub declared: Vec<Option<ColType>>,
    pub rows: Vec<Vec<Cell>>,
}

impl Rows {
    /// Each column's type: declared, else from its values.
    pub fn types(&self) -> Vec<ColType> {
        self.declared
            .iter()
            .enumerate()
            .map(|(i, d)| d.unwrap_or_else(|| ColType::infer(self.rows.iter().map(|r| &r[i]))))
            .collect()
    }
}

/// An open session.
pub struct Session {
    conn: Mutex<Connection>,
    pub user: String,
    pub settings: Arc<Mutex<Settings>>,
    /// Why the authorizer refused the statement being prepared.
    denial: Arc<Mutex<Option<Refusal>>>,
    /// When the running statement must stop.
    deadline: Arc<Mutex<Option<Instant>>>,
}

/// An SQLite URI for a file path (`mode=ro`).
fn read_only_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'%' | b'?' | b'#' | b' ' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(b as char),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

impl Session {
    /// Opens a session on the server's database for what `seen` sees.
    pub fn open(db: &Path, seen: Arc<dyn Seen>, pid: i32) -> Result<Session, String> {
        if !db.exists() {
            return Err(format!("the database {} does not exist", db.display()));
        }
        let user = seen.user().to_string();
        let conn = Connection::open_in_memory_with_flags(
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("cannot open a session: {e}"))?;
        let settings = Arc::new(Mutex::new(Settings::new(&user)));
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
            conn.execute(&format!("ATTACH ?1 AS {STORE}"), [read_only_uri(db)])?;
            register_visibility(&conn, seen.clone())?;
            let objects = Arc::new(catalog::create(&conn, &user)?);
            catalog::register_functions(&conn, objects, settings.clone(), &user, pid)?;
            views::register(&conn, seen.clone())?;
            conn.execute_batch(&views::create_sql())?;
            conn.execute_batch("PRAGMA query_only = 1")?;
            Ok(())
        };
        setup().map_err(|e| format!("cannot open a session on {}: {e}", db.display()))?;
        let mut conn = conn;
        let denial = Arc::new(Mutex::new(None));
        conn.authorizer(Some(authorizer(denial.clone())))
            .map_err(|e| e.to_string())?;
        let deadline: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let watch = deadline.clone();
        conn.progress_handler(
            10_000,
            Some(move || lock(&watch).is_some_and(|d| Instant::now() > d)),
        )
        .map_err(|e| e.to_string())?;
        Ok(Session {
            conn: Mutex::new(conn),
            user,
            settings,
            denial,
            deadline,
        })
    }

    /// Checks a statement (rewritten SQL): SQLite parses it and the
    /// authorizer sees everything it would touch. Nothing runs.
    pub fn prepare(&self, sql: &str) -> Result<Prepared, Box<ErrorInfo>> {
        let conn = lock(&self.conn);
        lock(&self.denial).take();
        let st = conn.prepare_cached(sql).map_err(|e| self.error(e))?;
        if !st.readonly() {
            // The authorizer and query_only stop it anyway; say it plainly.
            return Err(refusal_info(&Refusal {
                code: READ_ONLY,
                message: "cannot execute a statement that writes: Haven's SQL port only reads"
                    .into(),
            }));
        }
        let (names, declared) = describe(&st);
        Ok(Prepared {
            sql: sql.to_string(),
            params: st.parameter_count(),
            names,
            declared,
        })
    }

    /// Runs a checked statement with its parameters.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, Box<ErrorInfo>> {
        let conn = lock(&self.conn);
        lock(&self.denial).take();
        let mut st = conn.prepare_cached(sql).map_err(|e| self.error(e))?;
        if params.len() != st.parameter_count() {
            return Err(error_info(
                "08P01",
                format!(
                    "the query has {} parameters but {} were given",
                    st.parameter_count(),
                    params.len()
                ),
            ));
        }
        for (i, p) in params.iter().enumerate() {
            st.raw_bind_parameter(i + 1, p).map_err(|e| self.error(e))?;
        }
        let (names, declared) = describe(&st);
        let n = names.len();
        *lock(&self.deadline) = Some(Instant::now() + self.statement_time());
        let mut out = Vec::new();
        let mut size = 0;
        let mut rows = st.raw_query();
        let result = loop {
            match rows.next() {
                Ok(Some(row)) => {
                    let mut cells = Vec::with_capacity(n);
                    for i in 0..n {
                        let cell = Cell::from_sqlite(
                            row.get_ref(i).unwrap_or(rusqlite::types::ValueRef::Null),
                        );
                        size += cell.size();
                        cells.push(cell);
                    }
                    out.push(cells);
                    if size > MAX_RESULT_BYTES {
                        break Err(error_info(
                            "54000",
                            format!(
                                "the result is larger than {} MiB: narrow it with WHERE or LIMIT",
                                MAX_RESULT_BYTES >> 20
                            ),
                        ));
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(self.error(e)),
            }
        };
        drop(rows);
        *lock(&self.deadline) = None;
        result.map(|()| Rows {
            names,
            declared,
            rows: out,
        })
    }

    fn statement_time(&self) -> Duration {
        let asked = lock(&self.settings)
            .get("statement_timeout")
            .and_then(parse_duration_ms)
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        asked.map_or(MAX_STATEMENT_TIME, |d| d.min(MAX_STATEMENT_TIME))
    }

    /// An SQLite error as the client should see it.
    fn error(&self, e: rusqlite::Error) -> Box<ErrorInfo> {
        if let Some(refusal) = lock(&self.denial).take() {
            return refusal_info(&refusal);
        }
        let message = match &e {
            rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
            rusqlite::Error::UserFunctionError(m) => m.to_string(),
            other => other.to_string(),
        };
        let code = if message.contains("syntax error") || message.contains("incomplete input") {
            "42601"
        } else if message.contains("no such table") || message.contains("does not exist") {
            "42P01"
        } else if message.contains("no such column") {
            "42703"
        } else if message.contains("no such function")
            || message.contains("wrong number of arguments")
        {
            "42883"
        } else if message.contains("interrupted") {
            return error_info(
                "57014",
                "canceling statement due to statement timeout".into(),
            );
        } else if message.contains("not authorized") {
            NOT_ALLOWED
        } else if message.contains("readonly")
            || message.contains("read-only")
            || message.contains("cannot modify")
        {
            READ_ONLY
        } else {
            "42000"
        };
        let mut info = error_info(code, message);
        if code == "42P01" {
            info.hint = Some(format!(
                "the views are {}",
                VIEWS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
            ));
        }
        info
    }
}

/// A statement's column names and declared types.
fn describe(st: &rusqlite::Statement<'_>) -> (Vec<String>, Vec<Option<ColType>>) {
    st.columns()
        .map(|c| {
            (
                c.name().to_string(),
                c.decl_type().and_then(ColType::from_decl),
            )
        })
        .unzip()
}

/// `500`, `500ms`, `5s`, `1min` as milliseconds.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim().trim_matches('\'').to_ascii_lowercase();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim();
    let n: u64 = digits.parse().ok()?;
    Some(match t[digits.len()..].trim() {
        "" | "ms" => n,
        "s" => n * 1000,
        "min" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return None,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error for the client (boxed, as pgwire carries it).
pub fn error_info(code: &str, message: String) -> Box<ErrorInfo> {
    Box::new(ErrorInfo::new("ERROR".into(), code.into(), message))
}

pub fn refusal_info(r: &Refusal) -> Box<ErrorInfo> {
    error_info(r.code, r.message.clone())
}

/// `haven_sees_cluster(cluster)` and `haven_sees_group(cluster, grp)`,
/// bound to the session's sight.
fn register_visibility(conn: &Connection, seen: Arc<dyn Seen>) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    let s = seen.clone();
    conn.create_scalar_function("haven_sees_cluster", 1, flags, move |ctx| {
        let cluster: Option<String> = ctx.get(0)?;
        Ok(cluster.is_some_and(|c| s.cluster(&c)))
    })?;
    conn.create_scalar_function("haven_sees_group", 2, flags, move |ctx| {
        let cluster: Option<String> = ctx.get(0)?;
        let group: Option<String> = ctx.get(1)?;
        Ok(match (cluster, group) {
            (Some(c), Some(g)) => seen.group(&c, &g),
            _ => false,
        })
    })
}

/// The authorizer of a locked-down session; a refusal's reason goes to
/// `denial` for the error the client gets.
fn authorizer(
    denial: Arc<Mutex<Option<Refusal>>>,
) -> impl for<'r> FnMut(AuthContext<'r>) -> Authorization + Send + 'static {
    let views: HashSet<&'static str> = VIEWS.iter().map(|v| v.name).collect();
    let functions: HashSet<&'static str> = catalog::ALLOWED_FUNCTIONS.iter().copied().collect();
    move |ctx: AuthContext<'_>| {
        let refuse = |code: &'static str, message: String| {
            let mut d = lock(&denial);
            if d.is_none() {
                *d = Some(Refusal { code, message });
            }
            Authorization::Deny
        };
        let read_only = |what: &str| {
            refuse(
                READ_ONLY,
                format!("cannot execute {what} in a read-only transaction: Haven's SQL port only reads (SELECT)"),
            )
        };
        match ctx.action {
            AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
            AuthAction::Read { table_name, .. } => match ctx.database_name {
                // The server's tables: only through the views, which
                // filter what the session may see.
                Some(STORE) => {
                    if ctx.accessor.is_some_and(|v| views.contains(v)) {
                        Authorization::Allow
                    } else {
                        refuse(
                            NOT_ALLOWED,
                            format!(
                                "permission denied for table {STORE}.{table_name}: query the views ({})",
                                VIEWS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
                            ),
                        )
                    }
                }
                _ => Authorization::Allow,
            },
            AuthAction::Function { function_name } => {
                if functions.contains(function_name.to_ascii_lowercase().as_str()) {
                    Authorization::Allow
                } else {
                    refuse(
                        NOT_ALLOWED,
                        format!("function {function_name} is not allowed"),
                    )
                }
            }
            AuthAction::Insert { .. } => read_only("INSERT"),
            AuthAction::Update { .. } => read_only("UPDATE"),
            AuthAction::Delete { .. } => read_only("DELETE"),
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                read_only("a transaction statement")
            }
            AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
                refuse(NOT_ALLOWED, "ATTACH and DETACH are not allowed".into())
            }
            AuthAction::Pragma { pragma_name, .. } => {
                refuse(NOT_ALLOWED, format!("PRAGMA {pragma_name} is not allowed"))
            }
            _ => read_only("a statement that changes the schema"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::LinkInfo;
    use haven_model::ClusterSnapshot;

    /// Registers what the views need on a bare connection (for tests).
    pub(crate) fn register_for_tests(conn: &Connection) {
        let seen: Arc<dyn Seen> = Arc::new(Everything);
        register_visibility(conn, seen.clone()).unwrap();
        views::register(conn, seen).unwrap();
    }

    pub(crate) struct Everything;

    impl Seen for Everything {
        fn user(&self) -> &str {
            "tester"
        }
        fn cluster(&self, _: &str) -> bool {
            true
        }
        fn group(&self, _: &str, _: &str) -> bool {
            true
        }
        fn clusters(&self) -> Vec<String> {
            Vec::new()
        }
        fn visit(
            &self,
            _: Option<&str>,
            _: &mut dyn FnMut(&str, &LinkInfo, Option<&ClusterSnapshot>),
        ) {
        }
    }

    #[test]
    fn durations_are_read_like_postgresql_settings() {
        assert_eq!(parse_duration_ms("500"), Some(500));
        assert_eq!(parse_duration_ms("'5s'"), Some(5000));
        assert_eq!(parse_duration_ms("2min"), Some(120_000));
        assert_eq!(parse_duration_ms("x"), None);
    }

    #[test]
    fn paths_become_read_only_uris() {
        assert_eq!(
            read_only_uri(Path::new("/tmp/a b/h?.db")),
            "file:/tmp/a%20b/h%3F.db?mode=ro"
        );
    }
}
