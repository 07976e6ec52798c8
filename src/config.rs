//! The YAML configuration file, parsed once into validated types.
//!
//! Parsing walks the YAML tree by hand instead of deriving `Deserialize`, so that *every*
//! problem in a file is reported at once, each with its key path and the offending value
//! (`customers[2].tenant_types[0]: unknown tenant type "office"; ...`). After [`Config::parse`]
//! succeeds, no other module needs to validate anything again.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use regex::Regex;
use reqwest::Url;
use serde_yaml::{Mapping, Value};

use crate::assertion::ClientCertificate;

/// Default API host (commercial environment).
pub const DEFAULT_BASE_URL: &str = "https://graph.avepointonlineservices.com";
/// Default scope requested for the seat endpoint.
pub const DEFAULT_SCOPE: &str = "elements.license.read.all";
/// Default scope when customer discovery is on: the seat and the customer list endpoints.
pub const DEFAULT_DISCOVERY_SCOPE: &str = "elements.license.read.all elements.customers.read.all";
/// Environment variable that, when set, supplies the client secret and wins over the file.
pub const SECRET_ENV: &str = "ELEMENTS_CLIENT_SECRET";

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
            other => vec![other.to_string()],
        }
    }
}

/// A string that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it (the token request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the client secret was found; shown by `--check-config` instead of the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `elements.client_secret` in the file.
    Inline,
    /// `elements.client_secret_file`.
    File,
    /// The `ELEMENTS_CLIENT_SECRET` environment variable.
    Environment,
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

/// How the exporter proves who it is to the token endpoint.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A client secret.
    Secret {
        /// The secret.
        secret: Secret,
        /// Where it came from.
        source: SecretSource,
    },
    /// A certificate and its private key (a signed JWT client assertion, private_key_jwt).
    Certificate {
        /// The checked certificate and key.
        certificate: Arc<ClientCertificate>,
        /// `client_certificate_file`, for `--check-config`.
        certificate_file: String,
        /// `client_private_key_file`, for `--check-config`.
        key_file: String,
    },
}

/// The same credential: the same secret (wherever it came from), or the same certificate
/// (by thumbprint) from the same files.
impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Credential::Secret { secret: a, .. }, Credential::Secret { secret: b, .. }) => a == b,
            (
                Credential::Certificate {
                    certificate: a,
                    certificate_file: af,
                    key_file: ak,
                },
                Credential::Certificate {
                    certificate: b,
                    certificate_file: bf,
                    key_file: bk,
                },
            ) => af == bf && ak == bk && a.thumbprint() == b.thumbprint(),
            _ => false,
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
}

/// Scheduling of target polls.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Time between two polls of the same target.
    pub interval: Duration,
    /// How long last-good series survive failing polls.
    pub stale_after: Duration,
}

/// One customer whose tenants are polled.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The Elements customer id, used in the API path and the `customer_id` label.
    pub id: String,
    /// Display name for the `customer_name` label (empty when not configured).
    pub name: String,
    /// Tenant types to poll, without duplicates.
    pub tenant_types: Vec<TenantType>,
    /// Optional body filter.
    pub license_assigned_status: Option<LicenseAssignedStatus>,
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
    /// Drop these customer ids.
    pub exclude_ids: HashSet<String>,
    /// Tenant types polled for discovered customers.
    pub tenant_types: Vec<TenantType>,
    /// Body filter for discovered customers.
    pub license_assigned_status: Option<LicenseAssignedStatus>,
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
        } = self;
        *interval == other.interval
            && patterns(include) == patterns(&other.include)
            && patterns(exclude) == patterns(&other.exclude)
            && *exclude_ids == other.exclude_ids
            && *tenant_types == other.tenant_types
            && *license_assigned_status == other.license_assigned_status
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
            humantime::format_duration(self.interval)
        )
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

/// Where configuration values that live outside the file come from: the environment and
/// secret files. Tests pass their own instead of touching the process environment.
pub trait Environment {
    /// The value of an environment variable, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The contents of a file.
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
}

/// The real process environment and file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        read_regular_file(path, MAX_FILE_BYTES)
    }
}

/// Largest config or secret file read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Deepest nesting of YAML collections accepted (real configs use 4).
pub const MAX_NESTING: usize = 64;

/// Reads a regular file of at most `limit` bytes. Anything else (a FIFO that would block until
/// someone writes to it, `/dev/zero` that never ends, a directory) is an error that says so.
pub fn read_regular_file(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory cannot be a config)",
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

