//! Status-page poller: nginx `stub_status` and php-fpm `status`, the
//! zero-instrumentation way to get requests/s.
//!
//! Both pages expose a monotonically increasing request counter. The poller
//! reads the page twice per `interval`, 10 ms before a second boundary and
//! 1 ms after it, and turns the readings into whole seconds by interpolating
//! the counter linearly at each boundary: the requests of those few ms are
//! the only ones whose second is estimated, and a poll that runs late (a
//! busy machine) still splits its increase between the seconds by time.
//!
//! The counters count rapidscale's own polls too: nginx's counts every
//! request it serves, the status pages included; php-fpm's counts its own
//! status requests. Pages on the same host:port are polled one at a time
//! (a [`PollGate`] per host:port), so the poller knows exactly how many of
//! its requests each reading holds and subtracts them: for nginx, every poll
//! sent to that host:port since its previous reading; for php-fpm, its own.
//!
//! A reading is dated from its round trip, so a poll delayed somewhere (a
//! busy server's queue, or rapidscale descheduled on a busy host) is
//! uncertain by its delay: one whose round trip is more than twice the
//! fastest of the last 16 and a millisecond is sent again, up to twice,
//! and the fastest answer kept.
//!
//! A counter that goes down (the server restarted) restarts from the new
//! value. A failed poll (an error, or no answer within `timeout`) records
//! nothing: the next answer's increase is split between the seconds since
//! the last answer by time, as a late poll's is, if the gap is at most 5 s
//! (or two polling steps and a second, if that is longer); after a longer gap
//! the baseline is forgotten and the seconds between stay unknown, never
//! zero. Seconds the store sealed before the answer (older than the grace)
//! stay unknown too. Both ends of a gap are logged (the first failure as a
//! warning, the answer with the gap's span at info).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ingest::{DropReason, Sink};
use crate::series::{Observation, StreamId};

/// Which status page a poller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// nginx `stub_status`.
    Nginx,
    /// php-fpm's `pm.status_path`.
    PhpFpm,
}

/// Extracts the request counter from a status page body.
pub fn parse_counter(kind: StatusKind, body: &str) -> Option<u64> {
    match kind {
        // Active connections: 291
        // server accepts handled requests
        //  16630948 16630948 31070465
        // Reading: 6 Writing: 179 Waiting: 106
        StatusKind::Nginx => {
            let mut lines = body.lines();
            lines.find(|l| {
                l.trim_start()
                    .starts_with("server accepts handled requests")
            })?;
            let numbers = lines.next()?;
            numbers.split_whitespace().nth(2)?.parse().ok()
        }
        // pool:                 www
        // accepted conn:        12073
        StatusKind::PhpFpm => body.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "accepted conn").then(|| value.trim().parse().ok())?
        }),
    }
}

/// Turns counter readings taken at any instant into whole seconds' increases.
///
/// The counter is interpolated linearly between readings at each second
/// boundary; a second is known once both of its boundaries lie between
/// readings. Increases are net of the poller's own requests.
#[derive(Debug, Default, Clone)]
pub struct CounterSeconds {
    /// The previous reading: when (unix seconds), the raw counter, and the
    /// running net total at that instant.
    last: Option<(f64, u64, f64)>,
    /// The running net total at the latest second boundary passed.
    boundary: Option<(i64, f64)>,
}

impl CounterSeconds {
    /// Feeds `counter` as read at `at` (unix seconds), `own` of whose
    /// requests since the previous reading were the poller's. Returns each
    /// second completed since, with its increase.
    pub fn update(&mut self, at: f64, counter: u64, own: u64) -> Vec<(i64, f64)> {
        let Some((prev_at, prev_raw, prev_total)) = self.last else {
            self.last = Some((at, counter, 0.0));
            return Vec::new();
        };
        if at <= prev_at {
            return Vec::new();
        }
        // A counter reset: the server restarted, the new value is what it served since.
        let raw = if counter >= prev_raw {
            counter - prev_raw
        } else {
            counter
        };
        let net = raw.saturating_sub(own) as f64;
        let total = prev_total + net;
        self.last = Some((at, counter, total));
        let mut out = Vec::new();
        let first = prev_at.floor() as i64 + 1;
        let last = at.floor() as i64;
        for b in first..=last {
            let at_b = prev_total + net * (b as f64 - prev_at) / (at - prev_at);
            if let Some((before, total_before)) = self.boundary {
                if before == b - 1 {
                    out.push((b - 1, at_b - total_before));
                }
            }
            self.boundary = Some((b, at_b));
        }
        out
    }

