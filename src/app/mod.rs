//! The only wiring: build the parts from the config, spawn each subsystem,
//! wait for the stop signal, stop in stages.
//!
//! Subsystems: ingestion (`sources.rs`), the deciding core (`core.rs`:
//! trackers, deciders, actuator, coordination, CloudWatch), the minute
//! history, and the API. They talk through the store and the board of
//! published snapshots, never through each other.

pub(crate) mod core;
pub(crate) mod reload;
pub(crate) mod shutdown;
pub mod sources;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::{self, ApiState, Controls};
use crate::clock::SharedClock;
use crate::cloud::aws::AwsCloud;
use crate::cloud::CloudBackend;
use crate::config::Config;
use crate::ingest::{lock, SharedStore};
use core::{Core, Persistence};
use shutdown::Stages;
pub use sources::Source;

/// Addresses actually bound (ports may have been 0 in the config).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub statsd: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
}

/// Runs the daemon against AWS until `shutdown` is cancelled; each config
/// `reload` sends is taken live where it can be (`reload.rs`).
pub async fn run(
    config: Config,
    clock: SharedClock,
    shutdown: CancellationToken,
    reload: Option<tokio::sync::mpsc::UnboundedReceiver<Config>>,
) -> anyhow::Result<()> {
    let needs_aws = !config.dynamodb.tables.is_empty()
        || config.asg.is_some()
        || !config.ecs_services.is_empty()
        || config.coordination.is_some()
        || config.cloudwatch.publish;
    let cloud = if needs_aws {
        Some(Arc::new(AwsCloud::connect(&config.aws).await))
    } else {
        None
    };
    let sources = Source::configured(&config);
    run_reloadable(config, clock, cloud, sources, None, shutdown, reload).await
}

/// Runs the daemon on any cloud backend (AWS, or the simulator for `demo`)
/// with the given ingestion sources; `started` receives the bound addresses
/// once everything listens.
pub async fn run_with<C: CloudBackend>(
    config: Config,
    clock: SharedClock,
    cloud: Option<Arc<C>>,
    sources: Vec<Source>,
    started: Option<tokio::sync::oneshot::Sender<Bound>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_reloadable(config, clock, cloud, sources, started, shutdown, None).await
}

/// `run_with`, taking each config `reload` sends.
async fn run_reloadable<C: CloudBackend>(
    config: Config,
    clock: SharedClock,
    cloud: Option<Arc<C>>,
    sources: Vec<Source>,
    started: Option<tokio::sync::oneshot::Sender<Bound>>,
    shutdown: CancellationToken,
    reload: Option<tokio::sync::mpsc::UnboundedReceiver<Config>>,
) -> anyhow::Result<()> {
    let started_at = clock.now();
    let core = Core::build(config, clock.clone(), cloud, Persistence::Durable).await;
    let config = core.config.clone();
    let stages = Stages::default();

    let router = sources::register(&config, &sources, &core.store);
    restore_history(&config, &core.store);
    let (ingest_stop, ingest_tasks) = &stages.ingest;
    let ingest = sources::start(
        &sources,
        router,
        &core.store,
        &clock,
        ingest_tasks,
        ingest_stop,
    )?;

    let (stop, tasks) = &stages.deciding;
    core.spawn_coordination(tasks, stop);
    core.spawn_deciding(tasks, stop, &stages.decisions_stop());
    core.spawn_cloudwatch(tasks, stop);
    tasks.spawn(save_history_every(
        config.clone(),
        core.store.clone(),
        stop.clone(),
    ));
    if let Some(rx) = reload {
        tasks.spawn(take_reloads(
            rx,
            core.live.clone(),
            core.audit.clone(),
            clock.clone(),
            stop.clone(),
        ));
    }

    let mut bound = Bound {
        statsd: ingest.statsd,
        api: None,
    };
    let state = ApiState {
        config: config.clone(),
        live: core.live.clone(),
        clock: clock.clone(),
        started_at,
        store: core.store.clone(),
        counters: ingest.counters.clone(),
        board: core.board.clone(),
        audit: core.audit.clone(),
        call_metrics: core.call_metrics.clone(),
        controls: Controls {
            modes: core.modes.clone(),
            http_ingest: ingest.http_ingest.clone(),
            token: config.api.as_ref().and_then(|a| a.token.clone()),
            known_resources: known_resources(&config),
            announcements: core.announcements.clone(),
            received_by: core.instance_id().unwrap_or_else(|| "local".into()),
            approvals: core.approvals.clone(),
        },
        streams: Arc::new(tokio::sync::Semaphore::new(api::MAX_STREAMS)),
        history: api::history::History::default(),
    };
    spawn_notifier(&core, &state, &stages);
    if let Some(api_cfg) = &config.api {
        let listener = TcpListener::bind(api_cfg.listen)
            .await
            .with_context(|| format!("bind API listener {}", api_cfg.listen))?;
        let addr = listener.local_addr()?;
        bound.api = Some(addr);
        tracing::info!(api = %addr, "API listening.");
        let (stop, tasks) = &stages.api;
        tasks.spawn(api::history::record(
            state.clone(),
            state.history.clone(),
            stop.clone(),
        ));
        let stop = stop.clone();
        tasks.spawn(
            async move {
                if let Err(e) = api::serve(listener, state, stop).await {
                    tracing::error!(error = %e, "API server failed.");
                }
            }
            .instrument(tracing::info_span!("api")),
        );
    }

    tracing::info!(
        mode = config.mode.as_str(),
        fleet = config.fleet.as_str(),
        statsd = %bound.statsd.map_or("off".to_string(), |a| a.to_string()),
        api = %bound.api.map_or("off".to_string(), |a| a.to_string()),
        "rapidscale started."
    );
    if let Some(tx) = started {
        let _ = tx.send(bound);
    }
    shutdown.cancelled().await;
    tracing::info!("Stopping.");
    stages
        .stop(
            &core.calls_in_flight,
            || {
                save_history(&config, &core.store);
                if let Err(e) = core.audit.flush() {
                    tracing::error!(error = %e, "Cannot flush the audit log.");
                }
            },
            |stage| tracing::info!(stage = stage.as_str(), "Stage stopped."),
        )
        .await;
    tracing::info!("Stopped.");
    Ok(())
}

