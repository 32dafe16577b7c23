//! Availability on hand-made histories, with the exact expected figures.

use haven_model::{
    ClusterSnapshot, Event, EventKind, Freeze, GroupState, GroupStatus, SystemState, SystemStatus,
};

use crate::timeline::Step;

use super::*;

const S: i64 = 1000;
const MIN: i64 = 60 * S;
const H: i64 = 60 * MIN;
const DAY: i64 = 24 * H;
/// 2026-12-01 00:00 UTC.
const T0: i64 = 1_796_083_200_000;

fn day() -> Period {
    Period {
        from_ms: T0,
        to_ms: T0 + DAY,
    }
}

/// A cluster of systems n1 and n2 (running) and `groups`, each with its
/// state on n1 and n2.
fn snap(groups: &[(&str, GroupState, GroupState)]) -> ClusterSnapshot {
    let config = serde_json::from_value(serde_json::json!({
        "name": "c", "systems": [], "groups": []
    }))
    .unwrap();
    ClusterSnapshot {
        seq: 0,
        config,
        systems: ["n1", "n2"]
            .iter()
            .map(|n| SystemStatus {
                name: (*n).into(),
                state: SystemState::Running,
                freeze: Freeze::None,
            })
            .collect(),
        groups: groups
            .iter()
            .map(|(g, n1, n2)| GroupStatus {
                name: (*g).into(),
                freeze: Freeze::None,
                enabled: true,
                states: vec![("n1".into(), *n1), ("n2".into(), *n2)],
                resources: vec![],
            })
            .collect(),
    }
}

/// Steps: events with times and sequence numbers from 1 (again from 1
/// after a snapshot, as in a new engine run).
#[derive(Default)]
struct Story(Vec<Step>, u64);

impl Story {
    fn at(mut self, t: i64, kind: EventKind) -> Self {
        self.1 += 1;
        self.0.push(Step::Event(Event {
            seq: self.1,
            time_ms: t,
            kind,
        }));
        self
    }

    /// The state taken whole at `T0 + t`.
    fn snapshot(mut self, t: i64, snapshot: ClusterSnapshot) -> Self {
        self.1 = snapshot.seq;
        self.0.push(Step::Snapshot {
            time_ms: T0 + t,
            snapshot,
        });
        self
    }

    /// `group` on `system` goes `from` → `to` at `T0 + t`.
    fn group(self, t: i64, group: &str, system: &str, from: GroupState, to: GroupState) -> Self {
        self.at(
            T0 + t,
            EventKind::GroupState {
                group: group.into(),
                system: system.into(),
                from,
                to,
            },
        )
    }

    fn failover(self, t: i64, group: &str, from: &str, to: &str) -> Self {
        self.at(
            T0 + t,
            EventKind::Failover {
                group: group.into(),
                from: from.into(),
                to: Some(to.into()),
                reason: "fault".into(),
            },
        )
    }

    fn system(self, t: i64, system: &str, from: SystemState, to: SystemState) -> Self {
        self.at(
            T0 + t,
            EventKind::SystemState {
                system: system.into(),
                from,
                to,
            },
        )
    }
}

use GroupState::{Faulted, Offline, Online, Partial, Starting, Stopping};

/// The report of one cluster `c` over one day.
fn one(start: &ClusterSnapshot, story: &Story) -> AvailabilityReport {
    availability(
        day(),
        &[ClusterHistory {
            cluster: "c",
            start: Some(start),
            known_from_ms: None,
            steps: &story.0,
        }],
        |_, _| true,
    )
}

fn group<'a>(r: &'a AvailabilityReport, name: &str) -> &'a GroupReport {
    r.clusters[0]
        .groups
        .iter()
        .find(|g| g.group == name)
        .unwrap()
}

