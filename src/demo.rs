//! `rapidscale demo`: a simulated fleet, no AWS account.
//!
//! The simulator holds the config's tables and group. Every InService
//! instance of the group runs its own rapidscale sidecar (`app::run_with`
//! in this process, with `[coordination]` on the simulator's coordination
//! table): the sidecars elect one leader, which reads the fleet's total
//! from their heartbeats and is the only one that acts. A simulated load
//! balancer spreads the traffic over the instances that are InService and
//! have their sidecar up (a new instance receives nothing while it boots).
//! Each instance's application sends its requests to its sidecar as StatsD
//! timers (one in ten requests, sampled at 0.1, with a latency that grows
//! when the group cannot serve them all), and uses the tables (their
//! consumed capacity shows in the simulator's CloudWatch).
//!
//! Traffic: the bundled NASA trace at `speed` x (each real second carries
//! `speed` seconds of the trace, times `scale`), plus a push-notification
//! surge every `surge_every`: the rate jumps to `SURGE_AMP` x within 5 s
//! and decays with a 60 s time constant. The first instance's sidecar
//! serves the dashboard and API; decisions are printed as the sidecars'
//! audit logs record them.

use std::collections::BTreeMap;
use std::io::{BufRead, Seek};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::sources::DatagramFeed;
use crate::app::{Bound, Source};
use crate::audit::{AuditRecord, Phase};
use crate::clock::{SharedClock, SystemClock};
use crate::cloud::{Coordination, Throughput};
use crate::config::{Config, CoordinationConfig, FleetView};
use crate::replay::trace::{self, TraceOptions};
use crate::sim::cloud::SimCloud;
use crate::sim::{SimSettings, SimWorld};

/// The configuration `demo` runs with unless given another.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
/// The bundled trace (see tests/data/README.md).
static TRACE: &[u8] = include_bytes!("../tests/data/nasa_jul95_week2.csv.gz");

pub const SURGE_AMP: f64 = 5.0;
const SURGE_DECAY_S: f64 = 60.0;
const TICK: Duration = Duration::from_millis(100);
/// The coordination table the simulated sidecars share.
pub const DEMO_COORDINATION_TABLE: &str = "rapidscale-demo";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub speed: f64,
    pub scale: f64,
    pub surge_every: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            speed: 60.0,
            scale: 10.0,
            surge_every: Duration::from_secs(240),
        }
    }
}

/// How each instance's application reaches its sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// StatsD over UDP, as a real application sends it.
    Udp,
    /// The same datagrams handed over in process (tests on a paused clock).
    InProcess,
}

/// A simulated account holding the config's tables (at their minimum
/// capacity) and group (at its minimum size).
pub fn world_for(config: &Config, now: chrono::DateTime<chrono::Utc>) -> SimWorld {
    let mut world = SimWorld::new(SimSettings::default());
    let at_min = |read: Option<&crate::config::CapacitySpec>,
                  write: Option<&crate::config::CapacitySpec>| {
        let min = |s: Option<&crate::config::CapacitySpec>| {
            s.map_or(5, |s| {
                s.hours.iter().map(|l| l.min).min().unwrap_or(5).max(1)
            })
        };
        Throughput {
            read: min(read),
            write: min(write),
        }
    };
    for t in &config.dynamodb.tables {
        let indexes: Vec<(&str, Throughput)> = t
            .indexes
            .iter()
            .map(|i| (i.name.as_str(), at_min(i.read.as_ref(), i.write.as_ref())))
            .collect();
        world.add_table(&t.name, at_min(t.read.as_ref(), t.write.as_ref()), &indexes);
    }
    if let Some(asg) = &config.asg {
        let min = asg.hours.iter().map(|h| h.min).min().unwrap_or(1);
        let max = asg.hours.iter().map(|h| h.max).max().unwrap_or(min);
        let name = asg.name.clone().unwrap_or_else(|| "web".to_string());
        world.add_group(&name, min, min, max, now);
    }
    world
}

/// What the fleet did in one second, for the printer and for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSecond {
    /// Seconds since the demo started.
    pub t: f64,
    /// Requests/s the load balancer received.
    pub rate: f64,
    pub desired: u32,
    pub in_service: u32,
    /// Instances whose sidecar receives traffic.
    pub sidecars: u32,
}

