//! The engine socket protocol (see `docs/protocol.md`).
//!
//! A connection carries frames: a 4-byte big-endian length, then that many
//! bytes of UTF-8 JSON holding one message. Frames are bounded in size; a
//! frame that is too large or does not decode is answered with an
//! [`EngineMsg::Error`] and the connection is closed.
//!
//! The conversation: the client says [`ClientMsg::Hello`], the engine answers
//! [`EngineMsg::Welcome`] (or an error); the client then subscribes (from
//! scratch or after a sequence number) and sends commands, in any order;
//! both sides send heartbeats while idle.

pub mod client;
pub mod codec;
pub mod connector;
pub mod follow;
pub mod messages;
pub mod transport;

pub use client::{ClientError, ClientOptions, EngineClient};
pub use codec::{FrameCodec, FrameError};
pub use messages::*;

/// The protocol versions this build speaks, newest last.
pub const PROTOCOL_VERSIONS: &[u32] = &[1];

/// The engine's default TCP port.
pub const DEFAULT_PORT: u16 = 14141;

/// Largest frame a client may send to the engine.
pub const MAX_CLIENT_FRAME: usize = 1 << 20;

/// Largest frame the engine sends (a snapshot of a very large cluster).
pub const MAX_ENGINE_FRAME: usize = 64 << 20;

/// Picks the newest version both sides speak.
pub fn negotiate(offered: &[u32]) -> Option<u32> {
    PROTOCOL_VERSIONS
        .iter()
        .rev()
        .find(|v| offered.contains(v))
        .copied()
}
