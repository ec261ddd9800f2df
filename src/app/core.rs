//! The deciding half of the daemon, built the same way for the daemon, the
//! demo and the replay: the store, the board of published snapshots, the
//! audit log and decrease budget, the metered cloud, the actuator, and the
//! tasks that track AWS, coordinate, read CloudWatch and decide.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::actuator::{Actuator, RetryPolicy};
use crate::audit::{AuditLog, Durability};
use crate::board::Board;
use crate::clock::SharedClock;
use crate::cloud::metered::{CallMetrics, Metered};
use crate::cloud::{tracker, Capacity, CloudBackend};
use crate::cloudwatch::watch::{initial_calibration, Watcher};
use crate::cloudwatch::Publisher;
use crate::config::{AsgConfig, Config, Mode};
use crate::coord::task::{Election, Fence, Heartbeats, Role};
use crate::decide::group::GroupDecider;
use crate::decide::run::{DecideLoop, Inputs};
use crate::decide::table::TableDecider;
use crate::ingest::SharedStore;
use crate::mode::ModeSwitch;
use crate::series::{SeriesStore, StoreConfig};
use crate::slot::Slot;
use crate::state::BudgetStore;

/// Where the audit log and the decrease budget live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// `state_dir`, fsynced: the daemon.
    Durable,
    /// The audit log buffered in `state_dir`, the budget in memory: a replay.
    Replay,
}

/// The coordination parts, once this sidecar's instance id is known.
struct Coordinated<C> {
    instance_id: String,
    fence: Arc<Fence<Metered<C>>>,
}

pub(crate) struct Core<C> {
    pub config: Arc<Config>,
    /// The config in effect for decisions: `config`, then what `SIGHUP`
    /// changed live (`reload.rs`).
    pub live: Slot<Arc<Config>>,
    pub clock: SharedClock,
    pub store: SharedStore,
    pub board: Board,
    pub audit: Arc<AuditLog>,
    pub budget: Arc<Mutex<BudgetStore>>,
    pub modes: Arc<ModeSwitch>,
    /// Announced surges, saved in `state_dir` (not for a replay).
    pub announcements: crate::announce::Book,
    /// Approved recommendations, from the API to the deciders' loop.
    pub approvals: tokio::sync::mpsc::UnboundedSender<crate::decide::approve::Approval>,
    approvals_rx:
        Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::decide::approve::Approval>>>,
    pub call_metrics: CallMetrics,
    /// Every call of the port, counted.
    pub cloud: Option<Arc<Metered<C>>>,
    pub actuator: Option<Arc<Actuator<Metered<C>>>>,
    /// AWS calls sent and not answered yet: shutdown waits for them.
    pub calls_in_flight: Arc<AtomicUsize>,
    coordinated: Option<Coordinated<C>>,
}

fn store_config(config: &Config) -> StoreConfig {
    StoreConfig {
        seconds_kept: config.series.per_second.as_secs().max(60) as usize,
        minutes_kept: (config.series.per_minute.as_secs() / 60).max(60) as usize,
        grace_s: config.ingest.grace.as_secs_f64().ceil() as i64,
        silence_after_s: config.ingest.stale_after.as_secs().max(1) as i64,
    }
}

impl<C> Core<C> {
    /// This sidecar's instance id, once coordination knows it.
    pub(crate) fn instance_id(&self) -> Option<String> {
        self.coordinated.as_ref().map(|c| c.instance_id.clone())
    }
}

