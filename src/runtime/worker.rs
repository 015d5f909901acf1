//! The worker: consume commands, dispatch them, settle each delivery exactly once.
//!
//! Every delivery ends in one of: ack after its outcome and events are committed; reject
//! without requeue (dead-letter) after its rejection event is committed; or a durable
//! reschedule through a retry tier, then ack. Infrastructure trouble (Postgres down) nacks with
//! requeue, which the queue's `x-delivery-limit` bounds.
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::events::plain_event;
use super::{authorize, fair_share, jobs, span, Ctx, Disposition};
use crate::amqp::{self, relay::Relay};
use crate::config::Settings;
use crate::domain::command::batch::BatchMember;
use crate::domain::command::{parse_command, JobKind, COMMAND_REJECTED};
use crate::domain::event::{CommandMeta, ErrorItem, ErrorSource};
use crate::irp::registry::Providers;
use crate::store::{self, Db, StoreError};
use crate::telemetry::metrics as m;

/// The message ids of a batch's members (`batch:<batch id>:<index>`): the worker's own.
const BATCH_ID_PREFIX: &str = "batch:";
const ATTEMPT_HEADER: &str = "x-einvoice-attempt";
const FIRST_SEEN_HEADER: &str = "x-einvoice-first-seen";
/// On a set-aside copy: when (epoch ms) its GSTIN's schedule expects room for it (fair share).
const SET_ASIDE_UNTIL_HEADER: &str = "x-einvoice-set-aside-until";

/// A running worker; `stop` shuts it down gracefully.
pub struct WorkerHandle {
    pub ctx: Arc<Ctx>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served, when `EINVOICE_HEALTH_LISTEN` is set.
    pub health_addr: Option<std::net::SocketAddr>,
    /// Where the operator console is served, when `EINVOICE_CONSOLE_LISTEN` is set.
    pub console_addr: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl WorkerHandle {
    /// Stop consuming, finish in-flight jobs, publish what is left in the outbox, disconnect.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("worker task panicked")?
    }
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
    /// Wait until the worker stops on its own (fatal error) or is cancelled.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("worker task panicked")?
    }
}

/// Connections of the outbox relay's own pool (it drains one batch at a time).
pub const RELAY_POOL_SIZE: usize = 1;

/// Prepare Postgres (create the database, migrate) and return the pool.
pub async fn prepare_db(settings: &Settings) -> anyhow::Result<Db> {
    use secrecy::ExposeSecret;
    let url = settings.database_url.expose_secret();
    let fail = |e: StoreError| anyhow::anyhow!(store::startup_error(url, &e));
    store::ensure_database(url, settings.database_ca_file.as_deref()).await.map_err(fail)?;
    let db = pool(settings, settings.pool_sizes().0)?;
    db.migrate().await.map_err(fail).context("applying migrations")?;
    Ok(db)
}

/// A pool of `size` connections to the configured database.
fn pool(settings: &Settings, size: usize) -> Result<Db, StoreError> {
    use secrecy::ExposeSecret;
    Db::with_ca(settings.database_url.expose_secret(), size, settings.database_ca_file.as_deref())
}

