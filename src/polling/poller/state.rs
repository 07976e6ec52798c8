//! The poll loop's own state of each target: its last results and series
//! ([`TargetState`]), how a poll's outcome changes them, and the two clocks they are kept on
//! ([`Clocks`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::domain::label;
use crate::elements::client::{ApiError, Fetched};
use crate::metrics::{Metrics, SeatSeries, TargetCounters};
use crate::polling::plan::Target;
use crate::polling::status::TargetStatus;

/// What the poll loop knows of one target: its last results, its series and its counters.
#[derive(Default)]
pub(super) struct TargetState {
    /// The series of the last successful poll (the only copy of the seat data).
    pub(super) seats: Arc<SeatSeries>,
    pub(super) last_tenant_count: Option<usize>,
    pub(super) last_poll: Option<SystemTime>,
    pub(super) last_success: Option<SystemTime>,
    /// When the first failed poll after the last success ended (`None` while the last poll
    /// succeeded): late is not down, so a target is failing from when a poll says so. Staleness counts from here, not from the last success: a target that is
    /// only waiting for its turn (a round longer than `stale_after`) never loses its series.
    /// On the monotonic clock, so a step of the wall clock (NTP, a VM resumed) neither drops
    /// nor keeps series wrongly.
    pub(super) failing_since: Option<Instant>,
    /// Restored from the persistence file while up: nobody polled it since this instant (the
    /// last write before the restart), so a first failure counts as failing from here.
    pub(super) unknown_since: Option<Instant>,
    pub(super) last_error: Option<String>,
    /// Requests the last poll needed (its pages), for the utilization estimate.
    pub(super) requests: Option<u32>,
    /// How long the last poll took.
    pub(super) last_duration: Option<Duration>,
    /// The last poll answered no tenants while series were published: they are kept (and
    /// the target stays on `interval`) until a second empty answer in a row confirms it.
    pub(super) empty_unconfirmed: bool,
    /// What the target fetches changed (filter, API, client) since its series were polled:
    /// they are served until the first answer to the new request replaces them, and dropped
    /// if that poll fails (they are not last-good data of the new request).
    pub(super) renewed: bool,
    /// Its errors and invalid records (shared with the snapshots that show them).
    pub(super) counters: Arc<TargetCounters>,
}

impl TargetState {
    /// Polled at least once, and the last poll succeeded.
    pub(super) fn up(&self) -> bool {
        self.last_poll.is_some() && self.last_error.is_none()
    }

    /// Up, and its last poll found no tenants: on the empty cadence.
    pub(super) fn empty(&self) -> bool {
        self.up() && self.last_tenant_count == Some(0)
    }

    /// How the server shows `target` in this state, due at `next_poll`.
    pub(super) fn status(
        &self,
        target: &Target,
        next_poll: Option<SystemTime>,
        clocks: Clocks,
    ) -> TargetStatus {
        TargetStatus {
            last_poll: self.last_poll,
            last_error: self.last_error.clone(),
            last_success: self.last_success,
            tenants: self.seats.tenants(),
            last_duration: self.last_duration,
            failing_since: self.failing_since.map(|t| clocks.wall(t)),
            empty: self.empty(),
            ..TargetStatus::unpolled(target, next_poll)
        }
    }

    /// A poll that found no tenants where series are published: the series stay, and the
    /// next empty answer confirms it. The target's health is left as it was: an up target
    /// stays up, a failing one stays down (its stale clock runs on: held data is last-good
    /// data).
    pub(super) fn hold_empty(&mut self) {
        self.empty_unconfirmed = true;
        self.requests = Some(1);
        if self.up() {
            self.last_poll = Some(SystemTime::now());
            self.unknown_since = None;
        }
    }

    /// A successful poll: its tenants become the series.
    pub(super) fn succeeded(&mut self, metrics: &Metrics, fetched: Fetched) {
        let Fetched {
            items: mut tenants,
            invalid,
            pages,
            ..
        } = fetched;
        self.empty_unconfirmed = false;
        // Label values are bounded before anything keeps them (series, status, state file).
        metrics
            .polling()
            .labels_cut(label::cut_tenants(&mut tenants));
        let now = SystemTime::now();
        if !invalid.is_empty() {
            Arc::make_mut(&mut self.counters).invalid(invalid.len());
            tracing::warn!(
                skipped = invalid.len(),
                first = %invalid[..invalid.len().min(3)].join("; "),
                "skipped invalid tenant records"
            );
        }
        tracing::debug!(tenants = tenants.len(), pages, "target polled");
        self.last_poll = Some(now);
        self.last_tenant_count = Some(tenants.len());
        self.seats = Arc::new(SeatSeries::new(&tenants));
        self.last_success = Some(now);
        self.failing_since = None;
        self.unknown_since = None;
        self.last_error = None;
        self.requests = Some(pages.max(1));
    }

    /// A failed poll: the target is down, failing since its first failure after the last
    /// success.
    pub(super) fn failed(&mut self, error: &ApiError) {
        let cause = error.cause();
        Arc::make_mut(&mut self.counters).failed(cause);
        tracing::debug!(cause = cause.as_str(), error = %error, "target poll error");
        // Two empty answers in a row confirm a drop to nothing; a failure between them breaks
        // the row.
        self.empty_unconfirmed = false;
        self.last_poll = Some(SystemTime::now());
        self.last_error = Some(error.summary());
        let since = self.unknown_since.take().unwrap_or_else(Instant::now);
        self.failing_since.get_or_insert(since);
    }
}

/// Monotonic instants of the poll loop as wall-clock times, from one moment on both clocks.
#[derive(Clone, Copy)]
pub(super) struct Clocks {
    now: Instant,
    /// The wall-clock time at `now`.
    pub(super) wall: SystemTime,
}

impl Clocks {
    /// Now, on both clocks.
    pub(super) fn now() -> Clocks {
        Clocks {
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// `t` on the wall clock.
    pub(super) fn wall(self, t: Instant) -> SystemTime {
        if t >= self.now {
            self.wall + (t - self.now)
        } else {
            self.wall
                .checked_sub(self.now - t)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }
}
