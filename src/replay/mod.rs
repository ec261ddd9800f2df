//! Replay: recorded traffic through the simulator, twice — once with
//! rapidscale, once with a model of AWS's native target tracking — on a
//! virtual clock that runs as fast as the CPU allows.
//!
//! rapidscale's side is the daemon itself, minus its sockets: the same
//! core (store, trackers, deciders, actuator, audit log, decrease budget)
//! built by `app::core`, on a simulated account, under tokio's paused
//! clock, fed the trace through the same ingestion source a daemon can be
//! given (`ingest::trace`). Nothing of the decision path is written twice:
//! a test runs the daemon on the same trace and compares the decisions.
//! The native side is [`native::NativeSide`], one second at a time.

pub mod engine;
pub mod fleet;
pub mod native;
pub mod report;
pub mod schedule;
pub mod surges;
pub mod trace;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::actuator::resource_key;
use crate::cloud::Throughput;
use crate::config::{CapacitySpec, Config};
use crate::policy::dynamodb::Op;
use crate::sim::SimSettings;

/// The two policies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    Rapidscale,
    AwsNative,
}

impl Policy {
    pub const ALL: [Policy; 2] = [Policy::Rapidscale, Policy::AwsNative];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Rapidscale => "rapidscale",
            Policy::AwsNative => "aws_native",
        }
    }
}

/// One capacity that is replayed: an operation of a table or index whose
/// demand the trace can give (it has `per_request`).
#[derive(Debug, Clone)]
pub struct OpTarget {
    pub op: Op,
    pub per_request: f64,
    pub spec: CapacitySpec,
    /// Demand in units per second.
    pub units: Vec<f64>,
    pub initial: u64,
    /// The highest capacity the table or index ever had, before the replay.
    pub highest: u64,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub table: String,
    pub index: Option<String>,
    pub ops: Vec<OpTarget>,
}

impl Target {
    pub fn key(&self) -> String {
        resource_key(&self.table, self.index.as_deref())
    }

    /// The capacity both policies start from (1 unit for an operation
    /// the trace does not drive).
    pub fn initial(&self) -> Throughput {
        let mut t = Throughput { read: 1, write: 1 };
        for o in &self.ops {
            match o.op {
                Op::Read => t.read = o.initial,
                Op::Write => t.write = o.initial,
            }
        }
        t
    }

    /// The highest capacity it ever had before the replay.
    pub fn highest(&self) -> Throughput {
        let mut t = self.initial();
        for o in &self.ops {
            match o.op {
                Op::Read => t.read = t.read.max(o.highest),
                Op::Write => t.write = t.write.max(o.highest),
            }
        }
        t
    }

    /// Demand of `op` in second `s`, in units (0 when not replayed).
    pub fn demand(&self, op: Op, s: usize) -> f64 {
        self.ops
            .iter()
            .find(|o| o.op == op)
            .map_or(0.0, |o| o.units[s])
    }
}

/// Per second, per policy and operation: provisioned and throttled units.
#[derive(Debug, Clone, Default)]
pub struct OpSeries {
    pub provisioned: Vec<u64>,
    pub throttled: Vec<f64>,
}

impl OpSeries {
    pub fn with_capacity(seconds: usize) -> OpSeries {
        OpSeries {
            provisioned: Vec::with_capacity(seconds),
            throttled: Vec::with_capacity(seconds),
        }
    }

    pub fn push(&mut self, provisioned: u64, throttled: f64) {
        self.provisioned.push(provisioned);
        self.throttled.push(throttled);
    }
}

/// Figures of one operation under one policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpFigures {
    pub throttled_units: f64,
    pub throttled_requests: f64,
    pub throttled_seconds: u64,
    pub max_throttled_seconds_in_a_row: u64,
    pub provisioned_unit_hours: f64,
    pub cost_usd: f64,
    pub peak_provisioned: u64,
}

