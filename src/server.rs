//! The HTTP server: `/metrics`, the landing page, health, readiness and reload endpoints, on
//! hyper 1 with graceful shutdown.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, VARY,
    WWW_AUTHENTICATE,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{BuildInfo, Format, Metrics, Scrape};
use crate::poller::Status;
use crate::web::WebSettings;

mod connection;

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a new connection waits for the idle connection closed to make room for it.
const EVICT_WAIT: Duration = Duration::from_secs(2);

/// A request to reload the configuration; answered with `Err(reason)` when refused.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address is not `host:port` or `:port`.
    #[error("--web.listen-address {addr:?}: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address is taken by another process.
    #[error("cannot listen on {addr}: address already in use (is another exporter running?)")]
    AddrInUse {
        /// The address as given.
        addr: String,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Connection limits and timeouts of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers (and, with TLS, to finish the
    /// handshake) before it is closed; also how long an idle keep-alive connection stays open.
    pub read_header_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 512,
            read_header_timeout: Duration::from_secs(10),
        }
    }
}

/// Largest request head accepted; larger ones get 431 (HTTP/1.1) or a reset (HTTP/2).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What request handlers read.
pub struct AppState {
    /// Metrics and the seat snapshot.
    pub metrics: Arc<Metrics>,
    /// Per-target status from the poller.
    pub status: Arc<ArcSwap<Status>>,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// Where reload requests go; `None` disables `/-/reload` (demo mode).
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// Build facts for the landing page.
    pub build: BuildInfo,
    /// TLS, headers and basic auth from `--web.config.file`; replaced on reload.
    pub web: Arc<ArcSwap<WebSettings>>,
}

/// Binds every listen address (`host:port`, or `:port` for all interfaces: IPv6 and IPv4 on
/// one dual-stack socket where the host has IPv6, IPv4 alone where it has not).
pub async fn bind(addrs: &[String]) -> Result<Vec<TcpListener>, ServerError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = match addr.strip_prefix(':') {
            Some(port) => bind_all_interfaces(addr, port)?,
            None => bind_one(addr).await?,
        };
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_error(addr: &str, source: std::io::Error) -> ServerError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        ServerError::AddrInUse {
            addr: addr.to_owned(),
        }
    } else {
        ServerError::Bind {
            addr: addr.to_owned(),
            source,
        }
    }
}

/// `:port`: `[::]:port` with IPV6_V6ONLY off (like Go's net.Listen, as node_exporter does),
/// or `0.0.0.0:port` on a host without IPv6.
fn bind_all_interfaces(addr: &str, port: &str) -> Result<TcpListener, ServerError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let port: u16 = port.parse().map_err(|_| ServerError::BadAddress {
        addr: addr.to_owned(),
        reason: "expected host:port or :port".into(),
    })?;
    let v6 = || -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_only_v6(false)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
        Ok(socket)
    };
    let socket = match v6() {
        Ok(socket) => socket,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(bind_error(addr, e)),
        Err(_) => {
            let v4 = || -> std::io::Result<Socket> {
                let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
                socket.set_reuse_address(true)?;
                socket.bind(&SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)).into())?;
                Ok(socket)
            };
            v4().map_err(|e| bind_error(addr, e))?
        }
    };
    socket
        .listen(1024)
        .and_then(|()| socket.set_nonblocking(true))
        .and_then(|()| TcpListener::from_std(socket.into()))
        .map_err(|e| bind_error(addr, e))
}

async fn bind_one(addr: &str) -> Result<TcpListener, ServerError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| ServerError::BadAddress {
            addr: addr.to_owned(),
            reason: format!("expected host:port or :port ({e})"),
        })?
        .collect();
    let first = resolved.first().ok_or_else(|| ServerError::BadAddress {
        addr: addr.to_owned(),
        reason: "resolves to no address".into(),
    })?;
    TcpListener::bind(first)
        .await
        .map_err(|source| bind_error(addr, source))
}

