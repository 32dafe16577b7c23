//! [`TagStore`] in PostgreSQL, with SQLite's behaviour
//! (`sqlite/tags.rs`): the same upsert, orders and answers.

use postgres::Row;

use super::{PgStore, Select};
use crate::{NewSavedSearch, SavedSearch, StoreError, TagRecord, TagStore};

const TAG_COLUMNS: &str = "cluster, kind, object, key, value, set_by, set_ms";
const SEARCH_COLUMNS: &str = "id, owner, name, query, shared, created_ms";

fn tag_of(row: &Row) -> Result<TagRecord, StoreError> {
    Ok(TagRecord {
        cluster: row.try_get(0)?,
        kind: row.try_get(1)?,
        object: row.try_get(2)?,
        key: row.try_get(3)?,
        value: row.try_get(4)?,
        set_by: row.try_get(5)?,
        set_ms: row.try_get(6)?,
    })
}

fn search_of(row: &Row) -> Result<SavedSearch, StoreError> {
    Ok(SavedSearch {
        id: row.try_get(0)?,
        owner: row.try_get(1)?,
        name: row.try_get(2)?,
        query: row.try_get(3)?,
        shared: row.try_get(4)?,
        created_ms: row.try_get(5)?,
    })
}

impl TagStore for PgStore {
    fn set_tags(&mut self, tags: &[TagRecord]) -> Result<(), StoreError> {
        if tags.is_empty() {
            return Ok(());
        }
        self.conn()?.transaction(|tx| {
            for t in tags {
                tx.execute(
                    "INSERT INTO tags (cluster, kind, object, key, value, set_by, set_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (cluster, kind, object, key) DO UPDATE SET
                        value = excluded.value, set_by = excluded.set_by,
                        set_ms = excluded.set_ms",
                    &[
                        &t.cluster, &t.kind, &t.object, &t.key, &t.value, &t.set_by, &t.set_ms,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn remove_tags(
        &mut self,
        cluster: &str,
        kind: &str,
        object: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        self.conn()?.transaction(|tx| {
            let mut removed = 0;
            for key in keys {
                removed += tx.execute(
                    "DELETE FROM tags
                     WHERE cluster = $1 AND kind = $2 AND object = $3 AND key = $4",
                    &[&cluster, &kind, &object, key],
                )?;
            }
            Ok(removed)
        })
    }

    fn remove_cluster_tags(&mut self, cluster: &str) -> Result<u64, StoreError> {
        self.conn()?
            .session()
            .execute("DELETE FROM tags WHERE cluster = $1", &[&cluster])
    }

    fn tags(&self, cluster: Option<&str>) -> Result<Vec<TagRecord>, StoreError> {
        let cluster = cluster.map(str::to_owned);
        let mut select = Select::from(&format!("SELECT {TAG_COLUMNS} FROM tags"));
        select.filter_opt("cluster = ?", &cluster);
        select.run(self, "ORDER BY cluster, kind, object, key", None, tag_of)
    }

    fn insert_saved_search(&mut self, s: &NewSavedSearch) -> Result<Option<i64>, StoreError> {
        self.conn()?
            .session()
            .query_opt(
                "INSERT INTO saved_searches (owner, name, query, shared, created_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner, name) DO NOTHING
                 RETURNING id",
                &[&s.owner, &s.name, &s.query, &s.shared, &s.created_ms],
            )?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
    }

    fn saved_searches(&self, owner: &str) -> Result<Vec<SavedSearch>, StoreError> {
        self.conn()?
            .session()
            .query(
                &format!(
                    "SELECT {SEARCH_COLUMNS} FROM saved_searches
                     WHERE owner = $1 OR shared ORDER BY name, owner"
                ),
                &[&owner],
            )?
            .iter()
            .map(search_of)
            .collect()
    }

    fn delete_saved_search(&mut self, id: i64) -> Result<Option<SavedSearch>, StoreError> {
        self.conn()?
            .session()
            .query_opt(
                &format!("DELETE FROM saved_searches WHERE id = $1 RETURNING {SEARCH_COLUMNS}"),
                &[&id],
            )?
            .map(|row| search_of(&row))
            .transpose()
    }
}
