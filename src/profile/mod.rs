//! The per-hour view of recorded traffic, and schedules learnt from it.
//!
//! - `history`: the daemon's minute history on disk (`state_dir/minutes.csv`),
//!   so a restart keeps the 8 days the store holds.
//! - this module: the per-hour profile, pure. Minutes (start second, sum,
//!   peak, known seconds) in, per local hour of day and per weekday/weekend:
//!   requests/s mean, p95 and p99 of the minutes' rates, the peak second,
//!   and how many days are behind each figure.
//! - `suggest`: per-hour `min`s that would have held the observed p99 within
//!   target, as a TOML fragment, and the replay of both schedules.
//!
//! Figures come from one-minute data, whatever the source: a trace is cut
//! into minutes first, so the daemon's history and a trace give the same
//! numbers for the same traffic. `p95` and `p99` are quantiles of the
//! per-minute mean rates of that hour across the days (nearest rank);
//! `peak` is the highest single second.

pub mod history;
pub mod suggest;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use crate::series::MinutePoint;

/// Which days a figure covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayType {
    All,
    Weekday,
    Weekend,
}

impl DayType {
    fn of(d: Weekday) -> DayType {
        match d {
            Weekday::Sat | Weekday::Sun => DayType::Weekend,
            _ => DayType::Weekday,
        }
    }
}

/// One local hour of day over the recorded days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourStats {
    pub hour: u8,
    pub days: DayType,
    /// Requests (or units) per second over every known second of the hour.
    pub mean: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    /// The highest second.
    pub peak: f64,
    /// Distinct local dates behind the figures.
    pub day_count: usize,
    /// Minutes behind the figures (a repeated DST hour has 120 on its date).
    pub minutes: usize,
}

/// One local date's mean rate per local hour (None: no data that hour).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayLine {
    pub date: NaiveDate,
    pub weekend: bool,
    pub hourly: Vec<Option<f64>>,
}

/// The profile of one series (requests, or one capacity's units).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesProfile {
    /// 24 rows each for all days, weekdays and weekends (rows without data
    /// are left out).
    pub hours: Vec<HourStats>,
    pub days: Vec<DayLine>,
}

impl SeriesProfile {
    /// The row of one hour and day type.
    pub fn at(&self, hour: u8, days: DayType) -> Option<&HourStats> {
        self.hours.iter().find(|h| h.hour == hour && h.days == days)
    }

    /// Every figure times `k` (units from requests x per_request).
    pub fn scaled(&self, k: f64) -> SeriesProfile {
        SeriesProfile {
            hours: self
                .hours
                .iter()
                .map(|h| HourStats {
                    mean: h.mean * k,
                    p90: h.p90 * k,
                    p95: h.p95 * k,
                    p99: h.p99 * k,
                    peak: h.peak * k,
                    ..h.clone()
                })
                .collect(),
            days: self
                .days
                .iter()
                .map(|d| DayLine {
                    hourly: d.hourly.iter().map(|v| v.map(|x| x * k)).collect(),
                    ..d.clone()
                })
                .collect(),
        }
    }
}

