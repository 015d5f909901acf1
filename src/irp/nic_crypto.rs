//! The cryptography of the NIC IRP direct API (e-invoice v1.03/v1.04).
//!
//! # The protocol in brief
//!
//! 1. **Auth** (`POST /eivital/v1.04/auth`). The client makes an [`AppKey`]: 32 random bytes.
//!    It builds the JSON `{"UserName","Password","AppKey":<base64 AppKey>,"ForceRefreshAccessToken"}`
//!    in that order, base64-encodes it, and RSA-encrypts the **base64 text** (not the JSON) with NIC's
//!    public key, using PKCS#1 v1.5 padding. The body is `{"Data": base64(ciphertext)}`
//!    ([`encrypt_auth_request`]).
//! 2. **SEK**. The auth response is not encrypted. It carries `AuthToken` and `Sek`, where
//!    `Sek = base64(AES-256-ECB/PKCS7(key = AppKey, plaintext = the 32 raw SEK bytes))`.
//!    [`decrypt_sek`] recovers the 32-byte Session Encryption Key.
//! 3. **Every other call**. The request body is `{"Data": base64(AES-256-ECB/PKCS7(SEK, utf8(json)))}`
//!    ([`encrypt_json_b64`]). The response `Data` is encrypted the same way ([`decrypt_json_b64`]).
//! 4. **Rek/Hmac, optional**. A response may also carry `Rek`, the response key encrypted with the SEK.
//!    In that case `Data` is encrypted with the REK, not the SEK. It may also carry `Hmac`:
//!    `base64(HMAC-SHA256(key = REK, msg = base64(plaintext) as ASCII))`. [`decrypt_response_data`]
//!    handles every case.
//!
//! A wrong key for AES shows up as a PKCS#7 padding failure ([`CryptoError::BadPadding`]): a wrong
//! AppKey when decrypting `Sek`, or a stale SEK (from an older auth) when decrypting `Data`.
//! About 1 wrong key in 256 happens to produce valid padding. The callers catch those cases too:
//! the SEK length check, the JSON parse, or the HMAC.
//!
//! All base64 here is standard base64 with padding (RFC 4648 §4), as NIC uses it.
//! Surrounding whitespace is ignored when decoding.
//!
//! The functions marked "simulator side" do the IRP's half of the protocol, for the local IRP simulator and for tests.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyInit};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, RngCore};
use rsa::{
    pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey},
    pkcs8::{DecodePrivateKey, DecodePublicKey},
    traits::PublicKeyParts,
    Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey,
};
use secrecy::{zeroize::Zeroizing, ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

type Aes256EcbEnc = ecb::Encryptor<aes::Aes256>;
type Aes256EcbDec = ecb::Decryptor<aes::Aes256>;
type HmacSha256 = Hmac<Sha256>;

/// AES block size in bytes: an AES-ECB ciphertext is a positive multiple of this.
const AES_BLOCK: usize = 16;
/// PKCS#1 v1.5 encryption padding takes 11 bytes of the modulus.
const PKCS1V15_OVERHEAD: usize = 11;

/// What went wrong in the NIC crypto, and why it probably happened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A field that should hold standard base64 does not.
    #[error("invalid base64 in {what}: {source} (the value is truncated, URL-safe encoded, or not base64 at all)")]
    Base64 {
        /// Which value failed, e.g. "Sek" or "response Data".
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// An RSA key could not be parsed from PEM.
    #[error("could not parse {what}: {detail}")]
    KeyParse {
        /// "RSA public key" or "RSA private key".
        what: &'static str,
        /// What was wrong, and what is accepted.
        detail: String,
    },
    /// The base64 auth JSON does not fit in one RSA PKCS#1 v1.5 block.
    #[error(
        "RSA plaintext too long: the base64 auth payload is {len} bytes but a {bits}-bit key with \
         PKCS#1 v1.5 padding takes at most {max}; the user name or password is too long, or the IRP public key is too small"
    )]
    RsaPlaintextTooLong {
        /// Length of the base64 auth payload.
        len: usize,
        /// The most the key can encrypt.
        max: usize,
        /// Modulus size in bits.
        bits: usize,
    },
    /// The RSA library rejected the encryption.
    #[error("RSA encryption failed: wrong or malformed IRP public key ({0})")]
    RsaEncrypt(#[source] rsa::Error),
    /// RSA decryption of an auth request failed (simulator side).
    #[error(
        "RSA decryption of the auth request failed: it was encrypted with a different public key \
         than this private key's (sandbox vs production?), or the Data is corrupt ({0})"
    )]
    RsaDecrypt(#[source] rsa::Error),
    /// The ciphertext cannot be AES-ECB output.
    #[error(
        "AES ciphertext of {len} bytes is not a positive multiple of 16: the base64 Data/Sek/Rek is \
         truncated or was not produced by AES-256-ECB"
    )]
    BadCiphertextLength {
        /// Length after base64 decoding.
        len: usize,
    },
    /// PKCS#7 padding was invalid after decryption: the key is wrong.
    #[error(
        "AES-256-ECB decryption failed the PKCS#7 padding check: wrong key (the AppKey for Sek, the SEK \
         for Data/Rek, the REK for Data when Rek is sent); most often a stale SEK from an earlier auth"
    )]
    BadPadding,
    /// A decrypted key (SEK or REK) is not 32 bytes long.
    #[error("decrypted {what} is {len} bytes, expected 32: wrong AppKey/SEK, or the value is not a NIC key")]
    BadKeyLength {
        /// "Sek", "Rek" or "AppKey".
        what: &'static str,
        /// Its actual length.
        len: usize,
    },
    /// The response HMAC does not match the decrypted data.
    #[error(
        "HMAC mismatch: the response Data was altered in transit, or was decrypted with a different \
         REK than the one the Hmac was computed with"
    )]
    HmacMismatch,
    /// The response carries an Hmac but no Rek to key it with.
    #[error("response has Hmac but no Rek: the HMAC is keyed with the REK, so it cannot be verified")]
    HmacWithoutRek,
    /// A decrypted value is not UTF-8 text.
    #[error(
        "decrypted {what} is not UTF-8 ({source}): wrong key that happened to pass the padding check, or corrupt data"
    )]
    Utf8 {
        /// Which value failed.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// A decrypted value is not the JSON we expected.
    #[error(
        "decrypted {what} is not the expected JSON ({source}): wrong key that happened to pass the \
         padding check, or the IRP sent something else"
    )]
    Json {
        /// Which value failed.
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// AppKey
// ---------------------------------------------------------------------------------------------

/// The client's 32-byte AES key for one auth exchange. NIC encrypts the SEK with it.
///
/// The bytes are kept in a [`SecretBox`] (zeroized on drop), and `Debug` does not print them.
pub struct AppKey(SecretBox<[u8; 32]>);

impl AppKey {
    /// A fresh key from the OS CSPRNG. Use a new one for every auth call.
    pub fn random() -> Self {
        Self(SecretBox::init_with_mut(|k: &mut [u8; 32]| OsRng.fill_bytes(k)))
    }

    /// Wraps existing key bytes (tests, or the simulator after [`decrypt_auth_request`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut bytes = Zeroizing::new(bytes);
        Self(SecretBox::init_with_mut(|k: &mut [u8; 32]| {
            k.copy_from_slice(&bytes[..]);
            secrecy::zeroize::Zeroize::zeroize(&mut *bytes);
        }))
    }

    /// Parses the base64 form sent in the auth JSON (44 characters).
    pub fn from_base64(b64: &str) -> Result<Self, CryptoError> {
        let raw = Zeroizing::new(b64_decode("AppKey", b64)?);
        let arr: [u8; 32] =
            raw[..].try_into().map_err(|_| CryptoError::BadKeyLength { what: "AppKey", len: raw.len() })?;
        Ok(Self::from_bytes(arr))
    }

    /// The standard-base64 form NIC expects in the `AppKey` field (44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.expose_secret())
    }

    /// The raw key bytes.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl Clone for AppKey {
    fn clone(&self) -> Self {
        Self::from_bytes(*self.expose_bytes())
    }
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey([REDACTED])")
    }
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// Parses an RSA public key (NIC's encryption key, or a signing key for [`crate::irp::jwt`]).
///
/// Accepted forms:
/// * SPKI PEM `-----BEGIN PUBLIC KEY-----`, which is how NIC distributes its key;
/// * PKCS#1 PEM `-----BEGIN RSA PUBLIC KEY-----`;
/// * bare base64 of the DER (SPKI or PKCS#1), without PEM armour;
/// * any of these with literal `\n` escapes, as a key often arrives when pasted into an environment variable.
///
/// An X.509 `-----BEGIN CERTIFICATE-----` PEM is **not** supported. Extract the key first with
/// `openssl x509 -in cert.pem -pubkey -noout`.
pub fn parse_public_key_pem(pem: &str) -> Result<RsaPublicKey, CryptoError> {
    let pem = normalise_pem(pem);
    let err = |detail: String| CryptoError::KeyParse { what: "RSA public key", detail };
    if pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(err("an X.509 CERTIFICATE PEM is not supported; extract the key with \
             `openssl x509 -in cert.pem -pubkey -noout` and use that PUBLIC KEY PEM"
            .into()));
    }
    if pem.contains("-----BEGIN RSA PUBLIC KEY-----") {
        return RsaPublicKey::from_pkcs1_pem(&pem)
            .map_err(|e| err(format!("malformed PKCS#1 RSA PUBLIC KEY PEM: {e}")));
    }
    if pem.contains("-----BEGIN PUBLIC KEY-----") {
        return RsaPublicKey::from_public_key_pem(&pem)
            .map_err(|e| err(format!("malformed SPKI PUBLIC KEY PEM (or not an RSA key): {e}")));
    }
    if pem.contains("-----BEGIN") {
        return Err(err("unsupported PEM label; expected PUBLIC KEY (SPKI) or RSA PUBLIC KEY (PKCS#1)".into()));
    }
    let der: String = pem.split_whitespace().collect();
    let der = STANDARD
        .decode(der)
        .map_err(|e| err(format!("no PEM armour, and not bare base64 DER either ({e}); expected a PUBLIC KEY PEM")))?;
    RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|e| err(format!("bare base64 is neither SPKI nor PKCS#1 RSA DER: {e}")))
}

