//! Shared state for handlers.
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::amqp::Topology;
use crate::config::Settings;
use crate::domain::command::ParseOptions;
use crate::irp::registry::Providers;
use crate::irp::SessionManager;
use crate::store::secrets::SecretBox;
use crate::store::Db;

pub struct Ctx {
    pub settings: Settings,
    pub db: Db,
    /// The pool generate claims use (by default `db` itself; the worker gives it its own
    /// connections: see `Settings::pool_sizes`).
    pub intake: Db,
    pub sessions: SessionManager,
    pub providers: Providers,
    pub topology: Topology,
    /// Tags what the worker publishes itself (see `runtime::authorize`), under the token key.
    pub seals: SecretBox,
    /// Identifies this process as a lease owner.
    pub worker_id: Uuid,
    /// Poked after every commit that wrote events, so the relay publishes at once.
    pub relay_wake: Arc<Notify>,
    /// The last IRP answers per GSTIN (`/status`, `/readyz`).
    pub irp_health: super::status::IrpHealth,
    /// Throttles this process has seen (`runtime::guard`).
    pub guard: super::guard::Local,
    /// The IRPs' signing keys `einvoice.verify` checks against (checked when the settings loaded).
    pub verify_keys: Arc<crate::irp::verify::KeyRing>,
    /// Paused GSTINs, re-read at most once a second (see [`Ctx::pause_of`]).
    pauses: super::pause_cache::PauseCache,
    /// IRP calls counted since the last flush to `api_calls_daily` (`runtime::usage`).
    pub usage: Arc<crate::telemetry::usage::UsageMeter>,
    /// Jobs in flight per GSTIN, against `gstin_max_in_flight`.
    pub fair_share: super::fair_share::FairShare,
    /// A publisher-confirm channel for handlers that publish commands (reschedules, re-queues);
    /// set once the worker has connected.
    publisher: std::sync::OnceLock<lapin::Channel>,
}

impl Ctx {
    pub fn new(settings: Settings, db: Db, providers: Providers) -> Result<Ctx, crate::store::secrets::SecretBoxError> {
        let sbox = SecretBox::from_config(settings.token_key.as_ref())?;
        let irp_health = super::status::IrpHealth::new(super::status::Breaker {
            failures: settings.breaker_failures,
            open_secs: settings.breaker_open_secs,
        })
        .with_store(db.clone());
        let usage = Arc::new(crate::telemetry::usage::UsageMeter::default());
        Ok(Ctx {
            sessions: SessionManager::new(
                Arc::new(crate::store::tokens::PgSessions { db: db.clone(), sbox: sbox.clone() }),
                settings.token_refresh_margin_secs,
            )
            .with_usage(usage.clone())
            .with_metrics(settings.metrics_per_gstin.clone()),
            usage,
            topology: Topology::new(&settings),
            verify_keys: Arc::new(crate::irp::verify::KeyRing::from_settings(&settings).unwrap_or_else(|e| {
                tracing::error!(error = %e, "irp_signing_keys: no key is usable");
                Default::default()
            })),
            seals: sbox,
            fair_share: super::fair_share::FairShare::new(settings.gstin_cap(), settings.prefetch.into()),
            settings,
            intake: db.clone(),
            db,
            providers,
            worker_id: Uuid::new_v4(),
            relay_wake: Arc::new(Notify::new()),
            irp_health,
            guard: Default::default(),
            pauses: Default::default(),
            publisher: std::sync::OnceLock::new(),
        })
    }

    /// Claims go through `intake`, apart from the finishing work in `db`.
    pub fn with_intake(mut self, intake: Db) -> Ctx {
        self.intake = intake;
        self
    }

    /// Install the publisher channel (once, at start).
    pub fn set_publisher(&self, ch: lapin::Channel) {
        let _ = self.publisher.set(ch);
    }

    /// The publisher channel; `None` only before the worker has connected.
    pub fn publisher(&self) -> Option<&lapin::Channel> {
        self.publisher.get()
    }

