//! What the exporter serves grows with the fleet, never with what went wrong or with
//! history: every series of a target leaves with it (discovery churn, reloads), `HEAD`
//! builds no body, and shutdown drains with the connection limit actually in force.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;

const CUSTOMERS_PATH: &str = "/partner/external/v3/general/customers/batch";

/// Every `customer_id` label value in the exposition, whatever the series.
fn customer_ids(text: &str) -> HashSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            Some(
                l.split("customer_id=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .to_owned(),
            )
        })
        .collect()
}

/// Tenant answers by customer: one whose id ends in an even digit fails with a 500; any
/// other answers one good tenant and one invalid record.
fn failing_or_invalid(customer: &str) -> Reply {
    if customer.ends_with(['0', '2', '4', '6', '8']) {
        return Reply::status(500, "text/plain", "down");
    }
    let records = [
        record(&format!("{customer}-t"), "T", 3, 1),
        serde_json::json!({"tenantName": "no id", "availableUserSeat": 1, "assignedUserSeat": 1}),
    ];
    Reply::json(envelope(&records, 1, 100, 2))
}

#[tokio::test(start_paused = true)]
async fn discovery_churn_keeps_per_target_series_to_the_live_targets() {
    // 20 live customers, all replaced by new ids at every refresh (each second): half fail,
    // half skip an invalid record, so each generation leaves error and invalid-record
    // counters behind unless they leave with their targets.
    const LIVE: usize = 20;
    let generation = Arc::new(AtomicUsize::new(0));
    let list_generation = generation.clone();
    let api = FakeApi::with_tokens(move |r| {
        if r.path == CUSTOMERS_PATH {
            let g = list_generation.fetch_add(1, Ordering::SeqCst) + 1;
            let list: Vec<serde_json::Value> = (0..LIVE)
                .map(|i| {
                    serde_json::json!({"id": format!("g{g}c{i}"), "organization": format!("Org {i}"),
                        "countryOrRegion": "US", "managementMode": "Managed"})
                })
                .collect();
            return Reply::json(envelope(&list, 1, 100, LIVE));
        }
        failing_or_invalid(r.path.split('/').nth(6).unwrap_or(""))
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "poll:\n  interval: 1h\ndiscovery:\n  interval: 1s\n  tenant_types: [0]\n",
    )
    .await;
    // Wait (on paused time) until the twelfth generation's failures are counted.
    let generation_of = |id: &str| -> usize {
        id.strip_prefix('g')
            .and_then(|rest| rest.split('c').next())
            .and_then(|g| g.parse().ok())
            .unwrap_or(0)
    };
    let text = exporter
        .metrics_when("the twelfth generation's errors", |t| {
            series(t, "avepoint_exporter_target_errors_total")
                .iter()
                .filter_map(|l| l.split("customer_id=\"").nth(1)?.split('"').next())
                .any(|id| generation_of(id) >= 12)
        })
        .await;
    assert!(generation.load(Ordering::SeqCst) >= 12);
    let errors = series(&text, "avepoint_exporter_target_errors_total");
    let invalid = series(&text, "avepoint_exporter_invalid_records_total");
    assert!(
        errors.len() <= LIVE / 2,
        "{} error series for {} failing live targets:\n{}",
        errors.len(),
        LIVE / 2,
        errors.join("\n")
    );
    assert!(
        invalid.len() <= LIVE / 2,
        "{} invalid-record series for {} live targets:\n{}",
        invalid.len(),
        LIVE / 2,
        invalid.join("\n")
    );
    // Every customer named anywhere is of the current list (or of the one being planned:
    // customer_info follows the list as it arrives).
    let ids = customer_ids(&text);
    assert!(
        ids.len() <= 2 * LIVE,
        "{} customers named for {LIVE} live: {ids:?}",
        ids.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_removes_customers_removes_their_counters() {
    let api =
        FakeApi::with_tokens(|r| failing_or_invalid(r.path.split('/').nth(6).unwrap_or(""))).await;
    // x0 and z2 fail, y1 skips an invalid record.
    let (dir, exporter) = in_process_on(&api, &targets("1h", &["x0", "y1", "z2"])).await;
    let text = exporter
        .metrics_when("every counter", |t| {
            errors(t, "x0", "http_5xx").is_some()
                && errors(t, "z2", "http_5xx").is_some()
                && t.contains("avepoint_exporter_invalid_records_total{customer_id=\"y1\"")
        })
        .await;
    assert_eq!(
        customer_ids(&text),
        HashSet::from(["x0", "y1", "z2"].map(String::from))
    );
    write_config(&dir, &api, &targets("1h", &["z2"]));
    assert_eq!(exporter.post("/-/reload").await.0, 200);
    // The new plan reaches the poller after the reload answers: wait for its publish.
    let text = exporter
        .metrics_when("the removed customers gone", |t| {
            !t.contains("customer_id=\"x0\"") && !t.contains("customer_id=\"y1\"")
        })
        .await;
    assert_eq!(
        customer_ids(&text),
        HashSet::from(["z2".to_owned()]),
        "{text}"
    );
    // The customer that stays keeps its count.
    assert_eq!(errors(&text, "z2", "http_5xx"), Some(1.0), "{text}");
    assert!(series(&text, "avepoint_exporter_invalid_records_total").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_at_once_with_the_connection_limit_in_force_and_says_nothing_false() {
    let api =
        FakeApi::with_tokens(|_| Reply::json(envelope(&[record("t1", "T", 4, 6)], 1, 100, 1)))
            .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &api, &targets("1h", &["c"]));
    // As started, and under 256 open files: room for fewer connections than the default
    // 512, so the limit in force is clamped and the drain must wait for that many.
    for launcher in [&[][..], &["prlimit", "--nofile=256:256"][..]] {
        let mut exporter =
            Exporter::start_under(launcher, &["--config.file", config.to_str().unwrap()], &[]);
        exporter.first_poll().await;
        let clamped = exporter
            .log_text()
            .contains("--web.max-connections is above what the open-file limit allows");
        assert_eq!(clamped, !launcher.is_empty(), "{}", exporter.log_text());
        // Scrapes done, their keep-alive connection idle, and a connection that never sent
        // a request: nothing in flight.
        let _idle = std::net::TcpStream::connect(exporter.addr).unwrap();
        let start = std::time::Instant::now();
        let status = exporter.signal_and_wait("TERM", std::time::Duration::from_secs(5));
        let took = start.elapsed();
        let log = exporter.log_text();
        assert_eq!(status.code(), Some(0), "{launcher:?}: {log}");
        assert!(
            took < std::time::Duration::from_secs(1),
            "{launcher:?}: SIGTERM took {took:?} with nothing in flight; log:\n{log}"
        );
        assert!(
            !log.contains("connections still open"),
            "{launcher:?}: {log}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn head_is_not_a_scrape_and_sends_no_body() {
    let api =
        FakeApi::with_tokens(|_| Reply::json(envelope(&[record("t1", "T", 4, 6)], 1, 100, 1)))
            .await;
    let customers: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
    let ids: Vec<&str> = customers.iter().map(String::as_str).collect();
    let (_dir, exporter) = in_process_on(&api, &targets("1h", &ids)).await;
    exporter.first_cycle().await;
    let scrapes = |text: &str| {
        value(
            text,
            "avepoint_exporter_scrapes_total",
            &["encoding=\"gzip\"", "format=\"text\""],
        )
        .unwrap_or(-1.0)
    };
    let gzip = [("accept-encoding", "gzip")];
    let before = scrapes(&exporter.get("/metrics").await.1);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/metrics", "/", "/api/v1/targets"] {
        for _ in 0..3 {
            let mut request = client.head(exporter.url(path));
            for (name, value) in gzip {
                request = request.header(name, value);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            assert!(!resp.headers().contains_key("content-length"), "{path}");
            if path == "/metrics" {
                assert_eq!(resp.headers()["content-encoding"], "gzip");
            }
            assert!(resp.bytes().await.unwrap().is_empty(), "{path}");
        }
    }
    // Three HEADs of the exposition asked for gzip: none of them counted (or rendered) as a
    // scrape (a scrape's self-metrics are rendered before it counts itself).
    let resp = exporter.get_with("/metrics", &gzip).await;
    let body = resp.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
    assert_eq!(scrapes(&text), before, "{text}");
}
