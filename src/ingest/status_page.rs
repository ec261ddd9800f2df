//! Status-page poller: nginx `stub_status` and php-fpm `status`, the
//! zero-instrumentation way to get requests/s.
//!
//! Both pages expose a monotonically increasing request counter. The poller
//! fetches the page once per `interval`, aligned just after each second
//! boundary, and records the counter's increase as that past interval's
//! requests. A counter that goes down (the server restarted) restarts from
//! the new value. A failed poll records nothing: the store marks the second
//! unknown, never zero.

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

/// Turns successive counter readings into per-interval increases.
#[derive(Debug, Default, Clone)]
pub struct CounterDelta {
    last: Option<(i64, u64)>,
}

impl CounterDelta {
    /// Feeds a reading taken at unix second `at`; returns the seconds covered
    /// since the previous reading and the increase over them.
    pub fn update(&mut self, at: i64, counter: u64) -> Option<(std::ops::Range<i64>, f64)> {
        let prev = self.last.replace((at, counter));
        let (prev_at, prev_counter) = prev?;
        if at <= prev_at {
            return None;
        }
        // A counter reset: the server restarted, the new value is what it served since.
        let increase = if counter >= prev_counter {
            counter - prev_counter
        } else {
            counter
        };
        Some((prev_at..at, increase as f64))
    }

    /// Forget the baseline (after a failed poll the gap is unknown).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

pub struct StatusPoller {
    pub url: String,
    pub kind: StatusKind,
    pub stream: StreamId,
    pub interval: Duration,
    pub timeout: Duration,
}

pub async fn run(poller: StatusPoller, sink: Sink, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(poller.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url = %poller.url, error = %e, "Cannot build the HTTP client; status page not polled.");
            return;
        }
    };
    let mut delta = CounterDelta::default();
    let mut failing = false;
    loop {
        // Poll just after a second boundary so the increase covers whole seconds.
        let now = sink.clock.now();
        let into_second = Duration::from_nanos(now.timestamp_subsec_nanos() as u64);
        let step = poller.interval.max(Duration::from_secs(1));
        let wait = step.saturating_sub(into_second) + Duration::from_millis(20);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let at = sink.clock.unix_seconds();
        let reading = match client
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
        match reading {
            Ok(counter) => {
                if failing {
                    tracing::info!(url = %poller.url, "Status page answers again.");
                    failing = false;
                }
                sink.counters.accept();
                sink.counters.set_up(true);
                if let Some((seconds, increase)) = delta.update(at, counter) {
                    let per_second = increase / (seconds.end - seconds.start) as f64;
                    for s in seconds {
                        sink.observe(poller.stream, s, Observation::Count(per_second));
                    }
                }
            }
            Err(reason) => {
                sink.counters.dropped(reason);
                sink.counters.set_up(false);
                delta.reset();
                if !failing {
                    tracing::warn!(url = %poller.url, reason = reason.as_str(), "Status page poll failed; its seconds are unknown until it answers.");
                    failing = true;
                }
            }
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
    fn counter_deltas() {
        let mut d = CounterDelta::default();
        assert_eq!(d.update(100, 1_000), None, "first reading is the baseline");
        assert_eq!(d.update(101, 1_250), Some((100..101, 250.0)));
        assert_eq!(d.update(103, 1_450), Some((101..103, 200.0)));
        assert_eq!(d.update(103, 1_500), None, "same second twice");
        // The server restarted: the counter starts over.
        assert_eq!(d.update(104, 40), Some((103..104, 40.0)));
        d.reset();
        assert_eq!(d.update(110, 90), None);
    }
}