/// Figures of one table or index under one policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceFigures {
    pub read: Option<OpFigures>,
    pub write: Option<OpFigures>,
    /// Accepted UpdateTable calls.
    pub actions: u64,
    /// Decreases per UTC day.
    pub decreases_used: BTreeMap<NaiveDate, u64>,
    /// Calls the simulator refused (UPDATING, LimitExceeded).
    pub refused: u64,
    pub cost_usd: f64,
}

/// The Auto Scaling group a replay drives: the config's `[asg]`, under
/// the replay's name, starting with the instances the first quarter hour
/// needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupTarget {
    pub name: String,
    pub initial: u32,
    /// The group's own limits: the lowest hour's min, the highest hour's max.
    pub min: u32,
    pub max: u32,
}

/// Requests/s one simulated instance can serve unless told: the config's
/// highest `target_rps_per_instance` is 80 % of it (the simulator's own
/// default without `[asg]`).
pub fn default_instance_rps(config: &Config) -> f64 {
    config
        .asg
        .as_ref()
        .map_or(SimSettings::default().instance_rps, |asg| {
            asg.hours
                .iter()
                .map(|h| h.target_rps_per_instance)
                .fold(0.0, f64::max)
                * 1.25
        })
}

/// The name the replayed group has in the simulated account.
pub const REPLAY_GROUP: &str = "replay-group";

/// The group the trace drives, when the config has `[asg]`.
pub fn group_target(
    config: &Config,
    requests: &[f64],
    start: DateTime<Utc>,
) -> Option<GroupTarget> {
    let asg = config.asg.as_ref()?;
    let limits = config.schedule.row(&asg.hours, start);
    let head: Vec<f64> = requests[..requests.len().min(900)]
        .iter()
        .copied()
        .filter(|r| r.is_finite())
        .collect();
    let mean = head.iter().sum::<f64>() / head.len().max(1) as f64;
    let min = asg.hours.iter().map(|h| h.min).min().unwrap_or(0);
    let max = asg.hours.iter().map(|h| h.max).max().unwrap_or(u32::MAX);
    let need = crate::policy::asg::needed(mean, &limits, asg.policy.headroom);
    Some(GroupTarget {
        name: asg.name.clone().unwrap_or_else(|| REPLAY_GROUP.to_string()),
        initial: need.clamp(limits.min.max(1), limits.max.max(1)),
        min,
        max,
    })
}

/// The group's side of a replay, both policies.
#[derive(Debug, Clone)]
pub struct GroupOutcome {
    pub target: GroupTarget,
    /// The config's base `target_rps_per_instance` (for the chart's need).
    pub target_rps: f64,
    pub series: BTreeMap<Policy, fleet::GroupSeries>,
    pub figures: BTreeMap<Policy, fleet::GroupFigures>,
}

/// Everything one run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub start: DateTime<Utc>,
    pub requests: Vec<f64>,
    pub targets: Vec<Target>,
    /// [policy][target][op]
    pub series: BTreeMap<Policy, Vec<Vec<OpSeries>>>,
    pub figures: BTreeMap<Policy, Vec<ResourceFigures>>,
    pub group: Option<GroupOutcome>,
}

/// How the group is replayed: the fleet's request timeout and the native
/// model's settings (docs/replay.md, "The group").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FleetModel {
    pub timeout_s: f64,
    pub tracking: fleet::TrackingSettings,
}

impl Default for FleetModel {
    fn default() -> Self {
        FleetModel {
            timeout_s: fleet::DEFAULT_TIMEOUT_S,
            tracking: fleet::TrackingSettings::AWS,
        }
    }
}

/// Why a configured capacity is not replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub resource: String,
    pub op: Op,
    pub reason: String,
}

/// The highest one-minute mean of per-second requests.
pub fn peak_minute_rps(requests: &[f64]) -> f64 {
    requests
        .chunks(60)
        .map(|m| m.iter().filter(|v| v.is_finite()).sum::<f64>() / 60.0)
        .fold(0.0, f64::max)
}

