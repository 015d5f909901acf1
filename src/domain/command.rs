//! Commands: what an ERP asks the worker to do, parsed from one AMQP message.
//!
//! One job kind, one slice: the table in [`job_kinds!`] gives each kind its routing key, the
//! type its body parses into (a module of its own under `command/`, implementing
//! [`CommandBody`]) and the events that answer it. [`JobKind`] and [`Command`] are generated from
//! that table, so a kind added there is one the compiler then asks every `match` to handle
//! (the worker's dispatch in `runtime::jobs` above all).
//!
//! Parsing collects every problem with its path instead of stopping at the first, and an
//! unparseable message still yields a [`Rejected`] that knows what could be read of its ids.
use serde_json::Value;

pub mod b2c;
pub mod batch;
pub mod cancel;
mod envelope;
pub mod ewaybill;
pub mod ewaybill_cancel;
pub mod ewaybill_doc;
pub mod ewaybill_extend;
pub mod ewaybill_generate;
pub mod ewaybill_get;
pub mod ewaybill_update_transporter;
pub mod ewaybill_update_vehicle;
pub mod generate;
pub mod get;
pub mod gstin_details;
pub mod reader;
pub mod reconcile;
pub mod status;
pub mod verify;

pub use cancel::CancelReason;
pub use reader::Reader;

use super::document::{DocDate, DocNumber, DocType};
use super::event::{DocumentAsGiven, DocumentRef};
use super::invoice::ValidationOptions;
use super::problem::code;
use super::{Gstin, Problem};
use reader::{doc_ref, target, type_name};

/// What every command's body type does: parse itself from the message (recording every problem
/// in the reader, with its path), and say which GSTIN it runs under and what it is about.
pub trait CommandBody: Sized {
    /// `None` when a required part is missing or invalid; the problems are in `r`. A command is
    /// valid only when `r` holds no problem at all (`parse_command` checks).
    fn parse(r: &mut Reader<'_>, opts: &ParseOptions) -> Option<Self>;
    /// The GSTIN whose credentials the command runs under, if it names one.
    fn gstin(&self) -> Option<&Gstin>;
    /// What the command is about, for log lines: the document (`TYPE/NUMBER/DATE`) or the IRN.
    fn subject(&self) -> Option<String> {
        None
    }
}

/// The job kinds. One line each: `Variant(body type) = "routing.key" => success, rejected,
/// failed` event types. Generates [`JobKind`] (with its `ALL` list and the event names) and
/// [`Command`] (one variant per kind, holding its parsed body).
macro_rules! job_kinds {
    ($($(#[$doc:meta])* $kind:ident($body:ty) = $rk:literal => $ok:literal, $rejected:literal, $failed:literal;)+) => {
        /// The job types, one per routing key on `einvoice.commands`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum JobKind {
            $($(#[$doc])* $kind,)+
        }

        impl JobKind {
            pub const ALL: [JobKind; [$(stringify!($kind)),+].len()] = [$(JobKind::$kind,)+];

            pub fn routing_key(self) -> &'static str {
                match self { $(JobKind::$kind => $rk,)+ }
            }

            /// The event type published on success.
            pub fn success_event(self) -> &'static str {
                match self { $(JobKind::$kind => $ok,)+ }
            }

            /// The event type for a permanent rejection.
            pub fn rejected_event(self) -> &'static str {
                match self { $(JobKind::$kind => $rejected,)+ }
            }

            /// The event type when transient failures outlasted the retry budget.
            pub fn failed_event(self) -> &'static str {
                match self { $(JobKind::$kind => $failed,)+ }
            }
        }

        /// A parsed, valid command: its kind and its typed body.
        #[derive(Debug, Clone)]
        pub enum Command {
            $($kind($body),)+
        }

        impl Command {
            pub fn kind(&self) -> JobKind {
                match self { $(Command::$kind(_) => JobKind::$kind,)+ }
            }

            /// The GSTIN whose credentials the command runs under, if it has one.
            pub fn gstin(&self) -> Option<&Gstin> {
                match self { $(Command::$kind(c) => c.gstin(),)+ }
            }

            /// What the command is about, for log lines: the document (`TYPE/NUMBER/DATE`) or the IRN.
            pub fn subject(&self) -> Option<String> {
                match self { $(Command::$kind(c) => c.subject(),)+ }
            }

            /// Parse the body of a `kind` command with that kind's slice.
            fn parse_body(kind: JobKind, r: &mut Reader<'_>, opts: &ParseOptions) -> Option<Command> {
                match kind { $(JobKind::$kind => <$body as CommandBody>::parse(r, opts).map(Command::$kind),)+ }
            }
        }
    };
}

