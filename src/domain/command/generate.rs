//! `irn.generate`: one e-invoice (NIC schema v1.1) to register, validated whole before any call.
use serde_json::Value;

use super::{CommandBody, ParseOptions, Reader};
use crate::domain::invoice::{validate_invoice, ValidInvoice};
use crate::domain::problem::code;
use crate::domain::{Gstin, Problem};

#[derive(Debug, Clone)]
pub struct Generate {
    pub gstin: Gstin,
    pub invoice: Box<ValidInvoice>,
}

impl CommandBody for Generate {
    fn parse(r: &mut Reader<'_>, opts: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let invoice = match r.body.get("invoice") {
            None | Some(Value::Null) => {
                r.problems.push(Problem::new(
                    "invoice",
                    code::REQUIRED,
                    "'invoice' is required: the NIC e-invoice JSON (schema v1.1)",
                ));
                None
            }
            Some(inv) => {
                match validate_invoice(inv, gstin.as_ref().map(Gstin::as_str), &opts.for_seller(gstin.as_ref())) {
                    Ok(v) => Some(v),
                    Err(ps) => {
                        r.problems.extend(ps.into_iter().map(|mut p| {
                            p.path = if p.path.is_empty() { "invoice".into() } else { format!("invoice.{}", p.path) };
                            p
                        }));
                        None
                    }
                }
            }
        };
        Some(Generate { gstin: gstin?, invoice: Box::new(invoice?) })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }

    fn subject(&self) -> Option<String> {
        Some(self.invoice.key().to_string())
    }
}
