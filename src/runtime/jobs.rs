//! The job types beside generate: cancel, lookups, GSTIN details, e-way bill, B2C QR.
//!
//! Each one checks what it can before calling the IRP (a cancel past 24 hours, or of an IRN we
//! know is cancelled, costs no call), then maps the IRP's answer through the outcome table in
//! `domain::outcome`: success, idempotent success, re-auth (inside `calls::call`), transient
//! (reschedule), configuration (pause the GSTIN) or rejection (with what to do instead).
use chrono::Utc;
use serde_json::{json, Value};

use super::calls::{call, Resend};
use super::events::{fetched_irn_data, irn_data, job_event, not_configured, paused, plain_event};
use super::{Ctx, Disposition};
use crate::domain::command::{CancelReason, Command, DocRef, JobKind, Target};
use crate::domain::event::{CommandMeta, DocumentRef, ErrorItem, Event};
use crate::domain::outcome::{Class, Operation};
use crate::domain::{DocumentKey, Gstin};
use crate::irp::errors::get_ci;
use crate::irp::types::{format_ist, parse_ist};
use crate::irp::{IrnData, IrpError, IrpProvider};
use crate::store::jobs::JobUpdate;
use crate::store::outbox::OutboxEvent;
use crate::store::{JobRow, StoreError};

/// The IRP lets an IRN be cancelled within 24 hours of its acknowledgement.
const CANCEL_WINDOW_HOURS: i64 = 24;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, cmd: &Command, attempt: u32) -> Result<Disposition, StoreError> {
    let kind = cmd.kind();
    if let Command::ReconcileRejected { gstin, from, to } = cmd {
        return super::reconcile::handle(ctx, meta, gstin.as_ref(), *from, *to, attempt).await;
    }
    let Some(gstin) = cmd.gstin() else {
        unreachable!("every job type but reconciliation names its GSTIN");
    };
    let Some(provider) = ctx.providers.get(gstin.as_str()) else {
        let errors = vec![not_configured(gstin.as_str())];
        return reject(ctx, meta, kind, errors, None).await;
    };
    if let Some(until) = ctx.db.paused_until(gstin.as_str()).await? {
        let errors = vec![paused(gstin.as_str(), until)];
        return Ok(Disposition::Reschedule { attempt, errors });
    }
    let job = Job { ctx, meta, kind, gstin, provider: provider.as_ref(), attempt };
    match cmd {
        Command::Cancel { target, reason, remark, .. } => job.cancel(target, *reason, remark).await,
        Command::Get { target, .. } => job.get(target).await,
        Command::GstinDetails { target_gstin, .. } => job.gstin_details(target_gstin).await,
        Command::EwaybillGet { irn, .. } => job.ewaybill(irn).await,
        Command::B2cQr { document, .. } => job.b2c_qr(document).await,
        Command::Generate { .. } | Command::ReconcileRejected { .. } => unreachable!("handled elsewhere"),
    }
}

/// Publish `<job>.rejected` for a command that has no job row.
async fn reject(
    ctx: &Ctx,
    meta: &CommandMeta,
    kind: JobKind,
    errors: Vec<ErrorItem>,
    doc: Option<DocumentRef>,
) -> Result<Disposition, StoreError> {
    let mut ev = plain_event(meta, &kind.rejected_event(), json!({"errors": errors, "dead_lettered": false}));
    ev.event.document = doc;
    ctx.db.enqueue_events(&[ev]).await?;
    Ok(Disposition::Ack)
}

/// One command being handled, with what every step needs.
struct Job<'a> {
    ctx: &'a Ctx,
    meta: &'a CommandMeta,
    kind: JobKind,
    gstin: &'a Gstin,
    provider: &'a dyn IrpProvider,
    attempt: u32,
}

/// Where a cancel's IRN came from.
struct Resolved {
    irn: String,
    ack_dt: Option<String>,
    status: Option<String>,
    job: Option<JobRow>,
    doc: Option<DocumentRef>,
}

impl<'a> Job<'a> {
    fn event(&self, event_type: &str, data: Value, job: Option<&JobRow>, doc: Option<DocumentRef>) -> OutboxEvent {
        match job {
            Some(row) => job_event(self.meta, row, event_type, data),
            None => {
                let mut ev: Event =
                    plain_event(self.meta, event_type, data).event.with_provider(self.provider.kind().as_str());
                ev.document = doc;
                OutboxEvent { event: ev, reply_to: self.meta.reply_to.clone() }
            }
        }
    }

