//! Alerts: conditions of the fleet that need someone (a fault, a failover,
//! a concurrency violation, a lost link, an object left frozen), raised
//! with a severity, acknowledged by people, cleared when the condition
//! ends, and routed by policies to channels (mail, webhook, syslog).
//!
//! One task ([`spawn`]) owns the rule engine ([`rules`]). It follows the
//! fleet's live updates (events, resyncs, link changes), so it sees what
//! the fleet sees without touching ingestion: the fleet publishes to a
//! broadcast channel and never waits for it. If the task falls behind and
//! misses updates, it reconciles every cluster from the fleet's state
//! (levels instead of edges: nothing that still holds is missed). Every
//! change is stored through the history writer (one writer, in order) and
//! handed to [`notify`], which routes it by the policies to per-channel
//! queues; channel workers deliver with retries and record every attempt.

pub mod api;
pub mod channels;
pub mod notify;
pub mod rules;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use haven_model::EventKind;
use haven_store::{AlertQuery, AlertRecord};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::fleet::{Fleet, FleetUpdate};
use crate::writer::{HistorySink, WriteMsg};
use rules::{Ack, Change, RuleSettings, Rules};
pub use settings::AlertsSection;

/// What the server had stored when it started: open alerts, the alerts of
/// the last flap window, and the highest id.
#[derive(Debug, Default)]
pub struct Loaded {
    pub open: Vec<AlertRecord>,
    pub recent: Vec<AlertRecord>,
    pub max_id: i64,
}

/// Reads what [`Rules::load`] takes up: the open alerts, those of the
/// last flap window (open or cleared), and the highest id.
pub fn load(
    store: &dyn haven_store::Store,
    settings: &AlertsSection,
) -> Result<Loaded, haven_store::StoreError> {
    let since = crate::now_ms() - RuleSettings::of(settings).flap_window_ms;
    let all = |q: AlertQuery| {
        store.alerts(&AlertQuery {
            limit: usize::MAX,
            ..q
        })
    };
    Ok(Loaded {
        open: all(AlertQuery {
            open: Some(true),
            ..Default::default()
        })?,
        recent: all(AlertQuery {
            since_ms: Some(since),
            ..Default::default()
        })?,
        max_id: store.max_alert_id()?,
    })
}

/// The answer to an acknowledgement.
#[derive(Debug)]
pub enum Acked {
    /// Acknowledged now, or earlier by someone (the alert says who).
    Open(Box<AlertRecord>),
    /// Not an open alert: a cleared one is acknowledged in the store.
    NotOpen,
}

enum Command {
    Acknowledge {
        id: i64,
        user: String,
        reply: oneshot::Sender<Acked>,
    },
    Open(oneshot::Sender<Vec<AlertRecord>>),
}

/// The handle the API uses.
#[derive(Clone)]
pub struct Alerts {
    commands: mpsc::Sender<Command>,
    notifier: Arc<notify::Notifier>,
    /// The open alerts as of the task's last step (for the console's
    /// counts, read without a round trip to the task).
    open_now: watch::Receiver<Arc<Vec<AlertRecord>>>,
}

impl Alerts {
    /// Records that `user` acknowledged open alert `id`.
    pub async fn acknowledge(&self, id: i64, user: &str) -> Result<Acked, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Acknowledge {
                id,
                user: user.to_string(),
                reply,
            })
            .await
            .map_err(|_| "the alert task has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the alert task has stopped".to_string())
    }

    /// The open alerts, as the rules hold them now.
    pub async fn open(&self) -> Result<Vec<AlertRecord>, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Open(reply))
            .await
            .map_err(|_| "the alert task has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the alert task has stopped".to_string())
    }

    /// The open alerts as of the alert task's last step: what the
    /// console counts on every page (cheap: no round trip, no database).
    pub fn open_now(&self) -> Arc<Vec<AlertRecord>> {
        self.open_now.borrow().clone()
    }

    /// Sends a test notification through one channel (recorded like any
    /// other); `Err` names an unknown channel or a full queue.
    pub fn test(&self, channel: &str, by: &str) -> Result<(), String> {
        self.notifier.test(channel, by)
    }

    /// The names of the configured channels.
    pub fn channels(&self) -> Vec<String> {
        self.notifier.channel_names()
    }
}

