//! The runtime: job handlers and the worker that wires AMQP, Postgres and the IRP together.
//!
//! - [`authorize`]: who may ask for what (`reply_to`, publishers, the worker's own commands);
//! - [`context`]: what every handler shares (settings, pool, sessions, providers);
//! - [`calls`]: one IRP call with backoff, re-auth once on 1005, and the ambiguity rule;
//! - [`guard`]: rate limits, throttling (429/658) and the daily error budget of a GSTIN;
//! - [`jobs`]: the job handlers, one module per job kind, reached through one `dispatch`
//!   (`irn.generate`, the path that must never register a document twice, is [`jobs::generate`];
//!   `reconcile.rejected` runs are [`jobs::reconcile`]);
//! - [`events`]: building result events from job rows;
//! - [`span`]: the per-message tracing span and the ids recorded into it;
//! - [`scheduler`]: the optional cron schedule that starts one reconciliation run per tick;
//! - [`status`]: per-GSTIN IRP health and the metrics sampler; [`health`]: the HTTP endpoints;
//! - [`fair_share`]: the per-GSTIN cap on jobs in flight in one process;
//! - [`pause_cache`]: which GSTINs are paused, read from Postgres once a second, not per command;
//! - [`retention`]: deleting old published events and finished jobs;
//! - [`usage`]: writing the IRP call counts (API consumption) to Postgres every few seconds;
//! - [`worker`]: the consumer loop, dispositions, rescheduling and graceful shutdown.
pub mod attempts;
pub mod authorize;
pub mod calls;
pub mod context;
pub mod events;
pub mod expiry;
pub mod fair_share;
pub mod gstins;
pub mod guard;
pub mod health;
pub mod jobs;
pub mod pause_cache;
pub mod retention;
pub mod scheduler;
pub mod span;
pub mod status;
pub mod usage;
pub mod worker;

pub use context::Ctx;
pub use worker::{run, WorkerHandle};

use crate::domain::event::ErrorItem;

/// What to do with the AMQP delivery once the handler has committed its outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// The outcome (and its events) is committed: ack.
    Ack,
    /// Unreadable message: its rejection event is committed; reject without requeue so the
    /// broker dead-letters the original bytes to `einvoice.dead`.
    DeadLetter,
    /// Transient trouble outlasted the in-process budget: republish through the next retry
    /// tier (the failure count becomes `attempt + 1`), then ack.
    Reschedule { attempt: u32, errors: Vec<ErrorItem> },
    /// A benign wait whose end is known (another attempt holds the document, the GSTIN is
    /// paused): republish to come back at `until`, keeping the failure count at `attempt`.
    Wait { until: chrono::DateTime<chrono::Utc>, attempt: u32, errors: Vec<ErrorItem> },
}
