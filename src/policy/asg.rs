//! The Auto Scaling group policy: desired capacity from the fleet's
//! requests/s, warm-up aware.
//!
//! - The size the traffic needs: ceil(fleet rps / the hour's
//!   `target_rps_per_instance` x (1 + `headroom`)), clamped to the hour's
//!   and the group's own min/max.
//! - `surge` (scale out): that size exceeded serving + warming instances,
//!   by more than the `tolerance`, for `stabilization_up` seconds; the new
//!   size is that of the window's mean. Instances still warming (pending
//!   for less than `warmup`) are capacity on its way, so one surge is
//!   answered once.
//! - `stabilized` (scale in): the highest size needed over the
//!   `stabilization_down` window (as in the Kubernetes HPA; each second's
//!   need from the `stabilization_up` mean around it, as scale-out sizes)
//!   is below desired by more than the tolerance; never on stale data,
//!   never while instances launched by a recent scale-out are warming
//!   (a trickle of replacements does not block it for ever).
//! - the rate rules (`scale_up`, `scale_down`: an amount or a percentage
//!   per period, the largest or smallest change chosen) bound each step,
//!   counted from the changes made within each rule's period.
//! - `hour_min`, `prewarm`, `hour_max`: the schedule, as for tables.

use serde::Serialize;

use super::demand::DemandView;
use crate::config::{AsgPolicy, GroupLimits, RateAmount, RateRules, Select};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRule {
    HourMin,
    Prewarm,
    HourMax,
    Surge,
    Stabilized,
    /// An announced surge's instances, in service ahead of it.
    Announced,
}

