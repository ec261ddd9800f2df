//! Reading DynamoDB's own metrics back from CloudWatch (`[cloudwatch]
//! observe = true`, with the AWS backend):
//!
//! - every `calibrate_every`, the consumed-capacity and throttle metrics of
//!   every managed table and index over `calibrate_window`: the
//!   `per_request = "auto"` fits (`calibrate`) and the throttled minutes,
//!   each judged foreseen or not (`lead::foreseen`);
//! - every `lead_poll` while an increase rapidscale decided has not shown in
//!   CloudWatch yet, that resource's consumed capacity, until the rise shows
//!   (`lead::look_for`); the lead is written to the audit log.
//!
//! `Watch` holds the state and is driven with plain data (audit records,
//! minute sums, the store's minutes); `Watcher::run` does the reading.
//! With coordination only the leader reads (it alone knows the fleet's
//! totals, which calibration needs); followers keep the fallback.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lead::{foreseen, look_for, Increase, Lead, PendingSurge, Seen};
use crate::actuator::resource_key;
use crate::audit::{AuditLog, AuditRecord, Observation, Outcome, Phase};
use crate::cloud::{DynamoMetric, Metrics};
use crate::config::{CloudWatchConfig, Config, Mode};
use crate::policy::calibrate::{fit_through_origin, pair_minutes, Calibration};
use crate::policy::dynamodb::Op;
use crate::slot::Slot;

/// A surge not seen after this long is given up ("unseen").
pub const GIVE_UP_S: f64 = 900.0;
/// Leads kept for the API.
const LEADS_KEPT: usize = 50;
/// Throttled minutes kept in the status.
pub const RECENT_THROTTLED: usize = 50;

/// One throttled minute CloudWatch reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThrottledMinute {
    pub resource: String,
    pub op: Op,
    pub minute: DateTime<Utc>,
    /// Throttle events (or throttled requests, whichever is higher).
    pub events: f64,
    pub foreseen: bool,
    /// Burst capacity was being counted on to carry demand in that minute
    /// (a bet that failed); never counted as foreseen.
    pub failed_hold: bool,
}

/// What the watcher reports, for the API and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchStatus {
    /// The newest leads, newest first.
    pub leads: Vec<Lead>,
    /// Surges waiting to show in CloudWatch.
    pub pending: usize,
    pub surges_seen: u64,
    /// Not shown within 15 minutes (too brief to move a minute's mean).
    pub surges_unseen: u64,
    /// The demand acted on was not clearly above the level before.
    pub surges_no_rise: u64,
    /// Sum of `lead_s` over the seen surges.
    pub lead_s_sum: f64,
    pub throttled_minutes_foreseen: u64,
    pub throttled_minutes_unforeseen: u64,
    /// Throttled minutes during a bet on burst capacity (a failed hold).
    pub throttled_minutes_failed_hold: u64,
    pub last_unforeseen: Option<ThrottledMinute>,
    /// The newest throttled minutes reported (at most [`RECENT_THROTTLED`]),
    /// oldest first: the deciders lower the burst they count on from them.
    pub recent_throttled: Vec<ThrottledMinute>,
    pub reads: u64,
    pub last_read: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// One managed table or index and operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub table: String,
    pub index: Option<String>,
    pub op: Op,
    pub auto: bool,
    pub fallback: Option<f64>,
}

impl Target {
    pub fn resource(&self) -> String {
        resource_key(&self.table, self.index.as_deref())
    }

    fn consumed(&self) -> DynamoMetric {
        self.metric(match self.op {
            Op::Read => "ConsumedReadCapacityUnits",
            Op::Write => "ConsumedWriteCapacityUnits",
        })
    }

    fn throttle_events(&self) -> DynamoMetric {
        self.metric(match self.op {
            Op::Read => "ReadThrottleEvents",
            Op::Write => "WriteThrottleEvents",
        })
    }

    fn metric(&self, name: &'static str) -> DynamoMetric {
        DynamoMetric {
            name,
            table: self.table.clone(),
            index: self.index.clone(),
            operation: None,
        }
    }

