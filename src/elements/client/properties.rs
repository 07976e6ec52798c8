//! Property tests: the parsers take any bytes and any JSON (biased towards the field names
//! they know) without panicking, and account for every record.

use proptest::prelude::*;

use super::wire::{parse_customers_page, parse_page};

/// Any JSON value, biased towards the field names and shapes of a tenants page.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = prop_oneof![
        Just("data".to_owned()),
        Just("metadata".to_owned()),
        Just("totalCount".to_owned()),
        Just("pageIndex".to_owned()),
        Just("tenantId".to_owned()),
        Just("tenantName".to_owned()),
        Just("availableUserSeat".to_owned()),
        Just("assignedUserSeat".to_owned()),
        Just("id".to_owned()),
        Just("organization".to_owned()),
        Just("jobStatus".to_owned()),
        "[a-zA-Z]{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_parser_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_page(&bytes);
    }

    #[test]
    fn the_parser_survives_any_json_and_accounts_for_every_record(value in json()) {
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(page) = parse_page(&body) {
            let records = match &value {
                serde_json::Value::Array(a) => a.len(),
                other => other["data"].as_array().map_or(0, Vec::len),
            };
            prop_assert_eq!(page.items.len() + page.invalid.len(), records);
        }
    }

    #[test]
    fn the_customer_list_parser_survives_any_json(value in json()) {
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(page) = parse_customers_page(&body) {
            // Ids that reach a URL path never carry a path separator.
            prop_assert!(page.items.iter().all(|c| !c.id.contains(['/', '\\'])
                && c.id != ".." && !c.id.is_empty()));
            // ...and are in their one canonical form.
            prop_assert!(page.items.iter().all(|c| c.id == c.id.to_lowercase()));
        }
    }
}
