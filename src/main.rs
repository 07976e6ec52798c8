//! `avepoint-elements-exporter`: flags, logging, signals and exit codes; everything else
//! lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use avepoint_elements_exporter::app::{self, AppError, Options};
use avepoint_elements_exporter::config::{Config, ProcessEnvironment};
use avepoint_elements_exporter::server::ServeLimits;
use avepoint_elements_exporter::web::WebSettings;
use clap::{Parser, ValueEnum};
use tracing_subscriber::prelude::*;

/// Exports the user seats of AvePoint Elements customer tenants as Prometheus metrics.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// YAML configuration file.
    #[arg(
        long = "config.file",
        value_name = "PATH",
        default_value = "config.yaml"
    )]
    config_file: PathBuf,
    /// Address to serve HTTP on (host:port, or :port for all interfaces); repeatable.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9978"
    )]
    listen_address: Vec<String>,
    /// Path of the metrics endpoint.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    telemetry_path: String,
    /// exporter-toolkit web config: TLS, client certificates, response headers, basic auth.
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// Connections served at once; further ones are closed on accept.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Time a connection has to finish its TLS handshake and send a request's headers; also
    /// how long an idle keep-alive connection stays open.
    #[arg(long = "web.read-header-timeout", value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    read_header_timeout: std::time::Duration,
    /// Log level.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    log_level: LogLevel,
    /// Log format.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt")]
    log_format: LogFormat,
    /// Poll a built-in simulated Elements API instead of the configured one (no account,
    /// no config file, no network needed).
    #[arg(long)]
    demo: bool,
    /// Load and validate the config, print a summary and exit.
    #[arg(long = "check-config")]
    check_config: bool,
    /// Poll only the customers whose stable hash modulo --total-shards is this number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    shard: u32,
    /// Number of shards the customers are split into.
    #[arg(long = "total-shards", value_name = "M", default_value_t = 1)]
    total_shards: u32,
    /// Take --shard from the ordinal at the end of $POD_NAME (StatefulSet pod `name-3` is shard 3).
    #[arg(long = "shard.from-pod-name")]
    shard_from_pod_name: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Logfmt,
    Json,
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    // Our own crate logs at the chosen level; dependencies only at warn and above.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::WARN.min(level))
        .with_target("avepoint_elements_exporter", level);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// A positive duration such as `10s`.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    match avepoint_elements_exporter::config::parse_duration(text)? {
        d if d.is_zero() => Err("must be greater than 0s".into()),
        d => Ok(d),
    }
}

/// The shard number from a StatefulSet pod name such as `exporter-3`.
fn ordinal_of(pod_name: &str) -> Option<u32> {
    pod_name.rsplit_once('-')?.1.parse().ok()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            };
        }
    };
    if cli.check_config {
        if let Some(path) = &cli.web_config_file {
            if let Err(e) = WebSettings::load(path) {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        }
        return match Config::load(&cli.config_file, &ProcessEnvironment) {
            Ok(config) => {
                print!("{}", config.summary());
                if let Some(path) = &cli.web_config_file {
                    println!("  web config {}: OK", path.display());
                }
                if let Some(round) = config.min_round(cli.total_shards) {
                    println!("  round estimate: {round}");
                    if round.exceeds_interval() {
                        println!(
                            "warning: poll.interval cannot be kept: every target is still polled, \
                             oldest data first, but each less often than the interval. Raise \
                             elements.max_requests_per_second, lengthen poll.interval, or shard \
                             (--total-shards)"
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                for problem in e.problems() {
                    eprintln!("{}: {problem}", cli.config_file.display());
                }
                ExitCode::from(1)
            }
        };
    }
    let mut shard = cli.shard;
    if cli.shard_from_pod_name {
        let pod = std::env::var("POD_NAME").unwrap_or_default();
        match ordinal_of(&pod) {
            Some(n) => shard = n,
            None => {
                eprintln!("--shard.from-pod-name: $POD_NAME {pod:?} does not end in -<ordinal>");
                return ExitCode::from(1);
            }
        }
    }
    if cli.total_shards == 0 || shard >= cli.total_shards {
        eprintln!(
            "--shard {shard} must be less than --total-shards {} (and --total-shards at least 1)",
            cli.total_shards
        );
        return ExitCode::from(1);
    }
    if !cli.telemetry_path.starts_with('/') || cli.telemetry_path.len() < 2 {
        eprintln!(
            "--web.telemetry-path {:?} must start with '/' and name a path other than /",
            cli.telemetry_path
        );
        return ExitCode::from(1);
    }
    init_logging(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let options = Options {
        config_file: cli.config_file,
        listen_addresses: cli.listen_address,
        telemetry_path: cli.telemetry_path,
        demo: cli.demo,
        shard,
        total_shards: cli.total_shards,
        web_config_file: cli.web_config_file,
        limits: ServeLimits {
            max_connections: cli.max_connections as usize,
            read_header_timeout: cli.read_header_timeout,
        },
    };
    let result = runtime.block_on(app::run(options, shutdown_signal()));
    // Do not wait for stray blocking tasks: shutdown must finish within seconds.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            eprintln!("error: {e}");
            match e {
                AppError::Server(_) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ordinals() {
        assert_eq!(ordinal_of("avepoint-elements-exporter-3"), Some(3));
        assert_eq!(ordinal_of("x-0"), Some(0));
        assert_eq!(ordinal_of("nodash"), None);
        assert_eq!(ordinal_of("pod-abc"), None);
    }
}
