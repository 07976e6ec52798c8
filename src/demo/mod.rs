//! A simulated Elements API for `--demo`: a real HTTP server on a loopback port with a token
//! endpoint, the paged customer list and the paged tenants endpoint, so the demo exercises the
//! same client code as production (discovery included). A handful of named customers span all four tenant types; some have enough
//! tenants to need several pages; seat counts drift on every poll; one tenant steadily runs
//! out of seats (and later 50 more seats are bought), another is already out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::{Config, ProcessEnvironment};
use crate::domain::TenantType;
#[cfg(any(test, feature = "bench"))]
pub use synthetic::Scale;

#[cfg(any(test, feature = "bench"))]
mod synthetic;

/// Without the `bench` feature there is no synthetic dataset: this type has no values, so
/// every `Some(scale)` branch is statically dead and compiled out.
#[cfg(not(any(test, feature = "bench")))]
#[derive(Debug, Clone, Copy)]
enum Scale {}

#[cfg(not(any(test, feature = "bench")))]
impl Scale {
    fn limits(&self) -> (usize, u32) {
        match *self {}
    }
    fn latency(&self) -> std::time::Duration {
        match *self {}
    }
    fn customers_yaml(&self) -> String {
        match *self {}
    }
    fn page(&self, _: &str, _: TenantType, _: u64, _: u64, _: u64) -> String {
        match *self {}
    }
}

/// Poll interval of the demo configuration.
pub const DEMO_INTERVAL: &str = "5s";
/// Page size of the demo configuration (small, so that paging is visible).
pub const DEMO_PAGE_SIZE: u8 = 50;
const DEMO_CLIENT_ID: &str = "demo-client";
const DEMO_SECRET: &str = "demo-secret";
const DEMO_TOKEN: &str = "demo-access-token";

/// One simulated tenant: its seat curve is a function of the poll number.
#[derive(Debug, Clone)]
struct DemoTenant {
    id: String,
    name: String,
    /// Seats bought.
    total: u64,
    /// Assigned seats at poll 0.
    assigned: u64,
    kind: Curve,
}

#[derive(Debug, Clone, Copy)]
enum Curve {
    /// Wobbles by a few seats around the start value.
    Drift,
    /// Assigns one more seat each poll until full, stays full for a while, then 50 more seats
    /// are bought and it starts again.
    Exhausting,
}