/// Start a worker: migrate, declare topology, start the relay and the consumer.
pub async fn start(settings: Settings) -> anyhow::Result<WorkerHandle> {
    settings.check_token_key()?;
    let db = prepare_db(&settings).await?;
    // The relay's own connection: jobs holding every pooled connection cannot stall event
    // publishing, and a slow relay cannot take connections from the jobs.
    let relay_db = pool(&settings, RELAY_POOL_SIZE)?;
    let providers = Providers::from_settings(&settings).context("building IRP providers from the configuration")?;
    if settings.token_key.is_none() {
        tracing::warn!(
            "EINVOICE_TOKEN_KEY is not set: IRP tokens are encrypted at rest with the built-in development key"
        );
    }
    // Claims of new documents have their own connections (see `Settings::pool_sizes`).
    let intake = pool(&settings, settings.pool_sizes().1)?;
    // Events committed through the job pools go straight to this process's relay.
    let (handoff, handed) = tokio::sync::mpsc::channel(amqp::relay::HANDOFF_CAPACITY);
    let (db, intake) = (db.with_handoff(handoff.clone()), intake.with_handoff(handoff));
    let ctx = Arc::new(Ctx::new(settings, db, providers)?.with_intake(intake));
    let conn = amqp::connect(&ctx.settings.amqp_url, &format!("einvoice-worker-{}", ctx.worker_id)).await?;
    ctx.topology.declare(&conn).await.context("declaring the RabbitMQ topology")?;
    let relay = Relay {
        db: relay_db,
        channel: amqp::confirm_channel(&conn).await?,
        events_exchange: ctx.topology.events.clone(),
        unrouted_queue: ctx.topology.unrouted.clone(),
        wake: ctx.relay_wake.clone(),
        handed,
    };
    ctx.set_publisher(amqp::confirm_channel(&conn).await?);
    let consume = conn.create_channel().await?;
    consume.basic_qos(ctx.settings.prefetch, BasicQosOptions { global: false }).await?;
    let shutdown = CancellationToken::new();
    if let Some(expr) = &ctx.settings.reconcile_schedule {
        // A typo in the schedule fails the start, not silently later.
        super::scheduler::parse_schedule(expr)
            .map_err(|e| anyhow::anyhow!("EINVOICE_RECONCILE_SCHEDULE '{expr}' is not a cron expression: {e}"))?;
        let ch = amqp::confirm_channel(&conn).await?;
        tokio::spawn(super::scheduler::run(ctx.clone(), ch, shutdown.child_token()));
    }
    let health_addr = match &ctx.settings.health_listen {
        Some(addr) => Some(
            super::health::serve(addr, ctx.clone(), conn.status().clone(), shutdown.child_token())
                .await
                .with_context(|| format!("binding the health endpoint on {addr}"))?,
        ),
        None => None,
    };
    let console_addr = match &ctx.settings.console_listen {
        Some(addr) => Some(
            crate::console::serve(addr, ctx.settings.clone(), shutdown.child_token())
                .await
                .with_context(|| format!("binding the operator console on {addr}"))?,
        ),
        None => None,
    };
    let irps: Vec<(String, String)> = ctx
        .settings
        .gstins
        .iter()
        .flat_map(|(g, c)| c.irp_names().map(move |irp| (g.clone(), irp.to_ascii_lowercase())))
        .collect();
    crate::telemetry::metrics::register_configured(
        irps.iter().map(|(g, i)| (g.as_str(), i.as_str())),
        ctx.topology.retry_queues().len(),
        &ctx.settings.metrics_per_gstin,
    );
    tokio::spawn(super::status::sample(ctx.clone(), conn.create_channel().await?, shutdown.child_token()));
    // The GSTINs managed in the database: served from the first message, then followed.
    let managed = super::gstins::load_all(&ctx).await.context("reading the GSTINs in the database")?;
    {
        use secrecy::ExposeSecret;
        let url = ctx.settings.database_url.expose_secret();
        let target = store::tls::target(url, ctx.settings.database_ca_file.as_deref())?;
        tokio::spawn(super::gstins::follow(ctx.clone(), target, shutdown.child_token()));
    }
    {
        // The shared circuits' notifications, on a connection of their own (one per process).
        use secrecy::ExposeSecret;
        let url = ctx.settings.database_url.expose_secret();
        let target = store::tls::target(url, ctx.settings.database_ca_file.as_deref())?;
        tokio::spawn(super::status::listen(ctx.irp_health.clone(), target, shutdown.child_token()));
    }
    if ctx.settings.retention_interval_secs > 0 {
        tokio::spawn(super::retention::run(ctx.clone(), shutdown.child_token()));
    }
    tokio::spawn(super::usage::run(ctx.clone(), shutdown.child_token()));
    if ctx.settings.ewb_expiry_warn_secs > 0 && ctx.settings.ewb_expiry_scan_secs > 0 {
        tokio::spawn(super::expiry::run(ctx.clone(), shutdown.child_token()));
    }
    let irps: Vec<String> = ctx
        .settings
        .gstins
        .iter()
        .map(|(g, c)| format!("{g}={}", c.irp_names().collect::<Vec<_>>().join("+")))
        .collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        worker_id = %ctx.worker_id,
        namespace = %ctx.settings.namespace,
        gstins = %irps.join(","),
        database_gstins = managed,
        health = %health_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        console = %console_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        prefetch = ctx.settings.prefetch,
        "einvoice-worker starting"
    );
    let task = tokio::spawn(consume_loop(ctx.clone(), conn, consume, relay, shutdown.clone()));
    Ok(WorkerHandle { ctx, health_addr, console_addr, shutdown, task })
}

