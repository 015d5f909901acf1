//! What the fault test sends: valid invoices (two sellers, one per protocol), e-way bills without
//! an IRN and the extensions and transporter changes of the e-way bills made, and malformed or
//! invalid commands of every kind a broken ERP or an attacker could produce.
use serde_json::{json, Value};

pub const SELLER_KA: &str = "29AAGCP4821K1Z3"; // Whitebooks
pub const SELLER_MH: &str = "27AAKFU7303M1ZP"; // NIC direct

/// A valid `irn.generate` body for invoice number `i` (alternating sellers and protocols).
pub fn invoice_command(i: usize) -> Value {
    let sample = if i % 2 == 0 { "b2b-intra-goods" } else { "b2b-inter-goods-ewb" };
    let inv = einvoice_worker::samples::stamped(sample, Some(&format!("F/{i:06}")));
    json!({"gstin": einvoice_worker::samples::seller(&inv), "invoice": inv, "request_id": format!("fault-{i}")})
}

/// The `n`-th malformed or invalid command: (routing key, body, label). `max_bytes` is the
/// worker's `max_message_bytes`.
pub fn bad_command(n: usize, max_bytes: usize) -> (&'static str, Vec<u8>, &'static str) {
    let valid = |no: String| einvoice_worker::samples::stamped("b2b-intra-goods", Some(&no));
    let body = |v: Value| v.to_string().into_bytes();
    match n % 16 {
        0 => (
            "irn.generate",
            b"{\"gstin\": \"29AAGCP4821K1Z3\", \"invoice\": {\"DocDtls\": {\"No\": \"\xff\xfe\xfd\"}}}".to_vec(),
            "invalid UTF-8",
        ),
        1 => ("irn.generate", b"{\"gstin\": \"29AAGCP4821K1Z3\"\0, \"invoice\": {}}".to_vec(), "raw NUL byte"),
        2 => (
            "irn.generate",
            body(json!({"gstin": SELLER_KA, "invoice": valid(format!("B/N{n:05}")), "request_id": "erp\u{0}4711"})),
            "NUL in request_id",
        ),
        3 => {
            let mut inv = valid(format!("B/N{n:05}"));
            inv["ItemList"][0]["PrdDesc"] = json!("Widget\u{0}with a NUL");
            ("irn.generate", body(json!({"gstin": SELLER_KA, "invoice": inv})), "NUL in an invoice text")
        }
        4 => (
            "irn.generate",
            body(json!({"gstin": SELLER_KA, "note\u{0}": "x", "invoice": {"Version": "1.1"}})),
            "NUL in a key",
        ),
        5 => {
            let pad = "x".repeat(max_bytes + 1024);
            (
                "irn.generate",
                body(json!({"gstin": SELLER_KA, "pad": pad, "invoice": valid(format!("B/O{n:05}"))})),
                "oversize",
            )
        }
        6 => {
            let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            (
                "irn.generate",
                format!("{{\"gstin\": \"{SELLER_KA}\", \"invoice\": {deep}}}").into_bytes(),
                "deep nesting (100k)",
            )
        }
        7 => {
            let deep = format!("{}1{}", "{\"a\":".repeat(120), "}".repeat(120));
            let mut inv = valid(format!("B/D{n:05}"));
            inv["Extra"] = serde_json::from_str(&deep).unwrap_or(Value::Null);
            ("irn.generate", body(json!({"gstin": SELLER_KA, "invoice": inv})), "deep nesting in an unknown field")
        }
        8 => {
            let text = valid(format!("B/H{n:05}")).to_string().replacen("\"Qty\":", "\"Qty\":1e400,\"QtyWas\":", 1);
            (
                "irn.generate",
                format!("{{\"gstin\": \"{SELLER_KA}\", \"invoice\": {text}}}").into_bytes(),
                "number out of range (1e400)",
            )
        }
        9 => {
            let mut inv = valid(format!("B/H{n:05}"));
            inv["ValDtls"]["TotInvVal"] = json!(1.0e300);
            inv["ItemList"][0]["Qty"] = json!(123_456_789_012_345_678_901_234_567_890.0f64);
            ("irn.generate", body(json!({"gstin": SELLER_KA, "invoice": inv})), "huge numbers")
        }
        10 => {
            let mut inv = valid(format!("B/G{n:05}"));
            inv["BuyerDtls"]["Gstin"] = json!("29AADCT5519H1Z5");
            ("irn.generate", body(json!({"gstin": SELLER_KA, "invoice": inv})), "invalid invoice (check digit)")
        }
        11 => ("irn.frobnicate", b"{}".to_vec(), "unknown routing key"),
        12 => ("irn.generate", Vec::new(), "empty body"),
        13 => ("irn.cancel", body(json!({"gstin": SELLER_KA, "irn": "zz", "reason": "9"})), "invalid cancel"),
        14 => ("irn.generate", b"null".to_vec(), "JSON null"),
        _ => ("irn.generate", body(json!({"gstin": 29, "invoice": "not an object"})), "wrong types"),
    }
}

