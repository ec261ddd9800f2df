//! The AWS backend: the official SDK, configured from `[aws]` and the usual
//! environment / profile chain.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use chrono::{DateTime, Utc};

use super::*;
use crate::config::AwsConfig;

mod coordination;
mod metrics;
mod sns;

/// Clients for every AWS service rapidscale calls. They stay private: the
/// rest of rapidscale reaches AWS through the port's traits only.
#[derive(Debug, Clone)]
pub struct AwsCloud {
    dynamodb: aws_sdk_dynamodb::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    application_autoscaling: aws_sdk_applicationautoscaling::Client,
    ecs: aws_sdk_ecs::Client,
    sns: aws_sdk_sns::Client,
}

impl AwsCloud {
    pub async fn connect(config: &AwsConfig) -> AwsCloud {
        // rapidscale retries on its own terms (backoff with jitter, bounded,
        // audited); the SDK's own retries would multiply the calls.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .operation_timeout(Duration::from_secs(15))
                    .build(),
            );
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if uses_local_emulator(config, |k| std::env::var_os(k).is_some()) {
            // Emulators accept any credentials. Without this the SDK's chain
            // would end at the EC2 instance metadata service, off this machine.
            tracing::info!(
                endpoint = config.endpoint_url.as_deref().unwrap_or_default(),
                "Loopback AWS endpoint without credentials: using static emulator credentials."
            );
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                "rapidscale-local",
                "rapidscale-local",
                None,
                None,
                "rapidscale-local-emulator",
            ));
        }
        AwsCloud::from_sdk_config(&loader.load().await)
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> AwsCloud {
        AwsCloud {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            application_autoscaling: aws_sdk_applicationautoscaling::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }
}

