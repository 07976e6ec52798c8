//! When each target is polled, and in what order its requests go.
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
//! - [`Permits`] bounds the requests in flight and hands free slots out by [`Priority`]: a
//!   target's priority is the order in which it started, so once a target's first page is in,
//!   its remaining pages go ahead of the first pages of targets started after it ("a started
//!   target finishes first"), and token requests go ahead of everything.
//!
//! Everything here takes the current instant as an argument or reads tokio's clock, so tests
//! run 10 000 targets through hours of schedule with paused time in a fraction of a second.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::plan::{fnv1a, TargetKey};

/// The order in which waiting requests get a slot: lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u64);

impl Priority {
    /// Token requests (and the customer list): ahead of every target's pages.
    pub const URGENT: Priority = Priority(0);
}

/// A counting semaphore whose waiters are served lowest [`Priority`] first (first come, first
/// served within a priority). Dropping a [`Permit`] hands its slot to the next waiter.
pub struct Permits {
    state: Mutex<PermitState>,
}

struct PermitState {
    available: usize,
    /// Waiters by (priority, arrival); a waiter that gave up leaves a closed sender behind,
    /// which is skipped when its turn comes.
    waiters: BTreeMap<(Priority, u64), oneshot::Sender<Permit>>,
    arrivals: u64,
}

/// One slot of [`Permits`], released on drop.
pub struct Permit {
    owner: Arc<Permits>,
}

