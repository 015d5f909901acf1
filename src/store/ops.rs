//! What an operator (and the metrics sampler) asks of the store: a health snapshot, jobs by
//! state, one job with its events, pauses, and retention.
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::jobs::{JobRow, COLUMNS};
use super::{Db, StoreError};

/// Counts the metrics sampler exports and `/readyz` / `/status` read, in one round trip.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub outbox_backlog: i64,
    /// Age of the oldest unpublished event, in seconds (0 when none).
    pub outbox_oldest_secs: f64,
    pub gstins_paused: i64,
    pub jobs_in_doubt: i64,
    pub jobs_failed_24h: i64,
}

/// A GSTIN's pause as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Pause {
    pub gstin: String,
    pub paused_until: DateTime<Utc>,
    pub reason: Value,
}

/// Filters of `jobs list`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub gstin: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// One stored event of a job (from the outbox).
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub payload: Value,
}

/// Rows deleted by one retention pass.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Pruned {
    pub outbox: u64,
    pub jobs: u64,
    pub qr_png: u64,
    pub ewaybills: u64,
    pub reconcile_runs: u64,
}

/// Rows per delete statement: short transactions, short row locks, no long table lock.
pub const PRUNE_BATCH: i64 = 1000;

/// Job states that are finished (kept for the retention period, then deletable).
const FINISHED: &str = "('generated', 'cancelled', 'rejected', 'failed', 'registered_outside', 'cancelled_outside')";

impl Db {
    /// An operator's retry of a job the IRP refused (`rejected`): make it `failed` again, so the
    /// worker sends the same stored invoice once more instead of answering the refusal from the
    /// store (the refusal may have been a master-data error since fixed). False when the job is
    /// no longer `rejected` (something else changed it meanwhile).
    pub async fn reopen_rejected(&self, job_id: uuid::Uuid) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE jobs SET status = 'failed', updated_at = now() WHERE id = $1 AND status = 'rejected'",
                &[&job_id],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT
                   (SELECT count(*) FROM outbox WHERE published_at IS NULL),
                   COALESCE((SELECT extract(epoch FROM now() - min(created_at))::float8
                             FROM outbox WHERE published_at IS NULL), 0),
                   (SELECT count(*) FROM gstin_pauses WHERE paused_until > now()),
                   (SELECT count(*) FROM jobs WHERE status = 'in_doubt'),
                   (SELECT count(*) FROM jobs WHERE status = 'failed' AND updated_at > now() - interval '1 day')",
            )
            .await?;
        let r = c.query_one(&stmt, &[]).await?;
        Ok(Snapshot {
            outbox_backlog: r.get(0),
            outbox_oldest_secs: r.get(1),
            gstins_paused: r.get(2),
            jobs_in_doubt: r.get(3),
            jobs_failed_24h: r.get(4),
        })
    }

    /// Every pause that has not ended.
    pub async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT gstin, paused_until, reason FROM gstin_pauses WHERE paused_until > now() ORDER BY gstin",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| Pause { gstin: r.get(0), paused_until: r.get(1), reason: r.get(2) }).collect())
    }

    /// End a GSTIN's pause now. False when it was not paused.
    pub async fn unpause_gstin(&self, gstin: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        Ok(c.execute("DELETE FROM gstin_pauses WHERE gstin = $1 AND paused_until > now()", &[&gstin]).await? > 0)
    }

    /// Jobs matching `f`, newest first.
    pub async fn list_jobs(&self, f: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM jobs
                     WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR gstin = $2)
                       AND ($3::timestamptz IS NULL OR updated_at >= $3)
                     ORDER BY updated_at DESC LIMIT $4"
                ),
                &[&f.status, &f.gstin, &f.since, &f.limit],
            )
            .await?;
        Ok(rows.iter().map(JobRow::from).collect())
    }

    /// A job by the stored document key (`GSTIN/TYPE/NUMBER/YEAR`, any case).
    pub async fn job_by_doc_key(&self, doc_key: &str) -> Result<Option<JobRow>, StoreError> {
        let c = self.client().await?;
        let row = c.query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE doc_key = upper($1)"), &[&doc_key]).await?;
        Ok(row.as_ref().map(JobRow::from))
    }

    /// The events stored for a job, oldest first.
    pub async fn job_events(&self, job_id: Uuid) -> Result<Vec<StoredEvent>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT event_type, created_at, published_at, payload FROM outbox
                 WHERE payload->>'job_id' = $1 ORDER BY id",
                &[&job_id.to_string()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                event_type: r.get(0),
                created_at: r.get(1),
                published_at: r.get(2),
                payload: r.get(3),
            })
            .collect())
    }

    /// Delete what is older than the retention periods (days; 0 keeps forever), in batches of
    /// [`PRUNE_BATCH`] rows, each its own short statement. Only published events and finished jobs
    /// are ever deleted.
    pub async fn prune(&self, outbox_days: u32, job_days: u32) -> Result<Pruned, StoreError> {
        let mut p = Pruned::default();
        if outbox_days > 0 {
            let days = outbox_days as i32;
            p.outbox = self
                .delete_batches(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                       WHERE published_at < now() - make_interval(days => $1) ORDER BY id LIMIT $2)",
                    days,
                )
                .await?;
            p.reconcile_runs = self
                .delete_batches(
                    "DELETE FROM reconcile_runs WHERE id IN (SELECT id FROM reconcile_runs
                       WHERE status = 'completed' AND finished_at < now() - make_interval(days => $1) LIMIT $2)",
                    days,
                )
                .await?;
        }
        if job_days > 0 {
            let days = job_days as i32;
            p.jobs = self
                .delete_batches(
                    &format!(
                        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs
                           WHERE status IN {FINISHED} AND updated_at < now() - make_interval(days => $1) LIMIT $2)"
                    ),
                    days,
                )
                .await?;
            p.qr_png = self
                .delete_batches(
                    "DELETE FROM qr_png WHERE qr_sha256 IN (SELECT qr_sha256 FROM qr_png
                       WHERE created_at < now() - make_interval(days => $1) LIMIT $2)",
                    days,
                )
                .await?;
            p.ewaybills = self
                .delete_batches(
                    "DELETE FROM ewaybills WHERE ewb_no IN (SELECT ewb_no FROM ewaybills
                       WHERE updated_at < now() - make_interval(days => $1) LIMIT $2)",
                    days,
                )
                .await?;
        }
        Ok(p)
    }

    async fn delete_batches(&self, sql: &str, days: i32) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await?;
        let mut total = 0;
        loop {
            let n = c.execute(&stmt, &[&days, &PRUNE_BATCH]).await?;
            total += n;
            if n < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