/// Parses an RSA private key (the simulator's decryption key, or a JWT signing key).
///
/// Accepts unencrypted PKCS#8 `-----BEGIN PRIVATE KEY-----` and PKCS#1 `-----BEGIN RSA PRIVATE KEY-----`.
/// Literal `\n` escapes are allowed. Encrypted PKCS#8 is not supported.
pub fn parse_private_key_pem(pem: &str) -> Result<RsaPrivateKey, CryptoError> {
    let pem = normalise_pem(pem);
    let err = |detail: String| CryptoError::KeyParse { what: "RSA private key", detail };
    if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(&pem).map_err(|e| err(format!("malformed PKCS#1 RSA PRIVATE KEY PEM: {e}")))
    } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs8_pem(&pem)
            .map_err(|e| err(format!("malformed PKCS#8 PRIVATE KEY PEM (or not an RSA key): {e}")))
    } else if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        Err(err("encrypted PKCS#8 is not supported; decrypt it with `openssl pkcs8 -in k.pem -nocrypt -topk8`".into()))
    } else {
        Err(err("expected a PRIVATE KEY (PKCS#8) or RSA PRIVATE KEY (PKCS#1) PEM".into()))
    }
}

/// Trims the PEM text, turns literal `\n` escapes into newlines, and drops `\r`.
fn normalise_pem(pem: &str) -> String {
    let mut s = pem.trim().to_owned();
    if !s.contains('\n') && s.contains("\\n") {
        s = s.replace("\\n", "\n");
    }
    s.replace('\r', "")
}

