//! Commands: what an ERP asks the worker to do, parsed from one AMQP message.
//!
//! Parsing collects every problem with its path instead of stopping at the first, and an
//! unparseable message still yields a [`Rejected`] that knows what could be read of its ids.
use serde_json::Value;

pub mod b2c;
pub mod batch;
pub mod ewaybill;
pub mod status;

use super::document::{DocDate, DocNumber, DocType};
use super::event::{DocumentAsGiven, DocumentRef, SCHEMA_VERSION};
use super::invoice::{validate_invoice, ValidInvoice, ValidationOptions};
use super::{Gstin, Problem};

/// The job types, one per routing key on `einvoice.commands`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    IrnGenerate,
    IrnCancel,
    IrnGet,
    GstinDetails,
    EwaybillGet,
    B2cQr,
    ReconcileRejected,
    EwaybillGenerate,
    EwaybillUpdateVehicle,
    EwaybillCancel,
    JobStatus,
    IrnGenerateBatch,
}

impl JobKind {
    pub const ALL: [JobKind; 12] = [
        JobKind::IrnGenerate,
        JobKind::IrnCancel,
        JobKind::IrnGet,
        JobKind::GstinDetails,
        JobKind::EwaybillGet,
        JobKind::B2cQr,
        JobKind::ReconcileRejected,
        JobKind::EwaybillGenerate,
        JobKind::EwaybillUpdateVehicle,
        JobKind::EwaybillCancel,
        JobKind::JobStatus,
        JobKind::IrnGenerateBatch,
    ];

    pub fn routing_key(self) -> &'static str {
        match self {
            JobKind::IrnGenerate => "irn.generate",
            JobKind::IrnCancel => "irn.cancel",
            JobKind::IrnGet => "irn.get",
            JobKind::GstinDetails => "gstin.details",
            JobKind::EwaybillGet => "ewaybill.get",
            JobKind::B2cQr => "b2c.qr",
            JobKind::ReconcileRejected => "reconcile.rejected",
            JobKind::EwaybillGenerate => "ewaybill.generate",
            JobKind::EwaybillUpdateVehicle => "ewaybill.update_vehicle",
            JobKind::EwaybillCancel => "ewaybill.cancel",
            JobKind::JobStatus => "job.status",
            JobKind::IrnGenerateBatch => "irn.generate_batch",
        }
    }

    pub fn from_routing_key(rk: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.routing_key() == rk)
    }

    /// The event type published on success.
    pub fn success_event(self) -> &'static str {
        match self {
            JobKind::IrnGenerate => "irn.generated",
            JobKind::IrnCancel => "irn.cancelled",
            JobKind::IrnGet => "irn.details",
            JobKind::GstinDetails => "gstin.details",
            JobKind::EwaybillGet => "ewaybill.details",
            JobKind::B2cQr => "b2c.qr",
            JobKind::ReconcileRejected => "reconcile.completed",
            JobKind::EwaybillGenerate => "ewaybill.generated",
            JobKind::EwaybillUpdateVehicle => "ewaybill.vehicle_updated",
            JobKind::EwaybillCancel => "ewaybill.cancelled",
            JobKind::JobStatus => "job.status",
            // The immediate answer; `batch.completed` follows once every member is final.
            JobKind::IrnGenerateBatch => "batch.accepted",
        }
    }

    /// The event type for a permanent rejection (`irn.rejected` for generate, `<rk>.rejected` otherwise).
    pub fn rejected_event(self) -> String {
        match self {
            JobKind::IrnGenerate => "irn.rejected".into(),
            k => format!("{}.rejected", k.routing_key()),
        }
    }

    /// The event type when transient failures outlasted the retry budget.
    pub fn failed_event(self) -> String {
        match self {
            JobKind::IrnGenerate => "irn.failed".into(),
            k => format!("{}.failed", k.routing_key()),
        }
    }
}

