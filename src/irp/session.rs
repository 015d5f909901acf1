//! IRP sessions (auth token + SEK) cached in Postgres and shared by every worker process.
//!
//! NIC asks clients not to authenticate per transaction ("the API service… may be blocked"),
//! and a second auth from another process can invalidate the first token (1005). So one
//! session per (provider, GSTIN) lives in Postgres; refreshes are single-flight per process
//! (a mutex per key) and across processes (a lease row, see `store::tokens`).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex as AsyncMutex;

use super::{IrpError, IrpProvider};
use crate::store::secrets::SecretBox;
use crate::store::Db;

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
    /// Usable for a new call: not within `margin` of expiry. The margin is capped at half the
    /// token's life so a short-lived (sandbox or simulator) token is not refreshed forever.
    pub fn is_fresh(&self, margin: chrono::Duration, now: DateTime<Utc>) -> bool {
        let life = self.expires_at - self.obtained_at;
        let margin = margin.min(life / 2);
        now < self.expires_at - margin
    }
    fn same_token(&self, other: &Session) -> bool {
        self.token.expose_secret() == other.token.expose_secret()
    }
}

/// The NIC rule: a forced refresh is only honoured in the token's last 10 minutes.
pub const FORCE_REFRESH_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// (provider, GSTIN).
type Key = (String, String);

/// Hands out sessions per (provider, GSTIN), refreshing them at most once at a time.
pub struct SessionManager {
    db: Db,
    sbox: SecretBox,
    margin: chrono::Duration,
    /// How long a refresher may hold the cross-process refresh lease.
    lease_secs: i64,
    memory: Mutex<HashMap<Key, Session>>,
    locks: Mutex<HashMap<Key, Arc<AsyncMutex<()>>>>,
}

impl SessionManager {
    pub fn new(db: Db, sbox: SecretBox, margin_secs: i64) -> SessionManager {
        SessionManager {
            db,
            sbox,
            margin: chrono::Duration::seconds(margin_secs),
            lease_secs: 30,
            memory: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn key_lock(&self, key: &(String, String)) -> Arc<AsyncMutex<()>> {
        self.locks.lock().expect("lock poisoned").entry(key.clone()).or_default().clone()
    }

    fn cached(&self, key: &(String, String)) -> Option<Session> {
        self.memory.lock().expect("lock poisoned").get(key).cloned()
    }

    /// A fresh session for this GSTIN, authenticating only if no process has one.
    pub async fn get(&self, gstin: &str, provider: &dyn IrpProvider) -> Result<Session, IrpError> {
        self.obtain(gstin, provider, None).await
    }

    /// The IRP rejected `stale` (1005): get a session with a different token, authenticating
    /// only if nobody else already replaced it.
    pub async fn replace(&self, gstin: &str, provider: &dyn IrpProvider, stale: &Session) -> Result<Session, IrpError> {
        self.obtain(gstin, provider, Some(stale)).await
    }

    async fn obtain(
        &self,
        gstin: &str,
        provider: &dyn IrpProvider,
        stale: Option<&Session>,
    ) -> Result<Session, IrpError> {
        let key = (provider.kind().as_str().to_string(), gstin.to_string());
        let usable = |s: &Session| s.is_fresh(self.margin, Utc::now()) && stale.is_none_or(|st| !s.same_token(st));
        if let Some(s) = self.cached(&key).filter(usable) {
            return Ok(s);
        }
        let lock = self.key_lock(&key);
        let _guard = lock.lock().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.lease_secs as u64 + 5);
        loop {
            if let Some(s) = self.cached(&key).filter(usable) {
                return Ok(s);
            }
            let (stored, version) = self.db.load_session(&key.0, &key.1, &self.sbox).await.map_err(store_err)?;
            if let Some(s) = stored.clone().filter(usable) {
                self.memory.lock().expect("lock poisoned").insert(key.clone(), s.clone());
                return Ok(s);
            }
            if self.db.begin_refresh(&key.0, &key.1, self.lease_secs, version).await.map_err(store_err)? {
                // Ask for a forced refresh only where NIC honours it: a token still valid but in its last 10 min.
                let now = Utc::now();
                let force =
                    stored.as_ref().is_some_and(|s| s.expires_at > now && s.expires_at - now <= FORCE_REFRESH_WINDOW)
                        || stale.is_some_and(|s| s.expires_at > now && s.expires_at - now <= FORCE_REFRESH_WINDOW);
                match provider.authenticate(force).await {
                    Ok(s) => {
                        self.db.save_session(&key.0, &key.1, &s, &self.sbox).await.map_err(store_err)?;
                        tracing::info!(provider = %key.0, gstin = %key.1, expires_at = %s.expires_at, "IRP session refreshed");
                        self.memory.lock().expect("lock poisoned").insert(key.clone(), s.clone());
                        return Ok(s);
                    }
                    Err(e) => {
                        let _ = self.db.abort_refresh(&key.0, &key.1).await;
                        return Err(e);
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(IrpError::Timeout("waited too long for another worker to refresh the IRP session".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn store_err(e: crate::store::StoreError) -> IrpError {
    // A database failure while fetching a token is transient from the job's point of view.
    IrpError::Connect(format!("token store unavailable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_caps_margin_for_short_tokens() {
        let now = Utc::now();
        let s = Session {
            token: SecretString::from("t".to_string()),
            sek: None,
            expires_at: now + chrono::Duration::seconds(4),
            obtained_at: now,
        };
        // A 10-minute margin on a 4-second token would make it stale at birth.
        assert!(s.is_fresh(chrono::Duration::minutes(10), now));
        assert!(!s.is_fresh(chrono::Duration::minutes(10), now + chrono::Duration::seconds(3)));
        assert!(!format!("{s:?}").contains("\"t\""));
    }
}
