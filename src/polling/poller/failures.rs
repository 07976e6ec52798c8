//! Failed polls in the log: one line per cause at most once per interval, with how many
//! targets are down that way (`down`), how many polls failed that way since the last line
//! (`failed_polls`), a few examples and the last error. At fleet size (5 000
//! unknown customers are 20 000 failing targets) a line per target would bury everything
//! else; each target's own failure is at debug level, and on the landing page, in
//! `/api/v1/targets` and in `avepoint_exporter_target_errors_total`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// The warning causes (besides failures) in the failure log: a target that had tenants and
/// answered none, and records of another tenant type.
pub(super) const HELD_EMPTY: &str = "held_empty";
pub(super) const FOREIGN_TYPE: &str = "foreign_type";

/// How many targets a line names.
const EXAMPLES: usize = 3;

/// How long a cause's failures are gathered before its first line: the targets that share
/// a failure (a token endpoint that refuses everyone) fail within moments of each other, and
/// one line that counts them all says more than a line about the first of them.
pub(super) const GATHER: Duration = Duration::from_secs(1);

/// Failures not yet logged, by cause.
#[derive(Debug, Default)]
pub(super) struct FailureLog {
    pending: BTreeMap<&'static str, Pending>,
    logged_at: HashMap<&'static str, Instant>,
    /// Targets down by cause at the last publish (what the lines say is down).
    down: HashMap<String, usize>,
}

#[derive(Debug)]
struct Pending {
    /// When the first of these failures was noted.
    since: Instant,
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
            since: Instant::now(),
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

    /// When a cause's line is due: [`GATHER`] after its first pending failure, and not
    /// within `every` of its last line.
    fn due_at(&self, cause: &'static str, p: &Pending, every: Duration) -> Instant {
        let gathered = p.since + GATHER;
        match self.logged_at.get(cause) {
            Some(t) => gathered.max(*t + every),
            None => gathered,
        }
    }

    /// When the next line is due, if any failure waits for one.
    pub(super) fn next_due(&self, every: Duration) -> Option<Instant> {
        self.pending
            .iter()
            .map(|(cause, p)| self.due_at(cause, p, every))
            .min()
    }

    /// How many targets are down now, by cause (as of a publish).
    pub(super) fn set_down(&mut self, down: HashMap<String, usize>) {
        self.down = down;
    }

    /// Logs every cause whose line is due (see [`FailureLog::next_due`]); the others wait
    /// for their turn, still counting.
    pub(super) fn flush(&mut self, now: Instant, every: Duration) {
        let due: Vec<&'static str> = self
            .pending
            .iter()
            .filter(|(c, p)| self.due_at(c, p, every) <= now)
            .map(|(c, _)| *c)
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
            // Targets whose last poll failed this way, now (not only since the last line).
            let down = self.down.get(cause).copied().unwrap_or(0);
            if cause == HELD_EMPTY {
                tracing::warn!(
                    polls = p.failures,
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "targets that had tenants answered with none; their series are kept until a \
                     second empty answer in a row confirms it"
                );
            } else if cause == FOREIGN_TYPE {
                tracing::warn!(
                    polls = p.failures,
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "the API answered records of another tenant type than the one asked for; \
                     they are skipped (avepoint_exporter_skipped_records_total)"
                );
            } else if cause == "token" {
                tracing::warn!(
                    down,
                    failed_polls = p.failures,
                    cause,
                    examples,
                    error = %p.error,
                    "cannot get an access token; targets that needed one are down"
                );
            } else {
                tracing::warn!(
                    down,
                    failed_polls = p.failures,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_causes_first_line_waits_to_gather_the_targets_that_share_it() {
        let every = Duration::from_secs(60);
        let down = HashMap::from([("token".to_owned(), 7)]);
        let mut log = FailureLog::default();
        log.set_down(down);
        let start = Instant::now();
        log.record("token", "c1", "microsoft_365", "refused".into());
        assert_eq!(log.next_due(every), Some(start + GATHER));
        // Too early: nothing is logged, the failure keeps counting.
        log.flush(start, every);
        for i in 2..=7 {
            log.record("token", &format!("c{i}"), "microsoft_365", "refused".into());
        }
        assert_eq!(log.pending["token"].failures, 7);
        tokio::time::advance(GATHER).await;
        log.flush(Instant::now(), every);
        assert!(log.pending.is_empty());
        assert_eq!(log.next_due(every), None);
        // The next line of the cause comes an interval after the last.
        log.record("token", "c1", "microsoft_365", "refused".into());
        assert_eq!(log.next_due(every), Some(start + GATHER + every));
    }
}
