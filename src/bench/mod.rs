//! `einvoice-worker bench`: the worker's end-to-end throughput against a floor measured in the same run.
//!
//! Scenarios, each on a fresh namespace (`bench<uuid8>.`) and the emptied `einvoice_bench` database:
//! - **fresh**: N distinct invoices published in one burst with a reply queue; a worker (prefetch P)
//!   registers them with the built-in simulator (answering after `--latency-ms`, 0 by default);
//! - **replay**: the same N again (answered from the store, no IRP call);
//! - **little**: a worker with `--little-in-flight` messages in flight against an IRP answering after
//!   `--little-latency-ms`. By Little's law it could at best finish `in-flight / latency` messages per
//!   second (for a burst of M: M / (⌈M / in-flight⌉ × latency)); the ratio says how close it gets;
//! - **steady**: N other fresh invoices published one by one at `--steady-share` of the fresh pass's
//!   throughput. In a burst the median reply must wait for half the burst (p50/run ≥ ~0.5 however
//!   fast the worker is); at a steady rate below capacity, p50/run shows whether events flow during
//!   the run or are held back;
//! - **wfloor32 / worker32, wfloor1k / worker1k**: the work floor ([`work_floor`]: the same durable
//!   work written plainly, as a child process) and then the worker, on the same stand-in IRP (the
//!   simulator answering unsigned JWTs) with the same in-flight count and latency: `--work-in-flight`
//!   at 0 ms, and Little's in-flight count and latency. The worker's throughput and CPU per message
//!   are reported as ratios of the floor's.
//!
//! The worker runs as a child process (`einvoice-worker run`, this executable), so that its CPU time
//! and peak RSS (`/proc/<pid>/stat` utime + stime, `/proc/<pid>/status` VmHWM) are its own and not
//! the simulator's or the bench's. Its database connections go through a counting relay in this
//! process that reads the PostgreSQL wire protocol: client round trips are the Sync and simple Query
//! messages (each makes the client wait for the server), statements the Execute and Query messages.
//! Transactions come from the server's own counter (`pg_stat_database.xact_commit + xact_rollback` of
//! the bench database), read before the worker starts and after it has exited (a backend flushes its
//! counters when it ends), so they include the worker's start and stop.
//!
//! Every pass also reads the whole machine's busy CPU (`/proc/stat`) and this process's own (the
//! simulator and the load generator), per message: on a small box they show what bounds a run
//! (the worker, or the simulator, PostgreSQL and RabbitMQ beside it).
//!
//! The simulator's generate-call count is a correctness check (exactly one per fresh invoice, none
//! on a replay), as is every reply; the command fails otherwise. The last line of the output is
//! `BENCH_RESULT <json>` for scripts.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
pub mod console_search;
pub mod gstins;
pub mod work_floor;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection};
use rand::RngCore as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::amqp::{self, Topology};
use crate::config::{ProviderKind, Settings, DEFAULT_AMQP_URL};
use crate::runtime::worker;
use crate::samples::{self, SAMPLES};
use crate::sim::{self, Simulator};

/// Where the benchmark runs and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Invoices in the fresh, replay, steady and first work-floor passes.
    pub invoices: usize,
    /// Prefetch of the fresh/replay/steady worker.
    pub prefetch: u16,
    /// Simulated IRP latency per API call in the fresh pass.
    pub latency_ms: u64,
    /// Little's-law scenario: IRP latency, messages in flight (the worker's prefetch), invoices.
    pub little_latency_ms: u64,
    pub little_in_flight: u16,
    pub little_invoices: usize,
    /// Messages in flight of the first work-floor comparison (IRP at 0 ms).
    pub work_in_flight: u16,
    /// The worker's `qr_png` setting (off: no QR image rendered; to measure what it costs).
    pub qr_png: bool,
    /// Steady scenario: invoices are published one by one at this share of the fresh pass's
    /// throughput (measured in the same run), not in one burst.
    pub steady_share: f64,
    pub provider: ProviderKind,
    pub amqp_url: String,
    pub database_url: String,
    /// The `einvoice-worker` executable started as the worker.
    pub worker_exe: PathBuf,
}

impl BenchOptions {
    /// The broker from `EINVOICE_AMQP_URL`, the database from `EINVOICE_BENCH_DATABASE_URL`
    /// (default `postgres://postgres@127.0.0.1:5432/einvoice_bench`, which the bench empties), the
    /// worker is this executable unless `EINVOICE_BENCH_WORKER_EXE` names another build (to compare
    /// two builds with one bench); the sizes are the CLI's defaults.
    pub fn from_env(provider: ProviderKind) -> anyhow::Result<BenchOptions> {
        Ok(BenchOptions {
            invoices: 1000,
            prefetch: 1000,
            latency_ms: 0,
            little_latency_ms: 300,
            little_in_flight: 1000,
            little_invoices: 2000,
            work_in_flight: 32,
            qr_png: true,
            steady_share: 0.5,
            provider,
            amqp_url: std::env::var("EINVOICE_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into()),
            database_url: std::env::var("EINVOICE_BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/einvoice_bench".into()),
            worker_exe: match std::env::var_os("EINVOICE_BENCH_WORKER_EXE") {
                Some(exe) => PathBuf::from(exe),
                None => std::env::current_exe().context("locating the einvoice-worker executable")?,
            },
        })
    }
}

/// What the worker process spent during one pass.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkerCost {
    /// User + system CPU of the worker process during the pass.
    #[serde(serialize_with = "secs")]
    pub cpu: Duration,
    /// The worker's peak resident set size since it started (VmHWM).
    pub peak_rss_bytes: u64,
    /// Client round trips (Sync + simple Query messages) during the pass.
    pub pg_round_trips: u64,
    /// Statements run (Execute + simple Query messages) during the pass.
    pub pg_statements: u64,
    /// Statements prepared (Parse messages) during the pass.
    pub pg_parses: u64,
    /// Transactions the server counted for the bench database over the worker's whole life.
    pub pg_transactions: u64,
}

