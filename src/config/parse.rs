//! Each section of the file, from YAML values into the validated types.

use std::collections::{HashMap, HashSet};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_yaml::Value;

use super::environment::{parse_credential, Environment};
use super::summary::warnings_of;
use super::yaml::{kind, one_line, show, Problems, Section};
use super::*;
use crate::domain::customer_id::canonical_customer_id;

pub(super) fn parse_root(root: &Value, env: &dyn Environment, p: &mut Problems) -> Option<Config> {
    if root.is_null() {
        p.add("config", "the file is empty");
        return None;
    }
    let section = Section::new(root, "", p)?;
    // A bare `discovery:` (every key commented out) turns discovery on with its defaults.
    let no_settings = Value::Mapping(Default::default());
    let discovery = match section.raw("discovery") {
        Some(Value::Null) => parse_discovery(&no_settings, p).map(Some),
        Some(v) => parse_discovery(v, p).map(Some),
        None => Some(None),
    };
    let discovering = section.raw("discovery").is_some();
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
    let explicit = |key: &str| {
        section
            .get("elements")
            .and_then(Value::as_mapping)
            .is_some_and(|m| m.contains_key(key))
    };
    let both_token_sources = explicit("environment") && explicit("token_url");
    section.finish(p);
    let mut config = Config {
        elements: elements?,
        poll: poll?,
        customers: customers?,
        discovery: discovery?,
        warnings: Vec::new(),
    };
    config.warnings = warnings_of(&config, both_token_sources);
    Some(config)
}

fn parse_elements(
    value: &Value,
    env: &dyn Environment,
    discovering: bool,
    p: &mut Problems,
) -> Option<ElementsConfig> {
    let s = Section::new(value, "elements", p)?;
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
    s.finish(p);
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
        stable_origin: None,
    })
}

