//! Issue 27, fair share: one GSTIN's backlog cannot take all of a worker's capacity. With a
//! per-GSTIN cap on jobs in flight, another GSTIN's single invoice published behind a large
//! batch is reached and answered while most of the batch is still waiting.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{invoice, Options, TestApp, SELLER_KA};

const MEMBERS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_gstins_invoice_is_answered_while_a_large_batch_is_in_progress() {
    // Prefetch 16 but at most 4 of one GSTIN in flight; over-cap deliveries come back through
    // the 1 s tier. At 250 ms per IRP call the batch takes at least MEMBERS / 4 × 0.25 s ≈ 19 s.
    let opts = Options {
        extra_toml: "prefetch = 16\ngstin_max_in_flight = 4\nretry_tiers_secs = \"1,30\"".into(),
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(opts).await;
    app.sim.core.update_faults(|f| f.latency_ms = 250);
    let batch_id = format!("month-end-{}", app.id);
    let invoices: Vec<_> = (0..MEMBERS).map(|i| invoice("b2b-intra-goods", &format!("ME/{i:05}"))).collect();
    app.publish("irn.generate_batch", &json!({"gstin": SELLER_KA, "batch_id": batch_id, "invoices": invoices})).await;
    // B's invoice goes in behind every member of A's batch: wait until the batch has fanned out.
    let db = app.db.client().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row = db.query_opt("SELECT 1 FROM batches WHERE fanned_out_at IS NOT NULL", &[]).await.unwrap();
        if row.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the batch was not fanned out within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B is the other seller (the debit-note sample is Maharashtra's).
    let started = std::time::Instant::now();
    let b_corr = app.generate(&invoice("debit-note", "URGENT/1")).await;

    // Read the replies in arrival order: A's members (by request id) and B's answer.
    let mut answered: HashMap<String, usize> = HashMap::new();
    let mut a_before_b = None;
    let mut completed = None;
    while a_before_b.is_none() || completed.is_none() || answered.len() < MEMBERS {
        // Generous: B's answer comes within seconds, the whole batch within a minute or so.
        let (corr, ev) = app.next_reply(90).await;
        let ty = ev["event_type"].as_str().unwrap_or_default().to_string();
        if corr.as_deref() == Some(b_corr.as_str()) {
            assert_eq!(ty, "irn.generated", "{ev:#}");
            assert!(a_before_b.is_none(), "B answered twice: {ev:#}");
            a_before_b = Some(answered.len());
        } else if ty == "batch.completed" {
            completed = Some(ev);
        } else if ty.starts_with("irn.") {
            let rid = ev["request_id"].as_str().unwrap_or_else(|| panic!("a member without request_id: {ev:#}"));
            assert_eq!(ty, "irn.generated", "{ev:#}");
            *answered.entry(rid.to_string()).or_default() += 1;
        }
    }
    let a_before_b = a_before_b.unwrap();
    eprintln!("B answered after {a_before_b} of A's {MEMBERS}; the batch took {:?}", started.elapsed());
    // Without the cap, B would wait for every member ahead of it to be dispatched: at most a
    // prefetch's worth of A (16) would still be unanswered when B is answered.
    assert!(
        a_before_b <= MEMBERS / 2,
        "B was answered only after {a_before_b} of A's {MEMBERS} invoices: A's backlog held it back"
    );
    // Every A invoice answered exactly once, one IRP call each, one summary.
    assert_eq!(answered.len(), MEMBERS);
    assert!(answered.values().all(|n| *n == 1), "an A invoice answered twice: {answered:?}");
    let done = completed.unwrap();
    assert_eq!(done["data"]["counts"]["generated"], MEMBERS, "{:#}", done["data"]["counts"]);
    assert_eq!(app.sim.core.stats().generate_calls, MEMBERS as u64 + 1, "one IRP call per document");
    // Being set aside happens before the job is claimed: no A job was handled twice.
    let failed: i64 = db
        .query_one("SELECT count(*) FROM jobs WHERE gstin = $1 AND attempts > 1", &[&SELLER_KA])
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 0, "a set-aside delivery must not count as an attempt");
    app.no_more_replies(3).await;
    app.stop().await;
}
