//! RS256 JWTs, as NIC signs `SignedInvoice` and `SignedQRCode`.
//!
//! A NIC JWT is `base64url(header) . base64url(claims) . base64url(signature)`, without padding, where:
//! * the header is `{"alg":"RS256","kid":"…","typ":"JWT"}`, sometimes with an `x5t` as well;
//! * the claims are `{"data":"<JSON as a string>","iss":"NIC"}`. `data` holds the signed invoice, or the QR fields
//!   (`SellerGstin, BuyerGstin, DocNo, DocTyp, DocDt, TotInvVal, ItemCnt, MainHsnCode, Irn, IrnDt`);
//! * the signature is RSASSA-PKCS1-v1_5 with SHA-256 over the ASCII bytes of `header.claims`.
//!
//! Verification needs NIC's **signing** public key. It is not the key that encrypts the auth request,
//! and sandbox and production each have their own. Where that key is not configured, [`decode_unverified`] reads
//! the contents without checking them, as india-compliance does.

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use rsa::{
    pkcs1v15::{Signature, SigningKey, VerifyingKey},
    signature::{SignatureEncoding, Signer, Verifier},
    RsaPrivateKey, RsaPublicKey,
};
use serde_json::Value;
use sha2::Sha256;

/// base64url without padding on output. On input, padding is accepted whether present or not.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The three layers of a NIC JWT, each already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedPayload {
    /// The JOSE header, e.g. `{"alg":"RS256","kid":"…","typ":"JWT"}`.
    pub header: Value,
    /// The claims, e.g. `{"data":"{…}","iss":"NIC"}`.
    pub claims: Value,
    /// `claims["data"]`, parsed from its JSON string: the signed invoice or the QR fields.
    pub data: Value,
}

/// Why a JWT could not be read or verified.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not three dot-separated parts.
    #[error(
        "malformed JWT: expected 3 dot-separated parts, found {0}; the value is not a \
         SignedInvoice/SignedQRCode JWT, or it was truncated"
    )]
    Malformed(usize),
    /// A part is not base64url.
    #[error("JWT {part} is not valid base64url ({source}); the token is corrupt or truncated")]
    Base64 {
        /// "header", "claims" or "signature".
        part: &'static str,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// The header or the claims are not a JSON object.
    #[error("JWT {part} is not a JSON object ({detail}); the token is corrupt")]
    Json {
        /// "header" or "claims".
        part: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// The claims have no `data`.
    #[error("JWT claims have no \"data\" claim: this is not a NIC SignedInvoice/SignedQRCode")]
    MissingData,
    /// `data` is a string, but not JSON.
    #[error("JWT \"data\" claim is not valid JSON ({0}); the IRP response is corrupt")]
    DataJson(#[source] serde_json::Error),
    /// `alg` is not RS256. Rejecting it prevents algorithm-confusion attacks (`none`, HS256).
    #[error("unsupported JWT alg {0:?}: NIC signs with RS256, so the token is forged or not from NIC")]
    UnsupportedAlg(String),
    /// The signature does not verify.
    #[error(
        "JWT signature verification failed: wrong NIC signing public key (it differs from the encryption \
         key, and sandbox differs from production) or the token was altered"
    )]
    BadSignature,
}

/// Reads a NIC JWT **without** checking its signature.
pub fn decode_unverified(jwt: &str) -> Result<SignedPayload, JwtError> {
    let parts = split(jwt)?;
    decode_parts(&parts)
}

/// Only the `data` of a NIC JWT, **without** checking its signature: what [`decode_unverified`]
/// returns as `.data`, with neither the header nor the rest of the claims read into JSON trees
/// (every result event shows the data of two JWTs).
pub fn data_unverified(jwt: &str) -> Result<Value, JwtError> {
    /// The claims, of which only `data` is kept (a JSON string, or structured data).
    #[derive(serde::Deserialize)]
    struct Claims {
        data: Option<Value>,
    }
    let parts = split(jwt)?;
    let claims: Claims = serde_json::from_slice(&b64url("claims", parts[1])?)
        .map_err(|e| JwtError::Json { part: "claims", detail: e.to_string() })?;
    data_claim(claims.data.as_ref())
}

