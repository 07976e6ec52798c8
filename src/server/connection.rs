//! One accepted connection: the TLS handshake when configured, the HTTP version (HTTP/1.1, or
//! HTTP/2 when ALPN picked it), and the timeouts that keep idle clients from holding a
//! connection slot.
//!
//! HTTP/1.1 relies on hyper's header read timeout, which runs from the moment the server waits
//! for a request head (the first one and every one after it on a keep-alive connection). HTTP/2
//! has no such timeout in hyper, so an [`Activity`] tracker closes the connection gracefully
//! once no request has been in flight for the same time.
//!
//! Every connection is listed in a [`Registry`] with its activity: when all connection slots
//! are taken, the server closes the connection that has been idle longest (no request in
//! flight) to make room for the newcomer, so a flood of idle connections cannot lock real
//! scrapers out.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::routes::{service, Body};
use super::stall::{WriteStall, WRITE_STALL_TIMEOUT};
use super::state::{AppState, ServeLimits, MAX_HEADER_BYTES};

/// Serves one accepted TCP connection until it ends, the server shuts down (`shutdown`
/// turns true) or the client idles past the header timeout.
pub(super) async fn serve(
    stream: tokio::net::TcpStream,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: watch::Receiver<bool>,
    registry: Arc<Registry>,
) {
    // A client that stops reading is dropped, not waited on (see `stall`).
    let stream = WriteStall::new(stream, WRITE_STALL_TIMEOUT);
    let registration = registry.register();
    let slot = registration.slot.clone();
    let web = state.web.load_full();
    let Some(tls) = &web.tls else {
        let conn =
            http1_builder(limits).serve_connection(TokioIo::new(stream), tracked(&slot, state));
        drive(conn, shutdown, &slot, None).await;
        return;
    };
    let accepted = tokio::select! {
        accepted = tokio::time::timeout(limits.read_header_timeout, tls.acceptor.accept(stream)) => accepted,
        _ = slot.evict.notified() => {
            tracing::debug!("connection limit reached; closing a connection still in its TLS handshake");
            return;
        }
    };
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let session = stream.get_ref().1;
    if !tls.allowed_sans.is_empty() {
        let leaf = session.peer_certificates().and_then(|c| c.first());
        if !leaf.is_some_and(|c| super::tls::has_allowed_san(c, &tls.allowed_sans)) {
            tracing::debug!("client certificate has none of the allowed SANs; closing");
            return;
        }
    }
    // The protocol comes from ALPN, never from sniffing the first bytes: sniffing would wait
    // for them without a timeout.
    if session.alpn_protocol() == Some(b"h2".as_slice()) {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .serve_connection(TokioIo::new(stream), tracked(&slot, state));
        drive(conn, shutdown, &slot, Some(limits.read_header_timeout)).await;
    } else {
        let conn =
            http1_builder(limits).serve_connection(TokioIo::new(stream), tracked(&slot, state));
        drive(conn, shutdown, &slot, None).await;
    }
}

/// The service, marking the connection busy while each request is in flight.
fn tracked(
    slot: &Arc<Slot>,
    state: Arc<AppState>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = hyper::Response<Body>,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<
        Output = Result<hyper::Response<Body>, std::convert::Infallible>,
    > + Send,
> + Clone {
    let activity = slot.activity.clone();
    let inner = service(state);
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let guard = activity.begin();
        let call = hyper::service::Service::call(&inner, req);
        async move {
            let resp = call.await;
            drop(guard);
            resp
        }
    })
}

