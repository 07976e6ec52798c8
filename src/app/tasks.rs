//! The daemon's long-running tasks: spawned by name, supervised until shutdown or until one
//! ends (a failure), and stopped together by one signal.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::error::AppError;
use crate::demo::DemoApi;
use crate::polling::plan::Plan;
use crate::polling::poller::{self, Poller};

/// The long-running tasks of the daemon, by name: the first to end before shutdown (or to
/// panic at any time) is an error, so a dead poller never leaves a server up that serves
/// frozen data with exit status 0 later.
#[derive(Default)]
pub(super) struct Tasks {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    pub(super) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// The next task to end, as the error it is.
    pub(super) async fn next_ended(&mut self) -> Option<AppError> {
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
    pub(super) async fn join_all(&mut self) -> Result<(), AppError> {
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

/// The daemon's tasks' stop signal: `true` on the sender completes every [`Stop::stopped`].
#[derive(Clone)]
pub(super) struct Stop(watch::Receiver<bool>);

impl Stop {
    pub(super) fn new() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }

    /// Completes once the stop is sent (or its sender is gone).
    pub(super) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// The daemon's tasks once spawned, and the poller until it may start.
pub(super) struct Running {
    pub(super) tasks: Tasks,
    /// Not started yet: with discovery on, it waits for the first customer list.
    pub(super) poller: Option<Poller>,
    pub(super) plans: watch::Receiver<Arc<Plan>>,
    /// Told when the first customer list fetch is over, successful or not.
    pub(super) first_list: oneshot::Receiver<()>,
    pub(super) _demo: Option<DemoApi>,
}

/// Starts the poller when the first customer list is in, and runs until `shutdown` or until
/// a task ends (a failure: the error is returned); then stops every task and waits for them.
pub(super) async fn supervise(
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
