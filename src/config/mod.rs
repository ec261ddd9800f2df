//! Configuration: TOML text -> validated [`Config`].
//!
//! Owns every default and every validation rule. Loading never stops at the
//! first problem: all of them are collected with file:line:column, key and
//! reason (see [`reader`]). Nothing downstream re-validates; a `Config` that
//! exists is usable.

pub mod reader;
pub mod report;
pub mod schedule;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use toml::de::DeTable;

use crate::ingest::access_log::format::LogFormat;
use crate::ingest::selector::MetricSelector;
pub use reader::ConfigProblem;
use reader::{Located, Problems, TableReader};
pub use schedule::{parse_hours, HourSet, HourTable, Schedule};

/// Whether rapidscale only recommends or also acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Apply,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "dry-run" => Some(Mode::DryRun),
            "apply" => Some(Mode::Apply),
            _ => None,
        }
    }

    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Apply => "apply",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mode: Mode,
    pub state_dir: PathBuf,
    pub aws: AwsConfig,
    pub schedule: Schedule,
    pub series: SeriesConfig,
    pub ingest: IngestConfig,
    pub api: Option<ApiConfig>,
    pub dynamodb: DynamoDbConfig,
    pub asg: Option<AsgConfig>,
    pub pricing: Pricing,
    pub coordination: Option<CoordinationConfig>,
    pub cloudwatch: CloudWatchConfig,
}

/// `[cloudwatch]`: publishing rapidscale's per-second view.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudWatchConfig {
    pub publish: bool,
    pub namespace: String,
    pub publish_interval: Duration,
    /// Datums kept while CloudWatch cannot be reached (the oldest go first).
    pub buffer: usize,
    /// Extra dimensions on every datum ("Name=Value").
    pub dimensions: Vec<(String, String)>,
    /// Read DynamoDB's own metrics (consumed capacity, throttle events):
    /// calibration, lead over CloudWatch, unforeseen throttling.
    pub observe: bool,
    /// How often the consumed-capacity and throttle metrics are read.
    pub calibrate_every: Duration,
    /// The sliding window the units-per-request fit uses.
    pub calibrate_window: Duration,
    /// A fit is used only with at least this R^2 ...
    pub min_r2: f64,
    /// ... and this many minutes paired.
    pub min_samples: usize,
    /// While a surge has not shown in CloudWatch yet: how often to look.
    pub lead_poll: Duration,
}

impl Default for CloudWatchConfig {
    fn default() -> Self {
        Self {
            publish: false,
            namespace: "rapidscale".into(),
            publish_interval: Duration::from_secs(10),
            buffer: 100_000,
            dimensions: Vec::new(),
            observe: true,
            calibrate_every: Duration::from_secs(300),
            calibrate_window: Duration::from_secs(6 * 3600),
            min_r2: 0.8,
            min_samples: 30,
            lead_poll: Duration::from_secs(15),
        }
    }
}

/// `[coordination]`: the DynamoDB table sidecars of one group share
/// (docs/coordination.md).
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinationConfig {
    pub table: String,
    /// Which sidecars belong together: the group's name unless set.
    pub cluster: String,
    /// This sidecar's instance id; None: from instance metadata.
    pub instance_id: Option<String>,
    /// A heartbeat older than this is silent.
    pub stale_after: Duration,
    /// How long the leader's lease lasts, and how often it is renewed.
    pub lease: Duration,
    pub renew_every: Duration,
}

/// Prices used by `replay` reports (`[pricing]`), in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// One provisioned read capacity unit for one hour.
    pub read_unit_hour: f64,
    /// One provisioned write capacity unit for one hour.
    pub write_unit_hour: f64,
}