/// One line of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioResult {
    pub label: String,
    pub prefetch: u16,
    pub latency_ms: u64,
    /// Messages published.
    pub messages: usize,
    /// Correct replies.
    pub answered: usize,
    /// Replies of another type, or fresh/replayed when the other was expected.
    pub unexpected: Vec<String>,
    /// From the first publish to the last reply.
    #[serde(serialize_with = "secs")]
    pub wall: Duration,
    /// Publish → reply, sorted.
    #[serde(skip)]
    pub latencies: Vec<Duration>,
    /// Mean reply body size.
    pub reply_bytes: usize,
    /// Generate calls the simulator saw, and how many it should have (None: no simulator).
    pub generate_calls: Option<(u64, u64)>,
    /// None for the floor (no worker process).
    pub worker: Option<WorkerCost>,
    /// Busy CPU time of the whole machine during the pass (every process: worker, simulator,
    /// PostgreSQL, RabbitMQ), from `/proc/stat`: what bounds throughput on a box this small.
    #[serde(serialize_with = "secs")]
    pub machine_cpu: Duration,
    /// CPU time of this process during the pass: the simulator and the load generator.
    #[serde(serialize_with = "secs")]
    pub bench_cpu: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl ScenarioResult {
    pub fn missing(&self) -> usize {
        self.messages.saturating_sub(self.answered + self.unexpected.len())
    }
    pub fn per_second(&self) -> f64 {
        if self.wall.is_zero() {
            0.0
        } else {
            self.answered as f64 / self.wall.as_secs_f64()
        }
    }
    /// Nearest-rank percentile (0 < p ≤ 1).
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = ((p * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        Some(self.latencies[rank - 1])
    }
    /// p50 reply latency as a share of the run: small when events flow during the run, about
    /// 0.5 when they all come out at the end.
    pub fn p50_share(&self) -> Option<f64> {
        let p50 = self.percentile(0.5)?;
        (!self.wall.is_zero()).then(|| p50.as_secs_f64() / self.wall.as_secs_f64())
    }
    fn per_message(&self, x: u64) -> f64 {
        x as f64 / self.messages.max(1) as f64
    }
    /// The whole machine's CPU per message (see [`ScenarioResult::machine_cpu`]).
    pub fn machine_ms_per_message(&self) -> f64 {
        self.machine_cpu.as_secs_f64() * 1000.0 / self.messages.max(1) as f64
    }
    /// The simulator's and load generator's CPU per message.
    pub fn bench_ms_per_message(&self) -> f64 {
        self.bench_cpu.as_secs_f64() * 1000.0 / self.messages.max(1) as f64
    }
    pub fn cpu_ms_per_message(&self) -> Option<f64> {
        self.worker.as_ref().map(|w| w.cpu.as_secs_f64() * 1000.0 / self.messages.max(1) as f64)
    }
    pub fn round_trips_per_message(&self) -> Option<f64> {
        self.worker.as_ref().map(|w| self.per_message(w.pg_round_trips))
    }
    pub fn statements_per_message(&self) -> Option<f64> {
        self.worker.as_ref().map(|w| self.per_message(w.pg_statements))
    }
    pub fn transactions_per_message(&self) -> Option<f64> {
        self.worker.as_ref().map(|w| self.per_message(w.pg_transactions))
    }
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.worker.as_ref().map(|w| w.peak_rss_bytes as f64 / (1024.0 * 1024.0))
    }
    pub fn passed(&self) -> bool {
        self.missing() == 0 && self.unexpected.is_empty() && self.generate_calls.is_none_or(|(seen, want)| seen == want)
    }
}

/// The work floor and the worker, in the same run, at the same in-flight count and IRP latency,
/// on the same stand-in IRP.
#[derive(Debug, Clone)]
pub struct WorkPair {
    pub floor: ScenarioResult,
    pub worker: ScenarioResult,
}

