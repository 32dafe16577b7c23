//! Scheduled reports (`[[reports.schedule]]`): the availability report of
//! the last `period`, mailed `daily` or `weekly` at a UTC time to a list
//! of addresses, through an SMTP channel of `[[alerts.channel]]` (its
//! server, TLS and login; the schedule's own recipients) — the same code
//! that mails alerts ([`smtp::deliver`]). The mail has the figures as text
//! and the CSV attached. Every sending is recorded in the delivery log
//! (`alert_id` none, event `report:NAME`), like a notification.
//!
//! When a run is due is a pure function ([`next_run`]); the task only
//! sleeps until then. A server that was down at a run's time does not
//! catch up (the next run's period covers the same days).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::api::{report, Asked};
use super::availability::{csv, AvailabilityReport, Period};
use crate::alerts::channels::smtp;
use crate::alerts::settings::{ChannelEntry, SmtpChannel};
use crate::alerts::AlertsSection;
use crate::writer::WriteMsg;
use crate::Server;

/// `[reports]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsSection {
    #[serde(rename = "schedule")]
    pub schedules: Vec<ScheduleEntry>,
}

/// How often a scheduled report goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    /// Every day at `at`.
    Daily,
    /// Every Monday at `at`.
    Weekly,
}

/// `[[reports.schedule]]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub name: String,
    pub every: Every,
    /// `HH:MM`, UTC.
    #[serde(default = "default_at")]
    pub at: String,
    /// How far back the report goes from the run: `24h`, `7d`, `30d`...
    #[serde(default = "default_period")]
    pub period: String,
    /// Only this cluster (default: every cluster).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Only service groups of this name.
    #[serde(default)]
    pub group: Option<String>,
    /// Only groups carrying these tags (`env=prod,tier=web`; on the group
    /// or its cluster).
    #[serde(default)]
    pub tag: Option<String>,
    /// Where it goes.
    pub to: Vec<String>,
    /// An `[[alerts.channel]]` of type smtp: the mail server to send through.
    pub channel: String,
}

fn default_at() -> String {
    "06:00".into()
}

fn default_period() -> String {
    "7d".into()
}

const DAY_MS: i64 = 86_400_000;

impl ScheduleEntry {
    /// Minutes after midnight UTC of `at`.
    fn minute_of_day(&self) -> Result<i64, String> {
        let bad = || {
            format!(
                "at = \"{}\": write the UTC time as HH:MM, e.g. \"06:00\"",
                self.at
            )
        };
        let (h, m) = self.at.split_once(':').ok_or_else(bad)?;
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    }

    /// The length of `period`, in ms.
    fn period_ms(&self) -> Result<i64, String> {
        // A time ago, relative to a fixed instant, is its length.
        let length = haven_model::clock::parse_instant(&self.period, 0)
            .ok()
            .map(|t| -t)
            .filter(|ms| *ms > 0)
            .ok_or_else(|| {
                format!(
                    "period = \"{}\": write how far back, e.g. \"24h\", \"7d\" or \"30d\"",
                    self.period
                )
            })?;
        Ok(length)
    }

    /// The period a run at `run_ms` reports on: the `period` before it.
    pub fn period_at(&self, run_ms: i64) -> Result<Period, String> {
        Ok(Period {
            from_ms: run_ms - self.period_ms()?,
            to_ms: run_ms,
        })
    }
}

/// The first run of `entry` strictly after `after_ms`: the next `at`
/// (UTC) — for `weekly`, the next Monday's.
pub fn next_run(entry: &ScheduleEntry, after_ms: i64) -> Result<i64, String> {
    let minute = entry.minute_of_day()?;
    let day = after_ms.div_euclid(DAY_MS);
    let mut run = day * DAY_MS + minute * 60_000;
    if run <= after_ms {
        run += DAY_MS;
    }
    if entry.every == Every::Weekly {
        // Day 0 (1970-01-01) was a Thursday: Monday is day 4 mod 7.
        let weekday_from_monday = (run.div_euclid(DAY_MS) - 4).rem_euclid(7);
        if weekday_from_monday != 0 {
            run += (7 - weekday_from_monday) * DAY_MS;
        }
    }
    Ok(run)
}

impl ReportsSection {
    /// Checks every schedule against the alert channels; the error names
    /// the schedule and the fix.
    pub fn check(&self, alerts: &AlertsSection) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for s in &self.schedules {
            let at = |e: String| format!("[[reports.schedule]] `{}`: {e}", s.name);
            if !names.insert(&s.name) {
                return Err(at("another schedule has this name".into()));
            }
            s.minute_of_day().map_err(at)?;
            crate::tags::parse_filters(s.tag.as_deref()).map_err(|e| at(format!("tag: {e}")))?;
            s.period_ms().map_err(at)?;
            if s.to.is_empty()
                || s.to
                    .iter()
                    .any(|a| !a.contains('@') || a.contains(['\r', '\n', '<', '>']))
            {
                return Err(at(
                    "to = [...] needs at least one mail address, each like ops@example.com".into(),
                ));
            }
            smtp_channel(alerts, &s.channel).map_err(at)?;
        }
        Ok(())
    }
}

