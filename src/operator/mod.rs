//! The operator's commands (`jobs`, `dead`, `gstin`, `prune`): look at stuck work and act on it
//! without SQL. Each returns typed data; the binary prints it for people or as JSON.
//!
//! Exit codes (the binary maps [`OpError::exit_code`]): 0 done; 1 nothing matched or the action
//! is refused (with the reason); 2 usage error; 3 PostgreSQL or RabbitMQ unreachable.
pub mod cli;
pub mod gstins;
pub mod outside;
pub mod usage;

use chrono::{DateTime, Duration, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::amqp::{self, AmqpError, Topology};
use crate::config::Settings;
use crate::domain::command::JobKind;
use crate::domain::text::escape_controls;
use crate::domain::JobStatus;
use crate::runtime::authorize;
use crate::store::ops::{JobFilter, StoredEvent};
use crate::store::{Db, JobRow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Amqp(#[from] AmqpError),
}

impl OpError {
    pub fn exit_code(&self) -> u8 {
        match self {
            OpError::NotFound(_) | OpError::Refused(_) => 1,
            OpError::Usage(_) => 2,
            OpError::Store(_) | OpError::Amqp(_) => 3,
        }
    }
}

/// One line of `jobs list`.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub job_id: Uuid,
    pub status: String,
    pub gstin: String,
    pub doc_type: String,
    pub doc_number: String,
    pub financial_year: String,
    pub doc_date: Option<String>,
    pub irp: Option<String>,
    pub attempts: i32,
    pub irn: Option<String>,
    pub ack_no: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The first of the last errors, for the one-line view.
    pub last_error: Option<String>,
}

impl From<&JobRow> for JobSummary {
    fn from(j: &JobRow) -> Self {
        JobSummary {
            job_id: j.id,
            status: j.status.to_string(),
            gstin: j.gstin.clone(),
            doc_type: j.doc_type.clone(),
            doc_number: j.doc_number.clone(),
            financial_year: j.financial_year.clone(),
            doc_date: j.doc_date.clone(),
            irp: j.provider.clone(),
            attempts: j.attempts,
            irn: j.irn.clone(),
            ack_no: j.ack_no.clone(),
            updated_at: j.updated_at,
            last_error: j.last_error.as_ref().and_then(first_error),
        }
    }
}

fn first_error(v: &Value) -> Option<String> {
    let e = v.as_array().and_then(|a| a.first()).unwrap_or(v);
    let code = e.get("code").and_then(Value::as_str).unwrap_or("");
    let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
    if code.is_empty() && msg.is_empty() {
        return None;
    }
    Some(format!("{code} {msg}").trim().to_string())
}

/// `jobs show`: the job, its errors and the events sent for it.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub ack_dt: Option<String>,
    pub duplicate: bool,
    pub cancel_date: Option<String>,
    pub errors: Option<Value>,
    pub events: Vec<EventLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventLine {
    pub event_type: String,
    pub event_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl From<&StoredEvent> for EventLine {
    fn from(e: &StoredEvent) -> Self {
        EventLine {
            event_type: e.event_type.clone(),
            event_id: e.payload.get("event_id").and_then(Value::as_str).map(str::to_string),
            created_at: e.created_at,
            published_at: e.published_at,
        }
    }
}

/// `--since`: an RFC 3339 time, or an age such as `30m`, `6h`, `7d`.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, OpError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || OpError::Usage(format!("--since '{s}': give an RFC 3339 time or an age like 30m, 6h, 7d"));
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(bad()),
    };
    Ok(now - d)
}

pub async fn jobs_list(db: &Db, filter: &JobFilter) -> Result<Vec<JobSummary>, OpError> {
    if let Some(s) = &filter.status {
        if s.parse::<JobStatus>().is_err() {
            let all: Vec<&str> = JobStatus::ALL.iter().map(|st| st.as_str()).collect();
            return Err(OpError::Usage(format!("--status '{s}': one of {}", all.join(", "))));
        }
    }
    Ok(db.list_jobs(filter).await?.iter().map(JobSummary::from).collect())
}

