//! Keeping the database safe and small: online backup, verification,
//! restore, and pruning old history.
//!
//! - **Backup** is `VACUUM INTO` a new file: one read transaction, so the
//!   copy is consistent at one moment while the server keeps writing (WAL
//!   readers do not block the writer), and compact. The copy is written
//!   beside its destination, verified, then renamed into place.
//! - **Verification** opens a file read-only and checks what a restore
//!   needs: an SQLite file, `PRAGMA integrity_check`, a schema version
//!   this build knows, Haven's tables.
//! - **Restore** copies a verified backup into a data directory beside the
//!   current database, verifies the copy, and only then moves the current
//!   database aside (kept, named `haven.db.before-restore-TIME`) and the
//!   copy into place.
//! - **Prune** removes history older than a cut-off in small
//!   transactions (the server's writer waits at most one batch), keeping
//!   for every object the last state change before the cut-off, so each
//!   object's state at the cut-off is still known.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{schema, SqliteStore};
use crate::{Maintenance, StoreError, PRUNE_BATCH, STATE_TYPES};
pub use crate::{Progress, PruneReport};

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// What verification found in it.
    pub verified: Verified,
    /// How long it took.
    pub took: Duration,
}

/// What verification found in a database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its schema version (never newer than this build's).
    pub schema_version: u32,
    /// Rows of history.
    pub history_rows: u64,
    /// Audited operations.
    pub operations: u64,
    /// Managed clusters.
    pub clusters: u64,
    /// The newest event time in the history (ms), if any.
    pub newest_ms: Option<i64>,
}

impl SqliteStore {
    /// Writes a consistent copy of the whole database to `dest` (which
    /// must not exist), while others keep writing; calls `progress` with
    /// bytes written about every 200 ms (from another thread). The copy is
    /// verified before it takes its name.
    pub fn backup_to(
        &self,
        dest: &Path,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<BackupReport, StoreError> {
        let started = Instant::now();
        if dest.exists() {
            return Err(StoreError::Maintenance(format!(
                "{} exists already: choose a new file name (a backup never overwrites)",
                dest.display()
            )));
        }
        let partial = with_suffix(dest, ".partial");
        let _ = std::fs::remove_file(&partial);
        let (page_size, pages, free): (i64, i64, i64) = (
            self.conn
                .pragma_query_value(None, "page_size", |r| r.get(0))?,
            self.conn
                .pragma_query_value(None, "page_count", |r| r.get(0))?,
            self.conn
                .pragma_query_value(None, "freelist_count", |r| r.get(0))?,
        );
        let total = ((pages - free).max(0) * page_size) as u64;
        let done = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let written = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                    progress(Progress {
                        done: written,
                        total,
                    });
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let result = self
                .conn
                .execute("VACUUM INTO ?1", params![partial.to_string_lossy()]);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            result
        });
        if let Err(e) = result {
            let _ = std::fs::remove_file(&partial);
            return Err(StoreError::Maintenance(format!(
                "cannot write the backup {}: {e}",
                partial.display()
            )));
        }
        let verified = match verify(&partial) {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        private(&partial)?;
        std::fs::rename(&partial, dest).map_err(|e| io(dest, e))?;
        sync_dir(dest);
        let bytes = std::fs::metadata(dest).map_err(|e| io(dest, e))?.len();
        progress(Progress { done: bytes, total });
        Ok(BackupReport {
            path: dest.to_path_buf(),
            bytes,
            verified,
            took: started.elapsed(),
        })
    }

