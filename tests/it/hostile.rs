//! A hostile API, network and config (in-process on paused time; the connection flood against
//! the binary): no secret leaves, nothing freezes, memory stays bounded. Each case was found by an adversarial probe; each stays fixed here.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

fn ok_page() -> Reply {
    Reply::json(envelope(&[record("a", "A", 5, 1)], 1, 100, 1))
}

/// A fake API that issues tokens and answers every target with one tenant.
async fn healthy_api() -> FakeApi {
    FakeApi::with_tokens(|_| ok_page()).await
}

/// A fake API on another origin that records whatever reaches it.
async fn elsewhere() -> FakeApi {
    FakeApi::start(|r| {
        if r.path == "/token" {
            return Reply::json(
                r#"{"access_token":"stolen-token","token_type":"Bearer","expires_in":3600}"#,
            );
        }
        Reply::json(envelope(&[record("evil", "Evil", 999, 0)], 1, 100, 1))
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn redirects_to_another_origin_are_refused_for_tokens_and_data() {
    for status in [307u16, 302] {
        let other = elsewhere().await;
        let location = format!("{}/token", other.base_url());
        let api = FakeApi::start(move |r| {
            if r.path == "/token" {
                return Reply::status(status, "text/plain", "moved")
                    .with_header("location", location.clone());
            }
            ok_page()
        })
        .await;
        let (_dir, exporter) = in_process_on(&api, &one_target("1h")).await;
        let text = exporter.first_cycle().await;
        assert_eq!(errors(&text, "c", "token"), Some(1.0), "{text}");
        assert!(
            other.requests().is_empty(),
            "{status}: the secret went elsewhere"
        );
        let line = exporter.log_line("cannot get an access token").await;
        assert!(line.contains(&format!("redirect ({status}) to")), "{line}");
        assert!(line.contains(&other.addr.to_string()), "{line}");
    }
    // Data: a redirect to another origin carries neither the bearer token nor brings back
    // another host's tenants.
    let other = elsewhere().await;
    let to = other.base_url();
    let api = FakeApi::with_tokens(move |r| {
        Reply::status(302, "text/plain", "moved").with_header("location", format!("{to}{}", r.path))
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1h")).await;
    let text = exporter.first_cycle().await;
    assert_eq!(errors(&text, "c", "connect"), Some(1.0), "{text}");
    assert!(!text.contains("evil"), "{text}");
    assert!(other.requests().is_empty());
}

#[tokio::test(start_paused = true)]
async fn echoed_credentials_never_reach_the_log_or_the_landing_page() {
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZw";
    let api = FakeApi::start(move |r| {
        if r.path == "/token" {
            return Reply::json(format!(
                r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":3600}}"#
            ));
        }
        let auth = r.authorization.clone().unwrap_or_default();
        Reply::status(
            403,
            "application/json",
            format!(r#"{{"message":"forbidden for {auth}; raw token {jwt}"}}"#),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    // A secret that changes under form and percent encoding.
    let write_secret_config = |api: &FakeApi| {
        std::fs::write(
            &config,
            format!(
                "\
elements:
  base_url: {b}
  token_url: {b}/token
  client_id: my-client
  client_secret: \"Abc+Def/ghi=\"
  retries: 0
  max_requests_per_second: 0
{target}",
                b = api.base_url(),
                target = one_target("1h"),
            ),
        )
        .unwrap();
    };
    write_secret_config(&api);
    let exporter = Exporter::in_process(&config).await;
    let text = exporter.first_cycle().await;
    assert_eq!(errors(&text, "c", "http_4xx"), Some(1.0), "{text}");
    let line = exporter.log_line("target poll failed").await;
    assert!(line.contains("forbidden for Bearer <redacted>"), "{line}");
    let (_, page) = exporter.get("/").await;
    assert!(page.contains("http_4xx (HTTP 403)"), "{page}");
    for shown in [exporter.log_text(), page] {
        assert!(!shown.contains("eyJ"), "a token was shown: {shown}");
        assert!(!shown.contains("Abc"), "the secret was shown: {shown}");
        assert!(!shown.contains("forbidden for Bearer eyJ"), "{shown}");
    }

    // A token endpoint that echoes the form body (the secret URL-encoded) when it refuses.
    let api = FakeApi::start(|r| {
        Reply::status(
            400,
            "application/json",
            format!(
                r#"{{"error":"invalid_client","error_description":"{}"}}"#,
                r.body
            ),
        )
    })
    .await;
    write_secret_config(&api);
    let exporter = Exporter::in_process(&config).await;
    exporter.first_cycle().await;
    let line = exporter.log_line("cannot get an access token").await;
    assert!(line.contains("client_secret=<redacted>"), "{line}");
    assert!(
        !exporter.log_text().contains("Abc"),
        "{}",
        exporter.log_text()
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_a_device_or_a_deep_file_never_freezes_start_or_reload() {
    // Real time (the binary): a freeze must show as time, which a paused clock would hide.
    use std::time::Instant;
    let api = healthy_api().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // At start: exit 1 at once, naming the cause.
    for bad in [fifo.to_str().unwrap(), "/dev/zero"] {
        let started = Instant::now();
        let err = fails_with_1(&["--config.file", bad], dir.path());
        assert!(err.contains("not a regular file"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // At reload: refused with the reason, and scrapes never wait for it.
    let config = write_config(&dir, &api, &one_target("1h"));
    let exporter = Exporter::start(&["--config.file", config.to_str().unwrap()]);
    exporter.first_poll().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deep = format!(
        "{}customers: {}{}\n",
        std::fs::read_to_string(&config).unwrap(),
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (name, replace) in [("fifo", None), ("deep", Some(deep))] {
        std::fs::remove_file(&config).unwrap();
        match &replace {
            None => {
                std::process::Command::new("mkfifo")
                    .arg(&config)
                    .status()
                    .unwrap();
            }
            Some(text) => std::fs::write(&config, text).unwrap(),
        }
        let started = Instant::now();
        let resp = client.post(exporter.url("/-/reload")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 500, "{name}");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("not a regular file") || body.contains("nested deeper than 64"),
            "{name}: {body}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{name}");
        let (status, _) = exporter.get("/-/healthy").await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_at_the_limit_make_room_for_real_scrapes() {
    let api = healthy_api().await;
    let (_dir, exporter) = start_on(&api, &one_target("1h"));
    exporter.first_poll().await;
    // More idle connections than the default --web.max-connections 512.
    let idle: Vec<TcpStream> = (0..520)
        .filter_map(|_| TcpStream::connect(exporter.addr).ok())
        .collect();
    assert!(idle.len() >= 512);
    let mut ok = 0;
    for _ in 0..25 {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        if let Ok(resp) = client.get(exporter.url("/metrics")).send().await {
            ok += usize::from(resp.status().as_u16() == 200);
        }
    }
    assert_eq!(ok, 25, "real scrapes served among idle connections");
    drop(idle);
}

#[tokio::test(start_paused = true)]
async fn a_target_that_sends_too_much_fails_alone_and_keeps_its_last_good_series() {
    let hostile = Arc::new(AtomicUsize::new(0));
    let h = hostile.clone();
    // Pages of 100 records padded to 10 MiB (whitespace: valid JSON, cheap to parse), and a
    // totalCount that asks for 20 of them: 200 MiB if all were read.
    let records: Vec<_> = (0..100)
        .map(|i| record(&format!("h{i}"), "H", 1, 1))
        .collect();
    let mut body = envelope(&records, 1, 100, 2000);
    body.push_str(&" ".repeat(10 * 1024 * 1024));
    let big = Reply::json(body);
    let api = FakeApi::with_tokens(move |r| {
        if r.path == tenants_path("ignores", 0) {
            // Ignores pageSize: all 250 records on every page.
            let all: Vec<_> = (0..250)
                .map(|i| record(&format!("t{i}"), "T", 1, 1))
                .collect();
            return Reply::json(envelope(&all, page_index(r), 250, 250));
        }
        if h.load(Ordering::SeqCst) == 0 {
            return ok_page();
        }
        big.clone()
    })
    .await;
    let (_dir, exporter) = in_process_on(
        &api,
        "\
poll:
  interval: 1s
  stale_after: 1h
customers:
  - id: c
    tenant_types: [0]
  - id: ignores
    tenant_types: [0]
",
    )
    .await;
    exporter.first_poll().await;
    let ignores = api.requests_to("ignores", 0).len();
    assert_eq!(ignores, 1, "a server ignoring pageSize is asked once");
    hostile.store(1, Ordering::SeqCst);
    let text = exporter.failure("c", "too_large").await;
    assert!(
        text.contains("available_user_seats{customer_id=\"c\",customer_name=\"c\",tenant_type=\"microsoft_365\",tenant_id=\"a\",tenant_name=\"A\"} 5"),
        "last good series kept: {text}"
    );
    assert_eq!(up(&text, "ignores"), Some(1.0));
    // Cut at the 64 MiB budget for all of the target's pages, not at the 16 MiB page limit.
    let line = exporter
        .log_line_with(&["level=warn", "larger than 67108864 bytes"])
        .await;
    assert!(line.contains("cause=too_large"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn absurd_and_malformed_tokens_neither_panic_nor_reach_a_header() {
    // expires_in of 2^63: used as "never expires".
    let api = FakeApi::start(|r| {
        if r.path == "/token" {
            return Reply::json(
                r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":9223372036854775808}"#,
            );
        }
        ok_page()
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1s")).await;
    let text = exporter.polls(3).await;
    assert_eq!(up(&text, "c"), Some(1.0));
    assert_eq!(api.token_requests().len(), 1);
    assert!(
        !exporter.log_text().contains("panicked"),
        "{}",
        exporter.log_text()
    );
    // A token with CR/LF: refused as a token problem, never sent.
    let api = FakeApi::start(|r| {
        if r.path == "/token" {
            return Reply::json(
                r#"{"access_token":"tok\r\nX-Injected: 1","token_type":"Bearer","expires_in":3600}"#,
            );
        }
        ok_page()
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1h")).await;
    let text = exporter.first_cycle().await;
    assert_eq!(errors(&text, "c", "token"), Some(1.0), "{text}");
    assert!(api.tenant_requests().is_empty());
    exporter.log_line("not allowed in an HTTP header").await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_storm_polls_nothing() {
    let api = healthy_api().await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1h")).await;
    exporter.first_poll().await;
    let before = api.requests().len();
    let client = reqwest::Client::new();
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let (client, url) = (client.clone(), exporter.url("/-/reload"));
        storm.spawn(async move { client.post(url).send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(done) = storm.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 200);
    }
    // A last request after the storm, to be sure every reload was applied.
    let (status, _) = exporter.post("/-/reload").await;
    assert_eq!(status, 200);
    assert_eq!(
        api.requests().len(),
        before,
        "reloads that change nothing poll nothing"
    );
    let reloads = exporter.log_text().matches("config reloaded").count();
    assert!(
        reloads < 300,
        "{reloads} reloads for 301 requests: not coalesced"
    );
}

#[tokio::test(start_paused = true)]
async fn schema_drift_fails_the_poll_and_keeps_the_last_good_series() {
    let drifted = Arc::new(Mutex::new(false));
    let d = drifted.clone();
    let api = FakeApi::with_tokens(move |_| {
        if *d.lock().unwrap() {
            // Seat numbers as strings: every record invalid.
            return Reply::json(
                r#"{"data":[{"tenantId":"a","tenantName":"A","availableUserSeat":"5","assignedUserSeat":"1"}],"metadata":{"totalCount":1}}"#,
            );
        }
        ok_page()
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1s")).await;
    exporter.first_poll().await;
    *drifted.lock().unwrap() = true;
    let text = exporter.failure("c", "parse").await;
    assert!(
        text.contains("tenant_id=\"a\",tenant_name=\"A\"} 5"),
        "{text}"
    );
    assert!(text.contains(
        "avepoint_exporter_target_tenants{customer_id=\"c\",tenant_type=\"microsoft_365\"} 1"
    ));
    let line = exporter.log_line("all 1 records are invalid").await;
    assert!(line.contains("availableUserSeat"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn small_things_count_and_read_right() {
    // An absurd totalCount: the guard names the real page count, not a clamped one.
    let api = FakeApi::with_tokens(|_| {
        let all: Vec<_> = (0..100)
            .map(|i| record(&format!("t{i}"), "T", 1, 1))
            .collect();
        Reply::json(
            serde_json::json!({"data": all, "metadata": {"totalCount": 1_000_000_000_000u64}})
                .to_string(),
        )
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1h")).await;
    exporter.first_cycle().await;
    let line = exporter.log_line("paging guard").await;
    assert!(line.contains("needs 10000000000 pages"), "{line}");
    // 150 short headers are well inside the 16 KiB head limit: served, not 431.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(exporter.addr).await.unwrap();
    let mut head = String::from("GET /-/healthy HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `--web.max-connections` above the open-file limit is clamped at start (and said so), so
/// that a flood of idle connections is met by evicting them, not by `accept` failing with
/// EMFILE while real scrapes wait in the backlog.
#[test]
fn max_connections_above_the_file_limit_is_clamped_and_idle_floods_are_still_evicted() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 160 && exec \"$0\" \"$@\"",
            binary(),
            "--demo",
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.max-connections",
            "512",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("never listened: {seen:#?}");
        };
        if let Some(rest) = line.split("msg=listening address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        seen.push(line);
    };
    // Said once serving starts (before the demo's first pass ends).
    let clamp = loop {
        let Some(Ok(line)) = lines.next() else {
            break None;
        };
        if line.contains("above what the open-file limit allows") {
            break Some(line);
        }
        if line.contains("first pass complete") {
            break None;
        }
        seen.push(line);
    };
    assert!(
        clamp
            .as_deref()
            .is_some_and(|l| l.contains("serving_at_most=96") && l.contains("open_file_limit=160")),
        "{clamp:?} {seen:#?}"
    );
    // 200 idle connections: more than the process could hold open.
    let idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let mut scrape = std::net::TcpStream::connect(&addr).unwrap();
    scrape
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    scrape
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = scrape.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();
}

/// A scraper that asks for `/metrics` and never reads it is dropped once the write has made
/// no progress for the write timeout (30 s), instead of pinning its connection and the
/// pieces of the exposition queued for it for as long as it stays connected.
#[tokio::test(start_paused = true)]
async fn a_scraper_that_stops_reading_is_dropped_after_the_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // 300 customers x 100 tenants with long names: an exposition of several MB, more than
    // the socket buffers between the two ends hold.
    let api = FakeApi::with_tokens(|r| {
        let customer = r.path.split('/').nth(6).unwrap_or("").to_owned();
        let records: Vec<_> = (0..100)
            .map(|i| {
                record(
                    &format!("{customer}-tenant-{i:04}-0000-0000-0000-000000000000"),
                    &format!("Tenant {i} of customer {customer}, with a name of some length"),
                    10,
                    5,
                )
            })
            .collect();
        Reply::json(envelope(&records, 1, 100, 100))
    })
    .await;
    let rest = format!(
        "poll:\n  interval: 1h\ncustomers:\n{}",
        numbered("c", 300, "microsoft_365")
    );
    let (_dir, exporter) = in_process_on(&api, &rest).await;
    let full = exporter.first_cycle().await.len();
    assert!(full > 8_000_000, "{full}");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(exporter.addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Nothing taken for longer than the write timeout (virtual time).
    tokio::time::sleep(Duration::from_secs(45)).await;
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    assert!(
        got.len() < full,
        "the whole exposition ({} of {full} bytes) waited for a scraper that did not read",
        got.len()
    );
    // Scrapes that read go on.
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
}

/// A server that ignores pageSize and sends one enormous page: read record by record, held to
/// the 100 000-record cap of a list while it is read; the target fails and keeps nothing of it
/// (the memory side is measured by bench/hostile_pages.py).
#[tokio::test(start_paused = true)]
async fn an_oversized_page_is_held_to_the_record_cap_while_it_is_read() {
    let mut big = String::from("{\"data\":[");
    for i in 0..150_000 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!(
            "{{\"tenantId\":\"t{i}\",\"availableUserSeat\":1,\"assignedUserSeat\":0}}"
        ));
    }
    big.push_str("],\"metadata\":{\"totalCount\":150000}}");
    let api = FakeApi::with_tokens(move |r| {
        if r.path.contains("/customers/big/") {
            Reply::json(big.clone())
        } else {
            Reply::json(envelope(&[record("t", "T", 3, 1)], 1, 100, 1))
        }
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &targets("1h", &["big", "small"])).await;
    let text = exporter.first_cycle().await;
    assert_eq!(errors(&text, "big", "parse"), Some(1.0), "{text}");
    assert_eq!(up(&text, "small"), Some(1.0), "{text}");
    assert!(
        !text.contains("avepoint_exporter_target_tenants{customer_id=\"big\""),
        "{text}"
    );
    let line = exporter
        .log_line_with(&["level=warn", "more than 100000 records"])
        .await;
    assert!(line.contains("cause=parse"), "{line}");
}

/// Hostile round two, item 2: the secret echoed in the encodings servers really use (lowercase
/// percent-hex as .NET writes it, JSON `\u` escapes, HTML references, inside an OAuth `error`
/// that is printed escaped), and an opaque access token echoed without `Bearer ` before it.
#[tokio::test(start_paused = true)]
async fn the_secret_and_the_token_are_cut_however_they_are_echoed() {
    // A secret with a quote, so that an escaped rendering of it differs from the raw one.
    let secret = r#"Abc+Def/ghi="q"#;
    let echoes = [
        // .NET's UrlEncode: lowercase hex.
        r#"{"error":"invalid_client","error_description":"got Abc%2bDef%2fghi%3d%22q"}"#.to_owned(),
        // JSON escapes.
        r#"{"error":"invalid_client","error_description":"got Abc\u002BDef\/ghi\u003D\"q"}"#
            .to_owned(),
        // HTML references.
        r#"{"error":"invalid_client","error_description":"got Abc&#43;Def&#x2F;ghi=&quot;q"}"#
            .to_owned(),
        // The secret as the OAuth error code itself (printed escaped).
        format!(r#"{{"error":{}}}"#, serde_json::to_string(secret).unwrap()),
    ];
    for echo in echoes {
        let api =
            FakeApi::start(move |_| Reply::status(400, "application/json", echo.clone())).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config_with(
            &dir,
            &api.base_url(),
            &api.base_url(),
            "",
            &one_target("1h"),
        );
        // Single-quoted in YAML: the secret has no single quote.
        let yaml = std::fs::read_to_string(&config).unwrap().replace(
            "client_secret: my-very-secret-value",
            &format!("client_secret: '{secret}'"),
        );
        std::fs::write(&config, yaml).unwrap();
        let exporter = Exporter::in_process(&config).await;
        exporter.first_cycle().await;
        let line = exporter.log_line("cannot get an access token").await;
        assert!(line.contains("<redacted>"), "{line}");
        let log = exporter.log_text();
        assert!(!log.contains("Def"), "the secret was shown: {log}");
    }
    // An opaque token echoed bare.
    let api = FakeApi::start(|r| {
        if r.path == "/token" {
            return Reply::json(
                r#"{"access_token":"opaque-7f3a9c","token_type":"Bearer","expires_in":3600}"#,
            );
        }
        Reply::status(403, "text/plain", "token opaque-7f3a9c lacks the scope")
    })
    .await;
    let (_dir, exporter) = in_process_on(&api, &one_target("1h")).await;
    exporter.first_cycle().await;
    let line = exporter
        .log_line_with(&["level=warn", "target poll failed"])
        .await;
    assert!(line.contains("token <redacted> lacks the scope"), "{line}");
    assert!(!exporter.log_text().contains("opaque-7f3a9c"));
}

#[tokio::test]
async fn through_the_binary_huge_names_from_the_api_are_cut_to_1_kib_and_counted() {
    const LIST: &str = "/partner/external/v3/general/customers/batch";
    const HUGE: usize = 100_000;
    let api = FakeApi::with_tokens(|r| {
        if r.path == LIST {
            let list: Vec<_> = ["d1", "d2"]
                .iter()
                .map(|id| {
                    serde_json::json!({"id": id, "organization": format!("{id}{}", "O".repeat(HUGE)),
                        "countryOrRegion": "C".repeat(HUGE), "managementMode": "Managed"})
                })
                .collect();
            return Reply::json(envelope(&list, 1, 100, 2));
        }
        // 20 tenants whose ids differ only after their first 100 KB.
        let records: Vec<_> = (0..20)
            .map(|i| record(&format!("{}{i}", "x".repeat(HUGE)), &"N".repeat(HUGE), i, 1))
            .collect();
        Reply::json(envelope(&records, 1, 100, 20))
    })
    .await;
    let (_dir, exporter) = start_on(
        &api,
        "poll:\n  interval: 1h\ndiscovery:\n  tenant_types: [0]\n",
    );
    let text = exporter.first_cycle().await;
    // Every tenant is still its own series.
    assert_eq!(series(&text, "available_user_seats").len(), 40);
    assert_eq!(series(&text, "assigned_user_seats").len(), 40);
    // Every label value within 1 KiB, cut on a character boundary and marked.
    let mut cut = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(labels) = line.split_once('{').and_then(|(_, r)| r.rsplit_once('}')) else {
            continue;
        };
        for pair in labels.0.split("\",") {
            let value = pair.split_once("=\"").map_or("", |(_, v)| v);
            let value = value.strip_suffix('"').unwrap_or(value);
            assert!(value.len() <= 1024, "{} bytes: {line:.200}", value.len());
            if value.len() > 1000 {
                assert!(value.contains('…'), "{line:.200}");
                cut += 1;
            }
        }
    }
    // Seat series: tenant id, name and customer name; customer_info: name and country.
    assert_eq!(cut, 80 * 3 + 2 * 2);
    // Proportional to the number of series (some 3 KiB each), not to what the API sent.
    assert!(text.len() < 400 * 1024, "{} bytes", text.len());
    // 20 ids and 20 names per target, and each customer's name and country, once each.
    assert_eq!(
        counter(&text, "avepoint_exporter_label_values_truncated_total"),
        Some(84.0)
    );
}
