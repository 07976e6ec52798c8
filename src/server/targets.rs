//! What the exporter knows of each target, for scripts: `GET /api/v1/targets`, shaped like
//! Prometheus' targets API, and the filter it shares with the landing page (`health=`,
//! `customer=`). Everything comes from the status the poller publishes; nothing touches the
//! API.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::polling::poller::{Status, TargetStatus};

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

/// Which targets a view shows: `?health=up|down|unknown&customer=…` (an id, or a part of the
/// name, both without regard to case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only targets of this health.
    pub health: Option<Health>,
    /// Only customers whose id is this, or whose name contains it (lowercased).
    pub customer: Option<String>,
}

impl Filter {
    /// The filter of a query string; an unknown `health` or parameter is an error naming it.
    pub fn parse(query: Option<&str>) -> Result<Filter, String> {
        let mut filter = Filter::default();
        let Some(query) = query.filter(|q| !q.is_empty()) else {
            return Ok(filter);
        };
        let url = reqwest::Url::parse(&format!("http://x/?{query}"))
            .map_err(|e| format!("invalid query: {e}"))?;
        for (key, value) in url.query_pairs() {
            match &*key {
                "health" => {
                    filter.health = match &*value {
                        "up" => Some(Health::Up),
                        "down" => Some(Health::Down),
                        "unknown" => Some(Health::Unknown),
                        "" | "any" => None,
                        other => {
                            return Err(format!("health={other:?}: expected up, down or unknown"))
                        }
                    }
                }
                "customer" => {
                    let v = value.trim().to_lowercase();
                    filter.customer = (!v.is_empty()).then_some(v);
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}; expected health or customer"
                    ))
                }
            }
        }
        Ok(filter)
    }

    /// Whether `t` passes.
    pub fn keeps(&self, t: &TargetStatus) -> bool {
        self.health.is_none_or(|h| Health::of(t) == h)
            && self.customer.as_deref().is_none_or(|c| {
                t.customer_id.to_lowercase() == c || t.customer_name.to_lowercase().contains(c)
            })
    }
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

/// RFC 3339 in UTC, to the second. Total: a time before 1970 or after the year 9999 (which
/// humantime refuses, and `to_string` would turn into a panic) is written as the nearest
/// time it can write.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_RFC3339_SECOND);
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetJson<'a> {
    customer_id: &'a str,
    customer_name: &'a str,
    tenant_type: &'static str,
    health: &'static str,
    tenants: usize,
    empty: bool,
    last_poll: Option<String>,
    last_poll_duration: Option<f64>,
    last_success: Option<String>,
    last_error: &'a str,
    failing_since: Option<String>,
    next_poll: Option<String>,
}

#[derive(Serialize)]
struct Data<'a> {
    targets: Vec<TargetJson<'a>>,
}

#[derive(Serialize)]
struct Answer<'a> {
    status: &'static str,
    data: Data<'a>,
}

/// The body of `/api/v1/targets` for `status`, filtered.
pub fn json(status: &Status, filter: &Filter) -> String {
    let targets = status
        .targets
        .iter()
        .filter(|t| filter.keeps(t))
        .map(|t| TargetJson {
            customer_id: &t.customer_id,
            customer_name: &t.customer_name,
            tenant_type: t.tenant_type.name(),
            health: Health::of(t).name(),
            tenants: t.tenants,
            empty: t.empty,
            last_poll: t.last_poll.map(rfc3339),
            last_poll_duration: t.last_duration.map(|d| d.as_secs_f64()),
            last_success: t.last_success.map(rfc3339),
            last_error: t.last_error.as_deref().unwrap_or(""),
            failing_since: t.failing_since.map(rfc3339),
            next_poll: t.next_poll.map(rfc3339),
        })
        .collect();
    let answer = Answer {
        status: "success",
        data: Data { targets },
    };
    serde_json::to_string(&answer).unwrap_or_else(|e| error_json(&e.to_string()))
}

