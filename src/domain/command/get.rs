//! `irn.get`: an IRN's details, named by IRN or document.
use super::{CommandBody, ParseOptions, Reader, Target};
use crate::domain::Gstin;

#[derive(Debug, Clone)]
pub struct Get {
    pub gstin: Gstin,
    pub target: Target,
}

impl CommandBody for Get {
    fn parse(r: &mut Reader<'_>, _: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let target = r.target();
        Some(Get { gstin: gstin?, target: target? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }

    fn subject(&self) -> Option<String> {
        Some(self.target.to_string())
    }
}
