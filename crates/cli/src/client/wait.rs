//! The `--wait` spinner: on a terminal (standard error), a turning mark,
//! what is awaited, the seconds so far and the latest change of the
//! object (followed on the live event stream), until the answer comes.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use haven_model::Event;

use super::http::{query, Api};

struct Shared {
    stop: AtomicBool,
    /// The latest change seen, shown after the label.
    status: Mutex<String>,
}

/// A spinner drawn on standard error until stopped.
pub struct Spinner {
    shared: Arc<Shared>,
    drawer: Option<JoinHandle<()>>,
}

fn frames() -> &'static [&'static str] {
    let utf8 = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        });
    if utf8 {
        &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
    } else {
        &["|", "/", "-", "\\"]
    }
}

impl Spinner {
    /// Starts drawing `label` if standard error is a terminal.
    pub fn start(label: String) -> Option<Spinner> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            status: Mutex::new(String::new()),
        });
        let s = shared.clone();
        let drawer = std::thread::spawn(move || {
            let started = Instant::now();
            let frames = frames();
            let mut i = 0;
            while !s.stop.load(Ordering::Relaxed) {
                let status = s.status.lock().map(|t| t.clone()).unwrap_or_default();
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2K{} waiting: {label} ({}s){}",
                    frames[i % frames.len()],
                    started.elapsed().as_secs(),
                    if status.is_empty() {
                        String::new()
                    } else {
                        format!("  {status}")
                    }
                );
                let _ = err.flush();
                drop(err);
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        });
        Some(Spinner {
            shared,
            drawer: Some(drawer),
        })
    }

    /// Shows the latest change of `object` in `cluster` beside the label,
    /// from the live event stream (in a thread of its own, left behind
    /// when the command ends).
    pub fn follow(&self, api: &Api, cluster: &str, object: &str) {
        let shared = self.shared.clone();
        let api = api.clone();
        let path = format!(
            "/api/v1/events{}",
            query(&[
                ("cluster", Some(cluster.to_string())),
                ("object", Some(object.to_string()))
            ])
        );
        std::thread::spawn(move || {
            let Ok(stream) = api.events(&path, super::fleet::STREAM_IDLE) else {
                return;
            };
            for item in stream {
                let Ok(update) = item else { return };
                if update.event != "events" {
                    continue;
                }
                let data: serde_json::Value =
                    serde_json::from_str(&update.data).unwrap_or_default();
                let last = data["events"].as_array().and_then(|events| {
                    events
                        .iter()
                        .rev()
                        .find_map(|e| serde_json::from_value::<Event>(e.clone()).ok())
                });
                if let (Some(e), Ok(mut status)) = (last, shared.status.lock()) {
                    *status = e.kind.to_string();
                }
            }
        });
    }

    /// Stops and clears the line.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Spinner {
    /// Stops drawing and clears the line (also on an early return).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.drawer.take() {
            let _ = d.join();
        }
    }
}
