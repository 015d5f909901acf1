//! `ewaybill.get`: the e-way bill made from an IRN, as the IRP has it.
use serde_json::json;

use super::super::job::{issuer_of_irn, Job};
use crate::domain::command::ewaybill_get::EwaybillGet;
use crate::domain::command::JobKind;
use crate::domain::event::CommandMeta;
use crate::domain::outcome::Operation;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::document_ref;
use crate::runtime::{Ctx, Disposition};
use crate::store::StoreError;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &EwaybillGet, attempt: u32) -> Result<Disposition, StoreError> {
    let issuer = issuer_of_irn(ctx, &c.irn).await?;
    match Job::open(ctx, meta, JobKind::EwaybillGet, &c.gstin, issuer, attempt).await? {
        Ok(job) => job.ewaybill(&c.irn).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn ewaybill(&self, irn: &str) -> Result<Disposition, StoreError> {
        let p = self.provider.as_ref();
        let job = self.ctx.db.job_by_irn(irn).await?;
        match call(self.ctx, self.gstin.as_str(), p, Operation::EwaybillByIrn, Resend::Freely, |s| async move {
            p.ewaybill_by_irn(&s, irn).await
        })
        .await
        {
            Ok(v) => {
                let data = json!({
                    "irn": irn,
                    "ewb_no": v.ewb_no,
                    "ewb_dt": v.ewb_dt,
                    "ewb_valid_till": v.ewb_valid_till,
                    "status": v.status,
                });
                let ev = self.event("ewaybill.details", data, job.as_ref(), None);
                // The portal's validity is the truth (another party may have extended it): the
                // store takes it with the answer, so extend's window and the expiry warning use it.
                match v.ewb.as_ref().filter(|_| !v.is_cancelled()) {
                    Some(d) => {
                        let row = self.row(irn, d);
                        self.ctx.db.record_ewaybill(&super::upsert(&row, None), &[ev]).await?;
                        Ok(Disposition::Ack)
                    }
                    None => self.emit(ev).await,
                }
            }
            Err(e) => self.failed(e, Operation::EwaybillByIrn, job.as_ref().map(document_ref)).await,
        }
    }
}
