// The deciders and the actuator together, wired as the daemon wires them
// (`app::core::Core`), on the simulator in paused time: bursts of
// throttling and LimitExceededException must not turn into a storm of
// calls, and the decrease budget follows what AWS said.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::table::ResourceAdvice;
use crate::app::core::{Core, Persistence};
use crate::clock::{SharedClock, TokioClock};
use crate::cloud::{Capacity, Throughput};
use crate::config::Config;
use crate::ingest::lock;
use crate::series::{Arrival, Observation, StreamKind};
use crate::sim::cloud::SimCloud;
use crate::sim::{Fault, FaultKind, FaultWhen, SimSettings, SimWorld};

const CONFIG: &str = r#"
mode = "apply"
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
    core: Core<SimCloud>,
    shutdown: CancellationToken,
    t0: DateTime<Utc>,
    _dir: tempfile::TempDir,
}

impl World {
    fn calls(&self, op: &str) -> u64 {
        self.cloud.world().calls.get(op).copied().unwrap_or(0)
    }

    async fn read_capacity(&self) -> u64 {
        let t = self.cloud.describe_table("posts").await.unwrap();
        t.provisioned.unwrap().read
    }

    fn advice(&self) -> ResourceAdvice {
        self.core.board.decisions.tables.get()[0].clone()
    }
}

/// The daemon's deciding half on a simulated table of read `read`, fed
/// `rate` requests/s every 100 ms.
async fn start(read: u64, rate: u64, faults: Vec<Fault>) -> World {
    let t0 = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse("t.toml", CONFIG).unwrap();
    config.state_dir = dir.path().to_path_buf();
    let mut world = SimWorld::new(SimSettings::default());
    world.add_table("posts", Throughput { read, write: 50 }, &[]);
    for f in faults {
        world.add_fault(f);
    }
    let cloud = Arc::new(SimCloud::new(world, clock.clone()));
    let core = Core::build(
        config,
        clock.clone(),
        Some(cloud.clone()),
        Persistence::Durable,
    )
    .await;
    let stream = core.config.ingest.requests_stream.clone().unwrap();
    let id = lock(&core.store).register(&stream, StreamKind::Push);
    let shutdown = CancellationToken::new();
    core.spawn_deciding(&TaskTracker::new(), &shutdown, &shutdown);
    let (store, token) = (core.store.clone(), shutdown.clone());
    let rate = Arc::new(AtomicU64::new(rate));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !token.is_cancelled() {
            tick.tick().await;
            let now = clock.now();
            let mut s = lock(&store);
            let _ = s.observe(
                id,
                now.timestamp(),
                Observation::Count(rate.load(Ordering::SeqCst) as f64 / 10.0),
                Arrival::at(now),
            );
            s.seal(now.timestamp());
        }
    });
    World {
        cloud,
        core,
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
    )
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = w.calls("UpdateTable");
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
    )
    .await;
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
