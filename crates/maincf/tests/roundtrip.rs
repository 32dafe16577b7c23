//! The writer's invariant, `parse(write(x)) == x`, on random valid
//! configurations: random names, values with quotes, backslashes, spaces
//! and newlines, lists and associations, localised attributes, types in
//! main.cf and in included files, and random acyclic dependencies.
//!
//! Strategies generate plain "specs" (names, indices, value pools) and
//! `build` turns a spec into a valid configuration, resolving indices
//! modulo the lengths, so every generated spec gives a valid config.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use haven_maincf::{parse_str, write_main_cf, write_types};
use haven_model::{
    name, Attr, AttrDecl, AttrDimension, AttrType, AttrValue, ClusterConfig, DependencyCategory,
    DependencyLocation, DependencyRigidity, FailoverPolicy, GroupConfig, GroupDependency,
    ResourceConfig, ResourceDependency, Scalar, SystemConfig, TypeDef, COMMON_RESOURCE_ATTRS,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;

/// Names the group and system blocks turn into typed fields.
const TYPED_NAMES: &[&str] = &[
    "SystemList",
    "AutoStartList",
    "Parallel",
    "AutoFailOver",
    "AutoStart",
    "FailOverPolicy",
    "Frozen",
    "Enabled",
    "Load",
    "Capacity",
];

/// Files types may come from; index 0 is main.cf itself.
const SOURCES: [&str; 3] = ["main.cf", "types.cf", "extra.cf"];

// ---- value strategies -------------------------------------------------------

fn object_name() -> impl Strategy<Value = String> {
    "[a-c0-9_][a-c0-9_.-]{0,3}"
}

fn attr_name() -> impl Strategy<Value = String> {
    "[A-Z][a-z]{0,4}".prop_filter("typed field", |n| !TYPED_NAMES.contains(&n.as_str()))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,6}",
        "[ -~]{0,12}",
        "[\"\\\\ a\n\t{}=,@()/*é]{0,10}",
        Just("1000".to_string()),
        Just("-5".to_string()),
        Just(String::new()),
    ]
}

fn plain_scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        any::<i64>().prop_map(Scalar::Int),
        text().prop_map(Scalar::Str)
    ]
}

/// An untyped value. Associations are never empty: `{}` reads back as a
/// list when no declaration says otherwise.
fn plain_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        plain_scalar().prop_map(AttrValue::Scalar),
        vec(plain_scalar(), 0..4).prop_map(AttrValue::List),
        vec((plain_scalar(), plain_scalar()), 1..4).prop_map(AttrValue::Assoc),
    ]
}

fn typed_scalar(t: AttrType) -> BoxedStrategy<Scalar> {
    match t {
        AttrType::Str => text().prop_map(Scalar::Str).boxed(),
        AttrType::Int => any::<i64>().prop_map(Scalar::Int).boxed(),
        AttrType::Boolean => (0..2i64).prop_map(Scalar::Int).boxed(),
    }
}

/// A value in the canonical form the checker gives a declared attribute.
fn typed_value(t: AttrType, d: AttrDimension) -> BoxedStrategy<AttrValue> {
    match d {
        AttrDimension::Scalar => typed_scalar(t).prop_map(AttrValue::Scalar).boxed(),
        AttrDimension::Vector => vec(typed_scalar(t), 0..4).prop_map(AttrValue::List).boxed(),
        AttrDimension::Keylist => btree_set(text(), 0..4)
            .prop_map(|keys| AttrValue::List(keys.into_iter().map(Scalar::Str).collect()))
            .boxed(),
        AttrDimension::Association => btree_map(text(), typed_scalar(t), 0..4)
            .prop_map(|m| {
                AttrValue::Assoc(m.into_iter().map(|(k, v)| (Scalar::Str(k), v)).collect())
            })
            .boxed(),
    }
}

// ---- specs --------------------------------------------------------------------

#[derive(Debug, Clone)]
struct AttrSpec {
    name: String,
    local: Option<usize>,
    value: AttrValue,
}

fn attr_spec() -> impl Strategy<Value = AttrSpec> {
    (attr_name(), option::of(any::<usize>()), plain_value())
        .prop_map(|(name, local, value)| AttrSpec { name, local, value })
}

#[derive(Debug, Clone)]
struct DeclSpec {
    decl: AttrDecl,
    /// Values resources may give this attribute.
    pool: Vec<AttrValue>,
}

