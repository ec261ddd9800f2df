//! The `rapidscale` command: parse arguments, set up logging, load the
//! config, hand over to `app`, wait for a stop signal.
#![forbid(unsafe_code)]
// No function over 120 lines (.clippy.toml).
#![warn(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use rapidscale::clock::SystemClock;
use rapidscale::config::{Config, ConfigError};

/// Exit code for a bad config (and bad usage, as clap does).
const EXIT_CONFIG: u8 = 2;
/// Exit code for a runtime failure (a socket that cannot be bound, ...).
const EXIT_RUNTIME: u8 = 1;

#[derive(Parser)]
#[command(
    name = "rapidscale",
    version,
    about = "Seconds-fast scaling for DynamoDB and EC2 Auto Scaling from per-second traffic"
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RAPIDSCALE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// The config file. Without it, the config text is read from
        /// RAPIDSCALE_CONFIG_TOML (an ECS secret from SSM Parameter Store).
        #[arg(long, short, env = "RAPIDSCALE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the daemon's /healthz answers 200 within 2 s, else 1
    /// (for container health checks in images without a shell).
    Healthcheck {
        /// The daemon's /healthz (its `api.listen`).
        #[arg(long, default_value = "http://127.0.0.1:9470/healthz")]
        url: String,
    },
    /// Create the coordination table of `[coordination] table` (on-demand, TTL on expires_at) if it is missing.
    Init {
        /// The config file (its `[coordination]` and `[aws]` are used).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Tell the running daemon a surge is coming (or list or cancel
    /// announcements): capacity is raised ahead of it by each resource's lead time.
    Announce(AnnounceCli),
    /// Validate a config file: list every problem, or print the effective per-hour tables.
    CheckConfig {
        /// The config file (as every other command takes it).
        #[arg(long = "config", value_name = "FILE", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// The config file, positional (the older form).
        #[arg(value_name = "FILE", required_unless_present = "config")]
        file: Option<PathBuf>,
    },
    /// Replay recorded traffic through the simulator with rapidscale's
    /// policy and a model of AWS's native auto scaling, and write a report.
    Replay(ReplayCli),
    /// Learn per-hour minimums from recorded traffic: prints the per-hour
    /// profile, the suggested schedule (as TOML) and a replay of the current
    /// and the suggested schedule side by side. The config file is never changed.
    SuggestSchedule(SuggestCli),
    /// Run the daemon against a simulated AWS with built-in traffic: no AWS account needed.
    Demo {
        /// A config to run instead of the built-in one (config/demo.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// API and dashboard address (overrides the config's [api] listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Seconds of the bundled trace played per real second.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Multiply the trace's rates by this.
        #[arg(long, default_value_t = 10.0)]
        scale: f64,
        /// Seconds between synthetic push-notification surges (0: none).
        #[arg(long, default_value_t = 240)]
        surge_every: u64,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").args(["rps", "times", "list", "cancel"]).required(true)))]
struct AnnounceCli {
    /// The daemon's config (its `api.listen` and `api.token` are used).
    #[arg(long, short)]
    config: PathBuf,
    /// Expected requests/s across the fleet during the surge.
    #[arg(long)]
    rps: Option<f64>,
    /// Expected multiple of the usual rate of the surge's local hour.
    #[arg(long)]
    times: Option<f64>,
    /// When the surge starts: RFC 3339 (2026-12-02T20:00:00Z) or "now".
    #[arg(long, conflicts_with = "in_")]
    at: Option<String>,
    /// Or how long from now it starts (10m).
    #[arg(long = "in", id = "in_", value_name = "DURATION")]
    in_: Option<String>,
    /// How long the surge lasts (15m).
    #[arg(long = "for", value_name = "DURATION", required_unless_present_any = ["list", "cancel"])]
    for_: Option<String>,
    /// A note kept with the announcement (the campaign's name, say).
    #[arg(long)]
    note: Option<String>,
    /// List the announcements instead.
    #[arg(long)]
    list: bool,
    /// Cancel the announcement with this id instead.
    #[arg(long, value_name = "ID")]
    cancel: Option<String>,
    /// The API's URL (default: from the config's `api.listen`).
    #[arg(long)]
    url: Option<String>,
}

#[derive(clap::Args)]
struct SuggestCli {
    /// The config whose schedule is compared (never changed).
    #[arg(long, short)]
    config: PathBuf,
    /// A trace, as `replay` takes (per-second or per-minute CSV, access log; .gz too).
    #[arg(
        long,
        required_unless_present = "from_state",
        conflicts_with = "from_state"
    )]
    trace: Option<PathBuf>,
    /// The daemon's own minute history (`state_dir/minutes.csv` of the config).
    #[arg(long)]
    from_state: bool,
    /// Write the TOML fragment here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a copy of the config with the fragment in place of its schedule.
    #[arg(long)]
    merged: Option<PathBuf>,
    /// Which quantile of each hour's per-minute rates the minimums hold.
    #[arg(long, default_value = "p99", value_parser = ["p90", "p95", "p99"])]
    quantile: String,
    /// Also resize the hours the config's [[...hours]] blocks set by hand
    /// (kept as they are otherwise).
    #[arg(long)]
    replace_overrides: bool,
    #[command(flatten)]
    slice: TraceSlice,
}

