//! Availability over a period, from history: a pure function.
//!
//! **Definitions** (what every page, CSV and mail of the report means):
//!
//! - A service group is **available** at an instant when its state is
//!   `ONLINE` or `PARTIAL` on at least one system. Every other state
//!   (`OFFLINE`, `FAULTED`, `STARTING`, `STOPPING`) everywhere means it is
//!   not: a switch is a short outage (a planned one), a group kept offline
//!   on purpose is unavailable all the while.
//! - **Covered time** is the part of the period in which the group's state
//!   is known: from the instant the history's starting state holds (the
//!   period's start, or later for a cluster whose history begins inside
//!   the period) to the period's end. A cluster whose starting state is
//!   unknown covers nothing, and its percentage is "n/a", never 0 or 100.
//! - **Availability** = available time ÷ covered time × 100. It is
//!   computed from whole milliseconds and shown with four decimals,
//!   rounded half up ([`percent_text`]): one hour down in a day is
//!   `95.8333`. Aggregates (a cluster, the fleet) weigh each group by its
//!   covered time: Σ available ÷ Σ covered.
//! - An **outage** is a maximal stretch of covered time in which the group
//!   is available nowhere. It is **unplanned** when, at the instant it
//!   began, the group was `FAULTED` on some system or a system it had
//!   been running on had `FAULTED` (else it is planned: an offline, a
//!   switch). An outage already going on when coverage began is counted
//!   from then (`began_before`), and one still going on at the period's
//!   end is cut there (`ended: false`).
//! - **Failovers**: `Failover` events of the group within the period.
//! - **MTTR** (mean time to repair): the mean duration of the unplanned
//!   outages that began and ended inside the covered time (an outage cut
//!   at either end would understate it), in whole milliseconds rounded
//!   half up; none when there was no such outage.
//!
//! The history is a starting state and the [`Step`]s after it, as the
//! timeline's [`replay`](crate::timeline::replay) gives them: events are
//! folded in with [`fold`]; a whole snapshot (a new engine run, or events
//! lost) replaces the state. Steps at the same instant are applied
//! together before availability is judged (a fault and the failover it
//! causes in the same millisecond are no outage). Steps before the
//! coverage start count as part of the starting state; those at or after
//! the period's end are ignored; out-of-order times are taken as the
//! latest time seen. A group that a later snapshot no longer has is not
//! covered while it is absent (an outage going on is cut there); a group
//! that appears is covered from then.

use haven_model::{ClusterSnapshot, EventKind, GroupState, Name, SystemState};
use serde::Serialize;

use crate::timeline::{fold, Step};

/// A period `[from_ms, to_ms)`, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What the history says about one cluster over a period.
#[derive(Debug, Clone)]
pub struct ClusterHistory<'a> {
    pub cluster: &'a str,
    /// Its state when coverage begins (`None`: unknown — it covers nothing).
    pub start: Option<&'a ClusterSnapshot>,
    /// When `start` holds, if later than the period's start (a cluster
    /// whose history begins inside the period); `None`: at the start.
    pub known_from_ms: Option<i64>,
    /// What happened after `start`, in time order.
    pub steps: &'a [Step],
}

/// The figures of a group, or summed over groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Figures {
    /// Time whose state is known, in ms.
    pub covered_ms: i64,
    /// Of that, time available, in ms.
    pub available_ms: i64,
    /// `available_ms / covered_ms` in percent, four decimals, rounded half
    /// up (`None`: nothing covered).
    pub availability_percent: Option<f64>,
    /// Outages (planned and unplanned).
    pub outages: u64,
    /// Of those, unplanned (began with a fault).
    pub unplanned_outages: u64,
    /// Time in outages, in ms (`covered_ms - available_ms`).
    pub outage_ms: i64,
    /// The longest outage, in ms (0: none).
    pub longest_outage_ms: i64,
    /// `Failover` events.
    pub failovers: u64,
    /// Unplanned outages that began and ended inside the covered time.
    pub repairs: u64,
    /// Their total duration, in ms.
    pub repair_ms: i64,
    /// `repair_ms / repairs`, rounded half up (`None`: no repair).
    pub mttr_ms: Option<i64>,
}

