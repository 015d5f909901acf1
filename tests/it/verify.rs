//! Issue 26: `einvoice.verify`, the buyer's side. Suppliers' signed QR codes and invoices from
//! the simulator, before and after it rotates its key, verified offline against the configured
//! IRP keys with their dates; each way of failing has its reason; a QR image read back; the
//! expected record with a tolerance; a batch of 500 verifications ending in one summary.
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::{invoice, Options, TestApp, SELLER_KA, SELLER_MH};
use einvoice_worker::config::ProviderKind;
use einvoice_worker::sim;

/// The buyer of the `b2b-intra-goods` sample: configured, so it is "ours".
const BUYER: &str = "29AADCT5519H1Z4";

/// Key 1 in use from 2020 on (no end), key 2 from 2020 as well: the simulator rotates to it
/// mid-test. A third window, key 1 for 2019 only, is what an expired key looks like.
fn options() -> Options {
    let mut extra = sim::signing_key_toml("NIC1", 1, Some("2020-01-01"), None);
    extra.push_str(&sim::signing_key_toml("NIC1", 2, Some("2020-01-01"), None));
    extra.push_str(&sim::gstin_toml("http://127.0.0.1:9", ProviderKind::Whitebooks, BUYER));
    Options { extra_toml: extra, ..Default::default() }
}

async fn ask(app: &mut TestApp, routing_key: &str, body: Value) -> Value {
    let corr = app.publish(routing_key, &body).await;
    let (c, ev) = app.next_reply(20).await;
    assert_eq!(c.as_deref(), Some(corr.as_str()), "answer to another command: {ev:#}");
    ev
}

async fn verified(app: &mut TestApp, body: Value) -> Value {
    let ev = ask(app, "einvoice.verify", body).await;
    assert_eq!(ev["event_type"], "einvoice.verified", "{ev:#}");
    ev["data"].clone()
}

fn reason(d: &Value) -> (bool, &str) {
    (d["valid"].as_bool().unwrap(), d["reason"].as_str().unwrap_or(""))
}

