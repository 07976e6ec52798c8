//! What the daemon and `--once` are both built from: the self-metrics, the demo API and the
//! config ([`setup`]), and the polling pipeline of that config ([`Pipeline`]: planner,
//! discovery, poller), wired the same way for both.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{oneshot, watch};

use super::error::AppError;
use super::options::Options;
use super::tasks::Stop;
use crate::config::{Config, ConfigError, ProcessEnvironment};
use crate::demo::DemoApi;
use crate::elements::client::Client;
use crate::metrics::{BuildInfo, Metrics};
use crate::polling::discovery;
use crate::polling::persistence::{Persistence, Saved};
use crate::polling::plan::{planner::Planner, Plan};
use crate::polling::poller::Poller;
use crate::polling::status::Status;
use crate::server::web_config::{WebConfigError, WebSettings};

/// What both the daemon and `--once` start from.
pub(super) struct Setup {
    pub(super) build: BuildInfo,
    pub(super) metrics: Arc<Metrics>,
    /// The simulated API of `--demo`, kept running while it is polled.
    pub(super) demo: Option<DemoApi>,
    pub(super) config: Config,
}

/// The self-metrics, the demo API (with `--demo`) and the config (the demo's, or the file's,
/// whose warnings are logged).
pub(super) async fn setup(options: &Options) -> Result<Setup, AppError> {
    let build = BuildInfo::current();
    let metrics = Arc::new(Metrics::new(&build).map_err(AppError::Metrics)?);
    metrics.set_shard(options.shard, options.total_shards);
    // A small, known label set: every cause exists at 0, so increase() sees the first error.
    for cause in crate::elements::client::CAUSES
        .into_iter()
        .chain([crate::polling::discovery::SHRUNK])
    {
        metrics.polling().discovery_cause(cause);
    }
    for reason in crate::metrics::SKIP_REASONS {
        metrics.polling().records_skipped(reason, 0);
    }
    let demo = if options.demo {
        let api = DemoApi::start().await.map_err(AppError::Demo)?;
        tracing::info!(api = %api.addr, "demo mode: polling the built-in simulated Elements API");
        Some(api)
    } else {
        None
    };
    let config = match &demo {
        Some(api) => api.config()?,
        None => load_config(options.config_file.clone()).await?,
    };
    if demo.is_none() {
        warn_about(&config);
    }
    Ok(Setup {
        build,
        metrics,
        demo,
        config,
    })
}

/// The polling pipeline of one config: the planner with its first plan, and the discovery
/// loop that feeds it customer lists. [`Pipeline::poller`] adds the poller of the plan of the
/// moment: the daemon asks for it at once, `--once` after the first customer list.
pub(super) struct Pipeline {
    pub(super) planner: Arc<Planner>,
    /// The plans the planner publishes, for the poller.
    pub(super) plans: watch::Receiver<Arc<Plan>>,
    /// The discovery loop, to be spawned: fetches the customer list while discovery is on,
    /// until the stop.
    pub(super) discovery: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
    /// Told when the first customer-list fetch is over, successful or not (at once without
    /// discovery).
    pub(super) first_list: oneshot::Receiver<()>,
}

impl Pipeline {
    /// The planner of `config` and `client` for this instance's shard, starting from the
    /// customer list `restored` kept (while discovery is on), and its discovery loop, which
    /// ends on `stop`.
    pub(super) fn new(
        config: Config,
        client: Arc<Client>,
        options: &Options,
        metrics: &Arc<Metrics>,
        restored: Option<&Saved>,
        stop: &Stop,
    ) -> Pipeline {
        let (planner, plans) = Planner::new(
            config,
            client,
            options.shard,
            options.total_shards,
            metrics.clone(),
            restored.and_then(|s| s.customers.clone()),
        );
        let (first_tx, first_list) = oneshot::channel();
        let discovery = Box::pin(discovery::run(planner.clone(), first_tx, stop.stopped()));
        Pipeline {
            planner,
            plans,
            discovery,
            first_list,
        }
    }

    /// The poller of `plan`, one of this pipeline's (with what was `restored`, writing the
    /// state file of `persistence`), and the status it publishes, which starts with every
    /// listed target pending: readiness and the landing page know them before the first poll.
    pub(super) async fn poller(
        plan: Arc<Plan>,
        metrics: &Arc<Metrics>,
        persistence: Option<Persistence>,
        restored: Option<Saved>,
    ) -> (Arc<ArcSwap<Status>>, Poller) {
        let status = Arc::new(ArcSwap::from_pointee(Status::pending(&plan)));
        let poller =
            Poller::new(plan, metrics.clone(), status.clone(), persistence, restored).await;
        (status, poller)
    }
}

/// Reads and validates the config file off the async runtime, so that a slow or hostile file
/// never stalls scrapes and health checks.
pub(super) async fn load_config(path: PathBuf) -> Result<Config, ConfigError> {
    let shown = path.clone();
    tokio::task::spawn_blocking(move || Config::load(&path, &ProcessEnvironment))
        .await
        .unwrap_or_else(|e| {
            // The reading thread panicked or was cancelled: a read error, with the cause kept.
            Err(ConfigError::Read {
                path: shown,
                source: std::io::Error::other(e),
            })
        })
}

/// The web config of `--web.config.file`, or plain HTTP without auth.
/// Read off the runtime: its files and the bcrypt work of its users take time.
pub(super) async fn load_web(options: &Options) -> Result<WebSettings, WebConfigError> {
    match options.web_config_file.clone() {
        Some(path) => {
            let p = path.clone();
            tokio::task::spawn_blocking(move || WebSettings::load(&p))
                .await
                .unwrap_or_else(|e| {
                    Err(WebConfigError::Read {
                        path,
                        source: std::io::Error::other(e.to_string()),
                    })
                })
        }
        None => Ok(WebSettings::default()),
    }
}

/// Logs the config's warnings (see `--check-config`).
pub(super) fn warn_about(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!(warning = %warning, "config");
    }
}
