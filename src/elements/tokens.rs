//! OAuth2 client-credentials tokens for the Elements API, cached until shortly before they
//! expire, fetched by one request at a time however many callers wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Credential;
use crate::domain::certificate::ASSERTION_TYPE;
use crate::elements::slots::Priority;
use crate::elements::transport::{Endpoint, Prepared, Transport, TransportError};

/// How long a failed token request answers for every caller before one asks again: a token
/// endpoint that is down sees one request (with its retries) per few seconds, not one per target.
pub const FAILURE_HOLD: Duration = Duration::from_secs(5);

/// Lifetime assumed when the token response has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token request itself failed.
    #[error("token request failed: {0}")]
    Transport(#[from] TransportError),
    /// The token endpoint refused the credentials (400 `invalid_client`, 401, ...).
    #[error(
        "token endpoint refused client_id {client_id:?} ({detail}); check client_id, the client secret or certificate, and the scope"
    )]
    Refused {
        /// The client id sent (never the secret).
        client_id: String,
        /// Status, OAuth2 error code and description or the start of the body.
        detail: String,
    },
    /// No client assertion could be signed with the certificate's key.
    #[error("cannot sign the client assertion: {0}")]
    Assertion(#[source] Arc<jsonwebtoken::errors::Error>),
    /// The token endpoint's answer is not a token.
    #[error("token endpoint answered something that is not a token ({0})")]
    Parse(String),
}

/// The parts of the token response we use.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The parts of an OAuth2 error response (RFC 6749 §5.2) we log.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// An access token and when it is due for refresh.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer token.
    pub value: Arc<str>,
    /// From this instant on the token is not sent any more; a new one is fetched.
    pub refresh_at: Instant,
}

#[derive(Default)]
struct Cache {
    token: Option<Token>,
    /// The last failed fetch: its number, when it ended and its error, shared with everyone
    /// who waited for it or came within [`FAILURE_HOLD`].
    failure: Option<(u64, Instant, AuthError)>,
}

/// Client credentials and the cached token.
pub struct TokenSource {
    transport: Arc<Transport>,
    token_url: Url,
    client_id: String,
    credential: Credential,
    scope: String,
    cache: Mutex<Cache>,
    /// Fetches finished so far (numbers the failures).
    fetches: AtomicU64,
}

impl TokenSource {
    /// A token source for one app registration.
    pub fn new(
        transport: Arc<Transport>,
        token_url: Url,
        client_id: String,
        credential: Credential,
        scope: String,
    ) -> Self {
        TokenSource {
            transport,
            token_url,
            client_id,
            credential,
            scope,
            cache: Mutex::new(Cache::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// Who asks for tokens, without any secret: the client id at its token service, and the
    /// certificate's thumbprint when it signs assertions (a new certificate may be another
    /// client's).
    pub fn client_identity(&self) -> String {
        match &self.credential {
            Credential::Certificate { certificate, .. } => format!(
                "{} of {} (certificate x5t {})",
                self.client_id,
                self.token_url,
                certificate.thumbprint()
            ),
            Credential::Secret { .. } => format!("{} of {}", self.client_id, self.token_url),
        }
    }

    /// A valid access token: the cached one, or a new one. Callers that arrive while a token
    /// is being fetched wait for that request instead of sending their own, and share its
    /// failure too, as do callers within [`FAILURE_HOLD`] of it. The fetch they share waits
    /// at most [`crate::elements::transport::TOKEN_MAX_WAIT`] between attempts, whatever `Retry-After` says.
    pub async fn token(&self) -> Result<Token, AuthError> {
        let seen = self.fetches.load(Ordering::SeqCst);
        let mut cache = self.cache.lock().await;
        if let Some(token) = &cache.token {
            if Instant::now() < token.refresh_at {
                return Ok(token.clone());
            }
        }
        if let Some((number, at, error)) = &cache.failure {
            if *number > seen || at.elapsed() < FAILURE_HOLD {
                return Err(error.clone());
            }
        }
        let result = self.fetch().await;
        let number = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        match result {
            Ok(token) => {
                cache.token = Some(token.clone());
                cache.failure = None;
                Ok(token)
            }
            Err(error) => {
                cache.token = None;
                cache.failure = Some((number, Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Forgets `rejected` (a token the API answered 401 to), unless it was already replaced.
    pub async fn invalidate(&self, rejected: &str) {
        let mut cache = self.cache.lock().await;
        if cache.token.as_ref().is_some_and(|t| &*t.value == rejected) {
            cache.token = None;
        }
    }

    async fn fetch(&self) -> Result<Token, AuthError> {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match &self.credential {
            Credential::Secret { secret, .. } => {
                form.push(("client_secret", secret.expose().to_owned()));
            }
            Credential::Certificate { certificate, .. } => {
                let assertion = certificate
                    .sign(&self.client_id, self.token_url.as_str())
                    .map_err(|e| AuthError::Assertion(Arc::new(e)))?;
                form.push(("client_assertion_type", ASSERTION_TYPE.to_owned()));
                form.push(("client_assertion", assertion));
            }
        }
        let (resp, ()) = self
            .transport
            .send(Endpoint::Token, Priority::URGENT, None, |c| {
                let request = c
                    .post(self.token_url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form);
                async move { Ok::<_, AuthError>(Prepared::plain(request)) }
            })
            .await?;
        if !resp.status.is_success() {
            let detail = match serde_json::from_slice::<OAuthError>(&resp.body) {
                Ok(e) => format!(
                    "status {}, error {:?}{}",
                    resp.status.as_u16(),
                    e.error,
                    e.error_description
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
                Err(_) => resp.describe(),
            };
            return Err(AuthError::Refused {
                client_id: self.client_id.clone(),
                // A server that echoes the request must not make us log the secret (in any
                // encoding) or the signed assertion (a JWT): the transport's redactor.
                detail: resp.redact(&detail),
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&resp.body)
            .map_err(|e| AuthError::Parse(format!("{e}; {}", resp.describe_without_body())))?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::Parse("empty access_token".into()));
        }
        // It goes into an Authorization header: visible ASCII only (RFC 6750's b64token is
        // narrower still), so a CR/LF cannot reach a request.
        if !parsed.access_token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::Parse(
                "access_token holds characters not allowed in an HTTP header".into(),
            ));
        }
        // Known from now on: an echo of it is cut, with or without `Bearer ` in front.
        self.transport
            .redactor()
            .remember_token(&parsed.access_token);
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        Ok(Token {
            value: parsed.access_token.into(),
            refresh_at: deadline_after(Instant::now(), refresh_after(lifetime)),
        })
    }
}

/// `now + wait`, or a century from now when that overflows (an `expires_in` of 2^63 seconds
/// means "never" for our purposes, not a panic).
fn deadline_after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// How long a token is used before a new one is fetched: its lifetime less a margin of a
/// minute, or of half the lifetime for short-lived tokens.
pub fn refresh_after(lifetime: Duration) -> Duration {
    let margin = Duration::from_secs(60).min(lifetime / 2);
    lifetime - margin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn absurd_lifetimes_do_not_overflow() {
        let now = Instant::now();
        let far = deadline_after(now, refresh_after(Duration::from_secs(u64::MAX)));
        assert!(far > now + Duration::from_secs(50 * 365 * 86_400));
        assert_eq!(
            deadline_after(now, Duration::from_secs(60)),
            now + Duration::from_secs(60)
        );
    }
}
