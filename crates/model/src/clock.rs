//! Civil (calendar) UTC time of a Unix time, for file names, mail and
//! syslog headers: a few lines of arithmetic instead of a date library.

/// A moment in UTC, broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

/// `ms` since the Unix epoch, in UTC (Howard Hinnant's days-to-civil).
pub fn civil(ms: i64) -> Civil {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        millisecond: ms.rem_euclid(1000) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// Days since the Unix epoch of a civil date (the inverse of [`civil`]'s
/// date part).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `ms` as RFC 3339 in UTC, to the second: `2026-12-03T08:14:45Z`.
pub fn rfc3339(ms: i64) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Reads an instant a person typed, as ms since the Unix epoch:
/// - RFC 3339 or close to it: `2026-12-03T08:14:45Z`, `2026-12-03 08:14`,
///   `2026-12-03T08:14:45.250+01:00`, `2026-12-03` (midnight); without a
///   zone the time is UTC;
/// - a time that long ago: `90s`, `15m`, `2h`, `7d`, `1w` (also written
///   `-2h` or `2h ago`);
/// - `now`;
/// - a plain number: ms since the Unix epoch.
///
/// The error says what was expected.
pub fn parse_instant(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "cannot read {text:?} as a time: give RFC 3339 (2026-12-03T08:15:00Z), \
             a date (2026-12-03), a time ago (15m, 2h, 7d) or ms since 1970"
        )
    };
    if t.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    let ago = t.strip_suffix("ago").map(str::trim_end).unwrap_or(t);
    let ago = ago.strip_prefix('-').unwrap_or(ago);
    if let Some(ms) = parse_span(ago) {
        return Ok(now_ms - ms);
    }
    parse_rfc3339(t).ok_or_else(bad)
}

/// `15m`, `2h`, `1d12h` as ms; `None` when it is not one.
pub fn parse_span(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let (mut total, mut digits) = (0i64, String::new());
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return None,
        };
        let n: i64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    digits.is_empty().then_some(total)
}

fn parse_rfc3339(t: &str) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, rest) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    if civil(days * 86_400_000).day != day as u32 {
        return None; // 31 February
    }
    let mut ms = days * 86_400_000;
    let Some(rest) = rest else { return Some(ms) };
    // The zone: Z, +HH:MM, -HH:MM or nothing (UTC).
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (h, m) = rest[i + 1..].split_once(':')?;
        let sign = if rest.as_bytes()[i] == b'+' { 1 } else { -1 };
        (&rest[..i], sign * (num(h)? * 3_600_000 + num(m)? * 60_000))
    } else {
        (rest, 0)
    };
    let (clock, fraction) = match clock.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (clock, None),
    };
    let mut parts = clock.split(':');
    let hour = num(parts.next()?)?;
    let minute = num(parts.next()?)?;
    let second = match parts.next() {
        Some(s) => num(s)?,
        None => 0,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    ms += hour * 3_600_000 + minute * 60_000 + second * 1_000;
    if let Some(f) = fraction {
        let f = num(f)?;
        let digits = fraction?.len() as u32;
        ms += if digits <= 3 {
            f * 10i64.pow(3 - digits)
        } else {
            f / 10i64.pow(digits - 3)
        };
    }
    Some(ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_weekdays_are_right_around_leap_days_and_the_epoch() {
        let c = civil(1_796_275_856_123);
        assert_eq!(
            (
                c.year,
                c.month,
                c.day,
                c.hour,
                c.minute,
                c.second,
                c.millisecond,
                c.weekday
            ),
            (2026, 12, 3, 5, 30, 56, 123, 4)
        );
        let leap = civil(951_782_400_000);
        assert_eq!(
            (leap.year, leap.month, leap.day, leap.weekday),
            (2000, 2, 29, 2)
        );
        let before = civil(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.second),
            (1969, 12, 31, 59)
        );
    }
    #[test]
    fn instants_are_read_in_every_documented_form() {
        let now = 1_796_275_856_123; // 2026-12-03T05:30:56.123Z
        assert_eq!(rfc3339(now), "2026-12-03T05:30:56Z");
        let t = |s: &str| parse_instant(s, now);
        assert_eq!(t("2026-12-03T05:30:56Z"), Ok(now - 123));
        assert_eq!(t("2026-12-03T05:30:56.123Z"), Ok(now));
        assert_eq!(t("2026-12-03 05:30:56.1"), Ok(now - 23));
        assert_eq!(t("2026-12-03T06:30:56+01:00"), Ok(now - 123));
        assert_eq!(t("2026-12-03T05:00:56-00:30"), Ok(now - 123));
        assert_eq!(t("2026-12-03T05:30"), Ok(now - 56_123));
        assert_eq!(t("2026-12-03"), Ok(now - 19_856_123));
        assert_eq!(t("1970-01-01"), Ok(0));
        assert_eq!(t("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(t("now"), Ok(now));
        assert_eq!(t("15m"), Ok(now - 900_000));
        assert_eq!(t("-2h"), Ok(now - 7_200_000));
        assert_eq!(t("1d12h ago"), Ok(now - 129_600_000));
        assert_eq!(t("1w"), Ok(now - 604_800_000));
        assert_eq!(t("1796275856123"), Ok(now));
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-12-03T25:00Z",
            "5x",
            "h",
        ] {
            let e = t(bad).expect_err(bad);
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
        assert_eq!(parse_span("90s"), Some(90_000));
        assert_eq!(parse_span("7"), None, "a span has a unit");
        for ms in [0, 951_782_400_000, now - 123, 4_102_444_800_000] {
            assert_eq!(t(&rfc3339(ms)), Ok(ms), "round trip of {ms}");
        }
    }
}
