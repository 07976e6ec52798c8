//! Everything that talks to the Elements API, behind one façade ([`client::Client`]): the
//! seat endpoint and the customer list with their paging and wire format (`client/`), the
//! token source (`tokens`), how every request is sent (`transport`: retries, body limits,
//! request metrics), request slots by priority (`slots`), the adaptive rate limit
//! (`ratelimit`) and what is cut out of what servers send back (`redact`).
//!
//! It knows nothing of schedules or plans: `polling` decides what is asked and when.

pub(crate) mod client;
pub(crate) mod ratelimit;
pub(crate) mod redact;
pub(crate) mod slots;
pub(crate) mod tokens;
pub(crate) mod transport;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Credential, ElementsConfig};
use crate::metrics::Metrics;
use client::Client;
use redact::Redactor;
use tokens::TokenSource;
use transport::{Transport, TransportError, TransportOptions};

/// The bound on waits between attempts (and on a 429's `Retry-After` pause) of a new client
/// until its owner sets its own with [`Client::cap_waits`]: the default `poll.interval`. The
/// planner sets the running config's `poll.interval` before the client sends anything.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);

/// Builds the API client (transport, limits, token source) of the `elements` section, and of
/// nothing else: two configs with equal `elements` sections build the same client, so a
/// reload that changes only the rest (timing, customers, discovery) keeps the running one.
pub fn build_client(
    elements: &ElementsConfig,
    metrics: &Arc<Metrics>,
) -> Result<Arc<Client>, TransportError> {
    let e = elements;
    let secret = match &e.credential {
        Credential::Secret { secret, .. } => secret.expose(),
        Credential::Certificate { .. } => "",
    };
    let transport = Arc::new(Transport::new(
        TransportOptions {
            timeout: e.timeout,
            max_concurrency: e.max_concurrency,
            max_requests_per_second: e.max_requests_per_second,
            retries: e.retries,
            backoff_base: Duration::from_millis(500),
            max_backoff: DEFAULT_MAX_WAIT,
        },
        metrics.clone(),
        Redactor::new(secret),
    )?);
    let auth = Arc::new(TokenSource::new(
        transport.clone(),
        e.token_url.clone(),
        e.client_id.clone(),
        e.credential.clone(),
        e.scope.clone(),
    ));
    Ok(Arc::new(Client::new(
        transport,
        auth,
        e.base_url.clone(),
        e.page_size,
    )))
}
