//! Issue 23: circuit breakers shared by every worker process (migration 0012). One process's
//! evidence opens the circuit for all of them through `irp_circuits` and its notifications; a
//! half-open circuit lets one call at a time probe the IRP.
use std::time::Duration;

use einvoice_worker::domain::outcome::{Class, Operation};
use einvoice_worker::irp::IrpError;
use einvoice_worker::runtime::status::{listen, Breaker, IrpHealth};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::helpers::{wait_until, TestApp, SELLER_KA};

fn unavailable() -> IrpError {
    IrpError::Http { status: 503, body: "Service Unavailable".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_opening_a_circuit_stops_the_others_and_one_probe_goes_at_a_time() {
    let app = TestApp::spawn().await;
    let breaker = Breaker { failures: 3, open_secs: 2 };
    // Two "processes": each its own copy of the circuits, kept current by its own listener.
    let (a, b) =
        (IrpHealth::new(breaker).with_store(app.db.clone()), IrpHealth::new(breaker).with_store(app.db.clone()));
    let stop = CancellationToken::new();
    let url = app.settings.database_url.expose_secret().to_string();
    for h in [&a, &b] {
        let target = einvoice_worker::store::tls::target(&url, None).unwrap();
        tokio::spawn(listen(h.clone(), target, stop.child_token()));
    }
    // Let both listeners LISTEN before the first change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let g = SELLER_KA;
    // Failures count across processes: two at A and one at B open the circuit for both.
    let (op, class) = (Operation::Generate, Class::Transient);
    a.failed(g, "NIC1", op, class, &unavailable()).await;
    a.failed(g, "NIC1", op, class, &unavailable()).await;
    assert!(a.check(g, "NIC1").is_ok() && b.check(g, "NIC1").is_ok(), "2 of 3 failures: still closed");
    b.failed(g, "NIC1", op, class, &unavailable()).await;
    let until = b.check(g, "NIC1").expect_err("B opened it");
    wait_until(5, "A never learnt that B opened the circuit", || a.check(g, "NIC1").is_err()).await;
    assert_eq!(a.check(g, "NIC1").unwrap_err(), until, "both wait for the same end");
    assert!(a.check(g, "IRIS").is_ok() && a.is_closed(g, "IRIS"), "other IRPs are not affected");
    let c = app.db.client().await.unwrap();
    let row = c.query_one("SELECT failures, opened_at IS NOT NULL FROM irp_circuits", &[]).await.unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, bool>(1)), (3, true));
    // Half-open: one probe at a time, across processes; the other waits for the probe's end.
    tokio::time::sleep((until - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100)).await;
    assert!(a.admit(g, "NIC1").await.is_ok(), "A probes");
    let probe_end = b.admit(g, "NIC1").await.expect_err("B waits while A probes");
    assert!(probe_end > chrono::Utc::now(), "{probe_end}");
    assert!(a.admit(g, "NIC1").await.is_err(), "even A's next call waits for its probe");
    // The probe succeeds: the circuit closes for both, and the table forgets it.
    a.succeeded(g, "NIC1").await;
    assert!(a.is_closed(g, "NIC1"));
    wait_until(5, "B never learnt that the circuit closed", || b.is_closed(g, "NIC1")).await;
    assert!(b.admit(g, "NIC1").await.is_ok());
    let left: i64 = c.query_one("SELECT count(*) FROM irp_circuits", &[]).await.unwrap().get(0);
    assert_eq!(left, 0);
    // Three more failures open it again, for everyone.
    for _ in 0..3 {
        a.failed(g, "NIC1", op, class, &unavailable()).await;
    }
    wait_until(5, "B never learnt of the second opening", || b.check(g, "NIC1").is_err()).await;
    // An answer (an IRP error code) shows the IRP is up: it closes the circuit too.
    let answered = IrpError::Api { errors: vec![], info: vec![] };
    b.failed(g, "NIC1", Operation::GetByDoc, Class::Rejection, &answered).await;
    wait_until(5, "A never learnt that the IRP answered", || a.is_closed(g, "NIC1")).await;
    stop.cancel();
    app.stop().await;
}

