//! `avepoint-elements-exporter`: flags, logging, signals and exit codes; everything else
//! lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use avepoint_elements_exporter::app::{self, AppError, Options};
use avepoint_elements_exporter::{
    BuildInfo, Config, ConfigError, DemoApi, LineLayer, Persistence, ProcessEnvironment,
    ServeLimits, WebSettings,
};
use clap::{Parser, ValueEnum};
use tracing_subscriber::prelude::*;

/// jemalloc, configured to give freed memory back (see Cargo.toml and .cargo/config.toml).
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exports the user seats of AvePoint Elements customer tenants as Prometheus metrics.
#[derive(Debug, Parser)]
#[command(about, long_about = None, disable_version_flag = true)]
struct Cli {
    /// Print version, revision, build date, compiler and platform, then exit.
    #[arg(long)]
    version: bool,
    /// YAML configuration file.
    #[arg(
        long = "config.file",
        value_name = "PATH",
        default_value = DEFAULT_CONFIG_FILE
    )]
    config_file: PathBuf,
    /// Address to serve HTTP on (host:port, or :port for all interfaces, IPv6 included);
    /// repeatable.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9978",
        value_parser = parse_listen_address
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
    /// Connections served at once. At the limit a new connection takes the place of the one
    /// idle longest; it is closed only when every connection has a request in flight.
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
    /// Poll every target once, print the exposition to stdout and exit: 0 if every poll
    /// succeeded and the output was written whole, else 1 (each failure on stderr). Binds no
    /// port (cron with the textfile collector, or a first check of an app registration).
    #[arg(long)]
    once: bool,
    /// Poll only the customers whose stable hash modulo --total-shards is this number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    shard: u32,
    /// Number of shards the customers are split into.
    #[arg(long = "total-shards", value_name = "M", default_value_t = 1)]
    total_shards: u32,
    /// Take --shard from the ordinal at the end of $POD_NAME (StatefulSet pod `name-3` is shard 3).
    #[arg(long = "shard.from-pod-name")]
    shard_from_pod_name: bool,
    /// Keep series, last results and the schedule in this file, so that a restart serves
    /// everything at once and polls nothing early (off when not set).
    #[arg(long = "persistence.file", value_name = "PATH")]
    persistence_file: Option<PathBuf>,
    /// Longest time between two writes of the persistence file while something changed; it
    /// is also written as soon as the first pass completes, and at clean shutdown.
    #[arg(long = "persistence.interval", value_name = "DURATION", default_value = "1m", value_parser = parse_timeout)]
    persistence_interval: std::time::Duration,
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
    let format = match format {
        LogFormat::Logfmt => avepoint_elements_exporter::LogFormat::Logfmt,
        LogFormat::Json => avepoint_elements_exporter::LogFormat::Json,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(LineLayer::new(format))
        .init();
}

/// `host:port`, `[v6]:port` or `:port`, with a port number 0..65535; checked here so that a
/// typo is a usage error (exit 1), not a bind failure.
fn parse_listen_address(text: &str) -> Result<String, String> {
    let expected = "expected host:port, [ipv6]:port or :port with a port from 0 to 65535";
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: {expected}"))?;
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "{text:?}: port {port:?} is not a number from 0 to 65535; {expected}"
        ));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.contains(':') && !bracketed {
        return Err(format!(
            "{text:?}: write IPv6 hosts in brackets; {expected}"
        ));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!("{text:?}: {expected}"));
    }
    Ok(text.to_owned())
}

/// The `--check-config` line about `--persistence.file`.
fn persistence_summary(cli: &Cli) -> String {
    match &cli.persistence_file {
        Some(path) => format!(
            "persistence: {} (written at most every {} while something changed, and at shutdown)",
            path.display(),
            avepoint_elements_exporter::format_duration(cli.persistence_interval)
        ),
        None => {
            "persistence: off (--persistence.file not set: a restart starts from nothing)".into()
        }
    }
}

/// Writes `bytes` to stdout and flushes it. Unlike `print!` it never panics: the caller
/// decides what a failure means (a closed pipe, `| head -1`, is [`closed_pipe`]).
fn write_out(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush())
}

/// Writes `text` to stdout; a closed pipe (`| head -1`) ends the output quietly instead of
/// panicking as `print!` does.
fn print_out(text: &str) {
    let _ = write_out(text.as_bytes());
}

