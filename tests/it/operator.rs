//! What an operator touches first, through the binary: --version, start-up errors and their
//! exit codes, listen addresses, demo-mode signals and check-config.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[test]
fn version_prints_version_revision_build_date_and_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_binary(&["--version"], dir.path());
    assert_eq!(code, 0);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "avepoint-elements-exporter, version {} (revision: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    for key in ["build date:", "rustc version:", "platform:"] {
        assert!(out.contains(key), "{key}: {out}");
    }
    assert!(!out.contains("unknown"), "{out}");
}

#[test]
fn started_with_nothing_it_says_how_to_start_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_binary(&["--web.listen-address", "127.0.0.1:0"], dir.path());
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line, printed once: {err}");
    assert!(lines[0].contains("level=error"), "{err}");
    assert!(
        lines[0].contains("--config.file") && lines[0].contains("--demo"),
        "{err}"
    );
    // The same hint from --check-config.
    let err = fails_with_1(&["--check-config"], dir.path());
    assert!(err.contains("--demo"), "{err}");
}

#[test]
fn bad_listen_addresses_and_telemetry_paths_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for addr in ["nonsense", ":99999", "::1:80"] {
        let err = fails_with_1(&["--demo", "--web.listen-address", addr], dir.path());
        assert!(err.contains("--web.listen-address"), "{err}");
    }
    for path in ["/", "/-/healthy", "/-/ready", "/-/reload", "metrics"] {
        let (code, _, err) = run_binary(
            &[
                "--demo",
                "--web.listen-address",
                "127.0.0.1:0",
                "--web.telemetry-path",
                path,
            ],
            dir.path(),
        );
        assert_eq!(code, 1, "{path}: {err}");
        assert!(err.contains("--web.telemetry-path"), "{err}");
    }
}

