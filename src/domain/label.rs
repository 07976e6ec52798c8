//! Label values taken from the API (tenant ids and names, the customer list's names) are
//! bounded: a value over [`MAX_LABEL_VALUE_BYTES`] is cut, so that the exposition stays
//! proportional to the number of series whatever a server sends.
//!
//! A cut value keeps its first bytes up to a character boundary, then `…` and 16 hex digits
//! of the FNV-1a hash of the whole value, all within [`MAX_LABEL_VALUE_BYTES`]: the mark says
//! it was cut, and two long values that share their first KiB (two tenant ids) stay two
//! series. Cutting a value that was cut (or never needed it) changes nothing.

use super::{fnv1a, TenantSeats};

/// The longest label value taken from the API, in bytes (1 KiB).
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// What ends a cut value, before the hash.
const MARK: &str = "…";

/// Bytes of the mark and the hash.
const SUFFIX_BYTES: usize = MARK.len() + 16;

/// `value`, cut to [`MAX_LABEL_VALUE_BYTES`] (see the module documentation); unchanged when
/// it fits.
pub fn cut_label_value(mut value: String) -> String {
    cut_in_place(&mut value);
    value
}

/// Cuts `value` in place; true when it was too long.
pub fn cut_in_place(value: &mut String) -> bool {
    if value.len() <= MAX_LABEL_VALUE_BYTES {
        return false;
    }
    let hash = fnv1a(value.as_bytes());
    let mut end = MAX_LABEL_VALUE_BYTES - SUFFIX_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.truncate(end);
    value.push_str(MARK);
    value.push_str(&format!("{hash:016x}"));
    true
}

/// Cuts the id and name of each tenant; how many values were cut.
pub fn cut_tenants(tenants: &mut [TenantSeats]) -> u64 {
    tenants
        .iter_mut()
        .map(|t| u64::from(cut_in_place(&mut t.id)) + u64::from(cut_in_place(&mut t.name)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_values_pass_and_long_ones_are_cut_marked_and_kept_apart() {
        let fits = "é".repeat(512);
        assert_eq!(fits.len(), 1024);
        assert_eq!(cut_label_value(fits.clone()), fits);
        assert_eq!(cut_label_value(String::new()), "");

        let long = "a".repeat(100_000);
        let cut = cut_label_value(long.clone());
        assert_eq!(cut.len(), MAX_LABEL_VALUE_BYTES);
        assert!(cut.starts_with(&"a".repeat(1000)));
        assert_eq!(
            cut[MAX_LABEL_VALUE_BYTES - SUFFIX_BYTES..],
            format!("…{:016x}", fnv1a(long.as_bytes()))
        );
        // Same first KiB, another value: another label value.
        let other = cut_label_value(format!("{long}b"));
        assert_ne!(cut, other);
        // Cutting again changes nothing.
        assert_eq!(cut_label_value(cut.clone()), cut);

        let mut tenants = vec![
            TenantSeats {
                id: long.clone(),
                name: long,
                available: 1,
                assigned: 2,
            },
            TenantSeats {
                id: "t".into(),
                name: "short".into(),
                available: 3,
                assigned: 4,
            },
        ];
        assert_eq!(cut_tenants(&mut tenants), 2);
        assert_eq!(tenants[0].id.len(), MAX_LABEL_VALUE_BYTES);
        assert_eq!(tenants[1].name, "short");
        assert_eq!(cut_tenants(&mut tenants), 0);
    }

    proptest! {
        #[test]
        fn a_cut_value_is_bounded_valid_and_a_prefix(value in "\\PC{0,1500}", pad in 0usize..3) {
            // Multi-byte characters around the cut point.
            let value = format!("{}{value}", "ü".repeat(pad * 300));
            let cut = cut_label_value(value.clone());
            prop_assert!(cut.len() <= MAX_LABEL_VALUE_BYTES);
            if value.len() <= MAX_LABEL_VALUE_BYTES {
                prop_assert_eq!(&cut, &value);
            } else {
                let kept = cut.len() - SUFFIX_BYTES;
                prop_assert!(kept + 4 > MAX_LABEL_VALUE_BYTES - SUFFIX_BYTES);
                prop_assert!(value.starts_with(&cut[..kept]));
                prop_assert!(cut[kept..].starts_with(MARK));
                prop_assert_eq!(cut_label_value(cut.clone()), cut);
            }
        }
    }
}
