//! The cloud edge: the only module that names `aws_sdk_*` types.
//!
//! One port in three capabilities: [`Capacity`] (DynamoDB tables and Auto
//! Scaling groups), [`Metrics`] (CloudWatch) and [`Coordination`] (the
//! coordination table). The rest of rapidscale sees plain rapidscale types
//! in and out (they are defined here, so nothing under `cloud/` imports a
//! module that uses it), errors classified once in [`CloudError`].
//! [`aws::AwsCloud`] implements the port with the official SDK, whose
//! clients stay private to it; the tracker polls it and keeps the latest
//! view of each table and group.

pub mod aws;
pub mod coordination;
pub(crate) mod identity;
pub(crate) mod members;
pub(crate) mod metered;
pub mod metrics;
pub(crate) mod tracker;

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use coordination::{AnnouncementItem, Heartbeat, InitReport, Lease};
pub use metrics::{Datum, DynamoMetric, MetricUnit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingMode {
    Provisioned,
    PayPerRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Throughput {
    pub read: u64,
    pub write: u64,
}

/// Units per second an on-demand table or index serves at once
/// (`WarmThroughput`: raised ahead of a surge, never lowered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WarmThroughput {
    pub read: u64,
    pub write: u64,
}

/// An on-demand table's or index's request-unit ceilings
/// (`OnDemandThroughput`; None: no ceiling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OnDemandMax {
    pub read: Option<u64>,
    pub write: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexDescription {
    pub name: String,
    /// CREATING, UPDATING, DELETING or ACTIVE.
    pub status: String,
    /// None for on-demand tables.
    pub provisioned: Option<Throughput>,
    /// As reported by AWS; emulators may leave these out.
    pub decreases_today: Option<u64>,
    pub last_decrease: Option<DateTime<Utc>>,
    /// On-demand: what it serves at once, and its ceilings.
    pub warm: Option<WarmThroughput>,
    pub on_demand_max: Option<OnDemandMax>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDescription {
    pub name: String,
    /// CREATING, UPDATING, DELETING, ACTIVE, ...
    pub status: String,
    pub billing_mode: BillingMode,
    pub provisioned: Option<Throughput>,
    pub indexes: Vec<IndexDescription>,
    /// As reported by AWS; emulators may leave these out.
    pub decreases_today: Option<u64>,
    pub last_increase: Option<DateTime<Utc>>,
    pub last_decrease: Option<DateTime<Utc>>,
    /// On-demand: what it serves at once, and its ceilings.
    pub warm: Option<WarmThroughput>,
    pub on_demand_max: Option<OnDemandMax>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceDescription {
    pub id: String,
    /// Pending, Pending:Wait, InService, Terminating, Standby, Warmed:*, ...
    pub lifecycle_state: String,
    /// Healthy or Unhealthy.
    pub health: String,
    pub availability_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    pub name: String,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub instances: Vec<InstanceDescription>,
}

impl GroupDescription {
    /// Instances that take traffic: InService and Healthy.
    pub fn serving(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.lifecycle_state == "InService" && i.health == "Healthy")
            .count()
    }
}

/// A fleet of replicas rapidscale sizes from the fleet's requests/s: an
/// EC2 Auto Scaling group, or an ECS service (its tasks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetId {
    Group { name: String },
    Service { cluster: String, service: String },
}

impl FleetId {
    /// The audit log's and the API's name: the group's, or `cluster/service`.
    pub fn key(&self) -> String {
        match self {
            FleetId::Group { name } => name.clone(),
            FleetId::Service { cluster, service } => format!("{cluster}/{service}"),
        }
    }

    /// The audit log's `service`.
    pub fn aws_service(&self) -> &'static str {
        match self {
            FleetId::Group { .. } => "asg",
            FleetId::Service { .. } => "ecs",
        }
    }

    /// Describes it: a group, or a service with its tasks as instances.
    pub async fn describe<C: Capacity>(&self, cloud: &C) -> Result<GroupDescription, CloudError> {
        match self {
            FleetId::Group { name } => cloud.describe_group(name).await,
            FleetId::Service { cluster, service } => cloud.describe_service(cluster, service).await,
        }
    }

    /// Sets its desired capacity (group) or desired count (service).
    pub async fn set_desired<C: Capacity>(
        &self,
        cloud: &C,
        desired: u32,
    ) -> Result<(), CloudError> {
        match self {
            FleetId::Group { name } => cloud.set_desired_capacity(name, desired).await,
            FleetId::Service { cluster, service } => {
                cloud.update_service(cluster, service, desired).await
            }
        }
    }
}

