//! What the command line decides for the daemon and `--once`.

use std::path::PathBuf;

use crate::polling::persistence::Persistence;
use crate::server::ServeLimits;

/// What the command line decides.
#[derive(Debug, Clone)]
pub struct Options {
    /// Config file (ignored in demo mode).
    pub config_file: PathBuf,
    /// Addresses to listen on.
    pub listen_addresses: Vec<String>,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// Poll the built-in simulated API instead of the configured one.
    pub demo: bool,
    /// This instance's shard.
    pub shard: u32,
    /// Number of shards.
    pub total_shards: u32,
    /// `--web.config.file`: TLS, headers and basic auth.
    pub web_config_file: Option<PathBuf>,
    /// Connection limits and timeouts of the HTTP server.
    pub limits: ServeLimits,
    /// `--persistence.file` and `--persistence.interval`; `None` keeps nothing across restarts.
    pub persistence: Option<Persistence>,
}

impl Options {
    /// The defaults of the command line for `config_file`, listening on `listen_addresses`:
    /// no demo, one shard, no web config, default limits, no persistence.
    pub fn new(config_file: PathBuf, listen_addresses: Vec<String>) -> Options {
        Options {
            config_file,
            listen_addresses,
            telemetry_path: "/metrics".into(),
            demo: false,
            shard: 0,
            total_shards: 1,
            web_config_file: None,
            limits: ServeLimits::default(),
            persistence: None,
        }
    }
}
