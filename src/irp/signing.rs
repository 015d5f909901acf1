//! The IRP's signing key: loading it, and verifying SignedInvoice / SignedQRCode with it.
//!
//! Both protocols carry NIC's RS256-signed JWTs (the GSP passes them through), so both verify
//! them the same way when `signing_key_pem` / `signing_key_file` is configured for a GSTIN.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rsa::RsaPublicKey;
use serde_json::Value;

use super::{jwt, nic_crypto, IrnData, IrpError};
use crate::config::GstinConfig;

/// Load an RSA public key from the inline PEM (preferred when both are set) or the file.
/// `Ok(None)` when neither is set.
pub fn load_public_key(
    gstin: &str,
    pem: Option<&str>,
    file: Option<&str>,
    pem_key: &str,
    file_key: &str,
) -> Result<Option<Arc<RsaPublicKey>>, IrpError> {
    let pem = pem.filter(|p| !p.trim().is_empty());
    let file = file.filter(|p| !p.trim().is_empty());
    if let Some(pem) = pem {
        return shared_key(pem).map(Some).map_err(|e| {
            IrpError::Config(format!("GSTIN {gstin}: `gstins.{gstin}.{pem_key}` is not a usable RSA public key: {e}"))
        });
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| {
        IrpError::Config(format!("GSTIN {gstin}: cannot read `gstins.{gstin}.{file_key}` '{path}': {e}"))
    })?;
    shared_key(&text).map(Some).map_err(|e| {
        IrpError::Config(format!(
            "GSTIN {gstin}: `gstins.{gstin}.{file_key}` '{path}' does not hold a usable RSA public key: {e}"
        ))
    })
}

/// The key a PEM text holds, parsed once per process: thousands of GSTINs of one IRP carry the
/// same public and signing keys (issue 27), so they share one parsed copy instead of parsing
/// and keeping one each. Keyed by the text itself, so a changed key (a key file replaced, a
/// section updated) is parsed afresh. Only keys that parse are kept, and the distinct keys of
/// a deployment are a handful (one or two per IRP).
fn shared_key(pem: &str) -> Result<Arc<RsaPublicKey>, nic_crypto::CryptoError> {
    static PARSED: Mutex<Option<HashMap<String, Arc<RsaPublicKey>>>> = Mutex::new(None);
    if let Some(k) = PARSED.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).get(pem) {
        return Ok(k.clone());
    }
    // Parsed outside the lock; two first uses at once parse twice and keep one.
    let key = Arc::new(nic_crypto::parse_public_key_pem(pem)?);
    let mut map = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    Ok(map.get_or_insert_with(HashMap::new).entry(pem.to_string()).or_insert(key).clone())
}

/// The optional signing key of a GSTIN's configuration.
pub fn signing_key(gstin: &str, cfg: &GstinConfig) -> Result<Option<Arc<RsaPublicKey>>, IrpError> {
    load_public_key(
        gstin,
        cfg.signing_key_pem.as_deref(),
        cfg.signing_key_file.as_deref(),
        "signing_key_pem",
        "signing_key_file",
    )
}

/// Verify `SignedInvoice` and `SignedQRCode` (those present) against `key`, and that each is
/// signed for the IRN the answer names. Without a key, nothing is checked.
pub fn verify_irn_signatures(key: Option<&RsaPublicKey>, gstin: &str, d: &IrnData) -> Result<(), IrpError> {
    let Some(key) = key else {
        return Ok(());
    };
    for (name, token) in [("SignedInvoice", &d.signed_invoice), ("SignedQRCode", &d.signed_qr_code)] {
        let Some(token) = token else { continue };
        let payload = jwt::verify(token, key).map_err(|e| {
            IrpError::Signature(format!(
                "the {name} signature does not verify against the signing key configured for GSTIN {gstin}: {e}"
            ))
        })?;
        if let Some(irn) = payload.data.get("Irn").and_then(Value::as_str) {
            if !irn.eq_ignore_ascii_case(&d.irn) {
                return Err(IrpError::Signature(format!(
                    "the {name} is signed for IRN {irn}, but the answer is for IRN {}",
                    d.irn
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27: GSTINs configured with one key share one parsed copy; a bad key is refused
    /// every time (never kept).
    #[test]
    fn one_key_text_is_parsed_once_and_shared() {
        let pem = crate::sim::core::NIC_PUBLIC_PEM;
        let a = load_public_key("29AAGCP4821K1Z3", Some(pem), None, "public_key_pem", "public_key_file").unwrap();
        let b = load_public_key("27AAKFU7303M1ZP", Some(pem), None, "public_key_pem", "public_key_file").unwrap();
        assert!(Arc::ptr_eq(&a.unwrap(), &b.unwrap()));
        for _ in 0..2 {
            let e = load_public_key("29AAGCP4821K1Z3", Some("not a key"), None, "public_key_pem", "f").unwrap_err();
            assert!(e.to_string().contains("is not a usable RSA public key"), "{e}");
        }
    }
}
