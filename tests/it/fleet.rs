//! Zero-config fleets: customer discovery and certificate (private_key_jwt) authentication,
//! in-process on paused time (sharding and check-config through the binary) against a fake
//! Elements API that serves the customer list (paged,
//! scope-checked) and verifies JWT client assertions with the registered certificate.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::common::*;
use serde_json::json;

const CUSTOMERS_PATH: &str = "/partner/external/v3/general/customers/batch";
const CUSTOMERS_SCOPE: &str = "elements.customers.read.all";

/// A customer list record as the API documents it.
fn customer(id: &str, organization: &str, country: &str) -> serde_json::Value {
    json!({"id": id, "organization": organization, "ownerEmail": "a@example.com",
        "jobStatus": if id.len().is_multiple_of(2) { json!(3) } else { json!("Completed") },
        "countryOrRegion": country, "managementMode": "Managed",
        "tenants": [{"id": format!("{id}-t"), "name": "T"}]})
}

/// A fake API whose customer list is `list` (paged by the request, 403 without the customers
/// scope, 500 while `list` is `None`); every tenants request gets one tenant.
async fn directory(list: Arc<Mutex<Option<Vec<serde_json::Value>>>>) -> FakeApi {
    let scopes: Arc<Mutex<Vec<String>>> = Arc::default();
    FakeApi::start(move |r| {
        if r.path == "/token" {
            let scope = form(&r.body).get("scope").cloned().unwrap_or_default();
            let mut s = scopes.lock().unwrap();
            s.push(scope);
            return token_reply(s.len());
        }
        let scope = r
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer tok-"))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| scopes.lock().unwrap().get(n - 1).cloned())
            .unwrap_or_default();
        if r.path == CUSTOMERS_PATH {
            if !scope.split(' ').any(|s| s == CUSTOMERS_SCOPE) {
                return Reply::status(403, "application/json", r#"{"message":"scope"}"#);
            }
            let Some(all) = list.lock().unwrap().clone() else {
                return Reply::status(500, "text/plain", "directory down");
            };
            let size: usize = r
                .query
                .split('&')
                .find_map(|p| p.strip_prefix("pageSize="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            let page = page_index(r) as usize;
            let records: Vec<_> = all
                .iter()
                .skip((page - 1) * size)
                .take(size)
                .cloned()
                .collect();
            return Reply::json(envelope(&records, page as u32, size as u32, all.len()));
        }
        let customer = r.path.split('/').nth(6).unwrap_or("");
        Reply::json(envelope(
            &[record(&format!("{customer}-t"), "T", 3, 1)],
            1,
            100,
            1,
        ))
    })
    .await
}

fn customer_ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = series(text, "avepoint_exporter_target_up")
        .iter()
        .filter_map(|l| {
            l.split("customer_id=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(String::from)
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(start_paused = true)]
async fn discovery_pages_filters_and_lets_listed_customers_override() {
    let list = Arc::new(Mutex::new(Some(vec![
        customer("c1", "Contoso", "US"),
        customer("c2", "Contoso Test", "US"),
        customer("c3", "Fabrikam", "GB"),
        customer("c4", "Fabrikam Old", "GB"),
        customer("n1", "Northwind", "AU"),
        customer("c5", "Cobalt", "DE"),
        json!({"organization": "no id"}),
    ])));
    let api = directory(list).await;
    let (dir, config) = config_with_limits(
        &api,
        "  page_size: 2\n  max_requests_per_second: 0\n  retries: 0\n",
        "\
poll:
  interval: 1h
discovery:
  include: ['^C', '^F']
  exclude: ['Test']
  exclude_ids: [c4]
  tenant_types: [microsoft_365]
customers:
  - id: c5
    name: Cobalt Explicit
    tenant_types: [google]
  - id: c6
    name: Standalone
    tenant_types: [0]
  - id: n1
    tenant_types: [google]
",
    );
    // --check-config explains what discovery will do.
    let (code, out, _) = check_config(&config, dir.path());
    assert_eq!(code, 0);
    assert!(
        out.contains("discovery: every 1h, POST http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("keeps organizations matching any of [\"^C\", \"^F\"], except those matching any of [\"Test\"], and drops ids c4"), "{out}");
    assert!(
        out.contains("polls microsoft_365 for each; organization becomes customer_name"),
        "{out}"
    );
    assert!(
        out.contains("scope: elements.license.read.all elements.customers.read.all"),
        "{out}"
    );

    let exporter = Exporter::in_process(&config).await;
    let text = exporter.first_cycle().await;
    // n1 is filtered out of discovery but listed in the file: polled, named from the list.
    assert_eq!(customer_ids(&text), ["c1", "c3", "c5", "c6", "n1"]);
    assert_eq!(
        series(&text, "available_user_seats"),
        vec![
            "available_user_seats{customer_id=\"c1\",customer_name=\"Contoso\",tenant_type=\"microsoft_365\",tenant_id=\"c1-t\",tenant_name=\"T\"} 3",
            "available_user_seats{customer_id=\"c3\",customer_name=\"Fabrikam\",tenant_type=\"microsoft_365\",tenant_id=\"c3-t\",tenant_name=\"T\"} 3",
            "available_user_seats{customer_id=\"c5\",customer_name=\"Cobalt Explicit\",tenant_type=\"google\",tenant_id=\"c5-t\",tenant_name=\"T\"} 3",
            "available_user_seats{customer_id=\"c6\",customer_name=\"Standalone\",tenant_type=\"microsoft_365\",tenant_id=\"c6-t\",tenant_name=\"T\"} 3",
            "available_user_seats{customer_id=\"n1\",customer_name=\"Northwind\",tenant_type=\"google\",tenant_id=\"n1-t\",tenant_name=\"T\"} 3",
        ]
    );
    assert_eq!(
        series(&text, "avepoint_exporter_customer_info")[1..],
        [
            "avepoint_exporter_customer_info{country_or_region=\"AU\",customer_id=\"n1\",customer_name=\"Northwind\",management_mode=\"Managed\"} 1",
            "avepoint_exporter_customer_info{country_or_region=\"DE\",customer_id=\"c5\",customer_name=\"Cobalt Explicit\",management_mode=\"Managed\"} 1",
            "avepoint_exporter_customer_info{country_or_region=\"GB\",customer_id=\"c3\",customer_name=\"Fabrikam\",management_mode=\"Managed\"} 1",
            "avepoint_exporter_customer_info{country_or_region=\"US\",customer_id=\"c1\",customer_name=\"Contoso\",management_mode=\"Managed\"} 1",
        ]
    );
    // Every polled customer is named, on the list or not; only the list's facts are missing.
    assert_eq!(
        series(&text, "avepoint_exporter_customer_info")[0],
        "avepoint_exporter_customer_info{country_or_region=\"\",customer_id=\"c6\",customer_name=\"Standalone\",management_mode=\"\"} 1"
    );
    assert!(text.contains("avepoint_exporter_discovered_customers 3"));
    let fetched = counter(
        &text,
        "avepoint_exporter_discovery_last_success_timestamp_seconds",
    )
    .expect("a last-success timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - 60.0..=now).contains(&fetched), "{fetched} vs {now}");
    // 7 records at 2 a page: 4 pages, each counted, each with an empty filter body.
    assert!(
        text.contains(
            "avepoint_exporter_api_requests_total{code=\"200\",endpoint=\"customers\"} 4"
        ),
        "{text}"
    );
    let pages: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path == CUSTOMERS_PATH)
        .collect();
    let mut indexes: Vec<u32> = pages.iter().map(page_index).collect();
    indexes.sort_unstable(); // pages 2..4 are requested at once
    assert_eq!(indexes, [1, 2, 3, 4]);
    assert!(pages
        .iter()
        .all(|r| r.body == "{}" && r.method == "POST" && r.query.contains("pageSize=2")));
    let token = &api.token_requests()[0];
    assert_eq!(
        form(&token.body)["scope"],
        "elements.license.read.all elements.customers.read.all"
    );
    exporter.log_line("skipped invalid customer records").await;
}

#[tokio::test(start_paused = true)]
async fn customers_come_and_go_with_the_list_and_a_failed_list_keeps_the_last() {
    let list = Arc::new(Mutex::new(Some(vec![customer("a1", "Alpha", "US")])));
    let api = directory(list.clone()).await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1h
discovery:
  interval: 1s
  tenant_types: [0]
",
    )
    .await;
    let text = exporter.first_cycle().await;
    assert_eq!(customer_ids(&text), ["a1"]);
    // A new customer is polled at the next refresh, although the poll interval is an hour.
    list.lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .push(customer("b2", "Beta", "US"));
    exporter
        .metrics_when("the new customer", |t| {
            t.contains("available_user_seats{customer_id=\"b2\"")
        })
        .await;
    // A customer that leaves the list loses its series.
    *list.lock().unwrap() = Some(vec![customer("b2", "Beta", "US")]);
    let text = exporter
        .metrics_when("the departed customer gone", |t| {
            !t.contains("customer_id=\"a1\"")
        })
        .await;
    assert!(text.contains("available_user_seats{customer_id=\"b2\""));
    // The list cannot be fetched: the last good one stays in use.
    *list.lock().unwrap() = None;
    let text = exporter
        .metrics_when("a failed refresh", |t| {
            t.contains("avepoint_exporter_discovery_errors_total{cause=\"http_5xx\"}")
        })
        .await;
    assert_eq!(customer_ids(&text), ["b2"]);
    assert!(text.contains("avepoint_exporter_discovered_customers 1"));
    exporter
        .log_line("cannot fetch the customer list; keeping the last one")
        .await;
}

#[tokio::test(start_paused = true)]
async fn without_a_customer_list_the_listed_customers_still_run() {
    let list = Arc::new(Mutex::new(None));
    let api = directory(list.clone()).await;
    // An hour between customer lists: the first one is retried much sooner than that.
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1h
discovery:
  interval: 1h
customers:
  - id: listed
    tenant_types: [0]
",
    )
    .await;
    let text = exporter
        .metrics_when("the listed customer and two failed lists", |t| {
            t.contains("customer_id=\"listed\"")
                && value(
                    t,
                    "avepoint_exporter_discovery_errors_total",
                    &["cause=\"http_5xx\""],
                )
                .is_some_and(|n| n >= 2.0)
        })
        .await;
    assert_eq!(customer_ids(&text), ["listed"]);
    // Not ready while the customer list is missing: not every target is known.
    let (status, body) = exporter.get("/-/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "Not ready: waiting for the first customer list (discovery)\n"
        )
    );
    exporter.log_line("retry_in=2s").await;
    // Once the list comes (within seconds, not the hour), its customers join and it is ready.
    *list.lock().unwrap() = Some(vec![customer("late", "Late Inc", "US")]);
    let text = exporter.first_cycle().await;
    assert!(
        text.contains("available_user_seats{customer_id=\"late\""),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_the_customers_scope_discovery_fails_clearly() {
    let list = Arc::new(Mutex::new(Some(vec![customer("a1", "Alpha", "US")])));
    let api = directory(list).await;
    let (_dir, exporter) = in_process_on(
        &api,
        "  scope: elements.license.read.all\npoll:\n  interval: 1h\ndiscovery: {}\ncustomers:\n  - id: listed\n    tenant_types: [0]\n",
    )
    .await;
    let text = exporter
        .metrics_when("a failed list", |t| {
            // The listed customer's poll, not its `customer_info` (there from the start).
            t.contains("avepoint_exporter_target_up{customer_id=\"listed\"")
                && t.contains("avepoint_exporter_discovery_errors_total{cause=\"http_4xx\"} 1")
        })
        .await;
    assert_eq!(customer_ids(&text), ["listed"]);
    let line = exporter
        .log_line("cannot fetch the first customer list")
        .await;
    assert!(line.contains("403"), "{line}");
    assert_eq!(exporter.get("/-/ready").await.0, 503);
}

/// A token endpoint that accepts only assertions signed by the key of `registered` (PEM).
fn verifying_token_endpoint(
    registered: &str,
    token_url: Arc<Mutex<String>>,
    verified: Arc<Mutex<Vec<String>>>,
) -> impl FnMut(&Recorded) -> Reply + Send + 'static {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let (_, pem) = x509_parser::pem::parse_x509_pem(registered.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let x509_parser::public_key::PublicKey::RSA(rsa) = cert.public_key().parsed().unwrap() else {
        panic!("not RSA")
    };
    let strip = |b: &[u8]| b[b.iter().take_while(|x| **x == 0).count()..].to_vec();
    let key = DecodingKey::from_rsa_raw_components(&strip(rsa.modulus), &strip(rsa.exponent));
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pem.contents);
    use base64::Engine as _;
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1);
    let mut jtis = HashSet::new();
    move |r| {
        if r.path != "/token" {
            let customer = r.path.split('/').nth(6).unwrap_or("");
            return Reply::json(envelope(
                &[record(&format!("{customer}-t"), "T", 3, 1)],
                1,
                100,
                1,
            ));
        }
        let f = form(&r.body);
        let refuse = |why: &str| {
            Reply::status(
                400,
                "application/json",
                format!(r#"{{"error":"invalid_client","error_description":"{why}"}}"#),
            )
        };
        if f.contains_key("client_secret")
            || f.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            || f.get("grant_type").map(String::as_str) != Some("client_credentials")
            || f.get("client_id").map(String::as_str) != Some("my-client")
        {
            return refuse("bad form");
        }
        let Some(jwt) = f.get("client_assertion") else {
            return refuse("no assertion");
        };
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[token_url.lock().unwrap().as_str()]);
        v.set_issuer(&["my-client"]);
        v.sub = Some("my-client".into());
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud", "nbf"]);
        v.validate_nbf = true;
        let claims = match jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v) {
            Ok(t) => t.claims,
            Err(e) => return refuse(&format!("assertion rejected: {e}")),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 600, "exp a few minutes ahead");
        assert!(claims["iat"].as_u64().unwrap() <= now + 1);
        assert_eq!(header.x5t.as_deref(), Some(x5t.as_str()));
        let jti = claims["jti"].as_str().unwrap().to_owned();
        assert!(jtis.insert(jti.clone()), "jti reused");
        verified.lock().unwrap().push(jti);
        let n = verified.lock().unwrap().len();
        Reply::json(format!(
            r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":2}}"#
        ))
    }
}

