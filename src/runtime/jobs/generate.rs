//! `irn.generate`: register one document, exactly once, whatever fails along the way.
//!
//! The rules, in order:
//! 1. a document that already has an IRN in our store is answered from the store (no call);
//! 2. one worker at a time owns a document's generate call (a lease on its job row);
//! 3. after an ambiguous failure (timeout, 5xx, unreadable answer) the next step is a lookup
//!    by document, never a blind resend;
//! 4. 2150 "Duplicate IRN" is resolved to the existing IRN after comparing seller GSTIN,
//!    buyer GSTIN and total with the signed invoice;
//! 5. transient trouble that outlasts the in-process budget parks the job and reschedules the
//!    message; past `EINVOICE_RETRY_MAX_AGE_SECS` the job ends `irn.failed` when nothing can have
//!    been registered, or else is reported `irn.in_doubt` (once) and re-checked through the
//!    retry queue, lookup first, until the IRP answers: then `irn.generated` or `irn.failed`.
//!    Terminal events are final.
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::command::generate::Generate;
use crate::domain::command::{DocRef, JobKind};
use crate::domain::event::{CommandMeta, ErrorItem, IRN_IN_DOUBT};
use crate::domain::invoice::ValidInvoice;
use crate::domain::outcome::{Final, Operation};
use crate::domain::{Gstin, JobStatus};
use crate::irp::errors::get_ci;
use crate::irp::registry::IrpSet;
use crate::irp::{jwt, IrnData, IrpError, IrpProvider};
use crate::runtime::attempts;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::{errors_json, generated_irn_data, job_event, paused, plain_event, replayed_irn_data};
use crate::runtime::{guard, span, Ctx, Disposition};
use crate::store::jobs::JobUpdate;
use crate::store::{Claim, JobRow, StoreError};

