//! Reaction time of the DynamoDB and Auto Scaling advisors against moto.
//!
//! DynamoDB:
//! For each trial: steady StatsD traffic of 40 write units/s on a table with
//! 100 WCU (target 0.5: inside the band), then a 5x step to 200 units/s.
//! Measured from the first packet of the step, with DescribeTable polled
//! every 25 ms: until the first increase shows (`first`), and until the
//! new demand is inside the policy's band (capacity x 0.5 x 1.1 >= 200,
//! i.e. >= 364 WCU: `enough`). Run with `up_window = "1s"`, with the
//! defaults, and with the per-second policy (`burst_share = 0`). A trial
//! that does not get there in 30 s is reported as such.
//!
//! Auto Scaling: a group of 2 instances (100 requests/s each at target),
//! steady fleet traffic of 150 requests/s split evenly over the serving
//! instances, then a 3x step to 450. Measured from the first packet of the
//! step until DescribeAutoScalingGroups shows a higher DesiredCapacity
//! (polled every 25 ms). Run with `up_window = "1s"` and with the defaults.
//!
//! ECS: a service of 2 tasks (100 requests/s each at target), the whole
//! fleet's traffic to one rapidscale (`[fleet] view = "central"`), 140
//! requests/s then a 3x step to 420. Measured from the first packet of the
//! step until DescribeServices shows a higher desired count (polled every
//! 25 ms). Run with `stabilization_up = "1s"` and with the defaults.
//!
//! cargo bench --bench reaction [-- --trials N] [--only dynamodb|asg|ecs]
//!
//! Needs moto: uses RAPIDSCALE_TEST_MOTO_URL when set, otherwise starts
//! `.venv/bin/moto_server` (scripts/test installs it).

#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType,
};
use rapidscale::cloud::aws::AwsCloud;
use rapidscale::cloud::Capacity;
use rapidscale::config::AwsConfig;
use rapidscale::series::percentile;

mod common;
use tokio::time::Instant;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn moto() -> (String, Option<Killed>) {
    if let Ok(url) = std::env::var("RAPIDSCALE_TEST_MOTO_URL") {
        return (url, None);
    }
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test once to install moto",
        bin.display()
    );
    let port = free_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (url, Some(Killed(child)))
}

struct Daemon {
    _child: common::Running,
    statsd: SocketAddr,
    api: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Starts the release daemon in apply mode against `moto`, with StatsD and
/// the API on free ports; `body` is the rest of the config.
fn start_daemon(moto: &str, body: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            r#"mode = "apply"
state_dir = "{state}"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[api]
listen = "127.0.0.1:0"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
{body}
"#,
            state = dir.path().display()
        ),
    )
    .unwrap();
    let d = common::start(&config, &[]);
    Daemon {
        statsd: d.statsd.expect("statsd bound"),
        api: d.api.expect("api bound"),
        _child: d,
        _dir: dir,
    }
}

