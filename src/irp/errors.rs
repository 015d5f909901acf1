//! IRP failures and how each maps onto the outcome table in `domain::outcome`.
use serde_json::Value;

use crate::domain::event::ErrorItem;
use crate::domain::outcome::{
    classify, http_status_is_configuration, http_status_is_transient, Class, Final, Operation, QUOTA_CODES,
};

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
    /// HTTP 3xx. Redirects are never followed (see [`crate::irp::http_client`]): the request's
    /// credential headers would go wherever `Location` points. The configured `base_url` is not
    /// where the IRP serves its API (a moved host, `http://` answered by a redirect to
    /// `https://`): a configuration error, so the GSTIN pauses instead of retrying.
    #[error(
        "the IRP answered with a redirect to {location}; redirects are not followed (credentials would leak): \
         set base_url to the address the IRP serves its API at (HTTP {status})"
    )]
    Redirect { status: u16, location: String },
    /// HTTP 429 Too Many Requests from the IRP or the GSP in front of it, with its `Retry-After`
    /// in seconds when it sent one. Not an attempt: the call waits and goes again
    /// (`runtime::guard`), and every worker slows down for that credential.
    #[error("the IRP throttled the request (HTTP {status}{}): {body}", retry_after_text(*.retry_after))]
    Throttled { status: u16, retry_after: Option<u64>, body: String },
    /// Our own rate limit (`rate_limit` of the GSTIN) has no slot for this call within the wait
    /// one call may spend: nothing was sent; the command is retried later.
    #[error(
        "the rate limit of this GSTIN's credential allows the next IRP call in {wait_secs} s, longer than one call \
         may wait; nothing was sent and the command is retried later"
    )]
    RateLimited { wait_secs: u64 },
    /// The IRP answered with application errors.
    #[error("the IRP refused the request: {}", fmt_messages(.errors))]
    Api { errors: Vec<IrpMessage>, info: Vec<Value> },
    /// The IRP's circuit is open (it kept failing): nothing was sent, and it is tried again at
    /// `until`. Transient, and a wait rather than a failure (see [`IrpError::wait_until`]).
    #[error("could not connect to the IRP: IRP {irp} is unavailable: its circuit is open until {until}")]
    CircuitOpen { irp: String, until: chrono::DateTime<chrono::Utc> },
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

fn retry_after_text(secs: Option<u64>) -> String {
    secs.map(|s| format!(", Retry-After {s} s")).unwrap_or_default()
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
    /// What this failure means for the job once the call is over: its row of the outcome table,
    /// with 1005 (re-authenticate) already dealt with by `runtime::calls::call`.
    pub fn class(&self, op: Operation) -> Final {
        self.table_class(op).final_class()
    }

    /// The row of the outcome table this failure falls in, `Reauth` included: only the call
    /// loop (`runtime::calls`) acts on that row.
    pub fn table_class(&self, op: Operation) -> Class {
        match self {
            IrpError::Connect(_)
            | IrpError::CircuitOpen { .. }
            | IrpError::Timeout(_)
            | IrpError::Protocol(_)
            | IrpError::TokenRefused(_)
            | IrpError::Throttled { .. }
            | IrpError::RateLimited { .. } => Class::Transient,
            IrpError::Http { status, .. } if http_status_is_transient(*status) => Class::Transient,
            IrpError::Http { status, .. } if http_status_is_configuration(*status) => Class::Configuration,
            IrpError::Http { .. } => Class::Rejection,
            IrpError::Config(_) | IrpError::Signature(_) | IrpError::Redirect { .. } => Class::Configuration,
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

    /// When a failure is a wait whose end is known (our rate limit's next slot, an open circuit's
    /// reopening): the command comes back then, without counting as a failed attempt.
    pub fn wait_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            IrpError::RateLimited { wait_secs } => Some(
                chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(*wait_secs).unwrap_or(i64::MAX / 1000)),
            ),
            IrpError::CircuitOpen { until, .. } => Some(*until),
            _ => None,
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
            IrpError::Http { status, .. } | IrpError::Throttled { status, .. } | IrpError::Redirect { status, .. } => {
                *status
            }
            IrpError::Api { .. } | IrpError::Protocol(_) | IrpError::Signature(_) => 200,
            _ => 0,
        }
    }

    /// Did the IRP itself answer with an error (what NIC counts towards blocking a GSTIN)? A 429
    /// is not counted: it is the GSP's quota speaking, and the worker paces itself for it.
    pub fn is_error_response(&self) -> bool {
        matches!(self, IrpError::Api { .. } | IrpError::Http { status: 400..=499, .. })
    }

    /// "Slow down": HTTP 429, 658 (request limit exceeded) or GEN5005 (plan limit exceeded). The
    /// call waits (`Retry-After` when given) and goes again without counting as an attempt.
    pub fn is_throttled(&self) -> bool {
        match self {
            IrpError::Throttled { .. } => true,
            IrpError::Api { errors, .. } => {
                errors.iter().any(|e| QUOTA_CODES.iter().any(|c| c.eq_ignore_ascii_case(e.code.trim())))
            }
            _ => false,
        }
    }

    /// The `Retry-After` a throttling answer carried, in seconds.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            IrpError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
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
            IrpError::Throttled { status, retry_after, body } => vec![ErrorItem::irp(
                format!("HTTP_{status}"),
                format!(
                    "the IRP (or the GSP in front of it) answered HTTP {status} Too Many Requests{}: {}",
                    retry_after_text(*retry_after),
                    truncate(body, 300)
                ),
            )],
            IrpError::RateLimited { .. } => vec![ErrorItem::worker("RATE_LIMITED", self.to_string())],
            IrpError::Redirect { status, .. } => vec![ErrorItem::irp(format!("HTTP_{status}"), self.to_string())],
            IrpError::Connect(m) => vec![ErrorItem::irp("CONNECT", format!("could not connect to the IRP: {m}"))],
            IrpError::CircuitOpen { .. } => vec![ErrorItem::irp("CONNECT", self.to_string())],
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

