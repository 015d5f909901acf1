//! Protecting the GSTIN: the worker paces its IRP calls to each credential's quota, slows down
//! when the IRP or GSP says so, and stops a GSTIN before NIC blocks it for errors.
//!
//! - **Rate limits.** A GSTIN's `rate_limit = { requests_per_minute, burst }` is a token bucket per
//!   credential (client ID) and per GSTIN, in Postgres (`rate_buckets`), so every worker process
//!   draws from the same buckets. A caller reserves the next free slot in one statement and
//!   sleeps until it: callers queue in order instead of polling.
//! - **Throttling.** HTTP 429 (with `Retry-After`), 658 and GEN5005 say "slow down": the buckets
//!   are shut for Retry-After (capped at [`MAX_RETRY_AFTER_SECS`]; [`DEFAULT_RETRY_AFTER_SECS`]
//!   without one) so every process waits, and the call goes again without counting as an
//!   attempt or spending the backoff budget. A call waits at most [`max_wait`] in all; past that
//!   it ends transient and the command goes through the retry queue. Never a rejection.
//! - **Error budget.** NIC blocks every e-invoice and e-way bill API of a GSTIN after more than
//!   20,000 error responses, or of a client ID after more than 1 lakh (einv-apisandbox.nic.in,
//!   "Note on top errors"). Each error response is counted per India day, per GSTIN and per
//!   client ID (`irp_error_counts`); at `error_budget_warn_share` of a threshold the worker warns
//!   once (`gstin.error_budget`), at `error_budget_pause_share` it pauses the GSTIN until India
//!   midnight (`gstin.paused`, `ERROR_BUDGET`).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::json;

use super::Ctx;
use crate::domain::event::{CommandMeta, ErrorItem, Event};
use crate::irp::{IrpError, IrpProvider};
use crate::store::outbox::OutboxEvent;
use crate::telemetry::metrics as m;

/// A `Retry-After` longer than this is cut to it: the durable retry path handles longer waits.
pub const MAX_RETRY_AFTER_SECS: u64 = 60;
/// The wait after a throttle that named none (658, GEN5005, a 429 without `Retry-After`).
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 10;
/// Throttles one call honours before it gives up (transient: the retry queue takes over).
pub const MAX_THROTTLES_PER_CALL: u32 = 3;
/// The event a warning of the error budget publishes.
pub const ERROR_BUDGET_EVENT: &str = "gstin.error_budget";

/// The longest one IRP call waits for rate limits and throttles in total: 60 s, and at most half
/// the generate lease (`EINVOICE_LEASE_SECS`), which must outlast the wait and the call itself.
pub fn max_wait(ctx: &Ctx) -> Duration {
    let half_lease = u64::try_from(ctx.settings.lease_secs / 2).unwrap_or(0);
    Duration::from_secs(half_lease.clamp(1, 60))
}

/// Throttles this process has seen, per bucket key: the next call on that key waits until then.
/// Postgres shares throttles among processes for credentials with a `rate_limit`; without one,
/// each process learns from its own 429s (no store round trip on every call).
#[derive(Debug, Default)]
pub struct Local {
    blocked: Mutex<HashMap<String, Instant>>,
}

impl Local {
    fn block(&self, keys: &[String], until: Instant) {
        let mut map = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, t| *t > now);
        for k in keys {
            let t = map.entry(k.clone()).or_insert(until);
            *t = (*t).max(until);
        }
    }

    fn blocked_until(&self, keys: &[String]) -> Option<Instant> {
        let map = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        keys.iter().filter_map(|k| map.get(k)).copied().filter(|t| *t > now).max()
    }
}

/// What one call has spent on waiting so far.
#[derive(Debug, Default)]
pub struct Pacing {
    waited: Duration,
    throttles: u32,
}

/// The rate buckets of this credential and GSTIN at this IRP.
fn bucket_keys(gstin: &str, provider: &dyn IrpProvider) -> [String; 2] {
    let irp = provider.irp();
    [format!("client:{irp}:{}", provider.client_id()), format!("gstin:{irp}:{gstin}")]
}

/// The error budget's keys: NIC counts per GSTIN and per client ID.
fn budget_keys(gstin: &str, provider: &dyn IrpProvider) -> [String; 2] {
    budget_keys_of(gstin, provider.irp(), provider.client_id())
}

