//! The running daemon: builds the poll plan from a configuration, starts the poller and the
//! HTTP server, and applies config reloads (SIGHUP or `POST /-/reload`).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::{Config, ConfigError, ProcessEnvironment};
use crate::demo::DemoApi;
use crate::elements::build_client;
use crate::elements::transport::TransportError;
use crate::metrics::{BuildInfo, Metrics};
use crate::polling::discovery;
use crate::polling::persistence::{self, Loaded, Origin, Persistence, PersistenceError, Saved};
use crate::polling::plan::{planner::Planner, Plan};
use crate::polling::poller::{self, Poller};
use crate::polling::status::Status;
use crate::server::web_config::{WebConfigError, WebSettings};
use crate::server::{self, AppState, ReloadRequest, ServeLimits, ServerError};

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
}

/// The long-running tasks of the daemon, by name: the first to end before shutdown (or to
/// panic at any time) is an error, so a dead poller never leaves a server up that serves
/// frozen data with exit status 0 later.
#[derive(Default)]
struct Tasks {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// The next task to end, as the error it is.
    async fn next_ended(&mut self) -> Option<AppError> {
        let (id, panic) = match self.set.join_next_with_id().await? {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), Some(e)),
        };
        Some(AppError::TaskEnded {
            task: self.names.get(&id).copied().unwrap_or("unnamed"),
            source: panic,
        })
    }

    /// Waits for every task after the stop signal; the first panic among them is an error.
    async fn join_all(&mut self) -> Result<(), AppError> {
        let mut first = Ok(());
        while let Some(ended) = self.next_ended().await {
            if matches!(
                &ended,
                AppError::TaskEnded {
                    source: Some(_),
                    ..
                }
            ) && first.is_ok()
            {
                first = Err(ended);
            }
        }
        first
    }
}

/// What `--once` found: the exposition after one poll of every target, and the targets whose
/// poll failed.
#[derive(Debug)]
pub struct OncePass {
    /// The text exposition, as `/metrics` would serve it.
    pub exposition: Vec<u8>,
    /// One line per failed target: customer name and id, tenant type, cause.
    pub failures: Vec<String>,
}

/// The daemon's tasks' stop signal: `true` on the sender completes every [`Stop::stopped`].
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    fn new() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }

    /// Completes once the stop is sent (or its sender is gone).
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// What both the daemon and `--once` start from.
struct Setup {
    build: BuildInfo,
    metrics: Arc<Metrics>,
    /// The simulated API of `--demo`, kept running while it is polled.
    demo: Option<DemoApi>,
    config: Config,
}

