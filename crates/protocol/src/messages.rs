//! The messages of the engine protocol, in both directions.

use haven_model::{ClusterSnapshot, CommandResult, Event, Name, Operation};
use serde::{Deserialize, Serialize};

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First message: the versions the client speaks and who it is.
    Hello {
        versions: Vec<u32>,
        /// Free text naming the client program, for the engine's log.
        client: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
    /// Start receiving events. With `after: None` the engine sends a
    /// snapshot first; with `after: Some(n)` it sends every event after
    /// `n` from its journal, or a snapshot if it no longer has them.
    Subscribe {
        #[serde(default)]
        after: Option<u64>,
    },
    /// Run an operation; the answer is a [`EngineMsg::CommandResult`] with
    /// the same `id`.
    Command { id: u64, op: Operation },
    /// Ask for a snapshot now, without subscribing.
    GetSnapshot,
    /// "I am alive"; sent when the client has sent nothing for a heartbeat
    /// interval.
    Heartbeat,
}

/// Why the engine sent a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SnapshotReason {
    /// The client asked for one (subscribe from scratch, or get_snapshot).
    Requested,
    /// The client asked to resume after `after`, but the journal's oldest
    /// event is `oldest`: events in between are gone.
    JournalTooShort { after: u64, oldest: u64 },
    /// The client asked to resume after a sequence the engine never
    /// reached (the engine restarted and its sequence began again).
    UnknownSequence { after: u64, current: u64 },
}

/// What the engine sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum EngineMsg {
    /// Answer to a good hello.
    Welcome {
        version: u32,
        cluster: Name,
        /// Engine program and version.
        engine: String,
        /// Identifies this run of the engine: sequence numbers are only
        /// comparable within one epoch.
        epoch: u64,
        /// The last sequence number at the time of the welcome.
        seq: u64,
        /// Each side sends a heartbeat after this long without sending;
        /// each side closes after three intervals without hearing anything.
        heartbeat_ms: u64,
        simulated: bool,
    },
    /// The whole cluster at `snapshot.seq`; events after it follow.
    Snapshot {
        #[serde(flatten)]
        why: SnapshotReason,
        snapshot: Box<ClusterSnapshot>,
    },
    /// The journal had every event after `after`; they follow.
    Resumed {
        after: u64,
    },
    /// Events, in sequence order, without gaps.
    Events {
        events: Vec<Event>,
    },
    CommandResult {
        id: u64,
        #[serde(flatten)]
        result: CommandResult,
    },
    Heartbeat,
    /// Something is wrong with what the client sent; the engine closes the
    /// connection after this.
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// Why the engine closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No protocol version in common.
    UnsupportedVersion,
    /// Wrong user or password.
    AuthenticationFailed,
    /// A frame that did not decode, or a message out of place.
    BadFrame,
    /// A frame larger than the limit.
    FrameTooLarge,
    /// No heartbeat for three intervals.
    Timeout,
    /// The client could not keep up with the event stream; subscribe again
    /// after the last sequence it has.
    SlowConsumer,
    /// The engine is shutting down.
    ShuttingDown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_model::{name, RefusalCode};

    #[test]
    fn messages_have_the_documented_json_shape() {
        let hello = ClientMsg::Hello {
            versions: vec![1],
            client: "test".into(),
            user: None,
            password: None,
        };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"msg":"hello","versions":[1],"client":"test"}"#
        );
        let cmd = ClientMsg::Command {
            id: 7,
            op: Operation::GroupSwitch {
                group: name("web"),
                to: Some(name("sysB")),
            },
        };
        assert_eq!(
            serde_json::to_string(&cmd).unwrap(),
            r#"{"msg":"command","id":7,"op":{"op":"group_switch","group":"web","to":"sysB"}}"#
        );
        let refused = EngineMsg::CommandResult {
            id: 7,
            result: CommandResult::refused(RefusalCode::Frozen, "group web is frozen"),
        };
        let text = serde_json::to_string(&refused).unwrap();
        assert_eq!(
            text,
            r#"{"msg":"command_result","id":7,"result":"refused","code":"frozen","reason":"group web is frozen"}"#
        );
        assert_eq!(serde_json::from_str::<EngineMsg>(&text).unwrap(), refused);
    }
}
