//! Validation of an IRP e-invoice (schema v1.1) before it is sent.
//!
//! [`validate_invoice`] takes the raw JSON an ERP gave us and either returns a
//! [`ValidInvoice`] (identity, headline values, and the normalized payload to
//! send) or *every* [`Problem`] it found. It implements the pre-submit rules
//! of the IRP: shape and types, GSTINs, states and PINs, document number and
//! date, items, tax split and totals.
//!
//! Design notes:
//! * The input is never trusted to be well-typed: each field is read with a
//!   helper that records `REQUIRED`/`INVALID_TYPE` and returns `None`, and
//!   checks that need a broken value are skipped. One mistake therefore gives
//!   one problem, not a cascade.
//! * Numbers may arrive as numeric strings (`"24050.00"`); ERPs do that. They
//!   are accepted and written back as JSON numbers in [`ValidInvoice::irp_json`].
//! * Codes the schema defines in upper case (state codes, units, SupTyp, Typ,
//!   Y/N flags, GSTINs, …) are trimmed and upper-cased in the payload. Free
//!   text and unknown fields are passed through untouched.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::domain::codes::{self, SupplyType};
use crate::domain::document::{DocDate, DocNumber, DocType, DocumentKey};
use crate::domain::gstin::Gstin;
use crate::domain::problem::{code, Problem, Problems};

/// Allowed gap between `AssAmt` and `TotAmt − Discount` (rounding only).
pub const ASSAMT_TOLERANCE: f64 = 0.1;
/// `RndOffAmt` must lie within ± this.
pub const RNDOFF_LIMIT: f64 = 99.99;
/// Maximum length of a cancel remark (`CnlRem`).
pub const CANCEL_REMARK_MAX: usize = 100;
/// Guards comparisons against binary floating-point noise (0.1 + 0.2 ≠ 0.3).
const EPS: f64 = 1e-6;

/// Knobs for [`validate_invoice`]. `Default` gives production settings with
/// today's date in India.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationOptions {
    /// Skip the GSTIN check digit (and accept sandbox-shaped GSTINs). Only for
    /// the NIC sandbox, whose test GSTINs fail the check.
    pub relaxed_gstin_check_digit: bool,
    /// The GST rate master (percent). Default [`codes::DEFAULT_GST_RATES`].
    pub allowed_gst_rates: Vec<f64>,
    /// "Today" in India (Asia/Kolkata): documents may not be dated later.
    pub today: NaiveDate,
    /// First date e-invoices can carry (NIC rejects earlier). Default 2020-10-01.
    pub einvoice_start: NaiveDate,
    /// The 30-day reporting rule (IRP error 2305): when `Some(n)`, documents
    /// older than `today − n` days are rejected. It applies only to larger
    /// taxpayers (AATO ≥ ₹10 cr from April 2025), so the default is `None`.
    pub reporting_window_days: Option<u32>,
    /// Maximum number of items (NIC: 1000, more on request).
    pub max_items: usize,
    /// Allowed gap for invoice-level totals (`ValDtls.*` vs item sums, `TotInvVal`).
    pub total_tolerance: f64,
    /// Allowed gap per line for tax amounts and `TotItemVal`.
    pub tax_tolerance: f64,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            relaxed_gstin_check_digit: false,
            allowed_gst_rates: codes::DEFAULT_GST_RATES.to_vec(),
            today: india_today(),
            einvoice_start: NaiveDate::from_ymd_opt(2020, 10, 1).expect("valid constant date"),
            reporting_window_days: None,
            max_items: 1000,
            total_tolerance: 1.0,
            tax_tolerance: 1.0,
        }
    }
}

/// The current calendar date in India. The IRP judges "future" and "30 days"
/// by IST, and a UTC host is 5½ hours behind around midnight.
pub fn india_today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).date_naive()
}

/// An invoice that passed every check. Only [`validate_invoice`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidInvoice {
    key: DocumentKey,
    doc_date: DocDate,
    seller_gstin: Gstin,
    buyer_gstin: String,
    supply_type: SupplyType,
    total_invoice_value: f64,
    item_count: usize,
    main_hsn: String,
    irp_json: Value,
}

impl ValidInvoice {
    /// Seller GSTIN + type + number + financial year: what the IRP keeps unique.
    pub fn key(&self) -> &DocumentKey {
        &self.key
    }
    /// `DocDtls.Dt`.
    pub fn doc_date(&self) -> DocDate {
        self.doc_date
    }
    /// `SellerDtls.Gstin`.
    pub fn seller_gstin(&self) -> &Gstin {
        &self.seller_gstin
    }
    /// `BuyerDtls.Gstin`: a GSTIN, or `URP` for an unregistered foreign buyer.
    pub fn buyer_gstin(&self) -> &str {
        &self.buyer_gstin
    }
    /// `TranDtls.SupTyp`.
    pub fn supply_type(&self) -> SupplyType {
        self.supply_type
    }
    /// `ValDtls.TotInvVal`.
    pub fn total_invoice_value(&self) -> f64 {
        self.total_invoice_value
    }
    /// Number of entries in `ItemList`.
    pub fn item_count(&self) -> usize {
        self.item_count
    }
    /// HSN of the line with the highest assessable amount (first on a tie);
    /// the IRP puts this in the signed QR code as `MainHsnCode`.
    pub fn main_hsn(&self) -> &str {
        &self.main_hsn
    }
    /// The normalized payload to send to the IRP.
    pub fn irp_json(&self) -> &Value {
        &self.irp_json
    }
    /// Takes the payload out.
    pub fn into_irp_json(self) -> Value {
        self.irp_json
    }
}

/// Checks a cancel request: reason `1`–`4` (Duplicate, Data entry mistake,
/// Order cancelled, Others) and a remark of at most 100 characters.
/// Problems are reported at paths `reason` and `remark`.
pub fn validate_cancel(reason: &str, remark: &str) -> Vec<Problem> {
    let mut p = Problems::new();
    let r = reason.trim();
    if r.is_empty() {
        p.push(
            "reason",
            code::REQUIRED,
            "A cancel reason is required: 1 (Duplicate), 2 (Data entry mistake), 3 (Order cancelled) or 4 (Others).",
        );
    } else if codes::cancel_reason_name(r).is_none() {
        p.push(
            "reason",
            code::INVALID_CANCEL_REASON,
            format!("Cancel reason '{r}' is not valid; expected 1 (Duplicate), 2 (Data entry mistake), 3 (Order cancelled) or 4 (Others)."),
        );
    }
    let len = remark.chars().count();
    if len > CANCEL_REMARK_MAX {
        p.push(
            "remark",
            code::REMARK_TOO_LONG,
            format!("The cancel remark has {len} characters; the IRP allows at most {CANCEL_REMARK_MAX}."),
        );
    }
    p.into_vec()
}

/// Validates an e-invoice and returns the normalized, ready-to-send invoice,
/// or every problem found.
///
/// `seller_gstin_hint` is the GSTIN the command was sent for (the envelope's
/// `gstin`); when given, `SellerDtls.Gstin` must equal it, because the IRP
/// rejects an invoice of another GSTIN under our credentials (error 2143).
pub fn validate_invoice(
    raw: &Value,
    seller_gstin_hint: Option<&str>,
    opts: &ValidationOptions,
) -> Result<ValidInvoice, Vec<Problem>> {
    let mut json = raw.clone();
    let Some(root) = json.as_object_mut() else {
        return Err(vec![Problem::new(
            "",
            code::INVALID_TYPE,
            format!(
                "The invoice must be a JSON object with Version, TranDtls, DocDtls, … but {} was given.",
                describe(raw)
            ),
        )]);
    };
    let mut cx = Ctx { p: Problems::new(), opts };

    if let Some(v) = cx.text(root, "", "Version", true, Norm::Trim) {
        if v != "1.1" {
            cx.p.push(
                "Version",
                code::UNSUPPORTED_VERSION,
                format!("Schema version '{v}' is not supported; expected '1.1'."),
            );
        }
    }

    let tran = match cx.object(root, "", "TranDtls", true) {
        Some(m) => cx.tran_dtls(m),
        None => Tran::default(),
    };
    let doc = match cx.object(root, "", "DocDtls", true) {
        Some(m) => cx.doc_dtls(m),
        None => Doc::default(),
    };
    let is_export = tran.sup.map(SupplyType::is_export);

    let seller = match cx.object(root, "", "SellerDtls", true) {
        Some(m) => cx.party(m, "SellerDtls", PartyRole::Seller, is_export),
        None => Party::default(),
    };
    let buyer = match cx.object(root, "", "BuyerDtls", true) {
        Some(m) => cx.party(m, "BuyerDtls", PartyRole::Buyer, is_export),
        None => Party::default(),
    };
    if let Some(m) = cx.object(root, "", "DispDtls", false) {
        cx.party(m, "DispDtls", PartyRole::Dispatch, is_export);
    }
    if let Some(m) = cx.object(root, "", "ShipDtls", false) {
        cx.party(m, "ShipDtls", PartyRole::Ship, is_export);
    }
    cx.cross_party(&seller, &buyer, seller_gstin_hint);

    let tax = TaxContext::new(&tran, &doc, &seller, &buyer);
    let items = cx.item_list(root, &tax);
    let totals = match cx.object(root, "", "ValDtls", true) {
        Some(m) => cx.val_dtls(m, items.as_deref()),
        None => None,
    };

    if let Some(m) = cx.object(root, "", "ExpDtls", false) {
        cx.exp_dtls(m);
    }
    if let Some(m) = cx.object(root, "", "EwbDtls", false) {
        cx.ewb_dtls(m);
    }
    if let Some(m) = cx.object(root, "", "PayDtls", false) {
        for k in ["CrDay", "PaidAmt", "PaymtDue"] {
            cx.number(m, "PayDtls", k, false, true);
        }
    }
    if let Some(m) = cx.object(root, "", "RefDtls", false) {
        cx.ref_dtls(m);
    }

    if !cx.p.is_empty() {
        return Err(cx.p.into_vec());
    }
    // No problems means every required value parsed; anything else is a bug.
    let (
        Some(seller_gstin),
        Some(buyer_gstin),
        Some(doc_type),
        Some(doc_number),
        Some(doc_date),
        Some(sup),
        Some(items),
        Some(total),
    ) = (seller.gstin, buyer.gstin_text, doc.typ, doc.no, doc.date, tran.sup, items, totals)
    else {
        return Err(vec![Problem::new(
            "",
            code::INTERNAL,
            "The validator accepted the invoice but lost a required value; this is a bug in the worker.",
        )]);
    };
    let main_hsn = items
        .iter()
        .fold(None::<&Item>, |best, it| match best {
            Some(b) if b.ass.unwrap_or(0.0) >= it.ass.unwrap_or(0.0) => Some(b),
            _ => Some(it),
        })
        .and_then(|it| it.hsn.clone())
        .unwrap_or_default();
    Ok(ValidInvoice {
        key: DocumentKey::new(seller_gstin.clone(), doc_type, doc_number, doc_date),
        doc_date,
        seller_gstin,
        buyer_gstin,
        supply_type: sup,
        total_invoice_value: total,
        item_count: items.len(),
        main_hsn,
        irp_json: json,
    })
}

// ---------------------------------------------------------------------------
// Parsed pieces. `None` means missing or broken (a problem was recorded, or
// the field is optional and absent), so dependent checks are skipped.

#[derive(Default)]
struct Tran {
    sup: Option<SupplyType>,
    /// Reverse charge; `Some(false)` when absent.
    reg_rev: Option<bool>,
    /// `Some(false)` when absent.
    igst_on_intra: Option<bool>,
}

#[derive(Default)]
struct Doc {
    typ: Option<DocType>,
    no: Option<DocNumber>,
    date: Option<DocDate>,
}