async fn set_capacity(cloud: &Moto, table: &str, wcu: i64) {
    cloud
        .dynamodb
        .update_table()
        .table_name(table)
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(100)
                .write_capacity_units(wcu)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn daemon_sees(api: SocketAddr, wcu: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = reqwest::get(format!("http://{api}/api/v1/status")).await {
            if let Ok(v) = resp.json::<serde_json::Value>().await {
                if v["dynamodb"][0]["ops"][0]["provisioned"].as_u64() == Some(wcu) {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "the daemon never saw {wcu} WCU");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// rapidscale's backend for moto, with the SDK's own clients beside it for
/// what the bench sets up and changes (the backend keeps its clients private).
struct Moto {
    backend: AwsCloud,
    dynamodb: aws_sdk_dynamodb::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    ecs: aws_sdk_ecs::Client,
}

async fn moto_cloud(url: &str) -> Moto {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .load()
        .await;
    Moto {
        backend: AwsCloud::connect(&AwsConfig {
            region: Some("us-east-1".into()),
            endpoint_url: Some(url.to_string()),
            profile: None,
        })
        .await,
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
        ecs: aws_sdk_ecs::Client::new(&sdk),
    }
}

async fn run_variant(moto: &str, name: &str, extra: &str, trials: usize) {
    let cloud = moto_cloud(moto).await;
    let table = format!("reaction-{}-{}", name, std::process::id());
    cloud
        .dynamodb
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(100)
                .write_capacity_units(100)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let body = format!(
        r#"[dynamodb]
poll_interval = "1s"
{extra}
[[dynamodb.tables]]
name = "{table}"
write = {{ target = 0.5, min = 1, max = 10000, metric = "ddb.units{{table:{table},op:write}}" }}"#
    );
    // Each trial gets a fresh daemon, so no trial inherits the windows (or
    // the burst model) of the one before; the sender follows its port.
    let mut d = start_daemon(moto, &body);
    let target = Arc::new(Mutex::new(d.statsd));

    // 100 packets/s; the rate is units/s; the first packet at a new rate stamps `changed_at`.
    let rate = Arc::new(AtomicU64::new(40));
    let changed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let sender = {
        let (rate, changed_at, table, target) = (
            rate.clone(),
            changed_at.clone(),
            table.clone(),
            target.clone(),
        );
        tokio::spawn(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut last_rate = 0;
            loop {
                tick.tick().await;
                let r = rate.load(Ordering::SeqCst);
                let packet = format!("ddb.units:{}|c|#table:{table},op:write", r as f64 / 100.0);
                let to = *target.lock().unwrap();
                let _ = socket.send_to(packet.as_bytes(), to).await;
                if r != last_rate {
                    *changed_at.lock().unwrap() = Some(Instant::now());
                    last_rate = r;
                }
            }
        })
    };
    let mut firsts = Vec::new();
    let mut reactions = Vec::new();
    let (mut missed, mut short) = (0, 0);
    for trial in 0..trials {
        rate.store(40, Ordering::SeqCst);
        if trial > 0 {
            drop(d);
            set_capacity(&cloud, &table, 100).await;
            d = start_daemon(moto, &body);
            *target.lock().unwrap() = d.statsd;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let t_reset = Instant::now();
        set_capacity(&cloud, &table, 100).await;
        daemon_sees(d.api, 100).await;
        if std::env::var_os("REACTION_DEBUG").is_some() {
            eprintln!("reset seen after {:?}", t_reset.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = cloud
            .backend
            .describe_table(&table)
            .await
            .unwrap()
            .provisioned
            .unwrap()
            .write;
        assert_eq!(
            before, 100,
            "steady baseline traffic must not move capacity"
        );
        *changed_at.lock().unwrap() = None;
        rate.store(200, Ordering::SeqCst);
        let mut first = None;
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut last_wcu;
        let reached = loop {
            let t = cloud.backend.describe_table(&table).await.unwrap();
            let wcu = t.provisioned.unwrap().write;
            last_wcu = wcu;
            if wcu > 100 && first.is_none() {
                first = Some(Instant::now());
            }
            if wcu as f64 * 0.5 * 1.1 >= 200.0 {
                break Some(Instant::now());
            }
            if Instant::now() > give_up {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let step_at = changed_at.lock().unwrap().expect("the step was sent");
        let Some(first) = first else {
            println!("reaction/{name}: trial {trial:2}: no increase within 30 s");
            missed += 1;
            continue;
        };
        let first_secs = (first - step_at).as_secs_f64();
        firsts.push(first_secs);
        match reached {
            Some(reached) => {
                let secs = (reached - step_at).as_secs_f64();
                println!(
                    "reaction/{name}: trial {trial:2}: first {first_secs:.3} s, enough {secs:.3} s"
                );
                reactions.push(secs);
            }
            None => {
                println!("reaction/{name}: trial {trial:2}: first {first_secs:.3} s, not enough within 30 s (held at {last_wcu} WCU)");
                short += 1;
            }
        }
    }
    println!("reaction/{name}: {missed} trials without an increase, {short} increased but short of the need after 30 s");
    sender.abort();
    for (what, mut v) in [("first", firsts), ("enough", reactions)] {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "reaction/{name}/{what}: {} trials: p50 {:.3} s, p95 {:.3} s, min {:.3} s, max {:.3} s",
            v.len(),
            percentile(&v, 0.50),
            percentile(&v, 0.95),
            v[0],
            v[v.len() - 1]
        );
    }
}

async fn run_group_variant(moto: &str, name: &str, extra: &str, trials: usize) {
    let cloud = moto_cloud(moto).await;
    let group = format!("reaction-{}-{}", name, std::process::id());
    cloud
        .autoscaling
        .create_launch_configuration()
        .launch_configuration_name(format!("{group}-lc"))
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    cloud
        .autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .launch_configuration_name(format!("{group}-lc"))
        .min_size(1)
        .max_size(20)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    let d = start_daemon(
        moto,
        &format!(
            r#"[asg]
name = "{group}"
target_rps_per_instance = 100
min = 1
max = 20
poll_interval = "1s"
settle = "2s"
stabilization = "1h"
{extra}"#
        ),
    );
    let (statsd, api) = (d.statsd, d.api);

    let fleet = Arc::new(AtomicU64::new(150));
    let changed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let sender = {
        let (fleet, changed_at, group, moto) = (
            fleet.clone(),
            changed_at.clone(),
            group.clone(),
            moto.to_string(),
        );
        tokio::spawn(async move {
            let aws = moto_cloud(&moto).await;
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let (mut serving, mut last_rate, mut n) = (2u64, 0u64, 0u64);
            loop {
                tick.tick().await;
                if n % 50 == 0 {
                    if let Ok(g) = aws.backend.describe_group(&group).await {
                        serving = (g.serving() as u64).max(1);
                    }
                }
                n += 1;
                let r = fleet.load(Ordering::SeqCst);
                let packet = format!("http.requests:{}|c", r as f64 / serving as f64 / 100.0);
                let _ = socket.send_to(packet.as_bytes(), statsd).await;
                if r != last_rate {
                    *changed_at.lock().unwrap() = Some(Instant::now());
                    last_rate = r;
                }
            }
        })
    };
    let mut reactions = Vec::new();
    for trial in 0..trials {
        fleet.store(150, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cloud
            .autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(&group)
            .desired_capacity(2)
            .send()
            .await
            .unwrap();
        // Wait until the daemon sees 2 settled instances, then 3 s of baseline.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: serde_json::Value = reqwest::get(format!("http://{api}/api/v1/status"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["asg"]["desired"] == 2 && v["asg"]["counts"]["serving"] == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never saw the reset group: {:#}",
                v["asg"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            cloud.backend.describe_group(&group).await.unwrap().desired,
            2,
            "steady traffic must not move the group"
        );
        *changed_at.lock().unwrap() = None;
        fleet.store(450, Ordering::SeqCst);
        let give_up = Instant::now() + Duration::from_secs(30);
        let (reached, size) = loop {
            let g = cloud.backend.describe_group(&group).await.unwrap();
            if g.desired > 2 {
                break (Instant::now(), g.desired);
            }
            assert!(
                Instant::now() < give_up,
                "reaction/{name}: trial {trial}: desired stuck at 2"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let step_at = changed_at.lock().unwrap().expect("the step was sent");
        let secs = (reached - step_at).as_secs_f64();
        println!("reaction/asg_{name}: trial {trial:2}: {secs:.3} s to desired {size}");
        reactions.push(secs);
    }
    sender.abort();
    reactions.sort_by(f64::total_cmp);
    println!(
        "reaction/asg_{name}: {} trials: p50 {:.3} s, p95 {:.3} s, min {:.3} s, max {:.3} s",
        reactions.len(),
        percentile(&reactions, 0.50),
        percentile(&reactions, 0.95),
        reactions[0],
        reactions[reactions.len() - 1]
    );
}

async fn run_service_variant(moto: &str, name: &str, extra: &str, trials: usize) {
    use rapidscale::cloud::Capacity;
    let cloud = moto_cloud(moto).await;
    let cluster = format!("reaction-{}-{}", name, std::process::id());
    let service = "web";
    cloud
        .ecs
        .create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    cloud
        .ecs
        .register_task_definition()
        .family("reaction-web")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("nginx")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    cloud
        .ecs
        .create_service()
        .cluster(&cluster)
        .service_name(service)
        .task_definition("reaction-web")
        .desired_count(2)
        .send()
        .await
        .unwrap();
    let d = start_daemon(
        moto,
        &format!(
            r#"[fleet]
view = "central"
[[ecs.services]]
cluster = "{cluster}"
service = "{service}"
target_rps_per_task = 100
min = 1
max = 20
poll_interval = "1s"
settle = "1s"
stabilization_down = "1h"
{extra}"#
        ),
    );
    let (statsd, api) = (d.statsd, d.api);
    let fleet = Arc::new(AtomicU64::new(140));
    let changed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let sender = {
        let (fleet, changed_at) = (fleet.clone(), changed_at.clone());
        tokio::spawn(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut last_rate = 0u64;
            loop {
                tick.tick().await;
                let r = fleet.load(Ordering::SeqCst);
                let packet = format!("http.requests:{}|c", r as f64 / 100.0);
                let _ = socket.send_to(packet.as_bytes(), statsd).await;
                if r != last_rate {
                    *changed_at.lock().unwrap() = Some(Instant::now());
                    last_rate = r;
                }
            }
        })
    };
    let mut reactions = Vec::new();
    for trial in 0..trials {
        fleet.store(140, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cloud
            .backend
            .update_service(&cluster, service, 2)
            .await
            .unwrap();
        // Wait until the daemon sees 2 settled tasks, then 3 s of baseline.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: serde_json::Value = reqwest::get(format!("http://{api}/api/v1/status"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let svc = &v["ecs_services"][0];
            if svc["desired"] == 2 && svc["counts"]["serving"] == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never saw the reset service: {svc:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let desired = || async {
            cloud
                .backend
                .describe_service(&cluster, service)
                .await
                .unwrap()
                .desired
        };
        assert_eq!(
            desired().await,
            2,
            "steady traffic must not move the service"
        );
        *changed_at.lock().unwrap() = None;
        fleet.store(420, Ordering::SeqCst);
        let give_up = Instant::now() + Duration::from_secs(30);
        let (reached, size) = loop {
            let n = desired().await;
            if n > 2 {
                break (Instant::now(), n);
            }
            assert!(
                Instant::now() < give_up,
                "reaction/ecs_{name}: trial {trial}: desired count stuck at 2"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let step_at = changed_at.lock().unwrap().expect("the step was sent");
        let secs = (reached - step_at).as_secs_f64();
        println!("reaction/ecs_{name}: trial {trial:2}: {secs:.3} s to desired count {size}");
        reactions.push(secs);
    }
    sender.abort();
    reactions.sort_by(f64::total_cmp);
    println!(
        "reaction/ecs_{name}: {} trials: p50 {:.3} s, p95 {:.3} s, min {:.3} s, max {:.3} s",
        reactions.len(),
        percentile(&reactions, 0.50),
        percentile(&reactions, 0.95),
        reactions[0],
        reactions[reactions.len() - 1]
    );
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let trials = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (moto_url, _moto) = moto();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    rt.block_on(async {
        if only.is_none() || only.as_deref() == Some("dynamodb") {
            run_variant(&moto_url, "up_window_1s", "up_window = \"1s\"", trials).await;
            run_variant(&moto_url, "defaults", "", trials).await;
            run_variant(&moto_url, "per_second", "burst_share = 0.0", trials).await;
        }
        if only.is_none() || only.as_deref() == Some("asg") {
            run_group_variant(&moto_url, "up_window_1s", "up_window = \"1s\"", trials).await;
            run_group_variant(&moto_url, "defaults", "", trials).await;
        }
        if only.is_none() || only.as_deref() == Some("ecs") {
            let fast = "stabilization_up = \"1s\"";
            run_service_variant(&moto_url, "stabilization_up_1s", fast, trials).await;
            run_service_variant(&moto_url, "defaults", "", trials).await;
        }
    });
}
