//! IRP failures and how each maps onto the outcome table in `domain::outcome`.
use serde_json::Value;

use crate::domain::event::ErrorItem;
use crate::domain::outcome::{classify, http_status_is_configuration, http_status_is_transient, Class, Operation};

/// One error as the IRP reports it (`ErrorCode`/`ErrorMessage`).
#[derive(Debug, Clone, PartialEq)]
pub struct IrpMessage {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IrpError {
    /// The request never reached the IRP (refused, DNS, TLS): safe to resend.
    #[error("could not connect to the IRP: {0}")]
    Connect(String),
    /// Timed out or broke after sending: the IRP may have acted on it.
    #[error("the IRP did not answer in time: {0}")]
    Timeout(String),
    #[error("the IRP answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// The IRP answered with application errors.
    #[error("the IRP refused the request: {}", fmt_messages(.errors))]
    Api { errors: Vec<IrpMessage>, info: Vec<Value> },
    /// The answer could not be understood (malformed 200, bad crypto, missing fields).
    #[error("the IRP's answer could not be read: {0}")]
    Protocol(String),
    /// A SignedInvoice / SignedQRCode did not verify against the configured signing key: the
    /// key is wrong or the answer was tampered with. Never accepted, never retried blindly.
    #[error("the IRP's signed answer failed verification: {0}")]
    Signature(String),
    /// Our own configuration is wrong (missing public key, bad PEM…).
    #[error("configuration error: {0}")]
    Config(String),
    /// 1005 (invalid token) persisted after re-authenticating: the IRP is not accepting the
    /// tokens it issues right now. Transient (the durable retry path takes it), never a pause:
    /// 1005 means "get a new token", not "your configuration is wrong".
    #[error("the IRP kept refusing freshly obtained tokens (1005 Invalid Token): {0}")]
    TokenRefused(String),
}

fn fmt_messages(m: &[IrpMessage]) -> String {
    m.iter().map(|m| format!("{} {}", m.code, m.message)).collect::<Vec<_>>().join("; ")
}

/// Class priority when one answer carries several codes: the most actionable wins.
const PRIORITY: [Class; 10] = [
    Class::Configuration,
    Class::Reauth,
    Class::DuplicateIrn,
    Class::RegisteredElsewhere,
    Class::AlreadyCancelled,
    Class::EwaybillExists,
    Class::SyncGstinThenRetry,
    Class::NotFound,
    Class::Rejection,
    Class::Transient,
];

impl IrpError {
    /// The row of the outcome table this failure falls in.
    pub fn class(&self, op: Operation) -> Class {
        match self {
            IrpError::Connect(_) | IrpError::Timeout(_) | IrpError::Protocol(_) | IrpError::TokenRefused(_) => {
                Class::Transient
            }
            IrpError::Http { status, .. } if http_status_is_transient(*status) => Class::Transient,
            IrpError::Http { status, .. } if http_status_is_configuration(*status) => Class::Configuration,
            IrpError::Http { .. } => Class::Rejection,
            IrpError::Config(_) | IrpError::Signature(_) => Class::Configuration,
            IrpError::Api { errors, .. } => {
                let classes: Vec<Class> =
                    errors.iter().map(|e| classify(op, &e.code, names_a_field(&e.message))).collect();
                PRIORITY.into_iter().find(|c| classes.contains(c)).unwrap_or(Class::Rejection)
            }
        }
    }

