//! Securing the endpoint: the exporter-toolkit web configuration (`--web.config.file`), the
//! same YAML every Prometheus exporter accepts: TLS (with client certificates), extra response
//! headers and basic auth. rustls only.
//!
//! The file is read at start and on every reload (SIGHUP or `POST /-/reload`), so rotated
//! certificates apply to new connections without a restart. Keys that exporter-toolkit knows
//! but this exporter does not implement are errors naming the key, never silently ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

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
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The client certificate policies of exporter-toolkit (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// A certificate is asked for, not required, not verified.
    RequestClientCert,
    /// A certificate is required, not verified.
    RequireAnyClientCert,
    /// A certificate is not required; if given, it must verify against `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A certificate is required and must verify against `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const ALL: [(&'static str, ClientAuth); 5] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];
}

/// TLS of the endpoint: the acceptor and the checks rustls does not do itself.
pub struct Tls {
    /// Accepts TLS connections (certificates, versions, ALPN, client verification).
    pub acceptor: TlsAcceptor,
    /// When non-empty, the client certificate must carry one of these SANs.
    pub allowed_sans: Vec<String>,
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
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
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

/// PEM text from an inline value or a file; exactly one of the two.
fn pem_source(
    inline: Option<String>,
    file: Option<String>,
    name: &str,
    dir: &Path,
    required: bool,
    problems: &mut Vec<String>,
) -> Option<(String, Vec<u8>)> {
    let key = format!("tls_server_config.{name}_file");
    match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "tls_server_config: both {name} and {name}_file are set; keep one"
            ));
            None
        }
        (Some(text), None) => Some((format!("tls_server_config.{name}"), text.into_bytes())),
        (None, Some(f)) => {
            let path = dir.join(&f);
            match std::fs::read(&path) {
                Ok(bytes) => Some((key, bytes)),
                Err(e) => {
                    problems.push(format!("{key}: cannot read {}: {e}", path.display()));
                    None
                }
            }
        }
        (None, None) => {
            if required {
                problems.push(format!("{key}: missing; TLS needs a {name}"));
            }
            None
        }
    }
}

fn tls(t: RawTls, dir: &Path, http2: bool, problems: &mut Vec<String>) -> Option<Tls> {
    let before = problems.len();
    if t.cipher_suites.as_ref().is_some_and(|c| !c.is_empty()) {
        problems.push(
            "tls_server_config.cipher_suites: not supported; rustls uses its own safe suites"
                .into(),
        );
    }
    if t.curve_preferences.as_ref().is_some_and(|c| !c.is_empty()) {
        problems.push(
            "tls_server_config.curve_preferences: not supported; rustls uses its own safe curves"
                .into(),
        );
    }
    let version =
        |key: &str, value: &Option<String>, default, problems: &mut Vec<String>| match value
            .as_deref()
        {
            None => Some(default),
            Some("TLS12") => Some(12),
            Some("TLS13") => Some(13),
            Some(v @ ("TLS10" | "TLS11")) => {
                problems.push(format!(
                    "tls_server_config.{key}: {v} is not supported (insecure); use TLS12 or TLS13"
                ));
                None
            }
            Some(v) => {
                problems.push(format!(
                    "tls_server_config.{key}: unknown version {v:?}; expected TLS12 or TLS13"
                ));
                None
            }
        };
    let min = version("min_version", &t.min_version, 12, problems);
    let max = version("max_version", &t.max_version, 13, problems);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match (min, max) {
        (Some(min), Some(max)) if min > max => {
            problems.push("tls_server_config: min_version is above max_version".into());
            Vec::new()
        }
        (Some(min), Some(max)) => [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect(),
        _ => Vec::new(),
    };
    let client_auth = match t.client_auth_type.as_deref() {
        None => Some(ClientAuth::NoClientCert),
        Some(name) => {
            let found = ClientAuth::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| *a);
            if found.is_none() {
                problems.push(format!(
                    "tls_server_config.client_auth_type: unknown value {name:?}; expected one of {}",
                    ClientAuth::ALL.map(|(n, _)| n).join(", ")
                ));
            }
            found
        }
    };
    let cert = pem_source(t.cert, t.cert_file, "cert", dir, true, problems);
    let key = pem_source(t.key, t.key_file, "key", dir, true, problems);
    let ca = pem_source(
        t.client_ca,
        t.client_ca_file,
        "client_ca",
        dir,
        false,
        problems,
    );
    let certs: Option<Vec<CertificateDer<'static>>> = cert.and_then(|(key, pem)| {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
        match certs {
            Ok(c) if !c.is_empty() => Some(c),
            _ => {
                problems.push(format!("{key}: no PEM certificate found"));
                None
            }
        }
    });
    let private_key = key.and_then(|(key, pem)| match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => Some(k),
        Err(_) => {
            problems.push(format!(
                "{key}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)"
            ));
            None
        }
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match (&ca, client_auth) {
        (Some((key, pem)), _) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                match c.map(|c| roots.add(c)) {
                    Ok(Ok(())) => {}
                    _ => problems.push(format!("{key}: not a valid PEM CA certificate")),
                }
            }
            if roots.is_empty() {
                problems.push(format!("{key}: no CA certificate found"));
            }
            Some(Arc::new(roots))
        }
        (
            None,
            Some(ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert),
        ) => {
            problems.push(
                "tls_server_config.client_ca_file: missing; needed to verify client certificates"
                    .into(),
            );
            None
        }
        (None, _) => None,
    };
    let allowed_sans = t.client_allowed_sans.unwrap_or_default();
    if problems.len() > before {
        return None;
    }
    let verifier: Arc<dyn ClientCertVerifier> = match (client_auth?, roots) {
        (ClientAuth::NoClientCert, _) => WebPkiClientVerifier::no_client_auth(),
        (ClientAuth::RequestClientCert, _) => Arc::new(AnyClientCert::new(false, &provider)),
        (ClientAuth::RequireAnyClientCert, _) => Arc::new(AnyClientCert::new(true, &provider)),
        (ClientAuth::VerifyClientCertIfGiven, Some(roots)) => {
            match WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .allow_unauthenticated()
                .build()
            {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("tls_server_config.client_ca_file: {e}"));
                    return None;
                }
            }
        }
        (ClientAuth::RequireAndVerifyClientCert, Some(roots)) => {
            match WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build() {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("tls_server_config.client_ca_file: {e}"));
                    return None;
                }
            }
        }
        (_, None) => return None,
    };
    let builder = match rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
    {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!("tls_server_config: {e}"));
            return None;
        }
    };
    let mut config = match builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs?, private_key?)
    {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!(
                "tls_server_config.key_file: cannot use the key with the certificate: {e}"
            ));
            return None;
        }
    };
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Some(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        allowed_sans,
    })
}

