//! The daemon's start-up: what it builds before any task runs ([`bootstrap`]), then the
//! tasks it spawns ([`spawn`]), which [`super::tasks::supervise`] runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::AppError;
use super::options::Options;
use super::reload::{reloader, spawn_sighup};
use super::restore::restore_state;
use super::tasks::{Running, Stop, Tasks};
use super::wiring::{load_web, setup, Pipeline, Setup};
use crate::demo::DemoApi;
use crate::elements::build_client;
use crate::metrics::{BuildInfo, Metrics};
use crate::polling::plan::{planner::Planner, Plan};
use crate::polling::poller::{self, Poller};
use crate::polling::status::Status;
use crate::server::web_config::WebSettings;
use crate::server::{self, AppState, ReloadRequest};

/// What start-up builds before any task runs.
pub(super) struct Booted {
    options: Options,
    build: BuildInfo,
    metrics: Arc<Metrics>,
    /// The simulated API of `--demo`, kept running while it is polled.
    demo: Option<DemoApi>,
    web: Arc<ArcSwap<WebSettings>>,
    listeners: Vec<tokio::net::TcpListener>,
    planner: Arc<Planner>,
    plans: watch::Receiver<Arc<Plan>>,
    discovery: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
    first_list: oneshot::Receiver<()>,
    status: Arc<ArcSwap<Status>>,
    poller: Poller,
}

/// Loads the config, the state file and the web config, binds the listeners, builds the
/// client and the polling pipeline (with what was restored; its tasks end on `stop`), and
/// logs "starting".
pub(super) async fn bootstrap(
    options: Options,
    listeners: Option<Vec<tokio::net::TcpListener>>,
    stop: &Stop,
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
    let Pipeline {
        planner,
        plans,
        discovery,
        first_list,
    } = Pipeline::new(config, client, &options, &metrics, restored.as_ref(), stop);
    // The first scrape sees what was restored.
    let (status, poller) = Pipeline::poller(
        planner.plan(),
        &metrics,
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
        discovery,
        first_list,
        status,
        poller,
    })
}

/// Spawns the reloader (not in the demo), the HTTP server, discovery and, when every target
/// is already known (no discovery, or a customer list restored), the poller.
pub(super) fn spawn(booted: Booted, stop: &Stop) -> Running {
    let Booted {
        options,
        build,
        metrics,
        demo,
        web,
        listeners,
        planner,
        plans,
        discovery,
        first_list,
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
    let complete = planner.plan().complete;
    tasks.spawn("discovery", discovery);
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
