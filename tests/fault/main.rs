//! The fault test (issue 9): the whole system under every fault we know, then the books.
//!
//! It starts its own RabbitMQ node and PostgreSQL cluster on free ports (so it can restart
//! them), three `einvoice-worker run` processes and the IRP simulator with a share of 503s,
//! generate calls that commit and then time out, and forced 1005s. It publishes a few thousand
//! invoices with ~2 % re-sends (some back to back, some later) and a few hundred malformed or
//! invalid commands, kill -9s a worker repeatedly and replaces it, restarts the broker and the
//! database once each and injects an IRP outage. Then it checks, from the captured events, the
//! database, the queues, the simulator's counters and the workers' logs: every message answered
//! exactly once (at-least-once duplicates must say `replayed`), one IRN per document, no second
//! generate call for any document, no GSTIN paused by a token hiccup, nothing stuck in queues or
//! the outbox, no secret in any log line. Its last line is the figures.
//!
//! Sizes and shares are environment variables (`FAULT_*`, see `Mix::from_env`); the defaults
//! are the mix sized for a 2-core machine. `fault_cluster_leader_kill` is the variant
//! on a three-node cluster that kills the node leading the jobs queue mid-run;
//! `fault_pg_failover_*` (in `failover.rs`) fail PostgreSQL over to a promoted streaming standby
//! under a steady load, with synchronous and with asynchronous replication.
mod bus;
mod failover;
mod infra;
mod mix;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use einvoice_worker::amqp::Topology;
use einvoice_worker::config::{ProviderKind, Settings};
use einvoice_worker::sim::{self, Simulator};
use rand::{Rng, SeedableRng};

use bus::{Events, Publisher};
use infra::{PgCluster, RabbitNode, TempDir, Workers};

/// The two tests share the machine's two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The mix; every figure can be changed with the environment variable in its comment.
#[derive(Debug, Clone)]
struct Mix {
    invoices: usize,      // FAULT_INVOICES
    resend_pct: f64,      // FAULT_RESEND_PCT: share of invoices sent again (half back to back, half later)
    bad: usize,           // FAULT_BAD: malformed / invalid commands
    workers: usize,       // FAULT_WORKERS
    kills: usize,         // FAULT_KILLS: kill -9 of a worker (each replaced at once)
    broker_restart: bool, // FAULT_BROKER_RESTART (1/0)
    db_restart: bool,     // FAULT_DB_RESTART (1/0)
    outage_secs: u64,     // FAULT_OUTAGE_SECS: IRP answers 503 to everything for this long
    p_5xx: f64,           // FAULT_P_5XX
    p_timeout: f64,       // FAULT_P_TIMEOUT: generate commits, then answers after the read timeout
    p_1005: f64,          // FAULT_P_1005: the IRP says 1005 to a valid token
    seed: u64,            // FAULT_SEED
    deadline_secs: u64,   // FAULT_DEADLINE_SECS: give up waiting for answers after this (from the start)
    stall_secs: u64,      // FAULT_STALL_SECS: …or when no new answer came for this long
    lease_secs: u64,      // FAULT_LEASE_SECS: the workers' lease_secs (short, so kills cost little time)
    ewaybills: usize,     // FAULT_EWAYBILLS: e-way bills without an IRN, each then extended or handed to a transporter
}

impl Mix {
    fn from_env(invoices: usize) -> Mix {
        let flag = |k: &str| env_or(k, 1u8) != 0;
        Mix {
            invoices: env_or("FAULT_INVOICES", invoices),
            resend_pct: env_or("FAULT_RESEND_PCT", 2.0),
            bad: env_or("FAULT_BAD", 300),
            workers: env_or("FAULT_WORKERS", 3),
            kills: env_or("FAULT_KILLS", 5),
            broker_restart: flag("FAULT_BROKER_RESTART"),
            db_restart: flag("FAULT_DB_RESTART"),
            outage_secs: env_or("FAULT_OUTAGE_SECS", 4),
            p_5xx: env_or("FAULT_P_5XX", 0.03),
            p_timeout: env_or("FAULT_P_TIMEOUT", 0.01),
            p_1005: env_or("FAULT_P_1005", 0.02),
            seed: env_or("FAULT_SEED", 9),
            deadline_secs: env_or("FAULT_DEADLINE_SECS", 900),
            stall_secs: env_or("FAULT_STALL_SECS", 120),
            lease_secs: env_or("FAULT_LEASE_SECS", 5),
            ewaybills: env_or("FAULT_EWAYBILLS", invoices / 16),
        }
    }
}

/// What one published message was.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Invoice,
    Resend,
    Bad(&'static str),
    /// `ewaybill.generate` without an IRN, and its re-sends.
    Ewaybill,
    EwaybillResend,
    /// `ewaybill.extend` / `ewaybill.update_transporter` of an e-way bill the run made.
    Extend,
    Transporter,
}