job_kinds! {
    IrnGenerate(generate::Generate) = "irn.generate" => "irn.generated", "irn.rejected", "irn.failed";
    IrnCancel(cancel::Cancel) = "irn.cancel" => "irn.cancelled", "irn.cancel.rejected", "irn.cancel.failed";
    IrnGet(get::Get) = "irn.get" => "irn.details", "irn.get.rejected", "irn.get.failed";
    GstinDetails(gstin_details::GstinDetails) = "gstin.details"
        => "gstin.details", "gstin.details.rejected", "gstin.details.failed";
    EwaybillGet(ewaybill_get::EwaybillGet) = "ewaybill.get"
        => "ewaybill.details", "ewaybill.get.rejected", "ewaybill.get.failed";
    B2cQr(b2c::B2cQr) = "b2c.qr" => "b2c.qr", "b2c.qr.rejected", "b2c.qr.failed";
    ReconcileRejected(reconcile::ReconcileRejected) = "reconcile.rejected"
        => "reconcile.completed", "reconcile.rejected.rejected", "reconcile.rejected.failed";
    EwaybillGenerate(ewaybill_generate::EwaybillGenerate) = "ewaybill.generate"
        => "ewaybill.generated", "ewaybill.generate.rejected", "ewaybill.generate.failed";
    EwaybillUpdateVehicle(ewaybill_update_vehicle::EwaybillUpdateVehicle) = "ewaybill.update_vehicle"
        => "ewaybill.vehicle_updated", "ewaybill.update_vehicle.rejected", "ewaybill.update_vehicle.failed";
    EwaybillCancel(ewaybill_cancel::EwaybillCancel) = "ewaybill.cancel"
        => "ewaybill.cancelled", "ewaybill.cancel.rejected", "ewaybill.cancel.failed";
    EwaybillExtend(ewaybill_extend::EwaybillExtend) = "ewaybill.extend"
        => "ewaybill.extended", "ewaybill.extend.rejected", "ewaybill.extend.failed";
    EwaybillUpdateTransporter(ewaybill_update_transporter::EwaybillUpdateTransporter) = "ewaybill.update_transporter"
        => "ewaybill.transporter_updated", "ewaybill.update_transporter.rejected", "ewaybill.update_transporter.failed";
    JobStatus(status::JobStatus) = "job.status" => "job.status", "job.status.rejected", "job.status.failed";
    /// The immediate answer is `batch.accepted`; `batch.completed` follows once every member is final.
    IrnGenerateBatch(batch::Bulk) = "irn.generate_batch"
        => "batch.accepted", "irn.generate_batch.rejected", "irn.generate_batch.failed";
    /// Offline: a supplier's signed e-invoice, checked against the IRPs' signing keys.
    EinvoiceVerify(verify::Verify) = "einvoice.verify"
        => "einvoice.verified", "einvoice.verify.rejected", "einvoice.verify.failed";
    /// `batch.accepted`, then one `batch.completed`, as `irn.generate_batch`: the same batches.
    EinvoiceVerifyBatch(batch::Bulk) = "einvoice.verify_batch"
        => "batch.accepted", "einvoice.verify_batch.rejected", "einvoice.verify_batch.failed";
    /// Batches of the other per-document commands: `batch.accepted`, then one `batch.completed`.
    IrnCancelBatch(batch::Bulk) = "irn.cancel_batch"
        => "batch.accepted", "irn.cancel_batch.rejected", "irn.cancel_batch.failed";
    EwaybillGenerateBatch(batch::Bulk) = "ewaybill.generate_batch"
        => "batch.accepted", "ewaybill.generate_batch.rejected", "ewaybill.generate_batch.failed";
    EwaybillUpdateVehicleBatch(batch::Bulk) = "ewaybill.update_vehicle_batch"
        => "batch.accepted", "ewaybill.update_vehicle_batch.rejected", "ewaybill.update_vehicle_batch.failed";
    EwaybillExtendBatch(batch::Bulk) = "ewaybill.extend_batch"
        => "batch.accepted", "ewaybill.extend_batch.rejected", "ewaybill.extend_batch.failed";
    EwaybillCancelBatch(batch::Bulk) = "ewaybill.cancel_batch"
        => "batch.accepted", "ewaybill.cancel_batch.rejected", "ewaybill.cancel_batch.failed";
}