/// The capacities the trace can drive, with their demand in units. Each
/// table or index has had, before the replay, the capacity that
/// `known_peak_rps` (requests/s) needs at its target (None: only its
/// initial capacity): an increase past that is a new high, which the
/// simulator makes slower (new partitions).
pub fn targets(
    config: &Config,
    requests: &[f64],
    start: DateTime<Utc>,
    known_peak_rps: Option<f64>,
) -> (Vec<Target>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for t in &config.dynamodb.tables {
        let mut resources = vec![(None, t.read.as_ref(), t.write.as_ref())];
        for i in &t.indexes {
            resources.push((Some(i.name.clone()), i.read.as_ref(), i.write.as_ref()));
        }
        for (index, read, write) in resources {
            let mut ops = Vec::new();
            for (op, spec) in [(Op::Read, read), (Op::Write, write)] {
                let Some(spec) = spec else { continue };
                let Some(per_request) = spec.per_request else {
                    skipped.push(Skipped {
                        resource: resource_key(&t.name, index.as_deref()),
                        op,
                        reason: "no per_request: its demand cannot be derived from requests".into(),
                    });
                    continue;
                };
                let units: Vec<f64> = requests.iter().map(|r| r * per_request).collect();
                let limits = config.schedule.row(&spec.hours, start);
                let head = &units[..units.len().min(900)];
                let mean = head.iter().sum::<f64>() / head.len().max(1) as f64;
                let initial =
                    ((mean / limits.target).ceil() as u64).clamp(limits.min.max(1), limits.max);
                let highest = known_peak_rps.map_or(initial, |rps| {
                    let peak_limits = (0..24)
                        .map(|h| spec.hours[h].target)
                        .fold(f64::MAX, f64::min);
                    ((rps * per_request / peak_limits).ceil() as u64).max(initial)
                });
                ops.push(OpTarget {
                    op,
                    per_request,
                    spec: spec.clone(),
                    units,
                    initial,
                    highest,
                });
            }
            if !ops.is_empty() {
                out.push(Target {
                    table: t.name.clone(),
                    index,
                    ops,
                });
            }
        }
    }
    (out, skipped)
}

/// Replays `requests` (per second from `start`) under both policies.
/// rapidscale's side runs the daemon's own deciders and actuator on a
/// simulated account (`engine.rs`), writing its audit log to `audit_dir`;
/// the native side is [`native::NativeSide`]. `progress` is called with the
/// number of seconds done, now and then.
#[allow(clippy::too_many_arguments)]
pub fn run(
    config: &Config,
    settings: &SimSettings,
    fleet_model: &FleetModel,
    start: DateTime<Utc>,
    requests: Vec<f64>,
    known_peak_rps: Option<f64>,
    audit_dir: &std::path::Path,
    mut progress: impl FnMut(u64),
) -> (Outcome, Vec<Skipped>) {
    let (targets, skipped) = targets(config, &requests, start, known_peak_rps);
    let group = group_target(config, &requests, start);
    let n = requests.len();
    let what = engine::Replayed {
        start,
        requests: &requests,
        targets: &targets,
        group: group.as_ref(),
        timeout_s: fleet_model.timeout_s,
    };
    let mut native = native::NativeSide::new(what, fleet_model.tracking, settings);
    let mut rapid = engine::run(
        config,
        settings,
        what,
        audit_dir,
        |s, now| native.second(config, &targets, s, now),
        &mut progress,
    );
    let group = group.map(|target| {
        let series = BTreeMap::from([
            (Policy::Rapidscale, std::mem::take(&mut rapid.group)),
            (Policy::AwsNative, native.take_group()),
        ]);
        let figures = series
            .iter()
            .map(|(p, s)| (*p, s.figures(0, n, config.pricing.instance_hour)))
            .collect();
        GroupOutcome {
            target,
            target_rps: config.asg.as_ref().map_or(1.0, |a| {
                config.schedule.row(&a.hours, start).target_rps_per_instance
            }),
            series,
            figures,
        }
    });
    progress(n as u64);
    let mut series = BTreeMap::new();
    let mut figures = BTreeMap::new();
    for (policy, side_series, side_figures) in [
        (
            Policy::Rapidscale,
            std::mem::take(&mut rapid.series),
            std::mem::take(&mut rapid.figures),
        ),
        (
            Policy::AwsNative,
            std::mem::take(&mut native.series),
            std::mem::take(&mut native.figures),
        ),
    ] {
        let mut side_figures = side_figures;
        for (i, t) in targets.iter().enumerate() {
            let f = &mut side_figures[i];
            for (k, o) in t.ops.iter().enumerate() {
                let of = op_figures(&side_series[i][k], o, config);
                f.cost_usd += of.cost_usd;
                match o.op {
                    Op::Read => f.read = Some(of),
                    Op::Write => f.write = Some(of),
                }
            }
        }
        series.insert(policy, side_series);
        figures.insert(policy, side_figures);
    }
    (
        Outcome {
            start,
            requests,
            targets,
            series,
            figures,
            group,
        },
        skipped,
    )
}

