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
    jwt_str.and_then(|s| jwt::data_unverified(s).ok()).unwrap_or(Value::Null)
}

/// How an event gets its QR image.
#[derive(Clone, Copy)]
enum QrSource<'a> {
    /// A signed QR seen for the first time (a fresh IRN): render it; the caller stores the image
    /// with the IRN, in the same statement.
    New,
    /// Possibly rendered before (lookups): read the store, render and store only on a miss.
    Stored,
    /// The store was read already (the claim of a replay): this is what it held.
    Read(Option<&'a str>),
}

/// The QR image of `text` (base64 PNG), rendered once, off the async threads. `None` when there
/// is no text or it is too large to encode.
async fn qr_image(ctx: &Ctx, text: Option<&str>, source: QrSource<'_>) -> Result<Option<String>, StoreError> {
    let Some(text) = text else {
        return Ok(None);
    };
    match source {
        QrSource::Read(Some(png)) => return Ok(Some(png.to_string())),
        QrSource::Stored => {
            if let Some(png) = ctx.db.qr_png(text).await? {
                return Ok(Some(png));
            }
        }
        QrSource::Read(None) | QrSource::New => {}
    }
    let png = match qr::render_png_base64(text.to_string()).await {
        Ok(png) => png,
        Err(e) => {
            tracing::warn!(error = %e, "no QR image for this signed QR code");
            return Ok(None);
        }
    };
    if !matches!(source, QrSource::New) {
        ctx.db.save_qr_png(text, &png).await?;
    }
    Ok(Some(png))
}

/// The images of an IRN record: the `qr_png_base64` field (`None` when `EINVOICE_QR_PNG` is off:
/// the field is then left out; `null` when there is no image), the `print_block` (when
/// `EINVOICE_PRINT_BLOCK` is on), and the PNG itself. Nothing is rendered when neither wants an image.
struct Images {
    field: Option<Value>,
    print_block: Option<Value>,
    png: Option<String>,
}

async fn images(ctx: &Ctx, d: &IrnData, source: QrSource<'_>) -> Result<Images, StoreError> {
    let (want_field, want_block) = (ctx.settings.qr_png, ctx.settings.print_block);
    let png = if want_field || want_block { qr_image(ctx, d.signed_qr_code.as_deref(), source).await? } else { None };
    Ok(Images {
        field: want_field.then(|| png.clone().map_or(Value::Null, Value::String)),
        print_block: want_block.then(|| print_block(&d.irn, &d.ack_no, &d.ack_dt, png.as_deref())),
        png,
    })
}

/// Escape text for an SVG text node or attribute.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The e-invoice print block: what GST rules require on the printed invoice (IRN, acknowledgement
/// number and date, the signed QR code) in one object, plus `svg`: the QR beside the three as a
/// 100 × 32 mm SVG (the PNG embedded, text in a monospace font), ready to place on a print
/// template. `qr_png_base64` and `svg` are null when the IRP gave no signed QR code.
pub fn print_block(irn: &str, ack_no: &str, ack_dt: &str, png: Option<&str>) -> Value {
    let svg = png.map(|png| {
        let (a, b) = irn.split_at(irn.len().min(32));
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" "#,
                r#"width="100mm" height="32mm" viewBox="0 0 100 32">"#,
                r#"<image x="0" y="0" width="32" height="32" style="image-rendering:pixelated" "#,
                r#"xlink:href="data:image/png;base64,{png}" href="data:image/png;base64,{png}"/>"#,
                r#"<g font-family="monospace" font-size="2.6" fill="black">"#,
                r#"<text x="34" y="7">IRN: {a}</text><text x="34" y="10.5">{b}</text>"#,
                r#"<text x="34" y="16">Ack No: {ack_no}</text><text x="34" y="20.5">Ack Date: {ack_dt}</text>"#,
                "</g></svg>"
            ),
            png = png,
            a = xml(a),
            b = xml(b),
            ack_no = xml(ack_no),
            ack_dt = xml(ack_dt),
        )
    });
    json!({"irn": irn, "ack_no": ack_no, "ack_dt": ack_dt, "qr_png_base64": png, "svg": svg})
}

/// The `qr_png_base64` of a `b2c.qr` event (`None`: leave the field out).
pub async fn b2c_qr_png(ctx: &Ctx, qr_code: &str) -> Result<Option<Value>, StoreError> {
    if !ctx.settings.qr_png {
        return Ok(None);
    }
    Ok(Some(qr_image(ctx, Some(qr_code), QrSource::Stored).await?.map_or(Value::Null, Value::String)))
}

/// The `irn.generated` / `irn.details` data for a job row.
pub async fn irn_data(ctx: &Ctx, row: &JobRow, replayed: bool) -> Result<Value, StoreError> {
    row_data(ctx, row, replayed, QrSource::Stored).await
}

