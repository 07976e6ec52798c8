//! Test fixtures: a hand-written fake Elements API on 127.0.0.1:0 that records every request,
//! a handle on the exporter started against it (the real binary, or the daemon in this
//! process), and readers for the exposition.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use avepoint_elements_exporter::app::{self, Options};
use avepoint_elements_exporter::{LineLayer, LogFormat};

/// How long any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// When the request arrived.
    pub at: Instant,
}

/// The fake's answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
    /// Sent chunked (no Content-Length), `body` repeated this many times; `None`: sent whole.
    pub repeat: Option<usize>,
}

impl Reply {
    pub fn json(body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: body.into(),
            delay: Duration::ZERO,
            headers: vec![],
            repeat: None,
        }
    }
    pub fn status(status: u16, content_type: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            ..Reply::json("")
        }
    }
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    // Faults the real API (or a gateway in front of it) produces.

    /// A request answered only after a minute: longer than any timeout the tests configure.
    pub fn hang() -> Reply {
        Reply::json("[]").delayed(Duration::from_secs(60))
    }
    /// 429 with `Retry-After: seconds`.
    pub fn too_many(retry_after: &str) -> Reply {
        Reply::status(429, "application/json", r#"{"error":"too many requests"}"#)
            .with_header("retry-after", retry_after)
    }
    /// A gateway's HTML error page with status 200.
    pub fn html() -> Reply {
        Reply::status(
            200,
            "text/html; charset=utf-8",
            "<html><body><h1>Gateway says hello</h1></body></html>",
        )
    }
    /// A complete HTTP response whose JSON stops in the middle.
    pub fn truncated_json() -> Reply {
        Reply::json(r#"{"data":[{"tenantId":"t1","tenantName":"One","availableUserSeat":3,"#)
    }
    /// A valid-looking page of `bytes` bytes (larger than the 16 MiB limit when asked).
    pub fn huge(bytes: usize) -> Reply {
        let one = r#"{"tenantId":"x","tenantName":"padding padding padding","availableUserSeat":1,"assignedUserSeat":1},"#;
        let mut body = String::with_capacity(bytes + one.len() + 2);
        body.push('[');
        while body.len() < bytes {
            body.push_str(one);
        }
        body.push_str(r#"{"tenantId":"y","availableUserSeat":1,"assignedUserSeat":1}]"#);
        Reply::json(body)
    }
    /// A chunked reply without Content-Length that never ends: `[` and then record after
    /// record. Only a client that counts bytes while reading stops it.
    pub fn endless_body() -> Reply {
        Reply {
            repeat: Some(usize::MAX),
            ..Reply::json(
                r#"{"tenantId":"x","availableUserSeat":1,"assignedUserSeat":1},"#.repeat(512),
            )
        }
    }
}

type Handler = Box<dyn FnMut(&Recorded) -> Reply + Send>;

/// A fake Elements API (token endpoint at `/token`).
pub struct FakeApi {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl FakeApi {
    /// Starts the fake; `handler` answers every request (see [`FakeApi::with_tokens`]).
    pub async fn start(handler: impl FnMut(&Recorded) -> Reply + Send + 'static) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Box::new(handler)));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (r, h, inf, max) = (
            requests.clone(),
            handler.clone(),
            in_flight.clone(),
            max_in_flight.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (r, h, inf, max) = (r.clone(), h.clone(), inf.clone(), max.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (r, h, inf, max) = (r.clone(), h.clone(), inf.clone(), max.clone());
                        async move {
                            let now = inf.fetch_add(1, Ordering::SeqCst) + 1;
                            max.fetch_max(now, Ordering::SeqCst);
                            let header = |name| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            let recorded = Recorded {
                                method: req.method().to_string(),
                                path: req.uri().path().to_owned(),
                                query: req.uri().query().unwrap_or("").to_owned(),
                                authorization: header("authorization"),
                                content_type: header("content-type"),
                                body: String::new(),
                                at: Instant::now(),
                            };
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let recorded = Recorded {
                                body: String::from_utf8_lossy(&body).into_owned(),
                                ..recorded
                            };
                            r.lock().unwrap().push(recorded.clone());
                            let reply = (h.lock().unwrap())(&recorded);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            inf.fetch_sub(1, Ordering::SeqCst);
                            let mut resp = Response::builder()
                                .status(reply.status)
                                .header("content-type", reply.content_type);
                            for (k, v) in &reply.headers {
                                resp = resp.header(*k, v);
                            }
                            let body = Bytes::from(reply.body);
                            let body = match reply.repeat {
                                None => Full::new(body).boxed(),
                                Some(n) => {
                                    let start = Bytes::from_static(b"[");
                                    let chunks = std::iter::once(start)
                                        .chain(std::iter::repeat_n(body, n))
                                        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
                                    StreamBody::new(futures_util::stream::iter(chunks)).boxed()
                                }
                            };
                            Ok::<_, Infallible>(resp.body(body).unwrap())
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeApi {
            addr,
            requests,
            max_in_flight,
        }
    }

    /// Starts the fake with the standard token endpoint (`/token` answers [`token_reply`]`(1)`)
    /// and `handler` for every other request.
    pub async fn with_tokens(
        mut handler: impl FnMut(&Recorded) -> Reply + Send + 'static,
    ) -> FakeApi {
        FakeApi::start(move |r| {
            if r.path == "/token" {
                return token_reply(1);
            }
            handler(r)
        })
        .await
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Every request but the token requests: tenants pages and customer lists.
    pub fn tenant_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/token")
            .collect()
    }

    /// Requests to the tenants endpoint of one target (customer, type number), in order.
    pub fn requests_to(&self, customer: &str, kind: u8) -> Vec<Recorded> {
        let path = tenants_path(customer, kind);
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Requests to the token endpoint.
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/token")
            .collect()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The standard token reply: `tok-N` valid for an hour.
pub fn token_reply(n: usize) -> Reply {
    Reply::json(format!(
        r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":3600}}"#
    ))
}

/// The `poll` and `customers` sections for one target: customer `c`, Microsoft 365.
pub fn one_target(interval: &str) -> String {
    targets(interval, &["c"])
}

/// The `poll` and `customers` sections for the Microsoft 365 targets of `customers`.
pub fn targets(interval: &str, customers: &[&str]) -> String {
    let mut yaml = format!("poll:\n  interval: {interval}\ncustomers:\n");
    for id in customers {
        yaml.push_str(&format!("  - id: {id}\n    tenant_types: [0]\n"));
    }
    yaml
}

/// Customers `{prefix}0` .. `{prefix}{n-1}` as YAML list items, each with `types`.
pub fn numbered(prefix: &str, n: usize, types: &str) -> String {
    (0..n)
        .map(|i| format!("  - id: {prefix}{i}\n    tenant_types: [{types}]\n"))
        .collect()
}

/// The tenants path of a customer and type number.
pub fn tenants_path(customer: &str, kind: u8) -> String {
    format!("/partner/external/v3/general/customers/{customer}/3rd-party-products/type/{kind}/tenants/batch")
}

/// A tenant record as JSON, without `type` (it belongs to the type asked for).
pub fn record(id: &str, name: &str, available: i64, assigned: i64) -> serde_json::Value {
    serde_json::json!({"tenantId": id, "tenantName": name,
        "availableUserSeat": available, "assignedUserSeat": assigned, "someNewField": [1, 2]})
}

/// A tenant record of tenant type `kind` (the API's number), as the API documents it.
pub fn typed_record(
    kind: u8,
    id: &str,
    name: &str,
    available: i64,
    assigned: i64,
) -> serde_json::Value {
    let mut r = record(id, name, available, assigned);
    r["type"] = kind.into();
    r
}

/// `{"data": records, "metadata": {...}}`.
pub fn envelope(records: &[serde_json::Value], page: u32, size: u32, total: usize) -> String {
    serde_json::json!({"data": records,
        "metadata": {"pageIndex": page, "pageSize": size, "totalCount": total}})
    .to_string()
}

/// A handler that answers the seat endpoint as the API's current revision documents it:
/// `tenants(customer, type number)` are the tenants (records without `type` get the path's),
/// served in the object envelope, paged by `pageSize`, filtered by a `tenantIds` body, and a
/// list with nothing in it is 204 No Content. Older forms (the bare array,
/// `licenseAssignedStatus`) are what individual tests answer with.
pub fn current_revision(
    tenants: impl Fn(&str, u8) -> Vec<serde_json::Value> + Send + 'static,
) -> impl FnMut(&Recorded) -> Reply + Send + 'static {
    move |r| {
        let parts: Vec<&str> = r.path.split('/').collect();
        let (Some(customer), Some(kind)) =
            (parts.get(6), parts.get(9).and_then(|k| k.parse().ok()))
        else {
            return Reply::status(404, "application/json", r#"{"message":"not found"}"#);
        };
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        let wanted = body["tenantIds"].as_array().cloned();
        let all: Vec<serde_json::Value> = tenants(customer, kind)
            .into_iter()
            .map(|mut t| {
                if t.get("type").is_none() {
                    t["type"] = kind.into();
                }
                t
            })
            .filter(|t| wanted.as_ref().is_none_or(|w| w.contains(&t["tenantId"])))
            .collect();
        if all.is_empty() {
            return Reply::status(204, "application/json", "");
        }
        let size = page_size(r);
        let page = page_index(r).max(1);
        let records: Vec<_> = all
            .iter()
            .skip((page as usize - 1) * size)
            .take(size)
            .cloned()
            .collect();
        Reply::json(envelope(&records, page, size as u32, all.len()))
    }
}

/// The `pageSize` of a recorded request (the API's default, 50, when it has none).
pub fn page_size(r: &Recorded) -> usize {
    r.query
        .split('&')
        .find_map(|p| p.strip_prefix("pageSize="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// The `pageIndex` of a recorded request.
pub fn page_index(r: &Recorded) -> u32 {
    r.query
        .split('&')
        .find_map(|p| p.strip_prefix("pageIndex="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Limits of [`write_config`]: no retries, no rate limit, 5 s timeout.
pub const TEST_LIMITS: &str = "  timeout: 5s\n  retries: 0\n  max_requests_per_second: 0\n";

/// Writes `config.yaml` for the fake API into `dir`: its endpoints, a client, [`TEST_LIMITS`]
/// and `rest` (the `poll` and `customers` sections).
pub fn write_config(dir: &tempfile::TempDir, api: &FakeApi, rest: &str) -> PathBuf {
    write_config_with(dir, &api.base_url(), &api.base_url(), TEST_LIMITS, rest)
}

/// A config with the API at `base`, the token endpoint at `{token_base}/token`, `limits`
/// (further `elements` keys) and `rest` (the `poll` and `customers` sections).
pub fn write_config_with(
    dir: &tempfile::TempDir,
    base: &str,
    token_base: &str,
    limits: &str,
    rest: &str,
) -> PathBuf {
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "elements:\n  base_url: {base}\n  token_url: {token_base}/token\n  client_id: my-client\n  client_secret: my-very-secret-value\n{limits}{rest}"
        ),
    )
    .unwrap();
    path
}

/// Writes a config for `api` (see [`write_config`]) and starts the exporter on it; keep the
/// returned directory alive as long as the exporter.
pub fn start_on(api: &FakeApi, rest: &str) -> (tempfile::TempDir, Exporter) {
    start_with_limits(api, TEST_LIMITS, rest)
}

/// Like [`start_on`], with `limits` (further `elements` keys) instead of [`TEST_LIMITS`].
pub fn start_with_limits(api: &FakeApi, limits: &str, rest: &str) -> (tempfile::TempDir, Exporter) {
    let (dir, config) = config_with_limits(api, limits, rest);
    let exporter = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    (dir, exporter)
}

/// Like [`start_on`], with the daemon in this process (see [`Exporter::in_process`]).
pub async fn in_process_on(api: &FakeApi, rest: &str) -> (tempfile::TempDir, Exporter) {
    in_process_with_limits(api, TEST_LIMITS, rest).await
}

/// Like [`start_with_limits`], with the daemon in this process.
pub async fn in_process_with_limits(
    api: &FakeApi,
    limits: &str,
    rest: &str,
) -> (tempfile::TempDir, Exporter) {
    let (dir, config) = config_with_limits(api, limits, rest);
    let exporter = Exporter::in_process(&config).await;
    (dir, exporter)
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_avepoint-elements-exporter")
}

/// The exporter: the real binary, or the daemon in this process on the test's runtime
/// (`app::run_on`), where a test with `start_paused` runs its timing in virtual time.
pub struct Exporter {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    process: Process,
    http: reqwest::Client,
}

enum Process {
    Binary(Child),
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        ended: tokio::task::JoinHandle<Result<(), String>>,
        _log: tracing::subscriber::DefaultGuard,
    },
}

/// A client for scraping the exporter (built once: loading the root store is not free).
fn scraper() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

impl Exporter {
    /// Starts the binary with `args` plus a listen address on a free port, and waits until it
    /// says where it listens.
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::start_with_env(args, &[])
    }

    /// Like [`Exporter::start`], with extra environment variables for the child.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Exporter {
        Exporter::start_under(&[], args, env)
    }

    /// Like [`Exporter::start_with_env`], with the binary started by `launcher` (a program
    /// and its arguments that runs the command after them in its own process, such as
    /// `prlimit --nofile=256`); an empty launcher starts the binary itself.
    pub fn start_under(launcher: &[&str], args: &[&str], env: &[(&str, &str)]) -> Exporter {
        let mut command = match launcher.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.level",
                "debug",
            ])
            .env_remove("ELEMENTS_CLIENT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("msg=listening address=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                // --log.format json
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["msg"] == "listening" {
                        if let Some(a) = v["address"].as_str() {
                            let _ = tx.send(a.to_owned());
                        }
                    }
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(DEADLINE) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("exporter did not start: {:?}", log.lock().unwrap());
            }
        };
        Exporter {
            addr,
            log,
            process: Process::Binary(child),
            http: scraper(),
        }
    }

    /// The daemon in this process with `config`, logging at debug into [`Exporter::log`].
    /// Runs on the calling thread's runtime: use a current-thread test (`#[tokio::test]`),
    /// with `start_paused = true` when the test is about timing.
    pub async fn in_process(config: &Path) -> Exporter {
        Exporter::in_process_with(config, |_| {}).await
    }

    /// Like [`Exporter::in_process`], with `adjust` changing the options first.
    pub async fn in_process_with(config: &Path, adjust: impl FnOnce(&mut Options)) -> Exporter {
        use tracing_subscriber::prelude::*;
        // The daemon reads the process environment; the binary tests remove this variable
        // from the child's, which an in-process test cannot do for itself.
        assert!(
            std::env::var_os("ELEMENTS_CLIENT_SECRET").is_none(),
            "unset ELEMENTS_CLIENT_SECRET to run the tests: it overrides every test's secret"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with(LineLayer::with_sink(LogFormat::Logfmt, move |line| {
                sink.lock().unwrap().push(line.to_owned())
            }));
        let guard = tracing::subscriber::set_default(subscriber);
        let mut options = Options::new(config.to_owned(), vec![addr.to_string()]);
        adjust(&mut options);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let ended = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            app::run_on(options, vec![listener], shutdown)
                .await
                .map_err(|e| e.to_string())
        });
        Exporter {
            addr,
            log,
            process: Process::InProcess {
                stop: Some(stop),
                ended,
                _log: guard,
            },
            http: scraper(),
        }
    }

    /// The binary's process id.
    pub fn pid(&self) -> u32 {
        match &self.process {
            Process::Binary(child) => child.id(),
            Process::InProcess { .. } => panic!("an in-process exporter has no process of its own"),
        }
    }

    /// Stops an in-process exporter as SIGTERM would and returns how `app::run` ended.
    pub async fn stop(mut self) -> Result<(), String> {
        let Process::InProcess { stop, ended, .. } = &mut self.process else {
            panic!("stop() is for in-process exporters; signal the binary");
        };
        if let Some(stop) = stop.take() {
            let _ = stop.send(());
        }
        ended.await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET a path: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// POST a path with an empty body: (status, body).
    pub async fn post(&self, path: &str) -> (u16, String) {
        let resp = self.http.post(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// The exposition, once `ready` says it has what the test waits for.
    pub async fn metrics_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Ok(resp) = self.http.get(self.url("/metrics")).send().await {
                let text = resp.text().await.unwrap_or_default();
                if ready(&text) {
                    return text;
                }
                if start.elapsed() > DEADLINE {
                    panic!(
                        "timed out waiting for {what}; last exposition:\n{text}\nlog:\n{}",
                        self.log_text()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exposition once every target has been polled once (`/-/ready`), whatever the
    /// outcome. The snapshot is published before readiness, so it holds every result.
    pub async fn first_cycle(&self) -> String {
        let start = Instant::now();
        loop {
            if let Ok(resp) = self.http.get(self.url("/-/ready")).send().await {
                if resp.status().as_u16() == 200 {
                    return self.get("/metrics").await.1;
                }
            }
            if start.elapsed() > DEADLINE {
                panic!("not ready in time; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exposition once at least `n` target polls have been published.
    pub async fn polls(&self, n: u64) -> String {
        self.metrics_when(&format!("{n} polls"), |t| {
            counter(t, "avepoint_exporter_poll_duration_seconds_count")
                .is_some_and(|c| c >= n as f64)
        })
        .await
    }

    /// The exposition once a failed poll of customer `c`'s target with `cause` is published
    /// (its error counted and its `target_up` 0).
    pub async fn failure(&self, customer: &str, cause: &str) -> String {
        self.metrics_when(
            &format!("a {cause} failure of {customer}, published"),
            |t| errors(t, customer, cause).is_some() && up(t, customer) == Some(0.0),
        )
        .await
    }

    /// GET a path with extra request headers; the response as it came (not decompressed).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// The exposition once every target has been polled at least once with success.
    pub async fn first_poll(&self) -> String {
        self.metrics_when("the first poll", |t| {
            t.contains("avepoint_exporter_target_tenants{")
        })
        .await
    }

    /// Waits until the log has a line containing `needle`, and returns it.
    pub async fn log_line(&self, needle: &str) -> String {
        self.log_line_with(&[needle]).await
    }

    /// Waits until the log has a line containing every one of `needles`, and returns it.
    pub async fn log_line_with(&self, needles: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned();
            if let Some(l) = found {
                return l;
            }
            if start.elapsed() > DEADLINE {
                panic!("no log line with {needles:?}:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends a signal to the binary and waits for its exit status, failing after `within`.
    pub fn signal_and_wait(&mut self, signal: &str, within: Duration) -> std::process::ExitStatus {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        let Process::Binary(child) = &mut self.process else {
            unreachable!("pid() is only for the binary");
        };
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < within,
                "no exit within {within:?} of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Binary(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::InProcess { stop, ended, .. } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                ended.abort();
            }
        }
    }
}

/// Sends `request`: (status, body).
pub async fn answer(request: reqwest::RequestBuilder) -> (u16, String) {
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The value of the first sample of `metric` whose line contains all of `labels`.
pub fn value(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    series(text, metric)
        .iter()
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Failed polls of a customer's target by cause.
pub fn errors(text: &str, customer: &str, cause: &str) -> Option<f64> {
    value(
        text,
        "avepoint_exporter_target_errors_total",
        &[
            &format!("cause=\"{cause}\""),
            &format!("customer_id=\"{customer}\""),
        ],
    )
}

/// `target_up` of a customer's target.
pub fn up(text: &str, customer: &str) -> Option<f64> {
    value(
        text,
        "avepoint_exporter_target_up",
        &[&format!("customer_id=\"{customer}\"")],
    )
}

/// The value of an unlabelled sample, if present.
pub fn counter(text: &str, metric: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(metric)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Lines of the exposition that belong to `metric` (exact name), sorted.
pub fn series(text: &str, metric: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub fn run_binary(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("ELEMENTS_CLIENT_SECRET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config file for `api` with `limits` (further `elements` keys) and `rest`, in a fresh
/// temp dir (keep it alive as long as the config is used).
pub fn config_with_limits(api: &FakeApi, limits: &str, rest: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(&dir, &api.base_url(), &api.base_url(), limits, rest);
    (dir, config)
}

/// Writes `yaml` as a config file in `dir` and runs `--check-config` on it: (exit code,
/// stdout, stderr).
pub fn check_config_of(dir: &Path, yaml: &str) -> (i32, String, String) {
    let path = dir.join("checked.yaml");
    std::fs::write(&path, yaml).unwrap();
    check_config(&path, dir)
}

/// Runs `--check-config` on the config file `path`, in `dir`: (exit code, stdout, stderr).
pub fn check_config(path: &Path, dir: &Path) -> (i32, String, String) {
    run_binary(
        &["--check-config", "--config.file", path.to_str().unwrap()],
        dir,
    )
}

/// Runs the binary with `args`, expects exit status 1 (a start-up or usage error), and
/// returns what it printed to stderr.
pub fn fails_with_1(args: &[&str], dir: &Path) -> String {
    let (code, out, err) = run_binary(args, dir);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    err
}

/// A fresh 2048-bit RSA key and a self-signed certificate for it: (certificate PEM, PKCS#8 key
/// PEM, PKCS#1 key PEM).
pub fn rsa_identity(name: &str) -> (String, String, String) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
    let pair = rcgen::KeyPair::from_pem(&pkcs8).unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&pair)
        .unwrap()
        .pem();
    (cert, pkcs8, pkcs1)
}

/// The fields of a form-encoded body.
pub fn form(body: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The peak resident memory of a process (`VmHWM`), in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}