impl<C: CloudBackend> Core<C> {
    /// Builds the parts; nothing runs yet. A budget that cannot be read
    /// turns every table to dry-run (the day's decreases are unknown).
    pub(crate) async fn build(
        mut config: Config,
        clock: SharedClock,
        cloud: Option<Arc<C>>,
        persistence: Persistence,
    ) -> Core<C> {
        let call_metrics = CallMetrics::default();
        let cloud = cloud.map(|inner| {
            Arc::new(Metered {
                inner,
                metrics: call_metrics.clone(),
            })
        });
        let durability = match persistence {
            Persistence::Durable => Durability::Fsync,
            Persistence::Replay => Durability::Buffered,
        };
        let (audit, audit_error) = AuditLog::open_with(&config.state_dir, clock.now(), durability);
        if let Some(e) = audit_error {
            tracing::error!(error = %e, "Audit log unavailable: decisions are kept in memory and nothing is applied.");
        }
        let budget = match persistence {
            Persistence::Replay => BudgetStore::in_memory(),
            Persistence::Durable => BudgetStore::load(&config.state_dir).unwrap_or_else(|e| {
                tracing::error!(error = %e, "Cannot read the decrease budget: running every table in dry-run until it is repaired.");
                config.mode = Mode::DryRun;
                for t in &mut config.dynamodb.tables {
                    t.mode = Some(Mode::DryRun);
                }
                BudgetStore::empty(&config.state_dir)
            }),
        };
        let board = Board {
            role: config
                .coordination
                .as_ref()
                .map(|_| Slot::new(Role::Follower)),
            calibration: Slot::new(initial_calibration(&config)),
            ..Board::default()
        };
        let announcements = crate::announce::Book::open(
            (persistence == Persistence::Durable)
                .then(|| config.state_dir.join("announcements.json")),
        );
        let (approvals, approvals_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut core = Core {
            store: Arc::new(Mutex::new(SeriesStore::new(store_config(&config)))),
            live: Slot::new(Arc::new(config.clone())),
            config: Arc::new(config),
            clock,
            board,
            audit: Arc::new(audit),
            budget: Arc::new(Mutex::new(budget)),
            modes: Arc::new(ModeSwitch::default()),
            announcements,
            approvals,
            approvals_rx: Mutex::new(Some(approvals_rx)),
            call_metrics,
            cloud,
            actuator: None,
            calls_in_flight: Arc::new(AtomicUsize::new(0)),
            coordinated: None,
        };
        core.coordinated = core.coordinate().await;
        core.actuator = core.cloud.clone().map(|cloud| {
            Arc::new(Actuator {
                cloud,
                audit: core.audit.clone(),
                budget: core.budget.clone(),
                view: core.board.cloud.clone(),
                clock: core.clock.clone(),
                retry: RetryPolicy::default(),
                fence: core.coordinated.as_ref().map(|c| c.fence.clone()),
                calls_in_flight: core.calls_in_flight.clone(),
            })
        });
        core
    }

    /// With `[coordination]`: this sidecar's identity and the actuator's fence.
    async fn coordinate(&self) -> Option<Coordinated<C>> {
        let cfg = self.config.coordination.as_ref()?;
        let cloud = self.cloud.clone()?;
        let role = self.board.role.clone()?;
        let instance_id = match &cfg.instance_id {
            Some(id) => id.clone(),
            None => {
                let endpoint = self
                    .config
                    .asg
                    .as_ref()
                    .map_or(AsgConfig::DEFAULT_METADATA_ENDPOINT, |a| {
                        a.metadata_endpoint.as_str()
                    });
                let ecs = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok();
                let found = match crate::cloud::identity::discover(endpoint, ecs.as_deref()).await {
                    Ok(i) => Ok(i.instance_id),
                    // No instance metadata (Fargate): the task's own id.
                    Err(e) => match ecs.as_deref() {
                        Some(uri) => crate::cloud::identity::task_identity(uri)
                            .await
                            .map(|i| {
                                tracing::info!(task = %i.instance_id, "No instance metadata: this sidecar is known by its ECS task id.");
                                i.instance_id
                            })
                            .map_err(|te| format!("{e}; {te}")),
                        None => Err(e.to_string()),
                    },
                };
                match found {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "Coordination needs this instance's id: set coordination.instance_id, or run on EC2 or ECS.");
                        return None;
                    }
                }
            }
        };
        Some(Coordinated {
            fence: Arc::new(Fence {
                cloud,
                table: cfg.table.clone(),
                cluster: cfg.cluster.clone(),
                instance_id: instance_id.clone(),
                role,
            }),
            instance_id,
        })
    }

    /// The trackers and the deciders (with the group's own resolution, which
    /// may ask instance metadata and AWS, in a task of its own). The
    /// trackers run until `stop`; the decide loop makes no new decision
    /// after `decisions_stop` (the daemon's: ingestion has stopped, and a
    /// stopped source's silence is not low demand).
    pub(crate) fn spawn_deciding(
        &self,
        tasks: &TaskTracker,
        stop: &CancellationToken,
        decisions_stop: &CancellationToken,
    ) {
        let (Some(cloud), Some(actuator)) = (self.cloud.clone(), self.actuator.clone()) else {
            return;
        };
        let config = &self.config;
        let tables: Vec<String> = config
            .dynamodb
            .tables
            .iter()
            .map(|t| t.name.clone())
            .collect();
        if !tables.is_empty() {
            tasks.spawn(
                tracker::track_tables(
                    cloud.clone(),
                    tables,
                    config.dynamodb.poll_interval,
                    self.board.cloud.clone(),
                    self.clock.clone(),
                    stop.clone(),
                )
                .instrument(tracing::info_span!("dynamodb")),
            );
        }
        let group = config.asg.clone().map(|asg| {
            let (tx, rx) = oneshot::channel();
            let resolve = resolve_group(
                cloud.clone(),
                asg,
                self.config.clone(),
                self.board.cloud.clone(),
                self.clock.clone(),
                tasks.clone(),
                stop.clone(),
                tx,
            );
            tasks.spawn(resolve.instrument(tracing::info_span!("asg")));
            rx
        });
        let mut services = Vec::new();
        for svc in &config.ecs_services {
            let fleet = crate::cloud::FleetId::Service {
                cluster: svc.cluster.clone(),
                service: svc.service.clone(),
            };
            tasks.spawn(
                tracker::track_service(
                    cloud.clone(),
                    fleet.clone(),
                    svc.fleet.poll_interval,
                    self.board.cloud.clone(),
                    self.clock.clone(),
                    stop.clone(),
                )
                .instrument(tracing::info_span!("ecs", service = %fleet.key())),
            );
            services.push(GroupDecider::new(
                self.config.clone(),
                fleet,
                svc.fleet.clone(),
                Vec::new(),
            ));
        }
        let decide = DecideLoop {
            inputs: Inputs {
                config: self.config.clone(),
                clock: self.clock.clone(),
                store: self.store.clone(),
                cloud: self.board.cloud.clone(),
                budget: self.budget.clone(),
                modes: self.modes.clone(),
                role: self.board.role.clone(),
                coordination: self.board.coordination.clone(),
                calibration: self.board.calibration.clone(),
                reported_throttles: self.board.reported_throttles.clone(),
                announcements: self.announcements.slot(),
                live: self.live.clone(),
            },
            tables: (!config.dynamodb.tables.is_empty())
                .then(|| TableDecider::new(self.config.clone())),
            group,
            services,
            actuator,
            decisions: self.board.decisions.clone(),
            tasks: tasks.clone(),
            approvals: self
                .approvals_rx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        };
        tasks.spawn(
            decide
                .run(decisions_stop.clone())
                .instrument(tracing::info_span!("decide")),
        );
    }

    /// With `[coordination]`: the election and the heartbeats.
    pub(crate) fn spawn_coordination(&self, tasks: &TaskTracker, stop: &CancellationToken) {
        let (Some(cfg), Some(cloud), Some(role), Some(c)) = (
            self.config.coordination.clone(),
            self.cloud.clone(),
            self.board.role.clone(),
            self.coordinated.as_ref(),
        ) else {
            return;
        };
        tasks.spawn(
            Election {
                cloud: cloud.clone(),
                table: cfg.table.clone(),
                cluster: cfg.cluster.clone(),
                instance_id: c.instance_id.clone(),
                lease: cfg.lease,
                renew_every: cfg.renew_every,
                clock: self.clock.clone(),
                role: role.clone(),
            }
            .run(stop.clone())
            .instrument(tracing::info_span!("election")),
        );
        let heartbeats = Heartbeats {
            role,
            cloud,
            config: cfg,
            instance_id: c.instance_id.clone(),
            grace_s: self.config.ingest.grace.as_secs_f64().ceil() as i64,
            store: self.store.clone(),
            view: self.board.cloud.clone(),
            clock: self.clock.clone(),
            status: self.board.coordination.clone(),
            announcements: self.announcements.clone(),
        };
        tasks.spawn(
            heartbeats
                .run(stop.clone())
                .instrument(tracing::info_span!("coordination")),
        );
    }

    /// CloudWatch: reading DynamoDB's metrics back, and publishing.
    pub(crate) fn spawn_cloudwatch(&self, tasks: &TaskTracker, stop: &CancellationToken) {
        let Some(cloud) = self.cloud.clone() else {
            return;
        };
        let cw = &self.config.cloudwatch;
        if cw.observe && !self.config.dynamodb.tables.is_empty() {
            let watcher = Watcher {
                cloud: cloud.clone(),
                config: self.config.clone(),
                store: self.store.clone(),
                audit: self.audit.clone(),
                clock: self.clock.clone(),
                calibration: self.board.calibration.clone(),
                status: self.board.watch.clone(),
                reported_throttles: self.board.reported_throttles.clone(),
                fleet: self.board.decisions.fleet.clone(),
                leadership: self.board.role.clone(),
            };
            tasks.spawn(
                watcher
                    .run(stop.clone())
                    .instrument(tracing::info_span!("cloudwatch_watch")),
            );
        }
        if cw.publish {
            let publisher = Publisher {
                cloud,
                config: cw.clone(),
                store: self.store.clone(),
                decisions: self.board.decisions.clone(),
                leadership: self.board.role.clone(),
                status: self.board.publish.clone(),
            };
            tasks.spawn(
                publisher
                    .run(stop.clone())
                    .instrument(tracing::info_span!("cloudwatch")),
            );
        }
    }
}