/// The self-metrics, the demo API (with `--demo`) and the config (the demo's, or the file's,
/// whose warnings are logged).
async fn setup(options: &Options) -> Result<Setup, AppError> {
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

/// `--once`: loads the config (or starts the demo API), fetches the customer list when
/// discovery is on, polls every target once at the configured limits and returns what a
/// scrape would then see. Binds no port, writes no state.
pub async fn once(options: Options) -> Result<OncePass, AppError> {
    let Setup {
        metrics,
        demo: _demo,
        config,
        ..
    } = setup(&options).await?;
    let client = build_client(&config.elements, &metrics).map_err(AppError::Client)?;
    let (planner, plan_rx) = Planner::new(
        config,
        client,
        options.shard,
        options.total_shards,
        metrics.clone(),
        None,
    );
    let (stop_tx, stop) = Stop::new();
    let stopped = || stop.stopped();
    // The customer list first (one attempt), then one pass over the plan it gives.
    let (first_tx, first_rx) = oneshot::channel();
    let discovery = tokio::spawn(discovery::run(planner.clone(), first_tx, stopped()));
    let _ = first_rx.await;
    let mut failures = Vec::new();
    let plan = planner.plan();
    if !plan.complete {
        failures.push("the customer list (discovery) could not be fetched; see the log".into());
    }
    let status = Arc::new(ArcSwap::from_pointee(Status::pending(&plan)));
    let mut poller = Poller::new(plan.clone(), metrics.clone(), status.clone(), None, None).await;
    if !plan.targets.is_empty() {
        let (polled_tx, polled_rx) = oneshot::channel();
        poller.when_every_target_polled(polled_tx);
        let polling = tokio::spawn(poller::run(poller, plan_rx, async move {
            let _ = polled_rx.await;
        }));
        if let Err(e) = polling.await {
            let _ = stop_tx.send(true);
            return Err(AppError::TaskEnded {
                task: "poller",
                source: Some(e),
            });
        }
    }
    let _ = stop_tx.send(true);
    let _ = discovery.await;
    for t in &status.load().targets {
        if let Some(cause) = &t.last_error {
            failures.push(format!(
                "customer {} ({}) {}: {cause}",
                t.customer_name, t.customer_id, t.tenant_type
            ));
        }
    }
    let exposition = metrics.scrape(false, crate::metrics::Format::Text).concat();
    Ok(OncePass {
        exposition,
        failures,
    })
}

/// Makes sure the persistence file can be written (else a start-up error), and reads what it
/// kept for the API and client of `elements`. A file that cannot be used is moved aside, and
/// one written for another API or client is left for the next write to replace, each with a
/// warning: the exporter then starts as if it had none.
async fn restore_state(
    p: &Persistence,
    elements: &crate::config::ElementsConfig,
) -> Result<Option<Saved>, AppError> {
    let path = p.path.clone();
    let origin = Origin::of(elements);
    let reading = tokio::task::spawn_blocking(move || {
        persistence::prepare(&path)?;
        Ok::<_, PersistenceError>(persistence::load(&path, &origin, SystemTime::now()))
    })
    .await;
    let file = p.path.display().to_string();
    let moved = |to: Option<Result<std::path::PathBuf, String>>| match to {
        Some(Ok(to)) => to.display().to_string(),
        Some(Err(e)) => format!("(cannot move it aside: {e})"),
        None => String::new(),
    };
    let reading = match reading {
        Ok(result) => result?,
        Err(e) => {
            tracing::warn!(file, error = %e, "cannot read the persistence file; starting without it");
            return Ok(None);
        }
    };
    if let Some(to) = reading.interrupted {
        tracing::warn!(
            file,
            moved_to = moved(Some(to)),
            "an earlier start stopped while reading the persistence file (a crash or a kill); \
             that file is not read again"
        );
    }
    match reading.loaded {
        Loaded::Missing => {
            tracing::info!(
                file,
                "no persistence file yet; it is written after the first polls"
            );
            Ok(None)
        }
        Loaded::Restored(saved) => Ok(Some(saved)),
        Loaded::Foreign(differs) => {
            tracing::warn!(
                file,
                differs,
                "the persistence file was written for another API or client; starting without it"
            );
            Ok(None)
        }
        Loaded::Bad(cause) => {
            tracing::warn!(
                file,
                cause,
                moved_to = moved(reading.moved_to),
                "cannot use the persistence file; starting without it"
            );
            Ok(None)
        }
    }
}

/// Runs the exporter until `shutdown` completes, listening on `options.listen_addresses`.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    start(options, None, shutdown).await
}

/// Like [`run`], on listeners the caller bound (tests bind `127.0.0.1:0` and read the port);
/// `options.listen_addresses` is then only what the start-up log shows.
pub async fn run_on(
    options: Options,
    listeners: Vec<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    start(options, Some(listeners), shutdown).await
}

async fn start(
    options: Options,
    listeners: Option<Vec<tokio::net::TcpListener>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let booted = bootstrap(options, listeners).await?;
    let (stop_tx, stop) = Stop::new();
    let running = spawn(booted, &stop);
    supervise(running, stop_tx, &stop, shutdown).await
}

