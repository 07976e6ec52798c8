//! Criterion benches for the two hot paths: parsing a page of the API's answer, and rendering
//! the seat snapshot (plus what one scrape costs once the snapshot exists).

use std::hint::black_box;

use avepoint_elements_exporter::bench::{
    parse_page, render_snapshot, Format, Metrics, SeatSeries, TargetLabels, TargetView,
    TenantSeats, TenantType,
};
use avepoint_elements_exporter::BuildInfo;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn page_body(records: usize) -> String {
    let data: Vec<serde_json::Value> = (0..records)
        .map(|i| {
            serde_json::json!({"type": 0, "tenantId": format!("9a4f6c1e-{i:04}-4e5b-9d3a-65215f920001"),
                "tenantName": format!("Tenant {i} of Contoso"), "availableUserSeat": i, "assignedUserSeat": 3 * i})
        })
        .collect();
    serde_json::json!({"data": data, "metadata": {"pageIndex": 1, "pageSize": records, "totalCount": 1000}})
        .to_string()
}

fn parse(c: &mut Criterion) {
    let body = page_body(100);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("page_of_100", |b| {
        b.iter(|| parse_page(black_box(body.as_bytes())))
    });
    g.finish();
}

fn render(c: &mut Criterion) {
    // 500 targets of 100 tenants: 50 000 tenants, 100 000 seat series.
    let labels: Vec<TargetLabels> = (0..500)
        .map(|i| {
            TargetLabels::new(
                format!("bench-{i:05}").into(),
                format!("Customer {i}").into(),
                TenantType::Microsoft365,
            )
        })
        .collect();
    let tenants: Vec<Vec<TenantSeats>> = (0..500)
        .map(|i| {
            (0..100)
                .map(|j| TenantSeats {
                    id: format!("bench-{i:05}-t{j:05}"),
                    name: format!("Tenant {j} of bench-{i:05}"),
                    available: j,
                    assigned: 2 * j,
                })
                .collect()
        })
        .collect();
    let labels: Vec<std::sync::Arc<TargetLabels>> =
        labels.into_iter().map(std::sync::Arc::new).collect();
    let views: Vec<TargetView> = labels
        .iter()
        .zip(&tenants)
        .map(|(l, t)| TargetView {
            labels: l.clone(),
            up: true,
            last_success: Some(1.7e9),
            seats: std::sync::Arc::new(SeatSeries::new(t)),
            last_tenant_count: Some(t.len()),
            counters: Default::default(),
        })
        .collect();
    let mut g = c.benchmark_group("render");
    g.sample_size(10);
    // Once per successful poll of a target (here: all 500).
    g.bench_function("target_series_100k_series", |b| {
        b.iter(|| {
            tenants
                .iter()
                .map(|t| SeatSeries::new(black_box(t)).tenants())
                .sum::<usize>()
        })
    });
    // Once per publish: renders target health, writes the text once to deflate it.
    g.bench_function("snapshot_100k_series", |b| {
        b.iter(|| render_snapshot(black_box(&views)))
    });
    g.finish();

    let metrics = Metrics::new(&BuildInfo::current()).expect("registry");
    metrics.publish(render_snapshot(&views));
    let mut g = c.benchmark_group("scrape");
    g.bench_function("plain_100k_series", |b| {
        b.iter(|| metrics.scrape(false, Format::Text).concat().len())
    });
    g.bench_function("gzip_100k_series", |b| {
        b.iter(|| metrics.scrape(true, Format::Text))
    });
    g.finish();
}

criterion_group!(benches, parse, render);
criterion_main!(benches);
