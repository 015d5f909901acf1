//! IRP sessions (auth token + SEK) cached in Postgres and shared by every worker process.
//!
//! NIC asks clients not to authenticate per transaction ("the API service… may be blocked"),
//! and a second auth from another process can invalidate the first token (1005). So one
//! session per (provider, GSTIN) lives in Postgres; refreshes are single-flight per process
//! (a mutex per key) and across processes (a lease row, see `store::tokens`).
//!
//! One auth call per token life: NIC returns the same token to every auth call until its last
//! 10 minutes, so a renewal is asked for once, inside that window; if it still returns the same
//! token, the row says so (`renew_after`) and nobody asks again before the token expires. The
//! life is measured from the token's first issue, never from a re-issue.
use crate::domain::outcome::Operation;
use crate::telemetry::metrics as m;
use crate::telemetry::usage::{CallOutcome, UsageMeter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex as AsyncMutex;

use super::{IrpError, IrpProvider};

/// The 32-byte session encryption key NIC hands out with a token. Never printed.
#[derive(Clone, PartialEq)]
pub struct Sek([u8; 32]);

impl Sek {
    pub fn new(b: [u8; 32]) -> Sek {
        Sek(b)
    }
    pub fn from_slice(b: &[u8]) -> Option<Sek> {
        b.try_into().ok().map(Sek)
    }
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Sek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sek([redacted])")
    }
}

/// An authenticated session. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: SecretString,
    pub sek: Option<Sek>,
    pub expires_at: DateTime<Utc>,
    pub obtained_at: DateTime<Utc>,
}

impl Session {
    /// The same token string (the IRP re-issues a live token instead of a new one).
    pub fn same_token(&self, other: &Session) -> bool {
        self.token.expose_secret() == other.token.expose_secret()
    }
}

/// The NIC rule: a forced refresh is only honoured in the token's last 10 minutes; before that,
/// every auth call returns the same token.
pub const FORCE_REFRESH_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// What this process knows about a key's current token.
#[derive(Clone, Debug)]
struct Held {
    session: Session,
    /// The token row's version (refresh count) it was read or written at.
    version: i64,
    /// Set when a renewal returned this same token: nobody asks again before this time.
    renew_after: Option<DateTime<Utc>>,
}

impl Held {
    /// How long before expiry to renew: the configured margin, capped at half the token's life
    /// (so a short sandbox or simulator token is not renewed forever) and at the IRP's 10-minute
    /// window (a renewal asked for earlier only gets the same token back). The life is measured
    /// from the token's first issue, so a renewal that returns the same token does not shrink it.
    fn window(&self, margin: chrono::Duration) -> chrono::Duration {
        let life = self.session.expires_at - self.session.obtained_at;
        margin.min(life / 2).min(FORCE_REFRESH_WINDOW).max(chrono::Duration::zero())
    }

    /// The IRP accepts this token as far as we know: before its expiry, or within the grace the
    /// IRP gave it by handing it out again (its clock may lag ours).
    fn valid(&self, now: DateTime<Utc>) -> bool {
        now < self.session.expires_at || self.renew_after.is_some_and(|t| now < t)
    }

    /// Time to ask the IRP for the next token (once per token: see `renew_after`).
    fn renewal_due(&self, margin: chrono::Duration, now: DateTime<Utc>) -> bool {
        now >= self.session.expires_at - self.window(margin) && self.renew_after.is_none_or(|t| now >= t)
    }
}

/// After the IRP re-issued the same token, how long past `now` it is trusted at least
/// (a twentieth of its life, 1 s to 60 s): bounds auth calls when the IRP's clock lags ours.
fn reissue_grace(life: chrono::Duration) -> chrono::Duration {
    (life / 20).clamp(chrono::Duration::seconds(1), chrono::Duration::seconds(60))
}

/// (session key, GSTIN).
type Key = (String, String);

