//! The e-way bill commands: `ewaybill.generate`, `ewaybill.update_vehicle`, `ewaybill.cancel`.
//!
//! Checked before any call, with paths, so the IRP / e-way bill system never sees a request it
//! would refuse for its form (field reference §2.1): distance 0–4000 (0 lets NIC compute it),
//! transport mode 1–4 with the vehicle or transport document it needs, vehicle number format,
//! reason codes and remarks, dates, and the 180-day limit on the document's age. The transport
//! rules and their problem codes are [`crate::domain::transport`]'s, which the invoice's
//! `EwbDtls` uses too.
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::ewaybill_update_transporter::TransporterId;
use super::{doc_ref, target, DocRef, Reader, Target};
use crate::domain::codes;
use crate::domain::problem::code;
use crate::domain::transport::{self, TextRule};
pub use crate::domain::transport::{normalise_vehicle, TransMode, MAX_DISTANCE_KM};
use crate::domain::{DocDate, Problem};

/// Since 1 Jan 2025 an e-way bill may only be made for a document at most 180 days old (820).
pub const MAX_DOCUMENT_AGE_DAYS: i64 = 180;
/// The e-way bill system's limit on cancel and vehicle-update remarks.
pub const EWB_REMARK_MAX: usize = 50;

/// Part B and the transporter of an e-way bill made from an IRN (NIC field names).
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    pub distance: u64,
    pub trans_mode: Option<TransMode>,
    pub trans_id: Option<String>,
    pub trans_name: Option<String>,
    pub trans_doc_no: Option<String>,
    pub trans_doc_dt: Option<DocDate>,
    pub veh_no: Option<String>,
    pub veh_type: Option<String>,
}

impl Transport {
    /// The generate-by-IRN request body, as NIC and Whitebooks both take it.
    pub fn request(&self, irn: &str) -> Value {
        let mut m = Map::new();
        m.insert("Irn".into(), json!(irn));
        m.insert("Distance".into(), json!(self.distance));
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        };
        put("TransMode", self.trans_mode.map(|t| t.code().to_string()));
        put("TransId", self.trans_id.clone());
        put("TransName", self.trans_name.clone());
        put("TransDocNo", self.trans_doc_no.clone());
        put("TransDocDt", self.trans_doc_dt.map(|d| d.to_string()));
        put("VehNo", self.veh_no.clone());
        put("VehType", self.veh_type.clone());
        Value::Object(m)
    }
}

/// An e-way bill named by its number or by the IRN it was made from.
#[derive(Debug, Clone, PartialEq)]
pub enum EwbTarget {
    EwbNo(String),
    Irn(String),
}

/// E-way bill cancel reasons. Not the IRN's: here 2 is "order cancelled" and 3 "data entry mistake".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EwbCancelReason {
    Duplicate = 1,
    OrderCancelled = 2,
    DataEntryMistake = 3,
    Others = 4,
}

impl EwbCancelReason {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "1" => Some(Self::Duplicate),
            "2" => Some(Self::OrderCancelled),
            "3" => Some(Self::DataEntryMistake),
            "4" => Some(Self::Others),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Self::Duplicate => "1",
            Self::OrderCancelled => "2",
            Self::DataEntryMistake => "3",
            Self::Others => "4",
        }
    }
    /// The e-way bill reason for an IRN cancelled with `r` (same meaning, other number).
    pub fn for_irn_reason(r: super::CancelReason) -> Self {
        match r {
            super::CancelReason::Duplicate => Self::Duplicate,
            super::CancelReason::DataEntryMistake => Self::DataEntryMistake,
            super::CancelReason::OrderCancelled => Self::OrderCancelled,
            super::CancelReason::Others => Self::Others,
        }
    }
}

