//! [`PeerStore`] in SQLite: the `peers` and `peer_tokens` tables (schema
//! V6), and this server's own history in row order for its peers.

use rusqlite::{params, OptionalExtension};

use super::{from_json, from_sql, sql_limit, SqliteStore};
use crate::peers::peer_token_verdict;
use crate::{HistoryRow, PeerRecord, PeerStore, PeerTokenRecord, StoreError};

impl PeerStore for SqliteStore {
    fn insert_peer_token(&mut self, t: &PeerTokenRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO peer_tokens (id, secret_hash, created_ms, expires_ms, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                t.id,
                t.secret_hash,
                t.created_ms,
                t.expires_ms,
                t.created_by
            ],
        )?;
        Ok(())
    }

    fn spend_peer_token(
        &mut self,
        id: &str,
        secret_hash: &str,
        site: &str,
        now_ms: i64,
    ) -> Result<Result<(), String>, StoreError> {
        let tx = self.write_tx()?;
        let row = tx
            .query_row(
                "SELECT secret_hash, expires_ms, used_ms FROM peer_tokens WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let verdict = peer_token_verdict(row, secret_hash, now_ms);
        if verdict.is_ok() {
            tx.execute(
                "UPDATE peer_tokens SET used_ms = ?2, used_by = ?3 WHERE id = ?1",
                params![id, now_ms, site],
            )?;
        }
        tx.commit()?;
        Ok(verdict)
    }

    fn peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT site, address, ca_pem, paired_ms, paired_by, history_after
             FROM peers ORDER BY site",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PeerRecord {
                site: r.get(0)?,
                address: r.get(1)?,
                ca_pem: r.get(2)?,
                paired_ms: r.get(3)?,
                paired_by: r.get(4)?,
                history_after: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn upsert_peer(&mut self, p: &PeerRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO peers (site, address, ca_pem, paired_ms, paired_by, history_after)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (site) DO UPDATE SET address = excluded.address,
                ca_pem = excluded.ca_pem, paired_ms = excluded.paired_ms,
                paired_by = excluded.paired_by, history_after = excluded.history_after",
            params![
                p.site,
                p.address,
                p.ca_pem,
                p.paired_ms,
                p.paired_by,
                p.history_after
            ],
        )?;
        Ok(())
    }

    fn remove_peer(&mut self, site: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM peers WHERE site = ?1", [site])?
            > 0)
    }

    fn set_peer_history(&mut self, site: &str, after: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE peers SET history_after = max(history_after, ?2) WHERE site = ?1",
            params![site, after],
        )?;
        Ok(())
    }

    fn local_history_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, HistoryRow)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, cluster, epoch, seq, time_ms, detail FROM history
             WHERE id > ?1 AND instr(cluster, ':') = 0 ORDER BY id LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after_id, sql_limit(limit)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let detail: String = row.get(5)?;
            out.push((
                id,
                HistoryRow {
                    cluster: row.get(1)?,
                    epoch: from_sql("history", id, row.get(2)?)?,
                    event: haven_model::Event {
                        seq: from_sql("history", id, row.get(3)?)?,
                        time_ms: row.get(4)?,
                        kind: from_json("history", id, &detail)?,
                    },
                },
            ));
        }
        Ok(out)
    }
}