// ---------------------------------------------------------------------------------------------
// Auth request (RSA)
// ---------------------------------------------------------------------------------------------

/// The auth JSON. The field order is NIC's documented one, and serde keeps declaration order.
#[derive(Serialize, Deserialize)]
struct AuthPayload<'a> {
    #[serde(rename = "UserName")]
    user_name: std::borrow::Cow<'a, str>,
    #[serde(rename = "Password")]
    password: std::borrow::Cow<'a, str>,
    #[serde(rename = "AppKey")]
    app_key: std::borrow::Cow<'a, str>,
    #[serde(rename = "ForceRefreshAccessToken")]
    force_refresh: bool,
}

/// Builds the plaintext auth JSON, before base64 and RSA.
fn auth_request_json(user_name: &str, password: &str, app_key: &AppKey, force_refresh: bool) -> Zeroizing<String> {
    let app_key_b64 = Zeroizing::new(app_key.to_base64());
    let payload = AuthPayload {
        user_name: user_name.into(),
        password: password.into(),
        app_key: app_key_b64.as_str().into(),
        force_refresh,
    };
    // Serializing a struct of strings and a bool into a String cannot fail.
    Zeroizing::new(serde_json::to_string(&payload).unwrap_or_default())
}

/// Encrypts the v1.04 auth request. The result is the `Data` value of the `POST …/auth` body.
///
/// `Data = base64(RSA-PKCS1v1.5-encrypt(public_key, ascii(base64(utf8(json)))))`, where `json` is
/// `{"UserName","Password","AppKey","ForceRefreshAccessToken"}` in that order.
/// PKCS#1 v1.5 is randomised, so two calls give different outputs.
///
/// With a 2048-bit key the base64 text must be at most 245 bytes. That leaves about 40 bytes for user name
/// and password together. [`CryptoError::RsaPlaintextTooLong`] says so, rather than an opaque RSA error.
pub fn encrypt_auth_request(
    public_key: &RsaPublicKey,
    user_name: &str,
    password: &str,
    app_key: &AppKey,
    force_refresh: bool,
) -> Result<String, CryptoError> {
    let json = auth_request_json(user_name, password, app_key, force_refresh);
    let plain = Zeroizing::new(STANDARD.encode(json.as_bytes()));
    let max = public_key.size().saturating_sub(PKCS1V15_OVERHEAD);
    if plain.len() > max {
        return Err(CryptoError::RsaPlaintextTooLong { len: plain.len(), max, bits: public_key.n().bits() });
    }
    let cipher = public_key.encrypt(&mut OsRng, Pkcs1v15Encrypt, plain.as_bytes()).map_err(CryptoError::RsaEncrypt)?;
    Ok(STANDARD.encode(cipher))
}

