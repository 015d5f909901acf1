//! The built-in IRP simulator: `einvoice-worker sim`, the demo and the tests point the worker
//! at it. It speaks both protocols on the same port over one document store:
//! - the Whitebooks GSP API (`/einvoice/...`), see [`whitebooks`];
//! - the NIC IRP direct API with its RSA/AES encryption (`/eivital/...`, `/eicore/...`), see [`nic`].
//!
//! IRN = SHA-256 hex of seller GSTIN + financial year + doc type + doc number. Faults can be
//! injected (latency, 5xx, timeouts that still commit, forced 1005, a per-client quota and 429s
//! with `Retry-After`) and counters let a test
//! assert "one generate call per document" and "one auth per token lifetime".
pub mod core;
pub mod nic;
pub mod whitebooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;

pub use self::core::{Faults, SimCall, SimCore, SimRegistry, SimStats};

/// A running simulator: its address and its state (for tests to inspect and steer).
pub struct Simulator {
    pub addr: SocketAddr,
    pub core: Arc<SimCore>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Bind `addr` (use port 0 for any free port) and serve until dropped.
    pub async fn start(addr: &str) -> std::io::Result<Simulator> {
        Self::serve(addr, Arc::new(SimCore::new())).await
    }

    /// One of several IRPs (`irp`: its name, e.g. `NIC1`, `IRIS`) sharing GSTN's de-duplication
    /// `registry`: a document another member registered is answered 2295.
    pub async fn start_irp(addr: &str, irp: &str, registry: Arc<SimRegistry>) -> std::io::Result<Simulator> {
        let core = Arc::new(SimCore::new());
        core.join_registry(registry, irp);
        Self::serve(addr, core).await
    }

    async fn serve(addr: &str, core: Arc<SimCore>) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(core.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Simulator { addr, core, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serve until the process ends (the `sim` subcommand).
    pub async fn wait(mut self) {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTP 429 with `Retry-After`, as a GSP answers past its plan's quota.
pub(crate) fn too_many_requests(retry_after_secs: u64) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, retry_after_secs.to_string())],
        Json(
            serde_json::json!({"error": "Too Many Requests", "message": "API request quota exceeded for this client"}),
        ),
    )
        .into_response()
}

/// All routes: both protocols plus the `/_sim` admin API.
pub fn router(core: Arc<SimCore>) -> Router {
    Router::new()
        .merge(whitebooks::routes())
        .merge(nic::routes())
        .route("/_sim/stats", get(|s: axum::extract::State<Arc<SimCore>>| async move { Json(s.stats()) }))
        .route("/_sim/calls", get(|s: axum::extract::State<Arc<SimCore>>| async move { Json(s.calls()) }))
        .route(
            "/_sim/faults",
            post(|s: axum::extract::State<Arc<SimCore>>, Json(f): Json<Faults>| async move {
                s.set_faults(f);
                Json(s.faults())
            })
            .get(|s: axum::extract::State<Arc<SimCore>>| async move { Json(s.faults()) }),
        )
        .route(
            "/_sim/signing_key",
            post(|s: axum::extract::State<Arc<SimCore>>, Json(r): Json<serde_json::Value>| async move {
                // {"key": 2} rotates to the second signing key, {"key": 1} back to the first.
                let key = r.get("key").and_then(serde_json::Value::as_u64).unwrap_or(2) as u8;
                Json(serde_json::json!({"kid": s.rotate_signing_key(key)}))
            })
            .get(|s: axum::extract::State<Arc<SimCore>>| async move {
                Json(serde_json::json!({"kid": s.signing_kid()}))
            }),
        )
        .route(
            "/_sim/reject",
            post(|s: axum::extract::State<Arc<SimCore>>, Json(r): Json<core::RejectRequest>| async move {
                match s.mark_rejected(&r.irn, r.surviving_irn.as_deref(), r.date.as_deref()) {
                    Ok(()) => Json(serde_json::json!({"ok": true})),
                    Err(e) => Json(serde_json::json!({"ok": false, "error": e})),
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(core.clone(), log_call))
        .with_state(core)
}

/// Record every IRP request (not the `/_sim` admin API) in the call log, with its answer's status.
async fn log_call(
    axum::extract::State(core): axum::extract::State<Arc<SimCore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (at, method, path) = (chrono::Utc::now(), req.method().to_string(), req.uri().path().to_string());
    let response = next.run(req).await;
    if !path.starts_with("/_sim") {
        core.log_call(core::SimCall { at, method, path, status: response.status().as_u16() });
    }
    response
}

/// The `[gstins."<GSTIN>"]` TOML that points a worker at this simulator for one GSTIN, over
/// either protocol (the demo and the tests build their configuration with it).
pub fn gstin_toml(base_url: &str, provider: crate::config::ProviderKind, gstin: &str) -> String {
    use crate::config::ProviderKind;
    let common = format!(
        "[gstins.\"{gstin}\"]\nprovider = \"{}\"\nenvironment = \"sandbox\"\nbase_url = \"{base_url}\"\nemail = \"erp@example.com\"\nusername = \"API_{gstin}\"\npassword = \"sim-password\"\nclient_id = \"sim-client\"\nclient_secret = \"sim-client-secret\"\nip_address = \"127.0.0.1\"\n",
        provider.as_str()
    );
    match provider {
        ProviderKind::Whitebooks => common,
        ProviderKind::Nic => format!(
            "{common}public_key_pem = \"\"\"\n{}\"\"\"\nsigning_key_pem = \"\"\"\n{}\"\"\"\n",
            core::NIC_PUBLIC_PEM,
            core::SIGNING_PUBLIC_PEM
        ),
    }
}

/// A `[[irp_signing_keys.<irp>]]` TOML entry for one of the simulator's signing keys (`key` 1 or
/// 2), in use from `from` to `to` (`YYYY-MM-DD`, open when `None`).
pub fn signing_key_toml(irp: &str, key: u8, from: Option<&str>, to: Option<&str>) -> String {
    let (kid, pem) = if key == 2 {
        (core::SIGNING_KID_2, core::SIGNING_PUBLIC_PEM_2)
    } else {
        (core::SIGNING_KID, core::SIGNING_PUBLIC_PEM)
    };
    let mut t = format!("[[irp_signing_keys.{irp}]]\nkey_id = \"{kid}\"\n");
    if let Some(f) = from {
        t.push_str(&format!("valid_from = \"{f}\"\n"));
    }
    if let Some(to) = to {
        t.push_str(&format!("valid_to = \"{to}\"\n"));
    }
    t.push_str(&format!("public_key_pem = \"\"\"\n{pem}\"\"\"\n"));
    t
}
