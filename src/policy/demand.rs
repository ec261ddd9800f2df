//! What a policy knows about demand: the recent per-second values (the
//! newest still inside their grace window), the current second's rate so
//! far, and how long the source has been silent.

use crate::series::{SeriesStore, StreamId};

/// The current second counts once this much of it has passed; earlier its
/// rate so far is too noisy to extrapolate.
pub(crate) const PARTIAL_AFTER: f64 = 0.25;
/// Samples the newest quarter-seconds need before their rate is used.
pub(crate) const RECENT_MIN_SAMPLES: u32 = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct DemandView {
    /// Demand per second of the whole seconds before now, oldest first
    /// (NaN: unknown). The newest entry is the second that just ended.
    pub seconds: Vec<f64>,
    /// The current second's rate so far, once `PARTIAL_AFTER` of it passed.
    pub partial_rate: Option<f64>,
    /// Whole seconds since the newest sample; None: never had one.
    pub silent_for: Option<i64>,
}

impl DemandView {
    /// A view over whole seconds only (tests, replays).
    pub fn from_seconds(seconds: &[f64]) -> DemandView {
        DemandView {
            seconds: seconds.to_vec(),
            partial_rate: None,
            silent_for: Some(0),
        }
    }

    /// Reads the view of `stream` at `now` (unix seconds with fraction).
    pub fn from_store(
        store: &SeriesStore,
        stream: StreamId,
        now: f64,
        history: usize,
    ) -> DemandView {
        let now_s = now.floor() as i64;
        let elapsed = now - now_s as f64;
        // Only a second that has samples has a rate so far (poll streams never
        // do). The newest 250-500 ms win when they hold enough samples to be
        // trusted: a step that lands mid-second then counts at its full height.
        let partial_rate = (elapsed >= PARTIAL_AFTER)
            .then(|| {
                store
                    .recent_rate(stream, now_s, elapsed, RECENT_MIN_SAMPLES)
                    .or_else(|| store.open_value(stream, now_s).map(|v| v / elapsed))
            })
            .flatten();
        DemandView {
            seconds: store.recent(stream, now_s, history),
            partial_rate,
            silent_for: store.last_sample_second(stream).map(|l| (now_s - l).max(0)),
        }
    }

    /// Demand in units: requests/s x units per request.
    pub fn scaled(mut self, k: f64) -> DemandView {
        for v in &mut self.seconds {
            *v *= k;
        }
        self.partial_rate = self.partial_rate.map(|r| r * k);
        self
    }

    pub fn is_stale(&self, stale_after_s: i64) -> bool {
        self.silent_for.is_none_or(|s| s > stale_after_s)
    }

    /// The newest `n` values, counting the current second's rate so far as
    /// the newest when it is known.
    pub fn newest(&self, n: usize) -> Vec<f64> {
        let from_seconds = n.saturating_sub(usize::from(self.partial_rate.is_some()));
        let skip = self.seconds.len().saturating_sub(from_seconds);
        let mut out = Vec::with_capacity(n);
        out.extend_from_slice(&self.seconds[skip..]);
        out.extend(self.partial_rate);
        out
    }

    /// The highest known value of the newest `n` (None: none known).
    pub fn peak(&self, n: usize) -> Option<f64> {
        let from_seconds = n.saturating_sub(usize::from(self.partial_rate.is_some()));
        let skip = self.seconds.len().saturating_sub(from_seconds);
        self.seconds[skip..]
            .iter()
            .chain(self.partial_rate.as_ref())
            .copied()
            .filter(|v| !v.is_nan())
            .reduce(f64::max)
    }

    /// The mean of the known values of the newest `n` (None: none known).
    pub fn known_mean(&self, n: usize) -> Option<f64> {
        let from_seconds = n.saturating_sub(usize::from(self.partial_rate.is_some()));
        let skip = self.seconds.len().saturating_sub(from_seconds);
        let (sum, count) = self.seconds[skip..]
            .iter()
            .chain(self.partial_rate.as_ref())
            .filter(|v| !v.is_nan())
            .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
        (count > 0).then(|| sum / count as f64)
    }

    /// How many of the newest `n` seconds are unknown (missing ones count).
    pub fn unknown_in(&self, n: usize) -> usize {
        let skip = self.seconds.len().saturating_sub(n);
        let held = self.seconds.len() - skip;
        n - held + self.seconds[skip..].iter().filter(|v| v.is_nan()).count()
    }

    /// Known values of the last `n` whole seconds, and how many were unknown.
    pub fn window(&self, n: usize) -> (Vec<f64>, usize) {
        let skip = self.seconds.len().saturating_sub(n);
        let slice = &self.seconds[skip..];
        let mut known = Vec::with_capacity(slice.len());
        known.extend(slice.iter().copied().filter(|v| !v.is_nan()));
        let unknown = n - known.len();
        (known, unknown)
    }
}
