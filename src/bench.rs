//! `einvoice-worker bench`: throughput of the whole pipeline against the built-in simulator.
//!
//! Every scenario is the demo's pattern at scale: a fresh namespace (`bench<uuid8>.`), the
//! `einvoice_bench` database emptied, a simulator answering every API call after a fixed
//! latency, and a worker with the scenario's prefetch. It publishes N distinct invoices
//! (doc numbers `B<run>/<i>`) with a reply queue, waits for N `irn.generated` replies and
//! measures the wall time and each invoice's publish → reply latency (matched by correlation id).
//!
//! Figures are ratios against the baseline (prefetch 1: one IRP call at a time) measured in
//! the same process, because absolute numbers on shared machines are noise. The simulator's
//! generate-call count is a correctness check (exactly one call per fresh document, none on a
//! replay) and fails the command, as does any missing or unexpected reply.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use rand::RngCore as _;
use serde_json::{json, Value};

use crate::amqp::{self, Topology};
use crate::config::{ProviderKind, Settings, DEFAULT_AMQP_URL};
use crate::runtime::worker;
use crate::samples::{self, SAMPLES};
use crate::sim::{self, Simulator};

/// Where the benchmark runs and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub invoices: usize,
    pub latency_ms: u64,
    pub provider: ProviderKind,
    pub amqp_url: String,
    pub database_url: String,
}

impl BenchOptions {
    /// The broker from `EINVOICE_AMQP_URL`, the database from `EINVOICE_BENCH_DATABASE_URL`
    /// (default `postgres://postgres@127.0.0.1:5432/einvoice_bench`, which the bench empties).
    pub fn from_env(invoices: usize, latency_ms: u64, provider: ProviderKind) -> BenchOptions {
        BenchOptions {
            invoices,
            latency_ms,
            provider,
            amqp_url: std::env::var("EINVOICE_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into()),
            database_url: std::env::var("EINVOICE_BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/einvoice_bench".into()),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub label: String,
    pub provider: ProviderKind,
    pub prefetch: u16,
    /// Invoices published.
    pub invoices: usize,
    /// Correct `irn.generated` replies.
    pub answered: usize,
    /// Replies of another type, or fresh/replayed when the other was expected.
    pub unexpected: Vec<String>,
    /// From the first publish to the last reply.
    pub wall: Duration,
    /// Publish → reply, sorted.
    pub latencies: Vec<Duration>,
    /// Generate calls the simulator saw during this scenario, and how many it should have.
    pub generate_calls: u64,
    pub expected_calls: u64,
}

impl ScenarioResult {
    pub fn missing(&self) -> usize {
        self.invoices.saturating_sub(self.answered + self.unexpected.len())
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
    pub fn passed(&self) -> bool {
        self.missing() == 0 && self.unexpected.is_empty() && self.generate_calls == self.expected_calls
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub results: Vec<ScenarioResult>,
}

impl BenchReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(ScenarioResult::passed)
    }
    /// Throughput of a scenario relative to the first one (the baseline).
    pub fn ratio(&self, r: &ScenarioResult) -> f64 {
        let base = self.results.first().map(ScenarioResult::per_second).unwrap_or(0.0);
        if base > 0.0 {
            r.per_second() / base
        } else {
            0.0
        }
    }
}

struct Scenario {
    label: String,
    provider: ProviderKind,
    prefetch: u16,
    /// Also publish the same invoices a second time on the same worker and store.
    replay: bool,
}

/// Run every scenario, print the table, return the figures (check [`BenchReport::passed`]).
pub async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.invoices >= 1 && opts.invoices <= 999_999, "--invoices must be between 1 and 999999");
    let other = match opts.provider {
        ProviderKind::Whitebooks => ProviderKind::Nic,
        ProviderKind::Nic => ProviderKind::Whitebooks,
    };
    let p = opts.provider;
    let scenarios = [
        Scenario { label: "baseline (prefetch 1)".into(), provider: p, prefetch: 1, replay: false },
        Scenario { label: "prefetch 8".into(), provider: p, prefetch: 8, replay: false },
        Scenario { label: "prefetch 32".into(), provider: p, prefetch: 32, replay: true },
        Scenario { label: "prefetch 64".into(), provider: p, prefetch: 64, replay: false },
        Scenario { label: format!("prefetch 32, {}", other.as_str()), provider: other, prefetch: 32, replay: false },
    ];
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "einvoice-worker bench: {} invoices per scenario, simulated IRP latency {} ms per API call, provider {}, {} cores",
        opts.invoices,
        opts.latency_ms,
        p.as_str(),
        cores
    );
    let mut results = Vec::new();
    for s in &scenarios {
        eprintln!("running: {} ({})", s.label, s.provider.as_str());
        results.extend(run_scenario(&opts, s).await.with_context(|| format!("scenario '{}'", s.label))?);
    }
    let report = BenchReport { results };
    print_report(&opts, &report);
    Ok(report)
}

