//! The field table: every field of the e-invoice schema (INV-01 v1.1) with its path, type,
//! required-ness, length, pattern, decimal precision and range, in one place.
//!
//! Source: NIC's published e-invoice JSON Schema for version 1.1 ("GST-India Invoice Document",
//! draft-07; einv-apisandbox.nic.in, *e-Invoice schema*) and the columns of NIC's schema
//! spreadsheet (INV-01: "Max length", "Mandatory", "Decimal (n,m)"). The schema itself is not
//! vendored here: the only copy we could read is inside a third-party repository of unknown
//! licence, so this table restates its facts in our own form. Where the JSON Schema and the
//! spreadsheet differ, the spreadsheet's precision wins (it states the decimals; the JSON Schema
//! only states the maximum, whose decimals agree).
//!
//! The readers in [`super::read`] look every field up here and apply its length, pattern,
//! decimals and range, so no section writes those checks by hand. Fields that no rule reads are
//! read by [`sweep`](super::Ctx::sweep) from this table alone. Business rules (arithmetic, cross-field,
//! state/PIN, supply type) stay hand-written on top, in the sibling modules.

use std::collections::HashMap;

use once_cell::sync::Lazy;
use regex::Regex;

use crate::domain::problem::code;
use crate::domain::transport;

/// The JSON type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Object,
    List,
    Text,
    Number,
}

/// When a field must be present (given that its parent is present).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    Always,
    Optional,
    /// Mandatory on goods lines (`IsServc=N`).
    Goods,
    /// Mandatory for exports (`SupTyp` EXPWP/EXPWOP).
    Export,
    /// Mandatory when the invoice carries `EwbDtls` and the ship-to rules of GSTN's advisory of
    /// 17 Jun 2026 are in force.
    WithEwb,
}

/// Who checks a field's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The table: length, then `pattern` (failure code `code`), decimals and range.
    Schema { code: &'static str },
    /// A `dd/MM/yyyy` date (calendar-checked).
    Date,
    /// `Y`/`N`.
    Flag,
    /// A GSTIN (format, state and check digit).
    Gstin,
    /// An ISO 3166 country code.
    Country,
    /// A hand-written rule with a richer check and its own code (a master list, an enum).
    Rule(&'static str),
}

/// One field of the schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldSpec {
    /// `Section.Field`, with `[]` for a list element: `ItemList[].UnitPrice`.
    pub path: &'static str,
    pub ty: Ty,
    pub req: Req,
    /// Text length in characters (after trimming).
    pub len: Option<(usize, usize)>,
    /// The schema's pattern, when [`Check::Schema`] applies it.
    pub pattern: Option<&'static str>,
    /// Digits allowed after the decimal point (`Decimal(12,3)` → 3).
    pub decimals: Option<u32>,
    /// Inclusive range, as decimal text.
    pub range: Option<(&'static str, &'static str)>,
    pub check: Check,
}

impl FieldSpec {
    /// The field's own name: `UnitPrice` for `ItemList[].UnitPrice`.
    pub fn key(&self) -> &'static str {
        self.path.rsplit('.').next().unwrap_or(self.path)
    }
    /// The parent's template path (`""` for the root).
    pub fn parent(&self) -> &'static str {
        self.path.rsplit_once('.').map(|(p, _)| p.trim_end_matches("[]")).unwrap_or("")
    }
}

/// Free text: the schema forbids a double quote in every free-text field (`^([^\"])*$`).
pub const FREE_TEXT: &str = r#"^[^"]*$"#;
const DATE_PATTERN: &str = r"^[0-3][0-9]/[0-1][0-9]/20[0-9]{2}$";

