//! The two figures of the people-facing paths, against moto on loopback:
//!
//! - announcement -> capacity: a table at 10 RCU (`per_request = 1`,
//!   target 0.5), quiet; `POST /api/v1/announce` of 400 requests/s
//!   starting now. Measured from the POST's answer until DescribeTable
//!   (polled every 25 ms) shows 800 RCU. Each trial puts the table back
//!   to 10 RCU and cancels the announcement first.
//! - recommendation -> notification: a dry-run daemon with a webhook
//!   target on a local receiver (`coalesce = "1s"`), traffic stepped to a
//!   new level each trial. Measured from the recommendation's audit
//!   record time (in the body) until the receiver has the body.
//!
//! cargo bench --bench people [-- --trials N]
//!
//! Needs moto: uses RAPIDSCALE_TEST_MOTO_URL when set, otherwise starts
//! `.venv/bin/moto_server` (scripts/test installs it).

#![allow(clippy::disallowed_methods)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType,
};
use rapidscale::series::percentile;
use tokio::time::Instant;

mod common;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn moto() -> (String, Option<Killed>) {
    if let Ok(url) = std::env::var("RAPIDSCALE_TEST_MOTO_URL") {
        return (url, None);
    }
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test once",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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

async fn dynamodb(url: &str) -> aws_sdk_dynamodb::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::new(
            "b", "b", None, None, "bench",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

async fn table_at(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    let s = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    ddb.create_table()
        .table_name(name)
        .attribute_definitions(s("id"))
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .provisioned_throughput(throughput(10))
        .send()
        .await
        .unwrap();
}

fn throughput(read: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(5)
        .build()
        .unwrap()
}

async fn read_capacity(ddb: &aws_sdk_dynamodb::Client, table: &str) -> i64 {
    ddb.describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table()
        .and_then(|t| t.provisioned_throughput())
        .and_then(|p| p.read_capacity_units())
        .unwrap_or(0)
}

fn config(dir: &std::path::Path, moto: &str, mode: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join("bench.toml");
    std::fs::write(
        &path,
        format!(
            r#"mode = "{mode}"
state_dir = "{state}"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[api]
listen = "127.0.0.1:0"
token = "bench"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
{body}
"#,
            state = dir.display()
        ),
    )
    .unwrap();
    path
}

/// Bodies the receiver got, with when.
type Received = Arc<Mutex<Vec<(serde_json::Value, chrono::DateTime<chrono::Utc>)>>>;

fn report(name: &str, values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} median {:.3}s p90 {:.3}s max {:.3}s",
        values.len(),
        percentile(values, 0.5),
        percentile(values, 0.9),
        values[values.len() - 1]
    );
}

async fn announce_to_capacity(moto: &str, trials: usize) {
    let ddb = dynamodb(moto).await;
    let table = format!("announce-{}", std::process::id());
    table_at(&ddb, &table).await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[dynamodb]\npoll_interval = \"1s\"\n[[dynamodb.tables]]\nname = \"{table}\"\nread = {{ target = 0.5, min = 1, max = 5000, per_request = 1 }}\n"
    );
    let d = common::start(&config(dir.path(), moto, "apply", &body), &[]);
    let api = d.api.unwrap();
    let http = reqwest::Client::new();
    let mut took = Vec::new();
    for _ in 0..trials {
        ddb.update_table()
            .table_name(&table)
            .provisioned_throughput(throughput(10))
            .send()
            .await
            .unwrap();
        // Let the daemon see 10 RCU again (its poll is 1 s).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let r: serde_json::Value = http
            .post(format!("http://{api}/api/v1/announce"))
            .bearer_auth("bench")
            .json(&serde_json::json!({"rps": 400, "for": "10m"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sent = Instant::now();
        let id = r["id"].as_str().unwrap().to_string();
        loop {
            if read_capacity(&ddb, &table).await >= 800 {
                took.push(sent.elapsed().as_secs_f64());
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "no capacity after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        http.delete(format!("http://{api}/api/v1/announcements/{id}"))
            .bearer_auth("bench")
            .send()
            .await
            .unwrap();
    }
    report("announcement -> capacity in place", &mut took);
}

async fn recommendation_to_notification(moto: &str, trials: usize) {
    let ddb = dynamodb(moto).await;
    let table = format!("notify-{}", std::process::id());
    table_at(&ddb, &table).await;
    let got: Received = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let store = store.clone();
        async move {
            let at = chrono::Utc::now();
            if let Ok(v) = serde_json::from_slice(&body) {
                store.lock().unwrap().push((v, at));
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[dynamodb]\npoll_interval = \"1s\"\nburst_share = 0.0\n[[dynamodb.tables]]\nname = \"{table}\"\nread = {{ target = 0.5, min = 1, max = 50000, per_request = 1 }}\n[[notify]]\nkind = \"webhook\"\nurl = \"http://{hook}/\"\ncoalesce = \"1s\"\nmax_per_minute = 600\nevents = [\"recommendation\"]\n"
    );
    let d = common::start(&config(dir.path(), moto, "dry-run", &body), &[]);
    let statsd = d.statsd.unwrap();
    let rate = Arc::new(AtomicU64::new(20));
    let r = rate.clone();
    let sender = tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            let line = format!(
                "http.requests:{}|c",
                r.load(Ordering::SeqCst) as f64 / 100.0
            );
            let _ = socket.send_to(line.as_bytes(), statsd).await;
        }
    });
    let mut took = Vec::new();
    for i in 0..trials {
        let seen = got.lock().unwrap().len();
        // Each trial a new level, up and down: a new recommendation.
        rate.store(if i % 2 == 0 { 2000 } else { 20 }, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let first_new = got.lock().unwrap().get(seen).cloned();
            if let Some((body, at)) = first_new {
                let decided =
                    chrono::DateTime::parse_from_rfc3339(body["record"]["time"].as_str().unwrap())
                        .unwrap();
                took.push((at - decided.with_timezone(&chrono::Utc)).as_seconds_f64());
                break;
            }
            assert!(Instant::now() < deadline, "no notification after 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Past the coalescing window before the next level.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    sender.abort();
    report("recommendation -> notification", &mut took);
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
    rt.block_on(async {
        announce_to_capacity(&moto_url, trials).await;
        recommendation_to_notification(&moto_url, trials).await;
    });
}
