//! The heartbeat loop: every second, write this sidecar's newest sealed
//! seconds; the leader also reads the whole cluster back and publishes the
//! fleet view. The election loop and the actuator's fence are here too.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{fleet_view, reconcile, FleetView, Reconciliation, HEARTBEAT_SECONDS};
use crate::clock::SharedClock;
use crate::cloud::tracker::CloudView;
use crate::cloud::Coordination;
use crate::cloud::Heartbeat;
use crate::config::CoordinationConfig;
use crate::ingest::{lock, SharedStore};
use crate::slot::Slot;

/// What the coordination loop last saw, for the API.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CoordinationStatus {
    pub table: String,
    pub cluster: String,
    pub instance_id: String,
    /// Leader (with its fencing token) or follower.
    pub role: Role,
    /// Heartbeats written.
    pub seq: u64,
    pub fleet: Option<FleetView>,
    pub reconciliation: Option<Reconciliation>,
    /// The last failed call, if the last round failed.
    pub error: Option<String>,
}

pub(crate) struct Heartbeats<C> {
    pub cloud: Arc<C>,
    pub config: CoordinationConfig,
    pub instance_id: String,
    pub grace_s: i64,
    pub store: SharedStore,
    pub view: Slot<CloudView>,
    pub clock: SharedClock,
    pub status: Slot<Option<CoordinationStatus>>,
    pub role: Slot<Role>,
    /// Announced surges: written to the table by whoever received them,
    /// read back by everyone (the leader acts on them).
    pub announcements: crate::announce::Book,
}

impl<C: Coordination> Heartbeats<C> {
    /// This sidecar's heartbeat at `now_ms`: the newest sealed seconds of every stream.
    fn beat(&self, seq: u64, now_ms: i64) -> Heartbeat {
        let now_s = now_ms.div_euclid(1000);
        let upto = now_s - self.grace_s;
        let store = lock(&self.store);
        let counts = store
            .stream_ids()
            .map(|id| {
                let values = store
                    .recent(id, upto, HEARTBEAT_SECONDS)
                    .into_iter()
                    .map(|v| (!v.is_nan()).then_some(v))
                    .collect();
                (store.summary(id).name, values)
            })
            .collect();
        let lifecycle = self.view.read(|v| {
            v.group
                .as_ref()
                .and_then(|g| g.current.as_ref())
                .and_then(|g| g.instances.iter().find(|i| i.id == self.instance_id))
                .map_or_else(|| "unknown".to_string(), |i| i.lifecycle_state.clone())
        });
        Heartbeat {
            instance_id: self.instance_id.clone(),
            lifecycle,
            seq,
            sent_ms: now_ms,
            first_second: upto - HEARTBEAT_SECONDS as i64,
            counts,
        }
    }

    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq = 0;
        let (table, cluster) = (self.config.table.clone(), self.config.cluster.clone());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            seq += 1;
            let now_ms = self.clock.now().timestamp_millis();
            let beat = self.beat(seq, now_ms);
            // Everyone writes; only the leader reads the cluster back.
            let leads = matches!(self.role.get(), Role::Leader { .. });
            let round = async {
                self.cloud.put_heartbeat(&table, &cluster, &beat).await?;
                if leads {
                    self.cloud
                        .query_heartbeats(&table, &cluster)
                        .await
                        .map(Some)
                } else {
                    Ok(None)
                }
            };
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = round => r,
            };
            let mut status = CoordinationStatus {
                table: table.clone(),
                cluster: cluster.clone(),
                instance_id: self.instance_id.clone(),
                role: self.role.get(),
                seq,
                fleet: None,
                reconciliation: None,
                error: None,
            };
            match result {
                Ok(None) => {}
                Ok(Some(beats)) => {
                    let now_ms = self.clock.now().timestamp_millis();
                    // Beats are written once a second, each sidecar on its own
                    // phase: the second before the newest is in everyone's beat.
                    let second = now_ms.div_euclid(1000) - self.grace_s - 2;
                    let stale_ms = self.config.stale_after.as_millis() as i64;
                    let fleet = fleet_view(&beats, now_ms, stale_ms, second);
                    let in_service: Option<Vec<String>> = self.view.read(|v| {
                        v.group.as_ref().and_then(|g| g.current.as_ref()).map(|g| {
                            g.instances
                                .iter()
                                .filter(|i| i.lifecycle_state == "InService")
                                .map(|i| i.id.clone())
                                .collect()
                        })
                    });
                    status.reconciliation = in_service.map(|ids| reconcile(&ids, &fleet));
                    if !fleet.silent.is_empty() {
                        tracing::warn!(
                            silent = fleet.silent.join(", "),
                            "Sidecars are silent: fleet demand is estimated."
                        );
                    }
                    status.fleet = Some(fleet);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Coordination round failed.");
                    status.error = Some(e.to_string());
                    // Keep the last fleet view visible, marked by the error.
                    if let Some(prev) = self.status.get() {
                        status.fleet = prev.fleet;
                        status.reconciliation = prev.reconciliation;
                    }
                }
            }
            self.status.set(Some(status));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.sync_announcements(&table, &cluster, seq) => {}
            }
        }
    }

    /// Writes the announcements received here; every
    /// [`ANNOUNCEMENTS_READ_EVERY`] rounds reads the cluster's back.
    async fn sync_announcements(&self, table: &str, cluster: &str, seq: u64) {
        let book = &self.announcements;
        let mut unsynced = book.take_unsynced();
        while let Some(a) = unsynced.first() {
            let item = crate::cloud::AnnouncementItem {
                id: a.id.clone(),
                body: serde_json::to_string(a).unwrap_or_default(),
                expires_at_s: a.end().timestamp() + 86_400,
            };
            if let Err(e) = self.cloud.put_announcement(table, cluster, &item).await {
                tracing::warn!(error = %e, "Cannot write an announcement to the coordination table; retrying.");
                book.return_unsynced(unsynced);
                return;
            }
            unsynced.remove(0);
        }
        if seq % ANNOUNCEMENTS_READ_EVERY != 1 {
            return;
        }
        match self.cloud.query_announcements(table, cluster).await {
            Ok(items) => {
                let read = items
                    .iter()
                    .filter_map(|i| serde_json::from_str(&i.body).ok())
                    .collect();
                if book.merge(read, self.clock.now()) {
                    tracing::info!("Announcements read from the coordination table.");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot read the announcements back."),
        }
    }
}

/// Heartbeat rounds between two reads of the cluster's announcements.
const ANNOUNCEMENTS_READ_EVERY: u64 = 2;

/// This sidecar's place in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Another sidecar holds the lease (or none could be taken yet).
    Follower,
    Leader {
        fencing: u64,
        until_ms: i64,
    },
}

