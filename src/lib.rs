//! Prometheus exporter for the user seats of AvePoint Elements customer tenants.
//!
//! # Layout
//! - [`config`]: the YAML configuration, parsed once into validated types.
//! - [`assertion`]: certificate authentication: signed JWT client assertions.
//! - [`auth`]: OAuth2 client-credentials tokens, cached and refreshed one at a time.
//! - [`transport`]: how every HTTP request is sent: concurrency and rate limits, retries with
//!   backoff, body size limit, request metrics.
//! - [`ratelimit`]: the shared, adaptive request rate (paced, paused and cut by 429s).
//! - [`redact`]: cuts secrets, bearer tokens and JWTs out of what remote servers send back.
//! - [`api`]: the Elements seat endpoint: wire types, parsing, paging.
//! - [`plan`]: which targets this instance polls: a pure function of config, customer list
//!   and shard.
//! - [`discovery`]: customer auto-discovery, and the planner that publishes plans on reload
//!   and on customer-list changes.
//! - [`scheduler`]: when each target is due (stable offsets, oldest data first) and the order
//!   in which requests get a slot (a started target finishes first).
//! - [`poller`]: the poll loop: starts due targets, records results, publishes snapshots.
//! - [`metrics`]: the self-metrics registry and the pre-rendered seat snapshot.
//! - [`server`]: the HTTP endpoints, connection limits and timeouts.
//! - [`web`]: the exporter-toolkit web config: TLS, client certificates, headers, basic auth.
//! - [`telemetry`]: log lines in the exporters' logfmt and flat JSON formats.
//! - [`demo`]: the simulated Elements API behind `--demo`.
//! - [`app`]: wires the above into the running daemon, including config reload.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod assertion;
pub mod auth;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod domain;
pub mod metrics;
pub mod plan;
pub mod poller;
pub mod ratelimit;
pub mod redact;
pub mod scheduler;
pub mod server;
pub mod telemetry;
pub mod transport;
