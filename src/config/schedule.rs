//! Per-hour schedules: hour ranges ("14-15", "22-2", "9") and the 24-row
//! tables of effective limits they produce. Pure; the time zone lookup turns
//! a UTC instant into the local hour that selects a row.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::reader::{Problems, TableReader};

/// A set of hours of the day, as a 24-bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HourSet(u32);

impl HourSet {
    pub fn contains(self, hour: u8) -> bool {
        hour < 24 && self.0 & (1 << hour) != 0
    }

    pub fn overlaps(self, other: HourSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn union(self, other: HourSet) -> HourSet {
        HourSet(self.0 | other.0)
    }

    pub fn hours(self) -> impl Iterator<Item = u8> {
        (0..24u8).filter(move |h| self.contains(*h))
    }
}

/// Parses "H" or "A-B" (inclusive, local hours 0-23). "22-2" wraps past midnight.
pub fn parse_hours(text: &str) -> Result<HourSet, String> {
    let parse_one = |s: &str| -> Result<u8, String> {
        let s = s.trim();
        let h: u32 = s
            .parse()
            .map_err(|_| format!("{s:?} is not an hour; write e.g. \"14-15\" or \"9\""))?;
        if h > 23 {
            return Err(format!("hour {h} is outside 0-23"));
        }
        Ok(h as u8)
    };
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (parse_one(a)?, parse_one(b)?),
        None => {
            let h = parse_one(text)?;
            (h, h)
        }
    };
    let mut mask = 0u32;
    let mut h = start;
    loop {
        mask |= 1 << h;
        if h == end {
            break;
        }
        h = (h + 1) % 24;
    }
    Ok(HourSet(mask))
}

/// The schedule's clock: which local hour a UTC instant falls in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub timezone: Tz,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::UTC,
        }
    }
}

impl Schedule {
    pub fn local_hour(&self, at: DateTime<Utc>) -> u8 {
        at.with_timezone(&self.timezone).hour() as u8
    }

    /// The local date and hour of `at` (the per-hour profile groups by both).
    pub fn local_date_hour(&self, at: DateTime<Utc>) -> (chrono::NaiveDate, u8) {
        let local = at.with_timezone(&self.timezone);
        (local.date_naive(), local.hour() as u8)
    }

    /// The row of `table` in effect at `at`: the one place that answers
    /// "which hour's limits apply now" for the deciders, the replay, the
    /// per-hour profile and the suggestions.
    pub fn row<T: Copy>(&self, table: &HourTable<T>, at: DateTime<Utc>) -> T {
        table[self.local_hour(at) as usize]
    }

    /// The rows in effect at some instant of [at, at + span], the row at
    /// `at` first, each hour's once in order (a DST change can repeat an
    /// hour, and then its row).
    pub fn rows_within<T: Copy>(
        &self,
        table: &HourTable<T>,
        at: DateTime<Utc>,
        span: std::time::Duration,
    ) -> Vec<T> {
        let end = at + chrono::TimeDelta::from_std(span).unwrap_or(chrono::TimeDelta::MAX);
        let mut rows = vec![self.row(table, at)];
        let mut t = at;
        loop {
            t = self.next_hour_start(t);
            if t > end {
                return rows;
            }
            rows.push(self.row(table, t));
        }
    }

    /// The instants in (from, until] at which a local hour starts whose row
    /// `changed(previous, next)` says is a change that matters.
    pub fn changes_within<T: Copy>(
        &self,
        table: &HourTable<T>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        changed: impl Fn(&T, &T) -> bool,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut prev = self.row(table, from);
        let mut t = from;
        loop {
            t = self.next_hour_start(t);
            if t > until {
                return out;
            }
            let next = self.row(table, t);
            if changed(&prev, &next) {
                out.push(t);
            }
            prev = next;
        }
    }

    /// The first instant after `at` at which a new local hour starts.
    /// Local hours start at minute 0 under whatever offset is in effect;
    /// a DST change happens at such an instant, so stepping from one to the
    /// next sees every hour.
    fn next_hour_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let local = at.with_timezone(&self.timezone);
        let into_hour =
            chrono::TimeDelta::seconds(local.minute() as i64 * 60 + local.second() as i64)
                + chrono::TimeDelta::nanoseconds(local.nanosecond().min(999_999_999) as i64);
        at - into_hour + chrono::TimeDelta::hours(1)
    }
}

/// Reads `[schedule]`; every problem goes to `p`.
/// Why a time zone name is refused, with the nearest IANA name when one is
/// close (a typo, another case, or the city alone).
fn unknown_zone(name: &str) -> String {
    let names = || chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    let city = names().find(|n| {
        n.rsplit('/')
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(name.trim()))
    });
    match city.or_else(|| super::reader::nearest(name.trim(), names())) {
        Some(near) => format!("unknown time zone {name:?}; did you mean {near:?}?"),
        None => format!(
            "unknown time zone {name:?}; use an IANA name such as \"Europe/Paris\" or \"UTC\""
        ),
    }
}

pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> Schedule {
    let Some(mut t) = root.table(p, "schedule") else {
        return Schedule::default();
    };
    let timezone = t
        .string(p, "timezone")
        .and_then(|s| match s.value.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                p.push(s.span, &s.key, unknown_zone(&s.value));
                None
            }
        })
        .unwrap_or(chrono_tz::UTC);
    t.finish(p);
    Schedule { timezone }
}

/// One row of limits per local hour of day.
pub type HourTable<T> = [T; 24];

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: Result<&[u8], &str>) {
        let got = parse_hours(text).map(|s| s.hours().collect::<Vec<_>>());
        match expected {
            Ok(hours) => assert_eq!(got, Ok(hours.to_vec()), "{text}"),
            Err(fragment) => {
                let err = got.expect_err(text);
                assert!(err.contains(fragment), "{text}: {err}");
            }
        }
    }

    #[test]
    fn single_hour() {
        check("9", Ok(&[9]));
    }
    #[test]
    fn inclusive_range() {
        check("14-15", Ok(&[14, 15]));
    }
    #[test]
    fn wraps_midnight() {
        check("22-1", Ok(&[0, 1, 22, 23]));
    }
    #[test]
    fn whole_day() {
        check("0-23", Ok(&(0..24).collect::<Vec<u8>>()));
    }
    #[test]
    fn rejects_hour_24() {
        check("20-24", Err("outside 0-23"));
    }
    #[test]
    fn rejects_words() {
        check("noon", Err("not an hour"));
    }
    #[test]
    fn overlap_is_detected() {
        let a = parse_hours("8-12").unwrap();
        let b = parse_hours("12-14").unwrap();
        let c = parse_hours("13-14").unwrap();
        assert!(a.overlaps(b));
        assert!(!a.overlaps(c));
    }
    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[track_caller]
    fn check_rows(tz: &str, at: &str, span_s: u64, expected: &[u8]) {
        let schedule = Schedule {
            timezone: tz.parse().unwrap(),
        };
        let table: HourTable<u8> = std::array::from_fn(|h| h as u8);
        let got = schedule.rows_within(&table, utc(at), std::time::Duration::from_secs(span_s));
        assert_eq!(got, expected, "{tz} {at} +{span_s}s");
        // The same answer as sampling every minute.
        let mut sampled: Vec<u8> = Vec::new();
        for m in 0..=(span_s / 60) {
            let h = schedule.local_hour(utc(at) + chrono::TimeDelta::minutes(m as i64));
            if sampled.last() != Some(&h) {
                sampled.push(h);
            }
        }
        let mut distinct = got.clone();
        distinct.dedup();
        assert_eq!(distinct, sampled, "{tz} {at}: minute sampling");
    }

    #[test]
    fn rows_within_a_span_follow_local_hours() {
        check_rows("UTC", "2026-11-29T05:30:00Z", 0, &[5]);
        check_rows("UTC", "2026-11-29T05:30:00Z", 1800, &[5, 6]);
        check_rows("UTC", "2026-11-29T05:00:00Z", 3600, &[5, 6]);
        check_rows("UTC", "2026-11-29T05:00:00Z", 3599, &[5]);
        check_rows("Asia/Seoul", "2026-11-29T05:59:59Z", 7200, &[14, 15, 16]);
        check_rows("UTC", "2026-11-29T23:30:00Z", 3600, &[23, 0]);
        // A half-hour zone.
        check_rows("Asia/Kolkata", "2026-11-29T05:10:00Z", 3600, &[10, 11]);
        // DST in Berlin: 02:00 local does not exist on 2026-03-29 (01:00 UTC),
        // and 02:00-03:00 local happens twice on 2026-10-25.
        check_rows("Europe/Berlin", "2026-03-29T00:30:00Z", 3600, &[1, 3]);
        check_rows("Europe/Berlin", "2026-10-25T00:30:00Z", 5400, &[2, 2, 3]);
        // Lord Howe moves by 30 minutes.
        check_rows(
            "Australia/Lord_Howe",
            "2026-04-04T14:45:00Z",
            3600,
            &[1, 1, 2],
        );
    }

    #[test]
    fn local_hour_follows_time_zone() {
        let schedule = Schedule {
            timezone: "Asia/Seoul".parse().unwrap(),
        };
        let at = DateTime::parse_from_rfc3339("2026-11-29T05:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(schedule.local_hour(at), 14);
    }

    #[test]
    fn an_unknown_zone_names_the_nearest_iana_name() {
        assert!(unknown_zone("Asia/Seol").contains("did you mean \"Asia/Seoul\""));
        assert!(unknown_zone("europe/paris").contains("did you mean \"Europe/Paris\""));
        assert!(unknown_zone("Tokyo").contains("did you mean \"Asia/Tokyo\""));
        let far = unknown_zone("Nowhere at all");
        assert!(
            !far.contains("did you mean") && far.contains("IANA"),
            "{far}"
        );
    }
}
