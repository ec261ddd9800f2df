//! rapidscale's side of a replay: the daemon's core (`app::core::Core`:
//! trackers, deciders, actuator, audit log, decrease budget) on a
//! simulated account, on tokio's paused clock starting at the trace's
//! first second. Each second of the trace, just before it ends, its count
//! is fed to the store the way `ingest::trace` feeds a daemon, and its
//! demand is served on the simulated tables (burst, throttling), which is
//! what the figures are made of. Decisions, calls and their audit records
//! are the daemon's own.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{OpSeries, ResourceFigures, Target};
use crate::app::core::{Core, Persistence};
use crate::audit::{Outcome, Phase};
use crate::clock::{SharedClock, TokioClock};
use crate::cloud::Throughput;
use crate::config::{Config, FleetView, Mode};
use crate::ingest::trace::{self, TraceSource, FEED_AT_MS};
use crate::ingest::{lock, Delivery, Sink, SourceCounters};
use crate::policy::dynamodb::Op;
use crate::sim::cloud::SimCloud;
use crate::sim::{SimSettings, SimWorld};

/// The stream the trace feeds when the config names none.
pub const TRACE_STREAM: &str = "requests";

/// What the rapidscale side produced.
#[derive(Debug, Default)]
pub struct Side {
    /// [target][op]
    pub series: Vec<Vec<OpSeries>>,
    pub figures: Vec<ResourceFigures>,
}

/// The config rapidscale runs with in a replay: the capacities the trace
/// drives (demand from requests x `per_request`, the fallback of an
/// `auto`; no unit metrics), in apply mode against the simulated account,
/// with the trace as its only source and the whole fleet's traffic
/// (`central`). No API, no group, no coordination, no CloudWatch.
pub fn replay_config(config: &Config, targets: &[Target], state_dir: &Path) -> Config {
    let mut c = config.clone();
    c.mode = Mode::Apply;
    c.state_dir = state_dir.to_path_buf();
    c.api = None;
    c.asg = None;
    c.coordination = None;
    c.fleet = FleetView::Central;
    c.cloudwatch.publish = false;
    c.cloudwatch.observe = false;
    let stream = c
        .ingest
        .requests_stream
        .clone()
        .unwrap_or_else(|| TRACE_STREAM.to_string());
    c.ingest.requests_stream = Some(stream);
    c.ingest.statsd = None;
    c.ingest.access_logs.clear();
    c.ingest.status_pages.clear();
    let driven = |table: &str, index: Option<&str>, op: Op| {
        targets.iter().any(|t| {
            t.table == table && t.index.as_deref() == index && t.ops.iter().any(|o| o.op == op)
        })
    };
    c.dynamodb
        .tables
        .retain(|t| targets.iter().any(|x| x.table == t.name));
    for t in &mut c.dynamodb.tables {
        t.mode = None;
        let name = t.name.clone();
        keep_driven(&mut t.read, driven(&name, None, Op::Read));
        keep_driven(&mut t.write, driven(&name, None, Op::Write));
        t.indexes.retain(|i| {
            targets
                .iter()
                .any(|x| x.table == name && x.index.as_deref() == Some(&i.name))
        });
        for i in &mut t.indexes {
            keep_driven(&mut i.read, driven(&name, Some(&i.name), Op::Read));
            keep_driven(&mut i.write, driven(&name, Some(&i.name), Op::Write));
        }
    }
    c
}

fn keep_driven(spec: &mut Option<crate::config::CapacitySpec>, driven: bool) {
    if !driven {
        *spec = None;
    } else if let Some(s) = spec {
        s.metric = None;
        s.auto = false;
    }
}

/// The simulated account of a replay: the config's tables and indexes at
/// the targets' initial capacities.
pub fn replay_world(settings: &SimSettings, targets: &[Target]) -> SimWorld {
    let mut world = SimWorld::new(settings.clone());
    let mut bases: BTreeMap<&str, Throughput> = BTreeMap::new();
    let mut indexes: BTreeMap<&str, Vec<(&str, Throughput)>> = BTreeMap::new();
    for t in targets {
        match &t.index {
            None => {
                bases.insert(&t.table, t.initial());
            }
            Some(i) => indexes.entry(&t.table).or_default().push((i, t.initial())),
        }
    }
    let tables: std::collections::BTreeSet<&str> =
        bases.keys().chain(indexes.keys()).copied().collect();
    for name in tables {
        let base = bases
            .get(name)
            .copied()
            .unwrap_or(Throughput { read: 1, write: 1 });
        world.add_table(name, base, indexes.get(name).map_or(&[], Vec::as_slice));
    }
    world
}

/// The trace as an ingestion source.
pub fn trace_source(config: &Config, start: DateTime<Utc>, requests: &[f64]) -> TraceSource {
    TraceSource {
        stream: config
            .ingest
            .requests_stream
            .clone()
            .unwrap_or_else(|| TRACE_STREAM.to_string()),
        start: start.timestamp(),
        counts: Arc::new(requests.to_vec()),
    }
}