    async fn emit(&self, ev: OutboxEvent) -> Result<Disposition, StoreError> {
        self.ctx.db.enqueue_events(&[ev]).await?;
        Ok(Disposition::Ack)
    }

    async fn reject(&self, errors: Vec<ErrorItem>, doc: Option<DocumentRef>) -> Result<Disposition, StoreError> {
        reject(self.ctx, self.meta, self.kind, errors, doc).await
    }

    /// Map an IRP failure that ended a call: reschedule, pause, or reject (with `remedy` text
    /// appended to the IRP's own message for codes the user must act on).
    async fn failed(&self, e: IrpError, op: Operation, doc: Option<DocumentRef>) -> Result<Disposition, StoreError> {
        match e.class(op) {
            Class::Transient => Ok(Disposition::Reschedule { attempt: self.attempt, errors: e.to_error_items() }),
            Class::Configuration | Class::Reauth => {
                let errors = e.to_error_items();
                let data = self.ctx.pause_gstin(self.gstin.as_str(), &errors).await?;
                self.ctx.db.enqueue_events(&[plain_event(self.meta, "gstin.paused", data)]).await?;
                Ok(Disposition::Reschedule { attempt: self.attempt, errors })
            }
            _ => {
                let errors = e.to_error_items().into_iter().map(with_remedy).collect();
                self.reject(errors, doc).await
            }
        }
    }

    async fn lookup_doc(&self, d: &DocRef) -> Result<IrnData, IrpError> {
        let p = self.provider;
        call(self.ctx, self.gstin.as_str(), p, Operation::GetByDoc, Resend::Freely, |s| async move {
            p.get_by_doc(&s, d).await
        })
        .await
    }

    async fn lookup_irn(&self, irn: &str) -> Result<IrnData, IrpError> {
        let p = self.provider;
        call(self.ctx, self.gstin.as_str(), p, Operation::GetByIrn, Resend::Freely, |s| async move {
            p.get_by_irn(&s, irn).await
        })
        .await
    }

    fn key(&self, d: &DocRef) -> DocumentKey {
        DocumentKey::new(self.gstin.clone(), d.doc_type, d.doc_number.clone(), d.doc_date)
    }

    fn doc_ref(&self, d: &DocRef) -> DocumentRef {
        DocumentRef::new(&self.key(d), Some(d.doc_date))
    }

    /// Find the IRN to cancel: our store first, then the IRP.
    async fn resolve(&self, target: &Target) -> Result<Result<Resolved, IrpError>, StoreError> {
        let db = &self.ctx.db;
        let (job, doc) = match target {
            Target::Irn(irn) => (db.job_by_irn(irn).await?, None),
            Target::Document(d) => (db.job_by_key(&self.key(d)).await?, Some(self.doc_ref(d))),
        };
        if let Some(job) = job.filter(|j| j.irn.is_some()) {
            let status = Some(if job.status == "cancelled" { "CNL" } else { "ACT" }.to_string());
            return Ok(Ok(Resolved {
                irn: job.irn.clone().unwrap_or_default(),
                ack_dt: job.ack_dt.clone(),
                status,
                job: Some(job),
                doc,
            }));
        }
        let found = match target {
            Target::Irn(irn) => self.lookup_irn(irn).await,
            Target::Document(d) => self.lookup_doc(d).await,
        };
        Ok(found.map(|d| Resolved { irn: d.irn, ack_dt: Some(d.ack_dt), status: d.status, job: None, doc }))
    }

