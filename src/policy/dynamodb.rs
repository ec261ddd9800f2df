//! The DynamoDB capacity policy, for read and write of a table or index
//! separately, then combined per resource under the decrease budget.
//!
//! Rules, in the order they are tried (ups win over downs):
//! - `hour_min`: below the hour's min -> raise to it (needs no data);
//! - `prewarm`: an hour with a higher min starts within `prewarm` -> raise now;
//! - `surge`: demand stayed above provisioned x target x (1 + tolerance) for
//!   `up_window` seconds (the current second counts with its rate so far)
//!   -> ceil(peak / target);
//! - `trend`: a credible line (R^2 >= 0.8) over `trend_window` predicts a
//!   crossing within `lead` -> ceil(prediction / target), the prediction
//!   capped at 1.5x the window's peak so one step is not extrapolated to
//!   infinity;
//! - `hour_max`: above the hour's max -> lower to it;
//! - `low_demand`: demand over `down_window` (95 % of it known) stayed below
//!   provisioned x target x (1 - tolerance) -> ceil(p99 / target), never
//!   below the hour's min or the min of any hour starting within
//!   `down_lookahead`; worth spending a decrease on only when it saves
//!   `min_decrease` of the capacity.
//!
//! New capacity is rounded up to a multiple of `step` x current (at least 1
//! unit) and clamped to the hour's [min, max]. Stale demand (no sample for
//! `stale_after`) never moves capacity, except the schedule's own minimum.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::budget::{DecreaseLedger, DecreaseRule};
use super::demand::DemandView;
use super::spend::{may_spend, Outlook, Wait};
use crate::config::{CapacityLimits, DynamoPolicy, HourTable, Schedule};
use crate::series::{least_squares, percentile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    HourMin,
    Prewarm,
    Surge,
    Sustained,
    Trend,
    /// The app reported throttling: raised to cover the newest peak.
    Throttled,
    /// An index's writes raised with its table's (projected writes).
    WithTable,
    HourMax,
    LowDemand,
    /// An announced surge's capacity, in place ahead of it.
    Announced,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::HourMin => "hour_min",
            Rule::Prewarm => "prewarm",
            Rule::Surge => "surge",
            Rule::Sustained => "sustained",
            Rule::Trend => "trend",
            Rule::Throttled => "throttled",
            Rule::WithTable => "with_table",
            Rule::HourMax => "hour_max",
            Rule::LowDemand => "low_demand",
            Rule::Announced => "announced",
        }
    }
}

/// The figures that justified a change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evidence {
    /// Units/s the rule acted on (peak, prediction or p99), if demand-based.
    pub demand: Option<f64>,
    /// The band edge it was compared with.
    pub threshold: Option<f64>,
    /// Seconds of demand behind it.
    pub window_s: u64,
}

