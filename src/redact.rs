//! Cutting credentials out of text that came from a remote server before it reaches a log
//! line, an error message or a page: a server that echoes the request (`forbidden for Bearer
//! eyJ...`, or the form body of a token request) must not make the exporter show them.
//!
//! Removed: the configured client secret (as sent, form-encoded and percent-encoded), bearer
//! tokens, and anything shaped like a JWT (access tokens, signed client assertions).

use std::sync::OnceLock;

use regex::Regex;

/// What replaces a removed credential.
pub const REDACTED: &str = "<redacted>";

/// Removes the credentials of one configuration from text; see the module documentation.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The secret in every form a server could echo it, longest first.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(..)")
    }
}

/// Bearer credentials and JWTs; constant patterns (the unit tests check both compile).
fn patterns() -> &'static [Regex] {
    static PATTERNS: OnceLock<Vec<Regex>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            // A bearer credential after the scheme name (RFC 6750 b64token, case-insensitive).
            r"(?i)\b(bearer)(?:\s+|%20|\+)[A-Za-z0-9\-._~+/]+=*",
            // header.payload[.signature] with base64url JSON objects: any JWT or JWS.
            r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.?[A-Za-z0-9_\-]*",
        ]
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
    })
}

impl Redactor {
    /// A redactor for `secret` (empty: only tokens and JWTs are removed).
    pub fn new(secret: &str) -> Redactor {
        let mut secrets = Vec::new();
        if !secret.is_empty() {
            secrets.push(secret.to_owned());
            let form: String = reqwest::Url::parse_with_params("x:", &[("s", secret)])
                .ok()
                .and_then(|u| u.query().map(|q| q.trim_start_matches("s=").to_owned()))
                .unwrap_or_default();
            let percent: String = secret
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            for variant in [form, percent.clone(), percent.to_lowercase()] {
                if !variant.is_empty() && !secrets.contains(&variant) {
                    secrets.push(variant);
                }
            }
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        Redactor { secrets }
    }

    /// `text` without credentials.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        for (i, pattern) in patterns().iter().enumerate() {
            // The bearer pattern keeps the scheme name, so the reader sees what was there.
            let with = if i == 0 {
                format!("${{1}} {REDACTED}")
            } else {
                REDACTED.to_owned()
            };
            if pattern.is_match(&out) {
                out = pattern.replace_all(&out, with.as_str()).into_owned();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_compile() {
        assert_eq!(patterns().len(), 2);
        for p in patterns() {
            assert!(!p.as_str().is_empty());
            assert!(!p.is_match("plain text"));
        }
    }

    #[test]
    fn removes_the_secret_in_every_encoding() {
        let r = Redactor::new("Abc+Def/ghi=&x y");
        let echoed = "client_secret=Abc%2BDef%2Fghi%3D%26x+y raw Abc+Def/ghi=&x y pct Abc%2BDef%2Fghi%3D%26x%20y lower abc";
        let out = r.apply(echoed);
        assert!(!out.contains("Def"), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
        assert!(out.ends_with("lower abc"));
    }

    #[test]
    fn removes_bearer_tokens_and_jwts() {
        let r = Redactor::new("");
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let out = r.apply(&format!(
            "forbidden for Bearer tok-123.abc~ and authorization: bearer {jwt}; assertion={jwt}"
        ));
        assert!(!out.contains("tok-123"), "{out}");
        assert!(!out.contains("eyJ"), "{out}");
        assert!(out.contains("Bearer <redacted>"), "{out}");
        assert_eq!(r.apply("no credentials here"), "no credentials here");
        assert!(format!("{r:?}").contains(".."));
    }
}
