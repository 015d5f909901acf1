//! Retention: published events and finished jobs do not pile up forever.
//!
//! Every `EINVOICE_RETENTION_INTERVAL_SECS` a worker deletes published outbox rows older than
//! `EINVOICE_OUTBOX_RETENTION_DAYS`, finished jobs older than `EINVOICE_JOB_RETENTION_DAYS` and
//! API call counts older than `EINVOICE_USAGE_RETENTION_DAYS`
//! ([`Db::prune`](crate::store::Db::prune): batches of 1,000 rows, each its own statement, so no
//! long lock). Several workers may prune at once: they delete disjoint or already-deleted rows.
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::store::ops::Pruned;
use crate::store::{Db, StoreError};
use crate::telemetry::metrics as m;

/// One pass, counted in the metrics and logged when it deleted anything. `usage_days`: the API
/// call counts (`api_calls_daily`) older than this many India days go too (0 keeps them).
pub async fn prune_once(db: &Db, outbox_days: u32, job_days: u32, usage_days: u32) -> Result<Pruned, StoreError> {
    let p = db.prune(outbox_days, job_days).await?;
    // The guard's day counts and idle rate buckets (small tables: a few rows per GSTIN a day).
    let guard_rows = db.prune_guard().await?;
    // The API call counts: a few rows per GSTIN and endpoint a day, so one statement.
    let usage_rows = if usage_days > 0 {
        let before = crate::telemetry::usage::india_today() - chrono::Duration::days(i64::from(usage_days));
        db.prune_api_calls(before).await?
    } else {
        0
    };
    log_pass(&p, guard_rows, usage_rows);
    Ok(p)
}

fn log_pass(p: &Pruned, guard_rows: u64, usage_rows: u64) {
    metrics::counter!(m::RETENTION_PRUNED, "table" => "outbox").increment(p.outbox);
    metrics::counter!(m::RETENTION_PRUNED, "table" => "jobs").increment(p.jobs);
    if *p != Pruned::default() || guard_rows > 0 || usage_rows > 0 {
        tracing::info!(
            guard_rows,
            usage_rows,
            outbox = p.outbox,
            jobs = p.jobs,
            qr_png = p.qr_png,
            ewaybills = p.ewaybills,
            reconcile_runs = p.reconcile_runs,
            "retention: deleted old rows"
        );
    }
}

/// Prune every interval until `stop` (the first pass a minute after start, off the start-up path).
pub async fn run(ctx: Arc<Ctx>, stop: CancellationToken) {
    let s = &ctx.settings;
    let mut wait = Duration::from_secs(60).min(Duration::from_secs(s.retention_interval_secs));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = prune_once(&ctx.db, s.outbox_retention_days, s.job_retention_days, s.usage_retention_days).await
        {
            tracing::warn!(error = %e, "retention pass failed; trying again next interval");
        }
        wait = Duration::from_secs(s.retention_interval_secs);
    }
}
