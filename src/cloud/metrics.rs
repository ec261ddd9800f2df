//! The types that cross the [`super::Metrics`] port: datums rapidscale
//! publishes and the `AWS/DynamoDB` metrics it reads back.

use serde::Serialize;

/// The most datums one PutMetricData call takes.
pub const MAX_PER_CALL: usize = 1000;

/// One value of one second, published as a high-resolution metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datum {
    pub name: String,
    pub dimensions: Vec<(String, String)>,
    /// Unix second the value belongs to.
    pub second: i64,
    pub value: f64,
    pub unit: MetricUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetricUnit {
    CountPerSecond,
    Count,
}

/// One `AWS/DynamoDB` metric of one table or index, read as 1-minute sums.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DynamoMetric {
    /// e.g. `ConsumedReadCapacityUnits`, `ReadThrottleEvents`, `ThrottledRequests`.
    pub name: &'static str,
    pub table: String,
    pub index: Option<String>,
    /// The `Operation` dimension (`ThrottledRequests` only).
    pub operation: Option<&'static str>,
}
