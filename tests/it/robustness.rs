//! Bad input, secrets, competing workers: every message ends in exactly one outcome.
use serde_json::{json, Value};

use crate::helpers::{invoice, TestApp, LOGS, SELLER_KA};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_rejected_dead_lettered_and_the_consumer_goes_on() {
    let mut app = TestApp::spawn().await;
    let not_json = b"{this is not json";
    let c1 = app.publish_bytes("irn.generate", not_json).await;
    let (corr, ev) = app.next_reply(20).await;
    assert_eq!(corr.as_deref(), Some(c1.as_str()));
    assert_eq!(ev["event_type"], "irn.rejected");
    assert_eq!(ev["data"]["errors"][0]["code"], "INVALID_JSON");
    assert_eq!(ev["data"]["errors"][0]["source"], "envelope");
    assert_eq!(ev["data"]["dead_lettered"], true);
    assert_eq!(app.dead_letter(10).await.as_deref(), Some(&not_json[..]), "the original bytes are in einvoice.dead");

    app.publish("irn.generate", &json!({"gstin": SELLER_KA, "request_id": "r-77"})).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.rejected");
    assert_eq!(ev["request_id"], "r-77");
    assert_eq!(ev["data"]["errors"][0]["path"], "invoice");
    assert_eq!(ev["data"]["errors"][0]["code"], "REQUIRED");

    app.publish_bytes("irn.frobnicate", b"{}").await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "command.rejected");
    assert_eq!(ev["data"]["errors"][0]["code"], "UNKNOWN_ROUTING_KEY");

    // Still consuming.
    app.generate(&invoice("b2b-intra-goods", "R1/0001")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.generated");
    assert_eq!(app.sim.core.stats().generate_calls, 1, "no IRP call for the bad messages");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_rejected_without_parsing() {
    let mut app = TestApp::spawn_with(crate::helpers::Options {
        extra_toml: "max_message_bytes = 2048".into(),
        ..Default::default()
    })
    .await;
    let inv = invoice("b2b-30-items-roundoff", "R2/0001");
    app.generate(&inv).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["data"]["errors"][0]["code"], "MESSAGE_TOO_LARGE", "{ev:#}");
    assert!(app.dead_letter(10).await.is_some());
    assert_eq!(app.sim.core.stats().generate_calls, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_batch_one_outcome_per_message_and_no_calls_for_invalid_ones() {
    let mut app = TestApp::spawn().await;
    let mut expected_ok = 0;
    for i in 0..12 {
        let mut inv = invoice("b2b-intra-goods", &format!("R3/{i:04}"));
        match i % 4 {
            0 => inv["ItemList"][0]["HsnCd"] = json!("12"),
            1 => inv["BuyerDtls"]["Gstin"] = json!("29AADCT5519H1Z9"),
            _ => expected_ok += 1,
        }
        app.generate(&inv).await;
    }
    app.publish_bytes("irn.generate", b"[1,2,3]").await;
    let replies = app.replies(13, 40).await;
    let ok = replies.iter().filter(|(_, r)| r["event_type"] == "irn.generated").count();
    // A rejected invoice still names its document, so the ERP can match it.
    let named = replies
        .iter()
        .filter(|(_, r)| r["event_type"] == "irn.rejected")
        .filter(|(_, r)| r["document"]["doc_number"].as_str().is_some_and(|n| n.starts_with("R3/")))
        .count();
    assert_eq!(named, 6, "the six invalid invoices (not the non-object message) carry their document");
    assert_eq!(ok, expected_ok);
    assert_eq!(replies.len() - ok, 13 - expected_ok);
    let s = app.sim.core.stats();
    assert_eq!(s.generate_calls as usize, expected_ok, "zero IRP calls for invalid commands");
    app.no_more_replies(2).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_events_or_plain_rows() {
    let mut app = TestApp::spawn().await;
    app.generate(&invoice("b2b-intra-goods", "R4/0001")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.generated");
    app.sim.core.update_faults(|f| f.force_1005_next = 1);
    app.generate(&invoice("b2b-intra-goods", "R4/0002")).await;
    let (_, ev2) = app.next_reply(20).await;
    let tokens = app.sim.core.issued_tokens();
    assert!(!tokens.is_empty());
    let mut secrets: Vec<String> = vec!["sim-password".into(), "sim-client-secret".into()];
    secrets.extend(tokens);
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).to_string();
    assert!(logs.contains("IRP session refreshed"), "the log capture works");
    let events = format!("{ev} {ev2}");
    let c = app.db.client().await.unwrap();
    let rows: Vec<Vec<u8>> =
        c.query("SELECT token_enc FROM auth_tokens", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let outbox: Vec<Value> =
        c.query("SELECT payload FROM outbox", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "secret in logs");
        assert!(!events.contains(s.as_str()), "secret in an event");
        assert!(!serde_json::to_string(&outbox).unwrap().contains(s.as_str()), "secret in the outbox");
        for r in &rows {
            assert!(!r.windows(s.len()).any(|w| w == s.as_bytes()), "token stored in plain text");
        }
    }
    drop(c);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_compete_without_double_registration() {
    let mut app = TestApp::spawn().await;
    let second = app.start_another_worker().await;
    app.sim.core.update_faults(|f| f.latency_ms = 30);
    // Every document sent twice, so both workers race for the same documents.
    for i in 0..10 {
        let inv = invoice("b2b-intra-goods", &format!("R5/{i:04}"));
        app.generate(&inv).await;
        app.generate(&inv).await;
    }
    let replies = app.replies(20, 60).await;
    assert!(replies.iter().all(|(_, r)| r["event_type"] == "irn.generated"), "{replies:#?}");
    let s = app.sim.core.stats();
    assert_eq!(s.irns_created, 10);
    assert!(s.generate_per_irn.values().all(|n| *n == 1), "one generate call per document: {s:?}");
    assert_eq!(s.auth_calls, 1, "one token shared by both workers");
    second.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_nic_public_key_pauses_the_gstin_instead_of_retrying() {
    // The simulator's *signing* key is not its encryption key: auth fails with 1013.
    let wrong_key = einvoice_worker::sim::core::SIGNING_PUBLIC_PEM;
    let section = format!(
        "provider = \"nic\"\nbase_url = \"{{sim}}\"\nusername = \"u\"\npassword = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\npublic_key_pem = \"\"\"\n{wrong_key}\"\"\"\n"
    );
    let mut app = TestApp::spawn_with(crate::helpers::Options {
        provider: einvoice_worker::config::ProviderKind::Nic,
        gstin_sections: vec![(SELLER_KA.into(), section)],
        ..Default::default()
    })
    .await;
    app.generate(&invoice("b2b-intra-goods", "R6/0001")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "gstin.paused", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "1013");
    assert_eq!(app.sim.core.stats().auth_calls, 1, "a configuration error is not retried");
    assert_eq!(app.sim.core.stats().generate_calls, 0);
    // The other GSTIN (correct key) is unaffected.
    app.generate(&invoice("debit-note", "R6/0002")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_that_does_not_verify_is_an_error_not_a_result() {
    // Whitebooks passes NIC's signed JWTs through: with a (wrong) signing key configured, the
    // answer is refused and the GSTIN paused, loudly, instead of storing an unverified IRN.
    let wrong = einvoice_worker::sim::core::NIC_PUBLIC_PEM;
    let section = format!(
        "provider = \"whitebooks\"\nbase_url = \"{{sim}}\"\nemail = \"e@x\"\nusername = \"u\"\npassword = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\nsigning_key_pem = \"\"\"\n{wrong}\"\"\"\n"
    );
    let mut app = TestApp::spawn_with(crate::helpers::Options {
        gstin_sections: vec![(SELLER_KA.into(), section)],
        ..Default::default()
    })
    .await;
    app.generate(&invoice("b2b-intra-goods", "R8/0001")).await;
    let (_, ev) = app.next_reply(20).await;
    assert_eq!(ev["event_type"], "gstin.paused", "{ev:#}");
    assert_eq!(ev["data"]["errors"][0]["code"], "SIGNATURE_INVALID");
    let status: String = app.db.client().await.unwrap().query_one("SELECT status FROM jobs", &[]).await.unwrap().get(0);
    assert_ne!(status, "generated", "an unverified IRN is not recorded as generated");
    app.stop().await;
}
