//! Fault injection against the real daemon: AWS (moto) killed mid-run and
//! restarted, ingestion gone silent, a full disk under the audit log, and
//! SIGTERM while an UpdateTable is in flight.

use std::time::Duration;

use rapidscale::audit::{read_file, Outcome};
use rapidscale::cloud::aws::AwsCloud;
use rapidscale::cloud::Capacity;

use crate::aws::{create_table, moto_at as cloud_at, unique};
use crate::harness::{eventually, moto_url, Daemon, Load, OwnMoto};

fn config(endpoint: &str, state_dir: &str, table: &str, policy: &str) -> String {
    format!(
        r#"
mode = "apply"
state_dir = "{state_dir}"
[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"
[api]
listen = "127.0.0.1:0"
[ingest]
stale_after = "3s"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[cloudwatch]
observe = false
[dynamodb]
poll_interval = "1s"
burst_share = 0.0
{policy}
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.5, min = 1, max = 1000, per_request = 1 }}
"#
    )
}

async fn read_capacity(cloud: &AwsCloud, table: &str) -> Option<u64> {
    cloud
        .describe_table(table)
        .await
        .ok()
        .and_then(|t| t.provisioned)
        .map(|p| p.read)
}

#[tokio::test]
async fn an_aws_outage_holds_changes_and_recovery_acts_on_fresh_state() {
    let moto = OwnMoto::start(None).await;
    let url = moto.url();
    let table = unique("outage");
    create_table(&cloud_at(&url).await, &table).await; // read 10
    let d = Daemon::start(&config(&url, "{dir}/state", &table, "")).await;
    let load = Load::start(d.statsd.unwrap(), 5);
    eventually(
        Duration::from_secs(20),
        "ready",
        || d.get_text("/readyz"),
        |(s, _)| *s == 200,
    )
    .await;

    // AWS goes away.
    let port = moto.kill().await;
    let (_, why) = eventually(
        Duration::from_secs(15),
        "AWS unavailable in /readyz",
        || d.get_text("/readyz"),
        |(s, body)| *s == 503 && body.contains("AWS unavailable"),
    )
    .await;
    assert!(
        why.contains(&format!("table {table} last described")),
        "{why}"
    );
    // The failure is logged once, in one line: why no answer came, not the
    // SDK's error chain (that is at debug).
    let failed: Vec<String> = d
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["message"] == "AWS call failed; keeping the last known state and retrying.")
        .map(|v| v["error"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!failed.is_empty());
    for e in &failed {
        assert!(
            e.starts_with("cannot reach the endpoint: ") || e == "timed out",
            "{e}"
        );
        assert!(!e.contains("dispatch failure") && !e.contains('\n'), "{e}");
    }
    let m = d.metrics().await;
    assert!(m.contains("rapidscale_ready 0"), "{m}");
    assert!(
        m.contains(&format!(
            "rapidscale_aws_state_age_seconds{{kind=\"table/{table}\"}}"
        )),
        "{m}"
    );

    // A surge during the outage: ingestion and the API go on, the
    // recommendation shows, and nothing is attempted on state that old.
    let surge_at = chrono::Utc::now();
    load.set(100);
    let status = d
        .wait_for_status(
            Duration::from_secs(15),
            "the increase held by the gate",
            |s| {
                s["decisions"].as_array().unwrap().iter().any(|r| {
                    r["outcome"] == "skipped"
                        && r["reason"]
                            .as_str()
                            .is_some_and(|x| x.contains("older than 3 poll intervals"))
                })
            },
        )
        .await;
    let before = status["streams"][0]["last_second"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = d.get_json("/api/v1/status").await;
    assert!(status["streams"][0]["last_second"].as_i64().unwrap() >= before + 2);
    let healthz = reqwest::get(format!("http://{}/healthz", d.api.unwrap()))
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);

    // AWS is back (an empty account: the table is created again at 10).
    let moto = OwnMoto::start(Some(port)).await;
    let cloud = cloud_at(&moto.url()).await;
    create_table(&cloud, &table).await;
    let back = chrono::Utc::now();
    // The poller was backing off: within one capped backoff it describes
    // again, and only then acts, for the surge.
    eventually(
        Duration::from_secs(50),
        "the increase applied after recovery",
        || read_capacity(&cloud, &table),
        |r| r.is_some_and(|r| r >= 150),
    )
    .await;
    let records = read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let attempts: Vec<_> = records
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Pending | Outcome::Applied | Outcome::Failed
            )
        })
        .filter(|r| r.time >= surge_at)
        .collect();
    assert!(!attempts.is_empty());
    assert!(
        attempts.iter().all(|r| r.time >= back),
        "a call was attempted during the outage: {attempts:#?}"
    );
    drop(load);
    d.terminate().await;
    drop(moto);
}

