//! E-way bill answers, normalised across protocols, and the NIC e-way bill API's own envelope.
//!
//! Generate-by-IRN answers like the e-invoice API (`EwbNo`, `EwbDt`, `EwbValidTill`). Cancel
//! (`CANEWB`) and vehicle update (`VEHEWB`) go to the e-way bill API, which answers
//! `{"status": "1", "data": <base64 of AES(SEK) JSON>}` or
//! `{"status": "0", "error": <base64 of {"errorCodes": "312,…"}>}` with dates such as
//! `cancelDate` written `dd/MM/yyyy hh:mm:ss AM`. We report every date as the IRP's
//! India-time `yyyy-MM-dd HH:mm:ss`, whichever API it came from.
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::errors::{get_ci, IrpMessage};
use super::session::Sek;
use super::types::field;
use super::IrpError;

/// An e-way bill as generate (or get-by-IRN) returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EwbData {
    pub ewb_no: String,
    pub ewb_date: Option<String>,
    pub valid_till: Option<String>,
    #[serde(skip)]
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EwbCancelData {
    pub ewb_no: String,
    pub cancel_date: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleData {
    pub updated_at: String,
    pub valid_till: Option<String>,
}

/// `EXTENDVALIDITY`'s answer: `{ewayBillNo, updatedDate, validUpto}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtendData {
    pub updated_at: String,
    pub valid_till: Option<String>,
}

impl ExtendData {
    pub fn from_json(v: &Value) -> Option<ExtendData> {
        Some(ExtendData {
            updated_at: normalise_date(&field(v, &["updatedDate", "UpdatedDate", "extendedDate"])?),
            valid_till: field(v, &["validUpto", "ValidUpto", "EwbValidTill"]).map(|d| normalise_date(&d)),
        })
    }
}

/// `UPDATETRANSPORTER`'s answer: `{ewayBillNo, transporterId, transUpdateDate}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransporterData {
    pub transporter_id: Option<String>,
    pub updated_at: String,
}

impl TransporterData {
    pub fn from_json(v: &Value) -> Option<TransporterData> {
        Some(TransporterData {
            transporter_id: field(v, &["transporterId", "TransporterId"]),
            updated_at: normalise_date(&field(v, &["transUpdateDate", "TransUpdateDate"])?),
        })
    }
}

impl EwbData {
    pub fn from_json(v: &Value) -> Option<EwbData> {
        Some(EwbData {
            ewb_no: field(v, &["EwbNo", "ewbNo", "ewayBillNo", "EwayBillNo"])?,
            ewb_date: field(v, &["EwbDt", "ewayBillDate", "EwayBillDate"]).map(|d| normalise_date(&d)),
            valid_till: field(v, &["EwbValidTill", "validUpto", "EwayBillValidTill"]).map(|d| normalise_date(&d)),
            raw: v.clone(),
        })
    }
}

impl EwbCancelData {
    pub fn from_json(v: &Value, ewb_no: &str) -> Option<EwbCancelData> {
        Some(EwbCancelData {
            ewb_no: field(v, &["ewayBillNo", "ewbNo", "EwbNo"]).unwrap_or_else(|| ewb_no.to_string()),
            cancel_date: normalise_date(&field(v, &["cancelDate", "CancelDate"])?),
        })
    }
}

impl VehicleData {
    pub fn from_json(v: &Value) -> Option<VehicleData> {
        Some(VehicleData {
            updated_at: normalise_date(&field(v, &["vehUpdDate", "VehUpdDate"])?),
            valid_till: field(v, &["validUpto", "ValidUpto", "EwbValidTill"]).map(|d| normalise_date(&d)),
        })
    }
}

/// `dd/MM/yyyy hh:mm:ss AM` (the e-way bill API) as `yyyy-MM-dd HH:mm:ss`; other forms unchanged.
pub fn normalise_date(s: &str) -> String {
    let t = s.trim();
    for f in ["%d/%m/%Y %I:%M:%S %p", "%d/%m/%Y %H:%M:%S"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return d.format("%Y-%m-%d %H:%M:%S").to_string();
        }
    }
    t.to_string()
}

