//! Everything HTTP-facing: binding, serving with connection limits and graceful shutdown
//! (here), one connection's life ([`connection`]), the endpoints ([`routes`]) with the
//! landing page ([`landing`]) and the targets API ([`targets`]), and the
//! exporter-toolkit web config with its TLS and basic auth ([`web_config`], `tls`,
//! `basic_auth`); what they share (the handlers' state, the limits) is [`state`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use state::{AppState, ReloadRequest, ServeLimits};

mod basic_auth;
mod connection;
mod landing;
mod routes;
mod stall;
mod state;
mod targets;
mod tls;
pub mod web_config;

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a new connection waits for the idle connection closed to make room for it.
const EVICT_WAIT: Duration = Duration::from_secs(2);

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

/// Binds every listen address (`host:port`, or `:port` for all interfaces: IPv6 and IPv4 on
/// one dual-stack socket where the host has IPv6, IPv4 alone where it has not).
pub async fn bind(addrs: &[String]) -> Result<Vec<TcpListener>, ServerError> {
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(addrs.len());
    for (i, addr) in addrs.iter().enumerate() {
        if let Some(first) = addrs[..i].iter().find(|a| a.eq_ignore_ascii_case(addr)) {
            return Err(ServerError::BadAddress {
                addr: addr.clone(),
                reason: format!("--web.listen-address {first} is given twice"),
            });
        }
        let bound = match addr.strip_prefix(':') {
            Some(port) => bind_all_interfaces(addr, port),
            None => bind_one(addr).await,
        };
        let listener = match bound {
            Ok(l) => l,
            // Taken by one of our own addresses (`:9978` and `127.0.0.1:9978`), not by
            // another process: say so.
            Err(ServerError::AddrInUse { addr }) => {
                let port = addr.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
                let ours = listeners
                    .iter()
                    .zip(addrs)
                    .find(|(l, _)| l.local_addr().is_ok_and(|a| a.port().to_string() == port));
                return Err(match ours {
                    Some((_, earlier)) => ServerError::BadAddress {
                        reason: format!(
                            "overlaps --web.listen-address {earlier}, which already listens on that port"
                        ),
                        addr,
                    },
                    None => ServerError::AddrInUse { addr },
                });
            }
            Err(e) => return Err(e),
        };
        listeners.push(listener);
    }
    Ok(listeners)
}

/// File descriptors kept for everything but served connections: listeners, API
/// connections, the state file, config and certificate reads.
const RESERVED_FILES: usize = 64;

/// The process's open-file limit (soft), where the platform tells (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => None,
        n => n.parse().ok(),
    }
}

/// `--web.max-connections` within the open-file limit: above it, accept would fail with
/// EMFILE before the limit (and its eviction of idle connections) ever applied.
fn within_file_limit(max_connections: usize, file_limit: Option<usize>) -> usize {
    let wanted = max_connections.max(1);
    let Some(limit) = file_limit else {
        return wanted;
    };
    let possible = limit.saturating_sub(RESERVED_FILES).max(1);
    if wanted > possible {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = limit,
            serving_at_most = possible,
            "--web.max-connections is above what the open-file limit allows; serving at most \
             serving_at_most connections (raise the limit, e.g. LimitNOFILE= or ulimit -n, to \
             serve more)"
        );
        return possible;
    }
    wanted
}

/// `[fe80::1%eth0]:port` (or `%2`): an IPv6 address with its zone, which the resolver does not
/// take; `None` for any other address.
fn scoped_v6(addr: &str) -> Option<Result<SocketAddr, ServerError>> {
    let (host, port) = addr.rsplit_once(':')?;
    let inner = host.strip_prefix('[')?.strip_suffix(']')?;
    let (ip, zone) = inner.split_once('%')?;
    let bad = |reason: String| ServerError::BadAddress {
        addr: addr.to_owned(),
        reason,
    };
    Some((|| {
        let ip: std::net::Ipv6Addr = ip
            .parse()
            .map_err(|_| bad(format!("{ip:?} is not an IPv6 address")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(format!("port {port:?} is not a number from 0 to 65535")))?;
        let scope = match zone.parse::<u32>() {
            Ok(index) => index,
            Err(_) => interface_index(zone)
                .ok_or_else(|| bad(format!("no network interface named {zone:?}")))?,
        };
        Ok(SocketAddr::V6(std::net::SocketAddrV6::new(
            ip, port, 0, scope,
        )))
    })())
}

/// The index of the network interface `name` (Linux: `/sys/class/net/NAME/ifindex`).
fn interface_index(name: &str) -> Option<u32> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if !plain {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
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
    if let Some(scoped) = scoped_v6(addr) {
        return TcpListener::bind(scoped?)
            .await
            .map_err(|source| bind_error(addr, source));
    }
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
    let max_connections = within_file_limit(limits.max_connections, open_file_limit());
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let registry = Arc::new(connection::Registry::default());
    let (conn_tx, mut conn_rx) = mpsc::channel::<tokio::net::TcpStream>(64);
    let mut accept_tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let conn_tx = conn_tx.clone();
        accept_tasks.spawn(async move {
            let (mut failures, mut last_warned, mut backoff) = (0u64, None, Duration::ZERO);
            loop {
                let accepted = listener.accept().await;
                if accepted.is_ok() {
                    backoff = Duration::ZERO;
                }
                match accepted {
                    Ok((stream, _)) => {
                        if conn_tx.send(stream).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off (longer while it
                        // lasts) and go on; one line a minute, with how often it happened.
                        failures += 1;
                        if last_warned.is_none_or(|t: tokio::time::Instant| {
                            t.elapsed() >= Duration::from_secs(60)
                        }) {
                            tracing::warn!(error = %e, failures, "accept failed; backing off");
                            last_warned = Some(tokio::time::Instant::now());
                            failures = 0;
                        }
                        backoff =
                            (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        tokio::time::sleep(backoff).await;
                        continue;
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
                            max = max_connections,
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
    // All of the limit in force: clamped to the open-file limit, fewer than asked for.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = connections.acquire_many(all) => tracing::debug!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}
