//! The NIC IRP direct API (e-invoice v1.03, auth v1.04), with the RSA/AES crypto done here.
//!
//! * **Auth**: `POST {base}/eivital/v1.04/auth`, headers `client_id`, `client_secret`, `Gstin`
//!   (or `client-id`, `client-secret`, `gstin` with `header_spelling = "hyphen"`),
//!   body `{"Data": RSA(base64(auth JSON))}` with a fresh [`AppKey`] per call. The answer is not
//!   encrypted: `{"Status":1,"Data":{"ClientId","UserName","AuthToken","Sek","TokenExpiry"}}`, where
//!   `Sek` is the session key encrypted with the AppKey and `TokenExpiry` is India time.
//! * **Every other call**: headers `client_id`, `client_secret`, `Gstin`, `user_name`, `AuthToken`;
//!   POST bodies are `{"Data": AES(SEK, JSON)}`; answers are
//!   `{"Status","Data","ErrorDetails","InfoDtls"[,"Rek","Hmac"]}`. `Status` may be a number or a
//!   string; `ErrorDetails` a list or a (base64) JSON string; `InfoDtls` a list or a (base64) JSON
//!   string of one.
//! * **Signatures**: when a signing key is configured, `SignedInvoice` and `SignedQRCode` in
//!   generate and lookup answers must verify against it, or the call fails.
//!
//! Paths are relative to `base_url`, e.g. `https://einv-apisandbox.nic.in`.
use async_trait::async_trait;
use base64::Engine as _;
use chrono::Utc;
use reqwest::{Method, RequestBuilder};
use rsa::RsaPublicKey;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::errors::{from_reqwest, http_error, parse_error_list, IrpMessage};
use super::ewaybill::{open_ewb_api_response, EwbCancelData, EwbData, ExtendData, TransporterData, VehicleData};
use super::nic_crypto::{self, AppKey, CryptoError};
use super::session::Sek;
use super::signing::{self, load_public_key};
use super::types::parse_ist;
use super::{
    CancelData, Ewaybills, EwbByIrn, GstinDetails, Gstins, Irn, IrnData, IrpError, IrpProvider, RejectedIrn, Session,
};
use crate::config::{Environment, GstinConfig, HeaderSpelling, ProviderKind, RateLimit};
use crate::domain::command::ewaybill::{EwbCancelReason, VehicleUpdate};
use crate::domain::command::ewaybill_extend::ExtendValidity;
use crate::domain::command::ewaybill_update_transporter::TransporterId;
use crate::domain::command::{CancelReason, DocRef};
use crate::domain::DocDate;

pub const AUTH_PATH: &str = "/eivital/v1.04/auth";
pub const GENERATE_PATH: &str = "/eicore/v1.03/Invoice";
pub const CANCEL_PATH: &str = "/eicore/v1.03/Invoice/Cancel";
pub const EWB_GENERATE_PATH: &str = "/eiewb/v1.03/ewaybill";
/// The e-way bill API: cancel (`CANEWB`) and Part B (`VEHEWB`) under the same session, since
/// NIC accepts one token across its e-invoice and e-way bill portals (July 2024).
pub const EWB_API_PATH: &str = "/ewaybillapi/v1.03/ewayapi";

/// One GSTIN's connection to the NIC IRP (or a private IRP speaking the NIC API).
#[derive(Clone)]
pub struct Nic {
    irp: String,
    /// `irp: NIC1|NIC2` on every call: this adapter asks for another NIC IRP's data.
    irp_header: Option<String>,
    http: reqwest::Client,
    base_url: String,
    gstin: String,
    username: String,
    password: SecretString,
    client_id: String,
    client_secret: SecretString,
    header_spelling: HeaderSpelling,
    environment: Environment,
    /// Shared by every GSTIN configured with the same key (parsed once per process).
    public_key: std::sync::Arc<RsaPublicKey>,
    signing_key: Option<std::sync::Arc<RsaPublicKey>>,
    rate_limit: Option<RateLimit>,
}

impl std::fmt::Debug for Nic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nic")
            .field("base_url", &self.base_url)
            .field("gstin", &self.gstin)
            .field("username", &self.username)
            .field("environment", &self.environment)
            .field("verifies_signatures", &self.signing_key.is_some())
            .finish_non_exhaustive()
    }
}

/// The IRP's encryption public key of a NIC section (`public_key_pem`, else `public_key_file`;
/// required), shared with every section that names the same key.
pub fn public_key(gstin: &str, cfg: &GstinConfig) -> Result<std::sync::Arc<RsaPublicKey>, IrpError> {
    load_public_key(
        gstin,
        cfg.public_key_pem.as_deref(),
        cfg.public_key_file.as_deref(),
        "public_key_pem",
        "public_key_file",
    )?
    .ok_or_else(|| {
        IrpError::Config(format!(
            "GSTIN {gstin}: the NIC provider needs the IRP's encryption public key; set \
                 `gstins.{gstin}.public_key_pem` or `gstins.{gstin}.public_key_file`"
        ))
    })
}

