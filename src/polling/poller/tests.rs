//! The poll loop's bookkeeping without a network: results handed in as if polls finished,
//! on paused time.

use super::*;
use crate::domain::{TenantSeats, TenantType};
use crate::elements::transport::TransportError;
use crate::polling::persistence::Origin;

/// A poller for `customers` (Microsoft 365 each) polled every minute, series stale after
/// 3 minutes of failing.
async fn poller(customers: &[&str]) -> (Poller, Arc<Metrics>, Arc<ArcSwap<Status>>) {
    let mut yaml = String::from("poll:\n  interval: 1m\n  stale_after: 3m\ncustomers:\n");
    for c in customers {
        yaml.push_str(&format!("  - id: {c}\n    tenant_types: [0]\n"));
    }
    let config = crate::config::tests::with_client(&yaml);
    let metrics = Arc::new(Metrics::new(&crate::metrics::BuildInfo::current()).unwrap());
    let plan = Arc::new(Plan {
        targets: crate::polling::plan::targets_of(&config.customers, 0, 1),
        client: crate::elements::build_client(&config.elements, &metrics).unwrap(),
        poll: config.poll,
        complete: true,
        discovered: None,
        version: 1,
        origin: Arc::new(Origin::of(&config.elements)),
        discovery: None,
    });
    let status = Arc::new(ArcSwap::from_pointee(Status::default()));
    let poller = Poller::new(plan, metrics.clone(), status.clone(), None, None).await;
    (poller, metrics, status)
}

fn key(customer: &str) -> TargetKey {
    TargetKey::new(customer, TenantType::Microsoft365)
}

fn seats(available: u64) -> Result<Fetched, ApiError> {
    Ok(Fetched {
        items: vec![TenantSeats {
            id: "t1".into(),
            name: "T1".into(),
            available,
            assigned: 7,
        }],
        invalid: Vec::new(),
        pages: 1,
        foreign: Default::default(),
        unrequested: 0,
    })
}

fn timeout() -> Result<Fetched, ApiError> {
    Err(TransportError::Timeout(Duration::from_secs(5)).into())
}

/// Hands in a finished poll of `customer` that started `took` ago, then publishes.
async fn finish(poller: &mut Poller, customer: &str, result: Result<Fetched, ApiError>) {
    let took = Duration::from_millis(200);
    // What the target asks, or asked before it was removed.
    let request = poller.targets.get(&key(customer)).map_or_else(
        || TargetRequest {
            customer_id: customer.into(),
            tenant_type: TenantType::Microsoft365,
            license_assigned_status: None,
            tenant_ids: None,
        },
        |t| t.request.clone(),
    );
    poller.finished(Done {
        key: key(customer),
        request,
        source: poller.plan.client.source().to_owned(),
        started: Instant::now() - took,
        took,
        result,
    });
    poller.publish().await;
}

fn exposition(metrics: &Metrics) -> String {
    String::from_utf8(metrics.snapshot().text()).unwrap()
}

