//! [`CheckpointStore`] in SQLite: the `checkpoints` table (schema V5) and
//! the reads of `history` a replay needs.

use haven_model::{Event, EventKind};
use rusqlite::{params, Row};

use super::{from_json, from_sql, to_json, to_sql, SqliteStore};
use crate::{Checkpoint, CheckpointStore, StoreError};

/// A `checkpoints` row, selected as `cluster, epoch, time_ms, snapshot`.
fn checkpoint_of(row: &Row<'_>) -> Result<Checkpoint, StoreError> {
    let cluster: String = row.get(0)?;
    let time_ms: i64 = row.get(2)?;
    let snapshot: String = row.get(3)?;
    Ok(Checkpoint {
        epoch: from_sql("checkpoints", &cluster, row.get(1)?)?,
        time_ms,
        snapshot: from_json("checkpoints", time_ms, &snapshot)?,
        cluster,
    })
}

impl CheckpointStore for SqliteStore {
    fn save_checkpoints(&mut self, checkpoints: &[Checkpoint]) -> Result<(), StoreError> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO checkpoints (cluster, epoch, seq, time_ms, snapshot)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (cluster, epoch, seq) DO NOTHING",
            )?;
            for c in checkpoints {
                insert.execute(params![
                    c.cluster,
                    to_sql("epoch", c.epoch)?,
                    to_sql("seq", c.snapshot.seq)?,
                    c.time_ms,
                    to_json("snapshot", &c.snapshot)?,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn checkpoints_at(
        &self,
        at_ms: i64,
        clusters: Option<&[String]>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        if let Some(only) = clusters {
            // A few clusters (time travel to one): one indexed lookup each.
            let mut stmt = self.conn.prepare_cached(
                "SELECT cluster, epoch, time_ms, snapshot FROM checkpoints
                 WHERE cluster = ?1 AND time_ms <= ?2
                 ORDER BY time_ms DESC, epoch DESC, seq DESC LIMIT 1",
            )?;
            let mut sorted: Vec<&String> = only.iter().collect();
            sorted.sort();
            sorted.dedup();
            let mut out = Vec::new();
            for cluster in sorted {
                let mut rows = stmt.query(params![cluster, at_ms])?;
                if let Some(row) = rows.next()? {
                    out.push(checkpoint_of(row)?);
                }
            }
            return Ok(out);
        }
        // The newest of each cluster: a correlated lookup per cluster on
        // the (cluster, time_ms) index.
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.cluster, c.epoch, c.time_ms, c.snapshot
             FROM (SELECT DISTINCT cluster FROM checkpoints) AS k
             JOIN checkpoints AS c ON c.rowid = (
                 SELECT rowid FROM checkpoints
                 WHERE cluster = k.cluster AND time_ms <= ?1
                 ORDER BY time_ms DESC, epoch DESC, seq DESC LIMIT 1)
             ORDER BY c.cluster",
        )?;
        let mut rows = stmt.query(params![at_ms])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(checkpoint_of(row)?);
        }
        Ok(out)
    }

    fn checkpoints_between(
        &self,
        cluster: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cluster, epoch, time_ms, snapshot FROM checkpoints
             WHERE cluster = ?1 AND time_ms > ?2 AND time_ms < ?3
             ORDER BY time_ms, epoch, seq",
        )?;
        let mut rows = stmt.query(params![cluster, after_ms, until_ms])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(checkpoint_of(row)?);
        }
        Ok(out)
    }

    fn events_after(
        &self,
        cluster: &str,
        epoch: u64,
        after_seq: u64,
        until_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, seq, time_ms, detail FROM history
             WHERE cluster = ?1 AND epoch = ?2 AND seq > ?3 AND time_ms < ?4
             ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![
            cluster,
            to_sql("epoch", epoch)?,
            to_sql("seq", after_seq)?,
            until_ms
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let detail: String = row.get(3)?;
            let kind: EventKind = from_json("history", id, &detail)?;
            out.push(Event {
                seq: from_sql("history", id, row.get(1)?)?,
                time_ms: row.get(2)?,
                kind,
            });
        }
        Ok(out)
    }
}
