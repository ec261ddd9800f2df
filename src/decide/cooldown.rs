//! Per resource: after a change ends `failed` (its bounded retries spent on
//! throttling or an outage), the next attempt waits 5 s, then 10, 20, ...
//! up to 60 s, a random half of it jitter. Without this every tick would
//! start a fresh round of retries: a storm of calls while AWS pushes back.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::audit::Outcome;

/// First pause after a change whose retries all failed.
pub(crate) const COOLDOWN_BASE: Duration = Duration::from_secs(5);
/// Longest pause between failed changes of one resource.
pub(crate) const COOLDOWN_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Clone)]
pub(crate) struct Cooldown(HashMap<String, Failures>);

/// Failed changes in a row, and when the next may start.
type Failures = (u32, DateTime<Utc>);

impl Cooldown {
    /// The pause after `failures` failed changes in a row.
    pub(crate) fn pause(failures: u32, jitter: f64) -> Duration {
        let full = COOLDOWN_BASE
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(COOLDOWN_MAX);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Records how a change of `resource` ended.
    pub(crate) fn record(&mut self, resource: &str, outcome: Outcome, now: DateTime<Utc>) {
        match outcome {
            Outcome::Failed => {
                let e = self.0.entry(resource.to_string()).or_insert((0, now));
                e.0 += 1;
                e.1 = now
                    + chrono::TimeDelta::from_std(Self::pause(e.0, fastrand::f64()))
                        .unwrap_or_default();
            }
            Outcome::Applied => {
                self.0.remove(resource);
            }
            _ => {}
        }
    }

    /// While `resource` must wait: failures in a row and whole seconds left.
    pub(crate) fn wait(&self, resource: &str, now: DateTime<Utc>) -> Option<(u32, i64)> {
        let (failures, until) = self.0.get(resource)?;
        (now < *until).then(|| (*failures, (*until - now).num_seconds().max(1)))
    }
}

#[cfg(test)]
mod tests {
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
        let mut c = Cooldown::default();
        let t = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
        assert_eq!(c.wait("posts", t), None);
        c.record("posts", Outcome::Failed, t);
        assert_eq!(c.wait("posts", t).map(|(n, _)| n), Some(1));
        assert_eq!(c.wait("posts", t + chrono::TimeDelta::seconds(6)), None);
        assert_eq!(c.wait("other", t), None);
        c.record("posts", Outcome::Failed, t);
        c.record("posts", Outcome::Applied, t);
        assert_eq!(c.wait("posts", t), None);
    }
}