impl Nic {
    /// Build the adapter, loading the IRP's encryption public key (`public_key_pem`, else
    /// `public_key_file`; required) and signing public key (`signing_key_pem`, else
    /// `signing_key_file`; optional: without it, signed JWTs are not verified).
    pub fn new(http: reqwest::Client, gstin: &str, cfg: &GstinConfig) -> Result<Nic, IrpError> {
        let public_key = public_key(gstin, cfg)?;
        let signing_key = signing::signing_key(gstin, cfg)?;
        Ok(Nic {
            irp: cfg.irp_name(),
            irp_header: None,
            http,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            gstin: gstin.to_string(),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            header_spelling: cfg.header_spelling,
            environment: cfg.environment,
            public_key,
            signing_key,
            rate_limit: cfg.rate_limit,
        })
    }

    /// The key SignedInvoice / SignedQRCode are verified with, when configured.
    pub fn signing_key(&self) -> Option<&RsaPublicKey> {
        self.signing_key.as_deref()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The client credentials and GSTIN, in the configured spelling. The default is NIC's
    /// documented one; the hyphenated one is what gst_irn sends. Neither survives a proxy that drops
    /// underscored headers (nginx's default), because `user_name` has one in both.
    fn client_headers(&self, rb: RequestBuilder) -> RequestBuilder {
        let [id, secret, gstin] = match self.header_spelling {
            HeaderSpelling::Underscore => ["client_id", "client_secret", "Gstin"],
            HeaderSpelling::Hyphen => ["client-id", "client-secret", "gstin"],
        };
        let rb = rb
            .header(id, &self.client_id)
            .header(secret, self.client_secret.expose_secret())
            .header(gstin, &self.gstin);
        match &self.irp_header {
            Some(irp) => rb.header("irp", irp),
            None => rb,
        }
    }

    fn request(&self, method: Method, path: &str, s: &Session) -> RequestBuilder {
        self.client_headers(self.http.request(method, self.url(path)))
            .header("user_name", &self.username)
            .header("AuthToken", s.token.expose_secret())
    }

    fn sek<'a>(&self, s: &'a Session) -> Result<&'a Sek, IrpError> {
        s.sek.as_ref().ok_or_else(|| {
            IrpError::Config(format!(
                "GSTIN {}: the session has no SEK; NIC sessions always carry one, so this token came \
                 from another provider (was the GSTIN switched to NIC without clearing its stored session?)",
                self.gstin
            ))
        })
    }

    /// Send and read the answer's JSON, with HTTP ≠ 2xx as [`IrpError::Http`].
    async fn send(&self, rb: RequestBuilder) -> Result<Value, IrpError> {
        let resp = rb.send().await.map_err(from_reqwest)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(from_reqwest)?;
        if !(200..300).contains(&status) {
            return Err(http_error(status, &headers, text));
        }
        serde_json::from_str(&text).map_err(|e| IrpError::Protocol(format!("not JSON: {e}")))
    }

    async fn get(&self, s: &Session, path: &str) -> Result<Value, IrpError> {
        let sek = self.sek(s)?;
        let v = self.send(self.request(Method::GET, path, s)).await?;
        open_response(sek, &v)
    }

    async fn post(&self, s: &Session, path: &str, body: &Value) -> Result<Value, IrpError> {
        self.post_text(s, path, &body.to_string()).await
    }

    /// [`Self::post`] of a body already serialised.
    async fn post_text(&self, s: &Session, path: &str, body: &str) -> Result<Value, IrpError> {
        let sek = self.sek(s)?;
        let data = nic_crypto::encrypt_b64(sek.expose(), body.as_bytes());
        let v = self.send(self.request(Method::POST, path, s).json(&json!({ "Data": data }))).await?;
        open_response(sek, &v)
    }

    /// One e-way bill API action (`CANEWB`, `VEHEWB`): `{"action", "data": AES(SEK, payload)}`.
    async fn ewb_action(&self, s: &Session, action: &str, payload: &Value) -> Result<Value, IrpError> {
        let sek = self.sek(s)?;
        let data = nic_crypto::encrypt_json_b64(sek.expose(), payload);
        let rb = self.request(Method::POST, EWB_API_PATH, s).json(&json!({"action": action, "data": data}));
        open_ewb_api_response(sek, &self.send(rb).await?)
    }

    /// An IRN answer, with its signatures checked when a signing key is configured.
    fn irn_data(&self, v: Value) -> Result<IrnData, IrpError> {
        let d = IrnData::from_json(&v).ok_or_else(|| IrpError::Protocol("the answer has no Irn/AckNo".into()))?;
        self.verify_signatures(&d)?;
        Ok(d)
    }

    /// Verify `SignedInvoice` and `SignedQRCode` (those present) against the signing key, and
    /// that each is signed for the IRN the answer names. Without a signing key, nothing is checked.
    pub fn verify_signatures(&self, d: &IrnData) -> Result<(), IrpError> {
        signing::verify_irn_signatures(self.signing_key.as_deref(), &self.gstin, d)
    }
}

