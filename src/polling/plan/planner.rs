//! The planner: the one place that publishes plans. A config reload replaces the config and
//! the API client, a discovery refresh replaces the customer list, and either publishes the
//! resulting [`Plan`] (see [`super::plan`] for what it holds). A customer list that collapsed
//! is held until a second refresh confirms it; a list that cannot be fetched leaves the last
//! good one in use.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::Config;
use crate::elements::client::{Client, DiscoveredCustomer};
use crate::metrics::{CustomerInfo, Metrics};
use crate::polling::persistence::Origin;
use crate::polling::plan::{self, ListFetched, Plan};

/// Builds and publishes poll plans.
pub struct Planner {
    shard: u32,
    total_shards: u32,
    metrics: Arc<Metrics>,
    plans: watch::Sender<Arc<Plan>>,
    /// Bumped on every config change, so a discovery loop knows its list may be outdated.
    generations: watch::Sender<u64>,
    /// The newest [`Plan::version`] published or skipped.
    newest: AtomicU64,
    state: Mutex<State>,
}

struct State {
    config: Arc<Config>,
    client: Arc<Client>,
    /// When discovery last fetched a list (every plan made while it is on shares it).
    fetched: Arc<ListFetched>,
    /// The last good customer list (`None` until one was fetched).
    discovered: Option<Arc<Vec<DiscoveredCustomer>>>,
    /// The ids (sorted) of a shrunken list that was held rather than accepted: the next
    /// list with the same ids confirms it.
    held: Option<Vec<String>>,
    /// The API or client changed since the last list: the next list is another API's
    /// answer, not a collapse of the last one, and is taken as it is.
    new_source: bool,
    generation: u64,
    /// Plans made so far (each plan's [`Plan::version`]).
    planned: u64,
}

