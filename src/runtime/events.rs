//! Result events built from job rows, so a fresh result and a replayed one look the same.
use serde_json::{json, Value};

use super::Ctx;
use crate::domain::event::{CommandMeta, DocumentRef, ErrorItem, Event};
use crate::irp::{jwt, qr, IrnData};
use crate::store::outbox::OutboxEvent;
use crate::store::{JobRow, StoreError};

pub fn document_ref(row: &JobRow) -> DocumentRef {
    DocumentRef {
        gstin: row.gstin.clone(),
        doc_type: row.doc_type.clone(),
        doc_number: row.doc_number.clone(),
        financial_year: row.financial_year.clone(),
        doc_date: row.doc_date.clone(),
    }
}

/// Decoded JWT `data` (the signature is checked by the provider when a key is configured).
fn payload(jwt_str: Option<&str>) -> Value {
    jwt_str.and_then(|s| jwt::decode_unverified(s).ok()).map(|p| p.data).unwrap_or(Value::Null)
}

/// How an event gets its QR image.
#[derive(Clone, Copy, PartialEq, Eq)]
enum QrSource {
    /// A signed QR seen for the first time (a fresh IRN): render and store, no lookup first.
    New,
    /// Possibly rendered before (replays, lookups): read the store, render only on a miss.
    Stored,
}

/// The `qr_png_base64` value for `signed_qr`, or `None` when `EINVOICE_QR_PNG` is off (the field
/// is then left out). Each signed QR is rendered once, off the async threads, and kept in the
/// store; an IRP answer without a signed QR, or one too large to encode, gives `null`.
async fn qr_field(ctx: &Ctx, signed_qr: Option<&str>, source: QrSource) -> Result<Option<Value>, StoreError> {
    if !ctx.settings.qr_png {
        return Ok(None);
    }
    let Some(text) = signed_qr else {
        return Ok(Some(Value::Null));
    };
    if source == QrSource::Stored {
        if let Some(png) = ctx.db.qr_png(text).await? {
            return Ok(Some(Value::String(png)));
        }
    }
    match qr::render_png_base64(text.to_string()).await {
        Ok(png) => {
            ctx.db.save_qr_png(text, &png).await?;
            Ok(Some(Value::String(png)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no QR image for this signed QR code");
            Ok(Some(Value::Null))
        }
    }
}

/// The `qr_png_base64` of a `b2c.qr` event (`None`: leave the field out).
pub async fn b2c_qr_png(ctx: &Ctx, qr_code: &str) -> Result<Option<Value>, StoreError> {
    qr_field(ctx, Some(qr_code), QrSource::Stored).await
}

/// The `irn.generated` / `irn.details` data for a job row.
pub async fn irn_data(ctx: &Ctx, row: &JobRow, replayed: bool) -> Result<Value, StoreError> {
    let png = qr_field(ctx, row.signed_qr_code.as_deref(), QrSource::Stored).await?;
    let mut v = render(
        &IrnData {
            irn: row.irn.clone().unwrap_or_default(),
            ack_no: row.ack_no.clone().unwrap_or_default(),
            ack_dt: row.ack_dt.clone().unwrap_or_default(),
            signed_invoice: row.signed_invoice.clone(),
            signed_qr_code: row.signed_qr_code.clone(),
            status: Some(if row.status == "cancelled" { "CNL" } else { "ACT" }.into()),
            ewb_no: row.ewb_no.clone(),
            ewb_dt: row.ewb_dt.clone(),
            ewb_valid_till: row.ewb_valid_till.clone(),
            irp: row.irp.clone().filter(|_| row.irn.is_some()),
            raw: Value::Null,
        },
        png,
    );
    v["duplicate"] = json!(row.duplicate);
    v["replayed"] = json!(replayed);
    Ok(v)
}

/// The same shape for details fetched from the IRP rather than read from a job row.
pub async fn fetched_irn_data(ctx: &Ctx, d: &IrnData) -> Result<Value, StoreError> {
    let png = qr_field(ctx, d.signed_qr_code.as_deref(), QrSource::Stored).await?;
    Ok(fresh_shape(d, png))
}

/// The data of a freshly generated IRN: its QR is rendered (once) and stored without a lookup.
pub async fn generated_irn_data(ctx: &Ctx, d: &IrnData) -> Result<Value, StoreError> {
    let png = qr_field(ctx, d.signed_qr_code.as_deref(), QrSource::New).await?;
    Ok(fresh_shape(d, png))
}

fn fresh_shape(d: &IrnData, png: Option<Value>) -> Value {
    let mut v = render(d, png);
    v["duplicate"] = json!(false);
    v["replayed"] = json!(false);
    v
}

fn render(d: &IrnData, qr_png: Option<Value>) -> Value {
    let mut v = json!({
        "irn": d.irn,
        "ack_no": d.ack_no,
        "ack_dt": d.ack_dt,
        "status": d.status.clone().unwrap_or_else(|| "ACT".into()),
        "signed_invoice": d.signed_invoice,
        "signed_qr_code": d.signed_qr_code,
        "signed_invoice_payload": payload(d.signed_invoice.as_deref()),
        "signed_qr_payload": payload(d.signed_qr_code.as_deref()),
        "qr_png_base64": null,
        "ewb_no": d.ewb_no,
        "ewb_dt": d.ewb_dt,
        "ewb_valid_till": d.ewb_valid_till,
        "irp": d.irp,
    });
    // Keep the field's place in the object (serde_json's preserve_order) when it is present.
    match (qr_png, v.as_object_mut()) {
        (Some(png), _) => v["qr_png_base64"] = png,
        (None, Some(o)) => {
            o.shift_remove("qr_png_base64");
        }
        (None, None) => {}
    }
    v
}

/// An event about a job, addressed to the events exchange and the command's `reply_to`.
pub fn job_event(meta: &CommandMeta, row: &JobRow, event_type: &str, data: Value) -> OutboxEvent {
    let mut ev = Event::new(event_type, meta, data).with_job(row.id).with_document(document_ref(row));
    if let Some(p) = &row.provider {
        ev = ev.with_provider(p);
    }
    OutboxEvent { event: ev, reply_to: meta.reply_to.clone() }
}

/// An event that belongs to no job (rejections before a job exists, lookups).
pub fn plain_event(meta: &CommandMeta, event_type: &str, data: Value) -> OutboxEvent {
    OutboxEvent { event: Event::new(event_type, meta, data), reply_to: meta.reply_to.clone() }
}

pub fn errors_json(errors: &[ErrorItem]) -> Value {
    serde_json::to_value(errors).expect("error items serialise")
}

/// The error for a GSTIN with no `[gstins."…"]` section: says what to add.
pub fn not_configured(gstin: &str) -> ErrorItem {
    ErrorItem::worker(
        "GSTIN_NOT_CONFIGURED",
        format!("no IRP credentials are configured for GSTIN {gstin}; add a [gstins.\"{gstin}\"] section (see README)"),
    )
}

/// The error for work on a paused GSTIN (a configuration error, or its daily error budget).
pub fn paused(gstin: &str, until: chrono::DateTime<chrono::Utc>) -> ErrorItem {
    ErrorItem::worker(
        "GSTIN_PAUSED",
        format!(
            "IRP calls for GSTIN {gstin} are paused until {until} (a configuration error, or its daily IRP error \
             budget; the gstin.paused event says which); the work is retried then"
        ),
    )
}
