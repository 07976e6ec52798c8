//! How a self-metric is named and registered: every one is `avepoint_exporter_{name}` and
//! lives in the exporter's own registry. Its own file, so that the metric groups (`api`,
//! `polling`) and `mod.rs` take it from here rather than from each other.

use prometheus::{HistogramOpts, Opts, Registry};

/// Options of a metric named `avepoint_exporter_{name}`.
pub(super) fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("avepoint_exporter")
}

/// Options of a histogram named `avepoint_exporter_{name}`.
pub(super) fn histogram_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).namespace("avepoint_exporter")
}

/// Creates a metric and registers it, or fails with the registry's error.
pub(super) fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<T>,
) -> prometheus::Result<T> {
    let metric = metric?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}
