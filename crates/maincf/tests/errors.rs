//! Every kind of configuration error: where it points (file, line,
//! column) and that its message names the object and the way out.

use haven_maincf::{parse_str, ConfigError, BUILTIN_TYPES_CF};

/// Lines 1-4 of every case: the built-in types, a cluster, two systems.
const BASE: &str = "include \"types.cf\"\ncluster c\nsystem sysA\nsystem sysB\n";

/// A group on sysA that the cases below add lines to (line 5).
const GROUP: &str = "group g ( SystemList = { sysA = 0 } )\n";

fn parse(text: &str) -> Result<haven_model::ClusterConfig, ConfigError> {
    parse_str("main.cf", text, &mut |path| match path {
        "types.cf" => Some(BUILTIN_TYPES_CF.to_string()),
        "site.cf" => Some("type Site ( str X )\ngroup bad\n".to_string()),
        "broken.cf" => Some("type Broken (\n str X\n".to_string()),
        _ => None,
    })
}

/// Asserts that `body` (after BASE) fails at `line`:`column` of `file`
/// with a message containing every one of `needles`.
#[track_caller]
fn assert_error_in(file: &str, body: &str, line: usize, column: usize, needles: &[&str]) {
    let text = format!("{BASE}{body}");
    match parse(&text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!(
                (e.file.as_str(), e.line, e.column),
                (file, line, column),
                "wrong place for: {e}"
            );
            for needle in needles {
                assert!(e.message.contains(needle), "`{needle}` not in: {e}");
            }
        }
    }
}

#[track_caller]
fn assert_error(body: &str, line: usize, column: usize, needles: &[&str]) {
    assert_error_in("main.cf", body, line, column, needles)
}

#[track_caller]
fn assert_ok(body: &str) {
    if let Err(e) = parse(&format!("{BASE}{body}")) {
        panic!("{e}");
    }
}

// ---- the whole message, as users see it --------------------------------

#[test]
fn unknown_resource_type_is_shown_as_file_line_column_message() {
    let e = parse(&format!("{BASE}{GROUP}  Foo r1 ( )\n")).err();
    let shown = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        shown.starts_with(
            "main.cf:6:3: unknown resource type `Foo` of resource `r1` (defined types: Process, Application, FileOnOff,"
        ),
        "{shown}"
    );
    assert!(
        shown.ends_with("define it with `type Foo ( ... )` or include the file that does"),
        "{shown}"
    );
}

#[test]
fn misspelt_type_gets_a_suggestion() {
    assert_error(
        &format!("{GROUP}  Proces r1\n"),
        6,
        3,
        &["did you mean `Process`?"],
    );
}

// ---- structure ------------------------------------------------------------

