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
//! - a group's new instances are Pending for `boot_time`, then InService;
//!   each InService instance serves up to `instance_rps` requests/s;
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

use crate::cloud::{
    BillingMode, CloudError, CloudErrorKind, Datum, DynamoMetric, GroupDescription, Heartbeat,
    IndexDescription, InitReport, InstanceDescription, Lease, TableDescription, Throughput,
};
use crate::policy::budget::{DecreaseLedger, DecreaseRule};
use coordination::SimCoordinationTable;
use metrics::{MinuteUse, SimMetrics};

/// How the simulated services behave.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSettings {
    /// From UpdateTable to the new capacity being in effect.
    pub update_delay: Duration,
    /// Seconds of unused provisioned capacity the burst bucket can hold.
    pub burst_seconds: f64,
    /// From a new instance launching to it being InService.
    pub boot_time: Duration,
    /// Requests/s one InService instance can serve.
    pub instance_rps: f64,
    /// DynamoDB's decrease rule (the account's quota).
    pub decrease_rule: DecreaseRule,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            update_delay: Duration::from_secs(15),
            burst_seconds: 300.0,
            boot_time: Duration::from_secs(120),
            instance_rps: 350.0,
            decrease_rule: DecreaseRule::AWS,
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
        }
    }

    pub fn provisioned(&self) -> Throughput {
        Throughput {
            read: self.read.provisioned,
            write: self.write.provisioned,
        }
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
    fn updating(&self) -> bool {
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
    pub in_service: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimGroup {
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
}

fn err(operation: &'static str, resource: &str, kind: CloudErrorKind, message: &str) -> CloudError {
    CloudError {
        operation,
        resource: resource.to_string(),
        kind,
        message: message.to_string(),
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl SimWorld {
    pub fn new(settings: SimSettings) -> Self {
        Self {
            settings,
            tables: BTreeMap::new(),
            groups: BTreeMap::new(),
            faults: Vec::new(),
            next_instance: 1,
            calls: BTreeMap::new(),
            metrics: SimMetrics::default(),
            coordination: BTreeMap::new(),
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
        let boot = delta(self.settings.boot_time);
        for g in self.groups.values_mut() {
            for i in &mut g.instances {
                if !i.in_service && i.launched_at + boot <= now {
                    i.in_service = true;
                }
            }
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
        let burst = self.settings.burst_seconds;
        let served = match self
            .tables
            .get_mut(table)
            .and_then(|t| t.resource_mut(index))
        {
            Some(r) => (r.read.serve(read, burst), r.write.serve(write, burst)),
            None => return (Served::default(), Served::default()),
        };
        self.metrics.record_use(
            table,
            index,
            now.timestamp(),
            MinuteUse {
                consumed_read: served.0.consumed,
                consumed_write: served.1.consumed,
                throttled_read: served.0.throttled,
                throttled_write: served.1.throttled,
            },
        );
        served
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
        const OP: &str = "UpdateTable";
        self.check(OP, table, now)?;
        self.advance(now);
        let delay = delta(self.settings.update_delay);
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
        let r = t.resource_mut(index).ok_or_else(|| {
            err(
                OP,
                table,
                CloudErrorKind::Other,
                "ValidationException: no such index (simulated)",
            )
        })?;
        if to.read == 0 || to.write == 0 {
            return Err(err(
                OP,
                table,
                CloudErrorKind::Other,
                "ValidationException: capacity must be at least 1 (simulated)",
            ));
        }
        let cur = r.provisioned();
        if to == cur {
            return Err(err(
                OP,
                table,
                CloudErrorKind::Other,
                "ValidationException: the provisioned throughput is unchanged (simulated)",
            ));
        }
        let decrease = to.read < cur.read || to.write < cur.write;
        if decrease {
            r.ledger.roll(now);
            if !r.ledger.allowed_at(now, rule) {
                return Err(err(
                    OP,
                    table,
                    CloudErrorKind::LimitExceeded,
                    "LimitExceededException: Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day (simulated)",
                ));
            }
            r.ledger.record(now);
            r.last_decrease = Some(now);
        }
        if to.read > cur.read || to.write > cur.write {
            r.last_increase = Some(now);
        }
        r.pending = Some((now + delay, to));
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
        let mut launched = Vec::new();
        for _ in have..desired {
            launched.push(SimInstance {
                id: self.new_instance_id(),
                launched_at: now,
                in_service: false,
            });
        }
        let g = self.groups.get_mut(name).expect("checked above");
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

    fn coordination_table(
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
