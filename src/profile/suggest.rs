//! Per-hour schedules learnt from the profile (pure).
//!
//! For each table/index operation and local hour, the suggested `min` is the
//! capacity that keeps the hour's observed quantile (p99 unless told: p90,
//! p95; of the per-minute rates, all days) at or below the hour's `target`
//! utilization: `ceil(q / target)` rounded up to two significant digits,
//! within the hour's `max` and at least 1. The group's `min` is the
//! instances that serve that quantile of requests/s with the group's
//! `headroom`: `ceil(q x (1 + headroom) / target_rps_per_instance)`, within
//! `asg.min` (a hard limit) and the hour's `max`. Hours without data, and
//! hours a `[[...hours]]` block of the config sets by hand, keep their
//! current values (unless `replace_overrides`). `target` and `max` are kept
//! as configured.
//!
//! The TOML fragment replaces the config's `[[dynamodb.tables]]` blocks
//! (their hours included) and its `[[asg.hours]]` blocks. Every hour is
//! written out explicitly, with adjacent hours of equal values merged into
//! one range, so the fragment does not depend on the base values around it.

use std::fmt::Write;

use serde::Serialize;

use super::{DayType, Profile};
use crate::config::{CapacitySpec, Config};
use crate::policy::dynamodb::Op;

/// The suggestion for one table/index operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSuggestion {
    pub table: String,
    pub index: Option<String>,
    pub op: Op,
    pub current_min: Vec<u64>,
    pub min: Vec<u64>,
    pub target: Vec<f64>,
    pub max: Vec<u64>,
    /// The units/s (the chosen quantile) each hour's suggestion is sized
    /// for (None: no data, or an hour kept as set by hand).
    pub sized_for: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSuggestion {
    pub current_min: Vec<u32>,
    pub min: Vec<u32>,
    pub max: Vec<u32>,
    pub target_rps_per_instance: Vec<f64>,
    pub sized_for: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub quantile: Quantile,
    pub ops: Vec<OpSuggestion>,
    pub group: Option<GroupSuggestion>,
}

/// Which quantile of each hour's per-minute rates the minimums hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantile {
    P90,
    P95,
    P99,
}

impl Quantile {
    pub const ALL: [Quantile; 3] = [Quantile::P90, Quantile::P95, Quantile::P99];

    pub fn as_str(self) -> &'static str {
        match self {
            Quantile::P90 => "p90",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
    }

    pub fn from_name(name: &str) -> Option<Quantile> {
        Quantile::ALL.into_iter().find(|q| q.as_str() == name)
    }

    fn of(self, s: &super::HourStats) -> f64 {
        match self {
            Quantile::P90 => s.p90,
            Quantile::P95 => s.p95,
            Quantile::P99 => s.p99,
        }
    }
}

/// How to suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuggestOptions {
    pub quantile: Quantile,
    /// Also resize hours the config's `[[...hours]]` blocks set by hand.
    pub replace_overrides: bool,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        SuggestOptions {
            quantile: Quantile::P99,
            replace_overrides: false,
        }
    }
}

fn op_suggestion(
    table: &str,
    index: Option<&str>,
    op: Op,
    spec: &CapacitySpec,
    profile: &Profile,
    opts: SuggestOptions,
) -> OpSuggestion {
    let resource = crate::actuator::resource_key(table, index);
    let units = profile
        .units
        .iter()
        .find(|u| u.resource == resource && u.op == op);
    let mut s = OpSuggestion {
        table: table.to_string(),
        index: index.map(str::to_string),
        op,
        current_min: Vec::new(),
        min: Vec::new(),
        target: Vec::new(),
        max: Vec::new(),
        sized_for: Vec::new(),
    };
    for (h, limits) in spec.hours.iter().enumerate() {
        let kept = spec.overridden[h] && !opts.replace_overrides;
        let q = units
            .and_then(|u| u.profile.at(h as u8, DayType::All))
            .map(|st| opts.quantile.of(st))
            .filter(|v| v.is_finite() && !kept);
        let min = match q {
            Some(q) => round_up(q / limits.target).clamp(1, limits.max),
            None => limits.min,
        };
        s.current_min.push(limits.min);
        s.min.push(min);
        s.target.push(limits.target);
        s.max.push(limits.max);
        s.sized_for.push(q);
    }
    s
}

