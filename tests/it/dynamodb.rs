//! The DynamoDB advisor end to end: the daemon fed by StatsD over UDP,
//! moto's DynamoDB behind it, capacity read back with DescribeTable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rapidscale::audit::{read_file, Outcome};
use rapidscale::cloud::Capacity;

use crate::aws::{cloud, create_table, set_throughput, unique};
use crate::harness::{eventually, moto_url, Daemon};

/// Sends `rate` requests/s and `rate` write units/s for `table`, in ten
/// packets a second, until dropped; `rate` can change while it runs.
struct Traffic {
    rate: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    async fn start(target: std::net::SocketAddr, table: &str, rate: u64) -> Traffic {
        let rate = Arc::new(AtomicU64::new(rate));
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let r = rate.clone();
        let table = table.to_string();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let per_packet = r.load(Ordering::SeqCst) as f64 / 10.0;
                let packet = format!("http.requests:{per_packet}|c\nddb.units:{per_packet}|c|#table:{table},op:write");
                let _ = socket.send_to(packet.as_bytes(), target).await;
            }
        });
        Traffic { rate, task }
    }

    fn set(&self, rate: u64) {
        self.rate.store(rate, Ordering::SeqCst);
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(mode: &str, table: &str, extra_dynamodb: &str, with_index: bool) -> String {
    let index = if with_index {
        "[[dynamodb.tables.indexes]]\nname = \"by_user\"\nread = { target = 0.5, min = 1, max = 1000, per_request = 1 }\n"
    } else {
        ""
    };
    format!(
        r#"
mode = "{mode}"
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
{extra_dynamodb}
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.5, min = 1, max = 1000, per_request = 1 }}
write = {{ target = 0.5, min = 1, max = 1000, metric = "ddb.units{{table:{table},op:write}}" }}
{index}"#,
        moto = moto_url()
    )
}

async fn capacity(table: &str) -> (u64, u64) {
    let t = cloud().await.describe_table(table).await.unwrap();
    let p = t.provisioned.unwrap();
    (p.read, p.write)
}

async fn wait_for_capacity(
    table: &str,
    within: Duration,
    pred: impl Fn((u64, u64)) -> bool,
) -> (u64, u64) {
    eventually(within, "capacity", || capacity(table), |c| pred(*c)).await
}

#[tokio::test]
async fn apply_mode_follows_a_five_fold_step_within_seconds() {
    let table = unique("step");
    create_table(&cloud().await, &table).await; // read 10, write 5
    let c = cloud().await;
    set_throughput(&c, &table, 100, 50).await;
    // The per-second path: with burst counted on, a first increase sized
    // from part of a second may be left at 60 % utilization while the
    // bucket covers it (tests/it/replay.rs and the policy tests cover that).
    let d = Daemon::start(&config("apply", &table, "burst_share = 0.0", true)).await;
    // 20 units/s: inside the band of both (read 45..55, write 22.5..27.5 is above 20 but below the up edge).
    let traffic = Traffic::start(d.statsd.unwrap(), &table, 20).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        capacity(&table).await,
        (100, 50),
        "steady traffic inside the band changes nothing"
    );
    traffic.set(100);
    let started = tokio::time::Instant::now();
    // Enough: 100 units/s inside the band, capacity x 0.5 x 1.1 >= 100, i.e. >= 182.
    let (read, write) = wait_for_capacity(&table, Duration::from_secs(15), |(r, w)| {
        r >= 182 && w >= 182
    })
    .await;
    let took = started.elapsed();
    // About ceil(100 / 0.5) = 200 (the measured rate varies a little),
    // rounded up to 5 % of the old capacity. A rate read early in a second
    // from 10 packets/s is coarse: allow 30 % over, not the trend's 1.5x.
    assert!(
        (182..=260).contains(&read) && (182..=260).contains(&write),
        "{read} {write}"
    );
    eprintln!("step answered in {took:?}");
    // The index (read 7 from the start: already below 20 req/s) is raised through GlobalSecondaryIndexUpdates.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let t = cloud().await.describe_table(&table).await.unwrap();
        let index_read = t.indexes[0].provisioned.unwrap().read;
        if index_read >= 182 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "index stayed at {index_read}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = d.get_json("/api/v1/status").await;
    let decisions = status["decisions"].as_array().unwrap();
    assert!(
        decisions
            .iter()
            .any(|r| r["outcome"] == "applied" && r["changes"][0]["rule"] == "surge"),
        "{decisions:#?}"
    );
    // The table's and the index's increases went in one UpdateTable call
    // (ProvisionedThroughput and GlobalSecondaryIndexUpdates together),
    // which moto accepted: one applied record names both members.
    let records = read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let index = format!("{table}/by_user");
    assert!(
        records.iter().any(|r| {
            let members: Vec<&str> = r.changes.iter().map(|c| c.member(r)).collect();
            r.outcome == Outcome::Applied
                && members.contains(&table.as_str())
                && members.contains(&index.as_str())
                && r.changes.iter().all(|c| c.to > c.from)
        }),
        "{records:#?}"
    );
    drop(traffic);
    d.terminate().await;
}

