//! The `haven` command that does what a console action does: the command
//! log shows it, so the console teaches the CLI. One function per kind of
//! action, so a hint cannot drift from the command line (the console's
//! end-to-end test runs every hint it sees through the real `haven`
//! argument parser).

use std::fmt::Write;

use haven_model::{Name, Operation};

/// `haven backup`: a backup through the API (`haven db backup FILE` is
/// the server-host command, writing a file of its own).
pub const BACKUP: &str = "haven backup";

/// `haven db prune` (on the server host: pruning has no API client
/// command); the script appends `--older-than Nd`.
pub const PRUNE: &str = "haven db prune";

/// `haven role grant`; the script appends the role and the form's
/// `--user`/`--group`/`--cluster`/`--group-scope`.
pub const GRANT: &str = "haven role grant";

/// `haven cluster add`; the script appends NAME HOST:PORT [--user U].
pub const CLUSTER_ADD: &str = "haven cluster add";

/// `haven cluster token`; the script appends `--cluster C` if given.
pub const TOKEN: &str = "haven cluster token";

/// `haven peer token`.
pub const PEER_TOKEN: &str = "haven peer token";

/// `haven peer add`; the script appends ADDRESS `--token T`.
pub const PEER_ADD: &str = "haven peer add";

/// `haven peer remove SITE`.
pub fn peer_remove(site: &str) -> String {
    format!("haven peer remove {}", word(site))
}

/// `haven cluster remove NAME`.
pub fn cluster_remove(cluster: &str) -> String {
    format!("haven cluster remove {}", word(cluster))
}

/// `haven role revoke ID`.
pub fn revoke(id: i64) -> String {
    format!("haven role revoke {id}")
}

/// `haven audit`, with the page's filters.
pub fn audit(user: Option<&str>, cluster: Option<&str>) -> String {
    with_options("haven audit", &[("--user", user), ("--cluster", cluster)])
}

/// `haven audit --access`, with the access page's filters.
pub fn access_log(user: Option<&str>, outcome: Option<&str>) -> String {
    with_options(
        "haven audit --access",
        &[("--user", user), ("--outcome", outcome)],
    )
}

/// `haven alerts`, with the alerts page's filters (`--all` unless only
/// open alerts are shown).
pub fn alerts(all: bool, cluster: Option<&str>, severity: Option<&str>) -> String {
    let command = if all {
        "haven alerts --all"
    } else {
        "haven alerts"
    };
    with_options(command, &[("--cluster", cluster), ("--severity", severity)])
}

/// `haven alert ack ID`.
pub fn alert_ack(id: i64) -> String {
    format!("haven alert ack {id}")
}

/// `haven alert deliveries`: the delivery log.
pub const ALERT_DELIVERIES: &str = "haven alert deliveries";

/// `haven alert test`; the script appends the channel.
pub const ALERT_TEST: &str = "haven alert test";

/// `haven report availability`, with the reports page's period and
/// filters.
pub fn report(
    from: &str,
    to: Option<&str>,
    cluster: Option<&str>,
    group: Option<&str>,
    tag: Option<&str>,
) -> String {
    with_options(
        "haven report availability",
        &[
            ("--from", Some(from)),
            ("--to", to),
            ("--cluster", cluster),
            ("--group", group),
            ("--tag", tag),
        ],
    )
}

/// `command` and each option that has a value.
fn with_options(command: &str, options: &[(&str, Option<&str>)]) -> String {
    let mut out = String::from(command);
    for (name, value) in options {
        if let Some(v) = value {
            let _ = write!(out, " {name} {}", word(v));
        }
    }
    out
}

