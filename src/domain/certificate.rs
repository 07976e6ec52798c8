//! Certificate authentication (OAuth2 `private_key_jwt`, RFC 7523): a short-lived JWT signed
//! with the app registration's private key stands in for the client secret.
//!
//! The certificate and key are read and checked once, at config load: the key must be an RSA
//! key (PKCS#8 or PKCS#1 PEM) that belongs to the certificate, which is proven by signing a
//! probe and verifying it with the certificate's public key. The key never appears in `Debug`
//! output, errors or logs.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a client assertion is valid.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The `client_assertion_type` of a JWT bearer client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A certificate and its private key, checked to belong together.
#[derive(Clone)]
pub struct ClientCertificate {
    key: EncodingKey,
    /// base64url SHA-1 thumbprint of the certificate's DER (the JWT header's `x5t`).
    thumbprint: String,
    /// Hex SHA-256 fingerprint of the certificate's DER: which certificate the persistence
    /// file was written for (public, like the certificate).
    sha256: String,
    /// The certificate's subject, for `--check-config`.
    subject: String,
    /// End of the certificate's validity.
    not_after: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject)
            .field("x5t", &self.thumbprint)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The claims of a client assertion.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the client id.
    pub iss: String,
    /// Subject: the client id.
    pub sub: String,
    /// Audience: the token URL.
    pub aud: String,
    /// Unique id of this assertion.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before (Unix seconds).
    pub nbf: u64,
    /// Expiry (Unix seconds).
    pub exp: u64,
}

/// Why a certificate and key cannot be used. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The certificate file is not a PEM X.509 certificate.
    #[error("not a PEM certificate: {0}")]
    Certificate(String),
    /// The certificate's key is not RSA.
    #[error("the certificate's public key is not RSA (RS256 needs an RSA key)")]
    NotRsa,
    /// The key file is not an RSA private key in PEM.
    #[error(
        "not an RSA private key in PEM (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")"
    )]
    Key,
    /// The key file holds an encrypted (password-protected) key.
    #[error(
        "the private key is encrypted (\"ENCRYPTED PRIVATE KEY\" or Proc-Type: 4,ENCRYPTED); \
         store it unencrypted with mode 0600, e.g. openssl pkcs8 -in key.pem -out key-plain.pem -nocrypt"
    )]
    Encrypted,
    /// The key cannot sign (for example too short for RS256).
    #[error("the private key cannot sign RS256 ({0})")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The key belongs to another certificate.
    #[error("the private key does not match the certificate")]
    Mismatch,
}

/// Whether a PEM file holds an encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a
/// traditional key with `Proc-Type: 4,ENCRYPTED`).
pub(crate) fn is_encrypted_pem(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
}

