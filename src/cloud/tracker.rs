//! Keeps the latest view of each configured table and group by polling the
//! backend, and publishes it. Logs what changed, not what stayed the same;
//! a failing resource is logged when it starts and stops failing.
//!
//! Polls fall 125 ms past the clock's whole seconds, between the deciders'
//! quarter-second ticks, so a decision never races a poll. A table or index
//! that is not ACTIVE (an update rapidscale or someone else made) is
//! followed every second until it is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::members::Membership;
use super::{Capacity, CloudError, FleetId, GroupDescription, ScalableTarget, TableDescription};
use crate::clock::SharedClock;
use crate::slot::Slot;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Tracked<T> {
    pub current: Option<T>,
    pub last_ok: Option<DateTime<Utc>>,
    pub last_error: Option<CloudError>,
}

impl<T> Default for Tracked<T> {
    fn default() -> Self {
        Self {
            current: None,
            last_ok: None,
            last_error: None,
        }
    }
}

/// The latest known state of every tracked resource.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CloudView {
    pub tables: BTreeMap<String, Tracked<TableDescription>>,
    pub group: Option<Tracked<GroupDescription>>,
    /// Instance times and membership events of the group.
    pub members: Membership,
    /// DynamoDB capacities registered with Application Auto Scaling.
    pub auto_scaling: Tracked<Vec<ScalableTarget>>,
    /// ECS services by `cluster/service`, with their tasks' membership.
    pub services: BTreeMap<String, TrackedFleet>,
    /// ECS services registered with Application Auto Scaling (Service
    /// Auto Scaling).
    pub ecs_auto_scaling: Tracked<Vec<ScalableTarget>>,
}

/// A fleet other than the group: its description and membership.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct TrackedFleet {
    pub desc: Tracked<GroupDescription>,
    pub members: Membership,
}

impl CloudView {
    /// A fleet's newest description and its membership.
    pub(crate) fn fleet(&self, id: &FleetId) -> Option<(&Tracked<GroupDescription>, &Membership)> {
        match id {
            FleetId::Group { .. } => self.group.as_ref().map(|g| (g, &self.members)),
            FleetId::Service { .. } => self.services.get(&id.key()).map(|f| (&f.desc, &f.members)),
        }
    }

    /// Why rapidscale may not apply to an ECS service: Service Auto Scaling
    /// manages its desired count, or that cannot be told yet.
    pub(crate) fn ecs_auto_scaling(&self, cluster: &str, service: &str) -> Option<String> {
        let targets = match &self.ecs_auto_scaling.current {
            Some(t) => t,
            None => return Some(not_read(&self.ecs_auto_scaling, "Service Auto Scaling")),
        };
        let id = ScalableTarget::service_resource_id(cluster, service);
        // The resource id names the cluster by name; an ARN given in the
        // config matches on its last part.
        let short = ScalableTarget::service_resource_id(
            cluster.rsplit('/').next().unwrap_or(cluster),
            service,
        );
        targets
            .iter()
            .any(|t| t.resource_id == id || t.resource_id == short)
            .then(|| {
                format!(
                    "registered with Application Auto Scaling (ecs:service:DesiredCount): Service Auto Scaling sizes {short}; deregister the scalable target to let rapidscale apply"
                )
            })
    }

    /// Why rapidscale may not apply to a table (`index` None) or index:
    /// Application Auto Scaling manages it, or that cannot be told yet.
    pub(crate) fn aws_auto_scaling(&self, table: &str, index: Option<&str>) -> Option<String> {
        let targets = match &self.auto_scaling.current {
            Some(t) => t,
            None => return Some(not_read(&self.auto_scaling, "Application Auto Scaling")),
        };
        let id = ScalableTarget::resource_id_of(table, index);
        let dimensions: Vec<&str> = targets
            .iter()
            .filter(|t| t.resource_id == id)
            .map(|t| t.dimension.rsplit(':').next().unwrap_or(&t.dimension))
            .collect();
        (!dimensions.is_empty()).then(|| {
            format!(
                "registered with Application Auto Scaling ({}): AWS scales {id}; deregister the scalable targets to let rapidscale apply",
                dimensions.join(", ")
            )
        })
    }
}

/// Why registrations not read yet (or not readable) keep rapidscale from
/// applying: `who` may manage the resource for all it can tell.
fn not_read(t: &Tracked<Vec<ScalableTarget>>, who: &str) -> String {
    match &t.last_error {
        Some(e) if e.kind == super::CloudErrorKind::AccessDenied => format!("cannot tell whether {who} manages it: access denied (grant application-autoscaling:DescribeScalableTargets)"),
        Some(e) => format!("cannot tell whether {who} manages it ({:?})", e.kind),
        None => format!("{who} not read yet"),
    }
}

