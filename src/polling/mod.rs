//! Which targets are polled, and when, as a pipeline: planning (`plan`: the pure plan of
//! config, customer list and shard, and the planner that publishes it), customer discovery
//! (`discovery`: fetches the list the planner plans from), due times (`schedule`), the poll
//! loop (`poller`: runs the plan, records results, publishes snapshots) and the status it
//! publishes for the server (`status`, with the seat health it carries: `seat_health`), and
//! what survives a restart (`persistence`). It asks the API through [`crate::elements`] only.

pub(crate) mod discovery;
pub(crate) mod persistence;
pub(crate) mod plan;
pub(crate) mod poller;
pub(crate) mod schedule;
pub(crate) mod seat_health;
pub(crate) mod status;
