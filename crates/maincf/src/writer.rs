//! Writer: a [`ClusterConfig`] back into main.cf and types file text.
//!
//! The output is canonical and deterministic: tabs for indentation as VCS
//! writes them; `include` lines, then types defined in main.cf, the
//! cluster, the systems, and each group followed by its resources, its
//! `requires group` lines, its `requires` lines and a comment drawing the
//! resource dependency tree. Typed group and system fields are written only
//! when they differ from their defaults (SystemList whenever non-empty);
//! text values are always quoted, integers bare, names bare.
//!
//! Invariant: for every configuration the checker accepts, reading the
//! output back gives the same configuration (`parse(write(x)) == x`). This
//! holds for valid configurations: names must be valid words (see
//! [`crate::parser::is_valid_name`]), and an empty association in an
//! untyped attribute reads back as an empty list (the text `{}` is both).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use haven_model::{
    AttrDecl, AttrDimension, AttrValue, ClusterConfig, FailoverPolicy, GroupConfig, Scalar,
    SystemConfig, TypeDef,
};

use crate::check::MAIN_SOURCE;

/// The text of main.cf.
pub(crate) fn main_cf(config: &ClusterConfig) -> String {
    let mut out = String::new();
    for include in &config.includes {
        line(&mut out, 0, &format!("include {}", quote(include)));
    }
    if !config.includes.is_empty() {
        out.push('\n');
    }
    // Types not in any included file are written here, so none are lost.
    let inline = config
        .types
        .iter()
        .filter(|t| t.source == MAIN_SOURCE || !config.includes.contains(&t.source));
    for t in inline {
        type_def(&mut out, t);
        out.push('\n');
    }
    let cluster_attrs: Vec<String> = config.attributes.iter().map(attr).collect();
    block(
        &mut out,
        0,
        &format!("cluster {}", config.name),
        &cluster_attrs,
        false,
    );
    for system in &config.systems {
        out.push('\n');
        block(
            &mut out,
            0,
            &format!("system {}", system.name),
            &system_lines(system),
            false,
        );
    }
    for group in &config.groups {
        out.push('\n');
        group_text(&mut out, group);
    }
    out
}

/// The text of one types file: the types whose source is `file_name`.
pub(crate) fn types_file(config: &ClusterConfig, file_name: &str) -> String {
    let mut out = String::new();
    for (i, t) in config
        .types
        .iter()
        .filter(|t| t.source == file_name)
        .enumerate()
    {
        if i > 0 {
            out.push('\n');
        }
        type_def(&mut out, t);
    }
    out
}

fn line(out: &mut String, indent: usize, text: &str) {
    for _ in 0..indent {
        out.push('\t');
    }
    out.push_str(text);
    out.push('\n');
}

/// `header ( lines )`, the closing parenthesis indented like the lines as
/// VCS does; just `header` when there are no lines and `always` is false.
fn block(out: &mut String, indent: usize, header: &str, lines: &[String], always: bool) {
    if lines.is_empty() && !always {
        line(out, indent, header);
        return;
    }
    line(out, indent, &format!("{header} ("));
    for l in lines {
        line(out, indent + 1, l);
    }
    line(out, indent + 1, ")");
}

fn system_lines(system: &SystemConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if system.capacity != haven_model::default_capacity() {
        lines.push(format!("Capacity = {}", system.capacity));
    }
    if system.frozen {
        lines.push("Frozen = 1".to_string());
    }
    lines.extend(system.attributes.iter().map(attr));
    lines
}

fn group_lines(g: &GroupConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if !g.system_list.is_empty() {
        let items: Vec<String> = g
            .system_list
            .iter()
            .map(|(s, p)| format!("{s} = {p}"))
            .collect();
        lines.push(format!("SystemList = {}", braces(&items)));
    }
    if !g.auto_start_list.is_empty() {
        let items: Vec<String> = g.auto_start_list.iter().map(|s| s.to_string()).collect();
        lines.push(format!("AutoStartList = {}", braces(&items)));
    }
    let flags = [
        ("Parallel", g.parallel, false),
        ("AutoFailOver", g.auto_fail_over, true),
        ("AutoStart", g.auto_start, true),
    ];
    for (name, value, default) in flags {
        if value != default {
            lines.push(format!("{name} = {}", u8::from(value)));
        }
    }
    if g.failover_policy != FailoverPolicy::default() {
        lines.push(format!("FailOverPolicy = {}", g.failover_policy.as_str()));
    }
    for (name, value, default) in [("Frozen", g.frozen, false), ("Enabled", g.enabled, true)] {
        if value != default {
            lines.push(format!("{name} = {}", u8::from(value)));
        }
    }
    if g.load != 0 {
        lines.push(format!("Load = {}", g.load));
    }
    lines.extend(g.attributes.iter().map(attr));
    lines
}

