//! `irn.cancel`: find the IRN (store, then IRP), refuse what the IRP would refuse, then cancel.
use chrono::Utc;
use serde_json::json;

use super::job::{irp_message, issuer_of_target, target_doc, with_remedy, Job, CREDIT_NOTE_REMEDY};
use crate::domain::command::cancel::Cancel;
use crate::domain::command::ewaybill::{EwbCancelReason, EWB_REMARK_MAX};
use crate::domain::command::{CancelReason, JobKind, Target};
use crate::domain::event::{CommandMeta, DocumentRef, ErrorItem};
use crate::domain::outcome::{Final, Operation};
use crate::irp::types::{format_ist, parse_ist};
use crate::irp::IrpError;
use crate::runtime::attempts;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::job_event;
use crate::runtime::{Ctx, Disposition};
use crate::store::jobs::JobUpdate;
use crate::store::{JobRow, StoreError};

/// The IRP lets an IRN be cancelled within 24 hours of its acknowledgement.
const CANCEL_WINDOW_HOURS: i64 = 24;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &Cancel, attempt: u32) -> Result<Disposition, StoreError> {
    let issuer = issuer_of_target(ctx, &c.gstin, &c.target).await?;
    match Job::open(ctx, meta, JobKind::IrnCancel, &c.gstin, issuer, attempt).await? {
        Ok(job) => job.cancel(&c.target, c.reason, &c.remark, c.cancel_ewaybill).await,
        Err(answered) => Ok(answered),
    }
}

/// Where a command's IRN came from.
pub(super) struct Resolved {
    pub(super) irn: String,
    pub(super) ack_dt: Option<String>,
    pub(super) status: Option<String>,
    pub(super) job: Option<JobRow>,
    pub(super) doc: Option<DocumentRef>,
}

