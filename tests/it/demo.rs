//! `rapidscale demo`: the daemon on the simulator with built-in traffic, no AWS.

use std::time::Duration;

use crate::harness::Daemon;

#[tokio::test]
async fn demo_scales_the_simulated_world_and_stops_cleanly() {
    // No AWS anywhere: the simulator is the only backend.
    let d = Daemon::start_demo(&["--listen", "127.0.0.1:0", "--surge-every", "20"]).await;
    assert!(
        d.statsd.is_some(),
        "the built-in traffic needs the StatsD port"
    );
    let status = d
        .wait_for_status(Duration::from_secs(60), "an applied increase", |s| {
            s["decisions"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|r| r["resource"] == "posts" && r["outcome"] == "applied")
            })
        })
        .await;
    assert_eq!(status["mode"], "apply");
    // The simulated table really changed: its description shows more than the min.
    let status = d
        .wait_for_status(Duration::from_secs(30), "posts above its min", |s| {
            s["dynamodb"].as_array().is_some_and(|a| {
                a.iter().any(|r| {
                    r["resource"] == "posts"
                        && r["ops"][0]["provisioned"].as_u64().is_some_and(|p| p > 50)
                })
            })
        })
        .await;
    let rate = status["streams"][0]["last_value"].as_f64().unwrap_or(0.0);
    assert!(rate > 0.0, "built-in traffic arrives: {status:#}");
    // The simulated AWS calls are metered like real ones.
    let metrics = d.metrics().await;
    for needle in [
        "rapidscale_aws_calls_total{operation=\"DescribeTable\",outcome=\"ok\"}",
        "rapidscale_aws_calls_total{operation=\"UpdateTable\",outcome=\"ok\"}",
        "rapidscale_dynamodb_capacity_units{table=\"posts\",index=\"\",operation=\"read\",kind=\"provisioned\"}",
        "rapidscale_group_desired_instances{group=\"web\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in:\n{metrics}");
    }
    // Without a token configured, the mode cannot be changed through the API.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/mode", d.api.unwrap()))
        .header("authorization", "Bearer anything")
        .json(&serde_json::json!({"mode": "paused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (exit, took) = d.terminate().await;
    assert!(exit.success(), "{exit:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
