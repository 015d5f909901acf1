//! `publish`: build one command from flags, check it as the worker will, publish it to
//! `einvoice.commands` and, with `--wait`, print the events that answer it until the final one.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

use super::exit;
use crate::amqp;
use crate::domain::command::batch::BatchKind;
use crate::domain::command::{parse_command, JobKind};
use crate::domain::text::escape_controls;

#[derive(clap::Args)]
pub struct PublishArgs {
    #[arg(help = routing_keys_help())]
    routing_key: String,
    #[arg(long)]
    gstin: Option<String>,
    /// irn.generate: the invoice JSON file (NIC schema v1.1); irn.generate_batch: a JSON array of invoices;
    /// the other *_batch commands: a JSON array of their items (each a member command's body);
    /// b2c.qr: the B2C invoice (DocDtls, ValDtls).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Any *_batch command: the batch's id (a re-sent batch with the same id is not fanned out again).
    #[arg(long)]
    batch_id: Option<String>,
    /// job.status: the job's id (else --request-id, or --gstin with --doc-number, --doc-date, --doc-type).
    #[arg(long)]
    job_id: Option<String>,
    #[arg(long)]
    irn: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    remark: Option<String>,
    #[arg(long)]
    doc_type: Option<String>,
    #[arg(long)]
    doc_number: Option<String>,
    /// dd/MM/yyyy
    #[arg(long)]
    doc_date: Option<String>,
    #[arg(long)]
    target_gstin: Option<String>,
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    /// ewaybill.update_vehicle / ewaybill.cancel: the e-way bill number (else --irn).
    #[arg(long)]
    ewb_no: Option<String>,
    /// irn.cancel: cancel the IRN's active e-way bill first.
    #[arg(long)]
    cancel_ewaybill: bool,
    /// ewaybill.generate: the transport JSON, e.g. '{"Distance":120,"TransMode":"1","VehNo":"KA01AB1234"}'.
    #[arg(long)]
    transport: Option<String>,
    /// ewaybill.generate without an IRN: the e-way bill document JSON (`GENEWAYBILL` Part A,
    /// NIC's field names), sent as `ewaybill` instead of --irn / --doc-*.
    #[arg(long)]
    ewaybill: Option<String>,
    /// ewaybill.update_vehicle: the new vehicle and where it takes over.
    #[arg(long)]
    vehicle_no: Option<String>,
    #[arg(long)]
    from_place: Option<String>,
    #[arg(long)]
    from_state: Option<String>,
    /// 1 Road, 2 Rail, 3 Air, 4 Ship.
    #[arg(long)]
    trans_mode: Option<String>,
    #[arg(long)]
    trans_doc_no: Option<String>,
    #[arg(long)]
    trans_doc_date: Option<String>,
    /// R (regular) or O (over-dimensional cargo).
    #[arg(long)]
    vehicle_type: Option<String>,
    /// `ewaybill.extend`: M (in movement) or T (in transit).
    #[arg(long)]
    consignment_status: Option<String>,
    /// `ewaybill.extend` in transit: R (road), W (warehouse) or O (others).
    #[arg(long)]
    transit_type: Option<String>,
    /// `ewaybill.extend` in transit: where the goods wait (the address's first line).
    #[arg(long)]
    transit_address: Option<String>,
    #[arg(long)]
    from_pincode: Option<String>,
    /// `ewaybill.extend`: km still to go (not more than the e-way bill's distance).
    #[arg(long)]
    remaining_distance: Option<u64>,
    /// `ewaybill.update_transporter`: the new transporter's GSTIN or TRANSIN (88…).
    #[arg(long)]
    transporter_id: Option<String>,
    #[arg(long)]
    request_id: Option<String>,
    /// Wait up to this many seconds for the command's final answer, print every event that
    /// answers it, and exit with the outcome's code (see below).
    #[arg(long)]
    wait: Option<u64>,
}

/// The help of the routing key argument: every kind's routing key, `a | b | …`.
fn routing_keys_help() -> String {
    JobKind::ALL.map(JobKind::routing_key).join(" | ")
}

