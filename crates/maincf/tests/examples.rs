//! Whole-file behaviour on the example configuration in
//! `tests/examples/demo`: reading, include resolution, the built-in
//! types.cf fallback, the writer's round trip and saving to disk.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use haven_maincf::{
    load_dir, parse_str, save_dir, write_main_cf, write_types, ConfigError, BUILTIN_TYPES_CF,
};
use haven_model::{
    lookup, AttrValue, ClusterConfig, DependencyCategory, DependencyLocation, DependencyRigidity,
    FailoverPolicy, Scalar,
};

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples/demo")
}

fn demo() -> ClusterConfig {
    load_dir(&demo_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses `text` with `files` as the included files.
fn parse_with(text: &str, files: &BTreeMap<String, String>) -> Result<ClusterConfig, ConfigError> {
    parse_str("main.cf", text, &mut |path| files.get(path).cloned())
}

/// Writes `config` and reads it back, included files from the writer too.
fn rewrite(config: &ClusterConfig) -> ClusterConfig {
    let main = write_main_cf(config);
    parse_str("main.cf", &main, &mut |path| {
        Some(write_types(config, path))
    })
    .unwrap_or_else(|e| panic!("{e}\n{main}"))
}

fn str_value(s: &str) -> AttrValue {
    AttrValue::Scalar(Scalar::Str(s.into()))
}

#[test]
fn demo_directory_reads_typed_fields_and_keeps_other_attributes() {
    let c = demo();
    assert_eq!(&*c.name, "demo");
    assert_eq!(c.includes, vec!["types.cf", "extra.cf"]);
    assert_eq!(c.attributes.len(), 2);
    assert_eq!(c.system("sysA").map(|s| s.capacity), Some(200));
    assert_eq!(c.system("sysB").map(|s| s.capacity), Some(100));

    let db = c.group("db").unwrap_or_else(|| panic!("no db"));
    let list: Vec<(&str, u32)> = db.system_list.iter().map(|(s, p)| (&**s, *p)).collect();
    assert_eq!(
        list,
        vec![("sysA", 0), ("sysB", 1)],
        "plain list form gives 0, 1, ..."
    );
    assert_eq!(db.failover_policy, FailoverPolicy::Load);
    assert_eq!(db.load, 30);

    let web = c.group("web").unwrap_or_else(|| panic!("no web"));
    assert_eq!(web.load, 10);
    assert_eq!(web.auto_start_list.len(), 1);
    assert_eq!(web.attributes.len(), 1);
    assert_eq!(web.attributes[0].name, "SomeOtherAttr");
    assert_eq!(web.group_dependencies.len(), 1);
    let dep = &web.group_dependencies[0];
    assert_eq!(&*dep.child, "db");
    assert_eq!(dep.category, DependencyCategory::Online);
    assert_eq!(dep.location, DependencyLocation::Local);
    assert_eq!(dep.rigidity, DependencyRigidity::Firm);
    assert_eq!(web.dependencies.len(), 2);
}

#[test]
fn demo_resource_values_are_coerced_to_their_declared_types() {
    let c = demo();
    let (_, proc_) = c
        .resource("web_proc")
        .unwrap_or_else(|| panic!("no web_proc"));
    assert_eq!(
        lookup(&proc_.attributes, "Arguments", None),
        Some(&str_value("1000")),
        "a str attribute written as a bare integer is text"
    );
    assert_eq!(
        lookup(&proc_.attributes, "Critical", None),
        Some(&AttrValue::int(0))
    );
    assert!(!c.is_critical(proc_));

    let (_, flag) = c
        .resource("web_flag")
        .unwrap_or_else(|| panic!("no web_flag"));
    assert_eq!(
        lookup(&flag.attributes, "PathName", Some("sysB")),
        Some(&str_value("/tmp/b"))
    );

    let (_, counter) = c
        .resource("web_counter")
        .unwrap_or_else(|| panic!("no counter"));
    assert_eq!(
        lookup(&counter.attributes, "Start", None),
        Some(&AttrValue::int(7))
    );
    assert_eq!(
        lookup(&counter.attributes, "Limits", None),
        Some(&AttrValue::Assoc(vec![
            (Scalar::Str("soft".into()), Scalar::Int(10)),
            (Scalar::Str("hard".into()), Scalar::Int(20)),
        ]))
    );
    let (_, hb) = c.resource("web_hb").unwrap_or_else(|| panic!("no web_hb"));
    assert_eq!(c.resource_int(hb, "MonitorInterval", 60), 5, "type default");
}

#[test]
fn types_remember_the_file_they_came_from() {
    let c = demo();
    let source = |t: &str| c.type_def(t).map(|t| t.source.clone());
    assert_eq!(source("Process").as_deref(), Some("types.cf"));
    assert_eq!(source("Counter").as_deref(), Some("extra.cf"));
    assert_eq!(source("Heartbeat").as_deref(), Some("main.cf"));
    // Included types come first, in include order, then main.cf's own.
    assert_eq!(c.types.last().map(|t| &*t.name), Some("Heartbeat"));
}

#[test]
fn demo_round_trips_through_the_writer() {
    let c = demo();
    assert_eq!(rewrite(&c), c);
}

#[test]
fn writing_is_deterministic_and_stable() {
    let c = demo();
    let once = write_main_cf(&c);
    assert_eq!(write_main_cf(&rewrite(&c)), once);
    assert!(once.starts_with("include \"types.cf\"\ninclude \"extra.cf\"\n\ntype Heartbeat (\n"));
    assert!(
        !once.contains("Scratch ="),
        "temp attributes are never assigned"
    );
}

#[test]
fn writer_output_has_the_vcs_layout() {
    let text = "include \"types.cf\"\ncluster c\nsystem a\nsystem b ( Capacity = 50 )\n\
                group g ( SystemList = { a = 0, b = 1 } AutoStartList = { a } AutoFailOver = 0 Note = \"x y\" )\n\
                Process p ( PathName = \"/bin/sleep\" Arguments = 100 )\nFileOnOff f ( PathName@a = \"/tmp/f\" )\n\
                p requires f\ngroup h ( SystemList = { b = 0 } )\nrequires group g online global soft\n";
    let files = BTreeMap::from([("types.cf".to_string(), BUILTIN_TYPES_CF.to_string())]);
    let c = parse_with(text, &files).unwrap_or_else(|e| panic!("{e}"));
    let expected = "\
include \"types.cf\"

cluster c

system a

system b (
\tCapacity = 50
\t)

group g (
\tSystemList = { a = 0, b = 1 }
\tAutoStartList = { a }
\tAutoFailOver = 0
\tNote = \"x y\"
\t)

\tProcess p (
\t\tPathName = \"/bin/sleep\"
\t\tArguments = \"100\"
\t\t)

\tFileOnOff f (
\t\tPathName@a = \"/tmp/f\"
\t\t)

\tp requires f

\t// resource dependency tree
\t//
\t//\tgroup g
\t//\t{
\t//\tProcess p
\t//\t    {
\t//\t    FileOnOff f
\t//\t    }
\t//\t}

group h (
\tSystemList = { b = 0 }
\t)

\trequires group g online global soft

\t// resource dependency tree
\t//
\t//\tgroup h
\t//\t{
\t//\t}
";
    assert_eq!(write_main_cf(&c), expected);
}

#[test]
fn includes_are_loaded_by_the_path_as_written_in_order() {
    let mut asked = Vec::new();
    let text = "include \"types.cf\"\ninclude \"sub/extra.cf\"\ncluster c\n";
    let c = parse_str("main.cf", text, &mut |path| {
        asked.push(path.to_string());
        Some(if path == "types.cf" {
            BUILTIN_TYPES_CF.to_string()
        } else {
            "type Extra ( str X )".to_string()
        })
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(asked, vec!["types.cf", "sub/extra.cf"]);
    assert_eq!(
        c.type_def("Extra").map(|t| t.source.as_str()),
        Some("sub/extra.cf")
    );
}

#[test]
fn write_types_writes_only_the_types_of_that_file() {
    let c = demo();
    let extra = write_types(&c, "extra.cf");
    assert!(extra.starts_with("type Counter (\n"));
    assert_eq!(extra.matches("type ").count(), 1);
    assert_eq!(
        write_types(&c, "types.cf").matches("\ntype ").count() + 1,
        c.types.iter().filter(|t| t.source == "types.cf").count()
    );
}

#[test]
fn builtin_types_define_the_documented_agents() {
    let c = parse_with(
        "include \"types.cf\"\ncluster c",
        &BTreeMap::from([("types.cf".to_string(), BUILTIN_TYPES_CF.to_string())]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for (t, attrs) in [
        (
            "Process",
            &["PathName", "Arguments", "PidFile", "MonitorInterval"][..],
        ),
        (
            "Application",
            &[
                "StartProgram",
                "StopProgram",
                "CleanProgram",
                "MonitorProgram",
                "PidFiles",
                "User",
            ],
        ),
        ("FileOnOff", &["PathName"]),
        ("NIC", &["Device"]),
        ("IP", &["Address", "Device", "NetMask"]),
        ("DiskGroup", &["DiskGroup"]),
        ("Volume", &["Volume", "DiskGroup"]),
        ("Mount", &["MountPoint", "BlockDevice", "FSType"]),
        ("Oracle", &["Sid", "Owner", "Home"]),
        ("Share", &[]),
        ("NFS", &[]),
        ("Apache", &["httpdDir", "ConfigFile"]),
        ("Phantom", &[]),
    ] {
        let def = c.type_def(t).unwrap_or_else(|| panic!("no type {t}"));
        for a in attrs {
            assert!(def.attr(a).is_some(), "{t} lacks {a}");
        }
    }
}

#[test]
fn load_dir_prefers_the_directory_types_cf_over_the_builtin_one() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    fs::write(dir.path().join("types.cf"), "type Custom ( str X )\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let main = "include \"types.cf\"\ncluster c\nsystem s\ngroup g ( SystemList = { s = 0 } )\nProcess p\n";
    fs::write(dir.path().join("main.cf"), main).unwrap_or_else(|e| panic!("{e}"));
    let e = load_dir(dir.path())
        .err()
        .unwrap_or_else(|| panic!("Process should be unknown"));
    assert_eq!(e.file, dir.path().join("main.cf").display().to_string());
    assert_eq!((e.line, e.column), (5, 1));
    assert!(e.message.contains("defined types: Custom"), "{}", e.message);
}

#[test]
fn load_dir_uses_the_builtin_types_when_types_cf_is_missing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let main = "include \"types.cf\"\ncluster c\nsystem s\n\
                group g ( SystemList = { s = 0 } )\nProcess p ( PathName = \"/bin/true\" )\n";
    fs::write(dir.path().join("main.cf"), main).unwrap_or_else(|e| panic!("{e}"));
    let c = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(c
        .type_def("Process")
        .is_some_and(|t| t.source == "types.cf"));
    assert!(c.type_def("Apache").is_some());

    // Errors that involve the built-in file say so.
    let clash = "include \"types.cf\"\ncluster c\ntype Process ( str X )\n";
    fs::write(dir.path().join("main.cf"), clash).unwrap_or_else(|e| panic!("{e}"));
    let e = load_dir(dir.path())
        .err()
        .unwrap_or_else(|| panic!("Process is defined twice"));
    assert_eq!((e.line, e.column), (3, 6));
    assert!(
        e.message.contains("first in types.cf (built-in) at line"),
        "{}",
        e.message
    );
}

#[test]
fn load_dir_falls_back_to_builtin_types_only_for_types_cf() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let main = "include \"types.cf\"\ninclude \"site.cf\"\ncluster c\n";
    fs::write(dir.path().join("main.cf"), main).unwrap_or_else(|e| panic!("{e}"));
    let e = load_dir(dir.path())
        .err()
        .unwrap_or_else(|| panic!("site.cf is missing"));
    assert_eq!((e.line, e.column), (2, 9));
    assert!(
        e.message
            .contains("included file `site.cf` was not found at"),
        "{}",
        e.message
    );
}

#[test]
fn load_dir_names_included_files_by_path_in_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    fs::write(
        dir.path().join("main.cf"),
        "include \"site.cf\"\ncluster c\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    fs::write(dir.path().join("site.cf"), "type T (\n  float X\n)\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let e = load_dir(dir.path())
        .err()
        .unwrap_or_else(|| panic!("float is no type"));
    assert_eq!(e.file, dir.path().join("site.cf").display().to_string());
    assert_eq!((e.line, e.column), (2, 3));
}

#[test]
fn load_dir_without_main_cf_says_which_file_is_missing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let e = load_dir(dir.path())
        .err()
        .unwrap_or_else(|| panic!("no main.cf"));
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}: cannot read",
            dir.path().join("main.cf").display()
        )),
        "{shown}"
    );
}

