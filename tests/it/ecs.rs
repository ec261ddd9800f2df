//! ECS services against moto's ECS: what moto serves (the findings are in
//! docs/ecs.md, "ECS in moto"), a traffic step raising a service's desired
//! count through UpdateService in apply mode, dry-run changing nothing,
//! and Service Auto Scaling on the same service refusing the apply.

use std::time::Duration;

use rapidscale::audit::{read_file, Outcome};
use rapidscale::cloud::Capacity;

use crate::aws::{cloud, unique, Moto};
use crate::harness::{eventually, moto_url, Daemon, Load};

/// A cluster with a service of `desired` tasks (EC2 launch type).
async fn create_service(aws: &Moto, cluster: &str, service: &str, desired: i32) {
    aws.ecs
        .create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("create cluster in moto");
    let family = format!("{service}-td");
    aws.ecs
        .register_task_definition()
        .family(&family)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("nginx")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .expect("register task definition in moto");
    aws.ecs
        .create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(&family)
        .desired_count(desired)
        .send()
        .await
        .expect("create service in moto");
}

/// Registers the service with Application Auto Scaling (Service Auto Scaling).
async fn register_with_service_auto_scaling(aws: &Moto, cluster: &str, service: &str) {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    aws.application_autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(format!("service/{cluster}/{service}"))
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .min_capacity(1)
        .max_capacity(10)
        .send()
        .await
        .expect("register a scalable target in moto");
}

fn config(mode: &str, cluster: &str, service: &str) -> String {
    format!(
        r#"
mode = "{mode}"
state_dir = "{{dir}}/state"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[api]
listen = "127.0.0.1:0"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[fleet]
view = "central"
[[ecs.services]]
cluster = "{cluster}"
service = "{service}"
target_rps_per_task = 100
min = 1
max = 10
poll_interval = "1s"
stabilization_up = "2s"
stabilization_down = "4s"
settle = "1s"
"#,
        moto = moto_url()
    )
}

async fn desired(aws: &Moto, cluster: &str, service: &str) -> u32 {
    aws.describe_service(cluster, service)
        .await
        .unwrap()
        .desired
}

/// What moto's ECS serves through the SDK, checked so that a moto upgrade
/// that changes it shows here first (docs/ecs.md, "ECS in moto").
#[tokio::test]
async fn moto_serves_services_counts_and_update_service_but_launches_no_tasks() {
    let aws = cloud().await;
    let (cluster, service) = (unique("ecs-probe"), "web".to_string());
    create_service(&aws, &cluster, &service, 2).await;
    let d = aws.describe_service(&cluster, &service).await.unwrap();
    assert_eq!(d.name, format!("{cluster}/{service}"));
    assert_eq!(d.desired, 2);
    // moto reports a new service's tasks as pendingCount = desired,
    // runningCount 0, and starts no task: ListTasks is empty, so the
    // counts are filled in (Pending here).
    assert_eq!(d.serving(), 0, "{d:?}");
    assert!(
        d.instances.iter().all(|i| i.lifecycle_state == "Pending") && d.instances.len() == 2,
        "{d:?}"
    );
    let tasks = aws
        .ecs
        .list_tasks()
        .cluster(&cluster)
        .service_name(&service)
        .send()
        .await
        .unwrap();
    assert!(tasks.task_arns().is_empty());
    // UpdateService sets desired and running at once (no PENDING phase).
    aws.update_service(&cluster, &service, 5).await.unwrap();
    let d = aws.describe_service(&cluster, &service).await.unwrap();
    assert_eq!((d.desired, d.serving()), (5, 5));
    // A service that does not exist is NotFound.
    let e = aws.describe_service(&cluster, "nope").await.unwrap_err();
    assert_eq!(e.kind, rapidscale::cloud::CloudErrorKind::NotFound, "{e}");
    // Service Auto Scaling's registrations are read in the ecs namespace.
    register_with_service_auto_scaling(&aws, &cluster, &service).await;
    let targets = aws.ecs_scalable_targets().await.unwrap();
    assert!(
        targets
            .iter()
            .any(|t| t.resource_id == format!("service/{cluster}/{service}")
                && t.dimension == "ecs:service:DesiredCount"),
        "{targets:?}"
    );
}

