//! Announced surges end to end: `POST /api/v1/announce` and `rapidscale
//! announce` against the daemon, moto's DynamoDB behind it, and the
//! coordination table carrying an announcement from the sidecar that
//! received it to the others.

use std::time::Duration;

use rapidscale::cloud::Coordination;

use crate::aws::{cloud, create_table, unique};
use crate::harness::{bin, moto_url, Daemon};

const TOKEN: &str = "s3cret";

fn config(table: &str, extra: &str) -> String {
    format!(
        r#"
mode = "apply"
state_dir = "{{dir}}/state"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[api]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[dynamodb]
poll_interval = "1s"
update_time = "5s"
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.5, min = 1, max = 2000, per_request = 1 }}
{extra}"#,
        moto = moto_url()
    )
}

async fn post(d: &Daemon, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}{path}", d.api.unwrap()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn steady(statsd: std::net::SocketAddr, per_second: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let line = format!("http.requests:{}|c", per_second as f64 / 10.0);
            let _ = socket.send_to(line.as_bytes(), statsd).await;
        }
    })
}

async fn read_capacity(table: &str) -> u64 {
    use rapidscale::cloud::Capacity;
    cloud()
        .await
        .describe_table(table)
        .await
        .unwrap()
        .provisioned
        .unwrap()
        .read
}

#[tokio::test]
async fn an_announced_surge_finds_its_capacity_in_place_before_it_starts() {
    let table = unique("announce");
    create_table(&cloud().await, &table).await; // read 10
    let d = Daemon::start(&config(&table, "")).await;
    let traffic = steady(d.statsd.unwrap(), 4);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = read_capacity(&table).await;
    assert!(before < 100, "quiet traffic keeps capacity low: {before}");

    // Without the token: refused, nothing announced.
    let anon = reqwest::Client::new()
        .post(format!("http://{}/api/v1/announce", d.api.unwrap()))
        .json(&serde_json::json!({"in": "30s", "rps": 400, "for": "1m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    let (code, err) = post(
        &d,
        "/api/v1/announce",
        serde_json::json!({"rps": 400, "times": 2, "for": "1m"}),
    )
    .await;
    assert_eq!(code, 400, "{err}");
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("exactly one of rps and times"));

    // 400 requests/s x 1 unit at target 0.5: 800 read units, in place
    // 2 x update_time (10 s) before the surge, which starts in 20 s.
    let sent = tokio::time::Instant::now();
    let (code, a) = post(
        &d,
        "/api/v1/announce",
        serde_json::json!({"in": "20s", "rps": 400, "for": "1m", "note": "push campaign"}),
    )
    .await;
    assert_eq!(code, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_string();
    let start = chrono::DateTime::parse_from_rfc3339(a["start"].as_str().unwrap()).unwrap();
    let raised = loop {
        let c = read_capacity(&table).await;
        if c >= 800 {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(25),
            "capacity still {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let in_place_at = chrono::Utc::now();
    assert!(
        in_place_at < start,
        "capacity in place {:.1}s before the surge started",
        (start.with_timezone(&chrono::Utc) - in_place_at).as_seconds_f64()
    );
    // Not earlier than its lead: nothing is spent on capacity long before.
    assert!(raised >= Duration::from_secs(8), "raised after {raised:?}");
    println!(
        "announcement -> capacity in place: {:.2}s after the call, {:.2}s before the surge",
        raised.as_secs_f64(),
        (start.with_timezone(&chrono::Utc) - in_place_at).as_seconds_f64()
    );
    let status = d.get_json("/api/v1/status").await;
    assert_eq!(status["announcements"][0]["id"], id.as_str());
    let records = rapidscale::audit::read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    assert!(records.iter().any(|r| r.service == "announce"
        && r.resource == id
        && r.reason
            .as_deref()
            .is_some_and(|why| why.contains("push campaign"))));
    assert!(
        records
            .iter()
            .any(|r| r.changes.iter().any(|c| c.rule == "announced")),
        "the increase names the announcement's rule"
    );

    // The CLI lists and cancels it, with the config's token.
    let config_file = d.state_dir().parent().unwrap().join("rapidscale.toml");
    let url = format!("http://{}", d.api.unwrap());
    let cli = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(["announce", "--config"])
            .arg(&config_file)
            .args(["--url", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let listed = cli(&["--list"]);
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    let cancelled = cli(&["--cancel", &id]);
    assert!(
        cancelled.status.success(),
        "{}",
        String::from_utf8_lossy(&cancelled.stderr)
    );
    let list = d.get_json("/api/v1/announcements").await;
    assert!(list[0]["cancelled_at"].is_string(), "{list}");
    let by_cli = cli(&["--in", "1h", "--times", "3", "--for", "10m"]);
    assert!(
        by_cli.status.success(),
        "{}",
        String::from_utf8_lossy(&by_cli.stderr)
    );
    let list = d.get_json("/api/v1/announcements").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let bad = cli(&["--rps", "5"]);
    assert!(!bad.status.success(), "--for is required");
    traffic.abort();
    d.terminate().await;
}

#[tokio::test]
async fn an_announcement_received_by_any_sidecar_reaches_every_one() {
    let table = unique("annfleet");
    cloud()
        .await
        .ensure_coordination_table(&table)
        .await
        .unwrap();
    let config = |id: &str| {
        format!(
            r#"
state_dir = "{{dir}}/state"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[api]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[coordination]
table = "{table}"
cluster = "{table}"
instance_id = "{id}"
"#,
            moto = moto_url()
        )
    };
    let a = Daemon::start(&config("i-1")).await;
    let b = Daemon::start(&config("i-2")).await;
    let (code, ann) = post(
        &a,
        "/api/v1/announce",
        serde_json::json!({"in": "10m", "rps": 1000, "for": "5m"}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(ann["received_by"], "i-1");
    let id = ann["id"].as_str().unwrap();
    crate::harness::eventually(
        Duration::from_secs(15),
        "the announcement on the other sidecar",
        || b.get_json("/api/v1/announcements"),
        |l| {
            l.as_array()
                .is_some_and(|l| l.iter().any(|x| x["id"] == id))
        },
    )
    .await;
    // A cancellation at the other sidecar comes back too.
    let r = reqwest::Client::new()
        .delete(format!(
            "http://{}/api/v1/announcements/{id}",
            b.api.unwrap()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    crate::harness::eventually(
        Duration::from_secs(15),
        "the cancellation on the first sidecar",
        || a.get_json("/api/v1/announcements"),
        |l| l[0]["cancelled_at"].is_string(),
    )
    .await;
    a.terminate().await;
    b.terminate().await;
}
