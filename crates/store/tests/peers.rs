//! Peers, pairing tokens and the history a peer follows, through the
//! `PeerStore` trait. Every test runs on both backends.

mod common;

use haven_store::{PeerRecord, PeerTokenRecord, Store};

common::on_both_backends!(
    a_pairing_token_is_spent_once_and_only_before_it_expires,
    peers_are_added_replaced_and_removed,
    local_history_is_read_in_row_order_without_followed_sites,
);

fn token(id: &str, expires_ms: i64) -> PeerTokenRecord {
    PeerTokenRecord {
        id: id.into(),
        secret_hash: "ab".repeat(32),
        created_ms: 100,
        expires_ms,
        created_by: "ann".into(),
    }
}

fn a_pairing_token_is_spent_once_and_only_before_it_expires(store: &mut dyn Store) {
    store
        .insert_peer_token(&token("t1", 1_000))
        .expect("stores");
    store
        .insert_peer_token(&token("t2", 1_000))
        .expect("stores");
    let hash = "ab".repeat(32);
    let wrong = "cd".repeat(32);
    let spend = |store: &mut dyn Store, id: &str, hash: &str, now: i64| {
        store
            .spend_peer_token(id, hash, "west", now)
            .expect("reads")
    };
    assert!(spend(store, "nope", &hash, 500)
        .unwrap_err()
        .contains("unknown"));
    assert!(spend(store, "t1", &wrong, 500)
        .unwrap_err()
        .contains("wrong"));
    assert!(spend(store, "t1", &hash, 1_001)
        .unwrap_err()
        .contains("expired"));
    // Refusals spent nothing: the right secret in time still works, once.
    assert_eq!(spend(store, "t1", &hash, 500), Ok(()));
    assert!(spend(store, "t1", &hash, 600)
        .unwrap_err()
        .contains("already used"));
    assert_eq!(spend(store, "t2", &hash, 600), Ok(()));
}

fn peers_are_added_replaced_and_removed(store: &mut dyn Store) {
    let east = PeerRecord {
        site: "east".into(),
        address: "10.0.0.1:14152".into(),
        ca_pem: "PEM".into(),
        paired_ms: 5,
        paired_by: "ann".into(),
        history_after: 0,
    };
    let mut west = east.clone();
    west.site = "west".into();
    store.upsert_peer(&west).expect("adds");
    store.upsert_peer(&east).expect("adds");
    assert_eq!(
        store.peers().expect("reads"),
        vec![east.clone(), west.clone()]
    );
    // The history cursor only moves forward.
    store.set_peer_history("east", 40).expect("moves");
    store.set_peer_history("east", 30).expect("keeps");
    assert_eq!(store.peers().expect("reads")[0].history_after, 40);
    let mut moved = east.clone();
    moved.address = "10.0.0.9:14152".into();
    store.upsert_peer(&moved).expect("replaces");
    assert_eq!(store.peers().expect("reads")[0], moved);
    assert!(store.remove_peer("east").expect("removes"));
    assert!(!store.remove_peer("east").expect("nothing left"));
    assert_eq!(store.peers().expect("reads"), vec![west]);
}

fn local_history_is_read_in_row_order_without_followed_sites(store: &mut dyn Store) {
    store.append(&common::rows("c1", 1, 1, 3)).expect("appends");
    store
        .append(&common::rows("east:c9", 4, 1, 2))
        .expect("appends");
    store.append(&common::rows("c2", 2, 1, 2)).expect("appends");
    store.append(&common::rows("c1", 1, 4, 4)).expect("appends");
    let all = store.local_history_after(0, 100).expect("reads");
    let seen: Vec<(String, u64)> = all
        .iter()
        .map(|(_, r)| (r.cluster.clone(), r.event.seq))
        .collect();
    let expected: Vec<(String, u64)> = [
        ("c1", 1),
        ("c1", 2),
        ("c1", 3),
        ("c2", 1),
        ("c2", 2),
        ("c1", 4),
    ]
    .iter()
    .map(|(c, s)| (c.to_string(), *s))
    .collect();
    assert_eq!(seen, expected);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    // Resuming after a row gives exactly the rest; the limit is kept.
    let after = store.local_history_after(all[2].0, 2).expect("reads");
    assert_eq!(
        after.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![all[3].0, all[4].0]
    );
    assert_eq!(after[0].1, all[3].1);
    let last = all.last().expect("rows").0;
    assert!(store
        .local_history_after(last, 10)
        .expect("reads")
        .is_empty());
}
