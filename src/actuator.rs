//! Decision -> audit record -> (apply mode) cloud call -> audit record.
//!
//! Invariants: in apply mode the call is made only after its `decided`
//! record is on disk; every call ends with a `completed` record; retries on
//! throttling use exponential backoff with full jitter and are bounded; a
//! call already sent when shutdown starts is allowed to finish, no new
//! attempt starts after it. After a call the resource is described once,
//! so the next decision sees the change (the tracker follows a table that
//! stays UPDATING).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::audit::{AuditChange, AuditLog, AuditRecord, Outcome, Phase};
use crate::clock::SharedClock;
use crate::cloud::tracker::{self, CloudView};
use crate::cloud::{Capacity, CloudErrorKind, Coordination, MemberCapacity, Throughput};
use crate::config::Mode;
use crate::coord::task::Fence;
use crate::policy::dynamodb::{Change, Op};
use crate::slot::Slot;
use crate::state::BudgetStore;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (0-based), given a uniform
    /// random number in [0, 1).
    pub(crate) fn delay(&self, attempt: u32, random: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }
}

/// One UpdateTable call: the table itself and/or its indexes. Increases
/// of several members go in one call; a decrease goes alone (each member
/// has its own decrease budget, and a refused decrease must not hold back
/// an increase).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableUpdate {
    pub table: String,
    pub members: Vec<MemberUpdate>,
    pub decrease: bool,
    pub mode: Mode,
}

/// What one call does to one member of a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemberUpdate {
    pub index: Option<String>,
    pub current: Throughput,
    pub changes: Vec<Change>,
}

impl MemberUpdate {
    pub(crate) fn target(&self) -> Throughput {
        let mut t = self.current;
        for c in &self.changes {
            match c.op {
                Op::Read => t.read = c.to,
                Op::Write => t.write = c.to,
            }
        }
        t
    }
}

impl TableUpdate {
    /// A call for one member.
    pub(crate) fn single(
        table: &str,
        index: Option<&str>,
        current: Throughput,
        changes: Vec<Change>,
        decrease: bool,
        mode: Mode,
    ) -> TableUpdate {
        TableUpdate {
            table: table.to_string(),
            members: vec![MemberUpdate {
                index: index.map(str::to_string),
                current,
                changes,
            }],
            decrease,
            mode,
        }
    }

    /// `table` or `table/index` for a call of one member (the key of its
    /// decrease ledger); the table for a call of several.
    pub(crate) fn resource(&self) -> String {
        match self.members.as_slice() {
            [m] => resource_key(&self.table, m.index.as_deref()),
            _ => self.table.clone(),
        }
    }

    /// The capacities the call sets.
    pub(crate) fn capacities(&self) -> Vec<MemberCapacity> {
        self.members
            .iter()
            .map(|m| MemberCapacity {
                index: m.index.clone(),
                capacity: m.target(),
            })
            .collect()
    }

    /// Every change, each naming its member when the call has several.
    fn audit_changes(&self) -> Vec<AuditChange> {
        let named = self.members.len() > 1;
        self.members
            .iter()
            .flat_map(|m| {
                let member = named.then(|| resource_key(&self.table, m.index.as_deref()));
                audit_changes(&m.changes, member)
            })
            .collect()
    }