/// How often Application Auto Scaling's registrations are read.
pub(crate) const AUTO_SCALING_EVERY: Duration = Duration::from_secs(60);

/// How often a table that is not ACTIVE is described.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Where polls fall within a second of the clock.
const POLL_PHASE_MS: u32 = 125;

/// Whether a table and all its indexes are ACTIVE.
pub(crate) fn is_active(t: &TableDescription) -> bool {
    t.status == "ACTIVE" && t.indexes.iter().all(|i| i.status == "ACTIVE")
}

/// Polls every table every `interval` (every second while one is not
/// ACTIVE) until `shutdown`.
pub(crate) async fn track_tables<C: Capacity>(
    cloud: Arc<C>,
    tables: Vec<String>,
    interval: Duration,
    view: Slot<CloudView>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut ticker = Ticker::new(interval, &clock);
    let mut auto_scaling_read: Option<DateTime<Utc>> = None;
    while ticker.tick(&shutdown).await {
        let mut failed = false;
        let now = clock.now();
        let due = auto_scaling_read
            .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= AUTO_SCALING_EVERY);
        if due {
            let Some(result) = until_shutdown(&shutdown, cloud.dynamodb_scalable_targets()).await
            else {
                return;
            };
            if result.is_ok() {
                auto_scaling_read = Some(now);
            }
            store_auto_scaling(&view, result, clock.now());
        }
        for name in &tables {
            let Some(result) = until_shutdown(&shutdown, cloud.describe_table(name)).await else {
                return;
            };
            failed |= result.is_err();
            store_table(&view, name, result, clock.now());
        }
        let changing = view.read(|v| {
            tables.iter().any(|t| {
                v.tables
                    .get(t)
                    .and_then(|t| t.current.as_ref())
                    .is_some_and(|d| !is_active(d))
            })
        });
        ticker.outcome(failed, changing);
    }
}

/// Longest wait between polls while AWS keeps failing.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before the next poll: the interval while polls succeed; after
/// `failures` failed polls in a row, the interval doubled that many times
/// (at most `MAX_BACKOFF`, never less than the interval), of which a
/// random half is jitter, so a fleet of sidecars does not retry in step.
pub(crate) fn poll_delay(interval: Duration, failures: u32, jitter: f64) -> Duration {
    if failures == 0 {
        return interval;
    }
    let full = interval
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF)
        .max(interval);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The poll loop's pacing: a steady interval, backing off while polls fail;
/// ends when `shutdown` fires.
struct Ticker {
    interval: Duration,
    failures: u32,
    next: tokio::time::Instant,
}

impl Ticker {
    /// The first poll at the next [`POLL_PHASE_MS`] of the clock.
    fn new(interval: Duration, clock: &SharedClock) -> Ticker {
        let ms = clock.now().timestamp_subsec_millis();
        let wait = (1000 + POLL_PHASE_MS - ms.min(999)) % 1000;
        Ticker {
            interval,
            failures: 0,
            next: tokio::time::Instant::now() + Duration::from_millis(wait as u64),
        }
    }

    /// Waits for the next poll; false once `shutdown` fired.
    async fn tick(&mut self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep_until(self.next) => true,
        }
    }

    /// Whether the poll just made failed, and whether a resource is
    /// changing (followed every second): sets the time of the next poll.
    fn outcome(&mut self, failed: bool, changing: bool) {
        self.failures = if failed { self.failures + 1 } else { 0 };
        let delay = if changing && !failed {
            FOLLOW_EVERY.min(self.interval)
        } else {
            poll_delay(self.interval, self.failures, fastrand::f64())
        };
        // Steady pace while healthy (a slow call does not shift the grid
        // more than it must), the full backoff after a failure.
        self.next = if failed {
            tokio::time::Instant::now() + delay
        } else {
            (self.next + delay).max(tokio::time::Instant::now())
        };
    }
}

/// `call`'s result, or None when `shutdown` fires first (a describe only reads).
async fn until_shutdown<T>(
    shutdown: &CancellationToken,
    call: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        r = call => Some(r),
    }
}

/// Records one DescribeScalableTargets result, logging what changed.
pub(crate) fn store_auto_scaling(
    view: &Slot<CloudView>,
    result: Result<Vec<ScalableTarget>, CloudError>,
    now: DateTime<Utc>,
) {
    view.update(|v| {
        apply(&mut v.auto_scaling, result, now, |old, new| {
            if old != Some(new) && !new.is_empty() {
                let ids: BTreeSet<&str> = new.iter().map(|t| t.resource_id.as_str()).collect();
                tracing::info!(
                    targets = %ids.into_iter().collect::<Vec<_>>().join(", "),
                    "DynamoDB capacities registered with Application Auto Scaling."
                );
            }
        })
    });
}

