//! The Elements seat endpoint: request building, response parsing and paging.
//!
//! `POST {base}/partner/external/v3/general/customers/{id}/3rd-party-products/type/{n}/tenants/batch`
//! answers either an object `{"data": [...], "metadata": {"totalCount": N, ...}}` or a bare JSON
//! array of tenant records. Both are accepted; records that lack a tenant id or a non-negative
//! seat number are skipped one by one, anything else that is not such a page fails the target.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::auth::{AuthError, TokenSource};
use crate::domain::{LicenseAssignedStatus, TenantSeats, TenantType};
use crate::scheduler::Priority;
use crate::transport::{Budget, Endpoint, HttpResponse, Prepared, Transport, TransportError};

/// Pages fetched at most for one target (100,000 tenants at the largest page size): a guard
/// against a server that never sends a short page, or claims an absurd `totalCount`. A target
/// that would need more fails with cause `parse` rather than publishing a partial list.
pub const MAX_PAGES: u32 = 1000;

/// Bytes of response bodies one target (or the customer list) may hold across all its pages,
/// counted while they stream in: real pages are about 20 KB, so this allows thousands, while a
/// hostile server that sends page after page of 15 MiB fails the target (cause `too_large`,
/// last good series kept) instead of growing the process.
pub const MAX_TARGET_BYTES: usize = 64 * 1024 * 1024;

/// Why a target could not be polled.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] AuthError),
    /// The request failed without a complete response.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The API answered with an error status.
    #[error("API answered {status}: {detail}")]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// Status, content type and the start of the body.
        detail: String,
    },
    /// The pages never end (see [`MAX_PAGES`]).
    #[error("paging guard: {0}")]
    Paging(String),
    /// The body is not a page of tenants.
    #[error("cannot parse tenants page {page}: {reason} ({detail})")]
    Parse {
        /// The page that failed.
        page: u32,
        /// What is wrong.
        reason: String,
        /// Status, content type and the start of the body.
        detail: String,
    },
}

/// Every value of the `cause` label, for counters that start at 0.
pub const CAUSES: [&str; 8] = [
    "timeout",
    "connect",
    "http_4xx",
    "http_5xx",
    "rate_limited",
    "parse",
    "token",
    "too_large",
];

impl ApiError {
    /// The `cause` label of `avepoint_exporter_target_errors_total` (one of [`CAUSES`]).
    pub fn cause(&self) -> &'static str {
        match self {
            ApiError::Token(_) => "token",
            ApiError::Transport(TransportError::Timeout(_)) => "timeout",
            ApiError::Transport(
                TransportError::Connect(_)
                | TransportError::Other(_)
                | TransportError::Build(_)
                | TransportError::Redirect { .. },
            ) => "connect",
            ApiError::Transport(TransportError::TooLarge { .. }) => "too_large",
            ApiError::Transport(TransportError::Truncated { .. }) => "parse",
            ApiError::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "rate_limited"
            }
            ApiError::Status { status, .. } if status.is_server_error() => "http_5xx",
            ApiError::Status { .. } => "http_4xx",
            ApiError::Parse { .. } | ApiError::Paging(_) => "parse",
        }
    }
}

impl ApiError {
    /// What the landing page shows of the error: the cause and the HTTP status, never a body
    /// (which may echo a credential) or a message from the server.
    pub fn summary(&self) -> String {
        let status = match self {
            ApiError::Status { status, .. } => Some(status.as_u16()),
            ApiError::Transport(TransportError::Redirect { status, .. }) => Some(*status),
            ApiError::Token(AuthError::Transport(TransportError::Redirect { status, .. })) => {
                Some(*status)
            }
            _ => None,
        };
        match status {
            Some(status) => format!("{} (HTTP {status})", self.cause()),
            None => self.cause().to_owned(),
        }
    }
}

/// A record that paging can merge duplicates of, by its id.
pub trait Record {
    /// The record's unique id (tenant id, customer id).
    fn key(&self) -> &str;
}

impl Record for TenantSeats {
    fn key(&self) -> &str {
        &self.id
    }
}

