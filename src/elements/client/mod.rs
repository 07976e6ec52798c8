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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use reqwest::{StatusCode, Url};

use crate::domain::{Cause, LicenseAssignedStatus, TenantSeats, TenantType};
use crate::elements::slots::Priority;
use crate::elements::tokens::{AuthError, TokenSource};
use crate::elements::transport::{
    Budget, Endpoint, HttpResponse, Prepared, Transport, TransportError,
};
#[cfg(any(test, feature = "bench"))]
pub use wire::parse_page;
pub use wire::DiscoveredCustomer;
use wire::{
    parse_customers_page_capped, parse_tenants_page, Page, Record, RecordCap, TenantRecord,
};

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
    /// The pages ran out before `metadata.totalCount` records arrived: publishing what did
    /// arrive would silently drop tenants.
    #[error(
        "incomplete list: {received} of the {total} records that metadata.totalCount announces \
         arrived before {why} (page {page})"
    )]
    Incomplete {
        /// Distinct records received.
        received: u64,
        /// What `metadata.totalCount` said.
        total: u64,
        /// The page that ended it.
        page: u32,
        /// How the pages ran out.
        why: &'static str,
    },
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

/// Every cause an [`ApiError`] can have, for counters that start at 0.
pub const CAUSES: [Cause; 9] = [
    Cause::Timeout,
    Cause::Connect,
    Cause::Http4xx,
    Cause::Http5xx,
    Cause::RateLimited,
    Cause::Parse,
    Cause::Token,
    Cause::TooLarge,
    Cause::Incomplete,
];

impl ApiError {
    /// The `cause` label of `avepoint_exporter_target_errors_total` (one of [`CAUSES`]).
    pub fn cause(&self) -> Cause {
        match self {
            ApiError::Token(_) => Cause::Token,
            ApiError::Transport(TransportError::Timeout(_)) => Cause::Timeout,
            ApiError::Transport(
                TransportError::Connect(_)
                | TransportError::Other(_)
                | TransportError::Build(_)
                | TransportError::Redirect { .. },
            ) => Cause::Connect,
            ApiError::Transport(TransportError::TooLarge { .. }) => Cause::TooLarge,
            ApiError::Transport(TransportError::Truncated { .. }) => Cause::Parse,
            ApiError::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                Cause::RateLimited
            }
            ApiError::Status { status, .. } if status.is_server_error() => Cause::Http5xx,
            ApiError::Status { .. } => Cause::Http4xx,
            ApiError::Parse { .. } | ApiError::Paging(_) => Cause::Parse,
            ApiError::Incomplete { .. } => Cause::Incomplete,
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
            None => self.cause().as_str().to_owned(),
        }
    }
}

/// One (customer, tenant type) pair to poll, with what is asked of it: two requests that
/// differ in anything here fetch different data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRequest {
    /// Customer id, as in the path.
    pub customer_id: Arc<str>,
    /// Tenant type, as in the path.
    pub tenant_type: TenantType,
    /// Optional body filter: available or assigned seats (the API's first revision).
    pub license_assigned_status: Option<LicenseAssignedStatus>,
    /// Optional body filter: only these tenants (the API's later revision). Also applied to
    /// the answer, so a server that ignores it still yields only these tenants.
    pub tenant_ids: Option<Arc<[String]>>,
}

impl TargetRequest {
    /// The JSON request body: the configured filters, or `{}`.
    pub fn body(&self) -> String {
        let mut body = serde_json::Map::new();
        if let Some(status) = self.license_assigned_status {
            body.insert("licenseAssignedStatus".into(), status.api_number().into());
        }
        if let Some(ids) = &self.tenant_ids {
            body.insert("tenantIds".into(), ids.iter().map(String::as_str).collect());
        }
        serde_json::Value::Object(body).to_string()
    }
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
    /// Valid records that are not this target's: of another tenant type than the path's
    /// (a server that ignores the type), with an example.
    pub foreign: Skipped,
    /// Valid records of tenants the target does not ask for (a server that ignores the
    /// `tenantIds` filter).
    pub unrequested: usize,
}

/// Records skipped as another target's: how many, and the first one's description.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// How many.
    pub count: usize,
    /// The first one, e.g. `tenant "t1" of type salesforce`.
    pub example: Option<String>,
}

/// The pages of one list merged as they come: a record whose id was seen on an earlier page
/// replaces it (the last one wins), invalid records are kept with their reasons.
struct Merged<T> {
    fetched: Fetched<T>,
    /// Index in `fetched.items` of every id seen.
    seen: HashMap<String, usize>,
    /// Records received, duplicates included (what `totalCount` counts).
    records: u64,
}

impl<T> Default for Merged<T> {
    fn default() -> Self {
        Merged {
            fetched: Fetched {
                items: Vec::new(),
                invalid: Vec::new(),
                pages: 1,
                foreign: Skipped::default(),
                unrequested: 0,
            },
            seen: HashMap::new(),
            records: 0,
        }
    }
}

