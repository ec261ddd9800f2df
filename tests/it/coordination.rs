//! `rapidscale init` creates the coordination table in moto, once.

use std::process::Command;

use aws_sdk_dynamodb::types::{BillingMode, TimeToLiveStatus};

use crate::aws::{cloud, unique};
use crate::harness::{bin, moto_url, Load};
use rapidscale::cloud::{Capacity, Coordination};
use rapidscale::coord::SKEW_MARGIN_MS;

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
    // without a new token, verified before acting (it must outlive the
    // skew margin past the caller's now).
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
        .verify_lease(&table, "web", "i-a", a, t0 + 5_000 + SKEW_MARGIN_MS)
        .await
        .unwrap());
    assert!(
        !c.verify_lease(&table, "web", "i-a", a, t0 + 10_500 + SKEW_MARGIN_MS)
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
        .verify_lease(&table, "web", "i-a", a, t0 + 12_003 + SKEW_MARGIN_MS)
        .await
        .unwrap());
    assert!(c
        .verify_lease(&table, "web", "i-b", b, t0 + 13_000 + SKEW_MARGIN_MS)
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
    let c = Daemon::start(&config("i-3")).await;
    let senders = [
        send(a.statsd.unwrap(), 100),
        send(b.statsd.unwrap(), 200),
        send(c.statsd.unwrap(), 300),
    ];
    // The leader reads the whole fleet; once all three send (about 600
    // req/s), check the exact sum on it.
    let daemons = [&a, &b, &c];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (leader_index, status) = loop {
        let mut found = None;
        for (i, d) in daemons.iter().enumerate() {
            let s = d.get_json("/api/v1/status").await;
            let f = &s["coordination"]["fleet"];
            let complete = s["coordination"]["role"]["role"] == "leader"
                && f["responsive"].as_array().is_some_and(|r| r.len() == 3)
                && f["estimated"] == false
                && f["totals"]["statsd"].as_f64().is_some_and(|t| t > 540.0);
            if complete {
                found = Some((i, s));
            }
        }
        if let Some(f) = found {
            break f;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader with a complete fleet view"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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

    // kill -9 of a follower: silent within its 3 s, and not read as zero.
    let victim = (leader_index + 1) % 3;
    let victim_id = format!("i-{}", victim + 1);
    let mut owned = [Some(a), Some(b), Some(c)];
    let mut dead = owned[victim].take().unwrap();
    dead.child.start_kill().unwrap();
    let _ = dead.child.wait().await;
    senders[victim].abort();
    let leader = owned[leader_index].as_ref().unwrap();
    let status = leader
        .wait_for_status(Duration::from_secs(8), "the victim silent", |s| {
            s["coordination"]["fleet"]["silent"]
                .as_array()
                .is_some_and(|v| v.iter().any(|i| *i == victim_id.as_str()))
        })
        .await;
    let fleet = &status["coordination"]["fleet"];
    assert_eq!(fleet["estimated"], true, "{fleet}");
    let metrics = leader.metrics().await;
    assert!(
        metrics.contains("rapidscale_fleet_sidecars{state=\"silent\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rapidscale_fleet_requests_per_second{stream=\"statsd\"}"));
    let estimate = fleet["totals"]["statsd"].as_f64().unwrap();
    let reporting: f64 = [100.0, 200.0, 300.0]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, v)| v)
        .sum();
    assert!(
        estimate > reporting * 1.2,
        "the silent one is estimated, not read as zero: {estimate} vs {reporting} reported: {fleet}"
    );
    for s in &senders {
        s.abort();
    }
    for d in owned.into_iter().flatten() {
        d.terminate().await;
    }
}

fn applied(d: &crate::harness::Daemon) -> Vec<rapidscale::audit::AuditRecord> {
    rapidscale::audit::read_file(&d.state_dir().join("audit.jsonl"))
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.outcome == rapidscale::audit::Outcome::Applied)
        .collect()
}

fn role(s: &serde_json::Value) -> (String, Option<u64>) {
    let r = &s["coordination"]["role"];
    (
        r["role"].as_str().unwrap_or("").to_string(),
        r["fencing"].as_u64(),
    )
}

