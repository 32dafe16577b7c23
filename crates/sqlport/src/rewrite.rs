//! What PostgreSQL clients send, made into what SQLite runs.
//!
//! SQLite executes every query, so the few PostgreSQL-only bits that
//! drivers, psql and BI tools use are rewritten, token by token (never
//! inside strings, quoted names or comments):
//!
//! | PostgreSQL | SQLite |
//! |---|---|
//! | `$1` parameters | `?1` |
//! | `E'a\nb'`, `$$text$$` strings | `'a` newline `b'`, `'text'` |
//! | `x::regclass` | `haven_regclass(x)` (a view's name to its oid) |
//! | `x::regtype` | `haven_regtype(x)` (a type's oid to its name) |
//! | `x::int8`, `::oid`, `::integer`... | `CAST(x AS INTEGER)` |
//! | `x::text`, `::name`, `::varchar`... | `CAST(x AS TEXT)` |
//! | `x::float8`, `::numeric`... | `CAST(x AS REAL)` / `CAST(x AS NUMERIC)` |
//! | `x::bool` | `haven_bool(x)` |
//! | any other cast (`::timestamptz`, `::regproc`, arrays...) | `x` (dropped) |
//! | `a ~ b`, `a !~ b`, `OPERATOR(pg_catalog.~)` | `a REGEXP b`, `a NOT REGEXP b` |
//! | `a ~* b`, `a !~* b` | `a MATCH b`, `a NOT MATCH b` (case-insensitive regex) |
//! | `ILIKE`, `NOT ILIKE` | `LIKE`, `NOT LIKE` (SQLite's LIKE ignores ASCII case) |
//! | `COLLATE pg_catalog.default`, `COLLATE "C"` | (dropped) |
//! | `pg_catalog.f(...)`, `information_schema.f(...)` | `f(...)` |
//! | `public.history` | `history` (the views are in the `public` schema) |
//! | `current_user`, `session_user`, `current_schema`... without `()` | `current_user()`... |
//! | `TABLE history` | `SELECT * FROM history` |
//! | `ARRAY(...)`, `ARRAY[...]` | `NULL` (arrays are not supported) |
//! | `x = ANY(list)`, `x <> ALL(list)` | `x IN (list)`, `x NOT IN (list)` |
//! | `trim(trailing 'x' FROM v)` (`leading`, `both`) | `rtrim(v, 'x')` (`ltrim`, `trim`) |
//!
//! Nothing else is translated: this is not a PostgreSQL implementation.
//! A query string is split into statements at top-level `;` first
//! ([`split`]); each statement is then classified ([`classify`]) as a
//! session command the port answers itself (`SET`, `SHOW`, `BEGIN`...), a
//! refused write, or SQL for SQLite.

/// The kinds of token the rewriter tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Space,
    Comment,
    Word,
    /// A `"quoted"` identifier.
    Quoted,
    /// A string literal, already in SQLite's `'...'` form.
    Str,
    Num,
    /// `$1`, already as `?1`.
    Param,
    Op,
    Semi,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Tok {
    kind: Kind,
    text: String,
}