fn publish_body(a: &PublishArgs) -> anyhow::Result<(JobKind, Value)> {
    let kind = JobKind::from_routing_key(&a.routing_key)
        .with_context(|| format!("unknown routing key '{}'", a.routing_key))?;
    let document = || {
        a.doc_number.as_ref().map(|n| json!({"doc_type": a.doc_type.clone().unwrap_or_else(|| "INV".into()), "doc_number": n, "doc_date": a.doc_date}))
    };
    let mut body = match kind {
        JobKind::IrnGenerate => {
            let file = a.file.as_ref().context("irn.generate needs --file <invoice.json>")?;
            let invoice: Value =
                serde_json::from_str(&std::fs::read_to_string(file)?).context("the invoice file is not JSON")?;
            let gstin = a
                .gstin
                .clone()
                .or_else(|| invoice.pointer("/SellerDtls/Gstin").and_then(Value::as_str).map(str::to_string));
            json!({"gstin": gstin, "invoice": invoice})
        }
        JobKind::IrnCancel => {
            let mut b =
                json!({"gstin": a.gstin, "irn": a.irn, "document": document(), "reason": a.reason, "remark": a.remark});
            if a.cancel_ewaybill {
                b["cancel_ewaybill"] = json!(true);
            }
            b
        }
        JobKind::IrnGet => json!({"gstin": a.gstin, "irn": a.irn, "document": document()}),
        JobKind::GstinDetails => json!({"gstin": a.gstin, "target_gstin": a.target_gstin}),
        JobKind::EwaybillGet => json!({"gstin": a.gstin, "irn": a.irn}),
        JobKind::B2cQr => {
            // With --file, the B2C invoice: the worker makes the UPI QR itself.
            let invoice = match &a.file {
                Some(f) => Some(
                    serde_json::from_str::<Value>(&std::fs::read_to_string(f)?)
                        .context("the invoice file is not JSON")?,
                ),
                None => None,
            };
            json!({"gstin": a.gstin, "document": document(), "invoice": invoice})
        }
        JobKind::ReconcileRejected => json!({"gstin": a.gstin, "from": a.from, "to": a.to}),
        JobKind::EwaybillGenerate => {
            let transport: Value = match &a.transport {
                Some(t) => serde_json::from_str(t).context("--transport is not JSON")?,
                None => Value::Null,
            };
            match &a.ewaybill {
                Some(e) => {
                    let doc: Value = serde_json::from_str(e).context("--ewaybill is not JSON")?;
                    json!({"gstin": a.gstin, "ewaybill": doc, "transport": transport})
                }
                None => json!({"gstin": a.gstin, "irn": a.irn, "document": document(), "transport": transport}),
            }
        }
        JobKind::EwaybillUpdateVehicle => json!({
            "gstin": a.gstin, "ewb_no": a.ewb_no, "irn": a.irn, "vehicle_no": a.vehicle_no,
            "from_place": a.from_place, "from_state": a.from_state, "reason": a.reason, "remark": a.remark,
            "trans_mode": a.trans_mode, "trans_doc_no": a.trans_doc_no, "trans_doc_date": a.trans_doc_date,
            "vehicle_type": a.vehicle_type,
        }),
        JobKind::EwaybillCancel => {
            json!({"gstin": a.gstin, "ewb_no": a.ewb_no, "irn": a.irn, "reason": a.reason, "remark": a.remark})
        }
        JobKind::EwaybillExtend => {
            let mut b = json!({
                "gstin": a.gstin, "ewb_no": a.ewb_no, "irn": a.irn, "consignment_status": a.consignment_status,
                "transit_type": a.transit_type, "from_place": a.from_place, "from_state": a.from_state,
                "from_pincode": a.from_pincode, "remaining_distance": a.remaining_distance, "reason": a.reason,
                "remark": a.remark, "trans_mode": a.trans_mode, "vehicle_no": a.vehicle_no,
                "trans_doc_no": a.trans_doc_no, "trans_doc_date": a.trans_doc_date,
            });
            if let Some(line1) = &a.transit_address {
                b["transit_address"] = json!({"line1": line1});
            }
            b
        }
        JobKind::EwaybillUpdateTransporter => {
            json!({"gstin": a.gstin, "ewb_no": a.ewb_no, "irn": a.irn, "transporter_id": a.transporter_id})
        }
        // --request-id alone names the job by the request id of an earlier command.
        JobKind::JobStatus => json!({"gstin": a.gstin, "job_id": a.job_id, "document": document()}),
        JobKind::IrnGenerateBatch => {
            let file = a.file.as_ref().context("irn.generate_batch needs --file <invoices.json> (a JSON array)")?;
            let invoices: Value =
                serde_json::from_str(&std::fs::read_to_string(file)?).context("the invoices file is not JSON")?;
            let gstin = a
                .gstin
                .clone()
                .or_else(|| invoices.pointer("/0/SellerDtls/Gstin").and_then(Value::as_str).map(str::to_string));
            json!({"gstin": gstin, "invoices": invoices, "batch_id": a.batch_id})
        }
        JobKind::EinvoiceVerify => {
            let file = a.file.as_ref().context("einvoice.verify needs --file <QR JWT, signed JSON or QR image>")?;
            let mut v = super::verify::command_body(file)?;
            v["gstin"] = json!(a.gstin);
            v
        }
        // Every other batch: --file is the JSON array of its items, each the body of one member.
        JobKind::EinvoiceVerifyBatch
        | JobKind::IrnCancelBatch
        | JobKind::EwaybillGenerateBatch
        | JobKind::EwaybillUpdateVehicleBatch
        | JobKind::EwaybillExtendBatch
        | JobKind::EwaybillCancelBatch => {
            let spec = BatchKind::of_batch(kind).expect("a batch kind is in BATCHES");
            let (rk, items) = (kind.routing_key(), spec.items);
            let file = a.file.as_ref().with_context(|| format!("{rk} needs --file <{items}.json> (a JSON array)"))?;
            let list: Value = serde_json::from_str(&std::fs::read_to_string(file)?)
                .with_context(|| format!("the {items} file is not JSON"))?;
            let mut b = json!({"gstin": a.gstin, "batch_id": a.batch_id});
            b[items] = list;
            b
        }
    };
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
        o.insert("schema_version".into(), json!(crate::domain::event::SCHEMA_VERSION));
        if let Some(r) = &a.request_id {
            o.insert("request_id".into(), json!(r));
        }
    }
    Ok((kind, body))
}

