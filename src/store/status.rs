//! What `job.status` reads: a job by the `request_id` of a command about it, and the events
//! already written for a job or a request. Read-only: a status answer comes from here, never
//! from the IRP.
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::jobs::{JobRow, COLUMNS};
use super::{Db, StoreError};

/// One event written for a job or a request (a summary: the event itself was sent already).
#[derive(Debug, Clone)]
pub struct SentEvent {
    pub event_id: Uuid,
    pub event_type: String,
    /// `occurred_at` as the event carried it.
    pub occurred_at: Option<String>,
    pub request_id: Option<String>,
    pub command_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the relay published it; `None` while it waits in the outbox.
    pub published_at: Option<DateTime<Utc>>,
}

impl From<&Row> for SentEvent {
    fn from(r: &Row) -> Self {
        SentEvent {
            event_id: r.get(0),
            event_type: r.get(1),
            occurred_at: r.get(2),
            request_id: r.get(3),
            command_message_id: r.get(4),
            created_at: r.get(5),
            published_at: r.get(6),
        }
    }
}

const SENT_COLUMNS: &str = "event_id, event_type, payload->>'occurred_at' AS occurred_at,
    payload->>'request_id' AS request_id, payload->>'command_message_id' AS command_message_id, created_at,
    published_at";
const SENT_NAMES: &str = "event_id, event_type, occurred_at, request_id, command_message_id, created_at, published_at";

/// The answers to status queries: never listed among a request's events (a status query by
/// request id carries that request id itself).
const STATUS_ANSWERS: &str = "('job.status', 'job.status.rejected')";

/// The newest `limit` rows of `rows` (read newest first, one more than the limit), oldest first,
/// and whether older ones were left out. (The queries select a job's or a request's events
/// first, through their expression index, and only then sort: a plain `ORDER BY id DESC LIMIT`
/// tempts the planner into walking the whole outbox backwards.)
fn newest_first(rows: Vec<Row>, limit: i64) -> (Vec<SentEvent>, bool) {
    let truncated = rows.len() as i64 > limit;
    let mut out: Vec<SentEvent> = rows.iter().take(limit as usize).map(SentEvent::from).collect();
    out.reverse();
    (out, truncated)
}

impl Db {
    /// The job a command with this `request_id` was about: the job it last claimed (an
    /// `irn.generate`, even one still in flight), else the newest event carrying both the
    /// request id and a job id (an older re-send, a cancel, an e-way bill command).
    pub async fn job_by_request_id(&self, request_id: &str) -> Result<Option<JobRow>, StoreError> {
        let c = self.client().await?;
        let claimed = c
            .query_opt(
                &format!("SELECT {COLUMNS} FROM jobs WHERE request_id = $1 ORDER BY updated_at DESC LIMIT 1"),
                &[&request_id],
            )
            .await?;
        if let Some(row) = claimed {
            return Ok(Some(JobRow::from(&row)));
        }
        let row = c
            .query_opt(
                &format!(
                    "WITH e AS MATERIALIZED (
                       SELECT id, payload->>'job_id' AS job_id FROM outbox
                       WHERE payload->>'request_id' = $1 AND payload->>'job_id' IS NOT NULL)
                     SELECT {COLUMNS} FROM jobs WHERE id = (SELECT job_id::uuid FROM e ORDER BY id DESC LIMIT 1)"
                ),
                &[&request_id],
            )
            .await?;
        Ok(row.as_ref().map(JobRow::from))
    }

    /// The newest `limit` events written for a job, oldest first; true when older ones exist.
    pub async fn job_sent_events(&self, job_id: Uuid, limit: i64) -> Result<(Vec<SentEvent>, bool), StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "WITH e AS MATERIALIZED (SELECT id, {SENT_COLUMNS} FROM outbox WHERE payload->>'job_id' = $1)
                     SELECT {SENT_NAMES} FROM e ORDER BY id DESC LIMIT $2"
                ),
                &[&job_id.to_string(), &(limit + 1)],
            )
            .await?;
        Ok(newest_first(rows, limit))
    }

    /// Events answering commands with this `request_id` that belong to no job (a validation
    /// rejection, a lookup), newest `limit`, oldest first; only those about `gstin` when given.
    pub async fn request_sent_events(
        &self,
        request_id: &str,
        gstin: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<SentEvent>, bool), StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "WITH e AS MATERIALIZED (
                       SELECT id, {SENT_COLUMNS} FROM outbox
                       WHERE payload->>'request_id' = $1 AND payload->>'job_id' IS NULL
                         AND event_type NOT IN {STATUS_ANSWERS}
                         AND ($2::text IS NULL OR payload->'document'->>'gstin' = $2))
                     SELECT {SENT_NAMES} FROM e ORDER BY id DESC LIMIT $3"
                ),
                &[&request_id, &gstin, &(limit + 1)],
            )
            .await?;
        Ok(newest_first(rows, limit))
    }
}
