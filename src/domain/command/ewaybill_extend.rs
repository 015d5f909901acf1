//! `ewaybill.extend`: extend an active e-way bill's validity (`EXTENDVALIDITY`).
//!
//! What the body alone can tell is checked here, with paths: the consignment status (`M` moving,
//! with its mode and vehicle or transport document; `T` in transit, with the transit type `R`
//! road / `W` warehouse / `O` others and the transit address), where it is extended from (place,
//! state, PIN), the remaining distance, the reason and remark. The rules that need the e-way bill
//! (the 8-hour window around its expiry, the remaining distance against the original, the
//! 360-day life) are the handler's, before any call: [`extension_refusal`].
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::ewaybill::{
    check_text, from_place, parse_ewb_target, past_date, rail_doc_problem, reason_and_remark_of, state_code,
    trans_mode, EwbTarget, TransMode, MAX_DISTANCE_KM,
};
use super::{CommandBody, ParseOptions, Reader};
use crate::domain::problem::code;
use crate::domain::transport::{self, normalise_vehicle};
use crate::domain::{DocDate, Gstin, Problem};

/// An extension is allowed from this long before the e-way bill's expiry to this long after it
/// (e-way bill error 382).
pub const EXTEND_WINDOW_HOURS: i64 = 8;
/// An e-way bill lives at most this many days from its generation, extensions included (821).
pub const MAX_LIFE_DAYS: i64 = 360;
/// The e-way bill system's extension reasons.
pub const EXTEND_REASONS: &[&str] = &["1", "2", "3", "4", "99"];
const REASON_NAMES: &str = "1 (Natural calamity), 2 (Law and order), 3 (Transshipment), 4 (Accident) or 99 (Others)";

/// Where the goods are while the validity is extended.
#[derive(Debug, Clone, PartialEq)]
pub enum Consignment {
    /// `M`: moving, by `mode` with its vehicle (road) or transport document.
    Moving {
        mode: TransMode,
        vehicle_no: Option<String>,
        trans_doc_no: Option<String>,
        trans_doc_date: Option<DocDate>,
    },
    /// `T`: in transit, stored at `address`; `transit_type` R (road), W (warehouse), O (others).
    InTransit { transit_type: char, address: [String; 3] },
}

/// An `EXTENDVALIDITY` request, as checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtendValidity {
    pub consignment: Consignment,
    pub from_place: String,
    pub from_state: u32,
    pub from_pincode: u32,
    pub remaining_distance: u64,
    pub reason: String,
    pub remark: String,
}

impl ExtendValidity {
    /// The `EXTENDVALIDITY` payload for e-way bill `ewb_no` (NIC e-way bill API v1.03 field names).
    pub fn request(&self, ewb_no: &str) -> Value {
        let no = ewb_no.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(ewb_no));
        let mut v = json!({
            "ewbNo": no,
            "fromPlace": self.from_place,
            "fromState": self.from_state,
            "fromPincode": self.from_pincode,
            "remainingDistance": self.remaining_distance,
            "extnRsnCode": self.reason,
            "extnRemarks": self.remark,
        });
        match &self.consignment {
            Consignment::Moving { mode, vehicle_no, trans_doc_no, trans_doc_date } => {
                v["consignmentStatus"] = json!("M");
                v["transMode"] = json!(mode.code());
                v["vehicleNo"] = json!(vehicle_no.clone().unwrap_or_default());
                v["transDocNo"] = json!(trans_doc_no.clone().unwrap_or_default());
                v["transDocDate"] = json!(trans_doc_date.map(|d| d.to_string()).unwrap_or_default());
                v["transitType"] = json!("");
            }
            Consignment::InTransit { transit_type, address } => {
                // In transit the goods have no vehicle: mode 5 ("in transit").
                v["consignmentStatus"] = json!("T");
                v["transMode"] = json!("5");
                v["vehicleNo"] = json!("");
                v["transDocNo"] = json!("");
                v["transDocDate"] = json!("");
                v["transitType"] = json!(transit_type.to_string());
                v["addressLine1"] = json!(address[0]);
                v["addressLine2"] = json!(address[1]);
                v["addressLine3"] = json!(address[2]);
            }
        }
        v
    }
}

/// How long an e-way bill is valid for `distance_km` (regular cargo): a day per 200 km or part.
pub fn validity_days(distance_km: u64) -> i64 {
    (distance_km.max(1) as i64 + 199) / 200
}