    /// `ThrottledRequests` by API operation (tables only; the metric has no
    /// index dimension).
    fn throttled_requests(&self) -> Vec<DynamoMetric> {
        if self.index.is_some() {
            return Vec::new();
        }
        let ops: &[&'static str] = match self.op {
            Op::Read => &[
                "GetItem",
                "Query",
                "Scan",
                "BatchGetItem",
                "TransactGetItems",
            ],
            Op::Write => &[
                "PutItem",
                "UpdateItem",
                "DeleteItem",
                "BatchWriteItem",
                "TransactWriteItems",
            ],
        };
        ops.iter()
            .map(|op| DynamoMetric {
                operation: Some(op),
                ..self.metric("ThrottledRequests")
            })
            .collect()
    }
}

/// Every managed table/index operation in the config.
pub fn targets(config: &Config) -> Vec<Target> {
    config
        .capacities()
        .filter_map(|c| {
            Some(Target {
                table: c.table.to_string(),
                index: c.index.map(str::to_string),
                op: Op::from_name(c.op)?,
                auto: c.spec.auto,
                fallback: c.spec.per_request,
            })
        })
        .collect()
}

/// The initial calibrations (fallbacks) of the `auto` targets.
pub fn initial_calibration(config: &Config) -> Vec<Calibration> {
    targets(config)
        .into_iter()
        .filter(|t| t.auto)
        .map(|t| Calibration::initial(t.resource(), t.op, t.fallback))
        .collect()
}

/// The watcher's state, driven with plain data.
pub struct Watch {
    pub config: CloudWatchConfig,
    pub targets: Vec<Target>,
    pub mode: Mode,
    pending: Vec<PendingSurge>,
    increases: VecDeque<Increase>,
    /// Bets on burst capacity: resource, operation, from, until (None: still on).
    holds: VecDeque<(String, Op, f64, Option<f64>)>,
    ids_seen: HashSet<String>,
    ids_order: VecDeque<String>,
    throttles_checked: BTreeSet<(String, Op, i64)>,
    /// With coordination: per minute, the sum and count of fleet factors.
    factors: BTreeMap<i64, (f64, u32)>,
    pub status: WatchStatus,
}

impl Watch {
    pub fn new(config: CloudWatchConfig, targets: Vec<Target>, mode: Mode) -> Self {
        Self {
            config,
            targets,
            mode,
            pending: Vec::new(),
            increases: VecDeque::new(),
            holds: VecDeque::new(),
            ids_seen: HashSet::new(),
            ids_order: VecDeque::new(),
            throttles_checked: BTreeSet::new(),
            factors: BTreeMap::new(),
            status: WatchStatus::default(),
        }
    }

    pub fn pending(&self) -> &[PendingSurge] {
        &self.pending
    }

    /// Takes in new audit records: every increase (any outcome) for the
    /// throttling verdicts, and the ones carried out or recommended as
    /// surges to time against CloudWatch.
    pub fn note_records(&mut self, records: &[AuditRecord]) {
        for r in records {
            if r.service != "dynamodb" {
                continue;
            }
            let key = format!("{}|{:?}", r.id, r.phase);
            if !self.ids_seen.insert(key.clone()) {
                continue;
            }
            // The decided and completed records of one call are one increase.
            let first_of_id = self.ids_seen.insert(r.id.clone());
            self.ids_order.push_back(key);
            self.ids_order.push_back(r.id.clone());
            while self.ids_order.len() > 20_000 {
                if let Some(old) = self.ids_order.pop_front() {
                    self.ids_seen.remove(&old);
                }
            }
            let at = r.time.timestamp_millis() as f64 / 1000.0;
            if self.note_hold(r, at) {
                continue;
            }
            for c in r.changes.iter().filter(|c| c.to > c.from) {
                let Some(op) = Op::from_name(&c.op) else {
                    continue;
                };
                if first_of_id {
                    self.increases.push_back(Increase {
                        resource: c.member(r).to_string(),
                        op,
                        at,
                    });
                }
                let acted = matches!(r.outcome, Outcome::Recommended | Outcome::Applied);
                let timed = self
                    .pending
                    .iter()
                    .any(|p| p.record_id == r.id && p.op == op && p.resource == c.member(r));
                if let (true, false, Some(demand)) = (acted, timed, c.demand) {
                    self.pending.push(PendingSurge {
                        record_id: r.id.clone(),
                        resource: c.member(r).to_string(),
                        op,
                        decided_at: at,
                        demand,
                    });
                }
            }
        }
        self.status.pending = self.pending.len();
    }