fn decl_spec() -> impl Strategy<Value = DeclSpec> {
    let shape = prop_oneof![
        Just((AttrType::Str, AttrDimension::Scalar)),
        Just((AttrType::Int, AttrDimension::Scalar)),
        Just((AttrType::Boolean, AttrDimension::Scalar)),
        Just((AttrType::Str, AttrDimension::Vector)),
        Just((AttrType::Int, AttrDimension::Vector)),
        Just((AttrType::Str, AttrDimension::Keylist)),
        Just((AttrType::Str, AttrDimension::Association)),
        Just((AttrType::Int, AttrDimension::Association)),
    ];
    (attr_name(), shape).prop_flat_map(|(name, (t, d))| {
        (
            any::<bool>(),
            any::<bool>(),
            option::of(typed_value(t, d)),
            vec(typed_value(t, d), 1..3),
        )
            .prop_map(move |(is_static, is_temp, default, pool)| DeclSpec {
                decl: AttrDecl {
                    name: name.clone(),
                    attr_type: t,
                    dimension: d,
                    is_static,
                    is_temp,
                    default,
                },
                pool,
            })
    })
}

#[derive(Debug, Clone)]
struct TypeSpec {
    name: String,
    source: usize,
    decls: Vec<DeclSpec>,
}

fn type_spec() -> impl Strategy<Value = TypeSpec> {
    (
        "[A-Z][a-z0-9]{0,4}",
        0..SOURCES.len(),
        vec(decl_spec(), 0..5),
    )
        .prop_map(|(name, source, decls)| TypeSpec {
            name,
            source,
            decls,
        })
}

#[derive(Debug, Clone)]
struct ResAttrSpec {
    choice: usize,
    local: Option<usize>,
    pool: usize,
    int: i64,
}

#[derive(Debug, Clone)]
struct ResSpec {
    group: usize,
    type_idx: usize,
    attrs: Vec<ResAttrSpec>,
}

fn res_spec() -> impl Strategy<Value = ResSpec> {
    let attr = (
        any::<usize>(),
        option::of(any::<usize>()),
        any::<usize>(),
        any::<i64>(),
    )
        .prop_map(|(choice, local, pool, int)| ResAttrSpec {
            choice,
            local,
            pool,
            int,
        });
    (any::<usize>(), any::<usize>(), vec(attr, 0..4)).prop_map(|(group, type_idx, attrs)| ResSpec {
        group,
        type_idx,
        attrs,
    })
}

#[derive(Debug, Clone)]
struct GroupSpec {
    system_list: Vec<(usize, u32)>,
    auto_start: Vec<usize>,
    flags: [bool; 5],
    policy: usize,
    load: i64,
    attrs: Vec<AttrSpec>,
    deps: Vec<(usize, usize)>,
    group_deps: Vec<(usize, usize, usize, usize)>,
}

fn group_spec() -> impl Strategy<Value = GroupSpec> {
    (
        vec((any::<usize>(), any::<u32>()), 0..4),
        vec(any::<usize>(), 0..3),
        any::<[bool; 5]>(),
        0..3usize,
        prop_oneof![Just(0i64), any::<i64>()],
        vec(attr_spec(), 0..3),
        vec((any::<usize>(), any::<usize>()), 0..6),
        vec((any::<usize>(), 0..2usize, 0..3usize, 0..3usize), 0..3),
    )
        .prop_map(
            |(system_list, auto_start, flags, policy, load, attrs, deps, group_deps)| GroupSpec {
                system_list,
                auto_start,
                flags,
                policy,
                load,
                attrs,
                deps,
                group_deps,
            },
        )
}

#[derive(Debug, Clone)]
struct SystemSpec {
    capacity: i64,
    frozen: bool,
    attrs: Vec<AttrSpec>,
}

fn system_spec() -> impl Strategy<Value = SystemSpec> {
    (
        prop_oneof![Just(100i64), any::<i64>()],
        any::<bool>(),
        vec(attr_spec(), 0..3),
    )
        .prop_map(|(capacity, frozen, attrs)| SystemSpec {
            capacity,
            frozen,
            attrs,
        })
}

