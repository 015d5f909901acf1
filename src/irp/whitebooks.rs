//! The Whitebooks GSP e-invoice API (seed `002_…`): plain JSON, the GSP does the NIC crypto.
//!
//! Every call carries `username`, `ip_address`, `client_id`, `client_secret`, `gstin` (and
//! `auth-token`, `password` where the seed shows them) plus `?email=`. Answers are wrapped in
//! `{"status_cd", "status_desc", "data"}`; on failure `status_desc` is a JSON *string* holding
//! `[{"ErrorCode","ErrorMessage"}]`.
//!
//! The `type` names differ between the seed (`CANCELIRN`, `GETIRNBYDOC`, …) and the names used
//! by working integrations against api.whitebooks.in (`CANCEL`, `GETIRNBYDOCDETAILS`, …). We
//! default to the latter and let each be overridden in configuration (`type_names`).
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::errors::{from_reqwest, get_ci, http_error, parse_error_list};
use super::ewaybill::{EwbCancelData, EwbData, ExtendData, TransporterData, VehicleData};
use super::types::parse_ist;
use super::{
    B2cQr, B2cQrCode, CancelData, Ewaybills, EwbByIrn, GstinDetails, Gstins, Irn, IrnData, IrpError, IrpProvider,
    RejectedIrn, Session,
};
use crate::config::{Environment, GstinConfig, ProviderKind, RateLimit};
use crate::domain::command::ewaybill::{EwbCancelReason, VehicleUpdate};
use crate::domain::command::ewaybill_extend::ExtendValidity;
use crate::domain::command::ewaybill_update_transporter::TransporterId;
use crate::domain::command::{CancelReason, DocRef};
use crate::domain::DocDate;

/// Logical operations and their default Whitebooks `type` names.
pub const DEFAULT_TYPE_NAMES: &[(&str, &str)] = &[
    ("generate", "GENERATE"),
    ("cancel", "CANCEL"),
    ("get_irn", "GETIRN"),
    ("get_by_doc", "GETIRNBYDOCDETAILS"),
    ("gstin_details", "GSTNDETAILS"),
    ("sync_gstin", "SYNC_GSTIN_FROMCP"),
    ("ewaybill_by_irn", "GETEWAYBILLIRN"),
    ("rejected_irns", "GETREJECTEDIRNS"),
    ("b2c_qr", "GETB2CQR"),
    ("generate_ewaybill", "GENERATE_EWAYBILL"),
    ("cancel_ewaybill", "CANEWB"),
    ("update_vehicle", "VEHEWB"),
    ("extend_validity", "EXTENDVALIDITY"),
    ("update_transporter", "UPDATETRANSPORTER"),
    ("generate_ewaybill_doc", "GENEWAYBILL"),
    ("ewaybill_by_doc", "GETEWAYBILLGENERATEDBYCONSIGNER"),
];

pub struct Whitebooks {
    irp: String,
    http: reqwest::Client,
    base_url: String,
    gstin: String,
    email: String,
    username: String,
    password: SecretString,
    client_id: String,
    client_secret: SecretString,
    ip_address: String,
    environment: Environment,
    type_names: BTreeMap<String, String>,
    /// NIC's signing key, when configured: the GSP passes NIC's signed JWTs through.
    signing_key: Option<std::sync::Arc<rsa::RsaPublicKey>>,
    rate_limit: Option<RateLimit>,
}

impl Whitebooks {
    pub fn new(http: reqwest::Client, gstin: &str, cfg: &GstinConfig) -> Result<Whitebooks, IrpError> {
        let mut type_names: BTreeMap<String, String> =
            DEFAULT_TYPE_NAMES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        type_names.extend(cfg.type_names.clone());
        Ok(Whitebooks {
            irp: cfg.irp_name(),
            http,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            gstin: gstin.to_string(),
            email: cfg.email.clone(),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            ip_address: cfg.ip_address.clone(),
            environment: cfg.environment,
            type_names,
            signing_key: super::signing::signing_key(gstin, cfg)?,
            rate_limit: cfg.rate_limit,
        })
    }

