//! `job.status`: which job a status query names.
//!
//! A query names one job in exactly one way: by `job_id`, by `gstin` + `document`, or by the
//! `request_id` an earlier command carried. Every command may carry its own `request_id` too, so
//! `request_id` names the job only when neither `job_id` nor `document` is given; beside one of
//! them it is the status query's own reference, as on any other command.
use std::fmt;

use serde_json::Value;
use uuid::Uuid;

use super::{doc_ref, type_name, Reader};
use crate::domain::problem::code;
use crate::domain::{DocDate, DocumentKey, Gstin, Problem};

/// How a status query names its job.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusQuery {
    /// The `request_id` of an earlier command about the job (exactly as sent; a number as its
    /// decimal text).
    RequestId(String),
    /// A document of the seller `key.gstin`; `date` is the date as given (the key keeps only its
    /// financial year).
    Document {
        key: DocumentKey,
        date: DocDate,
    },
    JobId(Uuid),
}

impl fmt::Display for StatusQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusQuery::RequestId(r) => write!(f, "request_id={r}"),
            StatusQuery::Document { key, .. } => write!(f, "{key}"),
            StatusQuery::JobId(id) => write!(f, "job_id={id}"),
        }
    }
}

const HOW: &str =
    "name the job by 'request_id', by 'gstin' and 'document' {doc_type, doc_number, doc_date}, or by 'job_id'";

fn present(body: &Value, field: &str) -> bool {
    !matches!(body.get(field), None | Some(Value::Null))
}

/// Read the query; problems go to `r` with their paths. `request_id` is the command's own
/// (read by `parse_command`, untrimmed, so it matches what earlier events carry).
pub(super) fn parse_query(
    r: &mut Reader<'_>,
    body: &Value,
    gstin: Option<&Gstin>,
    request_id: Option<&str>,
) -> Option<StatusQuery> {
    let (by_job, by_doc) = (present(body, "job_id"), present(body, "document"));
    if by_job && by_doc {
        r.problems.push(Problem::new(
            "job_id",
            code::QUERY_AMBIGUOUS,
            "give either 'job_id' or 'document', not both: a status query names one job",
        ));
        return None;
    }
    if by_job {
        let s = r.opt_str("job_id")?;
        return match Uuid::parse_str(&s) {
            Ok(id) => Some(StatusQuery::JobId(id)),
            Err(_) => {
                r.problems.push(Problem::new(
                    "job_id",
                    code::JOB_ID_INVALID,
                    format!("'{s}' is not a job id: a UUID as events carry it in job_id (e.g. 0b9f3c1e-6f57-4a5c-9a43-2f1d5e7c8a10)"),
                ));
                None
            }
        };
    }
    if by_doc {
        let doc = doc_ref(body, "document", &mut r.problems);
        if gstin.is_none() && !r.problems.iter().any(|p| p.path == "gstin") {
            r.problems.push(Problem::new(
                "gstin",
                code::REQUIRED,
                "'gstin' is required with 'document': the seller GSTIN whose document it is",
            ));
        }
        let (gstin, d) = (gstin?, doc?);
        let key = DocumentKey::new(gstin.clone(), d.doc_type, d.doc_number, d.doc_date);
        return Some(StatusQuery::Document { key, date: d.doc_date });
    }
    match body.get("request_id") {
        None | Some(Value::Null) => {
            r.problems.push(Problem::new("request_id", code::REQUIRED, format!("a status query must {HOW}")));
            None
        }
        Some(Value::String(_) | Value::Number(_)) => match request_id {
            Some(id) if !id.trim().is_empty() => Some(StatusQuery::RequestId(id.to_string())),
            _ => {
                r.problems.push(Problem::new(
                    "request_id",
                    code::REQUIRED,
                    format!("'request_id' is empty; a status query must {HOW}"),
                ));
                None
            }
        },
        Some(other) => {
            r.problems.push(Problem::new(
                "request_id",
                code::INVALID_TYPE,
                format!("'request_id' must be a string or a number, found {}", type_name(other)),
            ));
            None
        }
    }
}