/// Whether a client certificate (DER) carries one of `allowed` as a DNS, IP, e-mail or URI
/// subject alternative name.
pub fn has_allowed_san(cert: &[u8], allowed: &[String]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert) else {
        return false;
    };
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return false;
    };
    sans.value.general_names.iter().any(|name| {
        let text = match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                (*s).to_owned()
            }
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .map(|a| std::net::IpAddr::from(a).to_string())
                    .unwrap_or_default(),
                16 => <[u8; 16]>::try_from(*b)
                    .map(|a| std::net::IpAddr::from(a).to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        !text.is_empty() && allowed.contains(&text)
    })
}

/// Asks for a client certificate and checks only that the client holds its key (Go's
/// `RequestClientCert` / `RequireAnyClientCert`: no chain verification).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    fn new(mandatory: bool, provider: &rustls::crypto::CryptoProvider) -> Self {
        AnyClientCert {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Most verified credentials remembered; the cache is emptied when full.
const CACHE_LIMIT: usize = 256;

/// Basic auth against bcrypt hashes. A verified (user, password) pair is remembered by its
/// SHA-256, so scrapes do not pay for bcrypt each time; failures are never remembered.
/// Unknown users are checked against a dummy hash of the same cost, so they take as long
/// as a wrong password.
pub struct BasicAuth {
    users: HashMap<String, String>,
    dummy: String,
    verified: Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>, problems: &mut Vec<String>) -> Option<BasicAuth> {
        let mut cost = 0;
        let before = problems.len();
        for (user, hash) in &users {
            match hash.parse::<bcrypt::HashParts>() {
                Ok(parts) => cost = cost.max(parts.get_cost()),
                Err(_) => problems.push(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (generate one with htpasswd -nBC 10 {user})"
                )),
            }
            if user.contains(':') {
                problems.push(format!(
                    "basic_auth_users.{user}: a user name may not contain ':'"
                ));
            }
        }
        if problems.len() > before {
            return None;
        }
        let dummy = match bcrypt::hash("dummy password for unknown users", cost.max(4)) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("basic_auth_users: {e}"));
                return None;
            }
        };
        Some(BasicAuth {
            users: users.into_iter().collect(),
            dummy,
            verified: Mutex::new(Default::default()),
        })
    }

    /// Whether an `Authorization` header value grants access. Runs bcrypt on the blocking
    /// pool the first time a credential is seen.
    pub async fn check(self: &Arc<Self>, header: Option<&HeaderValue>) -> bool {
        use base64::Engine as _;
        let Some(encoded) = header.and_then(|h| h.to_str().ok()).and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        }) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        let digest: [u8; 32] = {
            let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        };
        if self.cache().contains(&digest) {
            return true;
        }
        let this = self.clone();
        let (user, password) = (user.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || {
            let (hash, known) = match this.users.get(&user) {
                Some(h) => (h.as_str(), true),
                None => (this.dummy.as_str(), false),
            };
            bcrypt::verify(password, hash).unwrap_or(false) && known
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut cache = self.cache();
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(digest);
        }
        ok
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
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

    #[tokio::test]
    async fn basic_auth_checks_and_caches() {
        use base64::Engine as _;
        // Cost 5, not bcrypt's minimum of 4, so a dummy of a fixed low cost would be caught.
        let hash = bcrypt::hash("right", 5).unwrap();
        let mut p = Vec::new();
        let auth =
            Arc::new(BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)]), &mut p).unwrap());
        let header = |s: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            ))
            .unwrap()
        };
        assert!(auth.check(Some(&header("alice:right"))).await);
        assert_eq!(auth.cache().len(), 1);
        assert!(auth.check(Some(&header("alice:right"))).await);
        assert!(!auth.check(Some(&header("alice:wrong"))).await);
        assert!(!auth.check(Some(&header("bob:right"))).await);
        assert!(!auth.check(Some(&header("alice"))).await);
        assert!(!auth.check(None).await);
        assert!(
            !auth
                .check(Some(&HeaderValue::from_static("Bearer x")))
                .await
        );
        assert_eq!(auth.cache().len(), 1, "failures are not remembered");
        // Unknown users are checked against a hash of the users' cost: same work, same time.
        let dummy: bcrypt::HashParts = auth.dummy.parse().unwrap();
        assert_eq!(dummy.get_cost(), 5);
        let mut p = Vec::new();
        assert!(BasicAuth::new(
            BTreeMap::from([("bob".to_owned(), "plain".to_owned())]),
            &mut p
        )
        .is_none());
        assert!(p[0].starts_with("basic_auth_users.bob: not a bcrypt hash"));
    }
}
