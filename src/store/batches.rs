//! Batches (every kind of `domain::command::batch::BATCHES`): one row per batch, one per member.
//!
//! A batch completes exactly once, whichever worker settles its last member: settling a member
//! locks the batch row, records the member's first final answer once, counts it, and the
//! transaction that brings the count to the total also sets `completed_at` and writes
//! `batch.completed` to the outbox. Members settled concurrently queue on the row lock, so the
//! last one always sees every other member's count.
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::outbox::{self, OutboxEvent};
use super::{Db, StoreError};
use crate::domain::command::batch::BatchKind;
use crate::domain::text::storable;

/// A batch about to be recorded.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: String,
    /// The batch command's routing key.
    pub kind: String,
    pub gstin: String,
    pub content_sha256: Vec<u8>,
    pub request_id: Option<String>,
    pub command_message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
}

/// One item of a new batch: its place, its member command's message id, its document, IRN and
/// e-way bill number as given.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub idx: i32,
    pub message_id: String,
    pub doc_type: Option<String>,
    pub doc_number: Option<String>,
    pub doc_date: Option<String>,
    pub irn: Option<String>,
    pub ewb_no: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BatchRow {
    pub id: String,
    pub gstin: String,
    pub total: i32,
    pub content_sha256: Vec<u8>,
    pub request_id: Option<String>,
    pub command_message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub settled: i32,
    pub created_at: DateTime<Utc>,
    pub fanned_out_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The batch command's routing key (`irn.generate_batch`, `einvoice.verify_batch`).
    pub kind: String,
    /// The `batch.completed` data as published, once the batch is complete: a re-sent batch is
    /// answered with it.
    pub summary: Option<Value>,
}

const BATCH_COLUMNS: &str = "id, gstin, total, content_sha256, request_id, command_message_id, correlation_id,
    reply_to, settled, created_at, fanned_out_at, completed_at, kind, summary";

impl From<&Row> for BatchRow {
    fn from(r: &Row) -> Self {
        BatchRow {
            id: r.get(0),
            gstin: r.get(1),
            total: r.get(2),
            content_sha256: r.get(3),
            request_id: r.get(4),
            command_message_id: r.get(5),
            correlation_id: r.get(6),
            reply_to: r.get(7),
            settled: r.get(8),
            created_at: r.get(9),
            fanned_out_at: r.get(10),
            completed_at: r.get(11),
            kind: r.get(12),
            summary: r.get(13),
        }
    }
}

/// A member as recorded; the outcome fields are set once its first final answer is known.
#[derive(Debug, Clone)]
pub struct MemberRow {
    pub idx: i32,
    pub doc_type: Option<String>,
    pub doc_number: Option<String>,
    pub doc_date: Option<String>,
    pub outcome: Option<String>,
    pub event_type: Option<String>,
    pub job_id: Option<Uuid>,
    pub irn: Option<String>,
    pub ack_no: Option<String>,
    pub errors: Option<Value>,
    pub ewb_no: Option<String>,
}

/// What [`Db::create_batch`] found.
#[derive(Debug)]
pub enum BatchCreated {
    /// Recorded now, with its members and its `batch.accepted`.
    New(BatchRow),
    /// A batch with this id exists already (a re-sent or redelivered command): nothing written.
    Existing(BatchRow),
}

