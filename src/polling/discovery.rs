//! Customer auto-discovery: fetches the customer list every `discovery.interval` (at once
//! after a config change) and hands it to the [`Planner`], which plans and publishes. A list
//! that cannot be fetched is counted and logged by cause; until the first one arrives it is
//! retried soon.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use crate::domain::{label, Cause};
use crate::elements::client::{ApiError, DiscoveredCustomer, Fetched};
use crate::polling::plan::planner::{Planner, Taken};

/// The `cause` counted on `discovery_errors_total` when a customer list is held.
pub const SHRUNK: Cause = Cause::Shrunk;

/// Refreshes the customer list every `discovery.interval` of the current config (at once
/// after a config change) until `shutdown`. `first` is told when the first attempt is over,
/// successful or not, so that start-up can wait for it.
pub async fn run(
    planner: Arc<Planner>,
    first: oneshot::Sender<()>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut first = Some(first);
    let mut failures = 0u32;
    // Whether a list has been fetched by this process (one restored from the persistence
    // file may be old: until a fresh one arrives, retry soon).
    let mut fetched_here = false;
    let mut changes = planner.changes();
    loop {
        let (generation, config, client) = planner.current();
        changes.borrow_and_update();
        let Some(discovery) = config.discovery.clone() else {
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = changes.changed() => continue,
            }
        };
        let fetched = tokio::select! {
            _ = &mut shutdown => return,
            fetched = client.fetch_customers() => fetched,
        };
        if take_list(
            &planner,
            generation,
            fetched,
            failures + 1,
            discovery.interval,
        ) {
            fetched_here = true;
        } else {
            failures += 1;
        }
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
        // Until this process has fetched a list, retry soon (1 s, doubling, up to the
        // interval): a network blip at start must not leave the exporter without customers
        // (or with a restored list of unknown age) for an hour.
        let wait = if fetched_here {
            failures = 0;
            discovery.interval
        } else {
            first_list_retry(failures, discovery.interval)
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
            _ = changes.changed() => {}
        }
    }
}

/// Applies a customer list fetched under config `generation`, or counts and logs why there
/// is none (`failures` counting this one); true when a list arrived.
fn take_list(
    planner: &Planner,
    generation: u64,
    fetched: Result<Fetched<DiscoveredCustomer>, ApiError>,
    failures: u32,
    interval: Duration,
) -> bool {
    match fetched {
        Ok(mut list) => {
            // The list's names become label values (customer_name, customer_info): bounded
            // before the plan keeps them.
            let cut: u64 = list
                .items
                .iter_mut()
                .map(|c| {
                    [
                        &mut c.organization,
                        &mut c.country_or_region,
                        &mut c.management_mode,
                    ]
                    .into_iter()
                    .map(|v| u64::from(label::cut_in_place(v)))
                    .sum::<u64>()
                })
                .sum();
            planner.metrics().polling().labels_cut(cut);
            if !list.invalid.is_empty() {
                tracing::warn!(
                    skipped = list.invalid.len(),
                    first = %list.invalid[..list.invalid.len().min(3)].join("; "),
                    "skipped invalid customer records"
                );
            }
            tracing::info!(
                customers = list.items.len(),
                pages = list.pages,
                "customer list fetched"
            );
            match planner.apply_discovered(generation, list.items) {
                Taken::Accepted => planner.list_fetched(SystemTime::now()),
                Taken::Held { before, now } => {
                    planner.metrics().polling().discovery_failed(SHRUNK);
                    tracing::warn!(
                        cause = SHRUNK.as_str(),
                        before,
                        now,
                        "the customer list collapsed (empty, or fewer than half the customers); \
                         keeping the previous list until the next refresh returns the same"
                    );
                }
            }
            true
        }
        Err(e) => {
            planner.metrics().polling().discovery_failed(e.cause());
            if planner.has_list() {
                tracing::warn!(
                    cause = e.cause().as_str(),
                    error = %e,
                    "cannot fetch the customer list; keeping the last one"
                );
            } else {
                tracing::warn!(
                    cause = e.cause().as_str(),
                    error = %e,
                    retry_in = %crate::config::format_duration(first_list_retry(failures, interval)),
                    "cannot fetch the first customer list; not ready until it arrives"
                );
            }
            false
        }
    }
}

/// The wait before another try at the first customer list after `failures` failures: 1 s,
/// doubling, never more than `interval`.
fn first_list_retry(failures: u32, interval: Duration) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(20))
        .min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_list_retries_double_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        let waits: Vec<u64> = (1..=14)
            .map(|n| first_list_retry(n, hour).as_secs())
            .collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
        );
        assert_eq!(
            first_list_retry(u32::MAX, Duration::from_secs(90)),
            Duration::from_secs(90)
        );
    }
}