/// Checks an RS256 signature against `public_key`, then decodes as [`decode_unverified`] does.
///
/// The header's `alg` must be `RS256`. The `kid` is not checked: callers that keep several NIC signing keys
/// can look at [`decode_unverified`]`(jwt)?.header["kid"]` to pick one.
pub fn verify(jwt: &str, public_key: &RsaPublicKey) -> Result<SignedPayload, JwtError> {
    let parts = split(jwt)?;
    let payload = decode_parts(&parts)?;
    match payload.header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        other => return Err(JwtError::UnsupportedAlg(other.unwrap_or("<missing>").to_owned())),
    }
    let sig_bytes = b64url("signature", parts[2])?;
    let signature = Signature::try_from(sig_bytes.as_slice()).map_err(|_| JwtError::BadSignature)?;
    let signing_input_len = parts[0].len() + 1 + parts[1].len();
    let signing_input = &jwt.trim()[..signing_input_len];
    VerifyingKey::<Sha256>::new(public_key.clone())
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| JwtError::BadSignature)?;
    Ok(payload)
}

/// Signs `data` as NIC would (simulator side).
///
/// The header is `{"alg":"RS256","kid":<kid>,"typ":"JWT"}` and the claims are
/// `{"data":<data as a compact JSON string>,"iss":"NIC"}`. PKCS#1 v1.5 signatures are
/// deterministic, so the same input always gives the same token.
///
/// # Panics
/// If the key is too small to hold a SHA-256 `DigestInfo` (under 62 bytes, i.e. < 496 bits): use 2048 bits.
pub fn sign(data: &Value, private_key: &RsaPrivateKey, kid: &str) -> String {
    let signing_input = signing_input(data, kid);
    let signature = SigningKey::<Sha256>::new(private_key.clone()).sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(signature.to_bytes()))
}

/// A JWT shaped like [`FastSigner::sign`]'s (same header, claims and signature length) whose
/// signature is zeros: what `bench`'s stand-in IRP answers, so that neither the worker nor the
/// work floor is measured against RSA signing. A client holding the signing key refuses it.
pub fn unsigned(data: &Value, kid: &str) -> String {
    format!("{}.{}", signing_input(data, kid), B64URL.encode([0u8; 256]))
}

/// `base64url(header) . base64url(claims)`, what the signature covers.
fn signing_input(data: &Value, kid: &str) -> String {
    // Keys are in alphabetical order, so the output is the same with or without serde_json's `preserve_order`.
    let header = serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let claims = serde_json::json!({"data": data.to_string(), "iss": "NIC"});
    format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()))
}

/// [`sign`] on `ring`'s RSA, several times faster than the `rsa` crate's: the simulator signs two
/// JWTs per IRN, and with `rsa` that was the benchmark's limit, not the worker. PKCS#1 v1.5 is
/// deterministic, so both give the same bytes (tested).
pub struct FastSigner {
    key: ring::rsa::KeyPair,
    rng: ring::rand::SystemRandom,
}

impl FastSigner {
    pub fn new(private_key: &RsaPrivateKey) -> Result<FastSigner, String> {
        use rsa::pkcs8::EncodePrivateKey as _;
        let der = private_key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let key = ring::rsa::KeyPair::from_pkcs8(der.as_bytes()).map_err(|e| e.to_string())?;
        Ok(FastSigner { key, rng: ring::rand::SystemRandom::new() })
    }

    pub fn sign(&self, data: &Value, kid: &str) -> String {
        let signing_input = signing_input(data, kid);
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&ring::signature::RSA_PKCS1_SHA256, &self.rng, signing_input.as_bytes(), &mut signature)
            .expect("a 2048-bit key signs a SHA-256 digest");
        format!("{signing_input}.{}", B64URL.encode(signature))
    }
}

fn split(jwt: &str) -> Result<[&str; 3], JwtError> {
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    <[&str; 3]>::try_from(parts).map_err(|p| JwtError::Malformed(p.len()))
}

