//! The per-second store: every stream's open seconds, sealed per-second ring
//! and per-minute ring, and the window statistics policies read.
//!
//! Pure and synchronous: no I/O, no clock. Callers pass whole unix seconds.
//! Invariants:
//! - memory per stream is fixed at creation (ring capacities from config);
//! - a second accepts samples until it is sealed, `grace` seconds after it
//!   ends, and never after;
//! - no data is not zero traffic. A sealed second of a push stream (StatsD,
//!   logs) with no sample is 0 only while the stream is alive: once it has
//!   been silent for more than `silence_after_s` seconds (or before its
//!   first sample), or for long enough that its recent sample rate would
//!   have put `SILENT_EXPECTED_SAMPLES` samples into the silence, its
//!   seconds are unknown (NaN): a stream of 20 samples a second that stops
//!   dead has been cut off, not gone quiet. A sealed second of a poll
//!   stream (status pages) with no successful poll is unknown. Every window
//!   skips unknown seconds.

mod ring;
mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};

use hdrhistogram::Histogram;

pub use ring::Ring;
pub use stats::{least_squares, percentile, Trend, WindowStats};

/// Index of a stream in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

/// How a stream treats a second in which nothing arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Samples are pushed per event: a quiet second is zero.
    Push,
    /// Values come from polls: a second without a poll is unknown.
    Poll,
}

/// When a sample arrived by the local clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub second: i64,
    pub millis: u32,
}

impl From<i64> for Arrival {
    fn from(second: i64) -> Self {
        Arrival { second, millis: 0 }
    }
}

impl Arrival {
    pub fn at(t: chrono::DateTime<chrono::Utc>) -> Arrival {
        Arrival {
            second: t.timestamp(),
            millis: t.timestamp_subsec_millis().min(999),
        }
    }
}

/// One sample for one second of one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// Add to the second's count (already scaled by 1 / sample rate).
    Count(f64),
    /// `count` events, each with this latency in milliseconds.
    Latency { count: f64, ms: f64 },
    /// The application reports the second's value directly; last one wins.
    Gauge(f64),
    /// Count a distinct member once per second (StatsD sets).
    SetMember(u64),
}

/// Why the store refused a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Its second is already sealed.
    Late,
    /// Its second is further in the future than clock skew explains.
    Future,
    /// A set already holds `MAX_SET_MEMBERS` distinct members this second.
    SetFull,
}

impl Rejected {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Late => "late",
            Rejected::Future => "future",
            Rejected::SetFull => "set_full",
        }
    }
}

/// A sealed second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondPoint {
    /// Events (or units) in that second; NaN when unknown.
    pub value: f32,
    /// Latency quantiles in ms; NaN when the second had no latency samples.
    pub p50_ms: f32,
    pub p95_ms: f32,
    pub p99_ms: f32,
}

impl SecondPoint {
    const GAP: SecondPoint = SecondPoint {
        value: f32::NAN,
        p50_ms: f32::NAN,
        p95_ms: f32::NAN,
        p99_ms: f32::NAN,
    };
    const ZERO: SecondPoint = SecondPoint {
        value: 0.0,
        p50_ms: f32::NAN,
        p95_ms: f32::NAN,
        p99_ms: f32::NAN,
    };

    pub fn is_gap(&self) -> bool {
        self.value.is_nan()
    }
}

/// A second's value as stored: sums of many large values saturate at
/// f32's largest finite value rather than become infinite.
fn saturate(v: f64) -> f32 {
    v.clamp(-(f32::MAX as f64), f32::MAX as f64) as f32
}

/// A sealed minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinutePoint {
    /// Sum over the known seconds of the minute.
    pub sum: f32,
    /// Highest per-second value of the minute (NaN when none was known).
    pub peak: f32,
    /// How many of the 60 seconds were known.
    pub known_seconds: u8,
}

impl MinutePoint {
    pub const EMPTY: MinutePoint = MinutePoint {
        sum: 0.0,
        peak: f32::NAN,
        known_seconds: 0,
    };

    /// Mean per second over the known seconds.
    pub fn mean_per_second(&self) -> f64 {
        if self.known_seconds == 0 {
            f64::NAN
        } else {
            self.sum as f64 / self.known_seconds as f64
        }
    }
}

/// Latencies above this (ms) are clamped; an hour-long request is not a latency.
const MAX_LATENCY_MS: f64 = 3_600_000.0;
/// How far ahead of the local clock a sample may be stamped.
const MAX_FUTURE_S: i64 = 2;
/// Distinct members one set (StatsD `|s`) counts per second: memory per
/// stream stays bounded whatever a sender invents; more are dropped and
/// counted (`set_full`).
pub const MAX_SET_MEMBERS: usize = 100_000;

