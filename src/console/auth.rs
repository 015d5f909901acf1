//! Who is using the console: password check (Argon2id), sessions, CSRF tokens, and the login
//! rate limit. Sessions live in this process's memory: a restart logs everyone out, which is
//! the safe side, and nothing about a session is ever written to the database or a log.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use secrecy::ExposeSecret;

use crate::config::{ConsoleRole, ConsoleUser};

/// Hash a password as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`, the argon2 crate's
/// defaults: OWASP's minimum for Argon2id).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("Argon2id with default parameters").to_string()
}

/// Does `password` match the PHC `hash`? A malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash.trim()).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password matches, checked for unknown user names so that a wrong name takes as long
/// as a wrong password (the response time does not tell which names exist).
pub static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash_password(&random_token()));

/// 32 random bytes, URL-safe base64: session ids and CSRF tokens.
pub fn random_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Compare secrets by their digests: the time taken says nothing about how much matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: ConsoleRole,
    /// The GSTINs this user may see (None: all).
    pub gstins: Option<Vec<String>>,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    pub expires: Instant,
}

impl Session {
    pub fn for_user(name: &str, u: &ConsoleUser, ttl: Duration) -> Session {
        Session {
            user: name.to_string(),
            role: u.role,
            gstins: (!u.gstins.is_empty()).then(|| u.gstins.iter().map(|g| g.to_ascii_uppercase()).collect()),
            csrf: random_token(),
            expires: Instant::now() + ttl,
        }
    }
    pub fn may_see(&self, gstin: &str) -> bool {
        self.gstins.as_ref().is_none_or(|g| g.iter().any(|x| x == gstin))
    }
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// Start a session; returns its id (the cookie's value).
    pub fn start(&self, s: Session) -> String {
        let id = random_token();
        let mut m = self.0.lock().expect("sessions lock");
        let now = Instant::now();
        m.retain(|_, v| v.expires > now);
        m.insert(id.clone(), s);
        id
    }
    pub fn get(&self, id: &str) -> Option<Session> {
        let m = self.0.lock().expect("sessions lock");
        m.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }
    pub fn end(&self, id: &str) {
        self.0.lock().expect("sessions lock").remove(id);
    }
}

/// Failed logins allowed per window, per user name and per client address.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// Failed login attempts by key (`user:<name>`, `ip:<address>`) within [`FAILURE_WINDOW`].
#[derive(Default)]
pub struct LoginLimiter(Mutex<HashMap<String, Vec<Instant>>>);

impl LoginLimiter {
    /// How long until one of `keys` may try again (None: now). Checked before the password is,
    /// so a guesser gets no answer once over the limit, right or wrong.
    pub fn blocked(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let mut m = self.0.lock().expect("limiter lock");
        m.retain(|_, v| {
            v.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            !v.is_empty()
        });
        keys.iter()
            .filter_map(|k| m.get(k))
            .filter(|v| v.len() >= MAX_FAILURES)
            .map(|v| FAILURE_WINDOW - now.duration_since(v[v.len() - MAX_FAILURES]))
            .max()
    }
    pub fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut m = self.0.lock().expect("limiter lock");
        for k in keys {
            m.entry(k.clone()).or_default().push(now);
        }
    }
    pub fn succeeded(&self, user_key: &str) {
        self.0.lock().expect("limiter lock").remove(user_key);
    }
}

/// The configured user `name` whose password is `password`, checked in constant work whether or
/// not the name exists.
pub fn check_login<'a>(
    users: &'a std::collections::BTreeMap<String, ConsoleUser>,
    name: &str,
    password: &str,
) -> Option<(&'a String, &'a ConsoleUser)> {
    let found = users.get_key_value(&name.trim().to_ascii_lowercase());
    let hash = found.map(|(_, u)| u.password_hash.expose_secret().to_string()).unwrap_or_else(|| DUMMY_HASH.clone());
    let ok = verify_password(password, &hash);
    found.filter(|_| ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_differ() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert_ne!(h, hash_password("correct horse"), "salted");
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn the_limiter_blocks_after_five_failures() {
        let l = LoginLimiter::default();
        let keys = vec!["user:asha".to_string(), "ip:127.0.0.1".to_string()];
        for _ in 0..MAX_FAILURES {
            assert!(l.blocked(&keys).is_none());
            l.failed(&keys);
        }
        assert!(l.blocked(&keys).is_some_and(|d| d <= FAILURE_WINDOW));
        assert!(l.blocked(&["user:ravi".to_string()]).is_none());
    }
}
