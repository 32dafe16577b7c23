//! The cluster task: one tokio task per cluster owns its policy state
//! machine, runs agent actions, keeps the journal and publishes events.
//!
//! Everything that touches a cluster's state goes through the task's
//! request channel, so operations, agent results and subscriptions are
//! serialised: a subscriber gets its snapshot (or journal backlog) and its
//! live receiver in one step, and can miss nothing in between.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use haven_model::{ClusterSnapshot, CommandResult, Event, Name, Operation, ResourceState};
use haven_protocol::SnapshotReason;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::time::DelayQueue;

use crate::agents::{AgentReply, AgentResource, AgentSet};
use crate::journal::{Journal, Resume};
use crate::policy::{AgentOutcome, AgentRequest, Cluster, Effect};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Settings of one cluster task.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Events kept for clients that resume.
    pub journal_capacity: usize,
    /// Batches a live subscriber may fall behind before it is cut off.
    pub subscriber_backlog: usize,
    /// Where to write main.cf back on persistent changes (none: never).
    pub config_dir: Option<PathBuf>,
    /// How often due monitors are looked for.
    pub tick: Duration,
    /// Write every event to the log (the engine log of an HA daemon); off
    /// for simulated fleets, whose thousands of clusters would flood it.
    pub log_events: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            journal_capacity: 10_000,
            subscriber_backlog: 4096,
            config_dir: None,
            tick: Duration::from_millis(500),
            log_events: true,
        }
    }
}

/// How a subscription starts.
pub enum Start {
    Snapshot(SnapshotReason, Box<ClusterSnapshot>),
    /// Every event after `after` (the backlog), then live events.
    Resumed {
        after: u64,
        backlog: Vec<Event>,
    },
}

/// A new subscription: its start, then live event batches. Batches may
/// overlap the start; a subscriber skips events it already has by `seq`.
pub struct Subscribed {
    pub start: Start,
    pub live: broadcast::Receiver<Arc<Vec<Event>>>,
}

enum Request {
    Operate(Operation, oneshot::Sender<CommandResult>),
    Subscribe(Option<u64>, oneshot::Sender<Subscribed>),
    Snapshot(oneshot::Sender<ClusterSnapshot>),
    Seq(oneshot::Sender<u64>),
    Chaos,
    Shutdown {
        leave_running: bool,
        done: oneshot::Sender<()>,
    },
}

/// The cluster task went away (the engine is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("cluster {0} is shutting down")]
pub struct Gone(pub Name);

/// A cheap, cloneable way to talk to a cluster task.
#[derive(Clone)]
pub struct ClusterHandle {
    tx: mpsc::Sender<Request>,
    name: Name,
    simulated: bool,
    /// Identifies this run of the cluster (start time in ms).
    epoch: u64,
}

impl ClusterHandle {
    /// Starts the task for a cluster: probes every resource, then
    /// autostarts groups.
    pub fn spawn(policy: Cluster, agents: AgentSet, options: RuntimeOptions) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(options.subscriber_backlog.max(16));
        let name = policy.name().clone();
        let simulated = policy.options().simulated;
        let epoch = now_ms() as u64;
        let resources = policy
            .config()
            .groups
            .iter()
            .enumerate()
            .flat_map(|(gi, g)| (0..g.resources.len()).map(move |ri| (gi, ri)))
            .collect();
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let task = Task {
            journal: Journal::new(options.journal_capacity),
            policy,
            agents,
            resources,
            events,
            batch: Vec::new(),
            timers: DelayQueue::new(),
            results_tx,
            options,
        };
        tokio::spawn(task.run(rx, results_rx));
        ClusterHandle {
            tx,
            name,
            simulated,
            epoch,
        }
    }

    pub fn name(&self) -> &Name {
        &self.name
    }

    pub fn simulated(&self) -> bool {
        self.simulated
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Gone> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| Gone(self.name.clone()))?;
        rx.await.map_err(|_| Gone(self.name.clone()))
    }

    /// Validates and starts an operation.
    pub async fn operate(&self, op: Operation) -> Result<CommandResult, Gone> {
        self.ask(|tx| Request::Operate(op, tx)).await
    }

    /// Subscribes from scratch (`None`) or after a sequence number.
    pub async fn subscribe(&self, after: Option<u64>) -> Result<Subscribed, Gone> {
        self.ask(|tx| Request::Subscribe(after, tx)).await
    }

    pub async fn snapshot(&self) -> Result<ClusterSnapshot, Gone> {
        self.ask(Request::Snapshot).await
    }

    /// The sequence number of the last event.
    pub async fn seq(&self) -> Result<u64, Gone> {
        self.ask(Request::Seq).await
    }

    /// Simulation: fault a random online resource (or, rarely, a system)
    /// and repair it a little later.
    pub async fn chaos(&self) {
        let _ = self.tx.send(Request::Chaos).await;
    }

    /// Stops the task. Unless `leave_running`, every group is taken
    /// offline first (bounded by `limit`).
    pub async fn shutdown(&self, leave_running: bool, limit: Duration) {
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .send(Request::Shutdown {
                leave_running,
                done,
            })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }
}