impl Tok {
    fn new(kind: Kind, text: impl Into<String>) -> Tok {
        Tok {
            kind,
            text: text.into(),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(w)
    }

    /// An identifier, bare or quoted, lower-cased when bare (as
    /// PostgreSQL folds it).
    fn ident(&self) -> Option<String> {
        match self.kind {
            Kind::Word => Some(self.text.to_ascii_lowercase()),
            Kind::Quoted => Some(self.text[1..self.text.len() - 1].replace("\"\"", "\"")),
            _ => None,
        }
    }

    fn blank(&self) -> bool {
        matches!(self.kind, Kind::Space | Kind::Comment)
    }
}

/// Operators the lexer knows, longest first.
const OPERATORS: &[&str] = &[
    "!~*", "->>", "::", "!~", "~*", "!=", "<>", "<=", ">=", "||", "->", "<<", ">>", "~", "+", "-",
    "*", "/", "%", "<", ">", "=", "&", "|", "^", "!", "@", "#", "?", ":",
];

/// Splits SQL into tokens. Never fails: an unterminated string or
/// comment runs to the end (SQLite will then report the syntax error).
fn lex(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let rest = &sql[i..];
        if c.is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push(Tok::new(Kind::Space, &sql[start..i]));
        } else if rest.starts_with("--") {
            i += rest.find('\n').unwrap_or(rest.len());
            out.push(Tok::new(Kind::Comment, &sql[start..i]));
        } else if rest.starts_with("/*") {
            // PostgreSQL's block comments nest.
            let mut depth = 0;
            while i < b.len() {
                if sql[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if sql[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(Tok::new(Kind::Comment, &sql[start..i.min(b.len())]));
        } else if c == b'\'' {
            let (text, end) = plain_string(sql, i);
            i = end;
            out.push(Tok::new(Kind::Str, quote(&text)));
        } else if (c == b'E' || c == b'e') && b.get(i + 1) == Some(&b'\'') {
            let (text, end) = escape_string(sql, i + 1);
            i = end;
            out.push(Tok::new(Kind::Str, quote(&text)));
        } else if c == b'"' {
            i += 1;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push(Tok::new(Kind::Quoted, &sql[start..i]));
        } else if c == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::new(Kind::Param, format!("?{}", &sql[start + 1..i])));
        } else if c == b'$' {
            // A dollar-quoted string: $tag$ ... $tag$.
            let tag_end = sql[i + 1..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .map(|n| i + 1 + n);
            match tag_end.filter(|&e| b[e] == b'$') {
                Some(e) => {
                    let tag = &sql[i..=e];
                    let body_start = e + 1;
                    let body_end = sql[body_start..]
                        .find(tag)
                        .map_or(sql.len(), |n| body_start + n);
                    i = (body_end + tag.len()).min(sql.len());
                    out.push(Tok::new(Kind::Str, quote(&sql[body_start..body_end])));
                }
                None => {
                    i += 1;
                    out.push(Tok::new(Kind::Op, "$"));
                }
            }
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                // 1e-5: the sign belongs to the exponent.
                if (b[i] == b'e' || b[i] == b'E') && matches!(b.get(i + 1), Some(b'+' | b'-')) {
                    i += 1;
                }
                i += 1;
            }
            out.push(Tok::new(Kind::Num, &sql[start..i]));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            out.push(Tok::new(Kind::Word, &sql[start..i]));
        } else {
            let single = |k: Kind| Tok::new(k, &sql[start..start + 1]);
            let tok = match c {
                b';' => single(Kind::Semi),
                b'(' => single(Kind::LParen),
                b')' => single(Kind::RParen),
                b'[' => single(Kind::LBracket),
                b']' => single(Kind::RBracket),
                b',' => single(Kind::Comma),
                b'.' => single(Kind::Dot),
                _ => {
                    let op = OPERATORS
                        .iter()
                        .find(|op| rest.starts_with(*op))
                        .copied()
                        .unwrap_or_else(|| &rest[..rest.chars().next().map_or(1, char::len_utf8)]);
                    Tok::new(Kind::Op, op)
                }
            };
            i += tok.text.len();
            out.push(tok);
        }
    }
    out
}

/// A standard `'...'` string starting at `start`: its value and where it ends.
fn plain_string(sql: &str, start: usize) -> (String, usize) {
    let b = sql.as_bytes();
    let mut i = start + 1;
    let mut text = String::new();
    let mut from = i;
    while i < b.len() {
        if b[i] == b'\'' {
            text.push_str(&sql[from..i]);
            if b.get(i + 1) == Some(&b'\'') {
                text.push('\'');
                i += 2;
                from = i;
                continue;
            }
            return (text, i + 1);
        }
        i += 1;
    }
    text.push_str(&sql[from..]);
    (text, sql.len())
}

/// An `E'...'` string (backslash escapes) whose quote is at `start`.
fn escape_string(sql: &str, start: usize) -> (String, usize) {
    let mut text = String::new();
    let mut chars = sql[start + 1..].char_indices();
    while let Some((n, ch)) = chars.next() {
        match ch {
            '\'' => {
                if sql[start + 1 + n + 1..].starts_with('\'') {
                    chars.next();
                    text.push('\'');
                } else {
                    return (text, start + 1 + n + 1);
                }
            }
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some('r') => text.push('\r'),
                Some('b') => text.push('\u{8}'),
                Some('f') => text.push('\u{c}'),
                Some(other) => text.push(other),
                None => {}
            },
            other => text.push(other),
        }
    }
    (text, sql.len())
}

/// `text` as an SQLite string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Splits a query string into statements at top-level `;` (empty ones
/// dropped).
pub fn split(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for tok in lex(sql) {
        if tok.kind == Kind::Semi {
            push_statement(&mut out, &mut current);
        } else {
            current.push_str(&tok_source(&tok));
        }
    }
    push_statement(&mut out, &mut current);
    out
}

fn push_statement(out: &mut Vec<String>, current: &mut String) {
    let s = std::mem::take(current);
    if lex(&s).iter().any(|t| !t.blank()) {
        out.push(s.trim().to_string());
    }
}

/// A token as it can be lexed again (strings and parameters are kept in
/// their SQLite form, which lexes back to the same token).
fn tok_source(tok: &Tok) -> String {
    match tok.kind {
        Kind::Param => format!("${}", &tok.text[1..]),
        _ => tok.text.clone(),
    }
}

