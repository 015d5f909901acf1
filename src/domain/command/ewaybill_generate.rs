//! `ewaybill.generate`: an e-way bill made from an IRN (or the document that has one).
use super::ewaybill::{parse_generate, Transport};
use super::{CommandBody, ParseOptions, Reader, Target};
use crate::domain::Gstin;

#[derive(Debug, Clone)]
pub struct EwaybillGenerate {
    pub gstin: Gstin,
    pub target: Target,
    pub transport: Transport,
}

impl CommandBody for EwaybillGenerate {
    fn parse(r: &mut Reader<'_>, opts: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let body = r.body;
        let (target, transport) = parse_generate(
            r,
            body,
            opts.validation.today,
            opts.validation.rail_doc_rules.active(opts.validation.today),
        );
        Some(EwaybillGenerate { gstin: gstin?, target: target?, transport: transport? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }

    fn subject(&self) -> Option<String> {
        Some(self.target.to_string())
    }
}
