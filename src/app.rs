//! The only wiring: binds sockets, registers streams, spawns every task
//! under one tracker, and stops them in order when `shutdown` fires.
//!
//! Shutdown order: ingest stops first (sources see the token), then the
//! trackers and the API; the whole drain is bounded by [`SHUTDOWN_GRACE`],
//! or by [`CALL_GRACE`] more while a change sent to AWS has no answer yet.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::actuator::{Actuator, RetryPolicy};
use crate::advisor::asg::{GroupAdvisor, SharedGroupAdvice};
use crate::advisor::dynamodb::{DynamoAdvisor, SharedAdvice};
use crate::api::{self, ApiState};
use crate::audit::AuditLog;
use crate::clock::SharedClock;
use crate::cloud::aws::AwsCloud;
use crate::cloud::metered::{CallMetrics, Metered};
use crate::cloud::tracker::{self, CloudView, SharedView};
use crate::cloud::CloudBackend;
use crate::cloudwatch::calibrate::SharedCalibration;
use crate::cloudwatch::watch::{initial_calibration, SharedWatchStatus, Watcher};
use crate::cloudwatch::{Publisher, SharedPublishStatus};
use crate::config::{AsgConfig, Config, Mode};
use crate::coord::task::{Election, Fence, Heartbeats, Role, SharedCoordination, SharedRole};
use crate::ingest::access_log::{self, Follower};
use crate::ingest::statsd::{self, StatsdRouter};
use crate::ingest::status_page::{self, StatusPoller};
use crate::ingest::{lock, CounterSnapshot, SharedStore, Sink, SourceCounters};
use crate::mode::ModeSwitch;
use crate::series::{SeriesStore, StoreConfig, StreamKind};
use crate::state::BudgetStore;

/// How long tasks get to finish after the stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Longer wait at shutdown while an UpdateTable or SetDesiredCapacity is in
/// flight: the SDK's attempt timeout (5 s) and a margin, within the 10 s
/// stop timeouts of deploy/ (ECS `stopTimeout`, systemd `TimeoutStopSec`).
pub const CALL_GRACE: Duration = Duration::from_secs(6);
/// How often traffic and ingest-drop summaries are logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Addresses actually bound (ports may have been 0 in the config).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub statsd: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
}

fn store_config(config: &Config) -> StoreConfig {
    StoreConfig {
        seconds_kept: config.series.per_second.as_secs().max(60) as usize,
        minutes_kept: (config.series.per_minute.as_secs() / 60).max(60) as usize,
        grace_s: config.ingest.grace.as_secs_f64().ceil() as i64,
        silence_after_s: config.ingest.stale_after.as_secs().max(1) as i64,
    }
}

/// Runs the daemon against AWS until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let needs_aws = !config.dynamodb.tables.is_empty()
        || config.asg.is_some()
        || config.coordination.is_some()
        || config.cloudwatch.publish;
    let cloud = if needs_aws {
        Some(Arc::new(AwsCloud::connect(&config.aws).await))
    } else {
        None
    };
    // Coordination and CloudWatch publishing need the AWS client itself.
    let aws = cloud.clone().filter(|_| {
        config.coordination.is_some()
            || config.cloudwatch.publish
            || (config.cloudwatch.observe && !config.dynamodb.tables.is_empty())
    });
    run_with(config, clock, cloud, aws, None, shutdown).await
}

