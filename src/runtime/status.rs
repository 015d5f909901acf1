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

/// How one GSTIN's calls to one IRP have gone in this process.
#[derive(Debug, Clone, Serialize)]
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
    /// `closed` (calls go through), `open` (no calls until `circuit_open_until`) or `half_open`
    /// (the open period has passed: calls probe the IRP; one failure re-opens, a success closes).
    pub circuit: &'static str,
    pub circuit_open_until: Option<DateTime<Utc>>,
    /// Consecutive transport failures / 5xx answers (what opens the circuit).
    #[serde(skip)]
    outage_failures: u32,
}

/// An IRP not called yet: its circuit is closed.
impl Default for GstinHealth {
    fn default() -> Self {
        GstinHealth {
            irp: String::new(),
            last_success_at: None,
            last_failure_at: None,
            last_failure: None,
            last_failure_class: None,
            consecutive_failures: 0,
            credentials_failing: false,
            circuit: "closed",
            circuit_open_until: None,
            outage_failures: 0,
        }
    }
}

/// Per (GSTIN, IRP) health and circuit breaker, updated by every IRP call.
#[derive(Debug, Default, Clone)]
pub struct IrpHealth {
    inner: Arc<Mutex<BTreeMap<(String, String), GstinHealth>>>,
    breaker: Breaker,
}

/// When a circuit opens and for how long (`EINVOICE_BREAKER_FAILURES`, `EINVOICE_BREAKER_OPEN_SECS`).
#[derive(Debug, Clone, Copy)]
pub struct Breaker {
    pub failures: u32,
    pub open_secs: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { failures: 5, open_secs: 30 }
    }
}

/// Keep failure texts short in `/status`: an IRP's HTML error page is not a status.
const MAX_FAILURE_TEXT: usize = 300;

fn key(gstin: &str, irp: &str) -> (String, String) {
    (gstin.to_ascii_uppercase(), irp.to_string())
}

impl IrpHealth {
    pub fn new(breaker: Breaker) -> IrpHealth {
        IrpHealth { inner: Default::default(), breaker }
    }

    pub fn record_success(&self, gstin: &str, irp: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(key(gstin, irp)).or_default();
        h.irp = irp.to_string();
        h.last_success_at = Some(Utc::now());
        h.consecutive_failures = 0;
        h.outage_failures = 0;
        h.credentials_failing = false;
        h.circuit = "closed";
        h.circuit_open_until = None;
    }

    pub fn record_failure(&self, gstin: &str, irp: &str, op: Operation, class: Class, err: &IrpError) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(key(gstin, irp)).or_default();
        h.irp = irp.to_string();
        let now = Utc::now();
        h.last_failure_at = Some(now);
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
        // Only "the IRP is not there" counts towards the breaker: an answer (a rejection, a 4xx,
        // a 429) means the IRP is up.
        let outage = class == Class::Transient && !err.is_error_response() && !err.is_throttled();
        if outage {
            h.outage_failures += 1;
            if h.outage_failures >= self.breaker.failures.max(1) {
                let until = now + chrono::Duration::seconds(self.breaker.open_secs as i64);
                if h.circuit != "open" {
                    tracing::warn!(gstin, irp, until = %until, failures = h.outage_failures, "IRP circuit opened: no calls to it until then");
                }
                h.circuit = "open";
                h.circuit_open_until = Some(until);
            }
        }
    }

    /// `Err(until)` while the (GSTIN, IRP) circuit is open: do not call it before then.
    pub fn check(&self, gstin: &str, irp: &str) -> Result<(), DateTime<Utc>> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(h) = map.get_mut(&key(gstin, irp)) else { return Ok(()) };
        match h.circuit_open_until {
            Some(until) if until > Utc::now() => Err(until),
            Some(_) => {
                h.circuit = "half_open";
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Every (GSTIN, IRP) this process has called, with its state.
    pub fn get(&self) -> BTreeMap<(String, String), GstinHealth> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = Utc::now();
        for h in map.values_mut() {
            if h.circuit == "open" && h.circuit_open_until.is_some_and(|u| u <= now) {
                h.circuit = "half_open";
            }
        }
        map
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
