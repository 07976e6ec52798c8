//! Cutting credentials out of text that came from a remote server before it reaches a log
//! line, an error message or a page: a server that echoes the request (`forbidden for Bearer
//! eyJ...`, or the form body of a token request) must not make the exporter show them.
//!
//! Removed: the configured client secret (as sent, form-encoded and percent-encoded in either
//! case, and also where the text holds it JSON-escaped, HTML-escaped or percent-encoded:
//! those views are checked too), the access tokens this exporter was given (whether or not
//! the server writes `Bearer ` before them), bearer tokens, and anything shaped like a JWT
//! (access tokens, signed client assertions).

use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;

/// What replaces a removed credential.
pub const REDACTED: &str = "<redacted>";

/// Removes the credentials of one configuration from text; see the module documentation.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The secret in every form a server could echo it, longest first.
    secrets: Vec<String>,
    /// The last access tokens handed out (shared by every clone): known when the request
    /// carrying them is sent, so an echo is cut whatever surrounds it.
    tokens: Arc<Mutex<Vec<String>>>,
}

/// How many recent access tokens are remembered (the current one and those before it that
/// requests still in flight may carry).
const TOKENS_KEPT: usize = 4;

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
            // Percent-encoding with lowercase hex digits (what .NET writes); the secret's own
            // letters keep their case.
            let lower_hex = lowercase_hex(&percent);
            for variant in [form.clone(), lowercase_hex(&form), percent, lower_hex] {
                if !variant.is_empty() && !secrets.contains(&variant) {
                    secrets.push(variant);
                }
            }
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        Redactor {
            secrets,
            tokens: Arc::default(),
        }
    }

    /// Remembers an access token this exporter was given, so that any echo of it is cut.
    pub fn remember_token(&self, token: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if !token.is_empty() && !tokens.iter().any(|t| t == token) {
            tokens.push(token.to_owned());
            if tokens.len() > TOKENS_KEPT {
                tokens.remove(0);
            }
        }
    }

    /// The first `max_chars` characters of `text` without credentials; when the cut falls
    /// inside what could be the start of the secret, the excerpt ends before it.
    pub fn excerpt(&self, text: &str, max_chars: usize) -> String {
        let clean = self.apply(text);
        let mut excerpt: String = clean.chars().take(max_chars).collect();
        if excerpt.len() < clean.len() {
            for secret in &self.secrets {
                let longest = (3..secret.len())
                    .rev()
                    .filter(|n| secret.is_char_boundary(*n))
                    .find(|n| excerpt.ends_with(&secret[..*n]));
                if let Some(n) = longest {
                    excerpt.truncate(excerpt.len() - n);
                }
            }
        }
        excerpt
    }

    /// `text` without credentials.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let known: Vec<&str> = self
            .secrets
            .iter()
            .map(String::as_str)
            .chain(tokens.iter().map(String::as_str))
            .collect();
        for secret in &known {
            if out.contains(secret) {
                out = out.replace(secret, REDACTED);
            }
        }
        // The secret escaped some other way (JSON `\u002B` or `\"`, HTML `&#43;`, percent
        // with hex digits of mixed case): when a decoded view of the text holds it, the text
        // is shown decoded, with the secret cut out.
        if !self.secrets.is_empty() {
            for decode in [json_unescape, html_unescape, percent_decode] {
                if let Some(view) = decode(&out) {
                    if self.secrets.iter().any(|s| view.contains(s.as_str())) {
                        out = view;
                        for secret in &self.secrets {
                            out = out.replace(secret.as_str(), REDACTED);
                        }
                    }
                }
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

/// `%2B` written `%2b`: the hex digits of every escape in lowercase, the rest untouched.
fn lowercase_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                if let Some(h) = chars.next() {
                    out.push(h.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

/// JSON string escapes (`\"`, `\\`, `\/`, `\uXXXX`, `\n`…) decoded; `None` without any.
fn json_unescape(text: &str) -> Option<String> {
    if !text.contains('\\') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

/// HTML character references (`&#43;`, `&#x2B;`, `&amp;`, `&quot;`…) decoded; `None`
/// without any.
fn html_unescape(text: &str) -> Option<String> {
    if !text.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let entity = &rest[1..e];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Percent escapes (hex digits in either case) and `+` as space decoded; `None` without any.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') && !text.contains('+') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
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

    #[test]
    fn finds_the_secret_however_the_server_escaped_it() {
        let secret = "Ab+c/d\"e\\f&g";
        let r = Redactor::new(secret);
        for echoed in [
            // .NET's UrlEncode: lowercase hex.
            "client_secret=Ab%2bc%2fd%22e%5cf%26g",
            // Mixed case.
            "client_secret=Ab%2Bc%2fd%22e%5Cf%26g",
            // JSON with \u escapes and escaped slashes and quotes.
            r#"{"echo":"Ab\u002Bc\/d\"e\\f\u0026g"}"#,
            // HTML character references.
            "<p>Ab&#43;c/d&quot;e\\f&amp;g</p>",
            "<p>Ab&#x2B;c&#x2F;d&#34;e&#92;f&#38;g</p>",
            // Debug-formatted (what an error field printed with {:?} looks like).
            &format!("error {:?}", secret),
        ] {
            let out = r.apply(echoed);
            assert!(out.contains(REDACTED), "{echoed} -> {out}");
            for piece in ["c/d", "c\\/d", "e\\f", "Ab+c", "Ab%2", "Ab&#", "Ab\\u"] {
                assert!(!out.contains(piece), "{echoed} -> {out}");
            }
        }
        // Text without the secret is left as it was, escapes and all.
        assert_eq!(r.apply("a%2Bb &amp; \\u0041"), "a%2Bb &amp; \\u0041");
    }

    #[test]
    fn remembered_tokens_are_cut_without_a_scheme_in_front() {
        let r = Redactor::new("");
        let shared = r.clone();
        shared.remember_token("opaque-token-123");
        assert_eq!(
            r.apply("you sent opaque-token-123!"),
            "you sent <redacted>!"
        );
    }

    #[test]
    fn an_excerpt_never_ends_in_the_start_of_the_secret() {
        let r = Redactor::new("s3cr3t-value");
        // A body cut short in the middle of the secret (the rest never read).
        let text = format!("{}s3cr3t-vaQQQQ", "x".repeat(195));
        let cut = r.excerpt(&text, 200);
        assert!(!cut.contains("s3cr"), "{cut}");
        assert_eq!(cut, "x".repeat(195));
        // The whole secret inside the excerpt is redacted as usual.
        let cut = r.excerpt("see s3cr3t-value here", 200);
        assert_eq!(cut, "see <redacted> here");
    }
}
