//! The poller's side of persistence: what it hands to the state file ([`saved`]), when
//! ([`Saving`]), and what it takes back at start ([`restore`]); see
//! [`crate::polling::persistence`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use super::state::{Clocks, TargetState};
use crate::domain::TargetKey;
use crate::metrics::Metrics;
use crate::polling::persistence::{self, Persistence, Saved, SavedTarget, Written};
use crate::polling::plan::{Plan, Target};
use crate::polling::schedule::{Cadence, Schedule};

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

/// When the state file is written: whether anything changed since the last write began,
/// and the new targets whose first result is kept at once.
#[derive(Default)]
pub(super) struct Saving {
    /// Where the state is kept across restarts, if anywhere.
    file: Option<Persistence>,
    /// Whether anything changed since the last write of the state file began.
    unsaved: bool,
    last_write: Option<Instant>,
    /// Targets added (at start, by a reload or a customer list) that have not finished a
    /// poll yet: when the last of them does, the state file is written at once, not an
    /// interval later, so a crash soon after start (or after a reload) loses nothing.
    unpolled: HashSet<TargetKey>,
    /// Whether the state file is to be written at the next chance (see `unpolled`).
    write_soon: bool,
}

impl Saving {
    /// Writes to `file`, if any.
    pub(super) fn new(file: Option<Persistence>) -> Saving {
        Saving {
            file,
            ..Saving::default()
        }
    }

    /// Something changed that the next write keeps.
    pub(super) fn changed(&mut self) {
        self.unsaved = true;
    }

    /// Nothing is new since what the file holds (the state was just restored from it).
    pub(super) fn in_file(&mut self) {
        self.unsaved = false;
    }

    /// The plan now polls `targets`, of which those not in `before` are new: the file is
    /// written once the new ones have all been polled.
    pub(super) fn planned(
        &mut self,
        targets: &HashMap<TargetKey, Target>,
        before: &HashMap<TargetKey, Target>,
    ) {
        self.unpolled.retain(|k| targets.contains_key(k));
        self.unpolled
            .extend(targets.keys().filter(|k| !before.contains_key(*k)).cloned());
        self.unsaved = true;
    }

    /// `key` finished a poll: when it was the last new target, the file is written at once.
    pub(super) fn polled(&mut self, key: &TargetKey) {
        if self.unpolled.remove(key) && self.unpolled.is_empty() {
            // The last new target has its first result: keep it at once.
            self.write_soon = true;
        }
        self.unsaved = true;
    }

    /// When to write the state file next: never without a file or news, or while a write
    /// runs; else at once for the first write and when the targets that were new have all
    /// been polled (the first pass, a reload's or a customer list's new targets), then an
    /// interval after the last one began.
    pub(super) fn write_at(&self, writing: bool) -> Option<Instant> {
        let p = self.file.as_ref()?;
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

    /// Starts writing the state file (what `saved` makes) on a blocking thread.
    pub(super) fn start_write(
        &mut self,
        saved: impl FnOnce() -> Saved,
    ) -> Option<JoinHandle<std::io::Result<Written>>> {
        let path = self.file.as_ref()?.path.clone();
        let saved = saved();
        self.unsaved = false;
        self.write_soon = false;
        self.last_write = Some(Instant::now());
        Some(tokio::task::spawn_blocking(move || {
            persistence::write(&path, &saved)
        }))
    }

    /// Records how a write went: a failure is counted and logged, and the state is written
    /// again at the next chance.
    pub(super) fn written(
        &mut self,
        result: Result<std::io::Result<Written>, JoinError>,
        metrics: &Metrics,
    ) {
        let file = self
            .file
            .as_ref()
            .map(|p| p.path.display().to_string())
            .unwrap_or_default();
        let error = match result {
            Ok(Ok(w)) => {
                metrics.polling().written(SystemTime::now(), w.took);
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
        metrics.polling().write_failed();
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
        metrics: &Metrics,
        saved: impl Fn() -> Saved,
    ) {
        if self.file.is_none() {
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
                    Ok(result) => self.written(result, metrics),
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
            handle = self.start_write(&saved);
        }
    }
}

/// Puts the saved targets that are still planned back: their results and due times, and
/// their series when fresh enough (stale ones come back without, due at once). Targets no
/// longer planned are left out. True when every planned target came back (the first pass is
/// behind).
pub(super) fn restore(
    saved: Saved,
    plan: &Plan,
    targets: &HashMap<TargetKey, Target>,
    schedule: &mut Schedule,
    states: &mut HashMap<TargetKey, TargetState>,
    metrics: &Metrics,
) -> bool {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let poll = plan.poll;
    let age = wall.duration_since(saved.written_at).unwrap_or_default();
    let (mut revived, mut stale, mut removed) = (0usize, 0usize, 0usize);
    for t in saved.targets {
        let key = TargetKey::new(t.customer_id.clone(), t.tenant_type);
        if !targets.contains_key(&key) {
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
        schedule.restore(&key, now + r.due_in, r.polled_ago.map(ago), cadence);
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
        states.insert(
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
    let not_in_file = targets.keys().filter(|k| !states.contains_key(*k)).count();
    metrics.polling().restored(revived);
    tracing::info!(
        targets = revived,
        without_series_stale = stale,
        not_revived_removed = removed,
        not_in_file,
        age = %crate::config::format_duration(Duration::from_secs(age.as_secs())),
        "restored the persisted state"
    );
    // Restored in full: the first pass is behind us.
    plan.complete && targets.keys().all(|k| states.contains_key(k))
}

/// The state to keep: every polled target of the plan (series shared, not copied), and
/// the customer list the plan came from.
pub(super) fn saved(
    plan: &Plan,
    states: &HashMap<TargetKey, TargetState>,
    schedule: &Schedule,
) -> Saved {
    let clocks = Clocks::now();
    let targets = plan
        .targets
        .iter()
        .filter_map(|t| {
            let key = t.key();
            let s = states.get(&key)?;
            Some(SavedTarget {
                next_due: schedule.due_of(&key).map(|d| clocks.wall(d)),
                customer_id: key.customer_id,
                tenant_type: key.tenant_type,
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
        origin: Some(plan.origin.clone()),
        targets,
        customers: plan.discovered.clone(),
    }
}
