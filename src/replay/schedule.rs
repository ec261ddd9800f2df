//! `rapidscale suggest-schedule`: the profile of recorded traffic (a trace
//! or the daemon's saved minute history), the suggested schedule, and a
//! replay of both schedules on the same traffic. Never touches the config
//! file.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Config;
use crate::profile::suggest::{self, Quantile, SuggestOptions, Suggestion};
use crate::profile::{build, history, minutes_of_seconds, DayType, Profile};
use crate::replay::{self, trace, Policy};
use crate::series::MinutePoint;
use crate::sim::SimSettings;
use serde::Serialize;

/// Where the recorded traffic comes from.
pub enum Source {
    Trace {
        path: PathBuf,
        options: trace::TraceOptions,
        scale: f64,
        skip_days: u32,
        days: Option<u32>,
    },
    /// `state_dir/minutes.csv` of the config's state directory.
    State,
}

#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    #[error(transparent)]
    History(#[from] history::HistoryError),
    #[error("{0}")]
    NoData(String),
}

/// The replay figures of one schedule (rapidscale's policy), summed over
/// every replayed capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Totals {
    pub throttled_units: f64,
    /// The tables' provisioned capacity.
    pub cost_usd: f64,
    pub decreases_used: u64,
    /// The group (None: the config has no `[asg]`).
    pub group: Option<crate::replay::fleet::GroupFigures>,
}

/// Provisioned capacity under rapidscale against on-demand, for one
/// operation of one table or index over the replayed traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeCost {
    pub resource: String,
    pub op: crate::policy::dynamodb::Op,
    /// The replay's provisioned capacity under rapidscale (current schedule).
    pub provisioned_usd: f64,
    /// Every unit of demand billed as a request unit.
    pub on_demand_usd: f64,
    /// On-demand for a typical day, from the per-hour profile's means.
    pub on_demand_typical_day_usd: Option<f64>,
}

/// Each operation's two costs, from a replay of the current schedule.
fn mode_costs(config: &Config, o: &replay::Outcome, profile: &Profile) -> Vec<ModeCost> {
    let p = &config.pricing;
    let figures = o.figures.get(&Policy::Rapidscale);
    let mut out = Vec::new();
    for (i, t) in o.targets.iter().enumerate() {
        for op in &t.ops {
            let (price, fig) = match op.op {
                crate::policy::dynamodb::Op::Read => (
                    p.read_request_million,
                    figures.and_then(|f| f.get(i)?.read.as_ref()),
                ),
                crate::policy::dynamodb::Op::Write => (
                    p.write_request_million,
                    figures.and_then(|f| f.get(i)?.write.as_ref()),
                ),
            };
            let units: f64 = op.units.iter().filter(|u| u.is_finite()).sum();
            let typical = (0..24u8)
                .map(|h| profile.requests.at(h, DayType::All).map(|s| s.mean))
                .collect::<Option<Vec<f64>>>()
                .map(|means| means.iter().sum::<f64>() * 3600.0 * op.per_request * price / 1e6);
            out.push(ModeCost {
                resource: t.key(),
                op: op.op,
                provisioned_usd: fig.map_or(0.0, |f| f.cost_usd),
                on_demand_usd: units * price / 1e6,
                on_demand_typical_day_usd: typical,
            });
        }
    }
    out
}

pub struct Output {
    /// Per table operation: provisioned under rapidscale against on-demand.
    pub modes: Vec<ModeCost>,
    pub profile: Profile,
    pub suggestion: Suggestion,
    pub fragment: String,
    pub current: Totals,
    /// The chosen quantile's schedule.
    pub suggested: Totals,
    /// Every quantile's schedule, replayed on the same traffic.
    pub choices: Vec<(Quantile, Totals)>,
    pub report: String,
}

fn totals(outcome: &replay::Outcome) -> Totals {
    let mut t = Totals::default();
    for r in outcome
        .figures
        .get(&Policy::Rapidscale)
        .into_iter()
        .flatten()
    {
        for op in [&r.read, &r.write].into_iter().flatten() {
            t.throttled_units += op.throttled_units;
        }
        t.cost_usd += r.cost_usd;
        t.decreases_used += r.decreases_used.values().sum::<u64>();
    }
    t.group = outcome
        .group
        .as_ref()
        .and_then(|g| g.figures.get(&Policy::Rapidscale).copied());
    t
}

/// The recorded traffic: per-second requests from `start` (for the replay),
/// minute series by stream (for the profile), and a label.
struct Loaded {
    start: DateTime<Utc>,
    requests: Vec<f64>,
    streams: BTreeMap<String, Vec<(i64, MinutePoint)>>,
    label: String,
}

