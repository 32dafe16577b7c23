//! Tags on clusters, service groups and systems, and the searches users
//! saved (tables `tags` and `saved_searches`, schema V5), the same way on
//! every backend.
//!
//! The store keeps what it is given: which keys and values are allowed,
//! and who may set them, is the server's to decide.

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One tag (`key=value`) on one object of a cluster.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// The cluster of the object.
    pub cluster: String,
    /// `cluster`, `group` or `system`.
    pub kind: String,
    /// The group or system (empty for the cluster itself).
    pub object: String,
    /// The key (one value per key and object).
    pub key: String,
    /// The value.
    pub value: String,
    /// Who set it.
    pub set_by: String,
    /// When, in milliseconds since the Unix epoch.
    pub set_ms: i64,
}

/// A search to save under a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSavedSearch {
    /// The user who saved it.
    pub owner: String,
    /// Its name, unique per owner.
    pub name: String,
    /// The query, as typed.
    pub query: String,
    /// Listed to every user (each still sees only what their roles allow).
    pub shared: bool,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A saved search: a [`NewSavedSearch`] with its id.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSearch {
    /// Its id, in the order searches were saved.
    pub id: i64,
    /// The user who saved it.
    pub owner: String,
    /// Its name, unique per owner.
    pub name: String,
    /// The query, as typed.
    pub query: String,
    /// Listed to every user.
    pub shared: bool,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// Tags and saved searches.
pub trait TagStore {
    /// Sets tags in one transaction: a tag whose (cluster, kind, object,
    /// key) is stored takes the new value, setter and time; any other is
    /// added. On error nothing of the batch is stored.
    fn set_tags(&mut self, tags: &[TagRecord]) -> Result<(), StoreError>;

    /// Removes the keys of one object, in one transaction; returns how
    /// many tags there were to remove.
    fn remove_tags(
        &mut self,
        cluster: &str,
        kind: &str,
        object: &str,
        keys: &[String],
    ) -> Result<u64, StoreError>;

    /// Removes every tag of a cluster and of its objects (the cluster is
    /// no longer managed); returns how many there were.
    fn remove_cluster_tags(&mut self, cluster: &str) -> Result<u64, StoreError>;

    /// The tags of one cluster and its objects (or of every cluster),
    /// ordered by cluster, kind, object and key.
    fn tags(&self, cluster: Option<&str>) -> Result<Vec<TagRecord>, StoreError>;

    /// Saves a search and returns its id, or `None` when its owner has
    /// one of that name already (which is left as it was).
    fn insert_saved_search(&mut self, s: &NewSavedSearch) -> Result<Option<i64>, StoreError>;

    /// The searches `owner` saved and those others shared, by name then
    /// owner.
    fn saved_searches(&self, owner: &str) -> Result<Vec<SavedSearch>, StoreError>;

    /// Removes a saved search and returns it, or `None` when there is no
    /// search with that id.
    fn delete_saved_search(&mut self, id: i64) -> Result<Option<SavedSearch>, StoreError>;
}
