//! The synthetic dataset behind the benchmarks (`bench/`, `benches/`): thousands of customers
//! of the MSP shape, their pages rendered straight to JSON. Only built for tests and with the
//! `bench` feature; without it [`Scale`] has no values, so the exporter carries none of this.

use std::time::Duration;

use super::fleet::fnv;
use crate::domain::TenantType;

/// A synthetic dataset for benchmarks: `customers` customers (`bench-00000`, ...) with
/// `tenant_types` tenant types each, answered after `latency`. Every `big_every`-th customer
/// (0: every one) has `tenants_per_customer` tenants in each of its first `big_types` types;
/// the other targets, like most of an MSP's, 1 to 5 tenants (1 to 3 when `big_types` < 4).
/// With `typical_mix`, customers have only some types, as an MSP's do: 80 % Microsoft 365
/// only, 15 % Microsoft 365 and one other, 5 % all four; the types they lack answer empty.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Number of customers.
    pub customers: usize,
    /// Tenants of each type of a big customer.
    pub tenants_per_customer: usize,
    /// Tenant types polled per customer (1..=4, in API number order).
    pub tenant_types: usize,
    /// Every this many customers one is big; 0 or 1: all are.
    pub big_every: usize,
    /// How many tenant types of a big customer are big (the others are small).
    pub big_types: usize,
    /// `max_requests_per_second` of the generated config (0: unlimited).
    pub max_requests_per_second: u32,
    /// Delay before each tenants answer.
    pub latency: Duration,
    /// Percentage of tenants whose id changes on every poll (tenant churn).
    pub churn_percent: u8,
    /// `max_concurrency` of the generated config.
    pub max_concurrency: usize,
    /// Customers have only some tenant types (see the type's documentation).
    pub typical_mix: bool,
}

impl Scale {
    /// `(max_concurrency, max_requests_per_second)` of the generated config.
    pub(super) fn limits(&self) -> (usize, u32) {
        (self.max_concurrency, self.max_requests_per_second)
    }

    /// Delay before each tenants answer.
    pub(super) fn latency(&self) -> Duration {
        self.latency
    }

    /// The `customers:` section listing every synthetic customer.
    pub(super) fn customers_yaml(&self) -> String {
        let mut yaml = String::from("customers:\n");
        let types: Vec<&str> = TenantType::ALL[..self.tenant_types.clamp(1, 4)]
            .iter()
            .map(|t| t.name())
            .collect();
        for i in 0..self.customers {
            yaml.push_str(&format!(
                "  - id: bench-{i:05}\n    name: {}\n    tenant_types: [{}]\n",
                organization(i),
                types.join(", ")
            ));
        }
        yaml
    }
}

/// A realistic organization name (40 to 60 characters) for synthetic customer `i`.
fn organization(i: usize) -> String {
    const FIRST: [&str; 8] = [
        "Contoso",
        "Fabrikam",
        "Northwind",
        "Tailspin",
        "Wingtip",
        "Adventure",
        "Litware",
        "Proseware",
    ];
    const SECOND: [&str; 6] = [
        "Pharmaceuticals",
        "Logistics",
        "Financial Services",
        "Manufacturing",
        "Healthcare",
        "Consulting",
    ];
    format!(
        "{} {} Holding GmbH & Co. KG (EMEA) {i:05}",
        FIRST[i % FIRST.len()],
        SECOND[(i / FIRST.len()) % SECOND.len()]
    )
}

/// Whether customer `index` of a typical MSP mix has tenants of `tenant_type`: one in twenty
/// has all four, three in twenty Microsoft 365 and one other, the rest Microsoft 365 only.
fn has_type(index: usize, tenant_type: TenantType) -> bool {
    let kind = usize::from(tenant_type.api_number());
    match index % 20 {
        0 => true,
        1..=3 => kind == 0 || kind == 1 + index % 3,
        _ => kind == 0,
    }
}

/// Tenants of one (customer, type) of a synthetic dataset.
fn tenants(scale: &Scale, customer: &str, tenant_type: TenantType) -> u64 {
    let index: usize = customer
        .strip_prefix("bench-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if scale.typical_mix && !has_type(index, tenant_type) {
        return 0;
    }
    let big_customer = scale.big_every <= 1 || index.is_multiple_of(scale.big_every);
    if big_customer && usize::from(tenant_type.api_number()) < scale.big_types {
        scale.tenants_per_customer as u64
    } else {
        let spread = if scale.big_types < 4 { 3 } else { 5 };
        1 + fnv(&format!("{customer}/{}", tenant_type.api_number())) % spread
    }
}