    /// An IRN answer, with its signatures checked when a signing key is configured.
    fn irn_data(&self, v: Value) -> Result<IrnData, IrpError> {
        let d = IrnData::from_json(&v).ok_or_else(|| IrpError::Protocol("the answer has no Irn/AckNo".into()))?;
        super::signing::verify_irn_signatures(self.signing_key.as_deref(), &self.gstin, &d)?;
        Ok(d)
    }

    fn type_name<'a>(&'a self, op: &'a str) -> &'a str {
        self.type_names.get(op).map(String::as_str).unwrap_or(op)
    }

    fn request(&self, method: Method, op: &str, s: &Session) -> RequestBuilder {
        let url = format!("{}/einvoice/type/{}/version/V1_03", self.base_url, self.type_name(op));
        self.http
            .request(method, url)
            .query(&[("email", &self.email)])
            .header("email", &self.email)
            .header("username", &self.username)
            .header("password", self.password.expose_secret())
            .header("ip_address", &self.ip_address)
            .header("client_id", &self.client_id)
            .header("client_secret", self.client_secret.expose_secret())
            .header("gstin", &self.gstin)
            .header("auth-token", s.token.expose_secret())
    }

    async fn call(&self, rb: RequestBuilder) -> Result<Value, IrpError> {
        let resp = rb.send().await.map_err(from_reqwest)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(from_reqwest)?;
        if !(200..300).contains(&status) {
            return Err(http_error(status, &headers, text));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| IrpError::Protocol(format!("not JSON: {e}")))?;
        unwrap_envelope(v)
    }
}

/// `status_cd` "1" / "Sucess" (sic) / "Success" is success; anything else carries errors.
pub fn unwrap_envelope(v: Value) -> Result<Value, IrpError> {
    let cd = get_ci(&v, "status_cd").unwrap_or_default();
    let ok = matches!(cd.to_ascii_lowercase().as_str(), "1" | "sucess" | "success");
    if ok {
        return Ok(v.get("data").cloned().unwrap_or(Value::Null));
    }
    let desc = v.get("status_desc").cloned().unwrap_or(Value::Null);
    let mut errors = parse_error_list(&desc);
    if errors.is_empty() {
        errors = parse_error_list(v.get("error").unwrap_or(&Value::Null));
    }
    if errors.is_empty() {
        return Err(IrpError::Protocol(format!("status_cd '{cd}' without an error list")));
    }
    let info = ["InfoDtls", "info", "infoDtls"]
        .iter()
        .find_map(|k| v.get(*k))
        .map(|i| match i {
            Value::Array(a) => a.clone(),
            Value::String(s) => serde_json::from_str::<Vec<Value>>(s).unwrap_or_default(),
            other => vec![other.clone()],
        })
        .unwrap_or_default();
    Err(IrpError::Api { errors, info })
}

#[async_trait]
impl IrpProvider for Whitebooks {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Whitebooks
    }

    fn irp(&self) -> &str {
        &self.irp
    }

    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    async fn authenticate(&self, _force_refresh: bool) -> Result<Session, IrpError> {
        let rb = self
            .http
            .get(format!("{}/einvoice/authenticate", self.base_url))
            .query(&[("email", &self.email)])
            .header("username", &self.username)
            .header("password", self.password.expose_secret())
            .header("ip_address", &self.ip_address)
            .header("client_id", &self.client_id)
            .header("client_secret", self.client_secret.expose_secret())
            .header("gstin", &self.gstin);
        let data = self.call(rb).await?;
        let token =
            get_ci(&data, "AuthToken").ok_or_else(|| IrpError::Protocol("auth answer has no AuthToken".into()))?;
        let now = Utc::now();
        // Without a readable expiry, assume the documented lifetime minus a safety minute.
        let default_life = match self.environment {
            Environment::Sandbox => chrono::Duration::minutes(59),
            Environment::Production => chrono::Duration::minutes(359),
        };
        let expires_at = get_ci(&data, "TokenExpiry").and_then(|s| parse_ist(&s)).unwrap_or(now + default_life);
        Ok(Session { token: SecretString::from(token), sek: None, expires_at, obtained_at: now })
    }

    fn b2c(&self) -> Option<&dyn B2cQr> {
        Some(self)
    }
}