impl WorkPair {
    /// The worker's throughput ÷ the work floor's.
    pub fn throughput_ratio(&self) -> f64 {
        ratio(self.worker.per_second(), self.floor.per_second())
    }
    /// The worker's CPU per message ÷ the work floor's.
    pub fn cpu_ratio(&self) -> Option<f64> {
        Some(ratio(self.worker.cpu_ms_per_message()?, self.floor.cpu_ms_per_message()?))
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub fresh: ScenarioResult,
    pub replay: ScenarioResult,
    pub little: ScenarioResult,
    /// Fresh invoices published at a steady rate (`steady_per_second`), not in a burst: their
    /// p50/run says whether events flow during the run.
    pub steady: ScenarioResult,
    /// The work floor and the worker on the stand-in IRP: at `--work-in-flight` with no latency,
    /// then at Little's in-flight count and latency.
    pub work: Vec<WorkPair>,
    /// The best throughput Little's law allows the `little` burst.
    pub little_ideal_per_second: f64,
    /// The rate the steady scenario published at.
    pub steady_per_second: f64,
}

impl BenchReport {
    pub fn all(&self) -> Vec<&ScenarioResult> {
        let mut all = vec![&self.fresh, &self.replay, &self.little, &self.steady];
        for p in &self.work {
            all.extend([&p.floor, &p.worker]);
        }
        all
    }
    pub fn passed(&self) -> bool {
        self.all().iter().all(|r| r.passed())
    }
    /// The pair a worker-on-the-stand-in scenario belongs to.
    fn pair_of(&self, r: &ScenarioResult) -> Option<&WorkPair> {
        self.work.iter().find(|p| std::ptr::eq(&p.worker, r))
    }
    /// Measured ÷ Little's-law throughput of the `little` scenario.
    pub fn little_ratio(&self) -> f64 {
        ratio(self.little.per_second(), self.little_ideal_per_second)
    }
    /// The machine-readable summary (the last output line).
    pub fn json(&self) -> Value {
        let mut scenarios = serde_json::Map::new();
        for r in self.all() {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            v["per_second"] = json!(r.per_second());
            v["p50_ms"] = json!(r.percentile(0.5).map(|d| d.as_secs_f64() * 1000.0));
            v["p99_ms"] = json!(r.percentile(0.99).map(|d| d.as_secs_f64() * 1000.0));
            v["p50_share_of_run"] = json!(r.p50_share());
            v["cpu_ms_per_message"] = json!(r.cpu_ms_per_message());
            v["pg_round_trips_per_message"] = json!(r.round_trips_per_message());
            v["pg_statements_per_message"] = json!(r.statements_per_message());
            v["pg_transactions_per_message"] = json!(r.transactions_per_message());
            v["peak_rss_mib"] = json!(r.peak_rss_mib());
            v["machine_cpu_ms_per_message"] = json!(r.machine_ms_per_message());
            v["bench_cpu_ms_per_message"] = json!(r.bench_ms_per_message());
            if let Some(p) = self.pair_of(r) {
                v["vs_work_floor"] = json!(p.throughput_ratio());
                v["cpu_vs_work_floor"] = json!(p.cpu_ratio());
            }
            scenarios.insert(r.label.clone(), v);
        }
        let work: Vec<Value> = self
            .work
            .iter()
            .map(|p| {
                json!({
                    "in_flight": p.worker.prefetch,
                    "irp_latency_ms": p.worker.latency_ms,
                    "throughput_ratio": p.throughput_ratio(),
                    "cpu_per_message_ratio": p.cpu_ratio(),
                })
            })
            .collect();
        json!({
            "scenarios": scenarios,
            "worker_vs_work_floor": work,
            "littles_ratio": self.little_ratio(),
            "little_ideal_per_second": self.little_ideal_per_second,
            "steady_published_per_second": self.steady_per_second,
            "steady_p50_share_of_run": self.steady.p50_share(),
            "passed": self.passed(),
        })
    }
}

/// Run every scenario, print the table and the `BENCH_RESULT` line, return the figures
/// (check [`BenchReport::passed`]).
pub async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.invoices >= 1 && opts.invoices <= 999_999, "--invoices must be between 1 and 999999");
    anyhow::ensure!(
        opts.little_invoices >= 1 && opts.little_invoices <= 999_999,
        "--little-invoices must be between 1 and 999999"
    );
    anyhow::ensure!(opts.prefetch >= 1 && opts.little_in_flight >= 1, "prefetch and in-flight must be at least 1");
    anyhow::ensure!(opts.little_latency_ms >= 1, "--little-latency-ms must be at least 1");
    anyhow::ensure!(opts.steady_share > 0.0 && opts.steady_share <= 1.0, "--steady-share must be in (0, 1]");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "einvoice-worker bench: {} invoices at prefetch {} (IRP latency {} ms), Little's law at {} in flight and {} ms \
         ({} invoices), provider {}, {} cores{}",
        opts.invoices,
        opts.prefetch,
        opts.latency_ms,
        opts.little_in_flight,
        opts.little_latency_ms,
        opts.little_invoices,
        opts.provider.as_str(),
        cores,
        if opts.qr_png { "" } else { ", worker without QR images (qr_png = false)" }
    );
    // The URL may carry a password: the error names only host and port.
    let conn = amqp::connect(&opts.amqp_url, "einvoice-bench").await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let bodies = |tag: &str, n: usize| -> Vec<Vec<u8>> {
        // Distinct documents, cycling through the samples so every scenario sends the same mix.
        (0..n)
            .map(|i| {
                let number = format!("B{}{tag}/{i}", &run_id[..6]);
                debug_assert!(number.len() <= 16);
                let inv = samples::stamped(SAMPLES[i % SAMPLES.len()].0, Some(&number));
                json!({"gstin": samples::seller(&inv), "invoice": inv}).to_string().into_bytes()
            })
            .collect()
    };

    eprintln!("running: fresh and replay (prefetch {})", opts.prefetch);
    let commands = Arc::new(bodies("F", opts.invoices));
    let (fresh, replay) =
        worker_scenario("fresh", &opts, &conn, opts.prefetch, opts.latency_ms, commands, true, None, false)
            .await
            .context("scenario 'fresh'")?;
    let replay = replay.context("the replay pass did not run")?;

    eprintln!("running: Little's law ({} in flight, {} ms)", opts.little_in_flight, opts.little_latency_ms);
    let (little, _) = worker_scenario(
        "little",
        &opts,
        &conn,
        opts.little_in_flight,
        opts.little_latency_ms,
        Arc::new(bodies("L", opts.little_invoices)),
        false,
        None,
        false,
    )
    .await
    .context("scenario 'little'")?;

    // A burst published at once cannot have p50 under half the run (the median message waits
    // for the half before it); a steady stream below capacity shows whether events flow.
    let steady_per_second = (fresh.per_second() * opts.steady_share).max(1.0);
    eprintln!("running: steady ({steady_per_second:.0} msgs/s, prefetch {})", opts.prefetch);
    let (steady, _) = worker_scenario(
        "steady",
        &opts,
        &conn,
        opts.prefetch,
        opts.latency_ms,
        Arc::new(bodies("S", opts.invoices)),
        false,
        Some(steady_per_second),
        false,
    )
    .await
    .context("scenario 'steady'")?;

    // The work floor and the worker on the same stand-in IRP (no signing), one after the other in
    // this run, with the same commands: at `--work-in-flight` and no IRP latency, and at Little's
    // in-flight count and latency.
    let mut work = Vec::new();
    for (tag, in_flight, latency_ms, n) in [
        ("W", opts.work_in_flight, 0, opts.invoices),
        ("X", opts.little_in_flight, opts.little_latency_ms, opts.little_invoices),
    ] {
        eprintln!("running: work floor and worker on the stand-in IRP ({in_flight} in flight, {latency_ms} ms)");
        let floor = work_floor_scenario(&opts, &conn, in_flight, latency_ms, Arc::new(bodies(&format!("{tag}F"), n)))
            .await
            .with_context(|| format!("scenario 'wfloor{}'", short(in_flight)))?;
        let label = format!("worker{}", short(in_flight));
        let (worker, _) = worker_scenario(
            &label,
            &opts,
            &conn,
            in_flight,
            latency_ms,
            Arc::new(bodies(&format!("{tag}W"), n)),
            false,
            None,
            true,
        )
        .await
        .with_context(|| format!("scenario '{label}'"))?;
        work.push(WorkPair { floor, worker });
    }
    let _ = conn.close(200, "bench done".into()).await;

    let waves = opts.little_invoices.div_ceil(usize::from(opts.little_in_flight));
    let little_ideal_per_second = opts.little_invoices as f64 / (waves as f64 * opts.little_latency_ms as f64 / 1000.0);
    let report = BenchReport { fresh, replay, little, steady, work, little_ideal_per_second, steady_per_second };
    print_report(&opts, &report);
    Ok(report)
}