/// Takes each re-read config: what decides changes live, the rest is
/// named and kept; audited (`service = "config"`).
async fn take_reloads(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Config>,
    live: crate::slot::Slot<Arc<Config>>,
    audit: Arc<crate::audit::AuditLog>,
    clock: SharedClock,
    stop: CancellationToken,
) {
    loop {
        let new = tokio::select! {
            _ = stop.cancelled() => return,
            n = rx.recv() => match n { Some(n) => n, None => return },
        };
        let merged = reload::merge(&live.get(), &new);
        if !merged.kept.is_empty() {
            tracing::warn!(
                kept = merged.kept.join(", "),
                "Config reloaded: these sections need a restart and keep their old values."
            );
        }
        let reason = if merged.changed.is_empty() {
            "config re-read: nothing that changes live differs".to_string()
        } else {
            format!("config re-read: {} changed live", merged.changed.join(", "))
        };
        tracing::info!(changed = merged.changed.join(", "), "Config reloaded.");
        let record = crate::audit::AuditRecord {
            id: audit.new_id(),
            time: clock.now(),
            phase: crate::audit::Phase::Completed,
            service: "config".into(),
            resource: "*".into(),
            mode: merged.config.mode,
            outcome: crate::audit::Outcome::Applied,
            changes: Vec::new(),
            decrease: false,
            reason: Some(if merged.kept.is_empty() {
                reason
            } else {
                format!("{reason}; kept until a restart: {}", merged.kept.join(", "))
            }),
            error: None,
            fencing: None,
            observed: None,
        };
        if let Err(e) = audit.append(&record) {
            tracing::error!(error = %e, "Cannot audit the reload; keeping the old config.");
            continue;
        }
        if !merged.changed.is_empty() {
            live.set(Arc::new(merged.config));
        }
    }
}

/// `[[notify]]`: the notifier and its senders, in the deciding stage.
fn spawn_notifier<C: CloudBackend>(core: &Core<C>, state: &ApiState, stages: &Stages) {
    let config = &core.config;
    if config.notify.is_empty() {
        return;
    }
    let link = config
        .api
        .as_ref()
        .map(|a| api::client::base_url(a.listen))
        .unwrap_or_default();
    let targets = config
        .notify
        .iter()
        .map(|t| crate::config::NotifyTarget {
            link: t.link.clone().or_else(|| Some(link.clone())),
            ..t.clone()
        })
        .collect();
    let budget_low = config
        .notify
        .iter()
        .map(|t| t.budget_low)
        .max()
        .unwrap_or(0);
    let conditions_of = state.clone();
    let notifier = crate::notify::deliver::Notifier {
        targets,
        records: core.audit.subscribe(),
        conditions: Box::new(move || conditions_of.conditions(budget_low)),
        publisher: core.cloud.clone(),
        status: core.board.notify.clone(),
        clock: core.clock.clone(),
    };
    let (stop, tasks) = &stages.deciding;
    tasks.spawn(
        notifier
            .run(tasks.clone(), stop.clone())
            .instrument(tracing::info_span!("notify")),
    );
}

/// The minute history of earlier runs (the per-hour view survives restarts).
fn restore_history(config: &Config, store: &SharedStore) {
    match crate::profile::history::load(&config.state_dir) {
        Ok(history) if !history.is_empty() => {
            crate::profile::history::restore(&mut lock(store), &history);
            tracing::info!(
                streams = history.len(),
                minutes = history.values().map(Vec::len).sum::<usize>(),
                "Minute history restored."
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the minute history: starting without it.")
        }
    }
}

/// Saves the minute history every `SAVE_EVERY` until `stop`.
async fn save_history_every(config: Arc<Config>, store: SharedStore, stop: CancellationToken) {
    let mut every = tokio::time::interval(crate::profile::history::SAVE_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        // Snapshot under the lock, write outside it.
        let minutes = crate::profile::history::snapshot(&lock(&store));
        let dir = config.state_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::profile::history::save(&dir, &minutes) {
                tracing::warn!(error = %e, "Cannot save the minute history.");
            }
        })
        .await;
    }
}

/// Writes the minute history; a failure is logged, never fatal.
fn save_history(config: &Config, store: &SharedStore) {
    let minutes = crate::profile::history::snapshot(&lock(store));
    if let Err(e) = crate::profile::history::save(&config.state_dir, &minutes) {
        tracing::warn!(error = %e, "Cannot save the minute history.");
    }
}

/// Names `POST /api/v1/mode` accepts: tables, `table/index`, the group.
fn known_resources(config: &Config) -> Vec<String> {
    let mut names = Vec::new();
    for t in &config.dynamodb.tables {
        names.push(t.name.clone());
        for i in &t.indexes {
            names.push(crate::actuator::resource_key(&t.name, Some(&i.name)));
        }
    }
    if let Some(name) = config.asg.as_ref().and_then(|a| a.name.clone()) {
        names.push(name);
    }
    names
}