/// Serves HTTP (or HTTPS, per the web config) on `listeners` until `shutdown` completes, then
/// stops accepting and waits up to [`DRAIN_TIMEOUT`] for requests in flight.
pub async fn serve(
    listeners: Vec<TcpListener>,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(connection::Registry::default());
    let (conn_tx, mut conn_rx) = mpsc::channel::<tokio::net::TcpStream>(64);
    let mut accept_tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let conn_tx = conn_tx.clone();
        accept_tasks.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if conn_tx.send(stream).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly and go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(conn_tx);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            stream = conn_rx.recv() => {
                let Some(stream) = stream else { break };
                let permit = match connections.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    // Full: make room by closing the connection idle longest, if there is one.
                    Err(_) if registry.evict_idlest() => {
                        let freed = tokio::time::timeout(
                            EVICT_WAIT,
                            connections.clone().acquire_owned(),
                        );
                        match freed.await {
                            Ok(Ok(permit)) => permit,
                            _ => continue,
                        }
                    }
                    Err(_) => {
                        tracing::debug!(
                            max = limits.max_connections,
                            "connection limit reached and every connection is busy; closing a new connection"
                        );
                        continue;
                    }
                };
                let state = state.clone();
                let closing = closing_rx.clone();
                let registry = registry.clone();
                tokio::spawn(async move {
                    connection::serve(stream, state, limits, closing, registry).await;
                    drop(permit);
                });
            }
        }
    }
    accept_tasks.abort_all();
    let _ = closing.send(true);
    // Every connection holds a permit until it is closed: all permits back = all closed.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    tokio::select! {
        _ = connections.acquire_many(all) => tracing::debug!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}

fn service(
    state: Arc<AppState>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(secured(req, &state).await) }
    })
}

/// Basic auth (every path but `/-/healthy`) and the configured headers around [`handle`].
async fn secured(req: Request<Incoming>, state: &AppState) -> Response<Body> {
    let web = state.web.load_full();
    let mut resp = match &web.auth {
        Some(auth)
            if req.uri().path() != "/-/healthy"
                && !auth.check(req.headers().get(AUTHORIZATION)).await =>
        {
            let mut resp = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"avepoint-elements-exporter\""),
            );
            resp
        }
        _ => handle(req, state).await,
    };
    for (name, value) in &web.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

type Body = BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}\n"),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

async fn handle(req: Request<Incoming>, state: &AppState) -> Response<Body> {
    // RFC 9112 3.2: an HTTP/1.1 request without Host is a 400.
    if req.version() == hyper::Version::HTTP_11
        && req.uri().authority().is_none()
        && !req.headers().contains_key(hyper::header::HOST)
    {
        return text(StatusCode::BAD_REQUEST, "missing Host header\n");
    }
    let path = req.uri().path();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let resp = if path == state.telemetry_path {
        if read {
            metrics(&req, state)
        } else {
            method_not_allowed("GET, HEAD")
        }
    } else {
        match path {
            "/" if read => landing(state),
            "/-/healthy" if read => text(StatusCode::OK, "Healthy\n"),
            "/-/ready" if read => {
                let status = state.status.load();
                if status.ready() {
                    text(StatusCode::OK, "Ready\n")
                } else if !status.complete {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: waiting for the first customer list (discovery)\n",
                    )
                } else {
                    let polled = status
                        .targets
                        .iter()
                        .filter(|t| t.last_poll.is_some())
                        .count();
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "Not ready: {polled} of {} targets polled\n",
                            status.targets.len()
                        ),
                    )
                }
            }
            "/" | "/-/healthy" | "/-/ready" => method_not_allowed("GET, HEAD"),
            "/-/reload" if *req.method() == Method::POST => reload(state).await,
            "/-/reload" => method_not_allowed("POST"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    };
    if *req.method() == Method::HEAD {
        // The headers a GET would carry, Content-Length included, and no body.
        let (mut parts, body) = resp.into_parts();
        if let Some(length) = hyper::body::Body::size_hint(&body).exact() {
            parts
                .headers
                .insert(hyper::header::CONTENT_LENGTH, length.into());
        }
        return Response::from_parts(parts, Full::new(Bytes::new()).boxed());
    }
    resp
}

/// Whether the client accepts a gzip response (`gzip` listed without `q=0`).
pub fn accepts_gzip(header: Option<&HeaderValue>) -> bool {
    let Some(value) = header.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        // x-gzip is gzip (RFC 9110, 8.4.1.3).
        (name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) && !q_zero
    })
}

/// A scrape as a body whose length is known, so that hyper sends `Content-Length` (which
/// HTTP/1.0 keep-alive clients need) instead of chunked encoding.
struct ScrapeBody(Scrape);

impl hyper::body::Body for ScrapeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.get_mut().0.next_piece().map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.remaining() == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.remaining())
    }
}