/// One customer of the partner, from the customer list (discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredCustomer {
    /// Customer id, as used by the seat endpoint.
    pub id: String,
    /// Organization name (the `customer_name` label); may be empty.
    pub organization: String,
    /// `countryOrRegion`; may be empty.
    pub country_or_region: String,
    /// `managementMode` (a name or a number, as sent); may be empty.
    pub management_mode: String,
}

impl Record for DiscoveredCustomer {
    fn key(&self) -> &str {
        &self.id
    }
}

/// One page of the response, parsed.
#[derive(Debug, PartialEq)]
pub struct Page<T = TenantSeats> {
    /// Valid records, in response order.
    pub items: Vec<T>,
    /// Records skipped, each with the reason.
    pub invalid: Vec<String>,
    /// `metadata.totalCount`, when the envelope has one.
    pub total_count: Option<u64>,
}

impl<T> Page<T> {
    /// Records on the page, valid or not (what paging decisions count).
    pub fn len(&self) -> usize {
        self.items.len() + self.invalid.len()
    }

    /// Whether the page has no records at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses one response body of the seat endpoint into a [`Page`]; the error says what is
/// wrong with its shape.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    parse_envelope(body, parse_record)
}

/// [`parse_page`] for a poll: a page whose records are all invalid means the schema changed
/// (seat numbers sent as strings, renamed fields), not that the tenants are gone, so it fails
/// the poll and the last good series stay, instead of publishing an empty target.
fn parse_tenants_page(body: &[u8]) -> Result<Page, String> {
    let page = parse_page(body)?;
    match page.invalid.first() {
        Some(first) if page.items.is_empty() => Err(format!(
            "all {} records are invalid (has the API changed?), first: {first}",
            page.invalid.len()
        )),
        _ => Ok(page),
    }
}

/// Parses one response body of the customer list into a [`Page`].
pub fn parse_customers_page(body: &[u8]) -> Result<Page<DiscoveredCustomer>, String> {
    parse_envelope(body, parse_customer)
}

/// The envelope shared by both endpoints: `{"data": [...], "metadata": {...}}` or a bare
/// list; each record goes through `parse_record`, which skips the invalid ones.
fn parse_envelope<T>(
    body: &[u8],
    parse_record: fn(&Value) -> Result<T, String>,
) -> Result<Page<T>, String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let (records, total_count) = match root {
        Value::Array(records) => (records, None),
        Value::Object(mut map) => {
            let records = match map.remove("data") {
                Some(Value::Array(records)) => records,
                Some(Value::Null) | None => {
                    return Err("object without a \"data\" list".into());
                }
                Some(_) => return Err("\"data\" is not a list".into()),
            };
            let total = match map.get("metadata") {
                Some(Value::Object(meta)) => match meta.get("totalCount") {
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or("metadata.totalCount is not a non-negative integer")?,
                    ),
                    None => None,
                },
                _ => None,
            };
            (records, total)
        }
        _ => return Err("expected an object with \"data\" or a list of tenants".into()),
    };
    let mut page = Page {
        items: Vec::with_capacity(records.len()),
        invalid: Vec::new(),
        total_count,
    };
    for (i, record) in records.iter().enumerate() {
        match parse_record(record) {
            Ok(t) => page.items.push(t),
            Err(why) => page.invalid.push(format!("record {i}: {why}")),
        }
    }
    Ok(page)
}

fn parse_record(record: &Value) -> Result<TenantSeats, String> {
    let Value::Object(map) = record else {
        return Err("not an object".into());
    };
    let id = match map.get("tenantId") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Null) | None => return Err("missing tenantId".into()),
        Some(other) => return Err(format!("tenantId {other} is not a non-empty string")),
    };
    let name = match map.get("tenantName") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let seats = |key: &str| match map.get(key) {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("tenant {id:?}: {key} {v} is not a non-negative integer")),
        None => Err(format!("tenant {id:?}: missing {key}")),
    };
    Ok(TenantSeats {
        available: seats("availableUserSeat")?,
        assigned: seats("assignedUserSeat")?,
        id,
        name,
    })
}