/// A document named by type, number and date (for lookups that have no IRN).
#[derive(Debug, Clone, PartialEq)]
pub struct DocRef {
    pub doc_type: DocType,
    pub doc_number: DocNumber,
    pub doc_date: DocDate,
}

/// A cancel reason code, as the IRP defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Duplicate = 1,
    DataEntryMistake = 2,
    OrderCancelled = 3,
    Others = 4,
}

impl CancelReason {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "1" => Some(Self::Duplicate),
            "2" => Some(Self::DataEntryMistake),
            "3" => Some(Self::OrderCancelled),
            "4" => Some(Self::Others),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Self::Duplicate => "1",
            Self::DataEntryMistake => "2",
            Self::OrderCancelled => "3",
            Self::Others => "4",
        }
    }
}

/// IRN or document: how a cancel or a lookup names its target.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Irn(String),
    Document(DocRef),
}

/// A parsed, valid command.
#[derive(Debug, Clone)]
pub enum Command {
    Generate {
        gstin: Gstin,
        invoice: Box<ValidInvoice>,
    },
    /// `cancel_ewaybill`: cancel the IRN's active e-way bill first (the IRP refuses otherwise, 2230).
    Cancel {
        gstin: Gstin,
        target: Target,
        reason: CancelReason,
        remark: String,
        cancel_ewaybill: bool,
    },
    Get {
        gstin: Gstin,
        target: Target,
    },
    GstinDetails {
        gstin: Gstin,
        target_gstin: Gstin,
    },
    EwaybillGet {
        gstin: Gstin,
        irn: String,
    },
    /// With `invoice`, the worker makes the B2C QR itself (any provider); without, it asks the IRP.
    B2cQr {
        gstin: Gstin,
        document: DocRef,
        invoice: Option<Box<b2c::B2cInvoice>>,
    },
    ReconcileRejected {
        gstin: Option<Gstin>,
        from: DocDate,
        to: DocDate,
    },
    EwaybillGenerate {
        gstin: Gstin,
        target: Target,
        transport: ewaybill::Transport,
    },
    EwaybillUpdateVehicle {
        gstin: Gstin,
        target: ewaybill::EwbTarget,
        update: ewaybill::VehicleUpdate,
    },
    EwaybillCancel {
        gstin: Gstin,
        target: ewaybill::EwbTarget,
        reason: ewaybill::EwbCancelReason,
        remark: String,
    },
    /// `job.status`: answered from the store, never the IRP. `gstin`, when given, scopes the
    /// answer to that seller's jobs.
    JobStatus {
        gstin: Option<Gstin>,
        query: status::StatusQuery,
    },
    /// `irn.generate_batch`: fans out into one `irn.generate` per invoice. The invoices are only
    /// checked for their seller here; each member is validated by the generate path.
    GenerateBatch {
        gstin: Gstin,
        batch_id: Option<String>,
        invoices: Vec<Value>,
    },
}

impl Command {
    pub fn kind(&self) -> JobKind {
        match self {
            Command::Generate { .. } => JobKind::IrnGenerate,
            Command::Cancel { .. } => JobKind::IrnCancel,
            Command::Get { .. } => JobKind::IrnGet,
            Command::GstinDetails { .. } => JobKind::GstinDetails,
            Command::EwaybillGet { .. } => JobKind::EwaybillGet,
            Command::B2cQr { .. } => JobKind::B2cQr,
            Command::ReconcileRejected { .. } => JobKind::ReconcileRejected,
            Command::EwaybillGenerate { .. } => JobKind::EwaybillGenerate,
            Command::EwaybillUpdateVehicle { .. } => JobKind::EwaybillUpdateVehicle,
            Command::EwaybillCancel { .. } => JobKind::EwaybillCancel,
            Command::JobStatus { .. } => JobKind::JobStatus,
            Command::GenerateBatch { .. } => JobKind::IrnGenerateBatch,
        }
    }
    /// The GSTIN whose credentials the command runs under, if it has one.
    pub fn gstin(&self) -> Option<&Gstin> {
        match self {
            Command::Generate { gstin, .. }
            | Command::Cancel { gstin, .. }
            | Command::Get { gstin, .. }
            | Command::GstinDetails { gstin, .. }
            | Command::EwaybillGet { gstin, .. }
            | Command::B2cQr { gstin, .. }
            | Command::EwaybillGenerate { gstin, .. }
            | Command::EwaybillUpdateVehicle { gstin, .. }
            | Command::EwaybillCancel { gstin, .. }
            | Command::GenerateBatch { gstin, .. } => Some(gstin),
            Command::ReconcileRejected { gstin, .. } | Command::JobStatus { gstin, .. } => gstin.as_ref(),
        }
    }

