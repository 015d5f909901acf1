//! Reading a command's fields: each reader records a problem, with the field's path, when a field
//! is missing or of the wrong type, so a slice's parser collects every problem in one pass.
use serde_json::Value;

use super::{DocRef, Target};
use crate::domain::problem::code;
use crate::domain::text::quote;
use crate::domain::{DocDate, DocNumber, DocType, Gstin, Problem};

/// Field readers over one JSON object, and the problems found so far.
pub struct Reader<'a> {
    pub body: &'a Value,
    pub problems: Vec<Problem>,
    /// The command's own `request_id` (untrimmed, as `parse_command` read it); `None` in a
    /// reader over a nested object.
    pub request_id: Option<&'a str>,
    /// Accept a GSTIN whose check digit is wrong (sandbox test GSTINs).
    pub relaxed: bool,
    /// The command's kind (one body type serves every batch kind); `None` in a nested reader.
    pub kind: Option<super::JobKind>,
}

impl<'a> Reader<'a> {
    /// A reader over a nested object, sharing the outer reader's GSTIN rule.
    pub fn nested(body: &'a Value, relaxed: bool) -> Reader<'a> {
        Reader { body, problems: Vec::new(), request_id: None, relaxed, kind: None }
    }

    pub fn opt_str(&mut self, field: &str) -> Option<String> {
        match self.body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                self.problems.push(Problem::new(
                    field,
                    code::INVALID_TYPE,
                    format!("'{field}' must be a string, found {}", type_name(other)),
                ));
                None
            }
        }
    }

    pub fn req_str(&mut self, field: &str) -> Option<String> {
        let v = self.opt_str(field);
        if v.is_none() && !self.problems.iter().any(|p| p.path == field) {
            self.problems.push(Problem::new(field, code::REQUIRED, format!("'{field}' is required")));
        }
        v
    }

    /// A GSTIN field (`required` or optional), checked under the reader's check-digit rule.
    pub fn gstin(&mut self, field: &str, required: bool) -> Option<Gstin> {
        let s = if required { self.req_str(field)? } else { self.opt_str(field)? };
        match Gstin::parse(&s, self.relaxed) {
            Ok(g) => Some(g),
            Err(e) => {
                self.problems.push(Problem::new(field, code::GSTIN_INVALID, e.to_string()));
                None
            }
        }
    }

    /// An optional IRN field, lower-cased.
    pub fn irn(&mut self, field: &str) -> Option<String> {
        let s = self.opt_str(field)?;
        if is_irn(&s) {
            Some(s.to_ascii_lowercase())
        } else {
            self.problems.push(Problem::new(
                field,
                code::IRN_INVALID,
                format!("'{}' is not an IRN (64 hexadecimal characters)", quote(&s)),
            ));
            None
        }
    }

    /// A required IRN field.
    pub fn req_irn(&mut self, field: &str) -> Option<String> {
        let irn = self.irn(field);
        if irn.is_none() && !self.problems.iter().any(|p| p.path == field) {
            self.problems.push(Problem::new(field, code::REQUIRED, format!("'{field}' is required")));
        }
        irn
    }

    pub fn date(&mut self, field: &str, path: &str) -> Option<DocDate> {
        let s = self.req_str(field)?;
        let d = DocDate::parse(&s).ok();
        if d.is_none() {
            self.problems.push(Problem::new(
                path,
                code::DATE_INVALID,
                format!("'{}' is not a date in dd/MM/yyyy form", quote(&s)),
            ));
        }
        d
    }

    /// An optional boolean field (`false` when absent).
    pub fn flag(&mut self, field: &str) -> bool {
        match self.body.get(field) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problems.push(Problem::new(
                    field,
                    code::INVALID_TYPE,
                    format!("'{field}' must be true or false, found {}", type_name(other)),
                ));
                false
            }
        }
    }

    /// The optional `document` object {doc_type, doc_number, doc_date} (see [`doc_ref`]).
    pub fn doc_ref(&mut self, field: &str) -> Option<DocRef> {
        doc_ref(self.body, field, &mut self.problems)
    }

    /// `irn` or `document`: how a cancel or a lookup names its target.
    pub fn target(&mut self) -> Option<Target> {
        let irn = self.irn("irn");
        let doc = self.doc_ref("document");
        target(irn, doc, self.body, &mut self.problems)
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn is_irn(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The object at `field` as a document {doc_type, doc_number, doc_date}; its problems get the
/// `field.` prefix. `None` when absent or invalid.
pub fn doc_ref(body: &Value, field: &str, problems: &mut Vec<Problem>) -> Option<DocRef> {
    let d = body.get(field)?;
    if !d.is_object() {
        problems.push(Problem::new(field, code::INVALID_TYPE, format!("'{field}' must be an object")));
        return None;
    }
    let mut r = Reader::nested(d, false);
    let typ = r.req_str("doc_type");
    let num = r.req_str("doc_number");
    let date = r.date("doc_date", "doc_date");
    let mut out = None;
    let typ = typ.and_then(|t| {
        let p = DocType::parse(&t).ok();
        if p.is_none() {
            r.problems.push(Problem::new(
                "doc_type",
                code::DOC_TYPE_INVALID,
                format!("'{}' is not a document type (INV, CRN or DBN)", quote(&t)),
            ));
        }
        p
    });
    let num = num.and_then(|n| {
        let p = DocNumber::parse(&n).ok();
        if p.is_none() {
            r.problems.push(Problem::new(
                "doc_number",
                code::DOC_NUMBER_INVALID,
                format!("'{}' is not a valid document number", quote(&n)),
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

/// The IRN if given, else the document; when neither is given, a `REQUIRED` problem.
pub fn target(irn: Option<String>, doc: Option<DocRef>, body: &Value, problems: &mut Vec<Problem>) -> Option<Target> {
    match (irn, doc) {
        (Some(i), _) => Some(Target::Irn(i)),
        (None, Some(d)) => Some(Target::Document(d)),
        (None, None) => {
            if body.get("irn").is_none() && body.get("document").is_none() {
                problems.push(Problem::new(
                    "irn",
                    code::REQUIRED,
                    "either 'irn' or 'document' {doc_type, doc_number, doc_date} is required",
                ));
            }
            None
        }
    }
}
