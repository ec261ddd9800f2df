//! HTTP API: reads snapshots of the store, the counters and the cloud view;
//! never decides anything.
//!
//! Endpoints: `GET /healthz`, `GET /readyz`, `GET /api/v1/status`,
//! `GET /api/v1/series?stream=NAME&seconds=N`,
//! `GET /api/v1/decisions?since=RFC3339&limit=N`, `GET /api/v1/stream`
//! (Server-Sent Events, one per second), `POST /api/v1/ingest` (StatsD
//! lines, at most 1 MiB). Every error is JSON: `{"error": "..."}`.

pub mod client;
pub(crate) mod history;
pub(crate) mod metrics;

use std::sync::Arc;

mod healthcheck;
pub use healthcheck::healthcheck;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, AuditRecord};
use crate::board::Board;
use crate::clock::SharedClock;
use crate::cloud::metered::CallMetrics;
use crate::cloud::tracker::CloudView;
use crate::config::{Config, Mode};
use crate::coord::task::CoordinationStatus;
use crate::decide::fleet::FleetReading;
use crate::decide::group::GroupAdvice;
use crate::decide::table::ResourceAdvice;
use crate::ingest::statsd::StatsdRouter;
use crate::ingest::{lock, CounterSnapshot, SharedStore, Sink, SourceCounters};
use crate::mode::{ModeSwitch, Overrides, RuntimeMode};
use crate::series::StreamSummary;

/// Everything handlers read, and the two things they may change.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// The config the daemon started with (what was bound and opened).
    pub config: Arc<Config>,
    /// The config in effect for decisions (`SIGHUP` changes it).
    pub live: crate::slot::Slot<Arc<Config>>,
    pub clock: SharedClock,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The per-second store (series, summaries, the minute history).
    pub store: SharedStore,
    /// Every ingestion source's counters.
    pub counters: Vec<Arc<SourceCounters>>,
    /// The other parts' published snapshots.
    pub board: Board,
    pub audit: Arc<AuditLog>,
    pub call_metrics: CallMetrics,
    pub controls: Controls,
    /// Permits for open event streams (at most `MAX_STREAMS`).
    pub streams: Arc<tokio::sync::Semaphore>,
    /// The charts' last 15 minutes (`GET /api/v1/history`).
    pub history: history::History,
}

/// What the API may change, behind its bearer token.
#[derive(Clone)]
pub(crate) struct Controls {
    /// Operator overrides of the mode (`POST /api/v1/mode`).
    pub modes: Arc<ModeSwitch>,
    /// `POST /api/v1/ingest`: the StatsD router and its own counters.
    pub http_ingest: Option<HttpIngest>,
    /// Bearer token for mutating calls (none: they are refused).
    pub token: Option<String>,
    /// Resources `POST /api/v1/mode` accepts.
    pub known_resources: Vec<String>,
    /// Announced surges (`POST /api/v1/announce`).
    pub announcements: crate::announce::Book,
    /// Who receives announcements here (the instance id, or "local").
    pub received_by: String,
    /// Approved recommendations go to the deciders' loop.
    pub approvals: tokio::sync::mpsc::UnboundedSender<crate::decide::approve::Approval>,
}

#[derive(Clone)]
pub(crate) struct HttpIngest {
    pub router: Arc<StatsdRouter>,
    pub sink: Sink,
}

/// The dashboard: one page, no external resources (canvas drawing, no CDN).
pub(crate) const DASHBOARD: &str = include_str!("dashboard.html");

/// Largest `POST /api/v1/ingest` body.
pub(crate) const INGEST_BODY_LIMIT: usize = 1 << 20;