/// Runs the daemon against any cloud backend (AWS, or the simulator for
/// `demo`); `started` receives the bound addresses once everything listens.
pub async fn run_with<C: CloudBackend>(
    mut config: Config,
    clock: SharedClock,
    cloud: Option<Arc<C>>,
    aws: Option<Arc<AwsCloud>>,
    started: Option<tokio::sync::oneshot::Sender<Bound>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tasks = TaskTracker::new();
    let started_at = clock.now();
    let store: SharedStore = Arc::new(Mutex::new(SeriesStore::new(store_config(&config))));
    let view: SharedView = Arc::new(RwLock::new(CloudView::default()));
    let mut counters: Vec<Arc<SourceCounters>> = Vec::new();
    let mut bound = Bound::default();

    // Streams first, so ids are fixed before any source starts.
    let routes: Vec<_> = {
        let mut s = lock(&store);
        for name in config.request_streams() {
            let kind = if config.ingest.status_pages.iter().any(|p| p.stream == name) {
                StreamKind::Poll
            } else {
                StreamKind::Push
            };
            s.register(&name, kind);
        }
        config
            .statsd_routes()
            .into_iter()
            .map(|(sel, stream)| (sel, s.register(&stream, StreamKind::Push)))
            .collect()
    };

    // The minute history of earlier runs (the per-hour view survives restarts).
    match crate::profile::history::load(&config.state_dir) {
        Ok(history) if !history.is_empty() => {
            crate::profile::history::restore(&mut lock(&store), &history);
            tracing::info!(
                streams = history.len(),
                minutes = history.values().map(Vec::len).sum::<usize>(),
                "Minute history restored."
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the minute history: starting without it.")
        }
    }

    let router = Arc::new(StatsdRouter::new(routes));
    let mut http_ingest = None;
    if let Some(cfg) = &config.ingest.statsd {
        // The same selectors serve POST /api/v1/ingest, with their own counters.
        let c = SourceCounters::new("http_ingest");
        c.set_up(true);
        http_ingest = Some(api::HttpIngest {
            router: router.clone(),
            sink: Sink {
                store: store.clone(),
                clock: clock.clone(),
                counters: c,
            },
        });
        let socket =
            bind_udp(cfg.listen).with_context(|| format!("bind StatsD socket {}", cfg.listen))?;
        let addr = socket.local_addr()?;
        bound.statsd = Some(addr);
        tracing::info!(statsd = %addr, "StatsD listening.");
        let c = SourceCounters::new("statsd");
        // Bound above: it takes datagrams from now on.
        c.set_up(true);
        counters.push(c.clone());
        let sink = Sink {
            store: store.clone(),
            clock: clock.clone(),
            counters: c,
        };
        tasks.spawn(
            statsd::run(
                socket,
                cfg.max_packet_bytes,
                router.clone(),
                sink,
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("statsd")),
        );
    }

    if let Some(h) = &http_ingest {
        counters.push(h.sink.counters.clone());
    }

    for cfg in &config.ingest.access_logs {
        let c = SourceCounters::new(format!("access_log:{}", cfg.stream));
        counters.push(c.clone());
        let sink = Sink {
            store: store.clone(),
            clock: clock.clone(),
            counters: c,
        };
        let stream = lock(&store).id(&cfg.stream).expect("registered above");
        let mut follower = Follower::new(&cfg.path, cfg.start_at.clone(), cfg.max_line_bytes);
        if let Err(e) = follower.open_at_start() {
            // Not fatal: the task retries, as `tail -F` does.
            tracing::warn!(path = %cfg.path.display(), error = %e, "Cannot open access log yet.");
        }
        tasks.spawn(
            access_log::run(
                follower,
                cfg.format.clone(),
                stream,
                cfg.poll_interval,
                sink,
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("access_log", stream = %cfg.stream)),
        );
    }

    for cfg in &config.ingest.status_pages {
        let c = SourceCounters::new(format!("status_page:{}", cfg.stream));
        counters.push(c.clone());
        let sink = Sink {
            store: store.clone(),
            clock: clock.clone(),
            counters: c,
        };
        let poller = StatusPoller {
            url: cfg.url.clone(),
            kind: cfg.kind,
            stream: lock(&store).id(&cfg.stream).expect("registered above"),
            interval: cfg.interval,
            timeout: cfg.timeout,
        };
        tasks.spawn(
            status_page::run(poller, sink, shutdown.clone())
                .instrument(tracing::info_span!("status_page", stream = %cfg.stream)),
        );
    }

    tasks.spawn(
        seal_and_summarize(
            store.clone(),
            clock.clone(),
            counters.clone(),
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("series")),
    );

    let (audit, audit_error) = AuditLog::open(&config.state_dir, clock.now());
    if let Some(e) = audit_error {
        tracing::error!(error = %e, "Audit log unavailable: decisions are kept in memory and nothing is applied.");
    }
    let audit = Arc::new(audit);
    let budget = match BudgetStore::load(&config.state_dir) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "Cannot read the decrease budget: running every table in dry-run until it is repaired.");
            config.mode = Mode::DryRun;
            for t in &mut config.dynamodb.tables {
                t.mode = Some(Mode::DryRun);
            }
            BudgetStore::empty(&config.state_dir)
        }
    };
    let budget = Arc::new(Mutex::new(budget));
    let advice: SharedAdvice = Arc::new(RwLock::new(Vec::new()));
    // `per_request = "auto"`: the fallbacks until the watcher's first fit.
    let calibration: SharedCalibration = Arc::new(RwLock::new(initial_calibration(&config)));
    let watch_status: SharedWatchStatus = Arc::new(RwLock::new(Default::default()));

    let group_advice: SharedGroupAdvice = Arc::new(RwLock::new(None));
    let tables: Vec<String> = config
        .dynamodb
        .tables
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let coordination: SharedCoordination = Arc::new(RwLock::new(None));
    let mut fence: Option<Arc<Fence>> = None;
    let mut leadership: Option<SharedRole> = None;
    if let (Some(cfg), Some(aws)) = (config.coordination.clone(), aws.clone()) {
        let instance_id = match &cfg.instance_id {
            Some(id) => Some(id.clone()),
            None => {
                let endpoint = config
                    .asg
                    .as_ref()
                    .map_or("http://169.254.169.254".to_string(), |a| {
                        a.metadata_endpoint.clone()
                    });
                let ecs = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok();
                match crate::cloud::identity::discover(&endpoint, ecs.as_deref()).await {
                    Ok(i) => Some(i.instance_id),
                    Err(e) => {
                        tracing::error!(error = %e, "Coordination needs this instance's id: set coordination.instance_id or run on EC2.");
                        None
                    }
                }
            }
        };
        if let Some(instance_id) = instance_id {
            let role: SharedRole = Arc::new(RwLock::new(Role::Follower));
            leadership = Some(role.clone());
            fence = Some(Arc::new(Fence {
                cloud: aws.clone(),
                table: cfg.table.clone(),
                cluster: cfg.cluster.clone(),
                instance_id: instance_id.clone(),
                role: role.clone(),
            }));
            tasks.spawn(
                Election {
                    cloud: aws.clone(),
                    table: cfg.table.clone(),
                    cluster: cfg.cluster.clone(),
                    instance_id: instance_id.clone(),
                    lease: cfg.lease,
                    renew_every: cfg.renew_every,
                    clock: clock.clone(),
                    role: role.clone(),
                }
                .run(shutdown.clone())
                .instrument(tracing::info_span!("election")),
            );
            let heartbeats = Heartbeats {
                role,
                cloud: aws,
                config: cfg,
                instance_id,
                grace_s: config.ingest.grace.as_secs_f64().ceil() as i64,
                store: store.clone(),
                view: view.clone(),
                clock: clock.clone(),
                status: coordination.clone(),
            };
            tasks.spawn(
                heartbeats
                    .run(shutdown.clone())
                    .instrument(tracing::info_span!("coordination")),
            );
        }
    }
    let modes = Arc::new(ModeSwitch::default());
    let call_metrics = CallMetrics::default();
    let calls_in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cloud = cloud.map(|inner| {
        Arc::new(Metered {
            inner,
            metrics: call_metrics.clone(),
        })
    });
    if let Some(cloud) = cloud.filter(|_| !tables.is_empty() || config.asg.is_some()) {
        let actuator = Arc::new(Actuator {
            cloud: cloud.clone(),
            audit: audit.clone(),
            budget: budget.clone(),
            view: view.clone(),
            clock: clock.clone(),
            retry: RetryPolicy::default(),
            settle_timeout: Duration::from_secs(300),
            fence: fence.clone(),
            calls_in_flight: calls_in_flight.clone(),
        });
        let shared_config = Arc::new(config.clone());
        if !tables.is_empty() {
            tasks.spawn(
                tracker::track_tables(
                    cloud.clone(),
                    tables,
                    config.dynamodb.poll_interval,
                    view.clone(),
                    clock.clone(),
                    shutdown.clone(),
                )
                .instrument(tracing::info_span!("dynamodb")),
            );
            let mut advisor = DynamoAdvisor::new(
                shared_config.clone(),
                store.clone(),
                view.clone(),
                clock.clone(),
                actuator.clone(),
                advice.clone(),
                tasks.clone(),
            );
            advisor.modes = modes.clone();
            advisor.calibration = Some(calibration.clone());
            advisor.leadership = leadership.clone();
            if leadership.is_some() {
                advisor.coordination = Some(coordination.clone());
            }
            tasks.spawn(
                advisor
                    .run(shutdown.clone())
                    .instrument(tracing::info_span!("dynamodb_advisor")),
            );
        }
        if let Some(asg) = config.asg.clone() {
            // Discovery and DescribePolicies talk to AWS: they run in their
            // own task so start-up and a stop signal never wait for them.
            let (
                cloud,
                view,
                clock,
                store,
                actuator,
                group_advice,
                tracker_tasks,
                token,
                shared_config,
                group_modes,
                group_leadership,
                group_coordination,
            ) = (
                cloud.clone(),
                view.clone(),
                clock.clone(),
                store.clone(),
                actuator.clone(),
                group_advice.clone(),
                tasks.clone(),
                shutdown.clone(),
                shared_config.clone(),
                modes.clone(),
                leadership.clone(),
                coordination.clone(),
            );
            tasks.spawn(
                async move {
                    let setup = async {
                        let group = resolve_group(cloud.as_ref(), &asg).await?;
                        let foreign = match cloud.scaling_policies(&group).await {
                            Ok(p) => p,
                            Err(e) => {
                                tracing::warn!(group = %group, error = %e, "Cannot list the group's scaling policies.");
                                Vec::new()
                            }
                        };
                        if !foreign.is_empty() {
                            tracing::warn!(group = %group, policies = %foreign.join(", "), "The group has its own scaling policies; they may fight rapidscale's decisions.");
                        }
                        Some((group, foreign))
                    };
                    let resolved = tokio::select! {
                        _ = token.cancelled() => return,
                        r = setup => r,
                    };
                    let Some((group, foreign)) = resolved else {
                        tracing::error!("The Auto Scaling group is unknown: set asg.name, or run on an instance of the group.");
                        return;
                    };
                    tracker_tasks.spawn(
                        tracker::track_group(cloud.clone(), group.clone(), asg.poll_interval, view.clone(), clock.clone(), token.clone())
                            .instrument(tracing::info_span!("asg")),
                    );
                    let mut advisor = GroupAdvisor::new(shared_config, group, store, view, clock, actuator, group_advice, tracker_tasks.clone(), foreign);
                    advisor.modes = group_modes;
                    advisor.coordination = group_leadership.as_ref().map(|_| group_coordination.clone());
                    advisor.leadership = group_leadership;
                    advisor.run(token).await;
                }
                .instrument(tracing::info_span!("asg_advisor")),
            );
        }
    }

    if let (true, Some(aws)) = (
        config.cloudwatch.observe && !config.dynamodb.tables.is_empty(),
        aws.clone(),
    ) {
        let watcher = Watcher {
            cloud: aws,
            config: Arc::new(config.clone()),
            store: store.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            calibration: calibration.clone(),
            status: watch_status.clone(),
            advice: advice.clone(),
            leadership: leadership.clone(),
        };
        tasks.spawn(
            watcher
                .run(shutdown.clone())
                .instrument(tracing::info_span!("cloudwatch_watch")),
        );
    }

    {
        let (store, dir, token) = (store.clone(), config.state_dir.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut every = tokio::time::interval(crate::profile::history::SAVE_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = every.tick() => {}
                }
                // Snapshot under the lock, write outside it.
                let minutes = crate::profile::history::snapshot(&lock(&store));
                let dir = dir.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = crate::profile::history::save(&dir, &minutes) {
                        tracing::warn!(error = %e, "Cannot save the minute history.");
                    }
                })
                .await;
            }
        });
    }

    let publish: SharedPublishStatus = Arc::new(RwLock::new(None));
    if let (true, Some(aws)) = (config.cloudwatch.publish, aws.clone()) {
        let publisher = Publisher {
            cloud: aws,
            config: config.cloudwatch.clone(),
            store: store.clone(),
            advice: advice.clone(),
            group_advice: group_advice.clone(),
            leadership: leadership.clone(),
            status: publish.clone(),
        };
        tasks.spawn(
            publisher
                .run(shutdown.clone())
                .instrument(tracing::info_span!("cloudwatch")),
        );
    }

    if let Some(api_cfg) = &config.api {
        let listener = TcpListener::bind(api_cfg.listen)
            .await
            .with_context(|| format!("bind API listener {}", api_cfg.listen))?;
        let addr = listener.local_addr()?;
        bound.api = Some(addr);
        tracing::info!(api = %addr, "API listening.");
        let state = ApiState {
            mode: config.mode,
            store: store.clone(),
            counters: counters.clone(),
            view: view.clone(),
            clock: clock.clone(),
            started_at,
            advice: advice.clone(),
            group_advice: group_advice.clone(),
            audit: audit.clone(),
            http_ingest: http_ingest.clone(),
            modes: modes.clone(),
            coordination: coordination.clone(),
            publish: publish.clone(),
            calibration: calibration.clone(),
            watch: watch_status.clone(),
            token: api_cfg.token.clone(),
            call_metrics: call_metrics.clone(),
            known_resources: known_resources(&config),
            streams: Arc::new(tokio::sync::Semaphore::new(api::MAX_STREAMS)),
            config: Arc::new(config.clone()),
            readiness: api::Readiness {
                tables: config
                    .dynamodb
                    .tables
                    .iter()
                    .map(|t| t.name.clone())
                    .collect(),
                group: config.asg.is_some(),
                table_fresh_within: config.dynamodb.poll_interval * 3,
                group_fresh_within: config
                    .asg
                    .as_ref()
                    .map_or(Duration::from_secs(30), |g| g.poll_interval * 3),
                requests_stream: config.ingest.requests_stream.clone(),
                stale_after: config.ingest.stale_after,
            },
        };
        let token = shutdown.clone();
        tasks.spawn(
            async move {
                if let Err(e) = api::serve(listener, state, token).await {
                    tracing::error!(error = %e, "API server failed.");
                }
            }
            .instrument(tracing::info_span!("api")),
        );
    }

    tracing::info!(mode = ?config.mode, statsd = ?bound.statsd, api = ?bound.api, "rapidscale started.");
    if let Some(tx) = started {
        let _ = tx.send(bound.clone());
    }
    shutdown.cancelled().await;
    tracing::info!("Stopping.");
    save_history(&config.state_dir, &store);
    tasks.close();
    let in_flight = || calls_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_ok();
    if !drained && in_flight() > 0 {
        // A change sent to AWS is let finish, so that its completed record
        // says what happened; it cannot take longer than one attempt.
        tracing::warn!(
            calls = in_flight(),
            wait_ms = CALL_GRACE.as_millis() as u64,
            "Waiting for the AWS call in flight before stopping."
        );
        let _ = tokio::time::timeout(CALL_GRACE, tasks.wait()).await;
    }
    if in_flight() > 0 {
        tracing::error!(
            calls = in_flight(),
            "Stopping with an AWS call unanswered: its audit record has no completion."
        );
    } else if !drained {
        tracing::warn!(
            grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
            "Some tasks did not stop in time."
        );
    }
    tracing::info!("Stopped.");
    Ok(())
}

