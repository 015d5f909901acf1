//! The e-way bill jobs: `ewaybill.get`.
use serde_json::json;

use super::Job;
use crate::domain::outcome::Operation;
use crate::irp::errors::get_ci;
use crate::runtime::calls::{call, Resend};
use crate::runtime::Disposition;
use crate::store::StoreError;

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
            Err(e) => {
                self.failed(e, Operation::EwaybillByIrn, job.as_ref().map(crate::runtime::events::document_ref)).await
            }
        }
    }
}