fn group_text(out: &mut String, g: &GroupConfig) {
    block(out, 0, &format!("group {}", g.name), &group_lines(g), true);
    for r in &g.resources {
        out.push('\n');
        let lines: Vec<String> = r.attributes.iter().map(attr).collect();
        block(out, 1, &format!("{} {}", r.type_name, r.name), &lines, true);
    }
    if !g.group_dependencies.is_empty() {
        out.push('\n');
    }
    for d in &g.group_dependencies {
        let text = format!(
            "requires group {} {} {} {}",
            d.child,
            d.category.as_str(),
            d.location.as_str(),
            d.rigidity.as_str()
        );
        line(out, 1, &text);
    }
    if !g.dependencies.is_empty() {
        out.push('\n');
    }
    for d in &g.dependencies {
        line(out, 1, &format!("{} requires {}", d.parent, d.child));
    }
    dependency_tree(out, g);
}

/// The comment VCS writes after a group: its resources as a tree, parents
/// above children. A resource reached twice is drawn in full only once,
/// and indentation stops growing past [`TREE_MAX_INDENT`] levels, so the
/// comment stays linear in the size of the group. Drawn with an explicit
/// stack: a long chain of resources must not exhaust the call stack.
fn dependency_tree(out: &mut String, g: &GroupConfig) {
    enum Step<'g> {
        Node(&'g str, usize),
        Close(usize),
    }
    let pad = |depth: usize| "    ".repeat(depth.min(TREE_MAX_INDENT));
    out.push('\n');
    line(out, 1, "// resource dependency tree");
    line(out, 1, "//");
    line(out, 1, &format!("//\tgroup {}", g.name));
    line(out, 1, "//\t{");
    let types: HashMap<&str, &str> = g
        .resources
        .iter()
        .map(|r| (&*r.name, &*r.type_name))
        .collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for d in &g.dependencies {
        children.entry(&d.parent).or_default().push(&d.child);
    }
    let is_child: HashSet<&str> = g.dependencies.iter().map(|d| &*d.child).collect();
    let mut drawn = HashSet::new();
    let mut stack: Vec<Step> = g
        .resources
        .iter()
        .rev()
        .filter(|r| !is_child.contains(&*r.name))
        .map(|r| Step::Node(&r.name, 0))
        .collect();
    while let Some(step) = stack.pop() {
        let (name, depth) = match step {
            Step::Close(depth) => {
                line(out, 1, &format!("//\t{}    }}", pad(depth)));
                continue;
            }
            Step::Node(name, depth) => (name, depth),
        };
        let type_name = types.get(name).copied().unwrap_or("?");
        line(out, 1, &format!("//\t{}{type_name} {name}", pad(depth)));
        let Some(kids) = children.get(name) else {
            continue;
        };
        if !drawn.insert(name) {
            continue;
        }
        line(out, 1, &format!("//\t{}    {{", pad(depth)));
        stack.push(Step::Close(depth));
        stack.extend(kids.iter().rev().map(|child| Step::Node(child, depth + 1)));
    }
    line(out, 1, "//\t}");
}

/// How deep the dependency tree comment indents.
const TREE_MAX_INDENT: usize = 16;

fn type_def(out: &mut String, t: &TypeDef) {
    line(out, 0, &format!("type {} (", t.name));
    for d in &t.attrs {
        line(out, 1, &decl(d));
    }
    line(out, 0, ")");
}

fn decl(d: &AttrDecl) -> String {
    let mut text = String::new();
    if d.is_static {
        text.push_str("static ");
    }
    if d.is_temp {
        text.push_str("temp ");
    }
    let base = match d.dimension {
        AttrDimension::Keylist => "keylist",
        _ => d.attr_type.as_str(),
    };
    let suffix = match d.dimension {
        AttrDimension::Vector => "[]",
        AttrDimension::Association => "{}",
        AttrDimension::Scalar | AttrDimension::Keylist => "",
    };
    let _ = write!(text, "{base} {}{suffix}", d.name);
    if let Some(default) = &d.default {
        let _ = write!(text, " = {}", value(default));
    }
    text
}