/// A push stream silent for as long as its recent sample rate needs to put
/// this many samples into the silence is cut off, not quiet: its empty
/// seconds are unknown. Requests arriving independently at that rate leave
/// such a gap with probability e^-6 (0.25 %).
pub const SILENT_EXPECTED_SAMPLES: f64 = 6.0;
/// Seconds over which a push stream's sample rate is measured.
const RATE_WINDOW_S: usize = 10;

#[derive(Default)]
struct OpenSecond {
    observed: bool,
    /// Samples taken for this second.
    samples: u32,
    /// Of the current second only: what arrived in each quarter, and how many samples.
    quarters: [f64; 4],
    quarter_samples: [u32; 4],
    sum: f64,
    gauge: Option<f64>,
    members: Option<HashSet<u64>>,
    latency: Option<Histogram<u32>>,
}

impl OpenSecond {
    fn value(&self) -> f64 {
        self.sum + self.gauge.unwrap_or(0.0) + self.members.as_ref().map_or(0, |m| m.len()) as f64
    }
}

struct Stream {
    name: String,
    kind: StreamKind,
    open: BTreeMap<i64, OpenSecond>,
    seconds: Ring<SecondPoint>,
    minutes: Ring<MinutePoint>,
    current_minute: Option<(i64, MinutePoint)>,
    last_sample_second: Option<i64>,
    samples_total: u64,
    /// Histograms of sealed seconds, reset and reused to keep allocation off the hot path.
    spare_histograms: Vec<Histogram<u32>>,
    /// The newest sealed second that had a sample.
    last_observed_sealed: Option<i64>,
    /// Samples of the newest sealed seconds: slot `second mod RATE_WINDOW_S`
    /// holds (second, samples).
    sample_slots: [(i64, u32); RATE_WINDOW_S],
    /// Samples per second over the `RATE_WINDOW_S` seconds up to
    /// `last_observed_sealed`: how fast the stream was sending before any
    /// silence that follows.
    rate_before_silence: f64,
}

impl Stream {
    /// Whether `second`, in which nothing arrived, is quiet (zero) rather
    /// than unknown, `last` being the newest second that had a sample: only
    /// in a push stream, while the silence is shorter than
    /// `silence_after_s` and than the stream's recent rate makes plausible.
    fn quiet(&self, last: Option<i64>, second: i64, silence_after_s: i64) -> bool {
        self.kind == StreamKind::Push
            && last.is_some_and(|last| {
                let silent_for = second - last;
                silent_for <= silence_after_s
                    && self.rate_before_silence * (silent_for as f64) < SILENT_EXPECTED_SAMPLES
            })
    }

    fn count_samples(&mut self, second: i64, samples: u32) {
        self.sample_slots[second.rem_euclid(RATE_WINDOW_S as i64) as usize] = (second, samples);
        if samples > 0 {
            let from = second - RATE_WINDOW_S as i64;
            let total: u32 = self
                .sample_slots
                .iter()
                .filter(|(s, _)| *s > from && *s <= second)
                .map(|(_, n)| n)
                .sum();
            self.rate_before_silence = total as f64 / RATE_WINDOW_S as f64;
        }
    }
}

/// What the API and the periodic log show about a stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamSummary {
    pub name: String,
    pub last_second: Option<i64>,
    pub last_value: Option<f64>,
    pub mean_10s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub last_sample_second: Option<i64>,
    pub samples_total: u64,
}

/// Capacities and the grace window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreConfig {
    pub seconds_kept: usize,
    pub minutes_kept: usize,
    pub grace_s: i64,
    /// A push stream silent longer than this has unknown, not zero, seconds.
    pub silence_after_s: i64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            seconds_kept: 3600,
            minutes_kept: 8 * 1440,
            grace_s: 2,
            silence_after_s: 5,
        }
    }
}

pub struct SeriesStore {
    config: StoreConfig,
    streams: Vec<Stream>,
    by_name: HashMap<String, StreamId>,
    /// Every second below this is sealed.
    sealed_below: Option<i64>,
    /// Bumped by every sample taken and every seal: readers can tell that
    /// nothing changed since they last looked.
    generation: u64,
}