/// What the e-way bill system would refuse about extending now (`now`) an e-way bill valid till
/// `valid_till`, made at `generated` for `original_distance` km: the window (382), the remaining
/// distance (390) and the 360-day life (821). Each problem names its rule.
pub fn extension_refusal(
    now: DateTime<Utc>,
    valid_till: Option<DateTime<Utc>>,
    generated: Option<DateTime<Utc>>,
    original_distance: Option<u64>,
    remaining_distance: u64,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let fmt = |t: DateTime<Utc>| crate::irp::types::format_ist(t);
    if let Some(till) = valid_till {
        let opens = till - Duration::hours(EXTEND_WINDOW_HOURS);
        let closes = till + Duration::hours(EXTEND_WINDOW_HOURS);
        if now < opens || now > closes {
            problems.push(Problem::new(
                "ewb_no",
                code::EXTEND_OUTSIDE_WINDOW,
                format!(
                    "an e-way bill can only be extended from {EXTEND_WINDOW_HOURS} hours before to {EXTEND_WINDOW_HOURS} hours after it expires (e-way bill error 382): this one is valid till {} (India time), so between {} and {}",
                    fmt(till),
                    fmt(opens),
                    fmt(closes)
                ),
            ));
        }
    }
    if let Some(orig) = original_distance.filter(|d| *d > 0) {
        if remaining_distance > orig {
            problems.push(Problem::new(
                "remaining_distance",
                code::REMAINING_DISTANCE_TOO_LONG,
                format!(
                    "remaining_distance {remaining_distance} km is more than the e-way bill's distance of {orig} km; it may not be greater (e-way bill error 390)"
                ),
            ));
        }
    }
    if let (Some(made), Some(till)) = (generated, valid_till) {
        let cap = made + Duration::days(MAX_LIFE_DAYS);
        let new_till = till.max(now) + Duration::days(validity_days(remaining_distance));
        if new_till > cap {
            problems.push(Problem::new(
                "remaining_distance",
                code::EXTEND_PAST_MAX_LIFE,
                format!(
                    "an e-way bill lives at most {MAX_LIFE_DAYS} days from its generation (e-way bill error 821): this one was made {} (India time), so it ends by {}; {remaining_distance} km more would take it to {}",
                    fmt(made),
                    fmt(cap),
                    fmt(new_till)
                ),
            ));
        }
    }
    problems
}

#[derive(Debug, Clone)]
pub struct EwaybillExtend {
    pub gstin: Gstin,
    pub target: EwbTarget,
    pub extend: ExtendValidity,
}

