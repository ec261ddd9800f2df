//! Keeps the latest view of each configured table and group by polling the
//! backend. Logs what changed, not what stayed the same; a failing resource
//! is logged when it starts and stops failing.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::members::Membership;
use super::{CloudBackend, CloudError, GroupDescription, TableDescription};
use crate::clock::SharedClock;

#[derive(Debug, Clone, Serialize)]
pub struct Tracked<T> {
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
pub struct CloudView {
    pub tables: BTreeMap<String, Tracked<TableDescription>>,
    pub group: Option<Tracked<GroupDescription>>,
    /// Instance times and membership events of the group.
    pub members: Membership,
}

pub type SharedView = Arc<RwLock<CloudView>>;

pub fn read(view: &SharedView) -> std::sync::RwLockReadGuard<'_, CloudView> {
    view.read().unwrap_or_else(|p| p.into_inner())
}

fn write(view: &SharedView) -> std::sync::RwLockWriteGuard<'_, CloudView> {
    view.write().unwrap_or_else(|p| p.into_inner())
}

/// Polls every table every `interval` until `shutdown`.
pub async fn track_tables<C: CloudBackend>(
    cloud: Arc<C>,
    tables: Vec<String>,
    interval: Duration,
    view: SharedView,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut ticker = Ticker::new(interval);
    while ticker.tick(&shutdown).await {
        for name in &tables {
            let Some(result) = until_shutdown(&shutdown, cloud.describe_table(name)).await else {
                return;
            };
            store_table(&view, name, result, clock.now());
        }
    }
}

/// A steady poll interval that ends when `shutdown` fires.
struct Ticker(tokio::time::Interval);

impl Ticker {
    fn new(interval: Duration) -> Ticker {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticker(ticker)
    }

    /// Waits for the next tick; false once `shutdown` fired.
    async fn tick(&mut self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = self.0.tick() => true,
        }
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

/// Records one DescribeTable result in the view, logging what changed.
pub fn store_table(
    view: &SharedView,
    name: &str,
    result: Result<TableDescription, CloudError>,
    now: DateTime<Utc>,
) {
    let mut v = write(view);
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

/// Polls the group every `interval` until `shutdown`.
pub async fn track_group<C: CloudBackend>(
    cloud: Arc<C>,
    group: String,
    interval: Duration,
    view: SharedView,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut ticker = Ticker::new(interval);
    while ticker.tick(&shutdown).await {
        let Some(result) = until_shutdown(&shutdown, cloud.describe_group(&group)).await else {
            return;
        };
        store_group(&view, result, clock.now());
    }
}

/// Records one DescribeAutoScalingGroups result, logging membership changes.
pub fn store_group(
    view: &SharedView,
    result: Result<GroupDescription, CloudError>,
    now: DateTime<Utc>,
) {
    let mut v = write(view);
    if let Ok(desc) = &result {
        for e in v.members.update(desc, now) {
            tracing::info!(group = %desc.name, instance = %e.instance, change = ?e.change, state = %e.lifecycle_state, "Group membership changed.");
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
                    kind = ?err.kind,
                    error = %err.message,
                    "AWS call failed; keeping the last known state and retrying."
                );
            }
            entry.last_error = Some(err);
        }
    }
}
