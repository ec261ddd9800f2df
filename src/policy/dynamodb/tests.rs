// Policy tables: demand per second in, verdict out. Time is explicit.
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;

const LIMITS: CapacityLimits = CapacityLimits {
    target: 0.5,
    min: 10,
    max: 1000,
};

/// The per-second policy (burst not counted on); the burst-aware rules have
/// their own tests below.
fn policy() -> DynamoPolicy {
    DynamoPolicy {
        down_window: Duration::from_secs(60),
        trend_window: Duration::from_secs(10),
        burst_share: 0.0,
        ..DynamoPolicy::default()
    }
}

fn ctx(provisioned: u64) -> OpContext {
    OpContext {
        provisioned,
        limits: LIMITS,
        upcoming_min: LIMITS.min,
        prewarm_min: None,
        announced_min: None,
        burst: 0.0,
        throttled: false,
        hold_s: None,
        trusted_s: crate::policy::burst::BURST_SECONDS,
    }
}

#[track_caller]
fn check(seconds: &[f64], partial: Option<f64>, ctx: OpContext, expected: OpVerdict) {
    let view = DemandView {
        seconds: seconds.to_vec(),
        partial_rate: partial,
        silent_for: Some(0),
    };
    assert_eq!(decide_op(&view, &ctx, &policy(), 5), expected);
}

fn up(to: u64, rule: Rule) -> (u64, Rule) {
    (to, rule)
}

#[track_caller]
fn check_up(seconds: &[f64], partial: Option<f64>, ctx: OpContext, expected: (u64, Rule)) {
    let view = DemandView {
        seconds: seconds.to_vec(),
        partial_rate: partial,
        silent_for: Some(0),
    };
    match decide_op(&view, &ctx, &policy(), 5) {
        OpVerdict::Up { to, rule, .. } => assert_eq!((to, rule), expected),
        other => panic!("expected an increase, got {other:?}"),
    }
}

fn flat(value: f64, n: usize) -> Vec<f64> {
    vec![value; n]
}

#[test]
fn steady_demand_in_band_holds() {
    // 100 provisioned, target 0.5: band is 45..55 units/s.
    check(
        &flat(50.0, 120),
        Some(50.0),
        ctx(100),
        OpVerdict::Hold {
            reason: HoldReason::InBand,
        },
    );
}

#[test]
fn step_up_after_up_window() {
    // Two seconds above 55 (the last whole second and the current one so far).
    let mut s = flat(50.0, 60);
    s.push(250.0);
    // Sized to the two seconds' mean: ceil(255 / 0.5) = 510, a multiple
    // of 5 (5 % of 100).
    check_up(&s, Some(260.0), ctx(100), up(510, Rule::Surge));
}

#[test]
fn the_current_second_counts_with_its_rate_so_far() {
    // One second of surge, seen only as the current second's rate: with
    // up_window 2 that is not enough...
    let s = flat(50.0, 60);
    check(
        &s,
        Some(300.0),
        ctx(100),
        OpVerdict::Hold {
            reason: HoldReason::InBand,
        },
    );
    // ...with up_window 1 it is.
    let view = DemandView {
        seconds: s,
        partial_rate: Some(300.0),
        silent_for: Some(0),
    };
    let p = DynamoPolicy {
        up_window: Duration::from_secs(1),
        ..policy()
    };
    assert!(matches!(
        decide_op(&view, &ctx(100), &p, 5),
        OpVerdict::Up {
            to: 600,
            rule: Rule::Surge,
            ..
        }
    ));
}

#[test]
fn a_spike_shorter_than_up_window_holds() {
    let mut s = flat(50.0, 60);
    s.push(400.0);
    s.push(50.0);
    check(
        &s,
        Some(50.0),
        ctx(100),
        OpVerdict::Hold {
            reason: HoldReason::InBand,
        },
    );
}

#[test]
fn increases_are_clamped_to_the_hours_max() {
    let mut s = flat(50.0, 60);
    s.extend([5000.0, 5000.0]);
    check_up(&s, None, ctx(100), up(1000, Rule::Surge));
    // Already at max: hold, and say why.
    check(
        &s,
        None,
        ctx(1000),
        OpVerdict::Hold {
            reason: HoldReason::AtMax,
        },
    );
}

