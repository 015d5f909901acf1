//! Batches (every kind of [`BATCHES`](crate::domain::command::batch::BATCHES): `irn.generate_batch`,
//! `einvoice.verify_batch`, ...): one command's items fanned out into one member command each, and
//! one `batch.completed` once every member has its final answer. Every kind shares the same
//! tables, events, message ids and completion, its kind recorded on the batch row.
//!
//! - The batch is recorded (batch row, one row per member, `batch.accepted`) in one transaction
//!   before anything is published; its id is `batch_id`, else the command's `message_id`.
//! - Members are ordinary commands of the member kind (`irn.generate`) with fixed message ids
//!   (`batch:<batch id>:<index>`), `request_id` `<batch id>:<index>`, a `batch` marker, and the
//!   batch command's `correlation_id` and `reply_to`: their answers are the usual ones, on
//!   `einvoice.events` and on the batch's `reply_to`. A batch published again (redelivered before
//!   every member was confirmed) publishes the same messages again, which the member's path
//!   answers from the store: no document is registered twice.
//! - A re-sent batch (same id) is answered `batch.accepted` with `replayed: true` and is not
//!   published again once fanned out; once complete, it is answered with its stored
//!   `batch.completed` (`replayed: true`) instead. The same id with other items is refused.
//! - After a member's answer is committed, and before its command is acked, the worker records
//!   the member's first final answer; whoever records the last one writes `batch.completed`
//!   (see `store::batches`). A crash in between redelivers the member, which records it then.
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::job::reject_with;
use crate::amqp;
use crate::domain::command::batch::{valid_batch_id, BatchKind, BatchMember, Bulk};
use crate::domain::command::JobKind;
use crate::domain::event::{CommandMeta, ErrorItem, Event};
use crate::runtime::events::plain_event;
use crate::runtime::{authorize, Ctx, Disposition};
use crate::store::batches::{BatchCreated, BatchRow, MemberRow, NewBatch, NewMember};
use crate::store::outbox::OutboxEvent;
use crate::store::StoreError;

/// Member commands sent before waiting for their confirms.
const PUBLISH_WINDOW: usize = 100;

/// Any batch command of [`BATCHES`](crate::domain::command::batch::BATCHES): record it, answer
/// `batch.accepted`, publish one member command per item.
pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &Bulk, attempt: u32) -> Result<Disposition, StoreError> {
    let k = c.kind;
    // Served, from the file or the database (a served GSTIN always has its IRPs, so the check is
    // the same for kinds whose members call none, such as verification).
    if ctx.providers.config(c.gstin.as_str()).is_none() {
        let errors = vec![ctx.unserved(c.gstin.as_str(), "gstin")];
        return reject_with(ctx, meta, k.batch, errors, None, Value::Null).await;
    }
    fan_out(ctx, meta, c, attempt).await
}

async fn fan_out(ctx: &Ctx, meta: &CommandMeta, b: &Bulk, attempt: u32) -> Result<Disposition, StoreError> {
    let (kind, gstin, batch_id) = (b.kind.batch, &b.gstin, b.batch_id.as_deref());
    let id = batch_key(batch_id, meta.message_id.as_deref());
    // What the content hash covers: the same id with other content is refused.
    let mut content = serde_json::Map::new();
    content.insert("gstin".into(), json!(gstin.as_str()));
    content.insert(b.kind.items.into(), json!(b.items));
    let content = Value::Object(content);
    let content = Sha256::digest(content.to_string()).to_vec();
    let members: Vec<NewMember> = b
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let [doc_type, doc_number, doc_date] = b.kind.document_of(item);
            NewMember {
                idx: i as i32,
                message_id: BatchMember::message_id(&id, i as u32),
                doc_type,
                doc_number,
                doc_date,
                // Well formed only: an invalid one is the member's own rejection to report.
                irn: given(item, "/irn").filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())),
                ewb_no: given(item, "/ewb_no").filter(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())),
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

/// A text field of an item as given (a number as its digits), if any.
fn given(item: &Value, pointer: &str) -> Option<String> {
    match item.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
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

async fn publish_members(ctx: &Ctx, id: &str, b: &Bulk, meta: &CommandMeta) -> Result<(), amqp::AmqpError> {
    let ch = ctx.publisher().ok_or_else(|| amqp::AmqpError::Unreachable("the worker is not connected yet".into()))?;
    let rk = b.kind.member.routing_key();
    let target = format!("{}/{rk}", ctx.topology.commands);
    for (n, chunk) in b.items.chunks(PUBLISH_WINDOW).enumerate() {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (j, item) in chunk.iter().enumerate() {
            let i = (n * PUBLISH_WINDOW + j) as u32;
            let mut body = b.kind.member_body(&b.gstin, item);
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

/// `batch.completed`: counts by outcome (the kind's names) and one item per member, in batch order.
fn completed(b: &BatchRow, members: &[MemberRow]) -> OutboxEvent {
    let mut counts = serde_json::Map::new();
    let outcomes = BatchKind::of_batch_key(&b.kind).map_or(&[][..], |k| k.counts);
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
                "ewb_no": m.ewb_no,
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