/// What one statement is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// SQL for SQLite, rewritten.
    Query(String),
    /// `SET name = value` (`None` for other SETs, e.g. `SET TRANSACTION`).
    Set(Option<(String, String)>),
    /// `RESET name` / `RESET ALL`.
    Reset(String),
    /// `SHOW name` (lower case; `all` for `SHOW ALL`).
    Show(String),
    Begin,
    Commit,
    Rollback,
    /// A statement accepted and ignored (`SAVEPOINT`, `RELEASE`,
    /// `ROLLBACK TO`, `DISCARD`, `UNLISTEN`...): the tag to answer.
    Ignored(&'static str),
    /// `DEALLOCATE name` / `DEALLOCATE ALL`.
    Deallocate(Option<String>),
    /// Refused before it reaches SQLite.
    Refused(Refusal),
}

/// Why a statement is refused, with the SQLSTATE to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// SQLSTATE 25006, read_only_sql_transaction.
pub const READ_ONLY: &str = "25006";
/// SQLSTATE 42501, insufficient_privilege.
pub const NOT_ALLOWED: &str = "42501";
/// SQLSTATE 0A000, feature_not_supported.
pub const NOT_SUPPORTED: &str = "0A000";

/// Statements that would change data or schema.
const WRITES: &[&str] = &[
    "insert",
    "update",
    "delete",
    "merge",
    "upsert",
    "replace",
    "create",
    "drop",
    "alter",
    "truncate",
    "grant",
    "revoke",
    "copy",
    "vacuum",
    "analyze",
    "analyse",
    "reindex",
    "cluster",
    "comment",
    "security",
    "lock",
    "refresh",
    "import",
    "call",
    "do",
    "checkpoint",
    "reassign",
];

/// Statements that reach past the views into SQLite itself.
const SQLITE_ONLY: &[&str] = &["attach", "detach", "pragma", "load"];

/// Classifies (and rewrites) one statement from [`split`].
pub fn classify(statement: &str) -> Command {
    let toks = lex(statement);
    let words: Vec<&Tok> = toks.iter().filter(|t| !t.blank()).collect();
    let Some(first) = words.first() else {
        return Command::Ignored("");
    };
    let first_word = first.text.to_ascii_lowercase();
    let word = |i: usize| {
        words
            .get(i)
            .map(|t| t.text.to_ascii_lowercase())
            .unwrap_or_default()
    };
    match first_word.as_str() {
        "set" => Command::Set(set_assignment(&words[1..])),
        "reset" => Command::Reset(word(1)),
        "show" => Command::Show(
            words[1..]
                .iter()
                .map(|t| t.ident().unwrap_or_else(|| t.text.clone()))
                .collect::<Vec<_>>()
                .join(""),
        ),
        "begin" | "start" => Command::Begin,
        "commit" | "end" => Command::Commit,
        "abort" => Command::Rollback,
        "rollback" => match (word(1).as_str(), word(2).as_str()) {
            ("to", _) | (_, "to") => Command::Ignored("ROLLBACK"),
            ("prepared", _) => refused(NOT_SUPPORTED, "two-phase commit is not supported"),
            _ => Command::Rollback,
        },
        "savepoint" => Command::Ignored("SAVEPOINT"),
        "release" => Command::Ignored("RELEASE"),
        "discard" => Command::Ignored("DISCARD ALL"),
        "unlisten" => Command::Ignored("UNLISTEN"),
        "close" => Command::Ignored("CLOSE CURSOR"),
        "deallocate" => {
            let name = words[1..]
                .iter()
                .filter(|t| !t.is_word("prepare"))
                .find_map(|t| t.ident());
            Command::Deallocate(name.filter(|n| n != "all"))
        }
        "listen" | "notify" | "prepare" | "execute" | "declare" | "fetch" | "move" => refused(
            NOT_SUPPORTED,
            &format!("{} is not supported by Haven's SQL port", first_word.to_uppercase()),
        ),
        w if WRITES.contains(&w) => refused(
            READ_ONLY,
            &format!(
                "cannot execute {} in a read-only transaction: Haven's SQL port only reads (SELECT)",
                w.to_uppercase()
            ),
        ),
        w if SQLITE_ONLY.contains(&w) => refused(
            NOT_ALLOWED,
            &format!(
                "{} is not allowed: Haven's SQL port answers SELECT on its views only",
                w.to_uppercase()
            ),
        ),
        _ => match shadowed_view(&toks) {
            Some(view) => refused(
                NOT_ALLOWED,
                &format!("a WITH query may not be named {view}, like the view: name it otherwise"),
            ),
            None => Command::Query(rewrite_tokens(toks)),
        },
    }
}

