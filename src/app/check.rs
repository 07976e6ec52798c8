//! `--check-config`: the flags, the web config and the config file checked as the daemon
//! would check them, and the summary it prints.

use std::fmt::Write as _;

use super::cli::{start_hint, Cli};
use crate::config::{Config, ProcessEnvironment};
use crate::demo::DemoApi;
use crate::server::web_config::WebSettings;

/// What a check found: the summary for stdout when everything is valid, else the problems
/// for stderr, one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Everything is valid: the summary (with the config's warnings).
    Valid(String),
    /// The problems, one a line.
    Invalid(Vec<String>),
}

/// `--check-config`: the same flag checks as the daemon's (`pod_name` for
/// `--shard.from-pod-name`), then the web config and the config file, so that a green
/// pre-flight means the daemon starts. Blocking: it reads files.
pub fn check_config(cli: &Cli, pod_name: Option<&str>) -> Checked {
    if let Err(e) = cli.check(pod_name) {
        return Checked::Invalid(vec![e]);
    }
    if let Some(path) = cli.web_config_file() {
        if let Err(e) = WebSettings::load(path) {
            return Checked::Invalid(e.lines());
        }
    }
    match Config::load(cli.config_file(), &ProcessEnvironment) {
        Ok(config) => {
            let mut out = config.summary();
            if let Some(path) = cli.web_config_file() {
                let _ = writeln!(out, "  web config {}: OK", path.display());
            }
            let _ = writeln!(out, "  {}", cli.persistence_summary());
            for warning in &config.warnings {
                let _ = writeln!(out, "warning: {warning}");
            }
            if let Some(round) = config.min_round(cli.total_shards()) {
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
            Checked::Valid(out)
        }
        Err(e) => {
            let file = cli.config_file().display();
            let mut problems: Vec<String> = e
                .problems()
                .iter()
                .map(|problem| format!("{file}: {problem}"))
                .collect();
            problems.extend(start_hint(&e, cli.config_file()));
            Checked::Invalid(problems)
        }
    }
}

/// `--demo --check-config`: the demo's own config, checked and summarized (the demo API is
/// started on loopback to make it).
pub async fn check_demo_config() -> Checked {
    let checked = async {
        let api = DemoApi::start()
            .await
            .map_err(|e| format!("cannot start the demo API: {e}"))?;
        api.config().map_err(|e| e.problems().join("; "))
    };
    match checked.await {
        Ok(config) => Checked::Valid(format!(
            "demo mode: the built-in simulated Elements API, on a loopback port chosen at start\n{}",
            config.summary()
        )),
        Err(e) => Checked::Invalid(vec![format!("demo config: {e}")]),
    }
}