    /// When the latest reading was taken, if there is one.
    pub fn last_at(&self) -> Option<f64> {
        self.last.map(|(at, _, _)| at)
    }

    /// Forget the baseline (after a failed poll the gap is unknown).
    pub fn reset(&mut self) {
        *self = CounterSeconds::default();
    }
}

/// Polls sent to one host:port, one at a time: the count tells an nginx
/// poller how many of its counter's requests were rapidscale's own.
pub type PollGate = Arc<tokio::sync::Mutex<u64>>;

/// The key pages share a [`PollGate`] by: the URL's host and port.
pub fn gate_key(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or(80)
        ),
        Err(_) => url.to_string(),
    }
}

pub struct StatusPoller {
    pub url: String,
    pub kind: StatusKind,
    pub stream: StreamId,
    pub interval: Duration,
    pub timeout: Duration,
    /// Shared by every poller of the same host:port.
    pub gate: PollGate,
}

impl StatusPoller {
    /// The polling step: the interval, at least a second.
    fn step(&self) -> Duration {
        self.interval.max(Duration::from_secs(1))
    }
}

/// One poll: the counter, when it was read, the gate's count of polls sent
/// to this host:port including this one, the poller's own count, and how
/// long the poll took.
struct Reading {
    at: f64,
    counter: Result<u64, DropReason>,
    sent: u64,
    seq: u64,
    took: f64,
}

async fn poll(
    poller: &StatusPoller,
    client: &reqwest::Client,
    sink: &Sink,
    seq: &mut u64,
) -> Reading {
    let mut sent = poller.gate.lock().await;
    *sent += 1;
    *seq += 1;
    let start = unix_f64(sink);
    let counter = match client
        .get(&poller.url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        Ok(resp) => match resp.text().await {
            Ok(body) => parse_counter(poller.kind, &body).ok_or(DropReason::BadStatusPage),
            Err(_) => Err(DropReason::PollFailed),
        },
        Err(_) => Err(DropReason::PollFailed),
    };
    let end = unix_f64(sink);
    Reading {
        at: read_at(start, end),
        counter,
        sent: *sent,
        seq: *seq,
        took: end - start,
    }
}

/// The round trips of a poller's recent answers: a reading much slower
/// than the fastest of them was delayed somewhere (the server's queue, or
/// this host descheduling rapidscale), so when it read its counter is
/// uncertain by up to that delay.
#[derive(Debug, Default)]
struct RoundTrips {
    recent: std::collections::VecDeque<f64>,
}

impl RoundTrips {
    const KEPT: usize = 16;
    /// Polls sent again at most, for one reading.
    const RETRIES: u32 = 2;

    fn record(&mut self, took: f64) {
        if self.recent.len() == Self::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
    }

    /// Whether a round trip is close enough to the fastest recent one: at
    /// most twice it and a millisecond.
    fn is_tight(&self, took: f64) -> bool {
        let fastest = self.recent.iter().copied().fold(f64::INFINITY, f64::min);
        !fastest.is_finite() || took <= 2.0 * fastest + 0.001
    }
}

/// One reading whose time is known: a poll whose round trip was not tight
/// is sent again (at most [`RoundTrips::RETRIES`] times), and the answer
/// with the shortest round trip is kept, as NTP keeps the sample with the
/// least delay. A failed poll ends the tries.
async fn best_poll(
    poller: &StatusPoller,
    client: &reqwest::Client,
    sink: &Sink,
    seq: &mut u64,
    trips: &mut RoundTrips,
) -> Reading {
    let mut best = poll(poller, client, sink, seq).await;
    for _ in 0..RoundTrips::RETRIES {
        if best.counter.is_err() || trips.is_tight(best.took) {
            break;
        }
        let again = poll(poller, client, sink, seq).await;
        if again.counter.is_err() {
            break;
        }
        if again.took < best.took {
            best = again;
        }
    }
    if best.counter.is_ok() {
        trips.record(best.took);
    }
    best
}

