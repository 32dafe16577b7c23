//! Following an engine from a known position: the steps the management
//! server's direct links and the cluster connector share.
//!
//! [`open`] connects and says hello; [`Follower::sync`] gets the current
//! state and subscribes after the last event the caller has. The caller
//! then reads events from [`Follower::wire`] and sends commands on it.
//!
//! Invariant: the caller always gets a fresh snapshot (for its live view)
//! and either every event after its position ([`Sync::Resumed`]) or an
//! explanation of what was lost ([`Sync::Fresh`] with a gap reason); it is
//! never left believing it has history it does not have.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use haven_model::{ClusterSnapshot, Name};
use tokio_rustls::rustls::ClientConfig;
use tokio_util::codec::Framed;

use crate::transport::{self, Stream};
use crate::{
    ClientMsg, EngineMsg, FrameCodec, SnapshotReason, MAX_ENGINE_FRAME, PROTOCOL_VERSIONS,
};

/// A connection to an engine, after the welcome.
pub struct Follower {
    pub wire: Framed<Stream, FrameCodec<EngineMsg, ClientMsg>>,
    pub cluster: Name,
    /// The engine run; sequences are comparable only within one.
    pub epoch: u64,
    pub heartbeat: Duration,
}

/// How following starts.
pub enum Sync {
    /// Every event after the caller's position follows; the snapshot is
    /// the current state.
    Resumed { snapshot: Box<ClusterSnapshot> },
    /// History restarts at the snapshot. `gap` says why events between the
    /// caller's position and the snapshot are lost (None on a first sync).
    Fresh {
        snapshot: Box<ClusterSnapshot>,
        gap: Option<String>,
    },
}

/// Who is connecting.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub client: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Whom to trust for a `tls://` address (the fleet CA).
    pub tls: Option<Arc<ClientConfig>>,
}

/// Connects to `address` and says hello; errors are sentences.
pub async fn open(address: &str, who: &Credentials, limit: Duration) -> Result<Follower, String> {
    let stream = transport::dial(address, who.tls.as_ref(), limit).await?;
    let mut wire = Framed::new(stream, FrameCodec::new(MAX_ENGINE_FRAME));
    wire.send(ClientMsg::Hello {
        versions: PROTOCOL_VERSIONS.to_vec(),
        client: who.client.clone(),
        user: who.user.clone(),
        password: who.password.clone(),
    })
    .await
    .map_err(|e| e.to_string())?;
    let plain = !transport::Address::parse(address).tls;
    let answer = next(&mut wire, limit).await.map_err(|e| {
        // A TLS engine answers a plain hello by closing, or with a TLS
        // alert that reads as an absurd frame length.
        if plain && (e == CLOSED || e.contains("exceeds the limit")) {
            format!(
                "{e} in answer to hello: is it an engine started with --tls-cert? then its \
                 address is tls://{address}"
            )
        } else {
            e
        }
    })?;
    match answer {
        EngineMsg::Welcome {
            cluster,
            epoch,
            heartbeat_ms,
            ..
        } => Ok(Follower {
            wire,
            cluster,
            epoch,
            heartbeat: Duration::from_millis(heartbeat_ms.max(100)),
        }),
        other => Err(format!("unexpected answer to hello: {other:?}")),
    }
}

const CLOSED: &str = "engine closed the connection";

/// The next message that is not a heartbeat; an engine error or silence
/// for `limit` is an error.
pub async fn next(
    wire: &mut Framed<Stream, FrameCodec<EngineMsg, ClientMsg>>,
    limit: Duration,
) -> Result<EngineMsg, String> {
    loop {
        match tokio::time::timeout(limit, wire.next()).await {
            Err(_) => return Err(format!("engine silent for {limit:?}")),
            Ok(None) => return Err(CLOSED.into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(EngineMsg::Heartbeat))) => continue,
            Ok(Some(Ok(EngineMsg::Error { code, message }))) => {
                return Err(format!("engine refused ({code:?}): {message}"))
            }
            Ok(Some(Ok(msg))) => return Ok(msg),
        }
    }
}

impl Follower {
    /// Takes the current state and subscribes after `last` (the caller's
    /// last `(epoch, seq)`), or from scratch.
    pub async fn sync(
        &mut self,
        last: Option<(u64, u64)>,
        limit: Duration,
    ) -> Result<Sync, String> {
        let resume = last.filter(|(e, _)| *e == self.epoch).map(|(_, s)| s);
        let mut current = None;
        if resume.is_some() {
            self.wire
                .send(ClientMsg::GetSnapshot)
                .await
                .map_err(|e| e.to_string())?;
            match next(&mut self.wire, limit).await? {
                EngineMsg::Snapshot { snapshot, .. } => current = Some(snapshot),
                other => return Err(format!("expected a snapshot, got {other:?}")),
            }
        }
        self.wire
            .send(ClientMsg::Subscribe { after: resume })
            .await
            .map_err(|e| e.to_string())?;
        match next(&mut self.wire, limit).await? {
            EngineMsg::Resumed { .. } => Ok(Sync::Resumed {
                snapshot: current.ok_or("the engine resumed a subscription it was not asked to")?,
            }),
            EngineMsg::Snapshot { why, snapshot } => {
                let gap = last.map(|(last_epoch, last_seq)| match why {
                    SnapshotReason::JournalTooShort { oldest, .. } => format!(
                        "the engine's journal starts at {oldest}; events after {last_seq} were lost"
                    ),
                    _ if last_epoch != self.epoch => format!(
                        "the engine restarted (run {last_epoch} -> {}); events of the old run after {last_seq} were not received",
                        self.epoch
                    ),
                    _ => format!("the engine did not know sequence {last_seq}"),
                });
                Ok(Sync::Fresh { snapshot, gap })
            }
            other => Err(format!("unexpected answer to subscribe: {other:?}")),
        }
    }
}

/// Exponential backoff with +-25% jitter between reconnects, so a fleet
/// that lost its peer does not reconnect in lock step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The next pause, jittered; doubles the one after, up to the maximum.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next.mul_f64(0.75 + fastrand::f64() * 0.5);
        self.next = (self.next * 2).min(self.max);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let pauses: Vec<u128> = (0..4).map(|_| b.next_pause().as_millis()).collect();
        for (pause, base) in pauses.iter().zip([100u128, 200, 350, 350]) {
            assert!(
                *pause >= base * 3 / 4 && *pause <= base * 5 / 4,
                "{pauses:?}"
            );
        }
        b.reset();
        assert!(b.next_pause() <= Duration::from_millis(125));
    }
}
