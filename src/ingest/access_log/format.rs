//! Access-log line formats: nginx `log_format` strings compiled once into a
//! matcher, and JSON lines. Pure; a line becomes a [`LogRecord`] or a
//! [`LogLineError`].

use std::borrow::Cow;

use memchr::memmem;

/// nginx's predefined `combined` format.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// The classic common log format.
pub const COMMON: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

/// What rapidscale takes from a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRecord {
    /// Unix second the request is bucketed in (the log's own timestamp).
    pub second: i64,
    /// Request latency in milliseconds, when the format carries one.
    pub latency_ms: Option<f64>,
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLineError {
    /// The line does not have the format's shape.
    Mismatch,
    /// The time field is not a time.
    BadTime,
    /// A numeric field (status, request time) is not a number.
    BadNumber,
    NotJson,
}

impl LogLineError {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLineError::Mismatch => "format_mismatch",
            LogLineError::BadTime => "bad_time",
            LogLineError::BadNumber => "bad_number",
            LogLineError::NotJson => "not_json",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    TimeLocal,
    TimeIso8601,
    Msec,
    Status,
    RequestTime,
    UpstreamResponseTime,
    Other,
}

impl Var {
    fn from_name(name: &str) -> Var {
        match name {
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "msec" => Var::Msec,
            "status" => Var::Status,
            "request_time" => Var::RequestTime,
            "upstream_response_time" => Var::UpstreamResponseTime,
            _ => Var::Other,
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(Box<memmem::Finder<'static>>),
    Var(Var),
}

/// A compiled nginx `log_format`.
#[derive(Debug, Clone)]
pub struct NginxFormat {
    source: String,
    segments: Vec<Segment>,
}

impl PartialEq for NginxFormat {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A line format as configured.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFormat {
    Nginx(NginxFormat),
    Json,
}

impl LogFormat {
    /// `"combined"`, `"common"`, `"json"`, or an nginx `log_format` string.
    pub fn from_config(text: &str) -> Result<LogFormat, String> {
        match text {
            "combined" => NginxFormat::compile(COMBINED).map(LogFormat::Nginx),
            "common" => NginxFormat::compile(COMMON).map(LogFormat::Nginx),
            "json" => Ok(LogFormat::Json),
            other => NginxFormat::compile(other).map(LogFormat::Nginx),
        }
    }

    pub fn parse(&self, line: &[u8]) -> Result<LogRecord, LogLineError> {
        match self {
            LogFormat::Nginx(f) => f.parse(line),
            LogFormat::Json => parse_json(line),
        }
    }
}

impl NginxFormat {
    pub fn compile(format: &str) -> Result<NginxFormat, String> {
        if format.trim().is_empty() {
            return Err("log_format is empty".into());
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let bytes = format.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                let ch = format[i..].chars().next().expect("i is on a char boundary");
                literal.push(ch);
                i += ch.len_utf8();
                continue;
            }
            let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
                let close = format[i + 2..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed ${{ at byte {i} of log_format"))?;
                (&format[i + 2..i + 2 + close], i + 3 + close)
            } else {
                let len = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                (&format[i + 1..i + 1 + len], i + 1 + len)
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "'$' at byte {i} of log_format is not followed by a variable name"
                ));
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(Box::new(
                    memmem::Finder::new(literal.as_bytes()).into_owned(),
                )));
                literal.clear();
            } else if matches!(segments.last(), Some(Segment::Var(_))) {
                return Err(format!(
                    "variable ${name} follows another variable with nothing between them: lines could not be split"
                ));
            }
            segments.push(Segment::Var(Var::from_name(name)));
            i = next;
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(Box::new(
                memmem::Finder::new(literal.as_bytes()).into_owned(),
            )));
        }
        let has_time = segments.iter().any(|s| {
            matches!(
                s,
                Segment::Var(Var::TimeLocal | Var::TimeIso8601 | Var::Msec)
            )
        });
        if !has_time {
            return Err("log_format has no $time_local, $time_iso8601 or $msec: lines could not be put in their second".into());
        }
        Ok(NginxFormat {
            source: format.to_string(),
            segments,
        })
    }

    pub fn parse(&self, line: &[u8]) -> Result<LogRecord, LogLineError> {
        let mut pos = 0;
        let mut second = None;
        let mut request_time = None;
        let mut upstream_time = None;
        let mut status = None;
        let mut iter = self.segments.iter().peekable();
        while let Some(seg) = iter.next() {
            match seg {
                Segment::Literal(f) => {
                    let lit = f.needle();
                    if !line[pos..].starts_with(lit) {
                        return Err(LogLineError::Mismatch);
                    }
                    pos += lit.len();
                }
                Segment::Var(var) => {
                    let end = match iter.peek() {
                        Some(Segment::Literal(f)) => {
                            pos + f.find(&line[pos..]).ok_or(LogLineError::Mismatch)?
                        }
                        _ => line.len(),
                    };
                    let value = &line[pos..end];
                    match var {
                        Var::TimeLocal => {
                            second = Some(parse_time_local(value).ok_or(LogLineError::BadTime)?)
                        }
                        Var::TimeIso8601 => {
                            second = Some(parse_time_iso8601(value).ok_or(LogLineError::BadTime)?)
                        }
                        Var::Msec => second = Some(parse_msec(value).ok_or(LogLineError::BadTime)?),
                        Var::Status => status = Some(parse_status(value)?),
                        Var::RequestTime => request_time = parse_seconds_field(value)?,
                        Var::UpstreamResponseTime => upstream_time = parse_seconds_field(value)?,
                        Var::Other => {}
                    }
                    pos = end;
                }
            }
        }
        Ok(LogRecord {
            second: second.ok_or(LogLineError::BadTime)?,
            latency_ms: request_time.or(upstream_time).map(|s| s * 1000.0),
            status,
        })
    }
}

fn ascii(value: &[u8]) -> Result<&str, LogLineError> {
    std::str::from_utf8(value).map_err(|_| LogLineError::BadNumber)
}

/// An HTTP status: three digits (100-999); anything else is a malformed line.
fn parse_status(value: &[u8]) -> Result<u16, LogLineError> {
    ascii(value)?
        .parse()
        .ok()
        .filter(|s| (100..1000).contains(s))
        .ok_or(LogLineError::BadNumber)
}

/// `$request_time` / `$upstream_response_time`: seconds with ms precision;
/// "-" when absent; upstream times of several tries are listed with ", "
/// or " : ", and are summed.
fn parse_seconds_field(value: &[u8]) -> Result<Option<f64>, LogLineError> {
    let text = ascii(value)?;
    if text == "-" || text.is_empty() {
        return Ok(None);
    }
    let mut total = 0.0;
    let mut any = false;
    for part in text.split([',', ':']) {
        let part = part.trim();
        if part == "-" || part.is_empty() {
            continue;
        }
        let x: f64 = part.parse().map_err(|_| LogLineError::BadNumber)?;
        if !(x.is_finite() && x >= 0.0) {
            return Err(LogLineError::BadNumber);
        }
        total += x;
        any = true;
    }
    Ok(any.then_some(total))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        // Too many digits is a malformed field, not an overflow.
        v = v.checked_mul(10)?.checked_add((c - b'0') as u32)?;
    }
    Some(v)
}

