//! A wrapper around any backend (AWS or the simulator) that counts every
//! call of the whole port by operation and outcome and records its latency,
//! for `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use std::collections::BTreeMap;

use super::{
    Capacity, CloudError, Coordination, Datum, DynamoMetric, GroupDescription, Heartbeat,
    InitReport, Lease, MemberCapacity, Metrics, ScalableTarget, TableDescription,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub operation: String,
    /// "ok", or the error kind (throttled, unavailable, ...).
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OperationLabels {
    pub operation: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~10 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// Shared call statistics (cheap to clone: the families share state).
#[derive(Debug, Clone)]
pub(crate) struct CallMetrics {
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
pub(crate) struct Metered<C> {
    pub inner: Arc<C>,
    pub metrics: CallMetrics,
}

impl<C> Metered<C> {
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

impl<C: Capacity> Capacity for Metered<C> {
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

    async fn dynamodb_scalable_targets(&self) -> Result<Vec<ScalableTarget>, CloudError> {
        self.timed(
            "DescribeScalableTargets",
            self.inner.dynamodb_scalable_targets(),
        )
        .await
    }

    async fn scaling_policies(&self, group: &str) -> Result<Vec<String>, CloudError> {
        self.timed("DescribePolicies", self.inner.scaling_policies(group))
            .await
    }

    async fn ecs_scalable_targets(&self) -> Result<Vec<ScalableTarget>, CloudError> {
        self.timed("DescribeScalableTargets", self.inner.ecs_scalable_targets())
            .await
    }

    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<GroupDescription, CloudError> {
        self.timed(
            "DescribeServices",
            self.inner.describe_service(cluster, service),
        )
        .await
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), CloudError> {
        self.timed(
            "UpdateService",
            self.inner.update_service(cluster, service, desired),
        )
        .await
    }

    async fn group_of_instance(&self, instance_id: &str) -> Result<Option<String>, CloudError> {
        self.timed(
            "DescribeAutoScalingInstances",
            self.inner.group_of_instance(instance_id),
        )
        .await
    }

    async fn update_table(
        &self,
        table: &str,
        members: &[MemberCapacity],
    ) -> Result<(), CloudError> {
        self.timed("UpdateTable", self.inner.update_table(table, members))
            .await
    }

    async fn update_warm_throughput(
        &self,
        table: &str,
        index: Option<&str>,
        warm: crate::cloud::WarmThroughput,
    ) -> Result<(), CloudError> {
        self.timed(
            "UpdateTable",
            self.inner.update_warm_throughput(table, index, warm),
        )
        .await
    }
}

impl<C: Metrics> Metrics for Metered<C> {
    async fn put_metric_data(&self, namespace: &str, datums: &[Datum]) -> Result<(), CloudError> {
        self.timed(
            "PutMetricData",
            self.inner.put_metric_data(namespace, datums),
        )
        .await
    }

    async fn dynamodb_minute_sums(
        &self,
        metrics: &[DynamoMetric],
        start: i64,
        end: i64,
    ) -> Result<Vec<BTreeMap<i64, f64>>, CloudError> {
        self.timed(
            "GetMetricData",
            self.inner.dynamodb_minute_sums(metrics, start, end),
        )
        .await
    }
}

impl<C: Coordination> Coordination for Metered<C> {
    async fn ensure_coordination_table(&self, table: &str) -> Result<InitReport, CloudError> {
        self.timed(
            "InitCoordinationTable",
            self.inner.ensure_coordination_table(table),
        )
        .await
    }

    async fn put_heartbeat(
        &self,
        table: &str,
        cluster: &str,
        heartbeat: &Heartbeat,
    ) -> Result<(), CloudError> {
        self.timed(
            "PutItem",
            self.inner.put_heartbeat(table, cluster, heartbeat),
        )
        .await
    }

    async fn query_heartbeats(
        &self,
        table: &str,
        cluster: &str,
    ) -> Result<Vec<Heartbeat>, CloudError> {
        self.timed("Query", self.inner.query_heartbeats(table, cluster))
            .await
    }

    async fn put_announcement(
        &self,
        table: &str,
        cluster: &str,
        item: &crate::cloud::AnnouncementItem,
    ) -> Result<(), CloudError> {
        self.timed("PutItem", self.inner.put_announcement(table, cluster, item))
            .await
    }

    async fn query_announcements(
        &self,
        table: &str,
        cluster: &str,
    ) -> Result<Vec<crate::cloud::AnnouncementItem>, CloudError> {
        self.timed("Query", self.inner.query_announcements(table, cluster))
            .await
    }

    async fn take_or_renew_lease(
        &self,
        table: &str,
        cluster: &str,
        me: &str,
        held: Option<Lease>,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Lease>, CloudError> {
        self.timed(
            "UpdateItem",
            self.inner
                .take_or_renew_lease(table, cluster, me, held, now_ms, lease_ms),
        )
        .await
    }

    async fn verify_lease(
        &self,
        table: &str,
        cluster: &str,
        me: &str,
        lease: Lease,
        must_outlive_ms: i64,
    ) -> Result<bool, CloudError> {
        self.timed(
            "UpdateItem",
            self.inner
                .verify_lease(table, cluster, me, lease, must_outlive_ms),
        )
        .await
    }
}

impl<C: crate::cloud::Notifications> crate::cloud::Notifications for Metered<C> {
    async fn publish_notification(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> Result<(), CloudError> {
        self.timed(
            "Publish",
            self.inner.publish_notification(topic_arn, subject, message),
        )
        .await
    }
}
