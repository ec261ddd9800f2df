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
use super::{dispose, labelled, Common, Disposition, TableAction, WarmAction};
use crate::actuator::{resource_key, MemberUpdate, TableUpdate};
use crate::audit::Outcome;
use crate::cloud::tracker::{CloudView, Tracked};
use crate::cloud::{BillingMode, TableDescription, Throughput};
use crate::config::{
    throttled_stream, units_stream, CapacityLimits, CapacitySpec, Config, Mode, TableConfig,
};
use crate::policy::burst::{BurstModel, BurstTrust};
use crate::policy::demand::DemandView;
use crate::policy::dynamodb::{
    decide_op, expected_lower, plan, Change, HoldReason, Op, OpContext, OpVerdict, Plan, Rule,
    BET_RECORDED_AFTER_S,
};
use crate::policy::ondemand::{decide_warm, WarmContext, WarmVerdict};
use crate::policy::spend::Outlook;
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
    /// How long burst capacity has been counted on to carry demand (a bet).
    pub betting_s: Option<f64>,
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
    /// On-demand: its warm throughput, and whether to raise it per operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<crate::cloud::WarmThroughput>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warm_verdicts: Vec<(Op, WarmVerdict)>,
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

/// Advice, verdicts to plan and expected lower capacities, per operation.
type OpsOfResource = (
    Vec<OpAdvice>,
    Vec<(Op, u64, OpVerdict)>,
    Vec<(Op, u64, DateTime<Utc>)>,
);