/// Issue 23's "Done when": three worker processes, NIC1 (the primary) answering 503 to every
/// call for 60 s under a steady load of new documents. Once any process has opened NIC1's
/// circuit, no process sends NIC1 a document (new ones go to IRIS); the documents held at NIC1
/// (their generate met a 503 there, so they may be registered there and are never sent
/// elsewhere) are answered within 60 s of NIC1's return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_60_s_primary_outage_three_workers_answer_every_held_document_within_60_s() {
    use crate::helpers::{invoice, Options};
    use crate::irps::{gstin_body, irps};
    use einvoice_worker::config::ProviderKind;
    use lapin::types::ShortString;

    const OUTAGE: Duration = Duration::from_secs(60);
    let irps = irps().await;
    let ka = gstin_body(SELLER_KA, "NIC1", &irps.nic1.base_url(), &[("IRIS", &irps.iris.base_url())]);
    let mut app = TestApp::spawn_with(Options {
        provider: ProviderKind::Nic,
        extra_toml: "breaker_failures = 3\nbreaker_open_secs = 10".into(),
        gstin_sections: vec![(SELLER_KA.into(), ka)],
    })
    .await;
    // Three processes: this test's in-process worker and two `einvoice-worker run`.
    let mut others = vec![app.spawn_process(), app.spawn_process()];
    // Steady load: a new document every 400 ms, from 3 s before the outage to 5 s after it.
    let (ch, commands, replies) = (app.ch.clone(), app.topology.commands.clone(), app.replies.clone());
    let load = tokio::spawn(async move {
        let mut sent = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(400));
        let end = tokio::time::Instant::now() + Duration::from_secs(3) + OUTAGE + Duration::from_secs(5);
        let mut i = 0;
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            i += 1;
            let doc = format!("CB/{i}");
            let body = serde_json::json!({"gstin": SELLER_KA, "invoice": invoice("b2b-intra-goods", &doc)});
            let props = einvoice_worker::amqp::json_props()
                .with_message_id(ShortString::from(uuid::Uuid::new_v4().to_string()))
                .with_reply_to(ShortString::from(replies.as_str()));
            let bytes = body.to_string().into_bytes();
            einvoice_worker::amqp::publish_confirmed(&ch, &commands, "irn.generate", &bytes, props, true)
                .await
                .expect("publish");
            sent.push((doc, chrono::Utc::now()));
        }
        sent
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    irps.nic1.core.update_faults(|f| f.outage = true);
    let outage_from = chrono::Utc::now();
    // A burst as the outage begins: these meet NIC1's 503s before any circuit opens (held).
    let mut burst = Vec::new();
    for k in 1..=3 {
        let doc = format!("CB/B{k}");
        app.generate(&invoice("b2b-intra-goods", &doc)).await;
        burst.push((doc, chrono::Utc::now()));
    }
    // Watch the shared circuit: when it first opened (the store's clock, the machine's).
    let c = app.db.client().await.unwrap();
    let mut first_opened: Option<chrono::DateTime<chrono::Utc>> = None;
    let back_at = tokio::time::Instant::now() + OUTAGE;
    let mut answers: Vec<(serde_json::Value, chrono::DateTime<chrono::Utc>)> = Vec::new();
    while tokio::time::Instant::now() < back_at {
        if first_opened.is_none() {
            let row =
                c.query_opt("SELECT opened_at FROM irp_circuits WHERE irp = 'NIC1' AND opened_at IS NOT NULL", &[]);
            first_opened = row.await.unwrap().map(|r| r.get(0));
        }
        // Keep the replies flowing (new documents are answered by IRIS meanwhile).
        if let Some(ev) = app.reply_within(Duration::from_millis(100)).await {
            answers.push((ev, chrono::Utc::now()));
        }
    }
    irps.nic1.core.update_faults(|f| f.outage = false);
    let returned = chrono::Utc::now();
    let first_opened = first_opened.expect("NIC1's circuit opened in the store");
    let mut sent = load.await.unwrap();
    sent.extend(burst);
    // Every document is answered, each with one IRN.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while answers.len() < sent.len() && tokio::time::Instant::now() < deadline {
        let (_, ev) = app.next_reply(90).await;
        answers.push((ev, chrono::Utc::now()));
    }
    for mut child in others.drain(..) {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut by_doc = std::collections::BTreeMap::new();
    for (ev, at) in &answers {
        assert_eq!(ev["event_type"], "irn.generated", "{ev:#}");
        let doc = ev["document"]["doc_number"].as_str().unwrap().to_string();
        assert!(
            by_doc.insert(doc, (ev["data"]["irp"].as_str().unwrap_or("").to_string(), *at)).is_none(),
            "one answer each"
        );
    }
    assert_eq!(by_doc.len(), sent.len(), "every document answered");
    let (n, i) = (irps.nic1.core.stats(), irps.iris.core.stats());
    assert_eq!(n.irns_created + i.irns_created, sent.len() as u64, "one IRN per document: {n:?} {i:?}");
    // Held documents: sent during the outage, registered at NIC1 (after its return).
    let held: Vec<_> = sent
        .iter()
        .filter(|(d, at)| *at >= outage_from && *at < returned && by_doc[d].0 == "NIC1")
        .map(|(d, _)| (d.clone(), by_doc[d].1))
        .collect();
    assert!(!held.is_empty(), "some documents met NIC1's 503s before its circuit opened");
    for (doc, answered) in &held {
        let after = (*answered - returned).num_milliseconds();
        assert!(after <= 60_000, "{doc} answered {after} ms after NIC1's return");
    }
    // No generate reached NIC1 between the circuit's opening (plus the moment a notification
    // takes to reach the other processes, and a call already under way to arrive) and its return.
    let grace = chrono::Duration::milliseconds(500);
    let late: Vec<_> = irps
        .nic1
        .core
        .calls()
        .into_iter()
        .filter(|call| call.is_generate() && call.at > first_opened + grace && call.at < returned)
        .collect();
    assert!(late.is_empty(), "generates sent to NIC1 after its circuit opened at {first_opened}: {late:?}");
    let at_iris = by_doc.values().filter(|(irp, _)| irp == "IRIS").count();
    assert!(at_iris > 0, "new documents failed over to IRIS during the outage");
    eprintln!(
        "circuit: {} documents, {} held at NIC1 (last answered {} ms after its return), {at_iris} at IRIS; opened {} ms into the outage",
        sent.len(),
        held.len(),
        held.iter().map(|(_, a)| (*a - returned).num_milliseconds()).max().unwrap_or(0),
        (first_opened - outage_from).num_milliseconds()
    );
    drop(c);
    app.stop().await;
}