/// The format a scraper prefers: OpenMetrics 1.0.0 when `Accept` names
/// `application/openmetrics-text` (without a version, or version 1.0.0) with a quality at
/// least that of the text format; the text format otherwise (also for `*/*` and no header).
pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
    let Some(value) = accept.and_then(|v| v.to_str().ok()) else {
        return Format::Text;
    };
    let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
    for item in value.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut q, mut version) = (1.0f32, None);
        for p in parts {
            if let Some(v) = p.strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            } else if let Some(v) = p.strip_prefix("version=") {
                version = Some(v.to_owned());
            }
        }
        match media.as_str() {
            "application/openmetrics-text" if version.as_deref().is_none_or(|v| v == "1.0.0") => {
                openmetrics = openmetrics.max(q)
            }
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

fn metrics(req: &Request<Incoming>, state: &AppState) -> Response<Body> {
    let gzip = accepts_gzip(req.headers().get(ACCEPT_ENCODING));
    let format = negotiate(req.headers().get(hyper::header::ACCEPT));
    let chunks = state.metrics.scrape(gzip, format);
    let mut resp = Response::new(ScrapeBody(chunks).boxed());
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

async fn reload(state: &AppState) -> Response<Body> {
    let Some(tx) = &state.reload else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload is not available in demo mode\n",
        );
    };
    let (answer_tx, answer_rx) = oneshot::channel();
    if tx.send(answer_tx).await.is_err() {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reloader is not running\n",
        );
    }
    match answer_rx.await {
        Ok(Ok(())) => text(StatusCode::OK, "config reloaded\n"),
        Ok(Err(reason)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("config reload failed: {reason}\n"),
        ),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reloader is not running\n",
        ),
    }
}

/// Escapes text for HTML.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    format!("{}s ago", secs)
}

fn landing(state: &AppState) -> Response<Body> {
    let status = state.status.load();
    let path = html(&state.telemetry_path);
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>AvePoint Elements Exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}.down{{color:#b00}}</style></head>\n\
<body><h1>AvePoint Elements Exporter</h1>\n<p>Version {} (revision {})</p>\n<p><a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>\n\
<h2>Targets</h2>\n<p>{} targets, {} target polls completed.</p>\n<table><tr><th>customer id</th><th>customer</th><th>tenant type</th><th>last poll</th><th>result</th><th>last success</th><th>tenants</th></tr>\n",
        html(state.build.version),
        html(state.build.revision),
        status.targets.len(),
        status.polls
    );
    for t in &status.targets {
        let (class, result) = match (&t.last_poll, &t.last_error) {
            (None, _) => ("", "not polled yet".to_owned()),
            (Some(_), None) => ("", "ok".to_owned()),
            (Some(_), Some(e)) => ("down", format!("error: {}", html(e))),
        };
        let _ = writeln!(
            page,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{result}</td><td>{}</td><td>{}</td></tr>",
            html(&t.customer_id),
            html(&t.customer_name),
            t.tenant_type,
            t.last_poll.map(ago).unwrap_or_else(|| "never".into()),
            t.last_success.map(ago).unwrap_or_else(|| "never".into()),
            t.tenants
        );
    }
    page.push_str("</table>\n</body></html>\n");
    let mut resp = text(StatusCode::OK, page);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_negotiation() {
        let f = |s: &'static str| negotiate(Some(&HeaderValue::from_static(s)));
        // What Prometheus 2.x sends.
        assert_eq!(
            f("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
        assert_eq!(f("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(
            f("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
            Format::Text
        );
        assert_eq!(
            f("application/openmetrics-text;version=0.0.1"),
            Format::Text
        );
        assert_eq!(f("*/*"), Format::Text);
        assert_eq!(f("application/openmetrics-text;q=0"), Format::Text);
        assert_eq!(negotiate(None), Format::Text);
    }

    #[test]
    fn gzip_negotiation() {
        let h = |s: &'static str| accepts_gzip(Some(&HeaderValue::from_static(s)));
        assert!(h("gzip"));
        assert!(h("deflate, gzip;q=0.5"));
        assert!(h("GZIP"));
        assert!(!h("gzip;q=0"));
        assert!(!h("identity"));
        assert!(!h("x-gzip2"));
        assert!(h("x-gzip"));
        assert!(!h("x-gzip;q=0"));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
