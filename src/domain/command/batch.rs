//! `irn.generate_batch`: one seller's invoices in one command, fanned out into one `irn.generate`
//! per invoice; and the marker those member commands carry.
//!
//! Only what concerns the batch as a whole is checked here (the seller of every invoice, the
//! size, documents sent twice); each invoice is validated by the generate path like any other,
//! so an invalid invoice fails alone, as its member's `irn.rejected`.
use std::collections::HashMap;

use serde_json::Value;

use super::{type_name, Reader};
use crate::domain::problem::code;
use crate::domain::{DocDate, Gstin, Problem};

/// Invoices in one batch at most. The message must also fit `EINVOICE_MAX_MESSAGE_BYTES`.
pub const MAX_BATCH_INVOICES: usize = 1000;
/// A `batch_id` is at most this long (it goes into every member's AMQP `message_id`, at most 255 bytes).
pub const MAX_BATCH_ID_LEN: usize = 64;

/// Which batch a member `irn.generate` belongs to, and its place in the batch (0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMember {
    pub batch_id: String,
    pub index: u32,
}

impl BatchMember {
    /// The member's AMQP `message_id`: fixed by batch and place, so the members of a batch
    /// published twice (a redelivered batch command) are the same messages.
    pub fn message_id(batch_id: &str, index: u32) -> String {
        format!("batch:{batch_id}:{index}")
    }

    /// The member's `request_id`, which its events carry (and `job.status` finds it by).
    pub fn request_id(batch_id: &str, index: u32) -> String {
        format!("{batch_id}:{index}")
    }

    /// The `batch` field of a member command's body.
    pub fn marker(batch_id: &str, index: u32) -> Value {
        serde_json::json!({"batch_id": batch_id, "index": index})
    }
}

/// The `batch` marker of an `irn.generate` body. Unknown fields are tolerated in commands, so a
/// malformed marker is not an error: the command simply belongs to no batch.
pub fn member_marker(body: &Value) -> Option<BatchMember> {
    let b = body.get("batch")?;
    let batch_id = b.get("batch_id")?.as_str()?.to_string();
    let index = u32::try_from(b.get("index")?.as_u64()?).ok()?;
    (!batch_id.is_empty()).then_some(BatchMember { batch_id, index })
}

/// The answers that end a member `irn.generate` (`irn.in_doubt` and `gstin.paused` do not) or
/// a member `einvoice.verify`.
pub const FINAL_MEMBER_EVENTS: [&str; 7] = [
    "irn.generated",
    "irn.details",
    "irn.rejected",
    "irn.failed",
    "einvoice.verified",
    "einvoice.verify.rejected",
    "einvoice.verify.failed",
];

/// How a member ended, from its first final answer (`data` is that event's data), as
/// `batch.completed` counts it: `generated` (registered now), `already_registered` (the store
/// had the IRN: answered without an IRP call), `cancelled` (the document's IRN is cancelled),
/// `rejected`, `failed`.
pub fn member_outcome(event_type: &str, data: &Value) -> Option<&'static str> {
    match event_type {
        "irn.generated" if data["replayed"] == Value::Bool(true) => Some("already_registered"),
        "irn.generated" => Some("generated"),
        "irn.details" => Some("cancelled"),
        "irn.rejected" => Some("rejected"),
        "irn.failed" => Some("failed"),
        "einvoice.verified" if data["valid"] == Value::Bool(true) => Some("valid"),
        "einvoice.verified" => Some("invalid"),
        "einvoice.verify.rejected" => Some("rejected"),
        "einvoice.verify.failed" => Some("failed"),
        _ => None,
    }
}

/// The outcomes `batch.completed` counts for an `irn.generate_batch`, in its order.
pub const MEMBER_OUTCOMES: [&str; 5] = ["generated", "already_registered", "cancelled", "rejected", "failed"];
/// The outcomes `batch.completed` counts for an `einvoice.verify_batch` (`valid`: the e-invoice
/// verified; `invalid`: answered `valid: false`), in its order.
pub const VERIFY_OUTCOMES: [&str; 4] = ["valid", "invalid", "rejected", "failed"];

