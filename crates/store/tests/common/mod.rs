//! Helpers shared by the store's integration tests.
#![allow(dead_code)] // each test file uses a different subset

use haven_model::{name, Event, EventKind, ResourceState};
use haven_store::HistoryRow;

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
