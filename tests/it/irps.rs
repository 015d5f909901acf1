//! Issue 12: several IRPs per GSTIN. NIC1 primary and IRIS as failover, two simulators sharing
//! one de-duplication registry: failover for new documents only, follow-up calls at the issuer,
//! 2295, and a double registration made while the registry was down, found by reconciliation.
use std::sync::Arc;
use std::time::Duration;

use einvoice_worker::config::ProviderKind;
use einvoice_worker::sim::{self, SimRegistry, Simulator};
use serde_json::{json, Value};

use crate::helpers::{invoice, wait_until, Options, TestApp, SELLER_KA, SELLER_MH};

/// The `[gstins."<g>"]` body for a NIC-protocol GSTIN at `primary` (named `primary_name`) with
/// `failover` entries (name, URL) after it.
pub(crate) fn gstin_body(g: &str, primary_name: &str, primary: &str, failover: &[(&str, &str)]) -> String {
    let body = |url: &str| sim::gstin_toml(url, ProviderKind::Nic, g).split_once('\n').unwrap().1.to_string();
    let mut toml = format!("irp = \"{primary_name}\"\n{}", body(primary));
    for (name, url) in failover {
        toml.push_str(&format!("\n[[gstins.\"{g}\".failover]]\nirp = \"{name}\"\n{}", body(url)));
    }
    toml
}

pub(crate) struct Irps {
    pub registry: Arc<SimRegistry>,
    pub nic1: Simulator,
    pub iris: Simulator,
}

pub(crate) async fn irps() -> Irps {
    let registry = SimRegistry::new();
    let nic1 = Simulator::start_irp("127.0.0.1:0", "NIC1", registry.clone()).await.unwrap();
    let iris = Simulator::start_irp("127.0.0.1:0", "IRIS", registry.clone()).await.unwrap();
    Irps { registry, nic1, iris }
}

async fn app_with(irps: &Irps, extra: &str, sections: Vec<(String, String)>) -> TestApp {
    let _ = irps;
    TestApp::spawn_with(Options {
        provider: ProviderKind::Nic,
        extra_toml: extra.to_string(),
        gstin_sections: sections,
    })
    .await
}

