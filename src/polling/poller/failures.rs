//! Failed polls in the log: one line per cause at most once per interval, with how many
//! targets failed that way, a few examples and the last error. At fleet size (5 000
//! unknown customers are 20 000 failing targets) a line per target would bury everything
//! else; each target's own failure is at debug level, and on the landing page, in
//! `/api/v1/targets` and in `avepoint_exporter_target_errors_total`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// How many targets a line names.
const EXAMPLES: usize = 3;

/// Failures not yet logged, by cause.
#[derive(Debug, Default)]
pub(super) struct FailureLog {
    pending: BTreeMap<&'static str, Pending>,
    logged_at: HashMap<&'static str, Instant>,
}

#[derive(Debug)]
struct Pending {
    failures: usize,
    examples: Vec<(String, &'static str)>,
    error: String,
}

impl FailureLog {
    /// Notes a failed poll of `customer_id`/`tenant_type` with `cause`.
    pub(super) fn record(
        &mut self,
        cause: &'static str,
        customer_id: &str,
        tenant_type: &'static str,
        error: String,
    ) {
        let p = self.pending.entry(cause).or_insert_with(|| Pending {
            failures: 0,
            examples: Vec::new(),
            error: String::new(),
        });
        p.failures += 1;
        if p.examples.len() < EXAMPLES {
            p.examples.push((customer_id.to_owned(), tenant_type));
        }
        p.error = error;
    }

    /// Logs every cause not logged within `every`; the others wait for their turn, still
    /// counting.
    pub(super) fn flush(&mut self, now: Instant, every: Duration) {
        let due: Vec<&'static str> = self
            .pending
            .keys()
            .copied()
            .filter(|c| self.logged_at.get(c).is_none_or(|t| now - *t >= every))
            .collect();
        for cause in due {
            let Some(p) = self.pending.remove(cause) else {
                continue;
            };
            self.logged_at.insert(cause, now);
            let (customer_id, tenant_type) = p
                .examples
                .first()
                .map(|(c, t)| (c.as_str(), *t))
                .unwrap_or_default();
            let examples: Vec<String> =
                p.examples.iter().map(|(c, t)| format!("{c}/{t}")).collect();
            let examples = examples.join(", ");
            if cause == super::HELD_EMPTY {
                tracing::warn!(
                    targets = p.failures,
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "targets that had tenants answered with none; their series are kept until a \
                     second empty answer in a row confirms it"
                );
            } else if cause == super::FOREIGN_TYPE {
                tracing::warn!(
                    targets = p.failures,
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "the API answered records of another tenant type than the one asked for; \
                     they are skipped (avepoint_exporter_skipped_records_total)"
                );
            } else if cause == "token" {
                tracing::warn!(
                    targets = p.failures,
                    cause,
                    examples,
                    error = %p.error,
                    "cannot get an access token; targets that needed one are down"
                );
            } else {
                tracing::warn!(
                    targets = p.failures,
                    cause,
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "target poll failed"
                );
            }
        }
    }
}