/// A Part-B (vehicle) update, as the e-way bill API's `VEHEWB` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleUpdate {
    pub vehicle_no: String,
    pub from_place: String,
    pub from_state: u32,
    /// 1 breakdown, 2 transshipment, 3 others, 4 first time.
    pub reason: String,
    pub remark: String,
    pub trans_mode: TransMode,
    pub trans_doc_no: Option<String>,
    pub trans_doc_date: Option<DocDate>,
    pub vehicle_type: Option<String>,
}

impl VehicleUpdate {
    /// The `VEHEWB` payload for e-way bill `ewb_no`.
    pub fn request(&self, ewb_no: &str) -> Value {
        json!({
            "ewbNo": ewb_no.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(ewb_no)),
            "vehicleNo": self.vehicle_no,
            "fromPlace": self.from_place,
            "fromState": self.from_state,
            "reasonCode": self.reason,
            "reasonRem": self.remark,
            "transDocNo": self.trans_doc_no.clone().unwrap_or_default(),
            "transDocDate": self.trans_doc_date.map(|d| d.to_string()).unwrap_or_default(),
            "transMode": self.trans_mode.code(),
            "vehicleType": self.vehicle_type.clone().unwrap_or_else(|| "R".into()),
        })
    }
}

/// Checks `v` at `path` under a transport text rule: its length ([`code::TEXT_LENGTH`]), then its
/// format (the rule's code), as the invoice's `EwbDtls` is checked.
pub(super) fn check_text(rule: &TextRule, v: &str, path: &str, problems: &mut Vec<Problem>) {
    if let Err(fault) = rule.check(v) {
        let message = match fault {
            transport::Fault::Length(n) => {
                format!("'{v}' has {n} characters; {path} must have {} to {}", rule.len.0, rule.len.1)
            }
            transport::Fault::Format => format!("'{v}' is not valid: {path} must be {}", rule.expected),
        };
        problems.push(Problem::new(path, rule.code_for(fault), message));
    }
}

/// A transport mode at `path`, reported with [`code::TRANS_MODE_INVALID`].
pub(super) fn trans_mode(m: &str, path: &str, problems: &mut Vec<Problem>) -> Option<TransMode> {
    let p = TransMode::parse(m);
    if p.is_none() {
        problems.push(Problem::new(
            path,
            code::TRANS_MODE_INVALID,
            format!("'{m}' is not a transport mode: use 1 (Road), 2 (Rail), 3 (Air) or 4 (Ship)"),
        ));
    }
    p
}

/// A `dd/MM/yyyy` date at `path` that is not after `today`.
pub(super) fn past_date(s: &str, path: &str, today: NaiveDate, problems: &mut Vec<Problem>) -> Option<DocDate> {
    match DocDate::parse(s) {
        Ok(d) if d.date() > today => {
            problems.push(Problem::new(path, code::DATE_IN_FUTURE, format!("{path} '{s}' is after today ({today})")));
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            problems.push(Problem::new(path, code::DATE_INVALID, format!("'{s}' is not a date in dd/MM/yyyy form")));
            None
        }
    }
}

/// The rail document rule (NIC's additional validations of 17 Dec 2024, in force by Jan 2026,
/// behind `rail_doc_rules`): by rail, the transport document number is a railway receipt of 9
/// digits or a parcel way bill of 10; the portal answers 4042 "Invalid RR number" otherwise.
pub fn rail_doc_problem(doc_no: &str, path: &str) -> Option<Problem> {
    let ok = matches!(doc_no.len(), 9 | 10) && doc_no.bytes().all(|b| b.is_ascii_digit());
    (!ok).then(|| {
        Problem::new(
            path,
            code::RAIL_DOC_NO_FORMAT,
            format!(
                "'{doc_no}' is not a railway receipt (9 digits) or a parcel way bill (10 digits): by rail (mode 2) the transport document must be one (e-way bill error 4042, rule in force since January 2026)"
            ),
        )
    })
}

