//! HTTP API: reads snapshots of the store, the counters and the cloud view;
//! never decides anything.
//!
//! Endpoints so far: `GET /healthz`, `GET /api/v1/status`,
//! `GET /api/v1/series?stream=NAME&seconds=N`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::advisor::asg::{GroupAdvice, SharedGroupAdvice};
use crate::advisor::dynamodb::{ResourceAdvice, SharedAdvice};
use crate::audit::{AuditLog, AuditRecord};
use crate::clock::SharedClock;
use crate::cloud::tracker::{self, CloudView, SharedView};
use crate::config::Mode;
use crate::ingest::{lock, CounterSnapshot, SharedStore, SourceCounters};
use crate::series::StreamSummary;

/// Everything handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub mode: Mode,
    pub store: SharedStore,
    pub counters: Vec<Arc<SourceCounters>>,
    pub view: SharedView,
    pub clock: SharedClock,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub advice: SharedAdvice,
    pub group_advice: SharedGroupAdvice,
    pub audit: Arc<AuditLog>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub mode: Mode,
    pub now: chrono::DateTime<chrono::Utc>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub streams: Vec<StreamSummary>,
    pub ingest: Vec<CounterSnapshot>,
    pub cloud: CloudView,
    /// The DynamoDB advisor's view of every table and index.
    pub dynamodb: Vec<ResourceAdvice>,
    /// The group advisor's view: counts by state, fleet estimate, verdict.
    pub asg: Option<GroupAdvice>,
    /// The newest decisions, newest first.
    pub decisions: Vec<AuditRecord>,
}

impl ApiState {
    pub fn status(&self) -> Status {
        let streams = {
            let store = lock(&self.store);
            store.stream_ids().map(|id| store.summary(id)).collect()
        };
        Status {
            mode: self.mode,
            now: self.clock.now(),
            started_at: self.started_at,
            streams,
            ingest: self.counters.iter().map(|c| c.snapshot()).collect(),
            cloud: tracker::read(&self.view).clone(),
            dynamodb: self
                .advice
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            asg: self
                .group_advice
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            decisions: self.audit.recent(None, 20),
        }
    }
}

/// API errors; each maps to one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    #[error("{0}")]
    BadRequest(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::UnknownStream(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route(
            "/api/v1/status",
            get(|State(s): State<ApiState>| async move { Json(s.status()) }),
        )
        .route("/api/v1/series", get(series))
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
    Query(q): Query<SeriesQuery>,
) -> Result<Json<Vec<SeriesPoint>>, ApiError> {
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

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
