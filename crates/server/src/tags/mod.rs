//! Tags (`key=value`) on clusters, service groups and systems: what a key
//! and a value may be, how a filter (`env=prod`, `env=prod*`, `env`)
//! matches, and how a change is stored (through the configuration
//! connection, then put in the fleet's memory, one change at a time).
//!
//! An object *carries* a tag when it has it itself or its cluster has it
//! (a resource: its group or its cluster). Filters everywhere — search,
//! the cluster list (a cluster's own tags), faults, alerts, alert
//! policies — use that one rule.
//!
//! Invariants: a refused change (bad key or value, unknown object, no
//! role) stores nothing and changes nothing in memory; the memory equals
//! the table after every change (changes are serialised, and memory is
//! set from what was stored).

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;

use haven_store::TagRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Server;

/// One object's tags, by key.
pub type TagSet = BTreeMap<String, String>;

/// Longest key.
pub const KEY_MAX: usize = 64;
/// Longest value.
pub const VALUE_MAX: usize = 256;
/// Most tags on one object.
pub const PER_OBJECT_MAX: usize = 64;

/// The tags of one cluster and of its groups and systems.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterTags {
    pub cluster: TagSet,
    pub groups: BTreeMap<String, TagSet>,
    pub systems: BTreeMap<String, TagSet>,
}

impl ClusterTags {
    /// The tags of one object (empty when it has none).
    pub fn of(&self, kind: Kind, object: &str) -> Option<&TagSet> {
        match kind {
            Kind::Cluster => Some(&self.cluster),
            Kind::Group => self.groups.get(object),
            Kind::System => self.systems.get(object),
        }
    }

    fn slot(&mut self, kind: Kind, object: &str) -> &mut TagSet {
        match kind {
            Kind::Cluster => &mut self.cluster,
            Kind::Group => self.groups.entry(object.to_string()).or_default(),
            Kind::System => self.systems.entry(object.to_string()).or_default(),
        }
    }

    /// Replaces one object's tags.
    pub fn put(&mut self, kind: Kind, object: &str, tags: TagSet) {
        *self.slot(kind, object) = tags;
        self.groups.retain(|_, t| !t.is_empty());
        self.systems.retain(|_, t| !t.is_empty());
    }

    pub fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.groups.is_empty() && self.systems.is_empty()
    }

    /// The tag sets an object carries: its cluster's, its group's (for a
    /// group, or a resource of it) and its system's.
    pub fn carried<'a>(
        &'a self,
        group: Option<&str>,
        system: Option<&str>,
    ) -> impl Iterator<Item = &'a TagSet> {
        std::iter::once(&self.cluster)
            .chain(group.and_then(|g| self.groups.get(g)))
            .chain(system.and_then(|s| self.systems.get(s)))
    }

    /// Every tag as stored rows (setter and time unknown here).
    pub fn entries(&self, cluster: &str) -> Vec<TagView> {
        let mut out = Vec::new();
        let mut add = |kind: Kind, object: &str, set: &TagSet| {
            for (k, v) in set {
                out.push(TagView {
                    cluster: cluster.to_string(),
                    kind: kind.as_str().into(),
                    object: object.to_string(),
                    key: k.clone(),
                    value: v.clone(),
                });
            }
        };
        add(Kind::Cluster, "", &self.cluster);
        for (g, set) in &self.groups {
            add(Kind::Group, g, set);
        }
        for (s, set) in &self.systems {
            add(Kind::System, s, set);
        }
        out
    }
}

/// What a tag is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Cluster,
    Group,
    System,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Group => "group",
            Kind::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "cluster" => Some(Kind::Cluster),
            "group" => Some(Kind::Group),
            "system" => Some(Kind::System),
            _ => None,
        }
    }
}

/// A tag as the API shows it with an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TagView {
    pub cluster: String,
    /// `cluster`, `group` or `system`.
    pub kind: String,
    /// The group or system; empty for the cluster.
    pub object: String,
    pub key: String,
    pub value: String,
}