    /// A bet on burst capacity starts with a `held` record and ends with the
    /// resource's next decision of that operation. True for a `held` record.
    fn note_hold(&mut self, r: &AuditRecord, at: f64) -> bool {
        for c in &r.changes {
            let Some(op) = Op::from_name(&c.op) else {
                continue;
            };
            if let Some(open) = self
                .holds
                .iter_mut()
                .rev()
                .find(|h| h.0 == c.member(r) && h.1 == op && h.3.is_none())
            {
                open.3 = Some(at);
            }
            if r.outcome == Outcome::Held {
                // The bet began BET_RECORDED_AFTER_S before its record.
                let began = at - crate::policy::dynamodb::BET_RECORDED_AFTER_S;
                self.holds
                    .push_back((c.member(r).to_string(), op, began, None));
            }
        }
        while self.holds.len() > 10_000 {
            self.holds.pop_front();
        }
        r.outcome == Outcome::Held
    }

    /// Whether burst capacity was counted on for `resource`/`op` during the
    /// minute starting at `minute` (a bet still on counts up to now).
    fn held_in(&self, resource: &str, op: Op, minute: i64, now: f64) -> bool {
        let (start, end) = (minute as f64, minute as f64 + 60.0);
        self.holds.iter().any(|(r, o, from, until)| {
            r == resource && *o == op && *from < end && until.unwrap_or(now) >= start
        })
    }

    /// Samples the fleet factor (coordination) for calibration.
    pub fn note_factor(&mut self, second: i64, factor: f64) {
        let e = self.factors.entry(second.div_euclid(60) * 60).or_default();
        e.0 += factor;
        e.1 += 1;
    }

    fn factor_means(&self) -> BTreeMap<i64, f64> {
        self.factors
            .iter()
            .map(|(m, (sum, n))| (*m, sum / *n as f64))
            .collect()
    }

    /// Metrics a full read asks for, in order: per target its consumed
    /// units, throttle events, then throttled requests.
    pub fn full_read_metrics(&self) -> Vec<DynamoMetric> {
        let mut out = Vec::new();
        for t in &self.targets {
            out.push(t.consumed());
            out.push(t.throttle_events());
            out.extend(t.throttled_requests());
        }
        out
    }

    /// Metrics a lead poll asks for: the consumed units of pending surges.
    pub fn poll_metrics(&self) -> Vec<DynamoMetric> {
        let mut out: Vec<DynamoMetric> = Vec::new();
        for t in &self.targets {
            if self
                .pending
                .iter()
                .any(|p| p.resource == t.resource() && p.op == t.op)
            {
                out.push(t.consumed());
            }
        }
        out
    }

    /// A full read came back (maps in `full_read_metrics` order). Updates
    /// the calibrations, judges new throttled minutes, looks for pending
    /// surges. Returns the audit annotations to write.
    pub fn full_read(
        &mut self,
        sums: &[BTreeMap<i64, f64>],
        requests: &[(i64, crate::series::MinutePoint)],
        coordinated: bool,
        calibrations: &mut [Calibration],
        now: f64,
    ) -> Vec<AuditRecord> {
        let now_utc = at(now);
        let factors = coordinated.then(|| self.factor_means());
        let mut consumed_by_target = Vec::new();
        let mut i = 0;
        let targets = self.targets.clone();
        for t in &targets {
            let consumed = sums.get(i).cloned().unwrap_or_default();
            let events = sums.get(i + 1).cloned().unwrap_or_default();
            let n_req = t.throttled_requests().len();
            let mut throttled = events;
            for m in sums.iter().skip(i + 2).take(n_req) {
                for (minute, v) in m {
                    let e = throttled.entry(*minute).or_insert(0.0);
                    *e = e.max(*v);
                }
            }
            i += 2 + n_req;
            if t.auto {
                let pairs = pair_minutes(requests, &consumed, factors.as_ref());
                let fit = fit_through_origin(&pairs);
                if let Some(c) = calibrations
                    .iter_mut()
                    .find(|c| c.resource == t.resource() && c.op == t.op)
                {
                    c.update(fit, self.config.min_r2, self.config.min_samples, now_utc);
                }
            }
            self.judge_throttles(t, &throttled, now);
            consumed_by_target.push((t.resource(), t.op, consumed));
        }
        self.status.reads += 1;
        self.status.last_read = Some(now_utc);
        self.status.last_error = None;
        self.look(&consumed_by_target, now)
    }