/// True when the endpoint is on this machine and no credentials were given
/// by environment or profile.
fn uses_local_emulator(config: &AwsConfig, env_has: impl Fn(&str) -> bool) -> bool {
    let loopback = config.endpoint_url.as_deref().is_some_and(|url| {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let host = if rest.starts_with('[') {
            rest.split(']').next().unwrap_or("").trim_start_matches('[')
        } else {
            host
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    loopback && config.profile.is_none() && !env_has("AWS_ACCESS_KEY_ID") && !env_has("AWS_PROFILE")
}

/// A warm throughput as described (both figures, or none).
fn warm(read: Option<i64>, write: Option<i64>) -> Option<WarmThroughput> {
    Some(WarmThroughput {
        read: u64::try_from(read?).ok()?,
        write: u64::try_from(write?).ok()?,
    })
}

/// Request-unit ceilings (-1 or absent: none).
fn on_demand_max(o: &aws_sdk_dynamodb::types::OnDemandThroughput) -> OnDemandMax {
    let ceiling = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    OnDemandMax {
        read: ceiling(o.max_read_request_units()),
        write: ceiling(o.max_write_request_units()),
    }
}

/// Classifies an SDK error: the one place that reads AWS error codes.
pub fn classify<E, R>(operation: &'static str, resource: &str, err: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => CloudErrorKind::Unavailable,
        SdkError::ResponseError(_) => CloudErrorKind::Unavailable,
        SdkError::ServiceError(se) => kind_of_code(se.err().code()),
        SdkError::ConstructionFailure(_) => CloudErrorKind::Other,
        _ => kind_of_code(err.code()),
    };
    // The whole chain is for debugging; logs, the audit log and the API
    // carry the code and the service's message.
    tracing::debug!(operation, resource, error = %DisplayErrorContext(&err), "AWS call failed.");
    CloudError {
        operation,
        resource: resource.to_string(),
        kind,
        message: summary(&err),
    }
}

/// An SDK error in one line: the AWS error code and message, or what kept
/// the call from being answered (the innermost cause).
fn summary<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let root = |e: &(dyn std::error::Error + 'static)| {
        let mut e = e;
        while let Some(inner) = e.source() {
            e = inner;
        }
        e.to_string()
    };
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                (None, Some(message)) => message.to_string(),
                (None, None) => "an error without a code or message".to_string(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_string(),
        SdkError::DispatchFailure(_) => format!("cannot reach the endpoint: {}", root(err)),
        SdkError::ResponseError(_) => format!("unreadable response: {}", root(err)),
        SdkError::ConstructionFailure(_) => format!("request not built: {}", root(err)),
        _ => root(err),
    }
}

fn kind_of_code(code: Option<&str>) -> CloudErrorKind {
    match code.unwrap_or("") {
        "ThrottlingException"
        | "Throttling"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => CloudErrorKind::Throttled,
        "LimitExceededException" | "LimitExceeded" => CloudErrorKind::LimitExceeded,
        "ConditionalCheckFailedException" => CloudErrorKind::ConditionFailed,
        "ResourceNotFoundException" | "TableNotFoundException" => CloudErrorKind::NotFound,
        "ResourceInUseException"
        | "ScalingActivityInProgress"
        | "ScalingActivityInProgressFault"
        | "ResourceContention"
        | "ResourceContentionFault" => CloudErrorKind::ResourceBusy,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException" => CloudErrorKind::AccessDenied,
        "InternalServerError" | "InternalFailure" | "ServiceUnavailable" => {
            CloudErrorKind::Unavailable
        }
        _ => CloudErrorKind::Other,
    }
}

fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn throughput(
    pt: Option<&aws_sdk_dynamodb::types::ProvisionedThroughputDescription>,
) -> Option<Throughput> {
    let pt = pt?;
    let (read, write) = (pt.read_capacity_units()?, pt.write_capacity_units()?);
    // On-demand tables report 0/0.
    (read > 0 || write > 0).then_some(Throughput {
        read: read as u64,
        write: write as u64,
    })
}

impl Capacity for AwsCloud {
    async fn describe_table(&self, name: &str) -> Result<TableDescription, CloudError> {
        let out = self
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeTable", name, e))?;
        let t = out.table().ok_or_else(|| CloudError {
            operation: "DescribeTable",
            resource: name.to_string(),
            kind: CloudErrorKind::Other,
            message: "response has no table".into(),
        })?;
        let billing_mode = match t.billing_mode_summary().and_then(|b| b.billing_mode()) {
            Some(aws_sdk_dynamodb::types::BillingMode::PayPerRequest) => BillingMode::PayPerRequest,
            _ => BillingMode::Provisioned,
        };
        let pt = t.provisioned_throughput();
        let indexes = t
            .global_secondary_indexes()
            .iter()
            .map(|g| IndexDescription {
                name: g.index_name().unwrap_or_default().to_string(),
                status: g
                    .index_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                provisioned: throughput(g.provisioned_throughput()),
                decreases_today: g
                    .provisioned_throughput()
                    .and_then(|p| p.number_of_decreases_today())
                    .map(|n| n as u64),
                last_decrease: g
                    .provisioned_throughput()
                    .and_then(|p| p.last_decrease_date_time())
                    .and_then(to_utc),
                warm: g
                    .warm_throughput()
                    .and_then(|w| warm(w.read_units_per_second(), w.write_units_per_second())),
                on_demand_max: g.on_demand_throughput().map(on_demand_max),
            })
            .collect();
        Ok(TableDescription {
            name: t.table_name().unwrap_or(name).to_string(),
            status: t
                .table_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            billing_mode,
            provisioned: throughput(pt),
            indexes,
            decreases_today: pt
                .and_then(|p| p.number_of_decreases_today())
                .map(|n| n as u64),
            last_increase: pt
                .and_then(|p| p.last_increase_date_time())
                .and_then(to_utc),
            last_decrease: pt
                .and_then(|p| p.last_decrease_date_time())
                .and_then(to_utc),
            warm: t
                .warm_throughput()
                .and_then(|w| warm(w.read_units_per_second(), w.write_units_per_second())),
            on_demand_max: t.on_demand_throughput().map(on_demand_max),
        })
    }

    async fn update_warm_throughput(
        &self,
        table: &str,
        index: Option<&str>,
        warm: WarmThroughput,
    ) -> Result<(), CloudError> {
        use aws_sdk_dynamodb::types::{
            GlobalSecondaryIndexUpdate, UpdateGlobalSecondaryIndexAction, WarmThroughput as Warm,
        };
        let resource = match index {
            Some(i) => format!("{table}/{i}"),
            None => table.to_string(),
        };
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let w = Warm::builder()
            .read_units_per_second(to_i64(warm.read))
            .write_units_per_second(to_i64(warm.write))
            .build();
        let request = self.dynamodb.update_table().table_name(table);
        let request = match index {
            None => request.warm_throughput(w),
            Some(i) => request.global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder()
                    .update(
                        UpdateGlobalSecondaryIndexAction::builder()
                            .index_name(i)
                            .warm_throughput(w)
                            .build()
                            .map_err(|e| CloudError {
                                operation: "UpdateTable",
                                resource: resource.clone(),
                                kind: CloudErrorKind::Other,
                                message: e.to_string(),
                            })?,
                    )
                    .build(),
            ),
        };
        request
            .send()
            .await
            .map_err(|e| classify("UpdateTable", &resource, e))?;
        Ok(())
    }

    async fn update_table(
        &self,
        table: &str,
        members: &[MemberCapacity],
    ) -> Result<(), CloudError> {
        use aws_sdk_dynamodb::types::{
            GlobalSecondaryIndexUpdate, ProvisionedThroughput, UpdateGlobalSecondaryIndexAction,
        };
        let resource = match members {
            [MemberCapacity { index: Some(i), .. }] => format!("{table}/{i}"),
            _ => table.to_string(),
        };
        let bad_request = |e: aws_sdk_dynamodb::error::BuildError| CloudError {
            operation: "UpdateTable",
            resource: resource.clone(),
            kind: CloudErrorKind::Other,
            message: e.to_string(),
        };
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut request = self.dynamodb.update_table().table_name(table);
        for m in members {
            let pt = ProvisionedThroughput::builder()
                .read_capacity_units(to_i64(m.capacity.read))
                .write_capacity_units(to_i64(m.capacity.write))
                .build()
                .map_err(bad_request)?;
            request = match &m.index {
                None => request.provisioned_throughput(pt),
                Some(i) => request.global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .update(
                            UpdateGlobalSecondaryIndexAction::builder()
                                .index_name(i)
                                .provisioned_throughput(pt)
                                .build()
                                .map_err(bad_request)?,
                        )
                        .build(),
                ),
            };
        }
        request
            .send()
            .await
            .map_err(|e| classify("UpdateTable", &resource, e))?;
        Ok(())
    }

    async fn set_desired_capacity(&self, group: &str, desired: u32) -> Result<(), CloudError> {
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(i32::try_from(desired).unwrap_or(i32::MAX))
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| classify("SetDesiredCapacity", group, e))?;
        Ok(())
    }

    async fn dynamodb_scalable_targets(&self) -> Result<Vec<ScalableTarget>, CloudError> {
        use aws_sdk_applicationautoscaling::types::ServiceNamespace;
        self.scalable_targets(ServiceNamespace::Dynamodb).await
    }

    async fn ecs_scalable_targets(&self) -> Result<Vec<ScalableTarget>, CloudError> {
        use aws_sdk_applicationautoscaling::types::ServiceNamespace;
        self.scalable_targets(ServiceNamespace::Ecs).await
    }

    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<GroupDescription, CloudError> {
        let key = format!("{cluster}/{service}");
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| classify("DescribeServices", &key, e))?;
        let s = out
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .ok_or_else(|| CloudError {
                operation: "DescribeServices",
                resource: key.clone(),
                kind: CloudErrorKind::NotFound,
                message: format!("ECS service {key} not found (or INACTIVE)"),
            })?;
        let count = |v: i32| v.max(0) as u32;
        let (running, pending) = (count(s.running_count()), count(s.pending_count()));
        let tasks = self.service_tasks(cluster, service, &key).await?;
        Ok(service_description(
            key,
            count(s.desired_count()),
            running,
            pending,
            tasks,
        ))
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), CloudError> {
        let key = format!("{cluster}/{service}");
        self.ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(desired.min(i32::MAX as u32) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("UpdateService", &key, e))
    }
    async fn scaling_policies(&self, group: &str) -> Result<Vec<String>, CloudError> {
        let out = self
            .autoscaling
            .describe_policies()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| classify("DescribePolicies", group, e))?;
        Ok(out
            .scaling_policies()
            .iter()
            .filter_map(|p| p.policy_name().map(str::to_string))
            .collect())
    }

    async fn group_of_instance(&self, instance_id: &str) -> Result<Option<String>, CloudError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| classify("DescribeAutoScalingInstances", instance_id, e))?;
        Ok(out
            .auto_scaling_instances()
            .first()
            .and_then(|i| i.auto_scaling_group_name())
            .map(str::to_string))
    }

    async fn describe_group(&self, name: &str) -> Result<GroupDescription, CloudError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| classify("DescribeAutoScalingGroups", name, e))?;
        let g = out
            .auto_scaling_groups()
            .first()
            .ok_or_else(|| CloudError {
                operation: "DescribeAutoScalingGroups",
                resource: name.to_string(),
                kind: CloudErrorKind::NotFound,
                message: format!("auto scaling group {name} not found"),
            })?;
        let count = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
        let mut instances: Vec<InstanceDescription> =
            g.instances().iter().map(instance_description).collect();
        // The warm pool's instances (Warmed:*) are not in the group's list.
        if g.warm_pool_configuration().is_some() {
            instances.extend(self.warm_pool(name).await?);
        }
        Ok(GroupDescription {
            name: g.auto_scaling_group_name().unwrap_or(name).to_string(),
            desired: count(g.desired_capacity()),
            min: count(g.min_size()),
            max: count(g.max_size()),
            instances,
        })
    }
}