impl Sent {
    /// The answer this command must end in (the rest of the mix is checked on its own).
    fn expected(&self) -> Option<&'static str> {
        match self {
            Sent::Invoice | Sent::Resend => Some("irn.generated"),
            Sent::Ewaybill | Sent::EwaybillResend => Some("ewaybill.generated"),
            Sent::Extend => Some("ewaybill.extended"),
            Sent::Transporter => Some("ewaybill.transporter_updated"),
            Sent::Bad(_) => None,
        }
    }
}

/// Events that answer no command.
fn is_notice(event_type: &str) -> bool {
    matches!(event_type, "gstin.paused" | "ewaybill.expiring")
}

/// Secrets the logs must never contain.
struct Secrets {
    amqp_password: String,
    db_password: String,
    token_key: String,
    gstin_passwords: Vec<String>,
    client_secrets: Vec<String>,
}

impl Secrets {
    fn new() -> Secrets {
        let r = || uuid::Uuid::new_v4().simple().to_string();
        let key: [u8; 32] = rand::random();
        use base64::Engine;
        Secrets {
            amqp_password: format!("amqp-{}", r()),
            db_password: format!("pg-{}", r()),
            token_key: base64::engine::general_purpose::STANDARD.encode(key),
            gstin_passwords: vec![format!("pw-{}", r()), format!("pw-{}", r())],
            client_secrets: vec![format!("cs-{}", r()), format!("cs-{}", r())],
        }
    }
}

/// Everything one run owns; dropped in field order (workers before their servers).
struct Rig {
    workers: Workers,
    sim: Simulator,
    nodes: Vec<RabbitNode>,
    pg: PgCluster,
    /// The streaming standby of `pg`, when the run has one (the failover test).
    standby: Option<PgCluster>,
    secrets: Secrets,
    topology: Topology,
    amqp_urls: Vec<String>,
    db_url: String,
    events: Events,
    capture: tokio::task::JoinHandle<()>,
    capture_stop: tokio_util::sync::CancellationToken,
    started: Instant,
    dir: TempDir,
}

const MAX_MESSAGE_BYTES: usize = 65_536;

/// Run blocking process control without starving the runtime (the simulator lives on it).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The run's PostgreSQL: one cluster, or a primary with a streaming standby.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PgPlan {
    Single,
    Replicated { synchronous: bool },
}

