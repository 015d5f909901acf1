//! Issue 12, "Protect the GSTIN": rate limits shared by every worker, throttling (429 with
//! Retry-After) that is waited out rather than failed, and the daily error budget that warns and
//! then pauses a GSTIN before NIC blocks it.
use std::time::{Duration, Instant};

use einvoice_worker::config::ProviderKind;
use einvoice_worker::sim;
use serde_json::Value;

use crate::helpers::{invoice, is_irn, Options, TestApp, SELLER_KA};

/// SELLER_KA's simulator section over `provider`, plus `extra` lines (e.g. a `rate_limit`).
fn seller_section(provider: ProviderKind, extra: &str) -> (String, String) {
    let toml = sim::gstin_toml("{sim}", provider, SELLER_KA);
    let body: String = toml.lines().skip(1).map(|l| format!("{l}\n")).collect();
    (SELLER_KA.to_string(), format!("{body}{extra}\n"))
}

async fn job_rows(app: &TestApp) -> Vec<(String, i32, Option<Value>)> {
    let c = app.db.client().await.unwrap();
    let rows = c.query("SELECT status, attempts, last_error FROM jobs ORDER BY doc_number", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// The events on `einvoice.events` until one of `event_type` arrives (the others are returned too).
async fn event_of_type(app: &mut TestApp, event_type: &str, secs: u64) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs().max(1);
        let ev = app.next_event(left).await;
        if ev["event_type"] == event_type {
            return (ev, seen);
        }
        seen.push(ev);
    }
    panic!("no {event_type} within {secs} s; saw {seen:#?}");
}

/// The done-when of issue 12: a GSP quota of 30 a minute, 60 documents, two worker processes
/// sharing one bucket (`rate_limit` 30/min, burst 5): every document registered, a handful of
/// 429s at most, nothing failed. It paces by nature: (60 − 5) × 2 s ≈ 110 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_documents_at_a_quota_of_thirty_a_minute_all_succeed_with_few_429s() {
    let mut app = TestApp::spawn_with(Options {
        // A lease long enough for a call to wait its turn (a call waits at most half of it), and
        // few enough in flight that every turn comes within that wait.
        extra_toml: "lease_secs = 120\nprefetch = 8".into(),
        gstin_sections: vec![seller_section(
            ProviderKind::Whitebooks,
            "rate_limit = { requests_per_minute = 30, burst = 5 }",
        )],
        ..Options::default()
    })
    .await;
    app.sim.core.update_faults(|f| f.rate_limit_per_minute = Some(30));
    let second = app.start_another_worker().await;
    let started = Instant::now();
    for i in 0..60 {
        app.generate(&invoice("b2b-intra-goods", &format!("RL/{i:03}"))).await;
    }
    let replies = app.replies(60, 300).await;
    let elapsed = started.elapsed();
    let not_generated: Vec<&Value> =
        replies.iter().map(|(_, r)| r).filter(|r| r["event_type"] != "irn.generated").collect();
    assert!(not_generated.is_empty(), "every document registered: {not_generated:#?}");
    assert!(replies.iter().all(|(_, r)| is_irn(r["data"]["irn"].as_str().unwrap_or(""))));
    let s = app.sim.core.stats();
    eprintln!("60 documents at 30/min: {elapsed:?}, {} 429s, {} generate calls", s.throttled_429, s.generate_calls);
    assert!(s.throttled_429 <= 5, "at most a handful of 429s: {s:?}");
    assert_eq!(s.irns_created, 60, "{s:?}");
    assert_eq!(s.generate_calls, 60, "one generate call per document (a 429 never reached generate): {s:?}");
    // Paced, not bursted: five at once, then one every two seconds (minus a little slack).
    assert!(elapsed >= Duration::from_secs(95), "the worker paced itself: {elapsed:?}");
    let jobs = job_rows(&app).await;
    assert_eq!(jobs.len(), 60);
    assert!(jobs.iter().all(|(status, ..)| status == "generated"), "{jobs:?}");
    // Both processes drew from the same buckets: one per credential and one per GSTIN.
    let c = app.db.client().await.unwrap();
    let keys: Vec<String> =
        c.query("SELECT key FROM rate_buckets ORDER BY key", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(keys, ["client:whitebooks:sim-client".to_string(), format!("gstin:whitebooks:{SELLER_KA}")]);
    second.stop().await.unwrap();
    app.stop().await;
}

