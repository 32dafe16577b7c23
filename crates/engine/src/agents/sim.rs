//! The simulated agent: stands in for every resource type in simulation
//! mode. Online and offline always succeed, after a configurable random
//! delay; monitor reports what the simulation holds, so an injected fault
//! (the resource "died") is seen like a real one.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use super::{Agent, AgentAction, AgentOutcome, AgentReply, AgentResource};

/// The simulated agent of one cluster.
pub struct SimAgent {
    /// (resource, system) pairs that are "really" online.
    online: Mutex<HashSet<(usize, usize)>>,
    /// Online/offline take between these many milliseconds.
    delay_ms: (u64, u64),
}

impl SimAgent {
    /// A simulated agent whose online/offline take `min..=max` ms.
    pub fn new(delay_ms: (u64, u64)) -> Self {
        SimAgent {
            online: Mutex::new(HashSet::new()),
            delay_ms: (delay_ms.0.min(delay_ms.1), delay_ms.0.max(delay_ms.1)),
        }
    }

    /// The resource dies on that system (its next monitor sees it offline).
    pub fn kill(&self, resource: usize, system: usize) {
        if let Ok(mut online) = self.online.lock() {
            online.remove(&(resource, system));
        }
    }

    /// Everything on the system dies.
    pub fn kill_system(&self, system: usize) {
        if let Ok(mut online) = self.online.lock() {
            online.retain(|&(_, s)| s != system);
        }
    }

    fn set(&self, key: (usize, usize), up: bool) {
        if let Ok(mut online) = self.online.lock() {
            if up {
                online.insert(key);
            } else {
                online.remove(&key);
            }
        }
    }

    fn delayed(&self, outcome: AgentOutcome) -> AgentReply {
        let (min, max) = self.delay_ms;
        if max == 0 {
            AgentReply::Ready(outcome)
        } else {
            AgentReply::After(Duration::from_millis(fastrand::u64(min..=max)), outcome)
        }
    }
}

impl Agent for SimAgent {
    fn validate(&self, _: &AgentResource<'_>) -> Result<(), String> {
        Ok(())
    }

    fn call(&self, action: AgentAction, resource: &AgentResource<'_>) -> AgentReply {
        match action {
            AgentAction::Online => {
                self.set(resource.key, true);
                self.delayed(AgentOutcome::Done)
            }
            AgentAction::Offline | AgentAction::Clean => {
                self.set(resource.key, false);
                self.delayed(AgentOutcome::Done)
            }
            AgentAction::Monitor => {
                let up = self
                    .online
                    .lock()
                    .map(|o| o.contains(&resource.key))
                    .unwrap_or(false);
                AgentReply::Ready(AgentOutcome::Observed(up))
            }
        }
    }
}
