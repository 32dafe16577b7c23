//! Routing alert changes to channels, and delivering them: one bounded
//! queue and one worker per channel, so a slow or broken mail server holds
//! up only its own notifications, never the rules or ingestion. Every
//! attempt is recorded (sent, failed with the reason, dropped when the
//! queue is full, suppressed while an alert flaps).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use haven_store::{AlertRecord, AlertSeverity, DeliveryOutcome, NewDelivery};
use serde::Serialize;
use tokio::sync::mpsc;

use super::channels::{self, Channel};
use super::rules::{Change, Transition};
use super::settings::{AlertsSection, ChannelEntry, PolicyEntry};
use crate::writer::{HistorySink, WriteMsg};

/// What a channel is asked to deliver.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `raised`, `cleared`, `flapping`, `settled` or `test`.
    pub event: &'static str,
    /// The alert as it is after the change.
    pub alert: AlertRecord,
    /// The server's host name.
    pub server: String,
    /// When the notification was made, ms since the epoch.
    pub sent_ms: i64,
}

impl Notification {
    /// One line for people: `CRITICAL raised: group web faulted on n1
    /// (cluster prod-db)`.
    pub fn subject(&self) -> String {
        format!(
            "{} {}: {} (cluster {})",
            self.alert.severity.as_str().to_uppercase(),
            self.event,
            self.alert.message,
            self.alert.cluster
        )
    }
}

struct Queue {
    sender: mpsc::Sender<Notification>,
}

/// Routes changes by the policies to the channels' queues.
pub struct Notifier {
    policies: Vec<PolicyEntry>,
    queues: HashMap<String, Queue>,
    history: HistorySink,
    server: String,
    /// For policies that match tags (`tags = [...]`).
    fleet: Arc<crate::fleet::Fleet>,
}

impl Notifier {
    /// Starts one worker per channel.
    pub fn start(
        settings: &AlertsSection,
        history: HistorySink,
        fleet: Arc<crate::fleet::Fleet>,
    ) -> Notifier {
        let mut queues = HashMap::new();
        for entry in &settings.channels {
            let (sender, rx) = mpsc::channel(settings.queue_capacity.max(1));
            let channel = channels::build(entry);
            tokio::spawn(worker(entry.clone(), channel, rx, history.clone()));
            queues.insert(entry.name().to_string(), Queue { sender });
        }
        Notifier {
            policies: settings.policies.clone(),
            queues,
            history,
            server: crate::tls::host_name().unwrap_or_else(|| "haven".into()),
            fleet,
        }
    }

    /// The configured channels' names, sorted.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.queues.keys().cloned().collect();
        names.sort();
        names
    }

    /// Queues each notifying change for the channels its policies name.
    pub fn notify(&self, changes: &[Change]) {
        let mut records = Vec::new();
        for change in changes {
            if change.transition == Transition::Acknowledged {
                continue;
            }
            let a = &change.alert;
            let tags = match self.policies.iter().any(|p| !p.tags.is_empty()) {
                true => self.fleet.tags_of(&a.cluster),
                false => Default::default(),
            };
            let carried: Vec<_> = tags
                .carried(a.service_group.as_deref(), a.system.as_deref())
                .collect();
            let targets: BTreeSet<&str> = self
                .policies
                .iter()
                .filter(|p| p.matches_tagged(a, &carried))
                .flat_map(|p| p.channels.iter().map(String::as_str))
                .collect();
            for target in targets {
                let event = change.transition.as_str();
                if change.suppressed {
                    records.push(delivery(
                        &change.alert,
                        target,
                        event,
                        0,
                        DeliveryOutcome::Suppressed,
                        Some("the alert is flapping".into()),
                    ));
                    continue;
                }
                if let Err(why) = self.enqueue(target, event, change.alert.clone()) {
                    records.push(delivery(
                        &change.alert,
                        target,
                        event,
                        0,
                        DeliveryOutcome::Dropped,
                        Some(why),
                    ));
                }
            }
        }
        if !records.is_empty() {
            // The writer's queue is bounded; never wait for it here.
            if let Err(e) = self.history.try_send(WriteMsg::Deliveries(records)) {
                tracing::error!("cannot record dropped or suppressed notifications: {e}");
            }
        }
    }

    fn enqueue(
        &self,
        channel: &str,
        event: &'static str,
        alert: AlertRecord,
    ) -> Result<(), String> {
        let queue = self
            .queues
            .get(channel)
            .ok_or_else(|| format!("no channel named {channel}"))?;
        queue
            .sender
            .try_send(Notification {
                event,
                alert,
                server: self.server.clone(),
                sent_ms: crate::now_ms(),
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    format!("the queue of channel {channel} is full ([alerts] queue_capacity)")
                }
                mpsc::error::TrySendError::Closed(_) => format!("channel {channel} has stopped"),
            })
    }

    /// A test notification through one channel (alert id 0).
    pub fn test(&self, channel: &str, by: &str) -> Result<(), String> {
        let now = crate::now_ms();
        let alert = AlertRecord {
            id: 0,
            cluster: "-".into(),
            kind: "test".into(),
            object: None,
            system: None,
            service_group: None,
            severity: AlertSeverity::Info,
            message: format!("a test notification, asked for by {by}"),
            raised_ms: now,
            cleared_ms: None,
            acknowledged_by: None,
            acknowledged_ms: None,
            flapping: false,
        };
        self.enqueue(channel, "test", alert)
    }
}

/// The record of one attempt to deliver (`attempt` 0: none was made).
fn delivery(
    alert: &AlertRecord,
    channel: &str,
    event: &str,
    attempt: u32,
    outcome: DeliveryOutcome,
    error: Option<String>,
) -> NewDelivery {
    NewDelivery {
        alert_id: (alert.id > 0).then_some(alert.id),
        channel: channel.to_string(),
        event: event.to_string(),
        attempt,
        outcome,
        error,
        time_ms: crate::now_ms(),
    }
}

/// Delivers a channel's notifications one at a time: each attempt bounded
/// by the channel's timeout, failures retried after a wait that doubles
/// (up to a minute), every attempt recorded.
async fn worker(
    entry: ChannelEntry,
    channel: Arc<dyn Channel>,
    mut queue: mpsc::Receiver<Notification>,
    history: HistorySink,
) {
    let (retries, first_wait, limit) = entry.timings();
    let name = entry.name().to_string();
    while let Some(n) = queue.recv().await {
        let mut wait = first_wait;
        for attempt in 1..=retries.saturating_add(1) {
            let result = match tokio::time::timeout(limit, channel.send(&n)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {limit:?}")),
            };
            let outcome = match result {
                Ok(()) => DeliveryOutcome::Sent,
                Err(_) => DeliveryOutcome::Failed,
            };
            let error = result.as_ref().err().cloned();
            let record = delivery(&n.alert, &name, n.event, attempt, outcome, error);
            if history
                .send(WriteMsg::Deliveries(vec![record]))
                .await
                .is_err()
            {
                return;
            }
            match result {
                Ok(()) => break,
                Err(e) if attempt <= retries => {
                    tracing::warn!(
                        channel = name,
                        alert = n.alert.id,
                        "notification attempt {attempt} failed: {e}; retrying in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
                Err(e) => tracing::error!(
                    channel = name,
                    alert = n.alert.id,
                    "notification given up after {attempt} attempts: {e}"
                ),
            }
        }
    }
}
