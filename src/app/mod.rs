//! The running daemon: builds the poll plan from a configuration, starts the poller and the
//! HTTP server, and applies config reloads (SIGHUP or `POST /-/reload`); and `--once`.
//!
//! - `cli`: the command line: its flags ([`Cli`]), what they ask for ([`Mode`]), their checks
//!   and the [`Options`] they give; `check`: `--check-config` ([`check_config`]).
//! - `options`: what the command line decides ([`Options`]).
//! - `error`: why the daemon could not start or stopped, with the exit status ([`AppError`]).
//! - `wiring`: what the daemon and `--once` are both built from: the self-metrics, the demo
//!   API and the config, then the polling pipeline (planner, discovery, poller) of that
//!   config; the config and web-config loaders.
//! - `restore`: the persistence file read at start.
//! - `daemon`: the daemon's start-up and the tasks it spawns.
//! - `tasks`: the supervised tasks, their stop signal and the supervision loop.
//! - `reload`: the reloader and the `SIGHUP` listener.

mod check;
mod cli;
mod daemon;
mod error;
mod options;
mod reload;
mod restore;
mod tasks;
mod wiring;

#[cfg(test)]
mod tests;

use std::future::Future;

use tokio::sync::oneshot;

pub use check::{check_config, check_demo_config, Checked};
pub use cli::{Cli, Mode};
pub use error::AppError;
pub use options::Options;

use crate::elements::build_client;
use crate::polling::poller;
use tasks::Stop;
use wiring::{setup, Pipeline, Setup};

/// What `--once` found: the exposition after one poll of every target, and the targets whose
/// poll failed.
#[derive(Debug)]
pub struct OncePass {
    /// The text exposition, as `/metrics` would serve it.
    pub exposition: Vec<u8>,
    /// One line per failed target: customer name and id, tenant type, cause.
    pub failures: Vec<String>,
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
    let (stop_tx, stop) = Stop::new();
    let Pipeline {
        planner,
        plans,
        discovery,
        first_list,
    } = Pipeline::new(config, client, &options, &metrics, None, &stop);
    // The customer list first (one attempt), then one pass over the plan it gives.
    let discovery = tokio::spawn(discovery);
    let _ = first_list.await;
    let mut failures = Vec::new();
    let plan = planner.plan();
    if !plan.complete {
        failures.push("the customer list (discovery) could not be fetched; see the log".into());
    }
    let (status, mut poller) = Pipeline::poller(plan.clone(), &metrics, None, None).await;
    if !plan.targets.is_empty() {
        let (polled_tx, polled_rx) = oneshot::channel();
        poller.when_every_target_polled(polled_tx);
        let polling = tokio::spawn(poller::run(poller, plans, async move {
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
    let (stop_tx, stop) = Stop::new();
    let booted = daemon::bootstrap(options, listeners, &stop).await?;
    let running = daemon::spawn(booted, &stop);
    tasks::supervise(running, stop_tx, &stop, shutdown).await
}
