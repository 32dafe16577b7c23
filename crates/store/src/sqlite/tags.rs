//! [`TagStore`] in SQLite: the `tags` and `saved_searches` tables (schema
//! V5). A batch of tags is one `BEGIN IMMEDIATE` transaction.

use rusqlite::{params, OptionalExtension, Row};

use super::{Select, SqliteStore};
use crate::{NewSavedSearch, SavedSearch, StoreError, TagRecord, TagStore};

const TAG_COLUMNS: &str = "cluster, kind, object, key, value, set_by, set_ms";
const SEARCH_COLUMNS: &str = "id, owner, name, query, shared, created_ms";

fn tag_of(row: &Row<'_>) -> Result<TagRecord, StoreError> {
    Ok(TagRecord {
        cluster: row.get(0)?,
        kind: row.get(1)?,
        object: row.get(2)?,
        key: row.get(3)?,
        value: row.get(4)?,
        set_by: row.get(5)?,
        set_ms: row.get(6)?,
    })
}

fn search_of(row: &Row<'_>) -> rusqlite::Result<SavedSearch> {
    Ok(SavedSearch {
        id: row.get(0)?,
        owner: row.get(1)?,
        name: row.get(2)?,
        query: row.get(3)?,
        shared: row.get(4)?,
        created_ms: row.get(5)?,
    })
}

impl TagStore for SqliteStore {
    fn set_tags(&mut self, tags: &[TagRecord]) -> Result<(), StoreError> {
        if tags.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO tags (cluster, kind, object, key, value, set_by, set_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (cluster, kind, object, key) DO UPDATE SET
                    value = excluded.value, set_by = excluded.set_by, set_ms = excluded.set_ms",
            )?;
            for t in tags {
                upsert.execute(params![
                    t.cluster, t.kind, t.object, t.key, t.value, t.set_by, t.set_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn remove_tags(
        &mut self,
        cluster: &str,
        kind: &str,
        object: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        let tx = self.write_tx()?;
        let mut removed = 0;
        {
            let mut delete = tx.prepare_cached(
                "DELETE FROM tags WHERE cluster = ?1 AND kind = ?2 AND object = ?3 AND key = ?4",
            )?;
            for key in keys {
                removed += delete.execute(params![cluster, kind, object, key])? as u64;
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    fn remove_cluster_tags(&mut self, cluster: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM tags WHERE cluster = ?1")?
            .execute([cluster])? as u64)
    }

    fn tags(&self, cluster: Option<&str>) -> Result<Vec<TagRecord>, StoreError> {
        let cluster = cluster.map(str::to_owned);
        let mut select = Select::from(&format!("SELECT {TAG_COLUMNS} FROM tags"));
        select.filter_opt("cluster = ?", &cluster);
        select.run(
            &self.conn,
            "ORDER BY cluster, kind, object, key",
            None,
            tag_of,
        )
    }

    fn insert_saved_search(&mut self, s: &NewSavedSearch) -> Result<Option<i64>, StoreError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO saved_searches (owner, name, query, shared, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (owner, name) DO NOTHING",
            )?
            .execute(params![s.owner, s.name, s.query, s.shared, s.created_ms])?;
        Ok((inserted == 1).then(|| self.conn.last_insert_rowid()))
    }

    fn saved_searches(&self, owner: &str) -> Result<Vec<SavedSearch>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SEARCH_COLUMNS} FROM saved_searches
             WHERE owner = ?1 OR shared = 1 ORDER BY name, owner"
        ))?;
        let rows = stmt.query_map([owner], search_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_saved_search(&mut self, id: i64) -> Result<Option<SavedSearch>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM saved_searches WHERE id = ?1 RETURNING {SEARCH_COLUMNS}"
            ))?
            .query_row([id], search_of)
            .optional()?)
    }
}