    async fn cancel(&self, target: &Target, reason: CancelReason, remark: &str) -> Result<Disposition, StoreError> {
        let r = match self.resolve(target).await? {
            Ok(r) => r,
            // Too old for the IRP to show it: it is certainly past the 24-hour window.
            Err(e) if e.has_code("2283") => {
                let errors = vec![ErrorItem::irp("2283", format!("{} {}", irp_message(&e), CREDIT_NOTE_REMEDY))];
                return self.reject(errors, target_doc(self, target)).await;
            }
            Err(e) => return self.failed(e, Operation::GetByIrn, target_doc(self, target)).await,
        };
        let doc = r.doc.clone().or_else(|| r.job.as_ref().map(super::events::document_ref));
        if r.status.as_deref() == Some("CNL") {
            let cancel_date = r.job.as_ref().and_then(|j| j.cancel_date.clone());
            let data = json!({"irn": r.irn, "cancel_date": cancel_date, "already_cancelled": true});
            return self.emit(self.event("irn.cancelled", data, r.job.as_ref(), doc)).await;
        }
        if let Some(acked) = r.ack_dt.as_deref().and_then(parse_ist) {
            if Utc::now() - acked > chrono::Duration::hours(CANCEL_WINDOW_HOURS) {
                let errors = vec![ErrorItem::worker(
                    "CANCEL_WINDOW_PASSED",
                    format!(
                        "IRN {} was acknowledged at {} (India time), more than {CANCEL_WINDOW_HOURS} hours ago, so the IRP no longer allows cancelling it; {CREDIT_NOTE_REMEDY}",
                        r.irn,
                        r.ack_dt.as_deref().unwrap_or("?")
                    ),
                )];
                return self.reject(errors, doc).await;
            }
        }
        let p = self.provider;
        let irn = r.irn.as_str();
        let answer =
            call(self.ctx, self.gstin.as_str(), p, Operation::Cancel, Resend::NotIfMayHaveReached, |s| async move {
                p.cancel(&s, irn, reason, remark).await
            })
            .await;
        let (cancel_date, already) = match answer {
            Ok(c) => (c.cancel_date, false),
            Err(e) if e.class(Operation::Cancel) == Class::AlreadyCancelled => (format_ist(Utc::now()), true),
            Err(e) if e.may_have_reached_irp() => {
                // Ambiguous: look before resending.
                match self.lookup_irn(irn).await {
                    Ok(d) if d.status.as_deref() == Some("CNL") => (format_ist(Utc::now()), false),
                    _ => return Ok(Disposition::Reschedule { attempt: self.attempt, errors: e.to_error_items() }),
                }
            }
            Err(e) => return self.failed(e, Operation::Cancel, doc).await,
        };
        let data = json!({"irn": irn, "cancel_date": cancel_date, "already_cancelled": already, "reason": reason.code(), "remark": remark});
        match &r.job {
            Some(job) => {
                let ev = job_event(self.meta, job, "irn.cancelled", data);
                let update = JobUpdate::Cancelled { cancel_date, response: json!({"already_cancelled": already}) };
                self.ctx.db.finish_job(job.id, &update, &[ev]).await?;
                Ok(Disposition::Ack)
            }
            None => self.emit(self.event("irn.cancelled", data, None, doc)).await,
        }
    }

    async fn get(&self, target: &Target) -> Result<Disposition, StoreError> {
        let db = &self.ctx.db;
        let (job, doc) = match target {
            Target::Irn(irn) => (db.job_by_irn(irn).await?, None),
            Target::Document(d) => (db.job_by_key(&self.key(d)).await?, Some(self.doc_ref(d))),
        };
        // Our own record has the signed data and outlives the IRP's two-day window.
        if let Some(job) = job.filter(|j| j.irn.is_some() && (j.status == "generated" || j.status == "cancelled")) {
            let mut data = irn_data(self.ctx, &job, true).await?;
            data["source"] = json!("store");
            return self.emit(job_event(self.meta, &job, "irn.details", data)).await;
        }
        let found = match target {
            Target::Irn(irn) => self.lookup_irn(irn).await,
            Target::Document(d) => self.lookup_doc(d).await,
        };
        match found {
            Ok(d) => {
                let mut data = fetched_irn_data(self.ctx, &d).await?;
                data["source"] = json!("irp");
                self.emit(self.event("irn.details", data, None, doc)).await
            }
            Err(e) => self.failed(e, Operation::GetByIrn, doc).await,
        }
    }

    async fn gstin_details(&self, target: &Gstin) -> Result<Disposition, StoreError> {
        let db = &self.ctx.db;
        if let Some(mut cached) = db.cached_gstin(target.as_str(), self.ctx.settings.gstin_cache_secs).await? {
            cached["cached"] = json!(true);
            return self.emit(self.event("gstin.details", cached, None, None)).await;
        }
        let p = self.provider;
        let t = target.as_str();
        match call(self.ctx, self.gstin.as_str(), p, Operation::GstinDetails, Resend::Freely, |s| async move {
            p.gstin_details(&s, t).await
        })
        .await
        {
            Ok(v) => {
                let details = gstin_view(t, &v);
                db.cache_gstin(t, &details).await?;
                let mut data = details;
                data["cached"] = json!(false);
                self.emit(self.event("gstin.details", data, None, None)).await
            }
            Err(e) => self.failed(e, Operation::GstinDetails, None).await,
        }
    }