/// Issue 23, "waiting is not failing": one worker whose calls may wait only 5 s for a slot (a
/// 10 s lease), 60 documents at a quota of 30 a minute. A call that finds no slot within its wait
/// comes back when the slot is due, through the longest retry tier no longer than the wait: no
/// document ever sits in the 5-minute tier (which held a third of them for minutes before), and
/// every one is registered with one generate call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_backlog_waits_for_its_slots_and_never_enters_the_five_minute_tier() {
    let mut app = TestApp::spawn_with(Options {
        gstin_sections: vec![seller_section(
            ProviderKind::Whitebooks,
            "rate_limit = { requests_per_minute = 30, burst = 5 }",
        )],
        ..Options::default()
    })
    .await;
    app.sim.core.update_faults(|f| f.rate_limit_per_minute = Some(30));
    let started = Instant::now();
    for i in 0..60 {
        app.generate(&invoice("b2b-intra-goods", &format!("PW/{i:03}"))).await;
    }
    let longest = app.topology.retry_queues().last().cloned().unwrap();
    let (ch, watched) = (app.ch.clone(), longest.clone());
    let watch = tokio::spawn(async move {
        let mut most = 0;
        loop {
            let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
            if let Ok(q) = ch.queue_declare(watched.as_str().into(), passive, Default::default()).await {
                most = most.max(q.message_count());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            if most > 0 {
                return most;
            }
        }
    });
    // The bound: the quota allows the 60 in about 2 minutes (5 at once, then one every
    // 2 s); the backlog must drain at that rate, so all answers within 2.5 minutes.
    let replies = app.replies(60, 150).await;
    eprintln!("60 documents at 30/min, 5 s slot waits: all answered in {:?}", started.elapsed());
    let not_generated: Vec<&Value> =
        replies.iter().map(|(_, r)| r).filter(|r| r["event_type"] != "irn.generated").collect();
    assert!(not_generated.is_empty(), "every document registered: {not_generated:#?}");
    assert!(!watch.is_finished(), "a document entered {longest}: {:?}", watch.await);
    watch.abort();
    let s = app.sim.core.stats();
    assert_eq!(s.generate_calls, 60, "one generate call per document: {s:?}");
    let jobs = job_rows(&app).await;
    assert!(jobs.iter().all(|(status, attempts, _)| status == "generated" && *attempts >= 1), "{jobs:?}");
    app.stop().await;
}

/// A 429 with `Retry-After` on a generate call: the call waits that long and goes again; it is
/// not an attempt (one claim of the job, no reschedule) and the document is registered.
async fn a_429_is_waited_out_and_is_not_an_attempt(p: ProviderKind) {
    let mut app = TestApp::spawn_with(Options { provider: p, ..Options::default() }).await;
    app.sim.core.update_faults(|f| {
        f.throttle_next = 1;
        f.throttle_retry_after_secs = 2;
    });
    let started = Instant::now();
    app.generate(&invoice("b2b-intra-goods", "TH/0001")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After honoured: {:?}", started.elapsed());
    let s = app.sim.core.stats();
    assert_eq!((s.throttled_429, s.generate_calls, s.irns_created), (1, 1, 1), "{s:?}");
    let jobs = job_rows(&app).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].0.as_str(), jobs[0].1), ("generated", 1), "one attempt: {jobs:?}");
    // The next call of that credential is not held up any more.
    let started = Instant::now();
    app.generate(&invoice("b2b-intra-goods", "TH/0002")).await;
    assert_eq!(app.next_reply(30).await.1["event_type"], "irn.generated");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    app.stop().await;
}
both_protocols!(throttled, a_429_is_waited_out_and_is_not_an_attempt);

