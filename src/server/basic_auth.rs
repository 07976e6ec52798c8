//! Basic auth of the web config's `basic_auth_users`: bcrypt hashes, verified pairs cached.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hyper::header::HeaderValue;

/// Most verified credentials remembered; the cache is emptied when full.
const CACHE_LIMIT: usize = 256;

/// The highest bcrypt cost accepted: each step doubles the work of every check (cost 14 is
/// about 1 s of one core; 31 would be days). htpasswd's default is 5, Prometheus suggests 10.
pub const MAX_COST: u32 = 14;

/// Password checks (bcrypt) run at once at most; further unauthenticated attempts are
/// refused at once instead of queueing, so that wrong passwords cannot take every core.
/// A scraper whose credentials were verified before is answered from the cache.
fn max_checks() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// Basic auth against bcrypt hashes. A verified (user, password) pair is remembered by its
/// SHA-256, so scrapes do not pay for bcrypt each time; failures are never remembered.
/// Unknown users are checked against a dummy hash of the same cost, so they take as long
/// as a wrong password.
pub struct BasicAuth {
    users: HashMap<String, String>,
    dummy: String,
    verified: Mutex<std::collections::HashSet<[u8; 32]>>,
    /// Bounds the bcrypt checks in flight (see [`max_checks`]).
    checks: Arc<tokio::sync::Semaphore>,
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
                Ok(parts) if parts.get_cost() > MAX_COST => problems.push(format!(
                    "basic_auth_users.{user}: bcrypt cost {} is too high (at most {MAX_COST}: \
                     every check would take {}); generate the hash with htpasswd -nBC 10 {user}",
                    parts.get_cost(),
                    if parts.get_cost() >= 20 { "minutes or more" } else { "seconds" }
                )),
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
            checks: Arc::new(tokio::sync::Semaphore::new(max_checks())),
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
        // Every check slot busy: refused now rather than queued behind wrong passwords.
        let Ok(permit) = self.checks.clone().try_acquire_owned() else {
            return false;
        };
        let this = self.clone();
        let (user, password) = (user.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
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

    #[tokio::test]
    async fn password_checks_beyond_the_bound_are_refused_not_queued() {
        use base64::Engine as _;
        let hash = bcrypt::hash("right", 4).unwrap();
        let mut p = Vec::new();
        let auth =
            Arc::new(BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)]), &mut p).unwrap());
        let header = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:right")
        ))
        .unwrap();
        // Every check slot taken (by floods of wrong passwords): refused at once.
        let all = auth.checks.available_permits() as u32;
        assert!(all >= 1);
        let held = auth.checks.clone().acquire_many_owned(all).await.unwrap();
        assert!(!auth.check(Some(&header)).await);
        // A slot free again: checked, and then remembered.
        drop(held);
        assert!(auth.check(Some(&header)).await);
        let held = auth.checks.clone().acquire_many_owned(all).await.unwrap();
        assert!(
            auth.check(Some(&header)).await,
            "a verified scraper is answered from the cache"
        );
        drop(held);
    }

    #[test]
    fn absurd_costs_are_refused() {
        let hash = bcrypt::hash("pw", 4).unwrap().replacen("$04$", "$15$", 1);
        let mut p = Vec::new();
        assert!(BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)]), &mut p).is_none());
        assert!(p[0].contains("bcrypt cost 15 is too high"), "{p:?}");
    }
}
