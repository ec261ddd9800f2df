//! The Auto Scaling group decider end to end against moto's Auto Scaling:
//! a traffic step raises DesiredCapacity, sustained low traffic lowers it
//! one step after the stabilization window, dry-run changes nothing, a
//! fleet that cannot be seen is never changed, and the group is discovered
//! from instance metadata.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rapidscale::audit::{read_file, Outcome};
use rapidscale::cloud::Capacity;

use crate::aws::{cloud, create_group, unique};
use crate::harness::{eventually, moto_url, Daemon};

/// Sends a fleet-wide rate: all of it (one rapidscale receives every
/// instance's traffic, `[fleet] view = "central"`), or one sidecar's share,
/// fleet rps / serving instances, as an even load balancer would,
/// re-reading the group each second.
struct FleetTraffic {
    fleet_rps: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FleetTraffic {
    async fn start(
        target: std::net::SocketAddr,
        group: &str,
        fleet_rps: u64,
        share: bool,
    ) -> FleetTraffic {
        let fleet = Arc::new(AtomicU64::new(fleet_rps));
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (f, group) = (fleet.clone(), group.to_string());
        let task = tokio::spawn(async move {
            let aws = cloud().await;
            let mut serving = 1u64;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                if share && n % 100 == 0 {
                    if let Ok(g) = aws.describe_group(&group).await {
                        serving = (g.serving() as u64).max(1);
                    }
                }
                n += 1;
                let per_packet = f.load(Ordering::SeqCst) as f64 / serving as f64 / 100.0;
                let _ = socket
                    .send_to(format!("http.requests:{per_packet}|c").as_bytes(), target)
                    .await;
            }
        });
        FleetTraffic {
            fleet_rps: fleet,
            task,
        }
    }

    fn set(&self, rps: u64) {
        self.fleet_rps.store(rps, Ordering::SeqCst);
    }
}

impl Drop for FleetTraffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(mode: &str, group_line: &str, extra: &str) -> String {
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
[asg]
{group_line}
target_rps_per_instance = 100
min = 1
max = 10
poll_interval = "1s"
up_window = "2s"
stabilization = "4s"
settle = "3s"
{extra}
"#,
        moto = moto_url()
    )
}

async fn desired(group: &str) -> u32 {
    cloud().await.describe_group(group).await.unwrap().desired
}

async fn wait_for_desired(group: &str, within: Duration, pred: impl Fn(u32) -> bool) -> u32 {
    eventually(within, "desired", || desired(group), |d| pred(*d)).await
}