/// The SMTP channel called `name`.
fn smtp_channel(alerts: &AlertsSection, name: &str) -> Result<SmtpChannel, String> {
    let smtp: Vec<&str> = alerts
        .channels
        .iter()
        .filter_map(|c| match c {
            ChannelEntry::Smtp(s) => Some(s.name.as_str()),
            _ => None,
        })
        .collect();
    alerts
        .channels
        .iter()
        .find_map(|c| match c {
            ChannelEntry::Smtp(s) if s.name == name => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "channel = \"{name}\" is not an [[alerts.channel]] of type smtp ({})",
                if smtp.is_empty() {
                    "there is none: add one".to_string()
                } else {
                    format!("smtp channels: {}", smtp.join(", "))
                }
            )
        })
}

/// The mail of a report: a text part with the figures, and the CSV.
pub fn mail(
    channel: &SmtpChannel,
    entry: &ScheduleEntry,
    server_name: &str,
    report: &AvailabilityReport,
    sent_ms: i64,
) -> String {
    let clock = haven_model::clock::rfc3339;
    let (from, to) = (clock(report.period.from_ms), clock(report.period.to_ms));
    let mut text = format!(
        "Availability from {from} to {to} (UTC), report `{}` of {server_name}.\n\n\
         Fleet: {}% of {} h covered; {} outages ({} unplanned), {} failovers{}.\n\n",
        entry.name,
        report.overall.percent_text(),
        report.overall.covered_ms / 3_600_000,
        report.overall.outages,
        report.overall.unplanned_outages,
        report.overall.failovers,
        report
            .overall
            .mttr_ms
            .map(|m| format!(", MTTR {} min", (m + 30_000) / 60_000))
            .unwrap_or_default(),
    );
    for c in &report.clusters {
        text.push_str(&format!(
            "{:<24} {:>9}%  {} outages, {} failovers\n",
            c.cluster,
            c.figures.percent_text(),
            c.figures.outages,
            c.figures.failovers
        ));
    }
    text.push_str(
        "\nA group is available while ONLINE or PARTIAL on at least one system; percentages are \
         of the time its state is known. Every group's figures are in the attached CSV.\n",
    );
    let boundary = format!("haven-report-{sent_ms}");
    let attachment = base64::engine::general_purpose::STANDARD.encode(csv(report));
    let wrapped: Vec<&str> = attachment
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let file = format!("availability-{}-{}.csv", &from[..10], &to[..10]);
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let head = format!(
        "From: Haven <{}>\r\nTo: {}\r\nSubject: [haven] availability report {}: {}% ({} to {})\r\n\
         Date: {}\r\nMessage-ID: <haven-report-{}-{sent_ms}@{}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n",
        channel.from,
        entry.to.join(", "),
        clean(&entry.name),
        report.overall.percent_text(),
        &from[..10],
        &to[..10],
        crate::alerts::channels::rfc5322(sent_ms),
        clean(&entry.name).replace(' ', "-"),
        clean(server_name),
    );
    let body = format!(
        "--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n\
         --{boundary}\nContent-Type: text/csv; charset=utf-8; name=\"{file}\"\n\
         Content-Disposition: attachment; filename=\"{file}\"\nContent-Transfer-Encoding: base64\n\n{}\n\
         --{boundary}--",
        wrapped.join("\n")
    );
    smtp::frame(head, &body)
}

