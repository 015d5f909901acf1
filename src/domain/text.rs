//! NUL characters: valid JSON (`\u0000`), but no Postgres `text` or `jsonb` value can hold one.
//!
//! A command is refused with the path of every string that contains one (nothing stores it), and
//! whatever we write that may quote message content (events, errors) replaces it with U+FFFD,
//! so no content of a message can become a storage error.
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
}
