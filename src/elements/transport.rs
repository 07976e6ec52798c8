//! Sending one HTTP request to Elements the way every request must be sent: within the
//! concurrency and rate limits, retried on transient failures with backoff and jitter, with a
//! bounded body, and counted in `avepoint_exporter_api_requests_total`.

use std::future::Future;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::time::Instant;

mod response;

pub use response::{describe, HttpResponse};

use crate::elements::ratelimit::RateLimiter;
use crate::elements::redact::Redactor;
use crate::elements::slots::{Permits, Priority};
use crate::metrics::Metrics;

/// Largest response body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Redirects followed at most, and only within the origin (scheme, host, port) of the request.
const MAX_REDIRECTS: usize = 5;

/// Longest wait before another attempt at the token endpoint, whatever its `Retry-After`
/// says: callers wait for the token fetch, retries included.
pub const TOKEN_MAX_WAIT: Duration = Duration::from_secs(5);

/// Which Elements endpoint a request goes to (the `endpoint` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The OAuth2 token endpoint.
    Token,
    /// The tenants batch endpoint.
    Tenants,
    /// The customer list (discovery).
    Customers,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Tenants => "tenants",
            Endpoint::Customers => "customers",
        }
    }
}

/// Why a request produced no complete response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The request or the body read took longer than the timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// No connection could be made.
    #[error("cannot connect: {}", chain(.0.as_ref()))]
    Connect(#[source] Arc<reqwest::Error>),
    /// The body is larger than [`MAX_BODY_BYTES`], or than what the target had left of its
    /// budget ([`Budget`]).
    #[error("response body larger than {limit} bytes refused")]
    TooLarge {
        /// The limit that was crossed.
        limit: usize,
    },
    /// The server redirected the request to another origin (or too often): credentials and
    /// data must not follow it.
    #[error("redirect ({status}) to {location:?} refused: set the URL the redirect points to, if it is trusted")]
    Redirect {
        /// The redirect status.
        status: u16,
        /// Its `Location` header.
        location: String,
    },
    /// The connection broke while reading the body.
    #[error("response body truncated ({detail}): {}", chain(.cause.as_ref()))]
    Truncated {
        /// Status, content type and the first bytes received.
        detail: String,
        /// The underlying error.
        #[source]
        cause: Arc<reqwest::Error>,
    },
    /// The HTTP client could not be built (TLS roots, settings).
    #[error("{}", chain(.0.as_ref()))]
    Build(#[source] Arc<reqwest::Error>),
    /// Any other failure of the HTTP client.
    #[error("request failed: {}", chain(.0.as_ref()))]
    Other(#[source] Arc<reqwest::Error>),
}

/// Knobs of the transport.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Timeout of one attempt (request and body).
    pub timeout: Duration,
    /// Requests in flight at once.
    pub max_concurrency: NonZeroUsize,
    /// Request rate limit.
    pub max_requests_per_second: Option<NonZeroU32>,
    /// Extra attempts for retryable failures.
    pub retries: u32,
    /// First backoff delay; doubled each attempt, with full jitter.
    pub backoff_base: Duration,
    /// Upper bound of any wait between attempts (including `Retry-After`) until
    /// [`Transport::set_max_backoff`] sets another.
    pub max_backoff: Duration,
}

/// A request ready to be sent, made by the `prepare` step of [`Transport::send`] just before
/// each attempt (so that it carries a token that is fresh at that moment).
pub struct Prepared<T> {
    /// The request.
    pub request: reqwest::RequestBuilder,
    /// The request must not be sent after this instant (its token is due for refresh then);
    /// if waiting for a slot took that long, it is prepared again.
    pub send_before: Option<Instant>,
    /// Handed back with the response (for example the token the request carried).
    pub tag: T,
}

impl Prepared<()> {
    /// A request that can be sent at any time.
    pub fn plain(request: reqwest::RequestBuilder) -> Self {
        Prepared {
            request,
            send_before: None,
            tag: (),
        }
    }
}

/// Bytes one target's responses may hold together, counted while streaming: a server that
/// sends many huge pages fails the target instead of growing the process.
#[derive(Debug)]
pub struct Budget {
    left: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget {
            left: std::sync::atomic::AtomicUsize::new(limit),
            limit,
        }
    }

    /// Takes `n` bytes, or fails when fewer are left.
    fn take(&self, n: usize) -> Result<(), TransportError> {
        use std::sync::atomic::Ordering;
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .map(|_| ())
            .map_err(|_| TransportError::TooLarge { limit: self.limit })
    }
}

