//! One logical IRP call: session, backoff on transient failures, re-auth on 1005.
//!
//! 1005 means "get a new token", never "your configuration is wrong": a call that keeps
//! getting 1005 after re-authenticating ends as a transient failure ([`IrpError::TokenRefused`])
//! for the durable retry path, so no job code ever sees a 1005 it could mistake for a reason
//! to pause the GSTIN. Only auth failures (1007/1008/1010…) are configuration errors.
//!
//! Every call also goes through [`guard`](super::guard): it waits for the credential's rate limit
//! first, a throttle (429, 658, GEN5005) makes it wait and go again without spending the backoff
//! budget, and every error response counts against the GSTIN's daily error budget.
//!
//! Every exchange is also counted for the API consumption report ([`Ctx::usage`], in memory;
//! authentication is counted where it happens, in the session manager).
use std::future::Future;
use std::time::Instant;

use crate::domain::outcome::{Class, Operation};
use crate::irp::{IrpError, IrpProvider, Session};
use crate::telemetry::metrics as m;
use crate::telemetry::usage::CallOutcome;

use super::attempts::{self, Attempt};
use super::{guard, Ctx};

/// Re-authentications per call after 1005. The first may pick up another worker's newer token,
/// which can be as dead as ours; the second then authenticates itself.
const MAX_REAUTHS: u32 = 2;

/// How a call may be retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resend {
    /// Reads: resend freely on transient failure.
    Freely,
    /// Generate and cancel: a failure that may have reached the IRP ends the call, so the
    /// caller can look the document up instead of resending blindly.
    NotIfMayHaveReached,
}

/// Run `f` with a session for `gstin`, retrying per the outcome table. Returns the last
/// error when the budget is spent or the error is not retryable here; its
/// [`IrpError::class`] is the final class (re-authentication happened here).
pub async fn call<T, F, Fut>(
    ctx: &Ctx,
    gstin: &str,
    provider: &dyn IrpProvider,
    op: Operation,
    resend: Resend,
    f: F,
) -> Result<T, IrpError>
where
    F: Fn(Session) -> Fut,
    Fut: Future<Output = Result<T, IrpError>>,
{
    let mut delays = ctx.backoff();
    let mut reauths = 0;
    let mut stale: Option<Session> = None;
    // A token a re-auth handed back unchanged: if the IRP refuses it again, more auth calls won't help.
    let mut reissued: Option<Session> = None;
    let mut pacing = guard::Pacing::default();
    loop {
        // A dead IRP is not called until its circuit's open period passes: the job goes back to
        // its durable retry (or, for generate, to another IRP) instead of spending its budget.
        // Local unless the circuit is half-open: then one call at a time, across processes, probes it.
        if let Err(until) = ctx.irp_health.admit(gstin, provider.irp()).await {
            return Err(IrpError::CircuitOpen { irp: provider.irp().to_string(), until });
        }
        guard::acquire(ctx, gstin, provider, &mut pacing).await?;
        let session = match stale.take() {
            Some(old) => {
                let new = ctx.sessions.replace(gstin, provider, &old).await;
                reissued = new.as_ref().ok().filter(|n| n.same_token(&old)).cloned();
                new
            }
            None => ctx.sessions.get(gstin, provider).await,
        };
        let irp = provider.irp();
        let irp_label = irp.to_ascii_lowercase();
        let result = match session {
            Ok(s) => {
                let (started, at) = (Instant::now(), chrono::Utc::now());
                let result = f(s.clone()).await;
                let elapsed = started.elapsed();
                attempts::record(Attempt::of(irp, op, &result, at, Some(elapsed.as_millis() as u64)));
                ctx.usage.record(gstin, irp, op, CallOutcome::of(&result));
                metrics::histogram!(m::IRP_CALL_DURATION, "irp" => irp_label.clone(), "operation" => op.as_str())
                    .record(elapsed.as_secs_f64());
                let latency_ms = elapsed.as_millis() as u64;
                match &result {
                    Ok(_) => {
                        tracing::info!(
                            irp,
                            operation = op.as_str(),
                            http_status = 200,
                            latency_ms,
                            "IRP call succeeded"
                        )
                    }
                    Err(e) => tracing::info!(
                        irp,
                        operation = op.as_str(),
                        http_status = e.http_status(),
                        latency_ms,
                        irp_codes = e.codes(),
                        error = %e,
                        "IRP call failed"
                    ),
                }
                result.map_err(|e| (e, Some(s), op))
            }
            Err(e) => {
                attempts::record(Attempt::of(irp, Operation::Auth, &Err::<(), _>(e.clone()), chrono::Utc::now(), None));
                Err((e, None, Operation::Auth))
            }
        };
        let (err, used, err_op) = match result {
            Ok(v) => {
                ctx.irp_health.succeeded(gstin, irp).await;
                return Ok(v);
            }
            Err(x) => x,
        };
        let class = err.table_class(err_op);
        metrics::counter!(m::IRP_ERRORS, "irp" => irp_label, "operation" => err_op.as_str(), "class" => class.as_str())
            .increment(1);
        if err.is_error_response() {
            m::gstin_counter(&ctx.settings.metrics_per_gstin, m::IRP_ERROR_RESPONSES, gstin).increment(1);
            guard::count_error_response(ctx, gstin, provider).await;
        }
        ctx.irp_health.failed(gstin, irp, err_op, class, &err).await;
        // "Slow down" is neither an attempt nor a backoff step: wait (in `acquire`) and go again.
        // (Only when it decides the class: 312 with 658 is still "already cancelled".)
        if class == Class::Transient && err.is_throttled() {
            if guard::on_throttled(ctx, gstin, provider, &err, &mut pacing).await {
                continue;
            }
            return Err(err);
        }
        let (err, class) = match (class, used) {
            (Class::Reauth, Some(used))
                if reauths < MAX_REAUTHS && !reissued.as_ref().is_some_and(|r| r.same_token(&used)) =>
            {
                reauths += 1;
                tracing::info!(gstin, ?op, reauths, "IRP said the token is invalid (1005); getting a new one");
                stale = Some(used);
                continue;
            }
            (Class::Reauth, _) => {
                tracing::warn!(
                    gstin,
                    ?op,
                    reauths,
                    "IRP still says 1005 after re-authenticating; treating it as transient"
                );
                let e = IrpError::TokenRefused(format!("still refused after {reauths} re-authentication(s)"));
                (e, Class::Transient)
            }
            (class, _) => (err, class),
        };
        match class {
            Class::Transient
                if !(resend == Resend::NotIfMayHaveReached
                    && err_op != Operation::Auth
                    && err.may_have_reached_irp()) =>
            {
                match delays.next() {
                    Some(d) => {
                        tracing::warn!(gstin, ?op, error = %err, delay_ms = d.as_millis() as u64, "transient IRP failure; retrying");
                        tokio::time::sleep(d).await;
                    }
                    // The budget is spent: if the IRP's circuit opened meanwhile (our failures or
                    // another process's), this is a wait for its end, not a failure of the command.
                    None => {
                        return Err(match ctx.irp_health.check(gstin, irp) {
                            Err(until) => IrpError::CircuitOpen { irp: irp.to_string(), until },
                            Ok(()) => err,
                        })
                    }
                }
            }
            _ => return Err(err),
        }
    }
}
