//! Per-hour schedules: hour ranges ("14-15", "22-2", "9") and the 24-row
//! tables of effective limits they produce. Pure; the time zone lookup turns
//! a UTC instant into the local hour that selects a row.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

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
}
