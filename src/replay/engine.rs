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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fleet::{FleetQueue, GroupSeries};
use super::{GroupTarget, OpSeries, ResourceFigures, Target};
use crate::app::core::{Core, Persistence};
use crate::audit::{Outcome, Phase};
use crate::clock::{SharedClock, TokioClock};
use crate::cloud::Throughput;
use crate::config::{throttled_stream, Config, FleetView, Mode};
use crate::ingest::trace::{self, SecondHook, TraceSource, FEED_AT_MS};
use crate::ingest::{lock, Delivery, Sink, SourceCounters};
use crate::policy::dynamodb::Op;
use crate::series::Observation;
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
    /// The group's seconds (empty when no group is replayed).
    pub group: GroupSeries,
}

/// The config rapidscale runs with in a replay: the capacities the trace
/// drives (demand from requests x `per_request`, the fallback of an
/// `auto`; no unit metrics), in apply mode against the simulated account,
/// with the trace as its only source and the whole fleet's traffic
/// (`central`). No API, no coordination, no CloudWatch; the group only
/// when it is replayed (`group`), under its replay name.
pub fn replay_config(
    config: &Config,
    targets: &[Target],
    group: Option<&GroupTarget>,
    state_dir: &Path,
) -> Config {
    let mut c = config.clone();
    c.mode = Mode::Apply;
    c.state_dir = state_dir.to_path_buf();
    c.api = None;
    c.asg = match (c.asg.take(), group) {
        (Some(mut asg), Some(g)) => {
            asg.name = Some(g.name.clone());
            asg.mode = None;
            Some(asg)
        }
        _ => None,
    };
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
/// the targets' initial capacities, and the group (when replayed) with its
/// initial instances InService at `start`.
pub fn replay_world(
    settings: &SimSettings,
    targets: &[Target],
    group: Option<&GroupTarget>,
    start: DateTime<Utc>,
) -> SimWorld {
    let mut world = SimWorld::new(settings.clone());
    if let Some(g) = group {
        world.add_group(&g.name, g.initial, g.min, g.max, start);
    }
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
    for t in targets {
        world.set_highest(&t.table, t.index.as_deref(), t.highest());
    }
    world
}

/// The trace as an ingestion source (its counts only).
pub fn trace_source(config: &Config, start: DateTime<Utc>, requests: &[f64]) -> TraceSource {
    TraceSource {
        stream: config
            .ingest
            .requests_stream
            .clone()
            .unwrap_or_else(|| TRACE_STREAM.to_string()),
        start: start.timestamp(),
        counts: Arc::new(requests.to_vec()),
        then: None,
    }
}

/// Per second, what each replayed capacity had provisioned and throttled
/// ([target][op]), and the group's seconds.
#[derive(Debug, Default)]
pub struct Served {
    pub ops: Vec<Vec<OpSeries>>,
    pub group: GroupSeries,
}

pub type ServedSeries = Arc<Mutex<Served>>;

/// Serves second `s`'s requests on the group's InService instances through
/// the fleet's queue; records the second.
pub fn serve_group(
    world: &SimWorld,
    group: &GroupTarget,
    queue: &mut FleetQueue,
    requests: f64,
    series: &mut GroupSeries,
) {
    let (desired, instances, serving) = world.group(&group.name).map_or((0, 0, 0), |g| {
        (g.desired, g.instances.len() as u32, g.in_service() as u32)
    });
    let second = queue.serve(requests, serving as f64 * world.settings.instance_rps);
    series.push(desired, instances, serving, second);
}

/// The trace as the application's traffic on a simulated account: each
/// second, once its count is fed, its demand is served on the simulated
/// tables (burst, partitions, throttling), and what was throttled comes
/// back as the application's throttle counters would, on each capacity's
/// `throttled` stream. The daemon in the equivalence test is given the
/// same source, so both see the same feedback.
pub fn served_trace_source(
    config: &Config,
    start: DateTime<Utc>,
    requests: &[f64],
    targets: &[Target],
    group: Option<(GroupTarget, FleetQueue)>,
    cloud: Arc<SimCloud>,
) -> (TraceSource, ServedSeries) {
    let series: ServedSeries = Arc::new(Mutex::new(Served {
        ops: targets
            .iter()
            .map(|t| {
                t.ops
                    .iter()
                    .map(|_| OpSeries::with_capacity(requests.len()))
                    .collect()
            })
            .collect(),
        group: GroupSeries::with_capacity(if group.is_some() { requests.len() } else { 0 }),
    }));
    let group = group.map(|g| Mutex::new((g.0, g.1, Arc::new(requests.to_vec()))));
    let targets: Arc<Vec<Target>> = Arc::new(targets.to_vec());
    let groups = table_groups(&targets);
    let recorded = series.clone();
    let first = start.timestamp();
    let then: SecondHook = Arc::new(move |second: i64, sink: &Sink| {
        let Ok(s) = usize::try_from(second - first) else {
            return;
        };
        let at = DateTime::from_timestamp(second, 0).unwrap_or(start);
        let mut world = cloud.world();
        let served = serve_world(&mut world, &targets, &groups, s, at);
        let mut series = recorded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = &group {
            let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
            let (target, queue, requests) = &mut *g;
            let r = requests.get(s).copied().unwrap_or(0.0);
            serve_group(&world, target, queue, r, &mut series.group);
        }
        drop(world);
        for (i, t) in targets.iter().enumerate() {
            for (k, o) in t.ops.iter().enumerate() {
                let (provisioned, throttled) = served[i][k];
                series.ops[i][k].push(provisioned, throttled);
                if throttled > 0.0 {
                    let name = throttled_stream(&t.table, t.index.as_deref(), o.op.as_str());
                    let id = lock(&sink.store).register(&name, Delivery::Pushed.stream_kind());
                    sink.observe(id, second, Observation::Count(throttled / o.per_request));
                }
            }
        }
    });
    let mut source = trace_source(config, start, requests);
    source.then = Some(then);
    (source, series)
}

/// What one replay runs on: the traffic, the capacities it drives, the
/// group (when replayed) and the fleet's request timeout.
#[derive(Debug, Clone, Copy)]
pub struct Replayed<'a> {
    pub start: DateTime<Utc>,
    pub requests: &'a [f64],
    pub targets: &'a [Target],
    pub group: Option<&'a GroupTarget>,
    pub timeout_s: f64,
}

