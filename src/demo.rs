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

/// A synthetic dataset for benchmarks: `customers` customers (`bench-00000`, ...) with
/// `tenant_types` tenant types each, answered after `latency`. Every `big_every`-th customer
/// (0: every one) has `tenants_per_customer` tenants in each of its first `big_types` types;
/// the other targets, like most of an MSP's, 1 to 5 tenants (1 to 3 when `big_types` < 4).
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Number of customers.
    pub customers: usize,
    /// Tenants of each type of a big customer.
    pub tenants_per_customer: usize,
    /// Tenant types polled per customer (1..=4, in API number order).
    pub tenant_types: usize,
    /// Every this many customers one is big; 0 or 1: all are.
    pub big_every: usize,
    /// How many tenant types of a big customer are big (the others are small).
    pub big_types: usize,
    /// `max_requests_per_second` of the generated config (0: unlimited).
    pub max_requests_per_second: u32,
    /// Delay before each tenants answer.
    pub latency: std::time::Duration,
    /// Percentage of tenants whose id changes on every poll (tenant churn).
    pub churn_percent: u8,
    /// `max_concurrency` of the generated config.
    pub max_concurrency: usize,
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
        Config::parse(&self.config_yaml(), &NoEnv)
    }

    /// The text of [`DemoApi::config`] (for the scaled dataset: one hour interval, page size
    /// 100, Microsoft 365 only).
    pub fn config_yaml(&self) -> String {
        let (page_size, concurrency, rate, interval) = match self.scale {
            Some(s) => (100, s.max_concurrency, s.max_requests_per_second, "1h"),
            None => (DEMO_PAGE_SIZE, 4, 0, DEMO_INTERVAL),
        };
        let mut yaml = format!(
            "elements:\n  base_url: http://{addr}\n  token_url: http://{addr}/connect/token\n  client_id: {DEMO_CLIENT_ID}\n  client_secret: {DEMO_SECRET}\n  page_size: {page_size}\n  max_concurrency: {concurrency}\n  max_requests_per_second: {rate}\n  retries: 1\npoll:\n  interval: {interval}\n  stale_after: 3h\n",
            addr = self.addr
        );
        if !self.customers.is_empty() {
            yaml.push_str("discovery:\n  interval: 1m\n  exclude: ['^Test']\n");
        }
        if let Some(s) = self.scale {
            yaml.push_str("customers:\n");
            let types: Vec<&str> = TenantType::ALL[..s.tenant_types.clamp(1, 4)]
                .iter()
                .map(|t| t.name())
                .collect();
            for i in 0..s.customers {
                yaml.push_str(&format!(
                    "  - id: bench-{i:05}\n    name: {}\n    tenant_types: [{}]\n",
                    organization(i),
                    types.join(", ")
                ));
            }
        }
        yaml
    }
}

