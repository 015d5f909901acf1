//! The envelope of a command: what can be read of any message, valid or not — its contract
//! version, the document it names (for a rejection's `document` and `document_as_given`), and
//! which of the schema's problems add to what the slices found.
use serde_json::Value;

use crate::domain::event::{DocumentAsGiven, DocumentRef, SCHEMA_VERSION};
use crate::domain::problem::code;
use crate::domain::{DocDate, DocNumber, DocType, DocumentKey, Gstin, Problem};

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
pub(super) fn document_as_given(body: &Value) -> Option<DocumentAsGiven> {
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
pub(super) fn document_if_valid(body: &Value, relaxed: bool) -> Option<DocumentRef> {
    let [gstin, doc_type, doc_number, doc_date] = document_fields(body).map(|v| v.and_then(Value::as_str));
    let gstin = Gstin::parse(gstin?, relaxed).ok()?;
    let date = DocDate::parse(doc_date?).ok()?;
    let key = DocumentKey::new(gstin, DocType::parse(doc_type?).ok()?, DocNumber::parse(doc_number?).ok()?, date);
    Some(DocumentRef::new(&key, Some(date)))
}

/// The command's `schema_version`: absent (or null) means 1; a number or a string whose first
/// part is the major version (`1`, `"1"`, `"1.2"`). A major this worker does not speak is refused
/// before anything else is read, as an envelope problem, so the message is kept in `einvoice.dead`
/// for a worker that does.
pub(super) fn schema_version_problem(body: &Value) -> Option<Problem> {
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
            code::SCHEMA_VERSION_UNSUPPORTED,
            format!(
                "the command is written for version {m} of the message contract; this worker speaks version \
                 {SCHEMA_VERSION} (the message is kept in einvoice.dead: replay it to a worker that speaks {m})"
            ),
        )),
        None => Some(Problem::new(
            "schema_version",
            code::SCHEMA_VERSION_INVALID,
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
pub(super) fn schema_only(worker: &[Problem], schema: Vec<Problem>) -> Vec<Problem> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
