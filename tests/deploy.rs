//! The deployment files (`deploy/`, `.dockerignore`) checked against the code and each other,
//! without a broker or a database:
//!
//! - every YAML file under `deploy/` parses (Kubernetes files document by document), and so do
//!   the JSON files (Grafana dashboard, RabbitMQ definitions);
//! - every `EINVOICE_*` variable the manifests and compose files set is one the worker accepts
//!   (`config::check_variable_names`, the start-up check), and the Kubernetes config file loads
//!   into `Settings`;
//! - ports, names and references agree: the health port of `EINVOICE_HEALTH_LISTEN`, the
//!   container port named `health`, the probes, the Service and the scrape annotations; the
//!   Secret and ConfigMaps the Deployment, the Job and KEDA refer to; the KEDA queue; the files
//!   kustomization.yaml lists;
//! - every metric the alerts and the dashboard query is one the worker exports
//!   (`telemetry::metrics::CATALOG`; `up` is the only other), with labels it has, and every
//!   alert has a severity, a summary, a description and a runbook annotation naming a heading of
//!   `docs/operations.md`; `promtool check rules` passes (required unless
//!   `EINVOICE_SKIP_PROMTOOL=1`);
//! - no committed secrets: no password hash in the RabbitMQ definitions, compose passwords only
//!   as required `${VAR:?…}`, the development compose published on 127.0.0.1 only, placeholders
//!   only in the example Secret;
//! - the image runs as a non-root user with a HEALTHCHECK, and `.dockerignore` keeps `target/`
//!   out of the build context.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use einvoice_worker::config::{check_variable_names, Settings};
use einvoice_worker::domain::command::JobKind;
use einvoice_worker::telemetry::metrics::{Kind, CATALOG, OUTCOMES};
use regex::Regex;
use serde_norway::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The YAML documents of a file (split on `---` lines), parsed, merge keys (`<<`) applied.
/// Documents holding only comments are left out.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    let mut docs = Vec::new();
    for (i, part) in format!("\n{text}").split("\n---").enumerate() {
        // The rest of the separator line (`--- # comment`) is not part of the document.
        let body = if i == 0 { part } else { part.split_once('\n').map_or("", |(_, rest)| rest) };
        if body.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            continue;
        }
        let mut doc: Value =
            serde_norway::from_str(body).unwrap_or_else(|e| panic!("{rel}, document {}: {e}", docs.len() + 1));
        doc.apply_merge().unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
        docs.push(doc);
    }
    assert!(!docs.is_empty(), "{rel} has no YAML document");
    docs
}

fn yaml_doc(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel} should hold one YAML document");
    docs.remove(0)
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn rel_path(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().to_string_lossy().into_owned()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(|s| s.as_slice()).unwrap_or(&[])
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    let Some(m) = v.as_mapping() else { return BTreeMap::new() };
    m.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                other => panic!("{k:?} has a non-scalar value {other:?}"),
            };
            (s(k).to_string(), v)
        })
        .collect()
}

/// The one object of `kind` in a list of documents.
fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| s(&d["kind"]) == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in '{listen}'"))
}

// ---- the Kubernetes manifests -------------------------------------------------------------

const K8S: &str = "deploy/k8s";

struct K8s {
    deployment: Value,
    job: Value,
    configmaps: BTreeMap<String, BTreeMap<String, String>>,
    secret: Value,
    service: Value,
    pdb: Value,
    keda: Vec<Value>,
}

fn k8s() -> K8s {
    let f = |name: &str| format!("{K8S}/{name}");
    let configmaps = yaml_docs(&f("configmap.yaml"))
        .iter()
        .map(|d| {
            assert_eq!(s(&d["kind"]), "ConfigMap", "configmap.yaml holds ConfigMaps only");
            (s(&d["metadata"]["name"]).to_string(), string_map(&d["data"]))
        })
        .collect();
    K8s {
        deployment: yaml_doc(&f("deployment.yaml")),
        job: yaml_doc(&f("migrate-job.yaml")),
        configmaps,
        secret: yaml_doc(&f("secret.example.yaml")),
        service: yaml_doc(&f("service.yaml")),
        pdb: yaml_doc(&f("pdb.yaml")),
        keda: yaml_docs(&f("keda-scaledobject.yaml")),
    }
}

impl K8s {
    fn secret_name(&self) -> &str {
        s(&self.secret["metadata"]["name"])
    }

    fn secret_keys(&self) -> BTreeSet<String> {
        string_map(&self.secret["stringData"]).into_keys().collect()
    }

