//! Liveness, readiness, status and Prometheus metrics on `EINVOICE_HEALTH_LISTEN`.
//!
//! - `/healthz`: the process answers (liveness);
//! - `/readyz`: the worker can do its job: RabbitMQ connected and not blocking publishers,
//!   Postgres answering within 2 s, the outbox relay keeping up (no event older than
//!   `EINVOICE_READY_OUTBOX_MAX_AGE_SECS` unpublished), and not every served GSTIN (from the
//!   configuration or the database) refused by its IRP (all credentials failing or all paused).
//!   503 with the reasons otherwise;
//! - `/status`: JSON for people: the same checks, the store's counts, how many GSTINs are served
//!   (`gstin_counts`), and per GSTIN its IRP, pause, last IRP success and failure: the first
//!   [`STATUS_GSTINS_LISTED`] GSTINs and every paused or failing one, at most
//!   [`STATUS_GSTINS_MAX`] in all, so a worker with thousands of GSTINs answers a bounded page
//!   (issue 27). It names the GSTINs and their errors, so it asks for
//!   `Authorization: Bearer <EINVOICE_STATUS_TOKEN>` (401 without it; 403 when no token is
//!   configured);
//! - `/metrics`: Prometheus text (see [`crate::telemetry::metrics::CATALOG`]).
//!
//! `/healthz`, `/readyz` and `/metrics` stay unauthenticated: kubelets and Prometheus scrape
//! them. `EINVOICE_HEALTH_LISTEN` given as a port alone binds loopback. The server has its own
//! PostgreSQL connection (a pool of one), so a flood of probes cannot take the jobs' connections,
//! and every request is cut off after [`REQUEST_TIMEOUT`].
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use lapin::ConnectionStatus;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::status::GstinHealth;
use super::Ctx;
use crate::store::ops::Snapshot;
use crate::store::Db;
use crate::telemetry::metrics::handle as metrics;

#[derive(Clone)]
struct HealthState {
    ctx: Arc<Ctx>,
    amqp: ConnectionStatus,
    /// The health server's own connection (a pool of one), apart from the jobs' pool.
    db: Db,
}

/// Longest time one request to the health port may take; then it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The address `EINVOICE_HEALTH_LISTEN` asks for: a port alone (`9090` or `:9090`) is loopback
/// (`127.0.0.1:9090`); anything else (`0.0.0.0:9090`, `[::]:9090`, `host:9090`) as given.
pub fn bind_address(listen: &str) -> String {
    let l = listen.trim();
    let port = l.strip_prefix(':').unwrap_or(l);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{port}")
    } else {
        l.to_string()
    }
}

/// Bind `addr` and serve until `shutdown`; returns the bound address.
pub async fn serve(
    addr: &str,
    ctx: Arc<Ctx>,
    amqp: ConnectionStatus,
    shutdown: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    use secrecy::ExposeSecret;
    let listener = tokio::net::TcpListener::bind(bind_address(addr)).await?;
    let bound = listener.local_addr()?;
    let settings = &ctx.settings;
    let db = Db::with_ca(settings.database_url.expose_secret(), 1, settings.database_ca_file.as_deref())
        .map_err(|e| std::io::Error::other(format!("the health endpoint's database pool: {e}")))?;
    metrics();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(|| async { metrics().render() }))
        .layer(axum::middleware::from_fn(with_timeout))
        .with_state(HealthState { ctx, amqp, db });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    Ok(bound)
}

/// Answer 503 when a request takes longer than [`REQUEST_TIMEOUT`].
async fn with_timeout(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the health endpoint did not answer in time\n").into_response(),
    }
}

