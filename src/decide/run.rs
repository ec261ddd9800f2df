//! The deciders' loop: every [`DECIDE_EVERY`] on the clock's quarter
//! seconds, gather what both deciders share, step them over one snapshot,
//! publish their advice, and hand their actions to the actuator. Applies
//! run as tasks of their own; their outcomes come back through a channel
//! and are folded in before the next step.
//!
//! The step at each whole second always runs. A tick inside a second runs
//! only when something it reads changed since the last step (a sample, a
//! description, an outcome, an operator's override, the lease, the audit
//! log): the quarter-second ticks exist so that the current second's rate
//! so far can raise capacity before the second ends, and with nothing new
//! they would repeat the last step. What depends on time alone (a cooldown
//! running out, the budget's next slot, the hour) waits at most until the
//! next whole second.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fleet::{read_fleet, FleetReading};
use super::group::{GroupAdvice, GroupDecider};
use super::table::{ResourceAdvice, TableDecider};
use super::{Common, Disposition, GroupAction, TableAction, WarmAction, DECIDE_EVERY};
use crate::actuator::Actuator;
use crate::audit::Outcome;
use crate::clock::SharedClock;
use crate::cloud::tracker::CloudView;
use crate::cloud::{Capacity, Coordination};
use crate::config::Config;
use crate::coord::task::{fleet_scale, CoordinationStatus, Role};
use crate::ingest::{lock, SharedStore};
use crate::mode::ModeSwitch;
use crate::policy::calibrate::Calibration;
use crate::slot::Slot;
use crate::state::BudgetStore;

/// What the deciders publish each tick.
#[derive(Clone, Default)]
pub struct Decisions {
    pub tables: Slot<Vec<ResourceAdvice>>,
    pub group: Slot<Option<GroupAdvice>>,
    /// One per `[[ecs.services]]`.
    pub services: Slot<Vec<GroupAdvice>>,
    pub fleet: Slot<Option<FleetReading>>,
}

/// What the loop reads from the other parts.
pub(crate) struct Inputs {
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub store: SharedStore,
    pub cloud: Slot<CloudView>,
    pub budget: Arc<Mutex<BudgetStore>>,
    pub modes: Arc<ModeSwitch>,
    /// With coordination: this sidecar's role and the fleet seen by it.
    pub role: Option<Slot<Role>>,
    pub coordination: Slot<Option<CoordinationStatus>>,
    pub calibration: Slot<Vec<Calibration>>,
    /// What CloudWatch reported (throttled minutes lower the burst counted on).
    pub reported_throttles: Slot<Vec<super::ReportedThrottle>>,
    /// Announced surges (`announce::Book`).
    pub announcements: Slot<Vec<crate::announce::Announcement>>,
    /// The config in effect (`SIGHUP` replaces it; `config` follows).
    pub live: Slot<Arc<Config>>,
}

/// A change that ended: which resource, and how.
enum Completion {
    Table(String, Outcome),
    Fleet(crate::cloud::FleetId, Outcome),
}

/// Everything a step reads that can change between two ticks of a second.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    store: u64,
    cloud: u64,
    coordination: u64,
    calibration: u64,
    reported_throttles: u64,
    announcements: u64,
    role: Option<Role>,
    overrides: crate::mode::Overrides,
    audit_unavailable: Option<String>,
    group_known: bool,
}

pub(crate) struct DecideLoop<C> {
    pub inputs: Inputs,
    pub tables: Option<TableDecider>,
    /// The group decider, once the group is known (its name may be
    /// discovered from instance metadata after start).
    pub group: Option<oneshot::Receiver<GroupDecider>>,
    /// The ECS services' deciders.
    pub services: Vec<GroupDecider>,
    pub actuator: Arc<Actuator<C>>,
    pub decisions: Decisions,
    /// Applies in flight run here.
    pub tasks: TaskTracker,
    /// Recommendations approved through the API, one per step.
    pub approvals: Option<mpsc::UnboundedReceiver<super::approve::Approval>>,
}

