//! Seat health, the operator's first question on the landing page: how many tenants are out
//! of seats or low on seats, and which. By the thresholds of the seat alerts in
//! `deploy/prometheus/rules.yml` (`AvePointTenantOutOfSeats`, `AvePointTenantLowOnSeats`),
//! from the seat series the poller publishes, once per publish (never per request), and
//! bounded: the counts cover every tenant, the list holds at most [`MAX_LISTED`].

use std::cmp::Ordering;
use std::sync::Arc;

use crate::domain::TenantType;
use crate::metrics::{SeatSeries, TargetLabels};

/// `AvePointTenantLowOnSeats`: at most this many seats free (`available_user_seats <= 10`)…
pub const LOW_MAX_FREE: u64 = 10;
/// …and at least this share of the tenant's seats assigned
/// (`tenant:user_seats_utilisation:ratio >= 0.9`).
pub const LOW_MIN_UTILISATION: f64 = 0.9;
/// Tenants listed at most (out of seats first, then the fewest free): the page stays small
/// whatever the fleet; the counts are complete.
pub const MAX_LISTED: usize = 50;

/// How a tenant stands, by the seat alerts' conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SeatState {
    /// No seat free, some assigned (`AvePointTenantOutOfSeats`).
    Out,
    /// A few seats free and most assigned (`AvePointTenantLowOnSeats`).
    Low,
}

impl SeatState {
    /// The state of a tenant with `available` free and `assigned` assigned seats; `None` when
    /// it is fine, or has no seats at all (0 + 0: nothing to run out of, as in the rules).
    pub fn of(available: u64, assigned: u64) -> Option<SeatState> {
        if available == 0 {
            return (assigned > 0).then_some(SeatState::Out);
        }
        let utilisation = assigned as f64 / (assigned as f64 + available as f64);
        (available <= LOW_MAX_FREE && utilisation >= LOW_MIN_UTILISATION).then_some(SeatState::Low)
    }

    /// `out` or `low`: the CSS class and the word on the page.
    pub fn name(self) -> &'static str {
        match self {
            SeatState::Out => "out",
            SeatState::Low => "low",
        }
    }
}

/// A tenant out of seats or low on seats.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantAtRisk {
    /// Out or low.
    pub state: SeatState,
    /// Customer id.
    pub customer_id: Arc<str>,
    /// Customer display name.
    pub customer_name: Arc<str>,
    /// Tenant type.
    pub tenant_type: TenantType,
    /// Tenant id.
    pub tenant_id: String,
    /// Tenant name.
    pub tenant_name: String,
    /// Free seats.
    pub available: u64,
    /// Assigned seats.
    pub assigned: u64,
}

/// Seat health of every published tenant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeatHealth {
    /// Tenants with published seat series.
    pub tenants: usize,
    /// Of them, out of seats.
    pub out: usize,
    /// Of them, low on seats.
    pub low: usize,
    /// The first [`MAX_LISTED`] of those: out of seats first, then the fewest free, then by
    /// customer name and tenant type.
    pub listed: Vec<TenantAtRisk>,
}

impl SeatHealth {
    /// The seat health of the published `targets` (each target's labels and series).
    pub fn of<'a>(targets: impl IntoIterator<Item = (&'a TargetLabels, &'a SeatSeries)>) -> Self {
        let mut health = SeatHealth::default();
        // (state, free, target, index): names are unescaped only for the tenants listed.
        let mut found: Vec<(SeatState, u64, &TargetLabels, &SeatSeries, usize)> = Vec::new();
        for (labels, series) in targets {
            health.tenants += series.seats().len();
            for (i, &(available, assigned)) in series.seats().iter().enumerate() {
                if let Some(state) = SeatState::of(available, assigned) {
                    match state {
                        SeatState::Out => health.out += 1,
                        SeatState::Low => health.low += 1,
                    }
                    found.push((state, available, labels, series, i));
                }
            }
        }
        let order = |a: &(SeatState, u64, &TargetLabels, &SeatSeries, usize),
                     b: &(SeatState, u64, &TargetLabels, &SeatSeries, usize)|
         -> Ordering {
            (a.0, a.1, &a.2.customer_name, a.2.tenant_type, a.4).cmp(&(
                b.0,
                b.1,
                &b.2.customer_name,
                b.2.tenant_type,
                b.4,
            ))
        };
        if found.len() > MAX_LISTED {
            found.select_nth_unstable_by(MAX_LISTED - 1, order);
            found.truncate(MAX_LISTED);
        }
        found.sort_unstable_by(order);
        health.listed = found
            .into_iter()
            .filter_map(|(state, _, labels, series, i)| {
                let t = series.tenant(i)?;
                Some(TenantAtRisk {
                    state,
                    customer_id: labels.customer_id.clone(),
                    customer_name: labels.customer_name.clone(),
                    tenant_type: labels.tenant_type,
                    tenant_id: t.id,
                    tenant_name: t.name,
                    available: t.available,
                    assigned: t.assigned,
                })
            })
            .collect();
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantSeats;

