//! [`SimWorld`] behind the whole cloud port (capacity, CloudWatch,
//! coordination): the daemon's trackers, deciders, actuator, coordination
//! and CloudWatch tasks run unchanged against it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::SimWorld;
use crate::clock::SharedClock;
use std::collections::BTreeMap;

use crate::cloud::{
    Capacity, CloudError, Coordination, Datum, DynamoMetric, GroupDescription, Heartbeat,
    InitReport, Lease, MemberCapacity, Metrics, TableDescription,
};

/// A shared simulated account read through a clock.
#[derive(Clone)]
pub struct SimCloud {
    pub world: Arc<Mutex<SimWorld>>,
    pub clock: SharedClock,
    /// How long a call hangs before a simulated timeout fails it.
    pub timeout: Duration,
}

impl SimCloud {
    pub fn new(world: SimWorld, clock: SharedClock) -> Self {
        Self {
            world: Arc::new(Mutex::new(world)),
            clock,
            timeout: Duration::from_secs(3),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, SimWorld> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one call, waiting first when the call is to time out.
    async fn call<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut SimWorld, chrono::DateTime<chrono::Utc>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let hangs = self
            .world()
            .next_call_times_out(operation, self.clock.now());
        if hangs {
            tokio::time::sleep(self.timeout).await;
        }
        let now = self.clock.now();
        f(&mut self.world(), now)
    }
}

impl Capacity for SimCloud {
    async fn describe_table(&self, name: &str) -> Result<TableDescription, CloudError> {
        self.call("DescribeTable", |w, now| w.describe_table(name, now))
            .await
    }

    async fn describe_group(&self, name: &str) -> Result<GroupDescription, CloudError> {
        self.call("DescribeAutoScalingGroups", |w, now| {
            w.describe_group(name, now)
        })
        .await
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.call("SetDesiredCapacity", |w, now| {
            w.set_desired_capacity(group, desired, now)
        })
        .await
    }

    async fn dynamodb_scalable_targets(
        &self,
    ) -> Result<Vec<crate::cloud::ScalableTarget>, CloudError> {
        self.call("DescribeScalableTargets", |w, now| {
            w.dynamodb_scalable_targets(now)
        })
        .await
    }

    async fn scaling_policies(&self, _group: &str) -> Result<Vec<String>, CloudError> {
        Ok(Vec::new())
    }

    async fn ecs_scalable_targets(&self) -> Result<Vec<crate::cloud::ScalableTarget>, CloudError> {
        self.call("DescribeScalableTargets", |w, now| {
            w.ecs_scalable_targets(now)
        })
        .await
    }

    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<GroupDescription, CloudError> {
        self.call("DescribeServices", |w, now| {
            w.describe_service(cluster, service, now)
        })
        .await
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), CloudError> {
        self.call("UpdateService", |w, now| {
            w.update_service(cluster, service, desired, now)
        })
        .await
    }

    async fn group_of_instance(&self, instance_id: &str) -> Result<Option<String>, CloudError> {
        self.call("DescribeAutoScalingInstances", |w, now| {
            w.group_of_instance(instance_id, now)
        })
        .await
    }

    async fn update_table(
        &self,
        table: &str,
        members: &[MemberCapacity],
    ) -> Result<(), CloudError> {
        self.call("UpdateTable", |w, now| w.update_table(table, members, now))
            .await
    }

    /// The simulator's tables are provisioned: refused as AWS refuses a
    /// warm throughput below what a table has.
    async fn update_warm_throughput(
        &self,
        table: &str,
        index: Option<&str>,
        _warm: crate::cloud::WarmThroughput,
    ) -> Result<(), CloudError> {
        let resource = crate::actuator::resource_key(table, index);
        self.call("UpdateTable", move |_w, _now| {
            Err(CloudError {
                operation: "UpdateTable",
                resource,
                kind: crate::cloud::CloudErrorKind::Other,
                message: "ValidationException: the simulator's tables are provisioned (simulated)"
                    .into(),
            })
        })
        .await
    }
}

impl Metrics for SimCloud {
    async fn put_metric_data(&self, namespace: &str, datums: &[Datum]) -> Result<(), CloudError> {
        self.call("PutMetricData", |w, now| {
            w.put_metric_data(namespace, datums, now)
        })
        .await
    }

    async fn dynamodb_minute_sums(
        &self,
        metrics: &[DynamoMetric],
        start: i64,
        end: i64,
    ) -> Result<Vec<BTreeMap<i64, f64>>, CloudError> {
        self.call("GetMetricData", |w, now| {
            w.dynamodb_minute_sums(metrics, start, end, now)
        })
        .await
    }
}

impl Coordination for SimCloud {
    async fn ensure_coordination_table(&self, table: &str) -> Result<InitReport, CloudError> {
        self.call("CreateTable", |w, now| {
            w.ensure_coordination_table(table, now)
        })
        .await
    }

    async fn put_heartbeat(
        &self,
        table: &str,
        cluster: &str,
        heartbeat: &Heartbeat,
    ) -> Result<(), CloudError> {
        self.call("PutItem", |w, now| {
            w.put_heartbeat(table, cluster, heartbeat, now)
        })
        .await
    }

    async fn query_heartbeats(
        &self,
        table: &str,
        cluster: &str,
    ) -> Result<Vec<Heartbeat>, CloudError> {
        self.call("Query", |w, now| w.query_heartbeats(table, cluster, now))
            .await
    }

    async fn put_announcement(
        &self,
        table: &str,
        cluster: &str,
        item: &crate::cloud::AnnouncementItem,
    ) -> Result<(), CloudError> {
        self.call("PutItem", |w, now| {
            w.coordination_table("PutItem", table, now)?
                .announcements
                .insert((cluster.to_string(), item.id.clone()), item.clone());
            Ok(())
        })
        .await
    }

    async fn query_announcements(
        &self,
        table: &str,
        cluster: &str,
    ) -> Result<Vec<crate::cloud::AnnouncementItem>, CloudError> {
        self.call("Query", |w, now| {
            let t = w.coordination_table("Query", table, now)?;
            t.announcements
                .retain(|_, a| a.expires_at_s > now.timestamp());
            Ok(t.announcements
                .iter()
                .filter(|((c, _), _)| c == cluster)
                .map(|(_, a)| a.clone())
                .collect())
        })
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
        self.call("UpdateItem", |w, now| {
            w.take_or_renew_lease(table, cluster, me, held, now_ms, lease_ms, now)
        })
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
        self.call("UpdateItem", |w, now| {
            w.verify_lease(table, cluster, me, lease, must_outlive_ms, now)
        })
        .await
    }
}

/// The simulator keeps what was published (`SimWorld::published`).
impl crate::cloud::Notifications for SimCloud {
    async fn publish_notification(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> Result<(), CloudError> {
        self.call("Publish", |w, _now| {
            w.published.push((
                topic_arn.to_string(),
                subject.to_string(),
                message.to_string(),
            ));
            Ok(())
        })
        .await
    }
}
