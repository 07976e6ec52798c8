//! Why a poll or a customer list failed: one name per cause, the label value and log field
//! every counter, log line and status shows.

use std::cmp::Ordering;
use std::fmt;

/// Why a target's poll or a fetch of the customer list failed: the `cause` label of
/// `avepoint_exporter_target_errors_total` and `avepoint_exporter_discovery_errors_total`,
/// the `cause` field of log lines, and the first word of a target's error on the landing
/// page and in `/api/v1/targets`. Ordered by its label text, as the exposition lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// No request could be sent or no answer came (connection refused, TLS, a redirect).
    Connect,
    /// The API answered a 4xx status other than 429.
    Http4xx,
    /// The API answered a 5xx status.
    Http5xx,
    /// The pages ran out before the records `metadata.totalCount` announced arrived.
    Incomplete,
    /// A body that is not a page of the endpoint (or was cut short, or never ends).
    Parse,
    /// The API answered 429.
    RateLimited,
    /// A customer list that collapsed (empty, or less than half of the last one), held
    /// until a second refresh confirms it (discovery only).
    Shrunk,
    /// A request took longer than its deadline.
    Timeout,
    /// No access token could be had.
    Token,
    /// The answers of one target (or list) outgrew their byte limit.
    TooLarge,
}

impl Cause {
    /// Every cause, each counter shows from the start at 0.
    pub const ALL: [Cause; 10] = [
        Cause::Connect,
        Cause::Http4xx,
        Cause::Http5xx,
        Cause::Incomplete,
        Cause::Parse,
        Cause::RateLimited,
        Cause::Shrunk,
        Cause::Timeout,
        Cause::Token,
        Cause::TooLarge,
    ];

    /// The label value: the one place a cause is spelt.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::Connect => "connect",
            Cause::Http4xx => "http_4xx",
            Cause::Http5xx => "http_5xx",
            Cause::Incomplete => "incomplete",
            Cause::Parse => "parse",
            Cause::RateLimited => "rate_limited",
            Cause::Shrunk => "shrunk",
            Cause::Timeout => "timeout",
            Cause::Token => "token",
            Cause::TooLarge => "too_large",
        }
    }

    /// The cause whose label value is `text`, if any (an error summary kept as text, as in
    /// the persistence file, starts with it).
    pub fn parse(text: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Ord for Cause {
    fn cmp(&self, other: &Cause) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Cause {
    fn partial_cmp(&self, other: &Cause) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_reads_back_and_they_are_listed_in_label_order() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert!(Cause::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Cause::parse("internal"), None);
    }
}
