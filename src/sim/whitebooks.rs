//! The simulator's Whitebooks GSP face: `/einvoice/authenticate` and
//! `/einvoice/type/{TYPE}/version/{VERSION}`, the `status_cd`/`status_desc`/`data` envelope,
//! errors as a JSON string in `status_desc`, and `InfoDtls` (DUPIRN) on a repeat.
//!
//! It accepts both the seed's type names (`CANCELIRN`, `GETIRNBYDOC`, `GETREJECTEDIRN`,
//! `GETEWAYBILL`, `GETB2CQR`) and the names deployed integrations use (`CANCEL`,
//! `GETIRNBYDOCDETAILS`, `GETREJECTEDIRNS`, `GETEWAYBILLIRN`), so either client setting works.
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::core::{SimCore, SimError};
use crate::irp::types::format_ist;

pub fn routes() -> Router<Arc<SimCore>> {
    Router::new()
        .route("/einvoice/authenticate", get(authenticate))
        .route("/einvoice/type/{typ}/version/{version}", any(api))
}

fn ok(data: Value) -> Response {
    Json(json!({"status_cd": "1", "status_desc": "Success", "data": data})).into_response()
}

fn err(e: SimError) -> Response {
    let list: Vec<Value> = e.errors.iter().map(|(c, m)| json!({"ErrorCode": c, "ErrorMessage": m})).collect();
    let mut body =
        json!({"status_cd": "0", "status_desc": Value::String(Value::Array(list).to_string()), "irp": "NIC"});
    if !e.info.is_empty() {
        body["InfoDtls"] = Value::Array(e.info);
    }
    Json(body).into_response()
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The GSP's own checks: every call needs the client credentials, GSTIN, username and IP.
fn check_client(headers: &HeaderMap) -> Result<(), SimError> {
    for name in ["client_id", "client_secret", "gstin", "username", "ip_address"] {
        if h(headers, name).is_empty() {
            return Err(SimError::one("1010", format!("Invalid Client-ID/Client-Secret: header '{name}' is missing")));
        }
    }
    Ok(())
}

async fn authenticate(
    State(core): State<Arc<SimCore>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    core.count_auth_request();
    if let Err(e) = check_client(&headers) {
        return err(e);
    }
    if q.get("email").is_none_or(|e| e.is_empty()) {
        return err(SimError::one("1010", "email query parameter is required"));
    }
    // The GSP's auth API has no ForceRefreshAccessToken flag; like the IRP behind it, a re-auth
    // gets the same token until the token's last 10 minutes and a new one within them.
    match core.authenticate(h(&headers, "gstin"), h(&headers, "username"), h(&headers, "password"), true) {
        Ok(t) => ok(json!({"AuthToken": t.token, "Sek": "", "TokenExpiry": format_ist(t.expires_at)})),
        Err(e) => err(e),
    }
}

async fn api(
    State(core): State<Arc<SimCore>>,
    Path((typ, _version)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = check_client(&headers) {
        return err(e);
    }
    if let Err(secs) = core.check_quota(h(&headers, "client_id")) {
        return super::too_many_requests(secs);
    }
    match core.before_call().await {
        Err(None) => return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(),
        Err(Some(e)) => return err(e),
        Ok(()) => {}
    }
    let gstin = h(&headers, "gstin").to_string();
    if let Err(e) = core.check_token(h(&headers, "auth-token"), &gstin) {
        return err(e);
    }
    let json_body = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let param = |k: &str| q.get(k).cloned().unwrap_or_default();
    let str_of = |v: &Value, keys: &[&str]| {
        keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_string)).unwrap_or_default()
    };
    let result = match typ.as_str() {
        "GENERATE" => {
            let (res, hang) = core.generate(&gstin, &json_body());
            if let Some(d) = hang {
                tokio::time::sleep(d).await;
            }
            res
        }
        "GETIRN" => core.get_by_irn(&gstin, &param("param1")),
        "GETIRNBYDOCDETAILS" => {
            core.get_by_doc(&gstin, &param("param1"), h(&headers, "docnum"), h(&headers, "docdate"))
        }
        "GETIRNBYDOC" => {
            let b = json_body();
            core.get_by_doc(&gstin, &str_of(&b, &["docTyp"]), &str_of(&b, &["docNo"]), &str_of(&b, &["docDt"]))
        }
        "CANCEL" | "CANCELIRN" => {
            let b = json_body();
            core.cancel(
                &gstin,
                &str_of(&b, &["Irn", "irn"]),
                &str_of(&b, &["CnlRsn", "reason"]),
                &str_of(&b, &["CnlRem", "remark"]),
            )
        }
        "GSTNDETAILS" => core.gstin_details(&param("param1")),
        "SYNC_GSTIN_FROMCP" => core.sync_gstin(&param("param1")),
        "GETEWAYBILLIRN" | "GETEWAYBILL" => core.ewaybill_by_irn(&gstin, &param("param1")),
        "GENERATE_EWAYBILL" => core.generate_ewaybill(&gstin, &json_body()),
        "GENEWAYBILL" => {
            let (res, hang) = core.generate_ewaybill_doc(&gstin, &json_body());
            if let Some(d) = hang {
                tokio::time::sleep(d).await;
            }
            res
        }
        "GETEWAYBILLGENERATEDBYCONSIGNER" => core.ewaybill_by_doc(&gstin, &param("docType"), &param("docNo")),
        "CANEWB" | "VEHEWB" | "EXTENDVALIDITY" | "UPDATETRANSPORTER" => {
            core.ewb_action(&gstin, &typ, &json_body(), h(&headers, "irp"))
        }
        "GETREJECTEDIRNS" | "GETREJECTEDIRN" => core.rejected_irns(&gstin, &param("param1")),
        "GETB2CQR" => {
            let b = json_body();
            core.b2c_qr(&gstin, &str_of(&b, &["docTyp"]), &str_of(&b, &["docNo"]), &str_of(&b, &["docDt"]))
        }
        other => Err(SimError::one("GSPERR404", format!("unknown type '{other}'"))),
    };
    match result {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}