/// The 180-day rule: `doc_date` at `path` must be at most that old on `today`.
pub fn document_age_problem(doc_date: DocDate, today: NaiveDate, path: &str) -> Option<Problem> {
    let age = (today - doc_date.date()).num_days();
    (age > MAX_DOCUMENT_AGE_DAYS).then(|| {
        Problem::new(
            path,
            code::DOCUMENT_TOO_OLD,
            format!(
                "the document is dated {doc_date}, {age} days ago; an e-way bill can only be made for a document at most {MAX_DOCUMENT_AGE_DAYS} days old (e-way bill error 820)"
            ),
        )
    })
}

/// `ewaybill.generate`: the IRN (or document) and its transport details.
pub(super) fn parse_generate(
    r: &mut Reader<'_>,
    body: &Value,
    today: NaiveDate,
    rail_rule: bool,
) -> (Option<Target>, Option<Transport>) {
    let irn = r.irn("irn");
    let doc = doc_ref(body, "document", &mut r.problems);
    if let Some(DocRef { doc_date, .. }) = &doc {
        r.problems.extend(document_age_problem(*doc_date, today, "document.doc_date"));
    }
    let target = target(irn, doc, body, &mut r.problems);
    let transport = parse_transport_field(body, today, rail_rule, &mut r.problems);
    (target, transport)
}

/// `transport`: Part B and the transporter, in both forms of `ewaybill.generate`.
pub(super) fn parse_transport_field(
    body: &Value,
    today: NaiveDate,
    rail_rule: bool,
    problems: &mut Vec<Problem>,
) -> Option<Transport> {
    match body.get("transport") {
        Some(Value::Object(t)) => parse_transport(t, today, rail_rule, problems),
        None | Some(Value::Null) => {
            problems.push(Problem::new(
                "transport",
                code::REQUIRED,
                "'transport' is required: {Distance, TransMode?, TransId?, TransName?, TransDocNo?, TransDocDt?, VehNo?, VehType?}",
            ));
            None
        }
        Some(_) => {
            problems.push(Problem::new("transport", code::INVALID_TYPE, "'transport' must be an object"));
            None
        }
    }
}

