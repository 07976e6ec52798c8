//! Fleet-shape scheduling, in-process on paused time (seconds of schedule in milliseconds):
//! a rate-bound API whose full pass outgrows the
//! interval still delivers every customer, the biggest ones included, with every target up;
//! and with room to spare, polls spread evenly over the interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::common::*;

/// Seat numbers of tenant `i` of a target: different for every target and tenant.
fn seats(customer: &str, kind: u8, i: usize) -> (i64, i64) {
    let c: usize = customer.bytes().map(usize::from).sum();
    let a = (c * 7 + usize::from(kind) * 13 + i * 3) % 97;
    (a as i64, (a * 2 + i) as i64)
}

/// A fake API serving `sizes[(customer, type)]` tenants per target, paged as asked.
async fn fleet_api(sizes: Arc<HashMap<(String, u8), usize>>) -> FakeApi {
    FakeApi::with_tokens(move |r| {
        let parts: Vec<&str> = r.path.split('/').collect();
        let (customer, kind) = (parts[6].to_owned(), parts[9].parse::<u8>().unwrap_or(9));
        let total = sizes.get(&(customer.clone(), kind)).copied().unwrap_or(0);
        let page = page_index(r) as usize;
        let size: usize = r
            .query
            .split('&')
            .find_map(|p| p.strip_prefix("pageSize="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let records: Vec<serde_json::Value> = (size * (page - 1)..(size * page).min(total))
            .map(|i| {
                let (a, b) = seats(&customer, kind, i);
                record(
                    &format!("{customer}-{kind}-t{i}"),
                    &format!("Tenant {i}"),
                    a,
                    b,
                )
            })
            .collect();
        Reply::json(envelope(&records, page as u32, size as u32, total))
    })
    .await
}

/// The seat series the exposition must hold for `sizes`, exactly.
fn expected_series(sizes: &HashMap<(String, u8), usize>) -> Vec<String> {
    let names = ["microsoft_365", "salesforce", "google", "dynamics_365"];
    let mut lines = Vec::new();
    for ((customer, kind), &n) in sizes {
        for i in 0..n {
            let (a, b) = seats(customer, *kind, i);
            let labels = format!(
                "customer_id=\"{customer}\",customer_name=\"Org {customer}\",tenant_type=\"{}\",tenant_id=\"{customer}-{kind}-t{i}\",tenant_name=\"Tenant {i}\"",
                names[usize::from(*kind)]
            );
            lines.push(format!("available_user_seats{{{labels}}} {a}"));
            lines.push(format!("assigned_user_seats{{{labels}}} {b}"));
        }
    }
    lines.sort();
    lines
}

fn seat_series(text: &str) -> Vec<String> {
    let mut lines = series(text, "available_user_seats");
    lines.extend(series(text, "assigned_user_seats"));
    lines.sort();
    lines
}

/// `customers` customers with all four types; the first `big` have `big_tenants` tenants in
/// every type, the others 1 to 5.
fn fleet(
    customers: usize,
    big: usize,
    big_tenants: usize,
) -> (HashMap<(String, u8), usize>, String) {
    let mut sizes = HashMap::new();
    let mut yaml = String::from("customers:\n");
    for c in 0..customers {
        let id = format!("c{c:03}");
        yaml.push_str(&format!("  - id: {id}\n    name: Org {id}\n"));
        for kind in 0..4u8 {
            let n = if c < big {
                big_tenants
            } else {
                1 + (c + usize::from(kind)) % 5
            };
            sizes.insert((id.clone(), kind), n);
        }
    }
    (sizes, yaml)
}

fn sample(text: &str, metric: &str) -> f64 {
    counter(text, metric).unwrap_or_else(|| panic!("no {metric}"))
}

/// Runs a rate-bound fleet whose round needs more than the interval: every series arrives
/// exactly and every target is up, on the first pass and on the rounds after it.
async fn behind_schedule_fleet_is_complete(customers: usize, big: usize, rate: u32) {
    let (sizes, yaml) = fleet(customers, big, 250);
    let targets = sizes.len() as u64;
    let sizes = Arc::new(sizes);
    let api = fleet_api(sizes.clone()).await;
    let (_dir, exporter) = in_process_with_limits(
        &api,
        &format!("  max_requests_per_second: {rate}\n"),
        &format!(
            "\
poll:
  interval: 2s
{yaml}"
        ),
    )
    .await;
    let expected = expected_series(&sizes);
    let text = exporter.first_cycle().await;
    assert_eq!(seat_series(&text), expected, "first pass");
    let up = series(&text, "avepoint_exporter_target_up");
    assert_eq!(up.len() as u64, targets);
    assert!(up.iter().all(|l| l.ends_with(" 1")), "{up:?}");
    // Another round: still complete, still up, every target polled again.
    let text = exporter.polls(2 * targets).await;
    assert_eq!(seat_series(&text), expected, "later rounds");
    assert!(series(&text, "avepoint_exporter_target_up")
        .iter()
        .all(|l| l.ends_with(" 1")));
    assert!(
        !text.contains("avepoint_exporter_target_errors_total{"),
        "{text}"
    );
    let requests = api.tenant_requests();
    for ((customer, kind), n) in sizes.iter() {
        let path = tenants_path(customer, *kind);
        let polls = requests
            .iter()
            .filter(|r| r.path == path && page_index(r) == 1)
            .count();
        assert!(
            polls >= 2,
            "{customer}/{kind} ({n} tenants) polled {polls} times"
        );
    }
    // The exporter knows it is behind, and says so once with the remedies.
    assert!(sample(&text, "avepoint_exporter_poll_utilization_ratio") > 1.0);
    assert!(sample(&text, "avepoint_exporter_poll_overruns_total") >= 1.0);
    let line = exporter.log_line("polling cannot keep poll.interval").await;
    assert!(line.contains(&format!("targets={targets}")), "{line}");
    assert!(line.contains("max_requests_per_second"), "{line}");
    assert!(line.contains("--total-shards"), "{line}");
    let warnings = exporter
        .log_text()
        .matches("polling cannot keep poll.interval")
        .count();
    assert_eq!(warnings, 1);
}

#[tokio::test(start_paused = true)]
async fn six_customers_with_a_three_page_one_at_the_default_rate() {
    // 24 targets, 4 of them 3 pages: 32 requests per round at 10/s, for a 2 s interval.
    behind_schedule_fleet_is_complete(6, 1, 10).await;
}

#[tokio::test(start_paused = true)]
async fn forty_customers_four_of_them_big_at_forty_requests_a_second() {
    // 160 targets, 16 of them 3 pages: 192 requests per round at 40/s, for a 2 s interval.
    behind_schedule_fleet_is_complete(40, 4, 40).await;
}

#[tokio::test(start_paused = true)]
async fn a_round_longer_than_stale_after_never_drops_a_healthy_series() {
    // 1 000 targets at 25 requests a second: a round takes 40 s, for a 10 s interval and the
    // default stale_after of 30 s. Every target keeps succeeding, just slowly.
    let (sizes, yaml) = fleet(250, 0, 0);
    let expected = expected_series(&sizes);
    let api = fleet_api(Arc::new(sizes)).await;
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  max_requests_per_second: 25
",
        &format!("poll:\n  interval: 10s\n{yaml}"),
    )
    .await;
    // The first pass takes 40 s (longer than the helpers' deadline).
    let start = Instant::now();
    while exporter.get("/-/ready").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(120), "no first pass");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, text) = exporter.get("/metrics").await;
    assert_eq!(seat_series(&text), expected, "first pass");
    // Three more rounds, sampled every two seconds: every series is there every time.
    let until = Instant::now() + Duration::from_secs(120);
    let mut samples = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, text) = exporter.get("/metrics").await;
        assert_eq!(
            seat_series(&text).len(),
            expected.len(),
            "series missing after {samples} samples"
        );
        assert!(series(&text, "avepoint_exporter_target_up")
            .iter()
            .all(|l| l.ends_with(" 1")));
        samples += 1;
    }
    let (_, text) = exporter.get("/metrics").await;
    assert_eq!(seat_series(&text), expected, "after three rounds");
    // Every target was polled again meanwhile (the rounds really were slow and complete)...
    assert!(sample(&text, "avepoint_exporter_poll_duration_seconds_count") >= 3000.0);
    // ...and nothing was called stale.
    assert!(
        !exporter.log_text().contains("stale_after"),
        "{}",
        exporter.log_text()
    );
}

