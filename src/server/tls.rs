//! TLS for the endpoint from the web config's `tls_server_config`: certificates (inline or
//! files), versions, ALPN and the client certificate policies, with rustls.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// The web config's `tls_server_config` section as written, before it is checked: what
/// [`tls`] builds the endpoint's TLS from. Every key exporter-toolkit knows is here, so that
/// one this exporter does not implement is refused by name rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
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

/// The client certificate policies of exporter-toolkit (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
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
    /// Each policy by its Go name, as `client_auth_type` spells it.
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
            // As the main config's files: a regular file, capped, never a FIFO or device.
            match crate::files::read_regular_file(&path, crate::files::MAX_FILE_BYTES) {
                Ok(text) => Some((key, text.into_bytes())),
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

pub(super) fn tls(t: RawTls, dir: &Path, http2: bool, problems: &mut Vec<String>) -> Option<Tls> {
    let before = problems.len();
    refuse_unsupported(&t, problems);
    let versions = versions(&t, problems);
    let client_auth = client_auth(&t, problems);
    let certs = certificate_chain(
        pem_source(t.cert, t.cert_file, "cert", dir, true, problems),
        problems,
    );
    let private_key = private_key(
        pem_source(t.key, t.key_file, "key", dir, true, problems),
        problems,
    );
    // Given but unusable is said once, by pem_source: not also "missing".
    let ca_given = t.client_ca.is_some() || t.client_ca_file.is_some();
    let ca = pem_source(
        t.client_ca,
        t.client_ca_file,
        "client_ca",
        dir,
        false,
        problems,
    );
    let roots = client_roots(ca, client_auth, ca_given, problems);
    if problems.len() > before {
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = verifier(client_auth?, roots, &provider, problems)?;
    let builder = match rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions?)
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
        allowed_sans: t.client_allowed_sans.unwrap_or_default(),
    })
}

/// Go's cipher suite and curve settings have no rustls equivalent: refused, never ignored.
fn refuse_unsupported(t: &RawTls, problems: &mut Vec<String>) {
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
}

/// The protocol versions between `min_version` and `max_version` (TLS 1.2 and 1.3 by default).
fn versions(
    t: &RawTls,
    problems: &mut Vec<String>,
) -> Option<Vec<&'static rustls::SupportedProtocolVersion>> {
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
    match (min?, max?) {
        (min, max) if min > max => {
            problems.push("tls_server_config: min_version is above max_version".into());
            None
        }
        (min, max) => Some(
            [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
                .into_iter()
                .filter(|(v, _)| (min..=max).contains(v))
                .map(|(_, p)| p)
                .collect(),
        ),
    }
}

/// `client_auth_type`, by its Go name.
fn client_auth(t: &RawTls, problems: &mut Vec<String>) -> Option<ClientAuth> {
    let Some(name) = t.client_auth_type.as_deref() else {
        return Some(ClientAuth::NoClientCert);
    };
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

/// The server's certificate chain from its PEM (`key` names the setting for messages).
fn certificate_chain(
    source: Option<(String, Vec<u8>)>,
    problems: &mut Vec<String>,
) -> Option<Vec<CertificateDer<'static>>> {
    let (key, pem) = source?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Some(c),
        _ => {
            problems.push(format!("{key}: no PEM certificate found"));
            None
        }
    }
}

/// The server's private key from its PEM.
fn private_key(
    source: Option<(String, Vec<u8>)>,
    problems: &mut Vec<String>,
) -> Option<PrivateKeyDer<'static>> {
    let (key, pem) = source?;
    if crate::domain::certificate::is_encrypted_pem(&pem) {
        problems.push(format!(
            "{key}: the private key is encrypted (password-protected); the server needs it \
             unencrypted, readable only by the exporter's user"
        ));
        return None;
    }
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => Some(k),
        Err(_) => {
            problems.push(format!(
                "{key}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)"
            ));
            None
        }
    }
}

/// The CAs client certificates are verified against; required by the verifying policies.
fn client_roots(
    ca: Option<(String, Vec<u8>)>,
    client_auth: Option<ClientAuth>,
    given: bool,
    problems: &mut Vec<String>,
) -> Option<Arc<rustls::RootCertStore>> {
    let Some((key, pem)) = ca else {
        if !given
            && matches!(
                client_auth,
                Some(ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert)
            )
        {
            problems.push(
                "tls_server_config.client_ca_file: missing; needed to verify client certificates"
                    .into(),
            );
        }
        return None;
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&pem) {
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

/// The client certificate verifier of a policy.
fn verifier(
    client_auth: ClientAuth,
    roots: Option<Arc<rustls::RootCertStore>>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    problems: &mut Vec<String>,
) -> Option<Arc<dyn ClientCertVerifier>> {
    let verifying = |roots, optional: bool, problems: &mut Vec<String>| {
        let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        let built = if optional {
            builder.allow_unauthenticated().build()
        } else {
            builder.build()
        };
        match built {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("tls_server_config.client_ca_file: {e}"));
                None
            }
        }
    };
    match (client_auth, roots) {
        (ClientAuth::NoClientCert, _) => Some(WebPkiClientVerifier::no_client_auth()),
        (ClientAuth::RequestClientCert, _) => Some(Arc::new(AnyClientCert::new(false, provider))),
        (ClientAuth::RequireAnyClientCert, _) => Some(Arc::new(AnyClientCert::new(true, provider))),
        (ClientAuth::VerifyClientCertIfGiven, Some(roots)) => verifying(roots, true, problems),
        (ClientAuth::RequireAndVerifyClientCert, Some(roots)) => verifying(roots, false, problems),
        (_, None) => None,
    }
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
