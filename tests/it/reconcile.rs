//! Issue 6: reconciliation runs (`reconcile.rejected`): rejected IRNs, in-doubt jobs, the
//! schedule, and resuming an interrupted run.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::NaiveDate;
use einvoice_worker::config::ProviderKind;
use einvoice_worker::domain::{validate_invoice, JobStatus, ValidationOptions};
use einvoice_worker::store::Claim;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{invoice, Options, TestApp, LOGS, SELLER_KA, SELLER_MH};

fn india_today() -> NaiveDate {
    einvoice_worker::domain::document::india_today()
}

fn dmy(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// A field of every finding of one kind, as strings.
fn field_of(ev: &Value, kind: &str, pointer: &str) -> BTreeSet<String> {
    of_kind(ev, kind)
        .iter()
        .map(|f| f.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string())
        .collect()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn of_kind<'a>(ev: &'a Value, kind: &str) -> Vec<&'a Value> {
    ev["data"]["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == kind).collect()
}

/// Read events until `want` returns true for one (others are skipped).
async fn event_where(app: &mut TestApp, secs: u64, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs().max(1);
        let ev = app.next_event(left).await;
        if want(&ev) {
            return ev;
        }
        assert!(tokio::time::Instant::now() < deadline, "no matching event within {secs} s");
    }
}

/// Register a job row for `inv` and leave it as a worker that lost track of it would
/// (`sql_extra`: more assignments, `lease_until` at least).
async fn job_row(app: &TestApp, inv: &Value, status: &str, sql_extra: &str) -> Uuid {
    let v = validate_invoice(inv, Some(SELLER_KA), &ValidationOptions::default()).expect("sample is valid");
    let claim = app
        .db
        .claim_generate_for(
            v.key(),
            &v.doc_date().to_string(),
            "whitebooks",
            v.irp_text(),
            Uuid::new_v4(),
            10,
            None,
            None,
        )
        .await
        .unwrap();
    let Claim::Owned { job, .. } = claim else { panic!("fresh document: {claim:?}") };
    let c = app.db.client().await.unwrap();
    c.execute(
        &format!("UPDATE jobs SET status = $2, lease_owner = NULL, {sql_extra} WHERE id = $1"),
        &[&job.id, &status],
    )
    .await
    .unwrap();
    job.id
}

async fn rejected_irns_are_reported_and_flagged(p: ProviderKind) {
    let mut app = TestApp::spawn_with(Options { provider: p, ..Default::default() }).await;
    for i in 0..3 {
        app.generate(&invoice("b2b-intra-goods", &format!("RC1/{i}"))).await;
    }
    let mut irns = BTreeMap::new();
    for (_, r) in app.replies(3, 30).await {
        assert_eq!(r["event_type"], "irn.generated", "{r:#}");
        irns.insert(
            r["document"]["doc_number"].as_str().unwrap().to_string(),
            r["data"]["irn"].as_str().unwrap().to_string(),
        );
    }
    let today = india_today();
    let rejected = irns["RC1/0"].clone();
    let surviving = format!("{:064x}", 0xfeed_u64);
    app.sim.core.mark_rejected(&rejected, Some(&surviving), None).unwrap();
    let foreign = app.sim.core.insert_rejected_foreign(SELLER_KA, "INV", "FRGN/1", &dmy(today), today);
    let calls_before = app.sim.core.stats().other_calls;

    let cmd = json!({"gstin": SELLER_KA, "from": dmy(today), "to": dmy(today), "request_id": "rc-1"});
    let corr = app.publish("reconcile.rejected", &cmd).await;
    let (reply_corr, first) = app.next_reply(30).await;
    assert_eq!(reply_corr.as_deref(), Some(corr.as_str()));
    assert_eq!(first["event_type"], "reconcile.completed", "{first:#}");
    assert_eq!(first["request_id"], "rc-1");
    let s = &first["data"]["summary"];
    assert_eq!(
        (s["rejected_known"].as_u64(), s["rejected_unknown"].as_u64(), s["ours_fine"].as_u64()),
        (Some(1), Some(1), Some(2)),
        "{first:#}"
    );
    assert_eq!(s["errors"], 0);
    let known = of_kind(&first, "rejected_known");
    assert_eq!(known[0]["irn"], rejected.as_str());
    assert_eq!(known[0]["surviving_irn"], surviving.as_str());
    assert_eq!(known[0]["document"]["doc_number"], "RC1/0");
    assert_eq!(known[0]["rejected_on"], dmy(today));
    let unknown = of_kind(&first, "rejected_unknown");
    assert_eq!(unknown[0]["irn"], foreign.as_str());
    assert_eq!(unknown[0]["document"]["doc_number"], "FRGN/1");
    assert!(unknown[0]["job_id"].is_null());
    assert_eq!(field_of(&first, "ours_fine", "/document/doc_number"), set(["RC1/1", "RC1/2"]));
    assert_eq!(app.sim.core.stats().other_calls - calls_before, 1, "one rejected-IRN call for one GSTIN-day");

    // The job row is flagged; the others are not.
    let job = app.db.job_by_irn(&rejected).await.unwrap().unwrap();
    assert!(job.rejected_at_irp);
    assert_eq!(job.surviving_irn.as_deref(), Some(surviving.as_str()));
    assert!(!app.db.job_by_irn(&irns["RC1/1"]).await.unwrap().unwrap().rejected_at_irp);
    // The run is a durable record.
    let run_id: Uuid = first["data"]["run_id"].as_str().unwrap().parse().unwrap();
    let run = app.db.reconcile_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.status, "completed");
    assert!(run.day_done(SELLER_KA, today) && run.finished_at.is_some());
    assert_eq!(run.findings, first["data"]["findings"]);

    // The same range again: a new run, the same findings.
    app.publish("reconcile.rejected", &cmd).await;
    let (_, second) = app.next_reply(30).await;
    assert_eq!(second["event_type"], "reconcile.completed");
    assert_ne!(second["data"]["run_id"], first["data"]["run_id"]);
    assert_eq!(second["data"]["findings"], first["data"]["findings"]);
    assert_eq!(second["data"]["summary"], first["data"]["summary"]);
    // Both went to einvoice.events too.
    let ev = event_where(&mut app, 10, |e| e["event_type"] == "reconcile.completed").await;
    assert_eq!(ev["event_id"], first["event_id"]);
    app.stop().await;
}

