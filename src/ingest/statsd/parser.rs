//! StatsD / DogStatsD line parser. Pure and allocation-free: a line borrows
//! from the packet.
//!
//! Accepted: `name:value|type[|@rate][|#tag:v,tag][|T<unix seconds>][|c:...]`
//! with types `c`, `g`, `ms`, `h`, `d`, `s`; several values in one line
//! (`name:1:2:3|d`, DogStatsD v1.1); gauge deltas (`+3`, `-2`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Timer,
    Histogram,
    Distribution,
    Set,
}

impl MetricKind {
    /// Timers, histograms and distributions: each value is one event with a latency.
    pub fn is_sampled_event(self) -> bool {
        matches!(
            self,
            MetricKind::Timer | MetricKind::Histogram | MetricKind::Distribution
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsdLine<'a> {
    pub name: &'a str,
    /// Raw value field; several values are separated by ':'.
    pub values: &'a str,
    pub kind: MetricKind,
    pub sample_rate: f64,
    /// Raw DogStatsD tags (`a:1,b`), empty when none.
    pub tags: &'a str,
    /// DogStatsD `|T` timestamp, unix seconds.
    pub timestamp: Option<i64>,
}

/// Why a line was dropped. The names are the `reason` label of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineError {
    NoValue,
    EmptyName,
    BadValue,
    BadType,
    BadSampleRate,
    BadTimestamp,
    NotUtf8,
}

impl LineError {
    pub const ALL: [LineError; 7] = [
        LineError::NoValue,
        LineError::EmptyName,
        LineError::BadValue,
        LineError::BadType,
        LineError::BadSampleRate,
        LineError::BadTimestamp,
        LineError::NotUtf8,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LineError::NoValue => "no_value",
            LineError::EmptyName => "empty_name",
            LineError::BadValue => "bad_value",
            LineError::BadType => "bad_type",
            LineError::BadSampleRate => "bad_sample_rate",
            LineError::BadTimestamp => "bad_timestamp",
            LineError::NotUtf8 => "not_utf8",
        }
    }
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<StatsdLine<'_>, LineError> {
    let mut sections = line.split('|');
    let head = sections.next().unwrap_or("");
    let colon = head.find(':').ok_or(LineError::NoValue)?;
    let name = &head[..colon];
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    let values = &head[colon + 1..];
    if values.is_empty() {
        return Err(LineError::NoValue);
    }
    let kind = match sections.next() {
        Some("c") => MetricKind::Counter,
        Some("g") => MetricKind::Gauge,
        Some("ms") => MetricKind::Timer,
        Some("h") => MetricKind::Histogram,
        Some("d") => MetricKind::Distribution,
        Some("s") => MetricKind::Set,
        _ => return Err(LineError::BadType),
    };
    let mut sample_rate = 1.0;
    let mut tags = "";
    let mut timestamp = None;
    for section in sections {
        match section.as_bytes().first() {
            Some(b'@') => {
                sample_rate = section[1..]
                    .parse::<f64>()
                    .map_err(|_| LineError::BadSampleRate)?;
                if !(sample_rate > 0.0 && sample_rate <= 1.0) {
                    return Err(LineError::BadSampleRate);
                }
            }
            Some(b'#') => tags = &section[1..],
            Some(b'T') => {
                timestamp = Some(
                    section[1..]
                        .parse::<i64>()
                        .map_err(|_| LineError::BadTimestamp)?,
                );
            }
            // Container ids (`c:`), external data (`e:`) and future fields are ignored.
            _ => {}
        }
    }
    if kind != MetricKind::Set {
        // Validate numbers now so that a bad line is rejected whole.
        for v in values.split(':') {
            parse_number(v, kind).ok_or(LineError::BadValue)?;
        }
    }
    Ok(StatsdLine {
        name,
        values,
        kind,
        sample_rate,
        tags,
        timestamp,
    })
}

