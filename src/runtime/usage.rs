//! Flushing the IRP call counts ([`crate::telemetry::usage`]) to `api_calls_daily`: every
//! `usage_flush_secs`, and once more at a graceful shutdown after the last job finished
//! ([`flush`] from the worker's shutdown path). A crash loses at most one interval of counts; a
//! failed flush puts its counts back for the next one.
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Ctx;

/// Write what the meter counted since the last flush: one statement. On failure the counts go
/// back into the meter (nothing lost while the process lives).
pub async fn flush(ctx: &Ctx) {
    let counts = ctx.usage.take();
    if counts.is_empty() {
        return;
    }
    if let Err(e) = ctx.db.add_api_calls(&counts).await {
        let calls: u64 = counts.values().sum();
        tracing::warn!(error = %e, calls, "could not write the IRP call counts; keeping them for the next flush");
        ctx.usage.restore(counts);
    }
}

/// Flush every `usage_flush_secs` until `stop`. The final flush is the shutdown path's (after the
/// in-flight jobs finished); a flush under way is never cut short by `stop`.
pub async fn run(ctx: Arc<Ctx>, stop: CancellationToken) {
    let every = Duration::from_secs(ctx.settings.usage_flush_secs.max(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        flush(&ctx).await;
    }
}
