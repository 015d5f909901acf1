//! Issue 2's acceptance tests for `irn.generate`, over both protocols.
use einvoice_worker::config::ProviderKind;
use serde_json::json;

use crate::helpers::{invoice, is_irn, Options, TestApp, SELLER_KA};

async fn app(provider: ProviderKind) -> TestApp {
    TestApp::spawn_with(Options { provider, ..Default::default() }).await
}

async fn generated_event_on_events_and_reply_to(p: ProviderKind) {
    let mut app = app(p).await;
    let corr = app.generate(&invoice("b2b-intra-goods", "T1/0001")).await;
    let (reply_corr, reply) = app.next_reply(20).await;
    assert_eq!(reply_corr.as_deref(), Some(corr.as_str()), "reply carries the command's correlation id");
    assert_eq!(reply["event_type"], "irn.generated", "{reply:#}");
    let irn = reply["data"]["irn"].as_str().unwrap();
    assert!(is_irn(irn), "IRN is 64 hex: {irn}");
    assert!(reply["data"]["ack_no"].as_str().unwrap().chars().all(|c| c.is_ascii_digit()));
    assert!(reply["data"]["signed_qr_code"].as_str().unwrap().split('.').count() == 3, "signed QR is a JWT");
    assert_eq!(reply["data"]["signed_qr_payload"]["Irn"], irn, "decoded QR payload names the IRN");
    assert!(reply["data"]["qr_png_base64"].as_str().unwrap().starts_with("iVBORw0KGgo"), "QR rendered as PNG");
    assert_eq!(reply["document"]["gstin"], SELLER_KA);
    assert_eq!(reply["document"]["doc_number"], "T1/0001");
    assert_eq!(reply["provider"], p.as_str());
    assert!(reply["job_id"].is_string() && reply["event_id"].is_string());
    // The same event also went to einvoice.events.
    let ev = app.next_event(10).await;
    assert_eq!(ev["event_id"], reply["event_id"]);
    assert_eq!(app.sim.core.stats().generate_calls, 1);
    app.stop().await;
}
both_protocols!(generated, generated_event_on_events_and_reply_to);

async fn same_document_twice_one_irp_call(p: ProviderKind) {
    let mut app = app(p).await;
    let inv = invoice("b2b-inter-services", "T2/0001");
    app.generate(&inv).await;
    let (_, first) = app.next_reply(20).await;
    app.generate(&inv).await;
    let (_, second) = app.next_reply(20).await;
    assert_eq!(first["event_type"], "irn.generated");
    assert_eq!(second["event_type"], "irn.generated");
    assert_eq!(first["data"]["irn"], second["data"]["irn"]);
    assert_ne!(first["event_id"], second["event_id"], "two distinct events");
    assert_eq!(second["data"]["replayed"], true);
    assert_eq!(app.sim.core.stats().generate_calls, 1, "one generate call at the IRP");
    app.stop().await;
}
both_protocols!(twice, same_document_twice_one_irp_call);

