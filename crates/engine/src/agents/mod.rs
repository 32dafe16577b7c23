//! Agents: the code that starts, stops, monitors and cleans resources of
//! one type. One trait, [`Agent`]; one file per agent beside this one.
//!
//! Real agents (`Process`, `Application`, `FileOnOff`) act on this host.
//! The simulated agent stands in for every type in simulation mode.
//!
//! An agent answers at once when it can ([`AgentReply::Ready`], or after a
//! simulated delay) and with a future when it must wait on the operating
//! system; the engine bounds every future by the resource's timeout.

mod application;
mod file_on_off;
mod process;
mod sim;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use haven_model::{AttrValue, ClusterConfig, Name, ResourceConfig};

pub use application::ApplicationAgent;
pub use file_on_off::FileOnOffAgent;
pub use process::ProcessAgent;
pub use sim::SimAgent;

pub use crate::policy::{AgentAction, AgentOutcome};

/// A future an agent returns for work that waits on the system.
pub type AgentFuture = Pin<Box<dyn Future<Output = AgentOutcome> + Send>>;

/// How an agent answers.
pub enum AgentReply {
    Ready(AgentOutcome),
    /// Ready after a (simulated) delay.
    After(Duration, AgentOutcome),
    Later(AgentFuture),
}

/// The resource an agent acts on, on one system, with its attributes
/// resolved (localised value, else the resource's, else the type default).
pub struct AgentResource<'a> {
    pub config: &'a ClusterConfig,
    pub resource: &'a ResourceConfig,
    pub system: &'a Name,
    /// (resource index, system index) in the policy: a stable key.
    pub key: (usize, usize),
}

impl AgentResource<'_> {
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.config
            .resource_attr(self.resource, name, Some(self.system))
    }

    /// A string attribute; empty strings count as absent.
    pub fn text(&self, name: &str) -> Option<String> {
        self.attr(name)
            .and_then(AttrValue::as_text)
            .filter(|s| !s.is_empty())
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        self.attr(name)
            .map(AttrValue::as_text_list)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A string attribute the agent cannot work without.
    pub fn required(&self, name: &str) -> Result<String, String> {
        self.text(name).ok_or_else(|| {
            format!(
                "resource {} (type {}) needs attribute {name}",
                self.resource.name, self.resource.type_name
            )
        })
    }

    /// The timeout of an action, from OnlineTimeout / OfflineTimeout /
    /// MonitorTimeout / CleanTimeout.
    pub fn timeout(&self, action: AgentAction) -> Duration {
        let (attr, fallback) = match action {
            AgentAction::Online => ("OnlineTimeout", 300),
            AgentAction::Offline => ("OfflineTimeout", 300),
            AgentAction::Monitor => ("MonitorTimeout", 60),
            AgentAction::Clean => ("CleanTimeout", 300),
        };
        let secs = self
            .attr(attr)
            .and_then(AttrValue::as_int)
            .unwrap_or(fallback);
        Duration::from_secs(secs.max(1) as u64)
    }
}

/// The agent of one resource type.
pub trait Agent: Send + Sync {
    /// Checks a resource's attributes before the engine starts; the error
    /// names the resource and what is missing.
    fn validate(&self, resource: &AgentResource<'_>) -> Result<(), String>;

    /// Runs an action on a resource.
    fn call(&self, action: AgentAction, resource: &AgentResource<'_>) -> AgentReply;
}

/// The agents of an engine, by resource type.
pub struct AgentSet {
    by_type: HashMap<Name, Arc<dyn Agent>>,
    /// In simulation mode, the agent of every type.
    sim: Option<Arc<SimAgent>>,
}

impl AgentSet {
    /// The real agents of this host.
    pub fn real() -> Self {
        let mut by_type: HashMap<Name, Arc<dyn Agent>> = HashMap::new();
        by_type.insert("Process".into(), Arc::new(ProcessAgent::default()));
        by_type.insert("Application".into(), Arc::new(ApplicationAgent));
        by_type.insert("FileOnOff".into(), Arc::new(FileOnOffAgent));
        AgentSet { by_type, sim: None }
    }

    /// One simulated agent for every type.
    pub fn simulated(agent: SimAgent) -> Self {
        AgentSet {
            by_type: HashMap::new(),
            sim: Some(Arc::new(agent)),
        }
    }

    /// The simulated agent, in simulation mode.
    pub fn sim(&self) -> Option<&SimAgent> {
        self.sim.as_deref()
    }

    pub fn for_type(&self, type_name: &str) -> Option<&dyn Agent> {
        match &self.sim {
            Some(sim) => Some(sim.as_ref()),
            None => self.by_type.get(type_name).map(|a| a.as_ref()),
        }
    }

    /// Checks that every resource has an agent and the attributes it
    /// needs; returns every problem found, one line each.
    pub fn validate(&self, config: &ClusterConfig) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut index = 0;
        for group in &config.groups {
            for resource in &group.resources {
                match self.for_type(&resource.type_name) {
                    None => problems.push(format!(
                        "resource {}: type {} has no agent on this host (real agents: Application, FileOnOff, Process); run with --simulate to simulate it",
                        resource.name, resource.type_name
                    )),
                    Some(agent) => {
                        for (si, (system, _)) in group.system_list.iter().enumerate() {
                            let view = AgentResource {
                                config,
                                resource,
                                system,
                                key: (index, si),
                            };
                            if let Err(e) = agent.validate(&view) {
                                problems.push(e);
                                break;
                            }
                        }
                    }
                }
                index += 1;
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Splits an argument string the way a shell would for plain words and
/// quotes (no expansion): `a "b c" 'd'` is `a`, `b c`, `d`.
pub fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        args.push(current);
    }
    args
}

/// Whether a process with this pid exists (and is not a zombie we own).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    }
    // A zombie still "exists" for kill(); it is not running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|state| state != "Z" && state != "X")
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// Reads a pid from a pid file.
pub fn read_pid_file(path: &str) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_args_handles_quotes_and_escapes() {
        assert_eq!(
            split_args(r#"-c 'echo hi' "a \"b\"" plain\ word"#),
            vec!["-c", "echo hi", "a \"b\"", "plain word"]
        );
        assert_eq!(split_args("   "), Vec::<String>::new());
        assert_eq!(split_args("''"), vec![""]);
    }

    #[test]
    fn our_own_pid_is_alive_and_a_silly_one_is_not() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
        assert!(!pid_alive(i32::MAX));
    }
}
