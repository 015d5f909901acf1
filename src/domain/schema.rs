//! The commands' JSON Schemas, read from the contract itself: `docs/asyncapi.yaml` is embedded in
//! the binary, and every channel on the `einvoice.commands` exchange gives the schema of the
//! command named by its address (the routing key). A command is checked against it before the
//! worker's own parsing, so the document an ERP generates its client from is also what the worker
//! enforces: one definition of what a command is.
//!
//! A command added to the contract (a new channel on `einvoice.commands`) is checked as soon as
//! the YAML has it; a routing key with no schema is not checked here (the worker's parser still
//! is). Violations become [`Problem`]s with code [`SCHEMA`], the path of the field
//! (`invoice.ItemList[0].Qty`) and a sentence that names the rule but never repeats the value
//! (a value may be megabytes long or hold control characters). The validators are compiled once.
use std::collections::HashMap;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use serde_json::{json, Value};

use super::Problem;

/// The problem code of a schema violation.
pub const SCHEMA: &str = "SCHEMA";

/// The exchange whose channels are commands.
const COMMANDS_EXCHANGE: &str = "einvoice.commands";

/// The contract, as shipped with this build.
pub const ASYNCAPI_YAML: &str = include_str!("../../docs/asyncapi.yaml");

/// Why the embedded contract could not give the command schemas (a broken `docs/asyncapi.yaml`;
/// the unit tests compile it, so a release never has one).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("docs/asyncapi.yaml is not valid YAML: {0}")]
    Yaml(String),
    #[error("docs/asyncapi.yaml: {0}")]
    Contract(String),
}

static VALIDATORS: LazyLock<HashMap<String, Validator>> =
    LazyLock::new(|| compile(ASYNCAPI_YAML).unwrap_or_else(|e| panic!("the embedded contract's command schemas: {e}")));

/// Compile the schema of every command channel in an AsyncAPI document, by routing key.
pub fn compile(yaml: &str) -> Result<HashMap<String, Validator>, SchemaError> {
    let doc: Value = serde_norway::from_str(yaml).map_err(|e| SchemaError::Yaml(e.to_string()))?;
    let resolve = |v: &Value| -> Option<Value> {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => doc.pointer(r.strip_prefix('#')?).cloned(),
            None => Some(v.clone()),
        }
    };
    let schemas = doc.pointer("/components/schemas").cloned().unwrap_or_else(|| json!({}));
    let mut out = HashMap::new();
    for (name, channel) in doc.get("channels").and_then(Value::as_object).into_iter().flatten() {
        if channel.pointer("/bindings/amqp/exchange/name").and_then(Value::as_str) != Some(COMMANDS_EXCHANGE) {
            continue;
        }
        let Some(key) = channel.get("address").and_then(Value::as_str) else { continue };
        let Some(message) = channel.get("messages").and_then(Value::as_object).and_then(|m| m.values().next()) else {
            continue;
        };
        let payload = resolve(message)
            .and_then(|m| m.get("payload").cloned())
            .ok_or_else(|| SchemaError::Contract(format!("channel {name}: its message has no payload")))?;
        // The payload is the root, with the shared schemas beside it so that
        // `#/components/schemas/...` references resolve.
        let mut root = match payload {
            Value::Object(o) => Value::Object(o),
            other => json!({"allOf": [other]}),
        };
        root["components"] = json!({"schemas": schemas});
        let validator = jsonschema::draft202012::options()
            .build(&root)
            .map_err(|e| SchemaError::Contract(format!("the schema of `{key}` does not compile: {e}")))?;
        out.insert(key.to_string(), validator);
    }
    Ok(out)
}