    /// What the command is about, for log lines: the document (`TYPE/NUMBER/DATE`) or the IRN.
    pub fn subject(&self) -> Option<String> {
        let target = match self {
            Command::Generate { invoice, .. } => return Some(invoice.key().to_string()),
            Command::B2cQr { document, .. } => return Some(document.to_string()),
            Command::EwaybillGet { irn, .. } => return Some(irn.clone()),
            Command::JobStatus { query, .. } => return Some(query.to_string()),
            Command::Cancel { target, .. } | Command::Get { target, .. } | Command::EwaybillGenerate { target, .. } => {
                target
            }
            _ => return None,
        };
        Some(match target {
            Target::Irn(irn) => irn.clone(),
            Target::Document(d) => d.to_string(),
        })
    }
}

impl std::fmt::Display for DocRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.doc_type, self.doc_number, self.doc_date)
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
}

/// Where a command names its document: the invoice's `DocDtls` and seller for `irn.generate` (and
/// a `b2c.qr` that carries its invoice), else the `document` object beside the envelope `gstin`.
fn document_fields(body: &Value) -> [Option<&Value>; 4] {
    match body.get("invoice").filter(|v| v.is_object()) {
        Some(inv) => [
            inv.pointer("/SellerDtls/Gstin").or_else(|| body.get("gstin")),
            inv.pointer("/DocDtls/Typ"),
            inv.pointer("/DocDtls/No"),
            inv.pointer("/DocDtls/Dt"),
        ],
        None => {
            let doc = body.get("document");
            let field = |k: &str| doc.and_then(|d| d.get(k));
            [body.get("gstin"), field("doc_type"), field("doc_number"), field("doc_date")]
        }
    }
}

/// The longest text of a field `document_as_given` repeats (characters).
const AS_GIVEN_MAX_CHARS: usize = 100;

/// The document's fields as given: strings as they are (cut at [`AS_GIVEN_MAX_CHARS`]), numbers
/// as their text, anything else left out. `None` when the command names none of them.
fn document_as_given(body: &Value) -> Option<DocumentAsGiven> {
    let text = |v: Option<&Value>| -> Option<String> {
        let s = match v? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(match s.char_indices().nth(AS_GIVEN_MAX_CHARS) {
            Some((cut, _)) => format!("{}…", &s[..cut]),
            None => s,
        })
    };
    let [gstin, doc_type, doc_number, doc_date] = document_fields(body).map(text);
    let given = DocumentAsGiven { gstin, doc_type, doc_number, doc_date };
    (given.doc_type.is_some() || given.doc_number.is_some() || given.doc_date.is_some()).then_some(given)
}

/// The document's key when every part of it is valid (the `document` of the rejection event).
fn document_if_valid(body: &Value, relaxed: bool) -> Option<DocumentRef> {
    let [gstin, doc_type, doc_number, doc_date] = document_fields(body).map(|v| v.and_then(Value::as_str));
    let gstin = Gstin::parse(gstin?, relaxed).ok()?;
    let date = DocDate::parse(doc_date?).ok()?;
    let key =
        super::DocumentKey::new(gstin, DocType::parse(doc_type?).ok()?, DocNumber::parse(doc_number?).ok()?, date);
    Some(DocumentRef::new(&key, Some(date)))
}

