//! A model of DynamoDB's own auto scaling (Application Auto Scaling target
//! tracking on `DynamoDBReadCapacityUtilization` / `...WriteCapacityUtilization`),
//! for one capacity (read or write of a table or index). See docs/replay.md
//! for the sources of each rule.
//!
//! - CloudWatch sees *consumed* capacity (throttled requests are not
//!   consumed) as one-minute datapoints; each datapoint becomes visible
//!   `PUBLISH_DELAY_S` after its minute ends;
//! - the policy's two alarms watch those datapoints against thresholds
//!   that follow the current capacity: high at target x provisioned, low at
//!   (target - 20 points) x provisioned;
//! - high: the newest 2 visible datapoints above it; low: the newest 15
//!   below it. An alarm is evaluated each minute, when a datapoint appears,
//!   and its action repeats every minute while it stays in ALARM;
//! - the action sets capacity to the newest datapoint's consumed / target
//!   (only upwards for high, only downwards for low);
//! - the scheduled min/max of the hour are enforced as scheduled actions
//!   would; the decrease rule and the update delay are the simulator's, as
//!   for rapidscale.

use chrono::{DateTime, TimeDelta, Utc};

use super::engine::{replay_world, serve_group, serve_world, table_groups, Replayed, TableGroups};
use super::fleet::{Ec2Tracking, FleetQueue, GroupSeries, TrackingSettings};
use super::{GroupTarget, OpSeries, ResourceFigures, Target};
use crate::actuator::TableUpdate;
use crate::cloud::CloudErrorKind;
use crate::config::{CapacityLimits, Config, Mode};
use crate::policy::budget::DecreaseLedger;
use crate::policy::dynamodb::{Change, Evidence, Op, Rule};
use crate::sim::{SimSettings, SimWorld};

pub const PUBLISH_DELAY_S: i64 = 60;
pub const OUT_DATAPOINTS: usize = 2;
pub const IN_DATAPOINTS: usize = 15;
/// The low alarm's threshold: this many utilization points below the target.
pub const IN_POINTS_BELOW: f64 = 0.20;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Datapoint {
    /// Unix second the minute starts.
    start: i64,
    /// Mean consumed units/s over the minute.
    consumed: f64,
}

#[derive(Debug, Clone, Default)]
pub struct NativeTracker {
    datapoints: Vec<Datapoint>,
    minute: Option<i64>,
    consumed_sum: f64,
    seconds: u32,
}

impl NativeTracker {
    /// Records one second: what was consumed.
    pub fn observe(&mut self, second: i64, consumed: f64) {
        let minute = second.div_euclid(60) * 60;
        if self.minute != Some(minute) {
            self.close();
            self.minute = Some(minute);
        }
        self.consumed_sum += consumed;
        self.seconds += 1;
    }

    fn close(&mut self) {
        if let (Some(start), true) = (self.minute, self.seconds > 0) {
            self.datapoints.push(Datapoint {
                start,
                consumed: self.consumed_sum / 60.0,
            });
            // The alarms never look further back than this.
            if self.datapoints.len() > 64 {
                self.datapoints.drain(..32);
            }
        }
        self.consumed_sum = 0.0;
        self.seconds = 0;
    }