/// What start-up builds before any task runs.
struct Booted {
    options: Options,
    build: BuildInfo,
    metrics: Arc<Metrics>,
    /// The simulated API of `--demo`, kept running while it is polled.
    demo: Option<DemoApi>,
    web: Arc<ArcSwap<WebSettings>>,
    listeners: Vec<tokio::net::TcpListener>,
    planner: Arc<Planner>,
    plans: watch::Receiver<Arc<Plan>>,
    status: Arc<ArcSwap<Status>>,
    poller: Poller,
}

/// Loads the config, the state file and the web config, binds the listeners, builds the
/// client, the planner and the poller (with what was restored), and logs "starting".
async fn bootstrap(
    options: Options,
    listeners: Option<Vec<tokio::net::TcpListener>>,
) -> Result<Booted, AppError> {
    let Setup {
        build,
        metrics,
        demo,
        config,
    } = setup(&options).await?;
    metrics.config_loaded(SystemTime::now());
    let restored = match &options.persistence {
        Some(p) => restore_state(p, &config.elements).await?,
        None => None,
    };
    if demo.is_some() && restored.is_some() {
        // The simulated API counts its story in polls of this process.
        tracing::info!(
            "demo mode: the restored series are served until the first polls, but the \
             simulated API starts its story over (its tenants run out of seats again as on a \
             first start, so the demo's seat alerts may resolve and fire again)"
        );
    }
    let web = Arc::new(ArcSwap::from_pointee(load_web(&options).await?));
    let listeners = match listeners {
        Some(listeners) => listeners,
        None => server::bind(&options.listen_addresses).await?,
    };
    let scheme = if web.load().tls.is_some() {
        "https"
    } else {
        "http"
    };
    for addr in listeners.iter().filter_map(|l| l.local_addr().ok()) {
        tracing::info!(address = %addr, scheme, "listening");
    }
    let client = build_client(&config.elements, &metrics).map_err(AppError::Client)?;
    tracing::info!(
        version = build.version,
        revision = build.revision,
        config_file = %if demo.is_some() {
            "(demo)".to_owned()
        } else {
            options.config_file.display().to_string()
        },
        listen_addresses = %options.listen_addresses.join(","),
        customers = config.customers.len(),
        discovery = config.discovery.is_some(),
        shard = options.shard,
        total_shards = options.total_shards,
        interval = %crate::config::format_duration(config.poll.interval),
        "starting"
    );
    let (planner, plans) = Planner::new(
        config,
        client,
        options.shard,
        options.total_shards,
        metrics.clone(),
        restored.as_ref().and_then(|s| s.customers.clone()),
    );
    // Readiness and the landing page know every listed target before the first poll, and
    // the first scrape sees what was restored.
    let status = Arc::new(ArcSwap::from_pointee(Status::pending(&planner.plan())));
    let poller = Poller::new(
        planner.plan(),
        metrics.clone(),
        status.clone(),
        options.persistence.clone(),
        restored,
    )
    .await;
    Ok(Booted {
        options,
        build,
        metrics,
        demo,
        web,
        listeners,
        planner,
        plans,
        status,
        poller,
    })
}

/// The daemon's tasks once spawned, and the poller until it may start.
struct Running {
    tasks: Tasks,
    /// Not started yet: with discovery on, it waits for the first customer list.
    poller: Option<Poller>,
    plans: watch::Receiver<Arc<Plan>>,
    /// Told when the first customer list fetch is over, successful or not.
    first_list: oneshot::Receiver<()>,
    _demo: Option<DemoApi>,
}

