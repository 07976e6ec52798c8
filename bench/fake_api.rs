//! A synthetic Elements API for benchmarks: `customers` × `tenants` Microsoft 365 tenants,
//! each tenants answer delayed by `latency_ms`. Writes an exporter config for it and runs
//! until killed.
//!
//! Usage: bench-fake-api CUSTOMERS TENANTS_PER_CUSTOMER LATENCY_MS MAX_CONCURRENCY CONFIG_OUT

use std::time::Duration;

use avepoint_elements_exporter::demo::{DemoApi, Scale};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [customers, tenants, latency, concurrency, out] = args.as_slice() else {
        return Err("usage: bench-fake-api CUSTOMERS TENANTS_PER_CUSTOMER LATENCY_MS MAX_CONCURRENCY CONFIG_OUT".into());
    };
    let api = DemoApi::start_scaled(Scale {
        customers: customers.parse()?,
        tenants_per_customer: tenants.parse()?,
        latency: Duration::from_millis(latency.parse()?),
        churn_percent: 0,
        max_concurrency: concurrency.parse()?,
    })
    .await?;
    std::fs::write(out, api.config_yaml())?;
    println!("ready {}", api.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
