//! A small, sequential client for the engine protocol.
//!
//! It suits tools, tests and benchmarks: one task owns the connection,
//! sends commands and reads what comes. Events that arrive while it waits
//! for a command's result are kept, in order, for [`EngineClient::next_event`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::{ClusterSnapshot, CommandResult, Event, Operation};
use tokio_rustls::rustls::ClientConfig;
use tokio_util::codec::Framed;

use crate::transport::{self, Stream};
use crate::{
    ClientMsg, EngineMsg, ErrorCode, FrameCodec, FrameError, SnapshotReason, MAX_ENGINE_FRAME,
    PROTOCOL_VERSIONS,
};

/// Who the client is.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub client: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Whom to trust for a `tls://` address (the fleet CA).
    pub tls: Option<Arc<ClientConfig>>,
}

/// What went wrong talking to an engine.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("engine at {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("engine closed the connection")]
    Closed,
    #[error("engine refused us ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("unexpected message from engine: {0}")]
    Unexpected(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("no answer from engine within {0:?}")]
    Timeout(Duration),
}

/// What the engine said in its welcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub version: u32,
    pub cluster: String,
    pub engine: String,
    pub epoch: u64,
    pub seq: u64,
    pub heartbeat_ms: u64,
    pub simulated: bool,
}

/// How a subscription started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// A snapshot, with the reason it was sent; events after it follow.
    Snapshot(SnapshotReason, Box<ClusterSnapshot>),
    /// Every event after the requested sequence follows.
    Resumed { after: u64 },
}

/// A connected, welcomed client.
pub struct EngineClient {
    framed: Framed<Stream, FrameCodec<EngineMsg, ClientMsg>>,
    pending: VecDeque<Event>,
    next_id: u64,
    welcome: Welcome,
}

impl EngineClient {
    /// Connects and says hello.
    pub async fn connect(addr: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let stream = transport::dial(addr, options.tls.as_ref(), Duration::from_secs(30))
            .await
            .map_err(|message| ClientError::Connect {
                addr: addr.to_string(),
                message,
            })?;
        let mut framed = Framed::new(stream, FrameCodec::new(MAX_ENGINE_FRAME));
        framed
            .send(ClientMsg::Hello {
                versions: PROTOCOL_VERSIONS.to_vec(),
                client: options.client.clone(),
                user: options.user.clone(),
                password: options.password.clone(),
            })
            .await?;
        let welcome = match framed.next().await {
            Some(Ok(EngineMsg::Welcome {
                version,
                cluster,
                engine,
                epoch,
                seq,
                heartbeat_ms,
                simulated,
            })) => Welcome {
                version,
                cluster: cluster.to_string(),
                engine,
                epoch,
                seq,
                heartbeat_ms,
                simulated,
            },
            Some(Ok(EngineMsg::Error { code, message })) => {
                return Err(ClientError::Refused { code, message })
            }
            Some(Ok(other)) => return Err(ClientError::Unexpected(format!("{other:?}"))),
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ClientError::Closed),
        };
        Ok(EngineClient {
            framed,
            pending: VecDeque::new(),
            next_id: 1,
            welcome,
        })
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends one message as it is (for tests of the protocol itself).
    pub async fn send(&mut self, msg: ClientMsg) -> Result<(), ClientError> {
        Ok(self.framed.send(msg).await?)
    }

    /// Reads the next message, answering heartbeats on the way.
    pub async fn recv(&mut self) -> Result<EngineMsg, ClientError> {
        loop {
            match self.framed.next().await {
                Some(Ok(EngineMsg::Heartbeat)) => self.framed.send(ClientMsg::Heartbeat).await?,
                Some(Ok(EngineMsg::Error { code, message })) => {
                    return Err(ClientError::Refused { code, message })
                }
                Some(Ok(msg)) => return Ok(msg),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// Subscribes to events, from scratch (`None`) or after a sequence.
    pub async fn subscribe(&mut self, after: Option<u64>) -> Result<Subscription, ClientError> {
        self.send(ClientMsg::Subscribe { after }).await?;
        // Nothing streams before a subscription, so the answer comes next.
        match self.recv().await? {
            EngineMsg::Snapshot { why, snapshot } => Ok(Subscription::Snapshot(why, snapshot)),
            EngineMsg::Resumed { after } => Ok(Subscription::Resumed { after }),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Asks for a snapshot without subscribing.
    pub async fn snapshot(&mut self) -> Result<ClusterSnapshot, ClientError> {
        self.send(ClientMsg::GetSnapshot).await?;
        loop {
            match self.recv().await? {
                EngineMsg::Snapshot { snapshot, .. } => return Ok(*snapshot),
                EngineMsg::Events { events } => self.pending.extend(events),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// Runs an operation and returns the engine's answer. Events that
    /// arrive meanwhile are kept for [`Self::next_event`].
    pub async fn command(&mut self, op: Operation) -> Result<CommandResult, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(ClientMsg::Command { id, op }).await?;
        loop {
            match self.recv().await? {
                EngineMsg::CommandResult { id: got, result } if got == id => return Ok(result),
                EngineMsg::Events { events } => self.pending.extend(events),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// The next event of the subscription.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            match self.recv().await? {
                EngineMsg::Events { events } => self.pending.extend(events),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// The next event, or a timeout error.
    pub async fn next_event_within(&mut self, limit: Duration) -> Result<Event, ClientError> {
        tokio::time::timeout(limit, self.next_event())
            .await
            .map_err(|_| ClientError::Timeout(limit))?
    }

    /// Reads events until `pred` holds for one, returning every event read
    /// (the matching one last). Fails after `limit`.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Result<Vec<Event>, ClientError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next_event_within(left).await.map_err(|e| match e {
                ClientError::Timeout(_) => ClientError::Timeout(limit),
                other => other,
            })?;
            let done = pred(&event);
            seen.push(event);
            if done {
                return Ok(seen);
            }
        }
    }
}
