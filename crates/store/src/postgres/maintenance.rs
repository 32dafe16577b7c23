//! Pruning old history in PostgreSQL, with SQLite's semantics
//! (`sqlite/maintenance.rs`; the server and `haven db prune` call either
//! through [`Maintenance`]).
//!
//! - What must stay — the newest state change of each object before the
//!   cut-off — is read once into a temporary table of this connection.
//! - The rest is deleted in statements of [`PRUNE_BATCH`] rows, each its
//!   own transaction. Deleting old rows takes row locks only, so the
//!   writer's inserts never wait for them anyway; the batches keep each
//!   transaction (and its WAL) small.
//! - Deleted rows free their space only when vacuumed: the prune runs a
//!   plain `VACUUM` of `history` at the end (it blocks no reads or writes),
//!   and reports the size of the rows it removed.
//!
//! Backup and restore are not here: on PostgreSQL they are the database's
//! own tools (`pg_dump`, base backups), which do them better than Haven
//! could.

use std::time::Instant;

use super::PgStore;
use crate::{Maintenance, Progress, PruneReport, StoreError, PRUNE_BATCH, STATE_TYPES};

/// Deletes one batch of old rows that are not kept; answers how many and
/// their size.
const DELETE_BATCH: &str = "WITH doomed AS (
        SELECT id FROM history h
        WHERE h.time_ms < $1 AND NOT EXISTS (SELECT 1 FROM prune_keep k WHERE k.id = h.id)
        LIMIT $2),
    gone AS (
        DELETE FROM history h USING doomed WHERE h.id = doomed.id
        RETURNING pg_column_size(h.*) AS size)
    SELECT count(*), coalesce(sum(size), 0)::bigint FROM gone";

impl Maintenance for PgStore {
    fn prune(
        &mut self,
        cut_ms: i64,
        audit_cut_ms: Option<i64>,
        progress: &dyn Fn(Progress),
    ) -> Result<PruneReport, StoreError> {
        let started = Instant::now();
        let mut conn = self.conn()?;
        // The table lives as long as this connection; it is emptied after
        // each prune. (Checked first: CREATE ... IF NOT EXISTS would send
        // a notice, which ends up in the server's log.)
        let exists: bool = conn
            .session()
            .query_one("SELECT to_regclass('pg_temp.prune_keep') IS NOT NULL", &[])?
            .try_get(0)?;
        conn.client.batch_execute(if exists {
            "TRUNCATE prune_keep"
        } else {
            "CREATE TEMP TABLE prune_keep (id BIGINT PRIMARY KEY)"
        })?;
        let kept = conn.session().execute(
            &format!(
                "INSERT INTO prune_keep (id)
                 SELECT max(id) FROM history
                 WHERE time_ms < $1 AND type IN ({STATE_TYPES})
                 GROUP BY cluster, type, grp, resource, system"
            ),
            &[&cut_ms],
        )?;
        conn.client.batch_execute("ANALYZE prune_keep")?;
        let old: i64 = conn
            .session()
            .query_one(
                "SELECT count(*) FROM history WHERE time_ms < $1",
                &[&cut_ms],
            )?
            .try_get(0)?;
        let total = (old as u64).saturating_sub(kept);
        let (mut removed, mut bytes) = (0u64, 0u64);
        loop {
            let row = conn
                .session()
                .query_one(DELETE_BATCH, &[&cut_ms, &PRUNE_BATCH])?;
            let (n, size): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            removed += n as u64;
            bytes += size as u64;
            progress(Progress {
                done: removed,
                total,
            });
            if n == 0 {
                break;
            }
        }
        let (gaps, alerts, audit) = conn.transaction(|tx| {
            let gaps = tx.execute("DELETE FROM gaps WHERE time_ms < $1", &[&cut_ms])?;
            // Checkpoints: the newest of each cluster before the cut-off
            // stays, the base its state at the cut-off is rebuilt from.
            tx.execute(
                "DELETE FROM checkpoints WHERE time_ms < $1
                 AND (cluster, epoch, seq) NOT IN (
                     SELECT DISTINCT ON (cluster) cluster, epoch, seq FROM checkpoints
                     WHERE time_ms < $1 ORDER BY cluster, time_ms DESC, epoch DESC, seq DESC)",
                &[&cut_ms],
            )?;
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = CASE
                     WHEN settings.value::bigint < excluded.value::bigint
                     THEN excluded.value ELSE settings.value END",
                &[&crate::HISTORY_PRUNED_BEFORE, &cut_ms.to_string()],
            )?;
            let alerts = tx.execute("DELETE FROM alerts WHERE cleared_ms < $1", &[&cut_ms])?
                + tx.execute(
                    "DELETE FROM alert_deliveries WHERE time_ms < $1",
                    &[&cut_ms],
                )?;
            let audit = match audit_cut_ms {
                Some(cut) => {
                    tx.execute("DELETE FROM operations WHERE requested_ms < $1", &[&cut])?
                        + tx.execute("DELETE FROM access_log WHERE time_ms < $1", &[&cut])?
                }
                None => 0,
            };
            Ok((gaps, alerts, audit))
        })?;
        conn.client.batch_execute("TRUNCATE prune_keep")?;
        if removed > 0 {
            // Makes the space reusable now rather than at autovacuum's
            // next visit. Not in a transaction (VACUUM cannot be).
            conn.client.batch_execute("VACUUM (ANALYZE) history")?;
        }
        Ok(PruneReport {
            history_removed: removed,
            history_kept: kept,
            gaps_removed: gaps,
            audit_removed: audit,
            alerts_removed: alerts,
            bytes_freed: bytes,
            took: started.elapsed(),
        })
    }
}
