//! Durations as Prometheus writes them (`30s`, `5m`, `1h30m`, `250ms`): how the config reads
//! them, and how logs and messages show a duration so that it can be written back as it
//! reads.

use std::time::Duration;

/// Duration units in milliseconds, largest first (Prometheus' set).
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Writes a duration the way [`parse_duration`] reads it back (Prometheus style): `1h30m`,
/// `90s` as `1m30s`, `250ms`, `0s`. Below a millisecond is dropped.
pub fn format_duration(d: Duration) -> String {
    let mut millis = d.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, per) in UNITS {
        let per = u128::from(per);
        let n = millis / per;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            millis %= per;
        }
    }
    out
}

/// Parses a duration such as `30s`, `5m`, `1h30m` or `500ms` (Prometheus style).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    // Prometheus's syntax exactly: numbers with units from largest to smallest, each unit at
    // most once, no spaces, "0" alone for zero.
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
        if unit.is_empty() && rest.starts_with(char::is_whitespace) {
            return Err(format!(
                "{text:?} has a space; write each number and its unit together, with the units y, w, d, h, m, s, ms from largest to smallest, e.g. 30s, 5m, 1m30s"
            ));
        }
        if unit.is_empty() {
            return Err(format!(
                "{text:?} has a number without a unit; the units are y, w, d, h, m, s, ms, from largest to smallest, e.g. 30s, 5m, 1h30m"
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