    /// A container's environment as the kubelet builds it: `envFrom` ConfigMaps, then `env`.
    fn effective_env(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for from in seq(&container["envFrom"]) {
            let name = s(&from["configMapRef"]["name"]);
            if name.is_empty() {
                continue;
            }
            let data = self
                .configmaps
                .get(name)
                .unwrap_or_else(|| panic!("envFrom names ConfigMap {name}, not in configmap.yaml"));
            env.extend(data.clone());
        }
        for e in seq(&container["env"]) {
            assert!(e.get("valueFrom").is_none() || e.get("value").is_none(), "{e:?}");
            env.insert(s(&e["name"]).to_string(), s(&e["value"]).to_string());
        }
        env
    }
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn the_container(workload: &Value) -> &Value {
    let containers = seq(&pod_spec(workload)["containers"]);
    assert_eq!(containers.len(), 1, "one container expected");
    &containers[0]
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

// ---- the compose files --------------------------------------------------------------------

const COMPOSE: &str = "deploy/docker-compose.yml";
const COMPOSE_DEPS: &str = "deploy/docker-compose.deps.yml";

fn compose_services(rel: &str) -> Vec<(String, Value)> {
    let doc = yaml_doc(rel);
    let services = doc["services"].as_mapping().unwrap_or_else(|| panic!("{rel} has no services"));
    services.iter().map(|(k, v)| (s(k).to_string(), v.clone())).collect()
}

/// A compose service's `environment`, in either the mapping or the list form.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let (k, v) = s(i).split_once('=').unwrap_or((s(i), ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        other => string_map(other),
    }
}

// ---- the Dockerfile -------------------------------------------------------------------------

/// The instructions of the Dockerfile's last (runtime) stage, continuation lines joined.
fn runtime_stage() -> Vec<String> {
    let text = read("deploy/Dockerfile").replace("\\\n", " ");
    let lines: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    let last_from = lines.iter().rposition(|l| l.to_ascii_uppercase().starts_with("FROM ")).expect("a FROM");
    lines[last_from..].to_vec()
}

