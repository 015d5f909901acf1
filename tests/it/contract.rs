//! The contract is tested, not just documented: every event an integration test receives is
//! validated against its JSON Schema in `docs/asyncapi.yaml` (see `helpers::next`), so a drift
//! between the code and the schema an ERP generates its client from fails the suite.
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::Value;

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
