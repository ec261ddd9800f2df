//! The replay's report: `report.json`, `report.md`, `timeline.csv` and
//! one SVG chart per replayed capacity.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use plotters::prelude::*;
use serde::Serialize;

use super::fleet::{GroupFigures, GroupSeries};
use super::surges::{Surge, SurgeSpec};
use super::trace::TraceKind;
use super::{FleetModel, OpSeries, Outcome, Policy, ResourceFigures, Skipped};
use crate::config::Pricing;
use crate::policy::dynamodb::Op;
use crate::sim::SimSettings;

#[derive(Debug, Clone, Serialize)]
pub struct TraceInfo {
    pub path: String,
    #[serde(flatten)]
    pub kind: TraceKind,
    pub start: DateTime<Utc>,
    pub seconds: usize,
    /// Rates were multiplied by this.
    pub scale: f64,
    pub total_requests: f64,
    pub mean_rps: f64,
    pub peak_rps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SurgeInfo {
    pub at: DateTime<Utc>,
    /// Its time was known in advance (`--announced-surge`).
    pub announced: bool,
    pub hour_mean_rps: f64,
    pub extra_peak_rps: f64,
    /// Per policy: seconds from the surge's start until the first
    /// capacity increase of the first replayed capacity took effect
    /// (None: no increase within 10 minutes).
    pub capacity_raised_after_s: std::collections::BTreeMap<Policy, Option<u64>>,
    /// Per policy: units throttled in the surge's first 10 minutes, all capacities.
    pub throttled_units: std::collections::BTreeMap<Policy, f64>,
    /// Per policy: seconds of the surge's first 10 minutes in which burst
    /// capacity served demand above the provisioned capacity (the first
    /// replayed capacity, as `capacity_raised_after_s`).
    pub burst_carried_s: std::collections::BTreeMap<Policy, u64>,
    /// Per policy, the group's side of the surge (empty when no group is replayed).
    pub group: std::collections::BTreeMap<Policy, GroupStory>,
}

/// The group in one surge's first 10 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupStory {
    /// Seconds from the surge's start until desired capacity first rose
    /// (the policy saw the surge and launched instances).
    pub launched_after_s: Option<u64>,
    /// Seconds until more instances were InService than at the start.
    pub served_after_s: Option<u64>,
    pub failed_requests: f64,
    pub queued_request_seconds: f64,
}

impl GroupStory {
    fn of(g: &GroupSeries, at: usize, horizon: usize) -> GroupStory {
        let f = g.figures(at, at + horizon, 0.0);
        GroupStory {
            launched_after_s: g.first_launch(at, at + horizon).map(|s| (s - at) as u64),
            served_after_s: g.first_served(at, at + horizon).map(|s| (s - at) as u64),
            failed_requests: f.failed_requests,
            queued_request_seconds: f.queued_request_seconds,
        }
    }
}

/// The group replayed alone with its target multiplied.
#[derive(Debug, Clone, Serialize)]
pub struct FrontierPoint {
    pub target_multiplier: f64,
    /// The first hour's target after the multiplier.
    pub target_rps_per_instance: f64,
    pub figures: std::collections::BTreeMap<Policy, GroupFigures>,
}

/// The group under both policies.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: String,
    pub initial_instances: u32,
    pub rapidscale: GroupFigures,
    pub aws_native: GroupFigures,
    /// The fleet's timeout and the native model's settings.
    pub model: FleetModel,
    /// Where the group's models are described.
    pub described_in: &'static str,
    /// Failed requests against instance-hours at several targets (empty:
    /// `--frontier ""`).
    pub frontier: Vec<FrontierPoint>,
}

/// Seconds of `[at, at + horizon)` in which demand above the provisioned
/// capacity was served (by burst capacity) rather than throttled.
fn carried_seconds(units: &[f64], o: &OpSeries, at: usize, horizon: usize) -> u64 {
    let end = (at + horizon).min(o.provisioned.len()).min(units.len());
    (at..end)
        .filter(|&s| {
            let excess = units[s] - o.provisioned[s] as f64;
            excess - o.throttled[s] >= 0.5 && excess > 0.0
        })
        .count() as u64
}

