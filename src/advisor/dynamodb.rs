//! DynamoDB advisor: every `DECIDE_EVERY`, for each configured table and
//! index, build the demand views, decide read and write, plan under the
//! decrease budget, and record (dry-run) or apply (apply mode) the plan.
//!
//! Gates before any action: the table was described recently, it is
//! ACTIVE (no action while UPDATING), it is on provisioned billing, and no
//! call for the same table is in flight.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actuator::{resource_key, Actuator, TableUpdate};
use crate::audit::Outcome;
use crate::clock::SharedClock;
use crate::cloud::tracker::{self, SharedView};
use crate::cloud::{BillingMode, CloudBackend, TableDescription, Throughput};
use crate::config::{units_stream, CapacityLimits, CapacitySpec, Config, Mode};
use crate::ingest::{lock, SharedStore};
use crate::mode::{ModeSwitch, RuntimeMode};
use crate::policy::budget::DecreaseLedger;
use crate::policy::burst::BurstModel;
use crate::policy::demand::DemandView;
use crate::policy::dynamodb::{decide_op, plan, Op, OpContext, OpVerdict, Plan};
use crate::series::SeriesStore;

/// How often decisions are taken. Faster than once a second so that the
/// current second's rate so far can trigger an increase before it ends.
pub const DECIDE_EVERY: Duration = Duration::from_millis(250);

/// Where an operation's demand came from this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DemandSource {
    /// Units reported by the application (StatsD metric).
    Metric,
    /// Requests/s x per_request.
    Requests,
    /// Nothing fresh.
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpAdvice {
    pub op: Op,
    pub provisioned: u64,
    /// Newest known demand (units/s), the current second's rate so far when known.
    pub demand: Option<f64>,
    /// Highest demand of the last 60 s.
    pub peak_60s: Option<f64>,
    pub source: DemandSource,
    pub limits: CapacityLimits,
    pub verdict: OpVerdict,
}

/// What the advisor thinks of one table or index, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceAdvice {
    pub table: String,
    pub index: Option<String>,
    pub resource: String,
    pub mode: Mode,
    pub status: String,
    pub billing_mode: BillingMode,
    pub ops: Vec<OpAdvice>,
    pub plan: Option<Plan>,
    /// Why nothing is done now, when something would be.
    pub gate: Option<String>,
    pub decreases_used_today: usize,
    pub decreases_left_today: usize,
    pub next_decrease_at: DateTime<Utc>,
    /// With coordination: own demand x `factor` is the fleet's; when
    /// `estimated` (a sidecar is silent) decreases are held.
    pub fleet: Option<FleetScale>,
}

impl ResourceAdvice {
    /// The capacity the plan asks for one operation (its current capacity
    /// when the plan holds).
    pub fn recommended(&self, op: Op, provisioned: u64) -> u64 {
        match &self.plan {
            Some(Plan::Update { changes, .. }) | Some(Plan::WaitForBudget { changes, .. }) => {
                changes
                    .iter()
                    .find(|c| c.op == op)
                    .map_or(provisioned, |c| c.to)
            }
            _ => provisioned,
        }
    }
}

pub use crate::coord::task::FleetScale;

pub type SharedAdvice = Arc<RwLock<Vec<ResourceAdvice>>>;

/// What the gates look at.
#[derive(Debug, Clone, Copy)]
pub struct TableState<'a> {
    pub billing_mode: BillingMode,
    pub table_status: &'a str,
    /// The status of the table or index being changed.
    pub resource_status: &'a str,
    pub described_recently: bool,
    pub update_in_flight: bool,
}

/// Why a change cannot be made now, if it cannot.
pub fn gate(s: &TableState) -> Option<String> {
    if s.billing_mode == BillingMode::PayPerRequest {
        Some("on-demand table: reported, never changed".to_string())
    } else if !s.described_recently {
        Some("table state is older than 3 poll intervals: AWS unavailable?".to_string())
    } else if s.table_status != "ACTIVE" {
        Some(format!("table is {}: waiting for ACTIVE", s.table_status))
    } else if s.resource_status != "ACTIVE" {
        Some(format!(
            "index is {}: waiting for ACTIVE",
            s.resource_status
        ))
    } else if s.update_in_flight {
        Some("an update of this table is in flight".to_string())
    } else {
        None
    }
}