/// A top-level field, by case-insensitive name.
fn ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// `Status` as NIC sends it: 1 or 0, as a number or a string.
fn status_of(v: &Value) -> Option<i64> {
    match ci(v, "Status")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `InfoDtls` as a list of items: a JSON list, a JSON (or base64 JSON) string of one, a single
/// object, or nothing.
pub fn parse_info(v: Option<&Value>) -> Vec<Value> {
    fn from_json(v: Value) -> Option<Vec<Value>> {
        match v {
            Value::Array(a) => Some(a),
            o @ Value::Object(_) => Some(vec![o]),
            _ => None,
        }
    }
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .ok()
            .and_then(from_json)
            .or_else(|| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()?;
                serde_json::from_slice::<Value>(&bytes).ok().and_then(from_json)
            })
            .unwrap_or_else(|| vec![Value::String(s.clone())]),
        Some(other) => vec![other.clone()],
    }
}

/// A `Status` 0 (or unknown) answer as an error.
fn refusal(v: &Value) -> IrpError {
    let errors: Vec<IrpMessage> = parse_error_list(ci(v, "ErrorDetails").unwrap_or(&Value::Null));
    let info = parse_info(ci(v, "InfoDtls"));
    if errors.is_empty() {
        let status = ci(v, "Status").map(Value::to_string).unwrap_or_else(|| "missing".into());
        return IrpError::Protocol(format!("Status {status} without ErrorDetails"));
    }
    IrpError::Api { errors, info }
}

/// Read an API answer: Status 1 → the decrypted `Data` (with the SEK, or the `Rek` when sent,
/// checking `Hmac` when sent); otherwise the errors. A success's `InfoDtls` (e.g. `EWBPPD`, the
/// PIN-to-PIN distance) is kept in the returned object under `"InfoDtls"` when the decrypted
/// data has no such key, so it reaches the audit copy.
pub fn open_response(sek: &Sek, v: &Value) -> Result<Value, IrpError> {
    if status_of(v) != Some(1) {
        return Err(refusal(v));
    }
    let mut data = match ci(v, "Data") {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Value::Null),
        Some(Value::String(s)) => {
            let opt = |k: &str| ci(v, k).and_then(Value::as_str);
            nic_crypto::decrypt_response_data(sek.expose(), s, opt("Rek"), opt("Hmac")).map_err(|e| {
                IrpError::Protocol(format!("could not decrypt the answer's Data with the session key: {e}"))
            })?
        }
        Some(other) => {
            return Err(IrpError::Protocol(format!(
                "Data should be an encrypted (base64) string, got {}",
                kind_of(other)
            )))
        }
    };
    let info = parse_info(ci(v, "InfoDtls"));
    if let Some(o) = data.as_object_mut() {
        if !info.is_empty() && !o.contains_key("InfoDtls") {
            o.insert("InfoDtls".into(), Value::Array(info));
        }
    }
    Ok(data)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn crypto_config(gstin: &str, e: CryptoError) -> IrpError {
    IrpError::Config(format!("GSTIN {gstin}: cannot encrypt the auth request with the configured IRP public key: {e}"))
}

#[async_trait]
impl IrpProvider for Nic {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Nic
    }

    fn irp(&self) -> &str {
        &self.irp
    }

    fn cross_portal(&self, issuer: &str) -> Option<std::sync::Arc<dyn IrpProvider>> {
        let nic = |n: &str| matches!(n, "NIC1" | "NIC2");
        (nic(&self.irp) && nic(issuer) && issuer != self.irp)
            .then(|| std::sync::Arc::new(Nic { irp_header: Some(issuer.to_string()), ..self.clone() }) as _)
    }

    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    async fn authenticate(&self, force_refresh: bool) -> Result<Session, IrpError> {
        let app_key = AppKey::random();
        let data = nic_crypto::encrypt_auth_request(
            &self.public_key,
            &self.username,
            self.password.expose_secret(),
            &app_key,
            force_refresh,
        )
        .map_err(|e| crypto_config(&self.gstin, e))?;
        let rb = self.client_headers(self.http.post(self.url(AUTH_PATH))).json(&json!({ "Data": data }));
        let v = self.send(rb).await?;
        if status_of(&v) != Some(1) {
            // 1013/1016 (public key), 1008/1010 (credentials): the outcome table makes these configuration errors.
            return Err(refusal(&v));
        }
        // The auth answer is not encrypted; tolerate it arriving as a JSON string.
        let data = match ci(&v, "Data") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            Some(d) => d.clone(),
            None => Value::Null,
        };
        let text = |k: &str| ci(&data, k).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_string);
        let token = text("AuthToken").ok_or_else(|| IrpError::Protocol("auth answer has no AuthToken".into()))?;
        let sek_b64 = text("Sek").ok_or_else(|| IrpError::Protocol("auth answer has no Sek".into()))?;
        let sek = nic_crypto::decrypt_sek(&app_key, &sek_b64)
            .map_err(|e| IrpError::Protocol(format!("could not decrypt Sek with this auth call's AppKey: {e}")))?;
        let now = Utc::now();
        let expires_at = match text("TokenExpiry").as_deref().and_then(parse_ist) {
            Some(t) => t,
            None => {
                // Without a readable expiry, assume the documented lifetime minus a safety minute.
                let life = match self.environment {
                    Environment::Sandbox => chrono::Duration::minutes(59),
                    Environment::Production => chrono::Duration::minutes(359),
                };
                tracing::warn!(gstin = %self.gstin, "NIC auth answer has no readable TokenExpiry; assuming {} min", life.num_minutes());
                now + life
            }
        };
        Ok(Session { token: SecretString::from(token), sek: Some(Sek::new(sek)), expires_at, obtained_at: now })
    }

    // No `b2c`: NIC's direct API has no B2C QR service (the dynamic QR for B2C invoices is a GSP
    // feature), so `Nic` does not implement `B2cQr` and the default `None` stands.
}

