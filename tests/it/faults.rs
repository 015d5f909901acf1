//! Issue 9: every promise holds under concurrency, faults and operator mistakes.

use einvoice_worker::domain::validate_invoice;
use serde_json::{json, Value};

use crate::helpers::{invoice, is_irn, wait_until, Options, TestApp, SELLER_KA};

/// Short failure tiers whose second tier is far beyond any test's patience: a message that
/// climbs to it never comes back in time.
const SLOW_SECOND_TIER: &str = "retry_tiers_secs = \"1,600\"";

async fn job_column<T: for<'a> tokio_postgres::types::FromSql<'a>>(app: &TestApp, col: &str) -> T {
    let c = app.db.client().await.unwrap();
    c.query_one(&format!("SELECT {col} FROM jobs"), &[]).await.unwrap().get(0)
}

/// Two copies of one document delivered to the same process: the second waits for the first
/// attempt instead of taking its lease as "ambiguous" (lookup, generate again, 2150, duplicate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_one_document_in_one_process_make_one_generate_call_and_no_duplicate() {
    let mut app = TestApp::spawn().await;
    // Long enough that the second copy is claimed while the first attempt is inside its call
    // (and shorter than the tests' 1.5 s read timeout).
    app.sim.core.update_faults(|f| f.latency_ms = 800);
    let inv = invoice("b2b-intra-goods", "F2/0001");
    app.generate(&inv).await;
    app.generate(&inv).await;
    let replies = app.replies(2, 60).await;
    for (_, r) in &replies {
        assert_eq!(r["event_type"], "irn.generated", "{r:#}");
        assert_eq!(r["data"]["duplicate"], false, "we registered it ourselves: {r:#}");
    }
    assert_eq!(replies[0].1["data"]["irn"], replies[1].1["data"]["irn"]);
    let s = app.sim.core.stats();
    assert_eq!(s.generate_calls, 1, "one generate call: {s:?}");
    assert_eq!(s.lookups, 0, "the second copy never treated the live lease as ambiguous: {s:?}");
    assert!(!job_column::<bool>(&app, "duplicate").await, "the stored job is not a duplicate");
    // A later replay tells the same story.
    app.sim.core.update_faults(|f| f.latency_ms = 0);
    app.generate(&inv).await;
    let (_, replay) = app.next_reply(20).await;
    assert_eq!(replay["data"]["replayed"], true);
    assert_eq!(replay["data"]["duplicate"], false, "{replay:#}");
    app.stop().await;
}

/// A NUL in an invalid GSTIN: the rejection (which quotes the value) is stored and published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_an_invalid_gstin_is_a_validation_error_with_its_path() {
    let mut app = TestApp::spawn().await;
    let inv = invoice("b2b-intra-goods", "F3/0001");
    app.publish("irn.generate", &json!({"gstin": "29AAGCP4821K1Z\u{0}", "invoice": inv})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    let nul: Vec<&Value> = errors_with_code(&ev, "NUL_CHARACTER");
    assert_eq!(nul.len(), 1, "{ev:#}");
    assert_eq!(nul[0]["path"], "gstin");
    assert_eq!(nul[0]["source"], "validation");
    assert!(einvoice_worker::domain::text::nul_problems(&ev).is_empty(), "nothing unstorable in the event: {ev}");
    assert_eq!(app.sim.core.stats().generate_calls, 0);
    app.stop().await;
}

/// A NUL in a free-text field of an otherwise valid invoice: refused before anything is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_a_free_text_field_of_a_valid_invoice_is_rejected_not_requeued() {
    let mut app = TestApp::spawn().await;
    let mut inv = invoice("b2b-intra-goods", "F3/0002");
    inv["ItemList"][0]["PrdDesc"] = json!("Steel\u{0}pipes");
    app.generate(&inv).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    let nul = errors_with_code(&ev, "NUL_CHARACTER");
    assert_eq!(nul.len(), 1, "{ev:#}");
    assert_eq!(nul[0]["path"], "invoice.ItemList[0].PrdDesc");
    assert_eq!(ev["document"]["doc_number"], "F3/0002", "the ERP can match the rejection");
    assert_eq!(app.sim.core.stats().generate_calls, 0);
    app.no_more_replies(2).await;
    assert!(app.dead_letter(1).await.is_none(), "answered, not dead-lettered by the delivery limit");
    app.stop().await;
}

/// Content the database refuses (SQLSTATE class 22) is the message's fault, not an outage: a
/// NUL in the AMQP message id, which a reconciliation run stores, is answered and dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstorable_content_is_rejected_and_dead_lettered_not_requeued() {
    let mut app = TestApp::spawn().await;
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).format("%d/%m/%Y").to_string();
    let body = json!({"gstin": SELLER_KA, "from": today, "to": today}).to_string();
    app.publish_with_id("reconcile.rejected", body.as_bytes(), "run\u{0}1").await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "reconcile.rejected.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "UNSTORABLE_CONTENT", "{ev:#}");
    assert_eq!(ev["data"]["dead_lettered"], true);
    assert_eq!(app.dead_letter(10).await.as_deref(), Some(body.as_bytes()), "the original is kept");
    app.no_more_replies(2).await;
    app.stop().await;
}

