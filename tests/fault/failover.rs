//! PostgreSQL failover under a steady load (issues 23 and 27): a primary with a streaming
//! standby (`pg_basebackup -R`), the workers on the multi-host URL with
//! `target_session_attrs=read-write`, a steady stream of `irn.generate` commands; the primary is
//! killed (SIGKILL to all its processes, as on a host crash), the standby is promoted after
//! `FAULT_PG_OUTAGE_SECS` (60), and the audit of the fault test runs, plus: every command
//! answered within `FAULT_PG_ANSWER_SECS` (30) of the promotion (or of its publication, for one
//! sent later).
//!
//! Synchronous replication (`synchronous_standby_names = '*'`) loses no acknowledged commit, so
//! the audit is the whole audit. Asynchronous replication may lose what the primary committed
//! and had not yet sent when it died: an outcome whose delivery was then acked (the command is
//! never answered, unless the relay had already published its event, and its job row stays
//! `in_flight`), or a claim whose generate then reached the IRP (the re-handled delivery
//! generates again and is answered 2150, resolved to the same IRN). The test counts those
//! transactions in the dead primary's own WAL (`pg_waldump` from the point the standby had
//! replayed) and excuses at most that many lost commands, unfinished jobs and second generate
//! calls; everything else (answered twice, two IRNs, stuck messages, dead letters, late
//! answers) must hold as with synchronous replication.
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::*;

/// The failover run's timing; every figure can be changed with the variable in its comment.
#[derive(Debug, Clone)]
struct Plan {
    rate: f64,        // FAULT_PG_RATE: commands per second, steady, from start to end
    lead_secs: u64,   // FAULT_PG_LEAD_SECS: load before the primary dies
    outage_secs: u64, // FAULT_PG_OUTAGE_SECS: from the kill to the promotion (the 60 s)
    tail_secs: u64,   // FAULT_PG_TAIL_SECS: load after the promotion
    answer_secs: u64, // FAULT_PG_ANSWER_SECS: every command answered this long after the promotion
    irp_ms: u64,      // FAULT_PG_IRP_LATENCY_MS: each IRP call takes this long (below the read timeout)
}

impl Plan {
    fn from_env() -> Plan {
        Plan {
            rate: env_or("FAULT_PG_RATE", 3.0f64).max(0.1),
            lead_secs: env_or("FAULT_PG_LEAD_SECS", 10),
            outage_secs: env_or("FAULT_PG_OUTAGE_SECS", 60),
            tail_secs: env_or("FAULT_PG_TAIL_SECS", 10),
            answer_secs: env_or("FAULT_PG_ANSWER_SECS", 30),
            irp_ms: env_or("FAULT_PG_IRP_LATENCY_MS", 1000),
        }
    }
}

impl Rig {
    /// Sleep, restarting (and recording) any worker that exits meanwhile.
    async fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.workers.reap();
            tokio::time::sleep(Duration::from_millis(200).min(until.saturating_duration_since(Instant::now()))).await;
        }
    }
}

