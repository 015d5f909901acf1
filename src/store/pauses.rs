//! Paused GSTINs: a configuration error (bad credentials, wrong key, GSTIN not enabled) stops
//! one GSTIN's IRP calls for a while instead of burning retries and risking a NIC block.
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Db, StoreError};

impl Db {
    pub async fn pause_gstin(&self, gstin: &str, secs: i64, reason: &Value) -> Result<DateTime<Utc>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "INSERT INTO gstin_pauses (gstin, paused_until, reason) VALUES ($1, now() + make_interval(secs => $2), $3)
                 ON CONFLICT (gstin) DO UPDATE SET paused_until = EXCLUDED.paused_until, reason = EXCLUDED.reason
                 RETURNING paused_until",
                &[&gstin, &(secs as f64), reason],
            )
            .await?;
        Ok(row.get(0))
    }

    /// When the GSTIN's pause ends, if it is paused now.
    pub async fn paused_until(&self, gstin: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt("SELECT paused_until FROM gstin_pauses WHERE gstin = $1 AND paused_until > now()", &[&gstin])
            .await?
            .map(|r| r.get(0)))
    }

    /// Every pause in force now, by GSTIN: until when, and the code of its first reason
    /// (`ERROR_BUDGET` lets essential commands through; see `runtime::guard::essential`). Read
    /// through `runtime::pause_cache`.
    pub async fn pauses_now(
        &self,
    ) -> Result<std::collections::HashMap<String, (DateTime<Utc>, Option<String>)>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT gstin, paused_until, reason->0->>'code' FROM gstin_pauses WHERE paused_until > now()",
            )
            .await?;
        Ok(c.query(&stmt, &[]).await?.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
    }
}
