//! Config reload: the reloader task that applies `SIGHUP` and `POST /-/reload`, and the
//! `SIGHUP` listener that turns the signal into a request.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::options::Options;
use super::wiring::{load_config, load_web, warn_about};
use crate::elements::build_client;
use crate::metrics::Metrics;
use crate::polling::plan::planner::Planner;
use crate::server::web_config::WebSettings;
use crate::server::ReloadRequest;

/// Applies reload requests one at a time: a valid new file replaces the plan, an invalid one
/// is refused and the current plan stays.
pub(super) async fn reloader(
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
pub(super) fn spawn_sighup(tx: Option<mpsc::Sender<ReloadRequest>>) {
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
pub(super) fn spawn_sighup(_tx: Option<mpsc::Sender<ReloadRequest>>) {}