/// Routing keys the contract gives a schema for.
pub fn command_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = VALIDATORS.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Every way `body` breaks the schema of the command `routing_key` (none when the contract has
/// no schema for it).
pub fn command_problems(routing_key: &str, body: &Value) -> Vec<Problem> {
    match VALIDATORS.get(routing_key) {
        Some(v) => problems(v, body),
        None => Vec::new(),
    }
}

/// The most schema violations collected for one command.
const MAX_SCHEMA_PROBLEMS: usize = 1_000;

/// The violations of `validator` by `body` (at most [`MAX_SCHEMA_PROBLEMS`]), as problems.
pub fn problems(validator: &Validator, body: &Value) -> Vec<Problem> {
    // The common case (a valid command) walks the schema once, without collecting anything.
    if validator.is_valid(body) {
        return Vec::new();
    }
    // A hostile list (20,000 empty items) breaks the item rules once per element, and the
    // validator gathers an element's errors before yielding any: collect them on a copy whose
    // lists are cut to [`MAX_LIST_CHECKED`] elements (a too-long list still breaks its maxItems),
    // and from the whole body only when the cut copy shows nothing.
    if let Some(cut) = cut_long_lists(body) {
        let found = collect(validator, &cut);
        if !found.is_empty() {
            return found;
        }
    }
    collect(validator, body)
}

/// Bounded: a hostile command can break a rule once per array element; the rejection lists at
/// most `command::MAX_PROBLEMS` anyway.
fn collect(validator: &Validator, body: &Value) -> Vec<Problem> {
    validator.iter_errors(body).take(MAX_SCHEMA_PROBLEMS).map(|e| to_problem(&e, body)).collect()
}

/// Lists longer than this are cut before the schema's violations are collected: one more than
/// the longest list the contract allows (`ItemList`: 1,000 items).
const MAX_LIST_CHECKED: usize = 1_001;

/// `body` with every list cut to [`MAX_LIST_CHECKED`] elements, if any is longer.
fn cut_long_lists(body: &Value) -> Option<Value> {
    fn long(v: &Value) -> bool {
        match v {
            Value::Array(a) => a.len() > MAX_LIST_CHECKED || a.iter().any(long),
            Value::Object(m) => m.values().any(long),
            _ => false,
        }
    }
    fn cut(v: &Value) -> Value {
        match v {
            Value::Array(a) => Value::Array(a.iter().take(MAX_LIST_CHECKED).map(cut).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), cut(v))).collect()),
            other => other.clone(),
        }
    }
    long(body).then(|| cut(body))
}

fn to_problem(e: &ValidationError<'_>, body: &Value) -> Problem {
    let mut path = dotted(e, body);
    if let ValidationErrorKind::Required { property } = e.kind() {
        push_key(&mut path, property.as_str().unwrap_or_default());
    }
    let subject = if path.is_empty() { "the command".to_string() } else { path.clone() };
    Problem::new(path, SCHEMA, format!("{subject} {} (docs/asyncapi.yaml)", rule(e)))
}