/// An ECS task's `lastStatus` as the lifecycle state of a group's
/// instance: PROVISIONING / PENDING / ACTIVATING are `Pending`, RUNNING is
/// `InService`, the rest `Terminating` (leaving).
pub fn task_lifecycle_state(last_status: &str) -> &'static str {
    match last_status {
        "PROVISIONING" | "PENDING" | "ACTIVATING" => "Pending",
        "RUNNING" => "InService",
        _ => "Terminating",
    }
}

/// How a cloud call failed, decided once for every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudErrorKind {
    /// The API throttled us: back off.
    Throttled,
    /// A service limit (for example DynamoDB's daily decreases).
    LimitExceeded,
    NotFound,
    /// The resource is busy (table UPDATING, scaling activity in progress).
    ResourceBusy,
    /// Network, timeout or 5xx: the service could not be reached.
    Unavailable,
    /// Credentials or permissions.
    AccessDenied,
    /// A conditional write's condition did not hold (coordination: the
    /// lease is someone else's).
    ConditionFailed,
    /// Anything else: a bad request, a bug.
    Other,
}

impl CloudErrorKind {
    /// The logs' (and the API's) word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudErrorKind::Throttled => "throttled",
            CloudErrorKind::LimitExceeded => "limit_exceeded",
            CloudErrorKind::NotFound => "not_found",
            CloudErrorKind::ResourceBusy => "resource_busy",
            CloudErrorKind::Unavailable => "unavailable",
            CloudErrorKind::AccessDenied => "access_denied",
            CloudErrorKind::ConditionFailed => "condition_failed",
            CloudErrorKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, Serialize)]
#[error("{operation} {resource}: {message}")]
pub struct CloudError {
    pub operation: &'static str,
    pub resource: String,
    pub kind: CloudErrorKind,
    /// The AWS error code and message, or why no answer came, in one line
    /// (the full error chain is logged at debug).
    pub message: String,
}

impl CloudError {
    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            CloudErrorKind::Throttled
            | CloudErrorKind::ResourceBusy
            | CloudErrorKind::Unavailable => true,
            CloudErrorKind::LimitExceeded
            | CloudErrorKind::NotFound
            | CloudErrorKind::AccessDenied
            | CloudErrorKind::ConditionFailed
            | CloudErrorKind::Other => false,
        }
    }
}