#[tokio::test(start_paused = true)]
async fn polls_spread_over_the_interval_after_the_first_pass() {
    let (sizes, yaml) = fleet(10, 0, 0);
    let sizes = Arc::new(sizes);
    let api = fleet_api(sizes.clone()).await;
    let (_dir, exporter) = in_process_with_limits(
        &api,
        "  max_requests_per_second: 0\n",
        &format!(
            "\
poll:
  interval: 8s
{yaml}"
        ),
    )
    .await;
    exporter.first_cycle().await;
    let start = api.tenant_requests()[0].at;
    // The first pass, then one whole interval after it.
    let until = start + Duration::from_secs(17);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    let mut total = 0;
    for r in api.tenant_requests() {
        let second = (r.at - start).as_secs();
        if (8..16).contains(&second) {
            *per_second.entry(second).or_default() += 1;
            total += 1;
        }
    }
    // Each of the 40 targets once in those 8 s (its slot), at 5 a second on average.
    assert!((36..=44).contains(&total), "{total} polls in one interval");
    let busiest = per_second.values().copied().max().unwrap_or(0);
    assert!(
        busiest <= 20,
        "{busiest} requests in one second: {per_second:?}"
    );
    let line = exporter.log_line("first pass complete").await;
    assert!(line.contains("targets=40"), "{line}");
    let (_, text) = exporter.get("/metrics").await;
    assert!(sample(&text, "avepoint_exporter_poll_utilization_ratio") < 0.5);
    assert_eq!(sample(&text, "avepoint_exporter_poll_overruns_total"), 0.0);
}

