//! Ingestion wiring: every configured source (and any given by the caller)
//! registers its stream with the kind its delivery implies, then runs as a
//! task of its own; a sealer task seals seconds and logs summaries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::api::HttpIngest;
use crate::clock::SharedClock;
use crate::config::{AccessLogConfig, Config, StatsdConfig, StatusPageConfig};
use crate::ingest::access_log::{self, Follower};
use crate::ingest::statsd::{self, StatsdRouter};
use crate::ingest::status_page::{self, StatusPoller};
use crate::ingest::trace::{self, TraceSource};
use crate::ingest::{lock, CounterSnapshot, Delivery, SharedStore, Sink, SourceCounters};

/// How often traffic and ingest-drop summaries are logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// One source of traffic.
#[derive(Debug, Clone)]
pub enum Source {
    Statsd(StatsdConfig),
    AccessLog(AccessLogConfig),
    StatusPage(StatusPageConfig),
    /// Per-second counts fed against the clock (the replay's traffic, and
    /// a daemon's in tests).
    Trace(TraceSource),
    /// StatsD datagrams handed over in process, parsed and routed by the
    /// config's `[ingest.statsd]` selectors (the demo's simulated fleet in
    /// tests, where paused time and sockets do not mix).
    Datagrams(DatagramFeed),
}

/// The receiving end of [`Source::Datagrams`], taken once by the source's task.
#[derive(Debug, Clone)]
pub struct DatagramFeed {
    pub stream: String,
    receiver: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Vec<u8>>>>>,
}

