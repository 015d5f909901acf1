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
///
/// With a store ([`IrpHealth::with_store`]) the breaker is shared by every worker process
/// (migration 0012): outage failures are counted in `irp_circuits`, an opening there stops every
/// process's calls, and [`listen`] keeps this process's copy current from the table's
/// notifications. The copy is authoritative for "closed": a call on a closed circuit reads no
/// table. Only a half-open circuit asks the store, so that one call at a time probes the IRP.
#[derive(Default, Clone)]
pub struct IrpHealth {
    inner: Arc<Mutex<BTreeMap<(String, String), GstinHealth>>>,
    breaker: Breaker,
    shared: Option<crate::store::Db>,
}

impl std::fmt::Debug for IrpHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrpHealth").field("breaker", &self.breaker).field("shared", &self.shared.is_some()).finish()
    }
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

/// How long a half-open circuit's probe holds off the other calls (across processes): about one
/// IRP call. They come back when it ends, by then closed (a success) or open again (a failure).
pub const PROBE_LEASE_SECS: f64 = 5.0;

/// How often [`listen`] re-reads `irp_circuits` whole, in case a notification was missed.
pub const CIRCUIT_REFRESH: Duration = Duration::from_secs(10);

/// Keep failure texts short in `/status`: an IRP's HTML error page is not a status.
const MAX_FAILURE_TEXT: usize = 300;

fn key(gstin: &str, irp: &str) -> (String, String) {
    (gstin.to_ascii_uppercase(), irp.to_string())
}

/// What a failed call says about the IRP's availability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Evidence {
    /// Not there: a transport failure or a 5xx (counts towards opening the circuit).
    Outage,
    /// It answered (an IRP error code): it is up.
    Answered,
    /// Neither (a throttle, a refused token, a configuration error).
    Neither,
}

impl GstinHealth {
    /// Has anything been recorded since the circuit was last clean (a failure, an opening)?
    fn dirty(&self) -> bool {
        self.outage_failures > 0 || self.circuit_open_until.is_some()
    }

    fn close(&mut self) {
        self.outage_failures = 0;
        self.circuit = "closed";
        self.circuit_open_until = None;
    }
}

impl IrpHealth {
    pub fn new(breaker: Breaker) -> IrpHealth {
        IrpHealth { inner: Default::default(), breaker, shared: None }
    }

    /// Share the circuits through `db` (see the type's documentation).
    pub fn with_store(mut self, db: crate::store::Db) -> IrpHealth {
        self.shared = Some(db);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), GstinHealth>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call succeeded: the circuit closes (here, and for every process when it was not clean).
    pub async fn succeeded(&self, gstin: &str, irp: &str) {
        if self.record_success(gstin, irp) {
            self.close_shared(gstin, irp).await;
        }
    }

    /// A call failed: record it, and share what it says about the IRP's availability.
    pub async fn failed(&self, gstin: &str, irp: &str, op: Operation, class: Class, err: &IrpError) {
        let (evidence, was_dirty) = self.record_failure(gstin, irp, op, class, err);
        let Some(db) = &self.shared else { return };
        match evidence {
            Evidence::Outage => match db
                .circuit_failure(&gstin.to_ascii_uppercase(), irp, self.breaker.failures.max(1), self.breaker.open_secs)
                .await
            {
                Ok((failures, until)) => self.apply_failures(gstin, irp, failures, until),
                Err(e) => {
                    tracing::warn!(gstin, irp, error = %e, "could not share an IRP failure; this process's circuit decides alone")
                }
            },
            Evidence::Answered if was_dirty => self.close_shared(gstin, irp).await,
            _ => {}
        }
    }

    async fn close_shared(&self, gstin: &str, irp: &str) {
        if let Some(db) = &self.shared {
            if let Err(e) = db.circuit_close(&gstin.to_ascii_uppercase(), irp).await {
                tracing::warn!(gstin, irp, error = %e, "could not share an IRP's recovery; other processes learn it from their own calls");
            }
        }
    }

