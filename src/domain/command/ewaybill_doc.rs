//! `ewaybill.generate` without an IRN: the e-way bill API's `GENEWAYBILL` document (Part A),
//! sent as `ewaybill` beside the same `transport` object the by-IRN form takes.
//!
//! The document's fields keep NIC's `GENEWAYBILL` names (`supplyType`, `subSupplyType`,
//! `docType`, `docNo`, `fromGstin`, `itemList[].hsnCode`, …) so an integrator can read NIC's
//! documentation for their meaning. Every rule the portal applies to the form is checked here,
//! before any call, and every problem is reported with its path (`ewaybill.itemList[0].hsnCode`).
//! The parsers and codes are the invoice's where they exist (GSTIN, PIN and state, HSN, units,
//! money, the 180-day rule).
use chrono::{Datelike, NaiveDate};
use once_cell::sync::Lazy;
use regex::Regex;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::ewaybill::{document_age_problem, past_date, Transport};
use super::Reader;
use crate::domain::codes;
use crate::domain::invoice::money;
use crate::domain::problem::code;
use crate::domain::{DocDate, Gstin, Problem};

/// NIC's limit on the items of one e-way bill.
pub const MAX_ITEMS: usize = 250;
/// The gap, in rupees, allowed between a total and the sum it should be (as for invoices).
const TOLERANCE: Decimal = Decimal::ONE;

static DOC_NO: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[A-Za-z0-9/-]{1,16}$").expect("static regex"));
static HSN: Lazy<Regex> = Lazy::new(|| Regex::new(r"^([0-9]{4}|[0-9]{6}|[0-9]{8})$").expect("static regex"));

/// `supplyType`: O outward, I inward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outward,
    Inward,
}

impl Direction {
    pub fn code(self) -> &'static str {
        match self {
            Self::Outward => "O",
            Self::Inward => "I",
        }
    }
}

/// NIC's sub-supply types (`subSupplyType`), by code.
pub const SUB_SUPPLY_TYPES: &[(&str, &str)] = &[
    ("1", "Supply"),
    ("2", "Import"),
    ("3", "Export"),
    ("4", "Job Work"),
    ("5", "For Own Use"),
    ("6", "Job work Returns"),
    ("7", "Sales Return"),
    ("8", "Others"),
    ("9", "SKD/CKD/Lots"),
    ("10", "Line Sales"),
    ("11", "Recipient Not Known"),
    ("12", "Exhibition or Fairs"),
];

/// NIC's document types (`docType`).
pub const DOC_TYPES: &[(&str, &str)] = &[
    ("INV", "Tax Invoice"),
    ("BIL", "Bill of Supply"),
    ("BOE", "Bill of Entry"),
    ("CHL", "Delivery Challan"),
    ("CNT", "Credit Note"),
    ("OTH", "Others"),
];

/// The document types each supply and sub-supply type takes (the portal's combination chart).
pub fn allowed_doc_types(dir: Direction, sub: &str) -> &'static [&'static str] {
    use Direction::*;
    match (dir, sub) {
        (Outward, "1" | "3") => &["INV", "BIL"],
        (Outward, "9") => &["INV", "BIL", "CHL"],
        (Outward, "4" | "5" | "10" | "12") => &["CHL"],
        (Outward, "11" | "8") => &["CHL", "OTH"],
        (Inward, "1") => &["INV", "BIL"],
        (Inward, "2") => &["BOE"],
        (Inward, "9") => &["BOE", "INV", "BIL", "CHL"],
        (Inward, "6" | "5" | "12") => &["CHL"],
        (Inward, "7") => &["CHL", "CNT"],
        (Inward, "8") => &["CHL", "OTH"],
        _ => &[],
    }
}

/// The never-twice key of an e-way bill without an IRN: the portal refuses a second e-way bill
/// for the same supplier, document type and number (604); the year keeps a number reused in a
/// later year apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwbDocKey {
    pub gstin: String,
    pub doc_type: String,
    pub doc_no: String,
    pub year: i32,
}

/// One item (`itemList[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct EwbItem {
    pub product_name: Option<String>,
    pub product_desc: Option<String>,
    pub hsn: String,
    pub quantity: Option<Decimal>,
    pub unit: Option<String>,
    pub taxable: Decimal,
    pub cgst_rate: Decimal,
    pub sgst_rate: Decimal,
    pub igst_rate: Decimal,
    pub cess_rate: Decimal,
    pub cess_non_advol: Decimal,
}

/// One side of the movement: the consignor (`from…`) or the consignee (`to…`).
#[derive(Debug, Clone, PartialEq)]
pub struct EwbParty {
    /// A GSTIN, or `URP` (unregistered person).
    pub gstin: String,
    pub trade_name: Option<String>,
    pub addr1: Option<String>,
    pub addr2: Option<String>,
    pub place: Option<String>,
    pub pincode: u32,
    /// The billing state (`fromStateCode` / `toStateCode`; 99 for another country).
    pub state: u32,
    /// Where the goods actually leave or arrive (`actFromStateCode` / `actToStateCode`).
    pub actual_state: u32,
}