/// A customer record: `id` is required (and must be safe in a URL path), the rest optional.
fn parse_customer(record: &Value) -> Result<DiscoveredCustomer, String> {
    let Value::Object(map) = record else {
        return Err("not an object".into());
    };
    let id = match map.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Null) | None => return Err("missing id".into()),
        Some(other) => return Err(format!("id {other} is not a non-empty string")),
    };
    if id.contains(['/', '?', '#', '%']) || id.chars().any(char::is_whitespace) {
        return Err(format!("id {id:?} is not usable in a URL path"));
    }
    // Strings or numbers (the docs show jobStatus both ways); anything else counts as absent.
    let text = |key: &str| match map.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    Ok(DiscoveredCustomer {
        organization: text("organization"),
        country_or_region: text("countryOrRegion"),
        management_mode: text("managementMode"),
        id,
    })
}

/// What to fetch after a target's first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagePlan {
    /// The first page is all there is.
    Done,
    /// `totalCount` says there are exactly this many pages; fetch the rest at once.
    Pages(u64),
    /// No `totalCount`: fetch one page after another until a short or empty page.
    UntilShort,
}

/// Decides the paging after the first page. A server that ignores `pageSize` and sends more
/// records per page is paged by what it sends, so it cannot multiply the requests.
pub fn plan_after_first<T>(first: &Page<T>, page_size: u8) -> PagePlan {
    let size = usize::from(page_size);
    if first.is_empty() || first.len() < size {
        return PagePlan::Done;
    }
    match first.total_count {
        Some(total) if first.len() as u64 >= total => PagePlan::Done,
        Some(total) => {
            let per_page = first.len().max(size) as u64;
            PagePlan::Pages(total.div_ceil(per_page))
        }
        None => PagePlan::UntilShort,
    }
}

/// Whether paging stops after `page` (1-based) given the records collected so far.
pub fn is_last_page<T>(
    page: &Page<T>,
    page_size: u8,
    collected: usize,
    first_total: Option<u64>,
) -> bool {
    page.is_empty()
        || page.len() < usize::from(page_size)
        || first_total.is_some_and(|t| collected as u64 >= t)
}

/// One (customer, tenant type) pair to poll.
#[derive(Debug, Clone)]
pub struct TargetRequest {
    /// Customer id, as in the path.
    pub customer_id: Arc<str>,
    /// Tenant type, as in the path.
    pub tenant_type: TenantType,
    /// Optional body filter.
    pub license_assigned_status: Option<LicenseAssignedStatus>,
}

/// What a successful fetch of every page produced.
#[derive(Debug)]
pub struct Fetched<T = TenantSeats> {
    /// Records, duplicates merged (the last record of an id wins), sorted by id.
    pub items: Vec<T>,
    /// Records skipped as invalid, with reasons.
    pub invalid: Vec<String>,
    /// Pages requested.
    pub pages: u32,
}

/// How the requests of one list (a target's pages, the customer list) are sent.
struct Lane<'a> {
    endpoint: Endpoint,
    /// Their place in the queue for a request slot.
    priority: Priority,
    /// What their bodies may add up to.
    budget: &'a Budget,
}

/// The Elements client of one configuration.
pub struct Client {
    transport: Arc<Transport>,
    auth: Arc<TokenSource>,
    base_url: Url,
    page_size: u8,
}

impl Client {
    /// A client for `base_url`, asking for `page_size` records per page.
    pub fn new(
        transport: Arc<Transport>,
        auth: Arc<TokenSource>,
        base_url: Url,
        page_size: u8,
    ) -> Self {
        Client {
            transport,
            auth,
            base_url,
            page_size,
        }
    }

