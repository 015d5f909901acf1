//! What the IRP answers, normalised across protocols.
use serde::Serialize;
use serde_json::Value;

use super::errors::get_ci;

/// An IRN and its acknowledgement, as generate and both lookups return it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IrnData {
    pub irn: String,
    pub ack_no: String,
    pub ack_dt: String,
    pub signed_invoice: Option<String>,
    pub signed_qr_code: Option<String>,
    /// "ACT" or "CNL" where the IRP says so.
    pub status: Option<String>,
    pub ewb_no: Option<String>,
    pub ewb_dt: Option<String>,
    pub ewb_valid_till: Option<String>,
    /// The IRP that issued the IRN (set by the runtime from the IRP it asked; `None`: unknown).
    #[serde(default)]
    pub irp: Option<String>,
    /// The decrypted response as received, kept in the job row for audit.
    #[serde(skip)]
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelData {
    pub irn: String,
    pub cancel_date: String,
    #[serde(skip)]
    pub raw: Value,
}

/// Read a field that the IRP sends as a string or a number, under any of several names
/// (the Whitebooks seed and NIC name some fields differently, e.g. `EwayBillNo` vs `EwbNo`).
pub fn field(v: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match v.get(*n) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

impl IrnData {
    /// Parse a generate / get-IRN answer; `None` when it has no IRN or AckNo.
    pub fn from_json(v: &Value) -> Option<IrnData> {
        Some(IrnData {
            irn: field(v, &["Irn", "irn"])?,
            ack_no: field(v, &["AckNo", "ackNo"])?,
            ack_dt: field(v, &["AckDt", "ackDt"]).unwrap_or_default(),
            signed_invoice: field(v, &["SignedInvoice"]),
            signed_qr_code: field(v, &["SignedQRCode", "QRCode"]),
            status: field(v, &["Status", "status"]),
            ewb_no: field(v, &["EwbNo", "EwayBillNo"]),
            ewb_dt: field(v, &["EwbDt", "EwayBillDate"]),
            ewb_valid_till: field(v, &["EwbValidTill", "EwayBillValidTill"]),
            irp: None,
            raw: v.clone(),
        })
    }
}

impl CancelData {
    pub fn from_json(v: &Value) -> Option<CancelData> {
        Some(CancelData {
            irn: field(v, &["Irn", "irn"])?,
            cancel_date: field(v, &["CancelDate", "cancelDate"])?,
            raw: v.clone(),
        })
    }
}

/// A GSTIN's registration, as `gstin_details` and `sync_gstin` answer it. Each field is the
/// IRP's (named in its doc, matched case-insensitively) as sent: a string, or a number as its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GstinDetails {
    /// `Gstin`.
    pub gstin: Option<String>,
    /// `TradeName`.
    pub trade_name: Option<String>,
    /// `LegalName`.
    pub legal_name: Option<String>,
    /// `AddrBno`.
    pub building_number: Option<String>,
    /// `AddrBnm`.
    pub building_name: Option<String>,
    /// `AddrFlno`.
    pub floor: Option<String>,
    /// `AddrSt`.
    pub street: Option<String>,
    /// `AddrLoc`.
    pub location: Option<String>,
    /// `AddrPncd`.
    pub pincode: Option<String>,
    /// `StateCode`.
    pub state_code: Option<String>,
    /// `TxpType`.
    pub taxpayer_type: Option<String>,
    /// `Status` (`ACT`, `CNL`, …).
    pub status: Option<String>,
    /// `BlkStatus`.
    pub block_status: Option<String>,
    /// `DtReg`.
    pub registered_on: Option<String>,
    /// `DtDReg`.
    pub deregistered_on: Option<String>,
    /// The (decrypted) answer as received.
    pub raw: Value,
}

impl GstinDetails {
    pub fn from_json(v: &Value) -> GstinDetails {
        GstinDetails {
            gstin: get_ci(v, "Gstin"),
            trade_name: get_ci(v, "TradeName"),
            legal_name: get_ci(v, "LegalName"),
            building_number: get_ci(v, "AddrBno"),
            building_name: get_ci(v, "AddrBnm"),
            floor: get_ci(v, "AddrFlno"),
            street: get_ci(v, "AddrSt"),
            location: get_ci(v, "AddrLoc"),
            pincode: get_ci(v, "AddrPncd"),
            state_code: get_ci(v, "StateCode"),
            taxpayer_type: get_ci(v, "TxpType"),
            status: get_ci(v, "Status"),
            block_status: get_ci(v, "BlkStatus"),
            registered_on: get_ci(v, "DtReg"),
            deregistered_on: get_ci(v, "DtDReg"),
            raw: v.clone(),
        }
    }

    /// The IRP says the GSTIN is active (`Status` `ACT`, any case).
    pub fn is_active(&self) -> bool {
        self.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("ACT"))
    }
}