fn parse_transport(
    t: &Map<String, Value>,
    today: NaiveDate,
    rail_rule: bool,
    problems: &mut Vec<Problem>,
) -> Option<Transport> {
    let body = Value::Object(t.clone());
    let mut r = Reader::nested(&body, false);
    let distance = match t.get("Distance") {
        None | Some(Value::Null) => {
            r.problems.push(Problem::new(
                "Distance",
                code::REQUIRED,
                "'Distance' (km) is required; send 0 to let NIC compute the PIN-to-PIN distance",
            ));
            return finish(r, problems, None);
        }
        Some(d) => transport::distance_km(d),
    };
    let distance = match distance {
        Some(d) => Some(d),
        None => {
            r.problems.push(Problem::new(
                "Distance",
                code::DISTANCE_OUT_OF_RANGE,
                format!(
                    "Distance {} must be a whole number of km from 0 to {MAX_DISTANCE_KM} (0: NIC computes it)",
                    t["Distance"]
                ),
            ));
            None
        }
    };
    let trans_mode = r.opt_str("TransMode").and_then(|m| trans_mode(&m, "TransMode", &mut r.problems));
    // A GSTIN (with its check digit) or a TRANSIN (`88…`, which has none).
    let trans_id = r.opt_str("TransId").map(|s| s.to_ascii_uppercase()).filter(|s| !s.is_empty());
    if let Some(id) = &trans_id {
        let parsed = TransporterId::parse(id, false);
        if !transport::is_trans_id_shape(id) || parsed.is_err() {
            let why = parsed.err().unwrap_or_else(|| format!("'{id}' is not a transporter GSTIN or TRANSIN"));
            r.problems.push(Problem::new("TransId", code::TRANS_ID_INVALID, why));
        }
    }
    let trans_name = r.opt_str("TransName").filter(|s| !s.is_empty());
    if let Some(n) = &trans_name {
        let (min, max) = transport::TRANS_NAME_LEN;
        let len = n.chars().count();
        if !(min..=max).contains(&len) {
            r.problems.push(Problem::new(
                "TransName",
                code::TEXT_LENGTH,
                format!("'{n}' has {len} characters; TransName must have {min} to {max}"),
            ));
        }
    }
    let trans_doc_no = r.opt_str("TransDocNo").filter(|s| !s.is_empty());
    if let Some(n) = &trans_doc_no {
        check_text(&transport::TRANS_DOC_NO, n, "TransDocNo", &mut r.problems);
        if rail_rule && trans_mode == Some(TransMode::Rail) {
            r.problems.extend(rail_doc_problem(n, "TransDocNo"));
        }
    }
    let trans_doc_dt = r
        .opt_str("TransDocDt")
        .filter(|s| !s.is_empty())
        .and_then(|d| past_date(&d, "TransDocDt", today, &mut r.problems));
    let veh_no = r.opt_str("VehNo").filter(|s| !s.is_empty()).map(|v| normalise_vehicle(&v));
    if let Some(v) = &veh_no {
        check_text(&transport::VEHICLE_NO, v, "VehNo", &mut r.problems);
    }
    let veh_type = r.opt_str("VehType").filter(|s| !s.is_empty()).map(|s| s.to_ascii_uppercase());
    if let Some(v) = &veh_type {
        check_text(&transport::VEHICLE_TYPE, v, "VehType", &mut r.problems);
    }
    // Part B needs a mode and what that mode moves under; without it, the transporter fills it in.
    match trans_mode {
        Some(TransMode::Road) if veh_no.is_none() && trans_id.is_none() => r.problems.push(Problem::new(
            "VehNo",
            code::REQUIRED,
            "TransMode 1 (Road) needs VehNo (or TransId, to let the transporter enter the vehicle)",
        )),
        Some(TransMode::Rail | TransMode::Air | TransMode::Ship)
            if trans_doc_no.is_none() || trans_doc_dt.is_none() =>
        {
            r.problems.push(Problem::new(
                if trans_doc_no.is_none() { "TransDocNo" } else { "TransDocDt" },
                code::REQUIRED,
                "TransMode 2 (Rail), 3 (Air) and 4 (Ship) need TransDocNo and TransDocDt",
            ))
        }
        None if trans_id.is_none() => r.problems.push(Problem::new(
            "TransMode",
            code::REQUIRED,
            "either TransMode (with VehNo or TransDocNo) or TransId (the transporter fills Part B) is required",
        )),
        None if veh_no.is_some() || trans_doc_no.is_some() => r.problems.push(Problem::new(
            "TransMode",
            code::REQUIRED,
            "VehNo and TransDocNo are Part B details and need TransMode",
        )),
        _ => {}
    }
    let t = distance.map(|distance| Transport {
        distance,
        trans_mode,
        trans_id,
        trans_name,
        trans_doc_no,
        trans_doc_dt,
        veh_no,
        veh_type,
    });
    finish(r, problems, t)
}

fn finish<T>(r: Reader<'_>, problems: &mut Vec<Problem>, t: Option<T>) -> Option<T> {
    let ok = r.problems.is_empty();
    problems.extend(r.problems.into_iter().map(|mut p| {
        p.path = format!("transport.{}", p.path);
        p
    }));
    t.filter(|_| ok)
}

/// `from_place`, the place a vehicle change or an extension is made from: 1 to 50 characters.
pub(super) fn from_place(r: &mut Reader<'_>) -> Option<String> {
    let from_place = r.req_str("from_place");
    if let Some(p) = &from_place {
        if !(1..=50).contains(&p.chars().count()) {
            r.problems.push(Problem::new(
                "from_place",
                code::LENGTH_INVALID,
                "from_place must have 1 to 50 characters",
            ));
        }
    }
    from_place
}