/// A QR code's data, signed by the simulator's current key.
fn qr_data(no: &str, irn_dt: &str) -> Value {
    json!({"SellerGstin": SELLER_KA, "BuyerGstin": BUYER, "DocNo": no, "DocTyp": "INV", "DocDt": "02/04/2025",
        "TotInvVal": 1180.5, "ItemCnt": 1, "MainHsnCode": "8481", "Irn": format!("{:0>64}", no.len()), "IrnDt": irn_dt})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppliers_einvoices_verify_across_a_key_rotation_and_each_failure_has_its_reason() {
    let mut app = TestApp::spawn_with(options()).await;
    let inv = invoice("b2b-intra-goods", "VFY/0001");
    let gen = ask(&mut app, "irn.generate", json!({"gstin": SELLER_KA, "invoice": inv})).await;
    assert_eq!(gen["event_type"], "irn.generated", "{gen:#}");
    let (qr1, signed1, irn1) = (
        gen["data"]["signed_qr_code"].as_str().unwrap().to_string(),
        gen["data"]["signed_invoice"].as_str().unwrap().to_string(),
        gen["data"]["irn"].clone(),
    );
    let before = app_calls(&app);

    // The signed QR code and the signed invoice, by the first key.
    let d = verified(&mut app, json!({"signed_qr_code": qr1, "request_id": "p-1"})).await;
    assert_eq!(reason(&d), (true, ""), "{d:#}");
    assert_eq!(d["signed_by"]["key_id"], "SIM-SIGNING-KEY");
    assert_eq!(d["signed_by"]["irp"], "NIC1");
    let f = &d["fields"];
    assert_eq!((f["supplier_gstin"].as_str(), f["buyer_gstin"].as_str()), (Some(SELLER_KA), Some(BUYER)));
    assert_eq!((f["doc_number"].as_str(), f["total_value"].as_str()), (Some("VFY/0001"), Some("39441.5")));
    assert_eq!(f["irn"], irn1);
    assert!(f["irn_date"].is_string() && f["main_hsn"].is_string() && f["item_count"].is_u64(), "{f:#}");
    let d = verified(&mut app, json!({"signed_invoice": signed1, "gstin": BUYER})).await;
    assert_eq!((reason(&d), d["signed"].as_str()), ((true, ""), Some("signed_invoice")), "{d:#}");
    assert_eq!(d["fields"]["item_count"], inv["ItemList"].as_array().unwrap().len());
    // The whole irn.generated event, as a JSON document holding both.
    let d = verified(&mut app, json!({"signed_invoice": gen.clone()})).await;
    assert_eq!(reason(&d), (true, ""), "{d:#}");

    // The simulator rotates its key: new invoices verify by the second key, old ones still do.
    app.sim.core.rotate_signing_key(2);
    let gen2 =
        ask(&mut app, "irn.generate", json!({"gstin": SELLER_KA, "invoice": invoice("b2b-intra-goods", "VFY/0002")}))
            .await;
    let qr2 = gen2["data"]["signed_qr_code"].as_str().unwrap().to_string();
    let d = verified(&mut app, json!({"signed_qr_code": qr2})).await;
    assert_eq!((reason(&d), d["signed_by"]["key_id"].as_str()), ((true, ""), Some("SIM-SIGNING-KEY-2")), "{d:#}");
    let d = verified(&mut app, json!({"signed_qr_code": qr1})).await;
    assert_eq!(reason(&d), (true, ""), "signed before the rotation: {d:#}");

    // A tampered amount: the claims changed, the signature kept.
    let parts: Vec<&str> = qr1.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let mut data: Value = serde_json::from_str(claims["data"].as_str().unwrap()).unwrap();
    data["TotInvVal"] = json!(394.41);
    claims["data"] = json!(data.to_string());
    let forged = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
    let d = verified(&mut app, json!({"signed_qr_code": forged})).await;
    assert_eq!(reason(&d), (false, "SIGNATURE_INVALID"), "{d:#}");
    assert_eq!(d["signature_valid"], false);
    // A wrong key: signed by a key no IRP uses.
    let wrong =
        einvoice_worker::irp::jwt::sign(&qr_data("W/1", "2025-04-02 10:00:00"), &app.sim.core.nic_key, "ROGUE-KEY");
    let d = verified(&mut app, json!({"signed_qr_code": wrong})).await;
    assert_eq!(reason(&d), (false, "UNKNOWN_KEY"), "{d:#}");
    // An expired key: signed by the first key on a day before its window.
    app.sim.core.rotate_signing_key(1);
    let expired = app.sim.core.sign(&qr_data("E/1", "2019-06-01 10:00:00"));
    let d = verified(&mut app, json!({"signed_qr_code": expired})).await;
    assert_eq!(reason(&d), (false, "KEY_NOT_VALID_AT_DATE"), "{d:#}");
    assert_eq!(
        (d["signature_valid"].as_bool(), d["signed_by"]["key_id"].as_str()),
        (Some(true), Some("SIM-SIGNING-KEY"))
    );
    // A QR code that is no e-invoice, as text and as an image.
    let d = verified(&mut app, json!({"signed_qr_code": "upi://pay?pa=shop@bank&am=10"})).await;
    assert_eq!(reason(&d), (false, "NOT_AN_EINVOICE"), "{d:#}");
    let url_png = einvoice_worker::irp::qr::qr_png_base64("https://example.com/menu").unwrap();
    let d = verified(&mut app, json!({"qr_image": url_png})).await;
    assert_eq!(reason(&d), (false, "NOT_AN_EINVOICE"), "{d:#}");
    // A buyer that is not ours (the command names another of our GSTINs).
    let d = verified(&mut app, json!({"signed_qr_code": qr1, "gstin": SELLER_MH})).await;
    assert_eq!(reason(&d), (false, "BUYER_NOT_OURS"), "{d:#}");

    // An image of the QR code, rendered by our own QR code and read back.
    let png = einvoice_worker::irp::qr::qr_png_base64(&qr1).unwrap();
    let d = verified(&mut app, json!({"qr_image": format!("data:image/png;base64,{png}")})).await;
    assert_eq!((reason(&d), d["input"].as_str()), ((true, ""), Some("qr_image")), "{d:#}");
    assert_eq!(d["fields"]["irn"], irn1);

    // The ERP's record, its total off by ₹0.50: within ₹1, not within ₹0.10.
    let expected = json!({"supplier_gstin": SELLER_KA, "buyer_gstin": BUYER, "doc_number": "VFY/0001",
        "doc_date": inv["DocDtls"]["Dt"], "total_value": "39442.00"});
    let d = verified(&mut app, json!({"signed_qr_code": qr1, "expected": expected, "tolerance": "1.00"})).await;
    assert_eq!((reason(&d), d["mismatches"].clone()), ((true, ""), json!([])), "{d:#}");
    assert_eq!(d["tolerance"], "1.00");
    let d = verified(&mut app, json!({"signed_qr_code": qr1, "expected": expected, "tolerance": 0.10})).await;
    assert_eq!(reason(&d), (false, "MISMATCH"), "{d:#}");
    assert_eq!(d["mismatches"], json!([{"field": "total_value", "expected": "39442.00", "actual": "39441.5"}]));

    // A malformed command is rejected with its path; no IRP call was made by any verification.
    let r = ask(&mut app, "einvoice.verify", json!({"signed_qr_code": qr1, "qr_image": png})).await;
    assert_eq!(r["event_type"], "einvoice.verify.rejected", "{r:#}");
    assert_eq!(
        (r["data"]["errors"][0]["path"].as_str(), r["data"]["errors"][0]["code"].as_str()),
        (Some("qr_image"), Some("VERIFY_INPUT"))
    );
    let r = ask(&mut app, "einvoice.verify", json!({"signed_qr_code": qr1, "gstin": "33AAFCR6612L1ZA"})).await;
    assert_eq!(r["data"]["errors"][0]["code"], "GSTIN_NOT_CONFIGURED", "{r:#}");
    let mut after = app_calls(&app);
    after["generate_calls"] = json!(after["generate_calls"].as_u64().unwrap() - 1); // VFY/0002's own
    assert_eq!(after, before, "verifications make no IRP call");
    app.stop().await;
}

fn app_calls(app: &TestApp) -> Value {
    let mut s = serde_json::to_value(app.sim.core.stats()).unwrap();
    // Only the counters of IRP calls.
    if let Some(o) = s.as_object_mut() {
        o.retain(|k, _| k.ends_with("_calls") || k == "auth_calls");
    }
    s
}

/// A day's purchase register: 500 verifications in one `einvoice.verify_batch`, each answered
/// `einvoice.verified` (or rejected), then exactly one `batch.completed` with the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_500_verifications_completes_with_one_summary() {
    let mut app = TestApp::spawn_with(options()).await;
    let mut items: Vec<Value> = (0..500)
        .map(|i| {
            json!({"signed_qr_code": app.sim.core.sign(&qr_data(&format!("B/{i}"), "2025-04-02 10:00:00")),
            "expected": {"doc_number": format!("B/{i}"), "total_value": "1180.50"}})
        })
        .collect();
    // One signed by a key no IRP uses, one whose total differs, one with no input at all.
    items[7]["signed_qr_code"] =
        json!(einvoice_worker::irp::jwt::sign(&qr_data("B/7", "2025-04-02 10:00:00"), &app.sim.core.nic_key, "ROGUE"));
    items[42]["expected"]["total_value"] = json!("1200");
    items[99] = json!({"expected": {"doc_number": "B/99"}});
    let batch_id = format!("purchases-{}", app.id);
    let body = json!({"gstin": BUYER, "batch_id": batch_id, "verifications": items, "request_id": "register-1"});
    let corr = app.publish("einvoice.verify_batch", &body).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut out: Vec<Value> = Vec::new();
    let is = |e: &Value, t: &str| e["event_type"] == t;
    while !(out.iter().any(|e| is(e, "batch.completed"))
        && out.iter().filter(|e| e["event_type"].as_str().is_some_and(|t| t.starts_with("einvoice.verif"))).count()
            >= 500)
    {
        assert!(tokio::time::Instant::now() < deadline, "the batch did not finish: {} replies", out.len());
        out.push(app.next_reply(60).await.1);
    }
    assert_eq!(out.iter().filter(|e| is(e, "batch.accepted")).count(), 1);
    assert_eq!(out.iter().filter(|e| is(e, "batch.completed")).count(), 1);
    let done = out.iter().find(|e| is(e, "batch.completed")).unwrap();
    assert_eq!(
        (done["correlation_id"].as_str(), done["request_id"].as_str()),
        (Some(corr.as_str()), Some("register-1"))
    );
    let d = &done["data"];
    assert_eq!(d["counts"], json!({"valid": 497, "invalid": 2, "rejected": 1, "failed": 0}), "{:#}", d["counts"]);
    let items = d["items"].as_array().unwrap();
    assert_eq!(items.len(), 500);
    assert_eq!(
        (items[7]["outcome"].as_str(), items[7]["errors"][0]["code"].as_str()),
        (Some("invalid"), Some("UNKNOWN_KEY"))
    );
    assert_eq!(
        (items[42]["outcome"].as_str(), items[42]["errors"][0]["code"].as_str()),
        (Some("invalid"), Some("MISMATCH"))
    );
    assert_eq!(
        (items[99]["outcome"].as_str(), items[99]["errors"][0]["code"].as_str()),
        (Some("rejected"), Some("VERIFY_INPUT"))
    );
    assert_eq!(items[3]["document"]["doc_number"], "B/3");
    assert_eq!(items[3]["irn"].as_str().map(str::len), Some(64));
    app.no_more_replies(2).await;
    // Sent again once complete: the same mechanism answers with the stored summary alone.
    app.publish("einvoice.verify_batch", &body).await;
    let again = app.next_reply(30).await.1;
    assert_eq!(again["event_type"], "batch.completed", "{again:#}");
    assert_eq!((&again["data"]["replayed"], &again["data"]["counts"]), (&json!(true), &d["counts"]));
    app.no_more_replies(2).await;
    app.stop().await;
}
