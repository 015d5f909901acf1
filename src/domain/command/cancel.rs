//! `irn.cancel`: cancel an IRN (named by IRN or document) within the IRP's 24 hours.
use super::{CommandBody, ParseOptions, Reader, Target};
use crate::domain::problem::code;
use crate::domain::text::quote;
use crate::domain::{Gstin, Problem};

/// The IRP's longest cancel remark (characters).
pub const CANCEL_REMARK_MAX: usize = 100;

/// A cancel reason code, as the IRP defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Duplicate = 1,
    DataEntryMistake = 2,
    OrderCancelled = 3,
    Others = 4,
}

impl CancelReason {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "1" => Some(Self::Duplicate),
            "2" => Some(Self::DataEntryMistake),
            "3" => Some(Self::OrderCancelled),
            "4" => Some(Self::Others),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Self::Duplicate => "1",
            Self::DataEntryMistake => "2",
            Self::OrderCancelled => "3",
            Self::Others => "4",
        }
    }
}

/// `cancel_ewaybill`: cancel the IRN's active e-way bill first (the IRP refuses otherwise, 2230).
#[derive(Debug, Clone)]
pub struct Cancel {
    pub gstin: Gstin,
    pub target: Target,
    pub reason: CancelReason,
    pub remark: String,
    pub cancel_ewaybill: bool,
}

impl CommandBody for Cancel {
    fn parse(r: &mut Reader<'_>, _: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let irn = r.irn("irn");
        let doc = r.doc_ref("document");
        let reason = r.req_str("reason").and_then(|s| {
            let p = CancelReason::parse(&s);
            if p.is_none() {
                r.problems.push(Problem::new(
                    "reason",
                    code::CANCEL_REASON_INVALID,
                    format!("'{}' is not a cancel reason: use 1 (Duplicate), 2 (Data entry mistake), 3 (Order cancelled) or 4 (Others)", quote(&s)),
                ));
            }
            p
        });
        let remark = r.opt_str("remark").unwrap_or_default();
        if remark.chars().count() > CANCEL_REMARK_MAX {
            r.problems.push(Problem::new(
                "remark",
                code::REMARK_TOO_LONG,
                format!("the remark has {} characters; the IRP allows {CANCEL_REMARK_MAX}", remark.chars().count()),
            ));
        }
        let cancel_ewaybill = r.flag("cancel_ewaybill");
        let target = super::reader::target(irn, doc, r.body, &mut r.problems);
        Some(Cancel { gstin: gstin?, target: target?, reason: reason?, remark, cancel_ewaybill })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }

    fn subject(&self) -> Option<String> {
        Some(self.target.to_string())
    }
}