/// The view a `WITH` query of the statement is named after, if any.
///
/// SQLite tells its authorizer which view a read comes through by name,
/// and a common table expression counts as a view: one named `history`
/// would read the server's tables as if it were the `history` view. So
/// no WITH query may take a view's name (`name [(columns)] AS [NOT]
/// [MATERIALIZED] (`, which nothing but a WITH query looks like).
fn shadowed_view(toks: &[Tok]) -> Option<String> {
    let solid: Vec<&Tok> = toks.iter().filter(|t| !t.blank()).collect();
    for (i, tok) in solid.iter().enumerate() {
        let Some(name) = tok.ident() else { continue };
        if !crate::views::VIEWS
            .iter()
            .any(|v| v.name.eq_ignore_ascii_case(&name))
        {
            continue;
        }
        let mut j = i + 1;
        if solid.get(j).is_some_and(|t| t.kind == Kind::LParen) {
            let mut depth = 0;
            while let Some(t) = solid.get(j) {
                match t.kind {
                    Kind::LParen => depth += 1,
                    Kind::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            j += 1;
        }
        if !solid.get(j).is_some_and(|t| t.is_word("as")) {
            continue;
        }
        j += 1;
        while solid
            .get(j)
            .is_some_and(|t| t.is_word("not") || t.is_word("materialized"))
        {
            j += 1;
        }
        if solid.get(j).is_some_and(|t| t.kind == Kind::LParen) {
            return Some(name);
        }
    }
    None
}

fn refused(code: &'static str, message: &str) -> Command {
    Command::Refused(Refusal {
        code,
        message: message.to_string(),
    })
}

/// `[SESSION|LOCAL] name {=|TO} value`.
fn set_assignment(words: &[&Tok]) -> Option<(String, String)> {
    let words: Vec<&Tok> = words
        .iter()
        .copied()
        .skip_while(|t| t.is_word("session") || t.is_word("local"))
        .collect();
    let name = words.first()?.ident()?;
    if name == "transaction" || name == "characteristics" {
        return None;
    }
    let rest = words.get(1..)?;
    let value_toks = match rest.first() {
        Some(t) if t.is_word("to") || (t.kind == Kind::Op && t.text == "=") => &rest[1..],
        _ => return None,
    };
    let value = value_toks
        .iter()
        .map(|t| match t.kind {
            Kind::Str => t.text[1..t.text.len() - 1].replace("''", "'"),
            _ => t.ident().unwrap_or_else(|| t.text.clone()),
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some((name, value))
}

/// Rewrites one statement's PostgreSQL-only syntax (see the module doc).
pub fn rewrite(statement: &str) -> String {
    rewrite_tokens(lex(statement))
}

fn rewrite_tokens(toks: Vec<Tok>) -> String {
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut i = 0;
    let next_solid = |from: usize| (from..toks.len()).find(|&j| !toks[j].blank());
    // `TABLE name` is `SELECT * FROM name`.
    if let Some(j) = next_solid(0) {
        if toks[j].is_word("table") {
            out.extend(toks[..j].iter().cloned());
            out.push(Tok::new(Kind::Word, "SELECT * FROM"));
            i = j + 1;
        }
    }
    while i < toks.len() {
        let tok = &toks[i];
        match tok.kind {
            Kind::Word if tok.is_word("operator") && next_is(&toks, i, Kind::LParen) => {
                // OPERATOR(pg_catalog.~): the operator is the last token inside.
                let open = next_solid(i + 1).unwrap_or(i);
                let close = (open..toks.len())
                    .find(|&j| toks[j].kind == Kind::RParen)
                    .unwrap_or(toks.len() - 1);
                if let Some(op) = toks[open..close].iter().rev().find(|t| t.kind == Kind::Op) {
                    out.push(operator(&op.text));
                }
                i = close + 1;
                continue;
            }
            Kind::Op if tok.text == "::" => {
                i = cast(&toks, i + 1, &mut out);
                continue;
            }
            Kind::Op
                if matches!(tok.text.as_str(), "=" | "<>" | "!=")
                    && quantified(&toks, i).is_some() =>
            {
                // x = ANY(list) is x IN (list); x <> ALL(list) is x NOT IN (list).
                let word = quantified(&toks, i).unwrap_or(i);
                out.push(Tok::new(
                    Kind::Word,
                    if tok.text == "=" { "IN" } else { "NOT IN" },
                ));
                i = word + 1;
                continue;
            }
            Kind::Op => out.push(operator(&tok.text)),
            Kind::Word if tok.is_word("ilike") => out.push(Tok::new(Kind::Word, "LIKE")),
            Kind::Word if tok.is_word("trim") && next_is(&toks, i, Kind::LParen) => {
                if let Some(end) = trim_from(&toks, i, &mut out) {
                    i = end;
                    continue;
                }
                out.push(tok.clone());
            }
            Kind::Word
                if tok.is_word("array")
                    && (next_is(&toks, i, Kind::LParen) || next_is(&toks, i, Kind::LBracket)) =>
            {
                // Arrays are not supported: ARRAY(...) and ARRAY[...] are NULL.
                let open = next_solid(i + 1).unwrap_or(i);
                let (up, down) = if toks[open].kind == Kind::LParen {
                    (Kind::LParen, Kind::RParen)
                } else {
                    (Kind::LBracket, Kind::RBracket)
                };
                let mut depth = 0;
                let mut end = toks.len();
                for (j, t) in toks.iter().enumerate().skip(open) {
                    if t.kind == up {
                        depth += 1;
                    } else if t.kind == down {
                        depth -= 1;
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                }
                out.push(Tok::new(Kind::Word, "NULL"));
                i = end;
                continue;
            }
            Kind::Word if tok.is_word("collate") => {
                // COLLATE name: SQLite knows BINARY, NOCASE and RTRIM only.
                let (name, end) = qualified_name(&toks, i + 1);
                let keep = ["binary", "nocase", "rtrim"].contains(&name.as_str());
                if keep {
                    out.extend(toks[i..end].iter().cloned());
                }
                i = end;
                continue;
            }
            Kind::Word | Kind::Quoted if is_schema_prefix(&toks, i) => {
                // Skip `schema .`: functions cannot be schema-qualified in
                // SQLite, and the views are found without `public.`.
                let dot = next_solid(i + 1).unwrap_or(i);
                i = dot + 1;
                continue;
            }
            Kind::Word
                if keyword_function(tok).is_some() && !called(&toks, i) && !after_dot(&out) =>
            {
                out.push(Tok::new(
                    Kind::Word,
                    format!("{}()", keyword_function(tok).unwrap_or_default()),
                ));
            }
            _ => out.push(tok.clone()),
        }
        i += 1;
    }
    out.iter().map(|t| t.text.as_str()).collect()
}

/// `trim([leading|trailing|both] [chars] FROM value)` at `i` as
/// `ltrim/rtrim/trim(value[, chars])`, rewritten; the index after it, or
/// `None` for a plain `trim(...)` call.
fn trim_from(toks: &[Tok], i: usize, out: &mut Vec<Tok>) -> Option<usize> {
    let open = (i + 1..toks.len()).find(|&j| !toks[j].blank())?;
    let mut depth = 0;
    let mut close = None;
    let mut from = None;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::LParen => depth += 1,
            Kind::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(j);
                    break;
                }
            }
            Kind::Word if depth == 1 && t.is_word("from") => from = Some(j),
            _ => {}
        }
    }
    let (close, from) = (close?, from?);
    let mut start = open + 1;
    let first = (start..from).find(|&j| !toks[j].blank());
    let func = match first.map(|j| toks[j].text.to_ascii_lowercase()) {
        Some(w) if w == "leading" => "ltrim",
        Some(w) if w == "trailing" => "rtrim",
        Some(w) if w == "both" => "trim",
        _ => "trim",
    };
    if func != "trim" || first.is_some_and(|j| toks[j].is_word("both")) {
        start = first.map_or(start, |j| j + 1);
    }
    let chars = rewrite_tokens(toks[start..from].to_vec());
    let value = rewrite_tokens(toks[from + 1..close].to_vec());
    let text = if chars.trim().is_empty() {
        format!("{func}({})", value.trim())
    } else {
        format!("{func}({}, {})", value.trim(), chars.trim())
    };
    out.push(Tok::new(Kind::Word, text));
    Some(close + 1)
}

/// After `=` at `i`: the index of `ANY`/`SOME` (or after `<>`: `ALL`)
/// when a parenthesis follows it.
fn quantified(toks: &[Tok], i: usize) -> Option<usize> {
    let j = (i + 1..toks.len()).find(|&j| !toks[j].blank())?;
    let ok = if toks[i].text == "=" {
        toks[j].is_word("any") || toks[j].is_word("some")
    } else {
        toks[j].is_word("all")
    };
    (ok && next_is(toks, j, Kind::LParen)).then_some(j)
}

fn next_is(toks: &[Tok], i: usize, kind: Kind) -> bool {
    toks[i + 1..]
        .iter()
        .find(|t| !t.blank())
        .is_some_and(|t| t.kind == kind)
}

/// Whether the word at `i` is followed by `(` (a call).
fn called(toks: &[Tok], i: usize) -> bool {
    next_is(toks, i, Kind::LParen)
}

fn after_dot(out: &[Tok]) -> bool {
    out.iter()
        .rev()
        .find(|t| !t.blank())
        .is_some_and(|t| t.kind == Kind::Dot)
}

/// SQL keywords that are functions in PostgreSQL, called without `()`.
fn keyword_function(tok: &Tok) -> Option<&'static str> {
    let w = tok.text.to_ascii_lowercase();
    Some(match w.as_str() {
        "current_user" | "current_role" => "current_user",
        "session_user" => "session_user",
        "current_catalog" => "current_database",
        "current_schema" => "current_schema",
        _ => return None,
    })
}