/// The command's `schema_version`: absent (or null) means 1; a number or a string whose first
/// part is the major version (`1`, `"1"`, `"1.2"`). A major this worker does not speak is refused
/// before anything else is read, as an envelope problem, so the message is kept in `einvoice.dead`
/// for a worker that does.
fn schema_version_problem(body: &Value) -> Option<Problem> {
    let major = match body.get("schema_version") {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => {
            let major = s.split('.').next().unwrap_or_default();
            let parts_ok = s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            parts_ok.then(|| major.parse::<u64>().ok()).flatten()
        }
        Some(_) => None,
    };
    match major {
        Some(m) if m == u64::from(SCHEMA_VERSION) => None,
        Some(m) => Some(Problem::new(
            "schema_version",
            "SCHEMA_VERSION_UNSUPPORTED",
            format!(
                "the command is written for version {m} of the message contract; this worker speaks version \
                 {SCHEMA_VERSION} (the message is kept in einvoice.dead: replay it to a worker that speaks {m})"
            ),
        )),
        None => Some(Problem::new(
            "schema_version",
            "SCHEMA_VERSION_INVALID",
            "'schema_version' must be a whole number such as 1 (or a string such as \"1\")",
        )),
    }
}

/// Every path in `path` up to the root, itself first: `a.b[0].c`, `a.b[0]`, `a.b`, `a`, ``.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut end = Some(path.len());
    std::iter::from_fn(move || {
        let e = end?;
        let here = &path[..e];
        end = (e > 0).then(|| here.rfind(['.', '[']).unwrap_or(0));
        Some(here)
    })
}

/// The schema's problems that add to what the worker's own checks found: one at a field the
/// worker already reported (or inside it, or around it) says the same less precisely
/// (`HSN_FORMAT` beats a pattern mismatch), so only the others are kept. Linear in the sizes of
/// both lists.
fn schema_only(worker: &[Problem], schema: Vec<Problem>) -> Vec<Problem> {
    if worker.is_empty() || schema.is_empty() {
        return schema;
    }
    let exact: std::collections::HashSet<&str> = worker.iter().map(|p| p.path.as_str()).collect();
    // Fields that hold a reported one, built only if some schema problem is not at or inside one.
    let mut around: Option<std::collections::HashSet<&str>> = None;
    schema
        .into_iter()
        .filter(|s| {
            if ancestors(&s.path).any(|a| exact.contains(a)) {
                return false;
            }
            let around = around.get_or_insert_with(|| worker.iter().flat_map(|p| ancestors(&p.path).skip(1)).collect());
            !around.contains(s.path.as_str())
        })
        .collect()
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
    fn for_seller(&self, gstin: Option<&Gstin>) -> std::borrow::Cow<'_, ValidationOptions> {
        match gstin.and_then(|g| self.reporting_window_by_gstin.get(g.as_str())) {
            Some(days) => std::borrow::Cow::Owned(ValidationOptions {
                reporting_window_days: Some(*days),
                ..self.validation.clone()
            }),
            None => std::borrow::Cow::Borrowed(&self.validation),
        }
    }
}

