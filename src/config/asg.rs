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

/// How much one rate rule lets the group change within its period.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateAmount {
    /// This many instances.
    Instances(u32),
    /// This percentage of the group as it was when the period began.
    Percent(f64),
}

/// One `[[asg.scale_up]]` / `[[asg.scale_down]]` rule: at most `amount`
/// per `period` (the Kubernetes HPA's `behavior` policies).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RateRule {
    pub amount: RateAmount,
    pub period: Duration,
}

/// Which of several rules wins (the HPA's `selectPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The rule that allows the largest change.
    Max,
    /// The rule that allows the smallest change.
    Min,
    /// No change in this direction at all.
    Disabled,
}

impl Select {
    fn parse(s: &str) -> Option<Select> {
        match s {
            "max" => Some(Select::Max),
            "min" => Some(Select::Min),
            "disabled" => Some(Select::Disabled),
            _ => None,
        }
    }
}

/// The rate rules of one direction; none: no limit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RateRules {
    pub rules: Vec<RateRule>,
    pub select: Select,
}

impl RateRules {
    pub const UNLIMITED: RateRules = RateRules {
        rules: Vec::new(),
        select: Select::Max,
    };
}

/// Timing of the group policy (`[asg]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AsgPolicy {
    /// Extra capacity over what the traffic needs.
    pub headroom: f64,
    /// No change while the need is within this fraction of the group
    /// (the HPA's tolerance).
    pub tolerance: f64,
    /// How long the need must exceed serving + warming before scaling out
    /// (`stabilization_up`; `up_window` is its older name).
    pub up_window: Duration,
    /// A pending instance counts as capacity on its way for this long.
    pub warmup: Duration,
    /// The same for an instance out of the group's warm pool (until the
    /// pool's own boots are learnt).
    pub warm_pool_warmup: Duration,
    /// A new InService instance takes this long to get its share of the
    /// traffic; until then it is capacity on its way, not a serving share.
    pub settle: Duration,
    /// Scale in to the highest need over this window (`stabilization_down`;
    /// `stabilization` is its older name).
    pub stabilization: Duration,
    /// How fast the group may grow: none by default (a surge is answered
    /// at once).
    pub scale_up: RateRules,
    /// How fast it may shrink: 10 % per 15 s (at least one instance).
    pub scale_down: RateRules,
    /// Raise to a higher scheduled min this long before its hour.
    pub prewarm: Duration,
}

impl AsgPolicy {
    pub const DEFAULT_SCALE_DOWN: RateRule = RateRule {
        amount: RateAmount::Percent(10.0),
        period: Duration::from_secs(15),
    };

    pub fn default_policy() -> AsgPolicy {
        AsgPolicy {
            headroom: 0.1,
            tolerance: 0.1,
            up_window: Duration::from_secs(5),
            warmup: Duration::from_secs(180),
            warm_pool_warmup: Duration::from_secs(60),
            settle: Duration::from_secs(30),
            stabilization: Duration::from_secs(300),
            scale_up: RateRules::UNLIMITED,
            scale_down: RateRules {
                rules: vec![Self::DEFAULT_SCALE_DOWN],
                select: Select::Max,
            },
            prewarm: Duration::from_secs(180),
        }
    }
}

