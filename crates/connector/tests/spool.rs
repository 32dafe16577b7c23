//! The spool through its public API: order, acknowledgement, restarts,
//! limits, and recovery from torn writes and from `kill -9`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use haven_connector::spool::{Appended, Spool, SpoolError};
use haven_model::{Event, EventKind, Severity};

const MB: u64 = 1 << 20;

fn event(seq: u64) -> Event {
    Event {
        seq,
        time_ms: 1_700_000_000_000 + seq as i64,
        kind: EventKind::Notice {
            severity: Severity::Info,
            object: None,
            message: format!("event number {seq}"),
        },
    }
}

fn batch(seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    seqs.map(event).collect()
}

/// Pending (epoch, seq) pairs, all of them.
fn pending_keys(spool: &Spool) -> Vec<(u64, u64)> {
    spool
        .peek(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(epoch, e)| (epoch, e.seq))
        .collect()
}

fn keys(epoch: u64, seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
    seqs.map(|s| (epoch, s)).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

fn only_segment(dir: &Path) -> PathBuf {
    let files = segments(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn store(spool: &mut Spool, epoch: u64, seqs: std::ops::RangeInclusive<u64>) {
    assert_eq!(spool.append(epoch, &batch(seqs)).unwrap(), Appended::Stored);
}

#[test]
fn batches_come_back_in_order_across_segments_and_acks_delete_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open_with_segment_bytes(dir.path(), MB, 1024).unwrap();
    for b in 0..20 {
        store(&mut spool, 1, b * 5 + 1..=b * 5 + 5);
    }
    let files = segments(dir.path());
    assert!(files.len() > 3, "expected rollover, got {files:?}");
    assert_eq!(pending_keys(&spool), keys(1, 1..=100));
    assert_eq!(spool.peek(7).unwrap().len(), 7);
    assert_eq!(spool.pending().0, 100);

    spool.ack(1, 50).unwrap();
    assert_eq!(pending_keys(&spool), keys(1, 51..=100));
    let left = segments(dir.path());
    assert!(left.len() < files.len(), "acked segments stay: {left:?}");
    assert_eq!(left.last(), files.last());

    spool.ack(1, 100).unwrap();
    assert!(pending_keys(&spool).is_empty());
    assert_eq!(spool.pending(), (0, 0));
    assert!(segments(dir.path()).is_empty());

    store(&mut spool, 1, 101..=103);
    assert_eq!(pending_keys(&spool), keys(1, 101..=103));
}

#[test]
fn ack_in_the_middle_of_a_batch_resumes_peek_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), MB).unwrap();
    store(&mut spool, 4, 1..=10);
    store(&mut spool, 4, 11..=20);
    spool.ack(4, 13).unwrap();
    assert_eq!(pending_keys(&spool), keys(4, 14..=20));
    assert_eq!(spool.pending().0, 7);
    assert_eq!(spool.peek(2).unwrap()[0].1, event(14));

    drop(spool);
    let spool = Spool::open(dir.path(), MB).unwrap();
    assert_eq!(pending_keys(&spool), keys(4, 14..=20));
}

#[test]
fn acks_of_old_or_unknown_events_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), MB).unwrap();
    store(&mut spool, 2, 1..=10);
    spool.ack(2, 5).unwrap();
    for (epoch, seq) in [(2, 3), (2, 5), (2, 11), (3, 1), (1, 99)] {
        spool.ack(epoch, seq).unwrap();
        assert_eq!(pending_keys(&spool), keys(2, 6..=10), "ack({epoch}, {seq})");
    }
}

#[test]
fn reopen_keeps_pending_events_last_and_ack_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open_with_segment_bytes(dir.path(), MB, 512).unwrap();
    for b in 0..6 {
        store(&mut spool, 9, b * 4 + 1..=b * 4 + 4);
    }
    spool.ack(9, 10).unwrap();
    let pending = spool.pending();
    drop(spool);

    let spool = Spool::open_with_segment_bytes(dir.path(), MB, 512).unwrap();
    assert_eq!(spool.last(), Some((9, 24)));
    assert_eq!(spool.pending(), pending);
    assert_eq!(pending_keys(&spool), keys(9, 11..=24));
}