/// [`irn_data`] of a replay, whose claim has already read the stored QR image (`qr_png`).
pub async fn replayed_irn_data(ctx: &Ctx, row: &JobRow, qr_png: Option<String>) -> Result<Value, StoreError> {
    row_data(ctx, row, true, QrSource::Read(qr_png.as_deref())).await
}

async fn row_data(ctx: &Ctx, row: &JobRow, replayed: bool, source: QrSource<'_>) -> Result<Value, StoreError> {
    let d = IrnData {
        irn: row.irn.clone().unwrap_or_default(),
        ack_no: row.ack_no.clone().unwrap_or_default(),
        ack_dt: row.ack_dt.clone().unwrap_or_default(),
        signed_invoice: row.signed_invoice.clone(),
        signed_qr_code: row.signed_qr_code.clone(),
        status: Some(if row.status.is_cancelled() { "CNL" } else { "ACT" }.into()),
        ewb_no: row.ewb_no.clone(),
        ewb_dt: row.ewb_dt.clone(),
        ewb_valid_till: row.ewb_valid_till.clone(),
        irp: row.irp.clone().filter(|_| row.irn.is_some()),
        raw: Value::Null,
    };
    let images = images(ctx, &d, source).await?;
    let mut v = render(&d, images);
    v["duplicate"] = json!(row.duplicate);
    v["replayed"] = json!(replayed);
    Ok(v)
}

/// The same shape for details fetched from the IRP rather than read from a job row.
pub async fn fetched_irn_data(ctx: &Ctx, d: &IrnData) -> Result<Value, StoreError> {
    let images = images(ctx, d, QrSource::Stored).await?;
    Ok(fresh_shape(d, images))
}

/// The data of a freshly generated IRN, and its QR image, rendered (once) for the caller to
/// store with the IRN.
pub async fn generated_irn_data(ctx: &Ctx, d: &IrnData) -> Result<(Value, Option<String>), StoreError> {
    let images = images(ctx, d, QrSource::New).await?;
    let png = images.png.clone();
    Ok((fresh_shape(d, images), png))
}

fn fresh_shape(d: &IrnData, images: Images) -> Value {
    let mut v = render(d, images);
    v["duplicate"] = json!(false);
    v["replayed"] = json!(false);
    v
}

fn render(d: &IrnData, images: Images) -> Value {
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
    match (images.field, v.as_object_mut()) {
        (Some(png), _) => v["qr_png_base64"] = png,
        (None, Some(o)) => {
            o.shift_remove("qr_png_base64");
        }
        (None, None) => {}
    }
    if let Some(block) = images.print_block {
        v["print_block"] = block;
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
        format!("no IRP credentials are configured for GSTIN {gstin}; add a [gstins.\"{gstin}\"] section (see docs/guide.md)"),
    )
}

/// The error for work for a GSTIN an operator disabled (`einvoice-worker gstin disable`).
pub fn disabled(gstin: &str, path: &str) -> ErrorItem {
    ErrorItem {
        path: path.into(),
        ..ErrorItem::worker(
            "GSTIN_DISABLED",
            format!(
                "GSTIN {gstin} is disabled: an operator turned its IRP work off (`einvoice-worker gstin disable`); \
                 `einvoice-worker gstin enable {gstin}` turns it on again"
            ),
        )
    }
}

/// The error for work for a GSTIN stored in the database that this worker cannot use.
pub fn unusable(gstin: &str, why: &str, path: &str) -> ErrorItem {
    ErrorItem {
        path: path.into(),
        ..ErrorItem::worker(
            "GSTIN_NOT_CONFIGURED",
            format!("GSTIN {gstin} is in the database but cannot be used by this worker: {why}"),
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_print_block_holds_the_three_and_an_svg_of_them() {
        let irn = "a".repeat(32) + &"b".repeat(32);
        let b = print_block(&irn, "112010000000001", "2025-04-01 11:32:00", Some("iVBORw0K"));
        assert_eq!((b["irn"].as_str(), b["ack_no"].as_str()), (Some(irn.as_str()), Some("112010000000001")));
        let svg = b["svg"].as_str().unwrap();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        for part in
            ["data:image/png;base64,iVBORw0K", &"a".repeat(32), &"b".repeat(32), "Ack Date: 2025-04-01 11:32:00"]
        {
            assert!(svg.contains(part), "{part} in {svg}");
        }
        assert!(print_block(&irn, "1", "<x>&", Some("p"))["svg"].as_str().unwrap().contains("&lt;x&gt;&amp;"));
        let none = print_block(&irn, "1", "", None);
        assert!(none["svg"].is_null() && none["qr_png_base64"].is_null());
    }
}