    /// "posts: read 100 -> 300" per member, the operations it changes only,
    /// for the log.
    pub(crate) fn describe(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let ops = m
                    .changes
                    .iter()
                    .map(|c| format!("{} {} -> {}", c.op.as_str(), c.from, c.to))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("{}: {ops}", resource_key(&self.table, m.index.as_deref()))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn rules(&self) -> String {
        self.members
            .iter()
            .flat_map(|m| m.changes.iter().map(|c| c.rule.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One SetDesiredCapacity call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupChange {
    /// The group, or the ECS service.
    pub fleet: crate::cloud::FleetId,
    pub from: u32,
    pub to: u32,
    pub rule: &'static str,
    pub fleet_rps: Option<f64>,
    pub needed: Option<u32>,
    pub window_s: u64,
    pub mode: Mode,
}

impl GroupChange {
    fn audit_change(&self) -> AuditChange {
        AuditChange {
            resource: None,
            op: "desired".into(),
            from: self.from as u64,
            to: self.to as u64,
            rule: self.rule.to_string(),
            demand: self.fleet_rps,
            threshold: self.needed.map(|n| n as f64),
            window_s: self.window_s,
        }
    }
}

/// Raising an on-demand table's (or index's) warm throughput.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WarmChange {
    pub table: String,
    pub index: Option<String>,
    pub from: crate::cloud::WarmThroughput,
    pub to: crate::cloud::WarmThroughput,
    /// Per raised operation: the rule and the demand (units/s) it acted on.
    pub rules: Vec<(Op, crate::policy::ondemand::WarmRule, f64)>,
    pub mode: Mode,
}

impl WarmChange {
    pub(crate) fn resource(&self) -> String {
        resource_key(&self.table, self.index.as_deref())
    }

    fn audit_changes(&self) -> Vec<AuditChange> {
        self.rules
            .iter()
            .map(|(op, rule, demand)| {
                let (from, to) = match op {
                    Op::Read => (self.from.read, self.to.read),
                    Op::Write => (self.from.write, self.to.write),
                };
                AuditChange {
                    resource: None,
                    op: format!("warm_{}", op.as_str()),
                    from,
                    to,
                    rule: rule.as_str().to_string(),
                    demand: Some(*demand),
                    threshold: None,
                    window_s: crate::policy::ondemand::WARM_WINDOW_S as u64,
                }
            })
            .collect()
    }

    /// "warm read 4000 -> 12000, write 4000 -> 4000", for the log.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}: warm read {} -> {}, write {} -> {}",
            self.resource(),
            self.from.read,
            self.to.read,
            self.from.write,
            self.to.write
        )
    }
}

pub(crate) fn resource_key(table: &str, index: Option<&str>) -> String {
    match index {
        Some(i) => format!("{table}/{i}"),
        None => table.to_string(),
    }
}

fn audit_changes(changes: &[Change], member: Option<String>) -> Vec<AuditChange> {
    changes
        .iter()
        .map(|c| AuditChange {
            resource: member.clone(),
            op: c.op.as_str().to_string(),
            from: c.from,
            to: c.to,
            rule: c.rule.as_str().to_string(),
            demand: c.evidence.demand,
            threshold: c.evidence.threshold,
            window_s: c.evidence.window_s,
        })
        .collect()
}

pub(crate) struct Actuator<C> {
    pub cloud: Arc<C>,
    pub audit: Arc<AuditLog>,
    pub budget: Arc<Mutex<BudgetStore>>,
    pub view: Slot<CloudView>,
    pub clock: SharedClock,
    pub retry: RetryPolicy,
    /// With fleet coordination: only the lease holder acts, after checking
    /// its lease with a conditional write.
    pub fence: Option<Arc<Fence<C>>>,
    /// AWS calls sent and not answered yet: shutdown waits for them.
    pub calls_in_flight: Arc<AtomicUsize>,
}

/// Counts one call in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn start(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<C: Capacity + Coordination> Actuator<C> {
    fn record(
        &self,
        id: &str,
        phase: Phase,
        u: &TableUpdate,
        outcome: Outcome,
        reason: Option<String>,
        error: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            id: id.to_string(),
            time: self.clock.now(),
            phase,
            service: "dynamodb".into(),
            resource: u.resource(),
            mode: u.mode,
            outcome,
            changes: u.audit_changes(),
            decrease: u.decrease,
            reason,
            error,
            fencing: None,
            observed: None,
        }
    }

    /// With coordination, the fencing token to act under, after the lease was
    /// verified; Err(reason) when this process must not act.
    async fn admit(&self) -> Result<Option<u64>, String> {
        match &self.fence {
            None => Ok(None),
            Some(f) => f.admit(self.clock.now().timestamp_millis()).await.map(Some),
        }
    }