/// Writes the minute history; a failure is logged, never fatal.
fn save_history(state_dir: &std::path::Path, store: &SharedStore) {
    let minutes = crate::profile::history::snapshot(&lock(store));
    if let Err(e) = crate::profile::history::save(state_dir, &minutes) {
        tracing::warn!(error = %e, "Cannot save the minute history.");
    }
}

/// Names `POST /api/v1/mode` accepts: tables, `table/index`, the group.
fn known_resources(config: &Config) -> Vec<String> {
    let mut names = Vec::new();
    for t in &config.dynamodb.tables {
        names.push(t.name.clone());
        for i in &t.indexes {
            names.push(crate::actuator::resource_key(&t.name, Some(&i.name)));
        }
    }
    if let Some(name) = config.asg.as_ref().and_then(|a| a.name.clone()) {
        names.push(name);
    }
    names
}

/// Binds the StatsD socket with a large receive buffer: bursts of
/// datagrams must queue in the kernel, not be dropped there.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // The kernel caps this at net.core.rmem_max; a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let effective = socket.recv_buffer_size().unwrap_or(0);
    tracing::debug!(bytes = effective, "StatsD receive buffer.");
    UdpSocket::from_std(socket.into())
}

/// Seals seconds as their grace window passes; every 10 s logs traffic per
/// stream and any new ingest drops.
async fn seal_and_summarize(
    store: SharedStore,
    clock: SharedClock,
    counters: Vec<Arc<SourceCounters>>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_summary = tokio::time::Instant::now();
    let mut last_counts: Vec<CounterSnapshot> = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        lock(&store).seal(clock.unix_seconds());
        if last_summary.elapsed() < SUMMARY_EVERY {
            continue;
        }
        last_summary = tokio::time::Instant::now();
        let traffic = {
            let s = lock(&store);
            s.stream_ids()
                .map(|id| {
                    let sum = s.summary(id);
                    let fmt =
                        |x: Option<f64>| x.map_or("unknown".to_string(), |v| format!("{v:.1}"));
                    format!(
                        "{} last={} mean10={}",
                        sum.name,
                        fmt(sum.last_value),
                        fmt(sum.mean_10s)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        tracing::info!(streams = %traffic, "Requests per second.");
        let now_counts: Vec<CounterSnapshot> = counters.iter().map(|c| c.snapshot()).collect();
        for now in &now_counts {
            let before = last_counts.iter().find(|b| b.source == now.source);
            let new_drops = now.drops_since(before);
            if !new_drops.is_empty() {
                let text = new_drops
                    .iter()
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::warn!(source = %now.source, dropped = %text, "Dropped malformed or late input in the last 10 s.");
            }
        }
        last_counts = now_counts;
    }
}

/// The group's name: configured, or discovered from instance metadata.
async fn resolve_group<C: CloudBackend>(cloud: &C, asg: &AsgConfig) -> Option<String> {
    if let Some(name) = &asg.name {
        return Some(name.clone());
    }
    let ecs = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok();
    let identity =
        match crate::cloud::identity::discover(&asg.metadata_endpoint, ecs.as_deref()).await {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "Cannot discover this instance's identity.");
                return None;
            }
        };
    match cloud.group_of_instance(&identity.instance_id).await {
        Ok(Some(group)) => {
            tracing::info!(instance = %identity.instance_id, group = %group, ecs_cluster = ?identity.ecs_cluster, ecs_task = ?identity.ecs_task_arn, "Discovered the Auto Scaling group.");
            Some(group)
        }
        Ok(None) => {
            tracing::error!(instance = %identity.instance_id, "This instance is in no Auto Scaling group.");
            None
        }
        Err(e) => {
            tracing::error!(instance = %identity.instance_id, error = %e, "Cannot look up this instance's group.");
            None
        }
    }
}
