//! The wire format of both list endpoints (seats and customers): the envelope, records, and
//! what is skipped or refused.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::domain::customer_id::canonical_customer_id;
use crate::domain::{TenantSeats, TenantType};

/// Records one list (a target's tenants, the customer list) may have over all its pages: the
/// paging guard's 1000 pages of 100. A server that sends larger pages than asked is held to it
/// while the pages are read, not after.
pub const MAX_RECORDS: usize = 100_000;

/// What is left of a list's record allowance, shared by its pages (which may be read at once).
#[derive(Debug)]
pub struct RecordCap(AtomicUsize);

impl RecordCap {
    /// An allowance of `records`.
    pub fn new(records: usize) -> RecordCap {
        RecordCap(AtomicUsize::new(records))
    }

    /// Takes one record from the allowance; false once it is used up.
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Default for RecordCap {
    fn default() -> Self {
        RecordCap::new(MAX_RECORDS)
    }
}

/// A record that paging can merge duplicates of, by its id.
pub trait Record {
    /// The record's unique id (tenant id, customer id).
    fn key(&self) -> &str;
}

/// One tenant record of the seat endpoint: the seats, and the tenant type the record says it
/// is of (`None` when it has no `type`: it belongs to the type that was asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// The tenant's seats.
    pub seats: TenantSeats,
    /// The record's `type`, when it has one: a known type, or the value as sent (a type
    /// this exporter does not know is never the one it asked for).
    pub tenant_type: Option<Result<TenantType, String>>,
}

impl Record for TenantRecord {
    fn key(&self) -> &str {
        &self.seats.id
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

/// Parses one response body of the seat endpoint into a [`Page`] of seats (each record's
/// `type` dropped); the error says what is wrong with its shape.
#[cfg(any(test, feature = "bench"))]
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let page = parse_envelope(body, TENANT, &RecordCap::default())?;
    Ok(Page {
        items: page.items.into_iter().map(|r| r.seats).collect(),
        invalid: page.invalid,
        total_count: page.total_count,
    })
}

/// [`parse_page`] for a poll, counting against the target's `cap`: a page whose records are
/// all invalid means the schema changed (seat numbers sent as strings, renamed fields), not
/// that the tenants are gone, so it fails the poll and the last good series stay, instead of
/// publishing an empty target.
pub(super) fn parse_tenants_page(
    body: &[u8],
    cap: &RecordCap,
) -> Result<Page<TenantRecord>, String> {
    let page = parse_envelope(body, TENANT, cap)?;
    match page.invalid.first() {
        Some(first) if page.items.is_empty() => Err(format!(
            "all {} records are invalid (has the API changed?), first: {first}",
            page.invalid.len()
        )),
        _ => Ok(page),
    }
}

/// Parses one response body of the customer list into a [`Page`].
#[cfg(test)]
pub fn parse_customers_page(body: &[u8]) -> Result<Page<DiscoveredCustomer>, String> {
    parse_envelope(body, CUSTOMER, &RecordCap::default())
}

/// [`parse_customers_page`] counting against the list's `cap`.
pub(super) fn parse_customers_page_capped(
    body: &[u8],
    cap: &RecordCap,
) -> Result<Page<DiscoveredCustomer>, String> {
    parse_envelope(body, CUSTOMER, cap)
}

/// How one kind of record is read: the keys kept (every other key is skipped unread) and
/// the parser of what is kept.
pub(super) struct Kind<T> {
    keys: &'static [&'static str],
    parse: fn(&Value) -> Result<T, String>,
}

// Not derivable: `T` need not be `Clone`.
impl<T> Clone for Kind<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Kind<T> {}

/// A seat record.
const TENANT: Kind<TenantRecord> = Kind {
    keys: &[
        "type",
        "tenantId",
        "tenantName",
        "availableUserSeat",
        "assignedUserSeat",
    ],
    parse: parse_record,
};

/// A customer-list record.
const CUSTOMER: Kind<DiscoveredCustomer> = Kind {
    keys: &["id", "organization", "countryOrRegion", "managementMode"],
    parse: parse_customer,
};

/// Messages of shape errors, told apart from JSON syntax errors (which serde reports as
/// custom errors too) by this prefix.
const SHAPE: &str = "shape: ";

/// The envelope shared by both endpoints: `{"data": [...], "metadata": {...}}` or a bare
/// list. Read as a stream: each record is parsed on its own (`parse_record`, which skips the
/// invalid ones) straight into its compact form, so a page never exists as a JSON tree (a
/// 16 MiB page of minimal records would take some 300 MB that way), and the `cap` is applied
/// record by record.
fn parse_envelope<T>(body: &[u8], kind: Kind<T>, cap: &RecordCap) -> Result<Page<T>, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Root { kind, cap }
        .deserialize(&mut de)
        .and_then(|page| de.end().map(|()| page));
    parsed.map_err(|e| {
        let text = e.to_string();
        match text.strip_prefix(SHAPE) {
            // The shape error without serde's " at line L column C".
            Some(shape) => shape
                .rsplit_once(" at line ")
                .map_or(shape, |(message, _)| message)
                .to_owned(),
            None => format!("not JSON: {text}"),
        }
    })
}