#[derive(Debug, Serialize)]
pub(crate) struct Status {
    /// The configured global mode.
    pub mode: Mode,
    /// The global mode in effect ("dry-run", "apply" or "paused").
    pub effective_mode: &'static str,
    /// Operator overrides set through `POST /api/v1/mode`.
    pub mode_overrides: Overrides,
    pub now: chrono::DateTime<chrono::Utc>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub streams: Vec<StreamSummary>,
    pub ingest: Vec<CounterSnapshot>,
    pub cloud: CloudView,
    /// The DynamoDB decider's view of every table and index.
    pub dynamodb: Vec<ResourceAdvice>,
    /// The group decider's view: counts by state, the fleet's figure, verdict.
    pub asg: Option<GroupAdvice>,
    /// Each ECS service's decider (`[[ecs.services]]`), tasks as instances.
    pub ecs_services: Vec<GroupAdvice>,
    /// How the fleet's demand is read (`[fleet]`), and whether it is seen.
    pub fleet: Option<FleetReading>,
    /// The newest decisions, newest first.
    pub decisions: Vec<AuditRecord>,
    /// Fleet coordination: heartbeats, fleet totals, silent instances.
    pub coordination: Option<CoordinationStatus>,
    /// CloudWatch publishing: datums sent, dropped, buffered, last error.
    pub cloudwatch: Option<crate::cloudwatch::PublishStatus>,
    /// `per_request = "auto"`: the fit and the value in effect per table/index and operation.
    pub calibration: Vec<crate::policy::calibrate::Calibration>,
    /// DynamoDB's own metrics read back: leads over CloudWatch, throttling.
    pub cloudwatch_watch: crate::cloudwatch::watch::WatchStatus,
    /// Announced surges.
    pub announcements: Vec<crate::announce::Announcement>,
    /// `[[notify]]` targets: messages sent, failed, retried, dropped.
    pub notifications: Vec<crate::notify::deliver::TargetStatus>,
}

impl ApiState {
    /// The mode configured globally.
    fn mode(&self) -> Mode {
        self.live.read(|c| c.mode)
    }

    pub(crate) fn status(&self) -> Status {
        let streams = {
            let store = lock(&self.store);
            store.stream_ids().map(|id| store.summary(id)).collect()
        };
        let overrides = self.controls.modes.snapshot();
        let b = &self.board;
        Status {
            mode: self.mode(),
            effective_mode: overrides.global.unwrap_or(self.mode().into()).as_str(),
            mode_overrides: overrides,
            now: self.clock.now(),
            started_at: self.started_at,
            streams,
            ingest: self.counters.iter().map(|c| c.snapshot()).collect(),
            cloud: b.cloud.get(),
            dynamodb: b.decisions.tables.get(),
            asg: b.decisions.group.get(),
            ecs_services: b.decisions.services.get(),
            fleet: b.decisions.fleet.get(),
            decisions: self.audit.recent(None, 20),
            coordination: b.coordination.get(),
            cloudwatch: b.publish.get(),
            calibration: b.calibration.get(),
            cloudwatch_watch: b.watch.get(),
            announcements: self.controls.announcements.list(),
            notifications: b.notify.get(),
        }
    }
}

impl ApiState {
    /// The conditions notifications tell of: ingestion silent, AWS
    /// unavailable (from the readiness reasons), and decrease budgets at
    /// or below `budget_low`.
    pub(crate) fn conditions(&self, budget_low: usize) -> Vec<crate::notify::Condition> {
        use crate::config::NotifyEvent;
        let mut out = Vec::new();
        for reason in self.not_ready() {
            let kind = if reason.starts_with("ingestion silent") {
                NotifyEvent::IngestionSilent
            } else if reason.starts_with("AWS unavailable") {
                NotifyEvent::AwsUnavailable
            } else {
                continue;
            };
            // The subject: the stream, or what AWS could not describe.
            let resource = match kind {
                NotifyEvent::IngestionSilent => self
                    .config
                    .ingest
                    .requests_stream
                    .clone()
                    .unwrap_or_default(),
                _ => reason
                    .split(':')
                    .nth(1)
                    .map(|r| r.split(" last described").next().unwrap_or(r).trim())
                    .unwrap_or("")
                    .to_string(),
            };
            out.push(crate::notify::Condition {
                kind,
                resource,
                summary: reason,
            });
        }
        for a in self.board.decisions.tables.get() {
            if a.decreases_left_today <= budget_low && a.plan.is_some() {
                out.push(crate::notify::Condition {
                    kind: NotifyEvent::BudgetLow,
                    resource: a.resource.clone(),
                    summary: format!(
                        "{} decrease(s) left today on {} (used {}, next at {})",
                        a.decreases_left_today,
                        a.resource,
                        a.decreases_used_today,
                        a.next_decrease_at.to_rfc3339()
                    ),
                });
            }
        }
        out
    }