#[test]
fn save_dir_replaces_main_cf_and_keeps_the_previous_copy() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = demo();
    save_dir(dir.path(), &c).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !dir.path().join("main.cf.previous").exists(),
        "nothing to keep the first time"
    );
    fs::write(dir.path().join("extra.cf"), write_types(&c, "extra.cf"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")), c);

    let first = fs::read_to_string(dir.path().join("main.cf")).unwrap_or_else(|e| panic!("{e}"));
    c.groups.retain(|g| &*g.name != "web");
    save_dir(dir.path(), &c).unwrap_or_else(|e| panic!("{e}"));
    let previous =
        fs::read_to_string(dir.path().join("main.cf.previous")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(previous, first);
    assert_eq!(load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")), c);

    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["extra.cf", "main.cf", "main.cf.previous"],
        "no temporary file is left"
    );
}

#[test]
fn save_dir_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("nope");
    assert!(save_dir(&missing, &demo()).is_err());
    assert!(!missing.exists());
}

#[test]
fn large_group_with_a_long_dependency_chain_reads_and_round_trips() {
    // Links written child-first, the worst order for cycle checking.
    let n = 3000;
    let mut text = String::from(
        "include \"types.cf\"\ncluster big\nsystem s\ngroup g ( SystemList = { s = 0 } )\n",
    );
    for i in 0..n {
        text.push_str(&format!("Phantom r{i}\n"));
    }
    for i in (1..n).rev() {
        text.push_str(&format!("r{} requires r{i}\n", i - 1));
    }
    let files = BTreeMap::from([("types.cf".to_string(), BUILTIN_TYPES_CF.to_string())]);
    let c = parse_with(&text, &files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.groups[0].dependencies.len(), n - 1);
    assert_eq!(rewrite(&c), c);
}
