//! [`AlertStore`] in SQLite: the `alerts` and `alert_deliveries` tables
//! (schema V4). A batch of alerts is one `BEGIN IMMEDIATE` transaction;
//! the partial unique index `alerts_one_open` refuses a second open alert
//! of one key, which fails the whole batch.

use rusqlite::{params, OptionalExtension, Row};

use super::{from_name, sql_limit, Select, SqliteStore};
use crate::{
    AlertQuery, AlertRecord, AlertSeverity, AlertStore, DeliveryOutcome, DeliveryQuery,
    DeliveryRecord, NewDelivery, StoreError,
};

/// The columns [`alert_of`] reads, in its order.
const ALERT_COLUMNS: &str = "id, cluster, kind, object, system, grp, severity, message, \
    raised_ms, cleared_ms, acknowledged_by, acknowledged_ms, flapping";

/// Adds an alert or updates the one of that id; an acknowledgement once
/// stored stays (both of its columns together).
const UPSERT_ALERT: &str = "INSERT INTO alerts
    (id, cluster, kind, object, system, grp, severity, message, raised_ms, cleared_ms,
     acknowledged_by, acknowledged_ms, flapping)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    ON CONFLICT (id) DO UPDATE SET
        severity = excluded.severity,
        message = excluded.message,
        cleared_ms = excluded.cleared_ms,
        flapping = excluded.flapping,
        acknowledged_ms = CASE WHEN alerts.acknowledged_by IS NULL
                               THEN excluded.acknowledged_ms ELSE alerts.acknowledged_ms END,
        acknowledged_by = IFNULL(alerts.acknowledged_by, excluded.acknowledged_by)";

/// An `alerts` row, selected as [`ALERT_COLUMNS`].
fn alert_of(row: &Row<'_>) -> Result<AlertRecord, StoreError> {
    let id: i64 = row.get(0)?;
    let severity: String = row.get(6)?;
    Ok(AlertRecord {
        id,
        cluster: row.get(1)?,
        kind: row.get(2)?,
        object: row.get(3)?,
        system: row.get(4)?,
        service_group: row.get(5)?,
        severity: from_name("alerts", id, "severity", &severity, AlertSeverity::parse)?,
        message: row.get(7)?,
        raised_ms: row.get(8)?,
        cleared_ms: row.get(9)?,
        acknowledged_by: row.get(10)?,
        acknowledged_ms: row.get(11)?,
        flapping: row.get(12)?,
    })
}

impl AlertStore for SqliteStore {
    fn save_alerts(&mut self, alerts: &[AlertRecord]) -> Result<(), StoreError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        {
            let mut upsert = tx.prepare_cached(UPSERT_ALERT)?;
            for a in alerts {
                upsert.execute(params![
                    a.id,
                    a.cluster,
                    a.kind,
                    a.object,
                    a.system,
                    a.service_group,
                    a.severity.as_str(),
                    a.message,
                    a.raised_ms,
                    a.cleared_ms,
                    a.acknowledged_by,
                    a.acknowledged_ms,
                    a.flapping,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
        let mut select = Select::from(&format!("SELECT {ALERT_COLUMNS} FROM alerts"));
        select.filter_opt("id = ?", &q.id);
        match q.open {
            Some(true) => select.condition("cleared_ms IS NULL"),
            Some(false) => select.condition("cleared_ms IS NOT NULL"),
            None => {}
        }
        select.filter_opt("cluster = ?", &q.cluster);
        select.filter_in("cluster", &q.clusters);
        select.filter_opt("(raised_ms >= ? OR cleared_ms >= ?)", &q.since_ms);
        let limit = sql_limit(q.limit);
        select.run(
            &self.conn,
            "ORDER BY raised_ms DESC, id DESC",
            Some(&limit),
            alert_of,
        )
    }

    fn max_alert_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT IFNULL(max(id), 0) FROM alerts")?
            .query_row([], |row| row.get(0))?)
    }

    fn acknowledge_alert(
        &mut self,
        id: i64,
        user: &str,
        at_ms: i64,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let tx = self.write_tx()?;
        tx.prepare_cached(
            "UPDATE alerts SET acknowledged_by = ?2, acknowledged_ms = ?3
             WHERE id = ?1 AND acknowledged_by IS NULL",
        )?
        .execute(params![id, user, at_ms])?;
        let stored = {
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?;
            stmt.query_row([id], |row| Ok(alert_of(row)))
                .optional()?
                .transpose()?
        };
        tx.commit()?;
        Ok(stored)
    }

    fn insert_deliveries(&mut self, rows: &[NewDelivery]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO alert_deliveries
                    (alert_id, channel, event, attempt, outcome, error, time_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in rows {
                insert.execute(params![
                    r.alert_id,
                    r.channel,
                    r.event,
                    r.attempt,
                    r.outcome.as_str(),
                    r.error,
                    r.time_ms,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        let outcome = q.outcome.map(DeliveryOutcome::as_str);
        let mut select = Select::from(
            "SELECT id, alert_id, channel, event, attempt, outcome, error, time_ms
             FROM alert_deliveries",
        );
        select.filter_opt("alert_id = ?", &q.alert_id);
        select.filter_opt("channel = ?", &q.channel);
        select.filter_opt("outcome = ?", &outcome);
        let limit = sql_limit(q.limit);
        select.run(
            &self.conn,
            "ORDER BY time_ms DESC, id DESC",
            Some(&limit),
            |row| {
                let id: i64 = row.get(0)?;
                let outcome: String = row.get(5)?;
                Ok(DeliveryRecord {
                    id,
                    alert_id: row.get(1)?,
                    channel: row.get(2)?,
                    event: row.get(3)?,
                    attempt: row.get(4)?,
                    outcome: from_name(
                        "alert_deliveries",
                        id,
                        "outcome",
                        &outcome,
                        DeliveryOutcome::parse,
                    )?,
                    error: row.get(6)?,
                    time_ms: row.get(7)?,
                })
            },
        )
    }
}
