//! `b2c.qr`: the IRP's signed QR code for a B2C invoice.
use serde_json::json;

use super::Job;
use crate::domain::command::DocRef;
use crate::domain::outcome::Operation;
use crate::irp::errors::get_ci;
use crate::runtime::calls::{call, Resend};
use crate::runtime::Disposition;
use crate::store::StoreError;

impl Job<'_> {
    pub(super) async fn b2c_qr(&self, d: &DocRef) -> Result<Disposition, StoreError> {
        let p = self.provider;
        match call(self.ctx, self.gstin.as_str(), p, Operation::B2cQr, Resend::Freely, |s| async move {
            p.b2c_qr(&s, d).await
        })
        .await
        {
            Ok(v) => {
                let qr = get_ci(&v, "QRCode").or_else(|| get_ci(&v, "SignedQRCode")).unwrap_or_default();
                let mut data = json!({"qr_code": qr});
                if let Some(png) = crate::runtime::events::b2c_qr_png(self.ctx, &qr).await? {
                    data["qr_png_base64"] = png;
                }
                self.emit(self.event("b2c.qr", data, None, Some(self.doc_ref(d)))).await
            }
            Err(e) => self.failed(e, Operation::B2cQr, Some(self.doc_ref(d))).await,
        }
    }
}
