//! Replay: recorded traffic through the simulator, twice — once with
//! rapidscale's policy, once with a model of AWS's native target tracking —
//! on a virtual clock that runs as fast as the CPU allows.
//!
//! Each second of the trace, for each policy's own simulated account:
//! updates that became due take effect, the second's demand is served
//! (burst, throttling), then the policy decides with what it has seen so
//! far, and its calls reach the simulator at the start of the next second.
//! rapidscale's side calls the daemon's own policy (`decide_op`, `plan`,
//! `DecreaseLedger`) with the same gates as the advisor (no call while
//! the table is UPDATING, a refused decrease blocks the ledger for an
//! hour). The native side is [`native::NativeTracker`].

pub mod native;
pub mod report;
pub mod surges;
pub mod trace;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::actuator::{resource_key, TableUpdate};
use crate::cloud::{CloudErrorKind, Throughput};
use crate::config::{CapacitySpec, Config, Mode};
use crate::policy::budget::DecreaseLedger;
use crate::policy::burst::BurstModel;
use crate::policy::demand::DemandView;
use crate::policy::dynamodb::{decide_op, plan, Op, OpContext, Plan};
use crate::sim::{SimSettings, SimWorld};
use native::NativeTracker;

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
}

/// Per second, per policy and operation: provisioned and throttled units.
#[derive(Debug, Clone, Default)]
pub struct OpSeries {
    pub provisioned: Vec<u64>,
    pub throttled: Vec<f64>,
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

/// Everything one run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub start: DateTime<Utc>,
    pub requests: Vec<f64>,
    pub targets: Vec<Target>,
    /// [policy][target][op]
    pub series: BTreeMap<Policy, Vec<Vec<OpSeries>>>,
    pub figures: BTreeMap<Policy, Vec<ResourceFigures>>,
}

/// Why a configured capacity is not replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub resource: String,
    pub op: Op,
    pub reason: String,
}