/// Run until `shutdown` resolves (the `run` subcommand passes Ctrl-C / SIGTERM).
pub async fn run(settings: Settings, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let handle = start(settings).await?;
    let token = handle.shutdown_token();
    tokio::select! {
        _ = shutdown => handle.stop().await,
        _ = token.cancelled() => handle.wait().await,
    }
}

async fn subscribe(ch: &Channel, queue: &str, tag: &str) -> Result<lapin::Consumer, lapin::Error> {
    ch.basic_consume(queue.into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default()).await
}

async fn consume_loop(
    ctx: Arc<Ctx>,
    conn: Connection,
    ch: Channel,
    relay: Relay,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tag = format!("einvoice-worker-{}", ctx.worker_id);
    // The relay stops only after the in-flight jobs have committed their events (below), not
    // with the consumer: otherwise their events would wait in the outbox for another worker.
    let relay_stop = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    let mut consumer = subscribe(&ch, &ctx.topology.jobs, &tag).await?;
    let tracker = TaskTracker::new();
    tracing::info!(queue = %ctx.topology.jobs, prefetch = ctx.settings.prefetch, "worker consuming");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let ctx = ctx.clone();
                    let span = span::command_span(&delivery);
                    tracker.spawn(async move { settle(&ctx, delivery).await }.instrument(span));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error; waiting for connection recovery");
                    ch.wait_for_recovery(e).await.context("RabbitMQ connection could not be recovered")?;
                }
                None => {
                    // The broker cancelled us (queue deleted, consumer timeout): not a shutdown.
                    tracing::warn!("consumer cancelled by the broker; re-subscribing");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ctx.topology.declare(&conn).await?;
                    consumer = subscribe(&ch, &ctx.topology.jobs, &tag).await?;
                }
            }
        }
    }
    tracing::info!("shutting down: cancelling the consumer and finishing in-flight jobs");
    let _ = ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(60), tracker.wait()).await.is_err() {
        tracing::warn!("in-flight jobs did not finish within 60 s; their messages will be redelivered");
    }
    // The IRP calls counted since the last periodic flush (API consumption).
    super::usage::flush(&ctx).await;
    relay_stop.cancel();
    let _ = relay_task.await;
    let _ = conn.close(200, "shutdown".into()).await;
    Ok(())
}

fn header_u32(d: &Delivery, name: &str) -> Option<u32> {
    d.properties.headers().as_ref()?.inner().get(name).and_then(|v| match v {
        AMQPValue::LongInt(i) => u32::try_from(*i).ok(),
        AMQPValue::LongLongInt(i) => u32::try_from(*i).ok(),
        AMQPValue::ShortInt(i) => u32::try_from(*i).ok(),
        AMQPValue::LongUInt(i) => Some(*i),
        _ => None,
    })
}

fn header_i64(d: &Delivery, name: &str) -> Option<i64> {
    d.properties.headers().as_ref()?.inner().get(name).and_then(|v| match v {
        AMQPValue::LongLongInt(i) => Some(*i),
        AMQPValue::LongInt(i) => Some(*i as i64),
        AMQPValue::Timestamp(t) => Some(*t as i64),
        _ => None,
    })
}

