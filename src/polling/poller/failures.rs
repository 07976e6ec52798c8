//! Failed polls in the log: one line per cause at most once per interval, with how many
//! targets are down that way (`down`), how many polls failed that way since the last line
//! (`failed_polls`), a few examples and the last error. At fleet size (5 000
//! unknown customers are 20 000 failing targets) a line per target would bury everything
//! else; each target's own failure is at debug level, and on the landing page, in
//! `/api/v1/targets` and in `avepoint_exporter_target_errors_total`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::Cause;

/// What a line of the log is about: polls that failed with one cause, or one of the two
/// warnings gathered the same way (a target that had tenants and answered none, records of
/// another tenant type). Lines due together come in the order of [`Topic::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Topic {
    /// Polls that failed with this cause.
    Failed(Cause),
    /// Targets that had tenants answered none (held until a second answer confirms it).
    HeldEmpty,
    /// The API answered records of another tenant type than the one asked for.
    ForeignType,
}

impl Topic {
    /// The name the topic is ordered by: its cause, or the warning's.
    fn name(self) -> &'static str {
        match self {
            Topic::Failed(cause) => cause.as_str(),
            Topic::HeldEmpty => "held_empty",
            Topic::ForeignType => "foreign_type",
        }
    }
}

impl Ord for Topic {
    fn cmp(&self, other: &Topic) -> Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Topic {
    fn partial_cmp(&self, other: &Topic) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// How many targets a line names.
const EXAMPLES: usize = 3;

/// How long a cause's failures are gathered before its first line: the targets that share
/// a failure (a token endpoint that refuses everyone) fail within moments of each other, and
/// one line that counts them all says more than a line about the first of them.
pub(super) const GATHER: Duration = Duration::from_secs(1);

/// Failures not yet logged, by cause.
#[derive(Debug, Default)]
pub(super) struct FailureLog {
    pending: BTreeMap<Topic, Pending>,
    logged_at: HashMap<Topic, Instant>,
    /// Targets down by cause at the last publish (what the lines say is down).
    down: HashMap<Cause, usize>,
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
    /// Notes a poll of `customer_id`/`tenant_type` that failed or warns about `topic`.
    pub(super) fn record(
        &mut self,
        topic: Topic,
        customer_id: &str,
        tenant_type: &'static str,
        error: String,
    ) {
        let p = self.pending.entry(topic).or_insert_with(|| Pending {
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
    fn due_at(&self, topic: Topic, p: &Pending, every: Duration) -> Instant {
        let gathered = p.since + GATHER;
        match self.logged_at.get(&topic) {
            Some(t) => gathered.max(*t + every),
            None => gathered,
        }
    }

    /// When the next line is due, if any failure waits for one.
    pub(super) fn next_due(&self, every: Duration) -> Option<Instant> {
        self.pending
            .iter()
            .map(|(topic, p)| self.due_at(*topic, p, every))
            .min()
    }

    /// How many targets are down now, by cause (as of a publish).
    pub(super) fn set_down(&mut self, down: HashMap<Cause, usize>) {
        self.down = down;
    }

    /// Logs every cause whose line is due (see [`FailureLog::next_due`]); the others wait
    /// for their turn, still counting.
    pub(super) fn flush(&mut self, now: Instant, every: Duration) {
        let due: Vec<Topic> = self
            .pending
            .iter()
            .filter(|(t, p)| self.due_at(**t, p, every) <= now)
            .map(|(t, _)| *t)
            .collect();
        for topic in due {
            let Some(p) = self.pending.remove(&topic) else {
                continue;
            };
            self.logged_at.insert(topic, now);
            let (customer_id, tenant_type) = p
                .examples
                .first()
                .map(|(c, t)| (c.as_str(), *t))
                .unwrap_or_default();
            let examples: Vec<String> =
                p.examples.iter().map(|(c, t)| format!("{c}/{t}")).collect();
            let examples = examples.join(", ");
            // Targets whose last poll failed this way, now (not only since the last line).
            let down = |cause: Cause| self.down.get(&cause).copied().unwrap_or(0);
            match topic {
                Topic::HeldEmpty => tracing::warn!(
                    polls = p.failures,
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "targets that had tenants answered with none; their series are kept until a \
                     second empty answer in a row confirms it"
                ),
                Topic::ForeignType => tracing::warn!(
                    polls = p.failures,
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "the API answered records of another tenant type than the one asked for; \
                     they are skipped (avepoint_exporter_skipped_records_total)"
                ),
                Topic::Failed(cause @ Cause::Token) => tracing::warn!(
                    down = down(cause),
                    failed_polls = p.failures,
                    cause = cause.as_str(),
                    examples,
                    error = %p.error,
                    "cannot get an access token; targets that needed one are down"
                ),
                Topic::Failed(cause) => tracing::warn!(
                    down = down(cause),
                    failed_polls = p.failures,
                    cause = cause.as_str(),
                    customer_id,
                    tenant_type,
                    examples,
                    error = %p.error,
                    "target poll failed"
                ),
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
        let down = HashMap::from([(Cause::Token, 7)]);
        let token = Topic::Failed(Cause::Token);
        let mut log = FailureLog::default();
        log.set_down(down);
        let start = Instant::now();
        log.record(token, "c1", "microsoft_365", "refused".into());
        assert_eq!(log.next_due(every), Some(start + GATHER));
        // Too early: nothing is logged, the failure keeps counting.
        log.flush(start, every);
        for i in 2..=7 {
            log.record(token, &format!("c{i}"), "microsoft_365", "refused".into());
        }
        assert_eq!(log.pending[&token].failures, 7);
        tokio::time::advance(GATHER).await;
        log.flush(Instant::now(), every);
        assert!(log.pending.is_empty());
        assert_eq!(log.next_due(every), None);
        // The next line of the cause comes an interval after the last.
        log.record(token, "c1", "microsoft_365", "refused".into());
        assert_eq!(log.next_due(every), Some(start + GATHER + every));
    }
}
