//! The authority directory on disk: reading, atomic replacement, locking.
//!
//! A file is replaced by writing a temporary file beside it, syncing it and
//! renaming it over the old one, so a crash leaves either the old or the new
//! content, never a torn key. Keys are created with mode 0600.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::PkiError;

/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files, which are public.
pub(crate) const CERT_MODE: u32 = 0o644;

/// Creates `dir` (and missing parents, mode 0700) if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PkiError::io("create directory", dir, e))
}

/// The content of `path`, or `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("read", path, e)),
    }
}

/// Replaces `path` with `contents` atomically; a newly created file gets `mode`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    // A leftover from a crash may have other permissions; start afresh so `mode` applies.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(PkiError::io("remove", &tmp, e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| PkiError::io("create", &tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io("write", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| PkiError::io("replace", path, e))?;
    // Make the rename itself durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PkiError::io("sync directory", dir, e))
}

/// Holds an exclusive lock on the authority directory until dropped, so two
/// processes starting at once cannot each create a different CA.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Waits for and takes the lock on `dir` (via the file `dir/.lock`).
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, PkiError> {
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(KEY_MODE)
            .open(&path)
            .map_err(|e| PkiError::io("open", &path, e))?;
        file.lock().map_err(|e| PkiError::io("lock", &path, e))?;
        Ok(DirLock { _file: file })
    }
}
