//! Checker: the syntax trees of main.cf and its included files into a
//! [`ClusterConfig`], enforcing what the model assumes.
//!
//! Enforced here: one cluster; unique names (systems, groups, types,
//! resources cluster-wide, attributes per object and system); every
//! referenced system, type, resource and group exists; resource attributes
//! are declared by their type (or are common to all resources) and are
//! coerced to the declared type and shape; the well-known group and system
//! attributes are valid and go into typed fields; resource and group
//! dependencies are acyclic, without duplicates or self-links, and resource
//! links stay inside their group.
//!
//! Invariants: values end up in one canonical form (a declared `str` is
//! always `Scalar::Str`, `int`/`boolean` always `Scalar::Int`, association
//! keys of typed attributes always strings), so that writing a checked
//! configuration and checking it again gives the same value; the first
//! violation found is returned, pointing at the token to fix.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use haven_model::{
    name, Attr, AttrDecl, AttrDimension, AttrType, AttrValue, ClusterConfig, FailoverPolicy,
    GroupConfig, GroupDependency, Name, ResourceConfig, ResourceDependency, Scalar, SystemConfig,
    TypeDef, COMMON_RESOURCE_ATTRS,
};

use crate::ast::*;
use crate::error::{ConfigError, Pos};

/// The file name TypeDef.source takes for types written in main.cf itself.
pub(crate) const MAIN_SOURCE: &str = "main.cf";

/// Group attributes that go into typed fields of [`GroupConfig`].
const GROUP_FIELDS: &[&str] = &[
    "SystemList",
    "AutoStartList",
    "Parallel",
    "AutoFailOver",
    "AutoStart",
    "FailOverPolicy",
    "Frozen",
    "Enabled",
    "Load",
];

/// System attributes that go into typed fields of [`SystemConfig`].
const SYSTEM_FIELDS: &[&str] = &["Capacity", "Frozen"];

/// An included file, parsed.
pub(crate) struct Included {
    /// The name errors in it are reported under.
    pub file: String,
    /// The path as written in the `include` line (TypeDef.source).
    pub source: String,
    pub raw: RawFile,
}

type Result<T> = std::result::Result<T, ConfigError>;

/// Checks main.cf (`main`, reported as `file`) and its included files, in
/// include order, and builds the configuration.
pub(crate) fn build(file: &str, main: RawFile, included: Vec<Included>) -> Result<ClusterConfig> {
    let mut types = TypeTable::default();
    for inc in &included {
        only_types(inc)?;
        for t in &inc.raw.types {
            types.add(&inc.file, &inc.source, t)?;
        }
    }
    for t in &main.types {
        types.add(file, MAIN_SOURCE, t)?;
    }

    let checker = Checker {
        file,
        systems: system_names(file, &main.systems)?,
        types: &types.defs,
    };
    let cluster = checker.cluster(&main)?;
    let attributes =
        checker.plain_attrs(&cluster.attrs, &format!("cluster `{}`", cluster.name.text))?;
    let systems = main
        .systems
        .iter()
        .map(|s| checker.system(s))
        .collect::<Result<Vec<_>>>()?;
    let groups = checker.groups(&main.groups)?;

    Ok(ClusterConfig {
        name: name(&cluster.name.text),
        includes: main.includes.iter().map(|i| i.path.clone()).collect(),
        attributes,
        systems,
        types: types.defs,
        groups,
    })
}

/// An included file may only hold type definitions.
fn only_types(inc: &Included) -> Result<()> {
    let raw = &inc.raw;
    let misplaced = raw
        .includes
        .iter()
        .map(|i| (i.pos, format!("`include \"{}\"`", i.path)))
        .chain(
            raw.clusters
                .iter()
                .map(|c| (c.name.pos, format!("`cluster {}`", c.name.text))),
        )
        .chain(
            raw.systems
                .iter()
                .map(|s| (s.name.pos, format!("`system {}`", s.name.text))),
        )
        .chain(
            raw.groups
                .iter()
                .map(|g| (g.name.pos, format!("`group {}`", g.name.text))),
        )
        .min_by_key(|(pos, _)| *pos);
    match misplaced {
        Some((pos, what)) => Err(ConfigError::at(
            &inc.file,
            pos,
            format!(
                "`{}` is included from main.cf and may only define types; move {what} into main.cf",
                inc.source
            ),
        )),
        None => Ok(()),
    }
}

// ---- types ---------------------------------------------------------------

#[derive(Default)]
struct TypeTable {
    defs: Vec<TypeDef>,
    /// Where each type was first defined: file and position.
    seen: HashMap<String, (String, Pos)>,
}

