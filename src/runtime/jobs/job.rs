//! What the IRP-bound job handlers share: [`Job`], one command being handled with the GSTIN's
//! IRP, opened by [`Job::open`] after the checks every such command passes (the GSTIN is
//! configured, the IRP that issued the IRN is one of its IRPs, the GSTIN is not paused); and
//! rejections, lookups and the mapping of an IRP failure to a disposition.
use std::sync::Arc;

use serde_json::{json, Value};

use crate::domain::command::{DocRef, JobKind, Target};
use crate::domain::event::{CommandMeta, DocumentRef, ErrorItem, Event};
use crate::domain::outcome::{Final, Operation};
use crate::domain::portal::{EwbAccess, EwbNo};
use crate::domain::{DocumentKey, Gstin};
use crate::irp::registry::IrpSet;
use crate::irp::{IrnData, IrpError, IrpProvider};
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::{job_event, paused, plain_event};
use crate::runtime::{guard, span, Ctx, Disposition};
use crate::store::outbox::OutboxEvent;
use crate::store::{JobRow, StoreError};

/// The IRP that issued the IRN `target` names, when our store knows it.
pub(super) async fn issuer_of_target(ctx: &Ctx, gstin: &Gstin, target: &Target) -> Result<Option<String>, StoreError> {
    let job = match target {
        Target::Irn(irn) => ctx.db.job_by_irn(irn).await?,
        Target::Document(d) => {
            let key = DocumentKey::new(gstin.clone(), d.doc_type, d.doc_number.clone(), d.doc_date);
            ctx.db.job_by_key(&key).await?
        }
    };
    Ok(job.and_then(|j| j.irp))
}

/// What a call about an existing e-way bill is routed by: the IRP it was made through and its number.
#[derive(Debug, Clone)]
pub(super) struct EwbRoute {
    pub(super) via: Via,
    pub(super) ewb_no: Option<EwbNo>,
}

/// The IRP an e-way bill was made through.
#[derive(Debug, Clone)]
pub(super) enum Via {
    /// Made from an IRN this IRP issued.
    Issuer(String),
    /// Made without an IRN (`GENEWAYBILL`), which always goes to the GSTIN's primary IRP.
    Primary,
    /// Not known (an e-way bill we never recorded, or an IRN registered elsewhere).
    Unknown,
}

/// The IRP that issued `irn`, when our store knows it.
pub(super) async fn issuer_of_irn(ctx: &Ctx, irn: &str) -> Result<Option<String>, StoreError> {
    Ok(ctx.db.job_by_irn(irn).await?.and_then(|j| j.irp))
}

/// Publish `<job>.rejected` for a command that has no job row.
pub(super) async fn reject(
    ctx: &Ctx,
    meta: &CommandMeta,
    kind: JobKind,
    errors: Vec<ErrorItem>,
    doc: Option<DocumentRef>,
) -> Result<Disposition, StoreError> {
    reject_with(ctx, meta, kind, errors, doc, Value::Null).await
}

/// [`reject`] with more `data` fields (`extra`, an object) beside the errors.
pub(super) async fn reject_with(
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
    let mut ev = plain_event(meta, kind.rejected_event(), data);
    ev.event.document = doc;
    ctx.db.enqueue_events(&[ev]).await?;
    Ok(Disposition::Ack)
}

/// One command being handled, with what every step needs.
pub(super) struct Job<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) meta: &'a CommandMeta,
    pub(super) kind: JobKind,
    pub(super) gstin: &'a Gstin,
    pub(super) provider: Arc<dyn IrpProvider>,
    pub(super) attempt: u32,
}