/// The shared HTTP sender of one configuration.
pub struct Transport {
    client: reqwest::Client,
    /// Requests in flight, handed out by priority.
    permits: Arc<Permits>,
    limiter: RateLimiter,
    /// Exponentially weighted mean latency of recent attempts, in seconds.
    latency: std::sync::Mutex<Option<f64>>,
    redactor: Arc<Redactor>,
    options: TransportOptions,
    /// The bound on waits in force, in nanoseconds: `options.max_backoff` at first, then
    /// whatever [`Transport::set_max_backoff`] set.
    max_backoff: std::sync::atomic::AtomicU64,
    metrics: Arc<Metrics>,
}

/// What one attempt produced: a response, or a transport failure.
type Attempt<T> = Result<(HttpResponse, HeaderMap, T), TransportError>;

impl Transport {
    /// Builds the HTTP client (rustls) and the limits; `redactor` cuts the configuration's
    /// credentials out of whatever a response shows.
    pub fn new(
        options: TransportOptions,
        metrics: Arc<Metrics>,
        redactor: Redactor,
    ) -> Result<Self, TransportError> {
        // Redirects are followed only within the origin: a token request (client secret in its
        // body) or a data request (bearer token) never goes to another host, and a redirect
        // there comes back as a response that `exchange` refuses.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if same_origin && attempt.previous().len() <= MAX_REDIRECTS {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(redirects)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(
                "avepoint-elements-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| TransportError::Build(Arc::new(e)))?;
        let limiter = RateLimiter::new(
            options.max_requests_per_second.map(|n| f64::from(n.get())),
            options.max_backoff,
            metrics.api().rate_limit(),
        );
        Ok(Transport {
            client,
            permits: Permits::new(options.max_concurrency.get()),
            limiter,
            latency: std::sync::Mutex::new(None),
            redactor: Arc::new(redactor),
            max_backoff: std::sync::atomic::AtomicU64::new(nanos(options.max_backoff)),
            options,
            metrics,
        })
    }

    /// Bounds every later wait between attempts, and every later `Retry-After` pause of the
    /// rate limit, by `max`. Waits already under way run their course. The bound is a setting
    /// of the running transport, not part of what it is: changing it keeps the connections,
    /// the rate limit and any throttle.
    pub fn set_max_backoff(&self, max: Duration) {
        use std::sync::atomic::Ordering;
        self.max_backoff.store(nanos(max), Ordering::Relaxed);
        self.limiter.set_max_pause(max);
    }

    /// The bound on waits in force.
    fn max_backoff(&self) -> Duration {
        use std::sync::atomic::Ordering;
        Duration::from_nanos(self.max_backoff.load(Ordering::Relaxed))
    }

    /// Requests in flight at most.
    pub fn max_concurrency(&self) -> usize {
        self.options.max_concurrency.get()
    }

    /// What one request costs the client at the limits and the latency observed lately: the
    /// rate limit's spacing, or the mean latency shared by the concurrent slots, whichever is
    /// longer. Requests per round × this = the time a round needs.
    pub fn request_cost(&self) -> Duration {
        let spacing = self.limiter.rate().map_or(0.0, |r| 1.0 / r);
        let latency = self.latency.lock().map(|l| l.unwrap_or(0.0)).unwrap_or(0.0);
        let shared = latency / self.options.max_concurrency.get() as f64;
        Duration::from_secs_f64(spacing.max(shared).clamp(0.0, 1e9))
    }

    /// What cuts credentials out of text from the servers this transport talks to.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Folds one attempt's latency into the running mean.
    fn observe_latency(&self, took: Duration) {
        const WEIGHT: f64 = 0.05;
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let x = took.as_secs_f64();
        *l = Some(match *l {
            Some(mean) => mean + WEIGHT * (x - mean),
            None => x,
        });
    }