pub struct DynamoAdvisor<C> {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub view: SharedView,
    pub clock: SharedClock,
    pub actuator: Arc<Actuator<C>>,
    pub advice: SharedAdvice,
    pub tasks: TaskTracker,
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// The last plan recorded per resource, so an unchanged recommendation is recorded once.
    last_recorded: HashMap<String, String>,
    /// Operator overrides of the mode (`POST /api/v1/mode`).
    pub modes: Arc<ModeSwitch>,
    /// With fleet coordination: only the lease holder applies.
    pub leadership: Option<crate::coord::task::SharedRole>,
    /// With fleet coordination: the fleet's totals, to scale own demand to the fleet's.
    pub coordination: Option<crate::coord::task::SharedCoordination>,
    /// The burst bucket of each resource and operation, modelled from demand.
    burst: Mutex<HashMap<(String, Op), BurstModel>>,
    /// `per_request = "auto"`: the units per request in effect (fit or fallback).
    pub calibration: Option<crate::cloudwatch::calibrate::SharedCalibration>,
    /// Per table: the pause after changes whose retries all failed.
    cooldown: super::Cooldown,
}

impl<C: CloudBackend> DynamoAdvisor<C> {
    pub fn new(
        config: Arc<Config>,
        store: SharedStore,
        view: SharedView,
        clock: SharedClock,
        actuator: Arc<Actuator<C>>,
        advice: SharedAdvice,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            config,
            store,
            view,
            clock,
            actuator,
            advice,
            tasks,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            last_recorded: HashMap::new(),
            burst: Mutex::new(HashMap::new()),
            modes: Arc::new(ModeSwitch::default()),
            leadership: None,
            coordination: None,
            calibration: None,
            cooldown: super::Cooldown::default(),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        super::decide_every(shutdown, |token| self.tick(token)).await;
    }

