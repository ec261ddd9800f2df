//! Wall-clock time. Durations and timers use `tokio::time` everywhere; this
//! trait only answers "what UTC instant is it", for bucket keys, the UTC day
//! of the DynamoDB decrease budget and the per-hour schedule. Tests drive it
//! from tokio's paused clock.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Whole unix seconds (the store's bucket key).
    fn unix_seconds(&self) -> i64 {
        self.now().timestamp()
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that starts at a fixed instant and advances with tokio's
/// clock, so `tokio::time::pause()` and `advance()` move it too.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_wall: DateTime<Utc>) -> Self {
        Self {
            start_wall,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.start_wall + TimeDelta::from_std(elapsed).unwrap_or(TimeDelta::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = TokioClock::starting_at(t0);
        assert_eq!(clock.unix_seconds(), 1_700_000_000);
        tokio::time::advance(std::time::Duration::from_millis(2500)).await;
        assert_eq!(clock.unix_seconds(), 1_700_000_002);
        assert_eq!(clock.now().timestamp_subsec_millis(), 500);
    }
}
