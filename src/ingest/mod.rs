//! Ingestion: bytes from the application's world -> observations in the
//! per-second store.
//!
//! Each source runs as its own task and writes into the shared store through
//! a [`Sink`]. Bad input never stops a source: each dropped packet or line
//! is counted by source and reason in [`SourceCounters`]; nothing is logged
//! per line. The app logs a summary of new drops at most every 10 s.

pub mod access_log;
pub mod selector;
pub mod statsd;
pub mod status_page;
pub mod trace;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::SharedClock;
use crate::series::{Arrival, Observation, Rejected, SeriesStore, StreamId};

/// Why an input was dropped. `as_str` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    // StatsD lines
    NoValue,
    EmptyName,
    BadValue,
    BadType,
    BadSampleRate,
    BadTimestamp,
    NotUtf8,
    PacketTooLarge,
    // Access-log lines
    FormatMismatch,
    BadTime,
    BadNumber,
    NotJson,
    LineTooLong,
    // Any source: the second was already sealed, or is too far ahead.
    Late,
    Future,
    // A StatsD set already at its distinct-member bound for the second.
    SetFull,
    // Status pages
    PollFailed,
    BadStatusPage,
    // HTTP ingest bodies
    BodyTooLarge,
}

impl DropReason {
    pub const ALL: [DropReason; 19] = [
        DropReason::NoValue,
        DropReason::EmptyName,
        DropReason::BadValue,
        DropReason::BadType,
        DropReason::BadSampleRate,
        DropReason::BadTimestamp,
        DropReason::NotUtf8,
        DropReason::PacketTooLarge,
        DropReason::FormatMismatch,
        DropReason::BadTime,
        DropReason::BadNumber,
        DropReason::NotJson,
        DropReason::LineTooLong,
        DropReason::Late,
        DropReason::Future,
        DropReason::SetFull,
        DropReason::PollFailed,
        DropReason::BadStatusPage,
        DropReason::BodyTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoValue => "no_value",
            DropReason::EmptyName => "empty_name",
            DropReason::BadValue => "bad_value",
            DropReason::BadType => "bad_type",
            DropReason::BadSampleRate => "bad_sample_rate",
            DropReason::BadTimestamp => "bad_timestamp",
            DropReason::NotUtf8 => "not_utf8",
            DropReason::PacketTooLarge => "packet_too_large",
            DropReason::FormatMismatch => "format_mismatch",
            DropReason::BadTime => "bad_time",
            DropReason::BadNumber => "bad_number",
            DropReason::NotJson => "not_json",
            DropReason::LineTooLong => "line_too_long",
            DropReason::Late => "late",
            DropReason::Future => "future",
            DropReason::SetFull => "set_full",
            DropReason::PollFailed => "poll_failed",
            DropReason::BadStatusPage => "bad_status_page",
            DropReason::BodyTooLarge => "body_too_large",
        }
    }

    fn index(self) -> usize {
        DropReason::ALL
            .iter()
            .position(|r| *r == self)
            .expect("ALL lists every reason")
    }
}

impl From<Rejected> for DropReason {
    fn from(r: Rejected) -> Self {
        match r {
            Rejected::Late => DropReason::Late,
            Rejected::Future => DropReason::Future,
            Rejected::SetFull => DropReason::SetFull,
        }
    }
}

/// Counters of one source. Lock-free; read by the API and the summary log.
#[derive(Debug)]
pub struct SourceCounters {
    pub source: String,
    /// Packets, lines or polls that were accepted.
    accepted: AtomicU64,
    /// Lines/metrics that parsed but matched no configured selector.
    unmatched: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Whether the source can currently take input: the socket is bound, the
    /// log file is open, the status page answered its last poll.
    up: std::sync::atomic::AtomicBool,
}

impl SourceCounters {
    pub fn new(source: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            source: source.into(),
            accepted: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            dropped: std::array::from_fn(|_| AtomicU64::new(0)),
            up: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unmatched(&self) {
        self.unmatched.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            source: self.source.clone(),
            accepted: self.accepted.load(Ordering::Relaxed),
            unmatched: self.unmatched.load(Ordering::Relaxed),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (r.as_str(), self.dropped[r.index()].load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            up: self.is_up(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CounterSnapshot {
    pub source: String,
    pub accepted: u64,
    pub unmatched: u64,
    pub dropped: Vec<(&'static str, u64)>,
    pub up: bool,
}

impl CounterSnapshot {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason.as_str())
            .map_or(0, |(_, n)| *n)
    }

    /// New drops since `before`, by reason, for the periodic summary.
    pub fn drops_since(&self, before: Option<&CounterSnapshot>) -> Vec<(&'static str, u64)> {
        self.dropped
            .iter()
            .map(|(r, n)| {
                let prev = before.map_or(0, |b| {
                    b.dropped
                        .iter()
                        .find(|(r2, _)| r2 == r)
                        .map_or(0, |(_, n)| *n)
                });
                (*r, n - prev.min(*n))
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// How a source's samples arrive, which decides what a quiet second means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The application pushes one sample per event (StatsD, log lines, a
    /// recorded trace): a second without any is zero traffic while the
    /// stream is alive.
    Pushed,
    /// rapidscale polls a counter (status pages): a second without a
    /// successful poll is unknown, never zero.
    Polled,
}

impl Delivery {
    /// The kind of stream this delivery feeds.
    pub fn stream_kind(self) -> crate::series::StreamKind {
        match self {
            Delivery::Pushed => crate::series::StreamKind::Push,
            Delivery::Polled => crate::series::StreamKind::Poll,
        }
    }
}

pub type SharedStore = Arc<Mutex<SeriesStore>>;

/// Locks the store; a poisoned lock (a panic elsewhere) still holds valid
/// data, because every store method leaves it consistent between calls.
pub fn lock(store: &SharedStore) -> MutexGuard<'_, SeriesStore> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where sources write: the store, the clock and their counters.
#[derive(Clone)]
pub struct Sink {
    pub store: SharedStore,
    pub clock: SharedClock,
    pub counters: Arc<SourceCounters>,
}

impl Sink {
    /// Records one observation, counting a refusal as a drop.
    pub fn observe(&self, stream: StreamId, second: i64, obs: Observation) -> bool {
        let now = Arrival::at(self.clock.now());
        match lock(&self.store).observe(stream, second, obs, now) {
            Ok(()) => true,
            Err(r) => {
                self.counters.dropped(r.into());
                false
            }
        }
    }
}