/// Why the generate path stopped.
enum Outcome {
    Generated(Box<IrnData>, bool),
    Rejected(Vec<ErrorItem>),
    /// Our configuration is wrong for this GSTIN (credentials, key, enablement).
    Config(Vec<ErrorItem>),
    /// Budget spent; `in_doubt` when the IRP may have the IRN.
    Transient {
        errors: Vec<ErrorItem>,
        in_doubt: bool,
    },
    /// A wait whose end is known (our rate limit's next slot, an open circuit): no failure.
    Paced {
        until: chrono::DateTime<Utc>,
        errors: Vec<ErrorItem>,
        in_doubt: bool,
    },
    /// Past the retry budget, the IRP confirmed (2154) it has no IRN for the in-doubt document.
    NotRegistered,
    /// No IRP this document may go to is available (circuits open) before `until`.
    Unavailable {
        until: chrono::DateTime<Utc>,
        in_doubt: bool,
    },
    /// Our lease lapsed (a long lookup or backoff) and another attempt may own the document now:
    /// we must not call generate, nor write the job; the message comes back and finds its state.
    LeaseLost,
}

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &Generate, attempt: u32) -> Result<Disposition, StoreError> {
    let (gstin, invoice) = (&c.gstin, &*c.invoice);
    let key = invoice.key();
    let Some(irps) = ctx.providers.set(gstin.as_str()) else {
        let errors = vec![ctx.unserved(gstin.as_str(), "SellerDtls.Gstin")];
        ctx.db
            .enqueue_events(&[plain_event(meta, "irn.rejected", json!({"errors": errors, "dead_lettered": false}))])
            .await?;
        return Ok(Disposition::Ack);
    };
    if let Some((until, code)) = ctx.pause_of(gstin.as_str()).await? {
        if guard::holds(JobKind::IrnGenerate, code.as_deref()) {
            let errors = vec![paused(gstin.as_str(), until)];
            return Ok(Disposition::Wait { until, attempt, errors });
        }
    }
    let request = invoice.irp_text();
    // The lease belongs to this attempt (this delivery), not to the process.
    let attempt_id = meta.handling.unwrap_or_else(Uuid::new_v4);
    // The IRP a new document goes to, recorded by the claim itself (`route` confirms it below).
    let intended = preferred(ctx, gstin, &irps).irp().to_string();
    let claimed_at = std::time::Instant::now();
    let claim = ctx
        .intake
        .claim_generate_for(
            key,
            &invoice.doc_date().to_string(),
            irps.primary().kind().as_str(),
            request,
            attempt_id,
            ctx.settings.lease_secs,
            meta.request_id.as_deref(),
            Some(&intended),
        )
        .await?;
    let (job, mut ambiguous) = match claim {
        Claim::Done { row, qr_png } => {
            span::record_job_id(row.id);
            if let Some(ev) = outside_answer(meta, &row) {
                ctx.db.enqueue_events(&[ev]).await?;
                return Ok(Disposition::Ack);
            }
            // A re-send with other content must not be told "generated": the IRN belongs to the
            // invoice registered first.
            let registered = row.request.as_ref().filter(|_| row.status != JobStatus::Rejected);
            if let Some(Err(why)) = registered.map(|r| same_document(invoice, r)) {
                let errors = vec![ErrorItem::worker(
                    "DOCUMENT_ALREADY_REGISTERED",
                    format!(
                        "document {key} already has IRN {} for different content ({why}); cancel that IRN within 24 hours and register again, or issue a credit/debit note",
                        row.irn.as_deref().unwrap_or("?")
                    ),
                )];
                let ev = job_event(meta, &row, "irn.rejected", json!({"errors": errors, "dead_lettered": false}));
                ctx.db.enqueue_events(&[ev]).await?;
                return Ok(Disposition::Ack);
            }
            tracing::info!(document = %key, irn = ?row.irn, "document already registered; replaying the stored result");
            let (ty, data) = match row.status {
                JobStatus::Cancelled => ("irn.details", replayed_irn_data(ctx, &row, qr_png).await?),
                JobStatus::Rejected => {
                    ("irn.rejected", json!({"errors": row.last_error, "dead_lettered": false, "replayed": true}))
                }
                _ => ("irn.generated", replayed_irn_data(ctx, &row, qr_png).await?),
            };
            ctx.db.enqueue_events(&[job_event(meta, &row, ty, data)]).await?;
            return Ok(Disposition::Ack);
        }
        Claim::Busy(until) => {
            let errors = vec![ErrorItem::worker(
                "DOCUMENT_BUSY",
                format!("another attempt is registering this document (lease until {until}); checking again shortly"),
            )];
            // The lease's end is only the worst case: the other attempt usually finishes within
            // one IRP call, so look again after the shortest tier if that is sooner.
            let first_tier = i64::from(ctx.topology.retry_tier(1).1);
            let until = until.min(Utc::now() + chrono::Duration::milliseconds(first_tier));
            return Ok(Disposition::Wait { until, attempt, errors });
        }
        Claim::Owned { job, ambiguous } => (job, ambiguous),
    };
    span::record_job_id(job.id);
    let doc = DocRef { doc_type: key.doc_type, doc_number: key.doc_number.clone(), doc_date: invoice.doc_date() };
    let provider = match route(ctx, gstin, &irps, &job, ambiguous) {
        Ok((p, still_ambiguous)) => {
            ambiguous = still_ambiguous;
            p
        }
        Err(until) => {
            return finish(ctx, meta, &job, Outcome::Unavailable { until, in_doubt: ambiguous }, attempt).await
        }
    };
    let outcome = if ambiguous && past_max_age(ctx, &job) {
        // A delayed re-check of an in-doubt job: settle it by lookup, never generate anew.
        Box::pin(settle(ctx, gstin, provider.as_ref(), &doc)).await
    } else {
        // The claim has just taken the lease and recorded this IRP: the first call needs no renewal.
        let recorded = job.irp.clone().filter(|irp| irp == provider.irp()).map(|irp| (claimed_at, irp));
        let lease = Lease { job_id: job.id, attempt_id, recorded };
        // Boxed, as `finish` below: the lookups, failover and 2150/2295 paths make these futures large.
        Box::pin(register(ctx, gstin, &irps, provider, invoice, &doc, &lease, &mut ambiguous)).await
    };
    Box::pin(finish(ctx, meta, &job, outcome, attempt)).await
}