/// [`budget_keys`] from the IRP's name and the client ID (a provider's `irp()` and `client_id()`
/// are its section's `irp_name()` and `client_id`).
fn budget_keys_of(gstin: &str, irp: &str, client_id: &str) -> [String; 2] {
    [format!("gstin:{gstin}"), format!("client:{irp}:{client_id}")]
}

async fn sleep_counted(d: Duration, pacing: &mut Pacing, irp: &str) {
    tokio::time::sleep(d).await;
    pacing.waited += d;
    // Counters are whole numbers and most waits are under a second: keep the exact sum per IRP
    // (process-wide, like the recorder) and export its whole seconds.
    static WAITED: Mutex<Option<HashMap<String, f64>>> = Mutex::new(None);
    let total = {
        let mut map = WAITED.lock().unwrap_or_else(|e| e.into_inner());
        let t = map.get_or_insert_with(HashMap::new).entry(irp.to_string()).or_insert(0.0);
        *t += d.as_secs_f64();
        *t
    };
    metrics::counter!(m::RATE_LIMIT_WAIT, "irp" => irp.to_string()).absolute(total.floor() as u64);
}

/// Wait until both buckets (credential and GSTIN) allow a call, and take a token from each.
/// [`IrpError::RateLimited`] when that would take longer than the call may still wait.
pub async fn acquire(ctx: &Ctx, gstin: &str, provider: &dyn IrpProvider, pacing: &mut Pacing) -> Result<(), IrpError> {
    let keys = bucket_keys(gstin, provider);
    let irp = provider.irp().to_ascii_lowercase();
    let limit = max_wait(ctx);
    // Each pass sleeps; a pass repeats only after a throttle drained the buckets meanwhile.
    for _ in 0..=MAX_THROTTLES_PER_CALL {
        let left = limit.saturating_sub(pacing.waited);
        if let Some(until) = ctx.guard.blocked_until(&keys) {
            let wait = until.saturating_duration_since(Instant::now());
            if wait > left {
                return Err(IrpError::RateLimited { wait_secs: wait.as_secs_f64().ceil() as u64 });
            }
            sleep_counted(wait, pacing, &irp).await;
        }
        let Some(rl) = provider.rate_limit() else {
            return Ok(());
        };
        let left = limit.saturating_sub(pacing.waited).as_secs_f64();
        let a = match ctx.db.rate_acquire(&keys, rl.per_second(), f64::from(rl.burst), left).await {
            Ok(a) => a,
            Err(e) => {
                // The store is down: the call would fail at its own writes anyway; do not hold
                // the IRP call hostage to the pacing table (a 429 still slows us down).
                tracing::warn!(gstin, error = %e, "rate limit not checked: the store did not answer");
                return Ok(());
            }
        };
        if !a.taken {
            tracing::info!(gstin, irp, wait_secs = a.wait_secs, "rate limit: no slot within this call's wait");
            return Err(IrpError::RateLimited { wait_secs: a.wait_secs.ceil() as u64 });
        }
        if a.wait_secs <= 0.0 {
            return Ok(());
        }
        tracing::debug!(gstin, irp, wait_ms = (a.wait_secs * 1000.0) as u64, "rate limit: waiting for a slot");
        sleep_counted(Duration::from_secs_f64(a.wait_secs), pacing, &irp).await;
        // A throttle while we slept cancelled every reservation, ours included: queue again.
        match ctx.db.rate_drains(&keys).await {
            Ok(d) if d != a.drains => continue,
            _ => return Ok(()),
        }
    }
    Err(IrpError::RateLimited { wait_secs: limit.as_secs() })
}

