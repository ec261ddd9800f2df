//! Notifications end to end: a dry-run daemon recommends, and a local
//! HTTP receiver gets the Slack-compatible and the generic webhook's
//! bodies, moto's SNS delivers the topic's message to the same receiver
//! over an HTTP subscription, and a dead target is retried and counted
//! without holding anything up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::aws::{cloud, create_table, unique};
use crate::harness::{eventually, moto_url, Daemon};

/// What the receiver got: path, body, and when it arrived.
type Received = Arc<Mutex<Vec<(String, serde_json::Value, chrono::DateTime<chrono::Utc>)>>>;

async fn receiver() -> (std::net::SocketAddr, Received) {
    let got: Received = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let store = store.clone();
        async move {
            let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into())
            });
            store
                .lock()
                .unwrap()
                .push((uri.path().to_string(), json, chrono::Utc::now()));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

fn at_path(got: &Received, path: &str) -> Vec<(serde_json::Value, chrono::DateTime<chrono::Utc>)> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, j, t)| (j.clone(), *t))
        .collect()
}

#[tokio::test]
async fn a_recommendation_reaches_slack_a_webhook_and_sns_once_per_surge() {
    let table = unique("notify");
    let moto = cloud().await;
    create_table(&moto, &table).await; // read 10
    let (addr, got) = receiver().await;
    let topic = moto
        .sns
        .create_topic()
        .name(&table)
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    moto.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(format!("http://{addr}/sns"))
        .send()
        .await
        .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        r#"
mode = "dry-run"
state_dir = "{{dir}}/state"
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
read = {{ target = 0.5, min = 1, max = 5000, per_request = 1 }}
[[notify]]
kind = "slack"
url = "http://{addr}/slack"
link = "https://rapidscale.example.com"
[[notify]]
kind = "webhook"
url = "http://{addr}/hook"
coalesce = "4s"
[[notify]]
kind = "sns"
topic_arn = "{topic}"
[[notify]]
name = "dead"
kind = "webhook"
url = "http://{dead}/nobody"
"#,
        moto = moto_url()
    );
    let d = Daemon::start(&config).await;
    let statsd = d.statsd.unwrap();
    let sender = tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let started = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            // A surge that keeps growing: the recommendation changes every
            // few seconds, and each target still gets one message per window.
            let rate = 50.0 + started.elapsed().as_secs_f64() * 20.0;
            let line = format!("http.requests:{}|c", rate / 10.0);
            let _ = socket.send_to(line.as_bytes(), statsd).await;
        }
    });
    let hook = eventually(
        Duration::from_secs(20),
        "the webhook's recommendation",
        || async { at_path(&got, "/hook") },
        |v| !v.is_empty(),
    )
    .await;
    let (body, arrived) = &hook[0];
    assert_eq!(body["event"], "recommendation", "{body}");
    assert_eq!(body["resource"], table.as_str());
    let id = body["record"]["id"].as_str().unwrap();
    assert!(body["apply"]["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/v1/recommendations/{id}/apply")));
    let decided = chrono::DateTime::parse_from_rfc3339(body["record"]["time"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    println!(
        "recommendation -> webhook: {:.3}s",
        (*arrived - decided).as_seconds_f64()
    );
    let slack = eventually(
        Duration::from_secs(10),
        "the Slack message",
        || async { at_path(&got, "/slack") },
        |v| !v.is_empty(),
    )
    .await;
    let text = slack[0].0["text"].as_str().unwrap();
    assert!(text.contains("recommends read"), "{text}");
    assert!(
        text.contains("<https://rapidscale.example.com/#rec-"),
        "the link to review and apply: {text}"
    );
    let sns = eventually(
        Duration::from_secs(10),
        "the SNS delivery",
        || async { at_path(&got, "/sns") },
        |v| !v.is_empty(),
    )
    .await;
    let envelope = &sns[0].0;
    assert_eq!(envelope["TopicArn"], topic.as_str(), "{envelope}");
    let message: serde_json::Value =
        serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["event"], "recommendation");
    assert_eq!(
        envelope["Subject"],
        format!("rapidscale recommendation: {table}")
    );

    // The surge goes on for 8 s more: the 4 s webhook gets a follow-up or
    // two, never one message per recommendation.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let recommendations = rapidscale::audit::read_file(&d.state_dir().join("audit.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.outcome == rapidscale::audit::Outcome::Recommended)
        .count();
    let hooks = at_path(&got, "/hook");
    assert!(
        hooks.len() >= 2 && hooks.len() <= 1 + 12 / 4 + 1,
        "{} webhook messages for {recommendations} recommendations",
        hooks.len()
    );
    assert!(
        recommendations > hooks.len(),
        "{recommendations} recommendations were folded"
    );
    assert!(hooks[1..]
        .iter()
        .all(|(b, _)| b["folded"].as_u64().is_some()));
    let slack_count = at_path(&got, "/slack").len();
    assert!(
        slack_count <= 2,
        "one message and at most one follow-up in a 60 s window: {slack_count}"
    );

    // The dead target: retried, counted as failed, and it held nothing up.
    let metrics = eventually(
        Duration::from_secs(15),
        "the dead target's failure",
        || d.metrics(),
        |m| m.contains(r#"rapidscale_notifications_total{target="dead",outcome="failed"} 1"#),
    )
    .await;
    assert!(
        metrics.contains(r#"rapidscale_notifications_total{target="dead",outcome="retried"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"rapidscale_notifications_total{target="slack-0",outcome="sent"}"#));
    // Ingestion goes silent: told once when it starts (decisions hold).
    sender.abort();
    let silent = eventually(
        Duration::from_secs(20),
        "the ingestion-silent event",
        || async { at_path(&got, "/hook") },
        |v| v.iter().any(|(b, _)| b["event"] == "ingestion_silent"),
    )
    .await;
    let told: Vec<_> = silent
        .iter()
        .filter(|(b, _)| b["event"] == "ingestion_silent")
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].0["summary"]
            .as_str()
            .unwrap()
            .starts_with("ingestion silent: no sample on"),
        "{:?}",
        told[0]
    );
    assert_eq!(told[0].0["resolved"], false);
    d.terminate().await;
}
