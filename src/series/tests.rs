// Table tests for the per-second store, with explicit seconds.
use super::*;

const T0: i64 = 1_700_000_000;

fn store() -> (SeriesStore, StreamId, StreamId) {
    let mut s = SeriesStore::new(StoreConfig {
        seconds_kept: 60,
        minutes_kept: 10,
        grace_s: 2,
        silence_after_s: 5,
    });
    let push = s.register("web", StreamKind::Push);
    let poll = s.register("status", StreamKind::Poll);
    (s, push, poll)
}

/// Feeds `counts[i]` events into second T0+i (observed live, at that
/// second), seals up to the end, and returns the sealed values.
#[track_caller]
fn check(counts: &[f64], expected_values: &[f32]) {
    let (mut s, web, _) = store();
    for (i, c) in counts.iter().enumerate() {
        let sec = T0 + i as i64;
        if *c > 0.0 {
            s.observe(web, sec, Observation::Count(*c), sec).unwrap();
        }
        s.seal(sec);
    }
    s.seal(T0 + counts.len() as i64 + 2);
    // History starts at the first seal's horizon; compare from T0 on.
    let got: Vec<f32> = s
        .seconds(web, 100)
        .into_iter()
        .filter(|(sec, _)| *sec >= T0)
        .map(|(_, p)| p.value)
        .collect();
    assert_eq!(got, expected_values);
}

#[test]
fn quiet_seconds_of_push_streams_are_zero() {
    check(&[3.0, 0.0, 5.0], &[3.0, 0.0, 5.0]);
}

#[test]
fn seconds_are_sealed_after_the_grace_window() {
    let (mut s, web, _) = store();
    s.observe(web, T0, Observation::Count(1.0), T0).unwrap();
    s.seal(T0 + 2);
    assert_eq!(s.point(web, T0), None, "still open at T0+2 (grace 2 s)");
    // A late line within grace still lands.
    s.observe(web, T0, Observation::Count(1.0), T0 + 2).unwrap();
    s.seal(T0 + 3);
    assert_eq!(s.point(web, T0).unwrap().value, 2.0);
    assert_eq!(s.last_sealed_second(), Some(T0));
    assert_eq!(
        s.observe(web, T0, Observation::Count(1.0), T0 + 3),
        Err(Rejected::Late)
    );
    assert_eq!(
        s.observe(web, T0 + 10, Observation::Count(1.0), T0 + 3),
        Err(Rejected::Future)
    );
}

#[test]
fn poll_streams_keep_gaps_and_windows_skip_them() {
    let (mut s, _, status) = store();
    s.observe(status, T0, Observation::Count(10.0), T0).unwrap();
    s.observe(status, T0 + 2, Observation::Count(30.0), T0 + 2)
        .unwrap();
    s.seal(T0 + 5);
    let values: Vec<f32> = s
        .seconds(status, 3)
        .into_iter()
        .map(|(_, p)| p.value)
        .collect();
    assert_eq!(values[0], 10.0);
    assert!(values[1].is_nan(), "no poll: unknown, not zero");
    assert_eq!(values[2], 30.0);
    let w = s.window(status, 3).unwrap();
    assert_eq!((w.seconds, w.mean, w.max), (2, 20.0, 30.0));
}

#[test]
fn latency_quantiles_per_second() {
    let (mut s, web, _) = store();
    for ms in 1..=100 {
        s.observe(
            web,
            T0,
            Observation::Latency {
                count: 1.0,
                ms: ms as f64,
            },
            T0,
        )
        .unwrap();
    }
    s.seal(T0 + 3);
    let p = s.point(web, T0).unwrap();
    assert_eq!(p.value, 100.0);
    // hdrhistogram at 2 significant digits: within 1 %.
    assert!((p.p50_ms - 50.0).abs() <= 0.5, "{p:?}");
    assert!((p.p95_ms - 95.0).abs() <= 1.0, "{p:?}");
    assert!((p.p99_ms - 99.0).abs() <= 1.0, "{p:?}");
}

#[test]
fn gauges_and_sets() {
    let (mut s, web, _) = store();
    s.observe(web, T0, Observation::Gauge(40.0), T0).unwrap();
    s.observe(web, T0, Observation::Gauge(42.0), T0).unwrap();
    s.observe(web, T0 + 1, Observation::SetMember(7), T0 + 1)
        .unwrap();
    s.observe(web, T0 + 1, Observation::SetMember(7), T0 + 1)
        .unwrap();
    s.observe(web, T0 + 1, Observation::SetMember(8), T0 + 1)
        .unwrap();
    s.seal(T0 + 4);
    assert_eq!(s.point(web, T0).unwrap().value, 42.0, "last gauge wins");
    assert_eq!(s.point(web, T0 + 1).unwrap().value, 2.0, "distinct members");
}

