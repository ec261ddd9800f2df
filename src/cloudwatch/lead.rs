//! How far ahead of CloudWatch rapidscale acted, and whether throttling
//! that CloudWatch reports was foreseen. Pure: the watcher
//! (`cloudwatch::watch`) feeds it minute sums read from `AWS/DynamoDB`.
//!
//! A surge "shows" in CloudWatch at the first one-minute datapoint, from the
//! minute before the decision on, whose mean units/s (Sum / 60) reaches
//! half-way from the level before the surge to the demand rapidscale acted
//! on: the point where a threshold between the two levels, which is what a
//! CloudWatch alarm or AWS's own target tracking watches, would be crossed.
//! The level before is the mean of the datapoints two to five minutes
//! before the decision's minute.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::policy::dynamodb::Op;

/// An increase rapidscale decided, not yet seen in CloudWatch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingSurge {
    /// The audit record of the decision.
    pub record_id: String,
    pub resource: String,
    pub op: Op,
    /// Unix seconds of the decision.
    pub decided_at: f64,
    /// The demand (units/s) the decision acted on.
    pub demand: f64,
}

/// When CloudWatch showed a surge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    pub record_id: String,
    pub resource: String,
    pub op: Op,
    pub decided_at: f64,
    /// Start of the first datapoint that shows the rise.
    pub minute: i64,
    /// When rapidscale first read that datapoint.
    pub seen_at: f64,
    /// seen_at - decided_at: how much earlier rapidscale acted than anyone
    /// reading CloudWatch could (to within `lead_poll`).
    pub lead_s: f64,
    /// End of that datapoint's minute - decided_at: the lower bound no
    /// minute-level consumer can beat, whatever CloudWatch's delay.
    pub minute_lead_s: f64,
}

/// What reading one resource's minutes says about a pending surge.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Not in CloudWatch yet.
    NotYet,
    Shown(Lead),
    /// The demand acted on is not clearly above the level before: there is
    /// no rise to look for.
    NoRise {
        baseline: f64,
    },
}

/// Looks for the rise of `surge` in per-minute sums (start second -> units).
pub fn look_for(surge: &PendingSurge, consumed: &BTreeMap<i64, f64>, now: f64) -> Seen {
    let decided_minute = (surge.decided_at as i64).div_euclid(60) * 60;
    let before: Vec<f64> = consumed
        .range(decided_minute - 300..=decided_minute - 120)
        .map(|(_, sum)| sum / 60.0)
        .collect();
    let baseline = if before.is_empty() {
        0.0
    } else {
        before.iter().sum::<f64>() / before.len() as f64
    };
    if surge.demand <= baseline * 1.2 {
        return Seen::NoRise { baseline };
    }
    let threshold = baseline + 0.5 * (surge.demand - baseline);
    match consumed
        .range(decided_minute - 60..)
        .find(|(_, sum)| **sum / 60.0 >= threshold)
    {
        Some((&minute, _)) => Seen::Shown(Lead {
            record_id: surge.record_id.clone(),
            resource: surge.resource.clone(),
            op: surge.op,
            decided_at: surge.decided_at,
            minute,
            seen_at: now,
            lead_s: now - surge.decided_at,
            minute_lead_s: (minute + 60) as f64 - surge.decided_at,
        }),
        None => Seen::NotYet,
    }
}

/// An increase rapidscale decided or recommended (any outcome), kept to
/// tell whether later throttling was foreseen.
#[derive(Debug, Clone, PartialEq)]
pub struct Increase {
    pub resource: String,
    pub op: Op,
    pub at: f64,
}

/// Throttling in `minute` was foreseen when rapidscale had decided an
/// increase of that resource and operation in the two minutes before it or
/// during it (the call may have been refused, waiting or still in effect).
pub fn foreseen(increases: &[Increase], resource: &str, op: Op, minute: i64) -> bool {
    increases.iter().any(|i| {
        i.resource == resource
            && i.op == op
            && i.at >= (minute - 120) as f64
            && i.at < (minute + 60) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surge(decided_at: f64, demand: f64) -> PendingSurge {
        PendingSurge {
            record_id: "r1".into(),
            resource: "posts".into(),
            op: Op::Read,
            decided_at,
            demand,
        }
    }

    #[test]
    fn the_first_minute_half_way_to_the_surge_is_where_it_shows() {
        // 100 units/s before; rapidscale acted at 12:03:10 on 500 units/s.
        let t0 = 1_700_000_000 / 60 * 60; // a minute start
        let decided = (t0 + 180 + 10) as f64;
        let mut consumed: BTreeMap<i64, f64> =
            (0..3).map(|m| (t0 + m * 60, 100.0 * 60.0)).collect();
        assert_eq!(
            look_for(&surge(decided, 500.0), &consumed, decided + 30.0),
            Seen::NotYet
        );
        // Minute 12:03 holds 50 s of the surge: mean 433 >= 300.
        consumed.insert(t0 + 180, 100.0 * 10.0 + 500.0 * 50.0);
        let Seen::Shown(lead) = look_for(&surge(decided, 500.0), &consumed, decided + 150.0) else {
            panic!("not shown");
        };
        assert_eq!(lead.minute, t0 + 180);
        assert_eq!(lead.lead_s, 150.0);
        assert_eq!(lead.minute_lead_s, 50.0);
    }

    #[test]
    fn a_minute_only_partly_risen_is_not_yet_the_rise() {
        let t0 = 1_700_000_000 / 60 * 60;
        let decided = (t0 + 180 + 50) as f64;
        let mut consumed: BTreeMap<i64, f64> =
            (0..3).map(|m| (t0 + m * 60, 100.0 * 60.0)).collect();
        // 12:03 has 10 s of the surge: mean 166 < 300.
        consumed.insert(t0 + 180, 100.0 * 50.0 + 500.0 * 10.0);
        assert_eq!(
            look_for(&surge(decided, 500.0), &consumed, decided + 60.0),
            Seen::NotYet
        );
        consumed.insert(t0 + 240, 500.0 * 60.0);
        let Seen::Shown(lead) = look_for(&surge(decided, 500.0), &consumed, decided + 100.0) else {
            panic!("not shown");
        };
        assert_eq!((lead.minute, lead.minute_lead_s), (t0 + 240, 70.0));
    }

    #[test]
    fn no_rise_when_the_demand_acted_on_is_near_the_level_before() {
        let t0 = 1_700_000_000 / 60 * 60;
        let consumed: BTreeMap<i64, f64> = (0..3).map(|m| (t0 + m * 60, 100.0 * 60.0)).collect();
        assert_eq!(
            look_for(&surge((t0 + 190) as f64, 110.0), &consumed, 0.0),
            Seen::NoRise { baseline: 100.0 }
        );
    }

    #[test]
    fn throttling_is_foreseen_only_near_an_increase_of_the_same_operation() {
        let inc = [Increase {
            resource: "posts".into(),
            op: Op::Read,
            at: 1000.0,
        }];
        assert!(foreseen(&inc, "posts", Op::Read, 960));
        assert!(foreseen(&inc, "posts", Op::Read, 1080));
        assert!(!foreseen(&inc, "posts", Op::Read, 1200));
        assert!(!foreseen(&inc, "posts", Op::Write, 960));
        assert!(!foreseen(&inc, "posts/by_user", Op::Read, 960));
    }
}
