//! The metric group of the API client (`crate::elements`): requests by endpoint and status,
//! their latency, and the rate limit the client allows itself.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{Gauge, HistogramTimer, HistogramVec, IntCounterVec, Registry};

use super::registry::{histogram_opts, opts, register};

/// What the API client counts; each method names its labels.
pub struct ApiMetrics {
    requests: IntCounterVec,
    request_duration: HistogramVec,
    rate_limit: Gauge,
    /// Requests sent, all endpoints and outcomes (for log lines).
    sent: AtomicU64,
}

impl ApiMetrics {
    /// Registers the group in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<ApiMetrics> {
        Ok(ApiMetrics {
            requests: register(
                registry,
                IntCounterVec::new(
                    opts(
                        "api_requests_total",
                        "HTTP requests sent to the Elements API, by endpoint and HTTP status (or error).",
                    ),
                    &["endpoint", "code"],
                ),
            )?,
            request_duration: register(
                registry,
                HistogramVec::new(
                    histogram_opts(
                        "api_request_duration_seconds",
                        "Latency of HTTP requests to the Elements API.",
                    )
                    .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                    &["endpoint"],
                ),
            )?,
            rate_limit: register(
                registry,
                Gauge::with_opts(opts(
                    "api_rate_limit_requests_per_second",
                    "Requests per second the API client currently allows itself: the configured limit, lower after the API answered 429; 0 = unlimited.",
                )),
            )?,
            sent: AtomicU64::new(0),
        })
    }

    /// Counts one request to `endpoint` that ended with `code` (an HTTP status, or the kind
    /// of error).
    pub fn count_request(&self, endpoint: &'static str, code: &str) {
        self.requests.with_label_values(&[endpoint, code]).inc();
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent since start: every endpoint, retries and failures included.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Times one request to `endpoint`: observed when the timer is dropped or stopped.
    pub fn time_request(&self, endpoint: &'static str) -> HistogramTimer {
        self.request_duration
            .with_label_values(&[endpoint])
            .start_timer()
    }

    /// The rate-limit gauge, for the limiter that sets it.
    pub fn rate_limit(&self) -> Gauge {
        self.rate_limit.clone()
    }
}
