//! When each target is polled.
//!
//! - [`Schedule`] keeps one due time per target. A target new to the schedule (at start, or
//!   after a reload or a customer list added it) is due at once. After a poll it is due again
//!   at its own slot: a stable offset inside the interval, from a hash of the target (the way
//!   Prometheus spreads scrapes), so the API sees an even request rate. A target is never
//!   handed out while it runs. When more targets are due than can run, the one whose data is
//!   oldest goes first, so a fleet that needs more than an interval per round still completes
//!   every target each round, and a late poll is never cut short. A target whose last poll
//!   found no tenants ([`Cadence::Empty`]) is due again after the empty interval instead, on
//!   its slot: most customers have only some of the four tenant types.
//! - The order in which its requests get a slot is the order in which targets started
//!   ([`crate::elements::slots`]): a started target finishes first.
//!
//! Everything here takes the current instant as an argument or reads tokio's clock, so tests
//! run 10 000 targets through hours of schedule with paused time in a fraction of a second.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::{fnv1a, TargetKey};

/// How often a target is due after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Every interval: its last poll found tenants, or failed.
    Regular,
    /// Every empty interval: its last poll succeeded and found no tenants.
    Empty,
}

/// Due times of every target; see the module documentation.
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    /// Between polls of targets on [`Cadence::Empty`]; at least `interval`.
    empty_interval: Duration,
    /// Slots are `epoch + offset + k × interval`.
    epoch: Instant,
    entries: HashMap<TargetKey, Entry>,
    /// Idle targets by due time.
    waiting: BTreeSet<(Instant, TargetKey)>,
    /// Idle targets that are due, oldest data first (never polled before all others).
    due: BTreeSet<(Option<Instant>, Instant, TargetKey)>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: Duration,
    due: Instant,
    running: bool,
    /// Whether `due` has moved from `waiting` to the `due` queue.
    queued: bool,
    last_start: Option<Instant>,
    last_done: Option<Instant>,
    /// Removed from the plan while its poll runs: forgotten when the poll ends.
    retired: bool,
    /// Its cadence after its last poll.
    cadence: Cadence,
    /// Added again while its old poll ran: due at once when that poll ends.
    fresh: bool,
}

/// A target handed out by [`Schedule::start_next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Which target.
    pub key: TargetKey,
    /// When it was due.
    pub due: Instant,
    /// How long after its due time it starts.
    pub late: Duration,
    /// Whether it starts more than one interval after it was due (an overrun).
    pub overrun: bool,
}

impl Schedule {
    /// An empty schedule whose slots repeat every `interval` from `epoch`.
    pub fn new(interval: Duration, epoch: Instant) -> Schedule {
        let interval = interval.max(Duration::from_millis(1));
        Schedule {
            interval,
            empty_interval: interval,
            epoch,
            entries: HashMap::new(),
            waiting: BTreeSet::new(),
            due: BTreeSet::new(),
        }
    }

