//! Tags and saved searches through the `TagStore` trait. Every test runs
//! on both backends (`sqlite::` and `postgres::`).

mod common;

use haven_store::{NewSavedSearch, SavedSearch, Store, TagRecord};

common::on_both_backends!(
    tags_are_set_replaced_and_read_back_in_order,
    tags_are_removed_by_key_and_by_cluster,
    a_bad_tag_in_a_batch_stores_nothing,
    saved_searches_are_private_unless_shared_and_unique_per_owner,
    a_saved_search_is_deleted_once,
);

fn tag(cluster: &str, kind: &str, object: &str, key: &str, value: &str) -> TagRecord {
    TagRecord {
        cluster: cluster.into(),
        kind: kind.into(),
        object: object.into(),
        key: key.into(),
        value: value.into(),
        set_by: "ann".into(),
        set_ms: 100,
    }
}

fn tags_are_set_replaced_and_read_back_in_order(store: &mut dyn Store) {
    let a = tag("c2", "cluster", "", "env", "prod");
    let b = tag("c1", "group", "web", "tier", "front");
    let c = tag("c1", "cluster", "", "env", "test");
    let d = tag("c1", "system", "n1", "rack", "r7");
    store
        .set_tags(&[a.clone(), b.clone(), c.clone(), d.clone()])
        .expect("sets");
    assert_eq!(
        store.tags(None).expect("reads"),
        vec![c.clone(), b.clone(), d.clone(), a.clone()]
    );
    assert_eq!(
        store.tags(Some("c1")).expect("reads"),
        vec![c.clone(), b.clone(), d.clone()]
    );
    // Setting a key again replaces its value, setter and time.
    let mut changed = c.clone();
    changed.value = "prod".into();
    changed.set_by = "bob".into();
    changed.set_ms = 200;
    store.set_tags(&[changed.clone()]).expect("sets");
    assert_eq!(store.tags(Some("c1")).expect("reads"), vec![changed, b, d]);
    assert_eq!(store.tags(Some("nope")).expect("reads"), vec![]);
}

fn tags_are_removed_by_key_and_by_cluster(store: &mut dyn Store) {
    store
        .set_tags(&[
            tag("c1", "group", "web", "tier", "front"),
            tag("c1", "group", "web", "owner", "ann"),
            tag("c1", "group", "db", "tier", "back"),
            tag("c2", "cluster", "", "env", "prod"),
        ])
        .expect("sets");
    let removed = store
        .remove_tags("c1", "group", "web", &["tier".into(), "missing".into()])
        .expect("removes");
    assert_eq!(removed, 1);
    assert_eq!(
        store.tags(Some("c1")).expect("reads"),
        vec![
            tag("c1", "group", "db", "tier", "back"),
            tag("c1", "group", "web", "owner", "ann"),
        ]
    );
    assert_eq!(store.remove_cluster_tags("c1").expect("removes"), 2);
    assert_eq!(
        store.tags(None).expect("reads"),
        vec![tag("c2", "cluster", "", "env", "prod")]
    );
}

fn a_bad_tag_in_a_batch_stores_nothing(store: &mut dyn Store) {
    // A cluster tag must name no object (the table's CHECK).
    let bad = tag("c1", "cluster", "web", "env", "prod");
    assert!(store
        .set_tags(&[tag("c1", "cluster", "", "env", "prod"), bad])
        .is_err());
    assert_eq!(store.tags(None).expect("reads"), vec![]);
}

fn search(owner: &str, name: &str, shared: bool) -> NewSavedSearch {
    NewSavedSearch {
        owner: owner.into(),
        name: name.into(),
        query: format!("{name} state:faulted"),
        shared,
        created_ms: 5,
    }
}

fn saved(id: i64, s: &NewSavedSearch) -> SavedSearch {
    SavedSearch {
        id,
        owner: s.owner.clone(),
        name: s.name.clone(),
        query: s.query.clone(),
        shared: s.shared,
        created_ms: s.created_ms,
    }
}

fn saved_searches_are_private_unless_shared_and_unique_per_owner(store: &mut dyn Store) {
    let mine = search("ann", "web", false);
    let theirs = search("bob", "db", false);
    let shared = search("bob", "prod", true);
    let a = store
        .insert_saved_search(&mine)
        .expect("saves")
        .expect("new");
    let b = store
        .insert_saved_search(&theirs)
        .expect("saves")
        .expect("new");
    let c = store
        .insert_saved_search(&shared)
        .expect("saves")
        .expect("new");
    assert!(a < b && b < c);
    assert_eq!(
        store.saved_searches("ann").expect("reads"),
        vec![saved(c, &shared), saved(a, &mine)]
    );
    assert_eq!(
        store.saved_searches("bob").expect("reads"),
        vec![saved(b, &theirs), saved(c, &shared)]
    );
    assert_eq!(
        store.saved_searches("eve").expect("reads"),
        vec![saved(c, &shared)]
    );
    // The same name again, for the same owner: left as it was.
    let mut again = mine.clone();
    again.query = "other".into();
    assert_eq!(store.insert_saved_search(&again).expect("saves"), None);
    // Another owner may use the name.
    let other = search("bob", "web", false);
    let d = store
        .insert_saved_search(&other)
        .expect("saves")
        .expect("new");
    assert_eq!(
        store.saved_searches("ann").expect("reads"),
        vec![saved(c, &shared), saved(a, &mine)]
    );
    assert_eq!(
        store.saved_searches("bob").expect("reads"),
        vec![saved(b, &theirs), saved(c, &shared), saved(d, &other)]
    );
}

fn a_saved_search_is_deleted_once(store: &mut dyn Store) {
    let s = search("ann", "web", true);
    let id = store.insert_saved_search(&s).expect("saves").expect("new");
    assert_eq!(
        store.delete_saved_search(id).expect("deletes"),
        Some(saved(id, &s))
    );
    assert_eq!(store.delete_saved_search(id).expect("deletes"), None);
    assert_eq!(store.saved_searches("ann").expect("reads"), vec![]);
}