/// The answer to a re-sent `irn.generate` for a document an operator marked registered (or
/// cancelled) outside the worker: `irn.rejected` with `REGISTERED_OUTSIDE` (`CANCELLED_OUTSIDE`),
/// never a call to the IRP (the portal has, or had, the document). `None` for any other job.
fn outside_answer(meta: &CommandMeta, row: &JobRow) -> Option<crate::store::outbox::OutboxEvent> {
    let (code, what) = match row.status {
        JobStatus::RegisteredOutside => ("REGISTERED_OUTSIDE", "registered"),
        JobStatus::CancelledOutside => ("CANCELLED_OUTSIDE", "cancelled"),
        _ => return None,
    };
    let irn = row.irn.as_deref().map(|i| format!(" (IRN {i})")).unwrap_or_default();
    let errors = vec![ErrorItem::worker(
        code,
        format!(
            "document {} {} was {what} outside this worker{irn}, on the portal by hand, as an operator recorded; it is not sent to the IRP again",
            row.doc_type, row.doc_number
        ),
    )];
    tracing::info!(job_id = %row.id, status = %row.status, "document handled outside the worker; answered without an IRP call");
    Some(job_event(meta, row, "irn.rejected", json!({"errors": errors, "dead_lettered": false, "replayed": true})))
}

/// Which IRP this attempt talks to, and whether the document is still ambiguous there. A
/// document whose last generate may have reached an IRP is looked up at that IRP and nowhere
/// else while it is down, so failover never makes a second registration; only past
/// `EINVOICE_AMBIGUOUS_FAILOVER_SECS` (when set) may it move on to the next available IRP, no
/// longer ambiguous there: if the first IRP did register it, GSTN's registry makes the next one
/// answer 2295 and the document resolves to that IRN. Any other document goes to the first IRP
/// whose circuit is not open. `Err(until)`: none is available before then.
fn route(
    ctx: &Ctx,
    gstin: &Gstin,
    irps: &IrpSet,
    job: &JobRow,
    ambiguous: bool,
) -> Result<(Arc<dyn IrpProvider>, bool), chrono::DateTime<Utc>> {
    let g = gstin.as_str();
    if ambiguous {
        let sent_to = job.irp.as_deref().and_then(|n| irps.by_name(n)).unwrap_or(irps.primary());
        let Err(until) = ctx.irp_health.check(g, sent_to.irp()) else {
            return Ok((sent_to.clone(), true));
        };
        let wait = ctx.settings.ambiguous_failover_secs;
        if wait == 0 {
            return Err(until);
        }
        let first = job.first_attempt_at.unwrap_or_else(Utc::now);
        let allowed_at = first + chrono::Duration::seconds(i64::try_from(wait).unwrap_or(i64::MAX / 1000));
        if Utc::now() < allowed_at {
            // Back when the IRP may be up again, or when the document may move, whichever is first.
            return Err(until.min(allowed_at));
        }
        return match irps
            .entries()
            .iter()
            .find(|p| !Arc::ptr_eq(p, sent_to) && ctx.irp_health.check(g, p.irp()).is_ok())
        {
            Some(next) => {
                tracing::warn!(document = %job.doc_number, from = sent_to.irp(), to = next.irp(), wait_secs = wait,
                    "ambiguous document: its IRP stayed down past EINVOICE_AMBIGUOUS_FAILOVER_SECS; moving it (GSTN's registry answers 2295 if the first IRP registered it)");
                Ok((next.clone(), false))
            }
            None => Err(until),
        };
    }
    if let Some(p) = first_available(ctx, g, irps.entries()) {
        if !Arc::ptr_eq(p, irps.primary()) {
            tracing::info!(irp = p.irp(), primary = irps.primary().irp(), "primary IRP unavailable; failing over");
        }
        return Ok((p.clone(), false));
    }
    // None is available: wait for the first circuit to close.
    Err(irps.entries().iter().filter_map(|p| ctx.irp_health.check(g, p.irp()).err()).min().unwrap_or_else(Utc::now))
}