/// Which part of a trace, how scaled, and how it is read (`replay` and
/// `suggest-schedule`).
#[derive(clap::Args)]
struct TraceSlice {
    /// Multiply every rate by this.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Whole days of the trace to skip.
    #[arg(long, default_value_t = 0)]
    skip_days: u32,
    /// Days of the trace to use (default: all).
    #[arg(long)]
    days: Option<u32>,
    /// Wall time of the trace's first row when its times are offsets (RFC 3339).
    #[arg(long, default_value = rapidscale::replay::trace::DEFAULT_START)]
    start: String,
    /// Access-log format: "combined", "common", "json" or an nginx log_format.
    #[arg(long, default_value = "combined")]
    access_log_format: String,
}

impl TraceSlice {
    /// Checks `--scale` and returns the parsed `--start`.
    fn check(&self) -> Result<chrono::DateTime<chrono::Utc>, String> {
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            return Err(format!("--scale must be > 0, got {}", self.scale));
        }
        chrono::DateTime::parse_from_rfc3339(&self.start)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| format!("--start {:?}: {e}", self.start))
    }
}

#[derive(clap::Args)]
struct ReplayCli {
    /// CSV `second,requests` or `minute,requests`, or an access log (.gz is read too).
    #[arg(long)]
    trace: PathBuf,
    /// The config whose tables, group and policy are replayed.
    #[arg(long, short)]
    config: PathBuf,
    /// Directory for report.json, report.md, timeline.csv and the charts.
    #[arg(long)]
    report: PathBuf,
    #[command(flatten)]
    slice: TraceSlice,
    /// Push-notification surges laid over each day of the trace.
    #[arg(long, default_value_t = 0)]
    surges: u32,
    /// A surge jumps to this many times the hour's mean.
    #[arg(long, default_value_t = 5.0)]
    surge_amp: f64,
    /// An announced surge every day at this local time (the config's
    /// time zone), e.g. 14:00; repeatable. Its hour's `min` in the config
    /// is what pre-warms for it.
    #[arg(long = "announced-surge", value_name = "HH:MM")]
    announced_surge: Vec<String>,
    /// Seed of the surge times and noise, and of the minute spreading.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the robustness table (the same replay in five more worlds:
    /// bucket 300/60/0 s x update delay 15/60 s), which takes most of the
    /// replay's time.
    #[arg(long)]
    no_robustness: bool,
    /// Multipliers of the group's target_rps_per_instance replayed for the
    /// report's frontier (failed requests against instance-hours); "" for none.
    #[arg(long, value_delimiter = ',', default_value = "1,1.25,1.5,1.75,2")]
    frontier: Vec<String>,
    #[command(flatten)]
    world: WorldCli,
}