fn dockerfile_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for line in runtime_stage().iter().filter(|l| l.starts_with("ENV ")) {
        for token in line["ENV ".len()..].split_whitespace() {
            let (k, v) = token.split_once('=').unwrap_or_else(|| panic!("use ENV KEY=VALUE: {line}"));
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

fn einvoice_names(env: &BTreeMap<String, String>) -> Vec<&str> {
    env.keys().map(String::as_str).filter(|k| k.starts_with("EINVOICE_")).collect()
}

fn assert_accepted(context: &str, env: &BTreeMap<String, String>) {
    let names = einvoice_names(env);
    if let Err(e) = check_variable_names(names.iter().copied()) {
        panic!("{context}: the worker would refuse to start: {e}\n(variables: {names:?})");
    }
}

// =================================================================================================

#[test]
fn every_deployment_file_parses() {
    let mut files = Vec::new();
    files_under(&root().join("deploy"), &mut files);
    let mut yaml = 0;
    let mut json_files = 0;
    for path in &files {
        let rel = rel_path(path);
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => {
                yaml_docs(&rel);
                yaml += 1;
            }
            Some("json") => {
                json(&rel);
                json_files += 1;
            }
            _ => {}
        }
    }
    assert!(yaml >= 10 && json_files >= 2, "{yaml} YAML and {json_files} JSON files under deploy/: too few");
}

#[test]
fn every_einvoice_variable_is_one_the_worker_accepts() {
    let k = k8s();
    let dep_env = k.effective_env(the_container(&k.deployment));
    for required in ["EINVOICE_DATABASE_URL_FILE", "EINVOICE_AMQP_URL_FILE", "EINVOICE_TOKEN_KEY_FILE"] {
        assert!(dep_env.contains_key(required), "deployment.yaml should set {required}");
    }
    for (name, value) in &dep_env {
        let secretish = ["DATABASE_URL", "AMQP_URL", "TOKEN_KEY", "__PASSWORD", "__CLIENT_SECRET"];
        if secretish.iter().any(|p| name.ends_with(p)) {
            panic!("deployment.yaml sets the secret {name}={value} in plain text; use {name}_FILE");
        }
    }
    assert_accepted("deployment.yaml (with its envFrom ConfigMaps)", &dep_env);
    for (name, data) in &k.configmaps {
        assert_accepted(&format!("configmap.yaml, ConfigMap {name}"), data);
    }
    assert_accepted("migrate-job.yaml", &k.effective_env(the_container(&k.job)));
    for rel in [COMPOSE, COMPOSE_DEPS] {
        for (name, service) in compose_services(rel) {
            assert_accepted(&format!("{rel}, service {name}"), &compose_env(&service));
        }
    }
    assert_accepted("deploy/Dockerfile (ENV)", &dockerfile_env());

    // The negative case, so that an accept-everything check cannot pass this test.
    assert!(check_variable_names(["EINVOICE_HEALTH_LISTNE"]).is_err());
}

#[test]
fn the_kubernetes_config_file_loads_and_matches_the_gstin_secrets() {
    let k = k8s();
    let dep_env = k.effective_env(the_container(&k.deployment));
    let config_path = dep_env.get("EINVOICE_CONFIG").expect("EINVOICE_CONFIG in the Deployment's environment");
    // EINVOICE_CONFIG is a file of a mounted ConfigMap.
    let container = the_container(&k.deployment);
    let volumes = seq(&pod_spec(&k.deployment)["volumes"]);
    let mount = seq(&container["volumeMounts"])
        .iter()
        .find(|m| config_path.starts_with(&format!("{}/", s(&m["mountPath"]))))
        .unwrap_or_else(|| panic!("EINVOICE_CONFIG={config_path} is under no volume mount"));
    let volume = volumes.iter().find(|v| v["name"] == mount["name"]).expect("the mount's volume");
    let cm_name = s(&volume["configMap"]["name"]);
    let key = &config_path[s(&mount["mountPath"]).len() + 1..];
    let toml = k
        .configmaps
        .get(cm_name)
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("EINVOICE_CONFIG={config_path}: ConfigMap {cm_name} has no key {key}"));

    let header = Regex::new(r#"(?m)^\[gstins\."([0-9A-Z]{15})"\]\s*$"#).unwrap();
    let config_gstins: BTreeSet<String> = header.captures_iter(toml).map(|c| c[1].to_string()).collect();
    assert!(!config_gstins.is_empty(), "no [gstins.\"…\"] table in {cm_name}/{key}");
    let secret_key = Regex::new(r"(?m)^\s*(password|client_secret|password_file|client_secret_file)\s*=").unwrap();
    assert!(!secret_key.is_match(toml), "{cm_name}/{key} holds a secret key; secrets come from *_FILE variables");

    // The credentials come from files: fill them in and load the result into the real Settings.
    let with_secrets = header.replace_all(toml, "$0\npassword = \"x\"\nclient_secret = \"x\"");
    Settings::from_toml(&with_secrets).unwrap_or_else(|e| panic!("{cm_name}/{key} does not load: {e}"));

    let per_gstin = Regex::new(r"^EINVOICE_GSTINS__([0-9A-Z]{15})__([A-Z_]+)$").unwrap();
    let mut env_gstins: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in dep_env.keys() {
        if let Some(c) = per_gstin.captures(name) {
            env_gstins.entry(c[1].to_string()).or_default().insert(c[2].to_string());
        }
    }
    assert_eq!(
        env_gstins.keys().cloned().collect::<BTreeSet<_>>(),
        config_gstins,
        "GSTINs in config vs deployment env"
    );
    for (gstin, keys) in &env_gstins {
        for needed in ["PASSWORD_FILE", "CLIENT_SECRET_FILE"] {
            assert!(keys.contains(needed), "deployment.yaml: no EINVOICE_GSTINS__{gstin}__{needed}");
        }
    }
}

#[test]
fn ports_names_and_references_agree() {
    let k = k8s();
    let dep = &k.deployment;
    let container = the_container(dep);
    let env = k.effective_env(container);
    let dep_name = s(&dep["metadata"]["name"]);
    assert_eq!(dep_name, "einvoice-worker");
    assert_eq!(seq(&container["args"]).iter().map(s).collect::<Vec<_>>(), ["run"]);
    assert_eq!(seq(&the_container(&k.job)["args"]).iter().map(s).collect::<Vec<_>>(), ["migrate"]);

    // The health port, everywhere it is named.
    let port = port_of(env.get("EINVOICE_HEALTH_LISTEN").expect("EINVOICE_HEALTH_LISTEN in deployment.yaml"));
    let named: Vec<&Value> = seq(&container["ports"]).iter().filter(|p| s(&p["name"]) == "health").collect();
    assert_eq!(named.len(), 1, "one container port named health");
    assert_eq!(
        named[0]["containerPort"].as_u64(),
        Some(u64::from(port)),
        "containerPort health vs EINVOICE_HEALTH_LISTEN"
    );
    let resolves = |p: &Value| s(p) == "health" || p.as_u64() == Some(u64::from(port));
    for (probe, path) in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(s(&get["path"]), path, "{probe} path");
        assert!(resolves(&get["port"]), "{probe} port {:?} is not the health port {port}", get["port"]);
    }
    let grace = pod_spec(dep)["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(grace > 60, "terminationGracePeriodSeconds {grace}: the worker drains in-flight jobs for up to 60 s");

    let pod_labels = string_map(&dep["spec"]["template"]["metadata"]["labels"]);
    assert!(is_subset(&string_map(&dep["spec"]["selector"]["matchLabels"]), &pod_labels), "Deployment selector");
    let pod_annotations = string_map(&dep["spec"]["template"]["metadata"]["annotations"]);
    assert_eq!(pod_annotations.get("prometheus.io/port").map(String::as_str), Some(port.to_string().as_str()));
    assert_eq!(pod_annotations.get("prometheus.io/path").map(String::as_str), Some("/metrics"));

    let svc = &k.service;
    assert_eq!(s(&svc["spec"]["type"]), "ClusterIP");
    assert!(is_subset(&string_map(&svc["spec"]["selector"]), &pod_labels), "the Service selects the worker pods");
    let metrics: Vec<&Value> = seq(&svc["spec"]["ports"]).iter().filter(|p| s(&p["name"]) == "metrics").collect();
    assert_eq!(metrics.len(), 1, "one Service port named metrics");
    assert!(
        resolves(&metrics[0]["targetPort"]),
        "Service targetPort {:?} is not the health port",
        metrics[0]["targetPort"]
    );
    let svc_annotations = string_map(&svc["metadata"]["annotations"]);
    assert_eq!(svc_annotations.get("prometheus.io/scrape").map(String::as_str), Some("true"));
    assert_eq!(svc_annotations.get("prometheus.io/port").map(String::as_str), Some(port.to_string().as_str()));

    assert!(is_subset(&string_map(&k.pdb["spec"]["selector"]["matchLabels"]), &pod_labels), "PDB selector");
    assert_eq!(k.pdb["spec"]["minAvailable"].as_u64(), Some(1));

    // Secrets: every *_FILE variable names a key of the Secret, mounted where it points.
    let secret = k.secret_name().to_string();
    let keys = k.secret_keys();
    for workload in [&k.deployment, &k.job] {
        let c = the_container(workload);
        let volumes = seq(&pod_spec(workload)["volumes"]);
        let mut secret_dirs = BTreeMap::new();
        for v in volumes.iter().filter(|v| v.get("secret").is_some()) {
            assert_eq!(s(&v["secret"]["secretName"]), secret, "a Secret volume names another Secret");
            let items: BTreeSet<String> = seq(&v["secret"]["items"])
                .iter()
                .map(|i| {
                    assert!(keys.contains(s(&i["key"])), "Secret item {:?} is not in secret.example.yaml", i["key"]);
                    assert_eq!(i["key"], i["path"], "keep the Secret's key names as file names");
                    s(&i["path"]).to_string()
                })
                .collect();
            let files = if items.is_empty() { keys.clone() } else { items };
            for m in seq(&c["volumeMounts"]).iter().filter(|m| m["name"] == v["name"]) {
                secret_dirs.insert(s(&m["mountPath"]).to_string(), files.clone());
            }
        }
        for (name, value) in k.effective_env(c).iter().filter(|(n, _)| n.ends_with("_FILE")) {
            let (dir, file) = value.rsplit_once('/').unwrap_or_else(|| panic!("{name}={value}"));
            let files = secret_dirs.get(dir).unwrap_or_else(|| panic!("{name}={value}: no Secret is mounted at {dir}"));
            assert!(files.contains(file), "{name}={value}: the Secret mounted at {dir} has no key {file}");
        }
        // ConfigMaps: the ones referenced exist, unless the reference is optional.
        for v in volumes.iter().filter(|v| v.get("configMap").is_some()) {
            let name = s(&v["configMap"]["name"]);
            let optional = v["configMap"]["optional"].as_bool() == Some(true);
            assert!(optional || k.configmaps.contains_key(name), "ConfigMap {name} is not in configmap.yaml");
        }
    }

    // KEDA scales the Deployment on the jobs queue, with the broker URL from the Secret.
    let scaled = of_kind(&k.keda, "ScaledObject");
    let auth = of_kind(&k.keda, "TriggerAuthentication");
    assert_eq!(s(&scaled["spec"]["scaleTargetRef"]["name"]), dep_name);
    let triggers = seq(&scaled["spec"]["triggers"]);
    assert_eq!(triggers.len(), 1);
    let t = &triggers[0];
    let namespace = env.get("EINVOICE_NAMESPACE").cloned().unwrap_or_default();
    assert_eq!(s(&t["type"]), "rabbitmq");
    assert_eq!(s(&t["metadata"]["queueName"]), format!("{namespace}einvoice.jobs"));
    assert_eq!(s(&t["metadata"]["mode"]), "QueueLength");
    assert!(
        s(&t["metadata"]["value"]).parse::<f64>().is_ok_and(|v| v > 0.0),
        "trigger value {:?}",
        t["metadata"]["value"]
    );
    assert_eq!(t["authenticationRef"]["name"], auth["metadata"]["name"]);
    let refs = seq(&auth["spec"]["secretTargetRef"]);
    assert!(refs.iter().any(|r| s(&r["parameter"]) == "host"), "the TriggerAuthentication provides host");
    for r in refs {
        assert_eq!(s(&r["name"]), secret);
        assert!(keys.contains(s(&r["key"])), "TriggerAuthentication key {:?} is not in the Secret", r["key"]);
    }
    let max = scaled["spec"]["maxReplicaCount"].as_u64().unwrap_or(100);
    let min = scaled["spec"]["minReplicaCount"].as_u64().unwrap_or(0);
    assert!(min >= 1 && min <= max, "KEDA replicas {min}..{max}: keep at least one (the PDB wants one available)");

    // The delivery limit the workers declare must match the queue's x-delivery-limit.
    let defs = json("deploy/rabbitmq/definitions.json");
    let jobs = defs["queues"].as_array().unwrap().iter().find(|q| q["name"] == "einvoice.jobs").expect("einvoice.jobs");
    let limit = jobs["arguments"]["x-delivery-limit"].as_u64().expect("x-delivery-limit").to_string();
    assert_eq!(env.get("EINVOICE_DELIVERY_LIMIT"), Some(&limit), "k8s EINVOICE_DELIVERY_LIMIT");
    let worker = compose_services(COMPOSE).into_iter().find(|(n, _)| n == "worker").expect("compose service worker").1;
    let worker_env = compose_env(&worker);
    assert_eq!(worker_env.get("EINVOICE_DELIVERY_LIMIT"), Some(&limit), "compose EINVOICE_DELIVERY_LIMIT");

    // Compose and the image use the same health port.
    let compose_port =
        port_of(worker_env.get("EINVOICE_HEALTH_LISTEN").expect("compose worker EINVOICE_HEALTH_LISTEN"));
    let check = format!("{:?}", worker["healthcheck"]["test"]);
    assert!(check.contains(&format!("/dev/tcp/127.0.0.1/{compose_port}")), "compose healthcheck port: {check}");
    let image_port = port_of(dockerfile_env().get("EINVOICE_HEALTH_LISTEN").expect("ENV EINVOICE_HEALTH_LISTEN"));
    let exposed: Vec<String> = runtime_stage()
        .iter()
        .filter(|l| l.starts_with("EXPOSE "))
        .flat_map(|l| {
            l.split_whitespace().skip(1).map(|p| p.split('/').next().unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    assert!(exposed.contains(&image_port.to_string()), "Dockerfile EXPOSE {exposed:?} lacks {image_port}");
    assert_eq!((port, compose_port), (image_port, image_port), "health port: k8s, compose, image");
}

#[test]
fn kustomization_lists_existing_files_and_leaves_out_the_secret_template() {
    let kust = yaml_doc(&format!("{K8S}/kustomization.yaml"));
    let listed: BTreeSet<String> = seq(&kust["resources"]).iter().map(|r| s(r).to_string()).collect();
    for file in &listed {
        assert!(root().join(K8S).join(file).is_file(), "kustomization.yaml lists {file}, which does not exist");
    }
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(root().join(K8S)).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            present.insert(name);
        }
    }
    assert!(!listed.contains("secret.example.yaml"), "an apply would overwrite the real Secret with placeholders");
    present.remove("secret.example.yaml");
    assert_eq!(listed, present, "every manifest (but the Secret template) belongs in kustomization.yaml");
}

// ---- metrics: alerts and dashboard ------------------------------------------------------------

/// One metric selector in a PromQL expression: the name and its label matchers.
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

#[derive(Debug, Default)]
struct Query {
    selectors: Vec<Selector>,
    /// Labels of `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    grouping: BTreeSet<String>,
    aggregates: bool,
}

const PROMQL_KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"];
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const AGGREGATIONS: &[&str] = &["sum", "max", "min", "avg", "count", "topk", "bottomk", "quantile", "stddev", "group"];

/// A small PromQL scanner: enough to find metric names, their matchers and grouping labels.
fn parse_promql(expr: &str) -> Query {
    let chars: Vec<char> = expr.chars().collect();
    let mut q = Query::default();
    let matcher = Regex::new(r#"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*$"#).unwrap();
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_ascii_alphanumeric() || chars[*i] == '_' || chars[*i] == ':') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            // A selector without a name (`{__name__=~…}`) is not used here.
            panic!("a label selector without a metric name in {expr}");
        } else if c == '$' {
            i += 1;
            ident(&mut i);
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let word = ident(&mut i);
            let mut j = i;
            skip_ws(&mut j);
            let next = chars.get(j).copied();
            if AGGREGATIONS.contains(&word.as_str()) {
                // `sum by (x) (…)` as well as `sum(…) by (x)`: never a metric.
                q.aggregates = true;
            } else if GROUPING.contains(&word.as_str()) && next == Some('(') {
                let close = chars[j..].iter().position(|&c| c == ')').expect("closing parenthesis") + j;
                let labels: String = chars[j + 1..close].iter().collect();
                q.grouping.extend(labels.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
                i = close + 1;
            } else if next != Some('(') && !PROMQL_KEYWORDS.contains(&word.as_str()) {
                let mut sel = Selector { name: word, matchers: Vec::new() };
                if next == Some('{') {
                    let close = chars[j..].iter().position(|&c| c == '}').expect("closing brace") + j;
                    let body: String = chars[j + 1..close].iter().collect();
                    for part in body.split(',').filter(|p| !p.trim().is_empty()) {
                        let m = matcher.captures(part).unwrap_or_else(|| panic!("matcher '{part}' in {expr}"));
                        sel.matchers.push((m[1].to_string(), m[2].to_string(), m[3].to_string()));
                    }
                    i = close + 1;
                }
                q.selectors.push(sel);
            }
        } else {
            i += 1;
        }
    }
    q
}

/// Checks every metric and label of a query against the catalogue; returns the labels its
/// result may carry.
fn check_query(context: &str, expr: &str) -> BTreeSet<String> {
    let q = parse_promql(expr);
    assert!(!q.selectors.is_empty(), "{context}: no metric in {expr}");
    let routing_keys: BTreeSet<&str> = JobKind::ALL.iter().map(|k| k.routing_key()).collect();
    let mut all_labels: BTreeSet<String> = BTreeSet::new();
    for sel in &q.selectors {
        let mut labels: BTreeSet<String> = ["job", "instance"].map(String::from).into();
        if sel.name != "up" {
            let (def, suffix) = catalogued(&sel.name)
                .unwrap_or_else(|| panic!("{context}: {} is not a metric the worker exports (CATALOG)", sel.name));
            labels.extend(def.labels.iter().map(|l| l.to_string()));
            if suffix == "_bucket" {
                labels.insert("le".into());
            }
        }
        for (label, op, value) in &sel.matchers {
            assert!(labels.contains(label), "{context}: {} has no label {label} (has {labels:?})", sel.name);
            if op == "=" && label == "outcome" {
                assert!(
                    OUTCOMES.contains(&value.as_str()),
                    "{context}: outcome \"{value}\" is not one of {OUTCOMES:?}"
                );
            }
            if op == "=" && label == "routing_key" {
                assert!(routing_keys.contains(value.as_str()), "{context}: routing key \"{value}\" is not a command");
            }
        }
        all_labels.extend(labels);
    }
    for label in &q.grouping {
        assert!(all_labels.contains(label), "{context}: groups by {label}, which none of its metrics has");
    }
    if !q.grouping.is_empty() {
        q.grouping
    } else if q.aggregates {
        BTreeSet::new()
    } else {
        all_labels
    }
}

/// The catalogue entry of a series name, with the histogram suffix it carried ("" if none).
fn catalogued(name: &str) -> Option<(&'static einvoice_worker::telemetry::metrics::MetricDef, &'static str)> {
    if let Some(def) = CATALOG.iter().find(|d| d.name == name) {
        return Some((def, ""));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(def) = CATALOG.iter().find(|d| d.name == base && matches!(d.kind, Kind::Histogram(_))) {
                return Some((def, suffix));
            }
        }
    }
    None
}