/// The first of `irps` whose circuit is not open.
fn first_available<'a>(ctx: &Ctx, g: &str, irps: &'a [Arc<dyn IrpProvider>]) -> Option<&'a Arc<dyn IrpProvider>> {
    irps.iter().find(|p| ctx.irp_health.check(g, p.irp()).is_ok())
}

/// The IRP a document never sent anywhere goes to: the first available (else the primary;
/// `route` then makes it wait).
fn preferred<'a>(ctx: &Ctx, gstin: &Gstin, irps: &'a IrpSet) -> &'a Arc<dyn IrpProvider> {
    first_available(ctx, gstin.as_str(), irps.entries()).unwrap_or(irps.primary())
}

/// After a generate that certainly did not reach `current` (it refused the connection, or its
/// circuit is open), the next IRP in order that is available, if any.
fn next_irp(ctx: &Ctx, g: &str, irps: &IrpSet, current: &Arc<dyn IrpProvider>) -> Option<Arc<dyn IrpProvider>> {
    let pos = irps.entries().iter().position(|p| Arc::ptr_eq(p, current))?;
    first_available(ctx, g, &irps.entries()[pos + 1..]).cloned()
}

/// Has the job been retried for `EINVOICE_RETRY_MAX_AGE_SECS` since its first attempt?
fn past_max_age(ctx: &Ctx, job: &JobRow) -> bool {
    let age = job.first_attempt_at.map(|t| Utc::now() - t).unwrap_or_default();
    age.num_seconds().max(0) as u64 >= ctx.settings.retry_max_age_secs
}

/// Look an in-doubt document up: the IRP has it (generated) or certainly not (failed).
async fn settle(ctx: &Ctx, gstin: &Gstin, provider: &dyn IrpProvider, doc: &DocRef) -> Outcome {
    match call(ctx, gstin.as_str(), provider, Operation::GetByDoc, Resend::Freely, |s| async move {
        provider.get_by_doc(&s, doc).await
    })
    .await
    {
        Ok(mut data) => {
            tracing::info!(irn = %data.irn, "in-doubt document settled by lookup: the IRP has it");
            data.irp = Some(provider.irp().to_string());
            Outcome::Generated(Box::new(data), false)
        }
        Err(e) if e.class(Operation::GetByDoc) == Final::NotFound => Outcome::NotRegistered,
        Err(e) => classify_failure(e, Operation::GetByDoc, true),
    }
}

/// Which attempt owns which job's generate call.
struct Lease {
    job_id: Uuid,
    attempt_id: Uuid,
    /// When the claim took the lease, and the IRP it recorded, if that is the IRP `route` chose.
    recorded: Option<(std::time::Instant, String)>,
}

impl Lease {
    /// Must the lease be renewed (and the IRP recorded) before a generate call at `irp`? Not
    /// shortly after a claim that recorded that very IRP: the lease is fresh and nobody else can
    /// take it before it ends.
    fn needs_renewal(&self, ctx: &Ctx, irp: &str) -> bool {
        let quarter = ctx.settings.lease_secs as f64 / 4.0;
        !self.recorded.as_ref().is_some_and(|(at, recorded)| recorded == irp && at.elapsed().as_secs_f64() < quarter)
    }
}