/// Replays the trace through rapidscale; `each_second(s, start of s)` runs
/// after second `s` was served (the native side steps there).
pub fn run(
    config: &Config,
    settings: &SimSettings,
    what: Replayed<'_>,
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
        what,
        audit_dir,
        each_second,
        progress,
    ))
}

async fn drive(
    config: &Config,
    settings: &SimSettings,
    what: Replayed<'_>,
    audit_dir: &Path,
    mut each_second: impl FnMut(usize, DateTime<Utc>),
    progress: &mut impl FnMut(u64),
) -> Side {
    let Replayed {
        start,
        requests,
        targets,
        group,
        timeout_s,
    } = what;
    let clock: SharedClock = Arc::new(TokioClock::starting_at(start));
    let config = replay_config(config, targets, group, audit_dir);
    // A replay's audit log holds that replay's decisions only.
    let _ = std::fs::remove_file(audit_dir.join("audit.jsonl"));
    let cloud = Arc::new(SimCloud::new(
        replay_world(settings, targets, group, start),
        clock.clone(),
    ));
    let core = Core::build(
        config,
        clock.clone(),
        Some(cloud.clone()),
        Persistence::Replay,
    )
    .await;
    let (source, served) = served_trace_source(
        &core.config,
        start,
        requests,
        targets,
        group.map(|g| (g.clone(), FleetQueue::new(timeout_s))),
        cloud.clone(),
    );
    let stream = lock(&core.store).register(&source.stream, Delivery::Pushed.stream_kind());
    let sink = Sink {
        store: core.store.clone(),
        clock: clock.clone(),
        counters: SourceCounters::new("trace"),
    };
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    core.spawn_deciding(&tasks, &stop, &stop);

    let t0 = tokio::time::Instant::now();
    for s in 0..requests.len() {
        let at = t0 + Duration::from_secs(s as u64) + Duration::from_millis(FEED_AT_MS);
        tokio::time::sleep_until(at).await;
        let second = start.timestamp() + s as i64;
        trace::feed(&source, stream, second, &sink);
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
    let served = std::mem::take(&mut *served.lock().unwrap_or_else(|p| p.into_inner()));
    Side {
        series: served.ops,
        figures: figures_from_audit(&core, targets),
        group: served.group,
    }
}

/// The targets grouped by table: a table is served with its indexes.
pub type TableGroups = Vec<(String, Vec<usize>)>;

pub fn table_groups(targets: &[Target]) -> TableGroups {
    let mut groups: TableGroups = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match groups.iter_mut().find(|(name, _)| *name == t.table) {
            Some((_, members)) => members.push(i),
            None => groups.push((t.table.clone(), vec![i])),
        }
    }
    groups
}

/// Serves second `s`'s demand on the simulated tables, a table with its
/// indexes at once (an index short of write capacity holds back its
/// table's writes); per target and operation: (provisioned, throttled units).
pub fn serve_world(
    world: &mut SimWorld,
    targets: &[Target],
    groups: &TableGroups,
    s: usize,
    now: DateTime<Utc>,
) -> Vec<Vec<(u64, f64)>> {
    world.advance(now);
    let mut out: Vec<Vec<(u64, f64)>> = targets
        .iter()
        .map(|t| vec![(0, 0.0); t.ops.len()])
        .collect();
    for (table, members) in groups {
        let demands: Vec<(Option<&str>, f64, f64)> = members
            .iter()
            .map(|&i| {
                let t = &targets[i];
                (
                    t.index.as_deref(),
                    t.demand(Op::Read, s),
                    t.demand(Op::Write, s),
                )
            })
            .collect();
        let served = world.serve_table(table, &demands, now);
        for (m, &i) in members.iter().enumerate() {
            let t = &targets[i];
            let prov = world
                .table(table)
                .and_then(|x| x.resource(t.index.as_deref()))
                .map(|x| x.provisioned())
                .unwrap_or(Throughput { read: 0, write: 0 });
            for (k, o) in t.ops.iter().enumerate() {
                out[i][k] = match o.op {
                    Op::Read => (prov.read, served[m].0.throttled),
                    Op::Write => (prov.write, served[m].1.throttled),
                };
            }
        }
    }
    out
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
            for r in records.iter().filter(|r| {
                r.phase == Phase::Completed && r.changes.iter().any(|c| c.member(r) == key)
            }) {
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
