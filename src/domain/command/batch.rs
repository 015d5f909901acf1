//! Batches: one command holding many per-document commands of one kind, fanned out into one
//! member command per item (each answered as its own command) and closed by one
//! `batch.completed`; and the marker those member commands carry.
//!
//! [`BATCHES`] is the one table of batch kinds: per member kind, its batch command, the array its
//! items come in, how an item becomes a member's body, the answers that end a member and the
//! outcome names `batch.completed` counts them under. Parsing, fan-out, completion and replay
//! are the same code for every kind (`runtime::jobs::batch`, `store::batches`).
//!
//! Only what concerns the batch as a whole is checked here (the GSTIN, the size, and a kind's own
//! whole-batch rule such as documents sent twice); each item is validated as its member command
//! like any other, so an invalid item fails alone, as its member's rejection.
use std::collections::HashMap;

use serde_json::Value;

use super::{type_name, JobKind, Reader};
use crate::domain::problem::code;
use crate::domain::{DocDate, Gstin, Problem};

/// Items in one batch at most. The message must also fit `EINVOICE_MAX_MESSAGE_BYTES`.
pub const MAX_BATCH_ITEMS: usize = 1000;
/// A `batch_id` is at most this long (it goes into every member's AMQP `message_id`, at most 255 bytes).
pub const MAX_BATCH_ID_LEN: usize = 64;

/// How an item becomes its member command's body (the batch's `gstin` is always the member's).
#[derive(Debug, Clone, Copy)]
pub enum MemberBody {
    /// The item is one field of the member body (`{"gstin", "invoice": item}`).
    Wrap(&'static str),
    /// The item is the member body itself, less the ids the worker sets (`request_id`, `batch`).
    Merge,
}

/// One rule of how a member's first final answer counts: answer `event` (and, when `flag` is
/// set, `data[flag] == true`) counts as `name`. The first matching rule of a kind wins.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub event: &'static str,
    pub flag: Option<&'static str>,
    pub name: &'static str,
}

const fn on(event: &'static str, name: &'static str) -> Outcome {
    Outcome { event, flag: None, name }
}

const fn when(event: &'static str, flag: &'static str, name: &'static str) -> Outcome {
    Outcome { event, flag: Some(flag), name }
}

/// A whole-batch check of a kind, beyond the common ones: problems go to the reader, with the
/// item's path.
pub type BatchCheck = fn(&mut Reader<'_>, &str, &[Value], Option<&Gstin>);

/// One batch kind: everything that differs between batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchKind {
    /// The kind of the members (`irn.generate`).
    pub member: JobKind,
    /// The batch command (`irn.generate_batch`).
    pub batch: JobKind,
    /// The batch body's array of items (`invoices`).
    pub items: &'static str,
    /// What the array holds, for the message when it is missing.
    pub holds: &'static str,
    /// What one item must be, for the message when it is not an object.
    pub item: &'static str,
    pub member_body: MemberBody,
    /// Where an item names its document (type, number, date), for `batch.completed`'s items:
    /// per field, the places to look, the first one given wins.
    pub document: [&'static [&'static str]; 3],
    pub check: Option<BatchCheck>,
    /// What an item acts on, for refusing a batch that names it twice: the ways an item can name
    /// it (the first given wins), each a list of fields read together. Empty: no such check.
    /// Two members on one e-way bill or IRN would run concurrently in no set order.
    pub once: &'static [&'static [&'static str]],
    /// How a member's answer counts; the events named here are the member's final answers.
    pub outcomes: &'static [Outcome],
    /// The counts of `batch.completed`, in their order (every name of `outcomes`).
    pub counts: &'static [&'static str],
}