/// The call sequence for one owned document.
#[allow(clippy::too_many_arguments)]
async fn register(
    ctx: &Ctx,
    gstin: &Gstin,
    irps: &IrpSet,
    mut current: Arc<dyn IrpProvider>,
    invoice: &ValidInvoice,
    doc: &DocRef,
    lease: &Lease,
    ambiguous: &mut bool,
) -> Outcome {
    let g = gstin.as_str();
    let mut synced = false;
    // Each pass either finishes or made progress on an ambiguity (or moved to the next IRP);
    // bound it anyway.
    for _ in 0..(4 + irps.entries().len()) {
        let provider = current.as_ref();
        // A half-open circuit is probed by a lookup, not by this document's generate: if the IRP
        // is still down, the document has been sent nowhere and may go on to the next IRP
        // instead of waiting, ambiguous, for this one.
        let probing = !*ambiguous && !ctx.irp_health.is_closed(g, provider.irp());
        if *ambiguous || probing {
            match call(ctx, g, provider, Operation::GetByDoc, Resend::Freely, |s| async move {
                provider.get_by_doc(&s, doc).await
            })
            .await
            {
                Ok(mut data) => {
                    tracing::info!(document = %invoice.key(), irn = %data.irn, "ambiguous generate resolved by lookup: the IRP has it");
                    data.irp = Some(provider.irp().to_string());
                    return Outcome::Generated(Box::new(data), false);
                }
                Err(e) if e.class(Operation::GetByDoc) == Final::NotFound => *ambiguous = false,
                Err(e) if probing && e.class(Operation::GetByDoc) == Final::Transient => {
                    match next_irp(ctx, g, irps, &current) {
                        Some(next) => {
                            tracing::warn!(document = %invoice.key(), from = provider.irp(), to = next.irp(), error = %e, "IRP still unavailable; failing over");
                            current = next;
                            continue;
                        }
                        None => return classify_failure(e, Operation::GetByDoc, false),
                    }
                }
                Err(e) => return classify_failure(e, Operation::GetByDoc, *ambiguous),
            }
        }
        // Lookups and backoff may have outlasted the lease: renew it, and if another attempt has
        // taken the document meanwhile, stop here rather than register it a second time.
        if lease.needs_renewal(ctx, provider.irp()) {
            match ctx.db.extend_lease(lease.job_id, lease.attempt_id, ctx.settings.lease_secs, provider.irp()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return Outcome::LeaseLost,
            }
        }
        let body = invoice.irp_text();
        match call(ctx, g, provider, Operation::Generate, Resend::NotIfMayHaveReached, |s| async move {
            provider.generate(&s, body).await
        })
        .await
        {
            Ok(mut data) => {
                data.irp = Some(provider.irp().to_string());
                return Outcome::Generated(Box::new(data), false);
            }
            Err(e) => match e.class(Operation::Generate) {
                Final::DuplicateIrn => return resolve_duplicate(ctx, g, provider, invoice, doc, &e).await,
                Final::RegisteredElsewhere => return registered_elsewhere(ctx, g, irps, provider, invoice).await,
                // Never reached this IRP: the document is still unsent anywhere, so it may go on.
                Final::Transient if !e.may_have_reached_irp() && next_irp(ctx, g, irps, &current).is_some() => {
                    let next = next_irp(ctx, g, irps, &current).expect("checked just above");
                    tracing::warn!(document = %invoice.key(), from = provider.irp(), to = next.irp(), error = %e, "IRP unreachable; failing over");
                    current = next;
                }
                Final::Transient if e.may_have_reached_irp() => {
                    tracing::warn!(document = %invoice.key(), error = %e, "generate may have reached the IRP; looking the document up before any resend");
                    *ambiguous = true;
                }
                Final::SyncGstinThenRetry if !synced => {
                    synced = true;
                    if !sync_parties(ctx, g, provider, invoice).await {
                        return Outcome::Rejected(e.to_error_items());
                    }
                }
                _ => return classify_failure(e, Operation::Generate, false),
            },
        }
    }
    Outcome::Transient {
        errors: vec![ErrorItem::worker(
            "AMBIGUOUS",
            "the IRP's answers stayed ambiguous; the job will be looked up again",
        )],
        in_doubt: true,
    }
}

/// 3028/3029: ask the IRP to sync the buyer / ship-to GSTINs from the common portal; true
/// when all are active afterwards (then generate is retried once).
async fn sync_parties(ctx: &Ctx, g: &str, provider: &dyn IrpProvider, invoice: &ValidInvoice) -> bool {
    let json = invoice.irp_json();
    for p in ["/BuyerDtls/Gstin", "/ShipDtls/Gstin"] {
        let Some(party) = json.pointer(p).and_then(Value::as_str).filter(|s| s.len() == 15) else {
            continue;
        };
        match call(ctx, g, provider, Operation::GstinDetails, Resend::Freely, |s| async move {
            provider.sync_gstin(&s, party).await
        })
        .await
        {
            Ok(v) if v.is_active() => {}
            _ => return false,
        }
    }
    true
}