/// Can `s` be a batch id (also used to take a command's `message_id` as the batch id)?
pub fn valid_batch_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_BATCH_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'))
}

fn text_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// Read `batch_id` and `invoices`; problems go to `r` with their paths (`invoices[3].SellerDtls.Gstin`).
pub(super) fn parse_batch(
    r: &mut Reader<'_>,
    body: &Value,
    gstin: Option<&Gstin>,
) -> (Option<String>, Option<Vec<Value>>) {
    let batch_id = r.opt_str("batch_id").and_then(|id| {
        if valid_batch_id(&id) {
            Some(id)
        } else {
            r.problems.push(Problem::new(
                "batch_id",
                code::BATCH_ID_INVALID,
                format!("'{id}' is not a batch id: 1 to {MAX_BATCH_ID_LEN} letters, digits and - _ . / :"),
            ));
            None
        }
    });
    let invoices = match body.get("invoices") {
        None | Some(Value::Null) => {
            r.problems.push(Problem::new(
                "invoices",
                code::REQUIRED,
                "'invoices' is required: an array of NIC e-invoice JSON objects (schema v1.1) of the seller 'gstin'",
            ));
            return (batch_id, None);
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            r.problems.push(Problem::new(
                "invoices",
                code::INVALID_TYPE,
                format!("'invoices' must be an array of invoices, found {}", type_name(other)),
            ));
            return (batch_id, None);
        }
    };
    if invoices.is_empty() {
        r.problems.push(Problem::new(
            "invoices",
            code::BATCH_EMPTY,
            "'invoices' is empty: a batch holds 1 to 1000 invoices",
        ));
        return (batch_id, None);
    }
    if invoices.len() > MAX_BATCH_INVOICES {
        r.problems.push(Problem::new(
            "invoices",
            code::BATCH_TOO_LARGE,
            format!(
                "the batch has {} invoices; at most {MAX_BATCH_INVOICES} go in one batch: split it",
                invoices.len()
            ),
        ));
        return (batch_id, None);
    }
    // Documents by (type, number, financial year), as the IRP tells documents apart.
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    for (i, inv) in invoices.iter().enumerate() {
        if !inv.is_object() {
            r.problems.push(Problem::new(
                format!("invoices[{i}]"),
                code::INVALID_TYPE,
                format!("invoices[{i}] must be an invoice (a JSON object), found {}", type_name(inv)),
            ));
            continue;
        }
        let path = format!("invoices[{i}].SellerDtls.Gstin");
        match (text_at(inv, "/SellerDtls/Gstin"), gstin) {
            (None, _) => r.problems.push(Problem::new(
                path,
                code::REQUIRED,
                "the seller GSTIN is required: every invoice of a batch is the batch's seller's",
            )),
            (Some(seller), Some(g)) if !seller.eq_ignore_ascii_case(g.as_str()) => r.problems.push(Problem::new(
                path,
                code::SELLER_GSTIN_MISMATCH,
                format!("seller GSTIN '{seller}' is not the batch's 'gstin' {g}: a batch holds one seller's invoices"),
            )),
            _ => {}
        }
        let (Some(typ), Some(no)) = (text_at(inv, "/DocDtls/Typ"), text_at(inv, "/DocDtls/No")) else {
            continue; // the member's validation says what is missing
        };
        let dt = text_at(inv, "/DocDtls/Dt").unwrap_or_default();
        let year = DocDate::parse(dt).map(|d| d.financial_year().to_string()).unwrap_or_else(|_| dt.to_string());
        let key = (typ.to_ascii_uppercase(), no.to_ascii_uppercase(), year);
        if let Some(first) = seen.get(&key) {
            r.problems.push(Problem::new(
                format!("invoices[{i}].DocDtls.No"),
                code::DUPLICATE_IN_BATCH,
                format!("{typ} {no} is the same document as invoices[{first}]: send each document once per batch"),
            ));
        } else {
            seen.insert(key, i);
        }
    }
    (batch_id, Some(invoices.clone()))
}