/// A `GENEWAYBILL` document, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EwbDocument {
    pub direction: Direction,
    pub sub_supply_type: String,
    pub sub_supply_desc: Option<String>,
    pub doc_type: String,
    pub doc_no: String,
    pub doc_date: DocDate,
    pub from: EwbParty,
    pub to: EwbParty,
    /// 1 regular, 2 bill to–ship to, 3 bill from–dispatch from, 4 both.
    pub transaction_type: u8,
    pub items: Vec<EwbItem>,
    pub total_value: Decimal,
    pub cgst_value: Decimal,
    pub sgst_value: Decimal,
    pub igst_value: Decimal,
    pub cess_value: Decimal,
    pub cess_non_advol_value: Decimal,
    pub other_value: Decimal,
    pub tot_inv_value: Decimal,
}

impl EwbDocument {
    pub fn key(&self, gstin: &Gstin) -> EwbDocKey {
        EwbDocKey {
            gstin: gstin.as_str().to_string(),
            doc_type: self.doc_type.clone(),
            doc_no: self.doc_no.to_ascii_uppercase(),
            year: self.doc_date.date().year(),
        }
    }

    /// The `GENEWAYBILL` payload: this document with `t`'s Part B under the e-way bill API's names.
    pub fn request(&self, t: &Transport) -> Value {
        let money = |d: Decimal| json!(d.normalize().to_string().parse::<f64>().unwrap_or(0.0));
        let items: Vec<Value> = self
            .items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let mut m = json!({
                    "itemNo": i + 1,
                    "hsnCode": it.hsn.parse::<u64>().unwrap_or(0),
                    "taxableAmount": money(it.taxable),
                    "cgstRate": money(it.cgst_rate), "sgstRate": money(it.sgst_rate),
                    "igstRate": money(it.igst_rate), "cessRate": money(it.cess_rate),
                    "cessNonadvol": money(it.cess_non_advol),
                });
                let o = m.as_object_mut().expect("object");
                put(o, "productName", it.product_name.clone().map(Value::from));
                put(o, "productDesc", it.product_desc.clone().map(Value::from));
                put(o, "quantity", it.quantity.map(money));
                put(o, "qtyUnit", it.unit.clone().map(Value::from));
                m
            })
            .collect();
        let mut m = json!({
            "supplyType": self.direction.code(),
            "subSupplyType": self.sub_supply_type,
            "docType": self.doc_type,
            "docNo": self.doc_no,
            "docDate": self.doc_date.to_string(),
            "fromGstin": self.from.gstin, "fromPincode": self.from.pincode,
            "fromStateCode": self.from.state, "actFromStateCode": self.from.actual_state,
            "toGstin": self.to.gstin, "toPincode": self.to.pincode,
            "toStateCode": self.to.state, "actToStateCode": self.to.actual_state,
            "transactionType": self.transaction_type,
            "totalValue": money(self.total_value),
            "cgstValue": money(self.cgst_value), "sgstValue": money(self.sgst_value),
            "igstValue": money(self.igst_value), "cessValue": money(self.cess_value),
            "cessNonAdvolValue": money(self.cess_non_advol_value),
            "otherValue": money(self.other_value),
            "totInvValue": money(self.tot_inv_value),
            "transDistance": t.distance.to_string(),
            "itemList": items,
        });
        let o = m.as_object_mut().expect("object");
        put(o, "subSupplyDesc", self.sub_supply_desc.clone().map(Value::from));
        for (p, party) in [("from", &self.from), ("to", &self.to)] {
            put(o, &format!("{p}TrdName"), party.trade_name.clone().map(Value::from));
            put(o, &format!("{p}Addr1"), party.addr1.clone().map(Value::from));
            put(o, &format!("{p}Addr2"), party.addr2.clone().map(Value::from));
            put(o, &format!("{p}Place"), party.place.clone().map(Value::from));
        }
        put(o, "transMode", t.trans_mode.map(|m| Value::from(m.code())));
        put(o, "transporterId", t.trans_id.clone().map(Value::from));
        put(o, "transporterName", t.trans_name.clone().map(Value::from));
        put(o, "transDocNo", t.trans_doc_no.clone().map(Value::from));
        put(o, "transDocDate", t.trans_doc_dt.map(|d| Value::from(d.to_string())));
        put(o, "vehicleNo", t.veh_no.clone().map(Value::from));
        put(o, "vehicleType", t.veh_type.clone().map(Value::from));
        m
    }
}