/// How an event answers the command `kind` for `publish --wait`: `Some(exit code)` when it is the
/// final answer, `None` for events that are not (`irn.in_doubt`, `gstin.paused`, the e-way bill
/// step of a cancel).
fn final_outcome(kind: JobKind, event_type: &str) -> Option<u8> {
    if event_type == kind.success_event() || other_success_event(kind) == Some(event_type) {
        Some(0)
    } else if event_type == kind.rejected_event() || event_type == "command.rejected" {
        Some(exit::REJECTED)
    } else if event_type == kind.failed_event() {
        Some(exit::FAILED)
    } else {
        None
    }
}

/// The event besides [`JobKind::success_event`] that answers `kind` successfully: a generate
/// whose document already has an IRN is answered with the IRN's details (as `irn.get` is), a
/// complete batch sent again with its `batch.completed`.
/// No wildcard arm, so that a new kind has to be placed here.
fn other_success_event(kind: JobKind) -> Option<&'static str> {
    match kind {
        JobKind::IrnGenerate => Some(JobKind::IrnGet.success_event()),
        JobKind::IrnCancel
        | JobKind::IrnGet
        | JobKind::GstinDetails
        | JobKind::EwaybillGet
        | JobKind::B2cQr
        | JobKind::ReconcileRejected
        | JobKind::EwaybillGenerate
        | JobKind::EwaybillUpdateVehicle
        | JobKind::EwaybillCancel
        | JobKind::EwaybillExtend
        | JobKind::EwaybillUpdateTransporter
        | JobKind::JobStatus
        | JobKind::EinvoiceVerify => None,
        // A complete batch sent again is answered with its stored summary alone.
        JobKind::IrnGenerateBatch
        | JobKind::EinvoiceVerifyBatch
        | JobKind::IrnCancelBatch
        | JobKind::EwaybillGenerateBatch
        | JobKind::EwaybillUpdateVehicleBatch
        | JobKind::EwaybillExtendBatch
        | JobKind::EwaybillCancelBatch => Some("batch.completed"),
    }
}

