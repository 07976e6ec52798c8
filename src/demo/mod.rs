//! A simulated Elements API for `--demo`: a real HTTP server on a loopback port with a token
//! endpoint, the paged customer list and the paged tenants endpoint, so the demo exercises the
//! same client code as production (discovery included). A handful of named customers span all
//! four tenant types; some have enough tenants to need several pages. Seat counts move the way
//! they do at an MSP, slowly and in steps: most tenants stay flat, some assign or free a seat
//! every few minutes. So that the seat alerts of `deploy/prometheus/rules.yml` show on a demo:
//! one tenant runs out of seats in a minute and stays out for 20 (`AvePointTenantOutOfSeats`
//! fires after 15), then 50 more seats are bought and it starts again; one is low on seats
//! (`AvePointTenantLowOnSeats`); one is already out.

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

mod fleet;
#[cfg(any(test, feature = "bench"))]
mod synthetic;

use fleet::{customers, DemoCustomer, DemoTenant};

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
        let mut config = Config::parse(&self.config_yaml(), &WithoutVariables)?;
        // The same simulated API at every start, whatever port it got: its state is its own.
        config.elements.stable_origin = Some("demo");
        Ok(config)
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
    // The API's current revision: `tenantIds` in the body names the tenants to return.
    let wanted: Option<Vec<String>> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| {
            b.get("tenantIds")?.as_array().map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_lowercase))
                    .collect()
            })
        });
    let tenants: Vec<&DemoTenant> = c
        .tenants
        .get(&tenant_type)
        .into_iter()
        .flatten()
        .filter(|t| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&t.id.to_lowercase()))
        })
        .collect();
    if tenants.is_empty() {
        // A type the customer does not have: 204 No Content, as the API documents.
        let mut resp = json(StatusCode::NO_CONTENT, String::new());
        resp.headers_mut().remove(hyper::header::CONTENT_TYPE);
        return resp;
    }
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
    use super::fleet::{Curve, OUT_OF_SEATS_POLLS, POLL_SECONDS, STEP_POLLS_MIN};
    use super::*;
    use crate::config::parse_duration;

    /// The demo's tenant called `name`.
    fn tenant(name: &str) -> DemoTenant {
        customers()
            .into_iter()
            .flat_map(|c| c.tenants.into_values().flatten())
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no demo tenant {name}"))
    }

    /// The `for:` of `alert` in deploy/prometheus/rules.yml, in demo polls.
    fn for_polls(alert: &str) -> u64 {
        let rules: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../deploy/prometheus/rules.yml")).unwrap();
        let rule = rules["groups"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_sequence().unwrap())
            .find(|r| r["alert"].as_str() == Some(alert))
            .unwrap_or_else(|| panic!("no alert {alert} in rules.yml"));
        let duration = parse_duration(rule["for"].as_str().unwrap()).unwrap();
        duration.as_secs().div_ceil(POLL_SECONDS)
    }

    /// Lengths of the runs of consecutive polls in `0..polls` for which `holds` is true.
    fn runs(polls: u64, holds: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut runs = vec![0];
        for n in 0..polls {
            match (holds(n), runs.last_mut()) {
                (true, Some(run)) => *run += 1,
                (false, Some(0)) => {}
                _ => runs.push(0),
            }
        }
        runs.retain(|&r| r > 0);
        runs
    }

    #[test]
    fn the_curves_count_polls_of_the_demo_interval() {
        assert_eq!(
            parse_duration(DEMO_INTERVAL),
            Ok(std::time::Duration::from_secs(POLL_SECONDS))
        );
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
        assert_eq!(t.seats(12 + OUT_OF_SEATS_POLLS - 1), (0, 120));
        // 50 seats bought, and 38 of them assigned at once to the users who waited.
        assert_eq!(t.seats(12 + OUT_OF_SEATS_POLLS), (12, 158));
        assert_eq!(t.seats(24 + OUT_OF_SEATS_POLLS), (0, 170));
    }

    #[test]
    fn running_out_tenant_stays_out_long_enough_for_the_alert_to_fire() {
        // AvePointTenantOutOfSeats: available == 0 and assigned > 0, for its `for:` (15m).
        let sales = tenant("Contoso Sales");
        let wait = for_polls("AvePointTenantOutOfSeats");
        let margin = 4 * 60 / POLL_SECONDS;
        let out = |n| {
            let (available, assigned) = sales.seats(n);
            available == 0 && assigned > 0
        };
        // A new user sees it run out within a minute or so of starting the demo.
        assert!((0..=15).any(out), "{:?}", sales.seats(15));
        // Each of the first rounds (two hours) is out for the alert's `for:` and a margin,
        // then buys seats.
        let polls = 2 * 3600 / POLL_SECONDS;
        let out_runs = runs(polls, out);
        assert!(out_runs.len() >= 5, "{out_runs:?}");
        let last = out_runs.len() - 1; // may be cut short by the end of the two hours
        for (i, &run) in out_runs.iter().enumerate() {
            assert!(i == last || run >= wait + margin, "{out_runs:?} < {wait}");
        }
    }

    #[test]
    fn low_tenant_stays_low_long_enough_for_the_alert_to_fire() {
        // AvePointTenantLowOnSeats: 1..=10 free and at least 90 % used, for its `for:` (30m).
        let crm = tenant("Contoso CRM");
        let wait = for_polls("AvePointTenantLowOnSeats");
        let low = |n| {
            let (available, assigned) = crm.seats(n);
            (1..=10).contains(&available) && assigned * 10 >= (available + assigned) * 9
        };
        assert_eq!(runs(2 * wait, low), vec![2 * wait]);
    }

    #[test]
    fn tenants_are_flat_or_step_slowly_and_stay_in_bounds() {
        let hour = 3600 / POLL_SECONDS;
        let (mut flat, mut stepping, mut all) = (0, 0, 0);
        for c in customers() {
            for t in c.tenants.values().flatten() {
                let values: Vec<(u64, u64)> = (0..hour).map(|n| t.seats(n)).collect();
                all += 1;
                if t.kind == Curve::Exhausting {
                    continue;
                }
                let mut last_change = None;
                for (n, &(available, assigned)) in values.iter().enumerate() {
                    // Seats only change hands, a few at most.
                    assert_eq!(available + assigned, t.total, "{} at poll {n}", t.id);
                    assert!(assigned.abs_diff(t.assigned) <= 3, "{} at poll {n}", t.id);
                    if n > 0 && values[n - 1] != values[n] {
                        // One seat at a time, at least STEP_POLLS_MIN apart.
                        assert_eq!(values[n - 1].1.abs_diff(assigned), 1, "{}", t.id);
                        if let Some(previous) = last_change {
                            assert!(n - previous >= STEP_POLLS_MIN as usize, "{}", t.id);
                        }
                        last_change = Some(n);
                    }
                }
                match last_change {
                    None => flat += 1,
                    Some(_) => stepping += 1,
                }
            }
        }
        // Most tenants are flat; enough of them step that the demo is alive.
        assert!(flat > all / 2, "{flat} flat of {all}");
        assert!(stepping >= 20, "{stepping} stepping of {all}");
    }

    /// The demo speaks the API's current revision: 204 for a tenant type the customer does
    /// not have, and `tenantIds` in the body picks the tenants.
    #[tokio::test]
    async fn the_simulated_api_answers_204_for_empty_types_and_honours_tenant_ids() {
        let api = DemoApi::start().await.unwrap();
        let c = customers()
            .into_iter()
            .find(|c| c.tenants.len() < 4 && c.tenants.values().any(|t| t.len() > 1))
            .expect("a demo customer with some types empty and one with several tenants");
        let missing = TenantType::ALL
            .into_iter()
            .find(|t| !c.tenants.contains_key(t))
            .unwrap();
        let (&kind, tenants) = c.tenants.iter().find(|(_, t)| t.len() > 1).unwrap();
        let http = reqwest::Client::new();
        let post = |kind: TenantType, body: String| {
            http.post(format!(
                "http://{}/partner/external/v3/general/customers/{}/3rd-party-products/type/{}/tenants/batch?pageIndex=1&pageSize=100",
                api.addr,
                c.id,
                kind.api_number()
            ))
            .bearer_auth(DEMO_TOKEN)
            .body(body)
            .send()
        };
        let empty = post(missing, "{}".into()).await.unwrap();
        assert_eq!(empty.status(), reqwest::StatusCode::NO_CONTENT);
        assert!(empty.bytes().await.unwrap().is_empty());
        let all: serde_json::Value = post(kind, "{}".into()).await.unwrap().json().await.unwrap();
        assert_eq!(
            all["metadata"]["totalCount"],
            serde_json::json!(tenants.len())
        );
        let one = &tenants[1].id;
        let picked: serde_json::Value = post(kind, format!("{{\"tenantIds\":[\"{one}\"]}}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = picked["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{picked}");
        assert_eq!(data[0]["tenantId"], serde_json::json!(one));
        assert_eq!(picked["metadata"]["totalCount"], serde_json::json!(1));
    }
}
