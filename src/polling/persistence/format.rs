//! The state file's format: JSON lines, written and read one line at a time.
//!
//! ```text
//! {"header":{"format":"avepoint-elements-exporter state","version":1,"written_at":1795853151.5,
//!            "base_url":"https://graph.avepointonlineservices.com/","client":"sha256:…",
//!            "certificate":null}}
//! {"target":{"customer_id":"…","tenant_type":"microsoft_365","last_poll":…,"last_success":…,
//!            "failing_since":null,"error":null,"tenants":2,"pages":1,"next_due":…,
//!            "seats":[["tenant id","tenant name",available,assigned],…]}}
//! {"customer":{"id":"…","organization":"…","country_or_region":"…","management_mode":"…"}}
//! {"end":{"targets":1,"customers":1}}
//! ```
//!
//! Times are Unix seconds. The header's `base_url`, `client` (the SHA-256 of the client id)
//! and `certificate` (the client certificate's SHA-256 fingerprint, or null with a secret)
//! say which API and client the state was polled from ([`super::Origin`]); a file of an
//! earlier version has none and is accepted. `customers` in the end line is `null` when no
//! customer list was kept (discovery off, or no list fetched yet). The end line makes a cut file detectable: a
//! file without it, or whose counts differ, is refused as a whole. Lines are written and read
//! one at a time, so neither side ever holds the whole file.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize, Serializer};

use super::saved::{Origin, Saved, SavedTarget};
use crate::domain::customer_id::canonical_customer_id;
use crate::domain::label::cut_label_value;
use crate::domain::{unix_seconds, TenantSeats, TenantType};
use crate::elements::client::DiscoveredCustomer;
use crate::metrics::SeatSeries;

/// The header line must be whole within the file's first this many bytes (it is some
/// 300 bytes; a file that does not start with one is refused without reading further).
pub const MAX_HEADER_BYTES: usize = 1024;

/// The longest line read: one target's series (some 30 000 tenants at the longest label
/// values, or about 800 000 at typical ones). A longer line refuses the file after reading
/// this much, so no file makes start-up hold more than one such line.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// How far the file's time may be ahead of the clock at start (a clock stepped back a
/// little by NTP); the file's times are then clamped to now. Further ahead, the file is
/// refused: its times cannot be trusted (a clock that was far ahead, or an edited file).
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(60);

/// Why a file is not used.
#[derive(Debug)]
pub(super) enum Refused {
    /// Written for another API or client: what differs.
    Foreign(String),
    /// Not usable: why, and where the file now is (to move it aside), if anywhere.
    Bad { why: String, at: Option<PathBuf> },
}

impl Refused {
    /// A bad file, now at `at`.
    pub(super) fn bad(why: impl Into<String>, at: &Path) -> Refused {
        Refused::Bad {
            why: why.into(),
            at: Some(at.to_owned()),
        }
    }
}

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    /// Written whenever the origin is (null with a client secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<Option<String>>,
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
    let origin = saved.origin.as_deref();
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        written_at: unix_seconds(saved.written_at),
        base_url: origin.map(|o| o.base_url.clone()),
        client: origin.map(|o| o.client.clone()),
        certificate: origin.map(|o| o.certificate.clone()),
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

/// Reads one line of at most `max` bytes (its newline not counted) into `buf`: false at the
/// end of the input. A longer line is an error after reading `max + 1` bytes of it.
fn read_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
    number: usize,
) -> Result<bool, String> {
    buf.clear();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    match input.by_ref().take(limit).read_until(b'\n', buf) {
        Ok(0) => Ok(false),
        Ok(_) if buf.last() == Some(&b'\n') => Ok(true),
        Ok(n) if n as u64 >= limit => Err(format!(
            "line {number} is longer than {max} bytes (not a state file of this exporter, \
             or damaged)"
        )),
        // The last line without its newline.
        Ok(_) => Ok(true),
        Err(e) => Err(format!("line {number}: {e}")),
    }
}