impl AwsCloud {
    /// The group's warm pool instances (DescribeWarmPool, all pages).
    async fn warm_pool(&self, group: &str) -> Result<Vec<InstanceDescription>, CloudError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .autoscaling
                .describe_warm_pool()
                .auto_scaling_group_name(group)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("DescribeWarmPool", group, e))?;
            out.extend(page.instances().iter().map(instance_description));
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Every scalable target of one namespace (all pages).
    async fn scalable_targets(
        &self,
        namespace: aws_sdk_applicationautoscaling::types::ServiceNamespace,
    ) -> Result<Vec<ScalableTarget>, CloudError> {
        let label = namespace.as_str().to_string();
        let mut targets = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .application_autoscaling
                .describe_scalable_targets()
                .service_namespace(namespace.clone())
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("DescribeScalableTargets", &label, e))?;
            targets.extend(out.scalable_targets().iter().map(|t| ScalableTarget {
                resource_id: t.resource_id().to_string(),
                dimension: t.scalable_dimension().as_str().to_string(),
            }));
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(targets),
            }
        }
    }

    /// The service's tasks (ListTasks by service name, then DescribeTasks
    /// 100 at a time): (id, lastStatus, healthStatus).
    async fn service_tasks(
        &self,
        cluster: &str,
        service: &str,
        key: &str,
    ) -> Result<Vec<(String, String, String)>, CloudError> {
        let mut arns = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .ecs
                .list_tasks()
                .cluster(cluster)
                .service_name(service)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("ListTasks", key, e))?;
            arns.extend(out.task_arns().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        let mut tasks = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("DescribeTasks", key, e))?;
            let group = format!("service:{service}");
            tasks.extend(
                out.tasks()
                    .iter()
                    // ListTasks by service name is trusted, but an
                    // emulator may list every task of the cluster.
                    .filter(|t| t.group().is_none_or(|g| g == group))
                    .map(|t| {
                        let id = t.task_arn().unwrap_or_default();
                        (
                            id.rsplit('/').next().unwrap_or(id).to_string(),
                            t.last_status().unwrap_or("PENDING").to_string(),
                            t.health_status()
                                .map(|h| h.as_str().to_string())
                                .unwrap_or_default(),
                        )
                    }),
            );
        }
        Ok(tasks)
    }
}

