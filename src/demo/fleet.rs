//! The demo's customers and how their seats move: a handful of named customers over all
//! four tenant types, whose seat counts are functions of the poll number (see the module
//! documentation of `demo`).

use std::collections::HashMap;

use crate::domain::{fnv1a, TenantType};

/// Seconds between two polls of a demo target ([`super::DEMO_INTERVAL`]): the seat curves count
/// polls, and this turns minutes into polls.
pub(super) const POLL_SECONDS: u64 = 5;
/// Polls the running-out tenant stays at 0 free seats in each round: 20 minutes, longer than
/// `AvePointTenantOutOfSeats`' `for:` (15 minutes; a test reads it from the rule file), so
/// the alert fires in every round.
pub(super) const OUT_OF_SEATS_POLLS: u64 = 20 * 60 / POLL_SECONDS;
/// Seats the running-out tenant buys at the end of each round.
pub(super) const PURCHASE: u64 = 50;
/// Polls between two steps of a [`Curve::Steps`] tenant: at least 2 minutes, and up to 8
/// minutes more, depending on the tenant.
pub(super) const STEP_POLLS_MIN: u64 = 2 * 60 / POLL_SECONDS;
/// See [`STEP_POLLS_MIN`].
pub(super) const STEP_POLLS_SPREAD: u64 = 8 * 60 / POLL_SECONDS;

/// One simulated tenant: its seat curve is a function of the poll number.
#[derive(Debug, Clone)]
pub(super) struct DemoTenant {
    pub(super) id: String,
    pub(super) name: String,
    /// Seats bought.
    pub(super) total: u64,
    /// Assigned seats at poll 0.
    pub(super) assigned: u64,
    pub(super) kind: Curve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    /// Never changes: most tenants, most of the time.
    Flat,
    /// One seat assigned or freed at a time, every 2 to 10 minutes, within a few seats of the
    /// start: people joining and leaving.
    Steps,
    /// Assigns one more seat each poll until none is free, stays out of seats for
    /// [`OUT_OF_SEATS_POLLS`], then [`PURCHASE`] more seats are bought (and as many assigned,
    /// to the users who waited) and it starts again.
    Exhausting,
}

impl DemoTenant {
    /// (available, assigned) at poll `n`.
    pub(super) fn seats(&self, n: u64) -> (u64, u64) {
        let (total, assigned) = match self.kind {
            Curve::Flat => (self.total, self.assigned),
            Curve::Steps => {
                let h = fnv1a(self.id.as_bytes());
                let amplitude = (self.total / 50).clamp(1, 3);
                let period = STEP_POLLS_MIN + h % STEP_POLLS_SPREAD;
                // A triangle over the tenant's steps: one seat at a time, up and back down.
                let step = (n + (h >> 16) % period) / period;
                let pos = step % (2 * amplitude);
                let offset = if pos < amplitude {
                    pos
                } else {
                    2 * amplitude - pos
                };
                let assigned = (self.assigned + offset).saturating_sub(amplitude / 2);
                (self.total, assigned.min(self.total))
            }
            Curve::Exhausting => {
                let free = self.total.saturating_sub(self.assigned);
                let round_polls = free + OUT_OF_SEATS_POLLS;
                let round = n / round_polls;
                let bought = PURCHASE * round;
                let step = (n % round_polls).min(free);
                (self.total + bought, self.assigned + bought + step)
            }
        };
        (total.saturating_sub(assigned), assigned)
    }
}

/// A simulated customer.
#[derive(Debug, Clone)]
pub(super) struct DemoCustomer {
    pub(super) id: &'static str,
    pub(super) name: &'static str,
    pub(super) country: &'static str,
    pub(super) tenants: HashMap<TenantType, Vec<DemoTenant>>,
}

