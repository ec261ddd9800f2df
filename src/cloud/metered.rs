//! A [`CloudBackend`] wrapper that counts every call by operation and
//! outcome and records its latency, for `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use super::{CloudBackend, CloudError, GroupDescription, TableDescription, Throughput};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub operation: String,
    /// "ok", or the error kind (throttled, unavailable, ...).
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~10 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// Shared call statistics (cheap to clone: the families share state).
#[derive(Debug, Clone)]
pub struct CallMetrics {
    pub calls: Family<CallLabels, Counter>,
    pub latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl CallMetrics {
    fn record<T>(&self, operation: &str, started: tokio::time::Instant, r: &Result<T, CloudError>) {
        let outcome = match r {
            Ok(_) => "ok".to_string(),
            Err(e) => serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "other".to_string()),
        };
        self.calls
            .get_or_create(&CallLabels {
                operation: operation.to_string(),
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Any backend, metered.
pub struct Metered<C> {
    pub inner: Arc<C>,
    pub metrics: CallMetrics,
}

impl<C: CloudBackend> Metered<C> {
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        let started = tokio::time::Instant::now();
        let r = call.await;
        self.metrics.record(operation, started, &r);
        r
    }
}

impl<C: CloudBackend> CloudBackend for Metered<C> {
    async fn describe_table(&self, name: &str) -> Result<TableDescription, CloudError> {
        self.timed("DescribeTable", self.inner.describe_table(name))
            .await
    }

    async fn describe_group(&self, name: &str) -> Result<GroupDescription, CloudError> {
        self.timed("DescribeAutoScalingGroups", self.inner.describe_group(name))
            .await
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.timed(
            "SetDesiredCapacity",
            self.inner.set_desired_capacity(group, desired),
        )
        .await
    }

    async fn scaling_policies(&self, group: &str) -> Result<Vec<String>, CloudError> {
        self.timed("DescribePolicies", self.inner.scaling_policies(group))
            .await
    }

    async fn group_of_instance(&self, instance_id: &str) -> Result<Option<String>, CloudError> {
        self.timed(
            "DescribeAutoScalingInstances",
            self.inner.group_of_instance(instance_id),
        )
        .await
    }

    async fn update_capacity(
        &self,
        table: &str,
        index: Option<&str>,
        capacity: Throughput,
    ) -> Result<(), CloudError> {
        self.timed(
            "UpdateTable",
            self.inner.update_capacity(table, index, capacity),
        )
        .await
    }
}
