//! `Application`: start, stop, clean and monitor programs given as shell
//! command lines.
//!
//! Attributes: `StartProgram`, `StopProgram` (required), `CleanProgram`,
//! `MonitorProgram`, `PidFiles`. Monitoring follows VCS: `MonitorProgram`
//! exits 110 for online and 100 for offline; without one, the resource is
//! online while every pid in `PidFiles` is alive.

use std::process::Stdio;

use super::{
    pid_alive, read_pid_file, Agent, AgentAction, AgentOutcome, AgentReply, AgentResource,
};

/// The Application agent.
pub struct ApplicationAgent;

const EXIT_ONLINE: i32 = 110;
const EXIT_OFFLINE: i32 = 100;

async fn run_shell(line: &str) -> Result<i32, String> {
    let status = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    Ok(status.code().unwrap_or(-1))
}

fn run_expecting_success(line: String) -> AgentReply {
    AgentReply::Later(Box::pin(async move {
        match run_shell(&line).await {
            Ok(0) => AgentOutcome::Done,
            Ok(code) => AgentOutcome::Failed(format!("`{line}` exited with {code}")),
            Err(e) => AgentOutcome::Failed(e),
        }
    }))
}

fn pids_alive(files: &[String]) -> bool {
    files
        .iter()
        .all(|f| read_pid_file(f).is_some_and(pid_alive))
}

impl Agent for ApplicationAgent {
    fn validate(&self, resource: &AgentResource<'_>) -> Result<(), String> {
        resource.required("StartProgram")?;
        resource.required("StopProgram")?;
        if resource.text("MonitorProgram").is_none() && resource.list("PidFiles").is_empty() {
            return Err(format!(
                "resource {} (type Application) needs MonitorProgram or PidFiles to be monitored",
                resource.resource.name
            ));
        }
        Ok(())
    }

    fn call(&self, action: AgentAction, resource: &AgentResource<'_>) -> AgentReply {
        let pid_files = resource.list("PidFiles");
        match action {
            AgentAction::Online | AgentAction::Offline => {
                let attr = if action == AgentAction::Online {
                    "StartProgram"
                } else {
                    "StopProgram"
                };
                match resource.required(attr) {
                    Ok(line) => run_expecting_success(line),
                    Err(e) => AgentReply::Ready(AgentOutcome::Failed(e)),
                }
            }
            AgentAction::Clean => match resource.text("CleanProgram") {
                Some(line) => run_expecting_success(line),
                None => {
                    for pid in pid_files.iter().filter_map(|f| read_pid_file(f)) {
                        // SAFETY: kill(2) on a pid the configuration names.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    AgentReply::Ready(AgentOutcome::Done)
                }
            },
            AgentAction::Monitor => match resource.text("MonitorProgram") {
                Some(line) => AgentReply::Later(Box::pin(async move {
                    match run_shell(&line).await {
                        Ok(EXIT_ONLINE) => AgentOutcome::Observed(true),
                        Ok(EXIT_OFFLINE) => AgentOutcome::Observed(false),
                        Ok(code) => AgentOutcome::Failed(format!(
                            "`{line}` exited with {code}; a monitor program exits {EXIT_ONLINE} (online) or {EXIT_OFFLINE} (offline)"
                        )),
                        Err(e) => AgentOutcome::Failed(e),
                    }
                })),
                None => AgentReply::Ready(AgentOutcome::Observed(
                    !pid_files.is_empty() && pids_alive(&pid_files),
                )),
            },
        }
    }
}
