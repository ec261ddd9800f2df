//! A simulated AWS: DynamoDB tables and indexes with provisioned capacity,
//! burst capacity, throttling and the decrease rule, and Auto Scaling
//! groups whose instances boot for a while before they serve.
//!
//! [`SimWorld`] is synchronous and takes time as an argument, so replays
//! drive it from a virtual clock as fast as the CPU allows and tests state
//! exact instants. [`cloud::SimCloud`] puts it behind the whole [`crate::cloud::CloudBackend`] port
//! for the daemon (the `demo` command), so the advisors and the actuator
//! run the same code against it as against AWS.
//!
//! What is modelled, and how (see docs/simulator.md):
//! - UpdateTable is refused while the table is UPDATING (ResourceInUse);
//!   the new capacity takes effect `update_delay` after the call, and the
//!   table and the changed index are UPDATING meanwhile;
//! - burst capacity: unused capacity accrues, up to `burst_seconds`
//!   (300) seconds of the provisioned rate, and is spent when demand
//!   exceeds provisioned; demand beyond both is throttled;
//! - the decrease rule (4 at any time of a UTC day, then one whenever the
//!   past hour had none, at most the quota, 27) enforced with LimitExceeded;
//! - a group's new instances are Pending for a boot time drawn around
//!   `boot_time` (log-normal, `boot_spread`), or `warm_boot_time` when
//!   taken from the group's warm pool, then InService; each InService
//!   instance serves up to `instance_rps` requests/s;
//! - CloudWatch (`metrics.rs`): what is put is kept; `AWS/DynamoDB` minute
//!   metrics are computed from what the tables served and throttled;
//! - the coordination table (`coordination.rs`): heartbeats and the lease
//!   under the same conditions as on DynamoDB;
//! - faults: calls that fail as throttled, limit exceeded, timed out or
//!   unreachable during a window of time, or for the next N calls.

pub mod cloud;
pub(crate) mod coordination;
pub(crate) mod metrics;

use std::collections::BTreeMap;
#[cfg(test)]
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::SeedableRng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Serialize;

use crate::cloud::{
    BillingMode, CloudError, CloudErrorKind, Datum, DynamoMetric, GroupDescription, Heartbeat,
    IndexDescription, InitReport, InstanceDescription, Lease, MemberCapacity, TableDescription,
    Throughput,
};
use crate::policy::budget::{DecreaseLedger, DecreaseRule};
use coordination::SimCoordinationTable;
use metrics::{MinuteUse, SimMetrics};

/// How the simulated services behave. `Default` is the plain world the
/// unit tests want (fixed delays, no drains, no hot key); [`SimSettings::replay`]
/// is the world a replay runs in unless told otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimSettings {
    /// From UpdateTable to the new capacity being in effect: the median.
    #[serde(serialize_with = "as_seconds")]
    pub update_delay: Duration,
    /// Spread of update delays: the sigma of a log-normal around the median
    /// (0: every update takes exactly the median).
    pub update_spread: f64,
    /// An increase past the resource's highest capacity ever (new
    /// partitions) takes this many times longer.
    pub new_high_factor: f64,
    /// Seconds of unused provisioned capacity the burst bucket can hold.
    pub burst_seconds: f64,
    /// Maintenance drains per table or index and day: each empties its
    /// burst buckets at a random instant (a Poisson process).
    pub drains_per_day: f64,
    /// Share of each second's demand on one partition key (0: none).
    pub hot_key_share: f64,
    /// An index that throttles writes throttles the table's writes too.
    pub gsi_back_pressure: bool,
    /// From a new instance launching to it being InService: the median.
    #[serde(serialize_with = "as_seconds")]
    pub boot_time: Duration,
    /// Spread of boot times: the sigma of a log-normal around the median
    /// (0: every instance boots in exactly the median).
    pub boot_spread: f64,
    /// Instances kept stopped in the group's warm pool; a launch takes one
    /// while there is one, and boots in `warm_boot_time` instead. The pool
    /// refills one instance per cold boot time.
    pub warm_pool: u32,
    /// From a warm pool instance launching to it being InService.
    #[serde(serialize_with = "as_seconds")]
    pub warm_boot_time: Duration,
    /// Requests/s one InService instance can serve.
    pub instance_rps: f64,
    /// DynamoDB's decrease rule (the account's quota).
    pub decrease_rule: DecreaseRule,
    /// Seed of the simulator's own randomness (delays, drains).
    pub seed: u64,
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Per-partition limits of DynamoDB (Developer Guide, "Partitions and data
/// distribution"): one partition serves at most this many units a second,
/// whatever the table's provisioned capacity.
pub const PARTITION_READ_UNITS: f64 = 3000.0;
pub const PARTITION_WRITE_UNITS: f64 = 1000.0;

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            update_delay: Duration::from_secs(15),
            update_spread: 0.0,
            new_high_factor: 1.0,
            burst_seconds: 300.0,
            drains_per_day: 0.0,
            hot_key_share: 0.0,
            gsi_back_pressure: true,
            boot_time: Duration::from_secs(120),
            boot_spread: 0.0,
            warm_pool: 0,
            warm_boot_time: Duration::from_secs(20),
            instance_rps: 350.0,
            decrease_rule: DecreaseRule::AWS,
            seed: 1,
        }
    }
}

