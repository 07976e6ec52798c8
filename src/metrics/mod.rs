//! The exporter's metrics: a dedicated registry for self-metrics and a pre-rendered snapshot of
//! the seat series.
//!
//! Seat series are rendered into bytes once per batch of polls ([`render_snapshot`]), plain and
//! gzip-compressed, and published with an atomic pointer swap. A scrape ([`Metrics::scrape`])
//! clones that reference and appends only the small per-scrape part (self-metrics and `process_*`),
//! so no scrape waits for a poll, no poll waits for a scrape, and no lock is held while writing.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use flate2::Compression;
use prometheus::{Encoder, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder};

mod api;
mod customers;
mod format;
mod polling;
mod registry;
mod snapshot;

pub use api::ApiMetrics;
pub use customers::CustomerInfo;
use format::text_to_openmetrics;
pub use format::Format;
pub use polling::{PollingMetrics, SKIP_REASONS};
use registry::{opts, register};

use snapshot::{deflate_raw, GZIP_HEADER};
pub use snapshot::{
    render_snapshot, Scrape, SeatSeries, Snapshot, TargetCounters, TargetLabels, TargetView,
};

/// Build facts for `avepoint_exporter_build_info` and `--version`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git revision, or `unknown`.
    pub revision: &'static str,
    /// Compiler version, or `unknown`.
    pub rustc_version: &'static str,
    /// UTC date of the build (`YYYY-MM-DD`), or `unknown`.
    pub build_date: &'static str,
}

impl BuildInfo {
    /// The facts of this binary, as recorded by `build.rs`.
    pub fn current() -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            revision: option_env!("AEE_GIT_REVISION").unwrap_or("unknown"),
            rustc_version: option_env!("AEE_RUSTC_VERSION").unwrap_or("unknown"),
            build_date: option_env!("AEE_BUILD_DATE").unwrap_or("unknown"),
        }
    }

    /// What `--version` prints, in the shape Prometheus exporters use.
    pub fn version_text(&self) -> String {
        format!(
            "avepoint-elements-exporter, version {} (revision: {})\n  build date:       {}\n  rustc version:    {}\n  platform:         {}/{}\n",
            self.version,
            self.revision,
            self.build_date,
            self.rustc_version,
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    }
}

/// Self-metrics updated as things happen, plus the current seat snapshot.
pub struct Metrics {
    registry: Registry,
    snapshot: ArcSwap<Snapshot>,
    /// The API client's group.
    api: ApiMetrics,
    /// Polling's group.
    polling: PollingMetrics,
    /// 1 if the last config (re)load succeeded.
    config_reload_successful: IntGauge,
    /// Scrapes served, by `format` and `encoding`.
    scrapes: IntCounterVec,
    /// Unix time of the last good (re)load.
    config_reload_success_timestamp: Gauge,
    shard_info: IntGaugeVec,
}

