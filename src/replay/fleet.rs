//! The Auto Scaling group in a replay: the fleet's queue (what the
//! instances serving at a second can do with its requests), the per-second
//! record of each policy's group, its figures, and a model of EC2 Auto
//! Scaling's target tracking on the load balancer's request count per
//! target, the native policy the group is compared with. See
//! docs/replay.md ("The group") for the sources of each rule.

use serde::Serialize;

use crate::config::GroupLimits;

/// A request waiting longer than this fails (the load balancer's or the
/// client's timeout), unless the replay is told otherwise.
pub const DEFAULT_TIMEOUT_S: f64 = 2.0;

/// The fleet's queue: requests are served in arrival order by the
/// instances InService; what cannot be served waits, and what would wait
/// longer than `timeout_s` of the serving capacity fails. A spike one
/// second long that the next seconds can absorb is queued, not failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetQueue {
    pub timeout_s: f64,
    backlog: f64,
}

/// What one second did to the requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetSecond {
    pub served: f64,
    pub failed: f64,
    /// Requests still waiting at the end of the second: each waited one
    /// more second (request-seconds).
    pub queued: f64,
}

impl FleetQueue {
    pub fn new(timeout_s: f64) -> FleetQueue {
        FleetQueue {
            timeout_s: timeout_s.max(0.0),
            backlog: 0.0,
        }
    }

    /// One second: `arrivals` requests, `capacity` requests/s serving.
    pub fn serve(&mut self, arrivals: f64, capacity: f64) -> FleetSecond {
        let arrivals = if arrivals.is_finite() {
            arrivals.max(0.0)
        } else {
            0.0
        };
        let capacity = capacity.max(0.0);
        let waiting = self.backlog + arrivals;
        let served = waiting.min(capacity);
        let left = waiting - served;
        // Requests queued behind more than `timeout_s` of this capacity
        // would wait longer than the timeout.
        let room = self.timeout_s * capacity;
        let failed = (left - room).max(0.0);
        self.backlog = left - failed;
        FleetSecond {
            served,
            failed,
            queued: self.backlog,
        }
    }
}

/// One policy's group, second by second.
#[derive(Debug, Clone, Default)]
pub struct GroupSeries {
    /// Desired capacity at the end of the second.
    pub desired: Vec<u32>,
    /// Instances running (billed): Pending and InService.
    pub instances: Vec<u32>,
    /// Instances InService (serving).
    pub serving: Vec<u32>,
    pub failed: Vec<f64>,
    pub queued: Vec<f64>,
}

impl GroupSeries {
    pub fn with_capacity(n: usize) -> GroupSeries {
        GroupSeries {
            desired: Vec::with_capacity(n),
            instances: Vec::with_capacity(n),
            serving: Vec::with_capacity(n),
            failed: Vec::with_capacity(n),
            queued: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, desired: u32, instances: u32, serving: u32, s: FleetSecond) {
        self.desired.push(desired);
        self.instances.push(instances);
        self.serving.push(serving);
        self.failed.push(s.failed);
        self.queued.push(s.queued);
    }

    pub fn len(&self) -> usize {
        self.desired.len()
    }

    pub fn is_empty(&self) -> bool {
        self.desired.is_empty()
    }

    /// First second in `from..to` where desired rose above its value at `from`.
    pub fn first_launch(&self, from: usize, to: usize) -> Option<usize> {
        let base = *self.desired.get(from)?;
        (from..to.min(self.len())).find(|&s| self.desired[s] > base)
    }

    /// First second in `from..to` where more instances served than at `from`.
    pub fn first_served(&self, from: usize, to: usize) -> Option<usize> {
        let base = *self.serving.get(from)?;
        (from..to.min(self.len())).find(|&s| self.serving[s] > base)
    }

    /// Figures over `from..to`.
    pub fn figures(&self, from: usize, to: usize, instance_hour_usd: f64) -> GroupFigures {
        let to = to.min(self.len());
        let from = from.min(to);
        let failed: f64 = self.failed[from..to].iter().sum();
        let failed_seconds = self.failed[from..to].iter().filter(|f| **f > 0.5).count() as u64;
        let queued: f64 = self.queued[from..to].iter().sum();
        let instance_hours = self.instances[from..to]
            .iter()
            .map(|&n| n as f64)
            .sum::<f64>()
            / 3600.0;
        let scale_events = (from.max(1)..to)
            .filter(|&s| self.desired[s] != self.desired[s - 1])
            .count() as u64;
        GroupFigures {
            failed_requests: failed,
            failed_seconds,
            queued_request_seconds: queued,
            instance_hours,
            cost_usd: instance_hours * instance_hour_usd,
            scale_events,
            peak_instances: self.instances[from..to].iter().copied().max().unwrap_or(0),
        }
    }
}

/// Figures of one policy's group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GroupFigures {
    pub failed_requests: f64,
    /// Seconds in which at least one request failed.
    pub failed_seconds: u64,
    pub queued_request_seconds: f64,
    pub instance_hours: f64,
    pub cost_usd: f64,
    /// Changes of desired capacity.
    pub scale_events: u64,
    pub peak_instances: u32,
}