fn classify_failure(e: IrpError, op: Operation, in_doubt: bool) -> Outcome {
    match e.class(op) {
        Final::Transient => {
            let in_doubt = in_doubt || e.may_have_reached_irp();
            match e.wait_until() {
                Some(until) => Outcome::Paced { until, errors: e.to_error_items(), in_doubt },
                None => Outcome::Transient { errors: e.to_error_items(), in_doubt },
            }
        }
        Final::Configuration => Outcome::Config(e.to_error_items()),
        _ => Outcome::Rejected(e.to_error_items()),
    }
}

/// 2150: fetch the existing IRN and accept it only if it is really this invoice.
async fn resolve_duplicate(
    ctx: &Ctx,
    g: &str,
    provider: &dyn IrpProvider,
    invoice: &ValidInvoice,
    doc: &DocRef,
    e: &IrpError,
) -> Outcome {
    let info = e.duplicate_info().cloned();
    let irn = info.as_ref().and_then(|d| get_ci(d, "Irn"));
    let fetched = match &irn {
        Some(irn) => {
            call(ctx, g, provider, Operation::GetByIrn, Resend::Freely, |s| async move {
                provider.get_by_irn(&s, irn).await
            })
            .await
        }
        None => {
            call(ctx, g, provider, Operation::GetByDoc, Resend::Freely, |s| async move {
                provider.get_by_doc(&s, doc).await
            })
            .await
        }
    };
    match fetched {
        Ok(mut data) => match compare(invoice, &data) {
            Ok(()) => {
                data.irp = Some(provider.irp().to_string());
                Outcome::Generated(Box::new(data), true)
            }
            Err(why) => Outcome::Rejected(vec![ErrorItem::irp(
                "DUPLICATE_MISMATCH",
                format!("the IRP already has IRN {} for document {} with different data ({why}); use a new document number or cancel that IRN", data.irn, invoice.key()),
            )]),
        },
        // 2283: older than two days, signed data unavailable: accept DUPIRN's fields as they are.
        Err(fe) if fe.has_code("2283") && info.is_some() => {
            let d = info.unwrap_or_default();
            Outcome::Generated(
                Box::new(IrnData {
                    irn: get_ci(&d, "Irn").unwrap_or_default(),
                    ack_no: get_ci(&d, "AckNo").unwrap_or_default(),
                    ack_dt: get_ci(&d, "AckDt").unwrap_or_default(),
                    raw: d,
                    ..IrnData::default()
                }),
                true,
            )
        }
        Err(fe) => classify_failure(fe, Operation::GetByIrn, false),
    }
}

/// 2295: another IRP registered this document with GSTN's registry. The IRN is the same at every
/// IRP, so it is known; ask the GSTIN's other IRPs for the signed details (the issuer is one of
/// them when the ERP used it directly) and report `duplicate: true` with that IRP, or, when none
/// has it, the IRN alone with `irp: null` (the signed invoice and QR stay with the unknown issuer).
async fn registered_elsewhere(
    ctx: &Ctx,
    g: &str,
    irps: &IrpSet,
    asked: &dyn IrpProvider,
    invoice: &ValidInvoice,
) -> Outcome {
    let irn = invoice.key().irn();
    for other in irps.entries().iter().filter(|p| !p.irp().eq_ignore_ascii_case(asked.irp())) {
        if ctx.irp_health.check(g, other.irp()).is_err() {
            continue;
        }
        let p = other.as_ref();
        let found = call(ctx, g, p, Operation::GetByIrn, Resend::Freely, |s| {
            let irn = irn.clone();
            async move { p.get_by_irn(&s, &irn).await }
        })
        .await;
        if let Ok(mut data) = found {
            if compare(invoice, &data).is_ok() {
                tracing::info!(document = %invoice.key(), irn, issuer = p.irp(), asked = asked.irp(), "2295: registered by another IRP; details fetched from it");
                data.irp = Some(p.irp().to_string());
                return Outcome::Generated(Box::new(data), true);
            }
        }
    }
    tracing::warn!(document = %invoice.key(), irn, asked = asked.irp(), "2295: registered by an IRP this GSTIN is not configured for; reporting the IRN without its signed details");
    Outcome::Generated(Box::new(IrnData { irn, ..IrnData::default() }), true)
}