enum Timer {
    Agent(AgentRequest, AgentOutcome),
    Repair(Vec<Operation>),
}

struct Task {
    policy: Cluster,
    agents: AgentSet,
    /// Per policy resource index: (group index, index in group).
    resources: Vec<(usize, usize)>,
    journal: Journal,
    events: broadcast::Sender<Arc<Vec<Event>>>,
    batch: Vec<Event>,
    timers: DelayQueue<Timer>,
    results_tx: mpsc::UnboundedSender<(AgentRequest, AgentOutcome)>,
    options: RuntimeOptions,
}

impl Task {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut results: mpsc::UnboundedReceiver<(AgentRequest, AgentOutcome)>,
    ) {
        let effects = self.policy.start(now_ms());
        self.absorb(effects);
        self.publish();
        let periodic = self.policy.options().periodic_monitor;
        let mut tick = tokio::time::interval(self.options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping: Option<oneshot::Sender<()>> = None;
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Shutdown { leave_running, done }) => {
                        if leave_running {
                            let _ = done.send(());
                            return;
                        }
                        let effects = self.policy.stop_all(now_ms());
                        self.absorb(effects);
                        stopping = Some(done);
                    }
                    Some(request) => self.handle(request),
                    None => return,
                },
                Some((request, outcome)) = results.recv() => {
                    let effects = self.policy.agent_done(now_ms(), &request, outcome);
                    self.absorb(effects);
                }
                Some(expired) = self.timers.next(), if !self.timers.is_empty() => {
                    match expired.into_inner() {
                        Timer::Agent(request, outcome) => {
                            let effects = self.policy.agent_done(now_ms(), &request, outcome);
                            self.absorb(effects);
                        }
                        Timer::Repair(ops) => {
                            for op in ops {
                                let (_, effects) = self.policy.operate(now_ms(), &op);
                                self.absorb(effects);
                            }
                        }
                    }
                }
                _ = tick.tick(), if periodic => {
                    let effects = self.policy.tick(now_ms());
                    self.absorb(effects);
                }
            }
            self.publish();
            if stopping.is_some() && self.policy.quiet() {
                if let Some(done) = stopping.take() {
                    let _ = done.send(());
                }
                return;
            }
        }
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Operate(op, reply) => {
                if let Some(sim) = self.agents.sim() {
                    // The simulated world changes first; the policy then
                    // sees it the way a monitor would.
                    match &op {
                        Operation::SimFaultResource { resource, system } => {
                            if let (Some(r), Some(s)) = (
                                self.policy.resource_index(resource),
                                self.policy.system_index(system),
                            ) {
                                if self.policy.resource_state(r, s) == ResourceState::Online {
                                    sim.kill(r, s);
                                }
                            }
                        }
                        Operation::SimFaultSystem { system } => {
                            if let Some(s) = self.policy.system_index(system) {
                                sim.kill_system(s);
                            }
                        }
                        _ => {}
                    }
                }
                let (result, effects) = self.policy.operate(now_ms(), &op);
                self.absorb(effects);
                let _ = reply.send(result);
            }
            Request::Subscribe(after, reply) => {
                // Flush first so the live receiver starts after the journal.
                self.publish();
                let start = match after.map(|a| (a, self.journal.resume(a))) {
                    None => {
                        Start::Snapshot(SnapshotReason::Requested, Box::new(self.policy.snapshot()))
                    }
                    Some((after, Resume::Events(backlog))) => Start::Resumed { after, backlog },
                    Some((after, Resume::TooOld { oldest })) => Start::Snapshot(
                        SnapshotReason::JournalTooShort { after, oldest },
                        Box::new(self.policy.snapshot()),
                    ),
                    Some((after, Resume::Unknown { current })) => Start::Snapshot(
                        SnapshotReason::UnknownSequence { after, current },
                        Box::new(self.policy.snapshot()),
                    ),
                };
                let _ = reply.send(Subscribed {
                    start,
                    live: self.events.subscribe(),
                });
            }
            Request::Snapshot(reply) => {
                let _ = reply.send(self.policy.snapshot());
            }
            Request::Seq(reply) => {
                let _ = reply.send(self.policy.seq());
            }
            Request::Chaos => self.chaos(),
            Request::Shutdown { .. } => {}
        }
    }

    /// Carries out effects: journals events, runs agents. Agents that
    /// answer at once are fed back straight away, in order.
    fn absorb(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Emit(event) => {
                    if self.options.log_events {
                        tracing::info!(seq = event.seq, "{}", event.kind);
                    }
                    self.journal.push(event.clone());
                    self.batch.push(event);
                }
                Effect::Agent(request) => match self.dispatch(&request) {
                    AgentReply::Ready(outcome) => {
                        queue.extend(self.policy.agent_done(now_ms(), &request, outcome));
                    }
                    AgentReply::After(delay, outcome) => {
                        self.timers.insert(Timer::Agent(request, outcome), delay);
                    }
                    AgentReply::Later(future) => {
                        let limit = self.timeout(&request);
                        let tx = self.results_tx.clone();
                        tokio::spawn(async move {
                            let outcome =
                                tokio::time::timeout(limit, future)
                                    .await
                                    .unwrap_or_else(|_| {
                                        AgentOutcome::Failed(format!("timed out after {limit:?}"))
                                    });
                            let _ = tx.send((request, outcome));
                        });
                    }
                },
                Effect::SaveConfig => self.save_config(),
            }
        }
    }

    fn view<'a>(&'a self, request: &AgentRequest) -> AgentResource<'a> {
        let (g, r) = self.resources[request.resource];
        let config = self.policy.config();
        AgentResource {
            config,
            resource: &config.groups[g].resources[r],
            system: self.policy.system_name(request.system),
            key: (request.resource, request.system),
        }
    }

    fn dispatch(&self, request: &AgentRequest) -> AgentReply {
        let view = self.view(request);
        match self.agents.for_type(&view.resource.type_name) {
            Some(agent) => agent.call(request.action, &view),
            None => AgentReply::Ready(AgentOutcome::Failed(format!(
                "no agent for type {}",
                view.resource.type_name
            ))),
        }
    }

    fn timeout(&self, request: &AgentRequest) -> Duration {
        self.view(request).timeout(request.action)
    }

    fn save_config(&self) {
        let Some(dir) = &self.options.config_dir else {
            return;
        };
        if let Err(e) = haven_maincf::save_dir(dir, self.policy.config()) {
            tracing::error!(
                "cannot write {}/main.cf: {e}; the change holds until the engine restarts",
                dir.display()
            );
        }
    }

    /// Sends the events of this step to live subscribers, as one batch.
    fn publish(&mut self) {
        if !self.batch.is_empty() {
            // No receiver is fine: the journal keeps the events.
            let _ = self.events.send(Arc::new(std::mem::take(&mut self.batch)));
        }
    }

    fn chaos(&mut self) {
        let count = self.resources.len();
        let systems = self.policy.config().systems.len();
        if count == 0 || systems == 0 {
            return;
        }
        let now = now_ms();
        let running = self.policy.running_systems();
        let start = fastrand::usize(..count);
        let pick = (0..count).map(|i| (start + i) % count).find_map(|r| {
            self.policy
                .resource_systems(r)
                .iter()
                .copied()
                .find(|&s| self.policy.resource_state(r, s) == ResourceState::Online)
                .map(|s| (r, s))
        });
        let Some((r, s)) = pick else { return };
        let system = self.policy.system_name(s).clone();
        let group = self.policy.config().groups[self.resources[r].0]
            .name
            .clone();
        let (fault, repair) = if running > 1 && fastrand::u8(..10) == 0 {
            (
                Operation::SimFaultSystem {
                    system: system.clone(),
                },
                vec![Operation::SimRestoreSystem { system }],
            )
        } else {
            (
                Operation::SimFaultResource {
                    resource: self.policy.resource_name(r).clone(),
                    system: system.clone(),
                },
                vec![
                    Operation::GroupClear {
                        group: group.clone(),
                        system: Some(system),
                    },
                    Operation::GroupOnline {
                        group,
                        system: None,
                    },
                ],
            )
        };
        if let Some(sim) = self.agents.sim() {
            match &fault {
                Operation::SimFaultSystem { .. } => sim.kill_system(s),
                _ => sim.kill(r, s),
            }
        }
        let (result, effects) = self.policy.operate(now, &fault);
        self.absorb(effects);
        if result.is_accepted() {
            let delay = Duration::from_secs(fastrand::u64(20..=90));
            self.timers.insert(Timer::Repair(repair), delay);
        }
    }
}