/// The per-hour `min`s that would have held the observed quantile within
/// target.
pub fn suggest(config: &Config, profile: &Profile, opts: SuggestOptions) -> Suggestion {
    let ops = config
        .capacities()
        .filter_map(|c| {
            let op = Op::from_name(c.op)?;
            Some(op_suggestion(c.table, c.index, op, c.spec, profile, opts))
        })
        .collect();
    let group = config.asg.as_ref().map(|asg| {
        let headroom = asg.policy.headroom;
        let mut g = GroupSuggestion {
            current_min: Vec::new(),
            min: Vec::new(),
            max: Vec::new(),
            target_rps_per_instance: Vec::new(),
            sized_for: Vec::new(),
        };
        for (h, l) in asg.hours.iter().enumerate() {
            let kept = asg.overridden[h] && !opts.replace_overrides;
            let q = profile
                .requests
                .at(h as u8, DayType::All)
                .map(|st| opts.quantile.of(st))
                .filter(|v| v.is_finite() && !kept);
            let min = match q {
                Some(q) => ((q * (1.0 + headroom) / l.target_rps_per_instance).ceil() as u32)
                    .clamp(asg.min.max(1).min(l.max), l.max),
                None => l.min,
            };
            g.current_min.push(l.min);
            g.min.push(min);
            g.max.push(l.max);
            g.target_rps_per_instance.push(l.target_rps_per_instance);
            g.sized_for.push(q);
        }
        g
    });
    Suggestion {
        quantile: opts.quantile,
        ops,
        group,
    }
}

/// Capacity units rounded up to two significant digits (from 100 up), so
/// that neighbouring hours fall on the same value more often and the
/// schedule reads as one: 396 -> 400, 1234 -> 1300, 48 -> 48.
pub fn round_up(units: f64) -> u64 {
    let n = units.ceil().max(0.0) as u64;
    if n < 100 {
        return n;
    }
    let step = 10u64.pow(n.ilog10() - 1);
    n.div_ceil(step) * step
}

/// Adjacent hours with equal values, as ("A-B" or "A", value).
pub fn ranges<T: PartialEq + Clone>(values: &[T]) -> Vec<(String, T)> {
    let mut out: Vec<(usize, usize, T)> = Vec::new();
    for (h, v) in values.iter().enumerate() {
        match out.last_mut() {
            Some((_, end, last)) if last == v && *end + 1 == h => *end = h,
            _ => out.push((h, h, v.clone())),
        }
    }
    out.into_iter()
        .map(|(a, b, v)| {
            let label = if a == b {
                format!("{a}")
            } else {
                format!("{a}-{b}")
            };
            (label, v)
        })
        .collect()
}

fn demand_keys(spec: &CapacitySpec) -> String {
    let mut s = String::new();
    match (spec.auto, spec.per_request) {
        (true, Some(f)) => {
            let _ = write!(s, ", per_request = \"auto\", per_request_fallback = {f}");
        }
        (true, None) => s.push_str(", per_request = \"auto\""),
        (false, Some(p)) => {
            let _ = write!(s, ", per_request = {p}");
        }
        (false, None) => {}
    }
    if let Some(m) = &spec.metric {
        let _ = write!(s, ", metric = \"{m}\"");
    }
    s
}

fn spec_line(op: Op, spec: &CapacitySpec, s: &OpSuggestion) -> String {
    format!(
        "{} = {{ target = {}, min = {}, max = {}{} }}\n",
        op.as_str(),
        s.target[0],
        s.min[0],
        s.max[0],
        demand_keys(spec)
    )
}

fn hour_blocks(out: &mut String, header: &str, s: &OpSuggestion) {
    let rows: Vec<(u64, String, u64)> = (0..24)
        .map(|h| (s.min[h], s.target[h].to_string(), s.max[h]))
        .collect();
    for (hours, (min, target, max)) in ranges(&rows) {
        let _ = write!(
            out,
            "[[{header}]]\nhours = \"{hours}\"\n{} = {{ min = {min}, target = {target}, max = {max} }}\n",
            s.op.as_str()
        );
    }
}