fn template_labels(text: &str, pattern: &Regex) -> BTreeSet<String> {
    pattern.captures_iter(text).map(|c| c[1].to_string()).collect()
}

#[test]
fn the_scanner_finds_metrics_matchers_and_grouping() {
    let q = parse_promql(
        r#"histogram_quantile(0.95, sum by (le, irp) (rate(einvoice_irp_call_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))) > 0.5 and on (irp) up"#,
    );
    let names: Vec<&str> = q.selectors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["einvoice_irp_call_duration_seconds_bucket", "up"]);
    assert_eq!(q.selectors[0].matchers, [("job".into(), "=~".into(), "$job".into())]);
    assert_eq!(q.grouping, ["le", "irp"].map(String::from).into());
    assert!(q.aggregates);
    assert!(catalogued("einvoice_commands_total_count").is_none(), "a counter has no _count series");
}

/// The anchors a Markdown renderer gives the headings of a document (GitHub's rule: lower case,
/// spaces to hyphens, punctuation other than `-` and `_` dropped).
fn markdown_anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let anchor: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        anchors.insert(anchor);
    }
    anchors
}

#[test]
fn alerts_use_exported_metrics_and_say_what_to_do() {
    let rules = yaml_doc("deploy/prometheus/alerts.yml");
    let dollar_label = Regex::new(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)").unwrap();
    let runbook_anchors = markdown_anchors(&read("docs/operations.md"));
    let mut alerts = BTreeSet::new();
    for group in seq(&rules["groups"]) {
        for rule in seq(&group["rules"]) {
            let name = s(&rule["alert"]).to_string();
            assert!(!name.is_empty(), "only alerting rules here: {rule:?}");
            let expr = s(&rule["expr"]);
            let result_labels = check_query(&name, expr);
            let severity = s(&rule["labels"]["severity"]);
            assert!(["critical", "warning", "info"].contains(&severity), "{name}: severity '{severity}'");
            for annotation in ["summary", "description"] {
                let text = s(&rule["annotations"][annotation]);
                assert!(text.len() > 10, "{name}: no {annotation}");
                for label in template_labels(text, &dollar_label) {
                    assert!(
                        result_labels.contains(&label),
                        "{name}: {annotation} uses $labels.{label}, not in its result"
                    );
                }
            }
            let runbook = s(&rule["annotations"]["runbook"]);
            let anchor = runbook.strip_prefix("docs/operations.md#").unwrap_or_else(|| {
                panic!("{name}: the runbook annotation should be docs/operations.md#<entry>, not '{runbook}'")
            });
            assert!(
                runbook_anchors.contains(anchor),
                "{name}: docs/operations.md has no heading for #{anchor} (its anchors: {runbook_anchors:?})"
            );
            assert!(alerts.insert(name.clone()), "{name} twice");
        }
    }
    for expected in [
        "EinvoiceWorkerDown",
        "EinvoiceNoRegistrations",
        "EinvoiceOutboxBacklogGrowing",
        "EinvoiceGstinPaused",
        "EinvoiceJobsInDoubt",
        "EinvoiceErrorBudgetNearBlocking",
        "EinvoiceDeadLetters",
        "EinvoiceAuthFailures",
    ] {
        assert!(alerts.contains(expected), "alerts.yml has no {expected}");
    }
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let path = root().join("deploy/prometheus/alerts.yml");
    match Command::new("promtool").arg("check").arg("rules").arg(&path).output() {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("EINVOICE_SKIP_PROMTOOL").as_deref() == Ok("1") {
                eprintln!("promtool is not installed; skipped (EINVOICE_SKIP_PROMTOOL=1)");
            } else {
                panic!(
                    "promtool is not on PATH: install it (Debian: apt-get install --no-install-recommends prometheus; \
                     .ci/run does) or set EINVOICE_SKIP_PROMTOOL=1 to skip this check"
                );
            }
        }
        Err(e) => panic!("running promtool: {e}"),
    }
}