    /// Sends the request made by `prepare` (called again for each attempt) and reads the whole
    /// body. Responses with status 5xx or 429 and transport failures are retried up to
    /// `retries` times; the last response is returned whatever its status, with the tag of the
    /// request that produced it. An error of `prepare` ends the exchange at once. Requests
    /// waiting for a slot are served lowest `priority` first; bodies count against `budget`.
    pub async fn send<T, E, F, Fut>(
        &self,
        endpoint: Endpoint,
        priority: Priority,
        budget: Option<&Budget>,
        prepare: F,
    ) -> Result<(HttpResponse, T), E>
    where
        F: Fn(&reqwest::Client) -> Fut,
        Fut: Future<Output = Result<Prepared<T>, E>>,
        E: From<TransportError>,
    {
        let mut attempt = 0;
        loop {
            let outcome = self
                .attempt(endpoint, priority, budget, &prepare, attempt + 1)
                .await?;
            let wait = match &outcome {
                Ok((resp, headers, _)) if resp.status == StatusCode::TOO_MANY_REQUESTS => {
                    // Throttled: the limiter pauses every request for Retry-After and slows
                    // down; this one also backs off before its next attempt.
                    let hint = retry_after(headers, SystemTime::now());
                    self.limiter.throttled(hint);
                    Some(self.backoff(attempt))
                }
                Ok((resp, headers, _)) if retryable_status(resp.status) => Some(
                    retry_after(headers, SystemTime::now())
                        .unwrap_or_else(|| self.backoff(attempt)),
                ),
                Ok((resp, _, _)) => {
                    if resp.status.is_success() {
                        self.limiter.succeeded();
                    }
                    None
                }
                Err(TransportError::Timeout(_) | TransportError::Connect(_))
                | Err(TransportError::Other(_)) => Some(self.backoff(attempt)),
                Err(_) => None,
            };
            match wait {
                Some(wait) if attempt < self.options.retries => {
                    let mut wait = wait.min(self.max_backoff());
                    if endpoint == Endpoint::Token {
                        // Every poll waits for the token: a sick token endpoint asking for an
                        // hour is asked again within seconds, not after the hour.
                        wait = wait.min(TOKEN_MAX_WAIT);
                    }
                    tracing::debug!(
                        endpoint = endpoint.label(),
                        attempt = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        "retrying request"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return outcome.map(|(resp, _, tag)| (resp, tag)).map_err(E::from),
            }
        }
    }

    /// Exponential backoff with full jitter: a random wait in [0, base × 2^attempt].
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .options
            .backoff_base
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_backoff());
        cap.mul_f64(fastrand::f64())
    }

    /// One attempt: prepare the request, wait for a free slot (concurrency, then rate), send.
    /// The outer error is `prepare`'s; the inner one the transport's.
    async fn attempt<T, E, F, Fut>(
        &self,
        endpoint: Endpoint,
        priority: Priority,
        budget: Option<&Budget>,
        prepare: &F,
        number: u32,
    ) -> Result<Attempt<T>, E>
    where
        F: Fn(&reqwest::Client) -> Fut,
        Fut: Future<Output = Result<Prepared<T>, E>>,
    {
        // A request whose token went stale while it waited is prepared once more; a second
        // stale one (a server issuing tokens that expire at once) is sent anyway.
        let mut fresh_tries = 2;
        loop {
            // Prepared first: fetching a token may itself need a request, and a slot.
            let prepared = prepare(&self.client).await?;
            let permit = self.permits.acquire(priority).await;
            // The rate slot last, so that requests leave at the paced instants.
            self.limiter.acquire().await;
            fresh_tries -= 1;
            if fresh_tries > 0 && prepared.send_before.is_some_and(|t| Instant::now() >= t) {
                drop(permit);
                continue;
            }
            let timer = self.metrics.api().time_request(endpoint.label());
            let sent = Instant::now();
            let (client, request) = prepared.request.build_split();
            // At debug level, every request: method and path (never the query, headers or
            // body, where credentials travel).
            let shown = tracing::enabled!(tracing::Level::DEBUG).then(|| match &request {
                Ok(r) => (r.method().to_string(), r.url().path().to_owned()),
                Err(_) => (String::new(), String::new()),
            });
            let (status, result) = self.exchange(&client, request, budget).await;
            timer.observe_duration();
            if let Some((method, path)) = shown {
                tracing::debug!(
                    endpoint = endpoint.label(),
                    method,
                    path,
                    status = status.map_or_else(|| "error".to_owned(), |s| s.as_u16().to_string()),
                    latency_ms = sent.elapsed().as_millis() as u64,
                    attempt = number,
                    error = result
                        .as_ref()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    "request"
                );
            }
            if result.is_ok() {
                self.observe_latency(sent.elapsed());
            }
            // The status the server sent, even when the body was refused afterwards.
            let code = match status {
                Some(status) => status.as_u16().to_string(),
                None => "error".to_owned(),
            };
            self.metrics.api().count_request(endpoint.label(), &code);
            return Ok(result.map(|(resp, headers)| (resp, headers, prepared.tag)));
        }
    }