#[test]
fn last_survives_when_everything_is_acked_and_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), MB).unwrap();
    assert_eq!(spool.last(), None);
    store(&mut spool, 5, 1..=3);
    spool.ack(5, 3).unwrap();
    assert!(segments(dir.path()).is_empty());
    drop(spool);

    let mut spool = Spool::open(dir.path(), MB).unwrap();
    assert_eq!(spool.last(), Some((5, 3)));
    assert_eq!(spool.pending(), (0, 0));
    // Resuming after last() appends only what is new.
    store(&mut spool, 5, 1..=5);
    assert_eq!(pending_keys(&spool), keys(5, 4..=5));
}

#[test]
fn a_full_spool_writes_nothing_until_acks_make_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1500).unwrap();
    let mut next = 1;
    let full = loop {
        match spool.append(1, &batch(next..=next + 4)).unwrap() {
            Appended::Stored => next += 5,
            full => break full,
        }
    };
    let (events, bytes) = spool.pending();
    assert!(events > 0 && bytes <= 1500);
    assert_eq!(
        full,
        Appended::Full {
            pending_bytes: bytes,
            max_bytes: 1500
        }
    );
    let on_disk = file_len(&only_segment(dir.path()));
    assert_eq!(spool.last(), Some((1, next - 1)));
    assert_eq!(on_disk, bytes);

    spool.ack(1, 10).unwrap();
    store(&mut spool, 1, next..=next + 4);
    assert_eq!(spool.last(), Some((1, next + 4)));
    assert_eq!(pending_keys(&spool), keys(1, 11..=next + 4));
}

#[test]
fn reappended_events_are_skipped_and_a_new_epoch_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), MB).unwrap();
    store(&mut spool, 1, 1..=5);
    let bytes = spool.pending().1;
    store(&mut spool, 1, 1..=5);
    store(&mut spool, 1, 3..=4);
    assert_eq!(spool.pending(), (5, bytes), "nothing new was written");
    store(&mut spool, 1, 4..=8);
    // The engine restarted: a new epoch numbers from 1 again.
    store(&mut spool, 2, 1..=3);
    // An older epoch is all old.
    store(&mut spool, 1, 9..=10);
    assert_eq!(spool.last(), Some((2, 3)));
    let mut expected = keys(1, 1..=8);
    expected.extend(keys(2, 1..=3));
    assert_eq!(pending_keys(&spool), expected);
}

#[test]
fn a_batch_with_a_gap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), MB).unwrap();
    let err = spool.append(1, &[event(1), event(3)]).unwrap_err();
    assert!(matches!(
        err,
        SpoolError::NotConsecutive {
            previous: 1,
            seq: 3,
            ..
        }
    ));
    assert_eq!(spool.last(), None);
}

#[test]
fn clear_drops_pending_and_keeps_last_unless_told_to_forget() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), MB).unwrap();
    store(&mut spool, 1, 1..=10);
    spool.clear(false).unwrap();
    assert_eq!(spool.pending(), (0, 0));
    assert_eq!(spool.last(), Some((1, 10)));
    assert!(segments(dir.path()).is_empty());
    // After a gap the stream goes on from a later seq.
    store(&mut spool, 1, 50..=52);
    drop(spool);

    let mut spool = Spool::open(dir.path(), MB).unwrap();
    assert_eq!(pending_keys(&spool), keys(1, 50..=52));
    spool.clear(true).unwrap();
    assert_eq!(spool.last(), None);
    store(&mut spool, 1, 1..=2);
    drop(spool);

    let spool = Spool::open(dir.path(), MB).unwrap();
    assert_eq!(spool.last(), Some((1, 2)));
    assert_eq!(pending_keys(&spool), keys(1, 1..=2));
}

#[test]
fn a_second_open_of_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _spool = Spool::open(dir.path(), MB).unwrap();
    let err = Spool::open(dir.path(), MB).unwrap_err();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
}

