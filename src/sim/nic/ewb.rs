//! The simulator's NIC e-way bill routes, under the same token and SEK as the e-invoice API:
//! - `POST /eiewb/v1.03/ewaybill`: generate by IRN, answered like every e-invoice call;
//! - `POST /ewaybillapi/v1.03/ewayapi`: the e-way bill API, body `{"action": "CANEWB" | "VEHEWB" |
//!   "EXTENDVALIDITY" | "UPDATETRANSPORTER" | "GENEWAYBILL",
//!   "data": AES(SEK, payload)}`, answering `{"status": "1", "data": AES(SEK, JSON)}` or
//!   `{"status": "0", "error": base64({"errorCodes": "312,"})}` (codes only, as NIC does);
//! - `GET /ewaybillapi/v1.03/ewayapi/GetEwayBillGeneratedByConsigner?docType=…&docNo=…`: the
//!   e-way bill made for a document, in the same envelope (325 when there is none).
use std::sync::Arc;

use axum::extract::Query;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use super::{answer, check_client, decrypt_body, failure, guard, h, StatusForm};
use crate::irp::nic_crypto;
use crate::sim::core::{SimCore, SimError};

pub fn routes() -> Router<Arc<SimCore>> {
    Router::new()
        .route("/eiewb/v1.03/ewaybill", post(generate))
        .route("/ewaybillapi/v1.03/ewayapi", post(ewayapi))
        .route("/ewaybillapi/v1.03/ewayapi/GetEwayBillGeneratedByConsigner", get(by_consigner))
}

async fn generate(State(core): State<Arc<SimCore>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form = StatusForm::Number;
    let (token, gstin) = match guard(&core, &headers, form).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let target = match core.cross_target(h(&headers, "irp")) {
        Ok(t) => t,
        Err(e) => return failure(e, form),
    };
    match decrypt_body(&token, &body) {
        Ok(req) => answer(&token, target.generate_ewaybill(&gstin, &req), form),
        Err(e) => failure(e, form),
    }
}

/// An e-way bill API refusal: codes only. An invalid token is its 238.
fn ewb_failure(e: SimError) -> Response {
    let codes: String =
        e.errors.iter().map(|(c, _)| if c == "1005" { "238,".to_string() } else { format!("{c},") }).collect();
    let error = base64::engine::general_purpose::STANDARD.encode(json!({"errorCodes": codes}).to_string());
    Json(json!({"status": "0", "error": error})).into_response()
}