/// A throttling answer (429, 658, GEN5005): shut this credential's buckets for its Retry-After,
/// in this process and (with a `rate_limit`) for every process. True when the call may go again
/// (the wait happens in the next [`acquire`]); false when it has been throttled too often or
/// cannot wait that long, and should end transient.
pub async fn on_throttled(
    ctx: &Ctx,
    gstin: &str,
    provider: &dyn IrpProvider,
    err: &IrpError,
    pacing: &mut Pacing,
) -> bool {
    let irp = provider.irp().to_ascii_lowercase();
    metrics::counter!(m::IRP_THROTTLED, "irp" => irp.clone()).increment(1);
    let secs = err.retry_after().unwrap_or(DEFAULT_RETRY_AFTER_SECS).clamp(1, MAX_RETRY_AFTER_SECS);
    let keys = bucket_keys(gstin, provider);
    ctx.guard.block(&keys, Instant::now() + Duration::from_secs(secs));
    if provider.rate_limit().is_some() {
        if let Err(e) = ctx.db.rate_drain(&keys, secs as f64).await {
            tracing::warn!(gstin, error = %e, "could not share the throttle with other workers: the store did not answer");
        }
    }
    pacing.throttles += 1;
    let again =
        pacing.throttles <= MAX_THROTTLES_PER_CALL && pacing.waited + Duration::from_secs(secs) <= max_wait(ctx);
    tracing::warn!(
        gstin,
        irp,
        retry_after_secs = secs,
        throttles = pacing.throttles,
        will_retry = again,
        error = %err,
        "the IRP is throttling this credential; slowing down"
    );
    again
}

/// Which threshold a day's count has reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Fine,
    /// The count just reached the warning share (exactly once per day and key).
    Warn {
        warn_at: i64,
        pause_at: i64,
    },
    /// At or past the pause share.
    Pause {
        warn_at: i64,
        pause_at: i64,
    },
}

/// Where `count` stands against `threshold` (NIC's blocking count) and the shares.
pub fn budget(count: i64, threshold: u64, warn_share: f64, pause_share: f64) -> Budget {
    let t = threshold as f64;
    let warn_at = ((t * warn_share).ceil() as i64).max(1);
    let pause_at = ((t * pause_share).ceil() as i64).max(warn_at + 1);
    if count >= pause_at {
        Budget::Pause { warn_at, pause_at }
    } else if count == warn_at {
        Budget::Warn { warn_at, pause_at }
    } else {
        Budget::Fine
    }
}

/// The start of the next India day: when NIC's daily count, and an error-budget pause, end.
pub fn next_india_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tz = chrono_tz::Asia::Kolkata;
    let tomorrow = now.with_timezone(&tz).date_naive().succ_opt().unwrap_or(NaiveDate::MAX);
    let midnight = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default();
    // India has no daylight saving time: every local time exists exactly once.
    tz.from_local_datetime(&midnight).single().map(|t| t.with_timezone(&Utc)).unwrap_or(now)
}

/// An event about the GSTIN rather than a command (published on `einvoice.events` only).
fn gstin_event(provider: &dyn IrpProvider, event_type: &str, data: serde_json::Value) -> OutboxEvent {
    let event = Event::new(event_type, &CommandMeta::default(), data).with_provider(provider.kind().as_str());
    OutboxEvent { event, reply_to: None }
}

/// The error budget's share used by a GSTIN: the larger of its own count ÷ its threshold and its
/// credential's count ÷ the client ID threshold.
fn share_used(ctx: &Ctx, gstin_count: i64, client_count: i64) -> f64 {
    let s = &ctx.settings;
    (gstin_count as f64 / s.error_budget_gstin_per_day as f64)
        .max(client_count as f64 / s.error_budget_client_per_day as f64)
}