    /// True when the request may have been acted on although we got no clear answer.
    pub fn may_have_reached_irp(&self) -> bool {
        match self {
            IrpError::Timeout(_) | IrpError::Protocol(_) => true,
            IrpError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The IRP's error codes in this answer, comma-separated (log lines).
    pub fn codes(&self) -> String {
        match self {
            IrpError::Api { errors, .. } => errors.iter().map(|m| m.code.as_str()).collect::<Vec<_>>().join(","),
            _ => String::new(),
        }
    }

    /// The HTTP status the IRP answered with, where the exchange got that far (0: no answer).
    pub fn http_status(&self) -> u16 {
        match self {
            IrpError::Http { status, .. } => *status,
            IrpError::Api { .. } | IrpError::Protocol(_) | IrpError::Signature(_) => 200,
            _ => 0,
        }
    }

    /// Did the IRP itself answer with an error (what NIC counts towards blocking a GSTIN)?
    pub fn is_error_response(&self) -> bool {
        matches!(self, IrpError::Api { .. } | IrpError::Http { status: 400..=499, .. })
    }

    pub fn has_code(&self, code: &str) -> bool {
        matches!(self, IrpError::Api { errors, .. } if errors.iter().any(|e| e.code == code))
    }

    /// `InfoDtls[InfCd=DUPIRN].Desc` on a 2150 answer (selected by InfCd, not position).
    pub fn duplicate_info(&self) -> Option<&Value> {
        match self {
            IrpError::Api { info, .. } => info
                .iter()
                .find(|i| i.get("InfCd").and_then(Value::as_str).is_some_and(|c| c.eq_ignore_ascii_case("DUPIRN")))
                .and_then(|i| i.get("Desc")),
            _ => None,
        }
    }

    /// The failure as event error items: IRP codes verbatim, transport failures with our code.
    pub fn to_error_items(&self) -> Vec<ErrorItem> {
        match self {
            IrpError::Api { errors, .. } => errors.iter().map(|e| ErrorItem::irp(&e.code, &e.message)).collect(),
            IrpError::Http { status, body } => {
                vec![ErrorItem::irp(
                    format!("HTTP_{status}"),
                    format!("the IRP answered HTTP {status}: {}", truncate(body, 300)),
                )]
            }
            IrpError::Connect(m) => vec![ErrorItem::irp("CONNECT", format!("could not connect to the IRP: {m}"))],
            IrpError::Timeout(m) => vec![ErrorItem::irp("TIMEOUT", format!("the IRP did not answer in time: {m}"))],
            IrpError::Protocol(m) => {
                vec![ErrorItem::irp("BAD_RESPONSE", format!("the IRP's answer could not be read: {m}"))]
            }
            IrpError::Config(m) => vec![ErrorItem::worker("CONFIGURATION", m.clone())],
            IrpError::Signature(m) => vec![ErrorItem::worker("SIGNATURE_INVALID", m.clone())],
            IrpError::TokenRefused(m) => {
                vec![ErrorItem::irp("1005", format!("Invalid Token, again after re-authenticating: {m}"))]
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// 5002 is "try again" unless its message names a schema field (then it is a data error).
fn names_a_field(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["itemlist", "dtls", "gstin", "hsn", "schema", "json", "value", "field"].iter().any(|k| m.contains(k))
}

/// Map a reqwest failure onto connect (safe to resend) versus timeout (may have reached).
pub fn from_reqwest(e: reqwest::Error) -> IrpError {
    if e.is_connect() {
        IrpError::Connect(e.to_string())
    } else if e.is_timeout() {
        IrpError::Timeout(e.to_string())
    } else if e.is_decode() || e.is_body() {
        IrpError::Protocol(e.to_string())
    } else {
        // Reset mid-request and similar: treat as "may have reached".
        IrpError::Timeout(e.to_string())
    }
}

/// Parse an error list the IRP sends as a JSON array, a JSON string holding an array, or a
/// base64 string of either (NIC documents base64; Whitebooks sends a JSON string). Keys are
/// matched case-insensitively (`ErrorCode`, `errorCode`).
pub fn parse_error_list(v: &Value) -> Vec<IrpMessage> {
    use base64::Engine;
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| IrpMessage {
                code: get_ci(i, "errorcode").unwrap_or_default(),
                message: get_ci(i, "errormessage").unwrap_or_default(),
            })
            .collect(),
        Value::String(s) => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                if inner.is_array() {
                    return parse_error_list(&inner);
                }
            }
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s.trim()) {
                if let Ok(inner) = serde_json::from_slice::<Value>(&bytes) {
                    if inner.is_array() {
                        return parse_error_list(&inner);
                    }
                }
            }
            vec![IrpMessage { code: String::new(), message: s.clone() }]
        }
        Value::Object(_) => parse_error_list(&Value::Array(vec![v.clone()])),
        _ => Vec::new(),
    }
}

/// Case-insensitive string (or number) field.
pub fn get_ci(v: &Value, key: &str) -> Option<String> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).and_then(|(_, v)| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_lists_in_every_form() {
        let arr = json!([{"ErrorCode":"2150","ErrorMessage":"Duplicate IRN"}]);
        assert_eq!(parse_error_list(&arr)[0].code, "2150");
        let s = json!("[{\"errorCode\":\"1005\",\"errorMessage\":\"Invalid Token\"}]");
        assert_eq!(parse_error_list(&s)[0].code, "1005");
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(arr.to_string());
        assert_eq!(parse_error_list(&Value::String(b))[0].message, "Duplicate IRN");
    }

    #[test]
    fn classes() {
        let e = IrpError::Api {
            errors: vec![IrpMessage { code: "2150".into(), message: "Duplicate IRN".into() }],
            info: vec![],
        };
        assert_eq!(e.class(Operation::Generate), Class::DuplicateIrn);
        assert_eq!(IrpError::Http { status: 503, body: String::new() }.class(Operation::Generate), Class::Transient);
        assert!(IrpError::Timeout("x".into()).may_have_reached_irp());
        assert!(!IrpError::Connect("x".into()).may_have_reached_irp());
    }
}
