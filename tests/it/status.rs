//! Issue 14: `job.status` answered from the store (zero IRP calls), and `irn.generate_batch`
//! ending in exactly one `batch.completed` with the right counts.
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{invoice, is_irn, TestApp, SELLER_KA};

/// Every IRP counter of the simulator, to compare before and after.
fn irp_calls(app: &TestApp) -> Value {
    serde_json::to_value(app.sim.core.stats()).unwrap()
}

/// Publish a command and return its answer on reply_to (the next reply with its correlation id).
async fn ask(app: &mut TestApp, routing_key: &str, body: Value) -> Value {
    let corr = app.publish(routing_key, &body).await;
    let (c, ev) = app.next_reply(20).await;
    assert_eq!(c.as_deref(), Some(corr.as_str()), "answer to another command: {ev:#}");
    ev
}

fn event_types(status: &Value) -> Vec<String> {
    status["data"]["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect()
}

fn doc(no: &str) -> Value {
    json!({"doc_type": "INV", "doc_number": no, "doc_date": einvoice_worker::samples::india_today()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_by_request_id_document_and_job_id_without_irp_calls() {
    let mut app = TestApp::spawn().await;
    let inv = invoice("b2b-intra-goods", "ST1/0001");
    let generated =
        ask(&mut app, "irn.generate", json!({"gstin": SELLER_KA, "invoice": inv, "request_id": "erp-st-1"})).await;
    assert_eq!(generated["event_type"], "irn.generated", "{generated:#}");
    let (job_id, irn) = (generated["job_id"].clone(), generated["data"]["irn"].clone());
    // A command refused before any job existed, for the not-found case below.
    let refused = ask(&mut app, "irn.generate", json!({"gstin": SELLER_KA, "request_id": "erp-st-bad"})).await;
    assert_eq!(refused["event_type"], "irn.rejected");
    let before = irp_calls(&app);

    let by_request = ask(&mut app, "job.status", json!({"request_id": "erp-st-1"})).await;
    assert_eq!(by_request["event_type"], "job.status", "{by_request:#}");
    let d = &by_request["data"];
    assert_eq!(d["found"], true);
    assert_eq!(d["query"], json!({"request_id": "erp-st-1"}));
    assert_eq!(d["job_id"], job_id);
    assert_eq!((&d["status"], &d["irn"], &d["attempts"]), (&json!("generated"), &irn, &json!(1)));
    assert_eq!(d["ack_no"], generated["data"]["ack_no"]);
    assert_eq!(d["irp"], "whitebooks");
    assert!(d["last_errors"].is_null() && d["updated_at"].is_string() && d["first_attempt_at"].is_string());
    let sent = &d["events"][0];
    assert_eq!((&sent["event_type"], &sent["event_id"]), (&json!("irn.generated"), &generated["event_id"]));
    assert_eq!(sent["request_id"], "erp-st-1");
    assert_eq!(by_request["job_id"], Value::Null, "the answer is not one of the job's events");
    assert_eq!(by_request["document"]["doc_number"], "ST1/0001");
    assert_eq!(by_request["request_id"], "erp-st-1");

    let by_doc =
        ask(&mut app, "job.status", json!({"gstin": SELLER_KA, "document": doc("ST1/0001"), "request_id": "q-2"}))
            .await;
    assert_eq!(by_doc["data"]["found"], true, "{by_doc:#}");
    assert_eq!(by_doc["data"]["job_id"], job_id);
    assert_eq!(by_doc["request_id"], "q-2", "request_id beside document is the query's own");
    assert_eq!(by_doc["data"]["query"]["document"]["doc_number"], "ST1/0001");

    let by_id = ask(&mut app, "job.status", json!({"job_id": job_id})).await;
    assert_eq!(by_id["data"]["found"], true);
    assert_eq!(by_id["data"]["irn"], irn);
    assert_eq!(event_types(&by_id), ["irn.generated"], "status answers never list themselves");
    // Once relayed, the job's event says so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = ask(&mut app, "job.status", json!({"request_id": "erp-st-1"})).await;
    assert_eq!(again["data"]["events"][0]["published"], true, "{again:#}");
    assert_eq!(event_types(&again), ["irn.generated"]);

    // Not found is an answer, not a rejection; a GSTIN nobody configured still gets one.
    let none = ask(&mut app, "job.status", json!({"request_id": "no-such-request"})).await;
    assert_eq!((&none["event_type"], &none["data"]["found"]), (&json!("job.status"), &json!(false)), "{none:#}");
    assert_eq!(none["data"]["events"], json!([]));
    assert!(none["data"]["job_id"].is_null() && none["data"]["status"].is_null());
    let unconfigured =
        ask(&mut app, "job.status", json!({"gstin": "33AAFCR6612L1ZA", "document": doc("ST1/0001")})).await;
    assert_eq!(unconfigured["event_type"], "job.status", "{unconfigured:#}");
    assert_eq!(unconfigured["data"]["found"], false);
    assert_eq!(unconfigured["document"]["gstin"], "33AAFCR6612L1ZA");
    // Another seller's GSTIN beside a request id scopes the query: not this job.
    let scoped = ask(&mut app, "job.status", json!({"gstin": "27AAKFU7303M1ZP", "request_id": "erp-st-1"})).await;
    assert_eq!(scoped["data"]["found"], false);
    // A request refused before it had a job: not found, with the refusal it got.
    let bad = ask(&mut app, "job.status", json!({"request_id": "erp-st-bad"})).await;
    assert_eq!(bad["data"]["found"], false);
    assert_eq!(event_types(&bad), ["irn.rejected"], "{bad:#}");

    assert_eq!(irp_calls(&app), before, "status queries make no IRP call");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_status_query_is_rejected_with_field_paths() {
    let mut app = TestApp::spawn().await;
    let before = irp_calls(&app);
    let body = json!({"document": {"doc_type": "XYZ", "doc_number": "ST2/1", "doc_date": "31/02/2026"}, "request_id": "q-bad"});
    let ev = ask(&mut app, "job.status", body).await;
    assert_eq!(ev["event_type"], "job.status.rejected", "{ev:#}");
    let paths: Vec<(&str, &str)> = ev["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    for want in
        [("gstin", "REQUIRED"), ("document.doc_type", "DOC_TYPE_INVALID"), ("document.doc_date", "DATE_INVALID")]
    {
        assert!(paths.contains(&want), "{want:?} missing: {paths:?}");
    }
    assert_eq!(ev["data"]["dead_lettered"], false);
    assert_eq!(ev["request_id"], "q-bad");
    let ev = ask(&mut app, "job.status", json!({"job_id": "not-a-uuid"})).await;
    assert_eq!(ev["data"]["errors"][0]["path"], "job_id");
    assert_eq!(ev["data"]["errors"][0]["code"], "JOB_ID_INVALID");
    let ev = ask(&mut app, "job.status", json!({})).await;
    assert_eq!(ev["data"]["errors"][0]["path"], "request_id");
    assert_eq!(irp_calls(&app), before);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_job_still_in_its_first_attempts() {
    let mut app = TestApp::spawn().await;
    // The IRP is down: the job has no answer and no event yet, only its row.
    app.sim.core.update_faults(|f| f.outage = true);
    let corr = app
        .publish(
            "irn.generate",
            &json!({"gstin": SELLER_KA, "invoice": invoice("b2b-intra-goods", "ST3/0001"), "request_id": "erp-st-3"}),
        )
        .await;
    let mut seen = None;
    for _ in 0..40 {
        let ev = ask(&mut app, "job.status", json!({"request_id": "erp-st-3"})).await;
        // Waiting for its retry: pending, or in doubt (a 503 may have reached the IRP).
        if ev["data"]["status"] == "pending" || ev["data"]["status"] == "in_doubt" {
            seen = Some(ev);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ev = seen.expect("the job shows as waiting while the IRP is down");
    let d = &ev["data"];
    assert_eq!(d["found"], true);
    assert!(d["attempts"].as_i64().unwrap() >= 1);
    assert_eq!(d["last_errors"][0]["code"], "HTTP_503", "{ev:#}");
    assert_eq!(d["events"], json!([]), "no answer yet");
    app.sim.core.update_faults(|f| f.outage = false);
    // The command comes back from the retry tier and is registered.
    let (c, done) = app.next_reply(30).await;
    assert_eq!(c.as_deref(), Some(corr.as_str()));
    assert_eq!(done["event_type"], "irn.generated", "{done:#}");
    let ev = ask(&mut app, "job.status", json!({"request_id": "erp-st-3"})).await;
    assert_eq!(ev["data"]["status"], "generated");
    assert!(ev["data"]["last_errors"].is_null());
    app.stop().await;
}

/// Collect replies until `batch.completed`, `batch.accepted` and `members` member answers are in
/// (two workers' relays may publish them in either order).
async fn batch_replies(app: &mut TestApp, members: usize, secs: u64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut out: Vec<Value> = Vec::new();
    let member = |e: &Value| e["event_type"].as_str().is_some_and(|t| t.starts_with("irn."));
    while count(&out, "batch.completed") == 0
        || count(&out, "batch.accepted") == 0
        || out.iter().filter(|e| member(e)).count() < members
    {
        assert!(tokio::time::Instant::now() < deadline, "the batch did not finish within {secs} s: {out:#?}");
        out.push(app.next_reply(secs).await.1);
    }
    out
}

fn count(events: &[Value], event_type: &str) -> usize {
    events.iter().filter(|e| e["event_type"] == event_type).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_in_one_summary_with_the_right_counts() {
    let mut app = TestApp::spawn().await;
    // Two workers share the members, so completion is decided across processes' equivalents.
    let second = app.start_another_worker().await;
    let registered = invoice("b2b-intra-goods", "SB/0004");
    let ev = ask(&mut app, "irn.generate", json!({"gstin": SELLER_KA, "invoice": registered})).await;
    assert_eq!(ev["event_type"], "irn.generated");
    let calls_before = app.sim.core.stats().generate_calls;
    let mut broken = invoice("b2b-intra-goods", "SB/0003");
    broken["ItemList"][0]["HsnCd"] = json!("12");
    let invoices = vec![
        invoice("b2b-intra-goods", "SB/0001"),
        invoice("b2b-inter-services", "SB/0002"),
        broken,
        registered.clone(),
        invoice("b2b-intra-goods", "SB/0005"),
    ];
    let batch_id = format!("day-{}", app.id);
    let body = json!({"gstin": SELLER_KA, "batch_id": batch_id, "invoices": invoices, "request_id": "erp-batch-1"});
    let corr = app.publish("irn.generate_batch", &body).await;
    let events = batch_replies(&mut app, 5, 60).await;
    assert_eq!(count(&events, "batch.accepted"), 1, "{events:#?}");
    let accepted = events.iter().find(|e| e["event_type"] == "batch.accepted").unwrap();
    assert_eq!(accepted["data"]["replayed"], false);
    assert_eq!(accepted["data"]["total"], 5);
    assert_eq!(accepted["request_id"], "erp-batch-1");
    let done = events.iter().find(|e| e["event_type"] == "batch.completed").unwrap().clone();
    // Every member's own answer reached the batch's reply_to too.
    assert_eq!(count(&events, "irn.generated") + count(&events, "irn.rejected"), 5, "{events:#?}");
    assert_eq!(done["correlation_id"], corr.as_str());
    assert_eq!(done["request_id"], "erp-batch-1");
    let d = &done["data"];
    assert_eq!(d["batch_id"], batch_id.as_str());
    assert_eq!(
        d["counts"],
        json!({"generated": 3, "already_registered": 1, "cancelled": 0, "rejected": 1, "failed": 0}),
        "{done:#}"
    );
    let items = d["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["index"], i);
    }
    assert_eq!(items[2]["outcome"], "rejected");
    assert_eq!(items[2]["errors"][0]["path"], "invoice.ItemList[0].HsnCd", "{done:#}");
    assert!(items[2]["job_id"].is_null(), "rejected before any job");
    assert_eq!(items[3]["outcome"], "already_registered");
    assert_eq!(items[3]["irn"], ev["data"]["irn"]);
    assert_eq!(items[1]["document"]["doc_number"], "SB/0002");
    for i in [0, 1, 4] {
        assert_eq!(items[i]["outcome"], "generated");
        assert!(is_irn(items[i]["irn"].as_str().unwrap()) && items[i]["job_id"].is_string());
    }
    assert_eq!(app.sim.core.stats().generate_calls - calls_before, 3, "one IRP call per new document");
    // A member is found by its request id.
    let member = ask(&mut app, "job.status", json!({"request_id": format!("{batch_id}:1")})).await;
    assert_eq!(member["data"]["job_id"], items[1]["job_id"], "{member:#}");
    assert_eq!(member["data"]["status"], "generated");

    assert_eq!(d["replayed"], false);

    // Sent again once complete (a new message id): answered with the stored summary, to this
    // command's ids; not fanned out again, no IRP call, no `batch.accepted`.
    let again_body =
        json!({"gstin": SELLER_KA, "batch_id": batch_id, "invoices": invoices, "request_id": "erp-batch-1b"});
    let corr_again = app.publish("irn.generate_batch", &again_body).await;
    let (c, again) = app.next_reply(30).await;
    assert_eq!(c.as_deref(), Some(corr_again.as_str()));
    assert_eq!(again["event_type"], "batch.completed", "{again:#}");
    assert_eq!(again["request_id"], "erp-batch-1b");
    assert_eq!(again["correlation_id"], corr_again.as_str());
    let a = &again["data"];
    assert_eq!(a["replayed"], true, "{again:#}");
    assert_eq!(a["counts"], d["counts"]);
    assert_eq!(a["items"], d["items"]);
    assert_eq!((&a["batch_id"], &a["total"], &a["completed_at"]), (&d["batch_id"], &d["total"], &d["completed_at"]));
    app.no_more_replies(3).await;
    assert_eq!(app.sim.core.stats().generate_calls - calls_before, 3, "answered from the store");
    // Redelivered after a crash that left the fan-out unconfirmed (and so the batch not yet
    // complete): the members are published again under the same message ids and answered from
    // the store; still one summary.
    app.db
        .client()
        .await
        .unwrap()
        .execute("UPDATE batches SET fanned_out_at = NULL, completed_at = NULL, summary = NULL", &[])
        .await
        .unwrap();
    app.publish("irn.generate_batch", &body).await;
    let mut replays = Vec::new();
    for _ in 0..6 {
        replays.push(app.next_reply(30).await.1);
    }
    assert_eq!(count(&replays, "batch.accepted"), 1, "{replays:#?}");
    assert_eq!(count(&replays, "batch.completed"), 0, "{replays:#?}");
    assert!(replays.iter().filter(|e| e["event_type"] == "irn.generated").all(|e| e["data"]["replayed"] == true));
    app.no_more_replies(3).await;
    assert_eq!(app.sim.core.stats().generate_calls - calls_before, 3, "no IRN registered twice");
    let completed: i64 = app
        .db
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM outbox WHERE event_type = 'batch.completed' AND payload->'data'->>'replayed' = 'false'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(completed, 1, "exactly one batch.completed");

    // The same id with other invoices is refused; a batch with another seller's invoice too.
    let other = json!({"gstin": SELLER_KA, "batch_id": batch_id, "invoices": [invoice("b2b-intra-goods", "SB/0009")]});
    let ev = ask(&mut app, "irn.generate_batch", other).await;
    assert_eq!(ev["event_type"], "irn.generate_batch.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "BATCH_ID_REUSED");
    assert_eq!(ev["data"]["errors"][0]["path"], "batch_id");
    let mixed = json!({"gstin": SELLER_KA, "invoices": [
        invoice("b2b-intra-goods", "SB/0010"), invoice("b2b-inter-goods-ewb", "SB/0011")
    ]});
    let ev = ask(&mut app, "irn.generate_batch", mixed).await;
    assert_eq!(ev["event_type"], "irn.generate_batch.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["path"], "invoices[1].SellerDtls.Gstin");
    assert_eq!(ev["data"]["errors"][0]["code"], "SELLER_GSTIN_MISMATCH");
    app.no_more_replies(2).await;
    assert_eq!(app.sim.core.stats().generate_calls - calls_before, 3);
    second.stop().await.unwrap();
    app.stop().await;
}