impl Metrics {
    /// A fresh registry with every self-metric registered and an empty snapshot.
    pub fn new(build: &BuildInfo) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                opts(
                    "build_info",
                    "Build facts of the running exporter; always 1.",
                ),
                &["version", "revision", "rustc_version"],
            ),
        )?;
        build_info
            .with_label_values(&[build.version, build.revision, build.rustc_version])
            .set(1);
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            api: ApiMetrics::register(&registry)?,
            polling: PollingMetrics::register(&registry)?,
            scrapes: {
                let scrapes = register(
                    &registry,
                    IntCounterVec::new(
                        opts(
                            "scrapes_total",
                            "Scrapes of the metrics endpoint, by exposition format (text, openmetrics) and encoding (identity, gzip).",
                        ),
                        &["format", "encoding"],
                    ),
                )?;
                for format in ["text", "openmetrics"] {
                    for encoding in ["identity", "gzip"] {
                        scrapes.with_label_values(&[format, encoding]);
                    }
                }
                scrapes
            },
            config_reload_successful: register(
                &registry,
                IntGauge::with_opts(opts(
                    "config_last_reload_successful",
                    "1 if the last configuration (re)load succeeded, else 0.",
                )),
            )?,
            config_reload_success_timestamp: register(
                &registry,
                Gauge::with_opts(opts(
                    "config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration (re)load.",
                )),
            )?,
            shard_info: register(
                &registry,
                IntGaugeVec::new(
                    opts(
                        "shard_info",
                        "The shard of the targets this instance polls; always 1.",
                    ),
                    &["shard", "total_shards"],
                ),
            )?,
            registry,
        })
    }

    /// Records which shard this instance polls.
    pub fn set_shard(&self, shard: u32, total: u32) {
        self.shard_info.reset();
        self.shard_info
            .with_label_values(&[&shard.to_string(), &total.to_string()])
            .set(1);
    }

    /// The API client's metric group.
    pub fn api(&self) -> &ApiMetrics {
        &self.api
    }

    /// Polling's metric group.
    pub fn polling(&self) -> &PollingMetrics {
        &self.polling
    }

    /// The configuration was (re)loaded at `at`.
    pub fn config_loaded(&self, at: std::time::SystemTime) {
        self.config_reload_successful.set(1);
        self.config_reload_success_timestamp
            .set(crate::domain::unix_seconds(at));
    }

    /// A reload failed; the running configuration stays.
    pub fn config_failed(&self) {
        self.config_reload_successful.set(0);
    }

    /// Replaces the seat snapshot served by scrapes.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The current seat snapshot (tests and benchmarks look into it).
    #[cfg(any(test, feature = "bench"))]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Whether a scrape that accepts gzip (`gzip`) is answered gzip-compressed now: only
    /// while the snapshot's compressed blocks are there (see [`Metrics::scrape`]).
    pub fn serves_gzip(&self, gzip: bool) -> bool {
        gzip && self.snapshot.load().compressed()
    }

    /// The body of one scrape: the shared snapshot, then the freshly rendered self-metrics.
    ///
    /// With `gzip` (and a compressed snapshot; see [`Snapshot::deflate`]) the body is one gzip
    /// stream: a header, the snapshot's pre-compressed
    /// deflate blocks (sync-flushed, so more blocks may follow), the self-metrics compressed
    /// now as the final blocks, and a trailer whose CRC-32 combines both parts (as pigz does).
    pub fn scrape(&self, gzip: bool, format: Format) -> Scrape {
        let snapshot = self.snapshot.load_full();
        let customers = self.polling.customer_info();
        let mut dynamic = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut dynamic) {
            tracing::error!(error = %e, "cannot encode self-metrics");
        }
        if format == Format::OpenMetrics {
            let text = String::from_utf8_lossy(&dynamic);
            let mut converted = text_to_openmetrics(&text);
            converted.push_str("# EOF\n");
            dynamic = converted.into_bytes();
        }
        // customer_info (a gauge: the same in both formats) comes before the self-metrics,
        // which end with OpenMetrics' `# EOF`; a gzip scrape sends its pre-compressed blocks,
        // or compresses it with the self-metrics if compressing it once failed.
        let spliced = customers.deflate.clone().filter(|_| gzip);
        let tail_text: Vec<&[u8]> = match spliced {
            Some(_) => vec![&dynamic],
            None => vec![&customers.text, &dynamic],
        };
        let compressed = match snapshot.gzip_pieces(format) {
            Some(pieces) if gzip => match deflate_raw(&tail_text, Compression::fast(), true) {
                Ok(tail) => Some((pieces, tail)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot compress a scrape; sending plain text");
                    None
                }
            },
            _ => None,
        };
        self.scrapes
            .with_label_values(&[
                format.label(),
                if compressed.is_some() {
                    "gzip"
                } else {
                    "identity"
                },
            ])
            .inc();
        let Some((pieces, mut tail)) = compressed else {
            let rest = [customers.text.clone(), Bytes::from(dynamic)]
                .into_iter()
                .filter(|piece| !piece.is_empty())
                .collect();
            return Scrape::new(false, format, Some(snapshot), rest);
        };
        let customers_blocks =
            spliced.map(|(blocks, crc)| (blocks, crc, customers.text.len() as u64));
        let mut body = Vec::with_capacity(pieces.len() + 3);
        body.push(Bytes::from_static(&GZIP_HEADER));
        let mut crc = crc32fast::Hasher::new();
        let mut total = 0u64;
        for (blocks, piece_crc, len) in pieces.into_iter().chain(customers_blocks) {
            crc.combine(&crc32fast::Hasher::new_with_initial_len(piece_crc, len));
            total += len;
            body.push(blocks);
        }
        let mut tail_crc = crc32fast::Hasher::new();
        for text in &tail_text {
            tail_crc.update(text);
            total += text.len() as u64;
        }
        crc.combine(&tail_crc);
        tail.extend_from_slice(&crc.finalize().to_le_bytes());
        let total = total as u32; // ISIZE is the length mod 2^32
        tail.extend_from_slice(&total.to_le_bytes());
        body.push(Bytes::from(tail));
        Scrape::new(true, format, None, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantSeats;
    use crate::domain::TenantType;

    /// Decodes a gzip body with a decoder that reads exactly one member and checks its CRC.
    fn gunzip(data: &[u8]) -> String {
        let mut d = flate2::read::GzDecoder::new(data);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut d, &mut back).unwrap();
        back
    }

    #[test]
    fn scrape_appends_self_metrics_once() {
        let m = Metrics::new(&BuildInfo::current()).unwrap();
        m.api().count_request("token", "200");
        let body: Vec<u8> = m.scrape(false, Format::Text).concat();
        let text = String::from_utf8(body).unwrap();
        assert!(text
            .contains("avepoint_exporter_api_requests_total{code=\"200\",endpoint=\"token\"} 1"));
        assert_eq!(text.matches("# TYPE available_user_seats gauge").count(), 1);
        // gzip: one member (single-member decoders such as curl's read all of it).
        let gz: Vec<u8> = m.scrape(true, Format::Text).concat();
        let back = gunzip(&gz);
        assert!(back.starts_with("# HELP available_user_seats"));
        assert!(back.contains("avepoint_exporter_build_info"));
    }

    #[test]
    fn gzip_of_a_large_snapshot_round_trips() {
        let m = Metrics::new(&BuildInfo::current()).unwrap();
        let l = TargetLabels::new("c".into(), "n".into(), TenantType::Salesforce);
        let tenants: Vec<TenantSeats> = (0..20_000)
            .map(|i| TenantSeats {
                id: format!("tenant-{i}"),
                name: format!("Tenant number {i}"),
                available: i,
                assigned: 3 * i,
            })
            .collect();
        let snap = render_snapshot(&[TargetView {
            labels: Arc::new(l),
            up: true,
            last_success: Some(1.0),
            seats: Arc::new(SeatSeries::new(&tenants)),
            last_tenant_count: Some(tenants.len()),
            counters: Arc::default(),
        }]);
        let plain = snap.text();
        m.publish(snap);
        let back = gunzip(&m.scrape(true, Format::Text).concat());
        assert!(back.starts_with(std::str::from_utf8(&plain).unwrap()));
        assert!(back.contains("avepoint_exporter_poll_overruns_total 0"));
        let text = String::from_utf8(m.scrape(false, Format::Text).concat()).unwrap();
        assert!(
            text.as_bytes().starts_with(&plain),
            "plain and gzip serve the same snapshot"
        );
        // A snapshot whose compression failed is never sent as a broken gzip body: scrapes
        // that accept gzip get the plain text, and say so.
        let mut snap = (*m.snapshot()).clone();
        snap.deflate = None;
        m.publish(snap);
        let scrape = m.scrape(true, Format::Text);
        assert!(!scrape.is_gzip());
        assert!(scrape.concat().starts_with(&plain));
        assert!(m.scrape(false, Format::Text).concat().starts_with(&plain));
    }

    #[test]
    fn customer_info_is_served_from_its_rendered_family_in_every_encoding() {
        let m = Metrics::new(&BuildInfo::current()).unwrap();
        let line = "avepoint_exporter_customer_info{country_or_region=\"DE\",customer_id=\"c1\",customer_name=\"Contoso\",management_mode=\"Managed\"} 1\n";
        let customers = || {
            [CustomerInfo {
                id: "c1",
                name: "Contoso",
                country_or_region: "DE",
                management_mode: "Managed",
            }]
        };
        m.polling().set_discovery(true, 1, customers());
        let check = |m: &Metrics| {
            for format in [Format::Text, Format::OpenMetrics] {
                let plain = String::from_utf8(m.scrape(false, format).concat()).unwrap();
                let scrape = m.scrape(true, format);
                assert!(scrape.is_gzip());
                let gz = gunzip(&scrape.concat());
                assert_eq!(plain.matches(line).count(), 1, "{plain}");
                assert_eq!(
                    plain
                        .matches("# TYPE avepoint_exporter_customer_info gauge")
                        .count(),
                    1
                );
                // Before the self-metrics (OpenMetrics ends with `# EOF`).
                assert!(plain.find(line) < plain.find("avepoint_exporter_build_info"));
                // The same text either way, but for the scrape counter and the process.
                let counterless = |t: &str| {
                    t.lines()
                        .filter(|l| {
                            !l.starts_with("avepoint_exporter_scrapes_total")
                                && !l.starts_with("process_")
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                assert_eq!(counterless(&plain), counterless(&gz));
            }
        };
        check(&m);
        // Compressing it failed once: gzip scrapes compress it with the self-metrics.
        let family = m.polling().customer_info();
        m.polling()
            .set_customer_info_for_test(customers::CustomerInfoFamily {
                text: family.text.clone(),
                deflate: None,
            });
        check(&m);
        // A plan without customers: no family at all.
        m.polling().set_discovery(true, 0, []);
        let plain = String::from_utf8(m.scrape(false, Format::Text).concat()).unwrap();
        assert!(!plain.contains("customer_info"), "{plain}");
        assert!(!gunzip(&m.scrape(true, Format::Text).concat()).contains("customer_info"));
    }

    #[test]
    fn openmetrics_names_counter_families_without_total() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n# HELP g Gauge.\n# TYPE g gauge\ng 1\n# TYPE u untyped\nu 1\n";
        assert_eq!(
            text_to_openmetrics(text),
            "# HELP a Things.\n# TYPE a counter\na_total 3\n# HELP g Gauge.\n# TYPE g gauge\ng 1\n# TYPE u unknown\nu 1\n"
        );
    }
}