/// Seconds after `at` until the provisioned capacity first rose, within `horizon`.
fn raised_after(provisioned: &[u64], at: usize, horizon: usize) -> Option<u64> {
    let base = *provisioned.get(at)?;
    (at..(at + horizon).min(provisioned.len()))
        .find(|&s| provisioned[s] > base)
        .map(|s| (s - at) as u64)
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceReport {
    pub resource: String,
    pub rapidscale: ResourceFigures,
    pub aws_native: ResourceFigures,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub throttled_units: f64,
    pub throttled_requests: f64,
    pub cost_usd: f64,
    pub actions: u64,
    pub decreases: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub trace: TraceInfo,
    pub surges: Option<SurgeSpec>,
    pub surge_list: Vec<SurgeInfo>,
    /// The simulated world's settings (every `replay` knob).
    pub simulator: SimSettings,
    pub pricing: PricingInfo,
    /// Where the native model is described.
    pub native_model: &'static str,
    pub resources: Vec<ResourceReport>,
    pub totals: std::collections::BTreeMap<Policy, Totals>,
    pub skipped: Vec<Skipped>,
    /// Wall-clock seconds the replay itself took.
    pub replay_wall_s: f64,
    /// The same replay in harsher worlds (empty with `--no-robustness`).
    pub robustness: Vec<RobustnessRow>,
    /// The Auto Scaling group (None: the config has no `[asg]`).
    pub group: Option<GroupReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PricingInfo {
    pub read_unit_hour_usd: f64,
    pub write_unit_hour_usd: f64,
    pub instance_hour_usd: f64,
}

pub struct ReportInput<'a> {
    pub path: String,
    pub kind: TraceKind,
    pub scale: f64,
    pub surges: Option<SurgeSpec>,
    pub surge_list: &'a [Surge],
    pub settings: &'a SimSettings,
    pub pricing: Pricing,
    pub skipped: Vec<Skipped>,
    pub replay_wall_s: f64,
    pub robustness: Vec<RobustnessRow>,
    pub fleet: FleetModel,
    pub frontier: Vec<FrontierPoint>,
}

/// The same replay in another world: what each policy throttled and cost.
#[derive(Debug, Clone, Serialize)]
pub struct RobustnessRow {
    /// The world's burst bucket, in seconds of provisioned capacity.
    pub burst_seconds: f64,
    /// The world's median update delay.
    pub update_delay_s: f64,
    pub totals: std::collections::BTreeMap<Policy, Totals>,
}

impl RobustnessRow {
    pub fn of(burst_seconds: f64, update_delay_s: f64, outcome: &Outcome) -> RobustnessRow {
        RobustnessRow {
            burst_seconds,
            update_delay_s,
            totals: totals(outcome),
        }
    }
}

/// Both policies' figures summed over every replayed capacity.
fn totals(outcome: &Outcome) -> std::collections::BTreeMap<Policy, Totals> {
    let mut totals: std::collections::BTreeMap<Policy, Totals> = Default::default();
    for i in 0..outcome.targets.len() {
        for p in Policy::ALL {
            let f = &outcome.figures[&p][i];
            let tot = totals.entry(p).or_default();
            for o in [&f.read, &f.write].into_iter().flatten() {
                tot.throttled_units += o.throttled_units;
                tot.throttled_requests += o.throttled_requests;
            }
            tot.cost_usd += f.cost_usd;
            tot.actions += f.actions;
            tot.decreases += f.decreases_used.values().sum::<u64>();
        }
    }
    totals
}

pub fn build(outcome: &Outcome, input: ReportInput) -> Report {
    let r = &outcome.requests;
    let total: f64 = r.iter().sum();
    let mut resources = Vec::new();
    let totals = totals(outcome);
    for (i, t) in outcome.targets.iter().enumerate() {
        let fig = |p: Policy| outcome.figures[&p][i].clone();
        resources.push(ResourceReport {
            resource: t.key(),
            rapidscale: fig(Policy::Rapidscale),
            aws_native: fig(Policy::AwsNative),
        });
    }
    Report {
        trace: TraceInfo {
            path: input.path,
            kind: input.kind,
            start: outcome.start,
            seconds: r.len(),
            scale: input.scale,
            total_requests: total,
            mean_rps: total / r.len().max(1) as f64,
            peak_rps: r.iter().copied().fold(0.0, f64::max),
        },
        surges: input.surges,
        surge_list: input
            .surge_list
            .iter()
            .map(|s| {
                let horizon = 600;
                let mut raised = std::collections::BTreeMap::new();
                let mut throttled = std::collections::BTreeMap::new();
                let mut carried = std::collections::BTreeMap::new();
                for p in Policy::ALL {
                    let series = &outcome.series[&p];
                    let first = series.first().and_then(|ops| ops.first());
                    let units = outcome.targets.first().and_then(|t| t.ops.first());
                    if let (Some(o), Some(u)) = (first, units) {
                        carried.insert(p, carried_seconds(&u.units, o, s.at, horizon));
                    }
                    raised.insert(
                        p,
                        series
                            .first()
                            .and_then(|ops| ops.first())
                            .and_then(|o| raised_after(&o.provisioned, s.at, horizon)),
                    );
                    let end = (s.at + horizon).min(outcome.requests.len());
                    throttled.insert(
                        p,
                        series
                            .iter()
                            .flatten()
                            .map(|o| o.throttled[s.at..end].iter().sum::<f64>())
                            .sum(),
                    );
                }
                let group = outcome
                    .group
                    .iter()
                    .flat_map(|g| g.series.iter())
                    .map(|(p, g)| (*p, GroupStory::of(g, s.at, horizon)))
                    .collect();
                SurgeInfo {
                    group,
                    announced: s.announced,
                    at: outcome.start + TimeDelta::seconds(s.at as i64),
                    hour_mean_rps: s.hour_mean,
                    extra_peak_rps: s.extra_peak,
                    capacity_raised_after_s: raised,
                    throttled_units: throttled,
                    burst_carried_s: carried,
                }
            })
            .collect(),
        simulator: input.settings.clone(),
        pricing: PricingInfo {
            read_unit_hour_usd: input.pricing.read_unit_hour,
            write_unit_hour_usd: input.pricing.write_unit_hour,
            instance_hour_usd: input.pricing.instance_hour,
        },
        native_model: "docs/replay.md#the-aws-native-model",
        resources,
        totals,
        skipped: input.skipped,
        replay_wall_s: input.replay_wall_s,
        robustness: input.robustness,
        group: outcome.group.as_ref().map(|g| GroupReport {
            group: g.target.name.clone(),
            initial_instances: g.target.initial,
            rapidscale: g
                .figures
                .get(&Policy::Rapidscale)
                .copied()
                .unwrap_or_default(),
            aws_native: g
                .figures
                .get(&Policy::AwsNative)
                .copied()
                .unwrap_or_default(),
            model: input.fleet,
            described_in: "docs/replay.md#the-group",
            frontier: input.frontier,
        }),
    }
}

fn chart_name(resource: &str, op: Op) -> String {
    format!("chart-{}-{}.svg", resource.replace('/', "-"), op.as_str())
}

/// Writes every file of the report into `dir` (created if missing).
pub fn write_all(dir: &Path, report: &Report, outcome: &Outcome) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(
        &json,
        serde_json::to_vec_pretty(report).map_err(io::Error::other)?,
    )?;
    written.push(json);
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(report, outcome))?;
    written.push(md);
    let csv = dir.join("timeline.csv");
    write_timeline(&csv, outcome)?;
    written.push(csv);
    for (i, t) in outcome.targets.iter().enumerate() {
        for (k, o) in t.ops.iter().enumerate() {
            let path = dir.join(chart_name(&t.key(), o.op));
            chart(&path, outcome, i, k).map_err(|e| io::Error::other(e.to_string()))?;
            written.push(path);
        }
    }
    if let (Some(g), Some(asg_target)) = (&outcome.group, report.group.as_ref()) {
        let path = dir.join(GROUP_CHART);
        group_chart(&path, outcome, g, &asg_target.group)
            .map_err(|e| io::Error::other(e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

const GROUP_CHART: &str = "chart-group.svg";

fn write_timeline(path: &Path, o: &Outcome) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    write!(w, "time,requests")?;
    if o.group.is_some() {
        for p in Policy::ALL {
            write!(
                w,
                ",group:{0}_desired,group:{0}_instances,group:{0}_serving,group:{0}_failed,group:{0}_queued",
                p.as_str()
            )?;
        }
    }
    for t in &o.targets {
        for op in &t.ops {
            let c = format!("{}:{}", t.key(), op.op.as_str());
            write!(w, ",{c}:demand")?;
            for p in Policy::ALL {
                write!(w, ",{c}:{0}_provisioned,{c}:{0}_throttled", p.as_str())?;
            }
        }
    }
    writeln!(w)?;
    let mut line = String::with_capacity(256);
    for s in 0..o.requests.len() {
        line.clear();
        let _ = write!(line, "{},{}", o.start.timestamp() + s as i64, o.requests[s]);
        if let Some(g) = &o.group {
            for p in Policy::ALL {
                if let Some(x) = g.series.get(&p).filter(|x| s < x.len()) {
                    let _ = write!(
                        line,
                        ",{},{},{},{},{}",
                        x.desired[s],
                        x.instances[s],
                        x.serving[s],
                        round3(x.failed[s]),
                        round3(x.queued[s])
                    );
                } else {
                    line.push_str(",,,,,");
                }
            }
        }
        for (i, t) in o.targets.iter().enumerate() {
            for (k, op) in t.ops.iter().enumerate() {
                let _ = write!(line, ",{}", round3(op.units[s]));
                for p in Policy::ALL {
                    let series = &o.series[&p][i][k];
                    let _ = write!(
                        line,
                        ",{},{}",
                        series.provisioned[s],
                        round3(series.throttled[s])
                    );
                }
            }
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn chart(path: &Path, o: &Outcome, i: usize, k: usize) -> Result<(), Box<dyn std::error::Error>> {
    let t = &o.targets[i];
    let op = &t.ops[k];
    // Per minute: the demand's mean and peak second, the provisioned capacity at the minute's end.
    let minutes = o.requests.len().div_ceil(60);
    let hours = |m: usize| m as f64 / 60.0;
    let per_minute = |f: &dyn Fn(std::ops::Range<usize>) -> f64| -> Vec<(f64, f64)> {
        (0..minutes)
            .map(|m| (hours(m), f(m * 60..((m + 1) * 60).min(o.requests.len()))))
            .collect()
    };
    let demand_mean = per_minute(&|r| op.units[r.clone()].iter().sum::<f64>() / r.len() as f64);
    let demand_peak = per_minute(&|r| op.units[r].iter().copied().fold(0.0, f64::max));
    let prov = |p: Policy| {
        let s = &o.series[&p][i][k];
        per_minute(&|r| s.provisioned[r.end - 1] as f64)
    };
    let title = format!(
        "{} {} capacity units: demand vs provisioned (start {})",
        t.key(),
        op.op.as_str(),
        o.start.format("%Y-%m-%d %H:%M UTC")
    );
    let lines = [
        (GREY, 1, "demand, peak second of the minute", demand_peak),
        (DARK, 1, "demand, minute mean", demand_mean),
        (
            ORANGE,
            2,
            "provisioned: AWS native model",
            prov(Policy::AwsNative),
        ),
        (BLUE, 2, "provisioned: rapidscale", prov(Policy::Rapidscale)),
    ];
    draw_lines(path, &title, "units/s", hours(minutes), 1.05, &lines)
}

const GREY: RGBColor = RGBColor(190, 190, 190);
const DARK: RGBColor = RGBColor(90, 90, 90);
const ORANGE: RGBColor = RGBColor(230, 120, 20);
const BLUE: RGBColor = RGBColor(30, 90, 200);

/// One line of a chart: colour, stroke width, legend, points (hours, y).
type Line<'a> = (RGBColor, u32, &'a str, Vec<(f64, f64)>);

/// A chart of `lines` against hours since the start, y from 0 to the
/// highest point x `headroom`, the legend upper left.
fn draw_lines(
    path: &Path,
    title: &str,
    y_desc: &str,
    x_max: f64,
    headroom: f64,
    lines: &[Line],
) -> Result<(), Box<dyn std::error::Error>> {
    let y_max = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * headroom;
    let root = SVGBackend::new(path, (1400, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    c.configure_mesh()
        .x_desc("hours since start")
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (color, width, label, points) in lines {
        let color = *color;
        c.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(*width),
        ))?
        .label(*label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Per minute: the instances the traffic needs at the target, and each
/// policy's serving instances and failed requests.
fn group_chart(
    path: &Path,
    o: &Outcome,
    g: &super::GroupOutcome,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = o.requests.len();
    let minutes = n.div_ceil(60);
    let hours = |m: usize| m as f64 / 60.0;
    let range = |m: usize| m * 60..((m + 1) * 60).min(n);
    let target = g.target_rps;
    let needed: Vec<(f64, f64)> = (0..minutes)
        .map(|m| {
            let r = range(m);
            let mean = o.requests[r.clone()]
                .iter()
                .filter(|v| v.is_finite())
                .sum::<f64>()
                / r.len() as f64;
            (hours(m), mean / target)
        })
        .collect();
    let serving = |p: Policy| -> Vec<(f64, f64)> {
        let s = &g.series[&p];
        (0..minutes)
            .map(|m| (hours(m), s.serving[range(m).end - 1] as f64))
            .collect()
    };
    let title = format!(
        "group {name}: instances needed at the target vs InService (start {})",
        o.start.format("%Y-%m-%d %H:%M UTC")
    );
    let lines = [
        (
            DARK,
            1,
            "needed: minute mean requests/s / target_rps_per_instance",
            needed,
        ),
        (
            ORANGE,
            2,
            "InService: EC2 target tracking model",
            serving(Policy::AwsNative),
        ),
        (
            BLUE,
            2,
            "InService: rapidscale",
            serving(Policy::Rapidscale),
        ),
    ];
    draw_lines(path, &title, "instances", hours(minutes), 1.1, &lines)
}

fn pct(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1} %", 100.0 * a / b)
    } else if a > 0.0 {
        "∞".to_string()
    } else {
        "—".to_string()
    }
}

/// The summary printed by `rapidscale replay`: one line per capacity and policy.
pub fn summary(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Replayed {:.1} h of traffic ({:.1} req/s mean, peak {:.0}) in {:.2} s.",
        r.trace.seconds as f64 / 3600.0,
        r.trace.mean_rps,
        r.trace.peak_rps,
        r.replay_wall_s
    );
    let _ = writeln!(
        s,
        "{:<28} {:<11} {:>16} {:>12} {:>8} {:>9}",
        "capacity", "policy", "throttled units", "cost USD", "calls", "decreases"
    );
    for res in &r.resources {
        for (p, f) in [
            ("rapidscale", &res.rapidscale),
            ("aws_native", &res.aws_native),
        ] {
            for (op, o) in [("read", &f.read), ("write", &f.write)] {
                let Some(o) = o else { continue };
                let _ = writeln!(
                    s,
                    "{:<28} {:<11} {:>16.0} {:>12.2} {:>8} {:>9}",
                    format!("{} {op}", res.resource),
                    p,
                    o.throttled_units,
                    o.cost_usd,
                    f.actions,
                    f.decreases_used.values().sum::<u64>()
                );
            }
        }
    }
    if let Some(g) = &r.group {
        let _ = writeln!(
            s,
            "{:<28} {:<11} {:>16} {:>12} {:>8} {:>9}",
            "group", "policy", "failed requests", "cost USD", "changes", "inst-h"
        );
        for (p, f) in [("rapidscale", &g.rapidscale), ("aws_native", &g.aws_native)] {
            let _ = writeln!(
                s,
                "{:<28} {:<11} {:>16.0} {:>12.2} {:>8} {:>9.1}",
                g.group, p, f.failed_requests, f.cost_usd, f.scale_events, f.instance_hours
            );
        }
    }
    let replayed: Vec<String> = r
        .resources
        .iter()
        .map(|x| x.resource.clone())
        .chain(r.group.iter().map(|g| format!("group {}", g.group)))
        .collect();
    let _ = writeln!(s, "Replayed: {}.", replayed.join(", "));
    if r.group.is_none() {
        let _ = writeln!(s, "Not replayed: the group (the config has no [asg]).");
    }
    for k in &r.skipped {
        let _ = writeln!(
            s,
            "Not replayed: {} {} ({}).",
            k.resource,
            k.op.as_str(),
            k.reason
        );
    }
    s
}

fn markdown(r: &Report, o: &Outcome) -> String {
    let mut s = String::new();
    markdown_head(&mut s, r);
    markdown_surges(&mut s, r);
    markdown_summary(&mut s, r);
    markdown_group(&mut s, r);
    markdown_robustness(&mut s, r);
    markdown_resources(&mut s, r, o);
    if !r.skipped.is_empty() {
        let _ = writeln!(s, "\n## Not replayed\n");
        for k in &r.skipped {
            let _ = writeln!(s, "- {} {}: {}", k.resource, k.op.as_str(), k.reason);
        }
    }
    let _ = writeln!(s, "\n`timeline.csv` has every second: demand, per policy provisioned and throttled units, and the group's desired, running, serving instances, failed and queued requests.");
    s
}

/// The trace, the surges laid over it and the simulator.
fn markdown_head(s: &mut String, r: &Report) {
    let _ = writeln!(s, "# Replay report\n");
    let _ = writeln!(
        s,
        "Trace `{}`: {} seconds from {} ({:.1} h), rates x{}, mean {:.1} req/s, peak {:.0} req/s, {:.0} requests in all.",
        r.trace.path,
        r.trace.seconds,
        r.trace.start.to_rfc3339(),
        r.trace.seconds as f64 / 3600.0,
        r.trace.scale,
        r.trace.mean_rps,
        r.trace.peak_rps,
        r.trace.total_requests
    );
    if let TraceKind::PerMinute { seed } = r.trace.kind {
        let _ = writeln!(
            s,
            "\nMinute counts were spread over their seconds as Poisson arrivals with seed {seed}."
        );
    }
    if let Some(sp) = &r.surges {
        let _ = writeln!(
            s,
            "\n{} push-notification surges per day were added (seed {}): each jumps to {}x the hour's mean within 5 s and decays with a 300 s time constant. {} in all.",
            sp.per_day,
            sp.seed,
            sp.amplitude,
            r.surge_list.len()
        );
    }
    let w = &r.simulator;
    let spread = if w.update_spread > 0.0 {
        format!(" (log-normal, sigma {})", w.update_spread)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "\nSimulator (the policy is not told any of it): updates take effect after {} s{spread}, {}x that past a table's highest capacity ever (the table is UPDATING meanwhile); burst capacity holds up to {} s of unused capacity, drained by maintenance {} times a day on average; {:.0} % of demand on one hot key (a partition serves at most 3,000 RCU / 1,000 WCU); an index short of write capacity {} its table's writes; DynamoDB's decrease rule (4 any time, then one an hour, {} a day). The AWS native model is described in `{}`.\n",
        w.update_delay.as_secs_f64(),
        w.new_high_factor,
        w.burst_seconds,
        w.drains_per_day,
        100.0 * w.hot_key_share,
        if w.gsi_back_pressure { "throttles" } else { "does not throttle" },
        w.decrease_rule.quota,
        r.native_model
    );
}

/// One row per surge: when each policy raised capacity, what was throttled.
fn markdown_surges(s: &mut String, r: &Report) {
    if !r.surge_list.is_empty() {
        let _ = writeln!(s, "## Surges\n");
        let _ = writeln!(s, "Per surge, for the first replayed capacity: when capacity was first raised, and for how many of the first 600 s burst capacity served demand above the provisioned capacity (the bucket carried it); throttled units over all capacities.\n");
        let _ = writeln!(s, "| start | hour mean req/s | capacity raised after (rapidscale / native) | burst carried, s (rapidscale / native) | throttled units in 10 min (rapidscale / native) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        let after = |v: Option<&Option<u64>>| match v {
            Some(Some(s)) => format!("{s} s"),
            _ => "not within 10 min".to_string(),
        };
        let carried = |v: Option<&u64>| v.map_or("-".to_string(), |s| s.to_string());
        for x in &r.surge_list {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} / {} | {} / {} | {:.0} / {:.0} |",
                x.at.format("%Y-%m-%d %H:%M:%S"),
                x.hour_mean_rps,
                after(x.capacity_raised_after_s.get(&Policy::Rapidscale)),
                after(x.capacity_raised_after_s.get(&Policy::AwsNative)),
                carried(x.burst_carried_s.get(&Policy::Rapidscale)),
                carried(x.burst_carried_s.get(&Policy::AwsNative)),
                x.throttled_units
                    .get(&Policy::Rapidscale)
                    .copied()
                    .unwrap_or(0.0),
                x.throttled_units
                    .get(&Policy::AwsNative)
                    .copied()
                    .unwrap_or(0.0),
            );
        }
        let _ = writeln!(s);
    }
}

/// The group under both policies, and its surges.
fn markdown_group(s: &mut String, r: &Report) {
    let Some(g) = &r.group else {
        let _ = writeln!(s, "\nThe config has no `[asg]`: no group was replayed.\n");
        return;
    };
    let w = &r.simulator;
    let t = &g.model.tracking;
    let _ = writeln!(s, "\n## Group `{}`\n", g.group);
    let _ = writeln!(
        s,
        "Both policies start with {} instances. An instance boots in {} s (median; log-normal, sigma {}){}, then serves up to {:.0} requests/s; requests beyond what the serving instances can do wait in one queue, and a request that would wait more than {} s fails. The native model is EC2 target tracking on the request count per target at the same target: {}-s datapoints visible {} s after their period, {} above the target to scale out, {} below {:.0} % of it to scale in (not while an instance is within its {} s warm-up); see `{}`. Instances cost ${}/h.\n",
        g.initial_instances,
        w.boot_time.as_secs_f64(),
        w.boot_spread,
        if w.warm_pool > 0 {
            format!(
                ", {} s from a warm pool of {}",
                w.warm_boot_time.as_secs_f64(),
                w.warm_pool
            )
        } else {
            String::new()
        },
        w.instance_rps,
        g.model.timeout_s,
        t.period_s,
        t.publish_delay_s,
        t.out_datapoints,
        t.in_datapoints,
        100.0 * t.in_ratio,
        t.warmup_s,
        g.described_in,
        r.pricing.instance_hour_usd,
    );
    let _ = writeln!(
        s,
        "| | rapidscale | EC2 target tracking model | rapidscale / native |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let (a, b) = (&g.rapidscale, &g.aws_native);
    let rows: [(&str, f64, f64, usize); 6] = [
        ("failed requests", a.failed_requests, b.failed_requests, 0),
        (
            "seconds with failures",
            a.failed_seconds as f64,
            b.failed_seconds as f64,
            0,
        ),
        (
            "queued request-seconds",
            a.queued_request_seconds,
            b.queued_request_seconds,
            0,
        ),
        ("instance-hours", a.instance_hours, b.instance_hours, 1),
        ("cost (USD)", a.cost_usd, b.cost_usd, 2),
        (
            "changes of desired capacity",
            a.scale_events as f64,
            b.scale_events as f64,
            0,
        ),
    ];
    for (name, x, y, digits) in rows {
        let _ = writeln!(
            s,
            "| {name} | {x:.digits$} | {y:.digits$} | {} |",
            pct(x, y)
        );
    }
    let _ = writeln!(
        s,
        "| peak instances | {} | {} | |",
        a.peak_instances, b.peak_instances
    );
    if r.surge_list.iter().any(|x| !x.group.is_empty()) {
        let _ = writeln!(s, "\nPer surge, the whole story (first 10 minutes): when the table's capacity rose (first replayed capacity), when instances were launched and when the first new one served, failed requests.\n");
        let _ = writeln!(s, "| start | table raised after (rapidscale / native) | instances launched after (rapidscale / native) | first new instance served after (rapidscale / native) | failed requests (rapidscale / native) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        let secs = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} s"));
        for x in &r.surge_list {
            let get = |p: Policy| x.group.get(&p).copied();
            let (Some(rs), Some(nat)) = (get(Policy::Rapidscale), get(Policy::AwsNative)) else {
                continue;
            };
            let raised = |p: Policy| secs(x.capacity_raised_after_s.get(&p).copied().flatten());
            let _ = writeln!(
                s,
                "| {}{} | {} / {} | {} / {} | {} / {} | {:.0} / {:.0} |",
                x.at.format("%Y-%m-%d %H:%M:%S"),
                if x.announced { " (announced)" } else { "" },
                raised(Policy::Rapidscale),
                raised(Policy::AwsNative),
                secs(rs.launched_after_s),
                secs(nat.launched_after_s),
                secs(rs.served_after_s),
                secs(nat.served_after_s),
                rs.failed_requests,
                nat.failed_requests,
            );
        }
    }
    let announced: Vec<&SurgeInfo> = r.surge_list.iter().filter(|x| x.announced).collect();
    if !announced.is_empty() {
        let failed = |p: Policy| -> f64 {
            announced
                .iter()
                .filter_map(|x| x.group.get(&p))
                .map(|g| g.failed_requests)
                .sum()
        };
        let (a, b) = (failed(Policy::Rapidscale), failed(Policy::AwsNative));
        let _ = writeln!(
            s,
            "\nAnnounced surges ({}, at a time known in advance; the config's hours pre-warm for them): failed requests in their first 10 minutes, rapidscale {a:.0} / native {b:.0} ({}).",
            announced.len(),
            pct(a, b)
        );
    }
    markdown_frontier(s, g);
    let _ = writeln!(s, "\n![group]({GROUP_CHART})");
}

/// Failed requests against instance-hours, both policies, at each target.
fn markdown_frontier(s: &mut String, g: &GroupReport) {
    if g.frontier.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n### Frontier\n");
    let _ = writeln!(s, "The group replayed alone (same traffic, same instances) with `target_rps_per_instance` multiplied: a policy is better where it fails fewer requests for the same instance-hours.\n");
    let _ = writeln!(s, "| target x | target req/s | rapidscale instance-hours | rapidscale failed | native instance-hours | native failed |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
    for p in &g.frontier {
        let f = |x: Policy| p.figures.get(&x).copied().unwrap_or_default();
        let (a, b) = (f(Policy::Rapidscale), f(Policy::AwsNative));
        let _ = writeln!(
            s,
            "| {:.2} | {:.0} | {:.1} | {:.0} | {:.1} | {:.0} |",
            p.target_multiplier,
            p.target_rps_per_instance,
            a.instance_hours,
            a.failed_requests,
            b.instance_hours,
            b.failed_requests
        );
    }
}

/// The same traffic in harsher worlds, the policy told of none of them.
fn markdown_robustness(s: &mut String, r: &Report) {
    if r.robustness.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Robustness\n");
    let _ = writeln!(
        s,
        "The same traffic and config replayed in worlds whose burst bucket holds 300, 60 or 0 s of provisioned capacity and whose updates take a median 15 or 60 s (every other knob as above). rapidscale is told neither. Cost is relative to the full-bucket world with the same delay.\n"
    );
    let _ = writeln!(s, "| bucket | update delay | throttled units (rapidscale / native) | rapidscale / native | cost (rapidscale / native) | rapidscale / native | rapidscale cost vs 300-s bucket |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|");
    let get = |row: &RobustnessRow, p: Policy| row.totals.get(&p).cloned().unwrap_or_default();
    for row in &r.robustness {
        let (rs, nat) = (get(row, Policy::Rapidscale), get(row, Policy::AwsNative));
        let full = r
            .robustness
            .iter()
            .find(|x| x.burst_seconds == 300.0 && x.update_delay_s == row.update_delay_s)
            .map(|x| get(x, Policy::Rapidscale).cost_usd);
        let _ = writeln!(
            s,
            "| {:.0} s | {:.0} s | {:.0} / {:.0} | {} | ${:.2} / ${:.2} | {} | {} |",
            row.burst_seconds,
            row.update_delay_s,
            rs.throttled_units,
            nat.throttled_units,
            ratio(rs.throttled_units, nat.throttled_units),
            rs.cost_usd,
            nat.cost_usd,
            ratio(rs.cost_usd, nat.cost_usd),
            full.map_or("-".to_string(), |f| ratio(rs.cost_usd, f)),
        );
    }
    let _ = writeln!(s);
}

/// `a / b` as a percentage ("-" when `b` is zero).
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1} %", 100.0 * a / b)
    } else {
        "-".to_string()
    }
}