    /// A lead poll came back (maps in `poll_metrics` order).
    pub fn poll_read(&mut self, sums: &[BTreeMap<i64, f64>], now: f64) -> Vec<AuditRecord> {
        let polled: Vec<(String, Op)> = self
            .targets
            .iter()
            .filter(|t| {
                self.pending
                    .iter()
                    .any(|p| p.resource == t.resource() && p.op == t.op)
            })
            .map(|t| (t.resource(), t.op))
            .collect();
        let consumed: Vec<(String, Op, BTreeMap<i64, f64>)> = polled
            .into_iter()
            .zip(sums.iter().cloned())
            .map(|((r, op), m)| (r, op, m))
            .collect();
        self.status.last_error = None;
        self.look(&consumed, now)
    }

    pub fn read_failed(&mut self, error: String, calibrations: &mut [Calibration]) {
        for c in calibrations.iter_mut() {
            c.failed(&error);
        }
        self.status.last_error = Some(error);
    }

    fn judge_throttles(&mut self, t: &Target, throttled: &BTreeMap<i64, f64>, now: f64) {
        let resource = t.resource();
        self.increases.retain(|i| i.at >= now - 8.0 * 86400.0);
        self.increases.make_contiguous();
        let window = self.config.calibrate_window.as_secs() as i64;
        for (&minute, &events) in throttled.iter().filter(|(_, v)| **v > 0.0) {
            if !self
                .throttles_checked
                .insert((resource.clone(), t.op, minute))
            {
                continue;
            }
            let failed_hold = self.held_in(&resource, t.op, minute, now);
            let was =
                !failed_hold && foreseen(self.increases.as_slices().0, &resource, t.op, minute);
            let m = ThrottledMinute {
                resource: resource.clone(),
                op: t.op,
                minute: at(minute as f64),
                events,
                foreseen: was,
                failed_hold,
            };
            self.status.recent_throttled.push(m.clone());
            if self.status.recent_throttled.len() > RECENT_THROTTLED {
                self.status.recent_throttled.remove(0);
            }
            if failed_hold {
                self.status.throttled_minutes_failed_hold += 1;
                tracing::warn!(
                    resource = %resource,
                    op = t.op.as_str(),
                    minute = %m.minute,
                    events,
                    "CloudWatch reports throttling while burst capacity was counted on (a failed hold)."
                );
                self.status.last_unforeseen = Some(m);
            } else if was {
                self.status.throttled_minutes_foreseen += 1;
            } else {
                self.status.throttled_minutes_unforeseen += 1;
                tracing::warn!(
                    resource = %resource,
                    op = t.op.as_str(),
                    minute = %m.minute,
                    events,
                    "CloudWatch reports throttling rapidscale did not foresee (no increase decided in or just before that minute)."
                );
                self.status.last_unforeseen = Some(m);
            }
        }
        let oldest = now as i64 - window - 3600;
        self.throttles_checked.retain(|(_, _, m)| *m >= oldest);
        self.factors.retain(|m, _| *m >= oldest);
    }

    fn look(
        &mut self,
        consumed: &[(String, Op, BTreeMap<i64, f64>)],
        now: f64,
    ) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let Some((_, _, sums)) = consumed
                .iter()
                .find(|(r, op, _)| *r == p.resource && *op == p.op)
            else {
                still.push(p);
                continue;
            };
            match look_for(&p, sums, now) {
                Seen::Shown(lead) => {
                    tracing::info!(
                        resource = %lead.resource,
                        op = lead.op.as_str(),
                        lead_s = lead.lead_s,
                        minute_lead_s = lead.minute_lead_s,
                        "CloudWatch now shows a surge rapidscale acted on."
                    );
                    self.status.surges_seen += 1;
                    self.status.lead_s_sum += lead.lead_s;
                    out.push(self.annotation(&lead));
                    self.status.leads.insert(0, lead);
                    self.status.leads.truncate(LEADS_KEPT);
                }
                Seen::NoRise { .. } => self.status.surges_no_rise += 1,
                Seen::NotYet if now - p.decided_at > GIVE_UP_S => {
                    self.status.surges_unseen += 1;
                }
                Seen::NotYet => still.push(p),
            }
        }
        self.pending = still;
        self.status.pending = self.pending.len();
        out
    }

    fn annotation(&self, lead: &Lead) -> AuditRecord {
        AuditRecord {
            id: format!("{}-cw-{}", lead.record_id, lead.op.as_str()),
            time: at(lead.seen_at),
            phase: Phase::Completed,
            service: "dynamodb".into(),
            resource: lead.resource.clone(),
            mode: self.mode,
            outcome: Outcome::Observed,
            changes: Vec::new(),
            decrease: false,
            reason: Some(format!(
                "CloudWatch showed this {} surge {:.0} s after rapidscale acted (datapoint of {}, whose minute ended {:.0} s after)",
                lead.op.as_str(),
                lead.lead_s,
                at(lead.minute as f64).format("%H:%M"),
                lead.minute_lead_s
            )),
            error: None,
            fencing: None,
            observed: Some(Observation {
                refers_to: lead.record_id.clone(),
                cloudwatch_minute: at(lead.minute as f64),
                lead_s: lead.lead_s,
                minute_lead_s: lead.minute_lead_s,
            }),
        }
    }
}