    /// Record a success; true when the circuit was not clean before (the store must hear of it).
    pub fn record_success(&self, gstin: &str, irp: &str) -> bool {
        let mut map = self.lock();
        let h = map.entry(key(gstin, irp)).or_default();
        let was_dirty = h.dirty();
        if h.circuit != "closed" {
            tracing::info!(gstin, irp, "IRP circuit closed: the IRP answered");
        }
        h.irp = irp.to_string();
        h.last_success_at = Some(Utc::now());
        h.consecutive_failures = 0;
        h.credentials_failing = false;
        h.close();
        was_dirty
    }

    /// Record a failure: what it says about the IRP, and whether the circuit was not clean before.
    pub fn record_failure(
        &self,
        gstin: &str,
        irp: &str,
        op: Operation,
        class: Class,
        err: &IrpError,
    ) -> (Evidence, bool) {
        let mut map = self.lock();
        let h = map.entry(key(gstin, irp)).or_default();
        let was_dirty = h.dirty();
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
        if matches!(err, IrpError::CircuitOpen { .. }) {
            // Our own refusal to call: no news about the IRP.
            return (Evidence::Neither, was_dirty);
        }
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
            return (Evidence::Outage, was_dirty);
        }
        if err.is_error_response() {
            // The IRP answered (a rejection is an answer): it is up.
            h.close();
            return (Evidence::Answered, was_dirty);
        }
        (Evidence::Neither, was_dirty)
    }

    /// The store's count after one of our failures: it decides the opening for every process.
    fn apply_failures(&self, gstin: &str, irp: &str, failures: u32, until: Option<DateTime<Utc>>) {
        let mut map = self.lock();
        let h = map.entry(key(gstin, irp)).or_default();
        h.irp = irp.to_string();
        h.outage_failures = h.outage_failures.max(failures);
        if let Some(until) = until {
            if h.circuit != "open" && until > Utc::now() {
                tracing::warn!(gstin, irp, until = %until, failures, "IRP circuit opened (shared): no calls to it until then");
            }
            let until = h.circuit_open_until.map_or(until, |u| u.max(until));
            h.circuit_open_until = Some(until);
            h.circuit = if until > Utc::now() { "open" } else { "half_open" };
        }
    }

    /// A circuit as the store has it now (a notification, or a refresh): it replaces ours.
    pub fn apply_shared(&self, c: &crate::store::circuits::SharedCircuit) {
        let mut map = self.lock();
        let h = map.entry(key(&c.gstin, &c.irp)).or_default();
        h.irp = c.irp.clone();
        match c.open_until {
            _ if c.failures == 0 => h.close(),
            None => {
                h.outage_failures = c.failures;
                h.circuit = "closed";
                h.circuit_open_until = None;
            }
            Some(until) => {
                if h.circuit == "closed" && until > Utc::now() {
                    tracing::warn!(gstin = c.gstin, irp = c.irp, until = %until, failures = c.failures, "IRP circuit opened by another process: no calls to it until then");
                }
                h.outage_failures = c.failures;
                h.circuit_open_until = Some(until);
                h.circuit = if until > Utc::now() { "open" } else { "half_open" };
            }
        }
    }

    /// The store's whole table (a refresh): circuits it no longer has are closed.
    pub fn apply_all(&self, circuits: &[crate::store::circuits::SharedCircuit]) {
        {
            let mut map = self.lock();
            for ((g, irp), h) in map.iter_mut() {
                if h.dirty() && !circuits.iter().any(|c| c.gstin.eq_ignore_ascii_case(g) && &c.irp == irp) {
                    h.close();
                }
            }
        }
        for c in circuits {
            self.apply_shared(c);
        }
    }

    /// `Err(until)` while the (GSTIN, IRP) circuit is open: do not call it before then. Local
    /// only (no store round trip): a half-open circuit is `Ok` here; [`IrpHealth::admit`] then
    /// decides which call probes it.
    pub fn check(&self, gstin: &str, irp: &str) -> Result<(), DateTime<Utc>> {
        let mut map = self.lock();
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

    /// Is the circuit closed (not open, not half-open)?
    pub fn is_closed(&self, gstin: &str, irp: &str) -> bool {
        self.lock().get(&key(gstin, irp)).is_none_or(|h| h.circuit_open_until.is_none())
    }

    /// May a call go to the IRP now? [`IrpHealth::check`], and for a half-open circuit shared
    /// through the store, the probe lease: one call at a time across processes; the others get
    /// `Err(until)` (the probe's end, or the re-opened circuit's). A store that does not answer
    /// leaves the decision to this process.
    pub async fn admit(&self, gstin: &str, irp: &str) -> Result<(), DateTime<Utc>> {
        self.check(gstin, irp)?;
        if self.is_closed(gstin, irp) {
            return Ok(());
        }
        let Some(db) = &self.shared else { return Ok(()) };
        let owner = uuid::Uuid::new_v4();
        match db.circuit_probe(&gstin.to_ascii_uppercase(), irp, owner, PROBE_LEASE_SECS).await {
            Ok(crate::store::circuits::Probe::Admitted) => Ok(()),
            Ok(crate::store::circuits::Probe::Wait(until)) => Err(until),
            Err(e) => {
                tracing::debug!(gstin, irp, error = %e, "the store did not answer the probe lease; probing anyway");
                Ok(())
            }
        }
    }

    /// Every (GSTIN, IRP) this process has called, with its state.
    pub fn get(&self) -> BTreeMap<(String, String), GstinHealth> {
        let mut map = self.lock().clone();
        let now = Utc::now();
        for h in map.values_mut() {
            if h.circuit == "open" && h.circuit_open_until.is_some_and(|u| u <= now) {
                h.circuit = "half_open";
            }
        }
        map
    }
}

