//! `b2c.qr` with the invoice: the B2C dynamic QR code, made by the worker itself.
//!
//! No IRP issues a QR code for a B2C invoice (NIC has no such API; a GSP's is a convenience): the
//! supplier makes it (Notification 14/2020-CT, Circular 146/02/2020: the supplier's GSTIN and UPI id,
//! the invoice number and date, the invoice value and its GST break-up). It is a UPI payment intent
//! as GSPs issue it (`upi://pay?pa=…&pn=…&tn=SELLER:<gstin> NO:<no> DT:<dt> …&am=…&cu=INR&mode=01`), so
//! a customer's UPI app pays the right amount to the right payee and the note carries the tax
//! details. The seller's UPI id and payee name come from its configuration (`upi_id`,
//! `payee_name`); the amounts from the invoice's `ValDtls`.
use rust_decimal::Decimal;
use serde_json::Value;

use super::DocRef;
use crate::domain::invoice::money;
use crate::domain::problem::code;
use crate::domain::text::is_hidden_control;
use crate::domain::{DocDate, DocNumber, DocType, Gstin, Problem};

/// What the QR needs from a B2C invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct B2cInvoice {
    pub document: DocRef,
    /// `SellerDtls.TrdNm`, else `LglNm`: the payee name when the configuration names none.
    pub seller_name: Option<String>,
    /// `ValDtls.TotInvVal`: the amount to pay.
    pub total: Decimal,
    /// `ValDtls.AssVal`.
    pub taxable: Decimal,
    pub cgst: Decimal,
    pub sgst: Decimal,
    pub igst: Decimal,
    /// `CesVal` plus `StCesVal`.
    pub cess: Decimal,
}

/// The largest amount an e-invoice field holds: Decimal(14,2). Two of them add up without
/// overflowing a `Decimal` (its range is about 7.9 × 10²⁸).
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_874_919_423, 2_328_306, 0, false, 2); // 99999999999999.99

/// Read the invoice of a `b2c.qr` command (`inv` is `invoice`; problems get the `invoice.` prefix).
/// Only what the QR needs is read: `DocDtls` (as for any document), `SellerDtls.Gstin` (which
/// must be the command's `gstin` when given), its names, and the `ValDtls` amounts.
pub fn parse_invoice(
    inv: &Value,
    gstin: Option<&Gstin>,
    relaxed: bool,
    problems: &mut Vec<Problem>,
) -> Option<B2cInvoice> {
    let at = |p: &str| format!("invoice.{p}");
    if !inv.is_object() {
        problems.push(Problem::new(
            "invoice",
            code::INVALID_TYPE,
            "'invoice' must be an object: the B2C invoice (DocDtls, ValDtls)",
        ));
        return None;
    }
    let text = |ptr: &str| inv.pointer(ptr).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let before = problems.len();
    let required = |path: &str, problems: &mut Vec<Problem>| {
        problems.push(Problem::new(at(path), code::REQUIRED, format!("{} is required", at(path))));
    };
    let doc_type = match text("/DocDtls/Typ") {
        None => {
            required("DocDtls.Typ", problems);
            None
        }
        Some(t) => {
            DocType::parse(t).map_err(|e| problems.push(Problem::new(at("DocDtls.Typ"), e.code(), e.to_string()))).ok()
        }
    };
    let doc_number = match text("/DocDtls/No") {
        None => {
            required("DocDtls.No", problems);
            None
        }
        Some(n) => {
            DocNumber::parse(n).map_err(|e| problems.push(Problem::new(at("DocDtls.No"), e.code(), e.to_string()))).ok()
        }
    };
    let doc_date = match text("/DocDtls/Dt") {
        None => {
            required("DocDtls.Dt", problems);
            None
        }
        Some(d) => {
            DocDate::parse(d).map_err(|e| problems.push(Problem::new(at("DocDtls.Dt"), e.code(), e.to_string()))).ok()
        }
    };
    if let Some(seller) = text("/SellerDtls/Gstin") {
        match (Gstin::parse(seller, relaxed), gstin) {
            (Err(e), _) => problems.push(Problem::new(at("SellerDtls.Gstin"), code::GSTIN_INVALID, e.to_string())),
            (Ok(s), Some(g)) if s != *g => problems.push(Problem::new(
                at("SellerDtls.Gstin"),
                code::SELLER_GSTIN_MISMATCH,
                format!("the invoice's seller {s} is not the command's gstin {g}"),
            )),
            _ => {}
        }
    }
    let amount = |key: &str, required: bool, problems: &mut Vec<Problem>| -> Decimal {
        let path = at(&format!("ValDtls.{key}"));
        let v = match inv.pointer(&format!("/ValDtls/{key}")) {
            None | Some(Value::Null) => {
                if required {
                    problems.push(Problem::new(
                        &path,
                        code::REQUIRED,
                        format!("{path} is required: the amount to pay"),
                    ));
                }
                return Decimal::ZERO;
            }
            Some(Value::Number(n)) => money::parse(&n.to_string()),
            Some(Value::String(s)) => money::parse(s.trim()),
            Some(_) => None,
        };
        match v {
            // Bounded before any sum: the invoice schema's widest amount, Decimal(14,2).
            Some(d) if d > MAX_AMOUNT => {
                problems.push(Problem::new(
                    &path,
                    code::VALUE_RANGE,
                    format!("{path} must be at most {MAX_AMOUNT} (the e-invoice schema's largest amount)"),
                ));
                Decimal::ZERO
            }
            Some(d) if d.is_sign_negative() || (required && d.is_zero()) => {
                let least = if required { "more than 0" } else { "0 or more" };
                problems.push(Problem::new(&path, code::VALUE_RANGE, format!("{path} must be {least}")));
                Decimal::ZERO
            }
            Some(d) if money::decimals(d) > 2 => {
                problems.push(Problem::new(
                    &path,
                    code::DECIMAL_PLACES,
                    format!("{path} has more than 2 decimal places"),
                ));
                Decimal::ZERO
            }
            Some(d) => d,
            None => {
                problems.push(Problem::new(
                    &path,
                    code::INVALID_TYPE,
                    format!("{path} must be a number or a numeric string"),
                ));
                Decimal::ZERO
            }
        }
    };
    let total = amount("TotInvVal", true, problems);
    let taxable = amount("AssVal", false, problems);
    let cgst = amount("CgstVal", false, problems);
    let sgst = amount("SgstVal", false, problems);
    let igst = amount("IgstVal", false, problems);
    let (ces, st_ces) = (amount("CesVal", false, problems), amount("StCesVal", false, problems));
    let cess = ces.checked_add(st_ces).unwrap_or(MAX_AMOUNT);
    if problems.len() > before {
        return None;
    }
    let seller_name = text("/SellerDtls/TrdNm").or_else(|| text("/SellerDtls/LglNm")).map(str::to_string);
    Some(B2cInvoice {
        document: DocRef { doc_type: doc_type?, doc_number: doc_number?, doc_date: doc_date? },
        seller_name,
        total,
        taxable,
        cgst,
        sgst,
        igst,
        cess,
    })
}

