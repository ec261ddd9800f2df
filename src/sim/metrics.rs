//! The simulator's CloudWatch: it keeps what is put (bounded per metric),
//! and serves `AWS/DynamoDB` minute metrics computed from the simulated
//! tables' own consumption and throttling.
//!
//! A minute's sums are served [`PUBLISH_DELAY_S`] after the minute ends,
//! as CloudWatch publishes DynamoDB's metrics about a minute late.
//! Simplifications, stated: throttle events are counted in units refused
//! (the simulator sees units, not requests); and `ThrottledRequests`
//! reports every throttled read under `GetItem` and every throttled write
//! under `PutItem`.

use std::collections::{BTreeMap, VecDeque};

use crate::cloud::{Datum, DynamoMetric};

/// Seconds after its minute ends before a minute's datapoint is served.
pub(crate) const PUBLISH_DELAY_S: i64 = 60;

/// Seconds of datums kept per metric (two days of high-resolution data).
pub(crate) const KEPT_PER_METRIC: usize = 2 * 86_400;

/// A metric's identity: namespace, name and sorted dimensions.
pub(crate) type MetricKey = (String, String, Vec<(String, String)>);

/// One minute of one table's or index's use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinuteUse {
    pub consumed_read: f64,
    pub consumed_write: f64,
    pub throttled_read: f64,
    pub throttled_write: f64,
}

#[derive(Debug, Clone, Default)]
pub struct SimMetrics {
    /// What PutMetricData received: (second, value), oldest first.
    put: BTreeMap<MetricKey, VecDeque<(i64, f64)>>,
    /// Per table and index, per minute start: what the tables served.
    dynamodb: BTreeMap<(String, Option<String>), BTreeMap<i64, MinuteUse>>,
}

fn key(namespace: &str, d: &Datum) -> MetricKey {
    let mut dims = d.dimensions.clone();
    dims.sort();
    (namespace.to_string(), d.name.clone(), dims)
}

impl SimMetrics {
    pub fn put(&mut self, namespace: &str, datums: &[Datum]) {
        for d in datums {
            let series = self.put.entry(key(namespace, d)).or_default();
            series.push_back((d.second, d.value));
            while series.len() > KEPT_PER_METRIC {
                series.pop_front();
            }
        }
    }

