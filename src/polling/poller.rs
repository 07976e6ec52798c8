//! The poll loop: starts each target when the [`Schedule`] says it is due, records what its
//! poll brought, and publishes snapshots of the seat series and the landing-page status.
//!
//! Polls run as tasks, at most twice `max_concurrency` targets at once (the transport bounds
//! the requests, and serves them in the order the targets started). Nothing is cancelled for
//! being late: a poll ends when its requests do. Results are published in batches, at most
//! about once a second while polls keep finishing, and when the poller goes idle as soon as
//! the last publish's cost allows (publishing stays under 5 % of a core).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::domain::TargetKey;
use crate::elements::client::{ApiError, Fetched, TargetRequest};
use crate::elements::slots::Priority;
use crate::metrics::{render_snapshot, Metrics, SeatSeries};
use crate::polling::persistence::{Persistence, Saved, Written};
use crate::polling::plan::{Plan, Target};
use crate::polling::schedule::{Cadence, Schedule};
use crate::polling::seat_health::SeatHealth;
use crate::polling::status::Status;

mod failures;
mod gather;
mod saving;
mod state;
#[cfg(test)]
mod tests;

use failures::{FailureLog, Topic};
use gather::{gather, log_dropped, Summary};
use saving::{restore, saved, Saving};
use state::TargetState;

/// One finished poll.
struct Done {
    key: TargetKey,
    /// What was asked, and of whom ([`crate::elements::client::Client::source`]): a result
    /// for another request or source than the target's current one is not its data.
    request: TargetRequest,
    source: String,
    started: Instant,
    took: Duration,
    result: Result<Fetched, ApiError>,
}

/// How often results are published at most while polls keep finishing; at fleet scale a
/// publish (deflating tens of megabytes) is kept below about 5 % of one core.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
const PUBLISH_SHARE: u32 = 20;

/// Utilization above which the exporter warns, and below which it says it keeps up again.
const BEHIND: f64 = 1.0;
const CAUGHT_UP: f64 = 0.9;

/// Runs the poll loop of `poller` until `shutdown` completes, then writes the persistence
/// file a last time. A new plan on `plans` (config reload, discovery refresh) applies at
/// once: new targets are polled at once, removed ones vanish, the others keep their schedule
/// and last-good series.
pub async fn run(
    mut poller: Poller,
    mut plans: watch::Receiver<Arc<Plan>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let plan = plans.borrow_and_update().clone();
    if !Arc::ptr_eq(&plan, &poller.plan) {
        poller.apply_plan(plan).await;
    }
    let mut running: JoinSet<Done> = JoinSet::new();
    let mut writing: Option<JoinHandle<std::io::Result<Written>>> = None;
    let mut plans_open = true;
    loop {
        poller.start_due(&mut running);
        let wake = poller
            .schedule
            .next_wake()
            .filter(|_| running.len() < poller.window());
        let publish_at = poller.publish_at(running.is_empty());
        // With nothing to publish, failures waiting for their line are logged on their own
        // (a publish would flush them too, but renders the whole fleet).
        let log_at = publish_at
            .is_none()
            .then(|| poller.failures.next_due(poller.plan.poll.interval))
            .flatten();
        let write_at = poller.saving.write_at(writing.is_some());
        tokio::select! {
            _ = &mut shutdown => {
                poller.final_write(writing.take()).await;
                return;
            }
            changed = plans.changed(), if plans_open => {
                match changed {
                    Ok(()) => {
                        let plan = plans.borrow_and_update().clone();
                        poller.apply_plan(plan).await;
                    }
                    // The sender is gone: keep the current plan.
                    Err(_) => plans_open = false,
                }
            }
            Some(joined) = running.join_next_with_id() => match joined {
                Ok((id, done)) => {
                    poller.tasks.running.remove(&id);
                    poller.finished(done);
                }
                Err(e) => poller.crashed(e),
            },
            _ = sleep_until_some(wake) => {}
            _ = sleep_until_some(publish_at) => poller.publish().await,
            _ = sleep_until_some(log_at) => poller.log_failures(),
            _ = sleep_until_some(write_at) => writing = poller.start_write(),
            written = join_some(&mut writing) => {
                writing = None;
                poller.saving.written(written, &poller.metrics);
            }
        }
    }
}

