//! `FileOnOff`: the resource is online while the file `PathName` exists.
//! Online creates it, offline and clean remove it.

use super::{Agent, AgentAction, AgentOutcome, AgentReply, AgentResource};

/// The FileOnOff agent.
pub struct FileOnOffAgent;

impl Agent for FileOnOffAgent {
    fn validate(&self, resource: &AgentResource<'_>) -> Result<(), String> {
        resource.required("PathName").map(|_| ())
    }

    fn call(&self, action: AgentAction, resource: &AgentResource<'_>) -> AgentReply {
        let path = match resource.required("PathName") {
            Ok(p) => p,
            Err(e) => return AgentReply::Ready(AgentOutcome::Failed(e)),
        };
        // Small local file operations: done at once, no task needed.
        let outcome = match action {
            AgentAction::Online => match std::fs::write(&path, b"") {
                Ok(()) => AgentOutcome::Done,
                Err(e) => AgentOutcome::Failed(format!("cannot create {path}: {e}")),
            },
            AgentAction::Offline | AgentAction::Clean => match std::fs::remove_file(&path) {
                Ok(()) => AgentOutcome::Done,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => AgentOutcome::Done,
                Err(e) => AgentOutcome::Failed(format!("cannot remove {path}: {e}")),
            },
            AgentAction::Monitor => AgentOutcome::Observed(std::path::Path::new(&path).exists()),
        };
        AgentReply::Ready(outcome)
    }
}