both_protocols!(rejected, rejected_irns_are_reported_and_flagged);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_jobs_are_resolved_or_requeued() {
    let mut app = TestApp::spawn().await;
    // A: the IRP registered it, we never heard back (in_doubt).
    let a = invoice("b2b-intra-goods", "RC2/A");
    let irn_a = app.sim.core.generate(SELLER_KA, &a).0.unwrap()["Irn"].as_str().unwrap().to_string();
    let job_a = job_row(&app, &a, "in_doubt", "lease_until = NULL").await;
    // B: in doubt, but the IRP never got it.
    let b = invoice("b2b-intra-goods", "RC2/B");
    let job_b = job_row(&app, &b, "in_doubt", "lease_until = NULL").await;
    // C: its worker died mid-call an hour ago (in_flight, lease expired); the IRP has it.
    let c = invoice("b2b-intra-goods", "RC2/C");
    let irn_c = app.sim.core.generate(SELLER_KA, &c).0.unwrap()["Irn"].as_str().unwrap().to_string();
    let job_c = job_row(
        &app,
        &c,
        "in_flight",
        "lease_until = now() - interval '1 minute', updated_at = now() - interval '1 hour'",
    )
    .await;
    // D: pending a moment ago: not in doubt yet, left alone.
    let d = invoice("b2b-intra-goods", "RC2/D");
    let job_d = job_row(&app, &d, "pending", "lease_until = NULL").await;

    let today = dmy(india_today());
    app.publish("reconcile.rejected", &json!({"from": today, "to": today})).await;
    let (_, done) = app.next_reply(30).await;
    assert_eq!(done["event_type"], "reconcile.completed", "{done:#}");
    let s = &done["data"]["summary"];
    assert_eq!(s["in_doubt_resolved"], 2, "{done:#}");
    assert_eq!(s["in_doubt_requeued"], 1, "{done:#}");
    assert_eq!(s["in_doubt_unresolved"], 0, "{done:#}");
    assert_eq!(done["data"]["gstins"], json!([SELLER_MH, SELLER_KA].iter().collect::<BTreeSet<_>>()));
    assert_eq!(field_of(&done, "in_doubt_resolved", "/irn"), set([irn_a.as_str(), irn_c.as_str()]));
    assert_eq!(of_kind(&done, "in_doubt_requeued")[0]["job_id"], job_b.to_string());

    // Resolved jobs are generated and reported; the re-queued one is generated by its command.
    let mut generated = BTreeMap::new();
    while generated.len() < 3 {
        let ev = event_where(&mut app, 30, |e| e["event_type"] == "irn.generated").await;
        generated.insert(ev["document"]["doc_number"].as_str().unwrap().to_string(), ev);
    }
    assert_eq!(generated["RC2/A"]["data"]["irn"], irn_a.as_str());
    assert_eq!(generated["RC2/C"]["data"]["irn"], irn_c.as_str());
    assert!(generated["RC2/A"]["data"]["signed_qr_code"].is_string());
    for (id, irn) in [(job_a, Some(&irn_a)), (job_c, Some(&irn_c)), (job_b, None)] {
        let job = app.db.job(id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Generated, "{job:?}");
        if let Some(irn) = irn {
            assert_eq!(job.irn.as_ref(), Some(irn));
        }
    }
    assert_eq!(app.db.job(job_d).await.unwrap().unwrap().status, JobStatus::Pending);
    // The sweep's lookups are on the job pages' attempt logs: the one that found A's IRN, and
    // B's "not found" before the re-queued command's own calls.
    let log_of = |id: Uuid| {
        let db = app.db.clone();
        async move {
            let c = db.client().await.unwrap();
            let v: Option<Value> =
                c.query_one("SELECT attempt_log FROM jobs WHERE id = $1", &[&id]).await.unwrap().get(0);
            v.and_then(|v| v.as_array().cloned()).unwrap_or_default()
        }
    };
    let log_a = log_of(job_a).await;
    assert_eq!(log_a.len(), 1, "{log_a:#?}");
    assert_eq!((log_a[0]["operation"].as_str(), log_a[0]["outcome"].as_str()), (Some("get_by_doc"), Some("ok")));
    let log_b = log_of(job_b).await;
    assert_eq!(log_b[0]["operation"], "get_by_doc", "{log_b:#?}");
    assert_eq!(log_b[0]["outcome"], "error", "{log_b:#?}");
    assert!(log_b[0]["codes"].as_str().is_some_and(|c| c.contains("2154")), "{log_b:#?}");
    let last = log_b.last().unwrap();
    assert_eq!((last["operation"].as_str(), last["outcome"].as_str()), (Some("generate"), Some("ok")), "{log_b:#?}");
    let st = app.sim.core.stats();
    assert_eq!(st.irns_created, 3);
    assert!(st.generate_per_irn.values().all(|n| *n == 1), "one generate call per document: {st:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_schedule_one_run_per_tick() {
    let mut app = TestApp::spawn_with(Options {
        extra_toml: "reconcile_schedule = \"* * * * * *\"".into(),
        ..Default::default()
    })
    .await;
    let second = app.start_another_worker().await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    second.stop().await.unwrap();
    app.worker.take().unwrap().stop().await.unwrap();

    let c = app.db.client().await.unwrap();
    let rows = c.query("SELECT tick, status, command_id, published_at FROM reconcile_runs", &[]).await.unwrap();
    let ticks: BTreeSet<chrono::DateTime<chrono::Utc>> =
        rows.iter().map(|r| r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(0).expect("scheduled")).collect();
    assert_eq!(ticks.len(), rows.len(), "one run per tick");
    assert!(rows.len() >= 3, "a run every second for 4.5 s: {}", rows.len());
    assert!(ticks.iter().all(|t| t.timestamp_subsec_millis() == 0), "ticks are whole seconds: {ticks:?}");
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).to_string();
    assert!(logs.contains("another worker took this reconciliation tick"), "both workers competed for ticks");
    let completed = rows.iter().filter(|r| r.get::<_, String>(1) == "completed").count();
    assert!(completed >= 2, "{completed} of {} runs completed", rows.len());

    // One reconcile.completed per completed run, each for a distinct tick.
    let outbox = c.query("SELECT payload FROM outbox WHERE event_type = 'reconcile.completed'", &[]).await.unwrap();
    let outbox_ticks: BTreeSet<String> =
        outbox.iter().map(|r| r.get::<_, Value>(0)["data"]["tick"].as_str().unwrap().to_string()).collect();
    assert_eq!(outbox.len(), completed, "one event per completed run");
    assert_eq!(outbox_ticks.len(), outbox.len(), "no tick reported twice");
    let mut events = Vec::new();
    while events.len() < completed {
        events.push(event_where(&mut app, 10, |e| e["event_type"] == "reconcile.completed").await);
    }
    let event_ticks: BTreeSet<String> =
        events.iter().map(|e| e["data"]["tick"].as_str().unwrap().to_string()).collect();
    assert_eq!(event_ticks, outbox_ticks);
    for e in &events {
        assert_eq!(e["data"]["gstins"].as_array().unwrap().len(), 2, "every configured GSTIN");
        let from = NaiveDate::parse_from_str(e["data"]["from"].as_str().unwrap(), "%d/%m/%Y").unwrap();
        let to = NaiveDate::parse_from_str(e["data"]["to"].as_str().unwrap(), "%d/%m/%Y").unwrap();
        assert_eq!(from.succ_opt(), Some(to), "yesterday..today");
    }
    app.stop().await;
}