pub(super) fn customers() -> Vec<DemoCustomer> {
    let t = |id: &str, name: &str, total: u64, assigned: u64| DemoTenant {
        id: id.into(),
        name: name.into(),
        total,
        assigned,
        kind: Curve::Steps,
    };
    let flat = |id: &str, name: &str, total: u64, assigned: u64| DemoTenant {
        kind: Curve::Flat,
        ..t(id, name, total, assigned)
    };
    // Numbered tenants: one in three steps, the others stay flat.
    let many = |prefix: &str, label: &str, n: usize| -> Vec<DemoTenant> {
        (0..n)
            .map(|i| {
                let h = fnv1a(format!("{prefix}{i}").as_bytes());
                let total = 25 + h % 400;
                DemoTenant {
                    kind: if h.is_multiple_of(3) {
                        Curve::Steps
                    } else {
                        Curve::Flat
                    },
                    ..t(
                        &format!("{prefix}-{i:04}"),
                        &format!("{label} {i:03}"),
                        total,
                        total * 6 / 10,
                    )
                }
            })
            .collect()
    };
    vec![
        DemoCustomer {
            id: "f1620000-b9d4-4a0e-a165-97db0000fc15",
            name: "Contoso",
            country: "US",
            tenants: HashMap::from([
                (
                    TenantType::Microsoft365,
                    vec![
                        t(
                            "9a4f6c1e-0001-4e5b-9d3a-65215f920001",
                            "contoso.onmicrosoft.com",
                            500,
                            310,
                        ),
                        // Runs out of seats, buys more, runs out again.
                        DemoTenant {
                            kind: Curve::Exhausting,
                            ..t(
                                "9a4f6c1e-0002-4e5b-9d3a-65215f920002",
                                "Contoso Sales",
                                120,
                                108,
                            )
                        },
                        t(
                            "9a4f6c1e-0003-4e5b-9d3a-65215f920003",
                            "Contoso \"EU\" Ops",
                            80,
                            41,
                        ),
                    ],
                ),
                (
                    TenantType::Salesforce,
                    // Low on seats: 5 of 60 free (92 % used), AvePointTenantLowOnSeats.
                    vec![flat("00D5g000004XyZ1EAK", "Contoso CRM", 60, 55)],
                ),
                (
                    TenantType::Google,
                    vec![t("C03az79cb", "contoso.com", 150, 90)],
                ),
                (
                    TenantType::Dynamics365,
                    vec![flat("d365-contoso-prod", "Contoso Dynamics", 40, 22)],
                ),
            ]),
        },
        DemoCustomer {
            id: "2b7e0000-4c1d-4f7a-9e55-3c0a0000aa01",
            name: "Fabrikam",
            country: "GB",
            tenants: HashMap::from([
                (
                    TenantType::Microsoft365,
                    many("fab365", "Fabrikam branch", 120),
                ),
                (
                    TenantType::Dynamics365,
                    vec![t("d365-fabrikam", "Fabrikam Finance", 200, 150)],
                ),
            ]),
        },
        DemoCustomer {
            id: "7c310000-8f2e-4b6d-a0c4-11d90000bb02",
            name: "Northwind Traders",
            country: "AU",
            tenants: HashMap::from([
                (
                    TenantType::Microsoft365,
                    vec![t(
                        "9a4f6c1e-0101-4e5b-9d3a-65215f920101",
                        "northwind.onmicrosoft.com",
                        75,
                        60,
                    )],
                ),
                (TenantType::Salesforce, many("nwsf", "Northwind SF org", 55)),
            ]),
        },
        DemoCustomer {
            id: "5d880000-1a9b-4c3e-8f21-77e20000cc03",
            name: "Tailspin Toys",
            country: "CH",
            tenants: HashMap::from([
                (
                    TenantType::Google,
                    // Already out of seats.
                    vec![flat("C01tailspin", "tailspintoys.com", 30, 30)],
                ),
                (
                    TenantType::Microsoft365,
                    vec![flat(
                        "9a4f6c1e-0201-4e5b-9d3a-65215f920201",
                        "Tailspin Toys Zürich",
                        45,
                        20,
                    )],
                ),
            ]),
        },
        // In the customer list, but left out by the demo's discovery filter (`^Test`).
        DemoCustomer {
            id: "0e110000-0000-4000-8000-00000000dd04",
            name: "Test Lab (sandbox)",
            country: "US",
            tenants: HashMap::from([(
                TenantType::Microsoft365,
                vec![flat("sandbox-0001", "Sandbox", 5, 1)],
            )]),
        },
    ]
}