/// Handle one delivery and settle it.
async fn settle(ctx: &Ctx, delivery: Delivery) {
    let props = &delivery.properties;
    let mut meta = CommandMeta {
        routing_key: delivery.routing_key.to_string(),
        message_id: props.message_id().as_ref().map(|s| s.to_string()),
        correlation_id: props.correlation_id().as_ref().map(|s| s.to_string()),
        reply_to: props.reply_to().as_ref().map(|s| s.to_string()).filter(|s| !s.is_empty()),
        request_id: None,
        handling: Some(uuid::Uuid::new_v4()),
    };
    let sender = authorize::sender(&ctx.seals, props, &meta.routing_key, &delivery.data);
    // A reply_to the sender may not use gets nothing: the answer goes to the events exchange only.
    let mut refusal = None;
    if let Some(q) = meta.reply_to.as_deref() {
        if let Err(r) = authorize::reply_to(&ctx.settings, q) {
            meta.reply_to = None;
            refusal = Some(r);
        }
    }
    let who = Caller { sender, refusal };
    let attempt = header_u32(&delivery, ATTEMPT_HEADER).unwrap_or(0);
    let first_seen = header_i64(&delivery, FIRST_SEEN_HEADER)
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or_else(Utc::now);
    // Fair share: over its GSTIN's cap (and its short waiting line), the delivery is set aside
    // (a benign wait: its attempt stays) instead of holding a prefetch slot, until the GSTIN's
    // schedule expects room for it (see fair_share's "Pacing").
    let gstin = if ctx.fair_share.is_on() { fair_share::gstin_of(&delivery.data) } else { None };
    let _slot = match gstin {
        Some(gstin) => match ctx.fair_share.enter(&gstin).await {
            Some(slot) => Some(slot),
            None => {
                let promise =
                    header_i64(&delivery, SET_ASIDE_UNTIL_HEADER).and_then(DateTime::<Utc>::from_timestamp_millis);
                let until = ctx.fair_share.come_back_at(&gstin, promise, Utc::now());
                metrics::counter!(m::COMMANDS_SET_ASIDE).increment(1);
                tracing::debug!(gstin, %until, "the GSTIN is at its in-flight cap; setting the delivery aside");
                let settled =
                    reschedule_then_ack(ctx, &delivery, &who, attempt, Delay::SetAside(until), first_seen, None).await;
                if let Err(e) = settled {
                    tracing::warn!(error = %e, "could not settle the delivery; the broker will redeliver it");
                }
                return;
            }
        },
        None => None,
    };
    let started = std::time::Instant::now();
    let in_flight = metrics::gauge!(m::JOBS_IN_FLIGHT);
    in_flight.increment(1.0);
    // A database outage is nobody's failure: the delivery is held (not requeued, which would
    // spend the queue's delivery limit) and handled again once the database answers, with the
    // same handling id, so a generate whose outcome could not be stored finds its own lease and
    // settles by lookup at once. Held deliveries fill the prefetch, so consumption pauses.
    // An error while the database answers (not an outage) is retried a few times only, then the
    // message is requeued as before (the queue's delivery limit bounds it).
    let (mut held, mut failed_while_up) = (Duration::ZERO, 0);
    let (result, by_events) = loop {
        let (result, by_events) = m::track_outcome(handle(ctx, &mut meta, &delivery, &who, attempt, first_seen)).await;
        match &result {
            Err(e) if held < MAX_HOLD && failed_while_up < 3 => {
                tracing::warn!(error = %e, held_secs = held.as_secs(), "the database is unavailable; holding the delivery until it answers");
                let (waited, was_down) = wait_for_database(ctx).await;
                held += waited;
                failed_while_up = if was_down { 0 } else { failed_while_up + 1 };
            }
            _ => break (result, by_events),
        }
    };
    in_flight.decrement(1.0);
    // Events handed to the relay need no poll; one stored for the poll does.
    if crate::store::outbox::take_unhanded() {
        ctx.relay_wake.notify_one();
    }
    // Label by known routing keys only: an attacker-chosen key must not mint new series.
    let rk = JobKind::from_routing_key(&meta.routing_key).map_or("unknown", JobKind::routing_key);
    let outcome = match &result {
        Ok(Disposition::Ack) => by_events.unwrap_or("success"),
        Ok(Disposition::DeadLetter) => "dead_lettered",
        Ok(Disposition::Reschedule { .. } | Disposition::Wait { .. }) => by_events.unwrap_or("rescheduled"),
        Err(_) => "requeued",
    };
    let elapsed = started.elapsed();
    metrics::counter!(m::COMMANDS, "routing_key" => rk, "outcome" => outcome).increment(1);
    metrics::histogram!(m::COMMAND_DURATION, "routing_key" => rk).record(elapsed.as_secs_f64());
    tracing::info!(outcome, duration_ms = elapsed.as_millis() as u64, attempt, "command finished");
    let settled = match result {
        Ok(Disposition::Ack) => delivery.ack(BasicAckOptions::default()).await,
        Ok(Disposition::DeadLetter) => delivery.reject(BasicRejectOptions { requeue: false }).await,
        Ok(Disposition::Reschedule { attempt, errors }) => {
            Box::pin(reschedule_then_ack(ctx, &delivery, &who, attempt + 1, Delay::Failure, first_seen, Some(&errors)))
                .await
        }
        Ok(Disposition::Wait { until, attempt, errors }) => {
            Box::pin(reschedule_then_ack(ctx, &delivery, &who, attempt, Delay::Until(until), first_seen, Some(&errors)))
                .await
        }
        Err(e) => {
            // The outcome could not be committed: nothing was acked, so nothing is lost.
            tracing::error!(error = %e, held_secs = held.as_secs(), "the database stayed unavailable; requeueing the message");
            delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "could not settle the delivery; the broker will redeliver it");
    }
}

