//! The scheduler: polls every target at start and then every interval, never overlapping
//! cycles, and publishes a complete new snapshot after each cycle.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::{ApiError, Client, Fetched, TargetRequest};
use crate::config::{Customer, PollConfig, TenantType};
use crate::metrics::{render_snapshot, Metrics, TargetLabels, TargetView, TenantSeats};

/// One (customer, tenant type) pair, with its labels escaped once.
#[derive(Debug, Clone)]
pub struct Target {
    /// Labels shared by all series of the target.
    pub labels: Arc<TargetLabels>,
    /// What to ask the API.
    pub request: TargetRequest,
}

/// Everything a poll cycle needs; replaced as a whole on config reload.
pub struct Plan {
    /// Targets of this shard, in config order.
    pub targets: Vec<Target>,
    /// The API client.
    pub client: Arc<Client>,
    /// Scheduling.
    pub poll: PollConfig,
}

/// A stable shard number for a customer: FNV-1a (64-bit) of the id's UTF-8 bytes, modulo
/// `total`. The hash is fixed by its definition, so it is the same on every version and
/// platform.
pub fn shard_of(customer_id: &str, total: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = customer_id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(total.max(1))) as u32
}

/// The targets of `customers` that belong to `shard` of `total`.
pub fn targets_of(customers: &[Customer], shard: u32, total: u32) -> Vec<Target> {
    customers
        .iter()
        .filter(|c| shard_of(&c.id, total) == shard)
        .flat_map(|c| {
            let id: Arc<str> = c.id.as_str().into();
            let name: Arc<str> = c.name.as_str().into();
            c.tenant_types.iter().map(move |&t| Target {
                labels: Arc::new(TargetLabels::new(id.clone(), name.clone(), t)),
                request: TargetRequest {
                    customer_id: id.clone(),
                    tenant_type: t,
                    license_assigned_status: c.license_assigned_status,
                },
            })
        })
        .collect()
}

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
    /// The error of the last poll, if it failed.
    pub last_error: Option<String>,
    /// When the last successful poll finished.
    pub last_success: Option<SystemTime>,
    /// Tenants currently published for the target.
    pub tenants: usize,
}

/// What the poller publishes for the HTTP server besides the metrics.
#[derive(Debug, Default)]
pub struct Status {
    /// One entry per target of the current plan.
    pub targets: Vec<TargetStatus>,
    /// Completed cycles.
    pub cycles: u64,
}

impl Status {
    /// The status before any poll: every target listed, none polled.
    pub fn pending(plan: &Plan) -> Status {
        Status {
            targets: plan
                .targets
                .iter()
                .map(|t| target_status(t, None))
                .collect(),
            cycles: 0,
        }
    }

    /// True once every target has been polled at least once.
    pub fn ready(&self) -> bool {
        self.cycles > 0 && self.targets.iter().all(|t| t.last_poll.is_some())
    }
}

#[derive(Default)]
struct TargetState {
    tenants: Arc<Vec<TenantSeats>>,
    last_tenant_count: Option<usize>,
    last_poll: Option<SystemTime>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
}

impl TargetState {
    /// Polled at least once, and the last poll succeeded.
    fn up(&self) -> bool {
        self.last_poll.is_some() && self.last_error.is_none()
    }
}

type Key = (Arc<str>, TenantType);

/// Runs poll cycles until `shutdown` completes. A new plan sent on `plans` (config reload)
/// starts a cycle at once; targets that stay keep their last-good series.
pub async fn run(
    mut plans: watch::Receiver<Arc<Plan>>,
    metrics: Arc<Metrics>,
    status: Arc<ArcSwap<Status>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut states: HashMap<Key, TargetState> = HashMap::new();
    let mut cycles = 0u64;
    loop {
        let plan = plans.borrow_and_update().clone();
        // Show the new targets (not yet polled) on the landing page and in readiness at once.
        status.store(Arc::new(Status {
            targets: plan
                .targets
                .iter()
                .map(|t| target_status(t, states.get(&key_of(t))))
                .collect(),
            cycles,
        }));
        let mut ticker = tokio::time::interval(plan.poll.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                changed = plans.changed() => {
                    if changed.is_err() {
                        // The sender is gone: keep the current plan.
                        std::future::pending::<()>().await;
                    }
                    break;
                }
                _ = ticker.tick() => {}
            }
            let started = Instant::now();
            let cut = tokio::select! {
                _ = &mut shutdown => return,
                cut = cycle(&plan, &mut states, &metrics, started + plan.poll.interval) => cut,
            };
            let took = started.elapsed();
            cycles += 1;
            publish(&plan, &mut states, &metrics, &status, cycles, took);
            // Counted after the snapshot is out: a scrape that sees the cycle counted also
            // sees its results.
            if cut > 0 || took > plan.poll.interval {
                metrics.poll_overruns.inc();
            }
            metrics.poll_duration.observe(took.as_secs_f64());
        }
    }
}