/// Is `s` a UPI id (VPA, `name@bank`)? Checked when the configuration is loaded.
pub fn is_upi_id(s: &str) -> bool {
    let Some((user, handle)) = s.split_once('@') else { return false };
    (2..=256).contains(&user.len())
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && (2..=64).contains(&handle.len())
        && handle.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && handle.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// Percent-encode a query value: unreserved characters and `:`, `@`, `/` (allowed in a URI query)
/// stay, everything else (space, `&`, `=`, `+`, `#`, `%`, non-ASCII) becomes `%XX` of its UTF-8.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rupees(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

/// The UPI payment intent for a B2C invoice: payee (`pa` UPI id, `pn` name), amount (`am`, INR),
/// the invoice number as the transaction reference (`tr`), and in the note (`tn`) the seller's
/// GSTIN, the invoice number and date, the taxable value and CGST, SGST, IGST and cess.
pub fn upi_intent(upi_id: &str, payee_name: &str, seller: &Gstin, inv: &B2cInvoice) -> String {
    let name: String = payee_name.chars().filter(|c| !is_hidden_control(*c)).collect();
    let d = &inv.document;
    let note = format!(
        "SELLER:{seller} NO:{} DT:{} Taxable:{} CGST:{} SGST:{} IGST:{} CESS:{}",
        d.doc_number,
        d.doc_date,
        rupees(inv.taxable),
        rupees(inv.cgst),
        rupees(inv.sgst),
        rupees(inv.igst),
        rupees(inv.cess)
    );
    format!(
        "upi://pay?pa={}&pn={}&tr={}&tn={}&am={}&cu=INR&mode=01",
        encode(upi_id),
        encode(name.trim()),
        encode(d.doc_number.as_str()),
        encode(&note),
        rupees(inv.total)
    )
}

/// `b2c.qr`: with `invoice`, the worker makes the B2C QR itself (any provider); without, it asks
/// the IRP.
#[derive(Debug, Clone)]
pub struct B2cQr {
    pub gstin: Gstin,
    pub document: DocRef,
    pub invoice: Option<Box<B2cInvoice>>,
}

impl super::CommandBody for B2cQr {
    fn parse(r: &mut super::Reader<'_>, _: &super::ParseOptions) -> Option<Self> {
        let body = r.body;
        let gstin = r.gstin("gstin", true);
        let doc = r.doc_ref("document");
        let invoice = match body.get("invoice") {
            None | Some(Value::Null) => None,
            Some(inv) => parse_invoice(inv, gstin.as_ref(), r.relaxed, &mut r.problems).map(Box::new),
        };
        let no_invoice = matches!(body.get("invoice"), None | Some(Value::Null));
        if body.get("document").is_none() && no_invoice {
            r.problems.push(Problem::new(
                "document",
                code::REQUIRED,
                "'document' {doc_type, doc_number, doc_date} or the B2C 'invoice' (DocDtls, ValDtls) is required",
            ));
        }
        if let (Some(d), Some(inv)) = (&doc, &invoice) {
            if *d != inv.document {
                r.problems.push(Problem::new(
                    "document",
                    code::DOCUMENT_MISMATCH,
                    format!("'document' names {d} but the invoice is {}; send one of them", inv.document),
                ));
            }
        }
        let document = invoice.as_ref().map(|i| i.document.clone()).or(doc);
        Some(B2cQr { gstin: gstin?, document: document?, invoice })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }

    fn subject(&self) -> Option<String> {
        Some(self.document.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seller() -> Gstin {
        Gstin::parse("29AAGCP4821K1Z3", false).unwrap()
    }

    fn invoice() -> Value {
        json!({"DocDtls": {"Typ": "INV", "No": "B2C/7", "Dt": "01/04/2025"},
            "SellerDtls": {"Gstin": "29AAGCP4821K1Z3", "LglNm": "Prakash Engineering Works Pvt Ltd", "TrdNm": "Prakash & Sons"},
            "ValDtls": {"AssVal": 1000, "CgstVal": "90.00", "SgstVal": 90, "IgstVal": 0, "CesVal": 0, "TotInvVal": 1180}})
    }

    #[test]
    fn the_intent_names_payee_amount_and_the_tax_break_up() {
        let mut problems = Vec::new();
        let inv = parse_invoice(&invoice(), Some(&seller()), false, &mut problems).expect("valid");
        assert!(problems.is_empty());
        let upi = upi_intent("prakash@examplebank", &inv.seller_name.clone().unwrap(), &seller(), &inv);
        assert_eq!(
            upi,
            "upi://pay?pa=prakash@examplebank&pn=Prakash%20%26%20Sons&tr=B2C/7&tn=SELLER:29AAGCP4821K1Z3%20NO:B2C/7%20\
             DT:01/04/2025%20Taxable:1000.00%20CGST:90.00%20SGST:90.00%20IGST:0.00%20CESS:0.00&am=1180.00&cu=INR&mode=01"
        );
    }

    /// Issue 23: amounts at the edge of `Decimal` once panicked the sum of the two cesses.
    #[test]
    fn amounts_beyond_the_schema_are_refused_before_any_sum() {
        let mut inv = invoice();
        inv["ValDtls"]["CesVal"] = json!(79228162514264337593543950335u128.to_string());
        inv["ValDtls"]["StCesVal"] = json!(1);
        let mut problems = Vec::new();
        assert!(parse_invoice(&inv, Some(&seller()), false, &mut problems).is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].path.as_str(), problems[0].code.as_str()), ("invoice.ValDtls.CesVal", "VALUE_RANGE"));
        let mut inv = invoice();
        inv["ValDtls"]["CesVal"] = json!("99999999999999.99");
        inv["ValDtls"]["StCesVal"] = json!("99999999999999.99");
        let mut problems = Vec::new();
        assert!(parse_invoice(&inv, Some(&seller()), false, &mut problems).is_some(), "{problems:?}");
        assert_eq!(MAX_AMOUNT.to_string(), "99999999999999.99");
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let mut bad = invoice();
        bad["DocDtls"]["Dt"] = json!("2025-04-01");
        bad["SellerDtls"]["Gstin"] = json!("27AAKFU7303M1ZP");
        bad["ValDtls"]["TotInvVal"] = json!(0);
        bad["ValDtls"]["CgstVal"] = json!("1.005");
        bad["ValDtls"]["IgstVal"] = json!(true);
        let mut problems = Vec::new();
        assert!(parse_invoice(&bad, Some(&seller()), false, &mut problems).is_none());
        let got: Vec<(&str, &str)> = problems.iter().map(|p| (p.path.as_str(), p.code.as_str())).collect();
        assert_eq!(
            got,
            [
                ("invoice.DocDtls.Dt", "DATE_FORMAT"),
                ("invoice.SellerDtls.Gstin", "SELLER_GSTIN_MISMATCH"),
                ("invoice.ValDtls.TotInvVal", "VALUE_RANGE"),
                ("invoice.ValDtls.CgstVal", "DECIMAL_PLACES"),
                ("invoice.ValDtls.IgstVal", "INVALID_TYPE"),
            ]
        );
    }

    #[test]
    fn upi_ids() {
        assert!(is_upi_id("prakash.eng@okaxis") && is_upi_id("98450-12345@upi"));
        for bad in ["prakash", "@bank", "a@b", "x y@bank", "p@1bank", "p@bank&am=1"] {
            assert!(!is_upi_id(bad), "{bad}");
        }
    }
}