    /// Why the daemon is not ready yet (empty: ready).
    pub(crate) fn not_ready(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.counters.is_empty() && self.controls.http_ingest.is_none() {
            reasons.push("no ingestion source is configured".to_string());
        }
        for c in &self.counters {
            if !c.is_up() {
                reasons.push(format!(
                    "ingestion source {} is not up (log file missing, or status page not answering)",
                    c.source
                ));
            }
        }
        if let Some(why) = self.audit.unavailable() {
            reasons.push(format!(
                "audit log unavailable ({why}): recommending only, nothing is applied"
            ));
        }
        let now = self.clock.now();
        let config = &self.live.get();
        let stale = |what: &str,
                     last_ok: chrono::DateTime<chrono::Utc>,
                     within: std::time::Duration,
                     error: Option<&crate::cloud::CloudError>| {
            let age = (now - last_ok).to_std().unwrap_or_default();
            (age > within).then(|| {
                format!(
                    "AWS unavailable: {what} last described {}s ago{}; nothing is changed on state that old",
                    age.as_secs(),
                    error.map(|e| format!(" ({e})")).unwrap_or_default()
                )
            })
        };
        let modes = self.controls.modes.snapshot();
        self.board.cloud.read(|view| {
            for t in &config.dynamodb.tables {
                let applies = modes.effective(&[&t.name], t.mode.unwrap_or(config.mode))
                    == crate::mode::RuntimeMode::Apply;
                let members =
                    std::iter::once(None).chain(t.indexes.iter().map(|i| Some(i.name.as_str())));
                for index in members.filter(|_| applies) {
                    if let Some(why) = view.aws_auto_scaling(&t.name, index) {
                        reasons.push(format!(
                            "{}: {why}; nothing is applied to it",
                            crate::actuator::resource_key(&t.name, index)
                        ));
                    }
                }
                let t = &t.name;
                match view.tables.get(t) {
                    Some(tr) if tr.last_ok.is_some() => reasons.extend(stale(
                        &format!("table {t}"),
                        tr.last_ok.unwrap_or_default(),
                        config.dynamodb.poll_interval * 3,
                        tr.last_error.as_ref(),
                    )),
                    _ => reasons.push(format!("table {t} has not been described yet")),
                }
            }
            if let Some(asg) = &config.asg {
                match view.group.as_ref() {
                    Some(g) if g.last_ok.is_some() => reasons.extend(stale(
                        "the Auto Scaling group",
                        g.last_ok.unwrap_or_default(),
                        asg.poll_interval * 3,
                        g.last_error.as_ref(),
                    )),
                    _ => reasons
                        .push("the Auto Scaling group has not been described yet".to_string()),
                }
            }
        });
        if let Some(name) = &config.ingest.requests_stream {
            let stale_after = config.ingest.stale_after;
            let store = lock(&self.store);
            let last = store.id(name).and_then(|id| store.last_sample_second(id));
            if let Some(last) = last {
                let silent = now.timestamp() - last;
                if silent > stale_after.as_secs() as i64 {
                    reasons.push(format!(
                        "ingestion silent: no sample on {name} for {silent}s (stale_after {}s); holding, no scale-in",
                        stale_after.as_secs()
                    ));
                }
            }
        }
        if let Some(why) = self.fleet_unseen() {
            reasons.push(format!("fleet not seen: {why}; nothing is applied"));
        }
        reasons
    }