/// Count one IRP error response against the GSTIN's and the credential's budget of the India
/// day; warn or pause the GSTIN at the configured shares. Store trouble is logged, not raised:
/// the guard must not turn an IRP answer into a Postgres failure of the command.
pub async fn count_error_response(ctx: &Ctx, gstin: &str, provider: &dyn IrpProvider) {
    let now = Utc::now();
    let day = crate::domain::document::india_date(now);
    let keys = budget_keys(gstin, provider);
    let counts = match ctx.db.count_error_response(day, &keys).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(gstin, error = %e, "IRP error response not counted: the store did not answer");
            return;
        }
    };
    let (g, c) = (counts[0], counts[1]);
    // A GSTIN without series of its own is in the unlabelled gauge, the largest share of all of
    // them: the sampler sets that one (within `status::SAMPLE_EVERY`).
    if ctx.settings.metrics_per_gstin.labels(gstin) {
        metrics::gauge!(m::IRP_ERROR_BUDGET_USED, "gstin" => gstin.to_ascii_uppercase()).set(share_used(ctx, g, c));
    }
    let s = &ctx.settings;
    let (warn_share, pause_share) = (s.error_budget_warn_share, s.error_budget_pause_share);
    let scopes = [("gstin", g, s.error_budget_gstin_per_day), ("client_id", c, s.error_budget_client_per_day)];
    let mut paused = false;
    for (scope, count, threshold) in scopes {
        let share = count as f64 / threshold as f64;
        match budget(count, threshold, warn_share, pause_share) {
            Budget::Fine => {}
            Budget::Warn { warn_at, pause_at } => {
                tracing::warn!(
                    gstin,
                    scope,
                    count,
                    threshold,
                    pause_at,
                    %day,
                    "IRP error responses today have reached {:.0}% of NIC's blocking threshold; the GSTIN is paused at {pause_at}",
                    warn_share * 100.0
                );
                let data = json!({
                    "gstin": gstin, "scope": scope, "count": count, "threshold": threshold, "share": share,
                    "warn_at": warn_at, "pause_at": pause_at, "day": day.to_string(),
                });
                emit(ctx, gstin_event(provider, ERROR_BUDGET_EVENT, data)).await;
            }
            Budget::Pause { pause_at, .. } if !paused => {
                // Once per crossing; past it, only when the GSTIN is not paused already (an
                // operator unpaused it, or calls in flight at the pause answered errors too).
                let already = count > pause_at && matches!(ctx.db.paused_until(gstin).await, Ok(Some(_)));
                if already {
                    continue;
                }
                paused = true;
                let whose = match scope {
                    "gstin" => format!("GSTIN {gstin}"),
                    _ => format!("the client ID of GSTIN {gstin}'s credential"),
                };
                let what = match scope {
                    "gstin" => "per GSTIN",
                    _ => "per client ID",
                };
                let errors = vec![ErrorItem::worker(
                    ERROR_BUDGET,
                    format!(
                        "{whose} has had {count} IRP error responses today (India date {day}), {:.0}% of NIC's blocking \
                         threshold of {threshold} {what}: its work is paused until India midnight so that NIC does not \
                         block its e-invoice and e-way bill APIs. Find what keeps failing (rejected commands, \
                         einvoice_irp_errors_total) and fix it; `einvoice-worker gstin unpause {gstin}` resumes sooner",
                        share * 100.0
                    ),
                )];
                let until = next_india_midnight(now);
                let secs = (until - Utc::now()).num_seconds().max(1);
                match ctx.pause_gstin_for(gstin, secs, &errors).await {
                    Ok(data) => emit(ctx, gstin_event(provider, "gstin.paused", data)).await,
                    Err(e) => tracing::warn!(gstin, error = %e, "error budget spent but the pause was not stored"),
                }
            }
            Budget::Pause { .. } => {}
        }
    }
}

/// Store a guard event in the outbox, outside the current command's outcome (a warning is not
/// the command's answer).
async fn emit(ctx: &Ctx, ev: OutboxEvent) {
    let (stored, _) = m::track_outcome(ctx.db.enqueue_events(std::slice::from_ref(&ev))).await;
    match stored {
        Ok(()) => ctx.relay_wake.notify_one(),
        Err(e) => tracing::warn!(event_type = %ev.event.event_type, error = %e, "guard event not stored"),
    }
}

/// Refresh [`m::IRP_ERROR_BUDGET_USED`] for every served GSTIN from the store (the sampler):
/// a new India day starts every gauge at its real count, and other processes' errors show too.
/// GSTINs with series of their own (`metrics_per_gstin`) get theirs; the unlabelled series is
/// the largest share among the others. Reads each GSTIN's section, never builds its clients.
pub async fn sample_budget(ctx: &Ctx) {
    let day = crate::domain::document::india_today();
    let counts: HashMap<String, i64> = match ctx.db.error_counts(day).await {
        Ok(rows) => rows.into_iter().collect(),
        Err(e) => {
            tracing::debug!(error = %e, "error budget gauges: the store did not answer");
            return;
        }
    };
    let per_gstin = &ctx.settings.metrics_per_gstin;
    let mut others = 0.0_f64;
    for gstin in &ctx.providers.gstins() {
        let Some(cfg) = ctx.providers.section(gstin) else { continue };
        let [g, c] =
            budget_keys_of(gstin, &cfg.irp_name(), &cfg.client_id).map(|k| counts.get(&k).copied().unwrap_or(0));
        let share = share_used(ctx, g, c);
        if per_gstin.labels(gstin) {
            metrics::gauge!(m::IRP_ERROR_BUDGET_USED, "gstin" => gstin.clone()).set(share);
        } else {
            others = others.max(share);
        }
    }
    metrics::gauge!(m::IRP_ERROR_BUDGET_USED).set(others);
}

