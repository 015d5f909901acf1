//! `gstin.details`: another taxpayer's registration, from our cache when fresh, else the IRP.
use serde_json::{json, Value};

use super::job::Job;
use crate::domain::command::gstin_details::GstinDetails;
use crate::domain::command::JobKind;
use crate::domain::event::CommandMeta;
use crate::domain::outcome::Operation;
use crate::domain::Gstin;
use crate::irp;
use crate::runtime::calls::{call, Resend};
use crate::runtime::{Ctx, Disposition};
use crate::store::StoreError;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &GstinDetails, attempt: u32) -> Result<Disposition, StoreError> {
    match Job::open(ctx, meta, JobKind::GstinDetails, &c.gstin, None, attempt).await? {
        Ok(job) => job.gstin_details(&c.target_gstin).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn gstin_details(&self, target: &Gstin) -> Result<Disposition, StoreError> {
        let db = &self.ctx.db;
        if let Some(mut cached) = db.cached_gstin(target.as_str(), self.ctx.settings.gstin_cache_secs).await? {
            cached["cached"] = json!(true);
            return self.emit(self.event("gstin.details", cached, None, None)).await;
        }
        let p = self.provider.as_ref();
        let t = target.as_str();
        match call(self.ctx, self.gstin.as_str(), p, Operation::GstinDetails, Resend::Freely, |s| async move {
            p.gstin_details(&s, t).await
        })
        .await
        {
            Ok(v) => {
                let details = gstin_view(t, &v);
                db.cache_gstin(t, &details).await?;
                let mut data = details;
                data["cached"] = json!(false);
                self.emit(self.event("gstin.details", data, None, None)).await
            }
            Err(e) => self.failed(e, Operation::GstinDetails, None).await,
        }
    }
}

/// GSTIN details as our event names them, whatever the protocol called the fields.
fn gstin_view(gstin: &str, v: &irp::GstinDetails) -> Value {
    json!({
        "gstin": v.gstin.clone().unwrap_or_else(|| gstin.to_string()),
        "trade_name": v.trade_name,
        "legal_name": v.legal_name,
        "address": {
            "building_number": v.building_number,
            "building_name": v.building_name,
            "floor": v.floor,
            "street": v.street,
            "location": v.location,
            "pincode": v.pincode,
        },
        "state_code": v.state_code,
        "taxpayer_type": v.taxpayer_type,
        "status": v.status,
        "block_status": v.block_status,
        "registered_on": v.registered_on,
        "deregistered_on": v.deregistered_on,
    })
}
