//! DynamoDB's burst capacity, as rapidscale models it from the demand it
//! sees: unused provisioned capacity accrues, up to `BURST_SECONDS` of the
//! provisioned rate, and demand above provisioned spends it. AWS documents
//! the bucket as best effort (it may also serve background work), which is
//! why the policy counts on only `burst_share` of the estimate.

pub(crate) const BURST_SECONDS: f64 = 300.0;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BurstModel {
    /// Units banked.
    pub units: f64,
    /// The newest second observed.
    last: Option<i64>,
}

impl BurstModel {
    /// Feeds one whole second; seconds already seen and unknown seconds
    /// (NaN) change nothing, so the estimate never grows on missing data.
    pub(crate) fn observe(&mut self, second: i64, demand: f64, provisioned: u64) {
        if self.last.is_some_and(|l| second <= l) {
            return;
        }
        self.last = Some(second);
        if demand.is_nan() {
            return;
        }
        let prov = provisioned as f64;
        self.units = (self.units + prov - demand).clamp(0.0, prov * BURST_SECONDS);
    }

    pub(crate) fn last_second(&self) -> Option<i64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_unused_capacity_up_to_300_seconds_and_spends_it() {
        let mut b = BurstModel::default();
        for s in 0..10 {
            b.observe(s, 60.0, 100);
        }
        assert_eq!(b.units, 400.0);
        b.observe(10, 300.0, 100);
        assert_eq!(b.units, 200.0);
        b.observe(10, 0.0, 100);
        assert_eq!(b.units, 200.0, "a second is counted once");
        b.observe(11, f64::NAN, 100);
        assert_eq!(b.units, 200.0, "unknown seconds bank nothing");
        b.observe(12, 1000.0, 100);
        assert_eq!(b.units, 0.0);
        for s in 13..2000 {
            b.observe(s, 0.0, 100);
        }
        assert_eq!(b.units, 30_000.0);
        // A lower capacity caps the bank lower.
        b.observe(2000, 0.0, 10);
        assert_eq!(b.units, 3000.0);
        assert_eq!(b.last_second(), Some(2000));
    }
}