impl Rig {
    async fn start(tag: &str, mix: &Mix, cluster_nodes: usize, plan: PgPlan) -> Rig {
        let started = Instant::now();
        let dir = TempDir::new(tag);
        let secrets = Secrets::new();
        let pid = std::process::id();
        let mut nodes: Vec<RabbitNode> =
            (0..cluster_nodes).map(|i| RabbitNode::new(&dir.0, &format!("{tag}-{pid}-{i}"))).collect();
        blocking(|| {
            for n in nodes.iter_mut() {
                n.start();
            }
            for n in nodes.iter().skip(1) {
                n.ctl_ok(&["stop_app"]);
                n.ctl_ok(&["reset"]);
                n.ctl_ok(&["join_cluster", &nodes[0].name]);
                n.ctl_ok(&["start_app"]);
            }
            nodes[0].ctl_ok(&["add_user", "fault", &secrets.amqp_password]);
            nodes[0].ctl_ok(&["set_permissions", "-p", "/", "fault", ".*", ".*", ".*"]);
        });
        let pg = blocking(|| PgCluster::start(&format!("{tag}{pid}")));
        let standby = match plan {
            PgPlan::Single => None,
            PgPlan::Replicated { synchronous } => Some(blocking(|| {
                let standby = PgCluster::standby_of(&pg, &format!("{tag}{pid}s"));
                if synchronous {
                    pg.make_synchronous();
                }
                standby
            })),
        };
        let amqp_urls: Vec<String> =
            nodes.iter().map(|n| format!("amqp://fault:{}@127.0.0.1:{}/%2f", secrets.amqp_password, n.port)).collect();
        // With a standby, the deployment's recommended URL: every host, and only a primary will do.
        let db_url = match &standby {
            None => format!("postgres://postgres:{}@127.0.0.1:{}/einvoice_fault", secrets.db_password, pg.port),
            Some(s) => format!(
                "postgres://postgres:{}@127.0.0.1:{},127.0.0.1:{}/einvoice_fault?target_session_attrs=read-write&connect_timeout=5",
                secrets.db_password, pg.port, s.port
            ),
        };

        let sim = Simulator::start("127.0.0.1:0").await.expect("simulator starts");
        sim.core.seed(mix.seed);
        sim.core.update_faults(|f| {
            f.fail_5xx_ratio = mix.p_5xx;
            f.p_commit_then_timeout = mix.p_timeout;
            f.p_force_1005 = mix.p_1005;
            f.timeout_hang_ms = 2_500;
            f.token_ttl_secs = 120;
            // E-way bills near their end from the start: an extension is inside NIC's window.
            f.ewb_valid_hours = Some(2);
            f.passwords.insert(mix::SELLER_KA.into(), secrets.gstin_passwords[0].clone());
            f.passwords.insert(mix::SELLER_MH.into(), secrets.gstin_passwords[1].clone());
        });
        // Short retry tiers: a command that met several faults in a row (a 503 window, a forced
        // 1005, a commit-then-timeout) is retried within the audit's window; the default third
        // tier (5 min) would outlast it and be counted stuck though nothing is wrong.
        let mut toml = format!(
            "amqp_url = \"{}\"\ndatabase_url = \"{db_url}\"\nprefetch = 16\nlease_secs = {}\npause_secs = 2\n\
             http_connect_timeout_ms = 1000\nhttp_read_timeout_ms = 1500\nretry_min_delay_ms = 100\n\
             retry_max_delay_ms = 1000\nretry_max_times = 4\nretry_max_age_secs = 900\nretry_tiers_secs = \"2,5,15\"\n\
             token_refresh_margin_secs = 30\nmax_message_bytes = {MAX_MESSAGE_BYTES}\ntoken_key = \"{}\"\n",
            amqp_urls.join(","),
            mix.lease_secs,
            secrets.token_key
        );
        for (i, (g, p)) in
            [(mix::SELLER_KA, ProviderKind::Whitebooks), (mix::SELLER_MH, ProviderKind::Nic)].iter().enumerate()
        {
            toml.push_str(
                &sim::gstin_toml(&sim.base_url(), *p, g)
                    .replace("\"sim-password\"", &format!("\"{}\"", secrets.gstin_passwords[i]))
                    .replace("\"sim-client-secret\"", &format!("\"{}\"", secrets.client_secrets[i])),
            );
        }
        let settings = Settings::from_toml(&toml).expect("fault settings parse");
        let topology = Topology::new(&settings);
        let config = dir.0.join("worker.toml");
        std::fs::write(&config, &toml).unwrap();

        // Topology and the capture queue exist before the first event.
        let conn = bus::connect_any(&amqp_urls, "fault-setup").await.expect("own broker reachable");
        let ch = conn.create_channel().await.unwrap();
        topology.declare(&conn).await.expect("declare topology");
        bus::declare_capture(&ch, &topology.events).await;
        let _ = conn.close(200, "setup done".into()).await;
        let events: Events = Default::default();
        let capture_stop = tokio_util::sync::CancellationToken::new();
        let capture = bus::spawn_capture(amqp_urls.clone(), events.clone(), capture_stop.clone());

        // The database is created and migrated once, as a deployment's migrate step would.
        let migrated = blocking(|| {
            std::process::Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
                .arg("migrate")
                .env("EINVOICE_CONFIG", &config)
                .output()
                .expect("einvoice-worker migrate runs")
        });
        assert!(migrated.status.success(), "migrate: {}", String::from_utf8_lossy(&migrated.stderr));
        let rust_log = std::env::var("FAULT_RUST_LOG").unwrap_or_else(|_| "info".into());
        let workers = Workers::start(mix.workers, &config, vec![("RUST_LOG".into(), rust_log)], &dir.0);
        Rig {
            workers,
            sim,
            nodes,
            pg,
            standby,
            secrets,
            topology,
            amqp_urls,
            db_url,
            events,
            capture,
            capture_stop,
            started,
            dir,
        }
    }

    fn answered_ids(&self) -> HashSet<String> {
        let ev = self.events.lock().unwrap();
        ev.values().filter(|e| !is_notice(&e.event_type)).filter_map(|e| e.message_id.clone()).collect()
    }