/// `pg_catalog.` / `information_schema.` before a function call, or
/// `public.` before anything.
fn is_schema_prefix(toks: &[Tok], i: usize) -> bool {
    let Some(name) = toks[i].ident() else {
        return false;
    };
    let solid: Vec<usize> = (i + 1..toks.len())
        .filter(|&j| !toks[j].blank())
        .take(3)
        .collect();
    let (Some(&dot), Some(&item)) = (solid.first(), solid.get(1)) else {
        return false;
    };
    if toks[dot].kind != Kind::Dot || !matches!(toks[item].kind, Kind::Word | Kind::Quoted) {
        return false;
    }
    match name.as_str() {
        "public" => true,
        "pg_catalog" | "information_schema" => {
            solid.get(2).is_some_and(|&j| toks[j].kind == Kind::LParen)
        }
        _ => false,
    }
}

/// A possibly qualified name starting at `from`: its last part (lower
/// case) and the index after it.
fn qualified_name(toks: &[Tok], from: usize) -> (String, usize) {
    let mut j = from;
    let mut last = String::new();
    loop {
        while j < toks.len() && toks[j].blank() {
            j += 1;
        }
        match toks.get(j).and_then(Tok::ident) {
            Some(name) => {
                last = name;
                j += 1;
            }
            None => return (last, j),
        }
        let dot = (j..toks.len()).find(|&k| !toks[k].blank());
        match dot {
            Some(k) if toks[k].kind == Kind::Dot => j = k + 1,
            _ => return (last, j),
        }
    }
}