impl DatagramFeed {
    /// A feed of the `stream` StatsD stream and the sender that fills it.
    pub fn new(
        stream: &str,
        capacity: usize,
    ) -> (tokio::sync::mpsc::Sender<Vec<u8>>, DatagramFeed) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (
            tx,
            DatagramFeed {
                stream: stream.to_string(),
                receiver: Arc::new(std::sync::Mutex::new(Some(rx))),
            },
        )
    }

    fn take(&self) -> Option<tokio::sync::mpsc::Receiver<Vec<u8>>> {
        self.receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl Source {
    /// Every source the config names.
    pub fn configured(config: &Config) -> Vec<Source> {
        let i = &config.ingest;
        i.statsd
            .iter()
            .cloned()
            .map(Source::Statsd)
            .chain(i.access_logs.iter().cloned().map(Source::AccessLog))
            .chain(i.status_pages.iter().cloned().map(Source::StatusPage))
            .collect()
    }

    /// How its samples arrive: what a quiet second of its stream means.
    pub fn delivery(&self) -> Delivery {
        match self {
            Source::Statsd(_) | Source::AccessLog(_) | Source::Datagrams(_) => Delivery::Pushed,
            Source::StatusPage(_) => Delivery::Polled,
            Source::Trace(_) => TraceSource::DELIVERY,
        }
    }

    /// The requests stream it feeds.
    pub fn stream(&self) -> &str {
        match self {
            Source::Statsd(c) => &c.stream,
            Source::AccessLog(c) => &c.stream,
            Source::StatusPage(c) => &c.stream,
            Source::Trace(t) => &t.stream,
            Source::Datagrams(f) => &f.stream,
        }
    }
}

/// What the sources give the rest of the daemon.
pub(crate) struct Ingest {
    pub counters: Vec<Arc<SourceCounters>>,
    pub http_ingest: Option<HttpIngest>,
    pub statsd: Option<SocketAddr>,
}

/// Registers every stream in the store, each with the kind its source's
/// delivery implies, so ids are fixed before any source starts. Returns
/// the StatsD router over the config's selectors.
pub(crate) fn register(
    config: &Config,
    sources: &[Source],
    store: &SharedStore,
) -> Arc<StatsdRouter> {
    let mut s = lock(store);
    for source in sources {
        s.register(source.stream(), source.delivery().stream_kind());
    }
    let routes: Vec<_> = config
        .statsd_routes()
        .into_iter()
        .map(|(sel, stream)| (sel, s.register(&stream, Delivery::Pushed.stream_kind())))
        .collect();
    Arc::new(StatsdRouter::new(routes))
}

/// Binds sockets, and spawns each source and the sealer on `tasks`, all
/// stopping at `stop`. The streams must be registered ([`register`]).
pub(crate) fn start(
    sources: &[Source],
    router: Arc<StatsdRouter>,
    store: &SharedStore,
    clock: &SharedClock,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> anyhow::Result<Ingest> {
    let sink = |name: String| Sink {
        store: store.clone(),
        clock: clock.clone(),
        counters: SourceCounters::new(name),
    };
    let mut out = Ingest {
        counters: Vec::new(),
        http_ingest: None,
        statsd: None,
    };
    // Status pages on one host:port are polled one at a time.
    let mut gates: std::collections::HashMap<String, status_page::PollGate> = Default::default();
    for source in sources {
        let stream = lock(store).id(source.stream()).expect("registered above");
        match source {
            Source::Statsd(cfg) => {
                let socket = bind_udp(cfg.listen)
                    .with_context(|| format!("bind StatsD socket {}", cfg.listen))?;
                let addr = socket.local_addr()?;
                out.statsd = Some(addr);
                tracing::info!(statsd = %addr, "StatsD listening.");
                let s = sink("statsd".into());
                // Bound: it takes datagrams from now on.
                s.counters.set_up(true);
                out.counters.push(s.counters.clone());
                tasks.spawn(
                    statsd::run(
                        socket,
                        cfg.max_packet_bytes,
                        router.clone(),
                        s,
                        stop.clone(),
                    )
                    .instrument(tracing::info_span!("statsd")),
                );
                // The same selectors serve POST /api/v1/ingest, with their own counters.
                let http = sink("http_ingest".into());
                http.counters.set_up(true);
                out.counters.push(http.counters.clone());
                out.http_ingest = Some(HttpIngest {
                    router: router.clone(),
                    sink: http,
                });
            }
            Source::AccessLog(cfg) => {
                let s = sink(format!("access_log:{}", cfg.stream));
                out.counters.push(s.counters.clone());
                let mut follower =
                    Follower::new(&cfg.path, cfg.start_at.clone(), cfg.max_line_bytes);
                if let Err(e) = follower.open_at_start() {
                    // Not fatal: the task retries, as `tail -F` does.
                    tracing::warn!(path = %cfg.path.display(), error = %e, "Cannot open access log yet.");
                }
                tasks.spawn(
                    access_log::run(
                        follower,
                        cfg.format.clone(),
                        stream,
                        cfg.poll_interval,
                        s,
                        stop.clone(),
                    )
                    .instrument(tracing::info_span!("access_log", stream = %cfg.stream)),
                );
            }
            Source::StatusPage(cfg) => {
                let s = sink(format!("status_page:{}", cfg.stream));
                out.counters.push(s.counters.clone());
                let poller = StatusPoller {
                    url: cfg.url.clone(),
                    kind: cfg.kind,
                    stream,
                    interval: cfg.interval,
                    timeout: cfg.timeout,
                    gate: gates
                        .entry(status_page::gate_key(&cfg.url))
                        .or_default()
                        .clone(),
                };
                tasks.spawn(
                    status_page::run(poller, s, stop.clone())
                        .instrument(tracing::info_span!("status_page", stream = %cfg.stream)),
                );
            }
            Source::Datagrams(feed) => {
                let s = sink("statsd".into());
                s.counters.set_up(true);
                out.counters.push(s.counters.clone());
                if let Some(rx) = feed.take() {
                    tasks.spawn(
                        statsd::run_in_process(
                            rx,
                            StatsdConfig::DEFAULT_MAX_PACKET_BYTES,
                            router.clone(),
                            s,
                            stop.clone(),
                        )
                        .instrument(tracing::info_span!("statsd")),
                    );
                }
            }
            Source::Trace(t) => {
                let s = sink(format!("trace:{}", t.stream));
                out.counters.push(s.counters.clone());
                tasks.spawn(
                    trace::run(t.clone(), stream, s, stop.clone())
                        .instrument(tracing::info_span!("trace", stream = %t.stream)),
                );
            }
        }
    }
    tasks.spawn(
        seal_and_summarize(
            store.clone(),
            clock.clone(),
            out.counters.clone(),
            stop.clone(),
        )
        .instrument(tracing::info_span!("series")),
    );
    Ok(out)
}

/// Binds the StatsD socket with a large receive buffer: bursts of
/// datagrams must queue in the kernel, not be dropped there.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // The kernel caps this at net.core.rmem_max; a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let effective = socket.recv_buffer_size().unwrap_or(0);
    tracing::debug!(bytes = effective, "StatsD receive buffer.");
    UdpSocket::from_std(socket.into())
}

/// Seals seconds as their grace window passes; every 10 s logs traffic per
/// stream and any new ingest drops.
async fn seal_and_summarize(
    store: SharedStore,
    clock: SharedClock,
    counters: Vec<Arc<SourceCounters>>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_summary = tokio::time::Instant::now();
    let mut last_counts: Vec<CounterSnapshot> = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        lock(&store).seal(clock.unix_seconds());
        if last_summary.elapsed() < SUMMARY_EVERY {
            continue;
        }
        last_summary = tokio::time::Instant::now();
        log_traffic(&store);
        let now_counts: Vec<CounterSnapshot> = counters.iter().map(|c| c.snapshot()).collect();
        for now in &now_counts {
            let before = last_counts.iter().find(|b| b.source == now.source);
            let new_drops = now.drops_since(before);
            if !new_drops.is_empty() {
                let text = new_drops
                    .iter()
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::warn!(source = %now.source, dropped = %text, "Dropped malformed or late input in the last 10 s.");
            }
        }
        last_counts = now_counts;
    }
}

fn log_traffic(store: &SharedStore) {
    let traffic = {
        let s = lock(store);
        s.stream_ids()
            .map(|id| {
                let sum = s.summary(id);
                let fmt = |x: Option<f64>| x.map_or("unknown".to_string(), |v| format!("{v:.1}"));
                format!(
                    "{} last={} mean10={}",
                    sum.name,
                    fmt(sum.last_value),
                    fmt(sum.mean_10s)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    tracing::info!(streams = %traffic, "Requests per second.");
}
