//! The bounded event journal: the last N events of a cluster, so a client
//! that reconnects can resume from the last sequence it saw.

use std::collections::VecDeque;

use haven_model::Event;

/// What a client resuming after sequence `after` gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Every event after `after`, in order (possibly none).
    Events(Vec<Event>),
    /// The journal no longer holds event `after + 1`.
    TooOld { oldest: u64 },
    /// `after` is beyond the last event: not this engine's sequence.
    Unknown { current: u64 },
}

/// The last `capacity` events, in sequence order.
pub struct Journal {
    events: VecDeque<Event>,
    capacity: usize,
    /// Sequence number of the last event appended (0 before the first).
    last: u64,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Journal {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            last: 0,
        }
    }

    /// Appends an event; it must be the next in sequence.
    pub fn push(&mut self, event: Event) {
        debug_assert_eq!(event.seq, self.last + 1, "journal events must be in order");
        self.last = event.seq;
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    pub fn last_seq(&self) -> u64 {
        self.last
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events after `after`.
    pub fn resume(&self, after: u64) -> Resume {
        if after > self.last {
            return Resume::Unknown { current: self.last };
        }
        if after == self.last {
            return Resume::Events(Vec::new());
        }
        let oldest = self.events.front().map(|e| e.seq).unwrap_or(self.last + 1);
        if after + 1 < oldest {
            return Resume::TooOld { oldest };
        }
        let skip = (after + 1 - oldest) as usize;
        Resume::Events(self.events.iter().skip(skip).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_model::{EventKind, Severity};

    fn event(seq: u64) -> Event {
        Event {
            seq,
            time_ms: 0,
            kind: EventKind::Notice {
                severity: Severity::Info,
                object: None,
                message: format!("event {seq}"),
            },
        }
    }

    #[test]
    fn resume_returns_exactly_the_missing_events() {
        let mut j = Journal::new(5);
        for seq in 1..=8 {
            j.push(event(seq));
        }
        assert_eq!(j.len(), 5);
        let Resume::Events(evs) = j.resume(5) else {
            panic!("expected events")
        };
        assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![6, 7, 8]);
        assert_eq!(
            j.resume(3),
            Resume::Events(j.events.iter().cloned().collect())
        );
        assert_eq!(j.resume(2), Resume::TooOld { oldest: 4 });
        assert_eq!(j.resume(8), Resume::Events(vec![]));
        assert_eq!(j.resume(9), Resume::Unknown { current: 8 });
    }

    #[test]
    fn an_empty_journal_resumes_from_zero() {
        let j = Journal::new(3);
        assert_eq!(j.resume(0), Resume::Events(vec![]));
        assert_eq!(j.resume(1), Resume::Unknown { current: 0 });
    }
}
