//! Publishing to CloudWatch (moto): a round trip of one-second datums, and
//! a bounded buffer when CloudWatch cannot be reached.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use crate::aws::{cloud, unique};
use crate::harness::{moto_url, Daemon};

async fn send(statsd: std::net::SocketAddr, per_second: u32, seconds: u64) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..seconds * 50 {
        tick.tick().await;
        let each = per_second / 50;
        sock.send_to(format!("http.requests:{each}|c").as_bytes(), statsd)
            .await
            .unwrap();
    }
}

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
    let statsd = d.statsd.unwrap();
    let traffic = tokio::spawn(async move { send(statsd, 50, 60).await });
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
    traffic.abort();
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
    send(d.statsd.unwrap(), 50, 6).await;
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
