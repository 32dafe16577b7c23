//! [`PeerStore`] in PostgreSQL, with SQLite's behaviour
//! (`sqlite/peers.rs`).

use super::{from_json, from_sql, sql_limit, PgStore};
use crate::peers::peer_token_verdict;
use crate::{HistoryRow, PeerRecord, PeerStore, PeerTokenRecord, StoreError};

impl PeerStore for PgStore {
    fn insert_peer_token(&mut self, t: &PeerTokenRecord) -> Result<(), StoreError> {
        self.conn()?.session().execute(
            "INSERT INTO peer_tokens (id, secret_hash, created_ms, expires_ms, created_by)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &t.id,
                &t.secret_hash,
                &t.created_ms,
                &t.expires_ms,
                &t.created_by,
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
        self.conn()?.transaction(|tx| {
            let row = tx
                .query_opt(
                    "SELECT secret_hash, expires_ms, used_ms FROM peer_tokens
                     WHERE id = $1 FOR UPDATE",
                    &[&id],
                )?
                .map(|r| -> Result<_, StoreError> {
                    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
                })
                .transpose()?;
            let verdict = peer_token_verdict(row, secret_hash, now_ms);
            if verdict.is_ok() {
                tx.execute(
                    "UPDATE peer_tokens SET used_ms = $2, used_by = $3 WHERE id = $1",
                    &[&id, &now_ms, &site],
                )?;
            }
            Ok(verdict)
        })
    }

    fn peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        self.conn()?
            .session()
            .query(
                "SELECT site, address, ca_pem, paired_ms, paired_by, history_after
                 FROM peers ORDER BY site",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(PeerRecord {
                    site: r.try_get(0)?,
                    address: r.try_get(1)?,
                    ca_pem: r.try_get(2)?,
                    paired_ms: r.try_get(3)?,
                    paired_by: r.try_get(4)?,
                    history_after: r.try_get(5)?,
                })
            })
            .collect()
    }

    fn upsert_peer(&mut self, p: &PeerRecord) -> Result<(), StoreError> {
        self.conn()?.session().execute(
            "INSERT INTO peers (site, address, ca_pem, paired_ms, paired_by, history_after)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (site) DO UPDATE SET address = excluded.address,
                ca_pem = excluded.ca_pem, paired_ms = excluded.paired_ms,
                paired_by = excluded.paired_by, history_after = excluded.history_after",
            &[
                &p.site,
                &p.address,
                &p.ca_pem,
                &p.paired_ms,
                &p.paired_by,
                &p.history_after,
            ],
        )?;
        Ok(())
    }

    fn remove_peer(&mut self, site: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()?
            .session()
            .execute("DELETE FROM peers WHERE site = $1", &[&site])?
            > 0)
    }

    fn set_peer_history(&mut self, site: &str, after: i64) -> Result<(), StoreError> {
        self.conn()?.session().execute(
            "UPDATE peers SET history_after = GREATEST(history_after, $2) WHERE site = $1",
            &[&site, &after],
        )?;
        Ok(())
    }

    fn local_history_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, HistoryRow)>, StoreError> {
        let limit = sql_limit(limit);
        self.conn()?
            .session()
            .query(
                "SELECT id, cluster, epoch, seq, time_ms, detail FROM history
                 WHERE id > $1 AND position(':' in cluster) = 0 ORDER BY id LIMIT $2",
                &[&after_id, &limit],
            )?
            .iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                let detail: &str = row.try_get(5)?;
                Ok((
                    id,
                    HistoryRow {
                        cluster: row.try_get(1)?,
                        epoch: from_sql("history", id, row.try_get(2)?)?,
                        event: haven_model::Event {
                            seq: from_sql("history", id, row.try_get(3)?)?,
                            time_ms: row.try_get(4)?,
                            kind: from_json("history", id, detail)?,
                        },
                    },
                ))
            })
            .collect()
    }
}