impl Evidence {
    const SCHEDULE: Evidence = Evidence {
        demand: None,
        threshold: None,
        window_s: 0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// No sample for `stale_after`: never act on stale data.
    Stale,
    /// Demand is inside the band.
    InBand,
    /// Demand wants more, but capacity is at the hour's max.
    AtMax,
    /// Not enough known history for a decrease yet.
    ShortHistory,
    /// A sidecar of the fleet is silent: its demand is estimated, and no
    /// decrease is made on an estimate.
    FleetEstimated,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum OpVerdict {
    Hold {
        reason: HoldReason,
    },
    Up {
        to: u64,
        rule: Rule,
        evidence: Evidence,
    },
    Down {
        to: u64,
        rule: Rule,
        evidence: Evidence,
        /// Saves at least `min_decrease` (or enforces the hour's max).
        worth_it: bool,
    },
    /// Demand is above the band; the modelled burst bucket carries the
    /// excess for longer than an increase takes, so capacity is not raised
    /// yet (a bet on burst capacity, bounded by `hold_max` and
    /// `hold_excess`, ended by any throttling). `to` is what it would be
    /// raised to.
    Bet {
        to: u64,
        rule: Rule,
        evidence: Evidence,
    },
}

/// Where one operation (read or write) of a resource stands now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpContext {
    pub provisioned: u64,
    /// This hour's limits.
    pub limits: CapacityLimits,
    /// The highest min of this hour and every hour starting within `down_lookahead`.
    pub upcoming_min: u64,
    /// The min of the hour starting within `prewarm`, when it is higher than this hour's.
    pub prewarm_min: Option<u64>,
    /// The capacity an announced surge needs, while its floor holds
    /// (`announce`): raised to ahead of the surge, never lowered past.
    pub announced_min: Option<u64>,
    /// Burst capacity banked, as modelled ([`super::burst::BurstModel`]).
    pub burst: f64,
    /// The app reported throttling in the newest seconds: no bet on burst.
    pub throttled: bool,
    /// Seconds the current bet on burst capacity has lasted, if one is on.
    pub hold_s: Option<f64>,
    /// Seconds of the provisioned rate the bucket is trusted to hold
    /// ([`super::burst::BurstTrust`]).
    pub trusted_s: f64,
}

impl OpContext {
    /// Reads the hour table at `now` in the schedule's time zone.
    pub fn at(
        hours: &HourTable<CapacityLimits>,
        schedule: &Schedule,
        now: DateTime<Utc>,
        provisioned: u64,
        p: &DynamoPolicy,
    ) -> OpContext {
        let limits = schedule.row(hours, now);
        let upcoming_min = schedule
            .rows_within(hours, now, p.down_lookahead)
            .iter()
            .map(|l| l.min)
            .max()
            .unwrap_or(limits.min);
        let ahead = now + chrono::TimeDelta::from_std(p.prewarm).unwrap_or_default();
        let next = schedule.row(hours, ahead);
        OpContext {
            provisioned,
            limits,
            upcoming_min,
            prewarm_min: (next.min > limits.min).then_some(next.min),
            announced_min: None,
            burst: 0.0,
            throttled: false,
            hold_s: None,
            trusted_s: super::burst::BURST_SECONDS,
        }
    }

