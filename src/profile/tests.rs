// The per-hour profile on synthetic minutes with exactly known figures.
use super::*;

fn minute(rate: f64, peak: f64) -> MinutePoint {
    MinutePoint {
        sum: (rate * 60.0) as f32,
        peak: peak as f32,
        known_seconds: 60,
    }
}

fn utc(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

#[track_caller]
fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6, "{a} != {b}");
}

/// Mon 2026-11-23 to Sun 2026-11-29 (UTC). Weekdays: hour h runs at
/// 100 + 10h requests/s, except 3 minutes an hour 50 higher (with a peak
/// second 5 above that); weekends: a flat 40.
fn synthetic_week() -> Vec<(i64, MinutePoint)> {
    let monday = utc("2026-11-23T00:00:00Z");
    let mut out = Vec::new();
    for day in 0..7 {
        for hour in 0..24 {
            for m in 0..60 {
                let t = monday + day * 86_400 + hour * 3600 + m * 60;
                let p = if day >= 5 {
                    minute(40.0, 40.0)
                } else {
                    let base = 100.0 + 10.0 * hour as f64;
                    if m >= 57 {
                        minute(base + 50.0, base + 55.0)
                    } else {
                        minute(base, base)
                    }
                };
                out.push((t, p));
            }
        }
    }
    out
}

#[test]
fn a_known_week_gives_exact_figures_per_hour_and_day_type() {
    let p = profile(&synthetic_week(), chrono_tz::UTC);
    for hour in 0..24u8 {
        let b = 100.0 + 10.0 * hour as f64;
        let wd = p.at(hour, DayType::Weekday).unwrap();
        close(wd.mean, b + 2.5); // (285 b + 15 (b + 50)) / 300
        close(wd.p95, b); // rank 285 of 300
        close(wd.p99, b + 50.0); // rank 297 of 300
        close(wd.peak, b + 55.0);
        assert_eq!((wd.day_count, wd.minutes), (5, 300));

        let we = p.at(hour, DayType::Weekend).unwrap();
        close(we.mean, 40.0);
        close(we.p95, 40.0);
        close(we.p99, 40.0);
        close(we.peak, 40.0);
        assert_eq!((we.day_count, we.minutes), (2, 120));

        let all = p.at(hour, DayType::All).unwrap();
        close(
            all.mean,
            (285.0 * b + 15.0 * (b + 50.0) + 120.0 * 40.0) / 420.0,
        );
        close(all.p95, b); // rank 399 of 420: past the 120 weekend minutes
        close(all.p99, b + 50.0); // rank 416
        close(all.peak, b + 55.0);
        assert_eq!((all.day_count, all.minutes), (7, 420));
    }
    assert_eq!(p.days.len(), 7);
    let monday = &p.days[0];
    assert_eq!(monday.date.to_string(), "2026-11-23");
    assert!(!monday.weekend && p.days[5].weekend && p.days[6].weekend);
    close(monday.hourly[3].unwrap(), 130.0 + 2.5);
    close(p.days[6].hourly[3].unwrap(), 40.0);
}

#[test]
fn unknown_minutes_are_not_zero_traffic() {
    let mut week = synthetic_week();
    for (_, p) in week.iter_mut().take(60) {
        *p = MinutePoint::EMPTY;
    }
    let p = profile(&week, chrono_tz::UTC);
    let wd = p.at(0, DayType::Weekday).unwrap();
    assert_eq!(wd.minutes, 240);
    close(wd.mean, 100.0 + 2.5);
}

fn flat(from: &str, to: &str, rate: impl Fn(i64) -> f64) -> Vec<(i64, MinutePoint)> {
    (utc(from)..utc(to))
        .step_by(60)
        .map(|t| (t, minute(rate(t), rate(t))))
        .collect()
}

/// Paris moves to summer time on 2026-03-29 at 01:00 UTC: local 02:00 to
/// 02:59 does not exist that day.
#[test]
fn an_hour_that_does_not_occur_has_one_day_fewer() {
    let paris: Tz = "Europe/Paris".parse().unwrap();
    let p = profile(
        &flat("2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z", |_| 10.0),
        paris,
    );
    let two = p.at(2, DayType::All).unwrap();
    assert_eq!((two.day_count, two.minutes), (2, 120), "28th and 30th only");
    let three = p.at(3, DayType::All).unwrap();
    assert_eq!((three.day_count, three.minutes), (3, 180));
    let sunday = p
        .days
        .iter()
        .find(|d| d.date.to_string() == "2026-03-29")
        .unwrap();
    assert_eq!(sunday.hourly[2], None);
    close(sunday.hourly[3].unwrap(), 10.0);
}

/// Paris goes back to winter time on 2026-10-25 at 01:00 UTC: local 02:00
/// to 02:59 happens twice that day (00:00 and 01:00 UTC). Both are in the
/// hour: one date, 120 minutes.
#[test]
fn an_hour_that_occurs_twice_counts_one_day_and_both_hours() {
    let paris: Tz = "Europe/Paris".parse().unwrap();
    let second_two = utc("2026-10-25T01:00:00Z")..utc("2026-10-25T02:00:00Z");
    let p = profile(
        &flat("2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z", |t| {
            if second_two.contains(&t) {
                40.0
            } else {
                10.0
            }
        }),
        paris,
    );
    let two = p.at(2, DayType::All).unwrap();
    assert_eq!((two.day_count, two.minutes), (2, 180));
    close(two.mean, (60.0 * 10.0 + 60.0 * 10.0 + 60.0 * 40.0) / 180.0);
    let sunday = p
        .days
        .iter()
        .find(|d| d.date.to_string() == "2026-10-25")
        .unwrap();
    close(sunday.hourly[2].unwrap(), 25.0);
}

