//! What lives outside the config file: the process environment, secret files and the
//! client certificate; the `elements` credential keys that point at them, and the
//! `Credential` (a `Secret` that never prints, or the certificate) they yield.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::yaml::{Problems, Section};
use crate::domain::certificate::ClientCertificate;
use crate::files;

/// Environment variable that, when set, supplies the client secret and wins over the file.
pub const SECRET_ENV: &str = "ELEMENTS_CLIENT_SECRET";

/// A string that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it (the token request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the client secret was found; shown by `--check-config` instead of the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `elements.client_secret` in the file.
    Inline,
    /// `elements.client_secret_file`.
    File,
    /// The `ELEMENTS_CLIENT_SECRET` environment variable.
    Environment,
}

/// How the exporter proves who it is to the token endpoint.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A client secret.
    Secret {
        /// The secret.
        secret: Secret,
        /// Where it came from.
        source: SecretSource,
    },
    /// A certificate and its private key (a signed JWT client assertion, private_key_jwt).
    Certificate {
        /// The checked certificate and key.
        certificate: Arc<ClientCertificate>,
        /// `client_certificate_file`, for `--check-config`.
        certificate_file: String,
        /// `client_private_key_file`, for `--check-config`.
        key_file: String,
    },
}

/// The same credential: the same secret (wherever it came from), or the same certificate
/// (by thumbprint) from the same files.
impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Credential::Secret { secret: a, .. }, Credential::Secret { secret: b, .. }) => a == b,
            (
                Credential::Certificate {
                    certificate: a,
                    certificate_file: af,
                    key_file: ak,
                },
                Credential::Certificate {
                    certificate: b,
                    certificate_file: bf,
                    key_file: bk,
                },
            ) => af == bf && ak == bk && a.thumbprint() == b.thumbprint(),
            _ => false,
        }
    }
}

/// Where configuration values that live outside the file come from: the environment and
/// secret files. Tests pass their own instead of touching the process environment.
pub trait Environment {
    /// The value of an environment variable, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The contents of a file.
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
}

/// The real process environment and file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        files::read_regular_file(path, files::MAX_FILE_BYTES)
    }
}

/// The environment of a config file: relative paths in it are relative to its directory (as
/// in Prometheus' own config), not to the working directory.
pub(super) struct RelativeTo<'a> {
    /// The config file's directory.
    pub dir: &'a Path,
    /// Where files are read.
    pub inner: &'a dyn Environment,
}

impl Environment for RelativeTo<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.inner.var(name)
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        if path.is_absolute() {
            return self.inner.read_file(path);
        }
        let resolved = self.dir.join(path);
        self.inner.read_file(&resolved).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{e} (relative to the config file: {})", resolved.display()),
            )
        })
    }
}

/// Exactly one of a secret (from any source) or a certificate with its key.
pub(super) fn parse_credential(
    s: &Section<'_>,
    env: &dyn Environment,
    p: &mut Problems,
) -> Option<Credential> {
    // Every credential key is read before any decision, so each is known to the section.
    let secret_keys: Vec<&str> = ["client_secret", "client_secret_file"]
        .into_iter()
        .filter(|k| s.get(k).is_some())
        .chain(env.var(SECRET_ENV).map(|_| SECRET_ENV))
        .collect();
    let cert = s.string("client_certificate_file", p);
    let key = s.string("client_private_key_file", p);
    let wants_certificate =
        s.get("client_certificate_file").is_some() || s.get("client_private_key_file").is_some();
    if !wants_certificate {
        return parse_secret(s, env, p)
            .map(|(secret, source)| Credential::Secret { secret, source });
    }
    if !secret_keys.is_empty() {
        p.add(
            "elements",
            format!(
                "both a client secret ({}) and a certificate (client_certificate_file, client_private_key_file) are configured; keep exactly one",
                secret_keys.join(", ")
            ),
        );
        return None;
    }
    let read = |key: &str, path: &str, p: &mut Problems| match env.read_file(Path::new(path)) {
        Ok(text) => Some(text),
        Err(e) => {
            p.add(
                &format!("elements.{key}"),
                format!("cannot read {path:?}: {e}"),
            );
            None
        }
    };
    let (cert_file, key_file) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) if s.get("client_private_key_file").is_none() => {
            p.add(
                "elements.client_private_key_file",
                "missing; client_certificate_file needs the certificate's private key (PEM)",
            );
            return None;
        }
        (None, Some(_)) if s.get("client_certificate_file").is_none() => {
            p.add(
                "elements.client_certificate_file",
                "missing; client_private_key_file needs the certificate registered in AvePoint Online Services (PEM)",
            );
            return None;
        }
        _ => return None,
    };
    let cert_pem = read("client_certificate_file", &cert_file, p);
    let key_pem = read("client_private_key_file", &key_file, p);
    let (cert_pem, key_pem) = (cert_pem?, key_pem?);
    match ClientCertificate::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()) {
        Ok(certificate) => Some(Credential::Certificate {
            certificate: Arc::new(certificate),
            certificate_file: cert_file,
            key_file,
        }),
        Err(e) => {
            use crate::domain::certificate::CertificateError as E;
            let (key, message) = match e {
                E::Certificate(_) | E::NotRsa => {
                    ("client_certificate_file", format!("{cert_file:?}: {e}"))
                }
                E::Mismatch => (
                    "client_private_key_file",
                    format!("{key_file:?}: {e} in {cert_file:?}"),
                ),
                E::Key | E::Encrypted | E::Sign(_) => {
                    ("client_private_key_file", format!("{key_file:?}: {e}"))
                }
            };
            p.add(&format!("elements.{key}"), message);
            None
        }
    }
}

fn parse_secret(
    s: &Section<'_>,
    env: &dyn Environment,
    p: &mut Problems,
) -> Option<(Secret, SecretSource)> {
    let inline = s.string("client_secret", p);
    let file = s.string("client_secret_file", p);
    if let Some(value) = env.var(SECRET_ENV) {
        // Trimmed like the file: `$'secret\n'` from a shell or a secret store is `secret`.
        if value.trim().is_empty() {
            p.add(
                "elements",
                format!("the {SECRET_ENV} environment variable is set but empty"),
            );
            return None;
        }
        return Some((Secret::new(value.trim()), SecretSource::Environment));
    }
    match (inline, file) {
        (Some(secret), None) => Some((Secret::new(secret), SecretSource::Inline)),
        (None, Some(path)) => match env.read_file(Path::new(&path)) {
            Ok(text) if !text.trim().is_empty() => {
                Some((Secret::new(text.trim()), SecretSource::File))
            }
            Ok(_) => {
                p.add("elements.client_secret_file", format!("{path:?} is empty"));
                None
            }
            Err(e) => {
                // The commonest case: checking a config before the secret is in place (a
                // systemd credential or a Kubernetes Secret exists only where it runs).
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "; to check the config where the file does not exist yet, give the secret \
                         as {SECRET_ENV}=... (it wins over the file)"
                    )
                } else {
                    String::new()
                };
                p.add(
                    "elements.client_secret_file",
                    format!("cannot read {path:?}: {e}{hint}"),
                );
                None
            }
        },
        (Some(_), Some(_)) => {
            p.add(
                "elements",
                "both client_secret and client_secret_file are set; keep exactly one",
            );
            None
        }
        (None, None) => {
            if s.get("client_secret").is_none() && s.get("client_secret_file").is_none() {
                p.add(
                    "elements",
                    format!(
                        "no credentials; set client_secret_file, client_secret or the {SECRET_ENV} environment variable, or client_certificate_file and client_private_key_file"
                    ),
                );
            }
            None
        }
    }
}
