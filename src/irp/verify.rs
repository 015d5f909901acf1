//! The buyer's side: verifying a supplier's signed e-invoice offline (`einvoice.verify`, the
//! `verify` CLI), against each IRP's signing keys with the dates they were in use.
//!
//! The input is a signed QR code (the JWT printed as the QR), a signed invoice (its JWT, or a
//! JSON document holding `SignedInvoice` / `SignedQRCode`), or an image of the QR code. The answer
//! ([`Verification`]) is always an answer: a token that is not an e-invoice, an unknown key, a
//! bad signature, a key used outside its dates, a buyer that is not ours or a field that differs
//! from the ERP's record is `valid: false` with a stable [`Reason`], never an error.
//!
//! A JWT names its key by `kid`; the keys with that id are tried, and when none has it every
//! configured key is (an IRP that omits or changes the `kid`). The date a key signed on is the
//! IRN's date (`IrnDt` in a QR, `AckDt` in a signed invoice), which the signature covers.
use std::io::Cursor;

use chrono::NaiveDate;
use rsa::RsaPublicKey;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::{jwt, nic_crypto};
use crate::config::Settings;
pub use crate::domain::command::verify::Expected;

/// The largest image side (pixels) a QR image may have; a larger one is refused before its
/// pixels are decoded (a small PNG can claim a huge canvas).
pub const MAX_IMAGE_SIDE: u32 = 4096;
/// The most memory (bytes) decoding one image may take.
pub const MAX_IMAGE_ALLOC: u64 = 64 * 1024 * 1024;

/// Why a verification answers `valid: false`: stable codes, documented in docs/contract.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// Not a signed e-invoice or e-invoice QR code: not a JWT, no `data`, not an invoice's fields.
    NotAnEinvoice,
    /// The image is not a PNG or JPEG, is too large, or holds no readable QR code.
    UnreadableImage,
    /// No configured IRP key verifies the signature, and none has the JWT's `kid`.
    UnknownKey,
    /// The key the JWT names does not verify it (altered after signing), or it is not RS256.
    SignatureInvalid,
    /// Signed by a configured key, on a date outside the dates that key was in use.
    KeyNotValidAtDate,
    /// The buyer GSTIN is not one of ours (the command's `gstin`, else any configured GSTIN).
    BuyerNotOurs,
    /// A field differs from the ERP's record (`expected`), beyond the tolerance for the total.
    Mismatch,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotAnEinvoice => "NOT_AN_EINVOICE",
            Reason::UnreadableImage => "UNREADABLE_IMAGE",
            Reason::UnknownKey => "UNKNOWN_KEY",
            Reason::SignatureInvalid => "SIGNATURE_INVALID",
            Reason::KeyNotValidAtDate => "KEY_NOT_VALID_AT_DATE",
            Reason::BuyerNotOurs => "BUYER_NOT_OURS",
            Reason::Mismatch => "MISMATCH",
        }
    }
}

/// One configured signing key.
#[derive(Debug, Clone)]
pub struct RingKey {
    pub irp: String,
    pub key_id: String,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    key: RsaPublicKey,
}

impl RingKey {
    pub fn new(irp: &str, key_id: &str, from: Option<NaiveDate>, to: Option<NaiveDate>, key: RsaPublicKey) -> Self {
        RingKey { irp: irp.into(), key_id: key_id.into(), valid_from: from, valid_to: to, key }
    }

    fn in_use_on(&self, day: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| day >= f) && self.valid_to.is_none_or(|t| day <= t)
    }
}

/// Every IRP's signing keys (`irp_signing_keys`).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    pub keys: Vec<RingKey>,
}

