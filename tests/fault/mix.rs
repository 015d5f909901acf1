//! What the fault test sends: valid invoices (two sellers, one per protocol) and malformed or
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