/// Every batch kind.
pub static BATCHES: [BatchKind; 7] = [
    BatchKind {
        member: JobKind::IrnGenerate,
        batch: JobKind::IrnGenerateBatch,
        items: "invoices",
        holds: "an array of NIC e-invoice JSON objects (schema v1.1) of the seller 'gstin'",
        item: "an invoice (a JSON object)",
        member_body: MemberBody::Wrap("invoice"),
        document: [&["/DocDtls/Typ"], &["/DocDtls/No"], &["/DocDtls/Dt"]],
        check: Some(one_sellers_documents_once),
        once: &[],
        // `irn.in_doubt` and `gstin.paused` do not end a member.
        outcomes: &[
            // The store had the IRN: answered without an IRP call.
            when("irn.generated", "replayed", "already_registered"),
            on("irn.generated", "generated"),
            // The document's IRN is cancelled.
            on("irn.details", "cancelled"),
            on("irn.rejected", "rejected"),
            on("irn.failed", "failed"),
        ],
        counts: &["generated", "already_registered", "cancelled", "rejected", "failed"],
    },
    BatchKind {
        member: JobKind::EinvoiceVerify,
        batch: JobKind::EinvoiceVerifyBatch,
        items: "verifications",
        holds: "an array of verifications (each as the body of an einvoice.verify)",
        item: "an object",
        member_body: MemberBody::Merge,
        document: [&[], &["/expected/doc_number"], &["/expected/doc_date"]],
        check: None,
        once: &[],
        outcomes: &[
            when("einvoice.verified", "valid", "valid"),
            // Answered `valid: false`.
            on("einvoice.verified", "invalid"),
            on("einvoice.verify.rejected", "rejected"),
            on("einvoice.verify.failed", "failed"),
        ],
        counts: &["valid", "invalid", "rejected", "failed"],
    },
    BatchKind {
        member: JobKind::IrnCancel,
        batch: JobKind::IrnCancelBatch,
        items: "cancellations",
        holds: "an array of cancellations (each as the body of an irn.cancel)",
        item: "an object",
        member_body: MemberBody::Merge,
        document: COMMAND_DOCUMENT,
        check: None,
        once: &[&["/irn"], COMMAND_DOCUMENT_KEY],
        outcomes: &[
            // The store or the IRP knew it cancelled already.
            when("irn.cancelled", "already_cancelled", "already_cancelled"),
            on("irn.cancelled", "cancelled"),
            on("irn.cancel.rejected", "rejected"),
            on("irn.cancel.failed", "failed"),
        ],
        counts: &["cancelled", "already_cancelled", "rejected", "failed"],
    },
    BatchKind {
        member: JobKind::EwaybillGenerate,
        batch: JobKind::EwaybillGenerateBatch,
        items: "ewaybills",
        holds: "an array of e-way bills to make (each as the body of an ewaybill.generate)",
        item: "an object",
        member_body: MemberBody::Merge,
        document: [
            &["/document/doc_type", "/ewaybill/docType"],
            &["/document/doc_number", "/ewaybill/docNo"],
            &["/document/doc_date", "/ewaybill/docDate"],
        ],
        check: None,
        once: &[&["/irn"], COMMAND_DOCUMENT_KEY, &["/ewaybill/docType", "/ewaybill/docNo", "/ewaybill/docDate"]],
        outcomes: &[
            // The portal or the store had it (4002, 604, a replay): no second e-way bill.
            when("ewaybill.generated", "already_existed", "already_existed"),
            on("ewaybill.generated", "generated"),
            on("ewaybill.generate.rejected", "rejected"),
            on("ewaybill.generate.failed", "failed"),
        ],
        counts: &["generated", "already_existed", "rejected", "failed"],
    },
    BatchKind {
        member: JobKind::EwaybillUpdateVehicle,
        batch: JobKind::EwaybillUpdateVehicleBatch,
        items: "updates",
        holds: "an array of vehicle updates (each as the body of an ewaybill.update_vehicle)",
        item: "an object",
        member_body: MemberBody::Merge,
        document: [&[], &[], &[]],
        check: None,
        once: EWB_KEY,
        outcomes: &[
            on("ewaybill.vehicle_updated", "updated"),
            on("ewaybill.update_vehicle.rejected", "rejected"),
            on("ewaybill.update_vehicle.failed", "failed"),
        ],
        counts: &["updated", "rejected", "failed"],
    },
    BatchKind {
        member: JobKind::EwaybillExtend,
        batch: JobKind::EwaybillExtendBatch,
        items: "extensions",
        holds: "an array of validity extensions (each as the body of an ewaybill.extend)",
        item: "an object",
        member_body: MemberBody::Merge,
        document: [&[], &[], &[]],
        check: None,
        once: EWB_KEY,
        outcomes: &[
            on("ewaybill.extended", "extended"),
            on("ewaybill.extend.rejected", "rejected"),
            on("ewaybill.extend.failed", "failed"),
        ],
        counts: &["extended", "rejected", "failed"],
    },
    BatchKind {
        member: JobKind::EwaybillCancel,
        batch: JobKind::EwaybillCancelBatch,
        items: "cancellations",
        holds: "an array of cancellations (each as the body of an ewaybill.cancel)",
        item: "an object",
        member_body: MemberBody::Merge,
        document: [&[], &[], &[]],
        check: None,
        once: EWB_KEY,
        outcomes: &[
            // The store knew it cancelled, or the portal answered 312.
            when("ewaybill.cancelled", "already_cancelled", "already_cancelled"),
            on("ewaybill.cancelled", "cancelled"),
            on("ewaybill.cancel.rejected", "rejected"),
            on("ewaybill.cancel.failed", "failed"),
        ],
        counts: &["cancelled", "already_cancelled", "rejected", "failed"],
    },
];

