//! The test's side of RabbitMQ: a publisher that reconnects (and re-sends with the same
//! `message_id`, as an ERP would, when a publish was not confirmed) and a capture of every
//! event on `einvoice.events`, de-duplicated by `event_id`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use einvoice_worker::amqp;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const CAPTURE_QUEUE: &str = "fault.capture";

/// Connect to the first of `urls` that answers. Without lapin's auto-recovery: the test
/// reconnects itself, and a recovering connection would outlive the test's runtime.
pub async fn connect_any(urls: &[String], name: &str) -> Option<Connection> {
    for u in urls {
        let props = lapin::ConnectionProperties::default().with_connection_name(name.into());
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(10), Connection::connect(u, props)).await {
            return Some(c);
        }
    }
    None
}

pub struct Publisher {
    urls: Vec<String>,
    exchange: String,
    link: Option<(Connection, Channel)>,
    /// Publishes that were not confirmed and were sent again (possible duplicates).
    pub resent_unconfirmed: usize,
}

impl Publisher {
    pub fn new(urls: Vec<String>, exchange: &str) -> Publisher {
        Publisher { urls, exchange: exchange.to_string(), link: None, resent_unconfirmed: 0 }
    }

    pub async fn close(&mut self) {
        if let Some((c, _)) = self.link.take() {
            let _ = c.close(200, "done".into()).await;
        }
    }

    pub async fn publish(&mut self, routing_key: &str, body: &[u8], message_id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if self.link.is_none() {
                if let Some(c) = connect_any(&self.urls, "fault-publisher").await {
                    if let Ok(ch) = amqp::confirm_channel(&c).await {
                        self.link = Some((c, ch));
                    }
                }
            }
            if let Some((_, ch)) = &self.link {
                let props = amqp::json_props()
                    .with_message_id(ShortString::from(message_id))
                    .with_correlation_id(ShortString::from(message_id));
                match amqp::publish_confirmed(ch, &self.exchange, routing_key, body, props, true).await {
                    Ok(()) => return,
                    Err(e) => {
                        eprintln!("fault: publish of {message_id} not confirmed ({e}); sending it again");
                        self.resent_unconfirmed += 1;
                        if let Some((c, _)) = self.link.take() {
                            let _ = c.close(200, "reconnect".into()).await;
                        }
                    }
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "could not publish {message_id} for 120 s");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What the test keeps of one event.
#[derive(Debug, Clone)]
pub struct Ev {
    pub event_type: String,
    pub message_id: Option<String>,
    pub doc: Option<String>,
    pub irn: Option<String>,
    /// `data.ewb_no` and `data.ewb_valid_till`, on the e-way bill events.
    pub ewb_no: Option<String>,
    pub ewb_valid_till: Option<String>,
    pub replayed: bool,
    pub in_doubt: bool,
    pub dead_lettered: bool,
    /// When the capture received it (the answer's arrival, as the sender would see it).
    pub at: std::time::Instant,
}

impl Ev {
    fn from(v: &Value) -> Ev {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        let b = |p: &str| v.pointer(p).and_then(Value::as_bool).unwrap_or(false);
        let doc = v.get("document").filter(|d| d.is_object()).map(|d| {
            let f = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_ascii_uppercase();
            format!("{}/{}/{}/{}", f("gstin"), f("doc_type"), f("doc_number"), f("financial_year"))
        });
        Ev {
            event_type: s("/event_type").unwrap_or_default(),
            message_id: s("/command_message_id"),
            doc,
            irn: s("/data/irn").filter(|i| !i.is_empty()),
            ewb_no: s("/data/ewb_no"),
            ewb_valid_till: s("/data/ewb_valid_till"),
            replayed: b("/data/replayed"),
            in_doubt: b("/data/in_doubt") || s("/event_type").as_deref() == Some("irn.in_doubt"),
            dead_lettered: b("/data/dead_lettered"),
            at: std::time::Instant::now(),
        }
    }
}

/// event_id → event, filled by a background task that reconnects across broker restarts.
pub type Events = Arc<Mutex<HashMap<String, Ev>>>;

/// Declare the durable capture queue (a quorum queue, so it survives a node's death in a cluster).
pub async fn declare_capture(ch: &Channel, events_exchange: &str) {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), AMQPValue::LongString(LongString::from("quorum")));
    ch.queue_declare(CAPTURE_QUEUE.into(), QueueDeclareOptions { durable: true, ..Default::default() }, args)
        .await
        .expect("declare the capture queue");
    ch.queue_bind(
        CAPTURE_QUEUE.into(),
        events_exchange.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind the capture queue");
}

/// Capture until `stop` is cancelled; the connection is closed cleanly at the end (a dropped
/// lapin connection outlives the test's runtime and panics in its I/O thread).
pub fn spawn_capture(urls: Vec<String>, events: Events, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            if let Some(conn) = connect_any(&urls, "fault-capture").await {
                let _ = capture(&conn, &events, &stop).await;
                let _ = conn.close(200, "done".into()).await;
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    })
}

async fn capture(conn: &Connection, events: &Events, stop: &CancellationToken) -> Result<(), lapin::Error> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(500, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            CAPTURE_QUEUE.into(),
            "fault-capture".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let d = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            d = consumer.next() => match d {
                Some(d) => d?,
                None => return Ok(()),
            },
        };
        if let Ok(v) = serde_json::from_slice::<Value>(&d.data) {
            let id = v.get("event_id").and_then(Value::as_str).unwrap_or_default().to_string();
            events.lock().unwrap().entry(id).or_insert_with(|| Ev::from(&v));
        }
        d.ack(BasicAckOptions::default()).await?;
    }
}