#[test]
fn trend_raises_before_the_crossing() {
    // A clean ramp 20 -> 47 over 10 s: still inside the band (< 55) now,
    // but 3 units/s more each second crosses it within the 10 s lead.
    let ramp: Vec<f64> = (0..10).map(|i| 20.0 + 3.0 * i as f64).collect();
    let mut s = flat(20.0, 50);
    s.extend(&ramp);
    // Predicted at x = 10 + 10 = 20: 20 + 3 * 20 = 80, capped at 1.5 x 47 = 70.5 -> 141 -> 145.
    check_up(&s, None, ctx(100), up(145, Rule::Trend));
}

#[test]
fn noisy_flat_demand_is_no_trend() {
    let s: Vec<f64> = (0..70)
        .map(|i| if i % 2 == 0 { 40.0 } else { 52.0 })
        .collect();
    check(
        &s,
        None,
        ctx(100),
        OpVerdict::Hold {
            reason: HoldReason::InBand,
        },
    );
}

#[test]
fn below_the_hours_min_raises_even_without_data() {
    let stale = DemandView {
        seconds: vec![f64::NAN; 60],
        partial_rate: None,
        silent_for: None,
    };
    let verdict = decide_op(&stale, &ctx(5), &policy(), 5);
    assert!(
        matches!(
            verdict,
            OpVerdict::Up {
                to: 10,
                rule: Rule::HourMin,
                ..
            }
        ),
        "{verdict:?}"
    );
}

#[test]
fn scheduled_prewarm() {
    let c = OpContext {
        prewarm_min: Some(500),
        upcoming_min: 500,
        ..ctx(100)
    };
    check_up(&flat(50.0, 120), None, c, up(500, Rule::Prewarm));
    // A surge bigger than the scheduled min wins.
    let mut s = flat(50.0, 60);
    s.extend([400.0, 400.0]);
    check_up(&s, None, c, up(800, Rule::Surge));
}

#[test]
fn an_announced_surge_raises_ahead_and_holds_decreases_above_it() {
    let c = OpContext {
        announced_min: Some(500),
        ..ctx(100)
    };
    // Quiet demand, or none at all: the announcement's capacity goes in.
    check_up(&flat(5.0, 120), None, c, up(500, Rule::Announced));
    let silent = DemandView {
        seconds: flat(5.0, 120),
        partial_rate: None,
        silent_for: Some(60),
    };
    assert!(matches!(
        decide_op(&silent, &c, &policy(), 5),
        OpVerdict::Up {
            to: 500,
            rule: Rule::Announced,
            ..
        }
    ));
    // Never past the hour's max.
    let capped = OpContext {
        limits: CapacityLimits { max: 300, ..LIMITS },
        ..c
    };
    check_up(&flat(5.0, 120), None, capped, up(300, Rule::Announced));
    // Once in place, quiet demand does not take it down while it holds.
    let held = OpContext {
        announced_min: Some(500),
        ..ctx(500)
    };
    assert!(
        !matches!(
            decide_op(
                &DemandView {
                    seconds: flat(5.0, 1200),
                    partial_rate: None,
                    silent_for: Some(0),
                },
                &held,
                &policy(),
                5
            ),
            OpVerdict::Down { .. }
        ),
        "no decrease below an announced surge's capacity"
    );
}

#[test]
fn stale_demand_holds_both_ways() {
    let mut s = flat(10.0, 60);
    s.extend([400.0, 400.0]);
    for silent in [Some(6), None] {
        let view = DemandView {
            seconds: s.clone(),
            partial_rate: None,
            silent_for: silent,
        };
        assert_eq!(
            decide_op(&view, &ctx(100), &policy(), 5),
            OpVerdict::Hold {
                reason: HoldReason::Stale
            }
        );
    }
    let quiet = DemandView {
        seconds: flat(1.0, 120),
        partial_rate: None,
        silent_for: Some(30),
    };
    assert_eq!(
        decide_op(&quiet, &ctx(100), &policy(), 5),
        OpVerdict::Hold {
            reason: HoldReason::Stale
        }
    );
}