impl TypeTable {
    fn add(&mut self, file: &str, source: &str, raw: &RawType) -> Result<()> {
        if let Some((first_file, first)) = self.seen.get(&raw.name.text) {
            return Err(ConfigError::at(
                file,
                raw.name.pos,
                format!(
                    "type `{}` is defined twice (first in {first_file} at line {}); remove one definition",
                    raw.name.text, first.line
                ),
            ));
        }
        if let Some((first, again)) = repeated(raw.decls.iter().map(|d| (d.name.text.as_str(), d)))
        {
            return Err(ConfigError::at(
                file,
                again.name.pos,
                format!(
                    "attribute `{}` is declared twice in type `{}` (first at line {}); remove one",
                    again.name.text, raw.name.text, first.name.pos.line
                ),
            ));
        }
        let mut attrs: Vec<AttrDecl> = Vec::new();
        for d in &raw.decls {
            let what = format!(
                "the default of `{}` in type `{}`",
                d.name.text, raw.name.text
            );
            let default = d
                .default
                .as_ref()
                .map(|v| typed_value(file, d.attr_type, d.dimension, v, &what))
                .transpose()?;
            attrs.push(AttrDecl {
                name: d.name.text.clone(),
                attr_type: d.attr_type,
                dimension: d.dimension,
                is_static: d.is_static,
                is_temp: d.is_temp,
                default,
            });
        }
        self.seen
            .insert(raw.name.text.clone(), (file.to_string(), raw.name.pos));
        self.defs.push(TypeDef {
            name: name(&raw.name.text),
            attrs,
            source: source.to_string(),
        });
        Ok(())
    }
}

/// The declared systems, checked for duplicates.
fn system_names(file: &str, systems: &[RawBlock]) -> Result<Vec<String>> {
    if let Some((first, again)) = repeated(systems.iter().map(|s| (s.name.text.as_str(), s))) {
        return Err(ConfigError::at(
            file,
            again.name.pos,
            format!(
                "system `{}` is declared twice (first at line {}); merge the two blocks",
                again.name.text, first.name.pos.line
            ),
        ));
    }
    Ok(systems.iter().map(|s| s.name.text.clone()).collect())
}

// ---- the checker ---------------------------------------------------------

struct Checker<'a> {
    /// main.cf's name in errors.
    file: &'a str,
    systems: Vec<String>,
    types: &'a [TypeDef],
}

