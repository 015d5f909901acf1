//! `einvoice.verify`: a supplier's signed e-invoice to verify offline (the buyer's side), and
//! `einvoice.verify_batch`, many of them fanned out as one `einvoice.verify` each (see
//! `batch::BATCHES`).
//!
//! Only the shape is checked here: the token or image itself is read by the handler, and
//! whatever it holds is an answer (`einvoice.verified`, `valid: false` with its reason), never a
//! rejection.
use base64::Engine as _;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{type_name, CommandBody, ParseOptions, Reader};
use crate::domain::problem::code;
use crate::domain::{DocDate, Gstin, Problem};

/// What to verify, as the command gives it.
#[derive(Debug, Clone)]
pub enum VerifyInput {
    /// `signed_qr_code`: the JWT the QR code prints.
    SignedQrCode(String),
    /// `signed_invoice` as a string: the SignedInvoice JWT.
    SignedInvoice(String),
    /// `signed_invoice` as an object: an IRP answer holding `SignedInvoice` / `SignedQRCode`.
    Document(Value),
    /// `qr_image`: the image's bytes (PNG or JPEG), decoded from base64.
    QrImage(Vec<u8>),
}

/// The ERP's own record of the purchase (`expected`): each field given is compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    pub supplier_gstin: Option<String>,
    pub doc_number: Option<String>,
    pub doc_date: Option<String>,
    pub total_value: Option<Decimal>,
    pub buyer_gstin: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Verify {
    /// The buyer (one of ours) the purchase must be addressed to; unset: any configured GSTIN.
    pub gstin: Option<Gstin>,
    pub input: VerifyInput,
    pub expected: Option<Expected>,
    /// Rupees the total may differ by (≥ 0; default 0).
    pub tolerance: Decimal,
}

/// An amount in rupees, as a JSON number or a decimal text.
fn amount(r: &mut Reader<'_>, v: &Value, path: &str) -> Option<Decimal> {
    let parsed = match v {
        Value::Number(n) => {
            n.to_string().parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(&n.to_string()).ok())
        }
        Value::String(s) => s.trim().parse::<Decimal>().ok(),
        other => {
            r.problems.push(Problem::new(
                path,
                code::INVALID_TYPE,
                format!(
                    "'{path}' must be an amount in rupees (a number or a decimal text), found {}",
                    type_name(other)
                ),
            ));
            return None;
        }
    };
    if parsed.is_none() {
        r.problems.push(Problem::new(
            path,
            code::AMOUNT_INVALID,
            format!("'{path}' is not a decimal amount in rupees"),
        ));
    }
    parsed
}

/// The standard-base64 image, with or without a `data:image/png;base64,` prefix and line breaks.
pub fn image_bytes(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = if s.starts_with("data:") { s.split_once(',')?.1 } else { s };
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok().filter(|b| !b.is_empty())
}

fn parse_expected(r: &mut Reader<'_>, v: &Value) -> Option<Expected> {
    if !v.is_object() {
        r.problems.push(Problem::new(
            "expected",
            code::INVALID_TYPE,
            format!("'expected' must be an object (supplier_gstin, doc_number, doc_date, total_value, buyer_gstin), found {}", type_name(v)),
        ));
        return None;
    }
    let mut inner = Reader::nested(v, r.relaxed);
    let supplier = inner.gstin("supplier_gstin", false);
    let buyer = inner.gstin("buyer_gstin", false);
    let number = inner.opt_str("doc_number");
    let date = inner.opt_str("doc_date").and_then(|d| match DocDate::parse(&d) {
        Ok(_) => Some(d),
        Err(e) => {
            inner.problems.push(Problem::new("doc_date", code::DATE_FORMAT, e.to_string()));
            None
        }
    });
    let total = match v.get("total_value") {
        None | Some(Value::Null) => None,
        Some(t) => amount(&mut inner, t, "total_value"),
    };
    for mut p in inner.problems {
        p.path = format!("expected.{}", p.path);
        r.problems.push(p);
    }
    Some(Expected {
        supplier_gstin: supplier.map(|g| g.to_string()),
        doc_number: number,
        doc_date: date,
        total_value: total,
        buyer_gstin: buyer.map(|g| g.to_string()),
    })
}