impl KeyRing {
    /// The keys of `irp_signing_keys`; an unreadable key or a window that ends before it starts
    /// is a configuration error naming its key.
    pub fn from_settings(s: &Settings) -> Result<KeyRing, String> {
        let mut keys = Vec::new();
        for (irp, list) in &s.irp_signing_keys {
            for (i, k) in list.iter().enumerate() {
                let at = format!("irp_signing_keys.{irp}[{i}] (key_id '{}')", k.key_id);
                if k.key_id.trim().is_empty() {
                    return Err(format!("{at}: key_id is required (the `kid` of the IRP's JWT headers)"));
                }
                if let (Some(f), Some(t)) = (k.valid_from, k.valid_to) {
                    if t < f {
                        return Err(format!("{at}: valid_to {t} is before valid_from {f}"));
                    }
                }
                let pem = match (k.public_key_pem.as_deref().filter(|p| !p.trim().is_empty()), &k.public_key_file) {
                    (Some(p), _) => p.to_string(),
                    (None, Some(path)) => std::fs::read_to_string(path)
                        .map_err(|e| format!("{at}: cannot read public_key_file '{path}': {e}"))?,
                    (None, None) => return Err(format!("{at}: set public_key_pem or public_key_file")),
                };
                let key = nic_crypto::parse_public_key_pem(&pem)
                    .map_err(|e| format!("{at}: not a usable RSA public key: {e}"))?;
                keys.push(RingKey::new(irp, k.key_id.trim(), k.valid_from, k.valid_to, key));
            }
        }
        Ok(KeyRing { keys })
    }
}

/// What to verify.
#[derive(Debug, Clone)]
pub enum Input {
    /// A JWT: a signed QR code or a signed invoice (told apart by what it holds).
    Jwt(String),
    /// A JSON document holding `SignedInvoice` and/or `SignedQRCode` (an IRP answer).
    Document(Value),
    /// The bytes of a PNG or JPEG image of the QR code.
    Image(Vec<u8>),
}

/// Whose purchases these are.
#[derive(Debug, Clone)]
pub enum Ours<'a> {
    /// Any of these GSTINs (the configured ones).
    Any(Vec<&'a str>),
    /// Not checked (the CLI, which has no configuration of its own GSTINs).
    Anyone,
}

/// The signed fields of an e-invoice, as the QR code carries them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fields {
    pub supplier_gstin: Option<String>,
    pub buyer_gstin: Option<String>,
    pub doc_type: Option<String>,
    pub doc_number: Option<String>,
    pub doc_date: Option<String>,
    /// As signed, in rupees (a decimal text).
    pub total_value: Option<Decimal>,
    pub item_count: Option<u64>,
    pub main_hsn: Option<String>,
    pub irn: Option<String>,
    pub irn_date: Option<String>,
}

/// The key that signed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignedBy {
    pub irp: String,
    pub key_id: String,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
}

/// One field that differs from `expected`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub field: &'static str,
    pub expected: Value,
    pub actual: Value,
}

/// The answer to one verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub valid: bool,
    pub reason: Option<Reason>,
    pub message: Option<String>,
    /// The signature verifies against a configured IRP key (whatever else is wrong).
    pub signature_valid: bool,
    /// `signed_qr_code` or `signed_invoice`: what was verified (an image holds a QR code).
    pub signed: Option<&'static str>,
    /// The JWT header's `kid`, as given.
    pub kid: Option<String>,
    pub signed_by: Option<SignedBy>,
    pub fields: Option<Fields>,
    pub mismatches: Vec<Mismatch>,
}

impl Verification {
    /// The answer for an image whose reading failed outright (the reader panicked on it).
    pub fn unreadable_image(message: impl Into<String>) -> Self {
        Self::invalid(Reason::UnreadableImage, message)
    }

    fn invalid(reason: Reason, message: impl Into<String>) -> Self {
        Verification {
            valid: false,
            reason: Some(reason),
            message: Some(message.into()),
            signature_valid: false,
            signed: None,
            kid: None,
            signed_by: None,
            fields: None,
            mismatches: Vec::new(),
        }
    }

