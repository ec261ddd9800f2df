//! Publishing to CloudWatch (moto): a round trip of one-second datums, and
//! a bounded buffer when CloudWatch cannot be reached.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use rapidscale::audit::Outcome;
use rapidscale::cloud::Metrics;

use crate::aws::{cloud, unique};
use crate::harness::{moto_url, Daemon, Load};

#[tokio::test]
async fn published_seconds_come_back_from_get_metric_data() {
    let namespace = unique("rs-ns");
    let d = Daemon::start(&format!(
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
[cloudwatch]
publish = true
namespace = "{namespace}"
publish_interval = "1s"
dimensions = ["Env=test"]
"#,
        moto = moto_url()
    ))
    .await;
    // Traffic goes on while CloudWatch is polled.
    let traffic = Load::start(d.statsd.unwrap(), 50);
    d.wait_for_status(Duration::from_secs(20), "datums sent", |s| {
        s["cloudwatch"]["sent"].as_u64().is_some_and(|n| n >= 3)
    })
    .await;
    // The newest seconds reach CloudWatch a round after their grace window:
    // poll until three full seconds are there.
    let fetch = || async {
        let now = chrono::Utc::now().timestamp();
        let query = MetricDataQuery::builder()
            .id("rps")
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(&namespace)
                            .metric_name("RequestsPerSecond")
                            .dimensions(Dimension::builder().name("Stream").value("statsd").build())
                            .dimensions(Dimension::builder().name("Env").value("test").build())
                            .build(),
                    )
                    .period(1)
                    .stat("Average")
                    .build(),
            )
            .build();
        let r = cloud()
            .await
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(aws_smithy_types::DateTime::from_secs(now - 120))
            .end_time(aws_smithy_types::DateTime::from_secs(now + 10))
            .send()
            .await
            .unwrap();
        r.metric_data_results()[0].values().to_vec()
    };
    let values = crate::harness::eventually(
        Duration::from_secs(30),
        "one-second datapoints in CloudWatch",
        fetch,
        |v: &Vec<f64>| v.iter().filter(|x| **x >= 40.0).count() >= 3,
    )
    .await;
    let full: Vec<f64> = values.iter().copied().filter(|v| *v >= 40.0).collect();
    assert!(
        full.iter().all(|v| *v <= 60.0),
        "one-second datapoints of about 50 req/s: {values:?}"
    );
    drop(traffic);
    d.terminate().await;
}

#[tokio::test]
async fn an_unreachable_cloudwatch_keeps_a_bounded_buffer_and_blocks_nothing() {
    // Port 9 (discard) on loopback: nothing listens, every call is refused.
    let d = Daemon::start(
        r#"
state_dir = "{dir}/state"
[aws]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:9"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[api]
listen = "127.0.0.1:0"
[cloudwatch]
publish = true
publish_interval = "1s"
buffer = 3
"#,
    )
    .await;
    let load = Load::start(d.statsd.unwrap(), 50);
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(load);
    let status = d
        .wait_for_status(Duration::from_secs(10), "datums dropped", |s| {
            s["cloudwatch"]["dropped"].as_u64().is_some_and(|n| n > 0)
        })
        .await;
    let cw = &status["cloudwatch"];
    assert!(cw["buffered"].as_u64().unwrap() <= 3, "{cw}");
    assert_eq!(cw["sent"], 0);
    assert!(
        cw["last_error"].as_str().unwrap().contains("PutMetricData"),
        "{cw}"
    );
    // Ingestion and the API go on.
    assert!(
        status["ingest"][0]["accepted"].as_u64().unwrap() >= 250,
        "{status:#}"
    );
    let (exit, _) = d.terminate().await;
    assert!(exit.success());
}