#[test]
fn a_group_online_all_day_is_100_percent_available() {
    let r = one(&snap(&[("web", Online, Offline)]), &Story::default());
    let f = &group(&r, "web").figures;
    assert_eq!(f.covered_ms, DAY);
    assert_eq!(f.available_ms, DAY);
    assert_eq!(f.availability_percent, Some(100.0));
    assert_eq!(f.percent_text(), "100.0000");
    assert_eq!((f.outages, f.failovers, f.mttr_ms), (0, 0, None));
    assert!(r.clusters[0].known);
}

#[test]
fn one_hour_faulted_in_a_day_is_95_8333_percent_with_an_mttr_of_one_hour() {
    let story = Story::default()
        .group(10 * H, "web", "n1", Online, Faulted)
        .group(11 * H, "web", "n1", Faulted, Offline)
        .group(11 * H, "web", "n1", Offline, Starting)
        .group(11 * H + 30 * S, "web", "n1", Starting, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let g = group(&r, "web");
    let f = &g.figures;
    // Down from the fault until ONLINE again: 1 h 30 s, so
    // 82 770 000 / 86 400 000 = 95.798611...%.
    assert_eq!(f.available_ms, DAY - H - 30 * S);
    assert_eq!(f.percent_text(), "95.7986");
    assert_eq!(
        g.outage_list,
        vec![Outage {
            start_ms: T0 + 10 * H,
            end_ms: T0 + 11 * H + 30 * S,
            ended: true,
            began_before: false,
            unplanned: true,
        }]
    );
    assert_eq!((f.outages, f.unplanned_outages), (1, 1));
    assert_eq!(f.mttr_ms, Some(H + 30 * S));

    // Exactly one hour: the classic 23/24.
    let story = Story::default()
        .group(10 * H, "web", "n1", Online, Faulted)
        .group(11 * H, "web", "n1", Faulted, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let f = &group(&r, "web").figures;
    assert_eq!((f.available_ms, f.covered_ms), (23 * H, DAY));
    assert_eq!(f.percent_text(), "95.8333");
    assert_eq!(f.availability_percent, Some(95.8333));
    assert_eq!(
        (f.outage_ms, f.longest_outage_ms, f.mttr_ms),
        (H, H, Some(H))
    );
}

#[test]
fn a_failover_in_the_same_millisecond_is_no_outage_but_is_counted() {
    let story = Story::default()
        .group(5 * H, "web", "n1", Online, Faulted)
        .failover(5 * H, "web", "n1", "n2")
        .group(5 * H, "web", "n2", Offline, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let f = &group(&r, "web").figures;
    assert_eq!(f.percent_text(), "100.0000");
    assert_eq!((f.outages, f.failovers), (0, 1));
}

#[test]
fn a_failover_that_takes_90_seconds_is_an_unplanned_outage_of_90_seconds() {
    let story = Story::default()
        .group(5 * H, "web", "n1", Online, Faulted)
        .failover(5 * H, "web", "n1", "n2")
        .group(5 * H, "web", "n2", Offline, Starting)
        .group(5 * H + 90 * S, "web", "n2", Starting, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let f = &group(&r, "web").figures;
    // (86 400 000 − 90 000) / 86 400 000 = 99.895833...%
    assert_eq!(f.percent_text(), "99.8958");
    assert_eq!(
        (f.outages, f.unplanned_outages, f.failovers, f.mttr_ms),
        (1, 1, 1, Some(90 * S))
    );
}

#[test]
fn a_switch_is_a_planned_outage_and_no_repair() {
    let story = Story::default()
        .group(8 * H, "web", "n1", Online, Stopping)
        .group(8 * H + 10 * S, "web", "n1", Stopping, Offline)
        .group(8 * H + 10 * S, "web", "n2", Offline, Starting)
        .group(8 * H + 30 * S, "web", "n2", Starting, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let g = group(&r, "web");
    assert_eq!(g.figures.available_ms, DAY - 30 * S);
    assert_eq!((g.figures.outages, g.figures.unplanned_outages), (1, 0));
    assert!(!g.outage_list[0].unplanned);
    assert_eq!(g.figures.mttr_ms, None, "a planned outage is no repair");
}

#[test]
fn a_system_fault_makes_the_outage_unplanned_even_if_the_group_shows_offline() {
    let story = Story::default()
        .system(3 * H, "n1", SystemState::Running, SystemState::Faulted)
        .group(3 * H, "web", "n1", Online, Offline)
        .group(3 * H + MIN, "web", "n2", Offline, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let f = &group(&r, "web").figures;
    assert_eq!((f.unplanned_outages, f.mttr_ms), (1, Some(MIN)));
}

#[test]
fn partial_counts_as_available() {
    let story = Story::default()
        .group(H, "web", "n1", Online, Partial)
        .group(2 * H, "web", "n1", Partial, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    assert_eq!(group(&r, "web").figures.percent_text(), "100.0000");
}

#[test]
fn an_outage_going_on_at_the_end_is_cut_there_and_is_no_repair() {
    let story = Story::default().group(23 * H, "web", "n1", Online, Faulted);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let g = group(&r, "web");
    assert_eq!(g.figures.percent_text(), "95.8333");
    assert_eq!(
        g.outage_list,
        vec![Outage {
            start_ms: T0 + 23 * H,
            end_ms: T0 + DAY,
            ended: false,
            began_before: false,
            unplanned: true,
        }]
    );
    assert_eq!((g.figures.unplanned_outages, g.figures.mttr_ms), (1, None));
}

#[test]
fn an_outage_going_on_at_the_start_is_counted_from_there_and_is_no_repair() {
    let story = Story::default()
        .group(2 * H, "web", "n1", Faulted, Offline)
        .group(2 * H, "web", "n2", Offline, Online);
    let r = one(&snap(&[("web", Faulted, Offline)]), &story);
    let g = group(&r, "web");
    // 22 h of 24: 91.6666...% rounds half up to 91.6667.
    assert_eq!(g.figures.percent_text(), "91.6667");
    assert_eq!(g.figures.availability_percent, Some(91.6667));
    assert!(g.outage_list[0].began_before && g.outage_list[0].unplanned);
    assert_eq!(g.figures.mttr_ms, None);
}

#[test]
fn a_group_down_at_the_start_and_up_in_that_instant_has_no_outage() {
    let story = Story::default().group(0, "web", "n1", Faulted, Online);
    let r = one(&snap(&[("web", Faulted, Offline)]), &story);
    let g = group(&r, "web");
    assert_eq!(g.figures.percent_text(), "100.0000");
    assert!(g.outage_list.is_empty());
}

#[test]
fn a_new_engine_run_replaces_the_state_and_its_events_follow() {
    // The engine restarts at 6 h with web offline everywhere; web is
    // online again 5 min later (the new run's event 1).
    let story = Story::default()
        .snapshot(6 * H, snap(&[("web", Offline, Offline)]))
        .group(6 * H + 5 * MIN, "web", "n1", Offline, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let g = group(&r, "web");
    assert_eq!(g.figures.available_ms, DAY - 5 * MIN);
    assert_eq!(
        g.outage_list,
        vec![Outage {
            start_ms: T0 + 6 * H,
            end_ms: T0 + 6 * H + 5 * MIN,
            ended: true,
            began_before: false,
            unplanned: false,
        }]
    );
}

#[test]
fn a_group_gone_from_a_later_snapshot_is_not_covered_while_absent() {
    // At 12 h the configuration no longer has db (and has a new app);
    // db was down since 11 h.
    let story = Story::default()
        .group(11 * H, "db", "n2", Online, Faulted)
        .snapshot(
            12 * H,
            snap(&[("web", Online, Offline), ("app", Offline, Online)]),
        );
    let r = one(
        &snap(&[("web", Online, Offline), ("db", Offline, Online)]),
        &story,
    );
    let db = group(&r, "db");
    assert_eq!(
        (db.figures.covered_ms, db.figures.available_ms),
        (12 * H, 11 * H)
    );
    assert!(!db.outage_list[0].ended && db.outage_list[0].unplanned);
    let app = group(&r, "app");
    assert_eq!(
        (app.figures.covered_ms, app.figures.available_ms),
        (12 * H, 12 * H)
    );
    assert_eq!(r.clusters[0].figures.covered_ms, 48 * H);
}

#[test]
fn an_unknown_start_covers_nothing_and_says_so() {
    let r = availability(
        day(),
        &[ClusterHistory {
            cluster: "dark",
            start: None,
            known_from_ms: None,
            steps: &[],
        }],
        |_, _| true,
    );
    let c = &r.clusters[0];
    assert!(!c.known);
    assert_eq!(c.figures.covered_ms, 0);
    assert_eq!(c.figures.availability_percent, None);
    assert_eq!(c.figures.percent_text(), "n/a");
    assert_eq!(r.overall.percent_text(), "n/a");
}

#[test]
fn a_cluster_known_from_midday_covers_half_the_day() {
    let start = snap(&[("web", Online, Offline)]);
    let story = Story::default().group(18 * H, "web", "n1", Online, Faulted);
    let r = availability(
        day(),
        &[ClusterHistory {
            cluster: "c",
            start: Some(&start),
            known_from_ms: Some(T0 + 12 * H),
            steps: &story.0,
        }],
        |_, _| true,
    );
    let f = &r.clusters[0].figures;
    assert_eq!((f.covered_ms, f.available_ms), (12 * H, 6 * H));
    assert_eq!(f.percent_text(), "50.0000");
}

#[test]
fn clusters_and_the_fleet_are_weighted_by_covered_time() {
    // Cluster a: web 100 %, db down 1 h (23/24) → 47/48 = 97.9167 %.
    let a = snap(&[("web", Online, Offline), ("db", Offline, Online)]);
    let a_story = Story::default()
        .group(H, "db", "n2", Online, Faulted)
        .group(2 * H, "db", "n2", Faulted, Online);
    // Cluster b: known for the last 12 h, down 6 h of them.
    let b = snap(&[("app", Online, Offline)]);
    let b_story = Story::default().group(18 * H, "app", "n1", Online, Offline);
    let r = availability(
        day(),
        &[
            ClusterHistory {
                cluster: "a",
                start: Some(&a),
                known_from_ms: None,
                steps: &a_story.0,
            },
            ClusterHistory {
                cluster: "b",
                start: Some(&b),
                known_from_ms: Some(T0 + 12 * H),
                steps: &b_story.0,
            },
            ClusterHistory {
                cluster: "unknown",
                start: None,
                known_from_ms: None,
                steps: &[],
            },
        ],
        |_, _| true,
    );
    assert_eq!(r.clusters[0].figures.percent_text(), "97.9167");
    assert_eq!(r.clusters[1].figures.percent_text(), "50.0000");
    // (47 h + 6 h) / (48 h + 12 h) = 88.3333...%
    assert_eq!(r.overall.covered_ms, 60 * H);
    assert_eq!(r.overall.available_ms, 53 * H);
    assert_eq!(r.overall.percent_text(), "88.3333");
    assert_eq!(r.overall.outages, 2);
    assert_eq!(r.overall.unplanned_outages, 1);
    assert_eq!(r.overall.longest_outage_ms, 6 * H);
    assert_eq!(r.overall.mttr_ms, Some(H));
}

#[test]
fn mttr_is_the_mean_of_the_repairs_rounded_half_up() {
    let story = Story::default()
        .group(H, "web", "n1", Online, Faulted)
        .group(2 * H, "web", "n1", Faulted, Online)
        .group(5 * H, "web", "n1", Online, Faulted)
        .group(5 * H + 30 * MIN + 1, "web", "n1", Faulted, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let f = &group(&r, "web").figures;
    assert_eq!((f.repairs, f.repair_ms), (2, H + 30 * MIN + 1));
    // (5 400 001 ms) / 2 = 2 700 000.5 → 2 700 001.
    assert_eq!(f.mttr_ms, Some(45 * MIN + 1));
    assert_eq!(f.longest_outage_ms, H);
}

#[test]
fn events_outside_the_period_shape_the_start_or_are_ignored() {
    let story = Story::default()
        // Before the period: web already moved to n2.
        .group(-H, "web", "n1", Online, Offline)
        .group(-H, "web", "n2", Offline, Online)
        // After it: ignored.
        .group(DAY, "web", "n2", Online, Faulted)
        .group(DAY + H, "web", "n2", Faulted, Online);
    let r = one(&snap(&[("web", Online, Offline)]), &story);
    let f = &group(&r, "web").figures;
    assert_eq!((f.percent_text().as_str(), f.outages), ("100.0000", 0));
}

#[test]
fn only_the_groups_asked_for_are_reported_and_counted() {
    let story = Story::default()
        .group(H, "db", "n2", Online, Faulted)
        .failover(H, "db", "n2", "n1");
    let r = availability(
        day(),
        &[ClusterHistory {
            cluster: "c",
            start: Some(&snap(&[("web", Online, Offline), ("db", Offline, Online)])),
            known_from_ms: None,
            steps: &story.0,
        }],
        |_, g| g == "web",
    );
    let names: Vec<&str> = r.clusters[0]
        .groups
        .iter()
        .map(|g| g.group.as_str())
        .collect();
    assert_eq!(names, ["web"]);
    assert_eq!(
        (r.overall.percent_text().as_str(), r.overall.failovers),
        ("100.0000", 0)
    );
}

#[test]
fn percentages_have_four_decimals_rounded_half_up() {
    assert_eq!(percent_text(2, 3), "66.6667");
    assert_eq!(percent_text(1, 3), "33.3333");
    assert_eq!(percent_text(1, 8), "12.5000");
    // 0.00005 % exactly: half a unit of the last decimal, rounded up.
    assert_eq!(percent_text(1, 2_000_000), "0.0001");
    assert_eq!(percent_text(1, 2_000_001), "0.0000");
    assert_eq!(percent_text(0, 5), "0.0000");
    assert_eq!(percent_text(5, 5), "100.0000");
    assert_eq!(percent_text(1, 0), "n/a");
    assert_eq!(percent(23, 24), Some(95.8333));
    // A year in ms does not overflow.
    assert_eq!(percent_text(365 * DAY - 1, 365 * DAY), "100.0000");
}

#[test]
fn times_are_consistent_on_random_histories() {
    let mut rng = fastrand::Rng::with_seed(7);
    let states = [Online, Offline, Faulted, Partial, Starting, Stopping];
    for _ in 0..200 {
        let mut story = Story::default();
        let mut n1 = Online;
        let mut n2 = Offline;
        let mut t = 0;
        for _ in 0..rng.usize(0..40) {
            t += rng.i64(0..2 * H);
            let to = states[rng.usize(0..states.len())];
            let system = if rng.bool() { "n1" } else { "n2" };
            let from = if system == "n1" { n1 } else { n2 };
            if system == "n1" {
                n1 = to;
            } else {
                n2 = to;
            }
            story = story.group(t, "web", system, from, to);
            if rng.u8(0..10) == 0 {
                story = story.failover(t, "web", "n1", "n2");
            }
        }
        let r = one(&snap(&[("web", Online, Offline)]), &story);
        let g = group(&r, "web");
        let f = &g.figures;
        assert_eq!(f.covered_ms, DAY);
        assert_eq!(f.outage_ms, f.covered_ms - f.available_ms);
        assert_eq!(
            g.outage_list.iter().map(Outage::duration_ms).sum::<i64>(),
            f.outage_ms
        );
        assert_eq!(g.outage_list.len() as u64, f.outages);
        assert!(g
            .outage_list
            .windows(2)
            .all(|w| w[0].end_ms < w[1].start_ms));
        assert!(g.outage_list.iter().all(|o| o.duration_ms() > 0));
        assert_eq!(r.overall, *f, "one group: the fleet is the group");
    }
}
