//! Wiring against a real AWS emulator (moto's server): resources created
//! through the SDK, read back by the daemon through `src/cloud/`.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ProvisionedThroughput, ScalarAttributeType,
};
use rapidscale::cloud::aws::AwsCloud;
use rapidscale::cloud::{BillingMode, Capacity, CloudErrorKind, Throughput};
use rapidscale::config::AwsConfig;

use crate::harness::{moto_url, Daemon};

/// rapidscale's AWS backend pointed at a moto server, with the SDK's own
/// clients beside it for what the tests set up and change behind
/// rapidscale's back (the backend keeps its clients private).
pub struct Moto {
    pub backend: AwsCloud,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub application_autoscaling: aws_sdk_applicationautoscaling::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub sns: aws_sdk_sns::Client,
}

impl std::ops::Deref for Moto {
    type Target = AwsCloud;

    fn deref(&self) -> &AwsCloud {
        &self.backend
    }
}

/// The moto server of `scripts/test`.
pub async fn cloud() -> Moto {
    moto_at(&moto_url()).await
}

/// A moto server at `url`.
pub async fn moto_at(url: &str) -> Moto {
    let config = AwsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(url.to_string()),
        profile: None,
    };
    // moto accepts any credentials; scripts/test exports dummy ones.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .load()
        .await;
    Moto {
        backend: AwsCloud::connect(&config).await,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
        application_autoscaling: aws_sdk_applicationautoscaling::Client::new(&sdk),
        ecs: aws_sdk_ecs::Client::new(&sdk),
        sns: aws_sdk_sns::Client::new(&sdk),
    }
}

fn throughput(read: i64, write: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .unwrap()
}

/// Sets the table's own provisioned throughput (behind rapidscale's back).
pub async fn set_throughput(cloud: &Moto, name: &str, read: i64, write: i64) {
    cloud
        .dynamodb
        .update_table()
        .table_name(name)
        .provisioned_throughput(throughput(read, write))
        .send()
        .await
        .unwrap();
}

/// A provisioned table `name` with a GSI `by_user`.
pub async fn create_table(cloud: &Moto, name: &str) {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(KeyType::Hash)
            .build()
            .unwrap()
    };
    cloud
        .dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(attr("id"))
        .attribute_definitions(attr("user"))
        .key_schema(key("id"))
        .provisioned_throughput(throughput(10, 5))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by_user")
                .key_schema(key("user"))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .provisioned_throughput(throughput(7, 3))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table in moto");
}

/// An Auto Scaling group `name` with `desired` instances.
///
/// The group is launched from a launch configuration, which the Auto
/// Scaling API creates itself: a launch template would need the EC2 API
/// (and the large `aws-sdk-ec2` crate) only for this setup, and rapidscale
/// reads groups the same way whichever of the two launched them.
pub async fn create_group(cloud: &Moto, name: &str, desired: i32) {
    let launch_configuration = format!("{name}-lc");
    cloud
        .autoscaling
        .create_launch_configuration()
        .launch_configuration_name(&launch_configuration)
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .expect("create launch configuration in moto");
    cloud
        .autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(&launch_configuration)
        .min_size(1)
        .max_size(10)
        .desired_capacity(desired)
        .availability_zones("us-east-1a")
        .send()
        .await
        .expect("create auto scaling group in moto");
}