    /// The change target tracking asks for at `now`, given the current
    /// capacity and the hour's limits; call once per second.
    pub fn decide(&mut self, now: i64, current: u64, limits: CapacityLimits) -> Option<u64> {
        if current < limits.min {
            return Some(limits.min);
        }
        if current > limits.max {
            return Some(limits.max);
        }
        // Evaluate when a new datapoint becomes visible.
        if now.rem_euclid(60) != 0 {
            return None;
        }
        if self.minute.is_some_and(|m| now >= m + 60) {
            self.close();
            self.minute = None;
        }
        let visible = self
            .datapoints
            .iter()
            .rposition(|d| d.start + 60 + PUBLISH_DELAY_S <= now)
            .map_or(&[][..], |i| &self.datapoints[..=i]);
        let newest = |n: usize| (visible.len() >= n).then(|| &visible[visible.len() - n..]);
        let size = |consumed: f64| {
            ((consumed / limits.target).ceil() as u64).clamp(limits.min.max(1), limits.max)
        };
        let prov = current as f64;
        let high = limits.target * prov;
        if let Some(w) = newest(OUT_DATAPOINTS) {
            if w.iter().all(|d| d.consumed > high) {
                let to = size(w[w.len() - 1].consumed);
                if to > current {
                    return Some(to);
                }
            }
        }
        let low = (limits.target - IN_POINTS_BELOW).max(0.0) * prov;
        if let Some(w) = newest(IN_DATAPOINTS) {
            if w.iter().all(|d| d.consumed < low) {
                let to = size(w[w.len() - 1].consumed);
                if to < current {
                    return Some(to);
                }
            }
        }
        None
    }
}

/// AWS's native scaling over the trace: the same simulated account as
/// rapidscale's (a table with its indexes, the same world settings and
/// seed, so the same drains), one tracker per capacity, one second at a
/// time. Each table or index is its own scalable target: its changes go in
/// a call of their own, refused while the table is UPDATING (the alarm asks
/// again a minute later). Calls decided at the end of a second reach the
/// simulator at the start of the next, as alarm actions do.
pub struct NativeSide {
    world: SimWorld,
    groups: TableGroups,
    ledgers: Vec<DecreaseLedger>,
    /// [target][op]
    trackers: Vec<Vec<NativeTracker>>,
    pub series: Vec<Vec<OpSeries>>,
    pub figures: Vec<ResourceFigures>,
    queued: Vec<(usize, TableUpdate)>,
    group: Option<NativeGroup>,
}

/// The group under EC2 target tracking, on the native side's own world.
struct NativeGroup {
    target: GroupTarget,
    tracking: Ec2Tracking,
    queue: FleetQueue,
    requests: Vec<f64>,
    series: GroupSeries,
    /// Desired capacity set at the start of the next second.
    call: Option<u32>,
}

impl NativeSide {
    pub fn new(
        what: Replayed<'_>,
        tracking: TrackingSettings,
        settings: &SimSettings,
    ) -> NativeSide {
        let Replayed {
            start,
            requests,
            targets,
            group,
            timeout_s,
        } = what;
        let seconds = requests.len();
        NativeSide {
            group: group.map(|g| NativeGroup {
                target: g.clone(),
                tracking: Ec2Tracking::new(tracking),
                queue: FleetQueue::new(timeout_s),
                requests: requests.to_vec(),
                series: GroupSeries::with_capacity(seconds),
                call: None,
            }),
            world: replay_world(settings, targets, group, start),
            groups: table_groups(targets),
            ledgers: vec![DecreaseLedger::default(); targets.len()],
            trackers: targets
                .iter()
                .map(|t| vec![NativeTracker::default(); t.ops.len()])
                .collect(),
            series: targets
                .iter()
                .map(|t| {
                    t.ops
                        .iter()
                        .map(|_| OpSeries::with_capacity(seconds))
                        .collect()
                })
                .collect(),
            figures: vec![ResourceFigures::default(); targets.len()],
            queued: Vec::new(),
        }
    }

    /// Second `s` of the trace, which starts at `now`: the calls decided
    /// last second, the second's demand served, then the alarms evaluated.
    pub fn second(&mut self, config: &Config, targets: &[Target], s: usize, now: DateTime<Utc>) {
        self.world.advance(now);
        self.call(now);
        let served = serve_world(&mut self.world, targets, &self.groups, s, now);
        for (i, t) in targets.iter().enumerate() {
            for (k, (o, &(provisioned, throttled))) in t.ops.iter().zip(&served[i]).enumerate() {
                self.series[i][k].push(provisioned, throttled);
                self.trackers[i][k].observe(now.timestamp(), (o.units[s] - throttled).max(0.0));
            }
        }
        self.decide(config, targets, now + TimeDelta::seconds(1));
        self.group_second(config, s, now);
    }

