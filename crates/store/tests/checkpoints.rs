//! Checkpoints and the history reads a replay needs, through the
//! `CheckpointStore` trait. Every test runs on both backends.

mod common;

use common::{row_about, rows};
use haven_model::{ClusterConfig, ClusterSnapshot};
use haven_store::{Checkpoint, Store, HISTORY_PRUNED_BEFORE};

common::on_both_backends!(
    the_newest_checkpoint_at_an_instant_is_found_per_cluster,
    a_checkpoint_stored_twice_is_kept_once,
    checkpoints_between_two_instants_come_oldest_first,
    events_after_a_position_come_in_sequence_order_before_the_end,
    prune_keeps_the_newest_checkpoint_before_the_cut_and_records_the_cut,
);

fn checkpoint(cluster: &str, epoch: u64, seq: u64, time_ms: i64) -> Checkpoint {
    Checkpoint {
        cluster: cluster.into(),
        epoch,
        time_ms,
        snapshot: ClusterSnapshot {
            seq,
            config: ClusterConfig {
                name: cluster.into(),
                includes: Vec::new(),
                attributes: Default::default(),
                systems: Vec::new(),
                types: Vec::new(),
                groups: Vec::new(),
            },
            systems: Vec::new(),
            groups: Vec::new(),
        },
    }
}

/// (cluster, epoch, seq, time) of each checkpoint.
fn keys(list: &[Checkpoint]) -> Vec<(String, u64, u64, i64)> {
    list.iter()
        .map(|c| (c.cluster.clone(), c.epoch, c.snapshot.seq, c.time_ms))
        .collect()
}

fn key(cluster: &str, epoch: u64, seq: u64, time_ms: i64) -> (String, u64, u64, i64) {
    (cluster.into(), epoch, seq, time_ms)
}

fn the_newest_checkpoint_at_an_instant_is_found_per_cluster(store: &mut dyn Store) {
    store
        .save_checkpoints(&[
            checkpoint("a", 1, 0, 100),
            checkpoint("a", 1, 50, 200),
            checkpoint("a", 2, 0, 300),
            checkpoint("b", 7, 10, 150),
        ])
        .expect("saves");
    assert_eq!(store.checkpoints_at(99, None).expect("reads"), vec![]);
    assert_eq!(
        keys(&store.checkpoints_at(200, None).expect("reads")),
        vec![key("a", 1, 50, 200), key("b", 7, 10, 150)],
        "at the instant of a checkpoint, that one"
    );
    assert_eq!(
        keys(&store.checkpoints_at(10_000, None).expect("reads")),
        vec![key("a", 2, 0, 300), key("b", 7, 10, 150)]
    );
    assert_eq!(
        keys(
            &store
                .checkpoints_at(10_000, Some(&["b".into()]))
                .expect("reads")
        ),
        vec![key("b", 7, 10, 150)],
        "only the clusters asked for"
    );
    assert_eq!(
        store.checkpoints_at(10_000, Some(&[])).expect("reads"),
        vec![],
        "an empty list matches nothing"
    );
    let whole = store.checkpoints_at(150, None).expect("reads");
    assert_eq!(whole[1], checkpoint("b", 7, 10, 150), "read back whole");
}

fn a_checkpoint_stored_twice_is_kept_once(store: &mut dyn Store) {
    store
        .save_checkpoints(&[checkpoint("a", 1, 5, 100)])
        .expect("saves");
    store
        .save_checkpoints(&[checkpoint("a", 1, 5, 999), checkpoint("a", 1, 6, 120)])
        .expect("a duplicate is no error");
    assert_eq!(
        keys(&store.checkpoints_between("a", 0, 10_000).expect("reads")),
        vec![key("a", 1, 5, 100), key("a", 1, 6, 120)],
        "the first one stays"
    );
}

fn checkpoints_between_two_instants_come_oldest_first(store: &mut dyn Store) {
    store
        .save_checkpoints(&[
            checkpoint("a", 2, 0, 300),
            checkpoint("a", 1, 0, 100),
            checkpoint("a", 1, 50, 200),
            checkpoint("b", 1, 0, 150),
        ])
        .expect("saves");
    assert_eq!(
        keys(&store.checkpoints_between("a", 100, 300).expect("reads")),
        vec![key("a", 1, 50, 200)],
        "after the first instant, before the second"
    );
    assert_eq!(
        keys(&store.checkpoints_between("a", 0, 301).expect("reads")),
        vec![
            key("a", 1, 0, 100),
            key("a", 1, 50, 200),
            key("a", 2, 0, 300)
        ]
    );
}

fn events_after_a_position_come_in_sequence_order_before_the_end(store: &mut dyn Store) {
    let mut batch = rows("a", 1, 1, 10);
    batch.extend(rows("a", 2, 1, 3));
    batch.extend(rows("b", 1, 1, 10));
    // Stored out of time order: sequence order is what counts.
    batch.push(row_about("a", 3, 2, 5, "g", "r", "s"));
    batch.push(row_about("a", 3, 1, 6, "g", "r", "s"));
    store.append(&batch).expect("appends");
    let seqs = |epoch, after, until| -> Vec<(u64, i64)> {
        store
            .events_after("a", epoch, after, until)
            .expect("reads")
            .iter()
            .map(|e| (e.seq, e.time_ms))
            .collect()
    };
    assert_eq!(seqs(1, 7, 1_000), vec![(8, 8), (9, 9), (10, 10)]);
    assert_eq!(seqs(1, 2, 5), vec![(3, 3), (4, 4)], "before the end only");
    assert_eq!(seqs(2, 0, 1_000), vec![(1, 1), (2, 2), (3, 3)]);
    assert_eq!(seqs(3, 0, 1_000), vec![(1, 6), (2, 5)]);
    assert_eq!(seqs(4, 0, 1_000), vec![]);
    let whole = store.events_after("a", 1, 0, 2).expect("reads");
    assert_eq!(whole, vec![batch[0].event.clone()], "read back whole");
}

fn prune_keeps_the_newest_checkpoint_before_the_cut_and_records_the_cut(store: &mut dyn Store) {
    store
        .save_checkpoints(&[
            checkpoint("a", 1, 0, 100),
            checkpoint("a", 1, 50, 200),
            checkpoint("a", 2, 0, 600),
            checkpoint("b", 1, 0, 150),
            checkpoint("c", 1, 0, 700),
        ])
        .expect("saves");
    store.prune(500, None, &|_| {}).expect("prunes");
    assert_eq!(
        keys(&store.checkpoints_between("a", 0, 10_000).expect("reads")),
        vec![key("a", 1, 50, 200), key("a", 2, 0, 600)]
    );
    assert_eq!(
        keys(&store.checkpoints_between("b", 0, 10_000).expect("reads")),
        vec![key("b", 1, 0, 150)],
        "a cluster's only checkpoint stays"
    );
    assert_eq!(
        store
            .setting(HISTORY_PRUNED_BEFORE)
            .expect("reads")
            .as_deref(),
        Some("500")
    );
    store.prune(400, None, &|_| {}).expect("prunes");
    assert_eq!(
        store
            .setting(HISTORY_PRUNED_BEFORE)
            .expect("reads")
            .as_deref(),
        Some("500"),
        "an older cut-off does not move it back"
    );
    assert_eq!(store.checkpoints_at(10_000, None).expect("reads").len(), 3);
}