/// An instance of a group or of its warm pool (both are `Instance`).
fn instance_description(i: &aws_sdk_autoscaling::types::Instance) -> InstanceDescription {
    InstanceDescription {
        id: i.instance_id().unwrap_or_default().to_string(),
        lifecycle_state: i
            .lifecycle_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        health: i.health_status().unwrap_or_default().to_string(),
        availability_zone: i.availability_zone().map(str::to_string),
    }
}

/// A service as a group: its tasks as instances (states as
/// `task_lifecycle_state` maps them, UNHEALTHY tasks Unhealthy); when the
/// tasks listed cover fewer than the service's running and pending counts
/// (tasks starting between the calls, or an emulator that launches none),
/// the difference is filled with entries named after the counts, so the
/// counts are never read lower than ECS reports them.
fn service_description(
    key: String,
    desired: u32,
    running: u32,
    pending: u32,
    tasks: Vec<(String, String, String)>,
) -> GroupDescription {
    let mut instances: Vec<InstanceDescription> = tasks
        .into_iter()
        .map(|(id, status, health)| InstanceDescription {
            id,
            lifecycle_state: crate::cloud::task_lifecycle_state(&status).to_string(),
            health: if health == "UNHEALTHY" {
                "Unhealthy"
            } else {
                "Healthy"
            }
            .to_string(),
            availability_zone: None,
        })
        .collect();
    let seen = |state: &str| {
        instances
            .iter()
            .filter(|i| i.lifecycle_state == state)
            .count() as u32
    };
    let (seen_running, seen_pending) = (seen("InService"), seen("Pending"));
    for (state, missing) in [
        ("InService", running.saturating_sub(seen_running)),
        ("Pending", pending.saturating_sub(seen_pending)),
    ] {
        for n in 0..missing {
            instances.push(InstanceDescription {
                id: format!("{key}#{}-{n}", state.to_lowercase()),
                lifecycle_state: state.to_string(),
                health: "Healthy".to_string(),
                availability_zone: None,
            });
        }
    }
    GroupDescription {
        name: key,
        desired,
        min: 0,
        max: u32::MAX,
        instances,
    }
}

