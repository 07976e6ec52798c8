//! Securing the endpoint: the exporter-toolkit web configuration (`--web.config.file`), the
//! same YAML every Prometheus exporter accepts: TLS (with client certificates), extra response
//! headers and basic auth. rustls only.
//!
//! The file is read at start and on every reload (SIGHUP or `POST /-/reload`), so rotated
//! certificates apply to new connections without a restart. Keys that exporter-toolkit knows
//! but this exporter does not implement are errors naming the key, never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::basic_auth::BasicAuth;
use super::tls::{tls, RawTls, Tls};

/// Why a web config cannot be used; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("cannot read web config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid; every problem is listed.
    #[error("invalid web config {path}: {}", .problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each problem, `key: message`.
        problems: Vec<String>,
    },
}

impl WebConfigError {
    /// Every problem on a line of its own, each naming the file (what `--check-config`
    /// prints; the log gets the one-line `Display`).
    pub fn lines(&self) -> Vec<String> {
        match self {
            WebConfigError::Read { path, source } => {
                vec![format!(
                    "{}: cannot read the web config: {source}",
                    path.display()
                )]
            }
            WebConfigError::Invalid { path, problems } => problems
                .iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// Everything the web config decides, built once per (re)load.
#[derive(Default)]
pub struct WebSettings {
    /// TLS, when configured; plain HTTP otherwise.
    pub tls: Option<Tls>,
    /// Extra headers on every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Basic auth, when users are configured.
    pub auth: Option<Arc<BasicAuth>>,
}

/// The headers exporter-toolkit allows, with the values it accepts (`None`: any).
const HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

impl WebSettings {
    /// Reads and validates a web config file, its certificates and hashes. Relative file
    /// names are resolved against the file's directory, as exporter-toolkit does.
    pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
        // A regular file, capped, read off a hung mount's reach: as the main config.
        let text = crate::files::read_regular_file(path, crate::files::MAX_FILE_BYTES).map_err(
            |source| WebConfigError::Read {
                path: path.to_owned(),
                source,
            },
        )?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let settings = parse(&text, dir, &mut problems);
        match settings {
            Some(s) if problems.is_empty() => Ok(s),
            _ => Err(WebConfigError::Invalid {
                path: path.to_owned(),
                problems,
            }),
        }
    }
}

fn parse(text: &str, dir: &Path, problems: &mut Vec<String>) -> Option<WebSettings> {
    let raw: RawWebConfig = if text.trim().is_empty() {
        RawWebConfig {
            tls_server_config: None,
            http_server_config: None,
            basic_auth_users: None,
            rate_limit: None,
        }
    } else {
        match serde_yaml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                problems.push(e.to_string().replace('\n', " "));
                return None;
            }
        }
    };
    if raw.rate_limit.is_some() {
        problems.push("rate_limit: not supported by this exporter; remove it".into());
    }
    let http2 = raw
        .http_server_config
        .as_ref()
        .and_then(|h| h.http2)
        .unwrap_or(true);
    let mut headers = Vec::new();
    if let Some(configured) = raw.http_server_config.and_then(|h| h.headers) {
        for (name, value) in configured {
            let key = format!("http_server_config.headers.{name}");
            let Some((canonical, allowed)) =
                HEADERS.iter().find(|(h, _)| h.eq_ignore_ascii_case(&name))
            else {
                problems.push(format!(
                    "{key}: header not allowed; expected one of {}",
                    HEADERS.map(|(h, _)| h).join(", ")
                ));
                continue;
            };
            if value.is_empty() {
                continue; // "Unset if blank."
            }
            if let Some(allowed) = allowed {
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
                    problems.push(format!(
                        "{key}: {value:?} is not allowed; expected one of {}",
                        allowed.join(", ")
                    ));
                    continue;
                }
            }
            match (
                HeaderName::from_bytes(canonical.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                _ => problems.push(format!("{key}: {value:?} is not a valid header value")),
            }
        }
    }
    let auth = match raw.basic_auth_users {
        Some(users) if !users.is_empty() => BasicAuth::new(users, problems).map(Arc::new),
        _ => None,
    };
    let tls = match raw.tls_server_config {
        Some(t) => Some(tls(t, dir, http2, problems)?),
        None => None,
    };
    Some(WebSettings { tls, headers, auth })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let mut p = Vec::new();
        let _ = parse(text, Path::new("/nonexistent"), &mut p);
        p
    }

    #[test]
    fn unsupported_and_unknown_keys_are_named() {
        assert!(
            problems("rate_limit:\n  interval: 1s\n")[0].starts_with("rate_limit: not supported")
        );
        assert!(
            problems("tls_server_config:\n  colour: red\n")[0].contains("unknown field `colour`")
        );
        let p = problems("tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  curve_preferences: [X25519]\n  min_version: TLS10\n  client_auth_type: Maybe\n");
        assert!(
            p.iter()
                .any(|l| l.starts_with("tls_server_config.cipher_suites: not supported")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("tls_server_config.curve_preferences: not supported")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("tls_server_config.min_version: TLS10 is not supported")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l
                    .starts_with("tls_server_config.client_auth_type: unknown value \"Maybe\"")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("tls_server_config.cert_file: cannot read /nonexistent/c")),
            "{p:?}"
        );
        let p = problems("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n");
        assert!(
            p.iter()
                .any(|l| l.starts_with("tls_server_config.cert_file: missing")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("tls_server_config.client_ca_file: missing")),
            "{p:?}"
        );
    }

    #[test]
    fn headers_are_limited_to_the_toolkit_ones() {
        let mut p = Vec::new();
        let s = parse(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
            Path::new("."),
            &mut p,
        )
        .unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.headers.len(), 2);
        let p = problems(
            "http_server_config:\n  headers:\n    X-Powered-By: me\n    X-Frame-Options: allow\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0]
            .starts_with("http_server_config.headers.X-Frame-Options: \"allow\" is not allowed"));
        assert!(p[1].starts_with("http_server_config.headers.X-Powered-By: header not allowed"));
    }
}