/// The `visit_*` methods of the JSON scalars (a boolean, a number, a string), each answering
/// `$answer`: for a visitor to which any scalar where it stands means the same.
macro_rules! answer_scalars {
    ($answer:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            $answer
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            $answer
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            $answer
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            $answer
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            $answer
        }
    };
}

/// A shape error (see [`SHAPE`]).
fn shape<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(format!("{SHAPE}{message}"))
}

/// The whole body.
struct Root<'a, T> {
    kind: Kind<T>,
    cap: &'a RecordCap,
}

impl<'de, T> DeserializeSeed<'de> for Root<'_, T> {
    type Value = Page<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Page<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> Visitor<'de> for Root<'_, T> {
    type Value = Page<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with \"data\" or a list of tenants")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Page<T>, A::Error> {
        let (items, invalid) = records(seq, self.kind, self.cap)?;
        Ok(Page {
            items,
            invalid,
            total_count: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<T>, A::Error> {
        let mut data = None;
        let mut total_count = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "data" => {
                    data = map.next_value_seed(Data {
                        kind: self.kind,
                        cap: self.cap,
                    })?;
                    if data.is_none() {
                        return Err(shape("object without a \"data\" list"));
                    }
                }
                "metadata" => total_count = map.next_value_seed(Metadata)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (items, invalid) = data.ok_or_else(|| shape("object without a \"data\" list"))?;
        Ok(Page {
            items,
            invalid,
            total_count,
        })
    }

    answer_scalars!(Err(shape(
        "expected an object with \"data\" or a list of tenants"
    )));
    fn visit_unit<E: de::Error>(self) -> Result<Page<T>, E> {
        Err(shape(
            "expected an object with \"data\" or a list of tenants",
        ))
    }
}

/// Valid records and the reasons for the invalid ones, read one record at a time.
type Records<T> = (Vec<T>, Vec<String>);

fn records<'de, T, A: SeqAccess<'de>>(
    mut seq: A,
    kind: Kind<T>,
    cap: &RecordCap,
) -> Result<Records<T>, A::Error> {
    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
    let mut invalid = Vec::new();
    let mut i = 0usize;
    while let Some(record) = seq.next_element_seed(RecordSeed(kind.keys))? {
        if !cap.take() {
            return Err(shape(format!(
                "more than {MAX_RECORDS} records in the list; refusing the rest"
            )));
        }
        match (kind.parse)(&record) {
            Ok(t) => items.push(t),
            Err(why) => invalid.push(format!("record {i}: {why}")),
        }
        i += 1;
    }
    Ok((items, invalid))
}

/// The value of `data`: a list of records (`None` for null).
struct Data<'a, T> {
    kind: Kind<T>,
    cap: &'a RecordCap,
}

impl<'de, T> DeserializeSeed<'de> for Data<'_, T> {
    type Value = Option<Records<T>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> Visitor<'de> for Data<'_, T> {
    type Value = Option<Records<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        records(seq, self.kind, self.cap).map(Some)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(shape("\"data\" is not a list"))
    }
    answer_scalars!(Err(shape("\"data\" is not a list")));
}

/// One record as a small JSON object of its kind's keys (each a scalar: see [`ScalarSeed`]);
/// a record that is not an object is skipped unread and comes back as `null`.
struct RecordSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = serde_json::Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.0.contains(&key.as_ref()) {
                let value = map.next_value_seed(ScalarSeed)?;
                kept.insert(key.into_owned(), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(kept))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }
    answer_scalars!(Ok(Value::Null));
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A value that is kept only when it is a scalar: a list or an object is skipped unread and
/// stands as an empty list (never a valid id, name or seat count), so no value of a record
/// can grow into a tree.
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }
}

/// `metadata`: its `totalCount` when it is an object (anything else carries none).
struct Metadata;

impl<'de> DeserializeSeed<'de> for Metadata {
    type Value = Option<u64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Metadata {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the page's metadata")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut total = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "totalCount" {
                // The last one counts, as in a JSON object read whole.
                let v = map.next_value_seed(ScalarSeed)?;
                total = Some(v.as_u64().ok_or_else(|| {
                    shape::<A::Error>("metadata.totalCount is not a non-negative integer")
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(total)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<u64>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    answer_scalars!(Ok(None));
    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
}

fn parse_record(record: &Value) -> Result<TenantRecord, String> {
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
    // The API's numbers 0..3 (or, leniently, their names); absent or null: the type asked for.
    let tenant_type = match map.get("type") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(TenantType::parse(&text).ok_or(text))
        }
    };
    Ok(TenantRecord {
        seats: TenantSeats {
            available: seats("availableUserSeat")?,
            assigned: seats("assignedUserSeat")?,
            id,
            name,
        },
        tenant_type,
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