/// Records one DescribeTable result in the view, logging what changed.
pub(crate) fn store_table(
    view: &Slot<CloudView>,
    name: &str,
    result: Result<TableDescription, CloudError>,
    now: DateTime<Utc>,
) {
    view.update(|v| store_table_in(v, name, result, now));
}

fn store_table_in(
    v: &mut CloudView,
    name: &str,
    result: Result<TableDescription, CloudError>,
    now: DateTime<Utc>,
) {
    let entry = v.tables.entry(name.to_string()).or_default();
    apply(entry, result, now, |old, new| {
        let changed = old.is_none_or(|o| {
            o.provisioned != new.provisioned || o.status != new.status || o.indexes != new.indexes
        });
        if changed {
            tracing::info!(
                table = %new.name,
                status = %new.status,
                read = new.provisioned.as_ref().map(|p| p.read),
                write = new.provisioned.as_ref().map(|p| p.write),
                indexes = new.indexes.len(),
                "Table capacity observed."
            );
        }
    });
}

/// Polls an ECS service every `interval` (and Service Auto Scaling's
/// registrations every minute) until `shutdown`.
pub(crate) async fn track_service<C: Capacity>(
    cloud: Arc<C>,
    fleet: FleetId,
    interval: Duration,
    view: Slot<CloudView>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut ticker = Ticker::new(interval, &clock);
    let mut auto_scaling_read: Option<DateTime<Utc>> = None;
    while ticker.tick(&shutdown).await {
        let now = clock.now();
        if auto_scaling_read
            .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= AUTO_SCALING_EVERY)
        {
            let Some(result) = until_shutdown(&shutdown, cloud.ecs_scalable_targets()).await else {
                return;
            };
            if result.is_ok() {
                auto_scaling_read = Some(now);
            }
            let at = clock.now();
            view.update(|v| apply(&mut v.ecs_auto_scaling, result, at, |_, _| {}));
        }
        let Some(result) = until_shutdown(&shutdown, fleet.describe(cloud.as_ref())).await else {
            return;
        };
        ticker.outcome(result.is_err(), false);
        store_fleet(&view, &fleet, result, clock.now());
    }
}

/// Records one description of a fleet (the group, or a service).
pub(crate) fn store_fleet(
    view: &Slot<CloudView>,
    fleet: &FleetId,
    result: Result<GroupDescription, CloudError>,
    now: DateTime<Utc>,
) {
    match fleet {
        FleetId::Group { .. } => store_group(view, result, now),
        FleetId::Service { .. } => view.update(|v| {
            let entry = v.services.entry(fleet.key()).or_default();
            if let Ok(desc) = &result {
                for e in entry.members.update(desc, now) {
                    tracing::info!(service = %desc.name, task = %e.instance, change = e.change.as_str(), state = %e.lifecycle_state, "Service tasks changed.");
                }
            }
            apply(&mut entry.desc, result, now, |old, new| {
                if old.is_none_or(|o| o.desired != new.desired || o.instances.len() != new.instances.len()) {
                    tracing::info!(service = %new.name, desired = new.desired, tasks = new.instances.len(), running = new.serving(), "Service observed.");
                }
            });
        }),
    }
}

/// Polls the group every `interval` until `shutdown`.
pub(crate) async fn track_group<C: Capacity>(
    cloud: Arc<C>,
    group: String,
    interval: Duration,
    view: Slot<CloudView>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut ticker = Ticker::new(interval, &clock);
    while ticker.tick(&shutdown).await {
        let Some(result) = until_shutdown(&shutdown, cloud.describe_group(&group)).await else {
            return;
        };
        ticker.outcome(result.is_err(), false);
        store_group(&view, result, clock.now());
    }
}

/// Records one DescribeAutoScalingGroups result, logging membership changes.
pub(crate) fn store_group(
    view: &Slot<CloudView>,
    result: Result<GroupDescription, CloudError>,
    now: DateTime<Utc>,
) {
    view.update(|v| store_group_in(v, result, now));
}

fn store_group_in(
    v: &mut CloudView,
    result: Result<GroupDescription, CloudError>,
    now: DateTime<Utc>,
) {
    if let Ok(desc) = &result {
        for e in v.members.update(desc, now) {
            tracing::info!(group = %desc.name, instance = %e.instance, change = e.change.as_str(), state = %e.lifecycle_state, "Group membership changed.");
        }
    }
    let entry = v.group.get_or_insert_with(Tracked::default);
    apply(entry, result, now, |old, new| {
        if old.is_none_or(|o| {
            o.desired != new.desired
                || o.min != new.min
                || o.max != new.max
                || o.instances.len() != new.instances.len()
        }) {
            tracing::info!(
                group = %new.name,
                desired = new.desired,
                min = new.min,
                max = new.max,
                instances = new.instances.len(),
                serving = new.serving(),
                "Group observed."
            );
        }
    });
}