/// An item that names an e-way bill, by its number or by the IRN it was made from.
const EWB_KEY: &[&[&str]] = &[&["/ewb_no"], &["/irn"]];
/// An item's `document`, read together, as a key.
const COMMAND_DOCUMENT_KEY: &[&str] = &["/document/doc_type", "/document/doc_number", "/document/doc_date"];

/// A command's `document` (type, number, date), where `irn.cancel` names a document without its IRN.
const COMMAND_DOCUMENT: [&[&str]; 3] = [&["/document/doc_type"], &["/document/doc_number"], &["/document/doc_date"]];

impl BatchKind {
    /// The batch kind whose batch command is `batch` (a kind or its routing key).
    pub fn of_batch(batch: JobKind) -> Option<&'static BatchKind> {
        BATCHES.iter().find(|b| b.batch == batch)
    }

    pub fn of_batch_key(routing_key: &str) -> Option<&'static BatchKind> {
        BATCHES.iter().find(|b| b.batch.routing_key() == routing_key)
    }

    pub fn of_member(member: JobKind) -> Option<&'static BatchKind> {
        BATCHES.iter().find(|b| b.member == member)
    }

    /// The answers that end a member, each once.
    pub fn final_events(&self) -> Vec<&'static str> {
        let mut out: Vec<&str> = Vec::new();
        for o in self.outcomes {
            if !out.contains(&o.event) {
                out.push(o.event);
            }
        }
        out
    }

    /// How a member ended, from its first final answer (`data` is that event's data).
    pub fn outcome(&self, event_type: &str, data: &Value) -> Option<&'static str> {
        self.outcomes
            .iter()
            .find(|o| o.event == event_type && o.flag.is_none_or(|f| data[f] == Value::Bool(true)))
            .map(|o| o.name)
    }

    /// The member command's body for `item` of the batch of `gstin` (without the batch's ids).
    pub fn member_body(&self, gstin: &Gstin, item: &Value) -> Value {
        match self.member_body {
            MemberBody::Wrap(field) => {
                let mut b = serde_json::Map::new();
                b.insert("gstin".into(), Value::String(gstin.as_str().into()));
                b.insert(field.into(), item.clone());
                Value::Object(b)
            }
            MemberBody::Merge => {
                let mut b = item.clone();
                if let Some(o) = b.as_object_mut() {
                    o.insert("gstin".into(), serde_json::json!(gstin.as_str()));
                    o.remove("request_id");
                    o.remove("batch");
                }
                b
            }
        }
    }

    /// The document `item` names (type upper-cased, number, date), as given.
    pub fn document_of(&self, item: &Value) -> [Option<String>; 3] {
        let at = |ps: &[&str]| ps.iter().find_map(|p| text_at(item, p)).map(str::to_string);
        let [t, n, d] = self.document;
        [at(t).map(|t| t.to_ascii_uppercase()), at(n), at(d)]
    }
}

