//! Publishing rapidscale's per-second view to CloudWatch as high-resolution
//! custom metrics (`[cloudwatch] publish = true`).
//!
//! Every `publish_interval` the publisher turns the seconds sealed since the
//! last round into datums (requests/s per stream; demand and recommended
//! units per table, index and operation; instances by state), queues them in
//! a bounded buffer (the oldest are dropped, and counted, when CloudWatch
//! cannot be reached), and sends them in PutMetricData calls of at most
//! 1,000 datums. The buffer logic is pure and tested here; the call is in
//! `cloud::aws`.

use std::collections::VecDeque;

use serde::Serialize;

/// The most datums one PutMetricData call takes.
pub const MAX_PER_CALL: usize = 1000;

/// One value of one second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datum {
    pub name: String,
    pub dimensions: Vec<(String, String)>,
    /// Unix second the value belongs to.
    pub second: i64,
    pub value: f64,
    pub unit: MetricUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetricUnit {
    CountPerSecond,
    Count,
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
