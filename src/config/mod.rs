//! Configuration: TOML text -> validated [`Config`].
//!
//! Owns every default and every validation rule, one file per section, each
//! with its types, their defaults (named constants beside them) and its
//! reader. Loading never stops at the first problem: all of them are
//! collected with file:line:column, key and reason (see [`reader`]).
//! Nothing downstream re-validates; a `Config` that exists is usable.

mod api;
mod asg;
mod aws;
mod cloudwatch;
mod coordination;
mod dynamodb;
mod ecs;
mod fleet;
mod ingest;
mod notify;
mod pricing;
pub mod reader;
pub mod report;
pub mod schedule;
mod series;

use std::path::{Path, PathBuf};

use toml::de::DeTable;

pub use api::ApiConfig;
pub use asg::{AsgConfig, AsgPolicy, GroupLimits, RateAmount, RateRule, RateRules, Select};
pub use aws::AwsConfig;
pub use cloudwatch::CloudWatchConfig;
pub use coordination::CoordinationConfig;
pub use dynamodb::{
    throttled_stream, units_stream, CapacityLimits, CapacityRef, CapacitySpec, DynamoDbConfig,
    DynamoPolicy, IndexConfig, TableConfig,
};
pub use ecs::EcsService;
pub use fleet::{FleetView, FLEET_FIX};
pub use ingest::{
    AccessLogConfig, IngestConfig, StartAt, StatsdConfig, StatusKind, StatusPageConfig,
};
pub use notify::{NotifyEvent, NotifyKind, NotifyTarget};
pub use pricing::Pricing;
pub use reader::ConfigProblem;
use reader::{enum_value, Problems, TableReader};
pub use schedule::{parse_hours, HourSet, HourTable, Schedule};
pub use series::SeriesConfig;

/// Whether rapidscale only recommends or also acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Apply,
}

impl Mode {
    pub(crate) fn parse(s: &str) -> Option<Mode> {
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
    /// `[[ecs.services]]`: ECS services sized like the group, per task.
    pub ecs_services: Vec<EcsService>,
    pub pricing: Pricing,
    pub coordination: Option<CoordinationConfig>,
    pub cloudwatch: CloudWatchConfig,
    /// How this rapidscale sees the whole fleet's demand.
    pub fleet: FleetView,
    /// `[[notify]]`: who is told what rapidscale recommends and does.
    pub notify: Vec<NotifyTarget>,
}

/// Where the audit log, the decrease budget and the minute history live
/// unless `state_dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "./state";

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
        self.api.get_or_insert(ApiConfig {
            listen: api::DEFAULT_LISTEN,
            token: None,
        })
    }
}

fn read_config(root: &mut TableReader, p: &mut Problems) -> Config {
    let mode = root
        .string(p, "mode")
        .and_then(|m| enum_value(p, &m, Mode::parse, "\"dry-run\" or \"apply\""))
        .unwrap_or(Mode::DryRun);
    let state_dir = root
        .string(p, "state_dir")
        .map(|s| PathBuf::from(s.value))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));

    let aws = aws::read(root, p);
    let schedule = schedule::read(root, p);
    let series = series::read(root, p);
    let ingest = ingest::read(root, p);
    let api = api::read(root, p);
    let has_statsd = ingest.statsd.is_some();
    let dynamodb = dynamodb::read(root, p, has_statsd);
    let asg = asg::read(root, p);
    let ecs_services = ecs::read(root, p);
    let coordination = coordination::read(root, p, asg.as_ref());
    let cloudwatch = cloudwatch::read(root, p);
    let pricing = pricing::read(root, p);
    let notify = notify::read(root, p);
    let fleet = fleet::read(
        root,
        p,
        mode,
        &dynamodb,
        &asg.iter()
            .chain(ecs_services.iter().map(|s| &s.fleet))
            .collect::<Vec<_>>(),
        coordination.as_ref(),
    );
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
        ecs_services,
        pricing,
        coordination,
        cloudwatch,
        fleet,
        notify,
    }
}

#[cfg(test)]
mod tests;
