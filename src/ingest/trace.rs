//! A recorded trace as an ingestion source: per-second request counts fed
//! into the store against the clock, one second's count just before that
//! second ends. The replay feeds its traffic this way, and a daemon can be
//! given the same source (the replay's equivalence test runs both), so both
//! see exactly the same store at every decision.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Delivery, Sink};
use crate::series::{Observation, StreamId};

/// How far into each second its count is fed: after the deciders' last
/// tick of the second (they tick on quarter seconds), before the next.
pub const FEED_AT_MS: u64 = 999;

/// What else happens each second of a trace, right after its count is fed
/// (the replay serves the second's demand on a simulated account and feeds
/// back what it throttled, as the application's counters would).
pub type SecondHook = Arc<dyn Fn(i64, &Sink) + Send + Sync>;

/// Per-second counts from a unix second on.
#[derive(Clone)]
pub struct TraceSource {
    /// The stream the counts feed.
    pub stream: String,
    /// The unix second of `counts[0]`.
    pub start: i64,
    pub counts: Arc<Vec<f64>>,
    /// Run after each second's count is fed, with that second.
    pub then: Option<SecondHook>,
}

impl std::fmt::Debug for TraceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceSource")
            .field("stream", &self.stream)
            .field("start", &self.start)
            .field("seconds", &self.counts.len())
            .field("then", &self.then.is_some())
            .finish()
    }
}

impl TraceSource {
    pub const DELIVERY: Delivery = Delivery::Pushed;

    /// The count of unix second `second`, if the trace has it.
    pub fn count(&self, second: i64) -> Option<f64> {
        let i = usize::try_from(second - self.start).ok()?;
        self.counts.get(i).copied()
    }

    /// The unix second after the trace's last.
    pub fn end(&self) -> i64 {
        self.start + self.counts.len() as i64
    }
}

/// Records `second`'s count. A trace is a complete record of its traffic:
/// a second it holds as 0 is fed as a known zero (a sample of 0 keeps the
/// stream alive, as a client reporting an idle second would), never as
/// silence. A second it does not hold (NaN) feeds nothing, so it is
/// unknown, as silence on the wire would be.
pub fn feed(source: &TraceSource, stream: StreamId, second: i64, sink: &Sink) {
    if let Some(n) = source.count(second).filter(|n| n.is_finite()) {
        if sink.observe(stream, second, Observation::Count(n.max(0.0))) {
            sink.counters.accept();
        }
    }
    if let Some(then) = &source.then {
        then(second, sink);
    }
}

/// Feeds every second of the trace at its [`FEED_AT_MS`], from the current
/// second on, until the trace ends or `shutdown` fires.
pub async fn run(source: TraceSource, stream: StreamId, sink: Sink, shutdown: CancellationToken) {
    sink.counters.set_up(true);
    let now = sink.clock.now();
    let mut second = now.timestamp().max(source.start);
    let into = Duration::from_millis(now.timestamp_subsec_millis() as u64);
    let start = tokio::time::Instant::now() - into;
    let mut offset = Duration::from_secs((second - now.timestamp()) as u64);
    while second < source.end() {
        let at = start + offset + Duration::from_millis(FEED_AT_MS);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(at) => {}
        }
        feed(&source, stream, second, &sink);
        second += 1;
        offset += Duration::from_secs(1);
    }
}
