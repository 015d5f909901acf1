//! `irn.generate_batch`: one seller's invoices fanned out into one `irn.generate` each, and one
//! `batch.completed` once every member has its final answer. `einvoice.verify_batch` is the same
//! mechanism with `einvoice.verify` members (one buyer's purchases): the same tables, events,
//! message ids and completion, its kind recorded on the batch row.
//!
//! - The batch is recorded (batch row, one row per member, `batch.accepted`) in one transaction
//!   before anything is published; its id is `batch_id`, else the command's `message_id`.
//! - Members are ordinary `irn.generate` commands with fixed message ids
//!   (`batch:<batch id>:<index>`), `request_id` `<batch id>:<index>`, a `batch` marker, and the
//!   batch command's `correlation_id` and `reply_to`: their answers are the usual ones, on
//!   `einvoice.events` and on the batch's `reply_to`. A batch published again (redelivered before
//!   every member was confirmed) publishes the same messages again, which the generate path
//!   answers from the store: no document is registered twice.
//! - A re-sent batch (same id) is answered `batch.accepted` with `replayed: true` and is not
//!   published again once fanned out; once complete, it is answered with its stored
//!   `batch.completed` (`replayed: true`) instead. The same id with other invoices is refused.
//! - After a member's answer is committed, and before its command is acked, the worker records
//!   the member's first final answer; whoever records the last one writes `batch.completed`
//!   (see `store::batches`). A crash in between redelivers the member, which records it then.
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::job::reject_with;
use crate::amqp;
use crate::domain::command::batch::{valid_batch_id, BatchMember, GenerateBatch, MEMBER_OUTCOMES, VERIFY_OUTCOMES};
use crate::domain::command::verify::VerifyBatch;
use crate::domain::command::JobKind;
use crate::domain::event::{CommandMeta, ErrorItem, Event};
use crate::domain::Gstin;
use crate::runtime::events::plain_event;
use crate::runtime::{authorize, Ctx, Disposition};
use crate::store::batches::{BatchCreated, BatchRow, MemberRow, NewBatch, NewMember};
use crate::store::outbox::OutboxEvent;
use crate::store::StoreError;

/// Member commands sent before waiting for their confirms.
const PUBLISH_WINDOW: usize = 100;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &GenerateBatch, attempt: u32) -> Result<Disposition, StoreError> {
    if ctx.providers.get(c.gstin.as_str()).is_none() {
        let errors = vec![ctx.unserved(c.gstin.as_str(), "gstin")];
        return reject_with(ctx, meta, JobKind::IrnGenerateBatch, errors, None, Value::Null).await;
    }
    let content = json!({"gstin": c.gstin.as_str(), "invoices": c.invoices});
    let docs = |inv: &Value| {
        [text(inv, "/DocDtls/Typ").map(|t| t.to_ascii_uppercase()), text(inv, "/DocDtls/No"), text(inv, "/DocDtls/Dt")]
    };
    let body = |gstin: &Gstin, inv: &Value| json!({"gstin": gstin.as_str(), "invoice": inv});
    let b = Batch {
        kind: JobKind::IrnGenerateBatch,
        gstin: &c.gstin,
        batch_id: c.batch_id.as_deref(),
        items: &c.invoices,
        content,
        docs: &docs,
        body: &body,
    };
    fan_out(ctx, meta, &b, attempt).await
}

/// `einvoice.verify_batch`: each verification becomes an `einvoice.verify` for the batch's buyer.
pub async fn handle_verify(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &VerifyBatch,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    if ctx.providers.get(c.gstin.as_str()).is_none() {
        let errors = vec![ctx.unserved(c.gstin.as_str(), "gstin")];
        return reject_with(ctx, meta, JobKind::EinvoiceVerifyBatch, errors, None, Value::Null).await;
    }
    let content = json!({"gstin": c.gstin.as_str(), "verifications": c.verifications});
    // The document as the ERP's record names it, when it gives one.
    let docs = |v: &Value| [None, text(v, "/expected/doc_number"), text(v, "/expected/doc_date")];
    let body = |gstin: &Gstin, v: &Value| {
        let mut b = v.clone();
        if let Some(o) = b.as_object_mut() {
            o.insert("gstin".into(), json!(gstin.as_str()));
            o.remove("request_id");
            o.remove("batch");
        }
        b
    };
    let b = Batch {
        kind: JobKind::EinvoiceVerifyBatch,
        gstin: &c.gstin,
        batch_id: c.batch_id.as_deref(),
        items: &c.verifications,
        content,
        docs: &docs,
        body: &body,
    };
    fan_out(ctx, meta, &b, attempt).await
}

fn text(v: &Value, p: &str) -> Option<String> {
    v.pointer(p).and_then(Value::as_str).map(|s| s.trim().to_string())
}

