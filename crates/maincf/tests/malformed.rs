//! Malformed input never panics: truncated files, edited files, token soup
//! and random bytes all give `Ok` or `Err`. Whatever is accepted also
//! survives the writer's round trip.

use haven_maincf::{parse_str, write_main_cf, write_types, BUILTIN_TYPES_CF};
use proptest::prelude::*;

const DEMO: &str = include_str!("examples/demo/main.cf");
const EXTRA: &str = include_str!("examples/demo/extra.cf");

/// Parses `text` as the demo's main.cf; if it is accepted, checks that
/// writing it and reading it back gives the same configuration.
fn parse_and_check(text: &str) -> Result<(), TestCaseError> {
    let mut load = |path: &str| match path {
        "types.cf" => Some(BUILTIN_TYPES_CF.to_string()),
        "extra.cf" => Some(EXTRA.to_string()),
        _ => None,
    };
    if let Ok(config) = parse_str("main.cf", text, &mut load) {
        let written = write_main_cf(&config);
        let again = parse_str("main.cf", &written, &mut |path| {
            Some(write_types(&config, path))
        });
        match again {
            Ok(again) => prop_assert_eq!(again, config),
            Err(e) => prop_assert!(false, "{}\n{}", e, written),
        }
    }
    Ok(())
}

/// The demo as written, and as the writer writes it.
fn samples() -> Vec<String> {
    let mut load = |path: &str| match path {
        "types.cf" => Some(BUILTIN_TYPES_CF.to_string()),
        "extra.cf" => Some(EXTRA.to_string()),
        _ => None,
    };
    let written = parse_str("main.cf", DEMO, &mut load)
        .map(|c| write_main_cf(&c))
        .unwrap_or_else(|e| panic!("{e}"));
    vec![DEMO.to_string(), written]
}

fn char_prefix(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

const VOCABULARY: &[&str] = &[
    "group",
    "system",
    "cluster",
    "type",
    "include",
    "requires",
    "(",
    ")",
    "{",
    "}",
    "=",
    ",",
    "@",
    "\"x\"",
    "\"",
    "\\",
    "a",
    "b",
    "sysA",
    "1",
    "-1",
    "static",
    "temp",
    "str",
    "int",
    "boolean",
    "keylist",
    "[]",
    "{}",
    "//",
    "/*",
    "*/",
    "\n",
    "Process",
    "PathName",
    "SystemList",
    "AutoStartList",
    "online",
    "local",
    "firm",
    "99999999999999999999",
    "\"types.cf\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_prefix_of_a_valid_file_parses_or_fails_cleanly(which in 0..2usize, cut in 0..4000usize) {
        let text = &samples()[which];
        parse_and_check(&char_prefix(text, cut % (text.chars().count() + 1)))?;
    }

    #[test]
    fn edited_files_parse_or_fail_cleanly(
        which in 0..2usize,
        at in any::<usize>(),
        removed in 0..20usize,
        inserted in prop::sample::select(VOCABULARY),
    ) {
        let text: Vec<char> = samples()[which].chars().collect();
        let at = at % (text.len() + 1);
        let end = (at + removed).min(text.len());
        let edited: String = text[..at]
            .iter()
            .chain(inserted.chars().collect::<Vec<_>>().iter())
            .chain(text[end..].iter())
            .collect();
        parse_and_check(&edited)?;
    }

    #[test]
    fn token_soup_parses_or_fails_cleanly(tokens in prop::collection::vec(prop::sample::select(VOCABULARY), 0..60)) {
        parse_and_check(&tokens.join(" "))?;
        parse_and_check(&format!("cluster c system sysA {}", tokens.join(" ")))?;
    }

    #[test]
    fn random_text_parses_or_fails_cleanly(text in any::<String>()) {
        parse_and_check(&text)?;
    }

    #[test]
    fn random_bytes_parse_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        parse_and_check(&String::from_utf8_lossy(&bytes))?;
    }
}

#[test]
fn every_prefix_of_the_demo_parses_or_fails_cleanly() {
    // Exhaustive over the demo as written: cheap, and catches the cut that
    // the sampled test above might miss.
    let text = &samples()[0];
    for n in 0..=text.chars().count() {
        if let Err(e) = parse_and_check(&char_prefix(text, n)) {
            panic!("prefix of {n} chars: {e}");
        }
    }
}