    fn fail(mut self, reason: Reason, message: impl Into<String>) -> Self {
        self.valid = false;
        self.reason = Some(reason);
        self.message = Some(message.into());
        self
    }
}

/// Verify `input` against `ring`; `expected` with `tolerance` (rupees, on the total) compares.
pub fn verify(
    ring: &KeyRing,
    input: &Input,
    ours: &Ours<'_>,
    expected: Option<&Expected>,
    tolerance: Decimal,
) -> Verification {
    let tokens: Vec<String> = match input {
        Input::Jwt(t) => vec![t.trim().to_string()],
        Input::Document(v) => {
            let found = signed_tokens(v);
            if found.is_empty() {
                return Verification::invalid(
                    Reason::NotAnEinvoice,
                    "the document holds neither SignedInvoice nor SignedQRCode (a JWT string)",
                );
            }
            found
        }
        Input::Image(bytes) => match qr_texts(bytes) {
            Ok(texts) => match texts.into_iter().find(|t| jwt::decode_unverified(t.trim()).is_ok()) {
                Some(t) => vec![t.trim().to_string()],
                None => {
                    return Verification::invalid(
                        Reason::NotAnEinvoice,
                        "the image's QR code does not hold a signed e-invoice QR code (a JWT)",
                    )
                }
            },
            Err(e) => return Verification::invalid(Reason::UnreadableImage, e),
        },
    };
    // Each token present must verify; the fuller one (the signed invoice) gives the answer.
    let mut answers: Vec<Verification> = tokens.iter().map(|t| verify_token(ring, t)).collect();
    if let Some(i) = answers.iter().position(|a| !a.valid) {
        return answers.swap_remove(i);
    }
    let fullest = answers.iter().position(|a| a.signed == Some("signed_invoice")).unwrap_or(0);
    let mut v = answers.swap_remove(fullest);
    let fields = v.fields.clone().unwrap_or_default();
    let buyer = fields.buyer_gstin.as_deref().unwrap_or("");
    if let Ours::Any(list) = ours {
        if !list.iter().any(|g| g.eq_ignore_ascii_case(buyer)) {
            let shown =
                if buyer.is_empty() { "none".to_string() } else { format!("'{}'", crate::domain::text::quote(buyer)) };
            v = v.fail(
                Reason::BuyerNotOurs,
                format!("the buyer GSTIN is {shown}, which is not one of ours ({})", list.join(", ")),
            );
        }
    }
    if let Some(e) = expected {
        v.mismatches = compare(&fields, e, tolerance);
        if v.valid && !v.mismatches.is_empty() {
            let names: Vec<&str> = v.mismatches.iter().map(|m| m.field).collect();
            v = v.fail(Reason::Mismatch, format!("differs from the expected record: {}", names.join(", ")));
        }
    }
    v
}

