//! RabbitMQ adapter (lapin 4): connection, topology, publishing with confirms, the outbox relay.
pub mod relay;
pub mod topology;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

pub use topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("RabbitMQ error: {0}")]
    Lapin(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm the publish to '{0}'")]
    Nacked(String),
    #[error("RabbitMQ could not route the message to '{0}' (no such queue?)")]
    Unroutable(String),
    #[error("RabbitMQ publish to '{0}' timed out")]
    Timeout(String),
}

/// Connect with lapin's auto-recovery on: it reconnects and replays topology, QoS and consumers.
pub async fn connect(url: &str, name: &str) -> Result<Connection, AmqpError> {
    let props = ConnectionProperties::default().with_connection_name(name.into()).enable_auto_recover();
    Ok(Connection::connect(url, props).await?)
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
    let target = format!("{exchange}/{routing_key}");
    let fut = async {
        let confirm = ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions { mandatory, ..Default::default() },
                body,
                props,
            )
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(AmqpError::Nacked(target.clone()));
        }
        if let Some(returned) = confirm.take_message() {
            let _ = returned;
            return Err(AmqpError::Unroutable(target.clone()));
        }
        Ok(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), fut)
        .await
        .map_err(|_| AmqpError::Timeout(routing_key.into()))?
}

/// A header table from string pairs.
pub fn headers(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}