impl JobKind {
    /// The batch command whose members are commands of this kind, if any (see [`batch::BATCHES`]).
    pub fn batch(self) -> Option<JobKind> {
        batch::BatchKind::of_member(self).map(|b| b.batch)
    }

    /// The kind of a batch command's members (`irn.generate_batch` → `irn.generate`).
    pub fn member(self) -> Option<JobKind> {
        batch::BatchKind::of_batch(self).map(|b| b.member)
    }

    pub fn from_routing_key(rk: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.routing_key() == rk)
    }
}

/// The most problems one rejection lists: the first ones found, and the count of the others
/// (`Rejected::omitted`), so an answer stays small whatever the command holds.
pub const MAX_PROBLEMS: usize = 100;

/// The longest `request_id` (characters) a command may carry: it is echoed in every answer.
pub const REQUEST_ID_MAX_CHARS: usize = 128;

/// The longest problem message (characters) a rejection carries; a longer one (a message quoting
/// a huge value) is cut.
pub const MESSAGE_MAX_CHARS: usize = 500;

/// The event type of a rejection when the routing key names no known command.
pub const COMMAND_REJECTED: &str = "command.rejected";

/// A document named by type, number and date (for lookups that have no IRN).
#[derive(Debug, Clone, PartialEq)]
pub struct DocRef {
    pub doc_type: DocType,
    pub doc_number: DocNumber,
    pub doc_date: DocDate,
}

impl std::fmt::Display for DocRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.doc_type, self.doc_number, self.doc_date)
    }
}

/// IRN or document: how a cancel or a lookup names its target.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Irn(String),
    Document(DocRef),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Irn(irn) => f.write_str(irn),
            Target::Document(d) => d.fmt(f),
        }
    }
}

/// A message that is not a valid command: every problem found, and what could be read of it.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub kind: Option<JobKind>,
    pub request_id: Option<String>,
    /// Problems with the envelope (JSON, routing key, size) rather than the invoice; such
    /// messages are also dead-lettered so an operator can inspect the original bytes.
    pub envelope: bool,
    pub problems: Vec<Problem>,
    /// The document the command names, when its key (seller GSTIN, type, number, date) is valid
    /// even though something else is not (an invoice with a wrong tax amount still names its
    /// document), so the ERP can match the rejection to it. (Boxed: keeps the error small.)
    pub document: Option<Box<DocumentRef>>,
    /// The batch the command belongs to (an `irn.generate` fanned out by `irn.generate_batch`).
    pub batch: Option<batch::BatchMember>,
    /// The document's fields as the command gave them, valid or not (`data.document_as_given`).
    pub document_as_given: Option<Box<DocumentAsGiven>>,
    /// Problems found beyond the [`MAX_PROBLEMS`] listed (`data.errors_omitted`).
    pub omitted: usize,
}

/// Limits and switches that parsing needs.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub max_message_bytes: usize,
    pub validation: ValidationOptions,
    /// The IRP's reporting window (days) for sellers it applies to (AATO ≥ ₹10 cr), by GSTIN;
    /// overrides `validation.reporting_window_days` for that seller.
    pub reporting_window_by_gstin: std::collections::BTreeMap<String, u32>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            validation: ValidationOptions::default(),
            reporting_window_by_gstin: Default::default(),
        }
    }
}