/// `publish`; past its own checks, what can fail is the broker (declaring, publishing, the reply
/// queue), so an error there is printed and the exit code is [`exit::UNREACHABLE`].
pub async fn run(a: PublishArgs) -> ExitCode {
    publish(a).await.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(exit::UNREACHABLE)
    })
}

async fn publish(a: PublishArgs) -> anyhow::Result<ExitCode> {
    let settings = match super::load_settings() {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let (kind, body) = match publish_body(&a) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    // Check it the way the worker will, so a typo is caught here rather than as an event.
    let bytes = serde_json::to_vec(&body)?;
    if let Err(rej) = parse_command(&a.routing_key, &bytes, &settings.parse_options()) {
        for p in &rej.problems {
            eprintln!("{} [{}] {}", escape_controls(&p.path), p.code, escape_controls(&p.message));
        }
        eprintln!("error: the command would be rejected; nothing was published");
        return Ok(ExitCode::from(exit::REJECTED));
    }
    let conn = match amqp::connect(&settings.amqp_url, "einvoice-publish").await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(exit::UNREACHABLE));
        }
    };
    let ch = amqp::confirm_channel(&conn).await?;
    let topology = amqp::Topology::new(&settings);
    topology.declare(&conn).await?;
    let corr = uuid::Uuid::new_v4().to_string();
    let mut props = amqp::json_props()
        .with_correlation_id(corr.as_str().into())
        .with_message_id(uuid::Uuid::new_v4().to_string().into());
    let mut consumer = None;
    if a.wait.is_some() {
        let (queue, c) = amqp::reply_queue(&ch, "publish", true).await?;
        props = props.with_reply_to(queue.as_str().into());
        consumer = Some(c);
    }
    amqp::publish_confirmed(&ch, &topology.commands, &a.routing_key, &bytes, props, true).await?;
    println!("published {} (correlation id {corr})", a.routing_key);
    let (Some(secs), Some(mut c)) = (a.wait, consumer) else {
        return Ok(ExitCode::SUCCESS);
    };
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    loop {
        let d = match tokio::time::timeout_at(deadline, c.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => anyhow::bail!("the reply queue failed: {e}"),
            Ok(None) | Err(_) => break,
        };
        let event: Value = serde_json::from_slice(&d.data)?;
        println!("{}", serde_json::to_string_pretty(&event)?);
        let event_type = event["event_type"].as_str().unwrap_or_default().to_string();
        if let Some(code) = final_outcome(kind, &event_type) {
            return Ok(ExitCode::from(code));
        }
        last = Some(event_type);
    }
    match last {
        Some(t) => eprintln!("error: no final answer within {secs} s (last event: {t})"),
        None => eprintln!("error: no answer within {secs} s (is a worker running?)"),
    }
    Ok(ExitCode::from(exit::TIMED_OUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_ends_on_its_success_rejected_and_failed_events_only() {
        for kind in JobKind::ALL {
            assert_eq!(final_outcome(kind, kind.success_event()), Some(0), "{kind:?}");
            assert_eq!(final_outcome(kind, kind.rejected_event()), Some(exit::REJECTED), "{kind:?}");
            assert_eq!(final_outcome(kind, "command.rejected"), Some(exit::REJECTED), "{kind:?}");
            assert_eq!(final_outcome(kind, kind.failed_event()), Some(exit::FAILED), "{kind:?}");
            assert_eq!(final_outcome(kind, "irn.in_doubt"), None, "{kind:?}");
            assert_eq!(final_outcome(kind, "gstin.paused"), None, "{kind:?}");
        }
        assert_eq!(final_outcome(JobKind::IrnGenerate, "irn.details"), Some(0));
        assert_eq!(final_outcome(JobKind::IrnGenerateBatch, "batch.completed"), Some(0));
    }

    #[test]
    fn the_routing_key_help_names_every_kind() {
        let help = routing_keys_help();
        for kind in JobKind::ALL {
            assert!(help.split(" | ").any(|k| k == kind.routing_key()), "{help}");
        }
    }
}