#[derive(Debug, Clone)]
struct Spec {
    cluster: String,
    cluster_attrs: Vec<AttrSpec>,
    systems: Vec<(String, SystemSpec)>,
    types: Vec<TypeSpec>,
    /// Which of types.cf / extra.cf to include and in which order.
    includes: Vec<&'static str>,
    groups: Vec<(String, GroupSpec)>,
    resources: Vec<(String, ResSpec)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let includes = prop_oneof![
        Just(vec!["types.cf", "extra.cf"]),
        Just(vec!["extra.cf", "types.cf"]),
        Just(vec!["types.cf"]),
        Just(vec![]),
    ];
    (
        object_name(),
        vec(attr_spec(), 0..3),
        btree_map(object_name(), system_spec(), 1..4),
        vec(type_spec(), 1..4),
        includes,
        btree_map(object_name(), group_spec(), 0..4),
        btree_map(object_name(), res_spec(), 0..8),
    )
        .prop_map(
            |(cluster, cluster_attrs, systems, types, includes, groups, resources)| Spec {
                cluster,
                cluster_attrs,
                systems: systems.into_iter().collect(),
                types,
                includes,
                groups: groups.into_iter().collect(),
                resources: resources.into_iter().collect(),
            },
        )
}

// ---- building a valid configuration from a spec -------------------------------

/// Plain attributes, without two values for one (name, system).
fn plain_attrs(specs: &[AttrSpec], systems: &[SystemConfig]) -> Vec<Attr> {
    let mut seen = HashSet::new();
    specs
        .iter()
        .map(|a| Attr {
            name: a.name.clone(),
            system: a.local.map(|i| systems[i % systems.len()].name.clone()),
            value: a.value.clone(),
        })
        .filter(|a| seen.insert((a.name.clone(), a.system.clone())))
        .collect()
}