fn parse_poll(value: Option<&Value>, p: &mut Problems) -> Option<PollConfig> {
    let default_interval = Duration::from_secs(300);
    let Some(value) = value else {
        return Some(PollConfig {
            interval: default_interval,
            stale_after: default_interval * 3,
            empty_interval: DEFAULT_EMPTY_INTERVAL,
        });
    };
    let s = Section::new(value, "poll", p)?;
    let interval = s.duration("interval", p);
    let interval = match interval {
        Some(i) if i < Duration::from_secs(1) => {
            p.add(
                "poll.interval",
                format!(
                    "{} is too short; the minimum is 1s",
                    crate::config::format_duration(i)
                ),
            );
            None
        }
        Some(i) => Some(i),
        None if s.get("interval").is_some() => None,
        None => Some(default_interval),
    };
    let stale_after = s.duration("stale_after", p);
    let stale_after_set = s.get("stale_after").is_some();
    let empty_interval = s.duration("empty_interval", p);
    let empty_interval_set = s.get("empty_interval").is_some();
    s.finish(p);
    let interval = interval?;
    let stale_after = match stale_after {
        Some(st) if st < interval => {
            p.add(
                "poll.stale_after",
                format!(
                    "{} is shorter than poll.interval ({}); it must be at least the interval",
                    crate::config::format_duration(st),
                    crate::config::format_duration(interval)
                ),
            );
            None
        }
        Some(st) => Some(st),
        None if stale_after_set => None,
        None => Some(interval * 3),
    };
    let empty_interval = match empty_interval {
        Some(e) if e < interval => {
            p.add(
                "poll.empty_interval",
                format!(
                    "{} is shorter than poll.interval ({}); it must be at least the interval (equal turns the empty cadence off)",
                    crate::config::format_duration(e),
                    crate::config::format_duration(interval)
                ),
            );
            None
        }
        Some(e) => Some(e),
        None if empty_interval_set => None,
        // An interval longer than the default: empty targets keep the interval.
        None => Some(DEFAULT_EMPTY_INTERVAL.max(interval)),
    };
    Some(PollConfig {
        interval,
        stale_after: stale_after?,
        empty_interval: empty_interval?,
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
    // Ids are GUIDs, which compare without regard to case: each is kept in its canonical
    // (lowercase) form, and the first spelling is remembered for the message.
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut customers = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("customers[{i}]");
        let written = || match item.get("id") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        match parse_customer(item, &path, p) {
            Some(c) => {
                if let Some(first) = seen.get(&c.id) {
                    let this = written();
                    let why = if *first == this {
                        format!("duplicate customer id {this:?}")
                    } else {
                        format!(
                            "duplicate customer id {this:?} (the same as {first:?}: ids are compared ignoring case)"
                        )
                    };
                    p.add(&format!("{path}.id"), why);
                    ok = false;
                } else {
                    seen.insert(c.id.clone(), written());
                }
                customers.push(c);
            }
            None => ok = false,
        }
    }
    ok.then_some(customers)
}

fn parse_customer(value: &Value, path: &str, p: &mut Problems) -> Option<Customer> {
    let s = Section::new(value, path, p)?;
    if s.get("id").is_none() {
        p.add(&s.path("id"), "missing; the Elements customer id");
    }
    // YAML turns `0x10` into 16 and `1e3` into 1000.0: an id is the text as written, or
    // nothing.
    let number = match s.get("id") {
        Some(Value::Number(n)) => {
            let message = number_not_text(n, p);
            p.add(&s.path("id"), message);
            true
        }
        _ => false,
    };
    // One canonical form everywhere; refused when it would change the URL path's meaning.
    let id =
        s.string("id", p)
            .filter(|_| !number)
            .and_then(|id| match canonical_customer_id(&id) {
                Ok(id) => Some(id),
                Err(why) => {
                    p.add(&s.path("id"), why);
                    None
                }
            });
    let name = s.string("name", p).unwrap_or_default();
    let tenant_types = match s.get("tenant_types") {
        None => Some(TenantType::ALL.to_vec()),
        Some(v) => parse_tenant_types(v, &s.path("tenant_types"), p),
    };
    let status = parse_license_status(&s, p);
    let tenant_ids = parse_tenant_ids(&s, p);
    s.finish(p);
    Some(Customer {
        id: id?,
        name,
        tenant_types: tenant_types?,
        license_assigned_status: status?,
        tenant_ids: tenant_ids?,
    })
}

/// Tenant ids the API may list at most in one `tenantIds` filter, as this exporter sends it.
const MAX_TENANT_IDS: usize = 1000;

/// `tenant_ids` of a section: `Some(None)` when absent, `None` when invalid. A list of
/// non-empty strings without duplicates (compared without case, as GUIDs are); an empty
/// list would ask for no tenant at all and is refused.
fn parse_tenant_ids(s: &Section<'_>, p: &mut Problems) -> Option<Option<Arc<[String]>>> {
    if s.get("tenant_ids").is_none() {
        return Some(None);
    }
    let path = s.path("tenant_ids");
    let mut seen = HashSet::new();
    let ids = string_list(s, "tenant_ids", p, |item, id, p| {
        if id.trim().is_empty() {
            p.add(item, "is empty; a tenant id");
            None
        } else if !seen.insert(id.to_lowercase()) {
            p.add(item, format!("{id:?} is listed twice"));
            None
        } else {
            Some(id)
        }
    })?;
    if ids.is_empty() {
        p.add(
            &path,
            "an empty list would ask for no tenant; remove the key to poll every tenant",
        );
        return None;
    }
    if ids.len() > MAX_TENANT_IDS {
        p.add(
            &path,
            format!(
                "{} ids; at most {MAX_TENANT_IDS} (split the customer's tenants or drop the filter)",
                ids.len()
            ),
        );
        return None;
    }
    // One order, so that a reload that only reorders the list changes nothing.
    let mut ids = ids;
    ids.sort_by_key(|id| id.to_lowercase());
    Some(Some(ids.into()))
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
/// Why a YAML number cannot stand for an id or a pattern.
/// The error for a number where an id belongs, quoting the value as it was written.
fn number_not_text(n: &serde_yaml::Number, p: &Problems) -> String {
    match p.as_written(n) {
        Some(raw) if raw != n.to_string() => {
            format!("YAML reads {raw} as the number {n}, not the text {raw}; quote it: \"{raw}\"")
        }
        Some(raw) => format!("YAML reads {raw} as a number; quote it: \"{raw}\""),
        None => format!(
            "YAML reads this as the number {n}, which may not be what was written (0x10 reads as \
             16, 1e3 as 1000.0); quote it as written"
        ),
    }
}

fn string_list<T>(
    s: &Section<'_>,
    key: &'static str,
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
            Value::Number(n) => {
                let message = number_not_text(n, p);
                p.add(&path, message);
                ok = false;
                continue;
            }
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
    let s = Section::new(value, "discovery", p)?;
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
    // Compared with canonical ids, so an id in any case excludes its customer.
    let exclude_ids = string_list(&s, "exclude_ids", p, |_, id, _| Some(id.to_lowercase()));
    let tenant_types = match s.get("tenant_types") {
        None => Some(TenantType::ALL.to_vec()),
        Some(v) => parse_tenant_types(v, &s.path("tenant_types"), p),
    };
    let license_assigned_status = parse_license_status(&s, p);
    let tenant_ids = parse_tenant_ids(&s, p);
    s.finish(p);
    Some(DiscoveryConfig {
        interval: interval?,
        include: include?,
        exclude: exclude?,
        exclude_ids: exclude_ids?.into_iter().collect(),
        tenant_types: tenant_types?,
        license_assigned_status: license_assigned_status?,
        tenant_ids: tenant_ids?,
    })
}

fn parse_tenant_types(value: &Value, path: &str, p: &mut Problems) -> Option<Vec<TenantType>> {
    let Value::Sequence(items) = value else {
        let hint = match value {
            Value::String(t) => format!("; for one type write [{t}]"),
            Value::Number(n) => format!("; for one type write [{n}]"),
            _ => String::new(),
        };
        p.add(
            path,
            format!("expected a list of tenant types, got {}{hint}", kind(value)),
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
        // Names in any case (`Google`); the API's numbers as they are.
        match text
            .as_deref()
            .and_then(|t| TenantType::parse(&t.to_lowercase()))
        {
            Some(t) if types.contains(&t) => {
                p.add(
                    &format!("{path}[{i}]"),
                    format!("duplicate tenant type {t}"),
                );
                ok = false;
            }
            Some(t) => types.push(t),
            None => {
                // `Microsoft365`, `dynamics-365`: the name without its separator or case.
                let squashed = |s: &str| {
                    s.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect::<String>()
                        .to_lowercase()
                };
                let near = text.as_deref().and_then(|t| {
                    TenantType::ALL
                        .into_iter()
                        .find(|k| squashed(k.name()) == squashed(t))
                });
                let hint = near.map_or_else(String::new, |k| format!("did you mean {k}? "));
                p.add(
                    &format!("{path}[{i}]"),
                    format!(
                        "unknown tenant type {}; {hint}expected one of microsoft_365, salesforce, google, dynamics_365 (or 0..3)",
                        show(item)
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(types)
}