/// A Prometheus-style error answer.
pub fn error_json(error: &str) -> String {
    serde_json::json!({"status": "error", "errorType": "bad_data", "error": error}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantType;

    fn target(id: &str, name: &str, polled: bool, error: Option<&str>) -> TargetStatus {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        TargetStatus {
            customer_id: id.into(),
            customer_name: name.into(),
            tenant_type: TenantType::Google,
            last_poll: polled.then_some(at),
            last_error: error.map(String::from),
            last_success: polled.then_some(at),
            tenants: 3,
            last_duration: polled.then_some(Duration::from_millis(250)),
            next_poll: Some(at + Duration::from_secs(300)),
            failing_since: error.map(|_| at),
            empty: false,
        }
    }

    #[test]
    fn filters_by_health_and_by_id_or_part_of_the_name() {
        let status = Status {
            targets: vec![
                target("a1", "Contoso Ltd", true, None),
                target("b2", "Fabrikam", true, Some("HTTP 500 (http_5xx)")),
                target("c3", "Northwind", false, None),
            ],
            ..Status::default()
        };
        let ids = |query: &str| -> Vec<String> {
            let filter = Filter::parse(Some(query)).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json(&status, &filter)).unwrap();
            v["data"]["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["customerId"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(""), ["a1", "b2", "c3"]);
        assert_eq!(ids("health=down"), ["b2"]);
        assert_eq!(ids("health=unknown"), ["c3"]);
        assert_eq!(ids("customer=CONTOSO"), ["a1"]);
        assert_eq!(ids("customer=B2"), ["b2"]);
        assert_eq!(ids("customer=o&health=up"), ["a1"]);
        assert_eq!(ids("customer=%20north%20"), ["c3"]);
        assert!(Filter::parse(Some("health=sick"))
            .unwrap_err()
            .contains("expected up, down or unknown"));
        assert!(Filter::parse(Some("colour=red")).is_err());
    }

    #[test]
    fn answers_like_prometheus_with_rfc3339_times() {
        let status = Status {
            targets: vec![
                target("b2", "Fabrikam", true, Some("HTTP 500 (http_5xx)")),
                target("c3", "Northwind", false, None),
            ],
            ..Status::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&json(&status, &Filter::default())).unwrap();
        assert_eq!(v["status"], "success");
        let down = &v["data"]["targets"][0];
        assert_eq!(down["health"], "down");
        assert_eq!(down["tenantType"], "google");
        assert_eq!(down["lastError"], "HTTP 500 (http_5xx)");
        assert_eq!(down["lastPoll"], "2026-11-18T11:06:40Z");
        assert_eq!(down["nextPoll"], "2026-11-18T11:11:40Z");
        assert_eq!(down["lastPollDuration"], 0.25);
        assert_eq!(down["empty"], false);
        let unknown = &v["data"]["targets"][1];
        assert_eq!(unknown["health"], "unknown");
        assert_eq!(unknown["lastPoll"], serde_json::Value::Null);
        assert_eq!(unknown["lastError"], "");
    }

    #[test]
    fn any_time_formats_without_a_panic() {
        let epoch = SystemTime::UNIX_EPOCH;
        assert_eq!(rfc3339(epoch), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(epoch + Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40Z"
        );
        // Out of RFC 3339's range (a state file from a clock far ahead): the nearest time.
        let far = epoch + Duration::from_secs(1_000_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
        assert_eq!(
            rfc3339(epoch + Duration::from_secs(253_402_300_800)),
            "9999-12-31T23:59:59Z"
        );
        if let Some(before) = epoch.checked_sub(Duration::from_secs(86_400)) {
            assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
        }
        let mut status = Status {
            targets: vec![target("a1", "Contoso", true, None)],
            ..Status::default()
        };
        status.targets[0].last_success = Some(far);
        status.targets[0].next_poll = Some(far);
        let v: serde_json::Value =
            serde_json::from_str(&json(&status, &Filter::default())).unwrap();
        assert_eq!(
            v["data"]["targets"][0]["lastSuccess"],
            "9999-12-31T23:59:59Z"
        );
    }
}
