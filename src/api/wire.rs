//! The wire format of both list endpoints (seats and customers): the envelope, records, and
//! what is skipped or refused.

use serde_json::Value;

use crate::domain::{canonical_customer_id, TenantSeats};

/// A record that paging can merge duplicates of, by its id.
pub trait Record {
    /// The record's unique id (tenant id, customer id).
    fn key(&self) -> &str;
}

impl Record for TenantSeats {
    fn key(&self) -> &str {
        &self.id
    }
}

/// One customer of the partner, from the customer list (discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredCustomer {
    /// Customer id in its canonical form (see [`canonical_customer_id`]), as used by the
    /// seat endpoint.
    pub id: String,
    /// Organization name (the `customer_name` label); may be empty.
    pub organization: String,
    /// `countryOrRegion`; may be empty.
    pub country_or_region: String,
    /// `managementMode` (a name or a number, as sent); may be empty.
    pub management_mode: String,
}

impl Record for DiscoveredCustomer {
    fn key(&self) -> &str {
        &self.id
    }
}

/// One page of the response, parsed.
#[derive(Debug, PartialEq)]
pub struct Page<T = TenantSeats> {
    /// Valid records, in response order.
    pub items: Vec<T>,
    /// Records skipped, each with the reason.
    pub invalid: Vec<String>,
    /// `metadata.totalCount`, when the envelope has one.
    pub total_count: Option<u64>,
}

impl<T> Page<T> {
    /// Records on the page, valid or not (what paging decisions count).
    pub fn len(&self) -> usize {
        self.items.len() + self.invalid.len()
    }

    /// Whether the page has no records at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses one response body of the seat endpoint into a [`Page`]; the error says what is
/// wrong with its shape.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    parse_envelope(body, parse_record)
}

/// [`parse_page`] for a poll: a page whose records are all invalid means the schema changed
/// (seat numbers sent as strings, renamed fields), not that the tenants are gone, so it fails
/// the poll and the last good series stay, instead of publishing an empty target.
pub(super) fn parse_tenants_page(body: &[u8]) -> Result<Page, String> {
    let page = parse_page(body)?;
    match page.invalid.first() {
        Some(first) if page.items.is_empty() => Err(format!(
            "all {} records are invalid (has the API changed?), first: {first}",
            page.invalid.len()
        )),
        _ => Ok(page),
    }
}

/// Parses one response body of the customer list into a [`Page`].
pub fn parse_customers_page(body: &[u8]) -> Result<Page<DiscoveredCustomer>, String> {
    parse_envelope(body, parse_customer)
}

/// The envelope shared by both endpoints: `{"data": [...], "metadata": {...}}` or a bare
/// list; each record goes through `parse_record`, which skips the invalid ones.
fn parse_envelope<T>(
    body: &[u8],
    parse_record: fn(&Value) -> Result<T, String>,
) -> Result<Page<T>, String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let (records, total_count) = match root {
        Value::Array(records) => (records, None),
        Value::Object(mut map) => {
            let records = match map.remove("data") {
                Some(Value::Array(records)) => records,
                Some(Value::Null) | None => {
                    return Err("object without a \"data\" list".into());
                }
                Some(_) => return Err("\"data\" is not a list".into()),
            };
            let total = match map.get("metadata") {
                Some(Value::Object(meta)) => match meta.get("totalCount") {
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or("metadata.totalCount is not a non-negative integer")?,
                    ),
                    None => None,
                },
                _ => None,
            };
            (records, total)
        }
        _ => return Err("expected an object with \"data\" or a list of tenants".into()),
    };
    let mut page = Page {
        items: Vec::with_capacity(records.len()),
        invalid: Vec::new(),
        total_count,
    };
    for (i, record) in records.iter().enumerate() {
        match parse_record(record) {
            Ok(t) => page.items.push(t),
            Err(why) => page.invalid.push(format!("record {i}: {why}")),
        }
    }
    Ok(page)
}

fn parse_record(record: &Value) -> Result<TenantSeats, String> {
    let Value::Object(map) = record else {
        return Err("not an object".into());
    };
    let id = match map.get("tenantId") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Null) | None => return Err("missing tenantId".into()),
        Some(other) => return Err(format!("tenantId {other} is not a non-empty string")),
    };
    let name = match map.get("tenantName") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let seats = |key: &str| match map.get(key) {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("tenant {id:?}: {key} {v} is not a non-negative integer")),
        None => Err(format!("tenant {id:?}: missing {key}")),
    };
    Ok(TenantSeats {
        available: seats("availableUserSeat")?,
        assigned: seats("assignedUserSeat")?,
        id,
        name,
    })
}

/// A customer record: `id` is required (and must be safe in a URL path), the rest optional.
fn parse_customer(record: &Value) -> Result<DiscoveredCustomer, String> {
    let Value::Object(map) = record else {
        return Err("not an object".into());
    };
    let id = match map.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Null) | None => return Err("missing id".into()),
        Some(other) => return Err(format!("id {other} is not a non-empty string")),
    };
    // The one form used everywhere (a configured id in another case is the same customer).
    let id = canonical_customer_id(&id).map_err(|why| format!("id {why}"))?;
    // Strings or numbers (the docs show jobStatus both ways); anything else counts as absent.
    let text = |key: &str| match map.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    Ok(DiscoveredCustomer {
        organization: text("organization"),
        country_or_region: text("countryOrRegion"),
        management_mode: text("managementMode"),
        id,
    })
}
