//! [`AlertStore`] in PostgreSQL, with SQLite's behaviour
//! (`sqlite/alerts.rs`): the same upsert rules, filters and orders. A
//! batch of alerts is one transaction; the partial unique index
//! `alerts_one_open` refuses a second open alert of one key.

use postgres::Row;

use super::{from_name, from_sql, sql_limit, PgStore, Select};
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
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (id) DO UPDATE SET
        severity = excluded.severity,
        message = excluded.message,
        cleared_ms = excluded.cleared_ms,
        flapping = excluded.flapping,
        acknowledged_ms = CASE WHEN alerts.acknowledged_by IS NULL
                               THEN excluded.acknowledged_ms ELSE alerts.acknowledged_ms END,
        acknowledged_by = COALESCE(alerts.acknowledged_by, excluded.acknowledged_by)";

/// An `alerts` row, selected as [`ALERT_COLUMNS`].
fn alert_of(row: &Row) -> Result<AlertRecord, StoreError> {
    let id: i64 = row.try_get(0)?;
    let severity: &str = row.try_get(6)?;
    Ok(AlertRecord {
        id,
        cluster: row.try_get(1)?,
        kind: row.try_get(2)?,
        object: row.try_get(3)?,
        system: row.try_get(4)?,
        service_group: row.try_get(5)?,
        severity: from_name("alerts", id, "severity", severity, AlertSeverity::parse)?,
        message: row.try_get(7)?,
        raised_ms: row.try_get(8)?,
        cleared_ms: row.try_get(9)?,
        acknowledged_by: row.try_get(10)?,
        acknowledged_ms: row.try_get(11)?,
        flapping: row.try_get(12)?,
    })
}

impl AlertStore for PgStore {
    fn save_alerts(&mut self, alerts: &[AlertRecord]) -> Result<(), StoreError> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.conn()?.transaction(|tx| {
            for a in alerts {
                tx.execute(
                    UPSERT_ALERT,
                    &[
                        &a.id,
                        &a.cluster,
                        &a.kind,
                        &a.object,
                        &a.system,
                        &a.service_group,
                        &a.severity.as_str(),
                        &a.message,
                        &a.raised_ms,
                        &a.cleared_ms,
                        &a.acknowledged_by,
                        &a.acknowledged_ms,
                        &a.flapping,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
        let mut select = Select::from(&format!("SELECT {ALERT_COLUMNS} FROM alerts"));
        select.filter_opt("id = ?", &q.id);
        select.filter_opt("(cleared_ms IS NULL) = ?", &q.open);
        select.filter_opt("cluster = ?", &q.cluster);
        select.filter_in("cluster", &q.clusters);
        select.filter_opt("(raised_ms >= ? OR cleared_ms >= ?)", &q.since_ms);
        let limit = sql_limit(q.limit);
        select.run(
            self,
            "ORDER BY raised_ms DESC, id DESC",
            Some(&limit),
            alert_of,
        )
    }

    fn max_alert_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()?
            .session()
            .query_one("SELECT coalesce(max(id), 0)::bigint FROM alerts", &[])?
            .try_get(0)?)
    }

    fn acknowledge_alert(
        &mut self,
        id: i64,
        user: &str,
        at_ms: i64,
    ) -> Result<Option<AlertRecord>, StoreError> {
        self.conn()?.transaction(|tx| {
            tx.execute(
                "UPDATE alerts SET acknowledged_by = $2, acknowledged_ms = $3
                 WHERE id = $1 AND acknowledged_by IS NULL",
                &[&id, &user, &at_ms],
            )?;
            tx.query_opt(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"),
                &[&id],
            )?
            .map(|row| alert_of(&row))
            .transpose()
        })
    }

    fn insert_deliveries(&mut self, rows: &[NewDelivery]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.conn()?.transaction(|tx| {
            for r in rows {
                tx.execute(
                    "INSERT INTO alert_deliveries
                        (alert_id, channel, event, attempt, outcome, error, time_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &r.alert_id,
                        &r.channel,
                        &r.event,
                        &i64::from(r.attempt),
                        &r.outcome.as_str(),
                        &r.error,
                        &r.time_ms,
                    ],
                )?;
            }
            Ok(())
        })
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
            self,
            "ORDER BY time_ms DESC, id DESC",
            Some(&limit),
            |row| {
                let id: i64 = row.try_get(0)?;
                let outcome: &str = row.try_get(5)?;
                Ok(DeliveryRecord {
                    id,
                    alert_id: row.try_get(1)?,
                    channel: row.try_get(2)?,
                    event: row.try_get(3)?,
                    attempt: from_sql("alert_deliveries", id, row.try_get(4)?)?,
                    outcome: from_name(
                        "alert_deliveries",
                        id,
                        "outcome",
                        outcome,
                        DeliveryOutcome::parse,
                    )?,
                    error: row.try_get(6)?,
                    time_ms: row.try_get(7)?,
                })
            },
        )
    }
}
