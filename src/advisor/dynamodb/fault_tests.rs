// The advisor and the actuator together, on the simulator in paused time:
// bursts of throttling and LimitExceededException must not turn into a
// storm of calls, and the decrease budget follows what AWS said.
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::actuator::RetryPolicy;
use crate::clock::TokioClock;
use crate::cloud::tracker::CloudView;
use crate::series::{Arrival, Observation, StoreConfig, StreamKind};
use crate::sim::cloud::SimCloud;
use crate::sim::{Fault, FaultKind, FaultWhen, SimSettings, SimWorld};
use crate::state::BudgetStore;

const CONFIG: &str = r#"
mode = "apply"
state_dir = "unused"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[dynamodb]
poll_interval = "1s"
burst_share = 0.0
down_window = "10s"
smooth = "10s"
[[dynamodb.tables]]
name = "posts"
read = { target = 0.5, min = 1, max = 100000, per_request = 1 }
"#;

struct World {
    cloud: Arc<SimCloud>,
    advice: SharedAdvice,
    shutdown: CancellationToken,
    t0: DateTime<Utc>,
    _dir: tempfile::TempDir,
}

impl World {
    fn calls(&self, op: &str) -> u64 {
        self.cloud
            .world
            .lock()
            .unwrap()
            .calls
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    async fn read_capacity(&self) -> u64 {
        let t = self.cloud.describe_table("posts").await.unwrap();
        t.provisioned.unwrap().read
    }

    fn advice(&self) -> ResourceAdvice {
        self.advice.read().unwrap()[0].clone()
    }
}

/// The daemon's DynamoDB half on a simulated table of read 100, fed
/// `rate` requests/s (changeable) every 100 ms.
fn start(read: u64, rate: u64, faults: Vec<Fault>) -> World {
    let t0 = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
    let config = Arc::new(Config::parse("t.toml", CONFIG).unwrap());
    let mut store = SeriesStore::new(StoreConfig::default());
    let stream = config.ingest.requests_stream.clone().unwrap();
    let id = store.register(&stream, StreamKind::Push);
    let store: SharedStore = Arc::new(Mutex::new(store));
    let mut world = SimWorld::new(SimSettings::default());
    world.add_table("posts", Throughput { read, write: 50 }, &[]);
    for f in faults {
        world.add_fault(f);
    }
    let cloud = Arc::new(SimCloud::new(world, clock.clone()));
    let dir = tempfile::tempdir().unwrap();
    let (audit, _) = crate::audit::AuditLog::open(dir.path(), clock.now());
    let view: SharedView = Arc::new(RwLock::new(CloudView::default()));
    let actuator = Arc::new(Actuator {
        cloud: cloud.clone(),
        audit: Arc::new(audit),
        budget: Arc::new(Mutex::new(BudgetStore::load(dir.path()).unwrap())),
        view: view.clone(),
        clock: clock.clone(),
        retry: RetryPolicy::default(),
        settle_timeout: Duration::from_secs(60),
        fence: None,
        calls_in_flight: Default::default(),
    });
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(crate::cloud::tracker::track_tables(
        cloud.clone(),
        vec!["posts".into()],
        Duration::from_secs(1),
        view.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    let advice: SharedAdvice = Arc::new(RwLock::new(Vec::new()));
    let advisor = DynamoAdvisor::new(
        config,
        store.clone(),
        view,
        clock.clone(),
        actuator,
        advice.clone(),
        tasks.clone(),
    );
    tasks.spawn(advisor.run(shutdown.clone()));
    let rate = Arc::new(AtomicU64::new(rate));
    let r = rate.clone();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !token.is_cancelled() {
            tick.tick().await;
            let now = clock.now();
            let mut s = lock(&store);
            let _ = s.observe(
                id,
                now.timestamp(),
                Observation::Count(r.load(Ordering::SeqCst) as f64 / 10.0),
                Arrival::at(now),
            );
            s.seal(now.timestamp());
        }
    });
    World {
        cloud,
        advice,
        shutdown,
        t0,
        _dir: dir,
    }
}

#[tokio::test(start_paused = true)]
async fn a_minute_of_throttling_costs_a_bounded_number_of_calls() {
    let t0 = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
    let w = start(
        100,
        1000,
        vec![Fault {
            kind: FaultKind::Throttled,
            operation: Some("UpdateTable"),
            when: FaultWhen::Window {
                from: t0,
                until: t0 + chrono::TimeDelta::seconds(60),
            },
        }],
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = w.calls("UpdateTable");
    eprintln!("UpdateTable calls during 60 s of throttling: {during}");
    assert!(during >= 3, "it kept trying: {during}");
    assert!(during <= 30, "a retry storm: {during} calls in 60 s");
    // Once AWS takes calls again, the increase lands: within the longest
    // pause (60 s) and the 15 s the simulator takes to apply it.
    tokio::time::sleep(Duration::from_secs(90)).await;
    let read = w.read_capacity().await;
    assert!(read >= 1800, "{read}");
    w.shutdown.cancel();
}

/// Every decrease refused with LimitExceededException for an hour: one
/// refused call, then the ledger blocks decreases for the hour instead of
/// asking again; afterwards the decrease is made and the budget agrees with
/// what DynamoDB counts.
#[tokio::test(start_paused = true)]
async fn limit_exceeded_blocks_decreases_instead_of_retrying_and_the_budget_follows_aws() {
    let t0 = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
    let w = start(
        2000,
        50,
        vec![Fault {
            kind: FaultKind::LimitExceeded,
            operation: Some("UpdateTable"),
            when: FaultWhen::Window {
                from: t0,
                until: t0 + chrono::TimeDelta::minutes(50),
            },
        }],
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    let first = w.calls("UpdateTable");
    assert!((1..=2).contains(&first), "{first} calls");
    let a = w.advice();
    assert!(
        a.next_decrease_at >= w.t0 + chrono::TimeDelta::minutes(55),
        "the ledger blocks decreases for the hour: {:?}",
        a.next_decrease_at
    );
    // 45 minutes of wanting the decrease: no further call.
    tokio::time::sleep(Duration::from_secs(45 * 60)).await;
    assert_eq!(w.calls("UpdateTable"), first);
    // After the hour the decrease is made, and rapidscale's count of the
    // day's decreases is DynamoDB's.
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    let read = w.read_capacity().await;
    assert!(read < 2000, "{read}");
    let described = w.cloud.describe_table("posts").await.unwrap();
    assert_eq!(
        Some(w.advice().decreases_used_today as u64),
        described.decreases_today,
        "{:?}",
        w.advice()
    );
    assert!(described.decreases_today >= Some(1));
    w.shutdown.cancel();
}
