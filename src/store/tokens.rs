//! Shared IRP sessions: one row per (provider, GSTIN), encrypted at rest.
//!
//! Refresh is single-flight across processes with a short lease column rather than a
//! transaction held over the auth call: whoever sets `refreshing_until` refreshes; the others
//! poll the row until the new token appears or the lease lapses.
use secrecy::{ExposeSecret, SecretString};

use super::secrets::SecretBox;
use super::{Db, StoreError};
use crate::irp::session::{Sek, Session};

impl Db {
    /// The stored session, if any, and the row's version (its refresh count), which
    /// [`Db::begin_refresh`] checks so nobody refreshes a token someone just replaced.
    pub async fn load_session(
        &self,
        provider: &str,
        gstin: &str,
        sbox: &SecretBox,
    ) -> Result<(Option<Session>, i64), StoreError> {
        let c = self.client().await?;
        let Some(row) = c
            .query_opt(
                "SELECT token_enc, sek_enc, expires_at, updated_at, refresh_count FROM auth_tokens
                 WHERE provider = $1 AND gstin = $2",
                &[&provider, &gstin],
            )
            .await?
        else {
            return Ok((None, 0));
        };
        let version: i64 = row.get(4);
        let Some(token_enc) = row.get::<_, Option<Vec<u8>>>(0) else {
            return Ok((None, version));
        };
        let sek_enc: Option<Vec<u8>> = row.get(1);
        let token = sbox.open(&token_enc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let token = String::from_utf8(token).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sek = match sek_enc {
            Some(s) => {
                let raw = sbox.open(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Some(Sek::from_slice(&raw).ok_or_else(|| StoreError::Corrupt("stored SEK is not 32 bytes".into()))?)
            }
            None => None,
        };
        let session =
            Session { token: SecretString::from(token), sek, expires_at: row.get(2), obtained_at: row.get(3) };
        Ok((Some(session), version))
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

    pub async fn save_session(
        &self,
        provider: &str,
        gstin: &str,
        s: &Session,
        sbox: &SecretBox,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        let token_enc = sbox.seal(s.token.expose_secret().as_bytes());
        let sek_enc = s.sek.as_ref().map(|k| sbox.seal(k.expose()));
        c.execute(
            "UPDATE auth_tokens SET token_enc = $3, sek_enc = $4, expires_at = $5, refreshing_until = NULL,
             refresh_count = refresh_count + 1, updated_at = $6 WHERE provider = $1 AND gstin = $2",
            &[&provider, &gstin, &token_enc, &sek_enc, &s.expires_at, &s.obtained_at],
        )
        .await?;
        Ok(())
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