fn put(o: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        o.insert(k.into(), v);
    }
}

/// Which dated 2026 rules apply to this command (each behind its switch).
#[derive(Debug, Clone, Copy, Default)]
pub struct DocRules {
    /// Same dispatch and delivery PIN: the distance must be given (the portal cannot compute it).
    pub same_pin_distance: bool,
    /// A GSTIN registered for TDS/TCS cannot be the e-way bill's supplier.
    pub no_tds_tcs_supplier: bool,
}

/// Parse and check `ewaybill` (an object) for the generator `gstin`, with `transport` (already
/// checked) for the rules that join the two. Problems go to `problems` with `ewaybill.` paths.
pub fn parse_document(
    v: &Value,
    gstin: Option<&Gstin>,
    transport: Option<&Transport>,
    today: NaiveDate,
    relaxed: bool,
    rules: DocRules,
    problems: &mut Vec<Problem>,
) -> Option<EwbDocument> {
    if !v.is_object() {
        problems.push(Problem::new("ewaybill", code::INVALID_TYPE, "'ewaybill' must be an object"));
        return None;
    }
    let mut r = Reader::nested(v, relaxed);
    let mut outer = Vec::new();
    let doc = read(&mut r, gstin, transport, today, rules, &mut outer);
    let ok = ok_and(&r, &outer);
    problems.extend(r.problems.into_iter().map(|mut p| {
        p.path = format!("ewaybill.{}", p.path);
        p
    }));
    problems.extend(outer);
    doc.filter(|_| ok)
}

fn ok_and(r: &Reader<'_>, outer: &[Problem]) -> bool {
    r.problems.is_empty() && outer.is_empty()
}

