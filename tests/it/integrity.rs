//! Every seat or a loud failure: against an API that clamps pages, ignores the tenant type,
//! answers empty once, or is swapped under a running exporter, the exporter serves every
//! seat exactly once or says that it cannot (target down, a counted cause, a warning).
//! In-process on paused time where the cadence matters; the real binary otherwise.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::*;
use serde_json::json;

const CUSTOMERS_PATH: &str = "/partner/external/v3/general/customers/batch";

/// The server's page size: whatever is asked, at most this many records a page.
const SERVER_PAGE: usize = 50;

/// Page `r` of `all`, clamped to [`SERVER_PAGE`] records and saying so in its metadata.
fn clamped(r: &Recorded, all: &[serde_json::Value]) -> Reply {
    let size = page_size(r).min(SERVER_PAGE);
    let page = page_index(r) as usize;
    let records: Vec<_> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    Reply::json(envelope(&records, page as u32, size as u32, all.len()))
}

fn tenants(prefix: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| record(&format!("{prefix}{i:03}"), "T", 2, 1))
        .collect()
}

/// Customer-list records `{prefix}0`.. (`Org 0`..), `n` of them.
fn listed(prefix: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"id": format!("{prefix}{i}"), "organization": format!("Org {i}")}))
        .collect()
}

