//! Encryption at rest for IRP tokens and SEKs (AES-256-GCM, a fresh nonce per value).
//!
//! `aes-gcm` from RustCrypto rather than anything home-made: authenticated encryption means a
//! wrong key or a tampered row fails loudly instead of yielding garbage credentials.
//!
//! Key rotation: `EINVOICE_TOKEN_KEY` is one key or a comma-separated list. The first key
//! encrypts; every key in the list decrypts, so rows written under the previous key stay
//! readable while its tokens live (a token lasts at most 6 hours; rows are re-encrypted under
//! the first key at their next refresh).
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The built-in development key (the configuration owns it: it refuses it for production GSTINs).
pub use crate::config::DEV_TOKEN_KEY as DEV_KEY;

#[derive(Clone)]
pub struct SecretBox {
    /// Never empty: `[0]` encrypts, all decrypt.
    ciphers: Vec<Aes256Gcm>,
    /// HMAC keys derived from the same keys (never the keys themselves): `[0]` tags, all verify.
    mac_keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox({} key(s), redacted)", self.ciphers.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    /// `position` is 1-based; the key itself is never printed.
    #[error(
        "EINVOICE_TOKEN_KEY: key {position} of {count} is not the base64 encoding of exactly 32 bytes \
         (give one key, or a comma-separated list whose first key encrypts and all keys decrypt)"
    )]
    BadKey { position: usize, count: usize },
    #[error(
        "a stored token could not be decrypted with any EINVOICE_TOKEN_KEY: the row is corrupt or the key changed"
    )]
    Decrypt,
}

impl SecretBox {
    pub fn from_config(key: Option<&SecretString>) -> Result<SecretBox, SecretBoxError> {
        let keys: Vec<[u8; 32]> = match key {
            None => vec![DEV_KEY],
            Some(k) => {
                let parts: Vec<&str> = k.expose_secret().split(',').map(str::trim).collect();
                let count = parts.len();
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        base64::engine::general_purpose::STANDARD
                            .decode(p)
                            .ok()
                            .and_then(|v| v.try_into().ok())
                            .ok_or(SecretBoxError::BadKey { position: i + 1, count })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        // A separate key for tags: SHA-256 of a label and the key, so no value is ever both
        // encrypted and authenticated under the same key.
        let mac_keys = keys
            .iter()
            .map(|k| Sha256::new().chain_update(b"einvoice-worker tag\0").chain_update(k).finalize().into())
            .collect();
        Ok(SecretBox { ciphers: keys.iter().map(|k| Aes256Gcm::new(k.into())).collect(), mac_keys })
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(self.ciphers[0].encrypt(Nonce::from_slice(&nonce), plain).expect("AES-GCM encryption cannot fail"));
        out
    }

    /// An HMAC-SHA256 tag of `data` under the first key (hex): lets the worker recognise what it
    /// published itself (a batch's members, a rescheduled command's publisher).
    pub fn tag(&self, data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_keys[0]).expect("HMAC takes any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Is `tag` a tag of `data` under any of the keys? (Constant-time comparison.)
    pub fn verify_tag(&self, data: &[u8], tag: &str) -> bool {
        let Ok(tag) = hex::decode(tag) else { return false };
        self.mac_keys.iter().any(|k| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k).expect("HMAC takes any key length");
            mac.update(data);
            mac.verify_slice(&tag).is_ok()
        })
    }

    /// Decrypt with the first key that authenticates the value.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        self.open_current(sealed).map(|(plain, _)| plain)
    }

    /// Decrypt, and say whether the value is sealed under the encrypting (first) key: `false`
    /// means an older key of the list opened it, and the value should be sealed again.
    pub fn open_current(&self, sealed: &[u8]) -> Result<(Vec<u8>, bool), SecretBoxError> {
        if sealed.len() < 12 {
            return Err(SecretBoxError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(12);
        self.ciphers
            .iter()
            .enumerate()
            .find_map(|(i, c)| c.decrypt(Nonce::from_slice(nonce), ct).ok().map(|p| (p, i == 0)))
            .ok_or(SecretBoxError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([b; 32])
    }

    fn sbox(s: &str) -> Result<SecretBox, SecretBoxError> {
        SecretBox::from_config(Some(&SecretString::from(s.to_string())))
    }

    #[test]
    fn round_trip_and_wrong_key_fails() {
        let a = SecretBox::from_config(None).unwrap();
        let sealed = a.seal(b"token-123");
        assert!(!sealed.windows(9).any(|w| w == b"token-123"));
        assert_eq!(a.open(&sealed).unwrap(), b"token-123");
        let b = sbox(&key(7)).unwrap();
        assert!(b.open(&sealed).is_err());
        assert!(matches!(sbox("short"), Err(SecretBoxError::BadKey { position: 1, count: 1 })));
    }

    #[test]
    fn tags_verify_under_any_key_and_only_for_their_data() {
        let old = sbox(&key(1)).unwrap();
        let both = sbox(&format!("{},{}", key(2), key(1))).unwrap();
        let t = old.tag(b"batch:B1:0");
        assert!(old.verify_tag(b"batch:B1:0", &t));
        assert!(both.verify_tag(b"batch:B1:0", &t), "an older key still verifies");
        assert!(!old.verify_tag(b"batch:B1:1", &t));
        assert!(!sbox(&key(3)).unwrap().verify_tag(b"batch:B1:0", &t));
        assert!(!old.verify_tag(b"batch:B1:0", "not hex"));
    }

    #[test]
    fn rotation_first_key_encrypts_all_decrypt() {
        let old = sbox(&key(1)).unwrap();
        let sealed_old = old.seal(b"old-token");
        let rotated = sbox(&format!("{}, {}", key(2), key(1))).unwrap();
        assert_eq!(rotated.open(&sealed_old).unwrap(), b"old-token");
        assert!(!rotated.open_current(&sealed_old).unwrap().1, "sealed under an older key");
        assert!(rotated.open_current(&rotated.seal(b"x")).unwrap().1);
        let sealed_new = rotated.seal(b"new-token");
        assert!(old.open(&sealed_new).is_err(), "the first key in the list encrypts");
        assert_eq!(sbox(&key(2)).unwrap().open(&sealed_new).unwrap(), b"new-token");
        let err = sbox(&format!("{},not-a-key", key(2))).unwrap_err().to_string();
        assert!(err.contains("key 2 of 2") && !err.contains(&key(2)), "{err}");
    }
}