fn read(
    r: &mut Reader<'_>,
    gstin: Option<&Gstin>,
    transport: Option<&Transport>,
    today: NaiveDate,
    rules: DocRules,
    outer: &mut Vec<Problem>,
) -> Option<EwbDocument> {
    let direction = r.req_str("supplyType").and_then(|s| match s.to_ascii_uppercase().as_str() {
        "O" => Some(Direction::Outward),
        "I" => Some(Direction::Inward),
        _ => {
            r.problems.push(Problem::new(
                "supplyType",
                code::INVALID_SUPPLY_TYPE,
                format!("'{s}' is not a supply type: use O (outward) or I (inward)"),
            ));
            None
        }
    });
    let sub = r.req_str("subSupplyType").and_then(|s| {
        if SUB_SUPPLY_TYPES.iter().any(|(c, _)| *c == s) {
            Some(s)
        } else {
            let list: Vec<String> = SUB_SUPPLY_TYPES.iter().map(|(c, n)| format!("{c} ({n})")).collect();
            r.problems.push(Problem::new(
                "subSupplyType",
                code::INVALID_SUPPLY_TYPE,
                format!("'{s}' is not a sub-supply type: use {}", list.join(", ")),
            ));
            None
        }
    });
    let sub_desc = r.opt_str("subSupplyDesc").filter(|s| !s.is_empty());
    if let Some(d) = &sub_desc {
        if d.chars().count() > 20 {
            r.problems.push(Problem::new(
                "subSupplyDesc",
                code::TEXT_LENGTH,
                "subSupplyDesc has at most 20 characters",
            ));
        }
    }
    if sub.as_deref() == Some("8") && sub_desc.is_none() {
        r.problems.push(Problem::new(
            "subSupplyDesc",
            code::REQUIRED,
            "subSupplyType 8 (Others) needs subSupplyDesc, what the movement is",
        ));
    }
    let doc_type = r.req_str("docType").map(|s| s.to_ascii_uppercase()).and_then(|s| {
        if DOC_TYPES.iter().any(|(c, _)| *c == s) {
            Some(s)
        } else {
            r.problems.push(Problem::new(
                "docType",
                code::DOC_TYPE_INVALID,
                format!("'{s}' is not an e-way bill document type: use INV, BIL, BOE, CHL, CNT or OTH"),
            ));
            None
        }
    });
    if let (Some(d), Some(s), Some(t)) = (direction, &sub, &doc_type) {
        let allowed = allowed_doc_types(d, s);
        if !allowed.contains(&t.as_str()) {
            let name = SUB_SUPPLY_TYPES.iter().find(|(c, _)| c == s).map_or("", |x| x.1);
            let msg = if allowed.is_empty() {
                format!("sub-supply type {s} ({name}) is not allowed with supplyType {}", d.code())
            } else {
                format!(
                    "docType {t} is not allowed for supplyType {} with sub-supply type {s} ({name}): use {}",
                    d.code(),
                    allowed.join(" or ")
                )
            };
            r.problems.push(Problem::new("docType", code::INVALID_DOC_TYPE, msg));
        }
    }
    let doc_no = r.req_str("docNo").and_then(|n| {
        if DOC_NO.is_match(&n) && !n.starts_with(['0', '/', '-']) {
            Some(n)
        } else {
            r.problems.push(Problem::new(
                "docNo",
                code::DOC_NUMBER_FORMAT,
                format!(
                    "'{n}' is not a document number: 1 to 16 letters, digits, / and -, not starting with 0, / or -"
                ),
            ));
            None
        }
    });
    let doc_date = r.req_str("docDate").and_then(|d| past_date(&d, "docDate", today, &mut r.problems));
    if let Some(d) = doc_date {
        r.problems.extend(document_age_problem(d, today, "docDate"));
    }
    let from = party(r, "from", direction == Some(Direction::Inward) && sub.as_deref() == Some("2"));
    let to = party(r, "to", direction == Some(Direction::Outward) && sub.as_deref() == Some("3"));
    // The generator is the consignor of an outward movement and the consignee of an inward one.
    if let (Some(g), Some(d)) = (gstin, direction) {
        let (side, p) = match d {
            Direction::Outward => ("fromGstin", &from),
            Direction::Inward => ("toGstin", &to),
        };
        if let Some(p) = p.as_ref().filter(|p| !p.gstin.eq_ignore_ascii_case(g.as_str())) {
            r.problems.push(Problem::new(
                side,
                code::SELLER_GSTIN_MISMATCH,
                format!(
                    "{side} is {} but the command's gstin is {g}: for supplyType {} the generator is the {}",
                    p.gstin,
                    d.code(),
                    if d == Direction::Outward { "consignor" } else { "consignee" }
                ),
            ));
        }
    }
    if rules.no_tds_tcs_supplier {
        if let Some(f) = &from {
            if let Ok(g) = Gstin::parse(&f.gstin, true) {
                if matches!(g.kind(), crate::domain::gstin::GstinKind::Tds | crate::domain::gstin::GstinKind::Tcs) {
                    r.problems.push(Problem::new(
                        "fromGstin",
                        code::GSTIN_INVALID,
                        format!("{} is registered for TDS/TCS and cannot be the supplier of an e-way bill (rule in force since January 2026)", f.gstin),
                    ));
                }
            }
        }
    }
    let transaction_type = match r.opt_str("transactionType").filter(|s| !s.is_empty()) {
        None => Some(1),
        Some(s) => match s.parse::<u8>() {
            Ok(n @ 1..=4) => Some(n),
            _ => {
                r.problems.push(Problem::new(
                    "transactionType",
                    code::VALUE_RANGE,
                    format!("'{s}' is not a transaction type: use 1 (Regular), 2 (Bill To - Ship To), 3 (Bill From - Dispatch From) or 4 (both)"),
                ));
                None
            }
        },
    };
    let items = items(r);
    let amount = |r: &mut Reader<'_>, k: &str, req: bool| amount(r, k, req);
    let total_value = amount(r, "totalValue", true);
    let cgst = amount(r, "cgstValue", false);
    let sgst = amount(r, "sgstValue", false);
    let igst = amount(r, "igstValue", false);
    let cess = amount(r, "cessValue", false);
    let cess_na = amount(r, "cessNonAdvolValue", false);
    let other = amount(r, "otherValue", false);
    let tot = amount(r, "totInvValue", true);
    // Tax arithmetic: each total against the items, and which taxes the movement takes.
    if let Some(items) = &items {
        let sum = |f: &dyn Fn(&EwbItem) -> Decimal| items.iter().map(f).sum::<Decimal>();
        let intra = matches!((&from, &to), (Some(f), Some(t)) if f.state == t.state);
        let checks: [(&str, Option<Decimal>, Decimal, &str); 5] = [
            ("totalValue", total_value, sum(&|i| i.taxable), code::ASSVAL_MISMATCH),
            ("cgstValue", cgst, sum(&|i| money::percent(i.taxable, i.cgst_rate)), code::CGSTVAL_MISMATCH),
            ("sgstValue", sgst, sum(&|i| money::percent(i.taxable, i.sgst_rate)), code::SGSTVAL_MISMATCH),
            ("igstValue", igst, sum(&|i| money::percent(i.taxable, i.igst_rate)), code::IGSTVAL_MISMATCH),
            (
                "cessValue",
                cess,
                sum(&|i| money::percent(i.taxable, i.cess_rate) + i.cess_non_advol),
                code::CESVAL_MISMATCH,
            ),
        ];
        for (k, got, want, c) in checks {
            // An absent tax total is 0, as the portal reads it.
            let given = r.body.get(k).is_some_and(|v| !v.is_null());
            if let Some(got) = got.or_else(|| (!given).then_some(Decimal::ZERO)) {
                if money::differs(got, want, TOLERANCE) {
                    r.problems.push(Problem::new(
                        k,
                        c,
                        format!(
                            "{k} is {} but the items make {} (±{TOLERANCE} allowed)",
                            money::rupees(got),
                            money::rupees(want)
                        ),
                    ));
                }
            }
        }
        if from.is_some() && to.is_some() {
            for (i, it) in items.iter().enumerate() {
                if intra && !it.igst_rate.is_zero() {
                    r.problems.push(Problem::new(
                        format!("itemList[{i}].igstRate"),
                        code::IGST_NOT_ALLOWED,
                        "consignor and consignee are in the same state (fromStateCode = toStateCode): CGST and SGST, not IGST",
                    ));
                }
                let cgst_sgst = !it.cgst_rate.is_zero() || !it.sgst_rate.is_zero();
                if !intra && cgst_sgst {
                    r.problems.push(Problem::new(
                        format!("itemList[{i}].cgstRate"),
                        code::CGST_SGST_NOT_ALLOWED,
                        "consignor and consignee are in different states: IGST, not CGST and SGST",
                    ));
                }
                if it.cgst_rate != it.sgst_rate {
                    r.problems.push(Problem::new(
                        format!("itemList[{i}].sgstRate"),
                        code::CGST_SGST_UNEQUAL,
                        "cgstRate and sgstRate must be equal",
                    ));
                }
            }
        }
    }
    if let (Some(tv), Some(tot)) = (total_value, tot) {
        let z = Decimal::ZERO;
        let want = tv
            + cgst.unwrap_or(z)
            + sgst.unwrap_or(z)
            + igst.unwrap_or(z)
            + cess.unwrap_or(z)
            + cess_na.unwrap_or(z)
            + other.unwrap_or(z);
        if money::differs(tot, want, TOLERANCE) {
            r.problems.push(Problem::new(
                "totInvValue",
                code::TOTINVVAL_MISMATCH,
                format!(
                    "totInvValue is {} but totalValue, the taxes, cess and otherValue make {} (±{TOLERANCE} allowed)",
                    money::rupees(tot),
                    money::rupees(want)
                ),
            ));
        }
    }
    // Distance rules: NIC computes the PIN-to-PIN distance when 0 is sent, but not between two
    // places with the same PIN (the 2026 rule); and NIC allows the PIN-to-PIN distance + 10 %.
    if let (Some(t), Some(f), Some(to)) = (transport, &from, &to) {
        if rules.same_pin_distance && f.pincode == to.pincode && t.distance == 0 {
            outer.push(Problem::new(
                "transport.Distance",
                code::DISTANCE_OUT_OF_RANGE,
                format!(
                    "dispatch and delivery have the same PIN {}: the portal cannot compute the distance, so give it (1 to 100 km) instead of 0 (rule in force since June 2026)",
                    f.pincode
                ),
            ));
        }
        if f.pincode == to.pincode && t.distance > 100 {
            outer.push(Problem::new(
                "transport.Distance",
                code::DISTANCE_OUT_OF_RANGE,
                format!("dispatch and delivery have the same PIN {}: the distance can be at most 100 km", f.pincode),
            ));
        }
    }
    Some(EwbDocument {
        direction: direction?,
        sub_supply_type: sub?,
        sub_supply_desc: sub_desc,
        doc_type: doc_type?,
        doc_no: doc_no?,
        doc_date: doc_date?,
        from: from?,
        to: to?,
        transaction_type: transaction_type?,
        items: items?,
        total_value: total_value?,
        cgst_value: cgst.unwrap_or_default(),
        sgst_value: sgst.unwrap_or_default(),
        igst_value: igst.unwrap_or_default(),
        cess_value: cess.unwrap_or_default(),
        cess_non_advol_value: cess_na.unwrap_or_default(),
        other_value: other.unwrap_or_default(),
        tot_inv_value: tot?,
    })
}

