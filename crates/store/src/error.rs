//! What can go wrong with the database, each case saying what to do next.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// An error of the store. Messages name the file or row, the problem and
/// the fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be created or opened.
    #[error(
        "cannot open database {}: {source}; check that the data directory exists and this user may write to it",
        path.display()
    )]
    Io {
        /// The database file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The file exists but is not an SQLite database (or its header is
    /// damaged).
    #[error(
        "{} is not a haven database (or it is damaged): point haven at its own data directory, or restore a backup",
        path.display()
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },

    /// The database was written by a newer Haven. Nothing was changed.
    #[error("schema version {found} is newer than this haven (knows {known}): upgrade haven or restore a backup")]
    TooNew {
        /// The version in the file.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },

    /// Another process held the database for longer than the busy timeout.
    #[error("the database is locked by another process: make sure only one haven server uses this data directory")]
    Locked(#[source] rusqlite::Error),

    /// The file system did not accept write-ahead logging.
    #[error(
        "cannot switch {} to write-ahead logging (journal mode stays {mode:?}): put the data directory on a local file system",
        path.display()
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },

    /// A migration script failed; the database stays at the version before
    /// it.
    #[error("upgrading the database to schema version {version} failed: {source}; the database is unchanged at version {}, restore a backup if this repeats", version - 1)]
    Migration {
        /// The version the script would have made.
        version: u32,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// A stored row cannot be read back.
    #[error("row {id} of table {table} cannot be read ({problem}): it was written by a newer haven or the file is damaged; restore a backup")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id (or the cluster's name for keyed tables).
        id: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A number does not fit in a database integer (64-bit signed).
    #[error("{what} {value} is too large to store (the limit is {}): the engine sent a number out of range", i64::MAX)]
    OutOfRange {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u64,
    },

    /// [`Store::finish_operation`](crate::Store::finish_operation) named an
    /// operation that was never recorded.
    #[error(
        "no operation with id {0} is recorded: finish only ids that insert_operation returned"
    )]
    UnknownOperation(i64),

    /// A value could not be turned into JSON for storage.
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        /// What was being stored.
        what: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },

    /// A backup, restore or prune could not be done; the message says
    /// what was (not) changed and what to do.
    #[error("{0}")]
    Maintenance(String),

    /// Any other database error.
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),

    /// The PostgreSQL URL cannot be used. The message never repeats the
    /// URL, which may hold a password.
    #[error("the PostgreSQL URL is not usable: {problem}")]
    PgUrl {
        /// What is wrong with it.
        problem: String,
    },

    /// The PostgreSQL server could not be reached, or did not let haven
    /// in.
    #[error("cannot connect to PostgreSQL database {target}: {}; check the URL's host, port and database, that the server is running and reachable from here, that its pg_hba.conf admits this user from this host, and the password", pg_text(source))]
    PgConnect {
        /// Where: `host:port/database as user` (never the password).
        target: String,
        /// What the client library said.
        #[source]
        source: postgres::Error,
    },

    /// A PostgreSQL migration script failed; the database stays at the
    /// version before it.
    #[error("upgrading PostgreSQL database {target} to schema version {version} failed: {}; the database is unchanged at version {}; check that this user owns the database (or may create tables in its schema), and restore a backup if this repeats", pg_text(source), version - 1)]
    PgMigration {
        /// Where: `host:port/database as user`.
        target: String,
        /// The version the script would have made.
        version: u32,
        /// What PostgreSQL said.
        #[source]
        source: postgres::Error,
    },

    /// Any other PostgreSQL error: a statement failed, or the connection
    /// was lost (the store reconnects at its next call).
    #[error("PostgreSQL error: {}{}", pg_text(.0), pg_hint(.0))]
    Postgres(#[source] postgres::Error),

    /// A write from a server that is no longer the active one of its group
    /// (its lease passed to another): refused by the database, nothing of
    /// it stored.
    #[error("refused: {0}")]
    Fenced(String),
}

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) if db.code().code() == crate::postgres::FENCED_CODE => {
                StoreError::Fenced(db.message().to_owned())
            }
            _ => StoreError::Postgres(err),
        }
    }
}

/// What to check after a PostgreSQL error, if it is about the connection
/// rather than a statement.
fn pg_hint(err: &postgres::Error) -> &'static str {
    let fatal = err.as_db_error().is_some_and(|db| db.severity() == "FATAL");
    let io = std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>());
    if err.is_closed() || fatal || io {
        "; the connection to the database was lost: check that the PostgreSQL server is running (haven reconnects at its next call)"
    } else {
        ""
    }
}

/// The whole of a PostgreSQL error: the client library's `Display` names
/// only the kind ("db error"), the server's words are in its source.
pub(crate) fn pg_text(err: &postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str("; ");
            text.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            text.push_str("; hint: ");
            text.push_str(hint);
        }
        return text;
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<rusqlite::Error> for StoreError {
    /// Sorts SQLite's errors into the cases a user can act on.
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked(err),
            _ => StoreError::Sqlite(err),
        }
    }
}

impl StoreError {
    /// Like `From`, naming the file for the errors that are about it.
    pub(crate) fn at(path: &std::path::Path, err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
                path: path.to_path_buf(),
            },
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
                StoreError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(err),
                }
            }
            _ => err.into(),
        }
    }
}
