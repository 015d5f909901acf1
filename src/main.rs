//! The `einvoice-worker` binary: the clap tree and the dispatch to the library (`validate`,
//! `publish` and the operator commands' glue live in `einvoice_worker::cli`).
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use einvoice_worker::cli::{self, publish::PublishArgs, shutdown_signal, validate::ValidateArgs, verify::VerifyArgs};
use einvoice_worker::config::{ProviderKind, Settings, DEFAULT_AMQP_URL};
use einvoice_worker::operator::cli as ops;
use einvoice_worker::{bench, demo, runtime, sim, telemetry};

/// jemalloc instead of glibc's malloc: a worker allocates and frees many short-lived JSON trees and
/// buffers per message, and glibc's allocator (consolidating its free lists) was a fifth of the
/// worker's CPU. mimalloc was tried too: it cost as much CPU and twice the peak RSS (docs/benchmark.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Operator: GSTINs kept in the database (add, update, rotate-password, disable, enable, list) and paused ones.
    Gstin {
        #[command(subcommand)]
        cmd: ops::GstinCmd,
    },
    /// The operator console: make a user's password hash for the configuration.
    Console {
        #[command(subcommand)]
        cmd: cli::console::ConsoleCmd,
    },
    /// The IRN register of a GSTIN for a return period (every IRN and e-way bill with its status).
    Register {
        #[command(subcommand)]
        cmd: cli::console::RegisterCmd,
    },
    /// IRP API consumption: calls per GSTIN, endpoint and India day, with their cost.
    Usage {
        #[command(subcommand)]
        cmd: cli::usage::UsageCmd,
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
    /// Throughput and CPU per message as ratios of the work floor (the same durable work done
    /// plainly) measured in the same run; PostgreSQL round trips and peak RSS per message.
    Bench {
        /// Invoices in the fresh, replay, steady and 32-in-flight work-floor passes.
        #[arg(long, default_value_t = 1000)]
        invoices: usize,
        /// Prefetch of the fresh, replay and steady worker.
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
        /// Messages in flight of the first work-floor comparison (the work floor and the worker on
        /// the stand-in IRP at 0 ms; the second uses Little's in-flight count and latency).
        #[arg(long, default_value_t = 32)]
        work_in_flight: u16,
        /// Run the worker with `qr_png = false` (no QR image in events), to measure what rendering it costs.
        #[arg(long)]
        no_qr_png: bool,
        /// Steady scenario: publish `--invoices` fresh invoices one by one at this share of the
        /// fresh pass's throughput, to see whether events flow during a run (p50/run).
        #[arg(long, default_value_t = 0.5)]
        steady_share: f64,
        #[arg(long, value_enum, default_value = "whitebooks")]
        provider: Provider,
    },
    /// Benchmark the operator console's search by IRN among many job rows (fills its own
    /// database once, then times the jobs page's queries; issue 25's target: p95 under 100 ms
    /// among 1 million rows).
    BenchConsoleSearch {
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/einvoice_bench_console")]
        database_url: String,
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
        #[arg(long, default_value_t = 500)]
        searches: usize,
    },
    /// Start-up time, memory and CPU per invoice of a worker serving N GSTINs kept in the database
    /// (each N in its own fresh database), e.g. 5 against 5000 (issue 27: within 2×).
    BenchGstins {
        /// The numbers of GSTINs to compare, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5,5000")]
        gstins: Vec<usize>,
        /// Invoices of the pass after start-up (for the samples' two sellers).
        #[arg(long, default_value_t = 200)]
        invoices: usize,
        #[arg(long, value_enum, default_value = "whitebooks")]
        provider: Provider,
    },
    /// The bench's work floor (started by `bench` as a child process, configured by its environment).
    #[command(hide = true)]
    BenchWorkFloor,
    /// Check invoice JSON files offline exactly as the worker checks an `irn.generate`: the contract's
    /// schema, then the worker's rules, with the worker's configuration (EINVOICE_CONFIG and
    /// EINVOICE_*: GST rate master, reporting windows, ship-to rules, relaxed GSTIN check).
    #[command(
        after_help = "Exit codes: 0 every file is valid; 1 a file has a problem (or is unreadable or not JSON); \
2 usage or configuration error."
    )]
    Validate(ValidateArgs),
    /// Verify suppliers' signed e-invoices offline, as `einvoice.verify` does: signed QR codes or
    /// SignedInvoice JWTs, JSON documents holding them, or PNG/JPEG images of the QR code, against
    /// the configured IRP signing keys (irp_signing_keys) and their dates.
    #[command(after_help = "Exit codes: 0 every file verified; 1 a file did not (its reason is printed); \
2 usage or configuration error, or an unreadable file.")]
    Verify(VerifyArgs),
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
            work_in_flight,
            no_qr_png,
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
                work_in_flight,
                qr_png: !no_qr_png,
                steady_share,
                ..bench::BenchOptions::from_env(provider.into())?
            };
            let report = bench::run(opts).await?;
            if !report.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::BenchConsoleSearch { database_url, rows, searches } => {
            if !bench::console_search::main(&database_url, rows, searches).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::BenchGstins { gstins, invoices, provider } => {
            telemetry::init(Default::default(), "warn");
            let opts = bench::BenchOptions::from_env(provider.into())?;
            bench::gstins::run(&opts, &gstins, invoices).await?;
        }
        Cmd::BenchWorkFloor => bench::work_floor::main().await?,
        Cmd::Jobs { cmd } => return cli::operator::run(|s| async move { ops::jobs(&s, cmd).await }).await,
        Cmd::Dead { cmd } => return cli::operator::run(|s| async move { ops::dead(&s, cmd).await }).await,
        Cmd::Gstin { cmd } => return cli::operator::run(|s| async move { ops::gstin(&s, cmd).await }).await,
        Cmd::Console { cmd } => return cli::console::console(cmd),
        Cmd::Register { cmd } => {
            return cli::operator::run(|s| async move { cli::console::register(&s, cmd).await }).await
        }
        Cmd::Usage { cmd } => return cli::operator::run(|s| async move { cli::usage::usage(&s, cmd).await }).await,
        Cmd::Prune { out } => return cli::operator::run(|s| async move { ops::prune(&s, out).await }).await,
        Cmd::Validate(args) => return cli::validate::run(&args),
        Cmd::Verify(args) => return cli::verify::run(&args),
        Cmd::Publish(args) => return Ok(cli::publish::run(*args).await),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "einvoice-worker", &mut std::io::stdout())
        }
    }
    Ok(ExitCode::SUCCESS)
}
