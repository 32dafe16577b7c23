//! Looking after the database while the server runs: backups (on demand
//! and on a schedule, keeping the newest few) and pruning old history
//! (on demand and by the retention policy), each through its own
//! connection so ingestion goes on.
//!
//! Prune works on both backends (through [`haven_store::Maintenance`]).
//! Backups are of the SQLite file; on PostgreSQL they are refused with
//! [`PG_BACKUP_REFUSAL`] (the database's own tools do them), and the
//! schedule is off.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use haven_store::maintenance::{BackupReport, PruneReport};
use haven_store::SqliteStore;

use crate::config::Database;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{need_server_admin, ApiError, ApiJson};
use crate::auth::Caller;
use crate::Server;

/// Backup files are named `haven-YYYYMMDD-HHMMSS.db`.
const PREFIX: &str = "haven-";

/// Why a backup is refused when the database is PostgreSQL.
pub const PG_BACKUP_REFUSAL: &str = "the database is PostgreSQL: back it up with pg_dump or your \
     PostgreSQL backup (and restore with pg_restore or psql); haven db backup and restore are for \
     the SQLite file";

/// Runs one backup or prune at a time.
#[derive(Default)]
pub struct Busy(AtomicBool);

struct Claim<'a>(&'a AtomicBool);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Busy {
    fn claim(&self) -> Option<Claim<'_>> {
        self.0
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| Claim(&self.0))
    }
}

/// A backup as the API shows it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct BackupInfo {
    pub path: String,
    pub bytes: u64,
    /// When it was written (ms since the epoch).
    pub time_ms: i64,
    /// From verification, when it was just written.
    pub history_rows: Option<u64>,
    pub schema_version: Option<u32>,
    pub took_ms: Option<u64>,
}

/// A prune request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Remove history older than this many days (each object's last state
    /// change before the cut-off stays).
    pub older_than_days: u64,
    /// Remove audited operations and access log entries older than this
    /// many days (default: keep them).
    pub audit_older_than_days: Option<u64>,
}

/// What a prune did.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PruneAnswer {
    pub history_removed: u64,
    pub history_kept: u64,
    pub gaps_removed: u64,
    pub audit_removed: u64,
    /// Cleared alerts and notification attempts.
    pub alerts_removed: u64,
    pub bytes_freed: u64,
    pub took_ms: u64,
}

impl From<PruneReport> for PruneAnswer {
    fn from(r: PruneReport) -> Self {
        PruneAnswer {
            history_removed: r.history_removed,
            history_kept: r.history_kept,
            gaps_removed: r.gaps_removed,
            audit_removed: r.audit_removed,
            alerts_removed: r.alerts_removed,
            bytes_freed: r.bytes_freed,
            took_ms: r.took.as_millis() as u64,
        }
    }
}

const DAY_MS: i64 = 24 * 3600 * 1000;

