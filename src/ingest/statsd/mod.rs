//! StatsD / DogStatsD over UDP (and the same lines over HTTP).
//!
//! A packet is split into lines, each line parsed ([`parser`]) and routed by
//! metric name and tags to the streams that selected it ([`StatsdRouter`]).
//! What a line adds to its stream's second:
//! - counter: value / sample rate;
//! - timer, histogram, distribution: 1 / sample rate per value, and each
//!   value as a latency in ms;
//! - set: each distinct member once per second;
//! - gauge: the second's value is the last gauge (deltas `+n`/`-n` add).

pub mod parser;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::ingest::selector::MetricSelector;
use crate::ingest::{DropReason, SourceCounters};
use crate::series::{Arrival, Observation, SeriesStore, StreamId};
use parser::{parse_line, LineError, MetricKind};

/// Routes metric lines to streams; built once from the config.
#[derive(Debug, Default)]
pub struct StatsdRouter {
    by_name: HashMap<String, Vec<(MetricSelector, StreamId)>>,
}

impl StatsdRouter {
    pub fn new(routes: impl IntoIterator<Item = (MetricSelector, StreamId)>) -> Self {
        let mut by_name: HashMap<String, Vec<_>> = HashMap::new();
        for (sel, stream) in routes {
            by_name
                .entry(sel.name.clone())
                .or_default()
                .push((sel, stream));
        }
        Self { by_name }
    }

    /// Parses one packet (or HTTP body) of newline-separated lines into the
    /// store. Returns the number of lines accepted.
    pub fn ingest(
        &self,
        packet: &[u8],
        now: impl Into<Arrival>,
        store: &mut SeriesStore,
        counters: &SourceCounters,
    ) -> usize {
        let now = now.into();
        match std::str::from_utf8(packet) {
            Ok(text) => self.ingest_lines(text, now, store, counters),
            Err(_) => {
                // Keep the valid lines of a packet with one bad byte sequence.
                let mut accepted = 0;
                for raw in packet.split(|b| *b == b'\n') {
                    match std::str::from_utf8(raw) {
                        Ok(line) => accepted += self.ingest_lines(line, now, store, counters),
                        Err(_) => counters.dropped(DropReason::NotUtf8),
                    }
                }
                accepted
            }
        }
    }

    fn ingest_lines(
        &self,
        text: &str,
        now: Arrival,
        store: &mut SeriesStore,
        counters: &SourceCounters,
    ) -> usize {
        let mut accepted = 0;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match parse_line(line) {
                Ok(l) => {
                    accepted += 1;
                    counters.accept();
                    let Some(routes) = self.by_name.get(l.name) else {
                        counters.unmatched();
                        continue;
                    };
                    let second = l.timestamp.unwrap_or(now.second);
                    let mut matched = false;
                    for (sel, stream) in routes {
                        if !sel.tags_match(l.tags) {
                            continue;
                        }
                        matched = true;
                        if let Err(r) = record(&l, *stream, second, now, store) {
                            counters.dropped(r);
                        }
                    }
                    if !matched {
                        counters.unmatched();
                    }
                }
                Err(e) => counters.dropped(line_error_reason(e)),
            }
        }
        accepted
    }
}

fn line_error_reason(e: LineError) -> DropReason {
    match e {
        LineError::NoValue => DropReason::NoValue,
        LineError::EmptyName => DropReason::EmptyName,
        LineError::BadValue => DropReason::BadValue,
        LineError::BadType => DropReason::BadType,
        LineError::BadSampleRate => DropReason::BadSampleRate,
        LineError::BadTimestamp => DropReason::BadTimestamp,
        LineError::NotUtf8 => DropReason::NotUtf8,
    }
}

fn record(
    l: &parser::StatsdLine,
    stream: StreamId,
    second: i64,
    now: Arrival,
    store: &mut SeriesStore,
) -> Result<(), DropReason> {
    let weight = 1.0 / l.sample_rate;
    match l.kind {
        MetricKind::Counter => {
            let total: f64 = l.numbers().sum();
            store.observe(stream, second, Observation::Count(total * weight), now)?;
        }
        k if k.is_sampled_event() => {
            for ms in l.numbers() {
                store.observe(
                    stream,
                    second,
                    Observation::Latency { count: weight, ms },
                    now,
                )?;
            }
        }
        MetricKind::Gauge => {
            for v in l.numbers() {
                // A signed gauge is a delta on the second's value.
                let is_delta = l.values.starts_with(['+', '-']);
                let obs = if is_delta {
                    Observation::Count(v)
                } else {
                    Observation::Gauge(v)
                };
                store.observe(stream, second, obs, now)?;
            }
        }
        _ => {
            for member in l.members() {
                let mut h = DefaultHasher::new();
                member.hash(&mut h);
                store.observe(stream, second, Observation::SetMember(h.finish()), now)?;
            }
        }
    }
    Ok(())
}

