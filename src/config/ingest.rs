//! `[ingest]`: the sources of traffic and the streams they feed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::reader::{enum_value, positive_size, socket_addr, Located, Problems, TableReader};
use super::{throttled_stream, units_stream, Config};
use crate::ingest::access_log::format::LogFormat;
pub use crate::ingest::access_log::StartAt;
use crate::ingest::selector::MetricSelector;
pub use crate::ingest::status_page::StatusKind;

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// How long a second stays open for late samples before it is sealed.
    pub grace: Duration,
    /// A stream with no sample for this long is stale: its seconds are
    /// unknown and no decision is taken on it.
    pub stale_after: Duration,
    /// The stream whose requests/s drive `per_request` demand and the group
    /// size (default: the first configured source).
    pub requests_stream: Option<String>,
    pub statsd: Option<StatsdConfig>,
    pub access_logs: Vec<AccessLogConfig>,
    pub status_pages: Vec<StatusPageConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    pub listen: SocketAddr,
    /// The stream that request metrics feed.
    pub stream: String,
    /// Metric selectors whose samples count as requests.
    pub requests: Vec<MetricSelector>,
    /// Datagrams longer than this are dropped and counted.
    pub max_packet_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogConfig {
    pub path: PathBuf,
    pub stream: String,
    pub format: LogFormat,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    pub max_line_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusPageConfig {
    pub url: String,
    pub kind: StatusKind,
    pub stream: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl IngestConfig {
    /// A second stays open this long after it ends for late samples.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
    /// A stream with no sample for this long is stale.
    pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5);
}

impl StatsdConfig {
    pub const DEFAULT_MAX_PACKET_BYTES: usize = 65_535;
}

impl AccessLogConfig {
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);
    pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
}

impl StatusPageConfig {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(800);
}

pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> IngestConfig {
    let mut ingest = IngestConfig {
        grace: IngestConfig::DEFAULT_GRACE,
        stale_after: IngestConfig::DEFAULT_STALE_AFTER,
        requests_stream: None,
        statsd: None,
        access_logs: Vec::new(),
        status_pages: Vec::new(),
    };
    let Some(mut t) = root.table(p, "ingest") else {
        return ingest;
    };
    if let Some(g) = t.duration(p, "grace") {
        ingest.grace = g.value;
    }
    if let Some(s) = t.duration(p, "stale_after") {
        ingest.stale_after = s.value;
    }
    let requests_stream = t.string(p, "requests_stream");
    let mut streams: Vec<Located<String>> = Vec::new();
    if let Some(s) = t.table(p, "statsd") {
        ingest.statsd = read_statsd(s, p, &mut streams);
    }
    for (i, a) in t.tables(p, "access_log").into_iter().enumerate() {
        ingest
            .access_logs
            .extend(read_access_log(a, p, i, &mut streams));
    }
    for (i, s) in t.tables(p, "status_page").into_iter().enumerate() {
        ingest
            .status_pages
            .extend(read_status_page(s, p, i, &mut streams));
    }
    if let Some(rs) = requests_stream {
        if streams.iter().any(|s| s.value == rs.value) {
            ingest.requests_stream = Some(rs.value);
        } else {
            let known: Vec<&str> = streams.iter().map(|s| s.value.as_str()).collect();
            p.push(
                rs.span,
                &rs.key,
                format!(
                    "no source writes stream {:?} (streams: {})",
                    rs.value,
                    known.join(", ")
                ),
            );
        }
    } else {
        ingest.requests_stream = streams.first().map(|s| s.value.clone());
    }
    t.finish(p);
    ingest
}

fn stream_name(
    t: &mut TableReader,
    p: &mut Problems,
    default: &str,
    seen: &mut Vec<Located<String>>,
) -> String {
    let name = t.string(p, "stream").unwrap_or_else(|| Located {
        value: default.to_string(),
        key: t.key_path("stream"),
        span: t.span(),
    });
    let valid = !name.value.is_empty()
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid {
        p.push(
            name.span.clone(),
            &name.key,
            "stream names use letters, digits, '_', '-' and '.'",
        );
    }
    if seen.iter().any(|s| s.value == name.value) {
        p.push(
            name.span.clone(),
            &name.key,
            format!(
                "stream {:?} is used by another source; give each source its own `stream`",
                name.value
            ),
        );
    }
    seen.push(name.clone());
    name.value
}

impl Config {
    /// Every stream name the ingest sources write.
    pub fn request_streams(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(s) = &self.ingest.statsd {
            names.push(s.stream.clone());
        }
        names.extend(self.ingest.access_logs.iter().map(|a| a.stream.clone()));
        names.extend(self.ingest.status_pages.iter().map(|s| s.stream.clone()));
        names
    }

    /// Every StatsD selector and the stream it feeds: request selectors feed
    /// the StatsD stream, unit metrics of tables and indexes feed their
    /// units stream.
    pub fn statsd_routes(&self) -> Vec<(MetricSelector, String)> {
        let mut routes = Vec::new();
        if let Some(s) = &self.ingest.statsd {
            routes.extend(s.requests.iter().map(|sel| (sel.clone(), s.stream.clone())));
        }
        for c in self.capacities() {
            if let Some(sel) = &c.spec.metric {
                routes.push((sel.clone(), units_stream(c.table, c.index, c.op)));
            }
            if let Some(sel) = &c.spec.throttled {
                routes.push((sel.clone(), throttled_stream(c.table, c.index, c.op)));
            }
        }
        routes
    }
}

