//! The simulator's e-way bills, on the same store as its IRNs: an IRN's active e-way bill is
//! what makes cancel answer 2230 and generate-by-IRN answer 4002; a cancelled one answers 312.
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::{SimCore, SimError, Store};
use crate::irp::ewaybill::ewb_api_date;
use crate::irp::types::format_ist;

/// One e-way bill. `status` is "ACT" or "CNL".
#[derive(Debug, Clone)]
pub struct SimEwb {
    pub ewb_no: String,
    pub gstin: String,
    pub irn: String,
    pub created_at: DateTime<Utc>,
    pub valid_till: DateTime<Utc>,
    pub status: String,
    pub cancel_date: Option<String>,
    pub vehicle_no: Option<String>,
    /// The distance the e-way bill was made for (km): an extension's remaining distance may not
    /// be more (390).
    pub distance: u64,
    /// The transporter the e-way bill was handed to (`UPDATETRANSPORTER`), if any: then only
    /// that transporter may extend it (384).
    pub transporter_id: Option<String>,
    /// An e-way bill without an IRN: its document type and number (upper case), what 604 and
    /// `GetEwayBillGeneratedByConsigner` go by.
    pub doc: Option<(String, String)>,
}

pub(super) fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

use crate::domain::command::ewaybill_extend::{validity_days, EXTEND_WINDOW_HOURS, MAX_LIFE_DAYS};

/// NIC's rail rule (in force since January 2026): by rail, a railway receipt of 9 digits or a
/// parcel way bill of 10, else 4042.
fn rail_doc(mode: &str, doc_no: &str) -> Result<(), SimError> {
    let ok = matches!(doc_no.len(), 9 | 10) && doc_no.bytes().all(|b| b.is_ascii_digit());
    if mode == "2" && !doc_no.is_empty() && !ok {
        return Err(SimError::one("4042", "Invalid RR number"));
    }
    Ok(())
}

impl Store {
    /// The e-way bill numbered `no` that `gstin` may act on: recorded here, or made with the
    /// IRN (`EwbDtls`) and so only on the document.
    fn ewb_of(&mut self, gstin: &str, no: &str) -> Option<&mut SimEwb> {
        if !self.ewbs.contains_key(no) {
            let d = self.docs.values().find(|d| d.ewb.as_ref().is_some_and(|e| e.0 == no))?;
            let (_, _, till) = d.ewb.clone()?;
            let e = SimEwb {
                ewb_no: no.to_string(),
                gstin: d.gstin.clone(),
                irn: d.irn.clone(),
                created_at: d.ack_at,
                valid_till: crate::irp::types::parse_ist(&till).unwrap_or(d.ack_at),
                status: "ACT".into(),
                cancel_date: None,
                vehicle_no: None,
                distance: 0,
                transporter_id: None,
                doc: None,
            };
            self.ewbs.insert(no.to_string(), e);
        }
        self.ewbs.get_mut(no).filter(|e| e.gstin.eq_ignore_ascii_case(gstin))
    }
}

impl SimCore {
    /// An e-way bill by number, for tests.
    pub fn ewaybill(&self, ewb_no: &str) -> Option<SimEwb> {
        let mut st = self.store.lock().expect("sim lock");
        let gstin = st.ewbs.get(ewb_no).map(|e| e.gstin.clone()).or_else(|| {
            st.docs.values().find(|d| d.ewb.as_ref().is_some_and(|e| e.0 == ewb_no)).map(|d| d.gstin.clone())
        })?;
        st.ewb_of(&gstin, ewb_no).cloned()
    }

