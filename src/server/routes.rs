//! The endpoints: `/metrics` (or the telemetry path), `/` ([`super::landing`]),
//! `/api/v1/targets` ([`super::targets`]), `/-/healthy`, `/-/ready`, `/-/reload`; basic auth and the configured headers around them. Generic over the request
//! body, so they are tested without a socket.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

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

use super::landing;
use super::state::AppState;
use super::targets::{self, Filter};
use crate::metrics::{Format, Scrape};

pub(super) fn service(
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
async fn secured<B>(req: Request<B>, state: &AppState) -> Response<Body> {
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

pub(super) type Body = BoxBody<Bytes, Infallible>;

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

async fn handle<B>(req: Request<B>, state: &AppState) -> Response<Body> {
    // RFC 9112 3.2: an HTTP/1.1 request without Host is a 400.
    if req.version() == hyper::Version::HTTP_11
        && req.uri().authority().is_none()
        && !req.headers().contains_key(hyper::header::HOST)
    {
        return text(StatusCode::BAD_REQUEST, "missing Host header\n");
    }
    if *req.method() == Method::HEAD {
        if let Some(resp) = head(&req, state) {
            return resp;
        }
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
            "/" if read => landing_page(req.uri().query(), state),
            "/api/v1/targets" if read => targets_api(req.uri().query(), state).await,
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
            "/" | "/api/v1/targets" | "/-/healthy" | "/-/ready" => method_not_allowed("GET, HEAD"),
            "/-/reload" if *req.method() == Method::POST => reload(state).await,
            "/-/reload" => method_not_allowed("POST"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    };
    if *req.method() == Method::HEAD {
        // The fixed answers: the headers a GET would carry, Content-Length included, and no
        // body.
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

/// `HEAD` of an endpoint whose body is generated (the exposition, the landing page, the
/// targets API): the status and headers a `GET` would carry, without building the body, so
/// without the `Content-Length` that only the body would tell (RFC 9110, 9.3.2: a field
/// "determined only while generating the content" may be left out). A `HEAD` is not a scrape.
/// `None` for the other endpoints, whose answers are small and fixed.
fn head<B>(req: &Request<B>, state: &AppState) -> Option<Response<Body>> {
    let path = req.uri().path();
    let empty = |status: StatusCode| {
        let mut resp = Response::new(Full::new(Bytes::new()).boxed());
        *resp.status_mut() = status;
        resp
    };
    if path == state.telemetry_path {
        let format = negotiate(req.headers().get(hyper::header::ACCEPT));
        let gzip = state
            .metrics
            .serves_gzip(accepts_gzip(req.headers().get(ACCEPT_ENCODING)));
        return Some(scrape_headers(empty(StatusCode::OK), format, gzip));
    }
    match path {
        "/" => Some(with_type(empty(StatusCode::OK), LANDING_TYPE)),
        "/api/v1/targets" => {
            // The status a GET would answer: a bad filter is a 400.
            let (status, length) = match Filter::parse(req.uri().query()) {
                // The shared answer tells its length once it has been rendered.
                Ok(filter) if filter == Filter::default() => {
                    (StatusCode::OK, targets::shared_len(&state.status.load()))
                }
                Ok(_) => (StatusCode::OK, None),
                Err(_) => (StatusCode::BAD_REQUEST, None),
            };
            let mut resp = with_type(empty(status), TARGETS_TYPE);
            if let Some(length) = length {
                resp.headers_mut()
                    .insert(hyper::header::CONTENT_LENGTH, length.into());
            }
            Some(resp)
        }
        _ => None,
    }
}

#[cfg(test)]
thread_local! {
    /// Bodies of generated answers built on this thread (the tests count them).
    static BODIES_BUILT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts a generated body (tests only).
fn body_built() {
    #[cfg(test)]
    BODIES_BUILT.with(|n| n.set(n.get() + 1));
}

/// Content type of the landing page.
const LANDING_TYPE: &str = "text/html; charset=utf-8";
/// Content type of the targets API.
const TARGETS_TYPE: &str = "application/json";

/// Whether the client accepts a gzip response (`gzip` listed with a weight above 0).
pub fn accepts_gzip(header: Option<&HeaderValue>) -> bool {
    let Some(value) = header.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').any(|item| {
        let (name, mut params) = list_item(item);
        let q = params
            .find(|(k, _)| k.eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| weight(v));
        // x-gzip is gzip (RFC 9110, 8.4.1.3).
        (name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) && q > 0.0
    })
}

/// One item of a header list (`name;key=value;…`): its name, and its parameters with quoted
/// values unquoted (RFC 9110, 5.6.6; keys compare without regard to case). Borrowed from the
/// header: nothing is allocated per scrape.
fn list_item(item: &str) -> (&str, impl Iterator<Item = (&str, &str)>) {
    let mut parts = item.split(';').map(str::trim);
    let name = parts.next().unwrap_or("");
    let params = parts.filter_map(|p| p.split_once('=')).map(|(k, v)| {
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        (k.trim(), v)
    });
    (name, params)
}

/// A weight (`q=`) as RFC 9110 (12.4.2) writes it: 0 to 1 with at most three decimals.
/// Anything else (`NaN`, `2`, `-1`, `0.5x`) counts as 0: not acceptable.
fn weight(v: &str) -> f32 {
    let well_formed = match v.split_once('.') {
        None => v == "0" || v == "1",
        Some((int, frac)) => {
            (int == "0" || int == "1")
                && frac.len() <= 3
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
    };
    match v.parse::<f32>() {
        Ok(q) if well_formed && q <= 1.0 => q,
        _ => 0.0,
    }
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
        let (media, params) = list_item(item);
        let (mut q, mut version) = (1.0f32, None);
        for (k, v) in params {
            if k.eq_ignore_ascii_case("q") {
                q = weight(v);
            } else if k.eq_ignore_ascii_case("version") {
                version = Some(v);
            }
        }
        let is = |m: &str| media.eq_ignore_ascii_case(m);
        if is("application/openmetrics-text") && version.is_none_or(|v| v == "1.0.0") {
            openmetrics = openmetrics.max(q);
        } else if is("text/plain") || is("text/*") || is("*/*") {
            text = text.max(q);
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

fn metrics<B>(req: &Request<B>, state: &AppState) -> Response<Body> {
    let gzip = accepts_gzip(req.headers().get(ACCEPT_ENCODING));
    let format = negotiate(req.headers().get(hyper::header::ACCEPT));
    body_built();
    let chunks = state.metrics.scrape(gzip, format);
    let gzip = chunks.is_gzip();
    scrape_headers(Response::new(ScrapeBody(chunks).boxed()), format, gzip)
}

/// The headers of a scrape in `format`, gzip-encoded or not.
fn scrape_headers(mut resp: Response<Body>, format: Format, gzip: bool) -> Response<Body> {
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
        // Not a server error: the request cannot be honoured (as Prometheus answers 403
        // when its lifecycle API is off).
        return text(
            StatusCode::FORBIDDEN,
            "reload is not available in demo mode: the demo's config is built in; run with \
             --config.file to use (and reload) your own\n",
        );
    };
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
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

fn with_type(mut resp: Response<Body>, content_type: &'static str) -> Response<Body> {
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn landing_page(query: Option<&str>, state: &AppState) -> Response<Body> {
    let (filter, error) = match Filter::parse(query) {
        Ok(f) => (f, None),
        Err(e) => (Filter::default(), Some(e)),
    };
    body_built();
    let page = landing::page(state, &filter, error.as_deref());
    with_type(text(StatusCode::OK, page), LANDING_TYPE)
}

/// The unfiltered answer is the status's shared body (sent with its length); a filtered one
/// is streamed as the client reads (see [`targets`]).
async fn targets_api(query: Option<&str>, state: &AppState) -> Response<Body> {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(e) => {
            body_built();
            return with_type(
                text(StatusCode::BAD_REQUEST, targets::error_json(&e)),
                TARGETS_TYPE,
            );
        }
    };
    let status = state.status.load_full();
    if filter == Filter::default() {
        let body = targets::shared_json(&status).await;
        return with_type(text(StatusCode::OK, body), TARGETS_TYPE);
    }
    body_built();
    with_type(
        Response::new(targets::TargetsBody::new(status, filter).boxed()),
        TARGETS_TYPE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{BuildInfo, Metrics};
    use crate::server::basic_auth::BasicAuth;
    use crate::server::web_config::WebSettings;
    use arc_swap::ArcSwap;
    use base64::Engine as _;

    fn state(
        web: WebSettings,
        reload: bool,
    ) -> (
        AppState,
        Option<tokio::sync::mpsc::Receiver<super::super::ReloadRequest>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let state = AppState {
            metrics: Arc::new(Metrics::new(&BuildInfo::current()).unwrap()),
            status: Default::default(),
            telemetry_path: "/seats".into(),
            reload: reload.then_some(tx),
            build: BuildInfo::current(),
            demo: !reload,
            web: Arc::new(ArcSwap::from_pointee(web)),
        };
        (state, reload.then_some(rx))
    }

    fn get(path: &str) -> hyper::http::request::Builder {
        Request::get(path).header(hyper::header::HOST, "exporter")
    }

    fn post(path: &str) -> hyper::http::request::Builder {
        Request::post(path).header(hyper::header::HOST, "exporter")
    }

    async fn body(resp: Response<Body>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn routes_answer_without_a_socket() {
        let (state, _) = state(WebSettings::default(), false);
        let resp = secured(get("/seats").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(body(resp).await.contains("avepoint_exporter_build_info{"));
        // The default path is not the configured one.
        let resp = secured(get("/metrics").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = secured(post("/seats").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[ALLOW], "GET, HEAD");
        // Not ready before the poller published its first status.
        let resp = secured(get("/-/ready").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Without a reload channel (demo), reload is refused as a client error.
        let resp = secured(post("/-/reload").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // HTTP/1.1 without Host.
        let resp = secured(Request::get("/seats").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn basic_auth_guards_all_but_health_and_headers_go_on_every_answer() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let mut problems = Vec::new();
        let auth = BasicAuth::new([("alice".to_owned(), hash)].into(), &mut problems).unwrap();
        let web = WebSettings {
            tls: None,
            headers: vec![(
                hyper::header::X_FRAME_OPTIONS,
                HeaderValue::from_static("deny"),
            )],
            auth: Some(Arc::new(auth)),
        };
        let (state, _) = state(web, false);
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let resp = secured(get("/seats").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic realm="));
        assert_eq!(resp.headers()[hyper::header::X_FRAME_OPTIONS], "deny");
        let wrong = get("/seats").header(AUTHORIZATION, basic("alice:wrong"));
        assert_eq!(
            secured(wrong.body(()).unwrap(), &state).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let right = get("/seats").header(AUTHORIZATION, basic("alice:right"));
        let resp = secured(right.body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[hyper::header::X_FRAME_OPTIONS], "deny");
        let resp = secured(get("/-/healthy").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::OK, "health needs no password");
    }

    #[tokio::test]
    async fn reload_answers_with_the_reloads_result() {
        let (state, rx) = state(WebSettings::default(), true);
        let mut rx = rx.unwrap();
        tokio::spawn(async move {
            let answer = rx.recv().await.unwrap();
            let _ = answer.send(Err("customers[0].id: missing".into()));
        });
        let resp = secured(post("/-/reload").body(()).unwrap(), &state).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body(resp).await.contains("customers[0].id: missing"));
    }

    #[tokio::test]
    async fn head_answers_the_headers_of_get_without_building_a_body() {
        let (state, _) = state(WebSettings::default(), false);
        let built = || BODIES_BUILT.with(|n| n.get());
        let request = |method: Method, path: &str, headers: &[(&str, &str)]| {
            let mut r = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, "exporter");
            for (name, value) in headers {
                r = r.header(*name, *value);
            }
            r.body(()).unwrap()
        };
        let cases: [(&str, &[(&str, &str)]); 6] = [
            ("/seats", &[]),
            ("/seats", &[("accept-encoding", "gzip")]),
            ("/seats", &[("accept", "application/openmetrics-text")]),
            ("/", &[]),
            ("/api/v1/targets?health=down", &[]),
            ("/api/v1/targets?health=sick", &[]),
        ];
        for (path, headers) in cases {
            let before = built();
            let head = secured(request(Method::HEAD, path, headers), &state).await;
            assert_eq!(built(), before, "HEAD {path} built a body");
            let get = secured(request(Method::GET, path, headers), &state).await;
            assert_eq!(built(), before + 1, "GET {path}");
            assert_eq!(head.status(), get.status(), "{path}");
            for name in [CONTENT_TYPE, CONTENT_ENCODING, VARY] {
                assert_eq!(
                    head.headers().get(&name),
                    get.headers().get(&name),
                    "{path} {name}"
                );
            }
            // Only the body would tell the length.
            assert!(!head.headers().contains_key(hyper::header::CONTENT_LENGTH));
            assert!(body(head).await.is_empty());
        }
        // The fixed answers still carry their length.
        let resp = secured(request(Method::HEAD, "/-/healthy", &[]), &state).await;
        assert_eq!(resp.headers()[hyper::header::CONTENT_LENGTH], "8");
    }

    #[tokio::test]
    async fn head_of_the_shared_targets_answer_tells_its_length_once_rendered() {
        let (state, _) = state(WebSettings::default(), false);
        let head = || {
            Request::head("/api/v1/targets")
                .header(hyper::header::HOST, "exporter")
                .body(())
                .unwrap()
        };
        let before = secured(head(), &state).await;
        assert!(!before.headers().contains_key(hyper::header::CONTENT_LENGTH));
        let get = secured(get("/api/v1/targets").body(()).unwrap(), &state).await;
        let exact = hyper::body::Body::size_hint(get.body()).exact();
        let sent = body(get).await;
        assert_eq!(exact, Some(sent.len() as u64), "sent with its length");
        assert_eq!(sent, r#"{"status":"success","data":{"targets":[]}}"#);
        let after = secured(head(), &state).await;
        assert_eq!(
            after.headers()[hyper::header::CONTENT_LENGTH],
            sent.len().to_string()
        );
        assert!(body(after).await.is_empty());
    }

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
        // A quoted version is the same version (RFC 9110 parameters).
        assert_eq!(
            f("application/openmetrics-text; version=\"1.0.0\"; charset=utf-8"),
            Format::OpenMetrics
        );
        assert_eq!(f("application/openmetrics-text;Q=NaN"), Format::Text);
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
        // Keys in any case, and weights that are not weights, refuse.
        assert!(!h("gzip;Q=0"));
        assert!(!h("gzip;q=NaN"));
        assert!(!h("gzip;q=-1"));
        assert!(!h("gzip;q=0.0000"));
        assert!(h("gzip;q=0.001"));
        assert!(h("gzip; q=1.000"));
    }
}