/// `irn.generate_batch`: fans out into one `irn.generate` per invoice. The invoices are only
/// checked for their seller here; each member is validated by the generate path.
#[derive(Debug, Clone)]
pub struct GenerateBatch {
    pub gstin: Gstin,
    pub batch_id: Option<String>,
    pub invoices: Vec<Value>,
}

impl super::CommandBody for GenerateBatch {
    fn parse(r: &mut Reader<'_>, _: &super::ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let body = r.body;
        let (batch_id, invoices) = parse_batch(r, body, gstin.as_ref());
        Some(GenerateBatch { gstin: gstin?, batch_id, invoices: invoices? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::command::{parse_command, Command, ParseOptions};

    const G: &str = "29AAGCP4821K1Z3";

    fn inv(seller: &str, no: &str) -> Value {
        json!({"SellerDtls": {"Gstin": seller}, "DocDtls": {"Typ": "INV", "No": no, "Dt": "01/04/2025"}})
    }

    fn problems(body: Value) -> Vec<(String, String)> {
        let e = parse_command("irn.generate_batch", body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
        e.problems.into_iter().map(|p| (p.path, p.code)).collect()
    }

    #[test]
    fn a_good_batch_keeps_its_invoices_in_order() {
        let body = json!({"gstin": G, "batch_id": "day-2025-04-01", "invoices": [inv(G, "A/1"), inv(G, "A/2")]});
        let p = parse_command("irn.generate_batch", body.to_string().as_bytes(), &ParseOptions::default()).unwrap();
        match p.command {
            Command::IrnGenerateBatch(GenerateBatch { batch_id, invoices, .. }) => {
                assert_eq!(batch_id.as_deref(), Some("day-2025-04-01"));
                assert_eq!(invoices[1]["DocDtls"]["No"], "A/2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_problems_name_the_invoice() {
        let body = json!({"gstin": G, "batch_id": "no spaces", "invoices": [
            inv(G, "A/1"), inv("27AAKFU7303M1ZP", "A/2"), 7, inv(G, "a/1"), {"DocDtls": {}}
        ]});
        let p = problems(body);
        for want in [
            ("batch_id", "BATCH_ID_INVALID"),
            ("invoices[1].SellerDtls.Gstin", "SELLER_GSTIN_MISMATCH"),
            ("invoices[2]", "INVALID_TYPE"),
            ("invoices[3].DocDtls.No", "DUPLICATE_IN_BATCH"),
            ("invoices[4].SellerDtls.Gstin", "REQUIRED"),
        ] {
            assert!(p.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {p:?}");
        }
        assert_eq!(p.len(), 5, "{p:?}");
    }

    #[test]
    fn size_limits() {
        assert_eq!(problems(json!({"gstin": G, "invoices": []})), vec![("invoices".into(), "BATCH_EMPTY".into())]);
        let many: Vec<Value> = (0..=MAX_BATCH_INVOICES).map(|i| inv(G, &format!("N/{i}"))).collect();
        let p = problems(json!({"gstin": G, "invoices": many}));
        assert_eq!(p, vec![("invoices".into(), "BATCH_TOO_LARGE".into())]);
        let p = problems(json!({"invoices": {}}));
        assert!(
            p.contains(&("gstin".into(), "REQUIRED".into())) && p.contains(&("invoices".into(), "INVALID_TYPE".into()))
        );
    }

    #[test]
    fn members_carry_a_marker_that_survives_parsing() {
        let body = json!({"gstin": G, "invoice": {}, "batch": BatchMember::marker("b1", 3)});
        let e = parse_command("irn.generate", body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
        assert_eq!(e.batch, Some(BatchMember { batch_id: "b1".into(), index: 3 }));
        assert_eq!(member_marker(&json!({"batch": {"batch_id": "b1", "index": -1}})), None);
        assert_eq!(member_marker(&json!({"batch": "b1"})), None);
    }
}