    async fn ewaybill(&self, irn: &str) -> Result<Disposition, StoreError> {
        let p = self.provider;
        let job = self.ctx.db.job_by_irn(irn).await?;
        match call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillByIrn, Resend::Freely, |s| async move {
            p.ewaybill_by_irn(&s, irn).await
        })
        .await
        {
            Ok(v) => {
                let data = json!({
                    "irn": irn,
                    "ewb_no": get_ci(&v, "EwbNo"),
                    "ewb_dt": get_ci(&v, "EwbDt"),
                    "ewb_valid_till": get_ci(&v, "EwbValidTill"),
                    "status": get_ci(&v, "Status"),
                });
                self.emit(self.event("ewaybill.details", data, job.as_ref(), None)).await
            }
            Err(e) => self.failed(e, Operation::EwaybillByIrn, job.as_ref().map(super::events::document_ref)).await,
        }
    }

    async fn b2c_qr(&self, d: &DocRef) -> Result<Disposition, StoreError> {
        let p = self.provider;
        match call(self.ctx, self.gstin.as_str(), p, Operation::B2cQr, Resend::Freely, |s| async move {
            p.b2c_qr(&s, d).await
        })
        .await
        {
            Ok(v) => {
                let qr = get_ci(&v, "QRCode").or_else(|| get_ci(&v, "SignedQRCode")).unwrap_or_default();
                let mut data = json!({"qr_code": qr});
                if let Some(png) = super::events::b2c_qr_png(self.ctx, &qr).await? {
                    data["qr_png_base64"] = png;
                }
                self.emit(self.event("b2c.qr", data, None, Some(self.doc_ref(d)))).await
            }
            Err(e) => self.failed(e, Operation::B2cQr, Some(self.doc_ref(d))).await,
        }
    }
}

const CREDIT_NOTE_REMEDY: &str = "issue a credit note against the invoice instead";

fn target_doc(job: &Job<'_>, t: &Target) -> Option<DocumentRef> {
    match t {
        Target::Document(d) => Some(job.doc_ref(d)),
        Target::Irn(_) => None,
    }
}

fn irp_message(e: &IrpError) -> String {
    e.to_error_items().into_iter().map(|i| i.message).collect::<Vec<_>>().join("; ")
}

/// Append what the user must do instead, for the IRP codes that have a known remedy.
fn with_remedy(mut e: ErrorItem) -> ErrorItem {
    let remedy = match e.code.as_str() {
        "2270" => Some(CREDIT_NOTE_REMEDY),
        "2230" => Some("cancel the e-way bill first (e-way bill portal), then send the cancel again"),
        "2283" => Some(
            "the IRP only returns IRN details for 2 days after generation; use the stored copy of the signed invoice",
        ),
        "2148" | "2154" => Some("check the IRN or document details; the IRP has no such document"),
        "3028" | "3029" => Some("check the GSTIN on the GST portal; it is invalid or inactive"),
        _ => None,
    };
    if let Some(r) = remedy {
        e.message = format!("{}: {r}", e.message);
    }
    e
}

/// GSTIN details as our event names them, whatever the protocol called the fields.
fn gstin_view(gstin: &str, v: &Value) -> Value {
    json!({
        "gstin": get_ci(v, "Gstin").unwrap_or_else(|| gstin.to_string()),
        "trade_name": get_ci(v, "TradeName"),
        "legal_name": get_ci(v, "LegalName"),
        "address": {
            "building_number": get_ci(v, "AddrBno"),
            "building_name": get_ci(v, "AddrBnm"),
            "floor": get_ci(v, "AddrFlno"),
            "street": get_ci(v, "AddrSt"),
            "location": get_ci(v, "AddrLoc"),
            "pincode": get_ci(v, "AddrPncd"),
        },
        "state_code": get_ci(v, "StateCode"),
        "taxpayer_type": get_ci(v, "TxpType"),
        "status": get_ci(v, "Status"),
        "block_status": get_ci(v, "BlkStatus"),
        "registered_on": get_ci(v, "DtReg"),
        "deregistered_on": get_ci(v, "DtDReg"),
    })
}
