//! End-to-end: a broken main.cf stops the engine before it starts anything,
//! with the file, line and column of the problem.

mod support;

use std::process::Command;

use support::*;

const GOOD_HEAD: &str = "include \"types.cf\"\ncluster c ( )\nsystem a ( )\nsystem b ( )\n";

/// Runs `haven ARGS` on a config dir holding `main_cf`; returns the exit
/// code and stderr.
fn run(args: &[&str], main_cf: &str) -> (Option<i32>, String) {
    let dir = config_dir(main_cf);
    let out = Command::new(HAVEN)
        .args(args)
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run haven");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn engine_error(main_cf: &str) -> String {
    let (code, stderr) = run(&["engine", "--listen", "127.0.0.1:0", "--config"], main_cf);
    assert_eq!(
        code,
        Some(1),
        "exit code 1, no panic (101); stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("listening on"),
        "nothing started: {stderr}"
    );
    stderr
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let err = engine_error(&format!("{GOOD_HEAD}group g (\n  SystemList = {{ a = 0 \n"));
    assert!(err.contains("main.cf:"), "{err}");
}

#[test]
fn an_unknown_resource_type_is_refused_at_its_line() {
    let err = engine_error(&format!(
        "{GOOD_HEAD}group g (\n        SystemList = {{ a = 0 }}\n        )\n        Frobnicator f ( )\n"
    ));
    assert!(err.contains("main.cf:8:9"), "{err}");
    assert!(err.contains("Frobnicator"), "{err}");
}

#[test]
fn a_dependency_cycle_is_refused_and_shows_the_cycle() {
    let err = engine_error(&format!(
        "{GOOD_HEAD}group g (\n SystemList = {{ a = 0 }}\n )\n IP x ( )\n IP y ( )\n x requires y\n y requires x\n"
    ));
    assert!(err.contains("main.cf:"), "{err}");
    assert!(
        err.contains("x") && err.contains("y") && err.to_lowercase().contains("cycle"),
        "{err}"
    );
}

#[test]
fn a_system_outside_the_cluster_is_refused() {
    let err = engine_error(&format!(
        "{GOOD_HEAD}group g (\n SystemList = {{ a = 0, zed = 1 }}\n )\n"
    ));
    assert!(err.contains("main.cf:6:"), "{err}");
    assert!(err.contains("zed"), "{err}");
}

#[test]
fn a_duplicate_name_is_refused() {
    let err = engine_error(&format!("{GOOD_HEAD}system a ( )\n"));
    assert!(err.contains("main.cf:5:"), "{err}");
    assert!(err.contains("a"), "{err}");
}

#[test]
fn a_type_without_a_real_agent_is_refused_unless_simulated() {
    let cf = format!(
        "{GOOD_HEAD}group g (\n SystemList = {{ a = 0 }}\n )\n IP x ( Address = \"192.0.2.1\" )\n"
    );
    let err = engine_error(&cf);
    assert!(err.contains("type IP has no agent"), "{err}");
    assert!(err.contains("--simulate"), "{err}");
}

#[test]
fn config_check_reports_a_valid_file_and_print_writes_it_back() {
    let (code, _) = run(&["config", "check"], "cluster c ( )\nsystem a ( )\n");
    assert_eq!(code, Some(0));
    let dir = config_dir(&format!(
        "{GOOD_HEAD}group g (\n SystemList = {{ a = 0, b = 1 }}\n )\n IP x ( Address = \"192.0.2.1\" )\n"
    ));
    let out = Command::new(HAVEN)
        .args(["config", "print"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // What it prints reads back as the same configuration.
    let again = config_dir(&text);
    let (code, stderr) = run(&["config", "check"], &text);
    assert_eq!(code, Some(0), "{stderr}\n{text}");
    drop(again);
    assert!(text.contains("192.0.2.1"));
}
