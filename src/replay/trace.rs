//! Recorded traffic -> requests per second.
//!
//! Three inputs, told apart by their first line:
//! - `second,requests`: one row per second (missing seconds are idle);
//! - `minute,requests`: one row per minute, spread over its seconds as
//!   Poisson arrivals (each request falls in a uniformly random second of
//!   its minute) drawn from a fixed seed;
//! - anything else: an access log, parsed by the daemon's own parsers
//!   (`--log-format`, default "combined"; JSON lines are recognised).
//!
//! The time column is unix seconds (minutes) when it is at least 10^8
//! (10^8 / 60; that is, after March 1973); smaller values are offsets from
//! `start`. Files ending in
//! `.gz` are decompressed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand_distr::{Binomial, Distribution};
use serde::Serialize;

use crate::ingest::access_log::format::LogFormat;

/// Where a trace's offsets start when it has no absolute times: a Monday,
/// so weekday schedules line up.
pub const DEFAULT_START: &str = "2026-01-05T00:00:00Z";

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TraceKind {
    PerSecond,
    /// Minutes spread into seconds with this seed.
    PerMinute {
        seed: u64,
    },
    AccessLog {
        format: String,
        lines: u64,
        dropped: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Trace {
    /// The wall time of `requests[0]`.
    pub start: DateTime<Utc>,
    pub requests: Vec<f64>,
    pub kind: TraceKind,
}

#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Where offsets start.
    pub start: DateTime<Utc>,
    /// Seed of the minute spreading.
    pub seed: u64,
    /// The access-log format ("combined", "json", or an nginx log_format).
    pub log_format: String,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            start: DateTime::parse_from_rfc3339(DEFAULT_START)
                .expect("valid constant")
                .with_timezone(&Utc),
            seed: 1,
            log_format: "combined".to_string(),
        }
    }
}

/// Longest trace accepted: 400 days of seconds.
const MAX_SECONDS: i64 = 400 * 86_400;

pub fn load(path: &Path, opts: &TraceOptions) -> Result<Trace, TraceError> {
    let name = path.display().to_string();
    let io = |source| TraceError::Io {
        path: name.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let gzip = path.extension().is_some_and(|e| e == "gz");
    read(&name, file, gzip, opts)
}

/// Reads a trace from any reader (`name` is used in errors).
pub fn read(
    name: &str,
    input: impl Read + 'static,
    gzip: bool,
    opts: &TraceOptions,
) -> Result<Trace, TraceError> {
    let io = |source| TraceError::Io {
        path: name.to_string(),
        source,
    };
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut lines = BufReader::with_capacity(1 << 16, reader);
    let mut first = Vec::new();
    lines.read_until(b'\n', &mut first).map_err(io)?;
    let header = String::from_utf8_lossy(&first).trim().to_ascii_lowercase();
    match header.as_str() {
        "second,requests" => read_counts(lines, name, opts, 1),
        "minute,requests" => read_counts(lines, name, opts, 60),
        _ => read_log(first, lines, name, opts),
    }
}

/// Reads `time,requests` rows; `unit` is 1 for seconds, 60 for minutes.
fn read_counts(
    lines: impl BufRead,
    path: &str,
    opts: &TraceOptions,
    unit: i64,
) -> Result<Trace, TraceError> {
    let parse_err = |line: usize, reason: String| TraceError::Parse {
        path: path.to_string(),
        line,
        reason,
    };
    let mut rows: Vec<(i64, f64)> = Vec::new();
    for (i, line) in lines.lines().enumerate() {
        let n = i + 2;
        let line = line.map_err(|e| TraceError::Io {
            path: path.to_string(),
            source: e,
        })?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (t, r) = line
            .split_once(',')
            .ok_or_else(|| parse_err(n, format!("expected two columns, got {line:?}")))?;
        let t: i64 = t
            .trim()
            .parse()
            .map_err(|_| parse_err(n, format!("time {t:?} is not an integer")))?;
        let r: f64 = r
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| parse_err(n, format!("requests {r:?} is not a count >= 0")))?;
        if let Some((last, _)) = rows.last() {
            if t <= *last {
                return Err(parse_err(n, format!("time {t} does not increase")));
            }
        }
        rows.push((t, r));
    }
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return Err(TraceError::Invalid {
            path: path.to_string(),
            reason: "no rows".to_string(),
        });
    };
    let absolute = first.0 >= 100_000_000 / unit;
    let start = if absolute {
        DateTime::from_timestamp(first.0 * unit, 0).ok_or_else(|| TraceError::Invalid {
            path: path.to_string(),
            reason: format!("time {} is out of range", first.0),
        })?
    } else {
        opts.start + chrono::TimeDelta::seconds(first.0 * unit)
    };
    let len = (last.0 - first.0 + 1) * unit;
    if len > MAX_SECONDS {
        return Err(TraceError::Invalid {
            path: path.to_string(),
            reason: format!("spans {len} seconds; at most {MAX_SECONDS} are replayed"),
        });
    }
    let mut requests = vec![0.0; len as usize];
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    for (t, r) in rows {
        let at = ((t - first.0) * unit) as usize;
        if unit == 1 {
            requests[at] = r;
        } else {
            spread(
                &mut requests[at..at + unit as usize],
                r.round() as u64,
                &mut rng,
            );
        }
    }
    Ok(Trace {
        start,
        requests,
        kind: if unit == 1 {
            TraceKind::PerSecond
        } else {
            TraceKind::PerMinute { seed: opts.seed }
        },
    })
}