async fn irp_rejection_carries_the_code(p: ProviderKind) {
    let mut app = app(p).await;
    app.sim.core.update_faults(|f| f.invalid_hsn = vec!["73079190".into()]);
    app.generate(&invoice("b2b-intra-goods", "T3/0001")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    let e = &ev["data"]["errors"][0];
    assert_eq!(e["code"], "2176");
    assert_eq!(e["source"], "irp");
    assert!(e["message"].as_str().unwrap().contains("73079190"));
    // Permanent: not retried.
    assert_eq!(app.sim.core.stats().generate_calls, 1);
    app.stop().await;
}
both_protocols!(rejected, irp_rejection_carries_the_code);

async fn token_expiring_mid_run_is_refreshed_once(p: ProviderKind) {
    let mut app = app(p).await;
    for i in 0..4 {
        app.generate(&invoice("b2b-intra-goods", &format!("T4/A{i}"))).await;
    }
    app.replies(4, 30).await;
    assert_eq!(app.sim.core.stats().auth_calls, 1, "one auth for the first batch");
    app.sim.core.expire_tokens();
    for i in 0..6 {
        app.generate(&invoice("b2b-intra-goods", &format!("T4/B{i}"))).await;
    }
    let replies = app.replies(6, 30).await;
    assert!(replies.iter().all(|(_, r)| r["event_type"] == "irn.generated"), "{replies:#?}");
    let stats = app.sim.core.stats();
    assert_eq!(stats.auth_calls, 2, "refreshed exactly once, no stampede");
    assert_eq!(stats.irns_created, 10, "no job lost");
    assert_eq!(app.db.refresh_count(p.as_str(), SELLER_KA).await.unwrap(), 2);
    app.stop().await;
}
both_protocols!(token_expiry, token_expiring_mid_run_is_refreshed_once);

async fn forced_1005_reauths_and_completes(p: ProviderKind) {
    let mut app = app(p).await;
    app.generate(&invoice("b2b-intra-goods", "T5/0001")).await;
    app.next_reply(20).await;
    app.sim.core.update_faults(|f| f.force_1005_next = 1);
    app.generate(&invoice("b2b-intra-goods", "T5/0002")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    let s = app.sim.core.stats();
    assert_eq!(s.injected_1005, 1);
    assert_eq!(s.irns_created, 2);
    app.stop().await;
}
both_protocols!(invalid_token_1005, forced_1005_reauths_and_completes);

async fn unavailable_irp_then_recovery(p: ProviderKind) {
    let mut app = app(p).await;
    app.sim.core.update_faults(|f| f.fail_next_5xx = 8);
    for i in 0..3 {
        app.generate(&invoice("b2b-intra-goods", &format!("T6/{i}"))).await;
    }
    let replies = app.replies(3, 40).await;
    assert!(replies.iter().all(|(_, r)| r["event_type"] == "irn.generated"), "{replies:#?}");
    let s = app.sim.core.stats();
    assert_eq!(s.irns_created, 3);
    assert!(s.injected_5xx >= 8, "the outage was really served: {s:?}");
    assert!(s.generate_per_irn.values().all(|n| *n == 1), "never two generate calls for one document: {s:?}");
    app.stop().await;
}
both_protocols!(outage_503, unavailable_irp_then_recovery);

async fn duplicate_2150_resolves_to_existing_irn(p: ProviderKind) {
    let mut app = app(p).await;
    // Someone registered this document on the portal: the IRP has it, our store does not.
    let inv = invoice("b2b-intra-goods", "T7/0001");
    let (existing, _) = app.sim.core.generate(SELLER_KA, &inv);
    let existing_irn = existing.unwrap()["Irn"].as_str().unwrap().to_string();
    app.generate(&inv).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    assert_eq!(ev["data"]["irn"], existing_irn.as_str());
    assert_eq!(ev["data"]["duplicate"], true);
    // Same number, different buyer total: refuse to attach the existing IRN.
    let mut other = invoice("b2b-intra-goods", "T7/0002");
    let (_, _) = app.sim.core.generate(SELLER_KA, &other);
    other["ValDtls"]["RndOffAmt"] = json!(0.5);
    other["ValDtls"]["TotInvVal"] = json!(39442.0);
    app.generate(&other).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "DUPLICATE_MISMATCH");
    app.stop().await;
}
both_protocols!(duplicate_irn, duplicate_2150_resolves_to_existing_irn);

async fn timeout_after_commit_is_resolved_by_lookup(p: ProviderKind) {
    let mut app = app(p).await;
    // The IRP commits the IRN but answers after our 1.5 s read timeout.
    app.sim.core.update_faults(|f| {
        f.timeout_commit_next = 1;
        f.timeout_hang_ms = 3_000;
    });
    app.generate(&invoice("b2b-intra-goods", "T8/0001")).await;
    let (_, ev) = app.next_reply(30).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    let s = app.sim.core.stats();
    assert_eq!(s.irns_created, 1, "exactly one IRN at the IRP");
    assert_eq!(s.generate_calls, 1, "resolved by lookup, not by a second generate");
    assert!(s.lookups >= 1);
    app.no_more_replies(2).await;
    app.stop().await;
}
both_protocols!(ambiguous_timeout, timeout_after_commit_is_resolved_by_lookup);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_with_different_content_is_not_answered_with_the_old_irn() {
    let mut app = TestApp::spawn().await;
    let inv = invoice("b2b-intra-goods", "T9/0001");
    app.generate(&inv).await;
    let (_, first) = app.next_reply(20).await;
    assert_eq!(first["event_type"], "irn.generated");
    let mut changed = inv.clone();
    changed["ValDtls"]["RndOffAmt"] = json!(0.5);
    changed["ValDtls"]["TotInvVal"] = json!(39442.0);
    app.generate(&changed).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.rejected", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "DOCUMENT_ALREADY_REGISTERED");
    assert!(ev["data"]["errors"][0]["message"].as_str().unwrap().contains(first["data"]["irn"].as_str().unwrap()));
    assert_eq!(app.sim.core.stats().generate_calls, 1);
    app.stop().await;
}
