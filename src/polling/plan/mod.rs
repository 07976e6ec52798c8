//! Planning: which targets this instance polls. [`plan`] is a pure function of the
//! configuration, the last good customer list and the shard (no locks, no metrics, no I/O);
//! the [`planner::Planner`] calls it on every config reload and customer list and publishes
//! the [`Plan`] the poller runs.
//!
//! Customers listed in the file come first and override discovered ones with the same id; a
//! file entry without a name takes the organization from the list; discovered customers pass
//! the discovery filters; only the customers whose id hashes to this shard are kept.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::config::{Config, Customer, PollConfig};
use crate::domain::{fnv1a, TargetKey};
use crate::elements::client::{Client, DiscoveredCustomer, TargetRequest};
use crate::metrics::TargetLabels;
use crate::polling::persistence::Origin;

pub(crate) mod planner;

/// One (customer, tenant type) pair, with its labels escaped once.
#[derive(Debug, Clone)]
pub struct Target {
    /// Labels shared by all series of the target.
    pub labels: Arc<TargetLabels>,
    /// What to ask the API.
    pub request: TargetRequest,
}

impl Target {
    /// The target's identity across plans.
    pub fn key(&self) -> TargetKey {
        TargetKey::new(self.request.customer_id.clone(), self.request.tenant_type)
    }

    /// The span of one poll of the target: every log line inside it (each request, retry and
    /// result) carries `customer_id` and `tenant_type`. At error level, so that it exists at
    /// every `--log.level`: it labels warnings too.
    pub fn span(&self) -> tracing::Span {
        tracing::error_span!(
            "poll",
            customer_id = &*self.request.customer_id,
            tenant_type = self.request.tenant_type.name()
        )
    }
}

/// Facts of a customer that is polled by this shard (`avepoint_exporter_customer_info`),
/// configured or discovered, from the plan on: a customer whose polls never succeed is still
/// named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFacts {
    /// Customer id.
    pub id: String,
    /// The display name the customer is polled under.
    pub name: String,
    /// `countryOrRegion` from the customer list; empty for a customer not on it.
    pub country_or_region: String,
    /// `managementMode` from the customer list; empty for a customer not on it.
    pub management_mode: String,
}

/// The result of planning: the targets to poll and what the discovery metrics show.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    /// Targets of this shard: the file's customers in file order, then discovered ones in list
    /// order, each customer's tenant types in configured order.
    pub targets: Vec<Target>,
    /// Discovered customers of this shard that pass the filters (listed in the file or not).
    pub discovered: usize,
    /// One entry per polled customer of this shard, configured or discovered.
    pub customer_info: Vec<CustomerFacts>,
}

/// Everything the poll loop needs; replaced as a whole on config reload or discovery refresh.
#[derive(Clone)]
pub struct Plan {
    /// Targets of this shard.
    pub targets: Vec<Target>,
    /// The API client.
    pub client: Arc<Client>,
    /// Scheduling.
    pub poll: PollConfig,
    /// False while discovery is on and no customer list has arrived yet: the targets are
    /// not all known, so the exporter is not ready.
    pub complete: bool,
    /// The last good customer list the targets were planned from (kept in the persistence
    /// file, so that a discovered fleet comes back while the list cannot be fetched).
    pub discovered: Option<Arc<Vec<DiscoveredCustomer>>>,
    /// Order of planning: a plan never replaces one planned after it (a discovery refresh
    /// planned from the old config cannot undo a reload's plan).
    pub version: u64,
    /// The API and client the targets are polled from, recorded in the persistence file.
    pub origin: Arc<Origin>,
    /// When customer discovery last fetched the list; `None` while discovery is off.
    pub discovery: Option<Arc<ListFetched>>,
}

/// When the customer list was last fetched successfully (`None` before the first time):
/// set by discovery, shown on the landing page. Shared, not copied into each plan: a list
/// that changes no target publishes no plan.
#[derive(Debug, Default)]
pub struct ListFetched(Mutex<Option<SystemTime>>);

