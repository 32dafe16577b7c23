//! The engine's socket server: accepts clients, runs the handshake, then
//! relays subscriptions and commands between a client and the cluster task.
//!
//! Invariants: a connection never sends an event twice or out of order
//! (it tracks the last sequence it sent); a bad frame, a failed login or a
//! silent peer gets an [`EngineMsg::Error`] and a closed connection, and
//! nothing else changes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::{lookup, AttrValue, Event};
use haven_protocol::transport::Stream;
use haven_protocol::{
    negotiate, ClientMsg, EngineMsg, ErrorCode, FrameCodec, FrameError, MAX_CLIENT_FRAME,
    PROTOCOL_VERSIONS,
};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::codec::Framed;

use crate::password;
use crate::runtime::{ClusterHandle, Start};

/// Most events sent in one frame.
const EVENTS_PER_FRAME: usize = 1000;

/// Settings of the socket server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub heartbeat: Duration,
    /// How long a client has to say hello (and, with TLS, to finish the
    /// handshake before that).
    pub hello_timeout: Duration,
    /// Every client must speak TLS (`--tls-cert`).
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            heartbeat: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Who may connect: `user -> password hash` from the cluster's
/// `UserNames` attribute. Empty: no login needed.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: Vec<(String, String)>,
}

impl Credentials {
    /// Reads `UserNames = { user = "hash", ... }` from a cluster config.
    pub fn from_config(config: &haven_model::ClusterConfig) -> Self {
        let users = match lookup(&config.attributes, "UserNames", None) {
            Some(AttrValue::Assoc(pairs)) => pairs
                .iter()
                .map(|(u, h)| (u.to_text(), h.to_text()))
                .collect(),
            _ => Vec::new(),
        };
        Credentials { users }
    }

    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    fn check(&self, user: Option<&str>, pass: Option<&str>) -> bool {
        if !self.required() {
            return true;
        }
        let (Some(user), Some(pass)) = (user, pass) else {
            return false;
        };
        self.users
            .iter()
            .any(|(u, hash)| u == user && password::verify(hash, pass))
    }
}