/// Parses one numeric value. Gauges may carry a sign (delta); nothing may be NaN or infinite.
pub fn parse_number(v: &str, kind: MetricKind) -> Option<f64> {
    let x: f64 = v.parse().ok()?;
    // Seconds are stored as f32: a value beyond its range would turn into
    // infinity there (and infinite demand into a scale-out to max).
    if !x.is_finite() || x.abs() > f32::MAX as f64 {
        return None;
    }
    if kind != MetricKind::Gauge && kind != MetricKind::Counter && x < 0.0 {
        // A negative latency is a client bug, not a measurement.
        return None;
    }
    Some(x)
}

impl<'a> StatsdLine<'a> {
    /// Each value of the line, parsed (sets: the raw members).
    pub fn numbers(&self) -> impl Iterator<Item = f64> + 'a {
        let kind = self.kind;
        self.values
            .split(':')
            .filter_map(move |v| parse_number(v, kind))
    }

    pub fn members(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.values.split(':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, kind, values, sample rate, tags, timestamp)
    type Parsed<'a> = (&'a str, MetricKind, &'a str, f64, &'a str, Option<i64>);

    #[track_caller]
    fn check(line: &str, expected: Result<Parsed, LineError>) {
        let got = parse_line(line)
            .map(|l| (l.name, l.kind, l.values, l.sample_rate, l.tags, l.timestamp));
        assert_eq!(got, expected, "{line:?}");
    }

    use MetricKind::*;

    #[test]
    fn counter() {
        check(
            "http.requests:1|c",
            Ok(("http.requests", Counter, "1", 1.0, "", None)),
        );
    }
    #[test]
    fn counter_with_rate() {
        check(
            "http.requests:3|c|@0.1",
            Ok(("http.requests", Counter, "3", 0.1, "", None)),
        );
    }
    #[test]
    fn timer_with_tags() {
        check(
            "lat:12.5|ms|#route:/home,env:prod",
            Ok(("lat", Timer, "12.5", 1.0, "route:/home,env:prod", None)),
        );
    }
    #[test]
    fn all_sections_any_order() {
        check(
            "d:1:2:3|d|#a:b|@0.5|T1700000000|c:abc",
            Ok(("d", Distribution, "1:2:3", 0.5, "a:b", Some(1_700_000_000))),
        );
    }
    #[test]
    fn gauge_delta() {
        check("g:-4|g", Ok(("g", Gauge, "-4", 1.0, "", None)));
    }
    #[test]
    fn histogram_and_set() {
        check("h:5|h", Ok(("h", Histogram, "5", 1.0, "", None)));
        check("users:alice|s", Ok(("users", Set, "alice", 1.0, "", None)));
    }
    #[test]
    fn no_colon() {
        check("http.requests|c", Err(LineError::NoValue));
    }
    #[test]
    fn empty_value() {
        check("x:|c", Err(LineError::NoValue));
    }
    #[test]
    fn empty_name() {
        check(":1|c", Err(LineError::EmptyName));
    }
    #[test]
    fn unknown_type() {
        check("x:1|zz", Err(LineError::BadType));
        check("x:1", Err(LineError::BadType));
    }
    #[test]
    fn bad_numbers() {
        check("x:abc|c", Err(LineError::BadValue));
        check("x:NaN|c", Err(LineError::BadValue));
        check("x:inf|ms", Err(LineError::BadValue));
        check("x:-5|ms", Err(LineError::BadValue));
        check("x:1:oops|d", Err(LineError::BadValue));
    }
    #[test]
    fn bad_sample_rates() {
        for line in ["x:1|c|@0", "x:1|c|@1.5", "x:1|c|@-1", "x:1|c|@abc"] {
            check(line, Err(LineError::BadSampleRate));
        }
    }
    #[test]
    fn bad_timestamp() {
        check("x:1|c|Tsoon", Err(LineError::BadTimestamp));
    }
    #[test]
    fn multi_values_parse() {
        let l = parse_line("d:1:2.5:3|d").unwrap();
        assert_eq!(l.numbers().collect::<Vec<_>>(), vec![1.0, 2.5, 3.0]);
    }
}
