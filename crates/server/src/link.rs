//! Direct connections: one task per cluster dials its engine, syncs the
//! fleet state from a snapshot, follows the event stream into the fleet
//! and the history writer, relays operations, and on any break reconnects
//! with exponential backoff and jitter, resuming after the last sequence it
//! has.
//!
//! Invariants:
//! - history gets every event of an engine run once, in order: a session
//!   resumes after the last sequence received (or, at server start, the
//!   last one stored); when the engine no longer has those events, or has
//!   restarted, the hole is recorded as a gap, never papered over;
//! - a dead link is logged once when it breaks and once when it comes back,
//!   not at every retry; its status says since when and why;
//! - an operation sent while the link is down is answered at once with the
//!   reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::{CommandResult, Name, Operation};
use haven_protocol::{follow, ClientMsg, EngineMsg, FrameCodec};
use haven_store::{Cursor, Gap};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::config::LinkSection;
use crate::fleet::{Fleet, LinkState, LinkStatus};
use crate::now_ms;
use crate::writer::{HistorySink, WriteMsg};

/// Where and how to reach one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: Name,
    pub address: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Where the answer to a forwarded operation goes.
pub type Reply = oneshot::Sender<Result<CommandResult, String>>;

/// A running link task.
pub struct LinkHandle {
    sender: LinkSender,
    cancel: CancellationToken,
}

/// Sends operations to a link; cheap to clone, usable without holding any
/// lock.
#[derive(Clone)]
pub struct LinkSender(mpsc::Sender<(Operation, Reply)>);

impl LinkSender {
    /// A sender whose operations arrive on `tx`'s receiver.
    pub fn new(tx: mpsc::Sender<(Operation, Reply)>) -> Self {
        LinkSender(tx)
    }

    /// Whether both send to the same task.
    pub fn same(&self, other: &LinkSender) -> bool {
        self.0.same_channel(&other.0)
    }

    /// Forwards an operation to the engine; the error says why it could
    /// not be delivered or answered.
    pub async fn operate(&self, op: Operation, limit: Duration) -> Result<CommandResult, String> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send((op, tx))
            .await
            .map_err(|_| "the link to this cluster was removed".to_string())?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the link to this cluster closed before the engine answered".into()),
            Err(_) => Err(format!("the engine did not answer within {limit:?}")),
        }
    }
}

impl LinkHandle {
    /// A handle for a task that takes operations from `sender`'s channel
    /// and stops when `cancel` fires.
    pub fn new(sender: LinkSender, cancel: CancellationToken) -> Self {
        LinkHandle { sender, cancel }
    }

    pub fn sender(&self) -> LinkSender {
        self.sender.clone()
    }

