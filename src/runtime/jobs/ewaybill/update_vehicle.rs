//! `ewaybill.update_vehicle`: Part B, a new vehicle for an active e-way bill.
use serde_json::json;

use super::super::job::Job;
use super::upsert;
use crate::domain::command::ewaybill::{EwbTarget, VehicleUpdate};
use crate::domain::command::ewaybill_update_vehicle::EwaybillUpdateVehicle;
use crate::domain::command::JobKind;
use crate::domain::event::CommandMeta;
use crate::domain::outcome::Operation;
use crate::domain::portal::EwbAccess;
use crate::runtime::calls::{call, Resend};
use crate::runtime::{Ctx, Disposition};
use crate::store::ewaybills::EwbRow;
use crate::store::StoreError;

pub async fn handle(
    ctx: &Ctx,
    meta: &CommandMeta,
    c: &EwaybillUpdateVehicle,
    attempt: u32,
) -> Result<Disposition, StoreError> {
    let route = super::route_of(ctx, &c.target).await?;
    let access = EwbAccess::CrossPortal;
    match Job::open_ewaybill(ctx, meta, JobKind::EwaybillUpdateVehicle, &c.gstin, &route, access, attempt).await? {
        Ok(job) => job.ewaybill_update_vehicle(&c.target, &c.update).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn ewaybill_update_vehicle(
        &self,
        target: &EwbTarget,
        update: &VehicleUpdate,
    ) -> Result<Disposition, StoreError> {
        let cannot = |row: &EwbRow| {
            format!(
                "e-way bill {} was cancelled{}; a cancelled e-way bill cannot take a vehicle. Make a new one with ewaybill.generate",
                row.ewb_no,
                row.cancel_date.as_deref().map(|d| format!(" at {d}")).unwrap_or_default()
            )
        };
        let (row, job, doc) = match self.find_active_ewaybill(target, cannot).await? {
            Ok(found) => found,
            Err(d) => return Ok(d),
        };
        let p = self.provider.as_ref();
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
