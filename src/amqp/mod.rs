//! RabbitMQ adapter (lapin 4): connection, topology, publishing with confirms, the outbox relay.
pub mod relay;
pub mod topology;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};

pub use topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("RabbitMQ error: {}", lapin_text(.0))]
    Lapin(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm the publish to '{0}'")]
    Nacked(String),
    #[error("RabbitMQ could not route the message to '{0}' (no such queue?)")]
    Unroutable(String),
    #[error("RabbitMQ is not reachable at {0}")]
    Unreachable(String),
    #[error("RabbitMQ publish to '{0}' timed out")]
    Timeout(String),
    #[error("invalid AMQP URL ({0})")]
    InvalidUrl(String),
    /// The port answers but the TLS handshake fails: retrying cannot fix that.
    #[error(
        "TLS handshake with RabbitMQ at {addr} failed: {reason}; check that this port speaks TLS (RabbitMQ's \
         amqps listener is usually 5671, plain AMQP 5672) and that the server's certificate is valid for this \
         host name and signed by a trusted CA"
    )]
    Tls { addr: String, reason: String },
    /// The broker answered and refused the connection (credentials, vhost): retrying cannot fix that.
    #[error("RabbitMQ at {addr} refused the connection: {reason}; {hint}")]
    Refused { addr: String, reason: String, hint: &'static str },
}

/// A lapin error with the broker's reply code and text when the broker sent one, e.g.
/// `reply code 406: PRECONDITION_FAILED - inequivalent arg …`.
pub fn lapin_text(e: &lapin::Error) -> String {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => format!("reply code {}: {}", p.get_id(), p.get_message()),
        _ => e.to_string(),
    }
}

