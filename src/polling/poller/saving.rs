//! The poller's side of persistence: what it hands to the state file, how often, and what it
//! takes back at start (see [`crate::polling::persistence`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use super::state::{Clocks, TargetState};
use super::Poller;
use crate::polling::persistence::{self, Saved, SavedTarget, Written};
use crate::polling::schedule::Cadence;

/// How long a clean shutdown waits for the last write of the persistence file (the
/// daemon's whole shutdown budget is 5 s).
const FINAL_WRITE_BUDGET: Duration = Duration::from_secs(3);

/// The earliest instant the monotonic clock can stand for, at least a day before `now` when
/// the platform allows (a bound for times saved before a reboot).
fn earliest(now: Instant) -> Instant {
    (1..=30)
        .rev()
        .find_map(|days| now.checked_sub(Duration::from_secs(86_400 * days)))
        .unwrap_or(now)
}

impl Poller {
    /// Puts the saved targets that are still planned back: their results and due times, and
    /// their series when fresh enough (stale ones come back without, due at once). Targets no
    /// longer planned are left out.
    pub(super) fn restore(&mut self, saved: Saved) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let poll = self.plan.poll;
        let age = wall.duration_since(saved.written_at).unwrap_or_default();
        let (mut revived, mut stale, mut removed) = (0usize, 0usize, 0usize);
        for t in saved.targets {
            let key = (t.customer_id.clone(), t.tenant_type);
            if !self.targets.contains_key(&key) {
                removed += 1;
                continue;
            }
            // Found empty when saved: it keeps the empty cadence.
            let cadence = if t.error.is_none() && t.last_poll.is_some() && t.tenants == Some(0) {
                Cadence::Empty
            } else {
                Cadence::Regular
            };
            let every = poll.cadence(cadence == Cadence::Empty);
            let r = persistence::revival(&t, saved.written_at, wall, poll.stale_after, every);
            // As far back as the monotonic clock goes (it may not reach before a reboot).
            let ago = |d: Duration| now.checked_sub(d).unwrap_or_else(|| earliest(now));
            self.schedule
                .restore(&key, now + r.due_in, r.polled_ago.map(ago), cadence);
            let (seats, failing_since, unknown_since) = if r.series {
                revived += 1;
                (t.seats, r.failing_for.map(ago), r.unpolled_for.map(ago))
            } else {
                // Too old to serve: back without its series, failing since it was last
                // known good, and due at once.
                stale += 1;
                let failing = r.failing_for.or(r.unpolled_for).map(ago);
                (Arc::default(), failing, None)
            };
            self.states.insert(
                key,
                TargetState {
                    empty_unconfirmed: false,
                    renewed: false,
                    seats,
                    last_tenant_count: t.tenants,
                    last_poll: t.last_poll,
                    last_success: t.last_success,
                    failing_since,
                    unknown_since,
                    last_error: t.error,
                    requests: t.pages,
                    last_duration: None,
                    // Counters start at 0 in a new process.
                    counters: Arc::default(),
                },
            );
        }
        let not_in_file = self
            .targets
            .keys()
            .filter(|k| !self.states.contains_key(*k))
            .count();
        self.metrics.polling().restored(revived);
        // Restored in full: the first pass is behind us.
        if self.plan.complete && self.targets.keys().all(|k| self.states.contains_key(k)) {
            self.first_pass_done = true;
            self.last_summary = Some(now);
        }
        tracing::info!(
            targets = revived,
            without_series_stale = stale,
            not_revived_removed = removed,
            not_in_file,
            age = %crate::config::format_duration(Duration::from_secs(age.as_secs())),
            "restored the persisted state"
        );
    }

    /// The state to keep: every polled target of the plan (series shared, not copied), and
    /// the customer list the plan came from.
    fn saved(&self) -> Saved {
        let clocks = Clocks::now();
        let targets = self
            .plan
            .targets
            .iter()
            .filter_map(|t| {
                let key = t.key();
                let s = self.states.get(&key)?;
                Some(SavedTarget {
                    next_due: self.schedule.due_of(&key).map(|d| clocks.wall(d)),
                    customer_id: key.0,
                    tenant_type: key.1,
                    seats: s.seats.clone(),
                    tenants: s.last_tenant_count,
                    last_poll: s.last_poll,
                    last_success: s.last_success,
                    failing_since: s.failing_since.map(|f| clocks.wall(f)),
                    error: s.last_error.clone(),
                    pages: s.requests,
                })
            })
            .collect();
        Saved {
            written_at: clocks.wall,
            origin: Some(self.plan.origin.clone()),
            targets,
            customers: self.plan.discovered.clone(),
        }
    }

    /// When to write the state file next: never without a file or news, or while a write
    /// runs; else at once for the first write and when the targets that were new have all
    /// been polled (the first pass, a reload's or a customer list's new targets), then an
    /// interval after the last one began.
    pub(super) fn write_at(&self, writing: bool) -> Option<Instant> {
        let p = self.persistence.as_ref()?;
        if writing || !self.unsaved {
            return None;
        }
        if self.write_soon {
            return Some(Instant::now());
        }
        Some(
            self.last_write
                .map_or_else(Instant::now, |t| t + p.interval),
        )
    }

    /// Starts writing the state file on a blocking thread.
    pub(super) fn start_write(&mut self) -> Option<JoinHandle<std::io::Result<Written>>> {
        let path = self.persistence.as_ref()?.path.clone();
        let saved = self.saved();
        self.unsaved = false;
        self.write_soon = false;
        self.last_write = Some(Instant::now());
        Some(tokio::task::spawn_blocking(move || {
            persistence::write(&path, &saved)
        }))
    }

    /// Records how a write went: a failure is counted and logged, and the state is written
    /// again at the next chance.
    pub(super) fn written(&mut self, result: Result<std::io::Result<Written>, JoinError>) {
        let file = self
            .persistence
            .as_ref()
            .map(|p| p.path.display().to_string())
            .unwrap_or_default();
        let error = match result {
            Ok(Ok(w)) => {
                self.metrics.polling().written(SystemTime::now(), w.took);
                tracing::debug!(
                    file,
                    bytes = w.bytes,
                    took_ms = w.took.as_millis() as u64,
                    "state written"
                );
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.metrics.polling().write_failed();
        self.unsaved = true;
        tracing::warn!(
            file,
            error,
            "cannot write the persistence file; polling and serving go on, the next write \
             tries again"
        );
    }

    /// At shutdown: waits for a write in flight, then writes the state once more, all within
    /// [`FINAL_WRITE_BUDGET`].
    pub(super) async fn final_write(
        &mut self,
        in_flight: Option<JoinHandle<std::io::Result<Written>>>,
    ) {
        if self.persistence.is_none() {
            return;
        }
        let deadline = Instant::now() + FINAL_WRITE_BUDGET;
        // Always once more, even with nothing new: the file's time is when the exporter was
        // last known running, and a restart counts the time after it as downtime.
        self.unsaved = true;
        let mut handle = in_flight;
        let mut last = false;
        loop {
            if let Some(h) = handle.take() {
                match tokio::time::timeout_at(deadline, h).await {
                    Ok(result) => self.written(result),
                    Err(_) => {
                        tracing::warn!(
                            budget = %crate::config::format_duration(FINAL_WRITE_BUDGET),
                            "the persistence file could not be written within the shutdown \
                             budget; the previous file stays"
                        );
                        return;
                    }
                }
            }
            if last || !self.unsaved {
                return;
            }
            last = true;
            handle = self.start_write();
        }
    }
}