#[derive(Default)]
struct Party {
    gstin: Option<Gstin>,
    /// Normalized GSTIN text as sent (a valid GSTIN, or `URP`).
    gstin_text: Option<String>,
    stcd: Option<String>,
    pos: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PartyRole {
    Seller,
    Buyer,
    Dispatch,
    Ship,
}

struct Item {
    hsn: Option<String>,
    ass: Option<f64>,
    igst: Option<f64>,
    cgst: Option<f64>,
    sgst: Option<f64>,
    /// CesAmt + CesNonAdvlAmt.
    cess: Option<f64>,
    /// StateCesAmt + StateCesNonAdvlAmt.
    state_cess: Option<f64>,
    tot_item_val: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TaxMode {
    /// Inter-state, SEZ, export, or `IgstOnIntra=Y`: IGST only.
    IgstOnly,
    /// Intra-state: CGST + SGST, half the rate each.
    Intra,
}

/// What the per-line tax rules need to know about the whole invoice.
struct TaxContext {
    /// `None` when SupTyp/states are unknown: skip the split checks.
    mode: Option<TaxMode>,
    /// Compare tax amounts with the rate? Not for CRN/DBN (nor when Typ is broken).
    rate_checks: bool,
    sup: Option<SupplyType>,
    /// TotItemVal may exclude tax (reverse charge, EXPWP).
    tax_may_be_excluded: bool,
}

impl TaxContext {
    fn new(tran: &Tran, doc: &Doc, seller: &Party, buyer: &Party) -> Self {
        let mode = match tran.sup {
            Some(s) if s.is_igst_only() => Some(TaxMode::IgstOnly),
            Some(_) => match (tran.igst_on_intra, &seller.stcd, &buyer.pos) {
                (Some(true), _, _) => Some(TaxMode::IgstOnly),
                (Some(false), Some(s), Some(p)) if s != p => Some(TaxMode::IgstOnly),
                (Some(false), Some(_), Some(_)) => Some(TaxMode::Intra),
                _ => None,
            },
            None => None,
        };
        TaxContext {
            mode,
            rate_checks: doc.typ.is_some_and(|t| !t.is_note()),
            sup: tran.sup,
            tax_may_be_excluded: tran.reg_rev == Some(true) || tran.sup == Some(SupplyType::ExportWithPayment),
        }
    }
}

/// Result of reading one field.
enum Field<T> {
    Absent,
    Bad,
    Ok(T),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Norm {
    /// Leave the payload as is (the value is trimmed only for checking).
    Keep,
    /// Trim in the payload.
    Trim,
    /// Trim and upper-case in the payload (schema codes).
    Upper,
}

static NUMERIC: Lazy<Regex> = Lazy::new(|| Regex::new(r"^-?[0-9]+(\.[0-9]+)?$").expect("static regex"));
static HSN: Lazy<Regex> = Lazy::new(|| Regex::new(r"^([0-9]{4}|[0-9]{6}|[0-9]{8})$").expect("static regex"));
static SLNO: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[0-9]{1,6}$").expect("static regex"));
static COUNTRY: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[A-Z]{2}$").expect("static regex"));
static CURRENCY: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[A-Z]{3}$").expect("static regex"));

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

/// True when `a` and `b` differ by more than `tol`. NaN/infinite values
/// (absurd inputs overflowing a sum) count as differing, never as equal.
fn differs(a: f64, b: f64, tol: f64) -> bool {
    let d = (a - b).abs();
    d.is_nan() || d > tol + EPS
}

fn sum<'a>(items: &'a [Item], f: impl Fn(&'a Item) -> Option<f64>) -> Option<f64> {
    items.iter().map(f).sum()
}

struct Ctx<'o> {
    p: Problems,
    opts: &'o ValidationOptions,
}

impl Ctx<'_> {
    // ---- field readers -----------------------------------------------------

    fn required(&mut self, path: String) {
        self.p.push(path.clone(), code::REQUIRED, format!("{path} is required but is missing or blank."));
    }

    fn wrong_type(&mut self, path: String, expected: &str, found: &Value) {
        self.p.push(
            path.clone(),
            code::INVALID_TYPE,
            format!("{path} must be {expected}, but {} was given.", describe(found)),
        );
    }