/// Whether a write failed because the reader went away (`| head -1`): nothing to report.
fn closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// Checks what the flags mean together, for the daemon and `--check-config` alike; the
/// shard to poll (`--shard`, or the ordinal of `pod_name` with `--shard.from-pod-name`).
fn check_flags(cli: &Cli, pod_name: Option<&str>) -> Result<u32, String> {
    let shard = if cli.shard_from_pod_name {
        let pod = pod_name.unwrap_or_default();
        if pod.is_empty() {
            return Err(
                "--shard.from-pod-name: $POD_NAME is not set; set it from the pod's name \
                 (fieldRef metadata.name), or pass --shard N"
                    .into(),
            );
        }
        ordinal_of(pod).ok_or_else(|| {
            format!("--shard.from-pod-name: $POD_NAME {pod:?} does not end in -<ordinal>")
        })?
    } else {
        cli.shard
    };
    if cli.total_shards == 0 {
        return Err("--total-shards 0: there must be at least 1 shard".into());
    }
    if shard >= cli.total_shards {
        return Err(format!(
            "--shard {shard} must be less than --total-shards {} (shards are numbered from 0)",
            cli.total_shards
        ));
    }
    check_telemetry_path(&cli.telemetry_path)?;
    Ok(shard)
}

/// A metrics path that requests can match: absolute, plain, and not the server's own.
fn check_telemetry_path(path: &str) -> Result<(), String> {
    let flag = "--web.telemetry-path";
    if !path.starts_with('/') {
        return Err(format!(
            "{flag} {path:?} must start with '/', e.g. /metrics"
        ));
    }
    if BUILT_IN_PATHS.contains(&path) || path.starts_with("/-/") {
        return Err(format!(
            "{flag} {path:?} is the server's own ({} and everything under /-/); choose another, e.g. /metrics",
            BUILT_IN_PATHS.join(", ")
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| matches!(c, '?' | '#' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{flag} {path:?} contains {c:?}: a request path never matches it; use a plain path such as /metrics"
        ));
    }
    Ok(())
}

/// `--config.file` when none is given.
const DEFAULT_CONFIG_FILE: &str = "config.yaml";

/// Paths the server answers itself, which the metrics endpoint cannot take over.
const BUILT_IN_PATHS: [&str; 4] = ["/", "/-/healthy", "/-/ready", "/-/reload"];

/// A positive duration such as `10s`.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    match avepoint_elements_exporter::parse_duration(text)? {
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
    if cli.version {
        print_out(&BuildInfo::current().version_text());
        return ExitCode::SUCCESS;
    }
    if cli.check_config && cli.demo {
        return check_demo_config();
    }
    if cli.check_config {
        return check_config(&cli);
    }
    let shard = match check_flags(&cli, std::env::var("POD_NAME").ok().as_deref()) {
        Ok(shard) => shard,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    init_logging(cli.log_level, cli.log_format);
    let Some(runtime) = runtime(&mut tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::from(1);
    };
    let config_file = cli.config_file.clone();
    let once = cli.once;
    let options = options_of(cli, shard);
    if once {
        let code = run_once(&runtime, options, &config_file);
        runtime.shutdown_timeout(std::time::Duration::from_millis(500));
        return code;
    }
    run_daemon(runtime, options, &config_file)
}

/// The daemon's options from the flags, with the shard `check_flags` worked out.
fn options_of(cli: Cli, shard: u32) -> Options {
    Options {
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
        persistence: cli.persistence_file.map(|path| Persistence {
            path,
            interval: cli.persistence_interval,
        }),
    }
}

/// Runs the daemon until a signal ends it; the exit code says how it ended (1 for start-up
/// and task failures, 2 when a listen address cannot be bound).
fn run_daemon(
    runtime: tokio::runtime::Runtime,
    options: Options,
    config_file: &std::path::Path,
) -> ExitCode {
    let result = runtime.block_on(app::run(options, shutdown_signal()));
    // Do not wait for stray blocking tasks: shutdown must finish within seconds.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, in the log format chosen, with a hint when the exporter was started
            // without a config.
            let hint = match &e {
                AppError::Config(c) => start_hint(c, config_file),
                _ => None,
            };
            let error = chain(&e);
            match (hint, &e) {
                (_, AppError::TaskEnded { .. }) => tracing::error!(error, "exiting"),
                (Some(hint), _) => tracing::error!(error, hint, "cannot start"),
                (None, _) => tracing::error!(error, "cannot start"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--check-config`: the flags, the web config and the config file checked as the daemon
/// would check them, a summary on stdout; 1 with the problems on stderr.
fn check_config(cli: &Cli) -> ExitCode {
    // The same flag checks as the daemon's: a green pre-flight means it starts.
    if let Err(e) = check_flags(cli, std::env::var("POD_NAME").ok().as_deref()) {
        eprintln!("{e}");
        return ExitCode::from(1);
    }
    if let Some(path) = &cli.web_config_file {
        if let Err(e) = WebSettings::load(path) {
            for line in e.lines() {
                eprintln!("{line}");
            }
            return ExitCode::from(1);
        }
    }
    match Config::load(&cli.config_file, &ProcessEnvironment) {
        Ok(config) => {
            use std::fmt::Write as _;
            let mut out = config.summary();
            if let Some(path) = &cli.web_config_file {
                let _ = writeln!(out, "  web config {}: OK", path.display());
            }
            let _ = writeln!(out, "  {}", persistence_summary(cli));
            for warning in &config.warnings {
                let _ = writeln!(out, "warning: {warning}");
            }
            if let Some(round) = config.min_round(cli.total_shards) {
                let _ = writeln!(out, "  round estimate: {round}");
                if round.exceeds_interval() {
                    let _ = writeln!(
                        out,
                        "warning: poll.interval cannot be kept: every target is still polled, \
                         oldest data first, but each less often than the interval. Raise \
                         elements.max_requests_per_second, lengthen poll.interval, or shard \
                         (--total-shards)"
                    );
                }
            }
            print_out(&out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            for problem in e.problems() {
                eprintln!("{}: {problem}", cli.config_file.display());
            }
            if let Some(hint) = start_hint(&e, &cli.config_file) {
                eprintln!("{hint}");
            }
            ExitCode::from(1)
        }
    }
}

/// `--once`: one pass, the exposition on stdout, failures on stderr; 0 when all succeeded.
fn run_once(
    runtime: &tokio::runtime::Runtime,
    options: Options,
    config_file: &std::path::Path,
) -> ExitCode {
    let result = runtime.block_on(app::once(options));
    match result {
        Ok(pass) => {
            // Output cut short (a full disk, a closed pipe) must not pass for a whole file:
            // the cron recipe renames it into place only on exit 0. A closed pipe (`| head`)
            // is the reader's choice and says nothing; anything else gets one line.
            let written = write_out(&pass.exposition);
            for failure in &pass.failures {
                tracing::error!(failure = %failure, "poll failed");
            }
            if let Err(e) = &written {
                if !closed_pipe(e) {
                    tracing::error!(error = %e, "cannot write the exposition to stdout");
                }
            }
            if !pass.failures.is_empty() {
                tracing::error!(failed = pass.failures.len(), "not every poll succeeded");
            }
            if pass.failures.is_empty() && written.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            let hint = match &e {
                AppError::Config(c) => start_hint(c, config_file),
                _ => None,
            };
            let error = chain(&e);
            match hint {
                Some(hint) => tracing::error!(error, hint, "cannot poll"),
                None => tracing::error!(error, "cannot poll"),
            }
            ExitCode::from(1)
        }
    }
}

/// An error and its causes on one line, `outer: inner: ...`; a cause whose text the message
/// already carries is not repeated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// How to get going, when the exporter was started without `--config.file` and there is no
/// `config.yaml` in the working directory.
fn start_hint(error: &ConfigError, path: &std::path::Path) -> Option<String> {
    match error {
        ConfigError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound
                && path == std::path::Path::new(DEFAULT_CONFIG_FILE) =>
        {
            Some(format!(
                "no config file at {}: pass --config.file PATH (examples/config.yaml shows every key), or run with --demo to see the exporter work against a built-in simulated API",
                path.display()
            ))
        }
        _ => None,
    }
}

/// The async runtime, or `None` after saying why it cannot start.
fn runtime(builder: &mut tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cannot start the async runtime: {e}"))
        .ok()
}

/// `--demo --check-config`: the demo's own config, checked and summarized.
fn check_demo_config() -> ExitCode {
    let Some(runtime) = runtime(&mut tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::from(1);
    };
    let checked = runtime.block_on(async {
        let api = DemoApi::start()
            .await
            .map_err(|e| format!("cannot start the demo API: {e}"))?;
        api.config().map_err(|e| e.problems().join("; "))
    });
    match checked {
        Ok(config) => {
            print_out(&format!(
                "demo mode: the built-in simulated Elements API, on a loopback port chosen at start\n{}",
                config.summary()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo config: {e}");
            ExitCode::from(1)
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
    fn listen_addresses() {
        for good in [
            ":9978",
            "0.0.0.0:9978",
            "localhost:1",
            "[::1]:9978",
            "[::]:0",
            ":65535",
        ] {
            assert_eq!(parse_listen_address(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "nonsense",
            ":99999",
            ":",
            "host:port",
            "::1:9978",
            "a b:1",
            ":-1",
        ] {
            assert!(parse_listen_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pod_ordinals() {
        assert_eq!(ordinal_of("avepoint-elements-exporter-3"), Some(3));
        assert_eq!(ordinal_of("x-0"), Some(0));
        assert_eq!(ordinal_of("nodash"), None);
        assert_eq!(ordinal_of("pod-abc"), None);
    }
}
