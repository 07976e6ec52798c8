//! The YAML walker: sections whose keys are checked, typed values, and every problem
//! collected with its key path.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use serde_yaml::{Mapping, Value};

use crate::domain::duration::parse_duration;

/// Deepest nesting of YAML collections accepted (real configs use 4).
pub const MAX_NESTING: usize = 64;

/// The first line at which YAML collections nest deeper than [`MAX_NESTING`], if any: a
/// linear scan, so that a hostile file fails at once instead of in the parser's quadratic time.
pub(super) fn too_deep(text: &str) -> Option<usize> {
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        // Block nesting: indentation and "- - -" chains on one line.
        let dashes = body
            .as_bytes()
            .chunks(2)
            .take_while(|c| *c == b"- " || *c == b"-")
            .count();
        if indent / 2 + dashes > MAX_NESTING * 4 || dashes > MAX_NESTING {
            return Some(n + 1);
        }
        // Flow nesting, outside quoted strings and comments.
        let mut quote = None;
        for c in body.chars() {
            match (quote, c) {
                (None, '#') => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_NESTING {
                        return Some(n + 1);
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// Collected problems, each `path: message`, and the text they are about (to quote a value
/// as written where YAML has changed it).
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<String>, pub(super) String);

impl Problems {
    pub(super) fn add(&mut self, path: &str, message: impl fmt::Display) {
        self.0.push(format!("{path}: {message}"));
    }

    /// How a number that YAML read as `n` was written (`0x10` for 16), if the text holds
    /// one token that YAML reads so.
    pub(super) fn as_written(&self, n: &serde_yaml::Number) -> Option<String> {
        self.1
            .split(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '[' | ']' | '{' | '}'))
            .filter(|t| !t.is_empty() && !t.starts_with('#'))
            .find(|t| matches!(serde_yaml::from_str::<Value>(t), Ok(Value::Number(m)) if m == *n))
            .map(str::to_owned)
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Shows a YAML value the way the user wrote it, for error messages.
pub(super) fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_owned(),
        other => serde_yaml::to_string(other)
            .map(|s| one_line(s.trim()))
            .unwrap_or_else(|_| "?".to_owned()),
    }
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A mapping whose keys are known by being read: every key the parser asks for is known,
/// and [`Section::finish`] reports the others. There is no separate list of allowed keys
/// that could drift from what is read.
pub(super) struct Section<'a> {
    path: String,
    map: &'a Mapping,
    /// Every key asked for so far, in order.
    asked: RefCell<Vec<&'static str>>,
}

impl<'a> Section<'a> {
    /// Checks that `value` is a mapping.
    pub(super) fn new(value: &'a Value, path: &str, p: &mut Problems) -> Option<Section<'a>> {
        let Value::Mapping(map) = value else {
            p.add(
                if path.is_empty() { "config" } else { path },
                format!("expected a mapping, got {}", kind(value)),
            );
            return None;
        };
        Some(Section {
            path: path.to_owned(),
            map,
            asked: RefCell::new(Vec::new()),
        })
    }

    /// Reports every key that was not asked for, after the section's parser read its keys.
    pub(super) fn finish(self, p: &mut Problems) {
        let asked = self.asked.into_inner();
        for key in self.map.keys() {
            match key.as_str() {
                Some(k) if asked.contains(&k) => {}
                Some(k) => {
                    // As clap suggests flags: the closest known key, when only a typo away.
                    let closest = asked
                        .iter()
                        .map(|a| {
                            let score =
                                strsim::normalized_damerau_levenshtein(&k.to_lowercase(), a);
                            (score, a)
                        })
                        .filter(|(score, _)| *score >= 0.6)
                        .max_by(|a, b| a.0.total_cmp(&b.0));
                    let hint = closest
                        .map(|(_, a)| format!("did you mean {a:?}? "))
                        .unwrap_or_default();
                    p.add(
                        &join(&self.path, k),
                        format!("unknown key; {hint}expected one of {}", asked.join(", ")),
                    )
                }
                None => p.add(
                    if self.path.is_empty() {
                        "config"
                    } else {
                        &self.path
                    },
                    format!("keys must be strings, got {}", show(key)),
                ),
            }
        }
    }

    pub(super) fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key` as written, `null` included; marks the key known.
    pub(super) fn raw(&self, key: &'static str) -> Option<&'a Value> {
        let mut asked = self.asked.borrow_mut();
        if !asked.contains(&key) {
            asked.push(key);
        }
        self.map.get(key)
    }

    /// The value of `key`, treating an explicit `null` as absent.
    pub(super) fn get(&self, key: &'static str) -> Option<&'a Value> {
        self.raw(key).filter(|v| !v.is_null())
    }

    pub(super) fn string(&self, key: &'static str, p: &mut Problems) -> Option<String> {
        let value = self.get(key)?;
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => {
                p.add(&self.path(key), "must not be empty");
                None
            }
            // Numbers are accepted where a string is wanted (numeric ids and names).
            Value::Number(n) => Some(n.to_string()),
            other => {
                p.add(
                    &self.path(key),
                    format!("expected a string, got {}", kind(other)),
                );
                None
            }
        }
    }

    pub(super) fn integer(
        &self,
        key: &'static str,
        min: u64,
        max: u64,
        p: &mut Problems,
    ) -> Option<u64> {
        let value = self.get(key)?;
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ if value.is_number() => {
                p.add(
                    &self.path(key),
                    format!("{} is out of range; expected {min}..{max}", show(value)),
                );
                None
            }
            _ => {
                p.add(
                    &self.path(key),
                    format!("expected an integer, got {}", show(value)),
                );
                None
            }
        }
    }

    pub(super) fn duration(&self, key: &'static str, p: &mut Problems) -> Option<Duration> {
        let value = self.get(key)?;
        let text = match value {
            Value::String(s) => s.clone(),
            // `0` alone is a duration (of nothing), whatever limit then applies.
            Value::Number(n) if n.as_u64() == Some(0) => "0".to_owned(),
            Value::Number(n) => {
                p.add(
                    &self.path(key),
                    format!(
                        "{n} has no unit; a duration is a number and a unit, e.g. {n}s or {n}m"
                    ),
                );
                return None;
            }
            other => {
                p.add(
                    &self.path(key),
                    format!(
                        "expected a duration such as 30s, 5m or 1h30m, got {}",
                        show(other)
                    ),
                );
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                p.add(&self.path(key), e);
                None
            }
        }
    }

    pub(super) fn url(&self, key: &'static str, p: &mut Problems) -> Option<Url> {
        let text = self.string(key, p)?;
        let path = self.path(key);
        // What may be shown of it: never a user or password before an `@`.
        let shown = match text.rsplit_once('@') {
            Some((_, rest)) => format!("…@{rest}"),
            None => text.clone(),
        };
        let with_scheme = || {
            format!(
                "; write it with its scheme, e.g. https://{}",
                shown.trim_start_matches('/')
            )
        };
        if !text.contains("://") {
            p.add(&path, format!("{shown:?} has no scheme{}", with_scheme()));
            return None;
        }
        match Url::parse(&text) {
            // Credentials never go in a URL: it is printed by --check-config and in logs.
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                p.add(
                    &path,
                    "must not carry a user or password (user:pass@); the app's credentials \
                     belong in client_id and client_secret_file",
                );
                None
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            Ok(_) => {
                p.add(
                    &path,
                    format!("{shown:?} is not an http(s) URL with a host"),
                );
                None
            }
            Err(e) => {
                p.add(&path, format!("{shown:?} is not a valid URL: {e}"));
                None
            }
        }
    }
}
