//! [`CheckpointStore`] in PostgreSQL, with SQLite's behaviour
//! (`sqlite/checkpoints.rs`).

use haven_model::{Event, EventKind};
use postgres::Row;

use super::{from_json, from_sql, to_json, to_sql, PgStore};
use crate::{Checkpoint, CheckpointStore, StoreError};

/// A `checkpoints` row, selected as `cluster, epoch, time_ms, snapshot`.
fn checkpoint_of(row: &Row) -> Result<Checkpoint, StoreError> {
    let cluster: String = row.try_get(0)?;
    let time_ms: i64 = row.try_get(2)?;
    let snapshot: &str = row.try_get(3)?;
    Ok(Checkpoint {
        epoch: from_sql("checkpoints", &cluster, row.try_get(1)?)?,
        time_ms,
        snapshot: from_json("checkpoints", time_ms, snapshot)?,
        cluster,
    })
}

impl CheckpointStore for PgStore {
    fn save_checkpoints(&mut self, checkpoints: &[Checkpoint]) -> Result<(), StoreError> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        self.conn()?.transaction(|tx| {
            for c in checkpoints {
                tx.execute(
                    "INSERT INTO checkpoints (cluster, epoch, seq, time_ms, snapshot)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (cluster, epoch, seq) DO NOTHING",
                    &[
                        &c.cluster,
                        &to_sql("epoch", c.epoch)?,
                        &to_sql("seq", c.snapshot.seq)?,
                        &c.time_ms,
                        &to_json("snapshot", &c.snapshot)?,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn checkpoints_at(
        &self,
        at_ms: i64,
        clusters: Option<&[String]>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = match clusters {
            // Only the clusters asked for, through the (cluster, time) index.
            Some(only) => self.conn()?.session().query(
                "SELECT DISTINCT ON (cluster) cluster, epoch, time_ms, snapshot FROM checkpoints
                 WHERE time_ms <= $1 AND cluster = ANY($2)
                 ORDER BY cluster, time_ms DESC, epoch DESC, seq DESC",
                &[&at_ms, &only],
            )?,
            None => self.conn()?.session().query(
                "SELECT DISTINCT ON (cluster) cluster, epoch, time_ms, snapshot FROM checkpoints
                 WHERE time_ms <= $1
                 ORDER BY cluster, time_ms DESC, epoch DESC, seq DESC",
                &[&at_ms],
            )?,
        };
        rows.iter().map(checkpoint_of).collect()
    }

    fn checkpoints_between(
        &self,
        cluster: &str,
        after_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = self.conn()?.session().query(
            "SELECT cluster, epoch, time_ms, snapshot FROM checkpoints
             WHERE cluster = $1 AND time_ms > $2 AND time_ms < $3
             ORDER BY time_ms, epoch, seq",
            &[&cluster, &after_ms, &until_ms],
        )?;
        rows.iter().map(checkpoint_of).collect()
    }

    fn events_after(
        &self,
        cluster: &str,
        epoch: u64,
        after_seq: u64,
        until_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = self.conn()?.session().query(
            "SELECT id, seq, time_ms, detail FROM history
             WHERE cluster = $1 AND epoch = $2 AND seq > $3 AND time_ms < $4
             ORDER BY seq",
            &[
                &cluster,
                &to_sql("epoch", epoch)?,
                &to_sql("seq", after_seq)?,
                &until_ms,
            ],
        )?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                let detail: &str = row.try_get(3)?;
                let kind: EventKind = from_json("history", id, detail)?;
                Ok(Event {
                    seq: from_sql("history", id, row.try_get(1)?)?,
                    time_ms: row.try_get(2)?,
                    kind,
                })
            })
            .collect()
    }
}