/// How long one delivery is held through a database outage before it goes back to the queue
/// (below RabbitMQ's default 30-minute consumer timeout, which would close the channel).
const MAX_HOLD: Duration = Duration::from_secs(20 * 60);

/// Wait until the database answers (or a minute passed): how long it waited, and whether it was
/// down at first. Backs off from 250 ms to 5 s, so a failover is noticed within moments.
async fn wait_for_database(ctx: &Ctx) -> (Duration, bool) {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut was_down = false;
    loop {
        tokio::time::sleep(delay).await;
        if ctx.db.ping().await.is_ok() || started.elapsed() >= Duration::from_secs(60) {
            return (started.elapsed(), was_down);
        }
        was_down = true;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Dispatch one delivery, answer a command whose content cannot be stored, and record a batch
/// member's final answer.
async fn handle(
    ctx: &Ctx,
    meta: &mut CommandMeta,
    delivery: &Delivery,
    who: &Caller,
    attempt: u32,
    first_seen: DateTime<Utc>,
) -> Result<Disposition, StoreError> {
    let mut member = None;
    let dispatched = dispatch(ctx, meta, &delivery.data, who, attempt, first_seen, delivery.redelivered, &mut member);
    // A panic in a handler (a bug) must still end the message: answered and dead-lettered, not
    // left unacknowledged holding a prefetch slot until the broker's consumer timeout.
    let dispatched = std::panic::AssertUnwindSafe(dispatched).catch_unwind();
    let result = match Box::pin(dispatched).await {
        Ok(result) => result,
        Err(panic) => Box::pin(reject_panicked(ctx, meta, panic_text(panic.as_ref()))).await,
    };
    let result = match result {
        // The message's own content failed to store: retrying cannot help, so answer it.
        Err(e) if e.is_content_error() => Box::pin(reject_unstorable(ctx, meta, &e)).await,
        result => result,
    };
    // A batch member answered for good: record it before the ack, so a crash in between
    // redelivers the member (answered from the store) and records it then.
    match (result, member) {
        (Ok(d @ (Disposition::Ack | Disposition::DeadLetter)), Some(member)) => {
            Box::pin(jobs::batch_member_answered(ctx, &member, meta.message_id.as_deref())).await.map(|()| d)
        }
        (result, _) => result,
    }
}

/// Reschedule, then ack; requeue when the copy could not be published. `errors` (why) is logged
/// per reschedule; `None` is quiet, for a delivery set aside (a GSTIN over its cap sets aside many
/// a second).
async fn reschedule_then_ack(
    ctx: &Ctx,
    delivery: &Delivery,
    who: &Caller,
    attempt: u32,
    delay: Delay,
    first_seen: DateTime<Utc>,
    errors: Option<&[ErrorItem]>,
) -> Result<bool, lapin::Error> {
    match reschedule(ctx, delivery, who, attempt, delay, first_seen).await {
        Ok(delay) => {
            if let Some(errors) = errors {
                tracing::info!(?errors, delay_ms = delay, attempt, "job rescheduled");
            }
            delivery.ack(BasicAckOptions::default()).await
        }
        Err(e) => {
            let set_aside = errors.is_none();
            tracing::warn!(error = %e, set_aside, "could not reschedule; requeueing");
            delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await
        }
    }
}

/// How long a rescheduled command waits.
enum Delay {
    /// After the n-th failure (`attempt`): the n-th retry tier.
    Failure,
    /// A benign wait: until then (or the longest tier, after which it waits again).
    Until(DateTime<Utc>),
    /// Fair share's wait, as `Until`; the time goes with the copy, which keeps it if it comes
    /// back early and must wait again.
    SetAside(DateTime<Utc>),
}

/// The shortest benign wait: a wait whose end has (nearly) passed still goes through the retry
/// queue, but must not spin on a clock difference between this host and Postgres.
const MIN_WAIT_MS: i64 = 250;

/// Republish the command through a retry tier (keeping its routing key and ids), with
/// `attempt` failures so far. Returns the delay.
async fn reschedule(
    ctx: &Ctx,
    d: &Delivery,
    who: &Caller,
    attempt: u32,
    delay: Delay,
    first_seen: DateTime<Utc>,
) -> Result<u32, amqp::AmqpError> {
    let promise = match delay {
        Delay::SetAside(until) => Some(until),
        _ => None,
    };
    let (tier, delay, expiration) = match delay {
        Delay::Failure => {
            let (tier, ms) = ctx.topology.retry_tier(attempt);
            (tier, ms, None)
        }
        Delay::Until(until) | Delay::SetAside(until) => {
            let ms = (until - Utc::now()).num_milliseconds().clamp(MIN_WAIT_MS, i64::from(u32::MAX)) as u32;
            let (tier, tier_ms) = ctx.topology.wait_tier(ms);
            // Shorter than the shortest tier: the message's own expiration brings it back on time.
            // Otherwise the tier is no longer than the wait: back by then, looked at again.
            (tier, ms.min(tier_ms), (ms < tier_ms).then_some(ms))
        }
    };
    // Fresh headers on purpose: copying x-death would trip RabbitMQ's dead-letter cycle check.
    // The copy loses the broker-checked user_id: the worker's seal keeps who sent it.
    let mut headers = match &who.sender {
        Some(p) => authorize::sealed(&ctx.seals, p, d.routing_key.as_str(), &d.data),
        None => FieldTable::default(),
    };
    headers.insert(ShortString::from(ATTEMPT_HEADER), AMQPValue::LongLongInt(attempt as i64));
    headers.insert(ShortString::from(FIRST_SEEN_HEADER), AMQPValue::LongLongInt(first_seen.timestamp_millis()));
    if let Some(until) = promise {
        headers.insert(ShortString::from(SET_ASIDE_UNTIL_HEADER), AMQPValue::LongLongInt(until.timestamp_millis()));
    }
    headers.insert(
        ShortString::from("BCC"),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(LongString::from(tier.as_str()))])),
    );
    let mut props = amqp::with_command_ids(amqp::json_props().with_headers(headers), &d.properties);
    if let Some(ms) = expiration {
        props = props.with_expiration(ms.to_string().into());
    }
    let publisher =
        ctx.publisher().ok_or_else(|| amqp::AmqpError::Unreachable("the worker is not connected".into()))?;
    amqp::publish_confirmed(publisher, &ctx.topology.retry, d.routing_key.as_str(), &d.data, props, true).await?;
    let tier_no = ctx.topology.retry_queues().iter().position(|q| *q == tier).map_or(0, |i| i + 1);
    metrics::counter!(m::RESCHEDULES, "tier" => tier_no.to_string()).increment(1);
    Ok(delay)
}