    /// Stops the task.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What every link shares.
#[derive(Clone)]
pub struct LinkContext {
    pub fleet: Arc<Fleet>,
    pub history: HistorySink,
    pub settings: LinkSection,
    /// Trusts the fleet CA, for engines at `tls://` addresses.
    pub engine_tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

/// Starts the link task of one cluster. `stored` is the last position
/// its history holds.
pub fn spawn(target: Target, stored: Option<Cursor>, ctx: LinkContext) -> LinkHandle {
    let (commands, rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let status = LinkStatus {
        state: LinkState::Connecting,
        since_ms: now_ms(),
        mode: "direct".into(),
        address: target.address.clone(),
        last_error: None,
        failures: 0,
        epoch: stored.map(|c| c.epoch),
        seq: stored.map_or(0, |c| c.seq),
        connector_version: None,
        backlog_events: None,
        backlog_bytes: None,
    };
    if !ctx.fleet.add(&target.name, status.clone()) {
        ctx.fleet.set_link(&target.name, status.clone());
    }
    let link = Link {
        target,
        ctx,
        last: stored,
        status,
        commands: rx,
        checkpoints: Default::default(),
    };
    tokio::spawn(link.run(cancel.clone()));
    LinkHandle {
        sender: LinkSender(commands),
        cancel,
    }
}

struct Link {
    target: Target,
    ctx: LinkContext,
    /// The last event received (or stored, before the first session).
    last: Option<Cursor>,
    status: LinkStatus,
    commands: mpsc::Receiver<(Operation, Reply)>,
    checkpoints: crate::timeline::Checkpointer,
}

type Wire = Framed<haven_protocol::transport::Stream, FrameCodec<EngineMsg, ClientMsg>>;

/// Why a session ended.
#[derive(Debug)]
struct Broken(String);

impl<E: std::fmt::Display> From<E> for Broken {
    fn from(e: E) -> Self {
        Broken(e.to_string())
    }
}

impl Link {
    fn set_state(&mut self, state: LinkState, error: Option<String>) {
        if self.status.state != state {
            self.status.state = state;
            self.status.since_ms = now_ms();
        }
        if error.is_some() {
            self.status.last_error = error;
        }
        self.status.epoch = self.last.map(|c| c.epoch);
        self.status.seq = self.last.map_or(0, |c| c.seq);
        self.ctx
            .fleet
            .set_link(&self.target.name, self.status.clone());
    }

    async fn run(mut self, cancel: CancellationToken) {
        let settings = self.ctx.settings.clone();
        let mut backoff = follow::Backoff::new(settings.initial_backoff(), settings.max_backoff());
        loop {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return,
                outcome = self.session() => outcome,
            };
            let Err(Broken(why)) = outcome else { return };
            if self.status.failures == 0 {
                tracing::warn!(
                    cluster = %self.target.name,
                    "link to {} lost: {why}; retrying with backoff",
                    self.target.address
                );
            } else {
                tracing::debug!(cluster = %self.target.name, "link attempt failed: {why}");
            }
            if self.status.state == LinkState::Connected || self.status.state == LinkState::Stale {
                backoff.reset();
            }
            self.status.failures += 1;
            self.set_state(LinkState::Disconnected, Some(why.clone()));
            let deadline = Instant::now() + backoff.next_pause();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(deadline) => break,
                    Some((_, reply)) = self.commands.recv() => {
                        let _ = reply.send(Err(format!(
                            "cluster {} is disconnected since {} ms: {why}",
                            self.target.name, self.status.since_ms
                        )));
                    }
                }
            }
        }
    }

    async fn session(&mut self) -> Result<(), Broken> {
        self.set_state(LinkState::Connecting, None);
        let who = follow::Credentials {
            client: format!("haven-server {}", env!("CARGO_PKG_VERSION")),
            user: self.target.user.clone(),
            password: self.target.password.clone(),
            tls: Some(self.ctx.engine_tls.clone()),
        };
        let limit = self.ctx.settings.connect_timeout();
        let mut engine = follow::open(&self.target.address, &who, limit)
            .await
            .map_err(Broken)?;
        if engine.cluster != self.target.name {
            return Err(Broken(format!(
                "the engine at {} runs cluster {}, not {}; fix the address",
                self.target.address, engine.cluster, self.target.name
            )));
        }
        let (epoch, heartbeat) = (engine.epoch, engine.heartbeat);
        let name = self.target.name.clone();

        // The fleet needs the current state; history needs every event
        // after the last one it has.
        let last = self.last.map(|c| (c.epoch, c.seq));
        match engine
            .sync(last, limit.max(heartbeat * 3))
            .await
            .map_err(Broken)?
        {
            follow::Sync::Resumed { snapshot } => {
                if let Some(checkpoint) = self.checkpoints.snapshot(&name, epoch, &snapshot) {
                    self.ctx.history.send(checkpoint).await?;
                }
                self.ctx.fleet.resync(&name, epoch, *snapshot)
            }
            follow::Sync::Fresh { snapshot, gap } => {
                let resumed = Cursor {
                    epoch,
                    seq: snapshot.seq,
                };
                if self.last.is_none() {
                    // First sync: history starts here; remember it, so a
                    // restart fetches what happened meanwhile.
                    self.ctx
                        .history
                        .send(WriteMsg::Begin {
                            cluster: name.clone(),
                            at: resumed,
                        })
                        .await?;
                }
                if let Some(reason) = gap {
                    tracing::warn!(cluster = %name, "history gap: {reason}");
                    self.ctx
                        .history
                        .send(WriteMsg::Gap(Gap {
                            cluster: name.to_string(),
                            after: self.last,
                            resumed,
                            time_ms: now_ms(),
                            reason,
                        }))
                        .await?;
                }
                self.last = Some(resumed);
                if let Some(checkpoint) = self.checkpoints.snapshot(&name, epoch, &snapshot) {
                    self.ctx.history.send(checkpoint).await?;
                }
                self.ctx.fleet.resync(&name, epoch, *snapshot);
            }
        }
        let wire = engine.wire;
        if self.status.failures > 0 {
            tracing::info!(
                cluster = %name,
                "link to {} restored after {} failed attempts",
                self.target.address,
                self.status.failures
            );
        }
        self.status.failures = 0;
        self.status.last_error = None;
        self.set_state(LinkState::Connected, None);
        self.follow(wire, epoch, heartbeat).await
    }