    /// Publish a command to `einvoice.commands` with confirms (a new `message_id`).
    pub async fn publish_command(
        &self,
        routing_key: &str,
        body: &serde_json::Value,
    ) -> Result<(), crate::amqp::AmqpError> {
        let ch = self
            .publisher()
            .ok_or_else(|| crate::amqp::AmqpError::Unreachable("the worker is not connected yet".into()))?;
        let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
        let headers = super::authorize::sealed(&self.seals, super::authorize::WORKER, routing_key, &bytes);
        let props = crate::amqp::json_props().with_message_id(Uuid::new_v4().to_string().into()).with_headers(headers);
        crate::amqp::publish_confirmed(ch, &self.topology.commands, routing_key, &bytes, props, true).await
    }

    /// A configuration error (credentials, keys, enablement): pause the GSTIN's IRP calls for
    /// `EINVOICE_PAUSE_SECS`, say so loudly, and return the `gstin.paused` event data.
    pub async fn pause_gstin(
        &self,
        gstin: &str,
        errors: &[crate::domain::event::ErrorItem],
    ) -> Result<serde_json::Value, crate::store::StoreError> {
        let (until, data) = self.pause(gstin, self.settings.pause_secs, errors).await?;
        tracing::error!(gstin, ?errors, %until, "IRP configuration error: pausing this GSTIN's work");
        Ok(data)
    }

    /// Pause the GSTIN's IRP calls for `secs` for a reason other than its configuration (the
    /// error budget: `errors` says why), and return the `gstin.paused` event data.
    pub async fn pause_gstin_for(
        &self,
        gstin: &str,
        secs: i64,
        errors: &[crate::domain::event::ErrorItem],
    ) -> Result<serde_json::Value, crate::store::StoreError> {
        let (until, data) = self.pause(gstin, secs, errors).await?;
        tracing::error!(gstin, ?errors, %until, "pausing this GSTIN's work");
        Ok(data)
    }

    /// Store the pause (this process sees it at once): its end and the `gstin.paused` event data.
    async fn pause(
        &self,
        gstin: &str,
        secs: i64,
        errors: &[crate::domain::event::ErrorItem],
    ) -> Result<(chrono::DateTime<chrono::Utc>, serde_json::Value), crate::store::StoreError> {
        let errors_json = serde_json::to_value(errors).expect("error items serialise");
        let until = self.db.pause_gstin(gstin, secs, &errors_json).await?;
        self.pauses.note(gstin, (until, errors.first().map(|e| e.code.clone()))).await;
        Ok((until, serde_json::json!({"gstin": gstin, "errors": errors, "paused_until": until})))
    }

    /// The GSTIN's pause, if it is paused now: until when, and its first reason's code. Read
    /// from a copy of `gstin_pauses` at most a second old (a pause set elsewhere, or lifted by an
    /// operator, is seen within that second; this process's own pauses at once).
    pub async fn pause_of(&self, gstin: &str) -> Result<Option<super::pause_cache::Pause>, crate::store::StoreError> {
        self.pauses.pause_of(&self.db, gstin).await
    }

    /// Parsing options; `today` is re-read per message (India date) so a long-running worker
    /// does not reject tomorrow's invoices as "future".
    pub fn parse_options(&self) -> ParseOptions {
        let mut o = self.settings.parse_options();
        o.reporting_window_by_gstin.extend(self.providers.reporting_windows());
        o
    }

    /// The error for a command whose seller GSTIN this process does not serve: not configured
    /// anywhere, disabled by an operator, or stored but unusable here.
    /// `path`: where the command names the GSTIN (`gstin`, `SellerDtls.Gstin`).
    pub fn unserved(&self, gstin: &str, path: &str) -> crate::domain::event::ErrorItem {
        use crate::irp::registry::Unserved;
        match self.providers.lookup(gstin) {
            Ok(_) | Err(Unserved::Unknown) => super::events::not_configured(gstin),
            Err(Unserved::Disabled) => super::events::disabled(gstin, path),
            Err(Unserved::Broken(why)) => super::events::unusable(gstin, &why, path),
        }
    }

    /// The in-process retry schedule: exponential with jitter (backon).
    pub fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.settings.retry_min_delay_ms))
            .with_max_delay(Duration::from_millis(self.settings.retry_max_delay_ms))
            .with_max_times(self.settings.retry_max_times)
            .with_jitter()
            .build()
    }
}
