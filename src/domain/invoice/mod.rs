//! Validation of an IRP e-invoice (schema v1.1) before it is sent.
//!
//! [`validate_invoice`] takes the raw JSON an ERP gave us and either returns a
//! [`ValidInvoice`] (identity, headline values, and the normalized payload to
//! send) or *every* [`Problem`] it found. It implements the pre-submit rules
//! of the IRP: shape and types, GSTINs, states and PINs, document number and
//! date, items, tax split and totals.
//!
//! Layout: [`fields`] is the schema's field table (every field's type, required-ness,
//! length, pattern, decimals and range); `read` applies it to each field read, and
//! `sweep` reads the fields no rule needs. The business rules sit on top by family:
//! `header` (transaction, document), `parties` (GSTINs, states, PINs, ship-to advisory),
//! `arithmetic` (taxes and totals, in [`money`] decimals), `export`, `ewb`.
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
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Number, Value};

use crate::domain::codes::{self, SupplyType};
use crate::domain::document::{DocDate, DocNumber, DocType, DocumentKey};
use crate::domain::gstin::Gstin;
use crate::domain::problem::{code, Problem, Problems};

mod arithmetic;
mod ewb;
mod export;
pub mod fields;
mod header;
pub mod money;
mod parties;
mod read;
mod sweep;

pub use money::{Decimal, ASSAMT_TOLERANCE, RNDOFF_LIMIT};
pub use parties::ShipToRules;

/// The TDS/TCS supplier rule of e-way bills applies from 1 Jan 2026 unless configured otherwise.
pub const TDS_TCS_SUPPLIER_RULE_DEFAULT: ShipToRules =
    ShipToRules::From(match chrono::NaiveDate::from_ymd_opt(2026, 1, 1) {
        Some(d) => d,
        None => panic!("a valid date"),
    });
/// The same-PIN distance rule of e-way bills applies from 1 Jun 2026 unless configured otherwise.
pub const SAME_PIN_DISTANCE_RULE_DEFAULT: ShipToRules =
    ShipToRules::From(match chrono::NaiveDate::from_ymd_opt(2026, 6, 1) {
        Some(d) => d,
        None => panic!("a valid date"),
    });
/// The rail document rule applies from 1 Jan 2026 unless configured otherwise.
pub const RAIL_DOC_RULES_DEFAULT: ShipToRules = ShipToRules::From(match chrono::NaiveDate::from_ymd_opt(2026, 1, 1) {
    Some(d) => d,
    None => panic!("a valid date"),
});

/// Maximum length of a cancel remark (`CnlRem`).
pub const CANCEL_REMARK_MAX: usize = 100;

/// Knobs for [`validate_invoice`]. `Default` gives production settings with
/// today's date in India.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationOptions {
    /// Skip the GSTIN check digit (and accept sandbox-shaped GSTINs). Only for
    /// the NIC sandbox, whose test GSTINs fail the check.
    pub relaxed_gstin_check_digit: bool,
    /// The GST rate master (percent). Default [`codes::DEFAULT_GST_RATES`].
    pub allowed_gst_rates: Vec<Decimal>,
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
    /// Allowed gap, in rupees, for invoice-level totals (`ValDtls.*` vs item sums, `TotInvVal`).
    /// Default ₹1, the IRP's allowance.
    pub total_tolerance: Decimal,
    /// Allowed gap, in rupees, per line for tax amounts and `TotItemVal`. Default ₹1.
    pub tax_tolerance: Decimal,
    /// The ship-to rules of GSTN's advisory of 17 Jun 2026 (IRP errors 2323, 2325, and a ship-to
    /// GSTIN with an e-way bill). Reported put on hold on 30 Jul 2026, so off by default.
    pub ship_to_rules: ShipToRules,
    /// The rail transport document rule of NIC's additional validations of 17 Dec 2024, enforced
    /// by January 2026 (e-way bill error 4042): by rail, `TransDocNo` is a railway receipt of 9
    /// digits or a parcel way bill of 10, on generation and every Part-B update or extension.
    /// A dated switch like the ship-to rules; on from 2026-01-01 by default.
    pub rail_doc_rules: ShipToRules,
    /// E-way bills without an IRN: a GSTIN registered for TDS/TCS cannot be the supplier (NIC,
    /// January 2026). On from 2026-01-01 by default.
    pub tds_tcs_supplier_rule: ShipToRules,
    /// E-way bills without an IRN: dispatch and delivery at the same PIN need an explicit distance
    /// (the portal cannot compute it; June 2026). On from 2026-06-01 by default.
    pub same_pin_distance_rule: ShipToRules,
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
            total_tolerance: money::RUPEE,
            tax_tolerance: money::RUPEE,
            ship_to_rules: ShipToRules::Off,
            rail_doc_rules: RAIL_DOC_RULES_DEFAULT,
            tds_tcs_supplier_rule: TDS_TCS_SUPPLIER_RULE_DEFAULT,
            same_pin_distance_rule: SAME_PIN_DISTANCE_RULE_DEFAULT,
        }
    }
}

