//! The spool: a bounded, durable, append-only queue of engine events on disk.
//!
//! The connector appends every batch it reads from the engine and drops it
//! once the management server acknowledges it. While the server is
//! unreachable the backlog grows here; on reconnect it is replayed in order,
//! so the server's history has no gap and no duplicate. When the spool is
//! full, [`Spool::append`] says so ([`Appended::Full`]) instead of dropping
//! anything: the caller records a gap and starts over.
//!
//! # Files in the spool directory
//! - `spool-NNNNNNNN.log`, the segments. Each holds records
//!   `[u32 length][u32 crc32(length)][u32 crc32(payload)][payload]`
//!   (little-endian), one batch per record; the payload is the JSON
//!   `[epoch, [event, ...]]`. A new segment starts when the current one
//!   would grow past the segment size (8 MiB by default).
//! - `ack`, JSON, replaced atomically (write `ack.tmp`, fsync, rename,
//!   fsync the directory): the acknowledged point, `last()` as of that
//!   write, and the lowest segment still live.
//! - `lock`, locked while a [`Spool`] is open, so two connectors never
//!   share a spool.
//!
//! # Invariants
//! - Records are in strictly increasing `(epoch, seq)` order, across
//!   segments too; one record holds consecutive seqs of one epoch.
//! - `append` returns only after the record is written and fsync'd, and
//!   writes the next one only after that. So a crash can tear only the last
//!   record of the last segment: `open` truncates it away. A damaged record
//!   anywhere else (one that valid data follows) is corruption: reported with
//!   file and offset, never skipped.
//! - Segments numbered below the `ack` file's `first_segment` are dead.
//!   `ack` and `clear` persist the `ack` file first and delete segments
//!   second; `open` finishes deletions a crash interrupted.
//! - `last()` is the larger of the last record on disk and `last` in the
//!   `ack` file, so it survives the deletion of every segment.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use haven_model::Event;
use serde::{Deserialize, Serialize};

/// Size at which a new segment file starts, unless a single record is larger.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;

/// `[u32 length][u32 crc32(length)][u32 crc32(payload)]`. The length has its
/// own checksum so that recovery can tell where a valid record starts without
/// trusting a damaged length.
const HEADER_BYTES: usize = 12;
const ACK_FILE: &str = "ack";
const ACK_TMP_FILE: &str = "ack.tmp";
const LOCK_FILE: &str = "lock";
const ACK_FILE_VERSION: u32 = 1;

/// A position in an engine's event stream: `(epoch, seq)`.
type Key = (u64, u64);

/// What [`Spool::append`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a Full batch was not stored: the caller must record a gap"]
pub enum Appended {
    /// The batch's new events are on disk (or it had none: every event was
    /// spooled before).
    Stored,
    /// Nothing was written: the batch would take the pending data past
    /// `max_bytes`. Record a gap, [`Spool::clear`] and start over, or wait
    /// for acknowledgements to make room. If `pending_bytes` is 0 the batch
    /// alone is larger than the spool.
    Full {
        /// Bytes pending before this batch.
        pending_bytes: u64,
        /// The spool's limit.
        max_bytes: u64,
    },
}