/// One instance's sidecar.
struct Sidecar {
    stop: CancellationToken,
    to_app: Option<Delivery>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Where an instance's application sends its datagrams.
#[derive(Clone)]
enum Delivery {
    Udp(SocketAddr),
    InProcess(mpsc::Sender<Vec<u8>>),
}

/// The simulated fleet: the account, one sidecar per InService instance.
pub struct Fleet {
    config: Config,
    cloud: Arc<SimCloud>,
    clock: SharedClock,
    dir: PathBuf,
    transport: Transport,
    group: String,
    sidecars: BTreeMap<String, Sidecar>,
    /// The instance whose sidecar serves the API (the first one).
    console: Option<String>,
    /// The console's bound addresses, once it listens.
    pub console_bound: Option<Bound>,
    /// A minute history for the console to start with.
    history: Option<History>,
}

/// A minute history by stream, as `profile::history` saves it.
type History = BTreeMap<String, Vec<(i64, crate::series::MinutePoint)>>;

impl Fleet {
    /// The config one instance's sidecar runs with.
    fn sidecar_config(&self, instance: &str, console: bool) -> Config {
        let mut c = self.config.clone();
        c.state_dir = self.dir.join(instance);
        if !console {
            c.api = None;
        }
        let coordination = c.coordination.get_or_insert_with(|| CoordinationConfig {
            table: DEMO_COORDINATION_TABLE.to_string(),
            cluster: self.group.clone(),
            instance_id: None,
            stale_after: CoordinationConfig::DEFAULT_STALE_AFTER,
            lease: CoordinationConfig::DEFAULT_LEASE,
            renew_every: CoordinationConfig::DEFAULT_RENEW_EVERY,
        });
        coordination.instance_id = Some(instance.to_string());
        c.fleet = FleetView::Sidecar;
        if let Some(s) = &mut c.ingest.statsd {
            s.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        }
        c
    }

    async fn start_sidecar(&mut self, instance: &str) -> anyhow::Result<()> {
        let console = self.console.is_none();
        let config = self.sidecar_config(instance, console);
        if let Some(history) = self.history.take().filter(|_| console) {
            if let Err(e) = crate::profile::history::save(&config.state_dir, &history) {
                tracing::warn!(error = %e, "Cannot seed the demo's minute history.");
            }
        }
        let stream = config
            .ingest
            .statsd
            .as_ref()
            .map(|s| s.stream.clone())
            .ok_or_else(|| anyhow::anyhow!("the demo needs [ingest.statsd] in its config"))?;
        let (sources, in_process) = match self.transport {
            Transport::Udp => (Source::configured(&config), None),
            Transport::InProcess => {
                let (tx, feed) = DatagramFeed::new(&stream, 4096);
                (vec![Source::Datagrams(feed)], Some(tx))
            }
        };
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            crate::app::run_with(
                config,
                self.clock.clone(),
                Some(self.cloud.clone()),
                sources,
                Some(started_tx),
                stop.clone(),
            )
            .instrument(tracing::info_span!("sidecar", instance = %instance)),
        );
        let bound = match started_rx.await {
            Ok(b) => b,
            // It stopped before it started: its error says why.
            Err(_) => return task.await?,
        };
        let to_app = match (in_process, bound.statsd) {
            (Some(tx), _) => Some(Delivery::InProcess(tx)),
            (None, Some(addr)) => Some(Delivery::Udp(addr)),
            (None, None) => None,
        };
        if console {
            self.console = Some(instance.to_string());
            self.console_bound = Some(bound);
        }
        self.sidecars
            .insert(instance.to_string(), Sidecar { stop, to_app, task });
        Ok(())
    }

