//! The built-in reconciliation schedule (`reconcile_schedule`, cron syntax, India time).
//!
//! At every tick each worker tries to INSERT the tick's run into `reconcile_runs`; the column
//! `tick` is unique, so exactly one worker wins (`ON CONFLICT DO NOTHING`) and only the winner
//! publishes the `reconcile.rejected` command (yesterday..today, every configured GSTIN) with
//! the run id as its `message_id` (and as `run_id` in the body): the handler finds the run by
//! it. Several workers with the same schedule therefore produce one run per tick. A run whose
//! command was not confirmed by the broker (the worker died in between) is published again by a
//! later tick; a duplicate command is harmless, as it finds its run running or completed.
//!
//! Cron parsing uses the `cron` crate rather than `croner`: it is built on chrono, which the
//! crate already uses, so ticks are computed directly as `DateTime<Asia/Kolkata>` with
//! `chrono-tz` (`Schedule::after`), with no second date-time library. Its syntax has a seconds
//! field first (`sec min hour day-of-month month day-of-week [year]`); a classic five-field
//! crontab line is accepted too and fires at second 0.
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Asia::Kolkata;
use lapin::types::ShortString;
use lapin::Channel;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::amqp;
use crate::domain::command::JobKind;
use crate::domain::DocDate;
use crate::store::reconcile::RunRow;

/// A tick that fired this much later than planned (a suspended machine) is skipped.
const MAX_LATENESS: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// A scheduled run still unpublished after this long is published again.
const REPUBLISH_AFTER_SECS: i64 = 30;

/// Parse a schedule: the `cron` crate's six or seven fields, or a five-field crontab line.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, cron::error::Error> {
    let expr = expr.trim();
    if expr.split_whitespace().count() == 5 {
        cron::Schedule::from_str(&format!("0 {expr}"))
    } else {
        cron::Schedule::from_str(expr)
    }
}

/// Fire reconciliation runs on the configured schedule until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, publisher: Channel, shutdown: CancellationToken) {
    let Some(expr) = ctx.settings.reconcile_schedule.clone() else { return };
    let schedule = match parse_schedule(&expr) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(schedule = %expr, error = %e, "reconcile_schedule is not a valid cron expression; no scheduled reconciliation");
            return;
        }
    };
    tracing::info!(schedule = %expr, "reconciliation schedule on (India time)");
    let mut last: Option<DateTime<Utc>> = None;
    loop {
        let now = Utc::now();
        // Continue after the last tick so none is fired twice, unless we fell far behind.
        let base = last.filter(|l| now - *l < MAX_LATENESS).unwrap_or(now);
        let Some(tick) = schedule.after(&base.with_timezone(&Kolkata)).next() else {
            tracing::info!(schedule = %expr, "the reconciliation schedule has no further ticks");
            return;
        };
        let tick = tick.with_timezone(&Utc);
        let wait = (tick - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        last = Some(tick);
        if Utc::now() - tick > MAX_LATENESS {
            tracing::warn!(%tick, "reconciliation tick missed (the worker was not running); skipped");
            continue;
        }
        if let Err(e) = fire(&ctx, &publisher, tick).await {
            tracing::warn!(%tick, error = %e, "scheduled reconciliation could not be started");
        }
        if let Err(e) = republish_stale(&ctx, &publisher).await {
            tracing::warn!(error = %e, "could not re-publish unpublished scheduled runs");
        }
    }
}

/// Claim the tick; the winner publishes its command.
async fn fire(ctx: &Ctx, publisher: &Channel, tick: DateTime<Utc>) -> anyhow::Result<()> {
    let today = tick.with_timezone(&Kolkata).date_naive();
    let from = today.pred_opt().unwrap_or(today);
    let gstins: Vec<String> = ctx.providers.gstins();
    let Some(run_id) = ctx.db.insert_scheduled_run(tick, &gstins, from, today).await? else {
        tracing::debug!(%tick, "another worker took this reconciliation tick");
        return Ok(());
    };
    let run = ctx.db.reconcile_run(run_id).await?.ok_or_else(|| anyhow::anyhow!("run {run_id} vanished"))?;
    publish(ctx, publisher, &run).await?;
    tracing::info!(%tick, %run_id, "scheduled reconciliation run published");
    Ok(())
}

async fn publish(ctx: &Ctx, publisher: &Channel, run: &RunRow) -> anyhow::Result<()> {
    let tick = run.tick.map(|t| t.to_rfc3339()).unwrap_or_default();
    let body = json!({
        "from": DocDate::new(run.from_date).to_string(),
        "to": DocDate::new(run.to_date).to_string(),
        "run_id": run.id,
        "request_id": format!("reconcile-schedule-{tick}"),
    });
    let props = amqp::json_props().with_message_id(ShortString::from(run.id.to_string()));
    let bytes = serde_json::to_vec(&body)?;
    let rk = JobKind::ReconcileRejected.routing_key();
    amqp::publish_confirmed(publisher, &ctx.topology.commands, rk, &bytes, props, true).await?;
    ctx.db.mark_run_published(run.id).await?;
    Ok(())
}

/// Scheduled runs whose command never reached the broker.
async fn republish_stale(ctx: &Ctx, publisher: &Channel) -> anyhow::Result<()> {
    for run in ctx.db.unpublished_scheduled_runs(REPUBLISH_AFTER_SECS).await? {
        tracing::info!(run_id = %run.id, "re-publishing a scheduled reconciliation run whose command was not confirmed");
        publish(ctx, publisher, &run).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_schedules() {
        let five = parse_schedule("30 2 * * *").unwrap();
        let six = parse_schedule("0 30 2 * * *").unwrap();
        let t0 = Utc::now().with_timezone(&Kolkata);
        assert_eq!(five.after(&t0).next(), six.after(&t0).next());
        assert!(parse_schedule("not a schedule").is_err());
        let every_second = parse_schedule("* * * * * *").unwrap();
        let mut it = every_second.after(&t0);
        let (a, b) = (it.next().unwrap(), it.next().unwrap());
        assert_eq!((b - a).num_seconds(), 1);
    }
}
