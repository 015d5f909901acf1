//! `ewaybill.cancel`: cancel an e-way bill (named by its number or its IRN).
use super::ewaybill::{parse_cancel, EwbCancelReason, EwbTarget};
use super::{CommandBody, ParseOptions, Reader};
use crate::domain::Gstin;

#[derive(Debug, Clone)]
pub struct EwaybillCancel {
    pub gstin: Gstin,
    pub target: EwbTarget,
    pub reason: EwbCancelReason,
    pub remark: String,
}

impl CommandBody for EwaybillCancel {
    fn parse(r: &mut Reader<'_>, _: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let (target, reason, remark) = parse_cancel(r);
        Some(EwaybillCancel { gstin: gstin?, target: target?, reason: reason?, remark: remark? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }
}