/// DynamoDB tables and Auto Scaling groups: what rapidscale reads and
/// changes (the capacity half of the port).
pub trait Capacity: Send + Sync + 'static {
    fn describe_table(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<TableDescription, CloudError>> + Send;
    fn describe_group(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<GroupDescription, CloudError>> + Send;
    /// Sets the group's desired capacity (HonorCooldown false: rapidscale
    /// keeps its own timing).
    fn set_desired_capacity(
        &self,
        group: &str,
        desired: u32,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Names of the group's own scaling policies (they may fight rapidscale).
    fn scaling_policies(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
    /// The Auto Scaling group an instance belongs to, if any.
    fn group_of_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
    /// Sets the provisioned capacity of a table (`index` None) and/or of
    /// its global secondary indexes, in one UpdateTable call (DynamoDB
    /// takes the table's throughput and its indexes' together). Both values
    /// of each member are always sent.
    fn update_table(
        &self,
        table: &str,
        members: &[MemberCapacity],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Raises an on-demand table's (or one index's) warm throughput
    /// (UpdateTable with `WarmThroughput`; AWS never lowers it).
    fn update_warm_throughput(
        &self,
        table: &str,
        index: Option<&str>,
        warm: WarmThroughput,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Every DynamoDB capacity registered with Application Auto Scaling in
    /// the region (DescribeScalableTargets, all pages).
    fn dynamodb_scalable_targets(
        &self,
    ) -> impl Future<Output = Result<Vec<ScalableTarget>, CloudError>> + Send;
    /// Every ECS service's desired count registered with Application Auto
    /// Scaling (Service Auto Scaling) in the region.
    fn ecs_scalable_targets(
        &self,
    ) -> impl Future<Output = Result<Vec<ScalableTarget>, CloudError>> + Send;
    /// An ECS service as a group: desired count, and its tasks as instances
    /// (DescribeServices, ListTasks, DescribeTasks); min 0, max unbounded
    /// (a service has neither).
    fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<GroupDescription, CloudError>> + Send;
    /// Sets a service's desired count (UpdateService).
    fn update_service(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// A capacity of a table or index registered with Application Auto Scaling
/// (a scalable target): AWS's own target tracking scales it, and would
/// fight rapidscale and spend the same decrease budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalableTarget {
    /// `table/NAME` or `table/NAME/index/INDEX`.
    pub resource_id: String,
    /// `dynamodb:table:ReadCapacityUnits`, `dynamodb:index:WriteCapacityUnits`, ...
    pub dimension: String,
}

impl ScalableTarget {
    /// The resource id of an ECS service.
    pub fn service_resource_id(cluster: &str, service: &str) -> String {
        format!("service/{cluster}/{service}")
    }

    /// The resource id of a table (`index` None) or of one of its indexes.
    pub fn resource_id_of(table: &str, index: Option<&str>) -> String {
        match index {
            Some(i) => format!("table/{table}/index/{i}"),
            None => format!("table/{table}"),
        }
    }
}

/// The new capacity of one member (the table itself, or an index) in an
/// UpdateTable call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCapacity {
    pub index: Option<String>,
    pub capacity: Throughput,
}

/// CloudWatch: rapidscale's own high-resolution metrics out, DynamoDB's
/// minute metrics back in.
pub trait Metrics: Send + Sync + 'static {
    /// One PutMetricData call of at most [`metrics::MAX_PER_CALL`] datums.
    fn put_metric_data(
        &self,
        namespace: &str,
        datums: &[Datum],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// 1-minute `Sum`s of `AWS/DynamoDB` metrics over [start, end) (unix
    /// seconds): one map (minute start second -> sum) per metric, in order.
    fn dynamodb_minute_sums(
        &self,
        metrics: &[DynamoMetric],
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<Vec<BTreeMap<i64, f64>>, CloudError>> + Send;
}

/// The coordination table (docs/coordination.md): heartbeats and the
/// leader lease of a cluster of sidecars.
pub trait Coordination: Send + Sync + 'static {
    /// Creates the table when it is missing, waits for it to be ACTIVE, and
    /// turns TTL on when it is off. Safe to run again.
    fn ensure_coordination_table(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<InitReport, CloudError>> + Send;
    /// Writes one sidecar's heartbeat (one PutItem).
    fn put_heartbeat(
        &self,
        table: &str,
        cluster: &str,
        heartbeat: &Heartbeat,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Every heartbeat of the cluster (one strongly consistent Query).
    fn query_heartbeats(
        &self,
        table: &str,
        cluster: &str,
    ) -> impl Future<Output = Result<Vec<Heartbeat>, CloudError>> + Send;
    /// Writes one announced surge, as its JSON, under the cluster (one
    /// PutItem; the item expires at `expires_at_s`).
    fn put_announcement(
        &self,
        table: &str,
        cluster: &str,
        item: &AnnouncementItem,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Every announced surge of the cluster (one Query).
    fn query_announcements(
        &self,
        table: &str,
        cluster: &str,
    ) -> impl Future<Output = Result<Vec<AnnouncementItem>, CloudError>> + Send;
    /// Takes the cluster's lease when it is free or expired (the fencing
    /// token goes up by one), or renews it when `held` is ours (the token
    /// stays). Ok(None): the lease is someone else's.
    fn take_or_renew_lease(
        &self,
        table: &str,
        cluster: &str,
        me: &str,
        held: Option<Lease>,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = Result<Option<Lease>, CloudError>> + Send;
    /// Checks with a conditional write that `lease` is still ours and lasts
    /// past `must_outlive_ms`: the last step before an action.
    fn verify_lease(
        &self,
        table: &str,
        cluster: &str,
        me: &str,
        lease: Lease,
        must_outlive_ms: i64,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;
}

/// Notifications to an SNS topic (`[[notify]] kind = "sns"`).
pub trait Notifications: Send + Sync + 'static {
    /// One Publish: `subject` (at most 100 characters) and `message`.
    fn publish_notification(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// The whole port: what the daemon, the demo and the replay run on. AWS
/// ([`aws::AwsCloud`]) and the simulator (`sim::cloud::SimCloud`)
/// implement it, and [`metered::Metered`] wraps either to count every call.
pub trait CloudBackend: Capacity + Metrics + Coordination + Notifications {}

impl<T: Capacity + Metrics + Coordination + Notifications> CloudBackend for T {}