/// `{p}Gstin`, `{p}Pincode`, `{p}StateCode`, `act{P}StateCode` and the optional names and
/// address. `abroad`: the party is in another country (import's consignor, export's
/// consignee), so its billing state is 99 and its GSTIN URP.
fn party(r: &mut Reader<'_>, p: &str, abroad: bool) -> Option<EwbParty> {
    let k = |s: &str| format!("{p}{s}");
    let gstin = r.req_str(&k("Gstin")).map(|s| s.to_ascii_uppercase()).and_then(|s| {
        if s == "URP" {
            return Some(s);
        }
        match Gstin::parse(&s, r.relaxed) {
            Ok(g) => Some(g.as_str().to_string()),
            Err(e) => {
                r.problems.push(Problem::new(k("Gstin"), code::GSTIN_INVALID, e.to_string()));
                None
            }
        }
    });
    let texts = [("TrdName", 100), ("Addr1", 120), ("Addr2", 120), ("Place", 50)];
    let mut out: Vec<Option<String>> = Vec::new();
    for (f, max) in texts {
        let v = r.opt_str(&k(f)).filter(|s| !s.is_empty());
        if let Some(s) = &v {
            if s.chars().count() > max {
                r.problems.push(Problem::new(
                    k(f),
                    code::TEXT_LENGTH,
                    format!("{} has at most {max} characters", k(f)),
                ));
            }
        }
        out.push(v);
    }
    let state = state_of(r, &k("StateCode"), true);
    let actual_state = {
        let cap = format!("act{}{}", p[..1].to_ascii_uppercase(), &p[1..]);
        state_of(r, &format!("{cap}StateCode"), false)
    };
    if let (Some(s), false) = (state, abroad) {
        if s == 99 {
            r.problems.push(Problem::new(
                k("StateCode"),
                code::INVALID_STATE_CODE,
                format!(
                    "{} 99 (other country) is only for an import's consignor or an export's consignee",
                    k("StateCode")
                ),
            ));
        }
    }
    if let (Some(g), Some(s)) = (&gstin, state) {
        if g != "URP" && s != 99 && &g[..2] != format!("{s:02}").as_str() {
            r.problems.push(Problem::new(
                k("StateCode"),
                code::GSTIN_STATE_MISMATCH,
                format!("{} is {s:02} but GSTIN {g} is registered in state {}", k("StateCode"), &g[..2]),
            ));
        }
    }
    let pincode = r.req_str(&k("Pincode")).and_then(|s| match s.parse::<u32>() {
        Ok(pin) if codes::is_valid_pin(pin) => Some(pin),
        _ => {
            r.problems.push(Problem::new(
                k("Pincode"),
                code::PIN_FORMAT,
                format!("'{s}' is not a PIN: 6 digits, not starting with 0"),
            ));
            None
        }
    });
    if let (Some(pin), Some(s)) = (pincode, actual_state) {
        if s != 99 && !codes::pin_matches_state(pin, &format!("{s:02}")) {
            r.problems.push(Problem::new(
                k("Pincode"),
                code::PIN_STATE_MISMATCH,
                format!(
                    "PIN {pin} is not in state {s:02} (the actual state the goods move {})",
                    if p == "from" { "from" } else { "to" }
                ),
            ));
        }
    }
    let mut out = out.into_iter();
    let mut next = || out.next().flatten();
    let (trade_name, addr1, addr2, place) = (next(), next(), next(), next());
    Some(EwbParty {
        gstin: gstin?,
        trade_name,
        addr1,
        addr2,
        place,
        pincode: pincode?,
        state: state?,
        actual_state: actual_state?,
    })
}