/// Starts the alert task. `updates` must be subscribed before any link
/// starts, so nothing is missed.
pub fn spawn(
    settings: &AlertsSection,
    fleet: Arc<Fleet>,
    updates: broadcast::Receiver<Arc<FleetUpdate>>,
    history: HistorySink,
    loaded: Loaded,
) -> Alerts {
    let notifier = Arc::new(notify::Notifier::start(
        settings,
        history.clone(),
        fleet.clone(),
    ));
    let (commands, rx) = mpsc::channel(64);
    let mut rules = Rules::new(RuleSettings::of(settings));
    rules.load(loaded.open, loaded.recent, loaded.max_id, crate::now_ms());
    let (published, open_now) = watch::channel(Arc::new(rules.open().cloned().collect()));
    let task = Task {
        rules,
        fleet,
        history,
        notifier: notifier.clone(),
        published,
    };
    tokio::spawn(task.run(updates, rx));
    Alerts {
        commands,
        notifier,
        open_now,
    }
}

struct Task {
    rules: Rules,
    fleet: Arc<Fleet>,
    history: HistorySink,
    notifier: Arc<notify::Notifier>,
    published: watch::Sender<Arc<Vec<AlertRecord>>>,
}

impl Task {
    async fn run(
        mut self,
        mut updates: broadcast::Receiver<Arc<FleetUpdate>>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        let mut out: Vec<Change> = Vec::new();
        loop {
            tokio::select! {
                update = updates.recv() => match update {
                    Ok(update) => self.apply(&update, &mut out),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            "alerts fell {missed} fleet updates behind; re-reading every cluster"
                        );
                        self.reconcile_all(&mut out);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.command(command, &mut out),
                    None => break,
                },
                _ = tick.tick() => {
                    let now = crate::now_ms();
                    self.rules.tick(now, &mut out);
                    ticks += 1;
                    if ticks.is_multiple_of(30) {
                        // Alerts of clusters no longer managed (removed
                        // while the server was down) clear.
                        for cluster in self.rules.clusters() {
                            if !self.fleet.contains(&cluster) {
                                self.rules.removed(&cluster, now, &mut out);
                            }
                        }
                    }
                }
            }
            if !out.is_empty() {
                let changes = std::mem::take(&mut out);
                let records = changes.iter().map(|c| c.alert.clone()).collect();
                if self.history.send(WriteMsg::Alerts(records)).await.is_err() {
                    break;
                }
                self.notifier.notify(&changes);
                self.published
                    .send_replace(Arc::new(self.rules.open().cloned().collect()));
            }
        }
    }

    fn apply(&mut self, update: &FleetUpdate, out: &mut Vec<Change>) {
        let now = crate::now_ms();
        match update {
            FleetUpdate::Events {
                cluster, events, ..
            } => {
                // Groups whose states moved while a violation of theirs is
                // open: rechecked once, against the state after the batch.
                let mut moved: Vec<&str> = Vec::new();
                for event in events {
                    self.rules.event(cluster, event, now, out);
                    if let EventKind::GroupState { group, .. } = &event.kind {
                        if self.rules.violation_open(cluster, group) && !moved.contains(&&**group) {
                            moved.push(group);
                        }
                    }
                }
                if let Some(snap) = (!moved.is_empty())
                    .then(|| self.fleet.snapshot(cluster))
                    .flatten()
                {
                    for group in moved {
                        self.rules
                            .recheck_concurrency(cluster, &snap, group, now, out);
                    }
                }
            }
            FleetUpdate::Resynced { cluster, .. } => {
                if let Some(snap) = self.fleet.snapshot(cluster) {
                    self.rules.reconcile(cluster, &snap, now, out);
                }
            }
            FleetUpdate::Link { cluster, status } => self.rules.link(cluster, status, now, out),
            FleetUpdate::Removed { cluster } => self.rules.removed(cluster, now, out),
            FleetUpdate::Added { .. } => {}
        }
    }

    fn reconcile_all(&mut self, out: &mut Vec<Change>) {
        let now = crate::now_ms();
        for name in self.fleet.names() {
            if let Some(snap) = self.fleet.snapshot(&name) {
                self.rules.reconcile(&name, &snap, now, out);
            }
            if let Some(link) = self.fleet.link(&name) {
                self.rules.link(&name, &link, now, out);
            }
        }
    }

    fn command(&mut self, command: Command, out: &mut Vec<Change>) {
        match command {
            Command::Acknowledge { id, user, reply } => {
                let answer = match self.rules.acknowledge(id, &user, crate::now_ms()) {
                    Ack::Done(change) => {
                        let alert = change.alert.clone();
                        out.push(change);
                        Acked::Open(Box::new(alert))
                    }
                    Ack::Already(alert) => Acked::Open(Box::new(alert)),
                    Ack::NotOpen => Acked::NotOpen,
                };
                let _ = reply.send(answer);
            }
            Command::Open(reply) => {
                let _ = reply.send(self.rules.open().cloned().collect());
            }
        }
    }
}