#[test]
fn windows_and_trend() {
    let (mut s, web, _) = store();
    for i in 0..10 {
        let sec = T0 + i;
        s.observe(web, sec, Observation::Count(100.0 + 10.0 * i as f64), sec)
            .unwrap();
    }
    s.seal(T0 + 12);
    let w = s.window(web, 10).unwrap();
    assert_eq!((w.seconds, w.max, w.mean, w.p90), (10, 190.0, 145.0, 180.0));
    let t = s.trend(web, 10).unwrap();
    assert!((t.slope - 10.0).abs() < 1e-6, "{t:?}");
    assert!((t.at((T0 + 20) as f64) - 300.0).abs() < 1e-3, "{t:?}");
    assert_eq!(s.summary(web).mean_10s, Some(145.0));
}

#[test]
fn open_value_is_the_current_second_so_far() {
    let (mut s, web, _) = store();
    s.observe(web, T0, Observation::Count(4.0), T0).unwrap();
    s.observe(web, T0, Observation::Count(6.0), T0).unwrap();
    assert_eq!(s.open_value(web, T0), Some(10.0));
    assert_eq!(s.open_value(web, T0 + 1), None);
}

#[test]
fn minutes_roll_up_seconds() {
    let (mut s, web, _) = store();
    let start = T0 - T0.rem_euclid(60);
    for i in 0..125 {
        let sec = start + i;
        s.observe(
            web,
            sec,
            Observation::Count(if i == 61 { 50.0 } else { 1.0 }),
            sec,
        )
        .unwrap();
        s.seal(sec);
    }
    s.seal(start + 130);
    // The first minute is the partial one before `start`; then two whole ones.
    let m = s.minutes(web, 2);
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].0, start);
    assert_eq!(
        (m[0].1.sum, m[0].1.peak, m[0].1.known_seconds),
        (60.0, 1.0, 60)
    );
    assert_eq!((m[1].1.sum, m[1].1.peak), (109.0, 50.0));
    assert!((m[1].1.mean_per_second() - 109.0 / 60.0).abs() < 1e-9);
}

#[test]
fn memory_is_bounded_by_capacity() {
    let (mut s, web, _) = store();
    for i in 0..500 {
        let sec = T0 + i;
        s.observe(web, sec, Observation::Count(1.0), sec).unwrap();
        s.seal(sec);
    }
    assert_eq!(s.seconds(web, 10_000).len(), 60);
    assert!(s.minutes(web, 10_000).len() <= 10);
}

#[test]
fn a_long_pause_does_not_fill_more_than_one_ring() {
    let (mut s, web, _) = store();
    s.observe(web, T0, Observation::Count(1.0), T0).unwrap();
    s.seal(T0 + 1_000_000);
    assert_eq!(s.seconds(web, 10_000).len(), 60);
}

#[test]
fn silence_is_unknown_not_zero() {
    let (mut s, web, _) = store();
    s.seal(T0);
    // Before the first sample nothing is known.
    s.observe(web, T0 + 3, Observation::Count(2.0), T0 + 3)
        .unwrap();
    // Then 10 silent seconds: the first 5 are quiet (zero), the rest unknown.
    s.observe(web, T0 + 14, Observation::Count(2.0), T0 + 14)
        .unwrap();
    s.seal(T0 + 20);
    assert_eq!(
        shown(&s, web),
        [
            "?", "?", "?", "2", "0", "0", "0", "0", "0", "?", "?", "?", "?", "?", "2", "0", "0",
            "0"
        ]
    );
}

/// The sealed seconds from T0 on, "?" for unknown.
fn shown(s: &SeriesStore, stream: StreamId) -> Vec<String> {
    s.seconds(stream, 100)
        .into_iter()
        .filter(|(sec, _)| *sec >= T0)
        .map(|(_, p)| {
            if p.is_gap() {
                "?".to_string()
            } else {
                p.value.to_string()
            }
        })
        .collect()
}

#[test]
fn a_busy_stream_that_stops_dead_is_cut_off_not_quiet() {
    let (mut s, web, _) = store();
    // 10 samples a second (2 units each) for 12 s, then nothing.
    for t in T0..T0 + 12 {
        for _ in 0..10 {
            s.observe(web, t, Observation::Count(2.0), t).unwrap();
        }
        s.seal(t);
    }
    // Mid-second: what the open seconds read before they are sealed.
    let recent = s.recent(web, T0 + 14, 4);
    assert_eq!(recent[..2], [20.0, 20.0]);
    assert!(recent[2..].iter().all(|v| v.is_nan()), "{recent:?}");
    s.seal(T0 + 16);
    let values = shown(&s, web);
    assert_eq!(values[10..], ["20", "20", "?", "?"]);
    // The rate is measured again once samples come back.
    for t in T0 + 16..T0 + 30 {
        s.observe(web, t, Observation::Count(2.0), t).unwrap();
        s.seal(t);
    }
    s.seal(T0 + 34);
    let values = shown(&s, web);
    // One sample a second: a silence of up to 5 s is quiet.
    assert_eq!(values[28..], ["2", "2", "0", "0"]);
}