/// An Indian state code at `field` (`29`, or `"9"` for `09`), reported with [`code::STATE_CODE_INVALID`].
pub(super) fn state_code(r: &mut Reader<'_>, field: &str) -> Option<u32> {
    r.req_str(field).and_then(|s| {
        let code = format!("{:0>2}", s.trim());
        match code.parse::<u32>() {
            Ok(n) if codes::is_valid_state_code(&code) && code != codes::OTHER_COUNTRIES => Some(n),
            _ => {
                r.problems.push(Problem::new(
                    field,
                    code::STATE_CODE_INVALID,
                    format!("'{s}' is not an Indian state code (such as 29 for Karnataka)"),
                ));
                None
            }
        }
    })
}

/// `ewb_no` or `irn`: which e-way bill an update or cancel is for.
pub(super) fn parse_ewb_target(r: &mut Reader<'_>) -> Option<EwbTarget> {
    let ewb_no = r.opt_str("ewb_no").filter(|s| !s.is_empty());
    if let Some(n) = &ewb_no {
        if let Err(e) = crate::domain::portal::EwbNo::parse(n) {
            r.problems.push(Problem::new("ewb_no", code::EWB_NO_INVALID, e.to_string()));
            return None;
        }
        return Some(EwbTarget::EwbNo(n.clone()));
    }
    match r.irn("irn") {
        Some(irn) => Some(EwbTarget::Irn(irn)),
        None => {
            if !r.problems.iter().any(|p| p.path == "irn") {
                r.problems.push(Problem::new("ewb_no", code::REQUIRED, "either 'ewb_no' or 'irn' is required"));
            }
            None
        }
    }
}

/// `reason` 1–4 and a remark of at most 50 characters; `names` describes the codes.
fn reason_and_remark(r: &mut Reader<'_>, names: &str) -> (Option<String>, Option<String>) {
    reason_and_remark_of(r, &["1", "2", "3", "4"], names)
}

/// `reason` (one of `codes`) and a remark of at most 50 characters; `names` describes the codes.
pub(super) fn reason_and_remark_of(
    r: &mut Reader<'_>,
    codes: &[&str],
    names: &str,
) -> (Option<String>, Option<String>) {
    let reason = r.req_str("reason").and_then(|s| {
        if codes.contains(&s.as_str()) {
            Some(s)
        } else {
            r.problems.push(Problem::new(
                "reason",
                code::REASON_INVALID,
                format!("'{s}' is not a reason code: use {names}"),
            ));
            None
        }
    });
    let remark = r.req_str("remark").and_then(|s| {
        let n = s.chars().count();
        if n == 0 {
            r.problems.push(Problem::new("remark", code::REQUIRED, "'remark' must not be empty"));
            None
        } else if n > EWB_REMARK_MAX {
            r.problems.push(Problem::new(
                "remark",
                code::REMARK_TOO_LONG,
                format!("the remark has {n} characters; the e-way bill system allows {EWB_REMARK_MAX}"),
            ));
            None
        } else {
            Some(s)
        }
    });
    (reason, remark)
}

pub(super) fn parse_cancel(r: &mut Reader<'_>) -> (Option<EwbTarget>, Option<EwbCancelReason>, Option<String>) {
    let target = parse_ewb_target(r);
    let (reason, remark) =
        reason_and_remark(r, "1 (Duplicate), 2 (Order cancelled), 3 (Data entry mistake) or 4 (Others)");
    (target, reason.and_then(|s| EwbCancelReason::parse(&s)), remark)
}

