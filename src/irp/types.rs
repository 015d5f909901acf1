//! What the IRP answers, normalised across protocols.
use serde::Serialize;
use serde_json::Value;

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
}
