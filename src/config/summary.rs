//! What `--check-config` prints (never a secret) and the warnings it and the start log show.

use std::num::NonZeroU32;
use std::time::Duration;

use regex::Regex;

use super::{Config, Credential, LicenseAssignedStatus, SecretSource, SECRET_ENV};
use crate::domain::customer_id::is_guid;

impl Config {
    /// A human summary for `--check-config`; never contains the secret.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let e = &self.elements;
        let mut s = String::new();
        let _ = writeln!(s, "config OK");
        let _ = writeln!(s, "  base_url: {}", e.base_url);
        let _ = writeln!(s, "  environment: {}", e.environment.name());
        let _ = writeln!(s, "  token_url: {}", e.token_url);
        let _ = writeln!(s, "  client_id: {}", e.client_id);
        match &e.credential {
            Credential::Secret { source, .. } => {
                let _ = writeln!(
                    s,
                    "  client secret: from {}",
                    match source {
                        SecretSource::Inline => "client_secret",
                        SecretSource::File => "client_secret_file",
                        SecretSource::Environment => SECRET_ENV,
                    }
                );
            }
            Credential::Certificate {
                certificate,
                certificate_file,
                key_file,
            } => {
                let _ = writeln!(
                    s,
                    "  client certificate: {certificate_file} with key {key_file} (signed JWT assertion, RS256); {}",
                    certificate.describe()
                );
            }
        }
        let _ = writeln!(s, "  scope: {}", e.scope);
        let _ = writeln!(
            s,
            "  timeout: {}, page_size: {}, max_concurrency: {}, max_requests_per_second: {}, retries: {}",
            crate::config::format_duration(e.timeout),
            e.page_size,
            e.max_concurrency,
            e.max_requests_per_second.map_or(0, NonZeroU32::get),
            e.retries
        );
        let _ = writeln!(
            s,
            "  poll interval: {}, stale_after: {}, empty_interval: {} (targets whose last poll found no tenants)",
            crate::config::format_duration(self.poll.interval),
            crate::config::format_duration(self.poll.stale_after),
            crate::config::format_duration(self.poll.empty_interval)
        );
        if let Some(d) = &self.discovery {
            let list = |v: &[Regex]| {
                v.iter()
                    .map(|r| format!("{:?}", r.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut ids: Vec<&str> = d.exclude_ids.iter().map(String::as_str).collect();
            ids.sort_unstable();
            let types: Vec<&str> = d.tenant_types.iter().map(|t| t.name()).collect();
            let _ = writeln!(
                s,
                "  discovery: every {}, POST {}partner/external/v3/general/customers/batch (all pages);",
                crate::config::format_duration(d.interval),
                e.base_url.as_str().trim_end_matches('/').to_owned() + "/"
            );
            let _ = writeln!(
                s,
                "    keeps organizations matching {}{}{}",
                if d.include.is_empty() {
                    "anything".to_owned()
                } else {
                    format!("any of [{}]", list(&d.include))
                },
                if d.exclude.is_empty() {
                    String::new()
                } else {
                    format!(", except those matching any of [{}]", list(&d.exclude))
                },
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(", and drops ids {}", ids.join(", "))
                }
            );
            let _ = writeln!(
                s,
                "    polls {} for each{}; organization becomes customer_name; customers listed below override discovered ones with the same id",
                types.join(", "),
                filters(d.license_assigned_status, d.tenant_ids.as_deref(), " (", ")")
            );
        }
        let _ = writeln!(
            s,
            "  customers: {} ({} targets{})",
            self.customers.len(),
            self.target_count(),
            if self.discovery.is_some() {
                ", plus discovered ones"
            } else {
                ""
            }
        );
        for c in &self.customers {
            let types: Vec<&str> = c.tenant_types.iter().map(|t| t.name()).collect();
            let status = filters(c.license_assigned_status, c.tenant_ids.as_deref(), ", ", "");
            let name = if c.name.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.name)
            };
            let _ = writeln!(s, "    - {}{name}: {}{status}", c.id, types.join(", "));
        }
        s
    }
}

/// The scope of the customer list (discovery).
const CUSTOMERS_SCOPE: &str = "elements.customers.read.all";

/// What is valid but probably not meant, said by `--check-config` and logged at start and
/// reload.
pub(super) fn warnings_of(config: &Config, both_token_sources: bool) -> Vec<String> {
    let mut w = Vec::new();
    let e = &config.elements;
    if config.poll.interval < Duration::from_secs(60) {
        w.push(format!(
            "poll.interval: {} is below 1m; be kind to the Elements API (seat counts change slowly)",
            crate::config::format_duration(config.poll.interval)
        ));
    }
    if let Some(d) = &config.discovery {
        if d.interval < Duration::from_secs(600) {
            w.push(format!(
                "discovery.interval: {} fetches the whole customer list that often; the list changes rarely (default 1h)",
                crate::config::format_duration(d.interval)
            ));
        }
    }
    if config.discovery.is_some() && !e.scope.split_whitespace().any(|s| s == CUSTOMERS_SCOPE) {
        w.push(format!(
            "elements.scope: {:?} lacks {CUSTOMERS_SCOPE}, which discovery needs: the customer list will be refused; remove scope (the default with discovery has both) or add it",
            e.scope
        ));
    }
    for (key, url) in [("token_url", &e.token_url), ("base_url", &e.base_url)] {
        if url.scheme() == "http" {
            w.push(format!(
                "elements.{key}: {url} is plain http: credentials and tokens would cross the network in cleartext; use https"
            ));
        }
    }
    if both_token_sources && e.token_url.as_str() != e.environment.token_url() {
        w.push(format!(
            "elements.token_url: {} overrides the token service of environment {} ({}); remove token_url unless you mean it",
            e.token_url,
            e.environment.name(),
            e.environment.token_url()
        ));
    }
    let not_guids: Vec<&str> = config
        .customers
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !is_guid(id))
        .collect();
    if let Some(first) = not_guids.first() {
        w.push(format!(
            "customers: {} customer id(s) are not GUIDs (first: {first:?}); Elements customer ids look like f1620000-b9d4-0000-a165-97db0000fc15",
            not_guids.len()
        ));
    }
    w
}

/// The body filters of a customer or of discovery as `--check-config` shows them, between
/// `open` and `close`; empty when there are none.
fn filters(
    status: Option<LicenseAssignedStatus>,
    tenant_ids: Option<&[String]>,
    open: &str,
    close: &str,
) -> String {
    let mut parts = Vec::new();
    match status {
        Some(LicenseAssignedStatus::Available) => {
            parts.push("license_assigned_status: available".to_owned())
        }
        Some(LicenseAssignedStatus::Assigned) => {
            parts.push("license_assigned_status: assigned".to_owned())
        }
        None => {}
    }
    if let Some(ids) = tenant_ids {
        parts.push(format!("tenant_ids: [{}]", ids.join(", ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{open}{}{close}", parts.join(", "))
    }
}