/// The simulated world of a replay; the policy is told none of it
/// (docs/replay.md, "The simulator").
#[derive(clap::Args)]
struct WorldCli {
    /// Seconds from UpdateTable to the new capacity (the median).
    #[arg(long, default_value_t = 15.0)]
    update_delay: f64,
    /// Spread of update delays: sigma of a log-normal around the median (0: fixed).
    #[arg(long, default_value_t = 0.3)]
    update_spread: f64,
    /// An increase past a table's highest capacity ever takes this many times longer.
    #[arg(long, default_value_t = 2.0)]
    new_high_factor: f64,
    /// Seconds of unused capacity DynamoDB's burst bucket holds.
    #[arg(long, default_value_t = 300.0)]
    burst_seconds: f64,
    /// Maintenance drains of each bucket per day (random instants).
    #[arg(long, default_value_t = 1.0)]
    drains_per_day: f64,
    /// Share of each second's demand on one partition key.
    #[arg(long, default_value_t = 0.0)]
    hot_key_share: f64,
    /// Whether an index short of write capacity throttles its table's writes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    gsi_back_pressure: bool,
    /// Seconds from a launch to the instance InService (the median).
    #[arg(long, default_value_t = 120.0)]
    boot_time: f64,
    /// Spread of boot times: sigma of a log-normal around the median (0: fixed).
    #[arg(long, default_value_t = 0.3)]
    boot_spread: f64,
    /// Instances in the group's warm pool (launched in --warm-boot-time).
    #[arg(long, default_value_t = 0)]
    warm_pool: u32,
    /// Seconds from a warm pool launch to InService.
    #[arg(long, default_value_t = 20.0)]
    warm_boot_time: f64,
    /// Requests/s one InService instance can serve [default: 1.25 x the
    /// config's highest target_rps_per_instance].
    #[arg(long)]
    instance_rps: Option<f64>,
    /// Seconds a request waits in the fleet's queue before it fails.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// The native group model's metric period in seconds: 60
    /// (RequestCountPerTarget) or 10 (a high-resolution custom metric).
    #[arg(long, default_value_t = 60)]
    native_period: i64,
    /// Seconds from a period's end to its datapoint reaching the alarms.
    #[arg(long, default_value_t = 60)]
    native_delay: i64,
    /// The native model's instance warm-up in seconds.
    #[arg(long, default_value_t = 300)]
    native_warmup: i64,
}

