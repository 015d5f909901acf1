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

/// A rejected command's document fields exactly as it gave them (valid or not), as plain
/// strings: what the ERP sent, to match the rejection to its record even when the key itself is
/// what was wrong. Control characters in them are escaped when the event is stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentAsGiven {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gstin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_date: Option<String>,
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
    /// This delivery's handling: the owner of the leases it takes, the same when the worker
    /// handles the delivery again (after the database came back), so it finds its own lease.
    #[serde(skip)]
    pub handling: Option<Uuid>,
}

/// Not terminal: a generate call may have reached the IRP and the worker is settling it by
/// lookup; `irn.generated` or `irn.failed` follows.
pub const IRN_IN_DOUBT: &str = "irn.in_doubt";

/// The major version of the message contract (`docs/asyncapi.yaml`) this worker speaks: every
/// event carries it as `schema_version`, and a command may name it (absent means 1). Compatible
/// changes (a new optional field, a new event type or command, a new error code) keep it; a field
/// removed, renamed or retyped, or a meaning changed, makes a new major.
pub const SCHEMA_VERSION: u32 = 1;

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// The event envelope. `data` holds the type-specific fields documented in `docs/asyncapi.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// [`SCHEMA_VERSION`] (events stored before the field existed read back as 1).
    #[serde(default = "schema_version")]
    pub schema_version: u32,
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
            schema_version: SCHEMA_VERSION,
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