/// What a batch command fans out: its kind, its items, and per item the document it names
/// (type, number, date, as given) and its member command's body (without the batch's ids).
struct Batch<'a> {
    kind: JobKind,
    gstin: &'a Gstin,
    batch_id: Option<&'a str>,
    items: &'a [Value],
    /// What the batch's content hash covers (the same id with other content is refused).
    content: Value,
    docs: &'a (dyn Fn(&Value) -> [Option<String>; 3] + Sync),
    body: &'a (dyn Fn(&Gstin, &Value) -> Value + Sync),
}

async fn fan_out(ctx: &Ctx, meta: &CommandMeta, b: &Batch<'_>, attempt: u32) -> Result<Disposition, StoreError> {
    let (kind, gstin, batch_id) = (b.kind, b.gstin, b.batch_id);
    let id = batch_key(batch_id, meta.message_id.as_deref());
    let content = Sha256::digest(b.content.to_string()).to_vec();
    let members: Vec<NewMember> = b
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let [doc_type, doc_number, doc_date] = (b.docs)(item);
            NewMember {
                idx: i as i32,
                message_id: BatchMember::message_id(&id, i as u32),
                doc_type,
                doc_number,
                doc_date,
            }
        })
        .collect();
    let new = NewBatch {
        kind: kind.routing_key().into(),
        id: id.clone(),
        gstin: gstin.to_string(),
        content_sha256: content.clone(),
        request_id: meta.request_id.clone(),
        command_message_id: meta.message_id.clone(),
        correlation_id: meta.correlation_id.clone(),
        reply_to: meta.reply_to.clone(),
    };
    let batch = match ctx.db.create_batch(&new, &members, |row| accepted(meta, row, false)).await? {
        BatchCreated::New(row) => {
            tracing::info!(batch_id = %row.id, total = row.total, kind = %row.kind, "batch accepted; publishing its member commands");
            row
        }
        BatchCreated::Existing(row) if row.content_sha256 != content || row.kind != kind.routing_key() => {
            let path = if batch_id.is_some() { "batch_id" } else { "" };
            let errors = vec![ErrorItem {
                path: path.into(),
                ..ErrorItem::worker(
                    "BATCH_ID_REUSED",
                    format!(
                        "batch '{}' was accepted at {} with other content or another GSTIN; give a new batch a new batch_id (and message_id)",
                        row.id, row.created_at
                    ),
                )
            }];
            return reject_with(ctx, meta, kind, errors, None, Value::Null).await;
        }
        BatchCreated::Existing(BatchRow { completed_at: Some(_), summary: Some(summary), id, .. }) => {
            // Complete: the summary the ERP waits for is all there is to say (it would wait
            // forever for a `batch.completed` after a second `batch.accepted`).
            tracing::info!(batch_id = %id, "complete batch sent again; answering its stored summary");
            ctx.db.enqueue_events(&[replayed_summary(meta, summary)]).await?;
            return Ok(Disposition::Ack);
        }
        BatchCreated::Existing(row) => {
            tracing::info!(batch_id = %row.id, fanned_out = row.fanned_out_at.is_some(), "batch sent again");
            ctx.db.enqueue_events(&[accepted(meta, &row, true)]).await?;
            if row.fanned_out_at.is_some() {
                return Ok(Disposition::Ack);
            }
            row
        }
    };
    match publish_members(ctx, &batch.id, b, meta).await {
        Ok(()) => {
            ctx.db.mark_batch_fanned_out(&batch.id).await?;
            Ok(Disposition::Ack)
        }
        Err(e) => {
            tracing::warn!(batch_id = %batch.id, error = %e, "could not publish the batch's commands; trying again later");
            let errors = vec![ErrorItem::worker(
                "PUBLISH_FAILED",
                format!("publishing the batch's member commands failed ({e}); the batch is published again shortly"),
            )];
            Ok(Disposition::Reschedule { attempt, errors })
        }
    }
}

/// The batch's id: `batch_id`, else the command's `message_id` (hashed when it is not a valid
/// batch id), else a new one (such a batch cannot be recognised when sent again).
fn batch_key(batch_id: Option<&str>, message_id: Option<&str>) -> String {
    match (batch_id, message_id) {
        (Some(id), _) => id.to_string(),
        (None, Some(m)) if valid_batch_id(m) => m.to_string(),
        (None, Some(m)) => format!("m-{}", &hex::encode(Sha256::digest(m.as_bytes()))[..32]),
        (None, None) => Uuid::new_v4().to_string(),
    }
}