/// `SignedInvoice` / `SignedQRCode` of an IRP answer (or of its `data`/`Data`), in any spelling
/// the worker and the IRPs use.
fn signed_tokens(v: &Value) -> Vec<String> {
    let names = ["SignedInvoice", "signed_invoice", "SignedQRCode", "signed_qr_code", "SignedQrCode"];
    let mut out = Vec::new();
    for obj in [Some(v), v.get("data"), v.get("Data")].into_iter().flatten() {
        for n in names {
            if let Some(s) = obj.get(n).and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
                out.push(s.trim().to_string());
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    out
}

/// Verify one JWT: decode, find its key, check the signature and the key's dates, read the fields.
pub fn verify_token(ring: &KeyRing, token: &str) -> Verification {
    let payload = match jwt::decode_unverified(token) {
        Ok(p) => p,
        Err(e) => return Verification::invalid(Reason::NotAnEinvoice, format!("not a signed e-invoice: {e}")),
    };
    let (signed, fields) =
        match read_fields(&payload.data) {
            Some(x) => x,
            None => return Verification::invalid(
                Reason::NotAnEinvoice,
                "the JWT is not a signed e-invoice: its data has neither the QR code's fields (SellerGstin, DocNo, \
                 Irn…) nor an invoice's (SellerDtls, DocDtls, Irn)",
            ),
        };
    let kid = payload.header.get("kid").and_then(Value::as_str).map(str::to_string);
    let mut v = Verification {
        valid: false,
        reason: None,
        message: None,
        signature_valid: false,
        signed: Some(signed),
        kid: kid.clone(),
        signed_by: None,
        fields: Some(fields.clone()),
        mismatches: Vec::new(),
    };
    let named: Vec<&RingKey> = ring.keys.iter().filter(|k| Some(k.key_id.as_str()) == kid.as_deref()).collect();
    let candidates: Vec<&RingKey> = if named.is_empty() { ring.keys.iter().collect() } else { named.clone() };
    let mut last_err = None;
    let key = candidates.into_iter().find(|k| match jwt::verify(token, &k.key) {
        Ok(_) => true,
        Err(e) => {
            last_err = Some(e);
            false
        }
    });
    let Some(key) = key else {
        let kid_shown =
            kid.as_deref().map_or("no kid".to_string(), |k| format!("kid '{}'", crate::domain::text::quote(k)));
        return if named.is_empty() {
            v.fail(
                Reason::UnknownKey,
                format!("signed with a key that is not configured ({kid_shown}; none of the {} IRP keys in irp_signing_keys verifies it)", ring.keys.len()),
            )
        } else {
            let why = last_err.map_or_else(String::new, |e| format!(": {e}"));
            v.fail(
                Reason::SignatureInvalid,
                format!("the signature does not verify against {kid_shown} of IRP {}{why}", named[0].irp),
            )
        };
    };
    v.signature_valid = true;
    v.signed_by = Some(SignedBy {
        irp: key.irp.clone(),
        key_id: key.key_id.clone(),
        valid_from: key.valid_from,
        valid_to: key.valid_to,
    });
    let day = fields.irn_date.as_deref().and_then(irn_day);
    match day {
        Some(d) if !key.in_use_on(d) => {
            let window = format!(
                "{} to {}",
                key.valid_from.map_or("the start".into(), |d| d.to_string()),
                key.valid_to.map_or("now".into(), |d| d.to_string())
            );
            return v.fail(
                Reason::KeyNotValidAtDate,
                format!(
                    "signed on {d} with key '{}' of IRP {}, which was in use from {window} only",
                    key.key_id, key.irp
                ),
            );
        }
        None if key.valid_from.is_some() || key.valid_to.is_some() => {
            return v.fail(
                Reason::NotAnEinvoice,
                "the signed data has no IRN date (IrnDt / AckDt) to check the key's dates against",
            );
        }
        _ => {}
    }
    v.valid = true;
    v
}

/// The day of an IRN date (`2024-04-01 10:15:00`; some IRPs send `dd/mm/yyyy hh:mm:ss`).
fn irn_day(s: &str) -> Option<NaiveDate> {
    let d = s.trim().split([' ', 'T']).next()?;
    NaiveDate::parse_from_str(d, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(d, "%d/%m/%Y")).ok()
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn money(v: &Value, pointer: &str) -> Option<Decimal> {
    match v.pointer(pointer)? {
        Value::Number(n) => {
            n.to_string().parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(&n.to_string()).ok())
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The fields of a signed QR code's or signed invoice's `data`, and which it is; `None` when it
/// is neither (a QR needs SellerGstin, DocNo and Irn; an invoice SellerDtls.Gstin, DocDtls.No, Irn).
fn read_fields(d: &Value) -> Option<(&'static str, Fields)> {
    if d.get("SellerGstin").is_some() {
        let f = Fields {
            supplier_gstin: text(d, "/SellerGstin"),
            buyer_gstin: text(d, "/BuyerGstin"),
            doc_type: text(d, "/DocTyp"),
            doc_number: text(d, "/DocNo"),
            doc_date: text(d, "/DocDt"),
            total_value: money(d, "/TotInvVal"),
            item_count: d.get("ItemCnt").and_then(|n| n.as_u64().or_else(|| n.as_str()?.trim().parse().ok())),
            main_hsn: text(d, "/MainHsnCode"),
            irn: text(d, "/Irn"),
            irn_date: text(d, "/IrnDt"),
        };
        return (f.supplier_gstin.is_some() && f.doc_number.is_some() && f.irn.is_some())
            .then_some(("signed_qr_code", f));
    }
    if d.get("SellerDtls").is_some() && d.get("DocDtls").is_some() {
        let items = d.get("ItemList").and_then(Value::as_array);
        // NIC's MainHsnCode is the HSN of the line with the highest value (the first of equals).
        let main = items.and_then(|list| {
            let value = |i: &Value| money(i, "/TotItemVal").or_else(|| money(i, "/AssAmt")).unwrap_or_default();
            list.iter().reduce(|best, i| if value(i) > value(best) { i } else { best })
        });
        let f = Fields {
            supplier_gstin: text(d, "/SellerDtls/Gstin"),
            buyer_gstin: text(d, "/BuyerDtls/Gstin"),
            doc_type: text(d, "/DocDtls/Typ"),
            doc_number: text(d, "/DocDtls/No"),
            doc_date: text(d, "/DocDtls/Dt"),
            total_value: money(d, "/ValDtls/TotInvVal"),
            item_count: items.map(|i| i.len() as u64),
            main_hsn: main.and_then(|i| text(i, "/HsnCd")),
            irn: text(d, "/Irn"),
            irn_date: text(d, "/AckDt"),
        };
        return (f.supplier_gstin.is_some() && f.doc_number.is_some() && f.irn.is_some())
            .then_some(("signed_invoice", f));
    }
    None
}

/// Every field of `e` that differs from `f`; the total within `tolerance` rupees is equal.
/// GSTINs and numbers compare without case, dates as dates (`01/04/2025`).
pub fn compare(f: &Fields, e: &Expected, tolerance: Decimal) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let text =
        |out: &mut Vec<Mismatch>, field, want: &Option<String>, got: &Option<String>, same: fn(&str, &str) -> bool| {
            if let Some(w) = want {
                if got.as_deref().is_none_or(|g| !same(w.trim(), g.trim())) {
                    out.push(Mismatch {
                        field,
                        expected: Value::from(w.as_str()),
                        actual: got.as_deref().map_or(Value::Null, Value::from),
                    });
                }
            }
        };
    let nocase = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let date = |a: &str, b: &str| match (irn_day(a), irn_day(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    text(&mut out, "supplier_gstin", &e.supplier_gstin, &f.supplier_gstin, nocase);
    text(&mut out, "doc_number", &e.doc_number, &f.doc_number, nocase);
    text(&mut out, "doc_date", &e.doc_date, &f.doc_date, date);
    if let Some(w) = e.total_value {
        if f.total_value.is_none_or(|g| (g - w).abs() > tolerance.abs()) {
            out.push(Mismatch {
                field: "total_value",
                expected: Value::from(w.to_string()),
                actual: f.total_value.map_or(Value::Null, |g| Value::from(g.to_string())),
            });
        }
    }
    text(&mut out, "buyer_gstin", &e.buyer_gstin, &f.buyer_gstin, nocase);
    out
}

/// The texts of the QR codes in a PNG or JPEG image, decoded under [`MAX_IMAGE_SIDE`] and
/// [`MAX_IMAGE_ALLOC`].
pub fn qr_texts(bytes: &[u8]) -> Result<Vec<String>, String> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("the image cannot be read: {e}"))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        _ => return Err("the image is not a PNG or JPEG".into()),
    }
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| format!("the image cannot be decoded (at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels): {e}"))?;
    let grey = img.to_luma8();
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| grey.as_raw()[y * w + x]);
    let texts: Vec<String> = prepared.detect_grids().iter().filter_map(|g| g.decode().ok().map(|(_, t)| t)).collect();
    if texts.is_empty() {
        return Err("no readable QR code was found in the image".into());
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::core::{SimCore, SIGNING_KID, SIGNING_KID_2, SIGNING_PUBLIC_PEM, SIGNING_PUBLIC_PEM_2};

    fn day(s: &str) -> Option<NaiveDate> {
        Some(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    /// Key 1 in use 2020 to 2025-06-30, key 2 from 2025-07-01.
    fn ring() -> KeyRing {
        let k = |pem| nic_crypto::parse_public_key_pem(pem).unwrap();
        KeyRing {
            keys: vec![
                RingKey::new("NIC1", SIGNING_KID, day("2020-01-01"), day("2025-06-30"), k(SIGNING_PUBLIC_PEM)),
                RingKey::new("NIC1", SIGNING_KID_2, day("2025-07-01"), None, k(SIGNING_PUBLIC_PEM_2)),
            ],
        }
    }

    fn qr(irn_dt: &str) -> Value {
        json!({"SellerGstin": "33AAFCR6612L1ZA", "BuyerGstin": "29AAGCP4821K1Z3", "DocNo": "RKT/118", "DocTyp": "INV",
            "DocDt": "02/04/2025", "TotInvVal": 1180.5, "ItemCnt": 2, "MainHsnCode": "8481", "Irn": "a".repeat(64),
            "IrnDt": irn_dt})
    }

    fn check(input: Input) -> Verification {
        verify(&ring(), &input, &Ours::Any(vec!["29AAGCP4821K1Z3"]), None, Decimal::ZERO)
    }

    #[test]
    fn a_qr_code_verifies_with_the_key_in_use_on_its_date_across_a_rotation() {
        let sim = SimCore::new();
        let before = sim.sign(&qr("2025-04-02 16:11:00"));
        let v = check(Input::Jwt(before.clone()));
        assert!(v.valid, "{v:?}");
        assert_eq!(v.signed_by.as_ref().unwrap().key_id, SIGNING_KID);
        let f = v.fields.unwrap();
        assert_eq!(
            (f.total_value.unwrap().to_string().as_str(), f.item_count, f.main_hsn.as_deref()),
            ("1180.5", Some(2), Some("8481"))
        );
        assert_eq!(sim.rotate_signing_key(2), SIGNING_KID_2);
        let after = sim.sign(&qr("2025-08-01 09:00:00"));
        let v = check(Input::Jwt(after));
        assert!(v.valid, "{v:?}");
        assert_eq!(v.signed_by.unwrap().key_id, SIGNING_KID_2);
        // The old key after its last day, the new one before its first: not valid at that date.
        sim.rotate_signing_key(1);
        let late = check(Input::Jwt(sim.sign(&qr("2025-07-02 10:00:00"))));
        assert_eq!((late.valid, late.signature_valid, late.reason), (false, true, Some(Reason::KeyNotValidAtDate)));
        sim.rotate_signing_key(2);
        let early = check(Input::Jwt(sim.sign(&qr("2025-06-01 10:00:00"))));
        assert_eq!(early.reason, Some(Reason::KeyNotValidAtDate), "{early:?}");
    }

    #[test]
    fn tampered_wrong_key_and_not_an_einvoice_each_have_their_reason() {
        let sim = SimCore::new();
        let jwt = sim.sign(&qr("2025-04-02 16:11:00"));
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut evil = qr("2025-04-02 16:11:00");
        evil["TotInvVal"] = json!(11.8);
        let claims = json!({"data": evil.to_string(), "iss": "NIC"}).to_string();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = format!("{}.{}.{}", parts[0], b64.encode(claims), parts[2]);
        assert_eq!(check(Input::Jwt(forged)).reason, Some(Reason::SignatureInvalid));
        // Signed by a key no IRP uses (the simulator's encryption key), under its own kid.
        let other = jwt::sign(&qr("2025-04-02 16:11:00"), &sim.nic_key, "SOMEONE-ELSE");
        assert_eq!(check(Input::Jwt(other)).reason, Some(Reason::UnknownKey));
        // The same under a kid we know is a bad signature, not an unknown key.
        let other = jwt::sign(&qr("2025-04-02 16:11:00"), &sim.nic_key, SIGNING_KID);
        assert_eq!(check(Input::Jwt(other)).reason, Some(Reason::SignatureInvalid));
        for junk in ["hello", "https://example.com/pay?x=1", ""] {
            assert_eq!(check(Input::Jwt(junk.into())).reason, Some(Reason::NotAnEinvoice), "{junk}");
        }
        let not_invoice = sim.sign(&json!({"hello": "world"}));
        assert_eq!(check(Input::Jwt(not_invoice)).reason, Some(Reason::NotAnEinvoice));
        assert_eq!(check(Input::Document(json!({"Irn": "x"}))).reason, Some(Reason::NotAnEinvoice));
        let ours = verify(&ring(), &Input::Jwt(jwt), &Ours::Any(vec!["27AAKFU7303M1ZP"]), None, Decimal::ZERO);
        assert_eq!((ours.valid, ours.signature_valid, ours.reason), (false, true, Some(Reason::BuyerNotOurs)));
    }

    #[test]
    fn a_qr_image_is_read_back_and_bombs_and_non_images_are_unreadable() {
        let sim = SimCore::new();
        let jwt = sim.sign(&qr("2025-04-02 16:11:00"));
        let png = crate::irp::qr::qr_png(&jwt).unwrap();
        let v = check(Input::Image(png));
        assert!(v.valid, "{v:?}");
        // The same code photographed as a JPEG (lossy, re-encoded by the image crate).
        let grey = image::load_from_memory(&crate::irp::qr::qr_png(&jwt).unwrap()).unwrap().to_luma8();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode_image(&grey).unwrap();
        assert!(jpeg.starts_with(b"\xFF\xD8\xFF"));
        let v = check(Input::Image(jpeg));
        assert!(v.valid, "{v:?}");
        let url = crate::irp::qr::qr_png("https://example.com/not-an-invoice").unwrap();
        assert_eq!(check(Input::Image(url)).reason, Some(Reason::NotAnEinvoice));
        assert_eq!(check(Input::Image(b"GIF89a....".to_vec())).reason, Some(Reason::UnreadableImage));
        // A PNG header claiming 100000 × 100000 pixels is refused before any pixel is decoded.
        let mut bomb = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bomb, 100_000, 100_000);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::One);
            let _ = enc.write_header();
        }
        let v = check(Input::Image(bomb));
        assert_eq!(v.reason, Some(Reason::UnreadableImage), "{v:?}");
    }

    #[test]
    fn the_total_compares_within_the_tolerance() {
        let f = Fields {
            total_value: Some("1180.50".parse().unwrap()),
            supplier_gstin: Some("33AAFCR6612L1ZA".into()),
            ..Default::default()
        };
        let e = Expected {
            total_value: Some("1181.00".parse().unwrap()),
            supplier_gstin: Some("33aafcr6612l1za".into()),
            ..Default::default()
        };
        assert!(compare(&f, &e, "1".parse().unwrap()).is_empty());
        let m = compare(&f, &e, "0.10".parse().unwrap());
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].field, m[0].expected.clone(), m[0].actual.clone()),
            ("total_value", json!("1181.00"), json!("1180.50"))
        );
        let e = Expected { doc_date: Some("01/04/2025".into()), doc_number: Some("X/1".into()), ..Default::default() };
        let fields: Vec<_> = compare(&f, &e, Decimal::ZERO).into_iter().map(|m| m.field).collect();
        assert_eq!(fields, ["doc_number", "doc_date"]);
    }
}
