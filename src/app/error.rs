//! Why the daemon could not start or stopped, and the process's exit status for it.

use std::path::Path;

use crate::config::ConfigError;
use crate::elements::transport::TransportError;
use crate::polling::persistence::PersistenceError;
use crate::server::web_config::WebConfigError;
use crate::server::ServerError;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP server could not listen.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The web config is unusable.
    #[error(transparent)]
    Web(#[from] WebConfigError),
    /// The self-metrics could not be registered (their names are fixed: a bug if it happens).
    #[error("cannot register the self-metrics")]
    Metrics(#[source] prometheus::Error),
    /// The simulated API of `--demo` could not listen on loopback.
    #[error("cannot start the demo API")]
    Demo(#[source] std::io::Error),
    /// The HTTP client for the Elements API could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] TransportError),
    /// The persistence file cannot be written.
    #[error(transparent)]
    Persistence(#[from] PersistenceError),
    /// A task the daemon cannot run without (poller, discovery, HTTP server, reloader) ended
    /// before shutdown, or panicked.
    #[error("the {task} task {}", match .source {
        Some(e) if e.is_panic() => "panicked",
        Some(_) => "was cancelled",
        None => "ended unexpectedly",
    })]
    TaskEnded {
        /// Which task.
        task: &'static str,
        /// The panic, when it panicked.
        #[source]
        source: Option<tokio::task::JoinError>,
    },
}

impl AppError {
    /// The process's exit status for this error: 1 for what the operator must fix (flags,
    /// config, web config, the persistence file's folder), 2 when the listen address cannot
    /// be bound, 3 for an internal failure (a task ended or panicked, the self-metrics could
    /// not be registered, the HTTP client could not be built), which a restart may cure:
    /// service managers restart on 2 and 3, not on 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Server(_) => 2,
            AppError::TaskEnded { .. } | AppError::Metrics(_) | AppError::Client(_) => 3,
            AppError::Config(_)
            | AppError::Web(_)
            | AppError::Demo(_)
            | AppError::Persistence(_) => 1,
        }
    }

    /// How to get going, when the exporter was started without a config to read at
    /// `config_file`: no `--config.file` given and no `config.yaml` here.
    pub fn hint(&self, config_file: &Path) -> Option<String> {
        match self {
            AppError::Config(e) => super::cli::start_hint(e, config_file),
            _ => None,
        }
    }

    /// The error and its causes on one line, `outer: inner: ...`; a cause whose text the
    /// message already carries is not repeated.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
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
}