/// What one step decided.
#[derive(Debug, Default)]
pub(crate) struct TableStep {
    pub advice: Vec<ResourceAdvice>,
    pub actions: Vec<TableAction>,
    /// On-demand tables and indexes: warm throughput raised.
    pub warm: Vec<WarmAction>,
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
    /// On-demand: its warm throughput.
    warm: Option<crate::cloud::WarmThroughput>,
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
        warm: desc.warm,
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
                warm: i.warm,
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

/// What the decider keeps per resource and operation about burst capacity.
#[derive(Debug, Default)]
struct BurstState {
    /// The bucket, modelled from demand.
    model: BurstModel,
    /// How big a bucket is trusted (throttling lowers it).
    trust: BurstTrust,
    /// The newest second throttling was seen in (counted once).
    throttled_second: Option<i64>,
    /// The newest throttled minute CloudWatch reported (counted once).
    reported_minute: Option<i64>,
    /// Since when burst capacity is counted on to carry demand above the band.
    bet_since: Option<DateTime<Utc>>,
    /// The last tick a bet was made.
    last_bet: Option<DateTime<Utc>>,
    /// The current bet has its `held` record.
    bet_recorded: bool,
}

/// A gate holding a resource's decisions is recorded at most this often.
const GATE_RECORDED_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Throttling this soon after a bet is the bet's failure.
const BET_RECENT_S: i64 = 60;

pub(crate) struct TableDecider {
    config: Arc<Config>,
    /// Burst capacity per resource and operation.
    burst: HashMap<(String, Op), BurstState>,
    /// The decision recorded last per resource (recorded once until it changes).
    last_recorded: HashMap<String, Option<String>>,
    /// Tables with an UpdateTable call not answered yet.
    in_flight: HashSet<String>,
    /// Per table: the pause after changes whose retries all failed.
    cooldown: Cooldown,
    /// Per resource and gate: when that gate was last recorded.
    gates_recorded: HashMap<(String, String), DateTime<Utc>>,
    /// Which gate holds each resource now (its end is logged once).
    held: super::HeldBy,
    /// Per resource: the schedule's needs of the rest of the UTC day, and
    /// the hour (unix hours) they were computed in.
    needs: HashMap<String, (i64, Vec<DateTime<Utc>>)>,
}

impl TableDecider {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            burst: HashMap::new(),
            last_recorded: HashMap::new(),
            in_flight: HashSet::new(),
            cooldown: Cooldown::default(),
            needs: HashMap::new(),
            gates_recorded: HashMap::new(),
            held: super::HeldBy::new("dynamodb"),
        }
    }

    /// Decides on `config` from now on (a `SIGHUP` re-read).
    pub(crate) fn use_config(&mut self, config: Arc<Config>) {
        self.config = config;
        self.needs.clear();
    }

    /// The gates that stopped holding since the last call.
    pub(crate) fn take_gate_ends(&mut self) -> Vec<super::GateEnded> {
        self.held.take_ended()
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
            // One call per table at a time: members wait for the table's.
            let busy = self.in_flight.contains(&table.name);
            let mut members: Vec<Member> = resources(table, desc, tracked.last_ok)
                .iter()
                .map(|r| {
                    let managed = cloud.aws_auto_scaling(&table.name, r.index);
                    self.member(
                        r, desc, fresh, busy, managed, &mut views, budget, common, &mut step,
                    )
                })
                .collect();
            with_table_writes(&mut members);
            let actions = self.table_actions(&table.name, &mut members, &common.fleet, common.now);
            // One warm-throughput call per table at a time, as for capacity.
            let mut warm_sent = busy;
            for m in &mut members {
                match m.warm.take() {
                    Some(w) if w.disposition == Disposition::Apply && warm_sent => {}
                    Some(w) => {
                        warm_sent |= w.disposition == Disposition::Apply;
                        step.warm.push(w);
                    }
                    None => {}
                }
            }
            if actions.iter().any(|a| a.disposition == Disposition::Apply)
                || step
                    .warm
                    .iter()
                    .any(|w| w.disposition == Disposition::Apply && w.change.table == table.name)
            {
                self.in_flight.insert(table.name.clone());
            }
            for m in members {
                step.actions.extend(m.bets);
                step.advice.push(m.advice);
            }
            step.actions.extend(actions);
        }
        step
    }

    /// The actions of one table's members, and the gate each shows:
    /// increases of every member that may act go in one call, decreases
    /// wait while any member is raised and then go one at a time.
    fn table_actions(
        &mut self,
        table: &str,
        members: &mut [Member],
        fleet: &FleetReading,
        now: DateTime<Utc>,
    ) -> Vec<TableAction> {
        let raising = members.iter().any(|m| {
            matches!(
                m.advice.plan,
                Some(Plan::Update {
                    decrease: false,
                    ..
                })
            )
        });
        let mut out = Vec::new();
        let mut combined: Vec<MemberUpdate> = Vec::new();
        let mut decreasing = false;
        for m in members.iter_mut() {
            let is_up = matches!(
                m.advice.plan,
                Some(Plan::Update {
                    decrease: false,
                    ..
                })
            );
            if raising && !is_up {
                // A decrease never goes while a sibling is raised.
                continue;
            }
            let (action, gate) = self.act(m, fleet, now);
            m.advice.gate = gate.map(|g| g.to_string());
            let Some(action) = action else { continue };
            match action.disposition {
                Disposition::Apply if is_up => combined.extend(action.update.members),
                Disposition::Apply if decreasing => {}
                Disposition::Apply => {
                    decreasing = true;
                    out.push(action);
                }
                _ => out.push(action),
            }
        }
        if !combined.is_empty() {
            out.push(TableAction {
                update: TableUpdate {
                    table: table.to_string(),
                    members: combined,
                    decrease: false,
                    mode: Mode::Apply,
                },
                disposition: Disposition::Apply,
            });
        }
        out
    }

    fn fresh(&self, tracked: &Tracked<TableDescription>, now: DateTime<Utc>) -> bool {
        let within =
            chrono::TimeDelta::from_std(self.config.dynamodb.poll_interval * 3).unwrap_or_default();
        tracked.last_ok.is_some_and(|t| now - t <= within)
    }

    /// Advice, plan and gate of one table or index, and the records of the
    /// bets on burst that start.
    #[allow(clippy::too_many_arguments)]
    fn member(
        &mut self,
        r: &Resource,
        desc: &TableDescription,
        fresh: bool,
        table_busy: bool,
        aws_auto_scaling: Option<String>,
        views: &mut Views,
        budget: &mut BudgetStore,
        common: &Common,
        step: &mut TableStep,
    ) -> Member {
        let now = common.now;
        let key = r.key();
        let configured = r.table.mode.unwrap_or(self.config.mode);
        let runtime = common
            .overrides
            .effective(&[&key, &r.table.name], configured);
        let mut mode = runtime.acting().unwrap_or(configured);
        let rule = crate::policy::budget::DecreaseRule::of(&self.config.dynamodb.policy);
        let ledger = {
            let described_at = r.described_at.unwrap_or(now);
            let before = budget.ledger(&key).used_today(now);
            let ledger = budget.ledger_mut(&key);
            ledger.resync(now, described_at, r.aws_decreases, r.aws_last_decrease);
            step.budget_changed |= ledger.used_today(now) != before;
            ledger.clone()
        };
        let (ops, verdicts, lower) = self.ops(r, views, common);
        let outlook = Outlook {
            lower,
            schedule_needs: self.schedule_needs(r, now),
        };
        let bets = self.follow_bets(&key, &verdicts, now);
        let on_demand = desc.billing_mode == BillingMode::PayPerRequest;
        let plan = (!on_demand && r.provisioned.is_some()).then(|| {
            plan(
                &verdicts,
                &ledger,
                now,
                &self.config.dynamodb.policy,
                &outlook,
            )
        });
        let approved = common
            .approved
            .as_ref()
            .filter(|_| mode == Mode::DryRun)
            .and_then(|a| a.matches(&key, &plan_changes(plan.as_ref())));
        let mut plan = plan;
        if let (Some(approved), Some(Plan::Update { changes, .. })) = (approved, plan.as_mut()) {
            // An operator approved this plan: its approved figures, in
            // apply mode for this step, through the same gates.
            for c in changes.iter_mut() {
                if let Some((_, to)) = approved.iter().find(|(op, _)| op == c.op.as_str()) {
                    c.to = *to;
                }
            }
            mode = Mode::Apply;
        }
        let gate = first_gate(&GateInputs {
            runtime,
            mode,
            may_act: common.may_act,
            fleet_unseen: common.fleet.unseen.as_deref(),
            audit_unavailable: common.audit_unavailable.as_deref(),
            aws_auto_scaling: aws_auto_scaling.as_deref(),
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
        let bets: Vec<TableAction> = bets
            .into_iter()
            .map(|change| {
                let units = self
                    .burst
                    .get(&(key.clone(), change.op))
                    .map_or(0.0, |b| b.model.units);
                held(r, change, mode, units)
            })
            .collect();
        let (warm_verdicts, warm) = match (on_demand, r.warm) {
            (true, Some(w)) => {
                let verdicts = self.warm_verdicts(r, w, views, common);
                let action = self.warm_action(
                    r, desc, w, &verdicts, runtime, mode, fresh, table_busy, common,
                );
                (verdicts, action)
            }
            _ => (Vec::new(), None),
        };
        let advice = ResourceAdvice {
            table: r.table.name.clone(),
            index: r.index.map(str::to_string),
            resource: key,
            mode,
            status: r.status.to_string(),
            billing_mode: desc.billing_mode,
            ops,
            plan,
            gate: None,
            decreases_used_today: ledger.used_today(now),
            decreases_left_today: ledger.left_today(now, rule),
            next_decrease_at: ledger.next_allowed(now, rule),
            fleet: common.fleet.clone(),
            warm: r.warm.filter(|_| on_demand),
            warm_verdicts,
        };
        Member {
            advice,
            gate,
            provisioned: r.provisioned,
            write_max: r
                .write
                .map(|spec| self.config.schedule.row(&spec.hours, now).max),
            bets,
            warm,
        }
    }

    /// The action a member's plan leads to, and the gate to show (if any).
    fn act(
        &mut self,
        m: &Member,
        fleet: &FleetReading,
        now: DateTime<Utc>,
    ) -> (Option<TableAction>, Option<Gate>) {
        let (key, mode, gate) = (&m.advice.resource, m.advice.mode, m.gate.clone());
        let last = self.last_recorded.entry(key.clone()).or_default();
        let (changes, decrease, gate) = match (&m.advice.plan, m.provisioned) {
            (Some(Plan::Update { changes, decrease }), Some(_)) => (changes, *decrease, gate),
            (
                Some(Plan::WaitForBudget {
                    changes,
                    next_allowed,
                    why,
                }),
                Some(_),
            ) => (
                changes,
                true,
                Some(gate.unwrap_or(Gate::Budget {
                    until: *next_allowed,
                    why: *why,
                })),
            ),
            // Nothing to do: a later recommendation is new again.
            _ => {
                *last = None;
                self.held.see(key, None, now);
                return (None, None);
            }
        };
        self.held.see(key, gate.as_ref(), now);
        let last = self.last_recorded.entry(key.clone()).or_default();
        let update = TableUpdate::single(
            &m.advice.table,
            m.advice.index.as_deref(),
            m.provisioned.unwrap_or(Throughput { read: 0, write: 0 }),
            changes.clone(),
            decrease,
            mode,
        );
        let fingerprint = format!(
            "{}|{}",
            mode.as_str(),
            changes
                .iter()
                .map(|c| format!("{}:{}", c.op.as_str(), c.to))
                .collect::<Vec<_>>()
                .join(",")
        );
        let action = dispose(last, mode, fingerprint, gate.as_ref()).map(|d| TableAction {
            update,
            disposition: labelled(d, fleet),
        });
        // A gate that comes back (the budget, then UPDATING for a sibling's
        // call, then the budget again) is recorded once per resource every
        // GATE_RECORDED_EVERY, not at every turn.
        let action = match (action, &gate) {
            (Some(a), Some(g))
                if a.disposition != Disposition::Apply
                    && !matches!(g, Gate::AwsAutoScaling { .. }) =>
            {
                let seen = self
                    .gates_recorded
                    .entry((key.clone(), g.stable_key()))
                    .or_insert(DateTime::<Utc>::MIN_UTC);
                (now - *seen >= GATE_RECORDED_EVERY).then(|| {
                    *seen = now;
                    a
                })
            }
            (a, _) => a,
        };
        (action, gate)
    }

    /// Read and write of one resource: advice, the verdicts to plan, and
    /// where falling demand is heading (for planning decreases).
    fn ops(&mut self, r: &Resource, views: &mut Views, common: &Common) -> OpsOfResource {
        let p = self.config.dynamodb.policy;
        let stale_s = self.config.ingest.stale_after.as_secs() as i64;
        let mut ops = Vec::new();
        let mut verdicts = Vec::new();
        let mut lower = Vec::new();
        for (op, spec) in [(Op::Read, r.read), (Op::Write, r.write)] {
            let Some(spec) = spec else { continue };
            let (view, source) = self.demand(r, op, spec, views, common);
            let view = view.scaled(common.fleet.factor);
            let current = r
                .provisioned
                .map(|t| if op == Op::Read { t.read } else { t.write });
            let throttled = throttled_at(views, r, op, common.now);
            let mut ctx = OpContext::at(
                &spec.hours,
                &self.config.schedule,
                common.now,
                current.unwrap_or(0),
                &p,
            );
            ctx.announced_min = self
                .announced_units(r, op, spec, views, common)
                .map(|units| {
                    let need = (units / ctx.limits.target).ceil().max(0.0) as u64;
                    need.clamp(ctx.limits.min, ctx.limits.max)
                });
            let key = r.key();
            let reported = common
                .cloudwatch_throttled
                .iter()
                .filter(|(res, o, _)| *res == key && *o == op)
                .map(|(_, _, minute)| *minute)
                .max();
            let seen = Throttling {
                second: throttled,
                reported_minute: reported,
            };
            let ctx = self.with_burst(&key, op, &view, common.now, current, seen, ctx);
            let verdict = match current {
                Some(_) => decide_op(&view, &ctx, &p, stale_s),
                None => OpVerdict::Hold {
                    reason: HoldReason::InBand,
                },
            };
            let verdict = hold_decreases_on_estimates(verdict, &common.fleet);
            if let Some(cur) = current {
                if matches!(verdict, OpVerdict::Down { .. }) {
                    lower.extend(
                        expected_lower(&view, &ctx, common.now).map(|(to, at)| (op, to, at)),
                    );
                }
                verdicts.push((op, cur, verdict.clone()));
            }
            ops.push(OpAdvice {
                op,
                provisioned: current.unwrap_or(0),
                demand: view.newest(1).first().copied().filter(|v| !v.is_nan()),
                peak_60s: view.peak(60),
                source,
                limits: ctx.limits,
                betting_s: ctx
                    .hold_s
                    .filter(|_| matches!(verdict, OpVerdict::Bet { .. })),
                verdict,
            });
        }
        (ops, verdicts, lower)
    }

    /// Instants before UTC midnight at which the schedule lowers a limit
    /// of this resource (computed once per resource and hour).
    fn schedule_needs(&mut self, r: &Resource, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let hour = now.timestamp().div_euclid(3600);
        let key = r.key();
        if let Some((h, needs)) = self.needs.get(&key) {
            if *h == hour {
                return needs.clone();
            }
        }
        let midnight = crate::policy::budget::next_midnight(now);
        let lowered = |a: &CapacityLimits, b: &CapacityLimits| b.min < a.min || b.max < a.max;
        let mut needs: Vec<DateTime<Utc>> = [r.read, r.write]
            .into_iter()
            .flatten()
            .flat_map(|spec| {
                self.config
                    .schedule
                    .changes_within(&spec.hours, now, midnight, lowered)
            })
            .collect();
        needs.sort();
        needs.dedup();
        self.needs.insert(key, (hour, needs.clone()));
        needs
    }

    /// The context's burst figures for one resource and operation: new
    /// throttling lowers the trust and empties the model; the seconds past
    /// their grace window are fed to the model; how long a bet has lasted.
    #[allow(clippy::too_many_arguments)]
    fn with_burst(
        &mut self,
        key: &str,
        op: Op,
        view: &DemandView,
        now: DateTime<Utc>,
        provisioned: Option<u64>,
        seen: Throttling,
        mut ctx: OpContext,
    ) -> OpContext {
        let Some(provisioned) = provisioned else {
            return ctx;
        };
        let memory = self.config.dynamodb.policy.burst_memory;
        let state = self.burst.entry((key.to_string(), op)).or_default();
        let now_s = now.timestamp();
        let sealed_before = now_s - self.config.ingest.grace.as_secs_f64().ceil() as i64;
        let first = now_s - view.seconds.len() as i64;
        // Only the seconds the model has not seen yet.
        let from = state
            .model
            .last_second()
            .map_or(first, |l| (l + 1).max(first));
        let cap = state.trust.seconds(now, memory);
        for second in from..sealed_before {
            state.model.observe(
                second,
                view.seconds[(second - first) as usize],
                provisioned,
                cap,
            );
        }
        if let Some(second) = seen.second {
            if state.throttled_second.is_none_or(|s| second > s) {
                state.throttled_second = Some(second);
                // A bet that just flickered off still counts: demand
                // hovering at the band's top starts and ends bets.
                let betting = state
                    .last_bet
                    .is_some_and(|t| now - t <= chrono::TimeDelta::seconds(BET_RECENT_S));
                state
                    .trust
                    .throttled(now, &mut state.model, provisioned, betting);
            }
        }
        if let Some(minute) = seen.reported_minute {
            // CloudWatch's word, when the app's own counter did not already
            // tell of that minute.
            let told = state
                .throttled_second
                .is_some_and(|s| (minute..minute + 60).contains(&s));
            if state.reported_minute.is_none_or(|m| minute > m) {
                state.reported_minute = Some(minute);
                if !told {
                    state.trust.reported(now);
                }
            }
        }
        ctx.burst = state.model.units;
        ctx.trusted_s = cap;
        ctx.throttled = seen.second.is_some();
        ctx.hold_s = state.bet_since.map(|since| (now - since).as_seconds_f64());
        ctx
    }

    /// Follows each operation's bets on burst capacity: a bet that has
    /// lasted [`BET_RECORDED_AFTER_S`] is returned (to be recorded once; a
    /// spike's bet of a second or two is not worth a record), one that is
    /// no longer made ends.
    fn follow_bets(
        &mut self,
        key: &str,
        verdicts: &[(Op, u64, OpVerdict)],
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let mut started = Vec::new();
        for (op, from, verdict) in verdicts {
            let Some(state) = self.burst.get_mut(&(key.to_string(), *op)) else {
                continue;
            };
            match verdict {
                OpVerdict::Bet { to, rule, evidence } => {
                    state.last_bet = Some(now);
                    let since = *state.bet_since.get_or_insert(now);
                    let lasted = (now - since).as_seconds_f64() >= BET_RECORDED_AFTER_S;
                    if lasted && !state.bet_recorded {
                        state.bet_recorded = true;
                        started.push(Change {
                            op: *op,
                            from: *from,
                            to: *to,
                            rule: *rule,
                            evidence: *evidence,
                        });
                    }
                }
                _ => {
                    state.bet_since = None;
                    state.bet_recorded = false;
                }
            }
        }
        started
    }

    /// The units/s an announced surge holding now needs: the announced
    /// fleet requests/s (or the multiple of the hour's usual) x the units
    /// per request (configured, calibrated, or the ratio of the newest 15
    /// minutes). The floor holds from `2 x update_time` before the surge
    /// to its end.
    fn announced_units(
        &self,
        r: &Resource,
        op: Op,
        spec: &CapacitySpec,
        views: &Views,
        common: &Common,
    ) -> Option<f64> {
        use crate::announce::{floor_rate, recent_rate, usual_rate, Expect};
        let list = &common.announcements;
        if list.is_empty() {
            return None;
        }
        let (store, schedule) = (views.store, &self.config.schedule);
        let lead = self.config.dynamodb.policy.update_time * 2;
        let factor = common.fleet.factor;
        let DemandStreams {
            metric,
            per_request,
            requests,
        } = self.demand_streams(r, op, spec, store, common);
        let recent = |id| recent_rate(store, id);
        let per_request = per_request.or_else(|| match (metric, requests) {
            (Some(m), Some(q)) => Some(recent(m)? / recent(q)?).filter(|k| k.is_finite()),
            _ => None,
        });
        let by_requests = per_request.zip(requests).and_then(|(k, q)| {
            let usual = |a: &crate::announce::Announcement| {
                usual_rate(store, q, schedule, a.start).map(|u| u * factor)
            };
            floor_rate(list, common.now, lead, usual).map(|(rate, _)| rate * k)
        });
        let units = by_requests.or_else(|| {
            let m = metric?;
            let times: Vec<_> = list
                .iter()
                .filter(|a| matches!(a.expect, Expect::Times(_)))
                .cloned()
                .collect();
            let usual = |a: &crate::announce::Announcement| {
                usual_rate(store, m, schedule, a.start).map(|u| u * factor)
            };
            floor_rate(&times, common.now, lead, usual).map(|(units, _)| units)
        })?;
        Some(units)
    }

    /// Each operation's warm-throughput verdict of an on-demand resource.
    fn warm_verdicts(
        &self,
        r: &Resource,
        warm: crate::cloud::WarmThroughput,
        views: &mut Views,
        common: &Common,
    ) -> Vec<(Op, WarmVerdict)> {
        let stale_s = self.config.ingest.stale_after.as_secs() as i64;
        [
            (Op::Read, r.read, warm.read),
            (Op::Write, r.write, warm.write),
        ]
        .into_iter()
        .filter_map(|(op, spec, warm)| {
            let spec = spec?;
            let (view, _) = self.demand(r, op, spec, views, common);
            let view = view.scaled(common.fleet.factor);
            let limits = self.config.schedule.row(&spec.hours, common.now);
            let ctx = WarmContext {
                warm,
                previous_peak: self.peak_30m(r, op, spec, views.store, common),
                trigger: limits.target,
                ceiling: limits.max,
                announced: self.announced_units(r, op, spec, views, common),
            };
            Some((op, decide_warm(&view, &ctx, stale_s)))
        })
        .collect()
    }

    /// The highest second of the last 30 sealed minutes of an operation's
    /// demand (units/s, the fleet's): DynamoDB's "previous peak".
    fn peak_30m(
        &self,
        r: &Resource,
        op: Op,
        spec: &CapacitySpec,
        store: &SeriesStore,
        common: &Common,
    ) -> f64 {
        let peak_of = |id| {
            store
                .minutes(id, 30)
                .iter()
                .map(|(_, m)| m.peak as f64)
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max)
        };
        let DemandStreams {
            metric,
            per_request,
            requests,
        } = self.demand_streams(r, op, spec, store, common);
        let peak = match (metric, per_request.zip(requests)) {
            (Some(m), _) => peak_of(m),
            (None, Some((k, q))) => peak_of(q) * k,
            _ => 0.0,
        };
        peak * common.fleet.factor
    }

    /// The warm-throughput action of an on-demand resource, through the
    /// same gates as a capacity change (on-demand billing aside).
    #[allow(clippy::too_many_arguments)]
    fn warm_action(
        &mut self,
        r: &Resource,
        desc: &TableDescription,
        warm: crate::cloud::WarmThroughput,
        verdicts: &[(Op, WarmVerdict)],
        runtime: crate::mode::RuntimeMode,
        mode: Mode,
        fresh: bool,
        table_busy: bool,
        common: &Common,
    ) -> Option<WarmAction> {
        let key = r.key();
        let mut to = warm;
        let mut rules = Vec::new();
        for (op, v) in verdicts {
            if let WarmVerdict::Raise {
                to: t,
                rule,
                demand,
            } = *v
            {
                match op {
                    Op::Read => to.read = t,
                    Op::Write => to.write = t,
                }
                rules.push((*op, rule, demand));
            }
        }
        let last = self.last_recorded.entry(format!("{key}#warm")).or_default();
        if rules.is_empty() {
            *last = None;
            return None;
        }
        let gate = first_gate(&GateInputs {
            runtime,
            mode,
            may_act: common.may_act,
            fleet_unseen: common.fleet.unseen.as_deref(),
            audit_unavailable: common.audit_unavailable.as_deref(),
            aws_auto_scaling: None,
            cooldown: self.cooldown.wait(&r.table.name, common.now),
            what: "table",
            described_recently: fresh,
            on_demand: false,
            statuses: [
                Some(("table", desc.status.as_str())),
                r.index.map(|_| ("index", r.status)),
            ],
            in_flight: table_busy,
        });
        let fingerprint = format!("{}|warm|{}|{}", mode.as_str(), to.read, to.write);
        let last = self.last_recorded.entry(format!("{key}#warm")).or_default();
        dispose(last, mode, fingerprint, gate.as_ref()).map(|d| WarmAction {
            change: crate::actuator::WarmChange {
                table: r.table.name.clone(),
                index: r.index.map(str::to_string),
                from: warm,
                to,
                rules,
                mode,
            },
            disposition: labelled(d, &common.fleet),
        })
    }

    /// Where an operation's demand is read from: its reported units
    /// stream, the units per request in effect, the requests stream.
    fn demand_streams(
        &self,
        r: &Resource,
        op: Op,
        spec: &CapacitySpec,
        store: &SeriesStore,
        common: &Common,
    ) -> DemandStreams {
        DemandStreams {
            metric: spec
                .metric
                .as_ref()
                .and_then(|_| store.id(&units_stream(&r.table.name, r.index, op.as_str()))),
            per_request: if spec.auto {
                crate::policy::calibrate::in_effect(&common.calibration, &r.key(), op)
            } else {
                spec.per_request
            },
            requests: self
                .config
                .ingest
                .requests_stream
                .as_deref()
                .and_then(|n| store.id(n)),
        }
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
        let DemandStreams {
            metric,
            per_request,
            requests,
        } = self.demand_streams(r, op, spec, views.store, common);
        let metric = metric.map(|id| views.of(id));
        let from_requests = match (per_request, requests) {
            (Some(k), Some(id)) => Some(views.of(id).scaled(k)),
            _ => None,
        };
        let stale_s = self.config.ingest.stale_after.as_secs() as i64;
        pick_demand(metric, from_requests, views.history, stale_s)
    }
}