fn load(config: &Config, source: &Source) -> Result<Loaded, SuggestError> {
    let stream = config.ingest.requests_stream.clone().unwrap_or_default();
    match source {
        Source::Trace {
            path,
            options,
            scale,
            skip_days,
            days,
        } => {
            let t = trace::load(path, options)?;
            let from = (*skip_days as usize * 86_400).min(t.requests.len());
            let to = days
                .map_or(t.requests.len(), |d| from + d as usize * 86_400)
                .min(t.requests.len());
            let start = t.start + TimeDelta::seconds(from as i64);
            let requests: Vec<f64> = t.requests[from..to].iter().map(|r| r * scale).collect();
            let minutes = minutes_of_seconds(start, &requests);
            let label = format!("trace {}", path.display());
            Ok(Loaded {
                start,
                requests,
                streams: BTreeMap::from([(stream, minutes)]),
                label,
            })
        }
        Source::State => {
            let streams = history::load(&config.state_dir)?;
            let minutes = streams.get(&stream).cloned().unwrap_or_default();
            let Some(first) = minutes.first() else {
                return Err(SuggestError::NoData(format!(
                    "{} has no minutes of stream {stream:?} yet: run the daemon for a while first",
                    history::path(&config.state_dir).display()
                )));
            };
            // Minutes back to seconds for the replay, as a per-minute trace
            // is read (Poisson arrivals within each minute, seed 1); missing
            // minutes are replayed as quiet ones.
            let mut csv = String::from("minute,requests\n");
            for (m, p) in &minutes {
                let _ = writeln!(csv, "{},{}", m / 60, p.sum.max(0.0).round());
            }
            let t = trace::read(
                "state minutes",
                std::io::Cursor::new(csv.into_bytes()),
                false,
                &trace::TraceOptions::default(),
            )?;
            debug_assert_eq!(t.start.timestamp(), first.0);
            let label = format!("{}", history::path(&config.state_dir).display());
            Ok(Loaded {
                start: t.start,
                requests: t.requests,
                streams,
                label,
            })
        }
    }
}

/// The capacity-mode section: each operation's two costs, and AWS's
/// limits on switching between the modes.
fn capacity_modes(r: &mut String, modes: &[ModeCost], days: f64) {
    if modes.is_empty() {
        return;
    }
    let _ = writeln!(
        r,
        "\nCapacity mode over the same {days:.2} days (USD; [pricing]): provisioned under rapidscale (replayed, current schedule) against on-demand (every unit of demand a request unit):\n resource op        provisioned   on-demand  on-demand/typical day  cheaper"
    );
    for m in modes {
        let name = format!("{} {}", m.resource, m.op.as_str());
        let cheaper = if m.provisioned_usd <= m.on_demand_usd {
            format!(
                "provisioned ({:.0} % less)",
                100.0 * (1.0 - m.provisioned_usd / m.on_demand_usd.max(1e-12))
            )
        } else {
            format!(
                "on-demand ({:.0} % less)",
                100.0 * (1.0 - m.on_demand_usd / m.provisioned_usd.max(1e-12))
            )
        };
        let typical = m
            .on_demand_typical_day_usd
            .map_or("-".to_string(), |d| format!("{d:.2}"));
        let _ = writeln!(
            r,
            " {name:<17} {:>11.2} {:>11.2} {typical:>22}  {cheaper}",
            m.provisioned_usd, m.on_demand_usd
        );
    }
    let _ = writeln!(
        r,
        "Switching (AWS): provisioned to on-demand at most 4 times in a rolling 24 hours; on-demand to provisioned at any time. On-demand serves at once up to its warm throughput or twice its previous peak; rapidscale raises warm throughput ahead of announced surges and rising demand, and never changes an on-demand table's mode."
    );
}

/// "title, current -> suggested" and one line per range of equal pairs.
fn changes<T: PartialEq + Copy + std::fmt::Display>(
    r: &mut String,
    title: &str,
    current: &[T],
    new: &[T],
) {
    let _ = writeln!(r, "\n{title}, current -> suggested");
    let pairs: Vec<(T, T)> = current.iter().copied().zip(new.iter().copied()).collect();
    for (hours, (cur, new)) in suggest::ranges(&pairs) {
        let _ = writeln!(r, "  {hours:>5}: {cur} -> {new}");
    }
}

/// The current schedule's figures and each quantile's schedule's, replayed
/// on the same traffic side by side (two at a time).
fn replay_choices(
    config: &Config,
    profile: &Profile,
    opts: SuggestOptions,
    start: DateTime<Utc>,
    requests: &[f64],
) -> (Totals, Vec<(Quantile, Totals)>, Vec<ModeCost>) {
    let settings = SimSettings {
        instance_rps: replay::default_instance_rps(config),
        ..SimSettings::replay(1)
    };
    let known_peak = Some(replay::peak_minute_rps(requests));
    let configs: Vec<Config> = std::iter::once(config.clone())
        .chain(Quantile::ALL.iter().map(|&quantile| {
            let s = suggest::suggest(config, profile, SuggestOptions { quantile, ..opts });
            suggest::apply(config, &s)
        }))
        .collect();
    let figures: Vec<(Totals, Vec<ModeCost>)> = replay::two_at_a_time(&configs, 1, |c| {
        let (o, _) = replay::run_scratch(
            c,
            &settings,
            &replay::FleetModel::default(),
            start,
            requests.to_vec(),
            known_peak,
            |_| {},
        );
        (totals(&o), mode_costs(c, &o, profile))
    })
    .into_iter()
    .map(Option::unwrap_or_default)
    .collect();
    let choices = Quantile::ALL
        .into_iter()
        .zip(figures[1..].iter().map(|f| f.0))
        .collect();
    (figures[0].0, choices, figures[0].1.clone())
}