/// A job by id or by document key (`GSTIN/TYPE/NUMBER/YEAR`, e.g. `29AAGCP4821K1Z3/INV/R7-1/2026-27`).
pub async fn find_job(db: &Db, key: &str) -> Result<JobRow, OpError> {
    let row = match Uuid::parse_str(key) {
        Ok(id) => db.job(id).await?,
        Err(_) => db.job_by_doc_key(key).await?,
    };
    row.ok_or_else(|| OpError::NotFound(format!("no job has id or document key '{key}'")))
}

pub async fn jobs_show(db: &Db, key: &str) -> Result<JobDetail, OpError> {
    let j = find_job(db, key).await?;
    let events = db.job_events(j.id).await?;
    Ok(JobDetail {
        summary: JobSummary::from(&j),
        first_attempt_at: j.first_attempt_at,
        ack_dt: j.ack_dt.clone(),
        duplicate: j.duplicate,
        cancel_date: j.cancel_date.clone(),
        errors: j.last_error.clone(),
        events: events.iter().map(EventLine::from).collect(),
    })
}

/// What `jobs retry` did.
#[derive(Debug, Clone, Serialize)]
pub struct Retried {
    pub job_id: Uuid,
    pub previous_status: String,
    pub message_id: String,
    pub request_id: String,
    /// How the worker will handle it: a lookup first for an in-doubt job.
    pub path: &'static str,
}

/// Re-publish a failed, in-doubt or refused (rejected) job's `irn.generate` (its stored invoice). The worker takes it
/// through the normal claim: an in-doubt job is looked up at the IRP before any generate call, so
/// a retry can never register a document twice. Refused for other states.
pub async fn jobs_retry(db: &Db, settings: &Settings, key: &str) -> Result<Retried, OpError> {
    let j = find_job(db, key).await?;
    retry_path(&j)?;
    let mut out = jobs_retry_rows(db, settings, std::slice::from_ref(&j)).await?;
    out.pop().expect("one result per job")
}

/// How a retry of `j` will be handled, or why it is refused (only failed, in-doubt or refused
/// jobs with their stored invoice can be sent again).
pub fn retry_path(j: &JobRow) -> Result<&'static str, OpError> {
    let path = match j.status {
        JobStatus::InDoubt => "lookup first (the IRP may already have it), then generate only if it has not",
        JobStatus::Failed => "generate (a failed job was never registered), duplicates resolved by the IRP's 2150",
        // The IRP's refusal may rest on master data fixed since (a buyer's GSTIN, an HSN): the same
        // invoice is sent again on the operator's word; a refusal by our own checks simply recurs.
        JobStatus::Rejected => "generate again with the stored invoice (refused before; the master data behind the refusal may be fixed since)",
        other => {
            return Err(OpError::Refused(format!(
                "job {} is {other}: only failed, in_doubt or rejected jobs can be retried{}",
                j.id,
                match other {
                    JobStatus::Generated | JobStatus::Cancelled => " (it has its outcome)",
                    JobStatus::RegisteredOutside | JobStatus::CancelledOutside => {
                        " (an operator marked it as handled outside the worker, on the portal)"
                    }
                    JobStatus::Pending | JobStatus::InFlight | JobStatus::InDoubt | JobStatus::Failed | JobStatus::Rejected => {
                        " (it is being handled; look again later)"
                    }
                }
            )))
        }
    };
    if j.request.is_none() {
        return Err(OpError::Refused(format!("job {} has no stored invoice to send again", j.id)));
    }
    Ok(path)
}

