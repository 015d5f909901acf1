//! Characters a message may hold but no answer may echo.
//!
//! NUL characters: valid JSON (`\u0000`), but no Postgres `text` or `jsonb` value can hold one.
//! A command is refused with the path of every string that contains one (nothing stores it), and
//! whatever we write that may quote message content (events, errors) replaces it with U+FFFD,
//! so no content of a message can become a storage error.
//!
//! Control and invisible formatting characters (C0/C1 controls, bidirectional overrides such as
//! U+202E, zero-width characters): an answer that quotes a command (its ids, the document as
//! given, an error message naming a bad value) writes each one as the text `\u202E`
//! ([`escape_controls`]), so an ERP screen or a log viewer never renders text reordered or hidden
//! by what a sender put in a message ("Trojan source").
use std::borrow::Cow;

use serde_json::Value;

use super::Problem;

/// What replaces a NUL in stored text: the Unicode replacement character.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// One problem (code `NUL_CHARACTER`) per string, or object key, that contains a NUL.
pub fn nul_problems(v: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out);
    out
}

fn walk(v: &Value, path: &mut String, out: &mut Vec<Problem>) {
    let problem = |path: &str, what: &str| {
        Problem::new(
            path,
            "NUL_CHARACTER",
            format!("{what} contains a NUL character (\\u0000), which no field may contain; remove it"),
        )
    };
    match v {
        Value::String(s) if s.contains('\0') => out.push(problem(path, "the value")),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, out);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&without_nul(k));
                if k.contains('\0') {
                    out.push(problem(path, "the field name"));
                } else {
                    walk(item, path, out);
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// `s` with every NUL replaced by U+FFFD.
pub fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', &NUL_REPLACEMENT.to_string()))
    } else {
        Cow::Borrowed(s)
    }
}

/// `v` as it can be stored as `jsonb`: borrowed when it holds no NUL, else stripped.
pub fn storable(v: &Value) -> Cow<'_, Value> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if has_nul(v) {
        let mut owned = v.clone();
        strip_nul(&mut owned);
        Cow::Owned(owned)
    } else {
        Cow::Borrowed(v)
    }
}

/// Replace every NUL in `v`'s strings and keys by U+FFFD, so it can be stored as `jsonb`.
pub fn strip_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = without_nul(s).into_owned(),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
            let old = std::mem::take(map);
            for (k, mut item) in old {
                strip_nul(&mut item);
                map.insert(without_nul(&k).into_owned(), item);
            }
        }
        Value::Object(map) => map.values_mut().for_each(strip_nul),
        _ => {}
    }
}

/// Characters that change how text is displayed without being visible themselves: every Unicode
/// control (`Cc`: C0, DEL, C1), the bidirectional marks, embeddings, overrides and isolates, the
/// zero-width space and word joiners, and the line/paragraph separators. (ZWNJ and ZWJ, U+200C and
/// U+200D, are left alone: Indic scripts need them in ordinary names.)
pub fn is_hidden_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{180E}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// `s` with every [`is_hidden_control`] character written as the text `\uXXXX` (upper-case hex,
/// at least four digits): borrowed when there is none.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hidden_control(c) {
            out.push_str(&format!("\\u{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Escape (in place) the strings of an event that may quote a command: its ids
/// (`request_id`, `command_message_id`, `correlation_id`), every error's `path`, `code` and
/// `message`, and `data.document_as_given`. The IRP's own documents (signed invoice payloads,
/// GSTIN details) are left as the IRP wrote them.
pub fn escape_event_echoes(event: &mut Value) {
    fn esc(v: &mut Value) {
        if let Value::String(s) = v {
            if let Cow::Owned(e) = escape_controls(s) {
                *s = e;
            }
        }
    }
    for k in ["request_id", "command_message_id", "correlation_id"] {
        if let Some(v) = event.get_mut(k) {
            esc(v);
        }
    }
    let Some(data) = event.get_mut("data").and_then(Value::as_object_mut) else { return };
    if let Some(Value::Array(errors)) = data.get_mut("errors") {
        for e in errors.iter_mut().filter_map(Value::as_object_mut) {
            for k in ["path", "code", "message"] {
                if let Some(v) = e.get_mut(k) {
                    esc(v);
                }
            }
        }
    }
    if let Some(Value::Object(doc)) = data.get_mut("document_as_given") {
        doc.values_mut().for_each(esc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_nul_is_found_with_its_path() {
        let v = json!({"gstin": "29AAG\u{0}", "invoice": {"ItemList": [{"PrdDesc": "ok"}, {"PrdDesc": "a\u{0}b"}], "k\u{0}": 1}});
        let paths: Vec<String> = nul_problems(&v).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["gstin", "invoice.ItemList[1].PrdDesc", "invoice.k\u{FFFD}"]);
        assert!(nul_problems(&json!({"a": ["b", {"c": "\\u0000 as text is fine"}]})).is_empty());
    }

    #[test]
    fn stripping_leaves_no_nul_and_keeps_the_rest() {
        let mut v = json!({"a\u{0}": ["x\u{0}y", 1, {"b": "\u{0}"}], "c": "plain"});
        strip_nul(&mut v);
        assert!(!v.to_string().contains("\\u0000"), "{v}");
        assert_eq!(v, json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, {"b": "\u{FFFD}"}], "c": "plain"}));
    }

    #[test]
    fn hidden_controls_are_written_as_text() {
        assert_eq!(escape_controls("SMP/1\u{202E}2"), "SMP/1\\u202E2");
        assert_eq!(escape_controls("a\tb\u{7}\u{200B}\u{85}"), "a\\u0009b\\u0007\\u200B\\u0085");
        assert!(matches!(escape_controls("plain ₹ text / हिन्दी"), Cow::Borrowed(_)));
        let mut ev = json!({"request_id": "r\u{202E}1", "data": {"errors": [{"path": "p", "code": "C",
            "message": "'x\u{202E}y' is bad"}], "document_as_given": {"doc_number": "N\u{2066}1"},
            "signed_invoice_payload": {"x": "\u{202E}"}}});
        escape_event_echoes(&mut ev);
        assert_eq!(ev["request_id"], "r\\u202E1");
        assert_eq!(ev["data"]["errors"][0]["message"], "'x\\u202Ey' is bad");
        assert_eq!(ev["data"]["document_as_given"]["doc_number"], "N\\u20661");
        assert_eq!(ev["data"]["signed_invoice_payload"]["x"], "\u{202E}", "the IRP's documents are left alone");
    }
}
