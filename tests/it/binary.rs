//! The binary as an operator uses it: endpoints, signals, config checking, reload, demo mode.

use std::io::Read;
use std::time::Duration;
use tokio::time::Instant;

use crate::common::*;

async fn simple_api() -> FakeApi {
    FakeApi::with_tokens(|_| {
        Reply::json(envelope(&[record("t1", "Tenant <One>", 4, 6)], 1, 100, 1))
    })
    .await
}

/// The exporter on a one-hour poll of `customers` (YAML list items).
fn start_with(api: &FakeApi, customers: &str) -> (tempfile::TempDir, Exporter) {
    start_on(
        api,
        &format!(
            "\
poll:
  interval: 1h
customers:
{customers}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_404_405_gzip_and_landing_page() {
    let api = simple_api().await;
    let (_dir, exporter) = start_with(
        &api,
        "  - id: cust-1\n    name: Contoso & Co\n    tenant_types: [google]\n",
    );
    let plain = exporter.first_poll().await;
    let client = reqwest::Client::new();

    assert_eq!(exporter.get("/nope").await.0, 404);
    assert_eq!(exporter.get("/metrics/extra").await.0, 404);
    for (method, path, allow) in [
        (reqwest::Method::POST, "/metrics", "GET, HEAD"),
        (reqwest::Method::DELETE, "/", "GET, HEAD"),
        (reqwest::Method::PUT, "/-/healthy", "GET, HEAD"),
        (reqwest::Method::GET, "/-/reload", "POST"),
    ] {
        let resp = client
            .request(method.clone(), exporter.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow);
    }

    // gzip when asked for; the body decompresses to the same exposition (modulo counters).
    let resp = exporter
        .get_with("/metrics", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let bytes = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(
        series(&text, "available_user_seats"),
        series(&plain, "available_user_seats")
    );
    assert!(text.contains("avepoint_exporter_build_info{"));
    assert!(text.contains("process_resident_memory_bytes"));
    let resp = client.get(exporter.url("/metrics")).send().await.unwrap();
    assert!(resp.headers().get("content-encoding").is_none());

    // Landing page: version, links, one row per target with its health, names escaped.
    let (status, page) = exporter.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    assert!(page.contains("<a href=\"/metrics\">Metrics</a>"));
    assert!(page.contains("<a href=\"/api/v1/targets\">Targets (JSON)</a>"));
    assert!(
        page.contains(
            "<tr class=\"up\"><td>up</td><td>Contoso &amp; Co</td><td>cust-1</td><td>google</td>"
        ),
        "{page}"
    );
    assert_eq!(exporter.get("/-/healthy").await, (200, "Healthy\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_telemetry_path() {
    let api = simple_api().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &api,
        "\
customers:
  - id: c
",
    );
    let exporter = Exporter::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--web.telemetry-path",
        "/seats",
    ]);
    assert_eq!(exporter.get("/metrics").await.0, 404);
    let (status, body) = exporter.get("/seats").await;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE available_user_seats gauge"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_exit_0_within_5s() {
    let api = simple_api().await;
    for signal in ["TERM", "INT"] {
        let (_dir, mut exporter) = start_with(&api, "  - id: c\n");
        exporter.first_poll().await;
        // An open keep-alive connection must not hold shutdown up.
        let _idle = std::net::TcpStream::connect(exporter.addr).unwrap();
        let status = exporter.signal_and_wait(signal, Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "SIG{signal}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_in_use_exits_2_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let api = simple_api().await;
    let config = write_config(
        &dir,
        &api,
        "\
customers:
  - id: c
",
    );
    let (code, _, stderr) = run_binary(
        &[
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            &addr,
        ],
        dir.path(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error=\"cannot listen on {addr}: address already in use"
        )),
        "{stderr}"
    );
}

#[test]
fn check_config_accepts_the_example_and_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.yaml");
    // The example reads its secret from a file; point it at one that exists.
    let text = std::fs::read_to_string(example).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "example-secret-value\n").unwrap();
    let text = text.replace(
        "/run/secrets/elements-client-secret",
        secret.to_str().unwrap(),
    );
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, text).unwrap();
    let (code, stdout, stderr) = check_config(&good, dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("config OK\n"), "{stdout}");
    assert!(stdout.contains("client secret: from client_secret_file"));
    assert!(stdout.contains("poll interval: 5m"), "{stdout}");
    assert!(!stdout.contains("example-secret-value"));

    let (code, stdout, stderr) = check_config_of(
        dir.path(),
        "\
elements:
  token_url: https://id.example.com/t
  client_id: x
  client_secret: hunter2
  page_size: 0
poll:
  interval: 5
customers:
  - id: a
    tenant_types: [office]
  - id: a
",
    );
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    let prefix = format!("{}: ", dir.path().join("checked.yaml").display());
    assert_eq!(
        lines,
        vec![
            format!("{prefix}elements.page_size: 0 is out of range; expected 1..100"),
            format!("{prefix}poll.interval: 5 has no unit; a duration is a number and a unit, e.g. 5s or 5m"),
            format!("{prefix}customers[0].tenant_types[0]: unknown tenant type \"office\"; expected one of microsoft_365, salesforce, google, dynamics_365 (or 0..3)"),
        ],
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"));

    // Missing file: one line, exit 1; also when starting normally.
    let (code, _, stderr) = run_binary(
        &["--check-config", "--config.file", "/nonexistent/c.yaml"],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "/nonexistent/c.yaml: cannot read the config file: No such file or directory"
        ),
        "{stderr}"
    );
    let stderr = fails_with_1(
        &[
            "--config.file",
            "/nonexistent/c.yaml",
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert!(
        stderr.contains("error=\"cannot read config file /nonexistent/c.yaml"),
        "{stderr}"
    );
    // Bad flags: exit 1.
    fails_with_1(&["--log.level", "loud"], dir.path());
    fails_with_1(&["--shard", "3", "--total-shards", "2"], dir.path());
}

#[test]
fn duplicate_customer_ids_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = check_config_of(
        dir.path(),
        "\
elements:
  token_url: https://id.example.com/t
  client_id: x
  client_secret: y
customers:
  - id: a
  - id: a
",
    );
    assert_eq!(code, 1);
    assert!(
        stderr
            .trim_end()
            .ends_with("customers[1].id: duplicate customer id \"a\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_valid_config_and_refuses_an_invalid_one() {
    let api = simple_api().await;
    let (dir, exporter) = start_with(&api, "  - id: first\n    tenant_types: [0]\n");
    exporter
        .metrics_when("first poll", |t| t.contains("customer_id=\"first\""))
        .await;
    // A valid new file: the new customer appears, the old one goes.
    write_config(&dir, &api, &targets("1h", &["second"]));
    let (status, _) = exporter.post("/-/reload").await;
    assert_eq!(status, 200);
    let text = exporter
        .metrics_when("the reloaded customer", |t| {
            t.contains("available_user_seats{customer_id=\"second\"")
        })
        .await;
    assert!(!text.contains("customer_id=\"first\""));
    assert!(text.contains("avepoint_exporter_config_last_reload_successful 1"));
    // An invalid file is refused; the current metrics stay.
    write_config(
        &dir,
        &api,
        "\
customers:
  - id: x
    tenant_types: [nope]
",
    );
    let (status, body) = exporter.post("/-/reload").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("customers[0].tenant_types[0]: unknown tenant type \"nope\""),
        "{body}"
    );
    let (_, text) = exporter.get("/metrics").await;
    assert!(text.contains("available_user_seats{customer_id=\"second\""));
    assert!(text.contains("avepoint_exporter_config_last_reload_successful 0"));
    // SIGHUP reloads too.
    write_config(&dir, &api, &targets("1h", &["third"]));
    std::process::Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap();
    exporter
        .metrics_when("the SIGHUP-reloaded customer", |t| {
            t.contains("available_user_seats{customer_id=\"third\"")
                && t.contains("avepoint_exporter_config_last_reload_successful 1")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_only_timing_keeps_the_client_its_token_and_throttle() {
    // The first seat request is throttled: the client halves its rate (8 → 4 requests per
    // second, then up a little per success) and holds one token.
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let api = FakeApi::with_tokens(move |_| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::too_many("1")
        } else {
            Reply::json(envelope(&[record("t1", "T1", 4, 6)], 1, 100, 1))
        }
    })
    .await;
    let limits = "  timeout: 5s\n  retries: 1\n  max_requests_per_second: 8\n";
    let (dir, exporter) = start_with_limits(&api, limits, &one_target("1h"));
    let rate = |t: &str| {
        counter(t, "avepoint_exporter_api_rate_limit_requests_per_second").expect("the rate gauge")
    };
    let text = exporter.polls(1).await;
    assert!(text.contains("available_user_seats{"), "{text}");
    assert!(rate(&text) < 8.0, "throttled: {text}");
    assert_eq!(api.token_requests().len(), 1);
    // Every timing key changes, nothing else: the running client stays. The shorter interval
    // makes the target due within seconds, so the next poll shows which client it used.
    write_config_with(
        &dir,
        &api.base_url(),
        &api.base_url(),
        limits,
        "poll:\n  interval: 2s\n  stale_after: 10m\n  empty_interval: 30m\ncustomers:\n  - id: c\n    tenant_types: [0]\n",
    );
    let (status, body) = exporter.post("/-/reload").await;
    assert_eq!(status, 200, "{body}");
    let text = exporter.polls(2).await;
    assert!(
        rate(&text) < 8.0,
        "the 429 throttle carried over the reload: {text}"
    );
    assert_eq!(
        api.token_requests().len(),
        1,
        "the cached token carried over the reload; log:\n{}",
        exporter.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_metrics_within_2s() {
    let start = Instant::now();
    let exporter = Exporter::start(&["--demo", "--config.file", "/nonexistent.yaml"]);
    let text = exporter
        .metrics_when("demo metrics", |t| {
            t.contains("avepoint_exporter_target_tenants{")
        })
        .await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // All four tenant types, several customers, a tenant out of seats, multi-page targets.
    for kind in ["microsoft_365", "salesforce", "google", "dynamics_365"] {
        assert!(
            text.contains(&format!("tenant_type=\"{kind}\",tenant_id=")),
            "{kind}"
        );
    }
    assert!(series(&text, "available_user_seats").len() > 100);
    assert!(series(&text, "available_user_seats")
        .iter()
        .any(|l| l.ends_with(" 0")));
    assert!(text.contains("tenant_type=\"microsoft_365\"} 120"));
    // The demo discovers its customers: four kept, the `Test` one filtered out.
    assert_eq!(series(&text, "avepoint_exporter_customer_info").len(), 4);
    assert!(text.contains("avepoint_exporter_discovered_customers 4"));
    assert!(!text.contains("Test Lab"));
    assert!(
        text.contains("customer_name=\"Tailspin Toys\",management_mode=\"Delegated\""),
        "{text}"
    );
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    // Three customers lack two tenant types each: six targets on the empty cadence, up.
    let (_, text) = exporter.get("/metrics").await;
    assert_eq!(
        counter(&text, "avepoint_exporter_empty_targets"),
        Some(6.0),
        "{text}"
    );
    let empty: Vec<String> = series(&text, "avepoint_exporter_target_tenants")
        .into_iter()
        .filter(|l| l.ends_with(" 0"))
        .collect();
    assert_eq!(empty.len(), 6, "{empty:?}");
    assert!(text.contains("avepoint_exporter_poll_empty_interval_seconds 3600"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_one_object_per_line_with_cycle_summary() {
    let exporter = Exporter::start(&["--demo", "--log.format", "json"]);
    let line = exporter.log_line("first pass complete").await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    // Flat, with the keys every Prometheus exporter's JSON logs use.
    assert_eq!(v["level"], "info");
    assert_eq!(v["msg"], "first pass complete");
    assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    assert_eq!(v["targets"], 16);
    assert_eq!(v["failed"], 0);
    assert!(
        v.get("fields").is_none() && v.get("target").is_none(),
        "{line}"
    );
    for l in exporter.log.lock().unwrap().iter() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_poll_only_their_customers() {
    // The documented contract (docs/polling.md, Sharding), computed here independently: FNV-1a 64 of
    // the customer id, modulo the shard count.
    let shard_of = |id: &str, total: u64| {
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (hash % total) as u32
    };
    let api = simple_api().await;
    let ids: Vec<String> = (0..12).map(|i| format!("customer-{i}")).collect();
    let customers: String = ids
        .iter()
        .map(|id| format!("  - id: {id}\n    tenant_types: [0]\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &api,
        &format!(
            "\
poll:
  interval: 1h
customers:
{customers}"
        ),
    );
    let mut all = Vec::new();
    for shard in 0..3u32 {
        // Shard 2 takes its number from the pod name, as in the StatefulSet.
        let mut cmd_args = vec![
            "--config.file",
            config.to_str().unwrap(),
            "--total-shards",
            "3",
        ];
        let shard_arg = shard.to_string();
        let mut env = vec![];
        if shard == 2 {
            cmd_args.push("--shard.from-pod-name");
            env.push(("POD_NAME", "avepoint-elements-exporter-sharded-2"));
        } else {
            cmd_args.extend(["--shard", &shard_arg]);
        }
        let exporter = Exporter::start_with_env(&cmd_args, &env);
        let want: Vec<&String> = ids.iter().filter(|id| shard_of(id, 3) == shard).collect();
        let text = exporter
            .metrics_when("poll", |t| {
                t.matches("avepoint_exporter_target_tenants{").count() == want.len()
            })
            .await;
        assert!(text.contains(&format!(
            "avepoint_exporter_shard_info{{shard=\"{shard}\",total_shards=\"3\"}} 1"
        )));
        for id in &ids {
            let polled = text.contains(&format!("target_up{{customer_id=\"{id}\","));
            assert_eq!(polled, want.contains(&id), "{id} in shard {shard}");
        }
        all.extend(want);
    }
    all.sort();
    let mut expected: Vec<&String> = ids.iter().collect();
    expected.sort();
    assert_eq!(
        all, expected,
        "the shards together cover every customer once"
    );
}

/// Runs `--once` on `config` with `stdout` as the child's standard output: (exit code, stderr).
fn once_into(config: &std::path::Path, stdout: std::process::Stdio) -> (i32, String) {
    let mut child = std::process::Command::new(binary())
        .args(["--once", "--config.file", config.to_str().unwrap()])
        .env_remove("ELEMENTS_CLIENT_SECRET")
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A closed pipe: the reading end is gone before the child writes a byte.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn once_exits_1_when_its_output_cannot_be_written() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let api = runtime.block_on(simple_api());
    let (_dir, config) = config_with_limits(&api, TEST_LIMITS, &one_target("5m"));
    // Every poll succeeds: only the output decides.
    let (code, err) = once_into(&config, std::process::Stdio::null());
    assert_eq!(code, 0, "{err}");

    // A full disk (the cron recipe's `> f.$$ && mv f.$$ f` must not install a cut file):
    // exit 1 with one line saying why.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (code, err) = once_into(&config, full.into());
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cannot write the exposition to stdout"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("level=error"), "{err}");
    assert!(lines[0].contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A closed pipe (`| head -1`): exit 1 as well, quietly.
    let (code, err) = once_into(&config, std::process::Stdio::piped());
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("cannot write"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