/// [`run`] with its audit log in a temporary folder, removed afterwards
/// (a replay whose decisions nobody reads one by one).
pub fn run_scratch(
    config: &Config,
    settings: &SimSettings,
    fleet_model: &FleetModel,
    start: DateTime<Utc>,
    requests: Vec<f64>,
    known_peak_rps: Option<f64>,
    progress: impl FnMut(u64),
) -> (Outcome, Vec<Skipped>) {
    static SCRATCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rapidscale-replay-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = run(
        config,
        settings,
        fleet_model,
        start,
        requests,
        known_peak_rps,
        &dir,
        progress,
    );
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn op_figures(s: &OpSeries, o: &OpTarget, config: &Config) -> OpFigures {
    let throttled_units: f64 = s.throttled.iter().sum();
    let (mut run, mut max_run, mut seconds) = (0u64, 0u64, 0u64);
    for &t in &s.throttled {
        if t > 1e-9 {
            run += 1;
            seconds += 1;
            max_run = max_run.max(run);
        } else {
            run = 0;
        }
    }
    let unit_hours = s.provisioned.iter().map(|&p| p as f64).sum::<f64>() / 3600.0;
    let price = match o.op {
        Op::Read => config.pricing.read_unit_hour,
        Op::Write => config.pricing.write_unit_hour,
    };
    OpFigures {
        throttled_units,
        throttled_requests: throttled_units / o.per_request,
        throttled_seconds: seconds,
        max_throttled_seconds_in_a_row: max_run,
        provisioned_unit_hours: unit_hours,
        cost_usd: unit_hours * price,
        peak_provisioned: s.provisioned.iter().copied().max().unwrap_or(0),
    }
}

/// Everything `rapidscale replay` takes.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    pub trace: std::path::PathBuf,
    pub report_dir: std::path::PathBuf,
    pub scale: f64,
    pub surges: u32,
    pub surge_amp: f64,
    /// Local times of day (the config's time zone) of announced surges,
    /// laid every day besides the random ones.
    pub announced: Vec<chrono::NaiveTime>,
    pub seed: u64,
    /// Whole days of the trace skipped before the replay starts.
    pub skip_days: u32,
    /// Days replayed (None: to the end of the trace).
    pub days: Option<u32>,
    pub trace_options: trace::TraceOptions,
    pub settings: SimSettings,
    pub fleet: FleetModel,
    /// Also replay in the robustness grid's worlds ([`ROBUSTNESS_GRID`]).
    pub robustness: bool,
    /// Multipliers of the group's `target_rps_per_instance` the frontier
    /// replays (empty: no frontier).
    pub frontier: Vec<f64>,
}

