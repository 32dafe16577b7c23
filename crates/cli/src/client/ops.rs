//! Operations: `haven group|resource|system VERB CLUSTER/NAME`. Each is one
//! `POST /api/v1/clusters/NAME/operations` with a `haven_model::Operation`;
//! the answer's outcome decides the exit status (completed or accepted 0,
//! refused or failed 1 — 3 when for lack of a role, 4 for an unknown
//! object —, timed out 6).

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use haven_model::{Name, Operation};
use serde_json::Value;

use super::http::{encode, Api, TIMEOUT};
use super::output::{self, print_json};
use super::wait::Spinner;
use super::{parse_target, Exit, Failure, Global, Result, Target, WaitArgs};

/// The service group an operation is for.
#[derive(Args)]
pub struct OnGroup {
    /// The service group, as CLUSTER/GROUP.
    #[arg(value_name = "CLUSTER/GROUP", value_parser = parse_target)]
    target: Target,
    #[command(flatten)]
    wait: WaitArgs,
}

/// The resource an operation is for.
#[derive(Args)]
pub struct OnResource {
    /// The resource, as CLUSTER/RESOURCE.
    #[arg(value_name = "CLUSTER/RESOURCE", value_parser = parse_target)]
    target: Target,
    #[command(flatten)]
    wait: WaitArgs,
}

/// The system an operation is for.
#[derive(Args)]
pub struct OnSystem {
    /// The system (node), as CLUSTER/SYSTEM.
    #[arg(value_name = "CLUSTER/SYSTEM", value_parser = parse_target)]
    target: Target,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Bring a group online (on --system, or its first eligible system; a
    /// parallel group on every eligible system).
    Online {
        #[command(flatten)]
        on: OnGroup,
        /// Only on this system.
        #[arg(long, value_name = "SYSTEM")]
        system: Option<String>,
    },
    /// Take a group offline (on --system, or everywhere).
    Offline {
        #[command(flatten)]
        on: OnGroup,
        /// Only on this system.
        #[arg(long, value_name = "SYSTEM")]
        system: Option<String>,
    },
    /// Move a failover group to --to (or the next eligible system).
    Switch {
        #[command(flatten)]
        on: OnGroup,
        /// The system to move it to (default: the next eligible one).
        #[arg(long, alias = "system", value_name = "SYSTEM")]
        to: Option<String>,
    },
    /// Freeze a group: it neither goes online, offline nor fails over.
    Freeze {
        #[command(flatten)]
        on: OnGroup,
        /// Written to main.cf: survives engine restarts.
        #[arg(long)]
        persistent: bool,
    },
    /// Unfreeze a group.
    Unfreeze(OnGroup),
    /// Clear the faults of a group's resources (on --system, or everywhere).
    Clear {
        #[command(flatten)]
        on: OnGroup,
        /// Only on this system.
        #[arg(long, value_name = "SYSTEM")]
        system: Option<String>,
    },
    /// Cancel online/offline work in progress and re-probe.
    Flush {
        #[command(flatten)]
        on: OnGroup,
        /// Only on this system.
        #[arg(long, value_name = "SYSTEM")]
        system: Option<String>,
    },
    /// Enable a group (written to main.cf).
    Enable(OnGroup),
    /// Disable a group: it goes online nowhere (written to main.cf).
    Disable(OnGroup),
}

#[derive(Subcommand)]
pub enum ResourceCommand {
    /// Bring a resource online on a system.
    Online {
        #[command(flatten)]
        on: OnResource,
        #[arg(long, value_name = "SYSTEM")]
        system: String,
    },
    /// Take a resource offline on a system.
    Offline {
        #[command(flatten)]
        on: OnResource,
        #[arg(long, value_name = "SYSTEM")]
        system: String,
    },
    /// Clear a resource's fault (on --system, or everywhere).
    Clear {
        #[command(flatten)]
        on: OnResource,
        /// Only on this system.
        #[arg(long, value_name = "SYSTEM")]
        system: Option<String>,
    },
    /// Run the resource's monitor on a system now.
    Probe {
        #[command(flatten)]
        on: OnResource,
        #[arg(long, value_name = "SYSTEM")]
        system: String,
    },
}

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Freeze a system: no group goes online on it.
    Freeze {
        #[command(flatten)]
        on: OnSystem,
        /// Switch its online failover groups to other systems first.
        #[arg(long)]
        evacuate: bool,
        /// Written to main.cf: survives engine restarts.
        #[arg(long)]
        persistent: bool,
    },
    /// Unfreeze a system.
    Unfreeze(OnSystem),
}

