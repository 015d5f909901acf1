//! `b2c.qr`: the QR code of a B2C invoice. With the invoice in the command the worker makes it
//! itself (a UPI payment intent from the seller's configured `upi_id`, see
//! `domain::command::b2c`), for any provider and without an IRP call; without it, the IRP's
//! (a Whitebooks feature: NIC has no B2C QR API, its provider offers no [`irp::B2cQr`], and the
//! command is rejected with `NOT_SUPPORTED`).
use serde_json::json;

use super::job::Job;
use crate::domain::command::b2c::{upi_intent, B2cInvoice, B2cQr};
use crate::domain::command::{DocRef, JobKind};
use crate::domain::event::{CommandMeta, ErrorItem};
use crate::domain::outcome::Operation;
use crate::irp::{self, IrpError};
use crate::runtime::calls::{call, Resend};
use crate::runtime::{Ctx, Disposition};
use crate::store::StoreError;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &B2cQr, attempt: u32) -> Result<Disposition, StoreError> {
    match Job::open(ctx, meta, JobKind::B2cQr, &c.gstin, None, attempt).await? {
        Ok(job) => job.b2c_qr(&c.document, c.invoice.as_deref()).await,
        Err(answered) => Ok(answered),
    }
}

impl Job<'_> {
    async fn b2c_qr(&self, d: &DocRef, invoice: Option<&B2cInvoice>) -> Result<Disposition, StoreError> {
        if let Some(inv) = invoice {
            return self.b2c_qr_local(inv).await;
        }
        let p = self.provider.as_ref();
        let Some(b2c) = p.b2c() else {
            return self.failed(not_supported(), Operation::B2cQr, Some(self.doc_ref(d))).await;
        };
        match call(self.ctx, self.gstin.as_str(), p, Operation::B2cQr, Resend::Freely, |s| async move {
            b2c.b2c_qr(&s, d).await
        })
        .await
        {
            Ok(v) => {
                let qr = v.qr_code.unwrap_or_default();
                let mut data = json!({"qr_code": qr, "source": "irp"});
                if let Some(png) = crate::runtime::events::b2c_qr_png(self.ctx, &qr).await? {
                    data["qr_png_base64"] = png;
                }
                self.emit(self.event("b2c.qr", data, None, Some(self.doc_ref(d)))).await
            }
            Err(e) => self.failed(e, Operation::B2cQr, Some(self.doc_ref(d))).await,
        }
    }

    async fn b2c_qr_local(&self, inv: &B2cInvoice) -> Result<Disposition, StoreError> {
        let doc = Some(self.doc_ref(&inv.document));
        let cfg = self.ctx.providers.config(self.gstin.as_str());
        let cfg = cfg.as_deref();
        let Some(upi_id) = cfg.and_then(|c| c.upi_id.as_deref()) else {
            let g = self.gstin.as_str();
            let e = ErrorItem::worker(
                "UPI_ID_NOT_CONFIGURED",
                format!(
                    "the B2C QR is a UPI payment request to the seller, and GSTIN {g} has no upi_id: set \
                     [gstins.\"{g}\"] upi_id = \"name@bank\" (EINVOICE_GSTINS__{g}__UPI_ID)"
                ),
            );
            return self.reject(vec![e], doc).await;
        };
        let payee = cfg.and_then(|c| c.payee_name.clone()).or_else(|| inv.seller_name.clone());
        let qr = upi_intent(upi_id, payee.as_deref().unwrap_or(self.gstin.as_str()), self.gstin, inv);
        let mut data = json!({"qr_code": qr, "source": "local"});
        if let Some(png) = crate::runtime::events::b2c_qr_png(self.ctx, &qr).await? {
            data["qr_png_base64"] = png;
        }
        self.emit(self.event("b2c.qr", data, None, doc)).await
    }
}

/// What a provider without [`irp::B2cQr`] answers (NIC's direct API has no B2C QR service): the
/// IRP error this command is rejected with, as from the IRP.
fn not_supported() -> IrpError {
    IrpError::Api {
        errors: vec![irp::errors::IrpMessage {
            code: "NOT_SUPPORTED".into(),
            message: "B2C QR codes are not part of the NIC IRP direct API; they are a GSP (Whitebooks) \
                      feature, so configure this GSTIN with the whitebooks provider to use them"
                .into(),
        }],
        info: Vec::new(),
    }
}
