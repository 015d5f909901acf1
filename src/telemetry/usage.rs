//! IRP API consumption, counted in memory (issue 25): one counter per (India day, GSTIN, IRP,
//! endpoint, outcome). GSPs bill per call, so every HTTP exchange with an IRP is counted here,
//! authentication included; `runtime::usage` adds the counts to `api_calls_daily` every
//! `usage_flush_secs` with one statement, so counting costs no database round trip per command.
//!
//! Prometheus has the per-IRP totals already (`einvoice_irp_call_duration_seconds`' count); the
//! GSTIN is kept out of metric labels (cardinality) and is here instead.
use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{NaiveDate, Utc};

use crate::domain::outcome::Operation;
use crate::irp::IrpError;

/// How one call ended, as far as a bill is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallOutcome {
    /// The IRP answered with success.
    Ok,
    /// The IRP answered with an error: a business refusal (its error codes) or an HTTP 4xx.
    Error,
    /// No usable answer: a transport failure, a timeout, a 5xx, a 429, an unreadable answer.
    Failed,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 3] = [CallOutcome::Ok, CallOutcome::Error, CallOutcome::Failed];

    /// The outcome of a call that ended with `result`.
    pub fn of<T>(result: &Result<T, IrpError>) -> CallOutcome {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(e) if e.is_error_response() => CallOutcome::Error,
            Err(_) => CallOutcome::Failed,
        }
    }

    /// The name stored in `api_calls_daily.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Failed => "failed",
        }
    }
}

/// One counter's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey {
    /// The India (Asia/Kolkata) date of the call.
    pub day: NaiveDate,
    pub gstin: String,
    pub irp: String,
    pub endpoint: &'static str,
    pub outcome: CallOutcome,
}

/// The counts since the last flush. A mutex around a small map: a few hundred keys a day per
/// GSTIN at most, each update a hash and an add, next to an HTTP exchange of milliseconds.
#[derive(Debug, Default)]
pub struct UsageMeter {
    counts: Mutex<HashMap<CallKey, u64>>,
}

/// Today's date in India: the day a call is billed on.
pub fn india_today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).date_naive()
}

impl UsageMeter {
    /// Count one call to `irp` for `gstin`.
    pub fn record(&self, gstin: &str, irp: &str, op: Operation, outcome: CallOutcome) {
        self.add(
            CallKey {
                day: india_today(),
                gstin: gstin.to_string(),
                irp: irp.to_string(),
                endpoint: op.as_str(),
                outcome,
            },
            1,
        );
    }

    fn add(&self, key: CallKey, n: u64) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += n;
    }

    /// Everything counted since the last take, leaving the meter empty.
    pub fn take(&self) -> HashMap<CallKey, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Put counts back that could not be written (the database was away): the next flush tries again.
    pub fn restore(&self, counts: HashMap<CallKey, u64>) {
        for (k, n) in counts {
            self.add(k, n);
        }
    }

    /// Calls counted and not yet taken (tests, logs).
    pub fn pending(&self) -> u64 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_key_and_take_empties_the_meter() {
        let m = UsageMeter::default();
        m.record("29AAGCP4821K1Z3", "NIC1", Operation::Generate, CallOutcome::Ok);
        m.record("29AAGCP4821K1Z3", "NIC1", Operation::Generate, CallOutcome::Ok);
        m.record("29AAGCP4821K1Z3", "NIC1", Operation::Generate, CallOutcome::Error);
        m.record("27AAKFU7303M1ZP", "NIC1", Operation::Auth, CallOutcome::Ok);
        assert_eq!(m.pending(), 4);
        let taken = m.take();
        assert_eq!(taken.len(), 3);
        let ok = taken
            .iter()
            .find(|(k, _)| k.gstin == "29AAGCP4821K1Z3" && k.outcome == CallOutcome::Ok)
            .map(|(k, n)| (k.endpoint, *n));
        assert_eq!(ok, Some(("generate", 2)));
        assert_eq!(m.pending(), 0);
        m.restore(taken);
        assert_eq!(m.pending(), 4);
    }

    #[test]
    fn outcomes_follow_who_answered() {
        assert_eq!(CallOutcome::of::<()>(&Ok(())), CallOutcome::Ok);
        let refused = IrpError::Api { errors: vec![], info: vec![] };
        assert_eq!(CallOutcome::of::<()>(&Err(refused)), CallOutcome::Error);
        assert_eq!(CallOutcome::of::<()>(&Err(IrpError::Timeout("t".into()))), CallOutcome::Failed);
        let unavailable = IrpError::Http { status: 503, body: String::new() };
        assert_eq!(CallOutcome::of::<()>(&Err(unavailable)), CallOutcome::Failed);
    }
}
