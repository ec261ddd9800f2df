//! `[asg]`: the Auto Scaling group, its per-hour limits and its policy.

use std::time::Duration;

use super::reader::{enum_value, Located, Problems, TableReader};
use super::schedule::{parse_hours, HourSet, HourTable};
use super::Mode;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GroupLimits {
    pub min: u32,
    pub max: u32,
    pub target_rps_per_instance: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AsgConfig {
    /// None: discovered from instance metadata at start-up.
    pub name: Option<String>,
    pub mode: Option<Mode>,
    pub poll_interval: Duration,
    pub hours: HourTable<GroupLimits>,
    /// Hours an `[[asg.hours]]` block sets (kept by `suggest-schedule`).
    pub overridden: [bool; 24],
    /// `asg.min`: no hour's minimum is suggested below it.
    pub min: u32,
    pub policy: AsgPolicy,
    /// Base URL of the EC2 instance metadata service (IMDSv2).
    pub metadata_endpoint: String,
}

/// Timing of the group policy (`[asg]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AsgPolicy {
    /// Extra capacity over what the traffic needs.
    pub headroom: f64,
    /// How long the need must exceed serving + warming before scaling out.
    pub up_window: Duration,
    /// A pending instance counts as capacity on its way for this long.
    pub warmup: Duration,
    /// A new InService instance takes this long to get its share of the
    /// traffic; until then it is capacity on its way, not a serving share.
    pub settle: Duration,
    /// Scale in to the highest need over this window.
    pub stabilization: Duration,
    /// At most this fraction of the group per scale-in (at least 1 instance).
    pub max_step_in: f64,
    /// Raise to a higher scheduled min this long before its hour.
    pub prewarm: Duration,
}

impl AsgPolicy {
    pub const DEFAULT: AsgPolicy = AsgPolicy {
        headroom: 0.1,
        up_window: Duration::from_secs(5),
        warmup: Duration::from_secs(180),
        settle: Duration::from_secs(30),
        stabilization: Duration::from_secs(300),
        max_step_in: 0.1,
        prewarm: Duration::from_secs(180),
    };
}

impl Default for AsgPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl AsgConfig {
    /// How often the group is described unless `poll_interval` says otherwise.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
    /// The EC2 instance metadata service (IMDSv2).
    pub const DEFAULT_METADATA_ENDPOINT: &'static str = "http://169.254.169.254";
}

/// Reads its section; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> Option<AsgConfig> {
    root.table(p, "asg").map(|mut t| {
        let asg = read_asg(&mut t, p);
        t.finish(p);
        asg
    })
}

fn read_asg(t: &mut TableReader, p: &mut Problems) -> AsgConfig {
    let name = t.string(p, "name").map(|n| n.value);
    let mode = t
        .string(p, "mode")
        .and_then(|m| enum_value(p, &m, Mode::parse, "\"dry-run\" or \"apply\""));
    let poll_interval = t
        .duration(p, "poll_interval")
        .map(|d| d.value)
        .unwrap_or(AsgConfig::DEFAULT_POLL_INTERVAL);
    let target = t.float(p, "target_rps_per_instance");
    let check_rps = |p: &mut Problems, v: &Located<f64>| {
        if !(v.value > 0.0 && v.value.is_finite()) {
            p.push(
                v.span.clone(),
                &v.key,
                "requests/s per instance must be greater than zero",
            );
        }
    };
    match &target {
        Some(v) => check_rps(p, v),
        None if !t.has("target_rps_per_instance") => p.push(
            t.span(),
            &t.key_path("target_rps_per_instance"),
            "missing: how many requests/s one instance serves at the target load",
        ),
        None => {}
    }
    let min = t.uint(p, "min");
    let max = t.uint(p, "max");
    if max.is_none() && !t.has("max") {
        p.push(
            t.span(),
            &t.key_path("max"),
            "missing: the hard maximum group size",
        );
    }
    let as_u32 = |p: &mut Problems, v: &Located<u64>| -> u32 {
        u32::try_from(v.value).unwrap_or_else(|_| {
            p.push(v.span.clone(), &v.key, "too large");
            u32::MAX
        })
    };
    let base = GroupLimits {
        min: min.as_ref().map(|m| as_u32(p, m)).unwrap_or(0),
        max: max.as_ref().map(|m| as_u32(p, m)).unwrap_or(u32::MAX),
        target_rps_per_instance: target.as_ref().map(|t| t.value).unwrap_or(1.0),
    };
    let (hours, overridden) = read_hours(t, p, base, min.as_ref());
    let policy = read_policy(t, p);
    let metadata_endpoint = t
        .string(p, "metadata_endpoint")
        .map(|m| m.value.trim_end_matches('/').to_string())
        .unwrap_or_else(|| AsgConfig::DEFAULT_METADATA_ENDPOINT.to_string());
    AsgConfig {
        name,
        mode,
        poll_interval,
        hours,
        overridden,
        min: base.min,
        policy,
        metadata_endpoint,
    }
}

