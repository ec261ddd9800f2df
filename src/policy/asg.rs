//! The Auto Scaling group policy: desired capacity from the fleet's
//! requests/s, warm-up aware.
//!
//! - The size the traffic needs: ceil(fleet rps / the hour's
//!   `target_rps_per_instance` x (1 + `headroom`)), clamped to the hour's
//!   and the group's own min/max.
//! - `surge` (scale out): that size exceeded serving + warming instances for
//!   `up_window` seconds; the new size is that of the window's mean.
//!   Instances still warming (pending for less than `warmup`) are capacity
//!   on its way, so one surge is answered once.
//! - `stabilized` (scale in): the highest size needed over the
//!   `stabilization` window (as in the Kubernetes HPA) is below desired;
//!   at most `max_step_in` of the group per action (at least 1), never
//!   while instances are warming, never on stale data.
//! - `hour_min`, `prewarm`, `hour_max`: the schedule, as for tables.

use serde::Serialize;

use super::demand::DemandView;
use crate::config::{AsgPolicy, GroupLimits};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRule {
    HourMin,
    Prewarm,
    HourMax,
    Surge,
    Stabilized,
}

impl GroupRule {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRule::HourMin => "hour_min",
            GroupRule::Prewarm => "prewarm",
            GroupRule::HourMax => "hour_max",
            GroupRule::Surge => "surge",
            GroupRule::Stabilized => "stabilized",
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GroupContext {
    pub limits: GroupLimits,
    /// The min of the hour starting within `prewarm`, when higher than this hour's.
    pub prewarm_min: Option<u32>,
}

/// Bounds from the hour and the group itself; the group's own limits win.
fn bounds(state: &GroupState, limits: &GroupLimits) -> (u32, u32) {
    let hi = limits.max.min(state.group_max);
    let lo = limits.min.max(state.group_min).min(hi);
    (lo, hi)
}

/// Instances needed for `fleet_rps`, unclamped.
pub(crate) fn needed(fleet_rps: f64, limits: &GroupLimits, headroom: f64) -> u32 {
    let n = (fleet_rps.max(0.0) / limits.target_rps_per_instance * (1.0 + headroom)).ceil();
    n.min(u32::MAX as f64) as u32
}

/// Decides the group's desired capacity. `fleet` is fleet requests/s per
/// second (oldest first; the current second's rate so far counts).
pub(crate) fn decide_group(
    fleet: &DemandView,
    state: &GroupState,
    ctx: &GroupContext,
    p: &AsgPolicy,
    stale_after_s: i64,
) -> GroupVerdict {
    let (lo, hi) = bounds(state, &ctx.limits);
    let desired = state.desired;
    if desired < lo {
        return GroupVerdict::Set {
            to: lo,
            rule: GroupRule::HourMin,
            evidence: GroupEvidence::SCHEDULE,
        };
    }
    if let Some(m) = ctx.prewarm_min.map(|m| m.min(hi)) {
        if m > desired {
            return GroupVerdict::Set {
                to: m,
                rule: GroupRule::Prewarm,
                evidence: GroupEvidence::SCHEDULE,
            };
        }
    }
    if desired > hi {
        return GroupVerdict::Set {
            to: hi,
            rule: GroupRule::HourMax,
            evidence: GroupEvidence::SCHEDULE,
        };
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
    if newest.len() == n && newest.iter().all(|v| !v.is_nan() && size(*v) > on_its_way) {
        // Sized to the window's mean, not its peak: one noisy second (or
        // the current second's rate so far, from a few sampled lines) must
        // not buy instances that take minutes to boot and minutes more to
        // give back. A demand still rising is answered again next tick.
        let mean = newest.iter().sum::<f64>() / n as f64;
        let to = size(mean);
        let evidence = GroupEvidence {
            fleet_rps: Some(mean),
            needed: Some(needed(mean, &ctx.limits, p.headroom)),
            window_s: n as u64,
        };
        return if to > desired {
            GroupVerdict::Set {
                to,
                rule: GroupRule::Surge,
                evidence,
            }
        } else {
            GroupVerdict::Hold {
                reason: GroupHold::Requested,
            }
        };
    }

    // Scale in.
    let window = p.stabilization.as_secs() as usize;
    let (known, unknown) = fleet.window(window);
    let stabilized = known.iter().map(|v| size(*v)).max();
    match stabilized {
        Some(s) if s < desired => {
            if state.warming > 0 {
                return GroupVerdict::Hold {
                    reason: GroupHold::Warming,
                };
            }
            if fleet.seconds.len() < window || unknown as f64 > 0.05 * window as f64 {
                return GroupVerdict::Hold {
                    reason: GroupHold::Stabilizing,
                };
            }
            let step = ((desired as f64 * p.max_step_in).floor() as u32).max(1);
            let peak = known.iter().copied().fold(f64::MIN, f64::max);
            GroupVerdict::Set {
                to: s.max(desired.saturating_sub(step)),
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
        }
    }

    #[track_caller]
    fn check(fleet_rps: &[f64], s: GroupState, c: GroupContext, expected: GroupVerdict) {
        let got = decide_group(&DemandView::from_seconds(fleet_rps), &s, &c, &policy(), 5);
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
        // A peak inside the window keeps the group.
        let mut peak = flat(900.0, 120);
        peak[100] = 2000.0;
        check(&peak, state(20, 20, 0), ctx(), hold(GroupHold::Steady));
    }

    #[test]
    fn scale_in_steps_at_least_one_and_at_most_ten_percent() {
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
        // Never below what the window needs.
        check(
            &flat(3500.0, 120),
            state(40, 40, 0),
            ctx(),
            set(39, GroupRule::Stabilized),
        );
    }

    #[test]
    fn no_scale_in_while_warming_or_stale() {
        check(
            &flat(100.0, 120),
            state(10, 8, 2),
            ctx(),
            hold(GroupHold::Warming),
        );
        let stale = DemandView {
            seconds: flat(100.0, 120),
            partial_rate: None,
            silent_for: Some(60),
        };
        assert_eq!(
            decide_group(&stale, &state(10, 10, 0), &ctx(), &policy(), 5),
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
            prewarm_min: None,
        };
        check(
            &flat(100.0, 120),
            state(5, 5, 0),
            c,
            set(12, GroupRule::HourMin),
        );
        let c = GroupContext {
            limits: LIMITS,
            prewarm_min: Some(15),
        };
        check(
            &flat(900.0, 120),
            state(10, 10, 0),
            c,
            set(15, GroupRule::Prewarm),
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
