//! What a publish gathers from the targets' states (series, statuses, counts, stale targets
//! dropped) and the log lines it writes about them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::state::{Clocks, TargetState};
use crate::domain::{unix_seconds, Cause, TargetKey};
use crate::metrics::{SeatSeries, TargetView};
use crate::polling::plan::{Plan, Target};
use crate::polling::schedule::Schedule;
use crate::polling::status::TargetStatus;

/// What one publish gathers from the targets' states, in plan order.
pub(super) struct Gathered {
    /// Series of every polled target.
    pub(super) views: Vec<TargetView>,
    /// One per planned target.
    pub(super) statuses: Vec<TargetStatus>,
    /// Targets whose series went stale in this publish.
    pub(super) dropped: Vec<Target>,
    pub(super) ok: usize,
    pub(super) polled: usize,
    pub(super) tenants: usize,
    pub(super) empty: usize,
    /// Requests per round: an empty target's page counts once every empty interval.
    pub(super) requests: f64,
    /// Targets whose last poll failed, by cause.
    pub(super) down: HashMap<Cause, usize>,
}

/// Drops the series of targets failing for longer than `stale_after` (counted from their
/// first failure after the last success, never from the last success: a slow round is not a
/// failure), and gathers the views, statuses and counts of a publish.
pub(super) fn gather(
    plan: &Plan,
    states: &mut HashMap<TargetKey, TargetState>,
    schedule: &Schedule,
    began: Instant,
) -> Gathered {
    let stale_after = plan.poll.stale_after;
    let empty_share = plan.poll.interval.as_secs_f64() / plan.poll.empty_interval.as_secs_f64();
    let clocks = Clocks::now();
    let next_poll = |key: &TargetKey| schedule.due_of(key).map(|t| clocks.wall(t));
    let mut g = Gathered {
        views: Vec::with_capacity(plan.targets.len()),
        statuses: Vec::with_capacity(plan.targets.len()),
        dropped: Vec::new(),
        ok: 0,
        polled: 0,
        tenants: 0,
        empty: 0,
        requests: 0.0,
        down: HashMap::new(),
    };
    for target in &plan.targets {
        let key = target.key();
        let Some(state) = states.get_mut(&key) else {
            // Not polled yet: listed (for readiness), but no series.
            g.statuses
                .push(TargetStatus::unpolled(target, next_poll(&key)));
            g.requests += 1.0;
            continue;
        };
        let stale = state
            .failing_since
            .is_some_and(|t| began.duration_since(t) > stale_after);
        if stale && state.seats.tenants() > 0 {
            g.dropped.push(target.clone());
            state.seats = Arc::new(SeatSeries::empty());
        }
        g.ok += usize::from(state.up());
        if let Some(error) = state.last_error.as_deref().filter(|_| !state.up()) {
            // The summary starts with the cause ("http_4xx (HTTP 403)"); a panicked poll's
            // has none.
            let cause = error.split(' ').next().and_then(Cause::parse);
            if let Some(cause) = cause {
                *g.down.entry(cause).or_default() += 1;
            }
        }
        g.polled += usize::from(state.last_poll.is_some());
        g.tenants += state.seats.tenants();
        if state.empty() {
            g.empty += 1;
            g.requests += empty_share;
        } else {
            g.requests += f64::from(state.requests.unwrap_or(1));
        }
        g.statuses
            .push(state.status(target, next_poll(&key), clocks));
        g.views.push(TargetView {
            labels: target.labels.clone(),
            up: state.up(),
            last_success: state.last_success.map(unix_seconds),
            seats: state.seats.clone(),
            last_tenant_count: state.last_tenant_count,
            counters: state.counters.clone(),
        });
    }
    g
}

/// Numbers for the summary log lines.
pub(super) struct Summary {
    pub(super) targets: usize,
    pub(super) ok: usize,
    pub(super) tenants: usize,
    pub(super) series: usize,
    /// Requests a round needs (an estimate: see `Gathered::requests`).
    pub(super) requests: f64,
    /// Requests sent to the API since start, token requests and retries included.
    pub(super) sent: u64,
    /// Targets on the empty cadence.
    pub(super) empty: usize,
}

impl Summary {
    pub(super) fn log(&self, message: &str, took: Option<Duration>, interval: Duration) {
        let duration_ms = took.map(|d| d.as_millis() as u64);
        let interval = crate::config::format_duration(interval).to_string();
        let failed = self.targets - self.ok;
        if self.ok == 0 && self.targets > 0 {
            tracing::warn!(
                targets = self.targets,
                ok = self.ok,
                failed,
                tenants = self.tenants,
                series = self.series,
                requests_sent = self.sent,
                requests_per_round = self.requests.round() as u64,
                empty = self.empty,
                duration_ms,
                interval,
                "{message}; every target failed"
            );
        } else {
            tracing::info!(
                targets = self.targets,
                ok = self.ok,
                failed,
                tenants = self.tenants,
                series = self.series,
                requests_sent = self.sent,
                requests_per_round = self.requests.round() as u64,
                empty = self.empty,
                duration_ms,
                interval,
                "{message}"
            );
        }
    }
}

/// One line for every target whose series were dropped in one publish (a fleet-wide outage
/// drops thousands at once), naming a few of them.
pub(super) fn log_dropped(dropped: &[Target], stale_after: Duration) {
    let Some(first) = dropped.first() else {
        return;
    };
    let examples: Vec<String> = dropped
        .iter()
        .take(3)
        .map(|t| format!("{}/{}", t.request.customer_id, t.request.tenant_type))
        .collect();
    tracing::warn!(
        targets = dropped.len(),
        customer_id = &*first.request.customer_id,
        tenant_type = first.request.tenant_type.name(),
        examples = %examples.join(", "),
        stale_after = %crate::config::format_duration(stale_after),
        "no successful poll within stale_after of the first failure; dropping the targets' series"
    );
}
