//! `ewaybill.update_transporter`: hand an active e-way bill to another transporter
//! (`UPDATETRANSPORTER`), named by a GSTIN or a TRANSIN.
use serde_json::json;

use super::super::job::Job;
use super::upsert;
use crate::domain::command::ewaybill::EwbTarget;
use crate::domain::command::ewaybill_update_transporter::{EwaybillUpdateTransporter, TransporterId};
use crate::domain::command::JobKind;
use crate::domain::event::CommandMeta;
use crate::domain::outcome::Operation;
use crate::domain::portal::EwbAccess;
use crate::runtime::calls::{call, Resend};
use crate::runtime::{Ctx, Disposition};
use crate::store::StoreError;

pub async fn handle(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &EwaybillUpdateTransporter,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    let route = super::route_of(ctx, &c.target).await?;
    let access = EwbAccess::OwnerOnly;
    match Job::open_ewaybill(ctx, meta, JobKind::EwaybillUpdateTransporter, &c.gstin, &route, access, attempt).await? {
        Ok(job) => job.ewaybill_update_transporter(&c.target, &c.transporter_id).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn ewaybill_update_transporter(
        &self,
        target: &EwbTarget,
        transporter: &TransporterId,
    ) -> Result<Disposition, StoreError> {
        let cannot = |row: &crate::store::ewaybills::EwbRow| {
            format!("e-way bill {} is cancelled; a cancelled e-way bill cannot change transporter", row.ewb_no)
        };
        let (row, job, doc) = match self.find_active_ewaybill(target, cannot).await? {
            Ok(found) => found,
            Err(d) => return Ok(d),
        };
        let p = self.provider.as_ref();
        let no = row.ewb_no.as_str();
        // Naming the same transporter again changes nothing, so a lost answer is resent.
        let answer = call(
            self.ctx,
            self.gstin.as_str(),
            p,
            Operation::EwaybillUpdateTransporter,
            Resend::Freely,
            |s| async move { p.update_transporter(&s, no, transporter).await },
        )
        .await;
        match answer {
            Ok(d) => {
                let data = json!({
                    "ewb_no": row.ewb_no, "irn": row.irn, "transporter_id": transporter.as_str(),
                    "transporter_kind": transporter.kind(), "updated_at": d.updated_at,
                });
                let ev = self.event("ewaybill.transporter_updated", data, job.as_ref(), doc);
                self.ctx.db.ewaybill_transporter_updated(&upsert(&row, None), transporter.as_str(), &[ev]).await?;
                Ok(Disposition::Ack)
            }
            Err(e) => self.failed(e, Operation::EwaybillUpdateTransporter, doc).await,
        }
    }
}