/// Checks a key: 1 to 64 letters, digits, `_`, `.`, `-` or `/`, starting
/// with a letter or digit.
pub fn check_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= KEY_MAX
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag key `{key}`: use 1 to {KEY_MAX} letters, digits, `_`, `.`, `-` or `/`, starting with a letter or digit (e.g. env, team.owner)"
        ))
    }
}

/// Checks a value: 1 to 256 printable characters, no `,` or `"`, no
/// space at either end.
pub fn check_value(key: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= VALUE_MAX
        && value.trim() == value
        && !value
            .chars()
            .any(|c| c.is_control() || c == ',' || c == '"');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {key}=`{value}`: a value is 1 to {VALUE_MAX} printable characters, without `,` or `\"` and without spaces at either end"
        ))
    }
}

/// `key=value`, checked.
pub fn parse_tag(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!(
            "`{text}`: write a tag as key=value (e.g. env=prod)"
        ));
    };
    check_key(key)?;
    check_value(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

/// A filter on tags: a key (any value), or `key=value` where the value
/// may hold `*` and `?` globs. Keys and values match case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    key: String,
    value: Option<String>,
}

impl TagFilter {
    /// `key` or `key=value-glob`.
    pub fn parse(text: &str) -> Result<TagFilter, String> {
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (text, None),
        };
        check_key(key).map_err(|e| format!("{e}; filter by tag as key=value or key"))?;
        if value.is_some_and(str::is_empty) {
            return Err(format!(
                "`{text}`: give a value after `=` (a glob like prod* is fine), or just the key"
            ));
        }
        Ok(TagFilter {
            key: key.to_lowercase(),
            value: value.map(str::to_lowercase),
        })
    }

    /// Whether `set` has the tag.
    pub fn matches(&self, set: &TagSet) -> bool {
        set.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case(&self.key)
                && self
                    .value
                    .as_ref()
                    .is_none_or(|want| crate::alerts::settings::glob(want, &v.to_lowercase()))
        })
    }

    /// Whether any of the sets an object carries has the tag.
    pub fn carried<'a>(&self, mut sets: impl Iterator<Item = &'a TagSet>) -> bool {
        sets.any(|s| self.matches(s))
    }
}

impl std::fmt::Display for TagFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// `?tag=env=prod,tier=web`: every filter must match.
pub fn parse_filters(text: Option<&str>) -> Result<Vec<TagFilter>, String> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(TagFilter::parse)
        .collect()
}

/// Whether every filter is carried by one of `sets` (each filter may be
/// carried by a different one).
pub fn all_carried<'a>(filters: &[TagFilter], sets: impl Iterator<Item = &'a TagSet>) -> bool {
    let sets: Vec<&TagSet> = sets.collect();
    filters.iter().all(|f| f.carried(sets.iter().copied()))
}

/// Whether an alert's cluster, group or system carries every tag of
/// `filters` (the alerts list's `?tag=`).
pub fn alert_carries(
    fleet: &crate::fleet::Fleet,
    alert: &haven_store::AlertRecord,
    filters: &[TagFilter],
) -> bool {
    fleet.carries(
        &alert.cluster,
        alert.service_group.as_deref(),
        alert.system.as_deref(),
        filters,
    )
}

/// What a tag change is about: a cluster, or a group or system of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub cluster: String,
    pub kind: Kind,
    /// Empty for the cluster.
    pub name: String,
}

impl Object {
    /// `cluster c`, `group web of cluster c`, `system n1 of cluster c`.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Cluster => format!("cluster {}", self.cluster),
            k => format!("{} {} of cluster {}", k.as_str(), self.name, self.cluster),
        }
    }

    /// `c`, `c/web`, `c/n1` as the access log and the CLI name it.
    pub fn path(&self) -> String {
        match self.kind {
            Kind::Cluster => self.cluster.clone(),
            _ => format!("{}/{}", self.cluster, self.name),
        }
    }
}