/// Seller GSTIN, buyer GSTIN and total of the signed invoice must match ours.
fn compare(invoice: &ValidInvoice, data: &IrnData) -> Result<(), String> {
    match data.signed_invoice.as_deref().and_then(|s| jwt::decode_unverified(s).ok()) {
        Some(signed) => same_document(invoice, &signed.data),
        None => Ok(()), // nothing signed to compare against (the IRP gave IRN and AckNo only)
    }
}

/// Store the job's new state and its events with the IRP calls this attempt made (its attempt
/// log), in the one statement every outcome ends in.
async fn store_outcome(
    db: &crate::store::Db,
    job: &JobRow,
    update: JobUpdate,
    events: &[crate::store::outbox::OutboxEvent],
) -> Result<(), StoreError> {
    db.finish_job_with(job.id, &update, events, attempts::take().as_ref()).await
}

/// Is `registered` (an invoice the IRP already has) this invoice? Seller GSTIN, buyer GSTIN and
/// total must match, as india-compliance checks before attaching an existing IRN.
fn same_document(invoice: &ValidInvoice, registered: &Value) -> Result<(), String> {
    use crate::domain::invoice::money;
    let seller = registered.pointer("/SellerDtls/Gstin").and_then(Value::as_str).unwrap_or_default();
    let buyer = registered.pointer("/BuyerDtls/Gstin").and_then(Value::as_str).unwrap_or_default();
    let total = registered.pointer("/ValDtls/TotInvVal").and_then(money::from_json);
    if !seller.eq_ignore_ascii_case(invoice.seller_gstin().as_str()) {
        return Err(format!("seller GSTIN {seller} instead of {}", invoice.seller_gstin()));
    }
    if !buyer.eq_ignore_ascii_case(invoice.buyer_gstin()) {
        return Err(format!("buyer GSTIN {buyer} instead of {}", invoice.buyer_gstin()));
    }
    // To the paisa: both rounded to two places, at most one paisa apart.
    match total {
        Some(t) if money::within_paisa(t, invoice.total_invoice_value()) => Ok(()),
        Some(t) => {
            Err(format!("total {} instead of {}", money::rupees(t), money::rupees(invoice.total_invoice_value())))
        }
        None => Err("the registered invoice has no total".into()),
    }
}