/// Receives datagrams until `shutdown`; each is ingested under one store lock.
///
/// Each datagram is counted in the second the kernel received it
/// (`SO_TIMESTAMPNS`), not the second rapidscale read it: on a busy host
/// (a surge is when the application's workers take the CPU) the reader can
/// fall behind by some milliseconds, or longer, and a backlog read late
/// would otherwise land in the wrong second, or all in one. Where the
/// kernel gives no stamp, the time of reading is used.
pub async fn run(
    socket: UdpSocket,
    max_packet_bytes: usize,
    router: Arc<StatsdRouter>,
    sink: crate::ingest::Sink,
    shutdown: CancellationToken,
) {
    if let Err(e) = stamps::enable(&socket) {
        tracing::debug!(error = %e, "No kernel receive timestamps; datagrams are dated when read.");
    }
    // One byte more than allowed tells an oversized datagram from a full one.
    let mut buf = vec![0u8; max_packet_bytes + 1];
    let mut control = stamps::control_buffer();
    loop {
        let (len, received) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.async_io(Interest::READABLE, || stamps::recv(&socket, &mut buf, &mut control)) => match r {
                Ok(got) => got,
                Err(e) => {
                    // ICMP errors and the like; the socket stays usable.
                    tracing::debug!(error = %e, "StatsD receive failed.");
                    continue;
                }
            },
        };
        handle_datagram(&buf[..len], age(received), max_packet_bytes, &router, &sink);
        // Drain what is already queued without going back to the reactor.
        for _ in 0..256 {
            match socket.try_io(Interest::READABLE, || {
                stamps::recv(&socket, &mut buf, &mut control)
            }) {
                Ok((len, received)) => {
                    handle_datagram(&buf[..len], age(received), max_packet_bytes, &router, &sink)
                }
                Err(_) => break,
            }
        }
    }
}

/// How long ago the kernel received a datagram: zero without a stamp (or
/// one from the future), at most a minute (a clock step).
fn age(received: Option<SystemTime>) -> Duration {
    age_at(received, SystemTime::now())
}

fn age_at(received: Option<SystemTime>, now: SystemTime) -> Duration {
    received
        .and_then(|r| now.duration_since(r).ok())
        .unwrap_or_default()
        .min(Duration::from_secs(60))
}

/// Kernel receive timestamps (`SO_TIMESTAMPNS`), on Linux. The kernel
/// switches stamping on for the host from a work item after the first
/// socket asks; datagrams that arrive before it has run are stamped when
/// read, as on other systems (a moment after start, on a host where no
/// other process stamps).
#[cfg(target_os = "linux")]
mod stamps {
    use std::io;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
    use nix::sys::time::TimeSpec;
    use tokio::net::UdpSocket;

    pub(super) fn enable(socket: &UdpSocket) -> io::Result<()> {
        setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
    }

    pub(super) fn control_buffer() -> Vec<u8> {
        nix::cmsg_space!(TimeSpec)
    }

    /// One datagram into `buf`: its length and when the kernel received it.
    pub(super) fn recv(
        socket: &UdpSocket,
        buf: &mut [u8],
        control: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(control),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let received = msg.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    let secs = u64::try_from(ts.tv_sec()).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
                    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
                }
                _ => None,
            })
        });
        Ok((msg.bytes, received))
    }
}

/// Elsewhere datagrams are dated when read.
#[cfg(not(target_os = "linux"))]
mod stamps {
    use std::io;
    use std::time::SystemTime;

    use tokio::net::UdpSocket;

    pub(super) fn enable(_: &UdpSocket) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub(super) fn control_buffer() -> Vec<u8> {
        Vec::new()
    }

    pub(super) fn recv(
        socket: &UdpSocket,
        buf: &mut [u8],
        _: &mut [u8],
    ) -> io::Result<(usize, Option<SystemTime>)> {
        socket.try_recv(buf).map(|n| (n, None))
    }
}

/// StatsD datagrams handed over in process instead of over UDP (a
/// simulated instance in a test): the same parsing, routing and counting.
pub async fn run_in_process(
    mut datagrams: tokio::sync::mpsc::Receiver<Vec<u8>>,
    max_packet_bytes: usize,
    router: Arc<StatsdRouter>,
    sink: crate::ingest::Sink,
    shutdown: CancellationToken,
) {
    loop {
        let datagram = tokio::select! {
            _ = shutdown.cancelled() => return,
            d = datagrams.recv() => match d {
                Some(d) => d,
                None => return,
            },
        };
        handle_datagram(&datagram, Duration::ZERO, max_packet_bytes, &router, &sink);
    }
}

/// Ingests one datagram received `age` ago.
fn handle_datagram(
    packet: &[u8],
    age: Duration,
    max_packet_bytes: usize,
    router: &StatsdRouter,
    sink: &crate::ingest::Sink,
) {
    if packet.len() > max_packet_bytes {
        sink.counters.dropped(DropReason::PacketTooLarge);
        return;
    }
    let now = Arrival::at(sink.clock.now() - chrono::TimeDelta::from_std(age).unwrap_or_default());
    let mut store = crate::ingest::lock(&sink.store);
    router.ingest(packet, now, &mut store, &sink.counters);
}

#[cfg(test)]
mod tests;