impl Scale {
    /// One page of a synthetic customer's tenants, rendered straight to JSON.
    pub(super) fn page(
        &self,
        customer: &str,
        tenant_type: TenantType,
        poll: u64,
        page_index: u64,
        page_size: u64,
    ) -> String {
        use std::fmt::Write as _;
        let total = tenants(self, customer, tenant_type);
        let kind = tenant_type.api_number();
        let start = (page_index - 1) * page_size;
        let end = (start + page_size).min(total);
        let mut out = String::with_capacity(180 * (end.saturating_sub(start)) as usize + 128);
        out.push_str("{\"data\":[");
        for j in start..end {
            if j > start {
                out.push(',');
            }
            let seats = 10 + fnv(&format!("{customer}{j}")) % 500;
            let assigned = (seats * 7 / 10 + poll % 5).min(seats);
            let _ = write!(
                out,
                "{{\"type\":{kind},\"tenantId\":\"{customer}-{kind}-t{j:05}"
            );
            if (j % 100) < u64::from(self.churn_percent) {
                let _ = write!(out, "-p{poll}");
            }
            let _ = write!(
            out,
            "\",\"tenantName\":\"{customer} tenant {j:05}.onmicrosoft.com\",\"availableUserSeat\":{},\"assignedUserSeat\":{assigned}}}",
            seats - assigned
        );
        }
        let _ = write!(
        out,
        "],\"metadata\":{{\"pageIndex\":{page_index},\"pageSize\":{page_size},\"totalCount\":{total}}}}}"
    );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `customers` customers of four types, every tenth with 250 tenants of each.
    fn msp(customers: usize) -> Scale {
        Scale {
            customers,
            tenants_per_customer: 250,
            tenant_types: 4,
            big_every: 10,
            big_types: 4,
            max_requests_per_second: 0,
            latency: Duration::ZERO,
            churn_percent: 0,
            max_concurrency: 1,
            typical_mix: false,
        }
    }

    #[test]
    fn synthetic_pages_parse_and_churn() {
        let scale = Scale {
            churn_percent: 10,
            ..msp(20)
        };
        let m365 = TenantType::Microsoft365;
        let page = |customer: &str, t: TenantType, poll: u64, index: u64| {
            crate::elements::client::parse_page(
                scale.page(customer, t, poll, index, 100).as_bytes(),
            )
            .unwrap()
        };
        // Every tenth customer is big: 250 tenants of each type, three pages.
        let p1 = page("bench-00000", m365, 0, 1);
        assert_eq!((p1.items.len(), p1.total_count), (100, Some(250)));
        assert!(p1.invalid.is_empty());
        assert_eq!(page("bench-00000", m365, 0, 3).items.len(), 50);
        assert_eq!(
            page("bench-00010", TenantType::Google, 0, 1).total_count,
            Some(250)
        );
        // The others have 1 to 5 of each type, with ids unique across types.
        for i in 1..10 {
            for t in TenantType::ALL {
                let p = page(&format!("bench-{i:05}"), t, 0, 1);
                assert!((1..=5).contains(&p.items.len()), "{}", p.items.len());
                let kind = format!("-{}-t", t.api_number());
                assert!(p.items.iter().all(|x| x.id.contains(&kind)));
            }
        }
        let next = page("bench-00000", m365, 1, 1);
        let changed = p1
            .items
            .iter()
            .zip(&next.items)
            .filter(|(a, b)| a.id != b.id)
            .count();
        assert_eq!(changed, 10);
        assert!((40..=60).contains(&organization(1234).len()));
    }

    #[test]
    fn the_typical_mix_has_the_shares_of_an_msp_fleet() {
        let scale = Scale {
            typical_mix: true,
            ..msp(1000)
        };
        let mut types_per_customer = [0usize; 5];
        for i in 0..1000 {
            let id = format!("bench-{i:05}");
            let n = TenantType::ALL
                .iter()
                .filter(|t| tenants(&scale, &id, **t) > 0)
                .count();
            types_per_customer[n] += 1;
            // Everyone has Microsoft 365.
            assert!(tenants(&scale, &id, TenantType::Microsoft365) > 0);
        }
        assert_eq!(types_per_customer, [0, 800, 150, 0, 50]);
        // An empty type renders an empty page that says so.
        let page = crate::elements::client::parse_page(
            scale
                .page("bench-00004", TenantType::Google, 0, 1, 100)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!((page.items.len(), page.total_count), (0, Some(0)));
    }
}