/// An error of the spool. Messages name the file, the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The operating system refused a file operation.
    #[error(
        "spool: cannot {action} {}: {source}; check that the spool directory exists, this user may write to it and its disk has room",
        path.display()
    )]
    Io {
        /// What the spool was doing, e.g. "write".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// Another process (or another [`Spool`] in this one) has the spool open.
    #[error(
        "spool {} is in use (its lock file {} is held); stop the other connector, or give this one a spool directory of its own",
        dir.display(),
        dir.join(LOCK_FILE).display()
    )]
    Locked {
        /// The spool directory.
        dir: PathBuf,
    },

    /// A segment holds a damaged record that is not a torn write at the tail.
    #[error(
        "spool segment {} is corrupt at byte offset {offset}: {problem}; the events from there on cannot be trusted. Move the spool directory aside and restart the connector: it starts a new spool and the server records a gap",
        path.display()
    )]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
        problem: String,
    },

    /// The `ack` file cannot be understood.
    #[error(
        "spool ack file {} is unreadable: {problem}; move the spool directory aside and restart the connector: it starts a new spool and the server records a gap",
        path.display()
    )]
    BadAckFile {
        /// The `ack` file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A batch's sequence numbers are not consecutive.
    #[error(
        "cannot spool a batch of epoch {epoch}: seq {seq} follows seq {previous}; a batch must hold consecutive sequence numbers of one engine run (a bug in the caller)"
    )]
    NotConsecutive {
        /// The batch's epoch.
        epoch: u64,
        /// The seq before the offending one.
        previous: u64,
        /// The offending seq.
        seq: u64,
    },

    /// A batch does not fit in one record.
    #[error(
        "cannot spool a batch of epoch {epoch}: it encodes to {bytes} bytes, more than one record holds ({max}); append it in smaller batches"
    )]
    BatchTooLarge {
        /// The batch's epoch.
        epoch: u64,
        /// Its encoded size.
        bytes: u64,
        /// The largest payload a record holds.
        max: u64,
    },

    /// Events could not be encoded (a bug: events are plain data).
    #[error("cannot encode events for the spool: {0} (a bug in haven)")]
    Encode(#[source] serde_json::Error),

    /// An earlier append failed halfway, so memory may not match the disk.
    #[error(
        "spool {}: an earlier write failed, so its state in memory may not match the disk; reopen the spool (restart the connector)",
        dir.display()
    )]
    Poisoned {
        /// The spool directory.
        dir: PathBuf,
    },
}

/// A durable, bounded queue of engine events; see the [module docs](self).
///
/// Every method that changes the spool does its I/O before returning: a
/// `Stored` batch or a completed `ack`/`clear` survives a crash.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Held for the spool's lifetime; the OS releases it if the process dies.
    _lock: File,
    /// Records with at least one pending event, oldest first.
    records: VecDeque<RecordRef>,
    /// How many events at the front of `records[0]` are acknowledged.
    head_skip: u64,
    /// Sum of `count` over `records`.
    record_events: u64,
    /// Sum of `len` over `records`: the pending bytes.
    record_bytes: u64,
    acked: Option<Key>,
    last: Option<Key>,
    /// Segments below this number are dead (persisted in the `ack` file).
    first_segment: u64,
    /// Segment files that exist, dead ones included until deleted.
    live: BTreeSet<u64>,
    /// The segment appends go to; `None` until the next append creates one.
    active: Option<Active>,
    next_segment: u64,
    poisoned: bool,
}

/// Where one record lies and which events it holds.
#[derive(Debug, Clone, Copy)]
struct RecordRef {
    segment: u64,
    offset: u64,
    /// Header and payload.
    len: u64,
    epoch: u64,
    first_seq: u64,
    count: u64,
}

impl RecordRef {
    fn last_seq(&self) -> u64 {
        self.first_seq + (self.count - 1)
    }

    fn first_key(&self) -> Key {
        (self.epoch, self.first_seq)
    }

    fn last_key(&self) -> Key {
        (self.epoch, self.last_seq())
    }

    /// How many of this record's events are at or before `acked`.
    fn acked_events(&self, acked: Option<Key>) -> u64 {
        match acked {
            Some((epoch, seq)) if epoch == self.epoch => seq
                .saturating_add(1)
                .saturating_sub(self.first_seq)
                .min(self.count),
            Some((epoch, _)) if epoch > self.epoch => self.count,
            _ => 0,
        }
    }
}

struct Active {
    index: u64,
    file: File,
    len: u64,
}