/// `job.status`: answered from the store, never the IRP. `gstin`, when given, scopes the answer
/// to that seller's jobs.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub gstin: Option<Gstin>,
    pub query: StatusQuery,
}

impl super::CommandBody for JobStatus {
    fn parse(r: &mut Reader<'_>, _: &super::ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", false);
        let (body, request_id) = (r.body, r.request_id);
        let query = parse_query(r, body, gstin.as_ref(), request_id)?;
        Some(JobStatus { gstin, query })
    }

    fn gstin(&self) -> Option<&Gstin> {
        self.gstin.as_ref()
    }

    fn subject(&self) -> Option<String> {
        Some(self.query.to_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::command::{parse_command, Command, ParseOptions};

    use super::StatusQuery;

    fn query(body: &str) -> Result<StatusQuery, Vec<(String, String)>> {
        match parse_command("job.status", body.as_bytes(), &ParseOptions::default()) {
            Ok(p) => match p.command {
                Command::JobStatus(super::JobStatus { query, .. }) => Ok(query),
                other => panic!("not a status query: {other:?}"),
            },
            Err(r) => Err(r.problems.into_iter().map(|p| (p.path, p.code)).collect()),
        }
    }

    #[test]
    fn each_way_of_naming_a_job() {
        assert_eq!(query(r#"{"request_id": " erp-1"}"#).unwrap(), StatusQuery::RequestId(" erp-1".into()));
        assert_eq!(query(r#"{"request_id": 4711}"#).unwrap(), StatusQuery::RequestId("4711".into()));
        let id = "0b9f3c1e-6f57-4a5c-9a43-2f1d5e7c8a10";
        let q = query(&format!(r#"{{"job_id": "{id}", "request_id": "mine"}}"#)).unwrap();
        assert_eq!(q, StatusQuery::JobId(id.parse().unwrap()), "request_id beside job_id is the query's own");
        let q = query(
            r#"{"gstin": "29AAGCP4821K1Z3", "document": {"doc_type": "INV", "doc_number": "SMP/1", "doc_date": "01/04/2025"}}"#,
        )
        .unwrap();
        assert_eq!(q.to_string(), "29AAGCP4821K1Z3/INV/SMP/1/2025-26");
    }

    #[test]
    fn a_malformed_query_names_every_field_at_fault() {
        let e = query(r#"{"document": {"doc_type": "XYZ", "doc_date": "31/02/2026"}}"#).unwrap_err();
        for (path, code) in [
            ("gstin", "REQUIRED"),
            ("document.doc_type", "DOC_TYPE_INVALID"),
            ("document.doc_number", "REQUIRED"),
            ("document.doc_date", "DATE_INVALID"),
        ] {
            assert!(e.contains(&(path.into(), code.into())), "{path} {code} missing from {e:?}");
        }
        assert_eq!(query(r#"{}"#).unwrap_err(), vec![("request_id".into(), "REQUIRED".into())]);
        assert_eq!(query(r#"{"request_id": ""}"#).unwrap_err(), vec![("request_id".into(), "REQUIRED".into())]);
        assert_eq!(query(r#"{"request_id": {}}"#).unwrap_err(), vec![("request_id".into(), "INVALID_TYPE".into())]);
        assert_eq!(query(r#"{"job_id": "42"}"#).unwrap_err(), vec![("job_id".into(), "JOB_ID_INVALID".into())]);
        let both = query(r#"{"job_id": "42", "document": {}}"#).unwrap_err();
        // (The contract's schema also names the empty document's missing fields.)
        assert!(both.contains(&("job_id".into(), "QUERY_AMBIGUOUS".into())), "{both:?}");
        let bad_gstin = query(r#"{"gstin": "29AAGCP4821K1Z4", "request_id": "r"}"#).unwrap_err();
        assert_eq!(bad_gstin, vec![("gstin".into(), "GSTIN_INVALID".into())]);
    }
}