/// Spawns the reloader (not in the demo), the HTTP server, discovery and, when every target
/// is already known (no discovery, or a customer list restored), the poller.
fn spawn(booted: Booted, stop: &Stop) -> Running {
    let Booted {
        options,
        build,
        metrics,
        demo,
        web,
        listeners,
        planner,
        plans,
        status,
        poller,
    } = booted;
    let mut tasks = Tasks::default();
    let reload = if demo.is_none() {
        let (tx, rx) = mpsc::channel::<ReloadRequest>(4);
        spawn_sighup(Some(tx.clone()));
        tasks.spawn(
            "reloader",
            reloader(
                rx,
                options.clone(),
                metrics.clone(),
                planner.clone(),
                web.clone(),
                stop.stopped(),
            ),
        );
        Some(tx)
    } else {
        // SIGHUP must not kill the demo (its default action): it says why nothing reloads.
        spawn_sighup(None);
        None
    };
    let state = Arc::new(AppState {
        metrics,
        status,
        telemetry_path: options.telemetry_path.clone(),
        reload,
        build,
        demo: demo.is_some(),
        web,
    });
    tasks.spawn(
        "HTTP server",
        server::serve(listeners, state, options.limits, stop.stopped()),
    );
    // With discovery on, the first poll waits for the first customer list (or its failure:
    // then the listed customers run alone until a list arrives).
    let (first_tx, first_list) = oneshot::channel();
    let complete = planner.plan().complete;
    tasks.spawn(
        "discovery",
        discovery::run(planner, first_tx, stop.stopped()),
    );
    let mut poller = Some(poller);
    if complete {
        if let Some(p) = poller.take() {
            tasks.spawn("poller", poller::run(p, plans.clone(), stop.stopped()));
        }
    }
    Running {
        tasks,
        poller,
        plans,
        first_list,
        _demo: demo,
    }
}

/// Starts the poller when the first customer list is in, and runs until `shutdown` or until
/// a task ends (a failure: the error is returned); then stops every task and waits for them.
async fn supervise(
    running: Running,
    stop_tx: watch::Sender<bool>,
    stop: &Stop,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let Running {
        mut tasks,
        mut poller,
        plans,
        mut first_list,
        _demo,
    } = running;
    tokio::pin!(shutdown);
    let ended = loop {
        tokio::select! {
            _ = &mut shutdown => break None,
            ended = tasks.next_ended() => break ended,
            _ = &mut first_list, if poller.is_some() => {
                if let Some(p) = poller.take() {
                    tasks.spawn("poller", poller::run(p, plans.clone(), stop.stopped()));
                }
            }
        }
    };
    match &ended {
        None => tracing::info!("shutting down"),
        Some(e) => tracing::error!(error = %e, "stopping"),
    }
    let _ = stop_tx.send(true);
    let rest = tasks.join_all().await;
    match ended {
        Some(e) => Err(e),
        None => rest,
    }
}

/// Reads and validates the config file off the async runtime, so that a slow or hostile file
/// never stalls scrapes and health checks.
async fn load_config(path: PathBuf) -> Result<Config, ConfigError> {
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
async fn load_web(options: &Options) -> Result<WebSettings, WebConfigError> {
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

fn warn_about(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!(warning = %warning, "config");
    }
}

/// Applies reload requests one at a time: a valid new file replaces the plan, an invalid one
/// is refused and the current plan stays.
async fn reloader(
    mut requests: mpsc::Receiver<ReloadRequest>,
    options: Options,
    metrics: Arc<Metrics>,
    planner: Arc<Planner>,
    web: Arc<ArcSwap<WebSettings>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let answer = tokio::select! {
            _ = &mut shutdown => return,
            answer = requests.recv() => match answer {
                Some(answer) => answer,
                None => return,
            },
        };
        // Reloads asked for while one runs are answered by the next one: a storm of requests
        // reads the files once or twice, not once per request.
        let mut answers = vec![answer];
        while let Ok(more) = requests.try_recv() {
            answers.push(more);
        }
        // Both files must be valid for either to apply.
        // Shutdown never waits for a read (a hung mount gives up only after READ_TIMEOUT).
        let (config, web_settings) = tokio::select! {
            _ = &mut shutdown => return,
            loaded = async {
                (load_config(options.config_file.clone()).await, load_web(&options).await)
            } => loaded,
        };
        let result = config
            .map_err(|e| {
                format!(
                    "{}: {}",
                    options.config_file.display(),
                    e.problems().join("; ")
                )
            })
            .and_then(|config| {
                warn_about(&config);
                // Unchanged API settings keep the running client: its token, rate limit and
                // 429 throttle carry over, and polls still in flight share them.
                let client = match planner.client_for(&config) {
                    Some(client) => client,
                    None => build_client(&config.elements, &metrics)
                        .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
                };
                let settings = web_settings.map_err(|e| e.to_string())?;
                Ok((config, client, settings))
            });
        match result {
            Ok((config, client, settings)) => {
                // New connections use the re-read certificates; open ones keep theirs.
                web.store(Arc::new(settings));
                planner.apply_config(config, client);
                tracing::info!(targets = planner.plan().targets.len(), "config reloaded");
                metrics.config_loaded(SystemTime::now());
                for answer in answers {
                    let _ = answer.send(Ok(()));
                }
            }
            Err(reason) => {
                tracing::error!(error = %reason, "config reload failed; keeping the current config");
                metrics.config_failed();
                for answer in answers {
                    let _ = answer.send(Err(reason.clone()));
                }
            }
        }
    }
}