const fn text(path: &'static str, req: Req, min: usize, max: usize) -> FieldSpec {
    FieldSpec {
        path,
        ty: Ty::Text,
        req,
        len: Some((min, max)),
        pattern: Some(FREE_TEXT),
        decimals: None,
        range: None,
        check: Check::Schema { code: code::TEXT_CHARS },
    }
}
/// An optional `EwbDtls` text under one of [`transport`]'s rules.
const fn transported(path: &'static str, rule: transport::TextRule) -> FieldSpec {
    pat(path, Req::Optional, rule.len.0, rule.len.1, rule.pattern, rule.code)
}
const fn pat(
    path: &'static str,
    req: Req,
    min: usize,
    max: usize,
    pattern: &'static str,
    c: &'static str,
) -> FieldSpec {
    FieldSpec {
        path,
        ty: Ty::Text,
        req,
        len: Some((min, max)),
        pattern: Some(pattern),
        decimals: None,
        range: None,
        check: Check::Schema { code: c },
    }
}
const fn ruled(path: &'static str, req: Req, min: usize, max: usize, check: Check) -> FieldSpec {
    let pattern = match check {
        Check::Date => Some(DATE_PATTERN),
        _ => None,
    };
    FieldSpec { path, ty: Ty::Text, req, len: Some((min, max)), pattern, decimals: None, range: None, check }
}
const fn num(path: &'static str, req: Req, decimals: u32, min: &'static str, max: &'static str) -> FieldSpec {
    FieldSpec {
        path,
        ty: Ty::Number,
        req,
        len: None,
        pattern: None,
        decimals: Some(decimals),
        range: Some((min, max)),
        check: Check::Schema { code: code::VALUE_RANGE },
    }
}
const fn section(path: &'static str, ty: Ty, req: Req) -> FieldSpec {
    FieldSpec { path, ty, req, len: None, pattern: None, decimals: None, range: None, check: Check::Rule("") }
}

use Req::{Always as A, Export as X, Goods as G, Optional as O, WithEwb as W};

const AMT: &str = "999999999999.99"; // Decimal(12,2) per item
const TOTAL: &str = "99999999999999.99"; // Decimal(14,2) per invoice
const RATE: &str = "999.999"; // Decimal(3,3)
const QTY: &str = "9999999999.999"; // Decimal(10,3)
const PRICE: &str = "999999999999.999"; // Decimal(12,3)

/// Party blocks: `Loc` is 50 characters for the seller, 100 for everyone else.
macro_rules! party {
    ($s:literal, $gstin:expr, $loc_max:expr) => {
        [
            ruled(concat!($s, ".Gstin"), $gstin, 3, 15, Check::Gstin),
            text(concat!($s, ".LglNm"), A, 3, 100),
            text(concat!($s, ".TrdNm"), O, 3, 100),
            text(concat!($s, ".Addr1"), A, 1, 100),
            text(concat!($s, ".Addr2"), O, 3, 100),
            text(concat!($s, ".Loc"), A, 3, $loc_max),
            FieldSpec {
                path: concat!($s, ".Pin"),
                ty: Ty::Number,
                req: A,
                len: None,
                pattern: None,
                decimals: Some(0),
                range: Some(("100000", "999999")),
                check: Check::Rule(code::PIN_FORMAT),
            },
            ruled(concat!($s, ".Stcd"), A, 1, 2, Check::Rule(code::INVALID_STATE_CODE)),
        ]
    };
}

const SELLER: &[FieldSpec] = &party!("SellerDtls", A, 50);
const BUYER: &[FieldSpec] = &party!("BuyerDtls", A, 100);
const SHIP: &[FieldSpec] = &party!("ShipDtls", W, 100);

const CONTACT: &[FieldSpec] = &[
    pat("SellerDtls.Ph", O, 6, 12, "^[0-9]{6,12}$", code::PHONE_FORMAT),
    pat("SellerDtls.Em", O, 6, 100, "^[a-zA-Z0-9+_.-]+@[a-zA-Z0-9.-]+$", code::EMAIL_FORMAT),
    pat("BuyerDtls.Ph", O, 6, 12, "^[0-9]{6,12}$", code::PHONE_FORMAT),
    pat("BuyerDtls.Em", O, 6, 100, "^[a-zA-Z0-9+_.-]+@[a-zA-Z0-9.-]+$", code::EMAIL_FORMAT),
    ruled("BuyerDtls.Pos", A, 1, 2, Check::Rule(code::INVALID_STATE_CODE)),
];

const DISPATCH: &[FieldSpec] = &[
    text("DispDtls.Nm", A, 3, 100),
    text("DispDtls.Addr1", A, 1, 100),
    text("DispDtls.Addr2", O, 3, 100),
    text("DispDtls.Loc", A, 3, 100),
    FieldSpec {
        path: "DispDtls.Pin",
        ty: Ty::Number,
        req: A,
        len: None,
        pattern: None,
        decimals: Some(0),
        range: Some(("100000", "999999")),
        check: Check::Rule(code::PIN_FORMAT),
    },
    ruled("DispDtls.Stcd", A, 1, 2, Check::Rule(code::INVALID_STATE_CODE)),
];