impl Permits {
    /// A semaphore with `slots` slots.
    pub fn new(slots: usize) -> Arc<Permits> {
        Arc::new(Permits {
            state: Mutex::new(PermitState {
                available: slots,
                waiters: BTreeMap::new(),
                arrivals: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PermitState> {
        // Plain counters and channels: consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot; among waiters, the lowest `priority` is served first.
    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> Permit {
        let rx = {
            let mut s = self.lock();
            if s.available > 0 {
                s.available -= 1;
                return Permit {
                    owner: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            let arrival = s.arrivals;
            s.arrivals += 1;
            s.waiters.insert((priority, arrival), tx);
            rx
        };
        match rx.await {
            Ok(permit) => permit,
            // Senders are only dropped after a send: unreachable, but a fresh permit is never
            // wrong here because `release` already counted this slot as handed over.
            Err(_) => Permit {
                owner: self.clone(),
            },
        }
    }

    /// Slots free right now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.lock().available
    }

    fn release(self: &Arc<Self>) {
        let mut permit = Permit {
            owner: self.clone(),
        };
        loop {
            let waiter = {
                let mut s = self.lock();
                match s.waiters.pop_first() {
                    Some((_, tx)) => tx,
                    None => {
                        s.available += 1;
                        // Not dropped: that would release again.
                        std::mem::forget(permit);
                        return;
                    }
                }
            };
            // Outside the lock: a receiver dropped in between gives the permit back, and a
            // permit dropped inside a dead channel releases itself.
            match waiter.send(permit) {
                Ok(()) => return,
                Err(back) => permit = back,
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let owner = self.owner.clone();
        owner.release();
    }
}

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
        let mut h = fnv1a(key.0.as_bytes()) ^ (key.1.api_number() as u64).wrapping_add(1);
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
mod tests {
    use super::*;
    use crate::domain::TenantType;
    use std::collections::HashMap;

    fn key(i: usize) -> TargetKey {
        (
            format!("{i:08x}-b9d4-4000-a165-97db0000fc15").into(),
            TenantType::ALL[i % 4],
        )
    }

    fn keys(n: usize) -> Vec<TargetKey> {
        (0..n).map(key).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn permits_go_to_the_lowest_priority_first_and_survive_cancelled_waiters() {
        let permits = Permits::new(1);
        let held = permits.acquire(Priority(5)).await;
        assert_eq!(permits.available(), 0);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for p in [9u64, 3, 7, 3, 1] {
            let (permits, order) = (permits.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = permits.acquire(Priority(p)).await;
                order.lock().unwrap().push(p);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(permit);
            }));
            tokio::task::yield_now().await;
        }
        // A waiter that gives up does not take a slot with it.
        let cancelled = {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _p = permits.acquire(Priority(0)).await;
                std::future::pending::<()>().await;
            })
        };
        tokio::task::yield_now().await;
        cancelled.abort();
        let _ = cancelled.await;
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 3, 3, 7, 9]);
        assert_eq!(permits.available(), 1);
    }

    #[test]
    fn restored_targets_start_at_their_saved_due_times_and_overdue_ones_oldest_first() {
        let interval = Duration::from_secs(300);
        // Far enough from the clock's start that "polled hours ago" is representable.
        let now = Instant::now() + Duration::from_secs(20_000);
        let mut s = Schedule::new(interval, now);
        let ks = keys(10_000);
        assert_eq!(s.set_targets(&ks, now), 10_000);
        // Even targets: due later, at (i / 2) % 300 seconds. Odd ones: overdue, last polled
        // longer ago the higher their number.
        for (i, k) in ks.iter().enumerate() {
            if i % 2 == 0 {
                let due = now + Duration::from_secs(((i / 2) % 300) as u64 + 1);
                s.restore(
                    k,
                    due,
                    Some(now - Duration::from_secs(10)),
                    Cadence::Regular,
                );
            } else {
                s.restore(
                    k,
                    now,
                    Some(now - Duration::from_secs(60 + i as u64)),
                    Cadence::Regular,
                );
            }
        }
        // At once: exactly the overdue half, oldest data first.
        let mut overdue = Vec::new();
        while let Some(start) = s.start_next(now) {
            overdue.push(start.key);
        }
        let expected: Vec<TargetKey> = ks.iter().skip(1).step_by(2).rev().cloned().collect();
        assert_eq!(overdue, expected);
        // The others start at their own due times, never before.
        let mut started = 0;
        for second in 1..=300u64 {
            let at = now + Duration::from_secs(second);
            while let Some(start) = s.start_next(at) {
                assert_eq!(start.due, at, "{start:?}");
                started += 1;
            }
        }
        assert_eq!(started, 5_000);
        assert_eq!(s.running(), 10_000);
    }

    #[test]
    fn offsets_are_stable_and_spread_over_the_interval() {
        let interval = Duration::from_secs(300);
        let ks = keys(10_000);
        let mut buckets = [0usize; 10];
        for k in &ks {
            let o = Schedule::offset_of(k, interval);
            assert_eq!(o, Schedule::offset_of(k, interval));
            assert!(o < interval);
            buckets[(o.as_secs() / 30) as usize] += 1;
        }
        // 1 000 expected per tenth of the interval.
        for b in buckets {
            assert!((850..1150).contains(&b), "{buckets:?}");
        }
    }

    /// Runs `targets` through the schedule for `rounds` intervals with polls that take `cost`
    /// each and at most `window` at once; returns each target's start times.
    fn simulate(
        schedule: &mut Schedule,
        start: Instant,
        window: usize,
        cost: Duration,
        until: Instant,
    ) -> (HashMap<TargetKey, Vec<Instant>>, usize) {
        simulate_with(schedule, start, window, cost, until, &|_, _| {
            Cadence::Regular
        })
    }

    /// Like [`simulate`], with each poll's outcome given by `cadence` (the target, when its
    /// poll ends).
    fn simulate_with(
        schedule: &mut Schedule,
        start: Instant,
        window: usize,
        cost: Duration,
        until: Instant,
        cadence: &dyn Fn(&TargetKey, Instant) -> Cadence,
    ) -> (HashMap<TargetKey, Vec<Instant>>, usize) {
        let mut starts: HashMap<TargetKey, Vec<Instant>> = HashMap::new();
        let mut running: BTreeSet<(Instant, TargetKey, Instant)> = BTreeSet::new();
        let mut now = start;
        let mut overruns = 0;
        while now < until {
            while running.len() < window {
                let Some(s) = schedule.start_next(now) else {
                    break;
                };
                overruns += usize::from(s.overrun);
                starts.entry(s.key.clone()).or_default().push(now);
                running.insert((now + cost, s.key, now));
            }
            let next_done = running.first().map(|(t, _, _)| *t);
            let next_due = schedule.next_wake().filter(|_| running.len() < window);
            now = match (next_done, next_due) {
                (Some(a), Some(b)) => a.min(b.max(now)),
                (Some(a), None) => a,
                (None, Some(b)) => b.max(now),
                (None, None) => break,
            };
            while let Some((done, _, _)) = running.first() {
                if *done > now {
                    break;
                }
                let (done, key, started) = running.pop_first().unwrap();
                let c = cadence(&key, done);
                schedule.finished(&key, started, done, c);
            }
        }
        (starts, overruns)
    }

    #[test]
    fn empty_targets_come_round_every_empty_interval_and_back_at_once_when_tenants_appear() {
        let start = Instant::now();
        let (interval, empty) = (Duration::from_secs(300), Duration::from_secs(3600));
        let mut s = Schedule::new(interval, start);
        s.set_intervals(interval, empty);
        // 10 000 targets, a typical MSP fleet: Microsoft 365 (type 0) has tenants, the other
        // three types are empty. After two hours one in a hundred changes: an empty target
        // gets a tenant, a full one loses its last.
        let ks = keys(10_000);
        s.set_targets(&ks, start);
        let index = |k: &TargetKey| usize::from_str_radix(&k.0[..8], 16).unwrap();
        let turn = start + Duration::from_secs(7200);
        let has_tenants = |k: &TargetKey, at: Instant| {
            let i = index(k);
            let full = i % 4 == 0;
            if at >= turn && i % 100 < 4 {
                !full
            } else {
                full
            }
        };
        let cadence = |k: &TargetKey, at: Instant| {
            if has_tenants(k, at) {
                Cadence::Regular
            } else {
                Cadence::Empty
            }
        };
        let until = start + Duration::from_secs(4 * 3600);
        let (starts, _) =
            simulate_with(&mut s, start, 8, Duration::from_millis(10), until, &cadence);
        let slack = interval / 2 + Duration::from_secs(1);
        let mut polls_in_third_hour = 0;
        for k in &ks {
            let times = &starts[k];
            let i = index(k);
            polls_in_third_hour += times
                .iter()
                .filter(|t| **t >= start + empty * 2 && **t < start + empty * 3)
                .count();
            for pair in times.windows(2) {
                let gap = pair[1] - pair[0];
                // The cadence the poll before the gap ended with.
                let expected = match cadence(k, pair[0] + Duration::from_millis(10)) {
                    Cadence::Regular => interval,
                    Cadence::Empty => empty,
                };
                assert!(
                    gap + slack >= expected && gap <= expected + slack,
                    "target {i}: {gap:?} after a poll on {expected:?}"
                );
            }
            if i % 100 < 4 && i % 4 != 0 {
                // A tenant appeared at two hours: found within one empty interval, then
                // polled every interval.
                let found = times.iter().find(|t| **t >= turn).unwrap();
                assert!(*found - turn <= empty + slack, "target {i}");
            }
        }
        // 2 500 full targets 12 times an hour, 7 500 empty ones once (give or take the ones
        // that changed): 37 500 polls instead of 120 000, 3.2x fewer.
        assert!(
            (36_000..=40_000).contains(&polls_in_third_hour),
            "{polls_in_third_hour} polls in the third hour"
        );
    }

    #[test]
    fn new_targets_go_at_once_then_once_per_interval_at_their_offset() {
        let start = Instant::now();
        let interval = Duration::from_secs(300);
        let mut s = Schedule::new(interval, start);
        let ks = keys(10_000);
        assert_eq!(s.set_targets(&ks, start), 10_000);
        // 10 ms per poll, 4 at once: a 25 s first pass, well inside the interval.
        let (starts, overruns) = simulate(
            &mut s,
            start,
            4,
            Duration::from_millis(10),
            start + interval * 4,
        );
        assert_eq!(overruns, 0);
        for k in &ks {
            let times = &starts[k];
            // First pass inside its first 26 s, then exactly one poll per slot.
            assert!(times[0] - start <= Duration::from_secs(26));
            let offset = Schedule::offset_of(k, interval);
            assert!((4..=5).contains(&times.len()), "{}", times.len());
            for (i, t) in times.iter().enumerate().skip(1) {
                let slot_index = (*t - start - offset).as_nanos() / interval.as_nanos();
                let slot = start + offset + interval * slot_index as u32;
                // Starts at its slot, or just after when the window was full.
                assert!(*t - slot < Duration::from_millis(50), "{k:?} poll {i}");
                let gap = *t - times[i - 1];
                assert!(gap >= interval / 2 && gap <= interval * 3 / 2, "{gap:?}");
            }
        }
    }

    #[test]
    fn after_the_first_pass_no_second_carries_more_than_twice_the_average() {
        let start = Instant::now();
        let interval = Duration::from_secs(300);
        let mut s = Schedule::new(interval, start);
        let ks = keys(10_000);
        s.set_targets(&ks, start);
        let (starts, _) = simulate(
            &mut s,
            start,
            64,
            Duration::from_millis(5),
            start + interval * 3,
        );
        let mut per_second: HashMap<u64, usize> = HashMap::new();
        for t in starts.values().flatten() {
            let second = (*t - start).as_secs();
            if second >= interval.as_secs() {
                *per_second.entry(second).or_default() += 1;
            }
        }
        let average = ks.len() as f64 / interval.as_secs_f64();
        let max = per_second.values().copied().max().unwrap();
        assert!(
            (max as f64) <= 2.0 * average,
            "busiest second {max}, average {average}"
        );
    }

    #[test]
    fn behind_schedule_every_target_completes_each_round_oldest_data_first() {
        let start = Instant::now();
        let interval = Duration::from_secs(60);
        let mut s = Schedule::new(interval, start);
        let ks = keys(10_000);
        s.set_targets(&ks, start);
        // One poll at a time, 15 ms each: a round needs 150 s, two and a half intervals.
        let until = start + Duration::from_secs(150 * 4);
        let (starts, overruns) = simulate(&mut s, start, 1, Duration::from_millis(15), until);
        assert!(
            overruns > 0,
            "polls more than an interval late are overruns"
        );
        // Every target ran in every round: 4 rounds, none twice in one, none starved.
        for k in &ks {
            let n = starts[k].len();
            assert!((4..=5).contains(&n), "{k:?}: {n}");
            for pair in starts[k].windows(2) {
                let gap = pair[1] - pair[0];
                assert!(
                    gap >= Duration::from_secs(149) && gap <= Duration::from_secs(151),
                    "{gap:?}"
                );
            }
        }
        // Oldest data first: the round order repeats the first pass's order.
        let mut first: Vec<(&TargetKey, Instant)> = starts.iter().map(|(k, t)| (k, t[0])).collect();
        let mut second: Vec<(&TargetKey, Instant)> =
            starts.iter().map(|(k, t)| (k, t[1])).collect();
        first.sort_by_key(|(_, t)| *t);
        second.sort_by_key(|(_, t)| *t);
        let a: Vec<_> = first.iter().map(|(k, _)| *k).collect();
        let b: Vec<_> = second.iter().map(|(k, _)| *k).collect();
        assert_eq!(a, b);
    }

    /// What happened to the request slots, in order, with the (paused) time.
    #[derive(Debug, Clone, Copy)]
    enum Event {
        /// Target `seq` asked for its pages after the first.
        Rest(u64, Instant),
        /// A slot went to target `seq`.
        Grant(u64, Instant),
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_target_finishes_first_and_the_first_pass_runs_at_the_limit() {
        const TARGETS: usize = 10_000;
        const SLOTS: usize = 4;
        let latency = Duration::from_millis(10);
        let start = Instant::now();
        let permits = Permits::new(SLOTS);
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut schedule = Schedule::new(Duration::from_secs(3600), start);
        let ks = keys(TARGETS);
        schedule.set_targets(&ks, start);
        // One in ten targets has 5 pages, the rest one.
        let pages_of = |k: &TargetKey| {
            if k.0.starts_with('0') && k.0.as_bytes()[7] == b'0' {
                5
            } else {
                1
            }
        };
        let requests: usize = ks.iter().map(pages_of).sum();
        let mut running = tokio::task::JoinSet::new();
        let mut seq = 0u64;
        let mut done = 0;
        let mut spans: HashMap<u64, (Instant, Instant, usize)> = HashMap::new();
        while done < TARGETS {
            while running.len() < 2 * SLOTS {
                let Some(s) = schedule.start_next(Instant::now()) else {
                    break;
                };
                seq += 1;
                let (permits, events, pages, me) =
                    (permits.clone(), events.clone(), pages_of(&s.key), seq);
                running.spawn(async move {
                    let began = Instant::now();
                    // Answers take 10 to 16 ms, so targets finish out of step.
                    let took = latency + Duration::from_millis(me % 7);
                    let page = |permits: Arc<Permits>, events: Arc<Mutex<Vec<Event>>>| async move {
                        let p = permits.acquire(Priority(me)).await;
                        events
                            .lock()
                            .unwrap()
                            .push(Event::Grant(me, Instant::now()));
                        tokio::time::sleep(took).await;
                        drop(p);
                    };
                    page(permits.clone(), events.clone()).await;
                    if pages > 1 {
                        events.lock().unwrap().push(Event::Rest(me, Instant::now()));
                        futures_util::future::join_all(
                            (1..pages).map(|_| page(permits.clone(), events.clone())),
                        )
                        .await;
                    }
                    (s.key, me, began, Instant::now(), pages)
                });
            }
            let (key, me, began, ended, pages) = running.join_next().await.unwrap().unwrap();
            schedule.finished(&key, began, ended, Cadence::Regular);
            spans.insert(me, (began, ended, pages));
            done += 1;
        }
        // As fast as the slots allow: every slot busy all the time.
        let took = Instant::now() - start;
        let mean = latency + Duration::from_millis(3);
        let ideal = mean * (requests.div_ceil(SLOTS)) as u32;
        assert!(took <= ideal.mul_f64(1.01), "{took:?} vs {ideal:?}");
        // Once a target asked for its remaining pages, no target started after it got a slot
        // until all of them had one. (The slot its first page frees, at that same instant, may
        // already have gone to the next in line.)
        let events = events.lock().unwrap().clone();
        let mut checked = 0;
        for (i, e) in events.iter().enumerate() {
            let Event::Rest(me, asked) = *e else { continue };
            let mut left = spans[&me].2 - 1;
            for later in &events[i + 1..] {
                if left == 0 {
                    break;
                }
                match *later {
                    Event::Grant(who, _) if who == me => left -= 1,
                    Event::Grant(who, at) if at > asked => {
                        assert!(who < me, "target {who} went ahead of {me}")
                    }
                    _ => {}
                }
            }
            assert_eq!(left, 0);
            checked += 1;
        }
        assert!(checked >= TARGETS / 20, "{checked} multi-page targets");
        // So a 5-page target takes little more than its own pages' time.
        for (began, ended, pages) in spans.values() {
            if *pages == 5 {
                assert!(*ended - *began <= latency * 20, "{:?}", *ended - *began);
            }
        }
    }

    #[test]
    fn a_target_removed_and_added_again_while_it_runs_is_not_started_twice() {
        let start = Instant::now();
        let interval = Duration::from_secs(60);
        let mut s = Schedule::new(interval, start);
        let ks = keys(1);
        s.set_targets(&ks, start);
        let run = s.start_next(start).unwrap();
        // A reload drops it, another brings it back, all while its poll runs.
        s.set_targets([], start);
        assert_eq!(s.len(), 0);
        assert_eq!(s.set_targets(&ks, start), 1);
        assert_eq!(s.start_next(start + interval), None, "still running");
        // When the old poll ends, it is due at once (it is new to the plan).
        let end = start + Duration::from_secs(1);
        s.finished(&run.key, start, end, Cadence::Regular);
        assert_eq!(s.due_of(&run.key), Some(end));
        assert_eq!(s.start_next(end).map(|n| n.key), Some(run.key));
    }

    #[test]
    fn a_running_target_is_never_handed_out_twice_and_removed_ones_are_forgotten() {
        let start = Instant::now();
        let interval = Duration::from_secs(10);
        let mut s = Schedule::new(interval, start);
        let ks = keys(3);
        s.set_targets(&ks, start);
        let a = s.start_next(start).unwrap();
        let b = s.start_next(start).unwrap();
        let c = s.start_next(start).unwrap();
        assert_eq!(s.start_next(start + interval * 5), None, "all running");
        assert_eq!(s.running(), 3);
        // A reload drops `b` while it runs and adds a new target, due at once.
        let new = key(99);
        let later = start + Duration::from_secs(1);
        assert_eq!(s.set_targets([&a.key, &c.key, &new], later), 1, "one added");
        assert_eq!(s.due_of(&b.key), None, "removed");
        s.finished(&b.key, start, later, Cadence::Regular);
        assert_eq!(s.due_of(&b.key), None);
        assert_eq!(s.len(), 3);
        assert_eq!(s.start_next(later).unwrap().key, new);
        s.finished(&a.key, start, later, Cadence::Regular);
        // Its first slot at least half an interval after it started.
        let offset = Schedule::offset_of(&a.key, interval);
        let slot = if offset >= interval / 2 {
            start + offset
        } else {
            start + offset + interval
        };
        assert_eq!(s.due_of(&a.key), Some(slot));
        // A shorter interval moves idle targets to their new slots.
        s.set_intervals(Duration::from_secs(4), Duration::from_secs(4));
        let due = s.due_of(&a.key).unwrap();
        let offset = Schedule::offset_of(&a.key, Duration::from_secs(4));
        assert!(due >= start + Duration::from_secs(2) && due < start + Duration::from_secs(6));
        assert_eq!(
            (due - start - offset).as_nanos() % Duration::from_secs(4).as_nanos(),
            0
        );
    }
}
