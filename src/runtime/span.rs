//! One tracing span per message, and the ids recorded into it as they become known.
//!
//! Fields known only after parsing (request id, GSTIN, document) and claiming (job id) are
//! recorded into the span later, so every line of one invoice's handling carries them:
//! `jq 'select(.span.correlation_id == "…")'`.
use lapin::message::Delivery;

/// The span of one delivery, carrying what an operator searches by.
pub fn command_span(delivery: &Delivery) -> tracing::Span {
    let p = &delivery.properties;
    let span = tracing::info_span!(
        "command",
        routing_key = %delivery.routing_key,
        message_id = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        request_id = tracing::field::Empty,
        job_id = tracing::field::Empty,
        gstin = tracing::field::Empty,
        document = tracing::field::Empty,
        redelivered = delivery.redelivered,
    );
    // Below the log level the span is disabled: nothing to record (and nothing to copy).
    if span.is_disabled() {
        return span;
    }
    if let Some(id) = p.message_id() {
        span.record("message_id", id.as_str());
    }
    if let Some(id) = p.correlation_id() {
        span.record("correlation_id", id.as_str());
    }
    span
}

/// Record the job id on the current message's span (handlers call this once they have a job).
pub fn record_job_id(job_id: uuid::Uuid) {
    tracing::Span::current().record("job_id", tracing::field::display(job_id));
}

/// Record the command's request id on the current message's span.
pub fn record_request_id(request_id: &str) {
    tracing::Span::current().record("request_id", request_id);
}

/// Record what a parsed command is about: its GSTIN and its subject (document or IRN).
pub fn record_command(gstin: Option<&str>, subject: Option<&str>) {
    let span = tracing::Span::current();
    if let Some(g) = gstin {
        span.record("gstin", g);
    }
    if let Some(s) = subject {
        span.record("document", s);
    }
}
