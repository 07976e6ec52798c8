//! Day one at an MSP, as a new user meets it: a pre-flight (`--check-config`) that agrees
//! with the daemon, config files that mean what they say, errors that say what to do, logs
//! that stay readable at fleet size, and a demo that says it is one. Everything through the
//! real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::*;

const GUID: &str = "f1620000-b9d4-0000-a165-97db0000fc15";

/// A valid config with an inline secret (no file needed).
fn valid_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "elements:\n  base_url: http://127.0.0.1:9\n  token_url: http://127.0.0.1:9/t\n  \
             client_id: x\n  client_secret: y\ncustomers:\n  - id: {GUID}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_refuses_the_flags_the_daemon_refuses_with_the_same_words() {
    let dir = tempfile::tempdir().unwrap();
    let config = valid_config(dir.path());
    let config = config.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (
            &["--shard", "3", "--total-shards", "2"],
            "--shard 3 must be less than --total-shards 2",
        ),
        (&["--total-shards", "0"], "--total-shards 0"),
        (&["--web.telemetry-path=/"], "is the server's own"),
        (&["--web.telemetry-path=/-/metrics"], "is the server's own"),
        (&["--web.telemetry-path=metrics"], "must start with '/'"),
        (&["--web.telemetry-path=/metrics?x=1"], "contains '?'"),
        (&["--web.telemetry-path=/met rics"], "contains ' '"),
        (&["--web.telemetry-path=/metrics#top"], "contains '#'"),
        (&["--shard.from-pod-name"], "$POD_NAME is not set"),
    ];
    for (flags, expected) in cases {
        let mut check = vec!["--check-config", "--config.file", config];
        check.extend_from_slice(flags);
        let (code, out, pre) = run_binary(&check, dir.path());
        assert_eq!(code, 1, "{flags:?}: --check-config said OK: {out}");
        assert!(pre.contains(expected), "{flags:?}: {pre}");
        let mut run = vec![
            "--config.file",
            config,
            "--web.listen-address",
            "127.0.0.1:0",
        ];
        run.extend_from_slice(flags);
        let (code, _, daemon) = run_binary(&run, dir.path());
        assert_eq!(code, 1, "{flags:?}: {daemon}");
        assert_eq!(
            pre, daemon,
            "{flags:?}: the pre-flight and the daemon disagree"
        );
    }
    // And what both accept.
    let (code, out, err) = run_binary(
        &[
            "--check-config",
            "--config.file",
            config,
            "--shard",
            "1",
            "--total-shards",
            "2",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn the_example_config_leaves_the_scope_to_discovery_and_a_pinned_scope_is_warned_about() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config.yaml"))
            .unwrap();
    assert!(
        !example
            .lines()
            .any(|l| l.trim_start().starts_with("scope:")),
        "examples/config.yaml pins the scope"
    );
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        "elements:\n  client_id: x\n  client_secret: y\n  scope: elements.license.read.all\n\
                discovery:\n  interval: 1h\n";
    let (code, out, err) = check_config_of(dir.path(), yaml);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("warning: elements.scope:")
                && l.contains("lacks elements.customers.read.all")),
        "{out}"
    );
    // Without the pinned scope, no such warning.
    let (code, out, err) = check_config_of(
        dir.path(),
        &yaml.replace("  scope: elements.license.read.all\n", ""),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("elements.scope"), "{out}");
}

#[test]
fn relative_paths_in_the_config_are_relative_to_its_directory() {
    let etc = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(etc.path().join("secrets")).unwrap();
    std::fs::write(etc.path().join("secrets/client-secret"), "s3cret\n").unwrap();
    let config = etc.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "elements:\n  client_id: x\n  client_secret_file: secrets/client-secret\n\
             customers:\n  - id: {GUID}\n"
        ),
    )
    .unwrap();
    // Run from another directory: the file is found next to the config.
    let (code, out, err) = check_config(&config, elsewhere.path());
    assert_eq!(code, 0, "{out}{err}");
    // A relative path that is not there names where it was looked for.
    std::fs::remove_file(etc.path().join("secrets/client-secret")).unwrap();
    let (code, _, err) = check_config(&config, elsewhere.path());
    assert_eq!(code, 1);
    let looked = etc.path().join("secrets/client-secret");
    assert!(
        err.contains("elements.client_secret_file")
            && err.contains(&format!(
                "relative to the config file: {}",
                looked.display()
            )),
        "{err}"
    );
}