impl SeriesStore {
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            streams: Vec::new(),
            by_name: HashMap::new(),
            sealed_below: None,
            generation: 0,
        }
    }

    /// Changes with every sample taken and every seal.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Registers a stream (idempotent by name) and returns its id.
    pub fn register(&mut self, name: &str, kind: StreamKind) -> StreamId {
        if let Some(id) = self.by_name.get(name) {
            return *id;
        }
        let id = StreamId(self.streams.len() as u32);
        self.streams.push(Stream {
            name: name.to_string(),
            kind,
            open: BTreeMap::new(),
            seconds: Ring::new(self.config.seconds_kept),
            minutes: Ring::new(self.config.minutes_kept),
            current_minute: None,
            last_sample_second: None,
            samples_total: 0,
            spare_histograms: Vec::new(),
            last_observed_sealed: None,
            sample_slots: [(i64::MIN, 0); RATE_WINDOW_S],
            rate_before_silence: 0.0,
        });
        self.by_name.insert(name.to_string(), id);
        id
    }

    pub fn id(&self, name: &str) -> Option<StreamId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: StreamId) -> &str {
        &self.streams[id.0 as usize].name
    }

    pub fn stream_ids(&self) -> impl Iterator<Item = StreamId> {
        (0..self.streams.len() as u32).map(StreamId)
    }

    /// Adds one observation to `second` of `stream`. `now` is the local
    /// clock (a whole second, or a second and its milliseconds).
    pub fn observe(
        &mut self,
        stream: StreamId,
        second: i64,
        obs: Observation,
        now: impl Into<Arrival>,
    ) -> Result<(), Rejected> {
        let arrival = now.into();
        let now_s = arrival.second;
        if let Some(sealed_below) = self.sealed_below {
            if second < sealed_below {
                return Err(Rejected::Late);
            }
        }
        if second < now_s - self.config.grace_s {
            return Err(Rejected::Late);
        }
        if second > now_s + MAX_FUTURE_S {
            return Err(Rejected::Future);
        }
        self.generation += 1;
        let s = &mut self.streams[stream.0 as usize];
        s.samples_total += 1;
        s.last_sample_second = Some(s.last_sample_second.map_or(second, |l| l.max(second)));
        let open = s.open.entry(second).or_default();
        open.observed = true;
        open.samples = open.samples.saturating_add(1);
        if second == now_s {
            let q = (arrival.millis / 250).min(3) as usize;
            open.quarter_samples[q] += 1;
            open.quarters[q] += match obs {
                Observation::Count(n) => n,
                Observation::Latency { count, .. } => count,
                Observation::Gauge(_) | Observation::SetMember(_) => 0.0,
            };
        }
        match obs {
            Observation::Count(n) => open.sum += n,
            Observation::Latency { count, ms } => {
                open.sum += count;
                let h = open.latency.get_or_insert_with(|| {
                    s.spare_histograms
                        .pop()
                        .unwrap_or_else(new_latency_histogram)
                });
                // Microseconds, at least 1, so sub-millisecond latencies keep their shape.
                let us = (ms.clamp(0.0, MAX_LATENCY_MS) * 1000.0).max(1.0) as u64;
                let weight = count.round().clamp(1.0, u32::MAX as f64) as u32;
                // Cannot fail: the value is clamped inside the histogram's bounds.
                let _ = h.record_n(us, weight);
            }
            Observation::Gauge(v) => open.gauge = Some(v),
            Observation::SetMember(hash) => {
                let members = open.members.get_or_insert_with(HashSet::new);
                if members.len() >= MAX_SET_MEMBERS && !members.contains(&hash) {
                    return Err(Rejected::SetFull);
                }
                members.insert(hash);
            }
        }
        Ok(())
    }

    /// Seals every second older than `now_s - grace`, filling seconds with
    /// no open bucket as zero (push) or gap (poll).
    pub fn seal(&mut self, now_s: i64) {
        let horizon = now_s - self.config.grace_s;
        let from = match self.sealed_below {
            Some(s) if s >= horizon => return,
            Some(s) => s,
            // First seal: start the history at the horizon, there is nothing before.
            None => self
                .streams
                .iter()
                .filter_map(|s| s.open.keys().next().copied())
                .min()
                .unwrap_or(horizon)
                .min(horizon),
        };
        // After a long pause (a suspended process) fill at most one ring of history.
        let from = from.max(horizon - self.config.seconds_kept as i64);
        let silence_after_s = self.config.silence_after_s;
        for s in &mut self.streams {
            for second in from..horizon {
                let point = match s.open.remove(&second) {
                    Some(mut open) => {
                        if open.observed {
                            s.last_observed_sealed = Some(second);
                        }
                        s.count_samples(second, open.samples);
                        let point = seal_second(&open, s.kind);
                        if let Some(mut h) = open.latency.take() {
                            h.reset();
                            if s.spare_histograms.len() < 4 {
                                s.spare_histograms.push(h);
                            }
                        }
                        point
                    }
                    None => {
                        s.count_samples(second, 0);
                        if s.quiet(s.last_observed_sealed, second, silence_after_s) {
                            SecondPoint::ZERO
                        } else {
                            SecondPoint::GAP
                        }
                    }
                };
                s.seconds.push(second, point);
                roll_minute(s, second, point);
            }
            // Anything still open below the horizon came in before a jump; drop it.
            while let Some((&second, _)) = s.open.first_key_value() {
                if second >= horizon {
                    break;
                }
                s.open.pop_first();
            }
        }
        self.sealed_below = Some(horizon);
        self.generation += 1;
    }

    /// The newest sealed second, if any.
    pub fn last_sealed_second(&self) -> Option<i64> {
        self.sealed_below.map(|s| s - 1)
    }

    pub fn last_sample_second(&self, stream: StreamId) -> Option<i64> {
        self.streams[stream.0 as usize].last_sample_second
    }

    /// The current second's rate over its newest 250-500 ms, when at least
    /// `min_samples` samples arrived in that span. `elapsed` is how far into
    /// `now_second` the clock is. A step that lands mid-second shows at its
    /// full height here, while the whole second so far still averages it in.
    pub fn recent_rate(
        &self,
        stream: StreamId,
        now_second: i64,
        elapsed: f64,
        min_samples: u32,
    ) -> Option<f64> {
        let open = self.streams[stream.0 as usize].open.get(&now_second)?;
        let current = ((elapsed * 4.0).floor() as usize).min(3);
        if current == 0 {
            return None;
        }
        let samples = open.quarter_samples[current - 1] + open.quarter_samples[current];
        if samples < min_samples {
            return None;
        }
        let span = 0.25 + (elapsed - current as f64 * 0.25).max(0.0);
        Some((open.quarters[current - 1] + open.quarters[current]) / span)
    }

    /// The value of a second that is still open (the current second "so far").
    pub fn open_value(&self, stream: StreamId, second: i64) -> Option<f64> {
        self.streams[stream.0 as usize]
            .open
            .get(&second)
            .map(|o| o.value())
    }

    /// Values of the `n` whole seconds before `now_s`, oldest first, sealed
    /// or still open: open seconds give their value so far (a push stream's
    /// second with no sample is 0 while the stream is alive). NaN = unknown.
    pub fn recent(&self, stream: StreamId, now_s: i64, n: usize) -> Vec<f64> {
        let s = &self.streams[stream.0 as usize];
        let first = now_s - n as i64;
        // Sealed seconds straight from the ring (nothing below the sealed
        // horizon is open), then the seconds still open or not yet sealed.
        let sealed_end = self.sealed_below.map_or(first, |b| b.clamp(first, now_s));
        let mut out = Vec::with_capacity(n);
        for p in s.seconds.range(first, sealed_end) {
            out.push(p.map_or(f64::NAN, |p| p.value as f64));
        }
        out.extend((sealed_end..now_s).map(|second| {
            if let Some(open) = s.open.get(&second) {
                return open.value();
            }
            if s.quiet(s.last_sample_second, second, self.config.silence_after_s) {
                0.0
            } else {
                f64::NAN
            }
        }));
        out
    }

    /// The sealed point of one second.
    pub fn point(&self, stream: StreamId, second: i64) -> Option<SecondPoint> {
        self.streams[stream.0 as usize].seconds.get(second).copied()
    }

    /// The last `n` sealed seconds, oldest first, as (second, point).
    pub fn seconds(&self, stream: StreamId, n: usize) -> Vec<(i64, SecondPoint)> {
        self.streams[stream.0 as usize]
            .seconds
            .last_n(n)
            .map(|(s, p)| (s, *p))
            .collect()
    }

    /// The last `n` sealed minutes, oldest first, as (minute start second, point).
    pub fn minutes(&self, stream: StreamId, n: usize) -> Vec<(i64, MinutePoint)> {
        self.streams[stream.0 as usize]
            .minutes
            .last_n(n)
            .map(|(m, p)| (m * 60, *p))
            .collect()
    }

    /// Puts minutes saved before a restart back (minute start second,
    /// point), oldest first, before the store seals anything: the minute
    /// history survives restarts. Minutes between them and the first new
    /// one are unknown.
    pub fn restore_minutes(&mut self, stream: StreamId, minutes: &[(i64, MinutePoint)]) {
        let s = &mut self.streams[stream.0 as usize];
        for (start, point) in minutes {
            let key = start.div_euclid(60);
            if s.minutes
                .last_n(1)
                .next()
                .is_some_and(|(last, _)| key <= last)
            {
                continue;
            }
            s.minutes.push_after_gap(key, *point, MinutePoint::EMPTY);
        }
    }

    /// Max, mean and p90 over the last `n` sealed seconds (gaps skipped).
    pub fn window(&self, stream: StreamId, n: usize) -> Option<WindowStats> {
        let values: Vec<f64> = self.streams[stream.0 as usize]
            .seconds
            .last_n(n)
            .filter(|(_, p)| !p.is_gap())
            .map(|(_, p)| p.value as f64)
            .collect();
        WindowStats::of(&values)
    }

    /// Least-squares trend over the last `n` sealed seconds (gaps skipped).
    pub fn trend(&self, stream: StreamId, n: usize) -> Option<Trend> {
        let points: Vec<(f64, f64)> = self.streams[stream.0 as usize]
            .seconds
            .last_n(n)
            .filter(|(_, p)| !p.is_gap())
            .map(|(s, p)| (s as f64, p.value as f64))
            .collect();
        least_squares(&points)
    }

    pub fn summary(&self, stream: StreamId) -> StreamSummary {
        let s = &self.streams[stream.0 as usize];
        let last = s.seconds.last_n(1).next();
        let finite = |x: f32| (!x.is_nan()).then_some(x as f64);
        StreamSummary {
            name: s.name.clone(),
            last_second: last.map(|(sec, _)| sec),
            last_value: last.and_then(|(_, p)| finite(p.value)),
            mean_10s: self.window(stream, 10).map(|w| w.mean),
            p50_ms: last.and_then(|(_, p)| finite(p.p50_ms)),
            p95_ms: last.and_then(|(_, p)| finite(p.p95_ms)),
            p99_ms: last.and_then(|(_, p)| finite(p.p99_ms)),
            last_sample_second: s.last_sample_second,
            samples_total: s.samples_total,
        }
    }

    /// Approximate bytes held by the rings (for the memory budget in docs).
    pub fn ring_bytes(&self) -> usize {
        self.streams
            .iter()
            .map(|s| {
                s.seconds.capacity() * size_of::<SecondPoint>()
                    + s.minutes.capacity() * size_of::<MinutePoint>()
            })
            .sum()
    }
}

