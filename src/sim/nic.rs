//! The simulator's NIC IRP direct face, over the same [`SimCore`] as the Whitebooks face.
//!
//! Paths (all relative to the simulator's base URL):
//! - `POST /eivital/v1.04/auth`: body `{"Data": RSA(base64(auth JSON))}`, answer not encrypted;
//! - `POST /eicore/v1.03/Invoice`: generate;
//! - `GET  /eicore/v1.03/Invoice/irn/{irn}`: get by IRN;
//! - `GET  /eicore/v1.03/Invoice/irnbydocdetails?doctype=&docnum=&docdate=`: get by document;
//! - `POST /eicore/v1.03/Invoice/Cancel`: body `{"Irn","CnlRsn","CnlRem"}`;
//! - `GET  /eicore/v1.03/Invoice/rejectedirns?date=dd/mm/yyyy`;
//! - `GET  /eivital/v1.04/Master/gstin/{gstin}` and `GET /eivital/v1.04/Master/syncgstin/{gstin}`;
//! - `GET  /eiewb/v1.03/ewaybill/irn/{irn}`.
//!
//! Every answer is `{"Status", "Data", "ErrorDetails", "InfoDtls"}`. On success `Data` is the
//! answer encrypted with the token's SEK (AES-256-ECB, base64); on failure `ErrorDetails` is a
//! JSON list of `{"ErrorCode","ErrorMessage"}` and `InfoDtls` a list (or null). `Status` is the
//! number 1/0, except on `rejectedirns`, where it is the string `"1"`/`"0"` as in NIC's own sample,
//! so clients must accept both.
//!
//! There is no B2C QR route: NIC has no such API (it is a GSP feature).
//!
//! E-way bills (generate by IRN, and the e-way bill API's cancel and vehicle update) are in [`ewb`].
mod ewb;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::core::{SimCore, SimError, SimToken};
use crate::irp::nic_crypto::{self, AppKey, CryptoError};
use crate::irp::types::format_ist;

pub fn routes() -> Router<Arc<SimCore>> {
    Router::new()
        .route("/eivital/v1.04/auth", post(authenticate))
        .route("/eicore/v1.03/Invoice", post(generate))
        .route("/eicore/v1.03/Invoice/irn/{irn}", get(get_by_irn))
        .route("/eicore/v1.03/Invoice/irnbydocdetails", get(get_by_doc))
        .route("/eicore/v1.03/Invoice/Cancel", post(cancel))
        .route("/eicore/v1.03/Invoice/rejectedirns", get(rejected_irns))
        .route("/eivital/v1.04/Master/gstin/{gstin}", get(gstin_details))
        .route("/eivital/v1.04/Master/syncgstin/{gstin}", get(sync_gstin))
        .route("/eiewb/v1.03/ewaybill/irn/{irn}", get(ewaybill_by_irn))
        .merge(ewb::routes())
}

/// How `Status` is written in an answer.
#[derive(Clone, Copy)]
enum StatusForm {
    Number,
    Text,
}

impl StatusForm {
    fn value(self, ok: bool) -> Value {
        match (self, ok) {
            (StatusForm::Number, true) => json!(1),
            (StatusForm::Number, false) => json!(0),
            (StatusForm::Text, true) => json!("1"),
            (StatusForm::Text, false) => json!("0"),
        }
    }
}

fn failure(e: SimError, form: StatusForm) -> Response {
    let list: Vec<Value> = e.errors.iter().map(|(c, m)| json!({"ErrorCode": c, "ErrorMessage": m})).collect();
    let info = if e.info.is_empty() { Value::Null } else { Value::Array(e.info) };
    Json(json!({"Status": form.value(false), "Data": null, "ErrorDetails": list, "InfoDtls": info})).into_response()
}

/// A request header by NIC's documented name (`client_id`), or by the same name with hyphens
/// (`client-id`): NIC documents the underscores, but the real IRP also accepts the hyphens that
/// gst_irn sends (its tests pass against the sandbox), so the simulator must not be stricter.
/// Case never matters: HTTP header names are case-insensitive and `HeaderMap` lowercases them.
fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    let hyphenated = name.replace('_', "-");
    headers.get(name).or_else(|| headers.get(hyphenated.as_str())).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// NIC's client checks: the API credentials and GSTIN on every call (`user_name` too after auth).
