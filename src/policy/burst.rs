//! DynamoDB's burst capacity, as rapidscale models it from the demand it
//! sees: unused provisioned capacity accrues, up to the seconds of the
//! provisioned rate the bucket is trusted to hold, and demand above
//! provisioned spends it. AWS documents the bucket as best effort (300 s at
//! most; it may also serve background work without notice), which is why
//! the policy counts on only `burst_share` of the estimate, and why
//! throttling lowers what it trusts ([`BurstTrust`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The most DynamoDB retains: 300 s of unused capacity.
pub(crate) const BURST_SECONDS: f64 = 300.0;
/// Throttling never lowers the trusted bucket below this many seconds: a
/// throttle right after a maintenance drain says little about its size.
pub(crate) const MIN_TRUSTED_SECONDS: f64 = 60.0;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BurstModel {
    /// Units banked.
    pub units: f64,
    /// The newest second observed.
    last: Option<i64>,
}

impl BurstModel {
    /// Feeds one whole second, with a bucket of `cap_s` seconds of the
    /// provisioned rate; seconds already seen and unknown seconds (NaN)
    /// change nothing, so the estimate never grows on missing data.
    pub(crate) fn observe(&mut self, second: i64, demand: f64, provisioned: u64, cap_s: f64) {
        if self.last.is_some_and(|l| second <= l) {
            return;
        }
        self.last = Some(second);
        if demand.is_nan() {
            return;
        }
        let prov = provisioned as f64;
        self.units = (self.units + prov - demand).clamp(0.0, prov * cap_s);
    }

    pub(crate) fn last_second(&self) -> Option<i64> {
        self.last
    }
}

/// How big a bucket the policy trusts for one capacity. Any throttling
/// empties the model at once (the bucket is empty now, whatever it was
/// thought to hold; it refills as the model does). Throttling during a bet
/// on burst also proves the real bucket smaller than trusted: the bet
/// drained the real bucket with what the model spent since the bet began,
/// so the real bucket held that share of what the model held then; the
/// trusted size is scaled by it (never below [`MIN_TRUSTED_SECONDS`]), for
/// `memory`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BurstTrust {
    seconds: f64,
    lowered_at: Option<DateTime<Utc>>,
}

impl Default for BurstTrust {
    fn default() -> Self {
        Self {
            seconds: BURST_SECONDS,
            lowered_at: None,
        }
    }
}

impl BurstTrust {
    /// Seconds of the provisioned rate the bucket is trusted to hold at `now`.
    pub(crate) fn seconds(&mut self, now: DateTime<Utc>, memory: Duration) -> f64 {
        let memory = chrono::TimeDelta::from_std(memory).unwrap_or(chrono::TimeDelta::MAX);
        if self.lowered_at.is_some_and(|at| now - at >= memory) {
            *self = BurstTrust::default();
        }
        self.seconds
    }

    /// Throttling was seen at `now` while the model held `model` for a
    /// capacity of `provisioned`: empty the model, and after a bet
    /// (`betting`) lower the trust to what the model had spent from full.
    pub(crate) fn throttled(
        &mut self,
        now: DateTime<Utc>,
        model: &mut BurstModel,
        provisioned: u64,
        betting: bool,
    ) {
        if betting {
            let prov = (provisioned as f64).max(1.0);
            let spent_s = (self.seconds - model.units / prov).max(0.0);
            self.seconds = spent_s.clamp(MIN_TRUSTED_SECONDS.min(self.seconds), self.seconds);
            self.lowered_at = Some(now);
        }
        model.units = 0.0;
    }

    /// A slower report (CloudWatch's throttle metrics, a minute or more
    /// late): halve the trust, never below the floor.
    pub(crate) fn reported(&mut self, now: DateTime<Utc>) {
        self.seconds = (self.seconds / 2.0).max(MIN_TRUSTED_SECONDS.min(self.seconds));
        self.lowered_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_unused_capacity_up_to_300_seconds_and_spends_it() {
        let mut b = BurstModel::default();
        for s in 0..10 {
            b.observe(s, 60.0, 100, BURST_SECONDS);
        }
        assert_eq!(b.units, 400.0);
        b.observe(10, 300.0, 100, BURST_SECONDS);
        assert_eq!(b.units, 200.0);
        b.observe(10, 0.0, 100, BURST_SECONDS);
        assert_eq!(b.units, 200.0, "a second is counted once");
        b.observe(11, f64::NAN, 100, BURST_SECONDS);
        assert_eq!(b.units, 200.0, "unknown seconds bank nothing");
        b.observe(12, 1000.0, 100, BURST_SECONDS);
        assert_eq!(b.units, 0.0);
        for s in 13..2000 {
            b.observe(s, 0.0, 100, BURST_SECONDS);
        }
        assert_eq!(b.units, 30_000.0);
        // A lower capacity caps the bank lower, and so does a smaller trust.
        b.observe(2000, 0.0, 10, BURST_SECONDS);
        assert_eq!(b.units, 3000.0);
        b.observe(2001, 0.0, 10, 60.0);
        assert_eq!(b.units, 600.0);
        assert_eq!(b.last_second(), Some(2001));
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_403_200 + s, 0).unwrap()
    }

    #[test]
    fn throttling_lowers_the_trust_to_what_was_spent_then_it_recovers() {
        let memory = Duration::from_secs(6 * 3600);
        let mut trust = BurstTrust::default();
        let mut model = BurstModel::default();
        for s in 0..400 {
            model.observe(s, 0.0, 100, trust.seconds(at(s), memory));
        }
        assert_eq!(model.units, 30_000.0);
        // A surge spends 60 s worth, then DynamoDB throttles: the bucket
        // was 60 s, not 300.
        for s in 400..430 {
            model.observe(s, 300.0, 100, trust.seconds(at(s), memory));
        }
        assert_eq!(model.units, 24_000.0);
        trust.throttled(at(430), &mut model, 100, true);
        assert_eq!(model.units, 0.0);
        assert_eq!(trust.seconds(at(431), memory), 60.0);
        // Outside a bet, throttling empties the model and trusts as before.
        let mut model = BurstModel {
            units: 1_000.0,
            last: None,
        };
        let mut other = BurstTrust::default();
        other.throttled(at(430), &mut model, 100, false);
        assert_eq!(
            (model.units, other.seconds(at(431), memory)),
            (0.0, BURST_SECONDS)
        );
        // A throttle that comes when little was spent (a maintenance
        // drain) lowers it to the floor at most.
        let mut model = BurstModel {
            units: 5_900.0,
            last: None,
        };
        trust.throttled(at(500), &mut model, 100, true);
        assert_eq!(trust.seconds(at(501), memory), MIN_TRUSTED_SECONDS);
        // CloudWatch's later word halves it, never below the floor.
        let mut t = BurstTrust::default();
        t.reported(at(0));
        assert_eq!(t.seconds(at(1), memory), 150.0);
        // `memory` after the last lowering, the full bucket is trusted again.
        assert_eq!(
            trust.seconds(at(500 + 6 * 3600 - 1), memory),
            MIN_TRUSTED_SECONDS
        );
        assert_eq!(trust.seconds(at(500 + 6 * 3600), memory), BURST_SECONDS);
    }
}
