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
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Validity of a regular e-way bill: one day per 200 km or part of it.
fn validity_days(distance_km: u64) -> i64 {
    (distance_km.max(1) as i64 + 199) / 200
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
        let till = now + chrono::Duration::days(validity_days(if distance == 0 { 100 } else { distance }));
        let no = format!("{}", 181_000_000_000u64 + seq);
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
        };
        st.ewbs.insert(no.clone(), e);
        let mut answer = json!({"EwbNo": no.parse::<u64>().unwrap_or(0), "EwbDt": format_ist(now), "EwbValidTill": format_ist(till)});
        if distance == 0 {
            answer["InfoDtls"] = json!([{"InfCd": "EWBPPD", "Desc": "Pin-Pin calc distance: 100KM"}]);
        }
        Ok(answer)
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
        let Some(e) = st.ewb_of(gstin, &no).filter(|e| e.status == "ACT") else {
            return Err(SimError::one("312", "This e-way bill is either not generated by you or cancelled"));
        };
        e.vehicle_no = Some(vehicle);
        let now = format_ist(Utc::now());
        Ok(json!({"vehUpdDate": ewb_api_date(&now), "validUpto": ewb_api_date(&format_ist(e.valid_till))}))
    }
}