    pub fn with_burst(mut self, units: f64) -> OpContext {
        self.burst = units;
        self
    }
}

/// The unit new capacity is rounded up to.
fn step_unit(current: u64, step: f64) -> u64 {
    ((current as f64 * step).ceil() as u64).max(1)
}

fn round_up(units: f64, unit: u64) -> u64 {
    let whole = units.max(0.0).ceil() as u64;
    whole.div_ceil(unit) * unit
}

/// The highest increase the rules ask for, and whether demand wants more
/// than the band (and if so, whether burst capacity is left to carry it).
#[derive(Debug, Default)]
struct Wanted {
    up: Option<(u64, Rule, Evidence)>,
    wants_more: bool,
    /// Left to burst capacity: what it would be raised to otherwise.
    bet: Option<(u64, Rule, Evidence)>,
}

impl Wanted {
    fn consider(&mut self, cur: u64, to: u64, rule: Rule, evidence: Evidence) {
        if to > cur && self.up.is_none_or(|(best, _, _)| to > best) {
            self.up = Some((to, rule, evidence));
        }
    }
}

/// Decides one operation of one resource.
pub fn decide_op(
    view: &DemandView,
    ctx: &OpContext,
    p: &DynamoPolicy,
    stale_after_s: i64,
) -> OpVerdict {
    let cur = ctx.provisioned;
    let limits = ctx.limits;
    let unit = step_unit(cur, p.step);
    let mut wanted = Wanted::default();
    if cur < limits.min {
        wanted.consider(cur, limits.min, Rule::HourMin, Evidence::SCHEDULE);
    }
    if let Some(m) = ctx.prewarm_min {
        wanted.consider(cur, m.min(limits.max), Rule::Prewarm, Evidence::SCHEDULE);
    }
    if let Some(m) = ctx.announced_min {
        wanted.consider(cur, m.min(limits.max), Rule::Announced, Evidence::SCHEDULE);
    }
    let stale = view.is_stale(stale_after_s);
    if !stale {
        demand_above_band(view, ctx, p, unit, &mut wanted);
    }
    if let Some((to, rule, evidence)) = wanted.up {
        return OpVerdict::Up { to, rule, evidence };
    }
    if stale {
        return OpVerdict::Hold {
            reason: HoldReason::Stale,
        };
    }
    if let Some((to, rule, evidence)) = wanted.bet.filter(|(to, _, _)| *to > cur) {
        return OpVerdict::Bet { to, rule, evidence };
    }
    if wanted.wants_more {
        return OpVerdict::Hold {
            reason: HoldReason::AtMax,
        };
    }
    decrease(view, ctx, p, unit)
}

/// The `surge`, `sustained` and `trend` rules on fresh demand.
fn demand_above_band(
    view: &DemandView,
    ctx: &OpContext,
    p: &DynamoPolicy,
    unit: u64,
    wanted: &mut Wanted,
) {
    let cur = ctx.provisioned;
    let limits = ctx.limits;
    let size = |demand: f64| round_up(demand / limits.target, unit).clamp(limits.min, limits.max);
    let band_hi = cur as f64 * limits.target * (1.0 + p.tolerance);
    let burst_mode = p.burst_share > 0.0;
    // A bet on burst is off once the app saw throttling, once the bet has
    // lasted `hold_max`, and for an excess past `hold_excess`.
    let may_bet =
        burst_mode && !ctx.throttled && ctx.hold_s.is_none_or(|h| h < p.hold_max.as_secs_f64());
    // Whether the modelled burst bucket could keep demand `rate` within the
    // band until an increase made now would be in effect: the excess over
    // the band's top, not over capacity, so headroom is kept (requests are
    // not spread evenly over a second, or over partitions).
    let burst_covers = |rate: f64| {
        let excess = (rate - band_hi).max(0.0);
        may_bet
            && excess <= p.hold_excess * cur as f64
            && excess * p.update_time.as_secs_f64() <= p.burst_share * ctx.burst
    };
    if ctx.throttled {
        // Throttled now: capacity is short of what the app asks, whatever
        // the bucket was thought to hold. Raise to cover the rate of the
        // newest seconds; a lone spike over a low rate is not sized for
        // (the bucket refills under the headroom the target keeps).
        if let Some(rate) = view.known_mean(BURST_RATE_WINDOW_S) {
            if rate > band_hi {
                wanted.wants_more = true;
                let evidence = Evidence {
                    demand: Some(rate),
                    threshold: Some(band_hi),
                    window_s: BURST_RATE_WINDOW_S as u64,
                };
                wanted.consider(cur, size(rate), Rule::Throttled, evidence);
            }
        }
    }
    let n = p.up_window.as_secs().max(1) as usize;
    let newest = view.newest(n);
    if newest.len() == n && newest.iter().all(|v| !v.is_nan() && *v > band_hi) {
        wanted.wants_more = true;
        // Left to burst only when the bucket could carry both the newest
        // BURST_RATE_WINDOW_S seconds' excess for `update_time` (one spiky
        // second does not look like a surge that will last) and the spike
        // itself for SPIKE_CARRY_S seconds (a small bucket does not
        // wait for the mean to catch up).
        let rate = view.known_mean(BURST_RATE_WINDOW_S.max(n)).unwrap_or(0.0);
        let spike = newest.iter().sum::<f64>() / n as f64;
        let counted = if burst_mode {
            p.burst_share * ctx.burst
        } else {
            0.0
        };
        let spike_carried = (spike - band_hi).max(0.0) * SPIKE_CARRY_S <= counted;
        // Sized to the newest `up_window` seconds' mean, less what the bucket
        // can carry over the next
        // SPIKE_CARRY_S seconds, never below the newest rate: a spike
        // over a full bucket asks for a little, a surge that drained it for
        // its whole height (increases are free; a capacity raised too far
        // waits for a decrease).
        let need = (spike - counted / SPIKE_CARRY_S).max(rate);
        let evidence = Evidence {
            demand: Some(need),
            threshold: Some(band_hi),
            window_s: n as u64,
        };
        if burst_covers(rate) && spike_carried {
            wanted.bet = Some((size(need), Rule::Surge, evidence));
        } else {
            wanted.consider(cur, size(need), Rule::Surge, evidence);
        }
    }
    if burst_mode {
        let k = p.smooth.as_secs().max(1) as usize;
        let (known, _) = view.window(k);
        if known.len() * 2 >= k {
            let level = known.iter().sum::<f64>() / known.len() as f64;
            // Both halves above the band, as target tracking wants two
            // datapoints in a row: one noisy half does not raise capacity.
            let (older, newer) = known.split_at(known.len() / 2);
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            if mean(older) > band_hi && mean(newer) > band_hi {
                wanted.wants_more = true;
                let evidence = Evidence {
                    demand: Some(level),
                    threshold: Some(band_hi),
                    window_s: k as u64,
                };
                wanted.consider(cur, size(level), Rule::Sustained, evidence);
            }
        }
    }
    if let Some((predicted, window_s)) = trend_prediction(view, p) {
        if predicted > band_hi {
            wanted.wants_more = true;
            let evidence = Evidence {
                demand: Some(predicted),
                threshold: Some(band_hi),
                window_s,
            };
            if burst_covers(predicted) {
                if wanted.bet.is_none_or(|(to, _, _)| size(predicted) > to) {
                    wanted.bet = Some((size(predicted), Rule::Trend, evidence));
                }
            } else {
                wanted.consider(cur, size(predicted), Rule::Trend, evidence);
            }
        }
    }
}

/// `hour_max` and `low_demand`: what quiet demand (or the schedule) lets
/// capacity come down to, if anything.
fn decrease(view: &DemandView, ctx: &OpContext, p: &DynamoPolicy, unit: u64) -> OpVerdict {
    let cur = ctx.provisioned;
    let limits = ctx.limits;
    let low = low_demand(view, ctx, p, unit);
    if cur > limits.max {
        let (to, rule, evidence) = match low {
            Some((to, evidence)) if to < limits.max => (to, Rule::LowDemand, evidence),
            _ => (limits.max, Rule::HourMax, Evidence::SCHEDULE),
        };
        return OpVerdict::Down {
            to,
            rule,
            evidence,
            worth_it: true,
        };
    }
    match low {
        Some((to, evidence)) if to < cur => OpVerdict::Down {
            to,
            rule: Rule::LowDemand,
            evidence,
            worth_it: (cur - to) as f64 >= p.min_decrease * cur as f64,
        },
        Some(_) => OpVerdict::Hold {
            reason: HoldReason::InBand,
        },
        None if view.unknown_in(p.down_window.as_secs() as usize) > 0 => OpVerdict::Hold {
            reason: HoldReason::ShortHistory,
        },
        None => OpVerdict::Hold {
            reason: HoldReason::InBand,
        },
    }
}

/// Seconds whose mean excess the burst check projects over `update_time`.
pub const BURST_RATE_WINDOW_S: usize = 10;

/// A bet on burst capacity is recorded (`held`) once it has lasted this
/// long; the record's time is this long after the bet began.
pub const BET_RECORDED_AFTER_S: f64 = 10.0;

/// Seconds a spike (the newest `up_window` seconds' mean) must be carried
/// by the burst capacity counted on to be left to it.
pub const SPIKE_CARRY_S: f64 = 5.0;

/// How straight a line must fit to be trusted. A step seen as a line never
/// reaches this (R^2 <= 0.75 however many seconds of the step the window
/// holds), so only real ramps are extrapolated.
const MIN_TREND_R2: f64 = 0.8;

/// The trend's prediction `lead` seconds ahead, when the line is credible.
fn trend_prediction(view: &DemandView, p: &DynamoPolicy) -> Option<(f64, u64)> {
    let n = p.trend_window.as_secs() as usize;
    if n < 3 {
        return None;
    }
    let skip = view.seconds.len().saturating_sub(n);
    let points: Vec<(f64, f64)> = view.seconds[skip..]
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, v)| (i as f64, *v))
        .collect();
    if points.len() < n / 2 || points.len() < 3 {
        return None;
    }
    let fit = least_squares(&points)?;
    if fit.slope <= 0.0 || fit.r2 < MIN_TREND_R2 {
        return None;
    }
    let peak = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    // x of the second that just ended is n - 1; now is about one second later.
    let at = (view.seconds.len() - skip) as f64 + p.lead.as_secs_f64();
    Some((fit.at(at).min(peak * 1.5), n as u64))
}

