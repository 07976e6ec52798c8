//! What a snapshot is made of, target by target: its labels escaped once
//! ([`TargetLabels`]), its seat series in compact form ([`SeatSeries`]) and its counters
//! ([`TargetCounters`]).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::domain::{Cause, TenantSeats, TenantType};

pub(super) const AVAILABLE: &str = "available_user_seats";
pub(super) const ASSIGNED: &str = "assigned_user_seats";

/// The constant labels of one target, escaped once and shared by all its series.
#[derive(Debug, PartialEq, Eq)]
pub struct TargetLabels {
    /// Customer id.
    pub customer_id: Arc<str>,
    /// Customer display name.
    pub customer_name: Arc<str>,
    /// Tenant type.
    pub tenant_type: TenantType,
    /// `customer_id="…",customer_name="…",tenant_type="…"`, escaped.
    pub(super) seat_prefix: String,
    /// `customer_id="…",tenant_type="…"`, escaped.
    pub(super) target_labels: String,
}

impl TargetLabels {
    /// Escapes the labels of a target once.
    pub fn new(customer_id: Arc<str>, customer_name: Arc<str>, tenant_type: TenantType) -> Self {
        let mut seat_prefix = String::new();
        let mut target_labels = String::new();
        let _ = write!(
            seat_prefix,
            "customer_id=\"{}\",customer_name=\"{}\",tenant_type=\"{}\"",
            Escaped(&customer_id),
            Escaped(&customer_name),
            tenant_type.name()
        );
        let _ = write!(
            target_labels,
            "customer_id=\"{}\",tenant_type=\"{}\"",
            Escaped(&customer_id),
            tenant_type.name()
        );
        TargetLabels {
            customer_id,
            customer_name,
            tenant_type,
            seat_prefix,
            target_labels,
        }
    }
}

/// The seat series of one target, compactly: each tenant's `tenant_id="…",tenant_name="…"`
/// (escaped once) and its two numbers. The lines are written from this when a snapshot is
/// compressed or scraped; the target's own labels come from its [`TargetLabels`], so a
/// renamed customer needs nothing rewritten. At MSP scale this is a fifth of the text it
/// stands for, and the only copy of the seat data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeatSeries {
    /// The tenants' label parts, one after another.
    labels: Box<str>,
    /// Where each tenant's part ends in `labels`.
    ends: Box<[u32]>,
    /// (available, assigned) per tenant.
    seats: Box<[(u64, u64)]>,
}

impl SeatSeries {
    /// No series.
    pub fn empty() -> SeatSeries {
        SeatSeries::default()
    }

    /// The series of `tenants`.
    pub fn new(tenants: &[TenantSeats]) -> SeatSeries {
        let mut labels =
            String::with_capacity(tenants.iter().map(|t| t.id.len() + t.name.len() + 28).sum());
        let mut ends = Vec::with_capacity(tenants.len());
        for t in tenants {
            let _ = write!(
                labels,
                "tenant_id=\"{}\",tenant_name=\"{}\"",
                Escaped(&t.id),
                Escaped(&t.name)
            );
            ends.push(u32::try_from(labels.len()).unwrap_or(u32::MAX));
        }
        SeatSeries {
            labels: labels.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            seats: tenants.iter().map(|t| (t.available, t.assigned)).collect(),
        }
    }

    /// Tenants (each has two series).
    pub fn tenants(&self) -> usize {
        self.seats.len()
    }

    /// The tenants back as the API reported them, one at a time (the persistence file is
    /// written from this without a second copy of the series).
    pub fn iter(&self) -> impl Iterator<Item = TenantSeats> + '_ {
        (0..self.seats.len()).filter_map(move |i| self.tenant(i))
    }

    /// (available, assigned) of each tenant, in the order of [`SeatSeries::tenant`]: for
    /// looking at the numbers of every tenant without unescaping their names.
    pub fn seats(&self) -> &[(u64, u64)] {
        &self.seats
    }

    /// Tenant `i` as the API reported it (`None` past the end).
    pub fn tenant(&self, i: usize) -> Option<TenantSeats> {
        let start = if i == 0 {
            0
        } else {
            *self.ends.get(i - 1)? as usize
        };
        let part = self.labels.get(start..*self.ends.get(i)? as usize)?;
        let labels = unescape_tenant_labels(part);
        // `new` wrote these labels: they always read back.
        debug_assert!(labels.is_some(), "{part}");
        let (id, name) = labels?;
        let (available, assigned) = self.seats[i];
        Some(TenantSeats {
            id,
            name,
            available,
            assigned,
        })
    }

    /// Appends a line of tenant `i` after the target's labels `prefix`: its
    /// `available_user_seats` line, or with `available` false its `assigned_user_seats` line.
    pub(super) fn write_line(&self, prefix: &str, available: bool, i: usize, out: &mut Vec<u8>) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        let (name, value) = if available {
            (AVAILABLE, self.seats[i].0)
        } else {
            (ASSIGNED, self.seats[i].1)
        };
        out.extend_from_slice(name.as_bytes());
        out.push(b'{');
        out.extend_from_slice(prefix.as_bytes());
        out.push(b',');
        out.extend_from_slice(&self.labels.as_bytes()[start..end]);
        out.extend_from_slice(b"} ");
        write_u64(out, value);
        out.push(b'\n');
    }
}

/// The id and name of `tenant_id="…",tenant_name="…"` as [`SeatSeries::new`] wrote it,
/// unescaped.
fn unescape_tenant_labels(part: &str) -> Option<(String, String)> {
    let rest = part.strip_prefix("tenant_id=\"")?;
    let (id, rest) = unescape_until_quote(rest)?;
    let rest = rest.strip_prefix(",tenant_name=\"")?;
    let (name, rest) = unescape_until_quote(rest)?;
    rest.is_empty().then_some((id, name))
}

/// The escaped label value at the start of `s` up to its closing quote, unescaped, and what
/// follows the quote.
fn unescape_until_quote(s: &str) -> Option<(String, &str)> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Appends the decimal digits of `n` (the hot loop of a plain scrape: no formatter).
pub(super) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A target's counters: failed polls by cause and tenant records skipped as invalid. They
/// live with the target's state, so they keep their values across publishes and leave with
/// the target, and are rendered with the snapshot: a fleet-wide outage adds one line per
/// target to the pre-rendered text, nothing to what every scrape renders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetCounters {
    /// Failed polls by cause, sorted by cause; a cause appears from its first failure.
    pub(super) errors: Vec<(Cause, u64)>,
    /// Records skipped as invalid.
    pub(super) invalid: u64,
}

impl TargetCounters {
    /// Counts a failed poll by `cause`.
    pub fn failed(&mut self, cause: Cause) {
        match self.errors.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => {
                self.errors.push((cause, 1));
                self.errors.sort_unstable();
            }
        }
    }

    /// Counts `n` records skipped as invalid.
    pub fn invalid(&mut self, n: usize) {
        self.invalid += n as u64;
    }
}

/// Writes a label value escaped per the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub(in crate::metrics) struct Escaped<'a>(pub(in crate::metrics) &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let rep = match b {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                b'\n' => "\\n",
                _ => continue,
            };
            f.write_str(&s[start..i])?;
            f.write_str(rep)?;
            start = i + 1;
        }
        f.write_str(&s[start..])
    }
}