/// The worker's settings for one scenario (its database is reached through `database_url`).
fn scenario_toml(
    opts: &BenchOptions,
    sim: &Simulator,
    namespace: &str,
    database_url: &str,
    prefetch: u16,
) -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    // The fair-share cap off: the benchmark measures a worker's whole prefetch (its samples are
    // from only two sellers).
    let mut toml = format!(
        "amqp_url = \"{}\"\ndatabase_url = \"{database_url}\"\nnamespace = \"{namespace}\"\nprefetch = {prefetch}\ngstin_max_in_flight = {prefetch}\nretry_min_delay_ms = 200\nretry_max_delay_ms = 2000\ntoken_key = \"{}\"\n",
        opts.amqp_url,
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    if !opts.qr_png {
        toml.push_str("qr_png = false\n");
    }
    let sellers: BTreeSet<String> = SAMPLES.iter().map(|(n, _)| samples::seller(&samples::stamped(n, None))).collect();
    for gstin in &sellers {
        toml.push_str(&sim::gstin_toml(&sim.base_url(), opts.provider, gstin));
    }
    Settings::from_toml(&toml).context("the bench's worker configuration")?;
    Ok(toml)
}

/// A fresh namespace, database, simulator and worker process; one measured pass, and a replay pass
/// on a second worker process when `replay`. `pace`: publish at this many messages a second
/// instead of in one burst.
#[allow(clippy::too_many_arguments)]
async fn worker_scenario(
    label: &str,
    opts: &BenchOptions,
    conn: &Connection,
    prefetch: u16,
    latency_ms: u64,
    bodies: Arc<Vec<Vec<u8>>>,
    replay: bool,
    pace: Option<f64>,
    stand_in: bool,
) -> anyhow::Result<(ScenarioResult, Option<ScenarioResult>)> {
    let sim = Simulator::start("127.0.0.1:0").await.context("starting the IRP simulator")?;
    sim.core.update_faults(|f| {
        f.latency_ms = latency_ms;
        f.unsigned = stand_in;
    });
    // The stand-in's JWTs are unsigned: only the Whitebooks client (no signing key) takes them.
    let stand_in_opts;
    let opts = if stand_in {
        stand_in_opts = BenchOptions { provider: ProviderKind::Whitebooks, ..opts.clone() };
        &stand_in_opts
    } else {
        opts
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let namespace = format!("bench{}.", &id[..8]);
    let proxy = PgCountingProxy::start(&opts.database_url).await?;
    let toml = scenario_toml(opts, &sim, &namespace, &proxy.url, prefetch)?;
    let settings = Settings::from_toml(&scenario_toml(opts, &sim, &namespace, &opts.database_url, prefetch)?)?;
    let db = worker::prepare_db(&settings).await?;
    // The bench owns its database: every scenario registers afresh.
    db.reset_all().await?;
    drop(db);
    let stats = ServerStats::connect(&opts.database_url).await?;
    let topology = Topology::new(&settings);
    let ch = amqp::confirm_channel(conn).await?;
    topology.declare(conn).await?;
    let (reply_queue, mut consumer) = amqp::reply_queue(&ch, "bench", true).await?;
    let target = Target { exchange: topology.commands.clone(), routing_key: "irn.generate".into() };
    let outcome = async {
        let mut out = Vec::new();
        let passes: &[bool] = if replay { &[false, true] } else { &[false] };
        for &replayed in passes {
            let xacts_before = stats.transactions().await?;
            let worker = WorkerProcess::start(&opts.worker_exe, &toml, &id).await?;
            let measured = async {
                wait_for_consumer(&ch, &topology.jobs).await?;
                let calls_before = sim.core.stats().generate_calls;
                let (cpu_before, db_before) = (worker.cpu()?, proxy.counts.snapshot());
                let tag = if replayed { "replay" } else { "fresh" };
                let expect = Expect::Generated { replayed };
                let mut r =
                    pass(&ch, &target, &reply_queue, &mut consumer, bodies.clone(), tag, expect, latency_ms, pace)
                        .await?;
                let db_after = proxy.counts.snapshot();
                r.label = if replayed { "replay".into() } else { label.into() };
                r.prefetch = prefetch;
                r.latency_ms = latency_ms;
                let want = if replayed { 0 } else { bodies.len() as u64 };
                r.generate_calls = Some((sim.core.stats().generate_calls - calls_before, want));
                r.worker = Some(worker.cost_since(cpu_before, &db_before, &db_after)?);
                anyhow::Ok(r)
            }
            .await;
            worker.stop().await?;
            let mut r = measured?;
            if let Some(w) = r.worker.as_mut() {
                w.pg_transactions = stats.transactions().await?.saturating_sub(xacts_before);
            }
            out.push(r);
        }
        anyhow::Ok(out)
    }
    .await;
    // Whatever happened, leave nothing behind on the broker.
    if let Err(e) = delete_topology(conn, &topology).await {
        eprintln!("warning: could not delete the {namespace} queues and exchanges: {e}");
    }
    let _ = ch.close(200, "bench scenario done".into()).await;
    let mut out = outcome?.into_iter();
    let first = out.next().context("no pass ran")?;
    Ok((first, out.next()))
}

/// The work floor ([`work_floor`]) as a child process over a quorum queue, against the stand-in IRP
/// (the simulator with `unsigned` on) after `latency_ms`, with `in_flight` messages in flight.
async fn work_floor_scenario(
    opts: &BenchOptions,
    conn: &Connection,
    in_flight: u16,
    latency_ms: u64,
    bodies: Arc<Vec<Vec<u8>>>,
) -> anyhow::Result<ScenarioResult> {
    let sim = Simulator::start("127.0.0.1:0").await.context("starting the stand-in IRP")?;
    sim.core.update_faults(|f| {
        f.latency_ms = latency_ms;
        f.unsigned = true;
    });
    let queue = format!("bench{}.workfloor", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ch = amqp::confirm_channel(conn).await?;
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), AMQPValue::LongString(LongString::from("quorum")));
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    let (reply_queue, mut consumer) = amqp::reply_queue(&ch, "bench-work-floor", true).await?;
    let outcome = async {
        {
            let (client, connection) = tokio_postgres::connect(&opts.database_url, tokio_postgres::NoTls).await?;
            let connection = tokio::spawn(connection);
            client.batch_execute(work_floor::SCHEMA).await.context("creating the work floor's tables")?;
            drop(client);
            let _ = connection.await;
        }
        let proxy = PgCountingProxy::start(&opts.database_url).await?;
        let stats = ServerStats::connect(&opts.database_url).await?;
        let xacts_before = stats.transactions().await?;
        let prefetch = in_flight.to_string();
        let irp = sim.base_url();
        let env = [
            (work_floor::ENV_AMQP, opts.amqp_url.as_str()),
            (work_floor::ENV_DATABASE, proxy.url.as_str()),
            (work_floor::ENV_QUEUE, queue.as_str()),
            (work_floor::ENV_IRP, irp.as_str()),
            (work_floor::ENV_PREFETCH, prefetch.as_str()),
        ];
        let floor = WorkerProcess::spawn(&opts.worker_exe, "bench-work-floor", &env)?;
        let measured = async {
            wait_for_consumer(&ch, &queue).await?;
            let calls_before = sim.core.stats().generate_calls;
            let (cpu_before, db_before) = (floor.cpu()?, proxy.counts.snapshot());
            let target = Target { exchange: String::new(), routing_key: queue.clone() };
            let expect = Expect::Generated { replayed: false };
            let mut r =
                pass(&ch, &target, &reply_queue, &mut consumer, bodies.clone(), "wfloor", expect, latency_ms, None)
                    .await?;
            let db_after = proxy.counts.snapshot();
            r.generate_calls = Some((sim.core.stats().generate_calls - calls_before, bodies.len() as u64));
            r.worker = Some(floor.cost_since(cpu_before, &db_before, &db_after)?);
            anyhow::Ok(r)
        }
        .await;
        floor.stop().await?;
        let mut r = measured?;
        if let Some(w) = r.worker.as_mut() {
            w.pg_transactions = stats.transactions().await?.saturating_sub(xacts_before);
        }
        anyhow::Ok(r)
    }
    .await;
    let _ = ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    let _ = ch.close(200, "bench work floor done".into()).await;
    let mut r = outcome?;
    r.label = format!("wfloor{}", short(in_flight));
    r.prefetch = in_flight;
    Ok(r)
}