/// `[ingest.statsd]` (None when its address is missing or bad).
fn read_statsd(
    mut s: TableReader,
    p: &mut Problems,
    streams: &mut Vec<Located<String>>,
) -> Option<StatsdConfig> {
    let listen = s.string(p, "listen").and_then(|l| socket_addr(p, &l));
    if listen.is_none() && !s.has("listen") {
        p.push(
            s.span(),
            &s.key_path("listen"),
            "missing: the UDP address to listen on, e.g. \"127.0.0.1:8125\"",
        );
    }
    let stream = stream_name(&mut s, p, "statsd", streams);
    let mut requests = Vec::new();
    for sel in s.string_array(p, "requests").unwrap_or_default() {
        match MetricSelector::parse(&sel.value) {
            Ok(m) => requests.push(m),
            Err(why) => p.push(sel.span, &sel.key, why),
        }
    }
    let max_packet_bytes = s.uint(p, "max_packet_bytes");
    let max_packet_bytes =
        positive_size(p, max_packet_bytes, StatsdConfig::DEFAULT_MAX_PACKET_BYTES);
    s.finish(p);
    listen.map(|listen| StatsdConfig {
        listen,
        stream,
        requests,
        max_packet_bytes,
    })
}

/// The `i`th `[[ingest.access_log]]`.
fn read_access_log(
    mut a: TableReader,
    p: &mut Problems,
    i: usize,
    streams: &mut Vec<Located<String>>,
) -> Option<AccessLogConfig> {
    let path = a.string(p, "path");
    if path.is_none() && !a.has("path") {
        p.push(
            a.span(),
            &a.key_path("path"),
            "missing: the log file to follow",
        );
    }
    let default_stream = if i == 0 {
        "access_log".to_string()
    } else {
        format!("access_log_{i}")
    };
    let stream = stream_name(&mut a, p, &default_stream, streams);
    let format = match a.string(p, "format") {
        Some(f) => match LogFormat::from_config(&f.value) {
            Ok(fmt) => Some(fmt),
            Err(why) => {
                p.push(f.span, &f.key, why);
                None
            }
        },
        None => LogFormat::from_config("combined").ok(),
    };
    let start_at = a
        .string(p, "start_at")
        .and_then(|s| {
            enum_value(
                p,
                &s,
                |v| match v {
                    "end" => Some(StartAt::End),
                    "beginning" => Some(StartAt::Beginning),
                    _ => None,
                },
                "\"end\" or \"beginning\"",
            )
        })
        .unwrap_or(StartAt::End);
    let poll_interval = a
        .duration(p, "poll_interval")
        .map(|d| d.value)
        .unwrap_or(AccessLogConfig::DEFAULT_POLL_INTERVAL);
    let max_line_bytes = a.uint(p, "max_line_bytes");
    let max_line_bytes = positive_size(p, max_line_bytes, AccessLogConfig::DEFAULT_MAX_LINE_BYTES);
    a.finish(p);
    Some(AccessLogConfig {
        path: PathBuf::from(path?.value),
        stream,
        format: format?,
        start_at,
        poll_interval,
        max_line_bytes,
    })
}

/// The `i`th `[[ingest.status_page]]`.
fn read_status_page(
    mut s: TableReader,
    p: &mut Problems,
    i: usize,
    streams: &mut Vec<Located<String>>,
) -> Option<StatusPageConfig> {
    let url = s.string(p, "url");
    match &url {
        Some(u) if !u.value.starts_with("http://") => p.push(
            u.span.clone(),
            &u.key,
            "must be an http:// URL (status pages are local; https is not supported)",
        ),
        None if !s.has("url") => {
            p.push(s.span(), &s.key_path("url"), "missing: the status page URL")
        }
        _ => {}
    }
    let kind = s
        .string(p, "kind")
        .and_then(|k| {
            enum_value(
                p,
                &k,
                |v| match v {
                    "nginx" => Some(StatusKind::Nginx),
                    "php-fpm" => Some(StatusKind::PhpFpm),
                    _ => None,
                },
                "\"nginx\" or \"php-fpm\"",
            )
        })
        .unwrap_or(StatusKind::Nginx);
    let default_stream = if i == 0 {
        "status_page".to_string()
    } else {
        format!("status_page_{i}")
    };
    let stream = stream_name(&mut s, p, &default_stream, streams);
    let interval = s
        .duration(p, "interval")
        .map(|d| d.value)
        .unwrap_or(StatusPageConfig::DEFAULT_INTERVAL);
    let timeout = s
        .duration(p, "timeout")
        .map(|d| d.value)
        .unwrap_or(StatusPageConfig::DEFAULT_TIMEOUT);
    s.finish(p);
    url.map(|url| StatusPageConfig {
        url: url.value,
        kind,
        stream,
        interval,
        timeout,
    })
}