/// May this request read `/status`? Only with `Authorization: Bearer <token>` and a token
/// configured; the refusal says what to do.
fn authorize(headers: &HeaderMap, token: Option<&SecretString>) -> Result<(), (StatusCode, &'static str)> {
    use secrecy::ExposeSecret;
    use sha2::{Digest, Sha256};
    let Some(token) = token else {
        return Err((
            StatusCode::FORBIDDEN,
            "/status is disabled: set EINVOICE_STATUS_TOKEN (or EINVOICE_STATUS_TOKEN_FILE) and send \
             `Authorization: Bearer <token>`; /healthz, /readyz and /metrics need no token\n",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    // Digests compared, so the time taken says nothing about how much of the token matched.
    let matches = given.is_some_and(|g| Sha256::digest(g.as_bytes()) == Sha256::digest(token.expose_secret().trim()));
    if matches {
        return Ok(());
    }
    Err((StatusCode::UNAUTHORIZED, "/status needs `Authorization: Bearer <EINVOICE_STATUS_TOKEN>`\n"))
}

/// `/status` lists the first this many GSTINs (in GSTIN order) whatever their state …
pub const STATUS_GSTINS_LISTED: usize = 100;
/// … and every paused or failing one besides, up to this many GSTINs in all.
pub const STATUS_GSTINS_MAX: usize = 1000;
/// The `/readyz` problem names at most this many of the refused GSTINs.
const REFUSED_NAMED: usize = 10;

/// How many GSTINs this process serves, and how many `/status` lists.
#[derive(Debug, Default, Serialize)]
struct GstinCounts {
    /// From the configuration and the database (enabled and usable).
    served: usize,
    /// Of those, the ones whose IRP clients have been built (they had a command).
    clients_built: usize,
    paused: usize,
    /// Paused, or every IRP refusing their credentials.
    refused: usize,
    /// In `gstins` below.
    listed: usize,
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

/// The checks, their problems (empty: ready), the store's counts and the GSTINs' state.
async fn assess(s: &HealthState) -> (Vec<String>, Option<Snapshot>, GstinCounts, BTreeMap<String, GstinStatus>) {
    let mut problems = Vec::new();
    if !s.amqp.connected() {
        problems.push("RabbitMQ connection is down".to_string());
    } else if s.amqp.blocked() {
        problems.push("RabbitMQ is blocking publishers (resource alarm)".to_string());
    }
    let settings = &s.ctx.settings;
    let snapshot = match tokio::time::timeout(Duration::from_secs(2), s.db.snapshot()).await {
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
        Some(_) => tokio::time::timeout(Duration::from_secs(2), s.db.pauses())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let (counts, gstins) = gstin_states(&s.ctx, &pauses);
    if counts.served > 0 && counts.refused == counts.served {
        let named: Vec<&str> = gstins.keys().take(REFUSED_NAMED).map(String::as_str).collect();
        let more = counts.served - named.len();
        problems.push(format!(
            "no configured GSTIN can reach its IRP: {}{} (credentials refused or paused; see /status)",
            named.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ));
    }
    (problems, snapshot, counts, gstins)
}

/// Every served GSTIN's state, counted; the ones `/status` lists kept (see
/// [`STATUS_GSTINS_LISTED`]). Reads sections only: no GSTIN's clients are built here.
fn gstin_states(ctx: &Ctx, pauses: &[crate::store::ops::Pause]) -> (GstinCounts, BTreeMap<String, GstinStatus>) {
    let health = ctx.irp_health.get();
    let pauses: std::collections::HashMap<&str, &crate::store::ops::Pause> =
        pauses.iter().map(|p| (p.gstin.as_str(), p)).collect();
    let (_, clients_built) = ctx.providers.counts();
    let mut counts = GstinCounts { clients_built, ..Default::default() };
    let mut gstins = BTreeMap::new();
    for gstin in ctx.providers.gstins() {
        let Some(cfg) = ctx.providers.section(&gstin) else { continue };
        let pause = pauses.get(gstin.as_str());
        let irps: BTreeMap<String, GstinHealth> = cfg
            .irp_names()
            .map(|irp| {
                let mut h = health.get(&(gstin.clone(), irp.clone())).cloned().unwrap_or_default();
                h.irp = irp.clone();
                (irp, h)
            })
            .collect();
        let refused = pause.is_some() || irps.values().all(|h| h.credentials_failing);
        let failing = irps.values().any(|h| h.credentials_failing || h.circuit != "closed");
        counts.served += 1;
        counts.paused += usize::from(pause.is_some());
        counts.refused += usize::from(refused);
        if (counts.served <= STATUS_GSTINS_LISTED || refused || failing) && gstins.len() < STATUS_GSTINS_MAX {
            let primary = cfg.irp_name();
            let status = GstinStatus {
                irp: primary.clone(),
                paused_until: pause.map(|p| p.paused_until),
                pause_reason: pause.map(|p| p.reason.clone()),
                health: irps.get(&primary).cloned().unwrap_or_default(),
                irps,
            };
            gstins.insert(gstin, status);
        }
    }
    counts.listed = gstins.len();
    (counts, gstins)
}

async fn ready(State(s): State<HealthState>) -> (StatusCode, String) {
    let (problems, _, _, _) = assess(&s).await;
    if problems.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n"))
    }
}

async fn status(State(s): State<HealthState>, headers: HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    match authorize(&headers, s.ctx.settings.status_token.as_ref()) {
        Ok(()) => {}
        Err((StatusCode::UNAUTHORIZED, text)) => {
            return (StatusCode::UNAUTHORIZED, [(axum::http::header::WWW_AUTHENTICATE, "Bearer")], text).into_response()
        }
        Err(refused) => return refused.into_response(),
    }
    let (problems, snapshot, counts, gstins) = assess(&s).await;
    let code = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "ready": problems.is_empty(),
        "problems": problems,
        "version": env!("CARGO_PKG_VERSION"),
        "worker_id": s.ctx.worker_id,
        "namespace": s.ctx.settings.namespace,
        "store": snapshot,
        "gstin_counts": counts,
        "gstins": gstins,
    });
    (code, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_binds_loopback() {
        assert_eq!(bind_address("9090"), "127.0.0.1:9090");
        assert_eq!(bind_address(":9090"), "127.0.0.1:9090");
        assert_eq!(bind_address(" 9090 "), "127.0.0.1:9090");
        for given in ["0.0.0.0:9090", "127.0.0.1:0", "[::]:9090", "[::1]:9090", "localhost:9090"] {
            assert_eq!(bind_address(given), given);
        }
    }

    #[test]
    fn status_needs_the_configured_bearer_token() {
        let token = SecretString::from("s3cret-token");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(authorize(&with("Bearer s3cret-token"), Some(&token)).is_ok());
        for bad in ["Bearer s3cret-toke", "Bearer ", "Basic czNjcmV0LXRva2Vu", "s3cret-token", "Bearer s3cret-token2"] {
            let (code, _) = authorize(&with(bad), Some(&token)).unwrap_err();
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{bad}");
        }
        let (code, _) = authorize(&HeaderMap::new(), Some(&token)).unwrap_err();
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        // No token configured: 403 for everyone, saying how to turn it on.
        let (code, text) = authorize(&with("Bearer s3cret-token"), None).unwrap_err();
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert!(text.contains("EINVOICE_STATUS_TOKEN"), "{text}");
    }
}
