//! The job types beside generate: cancel, lookups, GSTIN details, e-way bill, B2C QR.
//!
//! Each one checks what it can before calling the IRP (a cancel past 24 hours, or of an IRN we
//! know is cancelled, costs no call), then maps the IRP's answer through the outcome table in
//! `domain::outcome`: success, idempotent success, re-auth (inside `calls::call`), transient
//! (reschedule), configuration (pause the GSTIN) or rejection (with what to do instead).
//!
//! One module per job family, named after its routing keys: [`cancel`] (`irn.cancel`),
//! [`lookups`] (`irn.get`, `gstin.details`), [`ewaybill`] (`ewaybill.*`), [`b2c`] (`b2c.qr`),
//! [`job_status`] (`job.status`, from the store only), [`batch`] (`irn.generate_batch`).
//! This module routes a command to its family and holds what they share ([`Job`]).
mod b2c;
mod batch;
mod cancel;
mod ewaybill;
mod job_status;
mod lookups;

pub use batch::member_answered as batch_member_answered;

use serde_json::{json, Value};

use super::calls::{call, Resend};
use super::events::{job_event, not_configured, paused, plain_event};
use super::{Ctx, Disposition};
use crate::domain::command::{Command, DocRef, JobKind, Target};
use crate::domain::event::{CommandMeta, DocumentRef, ErrorItem, Event};
use crate::domain::outcome::{Class, Operation};
use crate::domain::{DocumentKey, Gstin};
use crate::irp::{IrnData, IrpError, IrpProvider};
use crate::store::outbox::OutboxEvent;
use crate::store::{JobRow, StoreError};

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, cmd: &Command, attempt: u32) -> Result<Disposition, StoreError> {
    let kind = cmd.kind();
    match cmd {
        Command::ReconcileRejected { gstin, from, to } => {
            return super::reconcile::handle(ctx, meta, gstin.as_ref(), *from, *to, attempt).await;
        }
        // Answered from the store: no provider, no pause, no configuration needed.
        Command::JobStatus { gstin, query } => return job_status::answer(ctx, meta, gstin.as_ref(), query).await,
        Command::GenerateBatch { gstin, batch_id, invoices } => {
            return batch::fan_out(ctx, meta, gstin, batch_id.as_deref(), invoices, attempt).await;
        }
        _ => {}
    }
    let Some(gstin) = cmd.gstin() else {
        unreachable!("every job type but reconciliation names its GSTIN");
    };
    let Some(irps) = ctx.providers.set(gstin.as_str()) else {
        let errors = vec![not_configured(gstin.as_str())];
        return reject(ctx, meta, kind, errors, None).await;
    };
    // Follow-up calls go to the IRP that issued the IRN (an IRN is portal-local).
    let issuer = issuer_of(ctx, gstin, cmd).await?;
    let Some(provider) = irps.for_issuer(issuer.as_deref()) else {
        let irp = issuer.unwrap_or_default();
        let errors = vec![ErrorItem::worker(
            "IRP_NOT_CONFIGURED",
            format!("the IRN was issued by IRP {irp}, which is not configured for GSTIN {gstin}; add it under gstins.\"{gstin}\".failover"),
        )];
        return reject(ctx, meta, kind, errors, None).await;
    };
    if let Some((until, code)) = ctx.pause_of(gstin.as_str()).await? {
        if super::guard::holds(kind, code.as_deref()) {
            let errors = vec![paused(gstin.as_str(), until)];
            return Ok(Disposition::Wait { until, attempt, errors });
        }
    }
    let job = Job { ctx, meta, kind, gstin, provider: provider.as_ref(), attempt };
    match cmd {
        Command::Cancel { target, reason, remark, cancel_ewaybill, .. } => {
            job.cancel(target, *reason, remark, *cancel_ewaybill).await
        }
        Command::Get { target, .. } => job.get(target).await,
        Command::GstinDetails { target_gstin, .. } => job.gstin_details(target_gstin).await,
        Command::EwaybillGet { irn, .. } => job.ewaybill(irn).await,
        Command::B2cQr { document, invoice, .. } => job.b2c_qr(document, invoice.as_deref()).await,
        Command::EwaybillGenerate { target, transport, .. } => job.ewaybill_generate(target, transport).await,
        Command::EwaybillUpdateVehicle { target, update, .. } => job.ewaybill_update_vehicle(target, update).await,
        Command::EwaybillCancel { target, reason, remark, .. } => job.ewaybill_cancel(target, *reason, remark).await,
        Command::Generate { .. }
        | Command::ReconcileRejected { .. }
        | Command::JobStatus { .. }
        | Command::GenerateBatch { .. } => unreachable!("handled elsewhere"),
    }
}

