//! The `einvoice-worker` binary: a thin CLI over the library. `anyhow` lives only here.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use einvoice_worker::config::{ProviderKind, Settings, DEFAULT_AMQP_URL};
use einvoice_worker::domain::command::{parse_command, JobKind};
use einvoice_worker::domain::invoice::{validate_invoice, ValidationOptions};
use einvoice_worker::operator::cli as ops;
use einvoice_worker::{amqp, bench, demo, runtime, sim, telemetry};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "einvoice-worker", version, about = "Registers GST e-invoices with the IRP from RabbitMQ jobs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Provider {
    Whitebooks,
    Nic,
}

impl From<Provider> for ProviderKind {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Whitebooks => ProviderKind::Whitebooks,
            Provider::Nic => ProviderKind::Nic,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the worker (applies migrations first) until Ctrl-C / SIGTERM.
    #[command(long_about = "Run the worker (applies migrations first) until Ctrl-C / SIGTERM.\n\n\
Configuration, later sources overriding earlier ones:\n\
  1. built-in defaults;\n\
  2. the TOML file named by EINVOICE_CONFIG (see deploy/config.example.toml);\n\
  3. environment variables EINVOICE_<SETTING>, per GSTIN EINVOICE_GSTINS__<GSTIN>__<KEY>;\n\
     any of them as <NAME>_FILE to read the value from a file (Kubernetes/Docker secrets).\n\
An unknown EINVOICE_* variable stops the start. RUST_LOG filters the logs; the README lists every setting.")]
    Run,
    /// Operator: list, show and retry jobs (failed, in doubt, ...).
    Jobs {
        #[command(subcommand)]
        cmd: ops::JobsCmd,
    },
    /// Operator: inspect and replay dead-lettered messages.
    Dead {
        #[command(subcommand)]
        cmd: ops::DeadCmd,
    },
    /// Operator: paused GSTINs.
    Gstin {
        #[command(subcommand)]
        cmd: ops::GstinCmd,
    },
    /// Operator: delete published events and finished jobs past their retention now.
    Prune {
        #[command(flatten)]
        out: ops::Output,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Run the built-in IRP simulator (Whitebooks and NIC protocols) in the foreground.
    Sim {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
    /// The whole pipeline against the built-in simulator: publishes the sample invoices and prints the results.
    Demo {
        #[arg(long, value_enum, default_value = "whitebooks")]
        provider: Provider,
    },
    /// Throughput against the built-in simulator, as a ratio of a bare RabbitMQ floor measured in the
    /// same run; the worker's CPU, PostgreSQL round trips and peak RSS per message; Little's ratio.
    Bench {
        /// Invoices in the fresh, replay and floor passes.
        #[arg(long, default_value_t = 1000)]
        invoices: usize,
        /// Prefetch of the worker and of the bare floor.
        #[arg(long, default_value_t = 1000)]
        prefetch: u16,
        /// Simulated IRP latency per API call in the fresh pass.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Little's-law scenario: simulated IRP latency per API call.
        #[arg(long, default_value_t = 300)]
        little_latency_ms: u64,
        /// Little's-law scenario: messages in flight (the worker's prefetch).
        #[arg(long, default_value_t = 1000)]
        little_in_flight: u16,
        /// Little's-law scenario: invoices (default: twice the in-flight count).
        #[arg(long)]
        little_invoices: Option<usize>,
        #[arg(long, value_enum, default_value = "whitebooks")]
        provider: Provider,
    },
    /// Check invoice JSON files offline with the worker's own rules (exit code 1 on any problem).
    Validate {
        files: Vec<PathBuf>,
        /// Accept NIC sandbox test GSTINs whose check digit is wrong.
        #[arg(long)]
        relaxed_gstin: bool,
    },
    /// Publish one command by hand, e.g. `publish irn.cancel --gstin … --irn … --reason 2`.
    Publish(Box<PublishArgs>),
}

#[derive(clap::Args)]
struct PublishArgs {
    /// irn.generate | irn.cancel | irn.get | gstin.details | ewaybill.get | b2c.qr | reconcile.rejected |
    /// ewaybill.generate | ewaybill.update_vehicle | ewaybill.cancel | job.status | irn.generate_batch
    routing_key: String,
    #[arg(long)]
    gstin: Option<String>,
    /// irn.generate: the invoice JSON file (NIC schema v1.1); irn.generate_batch: a JSON array of invoices.
    #[arg(long)]
    file: Option<PathBuf>,
    /// irn.generate_batch: the batch's id (a re-sent batch with the same id is not fanned out again).
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
    #[arg(long)]
    request_id: Option<String>,
    /// Wait up to this many seconds for the result event and print it.
    #[arg(long)]
    wait: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Run => {
            let settings = Settings::load()?;
            telemetry::init(settings.log_format, "info,lapin=warn");
            runtime::run(settings, shutdown_signal()).await?;
        }
        Cmd::Migrate => {
            let settings = Settings::load()?;
            telemetry::init(settings.log_format, "info");
            let db = runtime::worker::prepare_db(&settings).await?;
            drop(db);
            println!("migrations applied");
        }
        Cmd::Sim { listen } => {
            telemetry::init(Default::default(), "info");
            let s = sim::Simulator::start(&listen).await.with_context(|| format!("binding {listen}"))?;
            println!(
                "IRP simulator on {} (Whitebooks: /einvoice/..., NIC: /eivital/..., /eicore/...; admin: /_sim/stats)",
                s.base_url()
            );
            tokio::select! {
                _ = s.wait() => {}
                _ = shutdown_signal() => {}
            }
        }
        Cmd::Demo { provider } => {
            telemetry::init(Default::default(), "warn");
            let amqp_url = std::env::var("EINVOICE_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
            let database_url = std::env::var("EINVOICE_DEMO_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/einvoice_demo".into());
            let s = demo::run(demo::DemoOptions { provider: provider.into(), amqp_url, database_url }).await?;
            if s.missing > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Bench {
            invoices,
            prefetch,
            latency_ms,
            little_latency_ms,
            little_in_flight,
            little_invoices,
            provider,
        } => {
            telemetry::init(Default::default(), "warn");
            let opts = bench::BenchOptions {
                invoices,
                prefetch,
                latency_ms,
                little_latency_ms,
                little_in_flight,
                little_invoices: little_invoices.unwrap_or(2 * usize::from(little_in_flight)),
                ..bench::BenchOptions::from_env(provider.into())?
            };
            let report = bench::run(opts).await?;
            if !report.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Jobs { cmd } => return operator(|s| async move { ops::jobs(&s, cmd).await }).await,
        Cmd::Dead { cmd } => return operator(|s| async move { ops::dead(&s, cmd).await }).await,
        Cmd::Gstin { cmd } => return operator(|s| async move { ops::gstin(&s, cmd).await }).await,
        Cmd::Prune { out } => return operator(|s| async move { ops::prune(&s, out).await }).await,
        Cmd::Validate { files, relaxed_gstin } => return validate(&files, relaxed_gstin),
        Cmd::Publish(args) => publish(*args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Run an operator command with the worker's configuration; its error picks the exit code
/// (1 nothing matched or refused, 2 usage, 3 PostgreSQL/RabbitMQ unreachable).
async fn operator<F, Fut>(f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = Result<(), einvoice_worker::operator::OpError>>,
{
    let settings = Settings::load()?;
    telemetry::init(settings.log_format, "warn");
    match f(settings).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

fn validate(files: &[PathBuf], relaxed: bool) -> anyhow::Result<ExitCode> {
    // The worker's own checks: its GST rate master, reporting window and ship-to rules switch.
    let configured = Settings::load().context("loading the configuration (EINVOICE_*)")?.parse_options().validation;
    let opts =
        ValidationOptions { relaxed_gstin_check_digit: relaxed || configured.relaxed_gstin_check_digit, ..configured };
    let mut bad = 0;
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                println!("{}: [INVALID_JSON] {e}", f.display());
                bad += 1;
                continue;
            }
        };
        match validate_invoice(&value, None, &opts) {
            Ok(v) => println!("{}: ok ({})", f.display(), v.key()),
            Err(problems) => {
                bad += 1;
                for p in problems {
                    println!("{}: {} [{}] {}", f.display(), p.path, p.code, p.message);
                }
            }
        }
    }
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn publish_body(a: &PublishArgs) -> anyhow::Result<Value> {
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
        JobKind::B2cQr => json!({"gstin": a.gstin, "document": document()}),
        JobKind::ReconcileRejected => json!({"gstin": a.gstin, "from": a.from, "to": a.to}),
        JobKind::EwaybillGenerate => {
            let transport: Value = match &a.transport {
                Some(t) => serde_json::from_str(t).context("--transport is not JSON")?,
                None => Value::Null,
            };
            json!({"gstin": a.gstin, "irn": a.irn, "document": document(), "transport": transport})
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
    };
    if let Some(o) = body.as_object_mut() {
        o.retain(|_, v| !v.is_null());
        if let Some(r) = &a.request_id {
            o.insert("request_id".into(), json!(r));
        }
    }
    Ok(body)
}

async fn publish(a: PublishArgs) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let body = publish_body(&a)?;
    // Check it the way the worker will, so a typo is caught here rather than as an event.
    let bytes = serde_json::to_vec(&body)?;
    if let Err(rej) = parse_command(&a.routing_key, &bytes, &settings.parse_options()) {
        for p in &rej.problems {
            eprintln!("{} [{}] {}", p.path, p.code, p.message);
        }
        anyhow::bail!("the command would be rejected; nothing was published");
    }
    let conn = amqp::connect(&settings.amqp_url, "einvoice-publish").await?;
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
    if let (Some(secs), Some(mut c)) = (a.wait, consumer) {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(secs), c.next()).await {
            Ok(Some(Ok(d))) => {
                println!("{}", serde_json::to_string_pretty(&serde_json::from_slice::<Value>(&d.data)?)?)
            }
            _ => anyhow::bail!("no result within {secs} s (is a worker running?)"),
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
