//! What the process knows of its own health: the last IRP answers per GSTIN (in memory), and
//! a sampler that turns store counts and the dead-letter queue depth into gauges.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::domain::outcome::{Class, Operation};
use crate::irp::IrpError;
use crate::telemetry::metrics as m;

/// How one GSTIN's IRP calls have gone in this process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GstinHealth {
    pub irp: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The last failure, as the worker reports it (never a secret: IRP error text only).
    pub last_failure: Option<String>,
    pub last_failure_class: Option<&'static str>,
    pub consecutive_failures: u32,
    /// The IRP refused this GSTIN's credentials (or its configuration) on the last call.
    pub credentials_failing: bool,
}

/// Per-GSTIN IRP health, updated by every IRP call.
#[derive(Debug, Default, Clone)]
pub struct IrpHealth {
    inner: Arc<Mutex<BTreeMap<String, GstinHealth>>>,
}

/// Keep failure texts short in `/status`: an IRP's HTML error page is not a status.
const MAX_FAILURE_TEXT: usize = 300;

impl IrpHealth {
    pub fn record_success(&self, gstin: &str, irp: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(gstin.to_string()).or_default();
        h.irp = irp.to_string();
        h.last_success_at = Some(Utc::now());
        h.consecutive_failures = 0;
        h.credentials_failing = false;
    }

    pub fn record_failure(&self, gstin: &str, irp: &str, op: Operation, class: Class, err: &IrpError) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(gstin.to_string()).or_default();
        h.irp = irp.to_string();
        h.last_failure_at = Some(Utc::now());
        let mut text = err.to_string();
        if text.len() > MAX_FAILURE_TEXT {
            let cut = (0..=MAX_FAILURE_TEXT).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        h.last_failure = Some(text);
        h.last_failure_class = Some(class.as_str());
        h.consecutive_failures += 1;
        h.credentials_failing = class == Class::Configuration && op == Operation::Auth;
    }

    pub fn get(&self) -> BTreeMap<String, GstinHealth> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How often the sampler refreshes the gauges.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Refresh the store-backed gauges (outbox backlog and age, paused GSTINs, in-doubt and failed
/// jobs, the error budget per GSTIN) and the dead-letter depth until `stop`.
pub async fn sample(ctx: Arc<Ctx>, channel: lapin::Channel, stop: CancellationToken) {
    loop {
        match ctx.db.snapshot().await {
            Ok(s) => {
                metrics::gauge!(m::OUTBOX_BACKLOG).set(s.outbox_backlog as f64);
                metrics::gauge!(m::OUTBOX_OLDEST).set(s.outbox_oldest_secs);
                metrics::gauge!(m::GSTINS_PAUSED).set(s.gstins_paused as f64);
                metrics::gauge!(m::JOBS_IN_DOUBT).set(s.jobs_in_doubt as f64);
                metrics::gauge!(m::JOBS_FAILED).set(s.jobs_failed_24h as f64);
            }
            Err(e) => tracing::debug!(error = %e, "metrics sampler: the store did not answer"),
        }
        super::guard::sample_budget(&ctx).await;
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        match channel.queue_declare(ctx.topology.dead.as_str().into(), passive, Default::default()).await {
            Ok(q) => metrics::gauge!(m::DEAD_LETTERS).set(f64::from(q.message_count())),
            Err(e) => tracing::debug!(error = %e, "metrics sampler: could not read the dead-letter queue's depth"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}
