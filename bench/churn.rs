//! Memory over many polls with churning tenants: runs the real poller in-process against the
//! synthetic API (10 000 tenants, 20 % of them with new ids every poll) for 1 000 polls of every
//! target and
//! prints the resident set size along the way. Flat RSS means no leak of tenant or label data.
//!
//! Usage: bench-churn [CYCLES [CUSTOMERS TENANTS TENANT_TYPES BIG_EVERY BIG_TYPES]]
//!
//! Without a shape: 100 customers of 100 Microsoft 365 tenants. With one, the synthetic API's
//! MSP shape (see bench-fake-api), e.g. `5000 150 4 50 1`: 20 000 targets.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use avepoint_elements_exporter::bench::{
    build_client, run_poller, targets_of, Format, Metrics, Origin, Plan, Poller, Scale, Status,
};
use avepoint_elements_exporter::{BuildInfo, Config, DemoApi};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The exporter's allocator, so that RSS here is what the binary would show.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cycles: u64 = args.first().map_or(Ok(1000), |a| a.parse())?;
    let shape: Vec<usize> = args[args.len().min(1)..]
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let [customers, tenants, types, big_every, big_types] = match shape.as_slice() {
        [] => [100, 100, 1, 0, 1],
        [a, b, c, d, e] => [*a, *b, *c, *d, *e],
        _ => return Err("give CUSTOMERS TENANTS TENANT_TYPES BIG_EVERY BIG_TYPES, or none".into()),
    };
    let api = DemoApi::start_scaled(Scale {
        customers,
        tenants_per_customer: tenants,
        tenant_types: types,
        big_every,
        big_types,
        max_requests_per_second: 0,
        latency: Duration::ZERO,
        churn_percent: 20,
        max_concurrency: 8,
        typical_mix: false,
    })
    .await?;
    let config: Config = api.config()?;
    let metrics = Arc::new(Metrics::new(&BuildInfo::current())?);
    let mut plan = Plan {
        targets: targets_of(&config.customers, 0, 1),
        client: build_client(&config.elements, &metrics)?,
        poll: config.poll,
        complete: true,
        discovered: None,
        version: 1,
        origin: Arc::new(Origin::of(&config.elements)),
        discovery: None,
    };
    // Far below the 1s a config allows: this drives polls back to back.
    plan.poll.interval = Duration::from_millis(1);
    let targets = plan.targets.len() as u64;
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(plan));
    let status = Arc::new(ArcSwap::from_pointee(Status::default()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let plan = rx.borrow().clone();
    let poller = Poller::new(plan, metrics.clone(), status.clone(), None, None).await;
    let poller = tokio::spawn(run_poller(poller, rx, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let mut samples = Vec::new();
    let mut checkpoints = vec![1, (cycles / 10).max(1), (cycles / 2).max(1), cycles.max(1)];
    checkpoints.dedup();
    for &at in &checkpoints {
        while status.load().polls < at * targets {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Scrape too, as Prometheus would (a plain scrape writes the whole text out).
        let _ = metrics.scrape(true, Format::Text);
        let _ = metrics.scrape(false, Format::Text).concat();
        let rss = rss_kib();
        samples.push((at, rss));
        println!(
            "cycle {at:>5}: RSS {:.1} MiB, series {}",
            rss as f64 / 1024.0,
            metrics.snapshot().series
        );
    }
    let _ = stop_tx.send(true);
    let _ = poller.await;
    let (first_at, first) = samples[0];
    let (base_at, base) = samples[1.min(samples.len() - 1)];
    let last = samples[samples.len() - 1].1;
    println!(
        "churn: {targets} targets, {} series: RSS {:.1} MiB after {first_at} polls of every target, {:.1} MiB after {cycles}; {:.2}x the RSS after {base_at}",
        metrics.snapshot().series,
        first as f64 / 1024.0,
        last as f64 / 1024.0,
        last as f64 / base as f64,
    );
    Ok(())
}