fn check_client(headers: &HeaderMap, names: &[&str]) -> Result<(), SimError> {
    for name in names {
        if h(headers, name).trim().is_empty() {
            let alt = name.replace('_', "-");
            let also = if alt == *name { String::new() } else { format!(" (or '{alt}')") };
            return Err(SimError::one(
                "1010",
                format!("Invalid Client-ID/Client-Secret: header '{name}'{also} is missing"),
            ));
        }
    }
    Ok(())
}

/// `{"Data": "<string>"}` from a request body.
fn data_field(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("Data").and_then(Value::as_str).map(str::to_string)
}

async fn authenticate(State(core): State<Arc<SimCore>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form = StatusForm::Number;
    core.count_auth_request();
    if let Err(e) = check_client(&headers, &["client_id", "client_secret", "Gstin"]) {
        return failure(e, form);
    }
    let Some(data) = data_field(&body) else {
        return failure(SimError::one("1013", "Decryption of password failed: the body has no Data"), form);
    };
    let req = match nic_crypto::decrypt_auth_request(&core.nic_key, &data) {
        Ok(r) => r,
        // The payload decrypted, but the AppKey inside it is not 32 bytes of base64.
        Err(CryptoError::BadKeyLength { what: "AppKey", .. } | CryptoError::Base64 { what: "AppKey", .. }) => {
            return failure(SimError::one("1016", "Decryption of App Key failed"), form);
        }
        Err(_) => {
            return failure(
                SimError::one("1013", "Decryption of password failed: encrypt the payload with the IRP's public key"),
                form,
            );
        }
    };
    let gstin = h(&headers, "Gstin");
    match core.authenticate(gstin, &req.user_name, &req.password, req.force_refresh) {
        Ok(t) => {
            let app_key = AppKey::from_bytes(req.app_key);
            Json(json!({
                "Status": 1,
                "Data": {
                    "ClientId": h(&headers, "client_id"),
                    "UserName": req.user_name,
                    "AuthToken": t.token,
                    "Sek": nic_crypto::encrypt_sek(&app_key, &t.sek),
                    "TokenExpiry": format_ist(t.expires_at),
                },
                "ErrorDetails": null,
                "InfoDtls": null,
            }))
            .into_response()
        }
        Err(e) => failure(e, form),
    }
}

/// The IRP whose data the call is about: NIC's cross-portal APIs (get IRN, get by document,
/// cancel IRN, generate and get e-way bill by IRN) take the `irp` header naming the other side.
fn cross(core: &Arc<SimCore>, headers: &HeaderMap) -> Result<Arc<SimCore>, SimError> {
    core.cross_target(h(headers, "irp"))
}