#[tokio::test]
async fn dry_run_changes_nothing_and_records_the_recommendation() {
    let table = unique("dry");
    create_table(&cloud().await, &table).await; // read 10, write 5
    let d = Daemon::start(&config("dry-run", &table, "", false)).await;
    let state = d.state_dir();
    let traffic = Traffic::start(d.statsd.unwrap(), &table, 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    traffic.set(50);
    let status = d
        .wait_for_status(Duration::from_secs(15), "a recommendation", |s| {
            s["decisions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["outcome"] == "recommended"))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        capacity(&table).await,
        (10, 5),
        "dry-run never calls UpdateTable"
    );
    let records = read_file(&state.join("audit.jsonl")).unwrap();
    let recommended: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Recommended)
        .collect();
    assert!(!recommended.is_empty(), "recommendations on disk");
    assert!(recommended.iter().all(|r| r.resource == table
        && r.changes
            .iter()
            .all(|c| c.demand.is_some() && c.rule == "surge")));
    // As the surge fills whole seconds the recommendation reaches 50 / 0.5 = 100 units.
    assert!(
        recommended.iter().any(|r| r
            .changes
            .iter()
            .any(|c| c.op == "write" && c.from == 5 && c.to >= 100)),
        "{recommended:#?}"
    );
    // An unchanged recommendation is recorded once, not four times a second.
    assert!(recommended.len() < 10, "{}", recommended.len());
    let advice = &status["dynamodb"][0];
    assert_eq!(advice["resource"], table.as_str());
    drop(traffic);
    d.terminate().await;
}

#[tokio::test]
async fn a_restart_keeps_the_decrease_budget() {
    let table = unique("budget");
    let c = cloud().await;
    create_table(&c, &table).await;
    set_throughput(&c, &table, 100, 100).await;
    let cfg = config("apply", &table, "down_window = \"8s\"", false);
    let state_dir = tempfile::tempdir().unwrap();
    let cfg = cfg.replace("{dir}/state", &state_dir.path().display().to_string());
    let d = Daemon::start(&cfg).await;
    let traffic = Traffic::start(d.statsd.unwrap(), &table, 20).await;
    // Low demand for 8 s (long enough that one late second under load does
    // not skew the mean): one combined read + write decrease to about
    // 20 / 0.5 = 40 (sized to the window's recent mean).
    let (read, write) =
        wait_for_capacity(&table, Duration::from_secs(20), |(r, w)| r < 100 && w < 100).await;
    assert!(
        (30..=50).contains(&read) && (30..=50).contains(&write),
        "{read} {write}"
    );
    d.wait_for_status(Duration::from_secs(5), "the decrease counted", |s| {
        s["dynamodb"][0]["decreases_used_today"] == 1
    })
    .await;
    // The sender stops dead, for less than `stale_after` (5 s): its 10
    // packets a second make the silence unknown, not zero demand, so no
    // second decrease follows.
    drop(traffic);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(capacity(&table).await, (read, write));
    let status = d.get_json("/api/v1/status").await;
    assert_eq!(status["dynamodb"][0]["decreases_used_today"], 1);
    d.terminate().await;

    let d = Daemon::start(&cfg).await;
    let status = d
        .wait_for_status(Duration::from_secs(10), "the table advised", |s| {
            s["dynamodb"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        status["dynamodb"][0]["decreases_used_today"], 1,
        "{:#}",
        status["dynamodb"]
    );
    let records = read_file(&state_dir.path().join("audit.jsonl")).unwrap();
    let applied: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Applied)
        .collect();
    assert_eq!(applied.len(), 1, "one decrease, one call: {records:#?}");
    assert!(applied[0].decrease);
    assert_eq!(applied[0].changes.len(), 2, "read and write in one call");

    // The same traffic after the restart: capacity already fits it, so the
    // decrease is not made again.
    let traffic = Traffic::start(d.statsd.unwrap(), &table, 20).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let records = read_file(&state_dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.outcome == Outcome::Applied)
            .count(),
        1,
        "no duplicate action after the restart: {records:#?}"
    );
    // A change after the restart goes on the same audit log, under new ids.
    traffic.set(60);
    wait_for_capacity(&table, Duration::from_secs(20), |(r, _)| r >= 100).await;
    let records = read_file(&state_dir.path().join("audit.jsonl")).unwrap();
    let applied: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Applied)
        .collect();
    assert!(applied.len() >= 2, "{records:#?}");
    assert!(applied[0].decrease && !applied[applied.len() - 1].decrease);
    let ids: std::collections::BTreeSet<(&str, String)> = records
        .iter()
        .map(|r| (r.id.as_str(), format!("{:?}", r.phase)))
        .collect();
    assert_eq!(ids.len(), records.len(), "an id reused across the restart");
    drop(traffic);
    d.terminate().await;
}

#[tokio::test]
async fn on_demand_tables_are_reported_but_never_changed() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let table = unique("ondemand");
    cloud()
        .await
        .dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let d = Daemon::start(&config("apply", &table, "", false)).await;
    let traffic = Traffic::start(d.statsd.unwrap(), &table, 300).await;
    let status = d
        .wait_for_status(Duration::from_secs(15), "an observed peak", |s| {
            s["dynamodb"][0]["ops"][1]["peak_60s"]
                .as_f64()
                .is_some_and(|p| p >= 250.0)
        })
        .await;
    let advice = &status["dynamodb"][0];
    assert_eq!(advice["billing_mode"], "PAY_PER_REQUEST");
    assert!(advice["plan"].is_null(), "{advice:#}");
    assert!(
        status["decisions"].as_array().unwrap().is_empty(),
        "{:#}",
        status["decisions"]
    );
    let t = cloud().await.describe_table(&table).await.unwrap();
    assert_eq!(
        t.billing_mode,
        rapidscale::cloud::BillingMode::PayPerRequest
    );
    drop(traffic);
    d.terminate().await;
}