impl Figures {
    /// Adds `other`'s counts and times (and recomputes the derived ones).
    fn add(&mut self, other: &Figures) {
        self.covered_ms += other.covered_ms;
        self.available_ms += other.available_ms;
        self.outages += other.outages;
        self.unplanned_outages += other.unplanned_outages;
        self.outage_ms += other.outage_ms;
        self.longest_outage_ms = self.longest_outage_ms.max(other.longest_outage_ms);
        self.failovers += other.failovers;
        self.repairs += other.repairs;
        self.repair_ms += other.repair_ms;
        self.derive();
    }

    fn derive(&mut self) {
        self.availability_percent = percent(self.available_ms, self.covered_ms);
        self.mttr_ms = (self.repairs > 0).then(|| {
            let n = self.repairs as i128;
            ((2 * self.repair_ms as i128 + n) / (2 * n)) as i64
        });
    }

    /// The availability as text: `95.8333`, or `n/a` when nothing is covered.
    pub fn percent_text(&self) -> String {
        percent_text(self.available_ms, self.covered_ms)
    }
}

/// `part / whole` in percent with four decimals, rounded half up, in
/// ten-thousandths of a percent (integer arithmetic: exact).
fn percent_units(part: i64, whole: i64) -> Option<i64> {
    if whole <= 0 {
        return None;
    }
    let (p, w) = (part as i128, whole as i128);
    Some(((2 * p * 1_000_000 + w) / (2 * w)) as i64)
}

/// `part / whole` in percent, four decimals, rounded half up.
pub fn percent(part: i64, whole: i64) -> Option<f64> {
    percent_units(part, whole).map(|u| u as f64 / 10_000.0)
}

/// `part / whole` in percent as text with four decimals (`100.0000`,
/// `95.8333`), or `n/a` when `whole` is 0.
pub fn percent_text(part: i64, whole: i64) -> String {
    match percent_units(part, whole) {
        Some(u) => format!("{}.{:04}", u / 10_000, u % 10_000),
        None => "n/a".into(),
    }
}

/// One outage of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Outage {
    /// When it began (or coverage began, if it was already going on).
    pub start_ms: i64,
    /// When it ended (the period's end if it had not).
    pub end_ms: i64,
    /// Whether it ended inside the period.
    pub ended: bool,
    /// Whether it was already going on when coverage began.
    pub began_before: bool,
    /// Began with a fault.
    pub unplanned: bool,
}

impl Outage {
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// One service group's availability.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GroupReport {
    pub group: String,
    #[serde(flatten)]
    pub figures: Figures,
    /// Every outage, oldest first.
    pub outage_list: Vec<Outage>,
}

/// One cluster's availability: its groups, and their sum.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ClusterReport {
    pub cluster: String,
    /// Whether its state was known at all in the period.
    pub known: bool,
    #[serde(flatten)]
    pub figures: Figures,
    pub groups: Vec<GroupReport>,
}

/// The availability report: every cluster, and the fleet's sum.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AvailabilityReport {
    pub period: Period,
    /// Summed over every group of every cluster (weighted by covered time).
    pub overall: Figures,
    pub clusters: Vec<ClusterReport>,
}

