//! Issue 14's contract cases that need a running worker (kept out of `contract.rs`, which the
//! health test binary includes for its helpers and whose metrics these would disturb).
use serde_json::{json, Value};

use crate::helpers::{invoice, TestApp, SELLER_KA};

/// Issue 14: real rejections of invoices whose document key is broken match the schema (the
/// helpers check every event), carry no `document`, say what was given, and echo no control
/// character anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_of_broken_document_keys_match_the_contract_and_echo_no_control_character() {
    let mut app = TestApp::spawn().await;
    let cases: [(&str, Value); 5] = [
        ("Dt", json!("31/02/2025")),
        ("Dt", json!("2025-04-01")),
        ("Typ", json!("INVOICE")),
        ("No", json!("ABCDEFGHIJ1234567")),
        ("No", json!("SMP/1\u{202E}9")),
    ];
    for (i, (field, value)) in cases.iter().enumerate() {
        let mut inv = invoice("b2b-intra-goods", &format!("CT/{i}"));
        inv["DocDtls"][*field] = value.clone();
        let body = json!({"gstin": SELLER_KA, "invoice": inv, "request_id": format!("req\u{202E}{i}")});
        app.publish("irn.generate", &body).await;
        let (_, ev) = app.next_reply(20).await;
        assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
        assert_eq!(ev["schema_version"], 1);
        assert!(ev["document"].is_null(), "{field}={value}: {ev:#}");
        let given = &ev["data"]["document_as_given"];
        let key = match *field {
            "Dt" => "doc_date",
            "Typ" => "doc_type",
            _ => "doc_number",
        };
        let expected = value.as_str().unwrap().replace('\u{202E}', "\\u202E");
        assert_eq!(given[key], expected.as_str(), "{ev:#}");
        assert_eq!(ev["request_id"], format!("req\\u202E{i}"));
        let at_field = format!("invoice.DocDtls.{field}");
        assert!(ev["data"]["errors"].as_array().unwrap().iter().any(|e| e["path"] == at_field.as_str()), "{ev:#}");
        assert_no_hidden_control(&ev);
    }
    // A valid key with a wrong amount still names its document.
    let mut inv = invoice("b2b-intra-goods", "CT/9");
    inv["ItemList"][0]["AssAmt"] = json!(1);
    app.generate(&inv).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["document"]["doc_number"], "CT/9", "{ev:#}");
    assert_eq!(ev["data"]["document_as_given"]["doc_number"], "CT/9");
    assert_eq!(app.sim.core.stats().generate_calls, 0);
    app.stop().await;
}

/// Every string of an event, keys included, is free of control and bidi characters.
fn assert_no_hidden_control(v: &Value) {
    let bad = |s: &str| s.chars().any(einvoice_worker::domain::text::is_hidden_control);
    match v {
        Value::String(s) => assert!(!bad(s), "a control character in {s:?}"),
        Value::Array(a) => a.iter().for_each(assert_no_hidden_control),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            assert!(!bad(k), "a control character in key {k:?}");
            assert_no_hidden_control(v)
        }),
        _ => {}
    }
}

/// A command the schema refuses is refused with the field's path, even where the worker's own
/// parser would have read it; a command of an unknown contract major is kept in einvoice.dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_checked_first_and_schema_versions_are_honoured() {
    let mut app = TestApp::spawn().await;
    app.publish("gstin.details", &json!({"gstin": "29aagcp4821k1z3", "target_gstin": "33AAFCR6612L1ZA"})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "gstin.details.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "SCHEMA");
    assert_eq!(ev["data"]["errors"][0]["path"], "gstin");
    assert_eq!(ev["data"]["errors"][0]["source"], "validation");

    let body = json!({"schema_version": 2, "gstin": SELLER_KA, "target_gstin": "33AAFCR6612L1ZA"});
    app.publish("gstin.details", &body).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["data"]["errors"][0]["code"], "SCHEMA_VERSION_UNSUPPORTED", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["source"], "envelope");
    assert_eq!(ev["data"]["dead_lettered"], true);
    let dead: Value = serde_json::from_slice(&app.dead_letter(10).await.expect("dead-lettered")).unwrap();
    assert_eq!(dead, body);

    let body = json!({"schema_version": "1", "gstin": SELLER_KA, "target_gstin": "33AAFCR6612L1ZA"});
    app.publish("gstin.details", &body).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "gstin.details", "{ev:#}");
    assert_eq!(ev["schema_version"], 1);
    app.stop().await;
}
