//! A synthetic Elements API for benchmarks, each tenants answer delayed by `latency_ms`.
//! Writes an exporter config for it and runs until killed.
//!
//! Usage: bench-fake-api CUSTOMERS TENANTS_PER_CUSTOMER LATENCY_MS MAX_CONCURRENCY CONFIG_OUT
//!        [TENANT_TYPES BIG_EVERY MAX_REQUESTS_PER_SECOND [BIG_TYPES [CHURN_PERCENT]]]
//!
//! Without the optional arguments: one type (Microsoft 365), every customer with
//! TENANTS_PER_CUSTOMER tenants, no rate limit. With them (the MSP shape): TENANT_TYPES types
//! per customer, every BIG_EVERY-th customer with TENANTS_PER_CUSTOMER tenants in BIG_TYPES
//! (default all) of its types and the other targets with a handful, and the given rate limit;
//! CHURN_PERCENT of the tenants get new ids on every poll.

use std::time::Duration;

use avepoint_elements_exporter::bench::Scale;
use avepoint_elements_exporter::DemoApi;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (fixed, shape) = args.split_at(args.len().min(5));
    let [customers, tenants, latency, concurrency, out] = fixed else {
        return Err("usage: bench-fake-api CUSTOMERS TENANTS_PER_CUSTOMER LATENCY_MS MAX_CONCURRENCY CONFIG_OUT [TENANT_TYPES BIG_EVERY MAX_REQUESTS_PER_SECOND]".into());
    };
    let (types, big_every, rate, big_types, churn) = match shape {
        [] => (1, 0, 0, 1, 0),
        [t, b, r] => (t.parse()?, b.parse()?, r.parse()?, 4, 0),
        [t, b, r, bt] => (t.parse()?, b.parse()?, r.parse()?, bt.parse()?, 0),
        [t, b, r, bt, c] => (t.parse()?, b.parse()?, r.parse()?, bt.parse()?, c.parse()?),
        _ => {
            return Err(
                "give TENANT_TYPES BIG_EVERY MAX_REQUESTS_PER_SECOND [BIG_TYPES], or none".into(),
            )
        }
    };
    let api = DemoApi::start_scaled(Scale {
        customers: customers.parse()?,
        tenants_per_customer: tenants.parse()?,
        tenant_types: types,
        big_every,
        big_types,
        max_requests_per_second: rate,
        latency: Duration::from_millis(latency.parse()?),
        churn_percent: churn,
        max_concurrency: concurrency.parse()?,
        typical_mix: false,
    })
    .await?;
    std::fs::write(out, api.config_yaml())?;
    println!("ready {}", api.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
