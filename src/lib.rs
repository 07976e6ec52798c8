//! Prometheus exporter for the user seats of AvePoint Elements customer tenants.
//!
//! # Layout
//! One home per concern; everything but `app` (and `bench`, behind its feature) is
//! crate-private.
//! - `domain`: the Elements vocabulary every other module shares: tenant types, the license
//!   filter, a tenant's seats, timestamps.
//! - `config/`: the YAML configuration, parsed once into validated types: `yaml` (the walker:
//!   key paths, unknown keys), `parse` (each section), `environment` (secrets and certificate
//!   files), `summary` (`--check-config` and warnings).
//! - `assertion`: certificate authentication: signed JWT client assertions.
//! - `auth`: OAuth2 client-credentials tokens, cached and refreshed one at a time.
//! - `transport`: how every HTTP request is sent: concurrency and rate limits, retries with
//!   backoff, body size limits, request metrics.
//! - `ratelimit`: the shared, adaptive request rate (paced, paused and cut by 429s).
//! - `redact`: cuts secrets, bearer tokens and JWTs out of what remote servers send back.
//! - `api/`: the Elements client: requests and paging (`mod`), the wire format (`wire`).
//! - `plan`: which targets this instance polls: a pure function of config, customer list
//!   and shard.
//! - `discovery`: customer auto-discovery, and the planner that publishes plans on reload
//!   and on customer-list changes.
//! - `scheduler`: when each target is due (stable offsets, oldest data first) and the order
//!   in which requests get a slot (a started target finishes first).
//! - `poller`: the poll loop: starts due targets, records results, publishes snapshots.
//! - `polling/`: `persistence`, the state file that carries series, results and due times
//!   across restarts.
//! - `metrics/`: the self-metrics registry (`mod`) and the seat snapshot with its
//!   exposition (`snapshot`).
//! - `server/`: everything HTTP-facing: binding and limits (`mod`), `routes`, `connection`,
//!   `web_config`, `tls`, `basic_auth`.
//! - `telemetry`: log lines in the exporters' logfmt and flat JSON formats.
//! - `demo/`: the simulated Elements API behind `--demo`; `synthetic` is the benchmarks'
//!   dataset (tests and the `bench` feature only).
//! - [`app`]: wires the above into the running daemon: start-up, the supervised tasks,
//!   config reload.
//! - `bench` (feature `bench`): what the benchmarks drive directly.
#![warn(missing_docs)]

// The daemon, its options and its errors: what the binary runs.
pub mod app;

// Everything else is internal; the few items the binary needs besides `app` are re-exported
// below, and the benchmarks reach more through `bench` (feature `bench`).
pub(crate) mod api;
pub(crate) mod assertion;
pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod discovery;
pub(crate) mod domain;
pub(crate) mod metrics;
pub(crate) mod plan;
pub(crate) mod poller;
pub(crate) mod polling;
pub(crate) mod ratelimit;
pub(crate) mod redact;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod telemetry;
pub(crate) mod transport;

#[cfg(feature = "bench")]
pub mod bench;

pub use config::{format_duration, parse_duration, Config, ConfigError, ProcessEnvironment};
pub use demo::DemoApi;
pub use metrics::BuildInfo;
pub use polling::persistence::{Persistence, PersistenceError};
pub use server::web_config::{WebConfigError, WebSettings};
pub use server::ServeLimits;
pub use telemetry::{Format as LogFormat, LineLayer};
