//! What the exporter knows of each target, for scripts: `GET /api/v1/targets`, shaped like
//! Prometheus' targets API, and the filter it shares with the landing page (`health=`,
//! `customer=`). Everything comes from the status the poller publishes; nothing touches the
//! API.
//!
//! Memory follows the published status, not the requests: the unfiltered answer is rendered
//! once per status (on the blocking pool, on its first request) and every request of that
//! status sends the same [`Bytes`]; a filtered answer is streamed, [`CHUNK_TARGETS`] targets
//! at a time, as the client reads, so a client that does not read holds one chunk.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::polling::status::{Health, Status, TargetStatus};
use bytes::Bytes;
use hyper::body::Frame;
use serde::Serialize;

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

impl<'a> TargetJson<'a> {
    fn of(t: &'a TargetStatus) -> TargetJson<'a> {
        TargetJson {
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
        }
    }
}

/// What opens the answer, before the first target.
const HEAD: &[u8] = br#"{"status":"success","data":{"targets":["#;
/// What closes it, after the last.
const TAIL: &[u8] = b"]}}";

/// Targets rendered per piece of a streamed answer (about 350 bytes each: a piece is about
/// 90 KB).
pub const CHUNK_TARGETS: usize = 256;

/// Where a rendering of the answer is: the next target to look at, and whether one was
/// written (a comma goes before the next).
#[derive(Debug, Default)]
struct Cursor {
    next: usize,
    wrote: bool,
    done: bool,
}

/// Appends the answer's next piece to `buf`: the opening on the first call, then up to
/// [`CHUNK_TARGETS`] targets that pass `filter`, and the closing once the targets end.
fn render_piece(status: &Status, filter: &Filter, cursor: &mut Cursor, buf: &mut Vec<u8>) {
    if cursor.done {
        return;
    }
    if cursor.next == 0 && !cursor.wrote {
        buf.extend_from_slice(HEAD);
    }
    let mut rendered = 0;
    while rendered < CHUNK_TARGETS {
        let Some(t) = status.targets.get(cursor.next) else {
            buf.extend_from_slice(TAIL);
            cursor.done = true;
            return;
        };
        cursor.next += 1;
        if !filter.keeps(t) {
            continue;
        }
        let mark = buf.len();
        if cursor.wrote {
            buf.push(b',');
        }
        // Writing plain fields to a Vec cannot fail; were it to, the target is left out
        // rather than half written.
        if serde_json::to_writer(&mut *buf, &TargetJson::of(t)).is_ok() {
            cursor.wrote = true;
            rendered += 1;
        } else {
            buf.truncate(mark);
        }
    }
}

/// The body of `/api/v1/targets` for `status`, filtered, whole.
pub fn json(status: &Status, filter: &Filter) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut cursor = Cursor::default();
    while !cursor.done {
        render_piece(status, filter, &mut cursor, &mut buf);
    }
    buf
}

/// The unfiltered answer of `status`, rendered on the blocking pool by its first request (a
/// few megabytes at fleet scale would hold up the worker's other tasks) and shared by the
/// others, which wait for it.
pub async fn shared_json(status: &Arc<Status>) -> Bytes {
    status
        .bodies
        .targets
        .get_or_init(|| async {
            counted_render();
            let mine = status.clone();
            match tokio::task::spawn_blocking(move || json(&mine, &Filter::default())).await {
                Ok(body) => Bytes::from(body),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled (the runtime is shutting down): render here.
                Err(_) => Bytes::from(json(status, &Filter::default())),
            }
        })
        .await
        .clone()
}

/// The length of the unfiltered answer of `status`, if it has been rendered.
pub fn shared_len(status: &Status) -> Option<usize> {
    status.bodies.targets.get().map(Bytes::len)
}