fn decode_parts(parts: &[&str; 3]) -> Result<SignedPayload, JwtError> {
    let header = json_object("header", &b64url("header", parts[0])?)?;
    let claims = json_object("claims", &b64url("claims", parts[1])?)?;
    let data = data_claim(claims.get("data"))?;
    Ok(SignedPayload { header, claims, data })
}

/// The signed document in a `data` claim: parsed from its JSON string, or taken as it is when
/// already structured (NIC always sends a string).
fn data_claim(data: Option<&Value>) -> Result<Value, JwtError> {
    match data {
        Some(Value::String(s)) => serde_json::from_str(s).map_err(JwtError::DataJson),
        Some(v @ (Value::Object(_) | Value::Array(_))) => Ok(v.clone()),
        _ => Err(JwtError::MissingData),
    }
}

fn b64url(part: &'static str, s: &str) -> Result<Vec<u8>, JwtError> {
    B64URL.decode(s).map_err(|source| JwtError::Base64 { part, source })
}

fn json_object(part: &'static str, bytes: &[u8]) -> Result<Value, JwtError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(JwtError::Json { part, detail: "not an object".into() }),
        Err(e) => Err(JwtError::Json { part, detail: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irp::nic_crypto::{parse_private_key_pem, parse_public_key_pem};
    use std::sync::OnceLock;

    const VECTORS_JSON: &str = include_str!("../../tests/data/nic-crypto-vectors.json");

    /// An unrelated 2048-bit public key (made with `openssl genrsa`), used as "the wrong key".
    const OTHER_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArouKYTcwIWOi3NG7prKg
MYBym675bSmIu9tp5kOsIJIOUzm9I6b/pij7dZ02fH1lpHXoBHDNeXZhQR5WP7Qy
YP3sAQNhuLm9bnpNaD7KYT41b7/KxLIYQ1yM/34w5ZA/ibYJEuL5R6vsYluQzAxQ
ral0txncNnt3Pyfu2w8JYsY43l14r0ImLpS3R104IIrIHMzj3DuNmPFys3g4YKML
BmiQR/7WQfCh8vykYPBKxzslS0vRB3VK19Vp+qUsFiA0xG6GzXe7Fjz/ygMwchjn
d8UtZMh3ynGf+HXEYezWkDDS3/MtBKr6bRTOmSqO5dgS0oCmz1sFsyzJ35I4qKft
6QIDAQAB
-----END PUBLIC KEY-----
";

    /// A QR-style JWT signed by pyca/cryptography with the vectors' private key, kid "TESTKID".
    const PYTHON_JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IlRFU1RLSUQiLCJ0eXAiOiJKV1QifQ.eyJkYXRhIjoie1wiU2VsbGVyR3N0aW5cIjpcIjI5QUFBQ0kxMjM0QTFaNVwiLFwiQnV5ZXJHc3RpblwiOlwiMjdBQUFDQjEyMzRCMVoyXCIsXCJEb2NOb1wiOlwiSU5WLzI0LTI1LzAwMDFcIixcIkRvY1R5cFwiOlwiSU5WXCIsXCJEb2NEdFwiOlwiMDEvMDQvMjAyNFwiLFwiVG90SW52VmFsXCI6MTE4MC4wLFwiSXRlbUNudFwiOjEsXCJNYWluSHNuQ29kZVwiOlwiOTk4MzE0XCIsXCJJcm5cIjpcImFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFcIixcIklybkR0XCI6XCIyMDI0LTA0LTAxIDEwOjE1OjAwXCJ9IiwiaXNzIjoiTklDIn0.VSi-PyWpodlL0vOeNXdfBlxCEPsooQzSgZMSht3GjO2XZ6rUe1Ohl5-2eW2_zB99_mJqVm9hgS1dd4ekIILfDUdEu1XqM4LZQgUtIX5MQJa2RVOK0wgwTwD35OqTRImx2t5wj0UZ9A5RTPY9RAv2xnQnARPrMiavto2Qp7DCmJ6z-tP9yXDQ6QGNRfwh_JKwVzMNubEwxl7qc_D7VvykqkmTmhbQJ_aEDw7AHS7rIf0wSKzX8l2-NeuUwjPhdeJeH6KhD7gST5vb-jE8-x_nsmPTybUMZ9MStnhmv0R4xnRoyYq4D85a3FohYM68zndhKi5Qw0j7VDATZboTD431Rg";

    fn vector(name: &str) -> String {
        let v: Value = serde_json::from_str(VECTORS_JSON).unwrap();
        v[name].as_str().unwrap().to_owned()
    }

    fn keys() -> &'static (RsaPrivateKey, RsaPublicKey) {
        static KEYS: OnceLock<(RsaPrivateKey, RsaPublicKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            (
                parse_private_key_pem(&vector("rsa_private_key_pem")).unwrap(),
                parse_public_key_pem(&vector("rsa_public_key_pem")).unwrap(),
            )
        })
    }

    fn qr_data() -> Value {
        serde_json::json!({
            "SellerGstin": "29AAACI1234A1Z5", "BuyerGstin": "27AAACB1234B1Z2",
            "DocNo": "INV/24-25/0001", "DocTyp": "INV", "DocDt": "01/04/2024",
            "TotInvVal": 1180.0, "ItemCnt": 1, "MainHsnCode": "998314",
            "Irn": "a".repeat(64), "IrnDt": "2024-04-01 10:15:00"
        })
    }

    #[test]
    fn sign_verify_round_trip() {
        let (private, public) = keys();
        let data = qr_data();
        let jwt = sign(&data, private, "KID123");
        assert!(!jwt.contains('='), "base64url without padding");
        let payload = verify(&jwt, public).unwrap();
        assert_eq!(payload.data, data);
        assert_eq!(payload.header, serde_json::json!({"alg": "RS256", "kid": "KID123", "typ": "JWT"}));
        assert_eq!(payload.claims["iss"], "NIC");
        assert!(payload.claims["data"].is_string());
        assert_eq!(decode_unverified(&jwt).unwrap(), payload);
        assert_eq!(data_unverified(&jwt).unwrap(), payload.data);
    }

    #[test]
    fn the_bench_stand_ins_unsigned_jwt_reads_like_a_signed_one_and_never_verifies() {
        let (private, public) = keys();
        let data = qr_data();
        let (signed, unsigned) = (sign(&data, private, "KID123"), unsigned(&data, "KID123"));
        assert_eq!(unsigned.len(), signed.len(), "same size as a 2048-bit RS256 JWT");
        assert_eq!(data_unverified(&unsigned).unwrap(), data);
        assert!(matches!(verify(&unsigned, public), Err(JwtError::BadSignature)));
    }

    #[test]
    fn data_alone_reads_what_the_full_decode_reads() {
        let header = B64URL.encode(r#"{"alg":"RS256"}"#);
        let jwt = |claims: &str| format!("{header}.{}.sig", B64URL.encode(claims));
        // Structured data is accepted as the full decode accepts it; key order is kept.
        for claims in [r#"{"iss":"NIC","data":"{\"b\":1,\"a\":[2]}"}"#, r#"{"data":{"b":1,"a":[2]}}"#] {
            let (data, full) = (data_unverified(&jwt(claims)).unwrap(), decode_unverified(&jwt(claims)).unwrap().data);
            assert_eq!(data.to_string(), r#"{"b":1,"a":[2]}"#);
            assert_eq!(data, full);
        }
        assert!(matches!(data_unverified(&jwt(r#"{"data":"{broken"}"#)), Err(JwtError::DataJson(_))));
        for missing in [r#"{"iss":"NIC"}"#, r#"{"data":42}"#, r#"{"data":null}"#] {
            assert!(matches!(data_unverified(&jwt(missing)), Err(JwtError::MissingData)), "{missing}");
        }
        for bad in ["a.b", "!!!.@@@.###", "é.é.é"] {
            assert!(data_unverified(bad).is_err(), "{bad}");
        }
        assert!(data_unverified(&jwt("[1,2]")).is_err() && data_unverified(&jwt("not json")).is_err());
    }

    #[test]
    fn the_fast_signer_gives_the_same_jwt_as_the_rsa_crate() {
        let (private, public) = keys();
        let fast = FastSigner::new(private).unwrap().sign(&qr_data(), "KID123");
        assert_eq!(fast, sign(&qr_data(), private, "KID123"));
        assert_eq!(verify(&fast, public).unwrap().data, qr_data());
    }

    #[test]
    fn verifies_and_reproduces_python_signed_jwt() {
        let (private, public) = keys();
        let payload = verify(PYTHON_JWT, public).unwrap();
        assert_eq!(payload.data, qr_data());
        assert_eq!(payload.header["kid"], "TESTKID");
        // PKCS#1 v1.5 is deterministic. With preserve_order (on in this crate) the bytes match exactly.
        assert_eq!(sign(&payload.data, private, "TESTKID"), PYTHON_JWT);
    }

    #[test]
    fn wrong_key_fails() {
        let (private, _) = keys();
        let other = parse_public_key_pem(OTHER_PUBLIC_KEY).unwrap();
        let jwt = sign(&qr_data(), private, "k");
        assert!(matches!(verify(&jwt, &other), Err(JwtError::BadSignature)));
        // Unverified decoding does not care about the key.
        assert_eq!(decode_unverified(&jwt).unwrap().data, qr_data());
    }

    #[test]
    fn tampered_token_fails() {
        let (private, public) = keys();
        let jwt = sign(&qr_data(), private, "k");
        let parts: Vec<&str> = jwt.split('.').collect();

        let mut evil = qr_data();
        evil["TotInvVal"] = serde_json::json!(1.0);
        let forged_claims = B64URL.encode(serde_json::json!({"data": evil.to_string(), "iss": "NIC"}).to_string());
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert!(matches!(verify(&forged, public), Err(JwtError::BadSignature)));

        let mut sig = B64URL.decode(parts[2]).unwrap();
        sig[10] ^= 0x01;
        let bad_sig = format!("{}.{}.{}", parts[0], parts[1], B64URL.encode(sig));
        assert!(matches!(verify(&bad_sig, public), Err(JwtError::BadSignature)));

        let short_sig = format!("{}.{}.{}", parts[0], parts[1], "AAAA");
        assert!(matches!(verify(&short_sig, public), Err(JwtError::BadSignature)));

        let none_header = B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let alg_none = format!("{}.{}.", none_header, parts[1]);
        assert!(matches!(
            verify(&alg_none, public),
            Err(JwtError::UnsupportedAlg(a)) if a == "none"
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (_, public) = keys();
        let header = B64URL.encode(r#"{"alg":"RS256"}"#);
        let cases = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            "!!!.@@@.###".into(),
            format!("{header}.{}.sig", B64URL.encode("[1,2]")),
            format!("{header}.{}.sig", B64URL.encode("not json")),
            format!("{header}.{}.sig", B64URL.encode(r#"{"iss":"NIC"}"#)),
            format!("{header}.{}.sig", B64URL.encode(r#"{"data":"{broken"}"#)),
            format!("{header}.{}.sig", B64URL.encode(r#"{"data":42}"#)),
            format!("{header}.{}.***", B64URL.encode(r#"{"data":"{}"}"#)),
            "é.é.é".into(),
        ];
        for case in &cases {
            assert!(verify(case, public).is_err(), "{case:?} verified");
        }
        assert!(matches!(decode_unverified("a.b"), Err(JwtError::Malformed(2))));
        assert!(matches!(decode_unverified(&cases[8]), Err(JwtError::DataJson(_))));
        assert!(matches!(decode_unverified(&cases[7]), Err(JwtError::MissingData)));
        // A signature that is not base64url only matters once we verify.
        assert!(decode_unverified(&cases[10]).is_ok());
        assert!(matches!(verify(&cases[10], public), Err(JwtError::Base64 { part: "signature", .. })));
    }
}