/// Seat series of `customer` in `text`.
fn seat_series(text: &str, customer: &str) -> usize {
    series(text, "available_user_seats")
        .iter()
        .filter(|l| l.contains(&format!("customer_id=\"{customer}\"")))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_server_that_clamps_page_size_is_read_to_the_last_tenant_or_fails_loudly() {
    let big = tenants("b", 253);
    let cut = tenants("c", 120);
    let cut_short = Arc::new(AtomicBool::new(false));
    let short = cut_short.clone();
    let api = FakeApi::with_tokens(move |r| {
        if r.path == tenants_path("big", 0) {
            return clamped(r, &big);
        }
        if short.load(Ordering::SeqCst) && page_index(r) > 1 {
            // Pages run out after the first: 50 of the 120 that totalCount announces.
            return Reply::json(envelope(&[], page_index(r), 50, cut.len()));
        }
        clamped(r, &cut)
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1s
  stale_after: 1h
customers:
  - id: big
    tenant_types: [0]
  - id: cut
    tenant_types: [0]
",
    )
    .await;
    let text = exporter.first_cycle().await;
    // Every tenant, in ceil(253 / 50) = 6 requests of the first poll, each asking for 100.
    assert_eq!(seat_series(&text, "big"), 253);
    assert_eq!(
        value(
            &text,
            "avepoint_exporter_target_tenants",
            &["customer_id=\"big\""]
        ),
        Some(253.0)
    );
    let asked: Vec<u32> = api.requests_to("big", 0).iter().map(page_index).collect();
    let mut first_poll = asked[..6].to_vec();
    first_poll.sort_unstable();
    assert_eq!(first_poll, [1, 2, 3, 4, 5, 6], "{asked:?}");
    // The next request, if any, starts the next poll.
    assert!(asked.get(6).is_none_or(|&p| p == 1), "{asked:?}");
    assert!(api
        .requests_to("big", 0)
        .iter()
        .all(|r| page_size(r) == 100));
    assert_eq!(seat_series(&text, "cut"), 120);
    // The pages run out before totalCount: down, cause incomplete, last good series kept.
    cut_short.store(true, Ordering::SeqCst);
    let text = exporter.failure("cut", "incomplete").await;
    assert_eq!(seat_series(&text, "cut"), 120, "{text}");
    assert_eq!(up(&text, "big"), Some(1.0));
    let line = exporter.log_line("cause=incomplete").await;
    assert!(line.contains("50 of the 120"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn discovery_reads_a_clamped_customer_list_to_the_last_customer() {
    let list = listed("cust", 120);
    let api = FakeApi::with_tokens(move |r| {
        if r.path == CUSTOMERS_PATH {
            return clamped(r, &list);
        }
        Reply::json(envelope(&[record("t", "T", 1, 1)], 1, 100, 1))
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1h
discovery:
  interval: 1h
  tenant_types: [0]
",
    )
    .await;
    let text = exporter.first_cycle().await;
    assert_eq!(series(&text, "avepoint_exporter_target_up").len(), 120);
    assert!(text.contains("avepoint_exporter_discovered_customers 120"));
    let pages: Vec<u32> = api
        .requests()
        .iter()
        .filter(|r| r.path == CUSTOMERS_PATH)
        .map(page_index)
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
}

#[tokio::test(start_paused = true)]
async fn a_collapsed_customer_list_is_held_until_the_next_refresh_confirms_it() {
    let list = Arc::new(Mutex::new(listed("c", 10)));
    let l = list.clone();
    let lists = Arc::new(AtomicUsize::new(0));
    let n = lists.clone();
    let api = FakeApi::with_tokens(move |r| {
        if r.path == CUSTOMERS_PATH {
            n.fetch_add(1, Ordering::SeqCst);
            let all = l.lock().unwrap().clone();
            return Reply::json(envelope(&all, 1, 100, all.len()));
        }
        Reply::json(envelope(&[record("t", "T", 1, 1)], 1, 100, 1))
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1h
discovery:
  interval: 10s
  tenant_types: [0]
",
    )
    .await;
    let text = exporter.first_cycle().await;
    assert_eq!(series(&text, "avepoint_exporter_target_up").len(), 10);
    // One answer with nobody in it: held, counted, warned; every customer still served.
    list.lock().unwrap().clear();
    let text = exporter
        .metrics_when("the empty list held", |t| {
            t.contains("avepoint_exporter_discovery_errors_total{cause=\"shrunk\"} 1")
        })
        .await;
    assert_eq!(series(&text, "avepoint_exporter_target_up").len(), 10);
    assert_eq!(seat_series(&text, "c3"), 1);
    exporter.log_line("the customer list collapsed").await;
    // The list comes back before a second refresh confirms the collapse: nothing was lost.
    let held_at = lists.load(Ordering::SeqCst);
    *list.lock().unwrap() = listed("c", 10);
    let text = exporter
        .metrics_when("a refresh after the held one", |_| {
            lists.load(Ordering::SeqCst) > held_at
        })
        .await;
    assert_eq!(series(&text, "avepoint_exporter_target_up").len(), 10);
    assert!(text.contains("avepoint_exporter_discovery_errors_total{cause=\"shrunk\"} 1"));
    // Down to 4 of 10 (under half): held once, then confirmed by the same list.
    list.lock().unwrap().truncate(4);
    let text = exporter
        .metrics_when("the shrunken list held", |t| {
            t.contains("avepoint_exporter_discovery_errors_total{cause=\"shrunk\"} 2")
        })
        .await;
    assert_eq!(series(&text, "avepoint_exporter_target_up").len(), 10);
    let text = exporter
        .metrics_when("the shrunken list confirmed", |t| {
            series(t, "avepoint_exporter_target_up").len() == 4
        })
        .await;
    assert!(text.contains("avepoint_exporter_discovered_customers 4"));
    exporter
        .log_line("returned the same list; accepting it")
        .await;
}

#[tokio::test(start_paused = true)]
async fn one_empty_answer_is_held_and_a_second_in_a_row_confirms_it() {
    let answers = Arc::new(AtomicUsize::new(0));
    let a = answers.clone();
    let api = FakeApi::with_tokens(move |_| {
        if a.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(envelope(
                &[record("t1", "One", 0, 5), record("t2", "Two", 3, 5)],
                1,
                100,
                2,
            ))
        } else {
            // The documented "no content" success.
            Reply::status(204, "application/json", "")
        }
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1s
  empty_interval: 1h
customers:
  - id: c
    tenant_types: [0]
",
    )
    .await;
    exporter.first_poll().await;
    // The first empty answer: the out-of-seats tenant keeps alerting, the target stays up and
    // on its one-second cadence.
    let text = exporter.polls(2).await;
    assert_eq!(seat_series(&text, "c"), 2, "{text}");
    assert_eq!(up(&text, "c"), Some(1.0));
    assert!(text.contains("avepoint_exporter_empty_targets 0"), "{text}");
    exporter.log_line("answered with none").await;
    // The second, a second later (not an hour): believed.
    let text = exporter.polls(3).await;
    assert_eq!(seat_series(&text, "c"), 0, "{text}");
    assert_eq!(up(&text, "c"), Some(1.0));
    assert_eq!(
        value(
            &text,
            "avepoint_exporter_target_tenants",
            &["customer_id=\"c\""]
        ),
        Some(0.0)
    );
    assert!(text.contains("avepoint_exporter_empty_targets 1"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn records_of_another_tenant_type_are_counted_only_under_their_own() {
    // A server that ignores the type in the path: every request gets every type's tenant.
    let api = FakeApi::with_tokens(|_| {
        let all: Vec<_> = (0..4u8)
            .map(|k| {
                typed_record(
                    k,
                    &format!("t{k}"),
                    &format!("Type {k}"),
                    10 + i64::from(k),
                    1,
                )
            })
            .collect();
        Reply::json(envelope(&all, 1, 100, all.len()))
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1h
customers:
  - id: c
",
    )
    .await;
    let text = exporter.first_cycle().await;
    let seats = series(&text, "available_user_seats");
    assert_eq!(seats.len(), 4, "{seats:?}");
    for (k, kind) in ["microsoft_365", "salesforce", "google", "dynamics_365"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            value(
                &text,
                "available_user_seats",
                &[
                    &format!("tenant_type=\"{kind}\""),
                    &format!("tenant_id=\"t{k}\"")
                ]
            ),
            Some(10.0 + k as f64),
            "{seats:?}"
        );
        assert_eq!(
            value(
                &text,
                "avepoint_exporter_target_tenants",
                &[&format!("tenant_type=\"{kind}\"")]
            ),
            Some(1.0)
        );
    }
    assert_eq!(
        value(
            &text,
            "avepoint_exporter_skipped_records_total",
            &["reason=\"foreign_type\""]
        ),
        Some(12.0)
    );
    exporter.log_line("another tenant type").await;
}

/// A fake whose tenant answers depend on the request body: `licenseAssignedStatus` 1 gives
/// tenant "assigned", 0 or none "available"; `tenantIds` picks among both.
async fn filtering_api() -> FakeApi {
    FakeApi::with_tokens(|r| {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        let mut all = vec![
            record("available", "A", 5, 0),
            record("assigned", "B", 0, 5),
        ];
        if body["licenseAssignedStatus"] == json!(1) {
            all.remove(0);
        } else {
            all.remove(1);
        }
        if let Some(ids) = body["tenantIds"].as_array() {
            all = vec![
                record("available", "A", 5, 0),
                record("assigned", "B", 0, 5),
            ];
            all.retain(|t| ids.contains(&t["tenantId"]));
        }
        Reply::json(envelope(&all, 1, 100, all.len()))
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_changes_what_a_target_fetches_makes_it_new() {
    let api = filtering_api().await;
    let customers = |filter: &str| {
        format!("poll:\n  interval: 1h\ncustomers:\n  - id: c\n    tenant_types: [0]\n{filter}")
    };
    let (dir, exporter) =
        in_process_on(&api, &customers("    license_assigned_status: available\n")).await;
    let text = exporter.first_poll().await;
    assert!(text.contains("tenant_id=\"available\""), "{text}");
    // A reload that changes only names and timing fetches nothing anew.
    write_config(
        &dir,
        &api,
        &customers("    name: Renamed\n    license_assigned_status: available\n")
            .replace("interval: 1h", "interval: 2h"),
    );
    assert_eq!(exporter.post("/-/reload").await.0, 200);
    exporter
        .metrics_when("the new name", |t| t.contains("customer_name=\"Renamed\""))
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    assert_eq!(api.tenant_requests().len(), 1);
    // Another filter: polled at once (the interval is an hour), the old answer replaced.
    write_config(
        &dir,
        &api,
        &customers("    license_assigned_status: assigned\n"),
    );
    assert_eq!(exporter.post("/-/reload").await.0, 200);
    let text = exporter
        .metrics_when("the new filter's answer", |t| {
            t.contains("tenant_id=\"assigned\"") && !t.contains("tenant_id=\"available\"")
        })
        .await;
    assert_eq!(seat_series(&text, "c"), 1);
    let bodies: Vec<String> = api
        .tenant_requests()
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"licenseAssignedStatus":0}"#,
            r#"{"licenseAssignedStatus":1}"#
        ]
    );
    // A tenant filter is a change too.
    write_config(
        &dir,
        &api,
        &customers("    license_assigned_status: assigned\n    tenant_ids: [available]\n"),
    );
    assert_eq!(exporter.post("/-/reload").await.0, 200);
    exporter
        .metrics_when("the tenant filter's answer", |t| {
            t.contains("tenant_id=\"available\"") && !t.contains("tenant_id=\"assigned\"")
        })
        .await;
    assert_eq!(
        api.tenant_requests()[2].body,
        r#"{"licenseAssignedStatus":1,"tenantIds":["available"]}"#
    );
    // Another API that fails: the old API's series are not served as this one's, up or not.
    let other = FakeApi::with_tokens(|_| Reply::status(503, "text/plain", "down")).await;
    write_config_with(
        &dir,
        &other.base_url(),
        &other.base_url(),
        TEST_LIMITS,
        &customers("    license_assigned_status: assigned\n    tenant_ids: [available]\n"),
    );
    assert_eq!(exporter.post("/-/reload").await.0, 200);
    let text = exporter.failure("c", "http_5xx").await;
    assert_eq!(seat_series(&text, "c"), 0, "{text}");
    exporter.log_line("targets now fetch something else").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_ids_send_the_filter_and_serve_only_those_tenants() {
    let api = filtering_api().await;
    let (dir, exporter) = start_on(
        &api,
        "poll:\n  interval: 1h\ncustomers:\n  - id: c\n    tenant_types: [0]\n    license_assigned_status: assigned\n    tenant_ids: [assigned]\n",
    );
    let text = exporter.first_poll().await;
    assert_eq!(seat_series(&text, "c"), 1, "{text}");
    assert!(text.contains("tenant_id=\"assigned\""));
    assert_eq!(
        api.tenant_requests()[0].body,
        r#"{"licenseAssignedStatus":1,"tenantIds":["assigned"]}"#
    );
    // --check-config shows the filter.
    let (code, out, _) = check_config(&dir.path().join("config.yaml"), dir.path());
    assert_eq!(code, 0);
    assert!(out.contains("tenant_ids: [assigned]"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_tenant_ids_still_yields_only_those_tenants() {
    // The API's first revision: no tenantIds, every tenant in a bare array.
    let api = FakeApi::with_tokens(|_| {
        Reply::json(json!([record("keep", "K", 1, 1), record("other", "O", 2, 2)]).to_string())
    })
    .await;
    let (_dir, exporter) = start_on(
        &api,
        "poll:\n  interval: 1h\ncustomers:\n  - id: c\n    tenant_types: [0]\n    tenant_ids: [KEEP]\n",
    );
    let text = exporter.first_poll().await;
    assert_eq!(series(&text, "available_user_seats").len(), 1, "{text}");
    assert!(text.contains("tenant_id=\"keep\""));
    assert_eq!(
        value(
            &text,
            "avepoint_exporter_skipped_records_total",
            &["reason=\"not_requested\""]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_content_is_an_empty_tenant_list_and_an_empty_customer_list() {
    let api = FakeApi::with_tokens(|r| {
        if r.path == CUSTOMERS_PATH {
            return Reply::status(204, "application/json", "");
        }
        if r.path == tenants_path("c", 1) {
            // A 200 with an empty body reads the same.
            return Reply::status(200, "application/json", "");
        }
        Reply::status(204, "application/json", "")
    })
    .await;
    let (_dir, exporter) = start_on(
        &api,
        "poll:\n  interval: 1h\ndiscovery:\n  interval: 1h\ncustomers:\n  - id: c\n    tenant_types: [0, 1]\n",
    );
    let text = exporter.first_cycle().await;
    for kind in ["microsoft_365", "salesforce"] {
        let labels = [&format!("tenant_type=\"{kind}\"")[..]];
        assert_eq!(
            value(&text, "avepoint_exporter_target_up", &labels),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, "avepoint_exporter_target_tenants", &labels),
            Some(0.0)
        );
    }
    assert!(
        text.contains("avepoint_exporter_discovered_customers 0"),
        "{text}"
    );
    assert!(
        counter(
            &text,
            "avepoint_exporter_discovery_last_success_timestamp_seconds"
        )
        .is_some_and(|t| t > 0.0),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fleet_behind_a_clamping_rate_limited_api_gets_every_tenant_in_the_fewest_requests() {
    // 500 customers x 4 types = 2 000 targets: Microsoft 365 with 1-7 tenants (every 50th
    // customer 120: three pages of 50), Salesforce empty (204) but for every 10th customer
    // (60: two pages), Google and Dynamics empty. A pass needs some 2 100 requests at 300 a
    // second: longer than the 5 s interval.
    const CUSTOMERS: usize = 500;
    let tenants_of = |customer: usize, kind: u8| -> usize {
        match kind {
            0 if customer.is_multiple_of(50) => 120,
            0 => 1 + customer % 7,
            1 if customer.is_multiple_of(10) => 60,
            _ => 0,
        }
    };
    let api = FakeApi::with_tokens(move |r| {
        let parts: Vec<&str> = r.path.split('/').collect();
        let customer: usize = parts[6].trim_start_matches("cust").parse().unwrap();
        let kind: u8 = parts[9].parse().unwrap();
        let n = tenants_of(customer, kind);
        if n == 0 {
            return Reply::status(204, "application/json", "");
        }
        let all: Vec<_> = (0..n)
            .map(|i| typed_record(kind, &format!("{customer}-{kind}-{i}"), "T", 1, 1))
            .collect();
        clamped(r, &all)
    })
    .await;
    let customers: String = (0..CUSTOMERS)
        .map(|i| format!("  - id: cust{i:04}\n"))
        .collect();
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 5s\n  retries: 0\n  max_concurrency: 8\n  max_requests_per_second: 300\n",
        &format!("poll:\n  interval: 5s\n  empty_interval: 1h\ncustomers:\n{customers}"),
    )
    .await;
    let text = exporter.first_cycle().await;
    let expected: usize = (0..CUSTOMERS)
        .flat_map(|c| (0..4).map(move |k| tenants_of(c, k)))
        .sum();
    assert_eq!(series(&text, "available_user_seats").len(), expected);
    assert_eq!(
        series(&text, "avepoint_exporter_target_up").len(),
        4 * CUSTOMERS
    );
    let ups = series(&text, "avepoint_exporter_target_up");
    assert!(ups.iter().all(|l| l.ends_with(" 1")), "{ups:?}");
    // Each target's first poll asked for pages 1..=ceil(tenants / 50) (one page when empty),
    // each once: the fewest requests that get every tenant.
    let mut asked: std::collections::HashMap<String, Vec<u32>> = Default::default();
    for r in api.tenant_requests() {
        asked
            .entry(r.path.clone())
            .or_default()
            .push(page_index(&r));
    }
    let mut first_pass = 0;
    for c in 0..CUSTOMERS {
        for k in 0..4u8 {
            let pages = tenants_of(c, k).div_ceil(SERVER_PAGE).max(1);
            let got = &asked[&tenants_path(&format!("cust{c:04}"), k)];
            let mut first: Vec<u32> = got[..pages].to_vec();
            first.sort_unstable();
            assert_eq!(
                first,
                (1..=pages as u32).collect::<Vec<_>>(),
                "cust{c:04}/{k}: {got:?}"
            );
            assert!(
                got.get(pages).is_none_or(|&p| p == 1),
                "cust{c:04}/{k}: {got:?}"
            );
            first_pass += pages;
        }
    }
    // Microsoft 365: 10 x 3 + 490 x 1; Salesforce: 50 x 2 + 450 x 1; the others 1 each.
    assert_eq!(first_pass, 30 + 490 + 100 + 450 + 500 + 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_api_revision_as_documented_polls_clean() {
    // Two customers with Microsoft 365 tenants only (the other three types answer 204); one
    // of them asks for two of its tenants by id. 130 tenants: two pages of 100.
    let api = FakeApi::with_tokens(current_revision(|customer, kind| match (customer, kind) {
        ("big", 0) => (0..130)
            .map(|i| record(&format!("big-{i:03}"), "T", 1, 1))
            .collect(),
        ("picky", 0) => (0..5)
            .map(|i| record(&format!("picky-{i}"), "T", 2, 1))
            .collect(),
        _ => Vec::new(),
    }))
    .await;
    let (_dir, exporter) = start_on(
        &api,
        "poll:\n  interval: 1h\ncustomers:\n  - id: big\n  - id: picky\n    tenant_ids: [picky-3, PICKY-1]\n",
    );
    let text = exporter.first_cycle().await;
    let ups = series(&text, "avepoint_exporter_target_up");
    assert_eq!(ups.len(), 8, "{ups:?}");
    assert!(ups.iter().all(|l| l.ends_with(" 1")), "{ups:?}");
    assert_eq!(seat_series(&text, "big"), 130);
    let picked: Vec<String> = series(&text, "available_user_seats")
        .into_iter()
        .filter(|l| l.contains("customer_id=\"picky\""))
        .collect();
    assert_eq!(picked.len(), 1, "{picked:?}");
    assert!(picked[0].contains("tenant_id=\"picky-3\""), "{picked:?}");
    assert!(text.contains("avepoint_exporter_empty_targets 6"), "{text}");
    let bodies: Vec<String> = api
        .requests_to("picky", 0)
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(bodies, [r#"{"tenantIds":["PICKY-1","picky-3"]}"#]);
}