impl Default for Pricing {
    /// DynamoDB provisioned capacity, us-east-1 list price (Standard table class).
    fn default() -> Self {
        Self {
            read_unit_hour: 0.00013,
            write_unit_hour: 0.00065,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesConfig {
    /// How long per-second points are kept.
    pub per_second: Duration,
    /// How long per-minute points are kept.
    pub per_minute: Duration,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        Self {
            per_second: Duration::from_secs(3600),
            per_minute: Duration::from_secs(8 * 86_400),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// How long a second stays open for late samples before it is sealed.
    pub grace: Duration,
    /// A stream with no sample for this long is stale: its seconds are
    /// unknown and no decision is taken on it.
    pub stale_after: Duration,
    /// The stream whose requests/s drive `per_request` demand and the group
    /// size (default: the first configured source).
    pub requests_stream: Option<String>,
    pub statsd: Option<StatsdConfig>,
    pub access_logs: Vec<AccessLogConfig>,
    pub status_pages: Vec<StatusPageConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    pub listen: SocketAddr,
    /// The stream that request metrics feed.
    pub stream: String,
    /// Metric selectors whose samples count as requests.
    pub requests: Vec<MetricSelector>,
    /// Datagrams longer than this are dropped and counted.
    pub max_packet_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogConfig {
    pub path: PathBuf,
    pub stream: String,
    pub format: LogFormat,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    pub max_line_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Nginx,
    PhpFpm,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusPageConfig {
    pub url: String,
    pub kind: StatusKind,
    pub stream: String,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DynamoDbConfig {
    pub poll_interval: Duration,
    pub policy: DynamoPolicy,
    pub tables: Vec<TableConfig>,
}

impl Default for DynamoDbConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(10),
            policy: DynamoPolicy::default(),
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
}

impl Default for DynamoPolicy {
    fn default() -> Self {
        Self {
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
        }
    }
}

/// Effective limits for one hour of the day.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CapacityLimits {
    pub target: f64,
    pub min: u64,
    pub max: u64,
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
    pub hours: HourTable<CapacityLimits>,
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

impl Default for AsgPolicy {
    fn default() -> Self {
        Self {
            headroom: 0.1,
            up_window: Duration::from_secs(5),
            warmup: Duration::from_secs(180),
            settle: Duration::from_secs(30),
            stabilization: Duration::from_secs(300),
            max_step_in: 0.1,
            prewarm: Duration::from_secs(180),
        }
    }
}

/// Environment variables that override the file (secrets and endpoints).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("RAPIDSCALE_MODE", "mode"),
    ("RAPIDSCALE_STATE_DIR", "state_dir"),
    ("RAPIDSCALE_AWS_REGION", "aws.region"),
    ("RAPIDSCALE_AWS_ENDPOINT_URL", "aws.endpoint_url"),
    ("RAPIDSCALE_AWS_PROFILE", "aws.profile"),
    ("RAPIDSCALE_API_LISTEN", "api.listen"),
    ("RAPIDSCALE_API_TOKEN", "api.token"),
];

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{} problem(s) in config", .0.len())]
    Invalid(Vec<ConfigProblem>),
}

impl Config {
    /// Reads, parses and validates a config file, then applies `RAPIDSCALE_*`
    /// overrides from `env`.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&path.display().to_string(), &text)?;
        config.apply_env(env).map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Like `load`, for config text held in an environment variable (an
    /// ECS secret from SSM Parameter Store): `label` names it in problems.
    pub fn load_text(
        label: &str,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::parse(label, text)?;
        config.apply_env(env).map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Parses and validates config text. `file` only labels problems.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let mut p = Problems::new(file, text);
        let (doc, syntax_errors) = DeTable::parse_recoverable(text);
        for e in &syntax_errors {
            p.push(
                e.span().unwrap_or(0..0),
                "(syntax)",
                e.message().trim().to_string(),
            );
        }
        if !syntax_errors.is_empty() {
            // A broken document yields misleading follow-up errors; stop here.
            return Err(ConfigError::Invalid(p.into_sorted()));
        }
        let mut root = TableReader::root(&doc);
        let config = read_config(&mut root, &mut p);
        root.finish(&mut p);
        if p.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(p.into_sorted()))
        }
    }

    fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut bad = |var: &str, key: &str, reason: String| {
            problems.push(ConfigProblem {
                file: format!("${var}"),
                line: 0,
                column: 0,
                key: key.to_string(),
                reason,
            })
        };
        for (var, key) in ENV_OVERRIDES {
            let Some(value) = env(var).filter(|v| !v.is_empty()) else {
                continue;
            };
            match *key {
                "mode" => match Mode::parse(&value) {
                    Some(m) => self.mode = m,
                    None => bad(
                        var,
                        key,
                        format!("expected \"dry-run\" or \"apply\", got {value:?}"),
                    ),
                },
                "state_dir" => self.state_dir = PathBuf::from(value),
                "aws.region" => self.aws.region = Some(value),
                "aws.endpoint_url" => self.aws.endpoint_url = Some(value),
                "aws.profile" => self.aws.profile = Some(value),
                "api.listen" => match value.parse() {
                    Ok(addr) => self.api_mut().listen = addr,
                    Err(_) => bad(
                        var,
                        key,
                        format!("{value:?} is not an address like 127.0.0.1:9470"),
                    ),
                },
                "api.token" => self.api_mut().token = Some(value),
                other => unreachable!("ENV_OVERRIDES names an unhandled key {other}"),
            }
        }
        // Checked once the environment had its say: a token may come from there.
        if let Some(api) = &self.api {
            if !api.listen.ip().is_loopback() && api.token.as_deref().is_none_or(str::is_empty) {
                problems.push(ConfigProblem {
                    file: "(config and environment)".to_string(),
                    line: 0,
                    column: 0,
                    key: "api.listen".to_string(),
                    reason: format!(
                        "{} is not a loopback address: set api.token (or RAPIDSCALE_API_TOKEN) so that only holders of the token can change anything",
                        api.listen
                    ),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn api_mut(&mut self) -> &mut ApiConfig {
        self.api.get_or_insert_with(|| ApiConfig {
            listen: default_api_listen(),
            token: None,
        })
    }

    /// Every stream name the ingest sources write.
    pub fn request_streams(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(s) = &self.ingest.statsd {
            names.push(s.stream.clone());
        }
        names.extend(self.ingest.access_logs.iter().map(|a| a.stream.clone()));
        names.extend(self.ingest.status_pages.iter().map(|s| s.stream.clone()));
        names
    }
}

/// Name of the stream that carries consumed units reported by the app for
/// one table (or index) and operation.
pub fn units_stream(table: &str, index: Option<&str>, op: &str) -> String {
    match index {
        Some(i) => format!("units:{table}/{i}:{op}"),
        None => format!("units:{table}:{op}"),
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

    /// Every StatsD selector and the stream it feeds: request selectors feed
    /// the StatsD stream, unit metrics of tables and indexes feed their
    /// units stream.
    pub fn statsd_routes(&self) -> Vec<(MetricSelector, String)> {
        let mut routes = Vec::new();
        if let Some(s) = &self.ingest.statsd {
            routes.extend(s.requests.iter().map(|sel| (sel.clone(), s.stream.clone())));
        }
        for c in self.capacities() {
            if let Some(sel) = &c.spec.metric {
                routes.push((sel.clone(), units_stream(c.table, c.index, c.op)));
            }
        }
        routes
    }
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9470))
}

fn read_config(root: &mut TableReader, p: &mut Problems) -> Config {
    let mode = root
        .string(p, "mode")
        .and_then(|m| enum_value(p, &m, Mode::parse, "\"dry-run\" or \"apply\""))
        .unwrap_or(Mode::DryRun);
    let state_dir = root
        .string(p, "state_dir")
        .map(|s| PathBuf::from(s.value))
        .unwrap_or_else(|| PathBuf::from("./state"));

    let aws = match root.table(p, "aws") {
        Some(mut t) => {
            let aws = AwsConfig {
                region: t.string(p, "region").map(|s| s.value),
                endpoint_url: t.string(p, "endpoint_url").map(|s| s.value),
                profile: t.string(p, "profile").map(|s| s.value),
            };
            if let Some(url) = &aws.endpoint_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    p.push(
                        t.span(),
                        "aws.endpoint_url",
                        "must start with http:// or https://",
                    );
                }
            }
            t.finish(p);
            aws
        }
        None => AwsConfig::default(),
    };

    let schedule = match root.table(p, "schedule") {
        Some(mut t) => {
            let timezone = t
                .string(p, "timezone")
                .and_then(|s| match s.value.parse::<Tz>() {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        p.push(
                            s.span,
                            &s.key,
                            format!(
                                "unknown time zone {:?}; use an IANA name like \"Asia/Seoul\"",
                                s.value
                            ),
                        );
                        None
                    }
                })
                .unwrap_or(chrono_tz::UTC);
            t.finish(p);
            Schedule { timezone }
        }
        None => Schedule::default(),
    };

    let series = match root.table(p, "series") {
        Some(mut t) => {
            let d = SeriesConfig::default();
            let s = SeriesConfig {
                per_second: t
                    .duration(p, "per_second")
                    .map(|d| d.value)
                    .unwrap_or(d.per_second),
                per_minute: t
                    .duration(p, "per_minute")
                    .map(|d| d.value)
                    .unwrap_or(d.per_minute),
            };
            t.finish(p);
            s
        }
        None => SeriesConfig::default(),
    };

    let ingest = read_ingest(root, p);

    let api = root.table(p, "api").map(|mut t| {
        let listen = t
            .string(p, "listen")
            .and_then(|s| socket_addr(p, &s))
            .unwrap_or_else(default_api_listen);
        let token = t.string(p, "token").map(|s| s.value);
        t.finish(p);
        ApiConfig { listen, token }
    });

    let has_statsd = ingest.statsd.is_some();
    let dynamodb = match root.table(p, "dynamodb") {
        Some(mut t) => {
            let poll_interval = t
                .duration(p, "poll_interval")
                .map(|d| d.value)
                .unwrap_or(Duration::from_secs(10));
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
    };

    let asg = root.table(p, "asg").map(|mut t| {
        let asg = read_asg(&mut t, p);
        t.finish(p);
        asg
    });

    let coordination = root.table(p, "coordination").and_then(|mut t| {
        let table = t.string(p, "table");
        if table.is_none() && !t.has("table") {
            p.push(
                t.span(),
                &t.key_path("table"),
                "missing: the DynamoDB table the sidecars share",
            );
        }
        let cluster = t.string(p, "cluster").map(|c| c.value).unwrap_or_else(|| {
            asg.as_ref()
                .and_then(|a| a.name.clone())
                .unwrap_or_else(|| "default".to_string())
        });
        let instance_id = t.string(p, "instance_id").map(|s| s.value);
        let stale_after = t
            .duration(p, "stale_after")
            .map(|d| d.value)
            .unwrap_or(Duration::from_secs(3));
        let lease = t.duration(p, "lease");
        let renew = t.duration(p, "renew_every");
        let (lease_v, renew_v) = (
            lease.as_ref().map_or(Duration::from_secs(10), |d| d.value),
            renew.as_ref().map_or(Duration::from_secs(2), |d| d.value),
        );
        if renew_v * 2 > lease_v || lease_v < Duration::from_secs(4) {
            let (span, key) = match (&renew, &lease) {
                (Some(r), _) => (r.span.clone(), r.key.clone()),
                (None, Some(l)) => (l.span.clone(), l.key.clone()),
                (None, None) => (t.span(), t.key_path("lease")),
            };
            p.push(
                span,
                &key,
                format!(
                    "the lease ({}) must be at least 4 s and at least twice renew_every ({}), so a leader renews before the skew margin",
                    humantime::format_duration(lease_v),
                    humantime::format_duration(renew_v)
                ),
            );
        }
        t.finish(p);
        table.map(|table| CoordinationConfig {
            table: table.value,
            cluster,
            instance_id,
            stale_after,
            lease: lease_v,
            renew_every: renew_v,
        })
    });

    let cloudwatch = match root.table(p, "cloudwatch") {
        Some(mut t) => {
            let d = CloudWatchConfig::default();
            let publish = t.boolean(p, "publish").map_or(d.publish, |b| b.value);
            let namespace = t.string(p, "namespace").map_or(d.namespace, |s| s.value);
            let publish_interval = t
                .duration(p, "publish_interval")
                .map_or(d.publish_interval, |v| v.value);
            let buffer = t
                .uint(p, "buffer")
                .map_or(d.buffer, |v| v.value.max(1) as usize);
            let mut dimensions = Vec::new();
            for dim in t.string_array(p, "dimensions").unwrap_or_default() {
                match dim.value.split_once('=') {
                    Some((n, v)) if !n.is_empty() && !v.is_empty() => {
                        dimensions.push((n.to_string(), v.to_string()))
                    }
                    _ => p.push(
                        dim.span,
                        &dim.key,
                        format!("expected \"Name=Value\", got {:?}", dim.value),
                    ),
                }
            }
            let observe = t.boolean(p, "observe").map_or(d.observe, |b| b.value);
            let calibrate_every = t
                .duration(p, "calibrate_every")
                .map_or(d.calibrate_every, |v| v.value);
            let calibrate_window = match t.duration(p, "calibrate_window") {
                Some(w)
                    if w.value < Duration::from_secs(600)
                        || w.value > Duration::from_secs(8 * 86400) =>
                {
                    p.push(
                        w.span,
                        &w.key,
                        "between 10 minutes and 8 days (the minute history kept)",
                    );
                    d.calibrate_window
                }
                Some(w) => w.value,
                None => d.calibrate_window,
            };
            let min_r2 = match t.float(p, "min_r2") {
                Some(v) if !(0.0..=1.0).contains(&v.value) => {
                    p.push(v.span, &v.key, "R^2 is between 0 and 1");
                    d.min_r2
                }
                Some(v) => v.value,
                None => d.min_r2,
            };
            let min_samples = match t.uint(p, "min_samples") {
                Some(v) if v.value < 3 => {
                    p.push(v.span, &v.key, "a fit needs at least 3 minutes");
                    d.min_samples
                }
                Some(v) => v.value as usize,
                None => d.min_samples,
            };
            let lead_poll = t.duration(p, "lead_poll").map_or(d.lead_poll, |v| v.value);
            t.finish(p);
            CloudWatchConfig {
                publish,
                namespace,
                publish_interval,
                buffer,
                dimensions,
                observe,
                calibrate_every,
                calibrate_window,
                min_r2,
                min_samples,
                lead_poll,
            }
        }
        None => CloudWatchConfig::default(),
    };

    let pricing = match root.table(p, "pricing") {
        Some(mut t) => {
            let d = Pricing::default();
            let mut price = |p: &mut Problems, key: &str, default: f64| match t.float(p, key) {
                Some(v) if !(v.value >= 0.0 && v.value.is_finite()) => {
                    p.push(
                        v.span,
                        &v.key,
                        format!("must be a price >= 0, got {}", v.value),
                    );
                    default
                }
                Some(v) => v.value,
                None => default,
            };
            let pricing = Pricing {
                read_unit_hour: price(p, "read_unit_hour", d.read_unit_hour),
                write_unit_hour: price(p, "write_unit_hour", d.write_unit_hour),
            };
            t.finish(p);
            pricing
        }
        None => Pricing::default(),
    };

    Config {
        mode,
        state_dir,
        aws,
        schedule,
        series,
        ingest,
        api,
        dynamodb,
        asg,
        pricing,
        coordination,
        cloudwatch,
    }
}

fn read_dynamo_policy(t: &mut TableReader, p: &mut Problems) -> DynamoPolicy {
    let d = DynamoPolicy::default();
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
    let reserve = t
        .uint(p, "reserve")
        .map(|r| r.value.min(27) as u32)
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
    }
}

fn enum_value<T>(
    p: &mut Problems,
    s: &Located<String>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Option<T> {
    let v = parse(&s.value);
    if v.is_none() {
        p.push(
            s.span.clone(),
            &s.key,
            format!("expected {allowed}, got {:?}", s.value),
        );
    }
    v
}

fn socket_addr(p: &mut Problems, s: &Located<String>) -> Option<SocketAddr> {
    match s.value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push(
                s.span.clone(),
                &s.key,
                format!("{:?} is not an address like 127.0.0.1:8125", s.value),
            );
            None
        }
    }
}

fn positive_size(p: &mut Problems, v: Option<Located<u64>>, default: usize) -> usize {
    match v {
        Some(v) if v.value == 0 => {
            p.push(v.span, &v.key, "must be greater than zero");
            default
        }
        Some(v) => v.value as usize,
        None => default,
    }
}

fn read_ingest(root: &mut TableReader, p: &mut Problems) -> IngestConfig {
    let mut ingest = IngestConfig {
        grace: Duration::from_secs(2),
        stale_after: Duration::from_secs(5),
        requests_stream: None,
        statsd: None,
        access_logs: Vec::new(),
        status_pages: Vec::new(),
    };
    let Some(mut t) = root.table(p, "ingest") else {
        return ingest;
    };
    if let Some(g) = t.duration(p, "grace") {
        ingest.grace = g.value;
    }
    if let Some(s) = t.duration(p, "stale_after") {
        ingest.stale_after = s.value;
    }
    let requests_stream = t.string(p, "requests_stream");
    let mut streams: Vec<Located<String>> = Vec::new();
    if let Some(mut s) = t.table(p, "statsd") {
        let listen = s.string(p, "listen").and_then(|l| socket_addr(p, &l));
        if listen.is_none() && !s.has("listen") {
            p.push(
                s.span(),
                &s.key_path("listen"),
                "missing: the UDP address to listen on, e.g. \"127.0.0.1:8125\"",
            );
        }
        let stream = stream_name(&mut s, p, "statsd", &mut streams);
        let mut requests = Vec::new();
        for sel in s.string_array(p, "requests").unwrap_or_default() {
            match MetricSelector::parse(&sel.value) {
                Ok(m) => requests.push(m),
                Err(why) => p.push(sel.span, &sel.key, why),
            }
        }
        let max_packet_bytes = s.uint(p, "max_packet_bytes");
        let max_packet_bytes = positive_size(p, max_packet_bytes, 65_535);
        s.finish(p);
        if let Some(listen) = listen {
            ingest.statsd = Some(StatsdConfig {
                listen,
                stream,
                requests,
                max_packet_bytes,
            });
        }
    }
    for (i, mut a) in t.tables(p, "access_log").into_iter().enumerate() {
        let path = a.string(p, "path");
        if path.is_none() && !a.has("path") {
            p.push(
                a.span(),
                &a.key_path("path"),
                "missing: the log file to follow",
            );
        }
        let default_stream = if i == 0 {
            "access_log".to_string()
        } else {
            format!("access_log_{i}")
        };
        let stream = stream_name(&mut a, p, &default_stream, &mut streams);
        let format = match a.string(p, "format") {
            Some(f) => match LogFormat::from_config(&f.value) {
                Ok(fmt) => Some(fmt),
                Err(why) => {
                    p.push(f.span, &f.key, why);
                    None
                }
            },
            None => LogFormat::from_config("combined").ok(),
        };
        let start_at = a
            .string(p, "start_at")
            .and_then(|s| {
                enum_value(
                    p,
                    &s,
                    |v| match v {
                        "end" => Some(StartAt::End),
                        "beginning" => Some(StartAt::Beginning),
                        _ => None,
                    },
                    "\"end\" or \"beginning\"",
                )
            })
            .unwrap_or(StartAt::End);
        let poll_interval = a
            .duration(p, "poll_interval")
            .map(|d| d.value)
            .unwrap_or(Duration::from_millis(200));
        let max_line_bytes = a.uint(p, "max_line_bytes");
        let max_line_bytes = positive_size(p, max_line_bytes, 64 * 1024);
        a.finish(p);
        if let (Some(path), Some(format)) = (path, format) {
            ingest.access_logs.push(AccessLogConfig {
                path: PathBuf::from(path.value),
                stream,
                format,
                start_at,
                poll_interval,
                max_line_bytes,
            });
        }
    }
    for (i, mut s) in t.tables(p, "status_page").into_iter().enumerate() {
        let url = s.string(p, "url");
        match &url {
            Some(u) if !u.value.starts_with("http://") => p.push(
                u.span.clone(),
                &u.key,
                "must be an http:// URL (status pages are local; https is not supported)",
            ),
            None if !s.has("url") => {
                p.push(s.span(), &s.key_path("url"), "missing: the status page URL")
            }
            _ => {}
        }
        let kind = s
            .string(p, "kind")
            .and_then(|k| {
                enum_value(
                    p,
                    &k,
                    |v| match v {
                        "nginx" => Some(StatusKind::Nginx),
                        "php-fpm" => Some(StatusKind::PhpFpm),
                        _ => None,
                    },
                    "\"nginx\" or \"php-fpm\"",
                )
            })
            .unwrap_or(StatusKind::Nginx);
        let default_stream = if i == 0 {
            "status_page".to_string()
        } else {
            format!("status_page_{i}")
        };
        let stream = stream_name(&mut s, p, &default_stream, &mut streams);
        let interval = s
            .duration(p, "interval")
            .map(|d| d.value)
            .unwrap_or(Duration::from_secs(1));
        let timeout = s
            .duration(p, "timeout")
            .map(|d| d.value)
            .unwrap_or(Duration::from_millis(800));
        s.finish(p);
        if let Some(url) = url {
            ingest.status_pages.push(StatusPageConfig {
                url: url.value,
                kind,
                stream,
                interval,
                timeout,
            });
        }
    }
    if let Some(rs) = requests_stream {
        if streams.iter().any(|s| s.value == rs.value) {
            ingest.requests_stream = Some(rs.value);
        } else {
            let known: Vec<&str> = streams.iter().map(|s| s.value.as_str()).collect();
            p.push(
                rs.span,
                &rs.key,
                format!(
                    "no source writes stream {:?} (streams: {})",
                    rs.value,
                    known.join(", ")
                ),
            );
        }
    } else {
        ingest.requests_stream = streams.first().map(|s| s.value.clone());
    }
    t.finish(p);
    ingest
}

fn stream_name(
    t: &mut TableReader,
    p: &mut Problems,
    default: &str,
    seen: &mut Vec<Located<String>>,
) -> String {
    let name = t.string(p, "stream").unwrap_or_else(|| Located {
        value: default.to_string(),
        key: t.key_path("stream"),
        span: t.span(),
    });
    let valid = !name.value.is_empty()
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid {
        p.push(
            name.span.clone(),
            &name.key,
            "stream names use letters, digits, '_', '-' and '.'",
        );
    }
    if seen.iter().any(|s| s.value == name.value) {
        p.push(
            name.span.clone(),
            &name.key,
            format!(
                "stream {:?} is used by another source; give each source its own `stream`",
                name.value
            ),
        );
    }
    seen.push(name.clone());
    name.value
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
    let metric = c
        .string(p, "metric")
        .and_then(|m| match MetricSelector::parse(&m.value) {
            Ok(sel) => {
                if !has_statsd {
                    p.push(
                        m.span,
                        &m.key,
                        "a metric needs [ingest.statsd] to receive it",
                    );
                }
                Some(sel)
            }
            Err(why) => {
                p.push(m.span, &m.key, why);
                None
            }
        });
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
        target: raw.target.as_ref().map(|t| t.value).unwrap_or(0.7),
        min: raw.min.as_ref().map(|m| m.value).unwrap_or(1),
        max: raw.max.as_ref().map(|m| m.value).unwrap_or(u64::MAX),
    };
    let mut hours = [base; 24];
    // Where each row's min and max came from, to point at the right key.
    let mut min_src: [Option<&Located<u64>>; 24] = [raw.min.as_ref(); 24];
    let mut max_src: [Option<&Located<u64>>; 24] = [raw.max.as_ref(); 24];
    for o in overrides {
        for h in o.hours.hours() {
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
        hours,
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

fn read_asg(t: &mut TableReader, p: &mut Problems) -> AsgConfig {
    let name = t.string(p, "name").map(|n| n.value);
    let mode = t
        .string(p, "mode")
        .and_then(|m| enum_value(p, &m, Mode::parse, "\"dry-run\" or \"apply\""));
    let poll_interval = t
        .duration(p, "poll_interval")
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(5));
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
    let mut hours = [base; 24];
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
                .or(min.as_ref().map(|m| m.key.clone()))
                .unwrap_or_else(|| t.key_path("min"));
            let span = row_span[hour]
                .clone()
                .or(min.as_ref().map(|m| m.span.clone()))
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
    let d = AsgPolicy::default();
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
    let policy = AsgPolicy {
        headroom: fraction(headroom, d.headroom, 0.0, 10.0),
        up_window,
        warmup,
        settle,
        stabilization,
        max_step_in: fraction(max_step_in, d.max_step_in, 0.0, 1.0),
        prewarm,
    };
    let metadata_endpoint = t
        .string(p, "metadata_endpoint")
        .map(|m| m.value.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "http://169.254.169.254".to_string());
    AsgConfig {
        name,
        mode,
        poll_interval,
        hours,
        policy,
        metadata_endpoint,
    }
}

#[cfg(test)]
mod tests;