async fn run_failover(tag: &str, synchronous: bool) {
    let _serial = SERIAL.lock().await;
    let plan = Plan::from_env();
    let mut mix = Mix::from_env(0);
    // Only the database fails: no IRP faults, no kills, no malformed commands.
    (mix.bad, mix.kills, mix.broker_restart, mix.db_restart, mix.outage_secs) = (0, 0, false, false, 0);
    (mix.p_5xx, mix.p_timeout, mix.p_1005) = (0.0, 0.0, 0.0);
    // The default lease: a job that waited out its lease would show as a late answer.
    mix.lease_secs = env_or("FAULT_PG_LEASE_SECS", 120);
    mix.stall_secs = env_or("FAULT_PG_STALL_SECS", 60);
    let mut rig = Rig::start(tag, &mix, 1, PgPlan::Replicated { synchronous }).await;
    // Slow IRP calls: at the kill, a few generate calls are under way and reach the IRP while the
    // database is gone, the case whose outcome must be settled by lookup after the promotion.
    rig.sim.core.update_faults(|f| f.latency_ms = plan.irp_ms);

    // The steady load, on its own task: it goes on while the primary is dead.
    let total = ((plan.lead_secs + plan.outage_secs + plan.tail_secs) as f64 * plan.rate).round() as usize;
    let mut publisher = Publisher::new(rig.amqp_urls.clone(), &rig.topology.commands);
    let (resend_pct, seed) = (mix.resend_pct, mix.seed);
    let load = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (t0, step) = (tokio::time::Instant::now(), Duration::from_secs_f64(1.0 / plan.rate));
        let mut sent: Vec<(String, Sent, Instant)> = Vec::new();
        for i in 0..total {
            tokio::time::sleep_until(t0 + step * i as u32).await;
            let body = mix::invoice_command(i).to_string().into_bytes();
            let id = format!("pg-{i}");
            publisher.publish("irn.generate", &body, &id).await;
            sent.push((id, Sent::Invoice, Instant::now()));
            // A re-send right behind it: two deliveries of one document held through the outage.
            if rng.gen_bool((resend_pct / 100.0).clamp(0.0, 1.0)) {
                let id = format!("pg-resend-{i}");
                publisher.publish("irn.generate", &body, &id).await;
                sent.push((id, Sent::Resend, Instant::now()));
            }
        }
        publisher.close().await;
        (sent, publisher.resent_unconfirmed)
    });

    rig.idle(Duration::from_secs(plan.lead_secs)).await;
    let answered_before = rig.answered_ids().len();
    blocking(|| rig.pg.kill9());
    let killed_at = Instant::now();
    rig.idle(Duration::from_secs(plan.outage_secs)).await;
    let answered_during = rig.answered_ids().len() - answered_before;
    let standby = rig.standby.as_ref().expect("a standby");
    let fork = blocking(|| standby.replayed_lsn());
    let promote_at = Instant::now();
    blocking(|| standby.promote());
    let promoted_in = promote_at.elapsed();

    let (sent, resent_unconfirmed) = load.await.expect("the load task");
    let ids: Vec<String> = sent.iter().map(|(i, ..)| i.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(mix.deadline_secs);
    rig.wait_quiet(&ids, deadline, Duration::from_secs(mix.stall_secs)).await;
    let quiet_after = promote_at.elapsed();
    // As in `run`: a re-send's copy may still come back through a retry tier.
    let (dead_q, until) = (rig.topology.dead.clone(), Instant::now() + Duration::from_secs(60));
    let in_queues = |d: &BTreeMap<String, i64>| -> i64 {
        d.iter().filter(|(q, _)| **q != dead_q && q.as_str() != bus::CAPTURE_QUEUE).map(|(_, n)| *n).sum()
    };
    while in_queues(&blocking(|| rig.queue_depths())) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    blocking(|| rig.workers.stop_all());
    // What the dead primary committed that the promoted standby never had.
    let lost_commits = blocking(|| rig.pg.commits_after(&fork));

    // Answer times: the first answer each command got, against the promotion (or its publication).
    let first_answer: HashMap<String, Instant> = {
        let ev = rig.events.lock().unwrap();
        let mut m: HashMap<String, Instant> = HashMap::new();
        for e in ev.values().filter(|e| e.event_type != "gstin.paused") {
            if let Some(id) = &e.message_id {
                let t = m.entry(id.clone()).or_insert(e.at);
                *t = (*t).min(e.at);
            }
        }
        m
    };
    let bound = Duration::from_secs(plan.answer_secs);
    let (mut late, mut unanswered) = (Vec::new(), 0);
    let (mut after_promotion, mut slowest, mut first_after) = (0, Duration::ZERO, None::<Duration>);
    for (id, _, published) in &sent {
        // Not answered when the run went quiet: late too (whatever the audit's drain finds later).
        let Some(at) = first_answer.get(id) else {
            unanswered += 1;
            late.push(format!("{id}: not answered when the run went quiet"));
            continue;
        };
        if *at < promote_at {
            continue;
        }
        after_promotion += 1;
        let since_promotion = at.duration_since(promote_at);
        first_after = Some(first_after.map_or(since_promotion, |f| f.min(since_promotion)));
        let from = (*published).max(promote_at);
        let waited = at.saturating_duration_since(from);
        slowest = slowest.max(waited);
        if waited > bound {
            late.push(format!("{id}: answered {:.1} s after the promotion", since_promotion.as_secs_f64()));
        }
    }
    let invoices = sent.iter().filter(|(_, k, _)| *k == Sent::Invoice).count();
    let irns = rig.sim.core.stats().irns_created as usize;
    let mode = if synchronous { "synchronous" } else { "asynchronous" };
    // Synchronous replication acknowledges a commit only once the standby has it: a commit in
    // the dead primary's WAL the standby lacks was never acknowledged, so it excuses nothing.
    let unreplicated = if synchronous { 0 } else { lost_commits };
    let too_late = late.len() - unanswered + unanswered.saturating_sub(unreplicated);
    let extra = vec![
        fig(format!(
            "{mode} standby promoted {} s after the primary was killed (pg_promote {} ms); {answered_before} answered \
             before the kill, {answered_during} while the database was down",
            killed_at.elapsed().saturating_sub(promote_at.elapsed()).as_secs(),
            promoted_in.as_millis()
        )),
        fig(format!(
            "{lost_commits} commits in the dead primary's WAL the standby never received, {} generates settled by lookup",
            rig.sim.core.stats().lookups
        )),
        check(
            format!(
                "{} answered later than {} s after the promotion, {unanswered} not by the end ({after_promotion} \
                 answered after it: the first {:.1} s, the slowest {:.1} s after the promotion or its publication; \
                 quiet {:.1} s after the promotion)",
                late.len() - unanswered,
                plan.answer_secs,
                first_after.unwrap_or_default().as_secs_f64(),
                slowest.as_secs_f64(),
                quiet_after.as_secs_f64()
            ),
            too_late,
            "commands answered too long after the promotion (or not at all)",
        ),
        check(
            format!("{irns} documents registered at the IRP of {invoices} invoices"),
            // Strict in both variants: a lost commit never undoes a registration at the IRP.
            invoices.abs_diff(irns),
            "an invoice not registered (or registered more than once)",
        ),
    ];
    if !late.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "fault: late answers ({}):", late.len());
        for l in late.iter().take(15) {
            let _ = writeln!(err, "  {l}");
        }
    }
    let sent: Vec<(String, Sent)> = sent.into_iter().map(|(i, k, _)| (i, k)).collect();
    audit(&mut rig, &mix, &sent, resent_unconfirmed, "", extra, unreplicated).await;
}

/// Synchronous replication: the whole audit holds, nothing excused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_pg_failover_synchronous() {
    run_failover("faultps", true).await;
}

/// Asynchronous replication: the same audit, except what the dead primary's WAL shows it
/// committed and never sent (see the module's comment).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_pg_failover_asynchronous() {
    run_failover("faultpa", false).await;
}