/// The suggestion as TOML: `[[dynamodb.tables]]` blocks and `[[asg.hours]]`
/// blocks that replace the config's own.
pub fn fragment(config: &Config, s: &Suggestion, source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# rapidscale suggest-schedule ({source}): per-hour minimums sized for each\n\
         # hour's observed {} at the hour's target. Replace the config's\n\
         # [[dynamodb.tables]] blocks (hours and indexes included) and its\n\
         # [[asg.hours]] blocks with these.",
        s.quantile.as_str()
    );
    let find = |table: &str, index: Option<&str>, op: Op| {
        s.ops
            .iter()
            .find(|o| o.table == table && o.index.as_deref() == index && o.op == op)
    };
    for t in &config.dynamodb.tables {
        let _ = write!(out, "\n[[dynamodb.tables]]\nname = \"{}\"\n", t.name);
        if let Some(m) = t.mode {
            let _ = writeln!(out, "mode = \"{}\"", m.as_str());
        }
        let own: Vec<(Op, &CapacitySpec, &OpSuggestion)> =
            [(Op::Read, &t.read), (Op::Write, &t.write)]
                .into_iter()
                .filter_map(|(op, spec)| Some((op, spec.as_ref()?, find(&t.name, None, op)?)))
                .collect();
        for (op, spec, sug) in &own {
            out.push_str(&spec_line(*op, spec, sug));
        }
        for (_, _, sug) in &own {
            hour_blocks(&mut out, "dynamodb.tables.hours", sug);
        }
        for i in &t.indexes {
            let _ = write!(
                out,
                "\n[[dynamodb.tables.indexes]]\nname = \"{}\"\n",
                i.name
            );
            let own: Vec<(Op, &CapacitySpec, &OpSuggestion)> =
                [(Op::Read, &i.read), (Op::Write, &i.write)]
                    .into_iter()
                    .filter_map(|(op, spec)| {
                        Some((op, spec.as_ref()?, find(&t.name, Some(&i.name), op)?))
                    })
                    .collect();
            for (op, spec, sug) in &own {
                out.push_str(&spec_line(*op, spec, sug));
            }
            for (_, _, sug) in &own {
                hour_blocks(&mut out, "dynamodb.tables.indexes.hours", sug);
            }
        }
    }
    if let Some(g) = &s.group {
        out.push('\n');
        let rows: Vec<(u32, u32, String)> = (0..24)
            .map(|h| (g.min[h], g.max[h], g.target_rps_per_instance[h].to_string()))
            .collect();
        for (hours, (min, max, target)) in ranges(&rows) {
            let _ = write!(
                out,
                "[[asg.hours]]\nhours = \"{hours}\"\nmin = {min}\nmax = {max}\ntarget_rps_per_instance = {target}\n"
            );
        }
    }
    out
}

/// The config with the suggested per-hour `min`s (for the replay).
pub fn apply(config: &Config, s: &Suggestion) -> Config {
    let mut c = config.clone();
    for t in &mut c.dynamodb.tables {
        let name = t.name.clone();
        let set = |index: Option<&str>, op: Op, spec: &mut Option<CapacitySpec>| {
            let (Some(spec), Some(sug)) = (
                spec.as_mut(),
                s.ops
                    .iter()
                    .find(|o| o.table == name && o.index.as_deref() == index && o.op == op),
            ) else {
                return;
            };
            for (h, limits) in spec.hours.iter_mut().enumerate() {
                limits.min = sug.min[h];
            }
        };
        set(None, Op::Read, &mut t.read);
        set(None, Op::Write, &mut t.write);
        for i in &mut t.indexes {
            set(Some(&i.name.clone()), Op::Read, &mut i.read);
            set(Some(&i.name.clone()), Op::Write, &mut i.write);
        }
    }
    if let (Some(asg), Some(g)) = (c.asg.as_mut(), &s.group) {
        for (h, l) in asg.hours.iter_mut().enumerate() {
            l.min = g.min[h];
        }
    }
    c
}

/// The config text with its `[[dynamodb.tables...]]` and `[[asg.hours]]`
/// blocks replaced by `fragment` (appended at the end; TOML's array-of-tables
/// headers may come anywhere after their parent table).
pub fn merge(config_text: &str, fragment: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in config_text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skipping = t.starts_with("[[dynamodb.tables") || t.starts_with("[[asg.hours");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimums_round_up_to_two_significant_digits() {
        assert_eq!(round_up(47.2), 48);
        assert_eq!(round_up(99.0), 99);
        assert_eq!(round_up(100.0), 100);
        assert_eq!(round_up(395.1), 400);
        assert_eq!(round_up(1234.0), 1300);
        assert_eq!(round_up(2000.0), 2000);
    }

    #[test]
    fn equal_adjacent_hours_merge_into_ranges() {
        let v = [1, 1, 2, 2, 2, 1];
        assert_eq!(
            ranges(&v),
            vec![
                ("0-1".to_string(), 1),
                ("2-4".to_string(), 2),
                ("5".to_string(), 1)
            ]
        );
    }
}