    /// Starts a sidecar on every InService instance that lacks one, and
    /// stops those of instances that left the group.
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        let in_service: Vec<String> = self
            .cloud
            .world()
            .group(&self.group)
            .map(|g| {
                g.instances
                    .iter()
                    .filter(|i| i.in_service)
                    .map(|i| i.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let gone: Vec<String> = self
            .sidecars
            .keys()
            .filter(|id| !in_service.contains(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(s) = self.sidecars.remove(&id) {
                s.stop.cancel();
                let _ = s.task.await;
            }
        }
        for id in in_service {
            if !self.sidecars.contains_key(&id) {
                self.start_sidecar(&id).await?;
                if self.sidecars.len() == 1 {
                    // The first sidecar takes the lease before the others start.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        Ok(())
    }

    /// Stops every sidecar.
    async fn stop(&mut self) {
        for s in self.sidecars.values() {
            s.stop.cancel();
        }
        for (_, s) in std::mem::take(&mut self.sidecars) {
            let _ = s.task.await;
        }
    }
}

/// Runs the demo until `shutdown`, printing decisions as they happen.
pub async fn run(
    mut config: Config,
    opts: DemoOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rapidscale-demo-{}", std::process::id()));
    config.state_dir = dir.clone();
    let clock: SharedClock = Arc::new(SystemClock);
    let trace = trace::read("bundled trace", TRACE, true, &TraceOptions::default())?;
    let history = recorded_past(&config, &trace.requests, &opts, clock.now());
    println!(
        "Traffic: the NASA July 1995 trace at {}x speed, x{}, with a {}x surge every {} s, spread over the group's InService instances. Mode: {} (simulated AWS).",
        opts.speed,
        opts.scale,
        SURGE_AMP,
        opts.surge_every.as_secs(),
        config.mode.as_str()
    );
    let printer = tokio::spawn(print_decisions(dir.clone(), shutdown.clone()));
    let result = simulate(
        config,
        opts,
        clock,
        Transport::Udp,
        history,
        shutdown.clone(),
        |fleet: &Fleet| {
            if let Some(api) = fleet.console_bound.as_ref().and_then(|b| b.api) {
                println!("rapidscale demo: dashboard and API at http://{api}/ (Ctrl-C to stop)");
            }
        },
        |_| {},
    )
    .await;
    shutdown.cancel();
    let _ = printer.await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The simulated fleet and its traffic until `shutdown`. The first
/// sidecar starts with `history`; `on_start` sees the fleet once its first
/// sidecars listen; `each_second` gets what the fleet did every second.
#[allow(clippy::too_many_arguments)]
pub async fn simulate(
    config: Config,
    opts: DemoOptions,
    clock: SharedClock,
    transport: Transport,
    history: Option<History>,
    shutdown: CancellationToken,
    on_start: impl FnOnce(&Fleet),
    mut each_second: impl FnMut(FleetSecond),
) -> anyhow::Result<()> {
    let group = config
        .asg
        .as_ref()
        .and_then(|a| a.name.clone())
        .ok_or_else(|| anyhow::anyhow!("the demo needs [asg] with a name in its config"))?;
    let cloud = Arc::new(SimCloud::new(
        world_for(&config, clock.now()),
        clock.clone(),
    ));
    let table = config
        .coordination
        .as_ref()
        .map_or(DEMO_COORDINATION_TABLE.to_string(), |c| c.table.clone());
    cloud.ensure_coordination_table(&table).await?;
    let trace = trace::read("bundled trace", TRACE, true, &TraceOptions::default())?;
    let mut fleet = Fleet {
        dir: config.state_dir.clone(),
        config,
        cloud,
        clock,
        transport,
        group,
        sidecars: BTreeMap::new(),
        console: None,
        console_bound: None,
        history,
    };
    fleet.reconcile().await?;
    on_start(&fleet);
    let result = traffic(
        &mut fleet,
        &trace.requests,
        &opts,
        &shutdown,
        &mut each_second,
    )
    .await;
    fleet.stop().await;
    result
}

/// The load balancer and the applications behind it, until `shutdown`.
async fn traffic(
    fleet: &mut Fleet,
    trace: &[f64],
    opts: &DemoOptions,
    shutdown: &CancellationToken,
    each_second: &mut impl FnMut(FleetSecond),
) -> anyhow::Result<()> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    let mut carry: BTreeMap<String, f64> = BTreeMap::new();
    let mut second_rates = Vec::new();
    let mut last_second = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let t = start.elapsed().as_secs_f64();
        let rate = rate_at(trace, t, opts);
        second_rates.push(rate);
        let (refused_share, targets) = spread(fleet, rate);
        let share = rate / targets.len().max(1) as f64;
        for (id, delivery) in targets {
            let c = carry.entry(id).or_insert(0.0);
            *c += share * TICK.as_secs_f64() / SAMPLE;
            let samples = c.floor() as usize;
            *c -= samples as f64;
            send(&socket, &delivery, samples, refused_share).await;
        }
        if t as u64 > last_second {
            last_second = t as u64;
            let mean = second_rates.iter().sum::<f64>() / second_rates.len().max(1) as f64;
            second_rates.clear();
            use_tables(fleet, mean);
            fleet.reconcile().await?;
            let (desired, in_service) = fleet
                .cloud
                .world()
                .group(&fleet.group)
                .map_or((0, 0), |g| (g.desired, g.in_service() as u32));
            each_second(FleetSecond {
                t,
                rate: mean,
                desired,
                in_service,
                sidecars: fleet.sidecars.len() as u32,
            });
        }
    }
}

/// The share of `rate` the group cannot serve, and the instances the load
/// balancer sends to: InService with a sidecar receiving.
fn spread(fleet: &Fleet, rate: f64) -> (f64, Vec<(String, Delivery)>) {
    let (served, refused) = fleet.cloud.world().serve_requests(&fleet.group, rate);
    let targets = fleet
        .sidecars
        .iter()
        .filter_map(|(id, s)| Some((id.clone(), s.to_app.clone()?)))
        .collect();
    (refused / (served + refused).max(1.0), targets)
}

/// One second of the applications' table use (for the simulator's
/// CloudWatch): requests x each capacity's `per_request`.
fn use_tables(fleet: &Fleet, rate: f64) {
    let now = fleet.clock.now();
    let mut world = fleet.cloud.world();
    world.advance(now);
    for t in &fleet.config.dynamodb.tables {
        let units = |spec: Option<&crate::config::CapacitySpec>| {
            spec.and_then(|s| s.per_request).map_or(0.0, |k| rate * k)
        };
        world.serve(
            &t.name,
            None,
            units(t.read.as_ref()),
            units(t.write.as_ref()),
            now,
        );
        for i in &t.indexes {
            world.serve(
                &t.name,
                Some(&i.name),
                units(i.read.as_ref()),
                units(i.write.as_ref()),
                now,
            );
        }
    }
}

/// One in `SAMPLE` requests is sent as a timer sampled at 1/SAMPLE: it
/// counts for SAMPLE requests and carries a latency.
const SAMPLE: f64 = 10.0;

/// Sends `samples` timers, up to 64 lines per datagram as a buffering
/// StatsD client sends them.
async fn send(
    socket: &tokio::net::UdpSocket,
    delivery: &Delivery,
    samples: usize,
    refused_share: f64,
) {
    let lines: Vec<String> = (0..samples)
        .map(|_| {
            format!(
                "http.requests:{:.1}|ms|@{}",
                latency_ms(refused_share),
                1.0 / SAMPLE
            )
        })
        .collect();
    for chunk in lines.chunks(64) {
        let datagram = chunk.join("\n").into_bytes();
        match delivery {
            Delivery::Udp(addr) => {
                let _ = socket.send_to(&datagram, addr).await;
            }
            Delivery::InProcess(tx) => {
                let _ = tx.send(datagram).await;
            }
        }
    }
}

/// Gives the demo a recorded past: the bundled week, at the demo's own
/// rates, as the minute history of the seven days before now, so the
/// per-hour view (`/api/v1/hourly`, the dashboard) has days to show at once.
fn recorded_past(
    config: &Config,
    week: &[f64],
    opts: &DemoOptions,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<History> {
    let stream = config.ingest.requests_stream.clone()?;
    let rate = opts.speed * opts.scale;
    let seconds: Vec<f64> = week.iter().map(|r| r * rate).collect();
    let now = now.timestamp().div_euclid(60) * 60;
    let start = chrono::DateTime::from_timestamp(now - seconds.len() as i64, 0).unwrap_or_default();
    let minutes = crate::profile::minutes_of_seconds(start, &seconds);
    Some(BTreeMap::from([(stream, minutes)]))
}

/// The demo's request rate at real second `t` (fractional), before noise.
pub fn rate_at(trace: &[f64], t: f64, opts: &DemoOptions) -> f64 {
    let len = trace.len().max(1);
    let pos = (t * opts.speed) as usize;
    let per_real_second: f64 = (0..opts.speed.max(1.0) as usize)
        .map(|i| trace[(pos + i) % len])
        .sum();
    let base = per_real_second * opts.scale;
    let every = opts.surge_every.as_secs_f64();
    if every <= 0.0 || t < every {
        return base;
    }
    let since = t % every;
    let rise = ((since + 1.0) / 5.0).min(1.0);
    let decay = (-(since - 5.0).max(0.0) / SURGE_DECAY_S).exp();
    base * (1.0 + (SURGE_AMP - 1.0) * rise * decay)
}

/// A request's latency in the simulated world: 20-40 ms while the group
/// serves everything, growing with the share of requests it cannot serve.
fn latency_ms(refused_share: f64) -> f64 {
    (20.0 + 20.0 * fastrand::f64()) * (1.0 + 8.0 * refused_share.clamp(0.0, 1.0))
}

/// Prints each decision as the sidecars' audit logs record it.
async fn print_decisions(dir: PathBuf, shutdown: CancellationToken) {
    let mut offsets: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path().join("audit.jsonl");
            let offset = offsets.entry(path.clone()).or_default();
            for record in read_from(&path, offset) {
                // Applied and failed calls, and dry-run recommendations; a
                // change waiting for the table to be ACTIVE again is not news.
                if record.outcome == crate::audit::Outcome::Skipped
                    || (record.phase == Phase::Decided && record.mode == crate::config::Mode::Apply)
                {
                    continue;
                }
                println!("{}", describe(&record));
            }
        }
    }
}

fn read_from(path: &Path, offset: &mut u64) -> Vec<AuditRecord> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if file.seek(std::io::SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    while let Ok(n) = reader.read_line(&mut line) {
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        *offset += n as u64;
        if let Ok(r) = serde_json::from_str::<AuditRecord>(&line) {
            out.push(r);
        }
        line.clear();
    }
    out
}

/// One line per decision: time, resource, changes with their rule (and
/// their member, when a call covers an index as well), outcome.
pub fn describe(r: &AuditRecord) -> String {
    let changes = r
        .changes
        .iter()
        .map(|c| {
            let member = c
                .resource
                .as_deref()
                .filter(|m| *m != r.resource)
                .map(|m| format!("{m} "))
                .unwrap_or_default();
            format!("{member}{} {} -> {} ({})", c.op, c.from, c.to, c.rule)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let outcome = serde_json::to_value(r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let why = r
        .reason
        .as_deref()
        .or(r.error.as_deref())
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    format!(
        "{} {:<16} {changes} [{outcome}{why}]",
        r.time.format("%H:%M:%S"),
        r.resource
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditChange, Outcome};

    fn change(resource: Option<&str>, op: &str, from: u64, to: u64) -> AuditChange {
        AuditChange {
            resource: resource.map(str::to_string),
            op: op.into(),
            from,
            to,
            rule: "surge".into(),
            demand: Some(100.0),
            threshold: None,
            window_s: 2,
        }
    }

    #[test]
    fn a_call_for_a_table_and_its_index_names_the_index() {
        let r = AuditRecord {
            id: "d-1".into(),
            time: chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
            phase: Phase::Completed,
            service: "dynamodb".into(),
            resource: "posts".into(),
            mode: crate::config::Mode::Apply,
            outcome: Outcome::Applied,
            changes: vec![
                change(Some("posts"), "read", 50, 258),
                change(None, "write", 10, 52),
                change(Some("posts/by_user"), "read", 20, 103),
            ],
            decrease: false,
            reason: None,
            error: None,
            fencing: None,
            observed: None,
        };
        assert_eq!(
            describe(&r),
            "16:00:00 posts            read 50 -> 258 (surge), write 10 -> 52 (surge), \
             posts/by_user read 20 -> 103 (surge) [applied]"
        );
    }
}