impl ListFetched {
    /// A list was fetched at `at`.
    pub fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// When the last list was fetched, if ever.
    pub fn get(&self) -> Option<SystemTime> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stable shard number for a customer: FNV-1a (64-bit) of the id's UTF-8 bytes, modulo
/// `total`. The hash is fixed by its definition, so it is the same on every version and
/// platform.
pub fn shard_of(customer_id: &str, total: u32) -> u32 {
    (fnv1a(customer_id.as_bytes()) % u64::from(total.max(1))) as u32
}

/// The `customer_name` of a customer: its configured or discovered name, else its id (so that
/// legends and alerts never show an empty name).
pub fn display_name(c: &Customer) -> &str {
    if c.name.is_empty() {
        &c.id
    } else {
        &c.name
    }
}

/// Plans the targets of `shard` of `total_shards` from `config` and, when discovery is on, the
/// last good customer list (`None` until one was fetched).
pub fn plan(
    config: &Config,
    discovered: Option<&[DiscoveredCustomer]>,
    shard: u32,
    total_shards: u32,
) -> Planned {
    let mine = |id: &str| shard_of(id, total_shards) == shard;
    let mut customers: Vec<Customer> = config.customers.clone();
    let mut planned = Planned::default();
    let mut listed: HashMap<&str, &DiscoveredCustomer> = HashMap::new();
    if let (Some(d), Some(found)) = (&config.discovery, discovered) {
        listed = found.iter().map(|c| (c.id.as_str(), c)).collect();
        for c in customers.iter_mut().filter(|c| c.name.is_empty()) {
            if let Some(l) = listed.get(c.id.as_str()) {
                c.name = l.organization.clone();
            }
        }
        let explicit: HashSet<&str> = config.customers.iter().map(|c| c.id.as_str()).collect();
        for c in found {
            if !d.keeps(&c.id, &c.organization) || !mine(&c.id) {
                continue;
            }
            planned.discovered += 1;
            if explicit.contains(c.id.as_str()) {
                continue;
            }
            customers.push(Customer {
                id: c.id.clone(),
                name: c.organization.clone(),
                tenant_types: d.tenant_types.clone(),
                license_assigned_status: d.license_assigned_status,
                tenant_ids: d.tenant_ids.clone(),
            });
        }
    }
    // Every customer of this shard, configured or discovered, whether or not a poll ever
    // succeeds: alerts and dashboards name a customer from here, not from its seat series.
    planned.customer_info = customers
        .iter()
        .filter(|c| mine(&c.id))
        .map(|c| {
            let l = listed.get(c.id.as_str());
            CustomerFacts {
                id: c.id.clone(),
                name: display_name(c).to_owned(),
                country_or_region: l.map_or_else(String::new, |l| l.country_or_region.clone()),
                management_mode: l.map_or_else(String::new, |l| l.management_mode.clone()),
            }
        })
        .collect();
    planned.targets = targets_of(&customers, shard, total_shards);
    planned
}

/// The targets of `customers` that belong to `shard` of `total`.
pub fn targets_of(customers: &[Customer], shard: u32, total: u32) -> Vec<Target> {
    customers
        .iter()
        .filter(|c| shard_of(&c.id, total) == shard)
        .flat_map(|c| {
            let id: Arc<str> = c.id.as_str().into();
            let name: Arc<str> = display_name(c).into();
            c.tenant_types.iter().map(move |&t| Target {
                labels: Arc::new(TargetLabels::new(id.clone(), name.clone(), t)),
                request: TargetRequest {
                    customer_id: id.clone(),
                    tenant_type: t,
                    license_assigned_status: c.license_assigned_status,
                    tenant_ids: c.tenant_ids.clone(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LicenseAssignedStatus;

    fn config(rest: &str) -> Config {
        crate::config::tests::with_client(rest)
    }

    fn listed(id: &str, organization: &str) -> DiscoveredCustomer {
        DiscoveredCustomer {
            id: id.into(),
            organization: organization.into(),
            country_or_region: "DE".into(),
            management_mode: "1".into(),
        }
    }

    fn keys(planned: &Planned) -> Vec<(String, String, &'static str)> {
        planned
            .targets
            .iter()
            .map(|t| {
                (
                    t.request.customer_id.to_string(),
                    t.labels.customer_name.to_string(),
                    t.request.tenant_type.name(),
                )
            })
            .collect()
    }

    #[test]
    fn the_poll_span_labels_warnings_at_log_level_warn() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::WARN)
            .with(crate::telemetry::LineLayer::with_sink(
                crate::telemetry::Format::Logfmt,
                move |l| sink.lock().unwrap().push(l.to_owned()),
            ));
        let c = config("customers:\n  - id: c1\n    tenant_types: [google]\n");
        let target = targets_of(&c.customers, 0, 1).remove(0);
        tracing::subscriber::with_default(subscriber, || {
            let span = target.span();
            let _in = span.enter();
            tracing::info!("not shown at warn");
            tracing::warn!(skipped = 2, "skipped invalid tenant records");
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("skipped=2 customer_id=c1 tenant_type=google"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn shard_hash_is_fixed() {
        // FNV-1a 64 reference values: these must never change between versions.
        assert_eq!(
            shard_of("", u32::MAX),
            (0xcbf2_9ce4_8422_2325u64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            shard_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn file_only_plans_every_listed_type_in_order() {
        let c = config(
            "customers:\n  - id: a\n    name: A\n    tenant_types: [salesforce, 0]\n  - id: b\n    license_assigned_status: assigned\n",
        );
        let p = plan(&c, None, 0, 1);
        assert_eq!(p.targets.len(), 6);
        assert_eq!(
            keys(&p)[..3],
            [
                ("a".into(), "A".into(), "salesforce"),
                ("a".into(), "A".into(), "microsoft_365"),
                // No name: the id stands in.
                ("b".into(), "b".into(), "microsoft_365"),
            ]
        );
        assert_eq!(
            p.targets[2].request.license_assigned_status,
            Some(LicenseAssignedStatus::Assigned)
        );
        assert_eq!(p.discovered, 0);
        // Named from the start, without discovery: the id stands in for a missing name.
        let info: Vec<(&str, &str, &str)> = p
            .customer_info
            .iter()
            .map(|f| (f.id.as_str(), f.name.as_str(), f.country_or_region.as_str()))
            .collect();
        assert_eq!(info, [("a", "A", ""), ("b", "b", "")]);
    }

    #[test]
    fn discovered_customers_are_filtered_and_file_entries_override_them() {
        let c = config(
            "discovery:\n  include: ['^Acme']\n  exclude: ['Test']\n  exclude_ids: [gone]\n  tenant_types: [google]\ncustomers:\n  - id: mine\n    tenant_types: [salesforce]\n  - id: named\n    name: From File\n    tenant_types: [0]\n",
        );
        let list = [
            listed("mine", "Acme Mine"),
            listed("named", "Acme Named"),
            listed("new", "Acme New"),
            listed("test", "Acme Test"),
            listed("gone", "Acme Gone"),
            listed("other", "Other Corp"),
        ];
        // Before the first list: only the file's customers, named from the start.
        let before = plan(&c, None, 0, 1);
        assert_eq!(before.targets.len(), 2);
        assert_eq!(before.customer_info.len(), 2);
        let p = plan(&c, Some(&list), 0, 1);
        assert_eq!(
            keys(&p),
            [
                // A file entry without a name takes the organization; its types win.
                ("mine".into(), "Acme Mine".into(), "salesforce"),
                // A named file entry keeps its name.
                ("named".into(), "From File".into(), "microsoft_365"),
                // Discovered: discovery's tenant types.
                ("new".into(), "Acme New".into(), "google"),
            ]
        );
        // Filtered-in customers count, listed in the file or not.
        assert_eq!(p.discovered, 3);
        let info: Vec<(&str, &str)> = p
            .customer_info
            .iter()
            .map(|f| (f.id.as_str(), f.name.as_str()))
            .collect();
        assert_eq!(
            info,
            [
                ("mine", "Acme Mine"),
                ("named", "From File"),
                ("new", "Acme New")
            ]
        );
        assert_eq!(p.customer_info[0].country_or_region, "DE");
    }

    #[test]
    fn shards_split_file_and_discovered_customers_disjointly_and_completely() {
        let mut rest = String::from("discovery:\n  tenant_types: [0, 1]\ncustomers:\n");
        for i in 0..300 {
            rest.push_str(&format!("  - id: {i:08x}-b9d4-4000-a165-97db0000fc15\n"));
        }
        let c = config(&rest);
        let list: Vec<DiscoveredCustomer> = (0..200)
            .map(|i| listed(&format!("d{i:05}"), "Org"))
            .collect();
        let all = plan(&c, Some(&list), 0, 1);
        assert_eq!(all.targets.len(), 300 * 4 + 200 * 2);
        for total in 1..=8u32 {
            let mut seen = HashMap::new();
            let mut discovered = 0;
            let mut named = 0;
            for shard in 0..total {
                let p = plan(&c, Some(&list), shard, total);
                named += p.customer_info.len();
                assert!(p
                    .customer_info
                    .iter()
                    .all(|f| shard_of(&f.id, total) == shard));
                // Each shard gets a fair share (within 40 % of even).
                let even = all.targets.len() / total as usize;
                assert!(p.targets.len() * 10 >= even * 6 && p.targets.len() * 10 <= even * 14);
                discovered += p.discovered;
                for t in &p.targets {
                    assert_eq!(shard_of(&t.request.customer_id, total), shard);
                    assert!(seen.insert(t.key(), shard).is_none(), "{:?}", t.key());
                }
            }
            assert_eq!(seen.len(), all.targets.len(), "every target in a shard");
            assert_eq!(discovered, 200);
            assert_eq!(named, 500, "every customer named once, by its shard");
        }
    }
}
