//! `einvoice-worker bench-gstins`: a worker process serving N GSTINs kept in the database
//! (issue 27: start-up time, memory and per-command cost independent of the number of GSTINs).
//! For each N: a fresh database with N sealed `gstins` rows (the samples' two sellers among
//! them), then `einvoice-worker run` as a child process: the time from its spawn to its consumer
//! on the jobs queue, its resident set then, and a pass of invoices for the samples' sellers.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use base64::Engine;
use rand::RngCore;
use serde_json::json;

use super::{delete_topology, pass, wait_for_consumer, BenchOptions, Expect, Target, WorkerProcess};
use crate::amqp::{self, Topology};
use crate::config::Settings;
use crate::runtime::worker;
use crate::samples::{self, SAMPLES};
use crate::sim::{self, Simulator};
use crate::store::secrets::SecretBox;

/// One N's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GstinsResult {
    pub gstins: usize,
    /// Spawn → consuming (migrations already applied: a restart, not a first install).
    pub startup_ms: f64,
    /// VmRSS when it started consuming.
    pub rss_mib_started: f64,
    /// VmHWM after the pass.
    pub peak_rss_mib: f64,
    pub invoices: usize,
    pub pass_ms: f64,
    pub p50_ms: Option<f64>,
    pub cpu_ms_per_message: f64,
}

/// `count` distinct valid GSTINs of Karnataka (a PAN-shaped middle numbered `i`).
fn gstin(i: usize) -> String {
    let first14 = format!("29ABCDE{:04}F1Z", i % 10_000);
    let first14 = if i < 10_000 { first14 } else { format!("29ABCDF{:04}F{}Z", i % 10_000, (i / 10_000) % 9 + 1) };
    let check = crate::domain::gstin::check_digit(&first14).expect("a well-formed GSTIN body");
    format!("{first14}{check}")
}

fn vm(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

pub async fn run(opts: &BenchOptions, counts: &[usize], invoices: usize) -> anyhow::Result<Vec<GstinsResult>> {
    let conn = amqp::connect(&opts.amqp_url, "einvoice-bench-gstins").await?;
    let mut out = Vec::new();
    for &n in counts {
        eprintln!("running: a worker with {n} GSTINs in the database");
        out.push(one(opts, &conn, n, invoices).await.with_context(|| format!("{n} GSTINs"))?);
    }
    let _ = conn.close(200, "bench done".into()).await;
    println!(
        "\n{:>7}  {:>11}  {:>12}  {:>9}  {:>9}  {:>8}  {:>10}",
        "GSTINs", "start-up", "RSS started", "peak RSS", "pass", "p50", "CPU/msg"
    );
    for r in &out {
        println!(
            "{:>7}  {:>8.0} ms  {:>8.1} MiB  {:>5.1} MiB  {:>6.0} ms  {:>5} ms  {:>7.2} ms",
            r.gstins,
            r.startup_ms,
            r.rss_mib_started,
            r.peak_rss_mib,
            r.pass_ms,
            r.p50_ms.map_or("-".into(), |p| format!("{p:.0}")),
            r.cpu_ms_per_message
        );
    }
    if let (Some(a), Some(b)) = (out.first(), out.last()) {
        println!(
            "ratio {} → {} GSTINs: start-up ×{:.2}, RSS ×{:.2}, CPU per message ×{:.2} (issue 27: within 2×)",
            a.gstins,
            b.gstins,
            b.startup_ms / a.startup_ms,
            b.rss_mib_started / a.rss_mib_started,
            b.cpu_ms_per_message / a.cpu_ms_per_message
        );
    }
    Ok(out)
}

async fn one(opts: &BenchOptions, conn: &lapin::Connection, n: usize, invoices: usize) -> anyhow::Result<GstinsResult> {
    let sim = Simulator::start("127.0.0.1:0").await.context("starting the IRP simulator")?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let namespace = format!("benchg{}.", &id[..8]);
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    // Its own database: the main bench's is emptied by other runs.
    let database_url = format!("{}_gstins", opts.database_url);
    let toml = format!(
        "amqp_url = \"{}\"\ndatabase_url = \"{database_url}\"\nnamespace = \"{namespace}\"\nprefetch = 32\ntoken_key = \"{key}\"\n",
        opts.amqp_url
    );
    let settings = Settings::from_toml(&toml)?;
    let db = worker::prepare_db(&settings).await?;
    db.reset_all().await?;
    db.client().await?.batch_execute("TRUNCATE gstins").await?;
    let sbox = SecretBox::from_config(settings.token_key.as_ref())?;
    let sellers: BTreeSet<String> = SAMPLES.iter().map(|(s, _)| samples::seller(&samples::stamped(s, None))).collect();
    let all: Vec<String> = sellers
        .iter()
        .cloned()
        .chain((0..).map(gstin).filter(|g| !sellers.contains(g)))
        .take(n.max(sellers.len()))
        .collect();
    for g in &all {
        // Every row points at the simulator (one section each, as a GSP would have).
        let section = sim::gstin_toml(&sim.base_url(), opts.provider, g);
        let cfg = Settings::from_toml(&section)?.gstins.remove(g).context("the sim's section")?;
        db.gstin_add(g, &cfg, &sbox).await?;
    }
    drop(db);
    let topology = Topology::new(&settings);
    let ch = amqp::confirm_channel(conn).await?;
    topology.declare(conn).await?;
    let (reply_queue, mut consumer) = amqp::reply_queue(&ch, "bench", true).await?;
    let target = Target { exchange: topology.commands.clone(), routing_key: "irn.generate".into() };
    let spawned = Instant::now();
    let worker = WorkerProcess::start(&opts.worker_exe, &toml, &id).await?;
    let measured = async {
        wait_for_consumer(&ch, &topology.jobs).await?;
        let startup = spawned.elapsed();
        let rss_started = vm(&worker.proc_file("status")?, "VmRSS:").context("no VmRSS")?;
        let bodies: Vec<Vec<u8>> = (0..invoices)
            .map(|i| {
                let inv = samples::stamped(SAMPLES[i % SAMPLES.len()].0, Some(&format!("G{}/{i}", &id[..6])));
                json!({"gstin": samples::seller(&inv), "invoice": inv}).to_string().into_bytes()
            })
            .collect();
        let cpu_before = worker.cpu()?;
        let r = pass(
            &ch,
            &target,
            &reply_queue,
            &mut consumer,
            Arc::new(bodies),
            "gstins",
            Expect::Generated { replayed: false },
            0,
            None,
        )
        .await?;
        anyhow::ensure!(r.answered == invoices, "{} of {invoices} invoices generated ({:?})", r.answered, r.unexpected);
        let cpu = worker.cpu()?.saturating_sub(cpu_before);
        Ok(GstinsResult {
            gstins: all.len(),
            startup_ms: startup.as_secs_f64() * 1000.0,
            rss_mib_started: rss_started,
            peak_rss_mib: worker.peak_rss()? as f64 / (1024.0 * 1024.0),
            invoices,
            pass_ms: r.wall.as_secs_f64() * 1000.0,
            p50_ms: r.percentile(0.5).map(|d| d.as_secs_f64() * 1000.0),
            cpu_ms_per_message: cpu.as_secs_f64() * 1000.0 / invoices as f64,
        })
    }
    .await;
    worker.stop().await?;
    if let Err(e) = delete_topology(conn, &topology).await {
        eprintln!("warning: could not delete the {namespace} queues and exchanges: {e}");
    }
    let _ = ch.close(200, "bench scenario done".into()).await;
    measured
}
