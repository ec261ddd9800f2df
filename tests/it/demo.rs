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

/// Ten simulated minutes of the demo's fleet, with two surges: every
/// InService instance runs its own sidecar, the leader decides on the
/// fleet's total from their heartbeats, and the group follows demand: it
/// never runs to its max, and settles near demand / target_rps_per_instance.
#[test]
fn the_demo_fleet_follows_demand_and_never_runs_to_its_max() {
    use std::sync::{Arc, Mutex};

    use rapidscale::clock::{SharedClock, TokioClock};
    use rapidscale::config::Config;
    use rapidscale::demo::{simulate, DemoOptions, FleetSecond, Transport, DEMO_CONFIG};

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse("demo.toml", DEMO_CONFIG).unwrap();
    config.state_dir = dir.path().to_path_buf();
    if let Some(api) = &mut config.api {
        api.listen = "127.0.0.1:0".parse().unwrap();
    }
    let asg = config.asg.clone().unwrap();
    let target = asg.hours[0].target_rps_per_instance;
    let group_max = asg.hours[0].max;
    let seconds: Arc<Mutex<Vec<FleetSecond>>> = Arc::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let start = chrono::DateTime::from_timestamp(1_764_403_200, 0).unwrap();
        let clock: SharedClock = Arc::new(TokioClock::starting_at(start));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(600)).await;
            stop.cancel();
        });
        let sink = seconds.clone();
        simulate(
            config,
            DemoOptions::default(),
            clock,
            Transport::InProcess,
            None,
            shutdown,
            |_| {},
            move |s| sink.lock().unwrap().push(s),
        )
        .await
        .unwrap();
    });
    let seconds = seconds.lock().unwrap();
    assert!(seconds.len() >= 590, "{} seconds", seconds.len());
    let peak = seconds.iter().map(|s| s.desired).max().unwrap();
    assert!(peak < group_max, "the group ran to its max ({peak})");
    // Every InService instance got a sidecar.
    assert!(seconds.iter().skip(30).all(|s| s.sidecars == s.in_service));
    // Follows demand: never more than the busiest second of the
    // stabilization window (5 minutes) needs, with 20 % for the noise of
    // sampled StatsD lines and one instance of rounding.
    let needs = |rate: f64| (rate / target * 1.1).ceil() as u32;
    for (i, s) in seconds.iter().enumerate().skip(30) {
        let busiest = seconds[i.saturating_sub(300)..=i]
            .iter()
            .map(|s| s.rate)
            .fold(0.0, f64::max);
        assert!(
            s.desired <= needs(busiest * 1.2) + 1,
            "at {:.0} s desired {} for at most {busiest:.0} requests/s",
            s.t,
            s.desired
        );
    }
    // And asks for what the traffic needs: both surges were answered.
    let asked = |from: f64, to: f64| {
        seconds
            .iter()
            .filter(|s| s.t >= from && s.t < to)
            .map(|s| s.desired)
            .max()
            .unwrap()
    };
    let surge_needs = |from: f64, to: f64| {
        let rates: Vec<f64> = seconds
            .iter()
            .filter(|s| s.t >= from && s.t < to)
            .map(|s| s.rate)
            .collect();
        needs(rates.iter().sum::<f64>() / rates.len() as f64)
    };
    for at in [240.0, 480.0] {
        let (asked, needed) = (asked(at, at + 30.0), surge_needs(at + 5.0, at + 30.0));
        eprintln!("surge at {at} s: {needed} instances needed over its first 30 s, {asked} asked");
        assert!(
            asked >= needed,
            "surge at {at} s: asked {asked}, needed {needed}"
        );
    }
}

/// Two minutes of the demo (two sidecars, surges every 30 s) say what
/// happened in a bounded number of lines: decisions that are held name
/// their reason, values are in their user-facing form, and a clean stop
/// warns about nothing.
#[tokio::test]
async fn two_minutes_of_the_demo_log_a_bounded_number_of_lines_in_words() {
    let d = Daemon::start_demo(&["--listen", "127.0.0.1:0", "--surge-every", "30"]).await;
    let logs = d.logs.clone();
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    let records = d.get_json("/api/v1/decisions?limit=10000").await;
    let (exit, _) = d.terminate().await;
    assert!(exit.success(), "{exit:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = logs.lock().unwrap().clone();
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    // About 110 lines a minute with two sidecars, most of them the group's
    // instances joining and leaving; a decision or gate repeated each tick
    // would be hundreds a minute.
    println!("{} log lines in 2 minutes", logs.len());
    assert!(logs.len() <= 400, "{} lines", logs.len());
    for v in &logs {
        let message = text(v, "message");
        if message.ends_with("decision.") && text(v, "outcome") == "skipped" {
            assert!(
                !text(v, "reason").is_empty(),
                "a held decision says why: {v}"
            );
        }
        for k in ["outcome", "mode"] {
            let value = text(v, k);
            assert!(
                value.is_empty() || value.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{k} in its user-facing form: {v}"
            );
        }
        assert!(
            !v.to_string().contains("Some("),
            "no Rust Option in the logs: {v}"
        );
    }
    // The audit: a gate is recorded when it starts holding a resource
    // (`skipped`, with the reason) and when it ends (`observed`, "no longer
    // held", with its count), not every tick.
    let records = records.as_array().unwrap();
    let count = |outcome: &str, prefix: &str| {
        records
            .iter()
            .filter(|r| r["outcome"] == outcome)
            .filter(|r| r["reason"].as_str().unwrap_or("").starts_with(prefix))
            .count()
    };
    let (skipped, ended) = (count("skipped", ""), count("observed", "no longer held: "));
    println!(
        "{} audit records in 2 minutes: {skipped} skipped, {ended} gate ends",
        records.len()
    );
    assert!(ended >= 1, "{records:#?}");
    assert!(
        records.len() <= 300 && skipped <= ended + 20,
        "{records:#?}"
    );
    let stop_warnings: Vec<_> = logs
        .iter()
        .skip_while(|v| v["message"] != "Stopping.")
        .filter(|v| matches!(v["level"].as_str(), Some("WARN" | "ERROR")))
        .collect();
    assert!(
        stop_warnings.is_empty(),
        "a clean stop warns about nothing: {stop_warnings:?}"
    );
}