#[tokio::test]
async fn only_the_leader_acts_and_a_dead_or_paused_one_is_replaced() {
    use crate::harness::Daemon;
    use std::time::Duration;
    let table = unique("leased");
    let coord = unique("coordlease");
    let c = cloud().await;
    crate::aws::create_table(&c, &table).await; // read 10, write 5
    c.ensure_coordination_table(&coord).await.unwrap();
    let config = |id: &str| {
        format!(
            r#"
mode = "apply"
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
name = "{table}"
read = {{ target = 0.5, min = 1, max = 100000, per_request = 1 }}
[coordination]
table = "{coord}"
cluster = "{coord}"
instance_id = "{id}"
lease = "4s"
renew_every = "1s"
[cloudwatch]
publish = true
publish_interval = "1s"
namespace = "{coord}"
"#,
            moto = moto_url()
        )
    };
    let read = || async {
        cloud()
            .await
            .describe_table(&table)
            .await
            .unwrap()
            .provisioned
            .unwrap()
            .read
    };
    let a = Daemon::start(&config("i-a")).await;
    let b = Daemon::start(&config("i-b")).await;
    // One of the two takes the lease.
    let leader_of = |x: &serde_json::Value, y: &serde_json::Value| {
        let (rx, ry) = (role(x).0, role(y).0);
        match (rx.as_str(), ry.as_str()) {
            ("leader", "follower") => Some(0),
            ("follower", "leader") => Some(1),
            _ => None,
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        let (sa, sb) = (
            a.get_json("/api/v1/status").await,
            b.get_json("/api/v1/status").await,
        );
        if let Some(i) = leader_of(&sa, &sb) {
            break i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no single leader: {:?} {:?}",
            role(&sa),
            role(&sb)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (leader, follower) = if first == 0 { (a, b) } else { (b, a) };
    let token1 = role(&leader.get_json("/api/v1/status").await).1.unwrap();
    // Both see 50 req/s; only the leader changes capacity, under its token,
    // and for the fleet's 100 req/s (about 200 units at target 0.5), not
    // for its own 50.
    let lf = Load::start(follower.statsd.unwrap(), 50);
    let ll = Load::start(leader.statsd.unwrap(), 50);
    crate::harness::eventually(
        Duration::from_secs(15),
        "the leader's increase for the fleet",
        read,
        |r| *r >= 180,
    )
    .await;
    let advice = leader.get_json("/api/v1/status").await["dynamodb"][0]["fleet"].clone();
    let factor = advice["factor"].as_f64().unwrap_or(0.0);
    assert!(
        (1.8..=2.2).contains(&factor),
        "own demand x {factor} is the fleet's: {advice}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        applied(&follower).is_empty(),
        "a follower applied: {:?}",
        applied(&follower)
    );
    let by_leader = applied(&leader);
    assert!(!by_leader.is_empty());
    // Each publishes its own requests/s; only the leader the fleet's figures.
    let (ls, fs) = (
        leader.get_json("/api/v1/status").await,
        follower.get_json("/api/v1/status").await,
    );
    assert!(
        ls["cloudwatch"]["fleet_datums"].as_u64() > Some(0),
        "{}",
        ls["cloudwatch"]
    );
    assert!(
        fs["cloudwatch"]["sent"].as_u64() > Some(0),
        "{}",
        fs["cloudwatch"]
    );
    assert_eq!(fs["cloudwatch"]["fleet_datums"], 0, "{}", fs["cloudwatch"]);
    assert!(
        by_leader.iter().all(|r| r.fencing == Some(token1)),
        "{by_leader:?}"
    );

    // kill -9 of the leader: the follower leads within lease + 2 s and acts.
    // The follower already sees demand for about 800 units when the leader dies.
    lf.set(400);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut leader = leader;
    leader.child.start_kill().unwrap();
    let killed = tokio::time::Instant::now();
    let _ = leader.child.wait().await;
    drop(ll);
    let status = follower
        .wait_for_status(Duration::from_secs(6), "the follower leads", |s| {
            role(s).0 == "leader"
        })
        .await;
    let token2 = role(&status).1.unwrap();
    assert!(token2 > token1, "fencing {token2} after {token1}");
    crate::harness::eventually(
        Duration::from_secs(10),
        "the new leader's increase",
        read,
        |r| *r >= 700,
    )
    .await;
    eprintln!("new leader acted {:?} after the kill", killed.elapsed());
    assert!(
        killed.elapsed() <= Duration::from_secs(4 + 2),
        "{:?}",
        killed.elapsed()
    );
    let by_new = applied(&follower);
    assert!(
        !by_new.is_empty() && by_new.iter().all(|r| r.fencing == Some(token2)),
        "{by_new:?}"
    );

    // A third sidecar joins; the leader is paused (SIGSTOP) past its lease:
    // the newcomer leads, and the paused one does not act when resumed.
    let c3 = Daemon::start(&config("i-c")).await;
    let lc = Load::start(c3.statsd.unwrap(), 400);
    let paused = follower;
    let pid = paused.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    let status = c3
        .wait_for_status(Duration::from_secs(8), "the newcomer leads", |s| {
            role(s).0 == "leader"
        })
        .await;
    let token3 = role(&status).1.unwrap();
    assert!(token3 > token2);
    let applied_before = applied(&paused).len();
    // Demand the paused one would answer at once: 1,600 req/s.
    lf.set(1600);
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after: Vec<_> = applied(&paused).into_iter().skip(applied_before).collect();
    assert!(after.is_empty(), "the resumed ex-leader acted: {after:?}");
    let st = paused.get_json("/api/v1/status").await;
    assert_eq!(role(&st).0, "follower", "{:?}", role(&st));
    // No fencing token was used by two processes.
    let mut tokens: Vec<(u64, &str)> = Vec::new();
    for (name, recs) in [("b", applied(&paused)), ("c", applied(&c3))] {
        for r in recs {
            tokens.push((r.fencing.unwrap(), name));
        }
    }
    for (t, who) in &tokens {
        assert!(
            tokens.iter().all(|(t2, w2)| t2 != t || w2 == who),
            "token {t} used twice: {tokens:?}"
        );
    }
    drop((lf, lc));
    paused.terminate().await;
    c3.terminate().await;
}
