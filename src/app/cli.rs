//! The command line: its flags ([`Cli`]), what they ask for ([`Mode`]), what they mean
//! together (checked the same for the daemon and `--check-config`) and the [`Options`] they
//! give.

use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

use super::options::Options;
use crate::config::ConfigError;
use crate::polling::persistence::Persistence;
use crate::server::ServeLimits;

/// Exports the user seats of AvePoint Elements customer tenants as Prometheus metrics.
#[derive(Debug, Parser)]
#[command(about, long_about = None, disable_version_flag = true)]
pub struct Cli {
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

// No doc comments on the values: clap would show them in --help.
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

/// What the command line asks the process to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--version`: print the build and exit.
    Version,
    /// `--check-config`: check the flags, the web config and the config file, print a
    /// summary and exit.
    CheckConfig,
    /// `--demo --check-config`: check and summarize the demo's own config.
    CheckDemoConfig,
    /// `--once`: poll every target once and print the exposition.
    Once,
    /// Run the daemon until a signal ends it.
    Daemon,
}

impl Cli {
    /// What the flags ask for: `--version` first, then `--check-config` (with `--demo`, the
    /// demo's config), then `--once`, else the daemon.
    pub fn mode(&self) -> Mode {
        match self {
            Cli { version: true, .. } => Mode::Version,
            Cli {
                check_config: true,
                demo: true,
                ..
            } => Mode::CheckDemoConfig,
            Cli {
                check_config: true, ..
            } => Mode::CheckConfig,
            Cli { once: true, .. } => Mode::Once,
            _ => Mode::Daemon,
        }
    }

    /// `--config.file`.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// `--web.config.file`.
    pub fn web_config_file(&self) -> Option<&Path> {
        self.web_config_file.as_deref()
    }

    /// `--total-shards`.
    pub fn total_shards(&self) -> u32 {
        self.total_shards
    }

    /// `--log.level`, for the crate's own log lines.
    pub fn log_level(&self) -> tracing::Level {
        match self.log_level {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }

    /// `--log.format`.
    pub fn log_format(&self) -> crate::telemetry::Format {
        match self.log_format {
            LogFormat::Logfmt => crate::telemetry::Format::Logfmt,
            LogFormat::Json => crate::telemetry::Format::Json,
        }
    }

    /// The daemon's options from the flags, once [`Cli::check`] says what they mean together
    /// (the shard from `pod_name` with `--shard.from-pod-name`); else why not, for stderr.
    pub fn options(&self, pod_name: Option<&str>) -> Result<Options, String> {
        let shard = self.check(pod_name)?;
        Ok(Options {
            config_file: self.config_file.clone(),
            listen_addresses: self.listen_address.clone(),
            telemetry_path: self.telemetry_path.clone(),
            demo: self.demo,
            shard,
            total_shards: self.total_shards,
            web_config_file: self.web_config_file.clone(),
            limits: ServeLimits {
                max_connections: self.max_connections as usize,
                read_header_timeout: self.read_header_timeout,
            },
            persistence: self.persistence_file.clone().map(|path| Persistence {
                path,
                interval: self.persistence_interval,
            }),
        })
    }

    /// Checks what the flags mean together, for the daemon and `--check-config` alike; the
    /// shard to poll (`--shard`, or the ordinal of `pod_name` with `--shard.from-pod-name`).
    pub fn check(&self, pod_name: Option<&str>) -> Result<u32, String> {
        let shard = if self.shard_from_pod_name {
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
            self.shard
        };
        if self.total_shards == 0 {
            return Err("--total-shards 0: there must be at least 1 shard".into());
        }
        if shard >= self.total_shards {
            return Err(format!(
                "--shard {shard} must be less than --total-shards {} (shards are numbered from 0)",
                self.total_shards
            ));
        }
        check_telemetry_path(&self.telemetry_path)?;
        Ok(shard)
    }

    /// The `--check-config` line about `--persistence.file`.
    pub(super) fn persistence_summary(&self) -> String {
        match &self.persistence_file {
            Some(path) => format!(
                "persistence: {} (written at most every {} while something changed, and at shutdown)",
                path.display(),
                crate::config::format_duration(self.persistence_interval)
            ),
            None => {
                "persistence: off (--persistence.file not set: a restart starts from nothing)"
                    .into()
            }
        }
    }
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
    match crate::config::parse_duration(text)? {
        d if d.is_zero() => Err("must be greater than 0s".into()),
        d => Ok(d),
    }
}

/// The shard number from a StatefulSet pod name such as `exporter-3`.
fn ordinal_of(pod_name: &str) -> Option<u32> {
    pod_name.rsplit_once('-')?.1.parse().ok()
}

/// How to get going, when the exporter was started without `--config.file` and there is no
/// `config.yaml` in the working directory.
pub(super) fn start_hint(error: &ConfigError, path: &Path) -> Option<String> {
    match error {
        ConfigError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound
                && path == Path::new(DEFAULT_CONFIG_FILE) =>
        {
            Some(format!(
                "no config file at {}: pass --config.file PATH (examples/config.yaml shows every key), or run with --demo to see the exporter work against a built-in simulated API",
                path.display()
            ))
        }
        _ => None,
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