    /// Removes history, and gaps, older than `cut_ms` — except, for every
    /// object, the last state change before it — and the audit
    /// (operations, access log) older than `audit_cut_ms`. Works in small
    /// transactions; calls `progress` with rows removed.
    pub fn prune(
        &mut self,
        cut_ms: i64,
        audit_cut_ms: Option<i64>,
        progress: &dyn Fn(Progress),
    ) -> Result<PruneReport, StoreError> {
        let started = Instant::now();
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        let free_before: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        // What must stay: the newest state change of each object before
        // the cut-off. One read of the old rows, kept in a temporary table.
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune_keep (id INTEGER PRIMARY KEY);
             DELETE FROM temp.prune_keep;",
        )?;
        let kept = self.conn.execute(
            &format!(
                "INSERT INTO temp.prune_keep (id)
                 SELECT max(id) FROM history
                 WHERE time_ms < ?1 AND type IN ({STATE_TYPES})
                 GROUP BY cluster, type, grp, resource, system"
            ),
            params![cut_ms],
        )? as u64;
        let old: i64 = self.conn.query_row(
            "SELECT count(*) FROM history WHERE time_ms < ?1",
            params![cut_ms],
            |r| r.get(0),
        )?;
        let total = (old as u64).saturating_sub(kept);
        let mut removed = 0u64;
        loop {
            let tx = self.write_tx()?;
            let n = tx.execute(
                "DELETE FROM history WHERE id IN (
                     SELECT id FROM history
                     WHERE time_ms < ?1 AND id NOT IN (SELECT id FROM temp.prune_keep)
                     LIMIT ?2)",
                params![cut_ms, PRUNE_BATCH],
            )? as u64;
            tx.commit()?;
            removed += n;
            progress(Progress {
                done: removed,
                total,
            });
            if n == 0 {
                break;
            }
        }
        self.conn.execute("DELETE FROM temp.prune_keep", [])?;
        let tx = self.write_tx()?;
        let gaps = tx.execute("DELETE FROM gaps WHERE time_ms < ?1", params![cut_ms])? as u64;
        // Checkpoints: the newest of each cluster before the cut-off stays,
        // the base its state at the cut-off is rebuilt from.
        tx.execute(
            "DELETE FROM checkpoints WHERE time_ms < ?1 AND rowid NOT IN (
                 SELECT (SELECT rowid FROM checkpoints AS c
                         WHERE c.cluster = k.cluster AND c.time_ms < ?1
                         ORDER BY time_ms DESC, epoch DESC, seq DESC LIMIT 1)
                 FROM (SELECT DISTINCT cluster FROM checkpoints WHERE time_ms < ?1) AS k)",
            params![cut_ms],
        )?;
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = CASE
                 WHEN CAST(settings.value AS INTEGER) < CAST(excluded.value AS INTEGER)
                 THEN excluded.value ELSE settings.value END",
            params![crate::HISTORY_PRUNED_BEFORE, cut_ms.to_string()],
        )?;
        let alerts = (tx.execute("DELETE FROM alerts WHERE cleared_ms < ?1", params![cut_ms])?
            + tx.execute(
                "DELETE FROM alert_deliveries WHERE time_ms < ?1",
                params![cut_ms],
            )?) as u64;
        let audit = match audit_cut_ms {
            Some(cut) => {
                (tx.execute(
                    "DELETE FROM operations WHERE requested_ms < ?1",
                    params![cut],
                )? + tx.execute("DELETE FROM access_log WHERE time_ms < ?1", params![cut])?)
                    as u64
            }
            None => 0,
        };
        tx.commit()?;
        let free_after: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        Ok(PruneReport {
            history_removed: removed,
            history_kept: kept,
            gaps_removed: gaps,
            audit_removed: audit,
            alerts_removed: alerts,
            bytes_freed: ((free_after - free_before).max(0) * page_size) as u64,
            took: started.elapsed(),
        })
    }
}

impl Maintenance for SqliteStore {
    fn prune(
        &mut self,
        cut_ms: i64,
        audit_cut_ms: Option<i64>,
        progress: &dyn Fn(Progress),
    ) -> Result<PruneReport, StoreError> {
        // The inherent method above (inherent methods win over the trait's
        // of the same name, so this is not a recursion).
        SqliteStore::prune(self, cut_ms, audit_cut_ms, progress)
    }
}