/// A decrypted auth request, as the IRP sees it (simulator side).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// `UserName`.
    pub user_name: String,
    /// `Password`, in plain text.
    pub password: String,
    /// The raw 32 `AppKey` bytes, with which the IRP encrypts the SEK.
    pub app_key: [u8; 32],
    /// `ForceRefreshAccessToken`.
    pub force_refresh: bool,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("user_name", &self.user_name)
            .field("password", &"[REDACTED]")
            .field("app_key", &"[REDACTED]")
            .field("force_refresh", &self.force_refresh)
            .finish()
    }
}

/// Reverses [`encrypt_auth_request`] with the IRP's private key (simulator side).
///
/// Note: the `rsa` crate's PKCS#1 v1.5 decryption is not constant-time (RUSTSEC-2023-0071, "Marvin").
/// That does not matter for a local simulator. Do not expose it as a decryption oracle to the network.
pub fn decrypt_auth_request(private_key: &RsaPrivateKey, data_b64: &str) -> Result<AuthRequest, CryptoError> {
    let cipher = b64_decode("auth request Data", data_b64)?;
    let plain = Zeroizing::new(private_key.decrypt(Pkcs1v15Encrypt, &cipher).map_err(CryptoError::RsaDecrypt)?);
    let json = Zeroizing::new(b64_decode_bytes("auth request RSA plaintext", &plain)?);
    let payload: AuthPayload<'_> =
        serde_json::from_slice(&json).map_err(|source| CryptoError::Json { what: "auth request", source })?;
    let app_key = AppKey::from_base64(&payload.app_key)?;
    Ok(AuthRequest {
        user_name: payload.user_name.into_owned(),
        password: payload.password.into_owned(),
        app_key: *app_key.expose_bytes(),
        force_refresh: payload.force_refresh,
    })
}

// ---------------------------------------------------------------------------------------------
// AES-256-ECB / PKCS#7
// ---------------------------------------------------------------------------------------------

/// AES-256-ECB with PKCS#7 padding, as NIC uses for Sek, Rek and Data. Deterministic: no IV.
pub fn aes_encrypt(key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    Aes256EcbEnc::new(key.into()).encrypt_padded_vec_mut::<Pkcs7>(plain)
}

/// Reverses [`aes_encrypt`]. Invalid padding gives [`CryptoError::BadPadding`]: the key is wrong.
pub fn aes_decrypt(key: &[u8; 32], cipher: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if cipher.is_empty() || cipher.len() % AES_BLOCK != 0 {
        return Err(CryptoError::BadCiphertextLength { len: cipher.len() });
    }
    Aes256EcbDec::new(key.into()).decrypt_padded_vec_mut::<Pkcs7>(cipher).map_err(|_| CryptoError::BadPadding)
}

/// Encrypts a request body for any call after auth: `base64(AES(sek, compact JSON))`.
/// Send it as `{"Data": <this>}`.
pub fn encrypt_json_b64(sek: &[u8; 32], value: &Value) -> String {
    encrypt_b64(sek, value.to_string().as_bytes())
}

/// [`encrypt_json_b64`] of JSON already serialised.
pub fn encrypt_b64(sek: &[u8; 32], json: &[u8]) -> String {
    STANDARD.encode(aes_encrypt(sek, json))
}