const HEADER: &[FieldSpec] = &[
    ruled("Version", A, 1, 6, Check::Rule(code::UNSUPPORTED_VERSION)),
    section("TranDtls", Ty::Object, A),
    ruled("TranDtls.TaxSch", A, 3, 10, Check::Rule(code::INVALID_TAX_SCHEME)),
    ruled("TranDtls.SupTyp", A, 3, 10, Check::Rule(code::INVALID_SUPPLY_TYPE)),
    ruled("TranDtls.RegRev", O, 1, 1, Check::Flag),
    ruled("TranDtls.EcmGstin", O, 15, 15, Check::Gstin),
    ruled("TranDtls.IgstOnIntra", O, 1, 1, Check::Flag),
    section("DocDtls", Ty::Object, A),
    ruled("DocDtls.Typ", A, 3, 3, Check::Rule(code::INVALID_DOC_TYPE)),
    ruled("DocDtls.No", A, 1, 16, Check::Rule(code::DOC_NUMBER_CHARS)),
    ruled("DocDtls.Dt", A, 10, 10, Check::Date),
    section("SellerDtls", Ty::Object, A),
    section("BuyerDtls", Ty::Object, A),
    section("DispDtls", Ty::Object, O),
    section("ShipDtls", Ty::Object, O),
    section("ItemList", Ty::List, A),
    section("ValDtls", Ty::Object, A),
    section("ExpDtls", Ty::Object, O),
    section("EwbDtls", Ty::Object, O),
];

const ITEM: &[FieldSpec] = &[
    ruled("ItemList[].SlNo", A, 1, 6, Check::Rule(code::SLNO_FORMAT)),
    text("ItemList[].PrdDesc", O, 3, 300),
    ruled("ItemList[].IsServc", A, 1, 1, Check::Flag),
    ruled("ItemList[].HsnCd", A, 4, 8, Check::Rule(code::HSN_FORMAT)),
    text("ItemList[].Barcde", O, 3, 30),
    num("ItemList[].Qty", G, 3, "0", QTY),
    num("ItemList[].FreeQty", O, 3, "0", QTY),
    ruled("ItemList[].Unit", G, 3, 8, Check::Rule(code::INVALID_UNIT)),
    num("ItemList[].UnitPrice", A, 3, "0", PRICE),
    num("ItemList[].TotAmt", A, 2, "0", AMT),
    num("ItemList[].Discount", O, 2, "0", AMT),
    num("ItemList[].PreTaxVal", O, 2, "0", AMT),
    num("ItemList[].AssAmt", A, 2, "0", AMT),
    num("ItemList[].GstRt", A, 3, "0", RATE),
    num("ItemList[].IgstAmt", O, 2, "0", AMT),
    num("ItemList[].CgstAmt", O, 2, "0", AMT),
    num("ItemList[].SgstAmt", O, 2, "0", AMT),
    num("ItemList[].CesRt", O, 3, "0", RATE),
    num("ItemList[].CesAmt", O, 2, "0", AMT),
    num("ItemList[].CesNonAdvlAmt", O, 2, "0", AMT),
    num("ItemList[].StateCesRt", O, 3, "0", RATE),
    num("ItemList[].StateCesAmt", O, 2, "0", AMT),
    num("ItemList[].StateCesNonAdvlAmt", O, 2, "0", AMT),
    num("ItemList[].OthChrg", O, 2, "0", AMT),
    num("ItemList[].TotItemVal", A, 2, "0", AMT),
    text("ItemList[].OrdLineRef", O, 1, 50),
    ruled("ItemList[].OrgCntry", O, 2, 2, Check::Country),
    text("ItemList[].PrdSlNo", O, 1, 20),
    section("ItemList[].BchDtls", Ty::Object, O),
    text("ItemList[].BchDtls.Nm", A, 3, 20),
    ruled("ItemList[].BchDtls.ExpDt", O, 10, 10, Check::Date),
    ruled("ItemList[].BchDtls.WrDt", O, 10, 10, Check::Date),
    section("ItemList[].AttribDtls", Ty::List, O),
    text("ItemList[].AttribDtls[].Nm", O, 1, 100),
    text("ItemList[].AttribDtls[].Val", O, 1, 100),
];