impl WorldCli {
    /// Checks every knob; the world with the replay's seed.
    fn settings(
        &self,
        seed: u64,
        config: &rapidscale::config::Config,
    ) -> Result<rapidscale::sim::SimSettings, String> {
        let in_range = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(v)
            } else {
                Err(format!("--{name} must be in [{lo}, {hi}], got {v}"))
            }
        };
        Ok(rapidscale::sim::SimSettings {
            update_delay: std::time::Duration::from_secs_f64(in_range(
                "update-delay",
                self.update_delay,
                0.0,
                86_400.0,
            )?),
            update_spread: in_range("update-spread", self.update_spread, 0.0, 2.0)?,
            new_high_factor: in_range("new-high-factor", self.new_high_factor, 1.0, 100.0)?,
            burst_seconds: in_range("burst-seconds", self.burst_seconds, 0.0, 86_400.0)?,
            drains_per_day: in_range("drains-per-day", self.drains_per_day, 0.0, 86_400.0)?,
            hot_key_share: in_range("hot-key-share", self.hot_key_share, 0.0, 1.0)?,
            gsi_back_pressure: self.gsi_back_pressure,
            boot_time: std::time::Duration::from_secs_f64(in_range(
                "boot-time",
                self.boot_time,
                0.0,
                86_400.0,
            )?),
            boot_spread: in_range("boot-spread", self.boot_spread, 0.0, 2.0)?,
            warm_pool: self.warm_pool,
            warm_boot_time: std::time::Duration::from_secs_f64(in_range(
                "warm-boot-time",
                self.warm_boot_time,
                0.0,
                86_400.0,
            )?),
            instance_rps: match self.instance_rps {
                Some(v) => in_range("instance-rps", v, 0.001, 1e9)?,
                None => rapidscale::replay::default_instance_rps(config),
            },
            ..rapidscale::sim::SimSettings::replay(seed)
        })
    }

    /// The fleet's timeout and the native group model.
    fn fleet(&self) -> Result<rapidscale::replay::FleetModel, String> {
        if !(self.timeout.is_finite() && (0.0..=3600.0).contains(&self.timeout)) {
            return Err(format!(
                "--timeout must be in [0, 3600], got {}",
                self.timeout
            ));
        }
        if ![10, 60].contains(&self.native_period) {
            return Err(format!(
                "--native-period must be 10 or 60, got {}",
                self.native_period
            ));
        }
        for (name, v) in [
            ("native-delay", self.native_delay),
            ("native-warmup", self.native_warmup),
        ] {
            if !(0..=86_400).contains(&v) {
                return Err(format!("--{name} must be in [0, 86400], got {v}"));
            }
        }
        Ok(rapidscale::replay::FleetModel {
            timeout_s: self.timeout,
            tracking: rapidscale::replay::fleet::TrackingSettings {
                period_s: self.native_period,
                publish_delay_s: self.native_delay,
                warmup_s: self.native_warmup,
                ..rapidscale::replay::fleet::TrackingSettings::AWS
            },
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::CheckConfig { config, file } => {
            let Some(file) = config.or(file) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            check_config(&file)
        }
        Command::Replay(args) => replay(args),
        Command::SuggestSchedule(args) => suggest_schedule(args),
        Command::Init { config } => init(&config),
        Command::Announce(cli) => announce(cli),
        Command::Demo {
            config,
            listen,
            speed,
            scale,
            surge_every,
        } => demo(config, listen, speed, scale, surge_every),
        Command::Healthcheck { url } => match rapidscale::api::healthcheck(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("rapidscale healthcheck: {why}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
        Command::Run { config } => {
            let path_of_run = config.clone();
            let loaded = match config {
                Some(path) => load(&path),
                None => load_from_env(),
            };
            let config = match loaded {
                Ok(c) => c,
                Err(code) => return code,
            };
            let runtime = match runtime(true) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            runtime.block_on(run(config, path_of_run))
        }
    }
}

/// `rapidscale init`: creates the coordination table (safe to run again).
fn announce(cli: AnnounceCli) -> ExitCode {
    use rapidscale::api::client::{self, AnnounceCall};
    let config = match load(&cli.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let call = if cli.list {
        AnnounceCall::List
    } else if let Some(id) = cli.cancel {
        AnnounceCall::Cancel(id)
    } else {
        AnnounceCall::Announce(rapidscale::announce::AnnounceRequest {
            at: cli.at,
            in_: cli.in_,
            rps: cli.rps,
            times: cli.times,
            for_: cli.for_.unwrap_or_default(),
            note: cli.note,
        })
    };
    let Some(api) = config.api else {
        eprintln!("rapidscale announce: the config has no [api] section: the daemon takes no announcements");
        return ExitCode::from(EXIT_CONFIG);
    };
    let base = cli.url.unwrap_or_else(|| client::base_url(api.listen));
    let runtime = match runtime(false) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(client::announce(&base, api.token.as_deref(), call)) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("rapidscale announce: {why}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn init(config: &std::path::Path) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(coordination) = config.coordination.clone() else {
        eprintln!("rapidscale init: the config has no [coordination] table to create");
        return ExitCode::from(EXIT_CONFIG);
    };
    let runtime = match runtime(false) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        use rapidscale::cloud::Coordination;
        let cloud = rapidscale::cloud::aws::AwsCloud::connect(&config.aws).await;
        match cloud.ensure_coordination_table(&coordination.table).await {
            Ok(r) => {
                println!(
                    "{}: {}; TTL on {} {}",
                    coordination.table,
                    if r.created {
                        "created (on-demand billing, key pk/sk)"
                    } else {
                        "already exists"
                    },
                    rapidscale::cloud::coordination::TTL_ATTRIBUTE,
                    if r.ttl_turned_on {
                        "turned on"
                    } else {
                        "already on"
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rapidscale init: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

/// `rapidscale demo`: the simulated fleet with built-in traffic.
fn demo(
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    speed: f64,
    scale: f64,
    surge_every: u64,
) -> ExitCode {
    let loaded = match &config {
        Some(path) => load(path),
        None => Config::parse("config/demo.toml (built in)", rapidscale::demo::DEMO_CONFIG)
            .map_err(|e| {
                if let ConfigError::Invalid(problems) = &e {
                    for p in problems {
                        eprintln!("{p}");
                    }
                }
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }),
    };
    let mut config = match loaded {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let (Some(addr), Some(api)) = (listen, config.api.as_mut()) {
        api.listen = addr;
    }
    if !(speed > 0.0 && speed <= 3600.0 && scale > 0.0) {
        eprintln!("rapidscale demo: --speed must be in (0, 3600] and --scale > 0");
        return ExitCode::from(EXIT_CONFIG);
    }
    let opts = rapidscale::demo::DemoOptions {
        speed,
        scale,
        surge_every: std::time::Duration::from_secs(surge_every),
    };
    let runtime = match runtime(true) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            token.cancel();
        });
        match rapidscale::demo::run(config, opts, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "The demo failed.");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

fn suggest_schedule(args: SuggestCli) -> ExitCode {
    use rapidscale::replay::schedule::{run, Source};
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let bad_usage = |msg: String| {
        eprintln!("rapidscale suggest-schedule: {msg}");
        ExitCode::from(EXIT_CONFIG)
    };
    let start = match args.slice.check() {
        Ok(start) => start,
        Err(msg) => return bad_usage(msg),
    };
    let source = match &args.trace {
        Some(path) => Source::Trace {
            path: path.clone(),
            options: rapidscale::replay::trace::TraceOptions {
                start,
                seed: 1,
                log_format: args.slice.access_log_format.clone(),
            },
            scale: args.slice.scale,
            skip_days: args.slice.skip_days,
            days: args.slice.days,
        },
        None => Source::State,
    };
    let opts = rapidscale::profile::suggest::SuggestOptions {
        quantile: rapidscale::profile::suggest::Quantile::from_name(&args.quantile)
            .unwrap_or(rapidscale::profile::suggest::Quantile::P99),
        replace_overrides: args.replace_overrides,
    };
    let out = match run(&config, &source, opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rapidscale suggest-schedule: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    print!("{}", out.report);
    println!(
        "
Suggested schedule:

{}",
        out.fragment
    );
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| {
            eprintln!("rapidscale suggest-schedule: {}: {e}", path.display());
            ExitCode::from(EXIT_RUNTIME)
        })
    };
    if let Some(path) = &args.out {
        if let Err(code) = write(path, &out.fragment) {
            return code;
        }
    }
    if let Some(path) = &args.merged {
        let text = match std::fs::read_to_string(&args.config) {
            Ok(t) => t,
            Err(e) => return bad_usage(format!("{}: {e}", args.config.display())),
        };
        let merged = rapidscale::profile::suggest::merge(&text, &out.fragment);
        if let Err(code) = write(path, &merged) {
            return code;
        }
    }
    ExitCode::SUCCESS
}

/// `check-config`: every problem, or the effective per-hour tables.
fn check_config(file: &std::path::Path) -> ExitCode {
    match load(file) {
        Ok(config) => {
            print!("{}", rapidscale::config::report::effective_tables(&config));
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn replay(args: ReplayCli) -> ExitCode {
    use rapidscale::replay::{self, trace::TraceOptions, ReplayArgs};
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let bad_usage = |msg: String| {
        eprintln!("rapidscale replay: {msg}");
        ExitCode::from(EXIT_CONFIG)
    };
    let start = match args.slice.check() {
        Ok(start) => start,
        Err(msg) => return bad_usage(msg),
    };
    if !(args.surge_amp >= 1.0 && args.surge_amp.is_finite()) {
        return bad_usage(format!("--surge-amp must be >= 1, got {}", args.surge_amp));
    }
    let (settings, fleet) = match args
        .world
        .settings(args.seed, &config)
        .and_then(|s| Ok((s, args.world.fleet()?)))
    {
        Ok(s) => s,
        Err(msg) => return bad_usage(msg),
    };
    let mut announced = Vec::new();
    for t in &args.announced_surge {
        match chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M") {
            Ok(v) => announced.push(v),
            Err(_) => return bad_usage(format!("--announced-surge takes HH:MM, got {t:?}")),
        }
    }
    let mut frontier = Vec::new();
    for m in args.frontier.iter().filter(|m| !m.trim().is_empty()) {
        match m.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() && v <= 100.0 => frontier.push(v),
            _ => {
                return bad_usage(format!(
                    "--frontier takes multipliers in (0, 100], got {m:?}"
                ))
            }
        }
    }
    let replay_args = ReplayArgs {
        trace: args.trace,
        report_dir: args.report,
        scale: args.slice.scale,
        surges: args.surges,
        surge_amp: args.surge_amp,
        announced,
        seed: args.seed,
        skip_days: args.slice.skip_days,
        days: args.slice.days,
        trace_options: TraceOptions {
            start,
            seed: args.seed,
            log_format: args.slice.access_log_format,
        },
        settings,
        fleet,
        robustness: !args.no_robustness,
        frontier,
    };
    // A progress bar on a terminal only; logs and CI stay quiet.
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} simulated seconds ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = replay::replay(
        &config,
        &replay_args,
        |done| bar.set_position(done),
        |len| bar.set_length(len),
    );
    bar.finish_and_clear();
    match result {
        Ok((report, files)) => {
            print!("{}", replay::report::summary(&report));
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e @ replay::ReplayError::Write { .. }) => {
            eprintln!("rapidscale replay: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e) => bad_usage(e.to_string()),
    }
}

/// The async runtime: multi-threaded for the daemon, one thread for one-shot commands.
fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("rapidscale: cannot start the async runtime: {e}");
        ExitCode::from(EXIT_RUNTIME)
    })
}

/// The config text from RAPIDSCALE_CONFIG_TOML, when no file is given.
fn load_from_env() -> Result<Config, ExitCode> {
    const VAR: &str = "RAPIDSCALE_CONFIG_TOML";
    let Ok(text) = std::env::var(VAR) else {
        eprintln!("rapidscale run: give --config FILE (or RAPIDSCALE_CONFIG), or the config text in {VAR}");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    report_problems(
        Path::new(&format!("${VAR}")),
        Config::load_text(&format!("${VAR}"), &text, |k| std::env::var(k).ok()),
    )
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    report_problems(path, Config::load(path, |k| std::env::var(k).ok()))
}

fn report_problems(path: &Path, loaded: Result<Config, ConfigError>) -> Result<Config, ExitCode> {
    match loaded {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "{}: {} problem(s); nothing was started",
                path.display(),
                problems.len()
            );
            Err(ExitCode::from(EXIT_CONFIG))
        }
        Err(e @ ConfigError::Read { .. }) => {
            eprintln!("{e}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

async fn run(config: Config, path: Option<PathBuf>) -> ExitCode {
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        signal_token.cancel();
    });
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(reload_on_sighup(path, reload_tx));
    match rapidscale::app::run(config, Arc::new(SystemClock), shutdown, Some(reload_rx)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "rapidscale failed.");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `SIGHUP` (`systemctl reload`, `kill -HUP`): re-reads the config file;
/// a valid one goes to the daemon, an invalid one is refused with every
/// problem logged and the old config kept.
async fn reload_on_sighup(path: Option<PathBuf>, tx: tokio::sync::mpsc::UnboundedSender<Config>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Cannot listen for SIGHUP: the config is not reloadable.");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!(signal = "SIGHUP", "Reload requested.");
        let loaded = match &path {
            Some(p) => Config::load(p, |k| std::env::var(k).ok()),
            None => {
                tracing::warn!("The config came from RAPIDSCALE_CONFIG_TOML, which cannot change while the process runs: nothing to re-read.");
                continue;
            }
        };
        match loaded {
            Ok(c) => {
                if tx.send(c).is_err() {
                    return;
                }
            }
            Err(ConfigError::Invalid(problems)) => {
                for p in &problems {
                    tracing::error!(problem = %p, "Config problem.");
                }
                tracing::error!(
                    problems = problems.len(),
                    "Reload refused: the config has problems; the old one is kept."
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "Reload refused: the config cannot be read; the old one is kept.");
            }
        }
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C stops rapidscale.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "Stop requested."),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "Stop requested."),
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RAPIDSCALE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and CloudWatch get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command's flags and arguments, as (command, long flag or name, help).
    fn arguments() -> Vec<(String, String, String)> {
        let cli = super::Cli::command();
        let mut out = Vec::new();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let name = arg
                    .get_long()
                    .map(|l| format!("--{l}"))
                    .unwrap_or_else(|| arg.get_id().to_string());
                let help = arg
                    .get_long_help()
                    .or(arg.get_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                out.push((sub.get_name().to_string(), name, help));
            }
        }
        out
    }

    #[test]
    fn every_flag_and_argument_has_help_text() {
        let bare: Vec<_> = arguments()
            .into_iter()
            .filter(|(_, name, help)| name != "--help" && help.trim().is_empty())
            .collect();
        assert!(bare.is_empty(), "no help text: {bare:?}");
    }

    #[test]
    fn the_readmes_command_table_names_every_command_and_flag() {
        let root = env!("CARGO_MANIFEST_DIR");
        let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
        let mut missing = Vec::new();
        let cli = super::Cli::command();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `rapidscale {name}")));
            let Some(row) = row else {
                missing.push(format!("{name}: no row"));
                continue;
            };
            // A row may send the reader to a document for its options.
            let linked: String = row
                .split("](")
                .skip(1)
                .filter_map(|s| s.split(')').next())
                .filter(|p| p.ends_with(".md"))
                .filter_map(|p| std::fs::read_to_string(format!("{root}/{p}")).ok())
                .collect();
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if ["help", "log-format"].contains(&long) {
                    continue;
                }
                let flag = format!("--{long}");
                if !row.contains(&flag) && !linked.contains(&flag) {
                    missing.push(format!("{name} {flag}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not in the README's command table (or the doc its row links): {missing:?}"
        );
    }
}
