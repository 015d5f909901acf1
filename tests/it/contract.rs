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

/// The schema of `s` with its `$ref`s and `allOf`s followed: (property names, required names,
/// `dependentRequired`).
fn flatten(s: &Value, props: &mut Vec<String>, required: &mut Vec<String>, deps: &mut Vec<(String, Vec<String>)>) {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        return flatten(&DOC["components"]["schemas"][name], props, required, deps);
    }
    for part in s["allOf"].as_array().into_iter().flatten() {
        flatten(part, props, required, deps);
    }
    props.extend(s["properties"].as_object().into_iter().flat_map(|o| o.keys().cloned()));
    required.extend(s["required"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)));
    for (k, v) in s["dependentRequired"].as_object().into_iter().flatten() {
        deps.push((
            k.clone(),
            v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        ));
    }
}

/// Every event whose data carries an IRN or an e-way bill number carries `data.irp` too: the
/// schema requires it, or requires it whenever `irn` / `ewb_no` is present.
#[test]
fn every_event_with_an_irn_or_an_ewaybill_number_names_its_irp() {
    let messages = DOC["components"]["messages"].as_object().expect("components.messages");
    let mut checked = Vec::new();
    for (key, m) in messages.iter().filter(|(k, _)| k.ends_with("Event")) {
        let (mut props, mut required, mut deps) = (vec![], vec![], vec![]);
        flatten(&m["payload"], &mut props, &mut required, &mut deps);
        assert!(props.iter().any(|p| p == "data"), "{key} has no data");
        let (mut dp, mut dr, mut dd) = (vec![], vec![], vec![]);
        let payload = &m["payload"];
        let mut data_schemas = vec![];
        let root = &DOC["components"]["schemas"][payload["$ref"].as_str().unwrap().rsplit('/').next().unwrap()];
        for part in root["allOf"].as_array().into_iter().flatten() {
            if !part["properties"]["data"].is_null() {
                data_schemas.push(part["properties"]["data"].clone());
            }
        }
        for d in &data_schemas {
            flatten(d, &mut dp, &mut dr, &mut dd);
        }
        for id in ["irn", "ewb_no"] {
            if !dp.iter().any(|p| p == id) {
                continue;
            }
            let always = dr.iter().any(|r| r == "irp");
            let with_it = dd.iter().any(|(k, v)| k == id && v.iter().any(|x| x == "irp"));
            assert!(always || with_it, "{key}: data.{id} without data.irp required");
            checked.push(key.clone());
        }
    }
    for must in ["irnCancelledEvent", "ewaybillCancelledEvent", "ewaybillGeneratedEvent", "irnCancelRejectedEvent"] {
        assert!(checked.iter().any(|k| k == must), "{must} not checked: {checked:?}");
    }
}
