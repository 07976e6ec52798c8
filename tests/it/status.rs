//! Status at fleet scale: `/api/v1/targets` (Prometheus' shape, filters), the landing page
//! (failures first, bounded size) and `--once` (one pass, exit code, exposition on stdout).

use std::time::Duration;

use crate::common::*;

/// One Microsoft 365 tenant for every customer; the customers named in `failing` answer 500.
async fn fleet_api(failing: &'static [&'static str]) -> FakeApi {
    FakeApi::with_tokens(move |r| {
        let customer = r.path.split('/').nth(6).unwrap_or("");
        if failing.contains(&customer) {
            return Reply::status(500, "text/plain", "boom");
        }
        Reply::json(envelope(
            &[record(&format!("{customer}-t"), "T", 4, 2)],
            1,
            100,
            1,
        ))
    })
    .await
}

const FAILING: &[&str] = &["k01234", "k03333", "k04999"];

/// `n` customers `k00000`.. named `Org k00000`.., with `types`.
fn fleet_yaml(n: usize, types: &str) -> String {
    let mut yaml = String::from("poll:\n  interval: 1h\ncustomers:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - id: k{i:05}\n    name: Org k{i:05}\n    tenant_types: [{types}]\n"
        ));
    }
    yaml
}

#[tokio::test(start_paused = true)]
async fn the_targets_api_and_the_landing_page_at_fleet_shape() {
    let api = fleet_api(FAILING).await;
    // 5 000 customers x 4 types = 20 000 targets; three customers fail.
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  timeout: 5s\n  retries: 0\n  max_requests_per_second: 0\n  max_concurrency: 16\n",
        &fleet_yaml(5000, "0, 1, 2, 3"),
    )
    .await;
    let start = tokio::time::Instant::now();
    while exporter.get("/-/ready").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(600), "no first pass");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (code, body) = exporter.get("/api/v1/targets").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    let all = v["data"]["targets"].as_array().unwrap();
    assert_eq!(all.len(), 20_000);
    let down: Vec<&serde_json::Value> = all.iter().filter(|t| t["health"] == "down").collect();
    assert_eq!(down.len(), 12);
    let t = down[0];
    assert_eq!(t["customerId"], "k01234");
    assert_eq!(t["customerName"], "Org k01234");
    assert_eq!(t["tenantType"], "microsoft_365");
    assert_eq!(t["lastError"], "http_5xx (HTTP 500)");
    assert!(t["lastPoll"].as_str().unwrap().ends_with('Z'));
    assert!(t["failingSince"].is_string());
    assert!(t["nextPoll"].is_string());
    assert!(t["lastPollDuration"].as_f64().is_some());
    assert_eq!(t["lastSuccess"], serde_json::Value::Null);
    let up = all.iter().find(|t| t["health"] == "up").unwrap();
    assert_eq!(
        (up["lastError"].as_str(), up["tenants"].as_u64()),
        (Some(""), Some(1))
    );
    // Filters.
    for (query, n) in [
        ("health=down", 12),
        ("health=up", 19_988),
        ("health=unknown", 0),
        ("customer=K04999", 4),
        ("customer=org%20k0499", 40),
        ("customer=k04999&health=up", 0),
    ] {
        let (code, body) = exporter.get(&format!("/api/v1/targets?{query}")).await;
        assert_eq!(code, 200, "{query}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["targets"].as_array().unwrap().len(), n, "{query}");
    }
    let (code, body) = exporter.get("/api/v1/targets?health=sick").await;
    assert_eq!(code, 400);
    assert!(body.contains("\"status\":\"error\"") && body.contains("expected up, down or unknown"));

    // The landing page: a summary, the failures first, bounded.
    let (code, page) = exporter.get("/").await;
    assert_eq!(code, 200);
    assert!(page.len() < 256 * 1024, "{} bytes", page.len());
    assert!(
        page.contains("20000 · <b class=\"down\">12 down</b> · 19988 up"),
        "{}",
        &page[..3000]
    );
    assert!(page.contains("<td>Customers</td><td>5000</td>"));
    assert!(page.contains("20000 matching targets, the first 300 shown (failing first)"));
    let first_down = page.find("<tr class=\"down\">").unwrap();
    let first_up = page.find("<tr class=\"up\">").unwrap();
    assert!(first_down < first_up);
    assert_eq!(page.matches("<tr class=\"down\">").count(), 12);
    assert!(page[first_down..first_up].contains("http_5xx (HTTP 500)"));
    assert!(!page.contains("my-very-secret-value") && !page.contains("tok-1"));
    // Filtered: one customer's four targets.
    let (_, page) = exporter.get("/?customer=org+k03333&health=").await;
    assert!(page.contains("4 matching targets."), "{page}");
    assert_eq!(page.matches("<tr class=\"down\">").count(), 4);
    assert!(page.contains("value=\"org k03333\""));
    // A bad filter is said on the page, which shows everything.
    let (code, page) = exporter.get("/?health=sick").await;
    assert_eq!(code, 200);
    assert!(page.contains("expected up, down or unknown"));
}

