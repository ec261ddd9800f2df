//! The `rapidscale` command: parse arguments, set up logging, load the
//! config, hand over to `app`, wait for a stop signal.

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
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file: list every problem, or print the effective per-hour tables.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::CheckConfig { file } => match load(&file) {
            Ok(config) => {
                print!("{}", rapidscale::config::report::effective_tables(&config));
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rapidscale: cannot start the async runtime: {e}");
                    return ExitCode::from(EXIT_RUNTIME);
                }
            };
            runtime.block_on(run(config))
        }
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    match Config::load(path, |k| std::env::var(k).ok()) {
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

async fn run(config: Config) -> ExitCode {
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        signal_token.cancel();
    });
    match rapidscale::app::run(config, Arc::new(SystemClock), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "rapidscale failed.");
            ExitCode::from(EXIT_RUNTIME)
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