/// Registers `resource_id`'s read capacity with Application Auto Scaling, as
/// the console's "auto scaling" setting of a table does.
async fn register_with_aws_auto_scaling(resource_id: &str, dimension: &str) {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    cloud()
        .await
        .application_autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Dynamodb)
        .resource_id(resource_id)
        .scalable_dimension(ScalableDimension::from(dimension))
        .min_capacity(5)
        .max_capacity(500)
        .send()
        .await
        .expect("register scalable target in moto");
}

#[tokio::test]
async fn a_table_aws_auto_scales_is_recommended_never_applied() {
    let table = unique("aas");
    create_table(&cloud().await, &table).await; // read 10, write 5; index read 7
    register_with_aws_auto_scaling(
        &format!("table/{table}"),
        "dynamodb:table:ReadCapacityUnits",
    )
    .await;
    let d = Daemon::start(&config("apply", &table, "burst_share = 0.0", true)).await;
    let traffic = Traffic::start(d.statsd.unwrap(), &table, 100).await;
    // The index is not registered: it is raised as usual.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let t = cloud().await.describe_table(&table).await.unwrap();
        if t.indexes[0].provisioned.unwrap().read >= 182 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "index not raised");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The table is not touched, and every surface says why.
    assert_eq!(capacity(&table).await, (10, 5));
    let (code, body) = d.get_text("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!(
            "{table}: registered with Application Auto Scaling (ReadCapacityUnits)"
        )),
        "{body}"
    );
    let status = d.get_json("/api/v1/status").await;
    let advice = status["dynamodb"].as_array().unwrap();
    let gate = |resource: &str| {
        advice
            .iter()
            .find(|a| a["resource"] == resource)
            .map(|a| a["gate"].clone())
            .unwrap()
    };
    assert!(
        gate(&table).as_str().is_some_and(
            |g| g.contains("Application Auto Scaling") && g.contains("recommending only")
        ),
        "{advice:#?}"
    );
    assert!(gate(&format!("{table}/by_user")).is_null(), "{advice:#?}");
    let records = read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let table_records: Vec<_> = records.iter().filter(|r| r.resource == table).collect();
    assert!(
        table_records
            .iter()
            .any(|r| r.outcome == Outcome::Recommended
                && r.reason
                    .as_deref()
                    .is_some_and(|w| w.contains("Application Auto Scaling"))),
        "{table_records:#?}"
    );
    assert!(
        table_records.iter().all(|r| r.outcome != Outcome::Applied),
        "{table_records:#?}"
    );
    drop(traffic);
    d.terminate().await;
}