impl DemoTenant {
    /// (available, assigned) at poll `n`.
    fn seats(&self, n: u64) -> (u64, u64) {
        let assigned = match self.kind {
            Curve::Drift => {
                let h = fnv(&self.id);
                let amplitude = (self.total / 20).clamp(1, 12) as i64;
                let phase = (h % 17) as i64;
                // A triangle wave: deterministic, integer, visibly moving.
                let period = 2 * amplitude;
                let pos = (n as i64 + phase) % period;
                let offset = if pos < amplitude { pos } else { period - pos } - amplitude / 2;
                (self.assigned as i64 + offset).clamp(0, self.total as i64) as u64
            }
            Curve::Exhausting => {
                let free0 = self.total.saturating_sub(self.assigned);
                let cycle = free0 + 20;
                let round = n / cycle;
                let step = n % cycle;
                let total = self.total + 50 * round;
                let assigned = (self.assigned + 50 * round + step).min(total);
                return (total - assigned, assigned);
            }
        };
        (self.total - assigned, assigned)
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A simulated customer.
#[derive(Debug, Clone)]
struct DemoCustomer {
    id: &'static str,
    name: &'static str,
    country: &'static str,
    tenants: HashMap<TenantType, Vec<DemoTenant>>,
}

fn customers() -> Vec<DemoCustomer> {
    let t = |id: &str, name: &str, total: u64, assigned: u64| DemoTenant {
        id: id.into(),
        name: name.into(),
        total,
        assigned,
        kind: Curve::Drift,
    };
    let many = |prefix: &str, label: &str, n: usize| -> Vec<DemoTenant> {
        (0..n)
            .map(|i| {
                let total = 25 + (fnv(&format!("{prefix}{i}")) % 400);
                t(
                    &format!("{prefix}-{i:04}"),
                    &format!("{label} {i:03}"),
                    total,
                    total * 6 / 10,
                )
            })
            .collect()
    };
    vec![
        DemoCustomer {
            id: "f1620000-b9d4-4a0e-a165-97db0000fc15",
            name: "Contoso",
            country: "US",
            tenants: HashMap::from([
                (
                    TenantType::Microsoft365,
                    vec![
                        t(
                            "9a4f6c1e-0001-4e5b-9d3a-65215f920001",
                            "contoso.onmicrosoft.com",
                            500,
                            310,
                        ),
                        DemoTenant {
                            kind: Curve::Exhausting,
                            ..t(
                                "9a4f6c1e-0002-4e5b-9d3a-65215f920002",
                                "Contoso Sales",
                                120,
                                108,
                            )
                        },
                        t(
                            "9a4f6c1e-0003-4e5b-9d3a-65215f920003",
                            "Contoso \"EU\" Ops",
                            80,
                            41,
                        ),
                    ],
                ),
                (
                    TenantType::Salesforce,
                    vec![t("00D5g000004XyZ1EAK", "Contoso CRM", 60, 52)],
                ),
                (
                    TenantType::Google,
                    vec![t("C03az79cb", "contoso.com", 150, 90)],
                ),
                (
                    TenantType::Dynamics365,
                    vec![t("d365-contoso-prod", "Contoso Dynamics", 40, 22)],
                ),
            ]),
        },
        DemoCustomer {
            id: "2b7e0000-4c1d-4f7a-9e55-3c0a0000aa01",
            name: "Fabrikam",
            country: "GB",
            tenants: HashMap::from([
                (
                    TenantType::Microsoft365,
                    many("fab365", "Fabrikam branch", 120),
                ),
                (
                    TenantType::Dynamics365,
                    vec![t("d365-fabrikam", "Fabrikam Finance", 200, 150)],
                ),
            ]),
        },
        DemoCustomer {
            id: "7c310000-8f2e-4b6d-a0c4-11d90000bb02",
            name: "Northwind Traders",
            country: "AU",
            tenants: HashMap::from([
                (
                    TenantType::Microsoft365,
                    vec![t(
                        "9a4f6c1e-0101-4e5b-9d3a-65215f920101",
                        "northwind.onmicrosoft.com",
                        75,
                        60,
                    )],
                ),
                (TenantType::Salesforce, many("nwsf", "Northwind SF org", 55)),
            ]),
        },
        DemoCustomer {
            id: "5d880000-1a9b-4c3e-8f21-77e20000cc03",
            name: "Tailspin Toys",
            country: "CH",
            tenants: HashMap::from([
                (
                    TenantType::Google,
                    vec![t("C01tailspin", "tailspintoys.com", 30, 30)],
                ),
                (
                    TenantType::Microsoft365,
                    vec![t(
                        "9a4f6c1e-0201-4e5b-9d3a-65215f920201",
                        "Tailspin Toys Zürich",
                        45,
                        20,
                    )],
                ),
            ]),
        },
        // In the customer list, but left out by the demo's discovery filter (`^Test`).
        DemoCustomer {
            id: "0e110000-0000-4000-8000-00000000dd04",
            name: "Test Lab (sandbox)",
            country: "US",
            tenants: HashMap::from([(
                TenantType::Microsoft365,
                vec![t("sandbox-0001", "Sandbox", 5, 1)],
            )]),
        },
    ]
}

/// A running simulated API.
pub struct DemoApi {
    /// Address it listens on (loopback).
    pub addr: SocketAddr,
    customers: Vec<DemoCustomer>,
    scale: Option<Scale>,
}

struct DemoState {
    customers: Vec<DemoCustomer>,
    scale: Option<Scale>,
    /// Polls seen per (customer, type): advanced by each first-page request.
    polls: Mutex<HashMap<(String, u8), u64>>,
}

impl DemoApi {
    /// Starts the simulated API with the demo's named customers on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<DemoApi> {
        DemoApi::launch(customers(), None).await
    }

    /// Starts the simulated API with a synthetic dataset of the given size.
    #[cfg(any(test, feature = "bench"))]
    pub async fn start_scaled(scale: Scale) -> std::io::Result<DemoApi> {
        DemoApi::launch(Vec::new(), Some(scale)).await
    }

    async fn launch(
        customers: Vec<DemoCustomer>,
        scale: Option<Scale>,
    ) -> std::io::Result<DemoApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(DemoState {
            customers,
            scale,
            polls: Mutex::new(HashMap::new()),
        });
        let listed = state.customers.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(req, &state).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(DemoApi {
            addr,
            customers: listed,
            scale,
        })
    }