#[tokio::test]
async fn a_step_raises_the_services_desired_count_in_apply_mode() {
    let aws = cloud().await;
    let (cluster, service) = (unique("ecs-apply"), "web".to_string());
    create_service(&aws, &cluster, &service, 2).await;
    let d = Daemon::start(&config("apply", &cluster, &service)).await;
    // 140 rps on 2 tasks: steady (needs ceil(1.54) = 2).
    let load = Load::start(d.statsd.unwrap(), 140);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(desired(&aws, &cluster, &service).await, 2);
    // 3x: 420 rps needs ceil(4.62) = 5 tasks (6 would need 455 rps: margin
    // for a rate measured over part of a second).
    load.set(420);
    let n = eventually(
        Duration::from_secs(10),
        "desired count",
        || desired(&aws, &cluster, &service),
        |n| *n >= 5,
    )
    .await;
    assert_eq!(n, 5);
    // moto runs the new count at once; past `settle` (1 s) they serve.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = d.get_json("/api/v1/status").await;
    let svc = &status["ecs_services"][0];
    assert_eq!(svc["group"], format!("{cluster}/{service}"));
    assert_eq!(svc["resource"]["kind"], "service");
    assert_eq!(svc["counts"]["serving"], 5, "{svc:#}");
    let (_, metrics) = d.get_text("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "group_desired_instances{{group=\"{cluster}/{service}\"}}"
        )),
        "{metrics}"
    );
    drop(load);
    let records = read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let applied: Vec<_> = records
        .iter()
        .filter(|r| r.service == "ecs" && r.outcome == Outcome::Applied)
        .collect();
    assert!(!applied.is_empty(), "an UpdateService was audited");
    assert_eq!(applied[0].resource, format!("{cluster}/{service}"));
    assert_eq!(applied[0].changes[0].op, "desired");
    assert_eq!(applied[0].changes[0].rule, "surge");
    d.terminate().await;
}

#[tokio::test]
async fn service_auto_scaling_on_the_service_refuses_the_apply_and_dry_run_only_recommends() {
    let aws = cloud().await;
    let (cluster, service) = (unique("ecs-aas"), "web".to_string());
    create_service(&aws, &cluster, &service, 2).await;
    register_with_service_auto_scaling(&aws, &cluster, &service).await;
    let (dry_cluster, dry_service) = (unique("ecs-dry"), "web".to_string());
    create_service(&aws, &dry_cluster, &dry_service, 2).await;
    let applying = Daemon::start(&config("apply", &cluster, &service)).await;
    let dry = Daemon::start(&config("dry-run", &dry_cluster, &dry_service)).await;
    let loads = [
        Load::start(applying.statsd.unwrap(), 450),
        Load::start(dry.statsd.unwrap(), 450),
    ];
    for (d, c, s) in [
        (&applying, &cluster, &service),
        (&dry, &dry_cluster, &dry_service),
    ] {
        eventually(
            Duration::from_secs(10),
            "a recorded recommendation",
            || async {
                read_file(&d.state_dir().join("audit.jsonl"))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.service == "ecs" && r.outcome == Outcome::Recommended)
                    .count()
            },
            |n| *n >= 1,
        )
        .await;
        // Nothing applied: the desired count stays 2.
        assert_eq!(desired(&aws, c, s).await, 2);
    }
    let status = applying.get_json("/api/v1/status").await;
    let gate = status["ecs_services"][0]["gate"]
        .as_str()
        .unwrap_or_default();
    assert!(gate.contains("Service Auto Scaling"), "{gate}");
    drop(loads);
    applying.terminate().await;
    dry.terminate().await;
}
