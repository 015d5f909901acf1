//! `ewaybill.get`: the e-way bill made from an IRN.
use super::{CommandBody, ParseOptions, Reader};
use crate::domain::Gstin;

#[derive(Debug, Clone)]
pub struct EwaybillGet {
    pub gstin: Gstin,
    pub irn: String,
}

impl CommandBody for EwaybillGet {
    fn parse(r: &mut Reader<'_>, _: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let irn = r.req_irn("irn");
        Some(EwaybillGet { gstin: gstin?, irn: irn? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }

    fn subject(&self) -> Option<String> {
        Some(self.irn.clone())
    }
}