    /// Targets in the schedule.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.values().filter(|e| !e.retired).count()
    }

    /// Targets running now.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.entries.values().filter(|e| e.running).count()
    }

    /// The offset of a target's slots inside the interval: a hash of the target.
    pub fn offset_of(key: &TargetKey, interval: Duration) -> Duration {
        let mut h = fnv1a(key.customer_id.as_bytes())
            ^ (key.tenant_type.api_number() as u64).wrapping_add(1);
        // splitmix64's finalizer: nearby ids land far apart.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let nanos = interval.as_nanos().clamp(1, u128::from(u64::MAX)) as u64;
        Duration::from_nanos(h % nanos)
    }

    /// The first slot of `offset` at or after `at`.
    fn slot_at_or_after(&self, offset: Duration, at: Instant) -> Instant {
        let first = self.epoch + offset;
        if at <= first {
            return first;
        }
        let interval = self.interval.as_nanos();
        let periods = (at - first).as_nanos().div_ceil(interval);
        let periods = u32::try_from(periods).unwrap_or(u32::MAX);
        first + self.interval.saturating_mul(periods)
    }

    /// When a target that started at `started` is due next: its first slot at least its
    /// cadence minus half an interval later. On time, that is exactly one interval (or empty
    /// interval) later; a poll that started late keeps its slot if it can, and never runs
    /// twice within half an interval.
    fn next_due(&self, offset: Duration, started: Instant, cadence: Cadence) -> Instant {
        let every = match cadence {
            Cadence::Regular => self.interval,
            Cadence::Empty => self.empty_interval,
        };
        self.slot_at_or_after(offset, started + every - self.interval / 2)
    }

    /// Makes the schedule hold exactly `keys`: new targets are due at `now`, removed ones are
    /// forgotten (a running one when its poll ends, and its result is ignored), the others keep
    /// their due times. A target removed and added again while its poll runs is not started a
    /// second time: it is due at once when that poll ends. Returns how many were added.
    pub fn set_targets<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a TargetKey>,
        now: Instant,
    ) -> usize {
        let wanted: std::collections::HashSet<&TargetKey> = keys.into_iter().collect();
        let gone: Vec<TargetKey> = self
            .entries
            .iter()
            .filter(|(k, e)| !e.retired && !wanted.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.remove(&key);
        }
        let mut added = 0;
        for key in wanted {
            if let Some(entry) = self.entries.get_mut(key) {
                if entry.retired {
                    entry.retired = false;
                    entry.fresh = true;
                    added += 1;
                }
                continue;
            }
            added += 1;
            let entry = Entry {
                offset: Schedule::offset_of(key, self.interval),
                due: now,
                running: false,
                queued: false,
                last_start: None,
                last_done: None,
                retired: false,
                fresh: false,
                cadence: Cadence::Regular,
            };
            self.entries.insert(key.clone(), entry);
            self.waiting.insert((now, key.clone()));
        }
        added
    }

    /// Changes the intervals: offsets and the due times of idle targets that ran before
    /// follow. `empty_interval` is raised to `interval` if shorter.
    pub fn set_intervals(&mut self, interval: Duration, empty_interval: Duration) {
        let interval = interval.max(Duration::from_millis(1));
        let empty_interval = empty_interval.max(interval);
        if interval == self.interval && empty_interval == self.empty_interval {
            return;
        }
        self.interval = interval;
        self.empty_interval = empty_interval;
        let keys: Vec<TargetKey> = self.entries.keys().cloned().collect();
        for key in keys {
            let Some(mut entry) = self.entries.get(&key).copied() else {
                continue;
            };
            entry.offset = Schedule::offset_of(&key, interval);
            self.entries.insert(key.clone(), entry);
            if let (false, Some(started)) = (entry.running, entry.last_start) {
                let due = self.next_due(entry.offset, started, entry.cadence);
                self.unqueue(&key, &entry);
                self.requeue(key, due);
            }
        }
    }

    fn remove(&mut self, key: &TargetKey) {
        match self.entries.get_mut(key) {
            Some(entry) if entry.running => entry.retired = true,
            Some(_) => {
                if let Some(entry) = self.entries.remove(key) {
                    self.unqueue(key, &entry);
                }
            }
            None => {}
        }
    }

    /// Takes an idle target out of the queue it is in.
    fn unqueue(&mut self, key: &TargetKey, entry: &Entry) {
        if entry.running {
            return;
        }
        if entry.queued {
            self.due.remove(&(entry.last_done, entry.due, key.clone()));
        } else {
            self.waiting.remove(&(entry.due, key.clone()));
        }
    }

    /// Puts an idle target back, due at `due`.
    fn requeue(&mut self, key: TargetKey, due: Instant) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.due = due;
            entry.queued = false;
            entry.running = false;
            self.waiting.insert((due, key));
        }
    }

    /// Moves every target due by `now` to the due queue.
    fn promote(&mut self, now: Instant) {
        while let Some((due, key)) = self.waiting.first().cloned() {
            if due > now {
                break;
            }
            self.waiting.pop_first();
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.queued = true;
                self.due.insert((entry.last_done, due, key));
            }
        }
    }

    /// The next target to start at `now`, if one is due: the one whose data is oldest. It is
    /// marked running until [`Schedule::finished`].
    pub fn start_next(&mut self, now: Instant) -> Option<Start> {
        self.promote(now);
        let (_, due, key) = self.due.pop_first()?;
        let entry = self.entries.get_mut(&key)?;
        entry.running = true;
        entry.queued = false;
        entry.last_start = Some(now);
        let late = now.saturating_duration_since(due);
        Some(Start {
            key,
            due,
            late,
            overrun: late > self.interval,
        })
    }

    /// A target's poll that started at `started` finished at `now`: it is due again at its
    /// next slot of `cadence`. Unknown targets (removed while running) are ignored.
    pub fn finished(&mut self, key: &TargetKey, started: Instant, now: Instant, cadence: Cadence) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        if entry.retired {
            self.entries.remove(key);
            return;
        }
        entry.last_done = Some(now);
        entry.cadence = cadence;
        let due = if std::mem::take(&mut entry.fresh) {
            now
        } else {
            let offset = entry.offset;
            self.next_due(offset, started, cadence)
        };
        self.requeue(key.clone(), due);
    }

    /// A target that now fetches something else (another filter, API or client): due at
    /// once, as if never polled; a running one at once when its poll ends.
    pub fn renew(&mut self, key: &TargetKey, now: Instant) {
        let Some(entry) = self.entries.get(key).copied() else {
            return;
        };
        if entry.retired {
            return;
        }
        if entry.running {
            if let Some(e) = self.entries.get_mut(key) {
                e.fresh = true;
            }
            return;
        }
        self.unqueue(key, &entry);
        if let Some(e) = self.entries.get_mut(key) {
            e.last_done = None;
            e.cadence = Cadence::Regular;
        }
        self.requeue(key.clone(), now);
    }

    /// When the next target becomes due (`None` if every target is running or there are
    /// none); a past instant when one is due already.
    pub fn next_wake(&self) -> Option<Instant> {
        if let Some((_, due, _)) = self.due.first() {
            return Some(*due);
        }
        self.waiting.first().map(|(due, _)| *due)
    }

    /// The due time of a target (for a running one: when it was due).
    pub fn due_of(&self, key: &TargetKey) -> Option<Instant> {
        self.entries.get(key).filter(|e| !e.retired).map(|e| e.due)
    }

    /// Puts an idle target restored from the state file where it was: due at `due`, its
    /// last poll ended at `last_done` (so that overdue targets go oldest data first), on
    /// `cadence`.
    pub fn restore(
        &mut self,
        key: &TargetKey,
        due: Instant,
        last_done: Option<Instant>,
        cadence: Cadence,
    ) {
        let Some(entry) = self.entries.get(key).copied() else {
            return;
        };
        if entry.running || entry.retired {
            return;
        }
        self.unqueue(key, &entry);
        if let Some(e) = self.entries.get_mut(key) {
            e.last_done = last_done;
            e.cadence = cadence;
        }
        self.requeue(key.clone(), due);
    }
}

#[cfg(test)]
mod tests;