/// `yyyy-MM-dd HH:mm:ss` as the e-way bill API writes it (the simulator answers in that form).
pub fn ewb_api_date(ist: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(ist.trim(), "%Y-%m-%d %H:%M:%S")
        .map(|d| d.format("%d/%m/%Y %I:%M:%S %p").to_string())
        .unwrap_or_else(|_| ist.to_string())
}

/// What the e-way bill system's codes mean; its API sends codes without messages.
pub fn ewb_code_message(code: &str) -> &'static str {
    match code {
        "118" => "Try after 5 minutes",
        "238" => "Invalid auth token",
        "283" => "A 6-digit HSN code is required for this taxpayer",
        "312" => "This e-way bill is not yours, or it is already cancelled",
        "368" => "Could not update the transporter",
        "369" => "The GSTIN/TRANSIN in the request header must match the transporter id in the payload",
        "370" => "The transporter GSTIN/TRANSIN must not be the supplier or the recipient",
        "379" => "The e-way bill cannot be extended: it is cancelled",
        "380" => "The e-way bill cannot be extended: it is not active",
        "381" => "There is no Part-B (vehicle) entry: update the vehicle first",
        "382" => "An e-way bill can only be extended from 8 hours before to 8 hours after its validity ends",
        "383" => "Error while extending; try again later",
        "384" => "You are not the current transporter or the generator (with no transporter) of this e-way bill",
        "385" => "For rail, ship and air, transDocNo and transDocDate are mandatory",
        "386" => "Reason code and remarks are mandatory",
        "389" => "The remaining distance is required",
        "390" => "The remaining distance cannot be greater than the actual distance",
        "393" => "Invalid GSTIN",
        "444" => "This e-way bill was made on NIC1 (EWB1) and can only be cancelled there",
        "445" => "This e-way bill was made on NIC2 (EWB2) and can only be cancelled there",
        "446" => "This e-way bill was made on NIC1 (EWB1): its transporter can only be changed there",
        "447" => "This e-way bill was made on NIC2 (EWB2): its transporter can only be changed there",
        "448" => "This e-way bill's Part A was made on NIC1 (EWB1): update Part B there, or here with the irp header",
        "449" => "This e-way bill's Part A was made on NIC2 (EWB2): update Part B there, or here with the irp header",
        "4042" => "Invalid RR number: by rail the transport document is a railway receipt (9 digits) or a parcel way bill (10 digits)",
        "655" => "This GSTIN has a common enrolment number and cannot be named as a transporter",
        "325" => "Could not retrieve data: no e-way bill for this document",
        "604" => "An e-way bill already exists for this document number",
        "658" => "Blocked for accessing this API: the allowed number of requests has been exceeded",
        "720" => "An e-invoice enabled supplier must generate the e-way bill with or from the IRN",
        "728" => "The e-way bill can only be cancelled within 24 hours of its Part-B entry",
        "813" => "Duplicate request at the same time",
        "820" => "The document is older than 180 days",
        "205" => "Invalid docType for the supply and sub-supply type",
        "213" => "The generator's GSTIN is neither the consignor nor the consignee",
        "821" => "The e-way bill cannot be extended past 360 days",
        _ => "e-way bill system error",
    }
}

/// Read an e-way bill API answer: `status` "1" → the decrypted `data`; otherwise its codes.
pub fn open_ewb_api_response(sek: &Sek, v: &Value) -> Result<Value, IrpError> {
    let status = field(v, &["status", "Status"]).unwrap_or_default();
    if status.trim() == "1" {
        let data = v.get("data").and_then(Value::as_str).unwrap_or("");
        if data.trim().is_empty() {
            return Ok(Value::Null);
        }
        return super::nic_crypto::decrypt_response_data(sek.expose(), data, None, None).map_err(|e| {
            IrpError::Protocol(format!("could not decrypt the e-way bill API's data with the session key: {e}"))
        });
    }
    let codes = ewb_error_codes(v.get("error").unwrap_or(&Value::Null));
    if codes.is_empty() {
        return Err(IrpError::Protocol(format!("e-way bill API status '{status}' without error codes")));
    }
    let errors = codes.into_iter().map(|c| IrpMessage { message: ewb_code_message(&c).to_string(), code: c }).collect();
    Err(IrpError::Api { errors, info: Vec::new() })
}