/// Polls every target of the plan once, concurrently (the transport bounds requests in
/// flight), until `deadline`: targets still unfinished then are cancelled and count as failed
/// with cause `timeout`. Targets polled longest ago go first, so a cycle cut short leaves
/// other targets behind next time. Returns how many were cut.
async fn cycle(
    plan: &Plan,
    states: &mut HashMap<Key, TargetState>,
    metrics: &Metrics,
    deadline: Instant,
) -> usize {
    let mut order: Vec<usize> = (0..plan.targets.len()).collect();
    order.sort_by_key(|&i| {
        states
            .get(&key_of(&plan.targets[i]))
            .and_then(|s| s.last_poll)
    });
    let mut tasks = JoinSet::new();
    for i in order {
        let client = plan.client.clone();
        let request = plan.targets[i].request.clone();
        tasks.spawn(async move { (i, client.fetch_tenants(&request).await) });
    }
    let mut unfinished = vec![true; plan.targets.len()];
    let mut token_failures = 0;
    let mut token_error = None;
    loop {
        let joined = match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(joined)) => joined,
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                break;
            }
        };
        let (i, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "poll task failed");
                continue;
            }
        };
        unfinished[i] = false;
        let target = &plan.targets[i];
        let state = states.entry(key_of(target)).or_default();
        match result {
            Ok(fetched) => record_success(target, state, metrics, fetched),
            Err(e @ ApiError::Token(_)) => {
                // One line per cycle, not one per target: they all fail the same way.
                token_failures += 1;
                record_failure(target, state, metrics, e.cause(), e.to_string(), false);
                token_error.get_or_insert(e);
            }
            Err(e) => record_failure(target, state, metrics, e.cause(), e.to_string(), true),
        }
    }
    if let Some(error) = token_error {
        tracing::warn!(
            targets = token_failures,
            cause = "token",
            error = %error,
            "cannot get an access token; targets that needed one are down"
        );
    }
    let cut = unfinished.iter().filter(|u| **u).count();
    if cut > 0 {
        let message = format!(
            "poll cycle reached its deadline (poll.interval, {}) before this target finished",
            humantime::format_duration(plan.poll.interval)
        );
        for (target, _) in plan.targets.iter().zip(&unfinished).filter(|(_, u)| **u) {
            let state = states.entry(key_of(target)).or_default();
            record_failure(target, state, metrics, "timeout", message.clone(), false);
        }
        tracing::warn!(
            unfinished = cut,
            targets = plan.targets.len(),
            interval_ms = plan.poll.interval.as_millis() as u64,
            "poll cycle cut at its deadline (the interval); unfinished targets count as timed out \
             and go first next cycle: raise poll.interval or the API limits"
        );
    }
    cut
}

fn record_success(target: &Target, state: &mut TargetState, metrics: &Metrics, fetched: Fetched) {
    let Fetched {
        items: tenants,
        invalid,
        pages,
    } = fetched;
    let customer_id = &*target.request.customer_id;
    let tenant_type = target.request.tenant_type.name();
    let now = SystemTime::now();
    if !invalid.is_empty() {
        metrics
            .invalid_records
            .with_label_values(&[customer_id, tenant_type])
            .inc_by(invalid.len() as u64);
        tracing::warn!(
            customer_id,
            tenant_type,
            skipped = invalid.len(),
            first = %invalid[..invalid.len().min(3)].join("; "),
            "skipped invalid tenant records"
        );
    }
    tracing::debug!(
        customer_id,
        tenant_type,
        tenants = tenants.len(),
        pages,
        "target polled"
    );
    state.last_poll = Some(now);
    state.last_tenant_count = Some(tenants.len());
    state.tenants = Arc::new(tenants);
    state.last_success = Some(now);
    state.last_error = None;
}

fn record_failure(
    target: &Target,
    state: &mut TargetState,
    metrics: &Metrics,
    cause: &str,
    error: String,
    log: bool,
) {
    let customer_id = &*target.request.customer_id;
    let tenant_type = target.request.tenant_type.name();
    metrics
        .target_errors
        .with_label_values(&[customer_id, tenant_type, cause])
        .inc();
    if log {
        tracing::warn!(customer_id, tenant_type, cause, error = %error, "target poll failed");
    } else {
        tracing::debug!(customer_id, tenant_type, cause, error = %error, "target poll failed");
    }
    state.last_poll = Some(SystemTime::now());
    state.last_error = Some(error);
}