/// The e-way bill API's checks before any action: client headers, quota, faults, token.
async fn ewb_guard(core: &SimCore, headers: &HeaderMap) -> Result<(String, crate::sim::core::SimToken), Response> {
    if let Err(e) = check_client(headers, &["client_id", "client_secret", "Gstin", "user_name"]) {
        return Err(ewb_failure(e));
    }
    if let Err(secs) = core.check_quota(h(headers, "client_id")) {
        return Err(crate::sim::too_many_requests(secs));
    }
    match core.before_call().await {
        Err(None) => return Err((StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()),
        Err(Some(e)) => return Err(ewb_failure(e)),
        Ok(()) => {}
    }
    let gstin = h(headers, "Gstin").to_string();
    match core.check_token(h(headers, "AuthToken"), &gstin) {
        Ok(t) => Ok((gstin, t)),
        Err(e) => Err(ewb_failure(e)),
    }
}

fn ewb_answer(token: &crate::sim::core::SimToken, result: Result<Value, SimError>) -> Response {
    match result {
        Ok(v) => Json(json!({"status": "1", "data": nic_crypto::encrypt_json_b64(&token.sek, &v)})).into_response(),
        Err(e) => ewb_failure(e),
    }
}

/// `GET …/GetEwayBillGeneratedByConsigner?docType=CHL&docNo=DC/1`.
async fn by_consigner(
    State(core): State<Arc<SimCore>>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let (gstin, token) = match ewb_guard(&core, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let p = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    ewb_answer(&token, core.ewaybill_by_doc(&gstin, p("docType"), p("docNo")))
}

async fn ewayapi(State(core): State<Arc<SimCore>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let (gstin, token) = match ewb_guard(&core, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let action = req.get("action").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(payload) =
        req.get("data").and_then(Value::as_str).and_then(|d| nic_crypto::decrypt_json_b64(&token.sek, d).ok())
    else {
        return ewb_failure(SimError::one("5001", "could not decrypt data"));
    };
    let result = match action.as_str() {
        "GENEWAYBILL" => {
            let (res, hang) = core.generate_ewaybill_doc(&gstin, &payload);
            if let Some(d) = hang {
                tokio::time::sleep(d).await;
            }
            res
        }
        _ => core.ewb_action(&gstin, &action, &payload, h(&headers, "irp")),
    };
    ewb_answer(&token, result)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::config::{GstinConfig, ProviderKind};
    use crate::domain::command::ewaybill::{EwbCancelReason, TransMode, VehicleUpdate};
    use crate::irp::{IrpError, IrpProvider};
    use crate::sim::Simulator;

    const GSTIN: &str = "29AAGCP4821K1Z3";

    /// The configuration the demo and the tests use, read as the worker reads it.
    fn cfg(provider: ProviderKind, base_url: &str) -> GstinConfig {
        let text = crate::sim::gstin_toml(base_url, provider, GSTIN);
        crate::config::Settings::from_toml(&text).unwrap().gstins.remove(GSTIN).unwrap()
    }

    /// Generate, update the vehicle, cancel, cancel again (312), over one protocol's adapter.
    async fn round_trip(provider: ProviderKind) {
        let sim = Simulator::start("127.0.0.1:0").await.unwrap();
        let http = crate::irp::http_client(Duration::from_secs(2), Duration::from_secs(10));
        let c = cfg(provider, &sim.base_url());
        let p: Box<dyn IrpProvider> = match provider {
            ProviderKind::Nic => Box::new(crate::irp::nic::Nic::new(http, GSTIN, &c).unwrap()),
            ProviderKind::Whitebooks => Box::new(crate::irp::whitebooks::Whitebooks::new(http, GSTIN, &c).unwrap()),
        };
        let s = p.authenticate(false).await.unwrap();
        let inv = crate::samples::stamped("b2b-intra-goods", Some("EWB/1"));
        let irn = p.generate(&s, &inv.to_string()).await.unwrap().irn;
        let e = p
            .generate_ewaybill(&s, &json!({"Irn": irn, "Distance": 450, "TransMode": "1", "VehNo": "KA01AB1234"}))
            .await
            .unwrap();
        assert_eq!(e.ewb_no.len(), 12);
        assert!(e.valid_till.is_some() && e.ewb_date.is_some());
        let again = p.generate_ewaybill(&s, &json!({"Irn": irn, "Distance": 10})).await.unwrap_err();
        assert!(again.has_code("4002"), "{again:?}");
        assert!(p
            .cancel(&s, &irn, crate::domain::command::CancelReason::Duplicate, "x")
            .await
            .unwrap_err()
            .has_code("2230"));

        let update = VehicleUpdate {
            vehicle_no: "KA05CD5678".into(),
            from_place: "Tumakuru".into(),
            from_state: 29,
            reason: "1".into(),
            remark: "Breakdown".into(),
            trans_mode: TransMode::Road,
            trans_doc_no: None,
            trans_doc_date: None,
            vehicle_type: None,
        };
        let v = p.update_vehicle(&s, &e.ewb_no, &update).await.unwrap();
        assert!(crate::irp::types::parse_ist(&v.updated_at).is_some(), "{v:?}");
        assert_eq!(v.valid_till, e.valid_till, "same validity, normalised to India time");
        assert_eq!(sim.core.ewaybill(&e.ewb_no).unwrap().vehicle_no.as_deref(), Some("KA05CD5678"));

        // Extension: the portal's 8-hour window (382), then inside it.
        use crate::domain::command::ewaybill_extend::{Consignment, ExtendValidity};
        let x = ExtendValidity {
            consignment: Consignment::Moving {
                mode: TransMode::Road,
                vehicle_no: Some("KA05CD5678".into()),
                trans_doc_no: None,
                trans_doc_date: None,
            },
            from_place: "Tumakuru".into(),
            from_state: 29,
            from_pincode: 572101,
            remaining_distance: 100,
            reason: "1".into(),
            remark: "Flood".into(),
        };
        let far = p.extend_validity(&s, &e.ewb_no, &x).await.unwrap_err();
        assert!(far.has_code("382"), "{far:?}");
        let now = chrono::Utc::now();
        sim.core.set_ewaybill_times(&e.ewb_no, now - chrono::Duration::hours(2), now + chrono::Duration::hours(1));
        let ext = p.extend_validity(&s, &e.ewb_no, &x).await.unwrap();
        let till = crate::irp::types::parse_ist(ext.valid_till.as_deref().unwrap()).unwrap();
        assert!(till > now + chrono::Duration::hours(1), "{ext:?}");
        // A TRANSIN as the new transporter.
        let transin =
            crate::domain::command::ewaybill_update_transporter::TransporterId::parse("88AABCT1234A1ZQ", false)
                .unwrap();
        let t = p.update_transporter(&s, &e.ewb_no, &transin).await.unwrap();
        assert_eq!(t.transporter_id.as_deref(), Some("88AABCT1234A1ZQ"));
        assert!(crate::irp::types::parse_ist(&t.updated_at).is_some(), "{t:?}");

        let c1 = p.cancel_ewaybill(&s, &e.ewb_no, EwbCancelReason::OrderCancelled, "Order cancelled").await.unwrap();
        assert_eq!(c1.ewb_no, e.ewb_no);
        assert!(crate::irp::types::parse_ist(&c1.cancel_date).is_some(), "{c1:?}");
        let twice = p.cancel_ewaybill(&s, &e.ewb_no, EwbCancelReason::OrderCancelled, "again").await.unwrap_err();
        assert!(matches!(&twice, IrpError::Api { .. }) && twice.has_code("312"), "{twice:?}");
        // The IRN is free to be cancelled now.
        p.cancel(&s, &irn, crate::domain::command::CancelReason::Duplicate, "x").await.unwrap();
        let st = sim.core.stats();
        assert_eq!((st.ewb_generate_calls, st.ewb_cancel_calls, st.ewb_vehicle_calls), (2, 2, 1));
        assert_eq!((st.ewb_extend_calls, st.ewb_transporter_calls), (2, 1));

        // Faults apply to the e-way bill API too.
        sim.core.update_faults(|f| f.fail_next_5xx = 1);
        let e = p.cancel_ewaybill(&s, &e.ewb_no, EwbCancelReason::Duplicate, "x").await.unwrap_err();
        assert!(matches!(e, IrpError::Http { status: 503, .. }), "{e:?}");
    }

    #[tokio::test]
    async fn nic_ewaybill_round_trip() {
        round_trip(ProviderKind::Nic).await;
    }

    #[tokio::test]
    async fn whitebooks_ewaybill_round_trip() {
        round_trip(ProviderKind::Whitebooks).await;
    }
}