/// What the shared session store holds for one (session key, GSTIN).
#[derive(Debug, Default)]
pub struct StoredSession {
    /// `None` when absent, or when it no longer decrypts (`unreadable`).
    pub session: Option<Session>,
    /// The row's refresh count: `begin_refresh` checks it so nobody refreshes a token someone
    /// just replaced, and a worker told "invalid token" knows a newer one from an older one.
    pub version: i64,
    /// Don't ask the IRP for a new token before this (a renewal returned the same token).
    pub renew_after: Option<DateTime<Utc>>,
    /// A token is stored but cannot be read (the key that encrypted it was replaced).
    pub unreadable: bool,
}

/// The port through which sessions are shared between processes. The IRP module owns it; the
/// store implements it (in Postgres, encrypted at rest), so this module never imports the store.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    async fn load(&self, key: &str, gstin: &str) -> Result<StoredSession, String>;
    /// Take the cross-process refresh lease if the row is still at `seen_version`.
    async fn begin_refresh(&self, key: &str, gstin: &str, lease_secs: i64, seen_version: i64) -> Result<bool, String>;
    /// Store a new session (releasing the lease); returns its version.
    async fn save(
        &self,
        key: &str,
        gstin: &str,
        s: &Session,
        renew_after: Option<DateTime<Utc>>,
    ) -> Result<i64, String>;
    async fn abort_refresh(&self, key: &str, gstin: &str) -> Result<(), String>;
}

/// Hands out sessions per (provider, GSTIN), refreshing them at most once at a time.
pub struct SessionManager {
    db: Arc<dyn SessionStore>,
    margin: chrono::Duration,
    /// How long a refresher may hold the cross-process refresh lease.
    lease_secs: i64,
    memory: Mutex<HashMap<Key, Held>>,
    locks: Mutex<HashMap<Key, Arc<AsyncMutex<()>>>>,
    /// Where auth calls are counted (API consumption: GSPs bill them too).
    usage: Arc<UsageMeter>,
    /// Which GSTINs' token metrics have series of their own (`metrics_per_gstin`).
    per_gstin: crate::config::MetricsPerGstin,
}

impl SessionManager {
    pub fn new(db: Arc<dyn SessionStore>, margin_secs: i64) -> SessionManager {
        SessionManager {
            db,
            margin: chrono::Duration::seconds(margin_secs),
            lease_secs: 30,
            memory: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            usage: Arc::default(),
            per_gstin: Default::default(),
        }
    }

    /// Count this manager's auth calls in `usage` (the worker's meter) instead of its own.
    pub fn with_usage(mut self, usage: Arc<UsageMeter>) -> SessionManager {
        self.usage = usage;
        self
    }

    /// Count token refreshes and auth failures per GSTIN for the GSTINs `per_gstin` names.
    pub fn with_metrics(mut self, per_gstin: crate::config::MetricsPerGstin) -> SessionManager {
        self.per_gstin = per_gstin;
        self
    }

    /// Forget this process's sessions of the GSTIN (its credentials changed): the next call
    /// reads the store again, and authenticates with the new credentials if nobody has yet.
    pub fn forget(&self, gstin: &str) {
        self.memory.lock().expect("lock poisoned").retain(|(_, g), _| !g.eq_ignore_ascii_case(gstin));
    }

    fn key_lock(&self, key: &Key) -> Arc<AsyncMutex<()>> {
        self.locks.lock().expect("lock poisoned").entry(key.clone()).or_default().clone()
    }

    fn cached(&self, key: &Key) -> Option<Held> {
        self.memory.lock().expect("lock poisoned").get(key).cloned()
    }

    /// Keep `h` unless this process already knows a newer version.
    fn remember(&self, key: &Key, h: Held) {
        let mut m = self.memory.lock().expect("lock poisoned");
        if m.get(key).is_none_or(|old| old.version <= h.version) {
            m.insert(key.clone(), h);
        }
    }

    /// A usable session for this GSTIN, authenticating only if no process has one, or once per
    /// token when it enters its renewal window.
    pub async fn get(&self, gstin: &str, provider: &dyn IrpProvider) -> Result<Session, IrpError> {
        self.obtain(gstin, provider, None).await
    }

