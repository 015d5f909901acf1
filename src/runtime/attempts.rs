//! The IRP calls of the command at work, kept in memory and written with its outcome, so the
//! console's job page can list every attempt with the IRP's answers (issue 25) without a
//! database round trip of their own (issue 28 holds the worker at 3 per command): the statement
//! that stores the outcome ([`crate::store::Db::finish_job_with`]) appends them to `jobs.attempt_log`.
//!
//! Only what the IRP said and how long it took: no request or response bodies, no tokens.
use std::cell::RefCell;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::outcome::Operation;
use crate::irp::IrpError;

/// Attempts a job keeps (the newest; older ones drop off, in memory and in the store).
pub const MAX_ATTEMPTS: usize = 20;
/// An error's text is cut to this many characters.
const MAX_ERROR_CHARS: usize = 300;

/// One IRP call (or the authentication before it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub irp: String,
    pub operation: &'static str,
    /// `ok`; `ambiguous` (a generate or cancel that may have reached the IRP: looked up before
    /// anything is sent again); `error`.
    pub outcome: &'static str,
    /// The HTTP status (0: no answer, e.g. a timeout or refused connection).
    pub http_status: u16,
    /// The IRP's error codes, comma-separated (empty when none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub codes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// None when the call was not made (no session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Attempt {
    /// The attempt a call's result makes.
    pub fn of<T>(
        irp: &str,
        op: Operation,
        result: &Result<T, IrpError>,
        started: DateTime<Utc>,
        duration_ms: Option<u64>,
    ) -> Attempt {
        let (outcome, http_status, codes, error) = match result {
            Ok(_) => ("ok", 200, String::new(), None),
            Err(e) => {
                let ambiguous = matches!(op, Operation::Generate | Operation::Cancel) && e.may_have_reached_irp();
                let text: String = e.to_string().chars().take(MAX_ERROR_CHARS).collect();
                (if ambiguous { "ambiguous" } else { "error" }, e.http_status(), e.codes(), Some(text))
            }
        };
        Attempt {
            at: started,
            irp: irp.to_string(),
            operation: op.as_str(),
            outcome,
            http_status,
            codes,
            error,
            duration_ms,
        }
    }
}

tokio::task_local! {
    static LOG: RefCell<Vec<Attempt>>;
}

/// Run one command's handling with an attempt log (a no-op log outside it).
pub async fn scope<F: Future>(f: F) -> F::Output {
    LOG.scope(RefCell::new(Vec::new()), f).await
}

/// Note an IRP call of the current command (nothing outside [`scope`]).
pub fn record(a: Attempt) {
    let _ = LOG.try_with(|l| {
        let mut l = l.borrow_mut();
        if l.len() >= MAX_ATTEMPTS {
            l.remove(0);
        }
        l.push(a);
    });
}

/// The calls noted so far, as a JSON array, emptying the log (None: there were none).
pub fn take() -> Option<Value> {
    let taken = LOG.try_with(|l| std::mem::take(&mut *l.borrow_mut())).unwrap_or_default();
    (!taken.is_empty()).then(|| serde_json::to_value(taken).expect("attempts serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_is_bounded_and_taken_once() {
        let err: Result<(), IrpError> = Err(IrpError::Timeout("x".repeat(1000)));
        let (first, second) = scope(async {
            for _ in 0..MAX_ATTEMPTS + 5 {
                record(Attempt::of("nic", Operation::Generate, &err, Utc::now(), Some(3)));
            }
            (take(), take())
        })
        .await;
        let first = first.expect("attempts");
        let a = first.as_array().expect("array");
        assert_eq!(a.len(), MAX_ATTEMPTS);
        assert_eq!(a[0]["outcome"], "ambiguous");
        assert!(a[0]["error"].as_str().unwrap().chars().count() <= MAX_ERROR_CHARS);
        assert_eq!(second, None);
        record(Attempt::of("nic", Operation::Generate, &err, Utc::now(), None));
        assert_eq!(take(), None, "outside a scope nothing is kept");
    }
}