#[test]
fn seconds_become_the_minutes_the_store_keeps() {
    let start = DateTime::from_timestamp(1_700_000_040, 0).unwrap(); // a minute start
    let mut seconds = vec![2.0; 120];
    seconds[61] = f64::NAN;
    seconds[70] = 9.0;
    let m = minutes_of_seconds(start, &seconds);
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].0, 1_700_000_040);
    assert_eq!(
        (m[0].1.sum, m[0].1.peak, m[0].1.known_seconds),
        (120.0, 2.0, 60)
    );
    assert_eq!(
        (m[1].1.sum, m[1].1.peak, m[1].1.known_seconds),
        (125.0, 9.0, 59)
    );
}

#[test]
fn the_history_file_round_trips_and_survives_a_restart_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let week = synthetic_week();
    let map = BTreeMap::from([("statsd".to_string(), week[..500].to_vec())]);
    history::save(dir.path(), &map).unwrap();
    let back = history::load(dir.path()).unwrap();
    assert_eq!(back, map);
    // Into a fresh store, then more minutes after a gap (the downtime).
    let mut store = crate::series::SeriesStore::new(crate::series::StoreConfig::default());
    let id = store.register("statsd", crate::series::StreamKind::Push);
    history::restore(&mut store, &back);
    let restored = store.minutes(id, 20_000);
    assert_eq!(restored.len(), 500);
    assert_eq!(restored[0], week[0]);
    let after = week[499].0 + 3600;
    for s in after..after + 125 {
        store
            .observe(id, s, crate::series::Observation::Count(1.0), s)
            .unwrap();
        store.seal(s);
    }
    let all = store.minutes(id, 20_000);
    assert_eq!(all[0], week[0], "the history is still there after the gap");
    // 59 unknown minutes of downtime, then the two whole new minutes sealed.
    assert_eq!(
        all.len(),
        500 + 59 + 2,
        "the hour of downtime is unknown minutes"
    );
    assert_eq!(all[559].1.known_seconds, 60);
    assert!(all[500..559].iter().all(|(_, p)| p.known_seconds == 0));
}

/// `suggest-schedule`'s sizing on the synthetic week (all days: an hour's
/// p90 is its weekday base rate 100 + 10h, its p99 the weekday spikes
/// 150 + 10h).
#[test]
fn suggestions_keep_hand_set_hours_and_hard_limits_at_each_quantile() {
    use crate::profile::suggest::{suggest, Quantile, SuggestOptions};
    let config = crate::config::Config::parse(
        "t.toml",
        r#"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[[dynamodb.tables]]
name = "posts"
read = { target = 0.5, min = 1, max = 10000, per_request = 1 }
[[dynamodb.tables.hours]]
hours = "14-15"
read = { min = 777 }
[asg]
name = "web"
target_rps_per_instance = 250
min = 2
max = 40
[[asg.hours]]
hours = "20"
min = 9
"#,
    )
    .unwrap();
    let name = config.ingest.requests_stream.clone().unwrap();
    let profile = build(&config, &BTreeMap::from([(name, synthetic_week())]));
    let at = |q: Quantile, replace: bool| {
        suggest(
            &config,
            &profile,
            SuggestOptions {
                quantile: q,
                replace_overrides: replace,
            },
        )
    };
    let p99 = at(Quantile::P99, false);
    let read = &p99.ops[0];
    assert_eq!(read.min[0], 300); // 150 / 0.5
    assert_eq!(read.min[13], 560); // 280 / 0.5
    assert_eq!(
        (read.min[14], read.min[15]),
        (777, 777),
        "set by hand: kept"
    );
    assert_eq!(read.sized_for[14], None);
    let group = p99.group.as_ref().unwrap();
    // 150 req/s needs one instance; asg.min = 2 is a hard limit.
    assert!(group.min.iter().all(|m| *m >= 2), "{:?}", group.min);
    assert_eq!(group.min[0], 2);
    assert_eq!(group.min[20], 9, "set by hand: kept");

    let replaced = at(Quantile::P99, true);
    assert_eq!(replaced.ops[0].min[14], 580); // 290 / 0.5
    assert!(replaced.group.as_ref().unwrap().min[20] < 9);
    assert!(replaced.group.as_ref().unwrap().min[20] >= 2);

    let p90 = at(Quantile::P90, false);
    assert_eq!(p90.ops[0].min[0], 200); // 100 / 0.5
    assert_eq!(p90.ops[0].min[14], 777);
    let p95 = at(Quantile::P95, false);
    for h in 0..24 {
        assert!(p90.ops[0].min[h] <= p95.ops[0].min[h] && p95.ops[0].min[h] <= read.min[h]);
    }
}