#[derive(Default)]
struct Acc {
    sum: f64,
    seconds: u64,
    peak: f64,
    rates: Vec<f64>,
    dates: BTreeSet<NaiveDate>,
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The profile of minutes (start second, point) in time zone `tz`. Minutes
/// with no known second are skipped: no data is not zero traffic.
pub fn profile(minutes: &[(i64, MinutePoint)], tz: Tz) -> SeriesProfile {
    // The schedule's clock maps instants to local hours, as for the limits.
    let schedule = crate::config::Schedule { timezone: tz };
    let mut acc: BTreeMap<(u8, DayType), Acc> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, [(f64, u64); 24]> = BTreeMap::new();
    for (start, p) in minutes {
        if p.known_seconds == 0 {
            continue;
        }
        let Some(utc) = DateTime::<Utc>::from_timestamp(*start, 0) else {
            continue;
        };
        let (date, hour) = schedule.local_date_hour(utc);
        let rate = p.sum as f64 / p.known_seconds as f64;
        for kind in [DayType::All, DayType::of(date.weekday())] {
            let a = acc.entry((hour, kind)).or_default();
            a.sum += p.sum as f64;
            a.seconds += p.known_seconds as u64;
            a.peak = a.peak.max(p.peak as f64);
            a.rates.push(rate);
            a.dates.insert(date);
        }
        let d = days.entry(date).or_insert([(0.0, 0); 24]);
        d[hour as usize].0 += p.sum as f64;
        d[hour as usize].1 += p.known_seconds as u64;
    }
    let hours = acc
        .into_iter()
        .map(|((hour, kind), mut a)| {
            a.rates.sort_by(f64::total_cmp);
            HourStats {
                hour,
                days: kind,
                mean: a.sum / a.seconds as f64,
                p90: quantile(&a.rates, 0.90),
                p95: quantile(&a.rates, 0.95),
                p99: quantile(&a.rates, 0.99),
                peak: a.peak,
                day_count: a.dates.len(),
                minutes: a.rates.len(),
            }
        })
        .collect();
    let days = days
        .into_iter()
        .map(|(date, h)| DayLine {
            date,
            weekend: DayType::of(date.weekday()) == DayType::Weekend,
            hourly: h
                .iter()
                .map(|(sum, n)| (*n > 0).then(|| sum / *n as f64))
                .collect(),
        })
        .collect();
    SeriesProfile { hours, days }
}

/// Per-second values from `start` cut into minutes, as the store keeps them.
pub fn minutes_of_seconds(start: DateTime<Utc>, seconds: &[f64]) -> Vec<(i64, MinutePoint)> {
    let mut out: Vec<(i64, MinutePoint)> = Vec::new();
    let t0 = start.timestamp();
    for (i, v) in seconds.iter().enumerate() {
        let t = t0 + i as i64;
        let minute = t.div_euclid(60) * 60;
        if out.last().is_none_or(|(m, _)| *m != minute) {
            out.push((minute, MinutePoint::EMPTY));
        }
        if v.is_nan() {
            continue;
        }
        let p = &mut out.last_mut().expect("pushed").1;
        p.sum += *v as f32;
        p.peak = if p.peak.is_nan() {
            *v as f32
        } else {
            p.peak.max(*v as f32)
        };
        p.known_seconds += 1;
    }
    out
}

/// The whole per-hour view: requests, and units per configured capacity.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub timezone: String,
    pub requests: SeriesProfile,
    pub units: Vec<UnitsProfile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitsProfile {
    /// `table` or `table/index`.
    pub resource: String,
    pub op: crate::policy::dynamodb::Op,
    /// "metric" (the reported units' own history) or "requests" (requests
    /// x per_request).
    pub source: &'static str,
    pub profile: SeriesProfile,
}

/// Builds the whole view from minute series by stream name.
pub fn build(
    config: &crate::config::Config,
    streams: &BTreeMap<String, Vec<(i64, MinutePoint)>>,
) -> Profile {
    let tz = config.schedule.timezone;
    let requests_name = config.ingest.requests_stream.clone().unwrap_or_default();
    let requests = profile(
        streams
            .get(&requests_name)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        tz,
    );
    let units = config
        .capacities()
        .filter_map(|c| {
            let own =
                c.spec.metric.as_ref().and_then(|_| {
                    streams.get(&crate::config::units_stream(c.table, c.index, c.op))
                });
            let (source, p) = match (own, c.spec.per_request) {
                (Some(m), _) if m.iter().any(|(_, p)| p.known_seconds > 0) => {
                    ("metric", profile(m, tz))
                }
                (_, Some(k)) => ("requests", requests.scaled(k)),
                _ => return None,
            };
            Some(UnitsProfile {
                resource: crate::actuator::resource_key(c.table, c.index),
                op: crate::policy::dynamodb::Op::from_name(c.op)?,
                source,
                profile: p,
            })
        })
        .collect();
    Profile {
        timezone: tz.name().to_string(),
        requests,
        units,
    }
}

#[cfg(test)]
mod tests;
