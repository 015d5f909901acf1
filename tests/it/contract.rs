//! The contract is tested, not just documented: every event an integration test receives is
//! validated against its JSON Schema in `docs/asyncapi.yaml` (see `helpers::next`), so a drift
//! between the code and the schema an ERP generates its client from fails the suite.
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{json, Value};

use crate::helpers::{invoice, TestApp, SELLER_KA};

/// The AsyncAPI document as JSON.
static DOC: LazyLock<Value> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/asyncapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/asyncapi.yaml is readable");
    serde_norway::from_str(&text).expect("docs/asyncapi.yaml is YAML")
});

static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = LazyLock::new(Default::default);

/// The `components.messages` entry for an event type: the message named `event_type` whose key
/// ends in `Event` (a few commands share their name with their answer, e.g. `gstin.details`).
fn payload_ref(event_type: &str) -> Option<String> {
    let messages = DOC["components"]["messages"].as_object()?;
    let (_, msg) = messages.iter().find(|(k, m)| k.ends_with("Event") && m["name"] == event_type)?;
    msg["payload"]["$ref"].as_str().map(str::to_string)
}

fn validator(event_type: &str) -> Arc<jsonschema::Validator> {
    let reference = payload_ref(event_type)
        .unwrap_or_else(|| panic!("event type `{event_type}` has no message in docs/asyncapi.yaml"));
    compiled(&reference, event_type)
}

/// The validator of one payload schema (`#/components/schemas/...`), compiled once.
fn compiled(reference: &str, event_type: &str) -> Arc<jsonschema::Validator> {
    let mut cache = VALIDATORS.lock().unwrap();
    if let Some(v) = cache.get(reference) {
        return v.clone();
    }
    // The whole document is the root so that `#/components/schemas/...` references resolve;
    // the root `$ref` selects this event's payload schema.
    let mut root = DOC.clone();
    root["$ref"] = Value::String(reference.to_string());
    let v = Arc::new(
        jsonschema::draft202012::options()
            .build(&root)
            .unwrap_or_else(|e| panic!("the schema for `{event_type}` does not compile: {e}")),
    );
    cache.insert(reference.to_string(), v.clone());
    v
}

/// Panic with every violation when `event` does not match its schema.
pub fn check_event(event: &Value) {
    let Some(event_type) = event["event_type"].as_str() else {
        panic!("an event without event_type: {event:#}");
    };
    let v = validator(event_type);
    let problems: Vec<String> = v.iter_errors(event).map(|e| format!("  at {}: {}", e.instance_path(), e)).collect();
    assert!(
        problems.is_empty(),
        "`{event_type}` event violates docs/asyncapi.yaml:\n{}\nevent: {event:#}",
        problems.join("\n")
    );
}

#[test]
fn every_event_message_has_a_compiling_schema() {
    let messages = DOC["components"]["messages"].as_object().expect("components.messages");
    let events: Vec<&str> =
        messages.iter().filter(|(k, _)| k.ends_with("Event")).filter_map(|(_, m)| m["name"].as_str()).collect();
    assert!(events.len() >= 20, "{events:?}");
    for e in events {
        validator(e);
    }
}

#[test]
fn a_drifted_event_is_caught() {
    // The check itself can fail: an irn.generated without its IRN is refused.
    let ev = serde_json::json!({
        "event_id": "00000000-0000-4000-8000-000000000000", "event_type": "irn.generated",
        "occurred_at": "2026-11-30T10:00:00Z", "job_id": null, "request_id": null,
        "command_message_id": null, "correlation_id": null, "provider": "whitebooks",
        "document": null, "data": {"ack_no": 1}
    });
    let v = validator("irn.generated");
    assert!(v.iter_errors(&ev).next().is_some());
}

/// The document promises "every message has examples that validate against its schema".
#[test]
fn every_example_in_the_contract_matches_its_schema() {
    let messages = DOC["components"]["messages"].as_object().expect("components.messages");
    let mut checked = 0;
    for (key, m) in messages {
        let reference = m["payload"]["$ref"].as_str().unwrap_or_else(|| panic!("{key}: payload is not a $ref"));
        let v = compiled(reference, key);
        for ex in m["examples"].as_array().into_iter().flatten() {
            let problems: Vec<String> =
                v.iter_errors(&ex["payload"]).map(|e| format!("  at {}: {e}", e.instance_path())).collect();
            assert!(problems.is_empty(), "example `{}` of {key}:\n{}", ex["name"], problems.join("\n"));
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} examples");
}

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
