//! `avepoint_exporter_customer_info`: one series per planned customer, rendered once per plan.
//!
//! Why not the registry: at MSP scale there are thousands of customers, and the registry
//! gathers, sorts and encodes every series on every scrape (and a gzip scrape compresses them
//! again). The family changes only with the plan, so it is written and compressed then, and
//! every scrape sends the same bytes (see [`super::Metrics::scrape`]).

use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression;

use super::snapshot::{deflate_raw, Escaped};

/// The family's `# HELP` and `# TYPE` lines (a gauge: the same in both formats).
const HEADER: &str = "# HELP avepoint_exporter_customer_info One per customer this shard polls, configured or discovered, from the start: its customer_name (the id when it has none) and, when it is on the customer list, its country and management mode; always 1.\n# TYPE avepoint_exporter_customer_info gauge\n";

/// One planned customer's facts, as `avepoint_exporter_customer_info` labels them.
pub struct CustomerInfo<'a> {
    /// Customer id.
    pub id: &'a str,
    /// The name it is polled under.
    pub name: &'a str,
    /// `countryOrRegion` from the list.
    pub country_or_region: &'a str,
    /// `managementMode` from the list.
    pub management_mode: &'a str,
}

/// The family as a scrape sends it: its text, and the same text as raw deflate blocks
/// (sync-flushed, not final) with its CRC-32, so that a gzip scrape splices it in as is.
#[derive(Debug, Default)]
pub(super) struct CustomerInfoFamily {
    /// The text; empty without customers (a family without series is not shown).
    pub(super) text: Bytes,
    /// `text` compressed, and its CRC-32; `None` when compressing failed (a gzip scrape then
    /// compresses `text` with its own tail).
    pub(super) deflate: Option<(Bytes, u32)>,
}

impl CustomerInfoFamily {
    /// Renders and compresses the family of `customers`: labels in name order, series in
    /// the order of their label values, one per distinct label set (as the registry would).
    pub(super) fn render<'a>(
        customers: impl IntoIterator<Item = CustomerInfo<'a>>,
    ) -> Arc<CustomerInfoFamily> {
        let mut rows: Vec<[&str; 4]> = customers
            .into_iter()
            .map(|c| [c.country_or_region, c.id, c.name, c.management_mode])
            .collect();
        if rows.is_empty() {
            return Arc::default();
        }
        rows.sort_unstable();
        rows.dedup();
        let mut text = String::with_capacity(HEADER.len() + rows.len() * 160);
        text.push_str(HEADER);
        for [country, id, name, mode] in rows {
            use std::fmt::Write as _;
            let _ = writeln!(
                text,
                "avepoint_exporter_customer_info{{country_or_region=\"{}\",customer_id=\"{}\",customer_name=\"{}\",management_mode=\"{}\"}} 1",
                Escaped(country),
                Escaped(id),
                Escaped(name),
                Escaped(mode)
            );
        }
        let deflate = match deflate_raw(&[text.as_bytes()], Compression::new(6), false) {
            Ok(blocks) => Some((Bytes::from(blocks), crc32fast::hash(text.as_bytes()))),
            Err(e) => {
                tracing::error!(error = %e, "cannot compress customer_info; gzip scrapes compress it each time");
                None
            }
        };
        Arc::new(CustomerInfoFamily {
            text: Bytes::from(text),
            deflate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

    fn info<'a>(id: &'a str, name: &'a str, country: &'a str, mode: &'a str) -> CustomerInfo<'a> {
        CustomerInfo {
            id,
            name,
            country_or_region: country,
            management_mode: mode,
        }
    }

    /// The family as the registry's text encoder writes it: what this module replaces.
    fn as_the_registry_writes(rows: &[[&str; 4]]) -> String {
        let registry = Registry::new();
        let vec = IntGaugeVec::new(
            Opts::new(
                "customer_info",
                HEADER
                    .lines()
                    .next()
                    .unwrap()
                    .splitn(4, ' ')
                    .nth(3)
                    .unwrap(),
            )
            .namespace("avepoint_exporter"),
            &[
                "customer_id",
                "customer_name",
                "country_or_region",
                "management_mode",
            ],
        )
        .unwrap();
        registry.register(Box::new(vec.clone())).unwrap();
        for [id, name, country, mode] in rows {
            vec.with_label_values(&[id, name, country, mode]).set(1);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_what_the_registry_wrote_byte_for_byte() {
        let rows = [
            ["c1", "Contoso", "US", "Managed"],
            ["c3", "Fabrikam", "GB", "Managed"],
            ["c6", "Standalone", "", ""],
            ["n1", "Northwind", "AU", "Managed"],
            // A duplicate is one series; escaping as the text format wants it.
            ["n1", "Northwind", "AU", "Managed"],
            ["q\"1", "Back\\slash\nand \"quotes\"", "A", "x"],
            // Values that sort differently as text than as label values ("A" < "A!").
            ["z1", "Z", "A!", "m"],
        ];
        let family = CustomerInfoFamily::render(
            rows.iter()
                .map(|[id, name, country, mode]| info(id, name, country, mode)),
        );
        assert_eq!(
            std::str::from_utf8(&family.text).unwrap(),
            as_the_registry_writes(&rows)
        );
        let (blocks, crc) = family.deflate.clone().unwrap();
        assert_eq!(crc, crc32fast::hash(&family.text));
        let mut back = Vec::new();
        let mut d = flate2::read::DeflateDecoder::new(&blocks[..]);
        // Sync-flushed, not final: the decoder reads everything, then reports the end.
        let _ = std::io::Read::read_to_end(&mut d, &mut back);
        assert_eq!(back, family.text);
    }

    #[test]
    fn no_customers_no_family() {
        let family = CustomerInfoFamily::render([]);
        assert!(family.text.is_empty());
        assert_eq!(as_the_registry_writes(&[]), "");
    }
}
