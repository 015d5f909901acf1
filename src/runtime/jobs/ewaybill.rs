//! The e-way bill jobs: `ewaybill.get`, `ewaybill.generate`, `ewaybill.update_vehicle`,
//! `ewaybill.cancel`, and the e-way bill step of `irn.cancel` with `cancel_ewaybill`.
//!
//! What the store knows answers first: a second generate for an IRN whose active e-way bill is
//! stored makes no call, and a cancel of a stored cancelled e-way bill neither. The IRP's 4002
//! (already generated, without the number) is resolved by reading the e-way bill by IRN.
use chrono::Utc;
use serde_json::{json, Value};

use super::Job;
use crate::domain::command::ewaybill::{document_age_problem, EwbCancelReason, EwbTarget, Transport, VehicleUpdate};
use crate::domain::command::Target;
use crate::domain::event::{DocumentRef, ErrorItem, ErrorSource};
use crate::domain::outcome::{Class, Operation};
use crate::domain::DocDate;
use crate::irp::errors::get_ci;
use crate::irp::types::format_ist;
use crate::irp::{EwbData, IrpError};
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::document_ref;
use crate::runtime::Disposition;
use crate::store::ewaybills::{EwbRow, EwbUpsert, ACTIVE, CANCELLED};
use crate::store::{JobRow, StoreError};