impl<T: Record> Merged<T> {
    /// Adds `page`; returns how many of its records are new: ids not seen before, and
    /// invalid records.
    fn absorb(&mut self, page: Page<T>) -> usize {
        self.records += page.len() as u64;
        let mut new_ids = page.invalid.len();
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

    /// Records received so far, duplicates included: what `totalCount` counts.
    fn received(&self) -> u64 {
        self.records
    }

    /// Distinct records so far: ids seen plus invalid records.
    fn distinct(&self) -> u64 {
        (self.seen.len() + self.fetched.invalid.len()) as u64
    }

    /// Adds page `index` of a list still short of the `total` it announced. `Ok(true)`: the
    /// page is empty and ends the list, every record announced having arrived counting
    /// duplicates (a total that counts a tenant listed twice). An error: the pages ran out
    /// first, or the page holds nothing new (a server that ignores `pageIndex`).
    fn take(&mut self, page: Page<T>, index: u32, total: u64) -> Result<bool, ApiError> {
        if page.is_empty() {
            return if self.received() >= total {
                Ok(true)
            } else {
                Err(self.incomplete(total, index, "an empty page"))
            };
        }
        if self.absorb(page) == 0 {
            return Err(self.incomplete(total, index, "a page that repeats records already seen"));
        }
        Ok(false)
    }

    /// The error of a list whose pages ended at `page`, for `why`, short of `total`.
    fn incomplete(&self, total: u64, page: u32, why: &'static str) -> ApiError {
        ApiError::Incomplete {
            received: self.distinct(),
            total,
            page,
            why,
        }
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
    /// Where the data comes from: the API and the client it is asked as (see
    /// [`Client::source`]).
    source: String,
}

impl Client {
    /// A client for `base_url`, asking for `page_size` records per page.
    pub fn new(
        transport: Arc<Transport>,
        auth: Arc<TokenSource>,
        base_url: Url,
        page_size: u8,
    ) -> Self {
        let source = format!("{base_url} as client {}", auth.client_identity());
        Client {
            transport,
            auth,
            base_url,
            page_size,
            source,
        }
    }

    /// Where this client's data comes from: the API's base URL and the client it asks as
    /// (no secret). Two clients with the same source fetch the same data; a target whose
    /// source changes is a new target.
    pub fn source(&self) -> &str {
        &self.source
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

    /// Bounds this client's later waits, between attempts and under a 429's `Retry-After`,
    /// by `max` (see [`Transport::set_max_backoff`]); its token and throttle stay.
    pub fn cap_waits(&self, max: std::time::Duration) {
        self.transport.set_max_backoff(max);
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
        let body = target.body();
        let what = format!("customer {} {}", target.customer_id, target.tenant_type);
        let budget = Budget::new(MAX_TARGET_BYTES);
        let cap = RecordCap::default();
        let all = fetch_all(self.page_size, &what, |page| {
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
        .await?;
        Ok(only_requested(target, all))
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
        fetch_all(self.page_size, "the customer list", |page| {
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

/// Fetches page 1 with `fetch`, then the rest, merging duplicate ids; `what` names the
/// list in log lines.
///
/// With a `metadata.totalCount`, paging goes on until that many distinct records have
/// arrived, whatever the pages' length (a server may clamp `pageSize`): the pages that
/// the first page's length says are needed are asked for at once, then one after another
/// while records are still missing (records that moved between pages while they were
/// read). A page with nothing new (a server that ignores `pageIndex`), or an empty page
/// before `totalCount` records arrived even counting duplicates, fails the list as
/// [`ApiError::Incomplete`]. Without a total (the bare array), a page shorter than
/// `page_size` is the last.
async fn fetch_all<T, F, Fut>(page_size: u8, what: &str, fetch: F) -> Result<Fetched<T>, ApiError>
where
    T: Record,
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ApiError>>,
{
    let first = fetch(1).await?;
    let total = first.total_count;
    let per_page = first.len();
    let mut merged = Merged::default();
    merged.absorb(first);
    match total {
        Some(total) => fetch_to_total(&mut merged, total, per_page, &fetch).await?,
        None if per_page >= usize::from(page_size) => {
            fetch_until_short(&mut merged, page_size, what, &fetch).await?
        }
        None => {}
    }
    let mut fetched = merged.fetched;
    fetched.items.sort_by(|a, b| a.key().cmp(b.key()));
    Ok(fetched)
}

/// Pages 2.. of a list whose first page announced `total` records in pages of
/// `per_page` (the first page's length: the page size the server used).
async fn fetch_to_total<T, F, Fut>(
    merged: &mut Merged<T>,
    total: u64,
    per_page: usize,
    fetch: &F,
) -> Result<(), ApiError>
where
    T: Record,
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ApiError>>,
{
    if merged.distinct() >= total {
        return Ok(());
    }
    if per_page == 0 {
        return Err(merged.incomplete(total, 1, "an empty first page"));
    }
    let pages = total.div_ceil(per_page as u64);
    if pages > u64::from(MAX_PAGES) {
        return Err(ApiError::Paging(format!(
            "metadata.totalCount {total} needs {pages} pages of {per_page}, more than \
                 {MAX_PAGES}"
        )));
    }
    // At most MAX_PAGES: ask for them at once (the transport bounds how many are in
    // flight), then read them in order.
    let pages = pages as u32;
    let rest = futures_util::future::join_all((2..=pages).map(fetch)).await;
    merged.fetched.pages = pages;
    // A failed request fails the list first (what the pages hold is judged only when all
    // arrived).
    let rest = rest.into_iter().collect::<Result<Vec<_>, _>>()?;
    for (index, page) in (2..).zip(rest) {
        if merged.distinct() >= total {
            // Surplus (the first page was shorter than the rest): kept, never judged.
            merged.absorb(page);
        } else if merged.take(page, index, total)? {
            return Ok(());
        }
    }
    // Still short (pages shorter than the first, or records that moved between pages while
    // they were read): one page after another until every record is in or a page comes back
    // empty; never more pages than one per record and a last, empty one.
    let mut index = pages.saturating_add(1);
    while merged.distinct() < total {
        if index > MAX_PAGES || u64::from(index) > total.saturating_add(1) {
            return Err(merged.incomplete(total, index.saturating_sub(1), "the paging guard"));
        }
        let page = fetch(index).await?;
        merged.fetched.pages = index;
        if merged.take(page, index, total)? {
            return Ok(());
        }
        index += 1;
    }
    Ok(())
}

/// Pages 2.. of a list without a total: until a short or empty page.
async fn fetch_until_short<T, F, Fut>(
    merged: &mut Merged<T>,
    page_size: u8,
    what: &str,
    fetch: &F,
) -> Result<(), ApiError>
where
    T: Record,
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ApiError>>,
{
    let mut index = 2;
    loop {
        if index > MAX_PAGES {
            return Err(ApiError::Paging(format!(
                "{MAX_PAGES} full pages without a totalCount or a short page"
            )));
        }
        let page = fetch(index).await?;
        merged.fetched.pages = index;
        let last = page.len() < usize::from(page_size);
        let records = page.len();
        if merged.absorb(page) == 0 && records > 0 {
            // Records, none with a new id: the server ignores pageIndex.
            tracing::warn!(
                list = what,
                page = index,
                "page repeats records already seen; stopping paging"
            );
            return Ok(());
        }
        if last {
            return Ok(());
        }
        index += 1;
    }
}

/// The records of `all` that are this target's: of its tenant type (or of none) and, when
/// it names tenants, one of them; the others are counted in [`Fetched::foreign`] and
/// [`Fetched::unrequested`].
fn only_requested(target: &TargetRequest, all: Fetched<TenantRecord>) -> Fetched {
    let Fetched {
        items,
        invalid,
        pages,
        ..
    } = all;
    let mut foreign = Skipped::default();
    let mut unrequested = 0;
    let mut mine = Vec::with_capacity(items.len());
    // Tenant ids compare without case, as GUIDs do.
    let wanted: Option<HashSet<String>> = target
        .tenant_ids
        .as_ref()
        .map(|ids| ids.iter().map(|id| id.to_lowercase()).collect());
    for record in items {
        let kind = match &record.tenant_type {
            Some(Ok(kind)) if *kind != target.tenant_type => Some(kind.name().to_owned()),
            Some(Err(unknown)) => Some(format!("{unknown} (unknown)")),
            _ => None,
        };
        if let Some(kind) = kind {
            foreign.count += 1;
            foreign
                .example
                .get_or_insert_with(|| format!("tenant {:?} of type {kind}", record.seats.id));
        } else if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&record.seats.id.to_lowercase()))
        {
            unrequested += 1;
        } else {
            mine.push(record.seats);
        }
    }
    Fetched {
        items: mine,
        invalid,
        pages,
        foreign,
        unrequested,
    }
}

/// A page from an answer: 204 No Content and a success with an empty body are an empty page
/// (a documented success: no records); any other success is parsed; anything else is an
/// error.
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
    if resp.status == StatusCode::NO_CONTENT
        || resp.status == StatusCode::OK && resp.body.iter().all(u8::is_ascii_whitespace)
    {
        return Ok(Page {
            items: Vec::new(),
            invalid: Vec::new(),
            total_count: None,
        });
    }
    parse(&resp.body).map_err(|reason| ApiError::Parse {
        page,
        reason,
        detail: resp.describe(),
    })
}