#[cfg(test)]
thread_local! {
    /// Shared answers rendered by requests on this thread (the tests count them).
    static SHARED_RENDERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts a shared rendering (tests only).
fn counted_render() {
    #[cfg(test)]
    SHARED_RENDERS.with(|n| n.set(n.get() + 1));
}

/// A filtered answer, rendered a piece at a time as the connection asks for the next: what
/// a connection holds is the status (shared) and one piece.
pub struct TargetsBody {
    status: Arc<Status>,
    filter: Filter,
    cursor: Cursor,
}

impl TargetsBody {
    /// The answer of `status` through `filter`.
    pub fn new(status: Arc<Status>, filter: Filter) -> TargetsBody {
        TargetsBody {
            status,
            filter,
            cursor: Cursor::default(),
        }
    }
}

impl hyper::body::Body for TargetsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.cursor.done {
            return Poll::Ready(None);
        }
        let mut buf = Vec::with_capacity(CHUNK_TARGETS * 400);
        render_piece(&this.status, &this.filter, &mut this.cursor, &mut buf);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.cursor.done
    }
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
            let v: serde_json::Value = serde_json::from_slice(&json(&status, &filter)).unwrap();
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
            serde_json::from_slice(&json(&status, &Filter::default())).unwrap();
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

    fn fleet(n: usize) -> Status {
        Status {
            targets: (0..n)
                .map(|i| {
                    let error = (i % 3 == 0).then_some("HTTP 500 (http_5xx)");
                    target(&format!("c{i:05}"), &format!("Org {i}"), i % 7 != 0, error)
                })
                .collect(),
            ..Status::default()
        }
    }

    #[tokio::test]
    async fn the_unfiltered_answer_is_rendered_once_per_status_and_shared() {
        let renders = || SHARED_RENDERS.with(|n| n.get());
        let before = renders();
        let status = Arc::new(fleet(1000));
        let (a, b) = tokio::join!(shared_json(&status), shared_json(&status));
        let c = shared_json(&status).await;
        assert_eq!(renders(), before + 1, "one render for three requests");
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not a copy");
        assert_eq!(a.as_ptr(), c.as_ptr());
        assert_eq!(shared_len(&status), Some(a.len()));
        assert_eq!(&a[..], &json(&status, &Filter::default())[..]);
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["data"]["targets"].as_array().unwrap().len(), 1000);
        // A new status is a new body.
        let next = Arc::new(fleet(10));
        assert_eq!(shared_len(&next), None, "not rendered before a request");
        let d = shared_json(&next).await;
        assert_eq!(renders(), before + 2);
        assert_ne!(d.as_ptr(), a.as_ptr());
    }

    #[tokio::test]
    async fn a_filtered_answer_streams_in_bounded_pieces_equal_to_the_whole() {
        use http_body_util::BodyExt as _;
        let status = Arc::new(fleet(2000));
        for query in [
            "health=down",
            "customer=org",
            "customer=c00042",
            "health=unknown&customer=zz",
        ] {
            let filter = Filter::parse(Some(query)).unwrap();
            let mut body = TargetsBody::new(status.clone(), filter.clone());
            let mut whole = Vec::new();
            let mut pieces = 0;
            while let Some(frame) = body.frame().await {
                let piece = frame.unwrap().into_data().unwrap();
                // At most CHUNK_TARGETS targets (of ~300 bytes) and the frame around them.
                assert!(
                    piece.len() <= CHUNK_TARGETS * 400,
                    "{query}: {}",
                    piece.len()
                );
                whole.extend_from_slice(&piece);
                pieces += 1;
            }
            assert!(hyper::body::Body::is_end_stream(&body));
            assert_eq!(whole, json(&status, &filter), "{query}");
            let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
            let n = v["data"]["targets"].as_array().unwrap().len();
            // Full pieces, then one that ends the answer.
            assert_eq!(pieces, n / CHUNK_TARGETS + 1, "{query}: {n}");
        }
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
            serde_json::from_slice(&json(&status, &Filter::default())).unwrap();
        assert_eq!(
            v["data"]["targets"][0]["lastSuccess"],
            "9999-12-31T23:59:59Z"
        );
    }
}