impl Job<'_> {
    /// Find the IRN a command names: our store first, then the IRP.
    pub(super) async fn resolve(&self, target: &Target) -> Result<Result<Resolved, IrpError>, StoreError> {
        let db = &self.ctx.db;
        let (job, doc) = match target {
            Target::Irn(irn) => (db.job_by_irn(irn).await?, None),
            Target::Document(d) => (db.job_by_key(&self.key(d)).await?, Some(self.doc_ref(d))),
        };
        if let Some(job) = job.filter(|j| j.irn.is_some()) {
            let status = Some(if job.status.is_cancelled() { "CNL" } else { "ACT" }.to_string());
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

    async fn cancel(
        &self,
        target: &Target,
        reason: CancelReason,
        remark: &str,
        cancel_ewaybill: bool,
    ) -> Result<Disposition, StoreError> {
        let r = match self.resolve(target).await? {
            Ok(r) => r,
            // Too old for the IRP to show it: it is certainly past the 24-hour window.
            Err(e) if e.has_code("2283") => {
                let errors = vec![ErrorItem::irp("2283", format!("{} {}", irp_message(&e), CREDIT_NOTE_REMEDY))];
                return self.reject(errors, target_doc(self, target)).await;
            }
            Err(e) => return self.failed(e, Operation::GetByIrn, target_doc(self, target)).await,
        };
        let doc = r.doc.clone().or_else(|| r.job.as_ref().map(crate::runtime::events::document_ref));
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
        // An active e-way bill makes the IRP refuse the cancel (2230): cancel it first when asked,
        // else refuse before any call. A step finished by an earlier attempt is not repeated.
        let mut ewb = self.ctx.db.ewaybill_for_irn(&r.irn).await?;
        if let Some(active) = ewb.as_ref().filter(|e| e.is_active()) {
            if !cancel_ewaybill {
                return self.reject(vec![ewaybill_active(&r.irn, &active.ewb_no)], doc).await;
            }
        }
        let irn = r.irn.as_str();
        let (cancel_date, already) = loop {
            if cancel_ewaybill {
                if let Some(active) = ewb.clone().filter(|e| e.is_active()) {
                    let ewb_reason = EwbCancelReason::for_irn_reason(reason);
                    let ewb_remark = ewaybill_remark(remark);
                    match self
                        .cancel_one_ewaybill(&active, ewb_reason, &ewb_remark, r.job.as_ref(), doc.clone())
                        .await?
                    {
                        Ok(row) => ewb = Some(row),
                        Err(e) => return self.failed(e, Operation::EwaybillCancel, doc).await,
                    }
                }
            }
            let ewb_cancelled = cancel_ewaybill && ewb.as_ref().is_some_and(|e| !e.is_active());
            match self.cancel_irn(irn, reason, remark).await {
                Ok(done) => break done,
                // The store did not know the e-way bill: find it at the IRP, then go round once more.
                Err(e) if e.has_code("2230") && cancel_ewaybill && !ewb.as_ref().is_some_and(|x| x.is_active()) => {
                    match self.ewaybill_at_irp(irn).await {
                        Ok(Some(found))
                            if found.is_active() && ewb.as_ref().is_none_or(|x| x.ewb_no != found.ewb_no) =>
                        {
                            ewb = Some(found);
                            continue;
                        }
                        _ => return self.failed(e, Operation::Cancel, doc).await,
                    }
                }
                Err(e)
                    if ewb_cancelled
                        && !matches!(e.class(Operation::Cancel), Final::Transient | Final::Configuration) =>
                {
                    let ewb_no = ewb.as_ref().map(|x| x.ewb_no.clone()).unwrap_or_default();
                    let mut errors: Vec<ErrorItem> = e.to_error_items().into_iter().map(with_remedy).collect();
                    errors.push(ErrorItem::worker(
                        "EWAYBILL_CANCELLED_IRN_ACTIVE",
                        format!(
                            "e-way bill {ewb_no} is cancelled but IRN {irn} is still active. Fix the cause above and send irn.cancel again: the e-way bill step is done and will not be repeated. If the goods still move, make a new e-way bill with ewaybill.generate (it needs fresh Part-B details)"
                        ),
                    ));
                    let extra = json!({"ewaybill_cancelled": true, "ewb_no": ewb_no});
                    return self.reject_with(errors, doc, extra).await;
                }
                Err(e) => return self.failed(e, Operation::Cancel, doc).await,
            }
        };
        let mut data = json!({"irn": irn, "cancel_date": cancel_date, "already_cancelled": already, "reason": reason.code(), "remark": remark});
        if let Some(e) = ewb.as_ref().filter(|e| cancel_ewaybill && !e.is_active()) {
            data["ewaybill_cancelled"] = json!(true);
            data["ewb_no"] = json!(e.ewb_no);
        }
        match &r.job {
            Some(job) => {
                self.stamp_irp(&mut data, Some(job));
                let ev = job_event(self.meta, job, "irn.cancelled", data);
                let update = JobUpdate::Cancelled { cancel_date, response: json!({"already_cancelled": already}) };
                self.ctx.db.finish_job_with(job.id, &update, &[ev], attempts::take().as_ref()).await?;
                Ok(Disposition::Ack)
            }
            None => self.emit(self.event("irn.cancelled", data, None, doc)).await,
        }
    }

    /// Cancel the IRN at the IRP. `Ok((cancel_date, already_cancelled))`; an ambiguous failure
    /// is looked up before it is reported.
    async fn cancel_irn(&self, irn: &str, reason: CancelReason, remark: &str) -> Result<(String, bool), IrpError> {
        let p = self.provider.as_ref();
        let answer =
            call(self.ctx, self.gstin.as_str(), p, Operation::Cancel, Resend::NotIfMayHaveReached, |s| async move {
                p.cancel(&s, irn, reason, remark).await
            })
            .await;
        match answer {
            Ok(c) => Ok((c.cancel_date, false)),
            Err(e) if e.class(Operation::Cancel) == Final::AlreadyCancelled => Ok((format_ist(Utc::now()), true)),
            Err(e) if e.may_have_reached_irp() => {
                // Ambiguous: look before resending.
                match self.lookup_irn(irn).await {
                    Ok(d) if d.status.as_deref() == Some("CNL") => Ok((format_ist(Utc::now()), false)),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// The e-way bill remark for an IRN cancel: its own remark, cut to the e-way bill system's limit.
fn ewaybill_remark(irn_remark: &str) -> String {
    let r: String = irn_remark.trim().chars().take(EWB_REMARK_MAX).collect();
    if r.is_empty() {
        "Invoice cancelled".into()
    } else {
        r
    }
}

/// Refused before any call: the IRP would answer 2230.
fn ewaybill_active(irn: &str, ewb_no: &str) -> ErrorItem {
    ErrorItem::worker(
        "2230",
        format!(
            "IRN {irn} has an active e-way bill ({ewb_no}) and the IRP refuses to cancel such an IRN (2230): cancel the e-way bill first (ewaybill.cancel), or send irn.cancel again with \"cancel_ewaybill\": true to cancel both in order"
        ),
    )
}
