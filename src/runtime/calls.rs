//! One logical IRP call: session, backoff on transient failures, re-auth once on 1005.
use std::future::Future;

use crate::domain::outcome::{Class, Operation};
use crate::irp::{IrpError, IrpProvider, Session};

use super::Ctx;

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
/// error when the budget is spent or the error is not retryable here.
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
    let mut reauthed = false;
    let mut stale: Option<Session> = None;
    loop {
        let session = match &stale {
            Some(s) => ctx.sessions.replace(gstin, provider, s).await,
            None => ctx.sessions.get(gstin, provider).await,
        };
        let result = match session {
            Ok(s) => f(s.clone()).await.map_err(|e| (e, Some(s), op)),
            Err(e) => Err((e, None, Operation::Auth)),
        };
        let (err, used, err_op) = match result {
            Ok(v) => return Ok(v),
            Err(x) => x,
        };
        stale = None;
        let class = err.class(err_op);
        metrics::counter!("einvoice_irp_failures_total", "provider" => provider.kind().as_str(), "class" => format!("{class:?}"))
            .increment(1);
        match class {
            Class::Reauth if !reauthed && used.is_some() => {
                reauthed = true;
                tracing::info!(gstin, ?op, "IRP said the token is invalid (1005); re-authenticating once");
                stale = used;
                continue;
            }
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
                    None => return Err(err),
                }
            }
            _ => return Err(err),
        }
    }
}