impl Planner {
    /// A planner for `config`, publishing the first plan at once; the receiver feeds the
    /// poller. `restored` is the customer list kept across a restart, used until a fresh one
    /// arrives (only while discovery is on).
    pub fn new(
        config: Config,
        client: Arc<Client>,
        shard: u32,
        total_shards: u32,
        metrics: Arc<Metrics>,
        restored: Option<Arc<Vec<DiscoveredCustomer>>>,
    ) -> (Arc<Planner>, watch::Receiver<Arc<Plan>>) {
        client.cap_waits(config.poll.interval);
        let discovered = restored.filter(|_| config.discovery.is_some());
        let mut state = State {
            config: Arc::new(config),
            client,
            fetched: Arc::default(),
            discovered,
            held: None,
            new_source: false,
            generation: 0,
            planned: 0,
        };
        let plan = Arc::new(plan_of(&mut state, shard, total_shards, &metrics));
        let plan_version = plan.version;
        let (plans, rx) = watch::channel(plan);
        let (generations, _) = watch::channel(0);
        let planner = Arc::new(Planner {
            shard,
            total_shards,
            metrics,
            plans,
            generations,
            newest: AtomicU64::new(plan_version),
            state: Mutex::new(state),
        });
        (planner, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current plan.
    pub fn plan(&self) -> Arc<Plan> {
        self.plans.borrow().clone()
    }

    /// The running client, if `config` would build the same one: the client is built from
    /// the `elements` section alone ([`crate::elements::build_client`]), so only that section
    /// is compared. A reload that changes timing, customers or discovery keeps the client,
    /// its token, its rate limit and any 429 throttle.
    pub fn client_for(&self, config: &Config) -> Option<Arc<Client>> {
        let state = self.lock();
        state
            .config
            .same_client_as(config)
            .then(|| state.client.clone())
    }

    /// Applies a reloaded config with its client: publishes a plan at once (the poller polls
    /// new targets at once). The last discovered list is kept and filtered by the new config.
    ///
    /// The customer list is fetched again only when discovery's settings or the client
    /// changed: a reload that changes nothing sends no request. The client's waits are
    /// bounded by the new `poll.interval` from now on, whether it is new or kept.
    pub fn apply_config(&self, config: Config, client: Arc<Client>) {
        client.cap_waits(config.poll.interval);
        let mut state = self.lock();
        let refetch =
            state.config.discovery != config.discovery || !Arc::ptr_eq(&state.client, &client);
        if state.client.source() != client.source() {
            state.new_source = true;
        }
        state.config = Arc::new(config);
        state.client = client;
        if refetch {
            state.generation += 1;
            // A list held before is confirmed only by a scheduled refresh under the same
            // config, not by the fetch a reload triggers.
            state.held = None;
        }
        let plan = plan_of(&mut state, self.shard, self.total_shards, &self.metrics);
        let generation = state.generation;
        drop(state);
        self.publish(plan, true);
        if refetch {
            let _ = self.generations.send(generation);
        }
    }

    /// Stores a customer list fetched under config `generation` (ignored if the config has
    /// changed since) and publishes a plan if the targets changed; a list that collapsed is
    /// held instead (see [`Taken::Held`]).
    pub fn apply_discovered(&self, generation: u64, customers: Vec<DiscoveredCustomer>) -> Taken {
        match self.plan_discovered(generation, customers) {
            Ok(Some(plan)) => {
                self.publish(plan, false);
                Taken::Accepted
            }
            Ok(None) => Taken::Accepted,
            Err(held) => held,
        }
    }

    /// The plan of a customer list fetched under config `generation`, if that config is
    /// still the current one; `Err` when the list is held.
    fn plan_discovered(
        &self,
        generation: u64,
        customers: Vec<DiscoveredCustomer>,
    ) -> Result<Option<Plan>, Taken> {
        let mut state = self.lock();
        if state.generation != generation {
            return Ok(None);
        }
        let before = state.discovered.as_ref().map_or(0, |l| l.len());
        if !state.new_source && collapsed(before, customers.len()) {
            let mut ids: Vec<String> = customers.iter().map(|c| c.id.clone()).collect();
            ids.sort_unstable();
            if state.held.as_ref() != Some(&ids) {
                state.held = Some(ids);
                return Err(Taken::Held {
                    before,
                    now: customers.len(),
                });
            }
            tracing::warn!(
                before,
                now = customers.len(),
                "the customer list shrank and a second refresh returned the same list; accepting it"
            );
        }
        state.held = None;
        state.new_source = false;
        state.discovered = Some(Arc::new(customers));
        Ok(Some(plan_of(
            &mut state,
            self.shard,
            self.total_shards,
            &self.metrics,
        )))
    }

    /// Publishes `plan` unless a plan made after it was published or skipped first (the lock
    /// is not held while sending, so two publishers can arrive in either order). Unless
    /// `always`, a plan that polls the same targets as the current one is skipped (the
    /// poller would wake for nothing).
    fn publish(&self, plan: Plan, always: bool) {
        self.plans.send_if_modified(|current| {
            // Under the channel's lock: publishers are serialised here.
            if plan.version <= self.newest.load(Relaxed) {
                return false;
            }
            self.newest.store(plan.version, Relaxed);
            if !always && same_targets(current, &plan) && current.complete == plan.complete {
                return false;
            }
            if !always {
                tracing::info!(
                    targets = plan.targets.len(),
                    before = current.targets.len(),
                    "customer list changed; polling the new targets"
                );
            }
            *current = Arc::new(plan);
            true
        });
    }

    /// The metrics the planner and discovery count on.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Told the new generation whenever a config change may have outdated the customer list
    /// (discovery's settings or the client changed): the discovery loop fetches it again.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generations.subscribe()
    }

    /// A customer list was fetched at `at` (and taken, or dropped for a config that changed
    /// since).
    pub fn list_fetched(&self, at: SystemTime) {
        self.metrics.polling().discovery_succeeded(at);
        self.lock().fetched.set(at);
    }

    /// Whether a customer list has ever arrived.
    pub fn has_list(&self) -> bool {
        self.lock().discovered.is_some()
    }

    /// The config generation (see [`Planner::changes`]), the config and the client in force.
    pub fn current(&self) -> (u64, Arc<Config>, Arc<Client>) {
        let state = self.lock();
        (state.generation, state.config.clone(), state.client.clone())
    }
}

/// What became of a customer list that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// In force (or fetched under a config that has changed since, and dropped).
    Accepted,
    /// Empty, or less than half of the last accepted list: the last list stays in force
    /// until a refresh returns the same shrunken list again.
    Held {
        /// Customers on the list in force.
        before: usize,
        /// Customers on the list that arrived.
        now: usize,
    },
}

