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

use crate::config::CapacityLimits;

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