/// Decrypts a response `Data` string (or a request body, on the simulator side) encrypted with `sek`.
pub fn decrypt_json_b64(sek: &[u8; 32], data_b64: &str) -> Result<Value, CryptoError> {
    let cipher = b64_decode("Data", data_b64)?;
    let plain = aes_decrypt(sek, &cipher)?;
    parse_json("Data", plain)
}

/// Decrypts the auth response's `Sek` with the AppKey, and gives the 32-byte Session Encryption Key.
pub fn decrypt_sek(app_key: &AppKey, sek_b64: &str) -> Result<[u8; 32], CryptoError> {
    decrypt_key(app_key.expose_bytes(), "Sek", sek_b64)
}

/// Encrypts a SEK with the client's AppKey for the auth response (simulator side).
pub fn encrypt_sek(app_key: &AppKey, sek: &[u8; 32]) -> String {
    STANDARD.encode(aes_encrypt(app_key.expose_bytes(), sek))
}

/// Decrypts a wrapped 32-byte key (Sek or Rek) and checks its length.
fn decrypt_key(key: &[u8; 32], what: &'static str, b64: &str) -> Result<[u8; 32], CryptoError> {
    let cipher = b64_decode(what, b64)?;
    let plain = Zeroizing::new(aes_decrypt(key, &cipher)?);
    plain[..].try_into().map_err(|_| CryptoError::BadKeyLength { what, len: plain.len() })
}

// ---------------------------------------------------------------------------------------------
// Rek / Hmac
// ---------------------------------------------------------------------------------------------

/// Decrypts a response's `Data`, using `Rek` and checking `Hmac` when they are present.
///
/// * No `Rek`: `Data` is decrypted with the SEK.
/// * `Rek`: `REK = AES-decrypt(sek, base64-decode(Rek))`, which must be 32 bytes. `Data` is decrypted with the REK.
/// * `Hmac`: it must equal `base64(HMAC-SHA256(key = REK, msg = base64(plaintext) as ASCII))`,
///   which is india-compliance's construction. The comparison is constant-time.
///   If it differs, the result is [`CryptoError::HmacMismatch`]. If there is `Hmac` but no `Rek`,
///   the result is [`CryptoError::HmacWithoutRek`].
///
/// An empty or whitespace-only `Rek`/`Hmac` counts as absent, because some responses send `""`.
pub fn decrypt_response_data(
    sek: &[u8; 32],
    data_b64: &str,
    rek_b64: Option<&str>,
    hmac_b64: Option<&str>,
) -> Result<Value, CryptoError> {
    let rek = present(rek_b64).map(|r| decrypt_key(sek, "Rek", r).map(Zeroizing::new)).transpose()?;
    let key: &[u8; 32] = rek.as_deref().unwrap_or(sek);

    let cipher = b64_decode("response Data", data_b64)?;
    let plain = aes_decrypt(key, &cipher)?;

    if let Some(hmac_b64) = present(hmac_b64) {
        let rek = rek.as_deref().ok_or(CryptoError::HmacWithoutRek)?;
        let expected = b64_decode("Hmac", hmac_b64)?;
        hmac_over_b64(rek, &plain).verify_slice(&expected).map_err(|_| CryptoError::HmacMismatch)?;
    }
    parse_json("response Data", plain)
}

/// Encrypts a response the Rek way (simulator side), and returns `(Data, Rek, Hmac)`, all base64.
///
/// It makes a fresh random REK, encrypts `value` with it, wraps the REK with the SEK, and computes the HMAC
/// as [`decrypt_response_data`] checks it.
pub fn encrypt_response_with_rek(sek: &[u8; 32], value: &Value) -> (String, String, String) {
    let mut rek = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut rek[..]);
    let plain = value.to_string();
    let data_b64 = STANDARD.encode(aes_encrypt(&rek, plain.as_bytes()));
    let rek_b64 = STANDARD.encode(aes_encrypt(sek, &rek[..]));
    let hmac_b64 = STANDARD.encode(hmac_over_b64(&rek, plain.as_bytes()).finalize().into_bytes());
    (data_b64, rek_b64, hmac_b64)
}

/// `HMAC-SHA256(key, ascii(base64(plain)))`, not yet finalised.
fn hmac_over_b64(key: &[u8; 32], plain: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(STANDARD.encode(plain).as_bytes());
    mac
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `None` for an absent, empty or whitespace-only optional field.
fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.trim().is_empty())
}

fn b64_decode(what: &'static str, s: &str) -> Result<Vec<u8>, CryptoError> {
    b64_decode_bytes(what, s.as_bytes())
}