/// The group replayed alone at several targets: failed requests against
/// instance-hours, both policies at each target, the instances' capacity
/// unchanged (`settings.instance_rps`).
pub fn frontier(
    config: &Config,
    settings: &SimSettings,
    fleet_model: &FleetModel,
    start: DateTime<Utc>,
    requests: &[f64],
    multipliers: &[f64],
    seed: u64,
) -> Vec<report::FrontierPoint> {
    let Some(asg) = &config.asg else {
        return Vec::new();
    };
    let points = two_at_a_time(multipliers, seed, |&m| {
        let mut c = config.clone();
        c.dynamodb.tables.clear();
        let mut a = asg.clone();
        for h in a.hours.iter_mut() {
            h.target_rps_per_instance *= m;
        }
        c.asg = Some(a);
        let (o, _) = run_scratch(
            &c,
            settings,
            fleet_model,
            start,
            requests.to_vec(),
            None,
            |_| {},
        );
        o.group.map(|g| report::FrontierPoint {
            target_multiplier: m,
            target_rps_per_instance: c.asg.as_ref().map_or(0.0, |a| {
                c.schedule.row(&a.hours, start).target_rps_per_instance
            }),
            figures: g.figures,
        })
    });
    points.into_iter().flatten().flatten().collect()
}

/// The worlds of the robustness table: the bucket's size (s) and the median
/// update delay (s). The policy is told neither.
pub const ROBUSTNESS_GRID: [(f64, f64); 6] = [
    (300.0, 15.0),
    (60.0, 15.0),
    (0.0, 15.0),
    (300.0, 60.0),
    (60.0, 60.0),
    (0.0, 60.0),
];

/// Replays the same traffic in every world of [`ROBUSTNESS_GRID`] (the
/// replay's own world is reused where it is one of them), two at a time on
/// their own threads, each with its own seeded jitter.
fn robustness(
    config: &Config,
    args: &ReplayArgs,
    start: DateTime<Utc>,
    requests: &[f64],
    known_peak: f64,
    own: &Outcome,
) -> Vec<report::RobustnessRow> {
    let same = |b: f64, d: f64| {
        args.settings.burst_seconds == b && args.settings.update_delay.as_secs_f64() == d
    };
    let worlds: Vec<(f64, f64)> = ROBUSTNESS_GRID
        .iter()
        .copied()
        .filter(|&(b, d)| !same(b, d))
        .collect();
    let rows = two_at_a_time(&worlds, args.seed, |&(burst, delay)| {
        let settings = SimSettings {
            burst_seconds: burst,
            update_delay: std::time::Duration::from_secs_f64(delay),
            ..args.settings.clone()
        };
        let (outcome, _) = run_scratch(
            config,
            &settings,
            &args.fleet,
            start,
            requests.to_vec(),
            Some(known_peak),
            |_| {},
        );
        report::RobustnessRow::of(burst, delay, &outcome)
    });
    ROBUSTNESS_GRID
        .iter()
        .filter_map(|&(b, d)| {
            if same(b, d) {
                Some(report::RobustnessRow::of(b, d, own))
            } else {
                let i = worlds.iter().position(|w| *w == (b, d))?;
                rows[i].clone()
            }
        })
        .collect()
}

/// `f` of every item, two at a time on their own threads (the machine's two
/// cores), each thread's jitter seeded with `seed`; None where one panicked.
pub(crate) fn two_at_a_time<T: Sync, R: Send>(
    items: &[T],
    seed: u64,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let mut out = Vec::with_capacity(items.len());
    for pair in items.chunks(2) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .map(|item| {
                    let f = &f;
                    scope.spawn(move || {
                        fastrand::seed(seed);
                        f(item)
                    })
                })
                .collect();
            out.extend(handles.into_iter().map(|h| h.join().ok()));
        });
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    #[error(
        "the config has no [asg] and no DynamoDB capacity with per_request: nothing to replay"
    )]
    NothingToReplay,
    #[error("cannot write the report in {dir}: {source}")]
    Write { dir: String, source: std::io::Error },
}

