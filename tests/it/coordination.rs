//! `rapidscale init` creates the coordination table in moto, once.

use std::process::Command;

use aws_sdk_dynamodb::types::{BillingMode, TimeToLiveStatus};

use crate::aws::{cloud, unique};
use crate::harness::{bin, moto_url};

#[tokio::test]
async fn init_creates_the_coordination_table_once() {
    let table = unique("coord");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("init.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}/state\"\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n[coordination]\ntable = \"{table}\"\n",
            dir.path().display(),
            moto_url()
        ),
    )
    .unwrap();
    let run = || {
        Command::new(bin())
            .args(["init", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains("created (on-demand billing, key pk/sk); TTL on expires_at turned on"),
        "{out}"
    );
    let second = run();
    assert!(second.status.success());
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.contains("already exists; TTL on expires_at already on"),
        "{out}"
    );

    let ddb = cloud().await.dynamodb;
    let t = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let t = t.table().unwrap();
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let keys: Vec<(&str, &str)> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    // A config without [coordination] has nothing to create: exit 2.
    std::fs::write(&path, "state_dir = \"/tmp/x\"\n").unwrap();
    assert_eq!(run().status.code(), Some(2));
}

#[tokio::test]
async fn heartbeats_and_a_fenced_lease_through_dynamodb() {
    use rapidscale::coord::{fleet_view, Heartbeat};
    let table = unique("coordhb");
    let c = cloud().await;
    c.ensure_coordination_table(&table).await.unwrap();
    let beat = |id: &str, seq: u64, sent_ms: i64, values: [f64; 3]| Heartbeat {
        instance_id: id.into(),
        lifecycle: "InService".into(),
        seq,
        sent_ms,
        first_second: 100,
        counts: [(
            "statsd".to_string(),
            values.iter().map(|v| Some(*v)).collect(),
        )]
        .into(),
    };
    for (i, id) in ["i-a", "i-b", "i-c"].iter().enumerate() {
        let k = (i + 1) as f64;
        c.put_heartbeat(&table, "web", &beat(id, 1, 103_000, [k, 2.0 * k, 3.0 * k]))
            .await
            .unwrap();
    }
    // A newer heartbeat replaces the sidecar's item; another cluster is apart.
    c.put_heartbeat(&table, "web", &beat("i-a", 2, 103_500, [1.0, 2.0, 3.5]))
        .await
        .unwrap();
    c.put_heartbeat(
        &table,
        "other",
        &beat("i-z", 1, 103_500, [99.0, 99.0, 99.0]),
    )
    .await
    .unwrap();
    let beats = c.query_heartbeats(&table, "web").await.unwrap();
    assert_eq!(beats.len(), 3);
    assert_eq!(
        beats.iter().find(|b| b.instance_id == "i-a").unwrap().seq,
        2
    );
    let v = fleet_view(&beats, 104_000, 3_000, 102);
    assert_eq!(v.totals["statsd"], 3.5 + 6.0 + 9.0);
    assert!(!v.estimated);

    // The lease: taken with token 1, refused to another while valid, renewed
    // without a new token, verified before acting.
    let t0 = 1_000_000;
    let a = c
        .take_or_renew_lease(&table, "web", "i-a", None, t0, 10_000)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!(a.fencing, 1);
    assert_eq!(
        c.take_or_renew_lease(&table, "web", "i-b", None, t0 + 1_000, 10_000)
            .await
            .unwrap(),
        None
    );
    let a = c
        .take_or_renew_lease(&table, "web", "i-a", Some(a), t0 + 2_000, 10_000)
        .await
        .unwrap()
        .expect("renewed");
    assert_eq!((a.fencing, a.until_ms), (1, t0 + 12_000));
    assert!(c
        .verify_lease(&table, "web", "i-a", a, t0 + 5_000)
        .await
        .unwrap());
    assert!(
        !c.verify_lease(&table, "web", "i-a", a, t0 + 10_500)
            .await
            .unwrap(),
        "within the skew margin of the end"
    );
    // Expired: another sidecar takes it with the next token; the old holder
    // can neither renew nor pass the check before acting.
    let b = c
        .take_or_renew_lease(&table, "web", "i-b", None, t0 + 12_001, 10_000)
        .await
        .unwrap()
        .expect("an expired lease is taken");
    assert_eq!(b.fencing, 2);
    assert_eq!(
        c.take_or_renew_lease(&table, "web", "i-a", Some(a), t0 + 12_002, 10_000)
            .await
            .unwrap(),
        None
    );
    assert!(!c
        .verify_lease(&table, "web", "i-a", a, t0 + 12_003)
        .await
        .unwrap());
    assert!(c
        .verify_lease(&table, "web", "i-b", b, t0 + 13_000)
        .await
        .unwrap());
}

/// Sends `per_second` requests/s to a daemon, 50 packets a second.
fn send(statsd: std::net::SocketAddr, per_second: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        let each = per_second / 50;
        loop {
            tick.tick().await;
            let _ = sock
                .send_to(format!("http.requests:{each}|c").as_bytes(), statsd)
                .await;
        }
    })
}

#[tokio::test]
async fn three_sidecars_see_the_exact_fleet_total_and_a_silent_one() {
    use crate::harness::Daemon;
    use std::time::Duration;
    let table = unique("fleet");
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
    let mut c = Daemon::start(&config("i-3")).await;
    let senders = [
        send(a.statsd.unwrap(), 100),
        send(b.statsd.unwrap(), 200),
        send(c.statsd.unwrap(), 300),
    ];
    // Every sidecar sees the whole fleet; once all three send (about 600
    // req/s), check the exact sum on one of them.
    let status = a
        .wait_for_status(Duration::from_secs(20), "a complete fleet view", |s| {
            let f = &s["coordination"]["fleet"];
            f["responsive"].as_array().is_some_and(|r| r.len() == 3)
                && f["estimated"] == false
                && f["totals"]["statsd"].as_f64().is_some_and(|t| t > 540.0)
        })
        .await;
    let fleet = &status["coordination"]["fleet"];
    let second = fleet["second"].as_i64().unwrap();
    let total = fleet["totals"]["statsd"].as_f64().unwrap();
    let mut sum = 0.0;
    for d in [&a, &b, &c] {
        let points = d.get_json("/api/v1/series?stream=statsd&seconds=30").await;
        let v = points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["second"] == second)
            .and_then(|p| p["value"].as_f64())
            .unwrap_or_else(|| panic!("second {second} in {points}"));
        sum += v;
    }
    assert!(
        (total - sum).abs() <= 0.01 * sum,
        "fleet {total} vs the three sidecars' own {sum}"
    );
    assert!(
        (sum - 600.0).abs() <= 60.0,
        "about 600 req/s were sent: {sum}"
    );

    // kill -9 of one sidecar: silent within its 3 s, and not read as zero.
    c.child.start_kill().unwrap();
    let _ = c.child.wait().await;
    senders[2].abort();
    let status = a
        .wait_for_status(Duration::from_secs(8), "i-3 silent", |s| {
            s["coordination"]["fleet"]["silent"]
                .as_array()
                .is_some_and(|v| v.iter().any(|i| i == "i-3"))
        })
        .await;
    let fleet = &status["coordination"]["fleet"];
    assert_eq!(fleet["estimated"], true, "{fleet}");
    let estimate = fleet["totals"]["statsd"].as_f64().unwrap();
    assert!(
        estimate > 400.0,
        "two of three report 300: estimated at ~450, not 300: {fleet}"
    );
    for s in &senders[..2] {
        s.abort();
    }
    a.terminate().await;
    b.terminate().await;
}
