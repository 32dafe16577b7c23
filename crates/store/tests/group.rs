//! The clustered server's lease and fence, on a real PostgreSQL
//! (`common/pg.rs`; with `CI=true` a missing PostgreSQL fails them).

mod common;

use common::pg;
use haven_store::{GroupLink, GroupServerRecord, GroupSession, Lead, PgStore, Store, StoreError};

fn me(id: &str) -> GroupServerRecord {
    GroupServerRecord {
        id: id.into(),
        api_url: format!("https://{id}:8440"),
        connector_address: format!("{id}:8441"),
        role: "standby".into(),
        version: "test".into(),
        pid: 1,
        started_ms: 1,
        heartbeat_ms: 0,
    }
}

/// Each server's id and role, as the group lists them.
fn roles(link: &mut GroupLink) -> Vec<(String, String)> {
    let servers = link.servers().unwrap();
    servers.into_iter().map(|s| (s.id, s.role)).collect()
}

fn won(lead: Lead) -> i64 {
    match lead {
        Lead::Won(term) => term,
        Lead::Held { lease, .. } => panic!("expected to win, the lease is held: {lease:?}"),
    }
}

#[test]
fn one_server_leads_and_a_dead_ones_lease_passes_at_once() {
    let Some(db) = pg::database() else { return };
    let mut a = GroupLink::connect(&db.url, "a").expect("a connects");
    let mut b = GroupLink::connect(&db.url, "b").expect("b connects");
    a.register(&me("a")).unwrap();
    b.register(&me("b")).unwrap();

    let term = won(a.try_lead(5_000).unwrap());
    assert_eq!(term, 1);
    let Lead::Held { lease, ended } = b.try_lead(5_000).unwrap() else {
        panic!("b must not lead while a does")
    };
    assert_eq!(
        (lease.term, lease.holder.as_deref(), ended),
        (1, Some("a"), None)
    );
    assert!(a.renew(term, 5_000).unwrap(), "the holder renews");
    assert!(!b.renew(term, 5_000).unwrap(), "another cannot renew it");
    assert_eq!(
        roles(&mut a),
        [
            ("a".into(), "active".into()),
            ("b".into(), "standby".into())
        ]
    );

    // a dies: its connection closes, the lock is free, b wins at once
    // (well before the lease would expire).
    drop(a);
    let term2 = won(b.try_lead(5_000).unwrap());
    assert_eq!(term2, 2);
    assert_eq!(
        roles(&mut b),
        [
            ("a".into(), "standby".into()),
            ("b".into(), "active".into())
        ]
    );
}

#[test]
fn a_silent_leaders_writes_are_refused_once_its_lease_has_passed() {
    let Some(db) = pg::database() else { return };
    let mut a = GroupLink::connect(&db.url, "a").expect("a connects");
    let mut b = GroupLink::connect(&db.url, "b").expect("b connects");
    a.register(&me("a")).unwrap();
    b.register(&me("b")).unwrap();
    let term_a = won(a.try_lead(300).unwrap());
    let session_a = GroupSession {
        server_id: "a".into(),
        term: term_a,
    };
    let mut store_a = PgStore::connect_as(&db.url, Some(&session_a)).unwrap();
    store_a
        .append(&common::rows("c1", 1, 1, 3))
        .expect("the active server writes");

    // a goes silent (its lease session still open, holding the lock): b
    // waits for the lease to expire, ends a's sessions, then wins.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let Lead::Held { ended, .. } = b.try_lead(5_000).unwrap() else {
        panic!("a's lock is still held until its sessions end")
    };
    assert!(
        ended.unwrap() >= 2,
        "a's lease and store sessions: {ended:?}"
    );
    let term_b = won(b.try_lead(5_000).unwrap());
    assert_eq!(term_b, term_a + 1);

    // a wakes up: its store reconnects (the old session was ended) and
    // tries again, with its old term; the database refuses, nothing stored.
    let first = store_a.append(&common::rows("c1", 1, 4, 6));
    let refused = match first {
        Err(StoreError::Fenced(_)) => first.unwrap_err(),
        // The first call finds the ended connection; the next reconnects.
        Err(_) => store_a.append(&common::rows("c1", 1, 4, 6)).unwrap_err(),
        Ok(report) => panic!("a wrote after losing the lease: {report:?}"),
    };
    assert!(
        matches!(&refused, StoreError::Fenced(m) if m.contains("no longer the active")),
        "{refused}"
    );
    for write in [
        store_a.set_setting("k", "v").map(|_| ()),
        store_a.remove_cluster("c1").map(|_| ()),
    ] {
        assert!(matches!(write, Err(StoreError::Fenced(_))), "{write:?}");
    }
    assert!(
        !matches!(a.renew(term_a, 300), Ok(true)),
        "the old holder's lease is gone"
    );

    // The new leader writes; a plain store (no group) reads everything.
    let session_b = GroupSession {
        server_id: "b".into(),
        term: term_b,
    };
    let mut store_b = PgStore::connect_as(&db.url, Some(&session_b)).unwrap();
    store_b
        .append(&common::rows("c1", 1, 4, 6))
        .expect("b writes");
    let reader = db.store();
    let seqs: Vec<u64> = reader
        .history(&Default::default())
        .unwrap()
        .iter()
        .map(|r| r.event.seq)
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3, 4, 5, 6]);
    assert_eq!(reader.setting("k").unwrap(), None);
}

#[test]
fn the_group_shares_the_first_value_stored() {
    let Some(db) = pg::database() else { return };
    let mut a = GroupLink::connect(&db.url, "a").unwrap();
    let mut b = GroupLink::connect(&db.url, "b").unwrap();
    assert_eq!(a.shared("ca").unwrap(), None);
    assert_eq!(a.share("ca", "first").unwrap(), "first");
    assert_eq!(b.share("ca", "second").unwrap(), "first");
    assert_eq!(b.shared("ca").unwrap().as_deref(), Some("first"));
}