    /// Dry run, or a decision that is not carried out: one record.
    pub(crate) fn note(&self, u: &TableUpdate, outcome: Outcome, reason: Option<String>) {
        let id = self.audit.new_id();
        let rec = self.record(&id, Phase::Decided, u, outcome, reason, None);
        if let Err(e) = self.audit.append(&rec) {
            tracing::warn!(error = %e, "Cannot write the audit log; the record is kept in memory only.");
        }
        tracing::info!(
            resource = %u.resource(),
            outcome = outcome.as_str(),
            capacity = %u.describe(),
            rules = %u.rules(),
            reason = rec.reason.as_deref().unwrap_or(""),
            "Capacity decision."
        );
    }

    /// The end of a gate that held a resource's decisions: one record
    /// (outcome `observed`) with how long it held and how many decisions,
    /// beside the `skipped` record of its start. Logged by the decider.
    pub(crate) fn note_gate_end(
        &self,
        (service, resource): (&str, &str),
        reason: String,
        at: chrono::DateTime<chrono::Utc>,
        mode: Mode,
    ) {
        let rec = AuditRecord {
            id: self.audit.new_id(),
            time: at,
            phase: Phase::Completed,
            service: service.into(),
            resource: resource.into(),
            mode,
            outcome: Outcome::Observed,
            changes: Vec::new(),
            decrease: false,
            reason: Some(reason),
            error: None,
            fencing: None,
            observed: None,
        };
        if let Err(e) = self.audit.append(&rec) {
            tracing::warn!(error = %e, "Cannot write the audit log; the record is kept in memory only.");
        }
    }

    /// Applies one update: audit, call with retries, budget, audit, refresh.
    pub(crate) async fn apply(&self, u: TableUpdate, shutdown: CancellationToken) -> Outcome {
        let id = self.audit.new_id();
        let resource = u.resource();
        let capacities = u.capacities();
        let fencing = match self.admit().await {
            Ok(f) => f,
            Err(reason) => {
                self.note(&u, Outcome::Skipped, Some(reason));
                return Outcome::Skipped;
            }
        };
        let fenced = |mut r: AuditRecord| {
            r.fencing = fencing;
            r
        };
        if let Err(e) = self.audit.append(&fenced(self.record(
            &id,
            Phase::Decided,
            &u,
            Outcome::Pending,
            None,
            None,
        ))) {
            tracing::error!(resource = %resource, error = %e, "Audit log unavailable: not applying a capacity change without a record.");
            let rec = self.record(
                &id,
                Phase::Completed,
                &u,
                Outcome::Skipped,
                Some("audit log unavailable".into()),
                Some(e.to_string()),
            );
            let _ = self.audit.append(&rec);
            return Outcome::Skipped;
        }
        tracing::info!(
            resource = %resource,
            capacity = %u.describe(),
            rules = %u.rules(),
            "Updating table capacity."
        );
        let decrease = u.decrease;
        let (outcome, reason, error) = self
            .call_with_retries(
                &resource,
                &shutdown,
                || self.cloud.update_table(&u.table, &capacities),
                |kind| {
                    if kind == CloudErrorKind::LimitExceeded && decrease {
                        // AWS says the day's decreases are spent here: believe it for an hour.
                        let until = self.clock.now() + chrono::TimeDelta::hours(1);
                        self.with_budget(&resource, |l| l.block_until(until));
                    }
                },
            )
            .await;
        if outcome == Outcome::Applied && u.decrease {
            let now = self.clock.now();
            self.with_budget(&resource, |l| l.record(now));
        }
        let rec = fenced(self.record(&id, Phase::Completed, &u, outcome, reason, error));
        if let Err(e) = self.audit.append(&rec) {
            tracing::error!(resource = %resource, error = %e, "Cannot complete the audit record.");
        }
        if outcome == Outcome::Applied {
            let result = self.cloud.describe_table(&u.table).await;
            tracker::store_table(&self.view, &u.table, result, self.clock.now());
        }
        outcome
    }

