//! Building pages: escaping, the page shell, state badges, operation
//! buttons. Everything that goes into HTML passes through [`esc`].

use std::fmt::Write;

use haven_model::Operation;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment for a link.
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A state as a badge: `<span class="st st-faulted">FAULTED</span>`.
pub fn badge(state: &str) -> String {
    format!(
        "<span class=\"st st-{}\">{}</span>",
        esc(&state.to_ascii_lowercase().replace('_', "-")),
        esc(state)
    )
}

/// What the page shell needs to know.
pub struct Shell<'a> {
    pub title: &'a str,
    pub user: &'a str,
    pub admin: bool,
    /// The live event stream to follow (None: a static page).
    pub live: Option<String>,
    /// Open alerts the user may see that nobody acknowledged (None:
    /// alerts are off, no link).
    pub alerts: Option<usize>,
}

/// The whole page around `main`.
pub fn page(shell: &Shell<'_>, main: &str) -> String {
    let live = shell
        .live
        .as_deref()
        .map(|url| format!(" data-live=\"{}\"", esc(url)))
        .unwrap_or_default();
    let admin = if shell.admin {
        "<a href=\"/admin\">Administration</a>"
    } else {
        ""
    };
    let alerts = match shell.alerts {
        None => String::new(),
        Some(0) => "<a href=\"/alerts\" id=\"navalerts\">Alerts</a>".into(),
        Some(n) => format!(
            "<a href=\"/alerts\" id=\"navalerts\" title=\"{n} open alerts nobody acknowledged\">Alerts <span class=\"count\">{n}</span></a>"
        ),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · Haven</title><link rel=\"stylesheet\" href=\"/assets/haven.css\">\
<script src=\"/assets/haven.js\" defer></script></head>\
<body{live}><header><nav><a class=\"brand\" href=\"/\">Haven</a>\
<a href=\"/\">Summary</a><a href=\"/clusters\">Clusters</a><a href=\"/faults\">Faults</a>{alerts}<a href=\"/reports\">Reports</a><a href=\"/audit\">Audit</a><a href=\"/past\">Time travel</a>{admin}\
<form class=\"find\" action=\"/find\"><input name=\"q\" placeholder=\"Find: names, key=value, state:faulted, kind:group…\" aria-label=\"Find\"></form>\
<span class=\"who\">{user}</span>\
<button type=\"button\" id=\"theme\" title=\"Dark or light\" aria-label=\"Switch between dark and light\">◐</button>\
<button type=\"button\" id=\"logout\">Log out</button></nav>\
<div id=\"livestate\" class=\"livestate\" aria-live=\"polite\"></div></header>\
<main id=\"main\">{main}</main>\
<aside id=\"cmdlog\" aria-label=\"Command log\"><h2>Command log</h2><ol></ol></aside>\
<dialog id=\"confirm\" aria-labelledby=\"confirmtext\"><form method=\"dialog\">\
<p id=\"confirmtext\"></p><p class=\"muted\">The same from a shell: <code id=\"confirmcli\"></code></p>\
<p class=\"buttons\"><button value=\"cancel\" id=\"confirmno\">Cancel</button> \
<button value=\"ok\" id=\"confirmyes\" class=\"danger\">Go ahead</button></p></form></dialog>\
</body></html>\n",
        title = esc(shell.title),
        user = esc(shell.user),
    )
}

/// A table from a header row and rows of already escaped cells.
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table class=\"{class}\"><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A button that runs `op` on `cluster` (the page's script posts it,
/// shows progress until the final state, and logs the equivalent `haven`
/// command). `confirm`: asked first, for disruptive operations.
pub fn op_button(label: &str, cluster: &str, op: &Operation, confirm: Option<&str>) -> String {
    let json = serde_json::to_string(op).unwrap_or_default();
    // The console waits for the final state, as `--wait` does.
    let cli = super::cli::operation(cluster, op)
        .map(|c| format!("{c} --wait"))
        .unwrap_or_default();
    let confirm = confirm
        .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
        .unwrap_or_default();
    format!(
        "<button type=\"button\" class=\"op\" data-cluster=\"{}\" data-op=\"{}\" data-cli=\"{}\"{confirm}>{}</button>",
        esc(cluster),
        esc(&json),
        esc(&cli),
        esc(label)
    )
}

/// The red line above a page whose states are not live.
pub fn banner(text: &str) -> String {
    format!("<div class=\"banner\" role=\"alert\">{}</div>", esc(text))
}

/// `5 s ago`, `3 min ago`, ...
pub fn ago(ms: i64, now_ms: i64) -> String {
    let secs = ((now_ms - ms) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(
            badge("GOING_ONLINE"),
            "<span class=\"st st-going-online\">GOING_ONLINE</span>"
        );
    }
}