/// 32 → "32", 1000 → "1k": scenario labels fit the table's first column.
fn short(n: u16) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Publishing before the consumer subscribes would count its start-up as throughput.
async fn wait_for_consumer(ch: &Channel, queue: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        if q.consumer_count() > 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "nothing subscribed to {queue} within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Where a pass publishes its commands.
#[derive(Clone)]
struct Target {
    exchange: String,
    routing_key: String,
}

/// What a reply must be.
#[derive(Clone, Copy)]
enum Expect {
    /// An `irn.generated` event, replayed or not.
    Generated { replayed: bool },
}

/// Publish every body (pipelined, confirms awaited at the end) while collecting the replies.
#[allow(clippy::too_many_arguments)]
async fn pass(
    ch: &Channel,
    target: &Target,
    reply_queue: &str,
    consumer: &mut lapin::Consumer,
    bodies: Arc<Vec<Vec<u8>>>,
    tag: &str,
    expect: Expect,
    latency_ms: u64,
    pace: Option<f64>,
) -> anyhow::Result<ScenarioResult> {
    let n = bodies.len();
    let (machine_before, bench_before) = (machine_busy(), own_cpu());
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    // Generous: every invoice strictly one after the other at several times the IRP latency.
    let pacing = pace.map_or(Duration::ZERO, |rate| Duration::from_secs_f64(n as f64 / rate));
    let limit = Duration::from_secs(120) + pacing + Duration::from_millis((latency_ms + 50) * 4 * n as u64);
    let deadline = tokio::time::Instant::now() + limit;
    let start = Instant::now();
    let mut publisher = tokio::spawn(publish_all(
        ch.clone(),
        target.clone(),
        bodies,
        tag.to_string(),
        reply_queue.to_string(),
        sent.clone(),
        pace,
    ));
    let mut published = false;
    let mut seen = vec![false; n];
    let (mut settled, mut last) = (0usize, start);
    let mut latencies = Vec::with_capacity(n);
    let mut unexpected = Vec::new();
    let mut reply_bytes = 0usize;
    let prefix = format!("{tag}-");
    while settled < n {
        tokio::select! {
            r = &mut publisher, if !published => {
                published = true;
                r.context("the publisher task panicked")??;
            }
            next = tokio::time::timeout_at(deadline, consumer.next()) => {
                let d = match next {
                    Ok(Some(Ok(d))) => d,
                    Ok(Some(Err(e))) => return Err(e).context("reading replies"),
                    Ok(None) => anyhow::bail!("the reply consumer was cancelled"),
                    Err(_) => break,
                };
                let now = Instant::now();
                let corr = d.properties.correlation_id().as_ref().map(|c| c.to_string()).unwrap_or_default();
                let Some(i) = corr.strip_prefix(&prefix).and_then(|i| i.parse::<usize>().ok()).filter(|i| *i < n) else {
                    continue;
                };
                if std::mem::replace(&mut seen[i], true) {
                    continue; // an at-least-once duplicate
                }
                settled += 1;
                reply_bytes += d.data.len();
                let Expect::Generated { replayed: want } = expect;
                {
                    let ev: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
                    let ty = ev["event_type"].as_str().unwrap_or("?");
                    let replayed = ev["data"]["replayed"].as_bool().unwrap_or(false);
                    if ty != "irn.generated" || replayed != want {
                        unexpected.push(format!("{corr}: {ty} (replayed: {replayed}) {}", ev["data"]["errors"]));
                        continue;
                    }
                }
                let t0 = sent.lock().expect("bench lock")[i].unwrap_or(start);
                latencies.push(now.saturating_duration_since(t0));
                last = now;
            }
        }
    }
    if !published {
        // Every reply came in before the last confirm (or the time ran out): the publish must still have worked.
        match tokio::time::timeout_at(deadline, &mut publisher).await {
            Ok(r) => r.context("the publisher task panicked")??,
            Err(_) => {
                publisher.abort();
                anyhow::bail!("publishing did not finish within {} s", limit.as_secs());
            }
        }
    }
    latencies.sort();
    let (machine_cpu, bench_cpu) =
        (machine_busy().saturating_sub(machine_before), own_cpu().saturating_sub(bench_before));
    Ok(ScenarioResult {
        machine_cpu,
        bench_cpu,
        label: String::new(),
        prefetch: 0,
        latency_ms,
        messages: n,
        answered: latencies.len(),
        unexpected,
        wall: last.saturating_duration_since(start),
        latencies,
        reply_bytes: reply_bytes / settled.max(1),
        generate_calls: None,
        worker: None,
    })
}

/// Busy CPU time of the whole machine so far: every `/proc/stat` mode but idle and iowait
/// (zero where there is no `/proc`).
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| l.split_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_secs_f64(busy as f64 / hz as f64)
}

