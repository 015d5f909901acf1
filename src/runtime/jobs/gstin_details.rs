//! `gstin.details`: another taxpayer's registration, from our cache when fresh, else the IRP.
use serde_json::{json, Value};

use super::job::Job;
use crate::domain::command::gstin_details::GstinDetails;
use crate::domain::command::JobKind;
use crate::domain::event::CommandMeta;
use crate::domain::outcome::Operation;
use crate::domain::Gstin;
use crate::irp::errors::get_ci;
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
fn gstin_view(gstin: &str, v: &Value) -> Value {
    json!({
        "gstin": get_ci(v, "Gstin").unwrap_or_else(|| gstin.to_string()),
        "trade_name": get_ci(v, "TradeName"),
        "legal_name": get_ci(v, "LegalName"),
        "address": {
            "building_number": get_ci(v, "AddrBno"),
            "building_name": get_ci(v, "AddrBnm"),
            "floor": get_ci(v, "AddrFlno"),
            "street": get_ci(v, "AddrSt"),
            "location": get_ci(v, "AddrLoc"),
            "pincode": get_ci(v, "AddrPncd"),
        },
        "state_code": get_ci(v, "StateCode"),
        "taxpayer_type": get_ci(v, "TxpType"),
        "status": get_ci(v, "Status"),
        "block_status": get_ci(v, "BlkStatus"),
        "registered_on": get_ci(v, "DtReg"),
        "deregistered_on": get_ci(v, "DtDReg"),
    })
}