    fn object<'m>(
        &mut self,
        parent: &'m mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
    ) -> Option<&'m mut Map<String, Value>> {
        let path = join(base, key);
        match parent.get_mut(key) {
            None | Some(Value::Null) => {
                if required {
                    self.required(path);
                }
                None
            }
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.wrong_type(path, "an object (a group of fields)", other);
                None
            }
        }
    }

    fn text(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
        norm: Norm,
    ) -> Option<String> {
        let path = join(base, key);
        match map.get_mut(key) {
            None | Some(Value::Null) => {
                if required {
                    self.required(path);
                }
                None
            }
            Some(Value::String(s)) => {
                let t = match norm {
                    Norm::Upper => s.trim().to_ascii_uppercase(),
                    Norm::Keep | Norm::Trim => s.trim().to_string(),
                };
                if t.is_empty() {
                    if required {
                        self.required(path);
                    }
                    return None;
                }
                if norm != Norm::Keep && *s != t {
                    s.clone_from(&t);
                }
                Some(t)
            }
            Some(other) => {
                self.wrong_type(path, "text", other);
                None
            }
        }
    }

    /// Free text with the schema's length limits (counted after trimming).
    fn text_len(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
        min: usize,
        max: usize,
    ) -> Option<String> {
        let t = self.text(map, base, key, required, Norm::Keep)?;
        let n = t.chars().count();
        if n < min || n > max {
            self.p.push(
                join(base, key),
                code::TEXT_LENGTH,
                format!("'{t}' has {n} characters; {base}.{key} must have {min} to {max}."),
            );
            return None;
        }
        Some(t)
    }

    /// Reads a number, accepting numeric strings and rewriting them as JSON
    /// numbers (integers stay integers so `Pin` doesn't become `560058.0`).
    fn number(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
        non_negative: bool,
    ) -> Field<f64> {
        let path = join(base, key);
        let slot = match map.get_mut(key) {
            None | Some(Value::Null) => {
                if required {
                    self.required(path);
                    return Field::Bad;
                }
                return Field::Absent;
            }
            Some(v) => v,
        };
        let v = match slot {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => {
                let t = s.trim();
                if t.is_empty() {
                    if required {
                        self.required(path);
                        return Field::Bad;
                    }
                    // A blank optional number means "no value"; drop it so
                    // the IRP's schema check doesn't trip on "".
                    map.remove(key);
                    return Field::Absent;
                }
                let parsed = if NUMERIC.is_match(t) {
                    if t.contains('.') {
                        t.parse::<f64>().ok().and_then(|f| Number::from_f64(f).map(|n| (f, n)))
                    } else if let Ok(i) = t.parse::<i64>() {
                        Some((i as f64, Number::from(i)))
                    } else {
                        t.parse::<f64>().ok().and_then(|f| Number::from_f64(f).map(|n| (f, n)))
                    }
                } else {
                    None
                };
                match parsed {
                    Some((f, n)) => {
                        *slot = Value::Number(n);
                        Some(f)
                    }
                    None => {
                        self.p.push(
                            path.clone(),
                            code::INVALID_TYPE,
                            format!("{path} must be a number, but '{t}' was given."),
                        );
                        return Field::Bad;
                    }
                }
            }
            other => {
                self.wrong_type(path, "a number", other);
                return Field::Bad;
            }
        };
        let Some(v) = v.filter(|f| f.is_finite()) else {
            self.p.push(path.clone(), code::INVALID_TYPE, format!("{path} is not a usable number."));
            return Field::Bad;
        };
        if non_negative && v < 0.0 {
            self.p.push(
                path.clone(),
                code::NEGATIVE_VALUE,
                format!("{path} is {v}, but it cannot be negative (credit notes also use positive amounts)."),
            );
            return Field::Bad;
        }
        Field::Ok(v)
    }

    /// Mandatory number: `None` if missing or broken.
    fn req_num(&mut self, map: &mut Map<String, Value>, base: &str, key: &str) -> Option<f64> {
        match self.number(map, base, key, true, true) {
            Field::Ok(v) => Some(v),
            Field::Absent | Field::Bad => None,
        }
    }

    /// Optional number that counts as 0 when absent: `None` only if broken.
    fn opt_num(&mut self, map: &mut Map<String, Value>, base: &str, key: &str, non_negative: bool) -> Option<f64> {
        match self.number(map, base, key, false, non_negative) {
            Field::Ok(v) => Some(v),
            Field::Absent => Some(0.0),
            Field::Bad => None,
        }
    }

    /// A `Y`/`N` flag; absent is `Field::Absent`.
    fn flag(&mut self, map: &mut Map<String, Value>, base: &str, key: &str, required: bool) -> Field<bool> {
        let before = self.p.len();
        match self.text(map, base, key, required, Norm::Upper).as_deref() {
            Some("Y") => Field::Ok(true),
            Some("N") => Field::Ok(false),
            Some(other) => {
                self.p.push(
                    join(base, key),
                    code::INVALID_FLAG,
                    format!("{base}.{key} is '{other}'; expected Y or N."),
                );
                Field::Bad
            }
            // A problem was recorded (missing, blank or wrong type)…
            None if self.p.len() > before => Field::Bad,
            // …or an optional flag was simply not given.
            None => Field::Absent,
        }
    }

    /// An optional flag that defaults to `N`: `None` only if broken.
    fn flag_default_no(&mut self, map: &mut Map<String, Value>, base: &str, key: &str) -> Option<bool> {
        match self.flag(map, base, key, false) {
            Field::Ok(b) => Some(b),
            Field::Absent => Some(false),
            Field::Bad => None,
        }
    }

    fn gstin(&mut self, map: &mut Map<String, Value>, base: &str, key: &str, required: bool) -> Option<Gstin> {
        let t = self.text(map, base, key, required, Norm::Upper)?;
        self.parse_gstin(join(base, key), &t)
    }

    fn parse_gstin(&mut self, path: String, text: &str) -> Option<Gstin> {
        match Gstin::parse(text, self.opts.relaxed_gstin_check_digit) {
            Ok(g) => Some(g),
            Err(e) => {
                self.p.push(path, e.code(), format!("{e}."));
                None
            }
        }
    }

    fn state_code(&mut self, map: &mut Map<String, Value>, base: &str, key: &str, required: bool) -> Option<String> {
        let t = self.text(map, base, key, required, Norm::Upper)?;
        if codes::is_valid_state_code(&t) {
            Some(t)
        } else {
            self.p.push(
                join(base, key),
                code::INVALID_STATE_CODE,
                format!("State code '{t}' in {base}.{key} is not a GST state code; expected two digits such as 29 (Karnataka) or 96 (Other Countries)."),
            );
            None
        }
    }

    fn pin(&mut self, map: &mut Map<String, Value>, base: &str) -> Option<u32> {
        let v = match self.number(map, base, "Pin", true, false) {
            Field::Ok(v) => v,
            _ => return None,
        };
        if v.fract() == 0.0 && (100_000.0..=999_999.0).contains(&v) {
            Some(v as u32)
        } else {
            self.p.push(
                join(base, "Pin"),
                code::PIN_FORMAT,
                format!("PIN {v} in {base} is not valid; a PIN has six digits and does not start with 0."),
            );
            None
        }
    }

    /// A date field that only needs to be well-formed.
    fn date_field(&mut self, map: &mut Map<String, Value>, base: &str, key: &str, required: bool) -> Option<DocDate> {
        let t = self.text(map, base, key, required, Norm::Trim)?;
        match DocDate::parse(&t) {
            Ok(d) => Some(d),
            Err(e) => {
                let msg = format!("{base}.{key}: {e}.");
                self.p.push(join(base, key), e.code(), msg);
                None
            }
        }
    }

    // ---- sections ------------------------------------------------------------

    fn tran_dtls(&mut self, m: &mut Map<String, Value>) -> Tran {
        const B: &str = "TranDtls";
        if let Some(s) = self.text(m, B, "TaxSch", true, Norm::Upper) {
            if s != "GST" {
                self.p.push(
                    join(B, "TaxSch"),
                    code::INVALID_TAX_SCHEME,
                    format!("Tax scheme '{s}' is not valid; e-invoices use GST."),
                );
            }
        }
        let sup = self.text(m, B, "SupTyp", true, Norm::Upper).and_then(|s| {
            let parsed = SupplyType::parse(&s);
            if parsed.is_none() {
                self.p.push(
                    join(B, "SupTyp"),
                    code::INVALID_SUPPLY_TYPE,
                    format!(
                        "Supply type '{s}' is not valid; expected one of {} (B2C invoices are not e-invoiced).",
                        codes::SUPPLY_TYPES.join(", ")
                    ),
                );
            }
            parsed
        });
        let reg_rev = self.flag_default_no(m, B, "RegRev");
        let igst_on_intra = self.flag_default_no(m, B, "IgstOnIntra");
        self.gstin(m, B, "EcmGstin", false);
        Tran { sup, reg_rev, igst_on_intra }
    }

    fn doc_dtls(&mut self, m: &mut Map<String, Value>) -> Doc {
        const B: &str = "DocDtls";
        let typ = self.text(m, B, "Typ", true, Norm::Upper).and_then(|t| match DocType::parse(&t) {
            Ok(d) => Some(d),
            Err(e) => {
                self.p.push(join(B, "Typ"), e.code(), format!("The {e}."));
                None
            }
        });
        let no = self.text(m, B, "No", true, Norm::Trim).and_then(|t| match DocNumber::parse(&t) {
            Ok(n) => Some(n),
            Err(e) => {
                self.p.push(join(B, "No"), e.code(), format!("The {e}."));
                None
            }
        });
        let date = self.date_field(m, B, "Dt", true);
        if let Some(d) = date {
            self.doc_date_rules(d);
        }
        Doc { typ, no, date }
    }

    fn doc_date_rules(&mut self, d: DocDate) {
        const P: &str = "DocDtls.Dt";
        let today = DocDate::new(self.opts.today);
        let start = DocDate::new(self.opts.einvoice_start);
        if d > today {
            self.p.push(
                P,
                code::DATE_IN_FUTURE,
                format!("Document date {d} is after today ({today}, India time); future-dated documents are rejected."),
            );
        }
        if d < start {
            self.p.push(
                P,
                code::DATE_BEFORE_EINVOICE_START,
                format!("Document date {d} is before e-invoicing started on {start}."),
            );
        }
        if let Some(days) = self.opts.reporting_window_days {
            if let Some(earliest) = self.opts.today.checked_sub_days(Days::new(days.into())) {
                let earliest = DocDate::new(earliest);
                if d < earliest {
                    self.p.push(
                        P,
                        code::DATE_OUTSIDE_REPORTING_WINDOW,
                        format!("Document date {d} is more than {days} days before today ({today}); the IRP only accepts documents dated {earliest} or later."),
                    );
                }
            }
        }
    }

    fn party(&mut self, m: &mut Map<String, Value>, base: &str, role: PartyRole, is_export: Option<bool>) -> Party {
        let mut party = Party::default();
        // GSTIN: mandatory for seller and buyer; URP (unregistered) only for
        // an export buyer or a ship-to address.
        if role != PartyRole::Dispatch {
            let required = matches!(role, PartyRole::Seller | PartyRole::Buyer);
            if let Some(t) = self.text(m, base, "Gstin", required, Norm::Upper) {
                let path = join(base, "Gstin");
                if t == "URP" && role == PartyRole::Ship {
                    // Goods may be delivered to an unregistered place on any supply.
                    party.gstin_text = Some(t);
                } else if t == "URP" && role == PartyRole::Buyer {
                    match is_export {
                        Some(true) => party.gstin_text = Some(t),
                        Some(false) => self.p.push(
                            path,
                            code::URP_NOT_ALLOWED,
                            format!("{base}.Gstin is URP (unregistered person), which is only allowed for exports (EXPWP/EXPWOP); a B2B, SEZ or deemed-export buyer needs a GSTIN."),
                        ),
                        // SupTyp unknown: that problem is already reported.
                        None => {}
                    }
                } else if let Some(g) = self.parse_gstin(path, &t) {
                    party.gstin_text = Some(g.as_str().to_string());
                    party.gstin = Some(g);
                }
            }
        }
        if role == PartyRole::Dispatch {
            self.text_len(m, base, "Nm", true, 3, 100);
        } else {
            self.text_len(m, base, "LglNm", true, 3, 100);
            self.text_len(m, base, "TrdNm", false, 3, 100);
        }
        self.text_len(m, base, "Addr1", true, 1, 100);
        self.text_len(m, base, "Addr2", false, 3, 100);
        self.text_len(m, base, "Loc", true, 3, 100);
        let pin = self.pin(m, base);
        if role == PartyRole::Buyer {
            party.pos = self.state_code(m, base, "Pos", true);
        }
        party.stcd = self.state_code(m, base, "Stcd", true);
        if matches!(role, PartyRole::Seller | PartyRole::Buyer) {
            self.text_len(m, base, "Ph", false, 6, 12);
            self.text_len(m, base, "Em", false, 6, 100);
        }

        if let (Some(pin), Some(st)) = (pin, &party.stcd) {
            if !codes::pin_matches_state(pin, st) {
                let name = codes::state_name(st).unwrap_or("that state");
                self.p.push(
                    join(base, "Pin"),
                    code::PIN_STATE_MISMATCH,
                    format!("PIN {pin} does not belong to state {st} ({name}) given in {base}.Stcd."),
                );
            }
        }
        // The GSTIN's state must be the party's state, except for an export
        // buyer, whose address is abroad.
        let check_state = match role {
            PartyRole::Seller => true,
            PartyRole::Buyer => is_export == Some(false),
            PartyRole::Dispatch | PartyRole::Ship => false,
        };
        if let (true, Some(g), Some(st)) = (check_state, &party.gstin, &party.stcd) {
            if g.state_code() != st {
                self.p.push(
                    join(base, "Stcd"),
                    code::GSTIN_STATE_MISMATCH,
                    format!("{base}.Stcd is {st} but GSTIN {g} belongs to state {}; they must match.", g.state_code()),
                );
            }
        }
        party
    }

    fn cross_party(&mut self, seller: &Party, buyer: &Party, hint: Option<&str>) {
        if let (Some(hint), Some(s)) = (hint, &seller.gstin_text) {
            let hint = hint.trim().to_ascii_uppercase();
            if &hint != s {
                self.p.push(
                    "SellerDtls.Gstin",
                    code::SELLER_GSTIN_MISMATCH,
                    format!("Seller GSTIN {s} differs from GSTIN {hint} this request was sent for; an invoice can only be registered under its own seller's GSTIN."),
                );
            }
        }
        if let (Some(s), Some(b)) = (&seller.gstin, &buyer.gstin) {
            if s == b {
                self.p.push(
                    "BuyerDtls.Gstin",
                    code::SAME_SELLER_BUYER,
                    format!("Buyer GSTIN {b} is the seller's own GSTIN; a supply to yourself is not e-invoiced."),
                );
            }
        }
    }

    fn item_list(&mut self, root: &mut Map<String, Value>, tax: &TaxContext) -> Option<Vec<Item>> {
        let list = match root.get_mut("ItemList") {
            None | Some(Value::Null) => {
                self.required("ItemList".into());
                return None;
            }
            Some(Value::Array(a)) => a,
            Some(other) => {
                self.wrong_type("ItemList".into(), "a list of items", other);
                return None;
            }
        };
        let n = list.len();
        if n == 0 {
            self.p.push("ItemList", code::ITEM_COUNT, "The invoice has no items; at least one is required.");
            return None;
        }
        if n > self.opts.max_items {
            self.p.push(
                "ItemList",
                code::ITEM_COUNT,
                format!(
                    "The invoice has {n} items; the IRP accepts at most {}. Split it into several invoices.",
                    self.opts.max_items
                ),
            );
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut items = Vec::with_capacity(n);
        let mut all_ok = true;
        for (i, v) in list.iter_mut().enumerate() {
            let base = format!("ItemList[{i}]");
            match v {
                Value::Object(m) => items.push(self.item(m, i, &base, tax, &mut seen)),
                other => {
                    self.wrong_type(base, "an object (one item)", other);
                    all_ok = false;
                }
            }
        }
        all_ok.then_some(items)
    }

    fn item(
        &mut self,
        m: &mut Map<String, Value>,
        index: usize,
        base: &str,
        tax: &TaxContext,
        seen: &mut HashMap<String, usize>,
    ) -> Item {
        let opts = self.opts;
        if let Some(sl) = self.text(m, base, "SlNo", true, Norm::Trim) {
            if !SLNO.is_match(&sl) {
                self.p.push(
                    join(base, "SlNo"),
                    code::SLNO_FORMAT,
                    format!("Serial number '{sl}' must be a number of 1 to 6 digits."),
                );
            } else if let Some(first) = seen.get(&sl) {
                self.p.push(
                    join(base, "SlNo"),
                    code::DUPLICATE_SLNO,
                    format!("Serial number {sl} is already used by ItemList[{first}]; each item needs its own."),
                );
            } else {
                seen.insert(sl, index);
            }
        }
        self.text_len(m, base, "PrdDesc", false, 1, 300);
        let is_servc = match self.flag(m, base, "IsServc", true) {
            Field::Ok(b) => Some(b),
            _ => None,
        };
        let hsn = self.text(m, base, "HsnCd", true, Norm::Trim).and_then(|h| {
            if !HSN.is_match(&h) {
                self.p.push(
                    join(base, "HsnCd"),
                    code::HSN_FORMAT,
                    format!("HSN/SAC code '{h}' must be 4, 6 or 8 digits."),
                );
                return None;
            }
            let service_code = h.starts_with("99");
            match is_servc {
                Some(true) if !service_code => self.p.push(
                    join(base, "HsnCd"),
                    code::HSN_SERVICE_MISMATCH,
                    format!("The item is marked as a service (IsServc=Y) but '{h}' is a goods HSN; service (SAC) codes start with 99."),
                ),
                Some(false) if service_code => self.p.push(
                    join(base, "HsnCd"),
                    code::HSN_SERVICE_MISMATCH,
                    format!("The item is marked as goods (IsServc=N) but '{h}' is a service (SAC) code; set IsServc=Y or use a goods HSN."),
                ),
                _ => {}
            }
            Some(h)
        });

        // Goods need quantity and unit; services may leave them out.
        let goods = is_servc == Some(false);
        let _ = self.number(m, base, "Qty", goods, true);
        self.number(m, base, "FreeQty", false, true);
        if let Some(u) = self.text(m, base, "Unit", goods, Norm::Upper) {
            if !codes::is_valid_unit(&u) {
                self.p.push(
                    join(base, "Unit"),
                    code::INVALID_UNIT,
                    format!("Unit '{u}' is not a NIC unit code (UQC); use one such as NOS, PCS, KGS, MTR, LTR or OTH."),
                );
            }
        }
        self.req_num(m, base, "UnitPrice");
        let tot_amt = self.req_num(m, base, "TotAmt");
        let discount = self.opt_num(m, base, "Discount", true);
        self.number(m, base, "PreTaxVal", false, true);
        let ass = self.req_num(m, base, "AssAmt");
        let rate = self.req_num(m, base, "GstRt").and_then(|r| {
            if codes::is_allowed_rate(r, &opts.allowed_gst_rates) {
                Some(r)
            } else {
                let list: Vec<String> = opts.allowed_gst_rates.iter().map(|r| r.to_string()).collect();
                self.p.push(
                    join(base, "GstRt"),
                    code::INVALID_GST_RATE,
                    format!("GST rate {r}% is not in the GST rate master ({}).", list.join(", ")),
                );
                None
            }
        });
        let igst = self.opt_num(m, base, "IgstAmt", true);
        let cgst = self.opt_num(m, base, "CgstAmt", true);
        let sgst = self.opt_num(m, base, "SgstAmt", true);
        let ces_rt = self.opt_num(m, base, "CesRt", true);
        let ces_amt = self.opt_num(m, base, "CesAmt", true);
        let ces_non_advl = self.opt_num(m, base, "CesNonAdvlAmt", true);
        self.opt_num(m, base, "StateCesRt", true);
        let st_ces = self.opt_num(m, base, "StateCesAmt", true);
        let st_ces_non_advl = self.opt_num(m, base, "StateCesNonAdvlAmt", true);
        // Other charges may be negative (e.g. an adjustment); the schema allows it.
        let oth = self.opt_num(m, base, "OthChrg", false);
        let tot_item_val = self.req_num(m, base, "TotItemVal");

        // AssAmt = TotAmt − Discount.
        if let (Some(t), Some(d), Some(a)) = (tot_amt, discount, ass) {
            if differs(a, t - d, ASSAMT_TOLERANCE) {
                self.p.push(
                    join(base, "AssAmt"),
                    code::ASSAMT_MISMATCH,
                    format!(
                        "Assessable amount {} should be total amount {} minus discount {} = {}.",
                        money(a),
                        money(t),
                        money(d),
                        money(t - d)
                    ),
                );
            }
        }

        self.tax_split(base, tax, ass, rate, igst, cgst, sgst);

        // Cess = AssAmt × CesRt / 100 (ad valorem part only).
        if let (true, Some(a), Some(r), Some(c)) = (tax.rate_checks, ass, ces_rt, ces_amt) {
            if r > 0.0 && differs(c, a * r / 100.0, opts.tax_tolerance) {
                self.p.push(
                    join(base, "CesAmt"),
                    code::CESS_MISMATCH,
                    format!(
                        "Cess amount {} should be {} ({r}% of assessable amount {}).",
                        money(c),
                        money(a * r / 100.0),
                        money(a)
                    ),
                );
            }
        }

        let cess = ces_amt.zip(ces_non_advl).map(|(a, b)| a + b);
        let state_cess = st_ces.zip(st_ces_non_advl).map(|(a, b)| a + b);
        // TotItemVal = AssAmt + GST + cess + state cess + other charges. Under
        // reverse charge and for EXPWP the IRP also accepts it without tax.
        if let (Some(a), Some(i), Some(c), Some(s), Some(ce), Some(sc), Some(o), Some(tv)) =
            (ass, igst, cgst, sgst, cess, state_cess, oth, tot_item_val)
        {
            let with_tax = a + i + c + s + ce + sc + o;
            let ok = !differs(tv, with_tax, opts.tax_tolerance)
                || (tax.tax_may_be_excluded
                    && (!differs(tv, a + ce + sc + o, opts.tax_tolerance) || !differs(tv, a + o, opts.tax_tolerance)));
            if !ok {
                self.p.push(
                    join(base, "TotItemVal"),
                    code::TOTITEMVAL_MISMATCH,
                    format!(
                        "Item total {} should be assessable amount {} + taxes {} + cess {} + other charges {} = {}.",
                        money(tv),
                        money(a),
                        money(i + c + s),
                        money(ce + sc),
                        money(o),
                        money(with_tax)
                    ),
                );
            }
        }

        Item { hsn, ass, igst, cgst, sgst, cess, state_cess, tot_item_val }
    }

    /// IGST vs CGST+SGST for one line, and the amounts against the rate.
    #[allow(clippy::too_many_arguments)]
    fn tax_split(
        &mut self,
        base: &str,
        tax: &TaxContext,
        ass: Option<f64>,
        rate: Option<f64>,
        igst: Option<f64>,
        cgst: Option<f64>,
        sgst: Option<f64>,
    ) {
        let tol = self.opts.tax_tolerance;
        let Some(mode) = tax.mode else { return };
        let expected = |div: f64| match (tax.rate_checks, ass, rate) {
            (true, Some(a), Some(r)) => Some(a * r / div),
            _ => None,
        };
        match mode {
            TaxMode::IgstOnly => {
                for (key, amt) in [("CgstAmt", cgst), ("SgstAmt", sgst)] {
                    if let Some(v) = amt.filter(|v| *v != 0.0) {
                        self.p.push(
                            join(base, key),
                            code::CGST_SGST_NOT_ALLOWED,
                            format!("{key} is {} but this supply is inter-state, SEZ or export (or IgstOnIntra=Y), so it takes IGST only; CGST and SGST must be 0.", money(v)),
                        );
                    }
                }
                // Under bond/LUT (EXPWOP/SEZWOP) a zero IGST is expected.
                let zero_without_payment = tax.sup.is_some_and(SupplyType::is_without_payment) && igst == Some(0.0);
                if let (Some(i), Some(e), false) = (igst, expected(100.0), zero_without_payment) {
                    if differs(i, e, tol) {
                        self.p.push(
                            join(base, "IgstAmt"),
                            code::IGST_MISMATCH,
                            format!(
                                "IGST {} should be {} ({}% of assessable amount {}).",
                                money(i),
                                money(e),
                                rate.unwrap_or(0.0),
                                money(ass.unwrap_or(0.0))
                            ),
                        );
                    }
                }
            }
            TaxMode::Intra => {
                if let Some(i) = igst.filter(|v| *v != 0.0) {
                    self.p.push(
                        join(base, "IgstAmt"),
                        code::IGST_NOT_ALLOWED,
                        format!("IGST {} is charged on an intra-state supply (seller state = place of supply); charge CGST + SGST instead, or set TranDtls.IgstOnIntra=Y if IGST is really due.", money(i)),
                    );
                }
                let mut mismatch = false;
                if let Some(e) = expected(200.0) {
                    for (key, name, amt, c) in
                        [("CgstAmt", "CGST", cgst, code::CGST_MISMATCH), ("SgstAmt", "SGST", sgst, code::SGST_MISMATCH)]
                    {
                        if let Some(v) = amt.filter(|v| differs(*v, e, tol)) {
                            mismatch = true;
                            self.p.push(
                                join(base, key),
                                c,
                                format!(
                                    "{name} {} should be {} (half of the {}% rate on assessable amount {}).",
                                    money(v),
                                    money(e),
                                    rate.unwrap_or(0.0),
                                    money(ass.unwrap_or(0.0))
                                ),
                            );
                        }
                    }
                }
                // Reported only when the rate checks didn't already explain it.
                if let (false, Some(c), Some(s)) = (mismatch, cgst, sgst) {
                    if differs(c, s, 0.01) {
                        self.p.push(
                            join(base, "SgstAmt"),
                            code::CGST_SGST_UNEQUAL,
                            format!(
                                "SGST {} differs from CGST {}; on an intra-state supply they are always equal.",
                                money(s),
                                money(c)
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Invoice totals; returns `TotInvVal` when it could be read.
    fn val_dtls(&mut self, m: &mut Map<String, Value>, items: Option<&[Item]>) -> Option<f64> {
        const B: &str = "ValDtls";
        let tol = self.opts.total_tolerance;
        let ass_val = self.req_num(m, B, "AssVal");
        let cgst_val = self.opt_num(m, B, "CgstVal", true);
        let sgst_val = self.opt_num(m, B, "SgstVal", true);
        let igst_val = self.opt_num(m, B, "IgstVal", true);
        let ces_val = self.opt_num(m, B, "CesVal", true);
        let st_ces_val = self.opt_num(m, B, "StCesVal", true);
        let discount = self.opt_num(m, B, "Discount", true);
        let oth = self.opt_num(m, B, "OthChrg", false);
        let rnd = self.opt_num(m, B, "RndOffAmt", false);
        let tot = self.req_num(m, B, "TotInvVal");
        self.number(m, B, "TotInvValFc", false, true);

        if let Some(r) = rnd.filter(|r| r.abs() > RNDOFF_LIMIT + EPS) {
            self.p.push(
                join(B, "RndOffAmt"),
                code::RNDOFF_RANGE,
                format!("Round-off {} is outside the allowed range of -99.99 to +99.99.", money(r)),
            );
        }

        let Some(items) = items else { return tot };
        let sums = [
            ("AssVal", "assessable amounts", ass_val, sum(items, |i| i.ass), code::ASSVAL_MISMATCH),
            ("CgstVal", "CGST amounts", cgst_val, sum(items, |i| i.cgst), code::CGSTVAL_MISMATCH),
            ("SgstVal", "SGST amounts", sgst_val, sum(items, |i| i.sgst), code::SGSTVAL_MISMATCH),
            ("IgstVal", "IGST amounts", igst_val, sum(items, |i| i.igst), code::IGSTVAL_MISMATCH),
            ("CesVal", "cess amounts", ces_val, sum(items, |i| i.cess), code::CESVAL_MISMATCH),
            ("StCesVal", "state cess amounts", st_ces_val, sum(items, |i| i.state_cess), code::STCESVAL_MISMATCH),
        ];
        for (key, what, given, expected, c) in sums {
            if let (Some(g), Some(e)) = (given, expected) {
                if differs(g, e, tol) {
                    self.p.push(
                        join(B, key),
                        c,
                        format!("{B}.{key} is {} but the items' {what} add up to {}.", money(g), money(e)),
                    );
                }
            }
        }
        if let (Some(t), Some(items_total), Some(o), Some(d), Some(r)) =
            (tot, sum(items, |i| i.tot_item_val), oth, discount, rnd)
        {
            let expected = items_total + o - d + r;
            if differs(t, expected, tol) {
                self.p.push(
                    join(B, "TotInvVal"),
                    code::TOTINVVAL_MISMATCH,
                    format!("Invoice total {} should be item totals {} + other charges {} − discount {} + round-off {} = {}.", money(t), money(items_total), money(o), money(d), money(r), money(expected)),
                );
            }
        }
        tot
    }

    fn exp_dtls(&mut self, m: &mut Map<String, Value>) {
        const B: &str = "ExpDtls";
        self.date_field(m, B, "ShipBDt", false);
        self.text(m, B, "Port", false, Norm::Upper);
        let _ = self.flag(m, B, "RefClm", false);
        if let Some(c) = self.text(m, B, "ForCur", false, Norm::Upper) {
            if !CURRENCY.is_match(&c) {
                self.p.push(
                    join(B, "ForCur"),
                    code::INVALID_CURRENCY,
                    format!("Foreign currency '{c}' must be a three-letter currency code such as USD or EUR."),
                );
            }
        }
        if let Some(c) = self.text(m, B, "CntCode", false, Norm::Upper) {
            if !COUNTRY.is_match(&c) {
                self.p.push(
                    join(B, "CntCode"),
                    code::INVALID_COUNTRY_CODE,
                    format!("Country code '{c}' must be a two-letter country code such as US or DE."),
                );
            }
        }
        self.number(m, B, "ExpDuty", false, true);
    }

    fn ewb_dtls(&mut self, m: &mut Map<String, Value>) {
        const B: &str = "EwbDtls";
        // The transporter ID is a GSTIN or a TRANSIN, which has the same layout and check digit.
        self.gstin(m, B, "TransId", false);
        self.number(m, B, "Distance", false, true);
        self.date_field(m, B, "TransDocDt", false);
        self.text(m, B, "VehNo", false, Norm::Upper);
        self.text(m, B, "VehType", false, Norm::Upper);
    }

    fn ref_dtls(&mut self, m: &mut Map<String, Value>) {
        if let Some(Value::Array(list)) = m.get_mut("PrecDocDtls") {
            for (i, v) in list.iter_mut().enumerate() {
                if let Value::Object(d) = v {
                    self.date_field(d, &format!("RefDtls.PrecDocDtls[{i}]"), "InvDt", false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    // The eight reference samples, shared with the demo and the benchmark.
    use crate::samples::SAMPLES;

    fn sample(name: &str) -> Value {
        let text = SAMPLES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no sample {name}")).1;
        serde_json::from_str(text).unwrap()
    }

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn opts() -> ValidationOptions {
        ValidationOptions { today: ymd(2025, 4, 15), ..ValidationOptions::default() }
    }

    /// Sets the value at a JSON pointer, creating the last key if needed.
    fn set(v: &mut Value, pointer: &str, new: Value) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        match v.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}")) {
            Value::Object(m) => {
                m.insert(key.to_string(), new);
            }
            Value::Array(a) => a[key.parse::<usize>().unwrap()] = new,
            _ => panic!("{parent} is not a container"),
        }
    }

    fn del(v: &mut Value, pointer: &str) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let removed = v.pointer_mut(parent).and_then(Value::as_object_mut).and_then(|m| m.shift_remove(key));
        assert!(removed.is_some(), "nothing at {pointer}");
    }

    fn problems_with(v: &Value, hint: Option<&str>, o: &ValidationOptions) -> Vec<(String, String)> {
        let mut got: Vec<(String, String)> = match validate_invoice(v, hint, o) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|p| (p.path, p.code)).collect(),
        };
        got.sort();
        got
    }

    /// Asserts exactly these (path, code) problems, nothing more.
    #[track_caller]
    fn expect_with(v: &Value, hint: Option<&str>, o: &ValidationOptions, expected: &[(&str, &str)]) {
        let got = problems_with(v, hint, o);
        let mut want: Vec<(String, String)> = expected.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect();
        want.sort();
        if got != want {
            let detail = match validate_invoice(v, hint, o) {
                Ok(_) => "(valid)".to_string(),
                Err(p) => p.iter().map(|p| format!("\n  {p}")).collect(),
            };
            panic!("expected {want:?}\n     got {got:?}{detail}");
        }
    }

    #[track_caller]
    fn expect(v: &Value, expected: &[(&str, &str)]) {
        expect_with(v, None, &opts(), expected);
    }

    /// Breaks one sample with `f` and expects exactly `expected`.
    #[track_caller]
    fn broken(name: &str, f: impl FnOnce(&mut Value), expected: &[(&str, &str)]) {
        let mut v = sample(name);
        f(&mut v);
        expect(&v, expected);
    }

    // ---- happy path ---------------------------------------------------------

    #[test]
    fn all_samples_pass() {
        for (name, _) in SAMPLES {
            let v = sample(name);
            let ok = validate_invoice(&v, None, &opts()).unwrap_or_else(|p| panic!("{name}: {p:#?}"));
            // Nothing to normalize in the samples: the payload is unchanged.
            assert_eq!(ok.irp_json(), &v, "{name}");
            assert_eq!(ok.key().financial_year.to_string(), "2025-26");
            assert_eq!(ok.doc_date().to_string(), "01/04/2025");
        }
    }

    #[test]
    fn valid_invoice_accessors() {
        let v = sample("b2b-intra-goods");
        let ok = validate_invoice(&v, Some(" 29aagcp4821k1z3 "), &opts()).unwrap();
        assert_eq!(ok.key().to_string(), "29AAGCP4821K1Z3/INV/SMP/0001/2025-26");
        assert_eq!(ok.seller_gstin().as_str(), "29AAGCP4821K1Z3");
        assert_eq!(ok.buyer_gstin(), "29AADCT5519H1Z4");
        assert_eq!(ok.total_invoice_value(), 39441.5);
        assert_eq!(ok.item_count(), 2);
        assert_eq!(ok.main_hsn(), "73079190");
        assert_eq!(ok.supply_type(), SupplyType::B2b);
        assert_eq!(ok.key().irn().len(), 64);

        let ok = validate_invoice(&sample("export-with-payment"), None, &opts()).unwrap();
        assert_eq!(ok.buyer_gstin(), "URP");
        assert_eq!(ok.supply_type(), SupplyType::ExportWithPayment);

        let ok = validate_invoice(&sample("b2b-30-items-roundoff"), None, &opts()).unwrap();
        assert_eq!(ok.item_count(), 30);
        assert_eq!(ok.total_invoice_value(), 41880.0);
        assert_eq!(ok.main_hsn(), "84839000");
    }

    #[test]
    fn main_hsn_is_line_with_highest_assessable_amount() {
        let mut v = sample("b2b-30-items-roundoff");
        let items = v["ItemList"].as_array().unwrap();
        let (best, _) = items
            .iter()
            .enumerate()
            .max_by(|a, b| a.1["AssAmt"].as_f64().partial_cmp(&b.1["AssAmt"].as_f64()).unwrap())
            .unwrap();
        assert_ne!(best, 0, "the test needs the largest line somewhere else than first");
        set(&mut v, &format!("/ItemList/{best}/HsnCd"), json!("8484"));
        let ok = validate_invoice(&v, None, &opts()).unwrap();
        assert_eq!(ok.main_hsn(), "8484");
    }

    #[test]
    fn numeric_strings_and_codes_are_normalized() {
        let mut v = sample("b2b-intra-goods");
        set(&mut v, "/SellerDtls/Pin", json!(" 560058 "));
        set(&mut v, "/SellerDtls/Stcd", json!(" 29 "));
        set(&mut v, "/SellerDtls/Gstin", json!("29aagcp4821k1z3"));
        set(&mut v, "/BuyerDtls/Pos", json!("29 "));
        set(&mut v, "/TranDtls/SupTyp", json!("b2b"));
        set(&mut v, "/TranDtls/RegRev", json!("n"));
        set(&mut v, "/TranDtls/TaxSch", json!("gst"));
        set(&mut v, "/DocDtls/Typ", json!("inv"));
        set(&mut v, "/DocDtls/No", json!(" smp/0001 "));
        set(&mut v, "/DocDtls/Dt", json!(" 01/04/2025"));
        set(&mut v, "/ItemList/0/Unit", json!("nos"));
        set(&mut v, "/ItemList/0/IsServc", json!("n"));
        set(&mut v, "/ItemList/0/AssAmt", json!("24050.00"));
        set(&mut v, "/ItemList/0/GstRt", json!("18"));
        set(&mut v, "/ItemList/0/Qty", json!("40"));
        set(&mut v, "/ItemList/0/Discount", json!(""));
        set(&mut v, "/ItemList/0/TotAmt", json!("24050"));
        set(&mut v, "/ValDtls/TotInvVal", json!("39441.50"));
        set(&mut v, "/CustomField", json!({"keep": " me "}));
        set(&mut v, "/SellerDtls/LglNm", json!("  Prakash Engineering Works Pvt Ltd "));
        let ok = validate_invoice(&v, None, &opts()).unwrap();
        let j = ok.irp_json();
        assert_eq!(j["SellerDtls"]["Pin"], json!(560058));
        assert!(j["SellerDtls"]["Pin"].is_u64());
        assert_eq!(j["SellerDtls"]["Stcd"], json!("29"));
        assert_eq!(j["SellerDtls"]["Gstin"], json!("29AAGCP4821K1Z3"));
        assert_eq!(j["BuyerDtls"]["Pos"], json!("29"));
        assert_eq!(j["TranDtls"]["SupTyp"], json!("B2B"));
        assert_eq!(j["TranDtls"]["RegRev"], json!("N"));
        assert_eq!(j["TranDtls"]["TaxSch"], json!("GST"));
        assert_eq!(j["DocDtls"]["Typ"], json!("INV"));
        // Document numbers are trimmed but never upper-cased.
        assert_eq!(j["DocDtls"]["No"], json!("smp/0001"));
        assert_eq!(j["DocDtls"]["Dt"], json!("01/04/2025"));
        assert_eq!(j["ItemList"][0]["Unit"], json!("NOS"));
        assert_eq!(j["ItemList"][0]["IsServc"], json!("N"));
        assert_eq!(j["ItemList"][0]["AssAmt"], json!(24050.0));
        assert_eq!(j["ItemList"][0]["GstRt"], json!(18));
        assert_eq!(j["ItemList"][0]["Qty"], json!(40));
        assert!(j["ItemList"][0].get("Discount").is_none(), "blank optional number dropped");
        assert_eq!(j["ValDtls"]["TotInvVal"], json!(39441.5));
        // Unknown fields and free text pass through untouched.
        assert_eq!(j["CustomField"], json!({"keep": " me "}));
        assert_eq!(j["SellerDtls"]["LglNm"], json!("  Prakash Engineering Works Pvt Ltd "));
        // The IRN follows the upper-cased number, like NIC's uniqueness check.
        let plain = validate_invoice(&sample("b2b-intra-goods"), None, &opts()).unwrap();
        assert_eq!(ok.key().irn(), plain.key().irn());
        assert_eq!(ok.key().doc_number.as_str(), "smp/0001");
    }

    // ---- shape ------------------------------------------------------------------

    #[test]
    fn root_must_be_an_object() {
        for v in [json!([]), json!("x"), json!(null), json!(1), json!(true)] {
            expect(&v, &[("", "INVALID_TYPE")]);
        }
    }

    #[test]
    fn version() {
        broken("b2b-intra-goods", |v| set(v, "/Version", json!("1.0")), &[("Version", "UNSUPPORTED_VERSION")]);
        broken("b2b-intra-goods", |v| del(v, "/Version"), &[("Version", "REQUIRED")]);
        broken("b2b-intra-goods", |v| set(v, "/Version", json!(1.1)), &[("Version", "INVALID_TYPE")]);
    }

    #[test]
    fn required_sections() {
        for s in ["TranDtls", "DocDtls", "SellerDtls", "BuyerDtls", "ItemList", "ValDtls"] {
            broken("b2b-intra-goods", |v| del(v, &format!("/{s}")), &[(s, "REQUIRED")]);
            broken("b2b-intra-goods", |v| set(v, &format!("/{s}"), json!(null)), &[(s, "REQUIRED")]);
        }
    }

    #[test]
    fn section_of_wrong_type() {
        for s in ["TranDtls", "DocDtls", "SellerDtls", "BuyerDtls", "ItemList", "ValDtls", "ShipDtls", "ExpDtls"] {
            broken("b2b-intra-goods", |v| set(v, &format!("/{s}"), json!("oops")), &[(s, "INVALID_TYPE")]);
        }
        broken("b2b-intra-goods", |v| set(v, "/ItemList", json!({})), &[("ItemList", "INVALID_TYPE")]);
        broken("b2b-intra-goods", |v| set(v, "/ItemList/1", json!(42)), &[("ItemList[1]", "INVALID_TYPE")]);
    }

    #[test]
    fn required_fields() {
        let cases: &[(&str, &str)] = &[
            ("/TranDtls/TaxSch", "TranDtls.TaxSch"),
            ("/TranDtls/SupTyp", "TranDtls.SupTyp"),
            ("/DocDtls/Typ", "DocDtls.Typ"),
            ("/DocDtls/No", "DocDtls.No"),
            ("/DocDtls/Dt", "DocDtls.Dt"),
            ("/SellerDtls/Gstin", "SellerDtls.Gstin"),
            ("/SellerDtls/LglNm", "SellerDtls.LglNm"),
            ("/SellerDtls/Addr1", "SellerDtls.Addr1"),
            ("/SellerDtls/Loc", "SellerDtls.Loc"),
            ("/SellerDtls/Pin", "SellerDtls.Pin"),
            ("/SellerDtls/Stcd", "SellerDtls.Stcd"),
            ("/BuyerDtls/Gstin", "BuyerDtls.Gstin"),
            ("/BuyerDtls/LglNm", "BuyerDtls.LglNm"),
            ("/BuyerDtls/Pos", "BuyerDtls.Pos"),
            ("/BuyerDtls/Addr1", "BuyerDtls.Addr1"),
            ("/BuyerDtls/Loc", "BuyerDtls.Loc"),
            ("/BuyerDtls/Pin", "BuyerDtls.Pin"),
            ("/BuyerDtls/Stcd", "BuyerDtls.Stcd"),
            ("/ItemList/1/SlNo", "ItemList[1].SlNo"),
            ("/ItemList/1/IsServc", "ItemList[1].IsServc"),
            ("/ItemList/1/HsnCd", "ItemList[1].HsnCd"),
            ("/ItemList/1/UnitPrice", "ItemList[1].UnitPrice"),
            ("/ItemList/1/TotAmt", "ItemList[1].TotAmt"),
            ("/ItemList/1/AssAmt", "ItemList[1].AssAmt"),
            ("/ItemList/1/GstRt", "ItemList[1].GstRt"),
            ("/ItemList/1/TotItemVal", "ItemList[1].TotItemVal"),
            ("/ValDtls/AssVal", "ValDtls.AssVal"),
            ("/ValDtls/TotInvVal", "ValDtls.TotInvVal"),
        ];
        for (ptr, path) in cases {
            broken("b2b-intra-goods", |v| del(v, ptr), &[(path, "REQUIRED")]);
            // Blank text (or a blank numeric string) counts as missing too.
            broken("b2b-intra-goods", |v| set(v, ptr, json!("  ")), &[(path, "REQUIRED")]);
        }
    }

    #[test]
    fn field_types() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/SellerDtls/LglNm", json!(12345)),
            &[("SellerDtls.LglNm", "INVALID_TYPE")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/AssAmt", json!(true)),
            &[("ItemList[0].AssAmt", "INVALID_TYPE")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/AssAmt", json!("24,050")),
            &[("ItemList[0].AssAmt", "INVALID_TYPE")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/CgstAmt", json!("1e3")),
            &[("ItemList[0].CgstAmt", "INVALID_TYPE")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/HsnCd", json!(73079190)),
            &[("ItemList[0].HsnCd", "INVALID_TYPE")],
        );
        broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Stcd", json!(29)), &[("SellerDtls.Stcd", "INVALID_TYPE")]);
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ValDtls/RndOffAmt", json!([0])),
            &[("ValDtls.RndOffAmt", "INVALID_TYPE")],
        );
    }

    #[test]
    fn negative_amounts() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ValDtls/Discount", json!(-5)),
            &[("ValDtls.Discount", "NEGATIVE_VALUE")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/Qty", json!("-40")),
            &[("ItemList[0].Qty", "NEGATIVE_VALUE")],
        );
    }

    #[test]
    fn text_lengths() {
        broken("b2b-intra-goods", |v| set(v, "/SellerDtls/LglNm", json!("AB")), &[("SellerDtls.LglNm", "TEXT_LENGTH")]);
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Addr1", json!("x".repeat(101))),
            &[("BuyerDtls.Addr1", "TEXT_LENGTH")],
        );
        broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Ph", json!("123")), &[("SellerDtls.Ph", "TEXT_LENGTH")]);
    }

    // ---- transaction ------------------------------------------------------------

    #[test]
    fn tax_scheme() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/TranDtls/TaxSch", json!("VAT")),
            &[("TranDtls.TaxSch", "INVALID_TAX_SCHEME")],
        );
    }

    #[test]
    fn supply_type() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/TranDtls/SupTyp", json!("B2C")),
            &[("TranDtls.SupTyp", "INVALID_SUPPLY_TYPE")],
        );
    }

    #[test]
    fn yes_no_flags() {
        broken("b2b-intra-goods", |v| set(v, "/TranDtls/RegRev", json!("X")), &[("TranDtls.RegRev", "INVALID_FLAG")]);
        broken(
            "b2b-intra-goods",
            |v| set(v, "/TranDtls/IgstOnIntra", json!("yes")),
            &[("TranDtls.IgstOnIntra", "INVALID_FLAG")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/IsServc", json!("G")),
            &[("ItemList[0].IsServc", "INVALID_FLAG")],
        );
        broken("export-with-payment", |v| set(v, "/ExpDtls/RefClm", json!("0")), &[("ExpDtls.RefClm", "INVALID_FLAG")]);
        // Optional flags may be left out.
        broken(
            "b2b-intra-goods",
            |v| {
                del(v, "/TranDtls/RegRev");
                del(v, "/TranDtls/IgstOnIntra");
                set(v, "/TranDtls/IgstOnIntra", json!(""))
            },
            &[],
        );
    }

    // ---- document -------------------------------------------------------------

    #[test]
    fn doc_type() {
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/Typ", json!("BIL")), &[("DocDtls.Typ", "INVALID_DOC_TYPE")]);
    }

    #[test]
    fn doc_number() {
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("0001")), &[("DocDtls.No", "DOC_NUMBER_START")]);
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("/SMP1")), &[("DocDtls.No", "DOC_NUMBER_START")]);
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("-SMP1")), &[("DocDtls.No", "DOC_NUMBER_START")]);
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("SMP_0001")), &[("DocDtls.No", "DOC_NUMBER_CHARS")]);
        broken(
            "b2b-intra-goods",
            |v| set(v, "/DocDtls/No", json!("SMP/2025-26/00001")),
            &[("DocDtls.No", "DOC_NUMBER_LENGTH")],
        );
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("SMP/2025-26/0001")), &[]);
    }

    #[test]
    fn doc_date_format_and_calendar() {
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("2025-04-01")), &[("DocDtls.Dt", "DATE_FORMAT")]);
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("1/4/2025")), &[("DocDtls.Dt", "DATE_FORMAT")]);
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("31/04/2025")), &[("DocDtls.Dt", "DATE_INVALID")]);
    }

    #[test]
    fn doc_date_not_in_future() {
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("16/04/2025")), &[("DocDtls.Dt", "DATE_IN_FUTURE")]);
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("15/04/2025")), &[]);
    }

    #[test]
    fn doc_date_not_before_einvoicing() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/DocDtls/Dt", json!("30/09/2020")),
            &[("DocDtls.Dt", "DATE_BEFORE_EINVOICE_START")],
        );
        broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("01/10/2020")), &[]);
    }

    #[test]
    fn doc_date_reporting_window() {
        let v = sample("b2b-intra-goods"); // dated 01/04/2025
        let mut o = opts();
        o.reporting_window_days = Some(30);
        o.today = ymd(2025, 5, 1); // exactly 30 days later: still fine
        expect_with(&v, None, &o, &[]);
        o.today = ymd(2025, 5, 2);
        expect_with(&v, None, &o, &[("DocDtls.Dt", "DATE_OUTSIDE_REPORTING_WINDOW")]);
        o.reporting_window_days = None;
        expect_with(&v, None, &o, &[]);
    }

    // ---- parties --------------------------------------------------------------

    #[test]
    fn gstin_check_digit() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/SellerDtls/Gstin", json!("29AAGCP4821K1Z4")),
            &[("SellerDtls.Gstin", "GSTIN_CHECK_DIGIT")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Gstin", json!("29AADCT5519H1Z5")),
            &[("BuyerDtls.Gstin", "GSTIN_CHECK_DIGIT")],
        );
    }

    #[test]
    fn gstin_format_and_state() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Gstin", json!("29AADCT5519H1Z")),
            &[("BuyerDtls.Gstin", "GSTIN_FORMAT")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Gstin", json!("29AADCT5519H1@4")),
            &[("BuyerDtls.Gstin", "GSTIN_FORMAT")],
        );
        // A seller can never be URP.
        broken(
            "b2b-intra-goods",
            |v| set(v, "/SellerDtls/Gstin", json!("URP")),
            &[("SellerDtls.Gstin", "GSTIN_FORMAT")],
        );
        let mut g = String::from("28AADCT5519H1Z");
        g.push(crate::domain::gstin::check_digit(&g).unwrap());
        broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Gstin", json!(g)), &[("BuyerDtls.Gstin", "GSTIN_STATE_CODE")]);
    }

    #[test]
    fn other_gstins_are_checked() {
        broken(
            "b2b-inter-goods-ewb",
            |v| set(v, "/EwbDtls/TransId", json!("27AABCV9876P1Z8")),
            &[("EwbDtls.TransId", "GSTIN_CHECK_DIGIT")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/TranDtls/EcmGstin", json!("29AAGCP4821K1C")),
            &[("TranDtls.EcmGstin", "GSTIN_FORMAT")],
        );
        let ship = json!({"Gstin": "29AADCT5519H1Z5", "LglNm": "Tumkur Auto Components Ltd", "Addr1": "Plant 2", "Loc": "Tumakuru", "Pin": 572106, "Stcd": "29"});
        broken("b2b-intra-goods", |v| set(v, "/ShipDtls", ship), &[("ShipDtls.Gstin", "GSTIN_CHECK_DIGIT")]);
    }

    #[test]
    fn sandbox_gstins_need_relaxed_mode() {
        let mut v = sample("b2b-inter-services");
        set(&mut v, "/SellerDtls/Gstin", json!("29AWGPV7107B1Z1"));
        set(&mut v, "/BuyerDtls/Gstin", json!("36AMBPG7773M002"));
        set(&mut v, "/BuyerDtls/Stcd", json!("36"));
        set(&mut v, "/BuyerDtls/Pos", json!("36"));
        set(&mut v, "/BuyerDtls/Pin", json!(500032));
        expect(&v, &[("SellerDtls.Gstin", "GSTIN_CHECK_DIGIT"), ("BuyerDtls.Gstin", "GSTIN_FORMAT")]);
        let o = ValidationOptions { relaxed_gstin_check_digit: true, ..opts() };
        expect_with(&v, Some("29AWGPV7107B1Z1"), &o, &[]);
    }

    #[test]
    fn seller_gstin_must_match_envelope() {
        let v = sample("b2b-intra-goods");
        expect_with(&v, Some("27AAKFU7303M1ZP"), &opts(), &[("SellerDtls.Gstin", "SELLER_GSTIN_MISMATCH")]);
        expect_with(&v, Some("29aagcp4821k1z3"), &opts(), &[]);
    }

    #[test]
    fn urp_only_for_exports() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Gstin", json!("URP")),
            &[("BuyerDtls.Gstin", "URP_NOT_ALLOWED")],
        );
        broken(
            "sez-without-payment",
            |v| set(v, "/BuyerDtls/Gstin", json!("urp")),
            &[("BuyerDtls.Gstin", "URP_NOT_ALLOWED")],
        );
        // EXPWOP is an export too (with IGST 0 under LUT).
        broken(
            "export-with-payment",
            |v| {
                set(v, "/TranDtls/SupTyp", json!("EXPWOP"));
                set(v, "/ItemList/0/IgstAmt", json!(0));
                set(v, "/ItemList/0/TotItemVal", json!(820000));
                set(v, "/ValDtls/IgstVal", json!(0));
                set(v, "/ValDtls/TotInvVal", json!(820000));
            },
            &[],
        );
    }

    #[test]
    fn gstin_state_must_match_stcd() {
        // Telangana (36) has no PIN mapping, so only the GSTIN/state rule fires.
        broken(
            "b2b-inter-services",
            |v| set(v, "/SellerDtls/Stcd", json!("36")),
            &[("SellerDtls.Stcd", "GSTIN_STATE_MISMATCH")],
        );
        broken(
            "b2b-inter-goods-ewb",
            |v| set(v, "/BuyerDtls/Stcd", json!("36")),
            &[("BuyerDtls.Stcd", "GSTIN_STATE_MISMATCH")],
        );
        // Not for an export buyer, whose address is abroad.
        broken("export-with-payment", |v| set(v, "/BuyerDtls/Gstin", json!("33AAFCR6612L1ZA")), &[]);
    }

    #[test]
    fn seller_and_buyer_differ() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Gstin", json!("29AAGCP4821K1Z3")),
            &[("BuyerDtls.Gstin", "SAME_SELLER_BUYER")],
        );
    }

    #[test]
    fn state_codes() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/SellerDtls/Stcd", json!("28")),
            &[("SellerDtls.Stcd", "INVALID_STATE_CODE")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Pos", json!("00")),
            &[("BuyerDtls.Pos", "INVALID_STATE_CODE")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/BuyerDtls/Stcd", json!("Karnataka")),
            &[("BuyerDtls.Stcd", "INVALID_STATE_CODE")],
        );
    }

    #[test]
    fn pin_format() {
        broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Pin", json!(56005)), &[("SellerDtls.Pin", "PIN_FORMAT")]);
        broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Pin", json!("056005")), &[("SellerDtls.Pin", "PIN_FORMAT")]);
        broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Pin", json!(572128.5)), &[("BuyerDtls.Pin", "PIN_FORMAT")]);
        broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Pin", json!(1_000_000)), &[("BuyerDtls.Pin", "PIN_FORMAT")]);
        broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Pin", json!("57212A")), &[("BuyerDtls.Pin", "INVALID_TYPE")]);
    }

    #[test]
    fn pin_must_fit_state() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/SellerDtls/Pin", json!(400001)),
            &[("SellerDtls.Pin", "PIN_STATE_MISMATCH")],
        );
        broken(
            "b2b-inter-goods-ewb",
            |v| set(v, "/BuyerDtls/Pin", json!(560001)),
            &[("BuyerDtls.Pin", "PIN_STATE_MISMATCH")],
        );
        // A foreign PIN 999999 is not fine for an Indian seller.
        broken(
            "export-with-payment",
            |v| set(v, "/SellerDtls/Pin", json!(999999)),
            &[("SellerDtls.Pin", "PIN_STATE_MISMATCH")],
        );
    }

    #[test]
    fn dispatch_and_ship_to() {
        let disp = json!({"Nm": "Prakash Works Unit 2", "Addr1": "Plot 7, Bommasandra", "Loc": "Bengaluru", "Pin": 560099, "Stcd": "29"});
        let ship = json!({"Gstin": "29AADCT5519H1Z4", "LglNm": "Tumkur Auto Components Ltd", "Addr1": "Plant 2", "Loc": "Tumakuru", "Pin": "572106", "Stcd": "29"});
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/DispDtls", disp.clone());
                set(v, "/ShipDtls", ship.clone())
            },
            &[],
        );
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/DispDtls", disp.clone());
                set(v, "/DispDtls/Pin", json!(110001))
            },
            &[("DispDtls.Pin", "PIN_STATE_MISMATCH")],
        );
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ShipDtls", ship.clone());
                set(v, "/ShipDtls/Stcd", json!("07"))
            },
            &[("ShipDtls.Pin", "PIN_STATE_MISMATCH")],
        );
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ShipDtls", ship.clone());
                set(v, "/ShipDtls/Stcd", json!("77"))
            },
            &[("ShipDtls.Stcd", "INVALID_STATE_CODE")],
        );
        // An unregistered ship-to address is fine even on B2B.
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ShipDtls", ship.clone());
                set(v, "/ShipDtls/Gstin", json!("URP"))
            },
            &[],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/DispDtls", json!({})),
            &[
                ("DispDtls.Nm", "REQUIRED"),
                ("DispDtls.Addr1", "REQUIRED"),
                ("DispDtls.Loc", "REQUIRED"),
                ("DispDtls.Pin", "REQUIRED"),
                ("DispDtls.Stcd", "REQUIRED"),
            ],
        );
    }

    #[test]
    fn export_buyer_abroad() {
        // Stcd/Pos 96 and PIN 999999 are how a foreign buyer is written.
        broken("export-with-payment", |v| set(v, "/BuyerDtls/Pos", json!("96")), &[]);
        broken(
            "export-with-payment",
            |v| set(v, "/ExpDtls/CntCode", json!("DEU")),
            &[("ExpDtls.CntCode", "INVALID_COUNTRY_CODE")],
        );
        broken(
            "export-with-payment",
            |v| set(v, "/ExpDtls/ForCur", json!("EURO")),
            &[("ExpDtls.ForCur", "INVALID_CURRENCY")],
        );
        broken(
            "export-with-payment",
            |v| set(v, "/ExpDtls/ShipBDt", json!("2025/04/01")),
            &[("ExpDtls.ShipBDt", "DATE_FORMAT")],
        );
        // ExpDtls is optional, and codes are upper-cased.
        broken("export-with-payment", |v| del(v, "/ExpDtls"), &[]);
        let mut v = sample("export-with-payment");
        set(&mut v, "/ExpDtls/CntCode", json!("de"));
        let ok = validate_invoice(&v, None, &opts()).unwrap();
        assert_eq!(ok.irp_json()["ExpDtls"]["CntCode"], json!("DE"));
    }

    #[test]
    fn other_dates_must_be_well_formed() {
        broken(
            "b2b-inter-goods-ewb",
            |v| set(v, "/EwbDtls/TransDocDt", json!("32/01/2025")),
            &[("EwbDtls.TransDocDt", "DATE_INVALID")],
        );
        broken(
            "credit-note",
            |v| set(v, "/RefDtls/PrecDocDtls/0/InvDt", json!("2025-04-01")),
            &[("RefDtls.PrecDocDtls[0].InvDt", "DATE_FORMAT")],
        );
    }

    // ---- items -----------------------------------------------------------------

    #[test]
    fn item_count() {
        broken("b2b-intra-goods", |v| set(v, "/ItemList", json!([])), &[("ItemList", "ITEM_COUNT")]);
        let v = sample("b2b-intra-goods");
        let o = ValidationOptions { max_items: 1, ..opts() };
        expect_with(&v, None, &o, &[("ItemList", "ITEM_COUNT")]);
        let o = ValidationOptions { max_items: 2, ..opts() };
        expect_with(&v, None, &o, &[]);
    }

    #[test]
    fn serial_numbers() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/1/SlNo", json!("1")),
            &[("ItemList[1].SlNo", "DUPLICATE_SLNO")],
        );
        broken("b2b-intra-goods", |v| set(v, "/ItemList/1/SlNo", json!("A2")), &[("ItemList[1].SlNo", "SLNO_FORMAT")]);
        broken("b2b-intra-goods", |v| set(v, "/ItemList/1/SlNo", json!(2)), &[("ItemList[1].SlNo", "INVALID_TYPE")]);
    }

    #[test]
    fn hsn_format() {
        for bad in ["7307919", "73", "7307919A", "730791900"] {
            broken(
                "b2b-intra-goods",
                |v| set(v, "/ItemList/0/HsnCd", json!(bad)),
                &[("ItemList[0].HsnCd", "HSN_FORMAT")],
            );
        }
        for good in ["7307", "730791", "73079190"] {
            broken("b2b-intra-goods", |v| set(v, "/ItemList/0/HsnCd", json!(good)), &[]);
        }
    }

    #[test]
    fn hsn_matches_service_flag() {
        broken(
            "b2b-inter-services",
            |v| set(v, "/ItemList/0/HsnCd", json!("84839000")),
            &[("ItemList[0].HsnCd", "HSN_SERVICE_MISMATCH")],
        );
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/HsnCd", json!("998719")),
            &[("ItemList[0].HsnCd", "HSN_SERVICE_MISMATCH")],
        );
    }

    #[test]
    fn goods_need_quantity_and_unit() {
        broken("b2b-intra-goods", |v| del(v, "/ItemList/0/Qty"), &[("ItemList[0].Qty", "REQUIRED")]);
        broken("b2b-intra-goods", |v| del(v, "/ItemList/0/Unit"), &[("ItemList[0].Unit", "REQUIRED")]);
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/Unit", json!("PIECES")),
            &[("ItemList[0].Unit", "INVALID_UNIT")],
        );
        // Services may have neither, but a unit given must still be valid.
        broken(
            "b2b-inter-services",
            |v| set(v, "/ItemList/0/Unit", json!("HRS")),
            &[("ItemList[0].Unit", "INVALID_UNIT")],
        );
        broken("b2b-inter-services", |v| set(v, "/ItemList/0/Unit", json!("oth")), &[]);
    }

    #[test]
    fn gst_rate_master() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/1/GstRt", json!(2)),
            &[("ItemList[1].GstRt", "INVALID_GST_RATE")],
        );
        let v = sample("b2b-intra-goods");
        let o = ValidationOptions { allowed_gst_rates: vec![0.0, 5.0], ..opts() };
        expect_with(
            &v,
            None,
            &o,
            &[("ItemList[0].GstRt", "INVALID_GST_RATE"), ("ItemList[1].GstRt", "INVALID_GST_RATE")],
        );
        // 40% (GST 2.0) is in the default master.
        broken(
            "b2b-inter-services",
            |v| {
                set(v, "/ItemList/0/GstRt", json!(40));
                set(v, "/ItemList/0/IgstAmt", json!(74000));
                set(v, "/ItemList/0/TotItemVal", json!(259000));
                set(v, "/ValDtls/IgstVal", json!(74000));
                set(v, "/ValDtls/TotInvVal", json!(259000));
            },
            &[],
        );
    }

    #[test]
    fn assessable_amount() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/Discount", json!(400)),
            &[("ItemList[0].AssAmt", "ASSAMT_MISMATCH")],
        );
        broken("b2b-intra-goods", |v| set(v, "/ItemList/0/Discount", json!(450.05)), &[]);
    }

    #[test]
    fn igst_only_supplies_take_no_cgst_sgst() {
        // Small enough to stay inside the total tolerances: only the split rule fires.
        broken(
            "b2b-inter-services",
            |v| set(v, "/ItemList/0/CgstAmt", json!(0.5)),
            &[("ItemList[0].CgstAmt", "CGST_SGST_NOT_ALLOWED")],
        );
        broken(
            "sez-without-payment",
            |v| set(v, "/ItemList/0/SgstAmt", json!(0.5)),
            &[("ItemList[0].SgstAmt", "CGST_SGST_NOT_ALLOWED")],
        );
    }

    #[test]
    fn intra_state_takes_no_igst() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/0/IgstAmt", json!(0.5)),
            &[("ItemList[0].IgstAmt", "IGST_NOT_ALLOWED")],
        );
        // …unless IgstOnIntra=Y says IGST is really due.
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/TranDtls/IgstOnIntra", json!("Y"));
                for (i, igst) in [(0, 4329.0), (1, 1687.5)] {
                    set(v, &format!("/ItemList/{i}/IgstAmt"), json!(igst));
                    set(v, &format!("/ItemList/{i}/CgstAmt"), json!(0));
                    set(v, &format!("/ItemList/{i}/SgstAmt"), json!(0));
                }
                set(v, "/ValDtls/CgstVal", json!(0));
                set(v, "/ValDtls/SgstVal", json!(0));
                set(v, "/ValDtls/IgstVal", json!(6016.5));
            },
            &[],
        );
    }

    #[test]
    fn igst_amount_follows_rate() {
        let fix = |v: &mut Value, igst: f64| {
            set(v, "/ItemList/0/IgstAmt", json!(igst));
            set(v, "/ItemList/0/TotItemVal", json!(185000.0 + igst));
            set(v, "/ValDtls/IgstVal", json!(igst));
            set(v, "/ValDtls/TotInvVal", json!(185000.0 + igst));
        };
        broken("b2b-inter-services", |v| fix(v, 33000.0), &[("ItemList[0].IgstAmt", "IGST_MISMATCH")]);
        broken("b2b-inter-services", |v| fix(v, 33300.9), &[]);
        // Export with payment must carry the IGST…
        broken(
            "export-with-payment",
            |v| {
                set(v, "/ItemList/0/IgstAmt", json!(0));
                set(v, "/ItemList/0/TotItemVal", json!(820000));
                set(v, "/ValDtls/IgstVal", json!(0));
                set(v, "/ValDtls/TotInvVal", json!(820000));
            },
            &[("ItemList[0].IgstAmt", "IGST_MISMATCH")],
        );
        // …without payment (LUT), an IGST of 0 is not checked against the rate.
        broken("sez-without-payment", |v| set(v, "/ItemList/0/GstRt", json!(18)), &[]);
    }

    #[test]
    fn notes_skip_rate_checks() {
        broken(
            "debit-note",
            |v| {
                set(v, "/ItemList/0/IgstAmt", json!(500));
                set(v, "/ItemList/0/TotItemVal", json!(4700));
                set(v, "/ValDtls/IgstVal", json!(500));
                set(v, "/ValDtls/TotInvVal", json!(4700));
            },
            &[],
        );
        // The same on an invoice is an error.
        broken(
            "debit-note",
            |v| {
                set(v, "/DocDtls/Typ", json!("INV"));
                set(v, "/ItemList/0/IgstAmt", json!(500));
                set(v, "/ItemList/0/TotItemVal", json!(4700));
                set(v, "/ValDtls/IgstVal", json!(500));
                set(v, "/ValDtls/TotInvVal", json!(4700));
            },
            &[("ItemList[0].IgstAmt", "IGST_MISMATCH")],
        );
    }

    #[test]
    fn cgst_sgst_follow_half_rate() {
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ItemList/0/CgstAmt", json!(2000));
                set(v, "/ItemList/0/SgstAmt", json!(2000));
                set(v, "/ItemList/0/TotItemVal", json!(28050));
                set(v, "/ValDtls/CgstVal", json!(2843.75));
                set(v, "/ValDtls/SgstVal", json!(2843.75));
                set(v, "/ValDtls/TotInvVal", json!(39112.5));
            },
            &[("ItemList[0].CgstAmt", "CGST_MISMATCH"), ("ItemList[0].SgstAmt", "SGST_MISMATCH")],
        );
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ItemList/0/SgstAmt", json!(2170));
                set(v, "/ItemList/0/TotItemVal", json!(28384.5));
                set(v, "/ValDtls/SgstVal", json!(3013.75));
                set(v, "/ValDtls/TotInvVal", json!(39447));
            },
            &[("ItemList[0].SgstAmt", "SGST_MISMATCH")],
        );
    }

    #[test]
    fn cgst_equals_sgst() {
        // Within the per-line tolerance of the rate, but still unequal.
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ItemList/1/SgstAmt", json!(844.25)),
            &[("ItemList[1].SgstAmt", "CGST_SGST_UNEQUAL")],
        );
        // On a credit note (no rate check) the equality still holds.
        broken(
            "credit-note",
            |v| {
                set(v, "/ItemList/0/CgstAmt", json!(225));
                set(v, "/ItemList/0/TotItemVal", json!(2895.5));
                set(v, "/ValDtls/CgstVal", json!(225));
                set(v, "/ValDtls/TotInvVal", json!(2895.5));
            },
            &[("ItemList[0].SgstAmt", "CGST_SGST_UNEQUAL")],
        );
    }

    #[test]
    fn cess_follows_rate() {
        let cess = |v: &mut Value, amt: f64| {
            set(v, "/ItemList/1/CesRt", json!(1));
            set(v, "/ItemList/1/CesAmt", json!(amt));
            set(v, "/ItemList/1/TotItemVal", json!(11062.5 + amt));
            set(v, "/ValDtls/CesVal", json!(amt));
            set(v, "/ValDtls/TotInvVal", json!(39441.5 + amt));
        };
        broken("b2b-intra-goods", |v| cess(v, 50.0), &[("ItemList[1].CesAmt", "CESS_MISMATCH")]);
        broken("b2b-intra-goods", |v| cess(v, 93.75), &[]);
    }

    #[test]
    fn item_total() {
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ItemList/0/TotItemVal", json!(28390));
                set(v, "/ValDtls/TotInvVal", json!(39452.5));
            },
            &[("ItemList[0].TotItemVal", "TOTITEMVAL_MISMATCH")],
        );
        // Other charges and state cess count towards the item total.
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ItemList/0/OthChrg", json!(11));
                set(v, "/ItemList/0/StateCesAmt", json!(10));
                set(v, "/ItemList/0/TotItemVal", json!(28400));
                set(v, "/ValDtls/StCesVal", json!(10));
                set(v, "/ValDtls/TotInvVal", json!(39462.5));
            },
            &[],
        );
        // Under reverse charge the item total may exclude tax.
        broken(
            "b2b-inter-services",
            |v| {
                set(v, "/TranDtls/RegRev", json!("Y"));
                set(v, "/ItemList/0/TotItemVal", json!(185000));
                set(v, "/ValDtls/TotInvVal", json!(185000));
            },
            &[],
        );
        broken(
            "b2b-inter-services",
            |v| {
                set(v, "/ItemList/0/TotItemVal", json!(185000));
                set(v, "/ValDtls/TotInvVal", json!(185000));
            },
            &[("ItemList[0].TotItemVal", "TOTITEMVAL_MISMATCH")],
        );
    }

    // ---- totals ------------------------------------------------------------------

    #[test]
    fn value_sums() {
        let cases: &[(&str, &str, &str)] = &[
            ("b2b-intra-goods", "AssVal", "ASSVAL_MISMATCH"),
            ("b2b-intra-goods", "CgstVal", "CGSTVAL_MISMATCH"),
            ("b2b-intra-goods", "SgstVal", "SGSTVAL_MISMATCH"),
            ("b2b-inter-goods-ewb", "IgstVal", "IGSTVAL_MISMATCH"),
            ("b2b-intra-goods", "CesVal", "CESVAL_MISMATCH"),
            ("b2b-intra-goods", "StCesVal", "STCESVAL_MISMATCH"),
        ];
        for (name, key, c) in cases {
            let ptr = format!("/ValDtls/{key}");
            let mut v = sample(name);
            let now = v.pointer(&ptr).and_then(Value::as_f64).unwrap();
            set(&mut v, &ptr, json!(now + 5.0));
            expect(&v, &[(&format!("ValDtls.{key}"), c)]);
            // Inside the tolerance is fine.
            set(&mut v, &ptr, json!(now + 0.99));
            expect(&v, &[]);
        }
        // An absent total counts as 0.
        broken("b2b-intra-goods", |v| del(v, "/ValDtls/CgstVal"), &[("ValDtls.CgstVal", "CGSTVAL_MISMATCH")]);
    }

    #[test]
    fn round_off_range() {
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ValDtls/RndOffAmt", json!(100));
                set(v, "/ValDtls/TotInvVal", json!(39541.5));
            },
            &[("ValDtls.RndOffAmt", "RNDOFF_RANGE")],
        );
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ValDtls/RndOffAmt", json!(-99.99));
                set(v, "/ValDtls/TotInvVal", json!(39341.51));
            },
            &[],
        );
    }

    #[test]
    fn invoice_total() {
        broken(
            "b2b-intra-goods",
            |v| set(v, "/ValDtls/TotInvVal", json!(39446.5)),
            &[("ValDtls.TotInvVal", "TOTINVVAL_MISMATCH")],
        );
        broken("b2b-intra-goods", |v| set(v, "/ValDtls/TotInvVal", json!(39442.4)), &[]);
        broken(
            "b2b-intra-goods",
            |v| {
                set(v, "/ValDtls/OthChrg", json!(100));
                set(v, "/ValDtls/Discount", json!(50));
                set(v, "/ValDtls/TotInvVal", json!(39491.5));
            },
            &[],
        );
        let v = sample("b2b-intra-goods");
        let o = ValidationOptions { total_tolerance: 0.0, ..opts() };
        expect_with(&v, None, &o, &[]);
    }

    // ---- many at once ------------------------------------------------------------

    #[test]
    fn reports_every_problem() {
        let mut v = sample("b2b-intra-goods");
        set(&mut v, "/Version", json!("1.0"));
        set(&mut v, "/DocDtls/No", json!("0SMP"));
        set(&mut v, "/DocDtls/Dt", json!("16/04/2025"));
        set(&mut v, "/SellerDtls/Pin", json!(400001));
        set(&mut v, "/BuyerDtls/Gstin", json!("29AADCT5519H1Z5"));
        set(&mut v, "/ItemList/0/HsnCd", json!("123"));
        set(&mut v, "/ItemList/0/Unit", json!("XYZ"));
        set(&mut v, "/ItemList/1/SlNo", json!("1"));
        set(&mut v, "/ItemList/1/Discount", json!(1));
        set(&mut v, "/ValDtls/TotInvVal", json!(1));
        expect_with(
            &v,
            Some("27AAKFU7303M1ZP"),
            &opts(),
            &[
                ("Version", "UNSUPPORTED_VERSION"),
                ("DocDtls.No", "DOC_NUMBER_START"),
                ("DocDtls.Dt", "DATE_IN_FUTURE"),
                ("SellerDtls.Pin", "PIN_STATE_MISMATCH"),
                ("SellerDtls.Gstin", "SELLER_GSTIN_MISMATCH"),
                ("BuyerDtls.Gstin", "GSTIN_CHECK_DIGIT"),
                ("ItemList[0].HsnCd", "HSN_FORMAT"),
                ("ItemList[0].Unit", "INVALID_UNIT"),
                ("ItemList[1].SlNo", "DUPLICATE_SLNO"),
                ("ItemList[1].AssAmt", "ASSAMT_MISMATCH"),
                ("ValDtls.TotInvVal", "TOTINVVAL_MISMATCH"),
            ],
        );
    }

    #[test]
    fn messages_name_the_value_and_expectation() {
        let mut v = sample("b2b-intra-goods");
        set(&mut v, "/ItemList/0/Discount", json!(400));
        let p = validate_invoice(&v, None, &opts()).unwrap_err();
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].message,
            "Assessable amount 24050.00 should be total amount 24500.00 minus discount 400.00 = 24100.00."
        );
        let mut v = sample("b2b-intra-goods");
        set(&mut v, "/SellerDtls/Pin", json!(400001));
        let p = validate_invoice(&v, None, &opts()).unwrap_err();
        assert!(p[0].message.contains("400001") && p[0].message.contains("Karnataka"), "{}", p[0].message);
    }

    // ---- cancel ------------------------------------------------------------------

    #[test]
    fn cancel_request() {
        for r in ["1", "2", "3", " 4 "] {
            assert!(validate_cancel(r, "Wrong buyer").is_empty(), "{r}");
        }
        assert!(validate_cancel("1", "").is_empty());
        assert!(validate_cancel("1", &"é".repeat(100)).is_empty());
        let codes = |r: &str, m: &str| -> Vec<(String, String)> {
            validate_cancel(r, m).into_iter().map(|p| (p.path, p.code)).collect()
        };
        assert_eq!(codes("5", "x"), vec![("reason".into(), "INVALID_CANCEL_REASON".into())]);
        assert_eq!(codes("", "x"), vec![("reason".into(), "REQUIRED".into())]);
        assert_eq!(
            codes("0", &"x".repeat(101)),
            vec![("reason".into(), "INVALID_CANCEL_REASON".into()), ("remark".into(), "REMARK_TOO_LONG".into())]
        );
    }

    #[test]
    fn default_options() {
        let o = ValidationOptions::default();
        assert_eq!(o.einvoice_start, ymd(2020, 10, 1));
        assert_eq!(o.max_items, 1000);
        assert_eq!(o.reporting_window_days, None);
        assert!(!o.relaxed_gstin_check_digit);
        assert!(codes::is_allowed_rate(40.0, &o.allowed_gst_rates));
        // India is never more than a day away from UTC.
        let utc = chrono::Utc::now().date_naive();
        assert!((o.today - utc).num_days().abs() <= 1);
    }

    // ---- robustness ----------------------------------------------------------------

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            "[ -~]{0,12}".prop_map(Value::String),
            "\\PC{0,6}".prop_map(Value::String),
            prop::sample::select(vec![
                json!("29"),
                json!("96"),
                json!("URP"),
                json!(""),
                json!("1e999"),
                json!("-0.5"),
                json!("99999999999999999999999"),
                json!(1e308),
                json!(-1e308),
                json!("Y"),
                json!("01/04/2025"),
                json!("31/02/2025"),
                json!("29AAGCP4821K1Z3"),
                json!(999999),
            ]),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[A-Za-z]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every JSON pointer inside `v` (not the root).
    fn pointers(v: &Value, prefix: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let p = format!("{prefix}/{k}");
                    out.push(p.clone());
                    pointers(c, p, out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let p = format!("{prefix}/{i}");
                    out.push(p.clone());
                    pointers(c, p, out);
                }
            }
            _ => {}
        }
    }

    fn mutate(v: &mut Value, delete: bool, at: prop::sample::Index, new: Value) {
        let mut ps = Vec::new();
        pointers(v, String::new(), &mut ps);
        if ps.is_empty() {
            *v = new;
            return;
        }
        let p = &ps[at.index(ps.len())];
        let (parent, key) = p.rsplit_once('/').unwrap_or(("", p));
        match v.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                if delete {
                    m.shift_remove(key);
                } else {
                    m.insert(key.to_string(), new);
                }
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = key.parse::<usize>() {
                    if i < a.len() {
                        if delete {
                            a.remove(i);
                        } else {
                            a[i] = new;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn run_all_modes(v: &Value) {
        for relaxed in [false, true] {
            let o = ValidationOptions { relaxed_gstin_check_digit: relaxed, reporting_window_days: Some(30), ..opts() };
            match validate_invoice(v, Some("29AAGCP4821K1Z3"), &o) {
                Ok(ok) => {
                    // Whatever passed must still pass after normalization (idempotent).
                    assert!(validate_invoice(ok.irp_json(), None, &o).is_ok());
                }
                Err(p) => assert!(!p.is_empty()),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                run_all_modes(&v);
            }
        }

        #[test]
        fn corrupted_sample_text_never_panics(
            which in 0..SAMPLES.len(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = SAMPLES[which].1.as_bytes().to_vec();
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                run_all_modes(&v);
            }
        }

        #[test]
        fn mutated_samples_never_panic(
            which in 0..SAMPLES.len(),
            edits in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>(), arb_json()), 1..5),
        ) {
            let mut v: Value = serde_json::from_str(SAMPLES[which].1).unwrap();
            for (delete, at, new) in edits {
                mutate(&mut v, delete, at, new);
            }
            run_all_modes(&v);
        }

        #[test]
        fn random_json_never_panics(v in arb_json()) {
            run_all_modes(&v);
        }
    }
}