    /// A configuration that discovers the simulated customers (all but the `Test` one) and
    /// polls all four tenant types.
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        Config::parse(&self.config_yaml(), &WithoutVariables)
    }

    /// The text of [`DemoApi::config`] (for the scaled dataset: one hour interval, page size
    /// 100, Microsoft 365 only).
    pub fn config_yaml(&self) -> String {
        let (page_size, concurrency, rate, interval) = match &self.scale {
            Some(s) => {
                let (concurrency, rate) = s.limits();
                (100, concurrency, rate, "1h")
            }
            None => (DEMO_PAGE_SIZE, 4, 0, DEMO_INTERVAL),
        };
        let mut yaml = format!(
            "elements:\n  base_url: http://{addr}\n  token_url: http://{addr}/connect/token\n  client_id: {DEMO_CLIENT_ID}\n  client_secret: {DEMO_SECRET}\n  page_size: {page_size}\n  max_concurrency: {concurrency}\n  max_requests_per_second: {rate}\n  retries: 1\npoll:\n  interval: {interval}\n  stale_after: 3h\n",
            addr = self.addr
        );
        if !self.customers.is_empty() {
            yaml.push_str("discovery:\n  interval: 1m\n  exclude: ['^Test']\n");
        }
        if let Some(s) = &self.scale {
            yaml.push_str(&s.customers_yaml());
        }
        yaml
    }
}

/// The process's files but none of its environment variables, so that an
/// `ELEMENTS_CLIENT_SECRET` set for the real exporter cannot leak into the demo's requests.
struct WithoutVariables;
impl crate::config::Environment for WithoutVariables {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
    fn read_file(&self, path: &std::path::Path) -> std::io::Result<String> {
        crate::config::Environment::read_file(&ProcessEnvironment, path)
    }
}

fn json(
    status: StatusCode,
    body: String,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(
    req: Request<Incoming>,
    state: &DemoState,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {DEMO_TOKEN}"));
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method != Method::POST {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            "{\"error\":\"use POST\"}".into(),
        );
    }
    if path == "/connect/token" {
        let form = String::from_utf8_lossy(&body);
        let ok = form.contains("grant_type=client_credentials")
            && form.contains(&format!("client_id={DEMO_CLIENT_ID}"))
            && form.contains(&format!("client_secret={DEMO_SECRET}"));
        return if ok {
            json(
                StatusCode::OK,
                format!("{{\"access_token\":\"{DEMO_TOKEN}\",\"expires_in\":3600,\"token_type\":\"Bearer\",\"scope\":\"elements.license.read.all\"}}"),
            )
        } else {
            json(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"invalid_client\"}".into(),
            )
        };
    }
    if !authorized {
        return json(
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"invalid_token\"}".into(),
        );
    }
    let mut page_index = 1u64;
    let mut page_size = 50u64;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("pageIndex", v)) => page_index = v.parse().unwrap_or(1).max(1),
            Some(("pageSize", v)) => page_size = v.parse().unwrap_or(50).clamp(1, 100),
            _ => {}
        }
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts == ["partner", "external", "v3", "general", "customers", "batch"] {
        return json(
            StatusCode::OK,
            customer_page(&state.customers, page_index, page_size),
        );
    }
    let ["partner", "external", "v3", "general", "customers", customer, "3rd-party-products", "type", kind, "tenants", "batch"] =
        parts.as_slice()
    else {
        return json(StatusCode::NOT_FOUND, "{\"error\":\"not found\"}".into());
    };
    let Some(tenant_type) = TenantType::parse(kind) else {
        return json(StatusCode::BAD_REQUEST, "{\"error\":\"bad type\"}".into());
    };
    if let Some(scale) = &state.scale {
        let poll = advance(state, customer, tenant_type, page_index);
        tokio::time::sleep(scale.latency()).await;
        return json(
            StatusCode::OK,
            scale.page(customer, tenant_type, poll, page_index, page_size),
        );
    }
    let Some(c) = state.customers.iter().find(|c| c.id == *customer) else {
        return json(
            StatusCode::NOT_FOUND,
            "{\"error\":\"customer not found\"}".into(),
        );
    };
    let poll = advance(state, c.id, tenant_type, page_index);
    let empty = Vec::new();
    let tenants = c.tenants.get(&tenant_type).unwrap_or(&empty);
    let start = ((page_index - 1) * page_size) as usize;
    let records: Vec<serde_json::Value> = tenants
        .iter()
        .skip(start)
        .take(page_size as usize)
        .map(|t| {
            let (available, assigned) = t.seats(poll);
            serde_json::json!({
                "type": tenant_type.api_number(),
                "tenantId": t.id,
                "tenantName": t.name,
                "availableUserSeat": available,
                "assignedUserSeat": assigned,
            })
        })
        .collect();
    let body = serde_json::json!({
        "data": records,
        "metadata": {"pageIndex": page_index, "pageSize": page_size, "totalCount": tenants.len()},
    });
    json(StatusCode::OK, body.to_string())
}