/// Checks every API call shares: client headers, injected faults, the token (which must belong
/// to the `Gstin` and `user_name` sent). `Err` is the answer to send instead.
async fn guard(core: &SimCore, headers: &HeaderMap, form: StatusForm) -> Result<(SimToken, String), Response> {
    check_client(headers, &["client_id", "client_secret", "Gstin", "user_name"]).map_err(|e| failure(e, form))?;
    core.check_quota(h(headers, "client_id")).map_err(crate::sim::too_many_requests)?;
    match core.before_call().await {
        Err(None) => return Err((StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()),
        Err(Some(e)) => return Err(failure(e, form)),
        Ok(()) => {}
    }
    let gstin = h(headers, "Gstin").to_string();
    let token = core.check_token(h(headers, "AuthToken"), &gstin).map_err(|e| failure(e, form))?;
    if token.user != h(headers, "user_name") {
        return Err(failure(SimError::one("1005", "Invalid Token"), form));
    }
    Ok((token, gstin))
}

/// The decrypted JSON of a POST body, or the 2140 error.
fn decrypt_body(token: &SimToken, body: &[u8]) -> Result<Value, SimError> {
    data_field(body)
        .and_then(|d| nic_crypto::decrypt_json_b64(&token.sek, &d).ok())
        .ok_or_else(|| SimError::one("2140", "Invalid request: could not decrypt Data"))
}

fn answer(token: &SimToken, result: Result<Value, SimError>, form: StatusForm) -> Response {
    match result {
        Ok(v) => Json(json!({
            "Status": form.value(true),
            "Data": nic_crypto::encrypt_json_b64(&token.sek, &v),
            "ErrorDetails": null,
            "InfoDtls": null,
        }))
        .into_response(),
        Err(e) => failure(e, form),
    }
}

/// A string field that may also arrive as a number (`CnlRsn: 1`).
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

async fn generate(State(core): State<Arc<SimCore>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form = StatusForm::Number;
    let (token, gstin) = match guard(&core, &headers, form).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let invoice = match decrypt_body(&token, &body) {
        Ok(v) => v,
        Err(e) => return failure(e, form),
    };
    let (res, hang) = core.generate(&gstin, &invoice);
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    answer(&token, res, form)
}

async fn get_by_irn(State(core): State<Arc<SimCore>>, headers: HeaderMap, Path(irn): Path<String>) -> Response {
    let form = StatusForm::Number;
    match guard(&core, &headers, form).await {
        Ok((token, gstin)) => answer(&token, cross(&core, &headers).and_then(|c| c.get_by_irn(&gstin, &irn)), form),
        Err(r) => r,
    }
}

async fn get_by_doc(
    State(core): State<Arc<SimCore>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let form = StatusForm::Number;
    let (token, gstin) = match guard(&core, &headers, form).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let p = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if p("doctype").is_empty() || p("docnum").is_empty() || p("docdate").is_empty() {
        return failure(SimError::one("2140", "doctype, docnum and docdate are required"), form);
    }
    let found = cross(&core, &headers).and_then(|c| c.get_by_doc(&gstin, p("doctype"), p("docnum"), p("docdate")));
    answer(&token, found, form)
}

async fn cancel(State(core): State<Arc<SimCore>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form = StatusForm::Number;
    let (token, gstin) = match guard(&core, &headers, form).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let b = match decrypt_body(&token, &body) {
        Ok(v) => v,
        Err(e) => return failure(e, form),
    };
    let cancelled = cross(&core, &headers)
        .and_then(|c| c.cancel(&gstin, &text(&b, "Irn"), &text(&b, "CnlRsn"), &text(&b, "CnlRem")));
    answer(&token, cancelled, form)
}

async fn rejected_irns(
    State(core): State<Arc<SimCore>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // NIC's sample answer for this API writes Status as a string.
    let form = StatusForm::Text;
    match guard(&core, &headers, form).await {
        Ok((token, gstin)) => {
            answer(&token, core.rejected_irns(&gstin, q.get("date").map(String::as_str).unwrap_or("")), form)
        }
        Err(r) => r,
    }
}

async fn gstin_details(State(core): State<Arc<SimCore>>, headers: HeaderMap, Path(gstin): Path<String>) -> Response {
    let form = StatusForm::Number;
    match guard(&core, &headers, form).await {
        Ok((token, _)) => answer(&token, core.gstin_details(&gstin), form),
        Err(r) => r,
    }
}

async fn sync_gstin(State(core): State<Arc<SimCore>>, headers: HeaderMap, Path(gstin): Path<String>) -> Response {
    let form = StatusForm::Number;
    match guard(&core, &headers, form).await {
        Ok((token, _)) => answer(&token, core.sync_gstin(&gstin), form),
        Err(r) => r,
    }
}

async fn ewaybill_by_irn(State(core): State<Arc<SimCore>>, headers: HeaderMap, Path(irn): Path<String>) -> Response {
    let form = StatusForm::Number;
    match guard(&core, &headers, form).await {
        Ok((token, gstin)) => {
            answer(&token, cross(&core, &headers).and_then(|c| c.ewaybill_by_irn(&gstin, &irn)), form)
        }
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Simulator;

    fn public_key() -> rsa::RsaPublicKey {
        nic_crypto::parse_public_key_pem(crate::sim::core::NIC_PUBLIC_PEM).unwrap()
    }

    async fn post(url: String, headers: &[(&str, &str)], body: Value) -> Value {
        let mut rb = reqwest::Client::new().post(url).json(&body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap().json().await.unwrap()
    }

    const CLIENT: [(&str, &str); 3] = [("client_id", "cid"), ("client_secret", "cs"), ("Gstin", "29AAGCP4821K1Z3")];

    #[tokio::test]
    async fn auth_checks_headers_and_key() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let url = format!("{}/eivital/v1.04/auth", sim.base_url());
        let app_key = AppKey::random();
        let data = nic_crypto::encrypt_auth_request(&public_key(), "user", "pw", &app_key, false).unwrap();

        let r = post(url.clone(), &CLIENT[..2], json!({"Data": data})).await;
        assert_eq!(r["Status"], 0);
        assert_eq!(r["ErrorDetails"][0]["ErrorCode"], "1010");

        let r = post(url.clone(), &CLIENT, json!({"Data": "bm90IHJzYQ=="})).await;
        assert_eq!(r["ErrorDetails"][0]["ErrorCode"], "1013");

        let r = post(url.clone(), &CLIENT, json!({"Data": data})).await;
        assert_eq!(r["Status"], 1, "{r}");
        let sek = nic_crypto::decrypt_sek(&app_key, r["Data"]["Sek"].as_str().unwrap()).unwrap();
        let token = r["Data"]["AuthToken"].as_str().unwrap().to_string();
        assert!(crate::irp::types::parse_ist(r["Data"]["TokenExpiry"].as_str().unwrap()).is_some());

        // A body not encrypted with the SEK is 2140; a token used with another user_name is 1005.
        let mut hs: Vec<(&str, &str)> = CLIENT.to_vec();
        hs.extend([("user_name", "user"), ("AuthToken", token.as_str())]);
        let inv = format!("{}/eicore/v1.03/Invoice", sim.base_url());
        let r = post(inv.clone(), &hs, json!({"Data": nic_crypto::encrypt_json_b64(&[7u8; 32], &json!({}))})).await;
        assert_eq!(r["ErrorDetails"][0]["ErrorCode"], "2140");
        let r = post(inv.clone(), &hs, json!({"Data": nic_crypto::encrypt_json_b64(&sek, &json!({}))})).await;
        assert_eq!(r["ErrorDetails"][0]["ErrorCode"], "2140", "schema error from the core");
        hs[3] = ("user_name", "someone-else");
        let r = post(inv, &hs, json!({"Data": nic_crypto::encrypt_json_b64(&sek, &json!({}))})).await;
        assert_eq!(r["ErrorDetails"][0]["ErrorCode"], "1005");
    }

    /// The real IRP accepts gst_irn's `client-id`/`client-secret`/`gstin` as well as NIC's documented
    /// `client_id`/`client_secret`/`Gstin`, in any case; the simulator must not be stricter.
    #[tokio::test]
    async fn client_headers_in_either_spelling_and_any_case() {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let auth = format!("{}/eivital/v1.04/auth", sim.base_url());
        let app_key = AppKey::random();
        let data = nic_crypto::encrypt_auth_request(&public_key(), "user", "pw", &app_key, false).unwrap();

        let gst_irn = [("client-id", "cid"), ("client-secret", "cs"), ("gstin", "29AAGCP4821K1Z3")];
        let r = post(auth.clone(), &gst_irn, json!({"Data": data})).await;
        assert_eq!(r["Status"], 1, "{r}");
        assert_eq!(r["Data"]["ClientId"], "cid");
        let sek = nic_crypto::decrypt_sek(&app_key, r["Data"]["Sek"].as_str().unwrap()).unwrap();
        let token = r["Data"]["AuthToken"].as_str().unwrap().to_string();

        let shouting = [("CLIENT_ID", "cid"), ("Client-Secret", "cs"), ("GSTIN", "29AAGCP4821K1Z3")];
        assert_eq!(post(auth.clone(), &shouting, json!({"Data": data})).await["Status"], 1);

        // An API call with gst_irn's headers (user_name keeps its underscore there too).
        let mut hs: Vec<(&str, &str)> = gst_irn.to_vec();
        hs.extend([("user_name", "user"), ("AuthToken", token.as_str())]);
        let inv = format!("{}/eicore/v1.03/Invoice", sim.base_url());
        let r = post(inv, &hs, json!({"Data": nic_crypto::encrypt_json_b64(&sek, &json!({}))})).await;
        assert_eq!(r["ErrorDetails"][0]["ErrorCode"], "2140", "past the client checks: {r}");

        // Neither spelling: 1010, naming both.
        let r = post(
            auth,
            &[("clientid", "cid"), ("client-secret", "cs"), ("gstin", "29AAGCP4821K1Z3")],
            json!({"Data": data}),
        )
        .await;
        assert_eq!(r["ErrorDetails"][0]["ErrorCode"], "1010");
        let msg = r["ErrorDetails"][0]["ErrorMessage"].as_str().unwrap();
        assert!(msg.contains("'client_id'") && msg.contains("'client-id'"), "{msg}");
    }
}