    fn tick(&mut self, shutdown: &CancellationToken) {
        let now = self.clock.now();
        let now_f = now.timestamp_millis() as f64 / 1000.0;
        let described = tracker::read(&self.view).tables.clone();
        let mut advice = Vec::new();
        let mut actions: Vec<(TableUpdate, Option<String>)> = Vec::new();
        // Resources with nothing to do: a later recommendation is new again.
        let mut settled: Vec<String> = Vec::new();
        {
            let store = lock(&self.store);
            for table in &self.config.dynamodb.tables {
                let Some(tracked) = described.get(&table.name) else {
                    continue;
                };
                let Some(desc) = &tracked.current else {
                    continue;
                };
                let fresh = tracked.last_ok.is_some_and(|t| {
                    now - t
                        <= chrono::TimeDelta::from_std(self.config.dynamodb.poll_interval * 3)
                            .unwrap_or_default()
                });
                let configured = table.mode.unwrap_or(self.config.mode);
                let table_busy = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&table.name);
                let mut resources = vec![(
                    None,
                    table.read.as_ref(),
                    table.write.as_ref(),
                    desc.provisioned,
                    desc.status.clone(),
                    desc.decreases_today,
                    desc.last_decrease,
                )];
                for index in &table.indexes {
                    match desc.indexes.iter().find(|i| i.name == index.name) {
                        Some(i) => resources.push((
                            Some(index.name.as_str()),
                            index.read.as_ref(),
                            index.write.as_ref(),
                            i.provisioned,
                            i.status.clone(),
                            i.decreases_today,
                            i.last_decrease,
                        )),
                        None => {
                            tracing::debug!(table = %table.name, index = %index.name, "Configured index not found on the table.")
                        }
                    }
                }
                let mut table_action_taken = false;
                for (index, read_spec, write_spec, provisioned, status, aws_count, aws_last) in
                    resources
                {
                    let key = resource_key(&table.name, index);
                    let runtime = self.modes.effective(&[&key, &table.name], configured);
                    let mode = runtime.acting().unwrap_or(configured);
                    let ledger = self.resync_ledger(&key, now, aws_count, aws_last);
                    let mut a = self.advise(
                        &store,
                        &table.name,
                        index,
                        read_spec,
                        write_spec,
                        provisioned,
                        desc,
                        &ledger,
                        now,
                        now_f,
                    );
                    a.mode = mode;
                    a.status = status.clone();
                    let follower = mode == crate::config::Mode::Apply
                        && self.leadership.as_ref().is_some_and(|r| {
                            !crate::coord::task::may_act(r, now.timestamp_millis())
                        });
                    let gate = if runtime == RuntimeMode::Paused {
                        Some("paused by an operator".to_string())
                    } else if follower {
                        Some("follower: the leader acts".to_string())
                    } else if let Some(why) = self
                        .actuator
                        .audit
                        .unavailable()
                        .filter(|_| mode == crate::config::Mode::Apply)
                    {
                        Some(format!("audit log unavailable ({why}): recommending only"))
                    } else if let Some(wait) = self
                        .cooldown
                        .gate(&table.name, now)
                        .filter(|_| mode == crate::config::Mode::Apply)
                    {
                        Some(wait)
                    } else {
                        gate(&TableState {
                            billing_mode: desc.billing_mode,
                            table_status: &desc.status,
                            resource_status: &status,
                            described_recently: fresh,
                            update_in_flight: table_busy || table_action_taken,
                        })
                    };
                    if let (Some(Plan::Update { changes, decrease }), Some(current)) =
                        (&a.plan, provisioned)
                    {
                        let update = TableUpdate {
                            table: table.name.clone(),
                            index: index.map(str::to_string),
                            current,
                            changes: changes.clone(),
                            decrease: *decrease,
                            mode,
                        };
                        if gate.is_none() {
                            table_action_taken = true;
                        }
                        actions.push((update, gate.clone()));
                    } else if let (
                        Some(Plan::WaitForBudget {
                            changes,
                            next_allowed,
                        }),
                        Some(current),
                    ) = (&a.plan, provisioned)
                    {
                        let reason = format!(
                            "waiting for the decrease budget until {}",
                            next_allowed.to_rfc3339()
                        );
                        a.gate = Some(reason.clone());
                        let update = TableUpdate {
                            table: table.name.clone(),
                            index: index.map(str::to_string),
                            current,
                            changes: changes.clone(),
                            decrease: true,
                            mode,
                        };
                        actions.push((update, Some(reason)));
                    } else {
                        settled.push(key.clone());
                    }
                    if a.gate.is_none() {
                        a.gate = gate.filter(|_| matches!(a.plan, Some(Plan::Update { .. })));
                    }
                    advice.push(a);
                }
            }
        }
        for key in settled {
            self.last_recorded.remove(&key);
        }
        for (update, gate) in actions {
            self.act(update, gate, shutdown);
        }
        *self.advice.write().unwrap_or_else(|p| p.into_inner()) = advice;
    }

    /// Adopts AWS's decrease counters when reported; returns the ledger.
    fn resync_ledger(
        &self,
        key: &str,
        now: DateTime<Utc>,
        aws_count: Option<u64>,
        aws_last: Option<DateTime<Utc>>,
    ) -> DecreaseLedger {
        let mut budget = self
            .actuator
            .budget
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let before = budget.ledger(key);
        let ledger = budget.ledger_mut(key);
        ledger.resync(now, aws_count, aws_last);
        let after = ledger.clone();
        if after.used_today(now) != before.used_today(now) {
            if let Err(e) = budget.save() {
                tracing::error!(error = %e, "Cannot persist the decrease budget.");
            }
        }
        after
    }

    #[allow(clippy::too_many_arguments)]
    fn advise(
        &self,
        store: &SeriesStore,
        table: &str,
        index: Option<&str>,
        read_spec: Option<&CapacitySpec>,
        write_spec: Option<&CapacitySpec>,
        provisioned: Option<Throughput>,
        desc: &TableDescription,
        ledger: &DecreaseLedger,
        now: DateTime<Utc>,
        now_f: f64,
    ) -> ResourceAdvice {
        let p = &self.config.dynamodb.policy;
        let stale_s = self.config.ingest.stale_after.as_secs() as i64;
        let history = [p.down_window, p.trend_window, p.up_window]
            .iter()
            .map(|d| d.as_secs() as usize)
            .max()
            .unwrap_or(60)
            + 2;
        let mut ops = Vec::new();
        let mut verdicts = Vec::new();
        let fleet = self.fleet_scale(store);
        for (op, spec) in [(Op::Read, read_spec), (Op::Write, write_spec)] {
            let Some(spec) = spec else { continue };
            let (view, source) =
                self.demand(store, table, index, op, spec, now_f, history, stale_s);
            let view = match fleet {
                Some(f) => view.scaled(f.factor),
                None => view,
            };
            let current = provisioned.map(|t| if op == Op::Read { t.read } else { t.write });
            let burst = self.observe_burst(table, index, op, &view, now_f, current);
            let ctx = OpContext::at(
                &spec.hours,
                &self.config.schedule,
                now,
                current.unwrap_or(0),
                p,
            )
            .with_burst(burst);
            let verdict = match current {
                Some(_) => decide_op(&view, &ctx, p, stale_s),
                None => OpVerdict::Hold {
                    reason: crate::policy::dynamodb::HoldReason::InBand,
                },
            };
            let verdict = hold_decreases_on_estimates(verdict, fleet);
            if let Some(cur) = current {
                verdicts.push((op, cur, verdict.clone()));
            }
            let newest = view.newest(1).first().copied().filter(|v| !v.is_nan());
            let peak = view
                .newest(60)
                .into_iter()
                .filter(|v| !v.is_nan())
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            ops.push(OpAdvice {
                op,
                provisioned: current.unwrap_or(0),
                demand: newest,
                peak_60s: peak,
                source,
                limits: ctx.limits,
                verdict,
            });
        }
        let on_demand = desc.billing_mode == BillingMode::PayPerRequest;
        let plan = (!on_demand && provisioned.is_some()).then(|| plan(&verdicts, ledger, now, p));
        ResourceAdvice {
            table: table.to_string(),
            index: index.map(str::to_string),
            resource: resource_key(table, index),
            mode: self.config.mode,
            status: desc.status.clone(),
            billing_mode: desc.billing_mode,
            ops,
            plan,
            gate: None,
            decreases_used_today: ledger.used_today(now),
            decreases_left_today: ledger.left_today(now),
            next_decrease_at: ledger.next_allowed(now),
            fleet,
        }
    }

    /// With coordination: own demand x factor is the fleet's.
    fn fleet_scale(&self, store: &SeriesStore) -> Option<FleetScale> {
        crate::coord::task::fleet_scale(
            self.coordination.as_ref()?,
            store,
            self.config.ingest.requests_stream.as_deref(),
        )
    }

    /// Feeds the seconds past their grace window to the resource's burst
    /// model; returns the units it holds.
    fn observe_burst(
        &self,
        table: &str,
        index: Option<&str>,
        op: Op,
        view: &DemandView,
        now_f: f64,
        provisioned: Option<u64>,
    ) -> f64 {
        let Some(provisioned) = provisioned else {
            return 0.0;
        };
        let mut models = self.burst.lock().unwrap_or_else(|p| p.into_inner());
        let model = models.entry((resource_key(table, index), op)).or_default();
        let now_s = now_f.floor() as i64;
        let sealed_before = now_s - self.config.ingest.grace.as_secs_f64().ceil() as i64;
        let first = now_s - view.seconds.len() as i64;
        for (i, v) in view.seconds.iter().enumerate() {
            let second = first + i as i64;
            if second < sealed_before {
                model.observe(second, *v, provisioned);
            }
        }
        model.units
    }

    /// Reported units win while fresh; otherwise requests/s x per_request.
    #[allow(clippy::too_many_arguments)]
    fn demand(
        &self,
        store: &SeriesStore,
        table: &str,
        index: Option<&str>,
        op: Op,
        spec: &CapacitySpec,
        now_f: f64,
        history: usize,
        stale_s: i64,
    ) -> (DemandView, DemandSource) {
        let metric = spec
            .metric
            .as_ref()
            .and_then(|_| store.id(&units_stream(table, index, op.as_str())))
            .map(|id| DemandView::from_store(store, id, now_f, history));
        let requests_stream = self.config.ingest.requests_stream.as_deref();
        let per_request = match (&self.calibration, spec.auto) {
            (Some(c), true) => {
                crate::cloudwatch::calibrate::in_effect(c, &resource_key(table, index), op)
            }
            _ => spec.per_request,
        };
        let from_requests = match (per_request, requests_stream.and_then(|n| store.id(n))) {
            (Some(per_request), Some(id)) => {
                Some(DemandView::from_store(store, id, now_f, history).scaled(per_request))
            }
            _ => None,
        };
        pick_demand(metric, from_requests, history, stale_s)
    }

    fn act(&mut self, update: TableUpdate, gate: Option<String>, shutdown: &CancellationToken) {
        let key = update.resource();
        let fingerprint = format!(
            "{:?}|{}",
            update.mode,
            update
                .changes
                .iter()
                .map(|c| format!("{}:{}", c.op.as_str(), c.to))
                .collect::<Vec<_>>()
                .join(",")
        );
        if let Some(reason) = gate {
            // A decision that cannot be carried out now: recorded once.
            let fp = format!("skip|{reason}|{fingerprint}");
            if self.last_recorded.get(&key) != Some(&fp) {
                self.actuator.note(&update, Outcome::Skipped, Some(reason));
                self.last_recorded.insert(key, fp);
            }
            return;
        }
        match update.mode {
            Mode::DryRun => {
                if self.last_recorded.get(&key) != Some(&fingerprint) {
                    self.actuator.note(&update, Outcome::Recommended, None);
                    self.last_recorded.insert(key, fingerprint);
                }
            }
            Mode::Apply => {
                self.last_recorded.remove(&key);
                let table = update.table.clone();
                self.in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(table.clone());
                let actuator = self.actuator.clone();
                let in_flight = self.in_flight.clone();
                let token = shutdown.clone();
                let cooldown = self.cooldown.clone();
                let clock = self.clock.clone();
                self.tasks.spawn(async move {
                    let outcome = actuator.apply(update, token).await;
                    cooldown.record(&table, outcome, clock.now());
                    in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&table);
                });
            }
        }
    }
}