/// An environment with nothing in it, so `ELEMENTS_CLIENT_SECRET` cannot leak into the demo.
struct NoEnv;
impl crate::config::Environment for NoEnv {
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
    if let Some(scale) = state.scale {
        let poll = advance(state, customer, tenant_type, page_index);
        tokio::time::sleep(scale.latency).await;
        return json(
            StatusCode::OK,
            synthetic_page(&scale, customer, tenant_type, poll, page_index, page_size),
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

/// A realistic organization name (40 to 60 characters) for synthetic customer `i`.
fn organization(i: usize) -> String {
    const FIRST: [&str; 8] = [
        "Contoso",
        "Fabrikam",
        "Northwind",
        "Tailspin",
        "Wingtip",
        "Adventure",
        "Litware",
        "Proseware",
    ];
    const SECOND: [&str; 6] = [
        "Pharmaceuticals",
        "Logistics",
        "Financial Services",
        "Manufacturing",
        "Healthcare",
        "Consulting",
    ];
    format!(
        "{} {} Holding GmbH & Co. KG (EMEA) {i:05}",
        FIRST[i % FIRST.len()],
        SECOND[(i / FIRST.len()) % SECOND.len()]
    )
}

/// Tenants of one (customer, type) of a synthetic dataset.
fn synthetic_tenants(scale: &Scale, customer: &str, tenant_type: TenantType) -> u64 {
    let index: usize = customer
        .strip_prefix("bench-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let big_customer = scale.big_every <= 1 || index.is_multiple_of(scale.big_every);
    if big_customer && usize::from(tenant_type.api_number()) < scale.big_types {
        scale.tenants_per_customer as u64
    } else {
        let spread = if scale.big_types < 4 { 3 } else { 5 };
        1 + fnv(&format!("{customer}/{}", tenant_type.api_number())) % spread
    }
}

/// One page of a synthetic customer's tenants, rendered straight to JSON.
fn synthetic_page(
    scale: &Scale,
    customer: &str,
    tenant_type: TenantType,
    poll: u64,
    page_index: u64,
    page_size: u64,
) -> String {
    use std::fmt::Write as _;
    let total = synthetic_tenants(scale, customer, tenant_type);
    let kind = tenant_type.api_number();
    let start = (page_index - 1) * page_size;
    let end = (start + page_size).min(total);
    let mut out = String::with_capacity(180 * (end.saturating_sub(start)) as usize + 128);
    out.push_str("{\"data\":[");
    for j in start..end {
        if j > start {
            out.push(',');
        }
        let seats = 10 + fnv(&format!("{customer}{j}")) % 500;
        let assigned = (seats * 7 / 10 + poll % 5).min(seats);
        let _ = write!(
            out,
            "{{\"type\":{kind},\"tenantId\":\"{customer}-{kind}-t{j:05}"
        );
        if (j % 100) < u64::from(scale.churn_percent) {
            let _ = write!(out, "-p{poll}");
        }
        let _ = write!(
            out,
            "\",\"tenantName\":\"{customer} tenant {j:05}.onmicrosoft.com\",\"availableUserSeat\":{},\"assignedUserSeat\":{assigned}}}",
            seats - assigned
        );
    }
    let _ = write!(
        out,
        "],\"metadata\":{{\"pageIndex\":{page_index},\"pageSize\":{page_size},\"totalCount\":{total}}}}}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_pages_parse_and_churn() {
        let scale = Scale {
            customers: 20,
            tenants_per_customer: 250,
            tenant_types: 4,
            big_every: 10,
            big_types: 4,
            max_requests_per_second: 0,
            latency: std::time::Duration::ZERO,
            churn_percent: 10,
            max_concurrency: 1,
        };
        let m365 = TenantType::Microsoft365;
        let page = |customer: &str, t: TenantType, poll: u64, index: u64| {
            crate::api::parse_page(synthetic_page(&scale, customer, t, poll, index, 100).as_bytes())
                .unwrap()
        };
        // Every tenth customer is big: 250 tenants of each type, three pages.
        let p1 = page("bench-00000", m365, 0, 1);
        assert_eq!((p1.items.len(), p1.total_count), (100, Some(250)));
        assert!(p1.invalid.is_empty());
        assert_eq!(page("bench-00000", m365, 0, 3).items.len(), 50);
        assert_eq!(
            page("bench-00010", TenantType::Google, 0, 1).total_count,
            Some(250)
        );
        // The others have 1 to 5 of each type, with ids unique across types.
        for i in 1..10 {
            for t in TenantType::ALL {
                let p = page(&format!("bench-{i:05}"), t, 0, 1);
                assert!((1..=5).contains(&p.items.len()), "{}", p.items.len());
                let kind = format!("-{}-t", t.api_number());
                assert!(p.items.iter().all(|x| x.id.contains(&kind)));
            }
        }
        let next = page("bench-00000", m365, 1, 1);
        let changed = p1
            .items
            .iter()
            .zip(&next.items)
            .filter(|(a, b)| a.id != b.id)
            .count();
        assert_eq!(changed, 10);
        assert!((40..=60).contains(&organization(1234).len()));
    }

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