/// Whether a list of `now` customers replacing one of `before` is a collapse to hold: none
/// left, or fewer than half.
fn collapsed(before: usize, now: usize) -> bool {
    before > 0 && (now == 0 || now * 2 < before)
}

/// Whether two plans poll the same targets with the same labels and requests.
fn same_targets(a: &Plan, b: &Plan) -> bool {
    a.targets.len() == b.targets.len()
        && a.targets
            .iter()
            .zip(&b.targets)
            .all(|(x, y)| x.labels == y.labels && x.request == y.request)
}

/// The plan of `state` for one shard (see [`plan::plan`]); updates the discovery metrics.
fn plan_of(state: &mut State, shard: u32, total_shards: u32, metrics: &Metrics) -> Plan {
    state.planned += 1;
    let planned = plan::plan(
        &state.config,
        state.discovered.as_deref().map(Vec::as_slice),
        shard,
        total_shards,
    );
    metrics.polling().set_discovery(
        state.config.discovery.is_some(),
        planned.discovered,
        planned.customer_info.iter().map(|c| CustomerInfo {
            id: &c.id,
            name: &c.name,
            country_or_region: &c.country_or_region,
            management_mode: &c.management_mode,
        }),
    );
    Plan {
        targets: planned.targets,
        client: state.client.clone(),
        poll: state.config.poll,
        complete: state.config.discovery.is_none() || state.discovered.is_some(),
        discovered: state
            .discovered
            .clone()
            .filter(|_| state.config.discovery.is_some()),
        version: state.planned,
        origin: Arc::new(Origin::of(&state.config.elements)),
        discovery: state
            .config
            .discovery
            .is_some()
            .then(|| state.fetched.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rest: &str) -> Config {
        crate::config::tests::with_client(rest)
    }

    fn listed(id: &str) -> DiscoveredCustomer {
        DiscoveredCustomer {
            id: id.into(),
            organization: format!("Org {id}"),
            country_or_region: "DE".into(),
            management_mode: "1".into(),
        }
    }

    fn customers(plan: &Plan) -> Vec<String> {
        let mut ids: Vec<String> = plan
            .targets
            .iter()
            .map(|t| t.request.customer_id.to_string())
            .collect();
        ids.dedup();
        ids
    }

    #[tokio::test]
    async fn a_refresh_planned_before_a_reload_never_replaces_the_reloads_plan() {
        let metrics = Arc::new(Metrics::new(&crate::metrics::BuildInfo::current()).unwrap());
        let before = config("discovery:\n  tenant_types: [0]\n");
        let client = crate::elements::build_client(&before.elements, &metrics).unwrap();
        let (planner, plans) = Planner::new(before, client.clone(), 0, 1, metrics, None);
        let (generation, _, _) = planner.current();
        // A refresh plans from the old config (its fetch raced a reload) ...
        let refresh = planner
            .plan_discovered(generation, vec![listed("d1")])
            .unwrap()
            .unwrap();
        // ... the reload (same discovery, same client: no new fetch) plans and publishes ...
        let after = config(
            "discovery:\n  tenant_types: [0]\ncustomers:\n  - id: added\n    tenant_types: [0]\n",
        );
        planner.apply_config(after, client);
        assert_eq!(customers(&plans.borrow()), ["added", "d1"]);
        // ... and the refresh's send comes last: it must not bring back the old config.
        planner.publish(refresh, false);
        assert_eq!(customers(&plans.borrow()), ["added", "d1"]);
        assert_eq!(customers(&planner.plan()), ["added", "d1"]);
        // A later refresh under the current config is published as usual.
        planner.apply_discovered(generation, vec![listed("d1"), listed("d2")]);
        assert_eq!(customers(&planner.plan()), ["added", "d1", "d2"]);
    }
}
