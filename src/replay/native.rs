//! A model of DynamoDB's own auto scaling (Application Auto Scaling target
//! tracking on `DynamoDBReadCapacityUtilization` / `...WriteCapacityUtilization`),
//! for one capacity (read or write of a table or index). See docs/replay.md
//! for the sources of each rule.
//!
//! - CloudWatch sees *consumed* capacity (throttled requests are not
//!   consumed) as one-minute datapoints; each datapoint becomes visible
//!   `PUBLISH_DELAY_S` after its minute ends;
//! - utilization = consumed / provisioned of that minute;
//! - scale out when the newest 2 visible datapoints are above the target:
//!   to consumed / target;
//! - scale in when the newest 15 visible datapoints are more than 20 %
//!   below the target: to consumed / target;
//! - only datapoints of minutes that started after the last change count
//!   (the alarms re-evaluate on new data); the scheduled min/max of the
//!   hour are enforced as scheduled actions would; the decrease rule and
//!   the update delay are the simulator's, as for rapidscale.

use chrono::{DateTime, TimeDelta, Utc};

use super::{OpSeries, ResourceFigures, Target};
use crate::actuator::TableUpdate;
use crate::cloud::{CloudErrorKind, Throughput};
use crate::config::{CapacityLimits, Config, Mode};
use crate::policy::budget::DecreaseLedger;
use crate::policy::dynamodb::{Change, Evidence, Op, Rule};
use crate::sim::{SimSettings, SimWorld};

pub const PUBLISH_DELAY_S: i64 = 60;
pub const OUT_DATAPOINTS: usize = 2;
pub const IN_DATAPOINTS: usize = 15;
/// Scale-in alarm threshold, relative to the target.
pub const IN_BELOW: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Datapoint {
    /// Unix second the minute starts.
    start: i64,
    /// Mean consumed units/s over the minute.
    consumed: f64,
    utilization: f64,
}

#[derive(Debug, Clone, Default)]
pub struct NativeTracker {
    datapoints: Vec<Datapoint>,
    minute: Option<i64>,
    consumed_sum: f64,
    provisioned_sum: f64,
    seconds: u32,
    last_change: i64,
}

impl NativeTracker {
    /// Records one second: what was consumed against what was provisioned.
    pub fn observe(&mut self, second: i64, consumed: f64, provisioned: u64) {
        let minute = second.div_euclid(60) * 60;
        if self.minute != Some(minute) {
            self.close();
            self.minute = Some(minute);
        }
        self.consumed_sum += consumed;
        self.provisioned_sum += provisioned as f64;
        self.seconds += 1;
    }

    fn close(&mut self) {
        if let (Some(start), true) = (self.minute, self.seconds > 0) {
            let consumed = self.consumed_sum / 60.0;
            let provisioned = self.provisioned_sum / self.seconds as f64;
            self.datapoints.push(Datapoint {
                start,
                consumed,
                utilization: if provisioned > 0.0 {
                    consumed / provisioned
                } else {
                    0.0
                },
            });
            // The alarms never look further back than this.
            if self.datapoints.len() > 64 {
                self.datapoints.drain(..32);
            }
        }
        self.consumed_sum = 0.0;
        self.provisioned_sum = 0.0;
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
        let visible: Vec<&Datapoint> = self
            .datapoints
            .iter()
            .filter(|d| d.start + 60 + PUBLISH_DELAY_S <= now && d.start >= self.last_change)
            .collect();
        let newest = |n: usize| (visible.len() >= n).then(|| &visible[visible.len() - n..]);
        let size = |consumed: f64| {
            ((consumed / limits.target).ceil() as u64).clamp(limits.min.max(1), limits.max)
        };
        if let Some(w) = newest(OUT_DATAPOINTS) {
            if w.iter().all(|d| d.utilization > limits.target) {
                let to = size(w[w.len() - 1].consumed);
                if to > current {
                    return Some(to);
                }
            }
        }
        if let Some(w) = newest(IN_DATAPOINTS) {
            if w.iter().all(|d| d.utilization < IN_BELOW * limits.target) {
                let to = size(w[w.len() - 1].consumed);
                if to < current {
                    return Some(to);
                }
            }
        }
        None
    }

    /// A change was accepted at `now`: the alarms start over on new data.
    pub fn changed(&mut self, now: i64) {
        self.last_change = now;
    }
}

/// AWS's native scaling over the trace: one simulated table per target
/// (an index's update does not hold its table), one tracker per operation,
/// one second at a time. Calls decided at the end of a second reach the
/// simulator at the start of the next, as alarm actions do.
pub struct NativeSide {
    world: SimWorld,
    ledgers: Vec<DecreaseLedger>,
    /// [target][op]
    trackers: Vec<Vec<NativeTracker>>,
    pub series: Vec<Vec<OpSeries>>,
    pub figures: Vec<ResourceFigures>,
    queued: Vec<(usize, TableUpdate)>,
}

