//! The `einvoice-worker` binary: a thin CLI over the library. `anyhow` lives only here.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use einvoice_worker::config::{ProviderKind, Settings, DEFAULT_AMQP_URL};
use einvoice_worker::domain::command::{parse_command, Command, JobKind};
use einvoice_worker::domain::event::DocumentRef;
use einvoice_worker::domain::text::escape_controls;

/// jemalloc instead of glibc's malloc: a worker allocates and frees many short-lived JSON trees and
/// buffers per message, and glibc's allocator (consolidating its free lists) was a fifth of the
/// worker's CPU. mimalloc was tried too: it cost as much CPU and twice the peak RSS (README, Benchmark).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use einvoice_worker::domain::Problem;
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
An unknown EINVOICE_* variable stops the start. RUST_LOG filters the logs; docs/guide.md lists every setting.")]
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
        /// Steady scenario: publish `--invoices` fresh invoices one by one at this share of the
        /// fresh pass's throughput, to see whether events flow during a run (p50/run).
        #[arg(long, default_value_t = 0.5)]
        steady_share: f64,
        #[arg(long, value_enum, default_value = "whitebooks")]
        provider: Provider,
    },
    /// Check invoice JSON files offline exactly as the worker checks an `irn.generate`: the contract's
    /// schema, then the worker's rules, with the worker's configuration (EINVOICE_CONFIG and
    /// EINVOICE_*: GST rate master, reporting windows, ship-to rules, relaxed GSTIN check).
    #[command(
        after_help = "Exit codes: 0 every file is valid; 1 a file has a problem (or is unreadable or not JSON); \
2 usage or configuration error."
    )]
    Validate {
        /// Invoice files (NIC schema v1.1), or `-` for standard input. A file holding a whole
        /// `irn.generate` command ({"gstin", "invoice"}) is checked as that command.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Accept NIC sandbox test GSTINs whose check digit is wrong (as EINVOICE_RELAXED_GSTIN_CHECK_DIGIT).
        #[arg(long)]
        relaxed_gstin: bool,
        /// `text`: one line per problem; `json`: one JSON document with every problem of every file.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Publish one command by hand, e.g. `publish irn.cancel --gstin … --irn … --reason 2`.
    #[command(after_help = "Exit codes: 0 published (with --wait: the command succeeded); 1 rejected (by the \
local check before publishing, or *.rejected / command.rejected); 2 usage or configuration error; \
3 RabbitMQ unreachable; 4 failed (*.failed: transient errors outlasted the retries); 5 no final \
answer within --wait (irn.in_doubt and gstin.paused are not final: they are printed and waiting goes on).")]
    Publish(Box<PublishArgs>),
    /// Print shell completions: `einvoice-worker completions bash > /etc/bash_completion.d/einvoice-worker`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

/// Exit codes of `validate` and `publish` (README "Commands").
mod exit {
    pub const REJECTED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const FAILED: u8 = 4;
    pub const TIMED_OUT: u8 = 5;
}

#[derive(clap::Args)]
struct PublishArgs {
    /// irn.generate | irn.cancel | irn.get | gstin.details | ewaybill.get | b2c.qr | reconcile.rejected |
    /// ewaybill.generate | ewaybill.update_vehicle | ewaybill.cancel | job.status | irn.generate_batch
    routing_key: String,
    #[arg(long)]
    gstin: Option<String>,
    /// irn.generate: the invoice JSON file (NIC schema v1.1); irn.generate_batch: a JSON array of invoices;
    /// b2c.qr: the B2C invoice (DocDtls, ValDtls).
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
    /// Wait up to this many seconds for the command's final answer, print every event that
    /// answers it, and exit with the outcome's code (see below).
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
            steady_share,
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
                steady_share,
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
        Cmd::Validate { files, relaxed_gstin, format } => return validate(&files, relaxed_gstin, format),
        // Past its own checks, what can fail is the broker (declaring, publishing, the reply queue).
        Cmd::Publish(args) => {
            return Ok(publish(*args).await.unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(exit::UNREACHABLE)
            }))
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "einvoice-worker", &mut std::io::stdout())
        }
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

/// One file's verdict for `validate`.
struct Checked {
    file: String,
    document: Option<DocumentRef>,
    problems: Vec<Problem>,
}