/// How the native model is set up (docs/replay.md, "EC2 target tracking").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrackingSettings {
    /// The metric's period: 60 (the load balancer's `RequestCountPerTarget`)
    /// or 10 (a high-resolution custom metric).
    pub period_s: i64,
    /// From a period's end to its datapoint being visible to the alarm.
    pub publish_delay_s: i64,
    /// Datapoints above the target before the high alarm acts.
    pub out_datapoints: usize,
    /// Datapoints below `in_ratio` x the target before the low alarm acts.
    pub in_datapoints: usize,
    pub in_ratio: f64,
    /// Instance warm-up: a launched instance counts towards capacity, and
    /// blocks scale-in, this long.
    pub warmup_s: i64,
}

impl TrackingSettings {
    /// One-minute `RequestCountPerTarget`, the alarms target tracking
    /// creates (3 datapoints out, 15 in at 90 % of the target), the
    /// console's default instance warm-up of 300 s.
    pub const AWS: TrackingSettings = TrackingSettings {
        period_s: 60,
        publish_delay_s: 60,
        out_datapoints: 3,
        in_datapoints: 15,
        in_ratio: 0.9,
        warmup_s: 300,
    };
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Datapoint {
    start: i64,
    /// Requests per target over the period.
    per_target: f64,
    /// Targets the requests were spread over (the period's mean, >= 1).
    targets: f64,
}

/// EC2 target tracking on the request count per target: the alarms watch
/// the per-period datapoints; the high alarm's action sets desired to
/// ceil(requests in the period / the target per period) when that is above
/// desired (instances warming count as capacity); the low alarm's, below,
/// unless an instance is warming. Actions repeat each period while the
/// alarm stays in ALARM.
#[derive(Debug, Clone)]
pub struct Ec2Tracking {
    pub settings: TrackingSettings,
    datapoints: Vec<Datapoint>,
    period: Option<i64>,
    requests: f64,
    serving_seconds: f64,
}

impl Ec2Tracking {
    pub fn new(settings: TrackingSettings) -> Ec2Tracking {
        Ec2Tracking {
            settings,
            datapoints: Vec::new(),
            period: None,
            requests: 0.0,
            serving_seconds: 0.0,
        }
    }

    /// Records one second: requests the load balancer received, and the
    /// targets it spread them over.
    pub fn observe(&mut self, second: i64, requests: f64, serving: u32) {
        let p = self.settings.period_s.max(1);
        let start = second.div_euclid(p) * p;
        if self.period != Some(start) {
            self.close();
            self.period = Some(start);
        }
        if requests.is_finite() {
            self.requests += requests.max(0.0);
        }
        self.serving_seconds += serving as f64;
    }