/// A silent sidecar's traffic is estimated, never zero: no decrease is made
/// on an estimate.
pub fn hold_decreases_on_estimates(verdict: OpVerdict, fleet: Option<FleetScale>) -> OpVerdict {
    match verdict {
        OpVerdict::Down { .. } if fleet.is_some_and(|f| f.estimated) => OpVerdict::Hold {
            reason: crate::policy::dynamodb::HoldReason::FleetEstimated,
        },
        v => v,
    }
}

/// Reported units win while they are fresh; otherwise requests/s x
/// per_request when that is fresh; otherwise nothing is known.
pub fn pick_demand(
    metric: Option<DemandView>,
    from_requests: Option<DemandView>,
    history: usize,
    stale_s: i64,
) -> (DemandView, DemandSource) {
    match (metric, from_requests) {
        (Some(m), _) if !m.is_stale(stale_s) => (m, DemandSource::Metric),
        (_, Some(r)) if !r.is_stale(stale_s) => (r, DemandSource::Requests),
        (Some(m), _) => (m, DemandSource::None),
        (None, Some(r)) => (r, DemandSource::None),
        (None, None) => (
            DemandView {
                seconds: vec![f64::NAN; history],
                partial_rate: None,
                silent_for: None,
            },
            DemandSource::None,
        ),
    }
}

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