/// Appends batches 1..=3, 4..=6, 7..=9 and returns the segment and its
/// length after each.
fn three_records(dir: &Path) -> (PathBuf, [u64; 3]) {
    let mut spool = Spool::open(dir, MB).unwrap();
    let mut ends = [0; 3];
    for (i, end) in ends.iter_mut().enumerate() {
        let first = i as u64 * 3 + 1;
        store(&mut spool, 1, first..=first + 2);
        *end = file_len(&only_segment(dir));
    }
    (only_segment(dir), ends)
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_torn_last_record_is_truncated_and_the_rest_recovered() {
    type Tear = fn(&Path, [u64; 3]);
    let tears: [(&str, Tear); 5] = [
        ("cut in the payload", |p, e| cut(p, e[2] - 7)),
        ("cut in the header", |p, e| cut(p, e[1] + 5)),
        ("payload byte damaged", |p, e| flip_byte(p, e[2] - 2)),
        ("length damaged", |p, e| flip_byte(p, e[1] + 1)),
        ("zeros instead of data", |p, e| {
            let mut bytes = fs::read(p).unwrap();
            bytes[e[1] as usize..].fill(0);
            bytes.extend([0; 100]);
            fs::write(p, bytes).unwrap();
        }),
    ];
    fn cut(path: &Path, len: u64) {
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }
    for (what, tear) in tears {
        let dir = tempfile::tempdir().unwrap();
        let (segment, ends) = three_records(dir.path());
        tear(&segment, ends);

        let mut spool = Spool::open(dir.path(), MB).unwrap();
        assert_eq!(pending_keys(&spool), keys(1, 1..=6), "{what}");
        assert_eq!(spool.last(), Some((1, 6)), "{what}");
        assert_eq!(file_len(&segment), ends[1], "{what}: torn bytes stay");
        // The lost batch is appended again, right after the good ones.
        store(&mut spool, 1, 7..=9);
        drop(spool);
        let spool = Spool::open(dir.path(), MB).unwrap();
        assert_eq!(pending_keys(&spool), keys(1, 1..=9), "{what}");
    }
}

#[test]
fn a_damaged_record_in_the_middle_is_an_error_naming_file_and_offset() {
    for (what, at) in [("payload", 0.5), ("length", 0.0)] {
        let dir = tempfile::tempdir().unwrap();
        let (segment, ends) = three_records(dir.path());
        let start = ends[0];
        flip_byte(
            &segment,
            start + 1 + ((ends[1] - start - 2) as f64 * at) as u64,
        );

        let err = Spool::open(dir.path(), MB).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, SpoolError::Corrupt { offset, .. } if offset == start),
            "{what}: {message}"
        );
        assert!(
            message.contains(&segment.display().to_string()),
            "{message}"
        );
        assert!(message.contains(&format!("offset {start}")), "{message}");
        assert_eq!(file_len(&segment), ends[2], "{what}: nothing is truncated");
    }
}

#[test]
fn damage_in_an_older_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open_with_segment_bytes(dir.path(), MB, 256).unwrap();
    for b in 0..4 {
        store(&mut spool, 1, b * 3 + 1..=b * 3 + 3);
    }
    drop(spool);
    let first = segments(dir.path())[0].clone();
    let len = file_len(&first);
    fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let err = Spool::open_with_segment_bytes(dir.path(), MB, 256).unwrap_err();
    assert!(
        matches!(err, SpoolError::Corrupt { ref path, .. } if *path == first),
        "{err}"
    );
}

#[test]
fn a_crash_between_ack_file_and_segment_deletion_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open_with_segment_bytes(dir.path(), MB, 512).unwrap();
    for b in 0..10 {
        store(&mut spool, 1, b * 4 + 1..=b * 4 + 4);
    }
    let before: Vec<(PathBuf, Vec<u8>)> = segments(dir.path())
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    spool.ack(1, 30).unwrap();
    drop(spool);
    // Put the deleted segments back, as if the crash came before deletion.
    let mut restored = 0;
    for (path, bytes) in &before {
        if !path.exists() {
            fs::write(path, bytes).unwrap();
            restored += 1;
        }
    }
    assert!(restored > 0);
    // And a half-written next ack file.
    fs::write(dir.path().join("ack.tmp"), b"{\"vers").unwrap();

    let spool = Spool::open_with_segment_bytes(dir.path(), MB, 512).unwrap();
    assert_eq!(pending_keys(&spool), keys(1, 31..=40));
    assert_eq!(segments(dir.path()).len(), before.len() - restored);
    assert!(!dir.path().join("ack.tmp").exists());
}