    /// Why the fleet cannot be seen, while anything would be applied.
    fn fleet_unseen(&self) -> Option<String> {
        let reading = self.board.decisions.fleet.get()?;
        let modes = self.controls.modes.snapshot();
        let c = &self.live.get();
        let applies = c
            .dynamodb
            .tables
            .iter()
            .map(|t| modes.effective(&[&t.name], t.mode.unwrap_or(c.mode)))
            .chain(c.asg.iter().map(|a| {
                let group = a.name.as_deref().unwrap_or("");
                modes.effective(&[group], a.mode.unwrap_or(c.mode))
            }))
            .any(|m| m == crate::mode::RuntimeMode::Apply);
        reading.unseen.filter(|_| applies)
    }
}

/// API errors; each maps to one status code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("not ready: {}", .0.join("; "))]
    NotReady(Vec<String>),
    #[error("HTTP ingestion is not configured (it needs [ingest.statsd] selectors)")]
    IngestOff,
    #[error("{message}")]
    Body { status: StatusCode, message: String },
    #[error("missing `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("the audit log is unavailable: {0}")]
    AuditUnavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::UnknownStream(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::IngestOff => StatusCode::NOT_FOUND,
            ApiError::Body { status, .. } => *status,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route(
            "/api/v1/status",
            get(|State(s): State<ApiState>| async move { Json(s.status()) }),
        )
        .route(
            "/",
            get(|| async {
                (
                    [
                        (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (axum::http::header::CACHE_CONTROL, "no-cache"),
                    ],
                    DASHBOARD,
                )
            }),
        )
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(s): State<ApiState>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics::render(&s),
                )
            }),
        )
        .route("/api/v1/mode", post(set_mode))
        .route("/api/v1/announce", post(announce))
        .route("/api/v1/recommendations/{id}/apply", post(approve))
        .route("/api/v1/announcements", get(announcements))
        .route(
            "/api/v1/announcements/{id}",
            axum::routing::delete(cancel_announcement),
        )
        .route("/api/v1/series", get(series))
        .route(
            "/api/v1/history",
            get(|State(s): State<ApiState>| async move { Json(s.history.since(history::KEPT_S)) }),
        )
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/hourly", get(hourly))
        .route("/api/v1/stream", get(stream))
        .route(
            "/api/v1/ingest",
            post(ingest).layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT)),
        )
        .fallback(|| async {
            ApiError::Body {
                status: StatusCode::NOT_FOUND,
                message: "no such endpoint".to_string(),
            }
        })
        .with_state(state)
}

#[derive(Deserialize)]
struct SeriesQuery {
    stream: String,
    seconds: Option<usize>,
}

#[derive(Serialize)]
struct SeriesPoint {
    second: i64,
    value: Option<f32>,
    p50_ms: Option<f32>,
    p95_ms: Option<f32>,
    p99_ms: Option<f32>,
}

async fn series(
    State(s): State<ApiState>,
    q: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Json<Vec<SeriesPoint>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let seconds = q.seconds.unwrap_or(60);
    if seconds == 0 || seconds > 86_400 {
        return Err(ApiError::BadRequest("seconds must be in 1..=86400".into()));
    }
    let store = lock(&s.store);
    let id = store
        .id(&q.stream)
        .ok_or_else(|| ApiError::UnknownStream(q.stream.clone()))?;
    let finite = |x: f32| (!x.is_nan()).then_some(x);
    Ok(Json(
        store
            .seconds(id, seconds)
            .into_iter()
            .map(|(second, p)| SeriesPoint {
                second,
                value: finite(p.value),
                p50_ms: finite(p.p50_ms),
                p95_ms: finite(p.p95_ms),
                p99_ms: finite(p.p99_ms),
            })
            .collect(),
    ))
}

/// The body of `POST /api/v1/mode` (public for the fuzz targets).
#[derive(Debug, Deserialize)]
pub struct ModeRequest {
    pub mode: RuntimeMode,
    pub resource: Option<String>,
}

