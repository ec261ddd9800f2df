//! One-click approval: a dry-run recommendation applied through
//! `POST /api/v1/recommendations/{id}/apply` against moto's DynamoDB; an
//! older one that is no longer what rapidscale would do gets 409 with the
//! current advice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rapidscale::cloud::Capacity;

use crate::aws::{cloud, create_table, unique};
use crate::harness::{eventually, moto_url, Daemon};

const TOKEN: &str = "s3cret";

async fn read_capacity(table: &str) -> u64 {
    cloud()
        .await
        .describe_table(table)
        .await
        .unwrap()
        .provisioned
        .unwrap()
        .read
}

/// The newest recommendation of `table`: its id and the read capacity it asks for.
async fn newest_recommendation(d: &Daemon, table: &str) -> Option<(String, u64)> {
    let records = d.get_json("/api/v1/decisions?limit=200").await;
    records.as_array()?.iter().find_map(|r| {
        (r["outcome"] == "recommended" && r["resource"] == table && r["reason"].is_null()).then(
            || {
                let to = r["changes"]
                    .as_array()?
                    .iter()
                    .find(|c| c["op"] == "read")?["to"]
                    .as_u64()?;
                Some((r["id"].as_str()?.to_string(), to))
            },
        )?
    })
}

async fn approve(d: &Daemon, id: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut r = reqwest::Client::new().post(format!(
        "http://{}/api/v1/recommendations/{id}/apply",
        d.api.unwrap()
    ));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn an_approved_recommendation_is_applied_and_a_stale_one_is_refused() {
    let table = unique("approve");
    create_table(&cloud().await, &table).await; // read 10
    let config = format!(
        r#"
mode = "dry-run"
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
burst_share = 0.0
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.5, min = 1, max = 5000, per_request = 1 }}
"#,
        moto = moto_url()
    );
    let d = Daemon::start(&config).await;
    let rate = Arc::new(AtomicU64::new(100));
    let statsd = d.statsd.unwrap();
    let r = rate.clone();
    let sender = tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let line = format!("http.requests:{}|c", r.load(Ordering::SeqCst) as f64 / 10.0);
            let _ = socket.send_to(line.as_bytes(), statsd).await;
        }
    });
    let (first, first_to) = eventually(
        Duration::from_secs(15),
        "a recommendation for 100 requests/s",
        || newest_recommendation(&d, &table),
        |r| r.is_some(),
    )
    .await
    .unwrap();
    assert_eq!(read_capacity(&table).await, 10, "dry run changes nothing");
    assert_eq!(approve(&d, &first, None).await.0, 401);
    assert_eq!(approve(&d, "nope", Some(TOKEN)).await.0, 404);

    // Demand quadruples: rapidscale now recommends more; the first is stale.
    rate.store(400, Ordering::SeqCst);
    eventually(
        Duration::from_secs(15),
        "a recommendation for 400 requests/s",
        || newest_recommendation(&d, &table),
        |r| r.as_ref().is_some_and(|(_, to)| *to > first_to * 2),
    )
    .await;
    let (code, body) = approve(&d, &first, Some(TOKEN)).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["current"]["resource"], table.as_str(), "{body}");
    assert_eq!(read_capacity(&table).await, 10);

    // The newest one is applied; per-second demand moves the exact figure,
    // so an approval within 10 % of what rapidscale would set now stands
    // (an operator whose recommendation moved further clicks the new one).
    let mut tries = 0;
    let (second_to, body) = loop {
        let (id, to) = newest_recommendation(&d, &table).await.unwrap();
        let (code, body) = approve(&d, &id, Some(TOKEN)).await;
        if code == 202 {
            break (to, body);
        }
        assert_eq!(code, 409, "{body}");
        tries += 1;
        assert!(tries < 10, "never applied: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!("applied after {tries} refused tries");
    eventually(
        Duration::from_secs(10),
        "the approved capacity",
        || read_capacity(&table),
        |c| *c == second_to,
    )
    .await;
    assert!(
        body["applying"]
            .as_str()
            .unwrap()
            .contains(&format!("read 10 -> {second_to}")),
        "the approved figure, exactly: {body}"
    );
    let records = rapidscale::audit::read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let approved_at = records
        .iter()
        .position(|r| r.service == "approve")
        .expect("the approval is audited");
    let applied = records
        .iter()
        .position(|r| r.outcome == rapidscale::audit::Outcome::Applied && r.service == "dynamodb")
        .expect("the change is audited as in apply mode");
    assert!(approved_at < applied);
    assert!(records
        .iter()
        .any(|r| r.outcome == rapidscale::audit::Outcome::Pending && r.resource == table));
    // The daemon stays in dry-run: nothing else is applied by itself.
    let status = d.get_json("/api/v1/status").await;
    assert_eq!(status["effective_mode"], "dry-run");
    sender.abort();
    d.terminate().await;
}
