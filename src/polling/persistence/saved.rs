//! What is kept across a restart ([`Saved`], one [`SavedTarget`] per polled target) and which
//! API and client it was polled from ([`Origin`]).

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Credential, ElementsConfig};
use crate::domain::TenantType;
use crate::elements::client::DiscoveredCustomer;
use crate::metrics::SeatSeries;

/// Which API and client a state was written for: a state read for another one is not used
/// (its series are another account's seats). Never a secret: the client id and the
/// certificate are kept as SHA-256 fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `elements.base_url` (a fingerprint when longer than [`Origin::LONGEST_URL`], so the
    /// header stays short).
    pub base_url: String,
    /// `sha256:` and the hex SHA-256 of `elements.client_id`.
    pub client: String,
    /// The hex SHA-256 fingerprint of the client certificate, with certificate
    /// authentication.
    pub certificate: Option<String>,
}

impl Origin {
    /// The longest `base_url` kept as it is.
    pub const LONGEST_URL: usize = 256;

    /// The origin of a state polled with `elements`.
    pub fn of(elements: &ElementsConfig) -> Origin {
        let url = elements
            .stable_origin
            .unwrap_or_else(|| elements.base_url.as_str());
        Origin {
            base_url: if url.len() <= Self::LONGEST_URL {
                url.to_owned()
            } else {
                sha256(url)
            },
            client: sha256(&elements.client_id),
            certificate: match &elements.credential {
                Credential::Certificate { certificate, .. } => {
                    Some(certificate.sha256_fingerprint().to_owned())
                }
                Credential::Secret { .. } => None,
            },
        }
    }

    /// What differs between the origin of a file (`self`) and `now`'s, for a log line; `None`
    /// when they are the same. Names the base URLs, never the client id.
    pub fn differs(&self, now: &Origin) -> Option<String> {
        let mut what = Vec::new();
        if self.base_url != now.base_url {
            what.push(format!(
                "base_url {} in the file, {} in the config",
                self.base_url, now.base_url
            ));
        }
        if self.client != now.client {
            what.push("another client_id".to_owned());
        }
        match (&self.certificate, &now.certificate) {
            (Some(a), Some(b)) if a != b => what.push(format!(
                "client certificate SHA-256 {a} in the file, {b} in the config"
            )),
            (None, Some(_)) => {
                what.push("a client secret in the file, a certificate in the config".to_owned())
            }
            (Some(_), None) => {
                what.push("a certificate in the file, a client secret in the config".to_owned())
            }
            _ => {}
        }
        (!what.is_empty()).then(|| what.join("; "))
    }
}

/// `sha256:` and the hex SHA-256 of `text`.
fn sha256(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Everything kept across a restart.
#[derive(Debug, Clone)]
pub struct Saved {
    /// When the state was taken.
    pub written_at: SystemTime,
    /// The API and client it was polled from (`None` in a file of an earlier version, which
    /// did not record them).
    pub origin: Option<Arc<Origin>>,
    /// Every target of the plan that has been polled, in plan order.
    pub targets: Vec<SavedTarget>,
    /// The last good customer list (discovery on and a list fetched).
    pub customers: Option<Arc<Vec<DiscoveredCustomer>>>,
}

/// What is kept of one target.
#[derive(Debug, Clone)]
pub struct SavedTarget {
    /// Customer id (canonical).
    pub customer_id: Arc<str>,
    /// Tenant type.
    pub tenant_type: TenantType,
    /// The series of the last successful poll.
    pub seats: Arc<SeatSeries>,
    /// Tenants returned by the last successful poll (`target_tenants`).
    pub tenants: Option<usize>,
    /// When the last poll ended.
    pub last_poll: Option<SystemTime>,
    /// When the last successful poll ended.
    pub last_success: Option<SystemTime>,
    /// When the first failed poll after the last success ended, while failing.
    pub failing_since: Option<SystemTime>,
    /// The cause of the last poll's failure, if it failed.
    pub error: Option<String>,
    /// Requests (pages) the last poll needed.
    pub pages: Option<u32>,
    /// When the target was next due.
    pub next_due: Option<SystemTime>,
}
