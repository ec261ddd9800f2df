//! `rapidscale demo`: the daemon against the simulator, fed by a built-in
//! traffic source, with no AWS account.
//!
//! The source replays the bundled NASA trace at `speed` x (each real
//! second carries `speed` seconds of the trace, times `scale`) as StatsD
//! timers (one in ten requests, sampled at 0.1, with a latency that grows
//! when the simulated group cannot serve them all) to the daemon's own UDP
//! port, and adds a push-notification
//! surge every `surge_every`: the rate jumps to `SURGE_AMP` x within 5 s and
//! decays with a 60 s time constant. Decisions are printed as the audit
//! log records them.

use std::io::{BufRead, Seek};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditRecord, Phase};
use crate::clock::{SharedClock, SystemClock};
use crate::cloud::Throughput;
use crate::config::Config;
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

/// A simulated account holding the config's tables (at their minimum
/// capacity) and group (at its minimum size).
pub fn world_for(config: &Config) -> SimWorld {
    let mut world = SimWorld::new(SimSettings::default());
    let now = Utc::now();
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

/// Runs the demo until `shutdown`.
pub async fn run(
    mut config: Config,
    opts: DemoOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state_dir = std::env::temp_dir().join(format!("rapidscale-demo-{}", std::process::id()));
    config.state_dir = state_dir.clone();
    if let Some(asg) = &mut config.asg {
        asg.name.get_or_insert_with(|| "web".to_string());
    }
    let clock: SharedClock = Arc::new(SystemClock);
    let cloud = Arc::new(SimCloud::new(world_for(&config), clock.clone()));
    let cloud_for_traffic = cloud.clone();
    let group = config.asg.as_ref().and_then(|a| a.name.clone());
    let trace = trace::read("bundled trace", TRACE, true, &TraceOptions::default())?;
    seed_history(&config, &trace.requests, &opts, clock.now());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sources = crate::app::Source::configured(&config);
    let daemon = tokio::spawn(crate::app::run_with(
        config,
        clock,
        Some(cloud),
        sources,
        Some(tx),
        shutdown.clone(),
    ));
    let Ok(bound) = rx.await else {
        // The daemon stopped before it started: its error says why.
        return daemon.await?;
    };
    let Some(statsd) = bound.statsd else {
        anyhow::bail!("the demo needs [ingest.statsd] in its config");
    };
    if let Some(api) = bound.api {
        println!("rapidscale demo: dashboard and API at http://{api}/ (Ctrl-C to stop)");
    }
    println!(
        "Traffic: the NASA July 1995 trace at {}x speed, x{}, with a {}x surge every {} s. Mode: apply (simulated AWS).",
        opts.speed,
        opts.scale,
        SURGE_AMP,
        opts.surge_every.as_secs()
    );
    let source = tokio::spawn(traffic(
        statsd,
        trace.requests,
        opts,
        cloud_for_traffic,
        group,
        shutdown.clone(),
    ));
    let printer = tokio::spawn(print_decisions(
        state_dir.join("audit.jsonl"),
        shutdown.clone(),
    ));
    let result = daemon.await?;
    let _ = tokio::join!(source, printer);
    let _ = std::fs::remove_dir_all(&state_dir);
    result
}

/// Gives the demo a recorded past: the bundled week, at the demo's own
/// rates, as the minute history of the seven days before now, so the
/// per-hour view (`/api/v1/hourly`, the dashboard) has days to show at once.
fn seed_history(
    config: &Config,
    week: &[f64],
    opts: &DemoOptions,
    now: chrono::DateTime<chrono::Utc>,
) {
    let Some(stream) = config.ingest.requests_stream.clone() else {
        return;
    };
    let rate = opts.speed * opts.scale;
    let seconds: Vec<f64> = week.iter().map(|r| r * rate).collect();
    let now = now.timestamp().div_euclid(60) * 60;
    let start = chrono::DateTime::from_timestamp(now - seconds.len() as i64, 0).unwrap_or_default();
    let minutes = crate::profile::minutes_of_seconds(start, &seconds);
    let history = std::collections::BTreeMap::from([(stream, minutes)]);
    if let Err(e) = crate::profile::history::save(&config.state_dir, &history) {
        tracing::warn!(error = %e, "Cannot seed the demo's minute history.");
    }
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

/// One in `SAMPLE` requests is sent as a timer sampled at 1/SAMPLE: it
/// counts for SAMPLE requests and carries a latency.
const SAMPLE: f64 = 10.0;

/// A request's latency in the simulated world: 20-40 ms while the group
/// serves everything, growing with the share of requests it cannot serve.
fn latency_ms(refused_share: f64) -> f64 {
    (20.0 + 20.0 * fastrand::f64()) * (1.0 + 8.0 * refused_share.clamp(0.0, 1.0))
}

async fn traffic(
    statsd: SocketAddr,
    trace: Vec<f64>,
    opts: DemoOptions,
    cloud: Arc<SimCloud>,
    group: Option<String>,
    shutdown: CancellationToken,
) {
    let Ok(socket) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        tracing::error!("The demo cannot open a UDP socket for its traffic.");
        return;
    };
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    let mut carry = 0.0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let t = start.elapsed().as_secs_f64();
        let rate = rate_at(&trace, t, &opts);
        let refused_share = group.as_deref().map_or(0.0, |g| {
            let (served, refused) = cloud.world().serve_requests(g, rate);
            refused / (served + refused).max(1.0)
        });
        carry += rate * TICK.as_secs_f64() / SAMPLE;
        let samples = carry.floor() as usize;
        carry -= samples as f64;
        // Up to 64 lines per datagram, as a buffering StatsD client sends them.
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
            let _ = socket.send_to(chunk.join("\n").as_bytes(), statsd).await;
        }
    }
}

/// Prints each decision as the audit log records it.
async fn print_decisions(path: PathBuf, shutdown: CancellationToken) {
    let mut offset = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for record in read_from(&path, &mut offset) {
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

/// One line per decision: time, resource, changes with their rule, outcome.
pub fn describe(r: &AuditRecord) -> String {
    let changes = r
        .changes
        .iter()
        .map(|c| format!("{} {} -> {} ({})", c.op, c.from, c.to, c.rule))
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