async fn event_of(app: &mut TestApp, ty: &str, secs: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs().max(1);
        let (_, ev) = app.next_reply(left).await;
        if ev["event_type"] == ty {
            return ev;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {ty} event");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_sends_new_documents_to_the_failover_irp_and_an_ambiguous_one_waits_for_its_own() {
    let irps = irps().await;
    let ka = gstin_body(SELLER_KA, "NIC1", &irps.nic1.base_url(), &[("IRIS", &irps.iris.base_url())]);
    let mut app = app_with(
        &irps,
        "breaker_failures = 3\nbreaker_open_secs = 4\nretry_tiers_secs = \"1,2\"",
        vec![(SELLER_KA.into(), ka)],
    )
    .await;
    // A: NIC1 registers it, but its answer is lost (timeout) ... and then NIC1 goes down.
    irps.nic1.core.update_faults(|f| f.timeout_commit_next = 1);
    let a = invoice("b2b-intra-goods", "IR1/A");
    app.generate(&a).await;
    wait_until(20, "the generate call never came", || irps.nic1.core.stats().generate_calls > 0).await;
    irps.nic1.core.update_faults(|f| f.outage = true);
    // Wait until the lookups of A have opened NIC1's circuit.
    wait_until(20, "A was never looked up at NIC1", || irps.nic1.core.stats().injected_5xx >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // B and C are new: they go to IRIS.
    let b = invoice("b2b-intra-goods", "IR1/B");
    let c = invoice("b2b-inter-services", "IR1/C");
    app.generate(&b).await;
    app.generate(&c).await;
    let mut at_iris = Vec::new();
    for _ in 0..2 {
        let ev = event_of(&mut app, "irn.generated", 30).await;
        assert_eq!(ev["data"]["irp"], "IRIS", "{ev:#}");
        at_iris.push(ev);
    }
    // A later cancel of one of them goes to IRIS, the IRP that issued it.
    let b_irn = at_iris.iter().find(|e| e["document"]["doc_number"] == "IR1/B").unwrap()["data"]["irn"].clone();
    app.publish("irn.cancel", &json!({"gstin": SELLER_KA, "irn": b_irn, "reason": "2", "remark": "wrong"})).await;
    let cancelled = event_of(&mut app, "irn.cancelled", 30).await;
    assert_eq!(cancelled["data"]["irn"], b_irn);
    assert_eq!((irps.iris.core.stats().cancel_calls, irps.nic1.core.stats().cancel_calls), (1, 0));
    // NIC1 comes back: A is found there by lookup, never sent to IRIS.
    irps.nic1.core.update_faults(|f| f.outage = false);
    let settled = event_of(&mut app, "irn.generated", 40).await;
    assert_eq!(settled["document"]["doc_number"], "IR1/A", "{settled:#}");
    assert_eq!(settled["data"]["irp"], "NIC1");
    assert_eq!(settled["data"]["duplicate"], false);
    let a_irn = settled["data"]["irn"].as_str().unwrap().to_string();
    let (n, i) = (irps.nic1.core.stats(), irps.iris.core.stats());
    assert_eq!(n.irns_created, 1, "A once, at NIC1: {n:?}");
    assert_eq!(n.generate_calls, 1, "A's generate was never re-sent: {n:?}");
    assert!(!i.generate_per_irn.contains_key(&a_irn), "A never went to IRIS: {i:?}");
    assert_eq!(i.irns_created, 2, "B and C at IRIS: {i:?}");
    // The store says who issued what; /status-like view: the jobs table.
    let c2 = app.db.client().await.unwrap();
    let rows = c2.query("SELECT doc_number, irp FROM jobs ORDER BY doc_number", &[]).await.unwrap();
    let got: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            ("IR1/A".into(), Some("NIC1".into())),
            ("IR1/B".into(), Some("IRIS".into())),
            ("IR1/C".into(), Some("IRIS".into()))
        ]
    );
    drop(c2);
    drop(irps.registry);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_irn_registered_by_another_irp_resolves_to_it_with_2295() {
    let irps = irps().await;
    // KA: IRIS first, NIC1 second (so a document NIC1 has is sent to IRIS); MH: IRIS alone.
    let ka = gstin_body(SELLER_KA, "IRIS", &irps.iris.base_url(), &[("NIC1", &irps.nic1.base_url())]);
    let mh = gstin_body(SELLER_MH, "IRIS", &irps.iris.base_url(), &[]);
    let mut app = app_with(&irps, "", vec![(SELLER_KA.into(), ka), (SELLER_MH.into(), mh)]).await;
    // The ERP registered both documents at NIC1 itself (its portal), then sends them to us.
    let d1 = invoice("b2b-intra-goods", "IR2/1");
    let d2 = invoice("debit-note", "IR2/2");
    for d in [&d1, &d2] {
        let g = d["SellerDtls"]["Gstin"].as_str().unwrap();
        assert!(irps.nic1.core.generate(g, d).0.is_ok());
    }
    app.generate(&d1).await;
    let ev = event_of(&mut app, "irn.generated", 30).await;
    assert_eq!(ev["data"]["duplicate"], true, "{ev:#}");
    assert_eq!(ev["data"]["irp"], "NIC1", "details fetched from the issuer: {ev:#}");
    assert!(ev["data"]["signed_invoice"].is_string());
    assert_eq!(irps.iris.core.stats().irns_created, 0);
    // MH has no NIC1 configured: the IRN (deterministic) without the signed details.
    app.generate(&d2).await;
    let ev2 = event_of(&mut app, "irn.generated", 30).await;
    assert_eq!(ev2["data"]["duplicate"], true, "{ev2:#}");
    assert!(ev2["data"]["irp"].is_null(), "{ev2:#}");
    let expected = sim::core::irn_for(SELLER_MH, "DBN", "IR2/2", d2["DocDtls"]["Dt"].as_str().unwrap());
    assert_eq!(ev2["data"]["irn"], expected.as_str());
    // A replay answers from the store with the same data.
    app.generate(&d1).await;
    let again = event_of(&mut app, "irn.generated", 30).await;
    assert_eq!(
        (again["data"]["irn"].clone(), again["data"]["irp"].clone()),
        (ev["data"]["irn"].clone(), json!("NIC1"))
    );
    assert_eq!(again["data"]["replayed"], true);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_registration_while_the_registry_was_down_is_found_by_reconciliation() {
    let irps = irps().await;
    let ka = gstin_body(SELLER_KA, "NIC1", &irps.nic1.base_url(), &[("IRIS", &irps.iris.base_url())]);
    let mut app = app_with(&irps, "", vec![(SELLER_KA.into(), ka)]).await;
    irps.registry.set_down(true);
    // E: we register it first (at NIC1), then the ERP registers it again at IRIS's portal.
    let e = invoice("b2b-intra-goods", "IR3/E");
    app.generate(&e).await;
    let ours = event_of(&mut app, "irn.generated", 30).await;
    assert_eq!(ours["data"]["irp"], "NIC1");
    assert!(irps.iris.core.generate(SELLER_KA, &e).0.is_ok(), "registry down: IRIS registers it too");
    // F: the ERP registered it at IRIS first; ours at NIC1 comes second.
    let f = invoice("b2b-inter-services", "IR3/F");
    assert!(irps.iris.core.generate(SELLER_KA, &f).0.is_ok());
    app.generate(&f).await;
    let ours_f = event_of(&mut app, "irn.generated", 30).await;
    assert_eq!(ours_f["data"]["irp"], "NIC1");
    // The registry comes back: the later registration of each IRN is rejected at its IRP.
    irps.registry.set_down(false);
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).date_naive().format("%d/%m/%Y").to_string();
    app.publish("reconcile.rejected", &json!({"gstin": SELLER_KA, "from": today, "to": today})).await;
    let done = event_of(&mut app, "reconcile.completed", 30).await;
    let findings = done["data"]["findings"].as_array().unwrap();
    let by_doc = |n: &str| {
        findings
            .iter()
            .find(|x| x["document"]["doc_number"] == n && x["kind"] != "ours_fine")
            .unwrap_or_else(|| panic!("no finding for {n}: {done:#}"))
            .clone()
    };
    let fe = by_doc("IR3/E");
    assert_eq!(fe["kind"], "double_registration", "{fe:#}");
    assert_eq!((fe["irp"].clone(), fe["ours_at"].clone()), (json!("IRIS"), json!("NIC1")));
    assert_eq!(fe["irn"], ours["data"]["irn"]);
    let ff = by_doc("IR3/F");
    assert_eq!(ff["kind"], "rejected_known", "ours lost the de-duplication: {ff:#}");
    assert_eq!(ff["irp"], "NIC1");
    assert_eq!(done["data"]["summary"]["double_registration"], 1);
    assert_eq!(done["data"]["summary"]["rejected_known"], 1);
    app.stop().await;
}

/// Issue 23: `ambiguous_failover_secs`. A document whose generate NIC1 registered but never
/// answered (ambiguous), NIC1 then down: past the wait it moves to IRIS, which answers 2295
/// (GSTN's registry has NIC1's registration), and the document resolves to NIC1's IRN: one IRN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_document_moves_to_the_next_irp_after_the_failover_wait_and_resolves_by_2295() {
    let irps = irps().await;
    let ka = gstin_body(SELLER_KA, "NIC1", &irps.nic1.base_url(), &[("IRIS", &irps.iris.base_url())]);
    let mut app = app_with(
        &irps,
        "breaker_failures = 3\nbreaker_open_secs = 30\nretry_tiers_secs = \"1,2\"\nambiguous_failover_secs = 4",
        vec![(SELLER_KA.into(), ka)],
    )
    .await;
    irps.nic1.core.update_faults(|f| f.timeout_commit_next = 1);
    let a = invoice("b2b-intra-goods", "IR4/A");
    app.generate(&a).await;
    wait_until(20, "the generate call never came", || irps.nic1.core.stats().generate_calls > 0).await;
    irps.nic1.core.update_faults(|f| f.outage = true);
    let ev = event_of(&mut app, "irn.generated", 40).await;
    assert_eq!(ev["document"]["doc_number"], "IR4/A", "{ev:#}");
    assert_eq!(ev["data"]["duplicate"], true, "resolved through 2295: {ev:#}");
    let expected = sim::core::irn_for(SELLER_KA, "INV", "IR4/A", a["DocDtls"]["Dt"].as_str().unwrap());
    assert_eq!(ev["data"]["irn"], expected.as_str(), "NIC1's IRN");
    let (n, i) = (irps.nic1.core.stats(), irps.iris.core.stats());
    assert_eq!((n.irns_created, i.irns_created), (1, 0), "one IRN, NIC1's: {n:?} {i:?}");
    assert_eq!(i.generate_calls, 1, "moved to IRIS once: {i:?}");
    assert!(irps.iris.core.calls().iter().any(|c| c.is_generate() && c.status == 200), "IRIS answered (2295)");
    drop(irps.registry);
    app.stop().await;
}
