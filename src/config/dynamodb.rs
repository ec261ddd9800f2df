//! `[dynamodb]`: the policy's timing and thresholds, and every table and
//! index with its per-hour read and write limits.

use std::time::Duration;

use super::reader::{enum_value, Located, Problems, TableReader};
use super::schedule::{parse_hours, HourSet, HourTable};
use super::{Config, Mode};
use crate::ingest::selector::MetricSelector;

#[derive(Debug, Clone, PartialEq)]
pub struct DynamoDbConfig {
    pub poll_interval: Duration,
    pub policy: DynamoPolicy,
    pub tables: Vec<TableConfig>,
}

impl DynamoDbConfig {
    /// How often each table is described unless `poll_interval` says otherwise.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
}

impl Default for DynamoDbConfig {
    fn default() -> Self {
        Self {
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            policy: DynamoPolicy::DEFAULT,
            tables: Vec::new(),
        }
    }
}

/// Timing and thresholds of the DynamoDB policy (`[dynamodb]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynamoPolicy {
    /// Band around the target: up above target x (1 + tolerance), down below target x (1 - tolerance).
    pub tolerance: f64,
    /// How long demand must stay above the band before capacity goes up.
    pub up_window: Duration,
    /// Seconds fitted by the trend line.
    pub trend_window: Duration,
    /// How far ahead the trend may predict a crossing.
    pub lead: Duration,
    /// New capacity is rounded up to this fraction of the current capacity (at least 1 unit).
    pub step: f64,
    /// How long demand must stay below the band before capacity goes down.
    pub down_window: Duration,
    /// Never go below the min of an hour that starts within this.
    pub down_lookahead: Duration,
    /// A decrease must save at least this fraction of the current capacity.
    pub min_decrease: f64,
    /// Raise to a higher scheduled min this long before its hour starts.
    pub prewarm: Duration,
    /// Decreases kept back for the rest of the UTC day.
    pub reserve: u32,
    /// Share of DynamoDB's burst capacity (unused capacity of the last
    /// 300 s, as modelled from demand) the policy counts on to ride out
    /// spikes; 0 reacts to every spike above the band.
    pub burst_share: f64,
    /// How long an increase takes to be in effect: burst must cover the
    /// excess this long for a spike to be left to it.
    pub update_time: Duration,
    /// Sustained demand and decreases are judged on means over this long.
    pub smooth: Duration,
    /// Decreases allowed per table or index per UTC day (AWS's quota: 27
    /// unless raised or lowered in Service Quotas).
    pub decrease_quota: u32,
    /// The longest burst capacity is counted on to carry demand above the
    /// band before capacity is raised anyway.
    pub hold_max: Duration,
    /// The largest excess over the band's top (a fraction of provisioned)
    /// burst capacity is counted on to carry; past it, capacity is raised.
    pub hold_excess: f64,
    /// How long throttling lowers the burst capacity counted on.
    pub burst_memory: Duration,
}

impl DynamoPolicy {
    pub const DEFAULT: DynamoPolicy = DynamoPolicy {
        tolerance: 0.1,
        up_window: Duration::from_secs(2),
        trend_window: Duration::from_secs(30),
        lead: Duration::from_secs(10),
        step: 0.05,
        down_window: Duration::from_secs(15 * 60),
        down_lookahead: Duration::from_secs(3600),
        min_decrease: 0.2,
        prewarm: Duration::from_secs(60),
        reserve: 2,
        burst_share: 0.5,
        update_time: Duration::from_secs(20),
        smooth: Duration::from_secs(120),
        decrease_quota: 27,
        hold_max: Duration::from_secs(120),
        hold_excess: 4.0,
        burst_memory: Duration::from_secs(24 * 3600),
    };
}

impl Default for DynamoPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Effective limits for one hour of the day.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CapacityLimits {
    pub target: f64,
    pub min: u64,
    pub max: u64,
}

impl CapacityLimits {
    /// Utilization aimed at when `target` is not given.
    pub const DEFAULT_TARGET: f64 = 0.7;
}