/// When the server read its counter, for a poll sent at `start` and
/// answered at `end`: the middle of a quick poll; for a slow one, just
/// before the answer. A local status page is slow when the server is busy
/// or stalled: the request waits in its queue and the counter is read as
/// it is answered (reading a slow poll at its middle would date the
/// requests served while it waited too early).
fn read_at(start: f64, end: f64) -> f64 {
    ((start + end) / 2.0).max(end - 0.002)
}

fn unix_f64(sink: &Sink) -> f64 {
    let now = sink.clock.now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) / 1e9
}

/// How far before and after a second boundary the two readings are taken
/// (a timer fires up to a few ms late; the reading before must stay before).
const BEFORE: Duration = Duration::from_millis(10);
const AFTER: Duration = Duration::from_millis(1);

/// How long until `BEFORE` ahead of the next boundary of a `step`-second
/// grid (unix time), given how far `now` is into its second.
fn until_next_boundary(unix: i64, into_second: Duration, step: Duration) -> Duration {
    let step_secs = step.as_secs().max(1) as i64;
    let next = (unix.div_euclid(step_secs) + 1) * step_secs;
    let to_boundary = Duration::from_secs((next - unix) as u64).saturating_sub(into_second);
    if to_boundary > BEFORE {
        to_boundary - BEFORE
    } else {
        // Too close to this boundary: aim at the one after it.
        to_boundary + step - BEFORE
    }
}

pub async fn run(poller: StatusPoller, sink: Sink, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(poller.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url = %poller.url, error = %e, "Cannot build the HTTP client; status page not polled.");
            return;
        }
    };
    let mut state = PollState::default();
    let mut trips = RoundTrips::default();
    let mut seq = 0;
    let step = poller.step();
    loop {
        // One reading just before the boundary and one just after: the
        // counter at the boundary is interpolated over a few ms, so a surge
        // that starts on the boundary is not spread over the second before.
        let now = sink.clock.now();
        let into_second = Duration::from_nanos(now.timestamp_subsec_nanos() as u64);
        let wait = until_next_boundary(now.timestamp(), into_second, step);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = best_poll(&poller, &client, &sink, &mut seq, &mut trips) => state.take(&poller, r, &sink),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(BEFORE + AFTER) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = best_poll(&poller, &client, &sink, &mut seq, &mut trips) => state.take(&poller, r, &sink),
        }
    }
}

/// What a poller remembers between readings.
#[derive(Default)]
struct PollState {
    seconds: CounterSeconds,
    /// The gate's and the poller's counts at the previous successful reading.
    prev_sent: Option<(u64, u64)>,
    /// Polls failed since the previous successful reading.
    failed: u64,
}

/// What one reading changed, beside the seconds it completed.
#[derive(Debug, PartialEq)]
enum Event {
    /// The first failed poll after an answer.
    Failed(DropReason),
    /// An answer after `failed` failed polls; the increase since the answer
    /// at `from` was split by time over the gap when `split`, else the
    /// seconds between are unknown.
    Recovered {
        from: f64,
        to: f64,
        failed: u64,
        split: bool,
    },
}

impl PollState {
    /// The longest gap between answers whose increase is split by time:
    /// 5 s, or two polling steps and a second if that is longer. Past it
    /// the baseline is forgotten.
    fn max_gap(step: Duration) -> f64 {
        (2.0 * step.as_secs_f64() + 1.0).max(5.0)
    }

