//! Basic auth of the web config's `basic_auth_users`: bcrypt hashes, verified pairs cached.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hyper::header::HeaderValue;

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
    pub(super) fn new(
        users: BTreeMap<String, String>,
        problems: &mut Vec<String>,
    ) -> Option<BasicAuth> {
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