/// Check one file's text as the worker checks an `irn.generate` (schema, then rules).
fn check_invoice(text: &str, opts: &einvoice_worker::domain::command::ParseOptions) -> Checked {
    let mut out = Checked { file: String::new(), document: None, problems: Vec::new() };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.problems.push(Problem::new("", "INVALID_JSON", format!("the file is not JSON: {e}")));
            return out;
        }
    };
    // A whole command is checked as it is; a bare invoice as the command that would carry it,
    // its seller as the envelope GSTIN (whose problems are then the invoice's own, at
    // SellerDtls.Gstin, so they are not listed twice) and its paths without the `invoice.` prefix.
    let bare = value.get("invoice").is_none();
    let body = if bare {
        json!({"gstin": value.pointer("/SellerDtls/Gstin").cloned().unwrap_or(Value::Null), "invoice": value})
    } else {
        value
    };
    match parse_command("irn.generate", body.to_string().as_bytes(), opts) {
        Ok(parsed) => {
            if let Command::IrnGenerate(einvoice_worker::domain::command::generate::Generate { invoice, .. }) =
                &parsed.command
            {
                out.document = Some(DocumentRef::new(invoice.key(), Some(invoice.doc_date())));
            }
        }
        Err(rej) => {
            out.problems = rej
                .problems
                .into_iter()
                .filter(|p| !(bare && p.path == "gstin"))
                .map(|mut p| {
                    if bare {
                        p.path = p.path.strip_prefix("invoice.").unwrap_or(&p.path).to_string();
                        if p.path == "invoice" {
                            p.path.clear();
                        }
                    }
                    p
                })
                .collect();
        }
    }
    out
}

fn validate(files: &[PathBuf], relaxed: bool, format: OutputFormat) -> anyhow::Result<ExitCode> {
    // The worker's own configuration: schema, rate master, reporting windows (per seller too),
    // ship-to rules, relaxed GSTIN check, message size limit.
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: loading the configuration (EINVOICE_CONFIG, EINVOICE_*): {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let mut opts = settings.parse_options();
    opts.validation.relaxed_gstin_check_digit |= relaxed;
    let mut results = Vec::new();
    for f in files {
        let (name, text) = if f.as_os_str() == "-" {
            let mut text = String::new();
            let read = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
            ("-".to_string(), read.map(|_| text))
        } else {
            (f.display().to_string(), std::fs::read_to_string(f))
        };
        let mut checked = match text {
            Ok(text) => check_invoice(&text, &opts),
            Err(e) => Checked {
                file: String::new(),
                document: None,
                problems: vec![Problem::new("", "UNREADABLE", format!("cannot read the file: {e}"))],
            },
        };
        checked.file = name;
        results.push(checked);
    }
    let ok = results.iter().all(|r| r.problems.is_empty());
    // Messages and paths may quote the file: no control character reaches the terminal as such.
    let esc = |s: &str| escape_controls(s).into_owned();
    match format {
        OutputFormat::Text => {
            for r in &results {
                match &r.document {
                    Some(d) if r.problems.is_empty() => {
                        println!(
                            "{}: ok ({}/{}/{}/{})",
                            esc(&r.file),
                            d.gstin,
                            d.doc_type,
                            d.doc_number,
                            d.financial_year
                        )
                    }
                    _ => {
                        for p in &r.problems {
                            println!("{}: {} [{}] {}", esc(&r.file), esc(&p.path), esc(&p.code), esc(&p.message));
                        }
                    }
                }
            }
        }
        OutputFormat::Json => {
            let files: Vec<Value> = results
                .iter()
                .map(|r| {
                    let problems: Vec<Value> = r
                        .problems
                        .iter()
                        .map(|p| json!({"path": esc(&p.path), "code": esc(&p.code), "message": esc(&p.message)}))
                        .collect();
                    json!({"file": esc(&r.file), "ok": r.problems.is_empty(), "document": r.document, "problems": problems})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json!({"ok": ok, "files": files}))?);
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(exit::REJECTED) })
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
        o.insert("schema_version".into(), json!(einvoice_worker::domain::event::SCHEMA_VERSION));
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
    if event_type == kind.success_event() || (kind == JobKind::IrnGenerate && event_type == "irn.details") {
        Some(0)
    } else if event_type == kind.rejected_event() || event_type == "command.rejected" {
        Some(exit::REJECTED)
    } else if event_type == kind.failed_event() {
        Some(exit::FAILED)
    } else {
        None
    }
}

async fn publish(a: PublishArgs) -> anyhow::Result<ExitCode> {
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: loading the configuration (EINVOICE_CONFIG, EINVOICE_*): {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
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