/// Records one poll result; `on_change(old, new)` runs for every success.
fn apply<T>(
    entry: &mut Tracked<T>,
    result: Result<T, CloudError>,
    now: DateTime<Utc>,
    on_change: impl FnOnce(Option<&T>, &T),
) {
    match result {
        Ok(new) => {
            if let Some(err) = entry.last_error.take() {
                tracing::info!(resource = %err.resource, "AWS answers again.");
            }
            on_change(entry.current.as_ref(), &new);
            entry.current = Some(new);
            entry.last_ok = Some(now);
        }
        Err(err) => {
            let first = entry.last_error.as_ref().map(|e| e.kind) != Some(err.kind);
            if first {
                tracing::warn!(
                    operation = err.operation,
                    resource = %err.resource,
                    kind = err.kind.as_str(),
                    error = %err.message,
                    "AWS call failed; keeping the last known state and retrying."
                );
            }
            entry.last_error = Some(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::cloud::Throughput;
    use crate::sim::{cloud::SimCloud, Fault, FaultKind, FaultWhen, SimSettings, SimWorld};

    #[test]
    fn the_delay_doubles_while_polls_fail_up_to_the_cap_with_half_jitter() {
        let s = Duration::from_secs(1);
        assert_eq!(poll_delay(s, 0, 0.7), s);
        assert_eq!(poll_delay(s, 1, 1.0), Duration::from_secs(2));
        assert_eq!(poll_delay(s, 1, 0.0), Duration::from_secs(1));
        assert_eq!(poll_delay(s, 3, 1.0), Duration::from_secs(8));
        assert_eq!(poll_delay(s, 10, 1.0), MAX_BACKOFF);
        assert_eq!(poll_delay(s, 40, 0.0), MAX_BACKOFF / 2);
        // An interval above the cap is kept.
        let slow = Duration::from_secs(60);
        assert_eq!(poll_delay(slow, 5, 1.0), slow);
    }

    /// An outage of 5 minutes: the poller backs off instead of calling every
    /// second, and is back to its interval within a backoff of the end.
    #[tokio::test(start_paused = true)]
    async fn an_outage_is_polled_with_backoff_and_recovery_is_seen() {
        let t0 = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
        let clock = Arc::new(TokioClock::starting_at(t0));
        let mut world = SimWorld::new(SimSettings::default());
        world.add_table("posts", Throughput { read: 10, write: 5 }, &[]);
        world.add_fault(Fault {
            kind: FaultKind::Outage,
            operation: None,
            when: FaultWhen::Window {
                from: t0 + chrono::TimeDelta::seconds(10),
                until: t0 + chrono::TimeDelta::seconds(310),
            },
        });
        let cloud = Arc::new(SimCloud::new(world, clock.clone()));
        let view: Slot<CloudView> = Slot::default();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(track_tables(
            cloud.clone(),
            vec!["posts".into()],
            Duration::from_secs(1),
            view.clone(),
            clock.clone(),
            shutdown.clone(),
        ));
        let calls = || {
            cloud
                .world
                .lock()
                .unwrap()
                .calls
                .get("DescribeTable")
                .copied()
                .unwrap_or(0)
        };
        tokio::time::sleep(Duration::from_millis(9_500)).await;
        let before = calls();
        assert!(
            (9..=11).contains(&before),
            "{before} calls in the first 10 s"
        );
        tokio::time::sleep(Duration::from_secs(300)).await;
        let during = calls() - before;
        // Steady polling would make 300 calls; with backoff capped at 30 s
        // (half of it jitter) it is a few dozen at most.
        assert!(during <= 25, "{during} calls during the outage");
        let v = view.read(|v| v.tables["posts"].clone());
        assert!(v.last_error.is_some());
        // Polls fall 125 ms past the second.
        assert_eq!(v.last_ok, Some(t0 + chrono::TimeDelta::milliseconds(9_125)));
        // Back within one capped backoff of the end, then every second.
        tokio::time::sleep(MAX_BACKOFF + Duration::from_secs(1)).await;
        let v = view.read(|v| v.tables["posts"].clone());
        assert!(v.last_error.is_none(), "{v:?}");
        let after = calls();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!((9..=11).contains(&(calls() - after)));
        shutdown.cancel();
        task.await.unwrap();
    }
}