#[tokio::test]
async fn a_step_scales_out_and_quiet_traffic_scales_in_one_step() {
    let group = unique("web-apply");
    create_group(&cloud().await, &group, 2).await;
    // This rapidscale receives the whole fleet's traffic.
    let d = Daemon::start(&config(
        "apply",
        &format!("name = \"{group}\""),
        "[fleet]\nview = \"central\"",
    ))
    .await;
    // 150 rps on 2 instances needs ceil(1.5 x 1.1) = 2: steady.
    let traffic = FleetTraffic::start(d.statsd.unwrap(), &group, 150, false).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(desired(&group).await, 2, "steady traffic keeps the group");
    // A step to 400 rps needs ceil(4.4) = 5 (6 would need 545 rps: margin
    // for the noise of a rate measured over part of a second).
    traffic.set(400);
    let d5 = wait_for_desired(&group, Duration::from_secs(10), |n| n >= 5).await;
    assert_eq!(d5, 5);
    // No second scale-out for the same demand once the new instances serve.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(desired(&group).await, 5);
    // Quiet: 80 rps needs 1; after the 4 s stabilization window, one step of
    // max(1, 10 % of 5) = 1 instance.
    traffic.set(80);
    let d4 = wait_for_desired(&group, Duration::from_secs(15), |n| n < 5).await;
    assert_eq!(d4, 4);
    let status = d.get_json("/api/v1/status").await;
    let decisions = status["decisions"].as_array().unwrap();
    let rules: Vec<&str> = decisions
        .iter()
        .filter(|r| r["service"] == "asg" && r["outcome"] == "applied")
        .filter_map(|r| r["changes"][0]["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"surge") && rules.contains(&"stabilized"),
        "{rules:?}"
    );
    assert_eq!(status["asg"]["fleet_estimated"], false);
    assert_eq!(status["fleet"]["view"], "central");
    assert!(
        status["asg"]["counts"]["serving"].as_u64().unwrap() >= 4,
        "{:#}",
        status["asg"]
    );
    drop(traffic);
    d.terminate().await;
}

#[tokio::test]
async fn dry_run_changes_nothing_and_records_the_recommendation() {
    let group = unique("web-dry");
    let aws = cloud().await;
    create_group(&aws, &group, 2).await;
    // The group's own target tracking: rapidscale must say it may fight it.
    aws.autoscaling
        .put_scaling_policy()
        .auto_scaling_group_name(&group)
        .policy_name("cpu-target")
        .policy_type("TargetTrackingScaling")
        .target_tracking_configuration(
            aws_sdk_autoscaling::types::TargetTrackingConfiguration::builder()
                .predefined_metric_specification(
                    aws_sdk_autoscaling::types::PredefinedMetricSpecification::builder()
                        .predefined_metric_type(
                            aws_sdk_autoscaling::types::MetricType::AsgAverageCpuUtilization,
                        )
                        .build(),
                )
                .target_value(50.0)
                .build(),
        )
        .send()
        .await
        .expect("put scaling policy in moto");
    let d = Daemon::start(&config("dry-run", &format!("name = \"{group}\""), "")).await;
    let status = d
        .wait_for_status(Duration::from_secs(10), "the group advised", |s| {
            !s["asg"].is_null()
        })
        .await;
    assert_eq!(
        status["asg"]["foreign_policies"],
        serde_json::json!(["cpu-target"])
    );
    assert!(
        d.logged("The group has its own scaling policies; they may fight rapidscale's decisions.")
    );
    let traffic = FleetTraffic::start(d.statsd.unwrap(), &group, 150, true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    traffic.set(600);
    d.wait_for_status(Duration::from_secs(10), "a recommendation", |s| {
        s["decisions"].as_array().is_some_and(|a| {
            a.iter()
                .any(|r| r["service"] == "asg" && r["outcome"] == "recommended")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(desired(&group).await, 2);
    let records = read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let recommended: Vec<_> = records
        .iter()
        .filter(|r| r.service == "asg" && r.outcome == Outcome::Recommended)
        .collect();
    assert!(
        recommended
            .iter()
            .all(|r| r.resource == group && r.changes[0].from == 2 && r.changes[0].rule == "surge"),
        "{recommended:#?}"
    );
    // 600 rps needs ceil(6.6) = 7.
    assert!(
        recommended.iter().any(|r| r.changes[0].to == 7),
        "{recommended:#?}"
    );
    // A dry run recommends on this sidecar's share x the serving instances,
    // and says it is an estimate: in the audit log, and in the status.
    assert!(
        recommended.iter().all(|r| r
            .reason
            .as_deref()
            .is_some_and(|w| w.starts_with("on an estimate of the fleet's demand"))),
        "{recommended:#?}"
    );
    let status = d.get_json("/api/v1/status").await;
    assert_eq!(status["asg"]["fleet_estimated"], true);
    assert!(status["asg"]["fleet"]["estimate"]
        .as_str()
        .is_some_and(|e| e.contains("x 2 serving instances")));
    drop(traffic);
    d.terminate().await;
}

/// `[fleet] view = "single"` (the default without coordination) in apply
/// mode, while the group serves on two instances: rapidscale sees one
/// instance's traffic, so it changes nothing, says why in `/readyz`, and
/// records the refused decision.
#[tokio::test]
async fn a_fleet_it_cannot_see_is_never_changed() {
    let group = unique("web-unseen");
    create_group(&cloud().await, &group, 2).await;
    let d = Daemon::start(&config("apply", &format!("name = \"{group}\""), "")).await;
    let traffic = FleetTraffic::start(d.statsd.unwrap(), &group, 150, true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    traffic.set(600);
    let status = d
        .wait_for_status(Duration::from_secs(10), "a refused change", |s| {
            s["decisions"].as_array().is_some_and(|a| {
                a.iter().any(|r| {
                    r["service"] == "asg"
                        && r["outcome"] == "skipped"
                        && r["reason"]
                            .as_str()
                            .is_some_and(|w| w.starts_with("fleet not seen"))
                })
            })
        })
        .await;
    assert!(status["asg"]["gate"]
        .as_str()
        .is_some_and(|g| g.contains("but 2 instances serve")));
    assert_eq!(desired(&group).await, 2, "nothing was changed");
    let (code, body) = d.get_text("/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("fleet not seen"), "{body}");
    assert!(
        body.contains("view = \\\"sidecar\\\" with [coordination]"),
        "{body}"
    );
    drop(traffic);
    d.terminate().await;
}

/// Serves IMDSv2 (token, then instance-id with the token) and ECS task metadata.
async fn fake_metadata(instance_id: String) -> std::net::SocketAddr {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, put};
    let app = axum::Router::new()
        .route("/latest/api/token", put(|| async { "token-123" }))
        .route(
            "/latest/meta-data/instance-id",
            get(move |headers: HeaderMap| {
                let id = instance_id.clone();
                async move {
                    if headers
                        .get("x-aws-ec2-metadata-token")
                        .is_some_and(|t| t == "token-123")
                    {
                        (StatusCode::OK, id)
                    } else {
                        (StatusCode::UNAUTHORIZED, String::new())
                    }
                }
            }),
        )
        .route(
            "/v4/task",
            get(|| async {
                r#"{"Cluster":"prod","TaskARN":"arn:aws:ecs:us-east-1:123456789012:task/prod/abc"}"#
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn the_group_is_discovered_from_instance_metadata() {
    let group = unique("web-found");
    let aws = cloud().await;
    create_group(&aws, &group, 2).await;
    let instance = aws.describe_group(&group).await.unwrap().instances[0]
        .id
        .clone();
    let meta = fake_metadata(instance.clone()).await;
    let d = Daemon::start_with_env(
        &config(
            "dry-run",
            "",
            &format!("metadata_endpoint = \"http://{meta}\""),
        ),
        &[(
            "ECS_CONTAINER_METADATA_URI_V4",
            &format!("http://{meta}/v4"),
        )],
    )
    .await;
    let status = d
        .wait_for_status(Duration::from_secs(10), "the discovered group", |s| {
            !s["asg"].is_null()
        })
        .await;
    assert_eq!(status["asg"]["group"], group.as_str());
    let logs = d.logs.lock().unwrap().clone();
    let found = logs
        .iter()
        .find(|l| l["message"] == "Discovered the Auto Scaling group.")
        .expect("discovery logged");
    assert_eq!(found["instance"], instance.as_str());
    assert!(found["ecs_cluster"].as_str().unwrap().contains("prod"));
    d.terminate().await;
}
