//! Result events: what the worker publishes for every command it finishes.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{DocDate, DocumentKey, Problem};

/// The document an event is about, as the ERP names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub gstin: String,
    pub doc_type: String,
    pub doc_number: String,
    pub financial_year: String,
    pub doc_date: Option<String>,
}

impl DocumentRef {
    pub fn new(key: &DocumentKey, date: Option<DocDate>) -> Self {
        Self {
            gstin: key.gstin.to_string(),
            doc_type: key.doc_type.as_str().to_string(),
            doc_number: key.doc_number.as_str().to_string(),
            financial_year: key.financial_year.to_string(),
            doc_date: date.map(|d| d.to_string()),
        }
    }
}

/// Where an error came from: our validation, the envelope, or the IRP itself. An ERP handles
/// all three alike; the source only tells it who found the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorSource {
    Envelope,
    Validation,
    Irp,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorItem {
    pub source: ErrorSource,
    pub path: String,
    pub code: String,
    pub message: String,
}

impl ErrorItem {
    pub fn from_problem(source: ErrorSource, p: Problem) -> Self {
        Self { source, path: p.path, code: p.code, message: p.message }
    }
    pub fn irp(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: ErrorSource::Irp, path: String::new(), code: code.into(), message: message.into() }
    }
    pub fn worker(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: ErrorSource::Worker, path: String::new(), code: code.into(), message: message.into() }
    }
}

/// Identity of the command an event answers; copied into every event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandMeta {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub request_id: Option<String>,
}

/// Not terminal: a generate call may have reached the IRP and the worker is settling it by
/// lookup; `irn.generated` or `irn.failed` follows.
pub const IRN_IN_DOUBT: &str = "irn.in_doubt";

/// The event envelope. `data` holds the type-specific fields documented in `docs/asyncapi.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub job_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub command_message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub provider: Option<String>,
    pub document: Option<DocumentRef>,
    pub data: Value,
}

impl Event {
    pub fn new(event_type: impl Into<String>, meta: &CommandMeta, data: Value) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            occurred_at: Utc::now(),
            job_id: None,
            request_id: meta.request_id.clone(),
            command_message_id: meta.message_id.clone(),
            correlation_id: meta.correlation_id.clone(),
            provider: None,
            document: None,
            data,
        }
    }
    pub fn with_job(mut self, job_id: Uuid) -> Self {
        self.job_id = Some(job_id);
        self
    }
    pub fn with_document(mut self, doc: DocumentRef) -> Self {
        self.document = Some(doc);
        self
    }
    pub fn with_provider(mut self, provider: &str) -> Self {
        self.provider = Some(provider.to_string());
        self
    }
}