/// Checks `Authorization: Bearer <token>` in constant time.
fn authorize(s: &ApiState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let Some(token) = s.controls.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ApiError::Forbidden(
            "no API token is configured (api.token or RAPIDSCALE_API_TOKEN): changes through the API are disabled".into(),
        ));
    };
    if bool::from(subtle::ConstantTimeEq::ct_eq(
        given.as_bytes(),
        token.as_bytes(),
    )) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("wrong token".into()))
    }
}

/// `POST /api/v1/mode`: sets the mode globally or for one resource; audited first.
async fn set_mode(
    State(s): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<ModeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&s, &headers)?;
    let Json(req) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let known = &s.controls.known_resources;
    if let Some(r) = &req.resource {
        if !known.contains(r) {
            return Err(ApiError::BadRequest(format!(
                "unknown resource {r:?}; configured: {}",
                known.join(", ")
            )));
        }
    }
    let modes = &s.controls.modes;
    let before = match &req.resource {
        Some(r) => modes.effective(&[r], s.mode()),
        None => modes.snapshot().global.unwrap_or(s.mode().into()),
    };
    let record = AuditRecord {
        id: s.audit.new_id(),
        time: s.clock.now(),
        phase: crate::audit::Phase::Completed,
        service: "mode".into(),
        resource: req.resource.clone().unwrap_or_else(|| "*".into()),
        mode: req.mode.acting().unwrap_or(s.mode()),
        outcome: crate::audit::Outcome::Applied,
        changes: Vec::new(),
        decrease: false,
        reason: Some(format!(
            "mode set to {} (was {}) through the API",
            req.mode.as_str(),
            before.as_str()
        )),
        error: None,
        fencing: None,
        observed: None,
    };
    s.audit
        .append(&record)
        .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    modes.set(req.resource.as_deref(), req.mode);
    tracing::warn!(resource = %record.resource, mode = req.mode.as_str(), was = before.as_str(), "Mode changed through the API.");
    Ok(Json(serde_json::json!({
        "resource": record.resource,
        "mode": req.mode,
        "was": before,
    })))
}

/// An audit record of an operator's (or a push sender's) word.
fn operator_record(s: &ApiState, service: &str, resource: &str, reason: String) -> AuditRecord {
    AuditRecord {
        id: s.audit.new_id(),
        time: s.clock.now(),
        phase: crate::audit::Phase::Completed,
        service: service.into(),
        resource: resource.into(),
        mode: s.mode(),
        outcome: crate::audit::Outcome::Applied,
        changes: Vec::new(),
        decrease: false,
        reason: Some(reason),
        error: None,
        fencing: None,
        observed: None,
    }
}

/// `POST /api/v1/recommendations/{id}/apply`: applies exactly that
/// dry-run recommendation if it is still what rapidscale would do now,
/// through the same gates, actuator and audit as apply mode (202); 409
/// with the current advice otherwise. The approval is audited first.
async fn approve(
    State(s): State<ApiState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    authorize(&s, &headers)?;
    let record = s
        .audit
        .recent(None, 10_000)
        .into_iter()
        .find(|r| r.id == id && r.outcome == crate::audit::Outcome::Recommended)
        .ok_or_else(|| ApiError::Body {
            status: StatusCode::NOT_FOUND,
            message: format!("no recommendation {id:?} among the newest 10,000 records"),
        })?;
    s.audit
        .append(&operator_record(
            &s,
            "approve",
            &record.resource,
            format!("recommendation {id} approved through the API"),
        ))
        .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let sent = s.controls.approvals.send(crate::decide::approve::Approval {
        record: record.clone(),
        reply,
    });
    let unavailable = || ApiError::Body {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the deciders are not running".into(),
    };
    if sent.is_err() {
        return Err(unavailable());
    }
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), answer)
        .await
        .map_err(|_| unavailable())?
        .map_err(|_| unavailable())?;
    tracing::warn!(id = %id, resource = %record.resource, accepted = answer.is_ok(), "Recommendation approved through the API.");
    Ok(match answer {
        Ok(a) => (
            StatusCode::ACCEPTED,
            Json(
                serde_json::json!({"recommendation": id, "resource": a.resource, "applying": a.applying}),
            ),
        ),
        Err(r) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({"recommendation": id, "error": r.error, "current": r.current})),
        ),
    })
}