/// The 24-row table of limits: `base`, with each `[[asg.hours]]` block
/// over its hours, checked row by row.
fn read_hours(
    t: &mut TableReader,
    p: &mut Problems,
    base: GroupLimits,
    min: Option<&Located<u64>>,
) -> (HourTable<GroupLimits>, [bool; 24]) {
    let check_rps = |p: &mut Problems, v: &Located<f64>| {
        if !(v.value > 0.0 && v.value.is_finite()) {
            p.push(
                v.span.clone(),
                &v.key,
                "requests/s per instance must be greater than zero",
            );
        }
    };
    let as_u32 = |p: &mut Problems, v: &Located<u64>| -> u32 {
        u32::try_from(v.value).unwrap_or_else(|_| {
            p.push(v.span.clone(), &v.key, "too large");
            u32::MAX
        })
    };
    let mut hours = [base; 24];
    let mut overridden = [false; 24];
    let mut srcs: Vec<(HourSet, Located<String>)> = Vec::new();
    let mut row_src: [Option<String>; 24] = Default::default();
    let mut row_span: [Option<std::ops::Range<usize>>; 24] = Default::default();
    for mut h in t.tables(p, "hours") {
        let set = match h.string(p, "hours") {
            Some(text) => match parse_hours(&text.value) {
                Ok(set) => {
                    if let Some((_, other)) = srcs.iter().find(|(s, _)| s.overlaps(set)) {
                        p.push(
                            text.span.clone(),
                            &text.key,
                            format!(
                                "hours {:?} overlap hours {:?} ({})",
                                text.value, other.value, other.key
                            ),
                        );
                    }
                    srcs.push((set, text));
                    set
                }
                Err(why) => {
                    p.push(text.span, &text.key, why);
                    HourSet::default()
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
                HourSet::default()
            }
        };
        let hmin = h.uint(p, "min");
        let hmax = h.uint(p, "max");
        let htarget = h.float(p, "target_rps_per_instance");
        if let Some(v) = &htarget {
            check_rps(p, v);
        }
        for hour in set.hours() {
            overridden[hour as usize] = true;
            let row = &mut hours[hour as usize];
            if let Some(m) = &hmin {
                row.min = as_u32(p, m);
                row_src[hour as usize] = Some(m.key.clone());
                row_span[hour as usize] = Some(m.span.clone());
            }
            if let Some(m) = &hmax {
                row.max = as_u32(p, m);
                row_src[hour as usize] = Some(m.key.clone());
                row_span[hour as usize] = Some(m.span.clone());
            }
            if let Some(v) = &htarget {
                row.target_rps_per_instance = v.value;
            }
        }
        h.finish(p);
    }
    let mut reported = Vec::new();
    for (hour, row) in hours.iter().enumerate() {
        if row.min > row.max {
            let key = row_src[hour]
                .clone()
                .or(min.map(|m| m.key.clone()))
                .unwrap_or_else(|| t.key_path("min"));
            let span = row_span[hour]
                .clone()
                .or(min.map(|m| m.span.clone()))
                .unwrap_or(t.span());
            if !reported.contains(&key) {
                p.push(
                    span,
                    &key,
                    format!("min {} > max {} (hour {hour:02})", row.min, row.max),
                );
                reported.push(key);
            }
        }
    }
    (hours, overridden)
}

/// The group policy's timing and thresholds.
fn read_policy(t: &mut TableReader, p: &mut Problems) -> AsgPolicy {
    let d = AsgPolicy::DEFAULT;
    let headroom = t.float(p, "headroom");
    let max_step_in = t.float(p, "max_step_in");
    let mut dur = |p: &mut Problems, key: &str, default: Duration| {
        t.duration(p, key).map(|d| d.value).unwrap_or(default)
    };
    let up_window = dur(p, "up_window", d.up_window);
    let warmup = dur(p, "warmup", d.warmup);
    let settle = dur(p, "settle", d.settle);
    let stabilization = dur(p, "stabilization", d.stabilization);
    // The prewarm defaults to the warm-up: new instances serve when the hour starts.
    let prewarm = dur(p, "prewarm", warmup);
    let mut fraction = |v: Option<Located<f64>>, default: f64, lo: f64, hi: f64| match v {
        Some(v) if !(lo..=hi).contains(&v.value) => {
            p.push(
                v.span,
                &v.key,
                format!("must be in [{lo}, {hi}], got {}", v.value),
            );
            default
        }
        Some(v) => v.value,
        None => default,
    };
    AsgPolicy {
        headroom: fraction(headroom, d.headroom, 0.0, 10.0),
        up_window,
        warmup,
        settle,
        stabilization,
        max_step_in: fraction(max_step_in, d.max_step_in, 0.0, 1.0),
        prewarm,
    }
}