/// Opens a connection that sends `GET path` and never reads the answer.
async fn slow_reader(exporter: &Exporter, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let mut stream = tokio::net::TcpStream::connect(exporter.addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: exporter\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_that_do_not_read_the_targets_api_cost_one_answer_not_fifty() {
    // 20 000 targets (5 000 customers x 4 types), every one failed: the largest answer.
    let api = FakeApi::with_tokens(|_| Reply::status(500, "text/plain", "boom")).await;
    let (_dir, exporter) = start_with_limits(
        &api,
        "  timeout: 5s\n  retries: 0\n  max_requests_per_second: 0\n  max_concurrency: 32\n",
        &fleet_yaml(5000, "0, 1, 2, 3"),
    );
    let start = std::time::Instant::now();
    while exporter.get("/-/ready").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(300), "no first pass");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = exporter.get("/api/v1/targets").await;
    assert_eq!(code, 200);
    assert!(body.len() > 5 << 20, "{} bytes", body.len());
    drop(body);
    let before = peak_rss_mib(exporter.pid());

    // 50 that ask for everything, 50 with a filter every target passes; none reads.
    let mut slow = Vec::new();
    for path in ["/api/v1/targets", "/api/v1/targets?customer=k"] {
        for _ in 0..50 {
            slow.push(slow_reader(&exporter, path).await);
        }
    }
    // Each has been answered once its first bytes arrive (peeked at, not read).
    for stream in &slow {
        let mut byte = [0u8; 1];
        let peeked = tokio::time::timeout(Duration::from_secs(60), stream.peek(&mut byte)).await;
        assert!(matches!(peeked, Ok(Ok(1))), "not answered: {peeked:?}");
    }
    // A client that reads gets the whole answer meanwhile, and a filtered one.
    let (code, body) = exporter.get("/api/v1/targets").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let all = v["data"]["targets"].as_array().unwrap();
    assert_eq!(all.len(), 20_000);
    assert!(all.iter().all(|t| t["health"] == "down"));
    assert_eq!(all[4 * 4999]["customerId"], "k04999");
    let (_, filtered) = exporter.get("/api/v1/targets?customer=k&health=down").await;
    let f: serde_json::Value = serde_json::from_str(&filtered).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        let targets = v["data"]["targets"].as_array().unwrap();
        targets
            .iter()
            .map(|t| format!("{}/{}", t["customerId"], t["tenantType"]))
            .collect()
    };
    assert_eq!(
        ids(&f),
        ids(&v),
        "a filter every target passes keeps every target"
    );
    drop((body, filtered, v, f));

    let peak = peak_rss_mib(exporter.pid());
    eprintln!("peak RSS at 20 000 targets: {before} MiB, {peak} MiB with 100 slow readers");
    assert!(
        peak <= 128,
        "peak RSS {peak} MiB, above the 128 MiB container"
    );
    drop(slow);
}

