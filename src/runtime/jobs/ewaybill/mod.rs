//! The e-way bill jobs, one module per command: [`get`] (`ewaybill.get`), [`generate`]
//! (`ewaybill.generate`), [`update_vehicle`] (`ewaybill.update_vehicle`) and [`cancel`]
//! (`ewaybill.cancel`); this module holds what they share with each other and with `irn.cancel`
//! (`cancel_ewaybill`): reading an IRN's e-way bill at the IRP, finding the one a command names,
//! and cancelling one.
//!
//! What the store knows answers first: a second generate for an IRN whose active e-way bill is
//! stored makes no call, and a cancel of a stored cancelled e-way bill neither. The IRP's 4002
//! (already generated, without the number) is resolved by reading the e-way bill by IRN.
pub mod cancel;
pub mod extend;
pub mod generate;
pub mod generate_doc;
pub mod get;
pub mod update_transporter;
pub mod update_vehicle;

use chrono::Utc;
use serde_json::{json, Value};

use super::job::{EwbRoute, Job, Via};
use crate::domain::command::ewaybill::{EwbCancelReason, EwbTarget};
use crate::domain::event::{DocumentRef, ErrorItem};
use crate::domain::outcome::{Final, Operation};
use crate::domain::portal::{EwbAccess, EwbNo};
use crate::irp::types::format_ist;
use crate::irp::IrpError;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::document_ref;
use crate::runtime::Disposition;
use crate::store::ewaybills::{EwbRow, EwbUpsert, ACTIVE, CANCELLED};
use crate::store::{JobRow, StoreError};

impl Job<'_> {
    /// The IRN's e-way bill as the IRP has it (`None`: it has none).
    pub(super) async fn ewaybill_at_irp(&self, irn: &str) -> Result<Option<EwbRow>, IrpError> {
        let p = self.provider.as_ref();
        let found = call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillByIrn, Resend::Freely, |s| async move {
            p.ewaybill_by_irn(&s, irn).await
        })
        .await;
        match found {
            Ok(v) => {
                let cancelled = v.is_cancelled();
                let Some(d) = v.ewb else { return Ok(None) };
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

    /// The e-way bill a command names, from the store, else (by IRN) from the IRP.
    pub(super) async fn find_ewaybill(
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

    /// The active e-way bill a Part-B-style command (vehicle, extension, transporter) acts on,
    /// with its job and document. `Ok(Err(_))`: answered already, not found or cancelled; a
    /// cancelled one is refused with `EWAYBILL_CANCELLED` and `cannot` saying what it cannot do.
    pub(super) async fn find_active_ewaybill(
        &self,
        target: &EwbTarget,
        cannot: impl FnOnce(&EwbRow) -> String,
    ) -> Result<Result<(EwbRow, Option<JobRow>, Option<DocumentRef>), Disposition>, StoreError> {
        let (row, job) = match self.find_ewaybill(target).await? {
            Ok(found) => found,
            Err(d) => return Ok(Err(d)),
        };
        let doc = job.as_ref().map(document_ref);
        if !row.is_active() {
            let errors = vec![ErrorItem::worker("EWAYBILL_CANCELLED", cannot(&row))];
            return Ok(Err(self.reject(errors, doc).await?));
        }
        Ok(Ok((row, job, doc)))
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
        let owner = self.owner_of(e, job);
        let p = owner.as_ref();
        let no = e.ewb_no.as_str();
        // Resending is safe: a cancel that already happened answers 312, which is success here.
        let answer =
            call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillCancel, Resend::Freely, |s| async move {
                p.cancel_ewaybill(&s, no, reason, remark).await
            })
            .await;
        let (cancel_date, already) = match answer {
            Ok(c) => (c.cancel_date, false),
            Err(err) if err.class(Operation::EwaybillCancel) == Final::AlreadyCancelled => {
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
}

impl Job<'_> {
    /// The IRP that may cancel e-way bill `e`: its portal's (cancel does not cross NIC's portals),
    /// or, when no configured IRP is that, the one this command was opened with (`irn.cancel`'s
    /// saga, opened for the IRN's issuer).
    fn owner_of(&self, e: &EwbRow, job: Option<&JobRow>) -> std::sync::Arc<dyn crate::irp::IrpProvider> {
        let Some(irps) = self.ctx.providers.set(self.gstin.as_str()) else { return self.provider.clone() };
        let via = match (job.and_then(|j| j.irp.as_deref()), &e.irn) {
            (Some(i), _) => Some(i),
            (None, None) => Some(irps.primary().irp()),
            (None, Some(_)) => None,
        };
        let portal = EwbNo::parse(&e.ewb_no).ok().and_then(|n| n.portal());
        irps.for_ewaybill(via, portal, EwbAccess::OwnerOnly).unwrap_or_else(|_| self.provider.clone())
    }
}

pub(super) fn upsert<'a>(e: &'a EwbRow, raw: Option<&'a Value>) -> EwbUpsert<'a> {
    EwbUpsert {
        ewb_no: &e.ewb_no,
        gstin: &e.gstin,
        irn: e.irn.as_deref(),
        ewb_date: e.ewb_date.as_deref(),
        valid_till: e.valid_till.as_deref(),
        response: raw,
    }
}

/// What routes a call about the e-way bill a command names: the IRP it was made through (its
/// IRN's issuer; the primary for one made without an IRN) and its number, as far as our store
/// knows them.
async fn route_of(ctx: &crate::runtime::Ctx, target: &EwbTarget) -> Result<EwbRoute, StoreError> {
    let (row, irn) = match target {
        EwbTarget::Irn(irn) => (ctx.db.ewaybill_for_irn(irn).await?, Some(irn.clone())),
        EwbTarget::EwbNo(n) => {
            let row = ctx.db.ewaybill(n).await?;
            let irn = row.as_ref().and_then(|e| e.irn.clone());
            (row, irn)
        }
    };
    let number = match (target, &row) {
        (EwbTarget::EwbNo(n), _) => Some(n.as_str()),
        (EwbTarget::Irn(_), Some(r)) => Some(r.ewb_no.as_str()),
        (EwbTarget::Irn(_), None) => None,
    };
    let via = match (&irn, &row) {
        (Some(irn), _) => match super::job::issuer_of_irn(ctx, irn).await? {
            Some(i) => Via::Issuer(i),
            None => Via::Unknown,
        },
        (None, Some(_)) => Via::Primary,
        (None, None) => Via::Unknown,
    };
    Ok(EwbRoute { via, ewb_no: number.and_then(|n| EwbNo::parse(n).ok()) })
}