/// Retry each of `jobs` (as [`jobs_retry`] does, over one broker connection): one result per
/// job, in order; a refused one does not stop the others. Err only when the broker is unreachable.
pub async fn jobs_retry_rows(
    db: &Db,
    settings: &Settings,
    jobs: &[JobRow],
) -> Result<Vec<Result<Retried, OpError>>, OpError> {
    let conn = amqp::connect(&settings.amqp_url, "einvoice-worker-operator").await?;
    let result = async {
        let ch = amqp::confirm_channel(&conn).await?;
        let topology = Topology::new(settings);
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            let path = match retry_path(j) {
                Ok(p) => p,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            if j.status == JobStatus::Rejected {
                match db.reopen_rejected(j.id).await {
                    Ok(true) => {}
                    Ok(false) => {
                        out.push(Err(OpError::Refused(format!("job {} changed meanwhile: look at it again", j.id))));
                        continue;
                    }
                    Err(e) => {
                        out.push(Err(e.into()));
                        continue;
                    }
                }
            }
            let invoice = j.request.clone().expect("retry_path checked");
            let request_id = format!("operator-retry-{}", j.id);
            let message_id = Uuid::new_v4().to_string();
            let body = json!({"gstin": j.gstin, "invoice": invoice, "request_id": request_id});
            let props = amqp::json_props().with_message_id(message_id.clone().into());
            let bytes = serde_json::to_vec(&body).expect("JSON serialises");
            let rk = JobKind::IrnGenerate.routing_key();
            match amqp::publish_confirmed(&ch, &topology.commands, rk, &bytes, props, true).await {
                Ok(_) => {
                    tracing::info!(job_id = %j.id, status = %j.status, %message_id, "operator re-queued the job");
                    out.push(Ok(Retried {
                        job_id: j.id,
                        previous_status: j.status.to_string(),
                        message_id,
                        request_id,
                        path,
                    }))
                }
                Err(e) => out.push(Err(e.into())),
            }
        }
        Ok::<_, OpError>(out)
    }
    .await;
    let _ = conn.close(200, "done".into()).await;
    result
}

/// One dead-lettered message, as shown to an operator. Anyone allowed to publish a command can
/// put text in these fields, so each is shown with its control characters (C0, DEL, C1) and
/// invisible formatting characters (bidirectional overrides such as U+202E, zero-width
/// characters) written as visible `\u001B`-style escapes ([`shown`]): a body of
/// `\x1b]0;PWNED\x07` must not retitle the operator's terminal, nor U+202E reorder a line.
#[derive(Debug, Clone, Serialize)]
pub struct DeadMessage {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    /// Why RabbitMQ dead-lettered it (`rejected`, `delivery_limit`, `expired`…), from `x-death`.
    pub reason: Option<String>,
    pub dead_lettered_at: Option<i64>,
    pub bytes: usize,
    /// The first 200 characters of the body (line breaks and tabs as spaces).
    pub preview: String,
}

/// Text from a message as it may be printed: every control and invisible formatting character
/// written as `\uXXXX` ([`escape_controls`]).
pub fn shown(s: &str) -> String {
    escape_controls(s).into_owned()
}

/// The start of a message body for a one-line listing: at most 200 characters, line breaks and
/// tabs as spaces, every other control character escaped.
pub fn preview(body: &[u8]) -> String {
    let head: String = String::from_utf8_lossy(body)
        .chars()
        .take(200)
        .map(|c| if matches!(c, '\n' | '\r' | '\t') { ' ' } else { c })
        .collect();
    shown(&head)
}

fn x_death(headers: Option<&FieldTable>) -> (Option<String>, Option<i64>) {
    let Some(AMQPValue::FieldArray(deaths)) = headers.and_then(|h| h.inner().get("x-death")) else {
        return (None, None);
    };
    let Some(AMQPValue::FieldTable(first)) = deaths.as_slice().first() else { return (None, None) };
    let reason = match first.inner().get("reason") {
        Some(AMQPValue::LongString(s)) => Some(shown(&s.to_string())),
        _ => None,
    };
    let time = match first.inner().get("time") {
        Some(AMQPValue::Timestamp(t)) => Some(*t as i64),
        _ => None,
    };
    (reason, time)
}

fn dead_message(d: &lapin::message::Delivery) -> DeadMessage {
    let p = &d.properties;
    let (reason, dead_lettered_at) = x_death(p.headers().as_ref());
    DeadMessage {
        routing_key: shown(d.routing_key.as_str()),
        message_id: p.message_id().as_ref().map(|s| shown(s.as_str())),
        correlation_id: p.correlation_id().as_ref().map(|s| shown(s.as_str())),
        reason,
        dead_lettered_at,
        bytes: d.data.len(),
        preview: preview(&d.data),
    }
}

/// At most this many messages are examined per `dead` command.
pub const DEAD_SCAN_LIMIT: usize = 10_000;

/// Which dead-lettered messages `dead replay` sends again.
pub enum Select<'a> {
    All,
    MessageId(&'a str),
}

