//! What the HTTP server sees of polling: the [`Status`] the poller publishes after every
//! batch of results (and at once for a new plan), one [`TargetStatus`] per planned target.
//! The server reads nothing else of polling.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::domain::TenantType;
use crate::polling::plan::{ListFetched, Plan, Target};
use crate::polling::seat_health::SeatHealth;

/// The last known state of a target, as shown on the landing page.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    /// Customer id.
    pub customer_id: Arc<str>,
    /// Customer display name.
    pub customer_name: Arc<str>,
    /// Tenant type.
    pub tenant_type: TenantType,
    /// When the last poll finished, if it ran.
    pub last_poll: Option<SystemTime>,
    /// What failed in the last poll, if it failed: the cause and HTTP status (no bodies).
    pub last_error: Option<String>,
    /// When the last successful poll finished.
    pub last_success: Option<SystemTime>,
    /// Tenants currently published for the target.
    pub tenants: usize,
    /// How long the last poll took, all pages and retries.
    pub last_duration: Option<Duration>,
    /// When the target is due next (`None` while it runs, or before the poll loop).
    pub next_poll: Option<SystemTime>,
    /// Since when it has been failing (the end of its first failed poll after the last
    /// success).
    pub failing_since: Option<SystemTime>,
    /// Up, and its last poll found no tenants: polled every `poll.empty_interval`.
    pub empty: bool,
}

/// What the poller publishes for the HTTP server besides the metrics.
#[derive(Debug, Default)]
pub struct Status {
    /// One entry per target of the current plan.
    pub targets: Vec<TargetStatus>,
    /// Target polls completed since start.
    pub polls: u64,
    /// Whether the poll loop has published this status (false before it starts).
    pub live: bool,
    /// Whether every target is known (see [`Plan::complete`]).
    pub complete: bool,
    /// Whether the first pass over every target has completed. From then on the exporter
    /// stays ready: a reload or a customer list that adds a slow target does not take a
    /// serving exporter out of its Service.
    pub settled: bool,
    /// Tenants out of seats and low on seats, from the published series.
    pub seat_health: SeatHealth,
    /// Seat series in the snapshot published with this status (two per tenant).
    pub series: usize,
    /// The share of the interval a round over every target needs (as
    /// `poll_utilization_ratio`); above 1 the interval cannot be kept.
    pub utilization: f64,
    /// When customer discovery last fetched the list; `None` while discovery is off.
    pub discovery: Option<Arc<ListFetched>>,
    /// What the HTTP server renders from this status once and shares between requests
    /// (empty when published).
    pub bodies: Bodies,
}

impl Status {
    /// The status before any poll: every target listed, none polled.
    pub fn pending(plan: &Plan) -> Status {
        Status {
            targets: plan
                .targets
                .iter()
                .map(|t| TargetStatus::unpolled(t, None))
                .collect(),
            polls: 0,
            live: false,
            complete: plan.complete,
            settled: false,
            seat_health: SeatHealth::default(),
            series: 0,
            utilization: 0.0,
            discovery: plan.discovery.clone(),
            bodies: Default::default(),
        }
    }

    /// The counts the landing page summarises this status with, counted by the first
    /// request that needs them.
    pub fn counts(&self) -> Counts {
        *self.bodies.counts.get_or_init(|| {
            let mut c = Counts::default();
            let mut customers = HashSet::new();
            for t in &self.targets {
                match Health::of(t) {
                    Health::Up => c.up += 1,
                    Health::Down => c.down += 1,
                    Health::Unknown => c.unknown += 1,
                }
                c.empty += usize::from(t.empty);
                c.tenants += t.tenants;
                customers.insert(&*t.customer_id);
            }
            c.customers = customers.len();
            c
        })
    }

    /// True once the poll loop runs, every target is known and has been polled at least once;
    /// stays true after that (see [`Status::settled`]).
    pub fn ready(&self) -> bool {
        self.live
            && (self.settled || self.complete && self.targets.iter().all(|t| t.last_poll.is_some()))
    }
}

impl TargetStatus {
    /// A target not polled yet (or whose poll state is gone): listed, due at `next_poll`.
    pub fn unpolled(target: &Target, next_poll: Option<SystemTime>) -> TargetStatus {
        TargetStatus {
            customer_id: target.labels.customer_id.clone(),
            customer_name: target.labels.customer_name.clone(),
            tenant_type: target.labels.tenant_type,
            last_poll: None,
            last_error: None,
            last_success: None,
            tenants: 0,
            last_duration: None,
            next_poll,
            failing_since: None,
            empty: false,
        }
    }
}

/// A target's health, as Prometheus' targets API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The last poll succeeded.
    Up,
    /// The last poll failed.
    Down,
    /// Not polled yet.
    Unknown,
}

impl Health {
    /// The health of `t`.
    pub fn of(t: &TargetStatus) -> Health {
        match (&t.last_poll, &t.last_error) {
            (None, _) => Health::Unknown,
            (Some(_), None) => Health::Up,
            (Some(_), Some(_)) => Health::Down,
        }
    }

    /// `up`, `down` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

/// What the server derives from one published [`Status`], made on first need and shared by
/// every request of that status; it goes with the status.
#[derive(Debug, Default)]
pub struct Bodies {
    /// The unfiltered `/api/v1/targets` answer.
    pub targets: OnceCell<Bytes>,
    /// The landing page's summary counts (see [`Status::counts`]).
    counts: OnceLock<Counts>,
}

/// The counts the landing page summarises a status with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Targets up.
    pub up: usize,
    /// Targets down.
    pub down: usize,
    /// Targets not polled yet.
    pub unknown: usize,
    /// Up targets whose last poll found no tenants.
    pub empty: usize,
    /// Distinct customers.
    pub customers: usize,
    /// Tenants published, over all targets.
    pub tenants: usize,
}
