//! Prometheus exporter for the user seats of AvePoint Elements customer tenants.
//!
//! # Layout
//! One home per concern; everything but `app` (and `bench`, behind its feature) is
//! crate-private.
//! - `domain/`: the Elements vocabulary every other module shares: tenant types, the license
//!   filter, a tenant's seats, a target's key and the stable hash, a customer id's canonical
//!   form and GUID shape (`customer_id`), timestamps, durations as Prometheus writes them
//!   (`duration`: parsed for the config, shown in messages and logs), why a poll failed
//!   (`cause`: the one spelling of each `cause` label), and the checked client certificate
//!   (`certificate`: loaded with the config, signed into assertions by the token source).
//! - `files`: the bounded reads of the files an operator points at (regular files only,
//!   size-capped, given up after a time bound): the config, secret and certificate files,
//!   the web config and its TLS files.
//! - `config/`: the YAML configuration, parsed once into validated types (`mod`): `load` (a
//!   file or its text into them), `yaml` (the walker: key paths, unknown keys), `parse` (each
//!   section), `environment` (secrets and certificate files, and the `Credential` they
//!   yield), `summary` (`--check-config` and warnings).
//! - `elements/`: everything that talks to the Elements API, behind `build_client` and
//!   `client::Client`: `client/` (the seat endpoint and the customer list: paging, the
//!   streamed wire format), `tokens` (OAuth2 client-credentials tokens, shared, fetched
//!   within a deadline), `transport` (retries with backoff, body limits, request metrics;
//!   `transport/response`: a complete response and how log lines show it),
//!   `slots` (request slots by priority: a started target finishes first), `ratelimit` (the
//!   shared, adaptive request rate), `redact` (secrets and tokens cut out of what servers
//!   send back).
//! - `polling/`: what is polled and when, through `elements` only, as a pipeline: `plan/`
//!   (`mod`: the pure plan of config, customer list and shard, and the `Plan` it yields;
//!   `planner`: the planner that publishes versioned plans), `discovery` (fetches the
//!   customer list for the planner), `schedule` (when each target is due), `poller/` (the
//!   poll loop: starts due targets, records results, publishes snapshots and the status;
//!   `state`: each target's results and what a poll does to them, `gather`: what a publish
//!   collects, `failures`: failure log lines by cause, `saving`: the loop's side of the state
//!   file), `status` (the `Status` the poller publishes: all the server sees of polling,
//!   with its `seat_health`), `persistence` (the state file that carries series, results and
//!   due times across restarts).
//! - `metrics/`: the self-metrics registry and the scrape (`mod`), how a self-metric is
//!   named and registered (`registry`), the metric groups the layers count through, with
//!   typed methods (`api` for `elements`, `polling` for `polling`), `customers` (the
//!   per-customer `customer_info` family, rendered once per plan), the exposition formats
//!   (`format`: text and OpenMetrics), and the seat snapshot with its exposition
//!   (`snapshot`: its metric families are `Family`; `snapshot/series`: a target's escaped
//!   labels, compact seat series and counters; `snapshot/deflate`: the raw deflate that gzip
//!   scrapes are sent from).
//! - `server/`: everything HTTP-facing: binding and serving (`mod`), what its parts share
//!   (`state`: the handlers' `AppState`, the limits, a reload request), `routes`, `connection`,
//!   the landing page (`landing`, rendered from the `Status` through the `landing.html`
//!   template), the targets API (`targets`), `web_config` (the web config file: its headers,
//!   and its sections handed to `tls` and `basic_auth`), `tls` (the `tls_server_config`
//!   section as written and the rustls setup built from it), `basic_auth`.
//! - `telemetry`: log lines in the exporters' logfmt and flat JSON formats.
//! - `demo/`: the simulated Elements API behind `--demo` (`fleet`: its customers and their
//!   seat curves); `synthetic` is the benchmarks'
//!   dataset (tests and the `bench` feature only).
//! - [`app`]: the command line (`cli`: the flags, their checks and the `Options` they give;
//!   `check`: `--check-config`), and the above wired into the running daemon and `--once`
//!   (`main.rs` only wires the process to it): `wiring` (what both
//!   are built from: setup, then the polling pipeline of planner, discovery and poller),
//!   `daemon` (start-up), `tasks` (the supervised tasks and their stop), `reload` (config
//!   reload and SIGHUP), `restore` (the state file at start), `options` and `error` (the
//!   public `Options` and `AppError`).
//! - `bench` (feature `bench`): what the benchmarks drive directly.
//!
//! Dependencies run one way: `app` → `server` → `polling` → `elements` → `config` →
//! `files` → `domain`; `metrics` sits beside them, used by all and using only `domain`.
#![warn(missing_docs)]

// The daemon, its options and its errors: what the binary runs.
pub mod app;

// Everything else is internal; the few items the binary needs besides `app` are re-exported
// below, and the benchmarks reach more through `bench` (feature `bench`).
pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod domain;
pub(crate) mod elements;
pub(crate) mod files;
pub(crate) mod metrics;
pub(crate) mod polling;
pub(crate) mod server;
pub(crate) mod telemetry;

#[cfg(feature = "bench")]
pub mod bench;

pub use config::{format_duration, parse_duration, Config, ConfigError, ProcessEnvironment};
pub use demo::DemoApi;
pub use metrics::BuildInfo;
pub use polling::persistence::{Persistence, PersistenceError};
pub use server::web_config::{WebConfigError, WebSettings};
pub use server::ServeLimits;
pub use telemetry::{Format as LogFormat, LineLayer};