    /// The URL of one page of a target's tenants.
    pub fn page_url(&self, target: &TargetRequest, page: u32) -> Url {
        let mut url = self.base_url.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!(
            "{prefix}/partner/external/v3/general/customers/{}/3rd-party-products/type/{}/tenants/batch",
            target.customer_id,
            target.tenant_type.api_number()
        ));
        url.set_query(Some(&format!(
            "pageIndex={page}&pageSize={}",
            self.page_size
        )));
        url
    }

    /// Requests in flight at most.
    pub fn max_concurrency(&self) -> usize {
        self.transport.max_concurrency()
    }

    /// What one request costs at the limits and the observed latency (see
    /// [`Transport::request_cost`]).
    pub fn request_cost(&self) -> std::time::Duration {
        self.transport.request_cost()
    }

    /// Fetches every page of a target's tenants; its requests wait for a slot at `priority`.
    pub async fn fetch_tenants(
        &self,
        target: &TargetRequest,
        priority: Priority,
    ) -> Result<Fetched, ApiError> {
        let body = match target.license_assigned_status {
            Some(status) => format!("{{\"licenseAssignedStatus\":{}}}", status.api_number()),
            None => "{}".to_owned(),
        };
        let what = format!("customer {} {}", target.customer_id, target.tenant_type);
        let budget = Budget::new(MAX_TARGET_BYTES);
        self.fetch_all(&what, |page| {
            self.fetch_page(
                Lane {
                    endpoint: Endpoint::Tenants,
                    priority,
                    budget: &budget,
                },
                self.page_url(target, page),
                &body,
                page,
                parse_tenants_page,
            )
        })
        .await
    }

    /// The URL of one page of the partner's customer list.
    pub fn customers_url(&self, page: u32) -> Url {
        let mut url = self.base_url.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!(
            "{prefix}/partner/external/v3/general/customers/batch"
        ));
        url.set_query(Some(&format!(
            "pageIndex={page}&pageSize={}",
            self.page_size
        )));
        url
    }

    /// Fetches every page of the partner's customer list (discovery).
    pub async fn fetch_customers(&self) -> Result<Fetched<DiscoveredCustomer>, ApiError> {
        let budget = Budget::new(MAX_TARGET_BYTES);
        self.fetch_all("the customer list", |page| {
            self.fetch_page(
                Lane {
                    endpoint: Endpoint::Customers,
                    priority: Priority::URGENT,
                    budget: &budget,
                },
                self.customers_url(page),
                "{}",
                page,
                parse_customers_page,
            )
        })
        .await
    }

    /// Fetches page 1 with `fetch`, then the rest as [`plan_after_first`] decides, merging
    /// duplicate ids; `what` names the list in log lines.
    async fn fetch_all<T, F, Fut>(&self, what: &str, fetch: F) -> Result<Fetched<T>, ApiError>
    where
        T: Record,
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, ApiError>>,
    {
        let first = fetch(1).await?;
        let first_total = first.total_count;
        let plan = plan_after_first(&first, self.page_size);
        let mut fetched = Fetched {
            items: Vec::new(),
            invalid: Vec::new(),
            pages: 1,
        };
        let mut collected = first.len();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut stop = false;
        let mut absorb = |page: Page<T>, fetched: &mut Fetched<T>| {
            let mut new_ids = 0;
            for t in page.items {
                match seen.get(t.key()) {
                    Some(&i) => fetched.items[i] = t,
                    None => {
                        new_ids += 1;
                        seen.insert(t.key().to_owned(), fetched.items.len());
                        fetched.items.push(t);
                    }
                }
            }
            fetched.invalid.extend(page.invalid);
            new_ids
        };
        absorb(first, &mut fetched);
        match plan {
            PagePlan::Done => {}
            PagePlan::Pages(n) if n > u64::from(MAX_PAGES) => {
                return Err(ApiError::Paging(format!(
                    "metadata.totalCount {} needs {n} pages of {}, more than {MAX_PAGES}",
                    first_total.unwrap_or_default(),
                    self.page_size
                )));
            }
            PagePlan::Pages(n) => {
                let n = n as u32; // at most MAX_PAGES
                                  // The count is known: ask for the remaining pages at once (the transport
                                  // bounds how many are in flight), then read them in order.
                let rest = futures_util::future::join_all((2..=n).map(&fetch)).await;
                fetched.pages = n;
                for page in rest {
                    let page = page?;
                    if stop {
                        continue;
                    }
                    collected += page.len();
                    stop = is_last_page(&page, self.page_size, collected, first_total);
                    absorb(page, &mut fetched);
                }
            }
            PagePlan::UntilShort => {
                let mut index = 2;
                while !stop {
                    if index > MAX_PAGES {
                        return Err(ApiError::Paging(format!(
                            "{MAX_PAGES} full pages without a totalCount or a short page"
                        )));
                    }
                    let page = fetch(index).await?;
                    fetched.pages = index;
                    collected += page.len();
                    stop = is_last_page(&page, self.page_size, collected, None);
                    if absorb(page, &mut fetched) == 0 {
                        // A full page of ids already seen: the server ignores pageIndex.
                        tracing::warn!(
                            list = what,
                            page = index,
                            "page repeats records already seen; stopping paging"
                        );
                        stop = true;
                    }
                    index += 1;
                }
            }
        }
        fetched.items.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(fetched)
    }

    /// Fetches one page, refreshing the token once if the API answers 401. Each attempt
    /// carries a token that is fresh when it is sent.
    async fn fetch_page<T>(
        &self,
        lane: Lane<'_>,
        url: Url,
        body: &str,
        page: u32,
        parse: fn(&[u8]) -> Result<Page<T>, String>,
    ) -> Result<Page<T>, ApiError> {
        let mut refreshed = false;
        loop {
            let (resp, token) = self
                .transport
                .send(lane.endpoint, lane.priority, Some(lane.budget), |c| {
                    let request = c
                        .post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .header(reqwest::header::ACCEPT, "application/json")
                        .body(body.to_owned());
                    async move {
                        let token = self.auth.token().await?;
                        Ok::<_, ApiError>(Prepared {
                            request: request.bearer_auth(&token.value),
                            send_before: Some(token.refresh_at),
                            tag: token.value,
                        })
                    }
                })
                .await?;
            if resp.status == StatusCode::UNAUTHORIZED && !refreshed {
                self.auth.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            return page_from_response(&resp, page, parse);
        }
    }
}