/// A message whose content the database refused (a data exception, not an outage): publish its
/// rejection and dead-letter the original bytes, instead of requeueing it until the delivery
/// limit drops it unanswered.
async fn reject_unstorable(ctx: &Ctx, meta: &CommandMeta, e: &StoreError) -> Result<Disposition, StoreError> {
    tracing::warn!(error = %e, "the command's content cannot be stored; rejecting and dead-lettering it");
    let kind = JobKind::from_routing_key(&meta.routing_key);
    let event_type = kind.map_or(COMMAND_REJECTED, JobKind::rejected_event);
    let errors = vec![ErrorItem::worker(
        "UNSTORABLE_CONTENT",
        format!("the command holds content the database cannot store ({e}); the message is in einvoice.dead"),
    )];
    let data = json!({"errors": errors, "dead_lettered": true});
    ctx.db.enqueue_events(&[plain_event(meta, event_type, data)]).await?;
    Ok(Disposition::DeadLetter)
}

/// Who sent a delivery, and what it may not do before it is even read.
struct Caller {
    /// The publisher (the broker-checked `user_id`, or the worker's sealed header).
    sender: Option<String>,
    /// A `reply_to` the sender may not use (the answer then goes to the events exchange only).
    refusal: Option<authorize::Refusal>,
}