    fn close(&mut self) {
        if let Some(start) = self.period {
            let p = self.settings.period_s.max(1) as f64;
            let targets = (self.serving_seconds / p).max(1.0);
            self.datapoints.push(Datapoint {
                start,
                per_target: self.requests / targets,
                targets,
            });
            if self.datapoints.len() > 128 {
                self.datapoints.drain(..64);
            }
        }
        self.requests = 0.0;
        self.serving_seconds = 0.0;
    }

    /// Desired capacity target tracking asks for at `now` (once a second):
    /// `desired` now, `warming` instances launched less than the warm-up
    /// ago, the hour's limits (scheduled actions).
    pub fn decide(
        &mut self,
        now: i64,
        desired: u32,
        warming: u32,
        limits: &GroupLimits,
    ) -> Option<u32> {
        if desired < limits.min {
            return Some(limits.min);
        }
        if desired > limits.max {
            return Some(limits.max);
        }
        let p = self.settings.period_s.max(1);
        if now.rem_euclid(p) != 0 {
            return None;
        }
        if self.period.is_some_and(|start| now >= start + p) {
            self.close();
            self.period = None;
        }
        let delay = self.settings.publish_delay_s;
        let visible = self
            .datapoints
            .iter()
            .rposition(|d| d.start + p + delay <= now)
            .map_or(&[][..], |i| &self.datapoints[..=i]);
        let newest = |n: usize| (visible.len() >= n).then(|| &visible[visible.len() - n..]);
        let target = limits.target_rps_per_instance * p as f64;
        // The datapoint is per target: the fleet's requests are it times
        // the targets that served them; desired becomes what they need.
        let size = |d: &Datapoint| {
            let n = (d.per_target * d.targets / target).ceil();
            (n.min(u32::MAX as f64) as u32).clamp(limits.min, limits.max)
        };
        if let Some(w) = newest(self.settings.out_datapoints) {
            if w.iter().all(|d| d.per_target > target) {
                let to = size(&w[w.len() - 1]);
                if to > desired {
                    return Some(to);
                }
            }
        }
        if let Some(w) = newest(self.settings.in_datapoints) {
            if w.iter()
                .all(|d| d.per_target < self.settings.in_ratio * target)
                && warming == 0
            {
                let to = size(&w[w.len() - 1]);
                if to < desired {
                    return Some(to);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_the_queue_absorbs_is_queued_not_failed() {
        let mut q = FleetQueue::new(2.0);
        // 1,000 rps of capacity; one second of 2,500 arrivals.
        let a = q.serve(2500.0, 1000.0);
        assert_eq!((a.served, a.failed, a.queued), (1000.0, 0.0, 1500.0));
        let b = q.serve(500.0, 1000.0);
        assert_eq!((b.served, b.failed, b.queued), (1000.0, 0.0, 1000.0));
        let c = q.serve(0.0, 1000.0);
        assert_eq!((c.served, c.failed, c.queued), (1000.0, 0.0, 0.0));
    }

    #[test]
    fn what_would_wait_past_the_timeout_fails() {
        let mut q = FleetQueue::new(2.0);
        // 5,000 arrivals on 1,000 rps: 1,000 served, 2,000 can wait 2 s, 2,000 fail.
        let a = q.serve(5000.0, 1000.0);
        assert_eq!((a.served, a.failed, a.queued), (1000.0, 2000.0, 2000.0));
        // No instance serving: everything fails at once.
        let mut empty = FleetQueue::new(2.0);
        assert_eq!(empty.serve(10.0, 0.0).failed, 10.0);
        // A NaN second (the trace's gap) brings nothing.
        assert_eq!(empty.serve(f64::NAN, 100.0).served, 0.0);
    }

    const LIMITS: GroupLimits = GroupLimits {
        min: 2,
        max: 40,
        target_rps_per_instance: 100.0,
    };

    /// Feeds `rps` for `seconds` from `from` on `serving` instances that
    /// follow desired at once; returns (instant, desired) of each change.
    fn feed(
        t: &mut Ec2Tracking,
        from: i64,
        seconds: i64,
        rps: f64,
        desired: &mut u32,
    ) -> Vec<(i64, u32)> {
        let mut out = Vec::new();
        for s in from..from + seconds {
            t.observe(s, rps, *desired);
            if let Some(to) = t.decide(s + 1, *desired, 0, &LIMITS) {
                out.push((s + 1, to));
                *desired = to;
            }
        }
        out
    }

    #[test]
    fn scale_out_needs_three_datapoints_and_the_publishing_delay() {
        let mut t = Ec2Tracking::new(TrackingSettings::AWS);
        let mut desired = 10;
        assert!(feed(&mut t, 0, 600, 900.0, &mut desired).is_empty());
        // A step to 2,000 rps at 600: minutes 600, 660 and 720 above the
        // target; the third is visible at 720 + 60 + 60 = 840, and sizes
        // the group to 2,000 / 100 = 20.
        let out = feed(&mut t, 600, 600, 2000.0, &mut desired);
        assert_eq!(out, [(840, 20)], "{out:?}");
    }

    #[test]
    fn scale_in_needs_fifteen_datapoints_below_ninety_percent_and_no_warming() {
        let mut t = Ec2Tracking::new(TrackingSettings::AWS);
        let mut desired = 20;
        // 95 % of the target: never scaled in.
        assert!(feed(&mut t, 0, 3600, 1900.0, &mut desired).is_empty());
        // 50 %: minutes 3600..4440 are the first 15 below 90 %; the 15th
        // is visible at 4500 + 60.
        let out = feed(&mut t, 3600, 1200, 1000.0, &mut desired);
        assert_eq!(out, [(4560, 10)], "{out:?}");
        // An instance warming blocks it.
        let mut t = Ec2Tracking::new(TrackingSettings::AWS);
        for s in 0..1200 {
            t.observe(s, 1000.0, 20);
        }
        assert_eq!(t.decide(1200, 20, 1, &LIMITS), None);
        assert_eq!(t.decide(1260, 20, 0, &LIMITS), Some(10));
    }

    #[test]
    fn high_resolution_reacts_within_seconds_not_minutes() {
        let settings = TrackingSettings {
            period_s: 10,
            publish_delay_s: 10,
            ..TrackingSettings::AWS
        };
        let mut t = Ec2Tracking::new(settings);
        let mut desired = 10;
        assert!(feed(&mut t, 0, 600, 900.0, &mut desired).is_empty());
        let out = feed(&mut t, 600, 120, 2000.0, &mut desired);
        // Periods 600, 610, 620; the third visible at 620 + 10 + 10.
        assert_eq!(out, [(640, 20)], "{out:?}");
    }

    #[test]
    fn the_hours_limits_are_scheduled_actions() {
        let mut t = Ec2Tracking::new(TrackingSettings::AWS);
        assert_eq!(t.decide(1, 1, 0, &LIMITS), Some(2));
        assert_eq!(t.decide(1, 50, 0, &LIMITS), Some(40));
    }

    #[test]
    fn figures_count_failures_instance_hours_and_events() {
        let mut g = GroupSeries::default();
        let s = |failed: f64| FleetSecond {
            served: 0.0,
            failed,
            queued: 1.0,
        };
        for i in 0..3600 {
            let d = if i < 1800 { 2 } else { 4 };
            g.push(d, d, 2, s(if i == 10 { 5.0 } else { 0.0 }));
        }
        let f = g.figures(0, 3600, 0.5);
        assert_eq!(f.failed_requests, 5.0);
        assert_eq!(f.failed_seconds, 1);
        assert_eq!(f.queued_request_seconds, 3600.0);
        assert!((f.instance_hours - 3.0).abs() < 1e-9);
        assert!((f.cost_usd - 1.5).abs() < 1e-9);
        assert_eq!(f.scale_events, 1);
        assert_eq!(f.peak_instances, 4);
        assert_eq!(g.first_launch(0, 3600), Some(1800));
    }
}
