//! `einvoice-worker demo`: the whole pipeline on one machine, against the built-in simulator.
//!
//! It applies migrations to its own database, starts the simulator on a loopback port, runs a
//! worker under its own namespace (`demo.`), publishes the sample invoices dated today plus a
//! re-send and a broken invoice, and prints one line per result.
use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, QueuePurgeOptions};
use lapin::types::ShortString;
use serde_json::{json, Value};

use crate::amqp;
use crate::config::{ProviderKind, Settings};
use crate::runtime::worker;
use crate::samples::{self, SAMPLES};
use crate::sim::{self, Simulator};

pub struct DemoOptions {
    pub provider: ProviderKind,
    pub amqp_url: String,
    pub database_url: String,
}

#[derive(Debug, Default)]
pub struct DemoSummary {
    pub generated: usize,
    pub rejected: usize,
    pub other: usize,
    pub missing: usize,
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    let sim = Simulator::start("127.0.0.1:0").await.context("starting the IRP simulator")?;
    println!("IRP simulator listening on {} ({} protocol)", sim.base_url(), opts.provider.as_str());
    let mut toml = format!(
        "amqp_url = \"{}\"\ndatabase_url = \"{}\"\nnamespace = \"demo.\"\nprefetch = 16\nretry_min_delay_ms = 200\nretry_max_delay_ms = 2000\n",
        opts.amqp_url, opts.database_url
    );
    for gstin in ["29AAGCP4821K1Z3", "27AAKFU7303M1ZP"] {
        toml.push_str(&sim::gstin_toml(&sim.base_url(), opts.provider, gstin));
    }
    let settings = Settings::from_toml(&toml)?;
    let db = worker::prepare_db(&settings).await?;
    // The demo owns its database: start from a clean slate so every run registers afresh.
    db.reset_all().await?;

    // The URL may carry a password: name only host and port (the error does).
    let conn = amqp::connect(&opts.amqp_url, "einvoice-demo").await?;
    let ch = amqp::confirm_channel(&conn).await?;
    let topology = amqp::Topology::new(&settings);
    topology.declare(&conn).await?;
    ch.queue_purge(topology.jobs.as_str().into(), QueuePurgeOptions::default()).await?;
    let (reply_queue, mut consumer) = amqp::reply_queue(&ch, "demo", false).await?;

    let handle = worker::start(settings).await?;

    // What we send: every sample, the first one again (answered from the store), one broken invoice.
    let mut sends: Vec<(String, String, Value)> = Vec::new();
    for (name, _) in SAMPLES {
        let inv = samples::stamped(name, None);
        sends.push((
            name.to_string(),
            "irn.generate".into(),
            json!({"gstin": samples::seller(&inv), "invoice": inv, "request_id": name}),
        ));
    }
    let again = samples::stamped("b2b-intra-goods", None);
    sends.push((
        "b2b-intra-goods (sent again)".into(),
        "irn.generate".into(),
        json!({"gstin": samples::seller(&again), "invoice": again}),
    ));
    let mut broken = samples::stamped("b2b-intra-goods", Some("SMP/BAD1"));
    broken["BuyerDtls"]["Gstin"] = json!("29AADCT5519H1Z5");
    broken["ItemList"][0]["HsnCd"] = json!("7307");
    broken["ItemList"][0]["AssAmt"] = json!(99999.0);
    sends.push((
        "broken invoice".into(),
        "irn.generate".into(),
        json!({"gstin": samples::seller(&broken), "invoice": broken}),
    ));

    let mut pending: HashMap<String, String> = HashMap::new();
    let mut summary = DemoSummary::default();
    for (i, (label, rk, body)) in sends.iter().enumerate() {
        let corr = format!("demo-{i}");
        // Send the re-send only after the original has its answer, to show the stored replay.
        if label.contains("sent again") {
            wait_for(&mut consumer, &mut pending, &mut summary, 1, Duration::from_secs(60)).await;
        }
        let props = amqp::json_props()
            .with_correlation_id(ShortString::from(corr.as_str()))
            .with_reply_to(ShortString::from(reply_queue.as_str()))
            .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string()));
        amqp::publish_confirmed(&ch, &topology.commands, rk, body.to_string().as_bytes(), props, true).await?;
        pending.insert(corr, label.clone());
    }
    wait_for(&mut consumer, &mut pending, &mut summary, 0, Duration::from_secs(120)).await;
    summary.missing = pending.len();

    // E-way bills: dispatch one invoice (an e-way bill from its IRN), change its vehicle, then
    // cancel the invoice together with its e-way bill (e-way bill first, as the IRP requires).
    let goods = samples::stamped("b2b-intra-goods", None);
    let gstin = samples::seller(&goods);
    let document = json!({"doc_type": "INV", "doc_number": goods["DocDtls"]["No"], "doc_date": goods["DocDtls"]["Dt"]});
    let steps = [
        (
            "dispatch: e-way bill",
            "ewaybill.generate",
            json!({"gstin": gstin, "document": document, "transport": {"Distance": 120, "TransMode": "1", "VehNo": "KA01AB1234", "VehType": "R"}}),
            "ewaybill.generated",
        ),
        (
            "new vehicle (breakdown)",
            "ewaybill.update_vehicle",
            json!({"gstin": gstin, "irn": Value::Null, "vehicle_no": "KA05CD5678", "from_place": "Tumakuru", "from_state": "29", "reason": "1", "remark": "Breakdown", "trans_mode": "1"}),
            "ewaybill.vehicle_updated",
        ),
        (
            "cancel invoice + e-way bill",
            "irn.cancel",
            json!({"gstin": gstin, "document": document, "reason": "3", "remark": "Order cancelled", "cancel_ewaybill": true}),
            "irn.cancelled",
        ),
    ];
    let mut irn = Value::Null;
    for (i, (label, rk, mut body, last)) in steps.into_iter().enumerate() {
        if body.get("irn").is_some_and(Value::is_null) {
            body["irn"] = irn.clone();
        }
        let corr = format!("demo-ewb-{i}");
        let props = amqp::json_props()
            .with_correlation_id(ShortString::from(corr.as_str()))
            .with_reply_to(ShortString::from(reply_queue.as_str()))
            .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string()));
        amqp::publish_confirmed(&ch, &topology.commands, rk, body.to_string().as_bytes(), props, true).await?;
        // One command may answer with several events (the cancel: e-way bill, then IRN).
        loop {
            let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(60), consumer.next()).await else {
                summary.missing += 1;
                println!("       no answer for: {label}");
                break;
            };
            let _ = d.ack(BasicAckOptions::default()).await;
            let ev: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
            if let Some(v) = ev["data"]["irn"].as_str() {
                irn = json!(v);
            }
            print_line(label, &ev, &mut summary);
            let ty = ev["event_type"].as_str().unwrap_or("");
            if ty == last || ty.ends_with(".rejected") {
                break;
            }
        }
    }
    let stats = sim.core.stats();
    handle.stop().await?;
    let _ = conn.close(200, "demo done".into()).await;
    println!(
        "\nsummary: {} generated, {} rejected, {} other, {} unanswered; the simulator saw {} generate calls and {} auth calls",
        summary.generated, summary.rejected, summary.other, summary.missing, stats.generate_calls, stats.auth_calls
    );
    for label in pending.values() {
        println!("  no answer for: {label}");
    }
    Ok(summary)
}