#[test]
fn once_polls_every_target_prints_the_exposition_and_exits_by_the_result() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let ok_api = runtime.block_on(fleet_api(&[]));
    let (dir, config) = config_with_limits(&ok_api, TEST_LIMITS, &fleet_yaml(3, "0, 2"));
    let args = ["--once", "--config.file", config.to_str().unwrap()];
    let (code, out, err) = run_binary(&args, dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(series(&out, "available_user_seats").len(), 6, "{out}");
    assert!(out
        .contains("avepoint_exporter_target_up{customer_id=\"k00002\",tenant_type=\"google\"} 1"));
    assert!(out.contains("avepoint_exporter_build_info{"));
    assert!(!err.contains("listening"), "binds no port: {err}");
    assert_eq!(ok_api.tenant_requests().len(), 6, "each target once");

    // One customer fails: exit 1, the failure named on stderr, the rest printed.
    let bad_api = runtime.block_on(fleet_api(&["k00001"]));
    let (dir, config) = config_with_limits(&bad_api, TEST_LIMITS, &fleet_yaml(3, "0"));
    let (code, out, err) = run_binary(
        &["--once", "--config.file", config.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(series(&out, "available_user_seats").len(), 2);
    assert!(
        err.contains("customer Org k00001 (k00001) microsoft_365: http_5xx (HTTP 500)"),
        "{err}"
    );

    // A bad config: exit 1, nothing on stdout.
    std::fs::write(dir.path().join("bad.yaml"), "customers: 7\n").unwrap();
    let (code, out, err) = run_binary(&["--once", "--config.file", "bad.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("customers"), "{err}");

    // The demo, for a first look without an account.
    let (code, out, _) = run_binary(&["--once", "--demo"], dir.path());
    assert_eq!(code, 0);
    assert!(series(&out, "available_user_seats").len() > 100);
}

/// The landing page answers the operator's first question first: which tenants are out of
/// seats or low, named with their customer. The demo has one already out (Tailspin's
/// tailspintoys.com), one low from the start (Contoso CRM: 5 of 60 free) and one running out
/// (Contoso Sales: low within a few polls, then out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_of_the_demo_leads_with_seat_health() {
    let exporter = Exporter::start(&["--demo", "--config.file", "/nonexistent.yaml"]);
    let start = std::time::Instant::now();
    let page = loop {
        let (code, page) = exporter.get("/").await;
        assert_eq!(code, 200);
        let health = page.split("<h2>Summary</h2>").next().unwrap_or("");
        if health.contains("Contoso Sales") {
            break page;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Contoso Sales never listed under seat health:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seats = page
        .find("<h2>Seat health</h2>")
        .expect("a seat health section");
    let summary = page.find("<h2>Summary</h2>").unwrap();
    let targets = page.find("<h2>Targets</h2>").unwrap();
    assert!(seats < summary && summary < targets, "seat health first");
    let health = &page[seats..summary];
    // Counts, with the threshold said.
    assert!(health.contains("<b class=\"out\">"), "{health}");
    assert!(health.contains("<b class=\"low\">"), "{health}");
    assert!(
        health.contains("at most 10 free and at least 90\u{a0}% assigned"),
        "{health}"
    );
    // Named with their customer, type, free and assigned.
    assert!(
        health.contains(">Tailspin Toys</td><td title=\"C01tailspin\">tailspintoys.com</td><td>google</td><td class=\"num\">0</td><td class=\"num\">30</td>"),
        "{health}"
    );
    assert!(
        health.contains("<tr class=\"low\"><td>low</td><td title=\"f1620000-b9d4-4a0e-a165-97db0000fc15\">Contoso</td><td title=\"00D5g000004XyZ1EAK\">Contoso CRM</td><td>salesforce</td><td class=\"num\">5</td><td class=\"num\">55</td>"),
        "{health}"
    );
    // Out of seats before low.
    let out = health.find("<tr class=\"out\">").unwrap();
    let low = health.find("<tr class=\"low\">").unwrap();
    assert!(out < low, "{health}");
    // The demo is healthy: nothing down, and "0 down" is not drawn as an alarm.
    assert!(page.contains(" · 0 down · "), "{}", &page[summary..targets]);
    assert!(!page.contains("class=\"down\">0 down"));
    // Both poll times relative; the poll count explained.
    assert!(
        page.contains("\u{a0}ago</span>") && page.contains(">in\u{a0}"),
        "{page}"
    );
    assert!(page.contains(" completed since start"), "{page}");
}