#[test]
fn demo_check_config_checks_the_demo_config() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_binary(&["--demo", "--check-config"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("demo mode"), "{out}");
    assert!(out.contains("config OK"), "{out}");
    assert!(out.contains("discovery: every"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_in_demo_mode_is_logged_and_the_demo_keeps_running() {
    let exporter = Exporter::start(&["--demo"]);
    exporter.first_cycle().await;
    let status = Command::new("kill")
        .args(["-HUP", &exporter.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    exporter
        .log_line("config reload is not available in demo mode")
        .await;
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
    // Small, known label sets start at 0.
    let (_, text) = exporter.get("/metrics").await;
    // Every cause docs/metrics.md documents, each at 0 before any list was asked for.
    let causes = series(&text, "avepoint_exporter_discovery_errors_total");
    assert_eq!(causes.len(), 10, "{causes:?}");
    assert!(causes.iter().all(|l| l.ends_with("} 0")), "{causes:?}");
    for cause in ["token", "rate_limited", "too_large"] {
        assert!(causes
            .iter()
            .any(|l| l.contains(&format!("cause=\"{cause}\""))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_port_listens_on_ipv4_and_ipv6() {
    let mut child = Command::new(binary())
        .args(["--demo", "--web.listen-address", ":0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("msg=listening address=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr: std::net::SocketAddr = rx.recv_timeout(DEADLINE).unwrap().parse().unwrap();
    let port = addr.port();
    let v6_host = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut urls = vec![format!("http://127.0.0.1:{port}/-/healthy")];
    if v6_host {
        assert!(
            addr.is_ipv6(),
            "{addr}: a host with IPv6 listens dual-stack"
        );
        urls.push(format!("http://[::1]:{port}/-/healthy"));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for url in urls {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `--check-config` on `config` (text) with `env`: (exit code, stdout, stderr).
fn check(config: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(binary())
        .args(["--check-config", "--config.file", path.to_str().unwrap()])
        .env_remove("ELEMENTS_CLIENT_SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GUID: &str = "f1620000-b9d4-0000-a165-97db0000fc15";

#[test]
fn check_config_warns_where_the_runtime_would() {
    let (code, out, err) = check(
        "\
elements:
  base_url: http://elements.internal
  environment: gov
  token_url: https://proxy.example.com/token
  client_id: x
  client_secret: y
poll:
  interval: 30s
discovery:
  interval: 1m
customers:
  - id: not-a-guid
  - id: also-not
",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 5, "{out}");
    for expected in [
        "poll.interval: 30s is below 1m",
        "discovery.interval: 1m fetches the whole customer list",
        "elements.base_url: http://elements.internal/ is plain http",
        "elements.token_url: https://proxy.example.com/token overrides the token service of environment gov",
        "customers: 2 customer id(s) are not GUIDs (first: \"not-a-guid\")",
    ] {
        assert!(warnings.iter().any(|w| w.contains(expected)), "{expected}: {out}");
    }
    // The same warnings are logged when the exporter runs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "\
elements:
  base_url: http://127.0.0.1:9
  token_url: http://127.0.0.1:9/t
  client_id: x
  client_secret: y
poll:
  interval: 30s
customers:
  - id: {GUID}
"
        ),
    )
    .unwrap();
    let exporter = Exporter::start(&["--config.file", path.to_str().unwrap()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let line = rt.block_on(exporter.log_line("is below 1m"));
    assert!(line.contains("level=warn"), "{line}");
    let line =
        rt.block_on(exporter.log_line("elements.token_url: http://127.0.0.1:9/t is plain http"));
    assert!(line.contains("level=warn"), "{line}");
}

#[test]
fn check_config_refuses_other_duration_syntaxes_and_case_duplicates() {
    for (interval, what) in [
        ("5M", "5M"),
        ("5 minutes", "5 minutes"),
        ("5min", "5min"),
        ("1m1h", "1m1h"),
    ] {
        let (code, _, err) = check(
            &format!(
                "\
elements:
  client_id: x
  client_secret: y
poll:
  interval: {interval}
customers:
  - id: {GUID}
"
            ),
            &[],
        );
        assert_eq!(code, 1, "{interval}");
        assert!(
            err.contains(what) && err.contains("y, w, d, h, m, s, ms"),
            "{err}"
        );
    }
    let (code, out, _) = check(
        &format!(
            "\
elements:
  client_id: x
  client_secret: y
poll:
  interval: 1h30m
customers:
  - id: {GUID}
"
        ),
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("poll interval: 1h30m"), "{out}");
    let (code, _, err) = check(
        &format!(
            "\
elements:
  client_id: x
  client_secret: y
customers:
  - id: {GUID}
  - id: {}
",
            GUID.to_uppercase()
        ),
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("customers[1].id: duplicate customer id") && err.contains("ignoring case"),
        "{err}"
    );
}

#[test]
fn shipped_configs_pass_check_config_as_documented() {
    let root = env!("CARGO_MANIFEST_DIR");
    let configmap =
        std::fs::read_to_string(format!("{root}/deploy/kubernetes/configmap.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&configmap).unwrap();
    let embedded = doc["data"]["config.yaml"].as_str().unwrap().to_owned();
    let shipped = [
        (
            "examples/config.yaml",
            std::fs::read_to_string(format!("{root}/examples/config.yaml")).unwrap(),
        ),
        (
            "deploy/systemd/config.yaml",
            std::fs::read_to_string(format!("{root}/deploy/systemd/config.yaml")).unwrap(),
        ),
        ("deploy/kubernetes/configmap.yaml", embedded),
    ];
    for (name, text) in shipped {
        // As the files' comments say: the secret from the environment, since the secret file
        // exists only where the exporter runs.
        let (code, out, err) = check(&text, &[("ELEMENTS_CLIENT_SECRET", "checking")]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(!out.contains("warning:"), "{name}: {out}");
        assert!(
            out.contains("token_url: https://identity.avepointonlineservices.com/connect/token"),
            "{name}: {out}"
        );
        assert!(
            !text.contains("\n  token_url:") && !text.contains("\n      token_url:"),
            "{name} sets token_url"
        );
    }
}

#[test]
fn the_example_checks_clean_as_its_header_says_and_a_missing_secret_file_says_how() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/examples/config.yaml")).unwrap();
    // The command the header gives, run as written from the repository's root.
    let command = text
        .lines()
        .find_map(|l| {
            l.trim_start_matches('#')
                .trim()
                .strip_prefix("ELEMENTS_CLIENT_SECRET=")
        })
        .expect("the header gives the check command");
    let mut words = command.split_whitespace();
    let secret = words.next().unwrap();
    assert_eq!(words.next(), Some("avepoint-elements-exporter"));
    let args: Vec<&str> = words.collect();
    assert!(args.contains(&"examples/config.yaml"), "{args:?}");
    let out = Command::new(binary())
        .args(&args)
        .current_dir(root)
        .env("ELEMENTS_CLIENT_SECRET", secret)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without it, the error names the way out.
    let (code, _, err) = run_binary(&args, std::path::Path::new(root));
    assert_eq!(code, 1);
    assert!(
        err.contains("client_secret_file: cannot read")
            && err.contains("give the secret as ELEMENTS_CLIENT_SECRET=..."),
        "{err}"
    );
}

/// Sends raw bytes and reads until the server closes or `until` is seen in the answer.
fn raw(addr: std::net::SocketAddr, request: &[u8], until: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&answer).matches(until).count() >= 2 {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_details_content_length_host_and_x_gzip() {
    let exporter = Exporter::start(&["--demo"]);
    exporter.first_cycle().await;
    // HTTP/1.0 keep-alive (ab -k): both answers on one connection, each with its length.
    let answer = raw(
        exporter.addr,
        b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /-/healthy HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "HTTP/1.0 200",
    );
    assert_eq!(answer.matches("HTTP/1.0 200 OK").count(), 2, "{answer}");
    let lengths: Vec<usize> = answer
        .lines()
        .filter_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    assert_eq!(lengths.len(), 2, "{answer}");
    assert!(lengths[0] > 1000);
    assert!(!answer
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    // HEAD carries the headers a GET would have, but builds no body: no length (only the
    // body would tell it), and no body.
    let client = reqwest::Client::new();
    let head = client.head(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(!head.headers().contains_key("content-length"));
    assert!(head.bytes().await.unwrap().is_empty());
    // HTTP/1.1 without Host: 400.
    let answer = raw(
        exporter.addr,
        b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
        "HTTP/1.1",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // x-gzip is gzip.
    let resp = exporter
        .get_with("/metrics", &[("accept-encoding", "x-gzip")])
        .await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let body = resp.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
    assert!(text.contains("available_user_seats{"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_when_the_scraper_prefers_it() {
    let exporter = Exporter::start(&["--demo"]);
    exporter.first_cycle().await;
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let resp = exporter
        .get_with("/metrics", &[("accept", prometheus_accept)])
        .await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let om = resp.text().await.unwrap();
    assert!(om.ends_with("\n# EOF\n"), "{}", &om[om.len() - 200..]);
    assert_eq!(om.matches("# EOF").count(), 1);
    // Counters: the family without _total, the samples with it.
    assert!(
        om.contains("# TYPE avepoint_exporter_api_requests counter\n"),
        "{om}"
    );
    assert!(om.contains("avepoint_exporter_api_requests_total{"));
    assert!(!om.contains("# TYPE avepoint_exporter_api_requests_total"));
    assert!(om.contains("# TYPE available_user_seats gauge\n"));
    // Anyone else gets the text format.
    for accept in ["*/*", "text/plain;version=0.0.4"] {
        let resp = exporter.get_with("/metrics", &[("accept", accept)]).await;
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = resp.text().await.unwrap();
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# TYPE avepoint_exporter_api_requests_total counter"));
    }
    let (_, text) = exporter.get("/metrics").await;
    assert!(
        value(
            &text,
            "avepoint_exporter_scrapes_total",
            &["format=\"openmetrics\"", "encoding=\"identity\""]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
}