#[async_trait]
impl Irn for Whitebooks {
    async fn generate(&self, s: &Session, invoice: &str) -> Result<IrnData, IrpError> {
        let rb = self.request(Method::POST, "generate", s).header(reqwest::header::CONTENT_TYPE, "application/json");
        self.irn_data(self.call(rb.body(invoice.to_owned())).await?)
    }

    async fn get_by_irn(&self, s: &Session, irn: &str) -> Result<IrnData, IrpError> {
        self.irn_data(self.call(self.request(Method::GET, "get_irn", s).query(&[("param1", irn)])).await?)
    }

    async fn get_by_doc(&self, s: &Session, doc: &DocRef) -> Result<IrnData, IrpError> {
        let date = doc.doc_date.to_string();
        let rb = if self.type_name("get_by_doc") == "GETIRNBYDOC" {
            // The seed's form: POST with a JSON body.
            self.request(Method::POST, "get_by_doc", s).json(&json!({
                "docNo": doc.doc_number.as_str(), "docDt": date, "docTyp": doc.doc_type.as_str()
            }))
        } else {
            self.request(Method::GET, "get_by_doc", s)
                .query(&[("param1", doc.doc_type.as_str())])
                .header("docnum", doc.doc_number.as_str())
                .header("docdate", &date)
        };
        self.irn_data(self.call(rb).await?)
    }

    async fn cancel(&self, s: &Session, irn: &str, reason: CancelReason, remark: &str) -> Result<CancelData, IrpError> {
        let body = json!({"Irn": irn, "CnlRsn": reason.code(), "CnlRem": remark});
        let v = self.call(self.request(Method::POST, "cancel", s).json(&body)).await?;
        CancelData::from_json(&v).ok_or_else(|| IrpError::Protocol("the cancel answer has no Irn/CancelDate".into()))
    }

    async fn rejected_irns(&self, s: &Session, date: DocDate) -> Result<Vec<RejectedIrn>, IrpError> {
        let v = self.call(self.request(Method::GET, "rejected_irns", s).query(&[("param1", date.to_string())])).await?;
        let list = match v {
            Value::Array(a) => a,
            Value::Null => Vec::new(),
            other => other.get("RejectedIrns").and_then(Value::as_array).cloned().unwrap_or_else(|| vec![other]),
        };
        Ok(list.iter().map(RejectedIrn::from_json).collect())
    }
}

#[async_trait]
impl Gstins for Whitebooks {
    async fn gstin_details(&self, s: &Session, gstin: &str) -> Result<GstinDetails, IrpError> {
        let v = self.call(self.request(Method::GET, "gstin_details", s).query(&[("param1", gstin)])).await?;
        Ok(GstinDetails::from_json(&v))
    }

    async fn sync_gstin(&self, s: &Session, gstin: &str) -> Result<GstinDetails, IrpError> {
        let v = self.call(self.request(Method::GET, "sync_gstin", s).query(&[("param1", gstin)])).await?;
        Ok(GstinDetails::from_json(&v))
    }
}

#[async_trait]
impl Ewaybills for Whitebooks {
    async fn ewaybill_by_irn(&self, s: &Session, irn: &str) -> Result<EwbByIrn, IrpError> {
        let v = self.call(self.request(Method::GET, "ewaybill_by_irn", s).query(&[("param1", irn)])).await?;
        Ok(EwbByIrn::from_json(&v))
    }

