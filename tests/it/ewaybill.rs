//! Issue 11: e-way bills from the IRN (generate, vehicle update, cancel) and `irn.cancel` with
//! `cancel_ewaybill`, a durable two-step sequence, over both protocols.
use std::time::Duration;

use einvoice_worker::config::ProviderKind;
use serde_json::{json, Value};

use crate::helpers::{invoice, Options, TestApp, SELLER_KA};

async fn app(provider: ProviderKind) -> TestApp {
    TestApp::spawn_with(Options { provider, ..Default::default() }).await
}

async fn generated(app: &mut TestApp, sample: &str, no: &str) -> String {
    app.generate(&invoice(sample, no)).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    ev["data"]["irn"].as_str().unwrap().to_string()
}

fn road() -> Value {
    json!({"Distance": 120, "TransMode": "1", "VehNo": "KA01AB1234", "VehType": "R"})
}

/// Publish and return the reply, checking its type.
async fn ask(app: &mut TestApp, rk: &str, body: Value, expect: &str) -> Value {
    app.publish(rk, &body).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], expect, "{ev:#}");
    ev
}

async fn ewaybill_generate_by_irn_document_and_again(p: ProviderKind) {
    let mut app = app(p).await;
    let irn = generated(&mut app, "b2b-intra-goods", "E1/0001").await;
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    let d = &ev["data"];
    assert_eq!(d["irn"], irn.as_str());
    assert_eq!(d["already_existed"], false);
    let ewb_no = d["ewb_no"].as_str().unwrap().to_string();
    assert_eq!(ewb_no.len(), 12, "{d}");
    assert!(d["ewb_date"].is_string() && d["ewb_valid_till"].is_string(), "{d}");
    assert_eq!(ev["document"]["doc_number"], "E1/0001", "the event names the invoice");
    assert_eq!(app.sim.core.ewaybill(&ewb_no).unwrap().irn, irn);

    // By document.
    generated(&mut app, "b2b-intra-goods", "E1/0002").await;
    let doc = json!({"doc_type": "INV", "doc_number": "E1/0002", "doc_date": einvoice_worker::samples::india_today()});
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "document": doc, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    assert_eq!(ev["data"]["already_existed"], false);
    assert_ne!(ev["data"]["ewb_no"], ewb_no.as_str());
    assert_eq!(app.sim.core.stats().ewb_generate_calls, 2);

    // Again for the first IRN: answered from the store, no IRP call, no second e-way bill.
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    assert_eq!(ev["data"]["already_existed"], true);
    assert_eq!(ev["data"]["ewb_no"], ewb_no.as_str());
    assert_eq!(app.sim.core.stats().ewb_generate_calls, 2, "no IRP call for a stored e-way bill");

    // Made elsewhere (the portal): the IRP answers 4002 without a number; it is read by IRN.
    let other = generated(&mut app, "b2b-intra-goods", "E1/0003").await;
    let made = app.sim.core.generate_ewaybill(SELLER_KA, &json!({"Irn": other, "Distance": 10})).unwrap();
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": other, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    assert_eq!(ev["data"]["already_existed"], true, "{ev:#}");
    assert_eq!(ev["data"]["ewb_no"], made["EwbNo"].to_string().as_str());
    assert_eq!(app.sim.core.stats().ewb_generate_calls, 4, "the portal's and ours (4002)");
    app.stop().await;
}
both_protocols!(generate, ewaybill_generate_by_irn_document_and_again);

async fn credit_note_and_bad_transport_are_refused(p: ProviderKind) {
    let mut app = app(p).await;
    let irn = generated(&mut app, "credit-note", "E2/0001").await;
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": road()}),
        "ewaybill.generate.rejected",
    )
    .await;
    let e = &ev["data"]["errors"][0];
    assert_eq!(e["code"], "4010", "{ev:#}");
    assert!(e["message"].as_str().unwrap().contains("CRN/DBN and services go through the plain e-way bill API"), "{e}");

    // Checked before any call, with paths.
    let calls = app.sim.core.stats().ewb_generate_calls;
    let bad = json!({"Distance": 5000, "TransMode": "1", "VehNo": "12345"});
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": bad}),
        "ewaybill.generate.rejected",
    )
    .await;
    let paths: Vec<&str> =
        ev["data"]["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"transport.Distance") && paths.contains(&"transport.VehNo"), "{paths:?}");
    assert_eq!(app.sim.core.stats().ewb_generate_calls, calls);
    app.stop().await;
}
both_protocols!(refused, credit_note_and_bad_transport_are_refused);