#[test]
fn the_dashboard_queries_exported_metrics_and_shows_them_all() {
    let dash = json("deploy/grafana/einvoice-worker.json");
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion {}", dash["schemaVersion"]);
    let vars = dash["templating"]["list"].as_array().expect("templating variables");
    let ds = vars.iter().find(|v| v["name"] == "DS_PROMETHEUS").expect("a DS_PROMETHEUS variable");
    assert_eq!((ds["type"].as_str(), ds["query"].as_str()), (Some("datasource"), Some("prometheus")));
    let legend = Regex::new(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}").unwrap();
    let label_values = Regex::new(r"^label_values\((.*),\s*([a-zA-Z_]+)\)$").unwrap();
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let query = v["query"]["query"].as_str().or(v["query"].as_str()).expect("variable query");
        let m = label_values.captures(query).unwrap_or_else(|| panic!("variable query {query}"));
        let labels = check_query(&format!("variable {}", v["name"]), &m[1]);
        assert!(labels.contains(&m[2]), "variable {}: {} has no label {}", v["name"], &m[1], &m[2]);
    }

    let mut panels: Vec<&serde_json::Value> = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dash["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        panels.push(p);
    }
    let mut used = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(titles.insert(title), "two panels titled {title}");
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "panel {title}: datasource");
        let targets =
            p["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("panel {title}: no targets"));
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("panel {title}: a target without expr"));
            let labels = check_query(&format!("panel {title}"), expr);
            for label in template_labels(t["legendFormat"].as_str().unwrap_or(""), &legend) {
                assert!(labels.contains(&label), "panel {title}: legend {{{{{label}}}}} is not a label of {expr}");
            }
            for sel in parse_promql(expr).selectors {
                used.insert(catalogued(&sel.name).map_or(sel.name.clone(), |(d, _)| d.name.to_string()));
            }
        }
    }
    // Every exported metric is on the dashboard (a new metric needs a panel, or a target).
    let missing: Vec<&str> = CATALOG.iter().map(|d| d.name).filter(|n| !used.contains(*n)).collect();
    assert!(missing.is_empty(), "the dashboard shows none of {missing:?}");
}