/// Drops stale series, renders the snapshot and the status, and logs the cycle summary.
fn publish(
    plan: &Plan,
    states: &mut HashMap<Key, TargetState>,
    metrics: &Metrics,
    status: &ArcSwap<Status>,
    cycles: u64,
    took: Duration,
) {
    let now = SystemTime::now();
    // Forget targets that are no longer configured.
    let keys: std::collections::HashSet<Key> = plan.targets.iter().map(key_of).collect();
    states.retain(|k, _| keys.contains(k));
    let mut ok = 0;
    let mut views = Vec::with_capacity(plan.targets.len());
    let mut statuses = Vec::with_capacity(plan.targets.len());
    for target in &plan.targets {
        let key = (
            target.request.customer_id.clone(),
            target.request.tenant_type,
        );
        let state = states.entry(key).or_default();
        let up = state.up();
        ok += usize::from(up);
        let stale = state
            .last_success
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() > plan.poll.stale_after);
        if stale && !state.tenants.is_empty() {
            tracing::warn!(
                customer_id = &*target.request.customer_id,
                tenant_type = target.request.tenant_type.name(),
                "no successful poll within stale_after; dropping the target's series"
            );
            state.tenants = Arc::new(Vec::new());
        }
        statuses.push(target_status(target, Some(state)));
    }
    for target in &plan.targets {
        let key = (
            target.request.customer_id.clone(),
            target.request.tenant_type,
        );
        if let Some(state) = states.get(&key) {
            views.push(TargetView {
                labels: &target.labels,
                up: state.up(),
                last_success: state.last_success.map(unix_seconds),
                tenants: &state.tenants,
                last_tenant_count: state.last_tenant_count,
            });
        }
    }
    let snapshot = render_snapshot(&views);
    let series = snapshot.series;
    metrics.publish(snapshot);
    let tenants: usize = statuses.iter().map(|s| s.tenants).sum();
    status.store(Arc::new(Status {
        targets: statuses,
        cycles,
    }));
    tracing::info!(
        targets = plan.targets.len(),
        ok,
        failed = plan.targets.len() - ok,
        tenants,
        series,
        duration_ms = took.as_millis() as u64,
        "poll cycle complete"
    );
}

fn key_of(target: &Target) -> Key {
    (
        target.request.customer_id.clone(),
        target.request.tenant_type,
    )
}

fn target_status(target: &Target, state: Option<&TargetState>) -> TargetStatus {
    TargetStatus {
        customer_id: target.labels.customer_id.clone(),
        customer_name: target.labels.customer_name.clone(),
        tenant_type: target.labels.tenant_type,
        last_poll: state.and_then(|s| s.last_poll),
        last_error: state.and_then(|s| s.last_error.clone()),
        last_success: state.and_then(|s| s.last_success),
        tenants: state.map_or(0, |s| s.tenants.len()),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_hash_is_fixed() {
        // FNV-1a 64 reference values: these must never change between versions.
        assert_eq!(
            shard_of("", u32::MAX),
            (0xcbf2_9ce4_8422_2325u64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            shard_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_target() {
        use crate::config::{Config, Environment};
        struct NoEnv;
        impl Environment for NoEnv {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
            fn read_file(&self, _: &std::path::Path) -> std::io::Result<String> {
                Err(std::io::ErrorKind::NotFound.into())
            }
        }
        let mut yaml = String::from(
            "elements:\n  token_url: https://id.example.com/t\n  client_id: x\n  client_secret: y\ncustomers:\n",
        );
        for i in 0..300 {
            yaml.push_str(&format!("  - id: {i:08x}-b9d4-4000-a165-97db0000fc15\n"));
        }
        let config = Config::parse(&yaml, &NoEnv).unwrap();
        let all: Vec<Key> = targets_of(&config.customers, 0, 1)
            .iter()
            .map(key_of)
            .collect();
        assert_eq!(all.len(), 1200);
        for total in 1..=8u32 {
            let mut seen = std::collections::HashMap::new();
            for shard in 0..total {
                let targets = targets_of(&config.customers, shard, total);
                // Each shard gets a fair share (within 40 % of even).
                let even = all.len() / total as usize;
                assert!(targets.len() * 10 >= even * 6 && targets.len() * 10 <= even * 14);
                for t in &targets {
                    assert_eq!(shard_of(&t.request.customer_id, total), shard);
                    let previous = seen.insert(key_of(t), shard);
                    assert!(
                        previous.is_none(),
                        "{:?} in two shards of {total}",
                        key_of(t)
                    );
                }
            }
            assert_eq!(
                seen.len(),
                all.len(),
                "every target in some shard of {total}"
            );
        }
    }
}
