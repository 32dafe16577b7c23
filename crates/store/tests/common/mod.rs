//! Helpers shared by the store's integration tests.
#![allow(dead_code)] // each test file uses a different subset

pub mod pg;

use haven_model::{
    name, Event, EventKind, Freeze, GroupState, ResourceState, Severity, SystemState,
};
use haven_store::{HistoryRow, SqliteStore};

/// A new SQLite store in memory.
pub fn sqlite() -> SqliteStore {
    SqliteStore::open_in_memory().expect("opens")
}

/// Makes each named test body (a `fn(&mut dyn Store)` of the calling file)
/// two tests: `sqlite::NAME` on a new SQLite store in memory and
/// `postgres::NAME` on a new PostgreSQL database (see [`pg`]), so both
/// backends are held to the same behaviour.
#[allow(unused_macros)] // not every test file runs on both
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&mut crate::common::sqlite());
                }
            )*
        }

        mod postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(mut store) = crate::common::pg::store() {
                        super::$test(&mut store);
                    }
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// A `resource_state` event of `cluster` at `(epoch, seq)`, at time `seq`
/// ms unless set otherwise.
pub fn row(cluster: &str, epoch: u64, seq: u64) -> HistoryRow {
    row_about(cluster, epoch, seq, seq as i64, "grp", "res", "sysA")
}

/// Like [`row`], naming the time and the objects.
pub fn row_about(
    cluster: &str,
    epoch: u64,
    seq: u64,
    time_ms: i64,
    group: &str,
    resource: &str,
    system: &str,
) -> HistoryRow {
    HistoryRow {
        cluster: cluster.into(),
        epoch,
        event: Event {
            seq,
            time_ms,
            kind: EventKind::ResourceState {
                group: name(group),
                resource: name(resource),
                system: name(system),
                from: ResourceState::Offline,
                to: ResourceState::Online,
            },
        },
    }
}

/// Events `first..=last` of one cluster and epoch.
pub fn rows(cluster: &str, epoch: u64, first: u64, last: u64) -> Vec<HistoryRow> {
    (first..=last).map(|seq| row(cluster, epoch, seq)).collect()
}

/// At least one event of every kind, with optional fields both set and
/// unset (add a new kind here too).
pub fn every_kind() -> Vec<EventKind> {
    vec![
        EventKind::ResourceState {
            group: name("g"),
            resource: name("r"),
            system: name("s"),
            from: ResourceState::Offline,
            to: ResourceState::GoingOnline,
        },
        EventKind::GroupState {
            group: name("g"),
            system: name("s"),
            from: GroupState::Offline,
            to: GroupState::Starting,
        },
        EventKind::SystemState {
            system: name("s"),
            from: SystemState::Running,
            to: SystemState::Faulted,
        },
        EventKind::GroupFreeze {
            group: name("g"),
            freeze: Freeze::Temporary,
        },
        EventKind::SystemFreeze {
            system: name("s"),
            freeze: Freeze::Persistent,
        },
        EventKind::GroupEnabled {
            group: name("g"),
            enabled: false,
        },
        EventKind::ConcurrencyViolation {
            group: name("g"),
            systems: vec![name("s"), name("t")],
        },
        EventKind::Failover {
            group: name("g"),
            from: name("s"),
            to: Some(name("t")),
            reason: "resource r faulted".into(),
        },
        EventKind::Failover {
            group: name("g"),
            from: name("s"),
            to: None,
            reason: "no eligible system".into(),
        },
        EventKind::Notice {
            severity: Severity::Warning,
            object: Some(name("r")),
            message: "monitor timed out: 'quoted', \"double\", ünïcødé, \\ back".into(),
        },
        EventKind::Notice {
            severity: Severity::Info,
            object: None,
            message: "engine started".into(),
        },
    ]
}

/// Events of `cluster` at epoch 7, one per kind, seq 1.. at time 1000...
pub fn rows_of(cluster: &str, kinds: Vec<EventKind>) -> Vec<HistoryRow> {
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| HistoryRow {
            cluster: cluster.into(),
            epoch: 7,
            event: Event {
                seq: i as u64 + 1,
                time_ms: 1_000 + i as i64,
                kind,
            },
        })
        .collect()
}