/// The broker refuses messages far above the worker's command limit, and still takes the largest
/// event a command within that limit can produce (`irn.generated` carries the invoice twice).
#[test]
fn the_broker_caps_message_size_at_four_times_the_command_limit() {
    let conf = read("deploy/rabbitmq/rabbitmq.conf");
    let values: Vec<u64> = conf
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == "max_message_size")
        .map(|(_, v)| v.trim().parse().expect("max_message_size is a number of bytes"))
        .collect();
    assert_eq!(values.len(), 1, "deploy/rabbitmq/rabbitmq.conf sets max_message_size once: {values:?}");
    let command_limit = Settings::from_toml("").unwrap().max_message_bytes as u64;
    assert_eq!(command_limit, 1024 * 1024, "the documented EINVOICE_MAX_MESSAGE_BYTES default");
    assert_eq!(values[0], 4 * command_limit, "max_message_size = 4 × EINVOICE_MAX_MESSAGE_BYTES");
}

// ---- secrets, exposure, image -----------------------------------------------------------------

#[test]
fn no_secret_is_committed_and_dev_ports_stay_on_loopback() {
    // RabbitMQ: no users (and so no password hashes) in the definitions.
    let defs_text = read("deploy/rabbitmq/definitions.json");
    assert!(!defs_text.contains("password"), "deploy/rabbitmq/definitions.json holds a password (hash)");
    let defs = json("deploy/rabbitmq/definitions.json");
    assert!(defs["users"].as_array().is_none_or(|u| u.is_empty()), "users in definitions.json");
    // With load_definitions at boot RabbitMQ does not seed its default user, and the compose
    // stack's only user is that default user.
    let conf = read("deploy/rabbitmq/rabbitmq.conf");
    assert!(
        !conf.lines().any(|l| l.trim_start().starts_with("load_definitions")),
        "rabbitmq.conf loads definitions at boot, so RABBITMQ_DEFAULT_USER would not be created"
    );

    // The full stack: passwords only as required variables; nothing published beyond loopback.
    let text = read(COMPOSE);
    let credentials = Regex::new(r"[a-z][a-z0-9+.-]*://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@").unwrap();
    let mut urls = 0;
    for c in credentials.captures_iter(&text) {
        let pass = &c[1];
        assert!(pass.starts_with("${") && pass.contains(":?"), "{COMPOSE}: a URL with the password '{pass}'");
        urls += 1;
    }
    assert!(urls >= 2, "{COMPOSE}: expected the AMQP and PostgreSQL URLs with credentials, found {urls}");
    let variable = Regex::new(r"\$\{([A-Za-z0-9_]+)(:?[-?+]?)([^}]*)\}").unwrap();
    for c in variable.captures_iter(&text) {
        let secretish = ["PASS", "SECRET", "TOKEN_KEY"].iter().any(|w| c[1].contains(w));
        assert!(
            !secretish || &c[2] == ":?",
            "{COMPOSE}: ${{{}{}{}}} must be required (${{VAR:?message}})",
            &c[1],
            &c[2],
            &c[3]
        );
    }
    for (name, service) in compose_services(COMPOSE) {
        for (key, value) in compose_env(&service) {
            let secretish = ["PASS", "SECRET", "TOKEN_KEY"].iter().any(|w| key.contains(w)) && !key.ends_with("_FILE");
            assert!(
                !secretish || (value.starts_with("${") && value.contains(":?")),
                "{COMPOSE}, {name}: {key} is set to a literal"
            );
        }
    }
    assert!(!text.contains("POSTGRES_HOST_AUTH_METHOD"), "{COMPOSE}: no trust authentication in the full stack");
    assert!(!text.contains("dev-loopback"), "{COMPOSE}: the guest-from-anywhere file is for the dev stack only");
    let rabbit = compose_services(COMPOSE).into_iter().find(|(n, _)| n == "rabbitmq").expect("rabbitmq").1;
    let rabbit_env = compose_env(&rabbit);
    assert_eq!(rabbit_env.get("RABBITMQ_DEFAULT_USER").map(String::as_str), Some("einvoice"));
    assert!(rabbit_env.contains_key("RABBITMQ_DEFAULT_PASS"));
    // The retry tiers' dead-letter forwards are re-sent after 5 s, not 3 minutes (the fault
    // tests start their brokers with the same file and check it is in effect).
    assert!(
        seq(&rabbit["volumes"]).iter().any(|v| s(v) == "./rabbitmq/advanced.config:/etc/rabbitmq/advanced.config:ro"),
        "{COMPOSE}: rabbitmq mounts advanced.config"
    );

    for rel in [COMPOSE, COMPOSE_DEPS] {
        let mut published = 0;
        for (name, service) in compose_services(rel) {
            for p in seq(&service["ports"]) {
                let loopback = match p {
                    Value::String(spec) => spec.starts_with("127.0.0.1:"),
                    Value::Mapping(_) => s(&p["host_ip"]) == "127.0.0.1",
                    other => panic!("{rel}, {name}: port {other:?}"),
                };
                assert!(loopback, "{rel}, {name}: port {p:?} is published beyond 127.0.0.1");
                published += 1;
            }
        }
        assert!(published > 0, "{rel} publishes no port");
    }
    let deps = compose_services(COMPOSE_DEPS);
    let published: BTreeSet<String> = deps
        .iter()
        .flat_map(|(_, svc)| seq(&svc["ports"]).iter().map(|p| s(p).rsplit(':').next().unwrap().to_string()))
        .collect();
    assert_eq!(published, ["5432", "5672", "15672"].map(String::from).into(), "{COMPOSE_DEPS} ports");
    let postgres = &deps.iter().find(|(n, _)| n == "postgres").expect("postgres").1;
    assert_eq!(compose_env(postgres).get("POSTGRES_HOST_AUTH_METHOD").map(String::as_str), Some("trust"));
    assert!(read("deploy/rabbitmq/dev-loopback.conf").lines().any(|l| l.trim() == "loopback_users = none"));

    // The Secret template: placeholders only, as text (base64 `data` could hide a real value).
    let k = k8s();
    assert!(k.secret["data"].is_null(), "secret.example.yaml: use stringData with placeholders, not data");
    let values = string_map(&k.secret["stringData"]);
    assert!(!values.is_empty());
    for (key, value) in values {
        let placeholder = value.contains("CHANGE_ME") || (value.starts_with('<') && value.ends_with('>'));
        assert!(placeholder, "secret.example.yaml: {key} is not a placeholder (CHANGE_ME or <…>)");
    }

    // No private key anywhere under deploy/.
    let mut files = Vec::new();
    files_under(&root().join("deploy"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(!text.contains("PRIVATE KEY-----"), "{} holds a private key", rel_path(&f));
    }
}

#[test]
fn the_image_runs_as_non_root_with_a_healthcheck_and_a_small_context() {
    let stage = runtime_stage();
    let user = stage.iter().rev().find(|l| l.starts_with("USER ")).expect("a USER in the runtime stage");
    let name = user["USER ".len()..].trim().split(':').next().unwrap();
    assert!(!["root", "0", ""].contains(&name), "the runtime stage runs as '{name}'");
    let health = stage.iter().find(|l| l.starts_with("HEALTHCHECK ")).expect("a HEALTHCHECK in the runtime stage");
    assert!(!health.contains(" NONE") && health.contains("/healthz"), "{health}");

    let ignore = read(".dockerignore");
    let entries: BTreeSet<&str> =
        ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(["target", "target/", "/target", "/target/"].iter().any(|t| entries.contains(t)), ".dockerignore: target");
    assert!([".git", ".git/"].iter().any(|t| entries.contains(t)), ".dockerignore: .git");
    // The build needs the sources, the migrations and the test data src/ embeds.
    for needed in ["src", "migrations", "tests", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !entries.contains(needed) && !entries.contains(format!("{needed}/").as_str()),
            ".dockerignore drops {needed}"
        );
    }
}
