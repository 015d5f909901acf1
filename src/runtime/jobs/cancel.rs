//! `irn.cancel`: find the IRN (store, then IRP), refuse what the IRP would refuse, then cancel.
use chrono::Utc;
use serde_json::json;

use super::{irp_message, target_doc, Job, CREDIT_NOTE_REMEDY};
use crate::domain::command::{CancelReason, Target};
use crate::domain::event::{DocumentRef, ErrorItem};
use crate::domain::outcome::{Class, Operation};
use crate::irp::types::{format_ist, parse_ist};
use crate::irp::IrpError;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::job_event;
use crate::runtime::Disposition;
use crate::store::jobs::JobUpdate;
use crate::store::{JobRow, StoreError};

/// The IRP lets an IRN be cancelled within 24 hours of its acknowledgement.
const CANCEL_WINDOW_HOURS: i64 = 24;

/// Where a cancel's IRN came from.
struct Resolved {
    irn: String,
    ack_dt: Option<String>,
    status: Option<String>,
    job: Option<JobRow>,
    doc: Option<DocumentRef>,
}

impl Job<'_> {
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

    pub(super) async fn cancel(
        &self,
        target: &Target,
        reason: CancelReason,
        remark: &str,
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
}