/// A run left `running` by a dead worker, with some days recorded.
async fn orphan_run(
    app: &TestApp,
    command_id: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    done: &[NaiveDate],
    findings: Value,
) -> Uuid {
    let id = Uuid::new_v4();
    let days: Vec<String> = done.iter().map(|d| d.format("%Y-%m-%d").to_string()).collect();
    let c = app.db.client().await.unwrap();
    c.execute(
        "INSERT INTO reconcile_runs (id, gstins, from_date, to_date, status, progress, findings, command_id,
                                     lease_owner, lease_until, started_at)
         VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, now() - interval '1 minute', now() - interval '2 minutes')",
        &[
            &id,
            &vec![SELLER_KA.to_string()],
            &from,
            &to,
            &json!({SELLER_KA: days}),
            &findings,
            &command_id,
            &Uuid::new_v4(),
        ],
    )
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_run_is_completed_without_refetching_done_days() {
    let mut app = TestApp::spawn().await;
    let today = india_today();
    let (d0, d1) = (today - chrono::Days::new(2), today - chrono::Days::new(1));
    let f0 = app.sim.core.insert_rejected_foreign(SELLER_KA, "INV", "RS/0", &dmy(d0), d0);
    let f2 = app.sim.core.insert_rejected_foreign(SELLER_KA, "INV", "RS/2", &dmy(today), today);
    // The dead worker had fetched d0 (finding f0) and d1 (nothing).
    let recorded = json!([{"kind": "rejected_unknown", "gstin": SELLER_KA, "irn": f0, "surviving_irn": null,
        "rejected_on": dmy(d0), "job_id": null,
        "document": {"gstin": SELLER_KA, "doc_type": "INV", "doc_number": "RS/0", "doc_date": dmy(d0)},
        "ack_no": null, "ack_dt": null}]);
    let run_id = orphan_run(&app, None, d0, today, &[d0, d1], recorded).await;
    let before = app.sim.core.stats().other_calls;

    app.publish("reconcile.rejected", &json!({"gstin": SELLER_KA, "from": dmy(d0), "to": dmy(today)})).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "reconcile.completed", "{ev:#}");
    assert_eq!(ev["data"]["run_id"], run_id.to_string(), "the orphaned run was resumed, not restarted");
    assert_eq!(field_of(&ev, "rejected_unknown", "/irn"), set([f0.as_str(), f2.as_str()]));
    assert_eq!(app.sim.core.stats().other_calls - before, 1, "only the day not yet done was fetched");
    let run = app.db.reconcile_run(run_id).await.unwrap().unwrap();
    assert_eq!(run.status, "completed");
    assert!([d0, d1, today].iter().all(|d| run.day_done(SELLER_KA, *d)), "{:?}", run.progress);

    // A redelivered (scheduled) command finds its own run by message id and resumes it,
    // even for another range than a fresh command would claim.
    let cid = Uuid::new_v4().to_string();
    let own = orphan_run(&app, Some(&cid), d1, today, &[d1], json!([])).await;
    let before = app.sim.core.stats().other_calls;
    let body = json!({"from": dmy(d1), "to": dmy(today), "run_id": own});
    app.publish_with_id("reconcile.rejected", body.to_string().as_bytes(), &cid).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["data"]["run_id"], own.to_string(), "{ev:#}");
    assert_eq!(ev["data"]["gstins"], json!([SELLER_KA]), "the run's own GSTINs, not every configured one");
    assert_eq!(app.sim.core.stats().other_calls - before, 1);
    // The same command once more (a redelivery after completion): answered from the stored run,
    // with no IRP call.
    let calls = app.sim.core.stats().other_calls;
    app.publish_with_id("reconcile.rejected", body.to_string().as_bytes(), &cid).await;
    let (_, again) = app.next_reply(30).await;
    assert_eq!(again["data"]["run_id"], own.to_string());
    assert_eq!(again["data"]["replayed"], true);
    assert_eq!(again["data"]["summary"], ev["data"]["summary"]);
    assert_eq!(app.sim.core.stats().other_calls, calls, "no IRP call for the replay");
    app.no_more_replies(2).await;
    app.stop().await;
}