/// Turns SIGHUP into reload requests on `tx`; without one (demo mode), logs that there is
/// nothing to reload.
#[cfg(unix)]
fn spawn_sighup(tx: Option<mpsc::Sender<ReloadRequest>>) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let Some(tx) = &tx else {
                        tracing::warn!(
                            "SIGHUP received; config reload is not available in demo mode"
                        );
                        continue;
                    };
                    tracing::info!("SIGHUP received; reloading the config");
                    let (answer, _) = tokio::sync::oneshot::channel();
                    if tx.send(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload")
        }
    }
}

#[cfg(not(unix))]
fn spawn_sighup(_tx: Option<mpsc::Sender<ReloadRequest>>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_or_panics_before_shutdown_is_an_error_naming_it() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let until_stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let mut tasks = Tasks::default();
        tasks.spawn("HTTP server", until_stopped());
        tasks.spawn("poller", async { panic!("poller bug") });
        let ended = tasks.next_ended().await.unwrap();
        assert_eq!(ended.to_string(), "the poller task panicked");
        assert!(std::error::Error::source(&ended).is_some());
        let _ = stop_tx.send(true);
        assert!(tasks.join_all().await.is_ok(), "the server stopped cleanly");

        let mut tasks = Tasks::default();
        tasks.spawn("discovery", async {});
        let ended = tasks.next_ended().await.unwrap();
        assert_eq!(ended.to_string(), "the discovery task ended unexpectedly");

        // A panic while stopping is an error too.
        let mut tasks = Tasks::default();
        tasks.spawn("reloader", async {
            tokio::task::yield_now().await;
            panic!("late")
        });
        assert!(matches!(
            tasks.join_all().await,
            Err(AppError::TaskEnded {
                task: "reloader",
                source: Some(_)
            })
        ));
    }

    #[tokio::test]
    async fn an_internal_failure_exits_3_which_the_systemd_unit_restarts() {
        let mut tasks = Tasks::default();
        tasks.spawn("poller", async { panic!("poller bug") });
        let ended = tasks.next_ended().await.unwrap();
        assert_eq!(ended.exit_code(), 3);
        let config = AppError::Config(ConfigError::Invalid(vec!["x".into()]));
        assert_eq!(config.exit_code(), 1);
        // The unit restarts on failure except for the operator's own mistakes (1).
        let unit = include_str!("../deploy/systemd/avepoint-elements-exporter.service");
        assert!(unit.contains("Restart=on-failure"));
        let prevented: Vec<&str> = unit
            .lines()
            .filter_map(|l| l.strip_prefix("RestartPreventExitStatus="))
            .flat_map(|v| v.split_whitespace())
            .collect();
        assert_eq!(prevented, ["1"]);
        let docs = include_str!("../docs/configuration.md");
        assert!(docs.contains("3 for an internal failure"));
    }
}
