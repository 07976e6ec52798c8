//! The metric group of polling (`crate::polling`): polls and their failures, utilization,
//! the empty cadence, discovery and the persistence file.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use prometheus::{Gauge, Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use super::customers::{CustomerInfo, CustomerInfoFamily};
use super::registry::{histogram_opts, opts, register};
use crate::domain::{unix_seconds, Cause};

/// Every value of `skipped_records_total`'s `reason` label (each series exists from the start).
pub const SKIP_REASONS: [&str; 2] = ["foreign_type", "not_requested"];

/// What polling counts; each method names its labels.
pub struct PollingMetrics {
    poll_duration: Histogram,
    utilization: Gauge,
    skipped_records: IntCounterVec,
    overruns: IntCounter,
    empty_targets: IntGauge,
    empty_interval: Gauge,
    discovered_customers: IntGauge,
    discovery_enabled: IntGauge,
    discovery_last_success: Gauge,
    discovery_errors: IntCounterVec,
    /// Rendered once per plan, outside the registry (see [`super::customers`]).
    customer_info: ArcSwap<CustomerInfoFamily>,
    write_failures: IntCounter,
    last_write: Gauge,
    restored_targets: IntGauge,
    last_write_duration: Gauge,
    labels_cut: IntCounter,
}

impl PollingMetrics {
    /// Registers the group in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<PollingMetrics> {
        let gauge = |name: &str, help: &str| register(registry, Gauge::with_opts(opts(name, help)));
        let int_gauge =
            |name: &str, help: &str| register(registry, IntGauge::with_opts(opts(name, help)));
        let counter =
            |name: &str, help: &str| register(registry, IntCounter::with_opts(opts(name, help)));
        Ok(PollingMetrics {
            poll_duration: register(
                registry,
                Histogram::with_opts(
                    histogram_opts(
                        "poll_duration_seconds",
                        "Time to poll one target (customer, tenant type): all its pages and retries.",
                    )
                    .buckets(vec![
                        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                        300.0,
                    ]),
                ),
            )?,
            utilization: gauge(
                "poll_utilization_ratio",
                "Time a round over every target needs at the observed request cost (requests per round x the larger of rate-limit spacing and latency / max_concurrency), divided by poll.interval; above 1 the interval cannot be kept.",
            )?,
            skipped_records: register(
                registry,
                IntCounterVec::new(
                    opts(
                        "skipped_records_total",
                        "Valid tenant records not counted for the target that fetched them, by reason: foreign_type (the record's type is not the requested tenant type), not_requested (a tenant outside the target's tenant_ids).",
                    ),
                    &["reason"],
                ),
            )?,
            overruns: counter(
                "poll_overruns_total",
                "Target polls started more than one poll interval after they were due.",
            )?,
            empty_targets: int_gauge(
                "empty_targets",
                "Targets whose last poll succeeded and found no tenants; they are polled every poll.empty_interval instead of poll.interval.",
            )?,
            empty_interval: gauge(
                "poll_empty_interval_seconds",
                "poll.empty_interval: the time between polls of a target whose last poll found no tenants.",
            )?,
            discovered_customers: int_gauge(
                "discovered_customers",
                "Customers of this shard from the last good customer list that pass the discovery filters.",
            )?,
            discovery_enabled: int_gauge(
                "discovery_enabled",
                "1 while customer discovery is configured, else 0.",
            )?,
            discovery_last_success: gauge(
                "discovery_last_success_timestamp_seconds",
                "Unix time of the last successful fetch of the customer list.",
            )?,
            discovery_errors: register(
                registry,
                IntCounterVec::new(
                    opts(
                        "discovery_errors_total",
                        "Failed fetches of the customer list, by cause (the last good list stays in use).",
                    ),
                    &["cause"],
                ),
            )?,
            customer_info: ArcSwap::default(),
            write_failures: counter(
                "persistence_write_failures_total",
                "Writes of the persistence file (--persistence.file) that failed; polling and serving go on.",
            )?,
            last_write: gauge(
                "persistence_last_write_timestamp_seconds",
                "Unix time of the last successful write of the persistence file; 0 before the first (or without --persistence.file).",
            )?,
            restored_targets: int_gauge(
                "persistence_restored_targets",
                "Targets whose series, results and schedule were restored from the persistence file at start.",
            )?,
            last_write_duration: gauge(
                "persistence_last_write_duration_seconds",
                "Time the last successful write of the persistence file took, fsync and rename included.",
            )?,
            labels_cut: counter(
                "label_values_truncated_total",
                "Label values from the API (tenant ids and names, the customer list's names) cut to 1 KiB.",
            )?,
        })
    }

    /// One target's poll took `took` (all pages and retries).
    pub fn observe_poll(&self, took: Duration) {
        self.poll_duration.observe(took.as_secs_f64());
    }

    /// Sets the share of the interval a round needs.
    pub fn set_utilization(&self, ratio: f64) {
        self.utilization.set(ratio);
    }

    /// Counts `n` valid records not counted for their target, for `reason` (one of
    /// [`SKIP_REASONS`]).
    pub fn records_skipped(&self, reason: &str, n: usize) {
        self.skipped_records
            .with_label_values(&[reason])
            .inc_by(n as u64);
    }

    /// Counts `n` label values from the API cut to 1 KiB.
    pub fn labels_cut(&self, n: u64) {
        self.labels_cut.inc_by(n);
    }

    /// Counts a poll started more than an interval after it was due.
    pub fn overrun(&self) {
        self.overruns.inc();
    }

    /// Targets on the empty cadence.
    pub fn set_empty_targets(&self, n: usize) {
        self.empty_targets.set(n as i64);
    }

    /// `poll.empty_interval`.
    pub fn set_empty_interval(&self, interval: Duration) {
        self.empty_interval.set(interval.as_secs_f64());
    }

    /// Sets the discovery facts of a new plan: whether it is on, the customers that pass
    /// its filters, and one `customer_info` series per planned customer (replacing all).
    pub fn set_discovery<'a>(
        &self,
        enabled: bool,
        discovered: usize,
        customers: impl IntoIterator<Item = CustomerInfo<'a>>,
    ) {
        self.discovery_enabled.set(i64::from(enabled));
        self.discovered_customers.set(discovered as i64);
        self.customer_info
            .store(CustomerInfoFamily::render(customers));
    }

    /// The `customer_info` family of the current plan, as every scrape sends it.
    pub(super) fn customer_info(&self) -> Arc<CustomerInfoFamily> {
        self.customer_info.load_full()
    }

    /// Replaces the rendered `customer_info` family (tests of its fallbacks).
    #[cfg(test)]
    pub(super) fn set_customer_info_for_test(&self, family: CustomerInfoFamily) {
        self.customer_info.store(Arc::new(family));
    }

    /// Whether discovery is on, as last set.
    #[cfg(test)]
    pub fn discovery_enabled(&self) -> bool {
        self.discovery_enabled.get() != 0
    }

    /// A customer list arrived at `at`.
    pub fn discovery_succeeded(&self, at: SystemTime) {
        self.discovery_last_success.set(unix_seconds(at));
    }

    /// Counts a failed customer list fetch by `cause`.
    pub fn discovery_failed(&self, cause: Cause) {
        self.discovery_errors
            .with_label_values(&[cause.as_str()])
            .inc();
    }

    /// Shows `cause` at 0 before any failure (so that rates work from the start).
    pub fn discovery_cause(&self, cause: Cause) {
        self.discovery_errors.with_label_values(&[cause.as_str()]);
    }

    /// Targets restored from the persistence file at start.
    pub fn restored(&self, targets: usize) {
        self.restored_targets.set(targets as i64);
    }

    /// The persistence file was written at `at` in `took`.
    pub fn written(&self, at: SystemTime, took: Duration) {
        self.last_write.set(unix_seconds(at));
        self.last_write_duration.set(took.as_secs_f64());
    }

    /// A write of the persistence file failed.
    pub fn write_failed(&self) {
        self.write_failures.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_tested_on_a_registry_of_its_own() {
        let registry = Registry::new();
        let m = PollingMetrics::register(&registry).unwrap();
        m.set_discovery(
            true,
            1,
            [CustomerInfo {
                id: "c1",
                name: "Contoso",
                country_or_region: "DE",
                management_mode: "1",
            }],
        );
        let one = m.customer_info();
        assert!(std::str::from_utf8(&one.text)
            .unwrap()
            .contains("customer_id=\"c1\",customer_name=\"Contoso\""));
        m.set_discovery(true, 0, []);
        assert!(
            m.customer_info().text.is_empty(),
            "a new plan replaces the customers"
        );
        // There from the start, so that increase() sees the first cut.
        let cut = |registry: &Registry| {
            registry
                .gather()
                .iter()
                .find(|f| f.name() == "avepoint_exporter_label_values_truncated_total")
                .map(|f| f.get_metric()[0].get_counter().get_value())
        };
        assert_eq!(cut(&registry), Some(0.0));
        m.labels_cut(3);
        assert_eq!(cut(&registry), Some(3.0));
        // Per customer: outside the registry, which every scrape gathers and sorts.
        assert!(registry
            .gather()
            .iter()
            .all(|f| f.name() != "avepoint_exporter_customer_info"));
        assert!(m.discovery_enabled());
    }
}