/// Where capacity could go after a long quiet window, if it was quiet.
fn low_demand(
    view: &DemandView,
    ctx: &OpContext,
    p: &DynamoPolicy,
    unit: u64,
) -> Option<(u64, Evidence)> {
    let n = p.down_window.as_secs() as usize;
    if n == 0 || view.seconds.len() < n {
        return None;
    }
    let band_lo = ctx.provisioned as f64 * ctx.limits.target * (1.0 - p.tolerance);
    // The newest seconds first: they are cheap to judge, and while they are
    // not below the band there is no decrease to size.
    let newest = view.newest(p.up_window.as_secs().max(1) as usize);
    let newest_mean =
        newest.iter().filter(|v| !v.is_nan()).sum::<f64>() / newest.len().max(1) as f64;
    if p.burst_share > 0.0 && newest_mean >= band_lo {
        return None;
    }
    let (mut known, unknown) = view.window(n);
    if known.is_empty() || unknown as f64 > 0.05 * n as f64 {
        return None;
    }
    let demand = if p.burst_share > 0.0 {
        // Burst absorbs single seconds: judge `smooth`-second means, and
        // size to the mean of the newest quarter of the window (an
        // increase, unlike a decrease, is free and takes seconds if demand
        // comes back).
        let (highest, last) = moving_means(&known, p.smooth.as_secs().max(1) as usize);
        if highest >= band_lo {
            return None;
        }
        // Rising demand (a step just starting) is not diluted by the quiet before it.
        let recent = &known[known.len() - known.len().div_ceil(4)..];
        let recent_mean = recent.iter().sum::<f64>() / recent.len() as f64;
        recent_mean.max(last).max(newest_mean)
    } else {
        let newest_quiet = newest.iter().all(|v| v.is_nan() || *v < band_lo);
        known.sort_by(f64::total_cmp);
        if known[known.len() - 1] >= band_lo || !newest_quiet {
            return None;
        }
        percentile(&known, 0.99)
    };
    let floor = ctx
        .limits
        .min
        .max(ctx.upcoming_min)
        .max(ctx.announced_min.unwrap_or(0).min(ctx.limits.max));
    let mut to = round_up(demand / ctx.limits.target, unit)
        .max(floor)
        .min(ctx.limits.max.max(floor));
    if p.burst_share > 0.0 && to < ctx.provisioned {
        // Never so low that the bucket a smaller capacity banks (as far as
        // it is trusted) no longer carries the window's spikes: the p99
        // second's excess over the new band for SPIKE_CARRY_S, the
        // check the `surge` rule makes.
        let n = known.len();
        let k = ((n as f64 * 0.01) as usize).min(n - 1);
        let (_, spike, _) = known.select_nth_unstable_by(n - 1 - k, f64::total_cmp);
        let h = SPIKE_CARRY_S;
        let carried = *spike * h
            / (p.burst_share * ctx.trusted_s + ctx.limits.target * (1.0 + p.tolerance) * h);
        to = to.max(round_up(carried, unit).min(ctx.provisioned));
    }
    Some((
        to,
        Evidence {
            demand: Some(demand),
            threshold: Some(band_lo),
            window_s: n as u64,
        },
    ))
}

