//! Publishing rapidscale's per-second view to CloudWatch as high-resolution
//! custom metrics (`[cloudwatch] publish = true`).
//!
//! Every `publish_interval` the publisher turns the seconds sealed since the
//! last round into datums (requests/s per stream; demand and recommended
//! units per table, index and operation; instances by state), queues them in
//! a bounded buffer (the oldest are dropped, and counted, when CloudWatch
//! cannot be reached), and sends them in PutMetricData calls of at most
//! 1,000 datums. The buffer logic is pure and tested here; the call goes
//! through the `cloud::Metrics` port.

pub mod lead;
pub mod watch;

use std::collections::VecDeque;

use serde::Serialize;

pub use crate::cloud::metrics::{Datum, MetricUnit, MAX_PER_CALL};
use crate::slot::Slot;

/// Datums waiting to be sent, at most `capacity`.
#[derive(Debug)]
pub struct Buffer {
    queue: VecDeque<Datum>,
    capacity: usize,
    /// Datums dropped because the buffer was full.
    pub dropped: u64,
    /// Datums sent.
    pub sent: u64,
}

impl Buffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            sent: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues datums; when full, the oldest go first.
    pub fn push(&mut self, datums: impl IntoIterator<Item = Datum>) {
        for d in datums {
            if self.queue.len() == self.capacity {
                self.queue.pop_front();
                self.dropped += 1;
            }
            self.queue.push_back(d);
        }
    }

    /// The next batch to send (oldest first), at most `MAX_PER_CALL`.
    pub fn next_batch(&self) -> Vec<Datum> {
        self.queue.iter().take(MAX_PER_CALL).cloned().collect()
    }

    /// The batch from `next_batch` was accepted.
    pub fn confirm(&mut self, n: usize) {
        let n = n.min(self.queue.len());
        self.queue.drain(..n);
        self.sent += n as u64;
    }
}

/// The seconds (`from`, `upto`] a round publishes: everything sealed since
/// the last round (`after`), or on the first round the last interval's worth.
/// None while nothing new is sealed.
pub fn next_round(
    after: Option<i64>,
    sealed: Option<i64>,
    interval: std::time::Duration,
) -> Option<(i64, i64)> {
    let upto = sealed?;
    let from = after.unwrap_or(upto - interval.as_secs().max(1) as i64);
    (upto > from).then_some((from, upto))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_follow_sealed_seconds_so_a_lagging_sealer_skips_nothing() {
        let ten = std::time::Duration::from_secs(10);
        assert_eq!(next_round(None, None, ten), None);
        assert_eq!(next_round(None, Some(100), ten), Some((90, 100)));
        // The sealer lagged: nothing new, the round waits.
        assert_eq!(next_round(Some(100), Some(100), ten), None);
        // It caught up by 25 s: all of them go, none skipped.
        assert_eq!(next_round(Some(100), Some(125), ten), Some((100, 125)));
    }

    fn d(second: i64) -> Datum {
        Datum {
            name: "RequestsPerSecond".into(),
            dimensions: vec![("Stream".into(), "statsd".into())],
            second,
            value: 1.0,
            unit: MetricUnit::CountPerSecond,
        }
    }

    #[test]
    fn batches_hold_at_most_1000_and_the_oldest_go_first() {
        let mut b = Buffer::new(5000);
        b.push((0..2500).map(d));
        let first = b.next_batch();
        assert_eq!(first.len(), 1000);
        assert_eq!(first[0].second, 0);
        b.confirm(first.len());
        assert_eq!(b.next_batch()[0].second, 1000);
        assert_eq!((b.len(), b.sent), (1500, 1000));
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let mut b = Buffer::new(100);
        b.push((0..250).map(d));
        assert_eq!(b.len(), 100);
        assert_eq!(b.dropped, 150);
        assert_eq!(b.next_batch()[0].second, 150);
    }
}

/// What the publisher reports, for the API and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishStatus {
    pub sent: u64,
    pub dropped: u64,
    pub buffered: usize,
    pub last_error: Option<String>,
    /// Fleet-level datums (demand, capacity, instances) queued; with
    /// coordination only while this sidecar leads.
    pub fleet_datums: u64,
}

/// The publishing task.
pub struct Publisher<C> {
    pub cloud: std::sync::Arc<C>,
    pub config: crate::config::CloudWatchConfig,
    pub store: crate::ingest::SharedStore,
    pub decisions: crate::decide::run::Decisions,
    /// With coordination: fleet-level datums only while this sidecar leads.
    pub leadership: Option<Slot<crate::coord::task::Role>>,
    pub status: Slot<Option<PublishStatus>>,
}

