//! The Elements vocabulary that config, the API client, planning and metrics share: tenant
//! types, the license filter, a tenant's seats, a target's identity and its stable hash, a
//! customer id's canonical form and its GUID shape (`customer_id`), time as the exposition
//! writes it, durations as Prometheus writes them (`duration`), the client certificate
//! (`certificate`: loaded with the config, signed into assertions by the token source), and
//! the bound on label values taken from the API (`label`).

pub(crate) mod cause;
pub(crate) mod certificate;
pub(crate) mod customer_id;
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
    /// The customer's id, in its canonical form (see [`customer_id::canonical_customer_id`]).
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

/// Seconds since the Unix epoch, as timestamps are exposed.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