const VALUES: &[FieldSpec] = &[
    num("ValDtls.AssVal", A, 2, "0", TOTAL),
    num("ValDtls.CgstVal", O, 2, "0", TOTAL),
    num("ValDtls.SgstVal", O, 2, "0", TOTAL),
    num("ValDtls.IgstVal", O, 2, "0", TOTAL),
    num("ValDtls.CesVal", O, 2, "0", TOTAL),
    num("ValDtls.StCesVal", O, 2, "0", TOTAL),
    num("ValDtls.Discount", O, 2, "0", TOTAL),
    num("ValDtls.OthChrg", O, 2, "0", TOTAL),
    FieldSpec {
        path: "ValDtls.RndOffAmt",
        ty: Ty::Number,
        req: O,
        len: None,
        pattern: None,
        decimals: Some(2),
        range: Some(("-99.99", "99.99")),
        check: Check::Schema { code: code::RNDOFF_RANGE },
    },
    num("ValDtls.TotInvVal", A, 2, "0", TOTAL),
    num("ValDtls.TotInvValFc", O, 2, "0", TOTAL),
];

const OTHERS: &[FieldSpec] = &[
    // Payment
    section("PayDtls", Ty::Object, O),
    text("PayDtls.Nm", O, 1, 100),
    text("PayDtls.AccDet", O, 1, 18),
    text("PayDtls.Mode", O, 1, 18),
    text("PayDtls.FinInsBr", O, 1, 11),
    text("PayDtls.PayTerm", O, 1, 100),
    text("PayDtls.PayInstr", O, 1, 100),
    text("PayDtls.CrTrn", O, 1, 100),
    text("PayDtls.DirDr", O, 1, 100),
    num("PayDtls.CrDay", O, 0, "0", "9999"),
    num("PayDtls.PaidAmt", O, 2, "0", TOTAL),
    num("PayDtls.PaymtDue", O, 2, "0", TOTAL),
    // References
    section("RefDtls", Ty::Object, O),
    text("RefDtls.InvRm", O, 3, 100),
    section("RefDtls.DocPerdDtls", Ty::Object, O),
    ruled("RefDtls.DocPerdDtls.InvStDt", A, 10, 10, Check::Date),
    ruled("RefDtls.DocPerdDtls.InvEndDt", A, 10, 10, Check::Date),
    section("RefDtls.PrecDocDtls", Ty::List, O),
    pat("RefDtls.PrecDocDtls[].InvNo", A, 1, 16, "^[1-9a-zA-Z][0-9a-zA-Z/-]{1,15}$", code::DOC_NUMBER_FORMAT),
    ruled("RefDtls.PrecDocDtls[].InvDt", A, 10, 10, Check::Date),
    text("RefDtls.PrecDocDtls[].OthRefNo", O, 1, 20),
    section("RefDtls.ContrDtls", Ty::List, O),
    text("RefDtls.ContrDtls[].RecAdvRefr", O, 1, 20),
    ruled("RefDtls.ContrDtls[].RecAdvDt", O, 10, 10, Check::Date),
    text("RefDtls.ContrDtls[].TendRefr", O, 1, 20),
    text("RefDtls.ContrDtls[].ContrRefr", O, 1, 20),
    text("RefDtls.ContrDtls[].ExtRefr", O, 1, 20),
    text("RefDtls.ContrDtls[].ProjRefr", O, 1, 20),
    text("RefDtls.ContrDtls[].PORefr", O, 1, 16),
    ruled("RefDtls.ContrDtls[].PORefDt", O, 10, 10, Check::Date),
    // Supporting documents
    section("AddlDocDtls", Ty::List, O),
    text("AddlDocDtls[].Url", O, 3, 100),
    text("AddlDocDtls[].Docs", O, 3, 1000),
    text("AddlDocDtls[].Info", O, 3, 1000),
    // Export
    text("ExpDtls.ShipBNo", O, 1, 20),
    ruled("ExpDtls.ShipBDt", O, 10, 10, Check::Date),
    pat("ExpDtls.Port", O, 2, 10, "^[0-9A-Za-z]{2,10}$", code::PORT_FORMAT),
    ruled("ExpDtls.RefClm", O, 1, 1, Check::Flag),
    ruled("ExpDtls.ForCur", O, 3, 16, Check::Rule(code::INVALID_CURRENCY)),
    ruled("ExpDtls.CntCode", X, 2, 2, Check::Country),
    num("ExpDtls.ExpDuty", O, 2, "0", AMT),
    // E-way bill: the transport rules are `domain::transport`'s, shared with the e-way bill commands.
    ruled("EwbDtls.TransId", O, 15, 15, Check::Gstin),
    text("EwbDtls.TransName", O, transport::TRANS_NAME_LEN.0, transport::TRANS_NAME_LEN.1),
    ruled("EwbDtls.TransMode", O, 1, 1, Check::Rule(code::TRANS_MODE_INVALID)),
    FieldSpec {
        path: "EwbDtls.Distance",
        ty: Ty::Number,
        req: A,
        len: None,
        pattern: None,
        decimals: Some(0),
        range: Some(transport::DISTANCE_RANGE),
        check: Check::Schema { code: code::DISTANCE_OUT_OF_RANGE },
    },
    transported("EwbDtls.TransDocNo", transport::TRANS_DOC_NO),
    ruled("EwbDtls.TransDocDt", O, 10, 10, Check::Date),
    transported("EwbDtls.VehNo", transport::VEHICLE_NO),
    transported("EwbDtls.VehType", transport::VEHICLE_TYPE),
];