/// How read or write capacity of a table or index is managed.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySpec {
    /// Units one request costs, when demand is derived from requests/s.
    /// With `auto`, the value used until (and whenever) the CloudWatch fit
    /// is not good enough (`per_request_fallback`).
    pub per_request: Option<f64>,
    /// `per_request = "auto"`: fitted from DynamoDB's consumed-capacity
    /// metrics (src/cloudwatch/calibrate.rs).
    pub auto: bool,
    /// A StatsD selector that carries consumed units reported by the app.
    pub metric: Option<MetricSelector>,
    /// A StatsD selector of the app's throttled calls (the
    /// ProvisionedThroughputExceeded / Throttling answers it gets): any
    /// throttling seen ends a bet on burst capacity within a second.
    pub throttled: Option<MetricSelector>,
    pub hours: HourTable<CapacityLimits>,
    /// Hours an `[[...hours]]` block sets for this capacity (kept by
    /// `suggest-schedule`).
    pub overridden: [bool; 24],
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    pub name: String,
    pub read: Option<CapacitySpec>,
    pub write: Option<CapacitySpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableConfig {
    pub name: String,
    pub mode: Option<Mode>,
    pub read: Option<CapacitySpec>,
    pub write: Option<CapacitySpec>,
    pub indexes: Vec<IndexConfig>,
}

/// Name of the stream that carries consumed units reported by the app for
/// one table (or index) and operation.
pub fn units_stream(table: &str, index: Option<&str>, op: &str) -> String {
    match index {
        Some(i) => format!("units:{table}/{i}:{op}"),
        None => format!("units:{table}:{op}"),
    }
}

/// Name of the stream that carries the app's throttled calls for one table
/// (or index) and operation.
pub fn throttled_stream(table: &str, index: Option<&str>, op: &str) -> String {
    match index {
        Some(i) => format!("throttled:{table}/{i}:{op}"),
        None => format!("throttled:{table}:{op}"),
    }
}

/// One configured capacity: the read or write spec of a table or index.
#[derive(Debug, Clone, Copy)]
pub struct CapacityRef<'a> {
    pub table: &'a str,
    pub index: Option<&'a str>,
    /// "read" or "write".
    pub op: &'static str,
    pub spec: &'a CapacitySpec,
}

impl Config {
    /// Every configured capacity: each table's own, then its indexes', read
    /// before write.
    pub fn capacities(&self) -> impl Iterator<Item = CapacityRef<'_>> {
        self.dynamodb.tables.iter().flat_map(|t| {
            std::iter::once((None, &t.read, &t.write))
                .chain(
                    t.indexes
                        .iter()
                        .map(|i| (Some(i.name.as_str()), &i.read, &i.write)),
                )
                .flat_map(move |(index, read, write)| {
                    [("read", read), ("write", write)]
                        .into_iter()
                        .filter_map(move |(op, spec)| {
                            Some(CapacityRef {
                                table: &t.name,
                                index,
                                op,
                                spec: spec.as_ref()?,
                            })
                        })
                })
        })
    }
}

/// Reads its section; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems, has_statsd: bool) -> DynamoDbConfig {
    match root.table(p, "dynamodb") {
        Some(mut t) => {
            let poll_interval = t
                .duration(p, "poll_interval")
                .map(|d| d.value)
                .unwrap_or(DynamoDbConfig::DEFAULT_POLL_INTERVAL);
            let policy = read_dynamo_policy(&mut t, p);
            let mut tables = Vec::new();
            let mut seen = Vec::<String>::new();
            for mut tt in t.tables(p, "tables") {
                if let Some(table) = read_table(&mut tt, p, has_statsd) {
                    if seen.contains(&table.name) {
                        p.push(
                            tt.span(),
                            &tt.key_path("name"),
                            format!("table {:?} is configured twice", table.name),
                        );
                    }
                    seen.push(table.name.clone());
                    tables.push(table);
                }
                tt.finish(p);
            }
            t.finish(p);
            DynamoDbConfig {
                poll_interval,
                policy,
                tables,
            }
        }
        None => DynamoDbConfig::default(),
    }
}