    async fn generate_ewaybill(&self, s: &Session, request: &Value) -> Result<EwbData, IrpError> {
        let v = self.call(self.request(Method::POST, "generate_ewaybill", s).json(request)).await?;
        EwbData::from_json(&v).ok_or_else(|| IrpError::Protocol("the e-way bill answer has no EwbNo".into()))
    }

    async fn cancel_ewaybill(
        &self,
        s: &Session,
        ewb_no: &str,
        reason: EwbCancelReason,
        remark: &str,
    ) -> Result<EwbCancelData, IrpError> {
        let body = super::nic::cancel_payload(ewb_no, reason, remark);
        let v = self.call(self.request(Method::POST, "cancel_ewaybill", s).json(&body)).await?;
        EwbCancelData::from_json(&v, ewb_no)
            .ok_or_else(|| IrpError::Protocol("the e-way bill cancel answer has no cancelDate".into()))
    }

    async fn update_vehicle(&self, s: &Session, ewb_no: &str, update: &VehicleUpdate) -> Result<VehicleData, IrpError> {
        let v = self.call(self.request(Method::POST, "update_vehicle", s).json(&update.request(ewb_no))).await?;
        VehicleData::from_json(&v)
            .ok_or_else(|| IrpError::Protocol("the vehicle update answer has no vehUpdDate".into()))
    }

    async fn extend_validity(
        &self,
        s: &Session,
        ewb_no: &str,
        extend: &ExtendValidity,
    ) -> Result<ExtendData, IrpError> {
        let v = self.call(self.request(Method::POST, "extend_validity", s).json(&extend.request(ewb_no))).await?;
        ExtendData::from_json(&v).ok_or_else(|| IrpError::Protocol("the extension answer has no updatedDate".into()))
    }

    async fn generate_ewaybill_doc(&self, s: &Session, request: &Value) -> Result<EwbData, IrpError> {
        let v = self.call(self.request(Method::POST, "generate_ewaybill_doc", s).json(request)).await?;
        EwbData::from_json(&v).ok_or_else(|| IrpError::Protocol("the GENEWAYBILL answer has no ewayBillNo".into()))
    }

    async fn ewaybill_by_doc(&self, s: &Session, doc_type: &str, doc_no: &str) -> Result<Option<EwbData>, IrpError> {
        let q = [("docType", doc_type), ("docNo", doc_no)];
        match self.call(self.request(Method::GET, "ewaybill_by_doc", s).query(&q)).await {
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
        let body = super::nic::transporter_payload(ewb_no, transporter);
        let v = self.call(self.request(Method::POST, "update_transporter", s).json(&body)).await?;
        TransporterData::from_json(&v)
            .ok_or_else(|| IrpError::Protocol("the transporter update answer has no transUpdateDate".into()))
    }
}

/// Whitebooks passes the B2C QR service through (`GETB2CQR`).
#[async_trait]
impl B2cQr for Whitebooks {
    async fn b2c_qr(&self, s: &Session, doc: &DocRef) -> Result<B2cQrCode, IrpError> {
        let body = json!({"docNo": doc.doc_number.as_str(), "docDt": doc.doc_date.to_string(), "docTyp": doc.doc_type.as_str()});
        let v = self.call(self.request(Method::POST, "b2c_qr", s).json(&body)).await?;
        Ok(B2cQrCode::from_json(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_success_and_error_forms() {
        let ok =
            unwrap_envelope(json!({"status_cd":"Sucess","status_desc":"Success","data":{"AuthToken":"x"}})).unwrap();
        assert_eq!(ok["AuthToken"], "x");
        let err = unwrap_envelope(json!({
            "status_cd":"0",
            "status_desc":"[{\"ErrorCode\":\"2150\",\"ErrorMessage\":\"Duplicate IRN\"}]",
            "InfoDtls":[{"InfCd":"DUPIRN","Desc":{"Irn":"abc","AckNo":1,"AckDt":"2025-04-01 10:00:00"}}]
        }))
        .unwrap_err();
        assert!(err.has_code("2150"));
        assert_eq!(err.duplicate_info().unwrap()["Irn"], "abc");
    }
}
