//! GSTIN details cached from the IRP (taxpayer data changes rarely; lookups may cost money).
use serde_json::Value;

use super::{Db, StoreError};

impl Db {
    /// Cached details younger than `max_age_secs`.
    pub async fn cached_gstin(&self, gstin: &str, max_age_secs: i64) -> Result<Option<Value>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt(
            "SELECT details FROM gstin_cache WHERE gstin = $1 AND fetched_at > now() - make_interval(secs => $2)",
            &[&gstin, &(max_age_secs as f64)],
        )
        .await?
        .map(|r| r.get(0)))
    }

    pub async fn cache_gstin(&self, gstin: &str, details: &Value) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO gstin_cache (gstin, details) VALUES ($1, $2)
             ON CONFLICT (gstin) DO UPDATE SET details = EXCLUDED.details, fetched_at = now()",
            &[&gstin, details],
        )
        .await?;
        Ok(())
    }
}