/// The (op, from, to) of a plan's changes, as an approval names them.
fn plan_changes(plan: Option<&Plan>) -> Vec<(String, u64, u64)> {
    match plan {
        Some(Plan::Update { changes, .. }) | Some(Plan::WaitForBudget { changes, .. }) => changes
            .iter()
            .map(|c| (c.op.as_str().to_string(), c.from, c.to))
            .collect(),
        _ => Vec::new(),
    }
}

/// [`TableDecider::demand_streams`]'s answer.
struct DemandStreams {
    metric: Option<StreamId>,
    per_request: Option<f64>,
    requests: Option<StreamId>,
}

/// Throttling seen for one resource and operation this tick.
#[derive(Debug, Clone, Copy)]
struct Throttling {
    /// The newest second the app reported throttled calls in (the current or the one before).
    second: Option<i64>,
    /// The newest throttled minute CloudWatch reported.
    reported_minute: Option<i64>,
}

/// One table or index of a step: what it thinks, and what it would do.
struct Member {
    advice: ResourceAdvice,
    /// The first gate that holds its decisions.
    gate: Option<Gate>,
    provisioned: Option<Throughput>,
    /// This hour's max write capacity, when its writes are managed.
    write_max: Option<u64>,
    /// Records of bets on burst capacity that start.
    bets: Vec<TableAction>,
    /// On-demand: its warm throughput raised (or recorded).
    warm: Option<WarmAction>,
}

