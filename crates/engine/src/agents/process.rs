//! `Process`: starts a program, watches its pid, stops it with TERM and
//! cleans it with KILL.
//!
//! Attributes: `PathName` (required), `Arguments` (split like a shell
//! would, without expansion), `PidFile` (optional: lets the agent find a
//! process it did not start, e.g. after an engine restart).
//!
//! The program runs in its own process group, so TERM and KILL reach its
//! children too. The agent remembers the pid it started per resource and
//! system; a task reaps the child so a dead one is seen as dead.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    pid_alive, read_pid_file, split_args, Agent, AgentAction, AgentOutcome, AgentReply,
    AgentResource,
};

#[derive(Clone)]
struct Started {
    pid: i32,
    exited: Arc<AtomicBool>,
}

impl Started {
    fn running(&self) -> bool {
        !self.exited.load(Ordering::SeqCst)
    }
}

/// The Process agent.
#[derive(Default)]
pub struct ProcessAgent {
    started: Arc<Mutex<HashMap<(String, String), Started>>>,
}

type Key = (String, String);

fn key(resource: &AgentResource<'_>) -> Key {
    (
        resource.resource.name.to_string(),
        resource.system.to_string(),
    )
}

fn signal_group(pid: i32, signal: i32) {
    // SAFETY: plain kill(2) on a process group we started (negative pid),
    // falling back to the pid alone for processes found by pid file.
    unsafe {
        if libc::kill(-pid, signal) != 0 {
            libc::kill(pid, signal);
        }
    }
}

/// Waits until `alive()` is false, polling, for at most `limit`.
async fn wait_gone(limit: Duration, alive: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while alive() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

impl ProcessAgent {
    fn find(&self, key: &Key, pid_file: Option<&str>) -> Option<(i32, Option<Started>)> {
        let known = self.started.lock().ok()?.get(key).cloned();
        match known {
            Some(s) if s.running() => Some((s.pid, Some(s))),
            _ => pid_file
                .and_then(read_pid_file)
                .filter(|&pid| pid_alive(pid))
                .map(|pid| (pid, None)),
        }
    }

    fn online(&self, resource: &AgentResource<'_>) -> AgentReply {
        let path = match resource.required("PathName") {
            Ok(p) => p,
            Err(e) => return AgentReply::Ready(AgentOutcome::Failed(e)),
        };
        let args = split_args(&resource.text("Arguments").unwrap_or_default());
        let pid_file = resource.text("PidFile");
        let key = key(resource);
        let started = self.started.clone();
        AgentReply::Later(Box::pin(async move {
            let mut command = tokio::process::Command::new(&path);
            command
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .kill_on_drop(false);
            let mut child = match command.spawn() {
                Ok(c) => c,
                Err(e) => return AgentOutcome::Failed(format!("cannot start {path}: {e}")),
            };
            let Some(pid) = child.id().map(|p| p as i32) else {
                return AgentOutcome::Failed(format!("{path} exited at once"));
            };
            let exited = Arc::new(AtomicBool::new(false));
            let flag = exited.clone();
            tokio::spawn(async move {
                let _ = child.wait().await;
                flag.store(true, Ordering::SeqCst);
            });
            if let Some(file) = &pid_file {
                if let Err(e) = std::fs::write(file, format!("{pid}\n")) {
                    tracing::warn!("cannot write pid file {file}: {e}");
                }
            }
            if let Ok(mut map) = started.lock() {
                map.insert(
                    key,
                    Started {
                        pid,
                        exited: exited.clone(),
                    },
                );
            }
            // A program that dies at once (bad arguments) did not come
            // online; give it a moment to show that.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if exited.load(Ordering::SeqCst) {
                AgentOutcome::Failed(format!("{path} exited right after it started"))
            } else {
                AgentOutcome::Done
            }
        }))
    }

    fn stop(&self, resource: &AgentResource<'_>, signal: i32) -> AgentReply {
        let key = key(resource);
        let pid_file = resource.text("PidFile");
        let Some((pid, started)) = self.find(&key, pid_file.as_deref()) else {
            return AgentReply::Ready(AgentOutcome::Done);
        };
        // Leave time for the program to handle TERM, within the timeout.
        let grace = resource
            .timeout(AgentAction::Offline)
            .min(Duration::from_secs(10));
        AgentReply::Later(Box::pin(async move {
            signal_group(pid, signal);
            let alive = || match &started {
                Some(s) => s.running(),
                None => pid_alive(pid),
            };
            if wait_gone(grace, alive).await {
                if let Some(file) = &pid_file {
                    let _ = std::fs::remove_file(file);
                }
                AgentOutcome::Done
            } else {
                AgentOutcome::Failed(format!(
                    "pid {pid} still running {grace:?} after signal {signal}"
                ))
            }
        }))
    }

    fn monitor(&self, resource: &AgentResource<'_>) -> AgentReply {
        let pid_file = resource.text("PidFile");
        let online = self.find(&key(resource), pid_file.as_deref()).is_some();
        AgentReply::Ready(AgentOutcome::Observed(online))
    }
}

impl Agent for ProcessAgent {
    fn validate(&self, resource: &AgentResource<'_>) -> Result<(), String> {
        resource.required("PathName").map(|_| ())
    }

    fn call(&self, action: AgentAction, resource: &AgentResource<'_>) -> AgentReply {
        match action {
            AgentAction::Online => self.online(resource),
            AgentAction::Offline => self.stop(resource, libc::SIGTERM),
            AgentAction::Clean => self.stop(resource, libc::SIGKILL),
            AgentAction::Monitor => self.monitor(resource),
        }
    }
}
