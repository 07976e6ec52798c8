//! The state file's format: JSON lines, written and read one line at a time.
//!
//! ```text
//! {"header":{"format":"avepoint-elements-exporter state","version":1,"written_at":1795853151.5}}
//! {"target":{"customer_id":"…","tenant_type":"microsoft_365","last_poll":…,"last_success":…,
//!            "failing_since":null,"error":null,"tenants":2,"pages":1,"next_due":…,
//!            "seats":[["tenant id","tenant name",available,assigned],…]}}
//! {"customer":{"id":"…","organization":"…","country_or_region":"…","management_mode":"…"}}
//! {"end":{"targets":1,"customers":1}}
//! ```
//!
//! Times are Unix seconds. `customers` in the end line is `null` when no customer list was
//! kept (discovery off, or no list fetched yet). The end line makes a cut file detectable: a
//! file without it, or whose counts differ, is refused as a whole. Lines are written and read
//! one at a time, so neither side ever holds the whole file.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize, Serializer};

use super::{Saved, SavedTarget};
use crate::domain::{canonical_customer_id, unix_seconds, TenantSeats, TenantType};
use crate::elements::client::DiscoveredCustomer;
use crate::metrics::SeatSeries;

/// What the header's `format` says.
const FORMAT: &str = "avepoint-elements-exporter state";
/// The version this exporter writes and reads.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    format: Cow<'a, str>,
    version: u32,
    written_at: f64,
}

#[derive(Serialize, Deserialize)]
struct End {
    targets: u64,
    customers: Option<u64>,
}

/// A target as written: its series are streamed from the shared [`SeatSeries`].
#[derive(Serialize)]
struct TargetOut<'a> {
    customer_id: &'a str,
    tenant_type: &'static str,
    last_poll: Option<f64>,
    last_success: Option<f64>,
    failing_since: Option<f64>,
    error: Option<&'a str>,
    tenants: Option<usize>,
    pages: Option<u32>,
    next_due: Option<f64>,
    seats: SeatsOut<'a>,
}

/// A target as read.
#[derive(Deserialize)]
struct TargetIn {
    customer_id: String,
    tenant_type: String,
    last_poll: Option<f64>,
    last_success: Option<f64>,
    failing_since: Option<f64>,
    error: Option<String>,
    tenants: Option<usize>,
    pages: Option<u32>,
    next_due: Option<f64>,
    seats: Vec<(String, String, u64, u64)>,
}

#[derive(Serialize, Deserialize)]
struct CustomerLine<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    organization: Cow<'a, str>,
    #[serde(borrow)]
    country_or_region: Cow<'a, str>,
    #[serde(borrow)]
    management_mode: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum LineOut<'a> {
    Header(Header<'a>),
    Target(TargetOut<'a>),
    Customer(CustomerLine<'a>),
    End(End),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum LineIn<'a> {
    #[serde(borrow)]
    Header(Header<'a>),
    Target(TargetIn),
    #[serde(borrow)]
    Customer(CustomerLine<'a>),
    End(End),
}

/// A target's series, written tenant by tenant as `[id, name, available, assigned]`.
struct SeatsOut<'a>(&'a SeatSeries);

impl Serialize for SeatsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|t| (t.id, t.name, t.available, t.assigned)),
        )
    }
}

fn line(out: &mut impl Write, line: &LineOut<'_>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Writes `saved` to `out`, a line at a time.
pub fn encode(out: &mut impl Write, saved: &Saved) -> std::io::Result<()> {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        written_at: unix_seconds(saved.written_at),
    };
    line(out, &LineOut::Header(header))?;
    let time = |t: Option<SystemTime>| t.map(unix_seconds);
    for t in &saved.targets {
        let target = TargetOut {
            customer_id: &t.customer_id,
            tenant_type: t.tenant_type.name(),
            last_poll: time(t.last_poll),
            last_success: time(t.last_success),
            failing_since: time(t.failing_since),
            error: t.error.as_deref(),
            tenants: t.tenants,
            pages: t.pages,
            next_due: time(t.next_due),
            seats: SeatsOut(&t.seats),
        };
        line(out, &LineOut::Target(target))?;
    }
    for c in saved.customers.iter().flat_map(|c| c.iter()) {
        let customer = CustomerLine {
            id: c.id.as_str().into(),
            organization: c.organization.as_str().into(),
            country_or_region: c.country_or_region.as_str().into(),
            management_mode: c.management_mode.as_str().into(),
        };
        line(out, &LineOut::Customer(customer))?;
    }
    let end = End {
        targets: saved.targets.len() as u64,
        customers: saved.customers.as_ref().map(|c| c.len() as u64),
    };
    line(out, &LineOut::End(end))?;
    out.flush()
}