/// Finds the group (configured, or this instance's), lists its own scaling
/// policies, starts tracking it, and hands its decider to the loop.
#[allow(clippy::too_many_arguments)]
async fn resolve_group<C: Capacity>(
    cloud: Arc<C>,
    asg: AsgConfig,
    config: Arc<Config>,
    view: Slot<crate::cloud::tracker::CloudView>,
    clock: SharedClock,
    tasks: TaskTracker,
    stop: CancellationToken,
    decider: oneshot::Sender<GroupDecider>,
) {
    let setup = async {
        let group = group_name(cloud.as_ref(), &asg).await?;
        let foreign = match cloud.scaling_policies(&group).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(group = %group, error = %e, "Cannot list the group's scaling policies.");
                Vec::new()
            }
        };
        if !foreign.is_empty() {
            tracing::warn!(group = %group, policies = %foreign.join(", "), "The group has its own scaling policies; they may fight rapidscale's decisions.");
        }
        Some((group, foreign))
    };
    let resolved = tokio::select! {
        _ = stop.cancelled() => return,
        r = setup => r,
    };
    let Some((group, foreign)) = resolved else {
        tracing::error!(
            "The Auto Scaling group is unknown: set asg.name, or run on an instance of the group."
        );
        return;
    };
    tasks.spawn(
        tracker::track_group(cloud, group.clone(), asg.poll_interval, view, clock, stop)
            .instrument(tracing::info_span!("asg")),
    );
    let _ = decider.send(GroupDecider::new(
        config,
        crate::cloud::FleetId::Group { name: group },
        asg,
        foreign,
    ));
}

/// The group's name: configured, or discovered from instance metadata.
async fn group_name<C: Capacity>(cloud: &C, asg: &AsgConfig) -> Option<String> {
    if let Some(name) = &asg.name {
        return Some(name.clone());
    }
    let ecs = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok();
    let identity =
        match crate::cloud::identity::discover(&asg.metadata_endpoint, ecs.as_deref()).await {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "Cannot discover this instance's identity.");
                return None;
            }
        };
    match cloud.group_of_instance(&identity.instance_id).await {
        Ok(Some(group)) => {
            tracing::info!(instance = %identity.instance_id, group = %group, ecs_cluster = identity.ecs_cluster.as_deref().unwrap_or("none"), ecs_task = identity.ecs_task_arn.as_deref().unwrap_or("none"), "Discovered the Auto Scaling group.");
            Some(group)
        }
        Ok(None) => {
            tracing::error!(instance = %identity.instance_id, "This instance is in no Auto Scaling group.");
            None
        }
        Err(e) => {
            tracing::error!(instance = %identity.instance_id, error = %e, "Cannot look up this instance's group.");
            None
        }
    }
}
