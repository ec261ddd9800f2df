//! The per-second decision loops: read the store and the cloud view, ask
//! the pure policy, hand changes to the actuator, publish what was decided
//! for the API. No AWS types, no policy arithmetic here: only plumbing and
//! the gates that need runtime state (calls in flight, table status, mode).

pub mod asg;
pub mod dynamodb;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::audit::Outcome;

/// Calls `decide` every `dynamodb::DECIDE_EVERY` until `shutdown`.
pub async fn decide_every(shutdown: CancellationToken, mut decide: impl FnMut(&CancellationToken)) {
    let mut ticker = tokio::time::interval(dynamodb::DECIDE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        decide(&shutdown);
    }
}

/// First pause after a change whose retries all failed.
pub const COOLDOWN_BASE: Duration = Duration::from_secs(5);
/// Longest pause between failed changes of one resource.
pub const COOLDOWN_MAX: Duration = Duration::from_secs(60);

/// Per resource: after a change ends `failed` (its bounded retries spent on
/// throttling or an outage), the next attempt waits 5 s, then 10, 20, ...
/// up to 60 s, a random half of it jitter. Without this every tick would
/// start a fresh round of retries: a storm of calls while AWS pushes back.
#[derive(Debug, Default, Clone)]
pub struct Cooldown(Arc<Mutex<HashMap<String, Failures>>>);

/// Failed changes in a row, and when the next may start.
type Failures = (u32, DateTime<Utc>);

impl Cooldown {
    /// The pause after `failures` failed changes in a row.
    pub fn pause(failures: u32, jitter: f64) -> Duration {
        let full = COOLDOWN_BASE
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(COOLDOWN_MAX);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Records how a change of `resource` ended.
    pub fn record(&self, resource: &str, outcome: Outcome, now: DateTime<Utc>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Outcome::Failed => {
                let e = m.entry(resource.to_string()).or_insert((0, now));
                e.0 += 1;
                e.1 = now
                    + chrono::TimeDelta::from_std(Self::pause(e.0, fastrand::f64()))
                        .unwrap_or_default();
            }
            Outcome::Applied => {
                m.remove(resource);
            }
            _ => {}
        }
    }

    /// Why `resource` must wait, while it must.
    pub fn gate(&self, resource: &str, now: DateTime<Utc>) -> Option<String> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (failures, until) = m.get(resource)?;
        (now < *until).then(|| {
            format!(
                "{failures} change(s) in a row failed: next attempt in {}s",
                (*until - now).num_seconds().max(1)
            )
        })
    }
}

#[cfg(test)]
mod cooldown_tests {
    use super::*;

    #[test]
    fn pauses_double_from_5_s_to_60_s_with_half_jitter() {
        assert_eq!(Cooldown::pause(1, 1.0), Duration::from_secs(5));
        assert_eq!(Cooldown::pause(2, 1.0), Duration::from_secs(10));
        assert_eq!(Cooldown::pause(3, 0.0), Duration::from_secs(10));
        assert_eq!(Cooldown::pause(9, 1.0), COOLDOWN_MAX);
    }

    #[test]
    fn a_failure_gates_until_its_pause_is_over_and_success_clears_it() {
        let c = Cooldown::default();
        let t = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
        assert_eq!(c.gate("posts", t), None);
        c.record("posts", Outcome::Failed, t);
        assert!(c
            .gate("posts", t)
            .unwrap()
            .contains("1 change(s) in a row failed"));
        assert_eq!(c.gate("posts", t + chrono::TimeDelta::seconds(6)), None);
        assert_eq!(c.gate("other", t), None);
        c.record("posts", Outcome::Failed, t);
        c.record("posts", Outcome::Applied, t);
        assert_eq!(c.gate("posts", t), None);
    }
}