#[test]
fn an_unreadable_ack_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ack"), b"garbage").unwrap();
    let err = Spool::open(dir.path(), MB).unwrap_err();
    assert!(matches!(err, SpoolError::BadAckFile { .. }), "{err}");
    assert!(err.to_string().contains("ack"), "{err}");
}

// kill -9: the test binary runs itself as the appending child.

const CHILD_DIR_ENV: &str = "HAVEN_SPOOL_KILL_TEST_DIR";
const CHILD_BATCH: u64 = 5;
/// The child acknowledges all but the newest this-many events now and then.
const CHILD_ACK_LAG: u64 = 23;
const CHILD_SEGMENT_BYTES: u64 = 4096;

/// Not a test on its own: with `HAVEN_SPOOL_KILL_TEST_DIR` set it is the
/// child of `kill_9_loses_no_printed_event_and_duplicates_none`. It appends
/// (and sometimes acks) until killed, printing each step once it is durable.
#[test]
fn kill_9_child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let mut spool =
        Spool::open_with_segment_bytes(Path::new(&dir), u64::MAX, CHILD_SEGMENT_BYTES).unwrap();
    let mut next = spool.last().map_or(1, |(_, seq)| seq + 1);
    let mut out = std::io::stdout().lock();
    for round in 1..100_000u64 {
        let last = next + CHILD_BATCH - 1;
        assert_eq!(
            spool.append(1, &batch(next..=last)).unwrap(),
            Appended::Stored
        );
        writeln!(out, "appended {last}").unwrap();
        out.flush().unwrap();
        next = last + 1;
        if round % 7 == 0 && last > CHILD_ACK_LAG {
            spool.ack(1, last - CHILD_ACK_LAG).unwrap();
            writeln!(out, "acked {}", last - CHILD_ACK_LAG).unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn kill_9_loses_no_printed_event_and_duplicates_none() {
    if std::env::var_os(CHILD_DIR_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut appended, mut acked) = (0u64, 0u64);
    for round in 0..4 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_child_appends_until_killed",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut note = |line: &str| -> bool {
            if let Some(seq) = line.strip_prefix("appended ") {
                let seq: u64 = seq.parse().unwrap();
                assert!(seq > appended, "child appended {seq} after {appended}");
                appended = seq;
                return true;
            }
            if let Some(seq) = line.strip_prefix("acked ") {
                acked = seq.parse().unwrap();
            }
            false
        };
        // Vary the moment of the kill from round to round.
        let target = 30 + round * 11;
        let mut seen = 0;
        for line in lines.by_ref() {
            if note(&line.unwrap()) {
                seen += 1;
                if seen == target {
                    break;
                }
            }
        }
        assert_eq!(seen, target, "round {round}: the child stopped early");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // What it printed before dying is durable too.
        for line in lines {
            note(&line.unwrap());
        }

        let spool = Spool::open_with_segment_bytes(dir.path(), u64::MAX, CHILD_SEGMENT_BYTES)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let (_, last) = spool.last().unwrap();
        assert!(
            last >= appended,
            "round {round}: printed {appended}, spool has {last}"
        );
        let pending = pending_keys(&spool);
        let first = pending.first().map_or(last + 1, |(_, seq)| *seq);
        assert!(first > acked, "round {round}: acked {acked} came back");
        assert!(
            first == 1 || first - 1 <= last - CHILD_ACK_LAG,
            "round {round}: acked past what the child acked"
        );
        assert_eq!(
            pending,
            keys(1, first..=last),
            "round {round}: gap or duplicate"
        );
    }
}