#[test]
fn check_config_estimates_a_round_and_warns_when_the_interval_cannot_be_kept() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rate: u32, interval: &str| {
        let (_, yaml) = fleet(30, 0, 0);
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            format!(
                "\
elements:
  token_url: https://id.example.com/token
  client_id: x
  client_secret: y
  max_requests_per_second: {rate}
poll:
  interval: {interval}
{yaml}"
            ),
        )
        .unwrap();
        path
    };
    // 120 targets at 1 request a second need two minutes, for a one-minute interval.
    let path = write(1, "1m");
    let args = ["--check-config", "--config.file", path.to_str().unwrap()];
    let (code, out, _) = run_binary(&args, dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("round estimate: 120 targets x at least 1 page / 1 requests per second = at least 120s per round; poll.interval is 1m"),
        "{out}"
    );
    assert!(
        out.contains("warning: poll.interval cannot be kept"),
        "{out}"
    );
    // Three shards share the work: 40 targets each, 40 s.
    let (_, out, _) = run_binary(&[&args[..], &["--total-shards", "3"]].concat(), dir.path());
    assert!(out.contains("40 targets x at least 1 page"), "{out}");
    assert!(
        !out.contains("warning: poll.interval cannot be kept"),
        "{out}"
    );
    // At 10 a second: 12 s, no warning.
    let path = write(10, "1m");
    let (code, out, _) = check_config(&path, dir.path());
    assert_eq!(code, 0);
    assert!(out.contains("at least 12s per round"), "{out}");
    assert!(
        !out.contains("warning: poll.interval cannot be kept"),
        "{out}"
    );
}