fn read_dynamo_policy(t: &mut TableReader, p: &mut Problems) -> DynamoPolicy {
    let d = DynamoPolicy::DEFAULT;
    let fraction = |p: &mut Problems, v: Option<Located<f64>>, default: f64| -> f64 {
        match v {
            Some(v) if !(0.0..1.0).contains(&v.value) => {
                p.push(
                    v.span,
                    &v.key,
                    format!("must be a fraction in [0, 1), got {}", v.value),
                );
                default
            }
            Some(v) => v.value,
            None => default,
        }
    };
    let tolerance = t.float(p, "tolerance");
    let step = t.float(p, "step");
    let min_decrease = t.float(p, "min_decrease");
    let burst_share = t.float(p, "burst_share");
    let hold_excess = match t.float(p, "hold_excess") {
        Some(v) if !(v.value >= 0.0 && v.value.is_finite()) => {
            p.push(
                v.span,
                &v.key,
                format!("must be a share of provisioned >= 0, got {}", v.value),
            );
            d.hold_excess
        }
        Some(v) => v.value,
        None => d.hold_excess,
    };
    let mut dur = |p: &mut Problems, key: &str, default: Duration| {
        t.duration(p, key).map(|d| d.value).unwrap_or(default)
    };
    let up_window = dur(p, "up_window", d.up_window);
    let trend_window = dur(p, "trend_window", d.trend_window);
    let lead = dur(p, "lead", d.lead);
    let down_window = dur(p, "down_window", d.down_window);
    let down_lookahead = dur(p, "down_lookahead", d.down_lookahead);
    let prewarm = dur(p, "prewarm", d.prewarm);
    let update_time = dur(p, "update_time", d.update_time);
    let smooth = dur(p, "smooth", d.smooth).max(Duration::from_secs(1));
    let hold_max = dur(p, "hold_max", d.hold_max);
    let burst_memory = dur(p, "burst_memory", d.burst_memory);
    let decrease_quota = match t.uint(p, "decrease_quota") {
        Some(q) if q.value == 0 || q.value > 1000 => {
            p.push(
                q.span,
                &q.key,
                format!("must be 1 to 1000 decreases a day, got {}", q.value),
            );
            d.decrease_quota
        }
        Some(q) => q.value as u32,
        None => d.decrease_quota,
    };
    let reserve = t
        .uint(p, "reserve")
        .map(|r| r.value.min(decrease_quota as u64) as u32)
        .unwrap_or(d.reserve);
    DynamoPolicy {
        tolerance: fraction(p, tolerance, d.tolerance),
        up_window,
        trend_window,
        lead,
        step: fraction(p, step, d.step),
        down_window,
        down_lookahead,
        min_decrease: fraction(p, min_decrease, d.min_decrease),
        prewarm,
        reserve,
        burst_share: fraction(p, burst_share, d.burst_share),
        update_time,
        smooth,
        decrease_quota,
        hold_max,
        hold_excess,
        burst_memory,
    }
}

/// Per-hour overrides of one capacity spec, as read from `[[...hours]]`.
struct HourOverride {
    hours: HourSet,
    target: Option<Located<f64>>,
    min: Option<Located<u64>>,
    max: Option<Located<u64>>,
}

/// Raw base values of a capacity spec before the hour table is built.
struct RawCapacity {
    key: String,
    span: std::ops::Range<usize>,
    target: Option<Located<f64>>,
    min: Option<Located<u64>>,
    max: Option<Located<u64>>,
    per_request: Option<f64>,
    auto: bool,
    metric: Option<MetricSelector>,
    throttled: Option<MetricSelector>,
}

fn read_capacity(
    t: &mut TableReader,
    p: &mut Problems,
    key: &str,
    has_statsd: bool,
) -> Option<RawCapacity> {
    let mut c = t.table(p, key)?;
    let target = c.float(p, "target");
    let min = c.uint(p, "min");
    let max = c.uint(p, "max");
    let given = c.float_or_auto(p, "per_request");
    let auto = given.as_ref().is_some_and(|g| g.value.is_none());
    let fallback = c.float(p, "per_request_fallback");
    if let (Some(f), false) = (&fallback, auto) {
        p.push(
            f.span.clone(),
            &f.key,
            "only meaningful with per_request = \"auto\"",
        );
    }
    let per_request = match given {
        Some(Located {
            value: Some(v),
            key,
            span,
        }) => Some(Located {
            value: v,
            key,
            span,
        }),
        _ => fallback.filter(|_| auto),
    };
    if let Some(pr) = &per_request {
        if !(pr.value > 0.0 && pr.value.is_finite()) {
            p.push(
                pr.span.clone(),
                &pr.key,
                "units per request must be greater than zero",
            );
        }
    }
    let mut selector = |p: &mut Problems, key: &str| {
        c.string(p, key)
            .and_then(|m| match MetricSelector::parse(&m.value) {
                Ok(sel) => {
                    if !has_statsd {
                        p.push(
                            m.span,
                            &m.key,
                            format!("`{key}` needs [ingest.statsd] to receive it"),
                        );
                    }
                    Some(sel)
                }
                Err(why) => {
                    p.push(m.span, &m.key, why);
                    None
                }
            })
    };
    let metric = selector(p, "metric");
    let throttled = selector(p, "throttled");
    if per_request.is_none() && !auto && !c.has("metric") {
        p.push(
            c.span(),
            c.path(),
            "neither `per_request` nor `metric` given: rapidscale cannot tell the demand in units",
        );
    }
    let raw = RawCapacity {
        key: c.path().to_string(),
        span: c.span(),
        target,
        min,
        max,
        per_request: per_request.map(|p| p.value),
        auto,
        metric,
        throttled,
    };
    c.finish(p);
    Some(raw)
}