/// Puts one-minute sums of an `AWS/DynamoDB` metric into moto.
async fn put_minutes(table: &str, index: Option<&str>, metric: &str, minutes: &[(i64, f64)]) {
    use aws_sdk_cloudwatch::types::MetricDatum;
    let c = cloud().await;
    for chunk in minutes.chunks(500) {
        let data: Vec<MetricDatum> = chunk
            .iter()
            .map(|(minute, sum)| {
                let mut d = MetricDatum::builder()
                    .metric_name(metric)
                    .dimensions(Dimension::builder().name("TableName").value(table).build())
                    .timestamp(aws_smithy_types::DateTime::from_secs(*minute))
                    .value(*sum);
                if let Some(i) = index {
                    d = d.dimensions(
                        Dimension::builder()
                            .name("GlobalSecondaryIndexName")
                            .value(i)
                            .build(),
                    );
                }
                d.build()
            })
            .collect();
        c.cloudwatch
            .put_metric_data()
            .namespace("AWS/DynamoDB")
            .set_metric_data(Some(data))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn calibration_recovers_a_known_ratio_from_dynamodb_minutes_in_moto() {
    use rapidscale::cloudwatch::watch::{Target, Watch};
    use rapidscale::policy::calibrate::Calibration;
    use rapidscale::policy::dynamodb::Op;
    use rapidscale::series::{Observation, SeriesStore, StoreConfig, StreamKind};

    let table = unique("calibrate");
    let (read_ratio, index_ratio) = (0.37, 0.12);
    // Two hours of requests, each minute at its own rate, every second known.
    let now = chrono::Utc::now().timestamp();
    let end = now.div_euclid(60) * 60 - 60;
    let start = end - 120 * 60;
    let mut store = SeriesStore::new(StoreConfig {
        seconds_kept: 600,
        ..StoreConfig::default()
    });
    let id = store.register("http.requests", StreamKind::Push);
    let rate = |minute: i64| {
        let m = (minute - start) / 60;
        40.0 + 30.0 * (m as f64 * 0.3).sin() + (m % 7) as f64 * 3.0
    };
    for second in start..end {
        let r = rate(second.div_euclid(60) * 60);
        store
            .observe(id, second, Observation::Count(r), second)
            .unwrap();
        store.seal(second + 3);
    }
    store.seal(end + 3);
    // DynamoDB's consumed units for the same minutes, with +-1 % of noise.
    let noise = |m: i64| 1.0 + 0.01 * (((m / 60) * 7919 % 201) as f64 / 100.0 - 1.0);
    let minutes: Vec<i64> = (start..end).step_by(60).collect();
    let consumed = |ratio: f64| -> Vec<(i64, f64)> {
        minutes
            .iter()
            .map(|m| (*m, rate(*m) * 60.0 * ratio * noise(*m)))
            .collect()
    };
    put_minutes(
        &table,
        None,
        "ConsumedReadCapacityUnits",
        &consumed(read_ratio),
    )
    .await;
    put_minutes(
        &table,
        Some("by_user"),
        "ConsumedReadCapacityUnits",
        &consumed(index_ratio),
    )
    .await;
    // Throttling in two minutes; rapidscale had decided an increase just
    // before the second one only.
    let (quiet, busy) = (minutes[10], minutes[100]);
    put_minutes(
        &table,
        None,
        "ReadThrottleEvents",
        &[(quiet, 4.0), (busy, 9.0)],
    )
    .await;

    let target = |index: Option<&str>| Target {
        table: table.clone(),
        index: index.map(str::to_string),
        op: Op::Read,
        auto: true,
        fallback: Some(1.0),
    };
    let config = rapidscale::config::CloudWatchConfig {
        min_samples: 60,
        min_r2: 0.9,
        calibrate_window: Duration::from_secs(3 * 3600),
        ..Default::default()
    };
    let mut watch = Watch::new(
        config,
        vec![target(None), target(Some("by_user"))],
        rapidscale::config::Mode::DryRun,
    );
    let decided = rapidscale::audit::AuditRecord {
        id: "d1".into(),
        time: chrono::DateTime::from_timestamp(busy - 30, 0).unwrap(),
        phase: rapidscale::audit::Phase::Completed,
        service: "dynamodb".into(),
        resource: table.clone(),
        mode: rapidscale::config::Mode::Apply,
        outcome: Outcome::Applied,
        changes: vec![rapidscale::audit::AuditChange {
            resource: None,
            op: "read".into(),
            from: 10,
            to: 40,
            rule: "surge".into(),
            demand: Some(30.0),
            threshold: None,
            window_s: 1,
        }],
        decrease: false,
        reason: None,
        error: None,
        fencing: None,
        observed: None,
    };
    watch.note_records(&[decided]);

    let sums = cloud()
        .await
        .dynamodb_minute_sums(&watch.full_read_metrics(), end - 3 * 3600, end + 60)
        .await
        .expect("GetMetricData");
    let mut calibrations = vec![
        Calibration::initial(table.clone(), Op::Read, Some(1.0)),
        Calibration::initial(format!("{table}/by_user"), Op::Read, Some(1.0)),
    ];
    let requests = store.minutes(id, 200);
    watch.full_read(&sums, &requests, false, &mut calibrations, now as f64);

    for (c, ratio) in calibrations.iter().zip([read_ratio, index_ratio]) {
        let fit = c.fit.expect("a fit");
        let error = (fit.per_request - ratio).abs() / ratio;
        assert!(error < 0.02, "{c:?}: {:.2} % off", error * 100.0);
        assert_eq!(fit.samples, 120, "{c:?}");
        assert!(fit.r2 > 0.99, "{c:?}");
        assert!(c.fitted && c.per_request == Some(fit.per_request), "{c:?}");
    }
    assert_eq!(
        watch.status.throttled_minutes_unforeseen, 1,
        "{:?}",
        watch.status
    );
    assert_eq!(
        watch.status.throttled_minutes_foreseen, 1,
        "{:?}",
        watch.status
    );
    let last = watch.status.last_unforeseen.as_ref().unwrap();
    assert_eq!((last.minute.timestamp(), last.events), (quiet, 4.0));
}

#[tokio::test]
async fn the_lead_over_cloudwatch_is_measured_and_audited() {
    let table = unique("lead");
    crate::aws::create_table(&cloud().await, &table).await; // read 10
    let d = Daemon::start(&format!(
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
[cloudwatch]
lead_poll = "1s"
[dynamodb]
poll_interval = "1s"
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.5, min = 1, max = 1000, per_request = "auto", per_request_fallback = 1.0 }}
"#,
        moto = moto_url()
    ))
    .await;
    // Until a fit is good, the fallback is in effect and demand follows it.
    let status = d
        .wait_for_status(Duration::from_secs(20), "the first CloudWatch read", |s| {
            s["cloudwatch_watch"]["reads"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        })
        .await;
    let cal = &status["calibration"][0];
    assert_eq!(cal["resource"], table.as_str(), "{cal}");
    assert_eq!(cal["per_request"], 1.0, "{cal}");
    assert_eq!(cal["fitted"], false, "{cal}");
    assert!(cal["reason"].as_str().is_some(), "{cal}");

    // A surge of 200 requests/s: rapidscale recommends read capacity.
    let traffic = Load::start(d.statsd.unwrap(), 200);
    let status = d
        .wait_for_status(Duration::from_secs(20), "an increase recommended", |s| {
            s["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["outcome"] == "recommended" && r["changes"][0]["to"].as_u64() > Some(10))
        })
        .await;
    let decision = status["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|r| r["outcome"] == "recommended")
        .unwrap()
        .clone();
    let id = decision["id"].as_str().unwrap().to_string();
    let decided = chrono::DateTime::parse_from_rfc3339(decision["time"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let minute = decided.div_euclid(60) * 60;
    // No CloudWatch datapoint shows it yet: the surge waits.
    d.wait_for_status(Duration::from_secs(10), "a pending surge", |s| {
        s["cloudwatch_watch"]["pending"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Now DynamoDB's minute datapoints arrive: 5 units/s before, 200 after.
    let before: Vec<(i64, f64)> = (2..=5).map(|k| (minute - 60 * k, 5.0 * 60.0)).collect();
    put_minutes(&table, None, "ConsumedReadCapacityUnits", &before).await;
    put_minutes(
        &table,
        None,
        "ConsumedReadCapacityUnits",
        &[(minute, 200.0 * 60.0)],
    )
    .await;
    let written = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let status = d
        .wait_for_status(
            Duration::from_secs(15),
            "the surge seen in CloudWatch",
            |s| {
                s["cloudwatch_watch"]["leads"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["record_id"] == id.as_str())
            },
        )
        .await;
    let lead = status["cloudwatch_watch"]["leads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["record_id"] == id.as_str())
        .unwrap()
        .clone();
    let lead_s = lead["lead_s"].as_f64().unwrap();
    let decided_at = lead["decided_at"].as_f64().unwrap();
    // Read within a few lead polls of the datapoint's arrival (more on a
    // loaded machine).
    assert!(
        lead_s >= written - decided_at - 0.5 && lead_s <= written - decided_at + 10.0,
        "{lead} (written {written})"
    );
    assert_eq!(lead["minute"], minute, "{lead}");
    drop(traffic);

    // The lead is in /metrics and in the audit log, tied to the decision.
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("rapidscale_cloudwatch_surges_total{outcome=\"seen\"}"),
        "{metrics}"
    );
    let fitted = format!(
        "rapidscale_calibration_fitted{{table=\"{table}\",index=\"\",operation=\"read\"}} 0"
    );
    assert!(metrics.contains(&fitted), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "rapidscale_per_request_units{{table=\"{table}\",index=\"\",operation=\"read\",kind=\"in_effect\"}} 1.0"
        )),
        "{metrics}"
    );
    let records = rapidscale::audit::read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let note = records
        .iter()
        .find(|r| {
            r.outcome == Outcome::Observed && r.observed.as_ref().is_some_and(|o| o.refers_to == id)
        })
        .expect("an observed record for the decision");
    let observed = note.observed.as_ref().unwrap();
    assert!((observed.lead_s - lead_s).abs() < 1e-6, "{note:?}");
    assert_eq!(observed.cloudwatch_minute.timestamp(), minute);
    d.terminate().await;
}
