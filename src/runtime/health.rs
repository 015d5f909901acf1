//! Liveness, readiness and Prometheus metrics on `EINVOICE_HEALTH_LISTEN`.
//!
//! - `/healthz`: the process answers (liveness);
//! - `/readyz`: the RabbitMQ connection is up and not blocked, and Postgres answers `SELECT 1`
//!   within 2 s (readiness: take the worker out of rotation otherwise);
//! - `/metrics`: Prometheus text from the `metrics` facade (commands by outcome, events
//!   published, IRP failures by class, job durations).
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use lapin::ConnectionStatus;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::store::Db;

/// The process-wide metrics recorder (installed once, shared by every worker in the process).
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding application): keep ours
        // renderable either way.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[derive(Clone)]
struct HealthState {
    db: Db,
    amqp: ConnectionStatus,
}

/// Bind `addr` and serve until `shutdown`; returns the bound address.
pub async fn serve(
    addr: &str,
    db: Db,
    amqp: ConnectionStatus,
    shutdown: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    metrics();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(|| async { metrics().render() }))
        .with_state(HealthState { db, amqp });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    Ok(bound)
}

async fn ready(State(s): State<HealthState>) -> (StatusCode, String) {
    if !s.amqp.connected() {
        return (StatusCode::SERVICE_UNAVAILABLE, "RabbitMQ connection is down".into());
    }
    if s.amqp.blocked() {
        return (StatusCode::SERVICE_UNAVAILABLE, "RabbitMQ is blocking publishers (resource alarm)".into());
    }
    match tokio::time::timeout(Duration::from_secs(2), s.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready".into()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("PostgreSQL: {e}")),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "PostgreSQL did not answer within 2 s".into()),
    }
}
