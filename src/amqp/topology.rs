//! The broker topology the worker declares at start (also in `deploy/rabbitmq/definitions.json`).
//!
//! - `einvoice.commands` (topic) → `einvoice.jobs`: a quorum queue with an explicit
//!   `x-delivery-limit` (RabbitMQ 3.x has no default) and at-least-once dead-lettering to
//!   `einvoice.dlx` → `einvoice.dead`;
//! - `einvoice.events` (topic): one routing key per event type; an event no queue is bound for
//!   (a new integrator, a binding for some event types only) goes to the durable queue
//!   `einvoice.unrouted` instead of being dropped. The relay publishes `mandatory` and sends what
//!   the broker returns there, rather than giving `einvoice.events` an alternate exchange: an
//!   existing exchange cannot gain arguments (redeclaring fails with PRECONDITION_FAILED), so
//!   this works unchanged on deployments made by earlier versions;
//! - `einvoice.retry` (topic) → tier queues, one per `EINVOICE_RETRY_TIERS_SECS` delay (default
//!   `einvoice.retry.5s|30s|5m`), each with a queue TTL that dead-letters back into
//!   `einvoice.commands` under the original routing key. The worker picks a tier with the `BCC`
//!   header, so the routing key survives the round trip. A queue is named by its delay, so
//!   changing the tiers declares new queues instead of clashing with the old queues' TTL.
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::ExchangeKind;

use super::AmqpError;
use crate::config::Settings;

/// A retry tier's queue-name suffix: "5s", "30s", "5m", "2h".
fn tier_suffix(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Every name, with the deployment's namespace prefix applied.
#[derive(Debug, Clone)]
pub struct Topology {
    pub commands: String,
    pub events: String,
    pub dlx: String,
    pub jobs: String,
    pub dead: String,
    pub retry: String,
    /// Events no queue was bound for.
    pub unrouted: String,
    pub delivery_limit: u32,
    /// The retry tiers, shortest first: (queue name, delay in ms).
    pub retry_tiers: Vec<(String, u32)>,
}

impl Topology {
    pub fn new(s: &Settings) -> Topology {
        Topology {
            commands: s.name("einvoice.commands"),
            events: s.name("einvoice.events"),
            dlx: s.name("einvoice.dlx"),
            jobs: s.name("einvoice.jobs"),
            dead: s.name("einvoice.dead"),
            retry: s.name("einvoice.retry"),
            unrouted: s.name("einvoice.unrouted"),
            delivery_limit: s.delivery_limit,
            retry_tiers: s
                .retry_tiers_secs
                .iter()
                .map(|secs| (format!("{}.{}", s.name("einvoice.retry"), tier_suffix(*secs)), (secs * 1000) as u32))
                .collect(),
        }
    }

    pub fn retry_queue(&self, tier: &str) -> String {
        format!("{}.{tier}", self.retry)
    }

    /// The tier for the n-th reschedule after a failure (1-based): 5 s, 30 s, then 5 min.
    pub fn retry_tier(&self, n: u32) -> (String, u32) {
        self.retry_tiers[(n.saturating_sub(1) as usize).min(self.retry_tiers.len() - 1)].clone()
    }

    /// The tier for a wait of `ms`: the longest tier no longer than the wait, so the message is
    /// back no later than the wait's end (and looked at again, waiting once more if it must:
    /// a rate-limited backlog drains at the quota's pace instead of sitting out a 5-minute tier);
    /// a wait shorter than every tier takes the shortest, with `ms` as the message's own
    /// expiration (the caller sets it).
    pub fn wait_tier(&self, ms: u32) -> (String, u32) {
        self.retry_tiers.iter().rev().find(|(_, t)| *t <= ms).unwrap_or(&self.retry_tiers[0]).clone()
    }

    /// Every retry tier's queue name.
    pub fn retry_queues(&self) -> Vec<String> {
        self.retry_tiers.iter().map(|(q, _)| q.clone()).collect()
    }

    /// Declare everything; idempotent, so every worker does it at start. Takes the connection:
    /// a retry queue declared by an earlier version (without at-least-once dead-lettering) fails
    /// the redeclare, which closes the channel, and is then kept as it is on a fresh one.
    pub async fn declare(&self, conn: &lapin::Connection) -> Result<(), AmqpError> {
        let mut ch = conn.create_channel().await?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        for x in [&self.commands, &self.events, &self.dlx, &self.retry] {
            ch.exchange_declare(x.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
        }
        let q = QueueDeclareOptions { durable: true, ..Default::default() };
        let mut jobs_args = quorum();
        jobs_args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(self.delivery_limit as i64));
        jobs_args.insert("x-dead-letter-exchange".into(), lstr(&self.dlx));
        jobs_args.insert("x-dead-letter-strategy".into(), lstr("at-least-once"));
        jobs_args.insert("x-overflow".into(), lstr("reject-publish"));
        ch.queue_declare(self.jobs.as_str().into(), q, jobs_args).await?;
        ch.queue_bind(
            self.jobs.as_str().into(),
            self.commands.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.queue_declare(self.unrouted.as_str().into(), q, quorum()).await?;
        ch.queue_declare(self.dead.as_str().into(), q, quorum()).await?;
        ch.queue_bind(
            self.dead.as_str().into(),
            self.dlx.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        for (name, ttl) in &self.retry_tiers {
            let mut args = quorum();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(*ttl as i64));
            args.insert("x-dead-letter-exchange".into(), lstr(&self.commands));
            // At-least-once: a message expiring while the jobs queue cannot take it (a broker
            // restart, a leader election) stays here until it can, instead of being dropped.
            args.insert("x-dead-letter-strategy".into(), lstr("at-least-once"));
            args.insert("x-overflow".into(), lstr("reject-publish"));
            match ch.queue_declare(name.as_str().into(), q, args).await {
                Ok(_) => {}
                Err(e) if super::lapin_text(&e).contains("406") => {
                    tracing::warn!(
                        queue = %name,
                        "retry queue declared by an earlier version without at-least-once dead-lettering: kept as it is. \
                         A message expiring in it while RabbitMQ restarts can be lost; drain and delete the queue (the \
                         worker declares it anew) or apply a policy with dead-letter-strategy at-least-once and \
                         overflow reject-publish"
                    );
                    // The failed declare closed the channel: carry on with a fresh one.
                    ch = conn.create_channel().await?;
                    let passive = QueueDeclareOptions { passive: true, ..q };
                    ch.queue_declare(name.as_str().into(), passive, FieldTable::default()).await?;
                }
                Err(e) => return Err(e.into()),
            }
            ch.queue_bind(
                name.as_str().into(),
                self.retry.as_str().into(),
                name.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }
}

fn quorum() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(ShortString::from("x-queue-type"), lstr("quorum"));
    t
}

fn lstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_never_outlasts_itself_in_a_retry_tier() {
        let t = Topology::new(&Settings::from_toml("retry_tiers_secs = \"5,30,300\"").unwrap());
        let tier = |ms| t.wait_tier(ms).1;
        assert_eq!(tier(2_000), 5_000, "shorter than every tier: the shortest (with its own expiration)");
        assert_eq!(tier(5_000), 5_000);
        assert_eq!(tier(29_000), 5_000);
        assert_eq!(tier(60_000), 30_000, "a minute's wait comes back after 30 s, not 5 min");
        assert_eq!(tier(299_000), 30_000);
        assert_eq!(tier(3_600_000), 300_000);
    }
}
