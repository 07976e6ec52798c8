//! The YAML configuration file, parsed once into validated types.
//!
//! Parsing walks the YAML tree by hand instead of deriving `Deserialize`, so that *every*
//! problem in a file is reported at once, each with its key path and the offending value
//! (`customers[2].tenant_types[0]: unknown tenant type "office"; ...`). After [`Config::parse`]
//! succeeds, no other module needs to validate anything again.
//!
//! Where things are: the validated types are here; `load` reads a file or its text into
//! them ([`Config::load`], [`Config::parse`]); [`yaml`] walks the tree (key paths, unknown
//! keys, typed values); `parse` builds each section from it; `environment` reads what lives
//! outside the file (the secret from the environment or a file, certificate files) into the
//! `Credential`; `summary` is what `--check-config` prints and the warnings it and the
//! start log show.

mod environment;
mod load;
mod parse;
#[cfg(test)]
mod properties;
mod summary;
#[cfg(test)]
pub(crate) mod tests;
mod yaml;

use std::collections::HashSet;
use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use reqwest::Url;

pub use crate::domain::duration::{format_duration, parse_duration};
pub use crate::domain::{LicenseAssignedStatus, TenantType};
pub use environment::{Credential, Environment, ProcessEnvironment, SecretSource, SECRET_ENV};

/// Default API host (commercial environment).
pub const DEFAULT_BASE_URL: &str = "https://graph.avepointonlineservices.com";
/// Default scope requested for the seat endpoint.
pub const DEFAULT_SCOPE: &str = "elements.license.read.all";
/// Default scope when customer discovery is on: the seat and the customer list endpoints.
pub const DEFAULT_DISCOVERY_SCOPE: &str = "elements.license.read.all elements.customers.read.all";
/// A problem found while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The file was read, but is not valid; every problem is listed.
    #[error("invalid config: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// Every problem as its own line (one for a read error).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(problems) => problems.clone(),
            // Shown after the file's name: no need to say it twice.
            ConfigError::Read { source, .. } => {
                vec![format!("cannot read the config file: {source}")]
            }
        }
    }
}

/// The AvePoint Online Services environment; it picks the token service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementsEnvironment {
    /// The commercial cloud (default).
    Commercial,
    /// U.S. Government.
    Gov,
    /// AOS2.
    Aos2,
    /// FedRAMP.
    Fedramp,
}

impl ElementsEnvironment {
    /// Every environment, for messages.
    pub const ALL: [ElementsEnvironment; 4] = [
        ElementsEnvironment::Commercial,
        ElementsEnvironment::Gov,
        ElementsEnvironment::Aos2,
        ElementsEnvironment::Fedramp,
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            ElementsEnvironment::Commercial => "commercial",
            ElementsEnvironment::Gov => "gov",
            ElementsEnvironment::Aos2 => "aos2",
            ElementsEnvironment::Fedramp => "fedramp",
        }
    }

    /// The environment's OAuth2 token endpoint.
    pub fn token_url(self) -> &'static str {
        match self {
            ElementsEnvironment::Commercial => {
                "https://identity.avepointonlineservices.com/connect/token"
            }
            ElementsEnvironment::Gov => {
                "https://identity-gov.avepointonlineservices.com/connect/token"
            }
            ElementsEnvironment::Aos2 => {
                "https://identity-aos2.avepointonlineservices.com/connect/token"
            }
            ElementsEnvironment::Fedramp => "https://identity.online15.net/connect/token",
        }
    }
}

/// Settings of the Elements API connection; equal settings build the same client.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementsConfig {
    /// API host, e.g. `https://graph.avepointonlineservices.com`.
    pub base_url: Url,
    /// The environment (picks the default token URL).
    pub environment: ElementsEnvironment,
    /// OAuth2 token endpoint.
    pub token_url: Url,
    /// OAuth2 client id of the app registration.
    pub client_id: String,
    /// Secret or certificate.
    pub credential: Credential,
    /// OAuth2 scope.
    pub scope: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// `pageSize` of each request, 1..=100.
    pub page_size: u8,
    /// Requests in flight at once.
    pub max_concurrency: NonZeroUsize,
    /// Request rate limit; `None` means unlimited.
    pub max_requests_per_second: Option<NonZeroU32>,
    /// Extra attempts for retryable failures.
    pub retries: u32,
    /// A name that stands for `base_url` where the persistence file records which API its
    /// state came from (never from the file: `--demo` sets it, since its simulated API moves
    /// to a new port at every start but is the same API).
    pub stable_origin: Option<&'static str>,
}

/// `poll.empty_interval` when not set (or `poll.interval`, if that is longer).
pub const DEFAULT_EMPTY_INTERVAL: Duration = Duration::from_secs(3600);

/// Scheduling of target polls.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Time between two polls of the same target.
    pub interval: Duration,
    /// How long last-good series survive failing polls.
    pub stale_after: Duration,
    /// Time between two polls of a target whose last successful poll found no tenants; at
    /// least `interval` (equal: no empty cadence).
    pub empty_interval: Duration,
}

impl PollConfig {
    /// The time between polls of a target: `empty_interval` when its last poll succeeded
    /// and found no tenants, else `interval`.
    pub fn cadence(&self, empty: bool) -> Duration {
        if empty {
            self.empty_interval
        } else {
            self.interval
        }
    }
}