/// Checks that `path` is a sound Haven database this build can use,
/// without changing it.
pub fn verify(path: &Path) -> Result<Verified, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::at(path, e))?;
    let bad = |problem: String| {
        StoreError::Maintenance(format!(
            "{} is not a usable Haven database: {problem}",
            path.display()
        ))
    };
    let damaged = |e: rusqlite::Error| {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
            StoreError::at(path, e)
        } else {
            bad(format!("it is truncated or corrupt ({e})"))
        }
    };
    let version = schema::version(&conn).map_err(damaged)?;
    schema::check_not_newer(version)?;
    if version == 0 {
        return Err(bad(
            "it has no Haven schema (an empty or foreign SQLite file)".into(),
        ));
    }
    let check: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(damaged)?;
    if check != "ok" {
        return Err(bad(format!("SQLite's integrity check failed: {check}")));
    }
    let count = |table: &str| -> Result<u64, StoreError> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n as u64)
        .map_err(|e| bad(format!("table {table}: {e}")))
    };
    Ok(Verified {
        schema_version: version,
        history_rows: count("history")?,
        operations: count("operations")?,
        clusters: count("clusters")?,
        newest_ms: conn
            .query_row("SELECT max(time_ms) FROM history", [], |r| r.get(0))
            .optional()
            .map_err(|e| bad(e.to_string()))?
            .flatten(),
    })
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// What verification found in the restored database.
    pub verified: Verified,
    /// Where the database that was there before now is (if there was one).
    pub previous: Option<PathBuf>,
}

/// Restores the backup `source` as the database `db` (the server using it
/// must be stopped). The current database is kept beside it until the
/// restored copy is verified, then renamed `DB.before-restore-TIME`.
pub fn restore(
    source: &Path,
    db: &Path,
    progress: &dyn Fn(Progress),
) -> Result<RestoreReport, StoreError> {
    let expected = verify(source)?;
    let incoming = with_suffix(db, ".restoring");
    let _ = std::fs::remove_file(&incoming);
    copy_with_progress(source, &incoming, progress)?;
    private(&incoming)?;
    let verified = match verify(&incoming) {
        Ok(v) if v == expected => v,
        Ok(v) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(StoreError::Maintenance(format!(
                "the copy of {} differs from it after writing ({v:?} vs {expected:?}); the database was not changed",
                source.display()
            )));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(e);
        }
    };
    let previous = if db.exists() {
        let stamp = crate::sqlite::maintenance::stamp();
        let aside = with_suffix(db, &format!(".before-restore-{stamp}"));
        // A consistent single file first: fold the WAL into it.
        if let Ok(conn) = Connection::open(db) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        std::fs::rename(db, &aside).map_err(|e| io(db, e))?;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(db, suffix));
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&incoming, db).map_err(|e| io(db, e))?;
    sync_dir(db);
    Ok(RestoreReport { verified, previous })
}

fn copy_with_progress(
    from: &Path,
    to: &Path,
    progress: &dyn Fn(Progress),
) -> Result<(), StoreError> {
    use std::io::{Read, Write};
    let mut input = std::fs::File::open(from).map_err(|e| io(from, e))?;
    let total = input.metadata().map_err(|e| io(from, e))?.len();
    let mut output = std::fs::File::create(to).map_err(|e| io(to, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    let mut last = Instant::now();
    loop {
        let n = input.read(&mut buf).map_err(|e| io(from, e))?;
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n]).map_err(|e| io(to, e))?;
        done += n as u64;
        if last.elapsed() >= Duration::from_millis(200) {
            progress(Progress { done, total });
            last = Instant::now();
        }
    }
    output.sync_all().map_err(|e| io(to, e))?;
    progress(Progress { done, total });
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(path, e))?;
    }
    Ok(())
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let _ = d.sync_all();
        }
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) for file names.
pub fn stamp() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let c = haven_model::clock::civil(ms);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}