    /// Feeds one reading: the seconds it completed, and what changed.
    fn on_reading(
        &mut self,
        kind: StatusKind,
        step: Duration,
        reading: Reading,
    ) -> (Vec<(i64, f64)>, Option<Event>) {
        let counter = match reading.counter {
            Ok(c) => c,
            Err(reason) => {
                self.failed += 1;
                let event = (self.failed == 1).then_some(Event::Failed(reason));
                return (Vec::new(), event);
            }
        };
        let mut event = None;
        if self.failed > 0 {
            let from = self.seconds.last_at().unwrap_or(reading.at);
            let split = reading.at - from <= Self::max_gap(step);
            if !split {
                self.seconds.reset();
                self.prev_sent = None;
            }
            event = Some(Event::Recovered {
                from,
                to: reading.at,
                failed: self.failed,
                split,
            });
        }
        let own = match (kind, self.prev_sent) {
            // nginx counts every poll of its host:port, this one, retries
            // and failed ones included (a poll that timed out was usually
            // served late).
            (StatusKind::Nginx, Some((sent, _))) => reading.sent - sent,
            // php-fpm counts its own status requests: this one, and the
            // retries and failed ones since the previous reading, which
            // usually reached it.
            (StatusKind::PhpFpm, Some((_, seq))) => reading.seq - seq,
            (_, None) => 0,
        };
        self.failed = 0;
        self.prev_sent = Some((reading.sent, reading.seq));
        (self.seconds.update(reading.at, counter, own), event)
    }