impl Checker<'_> {
    fn error(&self, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, message)
    }

    fn cluster<'r>(&self, main: &'r RawFile) -> Result<&'r RawBlock> {
        match main.clusters.as_slice() {
            [] => Err(self.error(
                Pos::START,
                "main.cf defines no cluster; add a line `cluster NAME` (for example `cluster demo`) \
                 before the systems",
            )),
            [one] => Ok(one),
            [first, second, ..] => Err(self.error(
                second.name.pos,
                format!(
                    "a second cluster `{}` is defined (`{}` at line {}); main.cf describes one cluster, \
                     remove one `cluster` block",
                    second.name.text, first.name.text, first.name.pos.line
                ),
            )),
        }
    }

    /// A system named in a value or after `@`.
    fn system_ref(&self, text: &str, pos: Pos, context: &str) -> Result<Name> {
        if self.systems.iter().any(|s| s == text) {
            return Ok(name(text));
        }
        let known = if self.systems.is_empty() {
            "no systems are declared".to_string()
        } else {
            format!("declared systems: {}", list(self.systems.iter()))
        };
        Err(self.error(
            pos,
            format!(
                "unknown system `{text}` in {context} ({known}){}",
                hint(
                    text,
                    self.systems.iter(),
                    &format!("; declare it with `system {text}` or fix the name")
                )
            ),
        ))
    }

    /// Fails on an attribute set twice for the same system in one object.
    fn unique_attrs(&self, attrs: &[RawAttr], owner: &str) -> Result<()> {
        let keyed = attrs.iter().map(|a| {
            let system = a.system.as_ref().map(|s| s.text.as_str());
            ((a.name.text.as_str(), system), a)
        });
        if let Some((first, again)) = repeated(keyed) {
            let shown = match &again.system {
                Some(s) => format!("{}@{}", again.name.text, s.text),
                None => again.name.text.clone(),
            };
            return Err(self.error(
                again.name.pos,
                format!(
                    "attribute `{shown}` of {owner} is set twice (first at line {}); remove one",
                    first.name.pos.line
                ),
            ));
        }
        Ok(())
    }

    /// The system an attribute is localised to, checked.
    fn localisation(&self, attr: &RawAttr, owner: &str) -> Result<Option<Name>> {
        attr.system
            .as_ref()
            .map(|s| {
                self.system_ref(
                    &s.text,
                    s.pos,
                    &format!("`{}@{}` of {owner}", attr.name.text, s.text),
                )
            })
            .transpose()
    }

    /// Attributes kept as written (no declared type).
    fn plain_attrs(&self, attrs: &[RawAttr], owner: &str) -> Result<Vec<Attr>> {
        self.unique_attrs(attrs, owner)?;
        attrs.iter().map(|a| self.plain_attr(a, owner)).collect()
    }

    fn plain_attr(&self, a: &RawAttr, owner: &str) -> Result<Attr> {
        Ok(Attr {
            name: a.name.text.clone(),
            system: self.localisation(a, owner)?,
            value: plain_value(self.file, &a.value)?,
        })
    }

    /// A well-known attribute that applies to the whole object.
    fn not_localised(&self, a: &RawAttr, owner: &str) -> Result<()> {
        match &a.system {
            Some(s) => Err(self.error(
                s.pos,
                format!(
                    "`{}` of {owner} cannot be localised to a system; write `{} = ...` without `@{}`",
                    a.name.text, a.name.text, s.text
                ),
            )),
            None => Ok(()),
        }
    }

    /// The value of a well-known single-valued attribute.
    fn single<'r>(&self, a: &'r RawAttr, owner: &str) -> Result<(&'r RawScalar, String)> {
        let what = format!("`{}` of {owner}", a.name.text);
        match &a.value.kind {
            RawValueKind::Scalar(s) => Ok((s, what)),
            _ => Err(self.error(a.value.pos, single_value_message(&what))),
        }
    }

    fn int(&self, a: &RawAttr, owner: &str) -> Result<i64> {
        let (s, what) = self.single(a, owner)?;
        int_of(self.file, s, &what)
    }

    fn flag(&self, a: &RawAttr, owner: &str) -> Result<bool> {
        let (s, what) = self.single(a, owner)?;
        bool_of(self.file, s, &what)
    }

    // ---- systems ----

    fn system(&self, raw: &RawBlock) -> Result<SystemConfig> {
        let owner = format!("system `{}`", raw.name.text);
        self.unique_attrs(&raw.attrs, &owner)?;
        let mut system = SystemConfig::new(&raw.name.text);
        for a in &raw.attrs {
            if SYSTEM_FIELDS.contains(&a.name.text.as_str()) {
                self.not_localised(a, &owner)?;
            }
            match a.name.text.as_str() {
                "Capacity" => system.capacity = self.int(a, &owner)?,
                "Frozen" => system.frozen = self.flag(a, &owner)?,
                _ => system.attributes.push(self.plain_attr(a, &owner)?),
            }
        }
        Ok(system)
    }

    // ---- groups ----

    fn groups(&self, raws: &[RawGroup]) -> Result<Vec<GroupConfig>> {
        if let Some((first, again)) = repeated(raws.iter().map(|g| (g.name.text.as_str(), g))) {
            return Err(self.error(
                again.name.pos,
                format!(
                    "group `{}` is defined twice (first at line {}); rename or merge one",
                    again.name.text, first.name.pos.line
                ),
            ));
        }
        // Resource names are unique cluster-wide.
        let resources = || {
            raws.iter().flat_map(|g| {
                g.resources
                    .iter()
                    .map(move |r| (r.name.text.as_str(), (g, r)))
            })
        };
        if let Some(((group, first), (_, again))) = repeated(resources()) {
            return Err(self.error(
                again.name.pos,
                format!(
                    "resource `{}` is defined twice (first in group `{}` at line {}); \
                     resource names are unique in the cluster, rename one",
                    again.name.text, group.name.text, first.name.pos.line
                ),
            ));
        }
        let owners: Owners = resources()
            .map(|(name, (g, _))| (name, g.name.text.as_str()))
            .collect();
        let mut groups = raws
            .iter()
            .map(|g| self.group(g, &owners))
            .collect::<Result<Vec<_>>>()?;
        self.group_dependencies(raws, &mut groups)?;
        Ok(groups)
    }

    fn group(&self, raw: &RawGroup, owners: &Owners) -> Result<GroupConfig> {
        let owner = format!("group `{}`", raw.name.text);
        self.unique_attrs(&raw.attrs, &owner)?;
        let mut group = GroupConfig::new(&raw.name.text);
        let mut auto_start: Vec<&RawScalar> = Vec::new();
        let mut has_system_list = false;
        for a in &raw.attrs {
            if GROUP_FIELDS.contains(&a.name.text.as_str()) {
                self.not_localised(a, &owner)?;
            }
            match a.name.text.as_str() {
                "SystemList" => {
                    group.system_list = self.system_list(a, &owner)?;
                    has_system_list = true;
                }
                "AutoStartList" => auto_start = self.auto_start_list(a, &owner)?,
                "Parallel" => group.parallel = self.flag(a, &owner)?,
                "AutoFailOver" => group.auto_fail_over = self.flag(a, &owner)?,
                "AutoStart" => group.auto_start = self.flag(a, &owner)?,
                "Frozen" => group.frozen = self.flag(a, &owner)?,
                "Enabled" => group.enabled = self.flag(a, &owner)?,
                "Load" => group.load = self.int(a, &owner)?,
                "FailOverPolicy" => group.failover_policy = self.failover_policy(a, &owner)?,
                _ => group.attributes.push(self.plain_attr(a, &owner)?),
            }
        }
        // Checked after the loop: AutoStartList may come before SystemList.
        for s in auto_start {
            let system = self.system_ref(&s.text, s.pos, &format!("AutoStartList of {owner}"))?;
            if group.priority(&system).is_none() {
                return Err(self.error(
                    s.pos,
                    format!(
                        "AutoStartList of {owner} names `{system}`, which is not in its SystemList; \
                         add `{system} = N` to SystemList or remove it from AutoStartList"
                    ),
                ));
            }
            if group.auto_start_list.contains(&system) {
                return Err(self.error(
                    s.pos,
                    format!("AutoStartList of {owner} names `{system}` twice; remove one"),
                ));
            }
            group.auto_start_list.push(system);
        }
        if !raw.resources.is_empty() && group.system_list.is_empty() {
            let example = self.systems.first().map_or("sysA", String::as_str);
            let empty = if has_system_list {
                " (it is empty)"
            } else {
                ""
            };
            return Err(self.error(
                raw.name.pos,
                format!(
                    "{owner} has no SystemList{empty}; a group with resources must name the systems it \
                     can run on: add `SystemList = {{ {example} = 0 }}` to `group {} ( ... )`",
                    raw.name.text
                ),
            ));
        }
        group.resources = raw
            .resources
            .iter()
            .map(|r| self.resource(r))
            .collect::<Result<Vec<_>>>()?;
        group.dependencies = self.resource_dependencies(raw, owners)?;
        Ok(group)
    }

    fn system_list(&self, a: &RawAttr, owner: &str) -> Result<Vec<(Name, u32)>> {
        let context = format!("SystemList of {owner}");
        let entries: Vec<(&RawScalar, u32)> = match &a.value.kind {
            RawValueKind::Assoc(pairs) => pairs
                .iter()
                .map(|(sys, prio)| Ok((sys, self.priority(sys, prio, &context)?)))
                .collect::<Result<_>>()?,
            RawValueKind::List(items) => items
                .iter()
                .zip(0u32..)
                .collect(),
            RawValueKind::Scalar(_) => {
                return Err(self.error(
                    a.value.pos,
                    format!("{context} must be a list of systems with priorities: `{{ sysA = 0, sysB = 1 }}`"),
                ))
            }
        };
        let mut list: Vec<(Name, u32)> = Vec::new();
        for (sys, priority) in entries {
            let system = self.system_ref(&sys.text, sys.pos, &context)?;
            if list.iter().any(|(s, _)| *s == system) {
                return Err(self.error(
                    sys.pos,
                    format!("{context} names `{system}` twice; remove one"),
                ));
            }
            list.push((system, priority));
        }
        Ok(list)
    }

    fn priority(&self, sys: &RawScalar, prio: &RawScalar, context: &str) -> Result<u32> {
        parse_int(&prio.text)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| {
                self.error(
                    prio.pos,
                    format!(
                        "the priority of `{}` in {context} must be a whole number from 0 up, not `{}`",
                        sys.text, prio.text
                    ),
                )
            })
    }

    fn auto_start_list<'r>(&self, a: &'r RawAttr, owner: &str) -> Result<Vec<&'r RawScalar>> {
        match &a.value.kind {
            RawValueKind::List(items) => Ok(items.iter().collect()),
            RawValueKind::Scalar(s) => Ok(vec![s]),
            RawValueKind::Assoc(_) => Err(self.error(
                a.value.pos,
                format!("AutoStartList of {owner} is a list of systems, `{{ sysA, sysB }}`, without priorities"),
            )),
        }
    }

    fn failover_policy(&self, a: &RawAttr, owner: &str) -> Result<FailoverPolicy> {
        let policy = match &a.value.kind {
            RawValueKind::Scalar(s) => FailoverPolicy::parse(&s.text),
            _ => None,
        };
        policy.ok_or_else(|| {
            self.error(
                a.value.pos,
                format!("FailOverPolicy of {owner} must be Priority, RoundRobin or Load"),
            )
        })
    }

    // ---- resources ----

    fn resource(&self, raw: &RawResource) -> Result<ResourceConfig> {
        let type_name = &raw.type_name.text;
        let Some(typedef) = self.types.iter().find(|t| *t.name == **type_name) else {
            let known = if self.types.is_empty() {
                "no types are defined; is `include \"types.cf\"` missing?".to_string()
            } else {
                format!(
                    "defined types: {}",
                    list(self.types.iter().map(|t| &*t.name))
                )
            };
            return Err(self.error(
                raw.type_name.pos,
                format!(
                    "unknown resource type `{type_name}` of resource `{}` ({known}){}",
                    raw.name.text,
                    hint(
                        type_name,
                        self.types.iter().map(|t| &*t.name),
                        &format!("; define it with `type {type_name} ( ... )` or include the file that does"),
                    )
                ),
            ));
        };
        let owner = format!("resource `{}`", raw.name.text);
        self.unique_attrs(&raw.attrs, &owner)?;
        let attributes = raw
            .attrs
            .iter()
            .map(|a| self.resource_attr(a, typedef, &owner))
            .collect::<Result<Vec<_>>>()?;
        Ok(ResourceConfig {
            name: name(&raw.name.text),
            type_name: typedef.name.clone(),
            attributes,
        })
    }

    fn resource_attr(&self, a: &RawAttr, typedef: &TypeDef, owner: &str) -> Result<Attr> {
        let attr = &a.name.text;
        let decl = typedef
            .attr(attr)
            .map(|d| (d.attr_type, d.dimension, d.is_temp))
            .or_else(|| {
                COMMON_RESOURCE_ATTRS
                    .iter()
                    .find(|(n, _, _)| n == attr)
                    .map(|(_, t, _)| (*t, AttrDimension::Scalar, false))
            });
        let Some((attr_type, dimension, is_temp)) = decl else {
            let declared = if typedef.attrs.is_empty() {
                format!("{} declares no attributes", typedef.name)
            } else {
                format!(
                    "{} declares: {}",
                    typedef.name,
                    list(typedef.attrs.iter().map(|d| d.name.as_str()))
                )
            };
            let candidates = typedef
                .attrs
                .iter()
                .map(|d| d.name.as_str())
                .chain(COMMON_RESOURCE_ATTRS.iter().map(|(n, _, _)| *n));
            let fix = format!(
                "; declare `str {attr}` in type `{}` or remove it",
                typedef.name
            );
            return Err(self.error(
                a.name.pos,
                format!(
                    "type `{}` has no attribute `{attr}` (in {owner}); {declared}; \
                     every resource also takes: {}{}",
                    typedef.name,
                    list(COMMON_RESOURCE_ATTRS.iter().map(|(n, _, _)| *n)),
                    hint(attr, candidates, &fix),
                ),
            ));
        };
        if is_temp {
            return Err(self.error(
                a.name.pos,
                format!(
                    "`{attr}` of type `{}` is a temporary (`temp`) attribute and cannot be set in main.cf \
                     (in {owner}); remove the line",
                    typedef.name
                ),
            ));
        }
        let what = format!("`{attr}` of {owner}");
        Ok(Attr {
            name: attr.clone(),
            system: self.localisation(a, owner)?,
            value: typed_value(self.file, attr_type, dimension, &a.value, &what)?,
        })
    }

    // ---- dependencies ----

    fn resource_dependencies(
        &self,
        raw: &RawGroup,
        owners: &Owners,
    ) -> Result<Vec<ResourceDependency>> {
        let group = &raw.name.text;
        let local: HashSet<&str> = raw.resources.iter().map(|r| r.name.text.as_str()).collect();
        let mut links: Vec<(&str, &str)> = Vec::new();
        let mut at: Vec<Pos> = Vec::new();
        let mut first_line: HashMap<(&str, &str), usize> = HashMap::new();
        for dep in &raw.dependencies {
            for end in [&dep.parent, &dep.child] {
                if local.contains(end.text.as_str()) {
                    continue;
                }
                return Err(self.error(end.pos, not_in_group(raw, end, owners)));
            }
            let (parent, child) = (dep.parent.text.as_str(), dep.child.text.as_str());
            if parent == child {
                return Err(self.error(
                    dep.parent.pos,
                    format!(
                        "resource `{parent}` cannot require itself; \
                         remove `{parent} requires {child}`"
                    ),
                ));
            }
            if let Some(line) = first_line.get(&(parent, child)) {
                return Err(self.error(
                    dep.parent.pos,
                    format!(
                        "`{parent} requires {child}` is already written at line {line}; \
                         remove the duplicate"
                    ),
                ));
            }
            first_line.insert((parent, child), dep.parent.pos.line);
            links.push((parent, child));
            at.push(dep.parent.pos);
        }
        if let Some((closing, cycle)) = find_cycle(&links) {
            return Err(self.error(
                at[closing],
                format!(
                    "resource dependency cycle in group `{group}`: {}; \
                     remove one of these `requires` lines",
                    cycle.join(" -> ")
                ),
            ));
        }
        Ok(links
            .into_iter()
            .map(|(parent, child)| ResourceDependency {
                parent: name(parent),
                child: name(child),
            })
            .collect())
    }

    fn group_dependencies(&self, raws: &[RawGroup], groups: &mut [GroupConfig]) -> Result<()> {
        let names: Vec<&str> = raws.iter().map(|g| g.name.text.as_str()).collect();
        let mut links: Vec<(&str, &str)> = Vec::new();
        let mut at: Vec<Pos> = Vec::new();
        for (raw, group) in raws.iter().zip(groups.iter_mut()) {
            let parent = raw.name.text.as_str();
            let mut first_line: HashMap<&str, usize> = HashMap::new();
            for dep in &raw.group_dependencies {
                let child = dep.child.text.as_str();
                if !names.contains(&child) {
                    return Err(self.error(
                        dep.child.pos,
                        format!(
                            "group `{parent}` requires unknown group `{child}` (groups: {}){}",
                            list(names.iter()),
                            hint(child, names.iter(), "")
                        ),
                    ));
                }
                if child == parent {
                    return Err(self.error(
                        dep.child.pos,
                        format!("group `{parent}` cannot require itself; remove the `requires group {child}` line"),
                    ));
                }
                if let Some(line) = first_line.get(child) {
                    return Err(self.error(
                        dep.pos,
                        format!(
                            "group `{parent}` already requires group `{child}` at line {line}; keep one \
                             `requires group {child}` line"
                        ),
                    ));
                }
                first_line.insert(child, dep.pos.line);
                links.push((parent, child));
                at.push(dep.pos);
                group.group_dependencies.push(GroupDependency {
                    child: name(child),
                    category: dep.category,
                    location: dep.location,
                    rigidity: dep.rigidity,
                });
            }
        }
        match find_cycle(&links) {
            Some((closing, cycle)) => Err(self.error(
                at[closing],
                format!(
                    "group dependency cycle: {}; remove one of these `requires group` lines",
                    cycle.join(" -> ")
                ),
            )),
            None => Ok(()),
        }
    }
}