/// The command for `op` on `cluster` (without `--wait`), or `None` for
/// the simulation-only operations, which have none.
pub fn operation(cluster: &str, op: &Operation) -> Option<String> {
    let at = |object: &Name| word(&format!("{cluster}/{object}"));
    let system = |s: &Option<Name>| {
        s.as_ref()
            .map(|s| format!(" --system {}", word(s)))
            .unwrap_or_default()
    };
    let flag = |on: bool, name: &str| {
        if on {
            format!(" {name}")
        } else {
            String::new()
        }
    };
    Some(match op {
        Operation::GroupOnline { group, system: s } => {
            format!("haven group online {}{}", at(group), system(s))
        }
        Operation::GroupOffline { group, system: s } => {
            format!("haven group offline {}{}", at(group), system(s))
        }
        Operation::GroupSwitch { group, to } => format!(
            "haven group switch {}{}",
            at(group),
            to.as_ref()
                .map(|t| format!(" --to {}", word(t)))
                .unwrap_or_default()
        ),
        Operation::GroupFreeze { group, persistent } => format!(
            "haven group freeze {}{}",
            at(group),
            flag(*persistent, "--persistent")
        ),
        Operation::GroupUnfreeze { group } => format!("haven group unfreeze {}", at(group)),
        Operation::GroupClear { group, system: s } => {
            format!("haven group clear {}{}", at(group), system(s))
        }
        Operation::GroupFlush { group, system: s } => {
            format!("haven group flush {}{}", at(group), system(s))
        }
        Operation::GroupEnable { group } => format!("haven group enable {}", at(group)),
        Operation::GroupDisable { group } => format!("haven group disable {}", at(group)),
        Operation::ResourceOnline { resource, system } => format!(
            "haven resource online {} --system {}",
            at(resource),
            word(system)
        ),
        Operation::ResourceOffline { resource, system } => format!(
            "haven resource offline {} --system {}",
            at(resource),
            word(system)
        ),
        Operation::ResourceClear {
            resource,
            system: s,
        } => format!("haven resource clear {}{}", at(resource), system(s)),
        Operation::ResourceProbe { resource, system } => format!(
            "haven resource probe {} --system {}",
            at(resource),
            word(system)
        ),
        Operation::SystemFreeze {
            system,
            persistent,
            evacuate,
        } => format!(
            "haven system freeze {}{}{}",
            at(system),
            flag(*evacuate, "--evacuate"),
            flag(*persistent, "--persistent")
        ),
        Operation::SystemUnfreeze { system } => format!("haven system unfreeze {}", at(system)),
        Operation::SimFaultResource { .. }
        | Operation::SimFaultSystem { .. }
        | Operation::SimRestoreSystem { .. } => return None,
    })
}

/// One shell word: as is when it is plain, else single-quoted (the same
/// rule as `shellWord` in the console's script).
pub fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_read_as_their_haven_commands() {
        let cases = [
            (
                Operation::GroupSwitch {
                    group: "web".into(),
                    to: Some("n2".into()),
                },
                "haven group switch kappa/web --to n2",
            ),
            (
                Operation::GroupOffline {
                    group: "web".into(),
                    system: None,
                },
                "haven group offline kappa/web",
            ),
            (
                Operation::GroupFreeze {
                    group: "web".into(),
                    persistent: true,
                },
                "haven group freeze kappa/web --persistent",
            ),
            (
                Operation::ResourceProbe {
                    resource: "web_ip".into(),
                    system: "n1".into(),
                },
                "haven resource probe kappa/web_ip --system n1",
            ),
            (
                Operation::ResourceClear {
                    resource: "web_ip".into(),
                    system: None,
                },
                "haven resource clear kappa/web_ip",
            ),
            (
                Operation::SystemFreeze {
                    system: "n1".into(),
                    persistent: false,
                    evacuate: true,
                },
                "haven system freeze kappa/n1 --evacuate",
            ),
        ];
        for (op, want) in cases {
            assert_eq!(operation("kappa", &op).as_deref(), Some(want));
        }
        assert_eq!(
            operation(
                "kappa",
                &Operation::SimFaultSystem {
                    system: "n1".into()
                }
            ),
            None
        );
    }

    #[test]
    fn odd_names_are_quoted_for_the_shell() {
        assert_eq!(word("kappa/web-1"), "kappa/web-1");
        assert_eq!(word("a b"), "'a b'");
        assert_eq!(word("it's"), r"'it'\''s'");
        assert_eq!(word(""), "''");
        assert_eq!(
            audit(Some("ann"), Some("prod db")),
            "haven audit --user ann --cluster 'prod db'"
        );
        assert_eq!(audit(None, None), "haven audit");
        assert_eq!(
            access_log(Some("ann b"), Some("denied")),
            "haven audit --access --user 'ann b' --outcome denied"
        );
        assert_eq!(access_log(None, None), "haven audit --access");
        assert_eq!(
            alerts(true, Some("prod db"), Some("critical")),
            "haven alerts --all --cluster 'prod db' --severity critical"
        );
        assert_eq!(alerts(false, None, None), "haven alerts");
        assert_eq!(alert_ack(7), "haven alert ack 7");
        assert_eq!(
            report("7d", None, Some("kappa"), None, None),
            "haven report availability --from 7d --cluster kappa"
        );
    }
}