/// A fresh namespace, database, simulator and worker; one measured pass, two with `replay`.
async fn run_scenario(opts: &BenchOptions, s: &Scenario) -> anyhow::Result<Vec<ScenarioResult>> {
    let sim = Simulator::start("127.0.0.1:0").await.context("starting the IRP simulator")?;
    sim.core.update_faults(|f| f.latency_ms = opts.latency_ms);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let namespace = format!("bench{}.", &id[..8]);
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let mut toml = format!(
        "amqp_url = \"{}\"\ndatabase_url = \"{}\"\nnamespace = \"{namespace}\"\nprefetch = {}\nretry_min_delay_ms = 200\nretry_max_delay_ms = 2000\ntoken_key = \"{}\"\n",
        opts.amqp_url,
        opts.database_url,
        s.prefetch,
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let sellers: BTreeSet<String> = SAMPLES.iter().map(|(n, _)| samples::seller(&samples::stamped(n, None))).collect();
    for gstin in &sellers {
        toml.push_str(&sim::gstin_toml(&sim.base_url(), s.provider, gstin));
    }
    let settings = Settings::from_toml(&toml)?;
    let db = worker::prepare_db(&settings).await?;
    // The bench owns its database: every scenario registers afresh.
    db.reset_all().await?;
    drop(db);

    // The URL may carry a password: name only host and port (the error does).
    let conn = amqp::connect(&opts.amqp_url, "einvoice-bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}; start it with `rabbitmq-server -detached`, or set EINVOICE_AMQP_URL"))?;
    let topology = Topology::new(&settings);
    let outcome = measure(opts, s, &sim, &conn, &topology, settings, &id[8..14]).await;
    // Whatever happened, leave nothing behind on the broker.
    if let Err(e) = delete_topology(&conn, &topology).await {
        eprintln!("warning: could not delete the {namespace} queues and exchanges: {e}");
    }
    let _ = conn.close(200, "bench done".into()).await;
    outcome
}

async fn measure(
    opts: &BenchOptions,
    s: &Scenario,
    sim: &Simulator,
    conn: &Connection,
    topology: &Topology,
    settings: Settings,
    run: &str,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let ch = amqp::confirm_channel(conn).await?;
    topology.declare(&ch).await?;
    let (reply_queue, mut consumer) = amqp::reply_queue(&ch, "bench", true).await?;
    let handle = worker::start(settings).await?;
    let result = async {
        wait_for_consumer(&ch, &topology.jobs).await?;
        // Distinct documents, cycling through the samples so every scenario sends the same mix.
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..opts.invoices)
                .map(|i| {
                    let number = format!("B{run}/{i}");
                    debug_assert!(number.len() <= 16);
                    let inv = samples::stamped(SAMPLES[i % SAMPLES.len()].0, Some(&number));
                    json!({"gstin": samples::seller(&inv), "invoice": inv}).to_string().into_bytes()
                })
                .collect(),
        );
        let mut out = Vec::new();
        let before = sim.core.stats().generate_calls;
        let mut fresh = pass(&ch, topology, &reply_queue, &mut consumer, bodies.clone(), "fresh", false, opts).await?;
        fresh.label = s.label.clone();
        fresh.provider = s.provider;
        fresh.prefetch = s.prefetch;
        fresh.generate_calls = sim.core.stats().generate_calls - before;
        fresh.expected_calls = opts.invoices as u64;
        out.push(fresh);
        if s.replay {
            let before = sim.core.stats().generate_calls;
            let mut again = pass(&ch, topology, &reply_queue, &mut consumer, bodies, "replay", true, opts).await?;
            again.label = "replay (from the store)".into();
            again.provider = s.provider;
            again.prefetch = s.prefetch;
            again.generate_calls = sim.core.stats().generate_calls - before;
            again.expected_calls = 0;
            out.push(again);
        }
        anyhow::Ok(out)
    }
    .await;
    handle.stop().await?;
    result
}