/// A valid `ewaybill.generate` without an IRN for document `i` (alternating sellers and
/// protocols): a delivery challan moving stock between two places of the seller (outward, for
/// own use, so no tax), as `tests/it/ewaybill_doc.rs` sends it. Returns (GSTIN, doc number, body).
pub fn ewaybill_command(i: usize) -> (&'static str, String, Value) {
    let today = einvoice_worker::domain::invoice::india_today().format("%d/%m/%Y").to_string();
    let doc_no = format!("FE/{i:05}");
    let (gstin, state, (from, from_pin), (to, to_pin)) = if i % 2 == 0 {
        (SELLER_KA, 29, ("Bengaluru", 560001), ("Tumakuru", 572101))
    } else {
        (SELLER_MH, 27, ("Mumbai", 400001), ("Pune", 411001))
    };
    let doc = json!({
        "supplyType": "O", "subSupplyType": "5", "docType": "CHL", "docNo": doc_no, "docDate": today,
        "fromGstin": gstin, "fromTrdName": "Fault Test Traders", "fromAddr1": "12 Industrial Area",
        "fromPlace": from, "fromPincode": from_pin, "fromStateCode": state, "actFromStateCode": state,
        "toGstin": gstin, "toTrdName": "Fault Test Traders (branch)", "toAddr1": "4 Ring Road",
        "toPlace": to, "toPincode": to_pin, "toStateCode": state, "actToStateCode": state,
        "transactionType": 1,
        "itemList": [{"productName": "Drip irrigation kit", "hsnCode": "84248100", "quantity": 40, "qtyUnit": "NOS",
            "taxableAmount": 50000, "cgstRate": 0, "sgstRate": 0, "igstRate": 0, "cessRate": 0}],
        "totalValue": 50000, "cgstValue": 0, "sgstValue": 0, "igstValue": 0, "cessValue": 0, "totInvValue": 50000
    });
    let body = json!({"gstin": gstin, "ewaybill": doc,
        "transport": {"Distance": 70, "TransMode": "1", "VehNo": "KA01AB1234", "VehType": "R"}});
    (gstin, doc_no, body)
}

/// `ewaybill.extend` of an e-way bill inside its extension window (the simulator makes e-way
/// bills valid for 2 hours in the fault run): still moving by road, 50 of its 70 km left.
pub fn extend_command(gstin: &str, ewb_no: &str) -> Value {
    let (place, state, pin) = if gstin == SELLER_KA { ("Tumakuru", "29", "572101") } else { ("Pune", "27", "411001") };
    json!({"gstin": gstin, "ewb_no": ewb_no, "consignment_status": "M", "trans_mode": "1",
        "vehicle_no": "KA05CD5678", "from_place": place, "from_state": state, "from_pincode": pin,
        "remaining_distance": 50, "reason": "1", "remark": "Flood on the highway"})
}

/// `ewaybill.update_transporter` to a TRANSIN (an unregistered transporter's enrolment id).
pub fn transporter_command(gstin: &str, ewb_no: &str) -> Value {
    json!({"gstin": gstin, "ewb_no": ewb_no, "transporter_id": "88AABCT1234A1ZQ"})
}