/// Read replies until at most `leave` are pending or the time is up; print one line each.
async fn wait_for(
    consumer: &mut lapin::Consumer,
    pending: &mut HashMap<String, String>,
    summary: &mut DemoSummary,
    leave: usize,
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while pending.len() > leave {
        let Ok(Some(Ok(d))) = tokio::time::timeout_at(deadline, consumer.next()).await else {
            break;
        };
        let _ = d.ack(BasicAckOptions::default()).await;
        let corr = d.properties.correlation_id().as_ref().map(|c| c.to_string()).unwrap_or_default();
        let Some(label) = pending.remove(&corr) else {
            continue;
        };
        let ev: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
        print_line(&label, &ev, summary);
    }
}

fn print_line(label: &str, ev: &Value, summary: &mut DemoSummary) {
    let ty = ev["event_type"].as_str().unwrap_or("?");
    let doc = format!(
        "{} {}",
        ev["document"]["doc_type"].as_str().unwrap_or(""),
        ev["document"]["doc_number"].as_str().unwrap_or("")
    );
    match ty {
        "irn.generated" => {
            summary.generated += 1;
            let d = &ev["data"];
            let flags = match (d["duplicate"].as_bool(), d["replayed"].as_bool()) {
                (_, Some(true)) => " (from the store, no IRP call)",
                (Some(true), _) => " (duplicate resolved)",
                _ => "",
            };
            println!(
                "OK   {label:<30} {doc:<14} IRN {}  AckNo {}{}{flags}",
                d["irn"].as_str().unwrap_or("?"),
                d["ack_no"].as_str().unwrap_or("?"),
                d["ewb_no"].as_str().map(|e| format!("  EWB {e}")).unwrap_or_default()
            );
        }
        "ewaybill.generated" => {
            summary.other += 1;
            let d = &ev["data"];
            println!(
                "EWB  {label:<30} {doc:<14} e-way bill {} valid till {}{}",
                d["ewb_no"].as_str().unwrap_or("?"),
                d["ewb_valid_till"].as_str().unwrap_or("?"),
                if d["already_existed"] == json!(true) { " (already existed)" } else { "" }
            );
        }
        "ewaybill.vehicle_updated" => {
            summary.other += 1;
            let d = &ev["data"];
            println!(
                "EWB  {label:<30} {doc:<14} e-way bill {} now on vehicle {} (at {})",
                d["ewb_no"].as_str().unwrap_or("?"),
                d["vehicle_no"].as_str().unwrap_or("?"),
                d["vehicle_updated_at"].as_str().unwrap_or("?")
            );
        }
        "ewaybill.cancelled" | "irn.cancelled" => {
            summary.other += 1;
            let d = &ev["data"];
            let what = d["ewb_no"].as_str().filter(|_| ty == "ewaybill.cancelled").map(|n| format!("e-way bill {n}"));
            println!(
                "CNL  {label:<30} {doc:<14} {} cancelled at {}",
                what.unwrap_or_else(|| format!("IRN {}", d["irn"].as_str().unwrap_or("?"))),
                d["cancel_date"].as_str().unwrap_or("?")
            );
        }
        t if t.ends_with(".rejected") => {
            summary.rejected += 1;
            println!("REJ  {label:<30} {t}:");
            for e in ev["data"]["errors"].as_array().into_iter().flatten() {
                println!(
                    "       {} [{}] {}",
                    e["path"].as_str().unwrap_or(""),
                    e["code"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                );
            }
        }
        other => {
            summary.other += 1;
            println!("??   {label:<30} {other}");
        }
    }
}