impl SimSettings {
    /// The world a replay runs in by default (docs/replay.md, "The
    /// simulator"): updates of 15 s give or take (log-normal, sigma 0.3),
    /// twice as long past the highest capacity ever, a full 300-s bucket
    /// drained by maintenance once a day on average.
    pub fn replay(seed: u64) -> SimSettings {
        SimSettings {
            update_spread: 0.3,
            new_high_factor: 2.0,
            drains_per_day: 1.0,
            seed,
            ..SimSettings::default()
        }
    }
}

/// How a simulated call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The API throttles the call.
    Throttled,
    /// UpdateTable answers LimitExceededException.
    LimitExceeded,
    /// The call hangs for the client's timeout, then fails as unreachable.
    Timeout,
    /// The service cannot be reached at all.
    Outage,
}

/// When a fault applies.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultWhen {
    /// Every call in `[from, until)`.
    Window {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// The next `n` matching calls.
    NextCalls(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The operation it applies to ("UpdateTable", ...); None: every call.
    pub operation: Option<&'static str>,
    pub when: FaultWhen,
}

/// Demand of one second against one capacity, and what happened to it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Served {
    /// Units served from provisioned capacity or from the burst bucket.
    pub consumed: f64,
    /// Units refused.
    pub throttled: f64,
}

/// One provisioned capacity (read or write of a table or index) with its
/// burst bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub provisioned: u64,
    /// Unused capacity banked, in units.
    pub burst: f64,
}

impl Capacity {
    fn new(provisioned: u64, burst_seconds: f64) -> Self {
        // A table that has been idle starts with a full bucket.
        Self {
            provisioned,
            burst: provisioned as f64 * burst_seconds,
        }
    }

    /// Serves one second of `demand` units.
    pub fn serve(&mut self, demand: f64, burst_seconds: f64) -> Served {
        let demand = demand.max(0.0);
        let prov = self.provisioned as f64;
        let served = if demand <= prov {
            self.burst = (self.burst + prov - demand).min(prov * burst_seconds);
            Served {
                consumed: demand,
                throttled: 0.0,
            }
        } else {
            let from_burst = (demand - prov).min(self.burst);
            self.burst -= from_burst;
            Served {
                consumed: prov + from_burst,
                throttled: demand - prov - from_burst,
            }
        };
        // The bucket never holds more than the (possibly lowered) capacity allows.
        self.burst = self.burst.min(prov * burst_seconds);
        served
    }
}

/// One second of one operation: the hot key's partition refuses what is
/// past a partition's limit (`hot` of the demand on one key, the rest
/// spread over `partitions`), the capacity serves the rest.
fn serve_op(
    cap: &mut Capacity,
    demand: f64,
    burst_seconds: f64,
    hot: f64,
    partitions: f64,
    limit: f64,
) -> Served {
    let demand = demand.max(0.0);
    let on_hot = hot * demand + (1.0 - hot) * demand / partitions;
    let over = (on_hot - limit).max(0.0);
    let mut served = cap.serve(demand - over, burst_seconds);
    served.throttled += over;
    served
}

/// A table or one of its indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct SimResource {
    pub read: Capacity,
    pub write: Capacity,
    /// An accepted update and when it takes effect.
    pub pending: Option<(DateTime<Utc>, Throughput)>,
    pub ledger: DecreaseLedger,
    pub last_increase: Option<DateTime<Utc>>,
    pub last_decrease: Option<DateTime<Utc>>,
    /// The highest capacity it ever had: partitions are never merged, and
    /// an increase past it needs new ones.
    pub highest: Throughput,
    /// Unix second of the next maintenance drain of its buckets (None: not drawn yet).
    next_drain: Option<i64>,
}

