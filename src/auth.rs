//! OAuth2 client-credentials tokens for the Elements API, cached until shortly before they
//! expire, fetched by one request at a time however many callers wait.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Secret;
use crate::transport::{Endpoint, Transport, TransportError};

/// Lifetime assumed when the token response has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token request itself failed.
    #[error("token request failed: {0}")]
    Transport(#[from] TransportError),
    /// The token endpoint answered with an error status.
    #[error(
        "token endpoint refused the credentials ({0}); check client_id, the secret and the scope"
    )]
    Refused(String),
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

struct CachedToken {
    value: Arc<str>,
    refresh_at: Instant,
}

/// Client credentials and the cached token.
pub struct TokenSource {
    transport: Arc<Transport>,
    token_url: Url,
    client_id: String,
    secret: Secret,
    scope: String,
    cache: Mutex<Option<CachedToken>>,
}

impl TokenSource {
    /// A token source for one app registration.
    pub fn new(
        transport: Arc<Transport>,
        token_url: Url,
        client_id: String,
        secret: Secret,
        scope: String,
    ) -> Self {
        TokenSource {
            transport,
            token_url,
            client_id,
            secret,
            scope,
            cache: Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one. Callers that arrive while a token
    /// is being fetched wait for that request instead of sending their own.
    pub async fn token(&self) -> Result<Arc<str>, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.as_ref() {
            if Instant::now() < token.refresh_at {
                return Ok(token.value.clone());
            }
        }
        let fresh = self.fetch().await?;
        let value = fresh.value.clone();
        *cache = Some(fresh);
        Ok(value)
    }

    /// Forgets `rejected` (a token the API answered 401 to), unless it was already replaced.
    pub async fn invalidate(&self, rejected: &str) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|t| &*t.value == rejected) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", self.scope.as_str()),
        ];
        let resp = self
            .transport
            .send(Endpoint::Token, |c| {
                c.post(self.token_url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form)
            })
            .await?;
        if !resp.status.is_success() {
            return Err(AuthError::Refused(resp.describe()));
        }
        let parsed: TokenResponse = serde_json::from_slice(&resp.body)
            .map_err(|e| AuthError::Parse(format!("{e}; {}", resp.describe_without_body())))?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::Parse("empty access_token".into()));
        }
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        Ok(CachedToken {
            value: parsed.access_token.into(),
            refresh_at: Instant::now() + refresh_after(lifetime),
        })
    }
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
}