/// Both policies over every capacity replayed.
fn markdown_summary(s: &mut String, r: &Report) {
    let _ = writeln!(s, "## Summary\n");
    let _ = writeln!(
        s,
        "| | rapidscale | AWS native model | rapidscale / native |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let rs = r
        .totals
        .get(&Policy::Rapidscale)
        .cloned()
        .unwrap_or_default();
    let nat = r
        .totals
        .get(&Policy::AwsNative)
        .cloned()
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "| throttled units | {:.0} | {:.0} | {} |",
        rs.throttled_units,
        nat.throttled_units,
        pct(rs.throttled_units, nat.throttled_units)
    );
    let _ = writeln!(
        s,
        "| throttled requests | {:.0} | {:.0} | {} |",
        rs.throttled_requests,
        nat.throttled_requests,
        pct(rs.throttled_requests, nat.throttled_requests)
    );
    let _ = writeln!(
        s,
        "| provisioned cost (USD) | {:.2} | {:.2} | {} |",
        rs.cost_usd,
        nat.cost_usd,
        pct(rs.cost_usd, nat.cost_usd)
    );
    let _ = writeln!(
        s,
        "| UpdateTable calls | {} | {} | |",
        rs.actions, nat.actions
    );
    let _ = writeln!(s, "| decreases | {} | {} | |", rs.decreases, nat.decreases);
}