/// Where demand is heading, for planning decreases: when the newest
/// minutes fall (a least-squares line over the newest 5 one-minute means),
/// toward the lowest minute of the window (the level before a surge, say),
/// the capacity that level needs and by when the line reaches it (within
/// the hour). None when demand is not falling.
pub fn expected_lower(
    view: &DemandView,
    ctx: &OpContext,
    now: DateTime<Utc>,
) -> Option<(u64, DateTime<Utc>)> {
    let minutes: Vec<f64> = view
        .seconds
        .rchunks_exact(60)
        .map(|m| {
            let (sum, known) = m
                .iter()
                .filter(|v| !v.is_nan())
                .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            if known * 2 < m.len() {
                f64::NAN
            } else {
                sum / known as f64
            }
        })
        .collect();
    if minutes.len() < 5 || minutes.iter().any(|m| m.is_nan()) {
        return None;
    }
    // `minutes` is newest first.
    let level = minutes[0];
    let base = minutes.iter().copied().fold(f64::MAX, f64::min);
    let points: Vec<(f64, f64)> = minutes[..5]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, v)| (i as f64, *v))
        .collect();
    let fit = least_squares(&points)?;
    if fit.slope >= 0.0 || level <= base * 1.2 {
        return None;
    }
    let minutes_to_base = ((level - base) / -fit.slope).clamp(1.0, 60.0);
    let floor = ctx
        .limits
        .min
        .max(ctx.upcoming_min)
        .max(ctx.announced_min.unwrap_or(0).min(ctx.limits.max));
    let to = ((base / ctx.limits.target).ceil() as u64)
        .max(floor)
        .min(ctx.limits.max.max(floor));
    let at = now + chrono::TimeDelta::seconds((minutes_to_base * 60.0) as i64);
    Some((to, at))
}