#[test]
fn a_sparse_stream_keeps_its_quiet_seconds() {
    // 3 samples every 2 s (1.5 a second over the 10 s the rate is measured
    // on): one silent second is quiet, 3 still are; 4 would have needed 6
    // samples: the fourth is unknown.
    let (mut s, web, _) = store();
    let mut t = T0;
    let pattern = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1];
    for on in pattern {
        if on == 1 {
            for _ in 0..3 {
                s.observe(web, t, Observation::Count(1.0), t).unwrap();
            }
        }
        s.seal(t);
        t += 1;
    }
    s.seal(t + 2);
    assert_eq!(
        shown(&s, web)[8..],
        ["3", "0", "3", "0", "0", "0", "?", "3"]
    );
}

#[test]
fn recent_rate_shows_a_mid_second_step_at_full_height() {
    let (mut s, web, _) = store();
    let at = |ms: u32| Arrival {
        second: T0,
        millis: ms,
    };
    // 10 per quarter in the first quarter, then 100 per quarter from 250 ms on.
    for _ in 0..10 {
        s.observe(web, T0, Observation::Count(1.0), at(100))
            .unwrap();
    }
    for ms in [300, 600] {
        for _ in 0..100 {
            s.observe(web, T0, Observation::Count(1.0), at(ms)).unwrap();
        }
    }
    // At 0.75 s: quarters 1 and 2 (200 in 0.5 s) -> 400/s; the whole second so far says 280/s.
    assert_eq!(s.recent_rate(web, T0, 0.75, 20), Some(400.0));
    assert!((s.open_value(web, T0).unwrap() / 0.75 - 280.0).abs() < 1e-9);
    // Too early in the second, or too few samples: no recent rate.
    assert_eq!(s.recent_rate(web, T0, 0.2, 20), None);
    assert_eq!(s.recent_rate(web, T0, 0.75, 500), None);
}

/// `recent` as it read the store second by second before it read the
/// sealed seconds straight from the ring: the reference it must match.
fn recent_second_by_second(s: &SeriesStore, stream: StreamId, now_s: i64, n: usize) -> Vec<f64> {
    let st = &s.streams[stream.0 as usize];
    (now_s - n as i64..now_s)
        .map(|second| {
            if let Some(open) = st.open.get(&second) {
                return open.value();
            }
            if s.sealed_below.is_some_and(|b| second < b) {
                return st.seconds.get(second).map_or(f64::NAN, |p| p.value as f64);
            }
            if st.quiet(st.last_sample_second, second, s.config.silence_after_s) {
                0.0
            } else {
                f64::NAN
            }
        })
        .collect()
}

#[test]
fn recent_reads_sealed_and_open_seconds_as_it_did_second_by_second() {
    let (mut s, web, status) = store();
    let mut rng = fastrand::Rng::with_seed(7);
    for t in T0..T0 + 200 {
        // Bursts, silences longer than `silence_after`, and late samples.
        if !(60..75).contains(&(t - T0)) && rng.u8(..4) != 0 {
            let _ = s.observe(
                web,
                t - rng.i64(0..3),
                Observation::Count(rng.f64() * 10.0),
                t,
            );
        }
        if rng.bool() {
            let _ = s.observe(status, t, Observation::Gauge(rng.f64()), t);
        }
        if rng.u8(..3) != 0 {
            s.seal(t);
        }
        for stream in [web, status] {
            for n in [1, 5, 59, 60, 61, 120] {
                let got = s.recent(stream, t + 1, n);
                let want = recent_second_by_second(&s, stream, t + 1, n);
                let same = got.len() == want.len()
                    && got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
                assert!(same, "t={t} n={n}: {got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn a_restart_within_grace_of_a_minute_boundary_keeps_the_restored_minutes() {
    // Saved before the restart: the 5 minutes up to the one that began at
    // `boundary - 60`. Back 1 s after `boundary`, a sample of the second
    // before it arrives (within the 2 s grace): the first sealed second
    // falls in that last saved minute.
    let (mut s, web, _) = store();
    let boundary = (T0 / 60 + 1) * 60;
    let point = MinutePoint {
        sum: 600.0,
        peak: 12.0,
        known_seconds: 60,
    };
    let saved: Vec<(i64, MinutePoint)> =
        (1..=5).rev().map(|k| (boundary - 60 * k, point)).collect();
    s.restore_minutes(web, &saved);
    s.observe(web, boundary - 1, Observation::Count(5.0), boundary + 1)
        .unwrap();
    for t in boundary + 1..boundary + 130 {
        s.observe(web, t, Observation::Count(5.0), t).unwrap();
        s.seal(t);
    }
    let minutes = s.minutes(web, 100);
    assert_eq!(minutes.len(), 7, "5 restored and 2 new: {minutes:?}");
    assert_eq!(minutes[..5], saved[..], "the saved minute keeps its point");
    assert_eq!(minutes[5].0, boundary);
    assert_eq!(minutes[6].0, boundary + 60);
    assert_eq!(minutes[6].1.sum, 300.0);
}