async fn finish(
    ctx: &Ctx,
    meta: &CommandMeta,
    job: &JobRow,
    outcome: Outcome,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    let db: &crate::store::Db = &ctx.db;
    match outcome {
        Outcome::LeaseLost => {
            tracing::warn!(document = %job.doc_number, "lease lapsed before the generate call; leaving the document to its current owner");
            let errors = vec![ErrorItem::worker(
                "DOCUMENT_BUSY",
                "this attempt's lease on the document lapsed; another attempt owns it now: checking again shortly",
            )];
            let first_tier = i64::from(ctx.topology.retry_tier(1).1);
            let until = Utc::now() + chrono::Duration::milliseconds(first_tier);
            Ok(Disposition::Wait { until, attempt, errors })
        }
        Outcome::Unavailable { until, in_doubt } => {
            let errors = vec![ErrorItem::worker(
                "IRP_UNAVAILABLE",
                format!(
                    "{} is down (circuit open until {until}); the document waits for it{}",
                    if in_doubt { "the IRP this document was sent to" } else { "every IRP configured for this GSTIN" },
                    if in_doubt { " and is looked up there first, never sent elsewhere" } else { "" }
                ),
            )];
            store_outcome(db, job, JobUpdate::Retry { errors: errors_json(&errors), in_doubt }, &[]).await?;
            Ok(Disposition::Wait { until, attempt, errors })
        }
        Outcome::Generated(data, duplicate) => {
            let irn = data.irn.clone();
            store_generated(ctx, meta, job, data, duplicate, attempts::take().as_ref()).await?;
            tracing::info!(document = %job.doc_number, irn, duplicate, "IRN generated");
            Ok(Disposition::Ack)
        }
        Outcome::Rejected(errors) => {
            let ev = job_event(meta, job, "irn.rejected", json!({"errors": errors, "dead_lettered": false}));
            store_outcome(db, job, JobUpdate::Rejected { errors: errors_json(&errors) }, &[ev]).await?;
            Ok(Disposition::Ack)
        }
        Outcome::Config(errors) => {
            let ev = job_event(meta, job, "gstin.paused", ctx.pause_gstin(&job.gstin, &errors).await?);
            store_outcome(db, job, JobUpdate::Retry { errors: errors_json(&errors), in_doubt: false }, &[ev]).await?;
            Ok(Disposition::Reschedule { attempt, errors })
        }
        Outcome::Transient { errors, in_doubt } if past_max_age(ctx, job) => {
            let errors_v = errors_json(&errors);
            if !in_doubt {
                // Nothing can have reached the IRP: certain, so final.
                let ev = failed_event(meta, job, &errors);
                store_outcome(db, job, JobUpdate::Failed { errors: errors_v }, &[ev]).await?;
                return Ok(Disposition::Ack);
            }
            // The IRP may hold an IRN: say so once (not as a failure, which would be final) and
            // keep re-checking through the retry queue, lookup first, until the IRP answers.
            if job.in_doubt_reported_at.is_none() {
                let first = job.first_attempt_at;
                let data = json!({"errors": errors, "attempts": job.attempts, "first_attempt_at": first});
                let ev = job_event(meta, job, IRN_IN_DOUBT, data);
                store_outcome(db, job, JobUpdate::ReportInDoubt { errors: errors_v }, &[ev]).await?;
            } else {
                store_outcome(db, job, JobUpdate::Retry { errors: errors_v, in_doubt: true }, &[]).await?;
            }
            Ok(Disposition::Reschedule { attempt, errors })
        }
        Outcome::Transient { errors, in_doubt } => {
            store_outcome(db, job, JobUpdate::Retry { errors: errors_json(&errors), in_doubt }, &[]).await?;
            Ok(Disposition::Reschedule { attempt, errors })
        }
        Outcome::Paced { until, errors, in_doubt } => {
            store_outcome(db, job, JobUpdate::Retry { errors: errors_json(&errors), in_doubt }, &[]).await?;
            Ok(Disposition::Wait { until, attempt, errors })
        }
        Outcome::NotRegistered => {
            // The errors that kept it in doubt, and why it is now certain.
            let mut errors: Vec<ErrorItem> =
                job.last_error.clone().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
            errors.push(ErrorItem::worker(
                "NOT_REGISTERED",
                "the IRP confirmed it has no IRN for this document: nothing was registered; send the command again to register it",
            ));
            let ev = failed_event(meta, job, &errors);
            store_outcome(db, job, JobUpdate::Failed { errors: errors_json(&errors) }, &[ev]).await?;
            Ok(Disposition::Ack)
        }
    }
}

/// `irn.failed`: final, so only when nothing was registered (`in_doubt` is always false).
fn failed_event(meta: &CommandMeta, job: &JobRow, errors: &[ErrorItem]) -> crate::store::outbox::OutboxEvent {
    let data = json!({"errors": errors, "attempts": job.attempts, "first_attempt_at": job.first_attempt_at, "in_doubt": false});
    job_event(meta, job, "irn.failed", data)
}

/// Store an IRN the IRP gave for `job` and its `irn.generated` event, in one transaction,
/// appending `calls` (the IRP calls that found it) to the job's attempt log.
pub(crate) async fn store_generated(
    ctx: &Ctx,
    meta: &CommandMeta,
    job: &JobRow,
    data: Box<IrnData>,
    duplicate: bool,
    calls: Option<&Value>,
) -> Result<(), StoreError> {
    // The event carries what is being stored, so a later replay (built from the row) matches it.
    let (mut event_data, qr_png) = generated_irn_data(ctx, &data).await?;
    event_data["duplicate"] = json!(duplicate);
    let ev = job_event(meta, job, "irn.generated", event_data);
    let update = JobUpdate::Generated { data, duplicate, qr_png };
    ctx.db.finish_job_with(job.id, &update, &[ev], calls).await
}