/// The instance path as the rest of the worker writes it: `invoice.ItemList[0].Qty`.
fn dotted(e: &ValidationError<'_>, body: &Value) -> String {
    let mut out = String::new();
    let mut at = Some(body);
    for seg in e.instance_path().segments() {
        match seg {
            LocationSegment::Index(i) if at.is_some_and(Value::is_array) => {
                out.push_str(&format!("[{i}]"));
                at = at.and_then(|v| v.get(i));
            }
            LocationSegment::Index(i) => {
                let key = i.to_string();
                at = at.and_then(|v| v.get(&key));
                push_key(&mut out, &key);
            }
            LocationSegment::Property(p) => {
                at = at.and_then(|v| v.get(p.as_ref()));
                push_key(&mut out, &p);
            }
        }
    }
    out
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the rule asks for, without quoting the value.
fn rule(e: &ValidationError<'_>) -> String {
    let instance = e.instance();
    let chars = || instance.as_str().map_or(0, |s| s.chars().count());
    let items = || instance.as_array().map_or(0, Vec::len);
    match e.kind() {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or "),
            };
            format!("must be of type {expected} (found {})", type_name(instance))
        }
        ValidationErrorKind::Required { .. } => "is required".into(),
        ValidationErrorKind::Pattern { pattern } => format!("does not have the required form (pattern {pattern})"),
        ValidationErrorKind::MinLength { limit } => format!("must have at least {limit} characters (has {})", chars()),
        ValidationErrorKind::MaxLength { limit } => format!("must have at most {limit} characters (has {})", chars()),
        ValidationErrorKind::Enum { options } => {
            let list = options.as_array().map(|o| o.iter().map(Value::to_string).collect::<Vec<_>>().join(", "));
            format!("must be one of {}", list.unwrap_or_else(|| options.to_string()))
        }
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be more than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items (has {})", items()),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items (has {})", items()),
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // "irn or document": every branch only misses a field.
            let missing: Option<Vec<String>> = context
                .iter()
                .map(|branch| match branch.as_slice() {
                    [one] => match one.kind() {
                        ValidationErrorKind::Required { property } => property.as_str().map(|p| format!("'{p}'")),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            match missing {
                Some(fields) if !fields.is_empty() => format!("needs one of {}", fields.join(", ")),
                _ => {
                    let forms: Vec<String> = context.iter().filter_map(|b| b.first()).map(|e| rule(e)).collect();
                    format!("matches none of its allowed forms: {}", forms.join("; or "))
                }
            }
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => "matches more than one of its exclusive forms".into(),
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("has fields the schema does not allow: {}", unexpected.join(", "))
        }
        other => format!("breaks the schema's '{}' rule", other.keyword()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_of_the_worker_has_a_schema_in_the_contract() {
        let keys = command_keys();
        for k in crate::domain::command::JobKind::ALL {
            assert!(keys.contains(&k.routing_key()), "no schema for {}: {keys:?}", k.routing_key());
        }
    }

    #[test]
    fn violations_name_their_field_and_never_repeat_the_value() {
        let body = json!({"gstin": "29AAGCP4821K1Z3", "irn": "x\u{202E}y", "document": {"doc_type": "INVOICE",
            "doc_number": "ABCDEFGHIJKLMNOPQ", "doc_date": 5}, "reason": "9"});
        let ps = command_problems("irn.cancel", &body);
        let at = |path: &str| ps.iter().find(|p| p.path == path).unwrap_or_else(|| panic!("{path}: {ps:#?}"));
        assert!(at("irn").message.contains("pattern"), "{ps:#?}");
        assert!(at("document.doc_type").message.contains("\"INV\", \"CRN\", \"DBN\""), "{ps:#?}");
        assert!(at("document.doc_number").message.contains("at most 16 characters (has 17)"), "{ps:#?}");
        assert!(at("document.doc_date").message.contains("must be of type string (found an integer)"), "{ps:#?}");
        assert!(at("reason").message.contains("must be one of"), "{ps:#?}");
        assert!(ps.iter().all(|p| p.code == SCHEMA && !p.message.contains('\u{202E}')), "{ps:#?}");
    }

    #[test]
    fn a_missing_field_is_reported_at_its_own_path() {
        let ps = command_problems("irn.get", &json!({"gstin": "29AAGCP4821K1Z3"}));
        assert_eq!(ps.len(), 1, "{ps:#?}");
        assert_eq!(ps[0].path, "");
        assert!(ps[0].message.contains("needs one of 'irn', 'document'"), "{ps:#?}");
        let ps = command_problems("irn.generate", &json!({"invoice": {"DocDtls": {"Typ": "INV"}}}));
        let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"gstin") && paths.contains(&"invoice.DocDtls.No"), "{paths:?}");
        assert!(paths.contains(&"invoice.ItemList"), "{paths:?}");
    }

    #[test]
    fn a_hostile_list_is_checked_on_its_first_elements_only() {
        let inv = crate::samples::stamped("b2b-intra-goods", Some("SCH/2"));
        let mut body = json!({"gstin": "29AAGCP4821K1Z3", "invoice": inv});
        body["invoice"]["ItemList"] = Value::Array(vec![json!({}); 20_000]);
        let ps = command_problems("irn.generate", &body);
        assert!(ps.iter().any(|p| p.path == "invoice.ItemList" && p.message.contains("1000")), "{ps:#?}");
        assert!(ps.iter().all(|p| !p.path.contains("[1001]")), "elements past the cut are not read");
    }

    #[test]
    fn array_items_are_indexed_and_every_violation_is_collected() {
        let inv = crate::samples::stamped("b2b-intra-goods", Some("SCH/1"));
        let mut body = json!({"gstin": "29AAGCP4821K1Z3", "invoice": inv});
        body["invoice"]["ItemList"][0]["Qty"] = json!(true);
        body["invoice"]["ItemList"][1]["HsnCd"] = json!("12");
        let ps = command_problems("irn.generate", &body);
        let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["invoice.ItemList[0].Qty", "invoice.ItemList[1].HsnCd"], "{ps:#?}");
    }

    #[test]
    fn a_routing_key_without_a_schema_is_not_checked_here() {
        assert!(command_problems("job.frobnicate", &json!(null)).is_empty());
    }

    #[test]
    fn a_command_added_to_the_contract_is_picked_up() {
        let yaml = r#"
channels:
  cmdJobStatus:
    address: job.status
    messages:
      m: {$ref: '#/components/messages/jobStatusCommand'}
    bindings: {amqp: {exchange: {name: einvoice.commands}}}
  evtJobStatus:
    address: job.status
    messages:
      m: {payload: {type: object}}
    bindings: {amqp: {exchange: {name: einvoice.events}}}
components:
  messages:
    jobStatusCommand: {payload: {$ref: '#/components/schemas/JobStatusCommand'}}
  schemas:
    Id: {type: string}
    JobStatusCommand: {type: object, required: [job_id], properties: {job_id: {$ref: '#/components/schemas/Id'}}}
"#;
        let v = compile(yaml).unwrap();
        assert_eq!(v.len(), 1, "only the command channel");
        let ps = problems(&v["job.status"], &json!({"job_id": 7}));
        assert_eq!((ps[0].path.as_str(), ps[0].code.as_str()), ("job_id", SCHEMA));
        assert!(problems(&v["job.status"], &json!({"job_id": "j"})).is_empty());
    }
}
