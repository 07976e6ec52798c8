//! The Elements seat endpoint: request building, response parsing and paging.
//!
//! `POST {base}/partner/external/v3/general/customers/{id}/3rd-party-products/type/{n}/tenants/batch`
//! answers either an object `{"data": [...], "metadata": {"totalCount": N, ...}}` or a bare JSON
//! array of tenant records. Both are accepted; records that lack a tenant id or a non-negative
//! seat number are skipped one by one, anything else that is not such a page fails the target.
//!
//! [`wire`] parses the bodies; this module sends the requests and pages.

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::{StatusCode, Url};

use crate::domain::{LicenseAssignedStatus, TenantSeats, TenantType};
use crate::elements::slots::Priority;
use crate::elements::tokens::{AuthError, TokenSource};
use crate::elements::transport::{
    Budget, Endpoint, HttpResponse, Prepared, Transport, TransportError,
};
#[cfg(any(test, feature = "bench"))]
pub use wire::parse_page;
pub use wire::DiscoveredCustomer;
use wire::{parse_customers_page_capped, parse_tenants_page, Page, Record, RecordCap};

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

/// The pages of one list merged as they come: a record whose id was seen on an earlier page
/// replaces it (the last one wins), invalid records are kept with their reasons.
struct Merged<T> {
    fetched: Fetched<T>,
    /// Index in `fetched.items` of every id seen.
    seen: HashMap<String, usize>,
}

impl<T> Default for Merged<T> {
    fn default() -> Self {
        Merged {
            fetched: Fetched {
                items: Vec::new(),
                invalid: Vec::new(),
                pages: 1,
            },
            seen: HashMap::new(),
        }
    }
}

impl<T: Record> Merged<T> {
    /// Adds `page`; returns how many of its records have ids not seen before.
    fn absorb(&mut self, page: Page<T>) -> usize {
        let mut new_ids = 0;
        for t in page.items {
            match self.seen.get(t.key()) {
                Some(&i) => self.fetched.items[i] = t,
                None => {
                    new_ids += 1;
                    self.seen
                        .insert(t.key().to_owned(), self.fetched.items.len());
                    self.fetched.items.push(t);
                }
            }
        }
        self.fetched.invalid.extend(page.invalid);
        new_ids
    }
}

/// How the requests of one list (a target's pages, the customer list) are sent.
struct Lane<'a> {
    endpoint: Endpoint,
    /// Their place in the queue for a request slot.
    priority: Priority,
    /// What their bodies may add up to.
    budget: &'a Budget,
    /// How many records they may hold in all.
    cap: &'a RecordCap,
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
        url.set_path(&prefix);
        let kind = target.tenant_type.api_number().to_string();
        // Segment by segment, each percent-encoded: whatever an id holds, it stays one
        // segment (ids that would change the path are also refused where they enter).
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend([
                "partner",
                "external",
                "v3",
                "general",
                "customers",
                &target.customer_id,
                "3rd-party-products",
                "type",
                &kind,
                "tenants",
                "batch",
            ]);
        }
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
        let cap = RecordCap::default();
        self.fetch_all(&what, |page| {
            self.fetch_page(
                Lane {
                    endpoint: Endpoint::Tenants,
                    priority,
                    budget: &budget,
                    cap: &cap,
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
        let cap = RecordCap::default();
        self.fetch_all("the customer list", |page| {
            self.fetch_page(
                Lane {
                    endpoint: Endpoint::Customers,
                    priority: Priority::URGENT,
                    budget: &budget,
                    cap: &cap,
                },
                self.customers_url(page),
                "{}",
                page,
                parse_customers_page_capped,
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
        let mut merged = Merged::default();
        let mut collected = first.len();
        merged.absorb(first);
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
                // The count is known (at most MAX_PAGES): ask for the remaining pages at once
                // (the transport bounds how many are in flight), then read them in order.
                let n = n as u32;
                let rest = futures_util::future::join_all((2..=n).map(&fetch)).await;
                merged.fetched.pages = n;
                let mut stop = false;
                for page in rest {
                    let page = page?;
                    if stop {
                        continue;
                    }
                    collected += page.len();
                    stop = is_last_page(&page, self.page_size, collected, first_total);
                    merged.absorb(page);
                }
            }
            PagePlan::UntilShort => {
                let mut index = 2;
                loop {
                    if index > MAX_PAGES {
                        return Err(ApiError::Paging(format!(
                            "{MAX_PAGES} full pages without a totalCount or a short page"
                        )));
                    }
                    let page = fetch(index).await?;
                    merged.fetched.pages = index;
                    collected += page.len();
                    let last = is_last_page(&page, self.page_size, collected, None);
                    let records = page.len();
                    if merged.absorb(page) == 0 && records > 0 {
                        // Records, none with a new id: the server ignores pageIndex.
                        tracing::warn!(
                            list = what,
                            page = index,
                            "page repeats records already seen; stopping paging"
                        );
                        break;
                    }
                    if last {
                        break;
                    }
                    index += 1;
                }
            }
        }
        let mut fetched = merged.fetched;
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
        parse: fn(&[u8], &RecordCap) -> Result<Page<T>, String>,
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
            return page_from_response(&resp, page, |body| parse(body, lane.cap));
        }
    }
}

fn page_from_response<T>(
    resp: &HttpResponse,
    page: u32,
    parse: impl Fn(&[u8]) -> Result<Page<T>, String>,
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