fn name(text: &str) -> Name {
    Name::from(text)
}

fn names(text: Option<String>) -> Option<Name> {
    text.as_deref().map(name)
}

pub fn group(g: &Global, command: GroupCommand) -> Result<()> {
    use GroupCommand as G;
    let (on, op) = match command {
        G::Online { on, system } => {
            let group = name(&on.target.object);
            let system = names(system);
            (on, Operation::GroupOnline { group, system })
        }
        G::Offline { on, system } => {
            let group = name(&on.target.object);
            let system = names(system);
            (on, Operation::GroupOffline { group, system })
        }
        G::Switch { on, to } => {
            let group = name(&on.target.object);
            let to = names(to);
            (on, Operation::GroupSwitch { group, to })
        }
        G::Freeze { on, persistent } => {
            let group = name(&on.target.object);
            (on, Operation::GroupFreeze { group, persistent })
        }
        G::Unfreeze(on) => {
            let group = name(&on.target.object);
            (on, Operation::GroupUnfreeze { group })
        }
        G::Clear { on, system } => {
            let group = name(&on.target.object);
            let system = names(system);
            (on, Operation::GroupClear { group, system })
        }
        G::Flush { on, system } => {
            let group = name(&on.target.object);
            let system = names(system);
            (on, Operation::GroupFlush { group, system })
        }
        G::Enable(on) => {
            let group = name(&on.target.object);
            (on, Operation::GroupEnable { group })
        }
        G::Disable(on) => {
            let group = name(&on.target.object);
            (on, Operation::GroupDisable { group })
        }
    };
    operate(g, &on.target, &on.wait, op)
}

pub fn resource(g: &Global, command: ResourceCommand) -> Result<()> {
    use ResourceCommand as R;
    let (on, op) = match command {
        R::Online { on, system } => {
            let (resource, system) = (name(&on.target.object), name(&system));
            (on, Operation::ResourceOnline { resource, system })
        }
        R::Offline { on, system } => {
            let (resource, system) = (name(&on.target.object), name(&system));
            (on, Operation::ResourceOffline { resource, system })
        }
        R::Clear { on, system } => {
            let (resource, system) = (name(&on.target.object), names(system));
            (on, Operation::ResourceClear { resource, system })
        }
        R::Probe { on, system } => {
            let (resource, system) = (name(&on.target.object), name(&system));
            (on, Operation::ResourceProbe { resource, system })
        }
    };
    operate(g, &on.target, &on.wait, op)
}

pub fn system(g: &Global, command: SystemCommand) -> Result<()> {
    let (on, op) = match command {
        SystemCommand::Freeze {
            on,
            evacuate,
            persistent,
        } => {
            let system = name(&on.target.object);
            let op = Operation::SystemFreeze {
                system,
                persistent,
                evacuate,
            };
            (on, op)
        }
        SystemCommand::Unfreeze(on) => {
            let system = name(&on.target.object);
            (on, Operation::SystemUnfreeze { system })
        }
    };
    operate(g, &on.target, &on.wait, op)
}

/// An operation (as JSON) in a few words: `switch group web to n2`,
/// `probe resource web_ip on n1`, `freeze system n2 evacuate`.
pub fn describe(op: &Value) -> String {
    let Some(fields) = op.as_object() else {
        return output::text(op);
    };
    let verb = output::text(&op["op"]);
    let Some(kind) = ["group", "resource", "system"]
        .into_iter()
        .find(|k| fields.contains_key(*k))
    else {
        return verb;
    };
    let action = verb.strip_prefix(&format!("{kind}_")).unwrap_or(&verb);
    let mut out = format!("{action} {kind} {}", output::text(&op[kind]));
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("op", _) | (_, Value::Null | Value::Bool(false)) => {}
            (k, _) if k == kind => {}
            ("system", v) => out.push_str(&format!(" on {}", output::text(v))),
            (k, Value::Bool(true)) => out.push_str(&format!(" {k}")),
            (k, v) => out.push_str(&format!(" {k} {}", output::text(v))),
        }
    }
    out
}