/// One entry of the IRP's list of rejected IRNs. Fields as sent, matched case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedIrn {
    /// `Irn`: the rejected IRN.
    pub irn: Option<String>,
    /// `SurvivingIrn`: the IRN that stands for the document instead.
    pub surviving_irn: Option<String>,
    /// `AckNo`.
    pub ack_no: Option<String>,
    /// `AckDt`.
    pub ack_dt: Option<String>,
    /// `DocTyp`.
    pub doc_type: Option<String>,
    /// `DocNo`.
    pub doc_number: Option<String>,
    /// `DocDt`.
    pub doc_date: Option<String>,
    /// The entry as received.
    pub raw: Value,
}

impl RejectedIrn {
    pub fn from_json(v: &Value) -> RejectedIrn {
        RejectedIrn {
            irn: get_ci(v, "Irn"),
            surviving_irn: get_ci(v, "SurvivingIrn"),
            ack_no: get_ci(v, "AckNo"),
            ack_dt: get_ci(v, "AckDt"),
            doc_type: get_ci(v, "DocTyp"),
            doc_number: get_ci(v, "DocNo"),
            doc_date: get_ci(v, "DocDt"),
            raw: v.clone(),
        }
    }
}

/// A B2C invoice's QR code, as `b2c_qr` answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct B2cQrCode {
    /// `QRCode`, else `SignedQRCode` (case-insensitive).
    pub qr_code: Option<String>,
    /// The answer as received.
    pub raw: Value,
}

impl B2cQrCode {
    pub fn from_json(v: &Value) -> B2cQrCode {
        B2cQrCode { qr_code: get_ci(v, "QRCode").or_else(|| get_ci(v, "SignedQRCode")), raw: v.clone() }
    }
}

/// Parse the IRP's `yyyy-MM-dd HH:mm:ss` timestamps, which are India time (Asia/Kolkata),
/// into UTC, whatever the host's zone (gst_irn compares them as naive local time and so treats
/// expired tokens as valid for 5.5 h on a UTC host).
pub fn parse_ist(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    chrono_tz::Asia::Kolkata.from_local_datetime(&naive).single().map(|d| d.with_timezone(&chrono::Utc))
}

/// Format a UTC instant as the IRP's India-time `yyyy-MM-dd HH:mm:ss`.
pub fn format_ist(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Kolkata).format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ist_is_five_and_a_half_hours_ahead() {
        let t = parse_ist("2025-04-01 10:30:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-04-01T05:00:00+00:00");
        assert_eq!(format_ist(t), "2025-04-01 10:30:00");
    }

    #[test]
    fn seed_field_names_are_accepted() {
        let v = serde_json::json!({"Irn":"a","AckNo":112010000012345u64,"AckDt":"2024-04-01 10:15:00","EwayBillNo":"1234","QRCode":"q"});
        let d = IrnData::from_json(&v).unwrap();
        assert_eq!(d.ack_no, "112010000012345");
        assert_eq!(d.ewb_no.as_deref(), Some("1234"));
        assert_eq!(d.signed_qr_code.as_deref(), Some("q"));
    }

    #[test]
    fn answers_are_read_case_insensitively() {
        use serde_json::json;
        let g = GstinDetails::from_json(&json!({
            "gstin": "29AADCT5519H1Z4", "TRADENAME": "T", "LegalName": "L", "addrbno": 12, "AddrPncd": 560001,
            "StateCode": "29", "txptype": "REG", "status": "act", "BlkStatus": "U", "DtReg": "2017-07-01", "DtDReg": ""
        }));
        assert_eq!(g.gstin.as_deref(), Some("29AADCT5519H1Z4"));
        assert_eq!(g.trade_name.as_deref(), Some("T"));
        assert_eq!(g.building_number.as_deref(), Some("12"));
        assert_eq!(g.pincode.as_deref(), Some("560001"));
        assert_eq!(g.taxpayer_type.as_deref(), Some("REG"));
        assert_eq!(g.deregistered_on.as_deref(), Some(""), "an empty field is kept, as sent");
        assert!(g.floor.is_none() && g.is_active());
        assert!(!GstinDetails::from_json(&Value::Null).is_active());

        let r = RejectedIrn::from_json(&json!({"IRN": "abc", "survivingirn": "def", "AckNo": 1, "DocTyp": "INV"}));
        assert_eq!((r.irn.as_deref(), r.surviving_irn.as_deref()), (Some("abc"), Some("def")));
        assert_eq!(
            (r.ack_no.as_deref(), r.doc_type.as_deref(), r.doc_number.as_deref()),
            (Some("1"), Some("INV"), None)
        );
        assert!(RejectedIrn::from_json(&json!("not an object")).irn.is_none());

        assert_eq!(B2cQrCode::from_json(&json!({"qrcode": "q", "SignedQRCode": "s"})).qr_code.as_deref(), Some("q"));
        assert_eq!(B2cQrCode::from_json(&json!({"signedqrcode": "s"})).qr_code.as_deref(), Some("s"));
        assert!(B2cQrCode::from_json(&Value::Null).qr_code.is_none());
    }
}