/// One page of the customer list, shaped as the API documents it (`jobStatus` as a number for
/// some customers and a string for others, as the docs show both).
fn customer_page(customers: &[DemoCustomer], page_index: u64, page_size: u64) -> String {
    let start = ((page_index - 1) * page_size) as usize;
    let records: Vec<serde_json::Value> = customers
        .iter()
        .enumerate()
        .skip(start)
        .take(page_size as usize)
        .map(|(i, c)| {
            let tenants: Vec<serde_json::Value> = c
                .tenants
                .values()
                .flatten()
                .map(|t| serde_json::json!({"id": t.id, "name": t.name}))
                .collect();
            serde_json::json!({
                "id": c.id,
                "organization": c.name,
                "ownerEmail": format!("admin{i}@example.com"),
                "jobStatus": if i % 2 == 0 { serde_json::json!(2) } else { serde_json::json!("Completed") },
                "countryOrRegion": c.country,
                "managementMode": if i % 2 == 0 { "Managed" } else { "Delegated" },
                "tenants": tenants,
            })
        })
        .collect();
    serde_json::json!({
        "data": records,
        "metadata": {"pageIndex": page_index, "pageSize": page_size, "totalCount": customers.len()},
    })
    .to_string()
}

/// The poll number of a target: advanced by each first-page request.
fn advance(state: &DemoState, customer: &str, tenant_type: TenantType, page_index: u64) -> u64 {
    let mut polls = state.polls.lock().unwrap_or_else(|p| p.into_inner());
    let n = polls
        .entry((customer.to_owned(), tenant_type.api_number()))
        .or_insert(0);
    if page_index == 1 {
        *n += 1;
    }
    *n - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausting_tenant_runs_out_then_buys_more() {
        let t = DemoTenant {
            id: "x".into(),
            name: "x".into(),
            total: 120,
            assigned: 108,
            kind: Curve::Exhausting,
        };
        assert_eq!(t.seats(0), (12, 108));
        assert_eq!(t.seats(5), (7, 113));
        assert_eq!(t.seats(12), (0, 120));
        assert_eq!(t.seats(31), (0, 120));
        assert_eq!(t.seats(32), (12, 158));
    }

    #[test]
    fn drifting_tenants_move_and_stay_in_bounds() {
        for c in customers() {
            for tenants in c.tenants.values() {
                for t in tenants {
                    let values: Vec<(u64, u64)> = (0..40).map(|n| t.seats(n)).collect();
                    for (n, &(available, assigned)) in values.iter().enumerate() {
                        // Seats only change hands; the exhausting tenant buys 50 more per round.
                        let bought = match t.kind {
                            Curve::Drift => t.total,
                            Curve::Exhausting => {
                                let round = n as u64 / (t.total - t.assigned + 20);
                                t.total + 50 * round
                            }
                        };
                        assert_eq!(available + assigned, bought, "{} at poll {n}", t.id);
                    }
                    if t.total > 30 {
                        assert!(
                            values.windows(2).any(|w| w[0] != w[1]),
                            "{} never moves",
                            t.id
                        );
                    }
                }
            }
        }
    }
}
