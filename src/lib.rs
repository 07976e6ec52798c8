//! Prometheus exporter for the user seats of AvePoint Elements customer tenants.
//!
//! # Layout
//! - [`config`]: the YAML configuration, parsed once into validated types.
//! - [`assertion`]: certificate authentication: signed JWT client assertions.
//! - [`auth`]: OAuth2 client-credentials tokens, cached and refreshed one at a time.
//! - [`transport`]: how every HTTP request is sent: concurrency and rate limits, retries with
//!   backoff, body size limit, request metrics.
//! - [`ratelimit`]: the shared, adaptive request rate (paced, paused and cut by 429s).
//! - [`api`]: the Elements seat endpoint: wire types, parsing, paging.
//! - [`discovery`]: customer auto-discovery and the planner that turns config and customer
//!   list into targets.
//! - [`poller`]: the scheduler that polls every target each interval and publishes snapshots;
//!   sharding.
//! - [`metrics`]: the self-metrics registry and the pre-rendered seat snapshot.
//! - [`server`]: the HTTP endpoints, connection limits and timeouts.
//! - [`web`]: the exporter-toolkit web config: TLS, client certificates, headers, basic auth.
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
pub mod metrics;
pub mod poller;
pub mod ratelimit;
pub mod server;
pub mod transport;
pub mod web;