/// CPU time (user + system) of this process so far (zero where there is no `/proc`).
fn own_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(stat_cpu).unwrap_or_default()
}

/// User + system CPU time (fields 14 and 15) of a `/proc/<pid>/stat` line.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64((field(14)? + field(15)?) as f64 / hz as f64))
}

async fn publish_all(
    ch: Channel,
    Target { exchange, routing_key }: Target,
    bodies: Arc<Vec<Vec<u8>>>,
    tag: String,
    reply_queue: String,
    sent: Arc<Mutex<Vec<Option<Instant>>>>,
    pace: Option<f64>,
) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(bodies.len());
    let start = tokio::time::Instant::now();
    for (i, body) in bodies.iter().enumerate() {
        if let Some(rate) = pace {
            // Message i leaves at i ÷ rate: evenly spaced, whatever each publish took.
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        }
        let props = amqp::json_props()
            .with_correlation_id(ShortString::from(format!("{tag}-{i}")))
            .with_reply_to(ShortString::from(reply_queue.as_str()))
            .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string()));
        sent.lock().expect("bench lock")[i] = Some(Instant::now());
        let confirm = ch
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                body,
                props,
            )
            .await?;
        confirms.push(confirm);
    }
    for c in confirms {
        let confirm = c.await?;
        anyhow::ensure!(!confirm.is_nack(), "RabbitMQ refused a command on '{exchange}'");
        anyhow::ensure!(confirm.take_message().is_none(), "a command on '{exchange}' was unroutable");
    }
    Ok(())
}

/// Delete the scenario's queues and exchanges (the reply queue goes with the channel).
async fn delete_topology(conn: &Connection, t: &Topology) -> Result<(), lapin::Error> {
    let ch = conn.create_channel().await?;
    let mut queues = vec![t.jobs.clone(), t.dead.clone(), t.unrouted.clone()];
    queues.extend(t.retry_queues());
    for q in queues {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await?;
    }
    for x in [&t.commands, &t.events, &t.dlx, &t.retry] {
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()).await?;
    }
    let _ = ch.close(200, "bench cleanup".into()).await;
    Ok(())
}

/// `einvoice-worker run` as a child process with the scenario's configuration file.
struct WorkerProcess {
    child: tokio::process::Child,
    pid: u32,
    config: Option<PathBuf>,
}

impl WorkerProcess {
    async fn start(exe: &std::path::Path, toml: &str, id: &str) -> anyhow::Result<WorkerProcess> {
        let config = std::env::temp_dir().join(format!("einvoice-bench-{id}.toml"));
        std::fs::write(&config, toml).with_context(|| format!("writing {}", config.display()))?;
        let config_env = config.to_string_lossy().into_owned();
        let mut p = Self::spawn(exe, "run", &[("EINVOICE_CONFIG", config_env.as_str())])?;
        p.config = Some(config);
        Ok(p)
    }

