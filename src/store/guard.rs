//! Protecting the GSTIN (migration 0010): token buckets shared by every worker process, and the
//! daily count of IRP error responses per GSTIN and per client ID.
use chrono::NaiveDate;

use super::{Db, StoreError};

/// What [`Db::rate_acquire`] decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acquired {
    /// Seconds to sleep before the call (0: call now).
    pub wait_secs: f64,
    /// A token was taken (reserved for `wait_secs` from now). False: the wait is longer than the
    /// caller may wait, and nothing was taken.
    pub taken: bool,
    /// The buckets' throttle count at the time: if it has changed when the caller wakes up, a
    /// throttle drained the buckets meanwhile and the caller must queue again.
    pub drains: i64,
}

impl Db {
    /// Take one token from each bucket in `keys` (atomically, across processes): see
    /// `rate_acquire` in `migrations/0010_guard.sql`.
    pub async fn rate_acquire(
        &self,
        keys: &[String],
        per_second: f64,
        burst: f64,
        max_wait_secs: f64,
    ) -> Result<Acquired, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT wait, taken, drains FROM rate_acquire($1, $2, $3, $4)",
                &[&keys, &per_second, &burst, &max_wait_secs],
            )
            .await?;
        Ok(Acquired { wait_secs: row.get(0), taken: row.get(1), drains: row.get(2) })
    }

    /// The buckets' current throttle count (see [`Acquired::drains`]).
    pub async fn rate_drains(&self, keys: &[String]) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT coalesce(sum(drains), 0)::bigint FROM rate_buckets WHERE key = ANY ($1)", &[&keys])
            .await?;
        Ok(row.get(0))
    }

    /// A throttle (429, 658): shut the buckets for `secs`, then let one call through and refill
    /// at the configured rate. Every process's next acquire waits, and callers that reserved a
    /// slot before see the drain count change and queue again.
    pub async fn rate_drain(&self, keys: &[String], secs: f64) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO rate_buckets AS b (key, tokens, updated_at, drains)
             SELECT k, 1, clock_timestamp() + make_interval(secs => $2), 1 FROM unnest($1::text[]) AS k ORDER BY k
             ON CONFLICT (key) DO UPDATE SET tokens = 1, updated_at = greatest(b.updated_at, EXCLUDED.updated_at),
                                             drains = b.drains + 1",
            &[&keys, &secs],
        )
        .await?;
        Ok(())
    }

    /// Count one IRP error response under each key for `day` (India date); returns the new
    /// counts, in the order of `keys`. Each increment returns a distinct count, so "the count
    /// just reached N" happens exactly once across all processes.
    pub async fn count_error_response(&self, day: NaiveDate, keys: &[String]) -> Result<Vec<i64>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "INSERT INTO irp_error_counts AS e (day, key, count)
                 SELECT $1, k, 1 FROM unnest($2::text[]) AS k ORDER BY k
                 ON CONFLICT (day, key) DO UPDATE SET count = e.count + 1
                 RETURNING key, count",
                &[&day, &keys],
            )
            .await?;
        Ok(keys.iter().map(|k| rows.iter().find(|r| r.get::<_, &str>(0) == k).map(|r| r.get(1)).unwrap_or(0)).collect())
    }

    /// Every key's count on `day` (the budget gauges).
    pub async fn error_counts(&self, day: NaiveDate) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.client().await?;
        let rows = c.query("SELECT key, count FROM irp_error_counts WHERE day = $1", &[&day]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Retention: counts of days long past, and buckets nobody has used for a day (a bucket
    /// that comes back starts full, which is what a day's rest gives it anyway).
    pub async fn prune_guard(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let counts = c.execute("DELETE FROM irp_error_counts WHERE day < current_date - 35", &[]).await?;
        let buckets =
            c.execute("DELETE FROM rate_buckets WHERE updated_at < clock_timestamp() - interval '1 day'", &[]).await?;
        Ok(counts + buckets)
    }
}
