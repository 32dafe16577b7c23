//! Free-text search over every object of the fleet, with a small query
//! language (the same for the API, the console and `haven find`):
//!
//! | term | matches |
//! |---|---|
//! | `web` | a word: the object's name, a resource's type, its own tags (`key=value`) or a resource's attribute values contain it (case-insensitive) |
//! | `"web server"` | a word with spaces |
//! | `env=prod`, `tag:env=prod` | the object carries the tag: its own, its cluster's, its group's (a resource) — the value may be a glob (`prod*`) |
//! | `tag:env` | it carries the key, whatever the value |
//! | `state:faulted` | its state (a group's or resource's on any system; `frozen`, `disabled`; a cluster's link: `connected`, `disconnected`, `stale`, `connecting`) |
//! | `kind:group` | `cluster`, `system`, `group` or `resource` |
//! | `cluster:prod-*` | it is (in) a cluster whose name matches the glob |
//! | `group:web*` | a group of that name, or a resource of it |
//! | `type:Mount` | a resource of that type (glob) |
//! | `-TERM` | the term does not match |
//!
//! Every term must match. The search runs over what the caller sees (the
//! fleet, or [`crate::fleet::Fleet::seen_by`]'s part of it), so it never
//! names an object the caller may not see.

use haven_model::{AttrValue, ClusterSnapshot, Name};

use crate::alerts::settings::glob;
use crate::fleet::{Hit, LinkStatus};
use crate::tags::{ClusterTags, TagFilter, TagSet};

/// The qualifiers a term may start with.
const QUALIFIERS: &[&str] = &["tag", "state", "kind", "cluster", "group", "type"];

/// Object kinds.
const KINDS: &[&str] = &["cluster", "system", "group", "resource"];

/// State names a `state:` term may use (lowercase).
const STATES: &[&str] = &[
    "online",
    "offline",
    "partial",
    "faulted",
    "starting",
    "stopping",
    "unknown",
    "going_online",
    "going_offline",
    "running",
    "exited",
    "frozen",
    "disabled",
    "connected",
    "connecting",
    "stale",
    "disconnected",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    Word(String),
    Tag(TagFilter),
    State(String),
    Kind(String),
    Cluster(String),
    Group(String),
    Type(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negated: bool,
    cond: Cond,
}

/// A parsed query (the default matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    terms: Vec<Term>,
}

impl Query {
    /// Reads a query; the error names the term and the fix.
    pub fn parse(text: &str) -> Result<Query, String> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err(
                "the query is empty: type a name, key=value, state:faulted, kind:group ...".into(),
            );
        }
        let terms = tokens
            .into_iter()
            .map(|(raw, quoted)| term(&raw, quoted))
            .collect::<Result<_, _>>()?;
        Ok(Query { terms })
    }

    /// Adds tag filters (`--tag`, `?tag=`) as terms.
    pub fn with_tags(mut self, filters: Vec<TagFilter>) -> Query {
        self.terms.extend(filters.into_iter().map(|f| Term {
            negated: false,
            cond: Cond::Tag(f),
        }));
        self
    }
}

/// Splits on spaces, keeping `"..."` together (the quotes go; a token
/// that starts with a quote is marked, so `"kind:x"` stays a word while
/// `owner="Jane Doe"` is a tag).
fn tokenize(text: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let (mut cur, mut quoted, mut in_quotes, mut any) = (String::new(), false, false, false);
    for c in text.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                // Quoted from its start (`"x:y"`): a word, whatever it holds.
                quoted |= !any;
                any = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if any {
                    out.push((std::mem::take(&mut cur), quoted));
                }
                (quoted, any) = (false, false);
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if in_quotes {
        return Err("a `\"` is not closed; quote words with spaces like \"web server\"".into());
    }
    if any {
        out.push((cur, quoted));
    }
    Ok(out)
}