fn read_hour_overrides(
    t: &mut TableReader,
    p: &mut Problems,
    ops: &[&str],
) -> Vec<(String, HourOverride)> {
    let mut out = Vec::new();
    let mut taken_by_op: Vec<(String, HourSet, Located<String>)> = Vec::new();
    for mut h in t.tables(p, "hours") {
        let hours = match h.string(p, "hours") {
            Some(text) => match parse_hours(&text.value) {
                Ok(set) => Some((set, text)),
                Err(why) => {
                    p.push(text.span, &text.key, why);
                    None
                }
            },
            None => {
                if !h.has("hours") {
                    p.push(
                        h.span(),
                        &h.key_path("hours"),
                        "missing: the local hour range, e.g. \"14-15\"",
                    );
                }
                None
            }
        };
        for op in ops {
            let Some(mut o) = h.table(p, op) else {
                continue;
            };
            let ov = HourOverride {
                hours: hours.as_ref().map(|(s, _)| *s).unwrap_or_default(),
                target: o.float(p, "target"),
                min: o.uint(p, "min"),
                max: o.uint(p, "max"),
            };
            o.finish(p);
            if let Some((set, text)) = &hours {
                if let Some((_, _, other)) = taken_by_op
                    .iter()
                    .find(|(o2, s2, _)| o2 == op && s2.overlaps(*set))
                {
                    p.push(
                        text.span.clone(),
                        &text.key,
                        format!(
                            "hours {:?} overlap hours {:?} ({}) for {op}",
                            text.value, other.value, other.key
                        ),
                    );
                }
                taken_by_op.push((op.to_string(), *set, text.clone()));
            }
            out.push((op.to_string(), ov));
        }
        h.finish(p);
    }
    out
}

fn check_target(p: &mut Problems, t: &Located<f64>) {
    if !(t.value > 0.0 && t.value <= 1.0) {
        p.push(
            t.span.clone(),
            &t.key,
            format!("target must be in (0, 1], got {}", t.value),
        );
    }
}

/// Builds the 24-row table for one capacity spec and checks it row by row.
fn capacity_spec(p: &mut Problems, raw: RawCapacity, overrides: &[HourOverride]) -> CapacitySpec {
    for t in raw
        .target
        .iter()
        .chain(overrides.iter().filter_map(|o| o.target.as_ref()))
    {
        check_target(p, t);
    }
    for m in raw
        .min
        .iter()
        .chain(overrides.iter().filter_map(|o| o.min.as_ref()))
    {
        if m.value == 0 {
            p.push(
                m.span.clone(),
                &m.key,
                "provisioned capacity is at least 1 unit",
            );
        }
    }
    if raw.max.is_none() {
        p.push(
            raw.span.clone(),
            &format!("{}.max", raw.key),
            "missing: the hard maximum of units rapidscale may provision",
        );
    }
    let base = CapacityLimits {
        target: raw
            .target
            .as_ref()
            .map(|t| t.value)
            .unwrap_or(CapacityLimits::DEFAULT_TARGET),
        min: raw.min.as_ref().map(|m| m.value).unwrap_or(1),
        max: raw.max.as_ref().map(|m| m.value).unwrap_or(u64::MAX),
    };
    let mut hours = [base; 24];
    let mut overridden = [false; 24];
    // Where each row's min and max came from, to point at the right key.
    let mut min_src: [Option<&Located<u64>>; 24] = [raw.min.as_ref(); 24];
    let mut max_src: [Option<&Located<u64>>; 24] = [raw.max.as_ref(); 24];
    for o in overrides {
        for h in o.hours.hours() {
            overridden[h as usize] = true;
            let row = &mut hours[h as usize];
            if let Some(t) = &o.target {
                row.target = t.value;
            }
            if let Some(m) = &o.min {
                row.min = m.value;
                min_src[h as usize] = Some(m);
            }
            if let Some(m) = &o.max {
                row.max = m.value;
                max_src[h as usize] = Some(m);
            }
        }
    }
    let mut reported = Vec::new();
    for h in 0..24 {
        let row = hours[h];
        if row.min > row.max {
            let src = min_src[h].or(max_src[h]);
            let (span, key) = src
                .map(|s| (s.span.clone(), s.key.clone()))
                .unwrap_or((raw.span.clone(), raw.key.clone()));
            if !reported.contains(&key) {
                p.push(
                    span,
                    &key,
                    format!("min {} > max {} (hour {h:02})", row.min, row.max),
                );
                reported.push(key);
            }
        }
    }
    CapacitySpec {
        per_request: raw.per_request,
        auto: raw.auto,
        metric: raw.metric,
        throttled: raw.throttled,
        hours,
        overridden,
    }
}