    /// The IRP refused `stale` (1005): a session with a different token that is newer than the
    /// refused one (another worker's refresh since this process got `stale`), or else a token
    /// from a new auth call. The stored token is never trusted just for being different: it may
    /// be as dead as ours (a process can hold an older token in memory than the one in Postgres).
    pub async fn replace(&self, gstin: &str, provider: &dyn IrpProvider, stale: &Session) -> Result<Session, IrpError> {
        self.obtain(gstin, provider, Some(stale)).await
    }

    async fn obtain(
        &self,
        gstin: &str,
        provider: &dyn IrpProvider,
        stale: Option<&Session>,
    ) -> Result<Session, IrpError> {
        let key = (provider.session_key(), gstin.to_string());
        // The refused token's version as this process knows it; `None` when memory already moved on.
        let seen = stale.and_then(|st| self.cached(&key).filter(|h| h.session.same_token(st)).map(|h| h.version));
        let acceptable = |h: &Held, now: DateTime<Utc>| match stale {
            None => h.valid(now) && !h.renewal_due(self.margin, now),
            Some(st) => h.valid(now) && !h.session.same_token(st) && seen.is_none_or(|v| h.version > v),
        };
        if let Some(h) = self.cached(&key).filter(|h| acceptable(h, Utc::now())) {
            return Ok(h.session);
        }
        let lock = self.key_lock(&key);
        let _guard = lock.lock().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.lease_secs as u64 + 5);
        loop {
            let now = Utc::now();
            if let Some(h) = self.cached(&key).filter(|h| acceptable(h, now)) {
                return Ok(h.session);
            }
            let stored = self.db.load(&key.0, &key.1).await.map_err(store_err)?;
            let held = stored.session.map(|session| Held {
                session,
                version: stored.version,
                renew_after: stored.renew_after,
            });
            if let Some(h) = &held {
                self.remember(&key, h.clone());
                if acceptable(h, now) {
                    return Ok(h.session.clone());
                }
            }
            if self.db.begin_refresh(&key.0, &key.1, self.lease_secs, stored.version).await.map_err(store_err)? {
                if stored.unreadable {
                    tracing::warn!(provider = %key.0, gstin = %key.1, "the stored IRP session does not decrypt with any configured EINVOICE_TOKEN_KEY (was the key replaced?); re-authenticating");
                }
                return self.refresh(&key, provider, held.as_ref(), stale).await;
            }
            // Another worker is refreshing. A renewal is not urgent: use the current token meanwhile.
            if let Some(h) = held.filter(|h| stale.is_none() && h.valid(now)) {
                return Ok(h.session);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(IrpError::Timeout("waited too long for another worker to refresh the IRP session".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Authenticate (this process holds the refresh lease) and store the result.
    async fn refresh(
        &self,
        key: &Key,
        provider: &dyn IrpProvider,
        held: Option<&Held>,
        stale: Option<&Session>,
    ) -> Result<Session, IrpError> {
        let now = Utc::now();
        // Ask for a forced refresh only where NIC honours it: a token still valid but in its last 10 min.
        let in_force_window = |s: &Session| s.expires_at > now && s.expires_at - now <= FORCE_REFRESH_WINDOW;
        let force = held.is_some_and(|h| in_force_window(&h.session)) || stale.is_some_and(in_force_window);
        let started = std::time::Instant::now();
        let result = provider.authenticate(force).await;
        let irp = provider.irp();
        self.usage.record(&key.1, irp, Operation::Auth, CallOutcome::of(&result));
        metrics::histogram!(m::IRP_CALL_DURATION, "irp" => irp.to_ascii_lowercase(), "operation" => "auth")
            .record(started.elapsed().as_secs_f64());
        let mut s = match result {
            Ok(s) => {
                m::gstin_counter(&self.per_gstin, m::TOKEN_REFRESHES, &key.1).increment(1);
                s
            }
            Err(e) => {
                m::gstin_counter(&self.per_gstin, m::AUTH_FAILURES, &key.1).increment(1);
                tracing::warn!(irp, gstin = %key.1, error = %e, latency_ms = started.elapsed().as_millis() as u64, "IRP authentication failed");
                let _ = self.db.abort_refresh(&key.0, &key.1).await;
                return Err(e);
            }
        };
        // The same token again (the IRP issues a new one only in a token's last minutes): keep its
        // life measured from its first issue and ask no more before it expires, so one token costs
        // one auth call and not a storm of them as its expiry approaches.
        let previous = held.map(|h| &h.session).into_iter().chain(stale).find(|p| p.same_token(&s));
        if let Some(p) = previous {
            s.obtained_at = p.obtained_at.min(s.obtained_at);
        }
        // Only a re-issue inside the renewal window says "no new token before expiry"; one after a
        // 1005 earlier in the token's life leaves the renewal to come as it was.
        let in_window = Held { session: s.clone(), version: 0, renew_after: None }.renewal_due(self.margin, now);
        let renew_after = (previous.is_some() && in_window).then(|| {
            // `TokenExpiry` is given to the second: the IRP may still hold the token that long after it.
            (s.expires_at + chrono::Duration::seconds(1)).max(now + reissue_grace(s.expires_at - s.obtained_at))
        });
        let version = self.db.save(&key.0, &key.1, &s, renew_after).await.map_err(store_err)?;
        if renew_after.is_some() {
            tracing::info!(provider = %key.0, gstin = %key.1, expires_at = %s.expires_at, "the IRP re-issued the current token; keeping it until it expires");
        } else {
            tracing::info!(provider = %key.0, gstin = %key.1, expires_at = %s.expires_at, "IRP session refreshed");
        }
        self.remember(key, Held { session: s.clone(), version, renew_after });
        Ok(s)
    }
}

fn store_err(e: String) -> IrpError {
    // A database failure while fetching a token is transient from the job's point of view.
    IrpError::Connect(format!("token store unavailable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(life_secs: i64, renew_after: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Held {
        Held {
            session: Session {
                token: SecretString::from("t".to_string()),
                sek: None,
                expires_at: now + chrono::Duration::seconds(life_secs),
                obtained_at: now,
            },
            version: 1,
            renew_after,
        }
    }

    #[test]
    fn renewal_window_is_capped_by_life_and_the_irp_window() {
        let now = Utc::now();
        let m10 = chrono::Duration::minutes(10);
        // A 10-minute margin on a 4-second token would make it due at birth.
        let h = held(4, None, now);
        assert!(!h.renewal_due(m10, now));
        assert!(h.renewal_due(m10, now + chrono::Duration::seconds(3)));
        // A 30-minute margin on a 6-hour token: renewing before the IRP's last 10 minutes is useless.
        let h = held(6 * 3600, None, now);
        let m30 = chrono::Duration::minutes(30);
        assert!(!h.renewal_due(m30, h.session.expires_at - chrono::Duration::minutes(11)));
        assert!(h.renewal_due(m30, h.session.expires_at - chrono::Duration::minutes(9)));
        assert!(!format!("{:?}", h.session).contains("\"t\""));
    }

    #[test]
    fn a_reissued_token_is_not_renewed_again_before_it_expires() {
        let now = Utc::now();
        let m10 = chrono::Duration::minutes(10);
        let h = held(20, Some(now + chrono::Duration::seconds(20)), now);
        let late = now + chrono::Duration::seconds(19);
        assert!(!h.renewal_due(m10, late) && h.valid(late));
        let after = now + chrono::Duration::seconds(20);
        assert!(h.renewal_due(m10, after) && !h.valid(after));
        // Re-issued after our clock says it expired: trusted for the grace, then asked for again.
        let g = held(20, Some(now + chrono::Duration::seconds(22)), now);
        assert!(
            g.valid(now + chrono::Duration::seconds(21)) && !g.renewal_due(m10, now + chrono::Duration::seconds(21))
        );
        assert_eq!(reissue_grace(chrono::Duration::hours(6)), chrono::Duration::seconds(60));
        assert_eq!(reissue_grace(chrono::Duration::seconds(4)), chrono::Duration::seconds(1));
    }
}