impl CommandBody for EwaybillExtend {
    fn parse(r: &mut Reader<'_>, opts: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let target = parse_ewb_target(r);
        let rail_rule = opts.validation.rail_doc_rules.active(opts.validation.today);
        let extend = parse_extend(r, opts.validation.today, rail_rule);
        Some(EwaybillExtend { gstin: gstin?, target: target?, extend: extend? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }
}

fn parse_extend(r: &mut Reader<'_>, today: chrono::NaiveDate, rail_rule: bool) -> Option<ExtendValidity> {
    let from_place = from_place(r);
    let from_state = state_code(r, "from_state");
    let from_pincode = r.req_str("from_pincode").and_then(|s| match s.parse::<u32>() {
        Ok(n) if s.len() == 6 && (100_000..=999_999).contains(&n) => Some(n),
        _ => {
            r.problems.push(Problem::new(
                "from_pincode",
                code::PIN_FORMAT,
                format!("'{s}' is not a PIN code (6 digits, not starting with 0)"),
            ));
            None
        }
    });
    let remaining_distance = match r.body.get("remaining_distance") {
        None | Some(Value::Null) => {
            r.problems.push(Problem::new(
                "remaining_distance",
                code::REQUIRED,
                "'remaining_distance' (km still to go) is required (e-way bill error 389)",
            ));
            None
        }
        Some(d) => match transport::distance_km(d).filter(|d| *d >= 1) {
            Some(d) => Some(d),
            None => {
                r.problems.push(Problem::new(
                    "remaining_distance",
                    code::DISTANCE_OUT_OF_RANGE,
                    format!("remaining_distance {d} must be a whole number of km from 1 to {MAX_DISTANCE_KM}"),
                ));
                None
            }
        },
    };
    let (reason, remark) = reason_and_remark_of(r, EXTEND_REASONS, REASON_NAMES);
    let status = r.req_str("consignment_status").map(|s| s.to_ascii_uppercase());
    let consignment = match status.as_deref() {
        Some("M") => moving(r, today, rail_rule),
        Some("T") => in_transit(r),
        Some(s) => {
            r.problems.push(Problem::new(
                "consignment_status",
                code::CONSIGNMENT_STATUS_INVALID,
                format!("'{s}' is not a consignment status: use M (in movement) or T (in transit)"),
            ));
            None
        }
        None => None,
    };
    Some(ExtendValidity {
        consignment: consignment?,
        from_place: from_place?,
        from_state: from_state?,
        from_pincode: from_pincode?,
        remaining_distance: remaining_distance?,
        reason: reason?,
        remark: remark?,
    })
}

/// `M`: the mode, and the vehicle (road) or the transport document (rail, air, ship).
fn moving(r: &mut Reader<'_>, today: chrono::NaiveDate, rail_rule: bool) -> Option<Consignment> {
    for f in ["transit_type", "transit_address"] {
        if r.body.get(f).is_some_and(|v| !v.is_null()) {
            r.problems.push(Problem::new(
                f,
                code::CONSIGNMENT_STATUS_INVALID,
                format!("'{f}' belongs to consignment_status T (in transit); goods in movement (M) have none"),
            ));
        }
    }
    let mode = r.req_str("trans_mode").and_then(|m| trans_mode(&m, "trans_mode", &mut r.problems));
    let vehicle_no = r.opt_str("vehicle_no").filter(|s| !s.is_empty()).map(|v| normalise_vehicle(&v));
    if let Some(v) = &vehicle_no {
        check_text(&transport::VEHICLE_NO, v, "vehicle_no", &mut r.problems);
    }
    let trans_doc_no = r.opt_str("trans_doc_no").filter(|s| !s.is_empty());
    if let Some(n) = &trans_doc_no {
        check_text(&transport::TRANS_DOC_NO, n, "trans_doc_no", &mut r.problems);
        if rail_rule && mode == Some(TransMode::Rail) {
            r.problems.extend(rail_doc_problem(n, "trans_doc_no"));
        }
    }
    let trans_doc_date = r
        .opt_str("trans_doc_date")
        .filter(|s| !s.is_empty())
        .and_then(|d| past_date(&d, "trans_doc_date", today, &mut r.problems));
    match mode {
        Some(TransMode::Road) if vehicle_no.is_none() && !r.problems.iter().any(|p| p.path == "vehicle_no") => {
            r.problems.push(Problem::new(
                "vehicle_no",
                code::REQUIRED,
                "consignment_status M with trans_mode 1 (Road) needs vehicle_no",
            ));
        }
        Some(TransMode::Rail | TransMode::Air | TransMode::Ship)
            if (trans_doc_no.is_none() || trans_doc_date.is_none())
                && !r.problems.iter().any(|p| p.path.starts_with("trans_doc")) =>
        {
            r.problems.push(Problem::new(
                if trans_doc_no.is_none() { "trans_doc_no" } else { "trans_doc_date" },
                code::REQUIRED,
                "trans_mode 2 (Rail), 3 (Air) and 4 (Ship) need trans_doc_no and trans_doc_date (e-way bill error 385)",
            ));
        }
        _ => {}
    }
    Some(Consignment::Moving { mode: mode?, vehicle_no, trans_doc_no, trans_doc_date })
}

/// `T`: the transit type and the address the goods wait at.
fn in_transit(r: &mut Reader<'_>) -> Option<Consignment> {
    for f in ["vehicle_no", "trans_doc_no"] {
        if r.body.get(f).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty()) {
            r.problems.push(Problem::new(
                f,
                code::CONSIGNMENT_STATUS_INVALID,
                format!("goods in transit (consignment_status T) have no '{f}'; use M when they move"),
            ));
        }
    }
    let transit_type = r.req_str("transit_type").and_then(|s| match s.to_ascii_uppercase().as_str() {
        "R" => Some('R'),
        "W" => Some('W'),
        "O" => Some('O'),
        _ => {
            r.problems.push(Problem::new(
                "transit_type",
                code::TRANSIT_TYPE_INVALID,
                format!("'{s}' is not a transit type: use R (road), W (warehouse) or O (others)"),
            ));
            None
        }
    });
    let address = match r.body.get("transit_address") {
        Some(Value::Object(_)) => {
            let body = r.body["transit_address"].clone();
            let mut a = Reader::nested(&body, r.relaxed);
            let mut lines: [String; 3] = Default::default();
            for (i, f) in ["line1", "line2", "line3"].iter().enumerate() {
                let v = if i == 0 { a.req_str(f) } else { a.opt_str(f) }.unwrap_or_default();
                if v.chars().count() > 120 {
                    a.problems.push(Problem::new(*f, code::TEXT_LENGTH, format!("{f} has more than 120 characters")));
                }
                if i == 0 && v.is_empty() && !a.problems.iter().any(|p| p.path == *f) {
                    a.problems.push(Problem::new(*f, code::REQUIRED, "the transit address needs line1"));
                }
                lines[i] = v;
            }
            let ok = a.problems.is_empty();
            r.problems.extend(a.problems.into_iter().map(|mut p| {
                p.path = format!("transit_address.{}", p.path);
                p
            }));
            ok.then_some(lines)
        }
        None | Some(Value::Null) => {
            r.problems.push(Problem::new(
                "transit_address",
                code::REQUIRED,
                "consignment_status T needs transit_address {line1, line2?, line3?}: where the goods wait",
            ));
            None
        }
        Some(_) => {
            r.problems.push(Problem::new("transit_address", code::INVALID_TYPE, "'transit_address' must be an object"));
            None
        }
    };
    Some(Consignment::InTransit { transit_type: transit_type?, address: address? })
}

#[cfg(test)]
mod tests {
    use super::super::{parse_command, Command, ParseOptions};
    use super::*;
    use serde_json::json;