#[async_trait]
impl Irn for Nic {
    async fn generate(&self, s: &Session, invoice: &str) -> Result<IrnData, IrpError> {
        self.irn_data(self.post_text(s, GENERATE_PATH, invoice).await?)
    }

    async fn get_by_irn(&self, s: &Session, irn: &str) -> Result<IrnData, IrpError> {
        self.irn_data(self.get(s, &format!("/eicore/v1.03/Invoice/irn/{}", path_segment(irn))).await?)
    }

    async fn get_by_doc(&self, s: &Session, doc: &DocRef) -> Result<IrnData, IrpError> {
        // Written out as NIC's samples do (no %2F): a DocNumber is only [A-Za-z0-9/-] and the date dd/mm/yyyy.
        let path = format!(
            "/eicore/v1.03/Invoice/irnbydocdetails?doctype={}&docnum={}&docdate={}",
            doc.doc_type.as_str(),
            query_value(doc.doc_number.as_str()),
            doc.doc_date
        );
        self.irn_data(self.get(s, &path).await?)
    }

    async fn cancel(&self, s: &Session, irn: &str, reason: CancelReason, remark: &str) -> Result<CancelData, IrpError> {
        let body = json!({"Irn": irn, "CnlRsn": reason.code(), "CnlRem": remark});
        let v = self.post(s, CANCEL_PATH, &body).await?;
        CancelData::from_json(&v).ok_or_else(|| IrpError::Protocol("the cancel answer has no Irn/CancelDate".into()))
    }

    async fn rejected_irns(&self, s: &Session, date: DocDate) -> Result<Vec<RejectedIrn>, IrpError> {
        let v = self.get(s, &format!("/eicore/v1.03/Invoice/rejectedirns?date={date}")).await?;
        let list = match v {
            Value::Array(a) => a,
            Value::Null => Vec::new(),
            other => other
                .get("RejectedIrns")
                .or_else(|| other.get("RejectedIrnList"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![other]),
        };
        Ok(list.iter().map(RejectedIrn::from_json).collect())
    }
}

#[async_trait]
impl Gstins for Nic {
    async fn gstin_details(&self, s: &Session, gstin: &str) -> Result<GstinDetails, IrpError> {
        let v = self.get(s, &format!("/eivital/v1.04/Master/gstin/{}", path_segment(gstin))).await?;
        Ok(GstinDetails::from_json(&v))
    }

    async fn sync_gstin(&self, s: &Session, gstin: &str) -> Result<GstinDetails, IrpError> {
        let v = self.get(s, &format!("/eivital/v1.04/Master/syncgstin/{}", path_segment(gstin))).await?;
        Ok(GstinDetails::from_json(&v))
    }
}

#[async_trait]
impl Ewaybills for Nic {
    async fn ewaybill_by_irn(&self, s: &Session, irn: &str) -> Result<EwbByIrn, IrpError> {
        let v = self.get(s, &format!("/eiewb/v1.03/ewaybill/irn/{}", path_segment(irn))).await?;
        Ok(EwbByIrn::from_json(&v))
    }

    async fn generate_ewaybill(&self, s: &Session, request: &Value) -> Result<EwbData, IrpError> {
        let v = self.post(s, EWB_GENERATE_PATH, request).await?;
        EwbData::from_json(&v).ok_or_else(|| IrpError::Protocol("the e-way bill answer has no EwbNo".into()))
    }

    async fn cancel_ewaybill(
        &self,
        s: &Session,
        ewb_no: &str,
        reason: EwbCancelReason,
        remark: &str,
    ) -> Result<EwbCancelData, IrpError> {
        let v = self.ewb_action(s, "CANEWB", &cancel_payload(ewb_no, reason, remark)).await?;
        EwbCancelData::from_json(&v, ewb_no)
            .ok_or_else(|| IrpError::Protocol("the e-way bill cancel answer has no cancelDate".into()))
    }

    async fn update_vehicle(&self, s: &Session, ewb_no: &str, update: &VehicleUpdate) -> Result<VehicleData, IrpError> {
        let v = self.ewb_action(s, "VEHEWB", &update.request(ewb_no)).await?;
        VehicleData::from_json(&v)
            .ok_or_else(|| IrpError::Protocol("the vehicle update answer has no vehUpdDate".into()))
    }