impl ClientCertificate {
    /// Parses and checks a PEM certificate and PEM private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertificateError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem)
            .map_err(|e| CertificateError::Certificate(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            return Err(CertificateError::Certificate(format!(
                "found a PEM block {:?} instead of CERTIFICATE",
                pem.label
            )));
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| CertificateError::Certificate(e.to_string()))?;
        let public = match cert.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                // DER integers carry a leading zero byte when the top bit is set; ring refuses it.
                let strip = |b: &[u8]| b[b.iter().take_while(|x| **x == 0).count()..].to_vec();
                DecodingKey::from_rsa_raw_components(&strip(rsa.modulus), &strip(rsa.exponent))
            }
            _ => return Err(CertificateError::NotRsa),
        };
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pem.contents);
        let sha256 = ring::digest::digest(&ring::digest::SHA256, &pem.contents)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if is_encrypted_pem(key_pem) {
            return Err(CertificateError::Encrypted);
        }
        let key = EncodingKey::from_rsa_pem(key_pem).map_err(|_| CertificateError::Key)?;
        let this = ClientCertificate {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            sha256,
            subject: cert.subject().to_string(),
            not_after: cert.validity().not_after.to_string(),
        };
        // Sign a probe with the key and verify it with the certificate's public key.
        let probe = this
            .sign("probe", "https://probe.invalid/token")
            .map_err(CertificateError::Sign)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["https://probe.invalid/token"]);
        jsonwebtoken::decode::<Claims>(&probe, &public, &validation)
            .map_err(|_| CertificateError::Mismatch)?;
        Ok(this)
    }

    /// A signed client assertion for `client_id` at the token endpoint `audience`.
    pub fn sign(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(self.thumbprint.clone());
        let claims = Claims {
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            aud: audience.to_owned(),
            jti: unique_id(),
            iat: now,
            nbf: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// The base64url SHA-1 thumbprint of the certificate (`x5t`).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The hex SHA-256 fingerprint of the certificate (as `openssl x509 -fingerprint
    /// -sha256` shows it, without colons).
    pub fn sha256_fingerprint(&self) -> &str {
        &self.sha256
    }

    /// The certificate's subject and expiry, for `--check-config`.
    pub fn describe(&self) -> String {
        format!(
            "subject {:?}, x5t {}, valid until {}",
            self.subject, self.thumbprint, self.not_after
        )
    }
}

/// 128 random bits from the system's secure generator, as hex: a `jti` that never repeats.
fn unique_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No system randomness: fall back to a fast generator seeded per process.
        bytes = fastrand::u128(..).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh RSA key and a self-signed certificate for `name`, in PEM: (certificate, PKCS#8 key,
/// PKCS#1 key). For tests.
#[cfg(test)]
pub(crate) fn test_identity(name: &str) -> (String, String, String) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
    let pair = rcgen::KeyPair::from_pem(&pkcs8).unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&pair)
        .unwrap()
        .pem();
    (cert, pkcs8, pkcs1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    fn rsa_key() -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap()
    }

    fn certificate(key: &rsa::RsaPrivateKey) -> String {
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let pair = rcgen::KeyPair::from_pem(&pem).unwrap();
        rcgen::CertificateParams::new(vec!["app.example.com".into()])
            .unwrap()
            .self_signed(&pair)
            .unwrap()
            .pem()
    }

    #[test]
    fn signs_assertions_the_certificate_verifies() {
        let key = rsa_key();
        let cert = certificate(&key);
        let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).unwrap();
        for key_pem in [pkcs8.as_bytes(), pkcs1.as_bytes()] {
            let c = ClientCertificate::from_pem(cert.as_bytes(), key_pem).unwrap();
            let jwt = c
                .sign("client-1", "https://id.example.com/connect/token")
                .unwrap();
            let header = jsonwebtoken::decode_header(&jwt).unwrap();
            assert_eq!(header.alg, Algorithm::RS256);
            assert_eq!(header.x5t.as_deref(), Some(c.thumbprint()));
            let (_, der) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
            let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der.contents);
            assert_eq!(c.thumbprint(), URL_SAFE_NO_PAD.encode(sha1));
            let sha256 = ring::digest::digest(&ring::digest::SHA256, &der.contents);
            let hex: String = sha256.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(c.sha256_fingerprint(), hex);
            assert!(!format!("{c:?}").contains("PRIVATE"));
            let a = c.sign("client-1", "aud").unwrap();
            let b = c.sign("client-1", "aud").unwrap();
            let jti = |t: &str| {
                let mut v = Validation::new(Algorithm::RS256);
                v.insecure_disable_signature_validation();
                v.set_audience(&["aud"]);
                jsonwebtoken::decode::<Claims>(t, &DecodingKey::from_secret(b""), &v)
                    .unwrap()
                    .claims
                    .jti
            };
            assert_ne!(jti(&a), jti(&b));
        }
    }

    #[test]
    fn refuses_a_key_of_another_certificate_and_junk() {
        let key = rsa_key();
        let cert = certificate(&key);
        let other = rsa_key().to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(matches!(
            ClientCertificate::from_pem(cert.as_bytes(), other.as_bytes()),
            Err(CertificateError::Mismatch)
        ));
        assert!(matches!(
            ClientCertificate::from_pem(cert.as_bytes(), b"not a key"),
            Err(CertificateError::Key)
        ));
        assert!(matches!(
            ClientCertificate::from_pem(b"junk", other.as_bytes()),
            Err(CertificateError::Certificate(_))
        ));
        // An EC certificate cannot sign RS256.
        let ec = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        assert!(matches!(
            ClientCertificate::from_pem(ec.cert.pem().as_bytes(), other.as_bytes()),
            Err(CertificateError::NotRsa)
        ));
    }
}