#[cfg(test)]
impl AwsCloud {
    /// A backend whose DynamoDB calls go to `dynamodb` (tests give it a
    /// mocked client).
    pub(crate) fn with_dynamodb(mut self, dynamodb: aws_sdk_dynamodb::Client) -> AwsCloud {
        self.dynamodb = dynamodb;
        self
    }

    /// A backend whose Auto Scaling calls go to `autoscaling` (tests give
    /// it a mocked client).
    pub(crate) fn with_autoscaling(mut self, autoscaling: aws_sdk_autoscaling::Client) -> AwsCloud {
        self.autoscaling = autoscaling;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(endpoint: Option<&str>, env_key: bool, expected: bool) {
        let config = AwsConfig {
            region: None,
            endpoint_url: endpoint.map(str::to_string),
            profile: None,
        };
        assert_eq!(
            uses_local_emulator(&config, |k| env_key && k == "AWS_ACCESS_KEY_ID"),
            expected,
            "{endpoint:?}"
        );
    }

    #[test]
    fn emulator_credentials_only_for_loopback_without_keys() {
        check(Some("http://127.0.0.1:5000"), false, true);
        check(Some("http://localhost:4566/"), false, true);
        check(Some("http://[::1]:5000"), false, true);
        check(Some("http://127.0.0.1:5000"), true, false);
        check(
            Some("https://dynamodb.us-east-1.amazonaws.com"),
            false,
            false,
        );
        check(Some("http://10.0.0.5:8000"), false, false);
        check(None, false, false);
    }

    #[test]
    fn error_codes_are_classified_once() {
        assert_eq!(
            kind_of_code(Some("ThrottlingException")),
            CloudErrorKind::Throttled
        );
        assert_eq!(
            kind_of_code(Some("LimitExceededException")),
            CloudErrorKind::LimitExceeded
        );
        assert_eq!(
            kind_of_code(Some("ResourceInUseException")),
            CloudErrorKind::ResourceBusy
        );
        assert_eq!(
            kind_of_code(Some("ScalingActivityInProgress")),
            CloudErrorKind::ResourceBusy
        );
        assert_eq!(
            kind_of_code(Some("ResourceNotFoundException")),
            CloudErrorKind::NotFound
        );
        assert_eq!(kind_of_code(Some("SomethingNew")), CloudErrorKind::Other);
        assert_eq!(kind_of_code(None), CloudErrorKind::Other);
    }
}
