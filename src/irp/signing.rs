//! The IRP's signing key: loading it, and verifying SignedInvoice / SignedQRCode with it.
//!
//! Both protocols carry NIC's RS256-signed JWTs (the GSP passes them through), so both verify
//! them the same way when `signing_key_pem` / `signing_key_file` is configured for a GSTIN.
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
) -> Result<Option<RsaPublicKey>, IrpError> {
    let pem = pem.filter(|p| !p.trim().is_empty());
    let file = file.filter(|p| !p.trim().is_empty());
    if let Some(pem) = pem {
        return nic_crypto::parse_public_key_pem(pem).map(Some).map_err(|e| {
            IrpError::Config(format!("GSTIN {gstin}: `gstins.{gstin}.{pem_key}` is not a usable RSA public key: {e}"))
        });
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| {
        IrpError::Config(format!("GSTIN {gstin}: cannot read `gstins.{gstin}.{file_key}` '{path}': {e}"))
    })?;
    nic_crypto::parse_public_key_pem(&text).map(Some).map_err(|e| {
        IrpError::Config(format!(
            "GSTIN {gstin}: `gstins.{gstin}.{file_key}` '{path}' does not hold a usable RSA public key: {e}"
        ))
    })
}

/// The optional signing key of a GSTIN's configuration.
pub fn signing_key(gstin: &str, cfg: &GstinConfig) -> Result<Option<RsaPublicKey>, IrpError> {
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
