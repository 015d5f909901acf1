//! RabbitMQ adapter (lapin 4): connection, topology, publishing with confirms, the outbox relay.
pub mod relay;
pub mod topology;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};

pub use topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("RabbitMQ error: {0}")]
    Lapin(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm the publish to '{0}'")]
    Nacked(String),
    #[error("RabbitMQ could not route the message to '{0}' (no such queue?)")]
    Unroutable(String),
    #[error("RabbitMQ is not reachable at {0}")]
    Unreachable(String),
    #[error("RabbitMQ publish to '{0}' timed out")]
    Timeout(String),
}

/// Connect with lapin's auto-recovery on: it reconnects and replays topology, QoS and consumers.
///
/// With recovery on, lapin also retries the *initial* connect (16 attempts with backoff), which
/// would make "RabbitMQ is down" look like a hang. So we first check that the broker's port
/// answers at all, and bound the whole connect.
pub async fn connect(url: &str, name: &str) -> Result<Connection, AmqpError> {
    let uri: lapin::uri::AMQPUri =
        url.parse().map_err(|e: String| AmqpError::Unreachable(format!("invalid AMQP URL: {e}")))?;
    let addr = format!("{}:{}", uri.authority.host, uri.authority.port);
    match tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(AmqpError::Unreachable(format!("{addr}: {e}"))),
        Err(_) => return Err(AmqpError::Unreachable(format!("{addr}: no answer within 5 s"))),
    }
    let props = ConnectionProperties::default().with_connection_name(name.into()).enable_auto_recover();
    tokio::time::timeout(std::time::Duration::from_secs(30), Connection::connect(url, props))
        .await
        .map_err(|_| AmqpError::Unreachable(format!("{addr}: the AMQP handshake did not finish within 30 s")))?
        .map_err(AmqpError::from)
}

/// A channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, AmqpError> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Persistent JSON properties.
pub fn json_props() -> BasicProperties {
    BasicProperties::default().with_content_type("application/json".into()).with_delivery_mode(2)
}

/// Publish and wait for the broker's confirm; unroutable (mandatory) messages are errors.
/// Wrapped in a timeout: lapin's publish can hang when the server goes away (lapin#409).
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
    mandatory: bool,
) -> Result<(), AmqpError> {
    let confirm = send(ch, exchange, routing_key, body, props, mandatory).await?;
    confirmed(confirm, &format!("{exchange}/{routing_key}")).await
}

/// Send without waiting for the confirm, so a batch can be pipelined: the broker confirms
/// persistent messages only after writing them, and waiting for each in turn would make every
/// event cost a disk flush of latency.
pub async fn send(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
    mandatory: bool,
) -> Result<PublisherConfirm, AmqpError> {
    let opts = BasicPublishOptions { mandatory, ..Default::default() };
    let fut = ch.basic_publish(exchange.into(), routing_key.into(), opts, body, props);
    tokio::time::timeout(PUBLISH_TIMEOUT, fut)
        .await
        .map_err(|_| AmqpError::Timeout(routing_key.into()))?
        .map_err(AmqpError::from)
}

/// Wait for one confirm from [`send`]; `target` names the destination in errors.
pub async fn confirmed(confirm: PublisherConfirm, target: &str) -> Result<(), AmqpError> {
    let confirmation =
        tokio::time::timeout(PUBLISH_TIMEOUT, confirm).await.map_err(|_| AmqpError::Timeout(target.into()))??;
    if confirmation.is_nack() {
        return Err(AmqpError::Nacked(target.into()));
    }
    if confirmation.take_message().is_some() {
        return Err(AmqpError::Unroutable(target.into()));
    }
    Ok(())
}

const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A private reply queue (server-named, exclusive, deleted with the connection) and a consumer
/// on it: where `publish --wait`, the demo and the benchmark receive their result events.
/// `no_ack`: the consumer does not ack (fine for a throwaway queue).
pub async fn reply_queue(ch: &Channel, tag: &str, no_ack: bool) -> Result<(String, lapin::Consumer), AmqpError> {
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let name = q.name().to_string();
    let consumer = ch
        .basic_consume(
            name.as_str().into(),
            tag.into(),
            BasicConsumeOptions { no_ack, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    Ok((name, consumer))
}
