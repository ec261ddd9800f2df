//! The DynamoDB decider: for each configured table and index, build the
//! demand views, decide read and write, plan under the decrease budget, and
//! say what to do with the plan (apply, record, or hold at a gate).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cooldown::Cooldown;
use super::fleet::FleetReading;
use super::gate::{first_gate, Gate, GateInputs};
use super::{dispose, labelled, Common, Disposition, TableAction};
use crate::actuator::{resource_key, TableUpdate};
use crate::audit::Outcome;
use crate::cloud::tracker::{CloudView, Tracked};
use crate::cloud::{BillingMode, TableDescription, Throughput};
use crate::config::{units_stream, CapacityLimits, CapacitySpec, Config, Mode, TableConfig};
use crate::policy::burst::BurstModel;
use crate::policy::demand::DemandView;
use crate::policy::dynamodb::{decide_op, plan, HoldReason, Op, OpContext, OpVerdict, Plan};
use crate::series::{SeriesStore, StreamId};
use crate::state::BudgetStore;

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

/// What the decider thinks of one table or index, for the API.
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
    /// How the fleet's demand was read (an estimate is labelled so).
    pub fleet: FleetReading,
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

/// What one step decided.
#[derive(Debug, Default)]
pub(crate) struct TableStep {
    pub advice: Vec<ResourceAdvice>,
    pub actions: Vec<TableAction>,
    /// The decrease ledgers took AWS's counters: persist them.
    pub budget_changed: bool,
}

/// One table or one of its indexes as described, with its specs.
struct Resource<'a> {
    table: &'a TableConfig,
    index: Option<&'a str>,
    read: Option<&'a CapacitySpec>,
    write: Option<&'a CapacitySpec>,
    provisioned: Option<Throughput>,
    status: &'a str,
    aws_decreases: Option<u64>,
    aws_last_decrease: Option<DateTime<Utc>>,
    /// When AWS described it (its counters are that day's).
    described_at: Option<DateTime<Utc>>,
}

impl Resource<'_> {
    fn key(&self) -> String {
        resource_key(&self.table.name, self.index)
    }
}

/// The resources of one described table: itself, then its configured
/// indexes that AWS reports.
fn resources<'a>(
    table: &'a TableConfig,
    desc: &'a TableDescription,
    described_at: Option<DateTime<Utc>>,
) -> Vec<Resource<'a>> {
    let mut out = vec![Resource {
        table,
        index: None,
        read: table.read.as_ref(),
        write: table.write.as_ref(),
        provisioned: desc.provisioned,
        status: &desc.status,
        aws_decreases: desc.decreases_today,
        aws_last_decrease: desc.last_decrease,
        described_at,
    }];
    for index in &table.indexes {
        if let Some(i) = desc.indexes.iter().find(|i| i.name == index.name) {
            out.push(Resource {
                table,
                index: Some(&index.name),
                read: index.read.as_ref(),
                write: index.write.as_ref(),
                provisioned: i.provisioned,
                status: &i.status,
                aws_decreases: i.decreases_today,
                aws_last_decrease: i.last_decrease,
                described_at,
            });
        }
    }
    out
}

/// Demand views of this tick, each stream read from the store once.
struct Views<'s> {
    store: &'s SeriesStore,
    now: f64,
    history: usize,
    read: HashMap<StreamId, DemandView>,
}

impl Views<'_> {
    fn of(&mut self, stream: StreamId) -> DemandView {
        let (store, now, history) = (self.store, self.now, self.history);
        self.read
            .entry(stream)
            .or_insert_with(|| DemandView::from_store(store, stream, now, history))
            .clone()
    }
}

pub(crate) struct TableDecider {
    config: Arc<Config>,
    /// The burst bucket of each resource and operation, modelled from demand.
    burst: HashMap<(String, Op), BurstModel>,
    /// The decision recorded last per resource (recorded once until it changes).
    last_recorded: HashMap<String, Option<String>>,
    /// Tables with an UpdateTable call not answered yet.
    in_flight: HashSet<String>,
    /// Per table: the pause after changes whose retries all failed.
    cooldown: Cooldown,
}