    /// `exe <command>` with only `env` of our EINVOICE_* variables.
    fn spawn(exe: &std::path::Path, command: &str, env: &[(&str, &str)]) -> anyhow::Result<WorkerProcess> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg(command).env("RUST_LOG", "warn").stdout(std::process::Stdio::null());
        // The configuration file is the whole configuration: an EINVOICE_DATABASE_URL in our own
        // environment must never point the bench's worker at a real deployment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("EINVOICE_") {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.kill_on_drop(true).spawn().with_context(|| format!("starting {} {command}", exe.display()))?;
        let pid = child.id().context("the worker exited at once")?;
        Ok(WorkerProcess { child, pid, config: None })
    }

    fn proc_file(&self, name: &str) -> anyhow::Result<String> {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.pid))
            .with_context(|| format!("reading /proc/{}/{name} (the worker process)", self.pid))
    }

    /// What the process spent between two points of a pass: CPU since `cpu_before`, its peak RSS
    /// and the wire counts between the snapshots (transactions are read from the server after).
    fn cost_since(
        &self,
        cpu_before: Duration,
        before: &WireSnapshot,
        after: &WireSnapshot,
    ) -> anyhow::Result<WorkerCost> {
        Ok(WorkerCost {
            cpu: self.cpu()?.saturating_sub(cpu_before),
            peak_rss_bytes: self.peak_rss()?,
            pg_round_trips: after.round_trips - before.round_trips,
            pg_statements: after.statements - before.statements,
            pg_parses: after.parses - before.parses,
            pg_transactions: 0,
        })
    }

    /// User + system CPU time so far (all threads, /proc/<pid>/stat fields 14 and 15).
    fn cpu(&self) -> anyhow::Result<Duration> {
        stat_cpu(&self.proc_file("stat")?).context("unreadable /proc stat")
    }

    /// Peak resident set size so far (VmHWM).
    fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = self.proc_file("status")?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib * 1024)
    }

    /// SIGTERM (the worker finishes in-flight jobs and drains its outbox), then wait for it.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "the worker exited with {status}");
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                anyhow::bail!("the worker did not stop within 120 s of SIGTERM")
            }
        }
    }
}

/// The server's transaction counter for the bench database.
struct ServerStats {
    client: tokio_postgres::Client,
    database: String,
}

impl ServerStats {
    /// Connects to the `postgres` database of the same server, so that reading the counter does
    /// not count as a transaction of the bench database.
    async fn connect(database_url: &str) -> anyhow::Result<ServerStats> {
        let mut url = reqwest::Url::parse(database_url).context("EINVOICE_BENCH_DATABASE_URL is not a URL")?;
        let database = url.path().trim_start_matches('/').to_string();
        url.set_path("/postgres");
        let (client, connection) = tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls)
            .await
            .context("connecting to the server's postgres database for its statistics")?;
        tokio::spawn(connection);
        Ok(ServerStats { client, database })
    }

    /// Committed + rolled-back transactions of the bench database, once the counters have settled:
    /// backends flush them when they end, a moment after their client has gone.
    async fn transactions(&self) -> anyhow::Result<u64> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let row = self
            .client
            .query_one(
                "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
                &[&self.database],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}

/// Messages the worker sent to PostgreSQL, counted on the wire.
#[derive(Default)]
struct WireCounts {
    round_trips: AtomicU64,
    statements: AtomicU64,
    parses: AtomicU64,
}

#[derive(Clone, Copy, Default)]
struct WireSnapshot {
    round_trips: u64,
    statements: u64,
    parses: u64,
}

impl WireCounts {
    fn snapshot(&self) -> WireSnapshot {
        WireSnapshot {
            round_trips: self.round_trips.load(Ordering::Relaxed),
            statements: self.statements.load(Ordering::Relaxed),
            parses: self.parses.load(Ordering::Relaxed),
        }
    }
    fn count(&self, message_type: u8) {
        match message_type {
            // Simple query: one round trip, (at least) one statement.
            b'Q' => {
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                self.statements.fetch_add(1, Ordering::Relaxed);
            }
            // Sync ends an extended-protocol exchange: the client waits for ReadyForQuery.
            b'S' => {
                self.round_trips.fetch_add(1, Ordering::Relaxed);
            }
            b'E' => {
                self.statements.fetch_add(1, Ordering::Relaxed);
            }
            b'P' => {
                self.parses.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Splits the client → server byte stream into protocol messages: the first ones (startup, SSL
/// or GSS requests) have no type byte, every later one is a type byte plus a 4-byte length.
#[derive(Default)]
struct FrameReader {
    started: bool,
    header: Vec<u8>,
    skip: usize,
}

impl FrameReader {
    fn feed(&mut self, mut bytes: &[u8], counts: &WireCounts) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let header_len = if self.started { 5 } else { 8 };
            let n = (header_len - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < header_len {
                break;
            }
            if self.started {
                counts.count(self.header[0]);
                let len = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]);
                self.skip = (len as usize).saturating_sub(4);
            } else {
                let len = u32::from_be_bytes([self.header[0], self.header[1], self.header[2], self.header[3]]);
                let code = u32::from_be_bytes([self.header[4], self.header[5], self.header[6], self.header[7]]);
                // SSLRequest and GSSENCRequest come before the real startup message.
                const SSL_REQUEST: u32 = 80_877_103;
                const GSSENC_REQUEST: u32 = 80_877_104;
                self.started = code != SSL_REQUEST && code != GSSENC_REQUEST;
                self.skip = (len as usize).saturating_sub(8);
            }
            self.header.clear();
        }
    }
}

/// A loopback TCP relay in front of PostgreSQL that counts what the worker sends.
struct PgCountingProxy {
    /// The database URL with the relay's address.
    url: String,
    counts: Arc<WireCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PgCountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgCountingProxy {
    async fn start(database_url: &str) -> anyhow::Result<PgCountingProxy> {
        let mut url = reqwest::Url::parse(database_url).context("EINVOICE_BENCH_DATABASE_URL is not a URL")?;
        let upstream = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        url.set_host(Some("127.0.0.1"))
            .map_err(|e| anyhow::anyhow!("cannot point the database URL at the relay: {e}"))?;
        url.set_port(Some(addr.port()))
            .map_err(|_| anyhow::anyhow!("cannot set the relay's port in the database URL"))?;
        let counts = Arc::new(WireCounts::default());
        let task = tokio::spawn(Self::serve(listener, upstream, counts.clone()));
        Ok(PgCountingProxy { url: url.to_string(), counts, task })
    }

    async fn serve(listener: tokio::net::TcpListener, upstream: String, counts: Arc<WireCounts>) {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, counts) = (upstream.clone(), counts.clone());
            connections.spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = async {
                    let (mut buf, mut frames) = (vec![0u8; 64 * 1024], FrameReader::default());
                    loop {
                        let n = client_read.read(&mut buf).await?;
                        if n == 0 {
                            return server_write.shutdown().await;
                        }
                        frames.feed(&buf[..n], &counts);
                        server_write.write_all(&buf[..n]).await?;
                    }
                };
                let downstream = tokio::io::copy(&mut server_read, &mut client_write);
                let _ = tokio::join!(upstream, downstream);
            });
        }
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into())
}