/// Every field, in schema order by section.
pub static FIELDS: Lazy<Vec<FieldSpec>> =
    Lazy::new(|| [HEADER, SELLER, BUYER, CONTACT, DISPATCH, SHIP, ITEM, VALUES, OTHERS].concat());

static BY_PATH: Lazy<HashMap<&'static str, &'static FieldSpec>> =
    Lazy::new(|| FIELDS.iter().map(|f| (f.path, f)).collect());

static PATTERNS: Lazy<HashMap<&'static str, Regex>> =
    Lazy::new(|| FIELDS.iter().filter_map(|f| f.pattern).map(|p| (p, Regex::new(p).expect("table pattern"))).collect());

/// The spec of a field, by its template path (`ItemList[].UnitPrice`).
pub fn get(template: &str) -> Option<&'static FieldSpec> {
    BY_PATH.get(template).copied()
}

/// The spec of the field `key` of the section `parent` (a template path), without building the
/// field's path.
pub fn get_child(parent: &str, key: &str) -> Option<&'static FieldSpec> {
    // A list element's template (`ItemList[]`) is its list's section (`ItemList`).
    let section = CHILDREN.get(parent.trim_end_matches("[]"))?;
    section.iter().find(|(k, _)| *k == key).map(|(_, f)| *f)
}

/// The allowed range of a number field as decimals, parsed once: the field's own, or the schema's
/// widest (±99999999999999.99).
pub fn range(spec: Option<&FieldSpec>) -> (crate::domain::invoice::Decimal, crate::domain::invoice::Decimal) {
    type Range = (crate::domain::invoice::Decimal, crate::domain::invoice::Decimal);
    const WIDEST: (&str, &str) = ("-99999999999999.99", "99999999999999.99");
    static PARSED: Lazy<HashMap<(&'static str, &'static str), Range>> = Lazy::new(|| {
        let parse = |t: &str| crate::domain::invoice::money::parse(t).unwrap_or_default();
        FIELDS.iter().filter_map(|f| f.range).chain([WIDEST]).map(|r| (r, (parse(r.0), parse(r.1)))).collect()
    });
    PARSED[&spec.and_then(|s| s.range).unwrap_or(WIDEST)]
}

/// Template of a concrete path: `ItemList[3].AssAmt` → `ItemList[].AssAmt`.
pub fn template(concrete: &str) -> String {
    let mut out = String::with_capacity(concrete.len());
    let mut in_index = false;
    for c in concrete.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Does `text` match the field's pattern? (True when it has none.)
pub fn matches(spec: &FieldSpec, text: &str) -> bool {
    match spec.pattern.and_then(|p| PATTERNS.get(p)) {
        Some(re) => re.is_match(text),
        None => true,
    }
}

/// The children of a section (template path), in table order.
pub fn children(parent: &str) -> impl Iterator<Item = &'static FieldSpec> + '_ {
    CHILDREN.get(parent).into_iter().flatten().map(|(_, f)| *f)
}

/// Each template path's fields with their keys, in table order: the validation walks every object
/// of every invoice through this, so it is indexed once instead of scanning the table per object.
static CHILDREN: Lazy<HashMap<&'static str, Vec<(&'static str, &'static FieldSpec)>>> = Lazy::new(|| {
    let mut by_parent: HashMap<&'static str, Vec<(&'static str, &'static FieldSpec)>> = HashMap::new();
    for f in FIELDS.iter().filter(|f| f.path != f.parent()) {
        by_parent.entry(f.parent()).or_default().push((f.key(), f));
    }
    by_parent
});
