//! `einvoice.verify`: a supplier's signed e-invoice, verified offline against the IRPs' signing
//! keys (`irp_signing_keys`), answered `einvoice.verified` (valid or not, with the reason).
//!
//! No IRP call and no job row: the answer follows from the input and the configuration alone,
//! so a re-sent command is simply verified again (same answer). An image is decoded on the
//! blocking pool (a few milliseconds of CPU per image).
use serde_json::{json, Value};

use super::job::reject_with;
use crate::domain::command::verify::{Verify, VerifyInput};
use crate::domain::command::JobKind;
use crate::domain::event::{CommandMeta, ErrorItem};
use crate::irp::verify::{self as v, Input, Ours, Verification};
use crate::runtime::events::plain_event;
use crate::runtime::{Ctx, Disposition};
use crate::store::StoreError;

pub async fn handle(ctx: &Ctx, meta: &CommandMeta, c: &Verify, attempt: u32) -> Result<Disposition, StoreError> {
    let kind = JobKind::EinvoiceVerify;
    let served = ctx.providers.gstins();
    let ours: Vec<&str> = match &c.gstin {
        Some(g) if ctx.providers.get(g.as_str()).is_none() => {
            return reject_with(ctx, meta, kind, vec![ctx.unserved(g.as_str(), "gstin")], None, Value::Null).await;
        }
        Some(g) => vec![g.as_str()],
        None => served.iter().map(String::as_str).collect(),
    };
    let (input, given) = match &c.input {
        VerifyInput::SignedQrCode(t) => (Input::Jwt(t.clone()), "signed_qr_code"),
        VerifyInput::SignedInvoice(t) => (Input::Jwt(t.clone()), "signed_invoice"),
        VerifyInput::Document(d) => (Input::Document(d.clone()), "signed_invoice"),
        VerifyInput::QrImage(b) => (Input::Image(b.clone()), "qr_image"),
    };
    let ring = ctx.verify_keys.clone();
    let (expected, tolerance) = (c.expected.clone(), c.tolerance);
    let owned: Vec<String> = ours.iter().map(|s| s.to_string()).collect();
    let run = move || {
        let ours = Ours::Any(owned.iter().map(String::as_str).collect());
        v::verify(&ring, &input, &ours, expected.as_ref(), tolerance)
    };
    let answer = if matches!(c.input, VerifyInput::QrImage(_)) {
        match tokio::task::spawn_blocking(run).await {
            Ok(a) => a,
            // The reader gave up on this image (it would on every attempt): the image's answer.
            Err(e) if e.is_panic() => Verification::unreadable_image("the QR code reader could not read the image"),
            Err(e) => {
                let errors = vec![ErrorItem::worker("INTERNAL", format!("the image could not be read: {e}"))];
                return Ok(Disposition::Reschedule { attempt, errors });
            }
        }
    } else {
        run()
    };
    let data = verified_data(&answer, given, c.expected.is_some().then_some(c.tolerance));
    tracing::info!(valid = answer.valid, reason = answer.reason.map(|r| r.as_str()), "e-invoice verified");
    ctx.db.enqueue_events(&[plain_event(meta, kind.success_event(), data)]).await?;
    Ok(Disposition::Ack)
}

/// The data of `einvoice.verified`.
pub fn verified_data(a: &Verification, given: &str, tolerance: Option<rust_decimal::Decimal>) -> Value {
    let mut data = serde_json::to_value(a).expect("a verification serialises");
    data["input"] = json!(given);
    data["irn"] = json!(a.fields.as_ref().and_then(|f| f.irn.clone()));
    // Like every event with an IRN, it names the IRP: here the one whose key signed it.
    data["irp"] = json!(a.signed_by.as_ref().map(|s| s.irp.clone()));
    if let Some(t) = tolerance {
        data["tolerance"] = json!(t.to_string());
    }
    data
}