#[test]
fn ids_that_yaml_reads_as_numbers_must_be_quoted() {
    let dir = tempfile::tempdir().unwrap();
    for (id, number) in [("0x10", "16"), ("1e3", "1000"), ("0o17", "15")] {
        let yaml =
            format!("elements:\n  client_id: x\n  client_secret: y\ncustomers:\n  - id: {id}\n");
        let (code, out, err) = check_config_of(dir.path(), &yaml);
        assert_eq!(code, 1, "{id}: {out}");
        // The value as the user wrote it, not a stock example.
        assert!(
            err.contains("customers[0].id")
                && err.contains(number)
                && err.contains(&format!("quote it: \"{id}\"")),
            "{id}: {err}"
        );
        // Quoted, it is the id as written.
        let quoted = yaml.replace(&format!("id: {id}"), &format!("id: \"{id}\""));
        let (code, out, err) = check_config_of(dir.path(), &quoted);
        assert_eq!(code, 0, "{id}: {err}");
        assert!(out.contains(&format!("- {}", id.to_lowercase())), "{out}");
    }
    let yaml = "elements:\n  client_id: x\n  client_secret: y\ndiscovery:\n  exclude_ids: [0x10]\n";
    let (code, _, err) = check_config_of(dir.path(), yaml);
    assert_eq!(code, 1);
    assert!(
        err.contains("discovery.exclude_ids[0]") && err.contains("quote it: \"0x10\""),
        "{err}"
    );
}

#[test]
fn tenant_types_and_durations_are_read_as_people_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let check = |customer: &str, poll: &str| {
        check_config_of(
            dir.path(),
            &format!(
                "elements:\n  client_id: x\n  client_secret: y\n{poll}customers:\n  - id: c\n{customer}"
            ),
        )
    };
    // A name in another case is the name.
    let (code, out, err) = check("    tenant_types: [Google, SALESFORCE]\n", "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("c: google, salesforce"), "{out}");
    // A near miss says what was meant.
    let (code, _, err) = check("    tenant_types: [Microsoft365, dynamics-365]\n", "");
    assert_eq!(code, 1);
    assert!(err.contains("customers[0].tenant_types[0]: unknown tenant type \"Microsoft365\"; did you mean microsoft_365?"), "{err}");
    assert!(
        err.contains(
            "tenant_types[1]: unknown tenant type \"dynamics-365\"; did you mean dynamics_365?"
        ),
        "{err}"
    );
    // One type without brackets: how to write it.
    let (code, _, err) = check("    tenant_types: microsoft_365\n", "");
    assert_eq!(code, 1);
    assert!(err.contains("for one type write [microsoft_365]"), "{err}");
    // 0 is a duration, below the minimum; a number without a unit says so.
    let (code, _, err) = check("", "poll:\n  interval: 0\n");
    assert_eq!(code, 1);
    assert!(err.contains("poll.interval") && err.contains("1s"), "{err}");
    assert!(!err.contains("expected a duration"), "{err}");
    let (code, _, err) = check("", "poll:\n  interval: 300\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("300 has no unit") && err.contains("300s"),
        "{err}"
    );
}

