//! Printing for people: aligned tables, state words in colour (only on a
//! terminal, never with `NO_COLOR`), times and ages; and JSON for scripts.

use std::io::IsTerminal;

use serde_json::Value;

/// Whether standard output gets colour.
pub fn colour_out() -> bool {
    std::io::stdout().is_terminal() && colour_allowed()
}

/// Whether standard error gets colour.
pub fn colour_err() -> bool {
    std::io::stderr().is_terminal() && colour_allowed()
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const DIM: &str = "2";
const BOLD_RED: &str = "1;31";

/// The colour a state word (or outcome) is shown in.
fn colour_of(word: &str) -> Option<&'static str> {
    Some(match word {
        "ONLINE" | "RUNNING" | "connected" | "completed" | "accepted" | "allowed" | "ok" => GREEN,
        "FAULTED"
        | "disconnected"
        | "failed"
        | "refused"
        | "denied"
        | "concurrency_violation"
        | "faulted_group"
        | "faulted_resource"
        | "faulted_system"
        | "disconnected_cluster"
        | "critical" => BOLD_RED,
        "PARTIAL" | "STARTING" | "STOPPING" | "GOING_ONLINE" | "GOING_OFFLINE" | "EXITED"
        | "stale" | "connecting" | "timed_out" | "frozen" | "disabled" | "exited_system"
        | "stale_cluster" | "frozen_group" | "frozen_system" | "warning" => YELLOW,
        "OFFLINE" | "UNKNOWN" | "-" => DIM,
        _ => return None,
    })
}

fn wrap(code: &str, text: &str) -> String {
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// "error" in red on a terminal (for standard error).
pub fn paint_error(text: &str) -> String {
    if colour_err() {
        wrap(RED, text)
    } else {
        text.to_string()
    }
}

/// A word coloured by what it says (when `colour`).
pub fn paint(word: &str, colour: bool) -> String {
    match colour_of(word) {
        Some(c) if colour => wrap(c, word),
        _ => word.to_string(),
    }
}

/// A table: a header row and rows of cells, printed with aligned columns.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text; state words coloured when `colour`.
    pub fn render(&self, colour: bool) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String], header: bool| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                let last = i + 1 == columns;
                let pad = if last { 0 } else { widths[i] - width(cell) + 2 };
                let shown = paint(cell, colour && !header);
                text.push_str(&shown);
                text.push_str(&" ".repeat(pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.headers, true);
        for row in &self.rows {
            line(row, false);
        }
        out
    }

    /// Prints the table on standard output.
    pub fn print(&self) {
        print!("{}", self.render(colour_out()));
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// Prints a JSON value, pretty, on standard output.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A string field, or "-".
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A time in ms since the epoch as local `YYYY-MM-DD HH:MM:SS`.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r writes only into the struct it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return format!("{ms}ms");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The clock part of [`time`], `HH:MM:SS`.
pub fn clock(ms: i64) -> String {
    time(ms)
        .split_once(' ')
        .map(|(_, t)| t.to_string())
        .unwrap_or_default()
}

/// How long ago `ms` was, shortly: `42s`, `5m`, `3h`, `2d`.
pub fn ago(ms: i64) -> String {
    span((now_ms() - ms).max(0) as u64 / 1000)
}

/// Seconds, shortly: `42s`, `5m`, `3h`, `2d`.
pub fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Bytes, shortly: `512 B`, `3.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let mut t = Table::new(["GROUP", "n1", "n2"]);
        t.row(["web", "ONLINE", "OFFLINE"]);
        t.row(["database", "-", "ONLINE"]);
        assert_eq!(
            t.render(false),
            "GROUP     n1      n2\nweb       ONLINE  OFFLINE\ndatabase  -       ONLINE\n"
        );
    }

    #[test]
    fn colour_wraps_state_words_only_and_keeps_alignment() {
        let mut t = Table::new(["A", "B"]);
        t.row(["ONLINE", "x"]);
        let text = t.render(true);
        assert!(text.contains("\x1b[32mONLINE\x1b[0m  x"), "{text:?}");
        assert!(text.starts_with("A       B\n"), "{text:?}");
    }

    #[test]
    fn sizes_and_spans_are_short() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(span(42), "42s");
        assert_eq!(span(600), "10m");
        assert_eq!(span(3 * 86_400), "3d");
    }
}