impl TableDecider {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            burst: HashMap::new(),
            last_recorded: HashMap::new(),
            in_flight: HashSet::new(),
            cooldown: Cooldown::default(),
        }
    }

    /// Seconds of demand the policy looks at.
    fn history(&self) -> usize {
        let p = &self.config.dynamodb.policy;
        [p.down_window, p.trend_window, p.up_window]
            .iter()
            .map(|d| d.as_secs() as usize)
            .max()
            .unwrap_or(60)
            + 2
    }

    /// A change of `table` sent to the actuator ended with `outcome`.
    pub(crate) fn completed(&mut self, table: &str, outcome: Outcome, now: DateTime<Utc>) {
        self.in_flight.remove(table);
        self.cooldown.record(table, outcome, now);
    }

    /// Decides every table and index at `common.now`.
    pub(crate) fn step(
        &mut self,
        store: &SeriesStore,
        cloud: &CloudView,
        budget: &mut BudgetStore,
        common: &Common,
    ) -> TableStep {
        let config = self.config.clone();
        let mut views = Views {
            store,
            now: common.now.timestamp_millis() as f64 / 1000.0,
            history: self.history(),
            read: HashMap::new(),
        };
        let mut step = TableStep::default();
        for table in &config.dynamodb.tables {
            let Some(tracked) = cloud.tables.get(&table.name) else {
                continue;
            };
            let Some(desc) = &tracked.current else {
                continue;
            };
            let fresh = self.fresh(tracked, common.now);
            // One call per table at a time: an index waits for its table's.
            let mut acted = self.in_flight.contains(&table.name);
            for r in resources(table, desc, tracked.last_ok) {
                let (advice, action) = self.resource(
                    &r, desc, fresh, acted, &mut views, budget, common, &mut step,
                );
                if action
                    .as_ref()
                    .is_some_and(|a| a.disposition == Disposition::Apply)
                {
                    acted = true;
                    self.in_flight.insert(table.name.clone());
                }
                step.actions.extend(action);
                step.advice.push(advice);
            }
        }
        step
    }

    fn fresh(&self, tracked: &Tracked<TableDescription>, now: DateTime<Utc>) -> bool {
        let within =
            chrono::TimeDelta::from_std(self.config.dynamodb.poll_interval * 3).unwrap_or_default();
        tracked.last_ok.is_some_and(|t| now - t <= within)
    }

    /// Advice and the action (if any) for one table or index.
    #[allow(clippy::too_many_arguments)]
    fn resource(
        &mut self,
        r: &Resource,
        desc: &TableDescription,
        fresh: bool,
        table_busy: bool,
        views: &mut Views,
        budget: &mut BudgetStore,
        common: &Common,
        step: &mut TableStep,
    ) -> (ResourceAdvice, Option<TableAction>) {
        let now = common.now;
        let key = r.key();
        let configured = r.table.mode.unwrap_or(self.config.mode);
        let runtime = common
            .overrides
            .effective(&[&key, &r.table.name], configured);
        let mode = runtime.acting().unwrap_or(configured);
        let rule = self.config.dynamodb.policy.decrease_rule();
        let ledger = {
            let described_at = r.described_at.unwrap_or(now);
            let before = budget.ledger(&key).used_today(now);
            let ledger = budget.ledger_mut(&key);
            ledger.resync(now, described_at, r.aws_decreases, r.aws_last_decrease);
            step.budget_changed |= ledger.used_today(now) != before;
            ledger.clone()
        };
        let (ops, verdicts) = self.ops(r, views, common);
        let on_demand = desc.billing_mode == BillingMode::PayPerRequest;
        let plan = (!on_demand && r.provisioned.is_some())
            .then(|| plan(&verdicts, &ledger, now, &self.config.dynamodb.policy));
        let gate = first_gate(&GateInputs {
            runtime,
            mode,
            may_act: common.may_act,
            fleet_unseen: common.fleet.unseen.as_deref(),
            audit_unavailable: common.audit_unavailable.as_deref(),
            cooldown: self.cooldown.wait(&r.table.name, now),
            what: "table",
            described_recently: fresh,
            on_demand,
            statuses: [
                Some(("table", desc.status.as_str())),
                r.index.map(|_| ("index", r.status)),
            ],
            in_flight: table_busy,
        });
        let (action, shown_gate) = self.act(r, &key, mode, plan.as_ref(), gate, &common.fleet);
        let advice = ResourceAdvice {
            table: r.table.name.clone(),
            index: r.index.map(str::to_string),
            resource: key,
            mode,
            status: r.status.to_string(),
            billing_mode: desc.billing_mode,
            ops,
            plan,
            gate: shown_gate.map(|g| g.to_string()),
            decreases_used_today: ledger.used_today(now),
            decreases_left_today: ledger.left_today(now, rule),
            next_decrease_at: ledger.next_allowed(now, rule),
            fleet: common.fleet.clone(),
        };
        (advice, action)
    }

    /// The action a plan leads to, and the gate to show (if any).
    fn act(
        &mut self,
        r: &Resource,
        key: &str,
        mode: Mode,
        plan: Option<&Plan>,
        gate: Option<Gate>,
        fleet: &FleetReading,
    ) -> (Option<TableAction>, Option<Gate>) {
        let last = self.last_recorded.entry(key.to_string()).or_default();
        let (changes, decrease, gate) = match (plan, r.provisioned) {
            (Some(Plan::Update { changes, decrease }), Some(_)) => (changes, *decrease, gate),
            (
                Some(Plan::WaitForBudget {
                    changes,
                    next_allowed,
                }),
                Some(_),
            ) => (
                changes,
                true,
                Some(gate.unwrap_or(Gate::Budget {
                    until: *next_allowed,
                })),
            ),
            // Nothing to do: a later recommendation is new again.
            _ => {
                *last = None;
                return (None, None);
            }
        };
        let update = TableUpdate {
            table: r.table.name.clone(),
            index: r.index.map(str::to_string),
            current: r.provisioned.unwrap_or(Throughput { read: 0, write: 0 }),
            changes: changes.clone(),
            decrease,
            mode,
        };
        let fingerprint = format!(
            "{}|{}",
            mode.as_str(),
            update
                .changes
                .iter()
                .map(|c| format!("{}:{}", c.op.as_str(), c.to))
                .collect::<Vec<_>>()
                .join(",")
        );
        let action = dispose(last, mode, fingerprint, gate.as_ref()).map(|d| TableAction {
            update,
            disposition: labelled(d, fleet),
        });
        (action, gate)
    }

    /// Read and write of one resource: advice, and the verdicts to plan.
    fn ops(
        &mut self,
        r: &Resource,
        views: &mut Views,
        common: &Common,
    ) -> (Vec<OpAdvice>, Vec<(Op, u64, OpVerdict)>) {
        let p = self.config.dynamodb.policy;
        let stale_s = self.config.ingest.stale_after.as_secs() as i64;
        let mut ops = Vec::new();
        let mut verdicts = Vec::new();
        for (op, spec) in [(Op::Read, r.read), (Op::Write, r.write)] {
            let Some(spec) = spec else { continue };
            let (view, source) = self.demand(r, op, spec, views, common);
            let view = view.scaled(common.fleet.factor);
            let current = r
                .provisioned
                .map(|t| if op == Op::Read { t.read } else { t.write });
            let burst = self.observe_burst(&r.key(), op, &view, common.now, current);
            let ctx = OpContext::at(
                &spec.hours,
                &self.config.schedule,
                common.now,
                current.unwrap_or(0),
                &p,
            )
            .with_burst(burst);
            let verdict = match current {
                Some(_) => decide_op(&view, &ctx, &p, stale_s),
                None => OpVerdict::Hold {
                    reason: HoldReason::InBand,
                },
            };
            let verdict = hold_decreases_on_estimates(verdict, &common.fleet);
            if let Some(cur) = current {
                verdicts.push((op, cur, verdict.clone()));
            }
            ops.push(OpAdvice {
                op,
                provisioned: current.unwrap_or(0),
                demand: view.newest(1).first().copied().filter(|v| !v.is_nan()),
                peak_60s: view.peak(60),
                source,
                limits: ctx.limits,
                verdict,
            });
        }
        (ops, verdicts)
    }

    /// Feeds the seconds past their grace window to the resource's burst
    /// model; returns the units it holds.
    fn observe_burst(
        &mut self,
        key: &str,
        op: Op,
        view: &DemandView,
        now: DateTime<Utc>,
        provisioned: Option<u64>,
    ) -> f64 {
        let Some(provisioned) = provisioned else {
            return 0.0;
        };
        let model = self.burst.entry((key.to_string(), op)).or_default();
        let now_s = now.timestamp();
        let sealed_before = now_s - self.config.ingest.grace.as_secs_f64().ceil() as i64;
        let first = now_s - view.seconds.len() as i64;
        // Only the seconds the model has not seen yet.
        let from = model.last_second().map_or(first, |l| (l + 1).max(first));
        for second in from..sealed_before {
            model.observe(second, view.seconds[(second - first) as usize], provisioned);
        }
        model.units
    }

    /// Reported units win while fresh; otherwise requests/s x per_request.
    fn demand(
        &self,
        r: &Resource,
        op: Op,
        spec: &CapacitySpec,
        views: &mut Views,
        common: &Common,
    ) -> (DemandView, DemandSource) {
        let store = views.store;
        let metric = spec
            .metric
            .as_ref()
            .and_then(|_| store.id(&units_stream(&r.table.name, r.index, op.as_str())))
            .map(|id| views.of(id));
        let per_request = if spec.auto {
            crate::policy::calibrate::in_effect(&common.calibration, &r.key(), op)
        } else {
            spec.per_request
        };
        let requests = self
            .config
            .ingest
            .requests_stream
            .as_deref()
            .and_then(|n| store.id(n));
        let from_requests = match (per_request, requests) {
            (Some(k), Some(id)) => Some(views.of(id).scaled(k)),
            _ => None,
        };
        let stale_s = self.config.ingest.stale_after.as_secs() as i64;
        pick_demand(metric, from_requests, views.history, stale_s)
    }
}

/// A fleet read as an estimate is not zero traffic, nor exact: no decrease
/// is made on it.
pub(crate) fn hold_decreases_on_estimates(verdict: OpVerdict, fleet: &FleetReading) -> OpVerdict {
    match verdict {
        OpVerdict::Down { .. } if !fleet.exact => OpVerdict::Hold {
            reason: HoldReason::FleetEstimated,
        },
        v => v,
    }
}

/// Reported units win while they are fresh; otherwise requests/s x
/// per_request when that is fresh; otherwise nothing is known.
pub(crate) fn pick_demand(
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
mod tests;
