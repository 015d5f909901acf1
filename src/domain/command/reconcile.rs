//! `reconcile.rejected`: a reconciliation run over the IRP's rejected IRNs and our in-doubt jobs
//! for a range of days (at most 31), for one GSTIN or all configured ones.
use super::{CommandBody, ParseOptions, Reader};
use crate::domain::problem::code;
use crate::domain::{DocDate, Gstin, Problem};

/// The longest range one run covers (days).
pub const MAX_RUN_DAYS: i64 = 31;

#[derive(Debug, Clone)]
pub struct ReconcileRejected {
    pub gstin: Option<Gstin>,
    pub from: DocDate,
    pub to: DocDate,
}

impl CommandBody for ReconcileRejected {
    fn parse(r: &mut Reader<'_>, _: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", false);
        let from = r.date("from", "from");
        let to = r.date("to", "to");
        if let (Some(f), Some(t)) = (from, to) {
            if t.date() < f.date() {
                r.problems.push(Problem::new(
                    "to",
                    code::DATE_RANGE_INVALID,
                    format!("'to' ({t}) is before 'from' ({f})"),
                ));
            } else if (t.date() - f.date()).num_days() > MAX_RUN_DAYS {
                r.problems.push(Problem::new(
                    "to",
                    code::DATE_RANGE_TOO_LONG,
                    format!("a run covers at most {MAX_RUN_DAYS} days; split the range"),
                ));
            }
        }
        Some(ReconcileRejected { gstin, from: from?, to: to? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        self.gstin.as_ref()
    }
}
