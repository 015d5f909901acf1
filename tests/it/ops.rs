//! Operations: events nobody is bound for, the relay's own connection, several broker
//! addresses, concurrent first starts.
use std::time::Duration;

use einvoice_worker::runtime::events::plain_event;
use einvoice_worker::runtime::worker;
use einvoice_worker::store::Db;
use lapin::options::{BasicGetOptions, QueueBindOptions};
use lapin::types::{FieldTable, ShortString};
use serde_json::{json, Value};

use crate::helpers::*;

/// Publish a command without `reply_to`, as an ERP that only listens on the events exchange.
async fn publish_without_reply_to(app: &TestApp, routing_key: &str, body: &Value) -> String {
    let corr = uuid::Uuid::new_v4().to_string();
    let props = einvoice_worker::amqp::json_props()
        .with_correlation_id(ShortString::from(corr.as_str()))
        .with_message_id(uuid::Uuid::new_v4().to_string().into());
    einvoice_worker::amqp::publish_confirmed(
        &app.ch,
        &app.topology.commands,
        routing_key,
        body.to_string().as_bytes(),
        props,
        true,
    )
    .await
    .unwrap();
    corr
}

/// Wait until the relay has published everything (it decides what to keep before it marks an
/// event published), so what it would keep is kept by now.
async fn outbox_drained(app: &TestApp) {
    for _ in 0..200 {
        if app.db.outbox_backlog().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the outbox did not drain");
}

async fn take_unrouted(app: &TestApp) -> Option<lapin::message::BasicGetMessage> {
    app.ch.basic_get(app.topology.unrouted.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
}

async fn bind_all_events(app: &TestApp, bind: bool) {
    let q = format!("t{}.all-events", app.id);
    if bind {
        app.ch
            .queue_bind(
                q.as_str().into(),
                app.topology.events.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    } else {
        app.ch
            .queue_unbind(q.as_str().into(), app.topology.events.as_str().into(), "#".into(), FieldTable::default())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_nobody_is_bound_for_are_kept_in_the_unrouted_queue_and_only_those() {
    let mut app = TestApp::spawn().await;
    // A new integrator: no queue bound on the events exchange, no reply_to.
    bind_all_events(&app, false).await;
    let corr = publish_without_reply_to(&app, "no.such.command", &json!({"x": 1})).await;
    let mut kept = None;
    for _ in 0..200 {
        kept = take_unrouted(&app).await;
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = kept.expect("the unbound event is kept in the unrouted queue");
    let body: Value = serde_json::from_slice(&kept.delivery.data).unwrap();
    assert_eq!(body["event_type"], "command.rejected", "{body}");
    assert_eq!(body["correlation_id"], corr.as_str(), "{body}");
    // The original routing key travels as the message type, for shovelling it back later.
    assert_eq!(kept.delivery.properties.kind().as_ref().map(|t| t.as_str()), Some("command.rejected"));
    assert!(take_unrouted(&app).await.is_none());

    // Delivered to the caller's reply queue: not lost, so not kept either.
    app.publish("no.such.command", &json!({"x": 2})).await;
    let (_, reply) = app.next_reply(20).await;
    assert_eq!(reply["event_type"], "command.rejected");
    outbox_drained(&app).await;
    assert!(take_unrouted(&app).await.is_none(), "an event delivered to reply_to was kept as unrouted");

    // Once a queue is bound the event goes there, and not also to the unrouted queue.
    bind_all_events(&app, true).await;
    let corr = publish_without_reply_to(&app, "no.such.command", &json!({"x": 3})).await;
    let ev = app.next_event(20).await;
    assert_eq!(ev["correlation_id"], corr.as_str(), "{ev}");
    outbox_drained(&app).await;
    assert!(take_unrouted(&app).await.is_none(), "a routed event was duplicated into the unrouted queue");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_have_their_own_size_and_the_relay_publishes_while_jobs_hold_every_connection() {
    let mut app =
        TestApp::spawn_with(Options { extra_toml: "prefetch = 32\ndb_pool_size = 2".into(), ..Default::default() })
            .await;
    let ctx = app.worker.as_ref().unwrap().ctx.clone();
    let sizes = (ctx.db.pool().status().max_size, ctx.intake.pool().status().max_size);
    assert_eq!(sizes, (1, 1), "the pools follow db_pool_size, not prefetch: one for claims, one for the rest");
    // Jobs hold every connection of the worker's pools...
    let held = [ctx.db.client().await.unwrap(), ctx.intake.client().await.unwrap()];
    // ...while an event is committed (by another process's pool) and waits in the outbox.
    let meta = einvoice_worker::domain::event::CommandMeta {
        routing_key: "irn.get".into(),
        message_id: None,
        correlation_id: Some("relay-own-connection".into()),
        reply_to: None,
        request_id: None,
        handling: None,
    };
    app.db.enqueue_events(&[plain_event(
            &meta,
            "command.rejected",
            json!({"errors": [{"source": "envelope", "path": "", "code": "UNKNOWN_COMMAND", "message": "test"}], "dead_lettered": false}),
        )]).await.unwrap();
    ctx.relay_wake.notify_one();
    let ev = app.next_event(15).await;
    assert_eq!(ev["correlation_id"], "relay-own-connection", "{ev}");
    drop(held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_broker_address_is_skipped() {
    let dead_then_live = format!("amqp://guest:guest@127.0.0.1:1/%2f, {AMQP_URL}");
    let mut app =
        TestApp::spawn_with(Options { extra_toml: format!("amqp_url = \"{dead_then_live}\""), ..Default::default() })
            .await;
    app.publish("no.such.command", &json!({})).await;
    let (_, reply) = app.next_reply(20).await;
    assert_eq!(reply["event_type"], "command.rejected", "{reply}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_starting_at_once_on_a_fresh_database_all_start() {
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let name = format!("einvoice_test_{id}");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let settings =
        einvoice_worker::config::Settings::from_toml(&format!("database_url = \"{url}\"\ndb_pool_size = 1\n")).unwrap();
    let starters: Vec<_> = (0..6)
        .map(|_| {
            let s = settings.clone();
            tokio::spawn(async move { worker::prepare_db(&s).await.map(drop).map_err(|e| format!("{e:#}")) })
        })
        .collect();
    let mut failures = Vec::new();
    for s in starters {
        if let Err(e) = s.await.unwrap() {
            failures.push(e);
        }
    }
    let db = Db::new(&url, 1).unwrap();
    let migrated = db.client().await.unwrap().query_one("SELECT count(*) FROM schema_migrations", &[]).await;
    drop(db);
    let (c, conn) =
        tokio_postgres::connect("postgres://postgres@127.0.0.1:5432/postgres", tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.unwrap();
    assert!(failures.is_empty(), "concurrent starters failed: {failures:#?}");
    let n: i64 = migrated.unwrap().get(0);
    assert_eq!(n as usize, einvoice_worker::store::migrate::MIGRATIONS.len());
}

/// A TCP forwarder to the shared broker, standing in for one node of a cluster; `kill` closes its
/// listener and every connection through it, as a node that dies.
struct Node {
    url: String,
    kill: tokio_util::sync::CancellationToken,
}

async fn node() -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", listener.local_addr().unwrap());
    let kill = tokio_util::sync::CancellationToken::new();
    let k = kill.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = k.cancelled() => return,
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { return };
                    let k = k.clone();
                    tokio::spawn(async move {
                        let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                            _ = k.cancelled() => {}
                        }
                    });
                }
            }
        }
    });
    Node { url, kill }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_broker_node_dies_the_worker_moves_to_another() {
    let (a, b) = (node().await, node().await);
    let urls = format!("{},{}", a.url, b.url);
    let mut app =
        TestApp::spawn_with(Options { extra_toml: format!("amqp_url = \"{urls}\""), ..Default::default() }).await;
    app.publish("no.such.command", &json!({"n": 1})).await;
    assert_eq!(app.next_reply(20).await.1["event_type"], "command.rejected");
    // Node a dies for good: lapin's own recovery would retry a's address only.
    a.kill.cancel();
    let corr = app.publish("no.such.command", &json!({"n": 2})).await;
    let (got, reply) = app.next_reply(60).await;
    assert_eq!(got.as_deref(), Some(corr.as_str()), "{reply}");
    app.stop().await;
    b.kill.cancel();
}

/// Issue 28: a job's event goes from the statement that committed it straight to the worker's
/// relay (leased against other relays' polls), and an event handed to a relay that died is
/// published by any relay once its lease is over, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_events_skip_the_poll_until_their_lease_is_over() {
    let mut app = TestApp::spawn().await;
    app.generate(&invoice("b2b-intra-goods", "HO/0001")).await;
    assert_eq!(app.next_reply(20).await.1["event_type"], "irn.generated");
    outbox_drained(&app).await;
    let c = app.db.client().await.unwrap();
    let handed: bool = c
        .query_one("SELECT relay_after IS NOT NULL FROM outbox WHERE event_type = 'irn.generated'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(handed, "the generated event was handed to the relay, not polled");

    // As a worker that died between its commit and its relay's publish leaves an event.
    c.execute(
        "INSERT INTO outbox (event_id, event_type, correlation_id, payload, relay_after)
         VALUES (gen_random_uuid(), 'command.rejected', 'orphaned-handoff',
                 '{\"event_type\": \"command.rejected\", \"schema_version\": 1}', now() + interval '1 hour')",
        &[],
    )
    .await
    .unwrap();
    let ctx = app.worker.as_ref().unwrap().ctx.clone();
    ctx.relay_wake.notify_one();
    // The relay polls on its wake and every 250 ms: a few polls pass and leave it alone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.db.outbox_backlog().await.unwrap(), 1, "a leased event is left to its own relay");
    c.execute(
        "UPDATE outbox SET relay_after = now() - interval '1 second' WHERE correlation_id = 'orphaned-handoff'",
        &[],
    )
    .await
    .unwrap();
    outbox_drained(&app).await;
    drop(c);
    app.stop().await;
}