#[test]
fn missing_cluster_points_at_the_start_with_a_fix() {
    match parse("system a\n") {
        Err(e) => {
            assert_eq!((e.line, e.column), (1, 1));
            assert!(e.message.contains("add a line `cluster NAME`"), "{e}");
        }
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn second_cluster_is_an_error_at_its_name() {
    assert_error(
        "cluster d\n",
        5,
        9,
        &["second cluster `d`", "`c` at line 2"],
    );
}

#[test]
fn included_file_that_is_missing_points_at_the_include_line() {
    assert_error(
        "include \"nope.cf\"\n",
        5,
        9,
        &["included file `nope.cf` was not found"],
    );
}

#[test]
fn file_included_twice_is_an_error() {
    assert_error(
        "include \"types.cf\"\n",
        5,
        9,
        &["already included at line 1"],
    );
}

#[test]
fn included_file_may_only_define_types() {
    assert_error_in(
        "site.cf",
        "include \"site.cf\"\n",
        2,
        7,
        &["move `group bad` into main.cf"],
    );
}

#[test]
fn syntax_errors_in_included_files_name_that_file() {
    assert_error_in(
        "broken.cf",
        "include \"broken.cf\"\n",
        3,
        1,
        &["type `Broken` at line 1 is never closed"],
    );
}

// ---- duplicate names ----------------------------------------------------

#[test]
fn duplicate_system_names_the_first_declaration() {
    assert_error(
        "system sysA\n",
        5,
        8,
        &["system `sysA` is declared twice (first at line 3)"],
    );
}

#[test]
fn duplicate_group_is_an_error() {
    assert_error(
        "group g\ngroup g\n",
        6,
        7,
        &["group `g` is defined twice (first at line 5)"],
    );
}

#[test]
fn resource_names_are_unique_across_groups() {
    assert_error(
        &format!("{GROUP}  Process p\ngroup h ( SystemList = {{ sysA = 0 }} )\n  FileOnOff p\n"),
        8,
        13,
        &["resource `p` is defined twice (first in group `g` at line 6)"],
    );
}

#[test]
fn type_defined_twice_names_the_first_file() {
    assert_error(
        "type Process ( str X )\n",
        5,
        6,
        &["type `Process` is defined twice (first in types.cf at line"],
    );
}

#[test]
fn attribute_declared_twice_in_a_type_is_an_error() {
    assert_error(
        "type T (\n  str X\n  int X\n)\n",
        7,
        7,
        &["attribute `X` is declared twice in type `T` (first at line 6)"],
    );
}

#[test]
fn attribute_set_twice_in_a_resource_is_an_error() {
    assert_error(
        &format!("{GROUP}  Process p (\n    PathName = \"a\"\n    PathName = \"b\"\n  )\n"),
        8,
        5,
        &["attribute `PathName` of resource `p` is set twice (first at line 7)"],
    );
}

#[test]
fn localised_attribute_set_twice_for_one_system_is_an_error() {
    assert_error(
        &format!("{GROUP}  Process p (\n    PathName@sysA = \"a\"\n    PathName = \"b\"\n    PathName@sysA = \"c\"\n  )\n"),
        9,
        5,
        &["`PathName@sysA` of resource `p` is set twice (first at line 7)"],
    );
}

#[test]
fn attribute_set_twice_in_a_group_is_an_error() {
    assert_error(
        "group g (\n  Load = 1\n  Load = 2\n  )\n",
        7,
        3,
        &["`Load` of group `g` is set twice"],
    );
}

// ---- systems --------------------------------------------------------------

#[test]
fn system_list_naming_an_undeclared_system_is_an_error() {
    assert_error(
        "group g ( SystemList = { sysA = 0, sysC = 1 } )\n",
        5,
        36,
        &["unknown system `sysC` in SystemList of group `g` (declared systems: sysA, sysB)"],
    );
}

#[test]
fn auto_start_list_naming_an_undeclared_system_is_an_error() {
    assert_error(
        "group g (\n  AutoStartList = { node9 }\n  )\n",
        6,
        21,
        &[
            "unknown system `node9` in AutoStartList of group `g`",
            "declare it with `system node9`",
        ],
    );
}

#[test]
fn auto_start_list_outside_the_system_list_is_an_error() {
    assert_error(
        "group g (\n  SystemList = { sysA = 0 }\n  AutoStartList = { sysB }\n  )\n",
        7,
        21,
        &["AutoStartList of group `g` names `sysB`, which is not in its SystemList"],
    );
}

#[test]
fn auto_start_list_may_come_before_the_system_list() {
    assert_ok(
        "group g (\n  AutoStartList = { sysB }\n  SystemList = { sysA = 0, sysB = 1 }\n  )\n",
    );
}

#[test]
fn localised_attribute_naming_an_undeclared_system_is_an_error() {
    assert_error(
        &format!("{GROUP}  Process p ( PathName@sysZ = \"x\" )\n"),
        6,
        24,
        &["unknown system `sysZ` in `PathName@sysZ` of resource `p`"],
    );
}

#[test]
fn group_with_resources_needs_a_system_list() {
    assert_error(
        "group web\n  Process p\n",
        5,
        7,
        &["group `web` has no SystemList", "SystemList = { sysA = 0 }"],
    );
}

#[test]
fn group_without_resources_may_omit_the_system_list() {
    assert_ok("group empty\n");
}

#[test]
fn system_list_twice_naming_one_system_is_an_error() {
    assert_error(
        "group g ( SystemList = { sysA = 0, sysA = 1 } )\n",
        5,
        36,
        &["names `sysA` twice"],
    );
}

#[test]
fn system_list_priority_must_not_be_negative() {
    assert_error(
        "group g ( SystemList = { sysA = -1 } )\n",
        5,
        33,
        &["priority of `sysA`", "whole number from 0 up, not `-1`"],
    );
}

#[test]
fn system_list_must_be_a_list() {
    assert_error(
        "group g ( SystemList = sysA )\n",
        5,
        24,
        &["SystemList of group `g` must be a list"],
    );
}

#[test]
fn capacity_must_be_an_integer() {
    assert_error(
        "system sysC ( Capacity = lots )\n",
        5,
        26,
        &["`Capacity` of system `sysC` is an integer; `lots` is not one"],
    );
}

#[test]
fn well_known_attributes_cannot_be_localised() {
    assert_error(
        "group g ( Load@sysA = 3 )\n",
        5,
        16,
        &["`Load` of group `g` cannot be localised"],
    );
}

// ---- group attributes -----------------------------------------------------

#[test]
fn failover_policy_must_be_a_known_word() {
    assert_error(
        "group g ( FailOverPolicy = Random )\n",
        5,
        28,
        &["FailOverPolicy of group `g` must be Priority, RoundRobin or Load"],
    );
}

#[test]
fn group_flags_must_be_zero_or_one() {
    assert_error(
        "group g ( Parallel = 2 )\n",
        5,
        22,
        &["`Parallel` of group `g` is a boolean: write 0 or 1, not `2`"],
    );
}

#[test]
fn load_must_be_an_integer() {
    assert_error(
        "group g ( Load = \"heavy\" )\n",
        5,
        18,
        &["`Load` of group `g` is an integer"],
    );
}

#[test]
fn untyped_numbers_must_fit_in_64_bits() {
    assert_error(
        "group g ( Big = 99999999999999999999 )\n",
        5,
        17,
        &["does not fit in a 64-bit integer", "quote it"],
    );
}

// ---- resource attributes --------------------------------------------------

#[test]
fn undeclared_attribute_lists_what_the_type_declares() {
    assert_error(
        &format!("{GROUP}  Process p ( Colour = 1 )\n"),
        6,
        15,
        &[
            "type `Process` has no attribute `Colour` (in resource `p`)",
            "Process declares: ArgList, MonitorInterval, PathName",
            "Critical, Enabled",
        ],
    );
}

#[test]
fn misspelt_attribute_gets_a_suggestion() {
    assert_error(
        &format!("{GROUP}  Process p ( PathNam = \"/x\" )\n"),
        6,
        15,
        &["did you mean `PathName`?"],
    );
}

#[test]
fn common_attributes_need_no_declaration() {
    assert_ok(&format!(
        "{GROUP}  Phantom p ( Critical = 0 OnlineTimeout = 10 MonitorInterval = 30 )\n"
    ));
}

#[test]
fn integer_attribute_rejects_text() {
    assert_error(
        &format!("{GROUP}  Process p ( MonitorInterval = fast )\n"),
        6,
        33,
        &["`MonitorInterval` of resource `p` is an integer; `fast` is not one"],
    );
}

#[test]
fn boolean_attribute_must_be_zero_or_one() {
    assert_error(
        &format!("{GROUP}  Process p ( Critical = 2 )\n"),
        6,
        26,
        &["`Critical` of resource `p` is a boolean: write 0 or 1, not `2`"],
    );
}

#[test]
fn vector_attribute_rejects_a_scalar() {
    assert_error(
        &format!("{GROUP}  Application a ( PidFiles = \"/x\" )\n"),
        6,
        30,
        &["`PidFiles` of resource `a` expects a list `{ ... }`"],
    );
}

#[test]
fn scalar_attribute_rejects_a_list() {
    assert_error(
        &format!("{GROUP}  Process p ( PathName = {{ a }} )\n"),
        6,
        26,
        &["`PathName` of resource `p` is a single value"],
    );
}

#[test]
fn association_attribute_rejects_a_list() {
    assert_error(
        &format!("type T ( int Limits{{}} )\n{GROUP}  T t ( Limits = {{ a, b }} )\n"),
        7,
        18,
        &["`Limits` of resource `t` expects an association"],
    );
}

#[test]
fn vector_attribute_rejects_an_association() {
    assert_error(
        &format!("{GROUP}  Application a ( PidFiles = {{ a = b }} )\n"),
        6,
        30,
        &["expects a list `{ a, b }`, not `key = value` pairs"],
    );
}

#[test]
fn keylist_items_are_unique() {
    assert_error(
        &format!("type T ( keylist Tags )\n{GROUP}  T t ( Tags = {{ a, b, a }} )\n"),
        7,
        24,
        &["`Tags` of resource `t` is a keylist and names `a` twice"],
    );
}

#[test]
fn temporary_attributes_cannot_be_set() {
    assert_error(
        &format!("type T ( temp str S )\n{GROUP}  T t ( S = x )\n"),
        7,
        9,
        &["`S` of type `T` is a temporary (`temp`) attribute"],
    );
}

#[test]
fn type_default_must_match_its_declaration() {
    assert_error(
        "type T (\n  boolean B = yes\n)\n",
        6,
        15,
        &["the default of `B` in type `T` is a boolean"],
    );
}

#[test]
fn static_attributes_may_be_overridden_in_a_resource() {
    assert_ok(&format!(
        "{GROUP}  Process p ( MonitorInterval = 10 ArgList = {{ PathName }} )\n"
    ));
}

// ---- resource dependencies ----------------------------------------------------

#[test]
fn resource_dependency_across_groups_names_the_other_group() {
    assert_error(
        &format!("{GROUP}  Process a\ngroup h ( SystemList = {{ sysA = 0 }} )\n  Process b\n  b requires a\n"),
        9,
        14,
        &["resource `a` belongs to group `g`, not `h`", "requires group g"],
    );
}

#[test]
fn resource_dependency_on_an_unknown_resource_is_an_error() {
    assert_error(
        &format!("{GROUP}  Process a\n  a requires q\n"),
        7,
        14,
        &["group `g` has no resource `q` (its resources: a)"],
    );
}

#[test]
fn resource_cannot_require_itself() {
    assert_error(
        &format!("{GROUP}  Process a\n  a requires a\n"),
        7,
        3,
        &["resource `a` cannot require itself"],
    );
}

#[test]
fn duplicate_resource_dependency_is_an_error() {
    assert_error(
        &format!("{GROUP}  Process a\n  Process b\n  a requires b\n  a requires b\n"),
        9,
        3,
        &["`a requires b` is already written at line 8"],
    );
}

#[test]
fn resource_dependency_cycle_lists_the_path() {
    assert_error(
        &format!("{GROUP}  Phantom a\n  Phantom b\n  Phantom c\n  a requires b\n  b requires c\n  c requires a\n"),
        11,
        3,
        &["resource dependency cycle in group `g`: c -> a -> b -> c"],
    );
}

// ---- group dependencies ---------------------------------------------------

#[test]
fn group_dependency_on_an_unknown_group_is_an_error() {
    assert_error(
        "group g\n  requires group gg online local firm\n",
        6,
        18,
        &[
            "group `g` requires unknown group `gg` (groups: g)",
            "did you mean `g`?",
        ],
    );
}

#[test]
fn group_cannot_require_itself() {
    assert_error(
        "group g\n  requires group g online local firm\n",
        6,
        18,
        &["group `g` cannot require itself"],
    );
}

#[test]
fn duplicate_group_dependency_is_an_error() {
    assert_error(
        "group g\n  requires group h online local firm\n  requires group h offline local soft\ngroup h\n",
        7,
        3,
        &["group `g` already requires group `h` at line 6"],
    );
}

#[test]
fn group_dependency_cycle_lists_the_path() {
    assert_error(
        "group g\n  requires group h online local firm\ngroup h\n  requires group g online local firm\n",
        8,
        3,
        &["group dependency cycle: h -> g -> h"],
    );
}

// ---- syntax ---------------------------------------------------------------

#[test]
fn missing_equals_sign_names_the_attribute() {
    assert_error(
        "group g ( Load 3 )\n",
        5,
        16,
        &["expected `=` after attribute `Load`"],
    );
}

#[test]
fn invalid_name_says_what_names_may_contain() {
    assert_error("group a/b\n", 5, 7, &["`a/b` is not a valid group name"]);
}

#[test]
fn requires_line_before_any_group_says_where_it_goes() {
    assert_error(
        "requires group g online local firm\n",
        5,
        1,
        &["`requires` lines go after the `group` block"],
    );
}