fn read_specs(
    t: &mut TableReader,
    p: &mut Problems,
    has_statsd: bool,
) -> (Option<CapacitySpec>, Option<CapacitySpec>) {
    let read = read_capacity(t, p, "read", has_statsd);
    let write = read_capacity(t, p, "write", has_statsd);
    let overrides = read_hour_overrides(t, p, &["read", "write"]);
    let pick = |op: &str| -> Vec<HourOverride> {
        overrides
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, ov)| HourOverride {
                hours: ov.hours,
                target: ov.target.clone(),
                min: ov.min.clone(),
                max: ov.max.clone(),
            })
            .collect()
    };
    for (op, spec) in [("read", &read), ("write", &write)] {
        if spec.is_none() {
            if let Some((_, ov)) = overrides.iter().find(|(o, _)| o == op) {
                let loc = ov
                    .target
                    .as_ref()
                    .map(|l| (l.span.clone(), l.key.clone()))
                    .or(ov.min.as_ref().map(|l| (l.span.clone(), l.key.clone())))
                    .or(ov.max.as_ref().map(|l| (l.span.clone(), l.key.clone())));
                if let Some((span, key)) = loc {
                    p.push(
                        span,
                        &key,
                        format!("per-hour {op} limits given but no base `{op}` spec"),
                    );
                }
            }
        }
    }
    let read = read.map(|r| capacity_spec(p, r, &pick("read")));
    let write = write.map(|w| capacity_spec(p, w, &pick("write")));
    (read, write)
}

fn required_name(t: &mut TableReader, p: &mut Problems, what: &str) -> Option<String> {
    match t.string(p, "name") {
        Some(n) if n.value.trim().is_empty() => {
            p.push(n.span, &n.key, format!("{what} name is empty"));
            None
        }
        Some(n) => Some(n.value),
        None => {
            if !t.has("name") {
                p.push(
                    t.span(),
                    &t.key_path("name"),
                    format!("missing: the {what} name"),
                );
            }
            None
        }
    }
}

fn read_table(t: &mut TableReader, p: &mut Problems, has_statsd: bool) -> Option<TableConfig> {
    let name = required_name(t, p, "table");
    let mode = t
        .string(p, "mode")
        .and_then(|m| enum_value(p, &m, Mode::parse, "\"dry-run\" or \"apply\""));
    let (read, write) = read_specs(t, p, has_statsd);
    let mut indexes = Vec::new();
    for mut it in t.tables(p, "indexes") {
        let index_name = required_name(&mut it, p, "index");
        let (r, w) = read_specs(&mut it, p, has_statsd);
        if r.is_none() && w.is_none() {
            p.push(
                it.span(),
                it.path(),
                "an index needs a `read` or `write` spec",
            );
        }
        if let Some(n) = &index_name {
            if indexes.iter().any(|i: &IndexConfig| &i.name == n) {
                p.push(
                    it.span(),
                    &it.key_path("name"),
                    format!("index {n:?} is configured twice"),
                );
            }
        }
        it.finish(p);
        if let Some(n) = index_name {
            indexes.push(IndexConfig {
                name: n,
                read: r,
                write: w,
            });
        }
    }
    if read.is_none() && write.is_none() && indexes.is_empty() && name.is_some() {
        p.push(
            t.span(),
            t.path(),
            "a table needs a `read` or `write` spec (or indexes)",
        );
    }
    Some(TableConfig {
        name: name?,
        mode,
        read,
        write,
        indexes,
    })
}
