//! Encryption at rest for IRP tokens and SEKs (AES-256-GCM, a fresh nonce per value).
//!
//! `aes-gcm` from RustCrypto rather than anything home-made: authenticated encryption means a
//! wrong key or a tampered row fails loudly instead of yielding garbage credentials.
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// Used only when EINVOICE_TOKEN_KEY is unset (development and the demo); `run` warns about it.
pub const DEV_KEY: [u8; 32] = *b"einvoice-worker-dev-key-NOT-PROD";

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("EINVOICE_TOKEN_KEY must be the base64 encoding of exactly 32 bytes")]
    BadKey,
    #[error("a stored token could not be decrypted: the row is corrupt or EINVOICE_TOKEN_KEY changed")]
    Decrypt,
}

impl SecretBox {
    pub fn from_config(key: Option<&SecretString>) -> Result<SecretBox, SecretBoxError> {
        let bytes: [u8; 32] = match key {
            None => DEV_KEY,
            Some(k) => base64::engine::general_purpose::STANDARD
                .decode(k.expose_secret().trim())
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(SecretBoxError::BadKey)?,
        };
        Ok(SecretBox { cipher: Aes256Gcm::new(&bytes.into()) })
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(self.cipher.encrypt(Nonce::from_slice(&nonce), plain).expect("AES-GCM encryption cannot fail"));
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        if sealed.len() < 12 {
            return Err(SecretBoxError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(12);
        self.cipher.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| SecretBoxError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key_fails() {
        let a = SecretBox::from_config(None).unwrap();
        let sealed = a.seal(b"token-123");
        assert!(!sealed.windows(9).any(|w| w == b"token-123"));
        assert_eq!(a.open(&sealed).unwrap(), b"token-123");
        let key = SecretString::from(base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
        let b = SecretBox::from_config(Some(&key)).unwrap();
        assert!(b.open(&sealed).is_err());
        assert!(SecretBox::from_config(Some(&SecretString::from("short".to_string()))).is_err());
    }
}