/// Reads a state file; any problem refuses the whole file, with the line it was found on.
pub fn decode(input: &mut impl BufRead) -> Result<Saved, String> {
    let mut text = String::new();
    let mut number = 0usize;
    let mut next = |text: &mut String| -> Result<bool, String> {
        text.clear();
        number += 1;
        match input.read_line(text) {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(format!("line {number}: {e}")),
        }
    };
    if !next(&mut text)? {
        return Err("the file is empty".into());
    }
    let written_at = match serde_json::from_str::<LineIn<'_>>(&text) {
        Ok(LineIn::Header(h)) if h.format == FORMAT => {
            if h.version != VERSION {
                return Err(format!(
                    "format version {}; this exporter reads version {VERSION}",
                    h.version
                ));
            }
            time_of("header.written_at", h.written_at)?
        }
        _ => return Err("not a state file of this exporter (no header on line 1)".into()),
    };
    let mut saved = Saved {
        written_at,
        targets: Vec::new(),
        customers: None,
    };
    let mut customers: Vec<DiscoveredCustomer> = Vec::new();
    // A file this exporter wrote holds each target and customer once.
    let mut seen_targets = HashSet::new();
    let mut seen_customers = HashSet::new();
    let mut n = 1usize;
    while next(&mut text)? {
        n += 1;
        let parsed =
            serde_json::from_str::<LineIn<'_>>(&text).map_err(|e| format!("line {n}: {e}"))?;
        match parsed {
            LineIn::Target(t) => {
                let t = target_of(t).map_err(|e| format!("line {n}: {e}"))?;
                if !seen_targets.insert((t.customer_id.clone(), t.tenant_type)) {
                    return Err(format!(
                        "line {n}: target {}/{} appears twice",
                        t.customer_id, t.tenant_type
                    ));
                }
                saved.targets.push(t);
            }
            LineIn::Customer(c) => {
                let id = canonical_customer_id(&c.id)
                    .map_err(|e| format!("line {n}: customer id {e}"))?;
                if !seen_customers.insert(id.clone()) {
                    return Err(format!("line {n}: customer {id} appears twice"));
                }
                customers.push(DiscoveredCustomer {
                    id,
                    organization: c.organization.into_owned(),
                    country_or_region: c.country_or_region.into_owned(),
                    management_mode: c.management_mode.into_owned(),
                });
            }
            LineIn::Header(_) => return Err(format!("line {n}: a second header")),
            LineIn::End(end) => {
                if next(&mut text)? {
                    return Err(format!("line {}: data after the end line", n + 1));
                }
                let kept = end.customers.map(|_| customers.len() as u64);
                if end.targets != saved.targets.len() as u64 || end.customers != kept {
                    return Err(format!(
                        "the end line counts {} targets and {:?} customers, the file holds {} and {}",
                        end.targets,
                        end.customers,
                        saved.targets.len(),
                        customers.len()
                    ));
                }
                if end.customers.is_some() {
                    saved.customers = Some(Arc::new(customers));
                }
                return Ok(saved);
            }
        }
    }
    Err(format!(
        "the file is cut short: no end line after line {n} ({} targets read)",
        saved.targets.len()
    ))
}

/// A Unix time from the file.
fn time_of(field: &str, seconds: f64) -> Result<SystemTime, String> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        .ok_or_else(|| format!("{field}: {seconds} is not a time"))
}

fn target_of(t: TargetIn) -> Result<SavedTarget, String> {
    let time = |field: &str, v: Option<f64>| v.map(|s| time_of(field, s)).transpose();
    let tenant_type = TenantType::parse(&t.tenant_type)
        .ok_or_else(|| format!("unknown tenant_type {:?}", t.tenant_type))?;
    let customer_id = canonical_customer_id(&t.customer_id)
        .map_err(|e| format!("customer_id {e}"))?
        .into();
    let tenants: Vec<TenantSeats> = t
        .seats
        .into_iter()
        .map(|(id, name, available, assigned)| TenantSeats {
            id,
            name,
            available,
            assigned,
        })
        .collect();
    Ok(SavedTarget {
        customer_id,
        tenant_type,
        seats: Arc::new(SeatSeries::new(&tenants)),
        tenants: t.tenants,
        last_poll: time("last_poll", t.last_poll)?,
        last_success: time("last_success", t.last_success)?,
        failing_since: time("failing_since", t.failing_since)?,
        error: t.error,
        pages: t.pages,
        next_due: time("next_due", t.next_due)?,
    })
}