/// Which batch a member command belongs to, and its place in the batch (0-based).
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

/// The `batch` marker of a member command's body. Unknown fields are tolerated in commands, so
/// a malformed marker is not an error: the command simply belongs to no batch.
pub fn member_marker(body: &Value) -> Option<BatchMember> {
    let b = body.get("batch")?;
    let batch_id = b.get("batch_id")?.as_str()?.to_string();
    let index = u32::try_from(b.get("index")?.as_u64()?).ok()?;
    (!batch_id.is_empty()).then_some(BatchMember { batch_id, index })
}

/// Can `s` be a batch id (also used to take a command's `message_id` as the batch id)?
pub fn valid_batch_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_BATCH_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'))
}

fn text_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// Read `batch_id` and the kind's items; problems go to `r` with their paths
/// (`invoices[3].SellerDtls.Gstin`).
fn parse_batch(
    r: &mut Reader<'_>,
    k: &BatchKind,
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
    let name = k.items;
    let items = match body.get(name) {
        None | Some(Value::Null) => {
            r.problems.push(Problem::new(name, code::REQUIRED, format!("'{name}' is required: {}", k.holds)));
            return (batch_id, None);
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            r.problems.push(Problem::new(
                name,
                code::INVALID_TYPE,
                format!("'{name}' must be an array, found {}", type_name(other)),
            ));
            return (batch_id, None);
        }
    };
    if items.is_empty() {
        r.problems.push(Problem::new(
            name,
            code::BATCH_EMPTY,
            format!("'{name}' is empty: a batch holds 1 to {MAX_BATCH_ITEMS} {name}"),
        ));
        return (batch_id, None);
    }
    if items.len() > MAX_BATCH_ITEMS {
        r.problems.push(Problem::new(
            name,
            code::BATCH_TOO_LARGE,
            format!("the batch has {} {name}; at most {MAX_BATCH_ITEMS} go in one batch: split it", items.len()),
        ));
        return (batch_id, None);
    }
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            r.problems.push(Problem::new(
                format!("{name}[{i}]"),
                code::INVALID_TYPE,
                format!("{name}[{i}] must be {}, found {}", k.item, type_name(item)),
            ));
        }
    }
    if let Some(check) = k.check {
        check(r, name, items, gstin);
    }
    each_target_once(r, k, items);
    (batch_id, Some(items.clone()))
}

/// `irn.generate_batch`: every invoice is the batch's seller's, and each document is in it once.
fn one_sellers_documents_once(r: &mut Reader<'_>, name: &str, invoices: &[Value], gstin: Option<&Gstin>) {
    // Documents by (type, number, financial year), as the IRP tells documents apart.
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    for (i, inv) in invoices.iter().enumerate().filter(|(_, inv)| inv.is_object()) {
        let path = format!("{name}[{i}].SellerDtls.Gstin");
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
                format!("{name}[{i}].DocDtls.No"),
                code::DUPLICATE_IN_BATCH,
                format!("{typ} {no} is the same document as {name}[{first}]: send each document once per batch"),
            ));
        } else {
            seen.insert(key, i);
        }
    }
}