impl<'a> Job<'a> {
    /// The checks every IRP-bound command passes before its first call: the GSTIN has IRPs
    /// configured, the IRP that issued the IRN the command is about (`issuer`, when the store
    /// knows it: an IRN is portal-local) is one of them, and the GSTIN is not paused for this
    /// kind. `Err`: the command is already answered (rejected, or waiting for the pause to end).
    pub(super) async fn open(
        ctx: &'a Ctx,
        meta: &'a CommandMeta,
        kind: JobKind,
        gstin: &'a Gstin,
        issuer: Option<String>,
        attempt: u32,
    ) -> Result<Result<Job<'a>, Disposition>, StoreError> {
        let choose = |irps: &IrpSet| {
            irps.for_issuer(issuer.as_deref()).ok_or_else(|| {
                let irp = issuer.clone().unwrap_or_default();
                ErrorItem::worker(
                    "IRP_NOT_CONFIGURED",
                    format!("the IRN was issued by IRP {irp}, which is not configured for GSTIN {gstin}; add it under gstins.\"{gstin}\".failover"),
                )
            })
        };
        Self::open_routed(ctx, meta, kind, gstin, choose, attempt).await
    }

    /// [`Self::open`] for a call about an existing e-way bill: to its portal
    /// ([`IrpSet::for_ewaybill`]), refused before any call when no configured IRP can reach it.
    pub(super) async fn open_ewaybill(
        ctx: &'a Ctx,
        meta: &'a CommandMeta,
        kind: JobKind,
        gstin: &'a Gstin,
        route: &EwbRoute,
        access: EwbAccess,
        attempt: u32,
    ) -> Result<Result<Job<'a>, Disposition>, StoreError> {
        let choose = |irps: &IrpSet| {
            let via = match &route.via {
                Via::Issuer(i) => Some(i.as_str()),
                Via::Primary => Some(irps.primary().irp()),
                Via::Unknown => None,
            };
            let portal = route.ewb_no.as_ref().and_then(EwbNo::portal);
            irps.for_ewaybill(via, portal, access).map_err(|e| {
                let no = route.ewb_no.as_ref().map(|n| format!("e-way bill {n}: ")).unwrap_or_default();
                ErrorItem::worker(e.code(), format!("{no}{e} (GSTIN {gstin})"))
            })
        };
        Self::open_routed(ctx, meta, kind, gstin, choose, attempt).await
    }

    async fn open_routed(
        ctx: &'a Ctx,
        meta: &'a CommandMeta,
        kind: JobKind,
        gstin: &'a Gstin,
        choose: impl FnOnce(&IrpSet) -> Result<Arc<dyn IrpProvider>, ErrorItem>,
        attempt: u32,
    ) -> Result<Result<Job<'a>, Disposition>, StoreError> {
        let Some(irps) = ctx.providers.set(gstin.as_str()) else {
            let errors = vec![ctx.unserved(gstin.as_str(), "gstin")];
            return reject(ctx, meta, kind, errors, None).await.map(Err);
        };
        let provider = match choose(&irps) {
            Ok(p) => p,
            Err(e) => return reject(ctx, meta, kind, vec![e], None).await.map(Err),
        };
        if let Some((until, code)) = ctx.pause_of(gstin.as_str()).await? {
            if guard::holds(kind, code.as_deref()) {
                let errors = vec![paused(gstin.as_str(), until)];
                return Ok(Err(Disposition::Wait { until, attempt, errors }));
            }
        }
        Ok(Ok(Job { ctx, meta, kind, gstin, provider, attempt }))
    }

    pub(super) fn event(
        &self,
        event_type: &str,
        data: Value,
        job: Option<&JobRow>,
        doc: Option<DocumentRef>,
    ) -> OutboxEvent {
        let mut data = data;
        self.stamp_irp(&mut data, job);
        match job {
            Some(row) => {
                span::record_job_id(row.id);
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

    /// The IRP an event about `job` (or, without one, about this command) names: the IRP that
    /// issued the job's IRN when the store knows it, else the one this command called.
    pub(super) fn irp_of(&self, job: Option<&JobRow>) -> String {
        job.and_then(|j| j.irp.clone()).unwrap_or_else(|| self.provider.irp().to_string())
    }

    /// The contract: every event whose data carries an IRN or an e-way bill number carries
    /// `data.irp`, so a consumer knows where to send what follows (get, cancel, Part B).
    pub(super) fn stamp_irp(&self, data: &mut Value, job: Option<&JobRow>) {
        if let Some(o) = data.as_object_mut() {
            if (o.contains_key("irn") || o.contains_key("ewb_no")) && !o.contains_key("irp") {
                o.insert("irp".into(), json!(self.irp_of(job)));
            }
        }
    }

    pub(super) async fn emit(&self, ev: OutboxEvent) -> Result<Disposition, StoreError> {
        self.ctx.db.enqueue_events(&[ev]).await?;
        Ok(Disposition::Ack)
    }

    pub(super) async fn reject(
        &self,
        errors: Vec<ErrorItem>,
        doc: Option<DocumentRef>,
    ) -> Result<Disposition, StoreError> {
        reject(self.ctx, self.meta, self.kind, errors, doc).await
    }

    pub(super) async fn reject_with(
        &self,
        errors: Vec<ErrorItem>,
        doc: Option<DocumentRef>,
        extra: Value,
    ) -> Result<Disposition, StoreError> {
        let mut extra = extra;
        self.stamp_irp(&mut extra, None);
        reject_with(self.ctx, self.meta, self.kind, errors, doc, extra).await
    }

    /// Map an IRP failure that ended a call: reschedule, pause, or reject (with `remedy` text
    /// appended to the IRP's own message for codes the user must act on).
    pub(super) async fn failed(
        &self,
        e: IrpError,
        op: Operation,
        doc: Option<DocumentRef>,
    ) -> Result<Disposition, StoreError> {
        match e.class(op) {
            // A known wait (rate limit, open circuit) is no failure: back at its end, same attempt.
            Final::Transient => Ok(match e.wait_until() {
                Some(until) => Disposition::Wait { until, attempt: self.attempt, errors: e.to_error_items() },
                None => Disposition::Reschedule { attempt: self.attempt, errors: e.to_error_items() },
            }),
            Final::Configuration => {
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

    pub(super) async fn lookup_doc(&self, d: &DocRef) -> Result<IrnData, IrpError> {
        let p = self.provider.as_ref();
        call(self.ctx, self.gstin.as_str(), p, Operation::GetByDoc, Resend::Freely, |s| async move {
            p.get_by_doc(&s, d).await
        })
        .await
        .map(|data| IrnData { irp: Some(p.irp().to_string()), ..data })
    }

    pub(super) async fn lookup_irn(&self, irn: &str) -> Result<IrnData, IrpError> {
        let p = self.provider.as_ref();
        call(self.ctx, self.gstin.as_str(), p, Operation::GetByIrn, Resend::Freely, |s| async move {
            p.get_by_irn(&s, irn).await
        })
        .await
        .map(|data| IrnData { irp: Some(p.irp().to_string()), ..data })
    }

    pub(super) fn key(&self, d: &DocRef) -> DocumentKey {
        DocumentKey::new(self.gstin.clone(), d.doc_type, d.doc_number.clone(), d.doc_date)
    }

    pub(super) fn doc_ref(&self, d: &DocRef) -> DocumentRef {
        DocumentRef::new(&self.key(d), Some(d.doc_date))
    }
}

pub(super) const CREDIT_NOTE_REMEDY: &str = "issue a credit note against the invoice instead";

pub(super) fn target_doc(job: &Job<'_>, t: &Target) -> Option<DocumentRef> {
    match t {
        Target::Document(d) => Some(job.doc_ref(d)),
        Target::Irn(_) => None,
    }
}

pub(super) fn irp_message(e: &IrpError) -> String {
    e.to_error_items().into_iter().map(|i| i.message).collect::<Vec<_>>().join("; ")
}

/// Append what the user must do instead, for the IRP codes that have a known remedy.
pub(super) fn with_remedy(mut e: ErrorItem) -> ErrorItem {
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