fn at(unix: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((unix * 1000.0) as i64).unwrap_or_default()
}

/// The reading task.
pub struct Watcher<C> {
    pub cloud: Arc<C>,
    pub config: Arc<Config>,
    pub store: crate::ingest::SharedStore,
    pub audit: Arc<AuditLog>,
    pub clock: crate::clock::SharedClock,
    pub calibration: Slot<Vec<Calibration>>,
    pub status: Slot<WatchStatus>,
    /// The throttled minutes, for the deciders (the burst they count on).
    pub reported_throttles: Slot<Vec<crate::decide::ReportedThrottle>>,
    /// How the deciders read the fleet (for the fleet factor of each minute).
    pub fleet: Slot<Option<crate::decide::fleet::FleetReading>>,
    /// With coordination: only the leader reads.
    pub leadership: Option<Slot<crate::coord::task::Role>>,
}

impl<C: Metrics> Watcher<C> {
    fn leads(&self) -> bool {
        self.leadership
            .as_ref()
            .is_none_or(|r| matches!(r.get(), crate::coord::task::Role::Leader { .. }))
    }

    fn now(&self) -> f64 {
        self.clock.now().timestamp_millis() as f64 / 1000.0
    }

    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        let cw = self.config.cloudwatch.clone();
        let mut watch = Watch::new(cw.clone(), targets(&self.config), self.config.mode);
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = self.clock.now();
        // The first full read comes soon after start (the fits and the
        // throttling of the window so far), then every `calibrate_every`.
        let mut next_full = self.now() + 10.0;
        let mut next_poll = self.now();
        let mut since = started;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let now = self.now();
            let records = self.audit.recent(Some(since), crate::audit::MEMORY);
            if let Some(newest) = records.iter().map(|r| r.time).max() {
                since = newest;
            }
            watch.note_records(&records);
            if !self.leads() {
                continue;
            }
            if self.leadership.is_some() {
                if let Some(f) = self.fleet.get().filter(|f| f.exact) {
                    watch.note_factor(now as i64, f.factor);
                }
            }
            let annotations = if now >= next_full {
                next_full = now + cw.calibrate_every.as_secs_f64();
                next_poll = now + cw.lead_poll.as_secs_f64();
                self.full(&mut watch, now, &shutdown).await
            } else if now >= next_poll && !watch.pending().is_empty() {
                next_poll = now + cw.lead_poll.as_secs_f64();
                self.poll(&mut watch, now, &shutdown).await
            } else {
                Vec::new()
            };
            for record in annotations {
                if let Err(e) = self.audit.append(&record) {
                    tracing::error!(error = %e, "Cannot write the lead over CloudWatch to the audit log.");
                }
            }
            let reported: Vec<crate::decide::ReportedThrottle> = watch
                .status
                .recent_throttled
                .iter()
                .map(|m| (m.resource.clone(), m.op, m.minute.timestamp()))
                .collect();
            if reported != self.reported_throttles.get() {
                self.reported_throttles.set(reported);
            }
            self.status.set(watch.status.clone());
        }
    }

    async fn full(
        &self,
        watch: &mut Watch,
        now: f64,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Vec<AuditRecord> {
        let metrics = watch.full_read_metrics();
        let end = (now as i64).div_euclid(60) * 60;
        let start = end - self.config.cloudwatch.calibrate_window.as_secs() as i64;
        let result = tokio::select! {
            _ = shutdown.cancelled() => return Vec::new(),
            r = self.cloud.dynamodb_minute_sums(&metrics, start, end + 60) => r,
        };
        let minutes = (end - start) as usize / 60 + 1;
        let requests = {
            let store = crate::ingest::lock(&self.store);
            self.config
                .ingest
                .requests_stream
                .as_deref()
                .and_then(|n| store.id(n))
                .map(|id| store.minutes(id, minutes))
                .unwrap_or_default()
        };
        let mut calibrations = self.calibration.get();
        let out = match result {
            Ok(sums) => watch.full_read(
                &sums,
                &requests,
                self.leadership.is_some(),
                &mut calibrations,
                now,
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read DynamoDB's metrics from CloudWatch.");
                watch.read_failed(e.to_string(), &mut calibrations);
                Vec::new()
            }
        };
        self.calibration.set(calibrations);
        out
    }

    async fn poll(
        &self,
        watch: &mut Watch,
        now: f64,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Vec<AuditRecord> {
        let metrics = watch.poll_metrics();
        let end = (now as i64).div_euclid(60) * 60 + 60;
        let result = tokio::select! {
            _ = shutdown.cancelled() => return Vec::new(),
            r = self.cloud.dynamodb_minute_sums(&metrics, end - 1200, end) => r,
        };
        match result {
            Ok(sums) => watch.poll_read(&sums, now),
            Err(e) => {
                watch.status.last_error = Some(e.to_string());
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditChange;

    fn target() -> Target {
        Target {
            table: "posts".into(),
            index: None,
            op: Op::Read,
            auto: false,
            fallback: Some(1.0),
        }
    }

    fn record(id: &str, at: i64, phase: Phase, outcome: Outcome, to: u64) -> AuditRecord {
        AuditRecord {
            id: id.into(),
            time: DateTime::from_timestamp(at, 0).unwrap(),
            phase,
            service: "dynamodb".into(),
            resource: "posts".into(),
            mode: Mode::Apply,
            outcome,
            changes: vec![AuditChange {
                resource: None,
                op: "read".into(),
                from: 10,
                to,
                rule: "surge".into(),
                demand: Some(200.0),
                threshold: None,
                window_s: 1,
            }],
            decrease: to < 10,
            reason: None,
            error: None,
            fencing: None,
            observed: None,
        }
    }

    const T0: i64 = 1_700_000_040; // a minute start

    #[test]
    fn an_applied_increase_is_timed_once_and_annotated_when_it_shows() {
        let mut w = Watch::new(CloudWatchConfig::default(), vec![target()], Mode::Apply);
        let decided = T0 + 300 + 5;
        // Pending then applied: one surge. A skipped one is only an increase;
        // a decrease is neither.
        w.note_records(&[
            record("a", decided, Phase::Decided, Outcome::Pending, 40),
            record("a", decided + 1, Phase::Completed, Outcome::Applied, 40),
            record("a", decided + 1, Phase::Completed, Outcome::Applied, 40),
            record("b", decided, Phase::Decided, Outcome::Skipped, 40),
            record("c", decided, Phase::Decided, Outcome::Recommended, 5),
        ]);
        assert_eq!(w.pending().len(), 1);
        assert_eq!(w.increases.len(), 2);
        assert_eq!(w.poll_metrics().len(), 1);
        let mut sums: BTreeMap<i64, f64> = (0..5).map(|m| (T0 + m * 60, 600.0)).collect();
        assert!(w
            .poll_read(std::slice::from_ref(&sums), (decided + 30) as f64)
            .is_empty());
        sums.insert(T0 + 300, 200.0 * 55.0 + 10.0 * 5.0);
        let notes = w.poll_read(&[sums], (decided + 95) as f64);
        assert_eq!(notes.len(), 1);
        let o = notes[0].observed.as_ref().unwrap();
        assert_eq!(o.refers_to, "a");
        assert_eq!((o.lead_s, o.minute_lead_s), (94.0, 54.0));
        assert_eq!(notes[0].outcome, Outcome::Observed);
        assert_eq!((w.status.surges_seen, w.status.pending), (1, 0));
        assert!(w.poll_metrics().is_empty());
    }

    #[test]
    fn a_throttled_minute_during_a_bet_is_a_failed_hold_never_foreseen() {
        let mut w = Watch::new(CloudWatchConfig::default(), vec![target()], Mode::Apply);
        // The bet is recorded 10 s after it began (T0 + 60); the increase
        // that ends it is applied at T0 + 100, inside the same minute, which
        // alone would make a throttled minute "foreseen".
        w.note_records(&[
            record("h", T0 + 70, Phase::Decided, Outcome::Held, 40),
            record("a", T0 + 100, Phase::Decided, Outcome::Pending, 40),
            record("a", T0 + 100, Phase::Completed, Outcome::Applied, 40),
        ]);
        let throttled = BTreeMap::from([(T0 + 60, 25.0), (T0 + 900, 3.0)]);
        w.judge_throttles(&target(), &throttled, (T0 + 1000) as f64);
        let kinds: Vec<(i64, bool, bool)> = w
            .status
            .recent_throttled
            .iter()
            .map(|m| (m.minute.timestamp(), m.failed_hold, m.foreseen))
            .collect();
        assert_eq!(kinds, [(T0 + 60, true, false), (T0 + 900, false, false)]);
        assert_eq!(w.status.throttled_minutes_failed_hold, 1);
        assert_eq!(w.status.throttled_minutes_foreseen, 0);
        assert_eq!(w.status.throttled_minutes_unforeseen, 1);
        // The same minutes read again are not counted twice.
        w.judge_throttles(&target(), &throttled, (T0 + 1060) as f64);
        assert_eq!(w.status.recent_throttled.len(), 2);
    }

    #[test]
    fn a_surge_never_shown_is_given_up_and_counted() {
        let mut w = Watch::new(CloudWatchConfig::default(), vec![target()], Mode::Apply);
        let decided = T0 + 300;
        w.note_records(&[record("a", decided, Phase::Completed, Outcome::Applied, 40)]);
        let flat: BTreeMap<i64, f64> = (0..30).map(|m| (T0 + m * 60, 600.0)).collect();
        w.poll_read(std::slice::from_ref(&flat), decided as f64 + 600.0);
        assert_eq!(w.status.pending, 1);
        w.poll_read(&[flat], decided as f64 + GIVE_UP_S + 1.0);
        assert_eq!((w.status.pending, w.status.surges_unseen), (0, 1));
    }

    #[test]
    fn a_full_read_failure_keeps_the_last_good_fit_and_says_so() {
        let mut w = Watch::new(CloudWatchConfig::default(), vec![target()], Mode::Apply);
        let mut cals = vec![Calibration::initial("posts".into(), Op::Read, Some(1.0))];
        let now = DateTime::from_timestamp(T0, 0).unwrap();
        let fit = crate::policy::calibrate::Fit {
            per_request: 0.4,
            r2: 0.99,
            samples: 100,
        };
        cals[0].update(Some(fit), 0.8, 30, now);
        w.read_failed("GetMetricData: unavailable".into(), &mut cals);
        assert_eq!(cals[0].per_request, Some(0.4));
        assert!(cals[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("keeping the last good fit"));
        assert_eq!(
            w.status.last_error.as_deref(),
            Some("GetMetricData: unavailable")
        );
    }

    #[test]
    fn targets_cover_tables_and_indexes_with_their_metrics() {
        let mut w = Watch::new(
            CloudWatchConfig::default(),
            vec![
                target(),
                Target {
                    index: Some("by_user".into()),
                    op: Op::Write,
                    ..target()
                },
            ],
            Mode::Apply,
        );
        w.note_records(&[]);
        let metrics = w.full_read_metrics();
        let names: Vec<(&str, Option<&str>, Option<&str>)> = metrics
            .iter()
            .map(|m| (m.name, m.index.as_deref(), m.operation))
            .collect();
        assert_eq!(names[0], ("ConsumedReadCapacityUnits", None, None));
        assert_eq!(names[1], ("ReadThrottleEvents", None, None));
        assert_eq!(names[2], ("ThrottledRequests", None, Some("GetItem")));
        // 2 + 5 for the table's reads, 2 for the index's writes (no
        // ThrottledRequests: that metric has no index dimension).
        assert_eq!(names.len(), 9);
        assert_eq!(
            names[7],
            ("ConsumedWriteCapacityUnits", Some("by_user"), None)
        );
        assert_eq!(names[8], ("WriteThrottleEvents", Some("by_user"), None));
    }
}
