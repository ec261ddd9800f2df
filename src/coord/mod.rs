//! Fleet coordination (docs/coordination.md), the pure part: heartbeats in,
//! the fleet's per-second demand out, with silent instances made visible;
//! and the leader lease's timing rules. The table is reached through the
//! `cloud::Coordination` port.

pub(crate) mod task;

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::cloud::{Heartbeat, Lease};

/// How many seconds of counts a heartbeat carries.
pub const HEARTBEAT_SECONDS: usize = 5;
/// A leader stops acting this long before its lease ends by its own clock.
pub const SKEW_MARGIN_MS: i64 = 2_000;

/// The fleet as the leader sees it at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetView {
    /// Instances whose heartbeat is fresh.
    pub responsive: Vec<String>,
    /// Instances whose newest heartbeat is older than `stale_after`.
    pub silent: Vec<String>,
    /// Per stream: fleet requests/s of `second`.
    pub totals: BTreeMap<String, f64>,
    pub second: i64,
    /// Some instance's count of `second` is missing: totals were scaled
    /// up from the instances that reported (scale-in must hold).
    pub estimated: bool,
    /// Each sidecar: its lifecycle state, whether it is silent, and its
    /// counts of `second` (None: not in its heartbeat).
    pub instances: Vec<InstanceLoad>,
}

/// One sidecar as the fleet view saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceLoad {
    pub instance_id: String,
    pub lifecycle: String,
    pub silent: bool,
    /// How old its newest heartbeat is.
    pub age_ms: i64,
    pub counts: BTreeMap<String, Option<f64>>,
}

/// Sums the fleet's requests of `second` (a whole second at least one grace
/// window old) from the heartbeats, judged fresh at `now_ms`.
///
/// A silent instance, or a fresh one without a count for that second, is not
/// read as zero: the total is the reporting instances' sum scaled by
/// (all instances / reporting instances), and flagged as estimated.
pub fn fleet_view(beats: &[Heartbeat], now_ms: i64, stale_after_ms: i64, second: i64) -> FleetView {
    let (fresh, stale): (Vec<&Heartbeat>, Vec<&Heartbeat>) = beats
        .iter()
        .partition(|b| now_ms - b.sent_ms <= stale_after_ms);
    let streams: std::collections::BTreeSet<&String> =
        beats.iter().flat_map(|b| b.counts.keys()).collect();
    let mut totals = BTreeMap::new();
    let mut estimated = !stale.is_empty();
    let all = beats.len();
    for stream in streams {
        let known: Vec<f64> = fresh
            .iter()
            .filter_map(|b| b.value(stream, second))
            .collect();
        if known.len() < all {
            estimated = true;
        }
        if !known.is_empty() {
            let sum: f64 = known.iter().sum();
            totals.insert(stream.clone(), sum * all as f64 / known.len() as f64);
        }
    }
    let instances = beats
        .iter()
        .map(|b| InstanceLoad {
            instance_id: b.instance_id.clone(),
            lifecycle: b.lifecycle.clone(),
            silent: now_ms - b.sent_ms > stale_after_ms,
            age_ms: now_ms - b.sent_ms,
            counts: b
                .counts
                .keys()
                .map(|s| (s.clone(), b.value(s, second)))
                .collect(),
        })
        .collect();
    FleetView {
        instances,
        responsive: fresh.iter().map(|b| b.instance_id.clone()).collect(),
        silent: stale.iter().map(|b| b.instance_id.clone()).collect(),
        totals,
        second,
        estimated,
    }
}

impl Lease {
    /// Whether the holder may still act at `now_ms`: not within the skew
    /// margin of the end.
    pub fn may_act(&self, now_ms: i64) -> bool {
        now_ms < self.until_ms - SKEW_MARGIN_MS
    }
}

/// Instances in service without a fresh heartbeat, and heartbeats from
/// instances that are not in the group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reconciliation {
    pub in_service_without_sidecar: Vec<String>,
    pub sidecars_outside_the_group: Vec<String>,
}

pub fn reconcile(in_service: &[String], view: &FleetView) -> Reconciliation {
    Reconciliation {
        in_service_without_sidecar: in_service
            .iter()
            .filter(|i| !view.responsive.contains(i))
            .cloned()
            .collect(),
        sidecars_outside_the_group: view
            .responsive
            .iter()
            .chain(&view.silent)
            .filter(|i| !in_service.contains(i))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, sent_ms: i64, first: i64, values: &[Option<f64>]) -> Heartbeat {
        Heartbeat {
            instance_id: id.into(),
            lifecycle: "InService".into(),
            seq: 1,
            sent_ms,
            first_second: first,
            counts: [("statsd".to_string(), values.to_vec())].into(),
        }
    }

    #[test]
    fn the_fleet_total_is_the_exact_sum_when_everyone_reports() {
        let beats = [
            beat("i-a", 10_000, 5, &[Some(10.0), Some(11.0), Some(12.0)]),
            beat("i-b", 10_200, 5, &[Some(20.0), Some(21.0), Some(22.0)]),
            beat("i-c", 9_900, 6, &[Some(31.0), Some(32.0)]),
        ];
        let v = fleet_view(&beats, 10_500, 3_000, 6);
        assert_eq!(v.totals["statsd"], 11.0 + 21.0 + 31.0);
        assert!(!v.estimated);
        assert_eq!(v.responsive, ["i-a", "i-b", "i-c"]);
        assert!(v.silent.is_empty());
    }

    #[test]
    fn a_silent_instance_is_not_zero_traffic() {
        let beats = [
            beat("i-a", 10_000, 5, &[Some(10.0), Some(10.0)]),
            beat("i-b", 10_000, 5, &[Some(30.0), Some(30.0)]),
            // Last heard 4 s ago: silent.
            beat("i-c", 6_000, 1, &[Some(50.0), Some(50.0)]),
        ];
        let v = fleet_view(&beats, 10_000, 3_000, 6);
        assert_eq!(v.silent, ["i-c"]);
        // 40 from two of three instances: estimated at 60, flagged.
        assert_eq!(v.totals["statsd"], 60.0);
        assert!(v.estimated);
        // A fresh instance with an unknown second is estimated the same way.
        let beats = [
            beat("i-a", 10_000, 5, &[Some(10.0), None]),
            beat("i-b", 10_000, 5, &[Some(30.0), Some(30.0)]),
        ];
        let v = fleet_view(&beats, 10_000, 3_000, 6);
        assert_eq!((v.totals["statsd"], v.estimated), (60.0, true));
    }

    #[test]
    fn a_lease_stops_acting_before_it_ends() {
        let l = Lease {
            fencing: 3,
            until_ms: 10_000,
        };
        assert!(l.may_act(7_999));
        assert!(!l.may_act(8_000), "within the skew margin");
        assert!(!l.may_act(10_001));
    }

    #[test]
    fn reconciliation_names_both_sides() {
        let v = fleet_view(
            &[
                beat("i-a", 10_000, 5, &[Some(1.0)]),
                beat("i-x", 10_000, 5, &[Some(1.0)]),
            ],
            10_000,
            3_000,
            5,
        );
        let r = reconcile(&["i-a".into(), "i-b".into()], &v);
        assert_eq!(r.in_service_without_sidecar, ["i-b"]);
        assert_eq!(r.sidecars_outside_the_group, ["i-x"]);
    }
}