async fn publish_members(ctx: &Ctx, id: &str, b: &Batch<'_>, meta: &CommandMeta) -> Result<(), amqp::AmqpError> {
    let ch = ctx.publisher().ok_or_else(|| amqp::AmqpError::Unreachable("the worker is not connected yet".into()))?;
    let rk = b.kind.member().expect("a batch kind has members").routing_key();
    let target = format!("{}/{rk}", ctx.topology.commands);
    for (n, chunk) in b.items.chunks(PUBLISH_WINDOW).enumerate() {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (j, item) in chunk.iter().enumerate() {
            let i = (n * PUBLISH_WINDOW + j) as u32;
            let mut body = (b.body)(b.gstin, item);
            body["request_id"] = json!(BatchMember::request_id(id, i));
            body["batch"] = BatchMember::marker(id, i);
            let bytes = serde_json::to_vec(&body).expect("a JSON value serialises");
            // Sealed as the worker's own: only such a command counts as the batch's member.
            let headers = authorize::sealed(&ctx.seals, authorize::WORKER, rk, &bytes);
            let mut props =
                amqp::json_props().with_message_id(BatchMember::message_id(id, i).into()).with_headers(headers);
            if let Some(c) = &meta.correlation_id {
                props = props.with_correlation_id(c.as_str().into());
            }
            if let Some(r) = &meta.reply_to {
                props = props.with_reply_to(r.as_str().into());
            }
            confirms.push(amqp::send(ch, &ctx.topology.commands, rk, &bytes, props, true).await?);
        }
        for c in confirms {
            amqp::confirmed(c, &target).await?;
        }
    }
    Ok(())
}

/// The meta of the batch command, for `batch.completed` (written while handling a member).
fn batch_meta(b: &BatchRow) -> CommandMeta {
    CommandMeta {
        routing_key: b.kind.clone(),
        message_id: b.command_message_id.clone(),
        correlation_id: b.correlation_id.clone(),
        reply_to: b.reply_to.clone(),
        request_id: b.request_id.clone(),
        handling: None,
    }
}

fn accepted(meta: &CommandMeta, b: &BatchRow, replayed: bool) -> OutboxEvent {
    let data = json!({
        "batch_id": b.id,
        "gstin": b.gstin,
        "total": b.total,
        "replayed": replayed,
        "accepted_at": b.created_at,
        "completed_at": b.completed_at,
    });
    plain_event(meta, JobKind::IrnGenerateBatch.success_event(), data)
}

/// The stored `batch.completed` of a complete batch, answering the command that sent it again
/// (its ids, not the first command's).
fn replayed_summary(meta: &CommandMeta, mut data: Value) -> OutboxEvent {
    if let Some(o) = data.as_object_mut() {
        o.insert("replayed".into(), json!(true));
    }
    plain_event(meta, "batch.completed", data)
}

/// `batch.completed`: counts by outcome and one item per invoice, in batch order.
fn completed(b: &BatchRow, members: &[MemberRow]) -> OutboxEvent {
    let mut counts = serde_json::Map::new();
    let outcomes: &[&str] =
        if b.kind == JobKind::EinvoiceVerifyBatch.routing_key() { &VERIFY_OUTCOMES } else { &MEMBER_OUTCOMES };
    for o in outcomes {
        let n = members.iter().filter(|m| m.outcome.as_deref() == Some(o)).count();
        counts.insert((*o).into(), json!(n));
    }
    let items: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "index": m.idx,
                "document": {"doc_type": m.doc_type, "doc_number": m.doc_number, "doc_date": m.doc_date},
                "outcome": m.outcome,
                "event_type": m.event_type,
                "job_id": m.job_id,
                "irn": m.irn,
                "ack_no": m.ack_no,
                "errors": m.errors,
            })
        })
        .collect();
    let data = json!({
        "batch_id": b.id,
        "gstin": b.gstin,
        "total": b.total,
        "counts": counts,
        "items": items,
        "accepted_at": b.created_at,
        "completed_at": chrono::Utc::now(),
        "replayed": false,
    });
    OutboxEvent { event: Event::new("batch.completed", &batch_meta(b), data), reply_to: b.reply_to.clone() }
}

/// A member command was answered (its answer is committed, its delivery not yet acked): record
/// its outcome, completing the batch when it was the last. A command whose marker does not
/// match its own message id is no member: a client's `batch` field cannot touch a batch.
pub async fn member_answered(ctx: &Ctx, member: &BatchMember, message_id: Option<&str>) -> Result<(), StoreError> {
    let expected = BatchMember::message_id(&member.batch_id, member.index);
    if message_id != Some(expected.as_str()) {
        return Ok(());
    }
    if let Some(b) = ctx.db.settle_batch_member(&member.batch_id, member.index as i32, &expected, completed).await? {
        tracing::info!(batch_id = %b.id, total = b.total, "batch completed");
    }
    Ok(())
}