/// Puts `n` requests into the seconds of `out`, each in a uniformly random
/// second (Poisson arrivals given their count): a multinomial drawn as a
/// chain of binomials.
fn spread(out: &mut [f64], n: u64, rng: &mut rand::rngs::StdRng) {
    let mut left = n;
    let len = out.len();
    for (i, slot) in out.iter_mut().enumerate() {
        if left == 0 {
            break;
        }
        let k = if i + 1 == len {
            left
        } else {
            Binomial::new(left, 1.0 / (len - i) as f64)
                .map(|b| b.sample(rng))
                .unwrap_or(0)
        };
        *slot = k as f64;
        left -= k;
    }
}

fn read_log(
    first: Vec<u8>,
    mut lines: impl BufRead,
    path: &str,
    opts: &TraceOptions,
) -> Result<Trace, TraceError> {
    let format_name = if opts.log_format == "combined" && first.trim_ascii_start().starts_with(b"{")
    {
        "json".to_string()
    } else {
        opts.log_format.clone()
    };
    let format = LogFormat::from_config(&format_name).map_err(|reason| TraceError::Invalid {
        path: path.to_string(),
        reason: format!("log format: {reason}"),
    })?;
    let mut seconds: Vec<i64> = Vec::new();
    let (mut total, mut dropped) = (0u64, 0u64);
    let mut line = first;
    loop {
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() {
            total += 1;
            match format.parse(trimmed) {
                Ok(rec) => seconds.push(rec.second),
                Err(_) => dropped += 1,
            }
        }
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| TraceError::Io {
                path: path.to_string(),
                source: e,
            })?;
        if n == 0 {
            break;
        }
    }
    let (Some(&lo), Some(&hi)) = (seconds.iter().min(), seconds.iter().max()) else {
        return Err(TraceError::Invalid {
            path: path.to_string(),
            reason: format!("none of its {total} lines matched the log format {format_name:?}"),
        });
    };
    if hi - lo >= MAX_SECONDS {
        return Err(TraceError::Invalid {
            path: path.to_string(),
            reason: format!(
                "spans {} seconds; at most {MAX_SECONDS} are replayed",
                hi - lo
            ),
        });
    }
    let mut requests = vec![0.0; (hi - lo + 1) as usize];
    for s in seconds {
        requests[(s - lo) as usize] += 1.0;
    }
    Ok(Trace {
        start: DateTime::from_timestamp(lo, 0).unwrap_or(opts.start),
        requests,
        kind: TraceKind::AccessLog {
            format: format_name,
            lines: total,
            dropped,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn per_second_csv_with_offsets_and_gaps() {
        let f = write("second,requests\n0,3\n1,4\n4,1\n");
        let t = load(f.path(), &TraceOptions::default()).unwrap();
        assert_eq!(t.requests, vec![3.0, 4.0, 0.0, 0.0, 1.0]);
        assert_eq!(t.start.to_rfc3339(), "2026-01-05T00:00:00+00:00");
        assert_eq!(t.kind, TraceKind::PerSecond);
    }

    #[test]
    fn unix_seconds_set_the_start() {
        let f = write("second,requests\n1700000000,2\n1700000001,5\n");
        let t = load(f.path(), &TraceOptions::default()).unwrap();
        assert_eq!(t.start.timestamp(), 1_700_000_000);
        assert_eq!(t.requests, vec![2.0, 5.0]);
    }

    #[test]
    fn minutes_are_spread_over_their_seconds_keeping_the_total() {
        let f = write("minute,requests\n0,600\n1,0\n2,6000\n");
        let t = load(f.path(), &TraceOptions::default()).unwrap();
        assert_eq!(t.requests.len(), 180);
        let sum = |r: &[f64]| r.iter().sum::<f64>();
        assert_eq!(sum(&t.requests[..60]), 600.0);
        assert_eq!(sum(&t.requests[60..120]), 0.0);
        assert_eq!(sum(&t.requests[120..]), 6000.0);
        // Poisson arrivals: about 10/s with spread, never all in one second.
        let max = t.requests[..60].iter().copied().fold(0.0, f64::max);
        assert!(max < 30.0 && max > 10.0, "{max}");
        // The same seed gives the same spread; another seed another one.
        let again = load(f.path(), &TraceOptions::default()).unwrap();
        assert_eq!(again.requests, t.requests);
        let other = load(
            f.path(),
            &TraceOptions {
                seed: 2,
                ..TraceOptions::default()
            },
        )
        .unwrap();
        assert_ne!(other.requests, t.requests);
        assert_eq!(t.kind, TraceKind::PerMinute { seed: 1 });
    }

    #[test]
    fn bad_rows_name_their_line() {
        let f = write("second,requests\n0,1\n1,x\n");
        let e = load(f.path(), &TraceOptions::default()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(":3: requests \"x\" is not a count >= 0"),
            "{e}"
        );
        let f = write("second,requests\n5,1\n5,1\n");
        let e = load(f.path(), &TraceOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains(":3: time 5 does not increase"),
            "{e}"
        );
        let f = write("second,requests\n");
        assert!(load(f.path(), &TraceOptions::default()).is_err());
    }

    #[test]
    fn access_logs_go_through_the_ingest_parsers() {
        let line =
            |t: &str| format!("10.0.0.1 - - [{t}] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl\"\n");
        let text = [
            line("29/Nov/2026:10:00:00 +0000"),
            line("29/Nov/2026:10:00:00 +0000"),
            "garbage\n".to_string(),
            line("29/Nov/2026:10:00:02 +0000"),
        ]
        .concat();
        let f = write(&text);
        let t = load(f.path(), &TraceOptions::default()).unwrap();
        assert_eq!(t.requests, vec![2.0, 0.0, 1.0]);
        assert_eq!(t.start.to_rfc3339(), "2026-11-29T10:00:00+00:00");
        assert_eq!(
            t.kind,
            TraceKind::AccessLog {
                format: "combined".into(),
                lines: 4,
                dropped: 1
            }
        );
        let json =
            write("{\"time_iso8601\":\"2026-11-29T10:00:00+00:00\",\"request_time\":\"0.010\"}\n");
        let t = load(json.path(), &TraceOptions::default()).unwrap();
        assert_eq!(t.requests, vec![1.0]);
    }

    #[test]
    fn gzip_traces_are_read() {
        let f = tempfile::Builder::new()
            .suffix(".csv.gz")
            .tempfile()
            .unwrap();
        let mut gz =
            flate2::write::GzEncoder::new(f.reopen().unwrap(), flate2::Compression::fast());
        gz.write_all(b"second,requests\n0,7\n").unwrap();
        gz.finish().unwrap();
        let t = load(f.path(), &TraceOptions::default()).unwrap();
        assert_eq!(t.requests, vec![7.0]);
    }
}