impl Default for AsgPolicy {
    fn default() -> Self {
        Self::default_policy()
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
    read_fleet(t, p, "target_rps_per_instance", true)
}

/// A fleet's section: `[asg]` (`group`: with `name` and
/// `metadata_endpoint`), or one `[[ecs.services]]` (its per-replica target
/// named `target_key`).
pub(super) fn read_fleet(
    t: &mut TableReader,
    p: &mut Problems,
    target_key: &str,
    group: bool,
) -> AsgConfig {
    let name = if group {
        t.string(p, "name").map(|n| n.value)
    } else {
        None
    };
    let mode = t
        .string(p, "mode")
        .and_then(|m| enum_value(p, &m, Mode::parse, "\"dry-run\" or \"apply\""));
    let poll_interval = t
        .duration(p, "poll_interval")
        .map(|d| d.value)
        .unwrap_or(AsgConfig::DEFAULT_POLL_INTERVAL);
    let target = t.float(p, target_key);
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
        None if !t.has(target_key) => p.push(
            t.span(),
            &t.key_path(target_key),
            format!(
                "missing: how many requests/s one {} serves at the target load",
                if group { "instance" } else { "task" }
            ),
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
    let (hours, overridden) = read_hours(t, p, base, min.as_ref(), target_key);
    let policy = read_policy(t, p);
    let metadata_endpoint = group
        .then(|| t.string(p, "metadata_endpoint"))
        .flatten()
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
    target_key: &str,
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
        let htarget = h.float(p, target_key);
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

/// A duration under its name or its older one (not both).
fn renamed(
    t: &mut TableReader,
    p: &mut Problems,
    key: &str,
    old: &str,
    default: Duration,
) -> Duration {
    let new = t.duration(p, key);
    let was = t.duration(p, old);
    match (new, was) {
        (Some(n), Some(o)) => {
            p.push(
                o.span,
                &o.key,
                format!("set twice: `{old}` is the older name of `{key}`; keep `{key}`"),
            );
            n.value
        }
        (Some(v), None) | (None, Some(v)) => v.value,
        (None, None) => default,
    }
}

/// `[[asg.<key>]]` rules and `<key>_select`.
fn read_rates(t: &mut TableReader, p: &mut Problems, key: &str, default: RateRules) -> RateRules {
    let select_key = format!("{key}_select");
    let select = t
        .string(p, &select_key)
        .and_then(|s| enum_value(p, &s, Select::parse, "\"max\", \"min\" or \"disabled\""));
    if !t.has(key) {
        return RateRules {
            select: select.unwrap_or(default.select),
            ..default
        };
    }
    let mut rules = Vec::new();
    for mut r in t.tables(p, key) {
        let instances = r.uint(p, "instances");
        let percent = r.float(p, "percent");
        let period = r.duration(p, "per");
        let amount = match (instances, percent) {
            (Some(i), None) if i.value >= 1 => Some(RateAmount::Instances(
                u32::try_from(i.value).unwrap_or(u32::MAX),
            )),
            (None, Some(v)) if v.value > 0.0 && v.value.is_finite() => {
                Some(RateAmount::Percent(v.value))
            }
            (Some(i), None) => {
                p.push(i.span, &i.key, "must be at least 1");
                None
            }
            (None, Some(v)) => {
                p.push(
                    v.span,
                    &v.key,
                    format!("must be a percentage > 0, got {}", v.value),
                );
                None
            }
            (Some(_), Some(v)) => {
                p.push(v.span, &v.key, "give `instances` or `percent`, not both");
                None
            }
            (None, None) => {
                p.push(
                    r.span(),
                    &r.key_path("instances"),
                    "missing: `instances = N` or `percent = P`",
                );
                None
            }
        };
        let period = match period {
            Some(d) if d.value.is_zero() => {
                p.push(d.span, &d.key, "must be longer than 0 s");
                None
            }
            Some(d) => Some(d.value),
            None => {
                p.push(
                    r.span(),
                    &r.key_path("per"),
                    "missing: the period, e.g. \"15s\"",
                );
                None
            }
        };
        if let (Some(amount), Some(period)) = (amount, period) {
            rules.push(RateRule { amount, period });
        }
        r.finish(p);
    }
    RateRules {
        rules,
        select: select.unwrap_or(Select::Max),
    }
}

/// The group policy's timing and thresholds.
fn read_policy(t: &mut TableReader, p: &mut Problems) -> AsgPolicy {
    let d = AsgPolicy::default_policy();
    let headroom = t.float(p, "headroom");
    let tolerance = t.float(p, "tolerance");
    // The older single-step limit: a percentage per 15 s.
    let max_step_in = t.float(p, "max_step_in");
    let up_window = renamed(t, p, "stabilization_up", "up_window", d.up_window);
    let stabilization = renamed(t, p, "stabilization_down", "stabilization", d.stabilization);
    let scale_up = read_rates(t, p, "scale_up", d.scale_up.clone());
    let mut scale_down = read_rates(t, p, "scale_down", d.scale_down.clone());
    let mut dur = |p: &mut Problems, key: &str, default: Duration| {
        t.duration(p, key).map(|d| d.value).unwrap_or(default)
    };
    let warmup = dur(p, "warmup", d.warmup);
    let warm_pool_warmup = dur(p, "warm_pool_warmup", d.warm_pool_warmup);
    let settle = dur(p, "settle", d.settle);
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
    if let Some(step) = max_step_in {
        let f = fraction(Some(step), 0.1, 0.0, 1.0);
        scale_down = RateRules {
            rules: vec![RateRule {
                amount: RateAmount::Percent(100.0 * f),
                ..AsgPolicy::DEFAULT_SCALE_DOWN
            }],
            select: scale_down.select,
        };
    }
    AsgPolicy {
        headroom: fraction(headroom, d.headroom, 0.0, 10.0),
        tolerance: fraction(tolerance, d.tolerance, 0.0, 0.5),
        up_window,
        warmup,
        warm_pool_warmup,
        settle,
        stabilization,
        scale_up,
        scale_down,
        prewarm,
    }
}
