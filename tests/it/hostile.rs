//! Issue 23: hostile input and unauthorised publishers. Every message ends in one bounded answer
//! that reaches only where its sender may send it, and the worker goes on consuming.
use std::time::Duration;

use einvoice_worker::amqp;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use serde_json::{json, Value};

use crate::helpers::{invoice, Options, TestApp, SELLER_KA, SELLER_MH};

/// An answer's size as it travels (its JSON).
fn size(ev: &Value) -> usize {
    ev.to_string().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_numbers_and_sizes_get_bounded_answers_and_the_worker_goes_on() {
    let mut app = TestApp::spawn().await;
    // Decimal's largest value plus one: the cess sum once panicked the handler.
    let doc = json!({"doc_type": "INV", "doc_number": "H/1", "doc_date": einvoice_worker::samples::india_today()});
    let b2c = json!({"gstin": SELLER_KA, "invoice": {"DocDtls": {"Typ": "INV", "No": "H/1", "Dt": doc["doc_date"]},
        "ValDtls": {"TotInvVal": 100, "CesVal": "79228162514264337593543950335", "StCesVal": 1}}});
    for _ in 0..3 {
        app.publish("b2c.qr", &b2c).await;
        let (_, ev) = app.next_reply(20).await;
        assert_eq!(ev["event_type"], "b2c.qr.rejected", "{ev:#}");
        assert_eq!(ev["data"]["errors"][0]["path"], "invoice.ValDtls.CesVal");
        assert_eq!(ev["data"]["errors"][0]["code"], "VALUE_RANGE");
    }
    // 20,000 empty items: one capped answer, not 160,000 problems.
    let mut inv = invoice("b2b-intra-goods", "H/2");
    inv["ItemList"] = Value::Array(vec![json!({}); 20_000]);
    app.generate(&inv).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.rejected");
    let errors = ev["data"]["errors"].as_array().unwrap();
    assert!(errors.len() <= 100, "{}", errors.len());
    assert!(errors.iter().any(|e| e["code"] == "ITEM_COUNT"), "{errors:#?}");
    assert!(size(&ev) < 64 * 1024, "the answer is {} bytes", size(&ev));
    // A 900 KB IRN is not quoted back whole.
    let huge = "a".repeat(900_000);
    app.publish("irn.cancel", &json!({"gstin": SELLER_KA, "irn": huge, "reason": "1", "remark": "x"})).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.cancel.rejected");
    assert!(size(&ev) < 8 * 1024, "the answer is {} bytes", size(&ev));
    // A bidi override in a request id reaches nobody's screen raw, wherever it is echoed.
    app.publish("job.status", &json!({"request_id": "INV\u{202E}1-GNP"})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "job.status", "{ev:#}");
    assert!(!ev.to_string().contains('\u{202E}'), "{ev:#}");
    assert_eq!(ev["data"]["query"]["request_id"], "INV\\u202E1-GNP");
    // A request id longer than the limit is refused, and echoed cut.
    app.publish("job.status", &json!({"request_id": "r".repeat(10_000)})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "job.status.rejected");
    assert_eq!(ev["data"]["errors"][0]["code"], "REQUEST_ID_TOO_LONG");
    assert!(ev["request_id"].as_str().unwrap().len() < 200);
    // Still consuming, with every prefetch slot free.
    app.generate(&invoice("b2b-intra-goods", "H/3")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_reply_to_gets_nothing_and_a_forged_batch_member_changes_nothing() {
    let mut app = TestApp::spawn().await;
    // Another application's queue.
    let victim = format!("victim-{}", app.id);
    let opts = QueueDeclareOptions { auto_delete: true, ..Default::default() };
    app.ch.queue_declare(victim.as_str().into(), opts, FieldTable::default()).await.unwrap();
    for reply_to in [victim.clone(), app.topology.unrouted.clone(), app.topology.jobs.clone()] {
        let props = amqp::json_props()
            .with_correlation_id(ShortString::from("foreign"))
            .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string()))
            .with_reply_to(ShortString::from(reply_to.as_str()));
        let body = json!({"gstin": SELLER_KA, "invoice": invoice("b2b-intra-goods", "F/1")});
        amqp::publish_confirmed(
            &app.ch,
            &app.topology.commands,
            "irn.generate",
            body.to_string().as_bytes(),
            props,
            true,
        )
        .await
        .unwrap();
        // The refusal is on the events exchange, for the ERP's own event consumer.
        let ev = app.next_event(20).await;
        assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
        assert_eq!(ev["data"]["errors"][0]["code"], "REPLY_TO_FORBIDDEN");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = app.ch.basic_get(victim.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
    assert!(got.is_none(), "nothing was written to another application's queue");
    assert_eq!(app.sim.core.stats().generate_calls, 0, "a refused command costs no IRP call");

    // A member of a batch that does not exist yet, sent first with an invalid body.
    let batch_id = format!("NIGHTLY-{}", app.id);
    let forged = json!({"gstin": SELLER_KA, "invoice": {"oops": 1}, "batch": {"batch_id": batch_id, "index": 0}});
    app.publish_with_id("irn.generate", forged.to_string().as_bytes(), &format!("batch:{batch_id}:0")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(
        (ev["event_type"].as_str(), ev["data"]["errors"][0]["code"].as_str()),
        (Some("irn.rejected"), Some("FORBIDDEN"))
    );
    assert!(ev["command_message_id"].is_null(), "the refusal carries no batch: id: {ev:#}");
    // The real batch completes with its real outcome.
    let body = json!({"gstin": SELLER_KA, "batch_id": batch_id, "invoices": [invoice("b2b-intra-goods", "F/2")]});
    app.publish("irn.generate_batch", &body).await;
    let mut done = None;
    for _ in 0..4 {
        let (_, ev) = app.next_reply(30).await;
        if ev["event_type"] == "batch.completed" {
            done = Some(ev);
            break;
        }
    }
    let done = done.expect("batch.completed");
    assert_eq!(done["data"]["counts"]["generated"], 1, "{done:#}");
    assert_eq!(done["data"]["counts"]["rejected"], 0, "{done:#}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_act_only_for_their_gstins_and_commands() {
    // The test connection's user is `guest`: RabbitMQ accepts `user_id: guest` from it.
    let extra = format!(
        "[publishers.\"guest\"]\ngstins = [\"{SELLER_KA}\"]\ncommands = [\"irn.generate\", \"irn.generate_batch\", \"gstin.details\"]\n"
    );
    let mut app = TestApp::spawn_with(Options { extra_toml: extra, ..Default::default() }).await;
    let (ch, ex, replies) = (app.ch.clone(), app.topology.commands.clone(), app.replies.clone());
    let publish_as = |user: Option<&'static str>, rk: &'static str, body: Value| {
        let mut props = amqp::json_props()
            .with_correlation_id(ShortString::from(uuid::Uuid::new_v4().to_string()))
            .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string()))
            .with_reply_to(ShortString::from(replies.as_str()));
        if let Some(u) = user {
            props = props.with_user_id(ShortString::from(u));
        }
        let (ch, ex) = (ch.clone(), ex.clone());
        async move { amqp::publish_confirmed(&ch, &ex, rk, body.to_string().as_bytes(), props, true).await.unwrap() }
    };
    publish_as(
        Some("guest"),
        "irn.generate",
        json!({"gstin": SELLER_KA, "invoice": invoice("b2b-intra-goods", "P/1")}),
    )
    .await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    // A command the publisher may send, for a GSTIN it may not act for.
    publish_as(Some("guest"), "gstin.details", json!({"gstin": SELLER_MH, "target_gstin": SELLER_KA})).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(
        (ev["event_type"].as_str(), ev["data"]["errors"][0]["code"].as_str()),
        (Some("gstin.details.rejected"), Some("FORBIDDEN")),
        "{ev:#}"
    );
    publish_as(Some("guest"), "irn.cancel", json!({"gstin": SELLER_KA, "irn": "a".repeat(64), "reason": "1"})).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["data"]["errors"][0]["code"], "FORBIDDEN", "{ev:#}");
    publish_as(None, "irn.generate", json!({"gstin": SELLER_KA, "invoice": invoice("b2b-intra-goods", "P/3")})).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["data"]["errors"][0]["code"], "FORBIDDEN", "{ev:#}");
    // A batch the publisher may send: its members (the worker's own commands) pass.
    let body = json!({"gstin": SELLER_KA, "batch_id": format!("PB-{}", app.id), "invoices": [invoice("b2b-intra-goods", "P/4")]});
    publish_as(Some("guest"), "irn.generate_batch", body).await;
    let mut types = Vec::new();
    while !types.iter().any(|t| t == "batch.completed") {
        types.push(app.next_reply(30).await.1["event_type"].as_str().unwrap_or_default().to_string());
    }
    assert!(types.iter().any(|t| t == "irn.generated"), "{types:?}");
    assert_eq!(app.sim.core.stats().generate_calls, 2, "refused commands cost no IRP call");
    app.stop().await;
}