/// Refuse a batch whose items act twice on one thing (an e-way bill, an IRN, a document), as
/// the kind's `once` names it; case and spaces do not make two things different.
fn each_target_once(r: &mut Reader<'_>, k: &BatchKind, items: &[Value]) {
    let name = k.items;
    let mut seen: HashMap<(usize, Vec<String>), usize> = HashMap::new();
    for (i, item) in items.iter().enumerate().filter(|(_, v)| v.is_object()) {
        let key = k.once.iter().enumerate().find_map(|(way, fields)| {
            let vals: Option<Vec<String>> =
                fields.iter().map(|f| text_at(item, f).map(str::to_ascii_uppercase)).collect();
            vals.map(|v| (way, v))
        });
        let Some(key) = key else { continue }; // the member's validation says what is missing
        match seen.get(&key) {
            Some(first) => r.problems.push(Problem::new(
                format!("{name}[{i}]"),
                code::DUPLICATE_IN_BATCH,
                format!(
                    "{name}[{i}] acts on the same {} as {name}[{first}]: send each once per batch",
                    k.once[key.0].iter().map(|f| f.trim_start_matches('/')).collect::<Vec<_>>().join(" + ")
                ),
            )),
            None => {
                seen.insert(key, i);
            }
        }
    }
}

/// A batch command (any kind of [`BATCHES`]): the GSTIN every member runs under, the batch's id
/// if given, and its items, each to become one member command. The items are only checked as a
/// batch here; each member is validated as its own command.
#[derive(Debug, Clone)]
pub struct Bulk {
    pub kind: &'static BatchKind,
    pub gstin: Gstin,
    pub batch_id: Option<String>,
    pub items: Vec<Value>,
}