    async fn extend_validity(
        &self,
        s: &Session,
        ewb_no: &str,
        extend: &ExtendValidity,
    ) -> Result<ExtendData, IrpError> {
        let v = self.ewb_action(s, "EXTENDVALIDITY", &extend.request(ewb_no)).await?;
        ExtendData::from_json(&v).ok_or_else(|| IrpError::Protocol("the extension answer has no updatedDate".into()))
    }

    async fn generate_ewaybill_doc(&self, s: &Session, request: &Value) -> Result<EwbData, IrpError> {
        let v = self.ewb_action(s, "GENEWAYBILL", request).await?;
        EwbData::from_json(&v).ok_or_else(|| IrpError::Protocol("the GENEWAYBILL answer has no ewayBillNo".into()))
    }

    async fn ewaybill_by_doc(&self, s: &Session, doc_type: &str, doc_no: &str) -> Result<Option<EwbData>, IrpError> {
        let sek = self.sek(s)?;
        let path = format!(
            "{EWB_API_PATH}/GetEwayBillGeneratedByConsigner?docType={}&docNo={}",
            query_value(doc_type),
            query_value(doc_no)
        );
        let v = self.send(self.request(Method::GET, &path, s)).await?;
        match open_ewb_api_response(sek, &v) {
            Ok(v) => Ok(EwbData::from_json(&v)),
            Err(e) if e.has_code("325") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn update_transporter(
        &self,
        s: &Session,
        ewb_no: &str,
        transporter: &TransporterId,
    ) -> Result<TransporterData, IrpError> {
        let v = self.ewb_action(s, "UPDATETRANSPORTER", &transporter_payload(ewb_no, transporter)).await?;
        TransporterData::from_json(&v)
            .ok_or_else(|| IrpError::Protocol("the transporter update answer has no transUpdateDate".into()))
    }
}

/// The `UPDATETRANSPORTER` payload, for both protocols.
pub fn transporter_payload(ewb_no: &str, transporter: &TransporterId) -> Value {
    let no = ewb_no.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(ewb_no));
    json!({"ewbNo": no, "transporterId": transporter.as_str()})
}

/// The `CANEWB` payload, for both protocols.
pub fn cancel_payload(ewb_no: &str, reason: EwbCancelReason, remark: &str) -> Value {
    let no = ewb_no.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(ewb_no));
    json!({"ewbNo": no, "cancelRsnCode": reason.code(), "cancelRmrk": remark})
}

/// Percent-encode anything outside the unreserved set in a path segment (IRNs and GSTINs are
/// alphanumeric, so this only guards against surprises).
fn path_segment(s: &str) -> String {
    encode(s, |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Percent-encode a query value, keeping `/` (legal in a query, and how NIC's samples send dates).
fn query_value(s: &str) -> String {
    encode(s, |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'))
}

fn encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::document::{DocNumber, DocType};
    use crate::sim::core::{NIC_PUBLIC_PEM, SIGNING_PUBLIC_PEM};
    use crate::sim::Simulator;
    use std::time::Duration;

    const GSTIN: &str = "29AAGCP4821K1Z3";

    fn cfg(base_url: &str) -> GstinConfig {
        GstinConfig {
            irp: None,
            failover: Vec::new(),
            provider: ProviderKind::Nic,
            environment: Environment::Sandbox,
            base_url: base_url.to_string(),
            email: String::new(),
            username: "API_USER".into(),
            password: SecretString::from("secret-pw".to_string()),
            client_id: "cid".into(),
            client_secret: SecretString::from("csecret".to_string()),
            ip_address: "127.0.0.1".into(),
            public_key_pem: Some(NIC_PUBLIC_PEM.into()),
            public_key_file: None,
            signing_key_pem: None,
            signing_key_file: None,
            type_names: Default::default(),
            reporting_window_days: None,
            header_spelling: HeaderSpelling::Underscore,
            rate_limit: None,
            upi_id: None,
            payee_name: None,
            ewb_expiry_warn_secs: None,
        }
    }

    /// The header names of the first request the adapter sends, read off the wire (lowercased).
    async fn header_names_sent(spelling: HeaderSpelling) -> Vec<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed before the headers ended");
                raw.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"Status":0,"ErrorDetails":[{"ErrorCode":"1010","ErrorMessage":"no"}]}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&raw).into_owned()
        });
        let nic = Nic::new(client(), GSTIN, &GstinConfig { header_spelling: spelling, ..cfg(&base) }).unwrap();
        assert!(nic.authenticate(false).await.unwrap_err().has_code("1010"));
        let raw = server.await.unwrap();
        raw.lines().skip(1).filter_map(|l| l.split_once(':')).map(|(k, _)| k.trim().to_ascii_lowercase()).collect()
    }

    #[tokio::test]
    async fn client_headers_follow_the_configured_spelling() {
        let names = header_names_sent(HeaderSpelling::Underscore).await;
        for n in ["client_id", "client_secret", "gstin"] {
            assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("client-")), "{names:?}");

        let names = header_names_sent(HeaderSpelling::Hyphen).await;
        for n in ["client-id", "client-secret", "gstin"] {
            assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("client_")), "{names:?}");
    }

    #[tokio::test]
    async fn hyphenated_headers_work_against_the_simulator() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let c = GstinConfig { header_spelling: HeaderSpelling::Hyphen, ..cfg(&sim.base_url()) };
        let nic = Nic::new(client(), GSTIN, &c).unwrap();
        let s = nic.authenticate(false).await.unwrap();
        let d = nic.generate(&s, &invoice("NIC/HYPHEN/1").to_string()).await.unwrap();
        assert_eq!(nic.get_by_doc(&s, &doc("NIC/HYPHEN/1")).await.unwrap().irn, d.irn);
    }

    fn client() -> reqwest::Client {
        crate::irp::http_client(Duration::from_secs(2), Duration::from_secs(10))
    }

    fn today() -> String {
        Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).format("%d/%m/%Y").to_string()
    }

    fn invoice(no: &str) -> Value {
        let mut v: Value =
            serde_json::from_str(include_str!("../../tests/data/sample-invoices/b2b-intra-goods.json")).unwrap();
        v["DocDtls"]["Dt"] = json!(today());
        v["DocDtls"]["No"] = json!(no);
        v
    }

    fn doc(no: &str) -> DocRef {
        DocRef {
            doc_type: DocType::Inv,
            doc_number: DocNumber::parse(no).unwrap(),
            doc_date: DocDate::parse(&today()).unwrap(),
        }
    }

    fn config_message(e: IrpError) -> String {
        match e {
            IrpError::Config(m) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn full_round_trip_against_the_simulator() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let nic = Nic::new(client(), GSTIN, &cfg(&sim.base_url())).unwrap();
        assert_eq!(nic.kind(), ProviderKind::Nic);
        let s = nic.authenticate(false).await.unwrap();
        assert!(s.sek.is_some());
        let life = s.expires_at - Utc::now();
        assert!(life > chrono::Duration::minutes(58) && life <= chrono::Duration::minutes(60), "IST parsed: {life}");

        // Same token (and SEK) again within its life, although each call uses a new AppKey.
        let again = nic.authenticate(false).await.unwrap();
        assert_eq!(again.token.expose_secret(), s.token.expose_secret());
        assert_eq!(again.sek, s.sek);

        let d = nic.generate(&s, &invoice("NIC/0001").to_string()).await.unwrap();
        assert_eq!(d.irn.len(), 64);
        assert!(!d.ack_no.is_empty() && parse_ist(&d.ack_dt).is_some());
        assert_eq!(d.status.as_deref(), Some("ACT"));
        assert!(d.signed_invoice.is_some() && d.signed_qr_code.is_some());

        let dup = nic.generate(&s, &invoice("NIC/0001").to_string()).await.unwrap_err();
        assert!(dup.has_code("2150"), "{dup:?}");
        assert_eq!(dup.duplicate_info().unwrap()["Irn"], json!(d.irn));
        assert_eq!(
            dup.table_class(crate::domain::outcome::Operation::Generate),
            crate::domain::outcome::Class::DuplicateIrn
        );

        let by_irn = nic.get_by_irn(&s, &d.irn).await.unwrap();
        assert_eq!((by_irn.irn.as_str(), by_irn.ack_no.as_str()), (d.irn.as_str(), d.ack_no.as_str()));
        let by_doc = nic.get_by_doc(&s, &doc("NIC/0001")).await.unwrap();
        assert_eq!(by_doc.irn, d.irn);
        let missing = nic.get_by_doc(&s, &doc("NIC/9999")).await.unwrap_err();
        assert!(missing.has_code("2154"), "{missing:?}");

        let g = nic.gstin_details(&s, "29AADCT5519H1Z4").await.unwrap();
        assert_eq!(g.gstin.as_deref(), Some("29AADCT5519H1Z4"));
        assert_eq!(g.status.as_deref(), Some("ACT"));
        assert!(g.is_active());
        let g = nic.sync_gstin(&s, "29AADCT5519H1Z4").await.unwrap();
        assert_eq!(g.gstin.as_deref(), Some("29AADCT5519H1Z4"));

        let no_ewb = nic.ewaybill_by_irn(&s, &d.irn).await.unwrap_err();
        assert!(no_ewb.has_code("4003"), "{no_ewb:?}");

        // rejectedirns answers Status "1" (a string).
        assert!(nic.rejected_irns(&s, DocDate::parse(&today()).unwrap()).await.unwrap().is_empty());
        sim.core.mark_rejected(&d.irn, None, None).unwrap();
        let rejected = nic.rejected_irns(&s, DocDate::parse(&today()).unwrap()).await.unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].irn.as_deref(), Some(d.irn.as_str()));

        let c = nic.cancel(&s, &d.irn, CancelReason::DataEntryMistake, "typo").await.unwrap();
        assert_eq!(c.irn, d.irn);
        assert!(parse_ist(&c.cancel_date).is_some());
        let twice = nic.cancel(&s, &d.irn, CancelReason::DataEntryMistake, "typo").await.unwrap_err();
        assert!(twice.has_code("9999"));

        // NIC's direct API has no B2C QR service: the provider does not offer the capability.
        assert!(nic.b2c().is_none());

        let st = sim.core.stats();
        assert_eq!(st.auth_calls, 2);
        assert_eq!(st.irns_created, 1);
    }

    #[tokio::test]
    async fn expired_token_is_1005() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let nic = Nic::new(client(), GSTIN, &cfg(&sim.base_url())).unwrap();
        let s = nic.authenticate(false).await.unwrap();
        sim.core.expire_tokens();
        let e = nic.generate(&s, &invoice("NIC/0002").to_string()).await.unwrap_err();
        assert!(matches!(e, IrpError::Api { .. }) && e.has_code("1005"), "{e:?}");
        assert_eq!(e.table_class(crate::domain::outcome::Operation::Generate), crate::domain::outcome::Class::Reauth);
        // A new auth gives a new token that works.
        let s2 = nic.authenticate(false).await.unwrap();
        assert_ne!(s2.token.expose_secret(), s.token.expose_secret());
        nic.generate(&s2, &invoice("NIC/0002").to_string()).await.unwrap();
    }

    #[tokio::test]
    async fn wrong_public_key_is_a_configuration_error() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let mut c = cfg(&sim.base_url());
        // A valid RSA key, but not the IRP's encryption key.
        c.public_key_pem = Some(SIGNING_PUBLIC_PEM.into());
        let nic = Nic::new(client(), GSTIN, &c).unwrap();
        let e = nic.authenticate(false).await.unwrap_err();
        assert!(e.has_code("1013"), "{e:?}");
        assert_eq!(
            e.table_class(crate::domain::outcome::Operation::Auth),
            crate::domain::outcome::Class::Configuration
        );
    }

    #[test]
    fn key_configuration_errors_name_the_gstin_and_key() {
        let mut c = cfg("http://127.0.0.1:1");
        c.public_key_pem = None;
        let m = config_message(Nic::new(client(), GSTIN, &c).unwrap_err());
        assert!(m.contains(GSTIN) && m.contains("public_key_pem") && m.contains("public_key_file"), "{m}");

        c.public_key_pem = Some("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n".into());
        let m = config_message(Nic::new(client(), GSTIN, &c).unwrap_err());
        assert!(m.contains(GSTIN) && m.contains("public_key_pem"), "{m}");

        c.public_key_pem = None;
        c.public_key_file = Some("/nonexistent/nic.pem".into());
        let m = config_message(Nic::new(client(), GSTIN, &c).unwrap_err());
        assert!(m.contains("public_key_file") && m.contains("/nonexistent/nic.pem"), "{m}");

        let mut c = cfg("http://127.0.0.1:1");
        c.signing_key_pem = Some("garbage".into());
        let m = config_message(Nic::new(client(), GSTIN, &c).unwrap_err());
        assert!(m.contains(GSTIN) && m.contains("signing_key_pem"), "{m}");

        // From a file, and the signing key accessor.
        let dir = std::env::temp_dir().join(format!("nic-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("signing.pem");
        std::fs::write(&path, SIGNING_PUBLIC_PEM).unwrap();
        let mut c = cfg("http://127.0.0.1:1");
        c.signing_key_file = Some(path.to_string_lossy().into_owned());
        let nic = Nic::new(client(), GSTIN, &c).unwrap();
        assert_eq!(nic.signing_key(), Some(&nic_crypto::parse_public_key_pem(SIGNING_PUBLIC_PEM).unwrap()));
        assert!(Nic::new(client(), GSTIN, &cfg("http://x")).unwrap().signing_key().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn signatures_are_verified_when_a_signing_key_is_configured() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let mut good = cfg(&sim.base_url());
        good.signing_key_pem = Some(SIGNING_PUBLIC_PEM.into());
        let nic = Nic::new(client(), GSTIN, &good).unwrap();
        let s = nic.authenticate(false).await.unwrap();
        let d = nic.generate(&s, &invoice("NIC/0003").to_string()).await.unwrap();
        nic.get_by_irn(&s, &d.irn).await.unwrap();

        let mut bad = cfg(&sim.base_url());
        bad.signing_key_pem = Some(NIC_PUBLIC_PEM.into());
        let wrong = Nic::new(client(), GSTIN, &bad).unwrap();
        let e = wrong.get_by_irn(&s, &d.irn).await.unwrap_err();
        match &e {
            IrpError::Signature(m) => assert!(m.contains("signature") && m.contains("does not verify"), "{m}"),
            other => panic!("expected Signature, got {other:?}"),
        }
        let e = wrong.generate(&s, &invoice("NIC/0004").to_string()).await.unwrap_err();
        assert!(matches!(e, IrpError::Signature(_)), "{e:?}");

        // A signature for another IRN is refused too.
        let mut swapped = d.clone();
        swapped.irn = "0".repeat(64);
        assert!(matches!(nic.verify_signatures(&swapped), Err(IrpError::Signature(m)) if m.contains("signed for IRN")));
    }

    #[tokio::test]
    async fn transport_failures() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let nic = Nic::new(client(), GSTIN, &cfg(&sim.base_url())).unwrap();
        let s = nic.authenticate(false).await.unwrap();

        sim.core.update_faults(|f| f.fail_next_5xx = 1);
        let e = nic.gstin_details(&s, "29AADCT5519H1Z4").await.unwrap_err();
        assert!(matches!(e, IrpError::Http { status: 503, .. }), "{e:?}");

        let no_sek = Session { sek: None, ..s.clone() };
        assert!(matches!(nic.gstin_details(&no_sek, "29AADCT5519H1Z4").await, Err(IrpError::Config(_))));

        // The IRN is committed but the answer comes too late: a timeout, then the lookup finds it.
        sim.core.update_faults(|f| {
            f.timeout_commit_next = 1;
            f.timeout_hang_ms = 1_500;
        });
        let impatient = Nic::new(
            crate::irp::http_client(Duration::from_secs(2), Duration::from_millis(300)),
            GSTIN,
            &cfg(&sim.base_url()),
        )
        .unwrap();
        let e = impatient.generate(&s, &invoice("NIC/0005").to_string()).await.unwrap_err();
        assert!(matches!(e, IrpError::Timeout(_)) && e.may_have_reached_irp(), "{e:?}");
        nic.get_by_doc(&s, &doc("NIC/0005")).await.unwrap();
    }

    #[test]
    fn envelopes_in_every_form() {
        let sek = Sek::new([9u8; 32]);
        let plain = json!({"Irn": "abc", "AckNo": 1});

        // Status as a string, Data with the SEK, InfoDtls kept.
        let v = json!({"Status": "1", "Data": nic_crypto::encrypt_json_b64(sek.expose(), &plain),
                       "InfoDtls": [{"InfCd": "EWBPPD", "Desc": "Pin-Pin calc distance: 57KM"}]});
        let out = open_response(&sek, &v).unwrap();
        assert_eq!(out["Irn"], "abc");
        assert_eq!(out["InfoDtls"][0]["InfCd"], "EWBPPD");

        // Rek + Hmac.
        let (data, rek, hmac) = nic_crypto::encrypt_response_with_rek(sek.expose(), &plain);
        let v = json!({"Status": 1, "Data": data, "Rek": rek, "Hmac": hmac});
        assert_eq!(open_response(&sek, &v).unwrap(), plain);
        let v = json!({"Status": 1, "Data": data, "Rek": rek, "Hmac": "AAAA"});
        assert!(matches!(open_response(&sek, &v), Err(IrpError::Protocol(m)) if m.contains("HMAC")));

        // A stale SEK.
        let v = json!({"Status": 1, "Data": nic_crypto::encrypt_json_b64(&[1u8; 32], &plain)});
        assert!(matches!(open_response(&sek, &v), Err(IrpError::Protocol(_))));
        // Unencrypted Data is not accepted.
        assert!(matches!(open_response(&sek, &json!({"Status": 1, "Data": plain})), Err(IrpError::Protocol(_))));

        // Errors: base64 ErrorDetails, InfoDtls as a JSON string.
        use base64::engine::general_purpose::STANDARD;
        let errs = STANDARD.encode(json!([{"ErrorCode": "2150", "ErrorMessage": "Duplicate IRN"}]).to_string());
        let info = json!([{"InfCd": "DUPIRN", "Desc": {"Irn": "xyz"}}]).to_string();
        let e = open_response(&sek, &json!({"Status": "0", "ErrorDetails": errs, "InfoDtls": info})).unwrap_err();
        assert!(e.has_code("2150"));
        assert_eq!(e.duplicate_info().unwrap()["Irn"], "xyz");
        // InfoDtls as base64 JSON.
        let e = open_response(
            &sek,
            &json!({"Status": 0, "ErrorDetails": [{"ErrorCode": "2150", "ErrorMessage": "d"}],
                                             "InfoDtls": STANDARD.encode(&info)}),
        )
        .unwrap_err();
        assert_eq!(e.duplicate_info().unwrap()["Irn"], "xyz");
        // Status 0 without errors, and no Status at all.
        assert!(matches!(open_response(&sek, &json!({"Status": 0})), Err(IrpError::Protocol(_))));
        assert!(matches!(open_response(&sek, &json!({"foo": 1})), Err(IrpError::Protocol(_))));
    }

    #[test]
    fn url_encoding_keeps_doc_numbers_readable() {
        assert_eq!(query_value("INV/24-25/1"), "INV/24-25/1");
        assert_eq!(query_value("a b&c"), "a%20b%26c");
        assert_eq!(path_segment("ab/c"), "ab%2Fc");
    }
}