    async fn follow(
        &mut self,
        mut wire: Wire,
        epoch: u64,
        heartbeat: Duration,
    ) -> Result<(), Broken> {
        let name = self.target.name.clone();
        let stale_after = self.ctx.settings.stale_after();
        let mut pending: HashMap<u64, Reply> = HashMap::new();
        let mut next_id = 1u64;
        let mut last_heard = Instant::now();
        let mut last_sent = Instant::now();
        let mut tick = tokio::time::interval(heartbeat.min(stale_after / 2));
        let result = loop {
            tokio::select! {
                frame = wire.next() => {
                    last_heard = Instant::now();
                    if self.status.state == LinkState::Stale {
                        self.set_state(LinkState::Connected, None);
                    }
                    match frame {
                        Some(Ok(EngineMsg::Events { events })) => {
                            let Some(last) = events.last().map(|e| e.seq) else { continue };
                            self.last = Some(Cursor { epoch, seq: last });
                            self.status.seq = last;
                            if let Err(gap) = self.ctx.fleet.apply(&name, events.clone()) {
                                break Err(Broken(format!("fleet state out of step: {gap}")));
                            }
                            let n = events.len();
                            if let Err(e) = self.ctx.history.send(WriteMsg::Events {
                                cluster: name.clone(),
                                epoch,
                                events,
                            }).await {
                                break Err(e.into());
                            }
                            if let Some(checkpoint) = self.checkpoints.events(&self.ctx.fleet, &name, epoch, n) {
                                if let Err(e) = self.ctx.history.send(checkpoint).await {
                                    break Err(e.into());
                                }
                            }
                        }
                        Some(Ok(EngineMsg::CommandResult { id, result })) => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(Ok(result));
                            }
                        }
                        Some(Ok(EngineMsg::Heartbeat)) => {}
                        Some(Ok(EngineMsg::Error { code, message })) => {
                            break Err(Broken(format!("engine closed the link ({code:?}): {message}")));
                        }
                        Some(Ok(other)) => {
                            tracing::debug!(cluster = %name, "ignoring {other:?}");
                        }
                        Some(Err(e)) => break Err(e.into()),
                        None => break Err(Broken("engine closed the connection".into())),
                    }
                }
                Some((op, reply)) = self.commands.recv() => {
                    let id = next_id;
                    next_id += 1;
                    pending.insert(id, reply);
                    if let Err(e) = wire.send(ClientMsg::Command { id, op }).await {
                        break Err(e.into());
                    }
                    last_sent = Instant::now();
                }
                _ = tick.tick() => {
                    let silent = last_heard.elapsed();
                    if silent > stale_after * 2 {
                        break Err(Broken(format!("nothing heard from the engine for {silent:?}")));
                    }
                    if silent > stale_after && self.status.state != LinkState::Stale {
                        self.set_state(LinkState::Stale, None);
                    }
                    if last_sent.elapsed() >= heartbeat {
                        if let Err(e) = wire.send(ClientMsg::Heartbeat).await {
                            break Err(e.into());
                        }
                        last_sent = Instant::now();
                    }
                }
            }
        };
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err("the link broke before the engine answered".into()));
        }
        result
    }
}
