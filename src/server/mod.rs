//! Everything HTTP-facing: binding, serving with connection limits and graceful shutdown
//! (here), one connection's life ([`connection`]), the endpoints ([`routes`]) with the
//! landing page ([`landing`]) and the targets API ([`targets`]), and the
//! exporter-toolkit web config with its TLS and basic auth ([`web_config`], `tls`,
//! `basic_auth`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{BuildInfo, Metrics};
use crate::poller::Status;
use web_config::WebSettings;

mod basic_auth;
mod connection;
mod landing;
mod routes;
mod targets;
mod tls;
pub mod web_config;

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a new connection waits for the idle connection closed to make room for it.
const EVICT_WAIT: Duration = Duration::from_secs(2);

/// A request to reload the configuration; answered with `Err(reason)` when refused.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address is not `host:port` or `:port`.
    #[error("--web.listen-address {addr:?}: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address is taken by another process.
    #[error("cannot listen on {addr}: address already in use (is another exporter running?)")]
    AddrInUse {
        /// The address as given.
        addr: String,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Connection limits and timeouts of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
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
    /// TLS, headers and basic auth from `--web.config.file`; replaced on reload.
    pub web: Arc<ArcSwap<WebSettings>>,
}

/// Binds every listen address (`host:port`, or `:port` for all interfaces: IPv6 and IPv4 on
/// one dual-stack socket where the host has IPv6, IPv4 alone where it has not).
pub async fn bind(addrs: &[String]) -> Result<Vec<TcpListener>, ServerError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = match addr.strip_prefix(':') {
            Some(port) => bind_all_interfaces(addr, port)?,
            None => bind_one(addr).await?,
        };
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_error(addr: &str, source: std::io::Error) -> ServerError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        ServerError::AddrInUse {
            addr: addr.to_owned(),
        }
    } else {
        ServerError::Bind {
            addr: addr.to_owned(),
            source,
        }
    }
}

/// `:port`: `[::]:port` with IPV6_V6ONLY off (like Go's net.Listen, as node_exporter does),
/// or `0.0.0.0:port` on a host without IPv6.
fn bind_all_interfaces(addr: &str, port: &str) -> Result<TcpListener, ServerError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let port: u16 = port.parse().map_err(|_| ServerError::BadAddress {
        addr: addr.to_owned(),
        reason: "expected host:port or :port".into(),
    })?;
    let v6 = || -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_only_v6(false)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
        Ok(socket)
    };
    let socket = match v6() {
        Ok(socket) => socket,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(bind_error(addr, e)),
        Err(_) => {
            let v4 = || -> std::io::Result<Socket> {
                let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
                socket.set_reuse_address(true)?;
                socket.bind(&SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)).into())?;
                Ok(socket)
            };
            v4().map_err(|e| bind_error(addr, e))?
        }
    };
    socket
        .listen(1024)
        .and_then(|()| socket.set_nonblocking(true))
        .and_then(|()| TcpListener::from_std(socket.into()))
        .map_err(|e| bind_error(addr, e))
}

async fn bind_one(addr: &str) -> Result<TcpListener, ServerError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| ServerError::BadAddress {
            addr: addr.to_owned(),
            reason: format!("expected host:port or :port ({e})"),
        })?
        .collect();
    let first = resolved.first().ok_or_else(|| ServerError::BadAddress {
        addr: addr.to_owned(),
        reason: "resolves to no address".into(),
    })?;
    TcpListener::bind(first)
        .await
        .map_err(|source| bind_error(addr, source))
}

/// Serves HTTP (or HTTPS, per the web config) on `listeners` until `shutdown` completes, then
/// stops accepting and waits up to [`DRAIN_TIMEOUT`] for requests in flight.
pub async fn serve(
    listeners: Vec<TcpListener>,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(connection::Registry::default());
    let (conn_tx, mut conn_rx) = mpsc::channel::<tokio::net::TcpStream>(64);
    let mut accept_tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let conn_tx = conn_tx.clone();
        accept_tasks.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if conn_tx.send(stream).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly and go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(conn_tx);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            stream = conn_rx.recv() => {
                let Some(stream) = stream else { break };
                let permit = match connections.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    // Full: make room by closing the connection idle longest, if there is one.
                    Err(_) if registry.evict_idlest() => {
                        let freed = tokio::time::timeout(
                            EVICT_WAIT,
                            connections.clone().acquire_owned(),
                        );
                        match freed.await {
                            Ok(Ok(permit)) => permit,
                            _ => continue,
                        }
                    }
                    Err(_) => {
                        tracing::debug!(
                            max = limits.max_connections,
                            "connection limit reached and every connection is busy; closing a new connection"
                        );
                        continue;
                    }
                };
                let state = state.clone();
                let closing = closing_rx.clone();
                let registry = registry.clone();
                tokio::spawn(async move {
                    connection::serve(stream, state, limits, closing, registry).await;
                    drop(permit);
                });
            }
        }
    }
    accept_tasks.abort_all();
    let _ = closing.send(true);
    // Every connection holds a permit until it is closed: all permits back = all closed.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    tokio::select! {
        _ = connections.acquire_many(all) => tracing::debug!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}