    /// The values put for one metric, oldest first.
    pub fn values(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
    ) -> Vec<(i64, f64)> {
        let mut dims: Vec<(String, String)> = dimensions
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        dims.sort();
        self.put
            .get(&(namespace.to_string(), name.to_string(), dims))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Records one second of a table's or index's use.
    pub fn record_use(&mut self, table: &str, index: Option<&str>, second: i64, used: MinuteUse) {
        let minute = second.div_euclid(60) * 60;
        let m = self
            .dynamodb
            .entry((table.to_string(), index.map(str::to_string)))
            .or_default()
            .entry(minute)
            .or_default();
        m.consumed_read += used.consumed_read;
        m.consumed_write += used.consumed_write;
        m.throttled_read += used.throttled_read;
        m.throttled_write += used.throttled_write;
        // Two days of minutes per resource are plenty for calibration.
        let minutes = self
            .dynamodb
            .get_mut(&(table.to_string(), index.map(str::to_string)))
            .expect("inserted above");
        while minutes.len() > KEPT_PER_METRIC / 60 {
            minutes.pop_first();
        }
    }

    /// 1-minute sums of `AWS/DynamoDB` metrics over [start, end), as they
    /// are published by `now` (unix seconds).
    pub fn dynamodb_minute_sums(
        &self,
        metrics: &[DynamoMetric],
        start: i64,
        end: i64,
        now: i64,
    ) -> Vec<BTreeMap<i64, f64>> {
        let end = end.min(now - PUBLISH_DELAY_S - 60 + 1);
        metrics
            .iter()
            .map(|m| {
                let Some(minutes) = self.dynamodb.get(&(m.table.clone(), m.index.clone())) else {
                    return BTreeMap::new();
                };
                let pick = |u: &MinuteUse| -> Option<f64> {
                    match (m.name, m.operation) {
                        ("ConsumedReadCapacityUnits", _) => Some(u.consumed_read),
                        ("ConsumedWriteCapacityUnits", _) => Some(u.consumed_write),
                        ("ReadThrottleEvents", _) => Some(u.throttled_read),
                        ("WriteThrottleEvents", _) => Some(u.throttled_write),
                        ("ThrottledRequests", Some("GetItem")) if m.index.is_none() => {
                            Some(u.throttled_read)
                        }
                        ("ThrottledRequests", Some("PutItem")) if m.index.is_none() => {
                            Some(u.throttled_write)
                        }
                        ("ThrottledRequests", _) => Some(0.0),
                        _ => None,
                    }
                };
                minutes
                    .range(start..end)
                    .filter_map(|(minute, u)| pick(u).map(|v| (*minute, v)))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::MetricUnit;

    fn metric(name: &'static str, index: Option<&str>, op: Option<&'static str>) -> DynamoMetric {
        DynamoMetric {
            name,
            table: "posts".into(),
            index: index.map(str::to_string),
            operation: op,
        }
    }

    #[test]
    fn minute_sums_come_from_what_the_tables_served() {
        let mut m = SimMetrics::default();
        for s in 60..180 {
            let used = MinuteUse {
                consumed_read: 2.0,
                consumed_write: 1.0,
                throttled_read: if s >= 120 { 0.5 } else { 0.0 },
                throttled_write: 0.0,
            };
            m.record_use("posts", None, s, used);
        }
        m.record_use(
            "posts",
            Some("by_user"),
            61,
            MinuteUse {
                consumed_read: 7.0,
                ..MinuteUse::default()
            },
        );
        let sums = m.dynamodb_minute_sums(
            &[
                metric("ConsumedReadCapacityUnits", None, None),
                metric("ReadThrottleEvents", None, None),
                metric("ThrottledRequests", None, Some("GetItem")),
                metric("ThrottledRequests", None, Some("Scan")),
                metric("ConsumedReadCapacityUnits", Some("by_user"), None),
            ],
            60,
            180,
            240,
        );
        assert_eq!(sums[0], BTreeMap::from([(60, 120.0), (120, 120.0)]));
        assert_eq!(sums[1], BTreeMap::from([(60, 0.0), (120, 30.0)]));
        assert_eq!(sums[2][&120], 30.0);
        assert_eq!(sums[3][&120], 0.0);
        assert_eq!(sums[4], BTreeMap::from([(60, 7.0)]));
        // [start, end) excludes the later minute.
        let write = [metric("ConsumedWriteCapacityUnits", None, None)];
        let sums = m.dynamodb_minute_sums(&write, 60, 120, 240);
        assert_eq!(sums[0], BTreeMap::from([(60, 60.0)]));
        // The minute of 120-180 is published at 240, not before.
        let read = [metric("ConsumedReadCapacityUnits", None, None)];
        let sums = m.dynamodb_minute_sums(&read, 60, 180, 239);
        assert_eq!(sums[0], BTreeMap::from([(60, 120.0)]));
    }

    #[test]
    fn put_datums_are_kept_per_metric_and_dimensions_in_any_order() {
        let mut m = SimMetrics::default();
        let datum = |second, dims: Vec<(&str, &str)>| Datum {
            name: "RequestsPerSecond".into(),
            dimensions: dims
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            second,
            value: second as f64,
            unit: MetricUnit::CountPerSecond,
        };
        m.put(
            "Rapidscale",
            &[
                datum(1, vec![("Stream", "web"), ("Env", "prod")]),
                datum(2, vec![("Env", "prod"), ("Stream", "web")]),
            ],
        );
        assert_eq!(
            m.values(
                "Rapidscale",
                "RequestsPerSecond",
                &[("Stream", "web"), ("Env", "prod")]
            ),
            [(1, 1.0), (2, 2.0)]
        );
        assert!(m.values("Other", "RequestsPerSecond", &[]).is_empty());
    }
}