async fn vehicle_update_then_cancel_twice(p: ProviderKind) {
    let mut app = app(p).await;
    let irn = generated(&mut app, "b2b-intra-goods", "E3/0001").await;
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    let ewb_no = ev["data"]["ewb_no"].as_str().unwrap().to_string();

    let update = json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "vehicle_no": "KA05 CD 5678", "from_place": "Tumakuru",
        "from_state": "29", "reason": "1", "remark": "Breakdown", "trans_mode": "1"});
    let ev = ask(&mut app, "ewaybill.update_vehicle", update, "ewaybill.vehicle_updated").await;
    let d = &ev["data"];
    assert_eq!(d["ewb_no"], ewb_no.as_str());
    assert!(d["vehicle_updated_at"].as_str().is_some_and(|t| t.len() == 19), "India-time yyyy-MM-dd HH:mm:ss: {d}");
    assert!(d["ewb_valid_till"].is_string(), "{d}");
    assert_eq!(app.sim.core.ewaybill(&ewb_no).unwrap().vehicle_no.as_deref(), Some("KA05CD5678"));

    let cancel = json!({"gstin": SELLER_KA, "irn": irn, "reason": "2", "remark": "Order cancelled"});
    let ev = ask(&mut app, "ewaybill.cancel", cancel, "ewaybill.cancelled").await;
    assert_eq!(ev["data"]["ewb_no"], ewb_no.as_str());
    assert_eq!(ev["data"]["already_cancelled"], false);
    assert!(ev["data"]["cancel_date"].as_str().is_some_and(|t| t.len() == 19), "{ev:#}");
    assert_eq!(app.sim.core.ewaybill(&ewb_no).unwrap().status, "CNL");
    // Again: from the store, no call.
    let again = json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "reason": "2", "remark": "Order cancelled"});
    let ev = ask(&mut app, "ewaybill.cancel", again, "ewaybill.cancelled").await;
    assert_eq!(ev["data"]["already_cancelled"], true);
    assert_eq!(app.sim.core.stats().ewb_cancel_calls, 1);
    // A cancelled e-way bill takes no vehicle.
    let update = json!({"gstin": SELLER_KA, "ewb_no": ewb_no, "vehicle_no": "KA05CD5678", "from_place": "Tumakuru",
        "from_state": "29", "reason": "1", "remark": "Breakdown", "trans_mode": "1"});
    ask(&mut app, "ewaybill.update_vehicle", update, "ewaybill.update_vehicle.rejected").await;

    // Cancelled on the portal behind our back: the IRP's 312 is success.
    let other = generated(&mut app, "b2b-intra-goods", "E3/0002").await;
    let made = app.sim.core.generate_ewaybill(SELLER_KA, &json!({"Irn": other, "Distance": 10})).unwrap();
    let no = made["EwbNo"].to_string();
    app.sim
        .core
        .cancel_ewaybill(SELLER_KA, &json!({"ewbNo": no, "cancelRsnCode": "1", "cancelRmrk": "portal"}))
        .unwrap();
    let ev = ask(
        &mut app,
        "ewaybill.cancel",
        json!({"gstin": SELLER_KA, "ewb_no": no, "reason": "1", "remark": "dup"}),
        "ewaybill.cancelled",
    )
    .await;
    assert_eq!(ev["data"]["already_cancelled"], true, "{ev:#}");
    app.stop().await;
}
both_protocols!(vehicle_and_cancel, vehicle_update_then_cancel_twice);