fn term(raw: &str, quoted: bool) -> Result<Term, String> {
    let (negated, body) = match raw.strip_prefix('-') {
        Some(rest) if !rest.is_empty() => (true, rest),
        _ => (false, raw),
    };
    let word = || Cond::Word(body.to_lowercase());
    let cond = if quoted {
        word()
    } else if let Some((q, value)) = body
        .split_once(':')
        .filter(|(q, _)| !q.is_empty() && q.chars().all(|c| c.is_ascii_alphabetic()))
    {
        let value_lc = value.to_lowercase();
        let empty = || format!("`{raw}`: give a value after `{q}:`");
        if value.is_empty() {
            return Err(empty());
        }
        match q.to_ascii_lowercase().as_str() {
            "tag" => Cond::Tag(TagFilter::parse(value)?),
            "state" => {
                if !STATES.contains(&value_lc.as_str()) {
                    return Err(format!(
                        "`{raw}`: no state `{value}`; use one of {}",
                        STATES.join(", ")
                    ));
                }
                Cond::State(value_lc)
            }
            "kind" | "is" => {
                if !KINDS.contains(&value_lc.as_str()) {
                    return Err(format!("`{raw}`: use kind:{}", KINDS.join(", kind:")));
                }
                Cond::Kind(value_lc)
            }
            "cluster" => Cond::Cluster(value_lc),
            "group" => Cond::Group(value_lc),
            "type" => Cond::Type(value_lc),
            _ => {
                return Err(format!(
                    "`{raw}`: unknown filter `{q}:`; use {} (or quote the word: \"{body}\")",
                    QUALIFIERS
                        .iter()
                        .map(|q| format!("{q}:"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
    } else if body.contains('=')
        && crate::tags::check_key(body.split('=').next().unwrap_or("")).is_ok()
    {
        Cond::Tag(TagFilter::parse(body)?)
    } else {
        word()
    };
    Ok(Term { negated, cond })
}

/// One cluster as the search reads it.
pub struct Entry<'a> {
    pub name: &'a Name,
    pub link: &'a LinkStatus,
    pub snapshot: Option<&'a ClusterSnapshot>,
    pub tags: &'a ClusterTags,
}

/// One object, as the terms see it.
struct Obj<'a> {
    kind: &'static str,
    cluster: &'a str,
    name: &'a str,
    group: Option<&'a str>,
    resource_type: Option<&'a str>,
    states: Vec<&'static str>,
    own: Option<&'a TagSet>,
    /// The tag sets it carries (its own, its group's, its cluster's).
    carried: Vec<&'a TagSet>,
    attributes: &'a [haven_model::Attr],
}

/// Case-insensitive substring (`needle` lowercase already), without
/// allocating for ASCII.
fn contains(hay: &str, needle: &str) -> bool {
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    } else {
        hay.to_lowercase().contains(needle)
    }
}

fn glob_ci(pattern: &str, text: &str) -> bool {
    glob(pattern, &text.to_lowercase())
}

fn attr_contains(value: &AttrValue, word: &str) -> bool {
    let scalar = |s: &haven_model::Scalar| contains(&s.to_text(), word);
    match value {
        AttrValue::Scalar(s) => scalar(s),
        AttrValue::List(l) => l.iter().any(scalar),
        AttrValue::Assoc(pairs) => pairs.iter().any(|(k, v)| scalar(k) || scalar(v)),
    }
}

impl Obj<'_> {
    fn matches(&self, cond: &Cond) -> bool {
        match cond {
            Cond::Word(w) => {
                contains(self.name, w)
                    || self.resource_type.is_some_and(|t| contains(t, w))
                    || self.own.is_some_and(|tags| {
                        tags.iter().any(|(k, v)| contains(&format!("{k}={v}"), w))
                    })
                    || self.attributes.iter().any(|a| attr_contains(&a.value, w))
            }
            Cond::Tag(f) => f.carried(self.carried.iter().copied()),
            Cond::State(s) => self.states.iter().any(|st| st.eq_ignore_ascii_case(s)),
            Cond::Kind(k) => self.kind == k,
            Cond::Cluster(g) => glob_ci(g, self.cluster),
            Cond::Group(g) => self.group.is_some_and(|name| glob_ci(g, name)),
            Cond::Type(g) => self.resource_type.is_some_and(|t| glob_ci(g, t)),
        }
    }

    fn hit(&self, query: &Query) -> Option<Hit> {
        query
            .terms
            .iter()
            .all(|t| self.matches(&t.cond) != t.negated)
            .then(|| Hit {
                kind: self.kind.into(),
                cluster: self.cluster.to_string(),
                name: self.name.to_string(),
                group: (self.kind == "resource")
                    .then(|| self.group.map(String::from))
                    .flatten(),
                resource_type: self.resource_type.map(String::from),
                tags: self.own.cloned().unwrap_or_default(),
            })
    }
}

/// The objects of `clusters` that match, in cluster order (a cluster, its
/// systems, its groups, their resources), at most `limit`.
pub fn run<'a>(query: &Query, limit: usize, clusters: impl Iterator<Item = Entry<'a>>) -> Vec<Hit> {
    let mut hits = Vec::new();
    // Terms about the cluster alone decide for all of its objects.
    let cluster_terms: Vec<&Term> = query
        .terms
        .iter()
        .filter(|t| matches!(t.cond, Cond::Cluster(_)))
        .collect();
    for e in clusters {
        if hits.len() >= limit {
            break;
        }
        let cluster: &str = e.name;
        if !cluster_terms
            .iter()
            .all(|t| matches!(&t.cond, Cond::Cluster(g) if glob_ci(g, cluster) != t.negated))
        {
            continue;
        }
        let mut push = |o: Obj<'_>| {
            if hits.len() < limit {
                if let Some(h) = o.hit(query) {
                    hits.push(h);
                }
            }
        };
        push(Obj {
            kind: "cluster",
            cluster,
            name: cluster,
            group: None,
            resource_type: None,
            states: vec![e.link.shown().as_str()],
            own: Some(&e.tags.cluster),
            carried: vec![&e.tags.cluster],
            attributes: &[],
        });
        let Some(snap) = e.snapshot else { continue };
        for s in &snap.systems {
            let mut states = vec![s.state.as_str()];
            if s.freeze.is_frozen() {
                states.push("frozen");
            }
            push(Obj {
                kind: "system",
                cluster,
                name: &s.name,
                group: None,
                resource_type: None,
                states,
                own: e.tags.systems.get(&*s.name),
                carried: e.tags.carried(None, Some(&s.name)).collect(),
                attributes: &[],
            });
        }
        for g in &snap.groups {
            let mut states: Vec<&'static str> =
                g.states.iter().map(|(_, st)| st.as_str()).collect();
            if g.freeze.is_frozen() {
                states.push("frozen");
            }
            if !g.enabled {
                states.push("disabled");
            }
            let carried: Vec<&TagSet> = e.tags.carried(Some(&g.name), None).collect();
            push(Obj {
                kind: "group",
                cluster,
                name: &g.name,
                group: Some(&g.name),
                resource_type: None,
                states,
                own: e.tags.groups.get(&*g.name),
                carried: carried.clone(),
                attributes: &[],
            });
            let config = snap.config.group(&g.name);
            for r in &g.resources {
                let rc = config.and_then(|c| c.resource(&r.name));
                push(Obj {
                    kind: "resource",
                    cluster,
                    name: &r.name,
                    group: Some(&g.name),
                    resource_type: rc.map(|rc| &*rc.type_name),
                    states: r.states.iter().map(|(_, st)| st.as_str()).collect(),
                    own: None,
                    carried: carried.clone(),
                    attributes: rc.map_or(&[], |rc| rc.attributes.as_slice()),
                });
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_words_tags_and_filters() {
        let q =
            Query::parse(r#"web env=prod* -state:faulted kind:group "a b" cluster:p-*"#).unwrap();
        assert_eq!(q.terms.len(), 6);
        assert!(matches!(&q.terms[0].cond, Cond::Word(w) if w == "web"));
        assert!(matches!(&q.terms[1].cond, Cond::Tag(_)));
        assert!(q.terms[2].negated && matches!(&q.terms[2].cond, Cond::State(s) if s == "faulted"));
        assert!(matches!(&q.terms[4].cond, Cond::Word(w) if w == "a b"));
        // A path or a quoted colon stays a word.
        let q = Query::parse(r#"/opt/web "x:y" owner="Jane Doe""#).unwrap();
        assert!(matches!(&q.terms[0].cond, Cond::Word(w) if w == "/opt/web"));
        assert!(matches!(&q.terms[1].cond, Cond::Word(w) if w == "x:y"));
        assert!(matches!(&q.terms[2].cond, Cond::Tag(f) if f.to_string() == "owner=jane doe"));
    }

    #[test]
    fn a_bad_query_says_which_term_and_the_fix() {
        let err = Query::parse("state:broken").unwrap_err();
        assert!(
            err.contains("state:broken") && err.contains("faulted"),
            "{err}"
        );
        let err = Query::parse("colour:red").unwrap_err();
        assert!(err.contains("unknown filter `colour:`"), "{err}");
        let err = Query::parse("kind:node").unwrap_err();
        assert!(err.contains("kind:system"), "{err}");
        assert!(Query::parse("   ").is_err());
        assert!(Query::parse("\"open").is_err());
        assert!(Query::parse("tag:=x").is_err());
    }
}