/// Our own limit with no slot within the wait a call may spend: nothing is sent, the command is
/// rescheduled (the job stays pending with `RATE_LIMITED`), and it is neither rejected nor failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_slot_within_the_wait_reschedules_and_never_fails_the_document() {
    let mut app = TestApp::spawn_with(Options {
        extra_toml: "retry_tiers_secs = \"600\"".into(),
        gstin_sections: vec![seller_section(
            ProviderKind::Whitebooks,
            "rate_limit = { requests_per_minute = 1, burst = 1 }",
        )],
        ..Options::default()
    })
    .await;
    app.generate(&invoice("b2b-intra-goods", "RL1/0001")).await;
    assert_eq!(app.next_reply(30).await.1["event_type"], "irn.generated");
    // The next slot is a minute away; a call waits at most half the tests' 10 s lease.
    app.generate(&invoice("b2b-intra-goods", "RL1/0002")).await;
    app.no_more_replies(8).await;
    let jobs = job_rows(&app).await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let (status, _, last_error) = &jobs[1];
    assert_eq!(status, "pending", "{jobs:?}");
    let last_error = last_error.clone().unwrap_or_default();
    assert_eq!(last_error[0]["code"], "RATE_LIMITED", "{last_error:#}");
    assert!(last_error[0]["message"].as_str().unwrap().contains("nothing was sent"), "{last_error:#}");
    let s = app.sim.core.stats();
    assert_eq!((s.generate_calls, s.throttled_429), (1, 0), "{s:?}");
    app.stop().await;
}