/// The `ack` file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AckState {
    version: u32,
    acked: Option<Key>,
    last: Option<Key>,
    first_segment: u64,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, holding at most `max_bytes` of
    /// pending data, with segments of [`DEFAULT_SEGMENT_BYTES`].
    ///
    /// Recovers after a crash: a torn or corrupt record at the tail of the
    /// last segment (one that no valid record follows) is truncated away,
    /// never read; corruption anywhere else is [`SpoolError::Corrupt`],
    /// naming file and offset.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        Self::open_with_segment_bytes(dir, max_bytes, DEFAULT_SEGMENT_BYTES)
    }

    /// [`Spool::open`] with segments of about `segment_bytes` (tests use
    /// small ones to exercise rollover). The segment size may differ from
    /// one open to the next.
    pub fn open_with_segment_bytes(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
    ) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let lock = lock_dir(dir)?;
        // A crash between writing and renaming it; the `ack` file is intact.
        remove_if_exists(&dir.join(ACK_TMP_FILE))?;
        let state = read_ack_file(dir)?;

        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            _lock: lock,
            records: VecDeque::new(),
            head_skip: 0,
            record_events: 0,
            record_bytes: 0,
            acked: state.acked,
            last: state.last,
            first_segment: state.first_segment,
            live: list_segments(dir)?,
            active: None,
            next_segment: 1,
            poisoned: false,
        };
        // Finish what a crash interrupted; what cannot be deleted now is
        // skipped, never read.
        spool.delete_dead_segments();
        let segments: Vec<u64> = spool.live.range(spool.first_segment..).copied().collect();
        let newest = segments.last().copied();
        let mut previous: Option<Key> = None;
        for index in segments {
            let path = segment_path(dir, index);
            let bytes = fs::read(&path).map_err(io_error("read", &path))?;
            let (records, valid_len) = scan_segment(&path, index, &bytes, Some(index) == newest)?;
            for record in records {
                if previous.is_some_and(|p| record.first_key() <= p) {
                    let (epoch, seq) = previous.unwrap_or_default();
                    return Err(SpoolError::Corrupt {
                        path,
                        offset: record.offset,
                        problem: format!(
                            "record starting at epoch {} seq {} does not follow epoch {epoch} seq {seq} before it",
                            record.epoch, record.first_seq
                        ),
                    });
                }
                previous = Some(record.last_key());
                spool.push_pending(record);
            }
            if valid_len < bytes.len() as u64 {
                tracing::warn!(
                    segment = %path.display(),
                    offset = valid_len,
                    bytes = bytes.len() as u64 - valid_len,
                    "dropping a torn record at the end of the spool (the connector stopped while writing it)"
                );
            }
            if Some(index) == newest {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io_error("open", &path))?;
                if valid_len < bytes.len() as u64 {
                    file.set_len(valid_len)
                        .and_then(|()| file.sync_all())
                        .map_err(io_error("truncate", &path))?;
                }
                spool.active = Some(Active {
                    index,
                    file,
                    len: valid_len,
                });
            }
        }
        spool.last = spool.last.max(previous);
        spool.next_segment = newest.map_or(1, |n| n + 1).max(spool.first_segment).max(1);
        Ok(spool)
    }

    /// Appends one batch (events of one epoch, consecutive seqs, in order)
    /// durably: written and fsync'd before returning.
    ///
    /// Events at or before [`last`](Self::last) are skipped, so re-appending
    /// is harmless. Returns [`Appended::Full`], writing nothing, if the
    /// pending size would exceed `max_bytes`. After an I/O error the spool
    /// refuses further changes ([`SpoolError::Poisoned`]) until reopened.
    pub fn append(&mut self, epoch: u64, events: &[Event]) -> Result<Appended, SpoolError> {
        self.check_poisoned()?;
        check_consecutive(epoch, events)?;
        let start = match self.last {
            Some((last_epoch, _)) if epoch < last_epoch => events.len(),
            Some((last_epoch, last_seq)) if epoch == last_epoch => {
                events.partition_point(|e| e.seq <= last_seq)
            }
            _ => 0,
        };
        let new = &events[start..];
        let (Some(first), Some(last)) = (new.first(), new.last()) else {
            return Ok(Appended::Stored);
        };
        let record = encode_record(epoch, new)?;
        let len = record.len() as u64;
        if self.record_bytes.saturating_add(len) > self.max_bytes {
            return Ok(Appended::Full {
                pending_bytes: self.record_bytes,
                max_bytes: self.max_bytes,
            });
        }
        let (segment, offset) = self.write_record(&record).inspect_err(|_| {
            self.poisoned = true;
        })?;
        self.push_pending(RecordRef {
            segment,
            offset,
            len,
            epoch,
            first_seq: first.seq,
            count: new.len() as u64,
        });
        self.last = Some((epoch, last.seq));
        Ok(Appended::Stored)
    }

    /// Up to `max_events` pending events, oldest first, each with its epoch.
    ///
    /// Reads only the records it returns, starting at the acknowledged
    /// point, so calling it repeatedly is cheap.
    pub fn peek(&self, max_events: usize) -> Result<Vec<(u64, Event)>, SpoolError> {
        let mut out = Vec::new();
        let mut open: Option<(u64, File)> = None;
        for (i, record) in self.records.iter().enumerate() {
            let wanted = max_events - out.len();
            if wanted == 0 {
                break;
            }
            let skip = if i == 0 { self.head_skip } else { 0 };
            let events = self.read_record(record, &mut open)?;
            out.extend(
                events
                    .into_iter()
                    .skip(skip as usize)
                    .take(wanted)
                    .map(|e| (record.epoch, e)),
            );
        }
        Ok(out)
    }

    /// Like [`Spool::peek`], but only events after `(epoch, seq)` (what was
    /// already sent and awaits its acknowledgement is skipped without being
    /// read).
    pub fn peek_after(
        &self,
        after: Option<(u64, u64)>,
        max_events: usize,
    ) -> Result<Vec<(u64, Event)>, SpoolError> {
        let Some(key) = after else {
            return self.peek(max_events);
        };
        let mut out = Vec::new();
        let mut open: Option<(u64, File)> = None;
        let start = self.records.partition_point(|r| r.last_key() <= key);
        for (i, record) in self.records.iter().enumerate().skip(start) {
            let wanted = max_events - out.len();
            if wanted == 0 {
                break;
            }
            let head = if i == 0 { self.head_skip } else { 0 };
            let past = if record.epoch == key.0 && record.first_seq <= key.1 {
                key.1 - record.first_seq + 1
            } else {
                0
            };
            let events = self.read_record(record, &mut open)?;
            out.extend(
                events
                    .into_iter()
                    .skip(head.max(past) as usize)
                    .take(wanted)
                    .map(|e| (record.epoch, e)),
            );
        }
        Ok(out)
    }

    /// The server has everything up to and including `(epoch, seq)`: drops
    /// it durably (the `ack` file is replaced atomically, then segments with
    /// nothing pending are deleted).
    ///
    /// Acknowledging an event that is not pending in the spool (unknown,
    /// already acknowledged, or older) is a no-op.
    pub fn ack(&mut self, epoch: u64, seq: u64) -> Result<(), SpoolError> {
        self.check_poisoned()?;
        let key = (epoch, seq);
        if self.acked.is_some_and(|acked| key <= acked) {
            return Ok(());
        }
        let i = self.records.partition_point(|r| r.last_key() < key);
        let Some(record) = self.records.get(i).copied() else {
            return Ok(());
        };
        if record.epoch != epoch || seq < record.first_seq {
            return Ok(());
        }
        let (drop, head_skip) = if seq == record.last_seq() {
            (i + 1, 0)
        } else {
            (i, seq - record.first_seq + 1)
        };
        let first_segment = self
            .records
            .get(drop)
            .map_or(self.next_segment, |r| r.segment);
        self.persist(&AckState {
            version: ACK_FILE_VERSION,
            acked: Some(key),
            last: self.last,
            first_segment,
        })?;
        for record in self.records.drain(..drop) {
            self.record_events -= record.count;
            self.record_bytes -= record.len;
        }
        self.head_skip = head_skip;
        self.acked = Some(key);
        self.first_segment = first_segment;
        self.delete_dead_segments();
        Ok(())
    }

    /// The last `(epoch, seq)` ever appended, so the connector can resume
    /// the engine's stream after it. It survives restarts, even when
    /// everything is acknowledged and the segments are gone.
    pub fn last(&self) -> Option<(u64, u64)> {
        self.last
    }

    /// Pending (not acknowledged) events and bytes. The bytes are those of
    /// the records holding pending events, a partly acknowledged one whole.
    pub fn pending(&self) -> (u64, u64) {
        (self.record_events - self.head_skip, self.record_bytes)
    }

    /// Drops everything pending (after an overflow, before starting over
    /// from a snapshot). Keeps [`last`](Self::last) unless `forget_last`:
    /// forget it when the engine's numbering starts over and an older
    /// `(epoch, seq)` must be accepted again.
    pub fn clear(&mut self, forget_last: bool) -> Result<(), SpoolError> {
        self.check_poisoned()?;
        let last = if forget_last { None } else { self.last };
        let first_segment = self.next_segment;
        self.persist(&AckState {
            version: ACK_FILE_VERSION,
            acked: None,
            last,
            first_segment,
        })?;
        self.records.clear();
        self.head_skip = 0;
        self.record_events = 0;
        self.record_bytes = 0;
        self.acked = None;
        self.last = last;
        self.first_segment = first_segment;
        self.delete_dead_segments();
        Ok(())
    }

    fn check_poisoned(&self) -> Result<(), SpoolError> {
        if self.poisoned {
            return Err(SpoolError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Adds a record read or written, skipping its acknowledged events.
    fn push_pending(&mut self, record: RecordRef) {
        let acked = record.acked_events(self.acked);
        if acked == record.count {
            return;
        }
        if acked > 0 {
            // Records are in key order, so only the first pending one can
            // straddle the ack point.
            debug_assert!(self.records.is_empty());
            self.head_skip = acked;
        }
        self.record_events += record.count;
        self.record_bytes += record.len;
        self.records.push_back(record);
    }

    /// Writes and fsyncs one record, starting a new segment when the current
    /// one would grow past the segment size. Returns (segment, offset).
    fn write_record(&mut self, record: &[u8]) -> Result<(u64, u64), SpoolError> {
        let len = record.len() as u64;
        let roll = self
            .active
            .as_ref()
            .is_none_or(|a| a.len > 0 && a.len + len > self.segment_bytes);
        if roll {
            self.active = Some(self.create_segment()?);
        }
        let Some(active) = self.active.as_mut() else {
            unreachable!("a segment was just created");
        };
        let offset = active.len;
        let written = active
            .file
            .write_all_at(record, offset)
            .and_then(|()| active.file.sync_data());
        if let Err(e) = written {
            // Best effort: leave no partial record for anyone to append
            // after. Reopening copes if this fails too.
            let _ = active
                .file
                .set_len(offset)
                .and_then(|()| active.file.sync_data());
            return Err(SpoolError::Io {
                action: "write",
                path: segment_path(&self.dir, active.index),
                source: e,
            });
        }
        active.len += len;
        Ok((active.index, offset))
    }

    fn create_segment(&mut self) -> Result<Active, SpoolError> {
        let index = self.next_segment;
        let path = segment_path(&self.dir, index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error("create", &path))?;
        self.next_segment += 1;
        self.live.insert(index);
        // Without this the new file's name may not survive a crash even
        // though its records were fsync'd.
        sync_dir(&self.dir)?;
        Ok(Active {
            index,
            file,
            len: 0,
        })
    }

    fn read_record(
        &self,
        record: &RecordRef,
        open: &mut Option<(u64, File)>,
    ) -> Result<Vec<Event>, SpoolError> {
        let path = segment_path(&self.dir, record.segment);
        let file = match open {
            Some((index, file)) if *index == record.segment => file,
            _ => {
                let file = File::open(&path).map_err(io_error("open", &path))?;
                &open.insert((record.segment, file)).1
            }
        };
        let mut bytes = vec![0; record.len as usize];
        file.read_exact_at(&mut bytes, record.offset)
            .map_err(io_error("read", &path))?;
        let corrupt = |problem: String| SpoolError::Corrupt {
            path: path.clone(),
            offset: record.offset,
            problem: format!("{problem} (it was valid when the spool was opened)"),
        };
        let payload = check_record(&bytes, 0).map_err(corrupt)?;
        let (_, events) = decode_payload(payload).map_err(corrupt)?;
        Ok(events)
    }

    /// Replaces the `ack` file atomically and durably.
    fn persist(&self, state: &AckState) -> Result<(), SpoolError> {
        let tmp = self.dir.join(ACK_TMP_FILE);
        let path = self.dir.join(ACK_FILE);
        let bytes = serde_json::to_vec(state).map_err(SpoolError::Encode)?;
        File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .map_err(io_error("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_error("replace", &path))?;
        sync_dir(&self.dir)
    }

    /// Deletes segments below `first_segment`. Their deletion is already
    /// decided (persisted), so a failure is only logged: the next `ack`,
    /// `clear` or `open` tries again.
    fn delete_dead_segments(&mut self) {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.index < self.first_segment)
        {
            self.active = None;
        }
        let dead: Vec<u64> = self.live.range(..self.first_segment).copied().collect();
        for index in dead {
            let path = segment_path(&self.dir, index);
            match fs::remove_file(&path) {
                Ok(()) => {
                    self.live.remove(&index);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.live.remove(&index);
                }
                Err(e) => tracing::warn!(
                    segment = %path.display(),
                    error = %e,
                    "cannot delete an acknowledged spool segment; will try again"
                ),
            }
        }
    }
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (events, bytes) = self.pending();
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("pending_events", &events)
            .field("pending_bytes", &bytes)
            .field("acked", &self.acked)
            .field("last", &self.last)
            .field("segments", &self.live)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("spool-{index:08}.log"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("spool-")?.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn list_segments(dir: &Path) -> Result<BTreeSet<u64>, SpoolError> {
    let mut segments = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        if let Some(index) = entry.file_name().to_str().and_then(parse_segment_name) {
            segments.insert(index);
        }
    }
    Ok(segments)
}

fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error("open", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(SpoolError::Io {
            action: "lock",
            path,
            source: e,
        }),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync directory", dir))
}

fn remove_if_exists(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SpoolError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn read_ack_file(dir: &Path) -> Result<AckState, SpoolError> {
    let path = dir.join(ACK_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AckState::default()),
        Err(e) => {
            return Err(SpoolError::Io {
                action: "read",
                path,
                source: e,
            })
        }
    };
    let bad = |problem: String| SpoolError::BadAckFile {
        path: path.clone(),
        problem,
    };
    let state: AckState = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if state.version != ACK_FILE_VERSION {
        return Err(bad(format!(
            "version {} (this haven knows {ACK_FILE_VERSION})",
            state.version
        )));
    }
    Ok(state)
}

fn check_consecutive(epoch: u64, events: &[Event]) -> Result<(), SpoolError> {
    for pair in events.windows(2) {
        let (previous, seq) = (pair[0].seq, pair[1].seq);
        if previous.checked_add(1) != Some(seq) {
            return Err(SpoolError::NotConsecutive {
                epoch,
                previous,
                seq,
            });
        }
    }
    Ok(())
}

fn encode_record(epoch: u64, events: &[Event]) -> Result<Vec<u8>, SpoolError> {
    let mut record = vec![0; HEADER_BYTES];
    serde_json::to_writer(&mut record, &(epoch, events)).map_err(SpoolError::Encode)?;
    let payload_len = record.len() - HEADER_BYTES;
    let len = u32::try_from(payload_len).map_err(|_| SpoolError::BatchTooLarge {
        epoch,
        bytes: payload_len as u64,
        max: u32::MAX.into(),
    })?;
    let len = len.to_le_bytes();
    let payload_crc = crc32fast::hash(&record[HEADER_BYTES..]);
    record[0..4].copy_from_slice(&len);
    record[4..8].copy_from_slice(&crc32fast::hash(&len).to_le_bytes());
    record[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    Ok(record)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the record at `pos` and returns its payload, or says what is wrong.
fn check_record(bytes: &[u8], pos: usize) -> Result<&[u8], String> {
    let rest = bytes.len() - pos;
    if rest < HEADER_BYTES {
        return Err(format!(
            "only {rest} bytes left, less than a record header ({HEADER_BYTES})"
        ));
    }
    let len = le_u32(bytes, pos);
    if crc32fast::hash(&bytes[pos..pos + 4]) != le_u32(bytes, pos + 4) {
        return Err("the record header's checksum does not match".into());
    }
    let start = pos + HEADER_BYTES;
    let Some(payload) = bytes.get(start..start + len as usize) else {
        return Err(format!(
            "the record's {len} bytes run past the end of the file ({} bytes)",
            bytes.len()
        ));
    };
    if crc32fast::hash(payload) != le_u32(bytes, pos + 8) {
        return Err("the record's checksum does not match its contents".into());
    }
    Ok(payload)
}

fn decode_payload(payload: &[u8]) -> Result<(u64, Vec<Event>), String> {
    serde_json::from_slice(payload)
        .map_err(|e| format!("the record's checksum is right but it does not decode ({e}); was the spool written by another version of haven?"))
}

/// Whether a valid record starts anywhere after `pos`: if so, damage at
/// `pos` is not a torn tail, and truncating would lose data.
fn valid_record_after(bytes: &[u8], pos: usize) -> Option<usize> {
    (pos + 1..=bytes.len().saturating_sub(HEADER_BYTES)).find(|&q| {
        crc32fast::hash(&bytes[q..q + 4]) == le_u32(bytes, q + 4) && check_record(bytes, q).is_ok()
    })
}

/// Reads every record of one segment. In the last segment a damaged record
/// that no valid record follows is a torn write: scanning stops there.
/// Returns the records and the length of the valid part.
fn scan_segment(
    path: &Path,
    index: u64,
    bytes: &[u8],
    is_last: bool,
) -> Result<(Vec<RecordRef>, u64), SpoolError> {
    let corrupt = |offset: usize, problem: String| SpoolError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        problem,
    };
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let payload = match check_record(bytes, pos) {
            Ok(payload) => payload,
            Err(problem) => {
                if !is_last {
                    return Err(corrupt(
                        pos,
                        format!("{problem}, in a segment that is not the newest"),
                    ));
                }
                if let Some(next) = valid_record_after(bytes, pos) {
                    return Err(corrupt(
                        pos,
                        format!("{problem}, and a valid record follows at offset {next}"),
                    ));
                }
                break;
            }
        };
        let (epoch, events) = decode_payload(payload).map_err(|p| corrupt(pos, p))?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Err(corrupt(pos, "the record holds no events".into()));
        };
        check_consecutive(epoch, &events).map_err(|e| corrupt(pos, e.to_string()))?;
        let len = (HEADER_BYTES + payload.len()) as u64;
        records.push(RecordRef {
            segment: index,
            offset: pos as u64,
            len,
            epoch,
            first_seq: first.seq,
            count: last.seq - first.seq + 1,
        });
        pos += len as usize;
    }
    Ok((records, pos as u64))
}

#[cfg(test)]
mod tests {
    use haven_model::{EventKind, Severity};

    use super::*;

    fn event(seq: u64) -> Event {
        Event {
            seq,
            time_ms: 1_700_000_000_000,
            kind: EventKind::Notice {
                severity: Severity::Info,
                object: None,
                message: format!("event {seq}"),
            },
        }
    }

    #[test]
    fn segment_names_round_trip_and_others_are_ignored() {
        let path = segment_path(Path::new("/s"), 42);
        assert_eq!(path, Path::new("/s/spool-00000042.log"));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap();
        assert_eq!(parse_segment_name(name), Some(42));
        assert_eq!(parse_segment_name("spool-123456789.log"), Some(123_456_789));
        for other in [
            "ack",
            "lock",
            "spool-.log",
            "spool-+1.log",
            "spool-1.log.tmp",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn encoded_record_checks_and_decodes() {
        let events = [event(7), event(8)];
        let record = encode_record(3, &events).unwrap();
        let payload = check_record(&record, 0).unwrap();
        assert_eq!(decode_payload(payload).unwrap(), (3, events.to_vec()));
    }

    #[test]
    fn damaged_length_is_caught_by_the_header_checksum() {
        let mut record = encode_record(1, &[event(1)]).unwrap();
        record[0] ^= 0x01;
        assert!(check_record(&record, 0).unwrap_err().contains("header"));
    }

    #[test]
    fn valid_record_is_found_after_garbage() {
        let mut bytes = vec![0xAB; 30];
        bytes.extend(encode_record(1, &[event(1)]).unwrap());
        assert_eq!(valid_record_after(&bytes, 0), Some(30));
        assert_eq!(valid_record_after(&bytes, 30), None);
        assert_eq!(valid_record_after(&[0; 5], 0), None);
    }

    #[test]
    fn scan_stops_at_a_torn_tail_only_in_the_newest_segment() {
        let mut bytes = encode_record(1, &[event(1), event(2)]).unwrap();
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&encode_record(1, &[event(3)]).unwrap()[..20]);
        let (records, valid) = scan_segment(Path::new("s"), 1, &bytes, true).unwrap();
        assert_eq!((records.len(), records[0].count, valid), (1, 2, whole));

        let err = scan_segment(Path::new("s"), 1, &bytes, false).unwrap_err();
        assert!(matches!(err, SpoolError::Corrupt { offset, .. } if offset == whole));
    }
}

#[cfg(test)]
mod peek_after_tests {
    use super::*;
    use haven_model::{EventKind, Severity};

    fn events(from: u64, n: u64) -> Vec<Event> {
        (from..from + n)
            .map(|seq| Event {
                seq,
                time_ms: seq as i64,
                kind: EventKind::Notice {
                    severity: Severity::Info,
                    object: None,
                    message: String::new(),
                },
            })
            .collect()
    }

    #[test]
    fn peek_after_skips_what_was_sent_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for start in [1, 11, 21] {
            assert!(matches!(
                spool.append(7, &events(start, 10)).unwrap(),
                Appended::Stored
            ));
        }
        spool.ack(7, 3).unwrap();
        let seqs = |v: Vec<(u64, Event)>| v.into_iter().map(|(_, e)| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(spool.peek_after(None, 3).unwrap()), vec![4, 5, 6]);
        assert_eq!(seqs(spool.peek_after(Some((7, 2)), 2).unwrap()), vec![4, 5]);
        assert_eq!(
            seqs(spool.peek_after(Some((7, 14)), 3).unwrap()),
            vec![15, 16, 17]
        );
        assert_eq!(
            seqs(spool.peek_after(Some((7, 20)), 2).unwrap()),
            vec![21, 22]
        );
        assert!(spool.peek_after(Some((7, 30)), 5).unwrap().is_empty());
        assert_eq!(seqs(spool.peek_after(Some((6, 99)), 1).unwrap()), vec![4]);
    }
}