    fn seats(id: &str, available: u64, assigned: u64) -> TenantSeats {
        TenantSeats {
            id: id.into(),
            name: format!("{id} \"name\""),
            available,
            assigned,
        }
    }

    fn labels(customer: &str, t: TenantType) -> TargetLabels {
        TargetLabels::new(customer.into(), format!("{customer} Org").into(), t)
    }

    #[test]
    fn the_states_are_the_seat_alerts_conditions() {
        assert_eq!(SeatState::of(0, 30), Some(SeatState::Out));
        // No seats at all: nothing to run out of.
        assert_eq!(SeatState::of(0, 0), None);
        // 5 of 60 free: 92 % used.
        assert_eq!(SeatState::of(5, 55), Some(SeatState::Low));
        assert_eq!(SeatState::of(10, 90), Some(SeatState::Low));
        // 11 free, or under 90 % used: fine.
        assert_eq!(SeatState::of(11, 500), None);
        assert_eq!(SeatState::of(3, 3), None);
        assert_eq!(SeatState::of(10, 89), None);
    }

    /// The thresholds above are the rule file's: a change there must show here.
    #[test]
    fn the_thresholds_are_those_of_the_low_on_seats_alert() {
        let rules = include_str!("../../deploy/prometheus/rules.yml");
        let rule = rules
            .split("- alert: AvePointTenantLowOnSeats")
            .nth(1)
            .and_then(|r| r.split("- alert:").next())
            .expect("AvePointTenantLowOnSeats in rules.yml");
        assert!(
            rule.contains(&format!("available_user_seats <= {LOW_MAX_FREE}\n")),
            "{rule}"
        );
        assert!(
            rule.contains(&format!(
                "tenant:user_seats_utilisation:ratio >= {LOW_MIN_UTILISATION}\n"
            )),
            "{rule}"
        );
        let out = rules
            .split("- alert: AvePointTenantOutOfSeats")
            .nth(1)
            .expect("AvePointTenantOutOfSeats in rules.yml");
        assert!(out.contains("expr: available_user_seats == 0 and assigned_user_seats > 0\n"));
    }

    #[test]
    fn counts_every_tenant_and_lists_the_worst_first() {
        let a = labels("a", TenantType::Microsoft365);
        let b = labels("b", TenantType::Salesforce);
        let sa = SeatSeries::new(&[
            seats("fine", 100, 10),
            seats("low7", 7, 93),
            seats("out", 0, 4),
        ]);
        let sb = SeatSeries::new(&[seats("low2", 2, 40), seats("empty", 0, 0)]);
        let h = SeatHealth::of([(&a, &sa), (&b, &sb)]);
        assert_eq!((h.tenants, h.out, h.low), (5, 1, 2));
        let listed: Vec<(&str, &str, SeatState)> = h
            .listed
            .iter()
            .map(|t| (&*t.customer_name, t.tenant_id.as_str(), t.state))
            .collect();
        assert_eq!(
            listed,
            [
                ("a Org", "out", SeatState::Out),
                ("b Org", "low2", SeatState::Low),
                ("a Org", "low7", SeatState::Low),
            ]
        );
        // Names come back unescaped, with the numbers.
        assert_eq!(h.listed[1].tenant_name, "low2 \"name\"");
        assert_eq!((h.listed[1].available, h.listed[1].assigned), (2, 40));
        assert_eq!(h.listed[1].tenant_type, TenantType::Salesforce);
    }

    #[test]
    fn the_list_is_bounded_whatever_the_fleet() {
        let l = labels("big", TenantType::Google);
        let tenants: Vec<TenantSeats> = (0..10_000)
            .map(|i| seats(&format!("t{i:05}"), i % 5, 100))
            .collect();
        let series = SeatSeries::new(&tenants);
        let h = SeatHealth::of([(&l, &series)]);
        assert_eq!((h.tenants, h.out, h.low), (10_000, 2_000, 8_000));
        assert_eq!(h.listed.len(), MAX_LISTED);
        assert!(h.listed.iter().all(|t| t.state == SeatState::Out));
        // Out of seats in series order: the first 50 of them.
        assert_eq!(h.listed[0].tenant_id, "t00000");
        assert_eq!(h.listed[49].tenant_id, "t00245");
    }
}