impl Role {
    /// Whether this sidecar may act at `now_ms`: it holds the lease, outside
    /// the skew margin of its end.
    pub fn may_act(&self, now_ms: i64) -> bool {
        match *self {
            Role::Leader { fencing, until_ms } => {
                super::Lease { fencing, until_ms }.may_act(now_ms)
            }
            Role::Follower => false,
        }
    }
}

/// The actuator's check before every AWS call.
pub(crate) struct Fence<C> {
    pub cloud: Arc<C>,
    pub table: String,
    pub cluster: String,
    pub instance_id: String,
    pub role: Slot<Role>,
}

impl<C: Coordination> Fence<C> {
    /// The fencing token to act under, once a conditional write confirmed
    /// the lease is still ours; otherwise why not.
    pub(crate) async fn admit(&self, now_ms: i64) -> Result<u64, String> {
        let Role::Leader { fencing, until_ms } = self.role.get() else {
            return Err("follower: the leader acts".into());
        };
        let lease = super::Lease { fencing, until_ms };
        if !lease.may_act(now_ms) {
            return Err("the lease is about to end: not acting".into());
        }
        match self
            .cloud
            .verify_lease(
                &self.table,
                &self.cluster,
                &self.instance_id,
                lease,
                now_ms + super::SKEW_MARGIN_MS,
            )
            .await
        {
            Ok(true) => Ok(fencing),
            Ok(false) => {
                self.role.set(Role::Follower);
                Err(format!("the lease (fencing {fencing}) is no longer ours"))
            }
            Err(e) => Err(format!("cannot verify the lease: {e}")),
        }
    }
}

/// Takes or renews the lease every `renew_every`.
pub(crate) struct Election<C> {
    pub cloud: Arc<C>,
    pub table: String,
    pub cluster: String,
    pub instance_id: String,
    pub lease: Duration,
    pub renew_every: Duration,
    pub clock: SharedClock,
    pub role: Slot<Role>,
}

impl<C: Coordination> Election<C> {
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.renew_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let now_ms = self.clock.now().timestamp_millis();
            let held = match self.role.get() {
                Role::Leader { fencing, until_ms } if until_ms > now_ms => {
                    Some(super::Lease { fencing, until_ms })
                }
                _ => None,
            };
            let attempt = self.cloud.take_or_renew_lease(
                &self.table,
                &self.cluster,
                &self.instance_id,
                held,
                now_ms,
                self.lease.as_millis() as i64,
            );
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = attempt => r,
            };
            let next = match result {
                Ok(Some(l)) => {
                    if held.is_none() {
                        tracing::info!(fencing = l.fencing, "This sidecar is the leader.");
                    }
                    Role::Leader {
                        fencing: l.fencing,
                        until_ms: l.until_ms,
                    }
                }
                Ok(None) => {
                    if held.is_some() {
                        tracing::warn!("The lease was taken by another sidecar: following.");
                    }
                    Role::Follower
                }
                Err(e) => {
                    // Keep what we hold: `may_act` stops us before it ends.
                    tracing::warn!(error = %e, "Cannot reach the lease.");
                    self.role.get()
                }
            };
            self.role.set(next);
        }
    }
}

/// Own demand x `factor` is the fleet's; `estimated` when a sidecar is silent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct FleetScale {
    pub factor: f64,
    pub estimated: bool,
}

/// The fleet's total of the newest second every sidecar reported, over this
/// sidecar's own value of that second, for the requests stream (default:
/// the first stream).
pub(crate) fn fleet_scale(
    status: Option<&CoordinationStatus>,
    store: &crate::series::SeriesStore,
    requests_stream: Option<&str>,
) -> Option<FleetScale> {
    let fleet = status?.fleet.as_ref()?;
    let stream = match requests_stream {
        Some(s) => s.to_string(),
        None => store.stream_ids().next().map(|id| store.summary(id).name)?,
    };
    let total = *fleet.totals.get(&stream)?;
    let id = store.id(&stream)?;
    let own = store
        .seconds(id, 60)
        .into_iter()
        .find(|(s, _)| *s == fleet.second)
        .map(|(_, p)| p.value as f64)
        .filter(|v| *v > 0.0)?;
    Some(FleetScale {
        factor: total / own,
        estimated: fleet.estimated,
    })
}
