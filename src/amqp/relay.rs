//! The outbox relay: publishes committed events with publisher confirms, then marks them sent.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so every worker process can run a relay
//! without publishing an event twice in the normal case; after a crash between confirm and
//! commit an event may be published again, which is why events carry a unique `event_id`.
use std::sync::Arc;
use std::time::Duration;

use lapin::types::ShortString;
use lapin::Channel;
use tokio::sync::mpsc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{confirmed, json_props, send, AmqpError};
use crate::store::outbox::{lock_pending, mark_published, release, PendingEvent};
use crate::store::Db;

/// Events published per transaction.
const BATCH: usize = 100;

/// Events waiting in the hand-off channel (see `store::outbox::Handoff`); beyond that, the poll.
pub const HANDOFF_CAPACITY: usize = 4 * BATCH;

pub struct Relay {
    pub db: Db,
    pub channel: Channel,
    pub events_exchange: String,
    /// Where an event goes when no queue is bound for its type on `events_exchange`.
    pub unrouted_queue: String,
    /// Wakes the poll: an event was stored for it (not handed off).
    pub wake: Arc<Notify>,
    /// Events handed over by the statements that committed them (`store::Db::with_handoff`).
    pub handed: mpsc::Receiver<PendingEvent>,
}

impl Relay {
    /// Publish until cancelled: handed events as they come, and polled ones on `wake` and
    /// every 250 ms (a fixed tick, so a steady flow of handed events never starves the poll).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BATCH);
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // The poll first when it was woken: an event stored for it was committed before
                // the ones handed since, and is published before them.
                _ = self.wake.notified() => {}
                n = self.handed.recv_many(&mut batch, BATCH), if open => {
                    // 0: every sender is gone (the pools were dropped): poll only.
                    open = n > 0;
                    self.publish_handed(&mut batch).await;
                    continue;
                }
                _ = tick.tick() => {}
            }
            loop {
                match self.drain().await {
                    // A full batch: more may be waiting. A partial one emptied the outbox as of
                    // its query; whatever was committed since has woken `wake` or is handed.
                    Ok(n) if n >= BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
        }
        // Last passes so a clean shutdown leaves nothing behind: what was handed, then the rest.
        loop {
            batch.clear();
            while batch.len() < BATCH {
                match self.handed.try_recv() {
                    Ok(ev) => batch.push(ev),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            self.publish_handed(&mut batch).await;
        }
        while let Ok(n) = self.drain().await {
            if n == 0 {
                break;
            }
        }
    }

    /// Publish handed events, then mark them sent: one statement, no claim (they are leased to
    /// this relay by the statement that stored them). On failure their lease is lifted so the
    /// poll retries them; if even that fails, the lease runs out.
    async fn publish_handed(&self, batch: &mut Vec<PendingEvent>) {
        if batch.is_empty() {
            return;
        }
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        let result = async {
            self.publish(batch).await?;
            mark_published(&self.db.client().await?, &ids).await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match result {
            Ok(()) => self.count(batch),
            Err(e) => {
                tracing::warn!(error = %e, events = ids.len(), "outbox relay failed on handed events; the poll retries them");
                if let Ok(c) = self.db.client().await {
                    let _ = release(&c, &ids).await;
                }
                self.wake.notify_one();
            }
        }
        batch.clear();
    }

    /// Publish one polled batch; returns how many events went out. The rows stay locked until
    /// they are marked published, i.e. until every confirm has arrived.
    pub async fn drain(&self) -> Result<usize, anyhow::Error> {
        let mut c = self.db.client().await?;
        let tx = c.transaction().await?;
        let batch = lock_pending(&tx, BATCH as i64).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        self.publish(&batch).await?;
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        mark_published(&tx, &ids).await?;
        tx.commit().await?;
        self.count(&batch);
        Ok(ids.len())
    }

    fn count(&self, batch: &[PendingEvent]) {
        for ev in batch {
            metrics::counter!("einvoice_events_published_total", "event_type" => ev.event_type.clone()).increment(1);
        }
    }

    /// Publish `batch` and await every confirm. All messages are sent first and their confirms
    /// awaited afterwards (pipelined).
    async fn publish(&self, batch: &[PendingEvent]) -> Result<(), anyhow::Error> {
        let mut confirms = Vec::with_capacity(batch.len() * 2);
        for ev in batch {
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
        Ok(())
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
