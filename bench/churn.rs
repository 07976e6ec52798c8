//! Memory over many polls with churning tenants: runs the real poller in-process against the
//! synthetic API (10 000 tenants, 20 % of them with new ids every poll) for 1 000 polls of every
//! target and
//! prints the resident set size along the way. Flat RSS means no leak of tenant or label data.
//!
//! Usage: bench-churn [CYCLES]

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use avepoint_elements_exporter::app::build_client;
use avepoint_elements_exporter::config::Config;
use avepoint_elements_exporter::demo::{DemoApi, Scale};
use avepoint_elements_exporter::metrics::{BuildInfo, Format, Metrics};
use avepoint_elements_exporter::plan::targets_of;
use avepoint_elements_exporter::poller::{self, Plan, Status};

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cycles: u64 = std::env::args().nth(1).map_or(Ok(1000), |a| a.parse())?;
    let api = DemoApi::start_scaled(Scale {
        customers: 100,
        tenants_per_customer: 100,
        tenant_types: 1,
        big_every: 0,
        big_types: 1,
        max_requests_per_second: 0,
        latency: Duration::ZERO,
        churn_percent: 20,
        max_concurrency: 8,
    })
    .await?;
    let config: Config = api.config()?;
    let metrics = Arc::new(Metrics::new(&BuildInfo::current())?);
    let mut plan = Plan {
        targets: targets_of(&config.customers, 0, 1),
        client: build_client(&config, &metrics)?,
        poll: config.poll,
        complete: true,
    };
    // Far below the 1s a config allows: this drives polls back to back.
    plan.poll.interval = Duration::from_millis(1);
    let targets = plan.targets.len() as u64;
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(plan));
    let status = Arc::new(ArcSwap::from_pointee(Status::default()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(poller::run(
        rx,
        metrics.clone(),
        status.clone(),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let mut samples = Vec::new();
    let checkpoints = [10, cycles / 10, cycles / 2, cycles];
    for &at in &checkpoints {
        while status.load().polls < at * targets {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Scrape too, as Prometheus would.
        let _ = metrics.scrape(true, Format::Text);
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
    let base = samples[1].1 as f64;
    let last = samples[samples.len() - 1].1 as f64;
    println!(
        "churn: RSS after {} cycles is {:.2}x the RSS after {} cycles",
        cycles,
        last / base,
        checkpoints[1]
    );
    Ok(())
}
