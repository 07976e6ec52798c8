//! A misbehaving API or operator never costs data or uptime: fault injection in the fake API,
//! driven through the daemon in-process on paused time (retries, backoff, Retry-After and
//! token lifetimes in virtual seconds), checked on `/metrics` and in the log. SIGTERM goes
//! to the real binary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

use crate::common::*;

/// The value of the one series of `metric` whose line contains every one of `labels`.
/// Page `index` (1-based) of a bare-array target that never ends: one fresh tenant per page.
fn endless_page(r: &Recorded) -> Reply {
    let i = page_index(r);
    Reply::json(serde_json::json!([record(&format!("t{i}"), "T", 1, 1)]).to_string())
}

#[tokio::test(start_paused = true)]
async fn every_fault_is_counted_by_cause_and_only_transient_ones_are_retried() {
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    let fc = flaky_calls.clone();
    let huge = Reply::huge(20 * 1024 * 1024);
    let api = FakeApi::with_tokens(move |r| {
        let customer = r.path.split('/').nth(6).unwrap_or("");
        match customer {
            "err500" => Reply::status(500, "text/plain", "internal error"),
            "flaky" => {
                if fc.fetch_add(1, Ordering::SeqCst) < 2 {
                    // Retry-After as an HTTP date, two seconds ahead.
                    let at = SystemTime::now() + Duration::from_secs(2);
                    Reply::status(503, "text/plain", "unavailable")
                        .with_header("retry-after", httpdate::fmt_http_date(at))
                } else {
                    // A duplicate tenant is merged (the last record wins). The server ignores
                    // page_size 1 and sends both records at once, counted in totalCount: the
                    // one distinct tenant is asked a second page for, which is empty.
                    if page_index(r) > 1 {
                        return Reply::json(envelope(&[], page_index(r), 2, 2));
                    }
                    Reply::json(envelope(
                        &[record("a", "A", 1, 1), record("a", "A", 7, 2)],
                        1,
                        2,
                        2,
                    ))
                }
            }
            "html" => Reply::html(),
            "truncjson" => Reply::truncated_json(),
            "notfound" => Reply::status(404, "application/json", r#"{"message":"no customer"}"#),
            "forbidden" => Reply::status(403, "application/json", r#"{"message":"scope"}"#),
            "badreq" => Reply::status(400, "application/json", r#"{"message":"bad"}"#),
            "huge" => huge.clone(),
            "endlessbody" => Reply::endless_body(),
            "unauth" => Reply::status(401, "application/json", r#"{"message":"token"}"#),
            "hang" => Reply::hang(),
            "endless" => endless_page(r),
            _ => Reply::status(418, "text/plain", "unexpected customer"),
        }
    })
    .await;
    let customers = [
        "err500",
        "flaky",
        "html",
        "truncjson",
        "notfound",
        "forbidden",
        "badreq",
        "huge",
        "endlessbody",
        "unauth",
        "hang",
        "endless",
    ];
    let list: String = customers
        .iter()
        .map(|c| format!("  - id: {c}\n    tenant_types: [0]\n"))
        .collect();
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 1s\n  retries: 2\n  page_size: 1\n  max_concurrency: 8\n  max_requests_per_second: 0\n",
        &format!("\
poll:
  interval: 1h
customers:
{list}"),
    )
    .await;
    let text = exporter.first_cycle().await;
    let expect = [
        ("err500", "http_5xx"),
        ("html", "parse"),
        ("truncjson", "parse"),
        ("notfound", "http_4xx"),
        ("forbidden", "http_4xx"),
        ("badreq", "http_4xx"),
        ("huge", "too_large"),
        // Cut while streaming: a client that buffered first would run into its timeout.
        ("endlessbody", "too_large"),
        ("unauth", "http_4xx"),
        ("hang", "timeout"),
        ("endless", "parse"),
    ];
    for (customer, cause) in expect {
        assert_eq!(
            errors(&text, customer, cause),
            Some(1.0),
            "{customer}\n{text}"
        );
        assert_eq!(up(&text, customer), Some(0.0), "{customer}");
    }
    assert_eq!(up(&text, "flaky"), Some(1.0));
    assert_eq!(
        series(&text, "available_user_seats"),
        vec!["available_user_seats{customer_id=\"flaky\",customer_name=\"flaky\",tenant_type=\"microsoft_365\",tenant_id=\"a\",tenant_name=\"A\"} 7"]
    );
    // Requests per customer: transient faults are retried (1 + retries), final ones are not.
    let mut sent: HashMap<String, usize> = HashMap::new();
    for r in api.tenant_requests() {
        *sent
            .entry(r.path.split('/').nth(6).unwrap_or("").to_owned())
            .or_default() += 1;
    }
    for (customer, n) in [
        ("err500", 3),
        ("flaky", 4), // page 1 three times, then the empty page 2 (one distinct tenant of 2)
        ("hang", 3),
        ("html", 1),
        ("truncjson", 1),
        ("notfound", 1),
        ("forbidden", 1),
        ("badreq", 1),
        ("huge", 1),
        ("endlessbody", 1),
        ("unauth", 2), // once more with a fresh token, then final
        ("endless", 1000),
    ] {
        assert_eq!(sent.get(customer), Some(&n), "requests to {customer}");
    }
    // Every attempt is counted by status.
    let requests = |code: &str| {
        value(
            &text,
            "avepoint_exporter_api_requests_total",
            &[&format!("code=\"{code}\""), "endpoint=\"tenants\""],
        )
    };
    assert_eq!(requests("500"), Some(3.0));
    assert_eq!(requests("503"), Some(2.0));
    assert_eq!(requests("404"), Some(1.0));
    assert_eq!(requests("401"), Some(2.0));
    // The 3 timeouts got no status; the two oversized bodies came with 200, counted as such.
    assert_eq!(requests("error"), Some(3.0));
    // 200s: flaky twice (its two pages), html, truncjson, huge, endlessbody once each, and
    // endless's 1000 pages.
    assert_eq!(requests("200"), Some(1006.0));
    // The 503's Retry-After date was honoured (a backoff alone waits at most 0.5 s).
    let flaky: Vec<Instant> = api.requests_to("flaky", 0).iter().map(|r| r.at).collect();
    assert!(
        flaky[1] - flaky[0] >= Duration::from_millis(900),
        "{:?}",
        flaky[1] - flaky[0]
    );
    // Final errors are logged once per cycle and target at debug level, with what the
    // server said; at warn, one line per cause.
    let log = exporter.log_text();
    let failed = |customer: &str| {
        log.lines()
            .filter(|l| {
                l.contains("target poll error") && l.contains(&format!("customer_id={customer} "))
            })
            .collect::<Vec<_>>()
    };
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level=warn") && l.contains("target poll failed"))
        .collect();
    let mut causes: Vec<&str> = warned
        .iter()
        .filter_map(|l| l.split("cause=").nth(1)?.split_whitespace().next())
        .collect();
    let lines = causes.len();
    causes.sort();
    causes.dedup();
    assert_eq!(causes.len(), lines, "one warning per cause: {warned:#?}");
    assert!(causes.contains(&"http_4xx"), "{warned:#?}");
    assert_eq!(failed("notfound").len(), 1, "{log}");
    assert!(failed("notfound")[0].contains("404"), "{log}");
    assert!(failed("html")[0].contains("text/html"), "{log}");
    assert!(failed("html")[0].contains("Gateway says hello"), "{log}");
    assert!(failed("endless")[0].contains("1000 full pages"), "{log}");
    for customer in ["huge", "endlessbody"] {
        assert!(
            failed(customer)[0].contains("larger than 16777216 bytes"),
            "{customer}: {log}"
        );
    }
    assert_eq!(failed("unauth").len(), 1, "{log}");
    assert!(failed("unauth")[0].contains("401"), "{log}");
    // Still serving.
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_every_request_and_cuts_the_rate_then_it_recovers() {
    let throttled = Arc::new(AtomicUsize::new(0));
    let t2 = throttled.clone();
    let api = FakeApi::with_tokens(move |r| {
        if r.path == tenants_path("limited", 0) && t2.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::too_many("2");
        }
        Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let others = numbered("c", 8, "0");
    let config = write_config_with(
        &dir,
        &api.base_url(),
        &api.base_url(),
        "  retries: 1\n  max_concurrency: 16\n  max_requests_per_second: 4\n",
        &format!(
            "\
poll:
  interval: 1h
customers:
  - id: limited
    tenant_types: [0]
{others}"
        ),
    );
    let exporter = Exporter::in_process(&config).await;
    let text = exporter
        .metrics_when("all 9 targets up", |t| {
            series(t, "avepoint_exporter_target_up")
                .iter()
                .filter(|l| l.ends_with(" 1"))
                .count()
                == 9
        })
        .await;
    let reqs = api.requests();
    let at_429 = reqs
        .iter()
        .find(|r| r.path == tenants_path("limited", 0))
        .unwrap()
        .at;
    // Nothing reached the API while the client waited out Retry-After (2 s), whichever target.
    let after: Vec<Duration> = reqs
        .iter()
        .filter(|r| r.at > at_429)
        .map(|r| r.at - at_429)
        .collect();
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|d| *d < Duration::from_millis(100) || *d >= Duration::from_millis(1950)),
        "requests during the pause: {after:?}"
    );
    // The rate was halved (4 → 2) and has been raised a little by the successes since.
    let rate = value(
        &text,
        "avepoint_exporter_api_rate_limit_requests_per_second",
        &[],
    )
    .unwrap();
    assert!(rate > 2.0 && rate < 4.0, "rate {rate}");
    // No one-second window holds more than the configured 4 requests.
    let times: Vec<Instant> = reqs.iter().map(|r| r.at).collect();
    for a in &times {
        let within = times
            .iter()
            .filter(|b| **b >= *a && **b - *a < Duration::from_millis(950))
            .count();
        assert!(within <= 4, "{within} requests within a second");
    }
    exporter.log_line("API is throttling (429)").await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_marks_every_target_down_with_one_request_and_no_secret_in_the_log() {
    let api = FakeApi::start(|r| {
        if r.path == "/token" {
            // Some servers echo the request; the secret must still not reach the log.
            return Reply::status(
                400,
                "application/json",
                format!(
                    r#"{{"error":"invalid_client","error_description":"bad credentials in {}"}}"#,
                    r.body
                ),
            );
        }
        Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1))
    })
    .await;
    let list = numbered("c", 5, "0, 2");
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  retries: 3\n  max_requests_per_second: 0\n",
        &format!(
            "\
poll:
  interval: 1h
customers:
{list}"
        ),
    )
    .await;
    let text = exporter.first_cycle().await;
    assert_eq!(
        series(&text, "avepoint_exporter_target_errors_total")
            .iter()
            .filter(|l| l.contains("cause=\"token\"") && l.ends_with(" 1"))
            .count(),
        10
    );
    assert_eq!(
        series(&text, "avepoint_exporter_target_up")
            .iter()
            .filter(|l| l.ends_with(" 0"))
            .count(),
        10
    );
    // 400 is final (not retried) and shared by everyone who waited for it.
    assert_eq!(api.token_requests().len(), 1);
    assert!(api.tenant_requests().is_empty());
    // One line for all of them: the ten targets down, counted together.
    let line = exporter.log_line("cannot get an access token").await;
    assert!(line.contains("down=10 failed_polls=10"), "{line}");
    let summary = exporter.log_line("first pass complete").await;
    assert!(summary.contains("requests_sent=1 "), "{summary}");
    // A pass in which every target failed is a warning, not news.
    let summary = exporter.log_line("first pass complete").await;
    assert!(
        summary.contains("level=warn") && summary.contains("every target failed"),
        "{summary}"
    );
    assert!(line.contains("client_id \\\"my-client\\\""), "{line}");
    assert!(line.contains("invalid_client"), "{line}");
    let log = exporter.log_text();
    assert!(!log.contains("my-very-secret-value"), "{log}");
    assert!(
        log.contains("client_secret=<redacted>"),
        "the echoed secret was redacted: {log}"
    );
}

#[tokio::test(start_paused = true)]
async fn short_lived_tokens_are_refreshed_before_they_expire() {
    // Tokens live 2 s; the API refuses one that is older.
    let issued: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let rejected = Arc::new(AtomicUsize::new(0));
    let (i2, r2) = (issued.clone(), rejected.clone());
    let mut n = 0;
    let api = FakeApi::start(move |r| {
        if r.path == "/token" {
            n += 1;
            i2.lock().unwrap().insert(format!("Bearer tok-{n}"), r.at);
            return Reply::json(format!(
                r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":2}}"#
            ));
        }
        let age = r
            .authorization
            .as_ref()
            .and_then(|a| i2.lock().unwrap().get(a).map(|t| r.at - *t));
        match age {
            Some(age) if age < Duration::from_secs(2) => {
                Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1))
            }
            _ => {
                r2.fetch_add(1, Ordering::SeqCst);
                Reply::status(401, "application/json", r#"{"message":"token expired"}"#)
            }
        }
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1s
customers:
  - id: c
    tenant_types: [0, 1]
",
    )
    .await;
    // Two targets polled every second: five polls each.
    exporter.polls(10).await;
    assert_eq!(
        rejected.load(Ordering::SeqCst),
        0,
        "a request carried an expired token"
    );
    assert!(api.token_requests().len() >= 2, "tokens were refreshed");
    assert!(api.tenant_requests().len() >= 10);
}

#[tokio::test(start_paused = true)]
async fn a_slow_target_is_late_not_down_and_the_others_keep_their_schedule() {
    // `slow` answers after 2.5 s, far more than its 1 s interval.
    let api = FakeApi::with_tokens(|r| {
        let reply = Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1));
        if r.path == tenants_path("slow", 0) {
            return reply.delayed(Duration::from_millis(2500));
        }
        reply
    })
    .await;
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 30s\n  retries: 0\n  max_requests_per_second: 0\n",
        &targets("1s", &["slow", "fast"]),
    )
    .await;
    let text = exporter
        .metrics_when("three polls of the slow target and an overrun", |t| {
            let slow = api.requests_to("slow", 0).len();
            slow >= 3
                && value(t, "avepoint_exporter_poll_overruns_total", &[]).unwrap_or(0.0) >= 1.0
        })
        .await;
    // Late is not down: nothing was cut, nothing failed.
    assert_eq!(up(&text, "slow"), Some(1.0), "{text}");
    assert_eq!(up(&text, "fast"), Some(1.0));
    assert!(
        !text.contains("avepoint_exporter_target_errors_total{"),
        "{text}"
    );
    let at = |customer: &str| -> Vec<Instant> {
        api.requests_to(customer, 0).iter().map(|r| r.at).collect()
    };
    // The slow target is never polled twice at once: each poll starts after the last ended.
    for pair in at("slow").windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(2500), "{pair:?}");
    }
    // The fast one keeps its slot: one poll a second.
    let fast = at("fast");
    assert!(fast.len() >= 5, "{}", fast.len());
    for pair in fast[1..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1100),
            "{gap:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_targets_drops_removed_ones_and_polls_new_ones_at_once() {
    let stay_fails = Arc::new(AtomicUsize::new(0));
    let sf = stay_fails.clone();
    let api = FakeApi::with_tokens(move |r| {
        if r.path == tenants_path("stay", 0) && sf.load(Ordering::SeqCst) == 1 {
            return Reply::status(503, "text/plain", "down for now");
        }
        let customer = r.path.split('/').nth(6).unwrap_or("");
        Reply::json(envelope(
            &[record(&format!("{customer}-t"), "T", 4, 1)],
            1,
            100,
            1,
        ))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &api,
        "\
poll:
  interval: 1h
customers:
  - id: stay
    name: Old Name
    tenant_types: [0]
  - id: leave
    tenant_types: [0]
",
    );
    let exporter = Exporter::in_process(&config).await;
    let before = exporter.first_poll().await;
    assert!(before.contains("customer_id=\"leave\""));
    let reload_ts = |t: &str| {
        value(
            t,
            "avepoint_exporter_config_last_reload_success_timestamp_seconds",
            &[],
        )
        .unwrap()
    };
    let loaded_at = reload_ts(&before);
    // From now on `stay` cannot be polled: a reload must not poll it (it is not due for an
    // hour), and its series survive the reload.
    stay_fails.store(1, Ordering::SeqCst);
    write_config(
        &dir,
        &api,
        "\
poll:
  interval: 1h
customers:
  - id: stay
    name: New Name
    tenant_types: [0]
  - id: new
    tenant_types: [0]
",
    );
    let (status, _) = exporter.post("/-/reload").await;
    assert_eq!(status, 200);
    // The new customer is polled at once (the interval is an hour). Its poll's result, not
    // its name (customer_info names it as soon as the reload is planned, before the poller
    // has the plan), says the poller has applied the reload.
    let text = exporter
        .metrics_when("the new customer", |t| {
            t.contains("avepoint_exporter_target_up{customer_id=\"new\"")
        })
        .await;
    assert!(
        !text.contains("customer_id=\"leave\""),
        "removed customer's series go"
    );
    assert_eq!(up(&text, "stay"), Some(1.0));
    let stay_polls = api.requests_to("stay", 0).len();
    assert_eq!(stay_polls, 1, "a reload polls only new targets");
    assert!(
        text.contains("available_user_seats{customer_id=\"stay\",customer_name=\"New Name\",tenant_type=\"microsoft_365\",tenant_id=\"stay-t\",tenant_name=\"T\"} 4"),
        "unchanged target kept its last-good series, relabelled: {text}"
    );
    assert!(reload_ts(&text) >= loaded_at);
    // The API settings did not change: the running client and its token were kept.
    assert_eq!(api.token_requests().len(), 1);
    // Changed API settings build a new client, which fetches its own token for the next
    // poll (here: a customer added with it).
    write_config_with(
        &dir,
        &api.base_url(),
        &api.base_url(),
        "  timeout: 4s\n  retries: 0\n  max_requests_per_second: 0\n",
        "\
poll:
  interval: 1h
customers:
  - id: stay
    name: New Name
    tenant_types: [0]
  - id: new
    tenant_types: [0]
  - id: third
    tenant_types: [0]
",
    );
    let (status, _) = exporter.post("/-/reload").await;
    assert_eq!(status, 200);
    let start = Instant::now();
    while api.token_requests().len() < 2 {
        assert!(start.elapsed() < DEADLINE, "no token for the new client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An invalid file: 500 with the reason, the log names the key, the old config runs on.
    write_config(
        &dir,
        &api,
        "\
poll:
  interval: 1h
  stale_after: 1m
customers:
  - id: stay
",
    );
    let (status, body) = exporter.post("/-/reload").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("poll.stale_after: 1m is shorter than poll.interval"),
        "{body}"
    );
    let line = exporter.log_line("config reload failed").await;
    assert!(line.contains("poll.stale_after"), "{line}");
    let (_, text) = exporter.get("/metrics").await;
    assert!(text.contains("avepoint_exporter_config_last_reload_successful 0"));
    assert!(text.contains("customer_id=\"new\""));
    assert!(text.contains("customer_name=\"New Name\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_requests_in_flight_exits_0_within_5s() {
    let api = FakeApi::with_tokens(|_| Reply::hang()).await;
    let (_dir, mut exporter) = start_with_limits(
        &api,
        "  timeout: 60s\n  retries: 3\n  max_concurrency: 4\n  max_requests_per_second: 0\n",
        "\
poll:
  interval: 1h
customers:
  - id: a
  - id: b
",
    );
    // Wait until four requests hang in flight.
    let start = Instant::now();
    while api.tenant_requests().len() < 4 {
        assert!(start.elapsed() < DEADLINE, "requests never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = exporter.signal_and_wait("TERM", Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn tokens_that_expire_at_once_do_not_loop() {
    let api = FakeApi::start(|r| {
        if r.path == "/token" {
            return Reply::json(r#"{"access_token":"tok","token_type":"Bearer","expires_in":0}"#);
        }
        Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1))
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1h")).await;
    let text = exporter.first_cycle().await;
    assert!(
        text.contains("available_user_seats{customer_id=\"c\""),
        "{text}"
    );
    // At most two tokens for the one data request: fetched, stale before sending, fetched again.
    assert!(
        api.token_requests().len() <= 2,
        "{}",
        api.token_requests().len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_and_counted_as_connect() {
    let api =
        FakeApi::with_tokens(|_| Reply::status(418, "text/plain", "the API host is not this one"))
            .await;
    // A port nobody listens on: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        &dir,
        &dead,
        &api.base_url(),
        "  timeout: 2s\n  retries: 2\n  max_requests_per_second: 0\n",
        &one_target("1h"),
    );
    let exporter = Exporter::in_process(&config).await;
    let text = exporter.first_cycle().await;
    assert_eq!(errors(&text, "c", "connect"), Some(1.0), "{text}");
    assert_eq!(up(&text, "c"), Some(0.0));
    // Three attempts (1 + retries), each counted with code "error".
    assert_eq!(
        value(
            &text,
            "avepoint_exporter_api_requests_total",
            &["code=\"error\"", "endpoint=\"tenants\""]
        ),
        Some(3.0),
        "{text}"
    );
    assert!(api.tenant_requests().is_empty());
    let line = exporter.log_line("target poll failed").await;
    assert!(line.contains("connect"), "{line}");
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_an_hour_delays_the_target_by_one_interval_at_most() {
    let calls = AtomicUsize::new(0);
    let api = FakeApi::with_tokens(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // An hour: honoured as is, the target would go unpolled for that long.
            Reply::status(503, "text/plain", "maintenance").with_header("retry-after", "3600")
        } else {
            Reply::json(envelope(&[record("a", "A", 4, 2)], 1, 100, 1))
        }
    })
    .await;
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 5s\n  retries: 3\n  max_requests_per_second: 0\n",
        &one_target("2s"),
    )
    .await;
    let text = exporter
        .metrics_when("seats after the 503", |t| {
            t.contains("available_user_seats{") && t.contains("assigned_user_seats{")
        })
        .await;
    assert_eq!(
        value(&text, "available_user_seats", &["customer_id=\"c\""]),
        Some(4.0)
    );
    let at: Vec<Instant> = api.tenant_requests().iter().map(|r| r.at).collect();
    let gap = at[1] - at[0];
    assert!(
        gap >= Duration::from_millis(1500) && gap < Duration::from_secs(6),
        "second request {gap:?} after the 503"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_endpoint_asking_for_an_hour_is_asked_again_within_seconds() {
    let sick = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let api = {
        let sick = sick.clone();
        FakeApi::start(move |r| {
            if r.path == "/token" {
                if sick.load(Ordering::SeqCst) {
                    return Reply::status(503, "text/plain", "down for maintenance")
                        .with_header("retry-after", "3600");
                }
                return token_reply(1);
            }
            Reply::json(envelope(&[record("a", "A", 1, 1)], 1, 100, 1))
        })
        .await
    };
    let list = numbered("c", 5, "0, 2");
    let started = Instant::now();
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 5s\n  retries: 3\n  max_requests_per_second: 0\n",
        &format!("poll:\n  interval: 1h\ncustomers:\n{list}"),
    )
    .await;
    // Every waiter shares one fetch, whose retries wait 5 s at most, not the hour asked for:
    // the polls fail within seconds.
    while exporter.get("/-/ready").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no first pass within 40 s (virtual); log:\n{}",
            exporter.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = exporter.get("/metrics").await.1;
    assert_eq!(
        series(&text, "avepoint_exporter_target_up")
            .iter()
            .filter(|l| l.ends_with(" 0"))
            .count(),
        10,
        "{text}"
    );
    assert_eq!(
        api.token_requests().len(),
        4,
        "one fetch: the request and 3 retries"
    );
    let line = exporter.log_line("cannot get an access token").await;
    assert!(line.contains("status 503"), "{line}");
    // The endpoint recovers: the next round (an interval later) gets a token and the seats.
    sick.store(false, Ordering::SeqCst);
    let recovered = Instant::now();
    loop {
        // A new connection each time: a pooled one idles out over the virtual hour.
        let text = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(exporter.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let up = series(&text, "avepoint_exporter_target_up")
            .iter()
            .filter(|l| l.ends_with(" 1"))
            .count();
        if up == 10 {
            assert_eq!(
                value(&text, "available_user_seats", &["customer_id=\"c0\""]),
                Some(1.0)
            );
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(2 * 3600),
            "not recovered within two intervals: {text}"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    assert_eq!(api.token_requests().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn every_log_line_of_a_targets_poll_names_the_target_retries_included() {
    let calls = AtomicUsize::new(0);
    let api = FakeApi::with_tokens(move |r| {
        if r.path.contains("/customers/c1/") && calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::status(503, "text/plain", "busy");
        }
        Reply::json(envelope(&[record("a", "A", 4, 2)], 1, 100, 1))
    })
    .await;
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 5s\n  retries: 2\n  max_requests_per_second: 0\n",
        &targets("1h", &["c0", "c1"]),
    )
    .await;
    exporter.first_cycle().await;
    let log = exporter.log_text();
    let story: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("customer_id=c1 "))
        .collect();
    // The tenants requests (the 503 and its retry), the retry itself and the result.
    let requests: Vec<&&str> = story
        .iter()
        .filter(|l| l.contains("msg=request") && l.contains("endpoint=tenants"))
        .collect();
    assert_eq!(requests.len(), 2, "{story:#?}");
    assert!(requests[0].contains("status=503"), "{}", requests[0]);
    assert!(
        story.iter().any(|l| l.contains("msg=\"retrying request\"")),
        "{story:#?}"
    );
    assert!(
        story.iter().any(|l| l.contains("msg=\"target polled\"")),
        "{story:#?}"
    );
    assert!(
        story
            .iter()
            .all(|l| l.contains("tenant_type=microsoft_365")),
        "{story:#?}"
    );
    // None of c0's lines.
    assert!(!story.iter().any(|l| l.contains("c0")), "{story:#?}");
}