impl Job<'_> {
    pub(super) async fn ewaybill(&self, irn: &str) -> Result<Disposition, StoreError> {
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
            Err(e) => self.failed(e, Operation::EwaybillByIrn, job.as_ref().map(document_ref)).await,
        }
    }

    /// The IRN's e-way bill as the IRP has it (`None`: it has none).
    pub(super) async fn ewaybill_at_irp(&self, irn: &str) -> Result<Option<EwbRow>, IrpError> {
        let p = self.provider;
        let found = call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillByIrn, Resend::Freely, |s| async move {
            p.ewaybill_by_irn(&s, irn).await
        })
        .await;
        match found {
            Ok(v) => {
                let Some(d) = EwbData::from_json(&v) else { return Ok(None) };
                let cancelled = get_ci(&v, "Status").is_some_and(|s| s.eq_ignore_ascii_case("CNL"));
                Ok(Some(EwbRow {
                    ewb_no: d.ewb_no,
                    gstin: self.gstin.as_str().to_string(),
                    irn: Some(irn.to_string()),
                    ewb_date: d.ewb_date,
                    valid_till: d.valid_till,
                    status: if cancelled { CANCELLED } else { ACTIVE }.into(),
                    cancel_date: None,
                }))
            }
            // "Not generated" / "not found" (4003–4007): the IRN has no e-way bill.
            Err(e) if ["4003", "4005", "4007"].iter().any(|c| e.has_code(c)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn ewaybill_generate(
        &self,
        target: &Target,
        transport: &Transport,
    ) -> Result<Disposition, StoreError> {
        let r = match self.resolve(target).await? {
            Ok(r) => r,
            Err(e) => return self.failed(e, Operation::GetByIrn, super::target_doc(self, target)).await,
        };
        let doc = r.doc.clone().or_else(|| r.job.as_ref().map(document_ref));
        if r.status.as_deref() == Some("CNL") {
            let errors = vec![ErrorItem::worker(
                "4000",
                format!("IRN {} is cancelled, so no e-way bill can be made from it (the IRP would answer 4000)", r.irn),
            )];
            return self.reject(errors, doc).await;
        }
        // The 180-day rule, when we know the document's date.
        let doc_date = r.job.as_ref().and_then(|j| j.doc_date.as_deref()).and_then(|d| DocDate::parse(d).ok());
        if let Some(p) = doc_date.and_then(|d| document_age_problem(d, crate::domain::invoice::india_today(), "irn")) {
            return self.reject(vec![ErrorItem::from_problem(ErrorSource::Validation, p)], doc).await;
        }
        let irn = r.irn.as_str();
        if let Some(existing) = self.ctx.db.ewaybill_for_irn(irn).await?.filter(EwbRow::is_active) {
            return self.ewaybill_generated(irn, &existing, true, r.job.as_ref(), doc, None).await;
        }
        let p = self.provider;
        let request = transport.request(irn);
        let req = &request;
        let answer =
            call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillGenerate, Resend::Freely, |s| async move {
                p.generate_ewaybill(&s, req).await
            })
            .await;
        let (row, already, raw) = match answer {
            Ok(d) => (self.row(irn, &d), false, Some(d.raw)),
            Err(e) if e.class(Operation::EwaybillGenerate) == Class::EwaybillExists => {
                // 4002 names no e-way bill: read it by IRN.
                match self.ewaybill_at_irp(irn).await {
                    Ok(Some(found)) => (found, true, None),
                    Ok(None) => return self.failed(e, Operation::EwaybillGenerate, doc).await,
                    Err(e) => return self.failed(e, Operation::EwaybillByIrn, doc).await,
                }
            }
            Err(e) => return self.failed(e, Operation::EwaybillGenerate, doc).await,
        };
        self.ewaybill_generated(irn, &row, already, r.job.as_ref(), doc, raw.as_ref()).await
    }

    fn row(&self, irn: &str, d: &EwbData) -> EwbRow {
        EwbRow {
            ewb_no: d.ewb_no.clone(),
            gstin: self.gstin.as_str().to_string(),
            irn: Some(irn.to_string()),
            ewb_date: d.ewb_date.clone(),
            valid_till: d.valid_till.clone(),
            status: ACTIVE.into(),
            cancel_date: None,
        }
    }

    async fn ewaybill_generated(
        &self,
        irn: &str,
        e: &EwbRow,
        already: bool,
        job: Option<&JobRow>,
        doc: Option<DocumentRef>,
        raw: Option<&Value>,
    ) -> Result<Disposition, StoreError> {
        let data = json!({
            "irn": irn, "ewb_no": e.ewb_no, "ewb_date": e.ewb_date, "ewb_valid_till": e.valid_till,
            "already_existed": already,
        });
        let ev = self.event("ewaybill.generated", data, job, doc);
        self.ctx.db.record_ewaybill(&upsert(e, raw), &[ev]).await?;
        Ok(Disposition::Ack)
    }

    /// The e-way bill a command names, from the store, else (by IRN) from the IRP.
    async fn find_ewaybill(
        &self,
        target: &EwbTarget,
    ) -> Result<Result<(EwbRow, Option<JobRow>), Disposition>, StoreError> {
        let db = &self.ctx.db;
        let (row, irn) = match target {
            EwbTarget::EwbNo(n) => {
                let row = db.ewaybill(n).await?;
                let irn = row.as_ref().and_then(|r| r.irn.clone());
                // An e-way bill we never recorded: cancel or update it by number all the same.
                let row = row.unwrap_or_else(|| EwbRow {
                    ewb_no: n.clone(),
                    gstin: self.gstin.as_str().to_string(),
                    irn: None,
                    ewb_date: None,
                    valid_till: None,
                    status: ACTIVE.into(),
                    cancel_date: None,
                });
                (Some(row), irn)
            }
            EwbTarget::Irn(irn) => {
                let row = match db.ewaybill_for_irn(irn).await? {
                    Some(r) => Some(r),
                    None => match self.ewaybill_at_irp(irn).await {
                        Ok(found) => found,
                        Err(e) => return Ok(Err(self.failed(e, Operation::EwaybillByIrn, None).await?)),
                    },
                };
                (row, Some(irn.clone()))
            }
        };
        let job = match &irn {
            Some(i) => db.job_by_irn(i).await?,
            None => None,
        };
        match row {
            Some(r) => Ok(Ok((r, job))),
            None => {
                let irn = irn.unwrap_or_default();
                let errors = vec![ErrorItem::worker(
                    "EWAYBILL_NOT_FOUND",
                    format!("IRN {irn} has no e-way bill, at the IRP or in our store; make one with ewaybill.generate"),
                )];
                Ok(Err(self.reject(errors, job.as_ref().map(document_ref)).await?))
            }
        }
    }

    pub(super) async fn ewaybill_cancel(
        &self,
        target: &EwbTarget,
        reason: EwbCancelReason,
        remark: &str,
    ) -> Result<Disposition, StoreError> {
        let (row, job) = match self.find_ewaybill(target).await? {
            Ok(x) => x,
            Err(d) => return Ok(d),
        };
        let doc = job.as_ref().map(document_ref);
        match self.cancel_one_ewaybill(&row, reason, remark, job.as_ref(), doc.clone()).await? {
            Ok(_) => Ok(Disposition::Ack),
            Err(e) => self.failed(e, Operation::EwaybillCancel, doc).await,
        }
    }

    /// Cancel one e-way bill and record it with its `ewaybill.cancelled` event, or answer from
    /// the store when it is already cancelled there (no call, no second event in a saga).
    /// `Ok(Err(e))` is an IRP failure for the caller to map.
    pub(super) async fn cancel_one_ewaybill(
        &self,
        e: &EwbRow,
        reason: EwbCancelReason,
        remark: &str,
        job: Option<&JobRow>,
        doc: Option<DocumentRef>,
    ) -> Result<Result<EwbRow, IrpError>, StoreError> {
        if !e.is_active() {
            let data = json!({"ewb_no": e.ewb_no, "cancel_date": e.cancel_date, "already_cancelled": true});
            self.emit(self.event("ewaybill.cancelled", data, job, doc)).await?;
            return Ok(Ok(e.clone()));
        }
        let p = self.provider;
        let no = e.ewb_no.as_str();
        // Resending is safe: a cancel that already happened answers 312, which is success here.
        let answer =
            call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillCancel, Resend::Freely, |s| async move {
                p.cancel_ewaybill(&s, no, reason, remark).await
            })
            .await;
        let (cancel_date, already) = match answer {
            Ok(c) => (c.cancel_date, false),
            Err(err) if err.class(Operation::EwaybillCancel) == Class::AlreadyCancelled => {
                (format_ist(Utc::now()), true)
            }
            Err(err) => return Ok(Err(err)),
        };
        let data = json!({
            "ewb_no": e.ewb_no, "irn": e.irn, "cancel_date": cancel_date, "already_cancelled": already,
            "reason": reason.code(), "remark": remark,
        });
        let ev = self.event("ewaybill.cancelled", data, job, doc);
        self.ctx.db.cancel_ewaybill(&upsert(e, None), &cancel_date, &[ev]).await?;
        Ok(Ok(EwbRow { status: CANCELLED.into(), cancel_date: Some(cancel_date), ..e.clone() }))
    }

    pub(super) async fn ewaybill_update_vehicle(
        &self,
        target: &EwbTarget,
        update: &VehicleUpdate,
    ) -> Result<Disposition, StoreError> {
        let (row, job) = match self.find_ewaybill(target).await? {
            Ok(x) => x,
            Err(d) => return Ok(d),
        };
        let doc = job.as_ref().map(document_ref);
        if !row.is_active() {
            let errors = vec![ErrorItem::worker(
                "EWAYBILL_CANCELLED",
                format!(
                    "e-way bill {} was cancelled{}; a cancelled e-way bill cannot take a vehicle. Make a new one with ewaybill.generate",
                    row.ewb_no,
                    row.cancel_date.as_deref().map(|d| format!(" at {d}")).unwrap_or_default()
                ),
            )];
            return self.reject(errors, doc).await;
        }
        let p = self.provider;
        let no = row.ewb_no.as_str();
        // A repeated Part-B entry with the same vehicle is harmless, so a lost answer is resent.
        let answer =
            call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillUpdateVehicle, Resend::Freely, |s| async move {
                p.update_vehicle(&s, no, update).await
            })
            .await;
        match answer {
            Ok(v) => {
                let valid_till = v.valid_till.clone().or_else(|| row.valid_till.clone());
                let data = json!({
                    "ewb_no": row.ewb_no, "vehicle_updated_at": v.updated_at, "ewb_valid_till": valid_till,
                    "vehicle_no": update.vehicle_no,
                });
                let ev = self.event("ewaybill.vehicle_updated", data, job.as_ref(), doc);
                let changed = EwbRow { valid_till, ..row.clone() };
                self.ctx
                    .db
                    .ewaybill_vehicle_updated(&upsert(&changed, None), &update.vehicle_no, &v.updated_at, &[ev])
                    .await?;
                Ok(Disposition::Ack)
            }
            Err(e) => self.failed(e, Operation::EwaybillUpdateVehicle, doc).await,
        }
    }
}

fn upsert<'a>(e: &'a EwbRow, raw: Option<&'a Value>) -> EwbUpsert<'a> {
    EwbUpsert {
        ewb_no: &e.ewb_no,
        gstin: &e.gstin,
        irn: e.irn.as_deref(),
        ewb_date: e.ewb_date.as_deref(),
        valid_till: e.valid_till.as_deref(),
        response: raw,
    }
}