fn is_irn(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Field readers that record a problem when a field is missing or of the wrong type.
struct Reader<'a> {
    body: &'a Value,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    fn opt_str(&mut self, field: &str) -> Option<String> {
        match self.body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                self.problems.push(Problem::new(
                    field,
                    "INVALID_TYPE",
                    format!("'{field}' must be a string, found {}", type_name(other)),
                ));
                None
            }
        }
    }
    fn req_str(&mut self, field: &str) -> Option<String> {
        let v = self.opt_str(field);
        if v.is_none() && !self.problems.iter().any(|p| p.path == field) {
            self.problems.push(Problem::new(field, "REQUIRED", format!("'{field}' is required")));
        }
        v
    }
    fn gstin(&mut self, field: &str, required: bool, relaxed: bool) -> Option<Gstin> {
        let s = if required { self.req_str(field)? } else { self.opt_str(field)? };
        match Gstin::parse(&s, relaxed) {
            Ok(g) => Some(g),
            Err(e) => {
                self.problems.push(Problem::new(field, "GSTIN_INVALID", e.to_string()));
                None
            }
        }
    }
    fn irn(&mut self, field: &str) -> Option<String> {
        let s = self.opt_str(field)?;
        if is_irn(&s) {
            Some(s.to_ascii_lowercase())
        } else {
            self.problems.push(Problem::new(
                field,
                "IRN_INVALID",
                format!("'{s}' is not an IRN (64 hexadecimal characters)"),
            ));
            None
        }
    }
    fn date(&mut self, field: &str, path: &str) -> Option<DocDate> {
        let s = self.req_str(field)?;
        let d = DocDate::parse(&s).ok();
        if d.is_none() {
            self.problems.push(Problem::new(path, "DATE_INVALID", format!("'{s}' is not a date in dd/MM/yyyy form")));
        }
        d
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn doc_ref(body: &Value, field: &str, problems: &mut Vec<Problem>) -> Option<DocRef> {
    let d = body.get(field)?;
    if !d.is_object() {
        problems.push(Problem::new(field, "INVALID_TYPE", format!("'{field}' must be an object")));
        return None;
    }
    let mut r = Reader { body: d, problems: Vec::new() };
    let typ = r.req_str("doc_type");
    let num = r.req_str("doc_number");
    let date = r.date("doc_date", "doc_date");
    let mut out = None;
    let typ = typ.and_then(|t| {
        let p = DocType::parse(&t).ok();
        if p.is_none() {
            r.problems.push(Problem::new(
                "doc_type",
                "DOC_TYPE_INVALID",
                format!("'{t}' is not a document type (INV, CRN or DBN)"),
            ));
        }
        p
    });
    let num = num.and_then(|n| {
        let p = DocNumber::parse(&n).ok();
        if p.is_none() {
            r.problems.push(Problem::new(
                "doc_number",
                "DOC_NUMBER_INVALID",
                format!("'{n}' is not a valid document number"),
            ));
        }
        p
    });
    if let (Some(doc_type), Some(doc_number), Some(doc_date)) = (typ, num, date) {
        out = Some(DocRef { doc_type, doc_number, doc_date });
    }
    problems.extend(r.problems.into_iter().map(|mut p| {
        p.path = format!("{field}.{}", p.path);
        p
    }));
    out
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
    };
    if body.len() > opts.max_message_bytes {
        return Err(envelope_err(
            kind,
            None,
            Problem::new(
                "",
                "MESSAGE_TOO_LARGE",
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
                Problem::new("", "INVALID_JSON", format!("the message is not valid JSON: {e}")),
            ));
        }
    };
    let request_id = value.get("request_id").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let Some(kind) = kind else {
        return Err(envelope_err(
            None,
            request_id,
            Problem::new(
                "",
                "UNKNOWN_ROUTING_KEY",
                format!(
                    "routing key '{routing_key}' is not a known command; expected one of: {}",
                    JobKind::ALL.map(JobKind::routing_key).join(", ")
                ),
            ),
        ));
    };
    if !value.is_object() {
        return Err(envelope_err(
            Some(kind),
            request_id,
            Problem::new("", "INVALID_TYPE", format!("the message must be a JSON object, found {}", type_name(&value))),
        ));
    }
    if let Some(p) = schema_version_problem(&value) {
        return Err(envelope_err(Some(kind), request_id, p));
    }
    // The contract's schema first: what it refuses is refused, whatever the checks below say.
    let schema = super::schema::command_problems(routing_key, &value);
    // No stored text can hold a NUL: refuse it wherever it is, with its path.
    let nul = super::text::nul_problems(&value);
    let batch = if kind == JobKind::IrnGenerate { batch::member_marker(&value) } else { None };
    let relaxed = opts.validation.relaxed_gstin_check_digit;
    let mut r = Reader { body: &value, problems: Vec::new() };
    let cmd = match kind {
        JobKind::IrnGenerate => {
            let gstin = r.gstin("gstin", true, relaxed);
            let invoice = match value.get("invoice") {
                None | Some(Value::Null) => {
                    r.problems.push(Problem::new(
                        "invoice",
                        "REQUIRED",
                        "'invoice' is required: the NIC e-invoice JSON (schema v1.1)",
                    ));
                    None
                }
                Some(inv) => {
                    match validate_invoice(inv, gstin.as_ref().map(Gstin::as_str), &opts.for_seller(gstin.as_ref())) {
                        Ok(v) => Some(v),
                        Err(ps) => {
                            r.problems.extend(ps.into_iter().map(|mut p| {
                                p.path =
                                    if p.path.is_empty() { "invoice".into() } else { format!("invoice.{}", p.path) };
                                p
                            }));
                            None
                        }
                    }
                }
            };
            match (gstin, invoice) {
                (Some(gstin), Some(invoice)) if r.problems.is_empty() => {
                    Some(Command::Generate { gstin, invoice: Box::new(invoice) })
                }
                _ => None,
            }
        }
        JobKind::IrnCancel => {
            let gstin = r.gstin("gstin", true, relaxed);
            let irn = r.irn("irn");
            let doc = doc_ref(&value, "document", &mut r.problems);
            let reason_s = r.req_str("reason");
            let reason = reason_s.as_deref().and_then(|s| {
                let p = CancelReason::parse(s);
                if p.is_none() {
                    r.problems.push(Problem::new(
                        "reason",
                        "CANCEL_REASON_INVALID",
                        format!("'{s}' is not a cancel reason: use 1 (Duplicate), 2 (Data entry mistake), 3 (Order cancelled) or 4 (Others)"),
                    ));
                }
                p
            });
            let remark = r.opt_str("remark").unwrap_or_default();
            if remark.chars().count() > 100 {
                r.problems.push(Problem::new(
                    "remark",
                    "REMARK_TOO_LONG",
                    format!("the remark has {} characters; the IRP allows 100", remark.chars().count()),
                ));
            }
            let cancel_ewaybill = match value.get("cancel_ewaybill") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    r.problems.push(Problem::new(
                        "cancel_ewaybill",
                        "INVALID_TYPE",
                        format!("'cancel_ewaybill' must be true or false, found {}", type_name(other)),
                    ));
                    false
                }
            };
            let target = target(irn, doc, &value, &mut r.problems);
            match (gstin, target, reason) {
                (Some(gstin), Some(target), Some(reason)) if r.problems.is_empty() => {
                    Some(Command::Cancel { gstin, target, reason, remark, cancel_ewaybill })
                }
                _ => None,
            }
        }
        JobKind::IrnGet => {
            let gstin = r.gstin("gstin", true, relaxed);
            let irn = r.irn("irn");
            let doc = doc_ref(&value, "document", &mut r.problems);
            let target = target(irn, doc, &value, &mut r.problems);
            match (gstin, target) {
                (Some(gstin), Some(target)) if r.problems.is_empty() => Some(Command::Get { gstin, target }),
                _ => None,
            }
        }
        JobKind::GstinDetails => {
            let gstin = r.gstin("gstin", true, relaxed);
            let target_gstin = r.gstin("target_gstin", true, relaxed);
            match (gstin, target_gstin) {
                (Some(gstin), Some(target_gstin)) if r.problems.is_empty() => {
                    Some(Command::GstinDetails { gstin, target_gstin })
                }
                _ => None,
            }
        }
        JobKind::EwaybillGet => {
            let gstin = r.gstin("gstin", true, relaxed);
            let irn = r.irn("irn");
            if irn.is_none() && !r.problems.iter().any(|p| p.path == "irn") {
                r.problems.push(Problem::new("irn", "REQUIRED", "'irn' is required"));
            }
            match (gstin, irn) {
                (Some(gstin), Some(irn)) if r.problems.is_empty() => Some(Command::EwaybillGet { gstin, irn }),
                _ => None,
            }
        }
        JobKind::B2cQr => {
            let gstin = r.gstin("gstin", true, relaxed);
            let doc = doc_ref(&value, "document", &mut r.problems);
            let invoice = match value.get("invoice") {
                None | Some(Value::Null) => None,
                Some(inv) => b2c::parse_invoice(inv, gstin.as_ref(), relaxed, &mut r.problems).map(Box::new),
            };
            let no_invoice = matches!(value.get("invoice"), None | Some(Value::Null));
            if value.get("document").is_none() && no_invoice {
                r.problems.push(Problem::new(
                    "document",
                    "REQUIRED",
                    "'document' {doc_type, doc_number, doc_date} or the B2C 'invoice' (DocDtls, ValDtls) is required",
                ));
            }
            if let (Some(d), Some(inv)) = (&doc, &invoice) {
                if *d != inv.document {
                    r.problems.push(Problem::new(
                        "document",
                        "DOCUMENT_MISMATCH",
                        format!("'document' names {d} but the invoice is {}; send one of them", inv.document),
                    ));
                }
            }
            let document = invoice.as_ref().map(|i| i.document.clone()).or(doc);
            match (gstin, document) {
                (Some(gstin), Some(document)) if r.problems.is_empty() => {
                    Some(Command::B2cQr { gstin, document, invoice })
                }
                _ => None,
            }
        }
        JobKind::ReconcileRejected => {
            let gstin = r.gstin("gstin", false, relaxed);
            let from = r.date("from", "from");
            let to = r.date("to", "to");
            if let (Some(f), Some(t)) = (from, to) {
                if t.date() < f.date() {
                    r.problems.push(Problem::new(
                        "to",
                        "DATE_RANGE_INVALID",
                        format!("'to' ({t}) is before 'from' ({f})"),
                    ));
                } else if (t.date() - f.date()).num_days() > 31 {
                    r.problems.push(Problem::new(
                        "to",
                        "DATE_RANGE_TOO_LONG",
                        "a run covers at most 31 days; split the range",
                    ));
                }
            }
            match (from, to) {
                (Some(from), Some(to)) if r.problems.is_empty() => Some(Command::ReconcileRejected { gstin, from, to }),
                _ => None,
            }
        }
        JobKind::EwaybillGenerate => {
            let gstin = r.gstin("gstin", true, relaxed);
            let (target, transport) = ewaybill::parse_generate(&mut r, &value, opts.validation.today);
            match (gstin, target, transport) {
                (Some(gstin), Some(target), Some(transport)) if r.problems.is_empty() => {
                    Some(Command::EwaybillGenerate { gstin, target, transport })
                }
                _ => None,
            }
        }
        JobKind::EwaybillUpdateVehicle => {
            let gstin = r.gstin("gstin", true, relaxed);
            let (target, update) = ewaybill::parse_update_vehicle(&mut r, opts.validation.today);
            match (gstin, target, update) {
                (Some(gstin), Some(target), Some(update)) if r.problems.is_empty() => {
                    Some(Command::EwaybillUpdateVehicle { gstin, target, update })
                }
                _ => None,
            }
        }
        JobKind::EwaybillCancel => {
            let gstin = r.gstin("gstin", true, relaxed);
            let (target, reason, remark) = ewaybill::parse_cancel(&mut r);
            match (gstin, target, reason, remark) {
                (Some(gstin), Some(target), Some(reason), Some(remark)) if r.problems.is_empty() => {
                    Some(Command::EwaybillCancel { gstin, target, reason, remark })
                }
                _ => None,
            }
        }
        JobKind::JobStatus => {
            let gstin = r.gstin("gstin", false, relaxed);
            let query = status::parse_query(&mut r, &value, gstin.as_ref(), request_id.as_deref());
            match query {
                Some(query) if r.problems.is_empty() => Some(Command::JobStatus { gstin, query }),
                _ => None,
            }
        }
        JobKind::IrnGenerateBatch => {
            let gstin = r.gstin("gstin", true, relaxed);
            let (batch_id, invoices) = batch::parse_batch(&mut r, &value, gstin.as_ref());
            match (gstin, invoices) {
                (Some(gstin), Some(invoices)) if r.problems.is_empty() => {
                    Some(Command::GenerateBatch { gstin, batch_id, invoices })
                }
                _ => None,
            }
        }
    };
    match cmd {
        Some(command) if nul.is_empty() && schema.is_empty() => Ok(Parsed { command, request_id, batch }),
        _ => {
            let mut problems: Vec<Problem> = nul.into_iter().chain(r.problems).collect();
            let extra = schema_only(&problems, schema);
            problems.extend(extra);
            Err(Rejected {
                kind: Some(kind),
                request_id,
                envelope: false,
                problems,
                document: document_if_valid(&value, relaxed).map(Box::new),
                document_as_given: document_as_given(&value).map(Box::new),
                batch,
            })
        }
    }
}