fn b64_decode_bytes(what: &'static str, s: &[u8]) -> Result<Vec<u8>, CryptoError> {
    STANDARD.decode(s.trim_ascii()).map_err(|source| CryptoError::Base64 { what, source })
}

fn parse_json(what: &'static str, plain: Vec<u8>) -> Result<Value, CryptoError> {
    let text = String::from_utf8(plain).map_err(|source| CryptoError::Utf8 { what, source })?;
    serde_json::from_str(&text).map_err(|source| CryptoError::Json { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use std::sync::OnceLock;

    const VECTORS_JSON: &str = include_str!("../../tests/data/nic-crypto-vectors.json");

    fn v(name: &str) -> &'static str {
        static VECTORS: OnceLock<Value> = OnceLock::new();
        VECTORS
            .get_or_init(|| serde_json::from_str(VECTORS_JSON).expect("vectors parse"))
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("vector {name} missing"))
    }

    fn b32(name: &str) -> [u8; 32] {
        STANDARD.decode(v(name)).unwrap().try_into().unwrap()
    }

    fn private_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| parse_private_key_pem(v("rsa_private_key_pem")).unwrap())
    }

    fn public_key() -> RsaPublicKey {
        parse_public_key_pem(v("rsa_public_key_pem")).unwrap()
    }

    #[test]
    fn decrypts_vector_sek() {
        let app_key = AppKey::from_base64(v("app_key_b64")).unwrap();
        let sek = decrypt_sek(&app_key, v("sek_encrypted_with_app_key_b64")).unwrap();
        assert_eq!(sek, b32("sek_raw_b64"));
    }

    #[test]
    fn encrypts_sek_deterministically_like_vector() {
        let app_key = AppKey::from_bytes(b32("app_key_b64"));
        assert_eq!(encrypt_sek(&app_key, &b32("sek_raw_b64")), v("sek_encrypted_with_app_key_b64"));
    }

    #[test]
    fn encrypts_request_json_exactly_like_vector() {
        let sek = b32("sek_raw_b64");
        let value: Value = serde_json::from_str(v("request_plain_json")).unwrap();
        assert_eq!(encrypt_json_b64(&sek, &value), v("request_data_b64"));
        // The same, on the raw bytes, so that it does not depend on JSON key order.
        let raw = aes_encrypt(&sek, v("request_plain_json").as_bytes());
        assert_eq!(STANDARD.encode(raw), v("request_data_b64"));
    }

    #[test]
    fn decrypts_vector_response() {
        let sek = b32("sek_raw_b64");
        let expected: Value = serde_json::from_str(v("response_plain_json")).unwrap();
        assert_eq!(decrypt_json_b64(&sek, v("response_data_b64")).unwrap(), expected);
        assert_eq!(decrypt_response_data(&sek, v("response_data_b64"), None, None).unwrap(), expected);
        assert_eq!(decrypt_response_data(&sek, v("response_data_b64"), Some(""), Some(" ")).unwrap(), expected);
        // The numbers stay exact: AckNo is above 2^32.
        assert_eq!(expected["AckNo"].as_u64(), Some(112010000012345));
    }

    #[test]
    fn decrypts_vector_auth_request() {
        let cipher = STANDARD.decode(v("auth_request_data_b64")).unwrap();
        let plain = private_key().decrypt(Pkcs1v15Encrypt, &cipher).unwrap();
        assert_eq!(plain, v("auth_request_rsa_plaintext").as_bytes());

        let req = decrypt_auth_request(private_key(), v("auth_request_data_b64")).unwrap();
        assert_eq!(req.user_name, "testuser");
        assert_eq!(req.password, "testpass");
        assert_eq!(req.app_key, b32("app_key_b64"));
        assert!(!req.force_refresh);
        assert!(!format!("{req:?}").contains("testpass"));
    }

    #[test]
    fn auth_json_matches_vector_byte_for_byte() {
        let app_key = AppKey::from_base64(v("app_key_b64")).unwrap();
        let json = auth_request_json("testuser", "testpass", &app_key, false);
        assert_eq!(json.as_str(), v("auth_request_json"));
        assert_eq!(STANDARD.encode(json.as_bytes()), v("auth_request_rsa_plaintext"));
    }

    #[test]
    fn own_auth_request_round_trips_through_private_key() {
        let app_key = AppKey::random();
        let user = "user\"with\\quotes-é";
        let data = encrypt_auth_request(&public_key(), user, "p@ss", &app_key, true).unwrap();
        let again = encrypt_auth_request(&public_key(), user, "p@ss", &app_key, true).unwrap();
        assert_ne!(data, again, "PKCS#1 v1.5 encryption is randomised");
        let req = decrypt_auth_request(private_key(), &data).unwrap();
        assert_eq!(req.user_name, user);
        assert_eq!(req.password, "p@ss");
        assert_eq!(&req.app_key, app_key.expose_bytes());
        assert!(req.force_refresh);
        assert_eq!(STANDARD.decode(&data).unwrap().len(), 256);
    }

    #[test]
    fn auth_request_too_long_is_a_clear_error() {
        let long = "x".repeat(200);
        let err = encrypt_auth_request(&public_key(), "u", &long, &AppKey::random(), false).unwrap_err();
        assert!(matches!(err, CryptoError::RsaPlaintextTooLong { max: 245, bits: 2048, .. }), "{err:?}");
        assert!(err.to_string().contains("password is too long"));
    }

    #[test]
    fn auth_request_with_wrong_private_key_fails() {
        let err = decrypt_auth_request(private_key(), &STANDARD.encode([7u8; 256])).unwrap_err();
        assert!(matches!(err, CryptoError::RsaDecrypt(_)), "{err:?}");
    }

    #[test]
    fn rek_hmac_round_trip_and_tamper() {
        let sek = b32("sek_raw_b64");
        let value = serde_json::json!({"Irn": "abc", "AckNo": 1, "nested": {"k": [1, 2, 3]}});
        let (data, rek, hmac) = encrypt_response_with_rek(&sek, &value);
        assert_eq!(decrypt_response_data(&sek, &data, Some(&rek), Some(&hmac)).unwrap(), value);
        assert_eq!(decrypt_response_data(&sek, &data, Some(&rek), None).unwrap(), value);

        // A different, well-formed HMAC.
        let mut mac = STANDARD.decode(&hmac).unwrap();
        mac[0] ^= 1;
        let err = decrypt_response_data(&sek, &data, Some(&rek), Some(&STANDARD.encode(mac))).unwrap_err();
        assert!(matches!(err, CryptoError::HmacMismatch), "{err:?}");
        assert!(err.to_string().starts_with("HMAC mismatch"));

        // Data swapped for another payload under the same REK: the padding is fine, the HMAC is not.
        let rek_raw = decrypt_key(&sek, "Rek", &rek).unwrap();
        let other = STANDARD.encode(aes_encrypt(&rek_raw, br#"{"Irn":"evil"}"#));
        let err = decrypt_response_data(&sek, &other, Some(&rek), Some(&hmac)).unwrap_err();
        assert!(matches!(err, CryptoError::HmacMismatch), "{err:?}");

        // Hmac without Rek cannot be checked.
        let plain_data = encrypt_json_b64(&sek, &value);
        let err = decrypt_response_data(&sek, &plain_data, None, Some(&hmac)).unwrap_err();
        assert!(matches!(err, CryptoError::HmacWithoutRek), "{err:?}");
    }

    /// Data/Rek/Hmac computed independently with pyca/cryptography and Python's hmac module:
    /// REK = bytes(range(100, 132)), plaintext = the vectors' response_plain_json.
    #[test]
    fn rek_hmac_matches_python_vector() {
        let sek = b32("sek_raw_b64");
        let rek = "u1CxYIe9zWBmAV522LTrW/YxBHj0ngwOwkCVBHbpU7EePQL/UUSl7EiWI7G/ecwh";
        let data = "9NMCWmBPAuO7IrC2QZUCf1XoqXFE2/qYzhULviQ8xj2YbZYfJVf8f+B/X+0LvESZoE2IOG8g/IUPDNQpjIQzlBYbrUS6H3XNd+RJDbLKP00WG61Euh91zXfkSQ2yyj9NFhutRLofdc135EkNsso/TU19NpIMHbSCXt0iHBfgSw7gLTE9aovyNaGt/LNrlgTb";
        let hmac = "LXhsvY6rykid1E9kmzzb7iFpl9iGQTe2Em33RcJYjHY=";
        let expected: Value = serde_json::from_str(v("response_plain_json")).unwrap();
        assert_eq!(decrypt_response_data(&sek, data, Some(rek), Some(hmac)).unwrap(), expected);
        let rek_raw: Vec<u8> = (100u8..132).collect();
        assert_eq!(&decrypt_key(&sek, "Rek", rek).unwrap()[..], &rek_raw[..]);
    }

    #[test]
    fn wrong_key_is_bad_padding() {
        let app_key = AppKey::from_bytes([0x42; 32]);
        let err = decrypt_sek(&app_key, v("sek_encrypted_with_app_key_b64")).unwrap_err();
        assert!(matches!(err, CryptoError::BadPadding), "{err:?}");

        let err = decrypt_json_b64(&[0x42; 32], v("response_data_b64")).unwrap_err();
        assert!(matches!(err, CryptoError::BadPadding), "{err:?}");
        assert!(err.to_string().contains("wrong key"));

        // Using the AppKey where the SEK belongs: the classic mix-up.
        let err = decrypt_json_b64(&b32("app_key_b64"), v("response_data_b64")).unwrap_err();
        assert!(matches!(err, CryptoError::BadPadding), "{err:?}");
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        let sek = b32("sek_raw_b64");
        assert!(matches!(decrypt_json_b64(&sek, "not base64!!"), Err(CryptoError::Base64 { what: "Data", .. })));
        assert!(matches!(
            decrypt_json_b64(&sek, &STANDARD.encode([1u8; 15])),
            Err(CryptoError::BadCiphertextLength { len: 15 })
        ));
        assert!(matches!(decrypt_json_b64(&sek, ""), Err(CryptoError::BadCiphertextLength { len: 0 })));
        // Valid padding, but not a 32-byte key.
        let short = STANDARD.encode(aes_encrypt(&sek, &[9u8; 16]));
        assert!(matches!(
            decrypt_response_data(&sek, v("response_data_b64"), Some(&short), None),
            Err(CryptoError::BadKeyLength { what: "Rek", len: 16 })
        ));
        // Valid padding, not JSON.
        let junk = STANDARD.encode(aes_encrypt(&sek, b"<html>"));
        assert!(matches!(decrypt_json_b64(&sek, &junk), Err(CryptoError::Json { .. })));
        let not_utf8 = STANDARD.encode(aes_encrypt(&sek, &[0xff, 0xfe]));
        assert!(matches!(decrypt_json_b64(&sek, &not_utf8), Err(CryptoError::Utf8 { .. })));
        assert!(matches!(AppKey::from_base64("AAAA"), Err(CryptoError::BadKeyLength { what: "AppKey", len: 3 })));
    }

    #[test]
    fn aes_round_trip_and_padding_sizes() {
        let key = [3u8; 32];
        for len in [0usize, 1, 15, 16, 17, 100] {
            let plain = vec![0xabu8; len];
            let c = aes_encrypt(&key, &plain);
            assert_eq!(c.len(), (len / 16 + 1) * 16);
            assert_eq!(aes_decrypt(&key, &c).unwrap(), plain);
        }
    }

    #[test]
    fn app_key_basics() {
        let a = AppKey::random();
        let b = AppKey::random();
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        let b64 = a.to_base64();
        assert_eq!(b64.len(), 44);
        assert_eq!(AppKey::from_base64(&b64).unwrap().expose_bytes(), a.expose_bytes());
        assert_eq!(a.clone().expose_bytes(), a.expose_bytes());
        assert_eq!(format!("{a:?}"), "AppKey([REDACTED])");
    }

    #[test]
    fn parses_key_formats() {
        let spki = public_key();
        let pkcs1 = spki.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert_eq!(parse_public_key_pem(&pkcs1).unwrap(), spki);
        // CRLF, surrounding whitespace and literal "\n" escapes (as in an env var).
        let crlf = v("rsa_public_key_pem").replace('\n', "\r\n");
        assert_eq!(parse_public_key_pem(&format!("  {crlf}  ")).unwrap(), spki);
        let escaped = v("rsa_public_key_pem").trim().replace('\n', "\\n");
        assert_eq!(parse_public_key_pem(&escaped).unwrap(), spki);
        // Bare base64 DER.
        let der = STANDARD.encode(spki.to_public_key_der().unwrap().as_bytes());
        assert_eq!(parse_public_key_pem(&der).unwrap(), spki);

        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let err = parse_public_key_pem(cert).unwrap_err();
        assert!(err.to_string().contains("openssl x509"), "{err}");
        assert!(matches!(parse_public_key_pem("hello"), Err(CryptoError::KeyParse { .. })));
        assert!(parse_public_key_pem(v("rsa_private_key_pem")).is_err());

        let pkcs1_priv = private_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        assert_eq!(&parse_private_key_pem(&pkcs1_priv).unwrap(), private_key());
        assert!(matches!(parse_private_key_pem(v("rsa_public_key_pem")), Err(CryptoError::KeyParse { .. })));
    }
}