fn operator(op: &str) -> Tok {
    let text = match op {
        "~" => " REGEXP ",
        "!~" => " NOT REGEXP ",
        "~*" => " MATCH ",
        "!~*" => " NOT MATCH ",
        other => other,
    };
    Tok::new(Kind::Op, text)
}

/// Rewrites `operand::type`: the operand is already in `out`; the type
/// starts at `from`. Returns the index after the type.
fn cast(toks: &[Tok], from: usize, out: &mut Vec<Tok>) -> usize {
    let (mut name, mut end) = qualified_name(toks, from);
    // Types of several words.
    let words_after = |at: usize, n: usize| -> Vec<(String, usize)> {
        let mut found = Vec::new();
        let mut j = at;
        while found.len() < n {
            while j < toks.len() && toks[j].blank() {
                j += 1;
            }
            match toks.get(j) {
                Some(t) if t.kind == Kind::Word => {
                    found.push((t.text.to_ascii_lowercase(), j + 1));
                    j += 1;
                }
                _ => break,
            }
        }
        found
    };
    let more = words_after(end, 3);
    let seq: Vec<&str> = more.iter().map(|(w, _)| w.as_str()).collect();
    let take = match (name.as_str(), seq.as_slice()) {
        ("double", ["precision", ..]) | ("character", ["varying", ..]) => 1,
        ("timestamp" | "time", ["with" | "without", "time", "zone"]) => 3,
        _ => 0,
    };
    if take > 0 {
        name = format!("{name} {}", seq[..take].join(" "));
        end = more[take - 1].1;
    }
    // (n[, m]) and [] suffixes.
    let mut array = false;
    loop {
        let j = (end..toks.len()).find(|&k| !toks[k].blank());
        match j.map(|k| (k, toks[k].kind)) {
            Some((k, Kind::LParen)) => {
                end = (k..toks.len())
                    .find(|&m| toks[m].kind == Kind::RParen)
                    .map_or(toks.len(), |m| m + 1)
            }
            Some((k, Kind::LBracket)) => {
                array = true;
                end = (k..toks.len())
                    .find(|&m| toks[m].kind == Kind::RBracket)
                    .map_or(toks.len(), |m| m + 1)
            }
            _ => break,
        }
    }
    let operand = take_operand(out);
    let operand: String = operand.iter().map(|t| t.text.as_str()).collect();
    let wrapped = if array {
        operand
    } else {
        match name.as_str() {
            "regclass" => format!("haven_regclass({operand})"),
            "regtype" => format!("haven_regtype({operand})"),
            "bool" | "boolean" => format!("haven_bool({operand})"),
            "oid" | "int" | "int2" | "int4" | "int8" | "integer" | "smallint" | "bigint"
            | "xid" | "cid" | "tid" => format!("CAST({operand} AS INTEGER)"),
            "text" | "varchar" | "character varying" | "char" | "character" | "bpchar" | "name"
            | "citext" => format!("CAST({operand} AS TEXT)"),
            "float4" | "float8" | "real" | "double precision" => {
                format!("CAST({operand} AS REAL)")
            }
            "numeric" | "decimal" => format!("CAST({operand} AS NUMERIC)"),
            _ => operand,
        }
    };
    out.push(Tok::new(Kind::Word, wrapped));
    end
}

