//! `job.status`: a job's state and the events already sent for it, answered from the store.
//!
//! Never an IRP call, and no GSTIN configuration needed: the store is the worker's own record
//! of every document it handled. The answer is a plain event (envelope `job_id` null; the job's
//! id is `data.job_id`), so status answers never show up among a job's events themselves.
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::domain::command::status::{JobStatus, StatusQuery};
use crate::domain::event::{CommandMeta, DocumentRef, ErrorItem};
use crate::domain::Gstin;
use crate::runtime::events::{document_ref, plain_event};
use crate::runtime::{Ctx, Disposition};
use crate::store::status::SentEvent;
use crate::store::StoreError;

/// Events listed in one answer at most (the newest; `events_truncated` says when there were more).
pub const MAX_STATUS_EVENTS: i64 = 100;

/// Answered from the store: no provider, no pause, no configuration needed.
pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &JobStatus, _attempt: u32) -> Result<Disposition, StoreError> {
    let (gstin, query) = (c.gstin.as_ref(), &c.query);
    let db = &ctx.db;
    let (job, queried) = match query {
        StatusQuery::RequestId(r) => (db.job_by_request_id(r).await?, None),
        StatusQuery::JobId(id) => (db.job(*id).await?, None),
        StatusQuery::Document { key, date } => (db.job_by_key(key).await?, Some(DocumentRef::new(key, Some(*date)))),
    };
    // A GSTIN given with the query scopes it to that seller's jobs.
    let other_seller = |g: &str| gstin.is_some_and(|want| !g.eq_ignore_ascii_case(want.as_str()));
    let job = job.filter(|j| !other_seller(&j.gstin));
    let (events, truncated) = match (&job, query) {
        (Some(j), _) => db.job_sent_events(j.id, MAX_STATUS_EVENTS).await?,
        (None, StatusQuery::RequestId(r)) => {
            db.request_sent_events(r, gstin.map(Gstin::as_str), MAX_STATUS_EVENTS).await?
        }
        (None, _) => (Vec::new(), false),
    };
    let mut data = match &job {
        Some(j) => json!({
            "found": true,
            "query": query_json(query),
            "job_id": j.id,
            "status": j.status,
            "attempts": j.attempts,
            "irn": j.irn,
            "ack_no": j.ack_no,
            "ack_dt": j.ack_dt,
            "irp": j.provider,
            "duplicate": j.duplicate,
            "cancel_date": j.cancel_date,
            "ewb_no": j.ewb_no,
            "last_errors": last_errors(j.last_error.as_ref()),
            "first_attempt_at": j.first_attempt_at,
            "updated_at": j.updated_at,
        }),
        None => json!({
            "found": false,
            "query": query_json(query),
            "job_id": null,
            "status": null,
            "attempts": null,
            "irn": null,
            "ack_no": null,
            "ack_dt": null,
            "irp": null,
            "duplicate": null,
            "cancel_date": null,
            "ewb_no": null,
            "last_errors": null,
            "first_attempt_at": null,
            "updated_at": null,
        }),
    };
    data["events"] = Value::Array(events.iter().map(event_json).collect());
    data["events_truncated"] = json!(truncated);
    tracing::info!(query = %query, found = job.is_some(), events = events.len(), "job.status answered from the store");
    let mut ev = plain_event(meta, "job.status", data);
    ev.event.document = job.as_ref().map(document_ref).or(queried);
    db.enqueue_events(&[ev]).await?;
    Ok(Disposition::Ack)
}

/// The query as it was understood (a number `request_id` as its text, names upper-cased).
fn query_json(q: &StatusQuery) -> Value {
    match q {
        StatusQuery::RequestId(r) => json!({"request_id": r}),
        StatusQuery::JobId(id) => json!({"job_id": id}),
        StatusQuery::Document { key, date } => json!({
            "gstin": key.gstin.as_str(),
            "document": {"doc_type": key.doc_type.as_str(), "doc_number": key.doc_number.as_str(), "doc_date": date.to_string()},
        }),
    }
}

/// The job's last errors as error items (`None` when it has none).
fn last_errors(stored: Option<&Value>) -> Option<Vec<ErrorItem>> {
    let items: Vec<ErrorItem> = serde_json::from_value(stored?.clone()).ok()?;
    (!items.is_empty()).then_some(items)
}

fn ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t))
}

fn event_json(e: &SentEvent) -> Value {
    json!({
        "event_type": e.event_type,
        "event_id": e.event_id,
        "occurred_at": e.occurred_at.clone().map_or_else(|| json!(e.created_at), Value::String),
        "request_id": e.request_id,
        "command_message_id": e.command_message_id,
        "published": e.published_at.is_some(),
        "published_at": ts(e.published_at),
    })
}