/// A state code (`29`, `"9"` for 09); `other_country`: 99 is accepted too.
fn state_of(r: &mut Reader<'_>, field: &str, other_country: bool) -> Option<u32> {
    let s = r.req_str(field)?;
    let c = format!("{:0>2}", s.trim());
    match c.parse::<u32>() {
        // The e-way bill API writes another country as 99 (the e-invoice's 96 is not its code).
        Ok(99) if other_country => Some(99),
        Ok(n) if n != 99 && codes::is_valid_state_code(&c) && c != codes::OTHER_COUNTRIES => Some(n),
        _ => {
            r.problems.push(Problem::new(
                field,
                code::INVALID_STATE_CODE,
                format!(
                    "'{s}' is not a state code (such as 29 for Karnataka{})",
                    if other_country { "; 99 for another country" } else { "" }
                ),
            ));
            None
        }
    }
}

/// A non-negative amount with at most 2 decimals.
fn amount(r: &mut Reader<'_>, field: &str, required: bool) -> Option<Decimal> {
    let v = r.body.get(field).cloned().unwrap_or(Value::Null);
    if v.is_null() {
        if required {
            r.problems.push(Problem::new(field, code::REQUIRED, format!("'{field}' is required")));
        }
        return None;
    }
    match money::from_json(&v) {
        Some(d) if d.is_sign_negative() => {
            r.problems.push(Problem::new(field, code::NEGATIVE_VALUE, format!("{field} must not be negative")));
            None
        }
        Some(d) if money::decimals(d) > 3 => {
            r.problems.push(Problem::new(field, code::DECIMAL_PLACES, format!("{field} has at most 3 decimals")));
            None
        }
        Some(d) => Some(d),
        None => {
            r.problems.push(Problem::new(field, code::INVALID_TYPE, format!("{field} must be a number")));
            None
        }
    }
}