/// moto serves `WarmThroughput` (on-demand tables start at 12,000 read and
/// 4,000 write units/s, as AWS documents) and applies UpdateTable's.
async fn warm_of(table: &str) -> (u64, u64) {
    let t = cloud().await.describe_table(table).await.unwrap();
    let w = t.warm.expect("moto describes WarmThroughput");
    (w.read, w.write)
}

#[tokio::test]
async fn on_demand_tables_get_warm_throughput_ahead_of_demand_and_announcements() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let table = unique("warm");
    cloud()
        .await
        .dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(warm_of(&table).await, (12_000, 4_000));
    let config = format!(
        r#"
mode = "apply"
state_dir = "{{dir}}/state"
[aws]
region = "us-east-1"
endpoint_url = "{moto}"
[api]
listen = "127.0.0.1:0"
token = "t"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[dynamodb]
poll_interval = "1s"
update_time = "5s"
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.5, min = 1, max = 40000, per_request = 1 }}
write = {{ target = 0.5, min = 1, max = 40000, metric = "ddb.units{{table:{table},op:write}}" }}
"#,
        moto = moto_url()
    );
    let d = Daemon::start(&config).await;
    // 1,000 units/s: a quarter of the 4,000 served at once. Nothing changes.
    let traffic = Traffic::start(d.statsd.unwrap(), &table, 1000).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(warm_of(&table).await, (12_000, 4_000));
    // 2,500 writes/s reach half of 4,000: warm writes go to twice the
    // demand (in steps while the 5 s mean climbs to it).
    traffic.set(2500);
    let (read, write) = eventually(
        Duration::from_secs(20),
        "warm writes raised",
        || warm_of(&table),
        |w| w.1 >= 5_000,
    )
    .await;
    assert_eq!(read, 12_000, "reads at 2,500 of 12,000 stay");
    assert!(
        (5_000..=6_000).contains(&write),
        "twice the demand: {write}"
    );
    // An announced surge of 20,000 requests/s (1 read unit each) warms reads ahead.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/announce", d.api.unwrap()))
        .bearer_auth("t")
        .json(&serde_json::json!({"in": "5s", "rps": 20000, "for": "1m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    eventually(
        Duration::from_secs(15),
        "warm reads for the announced surge",
        || warm_of(&table),
        |w| w.0 == 20_000,
    )
    .await;
    // Never lowered: traffic stops, warm throughput stays.
    traffic.set(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = warm_of(&table).await;
    assert_eq!(after.0, 20_000);
    assert!(after.1 >= write);
    let t = cloud().await.describe_table(&table).await.unwrap();
    assert_eq!(
        t.billing_mode,
        rapidscale::cloud::BillingMode::PayPerRequest
    );
    assert!(
        t.provisioned.is_none_or(|p| p.read == 0),
        "never provisioned: {t:?}"
    );
    let records = read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let warm: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Applied)
        .flat_map(|r| r.changes.iter().map(|c| (c.op.clone(), c.rule.clone())))
        .collect();
    assert!(
        warm.contains(&("warm_write".into(), "warm_trend".into())),
        "{warm:?}"
    );
    assert!(
        warm.contains(&("warm_read".into(), "announced".into())),
        "{warm:?}"
    );
    let status = d.get_json("/api/v1/status").await;
    assert_eq!(status["dynamodb"][0]["warm"]["read"], 20_000);
    drop(traffic);
    d.terminate().await;
}