impl Db {
    /// Record a batch, its members and its `batch.accepted` event in one transaction, unless a
    /// batch with this id exists.
    pub async fn create_batch(
        &self,
        batch: &NewBatch,
        members: &[NewMember],
        accepted: impl FnOnce(&BatchRow) -> OutboxEvent,
    ) -> Result<BatchCreated, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let inserted = tx
            .query_opt(
                &format!(
                    "INSERT INTO batches (id, gstin, total, content_sha256, request_id, command_message_id,
                                          correlation_id, reply_to, kind)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING
                     RETURNING {BATCH_COLUMNS}"
                ),
                &[
                    &batch.id,
                    &batch.gstin,
                    &(members.len() as i32),
                    &batch.content_sha256,
                    &batch.request_id,
                    &batch.command_message_id,
                    &batch.correlation_id,
                    &batch.reply_to,
                    &batch.kind,
                ],
            )
            .await?;
        let Some(row) = inserted else {
            let row = tx.query_one(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1"), &[&batch.id]).await?;
            tx.commit().await?;
            return Ok(BatchCreated::Existing(BatchRow::from(&row)));
        };
        let row = BatchRow::from(&row);
        let col = |f: fn(&NewMember) -> Option<String>| members.iter().map(f).collect::<Vec<_>>();
        let idx: Vec<i32> = members.iter().map(|m| m.idx).collect();
        let ids: Vec<String> = members.iter().map(|m| m.message_id.clone()).collect();
        tx.execute(
            "INSERT INTO batch_members (batch_id, idx, message_id, doc_type, doc_number, doc_date, irn, ewb_no)
             SELECT $1, * FROM UNNEST($2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                      $8::text[])",
            &[
                &row.id,
                &idx,
                &ids,
                &col(|m| m.doc_type.clone()),
                &col(|m| m.doc_number.clone()),
                &col(|m| m.doc_date.clone()),
                &col(|m| m.irn.clone()),
                &col(|m| m.ewb_no.clone()),
            ],
        )
        .await?;
        outbox::insert(&tx, &accepted(&row)).await?;
        tx.commit().await?;
        Ok(BatchCreated::New(row))
    }

    /// Every member command was confirmed by the broker: a redelivered batch command need not
    /// publish them again.
    pub async fn mark_batch_fanned_out(&self, id: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute("UPDATE batches SET fanned_out_at = COALESCE(fanned_out_at, now()) WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    pub async fn batch(&self, id: &str) -> Result<Option<BatchRow>, StoreError> {
        let c = self.client().await?;
        let row = c.query_opt(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1"), &[&id]).await?;
        Ok(row.as_ref().map(BatchRow::from))
    }

    pub async fn batch_members(&self, id: &str) -> Result<Vec<MemberRow>, StoreError> {
        let c = self.client().await?;
        members(&c, id).await
    }

    /// A member command (`message_id`, place `idx`) of batch `batch_id` was answered: record its
    /// first final answer, once, and when it is the last member's, complete the batch with the
    /// event `completed` builds, in the same transaction. Returns the batch when this call
    /// completed it. A member without a final answer yet, an unknown batch or member, a member
    /// already recorded, or a batch already completed change nothing.
    pub async fn settle_batch_member(
        &self,
        batch_id: &str,
        idx: i32,
        message_id: &str,
        completed: impl FnOnce(&BatchRow, &[MemberRow]) -> OutboxEvent,
    ) -> Result<Option<BatchRow>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let locked = tx
            .query_opt(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1 FOR UPDATE"), &[&batch_id])
            .await?;
        let Some(batch) = locked.as_ref().map(BatchRow::from).filter(|b| b.completed_at.is_none()) else {
            return Ok(None);
        };
        let Some(kind) = BatchKind::of_batch_key(&batch.kind) else { return Ok(None) };
        // The member's first final answer (a redelivered member is answered again, `replayed`).
        let first = tx
            .query_opt(
                "SELECT event_id, event_type, payload FROM outbox
                 WHERE payload->>'command_message_id' = $1 AND payload->>'command_message_id' LIKE 'batch:%'
                   AND event_type = ANY($2)
                 ORDER BY id LIMIT 1",
                &[&message_id, &kind.final_events()],
            )
            .await?;
        let Some(first) = first else { return Ok(None) };
        let (event_id, event_type, payload): (Uuid, String, Value) = (first.get(0), first.get(1), first.get(2));
        let data = &payload["data"];
        let Some(outcome) = kind.outcome(&event_type, data) else { return Ok(None) };
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let job_id = payload["job_id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
        let errors = match outcome {
            "rejected" | "failed" => Some(data["errors"].clone()),
            // An invalid e-invoice: its reason, as an error item.
            "invalid" => Some(
                serde_json::json!([{"source": "validation", "path": "", "code": data["reason"], "message": data["message"]}]),
            ),
            _ => None,
        };
        let n = tx
            .execute(
                "UPDATE batch_members SET outcome = $4, event_type = $5, event_id = $6, job_id = $7,
                        irn = COALESCE($8, irn), ack_no = $9, errors = $10, ewb_no = COALESCE($11, ewb_no),
                        settled_at = now()
                 WHERE batch_id = $1 AND idx = $2 AND message_id = $3 AND outcome IS NULL",
                &[
                    &batch_id,
                    &idx,
                    &message_id,
                    &outcome,
                    &event_type,
                    &event_id,
                    &job_id,
                    &text(&data["irn"]),
                    &text(&data["ack_no"]),
                    &errors.as_ref().map(|e| storable(e).into_owned()),
                    &text(&data["ewb_no"]),
                ],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        let settled: i32 = tx
            .query_one("UPDATE batches SET settled = settled + 1 WHERE id = $1 RETURNING settled", &[&batch_id])
            .await?
            .get(0);
        if settled < batch.total {
            tx.commit().await?;
            return Ok(None);
        }
        let all = members(&tx, batch_id).await?;
        let ev = completed(&batch, &all);
        let done = tx
            .query_opt(
                &format!(
                    "UPDATE batches SET completed_at = now(), summary = $2 WHERE id = $1 AND completed_at IS NULL
                     RETURNING {BATCH_COLUMNS}"
                ),
                &[&batch_id, &storable(&ev.event.data).into_owned()],
            )
            .await?;
        let Some(done) = done else {
            tx.commit().await?;
            return Ok(None);
        };
        outbox::insert(&tx, &ev).await?;
        tx.commit().await?;
        Ok(Some(BatchRow::from(&done)))
    }
}

async fn members<C: deadpool_postgres::GenericClient>(c: &C, id: &str) -> Result<Vec<MemberRow>, StoreError> {
    let rows = c
        .query(
            "SELECT idx, doc_type, doc_number, doc_date, outcome, event_type, job_id, irn, ack_no, errors, ewb_no
             FROM batch_members WHERE batch_id = $1 ORDER BY idx",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MemberRow {
            idx: r.get(0),
            doc_type: r.get(1),
            doc_number: r.get(2),
            doc_date: r.get(3),
            outcome: r.get(4),
            event_type: r.get(5),
            job_id: r.get(6),
            irn: r.get(7),
            ack_no: r.get(8),
            errors: r.get(9),
            ewb_no: r.get(10),
        })
        .collect())
}
