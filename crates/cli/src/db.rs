//! `haven db`: backup, restore, verify and prune of the management
//! database, on the server host (the files are opened directly; a running
//! server may keep running for backup and prune, not for restore).
//!
//! With a PostgreSQL database (`--database-url`, `HAVEN_DATABASE_URL`, or
//! `[database] url` in `--config`), prune works the same; backup and
//! restore are refused: PostgreSQL's own tools do them.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use haven_server::config::{Database, ServerConfig, DATABASE_URL_ENV};
use haven_server::maintenance::PG_BACKUP_REFUSAL;
use haven_store::maintenance::{self, Progress};
use haven_store::SqliteStore;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Write a consistent, verified copy of the database to FILE; the server
    /// may keep running (and writing) meanwhile.
    Backup {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        place: Place,
    },
    /// Replace the database with the backup FILE. The server must be
    /// stopped; the database it replaces is kept beside it.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        place: Place,
    },
    /// Check that FILE is a sound Haven database this version can use.
    Verify {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Remove history older than a cut-off, keeping each object's last
    /// state change before it; the server may keep running.
    Prune {
        /// Age of the oldest history to keep: 90d, 12h, 2w...
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Duration,
        /// Also remove audited operations and access log entries older than
        /// this (default: keep them).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        audit_older_than: Option<Duration>,
        #[command(flatten)]
        place: Place,
    },
}

/// Which database: a data directory, or the one a configuration names.
#[derive(Args)]
pub struct Place {
    /// The server's data directory (default: from --config, else haven-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The server's haven.toml, to find its data directory (or its
    /// PostgreSQL database, `[database] url`).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// A PostgreSQL database instead of the SQLite file:
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE. Wins over --config's
    /// `[database] url`.
    #[arg(long, value_name = "URL", env = DATABASE_URL_ENV, hide_env_values = true)]
    database_url: Option<String>,
}

impl Place {
    /// The server's configuration as this command sees it: --config's (or
    /// the defaults), with --data-dir applied.
    fn config(&self) -> anyhow::Result<ServerConfig> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::load(path)?,
            None => ServerConfig::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
        Ok(config)
    }

    /// Where the database is: --database-url (or its environment
    /// variable), else what the configuration says, as the server decides.
    fn database(&self) -> anyhow::Result<Database> {
        Ok(self.config()?.database_with_env(self.database_url.clone()))
    }

    /// The SQLite file, for what only works on it (PostgreSQL is refused);
    /// with `must_exist`, it must be there.
    fn sqlite_file(&self, must_exist: bool) -> anyhow::Result<PathBuf> {
        match self.database()? {
            Database::Postgres(_) => bail!("{PG_BACKUP_REFUSAL}; nothing was done"),
            Database::Sqlite(db) if must_exist => there(db),
            Database::Sqlite(db) => Ok(db),
        }
    }

    /// The database, which must exist (for SQLite: its file).
    fn existing(&self) -> anyhow::Result<Database> {
        match self.database()? {
            Database::Sqlite(db) => there(db).map(Database::Sqlite),
            postgres => Ok(postgres),
        }
    }
}

fn there(db: PathBuf) -> anyhow::Result<PathBuf> {
    if !db.exists() {
        bail!(
            "no database at {}: give the server's --data-dir or --config",
            db.display()
        );
    }
    Ok(db)
}

/// `90d`, `12h`, `30m`, `2w`, `45s`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not an age (e.g. 90d, 12h, 2w)"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{text}`: use s, m, h, d or w (e.g. 90d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A progress line on a terminal (nothing otherwise).
fn bar(label: &'static str, bytes: bool) -> impl Fn(Progress) + Sync {
    let tty = std::io::stderr().is_terminal();
    move |p: Progress| {
        if !tty {
            return;
        }
        let pct = (p.done.min(p.total) * 100)
            .checked_div(p.total)
            .unwrap_or(0) as usize;
        let filled = pct / 5;
        let (done, total) = if bytes {
            (human(p.done), human(p.total))
        } else {
            (p.done.to_string(), p.total.to_string())
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{label} [{}{}] {pct:>3}% {done} of {total}   ",
            "#".repeat(filled),
            " ".repeat(20 - filled)
        );
        let _ = err.flush();
    }
}

fn end_bar() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

pub fn run(cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Backup { file, place } => {
            let store = SqliteStore::open(&place.sqlite_file(true)?)?;
            let report = store.backup_to(&file, &bar("backup", true));
            end_bar();
            let report = report?;
            println!(
                "backup {} written and verified: {}, {} history rows, {} operations, {} clusters, schema version {}, in {:.1} s ({}/s)",
                report.path.display(),
                human(report.bytes),
                report.verified.history_rows,
                report.verified.operations,
                report.verified.clusters,
                report.verified.schema_version,
                report.took.as_secs_f64(),
                human((report.bytes as f64 / report.took.as_secs_f64().max(1e-3)) as u64),
            );
        }
        DbCommand::Restore { file, place } => {
            let db = place.sqlite_file(false)?;
            let dir = db.parent().map(PathBuf::from).unwrap_or_default();
            if let Some(pid) = haven_server::data_dir_in_use(&dir) {
                bail!(
                    "a haven server (pid {pid}) is running on {}: stop it first; nothing was changed",
                    dir.display()
                );
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let report = maintenance::restore(&file, &dir.join("haven.db"), &bar("restore", true));
            end_bar();
            let report = report?;
            println!(
                "restored {} into {}: {} history rows, {} operations, {} clusters, schema version {}",
                file.display(),
                dir.join("haven.db").display(),
                report.verified.history_rows,
                report.verified.operations,
                report.verified.clusters,
                report.verified.schema_version,
            );
            if let Some(previous) = report.previous {
                println!(
                    "the database it replaced is kept as {} (remove it when the server runs well)",
                    previous.display()
                );
            }
        }
        DbCommand::Verify { file } => {
            let v = maintenance::verify(&file)?;
            println!(
                "{} is sound: schema version {}, {} history rows, {} operations, {} clusters{}",
                file.display(),
                v.schema_version,
                v.history_rows,
                v.operations,
                v.clusters,
                v.newest_ms
                    .map(|ms| format!(", newest event at {ms} ms"))
                    .unwrap_or_default()
            );
        }
        DbCommand::Prune {
            older_than,
            audit_older_than,
            place,
        } => {
            let now = haven_server::now_ms();
            let cut = now - older_than.as_millis() as i64;
            let audit_cut = audit_older_than.map(|a| now - a.as_millis() as i64);
            let database = place.existing()?;
            let freed = match database {
                Database::Sqlite(_) => "freed inside the file",
                Database::Postgres(_) => "of rows freed for new history",
            };
            let mut store = haven_server::open_store(&database)?;
            let report = store.prune(cut, audit_cut, &bar("prune", false));
            end_bar();
            let report = report?;
            println!(
                "pruned {database}: {} history rows removed ({} kept as each object's last state before the cut-off), {} gaps, {} audit entries, {} cleared alerts and notification attempts; {} {freed}, in {:.1} s ({:.0} rows/s)",
                report.history_removed,
                report.history_kept,
                report.gaps_removed,
                report.audit_removed,
                report.alerts_removed,
                human(report.bytes_freed),
                report.took.as_secs_f64(),
                report.history_removed as f64 / report.took.as_secs_f64().max(1e-3),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(parse_age("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert!(parse_age("soon").is_err());
        assert!(parse_age("3y").unwrap_err().contains("use s, m, h, d or w"));
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