/// The pause reason code of an error-budget pause.
pub const ERROR_BUDGET: &str = "ERROR_BUDGET";

/// Commands an error-budget pause does not hold: registering and cancelling documents and their
/// e-way bills (the business cannot wait until midnight for them, and validation before the call
/// keeps their errors rare). Lookups, GSTIN details, B2C QR fetches and reconciliation wait.
pub fn essential(kind: crate::domain::command::JobKind) -> bool {
    use crate::domain::command::JobKind::*;
    // Exhaustive on purpose: a new kind must be placed on one side or the other.
    match kind {
        // Extending keeps goods lawfully on the road, and a new transporter must be able to act.
        // A verification makes no IRP call: nothing to hold it for.
        IrnGenerate
        | IrnCancel
        | EwaybillGenerate
        | EwaybillCancel
        | EwaybillUpdateVehicle
        | EwaybillExtend
        | EwaybillUpdateTransporter
        | EinvoiceVerify
        | EinvoiceVerifyBatch
        // A batch of essential commands fans them out: holding it would hold them all.
        | IrnCancelBatch
        | EwaybillGenerateBatch
        | EwaybillCancelBatch
        | EwaybillUpdateVehicleBatch
        | EwaybillExtendBatch => true,
        IrnGet | GstinDetails | EwaybillGet | B2cQr | ReconcileRejected | JobStatus | IrnGenerateBatch => false,
    }
}

/// Does this pause hold a command of `kind`? Every pause does, but an error-budget pause only
/// holds non-essential commands.
pub fn holds(kind: crate::domain::command::JobKind, pause_code: Option<&str>) -> bool {
    !(pause_code == Some(ERROR_BUDGET) && essential(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warn_once_at_the_warning_share_then_pause() {
        // NIC's 20,000 per GSTIN at the defaults: warn at 5,000, pause from 10,000 on.
        assert_eq!(budget(4_999, 20_000, 0.25, 0.5), Budget::Fine);
        assert_eq!(budget(5_000, 20_000, 0.25, 0.5), Budget::Warn { warn_at: 5_000, pause_at: 10_000 });
        assert_eq!(budget(5_001, 20_000, 0.25, 0.5), Budget::Fine, "the warning is given once");
        assert_eq!(budget(10_000, 20_000, 0.25, 0.5), Budget::Pause { warn_at: 5_000, pause_at: 10_000 });
        assert!(matches!(budget(10_001, 20_000, 0.25, 0.5), Budget::Pause { .. }));
        // Tiny thresholds still warn before they pause.
        assert_eq!(budget(2, 4, 0.5, 0.75), Budget::Warn { warn_at: 2, pause_at: 3 });
        assert_eq!(budget(3, 4, 0.5, 0.75), Budget::Pause { warn_at: 2, pause_at: 3 });
        assert_eq!(budget(1, 1, 0.5, 0.6), Budget::Warn { warn_at: 1, pause_at: 2 });
    }

    #[test]
    fn the_india_day_ends_at_1830_utc() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(next_india_midnight(at("2026-11-30T10:00:00Z")), at("2026-11-30T18:30:00Z"));
        // 00:10 in India on 1 December is still 30 November in UTC.
        assert_eq!(next_india_midnight(at("2026-11-30T18:40:00Z")), at("2026-12-01T18:30:00Z"));
    }

    #[test]
    fn the_local_block_covers_every_key_it_names() {
        let l = Local::default();
        let keys = ["client:whitebooks:c".to_string(), "gstin:whitebooks:g".to_string()];
        assert!(l.blocked_until(&keys).is_none());
        l.block(&keys[..1], Instant::now() + Duration::from_secs(5));
        assert!(l.blocked_until(&keys).is_some(), "one shut bucket holds the call");
        assert!(l.blocked_until(&keys[1..]).is_none());
    }
}
