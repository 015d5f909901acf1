//! Issue 24, bulk: every per-document command has a batch (`irn.cancel_batch`,
//! `ewaybill.*_batch`), the same mechanism as `irn.generate_batch`: one `batch.accepted`, each
//! member answered as its own command, one `batch.completed` with the kind's counts, and a
//! complete batch sent again answered from the store. Over both protocols.
use std::time::Duration;

use einvoice_worker::config::ProviderKind;
use serde_json::{json, Value};

use crate::helpers::{invoice, Options, TestApp, SELLER_KA};

async fn app(provider: ProviderKind) -> TestApp {
    TestApp::spawn_with(Options { provider, ..Default::default() }).await
}

fn road() -> Value {
    json!({"Distance": 120, "TransMode": "1", "VehNo": "KA01AB1234", "VehType": "R"})
}

fn count(events: &[Value], event_type: &str) -> usize {
    events.iter().filter(|e| e["event_type"] == event_type).count()
}

/// Replies until `batch.accepted`, `batch.completed` and `members` answers whose type starts with
/// `member_prefix` are in (the relay may publish them in any order).
async fn batch_replies(app: &mut TestApp, member_prefix: &str, members: usize, secs: u64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut out: Vec<Value> = Vec::new();
    let member = |e: &Value| e["event_type"].as_str().is_some_and(|t| t.starts_with(member_prefix));
    while count(&out, "batch.completed") == 0
        || count(&out, "batch.accepted") == 0
        || out.iter().filter(|e| member(e)).count() < members
    {
        assert!(tokio::time::Instant::now() < deadline, "the batch did not finish within {secs} s: {out:#?}");
        out.push(app.next_reply(secs).await.1);
    }
    out
}

fn completed(events: &[Value]) -> Value {
    assert_eq!(count(events, "batch.accepted"), 1, "{events:#?}");
    assert_eq!(count(events, "batch.completed"), 1, "{events:#?}");
    events.iter().find(|e| e["event_type"] == "batch.completed").unwrap().clone()
}