    /// The group's second: last second's call, the requests served, the
    /// alarms evaluated at the second's end.
    fn group_second(&mut self, config: &Config, s: usize, now: DateTime<Utc>) {
        let (Some(g), Some(asg)) = (&mut self.group, &config.asg) else {
            return;
        };
        if let Some(to) = g.call.take() {
            // Refused only outside the group's own min/max, which the
            // scheduled limits never ask for.
            let _ = self.world.set_desired_capacity(&g.target.name, to, now);
        }
        let r = g.requests.get(s).copied().unwrap_or(0.0);
        serve_group(&self.world, &g.target, &mut g.queue, r, &mut g.series);
        let Some(group) = self.world.group(&g.target.name) else {
            return;
        };
        let serving = group.in_service() as u32;
        g.tracking.observe(now.timestamp(), r, serving);
        let end = now + TimeDelta::seconds(1);
        let warmup = TimeDelta::seconds(g.tracking.settings.warmup_s);
        let warming = group
            .instances
            .iter()
            .filter(|i| i.launched_at + warmup > end)
            .count() as u32;
        let limits = config.schedule.row(&asg.hours, end);
        g.call = g
            .tracking
            .decide(end.timestamp(), group.desired, warming, &limits);
    }

    /// The group's seconds (empty when no group is replayed).
    pub fn take_group(&mut self) -> GroupSeries {
        self.group
            .as_mut()
            .map(|g| std::mem::take(&mut g.series))
            .unwrap_or_default()
    }

    fn call(&mut self, now: DateTime<Utc>) {
        for (i, u) in std::mem::take(&mut self.queued) {
            match self.world.update_table(&u.table, &u.capacities(), now) {
                Ok(()) => {
                    self.figures[i].actions += 1;
                    if u.decrease {
                        self.ledgers[i].record(now);
                        *self.figures[i]
                            .decreases_used
                            .entry(now.date_naive())
                            .or_default() += 1;
                    }
                }
                Err(e) => {
                    self.figures[i].refused += 1;
                    if e.kind == CloudErrorKind::LimitExceeded {
                        self.ledgers[i].block_until(now + TimeDelta::hours(1));
                    }
                }
            }
        }
    }

