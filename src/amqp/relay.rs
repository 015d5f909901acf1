//! The outbox relay: publishes committed events with publisher confirms, then marks them sent.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so every worker process can run a relay
//! without publishing an event twice in the normal case; after a crash between confirm and
//! commit an event may be published again, which is why events carry a unique `event_id`.
use std::sync::Arc;
use std::time::Duration;

use lapin::types::ShortString;
use lapin::Channel;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{confirmed, json_props, send, AmqpError};
use crate::store::outbox::{lock_pending, mark_published, PendingEvent};
use crate::store::Db;

/// Events published per transaction.
const BATCH: usize = 100;

pub struct Relay {
    pub db: Db,
    pub channel: Channel,
    pub events_exchange: String,
    /// Where an event goes when no queue is bound for its type on `events_exchange`.
    pub unrouted_queue: String,
    pub wake: Arc<Notify>,
}

impl Relay {
    /// Publish until cancelled; wakes on `wake` or every 250 ms.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.drain().await {
                // A full batch: more may be waiting. A partial one emptied the outbox as of its
                // query; whatever was committed since has woken `wake` (notify_one keeps the
                // permit), so looking again at once would be an empty transaction per batch.
                Ok(n) if n >= BATCH => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Last passes so a clean shutdown leaves nothing behind.
                    while let Ok(n) = self.drain().await {
                        if n == 0 {
                            break;
                        }
                    }
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Publish one batch; returns how many events went out. All messages of the batch are sent
    /// first and their confirms awaited afterwards (pipelined); the rows are marked published only
    /// when every confirm has arrived.
    pub async fn drain(&self) -> Result<usize, anyhow::Error> {
        let mut c = self.db.client().await?;
        let tx = c.transaction().await?;
        let batch = lock_pending(&tx, BATCH as i64).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let mut confirms = Vec::with_capacity(batch.len() * 2);
        for ev in &batch {
            let (body, props) = message(ev);
            // Mandatory: the broker returns an event no queue is bound for, instead of dropping it.
            let to_events =
                send(&self.channel, &self.events_exchange, &ev.event_type, &body, props.clone(), true).await?;
            confirms.push((ev, None, to_events));
            if let Some(reply_to) = &ev.reply_to {
                confirms.push((ev, Some(reply_to), send(&self.channel, "", reply_to, &body, props, true).await?));
            }
        }
        // Events no queue received (events exchange unbound, and no reply queue or a vanished one).
        let mut missed: Vec<(&PendingEvent, bool)> = Vec::new();
        for (ev, reply_to, confirm) in confirms {
            match (confirmed(confirm, reply_to.map_or(ev.event_type.as_str(), |r| r.as_str())).await, reply_to) {
                (Ok(()), None) => {}
                // Delivered to the caller's reply queue: not lost even if nobody listens on the exchange.
                (Ok(()), Some(_)) => missed.retain(|(m, _)| m.id != ev.id),
                // Nobody has bound a queue for this event type yet.
                (Err(AmqpError::Unroutable(_)), None) => missed.push((ev, ev.reply_to.is_none())),
                // A reply queue that no longer exists must not block every later event.
                (Err(AmqpError::Unroutable(q)), Some(_)) => {
                    tracing::warn!(reply_to = %q, event_id = %ev.event_id, "reply queue does not exist; event published on the events exchange only");
                    missed.iter_mut().filter(|(m, _)| m.id == ev.id).for_each(|(_, lost)| *lost = true);
                }
                (Err(e), _) => return Err(e.into()),
            }
        }
        let unrouted: Vec<&PendingEvent> = missed.into_iter().filter(|(_, lost)| *lost).map(|(ev, _)| ev).collect();
        // The message keeps its properties (`type` = the routing key it was published with), so an
        // operator can shovel it back to the events exchange once the integrator has bound a queue.
        let mut kept = Vec::with_capacity(unrouted.len());
        for ev in &unrouted {
            let (body, props) = message(ev);
            kept.push(send(&self.channel, "", &self.unrouted_queue, &body, props, true).await?);
        }
        for confirm in kept {
            // An error (the queue was deleted) leaves the batch in the outbox: nothing is lost.
            confirmed(confirm, &self.unrouted_queue).await?;
        }
        if !unrouted.is_empty() {
            metrics::counter!("einvoice_events_unrouted_total").increment(unrouted.len() as u64);
            tracing::warn!(
                count = unrouted.len(),
                queue = %self.unrouted_queue,
                "no queue is bound on the events exchange for these events; kept them in the unrouted queue"
            );
        }
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        mark_published(&tx, &ids).await?;
        tx.commit().await?;
        for ev in &batch {
            metrics::counter!("einvoice_events_published_total", "event_type" => ev.event_type.clone()).increment(1);
        }
        Ok(ids.len())
    }
}

/// The AMQP message for an event: JSON body, `message_id` = event id, `type` = event type.
fn message(ev: &PendingEvent) -> (Vec<u8>, lapin::BasicProperties) {
    let body = ev.body.clone();
    let mut props = json_props()
        .with_message_id(ShortString::from(ev.event_id.to_string()))
        .with_type(ShortString::from(ev.event_type.as_str()))
        .with_app_id("einvoice-worker".into())
        .with_timestamp(chrono::Utc::now().timestamp() as u64);
    if let Some(c) = &ev.correlation_id {
        props = props.with_correlation_id(ShortString::from(c.as_str()));
    }
    (body, props)
}
