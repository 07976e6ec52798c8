//! The daemon (in-process, paused time) against the fake Elements API: requests sent, paging,
//! envelopes, tokens, failures, and the exposition that results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use crate::common::*;

const CUSTOMER: &str = "f1620000-b9d4-0000-a165-97db0000fc15";

fn seats_line(metric: &str, kind: &str, id: &str, name: &str, value: i64) -> String {
    format!(
        "{metric}{{customer_id=\"{CUSTOMER}\",customer_name=\"Contoso\",tenant_type=\"{kind}\",tenant_id=\"{id}\",tenant_name=\"{name}\"}} {value}"
    )
}

/// The `poll` and `customers` sections for the one customer, Contoso, with `types`.
fn contoso(interval: &str, types: &str) -> String {
    format!(
        "\
poll:
  interval: {interval}
customers:
  - id: {CUSTOMER}
    name: Contoso
    tenant_types: [{types}]
"
    )
}

#[tokio::test(start_paused = true)]
async fn pages_250_tenants_over_3_pages_with_exact_requests() {
    let all: Vec<serde_json::Value> = (0..250)
        .map(|i| record(&format!("t{i:03}"), &format!("Tenant {i}"), i, 1000 - i))
        .collect();
    let tokens = Arc::new(AtomicUsize::new(0));
    let t2 = tokens.clone();
    let api = FakeApi::start(move |r| {
        if r.path == "/token" {
            return token_reply(t2.fetch_add(1, Ordering::SeqCst) + 1);
        }
        let page = page_index(r) as usize;
        let chunk: Vec<_> = all
            .iter()
            .skip((page - 1) * 100)
            .take(100)
            .cloned()
            .collect();
        Reply::json(envelope(&chunk, page as u32, 100, 250))
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &contoso("1h", "microsoft_365")).await;
    let text = exporter
        .metrics_when("250 tenants", |t| {
            t.contains("avepoint_exporter_target_tenants{")
        })
        .await;

    // Exact requests: one token request, then pages 1..3, each a POST with bearer and {}.
    let token = &api.token_requests()[0];
    assert_eq!(token.method, "POST");
    assert_eq!(
        token.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let mut form: Vec<&str> = token.body.split('&').collect();
    form.sort();
    assert_eq!(
        form,
        vec![
            "client_id=my-client",
            "client_secret=my-very-secret-value",
            "grant_type=client_credentials",
            "scope=elements.license.read.all"
        ]
    );
    let mut reqs = api.tenant_requests();
    reqs.sort_by_key(page_index);
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, tenants_path(CUSTOMER, 0));
        assert_eq!(r.query, format!("pageIndex={}&pageSize=100", i + 1));
        assert_eq!(r.body, "{}");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.authorization.as_deref(), Some("Bearer tok-1"));
    }

    // Exact exposition: every tenant once, with its values.
    let available = series(&text, "available_user_seats");
    let mut want: Vec<String> = (0..250)
        .map(|i| {
            seats_line(
                "available_user_seats",
                "microsoft_365",
                &format!("t{i:03}"),
                &format!("Tenant {i}"),
                i,
            )
        })
        .collect();
    want.sort();
    assert_eq!(available, want);
    let assigned = series(&text, "assigned_user_seats");
    assert_eq!(assigned.len(), 250);
    assert!(assigned.contains(&seats_line(
        "assigned_user_seats",
        "microsoft_365",
        "t007",
        "Tenant 7",
        993
    )));
    assert_eq!(
        series(&text, "avepoint_exporter_target_tenants"),
        vec![format!("avepoint_exporter_target_tenants{{customer_id=\"{CUSTOMER}\",tenant_type=\"microsoft_365\"}} 250")]
    );
    assert_eq!(
        series(&text, "avepoint_exporter_target_up"),
        vec![format!("avepoint_exporter_target_up{{customer_id=\"{CUSTOMER}\",tenant_type=\"microsoft_365\"}} 1")]
    );
    assert!(
        text.contains("avepoint_exporter_api_requests_total{code=\"200\",endpoint=\"tenants\"} 3")
    );
    assert!(
        text.contains("avepoint_exporter_api_requests_total{code=\"200\",endpoint=\"token\"} 1")
    );
    // The secret never reaches the log or the metrics.
    assert!(!exporter.log_text().contains("my-very-secret-value"));
    assert!(!text.contains("my-very-secret-value"));
    // Shutdown (SIGTERM's path): every task stops cleanly and run returns Ok.
    assert_eq!(exporter.stop().await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn bare_array_pages_until_short_and_sends_license_status() {
    let all: Vec<serde_json::Value> = (0..130)
        .map(|i| record(&format!("s{i:03}"), "SF org", 5, 6))
        .collect();
    let api = FakeApi::with_tokens(move |r| {
        let page = page_index(r) as usize;
        let chunk: Vec<_> = all
            .iter()
            .skip((page - 1) * 100)
            .take(100)
            .cloned()
            .collect();
        Reply::json(serde_json::Value::Array(chunk).to_string())
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        &format!(
            "\
poll:
  interval: 1h
customers:
  - id: {CUSTOMER}
    name: Contoso
    tenant_types: [1]
    license_assigned_status: assigned
"
        ),
    )
    .await;
    let text = exporter.first_poll().await;
    let reqs = api.tenant_requests();
    let queries: Vec<&str> = reqs.iter().map(|r| r.query.as_str()).collect();
    assert_eq!(
        queries,
        vec!["pageIndex=1&pageSize=100", "pageIndex=2&pageSize=100"]
    );
    assert!(reqs
        .iter()
        .all(|r| r.body == r#"{"licenseAssignedStatus":1}"#));
    assert!(reqs.iter().all(|r| r.path == tenants_path(CUSTOMER, 1)));
    assert_eq!(series(&text, "available_user_seats").len(), 130);
    assert!(text.contains(&seats_line(
        "available_user_seats",
        "salesforce",
        "s129",
        "SF org",
        5
    )));
}

#[tokio::test(start_paused = true)]
async fn removed_tenant_disappears_and_token_is_reused() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p2 = polls.clone();
    let tokens = Arc::new(AtomicUsize::new(0));
    let t2 = tokens.clone();
    let api = FakeApi::start(move |r| {
        if r.path == "/token" {
            return token_reply(t2.fetch_add(1, Ordering::SeqCst) + 1);
        }
        if page_index(r) > 1 {
            // totalCount counts the duplicate below: one page more is asked, and is empty.
            return Reply::json(envelope(&[], page_index(r), 100, 3));
        }
        let n = p2.fetch_add(1, Ordering::SeqCst);
        let mut records = vec![record("keep", "Keep", 10, 20)];
        if n == 0 {
            records.push(record("gone", "Gone soon", 1, 2));
        }
        // The same tenant twice in one answer is merged into one series.
        records.push(record("keep", "Keep", 11 + n as i64, 20));
        Reply::json(envelope(&records, 1, 100, records.len()))
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &contoso("1s", "google")).await;
    let first = exporter
        .metrics_when("first poll", |t| t.contains("tenant_id=\"gone\""))
        .await;
    assert_eq!(
        series(&first, "available_user_seats"),
        vec![
            seats_line("available_user_seats", "google", "gone", "Gone soon", 1),
            seats_line("available_user_seats", "google", "keep", "Keep", 11),
        ]
    );
    let later = exporter
        .metrics_when("a poll without the removed tenant", |t| {
            t.contains("avepoint_exporter_target_up{") && !t.contains("tenant_id=\"gone\"")
        })
        .await;
    assert_eq!(series(&later, "available_user_seats").len(), 1);
    assert_eq!(series(&later, "assigned_user_seats").len(), 1);
    // Wait for a third poll, then check the token was fetched once for all of them.
    exporter
        .metrics_when("third poll", |_| polls.load(Ordering::SeqCst) >= 3)
        .await;
    assert_eq!(api.token_requests().len(), 1);
    assert!(api
        .tenant_requests()
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer tok-1")));
}

#[tokio::test(start_paused = true)]
async fn awkward_names_are_escaped() {
    let api = FakeApi::with_tokens(|_| {
        let records = vec![
            record("q", "say \"hi\"", 1, 1),
            record("b", "back\\slash", 2, 2),
            record("n", "two\nlines", 3, 3),
            record("u", "Zürich 東京 🚀", 4, 4),
        ];
        Reply::json(envelope(&records, 1, 100, 4))
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &contoso("1h", "dynamics_365")).await;
    let text = exporter.first_poll().await;
    assert_eq!(
        series(&text, "available_user_seats"),
        vec![
            seats_line(
                "available_user_seats",
                "dynamics_365",
                "b",
                "back\\\\slash",
                2
            ),
            seats_line(
                "available_user_seats",
                "dynamics_365",
                "n",
                "two\\nlines",
                3
            ),
            seats_line(
                "available_user_seats",
                "dynamics_365",
                "q",
                "say \\\"hi\\\"",
                1
            ),
            seats_line(
                "available_user_seats",
                "dynamics_365",
                "u",
                "Zürich 東京 🚀",
                4
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_target_does_not_affect_others_and_bad_bodies_are_logged() {
    let api = FakeApi::with_tokens(|r| {
        if r.path == tenants_path(CUSTOMER, 0) {
            return Reply::status(200, "text/html", "<html><body>Service maintenance</body></html>");
        }
        if r.path == tenants_path(CUSTOMER, 2) {
            // A record with a negative seat number and one without an id are skipped.
            let records = vec![
                record("ok", "Fine", 7, 8),
                record("neg", "Negative", -1, 8),
                serde_json::json!({"tenantName": "no id", "availableUserSeat": 1, "assignedUserSeat": 1}),
            ];
            return Reply::json(envelope(&records, 1, 100, 3));
        }
        Reply::status(403, "application/json", r#"{"error":"forbidden"}"#)
    })
    .await;
    let (_dir, exporter) =
        in_process_on(&api, &contoso("1h", "microsoft_365, google, salesforce")).await;
    let text = exporter.first_poll().await;
    let up = series(&text, "avepoint_exporter_target_up");
    assert_eq!(
        up,
        vec![
            format!("avepoint_exporter_target_up{{customer_id=\"{CUSTOMER}\",tenant_type=\"google\"}} 1"),
            format!("avepoint_exporter_target_up{{customer_id=\"{CUSTOMER}\",tenant_type=\"microsoft_365\"}} 0"),
            format!("avepoint_exporter_target_up{{customer_id=\"{CUSTOMER}\",tenant_type=\"salesforce\"}} 0"),
        ]
    );
    assert_eq!(
        series(&text, "available_user_seats"),
        vec![seats_line(
            "available_user_seats",
            "google",
            "ok",
            "Fine",
            7
        )]
    );
    assert!(text.contains(&format!("avepoint_exporter_target_errors_total{{cause=\"parse\",customer_id=\"{CUSTOMER}\",tenant_type=\"microsoft_365\"}} 1")));
    assert!(text.contains(&format!("avepoint_exporter_target_errors_total{{cause=\"http_4xx\",customer_id=\"{CUSTOMER}\",tenant_type=\"salesforce\"}} 1")));
    assert!(text.contains(&format!("avepoint_exporter_invalid_records_total{{customer_id=\"{CUSTOMER}\",tenant_type=\"google\"}} 2")));
    // The parse failure is logged with status, content type and the start of the body.
    let line = exporter.log_line_with(&["level=warn", "cause=parse"]).await;
    assert!(line.contains("status 200"), "{line}");
    assert!(line.contains("text/html"), "{line}");
    assert!(line.contains("Service maintenance"), "{line}");
    let line = exporter.log_line("skipped invalid tenant records").await;
    assert!(line.contains("skipped=2"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn expired_token_is_refreshed_once_on_401_and_5xx_is_retried() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let t2 = tokens.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let api = FakeApi::start(move |r| {
        if r.path == "/token" {
            return token_reply(t2.fetch_add(1, Ordering::SeqCst) + 1);
        }
        match c2.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(401, "application/json", "{}"),
            1 => Reply::status(503, "text/plain", "busy"),
            _ => Reply::json(envelope(&[record("a", "A", 1, 2)], 1, 100, 1)),
        }
    })
    .await;
    let (_dir, config) = config_with_limits(
        &api,
        "  retries: 2\n",
        &format!(
            "\
poll:
  interval: 1h
customers:
  - id: {CUSTOMER}
    tenant_types: [microsoft_365]
"
        ),
    );
    let exporter = Exporter::in_process(&config).await;
    let text = exporter.first_poll().await;
    let auths: Vec<String> = api
        .tenant_requests()
        .iter()
        .map(|r| r.authorization.clone().unwrap_or_default())
        .collect();
    assert_eq!(auths, vec!["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]);
    assert!(
        text.contains("avepoint_exporter_api_requests_total{code=\"401\",endpoint=\"tenants\"} 1")
    );
    assert!(
        text.contains("avepoint_exporter_api_requests_total{code=\"503\",endpoint=\"tenants\"} 1")
    );
    assert!(
        text.contains("avepoint_exporter_api_requests_total{code=\"200\",endpoint=\"tenants\"} 1")
    );
    assert!(text.contains(&format!(
        "avepoint_exporter_target_up{{customer_id=\"{CUSTOMER}\",tenant_type=\"microsoft_365\"}} 1"
    )));
}

#[tokio::test(start_paused = true)]
async fn at_most_max_concurrency_requests_in_flight() {
    let api = FakeApi::with_tokens(|_| {
        Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1))
            .delayed(Duration::from_millis(40))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let customers = numbered("c", 6, "0, 1");
    let config = write_config(
        &dir,
        &api,
        &format!("  max_concurrency: 3\npoll:\n  interval: 1h\ncustomers:\n{customers}"),
    );
    let exporter = Exporter::in_process(&config).await;
    let text = exporter
        .metrics_when("poll", |t| {
            t.matches("avepoint_exporter_target_tenants{").count() == 12
        })
        .await;
    assert_eq!(series(&text, "available_user_seats").len(), 12);
    assert_eq!(api.tenant_requests().len(), 12);
    assert_eq!(api.max_in_flight.load(Ordering::SeqCst), 3);
    // Twelve targets asked for a token at once; one token request served them all.
    assert_eq!(api.token_requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn ready_only_after_every_target_was_polled() {
    let release = Arc::new(Mutex::new(false));
    let r2 = release.clone();
    let api = FakeApi::with_tokens(move |_| {
        // Hold the answer until the test releases it.
        let delay = if *r2.lock().unwrap() {
            Duration::ZERO
        } else {
            Duration::from_secs(3)
        };
        Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1)).delayed(delay)
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        &format!(
            "\
poll:
  interval: 1h
customers:
  - id: {CUSTOMER}
    tenant_types: [0]
"
        ),
    )
    .await;
    let (status, body) = exporter.get("/-/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "Not ready: 0 of 1 targets polled\n")
    );
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
    // A target not polled yet is not "down": it has no target_up series at all.
    let (_, text) = exporter.get("/metrics").await;
    assert!(!text.contains("avepoint_exporter_target_up{"), "{text}");
    *release.lock().unwrap() = true;
    exporter.first_poll().await;
    assert_eq!(exporter.get("/-/ready").await, (200, "Ready\n".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn once_ready_a_reload_that_adds_a_slow_target_keeps_the_exporter_ready() {
    // `slow` answers after 40 s: a poll in flight for all of that time.
    let api = FakeApi::with_tokens(|r| {
        let reply = Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1));
        if r.path == tenants_path("slow", 0) {
            reply.delayed(Duration::from_secs(40))
        } else {
            reply
        }
    })
    .await;
    let (dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 2m\n  max_requests_per_second: 0\n",
        &targets("1h", &["fast"]),
    )
    .await;
    exporter.first_cycle().await;
    write_config_with(
        &dir,
        &api.base_url(),
        &api.base_url(),
        "  timeout: 2m\n  max_requests_per_second: 0\n",
        &targets("1h", &["fast", "slow"]),
    );
    assert_eq!(exporter.post("/-/reload").await.0, 200);
    // The new target is being polled, and the exporter stays ready all the while.
    let start = tokio::time::Instant::now();
    while api.requests_to("slow", 0).is_empty() {
        assert!(start.elapsed() < DEADLINE, "slow was never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..30 {
        assert_eq!(exporter.get("/-/ready").await, (200, "Ready\n".to_owned()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let text = exporter
        .metrics_when("the slow target", |t| up(t, "slow") == Some(1.0))
        .await;
    assert_eq!(up(&text, "fast"), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn never_more_pages_than_the_first_total_count_allows() {
    // Object envelope: claims 150 tenants but always sends a full page of new ids.
    let api = FakeApi::with_tokens(|r| {
        let page = page_index(r);
        if r.path == tenants_path("endless", 0) {
            let records: Vec<_> = (0..100)
                .map(|i| record(&format!("p{page}-{i}"), "x", 1, 1))
                .collect();
            return Reply::json(envelope(&records, page, 100, 150));
        }
        // Bare array that ignores pageIndex: the same full page every time.
        let records: Vec<_> = (0..100)
            .map(|i| record(&format!("same-{i}"), "x", 1, 1))
            .collect();
        Reply::json(serde_json::Value::Array(records).to_string())
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &targets("1h", &["endless", "repeating"])).await;
    let text = exporter
        .metrics_when("poll", |t| {
            t.matches("avepoint_exporter_target_tenants{").count() == 2
        })
        .await;
    let pages = |customer: &str| {
        let mut p: Vec<u32> = api
            .requests_to(customer, 0)
            .iter()
            .map(page_index)
            .collect();
        p.sort();
        p
    };
    assert_eq!(pages("endless"), vec![1, 2]);
    assert_eq!(pages("repeating"), vec![1, 2]);
    assert!(text.contains("avepoint_exporter_target_tenants{customer_id=\"endless\",tenant_type=\"microsoft_365\"} 200"));
    assert!(text.contains("avepoint_exporter_target_tenants{customer_id=\"repeating\",tenant_type=\"microsoft_365\"} 100"));
    exporter.log_line("page repeats records already seen").await;
}

/// A fake API whose first data answer is tenant `a` (5 available, 1 assigned), and every
/// later one `then`.
async fn good_once_then(then: Reply) -> FakeApi {
    let calls = Arc::new(AtomicUsize::new(0));
    FakeApi::with_tokens(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(envelope(&[record("a", "A", 5, 1)], 1, 100, 1))
        } else {
            then.clone()
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn failing_target_keeps_last_good_series_until_stale_after() {
    let api = good_once_then(Reply::status(500, "text/plain", "boom")).await;
    // One target polled every second, whose series go 4 s after its last success.
    let config = one_target("1s").replace("customers:", "  stale_after: 4s\ncustomers:");
    let (_dir, exporter) = in_process_on(&api, &config).await;
    // Down, but the last-good values are still served (the failed poll comes 0.5 to 1.5 s
    // after the good one, at the target's slot)...
    let text = exporter
        .metrics_when("a failed poll", |t| {
            t.contains(
                "avepoint_exporter_target_up{customer_id=\"c\",tenant_type=\"microsoft_365\"} 0",
            )
        })
        .await;
    assert!(text.contains("available_user_seats{customer_id=\"c\",customer_name=\"c\",tenant_type=\"microsoft_365\",tenant_id=\"a\",tenant_name=\"A\"} 5"), "{text}\n{}", exporter.log_text());
    assert!(text.contains("avepoint_exporter_target_errors_total{cause=\"http_5xx\",customer_id=\"c\",tenant_type=\"microsoft_365\"}"));
    // ...until stale_after has passed since the first failure.
    let text = exporter
        .metrics_when("stale series dropped", |t| {
            t.contains("avepoint_exporter_target_up{") && !t.contains("available_user_seats{")
        })
        .await;
    assert!(
        text.contains("avepoint_exporter_target_last_success_timestamp_seconds{customer_id=\"c\"")
    );
    exporter
        .log_line("no successful poll within stale_after")
        .await;
}

#[tokio::test(start_paused = true)]
async fn stale_after_counts_from_the_first_failure_not_from_the_last_success() {
    // Slow failures: each ends more than stale_after after the last success.
    let api =
        good_once_then(Reply::status(500, "text/plain", "boom").delayed(Duration::from_secs(3)))
            .await;
    let config = one_target("2s").replace("customers:", "  stale_after: 2s\ncustomers:");
    let (_dir, exporter) =
        in_process_with_limits(&api, "  retries: 0\n  timeout: 10s\n", &config).await;
    // The first failure is published at least 4 s after the last success: the series stay,
    // since the target has been failing for no time yet...
    let text = exporter.failure("c", "http_5xx").await;
    assert!(
        text.contains("available_user_seats{customer_id=\"c\""),
        "{text}\n{}",
        exporter.log_text()
    );
    // ...and go once it has been failing for longer than stale_after.
    exporter
        .metrics_when("stale series dropped", |t| {
            !t.contains("available_user_seats{")
        })
        .await;
    let line = exporter
        .log_line("no successful poll within stale_after")
        .await;
    assert!(line.contains("targets=1"), "{line}");
    assert!(errors(&exporter.get("/metrics").await.1, "c", "http_5xx") >= Some(2.0));
}

#[tokio::test(start_paused = true)]
async fn a_429_that_outlasts_the_retries_counts_as_rate_limited() {
    let api = FakeApi::with_tokens(|_| Reply::too_many("0")).await;
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  retries: 1\n  max_requests_per_second: 0\n",
        &targets("1h", &["limited"]),
    )
    .await;
    let text = exporter.first_cycle().await;
    assert!(text.contains("avepoint_exporter_target_errors_total{cause=\"rate_limited\",customer_id=\"limited\",tenant_type=\"microsoft_365\"} 1"), "{text}");
    assert!(text.contains(
        "avepoint_exporter_target_up{customer_id=\"limited\",tenant_type=\"microsoft_365\"} 0"
    ));
    assert!(
        text.contains("avepoint_exporter_api_requests_total{code=\"429\",endpoint=\"tenants\"} 2")
    );
    // Unpaced until then, the client now paces itself at half the rate it was sending at.
    assert!(!text.contains("avepoint_exporter_api_rate_limit_requests_per_second 0\n"));
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn a_truncated_body_marks_the_target_down_with_its_first_bytes_logged() {
    let tokens = FakeApi::start(|_| token_reply(1)).await;
    // An API that promises 5000 bytes, sends the start of a page and closes the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"data\":[{\"tenantId\":\"cut-here")
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        &dir,
        &format!("http://{api_addr}"),
        &tokens.base_url(),
        TEST_LIMITS,
        &one_target("1h"),
    );
    let exporter = Exporter::in_process(&config).await;
    let text = exporter
        .metrics_when("a failed poll", |t| {
            t.contains("avepoint_exporter_target_errors_total{")
        })
        .await;
    assert!(text.contains("avepoint_exporter_target_errors_total{cause=\"parse\",customer_id=\"c\",tenant_type=\"microsoft_365\"} 1"), "{text}");
    let line = exporter.log_line("target poll failed").await;
    assert!(line.contains("truncated"), "{line}");
    assert!(line.contains("status 200"), "{line}");
    assert!(line.contains("application/json"), "{line}");
    assert!(line.contains("cut-here"), "{line}");
}

/// A fake API where customer `c`'s Salesforce tenants appear once `appear` is set, customer
/// `broken` always fails, and every other target has one Microsoft 365 tenant.
async fn cadence_api(appear: Arc<std::sync::atomic::AtomicBool>) -> FakeApi {
    FakeApi::with_tokens(move |r| {
        if r.path.contains("/customers/broken/") {
            return Reply::status(500, "text/plain", "down");
        }
        let kind = r.path.split('/').nth(9).unwrap_or("");
        let records = match kind {
            "0" => vec![record("m365", "M365", 10, 5)],
            "1" if appear.load(Ordering::SeqCst) => vec![record("sf", "SF", 3, 2)],
            _ => Vec::new(),
        };
        Reply::json(envelope(&records, 1, 100, records.len()))
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn empty_tenant_types_are_polled_every_empty_interval_and_found_when_tenants_appear() {
    let appear = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let api = cadence_api(appear.clone()).await;
    let (_dir, exporter) = in_process_on(
        &api,
        "poll:\n  interval: 1m\n  empty_interval: 10m\ncustomers:\n  - id: c\n    tenant_types: [0, 1, 2]\n  - id: broken\n    tenant_types: [0]\n",
    )
    .await;
    let text = exporter.first_cycle().await;
    // Empty targets are up, with 0 tenants, and counted.
    assert_eq!(
        counter(&text, "avepoint_exporter_empty_targets"),
        Some(2.0),
        "{text}"
    );
    assert!(text.contains(
        "avepoint_exporter_target_tenants{customer_id=\"c\",tenant_type=\"salesforce\"} 0"
    ));
    assert!(text
        .contains("avepoint_exporter_target_up{customer_id=\"c\",tenant_type=\"salesforce\"} 1"));
    // 25 minutes: Microsoft 365 (and the failing target) every minute, the empty types once
    // at start and about every ten minutes after.
    let start = Instant::now();
    let until = start + Duration::from_secs(25 * 60);
    let mut found_at = None;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if Instant::now() >= start + Duration::from_secs(12 * 60) {
            // A Salesforce tenant appears 12 minutes in.
            appear.store(true, Ordering::SeqCst);
        }
        if found_at.is_none() {
            let (_, t) = exporter.get("/metrics").await;
            if t.contains("tenant_id=\"sf\"") {
                found_at = Some(Instant::now() - start);
                assert_eq!(counter(&t, "avepoint_exporter_empty_targets"), Some(1.0));
            }
        }
    }
    let polls = |customer: &str, kind: u8| api.requests_to(customer, kind).len();
    assert!((24..=27).contains(&polls("c", 0)), "{}", polls("c", 0));
    assert!(
        (24..=27).contains(&polls("broken", 0)),
        "a failing target keeps the interval: {}",
        polls("broken", 0)
    );
    // Google stayed empty: at start and at about 10 and 20 minutes.
    assert!((3..=4).contains(&polls("c", 2)), "{}", polls("c", 2));
    // Salesforce: found within one empty interval of appearing (by 22 minutes), then every
    // minute again.
    let found_at = found_at.expect("the new Salesforce tenant was never found");
    assert!(
        found_at <= Duration::from_secs(22 * 60 + 30),
        "{found_at:?}"
    );
    let after: Vec<_> = api
        .requests_to("c", 1)
        .into_iter()
        .filter(|r| r.at >= start + found_at)
        .collect();
    assert!(after.len() >= 2, "back on the interval: {}", after.len());
}

#[test]
fn check_config_refuses_an_empty_interval_below_the_interval_and_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let head = "elements:\n  token_url: https://id.example.com/t\n  client_id: x\n  client_secret: y\n  max_requests_per_second: 10\n";
    let (code, _, err) = check_config_of(
        dir.path(),
        &format!("{head}poll:\n  interval: 5m\n  empty_interval: 1m\ncustomers:\n  - id: a\n"),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("poll.empty_interval: 1m is shorter than poll.interval (5m)"),
        "{err}"
    );
    // The default, and what the round estimate says about it.
    let (code, out, _) = check_config_of(
        dir.path(),
        &format!("{head}poll:\n  interval: 5m\ncustomers:\n  - id: a\n  - id: b\n"),
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("empty_interval: 1h (targets whose last poll found no tenants)"),
        "{out}"
    );
    assert!(
        out.contains("8 targets x at least 1 page / 10 requests per second = at least 1s per round; poll.interval is 5m (the first round, and the worst case; targets found empty are then polled every 1h: with three in four empty, as in a typical MSP fleet, about 1s per round)"),
        "{out}"
    );
}
