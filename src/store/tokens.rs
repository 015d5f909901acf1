//! Shared IRP sessions: one row per (provider, GSTIN), encrypted at rest.
//!
//! Refresh is single-flight across processes with a short lease column rather than a
//! transaction held over the auth call: whoever sets `refreshing_until` refreshes; the others
//! poll the row until the new token appears or the lease lapses.
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::secrets::SecretBox;
use super::{Db, StoreError};
use crate::irp::session::{Sek, Session, SessionStore};

pub use crate::irp::session::StoredSession;

/// The [`SessionStore`] port over Postgres: sessions encrypted at rest with `sbox`.
pub struct PgSessions {
    pub db: Db,
    pub sbox: SecretBox,
}

#[async_trait::async_trait]
impl SessionStore for PgSessions {
    async fn load(&self, key: &str, gstin: &str) -> Result<StoredSession, String> {
        self.db.load_session(key, gstin, &self.sbox).await.map_err(|e| e.to_string())
    }
    async fn begin_refresh(&self, key: &str, gstin: &str, lease_secs: i64, seen_version: i64) -> Result<bool, String> {
        self.db.begin_refresh(key, gstin, lease_secs, seen_version).await.map_err(|e| e.to_string())
    }
    async fn save(
        &self,
        key: &str,
        gstin: &str,
        s: &Session,
        renew_after: Option<DateTime<Utc>>,
    ) -> Result<i64, String> {
        self.db.save_session(key, gstin, s, renew_after, &self.sbox).await.map_err(|e| e.to_string())
    }
    async fn abort_refresh(&self, key: &str, gstin: &str) -> Result<(), String> {
        self.db.abort_refresh(key, gstin).await.map_err(|e| e.to_string())
    }
}

impl Db {
    /// The stored session. A row no configured key decrypts is reported as `unreadable` with no
    /// session, so the caller re-authenticates instead of failing every call until someone
    /// notices (a changed `EINVOICE_TOKEN_KEY` must not stall the GSTIN).
    pub async fn load_session(
        &self,
        provider: &str,
        gstin: &str,
        sbox: &SecretBox,
    ) -> Result<StoredSession, StoreError> {
        let c = self.client().await?;
        let Some(row) = c
            .query_opt(
                "SELECT token_enc, sek_enc, expires_at, updated_at, refresh_count, renew_after FROM auth_tokens
                 WHERE provider = $1 AND gstin = $2",
                &[&provider, &gstin],
            )
            .await?
        else {
            return Ok(StoredSession::default());
        };
        let mut stored = StoredSession { version: row.get(4), renew_after: row.get(5), ..StoredSession::default() };
        let (Some(token_enc), Some(expires_at)) =
            (row.get::<_, Option<Vec<u8>>>(0), row.get::<_, Option<DateTime<Utc>>>(2))
        else {
            return Ok(stored);
        };
        let sek_enc: Option<Vec<u8>> = row.get(1);
        let token = sbox.open(&token_enc).ok().and_then(|t| String::from_utf8(t).ok());
        // Outer `None`: a SEK is stored but does not decrypt.
        let sek = match &sek_enc {
            Some(s) => sbox.open(s).ok().and_then(|raw| Sek::from_slice(&raw)).map(Some),
            None => Some(None),
        };
        match (token, sek) {
            (Some(token), Some(sek)) => {
                stored.session =
                    Some(Session { token: SecretString::from(token), sek, expires_at, obtained_at: row.get(3) })
            }
            _ => stored.unreadable = true,
        }
        Ok(stored)
    }

    /// Try to become the one refresher for this key. True = go ahead and authenticate.
    /// `seen_version` is the version the caller found stale: if another process refreshed
    /// since, the claim fails and the caller re-reads instead of authenticating again.
    pub async fn begin_refresh(
        &self,
        provider: &str,
        gstin: &str,
        lease_secs: i64,
        seen_version: i64,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO auth_tokens (provider, gstin, refreshing_until)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (provider, gstin) DO UPDATE SET refreshing_until = EXCLUDED.refreshing_until
                 WHERE (auth_tokens.refreshing_until IS NULL OR auth_tokens.refreshing_until < now())
                   AND auth_tokens.refresh_count = $4",
                &[&provider, &gstin, &(lease_secs as f64), &seen_version],
            )
            .await?;
        Ok(n == 1)
    }

    /// Store a session (ending this process's refresh lease) and return the row's new version.
    /// `renew_after`: see [`StoredSession::renew_after`].
    pub async fn save_session(
        &self,
        provider: &str,
        gstin: &str,
        s: &Session,
        renew_after: Option<DateTime<Utc>>,
        sbox: &SecretBox,
    ) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let token_enc = sbox.seal(s.token.expose_secret().as_bytes());
        let sek_enc = s.sek.as_ref().map(|k| sbox.seal(k.expose()));
        let row = c
            .query_opt(
                "UPDATE auth_tokens SET token_enc = $3, sek_enc = $4, expires_at = $5, refreshing_until = NULL,
                 refresh_count = refresh_count + 1, updated_at = $6, renew_after = $7
                 WHERE provider = $1 AND gstin = $2 RETURNING refresh_count",
                &[&provider, &gstin, &token_enc, &sek_enc, &s.expires_at, &s.obtained_at, &renew_after],
            )
            .await?;
        // No row: the table was emptied under us (tests' reset); the next load finds nothing.
        Ok(row.map(|r| r.get(0)).unwrap_or(0))
    }

    pub async fn abort_refresh(&self, provider: &str, gstin: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE auth_tokens SET refreshing_until = NULL WHERE provider = $1 AND gstin = $2",
            &[&provider, &gstin],
        )
        .await?;
        Ok(())
    }

    /// How many times this key's token was refreshed (tests and metrics).
    pub async fn refresh_count(&self, provider: &str, gstin: &str) -> Result<i64, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT refresh_count FROM auth_tokens WHERE provider = $1 AND gstin = $2",
            &[&provider, &gstin],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0))
    }
}