    /// Sends and reads the whole body; also returns the status, if one arrived.
    async fn exchange(
        &self,
        client: &reqwest::Client,
        request: reqwest::Result<reqwest::Request>,
        budget: Option<&Budget>,
    ) -> (
        Option<StatusCode>,
        Result<(HttpResponse, HeaderMap), TransportError>,
    ) {
        let sent = match request {
            Ok(request) => client.execute(request).await,
            Err(e) => Err(e),
        };
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => return (None, Err(self.classify(e))),
        };
        let status = resp.status();
        (Some(status), self.read(resp, budget).await)
    }

    async fn read(
        &self,
        mut resp: reqwest::Response,
        budget: Option<&Budget>,
    ) -> Result<(HttpResponse, HeaderMap), TransportError> {
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(TransportError::Redirect {
                status: status.as_u16(),
                location: self.redactor.apply(&location),
            });
        }
        let headers = resp.headers().clone();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let too_large = TransportError::TooLarge {
            limit: MAX_BODY_BYTES,
        };
        if resp.content_length().unwrap_or(0) > MAX_BODY_BYTES as u64 {
            return Err(too_large);
        }
        // Sized once from Content-Length (at most the body limit, checked above) instead of
        // doubling as chunks arrive: a 16 MiB page then takes 16 MiB, not up to 32.
        let declared = resp
            .content_length()
            .unwrap_or(0)
            .min(MAX_BODY_BYTES as u64);
        let mut body = BytesMut::with_capacity(declared as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(too_large);
                    }
                    if let Some(budget) = budget {
                        budget.take(chunk.len())?;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Err(TransportError::Timeout(self.options.timeout))
                }
                Err(e) => {
                    return Err(TransportError::Truncated {
                        detail: describe(status, &content_type, &body, &self.redactor),
                        cause: Arc::new(e),
                    })
                }
            }
        }
        Ok((
            HttpResponse {
                status,
                content_type,
                body: body.freeze(),
                redactor: self.redactor.clone(),
            },
            headers,
        ))
    }

    fn classify(&self, e: reqwest::Error) -> TransportError {
        if e.is_timeout() {
            TransportError::Timeout(self.options.timeout)
        } else if e.is_connect() {
            TransportError::Connect(Arc::new(e))
        } else {
            TransportError::Other(Arc::new(e))
        }
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (over 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// 5xx and 429 are worth another attempt; other statuses are final.
fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The wait a `Retry-After` header asks for (delta-seconds or an HTTP date), if any.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An error and its causes, `outer: inner: ...`: reqwest's own message rarely says why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:50:07 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn which_statuses_retry() {
        assert!(retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(retryable_status(StatusCode::BAD_GATEWAY));
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable_status(StatusCode::BAD_REQUEST));
        assert!(!retryable_status(StatusCode::FORBIDDEN));
        assert!(!retryable_status(StatusCode::NOT_FOUND));
        assert!(!retryable_status(StatusCode::UNAUTHORIZED));
    }

    #[test]
    fn describe_cuts_at_200_bytes() {
        let body = vec![b'x'; 500];
        let d = describe(StatusCode::OK, "text/html", &body, &Redactor::default());
        assert!(d.starts_with("status 200, content type \"text/html\", body starts \"xxx"));
        assert_eq!(d.matches("xx").count(), 100); // 200 of the body's x, none of the rest
    }
}