fn errors_with_code<'a>(ev: &'a Value, code: &str) -> Vec<&'a Value> {
    ev["data"]["errors"].as_array().unwrap().iter().filter(|e| e["code"] == code).collect()
}

/// Another attempt holds the document: the copy looks again soon, as often as needed, without
/// climbing the failure tiers (before: 1 s, then the 600 s tier).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_document_is_looked_at_again_soon_without_climbing_the_tiers() {
    let mut app = TestApp::spawn_with(Options { extra_toml: SLOW_SECOND_TIER.into(), ..Default::default() }).await;
    let inv = invoice("b2b-intra-goods", "F4/0001");
    // An attempt elsewhere claimed the document and died in its call: its lease runs 4 s.
    let valid = validate_invoice(&inv, Some(SELLER_KA), &app.settings.parse_options().validation).unwrap();
    let other = uuid::Uuid::new_v4();
    let date = valid.doc_date().to_string();
    let claim = app
        .db
        .claim_generate_for(valid.key(), &date, "whitebooks", valid.irp_text(), other, 4, None, None)
        .await
        .unwrap();
    assert!(matches!(claim, einvoice_worker::store::Claim::Owned { .. }));
    app.generate(&inv).await;
    let (_, ev) = app.next_reply(40).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    assert!(is_irn(ev["data"]["irn"].as_str().unwrap()));
    let s = app.sim.core.stats();
    assert_eq!(s.generate_calls, 1, "{s:?}");
    assert_eq!(s.lookups, 1, "the expired lease was ambiguous: looked up before generating: {s:?}");
    app.stop().await;
}

/// A paused GSTIN: the command comes back when the pause ends, not after a climbing tier, and a
/// real failure afterwards still starts at the first tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_gstin_waits_for_the_pause_end_and_keeps_the_failure_budget() {
    let mut app = TestApp::spawn_with(Options { extra_toml: SLOW_SECOND_TIER.into(), ..Default::default() }).await;
    app.db.pause_gstin(SELLER_KA, 4, &json!([{"code": "TEST"}])).await.unwrap();
    // After the pause: more 503s than one in-process budget absorbs (4 calls per budget), so
    // one failure reschedule, which must use the first (1 s) tier.
    app.sim.core.update_faults(|f| f.fail_next_5xx = 5);
    app.generate(&invoice("b2b-intra-goods", "F4/0002")).await;
    let (_, ev) = app.next_reply(40).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    assert_eq!(app.sim.core.stats().irns_created, 1);
    app.stop().await;
}

/// After an outage that may have swallowed a generate call, the ERP hears `irn.in_doubt` (not a
/// final `irn.failed`) and then, as soon as the IRP answers lookups, the final `irn.generated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_is_not_a_failure_and_settles_as_soon_as_the_irp_answers() {
    let mut app = TestApp::spawn_with(Options {
        extra_toml: "retry_max_age_secs = 0\nretry_tiers_secs = \"1,2\"".into(),
        ..Default::default()
    })
    .await;
    // The generate call commits at the IRP and never answers (the client times out) ...
    app.sim.core.update_faults(|f| f.timeout_commit_next = 1);
    app.generate(&invoice("b2b-intra-goods", "F10/0001")).await;
    wait_until(20, "the generate call never came", || app.sim.core.stats().generate_calls > 0).await;
    // ... and then the IRP is down: the lookup after the timeout fails too.
    app.sim.core.update_faults(|f| f.fail_5xx_ratio = 1.0);
    let (_, first) = app.next_reply(30).await;
    assert_eq!(first["event_type"], "irn.in_doubt", "not a final failure: {first:#}");
    assert_eq!(first["data"]["attempts"], 1);
    assert_eq!(job_column::<String>(&app, "status").await, "in_doubt");
    app.sim.core.update_faults(|f| f.fail_5xx_ratio = 0.0);
    let (_, settled) = app.next_reply(30).await;
    assert_eq!(settled["event_type"], "irn.generated", "{settled:#}");
    assert_eq!(settled["data"]["duplicate"], false);
    assert_eq!(settled["job_id"], first["job_id"]);
    assert_eq!(settled["correlation_id"], first["correlation_id"], "the command's own requester hears it");
    app.no_more_replies(3).await;
    let s = app.sim.core.stats();
    assert_eq!((s.irns_created, s.generate_calls), (1, 1), "settled by lookup, no second generate: {s:?}");
    assert_eq!(job_column::<String>(&app, "status").await, "generated");
    app.stop().await;
}