/// Removes and returns the last primary expression of `out` (a literal,
/// a parameter, a possibly qualified name, a parenthesised expression or a
/// function call).
fn take_operand(out: &mut Vec<Tok>) -> Vec<Tok> {
    while out.last().is_some_and(Tok::blank) {
        out.pop();
    }
    let Some(last) = out.last() else {
        return Vec::new();
    };
    let mut start = out.len() - 1;
    match last.kind {
        Kind::RParen => {
            let mut depth = 0;
            for j in (0..out.len()).rev() {
                match out[j].kind {
                    Kind::RParen => depth += 1,
                    Kind::LParen => {
                        depth -= 1;
                        if depth == 0 {
                            start = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            // A function call: include its (qualified) name.
            if let Some(j) = (0..start).rev().find(|&j| !out[j].blank()) {
                if matches!(out[j].kind, Kind::Word | Kind::Quoted) && !is_keyword(&out[j]) {
                    start = qualified_start(out, j);
                }
            }
        }
        Kind::Word | Kind::Quoted => start = qualified_start(out, start),
        _ => {}
    }
    out.split_off(start)
}

/// Words before `(` that are not function names.
fn is_keyword(tok: &Tok) -> bool {
    const KEYWORDS: &[&str] = &[
        "select",
        "where",
        "and",
        "or",
        "not",
        "in",
        "on",
        "from",
        "when",
        "then",
        "else",
        "case",
        "as",
        "exists",
        "any",
        "all",
        "some",
        "by",
        "having",
        "join",
        "values",
        "is",
        "like",
        "between",
        "return",
        "returns",
        "with",
        "union",
        "except",
        "intersect",
    ];
    tok.kind == Kind::Word && KEYWORDS.contains(&tok.text.to_ascii_lowercase().as_str())
}

/// Extends a name at `j` left over `schema.` qualifiers.
fn qualified_start(out: &[Tok], mut j: usize) -> usize {
    while j >= 2
        && out[j - 1].kind == Kind::Dot
        && matches!(out[j - 2].kind, Kind::Word | Kind::Quoted)
    {
        j -= 2;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(sql: &str) -> String {
        match classify(sql) {
            Command::Query(s) => s,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn parameters_become_numbered_sqlite_parameters() {
        assert_eq!(
            q("SELECT * FROM history WHERE cluster = $1 AND seq > $2"),
            "SELECT * FROM history WHERE cluster = ?1 AND seq > ?2"
        );
    }

    #[test]
    fn casts_become_casts_or_functions_or_disappear() {
        assert_eq!(
            q("SELECT 'history'::regclass"),
            "SELECT haven_regclass('history')"
        );
        assert_eq!(
            q("SELECT '16385'::pg_catalog.oid"),
            "SELECT CAST('16385' AS INTEGER)"
        );
        assert_eq!(
            q("SELECT c.reloftype::pg_catalog.regtype::pg_catalog.text"),
            "SELECT CAST(haven_regtype(c.reloftype) AS TEXT)"
        );
        assert_eq!(
            q("SELECT count(*)::int8, (1+2)::float8, x::character varying(10)"),
            "SELECT CAST(count(*) AS INTEGER), CAST((1+2) AS REAL), CAST(x AS TEXT)"
        );
        assert_eq!(q("SELECT now()::timestamptz"), "SELECT now()");
        assert_eq!(q("SELECT $1::text[]"), "SELECT ?1");
        assert_eq!(
            q("SELECT 'on'::bool, t::timestamp with time zone"),
            "SELECT haven_bool('on'), t"
        );
    }

    #[test]
    fn regex_and_ilike_operators_become_sqlite_operators() {
        assert_eq!(
            q("SELECT 1 WHERE c.relname OPERATOR(pg_catalog.~) '^(history)$' COLLATE pg_catalog.default"),
            "SELECT 1 WHERE c.relname  REGEXP  '^(history)$' "
        );
        assert_eq!(
            q("SELECT 1 WHERE n !~ '^pg_' AND m ~* 'x' AND name ILIKE 'a%'"),
            "SELECT 1 WHERE n  NOT REGEXP  '^pg_' AND m  MATCH  'x' AND name LIKE 'a%'"
        );
    }

    #[test]
    fn schema_qualified_functions_and_public_tables_lose_their_schema() {
        assert_eq!(
            q("SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c, public.history h, \"public\".\"gaps\""),
            "SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c, history h, \"gaps\""
        );
    }

    #[test]
    fn keyword_functions_are_called() {
        assert_eq!(
            q("SELECT current_user, current_schema(), current_catalog"),
            "SELECT current_user(), current_schema(), current_database()"
        );
    }

    #[test]
    fn strings_comments_and_quoted_names_are_left_alone() {
        assert_eq!(
            q("SELECT '$1::text ~ x' -- $2::int\n"),
            "SELECT '$1::text ~ x' -- $2::int\n"
        );
        assert_eq!(
            q("SELECT \"a::b\" FROM t /* ~ */"),
            "SELECT \"a::b\" FROM t /* ~ */"
        );
        assert_eq!(q("SELECT E'it\\'s\\n'"), "SELECT 'it''s\n'");
        assert_eq!(q("SELECT $$a'b$$, $x$c$x$"), "SELECT 'a''b', 'c'");
    }

    #[test]
    fn views_used_with_aliases_are_not_taken_for_with_queries() {
        q("SELECT * FROM history AS h WHERE h.cluster IN (SELECT cluster FROM clusters AS c)");
        q("WITH h AS (SELECT * FROM history) SELECT * FROM h");
        q("SELECT CAST(cluster AS TEXT) FROM clusters");
    }

    #[test]
    fn trim_from_becomes_sqlite_trim_functions() {
        assert_eq!(
            q("SELECT trim(trailing ';' from pg_catalog.pg_get_ruledef(r.oid, true)), trim(both from x), trim(y)"),
            "SELECT rtrim(pg_get_ruledef(r.oid, true), ';'), trim(x), trim(y)"
        );
        assert_eq!(
            q("SELECT trim(leading 'x' FROM $1)"),
            "SELECT ltrim(?1, 'x')"
        );
    }

    #[test]
    fn any_and_all_become_in_lists() {
        assert_eq!(
            q("SELECT 'd' = any(stxkind), x <> ALL ($1)"),
            "SELECT 'd' IN(stxkind), x NOT IN (?1)"
        );
    }

    #[test]
    fn arrays_are_null() {
        assert_eq!(
            q("SELECT array_to_string(c.reloptions || array(select 'toast.' || x from unnest(tc.reloptions) x), ', '), ARRAY[1,2]"),
            "SELECT array_to_string(c.reloptions || NULL, ', '), NULL"
        );
    }

    #[test]
    fn table_statement_selects_everything() {
        assert_eq!(q("TABLE clusters"), "SELECT * FROM clusters");
    }

    #[test]
    fn a_query_string_splits_into_statements_at_top_level_semicolons() {
        assert_eq!(
            split("SET DateStyle = 'ISO';SET extra_float_digits = 2;show transaction_isolation"),
            vec![
                "SET DateStyle = 'ISO'",
                "SET extra_float_digits = 2",
                "show transaction_isolation"
            ]
        );
        assert_eq!(split("SELECT ';' ; ; -- x;\n"), vec!["SELECT ';'"]);
        assert_eq!(
            split("SELECT $1; SELECT E'a;b'"),
            vec!["SELECT $1", "SELECT 'a;b'"]
        );
        assert!(split(" ; -- only a comment").is_empty());
    }

    #[test]
    fn session_statements_are_recognised() {
        assert_eq!(
            classify("SET extra_float_digits = 3"),
            Command::Set(Some(("extra_float_digits".into(), "3".into())))
        );
        assert_eq!(
            classify("SET application_name TO 'PostgreSQL JDBC Driver'"),
            Command::Set(Some((
                "application_name".into(),
                "PostgreSQL JDBC Driver".into()
            )))
        );
        assert_eq!(
            classify("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"),
            Command::Set(None)
        );
        assert_eq!(
            classify("show transaction_isolation"),
            Command::Show("transaction_isolation".into())
        );
        assert_eq!(classify("SHOW ALL"), Command::Show("all".into()));
        assert_eq!(classify("BEGIN READ ONLY"), Command::Begin);
        assert_eq!(classify("start transaction"), Command::Begin);
        assert_eq!(classify("COMMIT"), Command::Commit);
        assert_eq!(classify("rollback"), Command::Rollback);
        assert_eq!(
            classify("ROLLBACK TO SAVEPOINT a"),
            Command::Ignored("ROLLBACK")
        );
        assert_eq!(
            classify("DEALLOCATE \"_PLAN0x1\""),
            Command::Deallocate(Some("_PLAN0x1".into()))
        );
        assert_eq!(
            classify("deallocate prepare all"),
            Command::Deallocate(None)
        );
    }

    #[test]
    fn writes_and_sqlite_statements_are_refused_before_sqlite() {
        for (sql, code) in [
            ("INSERT INTO history VALUES (1)", READ_ONLY),
            ("update clusters set name = 'x'", READ_ONLY),
            ("  DELETE FROM history", READ_ONLY),
            ("CREATE TABLE t (a int)", READ_ONLY),
            ("DROP VIEW history", READ_ONLY),
            ("/* hi */ ALTER TABLE x RENAME TO y", READ_ONLY),
            ("VACUUM", READ_ONLY),
            ("ATTACH DATABASE '/tmp/x' AS x", NOT_ALLOWED),
            ("PRAGMA writable_schema = 1", NOT_ALLOWED),
            ("LISTEN x", NOT_SUPPORTED),
            (
                "WITH history AS (SELECT 1) SELECT * FROM history",
                NOT_ALLOWED,
            ),
            (
                "with a as (select 1), \"Gaps\" (x) as not materialized (select 2) select 1",
                NOT_ALLOWED,
            ),
        ] {
            match classify(sql) {
                Command::Refused(r) => assert_eq!(r.code, code, "{sql}"),
                other => panic!("{sql}: {other:?}"),
            }
        }
    }
}