impl Server {
    /// Takes a backup into the backup directory now, then keeps only the
    /// newest `backup_keep`. Refused ([`PG_BACKUP_REFUSAL`]) on PostgreSQL.
    pub async fn backup_now(self: &Arc<Self>) -> Result<BackupReport, String> {
        let Database::Sqlite(db) = self.database.clone() else {
            return Err(PG_BACKUP_REFUSAL.into());
        };
        let _claim = self
            .maintenance
            .claim()
            .ok_or("a backup or prune is already running; try again when it ends")?;
        let dir = self.config.backup_dir();
        let keep = self.config.database.backup_keep.max(1);
        let report = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let dest = dir.join(format!("{PREFIX}{}.db", haven_store::maintenance::stamp()));
            let store = SqliteStore::open(&db).map_err(|e| e.to_string())?;
            let report = store.backup_to(&dest, &|_| {}).map_err(|e| e.to_string())?;
            rotate(&dir, keep);
            Ok::<_, String>(report)
        })
        .await
        .map_err(|e| e.to_string())??;
        tracing::info!(
            "backup {} written ({} bytes, {} history rows) in {} ms",
            report.path.display(),
            report.bytes,
            report.verified.history_rows,
            report.took.as_millis()
        );
        Ok(report)
    }

    /// Prunes history older than `days` (and the audit older than
    /// `audit_days`).
    pub async fn prune_now(
        self: &Arc<Self>,
        days: u64,
        audit_days: Option<u64>,
    ) -> Result<PruneReport, String> {
        let _claim = self
            .maintenance
            .claim()
            .ok_or("a backup or prune is already running; try again when it ends")?;
        let now = crate::now_ms();
        let cut = now - days as i64 * DAY_MS;
        let audit_cut = audit_days.map(|d| now - d as i64 * DAY_MS);
        let database = self.database.clone();
        let report = tokio::task::spawn_blocking(move || {
            let mut store = crate::open_store(&database).map_err(|e| e.to_string())?;
            store
                .prune(cut, audit_cut, &|_| {})
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        tracing::info!(
            "pruned {} history rows older than {days} days (kept {} last states), {} gaps, {} audit entries; {} bytes freed, in {} ms",
            report.history_removed,
            report.history_kept,
            report.gaps_removed,
            report.audit_removed,
            report.bytes_freed,
            report.took.as_millis()
        );
        Ok(report)
    }

    /// Runs scheduled backups and the retention policy in the background.
    pub fn spawn_maintenance(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let mut settings = self.config.database.clone();
        if settings.backup_every_hours > 0 && self.database.is_postgres() {
            tracing::info!(
                "scheduled backups are off: {PG_BACKUP_REFUSAL} (set [database] backup_every_hours = 0 to say so)"
            );
            settings.backup_every_hours = 0;
        }
        if settings.backup_every_hours == 0
            && settings.retention_days == 0
            && settings.audit_retention_days == 0
        {
            return;
        }
        tokio::spawn(async move {
            let mut last_prune: Option<std::time::Instant> = None;
            // A first look soon after start (a server that was down when a
            // backup was due catches up), then once a minute.
            let mut wait = Duration::from_secs(5);
            loop {
                tokio::time::sleep(wait).await;
                wait = Duration::from_secs(60);
                let Some(server) = me.upgrade() else { return };
                if settings.backup_every_hours > 0 {
                    let due = newest_backup(&server.config.backup_dir()).is_none_or(|ms| {
                        crate::now_ms() - ms >= settings.backup_every_hours as i64 * 3600 * 1000
                    });
                    if due {
                        if let Err(e) = server.backup_now().await {
                            tracing::error!("scheduled backup failed: {e}");
                        }
                    }
                }
                let prune_due =
                    last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(86_400));
                if (settings.retention_days > 0 || settings.audit_retention_days > 0) && prune_due {
                    let days = if settings.retention_days > 0 {
                        settings.retention_days
                    } else {
                        u64::MAX / DAY_MS as u64 / 2
                    };
                    let audit = (settings.audit_retention_days > 0)
                        .then_some(settings.audit_retention_days);
                    match server.prune_now(days, audit).await {
                        Ok(_) => last_prune = Some(std::time::Instant::now()),
                        Err(e) => tracing::error!("retention prune failed: {e}"),
                    }
                }
            }
        });
    }
}

/// The backups in `dir`, newest first: (path, bytes, modified ms).
fn backups(dir: &std::path::Path) -> Vec<(PathBuf, u64, i64)> {
    let mut out: Vec<(PathBuf, u64, i64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.starts_with(PREFIX) && name.ends_with(".db")
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let ms = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis() as i64;
            Some((e.path(), meta.len(), ms))
        })
        .collect();
    // Names carry the time, so they sort like it.
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out
}

fn newest_backup(dir: &std::path::Path) -> Option<i64> {
    backups(dir).first().map(|b| b.2)
}

/// Keeps the newest `keep` backups.
fn rotate(dir: &std::path::Path, keep: usize) {
    for (path, _, _) in backups(dir).into_iter().skip(keep) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("removed old backup {}", path.display()),
            Err(e) => tracing::warn!("cannot remove old backup {}: {e}", path.display()),
        }
    }
}

pub(crate) async fn create_backup(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<(StatusCode, Json<BackupInfo>), ApiError> {
    need_server_admin(&s, &caller)?;
    let report = s
        .backup_now()
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", e))?;
    s.record_access(crate::api::admin_change(
        &caller,
        "backup",
        "",
        Some(report.path.display().to_string()),
    ))
    .await;
    Ok((
        StatusCode::CREATED,
        Json(BackupInfo {
            path: report.path.display().to_string(),
            bytes: report.bytes,
            time_ms: crate::now_ms(),
            history_rows: Some(report.verified.history_rows),
            schema_version: Some(report.verified.schema_version),
            took_ms: Some(report.took.as_millis() as u64),
        }),
    ))
}

pub(crate) async fn list_backups(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Vec<BackupInfo>>, ApiError> {
    need_server_admin(&s, &caller)?;
    Ok(Json(
        backups(&s.config.backup_dir())
            .into_iter()
            .map(|(path, bytes, time_ms)| BackupInfo {
                path: path.display().to_string(),
                bytes,
                time_ms,
                history_rows: None,
                schema_version: None,
                took_ms: None,
            })
            .collect(),
    ))
}

pub(crate) async fn prune(
    State(s): State<Arc<Server>>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<PruneRequest>,
) -> Result<Json<PruneAnswer>, ApiError> {
    need_server_admin(&s, &caller)?;
    if body.older_than_days == 0 {
        return Err(ApiError::bad_request(
            "older_than_days must be at least 1 (pruning everything up to now is never what you want)",
        ));
    }
    let report = s
        .prune_now(body.older_than_days, body.audit_older_than_days)
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", e))?;
    s.record_access(crate::api::admin_change(
        &caller,
        "prune",
        "",
        Some(format!(
            "older than {} days: {} history rows removed",
            body.older_than_days, report.history_removed
        )),
    ))
    .await;
    Ok(Json(report.into()))
}
