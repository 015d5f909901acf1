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

/// The most characters of a command's value that an answer repeats (in a message, or as the
/// `request_id` it echoes): longer values are cut, with the count of what was left out.
pub const ECHO_MAX_CHARS: usize = 100;

/// `s` cut to `max` characters; a cut text ends in `…(+N characters)`, so a reader knows it was
/// cut and by how much. Borrowed when it fits.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => {
            let rest = s[end..].chars().count();
            Cow::Owned(format!("{}…(+{rest} characters)", &s[..end]))
        }
    }
}

/// A command's value as an answer may quote it: cut to [`ECHO_MAX_CHARS`]. (Hidden controls are
/// escaped on the way out, by the outbox, with the rest of the event.)
pub fn quote(s: &str) -> Cow<'_, str> {
    cut(s, ECHO_MAX_CHARS)
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

/// Fields of an event that hold a document the IRP signed, decoded: their text is what was
/// signed, so it is left as the IRP wrote it.
pub const SIGNED_DOCUMENTS: [&str; 2] = ["signed_invoice_payload", "signed_qr_payload"];

/// Escape (in place) every string of an event (ids, errors, echoed command fields such as
/// `data.query` or a remark, the IRP's answers), except the signed documents
/// ([`SIGNED_DOCUMENTS`]): one path, so no field can carry a hidden control to an ERP's screen.
pub fn escape_event_echoes(event: &mut Value) {
    match event {
        Value::String(s) => {
            if let Cow::Owned(e) = escape_controls(s) {
                *s = e;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(escape_event_echoes),
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if !SIGNED_DOCUMENTS.contains(&k.as_str()) {
                    escape_event_echoes(v);
                }
            }
        }
        _ => {}
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
    fn long_values_are_cut_with_what_was_left_out() {
        assert!(matches!(quote("short"), Cow::Borrowed("short")));
        let long = "x".repeat(900_000);
        let q = quote(&long);
        assert!(q.chars().count() < ECHO_MAX_CHARS + 30, "{}", q.len());
        assert!(q.ends_with("…(+899900 characters)"), "{q}");
        assert_eq!(cut("हिन्दी", 2), "हि…(+4 characters)", "cut at characters, not bytes");
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
        // Any other field too: a job.status answer repeats its query.
        let mut ev = json!({"data": {"query": {"request_id": "INV\u{202E}1-GNP"}, "list": ["\u{1b}]0;x\u{7}"]}});
        escape_event_echoes(&mut ev);
        assert_eq!(ev["data"]["query"]["request_id"], "INV\\u202E1-GNP");
        assert_eq!(ev["data"]["list"][0], "\\u001B]0;x\\u0007");
    }
}
