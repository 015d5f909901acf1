//! A job's state: where one document (or one command about it) stands.
use std::fmt;
use std::str::FromStr;

/// The states of a job row. `InDoubt` means a generate or cancel may or may not have reached
/// the IRP; the stored text (`jobs.status`) is [`JobStatus::as_str`].
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
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::InFlight,
        JobStatus::InDoubt,
        JobStatus::Generated,
        JobStatus::Rejected,
        JobStatus::Failed,
        JobStatus::Cancelled,
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
        }
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
#[error("'{0}' is not a job status (one of pending, in_flight, in_doubt, generated, rejected, failed, cancelled)")]
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
}