fn target(irn: Option<String>, doc: Option<DocRef>, body: &Value, problems: &mut Vec<Problem>) -> Option<Target> {
    match (irn, doc) {
        (Some(i), _) => Some(Target::Irn(i)),
        (None, Some(d)) => Some(Target::Document(d)),
        (None, None) => {
            if body.get("irn").is_none() && body.get("document").is_none() {
                problems.push(Problem::new(
                    "irn",
                    "REQUIRED",
                    "either 'irn' or 'document' {doc_type, doc_number, doc_date} is required",
                ));
            }
            None
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
    fn a_schema_problem_is_kept_only_where_the_worker_found_nothing() {
        let p = |path: &str| Problem::new(path, "X", "x");
        let worker = [p("invoice.ItemList[1].HsnCd"), p("invoice.ValDtls")];
        let schema = [
            "invoice.ItemList[1].HsnCd",
            "invoice.ItemList[1]",
            "invoice.ValDtls.AssVal",
            "invoice.ItemList[0].Qty",
            "",
        ];
        let kept: Vec<String> = schema_only(&worker, schema.map(p).to_vec()).into_iter().map(|p| p.path).collect();
        assert_eq!(kept, ["invoice.ItemList[0].Qty"]);
    }

    #[test]
    fn ancestors_run_up_to_the_root() {
        let a: Vec<&str> = ancestors("invoice.ItemList[0].Qty").collect();
        assert_eq!(a, ["invoice.ItemList[0].Qty", "invoice.ItemList[0]", "invoice.ItemList", "invoice", ""]);
        assert_eq!(ancestors("").collect::<Vec<_>>(), [""]);
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
                        "[a-z_]{1,12}|gstin|irn|invoice|document|reason|remark|from|to|job_id|request_id|invoices|batch_id|batch",
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
            fn arbitrary_bytes_never_panic(rk in prop::sample::select(vec!["irn.generate", "irn.cancel", "irn.get", "gstin.details", "ewaybill.get", "b2c.qr", "reconcile.rejected", "job.status", "irn.generate_batch", "x"]), body in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Err(r) = parse_command(rk, &body, &ParseOptions::default()) {
                    prop_assert!(!r.problems.is_empty());
                }
            }

            #[test]
            fn arbitrary_json_never_panics(rk in prop::sample::select(vec!["irn.generate", "irn.cancel", "irn.get", "gstin.details", "ewaybill.get", "b2c.qr", "reconcile.rejected", "job.status", "irn.generate_batch"]), v in any_json()) {
                let body = serde_json::to_vec(&v).unwrap();
                if let Err(r) = parse_command(rk, &body, &ParseOptions::default()) {
                    prop_assert!(!r.problems.is_empty());
                    prop_assert!(r.problems.iter().all(|p| !p.message.is_empty() && !p.code.is_empty()));
                }
            }
        }
    }
}