/// The seconds of a trace of `len` seconds from `start` at which each local
/// time of `times` (the config's time zone) falls, every day.
pub fn announced_seconds(
    config: &Config,
    start: DateTime<Utc>,
    len: usize,
    times: &[chrono::NaiveTime],
) -> Vec<usize> {
    use chrono::TimeZone;
    let tz = config.schedule.timezone;
    let end = start + TimeDelta::seconds(len as i64);
    let first_day = start.with_timezone(&tz).date_naive() - TimeDelta::days(1);
    let mut out = Vec::new();
    let mut day = first_day;
    while tz
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .is_some_and(|d| d.with_timezone(&Utc) < end)
    {
        for t in times {
            if let Some(at) = tz.from_local_datetime(&day.and_time(*t)).earliest() {
                let at = at.with_timezone(&Utc);
                if at >= start && at < end {
                    out.push((at - start).num_seconds() as usize);
                }
            }
        }
        day += TimeDelta::days(1);
    }
    out.sort_unstable();
    out
}

/// Loads the trace, scales it, lays the surges, replays both policies and
/// writes the report; returns it with the files written.
pub fn replay(
    config: &Config,
    args: &ReplayArgs,
    progress: impl FnMut(u64),
    mut on_loaded: impl FnMut(u64),
) -> Result<(report::Report, Vec<std::path::PathBuf>), ReplayError> {
    let loaded = trace::load(&args.trace, &args.trace_options)?;
    let from = (args.skip_days as usize * 86_400).min(loaded.requests.len());
    let to = args
        .days
        .map_or(loaded.requests.len(), |d| from + d as usize * 86_400)
        .min(loaded.requests.len());
    if from >= to {
        return Err(ReplayError::Trace(trace::TraceError::Invalid {
            path: args.trace.display().to_string(),
            reason: format!(
                "has {} seconds: nothing left after skipping {} days",
                loaded.requests.len(),
                args.skip_days
            ),
        }));
    }
    let start = loaded.start + TimeDelta::seconds(from as i64);
    let mut requests: Vec<f64> = loaded.requests[from..to]
        .iter()
        .map(|r| r * args.scale)
        .collect();
    // The tables have served this traffic before; the surges are new.
    let known_peak = peak_minute_rps(&requests);
    let announced = announced_seconds(config, start, requests.len(), &args.announced);
    let spec = (args.surges > 0 || !announced.is_empty()).then_some(surges::SurgeSpec {
        per_day: args.surges,
        amplitude: args.surge_amp,
        announced,
        seed: args.seed,
    });
    let surge_list = spec
        .as_ref()
        .map(|s| surges::overlay(&mut requests, s))
        .unwrap_or_default();
    on_loaded(requests.len() as u64);
    std::fs::create_dir_all(&args.report_dir).map_err(|source| ReplayError::Write {
        dir: args.report_dir.display().to_string(),
        source,
    })?;
    // Jitter (retries, cooldowns) from the seed: the same replay twice
    // makes the same decisions.
    fastrand::seed(args.seed);
    let started = tokio::time::Instant::now();
    let (outcome, skipped) = run(
        config,
        &args.settings,
        &args.fleet,
        start,
        requests,
        Some(known_peak),
        &args.report_dir,
        progress,
    );
    let wall = started.elapsed().as_secs_f64();
    if outcome.targets.is_empty() && outcome.group.is_none() {
        return Err(ReplayError::NothingToReplay);
    }
    let robustness = if args.robustness {
        robustness(config, args, start, &outcome.requests, known_peak, &outcome)
    } else {
        Vec::new()
    };
    let frontier = if outcome.group.is_some() {
        frontier(
            config,
            &args.settings,
            &args.fleet,
            start,
            &outcome.requests,
            &args.frontier,
            args.seed,
        )
    } else {
        Vec::new()
    };
    let report = report::build(
        &outcome,
        report::ReportInput {
            path: args.trace.display().to_string(),
            kind: loaded.kind,
            scale: args.scale,
            surges: spec,
            surge_list: &surge_list,
            settings: &args.settings,
            pricing: config.pricing,
            skipped,
            replay_wall_s: wall,
            robustness,
            fleet: args.fleet,
            frontier,
        },
    );
    let files = report::write_all(&args.report_dir, &report, &outcome).map_err(|source| {
        ReplayError::Write {
            dir: args.report_dir.display().to_string(),
            source,
        }
    })?;
    Ok((report, files))
}