/// Sends the operation, waits for its answer (with a spinner when
/// waiting on a terminal), prints the outcome and maps it to the exit
/// status.
fn operate(g: &Global, target: &Target, wait: &WaitArgs, op: Operation) -> Result<()> {
    let api = Api::from_global(g)?;
    let mut body = serde_json::to_value(&op)
        .map_err(|e| Failure::error(format!("cannot encode the operation: {e}")))?;
    let what = format!("{} ({})", describe(&body), target.cluster);
    body["wait"] = Value::Bool(wait.wait);
    // The engine answers within 15 s; waiting adds the wait itself.
    let mut limit = TIMEOUT;
    if wait.wait {
        let secs = wait.timeout.as_secs().clamp(1, 3600);
        body["timeout_secs"] = Value::from(secs);
        limit = Duration::from_secs(secs) + TIMEOUT;
    }
    let spinner = if wait.wait && !g.json() {
        Spinner::start(what.clone())
    } else {
        None
    };
    if let Some(s) = &spinner {
        s.follow(&api, &target.cluster, &target.object);
    }
    let started = Instant::now();
    let answer = api.call(
        "POST",
        &format!("/api/v1/clusters/{}/operations", encode(&target.cluster)),
        Some(&body),
        limit,
    );
    if let Some(s) = spinner {
        s.stop();
    }
    let (status, result) = answer?;
    let Some(outcome) = result["outcome"].as_str() else {
        return Err(api.refusal(status, &result));
    };
    if g.json() {
        print_json(&result);
    }
    let reason = result["reason"].as_str().unwrap_or("no reason given");
    let took = started.elapsed().as_secs_f64();
    let tell = |line: String| {
        if !g.json() {
            println!("{line}");
        }
    };
    let colour = output::colour_out();
    match outcome {
        "completed" => {
            tell(format!(
                "{what}: {} in {took:.1}s",
                output::paint("completed", colour)
            ));
            Ok(())
        }
        "accepted" => {
            tell(format!(
                "{what}: {} (haven status {} shows how it goes; --wait waits for the end)",
                output::paint("accepted", colour),
                target.cluster
            ));
            Ok(())
        }
        "refused" if result["code"] == "permission_denied" => Err(Failure::new(
            Exit::Auth,
            format!("{what}: refused: {reason}; a Server Administrator can grant you a role (haven role grant)"),
        )),
        "refused" if result["code"] == "unknown_object" => Err(Failure::new(
            Exit::NotFound,
            format!("{what}: {reason}; haven status {} shows what is there", target.cluster),
        )),
        "refused" => Err(Failure::error(format!("{what}: refused: {reason}"))),
        "failed" => Err(Failure::error(format!("{what}: failed: {reason}"))),
        "timed_out" => Err(Failure::new(
            Exit::TimedOut,
            format!("{what}: timed out: {reason}; it may still get there (haven status {})", target.cluster),
        )),
        other => Err(Failure::error(format!("{what}: unexpected outcome {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_read_as_a_few_words() {
        let op = json!({"op": "group_switch", "group": "web", "to": "n2"});
        assert_eq!(describe(&op), "switch group web to n2");
        let op = json!({"op": "group_online", "group": "web", "system": null});
        assert_eq!(describe(&op), "online group web");
        let op =
            json!({"op": "system_freeze", "system": "n1", "persistent": false, "evacuate": true});
        assert_eq!(describe(&op), "freeze system n1 evacuate");
        let op = json!({"op": "resource_probe", "resource": "ip", "system": "n1"});
        assert_eq!(describe(&op), "probe resource ip on n1");
        let op = json!({"op": "sim_fault_system", "system": "n1"});
        assert_eq!(describe(&op), "sim_fault_system system n1");
    }
}