/// A name no earlier run against the same moto server used.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn cloud_backend_describes_tables_and_groups() {
    let cloud = cloud().await;
    let table = unique("describe-posts");
    create_table(&cloud, &table).await;
    let t = cloud.describe_table(&table).await.expect("describe table");
    assert_eq!(t.status, "ACTIVE");
    assert_eq!(t.billing_mode, BillingMode::Provisioned);
    assert_eq!(t.provisioned, Some(Throughput { read: 10, write: 5 }));
    assert_eq!(t.indexes.len(), 1);
    assert_eq!(t.indexes[0].name, "by_user");
    assert_eq!(
        t.indexes[0].provisioned,
        Some(Throughput { read: 7, write: 3 })
    );

    let group = unique("describe-web");
    create_group(&cloud, &group, 3).await;
    let g = cloud.describe_group(&group).await.expect("describe group");
    assert_eq!((g.desired, g.min, g.max), (3, 1, 10));
    assert_eq!(g.instances.len(), 3);
    assert_eq!(g.serving(), 3);
    assert!(
        g.instances.iter().all(|i| i.lifecycle_state == "InService"),
        "{g:?}"
    );
    // With a warm pool the group is described with DescribeWarmPool too
    // (moto serves it and lists no pool instance).
    cloud
        .autoscaling
        .put_warm_pool()
        .auto_scaling_group_name(&group)
        .min_size(2)
        .send()
        .await
        .expect("put warm pool in moto");
    let g = cloud
        .describe_group(&group)
        .await
        .expect("describe with pool");
    assert_eq!(g.instances.len(), 3, "{g:?}");

    let missing = cloud.describe_table("no-such-table").await.unwrap_err();
    assert_eq!(missing.kind, CloudErrorKind::NotFound, "{missing:?}");
    assert!(!missing.is_retryable());
    let missing = cloud.describe_group("no-such-group").await.unwrap_err();
    assert_eq!(missing.kind, CloudErrorKind::NotFound);
}

#[tokio::test]
async fn daemon_tracks_capacity_and_membership_from_moto() {
    let cloud = cloud().await;
    let table = unique("daemon-posts");
    let group = unique("daemon-web");
    create_table(&cloud, &table).await;
    create_group(&cloud, &group, 2).await;
    let d = Daemon::start(&format!(
        r#"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[api]
listen = "127.0.0.1:0"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[dynamodb]
poll_interval = "1s"
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.7, min = 1, max = 100, per_request = 1 }}
write = {{ target = 0.7, min = 1, max = 100, per_request = 1 }}
[[dynamodb.tables.indexes]]
name = "by_user"
read = {{ target = 0.7, min = 1, max = 100, per_request = 1 }}
[asg]
name = "{group}"
target_rps_per_instance = 100
min = 1
max = 10
poll_interval = "1s"
"#,
        moto = moto_url()
    ))
    .await;
    let status = d
        .wait_for_status(Duration::from_secs(20), "table and group described", |s| {
            !s["cloud"]["tables"][&table]["current"].is_null()
                && !s["cloud"]["group"]["current"].is_null()
        })
        .await;
    let t = &status["cloud"]["tables"][&table]["current"];
    assert_eq!(
        t["provisioned"],
        serde_json::json!({"read": 10, "write": 5})
    );
    assert_eq!(t["indexes"][0]["name"], "by_user");
    assert_eq!(
        t["indexes"][0]["provisioned"],
        serde_json::json!({"read": 7, "write": 3})
    );
    let g = &status["cloud"]["group"]["current"];
    assert_eq!(g["desired"], 2);
    assert_eq!(g["instances"].as_array().unwrap().len(), 2);

    // A change made outside rapidscale shows up at the next poll.
    cloud
        .dynamodb
        .update_table()
        .table_name(&table)
        .provisioned_throughput(throughput(20, 5))
        .send()
        .await
        .unwrap();
    cloud
        .autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(&group)
        .desired_capacity(4)
        .send()
        .await
        .unwrap();
    d.wait_for_status(Duration::from_secs(10), "new capacity and size", |s| {
        s["cloud"]["tables"][&table]["current"]["provisioned"]["read"] == 20
            && s["cloud"]["group"]["current"]["instances"]
                .as_array()
                .map(|a| a.len())
                == Some(4)
    })
    .await;
    d.terminate().await;
}

#[tokio::test]
async fn an_unreachable_aws_is_reported_not_fatal() {
    let d = Daemon::start(
        r#"
[aws]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:1"
[api]
listen = "127.0.0.1:0"
[dynamodb]
poll_interval = "1s"
[[dynamodb.tables]]
name = "posts"
read = { max = 10, per_request = 1 }
"#,
    )
    .await;
    let status = d
        .wait_for_status(Duration::from_secs(30), "an AWS error", |s| {
            !s["cloud"]["tables"]["posts"]["last_error"].is_null()
        })
        .await;
    assert_eq!(
        status["cloud"]["tables"]["posts"]["last_error"]["kind"],
        "unavailable"
    );
    assert!(status["cloud"]["tables"]["posts"]["current"].is_null());
    let (exit, _) = d.terminate().await;
    assert!(exit.success());
}