/// A non-2xx HTTP answer: [`IrpError::Throttled`] for 429 (with `Retry-After`), [`IrpError::Redirect`]
/// for 3xx (with its `Location`), else [`IrpError::Http`].
pub fn http_error(status: u16, headers: &reqwest::header::HeaderMap, body: String) -> IrpError {
    if (300..400).contains(&status) {
        let location = headers
            .get(reqwest::header::LOCATION)
            .map(|v| crate::domain::text::escape_controls(&String::from_utf8_lossy(v.as_bytes())).into_owned())
            .map(|l| truncate(&l, 300))
            .unwrap_or_else(|| "(no Location header)".into());
        return IrpError::Redirect { status, location };
    }
    if status == 429 {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        return IrpError::Throttled { status, retry_after, body };
    }
    IrpError::Http { status, body }
}

/// `Retry-After` as delay-seconds (`120`) or an HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`),
/// in whole seconds from `now` (a date in the past is 0).
pub fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).num_seconds().max(0) as u64)
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
        assert_eq!(e.table_class(Operation::Generate), Class::DuplicateIrn);
        assert_eq!(
            IrpError::Http { status: 503, body: String::new() }.table_class(Operation::Generate),
            Class::Transient
        );
        assert!(IrpError::Timeout("x".into()).may_have_reached_irp());
        assert!(!IrpError::Connect("x".into()).may_have_reached_irp());
    }

    #[test]
    fn throttling_is_transient_never_reached_and_not_an_error_response() {
        let e = IrpError::Throttled { status: 429, retry_after: Some(7), body: "slow down".into() };
        assert_eq!(e.table_class(Operation::Generate), Class::Transient);
        assert!(e.is_throttled() && !e.may_have_reached_irp() && !e.is_error_response());
        assert_eq!((e.retry_after(), e.http_status()), (Some(7), 429));
        assert_eq!(e.to_error_items()[0].code, "HTTP_429");
        assert!(e.to_error_items()[0].message.contains("Retry-After 7 s"), "{:?}", e.to_error_items());
        for code in ["658", "GEN5005", "gen5005"] {
            let api = IrpError::Api {
                errors: vec![IrpMessage { code: code.into(), message: "limit exceeded".into() }],
                info: vec![],
            };
            assert!(api.is_throttled(), "{code}");
            assert_eq!(api.table_class(Operation::Generate), Class::Transient, "{code}");
            assert_eq!(api.table_class(Operation::EwaybillCancel), Class::Transient, "{code}");
            assert!(api.is_error_response(), "an answered error still counts towards NIC's threshold");
        }
        let limited = IrpError::RateLimited { wait_secs: 90 };
        assert_eq!(limited.table_class(Operation::Generate), Class::Transient);
        assert!(!limited.may_have_reached_irp() && !limited.is_error_response() && !limited.is_throttled());
        assert_eq!(limited.to_error_items()[0].code, "RATE_LIMITED");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-10-21T07:28:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after(" 120 ", now), Some(120));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now), Some(30));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now), Some(0));
        assert_eq!(parse_retry_after("soon", now), None);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert!(matches!(http_error(429, &h, String::new()), IrpError::Throttled { retry_after: Some(3), .. }));
        assert!(matches!(http_error(503, &h, String::new()), IrpError::Http { status: 503, .. }));
    }
}