/// Refuse a command its sender may not send: `<kind>.rejected` with the refusal's code.
async fn forbid(
    ctx: &Ctx,
    meta: &CommandMeta,
    event_type: &str,
    r: authorize::Refusal,
) -> Result<Disposition, StoreError> {
    tracing::warn!(code = r.code, reason = r.reason, message = %r.message, "command refused: not authorised");
    metrics::counter!(m::COMMANDS_FORBIDDEN, "reason" => r.reason).increment(1);
    let errors = vec![ErrorItem::worker(r.code, r.message)];
    let data = json!({"errors": errors, "dead_lettered": false});
    ctx.db.enqueue_events(&[plain_event(meta, event_type, data)]).await?;
    Ok(Disposition::Ack)
}

/// What a panic said, for the log and the answer.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A handler panicked on this command: publish its rejection (the worker's fault, not the
/// sender's: `INTERNAL`) and dead-letter the original bytes for an operator to look at.
async fn reject_panicked(ctx: &Ctx, meta: &CommandMeta, why: String) -> Result<Disposition, StoreError> {
    tracing::error!(panic = %why, "the handler panicked; rejecting and dead-lettering the command");
    metrics::counter!(m::HANDLER_PANICS).increment(1);
    let kind = JobKind::from_routing_key(&meta.routing_key);
    let event_type = kind.map_or(COMMAND_REJECTED, JobKind::rejected_event);
    let errors = vec![ErrorItem::worker(
        crate::domain::problem::code::INTERNAL,
        format!(
            "the worker failed on this command ({}); the message is in einvoice.dead for an operator",
            crate::domain::text::cut(&why, 200)
        ),
    )];
    let data = json!({"errors": errors, "dead_lettered": true});
    ctx.db.enqueue_events(&[plain_event(meta, event_type, data)]).await?;
    Ok(Disposition::DeadLetter)
}