    fn decide(&mut self, config: &Config, targets: &[Target], now: DateTime<Utc>) {
        let rule = self.world.settings.decrease_rule;
        for (i, t) in targets.iter().enumerate() {
            let Some(table) = self.world.table(&t.table) else {
                continue;
            };
            // An UpdateTable now would be refused (ResourceInUse): the
            // alarm's action is tried again when it repeats.
            if table.updating() {
                continue;
            }
            let Some(resource) = table.resource(t.index.as_deref()) else {
                continue;
            };
            let current = resource.provisioned();
            let cur = |op: Op| match op {
                Op::Read => current.read,
                Op::Write => current.write,
            };
            let mut changes = Vec::new();
            for (k, o) in t.ops.iter().enumerate() {
                let limits = config.schedule.row(&o.spec.hours, now);
                let Some(to) = self.trackers[i][k].decide(now.timestamp(), cur(o.op), limits)
                else {
                    continue;
                };
                if to < cur(o.op) && !self.ledgers[i].allowed_at(now, rule) {
                    continue;
                }
                changes.push(Change {
                    op: o.op,
                    from: cur(o.op),
                    to,
                    rule: Rule::Surge,
                    evidence: Evidence {
                        demand: None,
                        threshold: None,
                        window_s: 60,
                    },
                });
            }
            if changes.is_empty() {
                continue;
            }
            let decrease = changes.iter().any(|c| c.to < c.from);
            self.queued.push((
                i,
                TableUpdate::single(
                    &t.table,
                    t.index.as_deref(),
                    current,
                    changes,
                    decrease,
                    Mode::Apply,
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CapacityLimits = CapacityLimits {
        target: 0.7,
        min: 5,
        max: 1000,
    };

    /// Feeds `consumed` units/s for `seconds` from `from`; capacity follows
    /// each decision at once. Returns (instant, new capacity) of each.
    fn feed(
        t: &mut NativeTracker,
        from: i64,
        seconds: i64,
        consumed: impl Fn(i64, u64) -> f64,
        prov: &mut u64,
    ) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        for s in from..from + seconds {
            t.observe(s, consumed(s, *prov));
            if let Some(to) = t.decide(s + 1, *prov, LIMITS) {
                out.push((s + 1, to));
                *prov = to;
            }
        }
        out
    }

    #[test]
    fn scale_out_needs_two_datapoints_and_the_publishing_delay() {
        let mut t = NativeTracker::default();
        let mut prov = 100;
        // Quiet at 50 % of 100.
        assert!(feed(&mut t, 0, 600, |_, _| 50.0, &mut prov).is_empty());
        // A step to 90/s at second 600: minutes 600 and 660 are above 70 %;
        // the second one is visible at 660 + 60 + 60 = 780.
        let out = feed(&mut t, 600, 300, |_, _| 90.0, &mut prov);
        assert_eq!(out.first(), Some(&(780, 129)));
        assert_eq!(out.len(), 1, "90/s is within target at 129: {out:?}");
    }

    #[test]
    fn the_action_repeats_every_minute_while_the_alarm_stays_in_alarm() {
        // The change is not made (the table is UPDATING, or the decrease
        // rule forbids it): the alarm stays in ALARM and asks again each
        // minute, not only after two (or fifteen) new datapoints.
        let mut t = NativeTracker::default();
        let mut out = Vec::new();
        for s in 0..600 {
            t.observe(s, 90.0);
            out.extend(t.decide(s + 1, 100, LIMITS).map(|to| (s + 1, to)));
        }
        let times: Vec<i64> = out.iter().map(|o| o.0).collect();
        assert_eq!(times, [180, 240, 300, 360, 420, 480, 540, 600], "{out:?}");
        assert!(out.iter().all(|o| o.1 == 129));
        let mut t = NativeTracker::default();
        let mut out = Vec::new();
        for s in 0..1200 {
            t.observe(s, 20.0);
            out.extend(t.decide(s + 1, 100, LIMITS).map(|to| (s + 1, to)));
        }
        assert_eq!(out[..2], [(960, 29), (1020, 29)], "{out:?}");
    }

    #[test]
    fn throttled_demand_raises_in_steps_as_consumption_shows_it() {
        // Demand 300/s, only what is provisioned is consumed (no burst):
        // after each raise the alarm goes OK against the new threshold and
        // needs two new minutes above it.
        let mut t = NativeTracker::default();
        let mut prov = 100;
        let out = feed(&mut t, 0, 900, |_, p| (p as f64).min(300.0), &mut prov);
        assert_eq!(
            out,
            [(180, 143), (360, 205), (540, 293), (720, 419), (900, 429)],
            "{out:?}"
        );
    }

    #[test]
    fn scale_in_needs_fifteen_datapoints_twenty_points_below_the_target() {
        let mut t = NativeTracker::default();
        let mut prov = 100;
        // 55 % of 100: below the target, above 50 %: never scaled in.
        assert!(feed(&mut t, 0, 3600, |_, _| 55.0, &mut prov).is_empty());
        // 45 %: minutes 3600 .. 4440 are the first 15 below; the 15th is
        // visible at 4500 + 60.
        let out = feed(&mut t, 3600, 1200, |_, _| 45.0, &mut prov);
        assert_eq!(out.first(), Some(&(4560, 65)), "{out:?}");
        assert_eq!(out.len(), 1, "45/s is near the target at 65: {out:?}");
    }

    #[test]
    fn scheduled_limits_are_enforced() {
        let mut t = NativeTracker::default();
        assert_eq!(t.decide(1, 2, LIMITS), Some(5));
        assert_eq!(t.decide(1, 2000, LIMITS), Some(1000));
    }
}
