//! `ewaybill.expiring`: a warning, `EINVOICE_EWB_EXPIRY_WARN_SECS` (default 8 hours; a GSTIN's
//! own `ewb_expiry_warn_secs` overrides it) before an active e-way bill's `valid_till`, so an
//! ERP can extend it on schedule (the extension window opens 8 hours before the expiry).
//!
//! Every `EINVOICE_EWB_EXPIRY_SCAN_SECS` a worker picks the active e-way bills whose validity
//! ends within the lead time and that were not warned about for that validity, and writes each
//! event in the same transaction that marks it warned (rows locked, `SKIP LOCKED`): one event per
//! validity whatever the number of workers. A later validity (an extension, or `ewaybill.get`
//! reading one another party made) warns again.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::domain::command::ewaybill_extend::EXTEND_WINDOW_HOURS;
use crate::domain::event::{CommandMeta, Event};
use crate::irp::types::{format_ist, parse_ist};
use crate::store::ewaybills::EwbRow;
use crate::store::outbox::OutboxEvent;
use crate::store::StoreError;

pub const EWAYBILL_EXPIRING: &str = "ewaybill.expiring";

/// At most this many warnings per pass (the next pass takes the rest).
const BATCH: i64 = 500;

/// The lead of every GSTIN that sets its own: the database's, then the file's over them (the
/// file wins, as it does for the whole section).
fn own_leads(ctx: &Ctx) -> BTreeMap<String, u64> {
    let mut leads: BTreeMap<String, u64> = ctx.providers.expiry_leads().into_iter().collect();
    leads.extend(
        ctx.settings.gstins.iter().filter_map(|(g, c)| c.ewb_expiry_warn_secs.map(|s| (g.to_ascii_uppercase(), s))),
    );
    leads
}

/// One pass: publish the warnings due now. Returns how many.
pub async fn warn_once(ctx: &Ctx) -> Result<usize, StoreError> {
    let default = ctx.settings.ewb_expiry_warn_secs;
    let leads = own_leads(ctx);
    let now = Utc::now();
    // A lead of more than 400 days is as good as "at once" (no e-way bill lives that long).
    let until =
        |secs: u64| format_ist(now + chrono::Duration::seconds(i64::try_from(secs.min(400 * 86_400)).unwrap_or(0)));
    let own: Vec<(String, String)> = leads.iter().map(|(g, s)| (g.clone(), until(*s))).collect();
    let longest = leads.values().copied().chain([default]).max().unwrap_or(default);
    let n = ctx
        .db
        .warn_expiring_ewaybills(&format_ist(now), &until(longest), &until(default), &own, BATCH, |e, issuer| {
            event(ctx, e, issuer, leads.get(&e.gstin).copied().unwrap_or(default))
        })
        .await?;
    if n > 0 {
        tracing::info!(count = n, "ewaybill.expiring published");
    }
    Ok(n)
}

fn event(ctx: &Ctx, e: &EwbRow, issuer: Option<String>, lead: u64) -> OutboxEvent {
    let primary = ctx.providers.set(&e.gstin).and_then(|s| s.for_issuer(None));
    let irp = issuer.or_else(|| primary.as_ref().map(|p| p.irp().to_string()));
    let window = chrono::Duration::hours(EXTEND_WINDOW_HOURS);
    let till = e.valid_till.as_deref().and_then(parse_ist);
    let data = json!({
        "gstin": e.gstin, "ewb_no": e.ewb_no, "irn": e.irn, "irp": irp, "ewb_valid_till": e.valid_till,
        "warn_secs": lead,
        "extend_from": till.map(|t| format_ist(t - window)),
        "extend_until": till.map(|t| format_ist(t + window)),
    });
    let mut event = Event::new(EWAYBILL_EXPIRING, &CommandMeta::default(), data);
    if let Some(p) = primary {
        event = event.with_provider(p.kind().as_str());
    }
    OutboxEvent { event, reply_to: None }
}

/// Warn every scan interval until `stop`.
pub async fn run(ctx: Arc<Ctx>, stop: CancellationToken) {
    let every = Duration::from_secs(ctx.settings.ewb_expiry_scan_secs.max(1));
    loop {
        if let Err(e) = warn_once(&ctx).await {
            tracing::warn!(error = %e, "e-way bill expiry scan failed; trying again next interval");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
