//! What several server test files share.

use std::sync::Arc;

use haven_engine::agents::{AgentSet, SimAgent};
use haven_engine::policy::{Cluster, PolicyOptions};
use haven_engine::runtime::{ClusterHandle, RuntimeOptions, Start};
use haven_model::{ClusterConfig, ClusterSnapshot, Event, Name, Operation, ResourceState};
use tokio::sync::broadcast;

/// A real engine state machine for `config` with simulated agents that
/// answer at once: its handle, its first snapshot and its live events.
pub async fn engine(
    config: ClusterConfig,
) -> (
    ClusterHandle,
    ClusterSnapshot,
    broadcast::Receiver<Arc<Vec<Event>>>,
) {
    let handle = ClusterHandle::spawn(
        Cluster::new(
            config,
            PolicyOptions {
                simulated: true,
                periodic_monitor: false,
            },
        ),
        AgentSet::simulated(SimAgent::new((0, 0))),
        RuntimeOptions {
            log_events: false,
            ..RuntimeOptions::default()
        },
    );
    let sub = handle.subscribe(None).await.unwrap();
    let Start::Snapshot(_, snap) = sub.start else {
        panic!("a first subscription starts with a snapshot")
    };
    (handle, *snap, sub.live)
}

/// A random operation (a fault, a switch, a freeze, ...) for a cluster,
/// chosen from its current state.
pub fn random_op(snap: &ClusterSnapshot, rng: &mut fastrand::Rng) -> Operation {
    let group = &snap.groups[rng.usize(..snap.groups.len())];
    let system = snap.systems[rng.usize(..snap.systems.len())].name.clone();
    match rng.u8(..8) {
        0 | 1 => {
            let online: Vec<(Name, Name)> = group
                .resources
                .iter()
                .flat_map(|r| {
                    r.states
                        .iter()
                        .filter(|(_, st)| *st == ResourceState::Online)
                        .map(|(s, _)| (r.name.clone(), s.clone()))
                })
                .collect();
            match online.get(rng.usize(..online.len().max(1))) {
                Some((resource, system)) => Operation::SimFaultResource {
                    resource: resource.clone(),
                    system: system.clone(),
                },
                None => Operation::GroupClear {
                    group: group.name.clone(),
                    system: None,
                },
            }
        }
        2 => Operation::GroupSwitch {
            group: group.name.clone(),
            to: None,
        },
        3 => Operation::GroupClear {
            group: group.name.clone(),
            system: None,
        },
        4 => {
            if snap
                .system(&system)
                .is_some_and(|s| s.state == haven_model::SystemState::Running)
            {
                Operation::SimFaultSystem { system }
            } else {
                Operation::SimRestoreSystem { system }
            }
        }
        5 => Operation::GroupFreeze {
            group: group.name.clone(),
            persistent: false,
        },
        6 => Operation::GroupUnfreeze {
            group: group.name.clone(),
        },
        _ => Operation::GroupOnline {
            group: group.name.clone(),
            system: None,
        },
    }
}
