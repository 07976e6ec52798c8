//! What the server's parts share: the state request handlers read, the connection limits,
//! the largest request head, and a reload request. Its own file, so that the connections
//! and handlers the server runs (`connection`, `routes`, `landing`) take it from here
//! rather than from the `mod.rs` that runs them.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use super::web_config::WebSettings;
use crate::metrics::{BuildInfo, Metrics};
use crate::polling::status::Status;

/// A request to reload the configuration; answered with `Err(reason)` when refused.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Connection limits and timeouts of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections open at once; at the limit a newcomer replaces the connection idle
    /// longest, and is closed only when every connection is busy.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers (and, with TLS, to finish the
    /// handshake) before it is closed; also how long an idle keep-alive connection stays open.
    pub read_header_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 512,
            read_header_timeout: Duration::from_secs(10),
        }
    }
}

/// Largest request head accepted; larger ones get 431 (HTTP/1.1) or a reset (HTTP/2).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What request handlers read.
pub struct AppState {
    /// Metrics and the seat snapshot.
    pub metrics: Arc<Metrics>,
    /// Per-target status from the poller.
    pub status: Arc<ArcSwap<Status>>,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// Where reload requests go; `None` disables `/-/reload` (demo mode).
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// Build facts for the landing page.
    pub build: BuildInfo,
    /// Serving the built-in simulated API (`--demo`): the landing page says so.
    pub demo: bool,
    /// TLS, headers and basic auth from `--web.config.file`; replaced on reload.
    pub web: Arc<ArcSwap<WebSettings>>,
}