impl<C: Capacity + Coordination> DecideLoop<C> {
    /// Decides until `stop` fires; applies already started finish on their own.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let mut group: Option<GroupDecider> = None;
        let mut ticker = quarter_second_ticker(&self.inputs.clock);
        let mut last_seen: Option<Seen> = None;
        let mut live_version = self.inputs.live.version();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Some(rx) = &mut self.group {
                match rx.try_recv() {
                    Ok(g) => {
                        group = Some(g);
                        self.group = None;
                    }
                    Err(oneshot::error::TryRecvError::Closed) => self.group = None,
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
            }
            if self.inputs.live.version() != live_version {
                live_version = self.inputs.live.version();
                let config = self.inputs.live.get();
                if !Arc::ptr_eq(&config, &self.inputs.config) {
                    self.use_config(config, group.as_mut());
                    last_seen = None;
                }
            }
            let now = self.inputs.clock.now();
            let whole_second = now.timestamp_subsec_millis() < DECIDE_EVERY.as_millis() as u32 / 2;
            let mut news = whole_second;
            while let Ok(done) = done_rx.try_recv() {
                news = true;
                match done {
                    Completion::Table(table, outcome) => {
                        if let Some(t) = &mut self.tables {
                            t.completed(&table, outcome, now);
                        }
                    }
                    Completion::Fleet(fleet, outcome) => {
                        for g in group.iter_mut().chain(self.services.iter_mut()) {
                            if *g.fleet() == fleet {
                                g.completed(outcome, now);
                            }
                        }
                    }
                }
            }
            let approval = self.approvals.as_mut().and_then(|rx| rx.try_recv().ok());
            let approved = approval
                .as_ref()
                .map(|a| super::approve::Approved::of(&a.record));
            news |= approved.is_some();
            let Some((table_actions, fleet_actions, warm_actions)) =
                self.step(group.as_mut(), news, &mut last_seen, approved.clone())
            else {
                continue;
            };
            let group_ends = group.as_mut().map(|g| g.take_gate_ends());
            self.audit_gate_ends(group_ends.unwrap_or_default());
            if let (Some(a), Some(approved)) = (approval, approved) {
                let answer = super::approve::outcome(
                    &approved,
                    &table_actions,
                    &fleet_actions,
                    &self.decisions,
                );
                let _ = a.reply.send(answer);
            }
            for action in table_actions {
                self.dispatch_table(action, &done_tx, &stop);
            }
            for action in fleet_actions {
                self.dispatch_group(action, &done_tx, &stop);
            }
            for action in warm_actions {
                self.dispatch_warm(action, &done_tx, &stop);
            }
        }
    }

    /// One step of both deciders over one snapshot; publishes their advice.
    /// None: not `news`, and nothing it reads changed since `last_seen`.
    fn step(
        &mut self,
        group: Option<&mut GroupDecider>,
        news: bool,
        last_seen: &mut Option<Seen>,
        approved: Option<super::approve::Approved>,
    ) -> Option<(Vec<TableAction>, Vec<GroupAction>, Vec<WarmAction>)> {
        let inputs = &self.inputs;
        let now = inputs.clock.now();
        let mut store = lock(&inputs.store);
        // Seconds past their grace window are sealed before they are read,
        // so a decision never depends on when the sealer last ran.
        store.seal(now.timestamp());
        let store = &*store;
        let role = inputs.role.as_ref().map(|r| r.get());
        let seen = Seen {
            store: store.generation(),
            cloud: inputs.cloud.version(),
            coordination: inputs.coordination.version(),
            calibration: inputs.calibration.version(),
            reported_throttles: inputs.reported_throttles.version(),
            announcements: inputs.announcements.version(),
            role,
            overrides: inputs.modes.snapshot(),
            audit_unavailable: self.actuator.audit.unavailable(),
            group_known: group.is_some(),
        };
        if !news && last_seen.as_ref() == Some(&seen) {
            return None;
        }
        *last_seen = Some(seen);
        let common = inputs.cloud.read(|cloud| {
            // The serving replicas a "single" view's estimate multiplies
            // by: the group's instances, else the first service's tasks.
            let serving = cloud
                .group
                .as_ref()
                .and_then(|g| g.current.as_ref())
                .or_else(|| {
                    cloud
                        .services
                        .values()
                        .next()
                        .and_then(|s| s.desc.current.as_ref())
                })
                .map(|g| g.serving() as u32);
            let scale = inputs.coordination.read(|c| {
                fleet_scale(
                    c.as_ref(),
                    store,
                    inputs.config.ingest.requests_stream.as_deref(),
                )
            });
            Common {
                now,
                overrides: inputs.modes.snapshot(),
                may_act: role.map(|r| r.may_act(now.timestamp_millis())),
                audit_unavailable: self.actuator.audit.unavailable(),
                fleet: read_fleet(
                    inputs.config.fleet,
                    serving,
                    scale,
                    matches!(role, Some(Role::Leader { .. })),
                ),
                calibration: inputs.calibration.get(),
                cloudwatch_throttled: inputs.reported_throttles.get(),
                announcements: inputs.announcements.get(),
                approved,
            }
        });
        let services = &mut self.services;
        let (table_step, group_step, service_steps) = inputs.cloud.read(|cloud| {
            let table_step = self.tables.as_mut().map(|t| {
                let mut budget = inputs.budget.lock().unwrap_or_else(|p| p.into_inner());
                let step = t.step(store, cloud, &mut budget, &common);
                if step.budget_changed {
                    if let Err(e) = budget.save() {
                        tracing::error!(error = %e, "Cannot persist the decrease budget.");
                    }
                }
                step
            });
            let group_step = group.map(|g| g.step(store, cloud, &common));
            let service_steps: Vec<_> = services
                .iter_mut()
                .map(|s| s.step(store, cloud, &common))
                .collect();
            (table_step, group_step, service_steps)
        });
        self.decisions.fleet.set(Some(common.fleet));
        let mut table_actions = Vec::new();
        let mut warm_actions = Vec::new();
        if let Some(step) = table_step {
            self.decisions.tables.set(step.advice);
            table_actions = step.actions;
            warm_actions = step.warm;
        }
        let mut fleet_actions = Vec::new();
        if let Some(step) = group_step {
            self.decisions.group.set(step.advice);
            fleet_actions.extend(step.action);
        }
        if !self.services.is_empty() {
            let mut advice = Vec::new();
            for step in service_steps {
                advice.extend(step.advice);
                fleet_actions.extend(step.action);
            }
            self.decisions.services.set(advice);
        }
        Some((table_actions, fleet_actions, warm_actions))
    }

    /// Records the end of every gate that stopped holding this step.
    fn audit_gate_ends(&mut self, group: Vec<super::GateEnded>) {
        let mode = self.inputs.config.mode;
        let ends: Vec<_> = self
            .tables
            .iter_mut()
            .flat_map(|t| t.take_gate_ends())
            .chain(self.services.iter_mut().flat_map(|s| s.take_gate_ends()))
            .chain(group)
            .collect();
        for end in ends {
            self.actuator.note_gate_end(
                (end.service, &end.resource),
                end.reason(),
                end.until,
                mode,
            );
        }
    }

    /// A config re-read (`SIGHUP`): every decider keeps its state (burst
    /// models, calls in flight, cooldowns, recorded decisions) and decides
    /// on the new limits and policy from the next step.
    fn use_config(&mut self, config: Arc<Config>, group: Option<&mut GroupDecider>) {
        if let Some(t) = &mut self.tables {
            t.use_config(config.clone());
        }
        for g in group.into_iter().chain(self.services.iter_mut()) {
            g.use_config(config.clone());
        }
        self.inputs.config = config;
    }

    fn dispatch_warm(
        &self,
        action: WarmAction,
        done: &mpsc::UnboundedSender<Completion>,
        stop: &CancellationToken,
    ) {
        match action.disposition {
            Disposition::Record { outcome, reason } => {
                self.actuator.note_warm(&action.change, outcome, reason)
            }
            Disposition::Apply => {
                let (actuator, done, stop) = (self.actuator.clone(), done.clone(), stop.clone());
                self.tasks.spawn(async move {
                    let table = action.change.table.clone();
                    let outcome = actuator.apply_warm(action.change, stop).await;
                    let _ = done.send(Completion::Table(table, outcome));
                });
            }
        }
    }

    fn dispatch_table(
        &self,
        action: TableAction,
        done: &mpsc::UnboundedSender<Completion>,
        stop: &CancellationToken,
    ) {
        match action.disposition {
            Disposition::Record { outcome, reason } => {
                self.actuator.note(&action.update, outcome, reason)
            }
            Disposition::Apply => {
                let (actuator, done, stop) = (self.actuator.clone(), done.clone(), stop.clone());
                self.tasks.spawn(async move {
                    let table = action.update.table.clone();
                    let outcome = actuator.apply(action.update, stop).await;
                    let _ = done.send(Completion::Table(table, outcome));
                });
            }
        }
    }

    fn dispatch_group(
        &self,
        action: GroupAction,
        done: &mpsc::UnboundedSender<Completion>,
        stop: &CancellationToken,
    ) {
        match action.disposition {
            Disposition::Record { outcome, reason } => {
                self.actuator.note_group(&action.change, outcome, reason)
            }
            Disposition::Apply => {
                let (actuator, done, stop) = (self.actuator.clone(), done.clone(), stop.clone());
                self.tasks.spawn(async move {
                    let fleet = action.change.fleet.clone();
                    let outcome = actuator.apply_group(action.change, stop).await;
                    let _ = done.send(Completion::Fleet(fleet, outcome));
                });
            }
        }
    }
}

/// Ticks every [`DECIDE_EVERY`] on the clock's quarter seconds, so that
/// every process decides at the same instants of each second (and a
/// replay at the same instants as the daemon).
fn quarter_second_ticker(clock: &SharedClock) -> tokio::time::Interval {
    let period_ms = DECIDE_EVERY.as_millis() as i64;
    let now_ms = clock.now().timestamp_millis();
    let wait_ms = (period_ms - now_ms.rem_euclid(period_ms)) % period_ms;
    let start = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms as u64);
    let mut ticker = tokio::time::interval_at(start, DECIDE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}
