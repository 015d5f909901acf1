//! `ewaybill.generate`: an e-way bill made from an IRN (or the document that has one), or,
//! when the command carries `ewaybill` (a `GENEWAYBILL` document), one made without an IRN.
use super::ewaybill::{parse_generate, parse_transport_field, Transport};
use super::ewaybill_doc::{parse_document, DocRules, EwbDocument};
use super::{CommandBody, ParseOptions, Reader, Target};
use crate::domain::problem::code;
use crate::domain::{Gstin, Problem};

/// What the e-way bill is made from.
#[derive(Debug, Clone)]
pub enum EwbSource {
    /// An IRN (named, or found by its document).
    Irn(Target),
    /// A full e-way bill document, without an IRN (`GENEWAYBILL`).
    Document(Box<EwbDocument>),
}

#[derive(Debug, Clone)]
pub struct EwaybillGenerate {
    pub gstin: Gstin,
    pub source: EwbSource,
    pub transport: Transport,
}

impl CommandBody for EwaybillGenerate {
    fn parse(r: &mut Reader<'_>, opts: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let body = r.body;
        let today = opts.validation.today;
        let rail = opts.validation.rail_doc_rules.active(today);
        // The discriminating field: `ewaybill` (the document) instead of `irn` / `document`.
        if let Some(doc) = body.get("ewaybill").filter(|v| !v.is_null()) {
            for other in ["irn", "document"] {
                if body.get(other).is_some_and(|v| !v.is_null()) {
                    r.problems.push(Problem::new(
                        other,
                        code::QUERY_AMBIGUOUS,
                        format!("send either '{other}' (an e-way bill from an IRN) or 'ewaybill' (one without an IRN), not both"),
                    ));
                }
            }
            let transport = parse_transport_field(body, today, rail, &mut r.problems);
            let rules = DocRules {
                same_pin_distance: opts.validation.same_pin_distance_rule.active(today),
                no_tds_tcs_supplier: opts.validation.tds_tcs_supplier_rule.active(today),
            };
            let relaxed = r.relaxed;
            let doc = parse_document(doc, gstin.as_ref(), transport.as_ref(), today, relaxed, rules, &mut r.problems);
            if !r.problems.is_empty() {
                return None;
            }
            return Some(EwaybillGenerate {
                gstin: gstin?,
                source: EwbSource::Document(Box::new(doc?)),
                transport: transport?,
            });
        }
        let (target, transport) = parse_generate(r, body, today, rail);
        Some(EwaybillGenerate { gstin: gstin?, source: EwbSource::Irn(target?), transport: transport? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }

    fn subject(&self) -> Option<String> {
        Some(match &self.source {
            EwbSource::Irn(t) => t.to_string(),
            EwbSource::Document(d) => format!("{} {} {}", d.doc_type, d.doc_no, d.doc_date),
        })
    }
}