pub(super) fn parse_update_vehicle(
    r: &mut Reader<'_>,
    today: NaiveDate,
    rail_rule: bool,
) -> (Option<EwbTarget>, Option<VehicleUpdate>) {
    let target = parse_ewb_target(r);
    let vehicle_no = r.req_str("vehicle_no").map(|v| normalise_vehicle(&v));
    if let Some(v) = &vehicle_no {
        check_text(&transport::VEHICLE_NO, v, "vehicle_no", &mut r.problems);
    }
    let from_place = from_place(r);
    let from_state = state_code(r, "from_state");
    let (reason, remark) = reason_and_remark(r, "1 (Breakdown), 2 (Transshipment), 3 (Others) or 4 (First time)");
    let trans_mode = r.req_str("trans_mode").and_then(|m| trans_mode(&m, "trans_mode", &mut r.problems));
    let trans_doc_no = r.opt_str("trans_doc_no").filter(|s| !s.is_empty());
    if let Some(n) = &trans_doc_no {
        check_text(&transport::TRANS_DOC_NO, n, "trans_doc_no", &mut r.problems);
        if rail_rule && trans_mode == Some(TransMode::Rail) {
            r.problems.extend(rail_doc_problem(n, "trans_doc_no"));
        }
    }
    let trans_doc_date = r
        .opt_str("trans_doc_date")
        .filter(|s| !s.is_empty())
        .and_then(|d| past_date(&d, "trans_doc_date", today, &mut r.problems));
    if matches!(trans_mode, Some(TransMode::Rail | TransMode::Air | TransMode::Ship))
        && (trans_doc_no.is_none() || trans_doc_date.is_none())
        && !r.problems.iter().any(|p| p.path.starts_with("trans_doc"))
    {
        r.problems.push(Problem::new(
            if trans_doc_no.is_none() { "trans_doc_no" } else { "trans_doc_date" },
            code::REQUIRED,
            "trans_mode 2 (Rail), 3 (Air) and 4 (Ship) need trans_doc_no and trans_doc_date",
        ));
    }
    let vehicle_type = r.opt_str("vehicle_type").filter(|s| !s.is_empty()).map(|s| s.to_ascii_uppercase());
    if let Some(v) = &vehicle_type {
        check_text(&transport::VEHICLE_TYPE, v, "vehicle_type", &mut r.problems);
    }
    let update = match (vehicle_no, from_place, from_state, reason, remark, trans_mode) {
        (Some(vehicle_no), Some(from_place), Some(from_state), Some(reason), Some(remark), Some(trans_mode)) => {
            Some(VehicleUpdate {
                vehicle_no,
                from_place,
                from_state,
                reason,
                remark,
                trans_mode,
                trans_doc_no,
                trans_doc_date,
                vehicle_type,
            })
        }
        _ => None,
    };
    (target, update)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_command, Command, ParseOptions};
    use serde_json::json;

    const G: &str = "29AAGCP4821K1Z3";
    const IRN: &str = "a3f1c9b2e4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f";

    fn problems(rk: &str, body: serde_json::Value) -> Vec<(String, String)> {
        match parse_command(rk, body.to_string().as_bytes(), &ParseOptions::default()) {
            Ok(p) => panic!("expected problems, parsed {:?}", p.command),
            Err(r) => r.problems.into_iter().map(|p| (p.path, p.code)).collect(),
        }
    }

    #[test]
    fn generate_by_irn_parses_and_builds_the_nic_body() {
        let body = json!({"gstin": G, "irn": IRN, "transport": {"Distance": 120, "TransMode": "1", "VehNo": "ka 01-ab 1234", "VehType": "r"}});
        let p = parse_command("ewaybill.generate", body.to_string().as_bytes(), &ParseOptions::default()).unwrap();
        let Command::EwaybillGenerate(super::super::ewaybill_generate::EwaybillGenerate { transport, .. }) = p.command
        else {
            panic!("{:?}", p.command)
        };
        let req = transport.request(IRN);
        assert_eq!(req, json!({"Irn": IRN, "Distance": 120, "TransMode": "1", "VehNo": "KA01AB1234", "VehType": "R"}));
    }

    #[test]
    fn generate_collects_every_transport_problem_with_its_path() {
        let old = (crate::domain::invoice::india_today() - chrono::Duration::days(200)).format("%d/%m/%Y").to_string();
        let body = json!({"gstin": G, "document": {"doc_type": "INV", "doc_number": "A/1", "doc_date": old},
            "transport": {"Distance": 4001, "TransMode": "5", "VehNo": "DL1C1234", "VehType": "Z", "TransDocDt": "31/02/2025",
                "TransDocNo": "LR#88213", "TransName": "VR"}});
        let got = problems("ewaybill.generate", body);
        for want in [
            ("document.doc_date", "DOCUMENT_TOO_OLD"),
            ("transport.Distance", "DISTANCE_OUT_OF_RANGE"),
            ("transport.TransMode", "TRANS_MODE_INVALID"),
            ("transport.VehNo", "VEHICLE_NO_INVALID"),
            ("transport.VehType", "VEHICLE_TYPE"),
            ("transport.TransDocDt", "DATE_INVALID"),
            ("transport.TransDocNo", "TRANS_DOC_NO_FORMAT"),
            ("transport.TransName", "TEXT_LENGTH"),
        ] {
            assert!(got.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {got:?}");
        }
        let got = problems(
            "ewaybill.generate",
            json!({"gstin": G, "irn": IRN, "transport": {"Distance": 10, "TransMode": "2"}}),
        );
        assert!(got.contains(&("transport.TransDocNo".into(), "REQUIRED".into())), "{got:?}");
        let got = problems("ewaybill.generate", json!({"gstin": G, "irn": IRN}));
        assert_eq!(got, vec![("transport".to_string(), "REQUIRED".to_string())]);
    }

    #[test]
    fn cancel_and_vehicle_update_check_reasons_and_remarks() {
        let got =
            problems("ewaybill.cancel", json!({"gstin": G, "ewb_no": "12", "reason": "5", "remark": "x".repeat(51)}));
        for want in [("ewb_no", "EWB_NO_INVALID"), ("reason", "REASON_INVALID"), ("remark", "REMARK_TOO_LONG")] {
            assert!(got.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {got:?}");
        }
        let ok = json!({"gstin": G, "irn": IRN, "reason": "2", "remark": "order cancelled"});
        let p = parse_command("ewaybill.cancel", ok.to_string().as_bytes(), &ParseOptions::default()).unwrap();
        assert!(matches!(p.command, Command::EwaybillCancel(c) if c.reason == super::EwbCancelReason::OrderCancelled));
        let got = problems(
            "ewaybill.update_vehicle",
            json!({"gstin": G, "ewb_no": "181000000001", "vehicle_no": "12345", "from_place": "", "from_state": "77", "reason": "1", "remark": "breakdown", "trans_mode": "1",
                "trans_doc_no": "LR-8821300000001", "vehicle_type": "X"}),
        );
        for want in [
            ("vehicle_no", "VEHICLE_NO_INVALID"),
            ("from_place", "LENGTH_INVALID"),
            ("from_state", "STATE_CODE_INVALID"),
            ("trans_doc_no", "TEXT_LENGTH"),
            ("vehicle_type", "VEHICLE_TYPE"),
        ] {
            assert!(got.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {got:?}");
        }
    }

    #[test]
    fn vehicle_numbers_get_the_invoices_codes() {
        let update = |vehicle: &str| json!({"gstin": G, "ewb_no": "181000000001", "vehicle_no": vehicle, "from_place": "Tumakuru", "from_state": "29", "reason": "1", "remark": "breakdown", "trans_mode": "1"});
        for ok in ["ka 01-ab 1234", "MH12A1234", "DL01C1234", "TR0123456789", "22BH1234AA", "BP1234567", "ABC1234"] {
            let p =
                parse_command("ewaybill.update_vehicle", update(ok).to_string().as_bytes(), &ParseOptions::default());
            assert!(p.is_ok(), "{ok}: {:?}", p.err());
        }
        for (bad, code) in
            [("K1", "TEXT_LENGTH"), ("1234KA01", "VEHICLE_NO_INVALID"), ("DL1C1234", "VEHICLE_NO_INVALID")]
        {
            assert_eq!(
                problems("ewaybill.update_vehicle", update(bad)),
                vec![("vehicle_no".to_string(), code.to_string())]
            );
        }
    }
}