/// `Name = value` or `Name@system = value`.
fn attr(a: &haven_model::Attr) -> String {
    match &a.system {
        Some(system) => format!("{}@{system} = {}", a.name, value(&a.value)),
        None => format!("{} = {}", a.name, value(&a.value)),
    }
}

fn value(v: &AttrValue) -> String {
    match v {
        AttrValue::Scalar(s) => scalar(s),
        AttrValue::List(items) => braces(&items.iter().map(scalar).collect::<Vec<_>>()),
        AttrValue::Assoc(pairs) => braces(
            &pairs
                .iter()
                .map(|(k, v)| format!("{} = {}", scalar(k), scalar(v)))
                .collect::<Vec<_>>(),
        ),
    }
}

fn braces(items: &[String]) -> String {
    if items.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

fn scalar(s: &Scalar) -> String {
    match s {
        Scalar::Int(i) => i.to_string(),
        Scalar::Str(s) => quote(s),
    }
}

/// A quoted string, with the two escapes the lexer resolves.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_model::{name, AttrType, ResourceConfig, ResourceDependency};

    #[test]
    fn strings_are_quoted_with_escapes_and_integers_bare() {
        assert_eq!(
            scalar(&Scalar::Str(r#"a "b" \c"#.into())),
            r#""a \"b\" \\c""#
        );
        assert_eq!(scalar(&Scalar::Int(-3)), "-3");
        assert_eq!(value(&AttrValue::List(vec![])), "{}");
        assert_eq!(
            value(&AttrValue::Assoc(vec![(
                Scalar::Str("k".into()),
                Scalar::Int(1)
            )])),
            r#"{ "k" = 1 }"#
        );
    }

    #[test]
    fn declarations_are_written_as_types_cf_spells_them() {
        let d = AttrDecl {
            name: "ArgList".into(),
            attr_type: AttrType::Str,
            dimension: AttrDimension::Vector,
            is_static: true,
            is_temp: false,
            default: Some(AttrValue::List(vec![Scalar::Str("PathName".into())])),
        };
        assert_eq!(decl(&d), r#"static str ArgList[] = { "PathName" }"#);
        let k = AttrDecl {
            name: "Tags".into(),
            attr_type: AttrType::Str,
            dimension: AttrDimension::Keylist,
            is_static: false,
            is_temp: true,
            default: None,
        };
        assert_eq!(decl(&k), "temp keylist Tags");
    }

    #[test]
    fn group_defaults_are_not_written() {
        let g = GroupConfig::new("g");
        assert!(group_lines(&g).is_empty());
        let mut g = GroupConfig::new("g");
        g.auto_start = false;
        g.failover_policy = FailoverPolicy::Load;
        assert_eq!(
            group_lines(&g),
            vec!["AutoStart = 0", "FailOverPolicy = Load"]
        );
    }

    #[test]
    fn dependency_tree_of_a_long_chain_is_drawn_without_recursion() {
        let mut g = GroupConfig::new("g");
        let n = 20_000;
        for i in 0..n {
            g.resources.push(ResourceConfig {
                name: name(format!("r{i}")),
                type_name: name("Phantom"),
                attributes: vec![],
            });
            if i > 0 {
                g.dependencies.push(ResourceDependency {
                    parent: name(format!("r{}", i - 1)),
                    child: name(format!("r{i}")),
                });
            }
        }
        let mut out = String::new();
        dependency_tree(&mut out, &g);
        assert_eq!(out.matches("Phantom r").count(), n);
        assert!(out.len() < n * 300, "indentation is capped");
    }

    #[test]
    fn dependency_tree_draws_parents_above_children() {
        let mut g = GroupConfig::new("web");
        for (n, t) in [("app", "Process"), ("ip", "IP"), ("nic", "NIC")] {
            g.resources.push(ResourceConfig {
                name: name(n),
                type_name: name(t),
                attributes: vec![],
            });
        }
        for (p, c) in [("app", "ip"), ("ip", "nic")] {
            g.dependencies.push(ResourceDependency {
                parent: name(p),
                child: name(c),
            });
        }
        let mut out = String::new();
        dependency_tree(&mut out, &g);
        let expected = "\n\t// resource dependency tree\n\t//\n\t//\tgroup web\n\t//\t{\n\
                        \t//\tProcess app\n\t//\t    {\n\t//\t    IP ip\n\t//\t        {\n\
                        \t//\t        NIC nic\n\t//\t        }\n\t//\t    }\n\t//\t}\n";
        assert_eq!(out, expected);
    }
}