impl<C: crate::cloud::Metrics> Publisher<C> {
    fn dims(&self, own: &[(&str, &str)]) -> Vec<(String, String)> {
        own.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .chain(self.config.dimensions.iter().cloned())
            .collect()
    }

    /// Datums for the seconds in (`after`, `upto`], and how many of them are
    /// fleet-level.
    fn collect(&self, after: i64, upto: i64) -> (Vec<Datum>, u64) {
        let mut out = Vec::new();
        {
            let store = crate::ingest::lock(&self.store);
            for id in store.stream_ids() {
                let name = store.name(id).to_string();
                let n = (upto - after).clamp(0, 3600) as usize;
                for (second, p) in store.seconds(id, n + 2) {
                    if second > after && second <= upto && !p.value.is_nan() {
                        out.push(Datum {
                            name: "RequestsPerSecond".into(),
                            dimensions: self.dims(&[("Stream", &name)]),
                            second,
                            value: p.value as f64,
                            unit: MetricUnit::CountPerSecond,
                        });
                    }
                }
            }
        }
        let leads = self
            .leadership
            .as_ref()
            .is_none_or(|r| matches!(r.get(), crate::coord::task::Role::Leader { .. }));
        if !leads {
            return (out, 0);
        }
        let own = out.len();
        for a in self.decisions.tables.get().iter() {
            let index = a.index.clone().unwrap_or_else(|| "-".into());
            for o in &a.ops {
                let dims = self.dims(&[
                    ("Table", &a.table),
                    ("Index", &index),
                    ("Operation", o.op.as_str()),
                ]);
                if let Some(v) = o.demand {
                    out.push(Datum {
                        name: "DemandUnits".into(),
                        dimensions: dims.clone(),
                        second: upto,
                        value: v,
                        unit: MetricUnit::CountPerSecond,
                    });
                }
                out.push(Datum {
                    name: "RecommendedUnits".into(),
                    dimensions: dims.clone(),
                    second: upto,
                    value: a.recommended(o.op, o.provisioned) as f64,
                    unit: MetricUnit::CountPerSecond,
                });
                out.push(Datum {
                    name: "ProvisionedUnits".into(),
                    dimensions: dims,
                    second: upto,
                    value: o.provisioned as f64,
                    unit: MetricUnit::CountPerSecond,
                });
            }
        }
        if let Some(g) = self.decisions.group.get() {
            for (state, n) in [
                ("serving", g.counts.serving),
                ("warming", g.counts.warming + g.counts.settling),
                ("desired", g.desired),
            ] {
                out.push(Datum {
                    name: "Instances".into(),
                    dimensions: self.dims(&[("Group", &g.group), ("State", state)]),
                    second: upto,
                    value: n as f64,
                    unit: MetricUnit::Count,
                });
            }
        }
        let fleet = (out.len() - own) as u64;
        (out, fleet)
    }

    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut buffer = Buffer::new(self.config.buffer);
        let mut ticker = tokio::time::interval(self.config.publish_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Rounds are keyed on the store's newest sealed second, not on the
        // clock: under load the sealer can lag the clock, and a second the
        // store has not sealed yet must wait for the next round, not be
        // skipped.
        let mut after: Option<i64> = None;
        let mut last_error = None;
        let mut fleet_datums = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let sealed = crate::ingest::lock(&self.store).last_sealed_second();
            if let Some((from, upto)) = next_round(after, sealed, self.config.publish_interval) {
                let (datums, fleet) = self.collect(from, upto);
                buffer.push(datums);
                fleet_datums += fleet;
                after = Some(upto);
            }
            // Send what the buffer holds; stop at the first failure and keep
            // the rest for the next round (bounded: the oldest go first).
            while !buffer.is_empty() {
                let batch = buffer.next_batch();
                let call = self.cloud.put_metric_data(&self.config.namespace, &batch);
                let result = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = call => r,
                };
                match result {
                    Ok(()) => {
                        buffer.confirm(batch.len());
                        last_error = None;
                    }
                    Err(e) => {
                        if last_error.is_none() {
                            tracing::warn!(error = %e, buffered = buffer.len(), "Cannot publish to CloudWatch; keeping the newest datums.");
                        }
                        last_error = Some(e.to_string());
                        break;
                    }
                }
            }
            self.status.set(Some(PublishStatus {
                sent: buffer.sent,
                dropped: buffer.dropped,
                buffered: buffer.len(),
                last_error: last_error.clone(),
                fleet_datums,
            }));
        }
    }
}