fn available(metrics: &Metrics, customer: &str) -> Option<String> {
    exposition(metrics)
        .lines()
        .find(|l| {
            l.starts_with("available_user_seats{")
                && l.contains(&format!("customer_id=\"{customer}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_owned())
}

#[tokio::test(start_paused = true)]
async fn results_become_series_and_status_and_ready_waits_for_every_target() {
    let (mut poller, metrics, status) = poller(&["c1", "c2"]).await;
    assert!(!status.load().ready(), "nothing polled yet");
    assert_eq!(status.load().targets.len(), 2);
    finish(&mut poller, "c1", seats(5)).await;
    assert_eq!(available(&metrics, "c1").as_deref(), Some("5"));
    assert_eq!(available(&metrics, "c2"), None);
    assert!(!status.load().ready(), "c2 not polled yet");
    finish(&mut poller, "c2", timeout()).await;
    let now = status.load();
    assert!(now.ready(), "every target polled once, one of them failed");
    assert_eq!(now.polls, 2);
    let c1 = now
        .targets
        .iter()
        .find(|t| &*t.customer_id == "c1")
        .unwrap();
    assert_eq!((c1.tenants, c1.last_error.as_deref()), (1, None));
    let c2 = now
        .targets
        .iter()
        .find(|t| &*t.customer_id == "c2")
        .unwrap();
    assert!(
        c2.last_error.as_deref().unwrap_or("").contains("timeout"),
        "{c2:?}"
    );
    assert!(c2.failing_since.is_some());
    // A later success replaces the seats.
    finish(&mut poller, "c1", seats(4)).await;
    assert_eq!(available(&metrics, "c1").as_deref(), Some("4"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_round_keeps_the_series_and_only_failing_past_stale_after_drops_them() {
    let (mut poller, metrics, _status) = poller(&["c1"]).await;
    finish(&mut poller, "c1", seats(5)).await;
    // No poll for ten times stale_after (a round slower than the interval): kept.
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    poller.pacing.dirty = true;
    poller.publish().await;
    assert_eq!(available(&metrics, "c1").as_deref(), Some("5"));
    // Failing: kept for stale_after from the first failure ...
    finish(&mut poller, "c1", timeout()).await;
    tokio::time::advance(Duration::from_secs(170)).await;
    finish(&mut poller, "c1", timeout()).await;
    assert_eq!(available(&metrics, "c1").as_deref(), Some("5"));
    // ... and dropped once it has failed for longer.
    tokio::time::advance(Duration::from_secs(20)).await;
    finish(&mut poller, "c1", timeout()).await;
    assert_eq!(available(&metrics, "c1"), None);
    // One success brings them back.
    finish(&mut poller, "c1", seats(3)).await;
    assert_eq!(available(&metrics, "c1").as_deref(), Some("3"));
}

#[tokio::test(start_paused = true)]
async fn a_target_removed_while_its_poll_ran_leaves_nothing_behind() {
    let (mut poller, metrics, status) = poller(&["c1", "c2"]).await;
    finish(&mut poller, "c1", seats(5)).await;
    let mut smaller = (*poller.plan).clone();
    smaller.targets.retain(|t| &*t.request.customer_id != "c2");
    smaller.version += 1;
    poller.apply_plan(Arc::new(smaller)).await;
    // c2's poll was in flight and comes back after the reload removed it.
    finish(&mut poller, "c2", seats(9)).await;
    assert_eq!(available(&metrics, "c2"), None);
    assert!(!poller.states.contains_key(&key("c2")));
    let now = status.load();
    assert_eq!(now.targets.len(), 1);
    assert_eq!(&*now.targets[0].customer_id, "c1");
    assert_eq!(available(&metrics, "c1").as_deref(), Some("5"));
}

fn nothing() -> Result<Fetched, ApiError> {
    let mut f = seats(0)?;
    f.items.clear();
    Ok(f)
}

fn up_of(poller: &Poller, customer: &str) -> bool {
    poller.states[&key(customer)].up()
}

#[tokio::test(start_paused = true)]
async fn an_empty_answer_is_held_without_changing_health_and_a_failure_breaks_the_row() {
    let (mut poller, metrics, _) = poller(&["c"]).await;
    finish(&mut poller, "c", seats(5)).await;
    // Up: one empty answer is held, the target stays up with its series.
    finish(&mut poller, "c", nothing()).await;
    assert_eq!(available(&metrics, "c").as_deref(), Some("5"));
    assert!(up_of(&poller, "c"));
    // A failure between two empty answers breaks the row: the next empty one is held again.
    finish(&mut poller, "c", timeout()).await;
    assert!(!up_of(&poller, "c"));
    let failing_since = poller.states[&key("c")].failing_since;
    finish(&mut poller, "c", nothing()).await;
    assert_eq!(available(&metrics, "c").as_deref(), Some("5"));
    // Held data of a failing target is still last-good data: down, its stale clock running.
    assert!(!up_of(&poller, "c"));
    assert_eq!(poller.states[&key("c")].failing_since, failing_since);
    // The second empty answer in a row is believed.
    finish(&mut poller, "c", nothing()).await;
    assert_eq!(available(&metrics, "c"), None);
    assert!(up_of(&poller, "c"));
    assert!(poller.states[&key("c")].empty());
}

#[tokio::test(start_paused = true)]
async fn a_renewed_target_keeps_its_series_until_the_new_answer_and_loses_them_if_it_fails() {
    let (mut poller, metrics, _) = poller(&["c", "d"]).await;
    finish(&mut poller, "c", seats(5)).await;
    finish(&mut poller, "d", seats(6)).await;
    // A new filter for both.
    let mut plan = (*poller.plan).clone();
    for t in &mut plan.targets {
        t.request.license_assigned_status = Some(crate::domain::LicenseAssignedStatus::Assigned);
    }
    plan.version += 1;
    poller.apply_plan(Arc::new(plan)).await;
    assert_eq!(available(&metrics, "c").as_deref(), Some("5"));
    // The new answer replaces the series (an empty one at once: nothing to hold).
    finish(&mut poller, "c", nothing()).await;
    assert_eq!(available(&metrics, "c"), None);
    // A failed first poll drops them: they answered another request.
    finish(&mut poller, "d", timeout()).await;
    assert_eq!(available(&metrics, "d"), None);
    assert!(!up_of(&poller, "d"));
}

#[tokio::test(start_paused = true)]
async fn a_targets_counters_are_part_of_the_snapshot_keep_their_values_and_leave_with_it() {
    let (mut poller, metrics, _) = poller(&["c", "d"]).await;
    let errors = |metrics: &Metrics, customer: &str| {
        exposition(metrics)
            .lines()
            .find(|l| {
                l.starts_with("avepoint_exporter_target_errors_total{cause=\"timeout\"")
                    && l.contains(&format!("customer_id=\"{customer}\""))
            })
            .and_then(|l| l.rsplit(' ').next().map(str::to_owned))
    };
    // In the pre-rendered snapshot itself (nothing of it is rendered per scrape), counted
    // on through publishes, stale series and a success.
    finish(&mut poller, "c", timeout()).await;
    finish(&mut poller, "d", timeout()).await;
    assert_eq!(errors(&metrics, "c").as_deref(), Some("1"));
    tokio::time::advance(Duration::from_secs(600)).await;
    finish(&mut poller, "c", timeout()).await;
    finish(&mut poller, "c", seats(5)).await;
    poller.pacing.dirty = true;
    poller.publish().await;
    assert_eq!(errors(&metrics, "c").as_deref(), Some("2"));
    assert_eq!(errors(&metrics, "d").as_deref(), Some("1"));
    // Not in the registry's self-metrics.
    let scrape =
        String::from_utf8(metrics.scrape(false, crate::metrics::Format::Text).concat()).unwrap();
    assert_eq!(
        scrape
            .matches("# TYPE avepoint_exporter_target_errors_total counter")
            .count(),
        1
    );
    // A plan without d: its counter leaves with it, c's stays.
    let mut smaller = (*poller.plan).clone();
    smaller.targets.retain(|t| &*t.request.customer_id == "c");
    poller.apply_plan(Arc::new(smaller)).await;
    assert_eq!(errors(&metrics, "c").as_deref(), Some("2"));
    assert_eq!(errors(&metrics, "d"), None);
}