/// When the table's writes are raised, each index whose writes rapidscale
/// manages is raised by the same ratio in the same call (a base-table
/// write projected onto an index is a write to it, and an index short of
/// write capacity throttles its table's writes), unless its own plan asks
/// for more; never past its hour's max.
fn with_table_writes(members: &mut [Member]) {
    let Some(ratio) =
        members
            .iter()
            .find(|m| m.advice.index.is_none())
            .and_then(|base| match &base.advice.plan {
                Some(Plan::Update {
                    changes,
                    decrease: false,
                }) => changes
                    .iter()
                    .find(|c| c.op == Op::Write && c.to > c.from && c.from > 0)
                    .map(|c| c.to as f64 / c.from as f64),
                _ => None,
            })
    else {
        return;
    };
    for m in members.iter_mut().filter(|m| m.advice.index.is_some()) {
        let (Some(prov), Some(max)) = (m.provisioned, m.write_max) else {
            continue;
        };
        let to = ((prov.write as f64 * ratio).ceil() as u64).min(max.max(prov.write));
        if to <= prov.write {
            continue;
        }
        let change = Change {
            op: Op::Write,
            from: prov.write,
            to,
            rule: Rule::WithTable,
            evidence: crate::policy::dynamodb::Evidence {
                demand: None,
                threshold: None,
                window_s: 0,
            },
        };
        m.advice.plan = Some(match m.advice.plan.take() {
            Some(Plan::Update {
                mut changes,
                decrease: false,
            }) => {
                match changes.iter_mut().find(|c| c.op == Op::Write) {
                    Some(c) => c.to = c.to.max(to),
                    None => changes.push(change),
                }
                Plan::Update {
                    changes,
                    decrease: false,
                }
            }
            _ => Plan::Update {
                changes: vec![change],
                decrease: false,
            },
        });
    }
}