/// Parse and route one command to its handler.
#[allow(clippy::too_many_arguments)]
async fn dispatch(
    ctx: &Ctx,
    meta: &mut CommandMeta,
    body: &[u8],
    who: &Caller,
    attempt: u32,
    first_seen: DateTime<Utc>,
    redelivered: bool,
    member: &mut Option<BatchMember>,
) -> Result<Disposition, StoreError> {
    // Only the worker publishes batch members: a `batch` marker or a `batch:` message id from
    // anyone else is not one. Such a message is refused before anything else, and its answer
    // carries no message id (a batch's summary finds its members' answers by that id).
    let from_worker = who.sender.as_deref() == Some(authorize::WORKER);
    if !from_worker && meta.message_id.as_deref().is_some_and(|id| id.starts_with(BATCH_ID_PREFIX)) {
        meta.message_id = None;
        let refusal = authorize::Refusal {
            code: "FORBIDDEN",
            reason: "batch_id",
            message: "message ids starting with 'batch:' are the worker's own (the members of a batch); use another \
                      message_id"
                .into(),
        };
        let event_type = JobKind::from_routing_key(&meta.routing_key).map_or(COMMAND_REJECTED, JobKind::rejected_event);
        return Box::pin(forbid(ctx, meta, event_type, refusal)).await;
    }
    let parsed = match parse_command(&meta.routing_key, body, &ctx.parse_options()) {
        Ok(p) => p,
        Err(rej) => {
            if from_worker {
                member.clone_from(&rej.batch);
            }
            meta.request_id = rej.request_id.clone();
            if let Some(id) = &meta.request_id {
                span::record_request_id(id);
            }
            let source = if rej.envelope { ErrorSource::Envelope } else { ErrorSource::Validation };
            let errors: Vec<ErrorItem> = rej.problems.into_iter().map(|p| ErrorItem::from_problem(source, p)).collect();
            let event_type = rej.kind.map_or(COMMAND_REJECTED, JobKind::rejected_event);
            tracing::info!(%event_type, problems = errors.len(), "command rejected before any IRP call");
            let mut data = json!({"errors": errors, "dead_lettered": rej.envelope});
            if rej.omitted > 0 {
                data["errors_omitted"] = json!(rej.omitted);
            }
            // A redelivery (the worker died between committing the answer and acking) of a
            // command already answered says so, as a replay of a stored result does.
            if redelivered {
                if let Some(id) = &meta.message_id {
                    if ctx.db.answered(id, event_type).await? {
                        data["replayed"] = json!(true);
                    }
                }
            }
            if let Some(given) = &rej.document_as_given {
                data["document_as_given"] = json!(given);
            }
            let mut ev = plain_event(meta, event_type, data);
            ev.event.document = rej.document.map(|d| *d);
            ctx.db.enqueue_events(&[ev]).await?;
            return Ok(if rej.envelope { Disposition::DeadLetter } else { Disposition::Ack });
        }
    };
    meta.request_id = parsed.request_id;
    if from_worker {
        member.clone_from(&parsed.batch);
    }
    if let Some(id) = &meta.request_id {
        span::record_request_id(id);
    }
    span::record_command(parsed.command.gstin().map(|g| g.as_str()), parsed.command.subject().as_deref());
    let kind = parsed.command.kind();
    let refused = who
        .refusal
        .clone()
        .or_else(|| authorize::publisher(&ctx.settings, who.sender.as_deref(), kind, parsed.command.gstin()).err());
    if let Some(r) = refused {
        return Box::pin(forbid(ctx, meta, kind.rejected_event(), r)).await;
    }
    let disposition = Box::pin(jobs::dispatch(ctx, meta, &parsed.command, attempt)).await?;
    // Jobs without a job row give up here once they are too old (generate decides per row).
    if let Disposition::Reschedule { errors, .. } | Disposition::Wait { errors, .. } = &disposition {
        let age = (Utc::now() - first_seen).num_seconds().max(0) as u64;
        if kind != JobKind::IrnGenerate && age >= ctx.settings.retry_max_age_secs {
            let data = json!({"errors": errors, "attempts": attempt + 1, "first_attempt_at": first_seen});
            ctx.db.enqueue_events(&[plain_event(meta, kind.failed_event(), data)]).await?;
            return Ok(Disposition::Ack);
        }
    }
    Ok(disposition)
}