fn table_name(i: usize) -> String {
    format!("t{i}")
}

impl NativeSide {
    pub fn new(targets: &[Target], settings: &SimSettings, seconds: usize) -> NativeSide {
        let mut world = SimWorld::new(settings.clone());
        for (i, t) in targets.iter().enumerate() {
            world.add_table(&table_name(i), t.initial(), &[]);
        }
        NativeSide {
            world,
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
        self.serve(targets, s, now);
        self.decide(config, targets, now + TimeDelta::seconds(1));
    }

    fn call(&mut self, now: DateTime<Utc>) {
        for (i, u) in std::mem::take(&mut self.queued) {
            match self
                .world
                .update_capacity(&table_name(i), None, u.target(), now)
            {
                Ok(()) => {
                    self.figures[i].actions += 1;
                    if u.decrease {
                        self.ledgers[i].record(now);
                        *self.figures[i]
                            .decreases_used
                            .entry(now.date_naive())
                            .or_default() += 1;
                    }
                    for n in &mut self.trackers[i] {
                        n.changed(now.timestamp());
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

    fn serve(&mut self, targets: &[Target], s: usize, now: DateTime<Utc>) {
        for (i, t) in targets.iter().enumerate() {
            let (r, w) = self.world.serve(
                &table_name(i),
                None,
                t.demand(Op::Read, s),
                t.demand(Op::Write, s),
                now,
            );
            let prov = self
                .world
                .table(&table_name(i))
                .map(|t| t.base.provisioned())
                .unwrap_or(Throughput { read: 0, write: 0 });
            for (k, o) in t.ops.iter().enumerate() {
                let (served, p) = match o.op {
                    Op::Read => (r, prov.read),
                    Op::Write => (w, prov.write),
                };
                self.series[i][k].push(p, served.throttled);
                self.trackers[i][k].observe(now.timestamp(), served.consumed, p);
            }
        }
    }

    fn decide(&mut self, config: &Config, targets: &[Target], now: DateTime<Utc>) {
        for (i, t) in targets.iter().enumerate() {
            let Some(table) = self.world.table(&table_name(i)) else {
                continue;
            };
            // AWS does not act while the table is UPDATING either.
            if table.base.pending.is_some() {
                continue;
            }
            let current = table.base.provisioned();
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
                if to < cur(o.op)
                    && !self.ledgers[i].allowed_at(now, self.world.settings.decrease_rule)
                {
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
                TableUpdate {
                    table: table_name(i),
                    index: None,
                    current,
                    changes,
                    decrease,
                    mode: Mode::Apply,
                },
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

    fn feed(
        t: &mut NativeTracker,
        from: i64,
        seconds: i64,
        consumed: f64,
        prov: u64,
    ) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        for s in from..from + seconds {
            t.observe(s, consumed, prov);
            if let Some(to) = t.decide(s + 1, prov, LIMITS) {
                out.push((s + 1, to));
            }
        }
        out
    }

    #[test]
    fn scale_out_needs_two_datapoints_and_the_publishing_delay() {
        let mut t = NativeTracker::default();
        // Quiet at 50 % of 100.
        assert!(feed(&mut t, 0, 600, 50.0, 100).is_empty());
        // A step to 90/s at second 600: minutes 600 and 660 are above 70 %;
        // the second one is visible at 660 + 60 + 60 = 780.
        let out = feed(&mut t, 600, 300, 90.0, 100);
        assert_eq!(out.first(), Some(&(780, 129)));
    }

    #[test]
    fn scale_in_needs_fifteen_low_datapoints() {
        let mut t = NativeTracker::default();
        t.changed(0);
        let out = feed(&mut t, 0, 3600, 20.0, 100);
        // Minutes 0..840 are the first 15; the 15th is visible at 900 + 60.
        assert_eq!(out.first(), Some(&(960, 29)));
    }

    #[test]
    fn scheduled_limits_are_enforced() {
        let mut t = NativeTracker::default();
        assert_eq!(t.decide(1, 2, LIMITS), Some(5));
        assert_eq!(t.decide(1, 2000, LIMITS), Some(1000));
    }

    #[test]
    fn only_data_after_a_change_counts() {
        let mut t = NativeTracker::default();
        feed(&mut t, 0, 600, 90.0, 100);
        t.changed(600);
        // Two new minutes above target are needed again.
        let out = feed(&mut t, 600, 120, 90.0, 100);
        assert!(out.is_empty(), "{out:?}");
        let out = feed(&mut t, 720, 60, 90.0, 100);
        assert_eq!(out.first().map(|o| o.0), Some(780));
    }
}
