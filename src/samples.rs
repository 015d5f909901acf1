//! The sample invoices shipped in the repo (NIC schema v1.1, fictitious parties), for the demo,
//! the benchmark and the tests. Their dates are fixed at 01/04/2025; [`stamped`] dates them today.
use serde_json::Value;

/// (file name, JSON text).
pub const SAMPLES: &[(&str, &str)] = &[
    ("b2b-intra-goods", include_str!("../tests/data/sample-invoices/b2b-intra-goods.json")),
    ("b2b-inter-goods-ewb", include_str!("../tests/data/sample-invoices/b2b-inter-goods-ewb.json")),
    ("b2b-inter-services", include_str!("../tests/data/sample-invoices/b2b-inter-services.json")),
    ("export-with-payment", include_str!("../tests/data/sample-invoices/export-with-payment.json")),
    ("sez-without-payment", include_str!("../tests/data/sample-invoices/sez-without-payment.json")),
    ("credit-note", include_str!("../tests/data/sample-invoices/credit-note.json")),
    ("debit-note", include_str!("../tests/data/sample-invoices/debit-note.json")),
    ("b2b-30-items-roundoff", include_str!("../tests/data/sample-invoices/b2b-30-items-roundoff.json")),
];

/// Today's date in India, as the IRP sees it, in `dd/MM/yyyy`.
pub fn india_today() -> String {
    crate::domain::document::india_today().format("%d/%m/%Y").to_string()
}

/// A sample by name, dated today, optionally with another document number.
pub fn stamped(name: &str, doc_number: Option<&str>) -> Value {
    let text =
        SAMPLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).unwrap_or_else(|| panic!("no sample named {name}"));
    let mut v: Value = serde_json::from_str(text).expect("samples are valid JSON");
    v["DocDtls"]["Dt"] = Value::String(india_today());
    if let Some(n) = doc_number {
        v["DocDtls"]["No"] = Value::String(n.to_string());
    }
    v
}

/// The seller GSTIN of a sample.
pub fn seller(v: &Value) -> String {
    v["SellerDtls"]["Gstin"].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::invoice::{validate_invoice, ValidationOptions};

    #[test]
    fn every_stamped_sample_validates_today() {
        for (name, _) in SAMPLES {
            let v = stamped(name, None);
            if let Err(p) = validate_invoice(&v, None, &ValidationOptions::default()) {
                panic!("{name}: {p:?}");
            }
        }
    }
}