fn page_from_response<T>(
    resp: &HttpResponse,
    page: u32,
    parse: fn(&[u8]) -> Result<Page<T>, String>,
) -> Result<Page<T>, ApiError> {
    if !resp.status.is_success() {
        return Err(ApiError::Status {
            status: resp.status,
            detail: resp.describe(),
        });
    }
    parse(&resp.body).map_err(|reason| ApiError::Parse {
        page,
        reason,
        detail: resp.describe(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, available: u64, assigned: u64) -> TenantSeats {
        TenantSeats {
            id: id.into(),
            name: format!("{id} name"),
            available,
            assigned,
        }
    }

    #[test]
    fn parses_object_envelope() {
        let body = br#"{"data":[{"type":0,"tenantId":"a","tenantName":"a name","availableUserSeat":25,"assignedUserSeat":5,"extra":{"x":1}}],
            "metadata":{"pageIndex":1,"pageSize":50,"totalCount":1},"other":true}"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.items, vec![tenant("a", 25, 5)]);
        assert_eq!(page.total_count, Some(1));
        assert!(page.invalid.is_empty());
    }

    #[test]
    fn parses_bare_array() {
        let body = br#"[{"tenantId":"a","tenantName":"a name","availableUserSeat":1,"assignedUserSeat":2}]"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.items, vec![tenant("a", 1, 2)]);
        assert_eq!(page.total_count, None);
    }

    #[test]
    fn skips_invalid_records_only() {
        let body = br#"{"data":[
            {"tenantId":"ok","tenantName":"ok name","availableUserSeat":0,"assignedUserSeat":0},
            {"tenantName":"no id","availableUserSeat":1,"assignedUserSeat":1},
            {"tenantId":"neg","availableUserSeat":-1,"assignedUserSeat":1},
            {"tenantId":"missing","assignedUserSeat":1},
            {"tenantId":"str","availableUserSeat":"5","assignedUserSeat":1},
            {"tenantId":"noname","availableUserSeat":2,"assignedUserSeat":3},
            42
        ]}"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[1].name, "");
        assert_eq!(page.invalid.len(), 5, "{:?}", page.invalid);
        assert_eq!(page.len(), 7);
        assert!(page.invalid[0].contains("missing tenantId"));
        assert!(page.invalid[1].contains("availableUserSeat -1 is not a non-negative integer"));
        assert!(page.invalid[2].contains("missing availableUserSeat"));
    }

    #[test]
    fn rejects_other_shapes() {
        assert!(parse_page(b"<html>oops</html>")
            .unwrap_err()
            .starts_with("not JSON"));
        assert!(parse_page(br#"{"data":[{"tenantId":"a""#)
            .unwrap_err()
            .starts_with("not JSON"));
        assert_eq!(
            parse_page(br#"{"items":[]}"#).unwrap_err(),
            "object without a \"data\" list"
        );
        assert_eq!(
            parse_page(br#"{"data":{}}"#).unwrap_err(),
            "\"data\" is not a list"
        );
        assert!(parse_page(b"42").is_err());
        assert!(parse_page(br#"{"data":[],"metadata":{"totalCount":-3}}"#).is_err());
        // The doc's own sample is not valid JSON.
        let sample = br#"[ { "type": 0, "tenantId": "f", "tenantName":"T", "availableUserSeat": 25, "assignedUserSeat": 25 }
            "metadata": { "pageIndex": 1, "pageSize": 50, "totalCount": 2 } ]"#;
        assert!(parse_page(sample).is_err());
    }

    fn page_of(n: usize, total: Option<u64>) -> Page {
        Page {
            items: (0..n).map(|i| tenant(&i.to_string(), 1, 1)).collect(),
            invalid: vec![],
            total_count: total,
        }
    }

    #[test]
    fn paging_plan() {
        assert_eq!(plan_after_first(&page_of(0, Some(0)), 100), PagePlan::Done);
        assert_eq!(
            plan_after_first(&page_of(50, Some(50)), 100),
            PagePlan::Done
        );
        assert_eq!(
            plan_after_first(&page_of(100, Some(100)), 100),
            PagePlan::Done
        );
        assert_eq!(
            plan_after_first(&page_of(100, Some(250)), 100),
            PagePlan::Pages(3)
        );
        assert_eq!(
            plan_after_first(&page_of(100, Some(201)), 100),
            PagePlan::Pages(3)
        );
        assert_eq!(
            plan_after_first(&page_of(10, Some(10_000)), 10),
            PagePlan::Pages(1000)
        );
        // A server that ignores pageSize: its page size counts, not ours.
        assert_eq!(
            plan_after_first(&page_of(1000, Some(1000)), 100),
            PagePlan::Done
        );
        assert_eq!(
            plan_after_first(&page_of(500, Some(1200)), 100),
            PagePlan::Pages(3)
        );
        // Absurd counts are not clamped to u32 (the guard reports the real number).
        assert_eq!(
            plan_after_first(&page_of(100, Some(u64::MAX)), 100),
            PagePlan::Pages(u64::MAX.div_ceil(100))
        );
        // A short first page ends paging even if totalCount claims more.
        assert_eq!(
            plan_after_first(&page_of(99, Some(250)), 100),
            PagePlan::Done
        );
        // Bare arrays: a full page means there may be more.
        assert_eq!(
            plan_after_first(&page_of(100, None), 100),
            PagePlan::UntilShort
        );
        assert_eq!(plan_after_first(&page_of(7, None), 100), PagePlan::Done);
    }

    #[test]
    fn last_page_decision() {
        assert!(is_last_page(&page_of(0, None), 100, 100, None));
        assert!(is_last_page(&page_of(50, None), 100, 150, None));
        assert!(!is_last_page(&page_of(100, None), 100, 200, None));
        assert!(is_last_page(&page_of(100, Some(200)), 100, 200, Some(200)));
        assert!(!is_last_page(&page_of(100, Some(250)), 100, 200, Some(250)));
    }

    #[test]
    fn error_causes() {
        let every = [
            ApiError::Transport(TransportError::Timeout(std::time::Duration::ZERO)),
            ApiError::Transport(TransportError::Redirect {
                status: 302,
                location: String::new(),
            }),
            ApiError::Transport(TransportError::TooLarge { limit: 1 }),
            ApiError::Paging(String::new()),
            ApiError::Token(AuthError::Parse(String::new())),
        ];
        for e in every {
            assert!(CAUSES.contains(&e.cause()), "{}", e.cause());
        }
        let status = |s: u16| ApiError::Status {
            status: StatusCode::from_u16(s).unwrap(),
            detail: String::new(),
        };
        assert_eq!(status(429).cause(), "rate_limited");
        assert_eq!(status(503).cause(), "http_5xx");
        assert_eq!(status(403).cause(), "http_4xx");
        assert_eq!(
            ApiError::Transport(TransportError::TooLarge { limit: 1 }).cause(),
            "too_large"
        );
        assert_eq!(
            ApiError::Transport(TransportError::Timeout(std::time::Duration::from_secs(1))).cause(),
            "timeout"
        );
        assert_eq!(
            ApiError::Token(AuthError::Parse(String::new())).cause(),
            "token"
        );
    }
}