/// The IRP that issued the IRN a command is about, when our store knows it.
async fn issuer_of(ctx: &Ctx, gstin: &Gstin, cmd: &Command) -> Result<Option<String>, StoreError> {
    use crate::domain::command::ewaybill::EwbTarget;
    let job = match cmd {
        Command::Cancel { target, .. } | Command::Get { target, .. } | Command::EwaybillGenerate { target, .. } => {
            match target {
                Target::Irn(irn) => ctx.db.job_by_irn(irn).await?,
                Target::Document(d) => {
                    let key = DocumentKey::new(gstin.clone(), d.doc_type, d.doc_number.clone(), d.doc_date);
                    ctx.db.job_by_key(&key).await?
                }
            }
        }
        Command::EwaybillGet { irn, .. } => ctx.db.job_by_irn(irn).await?,
        Command::EwaybillUpdateVehicle { target, .. } | Command::EwaybillCancel { target, .. } => {
            let irn = match target {
                EwbTarget::Irn(irn) => Some(irn.clone()),
                EwbTarget::EwbNo(n) => ctx.db.ewaybill(n).await?.and_then(|e| e.irn),
            };
            match irn {
                Some(irn) => ctx.db.job_by_irn(&irn).await?,
                None => None,
            }
        }
        _ => None,
    };
    Ok(job.and_then(|j| j.irp))
}

/// Publish `<job>.rejected` for a command that has no job row.
async fn reject(
    ctx: &Ctx,
    meta: &CommandMeta,
    kind: JobKind,
    errors: Vec<ErrorItem>,
    doc: Option<DocumentRef>,
) -> Result<Disposition, StoreError> {
    reject_with(ctx, meta, kind, errors, doc, Value::Null).await
}

/// [`reject`] with more `data` fields (`extra`, an object) beside the errors.
async fn reject_with(
    ctx: &Ctx,
    meta: &CommandMeta,
    kind: JobKind,
    errors: Vec<ErrorItem>,
    doc: Option<DocumentRef>,
    extra: Value,
) -> Result<Disposition, StoreError> {
    let mut data = json!({"errors": errors, "dead_lettered": false});
    if let (Some(d), Value::Object(x)) = (data.as_object_mut(), extra) {
        d.extend(x);
    }
    let mut ev = plain_event(meta, &kind.rejected_event(), data);
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

impl<'a> Job<'a> {
    fn event(&self, event_type: &str, data: Value, job: Option<&JobRow>, doc: Option<DocumentRef>) -> OutboxEvent {
        match job {
            Some(row) => {
                super::worker::record_job_id(row.id);
                job_event(self.meta, row, event_type, data)
            }
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

    async fn reject_with(
        &self,
        errors: Vec<ErrorItem>,
        doc: Option<DocumentRef>,
        extra: Value,
    ) -> Result<Disposition, StoreError> {
        reject_with(self.ctx, self.meta, self.kind, errors, doc, extra).await
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
        .map(|data| IrnData { irp: Some(p.irp().to_string()), ..data })
    }

    async fn lookup_irn(&self, irn: &str) -> Result<IrnData, IrpError> {
        let p = self.provider;
        call(self.ctx, self.gstin.as_str(), p, Operation::GetByIrn, Resend::Freely, |s| async move {
            p.get_by_irn(&s, irn).await
        })
        .await
        .map(|data| IrnData { irp: Some(p.irp().to_string()), ..data })
    }

    fn key(&self, d: &DocRef) -> DocumentKey {
        DocumentKey::new(self.gstin.clone(), d.doc_type, d.doc_number.clone(), d.doc_date)
    }

    fn doc_ref(&self, d: &DocRef) -> DocumentRef {
        DocumentRef::new(&self.key(d), Some(d.doc_date))
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
        "2230" => Some(
            "cancel the e-way bill first (ewaybill.cancel), or send irn.cancel again with \"cancel_ewaybill\": true to cancel both in order",
        ),
        "4010" => Some("no e-way bill from an IRN for a credit or debit note or for services: CRN/DBN and services go through the plain e-way bill API"),
        "4000" => Some("the IRN is not active (cancelled?), so no e-way bill can be made from it"),
        "728" => Some("the e-way bill can no longer be cancelled (24 hours after its Part-B entry); let it expire or reject it on the portal"),
        "820" => Some("the document is more than 180 days old; no e-way bill can be made for it"),
        "2283" => Some(
            "the IRP only returns IRN details for 2 days after generation; use the stored copy of the signed invoice",
        ),
        "2148" | "2154" => Some("check the IRN or document details; the IRP has no such document"),
        "3028" | "3029" => Some("check the GSTIN on the GST portal; it is invalid or inactive"),
        "NOT_SUPPORTED" => Some(
            "send the B2C invoice in the command (\"invoice\": DocDtls, ValDtls) and the worker makes the QR itself from the seller's configured upi_id",
        ),
        _ => None,
    };
    if let Some(r) = remedy {
        e.message = format!("{}: {r}", e.message);
    }
    e
}