/// The error budget with tiny thresholds (4 a day; warn at half, pause at three quarters): IRP
/// business errors count, the second gives one `gstin.error_budget` warning, the third pauses the
/// GSTIN until India midnight (`gstin.paused`, `ERROR_BUDGET`), and the next command waits
/// without calling the IRP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_budget_warns_then_pauses_the_gstin() {
    let mut app = TestApp::spawn_with(Options {
        extra_toml: "error_budget_gstin_per_day = 4\nerror_budget_warn_share = 0.5\nerror_budget_pause_share = 0.75"
            .into(),
        ..Options::default()
    })
    .await;
    let doc = |n: &str| invoice("b2b-intra-goods", n);
    let hsn = doc("EB/0000")["ItemList"][0]["HsnCd"].as_str().unwrap().to_string();
    app.sim.core.update_faults(|f| f.invalid_hsn = vec![hsn.clone()]);
    for n in ["EB/0001", "EB/0002", "EB/0003"] {
        app.generate(&doc(n)).await;
        let (_, ev) = app.next_reply(30).await;
        assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
        assert_eq!(ev["data"]["errors"][0]["code"], "2176", "{ev:#}");
    }
    let (warning, before) = event_of_type(&mut app, "gstin.error_budget", 20).await;
    assert!(before.iter().all(|e| e["event_type"] != "gstin.paused"), "the warning comes first: {before:#?}");
    let d = &warning["data"];
    assert_eq!(d["gstin"], SELLER_KA);
    assert_eq!(d["scope"], "gstin");
    assert_eq!((d["count"].as_i64(), d["threshold"].as_i64()), (Some(2), Some(4)), "{warning:#}");
    assert_eq!((d["warn_at"].as_i64(), d["pause_at"].as_i64()), (Some(2), Some(3)), "{warning:#}");
    assert_eq!(d["share"].as_f64(), Some(0.5));
    assert_eq!(d["day"], einvoice_worker::domain::invoice::india_today().to_string());
    assert_eq!(warning["provider"], "whitebooks");
    assert!(warning["request_id"].is_null() && warning["document"].is_null(), "about the GSTIN: {warning:#}");

    let (paused, _) = event_of_type(&mut app, "gstin.paused", 20).await;
    let e = &paused["data"]["errors"][0];
    assert_eq!(e["code"], "ERROR_BUDGET", "{paused:#}");
    assert_eq!(e["source"], "worker");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("3 IRP error responses") && msg.contains("threshold of 4"), "{msg}");
    let until: chrono::DateTime<chrono::Utc> = paused["data"]["paused_until"].as_str().unwrap().parse().unwrap();
    let midnight = einvoice_worker::runtime::guard::next_india_midnight(chrono::Utc::now());
    assert!((until - midnight).num_seconds().abs() <= 5, "paused until India midnight: {until} vs {midnight}");
    let reason: Value = app
        .db
        .client()
        .await
        .unwrap()
        .query_one("SELECT reason FROM gstin_pauses WHERE gstin = $1", &[&SELLER_KA])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason[0]["code"], "ERROR_BUDGET");

    // Paused: non-essential traffic (here a GSTIN lookup) waits for the pause to end and calls
    // nothing; registering documents goes on.
    let calls = app.sim.core.stats().generate_calls;
    assert_eq!(calls, 3);
    let other = app.sim.core.stats().other_calls;
    app.publish("gstin.details", &serde_json::json!({"gstin": SELLER_KA, "target_gstin": "29AADCT5519H1Z4"})).await;
    app.no_more_replies(4).await;
    assert_eq!(app.sim.core.stats().other_calls, other, "no lookup while paused");
    app.sim.core.update_faults(|f| f.invalid_hsn.clear());
    app.generate(&doc("EB/0004")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "an essential command is not held: {ev:#}");
    assert_eq!(app.sim.core.stats().generate_calls, calls + 1);
    // One warning, one pause: neither repeats for the same crossing.
    let c = app.db.client().await.unwrap();
    let kinds: Vec<(String, i64)> = c
        .query(
            "SELECT event_type, count(*) FROM outbox WHERE event_type IN ('gstin.error_budget', 'gstin.paused') \
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(kinds, [("gstin.error_budget".to_string(), 1), ("gstin.paused".to_string(), 1)]);
    let counts: Vec<(String, i64)> = c
        .query("SELECT key, count FROM irp_error_counts ORDER BY key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(counts, [("client:whitebooks:sim-client".to_string(), 3), (format!("gstin:{SELLER_KA}"), 3)]);
    app.stop().await;
}

/// The shared bucket itself (`rate_acquire` in migration 0010): a burst, then slots one refill
/// apart in order; a wait longer than the caller's limit takes nothing; a bucket shared with
/// another GSTIN (the same client ID) holds both; a drain shuts the bucket for its Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_reserves_slots_in_order_and_a_throttle_shuts_it() {
    let app = TestApp::spawn().await;
    let keys = ["client:t:c".to_string(), "gstin:t:g".to_string()];
    // 1 token a second, burst 2.
    let mut waits = Vec::new();
    for _ in 0..4 {
        let a = app.db.rate_acquire(&keys, 1.0, 2.0, 10.0).await.unwrap();
        assert!(a.taken, "{a:?}");
        waits.push(a.wait_secs);
    }
    let near = |got: f64, want: f64| (got - want).abs() < 0.3;
    assert!(near(waits[0], 0.0) && near(waits[1], 0.0), "the burst goes at once: {waits:?}");
    assert!(near(waits[2], 1.0) && near(waits[3], 2.0), "then one slot a second, in order: {waits:?}");
    let refused = app.db.rate_acquire(&keys, 1.0, 2.0, 2.5).await.unwrap();
    assert!(!refused.taken && near(refused.wait_secs, 3.0), "{refused:?}");
    let next = app.db.rate_acquire(&keys, 1.0, 2.0, 10.0).await.unwrap();
    assert!(next.taken && near(next.wait_secs, 3.0), "the refused caller reserved nothing: {next:?}");
    // Another GSTIN on the same credential queues behind it (its own bucket is full).
    let other = ["client:t:c".to_string(), "gstin:t:h".to_string()];
    let o = app.db.rate_acquire(&other, 1.0, 2.0, 10.0).await.unwrap();
    assert!(o.taken && near(o.wait_secs, 4.0), "{o:?}");
    // A throttle: shut for 5 s, every reservation dropped, and the drain is visible.
    assert_eq!(app.db.rate_drains(&keys).await.unwrap(), 0);
    app.db.rate_drain(&keys, 5.0).await.unwrap();
    assert_eq!(app.db.rate_drains(&keys).await.unwrap(), 2, "both buckets drained once");
    let after = app.db.rate_acquire(&keys, 1.0, 2.0, 10.0).await.unwrap();
    assert!(after.taken && near(after.wait_secs, 5.0), "one call when the throttle ends: {after:?}");
    let then = app.db.rate_acquire(&keys, 1.0, 2.0, 10.0).await.unwrap();
    assert!(near(then.wait_secs, 6.0), "then the configured rate: {then:?}");
    app.stop().await;
}
