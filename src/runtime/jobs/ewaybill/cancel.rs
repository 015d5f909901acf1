//! `ewaybill.cancel`: cancel an e-way bill named by number or IRN.
use super::super::job::Job;
use crate::domain::command::ewaybill::{EwbCancelReason, EwbTarget};
use crate::domain::command::ewaybill_cancel::EwaybillCancel;
use crate::domain::command::JobKind;
use crate::domain::event::CommandMeta;
use crate::domain::outcome::Operation;
use crate::domain::portal::EwbAccess;
use crate::runtime::events::document_ref;
use crate::runtime::{Ctx, Disposition};
use crate::store::StoreError;

pub async fn handle(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &EwaybillCancel,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    let route = super::route_of(ctx, &c.target).await?;
    let access = EwbAccess::OwnerOnly;
    match Job::open_ewaybill(ctx, meta, JobKind::EwaybillCancel, &c.gstin, &route, access, attempt).await? {
        Ok(job) => job.ewaybill_cancel(&c.target, c.reason, &c.remark).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn ewaybill_cancel(
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
}