/// The replies to one command up to `last`, in order, each event once (delivery is at least once).
async fn replies_until(app: &mut TestApp, last: &str, secs: u64) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    loop {
        let (_, ev) = app.next_reply(secs).await;
        if !seen.insert(ev["event_id"].to_string()) {
            continue;
        }
        let ty = ev["event_type"].as_str().unwrap_or("").to_string();
        out.push(ev);
        if ty == last || ty.ends_with(".rejected") {
            return out;
        }
    }
}

fn types(evs: &[Value]) -> Vec<&str> {
    evs.iter().map(|e| e["event_type"].as_str().unwrap()).collect()
}

async fn irn_cancel_with_its_ewaybill(p: ProviderKind) {
    let mut app = app(p).await;
    let irn = generated(&mut app, "b2b-intra-goods", "E4/0001").await;
    let ev = ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    let ewb_no = ev["data"]["ewb_no"].as_str().unwrap().to_string();

    // Without the flag: refused before any call, naming 2230 and the flag.
    let ev = ask(
        &mut app,
        "irn.cancel",
        json!({"gstin": SELLER_KA, "irn": irn, "reason": "3", "remark": "Order cancelled"}),
        "irn.cancel.rejected",
    )
    .await;
    let e = &ev["data"]["errors"][0];
    assert_eq!(e["code"], "2230");
    assert!(e["message"].as_str().unwrap().contains("cancel_ewaybill"), "{e}");
    let s = app.sim.core.stats();
    assert_eq!((s.cancel_calls, s.ewb_cancel_calls), (0, 0), "no call: {s:?}");

    // With it: the e-way bill, then the IRN, both cancelled at the IRP.
    let body =
        json!({"gstin": SELLER_KA, "irn": irn, "reason": "3", "remark": "Order cancelled", "cancel_ewaybill": true});
    app.publish("irn.cancel", &body).await;
    let evs = replies_until(&mut app, "irn.cancelled", 20).await;
    assert_eq!(types(&evs), ["ewaybill.cancelled", "irn.cancelled"], "{evs:#?}");
    assert_eq!(evs[0]["data"]["ewb_no"], ewb_no.as_str());
    assert_eq!(evs[0]["data"]["reason"], "2", "IRN reason 3 (order cancelled) is e-way bill reason 2");
    assert_eq!(evs[1]["data"]["ewaybill_cancelled"], true);
    assert_eq!(app.sim.core.ewaybill(&ewb_no).unwrap().status, "CNL");
    assert_eq!(app.sim.core.document(&irn).unwrap().status, "CNL");

    // An e-way bill our store never saw: the IRP's 2230 leads to it, then both are cancelled.
    let other = generated(&mut app, "b2b-intra-goods", "E4/0002").await;
    let made = app.sim.core.generate_ewaybill(SELLER_KA, &json!({"Irn": other, "Distance": 10})).unwrap();
    let body = json!({"gstin": SELLER_KA, "irn": other, "reason": "1", "remark": "Duplicate", "cancel_ewaybill": true});
    app.publish("irn.cancel", &body).await;
    let evs = replies_until(&mut app, "irn.cancelled", 20).await;
    assert_eq!(types(&evs), ["ewaybill.cancelled", "irn.cancelled"], "{evs:#?}");
    assert_eq!(app.sim.core.ewaybill(&made["EwbNo"].to_string()).unwrap().status, "CNL");
    assert_eq!(app.sim.core.document(&other).unwrap().status, "CNL");

    // The IRN cancel refused after the e-way bill is gone: said so, with what to do.
    let third = generated(&mut app, "b2b-intra-goods", "E4/0003").await;
    ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": third, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    // The IRP thinks it is older than 24 hours (our store does not, so the call is made).
    app.sim.core.age_document(&third, chrono::Duration::hours(25));
    let body = json!({"gstin": SELLER_KA, "irn": third, "reason": "1", "remark": "Duplicate", "cancel_ewaybill": true});
    app.publish("irn.cancel", &body).await;
    let evs = replies_until(&mut app, "irn.cancelled", 20).await;
    assert_eq!(types(&evs), ["ewaybill.cancelled", "irn.cancel.rejected"], "{evs:#?}");
    let d = &evs[1]["data"];
    assert_eq!(d["ewaybill_cancelled"], true, "{d}");
    assert_eq!(d["errors"][0]["code"], "2270");
    let advice = d["errors"].as_array().unwrap().iter().find(|e| e["code"] == "EWAYBILL_CANCELLED_IRN_ACTIVE").unwrap();
    assert!(advice["message"].as_str().unwrap().contains("ewaybill.generate"), "{advice}");
    assert_eq!(app.sim.core.document(&third).unwrap().status, "ACT");
    app.stop().await;
}
both_protocols!(irn_cancel_saga, irn_cancel_with_its_ewaybill);