/// The broker nodes of a comma-separated `EINVOICE_AMQP_URL` (one node, or several of a cluster
/// sharing user, password and vhost).
pub fn parse_urls(urls: &str) -> Result<Vec<lapin::uri::AMQPUri>, AmqpError> {
    let nodes: Vec<_> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .enumerate()
        // The URL's own text may hold a password, and the parser's message may quote it (lapin
        // writes "Invalid URL: '<the URL>'"): redacted, even when it is not a valid URL.
        .map(|(i, u)| {
            u.parse().map_err(|e: String| {
                AmqpError::InvalidUrl(format!(
                    "address {} ({}): {}",
                    i + 1,
                    crate::config::redact_url(u),
                    crate::config::scrub_url(&e, u)
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if nodes.is_empty() {
        return Err(AmqpError::InvalidUrl("no address given".into()));
    }
    Ok(nodes)
}

fn host_port(uri: &lapin::uri::AMQPUri) -> String {
    format!("{}:{}", uri.authority.host, uri.authority.port)
}

/// Open TCP (and TLS for `amqps://`) to one node within 5 s. A macro because the stream's type
/// depends on lapin's runtime type, which lapin does not name publicly.
macro_rules! open_stream {
    ($uri:expr, $runtime:expr) => {{
        use lapin::tcp::{AMQPUriTcpExt, OwnedTLSConfig};
        let tls = OwnedTLSConfig::default();
        match tokio::time::timeout(NODE_TIMEOUT, $uri.connect_with_config_async(tls.as_ref(), $runtime)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 5 s")),
        }
    }};
}

const NODE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connect to the first live node of `urls` (comma-separated), with lapin's auto-recovery on: it
/// reconnects and replays topology, QoS and consumers. Every (re)connection goes through our
/// transport closure, which starts at the node last connected and moves on to the next when it
/// is down, so losing a cluster node moves the worker to another (lapin alone would retry the
/// dead address only).
///
/// With recovery on, lapin also retries the *initial* connect (16 attempts with backoff), which
/// would make "RabbitMQ is down", a TLS mismatch or wrong credentials look like a hang. So we
/// first probe each node ourselves (TCP, then TLS), fail at once on a TLS error, and bound the
/// handshake; a refusal by the broker (403 credentials, 530 vhost) is reported with its reply code.
pub async fn connect(urls: &str, name: &str) -> Result<Connection, AmqpError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let nodes = parse_urls(urls)?;
    let runtime = lapin::runtime::default_runtime()?;
    let mut down = Vec::new();
    let mut first = None;
    for (i, uri) in nodes.iter().enumerate() {
        let addr = host_port(uri);
        match tokio::time::timeout(NODE_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                down.push(format!("{addr}: {e}"));
                continue;
            }
            Err(_) => {
                down.push(format!("{addr}: no answer within 5 s"));
                continue;
            }
        }
        if uri.scheme == lapin::uri::AMQPScheme::AMQPS {
            // The port answered; a failure now is the TLS handshake's.
            if let Err(e) = open_stream!(uri, &runtime) {
                return Err(AmqpError::Tls { addr, reason: e.to_string() });
            }
        }
        first = Some(i);
        break;
    }
    let Some(first) = first else {
        return Err(AmqpError::Unreachable(format!(
            "{}; start it (e.g. `rabbitmq-server -detached`) or set EINVOICE_AMQP_URL to where it runs",
            down.join(", ")
        )));
    };
    let addr = host_port(&nodes[first]);
    let uri = nodes[first].clone();
    let nodes = Arc::new(nodes);
    let current = Arc::new(AtomicUsize::new(first));
    let transport = async move |_: lapin::uri::AMQPUri, runtime| {
        let start = current.load(Ordering::Relaxed);
        let mut last = None;
        for k in 0..nodes.len() {
            let i = (start + k) % nodes.len();
            match open_stream!(&nodes[i], &runtime) {
                Ok(stream) => {
                    if i != start {
                        tracing::warn!(node = %host_port(&nodes[i]), "RabbitMQ node unreachable; connected to another");
                    }
                    current.store(i, Ordering::Relaxed);
                    return Ok(stream);
                }
                Err(e) => {
                    tracing::debug!(node = %host_port(&nodes[i]), error = %e, "RabbitMQ node unreachable");
                    last = Some(e);
                }
            }
        }
        Err(lapin::Error::from(last.unwrap_or_else(|| std::io::Error::other("no RabbitMQ node"))))
    };
    let props = ConnectionProperties::default().with_connection_name(name.into()).enable_auto_recover();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Connection::connector(uri, runtime, transport, props)).await {
        Err(_) => Err(AmqpError::Unreachable(format!("{addr}: the AMQP handshake did not finish within 30 s"))),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(match e.kind() {
            lapin::ErrorKind::ProtocolError(p) => AmqpError::Refused {
                addr,
                reason: format!("reply code {}: {}", p.get_id(), p.get_message()),
                hint: match p.get_id() {
                    403 => "check the user name and password in EINVOICE_AMQP_URL",
                    530 => "the virtual host does not exist or the user may not use it: check the vhost in \
                            EINVOICE_AMQP_URL (`%2f` is `/`), or create it and grant access with \
                            `rabbitmqctl add_vhost <vhost>` and `rabbitmqctl set_permissions -p <vhost> <user> '.*' '.*' '.*'`",
                    _ => "see the broker's log",
                },
            },
            _ => AmqpError::Lapin(e),
        }),
    }
}

const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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

/// `props` with the ids a command is answered by (`message_id`, `correlation_id`, `reply_to`)
/// copied from `from`: a command published again (a retry tier, a dead-letter replay) is still
/// the same command to its sender.
pub fn with_command_ids(mut props: BasicProperties, from: &BasicProperties) -> BasicProperties {
    if let Some(v) = from.message_id() {
        props = props.with_message_id(v.clone());
    }
    if let Some(v) = from.correlation_id() {
        props = props.with_correlation_id(v.clone());
    }
    if let Some(v) = from.reply_to() {
        props = props.with_reply_to(v.clone());
    }
    props
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_is_reported_without_its_password() {
        for url in [
            "amqp:u:S3CRET@host:5672",
            "amqp:S3CRET@host",
            "amqp://u:S3CRET@host:notaport/%2f",
            "http://u:S3CRET@host/",
            "amqp://u:S3CRET@host/%2f?heartbeat=x",
            "amqp://g:guest@ok:5672/%2f, amqp:u:S3CRET@host",
            "u:S3CRET@host",
        ] {
            let e = parse_urls(url).expect_err(url).to_string();
            assert!(e.starts_with("invalid AMQP URL (address"), "{url}: {e}");
            assert!(!e.contains("S3CRET"), "{url}: {e}");
        }
        assert_eq!(parse_urls("amqp://guest:S3CRET@127.0.0.1:5672/%2f").unwrap().len(), 1);
    }
}