fn to_unix(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32, offset_s: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y as i64, mo, d) * 86_400 + (h * 3600 + mi * 60 + s) as i64 - offset_s)
}

/// `+hhmm` / `-hhmm` / `+hh:mm` / `Z` -> seconds east of UTC.
fn parse_offset(b: &[u8]) -> Option<i64> {
    match b {
        b"Z" => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hh, mm) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            let secs = (hh * 3600 + mm * 60) as i64;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// `10/Oct/2000:13:55:36 -0700`
pub fn parse_time_local(b: &[u8]) -> Option<i64> {
    if b.len() != 26
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || b[20] != b' '
    {
        return None;
    }
    let month = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    to_unix(
        digits(&b[7..11])?,
        month,
        digits(&b[0..2])?,
        digits(&b[12..14])?,
        digits(&b[15..17])?,
        digits(&b[18..20])?,
        parse_offset(&b[21..26])?,
    )
}

/// `2000-10-10T13:55:36-07:00` (fractional seconds allowed, `Z` allowed).
pub fn parse_time_iso8601(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let frac = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        rest = &rest[1 + frac..];
    }
    to_unix(
        digits(&b[0..4])?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
        parse_offset(rest)?,
    )
}

/// `$msec`: `1700000000.123`.
pub fn parse_msec(b: &[u8]) -> Option<i64> {
    let int = match memchr::memchr(b'.', b) {
        Some(dot) => {
            digits(&b[dot + 1..])?;
            &b[..dot]
        }
        None => b,
    };
    if int.len() > 12 {
        return None;
    }
    let mut v = 0i64;
    for &c in int {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    (!int.is_empty()).then_some(v)
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum NumOrStr<'a> {
    Num(f64),
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

#[derive(serde::Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow, default)]
    time_iso8601: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time_local: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    msec: Option<NumOrStr<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<NumOrStr<'a>>,
    #[serde(borrow, default)]
    status: Option<NumOrStr<'a>>,
    #[serde(borrow, default)]
    request_time: Option<NumOrStr<'a>>,
    #[serde(borrow, default)]
    upstream_response_time: Option<NumOrStr<'a>>,
}

fn json_seconds(v: &Option<NumOrStr>) -> Result<Option<f64>, LogLineError> {
    match v {
        None => Ok(None),
        Some(NumOrStr::Num(x)) if x.is_finite() && *x >= 0.0 => Ok(Some(*x)),
        Some(NumOrStr::Num(_)) => Err(LogLineError::BadNumber),
        Some(NumOrStr::Str(s)) => parse_seconds_field(s.as_bytes()),
    }
}

fn json_epoch(v: &NumOrStr) -> Option<i64> {
    match v {
        NumOrStr::Num(x) if x.is_finite() && *x >= 0.0 => Some(x.floor() as i64),
        NumOrStr::Num(_) => None,
        NumOrStr::Str(s) => parse_msec(s.as_bytes()),
    }
}

/// A JSON object per line; time from `time_iso8601`, `time_local`, `time`
/// (ISO 8601), `msec` or `timestamp` (unix seconds); latency from
/// `request_time` or `upstream_response_time` (seconds); `status`.
fn parse_json(line: &[u8]) -> Result<LogRecord, LogLineError> {
    let j: JsonLine = serde_json::from_slice(line).map_err(|_| LogLineError::NotJson)?;
    let second = if let Some(t) = &j.time_iso8601 {
        parse_time_iso8601(t.as_bytes())
    } else if let Some(t) = &j.time_local {
        parse_time_local(t.as_bytes())
    } else if let Some(t) = &j.time {
        parse_time_iso8601(t.as_bytes())
    } else if let Some(t) = j.msec.as_ref().or(j.timestamp.as_ref()) {
        json_epoch(t)
    } else {
        None
    }
    .ok_or(LogLineError::BadTime)?;
    let status = match &j.status {
        None => None,
        Some(NumOrStr::Num(x)) if (100.0..1000.0).contains(x) && x.fract() == 0.0 => {
            Some(*x as u16)
        }
        Some(NumOrStr::Num(_)) => return Err(LogLineError::BadNumber),
        Some(NumOrStr::Str(s)) => Some(parse_status(s.as_bytes())?),
    };
    let latency = json_seconds(&j.request_time)?.or(json_seconds(&j.upstream_response_time)?);
    Ok(LogRecord {
        second,
        latency_ms: latency.map(|s| s * 1000.0),
        status,
    })
}