fn cert_config(
    dir: &tempfile::TempDir,
    api: &FakeApi,
    cert: &str,
    key: &str,
) -> std::path::PathBuf {
    let cert_path = dir.path().join("app.crt");
    let key_path = dir.path().join("app.key");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "\
elements:
  base_url: {base}
  token_url: {base}/token
  client_id: my-client
  client_certificate_file: {}
  client_private_key_file: {}
  retries: 0
  max_requests_per_second: 0
poll:
  interval: 1s
customers:
  - id: c
    tenant_types: [0]
",
            cert_path.display(),
            key_path.display(),
            base = api.base_url()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(start_paused = true)]
async fn certificate_authentication_sends_assertions_the_registered_certificate_verifies() {
    let (cert, _pkcs8, pkcs1) = rsa_identity("app.example.com");
    let token_url = Arc::new(Mutex::new(String::new()));
    let verified = Arc::new(Mutex::new(Vec::new()));
    let api = FakeApi::start(verifying_token_endpoint(
        &cert,
        token_url.clone(),
        verified.clone(),
    ))
    .await;
    *token_url.lock().unwrap() = format!("{}/token", api.base_url());
    let dir = tempfile::tempdir().unwrap();
    // A PKCS#1 key ("RSA PRIVATE KEY") works as well as PKCS#8.
    let config = cert_config(&dir, &api, &cert, &pkcs1);
    let (code, out, _) = check_config(&config, dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("client certificate:"), "{out}");
    assert!(!out.contains("PRIVATE KEY"));
    let exporter = Exporter::in_process(&config).await;
    // Tokens live 2 s: several assertions, each verified and with its own jti.
    // One target, polled every second: three polls.
    exporter.polls(3).await;
    let (_, text) = exporter.get("/metrics").await;
    assert!(text.contains("available_user_seats{customer_id=\"c\""));
    assert!(
        verified.lock().unwrap().len() >= 2,
        "{:?}",
        verified.lock().unwrap()
    );
    assert!(!exporter.log_text().contains("client_assertion="));
}