/// The capacities the trace can drive, with their demand in units.
pub fn targets(
    config: &Config,
    requests: &[f64],
    start: DateTime<Utc>,
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
                ops.push(OpTarget {
                    op,
                    per_request,
                    spec: spec.clone(),
                    units,
                    initial,
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

/// What one policy keeps between seconds.
struct Side {
    policy: Policy,
    world: SimWorld,
    ledgers: Vec<DecreaseLedger>,
    /// [target][op]
    native: Vec<Vec<NativeTracker>>,
    /// rapidscale's own burst estimate, [target][op].
    burst: Vec<Vec<BurstModel>>,
    series: Vec<Vec<OpSeries>>,
    figures: Vec<ResourceFigures>,
    /// Calls decided at the end of a second, made at the start of the next.
    queued: Vec<(usize, TableUpdate)>,
}

fn table_name(i: usize) -> String {
    format!("t{i}")
}

impl Side {
    fn new(policy: Policy, targets: &[Target], settings: &SimSettings, seconds: usize) -> Side {
        let mut world = SimWorld::new(settings.clone());
        for (i, t) in targets.iter().enumerate() {
            // Every target is its own simulated table: an index's update does
            // not make its base table UPDATING for the other's policy.
            let mut prov = Throughput { read: 1, write: 1 };
            for o in &t.ops {
                match o.op {
                    Op::Read => prov.read = o.initial,
                    Op::Write => prov.write = o.initial,
                }
            }
            world.add_table(&table_name(i), prov, &[]);
        }
        Side {
            policy,
            world,
            ledgers: vec![DecreaseLedger::default(); targets.len()],
            native: targets
                .iter()
                .map(|t| vec![NativeTracker::default(); t.ops.len()])
                .collect(),
            burst: targets
                .iter()
                .map(|t| vec![BurstModel::default(); t.ops.len()])
                .collect(),
            series: targets
                .iter()
                .map(|t| {
                    t.ops
                        .iter()
                        .map(|_| OpSeries {
                            provisioned: Vec::with_capacity(seconds),
                            throttled: Vec::with_capacity(seconds),
                        })
                        .collect()
                })
                .collect(),
            figures: vec![ResourceFigures::default(); targets.len()],
            queued: Vec::new(),
        }
    }

    /// Makes the calls decided last second.
    fn call(&mut self, now: DateTime<Utc>) {
        for (i, u) in std::mem::take(&mut self.queued) {
            match self
                .world
                .update_capacity(&table_name(i), None, u.target(), now)
            {
                Ok(()) => {
                    self.figures[i].actions += 1;
                    if u.decrease {
                        self.ledgers[i].record(now);
                        *self.figures[i]
                            .decreases_used
                            .entry(now.date_naive())
                            .or_default() += 1;
                    }
                    if self.policy == Policy::AwsNative {
                        for n in &mut self.native[i] {
                            n.changed(now.timestamp());
                        }
                    }
                }
                Err(e) => {
                    self.figures[i].refused += 1;
                    if e.kind == CloudErrorKind::LimitExceeded {
                        self.ledgers[i].block_until(now + TimeDelta::hours(1));
                    }
                }
            }
        }
    }

    /// Serves second `s` and records what happened.
    fn serve(&mut self, targets: &[Target], s: usize, unix: i64) {
        for (i, t) in targets.iter().enumerate() {
            let demand = |op: Op| {
                t.ops
                    .iter()
                    .find(|o| o.op == op)
                    .map_or(0.0, |o| o.units[s])
            };
            let (r, w) = self.world.serve(
                &table_name(i),
                None,
                demand(Op::Read),
                demand(Op::Write),
                DateTime::from_timestamp(unix, 0).unwrap_or_default(),
            );
            let prov = self
                .world
                .table(&table_name(i))
                .map(|t| t.base.provisioned())
                .unwrap_or(Throughput { read: 0, write: 0 });
            for (k, o) in t.ops.iter().enumerate() {
                let (served, p) = match o.op {
                    Op::Read => (r, prov.read),
                    Op::Write => (w, prov.write),
                };
                let series = &mut self.series[i][k];
                series.provisioned.push(p);
                series.throttled.push(served.throttled);
                match self.policy {
                    Policy::AwsNative => self.native[i][k].observe(unix, served.consumed, p),
                    Policy::Rapidscale => self.burst[i][k].observe(unix, o.units[s], p),
                }
            }
        }
    }

    /// Decides at the end of second `s` (wall time `now`).
    fn decide(
        &mut self,
        config: &Config,
        targets: &[Target],
        s: usize,
        now: DateTime<Utc>,
        history: usize,
    ) {
        let p = &config.dynamodb.policy;
        let stale_s = config.ingest.stale_after.as_secs() as i64;
        for (i, t) in targets.iter().enumerate() {
            let Some(table) = self.world.table(&table_name(i)) else {
                continue;
            };
            // The advisor's gate: never act while the table is UPDATING.
            if table.base.pending.is_some() {
                continue;
            }
            let current = table.base.provisioned();
            let cur = |op: Op| match op {
                Op::Read => current.read,
                Op::Write => current.write,
            };
            let update = match self.policy {
                Policy::Rapidscale => {
                    let lo = (s + 1).saturating_sub(history);
                    let verdicts: Vec<_> = t
                        .ops
                        .iter()
                        .enumerate()
                        .map(|(k, o)| {
                            let view = DemandView::from_seconds(&o.units[lo..=s]);
                            let ctx =
                                OpContext::at(&o.spec.hours, &config.schedule, now, cur(o.op), p)
                                    .with_burst(self.burst[i][k].units);
                            (o.op, cur(o.op), decide_op(&view, &ctx, p, stale_s))
                        })
                        .collect();
                    match plan(&verdicts, &self.ledgers[i], now, p) {
                        Plan::Update { changes, decrease } => Some((changes, decrease)),
                        Plan::Hold | Plan::WaitForBudget { .. } => None,
                    }
                }
                Policy::AwsNative => {
                    let unix = now.timestamp();
                    let mut changes = Vec::new();
                    for (k, o) in t.ops.iter().enumerate() {
                        let limits = config.schedule.row(&o.spec.hours, now);
                        if let Some(to) = self.native[i][k].decide(unix, cur(o.op), limits) {
                            if to < cur(o.op) && !self.ledgers[i].allowed_at(now) {
                                continue;
                            }
                            changes.push(crate::policy::dynamodb::Change {
                                op: o.op,
                                from: cur(o.op),
                                to,
                                rule: crate::policy::dynamodb::Rule::Surge,
                                evidence: crate::policy::dynamodb::Evidence {
                                    demand: None,
                                    threshold: None,
                                    window_s: 60,
                                },
                            });
                        }
                    }
                    let decrease = changes.iter().any(|c| c.to < c.from);
                    (!changes.is_empty()).then_some((changes, decrease))
                }
            };
            if let Some((changes, decrease)) = update {
                self.queued.push((
                    i,
                    TableUpdate {
                        table: table_name(i),
                        index: None,
                        current,
                        changes,
                        decrease,
                        mode: Mode::Apply,
                    },
                ));
            }
        }
    }
}

/// Replays `requests` (per second from `start`) under both policies.
/// `progress` is called with the number of seconds done, now and then.
pub fn run(
    config: &Config,
    settings: &SimSettings,
    start: DateTime<Utc>,
    requests: Vec<f64>,
    mut progress: impl FnMut(u64),
) -> (Outcome, Vec<Skipped>) {
    let (targets, skipped) = targets(config, &requests, start);
    let n = requests.len();
    let p = &config.dynamodb.policy;
    let history = [p.down_window, p.trend_window, p.up_window]
        .iter()
        .map(|d| d.as_secs() as usize)
        .max()
        .unwrap_or(60)
        + 2;
    let mut sides: Vec<Side> = Policy::ALL
        .iter()
        .map(|&policy| Side::new(policy, &targets, settings, n))
        .collect();
    for s in 0..n {
        let now = start + TimeDelta::seconds(s as i64);
        for side in &mut sides {
            side.world.advance(now);
            side.call(now);
            side.serve(&targets, s, now.timestamp());
            side.decide(config, &targets, s, now + TimeDelta::seconds(1), history);
        }
        if s % 3600 == 3599 {
            progress(s as u64 + 1);
        }
    }
    progress(n as u64);
    let mut series = BTreeMap::new();
    let mut figures = BTreeMap::new();
    for mut side in sides {
        for (i, t) in targets.iter().enumerate() {
            let f = &mut side.figures[i];
            for (k, o) in t.ops.iter().enumerate() {
                let of = op_figures(&side.series[i][k], o, config);
                f.cost_usd += of.cost_usd;
                match o.op {
                    Op::Read => f.read = Some(of),
                    Op::Write => f.write = Some(of),
                }
            }
        }
        series.insert(side.policy, side.series);
        figures.insert(side.policy, side.figures);
    }
    (
        Outcome {
            start,
            requests,
            targets,
            series,
            figures,
        },
        skipped,
    )
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
    pub seed: u64,
    /// Whole days of the trace skipped before the replay starts.
    pub skip_days: u32,
    /// Days replayed (None: to the end of the trace).
    pub days: Option<u32>,
    pub trace_options: trace::TraceOptions,
    pub settings: SimSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    #[error("the config has no DynamoDB capacity with per_request: nothing to replay")]
    NothingToReplay,
    #[error("cannot write the report in {dir}: {source}")]
    Write { dir: String, source: std::io::Error },
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
    let spec = (args.surges > 0).then_some(surges::SurgeSpec {
        per_day: args.surges,
        amplitude: args.surge_amp,
        seed: args.seed,
    });
    let surge_list = spec
        .as_ref()
        .map(|s| surges::overlay(&mut requests, s))
        .unwrap_or_default();
    on_loaded(requests.len() as u64);
    let started = tokio::time::Instant::now();
    let (outcome, skipped) = run(config, &args.settings, start, requests, progress);
    let wall = started.elapsed().as_secs_f64();
    if outcome.targets.is_empty() {
        return Err(ReplayError::NothingToReplay);
    }
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