/// The record of a bet on burst capacity that starts: what capacity would
/// have been raised to, and why it is not (yet).
fn held(r: &Resource, change: Change, mode: Mode, burst: f64) -> TableAction {
    TableAction {
        update: TableUpdate::single(
            &r.table.name,
            r.index,
            r.provisioned.unwrap_or(Throughput { read: 0, write: 0 }),
            vec![change],
            false,
            mode,
        ),
        disposition: Disposition::Record {
            outcome: Outcome::Held,
            reason: Some(format!(
                "burst capacity has carried the excess for {BET_RECORDED_AFTER_S:.0} s (about {burst:.0} units left, as modelled); raised if it runs short, on throttling, or after hold_max"
            )),
        },
    }
}

/// Seconds back in which throttling reported by the app ends a bet on
/// burst (the current second and the one before: a count sent at the end of
/// a second is still seen in the next).
const THROTTLE_SEEN_S: i64 = 2;

/// The newest second, among the current one and the one before, in which
/// the app reported throttled calls for this resource and operation.
fn throttled_at(views: &Views, r: &Resource, op: Op, now: DateTime<Utc>) -> Option<i64> {
    let id = views
        .store
        .id(&throttled_stream(&r.table.name, r.index, op.as_str()))?;
    let now_s = now.timestamp();
    (now_s - THROTTLE_SEEN_S + 1..=now_s).rev().find(|&second| {
        let value = views
            .store
            .open_value(id, second)
            .or_else(|| views.store.point(id, second).map(|p| p.value as f64));
        value.is_some_and(|v| v > 0.0)
    })
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