pub use crate::domain::document::india_today;

/// An invoice that passed every check. Only [`validate_invoice`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidInvoice {
    key: DocumentKey,
    doc_date: DocDate,
    seller_gstin: Gstin,
    buyer_gstin: String,
    supply_type: SupplyType,
    total_invoice_value: Decimal,
    item_count: usize,
    main_hsn: String,
    /// The normalized payload, serialised once: it is sent (to the IRP, to the store) as text,
    /// and a few KB of text is a tenth of the memory its JSON tree takes while a job waits.
    irp_text: Box<str>,
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
    /// `ValDtls.TotInvVal`, exact (the same as [`Self::total_invoice_amount`]).
    pub fn total_invoice_value(&self) -> Decimal {
        self.total_invoice_value
    }
    /// `ValDtls.TotInvVal`, exact.
    pub fn total_invoice_amount(&self) -> Decimal {
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
    /// The normalized payload to send to the IRP, as compact JSON text.
    pub fn irp_text(&self) -> &str {
        &self.irp_text
    }
    /// The normalized payload as a JSON tree (parsed from [`Self::irp_text`] on each call).
    pub fn irp_json(&self) -> Value {
        serde_json::from_str(&self.irp_text).expect("irp_text is serialised JSON")
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
    let mut cx = Ctx { p: Problems::new(), opts, seen: Default::default() };

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
    let ship_dtls = cx.object(root, "", "ShipDtls", false);
    let ship = ship_dtls.map(|m| cx.party(m, "ShipDtls", PartyRole::Ship, is_export));
    cx.cross_party(&seller, &buyer, seller_gstin_hint);
    cx.reverse_charge(&tran);

    let tax = TaxContext::new(&tran, &doc, &seller, &buyer);
    let items = cx.item_list(root, &tax);
    let totals = match cx.object(root, "", "ValDtls", true) {
        Some(m) => cx.val_dtls(m, items.as_deref()),
        None => None,
    };

    match cx.object(root, "", "ExpDtls", false) {
        Some(m) => cx.exp_dtls(m, is_export),
        None => cx.export_needs_details(root, is_export),
    }
    let has_ewb = match cx.object(root, "", "EwbDtls", false) {
        Some(m) => {
            cx.ewb_dtls(m);
            true
        }
        None => false,
    };
    cx.ship_to_rules(&buyer, ship.as_ref(), has_ewb);
    // Every field of the table that no rule above read: formats only, from the table.
    cx.sweep(root, is_export);

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
            Some(b) if b.ass.unwrap_or_default() >= it.ass.unwrap_or_default() => Some(b),
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
        irp_text: json.to_string().into_boxed_str(),
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
    /// A GSTIN was given but is unusable (its problem is already reported).
    gstin_broken: bool,
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
    ass: Option<Decimal>,
    igst: Option<Decimal>,
    cgst: Option<Decimal>,
    sgst: Option<Decimal>,
    /// CesAmt + CesNonAdvlAmt.
    cess: Option<Decimal>,
    /// StateCesAmt + StateCesNonAdvlAmt.
    state_cess: Option<Decimal>,
    tot_item_val: Option<Decimal>,
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
        return key.to_string();
    }
    // Not `format!`: this runs for every field of every invoice.
    let mut path = String::with_capacity(base.len() + 1 + key.len());
    path.push_str(base);
    path.push('.');
    path.push_str(key);
    path
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

/// At most 60 characters of a value, for messages.
fn shorten(t: &str) -> String {
    if t.chars().count() <= 60 {
        t.to_string()
    } else {
        format!("{}…", t.chars().take(60).collect::<String>())
    }
}

struct Ctx<'o> {
    p: Problems,
    opts: &'o ValidationOptions,
    /// Concrete paths a rule has read; [`Ctx::sweep`] reads the rest of the table. FxHash: this
    /// is hashed for every field of every invoice.
    seen: rustc_hash::FxHashSet<String>,
}

#[cfg(test)]
mod tests;