/// Publishing before the worker subscribes would count its start-up as throughput.
async fn wait_for_consumer(ch: &Channel, queue: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
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
        anyhow::ensure!(Instant::now() < deadline, "the worker did not subscribe to {queue} within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publish every body (pipelined, confirms awaited at the end) while collecting the replies.
#[allow(clippy::too_many_arguments)]
async fn pass(
    ch: &Channel,
    topology: &Topology,
    reply_queue: &str,
    consumer: &mut lapin::Consumer,
    bodies: Arc<Vec<Vec<u8>>>,
    tag: &str,
    expect_replayed: bool,
    opts: &BenchOptions,
) -> anyhow::Result<ScenarioResult> {
    let n = bodies.len();
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    // Generous: every invoice strictly one after the other at several times the IRP latency.
    let limit = Duration::from_secs(60) + Duration::from_millis((opts.latency_ms + 50) * 4 * n as u64);
    let deadline = tokio::time::Instant::now() + limit;
    let start = Instant::now();
    let mut publisher = tokio::spawn(publish_all(
        ch.clone(),
        topology.commands.clone(),
        bodies,
        tag.to_string(),
        reply_queue.to_string(),
        sent.clone(),
    ));
    let mut published = false;
    let mut seen = vec![false; n];
    let (mut settled, mut last) = (0usize, start);
    let mut latencies = Vec::with_capacity(n);
    let mut unexpected = Vec::new();
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
                let ev: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
                let ty = ev["event_type"].as_str().unwrap_or("?");
                let replayed = ev["data"]["replayed"].as_bool().unwrap_or(false);
                if ty != "irn.generated" || replayed != expect_replayed {
                    unexpected.push(format!("{corr}: {ty} (replayed: {replayed}) {}", ev["data"]["errors"]));
                    continue;
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
    Ok(ScenarioResult {
        label: String::new(),
        provider: ProviderKind::Whitebooks,
        prefetch: 0,
        invoices: n,
        answered: latencies.len(),
        unexpected,
        wall: last.saturating_duration_since(start),
        latencies,
        generate_calls: 0,
        expected_calls: 0,
    })
}

async fn publish_all(
    ch: Channel,
    exchange: String,
    bodies: Arc<Vec<Vec<u8>>>,
    tag: String,
    reply_queue: String,
    sent: Arc<Mutex<Vec<Option<Instant>>>>,
) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.iter().enumerate() {
        let props = amqp::json_props()
            .with_correlation_id(ShortString::from(format!("{tag}-{i}")))
            .with_reply_to(ShortString::from(reply_queue.as_str()))
            .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string()));
        sent.lock().expect("bench lock")[i] = Some(Instant::now());
        let confirm = ch
            .basic_publish(
                exchange.as_str().into(),
                "irn.generate".into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                body,
                props,
            )
            .await?;
        confirms.push(confirm);
    }
    for c in confirms {
        let confirm = c.await?;
        anyhow::ensure!(!confirm.is_nack(), "RabbitMQ refused a command on {exchange}");
        anyhow::ensure!(confirm.take_message().is_none(), "a command on {exchange} was unroutable");
    }
    Ok(())
}

/// Delete the scenario's queues and exchanges (the reply queue goes with the connection).
async fn delete_topology(conn: &Connection, t: &Topology) -> Result<(), lapin::Error> {
    let ch = conn.create_channel().await?;
    let mut queues = vec![t.jobs.clone(), t.dead.clone()];
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

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into())
}

fn print_report(opts: &BenchOptions, report: &BenchReport) {
    println!();
    println!(
        "{:<26} {:<10} {:>8} {:>11} {:>8} {:>8} {:>11}  generate calls",
        "scenario", "provider", "prefetch", "invoices/s", "p50 ms", "p99 ms", "vs baseline"
    );
    for r in &report.results {
        let check = if r.generate_calls == r.expected_calls { "ok" } else { "WRONG" };
        println!(
            "{:<26} {:<10} {:>8} {:>11.1} {:>8} {:>8} {:>10.2}x  {} (expected {}) {check}",
            r.label,
            r.provider.as_str(),
            r.prefetch,
            r.per_second(),
            ms(r.percentile(0.50)),
            ms(r.percentile(0.99)),
            report.ratio(r),
            r.generate_calls,
            r.expected_calls
        );
    }
    if opts.latency_ms > 0 {
        println!(
            "\nAt {} ms per IRP call, one call at a time cannot exceed {:.0} invoices/s; p50/p99 run from each \
             publish to its reply, so they include the wait behind the rest of the burst.",
            opts.latency_ms,
            1000.0 / opts.latency_ms as f64
        );
    }
    let mut failed = false;
    for r in &report.results {
        if r.missing() > 0 {
            failed = true;
            println!("FAIL {}: {} of {} replies missing after the timeout", r.label, r.missing(), r.invoices);
        }
        if !r.unexpected.is_empty() {
            failed = true;
            println!("FAIL {}: {} unexpected replies, e.g. {}", r.label, r.unexpected.len(), r.unexpected[0]);
        }
        if r.generate_calls != r.expected_calls {
            failed = true;
            println!(
                "FAIL {}: the simulator saw {} generate calls, expected {}",
                r.label, r.generate_calls, r.expected_calls
            );
        }
    }
    if !failed {
        println!("all replies arrived; one generate call per fresh invoice, none on the replay");
    }
}