fn num(x: Option<f64>, decimals: usize) -> String {
    x.map(|x| format!("{x:.decimals$}")).unwrap_or_else(|| "-".into())
}

fn print_report(opts: &BenchOptions, report: &BenchReport) {
    println!();
    println!(
        "{:<8} {:>8} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10}",
        "scenario",
        "prefetch",
        "IRP ms",
        "msgs",
        "msgs/s",
        "÷ wfloor",
        "p50 ms",
        "p99 ms",
        "p50/run",
        "CPU ms/msg",
        "PG RT/msg",
        "stmt/msg",
        "xact/msg",
        "peak RSS",
        "box ms/msg",
        "sim ms/msg"
    );
    for r in report.all() {
        println!(
            "{:<8} {:>8} {:>7} {:>6} {:>9.1} {:>8} {:>8} {:>8} {:>7} {:>10} {:>9} {:>8} {:>8} {:>9} {:>10.2} {:>10.2}",
            r.label,
            r.prefetch,
            r.latency_ms,
            r.messages,
            r.per_second(),
            report.pair_of(r).map(|p| format!("{:.3}x", p.throughput_ratio())).unwrap_or_else(|| "-".into()),
            ms(r.percentile(0.50)),
            ms(r.percentile(0.99)),
            num(r.p50_share(), 2),
            num(r.cpu_ms_per_message(), 2),
            num(r.round_trips_per_message(), 1),
            num(r.statements_per_message(), 1),
            num(r.transactions_per_message(), 1),
            r.peak_rss_mib().map(|m| format!("{m:.0} MiB")).unwrap_or_else(|| "-".into()),
            r.machine_ms_per_message(),
            r.bench_ms_per_message(),
        );
    }
    println!(
        "\nlittle: {} in flight at {} ms per IRP call allows {:.0} msgs/s for this burst; measured {:.1} = ratio {:.2}",
        opts.little_in_flight,
        opts.little_latency_ms,
        report.little_ideal_per_second,
        report.little.per_second(),
        report.little_ratio()
    );
    for p in &report.work {
        println!(
            "work floor at {} in flight, IRP {} ms: the worker does {:.0} % of its throughput ({:.1} vs {:.1} msgs/s) \
             at {} × its CPU per message ({} vs {} ms)",
            p.worker.prefetch,
            p.worker.latency_ms,
            p.throughput_ratio() * 100.0,
            p.worker.per_second(),
            p.floor.per_second(),
            num(p.cpu_ratio(), 2),
            num(p.worker.cpu_ms_per_message(), 2),
            num(p.floor.cpu_ms_per_message(), 2),
        );
    }
    println!(
        "steady: {} invoices published one by one at {:.0} msgs/s ({:.0} % of fresh): p50 latency {} ms = {} of the run",
        report.steady.messages,
        report.steady_per_second,
        opts.steady_share * 100.0,
        ms(report.steady.percentile(0.5)),
        report.steady.p50_share().map(|s| format!("{:.1} %", s * 100.0)).unwrap_or_else(|| "-".into()),
    );
    println!(
        "CPU and peak RSS are the worker process's own; PG RT (round trips: Sync + Query messages) and stmt \
         (Execute + Query) are counted on the wire, xact by the server (pg_stat_database, including the worker's start and stop)."
    );
    println!(
        "box ms/msg: the whole machine's busy CPU per message (worker, simulator, PostgreSQL, RabbitMQ; /proc/stat); \
         sim ms/msg: this process's (the simulator and the load generator). {} cores cannot finish more than \
         {} / box ms/msg × 1000 messages a second, whatever the worker does.",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    let mut failed = false;
    for r in report.all() {
        if r.missing() > 0 {
            failed = true;
            println!("FAIL {}: {} of {} replies missing after the timeout", r.label, r.missing(), r.messages);
        }
        if !r.unexpected.is_empty() {
            failed = true;
            println!("FAIL {}: {} unexpected replies, e.g. {}", r.label, r.unexpected.len(), r.unexpected[0]);
        }
        if let Some((seen, want)) = r.generate_calls.filter(|(seen, want)| seen != want) {
            failed = true;
            println!("FAIL {}: the simulator saw {seen} generate calls, expected {want}", r.label);
        }
    }
    if !failed {
        println!("all replies arrived; one generate call per fresh invoice, none on the replay");
    }
    println!("BENCH_RESULT {}", report.json());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn frame_reader_counts_messages_split_anywhere() {
        // An SSLRequest, the startup message, then a simple query and an extended-protocol exchange.
        let mut stream = Vec::new();
        stream.extend_from_slice(&8u32.to_be_bytes());
        stream.extend_from_slice(&80_877_103u32.to_be_bytes());
        let startup = b"\x00\x03\x00\x00user\x00postgres\x00\x00";
        stream.extend_from_slice(&(startup.len() as u32 + 4).to_be_bytes());
        stream.extend_from_slice(startup);
        stream.extend(message(b'Q', b"BEGIN\0"));
        for ty in [b'P', b'D', b'S', b'B', b'E', b'S'] {
            stream.extend(message(ty, b"\0\0xyz"));
        }
        // Q inside a payload must not be counted: its bytes belong to the message before.
        stream.extend(message(b'B', b"QQQQSSSS"));
        for chunk in [1, 3, 7, stream.len()] {
            let counts = WireCounts::default();
            let mut reader = FrameReader::default();
            for part in stream.chunks(chunk) {
                reader.feed(part, &counts);
            }
            let s = counts.snapshot();
            assert_eq!((s.round_trips, s.statements, s.parses), (3, 2, 1), "chunks of {chunk}");
        }
    }
}