/// The input, expected record and tolerance of one verification (a command's body, or one item
/// of a batch's `verifications`).
pub fn parse_item(r: &mut Reader<'_>) -> Option<(VerifyInput, Option<Expected>, Decimal)> {
    let body = r.body;
    let given: Vec<&str> = ["signed_qr_code", "signed_invoice", "qr_image"]
        .into_iter()
        .filter(|f| body.get(*f).is_some_and(|v| !v.is_null()))
        .collect();
    let input = match given.as_slice() {
        [] => {
            r.problems.push(Problem::new(
                "",
                code::VERIFY_INPUT,
                "give one of 'signed_qr_code' (the QR code's JWT), 'signed_invoice' (the SignedInvoice JWT, or the IRP's answer as an object) or 'qr_image' (a PNG or JPEG, base64)",
            ));
            None
        }
        [one] => match (*one, &body[*one]) {
            ("signed_qr_code", Value::String(s)) => Some(VerifyInput::SignedQrCode(s.trim().to_string())),
            ("signed_invoice", Value::String(s)) => Some(VerifyInput::SignedInvoice(s.trim().to_string())),
            ("signed_invoice", v @ Value::Object(_)) => Some(VerifyInput::Document(v.clone())),
            ("qr_image", Value::String(s)) => match image_bytes(s) {
                Some(b) => Some(VerifyInput::QrImage(b)),
                None => {
                    r.problems.push(Problem::new(
                        "qr_image",
                        code::BASE64_INVALID,
                        "'qr_image' is not a base64 image (PNG or JPEG)",
                    ));
                    None
                }
            },
            (f, v) => {
                r.problems.push(Problem::new(
                    f,
                    code::INVALID_TYPE,
                    format!("'{f}' must be a string, found {}", type_name(v)),
                ));
                None
            }
        },
        many => {
            r.problems.push(Problem::new(
                many[1],
                code::VERIFY_INPUT,
                format!("give only one of {}: one verification verifies one document", many.join(", ")),
            ));
            None
        }
    };
    let expected = match body.get("expected") {
        None | Some(Value::Null) => None,
        Some(v) => parse_expected(r, v),
    };
    let tolerance = match body.get("tolerance") {
        None | Some(Value::Null) => Some(Decimal::ZERO),
        Some(v) => amount(r, v, "tolerance").and_then(|t| {
            if t.is_sign_negative() {
                r.problems.push(Problem::new(
                    "tolerance",
                    code::NEGATIVE_VALUE,
                    "'tolerance' must be 0 or more rupees",
                ));
                None
            } else {
                Some(t)
            }
        }),
    };
    Some((input?, expected, tolerance?))
}

impl CommandBody for Verify {
    fn parse(r: &mut Reader<'_>, _: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", false);
        let (input, expected, tolerance) = parse_item(r)?;
        Some(Verify { gstin, input, expected, tolerance })
    }

    fn gstin(&self) -> Option<&Gstin> {
        self.gstin.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::domain::command::{parse_command, Command, ParseOptions};

    fn problems(rk: &str, body: serde_json::Value) -> Vec<(String, String)> {
        let e = parse_command(rk, body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
        e.problems.into_iter().map(|p| (p.path, p.code)).collect()
    }

    #[test]
    fn one_input_an_expected_record_and_a_tolerance() {
        let body = json!({"signed_qr_code": "a.b.c", "tolerance": "1.00",
            "expected": {"supplier_gstin": "29AAGCP4821K1Z3", "total_value": 1180.5, "doc_date": "01/04/2025"}});
        let p = parse_command("einvoice.verify", body.to_string().as_bytes(), &ParseOptions::default()).unwrap();
        let Command::EinvoiceVerify(v) = p.command else { panic!() };
        assert_eq!(v.tolerance.to_string(), "1.00");
        assert_eq!(v.expected.unwrap().total_value.unwrap().to_string(), "1180.5");
        assert!(v.gstin.is_none());
    }

    #[test]
    fn shape_problems_have_paths() {
        assert_eq!(problems("einvoice.verify", json!({})), vec![("".into(), "VERIFY_INPUT".into())]);
        let p = problems("einvoice.verify", json!({"signed_qr_code": "x", "qr_image": "AAAA"}));
        assert!(p.contains(&("qr_image".into(), "VERIFY_INPUT".into())), "{p:?}");
        let p = problems(
            "einvoice.verify",
            json!({"qr_image": "***", "tolerance": "-1",
            "expected": {"supplier_gstin": "nope", "doc_date": "2025-04-01", "total_value": "x"}}),
        );
        for want in [
            ("qr_image", "BASE64_INVALID"),
            ("tolerance", "NEGATIVE_VALUE"),
            ("expected.supplier_gstin", "GSTIN_INVALID"),
            ("expected.doc_date", "DATE_FORMAT"),
            ("expected.total_value", "AMOUNT_INVALID"),
        ] {
            assert!(p.iter().any(|(a, b)| a == want.0 && b == want.1), "{want:?} missing from {p:?}");
        }
    }

    #[test]
    fn a_batch_holds_one_buyers_verifications() {
        let p = problems("einvoice.verify_batch", json!({"gstin": "29AAGCP4821K1Z3", "verifications": []}));
        assert_eq!(p, vec![("verifications".into(), "BATCH_EMPTY".into())]);
        let p = problems("einvoice.verify_batch", json!({"verifications": [1]}));
        assert!(
            p.contains(&("gstin".into(), "REQUIRED".into()))
                && p.contains(&("verifications[0]".into(), "INVALID_TYPE".into())),
            "{p:?}"
        );
    }
}