/// One section per table or index, with its charts.
fn markdown_resources(s: &mut String, r: &Report, o: &Outcome) {
    for (i, res) in r.resources.iter().enumerate() {
        let _ = writeln!(s, "\n## {}\n", res.resource);
        let _ = writeln!(s, "| | rapidscale | AWS native model |");
        let _ = writeln!(s, "|---|---:|---:|");
        for (op, a, b) in [
            ("read", &res.rapidscale.read, &res.aws_native.read),
            ("write", &res.rapidscale.write, &res.aws_native.write),
        ] {
            let (Some(a), Some(b)) = (a, b) else { continue };
            let rows: [(&str, String, String); 6] = [
                (
                    "throttled units",
                    format!("{:.0}", a.throttled_units),
                    format!("{:.0}", b.throttled_units),
                ),
                (
                    "throttled requests",
                    format!("{:.0}", a.throttled_requests),
                    format!("{:.0}", b.throttled_requests),
                ),
                (
                    "throttled seconds (longest run)",
                    format!(
                        "{} ({})",
                        a.throttled_seconds, a.max_throttled_seconds_in_a_row
                    ),
                    format!(
                        "{} ({})",
                        b.throttled_seconds, b.max_throttled_seconds_in_a_row
                    ),
                ),
                (
                    "provisioned unit-hours",
                    format!("{:.0}", a.provisioned_unit_hours),
                    format!("{:.0}", b.provisioned_unit_hours),
                ),
                (
                    "cost (USD)",
                    format!("{:.2}", a.cost_usd),
                    format!("{:.2}", b.cost_usd),
                ),
                (
                    "peak provisioned",
                    a.peak_provisioned.to_string(),
                    b.peak_provisioned.to_string(),
                ),
            ];
            for (name, x, y) in rows {
                let _ = writeln!(s, "| {op}: {name} | {x} | {y} |");
            }
        }
        let _ = writeln!(
            s,
            "| UpdateTable calls | {} | {} |",
            res.rapidscale.actions, res.aws_native.actions
        );
        let days = |f: &ResourceFigures| {
            f.decreases_used
                .iter()
                .map(|(d, n)| format!("{d}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "| decreases per UTC day | {} | {} |",
            days(&res.rapidscale),
            days(&res.aws_native)
        );
        for o in &o.targets[i].ops {
            let _ = writeln!(
                s,
                "\n![{} {}]({})",
                res.resource,
                o.op.as_str(),
                chart_name(&res.resource, o.op)
            );
        }
    }
}
