//! Stopping in stages: ingest first (no new samples, and with it no new
//! decisions: the seconds after it are silent because rapidscale stopped
//! listening, not because traffic stopped), then the deciding parts (a
//! change already sent to AWS finishes and is audited; the trackers stop),
//! then the API (it answered until then), then the audit log is flushed.
//! Each stage is bounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long each stage's tasks get to finish after their stop signal.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Longer wait while an UpdateTable or SetDesiredCapacity is in flight:
/// the SDK's attempt timeout (5 s) and a margin, within the 10 s stop
/// timeouts of deploy/ (ECS `stopTimeout`, systemd `TimeoutStopSec`).
pub(crate) const CALL_GRACE: Duration = Duration::from_secs(6);

/// The stages, in stopping order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Ingest,
    Deciding,
    Api,
    Audit,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Deciding => "deciding",
            Stage::Api => "api",
            Stage::Audit => "audit",
        }
    }
}

/// One stop signal and one set of tasks per stage.
#[derive(Default)]
pub(crate) struct Stages {
    pub ingest: (CancellationToken, TaskTracker),
    pub deciding: (CancellationToken, TaskTracker),
    pub api: (CancellationToken, TaskTracker),
}

impl Stages {
    /// The decide loop's stop signal: fires with ingest's, before the
    /// deciding stage (whose changes in flight still finish).
    pub(crate) fn decisions_stop(&self) -> CancellationToken {
        self.ingest.0.child_token()
    }
}

async fn drain(tracker: &TaskTracker, within: Duration) -> bool {
    tracker.close();
    tokio::time::timeout(within, tracker.wait()).await.is_ok()
}

impl Stages {
    /// Stops every stage in order; `flush` is the last step. `on_stage` is
    /// told when each stage has stopped (or its grace ran out).
    pub(crate) async fn stop(
        &self,
        calls_in_flight: &AtomicUsize,
        flush: impl FnOnce(),
        mut on_stage: impl FnMut(Stage),
    ) {
        let (token, tasks) = &self.ingest;
        token.cancel();
        if !drain(tasks, SHUTDOWN_GRACE).await {
            tracing::warn!(stage = "ingest", "An ingestion task did not stop in time.");
        }
        on_stage(Stage::Ingest);

        let (token, tasks) = &self.deciding;
        token.cancel();
        let in_flight = || calls_in_flight.load(Ordering::SeqCst);
        if !drain(tasks, SHUTDOWN_GRACE).await && in_flight() > 0 {
            // A change sent to AWS is let finish, so that its completed
            // record says what happened; it cannot take longer than one attempt.
            tracing::warn!(
                calls = in_flight(),
                wait_ms = CALL_GRACE.as_millis() as u64,
                "Waiting for the AWS call in flight before stopping."
            );
            let _ = tokio::time::timeout(CALL_GRACE, tasks.wait()).await;
        }
        if in_flight() > 0 {
            tracing::error!(
                calls = in_flight(),
                "Stopping with an AWS call unanswered: its audit record has no completion."
            );
        }
        on_stage(Stage::Deciding);

        let (token, tasks) = &self.api;
        token.cancel();
        if !drain(tasks, SHUTDOWN_GRACE).await {
            tracing::warn!(stage = "api", "The API did not stop in time.");
        }
        on_stage(Stage::Api);

        flush();
        on_stage(Stage::Audit);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A call in flight holds the deciding stage (up to CALL_GRACE); the
    /// API is still up meanwhile, and stops only after it.
    #[tokio::test(start_paused = true)]
    async fn stages_stop_in_order_and_a_call_in_flight_finishes_first() {
        let stages = Stages::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let note = |what: &str| log.lock().unwrap().push(what.to_string());

        let (t, tasks) = &stages.ingest;
        let (token, l) = (t.clone(), log.clone());
        tasks.spawn(async move {
            token.cancelled().await;
            l.lock().unwrap().push("ingest stopped".into());
        });
        // A change sent just before the stop: it takes 3 s to answer.
        calls.fetch_add(1, Ordering::SeqCst);
        let (_, tasks) = &stages.deciding;
        let (c, l) = (calls.clone(), log.clone());
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            l.lock().unwrap().push("call completed and audited".into());
            c.fetch_sub(1, Ordering::SeqCst);
        });
        let api_up = Arc::new(AtomicBool::new(true));
        let (t, tasks) = &stages.api;
        let (token, up, l) = (t.clone(), api_up.clone(), log.clone());
        tasks.spawn(async move {
            token.cancelled().await;
            up.store(false, Ordering::SeqCst);
            l.lock().unwrap().push("api stopped".into());
        });

        let started = tokio::time::Instant::now();
        stages
            .stop(
                &calls,
                || note("audit flushed"),
                |s| note(&format!("{s:?}")),
            )
            .await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "ingest stopped",
                "Ingest",
                "call completed and audited",
                "Deciding",
                "api stopped",
                "Api",
                "audit flushed",
                "Audit"
            ]
        );
        assert!(!api_up.load(Ordering::SeqCst));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    /// No decision is made on the silence of stopped ingestion.
    #[tokio::test(start_paused = true)]
    async fn decisions_stop_with_ingest_before_the_deciding_stage() {
        let stages = Stages::default();
        let decisions = stages.decisions_stop();
        let (deciding, _) = &stages.deciding;
        let (d, stop) = (deciding.clone(), decisions.clone());
        let seen = tokio::spawn(async move {
            stop.cancelled().await;
            d.is_cancelled()
        });
        stages.ingest.0.cancel();
        assert!(!seen.await.unwrap(), "the deciding stage was still running");
        assert!(decisions.is_cancelled());
    }

    /// Tasks that ignore their signal cost each stage its grace, no more.
    #[tokio::test(start_paused = true)]
    async fn a_stuck_stage_is_bounded() {
        let stages = Stages::default();
        stages.ingest.1.spawn(std::future::pending::<()>());
        stages.api.1.spawn(std::future::pending::<()>());
        let started = tokio::time::Instant::now();
        stages.stop(&AtomicUsize::new(0), || {}, |_| {}).await;
        assert_eq!(started.elapsed(), SHUTDOWN_GRACE * 2);
    }
}