/// One customer whose tenants are polled.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The Elements customer id in its canonical form (lowercase, see
    /// [`crate::domain::customer_id::canonical_customer_id`]), used in the API path and the `customer_id`
    /// label.
    pub id: String,
    /// Display name for the `customer_name` label (empty when not configured).
    pub name: String,
    /// Tenant types to poll, without duplicates.
    pub tenant_types: Vec<TenantType>,
    /// Optional body filter.
    pub license_assigned_status: Option<LicenseAssignedStatus>,
    /// Optional: only these tenants (body `tenantIds`); never an empty list.
    pub tenant_ids: Option<Arc<[String]>>,
}

/// Customer auto-discovery: every customer of the partner's list that passes the filters
/// becomes targets.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// How often the customer list is fetched.
    pub interval: Duration,
    /// Keep only organizations matching one of these (all when empty).
    pub include: Vec<Regex>,
    /// Drop organizations matching any of these.
    pub exclude: Vec<Regex>,
    /// Drop these customer ids (lowercased, compared with canonical ids).
    pub exclude_ids: HashSet<String>,
    /// Tenant types polled for discovered customers.
    pub tenant_types: Vec<TenantType>,
    /// Body filter for discovered customers.
    pub license_assigned_status: Option<LicenseAssignedStatus>,
    /// Tenant filter for discovered customers (body `tenantIds`); never an empty list.
    pub tenant_ids: Option<Arc<[String]>>,
}

impl PartialEq for DiscoveryConfig {
    fn eq(&self, other: &Self) -> bool {
        fn patterns(v: &[Regex]) -> Vec<&str> {
            v.iter().map(Regex::as_str).collect()
        }
        let DiscoveryConfig {
            interval,
            include,
            exclude,
            exclude_ids,
            tenant_types,
            license_assigned_status,
            tenant_ids,
        } = self;
        *interval == other.interval
            && patterns(include) == patterns(&other.include)
            && patterns(exclude) == patterns(&other.exclude)
            && *exclude_ids == other.exclude_ids
            && *tenant_types == other.tenant_types
            && *license_assigned_status == other.license_assigned_status
            && *tenant_ids == other.tenant_ids
    }
}

impl DiscoveryConfig {
    /// Whether a discovered customer passes the filters.
    pub fn keeps(&self, id: &str, organization: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(organization)))
            && !self.exclude.iter().any(|r| r.is_match(organization))
            && !self.exclude_ids.contains(id)
    }
}

/// The least time a round over the listed targets needs (see [`Config::min_round`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundEstimate {
    /// Listed targets of one shard.
    pub targets: usize,
    /// `max_requests_per_second`.
    pub rate: u32,
    /// targets ÷ rate: seconds a round needs at one page per target.
    pub seconds: f64,
    /// `poll.interval`.
    pub interval: Duration,
    /// `poll.empty_interval`.
    pub empty_interval: Duration,
    /// The same round once the empty targets are known, if three in four are empty (the
    /// typical MSP fleet: Microsoft 365 only) and polled every `empty_interval`.
    pub typical_seconds: f64,
}

impl RoundEstimate {
    /// Whether even one page per target cannot be polled within the interval.
    pub fn exceeds_interval(&self) -> bool {
        self.seconds > self.interval.as_secs_f64()
    }
}

impl fmt::Display for RoundEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} targets x at least 1 page / {} requests per second = at least {:.0}s per round; poll.interval is {}",
            self.targets,
            self.rate,
            self.seconds.ceil(),
            crate::config::format_duration(self.interval)
        )?;
        if self.empty_interval > self.interval {
            write!(
                f,
                " (the first round, and the worst case; targets found empty are then polled every {}: with three in four empty, as in a typical MSP fleet, about {:.0}s per round)",
                crate::config::format_duration(self.empty_interval),
                self.typical_seconds.ceil()
            )?;
        }
        Ok(())
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// API connection.
    pub elements: ElementsConfig,
    /// Scheduling.
    pub poll: PollConfig,
    /// Customers listed in the file, in file order, with unique ids; with discovery on they
    /// override discovered customers of the same id.
    pub customers: Vec<Customer>,
    /// Customer auto-discovery, when configured.
    pub discovery: Option<DiscoveryConfig>,
    /// Settings that are valid but probably not meant (see `--check-config`).
    pub warnings: Vec<String>,
}

impl Config {
    /// Whether `other` would build the same API client (the `elements` section: connection,
    /// credentials, limits): a reload that only changes customers, discovery filters or poll
    /// timing keeps the running client, its token, rate limit and throttle (the client's
    /// waits follow `poll.interval` in place).
    pub fn same_client_as(&self, other: &Config) -> bool {
        self.elements == other.elements
    }

    /// Number of (customer, tenant type) targets.
    pub fn target_count(&self) -> usize {
        self.customers.iter().map(|c| c.tenant_types.len()).sum()
    }

    /// What the config alone says about one round over the listed targets: at least one
    /// request each (pages beyond the first only add), at the configured rate limit. `None`
    /// without a rate limit (then the API's latency decides).
    pub fn min_round(&self, total_shards: u32) -> Option<RoundEstimate> {
        let rate = self.elements.max_requests_per_second?.get();
        let targets = self.target_count().div_ceil(total_shards.max(1) as usize);
        let seconds = targets as f64 / f64::from(rate);
        let share = self.poll.interval.as_secs_f64() / self.poll.empty_interval.as_secs_f64();
        Some(RoundEstimate {
            targets,
            rate,
            seconds,
            interval: self.poll.interval,
            empty_interval: self.poll.empty_interval,
            typical_seconds: seconds * (0.25 + 0.75 * share),
        })
    }
}