    async fn db(&self) -> Option<tokio_postgres::Client> {
        let (c, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await.ok()?;
        tokio::spawn(conn);
        Some(c)
    }

    /// Wait until at least `n` of `ids` are answered (or `secs` pass); restarts crashed workers.
    async fn wait_answered(&mut self, ids: &[String], n: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let answered = self.answered_ids();
            if ids.iter().filter(|i| answered.contains(*i)).count() >= n || Instant::now() > deadline {
                return;
            }
            self.workers.reap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every message answered, the outbox empty and no job left unfinished (or the deadline).
    async fn wait_quiet(&mut self, ids: &[String], deadline: Instant, stall: Duration) {
        let (mut seen, mut progress) = (0, Instant::now());
        loop {
            let total = self.events.lock().unwrap().len();
            if total > seen {
                (seen, progress) = (total, Instant::now());
            }
            let all = {
                let a = self.answered_ids();
                ids.iter().all(|i| a.contains(i))
            };
            if all {
                if let Some(c) = self.db().await {
                    let q = "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL) + \
                             (SELECT count(*) FROM jobs WHERE status IN ('pending', 'in_flight'))";
                    if let Ok(r) = c.query_one(q, &[]).await {
                        if r.get::<_, i64>(0) == 0 {
                            return;
                        }
                    }
                }
            }
            if Instant::now() > deadline || progress.elapsed() > stall {
                return;
            }
            self.workers.reap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// (queue → messages ready + unacknowledged) on our broker.
    fn queue_depths(&self) -> BTreeMap<String, i64> {
        let node = self.nodes.iter().find(|n| n.ctl(&["-q", "status"]).status.success()).expect("a live node");
        let out = node.ctl_ok(&["list_queues", "-q", "--no-table-headers", "name", "messages"]);
        out.lines()
            .filter_map(|l| {
                let mut p = l.split_whitespace();
                Some((p.next()?.to_string(), p.next()?.parse().ok()?))
            })
            .collect()
    }
}

/// One figure of the result line, and whether it is a failure.
struct Figure {
    text: String,
    failed: Option<String>,
}

fn fig(text: String) -> Figure {
    Figure { text, failed: None }
}

fn check(text: String, bad: usize, why: &str) -> Figure {
    Figure { failed: (bad > 0).then(|| format!("{text}: {why}")), text }
}

/// Publish the mix while `faults` strike between chunks, then wait for quiet and audit.
async fn run(tag: &str, mix: Mix, cluster_nodes: usize, leader_kill: bool) {
    let _serial = SERIAL.lock().await;
    let mut rig = Rig::start(tag, &mix, cluster_nodes, PgPlan::Single).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(mix.seed);
    let mut publisher = Publisher::new(rig.amqp_urls.clone(), &rig.topology.commands);
    let mut sent: Vec<(String, Sent)> = Vec::new();
    let mut later: Vec<(usize, Vec<u8>)> = Vec::new();
    let chunks = 10usize;
    let per_chunk = mix.invoices.div_ceil(chunks);
    let window = 16 * mix.workers * 2; // keep the workers busy when a fault strikes
    let mut kill_at: Vec<usize> = (0..mix.kills).map(|k| 1 + k * (chunks - 2) / mix.kills.max(1)).collect();
    kill_at.sort();
    let mut outage_task = None;
    let mut bad_n = 0;
    let mut leader_killed = String::new();
    let (mut ewb_docs, mut later_ewb, mut followed) = (Vec::new(), Vec::new(), HashSet::new());
    for c in 0..chunks {
        let range = (c * per_chunk)..((c + 1) * per_chunk).min(mix.invoices);
        for i in range {
            let body = mix::invoice_command(i).to_string().into_bytes();
            let id = format!("inv-{i}");
            publisher.publish("irn.generate", &body, &id).await;
            sent.push((id, Sent::Invoice));
            if rng.gen_bool((mix.resend_pct / 100.0).clamp(0.0, 1.0)) {
                if rng.gen_bool(0.5) {
                    let id = format!("resend-now-{i}");
                    publisher.publish("irn.generate", &body, &id).await;
                    sent.push((id, Sent::Resend));
                } else {
                    later.push((i, body));
                }
            }
        }
        // E-way bills without an IRN, a few sent again later.
        let per_chunk_ewb = mix.ewaybills.div_ceil(chunks);
        for i in (c * per_chunk_ewb)..((c + 1) * per_chunk_ewb).min(mix.ewaybills) {
            let (gstin, _, cmd) = mix::ewaybill_command(i);
            let body = cmd.to_string().into_bytes();
            let id = format!("ewb-{i}");
            publisher.publish("ewaybill.generate", &body, &id).await;
            sent.push((id, Sent::Ewaybill));
            ewb_docs.push((i, gstin));
            if rng.gen_bool(0.05) {
                later_ewb.push((i, body));
            }
        }
        for (i, body) in std::mem::take(&mut later_ewb).into_iter() {
            let id = format!("ewb-resend-{i}");
            publisher.publish("ewaybill.generate", &body, &id).await;
            sent.push((id, Sent::EwaybillResend));
        }
        // Extensions and transporter changes of the e-way bills made so far.
        follow_up(&rig, &mut publisher, &mut sent, &ewb_docs, &mut followed).await;
        // Later re-sends of earlier chunks.
        for (i, body) in std::mem::take(&mut later).into_iter() {
            let id = format!("resend-later-{i}");
            publisher.publish("irn.generate", &body, &id).await;
            sent.push((id, Sent::Resend));
        }
        for _ in 0..mix.bad / chunks + usize::from(c < mix.bad % chunks) {
            let (rk, body, label) = mix::bad_command(bad_n, MAX_MESSAGE_BYTES);
            let id = format!("bad-{bad_n}");
            publisher.publish(rk, &body, &id).await;
            sent.push((id, Sent::Bad(label)));
            bad_n += 1;
        }
        // Let the workers get into this chunk, then strike.
        let ids: Vec<String> = sent.iter().map(|(i, _)| i.clone()).collect();
        let target = ids.len().saturating_sub(window);
        rig.wait_answered(&ids, target, 60).await;
        while kill_at.first() == Some(&c) {
            kill_at.remove(0);
            let slot = rng.gen_range(0..rig.workers.len());
            rig.workers.kill9_and_replace(slot);
        }
        if c == 2 && mix.outage_secs > 0 {
            let core = rig.sim.core.clone();
            let secs = mix.outage_secs;
            core.update_faults(|f| f.outage = true);
            outage_task = Some(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                core.update_faults(|f| f.outage = false);
            }));
        }
        if c == 4 && mix.broker_restart {
            if leader_kill {
                leader_killed = blocking(|| kill_jobs_leader(&mut rig.nodes, &rig.topology.jobs));
            } else {
                blocking(|| rig.nodes[0].restart());
            }
        }
        if c == 6 && mix.db_restart {
            blocking(|| rig.pg.restart());
        }
    }
    if let Some(t) = outage_task {
        let _ = t.await;
    }
    // The last chunk's e-way bills: wait for them, then extend or hand them over too.
    let ewb_ids: Vec<String> = ewb_docs.iter().map(|(i, _)| format!("ewb-{i}")).collect();
    rig.wait_answered(&ewb_ids, ewb_ids.len(), 120).await;
    follow_up(&rig, &mut publisher, &mut sent, &ewb_docs, &mut followed).await;
    let ids: Vec<String> = sent.iter().map(|(i, _)| i.clone()).collect();
    let deadline = rig.started + Duration::from_secs(mix.deadline_secs);
    rig.wait_quiet(&ids, deadline, Duration::from_secs(mix.stall_secs)).await;
    publisher.close().await;
    // A redelivered copy of an answered command may still be on its way back through a retry
    // tier (it waited for a busy document): let the running workers drain the work and retry
    // queues. What is still there after a minute is stuck, and the audit counts it.
    let (dead_q, until) = (rig.topology.dead.clone(), Instant::now() + Duration::from_secs(60));
    let in_queues = |d: &BTreeMap<String, i64>| -> i64 {
        d.iter().filter(|(q, _)| **q != dead_q && q.as_str() != bus::CAPTURE_QUEUE).map(|(_, n)| *n).sum()
    };
    while in_queues(&blocking(|| rig.queue_depths())) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    blocking(|| rig.workers.stop_all());
    let ewb = ewaybill_figures(&rig, &ewb_docs);
    audit(&mut rig, &mix, &sent, publisher.resent_unconfirmed, &leader_killed, ewb, 0).await;
}

/// For each e-way bill of the run whose `ewaybill.generate` is answered and not yet followed up:
/// `ewaybill.extend` for every other pair of documents, `ewaybill.update_transporter` for the rest
/// (so both sellers, both protocols, get both).
async fn follow_up(
    rig: &Rig,
    publisher: &mut Publisher,
    sent: &mut Vec<(String, Sent)>,
    docs: &[(usize, &'static str)],
    followed: &mut HashSet<usize>,
) {
    let made: HashMap<String, String> = {
        let ev = rig.events.lock().unwrap();
        ev.values()
            .filter(|e| e.event_type == "ewaybill.generated")
            .filter_map(|e| Some((e.message_id.clone()?, e.ewb_no.clone()?)))
            .collect()
    };
    for (i, gstin) in docs {
        let Some(no) = made.get(&format!("ewb-{i}")) else { continue };
        if !followed.insert(*i) {
            continue;
        }
        let (rk, body, id, kind) = if (i / 2) % 2 == 0 {
            ("ewaybill.extend", mix::extend_command(gstin, no), format!("ext-{i}"), Sent::Extend)
        } else {
            ("ewaybill.update_transporter", mix::transporter_command(gstin, no), format!("trn-{i}"), Sent::Transporter)
        };
        publisher.publish(rk, &body.to_string().into_bytes(), &id).await;
        sent.push((id, kind));
    }
}

/// One e-way bill per document at the simulator (any status), whatever was re-sent, killed or
/// timed out; and `ewaybill.expiring` at most once per e-way bill and validity.
fn ewaybill_figures(rig: &Rig, docs: &[(usize, &'static str)]) -> Vec<Figure> {
    let not_one: Vec<String> = docs
        .iter()
        .filter_map(|(i, g)| {
            let (_, no, _) = mix::ewaybill_command(*i);
            let n = rig.sim.core.ewaybills_for_doc(g, "CHL", &no);
            (n != 1).then(|| format!("{g}/{no}: {n} e-way bills"))
        })
        .collect();
    let mut warned: HashMap<(String, String), usize> = HashMap::new();
    for e in rig.events.lock().unwrap().values().filter(|e| e.event_type == "ewaybill.expiring") {
        let key = (e.ewb_no.clone().unwrap_or_default(), e.ewb_valid_till.clone().unwrap_or_default());
        *warned.entry(key).or_default() += 1;
    }
    let twice = warned.values().filter(|n| **n > 1).count();
    for l in not_one.iter().take(15) {
        eprintln!("fault: e-way bill documents: {l}");
    }
    let stats = rig.sim.core.stats();
    vec![
        fig(format!(
            "{} e-way bill documents ({} GENEWAYBILL calls, {} lookups, {} extend and {} transporter calls)",
            docs.len(),
            stats.ewb_doc_generate_calls,
            stats.ewb_doc_lookups,
            stats.ewb_extend_calls,
            stats.ewb_transporter_calls
        )),
        check(
            format!("{} documents without exactly one e-way bill", not_one.len()),
            not_one.len(),
            "a document with no or several e-way bills at the portal",
        ),
        check(
            format!("{twice} expiry warnings twice (of {})", warned.len()),
            twice,
            "ewaybill.expiring twice for one validity",
        ),
    ]
}

/// Kill -9 the node leading the jobs queue (a quorum queue); returns its name.
fn kill_jobs_leader(nodes: &mut [RabbitNode], jobs: &str) -> String {
    let out = nodes[0].ctl_ok(&["list_queues", "-q", "--no-table-headers", "name", "leader"]);
    let leader = out
        .lines()
        .find_map(|l| {
            let mut p = l.split_whitespace();
            (p.next()? == jobs).then(|| p.next().map(str::to_string)).flatten()
        })
        .expect("the jobs queue has a leader");
    let node = nodes.iter_mut().find(|n| n.name == leader).expect("the leader is one of our nodes");
    node.kill9();
    leader
}

/// `extra`: the caller's own figures, printed and checked with the rest. `unreplicated`:
/// transactions the database acknowledged and then lost (an asynchronous standby promoted after
/// the primary died); each can leave one command unanswered, one job row unfinished and one
/// document generated again (answered 2150), so that many of each are explained, not failures.
async fn audit(
    rig: &mut Rig,
    mix: &Mix,
    sent: &[(String, Sent)],
    resent_unconfirmed: usize,
    leader_killed: &str,
    extra: Vec<Figure>,
    unreplicated: usize,
) {
    // Let the capture catch up with everything the relays published.
    let until = Instant::now() + Duration::from_secs(30);
    while blocking(|| rig.queue_depths()).get(bus::CAPTURE_QUEUE).copied().unwrap_or(0) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.capture_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), &mut rig.capture).await;
    let events: Vec<bus::Ev> = rig.events.lock().unwrap().values().cloned().collect();
    let kind: HashMap<&str, &Sent> = sent.iter().map(|(i, k)| (i.as_str(), k)).collect();

    // Answers per message (gstin.paused is a notice, not an answer).
    let mut answers: HashMap<&str, Vec<&bus::Ev>> = HashMap::new();
    for e in events.iter().filter(|e| !is_notice(&e.event_type)) {
        if let Some(id) = e.message_id.as_deref() {
            answers.entry(id).or_default().push(e);
        }
    }
    let mut once = 0;
    let mut lost = Vec::new();
    let mut dup_replayed = 0;
    let mut twice = Vec::new();
    let mut outcome: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad_outcome: BTreeMap<String, usize> = BTreeMap::new();
    let mut invoice_not_generated = Vec::new();
    let mut ewb_not_done = Vec::new();
    let mut in_doubt = 0;
    for (id, k) in sent {
        let a = answers.get(id.as_str()).cloned().unwrap_or_default();
        match a.len() {
            0 => lost.push(format!("{id} ({k:?})")),
            1 => once += 1,
            n => {
                let fresh = a.iter().filter(|e| !e.replayed).count();
                if fresh <= 1 {
                    dup_replayed += n - 1;
                } else {
                    twice.push(format!("{id} ({k:?}): {:?}", a.iter().map(|e| &e.event_type).collect::<Vec<_>>()));
                }
            }
        }
        for e in &a {
            *outcome.entry(e.event_type.clone()).or_default() += 1;
            in_doubt += usize::from(e.in_doubt);
        }
        match k {
            Sent::Bad(label) => {
                for e in &a {
                    *bad_outcome.entry(format!("{label} → {}", e.event_type)).or_default() += 1;
                }
            }
            Sent::Invoice | Sent::Resend => {
                if !a.is_empty() && a.iter().all(|e| e.event_type != "irn.generated") {
                    invoice_not_generated
                        .push(format!("{id}: {:?}", a.iter().map(|e| &e.event_type).collect::<Vec<_>>()));
                }
            }
            other => {
                let want = other.expected().unwrap_or_default();
                if !a.is_empty() && a.iter().all(|e| e.event_type != want) {
                    ewb_not_done.push(format!("{id}: {:?}", a.iter().map(|e| &e.event_type).collect::<Vec<_>>()));
                }
            }
        }
    }
    let stray = answers.keys().filter(|id| !kind.contains_key(*id)).count();

    // One IRN per document, from the events.
    let mut irns: HashMap<&str, HashSet<&str>> = HashMap::new();
    for e in &events {
        if let (Some(d), Some(i)) = (e.doc.as_deref(), e.irn.as_deref()) {
            if e.event_type == "irn.generated" {
                irns.entry(d).or_default().insert(i);
            }
        }
    }
    let multi_irn = irns.values().filter(|s| s.len() > 1).count();
    let stats = rig.sim.core.stats();
    let doubles: Vec<String> = stats
        .generate_per_irn
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(irn, n)| {
            let doc = rig.sim.core.document(irn).map(|d| d.doc_number).unwrap_or_default();
            format!("{doc}: {n} generate calls")
        })
        .collect();
    let double_generate = doubles.len();
    let false_pauses = events.iter().filter(|e| e.event_type == "gstin.paused").count();

    // The store and the queues.
    let c = rig.db().await.expect("own database reachable");
    let count = |q: &'static str| async { c.query_one(q, &[]).await.map(|r| r.get::<_, i64>(0)).unwrap_or(-1) };
    let outbox = count("SELECT count(*) FROM outbox WHERE published_at IS NULL").await;
    let unfinished =
        count("SELECT count(*) FROM jobs WHERE status NOT IN ('generated', 'rejected', 'cancelled')").await;
    let pause_rows = count("SELECT count(*) FROM gstin_pauses").await;
    let jobs_generated = count("SELECT count(*) FROM jobs WHERE status = 'generated'").await;
    let unfinished_rows: Vec<String> = c
        .query("SELECT doc_number, status, attempts, last_error::text FROM jobs WHERE status NOT IN ('generated', 'rejected', 'cancelled') ORDER BY doc_number", &[])
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let err: Option<String> = r.get(3);
                    format!("{} {} (attempts {}): {}", r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, i32>(2), err.unwrap_or_default().chars().take(160).collect::<String>())
                })
                .collect()
        })
        .unwrap_or_default();
    let depths = blocking(|| rig.queue_depths());
    let dead = depths.get(&rig.topology.dead).copied().unwrap_or(0);
    let stuck: i64 = depths
        .iter()
        .filter(|(q, _)| **q != rig.topology.dead && q.as_str() != bus::CAPTURE_QUEUE)
        .map(|(_, n)| *n)
        .sum();
    let dead_answered =
        events.iter().filter(|e| e.dead_lettered).filter_map(|e| e.message_id.as_deref()).collect::<HashSet<_>>().len();
    let dead_unanswered = (dead - dead_answered as i64).max(0) as usize;

    // Secrets in logs.
    let mut secrets: Vec<String> =
        vec![rig.secrets.amqp_password.clone(), rig.secrets.db_password.clone(), rig.secrets.token_key.clone()];
    secrets.extend(rig.secrets.gstin_passwords.iter().cloned());
    secrets.extend(rig.secrets.client_secrets.iter().cloned());
    secrets.extend(rig.sim.core.issued_tokens());
    let mut secret_lines = Vec::new();
    let mut log_lines = 0;
    for log in &rig.workers.logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            log_lines += 1;
            if secrets.iter().any(|s| line.contains(s.as_str())) {
                secret_lines.push(format!("{}: {}", log.display(), line.chars().take(200).collect::<String>()));
            }
        }
    }

    let n = |k: fn(&Sent) -> bool| sent.iter().filter(|(_, s)| k(s)).count();
    let figures = vec![
        fig(format!(
            "{} sent ({} invoices, {} re-sends, {} bad, {} e-way bills without an IRN, {} re-sent, {} extensions, {} transporter changes)",
            sent.len(),
            n(|s| *s == Sent::Invoice),
            n(|s| *s == Sent::Resend),
            n(|s| matches!(s, Sent::Bad(_))),
            n(|s| *s == Sent::Ewaybill),
            n(|s| *s == Sent::EwaybillResend),
            n(|s| *s == Sent::Extend),
            n(|s| *s == Sent::Transporter)
        )),
        fig(format!("{once} answered once")),
        fig(format!("{dup_replayed} at-least-once duplicates replayed")),
        check(format!("{} answered twice", twice.len()), twice.len(), "duplicate answers without `replayed`"),
        check(format!("{} lost", lost.len()), lost.len().saturating_sub(unreplicated), "messages with no answer"),
        check(format!("{} invoices not generated", invoice_not_generated.len()), invoice_not_generated.len(), "valid invoices answered otherwise"),
        check(format!("{} e-way bill commands not done", ewb_not_done.len()), ewb_not_done.len(), "e-way bill commands answered otherwise"),
        check(format!("{in_doubt} in doubt"), in_doubt, "answers that left the IRN in doubt"),
        fig(format!("{} documents", irns.len())),
        check(format!("{multi_irn} documents with two IRNs"), multi_irn, "a document with more than one IRN"),
        check(format!("{double_generate} double generate"), double_generate.saturating_sub(unreplicated), "a second generate call for a document"),
        check(format!("{false_pauses} false pauses"), false_pauses + pause_rows.max(0) as usize, "GSTIN paused although only tokens hiccuped"),
        check(format!("{stuck} stuck in queues"), stuck.max(0) as usize, "messages left in jobs/retry queues"),
        check(format!("{outbox} in the outbox"), outbox.max(0) as usize + usize::from(outbox < 0), "events never published"),
        check(format!("{unfinished} unfinished jobs"), (unfinished.max(0) as usize).saturating_sub(unreplicated) + usize::from(unfinished < 0), "job rows not final"),
        check(format!("{dead_unanswered} dead letters without an answer"), dead_unanswered, "dead-lettered without a rejection event"),
        check(format!("{} log lines with a secret (of {log_lines})", secret_lines.len()), secret_lines.len(), "secrets in logs"),
        check(format!("{} worker crashes", rig.workers.unexpected_exits.len()), rig.workers.unexpected_exits.len(), "worker processes that exited on their own"),
        check(format!("{stray} stray answers"), stray, "answers to messages never sent"),
        fig(format!(
            "faults: {} kill -9, {}{}{}s outage, {} 503s, {} commit-then-timeouts, {} forced 1005s, {} unconfirmed publishes re-sent",
            rig.workers.killed,
            if leader_killed.is_empty() { if mix.broker_restart { "1 broker restart, " } else { "" }.to_string() } else { format!("jobs leader {leader_killed} killed, ") },
            if mix.db_restart { "1 database restart, " } else { "" },
            mix.outage_secs,
            stats.injected_5xx,
            stats.injected_commit_timeouts,
            stats.injected_1005,
            resent_unconfirmed,
        )),
        fig(format!(
            "sim: {} generate calls, {} IRNs, {} lookups, {} auth; {} jobs generated; {} dead letters; {} s",
            stats.generate_calls,
            stats.irns_created,
            stats.lookups,
            stats.auth_calls,
            jobs_generated,
            dead,
            rig.started.elapsed().as_secs()
        )),
    ]
    .into_iter()
    .chain(extra)
    .collect::<Vec<_>>();
    let details: Vec<(String, Vec<String>)> = vec![
        ("lost".into(), lost),
        ("answered twice".into(), twice),
        ("invoices not generated".into(), invoice_not_generated),
        ("e-way bill commands not done".into(), ewb_not_done),
        ("double generate".into(), doubles),
        ("unfinished jobs".into(), unfinished_rows),
        ("secret lines".into(), secret_lines),
        ("worker crashes".into(), rig.workers.unexpected_exits.clone()),
        ("bad command outcomes".into(), bad_outcome.iter().map(|(k, v)| format!("{v:>4} {k}")).collect()),
        ("all answers".into(), outcome.iter().map(|(k, v)| format!("{v:>5} {k}")).collect()),
        ("queues".into(), depths.iter().map(|(k, v)| format!("{k}: {v}")).collect()),
    ];
    // Straight to the terminal: a passing test's output is otherwise swallowed by the harness.
    let mut err = std::io::stderr().lock();
    for (title, lines) in &details {
        if !lines.is_empty() {
            let _ = writeln!(err, "fault: {title} ({}):", lines.len());
            for l in lines.iter().take(15) {
                let _ = writeln!(err, "  {l}");
            }
        }
    }
    let line =
        format!("fault[{}]: {}", tag_of(rig), figures.iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join(", "));
    let _ = writeln!(err, "{line}");
    drop(err);
    let failed: Vec<&String> = figures.iter().filter_map(|f| f.failed.as_ref()).collect();
    assert!(failed.is_empty(), "{} checks failed: {failed:#?}\n{line}", failed.len());
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.capture.abort();
    }
}

fn tag_of(rig: &Rig) -> String {
    rig.dir.0.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
}

/// The mix on one broker node: kill -9s, broker and database restarts, an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_mix() {
    run("fault", Mix::from_env(2000), 1, false).await;
}

/// Three-node cluster: the node leading the jobs queue is killed mid-run. Nothing lost, nothing
/// answered twice. Workers get every node's address (comma-separated `EINVOICE_AMQP_URL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_cluster_leader_kill() {
    let mut mix = Mix::from_env(0);
    mix.invoices = env_or("FAULT_CLUSTER_INVOICES", 600);
    mix.bad = env_or("FAULT_CLUSTER_BAD", 40);
    mix.ewaybills = env_or("FAULT_CLUSTER_EWAYBILLS", 40);
    mix.kills = 0;
    mix.db_restart = false;
    mix.outage_secs = 0;
    run("faultc", mix, 3, true).await;
}
