//! Liveness, readiness, status and Prometheus metrics on `EINVOICE_HEALTH_LISTEN`.
//!
//! - `/healthz`: the process answers (liveness);
//! - `/readyz`: the worker can do its job: RabbitMQ connected and not blocking publishers,
//!   Postgres answering within 2 s, the outbox relay keeping up (no event older than
//!   `EINVOICE_READY_OUTBOX_MAX_AGE_SECS` unpublished), and not every configured GSTIN refused
//!   by its IRP (all credentials failing or all paused). 503 with the reasons otherwise;
//! - `/status`: JSON for people: the same checks, the store's counts, and per GSTIN its IRP,
//!   pause, last IRP success and failure;
//! - `/metrics`: Prometheus text (see [`crate::telemetry::metrics::CATALOG`]).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use lapin::ConnectionStatus;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::status::GstinHealth;
use super::Ctx;
use crate::store::ops::Snapshot;
use crate::telemetry::metrics::handle as metrics;

#[derive(Clone)]
struct HealthState {
    ctx: Arc<Ctx>,
    amqp: ConnectionStatus,
}

/// Bind `addr` and serve until `shutdown`; returns the bound address.
pub async fn serve(
    addr: &str,
    ctx: Arc<Ctx>,
    amqp: ConnectionStatus,
    shutdown: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    metrics();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(|| async { metrics().render() }))
        .with_state(HealthState { ctx, amqp });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    Ok(bound)
}

/// One GSTIN in `/status`.
#[derive(Serialize)]
struct GstinStatus {
    irp: String,
    paused_until: Option<DateTime<Utc>>,
    pause_reason: Option<Value>,
    /// The primary IRP's health, at the top level.
    #[serde(flatten)]
    health: GstinHealth,
    /// Every IRP of the GSTIN (primary and failover) with its circuit.
    irps: BTreeMap<String, GstinHealth>,
}

/// The checks, their problems (empty: ready), the store's counts and per-GSTIN state.
async fn assess(s: &HealthState) -> (Vec<String>, Option<Snapshot>, BTreeMap<String, GstinStatus>) {
    let mut problems = Vec::new();
    if !s.amqp.connected() {
        problems.push("RabbitMQ connection is down".to_string());
    } else if s.amqp.blocked() {
        problems.push("RabbitMQ is blocking publishers (resource alarm)".to_string());
    }
    let settings = &s.ctx.settings;
    let snapshot = match tokio::time::timeout(Duration::from_secs(2), s.ctx.db.snapshot()).await {
        Ok(Ok(snap)) => Some(snap),
        Ok(Err(e)) => {
            problems.push(format!("PostgreSQL: {e}"));
            None
        }
        Err(_) => {
            problems.push("PostgreSQL did not answer within 2 s".to_string());
            None
        }
    };
    if let Some(snap) = &snapshot {
        let limit = settings.ready_outbox_max_age_secs as f64;
        if snap.outbox_oldest_secs > limit {
            problems.push(format!(
                "the outbox relay is stuck: {} events unpublished, the oldest for {:.0} s (limit {limit:.0} s, \
                 EINVOICE_READY_OUTBOX_MAX_AGE_SECS)",
                snap.outbox_backlog, snap.outbox_oldest_secs
            ));
        }
    }
    let pauses = match &snapshot {
        Some(_) => s.ctx.db.pauses().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let health = s.ctx.irp_health.get();
    let mut gstins = BTreeMap::new();
    for (gstin, cfg) in &settings.gstins {
        let pause = pauses.iter().find(|p| p.gstin == *gstin);
        let irps: BTreeMap<String, GstinHealth> = cfg
            .irp_names()
            .map(|irp| {
                let mut h = health.get(&(gstin.clone(), irp.clone())).cloned().unwrap_or_default();
                h.irp = irp.clone();
                (irp, h)
            })
            .collect();
        let primary = cfg.irp_name();
        gstins.insert(
            gstin.clone(),
            GstinStatus {
                irp: primary.clone(),
                paused_until: pause.map(|p| p.paused_until),
                pause_reason: pause.map(|p| p.reason.clone()),
                health: irps.get(&primary).cloned().unwrap_or_default(),
                irps,
            },
        );
    }
    let refused = |g: &GstinStatus| g.paused_until.is_some() || g.irps.values().all(|h| h.credentials_failing);
    if !gstins.is_empty() && gstins.values().all(refused) {
        problems.push(format!(
            "no configured GSTIN can reach its IRP: {} (credentials refused or paused; see /status)",
            gstins.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    (problems, snapshot, gstins)
}

async fn ready(State(s): State<HealthState>) -> (StatusCode, String) {
    let (problems, _, _) = assess(&s).await;
    if problems.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n"))
    }
}

async fn status(State(s): State<HealthState>) -> (StatusCode, Json<Value>) {
    let (problems, snapshot, gstins) = assess(&s).await;
    let code = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "ready": problems.is_empty(),
        "problems": problems,
        "version": env!("CARGO_PKG_VERSION"),
        "worker_id": s.ctx.worker_id,
        "namespace": s.ctx.settings.namespace,
        "store": snapshot,
        "gstins": gstins,
    });
    (code, Json(body))
}
