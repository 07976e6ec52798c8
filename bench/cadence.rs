//! Poll what exists, measured: API requests per hour of a typical MSP fleet with
//! `poll.empty_interval` equal to `poll.interval` (off) and at its default ratio (1h to 5m).
//!
//! Usage: bench-cadence [CUSTOMERS]   (default 5000)
//!
//! The fleet: CUSTOMERS customers, 80 % with Microsoft 365 only, 15 % with Microsoft 365 and
//! one other type, 5 % with all four, every tenth with 150 Microsoft 365 tenants (two pages);
//! all four types polled for every customer (4 x CUSTOMERS targets). Each run is the real
//! daemon (`app::run_on`) against the synthetic API in this process, on tokio's paused clock:
//! `interval: 30s` with `empty_interval` 30s or 6m (the ratio of 5m to 1h), so that twelve
//! intervals stand for one hour at 5m / 1h. (The paused clock makes schedule free but not the
//! work: a shorter virtual hour keeps the snapshot renders to a few hundred.) It prints the
//! first pass (requests and wall time, the same for both: nothing is known to be empty before
//! it) and the tenants requests per twelve intervals in steady state: averaged over the two
//! empty intervals that follow the first full one after the first pass.

use std::time::Duration;

use avepoint_elements_exporter::app::{self, Options};
use avepoint_elements_exporter::bench::Scale;
use avepoint_elements_exporter::DemoApi;

/// What one run measured.
struct Run {
    first_pass_requests: f64,
    first_pass_wall: Duration,
    requests_per_hour: f64,
    errors: f64,
    empty_targets: f64,
}

fn sample(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `poll.interval` in seconds; twelve of them stand for an hour at 5m.
const INTERVAL: u64 = 30;

const TENANT_REQUESTS: &str =
    "avepoint_exporter_api_requests_total{code=\"200\",endpoint=\"tenants\"} ";

async fn run(customers: usize, empty_interval: &str) -> Result<Run, Box<dyn std::error::Error>> {
    let api = DemoApi::start_scaled(Scale {
        customers,
        tenants_per_customer: 150,
        tenant_types: 4,
        big_every: 10,
        big_types: 1,
        max_requests_per_second: 0,
        latency: Duration::ZERO,
        churn_percent: 0,
        max_concurrency: 16,
        typical_mix: true,
    })
    .await?;
    let yaml = api.config_yaml().replace(
        "  interval: 1h\n",
        &format!("  interval: {INTERVAL}s\n  empty_interval: {empty_interval}\n"),
    );
    let dir = std::env::temp_dir().join(format!("bench-cadence-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("config.yaml");
    std::fs::write(&config, yaml)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let options = Options::new(config, vec![addr.to_string()]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(app::run_on(options, vec![listener], async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let get = |path: &str| {
        let request = http.get(format!("http://{addr}{path}"));
        async move {
            let resp = request.send().await?;
            Ok::<_, reqwest::Error>((resp.status().as_u16(), resp.text().await?))
        }
    };
    let wall = std::time::Instant::now();
    while get("/-/ready").await?.0 != 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_pass_wall = wall.elapsed();
    let (_, at_ready) = get("/metrics").await?;
    // Steady state: one empty interval (and one interval) after the first pass, every target
    // is on its cadence; then two empty intervals, whose requests / 2 are one hour's.
    tokio::time::sleep(Duration::from_secs(13 * INTERVAL)).await;
    let (_, from) = get("/metrics").await?;
    tokio::time::sleep(Duration::from_secs(24 * INTERVAL)).await;
    let (_, after) = get("/metrics").await?;
    let _ = stop.send(());
    daemon.await??;
    let _ = std::fs::remove_dir_all(&dir);
    let errors = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("avepoint_exporter_target_errors_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            + 0.0
    };
    Ok(Run {
        first_pass_requests: sample(&at_ready, TENANT_REQUESTS),
        first_pass_wall,
        requests_per_hour: (sample(&after, TENANT_REQUESTS) - sample(&from, TENANT_REQUESTS)) / 2.0,
        errors: errors(&after),
        empty_targets: sample(&after, "avepoint_exporter_empty_targets "),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let customers: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 5000,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let (off, on) = runtime.block_on(async {
        let off = run(customers, "30s").await?;
        let on = run(customers, "6m").await?;
        Ok::<_, Box<dyn std::error::Error>>((off, on))
    })?;
    for (name, r) in [
        ("empty_interval = interval", &off),
        ("empty_interval = 12 x interval (1h at 5m)", &on),
    ] {
        println!(
            "{name}: first pass {:.0} requests in {:.1} s; {:.0} requests per 12 intervals in steady state; {:.0} targets empty; {:.0} failed polls",
            r.first_pass_requests,
            r.first_pass_wall.as_secs_f64(),
            r.requests_per_hour,
            r.empty_targets,
            r.errors,
        );
    }
    println!(
        "cadence: {} targets; {:.0} -> {:.0} requests per hour (12 intervals) = {:.2}x fewer; first pass {:.0} requests either way ({:.1} s, {:.1} s)",
        customers * 4,
        off.requests_per_hour,
        on.requests_per_hour,
        off.requests_per_hour / on.requests_per_hour.max(1.0),
        on.first_pass_requests,
        off.first_pass_wall.as_secs_f64(),
        on.first_pass_wall.as_secs_f64(),
    );
    Ok(())
}