impl SimResource {
    fn new(t: Throughput, s: &SimSettings) -> Self {
        Self {
            read: Capacity::new(t.read, s.burst_seconds),
            write: Capacity::new(t.write, s.burst_seconds),
            pending: None,
            ledger: DecreaseLedger::default(),
            last_increase: None,
            last_decrease: None,
            highest: t,
            next_drain: None,
        }
    }

    pub fn provisioned(&self) -> Throughput {
        Throughput {
            read: self.read.provisioned,
            write: self.write.provisioned,
        }
    }

    /// Partitions its highest capacity needs (at least one).
    pub fn partitions(&self) -> f64 {
        (self.highest.read as f64 / PARTITION_READ_UNITS
            + self.highest.write as f64 / PARTITION_WRITE_UNITS)
            .ceil()
            .max(1.0)
    }

    fn status(&self) -> &'static str {
        if self.pending.is_some() {
            "UPDATING"
        } else {
            "ACTIVE"
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimTable {
    pub base: SimResource,
    pub indexes: BTreeMap<String, SimResource>,
}

impl SimTable {
    pub fn updating(&self) -> bool {
        self.base.pending.is_some() || self.indexes.values().any(|i| i.pending.is_some())
    }

    pub fn resource(&self, index: Option<&str>) -> Option<&SimResource> {
        match index {
            None => Some(&self.base),
            Some(i) => self.indexes.get(i),
        }
    }

    pub fn resource_mut(&mut self, index: Option<&str>) -> Option<&mut SimResource> {
        match index {
            None => Some(&mut self.base),
            Some(i) => self.indexes.get_mut(i),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimInstance {
    pub id: String,
    pub launched_at: DateTime<Utc>,
    /// When its boot ends (drawn at launch).
    pub ready_at: DateTime<Utc>,
    pub in_service: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimGroup {
    /// Warm pool instances ready to launch fast.
    pub warm_pool: u32,
    /// When used warm pool instances are back in the pool.
    pub refills: Vec<DateTime<Utc>>,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub instances: Vec<SimInstance>,
}

impl SimGroup {
    pub fn in_service(&self) -> usize {
        self.instances.iter().filter(|i| i.in_service).count()
    }
}

/// The simulated AWS account.
#[derive(Debug, Clone)]
pub struct SimWorld {
    pub settings: SimSettings,
    tables: BTreeMap<String, SimTable>,
    groups: BTreeMap<String, SimGroup>,
    faults: Vec<Fault>,
    next_instance: u64,
    /// Calls made, by operation (tests check there is no retry storm).
    pub calls: BTreeMap<&'static str, u64>,
    /// CloudWatch: datums put, and the tables' minute metrics.
    pub metrics: SimMetrics,
    /// Coordination tables by name.
    pub coordination: BTreeMap<String, SimCoordinationTable>,
    /// Capacities registered with Application Auto Scaling (tests register
    /// them to see rapidscale refuse to apply).
    pub scalable_targets: Vec<crate::cloud::ScalableTarget>,
    /// SNS messages published: topic, subject, message.
    pub published: Vec<(String, String, String)>,
    /// The simulator's own randomness, from `settings.seed`: drains (the
    /// same in two worlds served the same demand, whatever their calls) and
    /// update delays.
    drain_rng: rand::rngs::StdRng,
    delay_rng: rand::rngs::StdRng,
    boot_rng: rand::rngs::StdRng,
}

fn err(operation: &'static str, resource: &str, kind: CloudErrorKind, message: &str) -> CloudError {
    CloudError {
        operation,
        resource: resource.to_string(),
        kind,
        message: message.to_string(),
    }
}

/// Whether one member's new capacity is valid and allowed.
fn check_member(
    r: &SimResource,
    to: Throughput,
    now: DateTime<Utc>,
    rule: DecreaseRule,
) -> Result<(), (CloudErrorKind, &'static str)> {
    if to.read == 0 || to.write == 0 {
        return Err((
            CloudErrorKind::Other,
            "ValidationException: capacity must be at least 1 (simulated)",
        ));
    }
    let cur = r.provisioned();
    if to == cur {
        return Err((
            CloudErrorKind::Other,
            "ValidationException: the provisioned throughput is unchanged (simulated)",
        ));
    }
    let decrease = to.read < cur.read || to.write < cur.write;
    let mut ledger = r.ledger.clone();
    ledger.roll(now);
    if decrease && !ledger.allowed_at(now, rule) {
        return Err((
            CloudErrorKind::LimitExceeded,
            "LimitExceededException: Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day (simulated)",
        ));
    }
    Ok(())
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl SimWorld {
    pub fn new(settings: SimSettings) -> Self {
        Self {
            tables: BTreeMap::new(),
            groups: BTreeMap::new(),
            faults: Vec::new(),
            next_instance: 1,
            calls: BTreeMap::new(),
            metrics: SimMetrics::default(),
            coordination: BTreeMap::new(),
            scalable_targets: Vec::new(),
            published: Vec::new(),
            drain_rng: rand::rngs::StdRng::seed_from_u64(settings.seed),
            delay_rng: rand::rngs::StdRng::seed_from_u64(settings.seed ^ 0x5eed_de1a),
            boot_rng: rand::rngs::StdRng::seed_from_u64(settings.seed ^ 0xb007),
            settings,
        }
    }

    /// The first drain at or after `from` (never, without drains).
    fn draw_drain(&mut self, from: i64) -> i64 {
        let per_s = self.settings.drains_per_day / 86_400.0;
        match Exp::new(per_s) {
            Ok(exp) if per_s > 0.0 => {
                from.saturating_add(exp.sample(&mut self.drain_rng).ceil() as i64)
            }
            _ => i64::MAX,
        }
    }

    /// How long an accepted update takes: the median, spread log-normally,
    /// longer past the highest capacity ever.
    fn draw_delay(&mut self, new_high: bool) -> Duration {
        let s = &self.settings;
        let median = s.update_delay.as_secs_f64() * if new_high { s.new_high_factor } else { 1.0 };
        let factor = match LogNormal::new(0.0, s.update_spread) {
            Ok(d) if s.update_spread > 0.0 => d.sample(&mut self.delay_rng).clamp(0.25, 4.0),
            _ => 1.0,
        };
        Duration::from_secs_f64((median * factor).max(0.0))
    }

    /// How long one instance boots: `median`, spread log-normally.
    fn draw_boot(&mut self, median: Duration) -> Duration {
        let spread = self.settings.boot_spread;
        let factor = match LogNormal::new(0.0, spread) {
            Ok(d) if spread > 0.0 => d.sample(&mut self.boot_rng).clamp(0.25, 4.0),
            _ => 1.0,
        };
        Duration::from_secs_f64(median.as_secs_f64() * factor)
    }

    /// Sets the highest capacity a table or index ever had (its partitions;
    /// a new one has only its initial capacity).
    pub fn set_highest(&mut self, table: &str, index: Option<&str>, highest: Throughput) {
        if let Some(r) = self
            .tables
            .get_mut(table)
            .and_then(|t| t.resource_mut(index))
        {
            r.highest = Throughput {
                read: highest.read.max(r.read.provisioned),
                write: highest.write.max(r.write.provisioned),
            };
        }
    }

    /// Adds a provisioned table with its global secondary indexes.
    pub fn add_table(&mut self, name: &str, base: Throughput, indexes: &[(&str, Throughput)]) {
        let s = &self.settings;
        self.tables.insert(
            name.to_string(),
            SimTable {
                base: SimResource::new(base, s),
                indexes: indexes
                    .iter()
                    .map(|(n, t)| (n.to_string(), SimResource::new(*t, s)))
                    .collect(),
            },
        );
    }

    /// Adds a group with `desired` instances already InService.
    pub fn add_group(&mut self, name: &str, desired: u32, min: u32, max: u32, now: DateTime<Utc>) {
        let mut g = SimGroup {
            warm_pool: self.settings.warm_pool,
            refills: Vec::new(),
            desired,
            min,
            max,
            instances: Vec::new(),
        };
        for _ in 0..desired {
            let id = self.new_instance_id();
            g.instances.push(SimInstance {
                id,
                launched_at: now - delta(self.settings.boot_time),
                ready_at: now,
                in_service: true,
            });
        }
        self.groups.insert(name.to_string(), g);
    }

    fn new_instance_id(&mut self) -> String {
        let id = format!("i-sim{:013x}", self.next_instance);
        self.next_instance += 1;
        id
    }

    pub fn add_fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    pub fn table(&self, name: &str) -> Option<&SimTable> {
        self.tables.get(name)
    }

    pub fn group(&self, name: &str) -> Option<&SimGroup> {
        self.groups.get(name)
    }

    /// Applies what has become due by `now`: updates taking effect,
    /// instances finishing their boot.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        for t in self.tables.values_mut() {
            for r in std::iter::once(&mut t.base).chain(t.indexes.values_mut()) {
                if let Some((at, to)) = r.pending {
                    if at <= now {
                        r.read.provisioned = to.read;
                        r.write.provisioned = to.write;
                        r.pending = None;
                    }
                }
            }
        }
        for g in self.groups.values_mut() {
            for i in &mut g.instances {
                if !i.in_service && i.ready_at <= now {
                    i.in_service = true;
                }
            }
            let before = g.refills.len();
            g.refills.retain(|at| *at > now);
            g.warm_pool += (before - g.refills.len()) as u32;
        }
    }

    /// Serves one second of demand on a table (`index` None) or index, and
    /// records it for the `AWS/DynamoDB` metrics. Unknown resources serve
    /// nothing.
    pub fn serve(
        &mut self,
        table: &str,
        index: Option<&str>,
        read: f64,
        write: f64,
        now: DateTime<Utc>,
    ) -> (Served, Served) {
        self.serve_table(table, &[(index, read, write)], now)[0]
    }

    /// Serves one second of demand on a table and its indexes (`demands`:
    /// resource, read units, write units) and records it for the
    /// `AWS/DynamoDB` metrics; returns what happened, in `demands` order.
    ///
    /// Per resource and operation: a maintenance drain due empties the
    /// bucket; the hot key's partition cannot serve more than a partition's
    /// limit (burst does not help it); the rest is served from provisioned
    /// capacity, then the bucket. Indexes are served first: with
    /// `gsi_back_pressure`, the share of an index's writes throttled is
    /// refused on the table's writes too.
    pub fn serve_table(
        &mut self,
        table: &str,
        demands: &[(Option<&str>, f64, f64)],
        now: DateTime<Utc>,
    ) -> Vec<(Served, Served)> {
        let mut out = vec![(Served::default(), Served::default()); demands.len()];
        let mut order: Vec<usize> = (0..demands.len()).collect();
        order.sort_by_key(|&i| demands[i].0.is_none());
        let mut index_write_refused: f64 = 0.0;
        for i in order {
            let (index, read, mut write) = demands[i];
            if !self.drain_if_due(table, index, now.timestamp()) {
                continue;
            }
            let mut pressed = 0.0;
            if index.is_none() && self.settings.gsi_back_pressure && index_write_refused > 0.0 {
                pressed = write.max(0.0) * index_write_refused;
                write -= pressed;
            }
            let (burst, hot) = (self.settings.burst_seconds, self.settings.hot_key_share);
            let Some(r) = self
                .tables
                .get_mut(table)
                .and_then(|t| t.resource_mut(index))
            else {
                continue;
            };
            let parts = r.partitions();
            let rs = serve_op(&mut r.read, read, burst, hot, parts, PARTITION_READ_UNITS);
            let mut ws = serve_op(
                &mut r.write,
                write,
                burst,
                hot,
                parts,
                PARTITION_WRITE_UNITS,
            );
            ws.throttled += pressed;
            if index.is_some() && write > 0.0 {
                index_write_refused = index_write_refused.max(ws.throttled / write);
            }
            self.metrics.record_use(
                table,
                index,
                now.timestamp(),
                MinuteUse {
                    consumed_read: rs.consumed,
                    consumed_write: ws.consumed,
                    throttled_read: rs.throttled,
                    throttled_write: ws.throttled,
                },
            );
            out[i] = (rs, ws);
        }
        out
    }

    /// Empties the resource's buckets when a maintenance drain is due, and
    /// draws the next one. False when there is no such resource.
    fn drain_if_due(&mut self, table: &str, index: Option<&str>, now_s: i64) -> bool {
        let Some(next) = self
            .tables
            .get(table)
            .and_then(|t| t.resource(index))
            .map(|r| r.next_drain)
        else {
            return false;
        };
        let due = next.is_some_and(|at| at <= now_s);
        if next.is_some() && !due {
            return true;
        }
        let drawn = self.draw_drain(now_s);
        if let Some(r) = self
            .tables
            .get_mut(table)
            .and_then(|t| t.resource_mut(index))
        {
            if due {
                r.read.burst = 0.0;
                r.write.burst = 0.0;
            }
            r.next_drain = Some(drawn);
        }
        true
    }

    /// Serves one second of requests on a group: (served, refused).
    pub fn serve_requests(&self, group: &str, requests: f64) -> (f64, f64) {
        let capacity = self
            .groups
            .get(group)
            .map_or(0.0, |g| g.in_service() as f64 * self.settings.instance_rps);
        let served = requests.min(capacity);
        (served, requests - served)
    }

    /// Checks the fault list for a call; consumes a `NextCalls` fault.
    fn fault(&mut self, operation: &'static str, now: DateTime<Utc>) -> Option<FaultKind> {
        *self.calls.entry(operation).or_default() += 1;
        let pos = self.faults.iter().position(|f| {
            f.operation.is_none_or(|o| o == operation)
                && match f.when {
                    FaultWhen::Window { from, until } => from <= now && now < until,
                    FaultWhen::NextCalls(n) => n > 0,
                }
        })?;
        let f = &mut self.faults[pos];
        let kind = f.kind;
        if let FaultWhen::NextCalls(n) = &mut f.when {
            *n -= 1;
            if *n == 0 {
                self.faults.remove(pos);
            }
        }
        Some(kind)
    }

    fn check(
        &mut self,
        operation: &'static str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        match self.fault(operation, now) {
            None => Ok(()),
            Some(FaultKind::Throttled) => Err(err(
                operation,
                resource,
                CloudErrorKind::Throttled,
                "ThrottlingException: Rate exceeded (simulated)",
            )),
            Some(FaultKind::LimitExceeded) => Err(err(
                operation,
                resource,
                CloudErrorKind::LimitExceeded,
                "LimitExceededException (simulated)",
            )),
            Some(FaultKind::Timeout) => Err(err(
                operation,
                resource,
                CloudErrorKind::Unavailable,
                "timeout (simulated)",
            )),
            Some(FaultKind::Outage) => Err(err(
                operation,
                resource,
                CloudErrorKind::Unavailable,
                "connection refused (simulated outage)",
            )),
        }
    }

    /// Whether the next call of `operation` at `now` would time out (the
    /// async backend waits before failing it).
    pub fn next_call_times_out(&self, operation: &'static str, now: DateTime<Utc>) -> bool {
        self.faults.iter().any(|f| {
            f.kind == FaultKind::Timeout
                && f.operation.is_none_or(|o| o == operation)
                && match f.when {
                    FaultWhen::Window { from, until } => from <= now && now < until,
                    FaultWhen::NextCalls(n) => n > 0,
                }
        })
    }

    /// DescribeScalableTargets for the `dynamodb` namespace.
    pub fn dynamodb_scalable_targets(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::cloud::ScalableTarget>, CloudError> {
        self.check("DescribeScalableTargets", "dynamodb", now)?;
        Ok(self
            .scalable_targets
            .iter()
            .filter(|t| t.dimension.starts_with("dynamodb:"))
            .cloned()
            .collect())
    }

    /// DescribeScalableTargets for the `ecs` namespace.
    pub fn ecs_scalable_targets(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::cloud::ScalableTarget>, CloudError> {
        self.check("DescribeScalableTargets", "ecs", now)?;
        Ok(self
            .scalable_targets
            .iter()
            .filter(|t| t.dimension.starts_with("ecs:"))
            .cloned()
            .collect())
    }

    /// The group a simulated ECS service is kept as (its tasks boot as
    /// instances do).
    fn service_key(cluster: &str, service: &str) -> String {
        format!("ecs:{cluster}/{service}")
    }

    /// Adds an ECS service with `desired` tasks RUNNING.
    pub fn add_service(&mut self, cluster: &str, service: &str, desired: u32, now: DateTime<Utc>) {
        self.add_group(
            &Self::service_key(cluster, service),
            desired,
            0,
            u32::MAX,
            now,
        );
    }

    pub fn service(&self, cluster: &str, service: &str) -> Option<&SimGroup> {
        self.groups.get(&Self::service_key(cluster, service))
    }

    pub fn describe_service(
        &mut self,
        cluster: &str,
        service: &str,
        now: DateTime<Utc>,
    ) -> Result<GroupDescription, CloudError> {
        let key = Self::service_key(cluster, service);
        self.check("DescribeServices", &key, now)?;
        let mut d = self.describe_group(&key, now).map_err(|mut e| {
            e.operation = "DescribeServices";
            e
        })?;
        d.name = format!("{cluster}/{service}");
        Ok(d)
    }

    pub fn update_service(
        &mut self,
        cluster: &str,
        service: &str,
        desired: u32,
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        let key = Self::service_key(cluster, service);
        self.check("UpdateService", &key, now)?;
        self.set_desired_capacity(&key, desired, now)
            .map_err(|mut e| {
                e.operation = "UpdateService";
                e
            })
    }

    pub fn describe_table(
        &mut self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<TableDescription, CloudError> {
        self.check("DescribeTable", name, now)?;
        self.advance(now);
        let t = self.tables.get(name).ok_or_else(|| {
            err(
                "DescribeTable",
                name,
                CloudErrorKind::NotFound,
                "ResourceNotFoundException: Requested resource not found (simulated)",
            )
        })?;
        let index = |(n, r): (&String, &SimResource)| IndexDescription {
            name: n.clone(),
            status: r.status().to_string(),
            provisioned: Some(r.provisioned()),
            decreases_today: Some(r.ledger.used_today(now) as u64),
            last_decrease: r.last_decrease,
            warm: None,
            on_demand_max: None,
        };
        Ok(TableDescription {
            name: name.to_string(),
            status: if t.updating() { "UPDATING" } else { "ACTIVE" }.to_string(),
            billing_mode: BillingMode::Provisioned,
            provisioned: Some(t.base.provisioned()),
            indexes: t.indexes.iter().map(index).collect(),
            decreases_today: Some(t.base.ledger.used_today(now) as u64),
            last_increase: t.base.last_increase,
            last_decrease: t.base.last_decrease,
            warm: None,
            on_demand_max: None,
        })
    }

    /// UpdateTable for a table's or an index's provisioned throughput.
    pub fn update_capacity(
        &mut self,
        table: &str,
        index: Option<&str>,
        to: Throughput,
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        let member = MemberCapacity {
            index: index.map(str::to_string),
            capacity: to,
        };
        self.update_table(table, std::slice::from_ref(&member), now)
    }

    /// UpdateTable for the provisioned throughput of a table and/or its
    /// indexes: all or nothing. Refused while the table or an index is
    /// UPDATING; each member that decreases spends one of its own
    /// decreases, and one refused (LimitExceeded) refuses the call. The
    /// members take effect together, after the delay of the slowest.
    pub fn update_table(
        &mut self,
        table: &str,
        members: &[MemberCapacity],
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        const OP: &str = "UpdateTable";
        self.check(OP, table, now)?;
        self.advance(now);
        let rule = self.settings.decrease_rule;
        let t = self.tables.get_mut(table).ok_or_else(|| {
            err(
                OP,
                table,
                CloudErrorKind::NotFound,
                "ResourceNotFoundException (simulated)",
            )
        })?;
        if t.updating() {
            return Err(err(
                OP,
                table,
                CloudErrorKind::ResourceBusy,
                "ResourceInUseException: table is being updated (simulated)",
            ));
        }
        let mut new_high = false;
        for m in members {
            let r = t.resource(m.index.as_deref()).ok_or_else(|| {
                err(
                    OP,
                    table,
                    CloudErrorKind::Other,
                    "ValidationException: no such index (simulated)",
                )
            })?;
            check_member(r, m.capacity, now, rule)
                .map_err(|(kind, why)| err(OP, table, kind, why))?;
            new_high |= m.capacity.read > r.highest.read || m.capacity.write > r.highest.write;
        }
        if members.is_empty() {
            return Err(err(
                OP,
                table,
                CloudErrorKind::Other,
                "ValidationException: nothing to update (simulated)",
            ));
        }
        for m in members {
            let Some(r) = t.resource_mut(m.index.as_deref()) else {
                continue;
            };
            let (to, cur) = (m.capacity, r.provisioned());
            if to.read < cur.read || to.write < cur.write {
                r.ledger.roll(now);
                r.ledger.record(now);
                r.last_decrease = Some(now);
            }
            if to.read > cur.read || to.write > cur.write {
                r.last_increase = Some(now);
            }
            r.highest = Throughput {
                read: r.highest.read.max(to.read),
                write: r.highest.write.max(to.write),
            };
        }
        // Drawn only for an accepted update, once the borrow of the table ends.
        let delay = delta(self.draw_delay(new_high));
        if let Some(t) = self.tables.get_mut(table) {
            for m in members {
                if let Some(r) = t.resource_mut(m.index.as_deref()) {
                    r.pending = Some((now + delay, m.capacity));
                }
            }
        }
        Ok(())
    }

    pub fn describe_group(
        &mut self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<GroupDescription, CloudError> {
        self.check("DescribeAutoScalingGroups", name, now)?;
        self.advance(now);
        let g = self.groups.get(name).ok_or_else(|| {
            err(
                "DescribeAutoScalingGroups",
                name,
                CloudErrorKind::NotFound,
                "no such group (simulated)",
            )
        })?;
        Ok(GroupDescription {
            name: name.to_string(),
            desired: g.desired,
            min: g.min,
            max: g.max,
            instances: g
                .instances
                .iter()
                .map(|i| InstanceDescription {
                    id: i.id.clone(),
                    lifecycle_state: if i.in_service { "InService" } else { "Pending" }.to_string(),
                    health: "Healthy".to_string(),
                    availability_zone: Some("sim-1a".to_string()),
                })
                .collect(),
        })
    }

    pub fn set_desired_capacity(
        &mut self,
        name: &str,
        desired: u32,
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        const OP: &str = "SetDesiredCapacity";
        self.check(OP, name, now)?;
        self.advance(now);
        let Some(g) = self.groups.get(name) else {
            return Err(err(
                OP,
                name,
                CloudErrorKind::NotFound,
                "no such group (simulated)",
            ));
        };
        if desired < g.min || desired > g.max {
            return Err(err(
                OP,
                name,
                CloudErrorKind::Other,
                "ValidationError: desired capacity outside [min, max] (simulated)",
            ));
        }
        let have = g.instances.len() as u32;
        let mut pool = g.warm_pool;
        let mut launched = Vec::new();
        let mut refills = Vec::new();
        for _ in have..desired {
            let boot = if pool > 0 {
                pool -= 1;
                refills.push(now + delta(self.draw_boot(self.settings.boot_time)));
                self.draw_boot(self.settings.warm_boot_time)
            } else {
                self.draw_boot(self.settings.boot_time)
            };
            launched.push(SimInstance {
                id: self.new_instance_id(),
                launched_at: now,
                ready_at: now + delta(boot),
                in_service: false,
            });
        }
        let g = self.groups.get_mut(name).expect("checked above");
        g.warm_pool = pool;
        g.refills.extend(refills);
        g.instances.extend(launched);
        // Scale-in: pending instances go first, then the newest.
        while g.instances.len() as u32 > desired {
            let pos = g
                .instances
                .iter()
                .rposition(|i| !i.in_service)
                .unwrap_or(g.instances.len() - 1);
            g.instances.remove(pos);
        }
        g.desired = desired;
        Ok(())
    }

    pub fn group_of_instance(
        &mut self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, CloudError> {
        self.check("DescribeAutoScalingInstances", instance_id, now)?;
        Ok(self
            .groups
            .iter()
            .find(|(_, g)| g.instances.iter().any(|i| i.id == instance_id))
            .map(|(n, _)| n.clone()))
    }

    /// PutMetricData.
    pub fn put_metric_data(
        &mut self,
        namespace: &str,
        datums: &[Datum],
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        self.check("PutMetricData", namespace, now)?;
        self.metrics.put(namespace, datums);
        Ok(())
    }

    /// GetMetricData of `AWS/DynamoDB` minute sums.
    pub fn dynamodb_minute_sums(
        &mut self,
        metrics: &[DynamoMetric],
        start: i64,
        end: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<BTreeMap<i64, f64>>, CloudError> {
        self.check("GetMetricData", "AWS/DynamoDB", now)?;
        Ok(self
            .metrics
            .dynamodb_minute_sums(metrics, start, end, now.timestamp()))
    }

    pub fn ensure_coordination_table(
        &mut self,
        table: &str,
        now: DateTime<Utc>,
    ) -> Result<InitReport, CloudError> {
        self.check("CreateTable", table, now)?;
        let created = !self.coordination.contains_key(table);
        self.coordination.entry(table.to_string()).or_default();
        Ok(InitReport {
            created,
            ttl_turned_on: created,
        })
    }

    pub(crate) fn coordination_table(
        &mut self,
        operation: &'static str,
        table: &str,
        now: DateTime<Utc>,
    ) -> Result<&mut SimCoordinationTable, CloudError> {
        self.check(operation, table, now)?;
        self.coordination.get_mut(table).ok_or_else(|| {
            err(
                operation,
                table,
                CloudErrorKind::NotFound,
                "ResourceNotFoundException: Requested resource not found (simulated)",
            )
        })
    }

    pub fn put_heartbeat(
        &mut self,
        table: &str,
        cluster: &str,
        heartbeat: &Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<(), CloudError> {
        self.coordination_table("PutItem", table, now)?
            .put_heartbeat(cluster, heartbeat);
        Ok(())
    }

    pub fn query_heartbeats(
        &mut self,
        table: &str,
        cluster: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Heartbeat>, CloudError> {
        Ok(self
            .coordination_table("Query", table, now)?
            .query_heartbeats(cluster, now.timestamp_millis()))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn take_or_renew_lease(
        &mut self,
        table: &str,
        cluster: &str,
        me: &str,
        held: Option<Lease>,
        now_ms: i64,
        lease_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, CloudError> {
        Ok(self
            .coordination_table("UpdateItem", table, now)?
            .take_or_renew(cluster, me, held, now_ms, lease_ms))
    }

    pub fn verify_lease(
        &mut self,
        table: &str,
        cluster: &str,
        me: &str,
        lease: Lease,
        must_outlive_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, CloudError> {
        Ok(self.coordination_table("UpdateItem", table, now)?.verify(
            cluster,
            me,
            lease,
            must_outlive_ms,
        ))
    }
}

#[cfg(test)]
mod tests;