fn build(spec: Spec) -> ClusterConfig {
    let systems_only: Vec<SystemConfig> = spec
        .systems
        .iter()
        .map(|(n, _)| SystemConfig::new(n))
        .collect();
    let systems: Vec<SystemConfig> = spec
        .systems
        .iter()
        .map(|(n, s)| SystemConfig {
            name: name(n),
            capacity: s.capacity,
            frozen: s.frozen,
            attributes: plain_attrs(&s.attrs, &systems_only),
        })
        .collect();

    // Types: unique names, each from main.cf or an included file; included
    // ones first in include order, as the reader returns them.
    let mut type_names = HashSet::new();
    let mut types: Vec<(TypeDef, Vec<DeclSpec>)> = Vec::new();
    for t in &spec.types {
        if !type_names.insert(t.name.clone()) {
            continue;
        }
        let source = SOURCES[t.source];
        let source = if spec.includes.contains(&source) {
            source
        } else {
            "main.cf"
        };
        let mut decl_names = HashSet::new();
        let decls: Vec<DeclSpec> = t
            .decls
            .iter()
            .filter(|d| decl_names.insert(d.decl.name.clone()))
            .cloned()
            .collect();
        let def = TypeDef {
            name: name(&t.name),
            attrs: decls.iter().map(|d| d.decl.clone()).collect(),
            source: source.to_string(),
        };
        types.push((def, decls));
    }
    let rank = |source: &str| {
        spec.includes
            .iter()
            .position(|i| *i == source)
            .unwrap_or(spec.includes.len())
    };
    types.sort_by_key(|(t, _)| rank(&t.source));

    let mut groups: Vec<GroupConfig> = spec
        .groups
        .iter()
        .map(|(n, g)| {
            let mut group = GroupConfig::new(n);
            for (s, prio) in &g.system_list {
                let sys = systems[s % systems.len()].name.clone();
                if group.priority(&sys).is_none() {
                    group.system_list.push((sys, *prio));
                }
            }
            if !group.system_list.is_empty() {
                for s in &g.auto_start {
                    let sys = group.system_list[s % group.system_list.len()].0.clone();
                    if !group.auto_start_list.contains(&sys) {
                        group.auto_start_list.push(sys);
                    }
                }
            }
            [
                group.parallel,
                group.auto_fail_over,
                group.auto_start,
                group.frozen,
                group.enabled,
            ] = g.flags;
            group.failover_policy = FailoverPolicy::ALL[g.policy];
            group.load = g.load;
            group.attributes = plain_attrs(&g.attrs, &systems);
            group
        })
        .collect();

    if !groups.is_empty() {
        for (res_name, r) in &spec.resources {
            let group = &mut groups[r.group % spec.groups.len()];
            let (typedef, decls) = &types[r.type_idx % types.len()];
            let mut seen = HashSet::new();
            let mut attributes = Vec::new();
            let settable: Vec<&DeclSpec> = decls.iter().filter(|d| !d.decl.is_temp).collect();
            let common: Vec<(&str, AttrType)> = COMMON_RESOURCE_ATTRS
                .iter()
                .filter(|(n, _, _)| typedef.attr(n).is_none())
                .map(|(n, t, _)| (*n, *t))
                .collect();
            for a in &r.attrs {
                let choice = a.choice % (settable.len() + common.len());
                let (attr_name, value) = match settable.get(choice) {
                    Some(d) => (d.decl.name.clone(), d.pool[a.pool % d.pool.len()].clone()),
                    None => {
                        let (n, t) = common[choice - settable.len()];
                        let v = if t == AttrType::Boolean {
                            a.int.rem_euclid(2)
                        } else {
                            a.int
                        };
                        (n.to_string(), AttrValue::int(v))
                    }
                };
                let system = a.local.map(|i| systems[i % systems.len()].name.clone());
                if seen.insert((attr_name.clone(), system.clone())) {
                    attributes.push(Attr {
                        name: attr_name,
                        system,
                        value,
                    });
                }
            }
            group.resources.push(ResourceConfig {
                name: name(res_name),
                type_name: typedef.name.clone(),
                attributes,
            });
        }
    }

    for (group, (_, g)) in groups.iter_mut().zip(&spec.groups) {
        if !group.resources.is_empty() && group.system_list.is_empty() {
            group.system_list.push((systems[0].name.clone(), 0));
        }
        // Links always go from a lower to a higher index: acyclic.
        let n = group.resources.len();
        let mut links = BTreeSet::new();
        for (a, b) in &g.deps {
            if n > 1 {
                let (a, b) = (a % n, b % n);
                if a != b && links.insert((a.min(b), a.max(b))) {
                    group.dependencies.push(ResourceDependency {
                        parent: group.resources[a.min(b)].name.clone(),
                        child: group.resources[a.max(b)].name.clone(),
                    });
                }
            }
        }
    }

    let group_names: Vec<_> = groups.iter().map(|g| g.name.clone()).collect();
    let n = groups.len();
    for (i, (group, (_, g))) in groups.iter_mut().zip(&spec.groups).enumerate() {
        // A group only requires groups after it: acyclic.
        let mut children = BTreeSet::new();
        for (c, cat, loc, rig) in &g.group_deps {
            if i + 1 < n {
                let child = i + 1 + c % (n - i - 1);
                if children.insert(child) {
                    group.group_dependencies.push(GroupDependency {
                        child: group_names[child].clone(),
                        category: [DependencyCategory::Online, DependencyCategory::Offline][*cat],
                        location: [
                            DependencyLocation::Local,
                            DependencyLocation::Global,
                            DependencyLocation::Remote,
                        ][*loc],
                        rigidity: [
                            DependencyRigidity::Soft,
                            DependencyRigidity::Firm,
                            DependencyRigidity::Hard,
                        ][*rig],
                    });
                }
            }
        }
    }

    ClusterConfig {
        name: name(&spec.cluster),
        includes: spec.includes.iter().map(|s| s.to_string()).collect(),
        attributes: plain_attrs(&spec.cluster_attrs, &systems),
        systems,
        types: types.into_iter().map(|(t, _)| t).collect(),
        groups,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_of_write_gives_back_any_valid_config(config in spec().prop_map(build)) {
        let main = write_main_cf(&config);
        let files: BTreeMap<&str, String> =
            SOURCES[1..].iter().map(|f| (*f, write_types(&config, f))).collect();
        let read = parse_str("main.cf", &main, &mut |path| files.get(path).cloned());
        match read {
            Ok(read) => prop_assert_eq!(read, config, "main.cf:\n{}", main),
            Err(e) => prop_assert!(false, "{}\nmain.cf:\n{}\nfiles: {:?}", e, main, files),
        }
    }
}

/// Guards against a generator that stopped producing the hard cases.
#[test]
fn generator_covers_dependencies_localisation_and_included_types() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = spec().prop_map(build);
    let mut seen = BTreeSet::new();
    for _ in 0..256 {
        let config = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(e) => panic!("{e}"),
        };
        let resources = config.groups.iter().flat_map(|g| &g.resources);
        for r in resources {
            seen.insert("resource");
            if r.attributes.iter().any(|a| a.system.is_some()) {
                seen.insert("localised resource attribute");
            }
        }
        if config.groups.iter().any(|g| !g.dependencies.is_empty()) {
            seen.insert("resource dependency");
        }
        if config
            .groups
            .iter()
            .any(|g| !g.group_dependencies.is_empty())
        {
            seen.insert("group dependency");
        }
        for t in &config.types {
            seen.insert(if t.source == "main.cf" {
                "type in main.cf"
            } else {
                "included type"
            });
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
}