impl ParseOptions {
    /// Validation options for one seller.
    pub fn for_seller(&self, gstin: Option<&Gstin>) -> std::borrow::Cow<'_, ValidationOptions> {
        match gstin.and_then(|g| self.reporting_window_by_gstin.get(g.as_str())) {
            Some(days) => std::borrow::Cow::Owned(ValidationOptions {
                reporting_window_days: Some(*days),
                ..self.validation.clone()
            }),
            None => std::borrow::Cow::Borrowed(&self.validation),
        }
    }
}

/// A valid command and the client's optional `request_id`.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub command: Command,
    pub request_id: Option<String>,
    /// The batch the command belongs to (an `irn.generate` fanned out by `irn.generate_batch`).
    pub batch: Option<batch::BatchMember>,
}

/// Parse one message body under its routing key.
pub fn parse_command(routing_key: &str, body: &[u8], opts: &ParseOptions) -> Result<Parsed, Rejected> {
    let kind = JobKind::from_routing_key(routing_key);
    let envelope_err = |kind, request_id, p: Problem| Rejected {
        kind,
        request_id,
        envelope: true,
        problems: vec![p],
        document: None,
        batch: None,
        document_as_given: None,
        omitted: 0,
    };
    if body.len() > opts.max_message_bytes {
        return Err(envelope_err(
            kind,
            None,
            Problem::new(
                "",
                code::MESSAGE_TOO_LARGE,
                format!("the message is {} bytes; the limit is {} bytes", body.len(), opts.max_message_bytes),
            ),
        ));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Err(envelope_err(
                kind,
                None,
                Problem::new("", code::INVALID_JSON, format!("the message is not valid JSON: {e}")),
            ));
        }
    };
    let request_id = value.get("request_id").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    // Every answer echoes the request id: a longer one is refused, and echoed cut.
    let long_request_id = request_id.as_ref().map_or(0, |r| r.chars().count());
    let request_id = request_id.map(|r| super::text::cut(&r, REQUEST_ID_MAX_CHARS).into_owned());
    let Some(kind) = kind else {
        let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.routing_key()).collect();
        return Err(envelope_err(
            None,
            request_id,
            Problem::new(
                "",
                code::UNKNOWN_ROUTING_KEY,
                format!("routing key '{routing_key}' is not a known command; expected one of: {}", known.join(", ")),
            ),
        ));
    };
    if !value.is_object() {
        return Err(envelope_err(
            Some(kind),
            request_id,
            Problem::new(
                "",
                code::INVALID_TYPE,
                format!("the message must be a JSON object, found {}", type_name(&value)),
            ),
        ));
    }
    if let Some(p) = envelope::schema_version_problem(&value) {
        return Err(envelope_err(Some(kind), request_id, p));
    }
    // The contract's schema first: what it refuses is refused, whatever the checks below say.
    let schema = super::schema::command_problems(routing_key, &value);
    // No stored text can hold a NUL: refuse it wherever it is, with its path.
    let nul = super::text::nul_problems(&value);
    let batch = if kind.batch().is_some() { batch::member_marker(&value) } else { None };
    let relaxed = opts.validation.relaxed_gstin_check_digit;
    let mut r =
        Reader { body: &value, problems: Vec::new(), request_id: request_id.as_deref(), relaxed, kind: Some(kind) };
    if long_request_id > REQUEST_ID_MAX_CHARS {
        r.problems.push(Problem::new(
            "request_id",
            code::REQUEST_ID_TOO_LONG,
            format!("'request_id' has {long_request_id} characters; the limit is {REQUEST_ID_MAX_CHARS}"),
        ));
    }
    // A command is valid only when its slice found no problem at all.
    let cmd = Command::parse_body(kind, &mut r, opts).filter(|_| r.problems.is_empty());
    let problems = r.problems;
    match cmd {
        Some(command) if nul.is_empty() && schema.is_empty() => Ok(Parsed { command, request_id, batch }),
        _ => {
            let mut problems: Vec<Problem> = nul.into_iter().chain(problems).collect();
            let extra = envelope::schema_only(&problems, schema);
            problems.extend(extra);
            let omitted = problems.len().saturating_sub(MAX_PROBLEMS);
            problems.truncate(MAX_PROBLEMS);
            for p in &mut problems {
                if let std::borrow::Cow::Owned(m) = super::text::cut(&p.message, MESSAGE_MAX_CHARS) {
                    p.message = m;
                }
                if let std::borrow::Cow::Owned(path) = super::text::cut(&p.path, MESSAGE_MAX_CHARS) {
                    p.path = path;
                }
            }
            Err(Rejected {
                omitted,
                kind: Some(kind),
                request_id,
                envelope: false,
                problems,
                document: envelope::document_if_valid(&value, relaxed).map(Box::new),
                document_as_given: envelope::document_as_given(&value).map(Box::new),
                batch,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn not_json_is_an_envelope_problem() {
        let e = parse_command("irn.generate", b"{oops", &ParseOptions::default()).unwrap_err();
        assert!(e.envelope);
        assert_eq!(e.kind, Some(JobKind::IrnGenerate));
        assert_eq!(e.problems[0].code, "INVALID_JSON");
    }

    #[test]
    fn missing_invoice_names_the_field() {
        let e = parse_command(
            "irn.generate",
            br#"{"gstin":"29AAGCP4821K1Z3","request_id":"r1"}"#,
            &ParseOptions::default(),
        )
        .unwrap_err();
        assert!(!e.envelope);
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        assert_eq!(e.problems[0].path, "invoice");
        assert_eq!(e.problems[0].code, "REQUIRED");
    }

    #[test]
    fn an_invalid_invoice_still_names_its_document() {
        let body = br#"{"gstin":"29AAGCP4821K1Z3","invoice":{"DocDtls":{"Typ":"inv","No":"SMP/9","Dt":"01/04/2025"},"SellerDtls":{"Gstin":"29AAGCP4821K1Z3"}}}"#;
        let e = parse_command("irn.generate", body, &ParseOptions::default()).unwrap_err();
        let d = e.document.expect("document as given");
        assert_eq!(
            (d.doc_type.as_str(), d.doc_number.as_str(), d.financial_year.as_str()),
            ("INV", "SMP/9", "2025-26")
        );
        assert_eq!(d.gstin, "29AAGCP4821K1Z3");
    }

    /// The five shapes of a broken document key from issue 14: none yields a `document` (whose
    /// schema is strict); each is repeated as given.
    #[test]
    fn a_broken_document_key_gives_no_document_but_says_what_was_given() {
        let cases: [(&str, Value); 5] = [
            ("Dt", json!("31/02/2025")),
            ("Dt", json!("2025-04-01")),
            ("Typ", json!("INVOICE")),
            ("No", json!("ABCDEFGHIJ1234567")),
            ("No", json!("SMP/1\u{202E}9")),
        ];
        for (field, value) in cases {
            let mut inv = crate::samples::stamped("b2b-intra-goods", Some("KEY/1"));
            inv["DocDtls"][field] = value.clone();
            let body = json!({"gstin": "29AAGCP4821K1Z3", "invoice": inv});
            let e = parse_command("irn.generate", body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
            assert!(e.document.is_none(), "{field}={value}: {:?}", e.document);
            let given = e.document_as_given.expect("as given");
            let got = match field {
                "Dt" => given.doc_date,
                "Typ" => given.doc_type,
                _ => given.doc_number,
            };
            assert_eq!(got.as_deref(), value.as_str(), "{field}");
            assert_eq!(given.gstin.as_deref(), Some("29AAGCP4821K1Z3"));
            assert!(e.problems.iter().any(|p| p.path == format!("invoice.DocDtls.{field}")), "{:?}", e.problems);
        }
    }

    #[test]
    fn a_valid_key_names_the_document_even_when_the_invoice_is_wrong() {
        let mut inv = crate::samples::stamped("b2b-intra-goods", Some("KEY/2"));
        inv["ItemList"][0]["AssAmt"] = json!(1);
        let date = inv["DocDtls"]["Dt"].as_str().unwrap().to_string();
        let body = json!({"gstin": "29AAGCP4821K1Z3", "invoice": inv, "request_id": 42});
        let e = parse_command("irn.generate", body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
        let d = e.document.expect("document");
        assert_eq!((d.doc_number.as_str(), d.doc_date.as_deref()), ("KEY/2", Some(date.as_str())));
        assert_eq!(e.request_id.as_deref(), Some("42"));
        // Other commands name theirs in `document`.
        let body = json!({"gstin": "29AAGCP4821K1Z3", "reason": "9",
            "document": {"doc_type": "INV", "doc_number": "C/1", "doc_date": "01/04/2025"}});
        let e = parse_command("irn.cancel", body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
        assert_eq!(e.document.expect("document").financial_year, "2025-26");
        assert_eq!(e.document_as_given.expect("as given").doc_number.as_deref(), Some("C/1"));
    }

    #[test]
    fn schema_violations_are_rejected_even_when_the_worker_would_accept() {
        // `gstin` in lower case: the worker would upper-case it, but the contract says upper case.
        let body = json!({"gstin": "29aagcp4821k1z3", "target_gstin": "33AAFCR6612L1ZA"});
        let e = parse_command("gstin.details", body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{:?}", e.problems);
        assert_eq!((e.problems[0].path.as_str(), e.problems[0].code.as_str()), ("gstin", "SCHEMA"));
        // Where the worker has its own, more precise code for a field, that one is kept alone.
        let body = json!({"gstin": "29AAGCP4821K1Z3", "irn": "xyz", "reason": "7"});
        let e = parse_command("irn.cancel", body.to_string().as_bytes(), &ParseOptions::default()).unwrap_err();
        let codes: Vec<_> = e.problems.iter().map(|p| (p.path.as_str(), p.code.as_str())).collect();
        assert_eq!(codes, [("irn", "IRN_INVALID"), ("reason", "CANCEL_REASON_INVALID")]);
    }

    #[test]
    fn schema_version_one_is_spoken_and_others_are_refused_as_envelope_problems() {
        let ok = |v: Value| {
            let body = json!({"gstin": "29AAGCP4821K1Z3", "target_gstin": "33AAFCR6612L1ZA", "schema_version": v});
            parse_command("gstin.details", body.to_string().as_bytes(), &ParseOptions::default())
        };
        for v in [json!(1), json!("1"), json!("1.3"), Value::Null] {
            assert!(ok(v.clone()).is_ok(), "{v}");
        }
        let e = ok(json!(2)).unwrap_err();
        assert!(e.envelope);
        assert_eq!(
            (e.problems[0].path.as_str(), e.problems[0].code.as_str()),
            ("schema_version", "SCHEMA_VERSION_UNSUPPORTED")
        );
        for v in [json!("v1"), json!(true), json!("1..2"), json!(1.5)] {
            let e = ok(v.clone()).unwrap_err();
            assert_eq!(e.problems[0].code, "SCHEMA_VERSION_INVALID", "{v}");
        }
    }

    #[test]
    fn the_reporting_window_applies_to_the_sellers_configured_for_it() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/sample-invoices/b2b-intra-goods.json")).unwrap();
        let body = serde_json::json!({"gstin": "29AAGCP4821K1Z3", "invoice": v}).to_string();
        let mut opts = ParseOptions::default();
        opts.validation.today = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        assert!(parse_command("irn.generate", body.as_bytes(), &opts).is_ok(), "no window configured");
        opts.reporting_window_by_gstin.insert("29AAGCP4821K1Z3".into(), 30);
        let e = parse_command("irn.generate", body.as_bytes(), &opts).unwrap_err();
        assert_eq!(e.problems[0].path, "invoice.DocDtls.Dt");
        assert_eq!(e.problems[0].code, "DATE_OUTSIDE_REPORTING_WINDOW");
    }

    #[test]
    fn oversized_is_rejected_before_parsing() {
        let opts = ParseOptions { max_message_bytes: 10, ..Default::default() };
        let e = parse_command("irn.generate", &[b'x'; 11], &opts).unwrap_err();
        assert_eq!(e.problems[0].code, "MESSAGE_TOO_LARGE");
    }

    #[test]
    fn unknown_routing_key() {
        let e = parse_command("irn.frobnicate", b"{}", &ParseOptions::default()).unwrap_err();
        assert_eq!(e.kind, None);
        assert_eq!(e.problems[0].code, "UNKNOWN_ROUTING_KEY");
    }

    #[test]
    fn cancel_collects_every_problem() {
        let body = br#"{"gstin":"29AAGCP4821K1Z3","irn":"xyz","reason":"7","remark":"%s"}"#;
        let e = parse_command("irn.cancel", body, &ParseOptions::default()).unwrap_err();
        let codes: Vec<_> = e.problems.iter().map(|p| (p.path.as_str(), p.code.as_str())).collect();
        assert!(codes.contains(&("irn", "IRN_INVALID")), "{codes:?}");
        assert!(codes.contains(&("reason", "CANCEL_REASON_INVALID")), "{codes:?}");
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        fn any_json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(|f| serde_json::json!(f)),
                ".{0,20}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                    prop::collection::btree_map(
                        "[a-z_]{1,12}|gstin|irn|invoice|document|reason|remark|from|to|job_id|request_id|invoices|batch_id|batch|signed_qr_code|signed_invoice|qr_image|expected|tolerance|verifications",
                        inner,
                        0..6
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// No input, however malformed, panics the envelope parser; a rejection always says why.
            #[test]
            fn arbitrary_bytes_never_panic(rk in prop::sample::select(vec!["irn.generate", "irn.cancel", "irn.get", "gstin.details", "ewaybill.get", "b2c.qr", "reconcile.rejected", "job.status", "irn.generate_batch", "einvoice.verify", "einvoice.verify_batch", "x"]), body in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Err(r) = parse_command(rk, &body, &ParseOptions::default()) {
                    prop_assert!(!r.problems.is_empty());
                }
            }

            #[test]
            fn arbitrary_json_never_panics(rk in prop::sample::select(vec!["irn.generate", "irn.cancel", "irn.get", "gstin.details", "ewaybill.get", "b2c.qr", "reconcile.rejected", "job.status", "irn.generate_batch", "einvoice.verify", "einvoice.verify_batch"]), v in any_json()) {
                let body = serde_json::to_vec(&v).unwrap();
                if let Err(r) = parse_command(rk, &body, &ParseOptions::default()) {
                    prop_assert!(!r.problems.is_empty());
                    prop_assert!(r.problems.iter().all(|p| !p.message.is_empty() && !p.code.is_empty()));
                }
            }

            /// Issue 23: whatever a command holds (huge numbers, long strings, long lists, every
            /// kind), its rejection is bounded: at most `MAX_PROBLEMS` problems, each message and
            /// path cut, the echoed request id cut.
            #[test]
            fn every_rejection_is_bounded(
                rk in prop::sample::select(JobKind::ALL.iter().map(|k| k.routing_key()).collect::<Vec<_>>()),
                field in "gstin|irn|request_id|document|invoice|remark|reason|ewb_no|vehicle_no|transport|invoices|batch_id|from|to|job_id|target_gstin",
                huge in prop_oneof![
                    Just(serde_json::json!("79228162514264337593543950335")),
                    Just(serde_json::json!(1e308)),
                    Just(serde_json::json!(-1e308)),
                    Just(serde_json::Value::String("\u{202E}x".repeat(20_000))),
                    Just(serde_json::Value::Array(vec![serde_json::json!({}); 3_000])),
                    Just(serde_json::json!({"ValDtls": {"CesVal": "79228162514264337593543950335", "StCesVal": 1}})),
                ],
            ) {
                let body = serde_json::json!({"gstin": "29AAGCP4821K1Z3", field: huge});
                let bytes = serde_json::to_vec(&body).unwrap();
                if let Err(r) = parse_command(rk, &bytes, &ParseOptions::default()) {
                    prop_assert!(r.problems.len() <= MAX_PROBLEMS, "{} problems", r.problems.len());
                    // A cut text ends in "…(+N characters)": a few dozen more than the limit.
                    let bound = MESSAGE_MAX_CHARS + 40;
                    prop_assert!(r.problems.iter().all(|p| p.message.chars().count() <= bound && p.path.chars().count() <= bound));
                    prop_assert!(r.request_id.as_ref().is_none_or(|id| id.chars().count() <= REQUEST_ID_MAX_CHARS + 40));
                }
            }
        }
    }
}