/// Reads a state file for a poller of `origin` at `now`. Any problem refuses the whole file,
/// with the line it was found on; so does a file of another origin (after its header, the
/// rest unread) or one written more than [`MAX_CLOCK_AHEAD`] after `now`. Times of targets
/// later than the file's are clamped to it, and the file's to `now`: nothing read is in the
/// future.
pub(super) fn decode(
    input: &mut impl BufRead,
    origin: &Origin,
    now: SystemTime,
) -> Result<Saved, Refused> {
    let bad = |why: String| Refused::Bad { why, at: None };
    let mut buf = Vec::new();
    if !read_line(input, &mut buf, MAX_HEADER_BYTES, 1).map_err(|_| {
        bad(format!(
            "not a state file of this exporter (no header line within the first \
             {MAX_HEADER_BYTES} bytes)"
        ))
    })? {
        return Err(bad("the file is empty".into()));
    }
    let (written_at, written_for) = match serde_json::from_slice::<LineIn<'_>>(&buf) {
        Ok(LineIn::Header(h)) if h.format == FORMAT => {
            if h.version != VERSION {
                return Err(bad(format!(
                    "format version {}; this exporter reads version {VERSION}",
                    h.version
                )));
            }
            let written_for = match (h.base_url, h.client) {
                (Some(base_url), Some(client)) => Some(Origin {
                    base_url,
                    client,
                    certificate: h.certificate.flatten(),
                }),
                _ => None,
            };
            (
                time_of("header.written_at", h.written_at).map_err(bad)?,
                written_for,
            )
        }
        _ => {
            return Err(bad(
                "not a state file of this exporter (no header on line 1)".into(),
            ))
        }
    };
    if let Some(differs) = written_for.as_ref().and_then(|w| w.differs(origin)) {
        return Err(Refused::Foreign(differs));
    }
    if let Ok(ahead) = written_at.duration_since(now) {
        if ahead > MAX_CLOCK_AHEAD {
            return Err(bad(format!(
                "written at {}, {} s after now: the clock was ahead then or the file was \
                 edited, so its times cannot be trusted",
                unix_seconds(written_at),
                ahead.as_secs()
            )));
        }
    }
    let written_at = written_at.min(now);
    let mut saved = Saved {
        written_at,
        origin: written_for.map(Arc::new),
        targets: Vec::new(),
        customers: None,
    };
    let mut customers: Vec<DiscoveredCustomer> = Vec::new();
    // A file this exporter wrote holds each target and customer once.
    let mut seen_targets = HashSet::new();
    let mut seen_customers = HashSet::new();
    let mut n = 1usize;
    while read_line(input, &mut buf, MAX_LINE_BYTES, n + 1).map_err(bad)? {
        n += 1;
        let parsed = serde_json::from_slice::<LineIn<'_>>(&buf)
            .map_err(|e| bad(format!("line {n}: {e}")))?;
        match parsed {
            LineIn::Target(t) => {
                let t = target_of(t, written_at).map_err(|e| bad(format!("line {n}: {e}")))?;
                if !seen_targets.insert((t.customer_id.clone(), t.tenant_type)) {
                    return Err(bad(format!(
                        "line {n}: target {}/{} appears twice",
                        t.customer_id, t.tenant_type
                    )));
                }
                saved.targets.push(t);
            }
            LineIn::Customer(c) => {
                let id = canonical_customer_id(&c.id)
                    .map_err(|e| bad(format!("line {n}: customer id {e}")))?;
                if !seen_customers.insert(id.clone()) {
                    return Err(bad(format!("line {n}: customer {id} appears twice")));
                }
                customers.push(DiscoveredCustomer {
                    id,
                    organization: cut_label_value(c.organization.into_owned()),
                    country_or_region: cut_label_value(c.country_or_region.into_owned()),
                    management_mode: cut_label_value(c.management_mode.into_owned()),
                });
            }
            LineIn::Header(_) => return Err(bad(format!("line {n}: a second header"))),
            LineIn::End(end) => {
                if read_line(input, &mut buf, MAX_LINE_BYTES, n + 1).map_err(bad)? {
                    return Err(bad(format!("line {}: data after the end line", n + 1)));
                }
                let kept = end.customers.map(|_| customers.len() as u64);
                if end.targets != saved.targets.len() as u64 || end.customers != kept {
                    return Err(bad(format!(
                        "the end line counts {} targets and {:?} customers, the file holds {} and {}",
                        end.targets,
                        end.customers,
                        saved.targets.len(),
                        customers.len()
                    )));
                }
                if end.customers.is_some() {
                    saved.customers = Some(Arc::new(customers));
                }
                return Ok(saved);
            }
        }
    }
    Err(bad(format!(
        "the file is cut short: no end line after line {n} ({} targets read)",
        saved.targets.len()
    )))
}

/// A Unix time from the file.
fn time_of(field: &str, seconds: f64) -> Result<SystemTime, String> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        .ok_or_else(|| format!("{field}: {seconds} is not a time"))
}

/// A target from its line; its times (but the next due one) are clamped to `written_at`,
/// and its label values cut as the API's are.
fn target_of(t: TargetIn, written_at: SystemTime) -> Result<SavedTarget, String> {
    let time = |field: &str, v: Option<f64>| {
        v.map(|s| time_of(field, s).map(|t| t.min(written_at)))
            .transpose()
    };
    let tenant_type = TenantType::parse(&t.tenant_type)
        .ok_or_else(|| format!("unknown tenant_type {:?}", t.tenant_type))?;
    let customer_id = canonical_customer_id(&t.customer_id)
        .map_err(|e| format!("customer_id {e}"))?
        .into();
    let tenants: Vec<TenantSeats> = t
        .seats
        .into_iter()
        .map(|(id, name, available, assigned)| TenantSeats {
            id: cut_label_value(id),
            name: cut_label_value(name),
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
        next_due: t.next_due.map(|s| time_of("next_due", s)).transpose()?,
    })
}
