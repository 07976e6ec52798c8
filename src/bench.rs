//! What the benchmarks drive directly (`benches/`, `bench/`): the parser, the snapshot, the
//! poller and the synthetic API at scale. Only built with the `bench` feature, so none of it
//! is part of the exporter.

pub use crate::demo::Scale;
pub use crate::domain::{TenantSeats, TenantType};
pub use crate::elements::build_client;
pub use crate::elements::client::parse_page;
pub use crate::metrics::{render_snapshot, Format, Metrics, SeatSeries, TargetLabels, TargetView};
pub use crate::polling::persistence::Origin;
pub use crate::polling::plan::{targets_of, Plan};
pub use crate::polling::poller::{run as run_poller, Poller};
pub use crate::polling::status::Status;