/// Every open connection and how busy it is; see the module documentation.
#[derive(Default)]
pub(super) struct Registry {
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// One open connection in the [`Registry`].
pub(super) struct Slot {
    activity: Arc<Activity>,
    /// Told when the server needs this connection's slot.
    evict: Notify,
    evicted: AtomicBool,
}

/// Lists a connection until dropped.
pub(super) struct Registration {
    id: u64,
    slot: Arc<Slot>,
    registry: Arc<Registry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(self: &Arc<Self>) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            activity: Arc::new(Activity::new()),
            evict: Notify::new(),
            evicted: AtomicBool::new(false),
        });
        self.lock().insert(id, slot.clone());
        Registration {
            id,
            slot,
            registry: self.clone(),
        }
    }

    /// Asks the connection that has been idle longest (no request in flight, not asked
    /// before) to close. False when every connection is busy.
    pub(super) fn evict_idlest(&self) -> bool {
        let slots = self.lock();
        let idlest = slots
            .values()
            .filter(|s| {
                s.activity.in_flight.load(Ordering::Acquire) == 0
                    && !s.evicted.load(Ordering::Acquire)
            })
            .min_by_key(|s| s.activity.last());
        match idlest {
            Some(slot) => {
                slot.evicted.store(true, Ordering::Release);
                slot.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

fn http1_builder(limits: ServeLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        // Real clients stay far below both limits; the byte limit should decide for any
        // plausible head, not hyper's default of 100 header lines. 1024 lines keep the
        // per-request header buffer at 64 KiB.
        .max_headers(MAX_HEADER_LINES);
    builder
}

/// Header lines accepted in one HTTP/1 request head (within [`MAX_HEADER_BYTES`]).
pub(super) const MAX_HEADER_LINES: usize = 1024;

/// How long an evicted connection may take to close before it is dropped.
const EVICT_GRACE: Duration = Duration::from_secs(1);

/// Polls `conn` to the end, asking it to finish gracefully (answer what is in flight, then
/// close) when the server shuts down, when the server needs its slot, or, with `idle`, when it
/// has been idle that long. An idle connection that has not finished one `limit` after that (an
/// HTTP/2 client that never sent its preface) is dropped.
async fn drive<C>(conn: C, mut shutdown: watch::Receiver<bool>, slot: &Slot, idle: Option<Duration>)
where
    C: GracefulConnection,
    C::Error: Display,
{
    tokio::pin!(conn);
    // Resolves to the limit once the connection has been idle that long.
    let idled = async {
        match idle {
            Some(limit) => {
                slot.activity.idle_for(limit).await;
                limit
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(idled);
    let hard_stop = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(hard_stop);
    let mut closing = false;
    let mut dropping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection error");
                }
                return;
            }
            _ = shutdown.wait_for(|down| *down), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = slot.evict.notified(), if !closing => {
                tracing::debug!("connection limit reached; closing the connection idle longest");
                closing = true;
                conn.as_mut().graceful_shutdown();
                hard_stop.as_mut().reset(Instant::now() + EVICT_GRACE);
                dropping = true;
            }
            limit = &mut idled, if !closing => {
                tracing::debug!("idle HTTP/2 connection; closing");
                closing = true;
                conn.as_mut().graceful_shutdown();
                hard_stop.as_mut().reset(Instant::now() + limit);
                dropping = true;
            }
            () = &mut hard_stop, if dropping => {
                tracing::debug!("idle connection did not close; dropping it");
                return;
            }
        }
    }
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

/// Marks a request in flight until dropped (also when the request is cancelled).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_means_nothing_in_flight_for_the_whole_limit() {
        let activity = Arc::new(Activity::new());
        let limit = Duration::from_secs(10);
        let start = Instant::now();
        // Nothing ever arrives: idle after exactly the limit.
        activity.idle_for(limit).await;
        assert_eq!(start.elapsed(), limit);

        // A request that lasts 25 s keeps the connection busy; the limit counts from its end.
        let guard = activity.begin();
        let waiter = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.idle_for(limit).await })
        };
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!waiter.is_finished());
        let ended = Instant::now();
        drop(guard);
        waiter.await.unwrap();
        let idle = ended.elapsed();
        assert!(idle >= limit && idle < limit * 2, "{idle:?}");
    }
}