fn new_latency_histogram() -> Histogram<u32> {
    // 1 us .. 1 h at 2 significant digits: about 12 KiB.
    Histogram::new_with_bounds(1, (MAX_LATENCY_MS * 1000.0) as u64, 2)
        .expect("static bounds are valid")
}

fn seal_second(open: &OpenSecond, kind: StreamKind) -> SecondPoint {
    if !open.observed && kind == StreamKind::Poll {
        return SecondPoint::GAP;
    }
    let q = |h: &Histogram<u32>, q: f64| (h.value_at_quantile(q) as f64 / 1000.0) as f32;
    match &open.latency {
        Some(h) if !h.is_empty() => SecondPoint {
            value: saturate(open.value()),
            p50_ms: q(h, 0.50),
            p95_ms: q(h, 0.95),
            p99_ms: q(h, 0.99),
        },
        _ => SecondPoint {
            value: saturate(open.value()),
            ..SecondPoint::ZERO
        },
    }
}

fn roll_minute(s: &mut Stream, second: i64, point: SecondPoint) {
    let minute = second.div_euclid(60);
    match &mut s.current_minute {
        Some((m, acc)) if *m == minute => add_to_minute(acc, point),
        current => {
            if let Some((m, acc)) = current.take() {
                // A minute the ring already holds (restored after a restart
                // that came back within `grace` of a minute boundary, so the
                // first sealed seconds fall in the last saved minute) keeps
                // its saved point: pushing it again would restart the ring
                // and lose the whole history.
                if s.minutes.last_key().is_none_or(|last| m > last) {
                    s.minutes.push_after_gap(m, acc, MinutePoint::EMPTY);
                }
            }
            let mut acc = MinutePoint::EMPTY;
            add_to_minute(&mut acc, point);
            *current = Some((minute, acc));
        }
    }
}

fn add_to_minute(acc: &mut MinutePoint, point: SecondPoint) {
    if point.is_gap() {
        return;
    }
    acc.sum += point.value;
    acc.peak = if acc.peak.is_nan() {
        point.value
    } else {
        acc.peak.max(point.value)
    };
    acc.known_seconds += 1;
}

#[cfg(test)]
mod tests;