    const G: &str = "29AAGCP4821K1Z3";

    fn problems(body: Value) -> Vec<(String, String)> {
        match parse_command("ewaybill.extend", body.to_string().as_bytes(), &ParseOptions::default()) {
            Ok(p) => panic!("expected problems, parsed {:?}", p.command),
            Err(r) => r.problems.into_iter().map(|p| (p.path, p.code)).collect(),
        }
    }

    fn base() -> Value {
        json!({"gstin": G, "ewb_no": "181000000001", "from_place": "Tumakuru", "from_state": "29",
            "from_pincode": "572101", "remaining_distance": 120, "reason": "1", "remark": "Flood on NH48"})
    }

    #[test]
    fn moving_and_in_transit_build_the_nic_body() {
        let mut b = base();
        b["consignment_status"] = json!("m");
        b["trans_mode"] = json!("1");
        b["vehicle_no"] = json!("ka 01 ab 1234");
        let p = parse_command("ewaybill.extend", b.to_string().as_bytes(), &ParseOptions::default()).unwrap();
        let Command::EwaybillExtend(c) = p.command else { panic!() };
        let req = c.extend.request("181000000001");
        assert_eq!(req["consignmentStatus"], "M");
        assert_eq!(req["vehicleNo"], "KA01AB1234");
        assert_eq!(req["ewbNo"], 181000000001u64);
        assert_eq!(req["remainingDistance"], 120);

        let mut b = base();
        b["consignment_status"] = json!("T");
        b["transit_type"] = json!("w");
        b["transit_address"] = json!({"line1": "Godown 4", "line2": "APMC Yard"});
        let p = parse_command("ewaybill.extend", b.to_string().as_bytes(), &ParseOptions::default()).unwrap();
        let Command::EwaybillExtend(c) = p.command else { panic!() };
        let req = c.extend.request("181000000001");
        assert_eq!((req["transitType"].as_str(), req["transMode"].as_str()), (Some("W"), Some("5")));
        assert_eq!(req["addressLine1"], "Godown 4");
    }

    #[test]
    fn every_problem_is_collected_with_its_path() {
        let mut b = base();
        b["consignment_status"] = json!("T");
        b["vehicle_no"] = json!("KA01AB1234");
        b["transit_type"] = json!("X");
        b["from_pincode"] = json!("057210");
        b["remaining_distance"] = json!(0);
        b["reason"] = json!("5");
        let got = problems(b);
        for want in [
            ("vehicle_no", "CONSIGNMENT_STATUS_INVALID"),
            ("transit_type", "TRANSIT_TYPE_INVALID"),
            ("transit_address", "REQUIRED"),
            ("from_pincode", "PIN_FORMAT"),
            ("remaining_distance", "DISTANCE_OUT_OF_RANGE"),
            ("reason", "REASON_INVALID"),
        ] {
            assert!(got.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {got:?}");
        }
        let mut b = base();
        b["consignment_status"] = json!("M");
        b["trans_mode"] = json!("2");
        b["transit_type"] = json!("R");
        let got = problems(b);
        assert!(got.contains(&("trans_doc_no".into(), "REQUIRED".into())), "{got:?}");
        assert!(got.contains(&("transit_type".into(), "CONSIGNMENT_STATUS_INVALID".into())), "{got:?}");
    }

    #[test]
    fn the_rules_that_need_the_ewaybill() {
        let now = Utc::now();
        let made = now - Duration::days(2);
        // Inside the window, short distance: nothing.
        assert!(extension_refusal(now, Some(now + Duration::hours(7)), Some(made), Some(500), 100).is_empty());
        assert!(extension_refusal(now, Some(now - Duration::hours(7)), Some(made), Some(500), 100).is_empty());
        let p = extension_refusal(now, Some(now + Duration::hours(9)), Some(made), Some(500), 600);
        let codes: Vec<&str> = p.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(codes, ["EXTEND_OUTSIDE_WINDOW", "REMAINING_DISTANCE_TOO_LONG"]);
        assert!(p[0].message.contains("8 hours before to 8 hours after"), "{}", p[0].message);
        assert!(!extension_refusal(now, Some(now - Duration::hours(9)), Some(made), None, 1).is_empty());
        // 360 days from generation.
        let old = now - Duration::days(359);
        let p = extension_refusal(now, Some(now + Duration::hours(1)), Some(old), None, 200);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].code, "EXTEND_PAST_MAX_LIFE");
        assert!(p[0].message.contains("360 days"), "{}", p[0].message);
    }
}