/// Keep `health`'s copy of the shared circuits current until `stop`: LISTEN on
/// [`crate::store::circuits::CHANNEL`] on a connection of its own, re-read the table whole on
/// every (re)connection and every [`CIRCUIT_REFRESH`].
pub async fn listen(health: IrpHealth, target: crate::store::tls::Target, stop: CancellationToken) {
    use crate::store::circuits::{SharedCircuit, CHANNEL};
    let Some(db) = health.shared.clone() else { return };
    loop {
        let connected = match target.connect_listening().await {
            Ok((client, rx)) => match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                Ok(()) => Some((client, rx)),
                Err(e) => {
                    tracing::warn!(error = %crate::store::pg_text(&e), "could not LISTEN for circuit changes; retrying");
                    None
                }
            },
            Err(e) => {
                tracing::debug!(error = %crate::store::pg_text(&e), "circuit listener: the store did not answer; retrying");
                None
            }
        };
        if let Some((_client, mut rx)) = connected {
            loop {
                match db.circuits().await {
                    Ok(all) => health.apply_all(&all),
                    Err(e) => tracing::debug!(error = %e, "circuit refresh: the store did not answer"),
                }
                let refresh = tokio::time::sleep(CIRCUIT_REFRESH);
                tokio::pin!(refresh);
                let ended = loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = &mut refresh => break false,
                        n = rx.recv() => match n {
                            Some(n) => match SharedCircuit::from_payload(n.payload()) {
                                Some(c) => health.apply_shared(&c),
                                None => tracing::warn!(payload = n.payload(), "unreadable circuit notification"),
                            },
                            None => break true,
                        },
                    }
                };
                if ended {
                    tracing::warn!("circuit listener: the connection ended; reconnecting");
                    break;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
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
        let mut open: BTreeMap<String, f64> = BTreeMap::new();
        for ((_, irp), h) in ctx.irp_health.get() {
            *open.entry(irp.to_ascii_lowercase()).or_default() += if h.circuit == "closed" { 0.0 } else { 1.0 };
        }
        for (irp, n) in open {
            metrics::gauge!(m::IRP_CIRCUITS_OPEN, "irp" => irp).set(n);
        }
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