/// Replays the trace through rapidscale; `each_second(s, start of s)` runs
/// after second `s` was served (the native side steps there).
#[allow(clippy::too_many_arguments)]
pub fn run(
    config: &Config,
    settings: &SimSettings,
    start: DateTime<Utc>,
    requests: &[f64],
    targets: &[Target],
    audit_dir: &Path,
    each_second: impl FnMut(usize, DateTime<Utc>),
    progress: &mut impl FnMut(u64),
) -> Side {
    // The daemon's own log lines would be one per decision of a simulated
    // week; the replay's audit log has them all.
    let _quiet = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(drive(
        config,
        settings,
        start,
        requests,
        targets,
        audit_dir,
        each_second,
        progress,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    config: &Config,
    settings: &SimSettings,
    start: DateTime<Utc>,
    requests: &[f64],
    targets: &[Target],
    audit_dir: &Path,
    mut each_second: impl FnMut(usize, DateTime<Utc>),
    progress: &mut impl FnMut(u64),
) -> Side {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(start));
    let config = replay_config(config, targets, audit_dir);
    // A replay's audit log holds that replay's decisions only.
    let _ = std::fs::remove_file(audit_dir.join("audit.jsonl"));
    let cloud = Arc::new(SimCloud::new(
        replay_world(settings, targets),
        clock.clone(),
    ));
    let core = Core::build(
        config,
        clock.clone(),
        Some(cloud.clone()),
        Persistence::Replay,
    )
    .await;
    let source = trace_source(&core.config, start, requests);
    let stream = lock(&core.store).register(&source.stream, Delivery::Pushed.stream_kind());
    let sink = Sink {
        store: core.store.clone(),
        clock: clock.clone(),
        counters: SourceCounters::new("trace"),
    };
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    core.spawn_deciding(&tasks, &stop);

    let mut side = Side {
        series: targets
            .iter()
            .map(|t| {
                t.ops
                    .iter()
                    .map(|_| OpSeries::with_capacity(requests.len()))
                    .collect()
            })
            .collect(),
        figures: vec![ResourceFigures::default(); targets.len()],
    };
    let t0 = tokio::time::Instant::now();
    for s in 0..requests.len() {
        let at = t0 + Duration::from_secs(s as u64) + Duration::from_millis(FEED_AT_MS);
        tokio::time::sleep_until(at).await;
        let second = start.timestamp() + s as i64;
        trace::feed(&source, stream, second, &sink);
        serve(&cloud, targets, s, clock.now(), &mut side.series);
        each_second(s, start + chrono::TimeDelta::seconds(s as i64));
        if s % 3600 == 3599 {
            progress(s as u64 + 1);
        }
    }
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    if let Err(e) = core.audit.flush() {
        tracing::warn!(error = %e, "Cannot write the replay's audit log.");
    }
    side.figures = figures_from_audit(&core, targets);
    side
}

/// Serves second `s`'s demand on the simulated tables and records what
/// each operation had provisioned and what was throttled.
fn serve(
    cloud: &SimCloud,
    targets: &[Target],
    s: usize,
    now: DateTime<Utc>,
    series: &mut [Vec<OpSeries>],
) {
    let mut world = cloud.world();
    world.advance(now);
    for (i, t) in targets.iter().enumerate() {
        let (r, w) = world.serve(
            &t.table,
            t.index.as_deref(),
            t.demand(Op::Read, s),
            t.demand(Op::Write, s),
            now,
        );
        let prov = world
            .table(&t.table)
            .and_then(|x| x.resource(t.index.as_deref()))
            .map(|x| x.provisioned())
            .unwrap_or(Throughput { read: 0, write: 0 });
        for (k, o) in t.ops.iter().enumerate() {
            let (served, p) = match o.op {
                Op::Read => (r, prov.read),
                Op::Write => (w, prov.write),
            };
            series[i][k].push(p, served.throttled);
        }
    }
}

/// Calls made, decreases spent and calls refused, per resource, from the
/// audit log the replay wrote.
fn figures_from_audit(core: &Core<SimCloud>, targets: &[Target]) -> Vec<ResourceFigures> {
    let records = crate::audit::read_file(core.audit.path()).unwrap_or_default();
    targets
        .iter()
        .map(|t| {
            let key = t.key();
            let mut f = ResourceFigures::default();
            for r in records
                .iter()
                .filter(|r| r.resource == key && r.phase == Phase::Completed)
            {
                match r.outcome {
                    Outcome::Applied => {
                        f.actions += 1;
                        if r.decrease {
                            *f.decreases_used.entry(r.time.date_naive()).or_default() += 1;
                        }
                    }
                    Outcome::Failed => f.refused += 1,
                    _ => {}
                }
            }
            f
        })
        .collect()
}