    fn warm_record(
        &self,
        id: &str,
        phase: Phase,
        c: &WarmChange,
        outcome: Outcome,
        reason: Option<String>,
        error: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            id: id.to_string(),
            time: self.clock.now(),
            phase,
            service: "dynamodb".into(),
            resource: c.resource(),
            mode: c.mode,
            outcome,
            changes: c.audit_changes(),
            decrease: false,
            reason,
            error,
            fencing: None,
            observed: None,
        }
    }

    /// A warm-throughput decision not carried out (dry run, or gated).
    pub(crate) fn note_warm(&self, c: &WarmChange, outcome: Outcome, reason: Option<String>) {
        let id = self.audit.new_id();
        let rec = self.warm_record(&id, Phase::Decided, c, outcome, reason, None);
        if let Err(e) = self.audit.append(&rec) {
            tracing::warn!(error = %e, "Cannot write the audit log; the record is kept in memory only.");
        }
        tracing::info!(resource = %c.resource(), outcome = outcome.as_str(), warm = %c.describe(), reason = rec.reason.as_deref().unwrap_or(""), "Warm throughput decision.");
    }

    /// Raises warm throughput: audit, call with retries, audit, describe.
    pub(crate) async fn apply_warm(&self, c: WarmChange, shutdown: CancellationToken) -> Outcome {
        let id = self.audit.new_id();
        let resource = c.resource();
        let fencing = match self.admit().await {
            Ok(f) => f,
            Err(reason) => {
                self.note_warm(&c, Outcome::Skipped, Some(reason));
                return Outcome::Skipped;
            }
        };
        let fenced = |mut r: AuditRecord| {
            r.fencing = fencing;
            r
        };
        let decided =
            fenced(self.warm_record(&id, Phase::Decided, &c, Outcome::Pending, None, None));
        if let Err(e) = self.audit.append(&decided) {
            tracing::error!(resource = %resource, error = %e, "Audit log unavailable: not raising warm throughput without a record.");
            return Outcome::Skipped;
        }
        tracing::info!(resource = %resource, warm = %c.describe(), "Raising warm throughput.");
        let (outcome, reason, error) = self
            .call_with_retries(
                &resource,
                &shutdown,
                || {
                    self.cloud
                        .update_warm_throughput(&c.table, c.index.as_deref(), c.to)
                },
                |_| {},
            )
            .await;
        let rec = fenced(self.warm_record(&id, Phase::Completed, &c, outcome, reason, error));
        if let Err(e) = self.audit.append(&rec) {
            tracing::error!(resource = %resource, error = %e, "Cannot complete the audit record.");
        }
        if outcome == Outcome::Applied {
            let result = self.cloud.describe_table(&c.table).await;
            tracker::store_table(&self.view, &c.table, result, self.clock.now());
        }
        outcome
    }

    /// Makes one call, retrying retryable errors with backoff and jitter
    /// until `max_attempts`; `on_final_error` sees the kind of a final error.
    async fn call_with_retries<F, Fut>(
        &self,
        resource: &str,
        shutdown: &CancellationToken,
        call: F,
        on_final_error: impl FnOnce(CloudErrorKind),
    ) -> (Outcome, Option<String>, Option<String>)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), crate::cloud::CloudError>>,
    {
        let mut attempt = 0;
        loop {
            let result = {
                let _counted = InFlight::start(&self.calls_in_flight);
                call().await
            };
            match result {
                Ok(()) => return (Outcome::Applied, None, None),
                Err(e) if e.is_retryable() && attempt + 1 < self.retry.max_attempts => {
                    let pause = self.retry.delay(attempt, fastrand::f64());
                    tracing::warn!(resource = %resource, operation = e.operation, kind = e.kind.as_str(), attempt, pause_ms = pause.as_millis() as u64, "Call failed; retrying.");
                    attempt += 1;
                    tokio::select! {
                        _ = shutdown.cancelled() => return (Outcome::Failed, Some("shutting down".to_string()), Some(e.message.clone())),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(e) => {
                    on_final_error(e.kind);
                    tracing::warn!(resource = %resource, operation = e.operation, kind = e.kind.as_str(), error = %e.message, "Call failed.");
                    return (
                        Outcome::Failed,
                        Some(format!("{:?} after {} attempt(s)", e.kind, attempt + 1)),
                        Some(e.message.clone()),
                    );
                }
            }
        }
    }

    fn group_record(
        &self,
        id: &str,
        change: &GroupChange,
        phase: Phase,
        outcome: Outcome,
        reason: Option<String>,
        error: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            id: id.to_string(),
            time: self.clock.now(),
            phase,
            service: change.fleet.aws_service().into(),
            resource: change.fleet.key(),
            mode: change.mode,
            outcome,
            changes: vec![change.audit_change()],
            decrease: change.to < change.from,
            reason,
            error,
            fencing: None,
            observed: None,
        }
    }

    /// A group decision that is not carried out (a dry-run recommendation,
    /// or a gated one): one record.
    pub(crate) fn note_group(
        &self,
        change: &GroupChange,
        outcome: Outcome,
        reason: Option<String>,
    ) {
        let id = self.audit.new_id();
        let rec = self.group_record(&id, change, Phase::Decided, outcome, reason, None);
        if let Err(e) = self.audit.append(&rec) {
            tracing::warn!(error = %e, "Cannot write the audit log; the record is kept in memory only.");
        }
        tracing::info!(fleet = %change.fleet.key(), outcome = outcome.as_str(), from = change.from, to = change.to, rule = change.rule, reason = rec.reason.as_deref().unwrap_or(""), "Fleet size decision.");
    }

    /// Sets a group's desired capacity: audit, call with retries, audit,
    /// describe.
    pub(crate) async fn apply_group(
        &self,
        change: GroupChange,
        shutdown: CancellationToken,
    ) -> Outcome {
        let id = self.audit.new_id();
        let fencing = match self.admit().await {
            Ok(f) => f,
            Err(reason) => {
                self.note_group(&change, Outcome::Skipped, Some(reason));
                return Outcome::Skipped;
            }
        };
        let record = |phase, outcome, reason: Option<String>, error: Option<String>| AuditRecord {
            fencing,
            ..self.group_record(&id, &change, phase, outcome, reason, error)
        };
        if let Err(e) = self
            .audit
            .append(&record(Phase::Decided, Outcome::Pending, None, None))
        {
            tracing::error!(fleet = %change.fleet.key(), error = %e, "Audit log unavailable: not changing the fleet without a record.");
            let _ = self.audit.append(&record(
                Phase::Completed,
                Outcome::Skipped,
                Some("audit log unavailable".into()),
                Some(e.to_string()),
            ));
            return Outcome::Skipped;
        }
        tracing::info!(fleet = %change.fleet.key(), from = change.from, to = change.to, rule = change.rule, "Setting desired capacity.");
        let key = change.fleet.key();
        let (outcome, reason, error) = self
            .call_with_retries(
                &key,
                &shutdown,
                || change.fleet.set_desired(self.cloud.as_ref(), change.to),
                |_| {},
            )
            .await;
        if let Err(e) = self
            .audit
            .append(&record(Phase::Completed, outcome, reason, error))
        {
            tracing::error!(fleet = %key, error = %e, "Cannot complete the audit record.");
        }
        if outcome == Outcome::Applied {
            let result = change.fleet.describe(self.cloud.as_ref()).await;
            tracker::store_fleet(&self.view, &change.fleet, result, self.clock.now());
        }
        outcome
    }

    fn with_budget(
        &self,
        resource: &str,
        f: impl FnOnce(&mut crate::policy::budget::DecreaseLedger),
    ) {
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        f(budget.ledger_mut(resource));
        if let Err(e) = budget.save() {
            tracing::error!(error = %e, "Cannot persist the decrease budget; a restart would forget today's decreases.");
        }
    }
}

#[cfg(test)]
mod tests;