impl Server {
    /// Computes and mails the scheduled report `name` for the period
    /// ending at `run_ms`; the attempt is recorded in the delivery log.
    pub async fn send_scheduled_report(
        self: &Arc<Self>,
        name: &str,
        run_ms: i64,
    ) -> Result<AvailabilityReport, String> {
        let entry = self
            .config
            .reports
            .schedules
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .config
                    .reports
                    .schedules
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                format!(
                    "no [[reports.schedule]] is named `{name}` (schedules: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )
            })?;
        let mut channel = smtp_channel(&self.config.alerts, &entry.channel)?;
        let asked = Asked {
            period: entry.period_at(run_ms)?,
            cluster: entry.cluster.clone(),
            group: entry.group.clone(),
            tags: crate::tags::parse_filters(entry.tag.as_deref())?,
            csv: true,
        };
        let report = report(self, None, &asked).await.map_err(|e| e.message)?;
        let me = crate::tls::host_name().unwrap_or_else(|| "haven".into());
        let message = mail(&channel, &entry, &me, &report, crate::now_ms());
        channel.to = entry.to.clone();
        let sent = tokio::time::timeout(
            Duration::from_secs(channel.timeout_secs.max(1)),
            smtp::deliver(&channel, &me, &message),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the mail server did not answer within {} s",
                channel.timeout_secs
            ))
        });
        let record = haven_store::NewDelivery {
            alert_id: None,
            channel: entry.channel.clone(),
            event: format!("report:{}", entry.name),
            attempt: 1,
            outcome: if sent.is_ok() {
                haven_store::DeliveryOutcome::Sent
            } else {
                haven_store::DeliveryOutcome::Failed
            },
            error: sent.as_ref().err().cloned(),
            time_ms: crate::now_ms(),
        };
        let _ = self.history.send(WriteMsg::Deliveries(vec![record])).await;
        sent.map(|()| report)
    }

    /// Runs every `[[reports.schedule]]` in the background.
    pub fn spawn_report_schedules(self: &Arc<Self>) {
        for entry in self.config.reports.schedules.clone() {
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut after = crate::now_ms();
                loop {
                    let Ok(run) = next_run(&entry, after) else {
                        return;
                    };
                    // Sleep in steps: a changed clock is noticed within a minute.
                    loop {
                        let left = run - crate::now_ms();
                        if left <= 0 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(left.min(60_000) as u64)).await;
                    }
                    let Some(server) = me.upgrade() else { return };
                    match server.send_scheduled_report(&entry.name, run).await {
                        Ok(_) => tracing::info!(
                            "report `{}` mailed to {}",
                            entry.name,
                            entry.to.join(", ")
                        ),
                        Err(e) => tracing::error!("report `{}` not mailed: {e}", entry.name),
                    }
                    after = run;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(every: Every, at: &str) -> ScheduleEntry {
        ScheduleEntry {
            name: "weekly ops".into(),
            every,
            at: at.into(),
            period: "7d".into(),
            cluster: None,
            group: None,
            tag: None,
            to: vec!["ops@example.com".into()],
            channel: "mail".into(),
        }
    }

    /// 2026-12-03 (a Thursday) 08:14:45 UTC.
    const NOW: i64 = 1_796_285_685_000;

    #[test]
    fn a_daily_run_is_the_next_time_of_day_and_a_weekly_one_the_next_monday() {
        let clock = haven_model::clock::rfc3339;
        let daily = entry(Every::Daily, "06:00");
        assert_eq!(
            clock(next_run(&daily, NOW).unwrap()),
            "2026-12-04T06:00:00Z"
        );
        let later = entry(Every::Daily, "23:30");
        assert_eq!(
            clock(next_run(&later, NOW).unwrap()),
            "2026-12-03T23:30:00Z"
        );
        let weekly = entry(Every::Weekly, "06:00");
        assert_eq!(
            clock(next_run(&weekly, NOW).unwrap()),
            "2026-12-07T06:00:00Z"
        );
        // At the very run time, the next one.
        let run = next_run(&weekly, NOW).unwrap();
        assert_eq!(
            clock(next_run(&weekly, run).unwrap()),
            "2026-12-14T06:00:00Z"
        );
        assert_eq!(
            weekly.period_at(run).unwrap(),
            Period {
                from_ms: run - 7 * DAY_MS,
                to_ms: run
            }
        );
    }

    #[test]
    fn a_bad_schedule_is_refused_with_what_to_write() {
        let alerts: AlertsSection = toml::from_str(
            "[[channel]]\nname = \"mail\"\ntype = \"smtp\"\nhost = \"h\"\nfrom = \"haven@example.com\"\nto = [\"a@example.com\"]\n\
             [[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"0123456789abcdef\"\n",
        )
        .unwrap();
        let ok = ReportsSection {
            schedules: vec![entry(Every::Daily, "06:00")],
        };
        ok.check(&alerts).unwrap();
        for (change, words) in [
            (("at", "6am"), "write the UTC time as HH:MM"),
            (("at", "25:00"), "HH:MM"),
            (("period", "soon"), "write how far back"),
            (("channel", "hook"), "smtp channels: mail"),
            (("to", ""), "needs at least one mail address"),
        ] {
            let mut e = entry(Every::Daily, "06:00");
            match change.0 {
                "at" => e.at = change.1.into(),
                "period" => e.period = change.1.into(),
                "channel" => e.channel = change.1.into(),
                _ => e.to = vec![],
            }
            let err = ReportsSection { schedules: vec![e] }
                .check(&alerts)
                .unwrap_err();
            assert!(err.contains(words) && err.contains("`weekly ops`"), "{err}");
        }
    }
}