// ---- values --------------------------------------------------------------

/// A decimal integer as the language writes it: an optional `-` and digits
/// (no `+`, no spaces). `None` if the text is not one or does not fit.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    if looks_like_int(text) {
        text.parse().ok()
    } else {
        None
    }
}

fn looks_like_int(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An untyped scalar: a bare integer is an integer, anything else text.
fn plain_scalar(file: &str, raw: &RawScalar) -> Result<Scalar> {
    if raw.quoted || !looks_like_int(&raw.text) {
        return Ok(Scalar::Str(raw.text.clone()));
    }
    parse_int(&raw.text).map(Scalar::Int).ok_or_else(|| {
        ConfigError::at(
            file,
            raw.pos,
            format!(
                "number `{}` does not fit in a 64-bit integer; quote it (`\"{}\"`) to keep it as text",
                raw.text, raw.text
            ),
        )
    })
}

/// An untyped value, kept in the shape it was written in.
fn plain_value(file: &str, raw: &RawValue) -> Result<AttrValue> {
    Ok(match &raw.kind {
        RawValueKind::Scalar(s) => AttrValue::Scalar(plain_scalar(file, s)?),
        RawValueKind::List(items) => AttrValue::List(
            items
                .iter()
                .map(|s| plain_scalar(file, s))
                .collect::<Result<_>>()?,
        ),
        RawValueKind::Assoc(pairs) => AttrValue::Assoc(
            pairs
                .iter()
                .map(|(k, v)| Ok((plain_scalar(file, k)?, plain_scalar(file, v)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

fn int_of(file: &str, raw: &RawScalar, what: &str) -> Result<i64> {
    parse_int(&raw.text).ok_or_else(|| {
        let message = if looks_like_int(&raw.text) {
            format!(
                "{what} is an integer, and `{}` does not fit in 64 bits",
                raw.text
            )
        } else {
            format!("{what} is an integer; `{}` is not one", raw.text)
        };
        ConfigError::at(file, raw.pos, message)
    })
}

fn bool_of(file: &str, raw: &RawScalar, what: &str) -> Result<bool> {
    match parse_int(&raw.text) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(ConfigError::at(
            file,
            raw.pos,
            format!("{what} is a boolean: write 0 or 1, not `{}`", raw.text),
        )),
    }
}

/// A scalar coerced to a declared base type. `what` names the attribute
/// and its owner for the error.
fn typed_scalar(file: &str, t: AttrType, raw: &RawScalar, what: &str) -> Result<Scalar> {
    Ok(match t {
        AttrType::Str => Scalar::Str(raw.text.clone()),
        AttrType::Int => Scalar::Int(int_of(file, raw, what)?),
        AttrType::Boolean => Scalar::Int(i64::from(bool_of(file, raw, what)?)),
    })
}

fn single_value_message(what: &str) -> String {
    format!("{what} is a single value; write `= value`, not a list `{{ ... }}`")
}

/// A value coerced to a declared type and shape.
fn typed_value(
    file: &str,
    t: AttrType,
    dimension: AttrDimension,
    raw: &RawValue,
    what: &str,
) -> Result<AttrValue> {
    let fail = |message: String| Err(ConfigError::at(file, raw.pos, message));
    let scalars = |items: &[RawScalar]| -> Result<Vec<Scalar>> {
        items
            .iter()
            .map(|s| typed_scalar(file, t, s, what))
            .collect()
    };
    match (dimension, &raw.kind) {
        (AttrDimension::Scalar, RawValueKind::Scalar(s)) => {
            Ok(AttrValue::Scalar(typed_scalar(file, t, s, what)?))
        }
        (AttrDimension::Scalar, _) => fail(single_value_message(what)),
        (AttrDimension::Vector | AttrDimension::Keylist, RawValueKind::List(items)) => {
            if dimension == AttrDimension::Keylist {
                unique_keys(file, items.iter(), what, "keylist")?;
            }
            Ok(AttrValue::List(scalars(items)?))
        }
        (AttrDimension::Vector | AttrDimension::Keylist, RawValueKind::Scalar(_)) => fail(format!(
            "{what} expects a list `{{ ... }}`; write `{{ value }}` for a single item"
        )),
        (AttrDimension::Vector | AttrDimension::Keylist, RawValueKind::Assoc(_)) => fail(format!(
            "{what} expects a list `{{ a, b }}`, not `key = value` pairs"
        )),
        (AttrDimension::Association, RawValueKind::Assoc(pairs)) => {
            unique_keys(file, pairs.iter().map(|(k, _)| k), what, "association")?;
            Ok(AttrValue::Assoc(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        Ok((Scalar::Str(k.text.clone()), typed_scalar(file, t, v, what)?))
                    })
                    .collect::<Result<_>>()?,
            ))
        }
        (AttrDimension::Association, RawValueKind::List(items)) if items.is_empty() => {
            Ok(AttrValue::Assoc(Vec::new()))
        }
        (AttrDimension::Association, _) => fail(format!(
            "{what} expects an association `{{ key = value, ... }}`"
        )),
    }
}

fn unique_keys<'r>(
    file: &str,
    keys: impl Iterator<Item = &'r RawScalar>,
    what: &str,
    shape: &str,
) -> Result<()> {
    if let Some((_, again)) = repeated(keys.map(|k| (k.text.as_str(), k))) {
        return Err(ConfigError::at(
            file,
            again.pos,
            format!(
                "{what} is a {shape} and names `{}` twice; remove one",
                again.text
            ),
        ));
    }
    Ok(())
}

// ---- helpers -------------------------------------------------------------

/// Which group owns each resource.
type Owners<'r> = HashMap<&'r str, &'r str>;

/// The first item whose key was seen before: `(first, again)`.
fn repeated<K: Hash + Eq, T>(items: impl IntoIterator<Item = (K, T)>) -> Option<(T, T)> {
    let mut seen = HashMap::new();
    for (key, item) in items {
        match seen.entry(key) {
            Entry::Occupied(first) => return Some((first.remove(), item)),
            Entry::Vacant(slot) => {
                slot.insert(item);
            }
        }
    }
    None
}

/// Why a `requires` line names a resource its group does not have.
fn not_in_group(raw: &RawGroup, end: &Ident, owners: &Owners) -> String {
    let group = &raw.name.text;
    let resource = &end.text;
    if let Some(other) = owners.get(resource.as_str()) {
        return format!(
            "resource `{resource}` belongs to group `{other}`, not `{group}`; a resource can only \
             require resources of its own group (link groups with \
             `requires group {other} online local firm`)"
        );
    }
    let names = || raw.resources.iter().map(|r| &r.name.text);
    let known = if raw.resources.is_empty() {
        "none".to_string()
    } else {
        list(names())
    };
    format!(
        "group `{group}` has no resource `{resource}` (its resources: {known}){}",
        hint(resource, names(), "")
    )
}

/// A cycle among `links` (parent, child), if there is one: the index of
/// the link of the cycle written last (the one to point at) and the names
/// around the cycle, starting with that link's parent and ending with it
/// again. Linear in the number of links: an iterative depth-first search.
fn find_cycle<'a>(links: &[(&'a str, &'a str)]) -> Option<(usize, Vec<&'a str>)> {
    /// A node on the current path, the link that reached it, and how many
    /// of its outgoing links have been followed.
    struct Frame<'a> {
        node: &'a str,
        via: Option<usize>,
        next: usize,
    }
    let mut outgoing: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (parent, _)) in links.iter().enumerate() {
        outgoing.entry(parent).or_default().push(i);
    }
    // false: on the current path; true: fully explored.
    let mut done: HashMap<&str, bool> = HashMap::new();
    for &(start, _) in links {
        if done.contains_key(start) {
            continue;
        }
        done.insert(start, false);
        let mut path = vec![Frame {
            node: start,
            via: None,
            next: 0,
        }];
        while let Some(top) = path.last_mut() {
            let node = top.node;
            let link = outgoing.get(node).and_then(|l| l.get(top.next)).copied();
            top.next += 1;
            let Some(link) = link else {
                done.insert(node, true);
                path.pop();
                continue;
            };
            let child = links[link].1;
            match done.get(child) {
                None => {
                    done.insert(child, false);
                    path.push(Frame {
                        node: child,
                        via: Some(link),
                        next: 0,
                    });
                }
                Some(true) => {}
                Some(false) => {
                    let from = path.iter().position(|f| f.node == child)?;
                    let mut cycle: Vec<usize> =
                        path[from + 1..].iter().filter_map(|f| f.via).collect();
                    cycle.push(link);
                    let last = (0..cycle.len()).max_by_key(|&i| cycle[i]).unwrap_or(0);
                    cycle.rotate_left(last);
                    let closing = cycle[0];
                    let mut names = vec![links[closing].0];
                    names.extend(cycle.iter().map(|&l| links[l].1));
                    return Some((closing, names));
                }
            }
        }
    }
    None
}

/// Names for a message: `a, b, c`, cut after twenty.
fn list<S: AsRef<str>>(names: impl Iterator<Item = S>) -> String {
    const MAX: usize = 20;
    let names: Vec<String> = names.map(|n| n.as_ref().to_string()).collect();
    if names.len() > MAX {
        format!(
            "{}, and {} more",
            names[..MAX].join(", "),
            names.len() - MAX
        )
    } else {
        names.join(", ")
    }
}

/// "; did you mean `x`?" for a close candidate, else `otherwise`.
fn hint<S: AsRef<str>>(
    wrong: &str,
    candidates: impl Iterator<Item = S>,
    otherwise: &str,
) -> String {
    let best = candidates
        .map(|c| {
            let c = c.as_ref().to_string();
            (edit_distance(&wrong.to_lowercase(), &c.to_lowercase()), c)
        })
        .min();
    match best {
        Some((d, c)) if d <= (wrong.chars().count() / 3).max(1) => format!("; did you mean `{c}`?"),
        _ => otherwise.to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_an_optional_minus_and_digits() {
        assert_eq!(parse_int("-12"), Some(-12));
        assert_eq!(parse_int("007"), Some(7));
        assert_eq!(parse_int("+1"), None);
        assert_eq!(parse_int("1e3"), None);
        assert_eq!(parse_int("-"), None);
        assert_eq!(parse_int("99999999999999999999"), None);
    }

    #[test]
    fn cycle_is_reported_at_its_last_written_link() {
        assert_eq!(find_cycle(&[("a", "b"), ("b", "c"), ("x", "a")]), None);
        let links = [("a", "b"), ("c", "a"), ("x", "c"), ("b", "c")];
        assert_eq!(find_cycle(&links), Some((3, vec!["b", "c", "a", "b"])));
        assert_eq!(find_cycle(&[("a", "a")]), Some((0, vec!["a", "a"])));
    }

    #[test]
    fn hints_suggest_close_names_only() {
        assert_eq!(
            hint("Proces", ["Process", "IP"].iter(), "!"),
            "; did you mean `Process`?"
        );
        assert_eq!(hint("Zebra", ["Process", "IP"].iter(), "!"), "!");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn long_name_lists_are_cut() {
        let names: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        assert!(list(names.iter()).ends_with("n19, and 5 more"));
    }
}