/// Availability of the groups `include(cluster, group)` accepts, in each
/// cluster of `clusters`, over `period` (see the module's definitions).
pub fn availability(
    period: Period,
    clusters: &[ClusterHistory<'_>],
    include: impl Fn(&str, &str) -> bool,
) -> AvailabilityReport {
    let mut overall = Figures::default();
    let reports: Vec<ClusterReport> = clusters
        .iter()
        .map(|h| {
            let report = cluster_report(period, h, &include);
            overall.add(&report.figures);
            report
        })
        .collect();
    overall.derive();
    AvailabilityReport {
        period,
        overall,
        clusters: reports,
    }
}

/// Where one group stands while the history is replayed.
struct Tracker {
    name: Name,
    /// Whether the current state has the group (else its time is not
    /// covered).
    known: bool,
    up: bool,
    /// Since when `up` holds.
    since: i64,
    /// The systems it was last available on (to tell a system's fault).
    last_active: Vec<Name>,
    /// The outage going on: (start, began before coverage, unplanned).
    down: Option<(i64, bool, bool)>,
    figures: Figures,
    outages: Vec<Outage>,
}

impl Tracker {
    /// Accounts the time from `since` to `now` in the current state.
    fn account(&mut self, now: i64) {
        if !self.known {
            self.since = now;
            return;
        }
        let span = now - self.since;
        self.figures.covered_ms += span;
        if self.up {
            self.figures.available_ms += span;
        }
        self.since = now;
    }

    fn close(&mut self, end: i64, ended: bool) {
        let Some((start, began_before, unplanned)) = self.down.take() else {
            return;
        };
        if end == start {
            // Down at the start, up in the same instant: no outage.
            return;
        }
        let outage = Outage {
            start_ms: start,
            end_ms: end,
            ended,
            began_before,
            unplanned,
        };
        let f = &mut self.figures;
        f.outages += 1;
        f.outage_ms += outage.duration_ms();
        f.longest_outage_ms = f.longest_outage_ms.max(outage.duration_ms());
        if unplanned {
            f.unplanned_outages += 1;
            if ended && !began_before {
                f.repairs += 1;
                f.repair_ms += outage.duration_ms();
            }
        }
        self.outages.push(outage);
    }
}

/// Whether an outage of `group` beginning now is a fault: the group
/// FAULTED somewhere, or a system it ran on FAULTED.
fn faulted(snap: &ClusterSnapshot, group: &str, ran_on: &[Name]) -> bool {
    let group_faulted = snap
        .group(group)
        .is_some_and(|g| g.states.iter().any(|(_, st)| *st == GroupState::Faulted));
    group_faulted
        || ran_on.iter().any(|s| {
            snap.system(s)
                .is_some_and(|sys| sys.state == SystemState::Faulted)
        })
}

fn cluster_report(
    period: Period,
    h: &ClusterHistory<'_>,
    include: &impl Fn(&str, &str) -> bool,
) -> ClusterReport {
    let mut report = ClusterReport {
        cluster: h.cluster.to_string(),
        known: false,
        figures: Figures::default(),
        groups: Vec::new(),
    };
    let Some(start) = h.start else {
        report.figures.derive();
        return report;
    };
    let begin = h
        .known_from_ms
        .unwrap_or(period.from_ms)
        .max(period.from_ms);
    let end = period.to_ms.max(begin);
    report.known = end > begin;
    let mut snap = start.clone();
    let mut steps = h.steps.iter().peekable();
    // Steps before coverage begins belong to the starting state.
    while let Some(step) = steps.next_if(|s| s.time_ms() < begin) {
        take(&mut snap, step);
    }
    let mut groups: Vec<Tracker> = Vec::new();
    track(&mut groups, &snap, begin, |g| include(h.cluster, g));
    let mut now = begin;
    while let Some(step) = steps.peek() {
        // Out-of-order times are taken as the latest seen.
        let t = step.time_ms().max(now);
        if t >= end {
            break;
        }
        now = t;
        // Every step of this instant, then the verdict.
        while let Some(step) = steps.next_if(|s| s.time_ms().max(now) == now) {
            if let Step::Event(e) = step {
                if let EventKind::Failover { group, .. } = &e.kind {
                    if let Some(g) = groups.iter_mut().find(|g| g.name == *group) {
                        g.figures.failovers += 1;
                    }
                }
            }
            take(&mut snap, step);
        }
        track(&mut groups, &snap, now, |g| include(h.cluster, g));
    }
    for mut g in groups {
        g.account(end);
        g.close(end, false);
        g.figures.derive();
        report.figures.add(&g.figures);
        report.groups.push(GroupReport {
            group: g.name.to_string(),
            figures: g.figures,
            outage_list: g.outages,
        });
    }
    report.figures.derive();
    report
}

/// Applies one step to the state.
fn take(snap: &mut ClusterSnapshot, step: &Step) {
    match step {
        Step::Event(e) => fold(snap, e),
        Step::Snapshot { snapshot, .. } => *snap = snapshot.clone(),
    }
}

/// Brings every tracker up to the state at `now`: a group that went
/// down or came back, appeared or is gone.
fn track(
    groups: &mut Vec<Tracker>,
    snap: &ClusterSnapshot,
    now: i64,
    include: impl Fn(&str) -> bool,
) {
    for g in groups.iter_mut() {
        if snap.group(&g.name).is_none() && g.known {
            g.account(now);
            g.close(now, false);
            g.known = false;
        }
    }
    for status in snap.groups.iter().filter(|g| include(&g.name)) {
        let active = snap.group_active_on(&status.name);
        let up = !active.is_empty();
        let g = match groups.iter_mut().position(|g| g.name == status.name) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Tracker {
                    name: status.name.clone(),
                    known: false,
                    up: false,
                    since: now,
                    last_active: Vec::new(),
                    down: None,
                    figures: Figures::default(),
                    outages: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        if !g.known {
            // Covered from now: down now means down since coverage began.
            g.known = true;
            g.since = now;
            g.up = up;
            g.down = (!up).then(|| (now, true, faulted(snap, &g.name, &[])));
        } else if up != g.up {
            g.account(now);
            g.up = up;
            if up {
                g.close(now, true);
            } else {
                let unplanned = faulted(snap, &g.name, &g.last_active);
                g.down = Some((now, false, unplanned));
            }
        }
        if up {
            g.last_active = active;
        }
    }
}

/// The report as CSV (RFC 4180): one line per group, one per cluster
/// (`group` empty) and one for the fleet (`cluster` and `group` empty),
/// each with its `scope`; the same figures as the JSON. Times are whole
/// milliseconds; the percentage has four decimals (`n/a`: nothing
/// covered); `mttr_ms` is empty when there was no repair.
pub fn csv(report: &AvailabilityReport) -> String {
    let from = haven_model::clock::rfc3339(report.period.from_ms);
    let to = haven_model::clock::rfc3339(report.period.to_ms);
    let mut out = String::from(
        "scope,cluster,group,from,to,covered_ms,available_ms,availability_percent,outages,\
unplanned_outages,outage_ms,longest_outage_ms,failovers,mttr_ms\r\n",
    );
    let mut line = |scope: &str, cluster: &str, group: &str, f: &Figures| {
        let cells = [
            scope.to_string(),
            csv_field(cluster),
            csv_field(group),
            from.clone(),
            to.clone(),
            f.covered_ms.to_string(),
            f.available_ms.to_string(),
            f.percent_text(),
            f.outages.to_string(),
            f.unplanned_outages.to_string(),
            f.outage_ms.to_string(),
            f.longest_outage_ms.to_string(),
            f.failovers.to_string(),
            f.mttr_ms.map(|m| m.to_string()).unwrap_or_default(),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    for c in &report.clusters {
        for g in &c.groups {
            line("group", &c.cluster, &g.group, &g.figures);
        }
        line("cluster", &c.cluster, "", &c.figures);
    }
    line("fleet", "", "", &report.overall);
    out
}

/// A CSV field, quoted when it must be (a comma, a quote, a line end) —
/// and when it starts like a spreadsheet formula.
fn csv_field(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@']);
    if formula || text.contains([',', '"', '\r', '\n']) {
        format!(
            "\"{}{}\"",
            if formula { "'" } else { "" },
            text.replace('"', "\"\"")
        )
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests;