#[tokio::test(start_paused = true)]
async fn a_certificate_the_api_does_not_know_is_refused_with_targets_down() {
    let (registered, _, _) = rsa_identity("registered.example.com");
    let (other_cert, other_key, _) = rsa_identity("other.example.com");
    let token_url = Arc::new(Mutex::new(String::new()));
    let api = FakeApi::start(verifying_token_endpoint(
        &registered,
        token_url.clone(),
        Arc::default(),
    ))
    .await;
    *token_url.lock().unwrap() = format!("{}/token", api.base_url());
    let dir = tempfile::tempdir().unwrap();
    let config = cert_config(&dir, &api, &other_cert, &other_key);
    let exporter = Exporter::in_process(&config).await;
    let text = exporter.first_cycle().await;
    assert!(text.contains("avepoint_exporter_target_errors_total{cause=\"token\",customer_id=\"c\",tenant_type=\"microsoft_365\"} 1"), "{text}");
    assert!(text.contains(
        "avepoint_exporter_target_up{customer_id=\"c\",tenant_type=\"microsoft_365\"} 0"
    ));
    let line = exporter.log_line("cannot get an access token").await;
    assert!(
        line.contains("refused client_id \\\"my-client\\\""),
        "{line}"
    );
    assert!(line.contains("invalid_client"), "{line}");
    let log = exporter.log_text();
    assert!(
        !log.contains("PRIVATE KEY") && !log.contains("eyJ"),
        "no key or assertion in the log: {log}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_that_does_not_match_its_certificate_is_a_config_error() {
    let api = FakeApi::start(|_| token_reply(1)).await;
    let (cert, _, _) = rsa_identity("a.example.com");
    let (_, wrong_key, _) = rsa_identity("b.example.com");
    let dir = tempfile::tempdir().unwrap();
    let config = cert_config(&dir, &api, &cert, &wrong_key);
    let (code, out, err) = check_config(&config, dir.path());
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("elements.client_private_key_file:"), "{all}");
    assert!(
        all.contains("the private key does not match the certificate"),
        "{all}"
    );
    assert!(!all.contains("PRIVATE KEY"), "{all}");
    // The same at start-up: exit 1.
    let err = fails_with_1(
        &[
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert!(err.contains("does not match the certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_discovered_customers() {
    let all: Vec<String> = (0..12).map(|i| format!("cust-{i:02}")).collect();
    let list = Arc::new(Mutex::new(Some(
        all.iter()
            .map(|id| customer(id, &format!("Org {id}"), "US"))
            .collect(),
    )));
    let api = directory(list).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &api,
        "\
poll:
  interval: 1h
discovery:
  tenant_types: [0]
",
    );
    let mut seen: Vec<String> = Vec::new();
    for shard in ["0", "1"] {
        let exporter = Exporter::start(&[
            "--config.file",
            config.to_str().unwrap(),
            "--shard",
            shard,
            "--total-shards",
            "2",
        ]);
        let text = exporter.first_cycle().await;
        let ids = customer_ids(&text);
        assert!(
            !ids.is_empty() && ids.len() < all.len(),
            "shard {shard}: {ids:?}"
        );
        assert!(text.contains(&format!(
            "avepoint_exporter_discovered_customers {}",
            ids.len()
        )));
        seen.extend(ids);
    }
    seen.sort();
    assert_eq!(seen, all, "every customer in exactly one shard");
}

#[tokio::test(start_paused = true)]
async fn ids_in_any_case_are_one_customer_and_ids_never_leave_their_path_segment() {
    let list = Arc::new(Mutex::new(Some(vec![
        // Listed in the file in the other case, each way round.
        customer("ab-up", "Listed Lower", "US"),
        customer("CD-UP", "Listed Upper", "US"),
        // Excluded by an id written in another case.
        customer("Gone-1", "Excluded", "US"),
        // Ids that would walk out of their path segment: skipped as invalid records.
        customer("..", "Dot Dot", "US"),
        customer("x\\..\\..\\admin", "Backslashes", "US"),
        // Discovered only, in upper case: labelled in the one canonical form.
        customer("EF-NEW", "New", "US"),
    ])));
    let api = directory(list).await;
    let (_dir, config) = config_with_limits(
        &api,
        "  max_requests_per_second: 0\n  retries: 0\n",
        "\
poll:
  interval: 1h
discovery:
  exclude_ids: [GONE-1]
  tenant_types: [microsoft_365]
customers:
  - id: AB-UP
    name: From File
    tenant_types: [0]
  - id: cd-up
    tenant_types: [0]
",
    );
    let exporter = Exporter::in_process(&config).await;
    let text = exporter.first_cycle().await;
    assert_eq!(customer_ids(&text), ["ab-up", "cd-up", "ef-new"], "{text}");
    // One series per tenant: seats are never counted twice for one customer.
    assert_eq!(
        series(&text, "available_user_seats"),
        vec![
            "available_user_seats{customer_id=\"ab-up\",customer_name=\"From File\",tenant_type=\"microsoft_365\",tenant_id=\"ab-up-t\",tenant_name=\"T\"} 3",
            "available_user_seats{customer_id=\"cd-up\",customer_name=\"Listed Upper\",tenant_type=\"microsoft_365\",tenant_id=\"cd-up-t\",tenant_name=\"T\"} 3",
            "available_user_seats{customer_id=\"ef-new\",customer_name=\"New\",tenant_type=\"microsoft_365\",tenant_id=\"ef-new-t\",tenant_name=\"T\"} 3",
        ]
    );
    assert!(
        text.contains("avepoint_exporter_discovered_customers 3"),
        "{text}"
    );
    // Every request went to the documented paths, one per polled target.
    let mut paths: Vec<String> = api
        .tenant_requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p != CUSTOMERS_PATH)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            tenants_path("ab-up", 0),
            tenants_path("cd-up", 0),
            tenants_path("ef-new", 0)
        ]
    );
    let line = exporter.log_line("skipped invalid customer records").await;
    assert!(line.contains("would change the request path"), "{line}");
}