/// `POST /api/v1/announce`: a surge is coming; audited first.
async fn announce(
    State(s): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<crate::announce::AnnounceRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<crate::announce::Announcement>), ApiError> {
    authorize(&s, &headers)?;
    let Json(req) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let now = s.clock.now();
    let id = format!("ann-{}", s.audit.new_id());
    let a = req
        .build(id, now, &s.controls.received_by)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let reason = format!(
        "surge announced: {} from {} for {}s{}",
        a.expect,
        a.start.to_rfc3339(),
        a.duration_s,
        a.note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    s.audit
        .append(&operator_record(&s, "announce", &a.id, reason))
        .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    s.controls.announcements.add(a.clone(), now);
    tracing::info!(id = %a.id, expect = %a.expect, start = %a.start.to_rfc3339(), duration_s = a.duration_s, "Surge announced.");
    Ok((StatusCode::CREATED, Json(a)))
}

/// `GET /api/v1/announcements`: every announcement not over for a day.
async fn announcements(State(s): State<ApiState>) -> Json<Vec<crate::announce::Announcement>> {
    Json(s.controls.announcements.list())
}

/// `DELETE /api/v1/announcements/{id}`: cancels one; audited first.
async fn cancel_announcement(
    State(s): State<ApiState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<crate::announce::Announcement>, ApiError> {
    authorize(&s, &headers)?;
    if !s.controls.announcements.list().iter().any(|a| a.id == id) {
        return Err(ApiError::Body {
            status: StatusCode::NOT_FOUND,
            message: format!("no announcement {id:?}"),
        });
    }
    s.audit
        .append(&operator_record(
            &s,
            "announce",
            &id,
            "announcement cancelled through the API".into(),
        ))
        .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
    let a = s
        .controls
        .announcements
        .cancel(&id, s.clock.now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tracing::info!(id = %a.id, "Announcement cancelled.");
    Ok(Json(a))
}

async fn readyz(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let reasons = s.not_ready();
    if reasons.is_empty() {
        Ok(Json(serde_json::json!({ "status": "ready" })))
    } else {
        Err(ApiError::NotReady(reasons))
    }
}

#[derive(Deserialize)]
struct DecisionsQuery {
    since: Option<String>,
    limit: Option<usize>,
}

async fn decisions(
    State(s): State<ApiState>,
    q: Result<Query<DecisionsQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let since = match &q.since {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| ApiError::BadRequest(format!("since {t:?} is not RFC 3339: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::BadRequest("limit must be in 1..=10000".into()));
    }
    Ok(Json(s.audit.recent(since, limit)))
}

/// `POST /api/v1/ingest`: StatsD lines in the body, as in a datagram.
async fn ingest(
    State(s): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map_err(|e| ApiError::Body {
        status: e.status(),
        message: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the body is larger than {INGEST_BODY_LIMIT} bytes")
        } else {
            e.body_text()
        },
    })?;
    let http = s.controls.http_ingest.as_ref().ok_or(ApiError::IngestOff)?;
    let arrival = crate::series::Arrival::at(http.sink.clock.now());
    let accepted = {
        let mut store = lock(&http.sink.store);
        http.router
            .ingest(&body, arrival, &mut store, &http.sink.counters)
    };
    Ok(Json(serde_json::json!({ "accepted": accepted })))
}

/// One Server-Sent Event per second: the newest sealed second of every
/// stream, and the deciders' current view.
#[derive(Debug, Serialize)]
pub(crate) struct Tick {
    pub now: chrono::DateTime<chrono::Utc>,
    pub streams: Vec<TickStream>,
    pub dynamodb: Vec<ResourceAdvice>,
    pub asg: Option<GroupAdvice>,
    pub ecs_services: Vec<GroupAdvice>,
    pub announcements: Vec<crate::announce::Announcement>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TickStream {
    pub stream: String,
    pub second: Option<i64>,
    pub value: Option<f32>,
    pub p50_ms: Option<f32>,
    pub p95_ms: Option<f32>,
    pub p99_ms: Option<f32>,
}

impl ApiState {
    pub(crate) fn tick(&self) -> Tick {
        let finite = |x: f32| (!x.is_nan()).then_some(x);
        let streams = {
            let store = lock(&self.store);
            store
                .stream_ids()
                .map(|id| {
                    let newest = store.seconds(id, 1).into_iter().next_back();
                    TickStream {
                        stream: store.summary(id).name,
                        second: newest.as_ref().map(|(s, _)| *s),
                        value: newest.as_ref().and_then(|(_, p)| finite(p.value)),
                        p50_ms: newest.as_ref().and_then(|(_, p)| finite(p.p50_ms)),
                        p95_ms: newest.as_ref().and_then(|(_, p)| finite(p.p95_ms)),
                        p99_ms: newest.as_ref().and_then(|(_, p)| finite(p.p99_ms)),
                    }
                })
                .collect()
        };
        Tick {
            now: self.clock.now(),
            streams,
            dynamodb: self.board.decisions.tables.get(),
            asg: self.board.decisions.group.get(),
            ecs_services: self.board.decisions.services.get(),
            announcements: self.controls.announcements.list(),
        }
    }
}

async fn stream(
    State(s): State<ApiState>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError>
{
    // Each open stream holds a permit until its client goes away.
    let permit = s
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Body {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("{MAX_STREAMS} event streams are open already"),
        })?;
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let events =
        futures_util::stream::unfold((s, ticker, permit), |(s, mut ticker, permit)| async move {
            ticker.tick().await;
            let event = Event::default()
                .event("tick")
                .json_data(s.tick())
                .unwrap_or_else(|_| Event::default().event("error").data("serialization failed"));
            Some((Ok(event), (s, ticker, permit)))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// `GET /api/v1/hourly`: the per-hour profile of the minute history, and
/// what the current schedule holds each hour, in requests/s.
#[derive(Serialize)]
pub(crate) struct Hourly {
    pub profile: crate::profile::Profile,
    pub schedule: Option<ScheduleCapacity>,
}

#[derive(Serialize)]
pub(crate) struct ScheduleCapacity {
    /// What the figures are.
    pub what: String,
    /// Requests/s the hour's minimum capacity serves at its target, per local hour.
    pub requests_per_second: Vec<f64>,
}

/// The group's minimum x target_rps_per_instance per hour; without a group,
/// the first table capacity with `per_request`: min x target / per_request.
pub(crate) fn schedule_capacity(config: &crate::config::Config) -> Option<ScheduleCapacity> {
    if let Some(asg) = &config.asg {
        return Some(ScheduleCapacity {
            what: "group min x target_rps_per_instance".into(),
            requests_per_second: asg
                .hours
                .iter()
                .map(|l| l.min as f64 * l.target_rps_per_instance)
                .collect(),
        });
    }
    config.dynamodb.tables.iter().find_map(|t| {
        [("read", &t.read), ("write", &t.write)]
            .into_iter()
            .find_map(|(op, spec)| {
                let spec = spec.as_ref()?;
                let k = spec.per_request?;
                Some(ScheduleCapacity {
                    what: format!("{} {op} min x target / per_request", t.name),
                    requests_per_second: spec
                        .hours
                        .iter()
                        .map(|l| l.min as f64 * l.target / k)
                        .collect(),
                })
            })
    })
}

async fn hourly(State(s): State<ApiState>) -> Json<Hourly> {
    let minutes = crate::profile::history::snapshot(&lock(&s.store));
    Json(Hourly {
        profile: crate::profile::build(&s.config, &minutes),
        schedule: schedule_capacity(&s.config),
    })
}

/// Event streams (`/api/v1/stream`) open at once; more get a 503.
pub const MAX_STREAMS: usize = 64;

/// Serves until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
