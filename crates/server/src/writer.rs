//! The history writer: one thread owns the database connection that
//! writes, and turns the stream of events from every link into batched
//! transactions.
//!
//! Invariants: rows are written in the order they arrive (per cluster that
//! is sequence order); a batch is one transaction, so a crash loses at most
//! whole batches that were not committed — and those are re-received, since
//! each link resumes from the last *stored* sequence after a restart; the
//! unique key (cluster, epoch, seq) drops anything received twice.
//!
//! The queue in front of the thread is bounded: when the database falls
//! behind, links wait, their engines' send buffers fill, and nothing is
//! dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use haven_model::{Event, Name};
use std::collections::HashMap;
use std::sync::Mutex;

use haven_store::{Cursor, Gap, HistoryRow, NewOperation, Outcome, Store};
use tokio::sync::{mpsc, oneshot};

/// What the writer is asked to write.
pub enum WriteMsg {
    Events {
        cluster: Name,
        epoch: u64,
        events: Vec<Event>,
    },
    Gap(Gap),
    /// History of a cluster begins here (its first sync).
    Begin {
        cluster: Name,
        at: Cursor,
    },
    /// Audit: an operation was asked for; the reply is its id.
    Operation(NewOperation, oneshot::Sender<Result<i64, String>>),
    /// Audit: how an operation ended.
    Finish {
        id: i64,
        outcome: Outcome,
        reason: Option<String>,
        finished_ms: i64,
    },
    /// The access log: logins, logouts, refusals, administrators' changes.
    Access(haven_store::NewAccess),
    /// Alerts raised or changed, in order (see `alerts`).
    Alerts(Vec<haven_store::AlertRecord>),
    /// Attempts to deliver notifications.
    Deliveries(Vec<haven_store::NewDelivery>),
    /// A cluster's whole state at a position (see `timeline`).
    Checkpoint(haven_store::Checkpoint),
    /// A peer's history is stored up to its row `after` (sent after the
    /// rows; see `peers`).
    PeerHistory {
        site: String,
        after: i64,
    },
    /// Replies once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// Where links send what must be written.
pub type HistorySink = mpsc::Sender<WriteMsg>;

/// Counters the metrics endpoint reports.
#[derive(Default)]
pub struct WriterMetrics {
    pub events_received: AtomicU64,
    pub rows_written: AtomicU64,
    pub duplicates: AtomicU64,
    pub batches: AtomicU64,
    pub write_errors: AtomicU64,
    /// Total batch write time, microseconds.
    pub write_micros: AtomicU64,
    /// Batches by duration: <1ms, <5ms, <25ms, <100ms, <500ms, more.
    pub write_buckets: [AtomicU64; 6],
}

/// Upper bounds of [`WriterMetrics::write_buckets`], in seconds.
pub const WRITE_BUCKETS: [f64; 5] = [0.001, 0.005, 0.025, 0.1, 0.5];

impl WriterMetrics {
    fn observe(&self, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.write_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = WRITE_BUCKETS
            .iter()
            .position(|b| secs < *b)
            .unwrap_or(WRITE_BUCKETS.len());
        self.write_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// The last position stored per cluster, as the writer committed it.
pub type StoredCursors = Arc<Mutex<HashMap<String, Cursor>>>;

/// Starts the writer thread. It stops when every sender is dropped, after
/// writing what it has.
pub fn spawn(
    store: Box<dyn Store>,
    capacity: usize,
    batch_max: usize,
    flush_every: Duration,
    metrics: Arc<WriterMetrics>,
    stored: StoredCursors,
) -> (HistorySink, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(16));
    let handle = std::thread::Builder::new()
        .name("haven-history".into())
        .spawn(move || {
            Writer {
                store,
                metrics,
                stored,
                lost_rows: false,
            }
            .run(rx, batch_max.max(1), flush_every)
        })
        .expect("spawn the history writer thread");
    (tx, handle)
}

struct Writer {
    store: Box<dyn Store>,
    metrics: Arc<WriterMetrics>,
    stored: StoredCursors,
    /// A batch failed: peers' positions stay where they are from then on
    /// (so the rows are asked for again after a restart).
    lost_rows: bool,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<WriteMsg>, batch_max: usize, flush_every: Duration) {
        let mut rows: Vec<HistoryRow> = Vec::with_capacity(batch_max);
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let started = Instant::now();
            let mut next = Some(first);
            // Gather a batch: whatever is queued, up to batch_max rows, for
            // at most flush_every.
            loop {
                match next.take() {
                    Some(WriteMsg::Events {
                        cluster,
                        epoch,
                        events,
                    }) => {
                        self.metrics
                            .events_received
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        rows.extend(events.into_iter().map(|event| HistoryRow {
                            cluster: cluster.to_string(),
                            epoch,
                            event,
                        }));
                    }
                    Some(other) => {
                        // Keep order: what came before is written first.
                        self.write(&mut rows);
                        self.handle(other, &mut waiting);
                    }
                    None => {}
                }
                if rows.len() >= batch_max || started.elapsed() >= flush_every {
                    break;
                }
                match rx.try_recv() {
                    Ok(msg) => next = Some(msg),
                    Err(_) => {
                        if rows.is_empty() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                        match rx.try_recv() {
                            Ok(msg) => next = Some(msg),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.write(&mut rows);
            for w in waiting.drain(..) {
                let _ = w.send(());
            }
        }
        self.write(&mut rows);
    }

    fn write(&mut self, rows: &mut Vec<HistoryRow>) {
        if rows.is_empty() {
            return;
        }
        let started = Instant::now();
        match self.store.append(rows) {
            Ok(report) => {
                // Committed: these positions are safe to acknowledge.
                if let Ok(mut stored) = self.stored.lock() {
                    for row in rows.iter() {
                        stored.insert(
                            row.cluster.clone(),
                            Cursor {
                                epoch: row.epoch,
                                seq: row.event.seq,
                            },
                        );
                    }
                }
                self.metrics
                    .rows_written
                    .fetch_add(report.inserted as u64, Ordering::Relaxed);
                self.metrics
                    .duplicates
                    .fetch_add(report.duplicates as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // The rows are lost to this process, but not to history:
                // the cursor did not move, so they are re-received after a
                // restart. Say so loudly.
                self.metrics.write_errors.fetch_add(1, Ordering::Relaxed);
                self.lost_rows = true;
                tracing::error!(
                    "cannot write {} history rows: {e}; they will be re-read from the engines after a restart",
                    rows.len()
                );
            }
        }
        self.metrics.observe(started.elapsed());
        rows.clear();
    }

    fn handle(&mut self, msg: WriteMsg, waiting: &mut Vec<oneshot::Sender<()>>) {
        match msg {
            WriteMsg::Events { .. } => {}
            WriteMsg::Gap(gap) => match self.store.record_gap(&gap) {
                Ok(()) => {
                    if let Ok(mut stored) = self.stored.lock() {
                        stored.insert(gap.cluster.clone(), gap.resumed);
                    }
                }
                Err(e) => {
                    tracing::error!(cluster = gap.cluster, "cannot record a history gap: {e}")
                }
            },
            WriteMsg::Begin { cluster, at } => match self.store.begin_history(&cluster, at) {
                Ok(true) => {
                    if let Ok(mut stored) = self.stored.lock() {
                        stored.entry(cluster.to_string()).or_insert(at);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(cluster = %cluster, "cannot record where history begins: {e}")
                }
            },
            WriteMsg::Operation(op, reply) => {
                let _ = reply.send(self.store.insert_operation(&op).map_err(|e| e.to_string()));
            }
            WriteMsg::Finish {
                id,
                outcome,
                reason,
                finished_ms,
            } => {
                if let Err(e) =
                    self.store
                        .finish_operation(id, outcome, reason.as_deref(), finished_ms)
                {
                    tracing::error!("cannot record the outcome of operation {id}: {e}");
                }
            }
            WriteMsg::Access(entry) => {
                if let Err(e) = self.store.insert_access(std::slice::from_ref(&entry)) {
                    tracing::error!(
                        user = entry.user,
                        action = entry.action,
                        "cannot write to the access log: {e}"
                    );
                }
            }
            WriteMsg::Alerts(alerts) => {
                if let Err(e) = self.store.save_alerts(&alerts) {
                    tracing::error!("cannot store {} alert changes: {e}", alerts.len());
                }
            }
            WriteMsg::Checkpoint(checkpoint) => {
                if let Err(e) = self
                    .store
                    .save_checkpoints(std::slice::from_ref(&checkpoint))
                {
                    tracing::error!(cluster = %checkpoint.cluster, "cannot store a checkpoint: {e}");
                }
            }
            WriteMsg::Deliveries(rows) => {
                if let Err(e) = self.store.insert_deliveries(&rows) {
                    tracing::error!("cannot record {} notification attempts: {e}", rows.len());
                }
            }
            WriteMsg::PeerHistory { site, after } => {
                if self.lost_rows {
                    tracing::warn!(site, "not moving site {site}'s history position: a batch failed to write; it resumes from the last good one after a restart");
                } else if let Err(e) = self.store.set_peer_history(&site, after) {
                    tracing::error!(site, "cannot record site {site}'s history position: {e}");
                }
            }
            WriteMsg::Flush(done) => waiting.push(done),
        }
    }
}