/// Accepts clients for one cluster until the listener fails.
pub async fn serve(
    listener: TcpListener,
    cluster: ClusterHandle,
    credentials: Arc<Credentials>,
    options: ServeOptions,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let cluster = cluster.clone();
                let credentials = credentials.clone();
                let options = options.clone();
                tokio::spawn(async move {
                    stream.set_nodelay(true).ok();
                    let stream: Stream = match &options.tls {
                        None => Box::new(stream),
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                            let handshake = acceptor.accept(stream);
                            match tokio::time::timeout(options.hello_timeout, handshake).await {
                                Ok(Ok(tls)) => Box::new(tls),
                                Ok(Err(e)) => {
                                    tracing::info!(%peer, "TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::info!(%peer, "no TLS handshake in time");
                                    return;
                                }
                            }
                        }
                    };
                    if let Err(e) = Connection::run(stream, cluster, credentials, options).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

type Wire = Framed<Stream, FrameCodec<ClientMsg, EngineMsg>>;

struct Connection {
    wire: Wire,
    cluster: ClusterHandle,
    /// Last sequence sent to this client (when subscribed).
    sent: u64,
    live: Option<broadcast::Receiver<Arc<Vec<Event>>>>,
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("client closed the connection")]
    Closed,
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("closed with {0:?}: {1}")]
    Error(ErrorCode, String),
}

impl Connection {
    async fn run(
        stream: Stream,
        cluster: ClusterHandle,
        credentials: Arc<Credentials>,
        options: ServeOptions,
    ) -> Result<(), End> {
        let wire = Framed::new(stream, FrameCodec::new(MAX_CLIENT_FRAME));
        let mut conn = Connection {
            wire,
            cluster,
            sent: 0,
            live: None,
        };
        let result = conn.serve(&credentials, &options).await;
        if let Err(End::Error(code, message)) = &result {
            let _ = conn
                .wire
                .send(EngineMsg::Error {
                    code: *code,
                    message: message.clone(),
                })
                .await;
        }
        result
    }

    async fn serve(
        &mut self,
        credentials: &Credentials,
        options: &ServeOptions,
    ) -> Result<(), End> {
        let first = tokio::time::timeout(options.hello_timeout, self.wire.next())
            .await
            .map_err(|_| End::Error(ErrorCode::Timeout, "no hello in time".into()))?;
        let version = match first {
            Some(Ok(ClientMsg::Hello {
                versions,
                client,
                user,
                password,
            })) => {
                let Some(version) = negotiate(&versions) else {
                    return Err(End::Error(
                        ErrorCode::UnsupportedVersion,
                        format!(
                            "client speaks protocol versions {versions:?}, this engine speaks {PROTOCOL_VERSIONS:?}"
                        ),
                    ));
                };
                if !credentials.check(user.as_deref(), password.as_deref()) {
                    // Slow down guessing.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Err(End::Error(
                        ErrorCode::AuthenticationFailed,
                        "wrong user name or password for this cluster".into(),
                    ));
                }
                tracing::debug!(client, user, "client connected");
                version
            }
            Some(Ok(other)) => {
                return Err(End::Error(
                    ErrorCode::BadFrame,
                    format!("expected hello first, got {}", msg_name(&other)),
                ))
            }
            Some(Err(e)) => return Err(frame_error(e)),
            None => return Err(End::Closed),
        };
        let seq = self
            .cluster
            .seq()
            .await
            .map_err(|e| End::Error(ErrorCode::ShuttingDown, e.to_string()))?;
        self.wire
            .send(EngineMsg::Welcome {
                version,
                cluster: self.cluster.name().clone(),
                engine: format!("haven-engine {}", env!("CARGO_PKG_VERSION")),
                epoch: self.cluster.epoch(),
                seq,
                heartbeat_ms: options.heartbeat.as_millis() as u64,
                simulated: self.cluster.simulated(),
            })
            .await?;

        let mut heartbeat = tokio::time::interval(options.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        let mut last_sent = tokio::time::Instant::now();
        let silence_limit = options.heartbeat * 3;
        loop {
            tokio::select! {
                frame = self.wire.next() => {
                    last_heard = tokio::time::Instant::now();
                    match frame {
                        Some(Ok(msg)) => {
                            // A heartbeat gets no answer: it must not count
                            // as something sent, or ours would never go out.
                            let answered = !matches!(msg, ClientMsg::Heartbeat);
                            self.on_message(msg).await?;
                            if answered {
                                last_sent = tokio::time::Instant::now();
                            }
                        }
                        Some(Err(e)) => return Err(frame_error(e)),
                        None => return Err(End::Closed),
                    }
                }
                batch = recv_live(&mut self.live) => {
                    match batch {
                        Ok(batch) => {
                            self.send_events(&batch).await?;
                            last_sent = tokio::time::Instant::now();
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            return Err(End::Error(
                                ErrorCode::SlowConsumer,
                                format!(
                                    "client fell {n} batches behind; subscribe again after sequence {}",
                                    self.sent
                                ),
                            ));
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(End::Error(ErrorCode::ShuttingDown, "engine is shutting down".into()));
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > silence_limit {
                        return Err(End::Error(
                            ErrorCode::Timeout,
                            format!("nothing heard for {silence_limit:?}"),
                        ));
                    }
                    if last_sent.elapsed() >= options.heartbeat {
                        self.wire.send(EngineMsg::Heartbeat).await?;
                        last_sent = tokio::time::Instant::now();
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, msg: ClientMsg) -> Result<(), End> {
        let gone = |e: crate::runtime::Gone| End::Error(ErrorCode::ShuttingDown, e.to_string());
        match msg {
            ClientMsg::Hello { .. } => Err(End::Error(
                ErrorCode::BadFrame,
                "hello may only be sent once".into(),
            )),
            ClientMsg::Heartbeat => Ok(()),
            ClientMsg::Command { id, op } => {
                let result = self.cluster.operate(op).await.map_err(gone)?;
                self.wire
                    .send(EngineMsg::CommandResult { id, result })
                    .await?;
                Ok(())
            }
            ClientMsg::GetSnapshot => {
                let snapshot = self.cluster.snapshot().await.map_err(gone)?;
                self.wire
                    .send(EngineMsg::Snapshot {
                        why: haven_protocol::SnapshotReason::Requested,
                        snapshot: Box::new(snapshot),
                    })
                    .await?;
                Ok(())
            }
            ClientMsg::Subscribe { after } => {
                let subscribed = self.cluster.subscribe(after).await.map_err(gone)?;
                match subscribed.start {
                    Start::Snapshot(why, snapshot) => {
                        self.sent = snapshot.seq;
                        self.wire
                            .send(EngineMsg::Snapshot { why, snapshot })
                            .await?;
                    }
                    Start::Resumed { after, backlog } => {
                        self.sent = after;
                        self.wire.send(EngineMsg::Resumed { after }).await?;
                        self.send_events(&backlog).await?;
                    }
                }
                self.live = Some(subscribed.live);
                Ok(())
            }
        }
    }

    /// Sends the events the client does not have yet, in frames of at most
    /// [`EVENTS_PER_FRAME`].
    async fn send_events(&mut self, events: &[Event]) -> Result<(), End> {
        let fresh: Vec<&Event> = events.iter().filter(|e| e.seq > self.sent).collect();
        for chunk in fresh.chunks(EVENTS_PER_FRAME) {
            let events: Vec<Event> = chunk.iter().map(|e| (*e).clone()).collect();
            if let Some(last) = events.last() {
                self.sent = last.seq;
            }
            self.wire.feed(EngineMsg::Events { events }).await?;
        }
        self.wire.flush().await?;
        Ok(())
    }
}

/// Waits for the next live batch; never resolves when not subscribed.
async fn recv_live(
    live: &mut Option<broadcast::Receiver<Arc<Vec<Event>>>>,
) -> Result<Arc<Vec<Event>>, broadcast::error::RecvError> {
    match live {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn frame_error(e: FrameError) -> End {
    match e {
        FrameError::TooLarge { .. } => End::Error(ErrorCode::FrameTooLarge, e.to_string()),
        FrameError::Malformed(_) => End::Error(ErrorCode::BadFrame, e.to_string()),
        FrameError::Io(_) => End::Frame(e),
    }
}

fn msg_name(msg: &ClientMsg) -> &'static str {
    match msg {
        ClientMsg::Hello { .. } => "hello",
        ClientMsg::Subscribe { .. } => "subscribe",
        ClientMsg::Command { .. } => "command",
        ClientMsg::GetSnapshot => "get_snapshot",
        ClientMsg::Heartbeat => "heartbeat",
    }
}