#[test]
fn check_config_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("elements:\n  client_id: x\n  client_secret: y\ncustomers:\n");
    for i in 0..5000 {
        yaml.push_str(&format!(
            "  - id: f1620000-b9d4-0000-a165-{i:012}\n    name: Customer number {i} of a long list\n"
        ));
    }
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut child = Command::new(binary())
        .args(["--check-config", "--config.file", path.to_str().unwrap()])
        .env_remove("ELEMENTS_CLIENT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: one line, then the pipe is closed.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(first.contains("config OK"), "{first}");
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_targets_are_one_warning_per_cause_with_counts_and_examples() {
    let api = FakeApi::with_tokens(|r| {
        let customer = r.path.split('/').nth(6).unwrap_or("");
        if customer.starts_with("gone") {
            Reply::status(404, "application/json", r#"{"message":"no customer"}"#)
        } else {
            Reply::json(envelope(&[record("t", "T", 3, 1)], 1, 100, 1))
        }
    })
    .await;
    let rest = format!(
        "poll:\n  interval: 1h\ncustomers:\n{}{}",
        numbered("gone", 200, "microsoft_365, salesforce"),
        numbered("ok", 5, "microsoft_365")
    );
    let (_dir, exporter) = start_on(&api, &rest);
    let text = exporter.first_cycle().await;
    // Every failure is counted per target...
    let failed: f64 = series(&text, "avepoint_exporter_target_errors_total")
        .iter()
        .filter(|l| l.contains("cause=\"http_4xx\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(failed, 400.0, "{text}");
    // ...and logged as one warning for the cause, not 400.
    let line = exporter.log_line("target poll failed").await;
    let log = exporter.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level=warn") && l.contains("target poll failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(line.contains("cause=http_4xx"), "{line}");
    assert!(line.contains("404"), "{line}");
    assert!(line.contains("examples=\"gone"), "{line}");
    let targets: usize = line
        .split("failed_polls=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap();
    assert!((1..=400).contains(&targets), "{line}");
    // Each target's own failure is at debug level (the log is read on another thread).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let detail = exporter
            .log_text()
            .lines()
            .filter(|l| l.contains("level=debug") && l.contains("target poll error"))
            .count();
        if detail == 400 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{detail} debug lines");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_show_every_request_without_its_secrets() {
    let api =
        FakeApi::with_tokens(|_| Reply::json(envelope(&[record("t", "T", 3, 1)], 1, 100, 1))).await;
    let (_dir, exporter) = start_on(&api, &one_target("1h"));
    exporter.first_cycle().await;
    let line = exporter.log_line("msg=request endpoint=tenants").await;
    for field in [
        "method=POST",
        "path=/partner/external/v3/general/customers/c/3rd-party-products/type/0/tenants/batch",
        "status=200",
        "latency_ms=",
        "attempt=1",
    ] {
        assert!(line.contains(field), "{field}: {line}");
    }
    let token = exporter.log_line("msg=request endpoint=token").await;
    assert!(
        token.contains("status=200") && token.contains("method=POST"),
        "{token}"
    );
    let log = exporter.log_text();
    assert!(!log.contains("my-very-secret-value"), "{log}");
    assert!(!log.contains("tok-"), "a token was logged: {log}");
}

#[test]
fn errors_say_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let base = "elements:\n  client_id: x\n  client_secret: y\n";
    let customers = format!("customers:\n  - id: {GUID}\n");
    let refused = |yaml: String, expected: &[&str]| {
        let (code, out, err) = check_config_of(dir.path(), &yaml);
        assert_eq!(code, 1, "{yaml}: {out}");
        for e in expected {
            assert!(err.contains(e), "{e:?} not in: {err}");
        }
        err
    };
    for d in ["30 seconds", "1 minute"] {
        refused(
            format!("{base}poll:\n  interval: {d}\n{customers}"),
            &[
                "poll.interval",
                "has a space",
                "y, w, d, h, m, s, ms",
                "1m30s",
            ],
        );
    }
    refused(
        format!("{base}poll:\n  intervall: 5m\n{customers}"),
        &["poll.intervall: unknown key; did you mean \"interval\"?"],
    );
    refused(
        format!("elements:\n  base_url: graph.avepointonlineservices.com\n  client_id: x\n  client_secret: y\n{customers}"),
        &["elements.base_url", "has no scheme", "https://graph.avepointonlineservices.com"],
    );
    let err = refused(
        format!("elements:\n  token_url: https://user:hunter2@login.example.com/token\n  client_id: x\n  client_secret: y\n{customers}"),
        &["elements.token_url", "must not carry a user or password"],
    );
    assert!(!err.contains("hunter2"), "{err}");
    // What --check-config prints is what the parser takes back.
    let (code, out, err) = check_config_of(
        dir.path(),
        &format!("{base}poll:\n  interval: 1m\n  stale_after: 90s\n{customers}"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1m30s"), "{out}");
    assert!(!out.contains("1m 30s"), "{out}");
    // The secret file named as the secret file.
    let fifo = dir.path().join("secret.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused(
        format!(
            "elements:\n  client_id: x\n  client_secret_file: {}\n{customers}",
            fifo.display()
        ),
        &["elements.client_secret_file", "not a regular file"],
    );
    // A missing config file is named once.
    let (code, _, err) = run_binary(
        &["--check-config", "--config.file", "absent.yaml"],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert_eq!(err.matches("absent.yaml").count(), 1, "{err}");
    assert!(
        err.contains("absent.yaml: cannot read the config file"),
        "{err}"
    );
}

#[test]
fn an_encrypted_private_key_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = rsa_identity("app");
    std::fs::write(dir.path().join("app.crt"), cert).unwrap();
    std::fs::write(
        dir.path().join("app.key"),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let yaml = format!(
        "elements:\n  client_id: x\n  client_certificate_file: app.crt\n  client_private_key_file: app.key\n\
         customers:\n  - id: {GUID}\n"
    );
    let (code, _, err) = check_config_of(dir.path(), &yaml);
    assert_eq!(code, 1);
    assert!(
        err.contains("elements.client_private_key_file")
            || err.contains("elements.client_certificate_file"),
        "{err}"
    );
    assert!(err.contains("encrypted"), "{err}");
}

#[test]
fn web_config_problems_are_a_line_each_and_an_unreadable_ca_is_not_also_missing() {
    let dir = tempfile::tempdir().unwrap();
    let config = valid_config(dir.path());
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: absent.crt\n  key_file: absent.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: absent-ca.crt\n",
    )
    .unwrap();
    let (code, _, err) = run_binary(
        &[
            "--check-config",
            "--config.file",
            config.to_str().unwrap(),
            "--web.config.file",
            web.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    for key in ["cert_file", "key_file", "client_ca_file"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("tls_server_config.{key}: cannot read"))),
            "{key}: {err}"
        );
    }
    assert!(!err.contains("missing"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_says_it_is_the_demo_and_refuses_reload_as_a_client_error() {
    let exporter = Exporter::start(&["--demo"]);
    exporter.first_cycle().await;
    let (code, body) = exporter.post("/-/reload").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("demo mode"), "{body}");
    let (code, page) = exporter.get("/").await;
    assert_eq!(code, 200);
    assert!(page.contains("Demo mode"), "{page}");
    // Content negotiation as RFC 9110 writes it (hostile round two, item 14).
    for (encoding, gzip) in [
        ("gzip;Q=0", false),
        ("gzip;q=NaN", false),
        ("gzip;q=2", false),
        ("gzip;q=0.5", true),
    ] {
        let resp = exporter
            .get_with("/metrics", &[("accept-encoding", encoding)])
            .await;
        assert_eq!(
            resp.headers().get("content-encoding").is_some(),
            gzip,
            "{encoding}"
        );
    }
    let resp = exporter
        .get_with(
            "/metrics",
            &[("accept", "application/openmetrics-text; version=\"1.0.0\"")],
        )
        .await;
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
}

/// Starts the binary with `args` and returns its first `listening` log line (or panics with
/// what it printed, when it ends first).
fn listening_line(args: &[&str]) -> String {
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        if line.contains("msg=listening") {
            let _ = child.kill();
            let _ = child.wait();
            return line;
        }
        seen.push(line);
    }
    let _ = child.wait();
    panic!("{args:?} never listened: {seen:#?}");
}

#[test]
fn listen_addresses_with_zones_and_given_twice() {
    // An IPv6 address with its zone, by interface name (the resolver does not take it);
    // where the host has IPv6 loopback at all.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let line = listening_line(&["--demo", "--web.listen-address", "[::1%lo]:0"]);
        assert!(line.contains("address=[::1"), "{line}");
    } else {
        eprintln!("no IPv6 loopback here: the zone part of this test is skipped");
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_binary(
        &["--demo", "--web.listen-address", "[fe80::1%no-such-if]:0"],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("no network interface named \\\"no-such-if\\\"")
            || err.contains("no network interface named"),
        "{err}"
    );
    // The same address twice, or two that overlap, is our own doing, not another exporter's.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let one = format!("127.0.0.1:{port}");
    let all = format!(":{port}");
    for (first, second, expected) in [
        (one.as_str(), one.as_str(), "is given twice"),
        (all.as_str(), one.as_str(), "overlaps --web.listen-address"),
    ] {
        let (code, _, err) = run_binary(
            &[
                "--demo",
                "--web.listen-address",
                first,
                "--web.listen-address",
                second,
            ],
            dir.path(),
        );
        assert_ne!(code, 0, "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("another exporter"), "{err}");
    }
}

#[test]
fn help_and_readme_say_the_same_of_the_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (code, help, _) = run_binary(&["--help"], dir.path());
    assert_eq!(code, 0);
    // clap wraps long help: compare without line breaks.
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let flag = help
        .split("--web.max-connections")
        .nth(1)
        .and_then(|rest| rest.split(" --").next())
        .unwrap_or_default()
        .to_owned();
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `--web.max-connections"))
        .unwrap_or_default()
        .to_owned();
    // Both: at the limit a newcomer replaces the connection idle longest, and is closed only
    // when every connection is busy.
    for said in [&flag, &row] {
        assert!(said.contains("idle longest"), "{said}");
        assert!(said.contains("every connection"), "{said}");
        assert!(!said.contains("closed on accept"), "{said}");
    }
}

/// Fleet shape: 2 000 failing targets behind a rate-bound API whose pass (40 s) outgrows the
/// interval (10 s): still one warning per cause per interval, however many targets fail in it.
#[tokio::test(start_paused = true)]
async fn a_failing_fleet_behind_schedule_is_one_warning_per_cause_per_interval() {
    let api = FakeApi::with_tokens(|_| {
        Reply::status(404, "application/json", r#"{"message":"no customer"}"#)
    })
    .await;
    let rest = format!(
        "poll:\n  interval: 10s\ncustomers:\n{}",
        numbered(
            "gone",
            500,
            "microsoft_365, salesforce, google, dynamics_365"
        )
    );
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 5s\n  retries: 0\n  max_requests_per_second: 50\n",
        &rest,
    )
    .await;
    let started = tokio::time::Instant::now();
    let polls = loop {
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
        let polls = counter(&text, "avepoint_exporter_poll_duration_seconds_count").unwrap_or(0.0);
        if polls >= 4000.0 {
            break polls;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "{polls} polls after {:?} (virtual)",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    let elapsed = started.elapsed().as_secs_f64();
    let log = exporter.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level=warn") && l.contains("target poll failed"))
        .collect();
    // Two full passes took about 80 s: about 8 intervals, so about 8 lines, not 4 000.
    let intervals = (elapsed / 10.0).ceil() as usize + 1;
    assert!(
        (2..=intervals).contains(&warnings.len()),
        "{} warnings in {elapsed:.0} s: {warnings:#?}",
        warnings.len()
    );
    let mut counted = 0;
    for line in &warnings {
        assert!(line.contains("cause=http_4xx"), "{line}");
        counted += line
            .split("failed_polls=")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap();
    }
    // Every failure logged is counted once; those of the last interval may still wait.
    assert!(counted as f64 <= polls, "{counted} counted, {polls} polls");
    assert!(counted >= 2000, "{counted} counted, {polls} polls");
}

/// The commonest onboarding mistake (a wrong id, a missing permission): a configured customer
/// whose every poll fails still has its name on a series from the start, so the target-down
/// alert and the dashboard's customer picker name it instead of showing a GUID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_customer_that_never_succeeds_is_named_in_customer_info() {
    const DRIFTWOOD: &str = "44444444-aaaa-4bbb-8ccc-000000000001";
    const UNNAMED: &str = "55555555-aaaa-4bbb-8ccc-000000000002";
    let api = FakeApi::with_tokens(|_| {
        Reply::status(403, "application/json", r#"{"message":"forbidden"}"#)
    })
    .await;
    let (_dir, exporter) = start_on(
        &api,
        &format!(
            "poll:\n  interval: 1h\ncustomers:\n  - id: {DRIFTWOOD}\n    name: Driftwood Cafe\n    \
             tenant_types: [microsoft_365, google]\n  - id: {UNNAMED}\n    tenant_types: [salesforce]\n"
        ),
    );
    let text = exporter.first_cycle().await;
    // Every poll failed: no seat series to take a name from.
    assert_eq!(up(&text, DRIFTWOOD), Some(0.0), "{text}");
    assert!(errors(&text, DRIFTWOOD, "http_4xx").is_some(), "{text}");
    assert!(series(&text, "available_user_seats").is_empty(), "{text}");
    assert_eq!(
        series(&text, "avepoint_exporter_customer_info"),
        [
            format!("avepoint_exporter_customer_info{{country_or_region=\"\",customer_id=\"{DRIFTWOOD}\",customer_name=\"Driftwood Cafe\",management_mode=\"\"}} 1"),
            // Without a configured name, the id stands in (as in customer_name everywhere).
            format!("avepoint_exporter_customer_info{{country_or_region=\"\",customer_id=\"{UNNAMED}\",customer_name=\"{UNNAMED}\",management_mode=\"\"}} 1"),
        ]
    );
}