/// An e-way bill made with the IRN (`EwbDtls`) is known from the job row: refused without the
/// flag before any call, cancelled first with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewaybill_made_with_the_irn_is_cancelled_first() {
    let mut app = TestApp::spawn().await;
    let inv = invoice("b2b-inter-goods-ewb", "E5/0001");
    let seller = inv["SellerDtls"]["Gstin"].as_str().unwrap().to_string();
    app.generate(&inv).await;
    let (_, ev) = app.next_reply(20).await;
    let irn = ev["data"]["irn"].as_str().unwrap().to_string();
    let ewb_no = ev["data"]["ewb_no"].as_str().unwrap().to_string();
    let body = json!({"gstin": seller, "irn": irn, "reason": "1", "remark": "dup"});
    ask(&mut app, "irn.cancel", body, "irn.cancel.rejected").await;
    assert_eq!(app.sim.core.stats().cancel_calls, 0);
    let body = json!({"gstin": seller, "irn": irn, "reason": "1", "remark": "dup", "cancel_ewaybill": true});
    app.publish("irn.cancel", &body).await;
    let evs = replies_until(&mut app, "irn.cancelled", 20).await;
    assert_eq!(types(&evs), ["ewaybill.cancelled", "irn.cancelled"], "{evs:#?}");
    assert_eq!(evs[0]["data"]["ewb_no"], ewb_no.as_str());
    assert_eq!(app.sim.core.stats().cancel_calls, 1, "one IRN cancel: no 2230 round trip");
    app.stop().await;
}

/// A worker killed after the e-way bill step, inside the IRN cancel call: the next one resumes
/// with the IRN cancel and never cancels the e-way bill twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_between_the_two_cancels_resumes() {
    let mut app = TestApp::spawn_with(Options {
        provider: ProviderKind::Nic,
        extra_toml: "lease_secs = 3\nhttp_read_timeout_ms = 10000".into(),
        ..Default::default()
    })
    .await;
    let irn = generated(&mut app, "b2b-intra-goods", "E6/0001").await;
    ask(
        &mut app,
        "ewaybill.generate",
        json!({"gstin": SELLER_KA, "irn": irn, "transport": road()}),
        "ewaybill.generated",
    )
    .await;
    // Only worker processes consume from here on.
    app.worker.take().unwrap().stop().await.unwrap();
    app.sim.core.update_faults(|f| f.latency_ms = 2_000);
    let mut first = app.spawn_process();
    let body = json!({"gstin": SELLER_KA, "irn": irn, "reason": "1", "remark": "Duplicate", "cancel_ewaybill": true});
    app.publish("irn.cancel", &body).await;
    // The e-way bill step is recorded; the IRN cancel call is now waiting on the latency.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = app.db.client().await.unwrap();
        let st: Option<String> =
            c.query_opt("SELECT status FROM ewaybills WHERE irn = $1", &[&irn]).await.unwrap().map(|r| r.get(0));
        if st.as_deref() == Some("cancelled") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the e-way bill step never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    app.sim.core.update_faults(|f| f.latency_ms = 0);
    let mut second = app.spawn_process();
    let evs = replies_until(&mut app, "irn.cancelled", 60).await;
    assert_eq!(types(&evs), ["ewaybill.cancelled", "irn.cancelled"], "{evs:#?}");
    let s = app.sim.core.stats();
    assert_eq!(s.ewb_cancel_calls, 1, "the finished e-way bill step is not repeated: {s:?}");
    assert_eq!(app.sim.core.document(&irn).unwrap().status, "CNL");
    second.kill().unwrap();
    second.wait().unwrap();
    app.stop().await;
}