#[tokio::test]
async fn silent_ingestion_holds_and_is_reported_until_traffic_returns() {
    let table = unique("silence");
    let cloud = crate::aws::cloud().await;
    create_table(&cloud, &table).await;
    cloud
        .update_table(
            &table,
            &[rapidscale::cloud::MemberCapacity {
                index: None,
                capacity: rapidscale::cloud::Throughput {
                    read: 400,
                    write: 5,
                },
            }],
        )
        .await
        .unwrap();
    let d = Daemon::start(&config(
        &moto_url(),
        "{dir}/state",
        &table,
        "down_window = \"6s\"\nsmooth = \"6s\"",
    ))
    .await;
    // Some traffic, then none at all: no data is not zero traffic.
    let load = Load::start(d.statsd.unwrap(), 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(load);
    let (_, why) = eventually(
        Duration::from_secs(15),
        "silence in /readyz",
        || d.get_text("/readyz"),
        |(s, body)| *s == 503 && body.contains("ingestion silent"),
    )
    .await;
    assert!(why.contains("holding, no scale-in"), "{why}");
    assert!(d
        .metrics()
        .await
        .contains("rapidscale_stream_stale{stream=\"statsd\"} 1"));
    // Far past the down window: capacity stays where it was.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(read_capacity(&cloud, &table).await, Some(400));
    let status = d.get_json("/api/v1/status").await;
    let verdict = &status["dynamodb"][0]["ops"][0]["verdict"];
    assert_eq!(verdict["verdict"], "hold", "{verdict}");

    // The same low traffic, now present: the decrease the silence held back.
    let load = Load::start(d.statsd.unwrap(), 20);
    eventually(
        Duration::from_secs(30),
        "the decrease on real low traffic",
        || read_capacity(&cloud, &table),
        |r| r.is_some_and(|r| r < 400),
    )
    .await;
    assert_eq!(d.get_text("/readyz").await.0, 200);
    drop(load);
    d.terminate().await;
}

#[tokio::test]
async fn a_full_disk_under_the_audit_log_means_recommending_only() {
    let table = unique("diskfull");
    let cloud = crate::aws::cloud().await;
    create_table(&cloud, &table).await; // read 10
    let state = tempfile::tempdir().unwrap();
    // Every write to the audit log fails with ENOSPC, as on a full disk.
    std::os::unix::fs::symlink("/dev/full", state.path().join("audit.jsonl")).unwrap();
    let d = Daemon::start(&config(
        &moto_url(),
        &state.path().display().to_string(),
        &table,
        "",
    ))
    .await;
    let load = Load::start(d.statsd.unwrap(), 100);
    let status = d
        .wait_for_status(Duration::from_secs(20), "the increase recommended", |s| {
            s["dynamodb"][0]["plan"]["plan"] == "update"
        })
        .await;
    // The first write attempt fails; from then on the gate says why.
    let status = if status["dynamodb"][0]["gate"].is_null() {
        d.wait_for_status(Duration::from_secs(10), "the audit gate", |s| {
            s["dynamodb"][0]["gate"]
                .as_str()
                .is_some_and(|g| g.contains("audit log unavailable"))
        })
        .await
    } else {
        status
    };
    let gate = status["dynamodb"][0]["gate"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(gate.contains("No space left on device"), "{gate}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        read_capacity(&cloud, &table).await,
        Some(10),
        "changed without an audit record"
    );
    let (code, why) = d.get_text("/readyz").await;
    assert_eq!(code, 503);
    assert!(why.contains("audit log unavailable"), "{why}");
    assert!(d.metrics().await.contains("rapidscale_audit_writable 0"));
    drop(load);
    let (exit, _) = d.terminate().await;
    assert!(exit.success());
}

/// A TCP proxy to moto that holds every UpdateTable request for `delay`
/// and reports when one arrives.
async fn slow_update_proxy(
    upstream: String,
    delay: Duration,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let upstream = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if buf[..n]
                            .windows(27)
                            .any(|w| w == b"DynamoDB_20120810.UpdateTab")
                        {
                            let _ = tx.send(());
                            tokio::time::sleep(delay).await;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                up.abort();
            });
        }
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test]
async fn sigterm_lets_an_update_in_flight_finish_and_be_audited() {
    let table = unique("inflight");
    let cloud = crate::aws::cloud().await;
    create_table(&cloud, &table).await; // read 10
                                        // Longer than the usual 1.5 s drain, shorter than the 6 s call grace.
    let hold = Duration::from_millis(3000);
    let (proxy, mut seen) = slow_update_proxy(moto_url(), hold).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().to_path_buf();
    let d = Daemon::start(&config(&proxy, &state.display().to_string(), &table, "")).await;
    let load = Load::start(d.statsd.unwrap(), 100);
    tokio::time::timeout(Duration::from_secs(20), seen.recv())
        .await
        .expect("an UpdateTable")
        .unwrap();
    // Stop in stages: ingestion first, while the call is held.
    let started = tokio::time::Instant::now();
    d.signal_term();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let accepted = |s: &serde_json::Value| {
        s["ingest"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["source"] == "statsd")
            .unwrap()["accepted"]
            .as_u64()
            .unwrap()
    };
    // The API still answers while the call is in flight ...
    let before = accepted(&d.get_json("/api/v1/status").await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = accepted(&d.get_json("/api/v1/status").await);
    // ... and ingestion has stopped although traffic keeps coming.
    assert_eq!(before, after, "StatsD still accepted after the stop signal");
    assert!(d.logged("Stage stopped."));
    let mut d = d;
    let exit = tokio::time::timeout(Duration::from_secs(10), d.child.wait())
        .await
        .expect("daemon exits")
        .unwrap();
    let took = started.elapsed();
    drop(load);
    assert!(exit.success());
    assert!(
        took >= hold.saturating_sub(Duration::from_millis(500)) && took < Duration::from_secs(8),
        "stopped after {took:?}"
    );
    let stages: Vec<String> = d
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l["message"] == "Stage stopped.")
        .map(|l| l["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stages, ["ingest", "deciding", "api", "audit"]);
    // The call went through, and its completion is on disk.
    assert!(read_capacity(&cloud, &table).await.unwrap() > 10);
    let records = read_file(&state.join("audit.jsonl")).unwrap();
    let pending: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Pending)
        .collect();
    assert!(!pending.is_empty());
    for p in pending {
        assert!(
            records
                .iter()
                .any(|r| r.id == p.id && r.outcome == Outcome::Applied),
            "no completed record for {p:?}: {records:#?}"
        );
    }
}
