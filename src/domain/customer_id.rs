//! A customer id as the exporter uses it: its one canonical form (lowercased, one request
//! path segment, bounded like a label value), and whether it has the GUID shape Elements
//! gives its customers' ids.

use super::label::MAX_LABEL_VALUE_BYTES;

/// The one form of a customer id that the exporter uses everywhere: in the API path, the
/// `customer_id` label, plan keys, shards, overrides and `exclude_ids`.
///
/// Elements customer ids are GUIDs, which compare without regard to case, and the customer
/// list, the config file and a user's notes may spell one id in different cases. Every id is
/// therefore lowercased where it enters (config file, customer list), so that one customer
/// is one target set with one label value, whichever spelling came first.
///
/// The id is also a segment of the request path: an id that could change the path's meaning
/// (`..`, `.`, separators, query or fragment marks, percent escapes, spaces or control
/// characters) is refused with the reason, wherever it came from.
pub fn canonical_customer_id(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > MAX_LABEL_VALUE_BYTES {
        // Not cut: the id addresses the customer in the request path.
        return Err(format!(
            "is {} bytes long, more than the {} bytes of a label value",
            raw.len(),
            MAX_LABEL_VALUE_BYTES
        ));
    }
    if raw == "." || raw == ".." {
        return Err(format!("{raw:?} would change the request path"));
    }
    if let Some(c) = raw
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{raw:?} may not contain {c:?} (it is part of the request path)"
        ));
    }
    Ok(raw.to_lowercase())
}

/// Whether a customer id has the shape Elements gives its customers' ids, a GUID
/// (`8-4-4-4-12` hex digits): an id that has not is valid but probably a name typed in its
/// place, which `--check-config` warns about.
pub(crate) fn is_guid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_lowercased_and_must_be_one_path_segment() {
        assert_eq!(
            canonical_customer_id("F1620000-B9D4-0000-A165-97DB0000FC15").as_deref(),
            Ok("f1620000-b9d4-0000-a165-97db0000fc15")
        );
        assert_eq!(canonical_customer_id("plain").as_deref(), Ok("plain"));
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "x\\..\\..\\admin",
            "a?b",
            "a#b",
            "a%2fb",
            "a b",
            "a\u{7f}",
        ] {
            let why = canonical_customer_id(bad).unwrap_err();
            assert!(!why.is_empty(), "{bad:?}");
        }
        // Dots inside an id are harmless.
        assert_eq!(canonical_customer_id("a..b").as_deref(), Ok("a..b"));
        // Bounded like a label value, and not echoed when too long.
        let long = "a".repeat(MAX_LABEL_VALUE_BYTES + 1);
        let why = canonical_customer_id(&long).unwrap_err();
        assert!(why.contains("1025 bytes") && !why.contains("aaaa"), "{why}");
        assert!(canonical_customer_id(&long[1..]).is_ok());
    }
}
