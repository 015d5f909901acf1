//! `irn.get` and `gstin.details`: answered from our store or cache when we can, else the IRP.
use serde_json::{json, Value};

use super::Job;
use crate::domain::command::Target;
use crate::domain::outcome::Operation;
use crate::domain::Gstin;
use crate::irp::errors::get_ci;
use crate::runtime::calls::{call, Resend};
use crate::runtime::events::{fetched_irn_data, irn_data, job_event};
use crate::runtime::Disposition;
use crate::store::StoreError;

impl Job<'_> {
    pub(super) async fn get(&self, target: &Target) -> Result<Disposition, StoreError> {
        let db = &self.ctx.db;
        let (job, doc) = match target {
            Target::Irn(irn) => (db.job_by_irn(irn).await?, None),
            Target::Document(d) => (db.job_by_key(&self.key(d)).await?, Some(self.doc_ref(d))),
        };
        // Our own record has the signed data and outlives the IRP's two-day window.
        if let Some(job) = job.filter(|j| j.irn.is_some() && (j.status == "generated" || j.status == "cancelled")) {
            let mut data = irn_data(self.ctx, &job, true).await?;
            data["source"] = json!("store");
            return self.emit(job_event(self.meta, &job, "irn.details", data)).await;
        }
        let found = match target {
            Target::Irn(irn) => self.lookup_irn(irn).await,
            Target::Document(d) => self.lookup_doc(d).await,
        };
        match found {
            Ok(d) => {
                let mut data = fetched_irn_data(self.ctx, &d).await?;
                data["source"] = json!("irp");
                self.emit(self.event("irn.details", data, None, doc)).await
            }
            Err(e) => self.failed(e, Operation::GetByIrn, doc).await,
        }
    }

    pub(super) async fn gstin_details(&self, target: &Gstin) -> Result<Disposition, StoreError> {
        let db = &self.ctx.db;
        if let Some(mut cached) = db.cached_gstin(target.as_str(), self.ctx.settings.gstin_cache_secs).await? {
            cached["cached"] = json!(true);
            return self.emit(self.event("gstin.details", cached, None, None)).await;
        }
        let p = self.provider;
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
