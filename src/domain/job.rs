//! A job's state: where one document (or one command about it) stands.
use std::fmt;
use std::str::FromStr;

/// The states of a job row. `InDoubt` means a generate or cancel may or may not have reached
/// the IRP; the stored text (`jobs.status`) is [`JobStatus::as_str`]. `RegisteredOutside` and
/// `CancelledOutside` are an operator's word that the business registered (or cancelled) the
/// document on the portal by hand: final, never claimed or retried again (see
/// [`JobStatus::may_mark_outside`] and docs/console.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    InFlight,
    InDoubt,
    Generated,
    Rejected,
    Failed,
    Cancelled,
    RegisteredOutside,
    CancelledOutside,
}

/// What an operator says happened to a document outside the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    Registered,
    Cancelled,
}

impl Outside {
    pub fn status(self) -> JobStatus {
        match self {
            Outside::Registered => JobStatus::RegisteredOutside,
            Outside::Cancelled => JobStatus::CancelledOutside,
        }
    }
}

impl JobStatus {
    pub const ALL: [JobStatus; 9] = [
        JobStatus::Pending,
        JobStatus::InFlight,
        JobStatus::InDoubt,
        JobStatus::Generated,
        JobStatus::Rejected,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::RegisteredOutside,
        JobStatus::CancelledOutside,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::InFlight => "in_flight",
            JobStatus::InDoubt => "in_doubt",
            JobStatus::Generated => "generated",
            JobStatus::Rejected => "rejected",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::RegisteredOutside => "registered_outside",
            JobStatus::CancelledOutside => "cancelled_outside",
        }
    }

    /// The document is cancelled, by the worker or (an operator says) on the portal.
    pub fn is_cancelled(self) -> bool {
        matches!(self, JobStatus::Cancelled | JobStatus::CancelledOutside)
    }

    /// Whether an operator may mark a job in this state as registered / cancelled outside the
    /// worker. Never `in_flight` (an attempt is at work: its outcome would overwrite the mark),
    /// nor a state that already is that outcome. A `generated` job has our IRN: it may be marked
    /// cancelled outside (cancelled on the portal) but not registered outside; a `cancelled` one
    /// is final. A job registered outside may later be marked cancelled outside.
    pub fn may_mark_outside(self, to: Outside) -> bool {
        use JobStatus::*;
        match to {
            Outside::Registered => matches!(self, Pending | InDoubt | Failed | Rejected),
            Outside::Cancelled => matches!(self, Pending | InDoubt | Failed | Rejected | Generated | RegisteredOutside),
        }
    }

    /// The states [`JobStatus::may_mark_outside`] allows, for SQL (`status = ANY($n)`).
    pub fn markable(to: Outside) -> Vec<String> {
        JobStatus::ALL.into_iter().filter(|s| s.may_mark_outside(to)).map(|s| s.as_str().to_string()).collect()
    }

    /// The document has its final IRN outcome at the IRP (generated, later perhaps cancelled).
    pub fn has_irn_outcome(self) -> bool {
        matches!(self, JobStatus::Generated | JobStatus::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status text that is not one of [`JobStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a job status (one of pending, in_flight, in_doubt, generated, rejected, failed, cancelled, registered_outside, cancelled_outside)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_text() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(s));
        }
        assert!("done".parse::<JobStatus>().is_err());
        for s in JobStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str(), "serialised as its stored text");
        }
    }

    #[test]
    fn what_may_be_marked_outside() {
        use JobStatus::*;
        assert!(!InFlight.may_mark_outside(Outside::Registered) && !InFlight.may_mark_outside(Outside::Cancelled));
        assert!(!Generated.may_mark_outside(Outside::Registered) && Generated.may_mark_outside(Outside::Cancelled));
        assert!(Failed.may_mark_outside(Outside::Registered) && InDoubt.may_mark_outside(Outside::Registered));
        assert!(RegisteredOutside.may_mark_outside(Outside::Cancelled));
        assert!(
            !Cancelled.may_mark_outside(Outside::Cancelled) && !CancelledOutside.may_mark_outside(Outside::Cancelled)
        );
        assert_eq!(JobStatus::markable(Outside::Registered), ["pending", "in_doubt", "rejected", "failed"]);
    }
}