fn items(r: &mut Reader<'_>) -> Option<Vec<EwbItem>> {
    let list = match r.body.get("itemList") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_ITEMS => a.clone(),
        Some(Value::Array(a)) => {
            r.problems.push(Problem::new(
                "itemList",
                code::ITEM_COUNT,
                format!("itemList has {} items: an e-way bill takes 1 to {MAX_ITEMS}", a.len()),
            ));
            return None;
        }
        None | Some(Value::Null) => {
            r.problems.push(Problem::new("itemList", code::REQUIRED, "'itemList' is required (1 to 250 items)"));
            return None;
        }
        Some(_) => {
            r.problems.push(Problem::new("itemList", code::INVALID_TYPE, "'itemList' must be an array"));
            return None;
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, v) in list.iter().enumerate() {
        let mut ir = Reader::nested(v, r.relaxed);
        let item = item(&mut ir);
        ok &= ir.problems.is_empty();
        r.problems.extend(ir.problems.into_iter().map(|mut p| {
            p.path = format!("itemList[{i}].{}", p.path);
            p
        }));
        out.extend(item);
    }
    ok.then_some(out)
}

fn item(r: &mut Reader<'_>) -> Option<EwbItem> {
    if !r.body.is_object() {
        r.problems.push(Problem::new("", code::INVALID_TYPE, "an item must be an object"));
        return None;
    }
    let hsn = r.req_str("hsnCode").and_then(|h| {
        if HSN.is_match(&h) {
            Some(h)
        } else {
            r.problems.push(Problem::new(
                "hsnCode",
                code::HSN_FORMAT,
                format!("HSN code '{h}' must be 4, 6 or 8 digits"),
            ));
            None
        }
    });
    let unit = r.opt_str("qtyUnit").filter(|s| !s.is_empty()).map(|s| s.to_ascii_uppercase());
    if let Some(u) = &unit {
        if !codes::is_valid_unit(u) {
            r.problems.push(Problem::new(
                "qtyUnit",
                code::INVALID_UNIT,
                format!("'{u}' is not a unit quantity code (such as NOS, KGS, BOX)"),
            ));
        }
    }
    let quantity = amount(r, "quantity", false);
    let taxable = amount(r, "taxableAmount", true);
    let mut rate = |k: &str| {
        let v = amount(r, k, false).unwrap_or_default();
        if v > Decimal::from(100) {
            r.problems.push(Problem::new(
                k,
                code::INVALID_GST_RATE,
                format!("{k} {v} is not a rate (percent, 0 to 100)"),
            ));
        }
        v
    };
    let (cgst_rate, sgst_rate, igst_rate, cess_rate) =
        (rate("cgstRate"), rate("sgstRate"), rate("igstRate"), rate("cessRate"));
    let cess_non_advol = amount(r, "cessNonadvol", false).unwrap_or_default();
    let text = |r: &mut Reader<'_>, k: &str| {
        let v = r.opt_str(k).filter(|s| !s.is_empty());
        if v.as_ref().is_some_and(|s| s.chars().count() > 100) {
            r.problems.push(Problem::new(k, code::TEXT_LENGTH, format!("{k} has at most 100 characters")));
        }
        v
    };
    let product_name = text(r, "productName");
    let product_desc = text(r, "productDesc");
    Some(EwbItem {
        product_name,
        product_desc,
        hsn: hsn?,
        quantity,
        unit,
        taxable: taxable?,
        cgst_rate,
        sgst_rate,
        igst_rate,
        cess_rate,
        cess_non_advol,
    })
}

#[cfg(test)]
mod tests {
    use super::super::ewaybill_generate::{EwaybillGenerate, EwbSource};
    use super::super::{parse_command, Command, ParseOptions};
    use crate::domain::invoice::ShipToRules;
    use serde_json::{json, Value};

    const G: &str = "29AAGCP4821K1Z3";

    fn today() -> String {
        crate::domain::invoice::india_today().format("%d/%m/%Y").to_string()
    }

    /// An inter-state job-work challan: Karnataka to Maharashtra, IGST.
    fn doc() -> Value {
        json!({"supplyType": "O", "subSupplyType": "4", "docType": "chl", "docNo": "JW/7", "docDate": today(),
            "fromGstin": G, "fromPincode": "560001", "fromStateCode": "29", "actFromStateCode": "29",
            "toGstin": "27AAKFU7303M1ZP", "toPincode": 411001, "toStateCode": 27, "actToStateCode": 27,
            "itemList": [{"hsnCode": 8424, "quantity": 2, "qtyUnit": "nos", "taxableAmount": 1000, "igstRate": 18}],
            "totalValue": 1000, "igstValue": 180, "totInvValue": 1180})
    }

    fn body(doc: Value, distance: u64) -> Value {
        json!({"gstin": G, "ewaybill": doc, "transport": {"Distance": distance, "TransMode": "1", "VehNo": "KA01AB1234"}})
    }