/// Waits for the task in `handle`, forever if there is none.
async fn join_some<T>(handle: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The poll loop's state: every target's last results and schedule.
pub struct Poller {
    plan: Arc<Plan>,
    targets: HashMap<TargetKey, Target>,
    schedule: Schedule,
    states: HashMap<TargetKey, TargetState>,
    metrics: Arc<Metrics>,
    status: Arc<ArcSwap<Status>>,
    tasks: Tasks,
    /// Target polls completed since start.
    polls: u64,
    pacing: Pacing,
    progress: Progress,
    /// Failed polls waiting for their line in the log.
    failures: FailureLog,
    saving: Saving,
}

/// The running poll tasks.
#[derive(Default)]
struct Tasks {
    /// Targets started so far: the priority of the next one.
    started: u64,
    /// The target and start of every running poll task, to account for one that panics.
    running: HashMap<tokio::task::Id, (TargetKey, Instant)>,
}

/// When results are published: batched while polls keep finishing, at a bounded share of a
/// core (see [`Poller::publish_at`]).
struct Pacing {
    /// Results not yet published, and the durations to observe once they are.
    dirty: bool,
    durations: Vec<Duration>,
    last: Option<Instant>,
    /// Time between publishes while polls keep finishing (see [`PUBLISH_SHARE`]).
    every: Duration,
    /// What the last publish cost, on the real clock (a share of a core is real time, even
    /// when tests and benchmarks pause tokio's clock).
    cost: Duration,
}

/// What the log and `--once` have been told of the poll loop's progress.
struct Progress {
    /// Whether the first pass over every target has been announced.
    first_pass_done: bool,
    started_at: Instant,
    last_summary: Option<Instant>,
    /// Whether the last utilization warning said the interval cannot be kept.
    behind: bool,
    /// Told once every target of the plan has been polled (`--once`).
    every_target_polled: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Poller {
    /// The poller of `plan`, with the targets of `restored` that are still planned and fresh
    /// enough back in place; its first snapshot and status are published before it returns,
    /// so that the first scrape already sees restored series.
    pub async fn new(
        plan: Arc<Plan>,
        metrics: Arc<Metrics>,
        status: Arc<ArcSwap<Status>>,
        persistence: Option<Persistence>,
        restored: Option<Saved>,
    ) -> Poller {
        let now = Instant::now();
        let mut poller = Poller {
            schedule: Schedule::new(plan.poll.interval, now),
            plan: plan.clone(),
            targets: HashMap::new(),
            states: HashMap::new(),
            metrics,
            status,
            tasks: Tasks::default(),
            polls: 0,
            pacing: Pacing {
                dirty: false,
                durations: Vec::new(),
                last: None,
                every: PUBLISH_EVERY,
                cost: Duration::ZERO,
            },
            progress: Progress {
                first_pass_done: false,
                started_at: now,
                last_summary: None,
                behind: false,
                every_target_polled: None,
            },
            failures: FailureLog::default(),
            saving: Saving::new(persistence),
        };
        poller.apply_plan(plan).await;
        if let Some(saved) = restored {
            let now = Instant::now();
            let p = &mut poller;
            if restore(
                saved,
                &p.plan,
                &p.targets,
                &mut p.schedule,
                &mut p.states,
                &p.metrics,
            ) {
                p.progress.first_pass_done = true;
                p.progress.last_summary = Some(now);
            }
            poller.publish().await;
        }
        poller.saving.in_file();
        poller
    }

    /// Tells `tx` once every target of the plan has been polled, successfully or not (at the
    /// publish that shows it).
    pub fn when_every_target_polled(&mut self, tx: tokio::sync::oneshot::Sender<()>) {
        self.progress.every_target_polled = Some(tx);
    }

    /// Starts writing the state file on a blocking thread (when there is one).
    fn start_write(&mut self) -> Option<JoinHandle<std::io::Result<Written>>> {
        let (plan, states, schedule) = (&self.plan, &self.states, &self.schedule);
        self.saving.start_write(|| saved(plan, states, schedule))
    }

    /// At shutdown: writes the state file a last time, within the shutdown budget.
    async fn final_write(&mut self, in_flight: Option<JoinHandle<std::io::Result<Written>>>) {
        let (plan, states, schedule) = (&self.plan, &self.states, &self.schedule);
        self.saving
            .final_write(in_flight, &self.metrics, || saved(plan, states, schedule))
            .await;
    }

    /// Targets polled at once at most.
    fn window(&self) -> usize {
        self.plan.client.max_concurrency().saturating_mul(2).max(1)
    }

    async fn apply_plan(&mut self, plan: Arc<Plan>) {
        let now = Instant::now();
        self.schedule
            .set_intervals(plan.poll.interval, plan.poll.empty_interval);
        self.metrics
            .polling()
            .set_empty_interval(plan.poll.empty_interval);
        // A renamed customer keeps its series: the names come from the new labels.
        let before = std::mem::replace(
            &mut self.targets,
            plan.targets.iter().map(|t| (t.key(), t.clone())).collect(),
        );
        let added = self.schedule.set_targets(self.targets.keys(), now);
        // A target that leaves takes its state, and so every series (its counters too), at
        // the publish below.
        self.states.retain(|k, _| self.targets.contains_key(k));
        self.saving.planned(&self.targets, &before);
        if added > 0 && self.progress.first_pass_done {
            tracing::info!(targets = added, "polling new targets at once");
        }
        // A target is what it fetches: one whose request or source (API, client) changed is
        // new, its old data another answer's.
        let other_source = plan.client.source() != self.plan.client.source();
        let mut renewed = 0;
        for (key, target) in &self.targets {
            if before
                .get(key)
                .is_some_and(|old| other_source || old.request != target.request)
            {
                if let Some(state) = self.states.get_mut(key) {
                    state.renewed = true;
                    state.empty_unconfirmed = false;
                }
                self.schedule.renew(key, now);
                renewed += 1;
            }
        }
        if renewed > 0 {
            tracing::info!(
                targets = renewed,
                "targets now fetch something else (filter, API or client changed); they are \
                 polled at once, and their series replaced by the answer (dropped if it fails)"
            );
        }
        self.plan = plan;
        // Show the new targets (not yet polled) in readiness at once, and drop removed ones.
        self.publish().await;
    }

    fn start_due(&mut self, running: &mut JoinSet<Done>) {
        let now = Instant::now();
        while running.len() < self.window() {
            let Some(start) = self.schedule.start_next(now) else {
                break;
            };
            let Some(target) = self.targets.get(&start.key).cloned() else {
                continue;
            };
            if start.overrun {
                self.metrics.polling().overrun();
            }
            self.tasks.started += 1;
            let priority = Priority(self.tasks.started);
            let client = self.plan.client.clone();
            let key = target.key();
            let span = target.span();
            let poll = async move {
                let started = Instant::now();
                let result = client.fetch_tenants(&target.request, priority).await;
                Done {
                    key: target.key(),
                    request: target.request.clone(),
                    source: client.source().to_owned(),
                    started,
                    took: started.elapsed(),
                    result,
                }
            };
            let handle = running.spawn(tracing::Instrument::instrument(poll, span));
            self.tasks.running.insert(handle.id(), (key, now));
        }
    }

    /// A poll task panicked: a bug. The target is marked down with a message that says so, and
    /// is scheduled again as if its poll had failed.
    fn crashed(&mut self, error: tokio::task::JoinError) {
        let Some((key, started)) = self.tasks.running.remove(&error.id()) else {
            return;
        };
        tracing::error!(
            customer_id = &*key.customer_id,
            tenant_type = key.tenant_type.name(),
            error = %error,
            "a target poll panicked; this is a bug, please report it"
        );
        let now = Instant::now();
        self.schedule.finished(&key, started, now, Cadence::Regular);
        if self.targets.contains_key(&key) {
            let state = self.states.entry(key).or_default();
            state.last_poll = Some(SystemTime::now());
            state.last_error = Some("internal error: the poll panicked".into());
            let since = state.unknown_since.take().unwrap_or(now);
            state.failing_since.get_or_insert(since);
            self.polls += 1;
            self.pacing.dirty = true;
            self.saving.changed();
        }
    }

    fn finished(&mut self, done: Done) {
        let Done {
            key,
            request,
            source,
            started,
            took,
            result,
        } = done;
        let Some(target) = self.targets.get(&key) else {
            // Removed while it ran.
            self.schedule
                .finished(&key, started, Instant::now(), Cadence::Regular);
            return;
        };
        if target.request != request || source != self.plan.client.source() {
            // Asked under a config that fetched something else (filter, API, client): not
            // this target's data. It is due at once (see `apply_plan`).
            self.schedule
                .finished(&key, started, Instant::now(), Cadence::Regular);
            return;
        }
        let state = self.states.entry(key.clone()).or_default();
        let found_nothing = matches!(&result, Ok(f) if f.items.is_empty() && f.invalid.is_empty());
        // A drop to nothing is believed on the second empty answer in a row.
        // (A renewed target's series answer another request: nothing to hold for them.)
        let hold = found_nothing
            && state.seats.tenants() > 0
            && !state.empty_unconfirmed
            && !state.renewed;
        // Found nothing (and believed): come back after the empty interval. A failure is not
        // "empty".
        let cadence = if found_nothing && !hold {
            Cadence::Empty
        } else {
            Cadence::Regular
        };
        self.schedule
            .finished(&key, started, Instant::now(), cadence);
        let span = target.span();
        let _in = span.enter();
        if let Ok(fetched) = &result {
            count_skipped(&self.metrics, fetched);
            if fetched.foreign.count > 0 {
                self.failures.record(
                    Topic::ForeignType,
                    &target.request.customer_id,
                    target.request.tenant_type.name(),
                    format!(
                        "{} records of another tenant type skipped, e.g. {}",
                        fetched.foreign.count,
                        fetched.foreign.example.as_deref().unwrap_or("?")
                    ),
                );
            }
        }
        match result {
            Ok(_) if hold => {
                self.failures.record(
                    Topic::HeldEmpty,
                    &target.request.customer_id,
                    target.request.tenant_type.name(),
                    format!(
                        "answered no tenants after {}; keeping them until the next poll confirms it",
                        state.seats.tenants()
                    ),
                );
                state.hold_empty();
            }
            Ok(fetched) => state.succeeded(&self.metrics, fetched),
            Err(e) => {
                // Logged by cause, together, at the next publish.
                self.failures.record(
                    Topic::Failed(e.cause()),
                    &target.request.customer_id,
                    target.request.tenant_type.name(),
                    e.to_string(),
                );
                if state.renewed {
                    // The series it had answer another request: not last-good data of this
                    // one.
                    state.seats = Arc::new(SeatSeries::empty());
                    state.last_success = None;
                    state.last_tenant_count = None;
                }
                state.failed(&e);
            }
        }
        state.renewed = false;
        state.last_duration = Some(took);
        self.saving.polled(&key);
        self.polls += 1;
        self.pacing.durations.push(took);
        self.pacing.dirty = true;
    }

    /// Logs the failures whose line is due (see `failures::FailureLog::next_due`), with the
    /// targets down as of the last publish.
    fn log_failures(&mut self) {
        self.failures.flush(Instant::now(), self.plan.poll.interval);
    }

    /// When to publish next: never without news; when idle, as soon as the last publish's
    /// cost allows (publishing stays under 1/[`PUBLISH_SHARE`] of a core even when every poll
    /// leaves the poller idle: a fast API, slots spread over the interval); else a second (or
    /// more, when publishing is costly) after the last publish.
    fn publish_at(&self, idle: bool) -> Option<Instant> {
        if !self.pacing.dirty {
            return None;
        }
        let now = Instant::now();
        let nothing_due = self.schedule.next_wake().is_none_or(|t| t > now);
        let every = if idle && nothing_due {
            self.pacing.cost * PUBLISH_SHARE
        } else {
            self.pacing.every
        };
        Some(self.pacing.last.map_or(now, |t| t + every))
    }

    /// Drops stale series, renders the snapshot, then the status, then observes the polls'
    /// durations: a scrape that sees a poll counted also sees its results. Then the
    /// utilization, the failures' log lines and the pass summaries.
    ///
    /// The snapshot is rendered and compressed on the blocking pool (tens of megabytes
    /// deflated at fleet scale would hold up every task of this worker, scrapes included);
    /// the poll loop waits for it, so the order above holds.
    async fn publish(&mut self) {
        let began = Instant::now();
        let cost_clock = std::time::Instant::now();
        let mut gathered = gather(&self.plan, &mut self.states, &self.schedule, began);
        log_dropped(&gathered.dropped, self.plan.poll.stale_after);
        self.metrics.polling().set_empty_targets(gathered.empty);
        let seat_health = SeatHealth::of(gathered.views.iter().map(|v| (&*v.labels, &*v.seats)));
        let views = std::mem::take(&mut gathered.views);
        let snapshot = match tokio::task::spawn_blocking(move || render_snapshot(&views)).await {
            Ok(snapshot) => snapshot,
            // A panic in rendering is a bug: it ends the poll loop as one here would.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => return,
        };
        let series = snapshot.series;
        self.metrics.publish(snapshot);
        let targets = gathered.statuses.len();
        let utilization = self.utilization(targets, gathered.requests);
        self.status.store(Arc::new(Status {
            targets: gathered.statuses,
            polls: self.polls,
            live: true,
            complete: self.plan.complete,
            settled: self.progress.first_pass_done,
            seat_health,
            series,
            utilization,
            discovery: self.plan.discovery.clone(),
            bodies: Default::default(),
        }));
        for d in self.pacing.durations.drain(..) {
            self.metrics.polling().observe_poll(d);
        }
        self.pacing.dirty = false;
        let instant = Instant::now();
        self.pacing.last = Some(instant);
        self.pacing.cost = cost_clock.elapsed().max(instant - began);
        self.pacing.every = PUBLISH_EVERY.max(self.pacing.cost * PUBLISH_SHARE);
        self.failures.set_down(std::mem::take(&mut gathered.down));
        self.failures.flush(instant, self.plan.poll.interval);
        let summary = Summary {
            targets,
            ok: gathered.ok,
            tenants: gathered.tenants,
            series,
            requests: gathered.requests,
            sent: self.metrics.api().sent(),
            empty: gathered.empty,
        };
        self.announce(summary, gathered.polled, instant);
    }

    /// Tells `--once` when every target has been polled, and logs the first pass and, once
    /// per interval after it, a summary.
    fn announce(&mut self, summary: Summary, polled: usize, instant: Instant) {
        let targets = summary.targets;
        if polled == targets {
            if let Some(tx) = self.progress.every_target_polled.take() {
                let _ = tx.send(());
            }
        }
        let progress = &mut self.progress;
        if !progress.first_pass_done && polled == targets && targets > 0 && self.plan.complete {
            progress.first_pass_done = true;
            progress.last_summary = Some(instant);
            summary.log(
                "first pass complete",
                Some(instant - progress.started_at),
                self.plan.poll.interval,
            );
        } else if progress.first_pass_done
            && progress
                .last_summary
                .is_none_or(|t| instant - t >= self.plan.poll.interval)
        {
            progress.last_summary = Some(instant);
            summary.log("poll summary", None, self.plan.poll.interval);
        }
    }

    /// Sets `poll_utilization_ratio` and warns once when the interval cannot be kept;
    /// `requests` per round count an empty target at its own cadence. Returns the ratio.
    fn utilization(&mut self, targets: usize, requests: f64) -> f64 {
        let cost = self.plan.client.request_cost();
        let interval = self.plan.poll.interval;
        let needed = cost.as_secs_f64() * requests;
        let ratio = needed / interval.as_secs_f64();
        self.metrics.polling().set_utilization(ratio);
        if ratio > BEHIND && !self.progress.behind {
            self.progress.behind = true;
            tracing::warn!(
                targets,
                requests_per_round = requests.round() as u64,
                seconds_per_request = format!("{:.3}", cost.as_secs_f64()),
                round_seconds = format!("{needed:.1}"),
                interval = %crate::config::format_duration(interval),
                utilization = format!("{ratio:.2}"),
                "polling cannot keep poll.interval: a round over every target needs longer than \
                 the interval at the configured limits; every target is still polled, oldest \
                 data first. Raise elements.max_requests_per_second (or max_concurrency when the \
                 API is slow), lengthen poll.interval, or shard (--total-shards)"
            );
        } else if ratio < CAUGHT_UP && self.progress.behind {
            self.progress.behind = false;
            tracing::info!(
                utilization = format!("{ratio:.2}"),
                "polling keeps poll.interval again"
            );
        }
        ratio
    }
}

/// Counts the valid records a poll did not count for its target.
fn count_skipped(metrics: &Metrics, fetched: &Fetched) {
    if fetched.foreign.count > 0 {
        metrics
            .polling()
            .records_skipped("foreign_type", fetched.foreign.count);
    }
    if fetched.unrequested > 0 {
        metrics
            .polling()
            .records_skipped("not_requested", fetched.unrequested);
        tracing::debug!(
            skipped = fetched.unrequested,
            "skipped tenants outside tenant_ids (the API did not apply the filter)"
        );
    }
}
