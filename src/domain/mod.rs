//! The Elements vocabulary that config, the API client, planning and metrics share: tenant
//! types, the license filter, a tenant's seats, a target's identity and its stable hash, a
//! customer id's canonical form and its GUID shape, time as the exposition writes it,
//! durations as Prometheus writes them (`duration`), the client certificate (`certificate`:
//! loaded with the config, signed into assertions by the token source), and the bound on
//! label values taken from the API (`label`).

pub(crate) mod cause;
pub(crate) mod certificate;
pub(crate) mod duration;
pub(crate) mod label;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

pub use cause::Cause;

/// What identifies a target across plans: its customer id and tenant type. A target whose
/// name or filter changes keeps its key (and so its state and schedule). Ordered by
/// customer id, then tenant type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    /// The customer's id, in its canonical form (see [`canonical_customer_id`]).
    pub customer_id: Arc<str>,
    /// The tenant type polled.
    pub tenant_type: TenantType,
}

impl TargetKey {
    /// The key of `customer_id`'s tenants of `tenant_type`.
    pub fn new(customer_id: impl Into<Arc<str>>, tenant_type: TenantType) -> TargetKey {
        TargetKey {
            customer_id: customer_id.into(),
            tenant_type,
        }
    }
}

/// FNV-1a, 64-bit: the stable hash behind shards and schedule offsets. Fixed by its
/// definition, so the same on every version and platform.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The four kinds of third-party tenant the Elements API knows, with their API numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TenantType {
    /// Type 0.
    Microsoft365,
    /// Type 1.
    Salesforce,
    /// Type 2.
    Google,
    /// Type 3.
    Dynamics365,
}

impl TenantType {
    /// All types, in API number order.
    pub const ALL: [TenantType; 4] = [
        TenantType::Microsoft365,
        TenantType::Salesforce,
        TenantType::Google,
        TenantType::Dynamics365,
    ];

    /// The `tenant_type` label value and config name.
    pub fn name(self) -> &'static str {
        match self {
            TenantType::Microsoft365 => "microsoft_365",
            TenantType::Salesforce => "salesforce",
            TenantType::Google => "google",
            TenantType::Dynamics365 => "dynamics_365",
        }
    }

    /// The number used in the API path.
    pub fn api_number(self) -> u8 {
        self as u8
    }

    /// Parses a config value: a name or the API number 0..3.
    pub fn parse(value: &str) -> Option<Self> {
        TenantType::ALL
            .into_iter()
            .find(|t| t.name() == value || t.api_number().to_string() == value)
    }
}

impl fmt::Display for TenantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The optional `licenseAssignedStatus` filter sent in the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseAssignedStatus {
    /// 0: available user seats.
    Available,
    /// 1: assigned user seats.
    Assigned,
}

impl LicenseAssignedStatus {
    /// The number the API expects.
    pub fn api_number(self) -> u8 {
        match self {
            LicenseAssignedStatus::Available => 0,
            LicenseAssignedStatus::Assigned => 1,
        }
    }
}

/// One tenant's seats as the API reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSeats {
    /// Tenant id (the `tenant_id` label).
    pub id: String,
    /// Tenant name (the `tenant_name` label).
    pub name: String,
    /// Available (unassigned) user seats.
    pub available: u64,
    /// Assigned user seats.
    pub assigned: u64,
}

/// The one form of a customer id that the exporter uses everywhere: in the API path, the
/// `customer_id` label, plan keys, shards, overrides and `exclude_ids`.
///
/// Elements customer ids are GUIDs, which compare without regard to case, and the customer
/// list, the config file and a user's notes may spell one id in different cases. Every id is
/// therefore lowercased where it enters (config file, customer list), so that one customer
/// is one target set with one label value, whichever spelling came first.
///
/// The id is also a segment of the request path: an id that could change the path's meaning
/// (`..`, `.`, separators, query or fragment marks, percent escapes, spaces or control
/// characters) is refused with the reason, wherever it came from.
pub fn canonical_customer_id(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > label::MAX_LABEL_VALUE_BYTES {
        // Not cut: the id addresses the customer in the request path.
        return Err(format!(
            "is {} bytes long, more than the {} bytes of a label value",
            raw.len(),
            label::MAX_LABEL_VALUE_BYTES
        ));
    }
    if raw == "." || raw == ".." {
        return Err(format!("{raw:?} would change the request path"));
    }
    if let Some(c) = raw
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{raw:?} may not contain {c:?} (it is part of the request path)"
        ));
    }
    Ok(raw.to_lowercase())
}

/// Whether a customer id has the shape Elements gives its customers' ids, a GUID
/// (`8-4-4-4-12` hex digits): an id that has not is valid but probably a name typed in its
/// place, which `--check-config` warns about.
pub(crate) fn is_guid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Seconds since the Unix epoch, as timestamps are exposed.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_lowercased_and_must_be_one_path_segment() {
        assert_eq!(
            canonical_customer_id("F1620000-B9D4-0000-A165-97DB0000FC15").as_deref(),
            Ok("f1620000-b9d4-0000-a165-97db0000fc15")
        );
        assert_eq!(canonical_customer_id("plain").as_deref(), Ok("plain"));
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "x\\..\\..\\admin",
            "a?b",
            "a#b",
            "a%2fb",
            "a b",
            "a\u{7f}",
        ] {
            let why = canonical_customer_id(bad).unwrap_err();
            assert!(!why.is_empty(), "{bad:?}");
        }
        // Dots inside an id are harmless.
        assert_eq!(canonical_customer_id("a..b").as_deref(), Ok("a..b"));
        // Bounded like a label value, and not echoed when too long.
        let long = "a".repeat(label::MAX_LABEL_VALUE_BYTES + 1);
        let why = canonical_customer_id(&long).unwrap_err();
        assert!(why.contains("1025 bytes") && !why.contains("aaaa"), "{why}");
        assert!(canonical_customer_id(&long[1..]).is_ok());
    }
}