impl GroupRule {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRule::HourMin => "hour_min",
            GroupRule::Prewarm => "prewarm",
            GroupRule::HourMax => "hour_max",
            GroupRule::Surge => "surge",
            GroupRule::Stabilized => "stabilized",
            GroupRule::Announced => "announced",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupHold {
    Stale,
    Steady,
    /// Scale-in waits while instances warm up.
    Warming,
    /// Scale-in waits for a full stabilization window of known data.
    Stabilizing,
    /// Already asked for (desired covers the need).
    Requested,
    /// A sidecar of the fleet is silent: no scale-in on an estimate.
    FleetEstimated,
    /// The need is within the tolerance of the group.
    Tolerance,
    /// A rate rule allows no change now.
    RateLimited,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupEvidence {
    /// Fleet requests/s the rule acted on.
    pub fleet_rps: Option<f64>,
    /// Instances that figure needs.
    pub needed: Option<u32>,
    pub window_s: u64,
}

impl GroupEvidence {
    const SCHEDULE: GroupEvidence = GroupEvidence {
        fleet_rps: None,
        needed: None,
        window_s: 0,
    };
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum GroupVerdict {
    Hold {
        reason: GroupHold,
    },
    Set {
        to: u32,
        rule: GroupRule,
        evidence: GroupEvidence,
    },
}

/// The group as last described, reduced to what the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct GroupState {
    pub desired: u32,
    pub group_min: u32,
    pub group_max: u32,
    /// InService and Healthy.
    pub serving: u32,
    /// Pending for less than `warmup`.
    pub warming: u32,
}

/// A change of desired capacity the policy made, `age_s` ago.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PastChange {
    pub age_s: f64,
    pub from: u32,
    pub to: u32,
}

/// The highest (scaling out) or lowest (in) desired capacity the rate
/// rules allow now, from the changes within each rule's period (the
/// group "at the start of the period", as the HPA counts it). None: no
/// limit.
pub(crate) fn rate_limit(
    rules: &RateRules,
    desired: u32,
    history: &[PastChange],
    up: bool,
) -> Option<u32> {
    if rules.select == Select::Disabled {
        return Some(desired);
    }
    let limits = rules.rules.iter().map(|r| {
        let period = r.period.as_secs_f64();
        let moved: i64 = history
            .iter()
            .filter(|c| c.age_s < period)
            .map(|c| c.to as i64 - c.from as i64)
            .filter(|d| (*d > 0) == up)
            .sum();
        let start = (desired as i64 - moved).max(0) as f64;
        let step = match r.amount {
            RateAmount::Instances(n) => n as f64,
            RateAmount::Percent(pct) => (start * pct / 100.0).floor().max(1.0),
        };
        let bound = if up { start + step } else { start - step };
        bound.clamp(0.0, u32::MAX as f64) as u32
    });
    // Max: the rule allowing the largest change wins.
    match (rules.select, up) {
        (Select::Max, true) | (Select::Min, false) => limits.max(),
        _ => limits.min(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GroupContext {
    pub limits: GroupLimits,
    /// The min of the hour starting within `prewarm`, when higher than this hour's.
    pub prewarm_min: Option<u32>,
    /// The instances an announced surge needs, while its floor holds.
    pub announced_min: Option<u32>,
    /// The warm-up in effect (learnt or configured), in seconds.
    pub warmup_s: f64,
}

/// Bounds from the hour and the group itself; the group's own limits win.
fn bounds(state: &GroupState, ctx: &GroupContext) -> (u32, u32) {
    let limits = &ctx.limits;
    let hi = limits.max.min(state.group_max);
    let lo = limits
        .min
        .max(state.group_min)
        .max(ctx.announced_min.unwrap_or(0))
        .min(hi);
    (lo, hi)
}

/// Instances needed for `fleet_rps`, unclamped.
pub(crate) fn needed(fleet_rps: f64, limits: &GroupLimits, headroom: f64) -> u32 {
    let n = (fleet_rps.max(0.0) / limits.target_rps_per_instance * (1.0 + headroom)).ceil();
    n.min(u32::MAX as f64) as u32
}

/// Instances needed for `fleet_rps`, before rounding up.
fn exact_need(fleet_rps: f64, limits: &GroupLimits, headroom: f64) -> f64 {
    fleet_rps.max(0.0) / limits.target_rps_per_instance * (1.0 + headroom)
}

/// What the schedule and announcements ask for, before demand is read.
fn scheduled(desired: u32, ctx: &GroupContext, lo: u32, hi: u32) -> Option<GroupVerdict> {
    if let Some(m) = ctx.announced_min.map(|m| m.min(hi)) {
        if m > desired && m >= lo {
            return Some(GroupVerdict::Set {
                to: m,
                rule: GroupRule::Announced,
                evidence: GroupEvidence::SCHEDULE,
            });
        }
    }
    if desired < lo {
        return Some(GroupVerdict::Set {
            to: lo,
            rule: GroupRule::HourMin,
            evidence: GroupEvidence::SCHEDULE,
        });
    }
    if let Some(m) = ctx.prewarm_min.map(|m| m.min(hi)) {
        if m > desired {
            return Some(GroupVerdict::Set {
                to: m,
                rule: GroupRule::Prewarm,
                evidence: GroupEvidence::SCHEDULE,
            });
        }
    }
    if desired > hi {
        return Some(GroupVerdict::Set {
            to: hi,
            rule: GroupRule::HourMax,
            evidence: GroupEvidence::SCHEDULE,
        });
    }
    None
}

/// Decides the group's desired capacity. `fleet` is fleet requests/s per
/// second (oldest first; the current second's rate so far counts);
/// `history` the changes this policy made recently.
pub(crate) fn decide_group(
    fleet: &DemandView,
    state: &GroupState,
    ctx: &GroupContext,
    p: &AsgPolicy,
    stale_after_s: i64,
    history: &[PastChange],
) -> GroupVerdict {
    let (lo, hi) = bounds(state, ctx);
    let desired = state.desired;
    if let Some(v) = scheduled(desired, ctx, lo, hi) {
        return v;
    }
    if fleet.is_stale(stale_after_s) {
        return GroupVerdict::Hold {
            reason: GroupHold::Stale,
        };
    }
    let size = |rps: f64| needed(rps, &ctx.limits, p.headroom).clamp(lo, hi);

    // Scale out.
    let n = p.up_window.as_secs().max(1) as usize;
    let newest = fleet.newest(n);
    let on_its_way = state.serving + state.warming;
    let beyond = |rps: f64| {
        exact_need(rps, &ctx.limits, p.headroom) > on_its_way as f64 * (1.0 + p.tolerance)
    };
    if newest.len() == n && newest.iter().all(|v| !v.is_nan() && size(*v) > on_its_way) {
        // Sized to the window's mean, not its peak: one noisy second (or
        // the current second's rate so far, from a few sampled lines) must
        // not buy instances that take minutes to boot and minutes more to
        // give back. A demand still rising is answered again next tick.
        let mean = newest.iter().sum::<f64>() / n as f64;
        if !beyond(mean) {
            return GroupVerdict::Hold {
                reason: GroupHold::Tolerance,
            };
        }
        let mut to = size(mean);
        if to <= desired {
            return GroupVerdict::Hold {
                reason: GroupHold::Requested,
            };
        }
        if let Some(cap) = rate_limit(&p.scale_up, desired, history, true) {
            if cap <= desired {
                return GroupVerdict::Hold {
                    reason: GroupHold::RateLimited,
                };
            }
            to = to.min(cap);
        }
        return GroupVerdict::Set {
            to,
            rule: GroupRule::Surge,
            evidence: GroupEvidence {
                fleet_rps: Some(mean),
                needed: Some(needed(mean, &ctx.limits, p.headroom)),
                window_s: n as u64,
            },
        };
    }

    // Scale in: each second's need from the mean of the `up_window`
    // seconds around it (a one-second spike is the queue's, not a size).
    let window = p.stabilization.as_secs() as usize;
    let (known, unknown) = fleet.window(window);
    let smoothed = rolling_means(&known, n);
    let peak = smoothed.iter().copied().fold(f64::NAN, f64::max);
    let stabilized = (!peak.is_nan()).then(|| size(peak));
    match stabilized {
        Some(s) if s < desired => {
            let warming_blocks = state.warming > 0
                && history
                    .iter()
                    .any(|c| c.to > c.from && c.age_s < ctx.warmup_s);
            if warming_blocks {
                return GroupVerdict::Hold {
                    reason: GroupHold::Warming,
                };
            }
            if fleet.seconds.len() < window || unknown as f64 > 0.05 * window as f64 {
                return GroupVerdict::Hold {
                    reason: GroupHold::Stabilizing,
                };
            }
            if exact_need(peak, &ctx.limits, p.headroom) >= desired as f64 * (1.0 - p.tolerance) {
                return GroupVerdict::Hold {
                    reason: GroupHold::Tolerance,
                };
            }
            let floor = rate_limit(&p.scale_down, desired, history, false).unwrap_or(0);
            if floor >= desired {
                return GroupVerdict::Hold {
                    reason: GroupHold::RateLimited,
                };
            }
            GroupVerdict::Set {
                to: s.max(floor),
                rule: GroupRule::Stabilized,
                evidence: GroupEvidence {
                    fleet_rps: Some(peak),
                    needed: Some(s),
                    window_s: window as u64,
                },
            }
        }
        _ => GroupVerdict::Hold {
            reason: GroupHold::Steady,
        },
    }
}

/// Means of every `n` consecutive values (the values themselves when
/// there are fewer).
fn rolling_means(values: &[f64], n: usize) -> Vec<f64> {
    if n <= 1 || values.len() < n {
        return values.to_vec();
    }
    let mut out = Vec::with_capacity(values.len() - n + 1);
    let mut sum: f64 = values[..n].iter().sum();
    out.push(sum / n as f64);
    for i in n..values.len() {
        sum += values[i] - values[i - n];
        out.push(sum / n as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: GroupLimits = GroupLimits {
        min: 2,
        max: 40,
        target_rps_per_instance: 100.0,
    };

    fn policy() -> AsgPolicy {
        AsgPolicy {
            stabilization: Duration::from_secs(60),
            ..AsgPolicy::default()
        }
    }

    fn state(desired: u32, serving: u32, warming: u32) -> GroupState {
        GroupState {
            desired,
            group_min: 1,
            group_max: 50,
            serving,
            warming,
        }
    }

    fn ctx() -> GroupContext {
        GroupContext {
            limits: LIMITS,
            prewarm_min: None,
            announced_min: None,
            warmup_s: 180.0,
        }
    }

    #[track_caller]
    fn check(fleet_rps: &[f64], s: GroupState, c: GroupContext, expected: GroupVerdict) {
        check_with(fleet_rps, s, c, &policy(), &[], expected)
    }

    #[track_caller]
    fn check_with(
        fleet_rps: &[f64],
        s: GroupState,
        c: GroupContext,
        p: &AsgPolicy,
        history: &[PastChange],
        expected: GroupVerdict,
    ) {
        let got = decide_group(&DemandView::from_seconds(fleet_rps), &s, &c, p, 5, history);
        match (&got, &expected) {
            (
                GroupVerdict::Set { to, rule, .. },
                GroupVerdict::Set {
                    to: t2, rule: r2, ..
                },
            ) => assert_eq!((to, rule), (t2, r2), "{got:?}"),
            _ => assert_eq!(got, expected),
        }
    }

    fn set(to: u32, rule: GroupRule) -> GroupVerdict {
        GroupVerdict::Set {
            to,
            rule,
            evidence: GroupEvidence::SCHEDULE,
        }
    }

    fn hold(reason: GroupHold) -> GroupVerdict {
        GroupVerdict::Hold { reason }
    }

    fn flat(v: f64, n: usize) -> Vec<f64> {
        vec![v; n]
    }

    #[test]
    fn needed_instances_include_headroom() {
        assert_eq!(needed(1000.0, &LIMITS, 0.1), 11);
        assert_eq!(needed(0.0, &LIMITS, 0.1), 0);
    }

    #[test]
    fn steady_traffic_holds() {
        // 900 rps needs ceil(9.9) = 10 instances; 10 serve.
        check(
            &flat(900.0, 120),
            state(10, 10, 0),
            ctx(),
            hold(GroupHold::Steady),
        );
    }

    #[test]
    fn a_surge_scales_out_after_up_window() {
        let mut s = flat(900.0, 100);
        s.extend(flat(2700.0, 5));
        // 2700 rps -> ceil(29.7) = 30.
        check(&s, state(10, 10, 0), ctx(), set(30, GroupRule::Surge));
        // Four seconds are not enough (up_window 5 s).
        let mut short = flat(900.0, 100);
        short.extend(flat(2700.0, 4));
        check(&short, state(10, 10, 0), ctx(), hold(GroupHold::Steady));
    }

    #[test]
    fn a_surge_is_sized_to_the_window_mean_not_one_noisy_second() {
        let mut s = flat(900.0, 100);
        s.extend([2000.0, 2400.0, 6000.0, 2200.0, 2400.0]);
        // Mean 3000 -> ceil(33) = 33, not the 6000 spike's 66.
        check(&s, state(10, 10, 0), ctx(), set(33, GroupRule::Surge));
    }

    #[test]
    fn warming_instances_suppress_a_second_scale_out() {
        let mut s = flat(900.0, 100);
        s.extend(flat(2700.0, 30));
        // Desired already 30: 10 serve and 20 are warming.
        check(&s, state(30, 10, 20), ctx(), hold(GroupHold::Steady));
        // Desired 30 but only 5 launched yet (serving 10 + warming 5): already requested.
        check(&s, state(30, 10, 5), ctx(), hold(GroupHold::Requested));
    }

    #[test]
    fn scale_in_waits_for_the_stabilization_window() {
        // The last 60 s needed at most 10; desired 20: one step of 10 % (2).
        let mut s = flat(2000.0, 60);
        s.extend(flat(900.0, 60));
        check(&s, state(20, 20, 0), ctx(), set(18, GroupRule::Stabilized));
        // A peak of 5 s inside the window keeps the group.
        let mut peak = flat(900.0, 120);
        peak[100..105].fill(2000.0);
        check(&peak, state(20, 20, 0), ctx(), hold(GroupHold::Steady));
    }

    #[test]
    fn scale_in_steps_at_least_one_and_at_most_ten_percent_per_15_s() {
        check(
            &flat(100.0, 120),
            state(5, 5, 0),
            ctx(),
            set(4, GroupRule::Stabilized),
        );
        check(
            &flat(100.0, 120),
            state(40, 40, 0),
            ctx(),
            set(36, GroupRule::Stabilized),
        );
        // Never below what the window needs (3,200 rps: 35.2 -> 36).
        check(
            &flat(3200.0, 120),
            state(40, 40, 0),
            ctx(),
            set(36, GroupRule::Stabilized),
        );
        // A step of 4 made 10 s ago: the period's 10 % is spent (the
        // group was 40 when it began).
        let made = [PastChange {
            age_s: 10.0,
            from: 40,
            to: 36,
        }];
        check_with(
            &flat(100.0, 120),
            state(36, 36, 0),
            ctx(),
            &policy(),
            &made,
            hold(GroupHold::RateLimited),
        );
        let later = [PastChange {
            age_s: 16.0,
            ..made[0]
        }];
        check_with(
            &flat(100.0, 120),
            state(36, 36, 0),
            ctx(),
            &policy(),
            &later,
            set(33, GroupRule::Stabilized),
        );
    }

    #[test]
    fn the_tolerance_band_holds_small_differences() {
        // 3,500 rps needs 38.5 instances: within 10 % of 40, kept.
        check(
            &flat(3500.0, 120),
            state(40, 40, 0),
            ctx(),
            hold(GroupHold::Tolerance),
        );
        // 1,050 rps needs 11.55 (12) on 11: within 10 %, no scale-out.
        let mut s = flat(900.0, 100);
        s.extend(flat(1050.0, 10));
        check(&s, state(11, 11, 0), ctx(), hold(GroupHold::Tolerance));
        // Without tolerance it scales out.
        let exact = AsgPolicy {
            tolerance: 0.0,
            ..policy()
        };
        check_with(
            &s,
            state(11, 11, 0),
            ctx(),
            &exact,
            &[],
            set(12, GroupRule::Surge),
        );
    }

    #[test]
    fn scale_up_rules_bound_each_period_and_select_picks_the_largest_or_smallest() {
        use crate::config::{RateAmount, RateRule, RateRules, Select};
        let hpa = |select| AsgPolicy {
            scale_up: RateRules {
                rules: vec![
                    RateRule {
                        amount: RateAmount::Instances(4),
                        period: Duration::from_secs(15),
                    },
                    RateRule {
                        amount: RateAmount::Percent(100.0),
                        period: Duration::from_secs(15),
                    },
                ],
                select,
            },
            ..policy()
        };
        let mut s = flat(500.0, 100);
        s.extend(flat(5000.0, 10));
        // 5,000 rps needs 55 -> 40 (max); from 10: +4 or +100 % -> 20 (max) or 14 (min).
        check_with(
            &s,
            state(10, 10, 0),
            ctx(),
            &hpa(Select::Max),
            &[],
            set(20, GroupRule::Surge),
        );
        check_with(
            &s,
            state(10, 10, 0),
            ctx(),
            &hpa(Select::Min),
            &[],
            set(14, GroupRule::Surge),
        );
        check_with(
            &s,
            state(10, 10, 0),
            ctx(),
            &hpa(Select::Disabled),
            &[],
            hold(GroupHold::RateLimited),
        );
        // Doubled 5 s ago (10 -> 20): nothing more in this period.
        let made = [PastChange {
            age_s: 5.0,
            from: 10,
            to: 20,
        }];
        check_with(
            &s,
            state(20, 10, 10),
            ctx(),
            &hpa(Select::Max),
            &made,
            hold(GroupHold::RateLimited),
        );
        // Unlimited by default: straight to what the traffic needs.
        check(&s, state(10, 10, 0), ctx(), set(40, GroupRule::Surge));
    }

    #[test]
    fn a_one_second_spike_does_not_hold_the_group_up() {
        // 900 rps with one second of 3,000 in the window: the 5-s mean
        // around it is 1,320 -> 15, not 33.
        let mut s = flat(900.0, 120);
        s[100] = 3000.0;
        check(&s, state(20, 20, 0), ctx(), set(18, GroupRule::Stabilized));
    }

    #[test]
    fn no_scale_in_while_a_scale_out_warms_or_stale() {
        let scaled_out = [PastChange {
            age_s: 60.0,
            from: 8,
            to: 10,
        }];
        check_with(
            &flat(100.0, 120),
            state(10, 8, 2),
            ctx(),
            &policy(),
            &scaled_out,
            hold(GroupHold::Warming),
        );
        // A trickle of replacements warming, no scale-out of ours within
        // the warm-up: scale-in goes ahead.
        check(
            &flat(100.0, 120),
            state(10, 9, 1),
            ctx(),
            set(9, GroupRule::Stabilized),
        );
        let long_ago = [PastChange {
            age_s: 600.0,
            ..scaled_out[0]
        }];
        check_with(
            &flat(100.0, 120),
            state(10, 9, 1),
            ctx(),
            &policy(),
            &long_ago,
            set(9, GroupRule::Stabilized),
        );
        let stale = DemandView {
            seconds: flat(100.0, 120),
            partial_rate: None,
            silent_for: Some(60),
        };
        assert_eq!(
            decide_group(&stale, &state(10, 10, 0), &ctx(), &policy(), 5, &[]),
            hold(GroupHold::Stale)
        );
        let mut gappy = flat(100.0, 120);
        for v in gappy.iter_mut().skip(80).step_by(7) {
            *v = f64::NAN;
        }
        check(
            &gappy,
            state(10, 10, 0),
            ctx(),
            hold(GroupHold::Stabilizing),
        );
    }

    #[test]
    fn hour_min_and_prewarm() {
        let c = GroupContext {
            limits: GroupLimits { min: 12, ..LIMITS },
            ..ctx()
        };
        check(
            &flat(100.0, 120),
            state(5, 5, 0),
            c,
            set(12, GroupRule::HourMin),
        );
        let c = GroupContext {
            prewarm_min: Some(15),
            ..ctx()
        };
        check(
            &flat(900.0, 120),
            state(10, 10, 0),
            c,
            set(15, GroupRule::Prewarm),
        );
        let c = GroupContext {
            announced_min: Some(18),
            ..ctx()
        };
        check(
            &flat(900.0, 120),
            state(10, 10, 0),
            c,
            set(18, GroupRule::Announced),
        );
        // While it holds, quiet traffic does not scale in below it.
        check(
            &flat(10.0, 600),
            state(18, 18, 0),
            c,
            GroupVerdict::Hold {
                reason: GroupHold::Steady,
            },
        );
    }

    #[test]
    fn the_groups_own_limits_clamp_everything() {
        let small = GroupState {
            group_max: 8,
            ..state(5, 5, 0)
        };
        let mut s = flat(500.0, 100);
        s.extend(flat(5000.0, 5));
        check(&s, small, ctx(), set(8, GroupRule::Surge));
        let over = GroupState {
            group_max: 8,
            ..state(10, 10, 0)
        };
        check(&s, over, ctx(), set(8, GroupRule::HourMax));
        // The group's min wins over a lower hour min.
        let floor = GroupState {
            group_min: 3,
            ..state(2, 2, 0)
        };
        check(&flat(10.0, 120), floor, ctx(), set(3, GroupRule::HourMin));
    }
}
