//! The HTTP API beyond /api/v1/status: readiness, decisions, HTTP ingest,
//! Server-Sent Events, errors, and the token rule for non-loopback binds.

use std::process::Command;
use std::time::Duration;

use crate::harness::{bin, eventually, moto_url, stream_total, Daemon};

const PLAIN: &str = r#"
state_dir = "{dir}/state"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[api]
listen = "127.0.0.1:0"
"#;

fn url(d: &Daemon, path: &str) -> String {
    format!("http://{}{}", d.api.unwrap(), path)
}

#[tokio::test]
async fn readyz_waits_for_the_first_describe_and_says_why() {
    let d = Daemon::start(PLAIN).await;
    let ok = reqwest::get(url(&d, "/readyz")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    d.terminate().await;

    // A table moto does not have is never described: 503 with the reason.
    let config = format!(
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
[dynamodb]
poll_interval = "1s"
[[dynamodb.tables]]
name = "no-such-table-for-readyz"
read = {{ target = 0.7, min = 1, max = 10, per_request = 1 }}
"#,
        moto = moto_url()
    );
    let d = Daemon::start(&config).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = reqwest::get(url(&d, "/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("table no-such-table-for-readyz has not been described yet"),
        "{msg}"
    );
    d.terminate().await;
}

#[tokio::test]
async fn http_ingest_counts_lines_and_refuses_large_bodies() {
    let d = Daemon::start(PLAIN).await;
    let client = reqwest::Client::new();
    let body = "http.requests:1|c\n".repeat(250) + "garbage\nhttp.requests:10|c|@0.5\n";
    let r = client
        .post(url(&d, "/api/v1/ingest"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["accepted"],
        251
    );
    // 250 + 10 / 0.5 = 270 requests, sealed after the grace window.
    crate::harness::eventually(
        Duration::from_secs(6),
        "ingested requests",
        || stream_total(&d, "statsd", 10),
        |total| *total >= 270.0,
    )
    .await;
    let status = d.get_json("/api/v1/status").await;
    let http = status["ingest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"] == "http_ingest")
        .expect("http_ingest counters")
        .clone();
    assert_eq!(
        http["dropped"],
        serde_json::json!([["no_value", 1]]),
        "{http}"
    );

    let big = vec![b'x'; (1 << 20) + 1];
    let r = client
        .post(url(&d, "/api/v1/ingest"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("larger than 1048576 bytes"),
        "{e}"
    );
    d.terminate().await;
}

#[tokio::test]
async fn decisions_filter_by_time_and_errors_are_json() {
    let d = Daemon::start(PLAIN).await;
    let all: serde_json::Value = reqwest::get(url(&d, "/api/v1/decisions?limit=5"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        all.as_array().unwrap().is_empty(),
        "no table, no decision: {all}"
    );
    let future = reqwest::get(url(&d, "/api/v1/decisions?since=2999-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(future.status(), 200);
    for (path, code, needle) in [
        ("/api/v1/decisions?since=yesterday", 400, "is not RFC 3339"),
        (
            "/api/v1/decisions?limit=0",
            400,
            "limit must be in 1..=10000",
        ),
        ("/api/v1/series?stream=nope", 404, "unknown stream"),
        // Found by the property tests: query rejections were plain text.
        ("/api/v1/series", 400, "missing field `stream`"),
        ("/api/v1/decisions?limit=x", 400, "invalid digit"),
        ("/no/such/thing", 404, "no such endpoint"),
    ] {
        let r = reqwest::get(url(&d, path)).await.unwrap();
        assert_eq!(r.status(), code, "{path}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().contains(needle), "{path}: {e}");
    }
    d.terminate().await;
}

#[tokio::test]
async fn the_stream_sends_one_event_per_second() {
    let d = Daemon::start(PLAIN).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut r = reqwest::get(url(&d, "/api/v1/stream")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let started = tokio::time::Instant::now();
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < 3 {
        sock.send_to(b"http.requests:5|c", d.statsd.unwrap())
            .await
            .unwrap();
        let chunk = tokio::time::timeout(Duration::from_secs(3), r.chunk())
            .await
            .expect("an event within 3 s")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                assert!(event.starts_with("event: tick"), "{event}");
                events.push(serde_json::from_str::<serde_json::Value>(data).unwrap());
            }
        }
    }
    // Three events take about two seconds: one per second, not faster.
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    let last = &events[2];
    assert_eq!(last["streams"][0]["stream"], "statsd");
    assert!(last["streams"][0]["second"].is_i64(), "{last}");
    d.terminate().await;
}

#[test]
fn a_public_listen_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("public.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}/state\"\n[ingest.statsd]\nlisten = \"127.0.0.1:0\"\nrequests = [\"http.requests\"]\n[api]\nlisten = \"0.0.0.0:0\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config"])
        .arg(&path)
        .env_remove("RAPIDSCALE_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api.listen: 0.0.0.0:0 is not a loopback address: set api.token"),
        "{err}"
    );
    let out = Command::new(bin())
        .args(["check-config"])
        .arg(&path)
        .env("RAPIDSCALE_API_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let d = Daemon::start(PLAIN).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..30 {
        sock.send_to(b"http.requests:3|c\nhttp.requests:x|c", d.statsd.unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = crate::harness::eventually(
        Duration::from_secs(5),
        "a sealed second in /metrics",
        || d.metrics(),
        |b: &String| b.contains("rapidscale_requests_per_second{stream=\"statsd\"}"),
    )
    .await;
    for needle in [
        "# TYPE rapidscale_requests_per_second gauge",
        "rapidscale_ingest_accepted_total{source=\"statsd\"} 30",
        "rapidscale_ingest_dropped_total{source=\"statsd\",reason=\"bad_value\"} 30",
        "# TYPE rapidscale_data_age_seconds gauge",
        "rapidscale_mode{mode=\"dry-run\"} 1",
        "# EOF",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in:\n{body}");
    }
    d.terminate().await;
}

#[tokio::test]
async fn mode_changes_need_the_token_and_are_audited() {
    let config = format!("{PLAIN}token = \"s3cret\"\n");
    let d = Daemon::start(&config).await;
    let client = reqwest::Client::new();
    let post = |auth: Option<&'static str>, body: &'static str| {
        let mut r = client
            .post(url(&d, "/api/v1/mode"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let r = post(None, r#"{"mode":"paused"}"#).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let r = post(Some("Bearer wrong"), r#"{"mode":"paused"}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(Some("Bearer s3cret"), r#"{"mode":"sideways"}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = post(
        Some("Bearer s3cret"),
        r#"{"mode":"apply","resource":"nope"}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = post(Some("Bearer s3cret"), r#"{"mode":"paused"}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["mode"].as_str(), v["was"].as_str()),
        (Some("paused"), Some("dry-run"))
    );
    let status = d.get_json("/api/v1/status").await;
    assert_eq!(status["effective_mode"], "paused");
    assert_eq!(status["mode_overrides"]["global"], "paused");
    let audited = status["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["service"] == "mode" && r["resource"] == "*" && r["outcome"] == "applied");
    assert!(audited, "{status:#}");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("rapidscale_mode{mode=\"paused\"} 1"),
        "{metrics}"
    );
    d.terminate().await;
}

#[tokio::test]
async fn readyz_waits_for_every_source_to_be_up() {
    let d = Daemon::start(
        r#"
state_dir = "{dir}/state"
[[ingest.access_log]]
path = "{dir}/access.log"
[api]
listen = "127.0.0.1:0"
"#,
    )
    .await;
    let r = reqwest::get(url(&d, "/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("ingestion source access_log:access_log is not up"),
        "{e}"
    );
    // The log appears: the follower opens it and the daemon is ready.
    let dir = d.state_dir().parent().unwrap().to_path_buf();
    std::fs::write(dir.join("access.log"), "").unwrap();
    crate::harness::eventually(
        Duration::from_secs(5),
        "readiness once the log exists",
        || d.get_text("/readyz"),
        |(code, _)| *code == 200,
    )
    .await;
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("rapidscale_ingest_source_up{source=\"access_log:access_log\"} 1"),
        "{metrics}"
    );
    d.terminate().await;
}

#[tokio::test]
async fn event_streams_are_bounded_and_a_closed_one_frees_its_place() {
    let d = Daemon::start(PLAIN).await;
    let client = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..rapidscale::api::MAX_STREAMS {
        let r = client.get(url(&d, "/api/v1/stream")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = client.get(url(&d, "/api/v1/stream")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    let e: serde_json::Value = refused.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("event streams are open already"),
        "{e}"
    );
    // The rest of the API still answers.
    assert_eq!(
        reqwest::get(url(&d, "/healthz")).await.unwrap().status(),
        200
    );
    drop(open.pop());
    eventually(
        Duration::from_secs(10),
        "a place freed",
        || async {
            client
                .get(url(&d, "/api/v1/stream"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        },
        |s| *s == 200,
    )
    .await;
    drop(open);
    d.terminate().await;
}