/// Look at (`replay = None`) or re-publish dead-lettered messages. Messages are taken with
/// `basic.get` and left unacknowledged unless replayed, so closing the channel returns the rest
/// to the queue untouched. A replayed message goes back to `einvoice.commands` under its own
/// routing key and ids with a fresh retry budget, and is acked only after the broker confirmed
/// the copy: a crash in between leaves it in both places, and the worker's idempotency answers
/// the second copy from the store.
pub async fn dead(settings: &Settings, limit: usize, replay: Option<Select<'_>>) -> Result<Vec<DeadMessage>, OpError> {
    // A replayed command keeps its publisher (configured publishers are checked on it again):
    // the copy cannot carry the original `user_id`, so it carries the worker's seal of it.
    let seals = crate::store::secrets::SecretBox::from_config(settings.token_key.as_ref())
        .map_err(|e| OpError::Usage(e.to_string()))?;
    let conn = amqp::connect(&settings.amqp_url, "einvoice-worker-operator").await?;
    let topology = Topology::new(settings);
    let result = async {
        let get = conn.create_channel().await.map_err(AmqpError::from)?;
        let publish = amqp::confirm_channel(&conn).await?;
        let mut out = Vec::new();
        for _ in 0..DEAD_SCAN_LIMIT {
            if out.len() >= limit {
                break;
            }
            let Some(msg) = get
                .basic_get(topology.dead.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(AmqpError::from)?
            else {
                break;
            };
            let d = &msg.delivery;
            let info = dead_message(d);
            let chosen = match &replay {
                None => true,
                Some(Select::All) => true,
                // The id as sent, not as shown.
                Some(Select::MessageId(id)) => d.properties.message_id().as_ref().is_some_and(|m| m.as_str() == *id),
            };
            if !chosen {
                continue;
            }
            if replay.is_some() {
                let rk = d.routing_key.as_str();
                let mut props = amqp::with_command_ids(amqp::json_props(), &d.properties);
                if let Some(sender) = authorize::sender(&seals, &d.properties, rk, &d.data) {
                    props = props.with_headers(authorize::sealed(&seals, &sender, rk, &d.data));
                }
                amqp::publish_confirmed(&publish, &topology.commands, d.routing_key.as_str(), &d.data, props, true)
                    .await?;
                d.ack(BasicAckOptions::default()).await.map_err(AmqpError::from)?;
            }
            out.push(info);
        }
        let _ = get.close(200, "done".into()).await;
        Ok::<_, OpError>(out)
    }
    .await;
    let _ = conn.close(200, "done".into()).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_since("6h", now).unwrap(), now - Duration::hours(6));
        assert_eq!(parse_since("7d", now).unwrap(), now - Duration::days(7));
        assert_eq!(parse_since("2026-11-29T00:00:00Z", now).unwrap().to_rfc3339(), "2026-11-29T00:00:00+00:00");
        assert!(matches!(parse_since("yesterday", now), Err(OpError::Usage(_))));
        assert!(matches!(parse_since("5w", now), Err(OpError::Usage(_))));
    }

    #[test]
    fn dead_letter_text_is_shown_with_its_control_characters_escaped() {
        let body = "\x1b]0;PWNED\x07{\"gstin\":\"29AAGCP4821K1Z3\u{202E}3Z1K\"}\x7f\u{9b}31m\nnext\tline\x1b[2J";
        let p = preview(body.as_bytes());
        for raw in ['\x1b', '\x07', '\x7f', '\u{9b}', '\u{202E}', '\n', '\t'] {
            assert!(!p.contains(raw), "{raw:?} left raw in {p:?}");
        }
        assert_eq!(
            p,
            "\\u001B]0;PWNED\\u0007{\"gstin\":\"29AAGCP4821K1Z3\\u202E3Z1K\"}\\u007F\\u009B31m next line\\u001B[2J"
        );
        // Invalid UTF-8 is shown, not an error; plain text is as it was.
        assert_eq!(preview(b"{not json\xff"), "{not json\u{FFFD}");
        assert_eq!(shown("irn.generate"), "irn.generate");
        assert_eq!(shown("op-\u{1b}[31m-1"), "op-\\u001B[31m-1");
        // At most 200 characters of the body before escaping.
        assert_eq!(preview("x".repeat(500).as_bytes()).len(), 200);
    }

    #[test]
    fn first_error_reads_the_stored_error_list() {
        let v = json!([{"code": "2150", "message": "Duplicate IRN", "source": "irp"}]);
        assert_eq!(first_error(&v).as_deref(), Some("2150 Duplicate IRN"));
        assert_eq!(first_error(&json!(null)), None);
    }
}
