//! Which targets are polled, and when: the plan (a pure function of config, customer list
//! and shard: `plan`), discovery and the planner that publishes plans (`discovery`), due
//! times (`schedule`), the poll loop with its status view (`poller`) and the seat health it
//! carries (`seat_health`), and what survives a restart (`persistence`). It asks the API through [`crate::elements`] only.

pub(crate) mod discovery;
pub(crate) mod persistence;
pub(crate) mod plan;
pub(crate) mod poller;
pub(crate) mod schedule;
pub(crate) mod seat_health;