impl Server {
    /// Sets (`set`) and removes (`remove`) tags of one object, checked
    /// already, as `user`: stores the change, then puts the object's
    /// stored tags in the fleet. Returns the object's tags after it, and
    /// how many of `remove` were there.
    pub async fn change_tags(
        self: &Arc<Self>,
        object: &Object,
        set: TagSet,
        remove: Vec<String>,
        user: &str,
    ) -> Result<(TagSet, u64), String> {
        // One change at a time: the memory is set from the table in the
        // order the changes were stored.
        let _one = self.tag_changes.lock().await;
        let now = crate::now_ms();
        let rows: Vec<TagRecord> = set
            .into_iter()
            .map(|(key, value)| TagRecord {
                cluster: object.cluster.clone(),
                kind: object.kind.as_str().into(),
                object: object.name.clone(),
                key,
                value,
                set_by: user.to_string(),
                set_ms: now,
            })
            .collect();
        let o = object.clone();
        let (stored, removed) = self
            .write_store(move |store| {
                store.set_tags(&rows)?;
                let removed = match remove.is_empty() {
                    true => 0,
                    false => store.remove_tags(&o.cluster, o.kind.as_str(), &o.name, &remove)?,
                };
                let stored = store.tags(Some(&o.cluster))?;
                Ok((stored, removed))
            })
            .await?;
        let mine: TagSet = stored
            .iter()
            .filter(|t| t.kind == object.kind.as_str() && t.object == object.name)
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        self.fleet
            .set_tags(&object.cluster, object.kind, &object.name, mine.clone());
        Ok((mine, removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> TagSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_and_values_are_checked_with_a_message_that_says_the_rule() {
        assert_eq!(
            parse_tag("env=prod"),
            Ok(("env".to_string(), "prod".to_string()))
        );
        assert_eq!(
            parse_tag("team.owner=Jane Doe"),
            Ok(("team.owner".to_string(), "Jane Doe".to_string()))
        );
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        for bad in [
            "env",
            "=prod",
            "-env=prod",
            "en v=prod",
            "env=",
            "env= prod",
            "env=a,b",
            "env=\"x\"",
            "env=tab\there",
        ] {
            let err = parse_tag(bad).unwrap_err();
            assert!(err.contains('`'), "{bad}: {err}");
        }
        assert!(parse_tag(&format!("{}=x", "k".repeat(65))).is_err());
        assert!(parse_tag(&format!("k={}", "v".repeat(257))).is_err());
        assert!(parse_tag(&format!("k={}", "v".repeat(256))).is_ok());
    }

    #[test]
    fn filters_match_keys_and_value_globs_case_insensitively() {
        let tags = set(&[("Env", "Prod-EU"), ("tier", "web")]);
        let f = |t: &str| TagFilter::parse(t).unwrap().matches(&tags);
        assert!(f("env=prod-eu"));
        assert!(f("env=prod*"));
        assert!(f("ENV"));
        assert!(!f("env=prod"));
        assert!(!f("owner"));
        assert!(TagFilter::parse("env=").is_err());
        assert!(TagFilter::parse("=x").is_err());
        assert_eq!(parse_filters(Some(" env=prod , tier ")).unwrap().len(), 2);
        assert_eq!(parse_filters(None).unwrap(), vec![]);
    }

    #[test]
    fn an_object_carries_its_own_its_groups_and_its_clusters_tags() {
        let mut c = ClusterTags::default();
        c.put(Kind::Cluster, "", set(&[("env", "prod")]));
        c.put(Kind::Group, "web", set(&[("tier", "front")]));
        c.put(Kind::System, "n1", set(&[("rack", "r7")]));
        let filters = parse_filters(Some("env=prod,tier=front")).unwrap();
        assert!(all_carried(&filters, c.carried(Some("web"), None)));
        assert!(!all_carried(&filters, c.carried(Some("db"), None)));
        assert!(!all_carried(&filters, c.carried(None, Some("n1"))));
        let rack = parse_filters(Some("rack=r7")).unwrap();
        assert!(all_carried(&rack, c.carried(Some("web"), Some("n1"))));
        // Emptying an object's tags forgets it.
        c.put(Kind::Group, "web", TagSet::new());
        assert!(c.groups.is_empty());
    }
}