    fn parse(b: Value, opts: &ParseOptions) -> Result<EwaybillGenerate, Vec<(String, String)>> {
        match parse_command("ewaybill.generate", b.to_string().as_bytes(), opts) {
            Ok(p) => match p.command {
                Command::EwaybillGenerate(c) => Ok(c),
                other => panic!("{other:?}"),
            },
            Err(r) => Err(r.problems.into_iter().map(|p| (p.path, p.code)).collect()),
        }
    }

    #[test]
    fn a_job_work_challan_parses_and_builds_the_genewaybill_payload() {
        let c = parse(body(doc(), 840), &ParseOptions::default()).unwrap();
        let EwbSource::Document(d) = &c.source else { panic!("{:?}", c.source) };
        assert_eq!(d.key(&c.gstin).doc_type, "CHL");
        let req = d.request(&c.transport);
        assert_eq!(req["supplyType"], "O");
        assert_eq!(req["subSupplyType"], "4");
        assert_eq!(req["docType"], "CHL");
        assert_eq!(req["fromPincode"], 560001);
        assert_eq!(req["transDistance"], "840");
        assert_eq!(req["vehicleNo"], "KA01AB1234");
        assert_eq!(req["itemList"][0]["hsnCode"], 8424);
        assert_eq!(req["itemList"][0]["qtyUnit"], "NOS");
        assert_eq!(req["igstValue"], 180.0);
    }

    #[test]
    fn both_forms_at_once_and_wrong_combinations_are_refused() {
        let mut b = body(doc(), 10);
        b["irn"] = json!("a3f1c9b2e4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f");
        assert!(parse(b, &ParseOptions::default()).unwrap_err().contains(&("irn".into(), "QUERY_AMBIGUOUS".into())));
        let mut d = doc();
        d["subSupplyType"] = json!("2"); // import is inward only
        let got = parse(body(d, 10), &ParseOptions::default()).unwrap_err();
        assert!(got.contains(&("ewaybill.docType".into(), "INVALID_DOC_TYPE".into())), "{got:?}");
        let mut d = doc();
        d["supplyType"] = json!("I"); // inward: the generator must be the consignee
        d["subSupplyType"] = json!("6");
        let got = parse(body(d, 10), &ParseOptions::default()).unwrap_err();
        assert!(got.contains(&("ewaybill.toGstin".into(), "SELLER_GSTIN_MISMATCH".into())), "{got:?}");
        let mut d = doc();
        d["itemList"][0]["cgstRate"] = json!(9);
        d["itemList"][0]["sgstRate"] = json!(9);
        d["subSupplyType"] = json!("8");
        let got = parse(body(d, 10), &ParseOptions::default()).unwrap_err();
        for want in [
            ("ewaybill.itemList[0].cgstRate", "CGST_SGST_NOT_ALLOWED"),
            ("ewaybill.subSupplyDesc", "REQUIRED"),
            ("ewaybill.cgstValue", "CGSTVAL_MISMATCH"),
        ] {
            assert!(got.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {got:?}");
        }
    }

    #[test]
    fn the_2026_rules_follow_their_switches() {
        // Same PIN on both sides, distance 0: refused while the rule is on, left to the portal when off.
        let mut d = doc();
        d["toGstin"] = json!(G);
        d["toPincode"] = json!(560001);
        d["toStateCode"] = json!(29);
        d["actToStateCode"] = json!(29);
        d["itemList"][0]["igstRate"] = json!(0);
        d["igstValue"] = json!(0);
        d["totInvValue"] = json!(1000);
        let on = ParseOptions::default();
        let got = parse(body(d.clone(), 0), &on).unwrap_err();
        assert_eq!(got, vec![("transport.Distance".to_string(), "DISTANCE_OUT_OF_RANGE".to_string())]);
        let mut off = ParseOptions::default();
        off.validation.same_pin_distance_rule = ShipToRules::Off;
        assert!(parse(body(d.clone(), 0), &off).is_ok());
        assert!(parse(body(d.clone(), 12), &on).is_ok());
        // Same PIN: at most 100 km, whatever the switch.
        assert!(parse(body(d, 101), &off).is_err());

        // A TDS registration (13th character D) as the supplier.
        let tds = "29AAAAA0000A1D7";
        let tds = match crate::domain::Gstin::parse(tds, false) {
            Ok(_) => tds.to_string(),
            Err(_) => {
                let first14 = &tds[..14];
                format!("{first14}{}", crate::domain::gstin::check_digit(first14).unwrap())
            }
        };
        let mut d = doc();
        d["fromGstin"] = json!(tds);
        let mut b = body(d, 10);
        b["gstin"] = json!(tds);
        let got = parse(b.clone(), &on).unwrap_err();
        assert_eq!(got, vec![("ewaybill.fromGstin".to_string(), "GSTIN_INVALID".to_string())]);
        let mut off = ParseOptions::default();
        off.validation.tds_tcs_supplier_rule = ShipToRules::Off;
        assert!(parse(b, &off).is_ok());
    }
}