impl super::CommandBody for Bulk {
    fn parse(r: &mut Reader<'_>, _: &super::ParseOptions) -> Option<Self> {
        // `parse_command` sets the kind; a reader without a batch kind is no batch command.
        let Some(kind) = r.kind.and_then(BatchKind::of_batch) else {
            r.problems.push(Problem::new("", code::UNKNOWN_ROUTING_KEY, "not a batch command"));
            return None;
        };
        let gstin = r.gstin("gstin", true);
        let body = r.body;
        let (batch_id, items) = parse_batch(r, kind, body, gstin.as_ref());
        Some(Bulk { kind, gstin: gstin?, batch_id, items: items? })
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
            Command::IrnGenerateBatch(Bulk { batch_id, items: invoices, .. }) => {
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
    fn a_batch_acting_twice_on_one_thing_is_refused() {
        let parse = |key: &str, mut body: Value| -> Vec<(String, String)> {
            body["gstin"] = json!(G);
            match parse_command(key, body.to_string().as_bytes(), &ParseOptions::default()) {
                Ok(_) => vec![],
                Err(e) => e.problems.into_iter().map(|p| (p.path, p.code)).collect(),
            }
        };
        let ewb = |n: &str| json!({"ewb_no": n, "reason": "2", "remark": "x"});
        let twice = parse(
            "ewaybill.cancel_batch",
            json!({"cancellations": [ewb("181000000001"), ewb("181000000002"), ewb(" 181000000001")]}),
        );
        assert_eq!(twice, vec![("cancellations[2]".into(), "DUPLICATE_IN_BATCH".into())]);
        let doc = |no: &str| json!({"document": {"doc_type": "inv", "doc_number": no, "doc_date": "01/04/2026"}});
        let docs = parse("irn.cancel_batch", json!({"cancellations": [doc("A/1"), doc("a/1"), doc("A/2")]}));
        assert_eq!(docs, vec![("cancellations[1]".into(), "DUPLICATE_IN_BATCH".into())]);
        // Named two different ways, they are not compared; verification has no such rule.
        let mixed = parse("ewaybill.extend_batch", json!({"extensions": [ewb("181000000001"), {"irn": "x"}]}));
        assert!(mixed.is_empty(), "{mixed:?}");
    }

    #[test]
    fn size_limits() {
        assert_eq!(problems(json!({"gstin": G, "invoices": []})), vec![("invoices".into(), "BATCH_EMPTY".into())]);
        let many: Vec<Value> = (0..=MAX_BATCH_ITEMS).map(|i| inv(G, &format!("N/{i}"))).collect();
        let p = problems(json!({"gstin": G, "invoices": many}));
        assert_eq!(p, vec![("invoices".into(), "BATCH_TOO_LARGE".into())]);
        let p = problems(json!({"invoices": {}}));
        assert!(
            p.contains(&("gstin".into(), "REQUIRED".into())) && p.contains(&("invoices".into(), "INVALID_TYPE".into()))
        );
    }

    #[test]
    fn every_batch_kind_counts_each_of_its_outcomes_and_ends_on_its_members_answers() {
        for k in &BATCHES {
            assert_eq!(k.batch.member(), Some(k.member), "{:?}", k.batch);
            assert_eq!(k.member.batch(), Some(k.batch), "{:?}", k.member);
            let mut names: Vec<&str> = k.outcomes.iter().map(|o| o.name).collect();
            names.sort_unstable();
            names.dedup();
            let mut counts = k.counts.to_vec();
            counts.sort_unstable();
            assert_eq!(names, counts, "{:?}", k.batch);
            // Every member's rejection and failure end it, as its success does.
            let finals = k.final_events();
            for e in [k.member.success_event(), k.member.rejected_event(), k.member.failed_event()] {
                assert!(finals.contains(&e), "{:?}: {e}", k.batch);
            }
            assert_eq!(k.batch.success_event(), "batch.accepted");
            assert_eq!(k.batch.rejected_event(), format!("{}.rejected", k.batch.routing_key()));
        }
        let generate = BatchKind::of_batch(JobKind::IrnGenerateBatch).unwrap();
        assert_eq!(generate.outcome("irn.generated", &json!({"replayed": true})), Some("already_registered"));
        assert_eq!(generate.outcome("irn.generated", &json!({})), Some("generated"));
        assert_eq!(generate.outcome("irn.in_doubt", &json!({})), None);
    }

    /// The contract's example of each batch command holds items that are valid members.
    #[test]
    fn every_batch_example_in_the_contract_fans_out_into_valid_members() {
        let doc: Value = serde_norway::from_str(crate::domain::schema::ASYNCAPI_YAML).unwrap();
        let messages = doc["components"]["messages"].as_object().unwrap();
        for k in &BATCHES {
            let rk = k.batch.routing_key();
            let (_, msg) = messages
                .iter()
                .find(|(name, m)| name.ends_with("Command") && m["name"] == rk)
                .unwrap_or_else(|| panic!("no message for {rk}"));
            let examples = msg["examples"].as_array().unwrap_or_else(|| panic!("{rk} has no example"));
            for ex in examples {
                let body = &ex["payload"];
                let p = parse_command(rk, body.to_string().as_bytes(), &ParseOptions::default())
                    .unwrap_or_else(|e| panic!("{rk}: {:?}", e.problems));
                let (Command::IrnGenerateBatch(b)
                | Command::EinvoiceVerifyBatch(b)
                | Command::IrnCancelBatch(b)
                | Command::EwaybillGenerateBatch(b)
                | Command::EwaybillUpdateVehicleBatch(b)
                | Command::EwaybillExtendBatch(b)
                | Command::EwaybillCancelBatch(b)) = p.command
                else {
                    panic!("{rk} parsed as {:?}", p.command.kind())
                };
                // Offline checks only: a verification's token is read by its handler.
                if k.member == JobKind::EinvoiceVerify {
                    continue;
                }
                for item in &b.items {
                    let member = k.member_body(&b.gstin, item);
                    let m = k.member.routing_key();
                    if let Err(e) = parse_command(m, member.to_string().as_bytes(), &ParseOptions::default()) {
                        panic!("{rk}: an item of its example is no valid {m}: {:?}\n{member:#}", e.problems);
                    }
                }
            }
        }
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