/// The capacities (and the group) with hours set by hand in the config.
fn kept_by_hand(config: &Config, suggestion: &Suggestion) -> Vec<String> {
    suggestion
        .ops
        .iter()
        .filter_map(|o| {
            let spec = config.capacities().find(|c| {
                c.table == o.table && c.index == o.index.as_deref() && c.op == o.op.as_str()
            })?;
            spec.spec.overridden.iter().any(|h| *h).then(|| {
                format!(
                    "{} {}",
                    crate::actuator::resource_key(&o.table, o.index.as_deref()),
                    o.op.as_str()
                )
            })
        })
        .chain(
            config
                .asg
                .as_ref()
                .filter(|a| a.overridden.iter().any(|h| *h))
                .map(|_| "group".to_string()),
        )
        .collect()
}

pub fn run(config: &Config, source: &Source, opts: SuggestOptions) -> Result<Output, SuggestError> {
    let Loaded {
        start,
        requests,
        streams,
        label,
    } = load(config, source)?;
    if requests.is_empty() {
        return Err(SuggestError::NoData("the traffic is empty".into()));
    }
    let profile = build(config, &streams);
    let suggestion = suggest::suggest(config, &profile, opts);
    let fragment = suggest::fragment(config, &suggestion, &label);
    let (current, choices, modes) = replay_choices(config, &profile, opts, start, &requests);
    let suggested = choices
        .iter()
        .find(|(q, _)| *q == opts.quantile)
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let days = requests.len() as f64 / 86_400.0;

    let mut r = String::new();
    let _ = writeln!(
        r,
        "Traffic: {label}, {days:.2} days from {start}; hours in {}.\n",
        profile.timezone
    );
    let _ = writeln!(
        r,
        "Requests/s per local hour (all days; p95/p99 of the minutes' rates):\n hour      mean       p95       p99      peak  days"
    );
    for h in 0..24u8 {
        if let Some(s) = profile.requests.at(h, DayType::All) {
            let _ = writeln!(
                r,
                "   {h:02} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>5}",
                s.mean, s.p95, s.p99, s.peak, s.day_count
            );
        }
    }
    for o in &suggestion.ops {
        let resource = crate::actuator::resource_key(&o.table, o.index.as_deref());
        let title = format!("{resource} {}: min per hour", o.op.as_str());
        changes(&mut r, &title, &o.current_min, &o.min);
    }
    if let Some(g) = &suggestion.group {
        let title = "group: min instances per hour";
        changes(&mut r, title, &g.current_min, &g.min);
    }
    let kept = kept_by_hand(config, &suggestion);
    if !kept.is_empty() && !opts.replace_overrides {
        let _ = writeln!(
            r,
            "\nHours set by hand in the config were kept ({}); --replace-overrides resizes them too.",
            kept.join(", ")
        );
    }
    let _ = write!(
        r,
        "\nReplay on the same traffic (simulator, rapidscale's policy), each quantile's schedule beside the current one ({} chosen, --quantile):\n                     current",
        opts.quantile.as_str()
    );
    for (q, _) in &choices {
        let _ = write!(r, " {:>11}", q.as_str());
    }
    let row = |r: &mut String, name: &str, f: &dyn Fn(&Totals) -> String| {
        let _ = write!(r, "\n {name:<15} {:>11}", f(&current));
        for (_, t) in &choices {
            let _ = write!(r, " {:>11}", f(t));
        }
    };
    row(&mut r, "throttled units", &|t| {
        format!("{:.0}", t.throttled_units)
    });
    row(&mut r, "cost (USD)", &|t| format!("{:.2}", t.cost_usd));
    row(&mut r, "decreases used", &|t| t.decreases_used.to_string());
    if current.group.is_some() {
        let g = |t: &Totals| t.group.unwrap_or_default();
        row(&mut r, "group failed req", &|t| {
            format!("{:.0}", g(t).failed_requests)
        });
        row(&mut r, "instance-hours", &|t| {
            format!("{:.1}", g(t).instance_hours)
        });
        row(&mut r, "group cost (USD)", &|t| {
            format!("{:.2}", g(t).cost_usd)
        });
    }
    r.push('\n');
    capacity_modes(&mut r, &modes, days);
    Ok(Output {
        modes,
        profile,
        suggestion,
        fragment,
        current,
        suggested,
        choices,
        report: r,
    })
}
