//! `gstin.details`: another taxpayer's registration details, as the IRP has them.
use super::{CommandBody, ParseOptions, Reader};
use crate::domain::Gstin;

#[derive(Debug, Clone)]
pub struct GstinDetails {
    pub gstin: Gstin,
    pub target_gstin: Gstin,
}

impl CommandBody for GstinDetails {
    fn parse(r: &mut Reader<'_>, _: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let target_gstin = r.gstin("target_gstin", true);
        Some(GstinDetails { gstin: gstin?, target_gstin: target_gstin? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }
}