/// `error`: base64 (or plain) JSON `{"errorCodes": "312,604,"}`.
fn ewb_error_codes(v: &Value) -> Vec<String> {
    let obj = match v {
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .or_else(|| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    field(&obj, &["errorCodes", "ErrorCodes"])
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The e-way bill made from an IRN, as `ewaybill_by_irn` answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct EwbByIrn {
    /// `EwbNo`, as sent (case-insensitive; a number as its text).
    pub ewb_no: Option<String>,
    /// `EwbDt`, as sent.
    pub ewb_dt: Option<String>,
    /// `EwbValidTill`, as sent.
    pub ewb_valid_till: Option<String>,
    /// `Status` (`ACT`, `CNL`), as sent.
    pub status: Option<String>,
    /// The same e-way bill read as generate's answer is (other field names accepted, dates in
    /// the IRP's form); `None` when it has no number.
    pub ewb: Option<EwbData>,
    /// The (decrypted) answer as received.
    pub raw: Value,
}

impl EwbByIrn {
    pub fn from_json(v: &Value) -> EwbByIrn {
        EwbByIrn {
            ewb_no: get_ci(v, "EwbNo"),
            ewb_dt: get_ci(v, "EwbDt"),
            ewb_valid_till: get_ci(v, "EwbValidTill"),
            status: get_ci(v, "Status"),
            ewb: EwbData::from_json(v),
            raw: v.clone(),
        }
    }

    /// The IRP says the e-way bill is cancelled (`Status` `CNL`, any case).
    pub fn is_cancelled(&self) -> bool {
        self.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("CNL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ewb_api_envelopes() {
        let sek = Sek::new([3u8; 32]);
        let plain = json!({"ewayBillNo": 181000000001u64, "cancelDate": "30/11/2026 04:05:06 PM"});
        let ok = json!({"status": "1", "data": super::super::nic_crypto::encrypt_json_b64(sek.expose(), &plain)});
        let v = open_ewb_api_response(&sek, &ok).unwrap();
        let c = EwbCancelData::from_json(&v, "x").unwrap();
        assert_eq!((c.ewb_no.as_str(), c.cancel_date.as_str()), ("181000000001", "2026-11-30 16:05:06"));

        let err = base64::engine::general_purpose::STANDARD.encode(json!({"errorCodes": "312,658,"}).to_string());
        let e = open_ewb_api_response(&sek, &json!({"status": "0", "error": err})).unwrap_err();
        assert!(e.has_code("312") && e.has_code("658"), "{e:?}");
        assert!(e.to_string().contains("already cancelled"), "{e}");
        assert!(matches!(open_ewb_api_response(&sek, &json!({"status": "0"})), Err(IrpError::Protocol(_))));
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(ewb_api_date("2026-11-30 00:15:00"), "30/11/2026 12:15:00 AM");
        assert_eq!(normalise_date("30/11/2026 12:15:00 AM"), "2026-11-30 00:15:00");
        assert_eq!(normalise_date("2026-11-30 00:15:00"), "2026-11-30 00:15:00");
    }

    #[test]
    fn an_ewaybill_by_irn_is_read_case_insensitively() {
        use serde_json::json;
        let e =
            EwbByIrn::from_json(&json!({"ewbno": 181000000001u64, "EWBDT": "2026-11-30 10:00:00", "status": "CNL"}));
        assert_eq!(e.ewb_no.as_deref(), Some("181000000001"));
        assert_eq!(e.ewb_dt.as_deref(), Some("2026-11-30 10:00:00"));
        assert!(e.ewb_valid_till.is_none() && e.is_cancelled());
        assert!(e.ewb.is_none(), "generate's reading knows EwbNo, ewbNo, ewayBillNo, EwayBillNo only");
        let e = EwbByIrn::from_json(&json!({"EwbNo": 181000000002u64, "EwbValidTill": "01/12/2026 11:59:00 PM"}));
        assert_eq!(e.ewb.as_ref().map(|d| d.ewb_no.as_str()), Some("181000000002"));
        assert_eq!(e.ewb.unwrap().valid_till.as_deref(), Some("2026-12-01 23:59:00"));
    }
}