/// The counts of a summary, checked to add up to its total.
fn counts_adding_up(done: &Value) -> Value {
    let d = &done["data"];
    let sum: u64 = d["counts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(Some(sum), d["total"].as_u64(), "{:#}", d["counts"]);
    d["counts"].clone()
}

/// 50 invoices registered, 50 e-way bills made from them, all in batches; then the 50 cancelled
/// in one `ewaybill.cancel_batch` (one of them cancelled before), and that batch sent again.
async fn bulk_cancel_of_50_ewaybills(p: ProviderKind) {
    let mut app = app(p).await;
    let n = 50;
    let invoices: Vec<Value> = (0..n).map(|i| invoice("b2b-intra-goods", &format!("BK/{i:04}"))).collect();
    app.publish("irn.generate_batch", &json!({"gstin": SELLER_KA, "batch_id": "bk-inv", "invoices": invoices})).await;
    let done = completed(&batch_replies(&mut app, "irn.", n, 120).await);
    assert_eq!(done["data"]["counts"]["generated"], n, "{done:#}");
    let irns: Vec<String> =
        done["data"]["items"].as_array().unwrap().iter().map(|i| i["irn"].as_str().unwrap().to_string()).collect();

    // The e-way bills, in one batch too.
    let ewaybills: Vec<Value> = irns.iter().map(|irn| json!({"irn": irn, "transport": road()})).collect();
    app.publish("ewaybill.generate_batch", &json!({"gstin": SELLER_KA, "batch_id": "bk-ewb", "ewaybills": ewaybills}))
        .await;
    let events = batch_replies(&mut app, "ewaybill.generate", n, 120).await;
    let done = completed(&events);
    assert_eq!(
        counts_adding_up(&done),
        json!({"generated": n, "already_existed": 0, "rejected": 0, "failed": 0}),
        "{done:#}"
    );
    let ewb_nos: Vec<String> = done["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ewb_no"].as_str().expect("each item names its e-way bill").to_string())
        .collect();
    assert_eq!(ewb_nos.iter().collect::<std::collections::HashSet<_>>().len(), n, "50 different e-way bills");
    assert_eq!(app.sim.core.stats().ewb_generate_calls, n as u64);

    // One is cancelled on its own first: the batch counts it `already_cancelled`, without a call.
    app.publish("ewaybill.cancel", &json!({"gstin": SELLER_KA, "ewb_no": ewb_nos[7], "reason": "2", "remark": "x"}))
        .await;
    assert_eq!(app.next_reply(30).await.1["event_type"], "ewaybill.cancelled");

    let cancellations: Vec<Value> =
        ewb_nos.iter().map(|no| json!({"ewb_no": no, "reason": "2", "remark": "Order cancelled"})).collect();
    let body = json!({"gstin": SELLER_KA, "batch_id": "bk-cnl", "cancellations": cancellations, "request_id": "cnl-1"});
    let corr = app.publish("ewaybill.cancel_batch", &body).await;
    let events = batch_replies(&mut app, "ewaybill.cancel", n, 120).await;
    let done = completed(&events);
    assert_eq!(count(&events, "ewaybill.cancelled"), n, "each member answered as its own command");
    assert_eq!((done["correlation_id"].as_str(), done["request_id"].as_str()), (Some(corr.as_str()), Some("cnl-1")));
    assert_eq!(
        counts_adding_up(&done),
        json!({"cancelled": n - 1, "already_cancelled": 1, "rejected": 0, "failed": 0}),
        "{done:#}"
    );
    let items = done["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), n);
    assert_eq!(
        (items[7]["outcome"].as_str(), items[7]["ewb_no"].as_str()),
        (Some("already_cancelled"), Some(&*ewb_nos[7]))
    );
    assert_eq!(items[8]["event_type"], "ewaybill.cancelled");
    assert_eq!(app.sim.core.stats().ewb_cancel_calls, n as u64, "one call per e-way bill, none for the cancelled one");
    assert!(ewb_nos.iter().all(|no| app.sim.core.ewaybill(no).unwrap().status == "CNL"));
    app.no_more_replies(2).await;

    // Sent again (a new message id): the stored summary alone, and no call reaches the IRP.
    let calls = app.sim.core.calls().len();
    let again =
        json!({"gstin": SELLER_KA, "batch_id": "bk-cnl", "cancellations": cancellations, "request_id": "cnl-2"});
    let corr = app.publish("ewaybill.cancel_batch", &again).await;
    let (c, ev) = app.next_reply(30).await;
    assert_eq!(c.as_deref(), Some(corr.as_str()));
    assert_eq!(ev["event_type"], "batch.completed", "{ev:#}");
    assert_eq!(ev["request_id"], "cnl-2");
    assert_eq!((&ev["data"]["replayed"], &ev["data"]["counts"]), (&json!(true), &done["data"]["counts"]));
    app.no_more_replies(2).await;
    assert_eq!(app.sim.core.calls().len(), calls, "no IRP call for a replayed batch");
    app.stop().await;
}
both_protocols!(cancel_50_ewaybills, bulk_cancel_of_50_ewaybills);

/// `irn.cancel_batch` with one invalid member: it alone is rejected, the others are cancelled.
async fn bulk_irn_cancel_with_one_invalid_member(p: ProviderKind) {
    let mut app = app(p).await;
    let invoices: Vec<Value> = (0..3).map(|i| invoice("b2b-intra-goods", &format!("BC/{i}"))).collect();
    app.publish("irn.generate_batch", &json!({"gstin": SELLER_KA, "batch_id": "bc-inv", "invoices": invoices})).await;
    let done = completed(&batch_replies(&mut app, "irn.", 3, 60).await);
    let irns: Vec<String> =
        done["data"]["items"].as_array().unwrap().iter().map(|i| i["irn"].as_str().unwrap().to_string()).collect();
    let doc = json!({"doc_type": "INV", "doc_number": "BC/2", "doc_date": einvoice_worker::samples::india_today()});
    let cancellations = json!([
        {"irn": irns[0], "reason": "1", "remark": "Duplicate"},
        {"irn": irns[1], "reason": "9"},
        {"document": doc, "reason": "2"},
    ]);
    app.publish("irn.cancel_batch", &json!({"gstin": SELLER_KA, "batch_id": "bc-cnl", "cancellations": cancellations}))
        .await;
    let events = batch_replies(&mut app, "irn.cancel", 3, 60).await;
    let done = completed(&events);
    assert_eq!(count(&events, "irn.cancelled"), 2, "{events:#?}");
    let rejected: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "irn.cancel.rejected").collect();
    assert_eq!(rejected.len(), 1, "{events:#?}");
    assert_eq!(rejected[0]["request_id"], "bc-cnl:1", "the invalid member's own answer");
    assert!(
        rejected[0]["data"]["errors"].as_array().unwrap().iter().any(|e| e["path"] == "reason"),
        "{:#}",
        rejected[0]
    );
    assert_eq!(
        counts_adding_up(&done),
        json!({"cancelled": 2, "already_cancelled": 0, "rejected": 1, "failed": 0}),
        "{done:#}"
    );
    let items = done["data"]["items"].as_array().unwrap();
    assert_eq!(items[1]["outcome"], "rejected");
    assert_eq!(items[1]["irn"], irns[1].as_str(), "the rejected member's IRN as its item gave it");
    assert_eq!(items[2]["document"]["doc_number"], "BC/2");
    assert_eq!(items[2]["irn"], irns[2].as_str());
    assert_eq!(app.sim.core.stats().cancel_calls, 2, "no call for the invalid member");
    // The batch as a whole is still checked as one: an empty one is refused, nothing published.
    app.publish("irn.cancel_batch", &json!({"gstin": SELLER_KA, "cancellations": []})).await;
    let ev = app.next_reply(30).await.1;
    assert_eq!(ev["event_type"], "irn.cancel_batch.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "BATCH_EMPTY");
    app.stop().await;
}
both_protocols!(irn_cancel_one_invalid, bulk_irn_cancel_with_one_invalid_member);