/// The highest and the newest of the means of every `k` consecutive
/// values; fewer than `k` values give their single mean for both.
fn moving_means(values: &[f64], k: usize) -> (f64, f64) {
    if values.len() <= k {
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        return (mean, mean);
    }
    let mut sum: f64 = values[..k].iter().sum();
    let mut highest = sum / k as f64;
    let mut last = highest;
    for i in k..values.len() {
        sum += values[i] - values[i - k];
        last = sum / k as f64;
        highest = highest.max(last);
    }
    (highest, last)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Read,
    Write,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }

    /// "read" or "write" (as the config and the audit log spell them).
    pub fn from_name(name: &str) -> Option<Op> {
        match name {
            "read" => Some(Op::Read),
            "write" => Some(Op::Write),
            _ => None,
        }
    }
}

/// One capacity change of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    pub op: Op,
    pub from: u64,
    pub to: u64,
    pub rule: Rule,
    pub evidence: Evidence,
}

/// What to do with one table or index now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum Plan {
    Hold,
    /// One UpdateTable call; `decrease` when it lowers any capacity (and so spends a decrease).
    Update {
        changes: Vec<Change>,
        decrease: bool,
    },
    /// A worthwhile decrease waits: for the budget, or kept for a better use.
    WaitForBudget {
        changes: Vec<Change>,
        next_allowed: DateTime<Utc>,
        why: Wait,
    },
}

/// Combines the read and write verdicts of one resource under its budget:
/// increases go at once, in a call of their own (a decrease in the same
/// call could have AWS refuse the increase with it); a decrease is spent
/// when one is worth it and [`super::spend::may_spend`] says now, and then
/// carries the other operation's decrease in the same call.
pub fn plan(
    verdicts: &[(Op, u64, OpVerdict)],
    ledger: &DecreaseLedger,
    now: DateTime<Utc>,
    p: &DynamoPolicy,
    outlook: &Outlook,
) -> Plan {
    let change = |op: Op, from: u64, to: u64, rule: Rule, evidence: Evidence| Change {
        op,
        from,
        to,
        rule,
        evidence,
    };
    let ups: Vec<Change> = verdicts
        .iter()
        .filter_map(|(op, from, v)| match v {
            OpVerdict::Up { to, rule, evidence } => Some(change(*op, *from, *to, *rule, *evidence)),
            _ => None,
        })
        .collect();
    if !ups.is_empty() {
        return Plan::Update {
            changes: ups,
            decrease: false,
        };
    }
    let downs: Vec<Change> = verdicts
        .iter()
        .filter_map(|(op, from, v)| match v {
            OpVerdict::Down {
                to, rule, evidence, ..
            } => Some(change(*op, *from, *to, *rule, *evidence)),
            _ => None,
        })
        .collect();
    let any_worth = verdicts
        .iter()
        .any(|(_, _, v)| matches!(v, OpVerdict::Down { worth_it: true, .. }));
    if !any_worth {
        return Plan::Hold;
    }
    match may_spend(ledger, now, p, &downs, outlook) {
        Ok(()) => Plan::Update {
            changes: downs,
            decrease: true,
        },
        Err(why) => Plan::WaitForBudget {
            next_allowed: next_spendable(ledger, now, p, &downs, outlook, why),
            changes: downs,
            why,
        },
    }
}

/// When these decreases may go: the rule's next slot, the instant a larger
/// decrease is expected, or the first whole minute from `now` at which the
/// reserve and the schedule let them.
fn next_spendable(
    ledger: &DecreaseLedger,
    now: DateTime<Utc>,
    p: &DynamoPolicy,
    downs: &[Change],
    outlook: &Outlook,
    why: Wait,
) -> DateTime<Utc> {
    let rule = DecreaseRule::of(p);
    match why {
        Wait::Rule => return ledger.next_allowed(now, rule),
        Wait::Larger { by } => return by,
        Wait::Reserve | Wait::Schedule { .. } => {}
    }
    let mut t = ledger.next_allowed(now, rule);
    for _ in 0..(26 * 60) {
        if !matches!(
            may_spend(ledger, t, p, downs, outlook),
            Err(Wait::Reserve | Wait::Schedule { .. } | Wait::Rule)
        ) {
            return t;
        }
        t += chrono::TimeDelta::minutes(1);
    }
    t
}

#[cfg(test)]
mod tests;