    /// Generate an e-way bill from an IRN (`/eiewb/v1.03/ewaybill`, Whitebooks `GENERATE_EWAYBILL`).
    pub fn generate_ewaybill(&self, gstin: &str, req: &Value) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.ewb_generate_calls += 1;
        let irn = text(req, "Irn").to_ascii_lowercase();
        if irn.is_empty() {
            return Err(SimError::one("4006", "Irn is empty"));
        }
        let distance = match req.get("Distance") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(distance) = distance.filter(|d| *d <= 4000) else {
            return Err(SimError::one("4006", "Distance must be between 0 and 4000"));
        };
        rail_doc(&text(req, "TransMode"), &text(req, "TransDocNo"))?;
        st.ack_seq += 1;
        let seq = st.ack_seq;
        let Some(doc) = st.docs.get_mut(&irn).filter(|d| d.gstin.eq_ignore_ascii_case(gstin)) else {
            return Err(SimError::one("4003", "Requested IRN data is not available"));
        };
        if doc.status == "CNL" {
            return Err(SimError::one("4000", "IRN is not active"));
        }
        if matches!(doc.doc_type.to_ascii_uppercase().as_str(), "CRN" | "DBN") {
            return Err(SimError::one(
                "4010",
                "E-way bill cannot be generated for Credit Note, Debit Note and Services",
            ));
        }
        if NaiveDate::parse_from_str(&doc.doc_date, "%d/%m/%Y")
            .is_ok_and(|d| (Utc::now().date_naive() - d).num_days() > 180)
        {
            return Err(SimError::one("820", "The document is older than 180 days"));
        }
        if doc.ewb.is_some() {
            // As at NIC: "already generated", without the number.
            return Err(SimError::one("4002", "EwayBill is already generated for this IRN"));
        }
        let now = Utc::now();
        // NIC computes the PIN-to-PIN distance when 0 is sent; the simulator takes 100 km.
        let till = self.ewb_valid_till(now, if distance == 0 { 100 } else { distance });
        let no = format!("{}", self.ewb_base() + seq);
        doc.ewb = Some((no.clone(), format_ist(now), format_ist(till)));
        let e = SimEwb {
            ewb_no: no.clone(),
            gstin: doc.gstin.clone(),
            irn: irn.clone(),
            created_at: now,
            valid_till: till,
            status: "ACT".into(),
            cancel_date: None,
            vehicle_no: req.get("VehNo").and_then(Value::as_str).map(str::to_string),
            distance: if distance == 0 { 100 } else { distance },
            transporter_id: req.get("TransId").and_then(Value::as_str).map(str::to_ascii_uppercase),
            doc: None,
        };
        st.ewbs.insert(no.clone(), e);
        let mut answer = json!({"EwbNo": no.parse::<u64>().unwrap_or(0), "EwbDt": format_ist(now), "EwbValidTill": format_ist(till)});
        if distance == 0 {
            answer["InfoDtls"] = json!([{"InfCd": "EWBPPD", "Desc": "Pin-Pin calc distance: 100KM"}]);
        }
        Ok(answer)
    }

    /// `GENEWAYBILL`: an e-way bill without an IRN. One per supplier, document type and number
    /// (604 "already generated for this document" otherwise, as NIC answers). Returns the
    /// answer and, on the commit-then-timeout fault, how long to hang before answering.
    pub fn generate_ewaybill_doc(
        &self,
        gstin: &str,
        req: &Value,
    ) -> (Result<Value, SimError>, Option<std::time::Duration>) {
        let res = self.make_ewaybill_doc(gstin, req);
        let hang = if res.is_ok() { self.commit_hang() } else { None };
        (res, hang)
    }

    fn make_ewaybill_doc(&self, gstin: &str, req: &Value) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.ewb_doc_generate_calls += 1;
        let (supply, doc_type, doc_no) = (text(req, "supplyType"), text(req, "docType"), text(req, "docNo"));
        let (from, to) = (text(req, "fromGstin"), text(req, "toGstin"));
        if doc_no.is_empty() || doc_type.is_empty() {
            return Err(SimError::one("4006", "docType and docNo are required"));
        }
        // The generator is the consignor of an outward movement, the consignee of an inward one.
        let generator = if supply == "I" { &to } else { &from };
        if !generator.eq_ignore_ascii_case(gstin) {
            return Err(SimError::one("213", "the generator is neither the consignor nor the consignee"));
        }
        if req.get("itemList").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            return Err(SimError::one("4006", "itemList is required"));
        }
        let distance: Option<u64> = text(req, "transDistance").parse().ok();
        let Some(distance) = distance.filter(|d| *d <= 4000) else {
            return Err(SimError::one("4006", "transDistance must be between 0 and 4000"));
        };
        rail_doc(&text(req, "transMode"), &text(req, "transDocNo"))?;
        if NaiveDate::parse_from_str(&text(req, "docDate"), "%d/%m/%Y")
            .is_ok_and(|d| (Utc::now().date_naive() - d).num_days() > 180)
        {
            return Err(SimError::one("820", "The document is older than 180 days"));
        }
        let key = (doc_type.to_ascii_uppercase(), doc_no.to_ascii_uppercase());
        if st.ewbs.values().any(|e| e.doc.as_ref() == Some(&key) && e.gstin.eq_ignore_ascii_case(gstin)) {
            return Err(SimError::one("604", "E-way bill(s) are already generated for the same document number"));
        }
        st.ack_seq += 1;
        let now = Utc::now();
        let km = if distance == 0 { 100 } else { distance };
        let till = self.ewb_valid_till(now, km);
        let no = format!("{}", self.ewb_base() + st.ack_seq);
        let e = SimEwb {
            ewb_no: no.clone(),
            gstin: gstin.to_ascii_uppercase(),
            irn: String::new(),
            created_at: now,
            valid_till: till,
            status: "ACT".into(),
            cancel_date: None,
            vehicle_no: req.get("vehicleNo").and_then(Value::as_str).map(str::to_string),
            distance: km,
            transporter_id: req.get("transporterId").and_then(Value::as_str).map(str::to_ascii_uppercase),
            doc: Some(key),
        };
        st.ewbs.insert(no.clone(), e);
        Ok(json!({
            "ewayBillNo": no.parse::<u64>().unwrap_or(0),
            "ewayBillDate": ewb_api_date(&format_ist(now)),
            "validUpto": ewb_api_date(&format_ist(till)),
            "alert": "",
        }))
    }

    /// `GetEwayBillGeneratedByConsigner`: the active e-way bill `gstin` made for a document, or 325.
    pub fn ewaybill_by_doc(&self, gstin: &str, doc_type: &str, doc_no: &str) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.ewb_doc_lookups += 1;
        let key = (doc_type.trim().to_ascii_uppercase(), doc_no.trim().to_ascii_uppercase());
        let e = st
            .ewbs
            .values()
            .find(|e| e.doc.as_ref() == Some(&key) && e.gstin.eq_ignore_ascii_case(gstin) && e.status == "ACT")
            .ok_or_else(|| SimError::one("325", "Could not retrieve data"))?;
        Ok(json!({
            "ewayBillNo": e.ewb_no.parse::<u64>().unwrap_or(0),
            "ewayBillDate": ewb_api_date(&format_ist(e.created_at)),
            "validUpto": ewb_api_date(&format_ist(e.valid_till)),
            "docType": key.0, "docNo": e.doc.as_ref().map(|d| d.1.clone()),
        }))
    }

    /// How many e-way bills `gstin` holds for a document (any status), for tests.
    pub fn ewaybills_for_doc(&self, gstin: &str, doc_type: &str, doc_no: &str) -> usize {
        let st = self.store.lock().expect("sim lock");
        let key = (doc_type.to_ascii_uppercase(), doc_no.to_ascii_uppercase());
        st.ewbs.values().filter(|e| e.doc.as_ref() == Some(&key) && e.gstin.eq_ignore_ascii_case(gstin)).count()
    }

    /// `CANEWB`: `{ewbNo, cancelRsnCode, cancelRmrk}`.
    pub fn cancel_ewaybill(&self, gstin: &str, req: &Value) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.ewb_cancel_calls += 1;
        let no = text(req, "ewbNo");
        if !matches!(text(req, "cancelRsnCode").as_str(), "1" | "2" | "3" | "4") {
            return Err(SimError::one("4006", "cancelRsnCode must be 1 to 4"));
        }
        let now = Utc::now();
        let Some(e) = st.ewb_of(gstin, &no) else {
            return Err(SimError::one("312", "This e-way bill is either not generated by you or cancelled"));
        };
        if e.status == "CNL" {
            return Err(SimError::one("312", "This e-way bill is either not generated by you or cancelled"));
        }
        if now - e.created_at > chrono::Duration::hours(24) {
            return Err(SimError::one("728", "E-way bill can be cancelled only within 24 hours"));
        }
        e.status = "CNL".into();
        let date = format_ist(now);
        e.cancel_date = Some(date.clone());
        let irn = e.irn.clone();
        // The IRN is free to be cancelled (no more 2230), or to get a new e-way bill.
        if let Some(d) = st.docs.get_mut(&irn) {
            if d.ewb.as_ref().is_some_and(|x| x.0 == no) {
                d.ewb = None;
            }
        }
        Ok(json!({"ewayBillNo": no.parse::<u64>().unwrap_or(0), "cancelDate": ewb_api_date(&date)}))
    }

    /// `VEHEWB`: a new vehicle (Part B) for an active e-way bill.
    pub fn update_vehicle(&self, gstin: &str, req: &Value) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.ewb_vehicle_calls += 1;
        let no = text(req, "ewbNo");
        let vehicle = text(req, "vehicleNo");
        if vehicle.is_empty() && text(req, "transDocNo").is_empty() {
            return Err(SimError::one("4006", "vehicleNo or transDocNo is required"));
        }
        rail_doc(&text(req, "transMode"), &text(req, "transDocNo"))?;
        let Some(e) = st.ewb_of(gstin, &no).filter(|e| e.status == "ACT") else {
            return Err(SimError::one("312", "This e-way bill is either not generated by you or cancelled"));
        };
        e.vehicle_no = Some(vehicle);
        let now = format_ist(Utc::now());
        Ok(json!({"vehUpdDate": ewb_api_date(&now), "validUpto": ewb_api_date(&format_ist(e.valid_till))}))
    }

    /// Test hook: move an e-way bill's generation time and validity (as time passing would),
    /// on the e-way bill and on its IRN's record.
    pub fn set_ewaybill_times(&self, ewb_no: &str, created_at: DateTime<Utc>, valid_till: DateTime<Utc>) {
        let mut st = self.store.lock().expect("sim lock");
        let Some(gstin) = st.ewbs.get(ewb_no).map(|e| e.gstin.clone()).or_else(|| {
            st.docs.values().find(|d| d.ewb.as_ref().is_some_and(|e| e.0 == ewb_no)).map(|d| d.gstin.clone())
        }) else {
            return;
        };
        if let Some(e) = st.ewb_of(&gstin, ewb_no) {
            e.created_at = created_at;
            e.valid_till = valid_till;
        }
        st.sync_doc(ewb_no);
    }

    /// `EXTENDVALIDITY` (NIC e-way bill API v1.03): only from 8 hours before to 8 hours after
    /// the expiry (382), by the current transporter or the generator when there is none (384),
    /// with a remaining distance not over the original (389, 390), a reason and remark (386),
    /// and never past 360 days from generation (821). The new validity runs from the later of
    /// now and the current expiry, a day per 200 km of the remaining distance.
    pub fn extend_validity(&self, gstin: &str, req: &Value) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.ewb_extend_calls += 1;
        let no = text(req, "ewbNo");
        let now = Utc::now();
        let reason = text(req, "extnRsnCode");
        let remark = text(req, "extnRemarks");
        let status = text(req, "consignmentStatus").to_ascii_uppercase();
        let remaining = match req.get("remainingDistance") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(e) = st.ewb_of(gstin, &no) else {
            return Err(SimError::one("312", "This e-way bill is either not generated by you or cancelled"));
        };
        if e.status == "CNL" {
            return Err(SimError::one("379", "Eway Bill can not be extended.. Already Cancelled"));
        }
        if e.transporter_id.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case(gstin)) {
            return Err(SimError::one(
                "384",
                "You are not current transporter or Generator of the ewayBill, with no transporter details.",
            ));
        }
        if !["1", "2", "3", "4", "99"].contains(&reason.as_str()) || remark.is_empty() {
            return Err(SimError::one("386", "Reason Code, Remarks is mandatory."));
        }
        let Some(remaining) = remaining.filter(|d| *d > 0) else {
            return Err(SimError::one("389", "Remaining Distance Required"));
        };
        if e.distance > 0 && remaining > e.distance {
            return Err(SimError::one("390", "Remaining Distance Can not be greater than Actual Distance."));
        }
        match status.as_str() {
            "M" => {
                let mode = text(req, "transMode");
                rail_doc(&mode, &text(req, "transDocNo"))?;
                if mode == "1" && text(req, "vehicleNo").is_empty() {
                    return Err(SimError::one(
                        "381",
                        "There is No PART-B/Vehicle Entry.. So Please Update Vehicle Information..",
                    ));
                }
                if matches!(mode.as_str(), "2" | "3" | "4")
                    && (text(req, "transDocNo").is_empty() || text(req, "transDocDate").is_empty())
                {
                    return Err(SimError::one("385", "For Rail/Ship/Air transDocNo and transDocDate is mandatory"));
                }
            }
            "T" => {
                if !matches!(text(req, "transitType").as_str(), "R" | "W" | "O") || text(req, "addressLine1").is_empty()
                {
                    return Err(SimError::one(
                        "4006",
                        "Transit type (R/W/O) and transit address are mandatory in transit",
                    ));
                }
            }
            _ => return Err(SimError::one("4006", "consignmentStatus must be M or T")),
        }
        let window = chrono::Duration::hours(EXTEND_WINDOW_HOURS);
        if now < e.valid_till - window || now > e.valid_till + window {
            return Err(SimError::one(
                "382",
                "You Cannot Extend as EWB can be Extended only 8 hour before or after w.r.t Validity of EWB..!!",
            ));
        }
        let new_till = e.valid_till.max(now) + chrono::Duration::days(validity_days(remaining));
        if new_till > e.created_at + chrono::Duration::days(MAX_LIFE_DAYS) {
            return Err(SimError::one("821", "The e-way bill cannot be extended past 360 days"));
        }
        e.valid_till = new_till;
        let vehicle = text(req, "vehicleNo");
        if !vehicle.is_empty() {
            e.vehicle_no = Some(vehicle);
        }
        st.sync_doc(&no);
        Ok(json!({
            "ewayBillNo": no.parse::<u64>().unwrap_or(0),
            "updatedDate": ewb_api_date(&format_ist(now)),
            "validUpto": ewb_api_date(&format_ist(new_till)),
        }))
    }

    /// `UPDATETRANSPORTER`: `{ewbNo, transporterId}`, a GSTIN (its check digit checked) or a
    /// TRANSIN (`88…`, none).
    pub fn update_transporter(&self, gstin: &str, req: &Value) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.ewb_transporter_calls += 1;
        let no = text(req, "ewbNo");
        let id = text(req, "transporterId").to_ascii_uppercase();
        let transin = id.len() == 15 && id.starts_with("88") && id.chars().all(|c| c.is_ascii_alphanumeric());
        if !transin && crate::domain::Gstin::parse(&id, false).is_err() {
            return Err(SimError::one("393", "Invalid GSTIN"));
        }
        let Some(e) = st.ewb_of(gstin, &no).filter(|e| e.status == "ACT") else {
            return Err(SimError::one("312", "This e-way bill is either not generated by you or cancelled"));
        };
        e.transporter_id = Some(id.clone());
        Ok(json!({
            "ewayBillNo": no.parse::<u64>().unwrap_or(0),
            "transporterId": id,
            "transUpdateDate": ewb_api_date(&format_ist(Utc::now())),
        }))
    }
}

impl Store {
    /// Keep the IRN's record of its e-way bill (what get-by-IRN answers) in step with the e-way bill.
    fn sync_doc(&mut self, ewb_no: &str) {
        let Some(e) = self.ewbs.get(ewb_no).cloned() else { return };
        if let Some(d) = self.docs.get_mut(&e.irn) {
            if let Some(x) = d.ewb.as_mut().filter(|x| x.0 == ewb_no) {
                x.1 = format_ist(e.created_at);
                x.2 = format_ist(e.valid_till);
            }
        }
    }
}