/// The first line at which YAML collections nest deeper than [`MAX_NESTING`], if any: a
/// linear scan, so that a hostile file fails at once instead of in the parser's quadratic time.
fn too_deep(text: &str) -> Option<usize> {
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        // Block nesting: indentation and "- - -" chains on one line.
        let dashes = body
            .as_bytes()
            .chunks(2)
            .take_while(|c| *c == b"- " || *c == b"-")
            .count();
        if indent / 2 + dashes > MAX_NESTING * 4 || dashes > MAX_NESTING {
            return Some(n + 1);
        }
        // Flow nesting, outside quoted strings and comments.
        let mut quote = None;
        for c in body.chars() {
            match (quote, c) {
                (None, '#') => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_NESTING {
                        return Some(n + 1);
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

impl Config {
    /// Whether `other` would build the same API client (connection, credentials, limits and
    /// the poll interval that caps waits): a reload that only changes customers, discovery
    /// filters or `stale_after` keeps the running client, its token, rate limit and throttle.
    pub fn same_client_as(&self, other: &Config) -> bool {
        self.elements == other.elements && self.poll.interval == other.poll.interval
    }

    /// Reads and validates a config file.
    /// Blocking: call it off the async runtime (`spawn_blocking`).
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let text = read_regular_file(path, MAX_FILE_BYTES).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, env)
    }

    /// Validates the YAML text of a config file.
    pub fn parse(text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
        if let Some(line) = too_deep(text) {
            return Err(ConfigError::Invalid(vec![format!(
                "line {line}: collections nested deeper than {MAX_NESTING} levels"
            )]));
        }
        let root: Value = serde_yaml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![format!(
                "not valid YAML: {}",
                one_line(&e.to_string())
            )])
        })?;
        let mut p = Problems::default();
        let config = parse_root(&root, env, &mut p);
        match config {
            Some(config) if p.0.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid(p.0)),
        }
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
        Some(RoundEstimate {
            targets,
            rate,
            seconds: targets as f64 / f64::from(rate),
            interval: self.poll.interval,
        })
    }

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
            humantime::format_duration(e.timeout),
            e.page_size,
            e.max_concurrency,
            e.max_requests_per_second.map_or(0, NonZeroU32::get),
            e.retries
        );
        let _ = writeln!(
            s,
            "  poll interval: {}, stale_after: {}",
            humantime::format_duration(self.poll.interval),
            humantime::format_duration(self.poll.stale_after)
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
                humantime::format_duration(d.interval),
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
                match d.license_assigned_status {
                    Some(LicenseAssignedStatus::Available) => " (license_assigned_status: available)",
                    Some(LicenseAssignedStatus::Assigned) => " (license_assigned_status: assigned)",
                    None => "",
                }
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
            let status = match c.license_assigned_status {
                Some(LicenseAssignedStatus::Available) => ", license_assigned_status: available",
                Some(LicenseAssignedStatus::Assigned) => ", license_assigned_status: assigned",
                None => "",
            };
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

/// Collected problems, each `path: message`.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, path: &str, message: impl fmt::Display) {
        self.0.push(format!("{path}: {message}"));
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Shows a YAML value the way the user wrote it, for error messages.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_owned(),
        other => serde_yaml::to_string(other)
            .map(|s| one_line(s.trim()))
            .unwrap_or_else(|_| "?".to_owned()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A mapping whose keys are checked against a known list; reading a key marks it known.
struct Section<'a> {
    path: String,
    map: &'a Mapping,
}

impl<'a> Section<'a> {
    /// Checks that `value` is a mapping with only `allowed` keys.
    fn new(
        value: &'a Value,
        path: &str,
        allowed: &[&str],
        p: &mut Problems,
    ) -> Option<Section<'a>> {
        let Value::Mapping(map) = value else {
            p.add(
                if path.is_empty() { "config" } else { path },
                format!("expected a mapping, got {}", kind(value)),
            );
            return None;
        };
        for key in map.keys() {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => p.add(
                    &join(path, k),
                    format!("unknown key; expected one of {}", allowed.join(", ")),
                ),
                None => p.add(path, format!("keys must be strings, got {}", show(key))),
            }
        }
        Some(Section {
            path: path.to_owned(),
            map,
        })
    }

    fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`, treating an explicit `null` as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str, p: &mut Problems) -> Option<String> {
        let value = self.get(key)?;
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => {
                p.add(&self.path(key), "must not be empty");
                None
            }
            // Numbers and booleans are accepted where a string is wanted (ids, names).
            Value::Number(n) => Some(n.to_string()),
            other => {
                p.add(
                    &self.path(key),
                    format!("expected a string, got {}", kind(other)),
                );
                None
            }
        }
    }

    fn integer(&self, key: &str, min: u64, max: u64, p: &mut Problems) -> Option<u64> {
        let value = self.get(key)?;
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ if value.is_number() => {
                p.add(
                    &self.path(key),
                    format!("{} is out of range; expected {min}..{max}", show(value)),
                );
                None
            }
            _ => {
                p.add(
                    &self.path(key),
                    format!("expected an integer, got {}", show(value)),
                );
                None
            }
        }
    }

    fn duration(&self, key: &str, p: &mut Problems) -> Option<Duration> {
        let value = self.get(key)?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => {
                p.add(
                    &self.path(key),
                    format!(
                        "expected a duration such as 30s, 5m or 1h30m, got {}",
                        show(other)
                    ),
                );
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                p.add(&self.path(key), e);
                None
            }
        }
    }

    fn url(&self, key: &str, p: &mut Problems) -> Option<Url> {
        let text = self.string(key, p)?;
        match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            Ok(_) => {
                p.add(
                    &self.path(key),
                    format!("{text:?} is not an http(s) URL with a host"),
                );
                None
            }
            Err(e) => {
                p.add(&self.path(key), format!("{text:?} is not a valid URL: {e}"));
                None
            }
        }
    }
}

/// Parses a duration such as `30s`, `5m`, `1h30m` or `500ms` (Prometheus style).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    // Prometheus's syntax exactly: numbers with units from largest to smallest, each unit at
    // most once, no spaces, "0" alone for zero.
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bad = || {
        format!(
            "{text:?} is not a duration; use numbers with the units y, w, d, h, m, s, ms from largest to smallest, e.g. 30s, 5m, 1h30m"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut millis: u64 = 0;
    let mut next_unit = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        if unit.is_empty() {
            return Err(format!(
                "{text:?} has a number without a unit; use numbers with the units y, w, d, h, m, s, ms from largest to smallest, e.g. 30s, 5m, 1h30m"
            ));
        }
        let Some(index) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(bad());
        };
        let (_, per) = UNITS[next_unit + index];
        next_unit += index + 1;
        millis = number
            .checked_mul(per)
            .and_then(|m| millis.checked_add(m))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    Ok(Duration::from_millis(millis))
}

fn parse_root(root: &Value, env: &dyn Environment, p: &mut Problems) -> Option<Config> {
    if root.is_null() {
        p.add("config", "the file is empty");
        return None;
    }
    let section = Section::new(root, "", &["elements", "poll", "customers", "discovery"], p)?;
    // A bare `discovery:` (every key commented out) turns discovery on with its defaults.
    let no_settings = Value::Mapping(Default::default());
    let discovery = match section.map.get("discovery") {
        Some(Value::Null) => parse_discovery(&no_settings, p).map(Some),
        Some(v) => parse_discovery(v, p).map(Some),
        None => Some(None),
    };
    let discovering = section.map.contains_key("discovery");
    let elements = match section.get("elements") {
        Some(v) => parse_elements(v, env, discovering, p),
        None => {
            p.add(
                "elements",
                "missing; the API connection settings are required",
            );
            None
        }
    };
    let poll = parse_poll(section.get("poll"), p);
    let customers = match section.get("customers") {
        Some(v) => parse_customers(v, discovering, p),
        None if discovering => Some(Vec::new()),
        None => {
            p.add(
                "customers",
                "missing; list at least one customer to poll, or turn on discovery",
            );
            None
        }
    };
    let mut config = Config {
        elements: elements?,
        poll: poll?,
        customers: customers?,
        discovery: discovery?,
        warnings: Vec::new(),
    };
    let explicit = |key: &str| {
        section
            .map
            .get("elements")
            .and_then(Value::as_mapping)
            .is_some_and(|m| m.contains_key(key))
    };
    config.warnings = warnings_of(&config, explicit("environment") && explicit("token_url"));
    Some(config)
}

/// What is valid but probably not meant, said by `--check-config` and logged at start and
/// reload.
fn warnings_of(config: &Config, both_token_sources: bool) -> Vec<String> {
    let mut w = Vec::new();
    let e = &config.elements;
    if config.poll.interval < Duration::from_secs(60) {
        w.push(format!(
            "poll.interval: {} is below 1m; be kind to the Elements API (seat counts change slowly)",
            humantime::format_duration(config.poll.interval)
        ));
    }
    if let Some(d) = &config.discovery {
        if d.interval < Duration::from_secs(600) {
            w.push(format!(
                "discovery.interval: {} fetches the whole customer list that often; the list changes rarely (default 1h)",
                humantime::format_duration(d.interval)
            ));
        }
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

/// `8-4-4-4-12` hex digits.
fn is_guid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn parse_elements(
    value: &Value,
    env: &dyn Environment,
    discovering: bool,
    p: &mut Problems,
) -> Option<ElementsConfig> {
    let s = Section::new(
        value,
        "elements",
        &[
            "base_url",
            "environment",
            "token_url",
            "client_id",
            "client_secret",
            "client_secret_file",
            "client_certificate_file",
            "client_private_key_file",
            "scope",
            "timeout",
            "page_size",
            "max_concurrency",
            "max_requests_per_second",
            "retries",
        ],
        p,
    )?;
    let base_url = match s.get("base_url") {
        Some(_) => s.url("base_url", p),
        None => Url::parse(DEFAULT_BASE_URL).ok(),
    };
    let environment = match s.get("environment") {
        None => Some(ElementsEnvironment::Commercial),
        Some(v) => {
            let found = ElementsEnvironment::ALL
                .into_iter()
                .find(|e| v.as_str() == Some(e.name()));
            if found.is_none() {
                p.add(
                    "elements.environment",
                    format!(
                        "unknown environment {}; expected one of commercial, gov, aos2, fedramp",
                        show(v)
                    ),
                );
            }
            found
        }
    };
    // An explicit token_url wins over the environment's.
    let token_url = match (s.get("token_url"), environment) {
        (Some(_), _) => s.url("token_url", p),
        (None, Some(env)) => Url::parse(env.token_url()).ok(),
        (None, None) => None,
    };
    let client_id = s.string("client_id", p);
    if client_id.is_none() && s.get("client_id").is_none() {
        p.add(
            "elements.client_id",
            "missing; the app registration's client id",
        );
    }
    let credential = parse_credential(&s, env, p);
    let scope = s.string("scope", p).unwrap_or_else(|| {
        if discovering {
            DEFAULT_DISCOVERY_SCOPE
        } else {
            DEFAULT_SCOPE
        }
        .to_owned()
    });
    let timeout = s.duration("timeout", p).unwrap_or(Duration::from_secs(30));
    if timeout.is_zero() {
        p.add("elements.timeout", "must be greater than 0s");
    }
    let page_size = s.integer("page_size", 1, 100, p).unwrap_or(100) as u8;
    let max_concurrency = s.integer("max_concurrency", 1, 1024, p).unwrap_or(4) as usize;
    let max_rps = s
        .integer("max_requests_per_second", 0, 100_000, p)
        .unwrap_or(10) as u32;
    let retries = s.integer("retries", 0, 20, p).unwrap_or(3) as u32;
    Some(ElementsConfig {
        base_url: base_url?,
        environment: environment?,
        token_url: token_url?,
        client_id: client_id?,
        credential: credential?,
        scope,
        timeout,
        page_size,
        max_concurrency: NonZeroUsize::new(max_concurrency)?,
        max_requests_per_second: NonZeroU32::new(max_rps),
        retries,
    })
}

/// Exactly one of a secret (from any source) or a certificate with its key.
fn parse_credential(
    s: &Section<'_>,
    env: &dyn Environment,
    p: &mut Problems,
) -> Option<Credential> {
    let cert = s.string("client_certificate_file", p);
    let key = s.string("client_private_key_file", p);
    let wants_certificate =
        s.get("client_certificate_file").is_some() || s.get("client_private_key_file").is_some();
    if !wants_certificate {
        return parse_secret(s, env, p)
            .map(|(secret, source)| Credential::Secret { secret, source });
    }
    let secret_keys: Vec<&str> = ["client_secret", "client_secret_file"]
        .into_iter()
        .filter(|k| s.get(k).is_some())
        .chain(env.var(SECRET_ENV).map(|_| SECRET_ENV))
        .collect();
    if !secret_keys.is_empty() {
        p.add(
            "elements",
            format!(
                "both a client secret ({}) and a certificate (client_certificate_file, client_private_key_file) are configured; keep exactly one",
                secret_keys.join(", ")
            ),
        );
        return None;
    }
    let read = |key: &str, path: &str, p: &mut Problems| match env.read_file(Path::new(path)) {
        Ok(text) => Some(text),
        Err(e) => {
            p.add(
                &format!("elements.{key}"),
                format!("cannot read {path:?}: {e}"),
            );
            None
        }
    };
    let (cert_file, key_file) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) if s.get("client_private_key_file").is_none() => {
            p.add(
                "elements.client_private_key_file",
                "missing; client_certificate_file needs the certificate's private key (PEM)",
            );
            return None;
        }
        (None, Some(_)) if s.get("client_certificate_file").is_none() => {
            p.add(
                "elements.client_certificate_file",
                "missing; client_private_key_file needs the certificate registered in AvePoint Online Services (PEM)",
            );
            return None;
        }
        _ => return None,
    };
    let cert_pem = read("client_certificate_file", &cert_file, p);
    let key_pem = read("client_private_key_file", &key_file, p);
    let (cert_pem, key_pem) = (cert_pem?, key_pem?);
    match ClientCertificate::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()) {
        Ok(certificate) => Some(Credential::Certificate {
            certificate: Arc::new(certificate),
            certificate_file: cert_file,
            key_file,
        }),
        Err(e) => {
            use crate::assertion::CertificateError as E;
            let (key, message) = match e {
                E::Certificate(_) | E::NotRsa => {
                    ("client_certificate_file", format!("{cert_file:?}: {e}"))
                }
                E::Mismatch => (
                    "client_private_key_file",
                    format!("{key_file:?}: {e} in {cert_file:?}"),
                ),
                E::Key | E::Sign(_) => ("client_private_key_file", format!("{key_file:?}: {e}")),
            };
            p.add(&format!("elements.{key}"), message);
            None
        }
    }
}

fn parse_secret(
    s: &Section<'_>,
    env: &dyn Environment,
    p: &mut Problems,
) -> Option<(Secret, SecretSource)> {
    let inline = s.string("client_secret", p);
    let file = s.string("client_secret_file", p);
    if let Some(value) = env.var(SECRET_ENV) {
        return Some((Secret::new(value), SecretSource::Environment));
    }
    match (inline, file) {
        (Some(secret), None) => Some((Secret::new(secret), SecretSource::Inline)),
        (None, Some(path)) => match env.read_file(Path::new(&path)) {
            Ok(text) if !text.trim().is_empty() => {
                Some((Secret::new(text.trim()), SecretSource::File))
            }
            Ok(_) => {
                p.add("elements.client_secret_file", format!("{path:?} is empty"));
                None
            }
            Err(e) => {
                p.add(
                    "elements.client_secret_file",
                    format!("cannot read {path:?}: {e}"),
                );
                None
            }
        },
        (Some(_), Some(_)) => {
            p.add(
                "elements",
                "both client_secret and client_secret_file are set; keep exactly one",
            );
            None
        }
        (None, None) => {
            if s.get("client_secret").is_none() && s.get("client_secret_file").is_none() {
                p.add(
                    "elements",
                    format!(
                        "no credentials; set client_secret_file, client_secret or the {SECRET_ENV} environment variable, or client_certificate_file and client_private_key_file"
                    ),
                );
            }
            None
        }
    }
}

fn parse_poll(value: Option<&Value>, p: &mut Problems) -> Option<PollConfig> {
    let default_interval = Duration::from_secs(300);
    let Some(value) = value else {
        return Some(PollConfig {
            interval: default_interval,
            stale_after: default_interval * 3,
        });
    };
    let s = Section::new(value, "poll", &["interval", "stale_after"], p)?;
    let interval = s.duration("interval", p);
    let interval = match interval {
        Some(i) if i < Duration::from_secs(1) => {
            p.add(
                "poll.interval",
                format!(
                    "{} is too short; the minimum is 1s",
                    humantime::format_duration(i)
                ),
            );
            None
        }
        Some(i) => Some(i),
        None if s.get("interval").is_some() => None,
        None => Some(default_interval),
    }?;
    let stale_after = match s.duration("stale_after", p) {
        Some(st) if st < interval => {
            p.add(
                "poll.stale_after",
                format!(
                    "{} is shorter than poll.interval ({}); it must be at least the interval",
                    humantime::format_duration(st),
                    humantime::format_duration(interval)
                ),
            );
            None
        }
        Some(st) => Some(st),
        None if s.get("stale_after").is_some() => None,
        None => Some(interval * 3),
    }?;
    Some(PollConfig {
        interval,
        stale_after,
    })
}

fn parse_customers(value: &Value, discovering: bool, p: &mut Problems) -> Option<Vec<Customer>> {
    let Value::Sequence(items) = value else {
        p.add(
            "customers",
            format!("expected a list of customers, got {}", kind(value)),
        );
        return None;
    };
    if items.is_empty() && !discovering {
        p.add(
            "customers",
            "the list is empty; add at least one customer, or turn on discovery",
        );
        return None;
    }
    // Ids are GUIDs, which compare without regard to case.
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut customers = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("customers[{i}]");
        match parse_customer(item, &path, p) {
            Some(c) => {
                if let Some(first) = seen.get(&c.id.to_lowercase()) {
                    let why = if *first == c.id {
                        format!("duplicate customer id {:?}", c.id)
                    } else {
                        format!(
                            "duplicate customer id {:?} (the same as {first:?}: ids are compared ignoring case)",
                            c.id
                        )
                    };
                    p.add(&format!("{path}.id"), why);
                    ok = false;
                } else {
                    seen.insert(c.id.to_lowercase(), c.id.clone());
                }
                customers.push(c);
            }
            None => ok = false,
        }
    }
    ok.then_some(customers)
}

fn parse_customer(value: &Value, path: &str, p: &mut Problems) -> Option<Customer> {
    let s = Section::new(
        value,
        path,
        &["id", "name", "tenant_types", "license_assigned_status"],
        p,
    )?;
    if s.get("id").is_none() {
        p.add(&s.path("id"), "missing; the Elements customer id");
    }
    // The id goes into the URL path: refuse what would change the path's meaning.
    let id = s.string("id", p).filter(|id| {
        let ok = !id.contains(['/', '?', '#']) && !id.chars().any(char::is_whitespace);
        if !ok {
            p.add(
                &s.path("id"),
                format!("{id:?} may not contain '/', '?', '#' or spaces"),
            );
        }
        ok
    });
    let name = s.string("name", p).unwrap_or_default();
    let tenant_types = match s.get("tenant_types") {
        None => Some(TenantType::ALL.to_vec()),
        Some(v) => parse_tenant_types(v, &s.path("tenant_types"), p),
    };
    let status = parse_license_status(&s, p);
    Some(Customer {
        id: id?,
        name,
        tenant_types: tenant_types?,
        license_assigned_status: status?,
    })
}

/// `license_assigned_status` of a section: `Some(None)` when absent, `None` when invalid.
fn parse_license_status(
    s: &Section<'_>,
    p: &mut Problems,
) -> Option<Option<LicenseAssignedStatus>> {
    let v = match s.get("license_assigned_status") {
        None => return Some(None),
        Some(v) => v,
    };
    let text = match v {
        Value::String(t) => t.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match text.as_str() {
        "available" | "0" => Some(Some(LicenseAssignedStatus::Available)),
        "assigned" | "1" => Some(Some(LicenseAssignedStatus::Assigned)),
        _ => {
            p.add(
                &s.path("license_assigned_status"),
                format!(
                    "unknown value {}; expected available (0) or assigned (1)",
                    show(v)
                ),
            );
            None
        }
    }
}

/// A list of strings at `key`, each checked by `item` (which reports its own problems).
fn string_list<T>(
    s: &Section<'_>,
    key: &str,
    p: &mut Problems,
    mut item: impl FnMut(&str, String, &mut Problems) -> Option<T>,
) -> Option<Vec<T>> {
    let Some(value) = s.get(key) else {
        return Some(Vec::new());
    };
    let Value::Sequence(items) = value else {
        p.add(
            &s.path(key),
            format!("expected a list of strings, got {}", kind(value)),
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, v) in items.iter().enumerate() {
        let path = format!("{}[{i}]", s.path(key));
        let text = match v {
            Value::String(t) => t.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                p.add(&path, format!("expected a string, got {}", kind(other)));
                ok = false;
                continue;
            }
        };
        match item(&path, text, p) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn parse_discovery(value: &Value, p: &mut Problems) -> Option<DiscoveryConfig> {
    let s = Section::new(
        value,
        "discovery",
        &[
            "interval",
            "include",
            "exclude",
            "exclude_ids",
            "tenant_types",
            "license_assigned_status",
        ],
        p,
    )?;
    let interval = match s.duration("interval", p) {
        Some(i) if i < Duration::from_secs(1) => {
            p.add("discovery.interval", "the minimum is 1s");
            None
        }
        Some(i) => Some(i),
        None if s.get("interval").is_some() => None,
        None => Some(Duration::from_secs(3600)),
    };
    let regex = |path: &str, text: String, p: &mut Problems| match Regex::new(&text) {
        Ok(r) => Some(r),
        Err(e) => {
            p.add(
                path,
                format!(
                    "{text:?} is not a valid regular expression: {}",
                    one_line(&e.to_string())
                ),
            );
            None
        }
    };
    let include = string_list(&s, "include", p, regex);
    let exclude = string_list(&s, "exclude", p, regex);
    let exclude_ids = string_list(&s, "exclude_ids", p, |_, id, _| Some(id));
    let tenant_types = match s.get("tenant_types") {
        None => Some(TenantType::ALL.to_vec()),
        Some(v) => parse_tenant_types(v, &s.path("tenant_types"), p),
    };
    let license_assigned_status = parse_license_status(&s, p);
    Some(DiscoveryConfig {
        interval: interval?,
        include: include?,
        exclude: exclude?,
        exclude_ids: exclude_ids?.into_iter().collect(),
        tenant_types: tenant_types?,
        license_assigned_status: license_assigned_status?,
    })
}

fn parse_tenant_types(value: &Value, path: &str, p: &mut Problems) -> Option<Vec<TenantType>> {
    let Value::Sequence(items) = value else {
        p.add(
            path,
            format!("expected a list of tenant types, got {}", kind(value)),
        );
        return None;
    };
    if items.is_empty() {
        p.add(
            path,
            "the list is empty; omit the key to poll all four types",
        );
        return None;
    }
    let mut types = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let text = match item {
            Value::String(t) => Some(t.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match text.as_deref().and_then(TenantType::parse) {
            Some(t) if types.contains(&t) => {
                p.add(
                    &format!("{path}[{i}]"),
                    format!("duplicate tenant type {t}"),
                );
                ok = false;
            }
            Some(t) => types.push(t),
            None => {
                p.add(
                    &format!("{path}[{i}]"),
                    format!(
                        "unknown tenant type {}; expected one of microsoft_365, salesforce, google, dynamics_365 (or 0..3)",
                        show(item)
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(types)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fake environment: variables and files from maps.
    #[derive(Default)]
    struct FakeEnv {
        vars: HashMap<String, String>,
        files: HashMap<PathBuf, String>,
    }

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn read_file(&self, path: &Path) -> std::io::Result<String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    #[test]
    fn deep_nesting_fails_fast_and_real_nesting_passes() {
        let env = FakeEnv::default();
        let started = std::time::Instant::now();
        for hostile in [
            format!("customers: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
            format!("customers: {}", "{a: ".repeat(100_000)),
            format!("customers:\n{}x", "- ".repeat(100_000)),
        ] {
            let problems = Config::parse(&hostile, &env).unwrap_err().problems();
            assert_eq!(problems.len(), 1);
            assert!(
                problems[0].contains("nested deeper than 64 levels"),
                "{problems:?}"
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Brackets in quotes and comments do not count; real configs pass.
        let quoted = format!("{GOOD}    tenant_types: [0] # {}\n", "[".repeat(100));
        assert!(Config::parse(&quoted, &env).is_ok());
        assert!(Config::parse(&format!("{GOOD}# \"{}\"\n", "{".repeat(100)), &env).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read_regular_file(&fifo, 100).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let e = read_regular_file(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "x".repeat(101)).unwrap();
        let e = read_regular_file(&big, 100).unwrap_err();
        assert!(e.to_string().contains("larger than 100 bytes"), "{e}");
        std::fs::write(&big, "x".repeat(100)).unwrap();
        assert_eq!(read_regular_file(&big, 100).unwrap().len(), 100);
        let e = Config::load(dir.path(), &FakeEnv::default()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    const GOOD: &str = r#"
elements:
  token_url: https://identity.example.com/connect/token
  client_id: abc
  client_secret: s3cr3t-value
customers:
  - id: c1
    name: Contoso
"#;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text, &FakeEnv::default()) {
            Ok(_) => vec![],
            Err(e) => e.problems(),
        }
    }

    fn secret_of(c: &Config) -> (&str, SecretSource) {
        match &c.elements.credential {
            Credential::Secret { secret, source } => (secret.expose(), *source),
            Credential::Certificate { .. } => panic!("expected a secret"),
        }
    }

    #[test]
    fn environments_pick_the_token_url_unless_one_is_given() {
        let base = "elements:\n  client_id: a\n  client_secret: b\n";
        let cust = "customers:\n  - id: c\n";
        let env = FakeEnv::default();
        let c = Config::parse(&format!("{base}{cust}"), &env).unwrap();
        assert_eq!(c.elements.environment, ElementsEnvironment::Commercial);
        assert_eq!(
            c.elements.token_url.as_str(),
            "https://identity.avepointonlineservices.com/connect/token"
        );
        for (name, url) in [
            (
                "gov",
                "https://identity-gov.avepointonlineservices.com/connect/token",
            ),
            (
                "aos2",
                "https://identity-aos2.avepointonlineservices.com/connect/token",
            ),
            ("fedramp", "https://identity.online15.net/connect/token"),
        ] {
            let c = Config::parse(&format!("{base}  environment: {name}\n{cust}"), &env).unwrap();
            assert_eq!(c.elements.token_url.as_str(), url);
            assert_eq!(c.elements.environment.name(), name);
        }
        let c = Config::parse(
            &format!("{base}  environment: gov\n  token_url: https://proxy.example.com/t\n{cust}"),
            &env,
        )
        .unwrap();
        assert_eq!(c.elements.token_url.as_str(), "https://proxy.example.com/t");
        assert_eq!(
            problems(&format!("{base}  environment: moon\n{cust}")),
            vec!["elements.environment: unknown environment \"moon\"; expected one of commercial, gov, aos2, fedramp"]
        );
    }

    #[test]
    fn discovery_makes_customers_optional_and_widens_the_scope() {
        let text = "elements:\n  client_id: a\n  client_secret: b\ndiscovery:\n  include: ['^Contoso']\n  exclude: ['^Test', 'Demo$']\n  exclude_ids: [x1]\n  tenant_types: [microsoft_365, 2]\n  license_assigned_status: assigned\n";
        let c = Config::parse(text, &FakeEnv::default()).unwrap();
        assert!(c.customers.is_empty());
        assert_eq!(c.elements.scope, DEFAULT_DISCOVERY_SCOPE);
        let d = c.discovery.as_ref().unwrap();
        assert_eq!(d.interval, Duration::from_secs(3600));
        assert_eq!(
            d.tenant_types,
            vec![TenantType::Microsoft365, TenantType::Google]
        );
        assert_eq!(
            d.license_assigned_status,
            Some(LicenseAssignedStatus::Assigned)
        );
        assert!(d.keeps("c1", "Contoso Ltd"));
        assert!(!d.keeps("c1", "Fabrikam"), "not included");
        assert!(!d.keeps("c1", "Contoso Demo"), "excluded by name");
        assert!(!d.keeps("x1", "Contoso Ltd"), "excluded by id");
        let summary = c.summary();
        assert!(summary.contains("discovery: every 1h, POST https://graph.avepointonlineservices.com/partner/external/v3/general/customers/batch"), "{summary}");
        assert!(summary.contains("keeps organizations matching any of [\"^Contoso\"], except those matching any of [\"^Test\", \"Demo$\"], and drops ids x1"), "{summary}");
        // An empty filter list keeps every organization.
        let all = Config::parse(
            "elements:\n  client_id: a\n  client_secret: b\ndiscovery: {}\n",
            &FakeEnv::default(),
        )
        .unwrap();
        assert!(all.discovery.unwrap().keeps("any", "Anything"));
        // So does a bare `discovery:` whose keys are all commented out.
        let bare = Config::parse(
            "elements:\n  client_id: a\n  client_secret: b\ndiscovery:\n#  interval: 1h\n",
            &FakeEnv::default(),
        )
        .unwrap();
        assert_eq!(bare.elements.scope, DEFAULT_DISCOVERY_SCOPE);
        let d = bare.discovery.unwrap();
        assert_eq!(d.interval, Duration::from_secs(3600));
        assert_eq!(d.tenant_types.len(), 4);
        // Every problem is named.
        let p = problems("elements:\n  client_id: a\n  client_secret: b\ndiscovery:\n  interval: soon\n  include: ['(']\n  exclude: 5\n  tenant_types: [office]\n  colour: blue\n");
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p
            .iter()
            .any(|l| l.starts_with("discovery.colour: unknown key")));
        assert!(p
            .iter()
            .any(|l| l.starts_with("discovery.interval: \"soon\" is not a duration")));
        assert!(p.iter().any(
            |l| l.starts_with("discovery.include[0]: \"(\" is not a valid regular expression")
        ));
        assert!(p
            .iter()
            .any(|l| l.starts_with("discovery.exclude: expected a list of strings")));
        assert!(p
            .iter()
            .any(|l| l.starts_with("discovery.tenant_types[0]: unknown tenant type")));
        // Without discovery, customers stay required.
        assert_eq!(
            problems("elements:\n  client_id: a\n  client_secret: b\n"),
            vec!["customers: missing; list at least one customer to poll, or turn on discovery"]
        );
    }

    #[test]
    fn a_reload_keeps_the_client_unless_an_api_setting_changed() {
        let base = "elements:\n  client_id: a\n  client_secret: b\n";
        let parse = |text: &str| Config::parse(text, &FakeEnv::default()).unwrap();
        let old = parse(&format!("{base}customers:\n  - id: c1\n"));
        let same = [
            format!("{base}customers:\n  - id: c2\n    name: Other\n"),
            format!("{base}poll:\n  stale_after: 1h\ncustomers:\n  - id: c1\n"),
        ];
        for text in &same {
            assert!(old.same_client_as(&parse(text)), "{text}");
        }
        let changed = [
            "elements:\n  client_id: a\n  client_secret: c\ncustomers:\n  - id: c1\n",
            "elements:\n  client_id: z\n  client_secret: b\ncustomers:\n  - id: c1\n",
            "elements:\n  client_id: a\n  client_secret: b\n  retries: 1\ncustomers:\n  - id: c1\n",
            "elements:\n  client_id: a\n  client_secret: b\n  max_requests_per_second: 3\ncustomers:\n  - id: c1\n",
            "elements:\n  client_id: a\n  client_secret: b\n  environment: gov\ncustomers:\n  - id: c1\n",
            "elements:\n  client_id: a\n  client_secret: b\npoll:\n  interval: 1m\ncustomers:\n  - id: c1\n",
            // Discovery widens the default scope.
            "elements:\n  client_id: a\n  client_secret: b\ndiscovery: {}\n",
        ];
        for text in changed {
            assert!(!old.same_client_as(&parse(text)), "{text}");
        }
    }

    #[test]
    fn certificate_or_secret_exactly_one() {
        let cust = "customers:\n  - id: c\n";
        let cert = "  client_certificate_file: /c.pem\n  client_private_key_file: /k.pem\n";
        let mut env = FakeEnv::default();
        env.files.insert("/c.pem".into(), "junk".into());
        env.files.insert("/k.pem".into(), "junk".into());
        let parse = |text: &str, env: &FakeEnv| match Config::parse(text, env) {
            Ok(_) => vec![],
            Err(e) => e.problems(),
        };
        let base = "elements:\n  client_id: a\n";
        assert_eq!(
            parse(&format!("{base}  client_secret: s\n{cert}{cust}"), &env),
            vec!["elements: both a client secret (client_secret) and a certificate (client_certificate_file, client_private_key_file) are configured; keep exactly one"]
        );
        env.vars.insert(SECRET_ENV.into(), "from-env".into());
        assert!(parse(&format!("{base}{cert}{cust}"), &env)[0]
            .contains("both a client secret (ELEMENTS_CLIENT_SECRET) and a certificate"));
        env.vars.clear();
        assert_eq!(
            parse(&format!("{base}  client_certificate_file: /c.pem\n{cust}"), &env),
            vec!["elements.client_private_key_file: missing; client_certificate_file needs the certificate's private key (PEM)"]
        );
        let p = parse(&format!("{base}{cert}{cust}"), &env);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("elements.client_certificate_file: \"/c.pem\": not a PEM certificate"),
            "{p:?}"
        );
        assert_eq!(
            parse(&format!("{base}{cust}"), &env),
            vec!["elements: no credentials; set client_secret_file, client_secret or the ELEMENTS_CLIENT_SECRET environment variable, or client_certificate_file and client_private_key_file"]
        );
    }

    fn with(extra_elements: &str, rest: &str) -> String {
        format!(
            "elements:\n  token_url: https://id.example.com/t\n  client_id: abc\n  client_secret: x\n{extra_elements}{rest}"
        )
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, &FakeEnv::default()).unwrap();
        assert_eq!(
            c.elements.base_url.as_str(),
            "https://graph.avepointonlineservices.com/"
        );
        assert_eq!(c.elements.scope, DEFAULT_SCOPE);
        assert_eq!(c.elements.page_size, 100);
        assert_eq!(c.elements.max_concurrency.get(), 4);
        assert_eq!(
            c.elements.max_requests_per_second.map(|n| n.get()),
            Some(10)
        );
        assert_eq!(c.elements.retries, 3);
        assert_eq!(c.elements.timeout, Duration::from_secs(30));
        assert_eq!(c.poll.interval, Duration::from_secs(300));
        assert_eq!(c.poll.stale_after, Duration::from_secs(900));
        assert_eq!(c.customers[0].tenant_types, TenantType::ALL.to_vec());
        assert_eq!(c.customers[0].name, "Contoso");
        assert_eq!(secret_of(&c), ("s3cr3t-value", SecretSource::Inline));
        assert_eq!(c.target_count(), 4);
    }

    #[test]
    fn summary_and_debug_never_show_the_secret() {
        let c = Config::parse(GOOD, &FakeEnv::default()).unwrap();
        assert!(!c.summary().contains("s3cr3t-value"));
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
        assert!(c
            .summary()
            .contains("c1 (Contoso): microsoft_365, salesforce, google, dynamics_365"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("30").unwrap_err().contains("without a unit"));
        assert!(parse_duration("5 minutes please").is_err());
        // Prometheus's syntax exactly.
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(365 * 86_400)));
        assert_eq!(
            parse_duration("1d2h3m4s5ms"),
            Ok(Duration::from_millis(93_784_005))
        );
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "5M",
            "5min",
            "5 minutes",
            "5minutes",
            "1m1h",
            "1h1h",
            "1.5h",
            " 5m",
            "5m ",
            "5mo",
            "99999999999999999999y",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains(bad.trim()) || e.contains("too long"),
                "{bad}: {e}"
            );
        }
        assert!(parse_duration("5M")
            .unwrap_err()
            .contains("y, w, d, h, m, s, ms"));
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m5").is_err());
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let p = problems(&with(
            "  pagesize: 10\n",
            "customers:\n  - id: c1\n    colour: red\n",
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("elements.pagesize: unknown key"), "{p:?}");
        assert!(
            p[1].starts_with("customers[0].colour: unknown key"),
            "{p:?}"
        );
    }

    #[test]
    fn out_of_range_and_wrong_types() {
        let p = problems(&with(
            "  page_size: 101\n  max_concurrency: 0\n  retries: lots\n  timeout: 10\n",
            "poll:\n  interval: 500ms\ncustomers:\n  - id: c1\n",
        ));
        let joined = p.join("\n");
        assert!(
            joined.contains("elements.page_size: 101 is out of range; expected 1..100"),
            "{joined}"
        );
        assert!(
            joined.contains("elements.max_concurrency: 0 is out of range"),
            "{joined}"
        );
        assert!(
            joined.contains("elements.retries: expected an integer, got \"lots\""),
            "{joined}"
        );
        assert!(
            joined.contains("elements.timeout: expected a duration"),
            "{joined}"
        );
        assert!(
            joined.contains("poll.interval: 500ms is too short; the minimum is 1s"),
            "{joined}"
        );
        assert_eq!(p.len(), 5, "{joined}");
    }

    #[test]
    fn tenant_types_by_name_or_number() {
        let text = with(
            "",
            "customers:\n  - id: c1\n    tenant_types: [3, google, \"0\"]\n",
        );
        let c = Config::parse(&text, &FakeEnv::default()).unwrap();
        assert_eq!(
            c.customers[0].tenant_types,
            vec![
                TenantType::Dynamics365,
                TenantType::Google,
                TenantType::Microsoft365
            ]
        );
        let p = problems(&with(
            "",
            "customers:\n  - id: c1\n  - id: c2\n  - id: c3\n    tenant_types: [office, 4]\n",
        ));
        assert_eq!(
            p[0],
            "customers[2].tenant_types[0]: unknown tenant type \"office\"; expected one of microsoft_365, salesforce, google, dynamics_365 (or 0..3)"
        );
        assert!(p[1].starts_with("customers[2].tenant_types[1]: unknown tenant type 4"));
    }

    #[test]
    fn license_assigned_status_values() {
        for (v, want) in [
            ("available", LicenseAssignedStatus::Available),
            ("0", LicenseAssignedStatus::Available),
            ("assigned", LicenseAssignedStatus::Assigned),
            ("1", LicenseAssignedStatus::Assigned),
        ] {
            let text = with(
                "",
                &format!("customers:\n  - id: c1\n    license_assigned_status: {v}\n"),
            );
            let c = Config::parse(&text, &FakeEnv::default()).unwrap();
            assert_eq!(c.customers[0].license_assigned_status, Some(want));
        }
        let p = problems(&with(
            "",
            "customers:\n  - id: c1\n    license_assigned_status: 2\n",
        ));
        assert_eq!(
            p,
            vec!["customers[0].license_assigned_status: unknown value 2; expected available (0) or assigned (1)"]
        );
    }

    #[test]
    fn customer_ids_cannot_change_the_url_path() {
        let p = problems(&with("", "customers:\n  - id: a/../b\n  - id: \"c d\"\n"));
        assert_eq!(
            p,
            vec![
                "customers[0].id: \"a/../b\" may not contain '/', '?', '#' or spaces",
                "customers[1].id: \"c d\" may not contain '/', '?', '#' or spaces",
            ]
        );
    }

    #[test]
    fn duplicate_customer_ids() {
        let p = problems(&with(
            "",
            "customers:\n  - id: c1\n  - id: c2\n  - id: c1\n",
        ));
        assert_eq!(p, vec!["customers[2].id: duplicate customer id \"c1\""]);
    }

    #[test]
    fn secret_sources() {
        let base = "elements:\n  token_url: https://id.example.com/t\n  client_id: abc\n";
        let cust = "customers:\n  - id: c1\n";
        // None at all.
        let p = problems(&format!("{base}{cust}"));
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("elements: no credentials"), "{p:?}");
        // Both.
        let p = problems(&format!(
            "{base}  client_secret: a\n  client_secret_file: /x\n{cust}"
        ));
        assert_eq!(
            p,
            vec!["elements: both client_secret and client_secret_file are set; keep exactly one"]
        );
        // File, read through the environment abstraction and trimmed.
        let mut env = FakeEnv::default();
        env.files
            .insert(PathBuf::from("/run/s"), "from-file\n".into());
        let c =
            Config::parse(&format!("{base}  client_secret_file: /run/s\n{cust}"), &env).unwrap();
        assert_eq!(secret_of(&c), ("from-file", SecretSource::File));
        // Missing file.
        let p = problems(&format!("{base}  client_secret_file: /nope\n{cust}"));
        assert!(
            p[0].starts_with("elements.client_secret_file: cannot read \"/nope\""),
            "{p:?}"
        );
        // Environment wins over both.
        env.vars.insert(SECRET_ENV.into(), "from-env".into());
        let c =
            Config::parse(&format!("{base}  client_secret_file: /run/s\n{cust}"), &env).unwrap();
        assert_eq!(secret_of(&c).0, "from-env");
        let c = Config::parse(&format!("{base}{cust}"), &env).unwrap();
        assert_eq!(secret_of(&c).1, SecretSource::Environment);
    }

    #[test]
    fn stale_after_must_cover_the_interval() {
        let p = problems(&with(
            "",
            "poll:\n  interval: 5m\n  stale_after: 1m\ncustomers:\n  - id: c1\n",
        ));
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("poll.stale_after: 1m is shorter than poll.interval (5m)"));
        let c = Config::parse(
            &with("", "poll:\n  interval: 10s\ncustomers:\n  - id: c1\n"),
            &FakeEnv::default(),
        )
        .unwrap();
        assert_eq!(c.poll.stale_after, Duration::from_secs(30));
    }

    #[test]
    fn structural_errors_are_one_line_each() {
        assert_eq!(problems(""), vec!["config: the file is empty"]);
        assert_eq!(
            problems("- a\n- b\n"),
            vec!["config: expected a mapping, got a list"]
        );
        let p = problems("elements: [\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("not valid YAML:"));
        assert!(!p[0].contains('\n'));
        let p = problems(&with("  base_url: ftp://x\n", "customers: {}\n"));
        assert!(
            p.iter()
                .any(|l| l.starts_with("elements.base_url: \"ftp://x\" is not an http(s) URL")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l == "customers: expected a list of customers, got a mapping"),
            "{p:?}"
        );
        let p = problems("elements:\n  client_secret: x\ncustomers:\n  - name: no id\n");
        // token_url defaults to the environment's; client_id has no default.
        assert!(!p.iter().any(|l| l.contains("token_url")), "{p:?}");
        assert!(
            p.contains(&"elements.client_id: missing; the app registration's client id".to_owned()),
            "{p:?}"
        );
        assert!(
            p.contains(&"customers[0].id: missing; the Elements customer id".to_owned()),
            "{p:?}"
        );
    }
}