#[test]
fn sustained_low_demand_decreases_to_p99_over_target() {
    let mut s = flat(10.0, 119);
    s.push(12.0);
    // p99 of the last 60 s is 10 (one 12 in 60 is above the 99th percentile? no: rank 60 -> 12).
    match decide_op(&DemandView::from_seconds(&s), &ctx(100), &policy(), 5) {
        OpVerdict::Down {
            to,
            rule,
            worth_it,
            evidence,
        } => {
            assert_eq!((to, rule, worth_it), (25, Rule::LowDemand, true));
            assert_eq!(evidence.demand, Some(12.0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_small_decrease_is_not_worth_a_budget_slot() {
    // 100 -> 90 saves 10 %, less than min_decrease (20 %).
    match decide_op(
        &DemandView::from_seconds(&flat(44.0, 120)),
        &ctx(100),
        &policy(),
        5,
    ) {
        OpVerdict::Down { to, worth_it, .. } => assert_eq!((to, worth_it), (90, false)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_decrease_without_a_full_known_window() {
    check(
        &flat(10.0, 30),
        None,
        ctx(100),
        OpVerdict::Hold {
            reason: HoldReason::ShortHistory,
        },
    );
    let mut gappy = flat(10.0, 120);
    for v in gappy.iter_mut().skip(70).step_by(10) {
        *v = f64::NAN;
    }
    check(
        &gappy,
        None,
        ctx(100),
        OpVerdict::Hold {
            reason: HoldReason::ShortHistory,
        },
    );
}

#[test]
fn a_decrease_never_goes_below_an_upcoming_hours_min() {
    let c = OpContext {
        upcoming_min: 60,
        ..ctx(100)
    };
    // Demand says 20; the hour starting within down_lookahead needs 60.
    match decide_op(
        &DemandView::from_seconds(&flat(10.0, 120)),
        &c,
        &policy(),
        5,
    ) {
        OpVerdict::Down { to, worth_it, .. } => assert_eq!((to, worth_it), (60, true)),
        other => panic!("{other:?}"),
    }
    let c = OpContext {
        upcoming_min: 90,
        ..ctx(100)
    };
    match decide_op(
        &DemandView::from_seconds(&flat(10.0, 120)),
        &c,
        &policy(),
        5,
    ) {
        OpVerdict::Down { to, worth_it, .. } => assert_eq!((to, worth_it), (90, false)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn above_the_hours_max_lowers_to_it() {
    let c = OpContext {
        limits: CapacityLimits { max: 200, ..LIMITS },
        ..ctx(300)
    };
    match decide_op(
        &DemandView::from_seconds(&flat(140.0, 120)),
        &c,
        &policy(),
        5,
    ) {
        OpVerdict::Down {
            to, rule, worth_it, ..
        } => assert_eq!((to, rule, worth_it), (200, Rule::HourMax, true)),
        other => panic!("{other:?}"),
    }
}

// --- combining read and write under the budget ---

fn t(hms: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-11-29T{hms}Z"))
        .unwrap()
        .with_timezone(&Utc)
}

fn down(to: u64, worth_it: bool) -> OpVerdict {
    OpVerdict::Down {
        to,
        rule: Rule::LowDemand,
        evidence: Evidence::SCHEDULE,
        worth_it,
    }
}

fn raise(to: u64) -> OpVerdict {
    OpVerdict::Up {
        to,
        rule: Rule::Surge,
        evidence: Evidence::SCHEDULE,
    }
}

fn hold() -> OpVerdict {
    OpVerdict::Hold {
        reason: HoldReason::InBand,
    }
}

fn planned(p: &Plan) -> Vec<(Op, u64, u64)> {
    match p {
        Plan::Update { changes, .. } | Plan::WaitForBudget { changes, .. } => {
            changes.iter().map(|c| (c.op, c.from, c.to)).collect()
        }
        Plan::Hold => vec![],
    }
}

#[test]
fn read_and_write_decreases_go_in_one_call() {
    let ledger = DecreaseLedger::default();
    let p = plan(
        &[
            (Op::Read, 100, down(40, true)),
            (Op::Write, 50, down(45, false)),
        ],
        &ledger,
        t("10:00:00"),
        &policy(),
        &Outlook::default(),
    );
    assert!(matches!(p, Plan::Update { decrease: true, .. }));
    assert_eq!(planned(&p), vec![(Op::Read, 100, 40), (Op::Write, 50, 45)]);
}

#[test]
fn a_decrease_nobody_needs_is_not_spent() {
    let p = plan(
        &[(Op::Read, 100, down(90, false)), (Op::Write, 50, hold())],
        &DecreaseLedger::default(),
        t("10:00:00"),
        &policy(),
        &Outlook::default(),
    );
    assert_eq!(p, Plan::Hold);
}

#[test]
fn increases_never_wait_for_the_budget() {
    let mut ledger = DecreaseLedger::default();
    ledger.record(t("09:59:00"));
    ledger.block_until(t("12:00:00"));
    let p = plan(
        &[(Op::Read, 100, raise(300)), (Op::Write, 50, down(10, true))],
        &ledger,
        t("10:00:00"),
        &policy(),
        &Outlook::default(),
    );
    assert_eq!(
        p,
        Plan::Update {
            changes: vec![Change {
                op: Op::Read,
                from: 100,
                to: 300,
                rule: Rule::Surge,
                evidence: Evidence::SCHEDULE
            }],
            decrease: false
        }
    );
}

#[test]
fn an_increase_never_carries_a_decrease() {
    // AWS refusing the decrease (its count differs from the ledger's)
    // would refuse the increase with it: the decrease goes on its own.
    let p = plan(
        &[(Op::Read, 100, raise(300)), (Op::Write, 50, down(10, true))],
        &DecreaseLedger::default(),
        t("10:00:00"),
        &policy(),
        &Outlook::default(),
    );
    assert!(matches!(
        p,
        Plan::Update {
            decrease: false,
            ..
        }
    ));
    assert_eq!(planned(&p), vec![(Op::Read, 100, 300)]);
}

#[test]
fn a_spent_budget_makes_decreases_wait() {
    let mut ledger = DecreaseLedger::default();
    for m in ["10:00:00", "10:01:00", "10:02:00", "10:03:00"] {
        ledger.record(t(m));
    }
    let p = plan(
        &[(Op::Read, 100, down(40, true))],
        &ledger,
        t("10:30:00"),
        &policy(),
        &Outlook::default(),
    );
    assert_eq!(
        p,
        Plan::WaitForBudget {
            changes: vec![Change {
                op: Op::Read,
                from: 100,
                to: 40,
                rule: Rule::LowDemand,
                evidence: Evidence::SCHEDULE
            }],
            next_allowed: t("11:03:00"),
            why: Wait::Rule,
        }
    );
    assert!(matches!(
        plan(
            &[(Op::Read, 100, down(40, true))],
            &ledger,
            t("11:03:00"),
            &policy(),
            &Outlook::default()
        ),
        Plan::Update { decrease: true, .. }
    ));
}

#[test]
fn the_hour_table_is_read_in_the_schedules_time_zone() {
    let mut hours = [LIMITS; 24];
    hours[14].min = 500;
    hours[15].min = 500;
    let schedule = Schedule {
        timezone: chrono_tz::Asia::Seoul,
    };
    let p = DynamoPolicy::default();
    // 04:30 UTC is 13:30 in Seoul: 14:00 is within the 1 h lookahead, not within the 60 s prewarm.
    let c = OpContext::at(&hours, &schedule, t("04:30:00"), 100, &p);
    assert_eq!(
        (c.limits.min, c.upcoming_min, c.prewarm_min),
        (10, 500, None)
    );
    // 13:59:30 local: prewarm.
    let c = OpContext::at(&hours, &schedule, t("04:59:30"), 100, &p);
    assert_eq!(c.prewarm_min, Some(500));
    let c = OpContext::at(
        &hours,
        &schedule,
        t("05:00:00") + TimeDelta::minutes(30),
        100,
        &p,
    );
    assert_eq!((c.limits.min, c.prewarm_min), (500, None));
}

#[test]
fn the_reserve_keeps_the_days_last_decreases_for_large_savings() {
    // 24 decreases by 21:03; spending at 21:30 would leave 2 (22:30, 23:30).
    let mut ledger = DecreaseLedger::default();
    for m in ["00:00:00", "00:01:00", "00:02:00", "00:03:00"] {
        ledger.record(t(m));
    }
    let mut at = t("01:03:00");
    for _ in 0..20 {
        ledger.record(at);
        at += TimeDelta::hours(1);
    }
    let p3 = DynamoPolicy {
        reserve: 3,
        ..policy()
    };
    // Saves 30 %: worth it (>= 20 %), but not twice min_decrease (40 %).
    let modest = [(Op::Read, 100, down(70, true))];
    assert!(
        matches!(
            plan(
                &modest,
                &ledger,
                t("21:30:00"),
                &policy(),
                &Outlook::default()
            ),
            Plan::Update { .. }
        ),
        "reserve 2 is kept"
    );
    assert!(
        matches!(
            plan(&modest, &ledger, t("21:30:00"), &p3, &Outlook::default()),
            Plan::WaitForBudget { .. }
        ),
        "reserve 3 would be broken"
    );
    // Saves 60 %: spent even so.
    let large = [(Op::Read, 100, down(40, true))];
    assert!(matches!(
        plan(&large, &ledger, t("21:30:00"), &p3, &Outlook::default()),
        Plan::Update { decrease: true, .. }
    ));
}

#[test]
fn a_step_is_not_mistaken_for_a_trend() {
    // Capacity already raised to 220 for a step from 20 to 100: the surge
    // is covered, and the step must not be extrapolated as a ramp.
    for k in 1..10 {
        let mut s = flat(20.0, 60 - k);
        s.extend(flat(100.0, k));
        check(
            &s,
            Some(100.0),
            ctx(220),
            OpVerdict::Hold {
                reason: HoldReason::InBand,
            },
        );
    }
}

// Burst-aware rules (`burst_share` > 0).

fn burst_policy() -> DynamoPolicy {
    DynamoPolicy {
        down_window: Duration::from_secs(600),
        smooth: Duration::from_secs(120),
        burst_share: 0.5,
        update_time: Duration::from_secs(20),
        // The bucket's own arithmetic; hold_excess has its own test.
        hold_excess: 3.0,
        ..DynamoPolicy::default()
    }
}

fn decide_burst(seconds: &[f64], provisioned: u64, burst: f64) -> OpVerdict {
    let view = DemandView::from_seconds(seconds);
    decide_op(
        &view,
        &ctx(provisioned).with_burst(burst),
        &burst_policy(),
        5,
    )
}

#[test]
fn a_spike_the_burst_bucket_covers_is_left_to_it() {
    // 100 provisioned (band 45..55); two seconds at 300 after a quiet spell.
    let mut s = flat(40.0, 200);
    s.extend([300.0, 300.0]);
    // The newest 10 s average 92: 37 over the band's top x 20 s = 740
    // units; the spike itself, 245 over for 10 s = 2,450 units: both
    // covered by half of 5,000 banked, not by an empty bucket.
    // What it would be raised to is what the bucket could not carry over
    // SPIKE_CARRY_S, never below the newest rate: 92 / 0.5.
    assert!(matches!(
        decide_burst(&s, 100, 5000.0),
        OpVerdict::Bet {
            to: 185,
            rule: Rule::Surge,
            ..
        }
    ));
    // An empty bucket: the spike's whole height.
    assert!(matches!(
        decide_burst(&s, 100, 0.0),
        OpVerdict::Up {
            to: 600,
            rule: Rule::Surge,
            ..
        }
    ));
    // A spike that lasts: 10 s at 300 -> 245 over the band x 20 s = 4,900 units.
    let mut s = flat(40.0, 200);
    s.extend(flat(300.0, 10));
    assert!(
        matches!(decide_burst(&s, 100, 10_000.0), OpVerdict::Bet { .. }),
        "half of 10,000 banked covers 4,900"
    );
    match decide_burst(&s, 100, 6_000.0) {
        // Sized to the mean of the newest seconds (300 / 0.5), not a peak second.
        OpVerdict::Up { to, rule, .. } => assert_eq!((to, rule), (600, Rule::Surge)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sustained_demand_needs_both_halves_of_the_smoothing_window_above_the_band() {
    // 100 provisioned, band_hi 55: 120 s at 60 -> both halves above.
    let mut s = flat(40.0, 100);
    s.extend(flat(60.0, 120));
    match decide_burst(&s, 100, 1e9) {
        OpVerdict::Up { to, rule, .. } => assert_eq!((to, rule), (120, Rule::Sustained)),
        other => panic!("{other:?}"),
    }
    // One noisy half: the newest 60 s at 75 average 57.5 over the window, but the older half is at 40.
    let mut s = flat(40.0, 160);
    s.extend(flat(75.0, 60));
    assert!(matches!(
        decide_burst(&s, 100, 1e9),
        OpVerdict::Bet {
            rule: Rule::Surge,
            ..
        }
    ));
}

/// A bet on burst, and the three things that end it: throttling reported
/// by the app, the bet's length, the size of the excess.
#[test]
fn a_bet_on_burst_ends_on_throttling_after_hold_max_and_past_hold_excess() {
    // 100 provisioned (band_hi 55), a step to 120: 65 over the band.
    let mut s = flat(40.0, 200);
    s.extend(flat(120.0, 10));
    let view = DemandView::from_seconds(&s);
    let p = burst_policy();
    let bet = |ctx: OpContext| decide_op(&view, &ctx, &p, 5);
    let full = ctx(100).with_burst(1e6);
    assert!(matches!(bet(full), OpVerdict::Bet { to: 240, .. }));
    // Throttling: raise now, to cover the newest peak.
    match bet(OpContext {
        throttled: true,
        ..full
    }) {
        OpVerdict::Up { to, rule, .. } => assert_eq!((to, rule), (240, Rule::Throttled)),
        other => panic!("{other:?}"),
    }
    // A bet that has lasted hold_max (120 s) is over.
    assert!(matches!(
        bet(OpContext {
            hold_s: Some(119.0),
            ..full
        }),
        OpVerdict::Bet { .. }
    ));
    assert!(matches!(
        bet(OpContext {
            hold_s: Some(120.0),
            ..full
        }),
        OpVerdict::Up {
            rule: Rule::Surge,
            ..
        }
    ));
    // An excess past hold_excess x provisioned is never bet on.
    let narrow = DynamoPolicy {
        hold_excess: 0.5,
        ..p
    };
    assert!(matches!(
        decide_op(&view, &full, &narrow, 5),
        OpVerdict::Up {
            rule: Rule::Surge,
            ..
        }
    ));
    // Throttling while demand is inside the band (a hot key): nothing to size.
    let quiet = DemandView::from_seconds(&flat(40.0, 200));
    assert!(!matches!(
        decide_op(
            &quiet,
            &OpContext {
                throttled: true,
                ..full
            },
            &p,
            5
        ),
        OpVerdict::Up { .. }
    ));
}

#[test]
fn noisy_quiet_demand_is_judged_on_smoothed_means() {
    // 1000 provisioned (band_lo 450): demand alternates 0 and 200 (single
    // seconds far above nothing, means of 100): decrease to 100 / 0.5.
    let s: Vec<f64> = (0..700)
        .map(|i| if i % 2 == 0 { 0.0 } else { 200.0 })
        .collect();
    match decide_burst(&s, 1000, 0.0) {
        OpVerdict::Down {
            to, rule, worth_it, ..
        } => {
            assert_eq!((to, rule, worth_it), (200, Rule::LowDemand, true))
        }
        other => panic!("{other:?}"),
    }
    // The per-second policy sizes to the p99 second instead.
    let view = DemandView::from_seconds(&s);
    let per_second = DynamoPolicy {
        burst_share: 0.0,
        ..burst_policy()
    };
    match decide_op(&view, &ctx(1000), &per_second, 5) {
        OpVerdict::Down { to, .. } => assert_eq!(to, 400),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_decrease_while_the_newest_seconds_rise() {
    // Quiet for 10 minutes, then a step to 480 just began: the smoothed
    // means are still low, but the newest seconds are above band_lo.
    let mut s = flat(10.0, 700);
    s.extend([480.0, 480.0]);
    assert!(
        !matches!(decide_burst(&s, 1000, 1e9), OpVerdict::Down { .. }),
        "a step must not look like a quiet window"
    );
    // A step to 300 (below band_lo): the decrease sizes to the newest level, not the diluted mean.
    let mut s = flat(10.0, 700);
    s.extend(flat(300.0, 5));
    match decide_burst(&s, 1000, 1e9) {
        OpVerdict::Down { to, .. } => assert_eq!(to, 600),
        other => panic!("{other:?}"),
    }
}