    fn take(&mut self, poller: &StatusPoller, reading: Reading, sink: &Sink) {
        let step = poller.step();
        let ok = reading.counter.is_ok();
        if let Err(reason) = reading.counter {
            sink.counters.dropped(reason);
        } else {
            sink.counters.accept();
        }
        sink.counters.set_up(ok);
        let (seconds, event) = self.on_reading(poller.kind, step, reading);
        for (s, increase) in seconds {
            sink.observe(poller.stream, s, Observation::Count(increase));
        }
        match event {
            None => {}
            Some(Event::Failed(reason)) => tracing::warn!(
                url = %poller.url,
                reason = reason.as_str(),
                "Status page poll failed; its seconds wait for the next answer."
            ),
            Some(Event::Recovered {
                from,
                to,
                failed,
                split,
            }) => tracing::info!(
                url = %poller.url,
                failed_polls = failed,
                gap_from = format!("{from:.3}"),
                gap_to = format!("{to:.3}"),
                "{}",
                if split {
                    "Status page answers again; its increase over the gap is split between the seconds by time."
                } else {
                    "Status page answers again; the seconds of the gap are unknown (it was too long to split)."
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &str = "Active connections: 291 \nserver accepts handled requests\n 16630948 16630948 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n";
    const FPM: &str = "pool:                 www\nprocess manager:      dynamic\nstart time:           01/Jul/2024:10:00:00 +0000\naccepted conn:        12073\nlisten queue:         0\n";

    #[test]
    fn nginx_stub_status() {
        assert_eq!(parse_counter(StatusKind::Nginx, NGINX), Some(31_070_465));
    }

    #[test]
    fn php_fpm_status() {
        assert_eq!(parse_counter(StatusKind::PhpFpm, FPM), Some(12_073));
    }

    #[test]
    fn wrong_pages() {
        assert_eq!(parse_counter(StatusKind::Nginx, FPM), None);
        assert_eq!(parse_counter(StatusKind::PhpFpm, NGINX), None);
        assert_eq!(
            parse_counter(StatusKind::Nginx, "server accepts handled requests\n 1 2\n"),
            None
        );
        assert_eq!(
            parse_counter(StatusKind::PhpFpm, "accepted conn: lots\n"),
            None
        );
    }

    #[test]
    fn readings_just_after_each_boundary_give_each_seconds_increase() {
        let mut d = CounterSeconds::default();
        assert!(d.update(100.002, 1_000, 0).is_empty(), "the baseline");
        assert!(
            d.update(101.002, 1_101, 1).is_empty(),
            "one boundary: no second yet"
        );
        // 100 requests a second, plus the poll itself.
        let got = d.update(102.002, 1_202, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 101);
        assert!((got[0].1 - 100.0).abs() < 1e-9, "{got:?}");
    }

    #[test]
    fn a_late_poll_splits_its_increase_by_time() {
        let mut d = CounterSeconds::default();
        d.update(100.0, 0, 0);
        d.update(101.0, 100, 0);
        // 250 ms late: 125 requests over 1.25 s at a steady 100/s.
        let got = d.update(102.25, 225, 0);
        assert_eq!(got, vec![(101, 100.0)]);
        // Back on time: the 1.0 s from 102.25 held 100 requests.
        let got = d.update(103.0, 300, 0);
        assert_eq!(got, vec![(102, 100.0)]);
        // A poll three seconds later spreads its increase evenly.
        let got = d.update(106.0, 600, 0);
        assert_eq!(got, vec![(103, 100.0), (104, 100.0), (105, 100.0)]);
    }

    #[test]
    fn a_counter_reset_restarts_from_the_new_value_and_a_reset_forgets() {
        let mut d = CounterSeconds::default();
        d.update(100.0, 1_000, 0);
        d.update(101.0, 1_100, 0);
        // The server restarted: it served 40 since.
        assert_eq!(d.update(102.0, 40, 0), vec![(101, 40.0)]);
        assert!(d.update(102.0, 90, 0).is_empty(), "the same instant twice");
        d.reset();
        assert!(d.update(110.0, 90, 0).is_empty());
        assert!(d.update(111.0, 95, 0).is_empty());
        assert_eq!(d.update(112.0, 100, 0), vec![(111, 5.0)]);
    }

    #[test]
    fn own_polls_are_not_traffic() {
        let mut d = CounterSeconds::default();
        d.update(100.0, 10, 0);
        d.update(101.0, 12, 2);
        assert_eq!(d.update(102.0, 14, 2), vec![(101, 0.0)]);
    }

    #[test]
    fn the_first_reading_is_just_before_the_next_boundary() {
        let ms = Duration::from_millis;
        let second = Duration::from_secs(1);
        // 300 ms into second 100: wait 690 ms (10 ms before 101).
        assert_eq!(until_next_boundary(100, ms(300), second), ms(690));
        // 995 ms in: too close to 101, aim at 102.
        assert_eq!(until_next_boundary(100, ms(995), second), ms(995));
        // Every 5 s: the next multiple of 5.
        assert_eq!(
            until_next_boundary(101, ms(0), Duration::from_secs(5)),
            ms(3990)
        );
    }

    /// A reading by a poller alone on its host:port (its count is the
    /// gate's), or with `seq` set apart.
    fn ok(at: f64, counter: u64, sent: u64) -> Reading {
        Reading {
            at,
            counter: Ok(counter),
            sent,
            seq: sent,
            took: 0.001,
        }
    }

    fn failed(at: f64, sent: u64) -> Reading {
        Reading {
            at,
            counter: Err(DropReason::PollFailed),
            sent,
            seq: sent,
            took: 0.5,
        }
    }

    #[test]
    fn a_round_trip_far_above_the_fastest_recent_one_is_not_tight() {
        let mut t = RoundTrips::default();
        assert!(t.is_tight(0.050), "nothing to compare with yet");
        for took in [0.002, 0.003, 0.0025] {
            t.record(took);
        }
        assert!(t.is_tight(0.004));
        assert!(t.is_tight(0.005), "2 x 2 ms + 1 ms");
        assert!(!t.is_tight(0.0051));
        // The fastest is forgotten after 16 more.
        for _ in 0..16 {
            t.record(0.010);
        }
        assert!(t.is_tight(0.021));
    }

    #[test]
    fn php_fpm_counts_every_poll_of_its_own_since_the_last_reading() {
        let second = Duration::from_secs(1);
        let mut p = PollState::default();
        // php-fpm shares nginx's host:port: the gate counts both pages'
        // polls, the poller its own (two retries before 102's reading).
        let read = |at, counter, sent, seq| Reading {
            seq,
            ..ok(at, counter, sent)
        };
        p.on_reading(StatusKind::PhpFpm, second, read(100.0, 0, 2, 1));
        p.on_reading(StatusKind::PhpFpm, second, read(101.0, 101, 4, 2));
        let (got, _) = p.on_reading(StatusKind::PhpFpm, second, read(102.0, 204, 9, 5));
        assert_eq!(got, vec![(101, 100.0)]);
    }

    #[test]
    fn a_failed_poll_leaves_its_seconds_to_the_next_answer_split_by_time() {
        let second = Duration::from_secs(1);
        let mut p = PollState::default();
        // php-fpm at 100 requests/s; each poll is one more.
        p.on_reading(StatusKind::PhpFpm, second, ok(100.0, 0, 1));
        assert_eq!(
            p.on_reading(StatusKind::PhpFpm, second, ok(101.0, 101, 2))
                .0,
            vec![]
        );
        let (got, event) = p.on_reading(StatusKind::PhpFpm, second, failed(102.0, 3));
        assert_eq!(
            (got, event),
            (vec![], Some(Event::Failed(DropReason::PollFailed)))
        );
        let (got, event) = p.on_reading(StatusKind::PhpFpm, second, failed(102.5, 4));
        assert_eq!((got, event), (vec![], None), "warned once");
        // 2 s after the last answer: 200 requests and the three polls.
        let (got, event) = p.on_reading(StatusKind::PhpFpm, second, ok(103.0, 304, 5));
        assert_eq!(got, vec![(101, 100.0), (102, 100.0)]);
        assert_eq!(
            event,
            Some(Event::Recovered {
                from: 101.0,
                to: 103.0,
                failed: 2,
                split: true
            })
        );
        assert_eq!(
            p.on_reading(StatusKind::PhpFpm, second, ok(104.0, 405, 6))
                .0,
            vec![(103, 100.0)]
        );
    }

    #[test]
    fn nginx_counts_failed_polls_through_the_gate() {
        let second = Duration::from_secs(1);
        let mut p = PollState::default();
        p.on_reading(StatusKind::Nginx, second, ok(100.0, 0, 1));
        p.on_reading(StatusKind::Nginx, second, ok(101.0, 102, 3));
        p.on_reading(StatusKind::Nginx, second, failed(101.5, 4));
        // Since 101: polls 4 (failed), 5 (the other page) and 6 (this one).
        let (got, _) = p.on_reading(StatusKind::Nginx, second, ok(102.0, 205, 6));
        assert_eq!(got, vec![(101, 100.0)]);
    }

    #[test]
    fn after_a_longer_gap_the_seconds_between_stay_unknown() {
        let second = Duration::from_secs(1);
        let mut p = PollState::default();
        p.on_reading(StatusKind::PhpFpm, second, ok(100.0, 0, 1));
        p.on_reading(StatusKind::PhpFpm, second, ok(101.0, 101, 2));
        for k in 0..5 {
            p.on_reading(StatusKind::PhpFpm, second, failed(102.0 + k as f64, 3 + k));
        }
        let (got, event) = p.on_reading(StatusKind::PhpFpm, second, ok(107.0, 707, 8));
        assert_eq!(got, vec![], "a new baseline");
        assert_eq!(
            event,
            Some(Event::Recovered {
                from: 101.0,
                to: 107.0,
                failed: 5,
                split: false
            })
        );
        p.on_reading(StatusKind::PhpFpm, second, ok(108.0, 808, 9));
        assert_eq!(
            p.on_reading(StatusKind::PhpFpm, second, ok(109.0, 909, 10))
                .0,
            vec![(108, 100.0)]
        );
        // Up to 5 s is split at the default 1 s; every 5 s, up to 11 s.
        assert_eq!(PollState::max_gap(second), 5.0);
        assert_eq!(PollState::max_gap(Duration::from_secs(5)), 11.0);
    }

    #[test]
    fn a_slow_poll_is_dated_just_before_its_answer() {
        assert_eq!(read_at(100.0, 100.002), 100.001);
        assert!((read_at(100.0, 100.5) - 100.498).abs() < 1e-9);
    }

    #[test]
    fn pages_share_a_gate_by_host_and_port() {
        assert_eq!(gate_key("http://127.0.0.1/nginx_status"), "127.0.0.1:80");
        assert_eq!(
            gate_key("http://127.0.0.1:8080/fpm-status"),
            "127.0.0.1:8080"
        );
        assert_ne!(
            gate_key("http://127.0.0.1:8080/a"),
            gate_key("http://127.0.0.1:8081/a")
        );
    }
}
